//! Whole-network tests: the state machine on every node of a simulated mesh ([`crate::sim`]).
//!
//! Topology: every node links to 3 others at random (mean degree ~6), each link with a one-way
//! latency drawn from 1..=20 ms plus up to 2 ms of jitter per message. Messages are published
//! every 20 ms by one node or by random nodes, and the run then settles for 5 s of virtual time.
//! Validation accepts everything (the rejection rules are tested in `tests.rs`).
//!
//! Figures (release, seed 1; debug builds take ~4x the wall time): at N = 1 000, one sender: RMR
//! 0.03, last-delivery hop 11 (max 12), ~70 ms of wall time per simulated message (~8 500
//! events); with 1% loss and 20% crashes 0.30 and 17 (max 27). Many senders (a message every
//! 20 ms from random nodes): RMR 0.54, last hop 25 (max 37); with loss and crashes 0.51 and 22.
//! Many senders at one message per 100 ms: RMR 0.00, last hop 16. The shared tree settles only
//! while messages do not overlap: pushes from different senders at once meet at different
//! nodes, which prune different links of the same cycle, the tree splits, grafts join it again
//! (often by two links, a new cycle), and so on: ~290 grafts per message at 50 messages/s
//! (measured with `by_hand`; a longer graft timeout does not change it). Per-sender trees (or
//! prune hysteresis) are the next step if that rate matters.
//!
//! Measured per message: **RMR** (relative message redundancy: `Gossip` copies received by all
//! nodes / (nodes that delivered it - 1) - 1; 0 is a perfect tree, a flood of degree 6 is ~4.5)
//! and the **last-delivery hop** (the largest hop count at delivery). Figures print with
//! `cargo test -p meshchat-core broadcast::simulation -- --nocapture`; the 10 000-node run is
//! ignored (`-- --ignored`, best in release: `cargo test --release`).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;

use super::*;
use crate::sim::{Ctx, LinkConfig, Node, NodeId, Sim};

/// A node: the state machine and what it delivered.
struct Peer {
    bc: Broadcast<NodeId>,
    /// Hop count of each message delivered (0 for its own).
    delivered: HashMap<MessageId, u16>,
    /// `Gossip` copies received per message.
    copies: HashMap<MessageId, u32>,
    bytes_sent: u64,
}

impl Peer {
    fn new(config: Config) -> Self {
        Self {
            bc: Broadcast::new(config),
            delivered: HashMap::new(),
            copies: HashMap::new(),
            bytes_sent: 0,
        }
    }

    /// Feeds `input` and the validations it asks for; carries out the outputs.
    fn apply(&mut self, input: In<NodeId>, ctx: &mut Ctx<'_, Message>) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            for out in self.bc.handle(input, ctx.now) {
                match out {
                    Out::Send { to, message } => {
                        self.bytes_sent += message.encoded_len() as u64;
                        ctx.send(to, message);
                    }
                    Out::Validate { id, .. } => inputs.push_back(In::Validated { id, ok: true }),
                    Out::Deliver { id, hops, .. } => {
                        assert!(self.delivered.insert(id, hops).is_none(), "delivered twice");
                    }
                    Out::WakeAt(t) => ctx.wake_at(t),
                    Out::Misbehaved { peer, offence } => {
                        panic!("an honest neighbour {peer:?} was found misbehaving: {offence:?}")
                    }
                }
            }
        }
    }
}

impl Node for Peer {
    type Message = Message;
    fn on_link_up(&mut self, peer: NodeId, ctx: &mut Ctx<'_, Message>) {
        self.apply(In::NeighborUp(peer), ctx);
    }
    fn on_link_down(&mut self, peer: NodeId, ctx: &mut Ctx<'_, Message>) {
        self.apply(In::NeighborDown(peer), ctx);
    }
    fn on_message(&mut self, from: NodeId, message: Message, ctx: &mut Ctx<'_, Message>) {
        if let Message::Gossip { id, .. } = &message {
            *self.copies.entry(*id).or_default() += 1;
        }
        self.apply(In::Message { from, message }, ctx);
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Message>) {
        self.apply(In::Tick, ctx);
    }
}

#[derive(Debug, Clone, Copy)]
enum Senders {
    /// Node 0 sends every message (and never crashes).
    One,
    /// Each message comes from a random live node.
    Many,
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    nodes: usize,
    messages: usize,
    senders: Senders,
    loss: f64,
    /// Fraction of nodes that crash, just after message `messages / 2` is published.
    crash: f64,
    /// Time between two messages.
    interval: Duration,
    /// Messages left out of the RMR figures (the first ones flood while the tree forms).
    warmup: usize,
    seed: u64,
    config: Config,
}

impl Scenario {
    fn new(nodes: usize, messages: usize, senders: Senders) -> Self {
        Self {
            nodes,
            messages,
            senders,
            loss: 0.0,
            crash: 0.0,
            interval: ms(20),
            warmup: 10,
            seed: 1,
            config: Config::default(),
        }
    }
}

#[derive(Debug)]
struct Outcome {
    /// Messages checked (their sender still alive at the end).
    checked: usize,
    /// (node, message) pairs where a live node connected to the live sender lacks the message.
    missed: usize,
    /// Per message after the warm-up: RMR over the nodes alive at the end.
    rmr: Vec<f64>,
    /// Per message after the warm-up: the largest hop count at delivery.
    last_hop: Vec<u16>,
    /// Wall-clock time of the whole run.
    wall: Duration,
    /// Protocol bytes sent per node and message (frames' contents, every kind).
    bytes_per_node_msg: f64,
    events: u64,
    stats: Stats,
}

impl Outcome {
    fn mean_rmr(&self) -> f64 {
        self.rmr.iter().sum::<f64>() / self.rmr.len() as f64
    }
    fn max_rmr(&self) -> f64 {
        self.rmr.iter().copied().fold(0.0, f64::max)
    }
    fn mean_last_hop(&self) -> f64 {
        self.last_hop.iter().map(|h| *h as f64).sum::<f64>() / self.last_hop.len() as f64
    }
    fn max_last_hop(&self) -> u16 {
        self.last_hop.iter().copied().max().unwrap_or(0)
    }

    fn report(&self, name: &str, s: &Scenario) {
        println!(
            "{name}: N={} msgs={} loss={} crash={}: missed {} of {} checked; RMR mean {:.3} max {:.3}; \
             last-delivery hop mean {:.1} max {}; {:.0} B/node/msg; {} events; wall {:.2?} \
             ({:.1} ms per message); grafts {} prunes {} optimisations {} fallback {} given up {}",
            s.nodes,
            s.messages,
            s.loss,
            s.crash,
            self.missed,
            self.checked,
            self.mean_rmr(),
            self.max_rmr(),
            self.mean_last_hop(),
            self.max_last_hop(),
            self.bytes_per_node_msg,
            self.events,
            self.wall,
            self.wall.as_secs_f64() * 1000.0 / s.messages as f64,
            self.stats.grafts_sent,
            self.stats.prunes_sent,
            self.stats.optimisations,
            self.stats.fallback_grafts,
            self.stats.given_up,
        );
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn run(s: Scenario) -> Outcome {
    let started = Instant::now();
    let mut sim: Sim<Peer> = Sim::new(s.seed);
    sim.set_detect_delay(ms(200));
    for _ in 0..s.nodes {
        sim.add_node(Peer::new(s.config));
    }
    let loss = s.loss;
    sim.connect_random(3, |rng| LinkConfig {
        latency: ms(rng.gen_range(1..=20)),
        jitter: ms(2),
        loss,
    });
    assert!(
        sim.component(0).iter().all(|r| *r),
        "the graph is connected"
    );
    sim.run_for(ms(100));

    let mut published: Vec<(MessageId, NodeId)> = Vec::new();
    for i in 0..s.messages {
        let sender = match s.senders {
            Senders::One => 0,
            Senders::Many => loop {
                let n = sim.rng().gen_range(0..s.nodes as NodeId);
                if sim.is_alive(n) {
                    break n;
                }
            },
        };
        let mut payload = format!("message {i} from {sender} ").into_bytes();
        payload.resize(150, b'.');
        let payload = Payload::from(payload);
        let id = MessageId::of(&payload);
        sim.act(sender, |p, ctx| {
            p.delivered.insert(id, 0);
            p.apply(In::Publish { id, payload }, ctx);
        });
        published.push((id, sender));
        if i == s.messages / 2 && s.crash > 0.0 {
            let mut candidates: Vec<NodeId> = (1..s.nodes as NodeId).collect();
            candidates.shuffle(sim.rng());
            for &n in &candidates[..(s.crash * s.nodes as f64) as usize] {
                sim.crash(n);
            }
        }
        sim.run_for(s.interval);
    }
    sim.run_for(Duration::from_secs(5));

    let live: Vec<&Peer> = (0..s.nodes as NodeId).filter_map(|n| sim.node(n)).collect();
    let mut out = Outcome {
        checked: 0,
        missed: 0,
        rmr: Vec::new(),
        last_hop: Vec::new(),
        wall: Duration::ZERO,
        bytes_per_node_msg: live.iter().map(|p| p.bytes_sent).sum::<u64>() as f64
            / (s.nodes * s.messages) as f64,
        events: sim.stats().events,
        stats: Stats::default(),
    };
    for (i, (id, sender)) in published.iter().enumerate() {
        if sim.is_alive(*sender) {
            out.checked += 1;
            let reach = sim.component(*sender);
            for n in 0..s.nodes as NodeId {
                if reach[n as usize] && !sim.node(n).unwrap().delivered.contains_key(id) {
                    out.missed += 1;
                }
            }
        }
        if i < s.warmup {
            continue;
        }
        let got = live.iter().filter(|p| p.delivered.contains_key(id)).count();
        let copies: u32 = live.iter().filter_map(|p| p.copies.get(id)).sum();
        if got > 1 {
            out.rmr.push(copies as f64 / (got - 1) as f64 - 1.0);
        }
        out.last_hop.push(
            live.iter()
                .filter_map(|p| p.delivered.get(id))
                .copied()
                .max()
                .unwrap_or(0),
        );
    }
    for p in &live {
        let st = p.bc.stats();
        out.stats.grafts_sent += st.grafts_sent;
        out.stats.prunes_sent += st.prunes_sent;
        out.stats.optimisations += st.optimisations;
        out.stats.given_up += st.given_up;
        out.stats.fallback_grafts += st.fallback_grafts;
    }
    out.wall = started.elapsed();
    out
}

#[test]
fn single_sender_100_nodes_builds_a_tree() {
    let s = Scenario::new(100, 100, Senders::One);
    let o = run(s);
    o.report("single_sender_100", &s);
    assert_eq!(o.missed, 0);
    assert!(o.mean_rmr() <= 0.2, "steady-state RMR {}", o.mean_rmr());
}

#[test]
fn single_sender_1000_nodes_builds_a_tree() {
    let s = Scenario::new(1000, 60, Senders::One);
    let o = run(s);
    o.report("single_sender_1000", &s);
    assert_eq!(o.missed, 0);
    assert!(o.mean_rmr() <= 0.2, "steady-state RMR {}", o.mean_rmr());
    assert!(
        o.max_last_hop() <= 16,
        "last-delivery hop {}",
        o.max_last_hop()
    );
}

/// One shared tree for every sender: pushes from many senders at once prune different links of
/// the same cycle, so the tree keeps breaking and being grafted back (see the module docs).
#[test]
fn many_senders_1000_nodes_share_the_tree() {
    let s = Scenario::new(1000, 60, Senders::Many);
    let o = run(s);
    o.report("many_senders_1000", &s);
    assert_eq!(o.missed, 0);
    assert!(o.mean_rmr() <= 0.75, "steady-state RMR {}", o.mean_rmr());
    assert!(
        o.max_last_hop() <= 50,
        "last-delivery hop {}",
        o.max_last_hop()
    );
}

fn lossy(nodes: usize, messages: usize, senders: Senders) -> Scenario {
    Scenario {
        loss: 0.01,
        crash: 0.2,
        ..Scenario::new(nodes, messages, senders)
    }
}

#[test]
fn loss_and_crashes_100_nodes_miss_nothing() {
    for senders in [Senders::One, Senders::Many] {
        let s = lossy(100, 100, senders);
        let o = run(s);
        o.report(&format!("loss_and_crashes_100 {senders:?}"), &s);
        assert_eq!(o.missed, 0);
        assert!(o.mean_rmr() <= 0.75, "RMR {}", o.mean_rmr());
    }
}

#[test]
fn loss_and_crashes_1000_nodes_single_sender_miss_nothing() {
    let s = lossy(1000, 60, Senders::One);
    let o = run(s);
    o.report("loss_and_crashes_1000 One", &s);
    assert_eq!(o.missed, 0);
    assert!(o.mean_rmr() <= 0.6, "RMR {}", o.mean_rmr());
}

#[test]
fn loss_and_crashes_1000_nodes_many_senders_miss_nothing() {
    let s = lossy(1000, 60, Senders::Many);
    let o = run(s);
    o.report("loss_and_crashes_1000 Many", &s);
    assert_eq!(o.missed, 0);
    assert!(o.mean_rmr() <= 0.75, "RMR {}", o.mean_rmr());
}

/// 10 000 nodes. Measured (release, seed 1): one sender, no loss: 0 missed, RMR 0.047, last hop
/// 13.6 mean / 15 max, 1.1 s per message. Many senders with 1% loss and 20% crashes: 9 (node,
/// message) pairs missed of ~7.3 million, RMR 0.52, last hop 36 / 47: a node whose only
/// remaining link loses the push and the announcement of the same message never hears of it
/// (Plumtree assumes links that lose nothing; history sync is the backstop). So only the lossless
/// run asserts zero misses.
#[test]
#[ignore = "10 000 nodes: run by hand, in release (cargo test --release ... -- --ignored)"]
fn ten_thousand_nodes() {
    for (senders, loss, crash) in [(Senders::One, 0.0, 0.0), (Senders::Many, 0.01, 0.2)] {
        let s = Scenario {
            loss,
            crash,
            ..Scenario::new(10_000, 100, senders)
        };
        let o = run(s);
        o.report(&format!("ten_thousand {senders:?}"), &s);
        if loss == 0.0 {
            assert_eq!(o.missed, 0);
        }
    }
}

/// One scenario with its knobs from the environment, for exploring by hand: N, M (messages),
/// MANY (1: random senders), IV (ms between messages), LOSS and CRASH (percent), WARM, GT (graft
/// timeout, ms), TH (optimisation threshold), ATT (graft attempts). For example
/// `N=1000 IV=100 cargo test --release -p meshchat-core by_hand -- --ignored --nocapture`.
#[test]
#[ignore = "run by hand"]
fn by_hand() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let senders = if env("MANY", 1) == 1 {
        Senders::Many
    } else {
        Senders::One
    };
    let mut s = Scenario::new(env("N", 1000) as usize, env("M", 60) as usize, senders);
    s.interval = ms(env("IV", 20));
    s.warmup = env("WARM", 10) as usize;
    s.loss = env("LOSS", 0) as f64 / 100.0;
    s.crash = env("CRASH", 0) as f64 / 100.0;
    s.config.graft_timeout = ms(env("GT", 150));
    s.config.optimize_threshold = env("TH", 7) as u16;
    s.config.max_graft_attempts = env("ATT", 8) as u32;
    let o = run(s);
    o.report("by_hand", &s);
}
