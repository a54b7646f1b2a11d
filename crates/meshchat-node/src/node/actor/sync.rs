//! History sync, wired to libp2p and the store. The protocol is [`meshchat_core::sync`]: the
//! reconciliation itself ([`sync::Peers`]) and when it runs and what is fetched from whom
//! ([`sync::Scheduler`], whose module docs give the rules). This handler only carries out the
//! scheduler's outputs: requests over `/meshchat/sync/1` (libp2p's request ids mapped to the
//! scheduler's tokens), the store (the item snapshot, which ids we lack, envelopes for a peer's
//! fetch, pruning what we relay), fetched envelopes through the one way in
//! (`Inbound::accept(.., Via::Sync(peer), ..)`), strikes and counters.
//!
//! Pull, plus offers: a node only ever receives envelopes it asked for, and an unasked one is a strike.
//! Offers make a healed partition converge at a fetch per hop ([`meshchat_core::sync::Offers`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use meshchat_core::inbound::Reason;
use meshchat_core::sync::schedule::{Config, Fetched, Input, Output, Token};
use meshchat_core::sync::wire::{self, Refusal, Request, Response};
use meshchat_core::sync::{self, ItemSet, Scheduler};
use meshchat_core::MessageId;

use super::context::Ctx;
use super::disk::Write;
use super::inbound::{Verdict, Via};
use crate::behaviour::sync::{is_malformed, SYNC_OFFERS, SYNC_PROTOCOL};
use crate::node::now_ms;

/// How often the relay's share of the store is bounded (window and budget).
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// The node's history-sync state. Every table is bounded by the connected peers: the
/// scheduler's (see its docs), and our requests in flight (at most a round, a fetch and an offer
/// per peer, as the scheduler's).
#[derive(Debug)]
pub(super) struct Sync {
    sched: Scheduler<PeerId>,
    /// Our items in the window, as of the last change folded in.
    items: ItemSet,
    /// Stored since the snapshot was made, to be folded in (bounded: past `max_items` the
    /// snapshot is read anew from the store instead).
    added: Vec<(u64, MessageId)>,
    /// The snapshot must be read anew from the store (at start, after pruning).
    dirty: bool,
    /// Our requests in flight: the peer, the scheduler's token, and a fetch's ids (to check
    /// what comes back).
    requests: HashMap<OutboundRequestId, (PeerId, Token, Option<Vec<MessageId>>)>,
    last_prune: Option<Instant>,
    /// Bytes of envelopes stored for rooms we are not in (`None`: to be read from the store).
    relayed: Option<u64>,
}

impl Sync {
    pub(super) fn new(limits: sync::Limits) -> Self {
        // The interval is only read at a maintenance tick, which sets it from the config's
        // `sync_interval` first.
        Self {
            sched: Scheduler::new(Config::new(limits, std::time::Duration::MAX)),
            items: ItemSet::default(),
            added: Vec::new(),
            dirty: true,
            requests: HashMap::new(),
            last_prune: None,
            relayed: None,
        }
    }

    /// A message was stored.
    pub(super) fn added(&mut self, timestamp_ms: u64, id: MessageId) {
        if self.dirty {
            return;
        }
        if self.added.len() >= self.sched.limits().max_items {
            self.added.clear();
            self.dirty = true;
        } else {
            self.added.push((timestamp_ms, id));
        }
    }

    /// A message of a room we are not in was stored (`len` bytes of envelope).
    pub(super) fn relayed(&mut self, len: usize) {
        if let Some(b) = &mut self.relayed {
            *b += len as u64;
        }
    }

    /// We joined or left a room: what counts as relayed changed.
    pub(super) fn rooms_changed(&mut self) {
        self.relayed = None;
    }

    /// Messages were deleted: the snapshot is read anew.
    pub(super) fn changed(&mut self) {
        self.added.clear();
        self.dirty = true;
    }
}

impl Sync {
    /// Our items in the window: read from the store at start and after pruning, and kept up to
    /// date by folding in what was stored since (a sort of an almost sorted list; no read).
    fn items(&mut self, ctx: &mut Ctx<'_>) -> ItemSet {
        ctx.flush();
        let max = self.sched.limits().max_items;
        let horizon = horizon_ms(&ctx.io.config);
        if self.dirty {
            match ctx.io.store.sync_items(horizon, max) {
                Ok(items) => {
                    self.items = ItemSet::new(items, max);
                    self.dirty = false;
                    self.added.clear();
                }
                Err(e) => tracing::warn!("reading the sync window: {e}"),
            }
        } else if !self.added.is_empty() {
            let added = std::mem::take(&mut self.added);
            self.items = ItemSet::new(
                self.items
                    .iter()
                    .chain(added)
                    .filter(|(ts, _)| *ts >= horizon),
                max,
            );
        }
        self.items.clone()
    }

    /// A peer announced its protocols: if it speaks sync, reconcile with it now.
    pub(super) fn on_identified(
        &mut self,
        peer: PeerId,
        protocols: &[libp2p::StreamProtocol],
        ctx: &mut Ctx<'_>,
    ) {
        if !protocols.contains(&SYNC_PROTOCOL) || !ctx.io.connected(&peer) {
            return;
        }
        let offers = protocols.contains(&SYNC_OFFERS);
        self.run(Input::Capable { peer, offers }, ctx);
    }

    /// Rounds due, expired sessions, and the bounds on what we keep for others.
    pub(super) fn maintain(&mut self, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        self.sched.set_interval(ctx.io.config.sync_interval);
        self.run(Input::Maintain, ctx);
        if self
            .last_prune
            .is_none_or(|t| now.saturating_duration_since(t) >= PRUNE_INTERVAL)
        {
            self.last_prune = Some(now);
            ctx.flush();
            let horizon = horizon_ms(&ctx.io.config);
            match ctx
                .io
                .store
                .prune_relayed(horizon, ctx.io.config.relay_budget, &mut self.relayed)
            {
                Ok(0) => {}
                Ok(n) => {
                    tracing::debug!("dropped {n} relayed messages (window or budget)");
                    self.changed();
                }
                Err(e) => ctx
                    .io
                    .write_failed(Write::Other("the pruning of relayed messages"), &e),
            }
        }
    }

    /// When [`Sync::tick`] is due.
    pub(super) fn wake(&self) -> Option<Instant> {
        self.sched.next_deadline()
    }

    /// The scheduler's wake-up came.
    pub(super) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        self.run(Input::Tick, ctx);
    }

    /// Reconciles with every capable peer now (after joining a room).
    pub(super) fn all(&mut self, ctx: &mut Ctx<'_>) {
        self.run(Input::All, ctx);
    }

    /// The peer's last connection closed.
    pub(super) fn forget(&mut self, peer: &PeerId, ctx: &mut Ctx<'_>) {
        self.requests.retain(|_, (p, _, _)| p != peer);
        self.run(Input::Gone(*peer), ctx);
    }

    /// Feeds the scheduler `input` and carries out what it asks, answering its questions about
    /// the store at once (the items for rounds, which ids of a fetch we lack).
    fn run(&mut self, input: Input<PeerId>, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        let mut todo: VecDeque<Output<PeerId>> = self.sched.handle(input, now).into();
        while let Some(out) = todo.pop_front() {
            match out {
                Output::NeedItems => {
                    let items = self.items(ctx);
                    let since_ms = horizon_ms(&ctx.io.config);
                    todo.extend(self.sched.handle(Input::Items { items, since_ms }, now));
                }
                Output::Check { token, ids } => {
                    // What arrived meanwhile (by the broadcast or from another peer) is not
                    // asked for again: stored, or taken and on its way to its handler (a
                    // profile taken in this turn is stored by routing once the loop hands it
                    // on, after this; without the seen-cache a node whose two neighbours both
                    // listed a profile fetched it from each).
                    ctx.flush();
                    let ids = match ctx.io.store.missing(&ids) {
                        Ok(lacking) => lacking,
                        Err(e) => {
                            tracing::warn!("checking what to fetch: {e}");
                            ids
                        }
                    };
                    let ids = ids
                        .into_iter()
                        .filter(|id| !ctx.inbound.seen.contains(id))
                        .collect();
                    todo.extend(self.sched.handle(Input::Lacking { token, ids }, now));
                }
                Output::Send {
                    peer,
                    token,
                    request,
                } => self.send(peer, token, request, ctx),
                Output::Strike { peer, why } => self.strike(peer, &why, ctx),
                Output::RoundEnded { peer, stopped } => {
                    if let Some(why) = stopped {
                        tracing::debug!(%peer, "sync round stopped at its budget: {why:?}");
                    }
                    ctx.io.stats.sync_rounds += 1;
                }
                // Read back by `wake` (the scheduler's `next_deadline`).
                Output::WakeAt(_) => {}
            }
        }
    }

    fn send(&mut self, peer: PeerId, token: Token, request: Request, ctx: &mut Ctx<'_>) {
        if matches!(request, Request::Offer(_)) {
            ctx.io.stats.sync_offers_sent += 1;
        }
        ctx.io.stats.sync_bytes_sent += request.encoded_len() as u64;
        let asked = match &request {
            Request::Fetch(ids) => Some(ids.clone()),
            _ => None,
        };
        let id = ctx
            .io
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, request);
        self.requests.insert(id, (peer, token, asked));
    }

    fn respond(
        &mut self,
        channel: ResponseChannel<Response>,
        response: Response,
        ctx: &mut Ctx<'_>,
    ) {
        ctx.io.stats.sync_bytes_sent += response.encoded_len() as u64;
        // Fails only if the peer went away meanwhile.
        let _ = ctx
            .io
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    /// Something no honest node sends came over sync: a strike, as for a bad envelope.
    fn strike(&mut self, peer: PeerId, what: &dyn std::fmt::Display, ctx: &mut Ctx<'_>) {
        tracing::debug!(%peer, "sync: {what}");
        ctx.io.stats.sync_strikes += 1;
        if ctx.io.guard.strike(peer, Instant::now()) {
            ctx.io.block(peer, Reason::Malformed);
        }
    }

    pub(super) fn on_event(
        &mut self,
        event: request_response::Event<Request, Response>,
        ctx: &mut Ctx<'_>,
    ) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message: M::Request {
                    request, channel, ..
                },
                ..
            } => {
                ctx.io.stats.sync_bytes_received += request.encoded_len() as u64;
                if ctx.io.guard.is_blocked(&peer, Instant::now()) {
                    return;
                }
                self.on_request(peer, request, channel, ctx);
            }
            E::Message {
                peer,
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                ctx.io.stats.sync_bytes_received += response.encoded_len() as u64;
                let Some((from, token, asked)) = self.requests.remove(&request_id) else {
                    return;
                };
                debug_assert_eq!(from, peer);
                let input = match asked {
                    Some(asked) => Input::Fetched {
                        token,
                        got: self.check_envelopes(peer, &asked, response, ctx),
                    },
                    None => Input::Answer { token, response },
                };
                self.run(input, ctx);
            }
            E::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((_, token, _)) = self.requests.remove(&request_id) {
                    tracing::debug!(%peer, "sync request failed: {error}");
                    self.run(Input::Failed { token }, ctx);
                    if let request_response::OutboundFailure::Io(e) = &error {
                        if is_malformed(e) {
                            self.strike(peer, e, ctx);
                        }
                    }
                }
            }
            E::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "sync request not answered: {error}");
                if let request_response::InboundFailure::Io(e) = &error {
                    if is_malformed(e) {
                        self.strike(peer, e, ctx);
                    }
                }
            }
            E::ResponseSent { .. } => {}
        }
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request: Request,
        channel: ResponseChannel<Response>,
        ctx: &mut Ctx<'_>,
    ) {
        let now = Instant::now();
        let response = match request {
            Request::Sync(frame)
                if Scheduler::<PeerId>::is_open(&frame) && !self.sched.take_open(peer, now) =>
            {
                Response::Refused(Refusal::Busy)
            }
            Request::Sync(frame) => {
                let items = self.items(ctx);
                let horizon = horizon_ms(&ctx.io.config);
                match self.sched.answer(peer, &frame, &items, horizon, now) {
                    Ok(reply) => Response::Sync(reply),
                    Err(e) if e.is_strike() => {
                        self.strike(peer, &e, ctx);
                        return;
                    }
                    Err(sync::Error::Version) => Response::Refused(Refusal::Version),
                    Err(sync::Error::NoSession) => Response::Refused(Refusal::NoSession),
                    Err(_) => Response::Refused(Refusal::Busy),
                }
            }
            Request::Fetch(ids) => {
                ctx.flush();
                match ctx.io.store.envelopes(&ids) {
                    Ok(envelopes) => wire::pack(envelopes),
                    Err(e) => {
                        tracing::warn!("reading envelopes for a peer: {e}");
                        Response::Refused(Refusal::Busy)
                    }
                }
            }
            // Over its rate: busy, no strike (an honest sender offers again later).
            Request::Offer(_) if !self.sched.take_offer(peer, now) => {
                Response::Refused(Refusal::Busy)
            }
            Request::Offer(ids) => {
                self.on_offer(peer, ids, ctx);
                Response::Noted
            }
        };
        self.respond(channel, response, ctx);
    }

    /// `peer` holds `ids` and tells us we may lack them: the scheduler fetches from it those we
    /// lack (neither stored nor waiting to be written). With no ids, it asks for a round.
    fn on_offer(&mut self, peer: PeerId, ids: Vec<MessageId>, ctx: &mut Ctx<'_>) {
        if ids.is_empty() {
            return self.run(Input::RoundAsked(peer), ctx);
        }
        ctx.flush();
        let missing = match ctx.io.store.missing(&ids) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("checking an offer: {e}");
                return;
            }
        };
        let ids = missing
            .into_iter()
            .filter(|id| !ctx.inbound.seen.contains(id))
            .collect();
        self.run(Input::Offered { peer, ids }, ctx);
    }

    /// Envelopes `peer` sent for our Fetch of `asked`: each is checked like a broadcast one and,
    /// if valid, stored (and shown where the room is joined) marked as synced. What the
    /// scheduler learns: which came, which were new room messages (offered on), `more`.
    fn check_envelopes(
        &mut self,
        peer: PeerId,
        asked: &[MessageId],
        response: Response,
        ctx: &mut Ctx<'_>,
    ) -> Fetched {
        let (envelopes, more) = match response {
            Response::Envelopes { envelopes, more } => (envelopes, more),
            Response::Refused(_) => return Fetched::Refused,
            Response::Sync(_) | Response::Noted => {
                self.strike(peer, &"a sync frame or an offer's answer to a fetch", ctx);
                return Fetched::Struck;
            }
        };
        if more && envelopes.is_empty() {
            // "More" with nothing in it would have us ask forever.
            self.strike(peer, &"an empty answer that claims more", ctx);
            return Fetched::Struck;
        }
        ctx.io.stats.sync_envelopes_received += envelopes.len() as u64;
        let mut open: HashSet<MessageId> = asked.iter().copied().collect();
        let (mut arrived, mut fresh) = (Vec::new(), Vec::new());
        let now = Instant::now();
        for bytes in envelopes {
            let id = MessageId::of(&bytes);
            if !open.remove(&id) {
                self.strike(peer, &"an envelope that was not asked for", ctx);
                return Fetched::Struck;
            }
            arrived.push(id);
            // Arrived by broadcast since we asked (and is checked and stored, or waiting for
            // its batch): verified once, not twice (the one way in counts it a duplicate).
            match ctx
                .inbound
                .accept(ctx.io, ctx.notes, Via::Sync(peer), id, &bytes, now)
            {
                // Room messages new here: offered to the other neighbours, which may lack them
                // too. (Profiles go on the trees.)
                Verdict::Taken { room: true } => fresh.push(id),
                Verdict::Taken { room: false } | Verdict::Known | Verdict::Dropped => {}
                Verdict::Refused(reason) if reason.is_strike() => {
                    // Counted and struck by the one way in.
                    ctx.io.stats.sync_strikes += 1;
                    return Fetched::Struck;
                }
                Verdict::Refused(_) => {}
            }
        }
        Fetched::Envelopes {
            arrived,
            fresh,
            more,
        }
    }
}

/// The start of the sync window, on our clock.
fn horizon_ms(config: &crate::Config) -> u64 {
    now_ms().saturating_sub(config.sync_window.as_millis() as u64)
}
