//! The seeded runs on the simulated mesh of [`super`]: chaos runs (crashes, restarts, cuts,
//! partitions and loss, then quiet) checked against the invariants, and the cost of a failover
//! and of a cold start as N grows (the figures of the election's module docs and
//! BENCHMARKS §7).

use super::*;

fn random_priorities(rng: &mut StdRng, n: usize) -> Vec<Option<u32>> {
    (0..n)
        .map(|_| match rng.gen_range(0..10) {
            0 => None,
            1 => Some(1000),
            _ => Some(100),
        })
        .collect()
}

/// One seeded run: a random topology starts together; then a storm of crashes (trackers, and
/// candidates in the middle of the election that follows), restarts (returning higher nodes),
/// cut and restored links, partitions and heals, under 0-8 % loss per link; then quiet (no loss,
/// healed half of the time) for longer than a registration interval. Checks the invariants
/// after the start and after the quiet (epochs are checked at every step, in `Peer`).
fn chaos_run(seed: u64, max_nodes: usize) -> Result<Net, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = rng.gen_range(2..=max_nodes);
    let topology = [
        Topology::Line,
        Topology::Ring,
        Topology::Mesh,
        Topology::Mesh,
        Topology::Grid,
    ][rng.gen_range(0..5)];
    let mut priorities = random_priorities(&mut rng, n);
    if topology == Topology::Line && rng.gen_bool(0.5) {
        // The best candidate at the far end of a line.
        priorities[0] = Some(5000);
    }
    let mut net = Net::new(seed, priorities, &edges(topology, n, &mut rng));
    let what = format!("seed {seed}, {topology:?} of {n}");
    net.run_for(Duration::from_secs(8));
    net.settled()
        .map_err(|e| format!("{what}, after the start: {e}"))?;
    net.set_loss(rng.gen_range(0.0..0.08));
    let mut crashed: Vec<NodeId> = Vec::new();
    for _ in 0..rng.gen_range(3..15) {
        net.run_for(ms(rng.gen_range(50..1500)));
        let i = rng.gen_range(0..n) as NodeId;
        match rng.gen_range(0..8) {
            0 => {
                // The tracker of a random node's component, and perhaps, mid-election, the
                // candidate most likely to win.
                if let Some(t) = net.tracker_of(i).filter(|t| net.sim.is_alive(*t)) {
                    net.crash(t);
                    crashed.push(t);
                    if rng.gen_bool(0.5) {
                        net.run_for(ms(rng.gen_range(20..400)));
                        let next = (0..n as NodeId)
                            .filter(|&j| net.sim.is_alive(j))
                            .filter_map(|j| net.rank(j))
                            .max();
                        if let Some(next) = next {
                            net.crash(next.id);
                            crashed.push(next.id);
                        }
                    }
                }
            }
            1 if net.sim.is_alive(i) => {
                net.crash(i);
                crashed.push(i);
            }
            2 | 3 if !crashed.is_empty() => {
                let j = crashed.swap_remove(rng.gen_range(0..crashed.len()));
                net.restart(j);
            }
            4 => {
                let side: Vec<bool> = (0..n).map(|_| rng.gen_bool(0.5)).collect();
                net.partition(&side);
            }
            5 => net.heal(),
            6 if !net.links.is_empty() => {
                let (a, b, _) = net.links[rng.gen_range(0..net.links.len())];
                net.note(format_args!("cut {a}-{b}"));
                net.sim.disconnect(a, b);
            }
            _ => {}
        }
    }
    net.set_loss(0.0);
    if rng.gen_bool(0.5) {
        for j in crashed.drain(..) {
            net.restart(j);
        }
        net.heal();
    }
    if net.world.borrow().trace {
        println!("quiet from {:?}", net.sim.elapsed());
    }
    net.run_for(Duration::from_secs(65));
    net.settled().map_err(|e| format!("{what}, quiet: {e}"))?;
    Ok(net)
}

/// Runs the seeds; fails listing the first few failures and their number. Prints what the
/// live nodes counted at the end of the runs, to show which rules the runs exercised.
fn chaos_runs(seeds: std::ops::Range<u64>, max_nodes: usize) {
    let runs = seeds.end - seeds.start;
    let mut failed = Vec::new();
    let mut unrouted = Vec::new();
    let mut total = [0u64; 9];
    for seed in seeds {
        match chaos_run(seed, max_nodes) {
            Ok(net) => {
                for e in (0..net.n() as NodeId).filter_map(|i| net.node(i)) {
                    let s = e.stats();
                    let v = [
                        s.elections,
                        s.won,
                        s.stepped_down,
                        s.stale,
                        s.outranked,
                        s.suspected,
                        s.registrations,
                        s.registrations_refused,
                        s.unexpected,
                    ];
                    for (t, v) in total.iter_mut().zip(v) {
                        *t += v;
                    }
                }
            }
            Err(e) if e.ends_with(UNROUTED) => unrouted.push(e),
            Err(e) => failed.push(e),
        }
    }
    if !unrouted.is_empty() {
        println!(
            "{} of {runs} runs ended with a node whose tracker has no route to it (routing \
             starvation), so its roster is out of date: {:#?}",
            unrouted.len(),
            unrouted.iter().take(5).collect::<Vec<_>>()
        );
    }
    assert!(
        unrouted.len() * 200 <= runs as usize,
        "{} of {runs} runs with an unrouted node: over 0.5 %",
        unrouted.len()
    );
    println!(
        "{runs} runs, live nodes counted: elections {}, won {}, stepped down {}, stale {}, \
         outranked {}, suspected {}, registrations {} (refused {}), unexpected {}",
        total[0], total[1], total[2], total[3], total[4], total[5], total[6], total[7], total[8]
    );
    let first: Vec<&String> = failed.iter().take(5).collect();
    assert!(
        failed.is_empty(),
        "{} of {runs} runs failed: {first:#?}",
        failed.len()
    );
}

#[test]
fn seeded_chaos_runs_end_with_one_tracker_per_component() {
    chaos_runs(0..300, 12);
}

#[test]
#[ignore = "thousands of runs: cargo test --release -p meshchat-core election -- --ignored"]
fn many_seeded_chaos_runs() {
    chaos_runs(1000..11_000, 30);
}

/// What one change cost, from the change until the network settled again.
#[derive(Debug)]
struct Cost {
    /// Election, Alive and Coordinator messages (a flood counts once), and the link frames
    /// they took.
    election: (u64, u64),
    /// Register and Roster messages, and frames.
    roster: (u64, u64),
    /// Until every live node followed the best node of its component.
    agreed: Duration,
    /// Until, also, every one was in its tracker's roster.
    settled: Duration,
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} election messages ({} frames), {} registrations and rosters ({} frames); \
             agreed in {:?}, all registered in {:?}",
            self.election.0,
            self.election.1,
            self.roster.0,
            self.roster.1,
            self.agreed,
            self.settled
        )
    }
}

impl Net {
    /// Runs in 5 ms steps after a change until settled (at most `limit`), and what it cost.
    fn measure(&mut self, limit: Duration) -> Cost {
        let before = self.counts();
        let start = self.sim.now();
        let mut agreed = None;
        loop {
            let t = self.sim.now() - start;
            if agreed.is_none() && self.agreed(false).is_ok() {
                agreed = Some(t);
            }
            if let Some(agreed) = agreed.filter(|_| self.settled().is_ok()) {
                let c = self.counts().minus(&before);
                return Cost {
                    election: c.election(),
                    roster: c.roster(),
                    agreed,
                    settled: t,
                };
            }
            assert!(t < limit, "not settled after {t:?}: {:?}", self.settled());
            self.run_for(ms(5));
        }
    }

    /// A mesh of `n` nodes of equal priority (so ranks go by id), settled after its start.
    fn settled_mesh(n: usize, seed: u64, detect: Duration) -> (Self, Cost) {
        let mut rng = StdRng::seed_from_u64(seed);
        let topology = edges(Topology::Mesh, n, &mut rng);
        let mut net = Self::with_detect_delay(seed, vec![Some(100); n], &topology, detect);
        let start = net.measure(Duration::from_secs(120));
        // Let the last answers land.
        net.run_for(Duration::from_secs(1));
        (net, start)
    }
}

/// The tracker (the highest id) crashes, `after` the network settled from its start. After a
/// minute every node has registered again and holds a roster with everyone's priority; before
/// it, the candidates may hold the partial rosters of their first registration, and the new
/// tracker, seeing reachable nodes it knows nothing of, floods its election and waits one
/// election timeout before it wins.
fn failover(n: usize, seed: u64, detect: Duration, after: Duration) -> Cost {
    let (mut net, _) = Net::settled_mesh(n, seed, detect);
    net.run_for(after);
    net.crash(n as NodeId - 1);
    net.measure(Duration::from_secs(120))
}

#[test]
fn failover_is_fast_and_cheap() {
    let minute = Duration::from_secs(61);
    for n in [6, 20, 50] {
        for (after, when) in [(Duration::ZERO, "young"), (minute, "steady")] {
            let c = failover(n, 1, DETECT_DELAY, after);
            println!("failover, N = {n}, {when}, crash noticed in {DETECT_DELAY:?}: {c}");
            assert!(c.settled < Duration::from_secs(2), "N = {n}: {c}");
            assert!(c.election.0 <= 6 * n as u64, "N = {n}: {c}");
        }
        let c = failover(n, 1, SILENT, minute);
        println!("failover, N = {n}, steady, silent crash: {c}");
        assert!(c.agreed < Duration::from_secs(3), "N = {n}: {c}");
    }
}

#[test]
fn cold_start_cost() {
    for n in [6, 20, 50] {
        let (net, c) = Net::settled_mesh(n, 1, DETECT_DELAY);
        println!("cold start, N = {n}: {c} {:?}", net.counts());
    }
}

#[test]
#[ignore = "slow in debug builds: cargo test --release -p meshchat-core election -- --ignored --nocapture"]
fn failover_and_cold_start_of_1000() {
    let (_, c) = Net::settled_mesh(1000, 1, DETECT_DELAY);
    println!("cold start, N = 1000: {c}");
    let minute = Duration::from_secs(61);
    for (after, when) in [(Duration::ZERO, "young"), (minute, "steady")] {
        let c = failover(1000, 1, DETECT_DELAY, after);
        println!("failover, N = 1000, {when}, crash noticed in {DETECT_DELAY:?}: {c}");
    }
    let c = failover(1000, 1, SILENT, minute);
    println!("failover, N = 1000, steady, silent crash: {c}");
}

/// Two halves elect a tracker each, then the partition heals.
#[test]
fn healed_partitions_converge_on_one_tracker() {
    for (n, seed) in [(6, 1), (20, 2), (50, 3)] {
        let (mut net, _) = Net::settled_mesh(n, seed, DETECT_DELAY);
        let side: Vec<bool> = (0..n).map(|i| i < n / 2).collect();
        net.partition(&side);
        let split = net.measure(Duration::from_secs(60));
        let components = net.components().len();
        assert!(components >= 2);
        net.run_for(Duration::from_secs(5));
        net.heal();
        let c = net.measure(Duration::from_secs(60));
        println!("N = {n}: {components} components elected ({split}); healed: {c}");
        assert!(c.agreed < Duration::from_secs(2), "N = {n}: {c}");
    }
}

/// A line with the best candidate at one end: the others reach it over every hop; it dies,
/// the next best (at the other end) takes over; it comes back and takes over again.
#[test]
fn a_line_with_the_best_candidate_at_the_far_end() {
    let n = 10;
    let mut priorities = vec![Some(100); n];
    priorities[0] = Some(5000);
    priorities[4] = None;
    let mut rng = StdRng::seed_from_u64(1);
    let mut net = Net::new(1, priorities, &edges(Topology::Line, n, &mut rng));
    net.measure(Duration::from_secs(30));
    assert_eq!(net.tracker_of(9), Some(0));
    net.crash(0);
    let c = net.measure(Duration::from_secs(30));
    println!("line of {n}, the far end crashes: {c}");
    assert_eq!(net.tracker_of(1), Some(9));
    net.run_for(Duration::from_secs(1));
    net.restart(0);
    let c = net.measure(Duration::from_secs(30));
    println!("line of {n}, the far end returns: {c}");
    assert_eq!(net.tracker_of(9), Some(0));
    assert!(c.settled < Duration::from_secs(5), "{c}");
}

/// Replays one seed of the chaos runs, e.g. `ELECTION_SEED=2334 ELECTION_TRACE=2334 cargo test
/// -p meshchat-core replay_one_seed -- --ignored --nocapture` (with a trace of every input).
#[test]
#[ignore = "a debugging aid: set ELECTION_SEED"]
fn replay_one_seed() {
    let Some(seed) = std::env::var("ELECTION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    else {
        return; // nothing to replay
    };
    if let Err(e) = chaos_run(seed, 30) {
        panic!("{e}");
    }
}
