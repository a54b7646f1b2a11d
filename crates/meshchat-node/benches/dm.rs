//! Direct-message benchmark: chains of meshchat nodes (in this process, real libp2p over
//! loopback TCP), each dialing only its predecessor, so a DM from the first to the last crosses
//! every node. For each path length L it reports, once routes are known:
//!
//! - transmissions: DM and receipt frames handed to neighbours per DM (goal: L for the DM, L for
//!   the receipt);
//! - latency from `Handle::dm` to the recipient's `Event::Dm`, and to the sender's `delivered`
//!   (median and p99 of `--dms` DMs sent one after another), and the latency per hop (the
//!   slope of the one-way median over L);
//! - the time from start until the sender has a route to the recipient (first convergence).
//!
//! ```text
//! cargo bench -p meshchat-node --bench dm -- [--hops 1,2,3,4,6,8] [--dms 50]
//! ```

use std::time::{Duration, Instant};

use meshchat_node::{Config, DmState, Event, Handle, PeerId};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(60);

struct Node {
    handle: Handle,
    events: mpsc::Receiver<Event>,
    peer_id: PeerId,
    addr: libp2p::Multiaddr,
    _dir: tempfile::TempDir,
}

async fn start(name: &str, peer: Option<&Node>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::loopback(dir.path());
    config.nick = Some(name.to_owned());
    config.peers = peer.map(|p| vec![p.addr.clone()]).unwrap_or_default();
    config.target_peers = 0;
    config.dht = false;
    let (handle, events) = meshchat_node::spawn(config).await.unwrap();
    let info = handle.info().await.unwrap();
    let addr = info.listen[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(info.peer_id));
    Node {
        handle,
        events,
        peer_id: info.peer_id,
        addr,
        _dir: dir,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let hops: Vec<usize> = get("--hops")
        .unwrap_or_else(|| "1,2,3,4,6,8".into())
        .split(',')
        .map(|h| h.parse().expect("--hops list of numbers"))
        .collect();
    let dms: usize = get("--dms").map_or(50, |n| n.parse().expect("--dms N"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:>4} {:>12} {:>10} {:>10} {:>12} {:>12} {:>10}",
        "hops", "frames/dm", "route_ms", "oneway_p50", "oneway_p99", "deliv_p50", "deliv_p99"
    );
    let mut medians = Vec::new();
    for l in hops {
        let m = rt.block_on(run(l, dms));
        medians.push((l as f64, m));
    }
    if medians.len() >= 2 {
        // Least-squares slope of the one-way median over the path length.
        let n = medians.len() as f64;
        let (sx, sy) = medians
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        let (mx, my) = (sx / n, sy / n);
        let cov: f64 = medians.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
        let var: f64 = medians.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
        println!(
            "latency per hop (slope of the one-way median): {:.3} ms",
            cov / var
        );
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// One chain of `l` hops; returns the one-way median in ms.
async fn run(l: usize, dms: usize) -> f64 {
    let started = Instant::now();
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..=l {
        let n = start(&format!("n{i}"), nodes.last()).await;
        nodes.push(n);
    }
    let last = nodes.last().unwrap().peer_id;
    let first = nodes[0].peer_id;
    // Routes both ways and the recipient's profile.
    loop {
        let to_last = nodes[0].handle.routes().await.unwrap();
        let back = nodes[l].handle.routes().await.unwrap();
        let known = nodes[0].handle.whois(&last.to_string()).await.is_ok();
        if known
            && to_last
                .iter()
                .any(|r| r.dest == last && r.hops as usize == l)
            && back.iter().any(|r| r.dest == first && r.hops as usize == l)
        {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "no route over {l} hops");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let route_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut frames_before = 0;
    for n in &nodes {
        frames_before += n.handle.stats().await.unwrap().dm_frames_sent;
    }
    let (mut oneway, mut delivered) = (Vec::new(), Vec::new());
    let to = last.to_string();
    for i in 0..dms {
        let text = format!("dm {i}");
        let t0 = Instant::now();
        let sent = nodes[0].handle.dm(&to, &text).await.unwrap();
        let (head, tail) = nodes.split_at_mut(l);
        let recipient = &mut tail[0];
        loop {
            match tokio::time::timeout(DEADLINE, recipient.events.recv()).await {
                Ok(Some(Event::Dm(d))) if d.id == sent.id => break,
                Ok(Some(_)) => {}
                _ => panic!("DM {i} not delivered over {l} hops"),
            }
        }
        oneway.push(t0.elapsed().as_secs_f64() * 1000.0);
        let sender = &mut head[0];
        loop {
            match tokio::time::timeout(DEADLINE, sender.events.recv()).await {
                Ok(Some(Event::DmStatus { id, state, .. }))
                    if id == sent.id && state == DmState::Delivered =>
                {
                    break
                }
                Ok(Some(_)) => {}
                _ => panic!("no receipt for DM {i} over {l} hops"),
            }
        }
        delivered.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let mut frames_after = 0;
    for n in &nodes {
        frames_after += n.handle.stats().await.unwrap().dm_frames_sent;
    }
    let per_dm = (frames_after - frames_before) as f64 / dms as f64;
    let p50 = pct(&mut oneway, 0.5);
    println!(
        "{:>4} {:>12.2} {:>10.0} {:>10.2} {:>12.2} {:>12.2} {:>10.2}",
        l,
        per_dm,
        route_ms,
        p50,
        pct(&mut oneway, 0.99),
        pct(&mut delivered, 0.5),
        pct(&mut delivered, 0.99)
    );
    for n in nodes {
        n.handle.shutdown().await;
    }
    p50
}
