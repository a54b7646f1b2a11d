//! Private rooms (issue 22; PROTOCOL §10): the rooms this node is in, their keys, and what
//! becomes of their envelopes here.
//!
//! The envelopes of every private room travel, are checked and stored like any room's (the one
//! way in, `inbound.rs`, hands them here as [`Note::Private`]): a relay stores them unread, so
//! sync serves them. For a room we are in, this handler opens each message (stored read, with
//! its text, and shown) or keeps it unread until the operation that makes its key arrives, then
//! opens what waited. It owns the keys: the passphrase rooms' and the invite rooms' groups
//! (`meshchat_core::private`), loaded from the store at start.
//!
//! Names: a private room is named here by its name (the one typed, or the invite's), and
//! stored under its id (the envelopes' target). `Io::private` maps one to the other for every
//! view; the joined rooms (`Io::rooms`) hold targets.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use meshchat_api as api;
use meshchat_core::dm::{EncryptionKey, SealKey};
use meshchat_core::envelope::Kind;
use meshchat_core::inbound::Reason;
use meshchat_core::private::{
    Group, Invite, OpOutcome, PassphraseRoom, Refusal, RoomId, Secret, Unread, MAX_OPS,
};
use meshchat_core::room::{self, Text};
use meshchat_core::{Envelope, Fingerprint};

use super::context::{Ctx, Io, Key};
use crate::node::{
    key_of_peer_id, now_ms, peer_id_of_bytes, Error, Event, MemberView, PrivateKind, RoomView,
};
use crate::store::{PrivateRoomRow, Sealed, Store, StoredMessage};

/// A room's unreadable messages are told at most this often.
const TELL_EVERY: Duration = Duration::from_secs(60);
/// Authors remembered per passphrase room, for its member count.
const MAX_HEARD: usize = 4096;
/// Unread messages of a room tried again at once when a key arrives.
const RETRY_LIMIT: usize = 50_000;

/// The private rooms' names here, by target (for `Io::private`).
pub(super) type Names = HashMap<String, (String, PrivateKind)>;

/// Store codes of the two kinds.
const PASSPHRASE: u8 = 1;
const INVITE: u8 = 2;

pub(super) struct Private {
    /// The private rooms we are in, by target.
    rooms: HashMap<String, Room>,
    /// Our DM key: the invite rooms' shares are sealed to it.
    seal: EncryptionKey,
    /// When each room's unreadable messages were last told.
    told: HashMap<String, Instant>,
}

struct Room {
    name: String,
    kind: RoomKind,
}

enum RoomKind {
    Passphrase {
        room: PassphraseRoom,
        /// The authors heard, with their latest nick.
        heard: BTreeMap<Key, String>,
    },
    Invite(Box<Group>),
}

impl Room {
    fn kind(&self) -> PrivateKind {
        match self.kind {
            RoomKind::Passphrase { .. } => PrivateKind::Passphrase,
            RoomKind::Invite(_) => PrivateKind::Invite,
        }
    }

    fn open(&self, env: &Envelope) -> Result<Text, Unread> {
        match &self.kind {
            RoomKind::Passphrase { room, .. } => room.open(env),
            RoomKind::Invite(g) => g.open(env),
        }
    }

    fn members(&self) -> Vec<MemberView> {
        match &self.kind {
            RoomKind::Passphrase { heard, .. } => heard
                .iter()
                .map(|(k, nick)| member_view(k, nick, false))
                .collect(),
            RoomKind::Invite(g) => g
                .members()
                .iter()
                .map(|m| member_view(&m.key, &m.nick, m.admin))
                .collect(),
        }
    }
}

fn member_view(key: &Key, nick: &str, admin: bool) -> MemberView {
    MemberView {
        peer_id: peer_id_of_bytes(key),
        fingerprint: Fingerprint::of_key_bytes(key),
        nick: nick.to_owned(),
        admin,
    }
}

impl Private {
    /// The rooms kept in the store, with their operations; and the names for `Io::private`.
    pub(super) fn load(
        store: &Store,
        seal: EncryptionKey,
        me: Key,
    ) -> Result<(Self, Names), Error> {
        let mut this = Self {
            rooms: HashMap::new(),
            seal,
            told: HashMap::new(),
        };
        let mut names = HashMap::new();
        for row in store.private_rooms()? {
            let Some(id) = RoomId::from_target(&row.id) else {
                continue;
            };
            let secret = Secret::from_bytes(row.secret);
            let kind = if row.kind == PASSPHRASE {
                RoomKind::Passphrase {
                    room: PassphraseRoom::from_secret(id, secret),
                    heard: BTreeMap::new(),
                }
            } else {
                let mut group = Group::joined(id, secret, me, this.seal.clone());
                feed_stored_ops(store, &row.id, &mut group)?;
                RoomKind::Invite(Box::new(group))
            };
            let room = Room {
                name: row.name,
                kind,
            };
            names.insert(row.id.clone(), (room.name.clone(), room.kind()));
            this.rooms.insert(row.id, room);
        }
        Ok((this, names))
    }

    /// At start: what arrived before its key was here is opened now.
    pub(super) fn start(&mut self, ctx: &mut Ctx<'_>) {
        let targets: Vec<String> = self.rooms.keys().cloned().collect();
        for t in targets {
            self.open_waiting(&t, ctx);
        }
    }

    /// Every few seconds: operations that waited too long for their parents are refused.
    pub(super) fn maintain(&mut self, ctx: &mut Ctx<'_>) {
        let now = now_ms();
        for room in self.rooms.values_mut() {
            if let RoomKind::Invite(g) = &mut room.kind {
                let n = g.expire(now) as u64;
                if n > 0 {
                    *ctx.io
                        .stats
                        .private_refused
                        .entry(Refusal::UnknownParents.as_str())
                        .or_default() += n;
                }
            }
        }
    }

    /// A checked private envelope (a message or an operation), whichever path brought it.
    pub(super) fn on_envelope(
        &mut self,
        env: Envelope,
        from: Option<PeerId>,
        synced: bool,
        ctx: &mut Ctx<'_>,
    ) {
        let target = env.target().to_owned();
        let Some(room) = self.rooms.get_mut(&target) else {
            // A relay's copy: kept to relay and sync, never opened.
            let sealed = if env.kind() == Kind::Op {
                Sealed::Op
            } else {
                Sealed::Unread
            };
            let mut stored = StoredMessage::private(&env, sealed, None);
            stored.synced = synced;
            ctx.inbound.queue_for_store(ctx.io, ctx.notes, env, stored);
            return;
        };
        if env.kind() == Kind::Op {
            let mut stored = StoredMessage::private(&env, Sealed::Op, None);
            stored.synced = synced;
            let outcome = match &mut room.kind {
                RoomKind::Invite(g) => Some(g.offer(&env, now_ms())),
                RoomKind::Passphrase { .. } => None,
            };
            ctx.inbound
                .queue_for_store(ctx.io, ctx.notes, env.clone(), stored);
            match outcome {
                Some(OpOutcome::Valid(_)) => self.ops_changed(&target, ctx),
                Some(OpOutcome::Refused(r)) => self.refused(r, from, &env, ctx),
                _ => {}
            }
            return;
        }
        let opened = room.open(&env);
        let (sealed, shown) = match opened {
            Ok(text) => {
                ctx.io.stats.private_opened += 1;
                if let RoomKind::Passphrase { heard, .. } = &mut room.kind {
                    let author = *env.author().as_bytes();
                    if heard.len() < MAX_HEARD || heard.contains_key(&author) {
                        heard.insert(author, text.nick.clone());
                    }
                }
                (Sealed::Read, Some(text))
            }
            Err(Unread::Refused(r)) => {
                self.refused(r, from, &env, ctx);
                (Sealed::Unread, None)
            }
            Err(Unread::Later | Unread::NoKey) => (Sealed::Unread, None),
        };
        let mut stored = StoredMessage::private(&env, sealed, shown);
        stored.synced = synced;
        ctx.inbound.queue_for_store(ctx.io, ctx.notes, env, stored);
    }

    /// A private envelope of a room we are in, refused: counted, a strike when the neighbour
    /// that handed it over is its author (it knew better), and for a passphrase room's message
    /// that does not open, the user told (at most every [`TELL_EVERY`]).
    fn refused(&mut self, r: Refusal, from: Option<PeerId>, env: &Envelope, ctx: &mut Ctx<'_>) {
        *ctx.io.stats.private_refused.entry(r.as_str()).or_default() += 1;
        let target = env.target();
        let Some(room) = self.rooms.get(target) else {
            return;
        };
        let passphrase = matches!(room.kind, RoomKind::Passphrase { .. });
        tracing::debug!(room = %room.name, "refused a private envelope: {}", r.as_str());
        if passphrase && r == Refusal::Unreadable {
            let now = Instant::now();
            let due = self
                .told
                .get(target)
                .is_none_or(|t| now.saturating_duration_since(*t) >= TELL_EVERY);
            if due {
                self.told.insert(target.to_owned(), now);
                ctx.io.emit(Event::Warning(format!(
                    "a message in #{} does not open with this room's passphrase: someone uses \
                     this room name with another passphrase, or yours is not theirs",
                    room.name
                )));
            }
            // Another group may use the name honestly: no strike.
            return;
        }
        if let Some(p) = from {
            if key_of_peer_id(&p).as_ref() == Some(env.author().as_bytes()) {
                ctx.io.refuse(p, Reason::Malformed, Instant::now());
            }
        }
    }

    /// Operations of `target` became valid: what waited for their keys opens, and the members
    /// are told.
    fn ops_changed(&mut self, target: &str, ctx: &mut Ctx<'_>) {
        self.open_waiting(target, ctx);
        let Some(room) = self.rooms.get(target) else {
            return;
        };
        let members = room.members();
        let me = peer_id_of_bytes(&ctx.io.me());
        if !members.iter().any(|m| m.peer_id == me) {
            tracing::info!(room = %room.name, "no longer a member");
        }
        ctx.io.emit(Event::Room(api::Event::Members {
            room: room.name.clone(),
            members: members.iter().map(crate::api::member).collect(),
        }));
    }

    /// Opens the stored unread messages of `target` that open now, and shows them.
    fn open_waiting(&mut self, target: &str, ctx: &mut Ctx<'_>) {
        ctx.flush();
        let Some(room) = self.rooms.get_mut(target) else {
            return;
        };
        let waiting = match ctx
            .io
            .store
            .sealed_envelopes(target, Sealed::Unread, RETRY_LIMIT)
        {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("reading a private room's unread messages: {e}");
                return;
            }
        };
        for bytes in waiting {
            let Ok(env) = Envelope::open_trusted(bytes) else {
                continue;
            };
            let Ok(text) = room.open(&env) else {
                continue;
            };
            if let RoomKind::Passphrase { heard, .. } = &mut room.kind {
                if heard.len() < MAX_HEARD {
                    heard.insert(*env.author().as_bytes(), text.nick.clone());
                }
            }
            match ctx.io.store.mark_read(&env.id(), &text.nick, &text.text) {
                Ok(Some(seq)) => {
                    ctx.io.stats.private_opened += 1;
                    let mut m = StoredMessage::private(&env, Sealed::Read, Some(text));
                    m.seq = seq;
                    m.synced = true;
                    let view = ctx.io.view(m);
                    ctx.io.emit(Event::Message(view));
                }
                Ok(None) => {}
                Err(e) => {
                    ctx.io.write_failed(
                        super::disk::Write::Other("a private room's message, opened"),
                        &e,
                    );
                    return;
                }
            }
        }
    }

    /// Joins the passphrase room `room` under `name`; false if joined already.
    pub(super) fn join_passphrase(
        &mut self,
        name: &str,
        room: PassphraseRoom,
        ctx: &mut Ctx<'_>,
    ) -> Result<bool, Error> {
        let target = room.id().target();
        if self.rooms.contains_key(&target) {
            return Ok(false);
        }
        name_free(name, ctx.io)?;
        let row = PrivateRoomRow {
            id: target.clone(),
            kind: PASSPHRASE,
            name: name.to_owned(),
            secret: *room.secret().as_bytes(),
        };
        let kind = RoomKind::Passphrase {
            room,
            heard: BTreeMap::new(),
        };
        self.add(row, kind, ctx)?;
        self.open_waiting(&target, ctx);
        Ok(true)
    }

    /// Creates an invite room named `name`: its first operation, stored; the caller publishes.
    pub(super) fn create(&mut self, name: &str, ctx: &mut Ctx<'_>) -> Result<Envelope, Error> {
        let name = room::normalize_room(name)?;
        name_free(&name, ctx.io)?;
        let (group, env) = Group::create(
            &ctx.io.key,
            self.seal.clone(),
            &name,
            &ctx.io.nick,
            now_ms(),
            &mut rand::thread_rng(),
        )?;
        let row = PrivateRoomRow {
            id: group.id().target(),
            kind: INVITE,
            name,
            secret: *group.roster_key().as_bytes(),
        };
        self.add(row, RoomKind::Invite(Box::new(group)), ctx)?;
        self.store_own(std::slice::from_ref(&env), None, ctx)?;
        Ok(env)
    }

    /// An invite came by DM from `from`: the room is joined (under its name, or the name with a
    /// number when taken), its operations already stored here taken, and the user told.
    pub(super) fn on_invite(&mut self, invite: Invite, from: Key, ctx: &mut Ctx<'_>) {
        let target = invite.room.target();
        if self.rooms.contains_key(&target) {
            return;
        }
        let base = room::normalize_room(&invite.name).unwrap_or_else(|_| "private".into());
        let name = (1..100)
            .map(|n| {
                if n == 1 {
                    base.clone()
                } else {
                    format!("{base}-{n}")
                }
            })
            .find(|n| name_free(n, ctx.io).is_ok())
            .unwrap_or_else(|| target.clone());
        let mut group = Group::joined(
            invite.room,
            invite.roster_key.clone(),
            ctx.io.me(),
            self.seal.clone(),
        );
        ctx.flush();
        if let Err(e) = feed_stored_ops(&ctx.io.store, &target, &mut group) {
            tracing::warn!("reading a private room's operations: {e}");
        }
        let row = PrivateRoomRow {
            id: target.clone(),
            kind: INVITE,
            name: name.clone(),
            secret: *invite.roster_key.as_bytes(),
        };
        if let Err(e) = self.add(row, RoomKind::Invite(Box::new(group)), ctx) {
            ctx.io.emit(Event::Warning(format!(
                "could not join the private room #{name} you were invited to: {e}"
            )));
            return;
        }
        ctx.io.emit(Event::Room(api::Event::Joined {
            room: name,
            private: Some(PrivateKind::Invite.as_str().to_owned()),
            by: Some(peer_id_of_bytes(&from).to_string()),
        }));
        self.ops_changed(&target, ctx);
    }

    fn add(&mut self, row: PrivateRoomRow, kind: RoomKind, ctx: &mut Ctx<'_>) -> Result<(), Error> {
        ctx.io.store.add_private_room(&row, now_ms())?;
        let room = Room {
            name: row.name,
            kind,
        };
        ctx.io
            .private
            .insert(row.id.clone(), (room.name.clone(), room.kind()));
        if !ctx.io.rooms.contains(&row.id) {
            ctx.io.rooms.push(row.id.clone());
        }
        self.rooms.insert(row.id, room);
        ctx.notes.push(super::context::Note::RoomsChanged);
        ctx.notes.push(super::context::Note::SyncAll);
        Ok(())
    }

    /// Leaves the private room `target`: an invite room's members learn it (the envelopes to
    /// publish); its key is forgotten here, what was read stays in the history.
    pub(super) fn leave(
        &mut self,
        target: &str,
        ctx: &mut Ctx<'_>,
    ) -> Result<Vec<Envelope>, Error> {
        let Some(room) = self.rooms.get_mut(target) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        if let RoomKind::Invite(g) = &mut room.kind {
            let me = ctx.io.me();
            if g.is_member(&me) {
                out = g.remove(&ctx.io.key, me, now_ms(), &mut rand::thread_rng())?;
            }
        }
        self.store_own(&out, None, ctx)?;
        ctx.io.store.remove_private_room(target)?;
        self.rooms.remove(target);
        ctx.io.private.remove(target);
        ctx.io.rooms.retain(|r| r != target);
        ctx.notes.push(super::context::Note::RoomsChanged);
        Ok(out)
    }

    /// Seals `text` for the private room `target`: the envelopes to publish (a rekey may come
    /// before the message, which is last), stored and shown here.
    pub(super) fn send(
        &mut self,
        target: &str,
        text: String,
        ctx: &mut Ctx<'_>,
    ) -> Result<Vec<Envelope>, Error> {
        let room = self
            .rooms
            .get_mut(target)
            .ok_or_else(|| Error::NotInRoom(target.to_owned()))?;
        let message = Text {
            nick: ctx.io.nick.clone(),
            text,
        };
        let mut rng = rand::thread_rng();
        let envs = match &mut room.kind {
            RoomKind::Passphrase { room, .. } => {
                vec![room.seal(&ctx.io.key, &message, now_ms(), &mut rng)?]
            }
            RoomKind::Invite(g) => g.seal(&ctx.io.key, &message, now_ms(), &mut rng)?,
        };
        self.store_own(&envs, Some(message), ctx)?;
        Ok(envs)
    }

    /// Adds `key` (its DM key `seal`, its nick) to the invite room `target`: the envelopes to
    /// publish, and the invite to send them.
    pub(super) fn invite(
        &mut self,
        target: &str,
        key: Key,
        seal: SealKey,
        nick: &str,
        ctx: &mut Ctx<'_>,
    ) -> Result<(Vec<Envelope>, Invite), Error> {
        let g = self.group(target)?;
        let envs = g.add(
            &ctx.io.key,
            key,
            seal,
            nick,
            false,
            now_ms(),
            &mut rand::thread_rng(),
        )?;
        let invite = g.invite();
        self.store_own(&envs, None, ctx)?;
        self.ops_changed(target, ctx);
        Ok((envs, invite))
    }

    /// Removes the member `who` names (nick, fingerprint or peer id) from `target`: the
    /// envelopes to publish, and whom.
    pub(super) fn remove(
        &mut self,
        target: &str,
        who: &str,
        ctx: &mut Ctx<'_>,
    ) -> Result<(Vec<Envelope>, PeerId), Error> {
        let key = self.member_named(target, who)?;
        let g = self.group(target)?;
        let envs = g.remove(&ctx.io.key, key, now_ms(), &mut rand::thread_rng())?;
        self.store_own(&envs, None, ctx)?;
        self.ops_changed(target, ctx);
        Ok((envs, peer_id_of_bytes(&key)))
    }

    fn group(&mut self, target: &str) -> Result<&mut Group, Error> {
        match self.rooms.get_mut(target).map(|r| &mut r.kind) {
            Some(RoomKind::Invite(g)) => Ok(g),
            Some(RoomKind::Passphrase { .. }) => Err(Error::Private(
                "a passphrase room has no members list: everyone with the passphrase is in".into(),
            )),
            None => Err(Error::NotInRoom(target.to_owned())),
        }
    }

    /// The member of `target` that `who` names: a peer id, a fingerprint (or its first eight
    /// digits or more), or a nick that only one member has.
    fn member_named(&self, target: &str, who: &str) -> Result<Key, Error> {
        let members = self
            .rooms
            .get(target)
            .map(Room::members)
            .ok_or_else(|| Error::NotInRoom(target.to_owned()))?;
        let who = who.trim();
        let hex: String = who
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        let found: Vec<&MemberView> = members
            .iter()
            .filter(|m| {
                m.peer_id.to_string() == who
                    || m.nick == who
                    || (hex.len() >= 8 && hex::encode(m.fingerprint.as_bytes()).starts_with(&hex))
            })
            .collect();
        match found.as_slice() {
            [one] => key_of_peer_id(&one.peer_id).ok_or(Error::UnknownPerson(who.to_owned())),
            [] => Err(Error::UnknownPerson(who.to_owned())),
            many => Err(Error::AmbiguousNick {
                nick: who.to_owned(),
                candidates: many.iter().map(|m| m.fingerprint.to_string()).collect(),
            }),
        }
    }

    /// The members of `target` (for a passphrase room: the people heard in it).
    pub(super) fn members(&self, target: &str) -> Result<Vec<MemberView>, Error> {
        self.rooms
            .get(target)
            .map(Room::members)
            .ok_or_else(|| Error::NotInRoom(target.to_owned()))
    }

    /// The joined rooms, public and private, in the order joined.
    pub(super) fn rooms(&self, io: &Io) -> Vec<RoomView> {
        io.rooms
            .iter()
            .map(|t| match self.rooms.get(t) {
                Some(r) => RoomView {
                    name: r.name.clone(),
                    private: Some(r.kind()),
                    members: Some(r.members().len() as u64),
                },
                None => RoomView {
                    name: t.clone(),
                    private: None,
                    members: None,
                },
            })
            .collect()
    }

    /// Stores our own private envelopes (operations unshown; the message, last, read and shown
    /// as `message`) before they leave.
    fn store_own(
        &self,
        envs: &[Envelope],
        message: Option<Text>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Error> {
        for env in envs {
            let stored = if env.kind() == Kind::Sealed {
                ctx.io.stats.published += 1;
                StoredMessage::private(env, Sealed::Read, message.clone())
            } else {
                StoredMessage::private(env, Sealed::Op, None)
            };
            ctx.inbound
                .store_own(ctx.io, ctx.notes, env.clone(), stored)?;
        }
        Ok(())
    }
}

/// Feeds `group` the operations of its room stored here (relayed before we joined, or ours
/// before a restart).
fn feed_stored_ops(store: &Store, target: &str, group: &mut Group) -> Result<(), Error> {
    let now = now_ms();
    for bytes in store.sealed_envelopes(target, Sealed::Op, 2 * MAX_OPS)? {
        if let Ok(env) = Envelope::open_trusted(bytes) {
            group.offer(&env, now);
        }
    }
    Ok(())
}

/// A name no joined room has.
fn name_free(name: &str, io: &Io) -> Result<(), Error> {
    let taken = io.rooms.iter().any(|r| r == name) || io.private.values().any(|(n, _)| n == name);
    if taken {
        return Err(Error::Private(format!(
            "a room named #{name} is joined already; leave it first or pick another name"
        )));
    }
    Ok(())
}
