//! Room messages on the broadcast trees: wires [`meshchat_core::broadcast`] (Plumtree) to the
//! streams of [`crate::behaviour::broadcast`], the guard, the envelope check and the store.
//!
//! The order of checks for a frame from a neighbour: a blocked peer's frames are dropped whole;
//! the frame is decoded (a malformed one is a strike); each `Gossip` in it passes the guard's
//! rate before the state machine sees it (over the rate: dropped unchecked, no strike);
//! the state machine drops duplicates (and prunes the link they came by) and asks for the first
//! copy of each message to be checked ([`Out::Validate`]); its author's limits
//! ([`meshchat_core::authors`]) are looked at before the one signature check per unique
//! message, and spent after it; only then is the message relayed, announced, stored and shown.
//! What the state machine itself bounds per neighbour (graft bytes, announced ids) it reports
//! as [`Out::Misbehaved`] when a neighbour goes over, a strike.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use meshchat_core::authors::{Authors, Limited};
use meshchat_core::broadcast::{wire, Broadcast, In, Message, Offence, Out, Payload};
use meshchat_core::clock::{self, Clock, Notice};
use meshchat_core::dm;
use meshchat_core::guard::Admit;
use meshchat_core::inbound::{self, Checked, Reason};
use meshchat_core::{envelope, MessageId};

use super::Actor;
use crate::behaviour::broadcast::{Inbound, Links, SendError};
use crate::node::{now_ms, Event};
use crate::store::StoredMessage;

/// Reports of the stream tasks handled in one go before what they produced is sent: under load
/// the messages for one neighbour then share frames (fewer frames, wake-ups and writes per
/// message), and when idle nothing waits.
pub(super) const REPORT_BATCH: usize = 64;
/// A neighbour handing over envelopes dated ahead of our clock is named at most this often.
const FUTURE_TELL_EVERY: Duration = Duration::from_secs(10 * 60);
/// Neighbours remembered as named for envelopes from the future.
const FUTURE_WARNINGS: usize = 256;

/// The broadcast trees' state in the actor.
pub(super) struct State {
    pub(super) core: Broadcast<PeerId>,
    /// Per-author rates and new-author introductions, by author key.
    pub(super) authors: Authors<PeerId, [u8; 32]>,
    /// Our clock against the authors heard fresh on the trees.
    clock: Clock<[u8; 32]>,
    /// When each neighbour was last named for handing over envelopes dated ahead of our clock
    /// (at most [`FUTURE_WARNINGS`] remembered).
    future_told: HashMap<PeerId, Instant>,
    pub(super) links: Links,
    /// When the state machine next wants [`In::Tick`].
    pub(super) wake: Option<Instant>,
    /// Messages for each neighbour not yet packed into frames, in order (sent by
    /// [`Actor::send_broadcast`] at the end of each turn of the loop).
    outbox: Vec<(PeerId, Vec<Message>)>,
}

impl State {
    pub(super) fn new(
        core: Broadcast<PeerId>,
        authors: Authors<PeerId, [u8; 32]>,
        links: Links,
    ) -> Self {
        Self {
            core,
            authors,
            clock: Clock::default(),
            future_told: HashMap::new(),
            links,
            wake: None,
            outbox: Vec::new(),
        }
    }
}

impl Actor {
    /// A report from the stream tasks.
    pub(super) fn on_broadcast(&mut self, event: Inbound) {
        match event {
            Inbound::Up { peer, link } => {
                if self.trees.links.on_up(&peer, link) {
                    if self.trees.links.up_count() == 1 {
                        // Our first neighbour: the profile published at start reached nobody.
                        // Now it reaches everyone connected to that neighbour (later joiners
                        // get it by history sync).
                        self.publish_profile();
                    }
                    if self.chat_peers.insert(peer) {
                        self.emit(Event::PeerConnected { peer_id: peer });
                    }
                }
            }
            Inbound::Down { peer, link } => {
                let Some(was_open) = self.trees.links.on_down(&peer, link) else {
                    return;
                };
                self.feed(In::NeighborDown(peer));
                if was_open && self.connections.contains_key(&peer) {
                    // The stream broke while a connection stands (it ran over a connection
                    // that closed, or the peer dropped it): open a new one.
                    self.trees.links.connect(peer);
                    self.feed(In::NeighborUp(peer));
                } else if self.chat_peers.remove(&peer) {
                    self.emit(Event::PeerDisconnected { peer_id: peer });
                }
            }
            Inbound::Frame { peer, bytes } => self.on_broadcast_frame(peer, &bytes),
            Inbound::BadLength { peer, len } => {
                tracing::debug!(%peer, "broadcast frame length {len} refused");
                self.refuse(peer, Reason::TooLarge, Instant::now());
            }
        }
    }

    /// A connection to `peer` is up: the peer is a neighbour (it starts eager) and our stream to
    /// it opens. Frames queued meanwhile go out once it is open. A second connection to a
    /// neighbour changes nothing.
    pub(super) fn broadcast_connected(&mut self, peer: PeerId) {
        if self.trees.links.has(&peer) {
            return;
        }
        self.trees.links.connect(peer);
        self.feed(In::NeighborUp(peer));
    }

    /// The last connection to `peer` closed.
    pub(super) fn broadcast_disconnected(&mut self, peer: PeerId) {
        self.trees.links.disconnect(&peer);
        self.feed(In::NeighborDown(peer));
    }

    /// Publishes our own (stored) envelope; false if no neighbour's stream is open to take it.
    pub(super) fn broadcast_publish(&mut self, id: MessageId, bytes: &[u8]) -> bool {
        let payload: Payload = bytes.into();
        self.feed(In::Publish { id, payload });
        self.trees.links.up_count() > 0
    }

    /// The state machine's timer fired.
    pub(super) fn broadcast_tick(&mut self) {
        self.trees.wake = None;
        self.feed(In::Tick);
    }

    fn on_broadcast_frame(&mut self, peer: PeerId, bytes: &[u8]) {
        let now = Instant::now();
        if self.guard.is_blocked(&peer, now) {
            self.stats.rejected.count(Reason::BlockedPeer);
            return;
        }
        let messages = match wire::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%peer, "malformed broadcast frame: {e}");
                self.refuse(peer, Reason::Malformed, now);
                return;
            }
        };
        for message in messages {
            if matches!(message, Message::Gossip { .. }) {
                match self.guard.admit(peer, now) {
                    Admit::Yes => {}
                    Admit::OverRate => {
                        self.stats.rejected.count(Reason::OverRate);
                        continue;
                    }
                    Admit::Blocked => {
                        self.stats.rejected.count(Reason::BlockedPeer);
                        return;
                    }
                    Admit::Flooding => {
                        self.stats.rejected.count(Reason::OverRate);
                        self.block(peer, Reason::OverRate);
                        return;
                    }
                }
            }
            self.feed(In::Message {
                from: peer,
                message,
            });
        }
    }

    /// Hands one input to the state machine and carries out what it asks.
    pub(super) fn feed(&mut self, input: In<PeerId>) {
        let now = Instant::now();
        let outs: Vec<Out<PeerId>> = self.trees.core.handle(input, now).collect();
        let mut verdicts = Vec::new();
        for out in outs {
            match out {
                Out::Send { to, message } => {
                    let outbox = &mut self.trees.outbox;
                    match outbox.iter_mut().find(|(p, _)| *p == to) {
                        Some((_, v)) => v.push(message),
                        None => outbox.push((to, vec![message])),
                    }
                }
                Out::Validate { id, payload, from } => {
                    let ok = self.check_broadcast(from, id, &payload, now);
                    verdicts.push((id, ok));
                }
                Out::Deliver { .. } => {}
                Out::WakeAt(at) => self.trees.wake = Some(at),
                Out::Misbehaved { peer, offence } => match offence {
                    Offence::GraftOverBudget => {
                        tracing::debug!(%peer, "grafts over the byte budget");
                        self.refuse(peer, Reason::OverBudget, now);
                    }
                },
            }
        }
        for (id, ok) in verdicts {
            self.feed(In::Validated { id, ok });
        }
    }

    /// Packs what the state machine produced since the last call into frames and queues them.
    pub(super) fn send_broadcast(&mut self) {
        if self.trees.outbox.is_empty() {
            return;
        }
        let now = Instant::now();
        for (peer, messages) in std::mem::take(&mut self.trees.outbox) {
            for frame in wire::pack(messages) {
                match self.trees.links.send(&peer, frame, now) {
                    Ok(()) | Err(SendError::NoLink) => {}
                    Err(SendError::Full) => self.stats.broadcast_dropped += 1,
                    Err(SendError::Stalled) => {
                        self.stats.broadcast_dropped += 1;
                        self.on_stalled(peer);
                        break;
                    }
                }
            }
        }
    }

    /// The one check of a message's first copy: that the payload is the envelope `id` names,
    /// and a valid one (signature, limits, body). A valid one is stored (and shown where the
    /// room is joined); a refused one is a strike where the sender should have known better.
    /// The payload is hashed once: by the envelope check, or here when the id was taken before.
    fn check_broadcast(
        &mut self,
        from: PeerId,
        id: MessageId,
        payload: &[u8],
        now: Instant,
    ) -> bool {
        if let Some(flooded) = dm::parse_flooded::<[u8; 32]>(payload) {
            return self.check_flooded_dm(from, id, flooded, now);
        }
        if self.seen.contains(&id) {
            // Already taken another way (history sync): valid, stored, shown; relayed on only if
            // the payload is that message and not something else under its id.
            if MessageId::of(payload) != id {
                self.refuse(from, Reason::Malformed, now);
                return false;
            }
            self.stats.duplicates += 1;
            return true;
        }
        // The author's limits, before the signature check: over them, the envelope costs no
        // verification and is left to a later push or to history sync.
        let author = envelope::peek_author(payload);
        if let Some(a) = &author {
            if let Err(limited) = self.trees.authors.check(from, a, now) {
                self.stats.rejected.count(match limited {
                    Limited::AuthorOverRate => Reason::AuthorOverRate,
                    Limited::NewAuthorOverRate => Reason::NewAuthorOverRate,
                });
                return false;
            }
        }
        self.seen.insert(id, now);
        match inbound::check(payload.to_vec(), now_ms(), &mut self.author_keys) {
            Ok(checked) if checked.envelope().id() != id => {
                // A valid envelope under another message's id: forged by the neighbour itself.
                self.seen.remove(&id);
                self.stats.verified += 1;
                self.refuse(from, Reason::Malformed, now);
                false
            }
            Ok(checked) => {
                if let Some(a) = author {
                    self.trees.authors.accepted(Some(from), a, now);
                }
                self.clock_sample(
                    checked.envelope().author().as_bytes(),
                    checked.envelope().timestamp_ms(),
                    now,
                );
                // Profiles and tracker messages are counted apart, so `verified` and
                // `accepted` stay the counts of messages.
                if matches!(checked, Checked::Profile(..)) {
                    self.stats.profiles_checked += 1;
                } else if matches!(checked, Checked::Tracker(..)) {
                    self.stats.tracker_checked += 1;
                } else {
                    self.stats.verified += 1;
                    self.stats.accepted += 1;
                }
                if let Some(t) = self.useful.get_mut(&from) {
                    *t = now;
                }
                match checked {
                    Checked::Room(env, text) => {
                        let stored = StoredMessage::new(&env, text);
                        self.queue_for_store(env, stored);
                    }
                    Checked::Profile(env, profile) => {
                        let _ = self.take_profile(&env, profile);
                    }
                    Checked::Tracker(env) => self.on_tracker_envelope(env, true),
                    Checked::Other(_) => self.stats.relayed_unknown += 1,
                }
                true
            }
            Err(refused) => {
                // Forgotten, so the real message under this id is taken if it comes.
                self.seen.remove(&id);
                if let inbound::Refused::Envelope(envelope::Error::FromFuture(ahead_ms)) = refused {
                    self.dated_ahead(from, author, ahead_ms, now);
                }
                if refused.signature_checked() {
                    self.stats.verified += 1;
                }
                tracing::debug!(peer = %from, "rejected envelope: {refused}");
                self.refuse(from, refused.reason(), now);
                false
            }
        }
    }

    /// A DM on the flooded path: relayed if it is well formed and carried under its own id; if
    /// it is for us, the outbox opens it. Relays cannot read it (it is sealed) and do not store
    /// it.
    fn check_flooded_dm(
        &mut self,
        from: PeerId,
        id: MessageId,
        flooded: Result<dm::Dm<[u8; 32]>, dm::Error>,
        now: Instant,
    ) -> bool {
        match flooded {
            Ok(d) if d.id().0 == id.0 => {
                if self.seen.insert(id, now) {
                    self.stats.dm_flooded_relayed += 1;
                    self.feed_outbox(dm::Input::Flooded(d));
                }
                true
            }
            Ok(_) | Err(_) => {
                tracing::debug!(peer = %from, "malformed flooded DM");
                self.refuse(from, Reason::Malformed, now);
                false
            }
        }
    }

    /// A fresh envelope by `author` dated `timestamp_ms`: a sample of our clock's offset from
    /// the mesh's; tells the user when it says our clock is off (or fixed).
    fn clock_sample(&mut self, author: &[u8; 32], timestamp_ms: u64, now: Instant) {
        if author == self.key.public().as_bytes() {
            return;
        }
        self.trees
            .clock
            .sample(*author, timestamp_ms, now_ms(), now);
        match self.trees.clock.poll(now) {
            Some(Notice::Off { offset_ms, authors }) => {
                tracing::warn!(offset_ms, authors, "this node's clock is off its peers'");
                self.emit(Event::Clock {
                    offset_ms,
                    authors,
                    off: true,
                });
            }
            Some(Notice::Agrees { authors }) => self.emit(Event::Clock {
                offset_ms: self.trees.clock.offset(now).map_or(0, |(o, _)| o),
                authors,
                off: false,
            }),
            None => {}
        }
    }

    /// `peer` handed over an envelope dated `ahead_ms` ahead of our clock (refused beyond
    /// [`envelope::MAX_CLOCK_SKEW_MS`]): counted as a clock sample, and the user is told which
    /// neighbour and how far (at most every [`FUTURE_TELL_EVERY`] per neighbour).
    fn dated_ahead(&mut self, peer: PeerId, author: Option<[u8; 32]>, ahead_ms: u64, now: Instant) {
        if let Some(a) = author {
            self.clock_sample(&a, now_ms().saturating_add(ahead_ms), now);
        }
        let told = &mut self.trees.future_told;
        if told
            .get(&peer)
            .is_some_and(|t| now.saturating_duration_since(*t) < FUTURE_TELL_EVERY)
        {
            return;
        }
        if !told.contains_key(&peer) && told.len() >= FUTURE_WARNINGS {
            told.retain(|_, t| now.saturating_duration_since(*t) < FUTURE_TELL_EVERY);
            if told.len() >= FUTURE_WARNINGS {
                return;
            }
        }
        told.insert(peer, now);
        let ahead = clock::describe(i64::try_from(ahead_ms).unwrap_or(i64::MAX));
        self.emit(Event::Warning(format!(
            "refused messages from {peer} dated {ahead} of this computer's clock (more than {} min \
             ahead is refused): its author's clock, or this one, is wrong",
            envelope::MAX_CLOCK_SKEW_MS / 60_000
        )));
    }

    /// Counts a refusal and gives `peer` a strike if it is one, blocking it at the limit.
    pub(super) fn refuse(&mut self, peer: PeerId, reason: Reason, now: Instant) {
        self.stats.rejected.count(reason);
        if reason.is_strike() && self.guard.strike(peer, now) {
            self.block(peer, reason);
        }
    }
}
