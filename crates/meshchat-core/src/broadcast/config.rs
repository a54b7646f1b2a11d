//! The state machine's timers and bounds ([`Config`]); the reasons for each are in the
//! [`super`] module docs.

use std::time::Duration;

use super::wire;
use crate::rate::Rate;

/// Which trees a node keeps: what a duplicate prunes, and which links a message is pushed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trees {
    /// One tree per origin (the envelope's author), as riak_core's Plumtree keeps one per
    /// root: a duplicate prunes its link for that origin only, so each sender's messages run on
    /// the tree its fastest copies drew (near its shortest paths), and messages from different
    /// senders never split each other's trees. A tree starts eager on every link (its first
    /// message floods, and the duplicates prune it back to a tree). An author puts its messages
    /// on its own tree from its second on (a flag in the frame, kept by relays): the flood pays
    /// only for senders that speak again. A sender's first message and messages with no
    /// readable origin run on one shared tree, shaped by the duplicates of the anchor (the
    /// smallest origin heard within this window) as with [`Trees::Anchor`]. The default
    /// (issue 25, fourth round: measured in `broadcast/simulation.rs` and the lab).
    PerOrigin(Duration),
    /// One tree for every sender, shaped by the anchor's messages only: a duplicate prunes only
    /// if its message is the anchor's, the smallest origin key heard within this window
    /// (`broadcast/anchor.rs`; issue 25's second round). The window must be well above a
    /// message's time in flight (~0.3 s across 1 000 wide-area nodes).
    Anchor(Duration),
    /// One tree, every duplicate prunes: the paper's rule, which splits the tree when messages
    /// from different senders overlap (the rule before issue 25).
    Shared,
}

/// Timing and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How long announcements are collected before they are sent (one `IHave` per neighbour and
    /// interval). Longer saves frames, shorter repairs sooner.
    pub ihave_interval: Duration,
    /// How long after the first announcement of a missing message the first `Graft` is sent:
    /// the time the tree's own copy may still take to arrive. Too short and the node grafts
    /// copies that were on their way (duplicates, then prunes); too long and repairs are slow.
    pub graft_timeout: Duration,
    /// Time between later `Graft`s for the same message, to the next announcer.
    pub graft_retry: Duration,
    /// `Graft`s sent for one missing message before it is given up (left to history sync).
    pub max_graft_attempts: u32,
    /// Hops a lazy neighbour must save over the path a message came by for the tree to switch to
    /// it (the paper's optimisation); `None`: never. Only with one shared tree
    /// ([`Trees::Shared`] or [`Trees::Anchor`], where only the anchor's messages count: a shorter
    /// path for one sender may be a longer one for another); per-origin trees start from the
    /// first copies' paths, the fastest.
    /// Off by default, measured (issue 25, `broadcast/simulation.rs`): once the anchor shapes the
    /// tree, the switch (a graft to the new link and a prune to the old, which cross messages in
    /// flight) cost ~0.1 % of deliveries by the lazy path at N = 1 000 and made p99 latency worse
    /// in every scenario measured, and a single sender's first-arrival tree never triggered it.
    pub optimize_threshold: Option<u16>,
    /// Whether eager neighbours get announcements too (see the module docs): recovers a lost
    /// push on a link with no lazy alternative.
    pub announce_to_eager: bool,
    /// Which broadcast trees the node keeps ([`Trees`]).
    pub trees: Trees,
    /// Most per-origin trees kept ([`Trees::PerOrigin`]); when full, the one whose last message
    /// is the oldest is forgotten (its sender's next message starts it over: a flood).
    pub max_trees: usize,
    /// Most anchor candidates kept (random keys leave a handful).
    pub max_anchor_candidates: usize,
    /// Most neighbours; more are ignored (the node's connection limit should be lower).
    pub max_peers: usize,
    /// Most announcements queued per neighbour; a full batch is sent at once. At most
    /// [`wire::MAX_IHAVE`].
    pub max_ihave_batch: usize,
    /// Most ids remembered as seen (received, being checked, or published).
    pub max_seen: usize,
    /// How long an id is remembered as seen. At least [`Config::cache_ttl`].
    pub seen_ttl: Duration,
    /// Most payloads cached to answer grafts.
    pub max_cached: usize,
    /// Most payload bytes cached.
    pub max_cached_bytes: usize,
    /// How long a payload is cached.
    pub cache_ttl: Duration,
    /// Most messages awaiting validation.
    pub max_pending: usize,
    /// Most missing (announced, not received) ids tracked.
    pub max_missing: usize,
    /// Most announcers remembered per missing id.
    pub max_sources: usize,
    /// Most missing ids one neighbour's announcements may hold (of [`Config::max_missing`]), so
    /// a neighbour announcing ids it never sends cannot crowd out the others' repairs.
    pub max_missing_per_peer: usize,
    /// How long a grafted id answered to a neighbour is not answered to it again: the same id
    /// listed many times in one frame is answered once. Shorter than [`Config::graft_retry`], so
    /// an honest retry after a lost answer is answered.
    pub graft_answer_window: Duration,
    /// How long a grafted id refused for the byte budget is remembered as refused to that
    /// neighbour: asking for it again is no new offence (an honest node retries a missing id up
    /// to [`Config::max_graft_attempts`] times).
    pub graft_refusal_window: Duration,
    /// Payload bytes a neighbour's grafts may make this node send: the work a Graft causes is
    /// bounded by this, whatever it lists. Kept per peer id, across reconnects.
    pub graft_bytes: Rate,
    /// Ids a neighbour may announce: an honest one announces each message once per link, so
    /// this matches the node's per-neighbour message rate. Beyond it, entries are dropped.
    pub ihave_entries: Rate,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ihave_interval: Duration::from_millis(20),
            graft_timeout: Duration::from_millis(150),
            graft_retry: Duration::from_millis(75),
            max_graft_attempts: 8,
            optimize_threshold: None,
            announce_to_eager: true,
            trees: Trees::PerOrigin(Duration::from_secs(10)),
            max_trees: 1024,
            max_anchor_candidates: 64,
            max_peers: 1024,
            max_ihave_batch: wire::MAX_IHAVE,
            // ~100 bytes each: ~6.5 MB, 5 minutes at 200 messages a second.
            max_seen: 65_536,
            seen_ttl: Duration::from_secs(5 * 60),
            max_cached: 8192,
            max_cached_bytes: 32 * 1024 * 1024,
            cache_ttl: Duration::from_secs(60),
            max_pending: 1024,
            max_missing: 4096,
            max_sources: 8,
            max_missing_per_peer: 1024,
            graft_answer_window: Duration::from_millis(50),
            graft_refusal_window: Duration::from_secs(10),
            // 128 largest envelopes at once, 32 a second after that.
            graft_bytes: Rate::new(2 * 1024 * 1024, 8 * 1024 * 1024),
            // The node's per-neighbour message rate (`guard::Limits`).
            ihave_entries: Rate::new(4000, 20_000),
        }
    }
}

impl Config {
    /// # Panics
    /// On a configuration mistake: a zero bound, a batch beyond [`wire::MAX_IHAVE`], or ids
    /// forgotten before their payloads.
    pub(super) fn check(&self) {
        assert!(
            (1..=wire::MAX_IHAVE).contains(&self.max_ihave_batch),
            "ihave batch of {} outside 1..={}",
            self.max_ihave_batch,
            wire::MAX_IHAVE
        );
        for (name, v) in [
            ("max_peers", self.max_peers),
            ("max_seen", self.max_seen),
            ("max_cached", self.max_cached),
            ("max_pending", self.max_pending),
            ("max_missing", self.max_missing),
            ("max_sources", self.max_sources),
            ("max_missing_per_peer", self.max_missing_per_peer),
            ("max_anchor_candidates", self.max_anchor_candidates),
            ("max_trees", self.max_trees),
        ] {
            assert!(v > 0, "broadcast {name} must be positive");
        }
        assert!(self.max_graft_attempts > 0, "at least one graft per miss");
        assert!(
            self.optimize_threshold.is_none() || !matches!(self.trees, Trees::PerOrigin(_)),
            "the tree optimisation needs one shared tree"
        );
        assert!(
            self.seen_ttl >= self.cache_ttl && self.max_seen >= self.max_cached,
            "ids must be remembered at least as long as their payloads"
        );
    }
}
