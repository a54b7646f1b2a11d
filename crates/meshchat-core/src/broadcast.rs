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
//! - A node that hears of a message by `IHave` and does not get it within
//!   [`Config::graft_timeout`] sends `Graft` (make the link eager, and send me these ids) to an
//!   announcer, then to the next one every [`Config::graft_retry`]. That repairs the tree after a
//!   crash, a lost frame or a closed connection.
//! - **Tree optimisation**: when an `IHave` shows that a lazy neighbour had a message at least
//!   [`Config::optimize_threshold`] hops sooner than the path it came by, the node grafts the
//!   lazy link (a `Graft` with no ids) and prunes the eager one it got the message from.
//!
//! Membership is the connection graph itself ([`In::NeighborUp`] and [`In::NeighborDown`]), not
//! an overlay such as HyParView: in a physical mesh a node reaches only some peers, and the
//! node's connection management already decides which. One tree serves every sender: an acyclic
//! connected set of eager links is a spanning tree from any node.
//!
//! # Choices beyond the paper
//!
//! - **Validation before relay.** A message is relayed, announced and cached only after the node
//!   has checked it ([`Out::Validate`], answered by [`In::Validated`]): its signature once per
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
//!   `Graft` or answer is retried even with a single announcer. When every announcer of a missing
//!   message is gone (crashed before it answered), the graft goes to the remaining neighbours in
//!   turn: one of them may hold it and its own announcement may have been lost.
//! - **A node keeps an eager link**: when its last one closes, it grafts a lazy one at once
//!   rather than waiting for a miss (over a lazy link one lost announcement loses the message).
//! - Hop counts sit in the frame, outside the envelope's signature: the envelope is relayed
//!   byte for byte.
//!
//! # Timers
//!
//! Two kinds of deadline: the announcement flush ([`Config::ihave_interval`] after the first
//! announcement queued) and one graft deadline per missing message. The state machine keeps them
//! and says when it next needs to run with [`Out::WakeAt`]; the node keeps one timer, replaced by
//! each `WakeAt`, and passes [`In::Tick`] when it fires. Due work is also done on any other input,
//! so a late or spurious tick is harmless. Time is passed in; nothing here reads a clock.
//!
//! # Bounds
//!
//! [`Config::max_peers`] neighbours, each with at most [`Config::max_ihave_batch`] queued
//! announcements; [`Config::max_seen`] ids remembered for [`Config::seen_ttl`];
//! [`Config::max_cached`] payloads and [`Config::max_cached_bytes`] bytes kept for
//! [`Config::cache_ttl`] to answer grafts; [`Config::max_pending`] messages awaiting validation;
//! [`Config::max_missing`] missing ids with at most [`Config::max_sources`] announcers each.
//! When a table is full, new entries are refused and counted in [`Stats`] (a message refused this
//! way is left to a later announcement, or to history sync, the backstop for anything the tree
//! misses). Frames are bounded by [`wire`].
//!
//! A peer can lie in a frame: hop counts (an `IHave` with 0 hops makes us graft it and prune our
//! tree parent; if it then withholds messages, the other announcements repair it), or grafts for
//! cached ids (each answered at most once per id in the frame, and the node rate-limits peers with
//! [`crate::guard`]). Malformed frames are [`wire::Error`]s, strikes.
//!
//! # Wire format (`/meshchat/broadcast/1`)
//!
//! A frame is at most [`wire::MAX_FRAME_LEN`] bytes and holds 1..=[`wire::MAX_MESSAGES`]
//! messages. Integers are big-endian.
//!
//! ```text
//! frame   = count u8 (1..=64) | message * count          (no trailing bytes)
//! message = 0x01 Gossip | id [32] | hops u16 | len u32 | payload [len]   (len <= MAX_ENVELOPE_LEN)
//!         | 0x02 IHave  | count u16 (1..=512) | (id [32] | hops u16) * count
//!         | 0x03 Graft  | count u16 (0..=512) | id [32] * count
//!         | 0x04 Prune
//! ```
//!
//! `hops` is the sender's own hop count for the message: 0 at its author, and a receiver's count
//! is the sender's plus one. `payload` is an envelope (`crate::envelope`) and `id` its
//! [`MessageId`]. A Graft with no ids only asks the receiver to push from now on. Example, a frame
//! with a Gossip of id `ab..ab`, hops 258 and payload `hey`, then a Prune:
//! `02 | 01 ab*32 0102 00000003 686579 | 04`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::dedup::SeenCache;
use crate::envelope::MessageId;
use crate::rate::{Buckets, Rate};

pub mod wire;

pub use wire::{Message, Payload};

/// Most peers kept per pending message as also having offered it (to prune, or to graft if the
/// first copy is rejected).
const MAX_OTHERS: usize = 4;

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
    /// it. Higher keeps the tree stable under many senders (a shorter path for one sender may be
    /// a longer one for another).
    pub optimize_threshold: u16,
    /// Whether eager neighbours get announcements too (see the module docs): recovers a lost
    /// push on a link with no lazy alternative.
    pub announce_to_eager: bool,
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
            optimize_threshold: 7,
            announce_to_eager: true,
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
    fn check(&self) {
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
        ] {
            assert!(v > 0, "broadcast {name} must be positive");
        }
        assert!(self.max_graft_attempts > 0, "at least one graft per miss");
        assert!(
            self.seen_ttl >= self.cache_ttl && self.max_seen >= self.max_cached,
            "ids must be remembered at least as long as their payloads"
        );
    }
}

/// An input to [`Broadcast::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum In<P> {
    /// A connection to `P` is open (it starts eager).
    NeighborUp(P),
    /// The last connection to `P` closed.
    NeighborDown(P),
    /// A message from a neighbour, decoded from a frame ([`wire::decode`]).
    Message { from: P, message: Message },
    /// The application's own message, signed: relayed without validation, not delivered back.
    Publish { id: MessageId, payload: Payload },
    /// The answer to [`Out::Validate`]: whether the payload is a valid envelope with that id.
    Validated { id: MessageId, ok: bool },
    /// The timer of the last [`Out::WakeAt`] fired (or any time: a tick with nothing due is
    /// harmless).
    Tick,
}

/// An output of [`Broadcast::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out<P> {
    /// Send this message to neighbour `to`. The node may pack the messages of one `handle` call
    /// for the same neighbour into frames with [`wire::pack`], in order.
    Send { to: P, message: Message },
    /// Check this payload (first copy of `id`, from `from`) and answer with [`In::Validated`]:
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
    /// Pass [`In::Tick`] at this time; replaces any earlier `WakeAt`.
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

/// Counters, for the node's stats and the simulator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `Gossip` messages received, duplicates included.
    pub gossip_received: u64,
    /// `Gossip` messages received for an id already seen.
    pub duplicates: u64,
    /// Messages delivered (validated, first time seen).
    pub delivered: u64,
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
    /// Lazy links grafted because the last eager one closed.
    pub reconnects: u64,
    /// Neighbours refused because [`Config::max_peers`] were connected.
    pub peers_full: u64,
    /// Messages from peers that are not neighbours, ignored.
    pub unknown_peer: u64,
    /// Grafted ids ignored because they were answered to that neighbour within
    /// [`Config::graft_answer_window`].
    pub graft_repeats: u64,
    /// Grafted ids not answered because the neighbour's byte budget was spent.
    pub graft_over_budget: u64,
    /// Announced ids dropped because the neighbour was over [`Config::ihave_entries`].
    pub ihave_over_rate: u64,
    /// Announcements refused because the announcer held [`Config::max_missing_per_peer`]
    /// missing ids already.
    pub missing_peer_full: u64,
}

/// A neighbour.
#[derive(Debug)]
struct Peer {
    /// Push messages to it (else announce them).
    eager: bool,
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
    payload: Payload,
    /// Other neighbours that sent it meanwhile.
    others: Vec<P>,
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
    /// When the queued announcements are due.
    flush_at: Option<Instant>,
    /// The last [`Out::WakeAt`] emitted.
    wake: Option<Instant>,
    stats: Stats,
    out: VecDeque<Out<P>>,
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

    /// The neighbours messages are pushed to.
    pub fn eager_peers(&self) -> impl Iterator<Item = P> + '_ {
        self.peers.iter().filter(|(_, p)| p.eager).map(|(k, _)| *k)
    }

    /// The neighbours messages are announced to.
    pub fn lazy_peers(&self) -> impl Iterator<Item = P> + '_ {
        self.peers.iter().filter(|(_, p)| !p.eager).map(|(k, _)| *k)
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
        input: In<P>,
        now: Instant,
    ) -> std::collections::vec_deque::Drain<'_, Out<P>> {
        self.expire(now);
        match input {
            In::NeighborUp(p) => self.on_up(p),
            In::NeighborDown(p) => self.on_down(p),
            In::Message { from, message } => {
                if !self.peers.contains_key(&from) {
                    self.stats.unknown_peer += 1;
                } else {
                    match message {
                        Message::Gossip { id, hops, payload } => {
                            self.on_gossip(from, id, hops, payload, now)
                        }
                        Message::IHave(entries) => self.on_ihave(from, entries, now),
                        Message::Graft(ids) => self.on_graft(from, ids, now),
                        Message::Prune => self.set_eager(from, false),
                    }
                }
            }
            In::Publish { id, payload } => self.on_publish(id, payload, now),
            In::Validated { id, ok } => self.on_validated(id, ok, now),
            In::Tick => {}
        }
        self.run_timers(now);
        if let Some(next) = self.next_deadline() {
            if self.wake != Some(next) {
                self.wake = Some(next);
                self.out.push_back(Out::WakeAt(next));
            }
        }
        self.out.drain(..)
    }

    fn on_up(&mut self, p: P) {
        if let Some(peer) = self.peers.get_mut(&p) {
            peer.eager = true;
            return;
        }
        if self.peers.len() >= self.config.max_peers {
            self.stats.peers_full += 1;
            return;
        }
        self.peers.insert(
            p,
            Peer {
                eager: true,
                ihave: Vec::new(),
            },
        );
    }

    fn on_down(&mut self, p: P) {
        // Its queued announcements go with it; missing entries skip it when grafting.
        let Some(gone) = self.peers.remove(&p) else {
            return;
        };
        // A node whose last eager link closed would hear of every message by one announcement
        // per link until a miss repaired the tree, and a lost announcement is never repeated:
        // graft a lazy link at once.
        if gone.eager && !self.peers.values().any(|q| q.eager) {
            if let Some((&q, peer)) = self.peers.iter_mut().next() {
                peer.eager = true;
                self.stats.reconnects += 1;
                self.send(q, Message::Graft(Vec::new()));
            }
        }
    }

    fn set_eager(&mut self, p: P, eager: bool) {
        if let Some(peer) = self.peers.get_mut(&p) {
            peer.eager = eager;
        }
    }

    fn send(&mut self, to: P, message: Message) {
        self.out.push_back(Out::Send { to, message });
    }

    /// Makes the link to `p` lazy on both ends.
    fn prune(&mut self, p: P) {
        if self.peers.contains_key(&p) {
            self.set_eager(p, false);
            self.stats.prunes_sent += 1;
            self.send(p, Message::Prune);
        }
    }

    fn on_gossip(&mut self, from: P, id: MessageId, hops: u16, payload: Payload, now: Instant) {
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
            // A second copy: it came over a cycle of eager links; cut this one.
            self.stats.duplicates += 1;
            self.prune(from);
            return;
        }
        if self.pending.len() >= self.config.max_pending {
            // Validation is behind: leave the message to a graft from this peer later.
            self.stats.pending_full += 1;
            self.add_missing(from, id, hops, now);
            return;
        }
        self.seen.insert(id, now);
        self.remove_missing(&id);
        self.pending.insert(
            id,
            Pending {
                from,
                hops: hops.saturating_add(1),
                payload: payload.clone(),
                others: Vec::new(),
            },
        );
        self.out.push_back(Out::Validate { id, payload, from });
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
        self.out.push_back(Out::Deliver {
            id,
            payload: p.payload.clone(),
            hops: p.hops,
        });
        // The first copy's link is part of the tree; the others' links close cycles.
        self.set_eager(p.from, true);
        for o in &p.others {
            self.prune(*o);
        }
        self.cache_insert(id, p.payload.clone(), p.hops, Some(p.from), now);
        self.relay(id, &p.payload, p.hops, Some(p.from), now);
    }

    fn on_publish(&mut self, id: MessageId, payload: Payload, now: Instant) {
        if self.seen.contains(&id) {
            return;
        }
        self.stats.published += 1;
        self.seen.insert(id, now);
        self.remove_missing(&id);
        self.cache_insert(id, payload.clone(), 0, None, now);
        self.relay(id, &payload, 0, None, now);
    }

    /// Pushes to the eager neighbours and queues announcements, all but `except`.
    fn relay(
        &mut self,
        id: MessageId,
        payload: &Payload,
        hops: u16,
        except: Option<P>,
        now: Instant,
    ) {
        let announce_to_eager = self.config.announce_to_eager;
        let mut full = Vec::new();
        for (p, peer) in self.peers.iter_mut() {
            if Some(*p) == except {
                continue;
            }
            if peer.eager {
                self.stats.gossip_sent += 1;
                self.out.push_back(Out::Send {
                    to: *p,
                    message: Message::Gossip {
                        id,
                        hops,
                        payload: payload.clone(),
                    },
                });
            }
            if !peer.eager || announce_to_eager {
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
        let Some(c) = self.cache.get(id) else {
            return;
        };
        let Some(parent) = c.from else {
            return;
        };
        let via_q = q_hops.saturating_add(1);
        if parent == q || c.hops < via_q.saturating_add(self.config.optimize_threshold) {
            return;
        }
        let lazy_q = self.peers.get(&q).is_some_and(|p| !p.eager);
        let eager_parent = self.peers.get(&parent).is_some_and(|p| p.eager);
        if !(lazy_q && eager_parent) {
            return;
        }
        self.stats.optimisations += 1;
        self.set_eager(q, true);
        self.send(q, Message::Graft(Vec::new()));
        self.set_eager(parent, false);
        self.send(parent, Message::Prune);
    }

    fn add_missing(&mut self, from: P, id: MessageId, hops: u16, now: Instant) {
        if let Some(m) = self.missing.get_mut(&id) {
            if m.sources.len() < self.config.max_sources && !m.sources.iter().any(|s| s.0 == from) {
                m.sources.push((from, hops));
            }
            return;
        }
        if self.missing.len() >= self.config.max_missing {
            self.stats.missing_full += 1;
            return;
        }
        if self.missing_owned.get(&from).copied().unwrap_or(0) >= self.config.max_missing_per_peer {
            self.stats.missing_peer_full += 1;
            return;
        }
        let deadline = now + self.config.graft_timeout;
        self.insert_missing(id, from, vec![(from, hops)], deadline);
    }

    fn insert_missing(&mut self, id: MessageId, owner: P, sources: Vec<(P, u16)>, at: Instant) {
        let old = self.missing.insert(
            id,
            Missing {
                sources,
                owner,
                next: 0,
                attempts: 0,
                deadline: at,
            },
        );
        if let Some(old) = old {
            self.deadlines.remove(&(old.deadline, id));
            self.disown(old.owner);
        }
        *self.missing_owned.entry(owner).or_default() += 1;
        self.deadlines.insert((at, id));
    }

    fn remove_missing(&mut self, id: &MessageId) {
        if let Some(m) = self.missing.remove(id) {
            self.deadlines.remove(&(m.deadline, *id));
            self.disown(m.owner);
        }
    }

    fn disown(&mut self, owner: P) {
        if let Some(n) = self.missing_owned.get_mut(&owner) {
            *n -= 1;
            if *n == 0 {
                self.missing_owned.remove(&owner);
            }
        }
    }

    /// Answers a graft: each listed id still cached, at most once per neighbour within
    /// [`Config::graft_answer_window`], within the neighbour's byte budget. An id beyond the
    /// budget is not answered, and makes the Graft one offence unless it was refused to that
    /// neighbour within [`Config::graft_refusal_window`] already (an honest retry).
    fn on_graft(&mut self, from: P, ids: Vec<MessageId>, now: Instant) {
        self.set_eager(from, true);
        let (answer_window, refusal_window) = (
            self.config.graft_answer_window,
            self.config.graft_refusal_window,
        );
        let mut offence = false;
        for id in ids {
            let Some(c) = self.cache.get_mut(&id) else {
                self.stats.graft_misses += 1;
                continue;
            };
            let mut refused_before = false;
            if let Some(i) = c.answered.iter().position(|a| a.peer == from) {
                let last = c.answered.swap_remove(i);
                let age = now.saturating_duration_since(last.at);
                if !last.refused && age < answer_window {
                    c.answered.push(last);
                    self.stats.graft_repeats += 1;
                    continue;
                }
                refused_before = last.refused && age < refusal_window;
            }
            let answered = self.graft_budget.take(from, c.payload.len() as f64, now);
            c.answered.push(Answer {
                peer: from,
                at: now,
                refused: !answered,
            });
            if !answered {
                self.stats.graft_over_budget += 1;
                offence |= !refused_before;
                continue;
            }
            let message = Message::Gossip {
                id,
                hops: c.hops,
                payload: c.payload.clone(),
            };
            self.stats.gossip_sent += 1;
            self.out.push_back(Out::Send { to: from, message });
        }
        if offence {
            self.out.push_back(Out::Misbehaved {
                peer: from,
                offence: Offence::GraftOverBudget,
            });
        }
    }

    /// Sends due announcements and grafts.
    fn run_timers(&mut self, now: Instant) {
        if self.flush_at.is_some_and(|t| t <= now) {
            self.flush_at = None;
            let due: Vec<P> = self
                .peers
                .iter()
                .filter(|(_, p)| !p.ihave.is_empty())
                .map(|(k, _)| *k)
                .collect();
            for p in due {
                self.flush(p);
            }
        }
        let mut grafts: BTreeMap<P, Vec<MessageId>> = BTreeMap::new();
        while let Some(&(t, id)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(m) = self.missing.get_mut(&id) else {
                continue;
            };
            if m.attempts >= self.config.max_graft_attempts {
                let owner = m.owner;
                self.missing.remove(&id);
                self.disown(owner);
                self.stats.given_up += 1;
                continue;
            }
            let peers = &self.peers;
            let n = m.sources.len();
            let i = match (0..n)
                .map(|k| (m.next + k) % n)
                .find(|&i| peers.contains_key(&m.sources[i].0))
            {
                Some(i) => i,
                None if !peers.is_empty() => {
                    // Every announcer is gone (crashed, or closed the connection): the message
                    // may still be next door, since a lost announcement is never repeated. Ask
                    // the neighbours we have.
                    m.sources = peers
                        .keys()
                        .take(self.config.max_sources)
                        .map(|p| (*p, u16::MAX))
                        .collect();
                    self.stats.fallback_grafts += 1;
                    0
                }
                None => {
                    let owner = m.owner;
                    self.missing.remove(&id);
                    self.disown(owner);
                    self.stats.given_up += 1;
                    continue;
                }
            };
            let n = m.sources.len();
            m.next = (i + 1) % n;
            m.attempts += 1;
            m.deadline = now + self.config.graft_retry;
            self.deadlines.insert((m.deadline, id));
            grafts.entry(m.sources[i].0).or_default().push(id);
        }
        for (p, ids) in grafts {
            self.set_eager(p, true);
            self.stats.grafts_sent += ids.len() as u64;
            for chunk in ids.chunks(wire::MAX_GRAFT) {
                self.send(p, Message::Graft(chunk.to_vec()));
            }
        }
    }

    fn cache_insert(
        &mut self,
        id: MessageId,
        payload: Payload,
        hops: u16,
        from: Option<P>,
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
