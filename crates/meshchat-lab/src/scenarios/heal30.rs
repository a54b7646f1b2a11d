//! `heal30`: a healed partition on 30 hosts, 1 000 messages per side (issue 18's measurement).
//!
//! Two random graphs of 15 hosts and degree 4 (hosts 0-14 and 15-29), joined by 4 links. The
//! links between the halves go down until no connection crosses; each half sends 1 000 messages
//! (50 a second); the links come back and the lab dials them. Asserted: every node shows all
//! 2 000 within 20 s of the heal (a periodic round per hop would take minutes), each once.
//! Reported: the time until the ends of the cross links and until every node had everything,
//! and the sync bytes per healed message and node. Not run by `cargo test` (about a minute on 2
//! cores): `sudo target/release/meshchat-lab run heal30 --bin target/release/meshchat`.

use super::pace;
use crate::lab::{Lab, LabOptions, Report, LOBBY};
use crate::topology::Topology;
use anyhow::{bail, Context as _, Result};
use std::time::{Duration, Instant};

const HALF: usize = 15;
const PER_HALF: usize = 1000;
const RATE_PER_HALF: f64 = 50.0;
const CROSS: [(usize, usize); 4] = [(0, 15), (4, 19), (8, 23), (12, 27)];

fn topology() -> Result<Topology> {
    let mut edges = Vec::new();
    for (offset, seed) in [(0, 18), (HALF, 81)] {
        let half = Topology::random(HALF, 4, seed)?;
        edges.extend(
            half.edges()
                .into_iter()
                .map(|(a, b)| (a + offset, b + offset)),
        );
    }
    edges.extend(CROSS);
    Topology::from_edges(
        2 * HALF,
        &edges,
        "two random graphs of 15, degree 4, 4 links between",
    )
}

/// Sync bytes `nodes` received so far, together.
fn sync_received(lab: &Lab, nodes: &[usize]) -> u64 {
    nodes
        .iter()
        .map(|&i| lab.node(i).stats().map_or(0, |s| s.sync_bytes_received))
        .sum()
}

pub fn heal30(opts: &LabOptions) -> Result<Report> {
    let mut lab = Lab::new(topology()?, opts.clone())?;
    lab.start_all()?;
    lab.warmup(lab.deadline(60))?;
    let a: Vec<usize> = (0..HALF).collect();
    let b: Vec<usize> = (HALF..2 * HALF).collect();
    let all: Vec<usize> = (0..2 * HALF).collect();
    let ids: Vec<Option<String>> = all.iter().map(|&i| lab.node(i).peer_id()).collect();
    let cut = lab.partition(&a)?;
    let crossing = |lab: &Lab| {
        let st = lab.hub.lock();
        a.iter().any(|&x| {
            b.iter().any(|&y| {
                ids[y]
                    .as_ref()
                    .is_some_and(|id| st.nodes[x].connected.contains_key(id))
            })
        })
    };
    let deadline = lab.deadline(120);
    while crossing(&lab) {
        if Instant::now() > deadline {
            bail!("connections across the cut still up");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let sync0 = sync_received(&lab, &all);
    let t = Instant::now();
    for k in 0..PER_HALF {
        pace(t, k, RATE_PER_HALF);
        for (name, half) in [('A', &a), ('B', &b)] {
            let from = half[k % half.len()];
            lab.node(from)
                .send_nowait(LOBBY, &format!("heal30 {name}#{k} from n{from}"))?;
        }
    }
    let sent = lab.hub.wait_until(lab.deadline(30), |st| {
        st.sent.values().filter(|s| !s.probe).count() >= 2 * PER_HALF
    });
    if !sent {
        bail!("not every send was answered");
    }
    let everything = lab.sent_ids(None);
    lab.log(format!("{} messages sent while split", everything.len()));

    let t = Instant::now();
    lab.heal(&cut)?;
    for (x, y) in CROSS {
        lab.dial(x, y)?;
    }
    let ends: Vec<usize> = CROSS.iter().flat_map(|&(x, y)| [x, y]).collect();
    lab.wait_nodes_have(&ends, &everything, t + Duration::from_secs(20))
        .context("the ends of the cross links")?;
    let ends_took = t.elapsed();
    lab.wait_nodes_have(&all, &everything, t + Duration::from_secs(20))
        .context("every node within 20 s of the heal")?;
    let all_took = t.elapsed();
    lab.check_no_duplicates()?;
    let sync1 = sync_received(&lab, &all);
    let healed = (PER_HALF * 2 * HALF) as u64;
    lab.notes.push(format!(
        "30 hosts, {PER_HALF} messages per half: the cross links' ends had all {} {ends_took:.1?} after the heal, every node {all_took:.1?}; {} sync bytes received, {:.0} per healed message and node",
        everything.len(),
        sync1 - sync0,
        (sync1 - sync0) as f64 / healed as f64
    ));
    lab.finish()
}
