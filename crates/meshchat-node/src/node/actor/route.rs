//! Direct messages: wires the routing table ([`meshchat_core::routing::Table`]) and the outbox
//! ([`meshchat_core::dm::Outbox`]) to the streams of `/meshchat/route/1`, the broadcast trees
//! (profiles, flooded DMs), the store and the clock, in the pattern of the sync and broadcast
//! handlers: the state machines decide, this module carries out what they ask.
//!
//! - A neighbour is a connected peer: the connection is the table's `NeighborUp` (cost 1), our
//!   route stream to it failing or the last connection closing its `NeighborDown`.
//! - Frames from a neighbour pass the guard (rate, blocks) and are decoded by tag; a malformed
//!   one is a strike.
//! - What the outbox persists goes to `dm_items` at once (custody survives a restart); our own
//!   DMs are in `dms` before they leave, delivered ones are shown only when their row was new.
//! - Profiles: ours is signed with a new version (its signing time) at every start, on a nick
//!   change and every [`PROFILE_INTERVAL`], and published on the trees; everyone's newest is kept
//!   in the directory and in `profiles`, which history sync serves.

use std::time::{Duration, Instant};

use libp2p::PeerId;
use meshchat_core::dm::{
    self, Directory, EncryptionKey, Frame, Input, Outbox, Output, Profile, ProfileVerdict, Role,
    Stored,
};
use meshchat_core::guard::Admit;
use meshchat_core::inbound::{self, Checked, Reason};
use meshchat_core::room::Text;
use meshchat_core::routed::{self, Routed};
use meshchat_core::routing::{self, Table};
use meshchat_core::{Envelope, Fingerprint, MessageId, PublicKey};

use super::Actor;
use crate::behaviour::broadcast::{Inbound, Links};
use crate::node::{
    key_of_peer_id, now_ms, peer_id_of_bytes, Conversation, DmSent, DmState, DmView, Error, Event,
    ProfileView, RouteView,
};
use crate::store::{DmRow, ItemRow, ProfileRow};

/// A node's routing id: its Ed25519 public key.
pub(super) type Key = [u8; 32];

/// Hop limit of the routed envelopes we originate: more than any mesh's diameter.
const ROUTED_HOP_LIMIT: u16 = 64;

/// Profiles kept (about 150 bytes each in memory).
pub(super) const DIRECTORY_CAPACITY: usize = 10_000;
/// Our profile is signed afresh and published this often (and at start, and on a nick change),
/// so it stays inside every node's sync window and late joiners get it on the trees too.
pub(super) const PROFILE_INTERVAL: Duration = Duration::from_secs(3600);

/// DM state in the actor.
pub(super) struct State {
    pub(super) table: Table<Key>,
    pub(super) outbox: Outbox<Key>,
    pub(super) directory: Directory,
    pub(super) links: Links,
    pub(super) table_wake: Option<Instant>,
    pub(super) outbox_wake: Option<Instant>,
    pub(super) next_profile: Instant,
    enc: EncryptionKey,
    /// Our profile's version (its signing time, strictly increasing).
    version: u64,
    /// The seqno last written to the store.
    saved_seqno: u16,
}

impl State {
    pub(super) fn new(
        table: Table<Key>,
        outbox: Outbox<Key>,
        enc: EncryptionKey,
        links: Links,
        version: u64,
    ) -> Self {
        let saved_seqno = table.seqno();
        Self {
            table,
            outbox,
            directory: Directory::new(DIRECTORY_CAPACITY),
            links,
            table_wake: None,
            outbox_wake: None,
            next_profile: Instant::now(),
            enc,
            version,
            saved_seqno,
        }
    }

    /// The earliest of the timers.
    pub(super) fn due(&self) -> Instant {
        [self.table_wake, self.outbox_wake]
            .into_iter()
            .flatten()
            .fold(self.next_profile, Instant::min)
    }
}

fn role_code(r: Role) -> u8 {
    match r {
        Role::Own => 0,
        Role::Custody => 1,
        Role::Receipt => 2,
    }
}

fn role_of(c: u8) -> Option<Role> {
    match c {
        0 => Some(Role::Own),
        1 => Some(Role::Custody),
        2 => Some(Role::Receipt),
        _ => None,
    }
}

impl Actor {
    /// At start, before the first event: the directory from the store, the outbox's items,
    /// our profile published.
    pub(super) fn route_start(&mut self) -> Result<(), Error> {
        for (row, _) in self.store.profiles(DIRECTORY_CAPACITY)? {
            let Ok(author) = PublicKey::from_bytes(&row.author) else {
                continue;
            };
            let p = Profile {
                nick: row.nick,
                seal_key: dm::SealKey(row.seal_key),
                version: row.version,
            };
            self.route.directory.offer(&author, p);
        }
        let now = now_ms();
        for item in self.store.items()? {
            let (Some(role), Ok(frame)) = (role_of(item.role), Frame::<Key>::decode(&item.frame))
            else {
                tracing::warn!("dropping an unreadable stored DM item");
                let _ = self.store.remove_item(item.role, &item.id);
                continue;
            };
            self.route.outbox.restore(
                Stored {
                    role,
                    frame,
                    from: item.from,
                    attempts: item.attempts,
                    hold_until_ms: item.hold_until_ms,
                },
                now,
            );
        }
        self.route.links.start();
        self.feed_table(routing::Input::Tick);
        self.feed_outbox(Input::Tick);
        self.publish_profile();
        Ok(())
    }

    /// Signs our profile with a new version and publishes it.
    pub(super) fn publish_profile(&mut self) {
        let now = now_ms();
        self.route.version = self.route.version.saturating_add(1).max(now);
        self.route.next_profile = Instant::now() + PROFILE_INTERVAL;
        let profile = Profile {
            nick: self.nick.clone(),
            seal_key: self.route.enc.public(),
            version: self.route.version,
        };
        let env = match profile.sign(&self.key, now, rand::random()) {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!("cannot sign our profile: {e}");
                return;
            }
        };
        if let Err(e) = self
            .store
            .set_setting("profile_version", &self.route.version.to_string())
        {
            tracing::warn!("saving the profile version: {e}");
        }
        let id = env.id();
        let _ = self.take_profile(&env, profile);
        self.seen.insert(id, Instant::now());
        self.broadcast_publish(id, env.as_bytes());
    }

    /// A checked profile envelope (from the trees, sync, or our own): kept if it is its
    /// author's newest (then true).
    pub(super) fn take_profile(&mut self, env: &Envelope, p: Profile) -> bool {
        let row = ProfileRow {
            author: *env.author().as_bytes(),
            version: p.version,
            nick: p.nick.clone(),
            seal_key: p.seal_key.0,
            id: env.id(),
            timestamp_ms: env.timestamp_ms(),
        };
        let replaces = self.route.directory.get(&row.author).is_some();
        match self.route.directory.offer(env.author(), p) {
            ProfileVerdict::Taken => {
                self.stats.profiles_taken += 1;
                match self.store.put_profile(&row, env.as_bytes()) {
                    // The older version left the store: history sync reads its items anew.
                    Ok(_) if replaces => self.sync.changed(),
                    Ok(_) => self.sync.added(row.timestamp_ms, row.id),
                    Err(e) => tracing::warn!("storing a profile: {e}"),
                }
                true
            }
            ProfileVerdict::Stale => false,
            ProfileVerdict::Full => {
                self.stats.profiles_refused += 1;
                false
            }
        }
    }

    /// A report from the route stream tasks.
    pub(super) fn on_route(&mut self, event: Inbound) {
        match event {
            Inbound::Up { peer, link } => {
                self.route.links.on_up(&peer, link);
            }
            Inbound::Down { peer, link } => {
                let Some(was_open) = self.route.links.on_down(&peer, link) else {
                    return;
                };
                if let Some(k) = key_of_peer_id(&peer) {
                    self.feed_table(routing::Input::NeighborDown(k));
                }
                if was_open && self.connections.contains_key(&peer) {
                    // The stream broke under a standing connection: a new one, and a full dump.
                    self.route_connected(peer);
                }
            }
            Inbound::Frame { peer, bytes } => self.on_route_frame(peer, &bytes),
            Inbound::BadLength { peer, len } => {
                tracing::debug!(%peer, "route frame length {len} refused");
                self.stats.route_refused += 1;
                self.refuse(peer, Reason::TooLarge, Instant::now());
            }
        }
    }

    /// A connection to `peer` is up: open our route stream to it, and take it as a neighbour at
    /// once (what the table sends it waits in the stream's queue until the stream is open).
    /// Waiting for the stream instead would drop the peer's first dump, which can arrive
    /// before our stream is open, as coming from a stranger. A peer that does not speak the
    /// protocol is a neighbour until its stream fails to open.
    pub(super) fn route_connected(&mut self, peer: PeerId) {
        if self.route.links.has(&peer) {
            return;
        }
        self.route.links.connect(peer);
        if let Some(k) = key_of_peer_id(&peer) {
            self.feed_table(routing::Input::NeighborUp(k, 1));
        }
    }

    /// The last connection to `peer` closed.
    pub(super) fn route_disconnected(&mut self, peer: PeerId) {
        if self.route.links.has(&peer) {
            self.route.links.disconnect(&peer);
            if let Some(k) = key_of_peer_id(&peer) {
                self.feed_table(routing::Input::NeighborDown(k));
            }
        }
    }

    fn on_route_frame(&mut self, peer: PeerId, bytes: &[u8]) {
        let now = Instant::now();
        let Some(from) = key_of_peer_id(&peer) else {
            return;
        };
        if !self.route.links.has(&peer) && self.connections.contains_key(&peer) {
            self.route_connected(peer);
        }
        match self.guard.admit(peer, now) {
            Admit::Yes => {}
            Admit::OverRate => {
                self.stats.route_refused += 1;
                self.stats.rejected.count(Reason::OverRate);
                return;
            }
            Admit::Blocked => {
                self.stats.route_refused += 1;
                self.stats.rejected.count(Reason::BlockedPeer);
                return;
            }
            Admit::Flooding => {
                self.stats.route_refused += 1;
                self.stats.rejected.count(Reason::OverRate);
                self.block(peer, Reason::OverRate);
                return;
            }
        }
        let malformed = match bytes.first() {
            Some(1 | 2) => match routing::Message::<Key>::decode(bytes) {
                Ok(m) => {
                    self.feed_table(routing::Input::received(from, m));
                    return;
                }
                Err(e) => e.to_string(),
            },
            Some(3 | 4) => match Frame::<Key>::decode(bytes) {
                Ok(f) => {
                    self.feed_outbox(Input::Frame(from, f));
                    return;
                }
                Err(e) => e.to_string(),
            },
            Some(&routed::TAG_ROUTED) => match Routed::<Key>::decode(bytes) {
                Ok(r) => {
                    self.on_routed(r);
                    return;
                }
                Err(e) => e.to_string(),
            },
            _ => "unknown tag".to_owned(),
        };
        tracing::debug!(%peer, "malformed route frame: {malformed}");
        self.stats.route_refused += 1;
        self.refuse(peer, Reason::Malformed, now);
    }

    /// A routed envelope: ours to check and hand on by kind, or forwarded along our route.
    fn on_routed(&mut self, r: Routed<Key>) {
        if r.to != *self.key.public().as_bytes() {
            if r.hop_limit == 0 {
                self.stats.routed_dropped += 1;
                return;
            }
            let Some((via, _)) = self.route.table.next_hop(&r.to) else {
                self.stats.routed_dropped += 1;
                return;
            };
            let frame = Routed {
                hop_limit: r.hop_limit - 1,
                ..r
            }
            .encode();
            if self.route_send(&via, frame) {
                self.stats.routed_forwarded += 1;
            } else {
                self.stats.routed_dropped += 1;
            }
            return;
        }
        // Relays do not check what they forward, so a bad envelope here is its author's doing,
        // not the neighbour's: counted, no strike.
        match inbound::check(r.envelope, now_ms(), &mut self.author_keys) {
            Ok(Checked::Tracker(env)) => {
                self.stats.routed_received += 1;
                self.on_tracker_envelope(env, false);
            }
            Ok(_) | Err(_) => self.stats.routed_refused += 1,
        }
    }

    /// Sends a signed envelope to `to` along our route; false if there is none.
    pub(super) fn send_routed(&mut self, to: Key, envelope: &Envelope) -> bool {
        let Some((via, _)) = self.route.table.next_hop(&to) else {
            return false;
        };
        let frame = Routed {
            hop_limit: ROUTED_HOP_LIMIT,
            to,
            envelope: envelope.as_bytes().to_vec(),
        }
        .encode();
        self.route_send(&via, frame)
    }

    /// The timers: the table's, the outbox's, the profile's.
    pub(super) fn route_tick(&mut self) {
        let now = Instant::now();
        if self.route.table_wake.is_some_and(|t| t <= now) {
            self.route.table_wake = None;
            self.feed_table(routing::Input::Tick);
        }
        if self.route.outbox_wake.is_some_and(|t| t <= now) {
            self.route.outbox_wake = None;
            self.feed_outbox(Input::Tick);
        }
        if self.route.next_profile <= now {
            self.publish_profile();
        }
    }

    /// Hands one input to the routing table and carries out what it asks.
    pub(super) fn feed_table(&mut self, input: routing::Input<Key>) {
        let outs = self.route.table.handle(input, Instant::now());
        for out in outs {
            match out {
                routing::Output::Send(to, message) => {
                    self.route_send(&to, message.encode());
                }
                routing::Output::WakeAt(at) => self.route.table_wake = Some(at),
                routing::Output::Changed(dests) => {
                    self.tracker_reachability(&dests);
                    self.feed_outbox(Input::RoutesChanged(dests));
                }
            }
        }
        let seqno = self.route.table.seqno();
        if seqno != self.route.saved_seqno {
            self.route.saved_seqno = seqno;
            if let Err(e) = self.store.set_setting("routing_seqno", &seqno.to_string()) {
                tracing::warn!("saving the routing seqno: {e}");
            }
        }
    }

    /// Queues a frame on our route stream to the neighbour `to`; false if it could not be.
    fn route_send(&mut self, to: &Key, frame: Vec<u8>) -> bool {
        let peer = peer_id_of_bytes(to);
        match self.route.links.send(&peer, frame, Instant::now()) {
            Ok(()) => true,
            Err(crate::behaviour::broadcast::SendError::Stalled) => {
                // The neighbour takes nothing: close the link and dial again.
                self.route.links.disconnect(&peer);
                self.feed_table(routing::Input::NeighborDown(*to));
                if self.connections.contains_key(&peer) {
                    self.route_connected(peer);
                }
                false
            }
            Err(_) => false,
        }
    }

    /// Hands one input to the outbox and carries out what it asks.
    pub(super) fn feed_outbox(&mut self, input: Input<Key>) {
        let now = now_ms();
        let outs = self.route.outbox.handle(input, &self.route.table, now);
        let mut failed = Vec::new();
        // A DM for us that could not be stored (its envelope id): the receipt the outbox sends
        // for it in the same call is withheld and withdrawn, so that the sender tries again
        // rather than hearing it arrived.
        let mut unstored: Option<MessageId> = None;
        let mut withdrawn = None;
        for out in outs {
            let receipt_of = match &out {
                Output::Forward(_, Frame::Receipt(r)) => Some(r.receipt.dm),
                Output::Persist(s) => match &s.frame {
                    Frame::Receipt(r) => Some(r.receipt.dm),
                    Frame::Dm(_) => None,
                },
                _ => None,
            };
            if let (Some(envelope), Some(dm)) = (unstored, receipt_of) {
                unstored = None;
                withdrawn = Some((dm, envelope));
                continue;
            }
            match out {
                Output::Forward(to, frame) => {
                    if self.route_send(&to, frame.encode()) {
                        self.stats.dm_frames_sent += 1;
                    } else {
                        failed.push(frame);
                    }
                }
                Output::Flood(dm) => {
                    let (id, payload) = dm::flood_payload(&dm);
                    let id = MessageId(id.0);
                    self.seen.insert(id, Instant::now());
                    self.broadcast_publish(id, &payload);
                }
                Output::Persist(s) => {
                    let id = match &s.frame {
                        Frame::Dm(d) => d.id().0,
                        Frame::Receipt(r) => r.receipt.dm.0,
                    };
                    let row = ItemRow {
                        role: role_code(s.role),
                        id,
                        frame: s.frame.encode(),
                        from: s.from,
                        attempts: s.attempts,
                        hold_until_ms: s.hold_until_ms,
                    };
                    if let Err(e) = self.store.put_item(&row) {
                        tracing::warn!("storing a DM item: {e}");
                        self.emit(Event::Warning(format!(
                            "could not store a direct message held here ({e}); it is kept in \
                             memory until the node stops"
                        )));
                    }
                }
                Output::Remove(slot) => {
                    if let Err(e) = self.store.remove_item(role_code(slot.role), &slot.id.0) {
                        tracing::warn!("removing a DM item: {e}");
                    }
                }
                Output::Deliver(opened) => {
                    let envelope = opened.envelope.id();
                    if !self.deliver_dm(*opened) {
                        unstored = Some(envelope);
                    }
                }
                Output::Status(id, status) => self.dm_status(id.0, status.into()),
                Output::WakeAt(at) => {
                    let wait = Duration::from_millis(at.saturating_sub(now_ms()));
                    self.route.outbox_wake = Some(Instant::now() + wait);
                }
            }
        }
        for frame in failed {
            self.feed_outbox(Input::SendFailed(frame));
        }
        if let Some((dm, envelope)) = withdrawn {
            self.feed_outbox(Input::NotStored { dm, envelope });
        }
    }

    /// A DM for us, opened and checked: stored, and shown if it was new. False if it could not
    /// be stored.
    fn deliver_dm(&mut self, opened: dm::Opened) -> bool {
        let env = &opened.envelope;
        let author = *env.author().as_bytes();
        let row = DmRow {
            id: env.id(),
            dm_id: None,
            peer: author,
            author,
            recipient: *self.key.public().as_bytes(),
            nick: opened.text.nick.clone(),
            timestamp_ms: env.timestamp_ms(),
            text: opened.text.text.clone(),
            own: false,
            state: None,
            seq: 0,
        };
        match self.store.insert_dm(&row) {
            Ok(Some(seq)) => {
                let view = self.dm_view(DmRow { seq, ..row });
                self.emit(Event::Dm(view));
                true
            }
            Ok(None) => true,
            Err(e) => {
                tracing::warn!("storing a DM: {e}");
                self.emit(Event::Warning(format!(
                    "could not store a direct message ({e}); no receipt was sent, so its sender \
                     will send it again"
                )));
                false
            }
        }
    }

    fn dm_status(&mut self, dm_id: [u8; 32], state: DmState) {
        match self.store.set_dm_state(&dm_id, state.to_code()) {
            Ok(Some((id, to))) => self.emit(Event::DmStatus {
                id,
                to: peer_id_of_bytes(&to),
                state,
            }),
            Ok(None) => {}
            Err(e) => tracing::warn!("saving a DM's state: {e}"),
        }
    }

    pub(super) fn dm_view(&self, r: DmRow) -> DmView {
        DmView {
            id: r.id,
            peer: peer_id_of_bytes(&r.peer),
            from: peer_id_of_bytes(&r.author),
            to: peer_id_of_bytes(&r.recipient),
            fingerprint: Fingerprint::of_key_bytes(&r.author),
            nick: r.nick,
            timestamp_ms: r.timestamp_ms,
            text: r.text,
            own: r.own,
            state: r.state.map(DmState::from_code),
            seq: r.seq,
        }
    }

    /// Who `who` names: a peer id, a nick (one person only), or a fingerprint (whole or a
    /// prefix of at least eight digits, spaces ignored). Returns every match for a shared nick
    /// when `all`.
    fn resolve(&self, who: &str, all: bool) -> Result<Vec<Key>, Error> {
        let who = who.trim();
        if let Ok(peer) = who.parse::<PeerId>() {
            return key_of_peer_id(&peer)
                .map(|k| vec![k])
                .ok_or_else(|| Error::UnknownPerson(who.to_owned()));
        }
        let by_nick: Vec<Key> = self.route.directory.by_nick(who).copied().collect();
        if by_nick.len() == 1 || (all && !by_nick.is_empty()) {
            return Ok(by_nick);
        }
        if by_nick.len() > 1 {
            return Err(Error::AmbiguousNick {
                nick: who.to_owned(),
                candidates: by_nick
                    .iter()
                    .map(|k| Fingerprint::of_key_bytes(k).to_string())
                    .collect(),
            });
        }
        let hex: String = who.chars().filter(|c| !c.is_whitespace()).collect();
        let hex = hex.to_ascii_lowercase();
        if hex.len() >= 8 && hex.len() <= 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let me = *self.key.public().as_bytes();
            let found: Vec<Key> = self
                .route
                .directory
                .keys()
                .chain(std::iter::once(me))
                .filter(|k| hex::encode(Fingerprint::of_key_bytes(k).as_bytes()).starts_with(&hex))
                .collect();
            if found.len() == 1 || (all && !found.is_empty()) {
                return Ok(found);
            }
            if found.len() > 1 {
                return Err(Error::AmbiguousNick {
                    nick: who.to_owned(),
                    candidates: found
                        .iter()
                        .map(|k| Fingerprint::of_key_bytes(k).to_string())
                        .collect(),
                });
            }
        }
        Err(Error::UnknownPerson(who.to_owned()))
    }

    /// `/msg`: signs, seals, stores and sends a DM.
    pub(super) fn send_dm(&mut self, to: &str, text: String) -> Result<DmSent, Error> {
        let key = self.resolve(to, false)?[0];
        if key == *self.key.public().as_bytes() {
            return Err(Error::ToSelf);
        }
        let peer = peer_id_of_bytes(&key);
        let profile = self
            .route
            .directory
            .get(&key)
            .cloned()
            .ok_or(Error::NoProfile(peer))?;
        let recipient = PublicKey::from_bytes(&key).map_err(|_| Error::NoProfile(peer))?;
        let message = Text {
            nick: self.nick.clone(),
            text,
        };
        let now = now_ms();
        let env = dm::sign_dm(&self.key, &recipient, &message, now, rand::random())?;
        let limits = *self.route.outbox.limits();
        let sealed = dm::seal(
            &env,
            key,
            profile.seal_key,
            now + limits.max_lifetime_ms,
            limits.hop_limit,
            &mut rand::thread_rng(),
        )?;
        let id = env.id();
        let row = DmRow {
            id,
            dm_id: Some(sealed.id().0),
            peer: key,
            author: *self.key.public().as_bytes(),
            recipient: key,
            nick: message.nick,
            timestamp_ms: now,
            text: message.text,
            own: true,
            state: Some(DmState::Queued.to_code()),
            seq: 0,
        };
        // On disk before it leaves, like a room message.
        let seq = self.store.insert_dm(&row)?.unwrap_or(0);
        let view = self.dm_view(DmRow { seq, ..row });
        self.emit(Event::Dm(view));
        self.emit(Event::DmStatus {
            id,
            to: peer,
            state: DmState::Queued,
        });
        self.feed_outbox(Input::Send(sealed));
        self.stats.published += 1;
        let state = self
            .store
            .dm_state(&id)?
            .map_or(DmState::Queued, DmState::from_code);
        Ok(DmSent {
            id,
            to: peer,
            state,
        })
    }

    pub(super) fn dm_history(
        &self,
        with: &str,
        limit: usize,
        before: Option<(u64, MessageId)>,
    ) -> Result<Vec<DmView>, Error> {
        let key = self.resolve(with, false)?[0];
        Ok(self
            .store
            .dm_history(&key, limit, before)?
            .into_iter()
            .map(|r| self.dm_view(r))
            .collect())
    }

    pub(super) fn conversations(&self) -> Result<Vec<Conversation>, Error> {
        Ok(self
            .store
            .conversations()?
            .into_iter()
            .map(|c| {
                let nick = self
                    .route
                    .directory
                    .get(&c.peer)
                    .map(|p| p.nick.clone())
                    .unwrap_or(c.nick);
                Conversation {
                    peer: peer_id_of_bytes(&c.peer),
                    nick,
                    fingerprint: Fingerprint::of_key_bytes(&c.peer),
                    last_ms: c.last_ms,
                    count: c.count,
                }
            })
            .collect())
    }

    pub(super) fn routes(&self) -> Vec<RouteView> {
        self.route
            .table
            .routes(Instant::now())
            .into_iter()
            .filter(|r| r.dest != *self.key.public().as_bytes())
            .map(|r| RouteView {
                dest: peer_id_of_bytes(&r.dest),
                next_hop: peer_id_of_bytes(&r.next_hop),
                hops: r.hops,
                age_ms: r.age.as_millis() as u64,
                nick: self.route.directory.get(&r.dest).map(|p| p.nick.clone()),
            })
            .collect()
    }

    pub(super) fn whois(&self, who: &str) -> Result<Vec<ProfileView>, Error> {
        let me = *self.key.public().as_bytes();
        let mut out = Vec::new();
        for key in self.resolve(who, true)? {
            let peer = peer_id_of_bytes(&key);
            let Some(p) = self.route.directory.get(&key) else {
                return Err(Error::NoProfile(peer));
            };
            out.push(ProfileView {
                peer_id: peer,
                fingerprint: Fingerprint::of_key_bytes(&key),
                nick: p.nick.clone(),
                version: p.version,
                hops: if key == me {
                    Some(0)
                } else {
                    self.route.table.next_hop(&key).map(|(_, h)| h)
                },
                connected: self.connections.contains_key(&peer),
            });
        }
        Ok(out)
    }

    /// A nick for `peer` from its profile.
    pub(super) fn nick_of(&self, peer: &PeerId) -> Option<String> {
        let key = key_of_peer_id(peer)?;
        self.route.directory.get(&key).map(|p| p.nick.clone())
    }
}
