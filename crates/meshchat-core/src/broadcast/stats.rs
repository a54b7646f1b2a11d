//! The state machine's counters ([`Stats`]).

/// Counters, for the node's stats and the simulator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `Gossip` messages received, duplicates included.
    pub gossip_received: u64,
    /// `Gossip` messages received for an id already seen.
    pub duplicates: u64,
    /// Of `duplicates`: those that did not prune their link, not being the anchor's
    /// ([`Trees::Anchor`](super::Trees::Anchor)).
    pub duplicates_kept: u64,
    /// Messages delivered (validated, first time seen).
    pub delivered: u64,
    /// Of `delivered`: those whose first copy came by a push this node had not asked for (the
    /// eager path; a push over a link grafted earlier counts here too).
    pub delivered_pushed: u64,
    /// Of `delivered`: those whose first copy came after this node had grafted the id (the lazy
    /// path: an announcement, then the graft timeout, then a round trip).
    pub delivered_grafted: u64,
    /// Sum over `delivered` of the hops each first copy travelled (1 from its author's
    /// neighbour): `delivered_hops / delivered` is the mean path length on the trees.
    pub delivered_hops: u64,
    /// Messages the application rejected.
    pub rejected: u64,
    /// Messages published here.
    pub published: u64,
    /// `Gossip` messages sent (pushes and graft answers).
    pub gossip_sent: u64,
    /// `IHave` entries sent.
    pub ihave_sent: u64,
    /// Ids asked for in `Graft`s.
    pub grafts_sent: u64,
    /// `Prune`s sent after a duplicate.
    pub prunes_sent: u64,
    /// Tree optimisations (a lazy link grafted, an eager one pruned, for a shorter path).
    pub optimisations: u64,
    /// Grafted ids not in the cache (expired, evicted, or never held).
    pub graft_misses: u64,
    /// Missing messages given up after every graft attempt (or with no neighbour left).
    pub given_up: u64,
    /// Missing messages whose announcers were all gone, asked of the other neighbours instead.
    pub fallback_grafts: u64,
    /// Announcements refused because the missing table was full.
    pub missing_full: u64,
    /// First copies refused because too many messages awaited validation (left to repair).
    pub pending_full: u64,
    /// Trees asked of a lazy link (`Push`) because their last eager link closed, or their
    /// parent's (per-origin trees).
    pub reconnects: u64,
    /// Neighbours refused because [`Config::max_peers`](super::Config::max_peers) were connected.
    pub peers_full: u64,
    /// Messages from peers that are not neighbours, ignored.
    pub unknown_peer: u64,
    /// Grafted ids ignored because they were answered to that neighbour within
    /// [`Config::graft_answer_window`](super::Config::graft_answer_window).
    pub graft_repeats: u64,
    /// Grafted ids not answered because the neighbour's byte budget was spent.
    pub graft_over_budget: u64,
    /// Announced ids dropped because the neighbour was over [`Config::ihave_entries`](super::Config::ihave_entries).
    pub ihave_over_rate: u64,
    /// Announcements refused because the announcer held [`Config::max_missing_per_peer`](super::Config::max_missing_per_peer)
    /// missing ids already.
    pub missing_peer_full: u64,
    /// Per-origin trees forgotten because [`Config::max_trees`](super::Config::max_trees) were kept.
    pub trees_forgotten: u64,
    /// `Push`es sent because a first copy came over a link we had pruned (our `Prune` and its
    /// push crossed).
    pub prunes_cancelled: u64,
}
