//! When history sync runs and what it fetches from whom: the node's side of sync as a sans-io
//! state machine, [`Scheduler`], over the per-peer sessions ([`Peers`]) and the offers
//! ([`Offers`]). The node carries out its outputs (libp2p requests, the store, the one way in for
//! envelopes, counters); nothing here reads a clock or touches a socket or the disk.
//!
//! Pull, plus offers: a node starts its own rounds and fetches its own `need`; what it holds that a peer
//! lacks, the peer fetches in its own round, or at once when offered (see [`Offers`]). So a node
//! only ever receives envelopes it asked for.
//!
//! # When rounds start
//!
//! - When a peer says it speaks sync ([`Input::Capable`], on identify), and from the node's
//!   maintenance tick ([`Input::Maintain`]) every [`Config::interval`]; never sooner than
//!   [`MIN_ROUND_GAP`] after the last with that peer (identify reports a peer again on every new
//!   connection), and one at a time per peer.
//! - After a join ([`Input::All`]): with every capable peer, whatever the gap.
//! - When a round stopped at its budget ([`Next::Stopped`]), or an offer held more than our
//!   budget: again as soon as what it found has been fetched, so a large difference converges at
//!   the speed of the link, not one budget per interval.
//! - When a peer asks for one (an offer with no ids, [`Input::RoundAsked`]) or a fetch failed:
//!   once nothing else of ours with that peer is under way and [`ROUND_REQUEST_GAP`] has passed
//!   since our last round with it began, which keeps us within its bucket of opens.
//! - A round refused as busy is due again at the next maintenance tick.
//!
//! # What is fetched from whom
//!
//! The `need` of a round and the ids of an offer (those the store lacks) queue per peer, at most a
//! round's `need` budget ([`Limits::max_need`]) each. One fetch per peer is in flight at a time,
//! at most [`wire::MAX_FETCH`] ids, no id twice; an id being fetched from another peer waits in
//! the queue for that answer and is asked of this one only if it did not come (neighbours offer
//! what they all took at once). What did not fit an answer (`more`) is asked next. Envelopes new
//! to us (the node checks and stores them) are offered to the other neighbours; the `have` of our
//! rounds is offered to that peer.
//!
//! # The store stays in the node
//!
//! Two decisions need the store, and each is an output the node answers at once with an input
//! (before any other input):
//! - [`Output::NeedItems`]: rounds are waiting to start; pass the item snapshot and the window
//!   start with [`Input::Items`]. Asked once however many rounds wait.
//! - [`Output::Check`]: a fetch is about to go; pass those of its ids the store lacks with
//!   [`Input::Lacking`] (what arrived meanwhile, by the trees or from another peer, is not asked
//!   again). The fetch then goes out as [`Output::Send`] with the same token, or, if nothing is
//!   lacking, the queue moves on.
//!
//! The node filters an offer's ids itself before [`Input::Offered`] (those it stores or has seen
//! are not passed), and checks fetched envelopes itself before [`Input::Fetched`].
//!
//! # Requests and tokens
//!
//! Every request we send is an [`Output::Send`] with a [`Token`]; the node maps its transport's
//! request id to it and reports the answer ([`Input::Answer`], or [`Input::Fetched`] for a
//! fetch) or the failure ([`Input::Failed`]) with that token. Answering a peer's requests is
//! synchronous and needs no scheduling: [`Scheduler::take_open`] and [`Scheduler::take_offer`]
//! say whether the peer is within its rate (beyond it: refuse as busy, no strike), and
//! [`Scheduler::answer`] answers a session frame.
//!
//! # Timers
//!
//! Due work is done on every input; [`Output::WakeAt`] (and [`Scheduler::next_deadline`]) says
//! when to pass [`Input::Tick`] for work that waits for a time (an offer's gap, a round asked
//! for). Rounds due by the interval and expired sessions are the maintenance tick's: coarse.
//!
//! # Bounds
//!
//! Every table is keyed by peer and holds at most [`Config::max_peers`] of them (the node passes
//! a bound its connection limit keeps it far under; entries go when a peer is gone): per peer one
//! round, one fetch and one offer in flight, one queue of at most a round's `need` budget, one
//! bucket of opens. Sessions are bounded by [`Peers`].
//!
//! The simulator in `schedule/sim.rs` runs it on every node of a lossy, churning mesh and
//! asserts convergence.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::wire::{self, Refusal, Request, Response};
use super::{Error, ItemSet, Limits, Next, Offers, Peers, Step, Stop, TAG_OPEN};
use crate::envelope::MessageId;

/// A round is not started again with a peer sooner than this after the last one (identify
/// reports a peer again on every new connection).
pub const MIN_ROUND_GAP: Duration = Duration::from_secs(5);
/// Rounds a peer may open with us at once, and per second after that (a token bucket; an Open
/// beyond it is refused as busy, no strike): each costs a pass over our whole item set.
pub const OPEN_BURST: f64 = 4.0;
pub const OPENS_PER_SEC: f64 = 1.0;
/// No round starts sooner than this after our last round with that peer began, whatever made it
/// due (a round asked for, a continuation, a join): within the peer's bucket of opens
/// ([`OPENS_PER_SEC`]), so an honest node is never refused as busy (the simulator asserts it).
pub const ROUND_REQUEST_GAP: Duration = Duration::from_secs(1);
/// Default [`Config::max_peers`].
pub const MAX_PEERS: usize = 1024;

/// The scheduler's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The bounds of one round (passed to [`Peers`]).
    pub limits: Limits,
    /// A round with each capable peer at least this often (the node's `sync_interval`).
    pub interval: Duration,
    /// Most peers tracked in any table; beyond, a new peer is not synced with (its entries would
    /// have gone with a peer that left).
    pub max_peers: usize,
}

impl Config {
    pub fn new(limits: Limits, interval: Duration) -> Self {
        Self {
            limits,
            interval,
            max_peers: MAX_PEERS,
        }
    }
}

/// Names a request we sent, so its answer finds its way back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(u64);

/// What the node hands the scheduler.
#[derive(Debug, Clone)]
pub enum Input<P> {
    /// `peer` is connected and speaks sync (identify); `offers`: it takes offers. A round starts.
    Capable { peer: P, offers: bool },
    /// `peer`'s last connection closed: everything about it goes, its requests in flight too
    /// (their answers are not passed).
    Gone(P),
    /// We joined a room: a round with every capable peer now.
    All,
    /// The node's maintenance tick (every few seconds): rounds due by the interval, expired
    /// sessions.
    Maintain,
    /// The time of the last [`Output::WakeAt`] came (early or extra ticks are harmless).
    Tick,
    /// The answer to [`Output::NeedItems`]: our items and the start of our window.
    Items { items: ItemSet, since_ms: u64 },
    /// The answer to [`Output::Check`]: those of its ids the store lacks, in their order.
    Lacking { token: Token, ids: Vec<MessageId> },
    /// The answer to a round's frame or an offer.
    Answer { token: Token, response: Response },
    /// The answer to a fetch, checked by the node.
    Fetched { token: Token, got: Fetched },
    /// A request failed (timed out, the stream broke); the node strikes a malformed answer
    /// itself.
    Failed { token: Token },
    /// `peer` offered ids; these are the ones we lack (neither stored nor seen). The node took
    /// the offer ([`Scheduler::take_offer`]) and answers it as noted.
    Offered { peer: P, ids: Vec<MessageId> },
    /// `peer` offered no ids: it holds more than an offer lists and asks for a round.
    RoundAsked(P),
}

/// A fetch's answer, as the node found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The peer refused: what was queued for it is left to rounds.
    Refused,
    /// The answer held something no honest node sends (the node struck the peer): what was
    /// queued waits for the next fetch from it.
    Struck,
    /// Envelopes: the ids that came (all were asked for), those new to us (taken, and room
    /// messages: offered on), and whether held ones did not fit.
    Envelopes {
        arrived: Vec<MessageId>,
        fresh: Vec<MessageId>,
        more: bool,
    },
}

/// What the scheduler asks of the node.
#[derive(Debug, PartialEq, Eq)]
pub enum Output<P> {
    /// Rounds wait to start: pass [`Input::Items`] now.
    NeedItems,
    /// A fetch is about to go: pass [`Input::Lacking`] with those of `ids` the store lacks.
    Check { token: Token, ids: Vec<MessageId> },
    /// Send `request` to `peer`; report its answer or failure with `token`.
    Send {
        peer: P,
        token: Token,
        request: Request,
    },
    /// Something no honest node sends came from `peer` over sync: a strike.
    Strike { peer: P, why: Strike },
    /// A round we started ended (`stopped`: at its budget; another follows). The node counts it.
    RoundEnded { peer: P, stopped: Option<Stop> },
    /// Pass [`Input::Tick`] at this time (replaces earlier wake-ups).
    WakeAt(Instant),
}

/// Why a peer is struck.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Strike {
    #[error("{0}")]
    Session(#[source] Error),
    #[error("envelopes or an offer's answer to a sync frame")]
    NotAReply,
    #[error("a sync frame or envelopes in answer to an offer")]
    NotNoted,
}

/// What a request in flight was for.
#[derive(Debug)]
enum Pending {
    Sync,
    /// The ids asked for (before [`Input::Lacking`]: the ids to check).
    Fetch(Vec<MessageId>),
    /// The ids offered (none: a request for a round).
    Offer(Vec<MessageId>),
}

/// The node's side of history sync, generic over the peer id so tests can use `u32`.
///
/// Ordered maps throughout, so that what is due at once comes out in the same order on every
/// run (the simulator is deterministic).
#[derive(Debug)]
pub struct Scheduler<P> {
    config: Config,
    peers: Peers<P>,
    /// Capable peers, with the start of our last round with each (`None`: a round is due).
    capable: BTreeMap<P, Option<Instant>>,
    /// When our last round with each capable peer began (kept when a round is made due).
    began: BTreeMap<P, Instant>,
    /// Capable peers that take offers.
    takes_offers: BTreeSet<P>,
    /// Ids to fetch from each peer.
    wanted: BTreeMap<P, VecDeque<MessageId>>,
    requests: BTreeMap<Token, (P, Pending)>,
    next_token: u64,
    /// Peers whose last round stopped at its budget: another follows its fetches.
    unfinished: BTreeSet<P>,
    /// Peers that asked us for a round (or whose fetch failed).
    requested: BTreeSet<P>,
    /// Rounds waiting for [`Input::Items`], in the order they were due.
    starting: Vec<P>,
    /// Each peer's bucket of rounds it may open with us: tokens and when counted.
    opened: BTreeMap<P, (f64, Instant)>,
    offers: Offers<P>,
    /// The last [`Output::WakeAt`].
    wake: Option<Instant>,
    out: Vec<Output<P>>,
}

impl<P: Eq + Hash + Ord + Copy> Scheduler<P> {
    /// # Panics
    /// If the limits are invalid (see [`Limits::frame_size`]) or `max_peers` is zero.
    pub fn new(config: Config) -> Self {
        assert!(config.max_peers > 0, "sync needs room for one peer");
        Self {
            config,
            peers: Peers::new(config.limits),
            capable: BTreeMap::new(),
            began: BTreeMap::new(),
            takes_offers: BTreeSet::new(),
            wanted: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_token: 0,
            unfinished: BTreeSet::new(),
            requested: BTreeSet::new(),
            starting: Vec::new(),
            opened: BTreeMap::new(),
            offers: Offers::new(config.max_peers),
            wake: None,
            out: Vec::new(),
        }
    }

    pub fn limits(&self) -> &Limits {
        self.peers.limits()
    }

    /// Sets [`Config::interval`] (the node reads its `sync_interval` at each maintenance tick).
    pub fn set_interval(&mut self, interval: Duration) {
        self.config.interval = interval;
    }

    /// When [`Input::Tick`] next has work (`None`: only inputs bring any).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.wake
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, input: Input<P>, now: Instant) -> Vec<Output<P>> {
        match input {
            Input::Capable { peer, offers } => self.capable(peer, offers, now),
            Input::Gone(peer) => self.forget(peer, now),
            Input::All => {
                let peers: Vec<P> = self.capable.keys().copied().collect();
                for peer in peers {
                    // A join is worth a round even right after another.
                    self.capable.insert(peer, None);
                    self.start_round(peer, now);
                }
            }
            Input::Maintain => self.maintain(now),
            Input::Tick => {}
            Input::Items { items, since_ms } => self.start_waiting(&items, since_ms, now),
            Input::Lacking { token, ids } => self.lacking(token, ids, now),
            Input::Answer { token, response } => match self.requests.remove(&token) {
                Some((peer, Pending::Sync)) => self.on_reply(peer, response, now),
                Some((peer, Pending::Offer(offered))) => {
                    self.on_offer_answer(peer, offered, response, now);
                }
                // A fetch's answer comes as `Fetched`; put it back.
                Some((peer, fetch @ Pending::Fetch(_))) => {
                    self.requests.insert(token, (peer, fetch));
                }
                None => {}
            },
            Input::Fetched { token, got } => match self.requests.remove(&token) {
                Some((peer, Pending::Fetch(asked))) => {
                    self.on_fetched(peer, asked, got, now);
                    self.fetch_deferred(peer, now);
                }
                // Not a fetch: put it back.
                Some(other) => {
                    self.requests.insert(token, other);
                }
                None => {}
            },
            Input::Failed { token } => self.failed(token, now),
            Input::Offered { peer, ids } => self.offered(peer, ids, now),
            Input::RoundAsked(peer) => {
                if self.capable.contains_key(&peer) {
                    self.requested.insert(peer);
                }
            }
        }
        self.tick(now);
        std::mem::take(&mut self.out)
    }

    /// `peer` opens a round with us: true if it is within its bucket ([`OPEN_BURST`],
    /// [`OPENS_PER_SEC`]; a token is spent), false if the Open is to be refused as busy (no
    /// strike).
    pub fn take_open(&mut self, peer: P, now: Instant) -> bool {
        if !self.opened.contains_key(&peer) && self.opened.len() >= self.config.max_peers {
            // The bucket idle longest has refilled the most: forgetting it forgets the least.
            if let Some(oldest) = self.opened.iter().min_by_key(|(_, (_, at))| *at) {
                let oldest = *oldest.0;
                self.opened.remove(&oldest);
            }
        }
        let (tokens, at) = self.opened.entry(peer).or_insert((OPEN_BURST, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * OPENS_PER_SEC;
        *tokens = (*tokens + refill).min(OPEN_BURST);
        *at = now;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }

    /// `peer` makes an offer: true if it is within [`super::OFFER_RATE`], false if it is to be
    /// refused as busy (no strike).
    pub fn take_offer(&mut self, peer: P, now: Instant) -> bool {
        self.offers.take(peer, now)
    }

    /// Answers `peer`'s session frame (an `Open` the node let through [`Scheduler::take_open`],
    /// or a `Query`) from our `items` and the start of our window; see [`Peers::on_request`].
    pub fn answer(
        &mut self,
        peer: P,
        frame: &[u8],
        items: &ItemSet,
        horizon_ms: u64,
        now: Instant,
    ) -> Result<Vec<u8>, Error> {
        self.peers.on_request(peer, frame, items, horizon_ms, now)
    }

    /// Whether `frame` opens a session (to be rate-limited with [`Scheduler::take_open`] before
    /// it is decoded).
    pub fn is_open(frame: &[u8]) -> bool {
        frame.first() == Some(&TAG_OPEN)
    }

    /// Capable peers.
    pub fn capable_count(&self) -> usize {
        self.capable.len()
    }

    /// Requests in flight (at most three per peer: a round, a fetch, an offer).
    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }

    /// The peers a fetch in flight asks for `id` (the simulator checks there is at most one).
    pub fn fetching_from(&self, id: &MessageId) -> Vec<P> {
        self.requests
            .values()
            .filter(|(_, what)| matches!(what, Pending::Fetch(ids) if ids.contains(id)))
            .map(|(p, _)| *p)
            .collect()
    }
}

impl<P: Eq + Hash + Ord + Copy> Scheduler<P> {
    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    fn send(&mut self, peer: P, request: Request, what: Pending) {
        let token = self.token();
        self.requests.insert(token, (peer, what));
        self.out.push(Output::Send {
            peer,
            token,
            request,
        });
    }

    fn strike(&mut self, peer: P, why: Strike) {
        self.out.push(Output::Strike { peer, why });
    }

    fn capable(&mut self, peer: P, offers: bool, now: Instant) {
        if !self.capable.contains_key(&peer) && self.capable.len() >= self.config.max_peers {
            return;
        }
        self.capable.entry(peer).or_insert(None);
        if offers {
            self.takes_offers.insert(peer);
        }
        self.start_round(peer, now);
    }

    fn forget(&mut self, peer: P, now: Instant) {
        self.peers.forget(&peer);
        self.capable.remove(&peer);
        self.began.remove(&peer);
        self.wanted.remove(&peer);
        self.unfinished.remove(&peer);
        self.opened.remove(&peer);
        self.requests.retain(|_, (p, _)| *p != peer);
        self.offers.forget(&peer);
        self.takes_offers.remove(&peer);
        self.requested.remove(&peer);
        self.starting.retain(|p| *p != peer);
        // Its fetches in flight are gone with it.
        self.fetch_deferred(peer, now);
    }

    /// A round of ours with `peer` is under way, or waits for the items.
    fn round_in_flight(&self, peer: &P) -> bool {
        self.peers.in_flight(peer) || self.starting.contains(peer)
    }

    fn fetch_in_flight(&self, peer: &P) -> bool {
        self.requests
            .values()
            .any(|(p, what)| p == peer && matches!(what, Pending::Fetch(_)))
    }

    fn fetches(&self, of: impl Fn(&P) -> bool) -> HashSet<MessageId> {
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
    fn busy_with(&self, peer: &P) -> bool {
        self.round_in_flight(peer) || self.wanted.contains_key(peer) || self.fetch_in_flight(peer)
    }

    /// Starts a round with `peer` unless one is under way or one just ran: asks for the items.
    fn start_round(&mut self, peer: P, now: Instant) {
        match self.capable.get(&peer) {
            None => return,
            Some(Some(last)) if now.saturating_duration_since(*last) < MIN_ROUND_GAP => return,
            Some(_) => {}
        }
        if self.round_in_flight(&peer) {
            return;
        }
        if self
            .began
            .get(&peer)
            .is_some_and(|t| now < *t + ROUND_REQUEST_GAP)
        {
            // Too soon for the peer's bucket: it starts when the gap has passed.
            self.requested.insert(peer);
            return;
        }
        if self.starting.is_empty() {
            self.out.push(Output::NeedItems);
        }
        self.starting.push(peer);
    }

    /// The items came: the rounds waiting start (those [`Peers`] has room for; the others are
    /// due again at the next maintenance tick).
    fn start_waiting(&mut self, items: &ItemSet, since_ms: u64, now: Instant) {
        for peer in std::mem::take(&mut self.starting) {
            if !self.capable.contains_key(&peer) {
                continue;
            }
            if let Ok(frame) = self.peers.start(peer, items, since_ms, now) {
                self.capable.insert(peer, Some(now));
                self.began.insert(peer, now);
                self.send(peer, Request::Sync(frame), Pending::Sync);
            }
        }
    }

    /// Rounds due by the interval, and expired sessions.
    fn maintain(&mut self, now: Instant) {
        self.peers.expire(now);
        let interval = self.config.interval;
        let due: Vec<P> = self
            .capable
            .iter()
            .filter(|(_, last)| last.is_none_or(|t| now.saturating_duration_since(t) >= interval))
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            self.start_round(peer, now);
        }
    }

    /// Sends the offers that are due and starts the rounds peers asked for that may start now;
    /// sets the next wake-up for what must wait.
    fn tick(&mut self, now: Instant) {
        for (peer, ids) in self.offers.due(now) {
            self.send(peer, Request::Offer(ids.clone()), Pending::Offer(ids));
        }
        let mut wake = self.offers.wake();
        let requested: Vec<P> = self.requested.iter().copied().collect();
        for peer in requested {
            if !self.capable.contains_key(&peer) {
                self.requested.remove(&peer);
                continue;
            }
            if self.busy_with(&peer) {
                // Whatever ends it is an input, and each is followed by a tick.
                continue;
            }
            let due = self
                .began
                .get(&peer)
                .map_or(now, |t| *t + ROUND_REQUEST_GAP);
            if due <= now {
                self.requested.remove(&peer);
                // Asked for, so due whatever the gap since the last round; if it cannot start
                // now (too many sessions), the maintenance tick starts it.
                self.capable.insert(peer, None);
                self.start_round(peer, now);
            } else {
                wake = Some(wake.map_or(due, |w| w.min(due)));
            }
        }
        if wake != self.wake {
            self.wake = wake;
            if let Some(w) = wake {
                self.out.push(Output::WakeAt(w));
            }
        }
    }

    /// `peer` answered a frame of our round.
    fn on_reply(&mut self, peer: P, response: Response, now: Instant) {
        let frame = match response {
            Response::Sync(frame) => frame,
            Response::Refused(why) => {
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
                self.strike(peer, Strike::NotAReply);
                return;
            }
        };
        match self.peers.on_reply(peer, &frame, now) {
            Ok(Step { have, need, next }) => {
                if !have.is_empty() && self.takes_offers.contains(&peer) {
                    // The peer lacks these: it fetches them now, not at its next round.
                    self.offers.offer(peer, have);
                }
                if !need.is_empty() {
                    let budget = self.peers.limits().max_need;
                    if let Some(queue) = self.queue(peer) {
                        for id in need {
                            if queue.len() >= budget {
                                break;
                            }
                            queue.push_back(id);
                        }
                    }
                    self.fetch_next(peer, now);
                }
                match next {
                    Next::Send(frame) => self.send(peer, Request::Sync(frame), Pending::Sync),
                    Next::Done => self.out.push(Output::RoundEnded {
                        peer,
                        stopped: None,
                    }),
                    Next::Stopped(why) => {
                        self.out.push(Output::RoundEnded {
                            peer,
                            stopped: Some(why),
                        });
                        self.unfinished.insert(peer);
                        // Continued once its finds are fetched (or now, if there were none).
                        self.fetch_next(peer, now);
                    }
                }
            }
            Err(e) if e.is_strike() => self.strike(peer, Strike::Session(e)),
            Err(_) => {}
        }
    }

    /// `peer` answered our offer of `offered`.
    fn on_offer_answer(
        &mut self,
        peer: P,
        offered: Vec<MessageId>,
        response: Response,
        now: Instant,
    ) {
        match response {
            Response::Noted => self.offers.noted(peer),
            Response::Refused(Refusal::Busy) => self.offers.busy(peer, offered, now),
            // A refusal an offer does not get: nothing to do again, no strike.
            Response::Refused(_) => self.offers.noted(peer),
            Response::Sync(_) | Response::Envelopes { .. } => {
                self.offers.noted(peer);
                self.strike(peer, Strike::NotNoted);
            }
        }
    }

    fn failed(&mut self, token: Token, now: Instant) {
        let Some((peer, what)) = self.requests.remove(&token) else {
            return;
        };
        match what {
            Pending::Sync => self.peers.forget(&peer),
            // What it named is left to rounds.
            Pending::Offer(_) => self.offers.noted(peer),
            Pending::Fetch(_) => {
                // What was still to fetch from it is found again by a round, a second on (not
                // left to the periodic one).
                self.wanted.remove(&peer);
                if self.capable.contains_key(&peer) {
                    self.requested.insert(peer);
                }
                self.fetch_deferred(peer, now);
            }
        }
    }

    /// `peer`'s queue of ids to fetch; `None` if no table has room for another peer.
    fn queue(&mut self, peer: P) -> Option<&mut VecDeque<MessageId>> {
        if !self.wanted.contains_key(&peer) && self.wanted.len() >= self.config.max_peers {
            return None;
        }
        Some(self.wanted.entry(peer).or_default())
    }

    /// `peer` offered `ids` we lack: we fetch them from it.
    fn offered(&mut self, peer: P, ids: Vec<MessageId>, now: Instant) {
        // Not what is on its way from this peer (asked already).
        let fetching = self.fetches(|p| *p == peer);
        let budget = self.peers.limits().max_need;
        let Some(queue) = self.queue(peer) else {
            return;
        };
        let mut queued: HashSet<MessageId> = queue.iter().copied().collect();
        let mut overflow = false;
        for id in ids {
            if fetching.contains(&id) || !queued.insert(id) {
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
        self.fetch_next(peer, now);
    }

    /// Asks `peer` for the next batch of what we lack, unless a fetch is in flight; with nothing
    /// left to fetch, continues a round that stopped at its budget.
    fn fetch_next(&mut self, peer: P, now: Instant) {
        if self.fetch_in_flight(&peer) {
            return;
        }
        // Asked of another peer already: those wait for its answer, and are asked of this one
        // only if it does not bring them.
        let elsewhere = self.fetches(|p| *p != peer);
        let Some(queue) = self.wanted.get_mut(&peer) else {
            if self.unfinished.remove(&peer) && !self.round_in_flight(&peer) {
                if let Some(last) = self.capable.get_mut(&peer) {
                    *last = None;
                }
                self.start_round(peer, now);
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
        // The node leaves out what arrived meanwhile: `Input::Lacking`.
        let token = self.token();
        self.requests
            .insert(token, (peer, Pending::Fetch(batch.clone())));
        self.out.push(Output::Check { token, ids: batch });
    }

    /// The node checked a fetch's ids against the store.
    fn lacking(&mut self, token: Token, ids: Vec<MessageId>, now: Instant) {
        let Some((peer, Pending::Fetch(asked))) = self.requests.get_mut(&token) else {
            return;
        };
        let peer = *peer;
        if ids.is_empty() {
            self.requests.remove(&token);
            return self.fetch_next(peer, now);
        }
        asked.clone_from(&ids);
        self.out.push(Output::Send {
            peer,
            token,
            request: Request::Fetch(ids),
        });
    }

    /// A fetch from `done` ended (answered, refused, failed, or the peer left): what other
    /// peers' queues held back for it is fetched now if it did not come.
    fn fetch_deferred(&mut self, done: P, now: Instant) {
        let waiting: Vec<P> = self
            .wanted
            .keys()
            .filter(|p| **p != done)
            .copied()
            .collect();
        for peer in waiting {
            self.fetch_next(peer, now);
        }
    }

    /// `peer` answered our fetch of `asked`.
    fn on_fetched(&mut self, peer: P, asked: Vec<MessageId>, got: Fetched, now: Instant) {
        let (arrived, fresh, more) = match got {
            Fetched::Refused => {
                self.wanted.remove(&peer);
                return;
            }
            Fetched::Struck => return,
            Fetched::Envelopes {
                arrived,
                fresh,
                more,
            } => (arrived, fresh, more),
        };
        if !fresh.is_empty() {
            // Not to `peer`, which has them.
            let others: Vec<P> = self
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
            let arrived: HashSet<MessageId> = arrived.into_iter().collect();
            if let Some(queue) = self.queue(peer) {
                for id in asked.iter().rev().filter(|id| !arrived.contains(id)) {
                    queue.push_front(*id);
                }
                if queue.is_empty() {
                    self.wanted.remove(&peer);
                }
            }
        }
        self.fetch_next(peer, now);
    }
}

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
