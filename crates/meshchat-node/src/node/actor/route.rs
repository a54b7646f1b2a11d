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
use meshchat_core::inbound::Reason;
use meshchat_core::room::Text;
use meshchat_core::routed::{RouteFrame, Routed, Step};
use meshchat_core::routing::{self, Table};
use meshchat_core::transfer::wire::Offer;
use meshchat_core::{Envelope, Fingerprint, Keypair, MessageId, PublicKey};
use tokio::sync::mpsc;

use super::context::{Ctx, Key, Note};
use super::disk::Write;
use super::inbound::{Verdict, Via};
use crate::behaviour::broadcast::{Inbound, Links};
use crate::node::{
    key_of_peer_id, now_ms, peer_id_of_bytes, Conversation, DmSent, DmState, DmView, Error, Event,
    ProfileView, RouteView,
};
use crate::store::{DmRow, ItemRow, ProfileRow};

/// What a sealed DM carries.
enum Content<'a> {
    Text(String),
    Offer(&'a Offer),
    Invite(&'a meshchat_core::private::Invite),
}

/// Hop limit of the routed envelopes we originate: more than any mesh's diameter.
const ROUTED_HOP_LIMIT: u16 = 64;

/// Profiles kept (about 150 bytes each in memory).
pub(super) const DIRECTORY_CAPACITY: usize = 10_000;
/// Our profile is signed afresh and published this often (and at start, and on a nick change),
/// so it stays inside every node's sync window and late joiners get it on the trees too.
pub(super) const PROFILE_INTERVAL: Duration = Duration::from_secs(3600);

/// The direct-message handler: routing table, outbox, profiles, route streams.
pub(super) struct Direct {
    table: Table<Key>,
    outbox: Outbox<Key>,
    directory: Directory,
    links: Links,
    /// Reports of the route stream tasks; taken by the loop.
    reports: Option<mpsc::Receiver<Inbound>>,
    next_profile: Instant,
    enc: EncryptionKey,
    /// Our profile's version (its signing time, strictly increasing).
    version: u64,
    /// The seqno last written to the store.
    saved_seqno: u16,
}

impl Direct {
    fn new(
        table: Table<Key>,
        outbox: Outbox<Key>,
        enc: EncryptionKey,
        (links, reports): (Links, mpsc::Receiver<Inbound>),
        version: u64,
    ) -> Self {
        let saved_seqno = table.seqno();
        Self {
            table,
            outbox,
            directory: Directory::new(DIRECTORY_CAPACITY),
            links,
            reports: Some(reports),
            next_profile: Instant::now(),
            enc,
            version,
            saved_seqno,
        }
    }

    /// The handler for our key, on the swarm's route streams.
    pub(super) fn open(
        key: &Keypair,
        config: &crate::Config,
        swarm: &libp2p::Swarm<crate::behaviour::Behaviour>,
        seqno: u16,
        version: u64,
    ) -> Self {
        let me = *key.public().as_bytes();
        let enc = EncryptionKey::derive(key);
        // The first dump at a phase of its own, like the node's other periodic rounds.
        let now = Instant::now();
        let first_dump = now + crate::first_round(config.routing.update_interval);
        Self::new(
            Table::new(me, seqno, config.routing, now).with_first_dump(first_dump),
            Outbox::new(me, key.clone(), enc.clone(), config.dm),
            enc,
            Links::with_protocol(
                &swarm.behaviour().broadcast,
                crate::behaviour::route::PROTOCOL,
                crate::behaviour::route::max_frame(),
                crate::behaviour::broadcast::Queues::MESSAGES,
            ),
            version,
        )
    }

    /// The route stream tasks' reports, for the loop to wait on.
    pub(super) fn take_reports(&mut self) -> Option<mpsc::Receiver<Inbound>> {
        self.reports.take()
    }

    /// The table's and the outbox's counters, into the node's.
    pub(super) fn stats(&self, stats: &mut crate::node::Stats) {
        stats.routing = *self.table.stats();
        stats.routes = self.table.len() as u64;
        stats.dm = *self.outbox.stats();
        stats.dm_own_held = self.outbox.held(Role::Own) as u64;
        stats.dm_custody_held = self.outbox.held(Role::Custody) as u64;
    }

    /// How many hops away `key` is (0: us), if it is reachable.
    pub(super) fn hops(&self, key: &Key, me: &Key) -> Option<u16> {
        if key == me {
            Some(0)
        } else {
            self.table.next_hop(key).map(|(_, h)| h)
        }
    }

    /// `key`'s nick, from its profile.
    pub(super) fn nick(&self, key: &Key) -> Option<String> {
        self.directory.get(key).map(|p| p.nick.clone())
    }

    /// The earliest of the timers.
    pub(super) fn due(&self) -> Instant {
        [self.table.next_deadline(), self.outbox_deadline()]
            .into_iter()
            .flatten()
            .fold(self.next_profile, Instant::min)
    }

    /// The outbox's next deadline (it runs on Unix time) as an `Instant`.
    fn outbox_deadline(&self) -> Option<Instant> {
        let at = self.outbox.next_deadline()?;
        Some(Instant::now() + Duration::from_millis(at.saturating_sub(now_ms())))
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

impl Direct {
    /// At start, before the first event: the directory from the store, the outbox's items,
    /// our profile published.
    pub(super) fn start(&mut self, ctx: &mut Ctx<'_>) -> Result<(), Error> {
        for (row, _) in ctx.io.store.profiles(DIRECTORY_CAPACITY)? {
            let Ok(author) = PublicKey::from_bytes(&row.author) else {
                continue;
            };
            let p = Profile {
                nick: row.nick,
                seal_key: dm::SealKey(row.seal_key),
                version: row.version,
            };
            self.directory.offer(&author, p);
        }
        let now = now_ms();
        for item in ctx.io.store.items()? {
            let (Some(role), Ok(frame)) = (role_of(item.role), Frame::<Key>::decode(&item.frame))
            else {
                tracing::warn!("dropping an unreadable stored DM item");
                let _ = ctx.io.store.remove_item(item.role, &item.id);
                continue;
            };
            self.outbox.restore(
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
        self.links.start();
        self.feed_table(routing::Input::Tick, ctx);
        self.feed_outbox(Input::Tick, ctx);
        self.publish_profile(ctx);
        Ok(())
    }

    /// Signs our profile with a new version and publishes it.
    pub(super) fn publish_profile(&mut self, ctx: &mut Ctx<'_>) {
        let now = now_ms();
        self.version = self.version.saturating_add(1).max(now);
        self.next_profile = Instant::now() + PROFILE_INTERVAL;
        let profile = Profile {
            nick: ctx.io.nick.clone(),
            seal_key: self.enc.public(),
            version: self.version,
        };
        let env = match profile.sign(&ctx.io.key, now, rand::random()) {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!("cannot sign our profile: {e}");
                return;
            }
        };
        if let Err(e) = ctx
            .io
            .store
            .set_setting("profile_version", &self.version.to_string())
        {
            ctx.io
                .write_failed(Write::Other("our profile's version"), &e);
        }
        let id = env.id();
        let _ = self.take_profile(&env, profile, ctx);
        ctx.notes.push(Note::Publish {
            id,
            payload: env.as_bytes().to_vec(),
        });
    }

    /// A checked profile from the one way in; `republish`: pushed on the trees if it was new
    /// here.
    pub(super) fn on_profile(
        &mut self,
        env: Envelope,
        p: Profile,
        republish: bool,
        ctx: &mut Ctx<'_>,
    ) {
        if self.take_profile(&env, p, ctx) && republish {
            ctx.notes.push(Note::Publish {
                id: env.id(),
                payload: env.as_bytes().to_vec(),
            });
        }
    }

    /// A checked profile envelope (from the trees, sync, or our own): kept if it is its
    /// author's newest (then true).
    fn take_profile(&mut self, env: &Envelope, p: Profile, ctx: &mut Ctx<'_>) -> bool {
        let row = ProfileRow {
            author: *env.author().as_bytes(),
            version: p.version,
            nick: p.nick.clone(),
            seal_key: p.seal_key.0,
            id: env.id(),
            timestamp_ms: env.timestamp_ms(),
        };
        let replaces = self.directory.get(&row.author).is_some();
        match self.directory.offer(env.author(), p) {
            ProfileVerdict::Taken => {
                ctx.io.stats.profiles_taken += 1;
                match ctx.io.store.put_profile(&row, env.as_bytes()) {
                    // The older version left the store: history sync reads its items anew.
                    Ok(_) if replaces => ctx.notes.push(Note::ItemsChanged),
                    Ok(_) => ctx.notes.push(Note::Stored {
                        timestamp_ms: row.timestamp_ms,
                        id: row.id,
                    }),
                    Err(e) => ctx.io.write_failed(Write::Other("a profile"), &e),
                }
                true
            }
            ProfileVerdict::Stale => false,
            ProfileVerdict::Full => {
                ctx.io.stats.profiles_refused += 1;
                false
            }
        }
    }

    /// A report from the route stream tasks.
    pub(super) fn on_report(&mut self, event: Inbound, ctx: &mut Ctx<'_>) {
        match event {
            Inbound::Up { peer, link } => {
                self.links.on_up(&peer, link);
            }
            Inbound::Down { peer, link } => {
                let Some(was_open) = self.links.on_down(&peer, link) else {
                    return;
                };
                if let Some(k) = key_of_peer_id(&peer) {
                    self.feed_table(routing::Input::NeighborDown(k), ctx);
                }
                if was_open && ctx.io.connected(&peer) {
                    // The stream broke under a standing connection: a new one, and a full dump.
                    self.connected(peer, ctx);
                }
            }
            Inbound::Frame { peer, bytes } => self.on_frame(peer, &bytes, ctx),
            Inbound::BadLength { peer, len } => {
                tracing::debug!(%peer, "route frame length {len} refused");
                ctx.io.stats.route_refused += 1;
                ctx.io.refuse(peer, Reason::TooLarge, Instant::now());
            }
        }
    }

    /// A connection to `peer` is up: open our route stream to it, and take it as a neighbour at
    /// once (what the table sends it waits in the stream's queue until the stream is open).
    /// Waiting for the stream instead would drop the peer's first dump, which can arrive
    /// before our stream is open, as coming from a stranger. A peer that does not speak the
    /// protocol is a neighbour until its stream fails to open.
    pub(super) fn connected(&mut self, peer: PeerId, ctx: &mut Ctx<'_>) {
        if self.links.has(&peer) {
            return;
        }
        self.links.connect(peer);
        if let Some(k) = key_of_peer_id(&peer) {
            self.feed_table(routing::Input::NeighborUp(k, 1), ctx);
        }
    }

    /// The last connection to `peer` closed.
    pub(super) fn disconnected(&mut self, peer: PeerId, ctx: &mut Ctx<'_>) {
        if self.links.has(&peer) {
            self.links.disconnect(&peer);
            if let Some(k) = key_of_peer_id(&peer) {
                self.feed_table(routing::Input::NeighborDown(k), ctx);
            }
        }
    }

    fn on_frame(&mut self, peer: PeerId, bytes: &[u8], ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        let Some(from) = key_of_peer_id(&peer) else {
            return;
        };
        if !self.links.has(&peer) && ctx.io.connected(&peer) {
            self.connected(peer, ctx);
        }
        if !ctx.io.admit(peer, now, |s| s.route_refused += 1) {
            return;
        }
        let malformed = match RouteFrame::<Key>::decode(bytes) {
            Ok(RouteFrame::Routing(m)) => {
                return self.feed_table(routing::Input::received(from, m), ctx);
            }
            Ok(RouteFrame::Dm(f)) => return self.feed_outbox(Input::Frame(from, f), ctx),
            Ok(RouteFrame::Routed(r)) => return self.on_routed(r, ctx),
            Err(e) => e,
        };
        tracing::debug!(%peer, "malformed route frame: {malformed}");
        ctx.io.stats.route_refused += 1;
        ctx.io.refuse(peer, Reason::Malformed, now);
    }

    /// A routed envelope: ours to check and hand on by kind, or forwarded along our route.
    fn on_routed(&mut self, r: Routed<Key>, ctx: &mut Ctx<'_>) {
        let envelope = match r.step(&ctx.io.me(), |to| self.table.next_hop(to).map(|(v, _)| v)) {
            Step::Deliver(envelope) => envelope,
            Step::Forward(via, frame) => {
                if self.route_send(&via, frame, ctx) {
                    ctx.io.stats.routed_forwarded += 1;
                } else {
                    ctx.io.stats.routed_dropped += 1;
                }
                return;
            }
            Step::Drop => {
                ctx.io.stats.routed_dropped += 1;
                return;
            }
        };
        // Relays do not check what they forward, so a bad envelope here is its author's doing,
        // not the neighbour's: counted, no strike. Only tracker messages are routed.
        let id = MessageId::of(&envelope);
        match ctx.inbound.accept(
            ctx.io,
            ctx.notes,
            Via::Routed,
            id,
            &envelope,
            Instant::now(),
        ) {
            Verdict::Taken { .. } => ctx.io.stats.routed_received += 1,
            // A replay.
            Verdict::Known => ctx.io.stats.tracker_dropped += 1,
            Verdict::Dropped | Verdict::Refused(_) => ctx.io.stats.routed_refused += 1,
        }
    }

    /// The neighbour our route to `to` goes through (itself when it is one).
    pub(super) fn next_hop(&self, to: &Key) -> Option<Key> {
        self.table.next_hop(to).map(|(via, _)| via)
    }

    /// Sends a signed tracker envelope to `to` along our route (counted if there is none).
    pub(super) fn send_routed(&mut self, to: Key, envelope: &Envelope, ctx: &mut Ctx<'_>) {
        let Some((via, _)) = self.table.next_hop(&to) else {
            ctx.io.stats.tracker_unroutable += 1;
            return;
        };
        let frame = Routed {
            hop_limit: ROUTED_HOP_LIMIT,
            to,
            envelope: envelope.as_bytes().to_vec(),
        }
        .encode();
        if !self.route_send(&via, frame, ctx) {
            ctx.io.stats.tracker_unroutable += 1;
        }
    }

    /// The timers: the table's, the outbox's, the profile's.
    pub(super) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        if self.table.next_deadline().is_some_and(|t| t <= now) {
            self.feed_table(routing::Input::Tick, ctx);
        }
        if self.outbox.next_deadline().is_some_and(|t| t <= now_ms()) {
            self.feed_outbox(Input::Tick, ctx);
        }
        if self.next_profile <= now {
            self.publish_profile(ctx);
        }
    }

    /// Hands one input to the routing table and carries out what it asks.
    pub(super) fn feed_table(&mut self, input: routing::Input<Key>, ctx: &mut Ctx<'_>) {
        let outs = self.table.handle(input, Instant::now());
        for out in outs {
            match out {
                routing::Output::Send(to, message) => {
                    self.route_send(&to, message.encode(), ctx);
                }
                // Read back by `due` (the table's `next_deadline`).
                routing::Output::WakeAt(_) => {}
                routing::Output::Changed(dests) => {
                    let changes = dests
                        .iter()
                        .map(|d| (*d, self.table.next_hop(d).is_some()))
                        .collect();
                    ctx.notes.push(Note::Reachability(changes));
                    self.feed_outbox(Input::RoutesChanged(dests), ctx);
                }
            }
        }
        let seqno = self.table.seqno();
        if seqno != self.saved_seqno {
            self.saved_seqno = seqno;
            if let Err(e) = ctx
                .io
                .store
                .set_setting("routing_seqno", &seqno.to_string())
            {
                ctx.io
                    .write_failed(Write::Other("the routing sequence number"), &e);
            }
        }
    }

    /// Queues a frame on our route stream to the neighbour `to`; false if it could not be.
    fn route_send(&mut self, to: &Key, frame: Vec<u8>, ctx: &mut Ctx<'_>) -> bool {
        let peer = peer_id_of_bytes(to);
        match self.links.send(&peer, frame, Instant::now()) {
            Ok(()) => true,
            Err(crate::behaviour::broadcast::SendError::Stalled) => {
                // The neighbour takes nothing: close the link and dial again.
                self.links.disconnect(&peer);
                self.feed_table(routing::Input::NeighborDown(*to), ctx);
                if ctx.io.connected(&peer) {
                    self.connected(peer, ctx);
                }
                false
            }
            Err(_) => false,
        }
    }

    /// Hands one input to the outbox and carries out what it asks.
    pub(super) fn feed_outbox(&mut self, input: Input<Key>, ctx: &mut Ctx<'_>) {
        let now = now_ms();
        let outs = self.outbox.handle(input, &self.table, now);
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
                    if self.route_send(&to, frame.encode(), ctx) {
                        ctx.io.stats.dm_frames_sent += 1;
                    } else {
                        failed.push(frame);
                    }
                }
                Output::Flood(dm) => {
                    let (id, payload) = dm::flood_payload(&dm);
                    ctx.notes.push(Note::Publish {
                        id: MessageId(id.0),
                        payload: payload.to_vec(),
                    });
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
                    if let Err(e) = ctx.io.store.put_item(&row) {
                        ctx.io.write_failed(
                            Write::Other("a direct message held here (it is kept in memory)"),
                            &e,
                        );
                    }
                }
                Output::Remove(slot) => {
                    if let Err(e) = ctx.io.store.remove_item(role_code(slot.role), &slot.id.0) {
                        ctx.io
                            .write_failed(Write::Other("the end of a held direct message"), &e);
                    }
                }
                Output::Deliver(opened) => {
                    let envelope = opened.envelope.id();
                    if !self.deliver_dm(*opened, ctx) {
                        unstored = Some(envelope);
                    }
                }
                Output::Status(id, status) => self.dm_status(id.0, status.into(), ctx),
                // Read back by `due` (the outbox's `next_deadline`).
                Output::WakeAt(_) => {}
            }
        }
        for frame in failed {
            self.feed_outbox(Input::SendFailed(frame), ctx);
        }
        if let Some((dm, envelope)) = withdrawn {
            self.feed_outbox(Input::NotStored { dm, envelope }, ctx);
        }
    }

    /// A DM for us, opened and checked: stored, and shown if it was new (a file offer is also
    /// handed to the files handler). False if it could not be stored.
    fn deliver_dm(&mut self, mut opened: dm::Opened, ctx: &mut Ctx<'_>) -> bool {
        if let Some(invite) = opened.invite.take() {
            let from = *opened.envelope.author().as_bytes();
            // An invite's body names no sender: the profile's nick does.
            opened.text.nick = self
                .directory
                .get(&from)
                .map(|p| p.nick.clone())
                .unwrap_or_else(|| Fingerprint::of_key_bytes(&from).short());
            ctx.notes.push(Note::Invite {
                invite: Box::new(invite),
                from,
            });
        }
        if let Some(offer) = &opened.offer {
            ctx.notes.push(Note::FileOffer {
                env: opened.envelope.clone(),
                offer: Box::new(offer.clone()),
                dm: true,
            });
        }
        let env = &opened.envelope;
        let author = *env.author().as_bytes();
        let row = DmRow {
            id: env.id(),
            dm_id: None,
            peer: author,
            author,
            recipient: *ctx.io.key.public().as_bytes(),
            nick: opened.text.nick.clone(),
            timestamp_ms: env.timestamp_ms(),
            text: opened.text.text.clone(),
            own: false,
            state: None,
            seq: 0,
        };
        match ctx.io.store.insert_dm(&row) {
            Ok(Some(seq)) => {
                ctx.io.write_worked();
                let view = self.dm_view(DmRow { seq, ..row });
                ctx.io.emit(Event::Dm(view));
                true
            }
            Ok(None) => true,
            Err(e) => {
                ctx.io.write_failed(
                    Write::Other(
                        "a direct message (no receipt went back, so its sender sends it again)",
                    ),
                    &e,
                );
                false
            }
        }
    }

    fn dm_status(&mut self, dm_id: [u8; 32], state: DmState, ctx: &mut Ctx<'_>) {
        match ctx.io.store.set_dm_state(&dm_id, state.to_code()) {
            Ok(Some((id, to))) => ctx.io.emit(Event::DmStatus {
                id,
                to: peer_id_of_bytes(&to),
                state,
            }),
            Ok(None) => {}
            Err(e) => ctx
                .io
                .write_failed(Write::Other("a direct message's state"), &e),
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
    fn resolve(&self, who: &str, all: bool, me: Key) -> Result<Vec<Key>, Error> {
        let who = who.trim();
        if let Ok(peer) = who.parse::<PeerId>() {
            return key_of_peer_id(&peer)
                .map(|k| vec![k])
                .ok_or_else(|| Error::UnknownPerson(who.to_owned()));
        }
        let by_nick: Vec<Key> = self.directory.by_nick(who).copied().collect();
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
            let found: Vec<Key> = self
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
    pub(super) fn send_dm(
        &mut self,
        to: &str,
        text: String,
        ctx: &mut Ctx<'_>,
    ) -> Result<DmSent, Error> {
        self.send_sealed(to, Content::Text(text), ctx)
            .map(|(sent, _)| sent)
    }

    /// A file offer to one person, sealed and sent like a DM (kept until its receipt comes):
    /// its envelope too, for the files handler's record.
    pub(super) fn send_offer(
        &mut self,
        to: &str,
        offer: &Offer,
        ctx: &mut Ctx<'_>,
    ) -> Result<(DmSent, Envelope, Key), Error> {
        let (sent, env) = self.send_sealed(to, Content::Offer(offer), ctx)?;
        let key = key_of_peer_id(&sent.to).ok_or(Error::NoProfile(sent.to))?;
        Ok((sent, env, key))
    }

    /// An invite to a private room, sealed and sent to `to` like a DM.
    pub(super) fn send_invite(
        &mut self,
        to: &Key,
        invite: &meshchat_core::private::Invite,
        ctx: &mut Ctx<'_>,
    ) -> Result<DmSent, Error> {
        let to = peer_id_of_bytes(to).to_string();
        self.send_sealed(&to, Content::Invite(invite), ctx)
            .map(|(sent, _)| sent)
    }

    /// The one person `who` names, with the DM key and nick of their profile.
    pub(super) fn person(&self, who: &str, me: Key) -> Result<(Key, dm::SealKey, String), Error> {
        let key = self.resolve(who, false, me)?[0];
        if key == me {
            return Err(Error::ToSelf);
        }
        let profile = self
            .directory
            .get(&key)
            .ok_or(Error::NoProfile(peer_id_of_bytes(&key)))?;
        Ok((key, profile.seal_key, profile.nick.clone()))
    }

    fn send_sealed(
        &mut self,
        to: &str,
        content: Content<'_>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(DmSent, Envelope), Error> {
        let key = self.resolve(to, false, ctx.io.me())?[0];
        if key == *ctx.io.key.public().as_bytes() {
            return Err(Error::ToSelf);
        }
        let peer = peer_id_of_bytes(&key);
        let profile = self
            .directory
            .get(&key)
            .cloned()
            .ok_or(Error::NoProfile(peer))?;
        let recipient = PublicKey::from_bytes(&key).map_err(|_| Error::NoProfile(peer))?;
        let now = now_ms();
        let (env, message) = match content {
            Content::Text(text) => {
                let message = Text {
                    nick: ctx.io.nick.clone(),
                    text,
                };
                let env = dm::sign_dm(&ctx.io.key, &recipient, &message, now, rand::random())?;
                (env, message)
            }
            Content::Offer(offer) => {
                let env = dm::sign_offer(&ctx.io.key, &recipient, offer, now, rand::random())?;
                (env, offer.as_text())
            }
            Content::Invite(invite) => {
                let env = dm::sign_invite(&ctx.io.key, &recipient, invite, now, rand::random())?;
                let text = Text {
                    nick: ctx.io.nick.clone(),
                    text: format!("🔒 invited them to the private room #{}", invite.name),
                };
                (env, text)
            }
        };
        let limits = *self.outbox.limits();
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
            author: *ctx.io.key.public().as_bytes(),
            recipient: key,
            nick: message.nick,
            timestamp_ms: now,
            text: message.text,
            own: true,
            state: Some(DmState::Queued.to_code()),
            seq: 0,
        };
        // On disk before it leaves, like a room message.
        let seq = ctx.io.store.insert_dm(&row)?.unwrap_or(0);
        let view = self.dm_view(DmRow { seq, ..row });
        ctx.io.emit(Event::Dm(view));
        ctx.io.emit(Event::DmStatus {
            id,
            to: peer,
            state: DmState::Queued,
        });
        self.feed_outbox(Input::Send(sealed), ctx);
        ctx.io.stats.published += 1;
        let state = ctx
            .io
            .store
            .dm_state(&id)?
            .map_or(DmState::Queued, DmState::from_code);
        Ok((
            DmSent {
                id,
                to: peer,
                state,
            },
            env,
        ))
    }

    pub(super) fn dm_history(
        &self,
        with: &str,
        limit: usize,
        before: Option<(u64, MessageId)>,
        ctx: &mut Ctx<'_>,
    ) -> Result<Vec<DmView>, Error> {
        let key = self.resolve(with, false, ctx.io.me())?[0];
        Ok(ctx
            .io
            .store
            .dm_history(&key, limit, before)?
            .into_iter()
            .map(|r| self.dm_view(r))
            .collect())
    }

    pub(super) fn conversations(&self, ctx: &mut Ctx<'_>) -> Result<Vec<Conversation>, Error> {
        Ok(ctx
            .io
            .store
            .conversations()?
            .into_iter()
            .map(|c| {
                let nick = self
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

    pub(super) fn routes(&self, ctx: &Ctx<'_>) -> Vec<RouteView> {
        self.table
            .routes(Instant::now())
            .into_iter()
            .filter(|r| r.dest != *ctx.io.key.public().as_bytes())
            .map(|r| RouteView {
                dest: peer_id_of_bytes(&r.dest),
                next_hop: peer_id_of_bytes(&r.next_hop),
                hops: r.hops,
                age_ms: r.age.as_millis() as u64,
                nick: self.directory.get(&r.dest).map(|p| p.nick.clone()),
            })
            .collect()
    }

    pub(super) fn whois(&self, who: &str, ctx: &mut Ctx<'_>) -> Result<Vec<ProfileView>, Error> {
        let me = *ctx.io.key.public().as_bytes();
        let mut out = Vec::new();
        for key in self.resolve(who, true, ctx.io.me())? {
            let peer = peer_id_of_bytes(&key);
            let Some(p) = self.directory.get(&key) else {
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
                    self.table.next_hop(&key).map(|(_, h)| h)
                },
                connected: ctx.io.connected(&peer),
            });
        }
        Ok(out)
    }
}
