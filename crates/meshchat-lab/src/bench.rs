//! `meshchat-lab bench`: N real nodes on a random graph of degree D (or any lab topology),
//! messages from random senders at a fixed total rate, after a warm-up at that rate that is not
//! measured (the trees form and the nodes finish starting up), measuring
//! - delivery latency: event arrival at the lab minus the time the `send` command was written
//!   (one machine, one clock), per (message, receiving node) and per message until the last node;
//! - sustained throughput: messages shown on every node per second of sending;
//! - CPU seconds (`/proc/<pid>/stat` utime + stime) and RSS (`VmRSS`) of every node process;
//! - how each delivery came, from the nodes' `stats` after the run: by eager push, after a
//!   graft (the trees' lazy path), or by history sync (issue 25).
//!
//! Output: a JSON document (to a file with `--json`) and a short table on stdout.

pub mod files;

use crate::lab::{Lab, LabOptions, LOBBY};
use crate::sys;
use crate::topology::Topology;
use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Benchmark parameters.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    /// Hosts.
    pub nodes: usize,
    /// Degree of the random graph.
    pub degree: usize,
    /// Messages per second, all senders together.
    pub rate: f64,
    /// Seconds of sending, measured.
    pub duration: f64,
    /// Seconds of sending at the same rate before the measured part (the trees form on the first
    /// messages; the nodes finish starting up), as BENCHMARKS §1's in-process benchmark does.
    pub warmup: f64,
    /// Optional per-link bandwidth limit (tc rate, e.g. `1mbit`).
    pub bandwidth: Option<String>,
    /// Seed for the graph and the choice of senders.
    pub seed: u64,
    /// Where to write the JSON result.
    pub json: Option<PathBuf>,
    /// Another topology than the random graph (`Topology::parse`'s syntax, e.g. `line:8`).
    pub topology: Option<String>,
    /// Where to write every delivery as CSV (message, sender, receiver, hops between them, when
    /// it was sent after the first send, latency), to see where a tail comes from.
    pub deliveries: Option<PathBuf>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl Percentiles {
    fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
        Percentiles {
            count: v.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: *v.last().expect("non-empty"),
        }
    }
}

/// Resource use of one node process.
#[derive(Debug, Clone, Serialize)]
pub struct ProcStats {
    /// Host index.
    pub node: usize,
    /// CPU seconds used during the measured window.
    pub cpu_s: f64,
    /// CPU seconds since the process started.
    pub cpu_total_s: f64,
    /// Resident set size at the end, KiB.
    pub rss_kib: u64,
}

/// The benchmark result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// Hosts.
    pub nodes: usize,
    /// Degree.
    pub degree: usize,
    /// Topology description.
    pub topology: String,
    /// Offered rate, messages/s.
    pub rate: f64,
    /// Sending time, s.
    pub duration_s: f64,
    /// Seconds of unmeasured sending before.
    pub warmup_s: f64,
    /// Bandwidth limit per link, if any.
    pub bandwidth: Option<String>,
    /// Messages sent.
    pub sent: usize,
    /// Messages shown on every node.
    pub fully_delivered: usize,
    /// Fully delivered messages per second, from the first send to the last full delivery.
    pub delivered_msgs_per_s: f64,
    /// Latency per (message, receiving node), own echo excluded.
    pub latency_per_node: Percentiles,
    /// Latency until the last node showed the message (fully delivered messages only).
    pub latency_all_nodes: Percentiles,
    /// Sum of CPU seconds over all processes during the window.
    pub cpu_total_s: f64,
    /// Mean RSS per process, KiB.
    pub rss_mean_kib: u64,
    /// Max RSS, KiB.
    pub rss_max_kib: u64,
    /// Per-process numbers.
    pub procs: Vec<ProcStats>,
    /// How the deliveries came during the measured part, summed over the nodes (the control
    /// envelopes' deliveries, such as the tracker's heartbeats, included).
    pub paths: Paths,
}

/// How deliveries came, from the nodes' counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Paths {
    /// First copies that came by a push nobody asked for (the eager path).
    pub pushed: u64,
    /// First copies that came after this node grafted the id (the lazy path).
    pub grafted: u64,
    /// Messages taken by history sync.
    pub synced: u64,
    /// Hops the trees' first copies travelled, summed (`hops / (pushed + grafted)`: the mean
    /// path length).
    pub hops: u64,
    /// Copies pushed to the nodes on the trees, duplicates included (`copies / (pushed +
    /// grafted)`: copies per node and message).
    pub copies: u64,
    /// Nodes whose counters could not be read.
    pub unread: usize,
}

impl Paths {
    /// The share of deliveries that did not come by eager push.
    pub fn lazy_share(&self) -> f64 {
        let all = self.pushed + self.grafted + self.synced;
        if all == 0 {
            return 0.0;
        }
        (self.grafted + self.synced) as f64 / all as f64
    }

    /// Mean hops of the trees' deliveries (0 with none).
    pub fn mean_hops(&self) -> f64 {
        let n = self.pushed + self.grafted;
        if n == 0 {
            return 0.0;
        }
        self.hops as f64 / n as f64
    }

    /// Copies pushed per delivery by the trees (0 with none).
    pub fn copies_per_delivery(&self) -> f64 {
        let n = self.pushed + self.grafted;
        if n == 0 {
            return 0.0;
        }
        self.copies as f64 / n as f64
    }

    /// What came after `before` (counters of the same nodes, read earlier).
    fn since(&self, before: &Paths) -> Paths {
        Paths {
            pushed: self.pushed.saturating_sub(before.pushed),
            grafted: self.grafted.saturating_sub(before.grafted),
            synced: self.synced.saturating_sub(before.synced),
            hops: self.hops.saturating_sub(before.hops),
            copies: self.copies.saturating_sub(before.copies),
            unread: self.unread.max(before.unread),
        }
    }
}

/// Runs the benchmark.
pub fn run(args: &BenchArgs, opts: &LabOptions) -> Result<BenchResult> {
    let topo = match &args.topology {
        Some(desc) => Topology::parse(desc)?,
        None => Topology::random(args.nodes, args.degree, args.seed)?,
    };
    let name = topo.name.clone();
    let mut lab = Lab::new(topo, opts.clone())?;
    if let Some(rate) = &args.bandwidth {
        for (a, b) in lab.topo().edges() {
            lab.bandwidth(a, b, Some(rate))?;
        }
    }
    lab.start_all()?;
    lab.warmup(lab.deadline(120))?;
    let tck = sys::clk_tck();
    let pids: Vec<Option<u32>> = (0..lab.n()).map(|i| lab.pid(i)).collect();
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0xbe4c);
    let warmup = (args.rate * args.warmup).round() as usize;
    if warmup > 0 {
        lab.log(format!(
            "warm-up: {warmup} messages at {}/s, not measured",
            args.rate
        ));
        send_at_rate(&mut lab, &mut rng, warmup, args.rate, "warm-up")?;
    }
    let cpu0: Vec<f64> = pids
        .iter()
        .map(|p| p.and_then(|p| sys::cpu_seconds(p, tck)).unwrap_or(0.0))
        .collect();
    let paths0 = paths(&lab);

    let total = (args.rate * args.duration).round().max(1.0) as usize;
    let start = Instant::now();
    lab.log(format!("sending {total} messages at {}/s", args.rate));
    send_at_rate(&mut lab, &mut rng, total, args.rate, "bench")?;
    // Wait for the ids of all sends, then for delivery (bounded; stragglers count as missing).
    let sent_count = |st: &crate::node::HubState| st.sent.values().filter(|s| !s.probe).count();
    lab.hub
        .wait_until(lab.deadline(30), |st| sent_count(st) >= warmup + total);
    let ids: Vec<String> = {
        let all = lab.sent_ids(None);
        let st = lab.hub.lock();
        all.into_iter()
            .filter(|id| st.sent.get(id).is_some_and(|s| s.at >= start))
            .collect()
    };
    if lab
        .wait_all_have(&ids, lab.deadline(30 + args.nodes as u64))
        .is_err()
    {
        lab.log("not every message reached every node; counting what arrived");
    }
    let cpu1: Vec<f64> = pids
        .iter()
        .map(|p| p.and_then(|p| sys::cpu_seconds(p, tck)).unwrap_or(0.0))
        .collect();
    let procs: Vec<ProcStats> = pids
        .iter()
        .enumerate()
        .map(|(i, p)| ProcStats {
            node: i,
            cpu_s: cpu1[i] - cpu0[i],
            cpu_total_s: cpu1[i],
            rss_kib: p.and_then(sys::rss_kib).unwrap_or(0),
        })
        .collect();

    let mut csv = String::from("msg,sender,receiver,hops,sent_ms,latency_ms\n");
    let (per_node, per_msg, last_full) = {
        let st = lab.hub.lock();
        let mut per_node = Vec::new();
        let mut per_msg = Vec::new();
        let mut last_full: Option<Instant> = None;
        for (k, id) in ids.iter().enumerate() {
            let Some(s) = st.sent.get(id) else { continue };
            let hops = args
                .deliveries
                .is_some()
                .then(|| lab.topo().hops_from(s.node));
            let mut worst = Some(Duration::ZERO);
            for (i, n) in st.nodes.iter().enumerate() {
                match n.received.get(id) {
                    Some(r) => {
                        let lat = r.at.saturating_duration_since(s.at);
                        if i != s.node {
                            per_node.push(lat.as_secs_f64() * 1e3);
                            if let Some(hops) = &hops {
                                csv.push_str(&format!(
                                    "{k},{},{i},{},{:.3},{:.3}\n",
                                    s.node,
                                    hops[i],
                                    s.at.saturating_duration_since(start).as_secs_f64() * 1e3,
                                    lat.as_secs_f64() * 1e3
                                ));
                            }
                        }
                        worst = worst.map(|w| w.max(lat));
                    }
                    None => worst = None,
                }
            }
            if let Some(w) = worst {
                per_msg.push(w.as_secs_f64() * 1e3);
                let done = s.at + w;
                last_full = Some(last_full.map_or(done, |l| l.max(done)));
            }
        }
        (per_node, per_msg, last_full)
    };
    let fully = per_msg.len();
    let window = last_full
        .map(|l| l.saturating_duration_since(start).as_secs_f64())
        .unwrap_or(0.0);
    let paths = paths(&lab).since(&paths0);
    let rss: Vec<u64> = procs.iter().map(|p| p.rss_kib).collect();
    let result = BenchResult {
        nodes: args.nodes,
        degree: args.degree,
        topology: name,
        rate: args.rate,
        duration_s: args.duration,
        warmup_s: args.warmup,
        bandwidth: args.bandwidth.clone(),
        sent: ids.len(),
        fully_delivered: fully,
        delivered_msgs_per_s: if window > 0.0 {
            fully as f64 / window
        } else {
            0.0
        },
        latency_per_node: Percentiles::of(per_node),
        latency_all_nodes: Percentiles::of(per_msg),
        cpu_total_s: procs.iter().map(|p| p.cpu_s).sum(),
        rss_mean_kib: rss.iter().sum::<u64>() / rss.len().max(1) as u64,
        rss_max_kib: rss.iter().copied().max().unwrap_or(0),
        procs,
        paths,
    };
    lab.finish()?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)? + "\n")?;
    }
    if let Some(path) = &args.deliveries {
        std::fs::write(path, csv)?;
    }
    Ok(result)
}

/// Sends `count` messages from random nodes at `rate` a second, their texts starting with
/// `label`.
fn send_at_rate(
    lab: &mut Lab,
    rng: &mut StdRng,
    count: usize,
    rate: f64,
    label: &str,
) -> Result<()> {
    let start = Instant::now();
    for k in 0..count {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let from = rng.gen_range(0..lab.n());
        lab.node(from)
            .send_nowait(LOBBY, &format!("{label} #{k} from n{from}"))?;
    }
    Ok(())
}

/// How the deliveries came so far, summed over the nodes' counters.
fn paths(lab: &Lab) -> Paths {
    let mut paths = Paths::default();
    for i in 0..lab.n() {
        match lab.node(i).stats() {
            Ok(s) => {
                paths.pushed += s.delivered_pushed;
                paths.grafted += s.delivered_grafted;
                paths.synced += s.synced;
                paths.hops += s.delivered_hops;
                paths.copies += s.copies_received;
            }
            Err(_) => paths.unread += 1,
        }
    }
    paths
}

/// A short human-readable table.
pub fn table(r: &BenchResult) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "bench: {} nodes, degree {}, {} msg/s for {}s{}\n",
        r.nodes,
        r.degree,
        r.rate,
        r.duration_s,
        r.bandwidth
            .as_ref()
            .map(|b| format!(", links limited to {b}"))
            .unwrap_or_default()
    ));
    s.push_str(&format!(
        "  delivered to all  {:>6} / {:<6}  ({:.1} msg/s sustained)\n",
        r.fully_delivered, r.sent, r.delivered_msgs_per_s
    ));
    s.push_str("  latency (ms)          p50      p99      max\n");
    for (label, p) in [
        ("  per node         ", &r.latency_per_node),
        ("  to all nodes     ", &r.latency_all_nodes),
    ] {
        s.push_str(&format!(
            "{label}{:>8.1} {:>8.1} {:>8.1}\n",
            p.p50_ms, p.p99_ms, p.max_ms
        ));
    }
    s.push_str(&format!(
        "  cpu during run    {:.2} s total, {:.3} s/process; rss mean {} KiB, max {} KiB\n",
        r.cpu_total_s,
        r.cpu_total_s / r.nodes.max(1) as f64,
        r.rss_mean_kib,
        r.rss_max_kib
    ));
    s.push_str(&format!(
        "  deliveries        {} by eager push, {} after a graft, {} by sync ({:.2} % not pushed{}); {:.2} hops on average, {:.2} copies each\n",
        r.paths.pushed,
        r.paths.grafted,
        r.paths.synced,
        r.paths.lazy_share() * 100.0,
        if r.paths.unread > 0 {
            format!("; {} nodes unread", r.paths.unread)
        } else {
            String::new()
        },
        r.paths.mean_hops(),
        r.paths.copies_per_delivery()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_since_and_mean_hops() {
        let before = Paths {
            pushed: 10,
            grafted: 1,
            synced: 2,
            hops: 40,
            copies: 12,
            unread: 0,
        };
        let after = Paths {
            pushed: 40,
            grafted: 1,
            synced: 2,
            hops: 100,
            copies: 51,
            unread: 1,
        };
        let d = after.since(&before);
        assert_eq!(
            (d.pushed, d.grafted, d.synced, d.hops, d.copies, d.unread),
            (30, 0, 0, 60, 39, 1)
        );
        assert_eq!(d.mean_hops(), 2.0);
        assert_eq!(d.copies_per_delivery(), 1.3);
        assert_eq!(Paths::default().mean_hops(), 0.0);
        assert_eq!(Paths::default().copies_per_delivery(), 0.0);
    }

    #[test]
    fn percentiles() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!(p.count, 100);
        assert_eq!(p.p50_ms, 51.0);
        assert_eq!(p.p99_ms, 99.0);
        assert_eq!(p.max_ms, 100.0);
        assert_eq!(Percentiles::of(vec![]).count, 0);
    }
}
