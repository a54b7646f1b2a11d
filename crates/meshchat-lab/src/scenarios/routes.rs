//! Routing convergence with real nodes: how long the distance-vector tables (`routes`) take to
//! agree with the topology after a link fails, and after it comes back.
//!
//! The lab knows the graph, so it knows what every table must say: for each running node `i`
//! and every other node `j` it can reach over links that are up, a route to `j` whose hop count
//! is the breadth-first distance and whose next hop is a neighbour one hop closer to `j`; and no
//! route to anything it cannot reach. A *poll round* asks every running node for its `routes`
//! at once (the requests written back to back, then the answers read) and compares; the tables
//! have *converged* at the first round where every node's table is right. Times are taken at
//! the end of that round (an upper bound; the round's length, a few ms to tens of ms, is the
//! resolution).
//!
//! A measurement ([`measure_link`]):
//! 1. the link goes down (`ip link set down`, both ends); the lab records when each end reports
//!    `peer_disconnected` for the other (*detection*: the node notices a dead link only when its
//!    pings fail, so this dominates) and when the tables converge on the graph without it;
//! 2. the link comes up and the lab dials it again; it records when both ends report
//!    `peer_connected` and when the tables converge on the whole graph again.
//!
//! `meshchat-lab run routes30` runs one measurement on `random:30:3:30`, on the link whose loss
//! changes the most hop counts (among those whose loss leaves the graph connected), and asserts
//! convergence within its deadlines. `meshchat-lab routes [--topology T] [--links K]`
//! runs K measurements on any topology (default `random:30:3:30`), one link after the other,
//! the links whose loss changes the most hop counts first, and prints the figures (JSON with
//! `--json`).
//! Neither runs on the stand-in node, which has no routing table.

use crate::lab::{Lab, LabOptions, Report};
use crate::topology::Topology;
use anyhow::{bail, Result};
use meshchat_api::Route;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Pause between poll rounds while something is expected to change.
const POLL_GAP: Duration = Duration::from_millis(20);
/// Pause between poll rounds while waiting for the ends of a cut link to notice (nothing
/// changes in the tables before that; polling slower leaves the nodes the CPU).
const IDLE_GAP: Duration = Duration::from_millis(250);

/// Hop counts from `from` to every host it reaches through `edges` among `alive` hosts.
fn bfs(
    n: usize,
    edges: &[(usize, usize)],
    alive: &BTreeSet<usize>,
    from: usize,
) -> Vec<Option<u32>> {
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in edges {
        if alive.contains(&a) && alive.contains(&b) {
            adj[a].push(b);
            adj[b].push(a);
        }
    }
    let mut dist = vec![None; n];
    dist[from] = Some(0);
    let mut q = VecDeque::from([from]);
    while let Some(i) = q.pop_front() {
        let d = dist[i].unwrap_or(0);
        for &j in &adj[i] {
            if dist[j].is_none() {
                dist[j] = Some(d + 1);
                q.push_back(j);
            }
        }
    }
    dist
}

/// All-pairs hop counts over `edges` among `alive`.
pub fn hop_counts(
    n: usize,
    edges: &[(usize, usize)],
    alive: &BTreeSet<usize>,
) -> Vec<Vec<Option<u32>>> {
    (0..n).map(|i| bfs(n, edges, alive, i)).collect()
}

/// What is wrong with host `i`'s table given the hop counts `dist` and the links `edges`
/// (empty: nothing). `peers` maps peer ids to hosts.
pub fn table_errors(
    i: usize,
    routes: &[Route],
    dist: &[Vec<Option<u32>>],
    edges: &[(usize, usize)],
    peers: &HashMap<String, usize>,
    alive: &BTreeSet<usize>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut listed = BTreeSet::new();
    for r in routes {
        let Some(&j) = peers.get(&r.dest) else {
            errors.push(format!("route to an unknown peer {}", r.dest));
            continue;
        };
        listed.insert(j);
        let Some(want) = dist[i][j].filter(|_| alive.contains(&j) && j != i) else {
            errors.push(format!(
                "route to n{j}, which it cannot reach ({} hops)",
                r.hops
            ));
            continue;
        };
        if r.hops != want {
            errors.push(format!("n{j} at {} hops, not {want}", r.hops));
            continue;
        }
        let via = peers.get(&r.next_hop).copied();
        let good = via
            .is_some_and(|k| edges.contains(&(i.min(k), i.max(k))) && dist[k][j] == Some(want - 1));
        if !good {
            errors.push(format!(
                "n{j} via {} (not a neighbour one hop closer)",
                via.map_or(r.next_hop.clone(), |k| format!("n{k}"))
            ));
        }
    }
    for j in alive.iter().copied().filter(|&j| j != i) {
        if dist[i][j].is_some() && !listed.contains(&j) {
            errors.push(format!(
                "no route to n{j} ({} hops)",
                dist[i][j].unwrap_or(0)
            ));
        }
    }
    errors
}

/// One poll round: every running node's table checked against the links that are up. Returns
/// the hosts whose table is wrong, with a sample of what is wrong.
fn poll_round(lab: &Lab) -> Result<BTreeMap<usize, Vec<String>>> {
    let running = lab.running();
    let alive: BTreeSet<usize> = running.iter().copied().collect();
    let edges: Vec<(usize, usize)> = lab
        .topo()
        .edges()
        .into_iter()
        .filter(|&(a, b)| lab.net.link_is_up(a, b))
        .collect();
    let dist = hop_counts(lab.n(), &edges, &alive);
    let peers: HashMap<String, usize> = (0..lab.n())
        .filter_map(|i| lab.node(i).peer_id().map(|p| (p, i)))
        .collect();
    let tables = lab.routes_of(&running)?;
    let mut wrong = BTreeMap::new();
    for (&i, routes) in running.iter().zip(&tables) {
        let errs = table_errors(i, routes, &dist, &edges, &peers, &alive);
        if !errs.is_empty() {
            wrong.insert(i, errs);
        }
    }
    Ok(wrong)
}

/// Polls until every running node's table is right; returns when (end of the first good round),
/// the rounds polled and their mean length. `gap` says how long to pause between rounds.
pub fn wait_converged(
    lab: &Lab,
    deadline: Instant,
    gap: impl Fn(&Lab) -> Duration,
) -> Result<(Instant, usize, Duration)> {
    let mut rounds = 0;
    let mut spent = Duration::ZERO;
    loop {
        let t = Instant::now();
        let wrong = poll_round(lab)?;
        let end = Instant::now();
        rounds += 1;
        spent += end - t;
        if wrong.is_empty() {
            return Ok((end, rounds, spent / rounds as u32));
        }
        if end >= deadline {
            let sample: Vec<String> = wrong
                .iter()
                .take(6)
                .map(|(i, e)| {
                    format!(
                        "n{i}: {} problems, e.g. {}",
                        e.len(),
                        e.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
                    )
                })
                .collect();
            bail!(
                "routing tables not converged by the deadline ({} nodes wrong):\n  {}",
                wrong.len(),
                sample.join("\n  ")
            );
        }
        std::thread::sleep(gap(lab));
    }
}

/// Ordered pairs whose hop count changes when link `e` is lost, or `None` if its loss
/// disconnects the graph.
fn pairs_changed(topo: &Topology, e: (usize, usize)) -> Option<usize> {
    let all: BTreeSet<usize> = (0..topo.n).collect();
    let edges = topo.edges();
    let before = hop_counts(topo.n, &edges, &all);
    let without: Vec<(usize, usize)> = edges.iter().copied().filter(|&x| x != e).collect();
    let after = hop_counts(topo.n, &without, &all);
    let mut changed = 0;
    for i in 0..topo.n {
        for j in 0..topo.n {
            after[i][j]?;
            if before[i][j] != after[i][j] {
                changed += 1;
            }
        }
    }
    Some(changed)
}

/// The links whose loss leaves the graph connected, the most hop counts changed first.
pub fn links_by_impact(topo: &Topology) -> Vec<((usize, usize), usize)> {
    let mut v: Vec<((usize, usize), usize)> = topo
        .edges()
        .into_iter()
        .filter_map(|e| pairs_changed(topo, e).map(|c| (e, c)))
        .collect();
    v.sort_by_key(|&(e, c)| (std::cmp::Reverse(c), e));
    v
}

/// The figures of one link failure and recovery, in ms.
#[derive(Debug, Clone, Serialize)]
pub struct LinkMeasurement {
    /// The link.
    pub link: (usize, usize),
    /// Ordered pairs of hosts whose hop count changes without it.
    pub pairs_changed: usize,
    /// Routes (over all tables, before the failure) whose next hop was across the link.
    pub routes_via_link: usize,
    /// Link down → each end's `peer_disconnected` for the other.
    pub detect_ms: [f64; 2],
    /// Link down → every table right for the graph without the link.
    pub down_converged_ms: f64,
    /// Last end's `peer_disconnected` → converged.
    pub down_after_detect_ms: f64,
    /// Poll rounds until then, and their mean length.
    pub down_rounds: usize,
    /// Mean poll round, ms.
    pub round_ms: f64,
    /// Dial (after the link came up) → both ends connected.
    pub up_connected_ms: f64,
    /// Dial → every table right for the whole graph.
    pub up_converged_ms: f64,
}

/// Takes `link` down, measures until the tables converge, brings it up, dials it, measures
/// again. The tables must be converged on the current graph before the call.
pub fn measure_link(
    lab: &mut Lab,
    link: (usize, usize),
    deadline_secs: u64,
) -> Result<LinkMeasurement> {
    let (a, b) = link;
    let pa = lab.node(a).peer_id();
    let pb = lab.node(b).peer_id();
    let (Some(pa), Some(pb)) = (pa, pb) else {
        bail!("n{a} or n{b} has no peer id");
    };
    let routes_via_link = {
        let running = lab.running();
        let tables = lab.routes_of(&running)?;
        running
            .iter()
            .zip(&tables)
            .map(|(&i, t)| {
                t.iter()
                    .filter(|r| (i == a && r.next_hop == pb) || (i == b && r.next_hop == pa))
                    .count()
            })
            .sum()
    };
    let pairs_changed = pairs_changed(lab.topo(), link).unwrap_or(0);

    let t0 = Instant::now();
    lab.link_down(a, b)?;
    // Slow polls until an end notices, fast ones after.
    let gone = |lab: &Lab| {
        let st = lab.hub.lock();
        let after = |t: Option<&Instant>| t.copied().filter(|t| *t >= t0);
        (
            after(st.nodes[a].disconnected_at.get(&pb)),
            after(st.nodes[b].disconnected_at.get(&pa)),
        )
    };
    let noticed = |lab: &Lab| {
        let (x, y) = gone(lab);
        x.is_some() || y.is_some()
    };
    let (done, down_rounds, round) = wait_converged(lab, lab.deadline(deadline_secs), |lab| {
        if noticed(lab) {
            POLL_GAP
        } else {
            IDLE_GAP
        }
    })?;
    let (da, db) = gone(lab);
    let since = |t: Option<Instant>| t.map_or(f64::NAN, |t| ms(t.saturating_duration_since(t0)));
    let detect_ms = [since(da), since(db)];
    let last_detect = da.max(db);
    let down_after_detect_ms =
        last_detect.map_or(f64::NAN, |t| ms(done.saturating_duration_since(t)));
    lab.log(format!(
        "link n{a}-n{b} down: ends noticed after {:.0} / {:.0} ms, tables converged after {:.0} ms ({down_after_detect_ms:.0} ms after the later end noticed; {down_rounds} rounds of {:.0} ms)",
        detect_ms[0],
        detect_ms[1],
        ms(done - t0),
        ms(round)
    ));

    lab.link_up(a, b)?;
    let t1 = Instant::now();
    lab.dial(a, b)?;
    lab.wait_connected(lab.deadline(30))?;
    let up_connected = Instant::now();
    let (up_done, _, _) = wait_converged(lab, lab.deadline(deadline_secs), |_| POLL_GAP)?;
    lab.log(format!(
        "link n{a}-n{b} up: connected after {:.0} ms, tables converged after {:.0} ms",
        ms(up_connected - t1),
        ms(up_done - t1)
    ));
    Ok(LinkMeasurement {
        link,
        pairs_changed,
        routes_via_link,
        detect_ms,
        down_converged_ms: ms(done - t0),
        down_after_detect_ms,
        down_rounds,
        round_ms: ms(round),
        up_connected_ms: ms(up_connected - t1),
        up_converged_ms: ms(up_done - t1),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Parameters of `meshchat-lab routes`.
#[derive(Debug, Clone)]
pub struct RoutesArgs {
    /// Topology description ([`Topology::parse`]), e.g. `random:30:3:30` or `grid:6x5`.
    pub topology: String,
    /// Links to fail, one after the other (the most hop counts changed first).
    pub links: usize,
    /// Where to write the JSON result.
    pub json: Option<PathBuf>,
}

/// The result of `meshchat-lab routes`.
#[derive(Debug, Clone, Serialize)]
pub struct RoutesResult {
    /// Topology description.
    pub topology: String,
    /// Hosts.
    pub nodes: usize,
    /// Last link connected → every table right, ms.
    pub initial_converged_ms: f64,
    /// One per failed link.
    pub links: Vec<LinkMeasurement>,
    /// Wall time, s.
    pub seconds: f64,
}

/// Builds the topology, starts every node, waits for the first convergence, then fails and
/// restores `links` links one after the other, measuring each.
pub fn measure(args: &RoutesArgs, opts: &LabOptions) -> Result<(RoutesResult, Report)> {
    let started = Instant::now();
    let topo = Topology::parse(&args.topology)?;
    let candidates = links_by_impact(&topo);
    if candidates.len() < args.links {
        bail!(
            "{} has only {} links whose loss leaves it connected",
            topo.name,
            candidates.len()
        );
    }
    let mut lab = Lab::new(topo, opts.clone())?;
    lab.start_all()?;
    let linked = Instant::now();
    let deadline_secs = 120;
    let (first, rounds, _) = wait_converged(&lab, lab.deadline(deadline_secs), |_| POLL_GAP)?;
    let initial = ms(first - linked);
    lab.log(format!(
        "tables converged {initial:.0} ms after the last link connected ({rounds} rounds)"
    ));
    let mut links = Vec::new();
    for &(link, _) in candidates.iter().take(args.links) {
        links.push(measure_link(&mut lab, link, deadline_secs)?);
    }
    lab.check_health()?;
    for m in &links {
        lab.notes.push(format!(
            "link n{}-n{} ({} hop counts change, {} routes used it): ends noticed after {:.0} / {:.0} ms; tables converged {:.0} ms after the cut ({:.0} ms after the later end noticed; {} rounds of {:.0} ms); up again: connected {:.0} ms after the dial, converged {:.0} ms after it",
            m.link.0,
            m.link.1,
            m.pairs_changed,
            m.routes_via_link,
            m.detect_ms[0],
            m.detect_ms[1],
            m.down_converged_ms,
            m.down_after_detect_ms,
            m.down_rounds,
            m.round_ms,
            m.up_connected_ms,
            m.up_converged_ms
        ));
    }
    lab.notes.push(format!(
        "first convergence: every table right {initial:.0} ms after the last link connected"
    ));
    let name = lab.topo().name.clone();
    let lab_nodes = lab.n();
    let report = lab.finish()?;
    let result = RoutesResult {
        topology: name,
        nodes: lab_nodes,
        initial_converged_ms: initial,
        links,
        seconds: started.elapsed().as_secs_f64(),
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)? + "\n")?;
    }
    Ok((result, report))
}

/// `routes30`: one measurement on `random:30:3:30`; see the module docs.
pub fn routes30(opts: &LabOptions) -> Result<Report> {
    let args = RoutesArgs {
        topology: "random:30:3:30".into(),
        links: 1,
        json: None,
    };
    Ok(measure(&args, opts)?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dest: usize, via: usize, hops: u32) -> Route {
        Route {
            dest: format!("p{dest}"),
            next_hop: format!("p{via}"),
            hops,
            age_ms: 0,
            nick: None,
        }
    }

    #[test]
    fn expected_tables_on_a_ring() {
        let topo = Topology::ring(5);
        let alive: BTreeSet<usize> = (0..5).collect();
        let edges = topo.edges();
        let dist = hop_counts(5, &edges, &alive);
        assert_eq!(dist[0][2], Some(2));
        assert_eq!(dist[0][3], Some(2));
        let peers: HashMap<String, usize> = (0..5).map(|i| (format!("p{i}"), i)).collect();
        let good = [
            route(1, 1, 1),
            route(2, 1, 2),
            route(3, 4, 2),
            route(4, 4, 1),
        ];
        assert!(table_errors(0, &good, &dist, &edges, &peers, &alive).is_empty());
        // Wrong hop count, a next hop farther away, a missing route.
        let bad = [route(1, 1, 1), route(2, 4, 2), route(3, 4, 3)];
        let errs = table_errors(0, &bad, &dist, &edges, &peers, &alive);
        assert_eq!(errs.len(), 3, "{errs:?}");
        // Without the link 0-1, 1 is 4 hops away through 4.
        let without: Vec<_> = edges.iter().copied().filter(|&e| e != (0, 1)).collect();
        let dist = hop_counts(5, &without, &alive);
        assert_eq!(dist[0][1], Some(4));
        assert!(table_errors(0, &good, &dist, &without, &peers, &alive).len() >= 2);
    }

    #[test]
    fn link_choice() {
        // A line has no link whose loss keeps it connected; a ring's every link changes hops.
        assert!(links_by_impact(&Topology::line(4)).is_empty());
        let ring = links_by_impact(&Topology::ring(6));
        assert_eq!(ring.len(), 6);
        assert!(ring.iter().all(|&(_, c)| c > 0));
    }
}
