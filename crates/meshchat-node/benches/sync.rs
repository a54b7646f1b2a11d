//! History-sync benchmark: two meshchat nodes (in this process, real libp2p over loopback TCP)
//! whose databases differ by M messages; B connects to A and the clock runs until B has stored
//! all M. Reports the time, the sync bytes both ways, and the lower bound the issue sets the goal
//! against (one round trip plus M × envelope size / bandwidth).
//!
//! ```text
//! cargo bench -p meshchat-node --bench sync -- [--history 100000] [--rows 10,1000,10000,100000,same100000] [--mbit 1:1000]
//! ```
//!
//! A's history is H messages (`--history`, default 100 000) of ~100-byte texts (envelopes of
//! ~220 bytes), spread over the last day. `--rows`: M for each row; B starts with A's history
//! minus M messages (every (H/M)-th one missing, spread over the whole history, so the cost shown
//! grows with the difference M at a fixed history size). `sameN`: two identical histories of N
//! (M = 0). `--mbit R:M`: one row with M missing (of H) through a relay in this process that
//! limits each direction to R Mbit/s (token bucket, 16 KiB bursts). Every row uses fresh data
//! dirs.

use std::time::{Duration, Instant};

use meshchat_core::envelope::{Draft, Kind};
use meshchat_core::room::Text;
use meshchat_core::{Envelope, Keypair};
use meshchat_node::store::Store;
use meshchat_node::{Config, Multiaddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a row may take before it is reported as not converged.
const ROW_LIMIT: Duration = Duration::from_secs(600);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let rows = get("--rows").unwrap_or_else(|| "10,1000,10000,100000,same100000".into());
    let history: usize = get("--history")
        .map(|h| h.parse().expect("--history H"))
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:>14} {:>9} {:>9} {:>10} {:>12} {:>12} {:>10}",
        "row", "history", "missing", "time_ms", "bytes_sync", "bytes/miss", "bound_ms"
    );
    // Signed once, shared by the rows (signing 100 000 envelopes takes seconds).
    let mut envs = envelopes(history);
    for row in rows.split(',') {
        let (n, missing) = match row.strip_prefix("same") {
            Some(n) => (n.parse::<usize>().expect("sameN"), 0),
            None => (history, row.parse::<usize>().expect("M")),
        };
        if envs.len() != n {
            envs = envelopes(n);
        }
        rt.block_on(run_row(row, &envs, missing, None));
    }
    if let Some(spec) = get("--mbit") {
        let (rate, m) = spec.split_once(':').expect("--mbit R:M");
        let rate: f64 = rate.parse().expect("Mbit/s");
        let m: usize = m.parse().expect("M");
        if envs.len() != history {
            envs = envelopes(history);
        }
        rt.block_on(run_row(&format!("{m}@{rate}Mbit"), &envs, m, Some(rate)));
    }
}

/// B's share of `envs` when it lacks `missing` of them: every (len/missing)-th left out, so the
/// gaps are spread over the whole history (not one contiguous block).
fn all_but(envs: &[Envelope], missing: usize) -> Vec<Envelope> {
    assert!(missing <= envs.len(), "M larger than the history");
    if missing == 0 {
        return envs.to_vec();
    }
    let mut left_out = vec![false; envs.len()];
    for k in 0..missing {
        left_out[k * envs.len() / missing] = true;
    }
    envs.iter()
        .zip(left_out)
        .filter(|(_, out)| !out)
        .map(|(e, _)| e.clone())
        .collect()
}

/// Envelopes of a ~100-byte text, one author, over the last day.
fn envelopes(n: usize) -> Vec<Envelope> {
    let key = Keypair::from_secret_bytes(&[77; 32]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    (0..n)
        .map(|i| {
            let body = Text {
                nick: "bench".into(),
                text: format!("{i:08} {}", "lorem ipsum dolor sit amet ".repeat(3)),
            }
            .encode()
            .unwrap();
            Envelope::sign(
                &key,
                Draft {
                    kind: Kind::RoomText,
                    target: "lobby",
                    timestamp_ms: now - 86_400_000 + (i as u64 * 86_400_000 / n as u64),
                    nonce: i as u64,
                    body: &body,
                },
            )
            .unwrap()
        })
        .collect()
}

fn prefill(dir: &std::path::Path, envs: &[Envelope]) {
    let mut store = Store::open(&dir.join("meshchat.sqlite")).unwrap();
    store.join_room("lobby", 0).unwrap();
    store.set_setting("rooms_initialized", "1").unwrap();
    for chunk in envs.chunks(4096) {
        store.insert_messages(chunk, 0).unwrap();
    }
    store.close().unwrap();
}

fn config(dir: &std::path::Path, peers: Vec<Multiaddr>) -> Config {
    let mut c = Config::loopback(dir);
    c.peers = peers;
    c.target_peers = 0;
    c.dht = false;
    c.nick = Some("bench".into());
    c
}

async fn run_row(label: &str, envs: &[Envelope], missing: usize, mbit: Option<f64>) {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    prefill(a_dir.path(), envs);
    prefill(b_dir.path(), &all_but(envs, missing));
    let env_len = envs.first().map_or(0, |e| e.as_bytes().len());

    let (a, _a_events) = meshchat_node::spawn(config(a_dir.path(), vec![]))
        .await
        .unwrap();
    let a_info = a.info().await.unwrap();
    let a_addr = a_info.listen[0].clone();
    let a_peer = a_info.peer_id;
    let target = match mbit {
        Some(rate) => shaped_relay(&a_addr, rate).await,
        None => a_addr,
    }
    .with(libp2p::multiaddr::Protocol::P2p(a_peer));

    let start = Instant::now();
    let (b, _b_events) = meshchat_node::spawn(config(b_dir.path(), vec![target]))
        .await
        .unwrap();
    // Converged: B stored every missing message, and (for identical histories) a round ran.
    let converged = loop {
        let s = b.stats().await.unwrap();
        if s.synced as usize >= missing && s.sync_rounds >= 1 {
            break true;
        }
        if start.elapsed() > ROW_LIMIT {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let took = start.elapsed();
    let (sa, sb) = (a.stats().await.unwrap(), b.stats().await.unwrap());
    let bytes = sb.sync_bytes_sent + sb.sync_bytes_received;
    // The goal's yardstick: one round trip (loopback: ~0.1 ms) plus the envelopes at the link's
    // rate (loopback: taken as 10 Gbit/s).
    let bw_bytes_per_ms = mbit.map_or(10_000.0 * 125.0, |r| r * 125.0);
    let bound_ms = 0.1 + (missing * env_len) as f64 / bw_bytes_per_ms;
    println!(
        "{:>14} {:>9} {:>9} {:>10.1} {:>12} {:>12.1} {:>10.1}{}",
        label,
        envs.len(),
        missing,
        took.as_secs_f64() * 1000.0,
        bytes,
        if missing > 0 {
            bytes as f64 / missing as f64
        } else {
            0.0
        },
        bound_ms,
        if converged { "" } else { "  NOT CONVERGED" }
    );
    eprintln!(
        "  {label}: A sent {} B sent {} sync bytes; rounds A {} B {}; envelopes fetched A {} B {}; stored by sync A {} B {}; offers sent A {} B {}; profiles taken A {} B {}; envelope {env_len} B",
        sa.sync_bytes_sent,
        sb.sync_bytes_sent,
        sa.sync_rounds,
        sb.sync_rounds,
        sa.sync_envelopes_received,
        sb.sync_envelopes_received,
        sa.synced,
        sb.synced,
        sa.sync_offers_sent,
        sb.sync_offers_sent,
        sa.profiles_taken,
        sb.profiles_taken,
    );
    b.shutdown().await;
    a.shutdown().await;
}

/// A TCP relay on loopback in front of `to`, limiting each direction to `mbit` Mbit/s.
async fn shaped_relay(to: &Multiaddr, mbit: f64) -> Multiaddr {
    let port = to
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Tcp(p) => Some(p),
            _ => None,
        })
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bytes_per_sec = mbit * 1_000_000.0 / 8.0;
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                continue;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            tokio::spawn(pump(ri, wo, bytes_per_sec));
            tokio::spawn(pump(ro, wi, bytes_per_sec));
        }
    });
    format!("/ip4/127.0.0.1/tcp/{}", addr.port())
        .parse()
        .unwrap()
}

/// Copies `from` to `to` at most `rate` bytes a second (16 KiB reads, paced).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    rate: f64,
) {
    let start = Instant::now();
    let mut sent = 0f64;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        sent += n as f64;
        let due = Duration::from_secs_f64(sent / rate);
        let elapsed = start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
