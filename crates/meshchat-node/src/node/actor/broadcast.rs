//! Room messages on the broadcast trees: wires [`meshchat_core::broadcast`] (Plumtree) to the
//! streams of [`crate::behaviour::broadcast`], the guard and the one way in (`inbound.rs`).
//!
//! The order of checks for a frame from a neighbour: a blocked peer's frames are dropped whole;
//! the frame is decoded (a malformed one is a strike); each `Gossip` in it passes the guard's
//! rate before the state machine sees it (over the rate: dropped unchecked, no strike);
//! the state machine drops duplicates (and prunes the link they came by) and asks for the first
//! copy of each message to be checked ([`Output::Validate`]), which the one way in does
//! (`inbound.rs`: author limits, then the one signature check per unique message); only then is
//! the message relayed, announced, stored and shown.
//! What the state machine itself bounds per neighbour (graft bytes, announced ids) it reports
//! as [`Output::Misbehaved`] when a neighbour goes over, a strike.

use std::collections::HashSet;
use std::time::Instant;

use libp2p::PeerId;
use meshchat_core::broadcast::{wire, Broadcast, Input, Message, Offence, Output, Payload};
use meshchat_core::dm;
use meshchat_core::inbound::Reason;
use meshchat_core::MessageId;
use tokio::sync::mpsc;

use super::context::{Ctx, Note};
use super::inbound::Via;
use crate::behaviour::broadcast::{Inbound, Links, SendError};
use crate::node::{Event, Stats};

/// Reports of the stream tasks handled in one go before what they produced is sent: under load
/// the messages for one neighbour then share frames (fewer frames, wake-ups and writes per
/// message), and when idle nothing waits.
pub(super) const REPORT_BATCH: usize = 64;

/// The broadcast trees' handler.
pub(super) struct Trees {
    core: Broadcast<PeerId>,
    links: Links,
    /// Reports of the broadcast stream tasks; taken by the loop.
    reports: Option<mpsc::Receiver<Inbound>>,
    /// Messages for each neighbour not yet packed into frames, in order (sent by
    /// [`Trees::send`] at the end of each turn of the loop).
    outbox: Vec<(PeerId, Vec<Message>)>,
    /// Peers announced to the front-end as chat peers (connected, broadcast stream open).
    chat_peers: HashSet<PeerId>,
}

impl Trees {
    pub(super) fn new(
        core: Broadcast<PeerId>,
        links: Links,
        reports: mpsc::Receiver<Inbound>,
    ) -> Self {
        Self {
            core,
            links,
            reports: Some(reports),
            outbox: Vec::new(),
            chat_peers: HashSet::new(),
        }
    }

    /// Starts the stream tasks' listener.
    pub(super) fn start(&mut self) {
        self.links.start();
    }

    /// The stream tasks' reports, for the loop to wait on.
    pub(super) fn take_reports(&mut self) -> Option<mpsc::Receiver<Inbound>> {
        self.reports.take()
    }

    /// When [`Trees::tick`] is due.
    pub(super) fn wake(&self) -> Option<Instant> {
        self.core.next_deadline()
    }

    /// Whether `peer`'s broadcast stream is open (it is a chat peer).
    pub(super) fn is_chat_peer(&self, peer: &PeerId) -> bool {
        self.chat_peers.contains(peer)
    }

    /// The trees' counters, into the node's.
    pub(super) fn stats(&self, stats: &mut Stats) {
        stats.copies_received = self.core.stats().gossip_received;
        stats.trees = self.core.stats().clone();
    }

    /// A report from the stream tasks.
    pub(super) fn on_report(&mut self, event: Inbound, ctx: &mut Ctx<'_>) {
        match event {
            Inbound::Up { peer, link } => {
                if self.links.on_up(&peer, link) {
                    if self.links.up_count() == 1 {
                        // Our first neighbour: the profile published at start reached nobody.
                        // Now it reaches everyone connected to that neighbour (later joiners
                        // get it by history sync).
                        ctx.notes.push(Note::PublishProfile);
                    }
                    if self.chat_peers.insert(peer) {
                        ctx.io.emit(Event::PeerConnected { peer_id: peer });
                    }
                }
            }
            Inbound::Down { peer, link } => {
                let Some(was_open) = self.links.on_down(&peer, link) else {
                    return;
                };
                self.feed(Input::NeighborDown(peer), ctx);
                if was_open && ctx.io.connected(&peer) {
                    // The stream broke while a connection stands (it ran over a connection
                    // that closed, or the peer dropped it): open a new one.
                    self.links.connect(peer);
                    self.feed(Input::NeighborUp(peer), ctx);
                } else if self.chat_peers.remove(&peer) {
                    ctx.io.emit(Event::PeerDisconnected { peer_id: peer });
                }
            }
            Inbound::Frame { peer, bytes } => self.on_frame(peer, &bytes, ctx),
            Inbound::BadLength { peer, len } => {
                tracing::debug!(%peer, "broadcast frame length {len} refused");
                ctx.io.refuse(peer, Reason::TooLarge, Instant::now());
            }
        }
    }

    /// A connection to `peer` is up: the peer is a neighbour (it starts eager) and our stream to
    /// it opens. Frames queued meanwhile go out once it is open. A second connection to a
    /// neighbour changes nothing.
    pub(super) fn connected(&mut self, peer: PeerId, ctx: &mut Ctx<'_>) {
        if self.links.has(&peer) {
            return;
        }
        self.links.connect(peer);
        self.feed(Input::NeighborUp(peer), ctx);
    }

    /// The last connection to `peer` closed.
    pub(super) fn disconnected(&mut self, peer: PeerId, ctx: &mut Ctx<'_>) {
        if self.chat_peers.remove(&peer) {
            ctx.io.emit(Event::PeerDisconnected { peer_id: peer });
        }
        self.links.disconnect(&peer);
        self.feed(Input::NeighborDown(peer), ctx);
    }

    /// Publishes an envelope we hold (ours, or one worth pushing on); false if no neighbour's
    /// stream is open to take it. Only our own may run on our own tree.
    pub(super) fn publish(&mut self, id: MessageId, bytes: &[u8], ctx: &mut Ctx<'_>) -> bool {
        let payload: Payload = bytes.into();
        let ours = meshchat_core::envelope::peek_author(bytes)
            .is_some_and(|a| &a == ctx.io.key.public().as_bytes());
        self.feed(
            if ours {
                Input::Publish { id, payload }
            } else {
                Input::Republish { id, payload }
            },
            ctx,
        );
        self.links.up_count() > 0
    }

    /// The state machine's timer fired.
    pub(super) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        self.feed(Input::Tick, ctx);
    }

    fn on_frame(&mut self, peer: PeerId, bytes: &[u8], ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        if ctx.io.guard.is_blocked(&peer, now) {
            ctx.io.stats.rejected.count(Reason::BlockedPeer);
            return;
        }
        let messages = match wire::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%peer, "malformed broadcast frame: {e}");
                ctx.io.refuse(peer, Reason::Malformed, now);
                return;
            }
        };
        for message in messages {
            if matches!(message, Message::Gossip { .. }) && !ctx.io.admit(peer, now, |_| {}) {
                if ctx.io.guard.is_blocked(&peer, now) {
                    return;
                }
                continue;
            }
            self.feed(
                Input::Message {
                    from: peer,
                    message,
                },
                ctx,
            );
        }
    }

    /// Hands one input to the state machine and carries out what it asks.
    fn feed(&mut self, input: Input<PeerId>, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        let outs: Vec<Output<PeerId>> = self.core.handle(input, now).collect();
        let mut verdicts = Vec::new();
        for out in outs {
            match out {
                Output::Send { to, message } => {
                    let outbox = &mut self.outbox;
                    match outbox.iter_mut().find(|(p, _)| *p == to) {
                        Some((_, v)) => v.push(message),
                        None => outbox.push((to, vec![message])),
                    }
                }
                Output::Validate { id, payload, from } => {
                    let ok = check(from, id, &payload, now, ctx);
                    verdicts.push((id, ok));
                }
                Output::Deliver { .. } => {}
                // Read back by `wake` (the state machine's `next_deadline`).
                Output::WakeAt(_) => {}
                Output::Misbehaved { peer, offence } => match offence {
                    Offence::GraftOverBudget => {
                        tracing::debug!(%peer, "grafts over the byte budget");
                        ctx.io.refuse(peer, Reason::OverBudget, now);
                    }
                },
            }
        }
        for (id, ok) in verdicts {
            self.feed(Input::Validated { id, ok }, ctx);
        }
    }

    /// Packs what the state machine produced since the last call into frames and queues them.
    pub(super) fn send(&mut self, ctx: &mut Ctx<'_>) {
        if self.outbox.is_empty() {
            return;
        }
        let now = Instant::now();
        for (peer, messages) in std::mem::take(&mut self.outbox) {
            for frame in wire::pack(messages) {
                match self.links.send(&peer, frame, now) {
                    Ok(()) | Err(SendError::NoLink) => {}
                    Err(SendError::Full) => ctx.io.stats.broadcast_dropped += 1,
                    Err(SendError::Stalled) => {
                        ctx.io.stats.broadcast_dropped += 1;
                        ctx.notes.push(Note::Stalled(peer));
                        break;
                    }
                }
            }
        }
    }
}

/// The check of a message's first copy on the trees: a flooded DM is relayed if well formed
/// (it is sealed: relays cannot read it, and do not store it); anything else goes the one way
/// in. True if it may be relayed.
fn check(from: PeerId, id: MessageId, payload: &[u8], now: Instant, ctx: &mut Ctx<'_>) -> bool {
    match dm::parse_flooded::<[u8; 32]>(payload) {
        None => ctx
            .inbound
            .accept(ctx.io, ctx.notes, Via::Trees(from), id, payload, now)
            .valid(),
        Some(Ok(d)) if d.id().0 == id.0 => {
            if ctx.inbound.mark_seen(id, now) {
                ctx.io.stats.dm_flooded_relayed += 1;
                ctx.notes.push(Note::FloodedDm(d));
            }
            true
        }
        Some(_) => {
            tracing::debug!(peer = %from, "malformed flooded DM");
            ctx.io.refuse(from, Reason::Malformed, now);
            false
        }
    }
}
