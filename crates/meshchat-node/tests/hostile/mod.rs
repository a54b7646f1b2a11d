//! Regression tests for what an independent libp2p client found (issue 9): each drives a real
//! meshchat node with a raw libp2p peer that speaks the node's broadcast protocol directly
//! (`/meshchat/broadcast/2` frames written by hand), as that client did.

mod round2;
mod slots;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use meshchat_core::broadcast::wire::{self, Message};
use meshchat_core::{Keypair, MessageId};
use meshchat_node::behaviour::broadcast::PROTOCOL;
use meshchat_node::Event;
use tokio::sync::mpsc;

use super::support::raw;
use super::support::*;
use super::unix_ms;

/// What the raw peer does with the stream the node opens to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reading {
    /// Reads and discards everything, as a live peer would (counting the bytes).
    Drain,
    /// Reads everything and hands the decoded messages to [`Raw::messages`].
    Decode,
    /// Takes the stream and never reads it: a link that stopped carrying anything.
    Never,
}

#[derive(Debug)]
enum RawEvent {
    Closed(PeerId),
    DialFailed,
}

/// A raw libp2p peer (no meshchat node) connected to one target, with its own broadcast stream
/// to it. Its swarm is polled by a background task.
pub(super) struct Raw {
    pub id: PeerId,
    stream: libp2p::Stream,
    /// Connection closes and failed dials, as the swarm reports them.
    events: mpsc::Receiver<RawEvent>,
    dial: mpsc::Sender<Multiaddr>,
    /// Bytes read from the node's streams (in [`Reading::Drain`] and [`Reading::Decode`]).
    pub received: Arc<AtomicU64>,
    /// Messages the node sent, decoded ([`Reading::Decode`]; dropped when nobody reads them).
    pub messages: mpsc::Receiver<Message>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Raw {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A raw peer connected to `target`, returned once both broadcast streams are open (so the node
/// counts it as a neighbour).
pub(super) async fn raw_peer(target: &TestNode, reading: Reading) -> Raw {
    let mut swarm = raw::swarm(libp2p::identity::Keypair::generate_ed25519());
    let id = *swarm.local_peer_id();
    let mut control = swarm.behaviour().stream.new_control();
    let mut incoming = control.accept(PROTOCOL).unwrap();
    swarm.dial(target.addr.clone()).unwrap();
    let (ev_tx, events) = mpsc::channel(64);
    let (pong_tx, mut pongs) = tokio::sync::watch::channel(0);
    let (dial, mut dial_rx) = mpsc::channel::<Multiaddr>(4);
    let driver = tokio::spawn(async move {
        loop {
            tokio::select! {
                ev = swarm.select_next_some() => {
                    let ev = match ev {
                        SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                            // Shown with a failing test's output: who closed it, and why.
                            eprintln!("raw peer: the connection to {peer_id} closed: {cause:?}");
                            RawEvent::Closed(peer_id)
                        }
                        SwarmEvent::OutgoingConnectionError { .. } => RawEvent::DialFailed,
                        SwarmEvent::Behaviour(e) => {
                            raw::count_pong(&e, &pong_tx);
                            continue;
                        }
                        _ => continue,
                    };
                    let _ = ev_tx.try_send(ev);
                }
                Some(addr) = dial_rx.recv() => { let _ = swarm.dial(addr); }
            }
        }
    });
    let (opened_tx, mut opened) = mpsc::channel::<()>(4);
    let received = Arc::new(AtomicU64::new(0));
    let (messages_tx, messages) = mpsc::channel::<Message>(4096);
    let counter = received.clone();
    let reader = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((_, mut stream)) = incoming.next().await {
            let _ = opened_tx.try_send(());
            let counter = counter.clone();
            let messages_tx = messages_tx.clone();
            match reading {
                Reading::Drain => {
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
                Reading::Decode => {
                    tokio::spawn(async move {
                        let mut len = [0u8; 4];
                        while stream.read_exact(&mut len).await.is_ok() {
                            let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
                            if stream.read_exact(&mut frame).await.is_err() {
                                break;
                            }
                            counter.fetch_add(4 + frame.len() as u64, Ordering::Relaxed);
                            for m in
                                wire::decode(&frame).expect("the node sends well-formed frames")
                            {
                                let _ = messages_tx.try_send(m);
                            }
                        }
                    });
                }
                Reading::Never => held.push(stream),
            }
        }
    });
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let stream = raw::open_accepted(&mut control, target.peer_id, PROTOCOL, &mut pongs).await;
    tokio::time::timeout_at(deadline, opened.recv())
        .await
        .expect("the node opens its stream to the raw peer");
    Raw {
        id,
        stream,
        events,
        dial,
        received,
        messages,
        tasks: vec![driver, reader],
    }
}

impl Raw {
    /// Writes `frame` as one length-prefixed broadcast frame (any bytes: the tests send junk).
    pub async fn send_frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
        let mut out = (frame.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(frame);
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }

    /// Pushes each envelope as a `Gossip` from its author (hop 0), packed into frames as a node
    /// packs them.
    pub async fn publish_all(&mut self, envelopes: Vec<Vec<u8>>) -> std::io::Result<()> {
        let messages = envelopes.into_iter().map(|e| Message::Gossip {
            id: MessageId::of(&e),
            hops: 0,
            own_tree: false,
            payload: e.into(),
        });
        for frame in wire::pack(messages) {
            self.send_frame(&frame).await?;
        }
        Ok(())
    }

    pub async fn publish(&mut self, envelope: Vec<u8>) -> std::io::Result<()> {
        self.publish_all(vec![envelope]).await
    }

    /// Waits until the connection to `to` closes.
    pub async fn wait_closed(&mut self, to: PeerId) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("the node closes the connection");
            if matches!(ev, Some(RawEvent::Closed(p)) if p == to) {
                return;
            }
        }
    }

    /// Whether the connection to `to` has closed (without waiting).
    pub fn closed(&mut self, to: PeerId) -> bool {
        while let Ok(ev) = self.events.try_recv() {
            if matches!(ev, RawEvent::Closed(p) if p == to) {
                return true;
            }
        }
        false
    }

    /// Dials `addr` again and waits until that dial fails or its connection is closed.
    pub async fn redial_refused(&mut self, addr: Multiaddr, to: PeerId) {
        self.dial.send(addr).await.unwrap();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("the redial ends");
            match ev {
                Some(RawEvent::DialFailed) => return,
                Some(RawEvent::Closed(p)) if p == to => return,
                _ => {}
            }
        }
    }
}

pub(super) fn envelope(key: &Keypair, target: &str, nonce: u64, text: &str) -> Vec<u8> {
    room_envelope(key, target, unix_ms(), nonce, text)
}

/// Finding 1: envelopes of the largest size, back to back, all arrive, and the link keeps working.
/// (On gossipsub, whose decoder compared everything it had buffered with the frame limit, a
/// largest envelope followed by the start of the next failed the stream, and after a few
/// failures the direction stayed dead.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn largest_envelopes_back_to_back_all_arrive_and_the_link_stays_up() {
    const RAW: usize = 40;
    const OWN: usize = 20;
    let mut a = TestNode::start("a", &[]).await;
    let mut b = TestNode::start("b", &[&a]).await;
    a.wait_peers(1).await;
    b.wait_peers(1).await;

    // A raw peer publishes 40 largest envelopes at once through B.
    let mut raw = raw_peer(&b, Reading::Drain).await;
    let key = Keypair::from_secret_bytes(&[61; 32]);
    let big = "x".repeat(meshchat_core::room::MAX_TEXT_LEN - 8);
    let mut envs = Vec::new();
    for i in 0..RAW {
        let env = envelope(&key, "lobby", i as u64, &format!("{i:08}{big}"));
        assert!(env.len() > 61_000, "{}", env.len());
        envs.push(env);
    }
    raw.publish_all(envs).await.unwrap();
    assert_eq!(b.collect_messages(RAW).await.len(), RAW);
    assert_eq!(a.collect_messages(RAW).await.len(), RAW);

    // A meshchat node sends 20 of the largest texts back to back.
    let big = "y".repeat(meshchat_core::room::MAX_TEXT_LEN);
    for _ in 0..OWN {
        a.send("lobby", &big).await;
    }
    let got = b.collect_messages(OWN).await;
    assert!(got.iter().all(|m| m.text.len() == big.len()));
    // The link still carries small messages both ways afterwards.
    a.send("lobby", "small after big").await;
    b.wait_for(|e| matches!(e, Event::Message(m) if m.text == "small after big"))
        .await;
    b.send("lobby", "and back").await;
    a.wait_for(|e| matches!(e, Event::Message(m) if m.text == "and back"))
        .await;
    let s = b.handle.stats().await.unwrap();
    assert_eq!(s.broken_links, 0, "{s:?}");
    assert_eq!(s.rejected.total(), 0, "{s:?}");
    drop(raw);
}

/// Finding 1, the other half: a link that stops carrying messages is closed, counted and warned
/// about, not left half-dead. The raw peer takes the stream B opens to it and never reads it, so
/// B's writes wait for flow-control credit that never comes (the half-dead link the independent
/// client saw on gossipsub). B notices its send queue to the peer staying full and reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_stops_carrying_messages_is_closed_and_counted() {
    let mut b = TestNode::start("b", &[]).await;
    let b_id = b.peer_id;
    let mut raw = raw_peer(&b, Reading::Never).await;
    let big = "z".repeat(20_000);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut sent = 0;
    let mut warned = false;
    let closed = loop {
        // Large ones first (they use up the stream's credit), then small ones, which queue up
        // behind them.
        for _ in 0..50 {
            let text = if sent < 20 { big.as_str() } else { "small" };
            b.send("lobby", &format!("{sent} {text}")).await;
            sent += 1;
        }
        // B's own messages fill its event queue; read it as we go.
        while let Ok(e) = b.events.try_recv() {
            warned |= matches!(e, Event::Warning(w) if w.contains("stopped carrying messages"));
        }
        if raw.closed(b_id) {
            break true;
        }
        if tokio::time::Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(closed, "B kept the dead link after {sent} messages");
    let s = b
        .wait_stats("the broken link counted", |s| s.broken_links >= 1)
        .await;
    assert_eq!(s.broken_links, 1, "{s:?}");
    assert!(s.broadcast_dropped > 0, "{s:?}");
    if !warned {
        b.wait_for(|e| matches!(e, Event::Warning(w) if w.contains("stopped carrying messages")))
            .await;
    }
}

/// Finding 3: random junk is a strike, so a junk sender is blocked (it used to read as an
/// "unknown version", which cost nothing): junk frames, and junk payloads in well-formed frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_random_junk_is_blocked() {
    use rand::{Rng, SeedableRng};
    let b = TestNode::start("b", &[]).await;
    let mut raw = raw_peer(&b, Reading::Drain).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for i in 0..200 {
        let len = rng.gen_range(1..300);
        let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let sent = if i % 2 == 0 {
            raw.send_frame(&junk).await
        } else {
            raw.publish(junk).await
        };
        if sent.is_err() {
            break;
        }
    }
    raw.wait_closed(b.peer_id).await;
    let s = b.handle.stats().await.unwrap();
    assert_eq!(s.blocked_peers, 1, "{s:?}");
    assert_eq!(s.accepted, 0, "{s:?}");
    // Junk is refused before any signature check.
    assert!(s.verified <= 1, "{s:?}");
}

/// Finding 7: room messages to targets no node can show (`LOBBY`, `#lobby`, 64 bytes) are
/// refused, struck and not relayed; an honest one next to them passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unshowable_room_targets_are_refused_and_not_relayed() {
    let b = TestNode::start("b", &[]).await;
    let mut c = TestNode::start("c", &[&b]).await;
    c.wait_peers(1).await;
    let mut raw = raw_peer(&b, Reading::Drain).await;
    let key = Keypair::from_secret_bytes(&[62; 32]);
    let long = "x".repeat(64);
    for (i, target) in ["LOBBY", "#lobby", long.as_str(), "lobby"]
        .iter()
        .enumerate()
    {
        let env = envelope(&key, target, i as u64, &format!("to {target}"));
        if let Err(e) = raw.publish(env).await {
            let s = b.handle.stats().await.unwrap();
            panic!("publishing to {target}: {e}; b: {s:?}");
        }
    }
    let got = c.collect_messages(1).await;
    assert_eq!(got[0].text, "to lobby");
    c.assert_no_more_messages().await;
    let s = b.wait_stats("all four checked", |s| s.verified == 4).await;
    assert_eq!(s.rejected.bad_target, 3, "{s:?}");
    assert_eq!(s.accepted, 1, "{s:?}");
    assert_eq!(c.handle.stats().await.unwrap().accepted, 1);
    drop(raw);
}

/// Set in a child process of this test binary to the one test it runs (see [`alone`]).
const ALONE_VAR: &str = "MESHCHAT_TEST_ALONE";

/// For a test that measures its process (resident memory): whether this is the process to
/// measure in. In the test binary, where other tests run beside it on other threads and their
/// memory comes and goes, this runs the test again alone in a child process, checks that it ran
/// there and passed, and returns false: the caller returns. In that child, it returns true.
/// `module` is the caller's `module_path!()`, `test` its function's name.
fn alone(module: &str, test: &str) -> bool {
    // Tests are named by their path in the test crate, without the crate's name.
    let path = module.split_once("::").map_or("", |(_, p)| p);
    let name = format!("{path}::{test}");
    if std::env::var(ALONE_VAR).is_ok_and(|v| v == name) {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([&name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ALONE_VAR, &name)
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{name}, alone in process:\n{stdout}{stderr}");
    assert!(out.status.success(), "{name} failed alone in its process");
    // A name that matches no test would pass too: check it ran.
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{name} did not run alone in its process"
    );
    false
}

/// Resident memory of this process, in bytes. Measured by tests run [`alone`] in a process.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Finding 2: a peer flooding tiny unique messages far over its rate is blocked, so the state
/// the flood costs stays bounded (the excess is dropped before the tree keeps any state for it). The junk imitates a
/// newer version, which is no strike: only the flood rule can stop it. Runs in a process of its
/// own ([`alone`]), so the memory measured is this test's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_far_over_its_rate_is_blocked_and_memory_stays_bounded() {
    if !alone(
        module_path!(),
        "a_peer_flooding_far_over_its_rate_is_blocked_and_memory_stays_bounded",
    ) {
        return;
    }
    const CAP: u64 = 400_000;
    let limits = |c: &mut meshchat_node::Config| {
        c.guard.rate = 1000.0;
        c.guard.burst = 2000.0;
        c.guard.flood_limit = 5000;
    };
    let b = TestNode::start_with(tempfile::tempdir().unwrap(), Some("b"), &[], limits).await;
    let mut raw = raw_peer(&b, Reading::Drain).await;
    let before = rss_bytes();
    // Version 2, kind 1, target length 5, and room for the rest: a newer node's envelope as far
    // as this node can tell.
    let mut junk = vec![0u8; meshchat_core::envelope::FIXED_LEN + 5];
    junk[..3].copy_from_slice(&[2, 1, 5]);
    let mut sent = 0u64;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while sent < CAP {
        let mut batch = Vec::with_capacity(256);
        for _ in 0..256 {
            junk[10..18].copy_from_slice(&sent.to_be_bytes());
            batch.push(junk.clone());
            sent += 1;
        }
        if raw.publish_all(batch).await.is_err() || raw.closed(b.peer_id) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still flooding after {sent} messages"
        );
    }
    assert!(sent < CAP, "the node never cut the flooding peer off");
    let s = b
        .wait_stats("the flooder blocked", |s| s.blocked_peers == 1)
        .await;
    let grown = rss_bytes().saturating_sub(before);
    eprintln!(
        "flood: {sent} sent, {} checked, {} over rate, RSS +{} MiB",
        s.rejected.newer_version,
        s.rejected.over_rate,
        grown >> 20
    );
    // Dropped unchecked beyond the burst, and blocked at the flood limit.
    assert!(s.rejected.over_rate <= 5000 + 1000, "{s:?}");
    assert_eq!(
        s.verified, 0,
        "newer-version junk is never signature-checked: {s:?}"
    );
    // Everything this process holds for the flood, both ends: far below the ~1 GB seen before.
    assert!(grown < 256 << 20, "RSS grew by {} MiB", grown >> 20);
}

/// Finding 5: sockets that never finish a handshake, from one address, cannot shut out an honest
/// node from another; and when every connection slot is taken by idle identities, a newcomer
/// gets in because the least useful peer is evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_newcomer_gets_in_despite_idle_sockets_and_identities() {
    let small = |c: &mut meshchat_node::Config| c.max_connections = 8;
    let b = TestNode::start_with(tempfile::tempdir().unwrap(), Some("b"), &[], small).await;
    let port = b
        .addr
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();

    // 40 sockets from 127.0.0.2 that never say a word.
    let mut idle = Vec::new();
    for _ in 0..40 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        idle.push(sock.connect(([127, 0, 0, 1], port).into()).await.unwrap());
    }
    // 10 throwaway identities that connect, open their broadcast streams and idle.
    let mut strangers = Vec::new();
    for _ in 0..10 {
        strangers.push(raw_peer(&b, Reading::Drain).await);
    }
    let mut d = TestNode::start("d", &[]).await;
    d.handle
        .connect(&b.addr.to_string())
        .await
        .expect("the newcomer gets in");
    d.wait_peers(1).await;
    let s = b.handle.stats().await.unwrap();
    assert!(s.evicted_peers >= 3, "{s:?}");
    // Evicted connections close asynchronously: wait (bounded) for B to be back within its limit.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let peers = b.handle.peers().await.unwrap();
        assert!(peers.iter().any(|p| p.peer_id == d.peer_id), "{peers:?}");
        if peers.len() <= 8 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} peers",
            peers.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(strangers);
    drop(idle);
}

/// A valid envelope pushed under another message's id is a forgery of the neighbour's own: it is
/// refused (`malformed`, a strike), not relayed, and does not hide the real message, which is
/// taken when it comes under its own id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_under_another_id_is_refused_and_hides_nothing() {
    let b = TestNode::start("b", &[]).await;
    let mut c = TestNode::start("c", &[&b]).await;
    c.wait_peers(1).await;
    let mut raw = raw_peer(&b, Reading::Drain).await;
    let key = Keypair::from_secret_bytes(&[63; 32]);
    let real = envelope(&key, "lobby", 1, "the real one");
    let other = envelope(&key, "lobby", 2, "never sent");
    // `real`'s bytes under `other`'s id, then `real` honestly under its own.
    let forged = wire::encode(&[Message::Gossip {
        id: MessageId::of(&other),
        hops: 0,
        own_tree: false,
        payload: real.clone().into(),
    }]);
    raw.send_frame(&forged).await.unwrap();
    raw.publish(real).await.unwrap();
    let got = c.collect_messages(1).await;
    assert_eq!(got[0].text, "the real one");
    c.assert_no_more_messages().await;
    let s = b.wait_stats("both checked", |s| s.verified == 2).await;
    assert_eq!(s.rejected.malformed, 1, "{s:?}");
    assert_eq!(s.accepted, 1, "{s:?}");
}
