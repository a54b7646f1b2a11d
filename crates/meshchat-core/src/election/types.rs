//! The election's public types: a candidate's [`Rank`], the [`Limits`] it runs under, what
//! the node hands it ([`Input`]) and what it asks of the node ([`Output`]), and its counters
//! ([`Stats`]). The rules are in the parent module's docs.

use std::time::{Duration, Instant};

use super::{Entry, Msg};

/// A candidate's rank: priority first, then peer id; the higher wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rank<P> {
    pub priority: u32,
    pub id: P,
}

/// Timers and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How often the tracker floods a heartbeat. Default 500 ms: one flood every 500 ms is
    /// the standing cost of the election (2 per second, each crossing every link of the
    /// component about once).
    pub heartbeat_interval: Duration,
    /// Heartbeats missed before an election (3: 1.5 s of silence); also the start-up grace, for
    /// which a new node listens for a tracker before it runs an election.
    pub missed_heartbeats: u32,
    /// How long an electing node waits for an [`Msg::Alive`] (or the tracker's
    /// [`Msg::Coordinator`]) from the candidates it asked before it asks the next ones, or
    /// wins. A round trip across the mesh; default 300 ms. Too short costs an extra epoch (a
    /// lower node wins, the higher one takes over), not correctness.
    pub election_timeout: Duration,
    /// How long a node that heard `Alive` waits for a coordinator before it starts over.
    /// Default 1 s.
    pub coordinator_timeout: Duration,
    /// Higher-ranked candidates asked at once, highest first (default 2). Classic Bully asks
    /// every higher one, which costs O(N²) messages when everyone notices a dead tracker at
    /// once; asking the few highest costs O(N), and a node asks the next ones only if those
    /// stay silent for `election_timeout`.
    pub election_fanout: usize,
    /// The start-up grace is longer by a fraction of this, derived from the node's id (a hash
    /// of its bytes): nodes started together then do not all flood an election at the same
    /// instant; those that start later have heard of a candidate and ask it by unicast.
    /// Default 1 s.
    pub start_spread: Duration,
    /// How often a node registers again with its tracker (60 s).
    pub register_interval: Duration,
    /// A registration without a roster answer is sent again after this long, doubled each
    /// time up to `register_interval` (default 6 s, more than `min_register_gap` so that a
    /// retry after a lost answer is not refused).
    pub register_retry: Duration,
    /// A roster entry not refreshed for this long is dropped (120 s: two missed refreshes).
    pub entry_ttl: Duration,
    /// One registration per peer is accepted per this interval (5 s); more are refused and
    /// counted, except the first one at a newer epoch (a node re-registers when its tracker
    /// claims a new epoch).
    pub min_register_gap: Duration,
    /// A follower whose roster is out of date (a heartbeat shows another version) registers
    /// again at most this often, and the tracker sends an unchanged registrant its roster
    /// again at most this often, even within `min_register_gap`; one asking sooner is answered
    /// when the gap has passed (250 ms).
    pub min_answer_gap: Duration,
    /// After a change of its roster, the tracker heartbeats within this long (100 ms), so that
    /// followers learn of the change before the next regular heartbeat.
    pub roster_heartbeat: Duration,
    /// Roster entries (1 024). When full, a newcomer is refused rather than anyone evicted.
    pub max_roster: usize,
    /// Other nodes whose priority (or ineligibility) is remembered (4 096); when full, one that
    /// is unreachable is forgotten for a new one.
    pub max_known: usize,
    /// Reachable nodes remembered (10 000, the routing table's bound).
    pub max_reachable: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(500),
            missed_heartbeats: 3,
            election_timeout: Duration::from_millis(300),
            coordinator_timeout: Duration::from_secs(1),
            election_fanout: 2,
            start_spread: Duration::from_secs(1),
            register_interval: Duration::from_secs(60),
            register_retry: Duration::from_secs(6),
            entry_ttl: Duration::from_secs(120),
            min_register_gap: Duration::from_secs(5),
            min_answer_gap: Duration::from_millis(250),
            roster_heartbeat: Duration::from_millis(100),
            max_roster: 1024,
            max_known: 4096,
            max_reachable: 10_000,
        }
    }
}

impl Limits {
    /// Silence after which the tracker is taken for gone.
    pub(super) fn silence(&self) -> Duration {
        self.heartbeat_interval * self.missed_heartbeats
    }

    /// # Panics
    /// On a configuration no election can work with.
    pub(super) fn check(&self) {
        assert!(
            !self.heartbeat_interval.is_zero() && self.missed_heartbeats > 0,
            "heartbeats must be expected"
        );
        assert!(
            !self.election_timeout.is_zero() && !self.coordinator_timeout.is_zero(),
            "election timeouts must not be zero"
        );
        assert!(self.election_fanout > 0, "an election asks somebody");
        assert!(
            !self.register_retry.is_zero()
                && self.register_retry <= self.register_interval
                && self.entry_ttl > self.register_interval,
            "entries must outlive a registration interval"
        );
        assert!(
            self.max_roster > 0 && self.max_known > 0 && self.max_reachable > 0,
            "tables need room for one entry"
        );
    }
}

/// What the node hands the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<P> {
    /// A message in a tracker envelope that `from` signed (flooded or routed to us). Never our
    /// own (one from this node is dropped and counted in [`Stats::forged`]).
    Received { from: P, msg: Msg<P> },
    /// Routes that appeared (`true`) or were lost (`false`), from the routing table: for each
    /// destination of its `Changed` output, whether it now has a next hop. Repeating a state is
    /// harmless. Losing the route to the tracker starts an election at once.
    Reachability(Vec<(P, bool)>),
    /// What this node registers about itself: at start and whenever it changes.
    Me { nick: String, addrs: Vec<String> },
    /// The time of the last [`Output::WakeAt`] has come (early or extra ticks are harmless).
    /// Call it once at start to get the first wake-up.
    Tick,
}

/// What the election asks of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P> {
    /// Route this message to `to` (best effort: drop it when there is no route).
    Send { to: P, msg: Msg<P> },
    /// Flood it to every node of the component (best effort).
    Flood(Msg<P>),
    /// The tracker this node follows (itself, when serving) changed, or its epoch did. `None`:
    /// the tracker is gone and an election is running. A good moment to persist
    /// [`Election::max_epoch`](super::Election::max_epoch).
    TrackerChanged { tracker: Option<P>, epoch: u64 },
    /// This node started (`true`) or stopped serving as tracker.
    Serving(bool),
    /// The roster to show (and whose addresses to dial): the tracker's answer to our
    /// registration, or, when serving, our own after each change.
    Roster {
        entries: Vec<Entry<P>>,
        truncated: bool,
    },
    /// Call [`Election::handle`](super::Election::handle) with [`Input::Tick`] at this time (replaces earlier wake-ups).
    WakeAt(Instant),
}

/// Counters, for the node's stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Elections started (including the ones a lower node's election or claim prompted).
    pub elections: u64,
    /// Elections won (coordinators flooded, re-claims above a newer epoch included).
    pub won: u64,
    /// Times this node stopped serving because it adopted a better tracker.
    pub stepped_down: u64,
    /// Routed messages sent ([`Output::Send`]).
    pub sent: u64,
    /// Messages flooded ([`Output::Flood`]), heartbeats included.
    pub flooded: u64,
    /// Heartbeats and coordinators whose epoch (or same epoch and rank) is older than the
    /// tracker followed, and rosters or registrations for an older or unknown epoch: ignored.
    pub stale: u64,
    /// Claims (coordinators or heartbeats) refused because a live candidate of higher rank than
    /// the claimant is known.
    pub outranked: u64,
    /// Messages that speak for another node: a registration of another id, or anything from
    /// this node itself.
    pub forged: u64,
    /// Candidates that did not answer an election in time, skipped until heard from again.
    pub suspected: u64,
    pub registrations: u64,
    /// Registrations refused: within [`Limits::min_register_gap`] of the last one accepted
    /// (and not answered either).
    pub registrations_refused: u64,
    /// Registrations sent again because a heartbeat showed a newer roster than ours.
    pub roster_queries: u64,
    /// Rosters sent again to an unchanged registrant within `min_register_gap` (at most one per
    /// [`Limits::min_answer_gap`]).
    pub roster_resent: u64,
    /// Newcomers refused because the roster was full.
    pub roster_full: u64,
    /// Roster entries received beyond [`Limits::max_roster`] or repeated, dropped.
    pub roster_cut: u64,
    /// Nodes not remembered because [`Limits::max_known`] were known and all reachable.
    pub known_full: u64,
    /// Routes not remembered because [`Limits::max_reachable`] were.
    pub reachable_full: u64,
    /// Messages that make no sense from their sender: an `Alive` from a lower rank, a roster
    /// from a node that is not our tracker, a registration to a node that does not serve.
    pub unexpected: u64,
}
