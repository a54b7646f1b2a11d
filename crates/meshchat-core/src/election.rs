//! The tracker: one node per connected component keeps the network's roster (who is online, at
//! which addresses), chosen by a Bully election over the mesh (issue 12). [`Election`] is the
//! whole state machine of one node: inputs ([`Input`]) and the time in, outputs ([`Output`]:
//! messages to route or flood, the tracker followed, the roster, a wake-up time) out; no I/O,
//! no clock, generic over the peer id `P` (tests use `u32`). Messages and their bytes: [`wire`].
//!
//! # The election
//!
//! Every node has a *rank* `(priority, id)`, compared in that order, the higher winning; a node
//! without a priority (`--no-tracker`) is not eligible: it never serves, but it follows,
//! registers and prompts elections like any other. A node starts an election when the tracker
//! it follows has been silent for [`Limits::missed_heartbeats`] heartbeat intervals, at once
//! when the routing table loses the route to it ([`Input::Reachability`]), when it has found no
//! tracker by the end of its start-up grace, when it hears a claim (heartbeat or coordinator)
//! of lower rank than its own, and when a lower node's election reaches it. Then:
//!
//! - it routes [`Msg::Election`] to the [`Limits::election_fanout`] highest *live* candidates
//!   above it (known eligible, reachable, not suspected); those that do not answer within
//!   [`Limits::election_timeout`] are *suspected* (skipped, and not counted as alive, until
//!   heard from again) and the next ones are asked. Asking all higher nodes at once, as in the
//!   textbook, costs O(N²) messages when every node notices a dead tracker at the same moment;
//!   asking the highest few costs O(N).
//! - if it knows no live candidate above it but some reachable node's eligibility is unknown
//!   to it, it floods the election once (a flooded one is answered only by the few highest
//!   nodes, those that know fewer than `election_fanout` live ones above them);
//! - a candidate of higher rank that gets it answers [`Msg::Alive`] (Bully's OK) and runs its
//!   own election, unless it follows a live tracker of higher rank than itself at an epoch the
//!   asker has not passed (that tracker's heartbeats will reach the asker), or it is still in
//!   its start-up grace (its election starts when the grace ends). The serving tracker answers
//!   with its [`Msg::Coordinator`] instead (and claims a newer epoch if the asker saw one);
//! - an asker that hears `Alive` waits [`Limits::coordinator_timeout`] for a coordinator, and
//!   starts over if none comes; one that is left with nobody to ask *wins*: it takes the epoch
//!   one above the highest it has seen, floods its coordinator, starts serving
//!   ([`Output::Serving`]) and heartbeats ([`Msg::Heartbeat`] every
//!   [`Limits::heartbeat_interval`]). A node that is not eligible never wins: it waits for a
//!   coordinator, longer each time none comes (a component without an eligible node does not
//!   flood elections forever).
//!
//! The start-up grace is `missed_heartbeats` intervals plus an id-derived fraction of
//! [`Limits::start_spread`]: a network started all at once does not flood an election from
//! every node at the same instant; the later ones have heard of a candidate and ask it.
//!
//! # Following, fencing, converging
//!
//! A claim (coordinator or heartbeat) from `from` at `epoch` is handled in this order:
//!
//! 1. a claimant of lower rank than this (eligible) node is taken over, whatever its epoch, by
//!    an election this node then wins: how a returning higher node takes over. Unless this node
//!    follows a live tracker that outranks the claimant too: that tracker will. A serving node
//!    only needs to act if the claim's epoch is newer than its own (it claims above it, at most
//!    once per heartbeat interval, so nobody can make it flood faster); otherwise its next
//!    heartbeat brings the claimant's followers over, and the claimant itself.
//! 2. a claim older than the tracker followed is *stale*, ignored and counted: a lower epoch, or
//!    the same epoch and a lower rank. With no tracker followed, anything below the highest
//!    epoch ever seen is stale. This fences a tracker that was cut off and comes back.
//! 3. a claim from a node outranked by a live candidate this node knows (other than the
//!    claimant) is refused and counted: that one should take over; the node waits for it, and
//!    elects if it does not come.
//! 4. otherwise it is adopted: [`Output::TrackerChanged`], a registration, and a serving node
//!    steps down ([`Output::Serving`]`(false)`).
//!
//! When a partition heals, each side hears the other's heartbeats within a heartbeat interval:
//! the lower tracker adopts the higher one (same epoch, higher rank; or a newer epoch), or the
//! higher one claims above the lower one's newer epoch; every node that followed the loser
//! adopts the winner and registers with it, so the rosters merge within a round trip.
//!
//! What a node knows of the others: reachability from the routing table; priorities from their
//! own messages (every message but a roster carries its sender's) and from the rosters its
//! tracker sends (which do not override what a node said itself); suspicion from its own
//! elections. All bounded: [`Limits::max_known`] priorities (an unreachable one is forgotten
//! for a new one), [`Limits::max_reachable`] routes.
//!
//! # The roster
//!
//! A node registers with its tracker ([`Msg::Register`]: nick, addresses, priority) when it
//! adopts it (or the tracker claims a new epoch), every [`Limits::register_interval`], when its
//! own entry changes ([`Input::Me`]), and again after [`Limits::register_retry`] (doubling) while
//! unanswered, or at once when a route to the tracker appears. The tracker keys the entry by the
//! authenticated sender (one entry per node, the last registration wins), accepts one
//! registration per node per [`Limits::min_register_gap`] (one more per new epoch), refuses
//! newcomers when [`Limits::max_roster`] are registered (nobody is evicted), drops an entry
//! [`Limits::entry_ttl`] after its last registration, and answers each accepted registration
//! with its roster ([`Msg::Roster`]), cut to one message of at most [`MAX_BODY`] bytes (about
//! 470 typical entries with 32-byte ids) and flagged `truncated` when cut; the cut answer starts
//! at the registrant and wraps around, so that different nodes see different parts of a big
//! roster. The roster is shown and dialed through [`Output::Roster`].
//!
//! Every change of the roster changes its *version*, which rides in every heartbeat; the
//! tracker heartbeats within [`Limits::roster_heartbeat`] of a change. A follower whose copy is
//! of another version, or whose registration is unanswered while heartbeats arrive, registers
//! again (at once after its last answer, else at most every [`Limits::min_answer_gap`]); the
//! tracker answers an unchanged registrant with the roster even within `min_register_gap`, at
//! most every `min_answer_gap` (a sooner ask is answered when the gap has passed). So every node's roster (its `/who`) follows the tracker's
//! within a round trip of a change, not a registration interval.
//!
//! # Trust
//!
//! The node authenticates every message (the sender is the envelope's author, signature
//! checked) before it gets here, and drops replays (envelope ids, timestamps). So no message
//! names its sender: a registration can only be for its sender (one for another id is refused
//! and counted in [`Stats::forged`], as is anything claiming to come from this node itself).
//! Priorities and epochs are what nodes say: a node can claim a high priority and become
//! tracker, as the issue intends (the operator's `--tracker-priority`); a malicious node can
//! raise epochs (up to `u64::MAX`, after which equal epochs go by rank), and can make others
//! elect, but not faster than its messages arrive, and a tracker does not claim faster than
//! once per heartbeat interval.
//!
//! # Wiring it into the node
//!
//! - `Election::new(own id, priority, persisted epoch, Limits::default(), now)`: priority
//!   `None` with `--no-tracker`, else `--tracker-priority` (a bare `--tracker` 1000); the epoch
//!   persisted from [`Election::max_epoch`] (on every [`Output::TrackerChanged`]), 0 at first.
//!   Then [`Input::Me`] (nick and listen/external multiaddrs as text; again when they change),
//!   [`Input::Reachability`] with every destination the routing table has a route to, and
//!   [`Input::Tick`].
//! - routing table `Changed(dests)`: `Input::Reachability(dests.map(|d| (d,
//!   table.next_hop(&d).is_some())))`.
//! - a tracker envelope (kind 4), flooded or routed to us, checked by the inbound path:
//!   [`Msg::decode`] of its body (an error: drop and count), then
//!   `Input::Received { from: author, msg }`; not our own (the trees may echo it: drop it).
//! - [`Output::Send`]: sign the body ([`Msg::encode`]) as a kind-4 envelope and route it
//!   ([`crate::routed`], dropped without a route); [`Output::Flood`]: sign it and publish it on
//!   the broadcast trees (relayed, not stored); [`Output::WakeAt`]: the timer (it replaces the
//!   previous one); the others go to the front-end (status, `/who`) and to dialing (roster
//!   addresses).
//!
//! # What it costs (simulated)
//!
//! `election/simulation.rs` runs every node's election over `crate::sim` with the real
//! routing table routing the unicasts and feeding reachability, and a plain flood (every node
//! relays each flood once to its other neighbours; the broadcast trees cost less); random
//! meshes (a random tree plus n/3 links), links of 2-20 ms plus up to 5 ms of jitter, a crash
//! noticed by the neighbours 100 ms later (or, "silent", after 30 s, like a ping timeout).
//! Messages count an output once (a flood once), frames count link transmissions. Election
//! messages are ELECTION, ALIVE and COORDINATOR; heartbeats are not counted.
//!
//! | the tracker crashes           | N = 6    | N = 20    | N = 50     | N = 1 000       |
//! |-------------------------------|----------|-----------|------------|-----------------|
//! | election messages             | 15       | 71        | 191        | 3 991           |
//! | their frames                  | 28       | 288       | 1 006      | 31 156          |
//! | registrations and rosters     | 14       | 74        | 206        | 4 080           |
//! | all follow the new one        | 180 ms   | 230 ms    | 265 ms     | 350 ms          |
//! | all show its whole roster     | 315 ms   | 590 ms    | 680 ms     | 970 ms          |
//! | silent crash: all follow      | 1.75 s   | 1.75 s    | 1.76 s     | 1.61 s          |
//!
//! (A network that has run a minute, so every node holds a recent roster. Within its first
//! minute a candidate may hold the partial roster of its first registration, see nodes it knows
//! nothing of, and flood its election first: N = 50 then follows in 565 ms, N = 1 000 in
//! 645 ms. After a silent crash, registrations whose route goes through the dead node wait for
//! routing to notice it: N = 50, 30.1 s.) About four routed messages per node: an ELECTION to
//! each of the two highest candidates and their answers.
//!
//! A network started all at once (N = 6, 20, 50, 1 000): 18, 97, 186, 14 941 election messages
//! (61, 491, 1 369, 245 848 frames), everyone showing the best node's whole roster after 2.9,
//! 3.1, 2.3, 3.0 s. Two halves of a mesh that each elected, healed: one tracker and every node
//! showing the merged roster after 195, 260, 745 ms (N = 6, 20, 50). The far end of a 10-node
//! line (the best candidate) crashing: everyone follows the other end after 300 ms (whole
//! roster shown after 700 ms); returning: after 785 ms (1.25 s). Standing cost: one heartbeat flood per 500 ms (2 floods per second), and a
//! registration and a roster answer per node per minute (N = 1 000: 33 messages per second,
//! the roster answers up to 60 KiB each).
//!
//! Correctness: 300 seeded runs in CI (`cargo test -p meshchat-core election`, up to 12 nodes,
//! ~4 s in a debug build) and 10 000 ignored ones of up to 30 nodes (`cargo test --release -p
//! meshchat-core election -- --ignored`, ~1 min): lines (the best candidate at the far end),
//! rings, meshes and grids start together, then 3-15 crashes (trackers, and the likely winner in
//! the middle of the election that follows), restarts (with the persisted epoch: returning
//! higher nodes), cut links, partitions and heals under 0-8 % loss, then 65 s of quiet, healed
//! half of the time. After the start and after the quiet, in every connected component: exactly
//! one node serves, the highest-ranked eligible one (none where no node is eligible, and then
//! nobody follows anyone), every node follows it at its epoch, every node is in its roster and
//! every node's last roster shown lists the whole component; at every step, no node's highest
//! epoch or followed epoch ever goes down. `replay_one_seed` (ignored) replays one run with a
//! trace of every input: `ELECTION_SEED=N ELECTION_TRACE=N cargo test -p meshchat-core
//! replay_one_seed -- --ignored --nocapture`.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use crate::routing::wire::PeerBytes;

mod peers;
mod registration;
mod roster;
mod types;
pub mod wire;

use peers::{Peers, Route};
use roster::{Refused, Resend, Roster};

pub use types::{Input, Limits, Output, Rank, Stats};
pub use wire::{sanitize, Entry, Error, Msg, MAX_ADDRS, MAX_ADDR_LEN, MAX_BODY, MAX_NICK_LEN};

/// The target of every tracker envelope (kind 4).
pub const TARGET: &str = "tracker";
/// Tracker envelopes signed longer ago than this (by their author's clock) are refused as stale:
/// within the nodes' seen-cache memory, so a replay is caught one way or the other.
pub const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10 * 60);
/// The earliest a wake-up is handed out after the input that set it.
const MIN_TICK: std::time::Duration = std::time::Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Following `tracker` (if any), or listening for one until `grace_until` (at start).
    Follower {
        grace_until: Option<Instant>,
    },
    /// Asked `pending` (or flooded); waits for an answer until `until`.
    Electing {
        until: Instant,
    },
    /// Heard `Alive` (or refused an outranked claim): waits for a coordinator until `until`.
    Awaiting {
        until: Instant,
    },
    Leader,
}

/// Why an election starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// The tracker fell silent or unreachable: it is forgotten.
    TrackerGone,
    /// Anything else (no tracker after the grace, a lower claim, a lower node's election, a
    /// coordinator that never came): the tracker followed, if any, is kept meanwhile.
    Other,
}

/// The tracker followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tracker<P> {
    id: P,
    priority: u32,
    epoch: u64,
}

impl<P: Copy> Tracker<P> {
    fn rank(&self) -> Rank<P> {
        Rank {
            priority: self.priority,
            id: self.id,
        }
    }
}

/// One node's election and, when it serves, its roster.
#[derive(Debug)]
pub struct Election<P> {
    me: P,
    priority: Option<u32>,
    limits: Limits,
    phase: Phase,
    tracker: Option<Tracker<P>>,
    /// The highest epoch seen anywhere (persisted by the node across restarts).
    max_epoch: u64,
    /// Last heartbeat (or coordinator, or roster) from the tracker followed.
    last_heard: Instant,
    /// Leader: the next heartbeat.
    next_heartbeat: Instant,
    /// Leader: when the last coordinator went out (a re-claim waits a heartbeat interval).
    last_claim: Option<Instant>,
    /// Follower: the next registration, and the retry delay after it.
    next_register: Option<Instant>,
    register_backoff: Duration,
    /// The tracker answered our registration at its current epoch.
    registered: bool,
    /// The version of the roster it answered with, and when we last asked again for a newer one.
    roster_version: Option<u32>,
    last_query: Option<Instant>,
    /// Not eligible: how long to wait for a coordinator when there is nobody to ask.
    backoff: Duration,
    peers: Peers<P>,
    /// The current election: everyone asked, those of the last round, whether we flooded.
    asked: BTreeSet<P>,
    pending: Vec<P>,
    /// When those of `pending` that have not answered are suspected.
    pending_until: Instant,
    flooded: bool,
    roster: Roster<P>,
    me_entry: Entry<P>,
    /// The wake-up time last handed out.
    wake: Option<Instant>,
    stats: Stats,
}

impl<P: Copy + Ord + Debug + PeerBytes> Election<P> {
    /// A node that has just started: it listens for a tracker for the start-up grace
    /// (`missed_heartbeats` intervals) before it runs an election. `priority` is `None` for a
    /// node that is not eligible; `epoch` the highest it saw in an earlier run (0 if none).
    ///
    /// # Panics
    /// If `limits` are inconsistent (see [`Limits`]).
    pub fn new(me: P, priority: Option<u32>, epoch: u64, limits: Limits, now: Instant) -> Self {
        limits.check();
        let grace = limits.silence() + limits.start_spread.mul_f64(spread(&me));
        Self {
            me,
            priority,
            limits,
            phase: Phase::Follower {
                grace_until: Some(now + grace),
            },
            tracker: None,
            max_epoch: epoch,
            last_heard: now,
            next_heartbeat: now,
            last_claim: None,
            next_register: None,
            register_backoff: limits.register_retry,
            registered: false,
            roster_version: None,
            last_query: None,
            backoff: limits.coordinator_timeout,
            peers: Peers::new(me, limits.max_known, limits.max_reachable),
            asked: BTreeSet::new(),
            pending: Vec::new(),
            pending_until: now,
            flooded: false,
            roster: Roster::new(me),
            me_entry: Entry {
                id: me,
                nick: String::new(),
                addrs: Vec::new(),
                priority,
            },
            wake: None,
            stats: Stats::default(),
        }
    }

    pub fn me(&self) -> P {
        self.me
    }

    /// This node's rank, `None` if it is not eligible.
    pub fn rank(&self) -> Option<Rank<P>> {
        self.priority.map(|priority| Rank {
            priority,
            id: self.me,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The tracker followed (this node, when serving) and its epoch.
    pub fn tracker(&self) -> Option<(P, u64)> {
        self.tracker.map(|t| (t.id, t.epoch))
    }

    /// The priority of the tracker followed (this node's, when serving).
    pub fn tracker_priority(&self) -> Option<u32> {
        self.tracker.map(|t| t.priority)
    }

    /// The tracker followed answered this node's registration at its current epoch (always
    /// true of a serving node).
    pub fn is_registered(&self) -> bool {
        self.phase == Phase::Leader || (self.tracker.is_some() && self.registered)
    }

    pub fn is_serving(&self) -> bool {
        self.phase == Phase::Leader
    }

    /// The highest epoch seen: persist it and pass it to [`Election::new`] after a restart.
    pub fn max_epoch(&self) -> u64 {
        self.max_epoch
    }

    /// The roster this node serves, sorted by id (empty unless serving).
    pub fn served_roster(&self) -> Vec<Entry<P>> {
        self.roster.entries()
    }

    /// Feeds one input; returns what to do about it.
    pub fn handle(&mut self, input: Input<P>, now: Instant) -> Vec<Output<P>> {
        let mut out = Vec::new();
        match input {
            Input::Received { from, .. } if from == self.me => self.stats.forged += 1,
            Input::Received { from, msg } => self.on_msg(from, msg, now, &mut out),
            Input::Reachability(changes) => self.on_reachability(changes, now, &mut out),
            Input::Me { nick, addrs } => {
                self.me_entry = sanitize(Entry {
                    id: self.me,
                    nick,
                    addrs,
                    priority: self.priority,
                });
                if self.phase == Phase::Leader {
                    self.register_self(now);
                    self.roster_changed(now);
                    out.push(self.roster_output());
                } else if self.tracker.is_some() {
                    self.next_register = Some(now);
                }
            }
            Input::Tick => {}
        }
        self.tick(now, &mut out);
        for o in &out {
            match o {
                Output::Send { .. } => self.stats.sent += 1,
                Output::Flood(_) => self.stats.flooded += 1,
                _ => {}
            }
        }
        // Never in the past: a deadline the tick did not move would otherwise be a busy loop.
        let next = self.next_wake().map(|w| w.max(now + MIN_TICK));
        if next != self.wake {
            self.wake = next;
            if let Some(w) = next {
                out.push(Output::WakeAt(w));
            }
        }
        out
    }

    /// When [`Election::handle`] wants [`Input::Tick`] next: the last [`Output::WakeAt`], which a
    /// driver may read here instead of keeping it.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.wake
    }

    fn is_follower(&self) -> bool {
        matches!(self.phase, Phase::Follower { .. })
    }

    fn next_wake(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Follower { grace_until } => match self.tracker {
                Some(t) if t.id != self.me => Some(self.last_heard + self.limits.silence()),
                _ => grace_until,
            },
            Phase::Electing { until } | Phase::Awaiting { until } => Some(until),
            Phase::Leader => Some(self.next_heartbeat),
        };
        let register = self.next_register.filter(|_| {
            self.tracker.is_some_and(|t| t.id != self.me) && self.phase != Phase::Leader
        });
        let expiry = self.roster.next_expiry();
        let resend = (self.phase == Phase::Leader)
            .then(|| self.roster.next_resend(self.limits.min_answer_gap))
            .flatten();
        let suspect = (!self.pending.is_empty()).then_some(self.pending_until);
        [phase, register, expiry, resend, suspect]
            .into_iter()
            .flatten()
            .min()
    }

    /// Those asked that have not answered within the election timeout (even if another one
    /// did) are skipped, and not counted as alive, until they are heard from again.
    fn suspect_silent(&mut self, now: Instant) {
        if now < self.pending_until {
            return;
        }
        for p in std::mem::take(&mut self.pending) {
            if self.peers.suspect(p) {
                self.stats.suspected += 1;
            }
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Output<P>>) {
        self.suspect_silent(now);
        match self.phase {
            Phase::Follower { grace_until } => {
                let start = match self.tracker {
                    Some(t) if t.id != self.me => (now >= self.last_heard + self.limits.silence())
                        .then_some(Reason::TrackerGone),
                    _ => grace_until
                        .is_none_or(|g| now >= g)
                        .then_some(Reason::Other),
                };
                if let Some(reason) = start {
                    self.start_election(reason, now, out);
                }
            }
            Phase::Electing { until } if now >= until => {
                self.suspect_silent(now);
                self.round(now, out);
            }
            Phase::Awaiting { until } if now >= until => {
                self.start_election(Reason::Other, now, out)
            }
            Phase::Leader if now >= self.next_heartbeat => {
                let t = self.tracker.expect("a leader follows itself");
                if self.max_epoch > t.epoch {
                    // A newer epoch turned up meanwhile: claim above it.
                    self.win(now, out);
                } else {
                    self.next_heartbeat = now + self.limits.heartbeat_interval;
                    out.push(Output::Flood(Msg::Heartbeat {
                        epoch: t.epoch,
                        priority: t.priority,
                        roster: self.roster.version(),
                    }));
                }
            }
            _ => {}
        }
        if self.phase == Phase::Leader {
            if self.roster.expire(now) {
                self.roster_changed(now);
                out.push(self.roster_output());
            }
            let epoch = self.tracker.map_or(self.max_epoch, |t| t.epoch);
            for p in self.roster.due_resends(self.limits.min_answer_gap, now) {
                self.stats.roster_resent += 1;
                self.answer(p, epoch, out);
            }
        } else if let (Some(t), Some(at)) = (self.tracker, self.next_register) {
            if now >= at && t.id != self.me {
                self.last_query = Some(now);
                self.next_register = Some(now + self.register_backoff);
                self.register_backoff =
                    (self.register_backoff * 2).min(self.limits.register_interval);
                out.push(Output::Send {
                    to: t.id,
                    msg: Msg::Register {
                        epoch: t.epoch,
                        entry: self.me_entry.clone(),
                    },
                });
            }
        }
    }

    fn on_reachability(&mut self, changes: Vec<(P, bool)>, now: Instant, out: &mut Vec<Output<P>>) {
        let mut tracker_lost = false;
        let mut pending_lost = false;
        for (p, up) in changes {
            let tracker = self.tracker.is_some_and(|t| t.id == p && t.id != self.me);
            match self.peers.route(p, up) {
                Route::Up if tracker && !self.registered => {
                    // A new (or moved) route to the tracker: a registration that was dropped
                    // for want of one, or on a dead route, goes again now.
                    self.next_register = Some(now);
                }
                Route::Lost => {
                    tracker_lost |= tracker;
                    pending_lost |= self.pending.contains(&p);
                }
                Route::Full => self.stats.reachable_full += 1,
                Route::Up | Route::Same => {}
            }
        }
        if tracker_lost {
            if self.is_follower() {
                self.start_election(Reason::TrackerGone, now, out);
                return;
            }
            self.forget_tracker(out);
        }
        if pending_lost
            && matches!(self.phase, Phase::Electing { .. })
            && self.pending.iter().all(|p| !self.peers.is_reachable(p))
        {
            // Everyone asked is gone: no use waiting for their answers.
            self.pending.clear();
            self.round(now, out);
        }
    }

    fn forget_tracker(&mut self, out: &mut Vec<Output<P>>) {
        if self.tracker.is_some_and(|t| t.id != self.me) {
            self.tracker = None;
            self.next_register = None;
            out.push(Output::TrackerChanged {
                tracker: None,
                epoch: self.max_epoch,
            });
        }
    }

    fn learn(&mut self, p: P, priority: Option<u32>) {
        let keep = self.tracker.map(|t| t.id);
        if !self.peers.learn(p, priority, false, keep) {
            self.stats.known_full += 1;
        }
    }

    /// Heard from `p` itself: it is alive (and, if asked, has answered).
    fn heard(&mut self, p: P, priority: Option<u32>) {
        let keep = self.tracker.map(|t| t.id);
        if !self.peers.heard(p, priority, keep) {
            self.stats.known_full += 1;
        }
        self.pending.retain(|q| *q != p);
    }

    fn start_election(&mut self, reason: Reason, now: Instant, out: &mut Vec<Output<P>>) {
        if reason == Reason::TrackerGone {
            // Forget it, so that whoever wins at the same epoch is followed (it could not know
            // that epoch was taken).
            self.forget_tracker(out);
        }
        self.stats.elections += 1;
        self.asked.clear();
        self.pending.clear();
        self.flooded = false;
        self.round(now, out);
    }

    /// Asks the next higher candidates; floods when it knows of none but some reachable nodes
    /// are unknown; wins when nobody is left to ask.
    fn round(&mut self, now: Instant, out: &mut Vec<Output<P>>) {
        let mine = self.rank();
        let mut ask = self.peers.higher(mine, &self.asked);
        ask.truncate(self.limits.election_fanout);
        let msg = |flooded| Msg::Election {
            epoch: self.max_epoch,
            priority: self.priority,
            flooded,
        };
        let until = now + self.limits.election_timeout;
        if !ask.is_empty() {
            for c in &ask {
                self.asked.insert(c.id);
                out.push(Output::Send {
                    to: c.id,
                    msg: msg(false),
                });
            }
            self.pending = ask.iter().map(|c| c.id).collect();
            self.pending_until = until;
            self.phase = Phase::Electing { until };
            return;
        }
        if self.peers.any_unknown() && !self.flooded {
            out.push(Output::Flood(msg(true)));
            self.flooded = true;
            self.phase = Phase::Electing { until };
            return;
        }
        if mine.is_some() {
            self.win(now, out);
        } else {
            // Not a candidate, nobody left to ask: wait for a coordinator, longer each time
            // (a component without an eligible node must not flood elections forever).
            self.phase = Phase::Awaiting {
                until: now + self.backoff,
            };
            self.backoff = (self.backoff * 2).min(self.limits.register_interval);
        }
    }

    fn win(&mut self, now: Instant, out: &mut Vec<Output<P>>) {
        let Some(priority) = self.priority else {
            return;
        };
        self.stats.won += 1;
        self.max_epoch = self.max_epoch.saturating_add(1);
        let was_leader = self.phase == Phase::Leader;
        self.phase = Phase::Leader;
        self.tracker = Some(Tracker {
            id: self.me,
            priority,
            epoch: self.max_epoch,
        });
        self.pending.clear();
        self.backoff = self.limits.coordinator_timeout;
        self.next_register = None;
        self.last_claim = Some(now);
        self.next_heartbeat = now + self.limits.heartbeat_interval;
        out.push(Output::Flood(Msg::Coordinator {
            epoch: self.max_epoch,
            priority,
        }));
        if !was_leader {
            out.push(Output::Serving(true));
            self.roster.clear();
            self.register_self(now);
        }
        out.push(Output::TrackerChanged {
            tracker: Some(self.me),
            epoch: self.max_epoch,
        });
        out.push(self.roster_output());
    }

    /// Serving, we learnt of a newer epoch than ours: claim above it, at once unless we
    /// claimed within the last heartbeat interval (then at the next heartbeat), so that
    /// nobody can make us flood coordinators faster than heartbeats.
    fn claim_above(&mut self, now: Instant, out: &mut Vec<Output<P>>) {
        let recent = self
            .last_claim
            .is_some_and(|t| now < t + self.limits.heartbeat_interval);
        if !recent {
            self.win(now, out);
        }
    }

    fn on_msg(&mut self, from: P, msg: Msg<P>, now: Instant, out: &mut Vec<Output<P>>) {
        match msg {
            Msg::Heartbeat {
                epoch,
                priority,
                roster,
            } => self.on_claim(from, epoch, priority, Some(roster), now, out),
            Msg::Coordinator { epoch, priority } => {
                self.on_claim(from, epoch, priority, None, now, out)
            }
            Msg::Election {
                epoch,
                priority,
                flooded,
            } => self.on_election(from, epoch, priority, flooded, now, out),
            Msg::Alive { epoch, priority } => {
                self.heard(from, Some(priority));
                self.max_epoch = self.max_epoch.max(epoch);
                let higher = self
                    .rank()
                    .is_none_or(|mine| Rank { priority, id: from } > mine);
                if !higher {
                    self.stats.unexpected += 1;
                    return;
                }
                if let Phase::Electing { .. } = self.phase {
                    self.backoff = self.limits.coordinator_timeout;
                    self.phase = Phase::Awaiting {
                        until: now + self.limits.coordinator_timeout,
                    };
                }
            }
            Msg::Register { epoch, entry } => self.on_register(from, epoch, entry, now, out),
            Msg::Roster {
                epoch,
                version,
                entries,
                truncated,
            } => self.on_roster(from, epoch, version, entries, truncated, now, out),
        }
    }

    /// Whether we follow a live tracker (not us) that outranks `r`: it deals with `r`.
    fn covered(&self, r: Rank<P>) -> bool {
        self.is_follower()
            && self
                .tracker
                .is_some_and(|t| t.id != self.me && t.rank() > r)
    }

    /// `from` claims to be the tracker at `epoch` (a coordinator or a heartbeat, which carries
    /// its roster's version).
    fn on_claim(
        &mut self,
        from: P,
        epoch: u64,
        priority: u32,
        roster: Option<u32>,
        now: Instant,
        out: &mut Vec<Output<P>>,
    ) {
        self.heard(from, Some(priority));
        let theirs = Rank { priority, id: from };
        // A claimant of lower rank than ours: take over (a returning node, a healed
        // partition), whatever its epoch, unless the tracker we follow outranks it too.
        if self.rank().is_some_and(|mine| mine > theirs) && !self.covered(theirs) {
            self.max_epoch = self.max_epoch.max(epoch);
            match self.phase {
                // At an epoch not older than ours, our next heartbeat brings its followers
                // over (and the claimant itself); at a newer one we must claim above it.
                Phase::Leader => {
                    if self.tracker.is_some_and(|t| t.epoch < epoch) {
                        self.claim_above(now, out);
                    }
                }
                Phase::Electing { .. } | Phase::Awaiting { .. } => {}
                Phase::Follower { .. } => self.start_election(Reason::Other, now, out),
            }
            return;
        }
        let newer = match self.tracker {
            None => epoch >= self.max_epoch,
            Some(t) => epoch > t.epoch || (epoch == t.epoch && theirs >= t.rank()),
        };
        if !newer {
            self.stats.stale += 1;
            return;
        }
        let following = self.tracker.is_some_and(|t| t.id == from);
        if !following && self.peers.outranked(theirs, from) {
            // That higher one should take over: wait for it (and elect, if it does not).
            self.stats.outranked += 1;
            if self.is_follower() && self.tracker.is_none() {
                self.phase = Phase::Awaiting {
                    until: now + self.limits.coordinator_timeout,
                };
            }
            return;
        }
        self.max_epoch = self.max_epoch.max(epoch);
        self.last_heard = now;
        if following {
            let t = self.tracker.as_mut().expect("following");
            let renewed = epoch > t.epoch;
            t.epoch = epoch;
            t.priority = priority;
            if !self.is_follower() {
                self.phase = Phase::Follower { grace_until: None };
            }
            if renewed {
                self.registered = false;
                self.next_register = Some(now);
                self.register_backoff = self.limits.register_retry;
                out.push(Output::TrackerChanged {
                    tracker: Some(from),
                    epoch,
                });
            } else if roster.is_some_and(|v| !self.registered || self.roster_version != Some(v))
                && self
                    .last_query
                    .is_none_or(|t| now >= t + self.limits.min_answer_gap)
            {
                // Our copy of the roster is out of date, or our registration went unanswered
                // although the tracker is alive (its answers had no route to us, say): ask
                // again, at most once per `min_answer_gap` while its heartbeats arrive.
                self.last_query = Some(now);
                self.stats.roster_queries += 1;
                out.push(Output::Send {
                    to: from,
                    msg: Msg::Register {
                        epoch,
                        entry: self.me_entry.clone(),
                    },
                });
            }
            return;
        }
        if self.phase == Phase::Leader {
            self.stats.stepped_down += 1;
            self.roster.clear();
            out.push(Output::Serving(false));
        }
        self.phase = Phase::Follower { grace_until: None };
        self.tracker = Some(Tracker {
            id: from,
            priority,
            epoch,
        });
        self.pending.clear();
        self.backoff = self.limits.coordinator_timeout;
        self.registered = false;
        self.roster_version = None;
        self.next_register = Some(now);
        self.register_backoff = self.limits.register_retry;
        out.push(Output::TrackerChanged {
            tracker: Some(from),
            epoch,
        });
    }

    fn on_election(
        &mut self,
        from: P,
        epoch: u64,
        priority: Option<u32>,
        flooded: bool,
        now: Instant,
        out: &mut Vec<Output<P>>,
    ) {
        self.heard(from, priority);
        self.max_epoch = self.max_epoch.max(epoch);
        let Some(mine) = self.rank() else {
            return; // not a candidate: nothing to answer
        };
        // An ineligible sender ranks below everyone.
        let theirs = priority.map(|priority| Rank { priority, id: from });
        if theirs.is_some_and(|t| t > mine) {
            return; // it asks its betters, not us (we heard its flood)
        }
        if flooded
            && self.phase != Phase::Leader
            && self.peers.above(mine, self.limits.election_fanout)
        {
            return; // everyone heard it: the few highest answer, and run their elections
        }
        if self.phase == Phase::Leader {
            let ours = self.tracker.expect("a leader follows itself").epoch;
            if epoch > ours {
                // Claim above it: now (the flood answers it too) or at the next heartbeat.
                self.claim_above(now, out);
            }
            if self.tracker.is_some_and(|t| t.epoch == ours) {
                // The answer: here is the tracker.
                out.push(Output::Send {
                    to: from,
                    msg: Msg::Coordinator {
                        epoch: ours,
                        priority: mine.priority,
                    },
                });
            }
            return;
        }
        out.push(Output::Send {
            to: from,
            msg: Msg::Alive {
                epoch: self.max_epoch,
                priority: mine.priority,
            },
        });
        let grace = match self.phase {
            Phase::Follower { grace_until } => grace_until.is_some_and(|g| now < g),
            _ => return, // already electing or waiting for a coordinator
        };
        if grace && self.tracker.is_none() {
            // Starting: our own election starts when the grace ends, asking by unicast the
            // candidates we will have heard of by then (an election at every flood heard
            // would make a whole network started together flood at once).
            return;
        }
        // Following a live tracker that outranks us, at an epoch the sender has not passed:
        // its heartbeats will reach the sender; an election here would only ask it again.
        let covered = self
            .tracker
            .is_some_and(|t| t.id != self.me && t.rank() > mine && epoch <= t.epoch);
        if !covered {
            self.start_election(Reason::Other, now, out);
        }
    }
}

/// A fraction in `0.0..1.0` from the id's bytes (FNV-1a, then MurmurHash3's finalizer so
/// that ids differing in one byte land far apart): fixed per node, spread evenly.
fn spread<P: PeerBytes>(id: &P) -> f64 {
    let mut bytes = Vec::with_capacity(P::LEN);
    id.put(&mut bytes);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod simulation;
