//! The scenarios: each is a Rust function from [`LabOptions`] to a [`Report`] that builds a
//! topology, drives nodes, injects faults and asserts outcomes, failing with a readable error.
//!
//! To add one: write `fn my_scenario(opts: &LabOptions) -> Result<Report>` here (or in a new
//! module), add it to [`ALL`], and add a test in `tests/netns/scenarios.rs` that calls
//! [`run`]. See `docs/LAB.md`.

use crate::lab::{Lab, LabOptions, Report, LOBBY};
use crate::topology::Topology;
use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

mod clock_skew;
mod disk_full;
mod dm;
mod file_line;
mod heal30;
mod nat;
mod partition_sync;
mod private;
pub mod routes;
pub mod tracker;
mod trees_load;
pub use dm::{dm_line, dm_offline, dm_profiles};
pub use partition_sync::partition_sync;
pub use routes::routes30;
pub use tracker::{tracker_line, tracker_named, tracker_partition};

/// A named scenario.
pub struct Scenario {
    /// Name used by `meshchat-lab run NAME`.
    pub name: &'static str,
    /// One line about what it checks.
    pub about: &'static str,
    /// The scenario itself.
    pub run: fn(&LabOptions) -> Result<Report>,
}

/// Every scenario, in the order `run all` runs them.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "chain5",
        about: "line of 5 hosts, each reaching only its neighbours: messages from both ends reach all",
        run: chain5,
    },
    Scenario {
        name: "mesh12",
        about: "random mesh of 12 hosts of degree 3: 200 messages from random senders, each shown exactly once everywhere",
        run: mesh12,
    },
    Scenario {
        name: "ring6-kill",
        about: "ring of 6: kill -9 two adjacent nodes while messages flow, restart them: no duplicates, nothing lost for survivors, stored history kept",
        run: ring6_kill,
    },
    Scenario {
        name: "lan-mdns",
        about: "LAN of 3 hosts, nodes given no addresses: mDNS discovery connects everyone, one message from each reaches all",
        run: lan_mdns,
    },
    Scenario {
        name: "partition-sync",
        about: "two rings of 5 split apart, 500 messages on each side, healed: history sync gives all 1000 to every node, once, in the same order, and to a node stopped for the whole run",
        run: partition_sync,
    },
    Scenario {
        name: "dm-line",
        about: "line of 5: a DM from one end to the other, by nick, is shown once, its receipt comes back (queued, sent, delivered); the relays keep no plaintext",
        run: dm_line,
    },
    Scenario {
        name: "dm-offline",
        about: "line of 5: a DM to a stopped node waits in a relay's custody while the sender stops too; the recipient gets it on return, the sender sees delivered on its return",
        run: dm_offline,
    },
    Scenario {
        name: "dm-profiles",
        about: "line of 5 linked one link at a time: every node knows every profile (can DM everyone) within 10 s",
        run: dm_profiles,
    },
    Scenario {
        name: "routes30",
        about: "random graph of 30, degree 3: time until every routing table is right after a link fails and after it comes back (measured, and asserted within 120 s)",
        run: routes30,
    },
    Scenario {
        name: "clock-skew",
        about: "line of 5 under libfaketime, n0 10 min ahead and n4 a year behind: both are told, each refusal names the neighbour, and what they send and receive follows PROTOCOL §1 (issue 18)",
        run: clock_skew::clock_skew,
    },
    Scenario {
        name: "disk-full",
        about: "line of 3, n1's data dir a 4 MiB tmpfs filled up: n1 keeps relaying (messages and a DM), warns once, says when it stores again and catches up at once; a restart keeps what it stored (issue 18)",
        run: disk_full::disk_full,
    },
    Scenario {
        name: "file-line",
        about: "line of 4, n1–n2 at 10 Mbit/s: a 100 MiB room file from n0 to n3, n3 killed halfway and restarted: it resumes, only the missing part is sent again, the bytes match, the relays keep none (issue 20)",
        run: file_line::file_line,
    },
    Scenario {
        name: "private-line",
        about: "line of 5, the middle host in no private room: an invite room and a passphrase room talk across it from both ends; the middle's files hold no text, room name or passphrase (issue 22)",
        run: private::private_line,
    },
    Scenario {
        name: "private-partition",
        about: "line of 4 in one invite room, cut in two: a removal on one side, a message on the other; healed: one membership everywhere, the removed member read the message written before its side heard, nothing after (issue 22)",
        run: private::private_partition,
    },
    Scenario {
        name: "heal30",
        about: "two random graphs of 15 joined by 4 links, split, 1000 messages per side, healed: every node has all 2000 within 20 s (a measurement, not run by cargo test; issue 18)",
        run: heal30::heal30,
    },
    Scenario {
        name: "trees-load",
        about: "random graph of 30, degree 4, random senders at 20 msg/s for 10 s: every message reaches every node, and at most 5 % of deliveries come other than by eager push (issue 25)",
        run: trees_load::trees_load,
    },
    Scenario {
        name: "tracker-line",
        about: "line of 6 (+1 joining later): the far end, ranked highest, is the tracker; kill -9 it: one new tracker, all registered, who complete; a node knowing one address joins and gets the roster; the old tracker returns and takes over: still one",
        run: tracker_line,
    },
    Scenario {
        name: "tracker-partition",
        about: "line of 6 cut in two halves: one tracker each; healed: one tracker, who complete everywhere",
        run: tracker_partition,
    },
    Scenario {
        name: "tracker-named",
        about: "LAN of 6, no mDNS: two preferred trackers named with --tracker ADDR; the elected one dies: the other takes over, nothing stalls",
        run: tracker_named,
    },
    Scenario {
        name: "nat-punch",
        about: "public node + two hosts behind masquerading routers: chat through it, private then relayed, hole punching gives a direct connection, the relayed one closes, chat again",
        run: nat::nat_punch,
    },
    Scenario {
        name: "nat-symmetric",
        about: "two hosts behind NATs that map every connection to a new port: hole punching fails, both stay relayed and say so, and chat over the relay",
        run: nat::nat_symmetric,
    },
    Scenario {
        name: "nat-upnp",
        about: "a host behind a UPnP router (miniupnpd) maps its port, says it is mapped, and the public node dials it there",
        run: nat::nat_upnp,
    },
];

/// Looks a scenario up by name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    ALL.iter().find(|s| s.name == name)
}

/// Runs the named scenario.
pub fn run(name: &str, opts: &LabOptions) -> Result<Report> {
    let Some(s) = find(name) else {
        let names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
        bail!("unknown scenario {name:?}; known: {}", names.join(", "));
    };
    let mut report = (s.run)(opts)?;
    report.name = s.name.to_string();
    Ok(report)
}

/// Host `i`'s peer id (known once it has been ready).
pub(crate) fn peer(lab: &Lab, i: usize) -> Result<String> {
    lab.node(i)
        .peer_id()
        .ok_or_else(|| anyhow::anyhow!("n{i} has no peer id yet"))
}

/// Sleeps until `start + k / rate` (pacing only, never used to wait for an outcome).
pub(crate) fn pace(start: Instant, k: usize, rate: f64) {
    let due = start + Duration::from_secs_f64(k as f64 / rate);
    if let Some(d) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

/// Line of 5: check reachability rules with pings, then 10 messages from each end must reach
/// every node exactly once and be stored identically everywhere.
pub fn chain5(opts: &LabOptions) -> Result<Report> {
    let mut lab = Lab::new(Topology::line(5), opts.clone())?;
    let checks = lab.net.verify_isolation(16)?;
    lab.notes.push(format!(
        "reachability: {checks} ping checks (neighbours only) passed"
    ));
    lab.start_all()?;
    lab.warmup(lab.deadline(60))?;
    let mut ids = Vec::new();
    for k in 0..10 {
        ids.push(lab.node(0).send(LOBBY, &format!("from n0 #{k}"))?);
        ids.push(lab.node(4).send(LOBBY, &format!("from n4 #{k}"))?);
    }
    lab.wait_all_have(&ids, lab.deadline(30))?;
    lab.log("all 20 messages shown on all 5 nodes");
    lab.check_no_duplicates()?;
    lab.check_histories(LOBBY, &[0, 1, 2, 3, 4], &ids)?;
    lab.check_health()?;
    lab.notes
        .push("20 messages from both ends shown once on all 5 nodes; histories equal".into());
    lab.finish()
}

/// Random mesh of 12 hosts, degree 3 (seeded): 200 messages from random senders at ~40/s.
pub fn mesh12(opts: &LabOptions) -> Result<Report> {
    let topo = Topology::random(12, 3, 12)?;
    let mut lab = Lab::new(topo, opts.clone())?;
    let checks = lab.net.verify_isolation(16)?;
    lab.notes
        .push(format!("reachability: {checks} ping checks passed"));
    lab.start_all()?;
    lab.warmup(lab.deadline(60))?;
    let mut rng = StdRng::seed_from_u64(0x3e5c);
    let mut ids = Vec::with_capacity(200);
    let start = Instant::now();
    for k in 0..200 {
        pace(start, k, 40.0);
        let from = rng.gen_range(0..lab.n());
        ids.push(
            lab.node(from)
                .send(LOBBY, &format!("mesh12 #{k} from n{from}"))?,
        );
    }
    lab.log("200 messages sent");
    lab.wait_all_have(&ids, lab.deadline(60))?;
    lab.log("all 200 messages shown on all 12 nodes");
    lab.check_no_duplicates()?;
    let all: Vec<usize> = (0..lab.n()).collect();
    lab.check_histories(LOBBY, &all, &ids)?;
    lab.check_health()?;
    lab.notes
        .push("200 messages shown exactly once on all 12 nodes; histories equal".into());
    lab.finish()
}

/// Ring 0..5; nodes 1 and 2 (adjacent, so 0-5-4-3 stays connected) are killed with SIGKILL
/// while the survivors keep sending, then restarted on the same data dirs.
///
/// What must hold, and is asserted:
/// - no node shows any message twice, across its restarts;
/// - every survivor (0, 3, 4, 5) shows every message sent by a survivor, before, during and after
///   the kills, plus everything sent by anyone before the kills or after the restarts;
/// - survivors' stored histories are equal;
/// - a restarted node's history still holds everything it showed before being killed, and it
///   shows everything sent after its restart.
///
/// Not asserted: whether restarted nodes catch up on what was sent while they were down (that is
/// history sync's job); the count is reported as a note.
pub fn ring6_kill(opts: &LabOptions) -> Result<Report> {
    let topo = Topology::ring(6);
    let victims = [1usize, 2];
    let survivors = [0usize, 3, 4, 5];
    let removed: BTreeSet<usize> = victims.into_iter().collect();
    assert!(topo.is_connected_without(&removed));
    let mut lab = Lab::up(topo, opts.clone())?;

    // Phase 1: everyone sends, everyone shows everything.
    let mut before = Vec::new();
    for i in 0..6 {
        for k in 0..2 {
            before.push(lab.node(i).send(LOBBY, &format!("phase1 #{k} from n{i}"))?);
        }
    }
    lab.wait_all_have(&before, lab.deadline(30))?;
    lab.log("phase 1 delivered everywhere");

    // Phase 2: survivors send at ~20/s; victims send a little and are killed in the flow.
    let mut during_surv = Vec::new();
    let start = Instant::now();
    for k in 0..48 {
        pace(start, k, 20.0);
        match k {
            6 => {
                lab.node(1)
                    .send(LOBBY, "phase2 from n1 right before its kill")?;
            }
            8 => lab.kill(1)?,
            18 => {
                lab.node(2)
                    .send(LOBBY, "phase2 from n2 right before its kill")?;
            }
            20 => lab.kill(2)?,
            _ => {}
        }
        let from = survivors[k % survivors.len()];
        during_surv.push(
            lab.node(from)
                .send(LOBBY, &format!("phase2 #{k} from n{from}"))?,
        );
    }
    let shown_before_kill: Vec<_> = victims.iter().map(|&v| lab.shown_ids(v)).collect();
    let mut must_surv = before.clone();
    must_surv.extend(during_surv.iter().cloned());
    lab.wait_nodes_have(&survivors, &must_surv, lab.deadline(30))?;
    lab.log("phase 2: survivors have every survivor message");

    // Phase 3: restart the victims, everyone sends again.
    for v in victims {
        lab.restart(v)?;
    }
    lab.warmup(lab.deadline(60))?;
    let mut after = Vec::new();
    for i in 0..6 {
        for k in 0..2 {
            after.push(lab.node(i).send(LOBBY, &format!("phase3 #{k} from n{i}"))?);
        }
    }
    lab.wait_all_have(&after, lab.deadline(30))?;
    lab.log("phase 3 delivered everywhere");

    lab.check_no_duplicates()?;
    let mut surv_must = must_surv.clone();
    surv_must.extend(after.iter().cloned());
    lab.check_histories(LOBBY, &survivors, &surv_must)?;
    for (vi, &v) in victims.iter().enumerate() {
        let mut must: Vec<String> = shown_before_kill[vi].iter().cloned().collect();
        must.extend(after.iter().cloned());
        must.extend(before.iter().cloned());
        let hist = lab.check_histories(LOBBY, &[v], &must)?;
        let ids: BTreeSet<&String> = hist[&v].iter().map(|m| &m.id).collect();
        let caught_up = during_surv.iter().filter(|id| ids.contains(id)).count();
        lab.notes.push(format!(
            "n{v}: kept {} messages shown before its kill; caught up on {caught_up}/{} sent while down or around it",
            shown_before_kill[vi].len(),
            during_surv.len()
        ));
    }
    lab.check_health()?;
    lab.notes.push(
        "no duplicates across restarts; survivors lost nothing; histories of survivors equal"
            .into(),
    );
    lab.finish()
}

/// LAN of 3 hosts (one bridge), nodes started with mDNS on and no `--peer`; the lab dials
/// nothing. Asserted: the namespaces are closed (only the lab's veths, peers in lab namespaces,
/// routes only via them) and each node runs in its host's namespace; every node reports
/// `peer_connected` for both others within 20 s (the time from the last `ready` to full
/// connectivity is reported); each host joined the mDNS group 224.0.0.251 on its lab interface
/// only; each node's `peers` lists both others, at addresses on the LAN's subnet only; then one
/// message from each node is shown exactly once on all three and stored identically.
pub fn lan_mdns(opts: &LabOptions) -> Result<Report> {
    let mut opts = opts.clone();
    opts.mdns = true;
    let mut lab = Lab::new(Topology::lan(3), opts)?;
    let checks = lab.net.verify_isolation(16)?;
    lab.notes
        .push(format!("reachability: {checks} ping checks passed"));
    let confined = lab.net.check_confined()?;
    lab.notes.push(format!("confinement: {confined}"));

    lab.start_nodes()?;
    let all: Vec<usize> = (0..lab.n()).collect();
    let pairs: Vec<(usize, usize)> = vec![(0, 1), (0, 2), (1, 2)];
    let linked_at = lab.wait_linked(&pairs, lab.deadline(20))?;
    let (first_ready, last_ready) = {
        let st = lab.hub.lock();
        let ready: Vec<Instant> = all.iter().filter_map(|&i| st.nodes[i].ready_at).collect();
        match (ready.iter().min(), ready.iter().max()) {
            (Some(&a), Some(&b)) if ready.len() == all.len() => (a, b),
            _ => bail!("a node has no ready time"),
        }
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let after_last = ms(linked_at.saturating_duration_since(last_ready));
    let after_first = ms(linked_at.saturating_duration_since(first_ready));
    lab.log(format!(
        "mDNS: full mesh {after_last:.0} ms after the last ready ({after_first:.0} ms after the first)"
    ));
    lab.notes.push(format!(
        "discovery: every node connected to both others by mDNS alone, {after_last:.0} ms after the last node's ready ({after_first:.0} ms after the first)"
    ));

    lab.check_node_netns()?;
    let mdns_group = Ipv4Addr::new(224, 0, 0, 251);
    let mut peer_addrs = 0;
    // The LAN's /24 (every host has one interface, on segment 0).
    let lan = {
        let o = lab.net.hosts[0].ifaces[0].addr.octets();
        format!("/ip4/{}.{}.{}.", o[0], o[1], o[2])
    };
    for i in 0..lab.n() {
        let members = lab.net.multicast_members(i, mdns_group)?;
        let lab_ifaces: Vec<&str> = lab.net.hosts[i]
            .ifaces
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        if members.is_empty() || members.iter().any(|m| !lab_ifaces.contains(&m.as_str())) {
            bail!(
                "n{i}: mDNS group {mdns_group} joined on {members:?}, expected the lab interfaces {lab_ifaces:?}"
            );
        }
        let peers = lab.node(i).peers()?;
        for j in all.iter().filter(|&&j| j != i) {
            let id = lab.node(*j).peer_id();
            if !peers.iter().any(|p| Some(&p.peer_id) == id.as_ref()) {
                bail!("n{i}'s `peers` answer does not list n{j}");
            }
        }
        for p in &peers {
            let off_lan: Vec<&String> = p.addrs.iter().filter(|a| !a.starts_with(&lan)).collect();
            if !off_lan.is_empty() {
                bail!(
                    "n{i} knows peer {} at addresses off the LAN: {off_lan:?}",
                    p.peer_id
                );
            }
            peer_addrs += p.addrs.len();
        }
    }
    lab.notes.push(format!(
        "every node runs in its host namespace; 224.0.0.251 joined only on the lab veth; `peers` lists both others everywhere, {peer_addrs} peer addresses, all on {}0/24",
        lan.trim_start_matches("/ip4/")
    ));

    lab.warmup(lab.deadline(30))?;
    let mut ids = Vec::new();
    for i in 0..lab.n() {
        ids.push(
            lab.node(i)
                .send(LOBBY, &format!("lan-mdns hello from n{i}"))?,
        );
    }
    lab.wait_all_have(&ids, lab.deadline(20))?;
    lab.log("one message from each node shown on all 3");
    lab.check_no_duplicates()?;
    lab.check_histories(LOBBY, &all, &ids)?;
    lab.check_health()?;
    lab.notes.push(
        "3 messages (one per node) shown exactly once on all 3 nodes; histories equal".into(),
    );
    lab.finish()
}
