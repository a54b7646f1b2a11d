//! Broadcast benchmark: N in-process meshchat nodes on loopback TCP, side by side with a baseline
//! of plain gossipsub using Strict signing (what libp2p's chat example does), on the same random
//! topology (each node dials 3 random earlier nodes: about 6 connections per node). Systems:
//! `meshchat` (rooms on the broadcast trees), `baseline` (gossipsub, `Strict`: every copy's
//! signature verified) and `gossipsub-best` (gossipsub at its best: each payload a signed
//! meshchat envelope, verified once by the application after gossipsub's duplicate filter, with
//! `validate_messages` and `report_message_validation_result`, content-addressed ids). (Meshchat
//! on gossipsub, the room path before the trees, was measured side by side in the last run that
//! had it: BENCHMARKS.md §1.)
//!
//! ```text
//! cargo bench -p meshchat-node --bench mesh -- [--nodes 10,50,100] [--step-secs 5] [--json FILE]
//! cargo bench -p meshchat-node --bench mesh -- --one meshchat:100 [--rates 40,60]
//! cargo bench -p meshchat-node --bench mesh -- --nodes 100 --systems meshchat,meshchat-private
//! ```
//!
//! `meshchat-private` is `meshchat` with every node in one passphrase room (PROTOCOL §10) and
//! the messages sent there: what sealing costs against a public room (issue 22).
//!
//! `--one SYSTEM:N` runs one system in this process; `--rates` replaces the rates stepped through.
//! Every step also reports the process's CPU time per node and delivered message (user + system),
//! the figure to compare when changing the per-message work.
//!
//! The DHT is off (it would add links to the topology); `BENCH_DHT=1` turns it on to see its cost.
//! For trying the broadcast trees' timers: `BENCH_IHAVE_MS=N` sets the announcement interval and
//! `BENCH_ANNOUNCE_EAGER=0` stops announcements to eager neighbours.
//!
//! Each (system, N) runs in a fresh child process (the binary re-executes itself with `--one`), so
//! memory and CPU figures do not leak from one run into the next. Figures per run:
//! - latency p50/p99 from publish to each other node's delivery, at 10 msg/s for 10 s, after a
//!   2 s warm-up at the same rate;
//! - copies of room messages received per delivered message (every copy that arrived,
//!   duplicates included; control traffic apart: tracker and profile envelopes, which ride the
//!   same trees, are counted in their own column, and announcements, grafts and prunes are not
//!   copies at all; see [`Counts`]);
//! - the highest rate (stepping up) at which p99 stays within 1 s and no node misses a message;
//! - resident memory per node (process RSS growth / N).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::{gossipsub, noise, tcp, yamux, Multiaddr, PeerId};
use meshchat_node::{Config, Event, Handle};
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

const TOPIC: &str = "bench";
/// Rates tried, in messages per second, after the fixed-rate latency run.
const RATES: &[u32] = &[
    20, 30, 45, 60, 75, 90, 110, 135, 160, 180, 240, 320, 400, 500, 650, 800,
];
/// A rate passes when p99 stays within this and nothing is missed.
const P99_LIMIT: Duration = Duration::from_secs(1);
/// How long stragglers are waited for after the last publish of a step.
const DRAIN: Duration = Duration::from_secs(3);
/// Baseline payload size: about the size of a meshchat envelope carrying the same text.
const BASELINE_PAYLOAD: usize = 140;
/// The idle window (no room message) that measures the control traffic's repeats.
const IDLE_SECS: u64 = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let step_secs: u64 = get("--step-secs").and_then(|s| s.parse().ok()).unwrap_or(5);
    let rates: Vec<u32> = match get("--rates") {
        Some(list) => list
            .split(',')
            .map(|r| r.trim().parse().expect("--rates R,R,..."))
            .collect(),
        None => RATES.to_vec(),
    };
    if let Some(one) = get("--one") {
        let (system, n) = one.split_once(':').expect("--one SYSTEM:N");
        let n: usize = n.parse().expect("N");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let report = rt.block_on(run_one(system, n, step_secs, &rates));
        println!("RESULT {}", report);
        rt.shutdown_timeout(Duration::from_secs(2));
        return;
    }
    let nodes: Vec<usize> = get("--nodes")
        .unwrap_or_else(|| "10,50,100".into())
        .split(',')
        .map(|s| s.trim().parse().expect("--nodes N,N,..."))
        .collect();
    let exe = std::env::current_exe().unwrap();
    let mut results = Vec::new();
    println!(
        "{:<18} {:>4} {:>9} {:>9} {:>12} {:>12} {:>11} {:>11}",
        "system", "N", "p50 ms", "p99 ms", "copies/msg", "control/msg", "max msg/s", "RSS/node KiB"
    );
    for &n in &nodes {
        let systems = get("--systems").unwrap_or_else(|| "meshchat,baseline,gossipsub-best".into());
        for system in systems.split(',').map(str::trim) {
            let out = std::process::Command::new(&exe)
                .args([
                    "--one",
                    &format!("{system}:{n}"),
                    "--step-secs",
                    &step_secs.to_string(),
                ])
                .arg("--bench")
                .output()
                .expect("child run");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
                eprintln!(
                    "{system} N={n} failed:\n{stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                continue;
            };
            // The child's per-step lines (latency, CPU, the trees' and the copies' counters).
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            let v: serde_like::Report = serde_like::Report::parse(line);
            println!(
                "{:<18} {:>4} {:>9.2} {:>9.2} {:>12.2} {:>12} {:>11} {:>11}",
                system,
                n,
                v.p50_ms,
                v.p99_ms,
                v.copies_per_msg,
                if system.starts_with("meshchat") {
                    format!("{:.2}", v.control_per_msg)
                } else {
                    "-".into()
                },
                v.max_rate,
                v.rss_per_node_kib
            );
            results.push(line.to_owned());
        }
    }
    if let Some(path) = get("--json") {
        std::fs::write(&path, format!("[{}]\n", results.join(",\n"))).expect("write --json");
        println!("wrote {path}");
    }
}

/// Deliveries seen by all nodes: (sequence number, arrival).
#[derive(Default)]
struct Recorder {
    sent: Mutex<HashMap<u64, Instant>>,
    arrivals: Mutex<Vec<(u64, Instant)>>,
}

impl Recorder {
    /// Deliveries of messages numbered `first` and up.
    fn arrivals_since(&self, first: u64) -> Vec<(u64, Instant)> {
        let all = self.arrivals.lock().unwrap();
        all.iter().filter(|(s, _)| *s >= first).copied().collect()
    }

    fn deliver(&self, text: &[u8]) {
        let now = Instant::now();
        let digits: Vec<u8> = text
            .iter()
            .skip(1)
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        if let Ok(seq) = std::str::from_utf8(&digits).unwrap_or("").parse() {
            self.arrivals.lock().unwrap().push((seq, now));
        }
    }
}

/// The room the meshchat systems publish in: the passphrase room of `meshchat-private`.
const PRIVATE_ROOM: &str = "bench";

enum Net {
    Meshchat(Vec<Handle>, &'static str),
    Baseline(Vec<mpsc::Sender<Vec<u8>>>),
}

struct Running {
    net: Net,
    rec: Arc<Recorder>,
    copies: Vec<Arc<AtomicU64>>,
    handles_for_stats: Vec<Handle>,
}

impl Running {
    async fn publish(&self, from: usize, seq: u64) {
        self.rec.sent.lock().unwrap().insert(seq, Instant::now());
        match &self.net {
            Net::Meshchat(h, room) => {
                let (h, room) = (h[from].clone(), *room);
                tokio::spawn(async move {
                    let _ = h.send(room, &format!("b{seq}")).await;
                });
            }
            Net::Baseline(tx) => {
                let mut payload = format!("b{seq}.").into_bytes();
                payload.resize(BASELINE_PAYLOAD, b'.');
                let _ = tx[from].send(payload).await;
            }
        }
    }

    /// The copy counters summed over the nodes. For the baseline every counted copy is a room
    /// message (gossipsub's own control messages never reach `message_id_fn`).
    async fn counts(&self) -> Counts {
        match &self.net {
            Net::Meshchat(..) => {
                let mut c = Counts::default();
                for h in &self.handles_for_stats {
                    let Ok(s) = h.stats().await else { continue };
                    c.gossip += s.copies_received;
                    c.duplicates += s.trees.duplicates;
                    c.control_first += s.tracker_checked + s.profiles_checked;
                    c.other_first += s.accepted + s.dm_flooded_relayed;
                }
                c
            }
            Net::Baseline(_) => Counts {
                gossip: self.copies.iter().map(|c| c.load(Ordering::Relaxed)).sum(),
                ..Counts::default()
            },
        }
    }

    /// The trees' counters summed over the nodes (meshchat only): what a step cost in pushes,
    /// announcements, repairs and dropped frames.
    async fn tree_counters(&self) -> Option<[u64; 6]> {
        if self.handles_for_stats.is_empty() {
            return None;
        }
        let mut sum = [0u64; 6];
        for h in &self.handles_for_stats {
            let Ok(s) = h.stats().await else { continue };
            let t = &s.trees;
            for (acc, v) in sum.iter_mut().zip([
                t.gossip_sent,
                t.ihave_sent,
                t.grafts_sent,
                t.prunes_sent,
                t.duplicates,
                s.broadcast_dropped,
            ]) {
                *acc += v;
            }
        }
        Some(sum)
    }
}

/// Copy counters summed over the nodes (meshchat: from `Stats`). The trees carry room
/// messages and control envelopes (the tracker's heartbeats and election messages, profiles)
/// alike, and the node counts every `Gossip` that arrived (`copies_received`) and every repeat
/// (`trees.duplicates`) without telling the kinds apart; first copies it does tell apart
/// (`accepted` for room messages, `tracker_checked` + `profiles_checked` for control).
#[derive(Default, Clone, Copy)]
struct Counts {
    /// Every `Gossip` received, duplicates included (all kinds).
    gossip: u64,
    /// Of `gossip`: repeats of an id already seen (all kinds).
    duplicates: u64,
    /// First copies of control envelopes (tracker, profiles).
    control_first: u64,
    /// First copies of everything else (room messages, flooded DMs).
    other_first: u64,
}

impl Counts {
    fn since(self, before: Counts) -> Counts {
        Counts {
            gossip: self.gossip - before.gossip,
            duplicates: self.duplicates - before.duplicates,
            control_first: self.control_first - before.control_first,
            other_first: self.other_first - before.other_first,
        }
    }

    /// Splits this window's copies into (room copies, control copies). Control copies are their
    /// first copies plus their repeats; the repeats of control envelopes are estimated with
    /// `control_dup_ratio` (repeats per control first copy), measured in a window with no room
    /// message (`idle`), where every copy is control traffic. The rest is room messages.
    fn split(self, idle: Counts) -> (u64, u64) {
        let ratio = if idle.control_first == 0 {
            0.0
        } else {
            idle.duplicates as f64 / idle.control_first as f64
        };
        let control_dups =
            ((self.control_first as f64 * ratio).round() as u64).min(self.duplicates);
        let control = self.control_first + control_dups;
        (self.gossip.saturating_sub(control), control)
    }
}

/// User plus system CPU time of this process so far (from `/proc/self/stat`, in clock ticks of
/// 10 ms: steps of several seconds make that resolution irrelevant).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces): utime and
    // stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn connected_i(connected: &[AtomicUsize], i: usize) -> usize {
    connected[i].load(Ordering::Relaxed)
}

/// Each node dials up to 3 random earlier nodes; returns the edge list.
fn topology(n: usize, rng: &mut rand::rngs::StdRng) -> Vec<(usize, usize)> {
    let mut edges = Vec::new();
    for i in 1..n {
        let mut targets: Vec<usize> = (0..i).collect();
        for _ in 0..3.min(i) {
            let j = targets.swap_remove(rng.gen_range(0..targets.len()));
            edges.push((i, j));
        }
    }
    edges
}

async fn run_one(system: &str, n: usize, step_secs: u64, rates: &[u32]) -> String {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let edges = topology(n, &mut rng);
    let mut degree = vec![0usize; n];
    for &(a, b) in &edges {
        degree[a] += 1;
        degree[b] += 1;
    }
    let rec = Arc::new(Recorder::default());
    let connected: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
    let rss_before = rss_kib();
    let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut addrs: Vec<Multiaddr> = Vec::new();
    let mut copies = Vec::new();
    let mut handles = Vec::new();
    let mut senders = Vec::new();
    for i in 0..n {
        let dials: Vec<Multiaddr> = edges
            .iter()
            .filter(|(a, _)| *a == i)
            .map(|(_, b)| addrs[*b].clone())
            .collect();
        let links_up = connected.clone();
        let (rec, connected) = (rec.clone(), connected.clone());
        if system.starts_with("meshchat") {
            let mut config = Config::loopback(dirs[i].path());
            config.in_memory_store = true;
            config.target_peers = 0;
            // The baseline has no DHT; ours is off too so both run on exactly this topology
            // (Kademlia lookups connect to the peers they ask). `BENCH_DHT=1` turns it on.
            config.dht = std::env::var_os("BENCH_DHT").is_some();
            if let Some(ms) = std::env::var("BENCH_IHAVE_MS")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                config.broadcast.ihave_interval = Duration::from_millis(ms);
            }
            if std::env::var("BENCH_ANNOUNCE_EAGER").is_ok_and(|v| v == "0") {
                config.broadcast.announce_to_eager = false;
            }
            config.nick = Some(format!("n{i}"));
            let own_dials = dials.clone();
            config.peers = dials;
            let (handle, mut events) = meshchat_node::spawn(config).await.unwrap();
            let info = handle.info().await.unwrap();
            addrs.push(
                info.listen[0]
                    .clone()
                    .with(libp2p::multiaddr::Protocol::P2p(info.peer_id)),
            );
            tokio::spawn(async move {
                while let Some(ev) = events.recv().await {
                    match ev {
                        Event::Message(m) if !m.own => rec.deliver(m.text.as_bytes()),
                        Event::PeerConnected { .. } => {
                            connected[i].fetch_add(1, Ordering::Relaxed);
                        }
                        Event::PeerDisconnected { .. } => {
                            connected[i].fetch_sub(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            });
            // The mesh forms one node at a time: this node's links are up before the next node
            // starts. All nodes share 127.0.0.1, and a node accepts at most 4 handshakes in
            // progress from one address (issue 24); many nodes dialing a popular node at once
            // went over it (a refused dial is not retried: `target_peers` is 0), and the mesh
            // then never formed. A link still missing after 2 s is dialed again.
            let mut redials = 0;
            let since = Instant::now();
            while connected_i(&links_up, i) < own_dials.len() {
                assert!(
                    since.elapsed() < Duration::from_secs(60),
                    "n{i}'s links did not form"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
                if since.elapsed() > Duration::from_secs(2 * (redials + 1)) {
                    redials += 1;
                    for a in &own_dials {
                        let _ = handle.connect(&a.to_string()).await;
                    }
                }
            }
            if redials > 0 {
                eprintln!("{system} N={n}: n{i} dialed its links again {redials} time(s)");
            }
            handles.push(handle);
        } else {
            let counter = Arc::new(AtomicU64::new(0));
            copies.push(counter.clone());
            let best = system == "gossipsub-best";
            let (addr, tx) = spawn_baseline(i, dials, counter, rec, connected, best).await;
            addrs.push(addr);
            senders.push(tx);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while (0..n).any(|i| connected[i].load(Ordering::Relaxed) < degree[i]) {
        if Instant::now() >= deadline {
            // Say who is short and what the nodes counted, before giving up.
            let short: Vec<String> = (0..n)
                .filter(|&i| connected[i].load(Ordering::Relaxed) < degree[i])
                .map(|i| {
                    format!(
                        "n{i} {}/{}",
                        connected[i].load(Ordering::Relaxed),
                        degree[i]
                    )
                })
                .collect();
            eprintln!(
                "{system} N={n}: {} nodes short of their links: {}",
                short.len(),
                short.join(", ")
            );
            for (i, h) in handles.iter().enumerate() {
                let (Ok(s), Ok(p)) = (h.stats().await, h.peers().await) else {
                    continue;
                };
                let hs = &s.handshakes;
                if connected[i].load(Ordering::Relaxed) < degree[i]
                    || hs.refused + hs.evicted + s.evicted_peers + s.broken_links > 0
                {
                    eprintln!(
                        "  n{i}: {} peers, handshakes refused {} evicted {}, evicted peers {}, broken links {}, blocked {}",
                        p.len(), hs.refused, hs.evicted, s.evicted_peers, s.broken_links, s.blocked_peers
                    );
                }
            }
            panic!("mesh did not form");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let gossipsub build its meshes (two heartbeats) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_per_node = rss_kib().saturating_sub(rss_before) / n as u64;
    if !handles.is_empty() {
        let mut conns = 0;
        for h in &handles {
            conns += h.peers().await.map(|p| p.len()).unwrap_or(0);
        }
        eprintln!(
            "{system} N={n}: {:.1} connected peers per node (topology: {:.1})",
            conns as f64 / n as f64,
            2.0 * edges.len() as f64 / n as f64
        );
    }
    let running = Running {
        net: if system.starts_with("meshchat") {
            let room = if system == "meshchat-private" {
                for h in &handles {
                    h.join_private(PRIVATE_ROOM, "bench passphrase")
                        .await
                        .expect("join the passphrase room");
                }
                PRIVATE_ROOM
            } else {
                "lobby"
            };
            Net::Meshchat(handles.clone(), room)
        } else {
            Net::Baseline(senders)
        },
        rec: rec.clone(),
        copies,
        handles_for_stats: handles,
    };

    let mut seq = 0u64;
    // Warm-up, not measured: the trees form on the first messages (new links start eager, the
    // first copies flood and the duplicates prune the links into a tree), as gossipsub's mesh
    // forms in its first heartbeats. The figures are for the steady state.
    let _ = step(&running, &mut rng, n, 10, 2, &mut seq).await;
    // An idle window (no room message, 3 s after the warm-up's stragglers): every copy in it is
    // control traffic, which gives the repeats per control envelope (see `Counts::split`).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_before = running.counts().await;
    tokio::time::sleep(Duration::from_secs(IDLE_SECS)).await;
    let idle = running.counts().await.since(idle_before);
    let copies_before = running.counts().await;
    let (p50, p99, missed, delivered) = step(&running, &mut rng, n, 10, 10, &mut seq).await;
    let window = running.counts().await.since(copies_before);
    let (room_copies, control_copies) = window.split(idle);
    let per = |x: u64| x as f64 / delivered.max(1) as f64;
    let copies_per_msg = per(room_copies);
    let control_per_msg = per(control_copies);
    let all_copies_per_msg = per(window.gossip);
    eprintln!("{system} N={n} at 10/s: p50 {p50:?} p99 {p99:?} missed {missed}");
    if system.starts_with("meshchat") {
        eprintln!(
            "  copies at 10/s: {} in all ({all_copies_per_msg:.3}/delivery), {} first room copies, {} room repeats, {} control ({control_per_msg:.3}/delivery: {} first, idle {} s: {} copies, {} first, {} repeats)",
            window.gossip,
            window.other_first,
            room_copies.saturating_sub(window.other_first),
            control_copies,
            window.control_first,
            IDLE_SECS,
            idle.gossip,
            idle.control_first,
            idle.duplicates,
        );
    }
    let mut max_rate = 0;
    for &rate in rates {
        let cpu_before = cpu_time();
        let trees_before = running.tree_counters().await;
        let (p50, p99, missed, delivered) =
            step(&running, &mut rng, n, rate, step_secs, &mut seq).await;
        let cpu_us = (cpu_time() - cpu_before).as_secs_f64() * 1e6;
        eprintln!(
            "{system} N={n} at {rate}/s: p50 {p50:?} p99 {p99:?} missed {missed}, CPU {:.0} us per node and message",
            cpu_us / delivered.max(1) as f64
        );
        if let (Some(a), Some(b)) = (trees_before, running.tree_counters().await) {
            let d: Vec<u64> = a.iter().zip(b).map(|(a, b)| b - a).collect();
            let per = |x: u64| x as f64 / delivered.max(1) as f64;
            eprintln!(
                "  per delivery: {:.3} pushes, {:.3} announcements, {:.4} grafted ids, {:.4} prunes, {:.4} duplicates, {:.4} frames dropped",
                per(d[0]), per(d[1]), per(d[2]), per(d[3]), per(d[4]), per(d[5])
            );
        }
        if missed > 0 || p99 > P99_LIMIT {
            break;
        }
        max_rate = rate;
    }
    format!(
        "{{\"system\":\"{system}\",\"nodes\":{n},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"missed_at_10\":{missed},\"copies_per_msg\":{copies_per_msg:.3},\"control_per_msg\":{control_per_msg:.3},\"all_copies_per_msg\":{all_copies_per_msg:.3},\"max_rate\":{max_rate},\"rss_per_node_kib\":{rss_per_node}}}",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
    )
}

/// Publishes at `rate` for `secs` from random nodes; returns p50, p99, missed and delivered.
async fn step(
    running: &Running,
    rng: &mut rand::rngs::StdRng,
    n: usize,
    rate: u32,
    secs: u64,
    seq: &mut u64,
) -> (Duration, Duration, usize, usize) {
    running.rec.arrivals.lock().unwrap().clear();
    let first = *seq;
    let count = rate as u64 * secs;
    let start = tokio::time::Instant::now();
    for k in 0..count {
        tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / rate as f64)).await;
        running.publish(rng.gen_range(0..n), *seq).await;
        *seq += 1;
    }
    let expected = count as usize * (n - 1);
    let drain_end = Instant::now() + DRAIN;
    while Instant::now() < drain_end {
        if running.rec.arrivals_since(first).len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = running.rec.sent.lock().unwrap().clone();
    let mut lat: Vec<Duration> = running
        .rec
        .arrivals_since(first)
        .iter()
        .filter_map(|(s, at)| sent.get(s).map(|t| at.saturating_duration_since(*t)))
        .collect();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(Duration::MAX)
    };
    let delivered = lat.len();
    (
        pct(0.5),
        pct(0.99),
        expected.saturating_sub(delivered),
        delivered,
    )
}

/// A plain gossipsub node with Strict signing: every copy's signature is verified. With `best`,
/// gossipsub at its best instead: no gossipsub signature, content-addressed ids, and each
/// payload a signed meshchat envelope that the application verifies once, after gossipsub's
/// duplicate filter (`validate_messages`, `report_message_validation_result`).
async fn spawn_baseline(
    i: usize,
    dials: Vec<Multiaddr>,
    copies: Arc<AtomicU64>,
    rec: Arc<Recorder>,
    connected: Arc<Vec<AtomicUsize>>,
    best: bool,
) -> (Multiaddr, mpsc::Sender<Vec<u8>>) {
    let author = meshchat_core::Keypair::generate(&mut rand::rngs::OsRng);
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| {
            let mut config = gossipsub::ConfigBuilder::default();
            config
                .heartbeat_interval(Duration::from_secs(1))
                .message_id_fn(move |m: &gossipsub::Message| {
                    copies.fetch_add(1, Ordering::Relaxed);
                    if best {
                        return gossipsub::MessageId::from(
                            meshchat_core::MessageId::of(&m.data).0.to_vec(),
                        );
                    }
                    let mut id = m.source.map(|p: PeerId| p.to_string()).unwrap_or_default();
                    id.push_str(&m.sequence_number.unwrap_or_default().to_string());
                    gossipsub::MessageId::from(id)
                });
            let (config, authenticity) = if best {
                (
                    config
                        .validation_mode(gossipsub::ValidationMode::Anonymous)
                        .validate_messages()
                        .build()
                        .unwrap(),
                    gossipsub::MessageAuthenticity::Anonymous,
                )
            } else {
                (
                    config
                        .validation_mode(gossipsub::ValidationMode::Strict)
                        .build()
                        .unwrap(),
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                )
            };
            let b: gossipsub::Behaviour = gossipsub::Behaviour::new(authenticity, config).unwrap();
            b
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    let topic = gossipsub::IdentTopic::new(TOPIC);
    swarm.behaviour_mut().subscribe(&topic).unwrap();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } =
            swarm.select_next_some().await
        {
            break address.with(libp2p::multiaddr::Protocol::P2p(*swarm.local_peer_id()));
        }
    };
    for d in dials {
        swarm.dial(d).unwrap();
    }
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(data) = rx.recv() => {
                    let data = if best { sign_text(&author, &data) } else { data };
                    let _ = swarm.behaviour_mut().publish(topic.clone(), data);
                }
                ev = swarm.select_next_some() => match ev {
                    libp2p::swarm::SwarmEvent::Behaviour(gossipsub::Event::Message {
                        propagation_source,
                        message_id,
                        message,
                    }) => {
                        if !best {
                            rec.deliver(&message.data);
                            continue;
                        }
                        // The one check per unique message, as meshchat's.
                        let text = open_text(message.data);
                        let verdict = if text.is_some() {
                            gossipsub::MessageAcceptance::Accept
                        } else {
                            gossipsub::MessageAcceptance::Reject
                        };
                        swarm.behaviour_mut().report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            verdict,
                        );
                        if let Some(text) = text {
                            rec.deliver(text.as_bytes());
                        }
                    }
                    libp2p::swarm::SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. }) => {
                        connected[i].fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                },
            }
        }
    });
    (addr, tx)
}

/// `text` (the baseline's payload, `b{seq}.` padded) as a signed room envelope, as a meshchat
/// node publishes it.
fn sign_text(author: &meshchat_core::Keypair, text: &[u8]) -> Vec<u8> {
    let seq = String::from_utf8_lossy(text)
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    let body = meshchat_core::room::Text {
        nick: "bench".into(),
        text: seq,
    }
    .encode()
    .unwrap();
    meshchat_core::Envelope::sign(
        author,
        meshchat_core::envelope::Draft {
            kind: meshchat_core::envelope::Kind::RoomText,
            target: "lobby",
            timestamp_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
            nonce: rand::random(),
            body: &body,
        },
    )
    .unwrap()
    .into_bytes()
}

/// The text of a valid signed room envelope (signature checked), or `None`.
fn open_text(data: Vec<u8>) -> Option<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let env = meshchat_core::Envelope::open(data, now).ok()?;
    meshchat_core::room::Text::decode(env.body())
        .ok()
        .map(|t| t.text)
}

/// Just enough parsing of our own one-line JSON result for the summary table.
mod serde_like {
    pub struct Report {
        pub p50_ms: f64,
        pub p99_ms: f64,
        pub copies_per_msg: f64,
        pub control_per_msg: f64,
        pub max_rate: u64,
        pub rss_per_node_kib: u64,
    }

    impl Report {
        pub fn parse(line: &str) -> Self {
            let v: serde_json::Value = serde_json::from_str(line).expect("result is JSON");
            Self {
                p50_ms: v["p50_ms"].as_f64().unwrap_or(f64::NAN),
                p99_ms: v["p99_ms"].as_f64().unwrap_or(f64::NAN),
                copies_per_msg: v["copies_per_msg"].as_f64().unwrap_or(f64::NAN),
                control_per_msg: v["control_per_msg"].as_f64().unwrap_or(f64::NAN),
                max_rate: v["max_rate"].as_u64().unwrap_or(0),
                rss_per_node_kib: v["rss_per_node_kib"].as_u64().unwrap_or(0),
            }
        }
    }
}
