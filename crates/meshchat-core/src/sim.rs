//! A discrete-event network simulator for the core's state machines (broadcast today; routing,
//! election and the rest can reuse it).
//!
//! Nodes are numbered `0..n` ([`NodeId`]) and hold anything that implements [`Node`]: usually a
//! thin adapter that feeds a state machine its inputs and turns its outputs into
//! [`Ctx::send`] and [`Ctx::wake_at`] calls. Links are undirected, with a latency, a jitter and a
//! loss rate; each direction keeps order (a message never overtakes an earlier one on the same
//! link, as on a TCP or QUIC stream), and a lost message is simply never delivered. Links can be
//! cut and nodes can crash: a crashed node's state is dropped, its in-flight messages are lost,
//! and its neighbours are told after [`Sim::set_detect_delay`] (a closed connection is noticed
//! late).
//!
//! Nodes can also take time to handle a message ([`Sim::set_processing`]): each node then handles
//! its arrivals one at a time, in arrival order, each occupying it for the time the cost function
//! gives, as a process's one actor loop does; arrivals meanwhile wait in the node's inbox. That is
//! the per-hop processing delay of a real node (checks, store, frame handling) and its queueing
//! under load. By default handling is instant.
//!
//! Time is virtual: a priority queue of events ordered by `(time, sequence)`, processed one at a
//! time; nothing reads a clock and all randomness comes from one seeded RNG, so a run is fully
//! determined by its seed. [`Instant`]s are a fixed base plus the virtual elapsed time (the base is
//! the one wall-clock read, and no result depends on it).
//!
//! Compiled for tests and with the `sim` feature.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A node's index in the simulation.
pub type NodeId = u32;

/// A simulated node.
pub trait Node {
    type Message;
    /// A link to `peer` came up (also called when the simulation connects two nodes).
    fn on_link_up(&mut self, peer: NodeId, ctx: &mut Ctx<'_, Self::Message>);
    /// The link to `peer` went down, or `peer` crashed (after the detection delay).
    fn on_link_down(&mut self, peer: NodeId, ctx: &mut Ctx<'_, Self::Message>);
    /// A message from neighbour `from`.
    fn on_message(
        &mut self,
        from: NodeId,
        message: Self::Message,
        ctx: &mut Ctx<'_, Self::Message>,
    );
    /// A time the node asked for with [`Ctx::wake_at`] came.
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self::Message>);
}

/// What a node may do in a callback: send to neighbours, ask to be woken, draw randomness.
pub struct Ctx<'a, M> {
    /// The current virtual time.
    pub now: Instant,
    /// The node being called.
    pub me: NodeId,
    /// The simulation's RNG (seeded).
    pub rng: &'a mut StdRng,
    sends: &'a mut Vec<(NodeId, M)>,
    wake: &'a mut Option<Instant>,
}

impl<M> Ctx<'_, M> {
    /// Sends `message` to neighbour `to` (dropped and counted if there is no such link).
    pub fn send(&mut self, to: NodeId, message: M) {
        self.sends.push((to, message));
    }

    /// Calls [`Node::on_timer`] at `at` (or now, if `at` has passed). A node has one pending
    /// wake-up, the earliest asked for; a later one asked for meanwhile is dropped, so a node
    /// whose deadlines move later must ask again when woken (as the core's state machines do).
    pub fn wake_at(&mut self, at: Instant) {
        if self.wake.is_none_or(|w| at < w) {
            *self.wake = Some(at);
        }
    }
}

/// A link's behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Fixed one-way delay.
    pub latency: Duration,
    /// Each message is delayed by a further uniform `0..=jitter` (order on the link is kept).
    pub jitter: Duration,
    /// Probability that a message is lost, `0.0..=1.0`.
    pub loss: f64,
}

impl LinkConfig {
    pub fn fixed(latency: Duration) -> Self {
        Self {
            latency,
            jitter: Duration::ZERO,
            loss: 0.0,
        }
    }
}

#[derive(Debug)]
struct Link {
    config: LinkConfig,
    /// Bumped whenever the link goes down, so messages sent before are not delivered after.
    generation: u64,
    up: bool,
    /// Latest arrival scheduled in each direction (index: 0 from the lower id, 1 from the
    /// higher), to keep order.
    last_arrival: [Instant; 2],
}

/// Counters over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events processed.
    pub events: u64,
    /// Messages handed to a link.
    pub sent: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages the link lost.
    pub lost: u64,
    /// Messages dropped because the link went down or the receiver crashed in flight, or sent
    /// where there is no link.
    pub dropped: u64,
}

enum Event<M> {
    Deliver {
        from: NodeId,
        to: NodeId,
        generation: u64,
        message: M,
    },
    Timer {
        node: NodeId,
    },
    /// A neighbour learns that `peer` is gone.
    LinkDown {
        node: NodeId,
        peer: NodeId,
    },
    /// The node is done handling the first message of its inbox (with [`Sim::set_processing`]):
    /// it takes effect now.
    Process {
        node: NodeId,
    },
}

/// A message that arrived at a node with a processing cost, waiting to be handled.
struct Arrived<M> {
    from: NodeId,
    message: M,
}

/// How long a node takes to handle a message (see [`Sim::set_processing`]).
type Cost<M> = Box<dyn Fn(&M) -> Duration>;

struct Scheduled<M> {
    at: Instant,
    seq: u64,
    event: Event<M>,
}

impl<M> PartialEq for Scheduled<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<M> Eq for Scheduled<M> {}
impl<M> PartialOrd for Scheduled<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Scheduled<M> {
    /// Reversed, so the `BinaryHeap` pops the earliest (then the first scheduled).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The simulation: nodes, links, the event queue and the RNG.
pub struct Sim<N: Node> {
    start: Instant,
    now: Instant,
    /// `None` once crashed.
    nodes: Vec<Option<N>>,
    /// Keyed by `(lower id, higher id)`.
    links: HashMap<(NodeId, NodeId), Link>,
    /// Neighbours over links that are up, in order (for reproducible iteration).
    adjacency: Vec<BTreeSet<NodeId>>,
    queue: BinaryHeap<Scheduled<N::Message>>,
    seq: u64,
    /// Each node's pending wake-up.
    wake: Vec<Option<Instant>>,
    rng: StdRng,
    detect_delay: Duration,
    stats: Stats,
    /// Handling time per message; `None`: instant.
    processing: Option<Cost<N::Message>>,
    /// Per node: messages that arrived and wait to be handled, in arrival order.
    inbox: Vec<VecDeque<Arrived<N::Message>>>,
    /// Per node: when it finished the last message it handled, and whether a `Process` event is
    /// scheduled for the first of its inbox.
    busy: Vec<(Instant, bool)>,
}

impl<N: Node> Sim<N> {
    pub fn new(seed: u64) -> Self {
        let start = Instant::now();
        Self {
            start,
            now: start,
            nodes: Vec::new(),
            links: HashMap::new(),
            adjacency: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            wake: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            detect_delay: Duration::ZERO,
            stats: Stats::default(),
            processing: None,
            inbox: Vec::new(),
            busy: Vec::new(),
        }
    }

    /// Makes every node take `cost(message)` to handle each message it receives: a node handles
    /// one at a time, in arrival order; a message takes effect (the node's callback runs, and
    /// what it sends leaves) when its handling ends, and what arrives meanwhile waits. A message
    /// that waited while its link went down is still handled (it had arrived). Timers and link
    /// events are not delayed. Set before the first message is sent.
    pub fn set_processing(&mut self, cost: impl Fn(&N::Message) -> Duration + 'static) {
        self.processing = Some(Box::new(cost));
    }

    /// Messages that arrived at `n` and have not taken effect yet, the one being handled
    /// included (with [`Sim::set_processing`]).
    pub fn backlog(&self, n: NodeId) -> usize {
        self.inbox.get(n as usize).map_or(0, VecDeque::len)
    }

    /// How long after a crash its neighbours get [`Node::on_link_down`].
    pub fn set_detect_delay(&mut self, delay: Duration) {
        self.detect_delay = delay;
    }

    pub fn add_node(&mut self, node: N) -> NodeId {
        self.nodes.push(Some(node));
        self.adjacency.push(BTreeSet::new());
        self.wake.push(None);
        self.inbox.push(VecDeque::new());
        self.busy.push((self.now, false));
        (self.nodes.len() - 1) as NodeId
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn is_alive(&self, n: NodeId) -> bool {
        self.nodes[n as usize].is_some()
    }

    /// The node's state, unless it crashed.
    pub fn node(&self, n: NodeId) -> Option<&N> {
        self.nodes[n as usize].as_ref()
    }

    /// Neighbours of `n` over links that are up.
    pub fn neighbors(&self, n: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.adjacency[n as usize].iter().copied()
    }

    pub fn has_link(&self, a: NodeId, b: NodeId) -> bool {
        self.adjacency[a as usize].contains(&b)
    }

    /// Links `a` and `b` (or brings their link back up with a new config); both are told at once.
    ///
    /// # Panics
    /// If `a == b` or either has crashed.
    pub fn connect(&mut self, a: NodeId, b: NodeId, config: LinkConfig) {
        assert!(a != b, "a node cannot link to itself");
        assert!(
            self.is_alive(a) && self.is_alive(b),
            "linking a crashed node"
        );
        let now = self.now;
        let link = self.links.entry(key(a, b)).or_insert(Link {
            config,
            generation: 0,
            up: false,
            last_arrival: [now; 2],
        });
        link.config = config;
        if link.up {
            return;
        }
        link.up = true;
        self.adjacency[a as usize].insert(b);
        self.adjacency[b as usize].insert(a);
        self.call(a, |n, ctx| n.on_link_up(b, ctx));
        self.call(b, |n, ctx| n.on_link_up(a, ctx));
    }

    /// Cuts the link between `a` and `b`: messages in flight are lost, both ends are told at once.
    pub fn disconnect(&mut self, a: NodeId, b: NodeId) {
        let Some(link) = self.links.get_mut(&key(a, b)) else {
            return;
        };
        if !link.up {
            return;
        }
        link.up = false;
        link.generation += 1;
        self.adjacency[a as usize].remove(&b);
        self.adjacency[b as usize].remove(&a);
        self.call(a, |n, ctx| n.on_link_down(b, ctx));
        self.call(b, |n, ctx| n.on_link_down(a, ctx));
    }

    /// Crashes `n`: its state is dropped, its links go down (in-flight messages lost), and each
    /// neighbour is told after the detection delay.
    pub fn crash(&mut self, n: NodeId) {
        if self.nodes[n as usize].take().is_none() {
            return;
        }
        self.wake[n as usize] = None;
        self.stats.dropped += self.inbox[n as usize].len() as u64;
        self.inbox[n as usize].clear();
        let neighbors: Vec<NodeId> = std::mem::take(&mut self.adjacency[n as usize])
            .into_iter()
            .collect();
        for m in neighbors {
            let link = self
                .links
                .get_mut(&key(n, m))
                .expect("adjacent nodes have a link");
            link.up = false;
            link.generation += 1;
            self.adjacency[m as usize].remove(&n);
            let at = self.now + self.detect_delay;
            self.schedule(at, Event::LinkDown { node: m, peer: n });
        }
    }

    /// Brings crashed node `n` back with fresh state `node` (say, rebuilt from what it
    /// persisted). Its links stay down: [`Sim::connect`] them again.
    ///
    /// # Panics
    /// If `n` is alive.
    pub fn restart(&mut self, n: NodeId, node: N) {
        assert!(!self.is_alive(n), "restarting a live node");
        self.nodes[n as usize] = Some(node);
    }

    /// Runs `f` on node `n` now (to inject a command, such as a publish), unless it crashed.
    pub fn act<R>(
        &mut self,
        n: NodeId,
        f: impl FnOnce(&mut N, &mut Ctx<'_, N::Message>) -> R,
    ) -> Option<R> {
        self.call(n, f)
    }

    /// Processes every event up to and including `until`; the clock ends at `until`.
    pub fn run_until(&mut self, until: Instant) {
        while self.queue.peek().is_some_and(|s| s.at <= until) {
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// [`Sim::run_until`] `now + d`.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Processes events until none is left or the clock would pass `limit`; true if none is left.
    pub fn run_until_idle(&mut self, limit: Instant) -> bool {
        while let Some(s) = self.queue.peek() {
            if s.at > limit {
                self.now = limit;
                return false;
            }
            self.step();
        }
        true
    }

    /// Live nodes reachable from `from` over links that are up (`from` included if alive).
    pub fn component(&self, from: NodeId) -> Vec<bool> {
        let mut reached = vec![false; self.nodes.len()];
        if !self.is_alive(from) {
            return reached;
        }
        reached[from as usize] = true;
        let mut todo = VecDeque::from([from]);
        while let Some(n) = todo.pop_front() {
            for &m in &self.adjacency[n as usize] {
                if !reached[m as usize] && self.is_alive(m) {
                    reached[m as usize] = true;
                    todo.push_back(m);
                }
            }
        }
        reached
    }

    /// Links every node to `k` others chosen at random (fewer where a link already exists), each
    /// link's config drawn by `config`: the "random connected graph" of the tests (connected with
    /// high probability for `k >= 2`; check with [`Sim::component`]).
    pub fn connect_random(&mut self, k: usize, mut config: impl FnMut(&mut StdRng) -> LinkConfig) {
        let n = self.nodes.len() as NodeId;
        if n < 2 {
            return;
        }
        for a in 0..n {
            for _ in 0..k.min(n as usize - 1) {
                let b = loop {
                    let b = self.rng.gen_range(0..n);
                    if b != a {
                        break b;
                    }
                };
                if !self.has_link(a, b) {
                    let c = config(&mut self.rng);
                    self.connect(a, b, c);
                }
            }
        }
    }

    /// Links the nodes into a random `d`-regular graph (every node has `d` links; one node has
    /// `d - 1` when `n * d` is odd), each link's config drawn by `config`: the lab's
    /// `--degree D` topology. Drawn by pairing link ends at random and retrying a draw that pairs a
    /// node with itself or twice with one node; links that already exist are kept. Check
    /// connectivity with [`Sim::component`].
    ///
    /// # Panics
    /// If `d >= n`, or no simple pairing is found in 1 000 draws.
    pub fn connect_regular(&mut self, d: usize, mut config: impl FnMut(&mut StdRng) -> LinkConfig) {
        let n = self.nodes.len();
        assert!(d < n, "degree {d} needs more than {n} nodes");
        let edges = (0..1000)
            .find_map(|_| {
                let mut ends: Vec<NodeId> = (0..n as NodeId)
                    .flat_map(|a| std::iter::repeat_n(a, d))
                    .collect();
                if ends.len() % 2 == 1 {
                    ends.pop();
                }
                // Fisher-Yates with the simulation's RNG.
                for i in (1..ends.len()).rev() {
                    let j = self.rng.gen_range(0..=i);
                    ends.swap(i, j);
                }
                let mut edges = BTreeSet::new();
                for pair in ends.chunks_exact(2) {
                    let (a, b) = (pair[0], pair[1]);
                    if a == b || !edges.insert(key(a, b)) {
                        return None;
                    }
                }
                Some(edges)
            })
            .expect("a simple random regular graph");
        for (a, b) in edges {
            if !self.has_link(a, b) {
                let c = config(&mut self.rng);
                self.connect(a, b, c);
            }
        }
    }

    /// Schedules the end of handling the first message of `n`'s inbox, started at `start`.
    fn schedule_process(&mut self, n: NodeId, start: Instant) {
        let t = n as usize;
        let cost = match (&self.processing, self.inbox[t].front()) {
            (Some(cost), Some(a)) => cost(&a.message),
            _ => Duration::ZERO,
        };
        self.busy[t].1 = true;
        self.schedule(start + cost, Event::Process { node: n });
    }

    fn schedule(&mut self, at: Instant, event: Event<N::Message>) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    fn step(&mut self) {
        let Some(Scheduled { at, event, .. }) = self.queue.pop() else {
            return;
        };
        self.now = self.now.max(at);
        self.stats.events += 1;
        match event {
            Event::Deliver {
                from,
                to,
                generation,
                message,
            } => {
                let live = self
                    .links
                    .get(&key(from, to))
                    .is_some_and(|l| l.up && l.generation == generation);
                if !live || !self.is_alive(to) {
                    self.stats.dropped += 1;
                    return;
                }
                if self.processing.is_none() {
                    self.stats.delivered += 1;
                    self.call(to, |n, ctx| n.on_message(from, message, ctx));
                    return;
                }
                let t = to as usize;
                self.inbox[t].push_back(Arrived { from, message });
                if !self.busy[t].1 {
                    self.schedule_process(to, self.busy[t].0.max(at));
                }
            }
            Event::Process { node } => {
                let t = node as usize;
                self.busy[t] = (at, false);
                let Some(Arrived { from, message }) = self.inbox[t].pop_front() else {
                    return;
                };
                if !self.is_alive(node) {
                    self.stats.dropped += 1;
                    return;
                }
                self.stats.delivered += 1;
                self.call(node, |n, ctx| n.on_message(from, message, ctx));
                if !self.inbox[t].is_empty() {
                    self.schedule_process(node, at);
                }
            }
            Event::Timer { node } => {
                if self.wake[node as usize] != Some(at) {
                    return; // superseded by an earlier wake-up
                }
                self.wake[node as usize] = None;
                self.call(node, |n, ctx| n.on_timer(ctx));
            }
            Event::LinkDown { node, peer } => {
                self.call(node, |n, ctx| n.on_link_down(peer, ctx));
            }
        }
    }

    /// Calls `f` on node `n` and carries out what it asked for.
    fn call<R>(
        &mut self,
        n: NodeId,
        f: impl FnOnce(&mut N, &mut Ctx<'_, N::Message>) -> R,
    ) -> Option<R> {
        let node = self.nodes[n as usize].as_mut()?;
        let mut sends = Vec::new();
        let mut wake = None;
        let r = {
            let mut ctx = Ctx {
                now: self.now,
                me: n,
                rng: &mut self.rng,
                sends: &mut sends,
                wake: &mut wake,
            };
            f(node, &mut ctx)
        };
        for (to, message) in sends {
            self.transmit(n, to, message);
        }
        if let Some(at) = wake {
            let at = at.max(self.now);
            if self.wake[n as usize].is_none_or(|w| at < w) {
                self.wake[n as usize] = Some(at);
                self.schedule(at, Event::Timer { node: n });
            }
        }
        Some(r)
    }

    fn transmit(&mut self, from: NodeId, to: NodeId, message: N::Message) {
        let now = self.now;
        let Some(link) = self.links.get_mut(&key(from, to)).filter(|l| l.up) else {
            self.stats.dropped += 1;
            return;
        };
        self.stats.sent += 1;
        let c = link.config;
        if c.loss > 0.0 && self.rng.gen_bool(c.loss.min(1.0)) {
            self.stats.lost += 1;
            return;
        }
        let jitter = if c.jitter.is_zero() {
            Duration::ZERO
        } else {
            self.rng.gen_range(Duration::ZERO..=c.jitter)
        };
        let dir = usize::from(from > to);
        let at = (now + c.latency + jitter).max(link.last_arrival[dir]);
        link.last_arrival[dir] = at;
        let generation = link.generation;
        self.schedule(
            at,
            Event::Deliver {
                from,
                to,
                generation,
                message,
            },
        );
    }
}

fn key(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it gets; echoes "ping" as "pong"; asks to be woken at given offsets.
    #[derive(Default)]
    struct Probe {
        got: Vec<(Instant, NodeId, &'static str)>,
        ups: Vec<NodeId>,
        downs: Vec<NodeId>,
        timers: u32,
    }

    impl Node for Probe {
        type Message = &'static str;
        fn on_link_up(&mut self, peer: NodeId, _: &mut Ctx<'_, Self::Message>) {
            self.ups.push(peer);
        }
        fn on_link_down(&mut self, peer: NodeId, _: &mut Ctx<'_, Self::Message>) {
            self.downs.push(peer);
        }
        fn on_message(&mut self, from: NodeId, m: &'static str, ctx: &mut Ctx<'_, Self::Message>) {
            self.got.push((ctx.now, from, m));
            if m == "ping" {
                ctx.send(from, "pong");
            }
        }
        fn on_timer(&mut self, _: &mut Ctx<'_, Self::Message>) {
            self.timers += 1;
        }
    }

    fn sim(seed: u64, n: usize) -> Sim<Probe> {
        let mut s = Sim::new(seed);
        for _ in 0..n {
            s.add_node(Probe::default());
        }
        s
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn messages_arrive_after_the_latency_in_order() {
        let mut s = sim(1, 2);
        let t0 = s.now();
        s.connect(
            0,
            1,
            LinkConfig {
                latency: ms(10),
                jitter: ms(30),
                loss: 0.0,
            },
        );
        assert_eq!(s.node(0).unwrap().ups, [1]);
        let words = ["a", "b", "c", "d", "e", "f", "g", "h"];
        for w in words {
            s.act(0, |_, ctx| ctx.send(1, w));
            s.run_for(ms(1));
        }
        assert!(s.run_until_idle(s.now() + ms(100)));
        let got = &s.node(1).unwrap().got;
        assert_eq!(got.iter().map(|g| g.2).collect::<Vec<_>>(), words);
        for (i, (t, from, _)) in got.iter().enumerate() {
            let t = *t - t0;
            assert_eq!(*from, 0);
            assert!(t >= ms(10 + i as u64) && t <= ms(10 + 30 + 8), "{t:?}");
        }
        // Jitter spread the arrivals (some messages waited for an earlier one).
        assert_eq!(s.stats().delivered, 8);
    }

    #[test]
    fn a_ping_is_answered_and_timers_fire_once() {
        let mut s = sim(2, 2);
        s.connect(0, 1, LinkConfig::fixed(ms(5)));
        let t0 = s.now();
        s.act(0, |_, ctx| {
            ctx.send(1, "ping");
            ctx.wake_at(t0 + ms(20));
            ctx.wake_at(t0 + ms(30)); // later than the pending one: dropped
        });
        s.run_for(ms(100));
        assert_eq!(s.node(0).unwrap().got, [(t0 + ms(10), 1, "pong")]);
        assert_eq!(s.node(0).unwrap().timers, 1);
        assert_eq!(s.elapsed(), ms(100));
    }

    #[test]
    fn loss_rate_is_as_configured() {
        let mut s = sim(3, 2);
        s.connect(
            0,
            1,
            LinkConfig {
                latency: ms(1),
                jitter: Duration::ZERO,
                loss: 0.1,
            },
        );
        for _ in 0..10_000 {
            s.act(0, |_, ctx| ctx.send(1, "x"));
        }
        s.run_for(ms(10));
        let lost = s.stats().lost;
        assert!((800..1200).contains(&lost), "{lost} of 10 000 lost");
        assert_eq!(s.stats().delivered + lost, 10_000);
    }

    #[test]
    fn crashes_and_cuts_drop_in_flight_messages_and_tell_neighbours() {
        let mut s = sim(4, 3);
        s.set_detect_delay(ms(50));
        s.connect(0, 1, LinkConfig::fixed(ms(10)));
        s.connect(1, 2, LinkConfig::fixed(ms(10)));
        s.act(0, |_, ctx| ctx.send(1, "to the dead"));
        s.act(2, |_, ctx| ctx.send(1, "also"));
        s.run_for(ms(5));
        s.crash(1);
        assert!(!s.is_alive(1));
        assert_eq!(s.component(0), [true, false, false]);
        s.run_for(ms(40));
        assert!(s.node(0).unwrap().downs.is_empty(), "not yet detected");
        s.run_for(ms(20));
        assert_eq!(s.node(0).unwrap().downs, [1]);
        assert_eq!(s.node(2).unwrap().downs, [1]);
        assert_eq!(s.stats().dropped, 2);
        // A cut link: both ends told at once; a message in flight is lost, and a reconnect does
        // not resurrect it.
        s.connect(0, 2, LinkConfig::fixed(ms(10)));
        s.act(0, |_, ctx| ctx.send(2, "cut"));
        s.disconnect(0, 2);
        s.connect(0, 2, LinkConfig::fixed(ms(10)));
        s.run_for(ms(50));
        assert!(s.node(2).unwrap().got.is_empty());
        assert_eq!(s.node(2).unwrap().downs, [1, 0]);
        assert_eq!(s.stats().dropped, 3);
    }

    #[test]
    fn a_busy_node_handles_messages_one_at_a_time_in_arrival_order() {
        let mut s = sim(5, 3);
        s.set_processing(|m: &&str| if *m == "slow" { ms(4) } else { ms(1) });
        s.connect(0, 2, LinkConfig::fixed(ms(10)));
        s.connect(1, 2, LinkConfig::fixed(ms(10)));
        let t0 = s.now();
        s.act(0, |_, ctx| {
            ctx.send(2, "slow");
            ctx.send(2, "a");
        });
        s.act(1, |_, ctx| ctx.send(2, "b"));
        s.run_for(ms(11));
        assert_eq!(s.backlog(2), 3, "one being handled, two waiting");
        s.run_for(ms(100));
        let got: Vec<(Duration, NodeId, &str)> = s
            .node(2)
            .unwrap()
            .got
            .iter()
            .map(|(t, f, m)| (*t - t0, *f, *m))
            .collect();
        // Arrivals at 10 ms; each takes effect when its handling ends.
        assert_eq!(
            got,
            [(ms(14), 0, "slow"), (ms(15), 0, "a"), (ms(16), 1, "b")]
        );
        // Idle again: the next one waits only for its own handling.
        s.act(0, |_, ctx| ctx.send(2, "c"));
        s.run_for(ms(50));
        assert_eq!(s.node(2).unwrap().got[3].0 - t0, ms(111 + 10 + 1));
        // A crash drops the inbox.
        s.act(0, |_, ctx| {
            ctx.send(2, "x");
            ctx.send(2, "y");
        });
        s.run_for(ms(10));
        s.crash(2);
        s.run_for(ms(10));
        assert_eq!(s.backlog(2), 0);
        assert_eq!(s.stats().dropped, 2);
    }

    #[test]
    fn a_regular_graph_has_the_degree_everywhere() {
        for (n, d) in [(30, 4), (31, 3), (1000, 4)] {
            let mut s = sim(6, n);
            s.connect_regular(d, |_| LinkConfig::fixed(ms(1)));
            let short = (0..n as NodeId)
                .filter(|&a| s.neighbors(a).count() != d)
                .count();
            assert_eq!(short, (n * d) % 2, "{n} {d}");
            assert!(s.neighbors(0).all(|b| b != 0));
        }
    }

    #[test]
    fn runs_are_determined_by_the_seed() {
        let run = |seed| {
            let mut s = sim(seed, 50);
            s.connect_random(3, |rng| LinkConfig {
                latency: ms(rng.gen_range(1..=20)),
                jitter: ms(2),
                loss: 0.05,
            });
            for n in 0..50 {
                let peers: Vec<NodeId> = s.neighbors(n).collect();
                s.act(n, |_, ctx| {
                    for p in peers {
                        ctx.send(p, "ping");
                    }
                });
            }
            s.run_for(ms(200));
            let t0 = s.start;
            let got: Vec<Vec<(Duration, NodeId, &str)>> = (0..50)
                .map(|n| {
                    let got = &s.node(n).unwrap().got;
                    got.iter().map(|(t, f, m)| (*t - t0, *f, *m)).collect()
                })
                .collect();
            (got, s.stats().clone())
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7).0, run(8).0);
        let mut s = sim(7, 1000);
        s.connect_random(3, |_| LinkConfig::fixed(ms(1)));
        assert!(
            s.component(0).iter().all(|r| *r),
            "a 3-random graph is connected"
        );
        let degrees: usize = (0..1000).map(|n| s.neighbors(n).count()).sum();
        assert!(
            (5500..=6000).contains(&degrees),
            "mean degree ~6: {degrees}"
        );
    }
}
