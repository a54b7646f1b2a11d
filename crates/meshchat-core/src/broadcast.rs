//! Room broadcast on an epidemic broadcast tree: Plumtree (Leitão, Pereira and Rodrigues,
//! "Epidemic Broadcast Trees", SRDS 2007) over the node's own connections.
//!
//! Every node relays every room message to the whole mesh. A flood (or gossipsub's mesh) sends
//! each message over nearly every link, ~3.3 copies per node and message in our measurements
//! (`docs/BENCHMARKS.md` §1); a spanning tree sends it once per node. Plumtree keeps such a tree
//! without any node knowing the topology:
//!
//! - Each neighbour is **eager** or **lazy**. A message seen for the first time is pushed in full
//!   (`Gossip`) to the eager neighbours and announced (`IHave`: id and hop count, batched for
//!   [`Config::ihave_interval`]) to the lazy ones. New connections start eager, so the first
//!   messages flood.
//! - A node that gets a message it already has answers the sender with `Prune`; both ends make
//!   the link lazy. Duplicates only arrive over cycles of eager links, so pruning breaks the
//!   cycles until the eager links form a spanning tree; the lazy links are the repair paths.
//!   Eager and lazy are kept **per origin** (see below): each sender that speaks again gets a
//!   tree of its own, and a `Prune` names the tree it is about.
//! - A node that hears of a message by `IHave` and does not get it within
//!   [`Config::graft_timeout`] sends `Graft` (make the link eager, and send me these ids) to an
//!   announcer, then to the next one every [`Config::graft_retry`]. That repairs the tree after a
//!   crash, a lost frame or a closed connection.
//! - **Tree optimisation** (off by default, see [`Config::optimize_threshold`]): when an `IHave`
//!   shows that a lazy neighbour had one of the anchor's messages at least that many hops sooner
//!   than the path it came by, the node grafts the lazy link (a `Graft` with no ids) and prunes
//!   the eager one it got the message from.
//!
//! Membership is the connection graph itself ([`Input::NeighborUp`] and [`Input::NeighborDown`]), not
//! an overlay such as HyParView: in a physical mesh a node reaches only some peers, and the
//! node's connection management already decides which.
//!
//! # Choices beyond the paper
//!
//! - **A tree per origin** ([`Trees::PerOrigin`], issue 25's fourth round), as riak_core's
//!   Plumtree keeps one per root. One tree serves every sender (an acyclic connected set of eager
//!   links is a spanning tree from any node), but not well: it is shaped by one sender's
//!   messages (the anchor, below), and a message from anyone else runs along that sender's
//!   paths, 5.2 hops on average where the graph's mean distance is 2.4 in the lab's 30-node mesh.
//!   So each origin (the envelope's author) has its own eager/lazy sets: a new tree is eager on
//!   every link (its first message floods), its duplicates prune their links for that origin
//!   only (`Prune` names the tree), and its later messages run on the tree its fastest copies
//!   drew, near its shortest paths. Messages from different senders never split each other's
//!   trees: a duplicate of one origin's message says nothing about another's. A flood per
//!   sender would cost more than the tree saves for senders that speak once, so an author puts
//!   its first message on one **shared tree** (shaped as below) and the later ones on its own:
//!   the Gossip frame carries that choice (`own_tree`) and every relay keeps it, so all nodes
//!   put a message on the same tree (a sender's second message, flooding, often overtakes its
//!   first on the shared tree; with each node deciding from what it had seen, the first then
//!   flooded a second time and its duplicates pruned the sender's new tree: lazy deliveries in
//!   the lab). Messages with no readable origin use the shared tree too. A graft makes its link
//!   eager in the tree of each id it names; a `Push` asks a neighbour to push one tree (sent by
//!   a node whose last eager link in a tree, or its parent in a per-origin tree, left). At most
//!   [`Config::max_trees`] are kept (~200 bytes each), the least recently used forgotten.
//!   Measured in `broadcast/simulation.rs` and BENCHMARKS §2 and §5.
//! - **The shared tree is shaped by one sender: the anchor** (issue 25, `broadcast/anchor.rs`).
//!   In the paper's rule every duplicate prunes. Messages from different senders in flight at
//!   once meet at different points of the same cycle and each prunes a link of it; the tree
//!   splits, the nodes cut off graft the next messages (the lazy path: announcement batch, graft
//!   timeout, round trip, ~200-400 ms), the grafts rejoin the parts by several links (new
//!   cycles), and the next overlapping messages split them again. With random senders the tree
//!   never settled (and the hop-count optimisation, comparing different senders' hop counts,
//!   kept moving it): in the simulator of the lab's 30 nodes at 20 messages a second a fifth of
//!   the deliveries came by graft, and in the lab p99 to all nodes went from 13 ms (gossipsub) to
//!   420 ms. So only the duplicates of the anchor's messages prune the shared tree, the anchor
//!   being the smallest origin key (the envelope's author) heard within the window of
//!   [`Trees::PerOrigin`] or [`Trees::Anchor`]: every node sees every message and picks the same
//!   anchor, and one sender's messages prune consistently, as in the single-sender case. Other
//!   duplicates are counted ([`Stats::duplicates_kept`]) and left; the cycle they cross is pruned
//!   by the anchor's next message. Measured, with the figures and the routes not taken, in
//!   `broadcast/simulation.rs`: with one tree for all ([`Trees::Anchor`], the second and third
//!   rounds), every delivery by eager push after a 2 s warm-up at 30-1 000 nodes and 20-100
//!   messages a second.
//! - **Validation before relay.** A message is relayed, announced and cached only after the node
//!   has checked it ([`Output::Validate`], answered by [`Input::Validated`]): its signature once per
//!   unique message, and that the id is the payload's. A rejected id is forgotten (a forged
//!   payload under a real id must not hide the real one) and the neighbours that offered the
//!   same id meanwhile are grafted at once. A duplicate that arrives while the first copy is being
//!   checked is pruned only once the first copy is accepted.
//! - **Announcements also go to eager neighbours** ([`Config::announce_to_eager`]): the paper
//!   assumes links that lose nothing, but a node drops frames for a peer whose send queue is full,
//!   and a lost push to a child with no lazy link (a bridge, or a node left with one connection
//!   after its neighbours crashed) would otherwise never be noticed. An announcement on a link
//!   that also pushed arrives after the push (links keep order) and is ignored; it costs 34 bytes
//!   per link and message, in batches.
//! - **Grafts cycle through the announcers** up to [`Config::max_graft_attempts`] times, so a lost
//!   `Graft` or answer is retried even with a single announcer. The first goes to an announcer
//!   whose link is eager, if any: its push was lost, and asking it adds no eager link (no cycle for
//!   the anchor to prune; under 1 % loss this cut the extra copies by up to 45 % in the simulator).
//!   When every announcer of a missing message is gone (crashed before it answered), the graft goes
//!   to the remaining neighbours in turn: one of them may hold it and its own announcement may have
//!   been lost.
//! - **A node keeps an eager link in each tree**: when its last one closes (or, in a per-origin
//!   tree, its parent's), it asks a lazy one to push that tree (`Push`) at once rather than
//!   waiting for a miss (over a lazy link one lost announcement loses the message).
//! - Hop counts sit in the frame, outside the envelope's signature: the envelope is relayed
//!   byte for byte.
//!
//! # Timers
//!
//! Two kinds of deadline: the announcement flush ([`Config::ihave_interval`] after the first
//! announcement queued) and one graft deadline per missing message. The state machine keeps them
//! and says when it next needs to run with [`Output::WakeAt`]; the node keeps one timer, replaced by
//! each `WakeAt`, and passes [`Input::Tick`] when it fires. Due work is also done on any other input,
//! so a late or spurious tick is harmless. Time is passed in; nothing here reads a clock.
//!
//! # Bounds
//!
//! [`Config::max_peers`] neighbours, each with at most [`Config::max_ihave_batch`] queued
//! announcements; [`Config::max_seen`] ids remembered for [`Config::seen_ttl`];
//! [`Config::max_cached`] payloads and [`Config::max_cached_bytes`] bytes kept for
//! [`Config::cache_ttl`] to answer grafts; [`Config::max_pending`] messages awaiting validation;
//! [`Config::max_missing`] missing ids with at most [`Config::max_sources`] announcers each;
//! [`Config::max_anchor_candidates`] origin keys for the anchor (a handful in practice);
//! [`Config::max_trees`] per-origin trees, each with at most one entry per neighbour.
//! When a table is full, new entries are refused and counted in [`Stats`] (a message refused this
//! way is left to a later announcement, or to history sync, the backstop for anything the tree
//! misses). Frames are bounded by [`wire`].
//!
//! A peer can lie in a frame: hop counts (with the optimisation on, an `IHave` with 0 hops makes
//! us graft it and prune our tree parent; if it then withholds messages, the other announcements
//! repair it), or grafts for cached ids (each answered at most once per id in the frame, and the
//! node rate-limits peers with [`crate::guard`]). Malformed frames are [`wire::Error`]s, strikes.
//! An author can become the anchor by having the smallest key (keys are cheap to grind): its
//! messages then decide which duplicates prune, but the prunes are still the honest nodes' own
//! observations of one message, so the eager links stay a spanning tree; sending its messages
//! into the mesh at several points at once (as any author can) splits the tree into the parts
//! each copy reached first, which grafts repair: the lazy path, not a loss.
//!
//! # Wire format (`/meshchat/broadcast/2`)
//!
//! A frame is at most [`wire::MAX_FRAME_LEN`] bytes and holds 1..=[`wire::MAX_MESSAGES`]
//! messages. Integers are big-endian.
//!
//! ```text
//! frame   = count u8 (1..=64) | message * count          (no trailing bytes)
//! message = 0x01 Gossip | id [32] | hops u16 | on u8 | len u32 | payload [len]
//!                                                           (len <= MAX_ENVELOPE_LEN)
//!         | 0x02 IHave  | count u16 (1..=512) | (id [32] | hops u16) * count
//!         | 0x03 Graft  | count u16 (0..=512) | id [32] * count
//!         | 0x04 Prune  | tree
//!         | 0x05 Push   | tree
//! tree    = 0x00                      (the shared tree)
//!         | 0x01 | origin [32]        (the tree of that envelope author)
//! on      = 0x00 (the shared tree) | 0x01 (the tree of the envelope's author): `own_tree`
//! ```
//!
//! `hops` is the sender's own hop count for the message: 0 at its author, and a receiver's count
//! is the sender's plus one. `payload` is an envelope (`crate::envelope`) and `id` its
//! [`MessageId`]. A Graft makes the link eager in the trees of the ids it names; with no ids, in
//! every tree. Prune and Push name one tree; a node that keeps one tree only ([`Trees::Shared`],
//! [`Trees::Anchor`]) reads them as about it. Example, a frame with a Gossip of id `ab..ab`, hops
//! 258 on the shared tree and payload `hey`, then a Prune of the shared tree:
//! `02 | 01 ab*32 0102 00 00000003 686579 | 04 00`. Version 1 (before per-origin trees) had
//! `Prune` with no tree, no `Push` and no `on`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::dedup::SeenCache;
use crate::envelope::MessageId;
use crate::rate::Buckets;

mod anchor;
mod config;
mod repair;
mod stats;
mod trees;
pub mod wire;

use anchor::Anchor;
pub use config::{Config, Trees};
pub use stats::Stats;
use trees::{OriginTree, Spoke};
pub use wire::{Message, Payload, Tree};

/// The origin of a message, for the anchor: the author key of a version-1 envelope (the node
/// checked its signature before the message was accepted). `None` for any other payload (a
/// flooded DM, a newer envelope version).
fn origin(payload: &[u8]) -> Option<[u8; 32]> {
    crate::envelope::peek_author(payload)
}

/// Most peers kept per pending message as also having offered it (to prune, or to graft if the
/// first copy is rejected).
const MAX_OTHERS: usize = 4;

/// An input to [`Broadcast::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<P> {
    /// A connection to `P` is open (it starts eager).
    NeighborUp(P),
    /// The last connection to `P` closed.
    NeighborDown(P),
    /// A message from a neighbour, decoded from a frame ([`wire::decode`]).
    Message { from: P, message: Message },
    /// The application's own message, signed: relayed without validation, not delivered back.
    Publish { id: MessageId, payload: Payload },
    /// Someone else's message the application holds and pushes on (a profile it got by history
    /// sync, say), as [`Input::Publish`] but always on the shared tree: only its author may
    /// put a message on the author's own tree, whose shape is that of paths from the author.
    Republish { id: MessageId, payload: Payload },
    /// The answer to [`Output::Validate`]: whether the payload is a valid envelope with that id.
    Validated { id: MessageId, ok: bool },
    /// The timer of the last [`Output::WakeAt`] fired (or any time: a tick with nothing due is
    /// harmless).
    Tick,
}

/// An output of [`Broadcast::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P> {
    /// Send this message to neighbour `to`. The node may pack the messages of one `handle` call
    /// for the same neighbour into frames with [`wire::pack`], in order.
    Send { to: P, message: Message },
    /// Check this payload (first copy of `id`, from `from`) and answer with [`Input::Validated`]:
    /// signature, limits, and that it is the envelope with id `id`. Until then the message is
    /// neither relayed nor delivered.
    Validate {
        id: MessageId,
        payload: Payload,
        from: P,
    },
    /// A validated message, first time seen: hand it to the application. `hops` is how many
    /// links it crossed.
    Deliver {
        id: MessageId,
        payload: Payload,
        hops: u16,
    },
    /// Pass [`Input::Tick`] at this time; replaces any earlier `WakeAt`.
    WakeAt(Instant),
    /// `peer` did what no honest node does (the node counts a strike against it).
    Misbehaved { peer: P, offence: Offence },
}

/// What a neighbour did that no honest node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offence {
    /// Grafted more new ids than its byte budget ([`Config::graft_bytes`]) answers.
    GraftOverBudget,
}

/// A neighbour.
#[derive(Debug)]
struct Peer {
    /// Announcements not sent yet: `(id, our hop count)`.
    ihave: Vec<(MessageId, u16)>,
}

/// A payload kept to answer grafts.
#[derive(Debug)]
struct Cached<P> {
    payload: Payload,
    /// Our hop count for it.
    hops: u16,
    /// The neighbour it came from (none: published here); for the tree optimisation.
    from: Option<P>,
    /// The tree it ran on here.
    tree: Tree,
    /// Neighbours whose graft of it was answered or refused for the budget, and when. At most
    /// one entry per neighbour.
    answered: Vec<Answer<P>>,
}

/// What a neighbour's last graft of a cached id got.
#[derive(Debug, Clone, Copy)]
struct Answer<P> {
    peer: P,
    at: Instant,
    /// Refused for the byte budget (else answered).
    refused: bool,
}

/// A first copy awaiting validation.
#[derive(Debug)]
struct Pending<P> {
    from: P,
    /// Our hop count for it.
    hops: u16,
    /// The frame's flag: whether it runs on its origin's own tree.
    own_tree: bool,
    payload: Payload,
    /// Other neighbours that sent it meanwhile.
    others: Vec<P>,
    /// Whether this node had grafted the id before this copy came (see [`Stats`]).
    grafted: bool,
}

/// A message announced to us that we have not received.
#[derive(Debug)]
struct Missing<P> {
    /// Announcers with their hop counts, in the order heard.
    sources: Vec<(P, u16)>,
    /// The neighbour whose share ([`Config::max_missing_per_peer`]) this entry counts in: the
    /// first announcer.
    owner: P,
    /// The source to graft next (round robin).
    next: usize,
    /// Grafts sent so far.
    attempts: u32,
    /// When the next graft is due (also in `Broadcast::deadlines`).
    deadline: Instant,
}

/// The Plumtree state machine of one node, generic over the peer id (tests use `u32`).
///
/// Feed it inputs with [`Broadcast::handle`] and act on the outputs it returns. `P: Ord` keeps
/// every iteration in a fixed order, so a seeded simulation is reproducible.
#[derive(Debug)]
pub struct Broadcast<P> {
    config: Config,
    peers: BTreeMap<P, Peer>,
    /// Ids received (validated or being checked) or published.
    seen: SeenCache<MessageId>,
    cache: HashMap<MessageId, Cached<P>>,
    /// Insertion order of `cache`, with insertion time and payload length.
    cache_order: VecDeque<(Instant, MessageId, usize)>,
    cache_bytes: usize,
    pending: HashMap<MessageId, Pending<P>>,
    missing: HashMap<MessageId, Missing<P>>,
    /// `(deadline, id)` of every entry in `missing`.
    deadlines: BTreeSet<(Instant, MessageId)>,
    /// Entries of `missing` per owner.
    missing_owned: BTreeMap<P, usize>,
    /// Per neighbour: payload bytes its grafts may still make us send.
    graft_budget: Buckets<P>,
    /// Per neighbour: ids it may still announce.
    ihave_budget: Buckets<P>,
    /// The lazy neighbours of the tree of messages with no origin, which is the only tree
    /// unless [`Trees::PerOrigin`].
    shared_lazy: Vec<P>,
    /// The per-origin trees ([`Trees::PerOrigin`]), at most [`Config::max_trees`].
    trees: BTreeMap<[u8; 32], OriginTree<P>>,
    /// Origins this node published from ([`Trees::PerOrigin`]): its later messages run on their
    /// own tree. A node has a few identities; at most [`MAX_SPOKE`] are kept.
    spoke: Spoke,
    /// The sender whose duplicates prune, with [`Trees::Anchor`] (see `broadcast/anchor.rs`).
    anchor: Anchor<[u8; 32]>,
    /// When the queued announcements are due.
    flush_at: Option<Instant>,
    /// The last [`Output::WakeAt`] emitted.
    wake: Option<Instant>,
    stats: Stats,
    out: VecDeque<Output<P>>,
}

impl<P: Ord + Copy> Broadcast<P> {
    /// # Panics
    /// If `config` is invalid (see [`Config`]).
    pub fn new(config: Config) -> Self {
        config.check();
        Self {
            seen: SeenCache::new(config.max_seen, config.seen_ttl),
            config,
            peers: BTreeMap::new(),
            cache: HashMap::new(),
            cache_order: VecDeque::new(),
            cache_bytes: 0,
            pending: HashMap::new(),
            missing: HashMap::new(),
            deadlines: BTreeSet::new(),
            missing_owned: BTreeMap::new(),
            graft_budget: Buckets::new(config.graft_bytes, config.max_peers),
            ihave_budget: Buckets::new(config.ihave_entries, config.max_peers),
            shared_lazy: Vec::new(),
            trees: BTreeMap::new(),
            spoke: Spoke::default(),
            anchor: Anchor::new(
                match config.trees {
                    Trees::Anchor(window) | Trees::PerOrigin(window) => window,
                    Trees::Shared => Duration::ZERO,
                },
                config.max_anchor_candidates,
            ),
            flush_at: None,
            wake: None,
            stats: Stats::default(),
            out: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The neighbours messages with no origin are pushed to (with one shared tree: every
    /// message).
    pub fn eager_peers(&self) -> impl Iterator<Item = P> + '_ {
        self.eager_peers_of(None)
    }

    /// The neighbours messages with no origin are announced to.
    pub fn lazy_peers(&self) -> impl Iterator<Item = P> + '_ {
        let lazy = self.lazy_of(&None);
        self.peers.keys().filter(|p| lazy.contains(p)).copied()
    }

    /// The neighbours the messages of `tree` are pushed to.
    pub fn eager_peers_of(&self, tree: Tree) -> impl Iterator<Item = P> + '_ {
        let lazy = self.lazy_of(&tree);
        self.peers.keys().filter(|p| !lazy.contains(p)).copied()
    }

    /// Per-origin trees kept.
    pub fn tree_count(&self) -> usize {
        self.trees.len()
    }

    /// Whether `id` was received (validated or being checked) or published, and not forgotten.
    pub fn has_seen(&self, id: &MessageId) -> bool {
        self.seen.contains(id)
    }

    /// Sizes of the tables: (cached payloads, cached bytes, pending, missing).
    pub fn table_sizes(&self) -> (usize, usize, usize, usize) {
        (
            self.cache.len(),
            self.cache_bytes,
            self.pending.len(),
            self.missing.len(),
        )
    }

    /// The next time the state machine has work due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let graft = self.deadlines.first().map(|(t, _)| *t);
        match (self.flush_at, graft) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles one input at time `now`; the outputs, in order.
    pub fn handle(
        &mut self,
        input: Input<P>,
        now: Instant,
    ) -> std::collections::vec_deque::Drain<'_, Output<P>> {
        self.expire(now);
        match input {
            Input::NeighborUp(p) => self.on_up(p),
            Input::NeighborDown(p) => self.on_down(p),
            Input::Message { from, message } => {
                if !self.peers.contains_key(&from) {
                    self.stats.unknown_peer += 1;
                } else {
                    match message {
                        Message::Gossip {
                            id,
                            hops,
                            own_tree,
                            payload,
                        } => self.on_gossip(from, id, hops, own_tree, payload, now),
                        Message::IHave(entries) => self.on_ihave(from, entries, now),
                        Message::Graft(ids) => self.on_graft(from, ids, now),
                        Message::Prune(tree) => {
                            // A node keeping one tree reads every prune as about it.
                            let tree = tree.filter(|_| self.per_origin());
                            self.set_eager(from, tree, false)
                        }
                        Message::Push(tree) => {
                            let tree = tree.filter(|_| self.per_origin());
                            self.set_eager(from, tree, true)
                        }
                    }
                }
            }
            Input::Publish { id, payload } => self.on_publish(id, payload, true, now),
            Input::Republish { id, payload } => self.on_publish(id, payload, false, now),
            Input::Validated { id, ok } => self.on_validated(id, ok, now),
            Input::Tick => {}
        }
        self.run_timers(now);
        if let Some(next) = self.next_deadline() {
            if self.wake != Some(next) {
                self.wake = Some(next);
                self.out.push_back(Output::WakeAt(next));
            }
        }
        self.out.drain(..)
    }

    fn on_up(&mut self, p: P) {
        if self.peers.contains_key(&p) {
            self.set_eager_everywhere(p);
            return;
        }
        if self.peers.len() >= self.config.max_peers {
            self.stats.peers_full += 1;
            return;
        }
        // Eager in every tree: it is in no lazy list (`on_down` took it out of them).
        self.peers.insert(p, Peer { ihave: Vec::new() });
    }

    fn send(&mut self, to: P, message: Message) {
        self.out.push_back(Output::Send { to, message });
    }

    /// Makes the link to `p` lazy in `tree` on both ends.
    fn prune(&mut self, p: P, tree: Tree) {
        if self.peers.contains_key(&p) {
            self.set_eager(p, tree, false);
            self.stats.prunes_sent += 1;
            self.send(p, Message::Prune(tree));
        }
    }

    fn on_gossip(
        &mut self,
        from: P,
        id: MessageId,
        hops: u16,
        own_tree: bool,
        payload: Payload,
        now: Instant,
    ) {
        self.stats.gossip_received += 1;
        if let Some(pending) = self.pending.get_mut(&id) {
            self.stats.duplicates += 1;
            if pending.from != from
                && !pending.others.contains(&from)
                && pending.others.len() < MAX_OTHERS
            {
                pending.others.push(from);
            }
            return;
        }
        if self.seen.contains(&id) {
            // A second copy: it came over a cycle of eager links; cut this one, in the tree the
            // accepted copy ran on (this copy's payload was not checked; one no longer cached
            // is taken for a message with no origin on the shared tree).
            self.stats.duplicates += 1;
            let prune = match self.cache.get(&id) {
                Some(c) => self.pruned_tree(c.tree, &c.payload),
                None => self.pruned_tree(None, &[]),
            };
            if let Some(tree) = prune {
                self.prune(from, tree);
            } else {
                self.stats.duplicates_kept += 1;
            }
            return;
        }
        if self.pending.len() >= self.config.max_pending {
            // Validation is behind: leave the message to a graft from this peer later.
            self.stats.pending_full += 1;
            self.add_missing(from, id, hops, now);
            return;
        }
        self.seen.insert(id, now);
        let grafted = self.missing.get(&id).is_some_and(|m| m.attempts > 0);
        self.remove_missing(&id);
        self.pending.insert(
            id,
            Pending {
                from,
                hops: hops.saturating_add(1),
                own_tree,
                payload: payload.clone(),
                others: Vec::new(),
                grafted,
            },
        );
        self.out.push_back(Output::Validate { id, payload, from });
    }

    fn on_validated(&mut self, id: MessageId, ok: bool, now: Instant) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        if !ok {
            // Forget the id, so that the real message under it can still arrive, and ask the
            // others that offered it.
            self.stats.rejected += 1;
            self.seen.remove(&id);
            if let Some(&owner) = p.others.first() {
                if self.missing.len() < self.config.max_missing {
                    let sources = p.others.iter().map(|o| (*o, p.hops)).collect();
                    self.insert_missing(id, owner, sources, now);
                }
            }
            return;
        }
        self.stats.delivered += 1;
        self.stats.delivered_hops += u64::from(p.hops);
        if p.grafted {
            self.stats.delivered_grafted += 1;
        } else {
            self.stats.delivered_pushed += 1;
        }
        self.out.push_back(Output::Deliver {
            id,
            payload: p.payload.clone(),
            hops: p.hops,
        });
        // The first copy's link is part of the tree; the others' links close cycles.
        let tree = self.choose_tree(&p.payload, Some(p.own_tree), now);
        // A push over a link we made lazy: our Prune crossed it (the sender still had us
        // eager). Both ends must agree, or neither pushes to the other while we prune our
        // other links to this message's duplicates: cancel the Prune.
        if !p.grafted && self.peers.contains_key(&p.from) && !self.is_eager(&p.from, &tree) {
            self.stats.prunes_cancelled += 1;
            self.send(p.from, Message::Push(tree));
        }
        self.set_eager(p.from, tree, true);
        if let Some(t) = tree.and_then(|k| self.trees.get_mut(&k)) {
            t.parent = Some(p.from);
        }
        self.cache_insert(id, p.payload.clone(), p.hops, Some(p.from), tree, now);
        if let Some(pruned) = self.pruned_tree(tree, &p.payload) {
            for &o in &p.others {
                self.prune(o, pruned);
            }
        } else {
            self.stats.duplicates_kept += p.others.len() as u64;
        }
        self.relay(id, &p.payload, p.hops, Some(p.from), tree, now);
    }

    fn on_publish(&mut self, id: MessageId, payload: Payload, ours: bool, now: Instant) {
        if self.seen.contains(&id) {
            return;
        }
        self.stats.published += 1;
        self.seen.insert(id, now);
        self.remove_missing(&id);
        let tree = self.choose_tree(&payload, (!ours).then_some(false), now);
        self.cache_insert(id, payload.clone(), 0, None, tree, now);
        self.relay(id, &payload, 0, None, tree, now);
    }

    /// Whether `id` is the anchor's message (an id no longer cached has no known origin).
    fn is_anchors(&self, id: &MessageId) -> bool {
        let origin = self.cache.get(id).and_then(|c| origin(&c.payload));
        self.anchor.is_anchor(origin)
    }

    /// Pushes to the eager neighbours and queues announcements, all but `except`.
    fn relay(
        &mut self,
        id: MessageId,
        payload: &Payload,
        hops: u16,
        except: Option<P>,
        tree: Tree,
        now: Instant,
    ) {
        let announce_to_eager = self.config.announce_to_eager;
        // `lazy_of`, spelled out: it would borrow all of `self` across the loop below.
        let lazy = match &tree {
            None => &self.shared_lazy,
            Some(key) => self.trees.get(key).map_or(&[][..], |t| &t.lazy),
        };
        let mut full = Vec::new();
        for (p, peer) in self.peers.iter_mut() {
            if Some(*p) == except {
                continue;
            }
            let eager = !lazy.contains(p);
            if eager {
                self.stats.gossip_sent += 1;
                self.out.push_back(Output::Send {
                    to: *p,
                    message: Message::Gossip {
                        id,
                        hops,
                        own_tree: tree.is_some(),
                        payload: payload.clone(),
                    },
                });
            }
            if !eager || announce_to_eager {
                peer.ihave.push((id, hops));
                if peer.ihave.len() >= self.config.max_ihave_batch {
                    full.push(*p);
                }
            }
        }
        for p in full {
            self.flush(p);
        }
        if self.flush_at.is_none() && self.peers.values().any(|p| !p.ihave.is_empty()) {
            self.flush_at = Some(now + self.config.ihave_interval);
        }
    }

    /// Sends `p`'s queued announcements.
    fn flush(&mut self, p: P) {
        let Some(peer) = self.peers.get_mut(&p) else {
            return;
        };
        if peer.ihave.is_empty() {
            return;
        }
        let entries = std::mem::take(&mut peer.ihave);
        self.stats.ihave_sent += entries.len() as u64;
        self.send(p, Message::IHave(entries));
    }

    fn on_ihave(&mut self, from: P, mut entries: Vec<(MessageId, u16)>, now: Instant) {
        let allowed = self
            .ihave_budget
            .take_up_to(from, entries.len() as f64, now) as usize;
        if allowed < entries.len() {
            self.stats.ihave_over_rate += (entries.len() - allowed) as u64;
            entries.truncate(allowed);
        }
        for (id, hops) in entries {
            if self.seen.contains(&id) {
                self.maybe_optimise(from, &id, hops);
            } else {
                self.add_missing(from, id, hops, now);
            }
        }
    }

    /// Switches the tree to `q` if it had the message `threshold` hops sooner than our parent.
    fn maybe_optimise(&mut self, q: P, id: &MessageId, q_hops: u16) {
        let Some(threshold) = self.config.optimize_threshold else {
            return;
        };
        if matches!(self.config.trees, Trees::Anchor(_)) && !self.is_anchors(id) {
            // Hop counts from different senders disagree on which path is shorter.
            return;
        }
        let Some(c) = self.cache.get(id) else {
            return;
        };
        let Some(parent) = c.from else {
            return;
        };
        let via_q = q_hops.saturating_add(1);
        if parent == q || c.hops < via_q.saturating_add(threshold) {
            return;
        }
        let lazy_q = self.peers.contains_key(&q) && !self.is_eager(&q, &None);
        if !(lazy_q && self.is_eager(&parent, &None)) {
            return;
        }
        self.stats.optimisations += 1;
        self.set_eager(q, None, true);
        self.send(q, Message::Graft(Vec::new()));
        self.set_eager(parent, None, false);
        self.send(parent, Message::Prune(None));
    }

    fn cache_insert(
        &mut self,
        id: MessageId,
        payload: Payload,
        hops: u16,
        from: Option<P>,
        tree: Tree,
        now: Instant,
    ) {
        let len = payload.len();
        if len > self.config.max_cached_bytes {
            return;
        }
        while self.cache.len() >= self.config.max_cached
            || self.cache_bytes + len > self.config.max_cached_bytes
        {
            if !self.evict_oldest() {
                break;
            }
        }
        if self
            .cache
            .insert(
                id,
                Cached {
                    payload,
                    hops,
                    from,
                    tree,
                    answered: Vec::new(),
                },
            )
            .is_none()
        {
            self.cache_bytes += len;
            self.cache_order.push_back((now, id, len));
        }
    }

    fn evict_oldest(&mut self) -> bool {
        let Some((_, id, len)) = self.cache_order.pop_front() else {
            return false;
        };
        if self.cache.remove(&id).is_some() {
            self.cache_bytes -= len;
        }
        true
    }

    fn expire(&mut self, now: Instant) {
        self.seen.expire(now);
        self.anchor.expire(now);
        while let Some(&(at, _, _)) = self.cache_order.front() {
            if now.saturating_duration_since(at) < self.config.cache_ttl {
                break;
            }
            self.evict_oldest();
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod simulation;
