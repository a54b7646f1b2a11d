//! History sync, wired to libp2p and the store: the reconciliation itself is
//! [`meshchat_core::sync`]; this module decides when to reconcile, carries the frames over
//! `/meshchat/sync/1`, fetches what a session found missing, and hands fetched envelopes to the
//! same check and batched write as the broadcast's.
//!
//! Pull only: each node starts its own sessions (on contact, every `sync_interval`, after a
//! join) and fetches its own `need`; what it has that the peer lacks, the peer fetches in its
//! session. So a node only ever receives envelopes it asked for, and an unasked one is a strike.
//!
//! Offers make it fast ([`meshchat_core::sync::Offers`]): what a node took by sync that was new
//! to it, it offers to its other neighbours at once, and the `have` of its rounds to that peer;
//! a neighbour fetches what it lacks of an offer (or starts a round, when the offer names no
//! ids). So a healed partition converges at a fetch per hop, not a periodic round per hop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use meshchat_core::inbound::Reason;
use meshchat_core::sync::wire::{self, Refusal, Request, Response};
use meshchat_core::sync::{self, ItemSet, Next, Step};
use meshchat_core::MessageId;

use super::context::Ctx;
use super::inbound::{Verdict, Via};
use crate::behaviour::sync::{is_malformed, SYNC_OFFERS, SYNC_PROTOCOL};
use crate::node::now_ms;

/// A round is not started again with a peer sooner than this after the last one (identify
/// reports a peer again on every new connection).
const MIN_ROUND_GAP: std::time::Duration = std::time::Duration::from_secs(5);
/// Rounds a peer may open with us at once, and per second after that (a token bucket; an Open
/// beyond it is refused as busy, no strike): each costs a pass over our whole item set.
const OPEN_BURST: f64 = 4.0;
const OPENS_PER_SEC: f64 = 1.0;
/// How often the relay's share of the store is bounded (window and budget).
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// A round a peer asked for (an offer with no ids) starts no sooner than this after our last
/// round with it began: within the peer's bucket of opens ([`OPENS_PER_SEC`]), so it is not
/// refused as busy.
const ROUND_REQUEST_GAP: std::time::Duration = std::time::Duration::from_secs(1);
/// Neighbours whose offers (to them and from them) are tracked; entries go when a peer
/// disconnects, so this is a bound the connection limit keeps us far under.
const OFFER_PEERS: usize = 1024;

/// What a request in flight was for.
#[derive(Debug)]
enum Pending {
    Sync,
    /// The ids asked for.
    Fetch(Vec<MessageId>),
    /// The ids offered (none: a request for a round).
    Offer(Vec<MessageId>),
}

/// The node's history-sync state. Every table is bounded by the connected peers: sessions by
/// `sync::Peers`, queues by the per-session `need` budget, requests by one sync and one fetch per
/// peer.
#[derive(Debug)]
pub(super) struct Sync {
    peers: sync::Peers<PeerId>,
    /// Our items in the window, as of the last change folded in.
    items: ItemSet,
    /// Stored since the snapshot was made, to be folded in (bounded: past `max_items` the
    /// snapshot is read anew from the store instead).
    added: Vec<(u64, MessageId)>,
    /// The snapshot must be read anew from the store (at start, after pruning).
    dirty: bool,
    /// Connected peers that speak `/meshchat/sync/1`, with the start of the last round.
    capable: HashMap<PeerId, Option<Instant>>,
    /// Ids to fetch from each peer.
    wanted: HashMap<PeerId, VecDeque<MessageId>>,
    requests: HashMap<OutboundRequestId, (PeerId, Pending)>,
    /// Peers whose last round stopped at its budget: another starts as soon as what it found
    /// has been fetched, so a large difference converges at the speed of the link, not one
    /// budget per `sync_interval`.
    unfinished: HashSet<PeerId>,
    last_prune: Option<Instant>,
    /// Bytes of envelopes stored for rooms we are not in (`None`: to be read from the store).
    relayed: Option<u64>,
    /// Each peer's bucket of rounds it may open with us ([`OPEN_BURST`], [`OPENS_PER_SEC`]).
    opened: HashMap<PeerId, (f64, Instant)>,
    /// Offers to neighbours (paced) and from them (bounded).
    offers: sync::Offers<PeerId>,
    /// Capable peers that take offers (they list [`SYNC_OFFERS`]).
    takes_offers: HashSet<PeerId>,
    /// Peers that asked us for a round (an offer with no ids): it starts once nothing else of
    /// ours with them is in flight and [`ROUND_REQUEST_GAP`] has passed since our last.
    requested: HashSet<PeerId>,
    /// When [`Sync::tick`] next has work (an offer waiting for its gap, a round asked for).
    pub(super) wake: Option<Instant>,
}

impl Sync {
    pub(super) fn new(limits: sync::Limits) -> Self {
        Self {
            peers: sync::Peers::new(limits),
            items: ItemSet::default(),
            added: Vec::new(),
            dirty: true,
            capable: HashMap::new(),
            wanted: HashMap::new(),
            requests: HashMap::new(),
            unfinished: HashSet::new(),
            last_prune: None,
            relayed: None,
            opened: HashMap::new(),
            offers: sync::Offers::new(OFFER_PEERS),
            takes_offers: HashSet::new(),
            requested: HashSet::new(),
            wake: None,
        }
    }

    /// A message was stored.
    pub(super) fn added(&mut self, timestamp_ms: u64, id: MessageId) {
        if self.dirty {
            return;
        }
        if self.added.len() >= self.peers.limits().max_items {
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

    fn fetch_in_flight(&self, peer: &PeerId) -> bool {
        self.requests
            .values()
            .any(|(p, what)| p == peer && matches!(what, Pending::Fetch(_)))
    }

    /// The ids asked of `peer` in fetches in flight.
    fn fetching(&self, peer: &PeerId) -> HashSet<MessageId> {
        self.fetches(|p| p == peer)
    }

    /// The ids asked of peers other than `peer` in fetches in flight.
    fn fetching_elsewhere(&self, peer: &PeerId) -> HashSet<MessageId> {
        self.fetches(|p| p != peer)
    }

    fn fetches(&self, of: impl Fn(&PeerId) -> bool) -> HashSet<MessageId> {
        self.requests
            .values()
            .filter(|(p, _)| of(p))
            .filter_map(|(_, what)| match what {
                Pending::Fetch(ids) => Some(ids.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Whether anything of ours with `peer` is under way: a round, a fetch, ids to fetch.
    fn busy_with(&self, peer: &PeerId) -> bool {
        self.peers.in_flight(peer) || self.wanted.contains_key(peer) || self.fetch_in_flight(peer)
    }
}

impl Sync {
    /// Our items in the window: read from the store at start and after pruning, and kept up to
    /// date by folding in what was stored since (a sort of an almost sorted list; no read).
    fn items(&mut self, ctx: &mut Ctx<'_>) -> ItemSet {
        ctx.flush();
        let max = self.peers.limits().max_items;
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
        self.capable.entry(peer).or_insert(None);
        if protocols.contains(&SYNC_OFFERS) {
            self.takes_offers.insert(peer);
        }
        self.start_round(peer, ctx);
    }

    /// Starts a reconciliation round with `peer` unless one is in flight or one just ran.
    pub(super) fn start_round(&mut self, peer: PeerId, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        match self.capable.get(&peer) {
            None => return,
            Some(Some(last)) if now.saturating_duration_since(*last) < MIN_ROUND_GAP => return,
            Some(_) => {}
        }
        if self.peers.in_flight(&peer) {
            return;
        }
        let items = self.items(ctx);
        let horizon = horizon_ms(&ctx.io.config);
        match self.peers.start(peer, &items, horizon, now) {
            Ok(frame) => {
                self.capable.insert(peer, Some(now));
                self.send(peer, Request::Sync(frame), Pending::Sync, ctx);
            }
            Err(e) => tracing::debug!(%peer, "no sync round: {e}"),
        }
    }

    /// Rounds due, expired sessions, and the bounds on what we keep for others.
    pub(super) fn maintain(&mut self, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        for peer in self.peers.expire(now) {
            tracing::debug!(%peer, "sync session timed out");
        }
        let interval = ctx.io.config.sync_interval;
        let due: Vec<PeerId> = self
            .capable
            .iter()
            .filter(|(_, last)| last.is_none_or(|t| now.saturating_duration_since(t) >= interval))
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            self.start_round(peer, ctx);
        }
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
                Err(e) => tracing::warn!("bounding relayed messages: {e}"),
            }
        }
        self.tick(ctx);
    }

    /// Sends the offers that are due and starts the rounds peers asked for that may start now;
    /// sets the next wake-up for what must wait.
    pub(super) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        for (peer, ids) in self.offers.due(now) {
            ctx.io.stats.sync_offers_sent += 1;
            self.send(peer, Request::Offer(ids.clone()), Pending::Offer(ids), ctx);
        }
        let mut wake = self.offers.wake();
        let requested: Vec<PeerId> = self.requested.iter().copied().collect();
        for peer in requested {
            let Some(last) = self.capable.get(&peer).copied() else {
                self.requested.remove(&peer);
                continue;
            };
            if self.busy_with(&peer) {
                // Whatever ends it is a sync event, and each is followed by a tick.
                continue;
            }
            let due = last.map_or(now, |t| t + ROUND_REQUEST_GAP);
            if due <= now {
                self.requested.remove(&peer);
                // Asked for, so due whatever the gap since the last round; if it cannot start
                // now (too many sessions), the maintenance tick starts it.
                self.capable.insert(peer, None);
                self.start_round(peer, ctx);
            } else {
                wake = Some(wake.map_or(due, |w| w.min(due)));
            }
        }
        self.wake = wake;
    }

    /// Offers `ids` to `peer` if it takes offers.
    fn offer_to(&mut self, peer: PeerId, ids: impl IntoIterator<Item = MessageId>) {
        if self.takes_offers.contains(&peer) {
            self.offers.offer(peer, ids);
        }
    }

    /// Reconciles with every capable peer now (after joining a room).
    pub(super) fn all(&mut self, ctx: &mut Ctx<'_>) {
        let peers: Vec<PeerId> = self.capable.keys().copied().collect();
        for peer in peers {
            // A join is worth a round even right after another.
            if let Some(last) = self.capable.get_mut(&peer) {
                *last = None;
            }
            self.start_round(peer, ctx);
        }
    }

    /// The peer's last connection closed.
    pub(super) fn forget(&mut self, peer: &PeerId, ctx: &mut Ctx<'_>) {
        self.peers.forget(peer);
        self.capable.remove(peer);
        self.wanted.remove(peer);
        self.unfinished.remove(peer);
        self.opened.remove(peer);
        self.requests.retain(|_, (p, _)| p != peer);
        self.offers.forget(peer);
        self.takes_offers.remove(peer);
        self.requested.remove(peer);
        // Its fetches in flight are gone with it.
        self.fetch_deferred(*peer, ctx);
    }

    fn send(&mut self, peer: PeerId, request: Request, what: Pending, ctx: &mut Ctx<'_>) {
        ctx.io.stats.sync_bytes_sent += request.encoded_len() as u64;
        let id = ctx
            .io
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, request);
        self.requests.insert(id, (peer, what));
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
        self.on_event_inner(event, ctx);
        // An answer may free an offer, the end of a round may let one asked for start.
        self.tick(ctx);
    }

    fn on_event_inner(
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
                let Some((from, what)) = self.requests.remove(&request_id) else {
                    return;
                };
                debug_assert_eq!(from, peer);
                match what {
                    Pending::Sync => self.on_reply(peer, response, ctx),
                    Pending::Fetch(asked) => {
                        self.on_envelopes(peer, asked, response, ctx);
                        self.fetch_deferred(peer, ctx);
                    }
                    Pending::Offer(offered) => self.on_offer_answer(peer, offered, response, ctx),
                }
            }
            E::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((_, what)) = self.requests.remove(&request_id) {
                    tracing::debug!(%peer, "sync request failed: {error}");
                    match what {
                        Pending::Sync => self.peers.forget(&peer),
                        // What it named is left to rounds.
                        Pending::Offer(_) => self.offers.noted(peer),
                        Pending::Fetch(_) => {
                            // What was still to fetch from it is found again by a round, a
                            // second on (not left to the periodic one).
                            self.wanted.remove(&peer);
                            if self.capable.contains_key(&peer) {
                                self.requested.insert(peer);
                            }
                            self.fetch_deferred(peer, ctx);
                        }
                    }
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
        let response = match request {
            Request::Sync(frame)
                if frame.first() == Some(&sync::TAG_OPEN) && self.open_too_soon(peer) =>
            {
                Response::Refused(Refusal::Busy)
            }
            Request::Sync(frame) => {
                let items = self.items(ctx);
                let horizon = horizon_ms(&ctx.io.config);
                match self
                    .peers
                    .on_request(peer, &frame, &items, horizon, Instant::now())
                {
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
            Request::Offer(_) if !self.offers.take(peer, Instant::now()) => {
                Response::Refused(Refusal::Busy)
            }
            Request::Offer(ids) => {
                self.on_offer(peer, ids, ctx);
                Response::Noted
            }
        };
        self.respond(channel, response, ctx);
    }

    /// `peer` holds `ids` and tells us we may lack them: we fetch from it those we lack. With no
    /// ids, it holds more than an offer lists: we start a round with it (see [`Sync::tick`]).
    fn on_offer(&mut self, peer: PeerId, ids: Vec<MessageId>, ctx: &mut Ctx<'_>) {
        if ids.is_empty() {
            if self.capable.contains_key(&peer) {
                self.requested.insert(peer);
            }
            return;
        }
        ctx.flush();
        let missing = match ctx.io.store.missing(&ids) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("checking an offer: {e}");
                return;
            }
        };
        // Neither what is on its way (from this peer: asked already) nor what is waiting to
        // be written.
        let fetching = self.fetching(&peer);
        let budget = self.peers.limits().max_need;
        let queue = self.wanted.entry(peer).or_default();
        let mut queued: HashSet<MessageId> = queue.iter().copied().collect();
        let mut overflow = false;
        for id in missing {
            if ctx.inbound.seen.contains(&id) || fetching.contains(&id) || !queued.insert(id) {
                continue;
            }
            if queue.len() >= budget {
                overflow = true;
                break;
            }
            queue.push_back(id);
        }
        if queue.is_empty() {
            self.wanted.remove(&peer);
        }
        if overflow {
            // More than a round's budget waits: a round follows what is queued.
            self.unfinished.insert(peer);
        }
        self.fetch_next(peer, ctx);
    }

    /// `peer` answered our offer of `offered`.
    fn on_offer_answer(
        &mut self,
        peer: PeerId,
        offered: Vec<MessageId>,
        response: Response,
        ctx: &mut Ctx<'_>,
    ) {
        match response {
            Response::Noted => self.offers.noted(peer),
            Response::Refused(Refusal::Busy) => {
                self.offers.busy(peer, offered, Instant::now());
            }
            // A refusal an offer does not get: nothing to do again, no strike.
            Response::Refused(_) => self.offers.noted(peer),
            Response::Sync(_) | Response::Envelopes { .. } => {
                self.offers.noted(peer);
                self.strike(
                    peer,
                    &"a sync frame or envelopes in answer to an offer",
                    ctx,
                );
            }
        }
    }

    /// Takes a token from `peer`'s bucket of rounds; true if it has none left.
    fn open_too_soon(&mut self, peer: PeerId) -> bool {
        let now = Instant::now();
        // Bounded by the connected peers: entries go when a peer disconnects, and a peer that
        // never connected cannot send requests.
        let (tokens, at) = self.opened.entry(peer).or_insert((OPEN_BURST, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * OPENS_PER_SEC;
        *tokens = (*tokens + refill).min(OPEN_BURST);
        *at = now;
        if *tokens < 1.0 {
            return true;
        }
        *tokens -= 1.0;
        false
    }

    fn on_reply(&mut self, peer: PeerId, response: Response, ctx: &mut Ctx<'_>) {
        let frame = match response {
            Response::Sync(frame) => frame,
            Response::Refused(why) => {
                tracing::debug!(%peer, "sync refused: {why:?}");
                self.peers.forget(&peer);
                if why == Refusal::Busy {
                    // Tried again at the next maintenance tick.
                    if let Some(last) = self.capable.get_mut(&peer) {
                        *last = None;
                    }
                }
                return;
            }
            Response::Envelopes { .. } | Response::Noted => {
                self.peers.forget(&peer);
                self.strike(peer, &"envelopes or an offer's answer to a sync frame", ctx);
                return;
            }
        };
        match self.peers.on_reply(peer, &frame, Instant::now()) {
            Ok(Step { have, need, next }) => {
                if !have.is_empty() {
                    // The peer lacks these: it fetches them now, not at its next round.
                    self.offer_to(peer, have);
                }
                if !need.is_empty() {
                    let budget = self.peers.limits().max_need;
                    let queue = self.wanted.entry(peer).or_default();
                    for id in need {
                        if queue.len() >= budget {
                            break;
                        }
                        queue.push_back(id);
                    }
                    self.fetch_next(peer, ctx);
                }
                match next {
                    Next::Send(frame) => self.send(peer, Request::Sync(frame), Pending::Sync, ctx),
                    Next::Done => ctx.io.stats.sync_rounds += 1,
                    Next::Stopped(why) => {
                        tracing::debug!(%peer, "sync round stopped at its budget: {why:?}");
                        ctx.io.stats.sync_rounds += 1;
                        self.unfinished.insert(peer);
                        // Continued once its finds are fetched (or now, if there were none).
                        self.fetch_next(peer, ctx);
                    }
                }
            }
            Err(e) if e.is_strike() => self.strike(peer, &e, ctx),
            Err(e) => tracing::debug!(%peer, "sync round ended: {e}"),
        }
    }

    /// Asks `peer` for the next batch of what we lack, unless a fetch is in flight; with nothing
    /// left to fetch, continues a round that stopped at its budget.
    fn fetch_next(&mut self, peer: PeerId, ctx: &mut Ctx<'_>) {
        if self.fetch_in_flight(&peer) {
            return;
        }
        // Asked of another peer already: those wait for its answer, and are asked of this one
        // only if it does not bring them (several neighbours offer what they all took at once).
        let elsewhere = self.fetching_elsewhere(&peer);
        let Some(queue) = self.wanted.get_mut(&peer) else {
            if self.unfinished.remove(&peer) && !self.peers.in_flight(&peer) {
                if let Some(last) = self.capable.get_mut(&peer) {
                    *last = None;
                }
                self.start_round(peer, ctx);
            }
            return;
        };
        // No id twice in a Fetch: the answer would hold it twice, and the second copy would be
        // "not asked for" (a round's `need` and an offer may both queue it).
        let (mut batch, mut picked, mut waiting) = (Vec::new(), HashSet::new(), Vec::new());
        while batch.len() < wire::MAX_FETCH {
            let Some(id) = queue.pop_front() else {
                break;
            };
            if elsewhere.contains(&id) {
                waiting.push(id);
            } else if picked.insert(id) {
                batch.push(id);
            }
        }
        for id in waiting.into_iter().rev() {
            queue.push_front(id);
        }
        if queue.is_empty() {
            self.wanted.remove(&peer);
        }
        if batch.is_empty() {
            return;
        }
        // What arrived meanwhile (by the broadcast or from another peer) is not asked for again.
        ctx.flush();
        let batch = match ctx.io.store.missing(&batch) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("checking what to fetch: {e}");
                batch
            }
        };
        if batch.is_empty() {
            return self.fetch_next(peer, ctx);
        }
        self.send(
            peer,
            Request::Fetch(batch.clone()),
            Pending::Fetch(batch),
            ctx,
        );
    }

    /// A fetch from `done` ended (answered, refused, failed, or the peer left): what other
    /// peers' queues held back for it is fetched now if it did not come.
    fn fetch_deferred(&mut self, done: PeerId, ctx: &mut Ctx<'_>) {
        let waiting: Vec<PeerId> = self
            .wanted
            .keys()
            .filter(|p| **p != done)
            .copied()
            .collect();
        for peer in waiting {
            self.fetch_next(peer, ctx);
        }
    }

    /// Envelopes `peer` sent for our Fetch of `asked`: each is checked like a broadcast one and,
    /// if valid, stored (and shown where the room is joined) marked as synced.
    fn on_envelopes(
        &mut self,
        peer: PeerId,
        asked: Vec<MessageId>,
        response: Response,
        ctx: &mut Ctx<'_>,
    ) {
        let (envelopes, more) = match response {
            Response::Envelopes { envelopes, more } => (envelopes, more),
            Response::Refused(_) => {
                self.wanted.remove(&peer);
                return;
            }
            Response::Sync(_) | Response::Noted => {
                self.strike(peer, &"a sync frame or an offer's answer to a fetch", ctx);
                return;
            }
        };
        if more && envelopes.is_empty() {
            // "More" with nothing in it would have us ask forever.
            self.strike(peer, &"an empty answer that claims more", ctx);
            return;
        }
        ctx.io.stats.sync_envelopes_received += envelopes.len() as u64;
        let mut open: HashSet<MessageId> = asked.iter().copied().collect();
        // Room messages new here: offered to the other neighbours, which may lack them too.
        let mut fresh = Vec::new();
        let now = Instant::now();
        for bytes in envelopes {
            let id = MessageId::of(&bytes);
            if !open.remove(&id) {
                self.strike(peer, &"an envelope that was not asked for", ctx);
                return;
            }
            // Arrived by broadcast since we asked (and is checked and stored, or waiting for
            // its batch): verified once, not twice (the one way in counts it a duplicate).
            match ctx
                .inbound
                .accept(ctx.io, ctx.notes, Via::Sync(peer), id, &bytes, now)
            {
                Verdict::Taken { room: true } => fresh.push(id),
                Verdict::Taken { room: false } | Verdict::Known | Verdict::Dropped => {}
                Verdict::Refused(reason) if reason.is_strike() => {
                    // Counted and struck by the one way in.
                    ctx.io.stats.sync_strikes += 1;
                    return;
                }
                Verdict::Refused(_) => {}
            }
        }
        if !fresh.is_empty() {
            // Not to `peer`, which has them. (Profiles go on the trees, above.)
            let others: Vec<PeerId> = self
                .takes_offers
                .iter()
                .filter(|p| **p != peer)
                .copied()
                .collect();
            for other in others {
                self.offers.offer(other, fresh.iter().copied());
            }
        }
        if more {
            // Those that did not fit come next.
            let queue = self.wanted.entry(peer).or_default();
            for id in asked.iter().rev().filter(|id| open.contains(id)) {
                queue.push_front(*id);
            }
        }
        self.fetch_next(peer, ctx);
    }
}

/// The start of the sync window, on our clock.
fn horizon_ms(config: &crate::Config) -> u64 {
    now_ms().saturating_sub(config.sync_window.as_millis() as u64)
}
