//! Unit tests of the rules, and a simulator: seeded runs with delays, losses, partitions,
//! heals, crashes and restarts, checking the invariants once the network is quiet.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

type Id = u32;

fn node(me: Id, priority: Option<u32>, t0: Instant) -> Election<Id> {
    Election::new(me, priority, 0, Limits::default(), t0)
}

fn floods(out: &[Output<Id>]) -> Vec<Msg<Id>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Flood(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn wire_round_trips_and_golden_bytes() {
    let msgs: Vec<Msg<Id>> = vec![
        Msg::Heartbeat {
            epoch: 7,
            priority: 100,
        },
        Msg::Election {
            epoch: 1,
            priority: None,
        },
        Msg::Election {
            epoch: 1,
            priority: Some(3),
        },
        Msg::Alive { priority: 9 },
        Msg::Coordinator {
            epoch: 2,
            priority: 1000,
        },
        Msg::Register(Entry {
            id: 5,
            nick: "bob".into(),
            addrs: vec!["/ip4/10.0.0.1/tcp/7447".into()],
            priority: Some(100),
        }),
        Msg::Roster {
            epoch: 3,
            entries: vec![Entry {
                id: 6,
                nick: "carol".into(),
                addrs: vec![],
                priority: None,
            }],
            truncated: false,
        },
    ];
    for m in msgs {
        assert_eq!(Msg::<Id>::decode(&m.encode()).unwrap(), m);
    }
    let hb = Msg::<Id>::Heartbeat {
        epoch: 0x0102,
        priority: 0x0a0b,
    };
    assert_eq!(hb.encode(), [1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0x0a, 0x0b]);
    assert!(Msg::<Id>::decode(&[9]).is_err());
    assert!(Msg::<Id>::decode(&[2, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 1]).is_err());
    let mut long = hb.encode();
    long.push(0);
    assert!(Msg::<Id>::decode(&long).is_err());
}

#[test]
fn an_oversized_roster_is_cut_and_says_so() {
    let entries: Vec<Entry<Id>> = (0..2000)
        .map(|i| Entry {
            id: i,
            nick: "x".repeat(32),
            addrs: vec!["/ip4/10.0.0.1/tcp/7447".into(); 2],
            priority: Some(1),
        })
        .collect();
    let m = Msg::Roster {
        epoch: 1,
        entries,
        truncated: false,
    };
    let bytes = m.encode();
    assert!(bytes.len() <= MAX_BODY);
    match Msg::<Id>::decode(&bytes).unwrap() {
        Msg::Roster {
            entries, truncated, ..
        } => {
            assert!(truncated);
            assert!(entries.len() < 2000 && entries.len() > 100);
        }
        other => panic!("{other:?}"),
    }
}

proptest::proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let _ = Msg::<[u8; 32]>::decode(&bytes);
        let _ = Msg::<Id>::decode(&bytes);
    }
}

#[test]
fn bad_claims_are_refused() {
    let t0 = Instant::now();
    let mut n = node(1, Some(100), t0);
    n.handle(Input::Reachable(vec![2, 3]), t0);
    // Node 3 outranks node 2 and is reachable: 2's coordinator is not followed.
    n.handle(
        Input::Received {
            from: 3,
            msg: Msg::Alive { priority: 100 },
        },
        t0,
    );
    n.handle(
        Input::Received {
            from: 2,
            msg: Msg::Coordinator {
                epoch: 5,
                priority: 100,
            },
        },
        t0,
    );
    assert_eq!(n.tracker(), None);
    assert_eq!(n.stats().outranked, 1);
    // Node 3 claims at epoch 6: followed. A stale epoch (4) from anyone is not.
    n.handle(
        Input::Received {
            from: 3,
            msg: Msg::Coordinator {
                epoch: 6,
                priority: 100,
            },
        },
        t0,
    );
    assert_eq!(n.tracker(), Some((3, 6)));
    n.handle(
        Input::Received {
            from: 2,
            msg: Msg::Heartbeat {
                epoch: 4,
                priority: 5000,
            },
        },
        t0,
    );
    assert_eq!(n.tracker(), Some((3, 6)));
    assert_eq!(n.stats().stale, 1);
    // A lower-ranked claim than ourselves makes us take over, with a newer epoch.
    let mut top = node(9, Some(100), t0);
    let out = top.handle(
        Input::Received {
            from: 2,
            msg: Msg::Coordinator {
                epoch: 5,
                priority: 100,
            },
        },
        t0,
    );
    assert!(top.is_serving());
    assert!(floods(&out).contains(&Msg::Coordinator {
        epoch: 6,
        priority: 100
    }));
}

#[test]
fn registrations_only_for_oneself_bounded_and_rate_limited() {
    let t0 = Instant::now();
    let limits = Limits {
        max_roster: 3,
        ..Limits::default()
    };
    let mut t = Election::new(9u32, Some(100), 0, limits, t0);
    t.handle(Input::Tick, t0 + Duration::from_secs(2));
    assert!(t.is_serving());
    let reg = |id: Id| {
        Msg::Register(Entry {
            id,
            nick: format!("n{id}"),
            addrs: vec![],
            priority: None,
        })
    };
    let now = t0 + Duration::from_secs(3);
    // Registering someone else.
    t.handle(
        Input::Received {
            from: 1,
            msg: reg(2),
        },
        now,
    );
    assert_eq!(t.stats().registrations_refused, 1);
    let out = t.handle(
        Input::Received {
            from: 1,
            msg: reg(1),
        },
        now,
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send {
            to: 1,
            msg: Msg::Roster { .. }
        }
    )));
    // Again at once: refused.
    t.handle(
        Input::Received {
            from: 1,
            msg: reg(1),
        },
        now,
    );
    assert_eq!(t.stats().registrations_refused, 2);
    t.handle(
        Input::Received {
            from: 2,
            msg: reg(2),
        },
        now,
    );
    // Full (itself, 1, 2): a newcomer is refused, nobody evicted.
    t.handle(
        Input::Received {
            from: 3,
            msg: reg(3),
        },
        now,
    );
    assert_eq!(t.stats().roster_full, 1);
    assert_eq!(t.served_roster().len(), 3);
    // Entries expire without refresh.
    t.handle(Input::Tick, now + Duration::from_secs(121));
    let left: Vec<Id> = t.served_roster().iter().map(|e| e.id).collect();
    assert_eq!(left, [9], "{left:?}");
}

// ---- the simulator ----

#[derive(Debug)]
enum Ev {
    Deliver { to: Id, from: Id, msg: Msg<Id> },
    Timer { node: Id, at: Instant },
    Reach { node: Id },
}

struct Sim {
    rng: StdRng,
    t0: Instant,
    now: Instant,
    seq: u64,
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    events: HashMap<usize, Ev>,
    nodes: Vec<Option<Election<Id>>>,
    priorities: Vec<Option<u32>>,
    group: Vec<u32>,
    wake: Vec<Option<Instant>>,
    loss: f64,
    /// Highest epoch each node ever reported (to check it never goes down).
    seen_epoch: Vec<u64>,
    messages: u64,
}

impl Sim {
    fn new(seed: u64, priorities: Vec<Option<u32>>) -> Self {
        let t0 = Instant::now();
        let n = priorities.len();
        let mut s = Self {
            rng: StdRng::seed_from_u64(seed),
            t0,
            now: t0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            nodes: (0..n).map(|_| None).collect(),
            priorities,
            group: vec![0; n],
            wake: vec![None; n],
            loss: 0.0,
            seen_epoch: vec![0; n],
            messages: 0,
        };
        for i in 0..n as Id {
            s.start(i);
        }
        s
    }

    fn at(&mut self, when: Instant, ev: Ev) {
        self.seq += 1;
        let k = self.seq as usize;
        self.events.insert(k, ev);
        self.queue.push(Reverse((when, self.seq, k)));
    }

    fn alive(&self, i: Id) -> bool {
        self.nodes[i as usize].is_some()
    }

    fn reachable(&self, i: Id) -> Vec<Id> {
        (0..self.nodes.len() as Id)
            .filter(|&j| {
                j != i && self.alive(j) && self.group[j as usize] == self.group[i as usize]
            })
            .collect()
    }

    fn start(&mut self, i: Id) {
        // The node keeps its highest epoch across restarts (the node stores it).
        let epoch = self.seen_epoch[i as usize];
        let e = Election::new(
            i,
            self.priorities[i as usize],
            epoch,
            Limits::default(),
            self.now,
        );
        self.nodes[i as usize] = Some(e);
        self.feed(
            i,
            Input::Me {
                nick: format!("n{i}"),
                addrs: vec![],
            },
        );
        self.topology_changed();
    }

    fn crash(&mut self, i: Id) {
        self.nodes[i as usize] = None;
        self.wake[i as usize] = None;
        self.topology_changed();
    }

    /// Everyone learns who is reachable after a detection delay (routing's retractions).
    fn topology_changed(&mut self) {
        for i in 0..self.nodes.len() as Id {
            if self.alive(i) {
                let d = Duration::from_millis(self.rng.gen_range(20..80));
                self.at(self.now + d, Ev::Reach { node: i });
            }
        }
    }

    fn feed(&mut self, i: Id, input: Input<Id>) {
        let Some(e) = self.nodes[i as usize].as_mut() else {
            return;
        };
        let out = e.handle(input, self.now);
        let epoch = e.max_epoch();
        assert!(
            epoch >= self.seen_epoch[i as usize],
            "node {i}'s epoch went down"
        );
        self.seen_epoch[i as usize] = epoch;
        for o in out {
            match o {
                Output::Send { to, msg } => {
                    self.messages += 1;
                    if self.alive(to) && self.group[to as usize] == self.group[i as usize] {
                        self.deliver(i, to, msg, 5..120);
                    }
                }
                Output::Flood(msg) => {
                    self.messages += 1;
                    for j in self.reachable(i) {
                        self.deliver(i, j, msg.clone(), 5..60);
                    }
                }
                Output::WakeAt(t) => {
                    self.wake[i as usize] = Some(t);
                    self.at(t, Ev::Timer { node: i, at: t });
                }
                _ => {}
            }
        }
    }

    fn deliver(&mut self, from: Id, to: Id, msg: Msg<Id>, delay_ms: std::ops::Range<u64>) {
        if self.loss > 0.0 && self.rng.gen_bool(self.loss) {
            return;
        }
        let d = Duration::from_millis(self.rng.gen_range(delay_ms));
        self.at(self.now + d, Ev::Deliver { to, from, msg });
    }

    fn run_until(&mut self, until: Instant) {
        while let Some(Reverse((t, _, k))) = self.queue.peek().copied() {
            if t > until {
                break;
            }
            self.queue.pop();
            self.now = t;
            let ev = self.events.remove(&k).expect("queued event");
            match ev {
                Ev::Deliver { to, from, msg } => {
                    // Lost if the two were cut apart (or one crashed) on the way.
                    if self.alive(to)
                        && self.alive(from)
                        && self.group[to as usize] == self.group[from as usize]
                    {
                        self.feed(to, Input::Received { from, msg });
                    }
                }
                Ev::Timer { node, at } => {
                    if self.wake[node as usize] == Some(at) {
                        self.feed(node, Input::Tick);
                    }
                }
                Ev::Reach { node } => {
                    let r = self.reachable(node);
                    self.feed(node, Input::Reachable(r));
                }
            }
        }
        self.now = until;
    }

    fn rank(&self, i: Id) -> Option<Rank<Id>> {
        self.priorities[i as usize].map(|priority| Rank { priority, id: i })
    }

    /// The invariants of a quiet network, per component.
    fn check(&self, what: &str) {
        let n = self.nodes.len() as Id;
        let mut groups: Vec<u32> = (0..n)
            .filter(|&i| self.alive(i))
            .map(|i| self.group[i as usize])
            .collect();
        groups.sort_unstable();
        groups.dedup();
        for g in groups {
            let members: Vec<Id> = (0..n)
                .filter(|&i| self.alive(i) && self.group[i as usize] == g)
                .collect();
            let best = members.iter().filter_map(|&i| self.rank(i)).max();
            let serving: Vec<Id> = members
                .iter()
                .copied()
                .filter(|&i| self.nodes[i as usize].as_ref().unwrap().is_serving())
                .collect();
            let Some(best) = best else {
                assert!(
                    serving.is_empty(),
                    "{what}: a tracker among ineligible nodes"
                );
                continue;
            };
            assert_eq!(
                serving,
                [best.id],
                "{what}: group {g} {members:?}: trackers"
            );
            let leader = self.nodes[best.id as usize].as_ref().unwrap();
            let (_, epoch) = leader.tracker().expect("the tracker follows itself");
            for &i in &members {
                let e = self.nodes[i as usize].as_ref().unwrap();
                assert_eq!(
                    e.tracker(),
                    Some((best.id, epoch)),
                    "{what}: node {i} of group {g} {members:?}"
                );
            }
            let roster: Vec<Id> = leader.served_roster().iter().map(|e| e.id).collect();
            for &i in &members {
                assert!(
                    roster.contains(&i),
                    "{what}: {i} not in the roster {roster:?}"
                );
            }
        }
    }
}

fn random_priorities(rng: &mut StdRng, n: usize) -> Vec<Option<u32>> {
    (0..n)
        .map(|_| match rng.gen_range(0..10) {
            0 => None,
            1 => Some(1000),
            _ => Some(100),
        })
        .collect()
}

/// One seeded run: a start, a storm of partitions, heals, crashes and restarts under 5 % loss,
/// then quiet. Returns the number of messages sent.
fn chaos_run(seed: u64, max_nodes: usize) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = rng.gen_range(2..=max_nodes);
    let mut sim = Sim::new(seed, random_priorities(&mut rng, n));
    let t0 = sim.t0;
    sim.run_until(t0 + Duration::from_secs(5));
    sim.check(&format!("seed {seed}, after start"));
    sim.loss = 0.05;
    let mut t = t0 + Duration::from_secs(5);
    for _ in 0..rng.gen_range(3..20) {
        t += Duration::from_millis(rng.gen_range(50..1500));
        sim.run_until(t);
        let i = rng.gen_range(0..n) as Id;
        match rng.gen_range(0..4) {
            0 => {
                // Partition into two random halves.
                for g in sim.group.iter_mut() {
                    *g = rng.gen_range(0..2);
                }
                sim.topology_changed();
            }
            1 => {
                sim.group.iter_mut().for_each(|g| *g = 0);
                sim.topology_changed();
            }
            2 if sim.alive(i) => sim.crash(i),
            _ if !sim.alive(i) => sim.start(i),
            _ => {}
        }
    }
    // Quiet: no loss, no change, for longer than a registration interval (so registrations
    // lost in the storm are repeated).
    sim.loss = 0.0;
    if rng.gen_bool(0.5) {
        sim.group.iter_mut().for_each(|g| *g = 0);
        sim.topology_changed();
    }
    sim.run_until(t + Duration::from_secs(75));
    sim.check(&format!("seed {seed}, quiet"));
    sim.messages
}

#[test]
fn seeded_chaos_runs_end_with_one_tracker_per_component() {
    for seed in 0..300 {
        chaos_run(seed, 10);
    }
}

#[test]
#[ignore = "thousands of runs: cargo test --release -p meshchat-core -- election --ignored"]
fn many_seeded_chaos_runs() {
    for seed in 0..5000 {
        chaos_run(seed, 20);
    }
}

/// Messages of one failover (the tracker crashes) in a network of `n`, and the virtual time
/// until every node follows the new tracker.
fn failover(n: usize) -> (u64, Duration) {
    let priorities = vec![Some(100); n];
    let mut sim = Sim::new(7, priorities);
    let t0 = sim.t0;
    sim.run_until(t0 + Duration::from_secs(5));
    sim.check("start");
    let before = sim.messages;
    let killed = (n - 1) as Id;
    let t = t0 + Duration::from_secs(5);
    sim.crash(killed);
    let mut at = t;
    let new = (n - 2) as Id;
    loop {
        at += Duration::from_millis(10);
        sim.run_until(at);
        let all = (0..n as Id).filter(|&i| sim.alive(i)).all(|i| {
            sim.nodes[i as usize]
                .as_ref()
                .unwrap()
                .tracker()
                .map(|t| t.0)
                == Some(new)
        });
        if all {
            break;
        }
        assert!(at < t + Duration::from_secs(30), "no new tracker");
    }
    let took = at - t;
    // Messages of the election itself: up to convergence, minus heartbeats.
    let heartbeats = (took.as_millis() / 500) as u64 + 1;
    (sim.messages - before - heartbeats, took)
}

#[test]
fn failover_cost_and_time() {
    for n in [6, 20, 50] {
        let (messages, took) = failover(n);
        println!("failover N = {n}: {messages} messages sent, all following in {took:?}");
        assert!(took < Duration::from_secs(2), "N = {n}: {took:?}");
    }
}

#[test]
#[ignore = "slow in debug builds: cargo test --release -p meshchat-core -- election --ignored --nocapture"]
fn failover_cost_1000() {
    let (messages, took) = failover(1000);
    println!("failover N = 1000: {messages} messages sent, all following in {took:?}");
}
