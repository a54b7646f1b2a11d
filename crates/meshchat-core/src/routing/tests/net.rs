//! A small deterministic discrete-event network for the routing tables, private to these tests
//! (older than `crate::sim`, which the DM, election and sync simulators use; moving these tests
//! onto it is left to do).
//!
//! Nodes are `u32` indices into a vector of tables; links are undirected, cost 1, with a latency
//! of `latency ± jitter` (seeded), FIFO per direction like a TCP connection, and may drop each
//! message with probability `loss`. A link that goes down loses what is in flight on it; a
//! crashed node loses its table, and its neighbours see the connection close. Time is simulated:
//! `now` jumps from event to event.
//!
//! Every `Output::Changed` is checked at once: following next hops from the node that changed,
//! towards each destination that changed, must not come back to a node already visited. Since
//! one event changes one node's next hops only, a loop that forms must pass through that node,
//! so this finds every loop the moment it forms. `full_check` also checks every node and
//! destination after every event (small graphs).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::super::{Forward, Input, Limits, Message, Output, Table};

#[derive(Debug)]
enum Ev {
    Deliver {
        from: u32,
        to: u32,
        epoch: u32,
        msg: Message<u32>,
    },
    Wake {
        node: u32,
    },
}

#[derive(Debug)]
struct Scheduled {
    at: Instant,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Debug, Clone, Copy)]
struct Link {
    up: bool,
    /// Bumped when the link comes up again: messages of an earlier connection are lost.
    epoch: u32,
}

pub struct Net {
    pub now: Instant,
    pub limits: Limits,
    pub nodes: Vec<Option<Table<u32>>>,
    links: BTreeMap<(u32, u32), Link>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    rng: StdRng,
    pub loss: f64,
    /// Further loss of seqno requests only (updates get through): requests lost on the way
    /// without the routes going stale that lost updates would leave.
    pub request_loss: f64,
    pub latency: Duration,
    pub jitter: Duration,
    /// Last delivery time scheduled per direction, for FIFO order.
    last_on: BTreeMap<(u32, u32), Instant>,
    wake: Vec<Option<Instant>>,
    in_flight: usize,
    /// When a selected route last changed anywhere.
    pub last_change: Instant,
    pub full_check: bool,
    /// Encode and decode every message (exercises the wire format).
    pub wire: bool,
    pub messages: u64,
    pub bytes: u64,
    /// Events handled, and loop checks (walks) done.
    pub events: u64,
    pub walks: u64,
    /// Wake-ups handled.
    pub ticks: u64,
}

fn key(a: u32, b: u32) -> (u32, u32) {
    (a.min(b), a.max(b))
}

impl Net {
    /// `n` nodes with no links; each node's dump timer starts at a random phase.
    pub fn new(n: usize, limits: Limits, seed: u64) -> Self {
        let t0 = Instant::now() + Duration::from_secs(24 * 3600);
        let mut net = Net {
            now: t0,
            limits,
            nodes: Vec::with_capacity(n),
            links: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: StdRng::seed_from_u64(seed),
            loss: 0.0,
            request_loss: 0.0,
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(2),
            last_on: BTreeMap::new(),
            wake: vec![None; n],
            in_flight: 0,
            last_change: t0,
            full_check: false,
            wire: false,
            messages: 0,
            bytes: 0,
            events: 0,
            walks: 0,
            ticks: 0,
        };
        for i in 0..n as u32 {
            net.nodes.push(None);
            net.start(i, 0);
        }
        net
    }

    /// Starts (or restarts) node `i` with a fresh table and `seqno`; connects it to its
    /// neighbours over the links that are up.
    pub fn start(&mut self, i: u32, seqno: u16) {
        let phase = self
            .rng
            .gen_range(Duration::ZERO..self.limits.update_interval);
        let born = self.now - phase;
        self.nodes[i as usize] = Some(Table::new(i, seqno, self.limits, born));
        self.input(i, Input::Tick);
        let up: Vec<u32> = self
            .links
            .iter()
            .filter(|(k, l)| l.up && (k.0 == i || k.1 == i))
            .map(|(k, _)| if k.0 == i { k.1 } else { k.0 })
            .collect();
        for j in up {
            if self.nodes[j as usize].is_some() {
                self.links.get_mut(&key(i, j)).expect("link").epoch += 1;
                self.input(i, Input::NeighborUp(j, 1));
                self.input(j, Input::NeighborUp(i, 1));
            }
        }
    }

    pub fn crash(&mut self, i: u32) {
        self.nodes[i as usize] = None;
        self.wake[i as usize] = None;
        for j in self.neighbours(i) {
            self.input(j, Input::NeighborDown(i));
        }
    }

    pub fn link_up(&mut self, a: u32, b: u32) {
        let l = self.links.entry(key(a, b)).or_insert(Link {
            up: false,
            epoch: 0,
        });
        if l.up {
            return;
        }
        l.up = true;
        l.epoch += 1;
        if self.alive(a) && self.alive(b) {
            self.input(a, Input::NeighborUp(b, 1));
            self.input(b, Input::NeighborUp(a, 1));
        }
    }

    pub fn link_down(&mut self, a: u32, b: u32) {
        let Some(l) = self.links.get_mut(&key(a, b)) else {
            return;
        };
        if !l.up {
            return;
        }
        l.up = false;
        if self.alive(a) && self.alive(b) {
            self.input(a, Input::NeighborDown(b));
            self.input(b, Input::NeighborDown(a));
        }
    }

    /// Adverts sent by the live tables.
    pub fn adverts(&self) -> u64 {
        self.nodes
            .iter()
            .flatten()
            .map(|t| t.stats().adverts_sent)
            .sum()
    }

    pub fn alive(&self, i: u32) -> bool {
        self.nodes[i as usize].is_some()
    }

    pub fn table(&self, i: u32) -> &Table<u32> {
        self.nodes[i as usize].as_ref().expect("node is up")
    }

    /// Live neighbours of a live node (links up, both ends up).
    pub fn neighbours(&self, i: u32) -> Vec<u32> {
        self.links
            .iter()
            .filter(|(k, l)| l.up && (k.0 == i || k.1 == i))
            .map(|(k, _)| if k.0 == i { k.1 } else { k.0 })
            .filter(|j| self.alive(*j))
            .collect()
    }

    pub fn up_links(&self) -> Vec<(u32, u32)> {
        self.links
            .iter()
            .filter(|(_, l)| l.up)
            .map(|(k, _)| *k)
            .collect()
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            ev,
        }));
    }

    /// Hands `input` to node `i` and acts on the outputs.
    pub fn input(&mut self, i: u32, input: Input<u32>) {
        let now = self.now;
        let Some(t) = self.nodes[i as usize].as_mut() else {
            return;
        };
        let outputs = t.handle(input, now);
        self.events += 1;
        for o in outputs {
            match o {
                Output::Send(to, msg) => self.send(i, to, msg),
                Output::WakeAt(at) => {
                    assert!(at > now, "node {i} asked to wake in the past");
                    self.wake[i as usize] = Some(at);
                    self.push(at, Ev::Wake { node: i });
                }
                Output::Changed(dests) => {
                    self.last_change = now;
                    for d in dests {
                        self.assert_no_loop_from(i, d);
                    }
                }
            }
        }
        if self.full_check {
            self.assert_loop_free();
        }
    }

    fn send(&mut self, from: u32, to: u32, msg: Message<u32>) {
        let link = *self
            .links
            .get(&key(from, to))
            .expect("a table sent to a peer it has no link to");
        assert!(link.up, "node {from} sent to {to} over a link that is down");
        self.messages += 1;
        let msg = if self.wire {
            let bytes = msg.encode();
            assert_eq!(bytes.len(), msg.encoded_len());
            self.bytes += bytes.len() as u64;
            Message::decode(&bytes).expect("our own message decodes")
        } else {
            self.bytes += msg.encoded_len() as u64;
            msg
        };
        if self.loss > 0.0 && self.rng.gen_bool(self.loss) {
            return;
        }
        if matches!(msg, Message::Request(_))
            && self.request_loss > 0.0
            && self.rng.gen_bool(self.request_loss)
        {
            return;
        }
        let jitter = self.rng.gen_range(Duration::ZERO..=self.jitter * 2);
        let mut at = self.now + self.latency - self.jitter + jitter;
        let last = self.last_on.entry((from, to)).or_insert(at);
        at = at.max(*last);
        *last = at;
        self.in_flight += 1;
        self.push(
            at,
            Ev::Deliver {
                from,
                to,
                epoch: link.epoch,
                msg,
            },
        );
    }

    /// Handles the next event; false when there is none.
    pub fn step(&mut self) -> bool {
        let Some(Reverse(s)) = self.queue.pop() else {
            return false;
        };
        self.now = s.at;
        match s.ev {
            Ev::Deliver {
                from,
                to,
                epoch,
                msg,
            } => {
                self.in_flight -= 1;
                let l = self.links[&key(from, to)];
                if l.up && l.epoch == epoch && self.alive(from) {
                    self.input(to, Input::received(from, msg));
                }
            }
            Ev::Wake { node } => {
                if self.wake[node as usize] == Some(s.at) {
                    self.ticks += 1;
                    self.input(node, Input::Tick);
                }
            }
        }
        true
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.queue.peek().is_some_and(|Reverse(s)| s.at <= end) {
            self.step();
        }
        self.now = end;
    }

    /// Runs until nothing is in flight and no route has changed for `quiet` (requests retried
    /// within that time would show); returns the time of the last route change.
    pub fn settle(&mut self, quiet: Duration) -> Instant {
        let start = self.now;
        loop {
            if self.in_flight == 0 {
                let since = self.last_change.max(start);
                match self.queue.peek() {
                    Some(Reverse(s)) if s.at <= since + quiet => {}
                    _ => break,
                }
            }
            assert!(
                self.now < start + Duration::from_secs(3600),
                "no convergence within an hour"
            );
            self.step();
        }
        self.last_change
    }

    /// Follows next hops from `from` towards `dest`; panics on a loop.
    fn assert_no_loop_from(&mut self, from: u32, dest: u32) {
        self.walks += 1;
        let mut x = from;
        let mut steps = 0;
        while x != dest {
            let Some(t) = self.nodes[x as usize].as_ref() else {
                return;
            };
            let Some((via, _)) = t.next_hop(&dest) else {
                return;
            };
            x = via;
            steps += 1;
            assert!(
                steps <= self.nodes.len(),
                "forwarding loop towards {dest} through {from} at {:?}",
                self.now
            );
        }
    }

    /// Every node and destination: the next-hop graph towards each destination has no cycle.
    pub fn assert_loop_free(&self) {
        let n = self.nodes.len();
        for dest in 0..n as u32 {
            // 0 unknown, 1 on the current path, 2 known to end.
            let mut state = vec![0u8; n];
            for start in 0..n as u32 {
                let mut path = Vec::new();
                let mut x = start;
                loop {
                    match state[x as usize] {
                        2 => break,
                        1 => panic!(
                            "forwarding loop towards {dest} through {x} at {:?}",
                            self.now
                        ),
                        _ => {}
                    }
                    state[x as usize] = 1;
                    path.push(x);
                    let next = if x == dest {
                        None
                    } else {
                        self.nodes[x as usize]
                            .as_ref()
                            .and_then(|t| t.next_hop(&dest))
                    };
                    match next {
                        Some((via, _)) => x = via,
                        None => break,
                    }
                }
                for p in path {
                    state[p as usize] = 2;
                }
            }
        }
    }

    /// Breadth-first hop counts from `src` over live links between live nodes.
    pub fn bfs(&self, src: u32) -> Vec<Option<u16>> {
        let n = self.nodes.len();
        let mut adj = vec![Vec::new(); n];
        for (a, b) in self.up_links() {
            if self.alive(a) && self.alive(b) {
                adj[a as usize].push(b);
                adj[b as usize].push(a);
            }
        }
        let mut dist = vec![None; n];
        if !self.alive(src) {
            return dist;
        }
        dist[src as usize] = Some(0u16);
        let mut q = VecDeque::from([src]);
        while let Some(x) = q.pop_front() {
            let dx = dist[x as usize].expect("queued nodes have a distance");
            for &y in &adj[x as usize] {
                if dist[y as usize].is_none() {
                    dist[y as usize] = Some(dx + 1);
                    q.push_back(y);
                }
            }
        }
        dist
    }

    /// After convergence: every live node has a route to exactly the live nodes it can reach,
    /// with the breadth-first hop count, through a neighbour one hop closer (so following next
    /// hops reaches the destination in that many hops), and a DM sent with `forward` gets there
    /// in that many hops. Returns the number of routes and DMs checked.
    pub fn assert_shortest_paths(&self) -> usize {
        let n = self.nodes.len() as u32;
        let mut checked = 0;
        for dest in 0..n {
            let dist = self.bfs(dest);
            for x in 0..n {
                let Some(t) = self.nodes[x as usize].as_ref() else {
                    continue;
                };
                if x == dest {
                    continue;
                }
                let route = t.next_hop(&dest);
                match dist[x as usize] {
                    None => assert_eq!(route, None, "{x} has a route to unreachable {dest}"),
                    Some(d) => {
                        let (via, hops) =
                            route.unwrap_or_else(|| panic!("{x} has no route to {dest}"));
                        assert_eq!(hops, d, "{x} -> {dest}: hops");
                        assert_eq!(
                            dist[via as usize],
                            Some(d - 1),
                            "{x} -> {dest} via {via} is not one hop closer"
                        );
                        assert!(self.links[&key(x, via)].up, "{x} -> {via} is not a link");
                        checked += 1;
                    }
                }
            }
        }
        // A few DMs end to end through `forward`, with the hop limit counting down.
        let mut dms = 0usize;
        for src in (0..n).step_by((n as usize / 7).max(1)) {
            let dist = self.bfs(src);
            for dest in (0..n).rev().step_by((n as usize / 5).max(1)) {
                if let (Some(d), true) = (dist[dest as usize], self.alive(src)) {
                    assert_eq!(self.dm_hops(src, dest, d + 1), Some(d));
                    dms += 1;
                }
            }
        }
        checked + dms
    }

    /// Hops a DM from `src` takes to `dest` with `hop_limit`, None if it is flooded or expires.
    pub fn dm_hops(&self, src: u32, dest: u32, mut hop_limit: u16) -> Option<u16> {
        let mut x = src;
        let mut hops = 0;
        loop {
            match self.nodes[x as usize].as_ref()?.forward(&dest, hop_limit) {
                Forward::Local => return Some(hops),
                Forward::Next { via, hop_limit: h } => {
                    x = via;
                    hop_limit = h;
                    hops += 1;
                }
                Forward::Flood | Forward::Expired => return None,
            }
        }
    }
}

/// Edges of a line `0 - 1 - ... - n-1`.
pub fn line(n: u32) -> Vec<(u32, u32)> {
    (1..n).map(|i| (i - 1, i)).collect()
}

pub fn ring(n: u32) -> Vec<(u32, u32)> {
    let mut e = line(n);
    e.push((n - 1, 0));
    e
}

/// A `w` by `h` grid, row by row.
pub fn grid(w: u32, h: u32) -> Vec<(u32, u32)> {
    let mut e = Vec::new();
    for r in 0..h {
        for c in 0..w {
            let i = r * w + c;
            if c + 1 < w {
                e.push((i, i + 1));
            }
            if r + 1 < h {
                e.push((i, i + w));
            }
        }
    }
    e
}

/// A connected random graph: a random tree plus `extra` random edges (no duplicates).
pub fn random(n: u32, extra: usize, seed: u64) -> Vec<(u32, u32)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut set = std::collections::BTreeSet::new();
    for i in 1..n {
        set.insert(key(i, rng.gen_range(0..i)));
    }
    let mut tries = 0;
    while set.len() < (n as usize - 1) + extra && tries < 100 * (extra + 1) {
        tries += 1;
        let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
        if a != b {
            set.insert(key(a, b));
        }
    }
    set.into_iter().collect()
}

/// A network of `n` nodes with `edges` up.
pub fn build(n: usize, edges: &[(u32, u32)], limits: Limits, seed: u64) -> Net {
    let mut net = Net::new(n, limits, seed);
    for &(a, b) in edges {
        net.link_up(a, b);
    }
    net
}
