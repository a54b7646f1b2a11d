//! What each hostile-peer attack of issue 24 costs a node: peak memory, CPU, what the attacker
//! gets back or through, and an honest neighbour's latency through the node meanwhile.
//!
//! ```text
//! cargo bench -p meshchat-node --bench attacks [-- --only NAME]
//! ```
//!
//! Three nodes in this process on loopback, B - A - C, and a raw libp2p peer G (no meshchat
//! node: frames written by hand) connected to A. B posts a probe every 125 ms (8 a second,
//! under the per-author rate every relay enforces); C's arrival time minus B's send time is the
//! honest latency through A, for the probes sent while the attack runs. Memory is this process's peak resident
//! set during the attack (`VmHWM`, reset through `/proc/self/clear_refs` before it) minus what it
//! held before; CPU is this process's (all three nodes and G). Attacks (`none` is the same run
//! without one):
//!
//! - `graft-repeat`: G's own ~60 KB message, then one frame of 63 Grafts naming it 512 times.
//! - `graft-all`: 200 of G's ~60 KB messages, then 4 frames of 63 Grafts naming all of them.
//! - `ihave-flood`: 10 s of frames of 60 IHaves of 500 ids that never come.
//! - `fresh-keys`: 20 s of messages at ~3450 a second, each signed by a new key.
//! - `silent-sockets`: 32 sockets from 4 addresses that never finish a handshake, then a
//!   newcomer dials A: the time it takes to get in.
//!
//! Uses only what the node offered before issue 24, so the same file runs on the code before.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::PeerId;
use meshchat_core::broadcast::wire::{self, Message};
use meshchat_core::{Keypair, MessageId};
use meshchat_node::behaviour::broadcast::PROTOCOL;
use meshchat_node::Event;
use support::{raw, TestNode};

fn main() {
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| attack | peak RSS +MiB | CPU s | honest p50 / p99 / max ms | probes lost | result |"
    );
    println!("|---|---|---|---|---|---|");
    for name in [
        "none",
        "graft-repeat",
        "graft-all",
        "ihave-flood",
        "fresh-keys",
        "silent-sockets",
    ] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let row = rt.block_on(run(name));
        println!("{row}");
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time of this process, in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn room_text(key: &Keypair, target: &str, text: &str) -> Vec<u8> {
    support::room_envelope(key, target, unix_ms(), rand::random(), text)
}

/// The attacker: a raw peer with its own broadcast stream to A, counting what A sends it.
struct Attacker {
    stream: libp2p::Stream,
    received: Arc<AtomicU64>,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Attacker {
    async fn connect(target: &TestNode) -> Self {
        let mut swarm = raw::swarm(libp2p::identity::Keypair::generate_ed25519());
        let mut control = swarm.behaviour().stream.new_control();
        let mut incoming = control.accept(PROTOCOL).unwrap();
        swarm.dial(target.addr.clone()).unwrap();
        let (pong_tx, mut pongs) = tokio::sync::watch::channel(0);
        let driver = tokio::spawn(async move {
            loop {
                if let SwarmEvent::Behaviour(e) = swarm.select_next_some().await {
                    raw::count_pong(&e, &pong_tx);
                }
            }
        });
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let reader = tokio::spawn(async move {
            while let Some((_, mut stream)) = incoming.next().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        counter.fetch_add(n as u64, Ordering::Relaxed);
                    }
                });
            }
        });
        let stream = raw::open_accepted(&mut control, target.peer_id, PROTOCOL, &mut pongs).await;
        Self {
            stream,
            received,
            _tasks: vec![driver, reader],
        }
    }

    async fn frame(&mut self, frame: &[u8]) -> bool {
        let mut out = (frame.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(frame);
        self.stream.write_all(&out).await.is_ok() && self.stream.flush().await.is_ok()
    }

    async fn publish(&mut self, envelopes: Vec<Vec<u8>>) -> bool {
        let messages = envelopes.into_iter().map(|e| Message::Gossip {
            id: MessageId::of(&e),
            hops: 0,
            own_tree: false,
            payload: e.into(),
        });
        for f in wire::pack(messages) {
            if !self.frame(&f).await {
                return false;
            }
        }
        true
    }

    /// Waits until A sends it less than 16 KiB in half a second (or 30 s have passed).
    async fn settled(&self) -> u64 {
        let end = Instant::now() + Duration::from_secs(30);
        let mut last = self.received.load(Ordering::Relaxed);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.received.load(Ordering::Relaxed);
            if now - last < 16 * 1024 || Instant::now() > end {
                return now;
            }
            last = now;
        }
    }
}

/// How long A takes to answer a `stats` request (its actor loop is busy meanwhile).
async fn answers_after(a: &TestNode) -> Duration {
    let t = Instant::now();
    let _ = a.handle.stats().await;
    t.elapsed()
}

/// Probe send times by text, and latencies at C.
#[derive(Default)]
struct Probes {
    sent: Mutex<HashMap<String, Instant>>,
    latencies: Mutex<Vec<(Instant, Duration)>>,
}

async fn run(name: &str) -> String {
    let a = TestNode::start("a", &[]).await;
    let mut b = TestNode::start("b", &[&a]).await;
    let mut c = TestNode::start("c", &[&a]).await;
    b.wait_peers(1).await;
    c.wait_peers(1).await;
    let probes = Arc::new(Probes::default());
    let mut c_events = std::mem::replace(&mut c.events, tokio::sync::mpsc::channel(1).1);
    let at_c = probes.clone();
    let c_task = tokio::spawn(async move {
        while let Some(e) = c_events.recv().await {
            if let Event::Message(m) = e {
                let sent = at_c.sent.lock().unwrap().get(&m.text).copied();
                if let Some(t) = sent {
                    at_c.latencies.lock().unwrap().push((t, t.elapsed()));
                }
            }
        }
    });
    let mut g = Attacker::connect(&a).await;
    let key = Keypair::from_secret_bytes(&rand::random());
    let big = "g".repeat(meshchat_core::room::MAX_TEXT_LEN - 16);

    // Preparation outside the measurement: G's cached messages.
    let mut ids = Vec::new();
    if name.starts_with("graft") {
        let n = if name == "graft-repeat" { 1 } else { 200 };
        let envs: Vec<Vec<u8>> = (0..n)
            .map(|i| room_text(&key, "nowhere", &format!("{i:08}{big}")))
            .collect();
        ids = envs.iter().map(|e| MessageId::of(e)).collect();
        g.publish(envs).await;
        a.wait_stats("G's messages taken", |s| s.accepted >= n as u64)
            .await;
        g.settled().await;
    }

    // The honest probe: B posts every 125 ms from before the attack to its end.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (probe_stop, probe_sent) = (stop.clone(), probes.clone());
    let b_handle = b.handle.clone();
    let prober = tokio::spawn(async move {
        let mut n = 0u64;
        while !probe_stop.load(Ordering::Relaxed) {
            let text = format!("probe {n}");
            probe_sent
                .sent
                .lock()
                .unwrap()
                .insert(text.clone(), Instant::now());
            let _ = b_handle.send("lobby", &text).await;
            n += 1;
            tokio::time::sleep(Duration::from_millis(125)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss0 = status_kib("VmRSS:");
    let cpu0 = cpu_secs();
    let got0 = g.received.load(Ordering::Relaxed);
    let a0 = a.handle.stats().await.unwrap();
    let c0 = c.handle.stats().await.unwrap();
    let start = Instant::now();
    let result = match name {
        "none" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            String::new()
        }
        "graft-repeat" => {
            g.frame(&wire::encode(&vec![Message::Graft(vec![ids[0]; 512]); 63]))
                .await;
            let stalled = answers_after(&a).await;
            let got = g.settled().await - got0;
            format!(
                "A answered stats after {stalled:.2?}; sent G {} KiB",
                got >> 10
            )
        }
        "graft-all" => {
            let frame = wire::encode(&vec![Message::Graft(ids.clone()); 63]);
            for _ in 0..4 {
                g.frame(&frame).await;
            }
            let stalled = answers_after(&a).await;
            let got = g.settled().await - got0;
            format!(
                "A answered stats after {stalled:.2?}; sent G {} KiB",
                got >> 10
            )
        }
        "ihave-flood" => {
            let mut n = 0u64;
            let mut entries = 0u64;
            while start.elapsed() < Duration::from_secs(10) {
                let flood: Vec<Message> = (0..60)
                    .map(|_| {
                        Message::IHave(
                            (0..500)
                                .map(|_| {
                                    n += 1;
                                    (MessageId::of(&n.to_be_bytes()), 0)
                                })
                                .collect(),
                        )
                    })
                    .collect();
                entries += 30_000;
                if !g.frame(&wire::encode(&flood)).await {
                    break;
                }
            }
            let got = g.received.load(Ordering::Relaxed) - got0;
            format!("{entries} ids announced; A sent G {} KiB", got >> 10)
        }
        "fresh-keys" => {
            let mut sent = 0u64;
            let mut open = true;
            while open && start.elapsed() < Duration::from_secs(20) {
                let due = (start.elapsed().as_secs_f64() * 3450.0) as u64;
                let batch: Vec<Vec<u8>> = (sent..due)
                    .map(|i| {
                        let k = Keypair::from_secret_bytes(&rand::random());
                        room_text(&k, "nowhere", &format!("fresh {i}"))
                    })
                    .collect();
                sent = due;
                open = g.publish(batch).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (a1, c1) = (
                a.handle.stats().await.unwrap(),
                c.handle.stats().await.unwrap(),
            );
            format!(
                "{sent} sent, A took {}, C took {}",
                a1.accepted - a0.accepted,
                c1.accepted - c0.accepted
            )
        }
        "silent-sockets" => {
            let port = a
                .addr
                .iter()
                .find_map(|p| match p {
                    libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                    _ => None,
                })
                .unwrap();
            let mut idle = Vec::new();
            for host in 2..=5u8 {
                for _ in 0..8 {
                    let sock = tokio::net::TcpSocket::new_v4().unwrap();
                    sock.bind(([127, 0, 0, host], 0).into()).unwrap();
                    idle.push(sock.connect(([127, 0, 0, 1], port).into()).await.unwrap());
                }
            }
            let d = TestNode::start("d", &[]).await;
            let t = Instant::now();
            let mut tries = 0;
            while d.handle.connect(&a.addr.to_string()).await.is_err() {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let took = t.elapsed();
            drop(idle);
            format!("newcomer in after {took:.2?} ({tries} refused dials)")
        }
        _ => unreachable!(),
    };
    let cpu = cpu_secs() - cpu0;
    let peak = status_kib("VmHWM:").saturating_sub(rss0);
    let end = Instant::now();
    // The probes sent during the attack (at least the last second's, for the short ones).
    let from = start.min(end - Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(250)).await;
    stop.store(true, Ordering::Relaxed);
    prober.await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    c_task.abort();
    let sent_probes = probes
        .sent
        .lock()
        .unwrap()
        .values()
        .filter(|t| **t >= from && **t < end)
        .count() as u64;
    let mut l: Vec<Duration> = probes
        .latencies
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t >= from && *t < end)
        .map(|(_, d)| *d)
        .collect();
    l.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pick = |q: f64| l.get(((l.len() as f64 - 1.0) * q) as usize).copied();
    let (p50, p99, max) = (
        pick(0.5).map_or(f64::NAN, ms),
        pick(0.99).map_or(f64::NAN, ms),
        l.last().copied().map_or(f64::NAN, ms),
    );
    let _ = (b.events.try_recv(), g.stream.close().await);
    format!(
        "| {name} | {} | {cpu:.1} | {p50:.1} / {p99:.1} / {max:.1} | {} of {sent_probes} | {result} |",
        peak >> 10,
        sent_probes.saturating_sub(l.len() as u64),
    )
}

#[allow(dead_code)]
fn unused(_: PeerId) {}
