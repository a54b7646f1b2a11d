//! Whole-network tests: the election on every node of a simulated mesh ([`crate::sim`]: links
//! with latency, jitter and loss, cuts, crashes; a node talks to its neighbours only).
//!
//! The transport is built here the way the node builds it, from neighbour links up:
//!
//! - each node runs the real routing table ([`crate::routing::Table`], default limits, every
//!   link cost 1). [`Output::Send`] is routed hop by hop along its next hops (hop limit 64;
//!   dropped where there is no route, as `crate::routed` does), and the table's `Changed`
//!   output becomes [`Input::Reachability`], as in the node;
//! - [`Output::Flood`] is a plain flood with duplicate suppression: every node relays a flood it
//!   has not seen to all its other neighbours (the broadcast trees do better; what matters here
//!   is that it reaches the component, best effort);
//! - messages travel as their encoded bytes (`Msg::encode`, decoded at the recipient), the
//!   sender being the node that originated them (the envelope's author).
//!
//! Topologies: lines (the best candidate at one end, several hops from the others), rings,
//! random trees with extra links, and grids; links of 2-20 ms plus up to 5 ms of jitter.
//!
//! The invariants and the figures are in the module docs of [`super`]; the figures print with
//! `cargo test -p meshchat-core election -- --nocapture` (N = 1 000 with `--ignored`, best in
//! release). `ELECTION_TRACE=<seed>` prints every input and output of that seed's runs.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::rc::Rc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::routing;
use crate::sim::{Ctx, LinkConfig, Node, NodeId, Sim};

const HOP_LIMIT: u16 = 64;
/// How long after a crash its neighbours notice (a closed connection).
const DETECT_DELAY: Duration = Duration::from_millis(100);
/// A silent death (no connection closed): noticed when pings time out. Until then routing
/// keeps the routes through it, and only the missing heartbeats tell.
const SILENT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
enum Frame {
    Routing(routing::Message<NodeId>),
    /// A flood: `(origin, seq)` names it for duplicate suppression.
    Flood {
        origin: NodeId,
        seq: u64,
        body: Vec<u8>,
    },
    Routed {
        origin: NodeId,
        to: NodeId,
        hops: u16,
        body: Vec<u8>,
    },
}

/// Message counts by wire tag (1 heartbeat .. 6 roster; index 0 unused).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    /// `Output::Send` and `Output::Flood` of each kind: a flood counts once.
    messages: [u64; 7],
    /// Frames handed to links, per kind (a flood costs about twice the links of its
    /// component, a routed message its hop count).
    frames: [u64; 7],
    routing_frames: u64,
    /// Routed messages dropped for want of a route (or hops).
    no_route: u64,
}

impl Counts {
    /// Election, Alive, Coordinator.
    fn election(&self) -> (u64, u64) {
        (
            self.messages[2] + self.messages[3] + self.messages[4],
            self.frames[2] + self.frames[3] + self.frames[4],
        )
    }
    /// Register, Roster.
    fn roster(&self) -> (u64, u64) {
        (
            self.messages[5] + self.messages[6],
            self.frames[5] + self.frames[6],
        )
    }
    fn minus(&self, o: &Counts) -> Counts {
        let mut c = *self;
        for i in 0..7 {
            c.messages[i] -= o.messages[i];
            c.frames[i] -= o.frames[i];
        }
        c.routing_frames -= o.routing_frames;
        c.no_route -= o.no_route;
        c
    }
}

/// What outlives a node's crash, and the counters of the run.
#[derive(Debug, Default)]
struct World {
    /// The highest epoch each node has reported (what it persists).
    persisted: Vec<u64>,
    /// The highest epoch each node has followed, across its restarts.
    followed: Vec<u64>,
    /// Each node's routing seqno (the node persists it too).
    seqnos: Vec<u16>,
    next_seq: u64,
    counts: Counts,
    /// Print every input and output (`ELECTION_TRACE=<seed>`).
    trace: bool,
    start: Option<Instant>,
}

struct Peer {
    id: NodeId,
    e: Election<NodeId>,
    table: routing::Table<NodeId>,
    links: BTreeSet<NodeId>,
    seen: HashSet<(NodeId, u64)>,
    wake_e: Option<Instant>,
    wake_r: Option<Instant>,
    world: Rc<RefCell<World>>,
    /// The ids of the last roster shown (what `/who` lists).
    shown: BTreeSet<NodeId>,
}

impl Peer {
    fn new(
        id: NodeId,
        priority: Option<u32>,
        limits: Limits,
        world: Rc<RefCell<World>>,
        now: Instant,
    ) -> Self {
        let (epoch, seqno) = {
            let w = world.borrow();
            (w.persisted[id as usize], w.seqnos[id as usize])
        };
        Self {
            id,
            e: Election::new(id, priority, epoch, limits, now),
            table: routing::Table::new(id, seqno, routing::Limits::default(), now),
            links: BTreeSet::new(),
            seen: HashSet::new(),
            wake_e: None,
            wake_r: None,
            world,
            shown: BTreeSet::new(),
        }
    }

    fn start(&mut self, ctx: &mut Ctx<'_, Frame>) {
        self.election(
            Input::Me {
                nick: format!("n{}", self.id),
                addrs: vec![format!("/ip4/10.0.0.{}/tcp/7447", self.id % 256)],
            },
            ctx,
        );
        self.routing(routing::Input::Tick, ctx);
    }

    fn election(&mut self, input: Input<NodeId>, ctx: &mut Ctx<'_, Frame>) {
        let trace = self.world.borrow().trace.then(|| format!("{input:?}"));
        let out = self.e.handle(input, ctx.now);
        if let Some(input) = trace {
            let t = ctx.now - self.world.borrow().start.expect("set");
            println!("{t:?} {}: {input} -> {out:?}", self.id);
        }
        {
            let mut w = self.world.borrow_mut();
            let i = self.id as usize;
            let max = self.e.max_epoch();
            assert!(
                max >= w.persisted[i],
                "node {}: max epoch went down",
                self.id
            );
            w.persisted[i] = max;
            if let Some((_, epoch)) = self.e.tracker() {
                assert!(
                    epoch >= w.followed[i],
                    "node {}: followed epoch {epoch} after {}",
                    self.id,
                    w.followed[i]
                );
                w.followed[i] = epoch;
            }
        }
        for o in out {
            match o {
                Output::Send { to, msg } => {
                    let body = msg.encode();
                    self.world.borrow_mut().counts.messages[usize::from(body[0])] += 1;
                    self.forward(self.id, to, HOP_LIMIT, body, ctx);
                }
                Output::Flood(msg) => {
                    let body = msg.encode();
                    let seq = {
                        let mut w = self.world.borrow_mut();
                        w.counts.messages[usize::from(body[0])] += 1;
                        w.next_seq += 1;
                        w.next_seq
                    };
                    self.seen.insert((self.id, seq));
                    self.relay(self.id, seq, body, None, ctx);
                }
                Output::WakeAt(t) => {
                    self.wake_e = Some(t);
                    ctx.wake_at(t);
                }
                Output::Roster { entries, .. } => {
                    self.shown = entries.iter().map(|e| e.id).collect();
                }
                Output::TrackerChanged { .. } | Output::Serving(_) => {}
            }
        }
    }

    fn routing(&mut self, input: routing::Input<NodeId>, ctx: &mut Ctx<'_, Frame>) {
        let out = self.table.handle(input, ctx.now);
        self.world.borrow_mut().seqnos[self.id as usize] = self.table.seqno();
        for o in out {
            match o {
                routing::Output::Send(to, m) => {
                    self.world.borrow_mut().counts.routing_frames += 1;
                    ctx.send(to, Frame::Routing(m));
                }
                routing::Output::WakeAt(t) => {
                    self.wake_r = Some(t);
                    ctx.wake_at(t);
                }
                routing::Output::Changed(dests) => {
                    let changes = dests
                        .into_iter()
                        .map(|d| (d, self.table.next_hop(&d).is_some()))
                        .collect();
                    self.election(Input::Reachability(changes), ctx);
                }
            }
        }
    }

    fn relay(
        &mut self,
        origin: NodeId,
        seq: u64,
        body: Vec<u8>,
        from: Option<NodeId>,
        ctx: &mut Ctx<'_, Frame>,
    ) {
        let to: Vec<NodeId> = self
            .links
            .iter()
            .copied()
            .filter(|&l| Some(l) != from)
            .collect();
        self.world.borrow_mut().counts.frames[usize::from(body[0])] += to.len() as u64;
        for l in to {
            ctx.send(
                l,
                Frame::Flood {
                    origin,
                    seq,
                    body: body.clone(),
                },
            );
        }
    }

    fn forward(
        &mut self,
        origin: NodeId,
        to: NodeId,
        hops: u16,
        body: Vec<u8>,
        ctx: &mut Ctx<'_, Frame>,
    ) {
        match self.table.forward(&to, hops) {
            routing::Forward::Local => self.deliver(origin, &body, ctx),
            routing::Forward::Next { via, hop_limit } => {
                self.world.borrow_mut().counts.frames[usize::from(body[0])] += 1;
                ctx.send(
                    via,
                    Frame::Routed {
                        origin,
                        to,
                        hops: hop_limit,
                        body,
                    },
                );
            }
            routing::Forward::Flood | routing::Forward::Expired => {
                self.world.borrow_mut().counts.no_route += 1;
            }
        }
    }

    fn deliver(&mut self, origin: NodeId, body: &[u8], ctx: &mut Ctx<'_, Frame>) {
        let msg = Msg::decode(body).expect("what was encoded decodes");
        self.election(Input::Received { from: origin, msg }, ctx);
    }

    /// The one wake-up the simulator keeps must be the earliest of ours.
    fn rearm(&self, ctx: &mut Ctx<'_, Frame>) {
        if let Some(t) = [self.wake_e, self.wake_r].into_iter().flatten().min() {
            ctx.wake_at(t);
        }
    }
}

impl Node for Peer {
    type Message = Frame;

    fn on_link_up(&mut self, peer: NodeId, ctx: &mut Ctx<'_, Frame>) {
        self.links.insert(peer);
        self.routing(routing::Input::NeighborUp(peer, 1), ctx);
        self.rearm(ctx);
    }

    fn on_link_down(&mut self, peer: NodeId, ctx: &mut Ctx<'_, Frame>) {
        if self.links.remove(&peer) {
            self.routing(routing::Input::NeighborDown(peer), ctx);
        }
        self.rearm(ctx);
    }

    fn on_message(&mut self, from: NodeId, frame: Frame, ctx: &mut Ctx<'_, Frame>) {
        match frame {
            Frame::Routing(m) => self.routing(routing::Input::received(from, m), ctx),
            Frame::Flood { origin, seq, body } => {
                if self.seen.insert((origin, seq)) {
                    self.relay(origin, seq, body.clone(), Some(from), ctx);
                    if origin != self.id {
                        self.deliver(origin, &body, ctx);
                    }
                }
            }
            Frame::Routed {
                origin,
                to,
                hops,
                body,
            } => self.forward(origin, to, hops, body, ctx),
        }
        self.rearm(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Frame>) {
        if self.wake_r.is_some_and(|t| t <= ctx.now) {
            self.wake_r = None;
            self.routing(routing::Input::Tick, ctx);
        }
        if self.wake_e.is_some_and(|t| t <= ctx.now) {
            self.wake_e = None;
            self.election(Input::Tick, ctx);
        }
        self.rearm(ctx);
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topology {
    Line,
    Ring,
    /// A random tree plus about n/3 random links.
    Mesh,
    Grid,
}

fn edges(topology: Topology, n: usize, rng: &mut StdRng) -> Vec<(NodeId, NodeId)> {
    let n32 = n as NodeId;
    let mut e: BTreeSet<(NodeId, NodeId)> = BTreeSet::new();
    match topology {
        Topology::Line => e.extend((1..n32).map(|i| (i - 1, i))),
        Topology::Ring => {
            e.extend((1..n32).map(|i| (i - 1, i)));
            if n > 2 {
                e.insert((0, n32 - 1));
            }
        }
        Topology::Mesh => {
            for i in 1..n32 {
                e.insert((rng.gen_range(0..i), i));
            }
            for _ in 0..n / 3 {
                let (a, b) = (rng.gen_range(0..n32), rng.gen_range(0..n32));
                if a != b {
                    e.insert((a.min(b), a.max(b)));
                }
            }
        }
        Topology::Grid => {
            let w = (n as f64).sqrt().ceil() as NodeId;
            for i in 0..n32 {
                if i % w + 1 < w && i + 1 < n32 {
                    e.insert((i, i + 1));
                }
                if i + w < n32 {
                    e.insert((i, i + w));
                }
            }
        }
    }
    e.into_iter().collect()
}

/// A simulated network and what it was built from.
struct Net {
    sim: Sim<Peer>,
    world: Rc<RefCell<World>>,
    priorities: Vec<Option<u32>>,
    limits: Limits,
    /// The topology's links, with their configs (without loss).
    links: Vec<(NodeId, NodeId, LinkConfig)>,
    loss: f64,
    crashed_at: std::collections::HashMap<NodeId, Instant>,
    detect: Duration,
}

impl Net {
    fn new(seed: u64, priorities: Vec<Option<u32>>, topology: &[(NodeId, NodeId)]) -> Self {
        Self::with_detect_delay(seed, priorities, topology, DETECT_DELAY)
    }

    /// With neighbours noticing a crash after `detect` (a long one models a silent death:
    /// routing keeps the dead node's routes and only the missing heartbeats tell).
    fn with_detect_delay(
        seed: u64,
        priorities: Vec<Option<u32>>,
        topology: &[(NodeId, NodeId)],
        detect: Duration,
    ) -> Self {
        let n = priorities.len();
        let mut sim = Sim::new(seed);
        sim.set_detect_delay(detect);
        let world = Rc::new(RefCell::new(World {
            persisted: vec![0; n],
            followed: vec![0; n],
            seqnos: vec![0; n],
            trace: std::env::var("ELECTION_TRACE").is_ok_and(|s| s == seed.to_string()),
            start: Some(sim.now()),
            ..World::default()
        }));
        let limits = Limits::default();
        let now = sim.now();
        for i in 0..n as NodeId {
            let p = Peer::new(i, priorities[i as usize], limits, world.clone(), now);
            sim.add_node(p);
        }
        let links: Vec<_> = topology
            .iter()
            .map(|&(a, b)| {
                let rng = sim.rng();
                let c = LinkConfig {
                    latency: ms(rng.gen_range(2..=20)),
                    jitter: ms(rng.gen_range(0..=5)),
                    loss: 0.0,
                };
                (a, b, c)
            })
            .collect();
        let mut net = Self {
            sim,
            world,
            priorities,
            limits,
            links,
            loss: 0.0,
            crashed_at: Default::default(),
            detect,
        };
        for i in 0..n as NodeId {
            net.sim.act(i, |p, ctx| p.start(ctx));
        }
        net.heal();
        net
    }

    fn n(&self) -> usize {
        self.priorities.len()
    }

    fn counts(&self) -> Counts {
        self.world.borrow().counts
    }

    fn run_for(&mut self, d: Duration) {
        self.sim.run_for(d);
    }

    fn config(&self, c: LinkConfig) -> LinkConfig {
        LinkConfig {
            loss: self.loss,
            ..c
        }
    }

    /// Every topology link between live nodes up (with the current loss).
    fn heal(&mut self) {
        self.note(format_args!("heal"));
        for (a, b, c) in self.links.clone() {
            if self.sim.is_alive(a) && self.sim.is_alive(b) {
                let c = self.config(c);
                self.sim.connect(a, b, c);
            }
        }
    }

    fn set_loss(&mut self, loss: f64) {
        self.loss = loss;
        for (a, b, c) in self.links.clone() {
            if self.sim.has_link(a, b) {
                let c = self.config(c);
                self.sim.connect(a, b, c);
            }
        }
    }

    /// Cuts every link between `side` and the rest.
    fn partition(&mut self, side: &[bool]) {
        self.note(format_args!("partition {side:?}"));
        for (a, b, _) in self.links.clone() {
            if side[a as usize] != side[b as usize] {
                self.sim.disconnect(a, b);
            }
        }
    }

    fn note(&self, what: std::fmt::Arguments<'_>) {
        if self.world.borrow().trace {
            println!("{:?} == {what}", self.sim.elapsed());
        }
    }

    fn crash(&mut self, i: NodeId) {
        self.note(format_args!("crash {i}"));
        self.sim.crash(i);
        self.crashed_at.insert(i, self.sim.now());
    }

    /// Brings `i` back (with the epoch it persisted) and links it to its live neighbours.
    fn restart(&mut self, i: NodeId) {
        if self.sim.is_alive(i) {
            return;
        }
        // The simulator tells the neighbours of a crash after the detection delay even if the
        // node is back and linked again by then; a node does not restart that fast anyway.
        if let Some(&at) = self.crashed_at.get(&i) {
            let ready = at + self.detect * 2;
            if self.sim.now() < ready {
                self.sim.run_until(ready);
            }
        }
        self.note(format_args!("restart {i}"));
        let now = self.sim.now();
        let p = Peer::new(
            i,
            self.priorities[i as usize],
            self.limits,
            self.world.clone(),
            now,
        );
        self.sim.restart(i, p);
        self.sim.act(i, |p, ctx| p.start(ctx));
        for (a, b, c) in self.links.clone() {
            if (a == i || b == i) && self.sim.is_alive(a) && self.sim.is_alive(b) {
                let c = self.config(c);
                self.sim.connect(a, b, c);
            }
        }
    }

    fn node(&self, i: NodeId) -> Option<&Election<NodeId>> {
        self.sim.node(i).map(|p| &p.e)
    }

    fn peer(&self, i: NodeId) -> &Peer {
        self.sim.node(i).expect("a live node")
    }

    fn rank(&self, i: NodeId) -> Option<Rank<NodeId>> {
        self.priorities[i as usize].map(|priority| Rank { priority, id: i })
    }

    /// The live nodes, by connected component.
    fn components(&self) -> Vec<Vec<NodeId>> {
        let mut done = vec![false; self.n()];
        let mut out = Vec::new();
        for i in 0..self.n() as NodeId {
            if done[i as usize] || !self.sim.is_alive(i) {
                continue;
            }
            let c = self.sim.component(i);
            let members: Vec<NodeId> = (0..self.n() as NodeId).filter(|&j| c[j as usize]).collect();
            for &m in &members {
                done[m as usize] = true;
            }
            out.push(members);
        }
        out
    }

    /// Whether every component has settled: its best eligible node serves, alone, everyone
    /// follows it at its epoch and is in its roster (nobody follows anyone where no node is
    /// eligible). `Err` says what is not so.
    fn settled(&self) -> Result<(), String> {
        self.agreed(true)
    }

    /// [`Net::settled`], the rosters checked or not.
    fn agreed(&self, rosters: bool) -> Result<(), String> {
        for members in self.components() {
            let serving: Vec<NodeId> = members
                .iter()
                .copied()
                .filter(|&i| self.node(i).unwrap().is_serving())
                .collect();
            let Some(best) = members.iter().filter_map(|&i| self.rank(i)).max() else {
                if !serving.is_empty() {
                    return Err(format!(
                        "{members:?}: trackers {serving:?} among ineligible nodes"
                    ));
                }
                for &i in &members {
                    if let Some(t) = self.node(i).unwrap().tracker() {
                        return Err(format!("{members:?}: {i} follows {t:?}, nobody eligible"));
                    }
                }
                continue;
            };
            if serving != [best.id] {
                return Err(format!(
                    "{members:?}: serving {serving:?}, best {}",
                    best.id
                ));
            }
            let leader = self.node(best.id).unwrap();
            let (_, epoch) = leader.tracker().expect("the tracker follows itself");
            let roster: BTreeSet<NodeId> = leader.served_roster().iter().map(|e| e.id).collect();
            for &i in &members {
                let t = self.node(i).unwrap().tracker();
                if t != Some((best.id, epoch)) {
                    return Err(format!(
                        "{members:?}: {i} follows {t:?}, not {:?}",
                        (best.id, epoch)
                    ));
                }
                if rosters && !roster.contains(&i) {
                    return Err(format!("{members:?}: {i} not in the roster {roster:?}"));
                }
                // What every node shows (`/who`) lists the whole component: a follower's copy
                // is brought up to date by the roster version in the heartbeats.
                let shown = &self.peer(i).shown;
                if rosters && !members.iter().all(|m| shown.contains(m)) {
                    // The tracker answers along its route to the node: without one (the
                    // routing table starving after a restart, see `routing`), the answer
                    // cannot arrive. Counted apart: a routing fault, not the election's.
                    let routed = i == best.id || self.peer(best.id).table.next_hop(&i).is_some();
                    let what = if routed { "" } else { UNROUTED };
                    return Err(format!("{members:?}: {i} shows the roster {shown:?}{what}"));
                }
            }
        }
        Ok(())
    }

    /// The tracker of `i`'s component, as `i` sees it.
    fn tracker_of(&self, i: NodeId) -> Option<NodeId> {
        self.node(i).and_then(|e| e.tracker()).map(|t| t.0)
    }
}

/// Marks a failure caused by the tracker having no route to a node.
const UNROUTED: &str = " (the tracker has no route to it)";

mod runs;
