//! Regression tests for what an independent libp2p client found (issue 9): each drives a real
//! meshchat node with a raw libp2p peer that speaks gossipsub directly, as that client did.

use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, noise, tcp, yamux, Swarm};
use meshchat_core::envelope::{Draft, Kind};
use meshchat_core::{Envelope, Keypair};
use meshchat_node::Event;

use super::support::*;
use super::unix_ms;

type Raw = Swarm<gossipsub::Behaviour>;

/// A raw gossipsub peer connected to `target` and subscribed to the mesh topic; `max_frame` is
/// what its own gossipsub lets it send.
pub(super) async fn raw_peer(target: &TestNode, max_frame: usize) -> (Raw, gossipsub::IdentTopic) {
    let mut peer = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .message_id_fn(|m: &gossipsub::Message| {
                    gossipsub::MessageId::new(&meshchat_core::MessageId::of(&m.data).0)
                })
                .max_transmit_size(max_frame)
                // The peer's own memory: it forgets what it published quickly.
                .duplicate_cache_time(Duration::from_secs(1))
                .build()
                .unwrap();
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config).unwrap()
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let topic = gossipsub::IdentTopic::new(meshchat_node::behaviour::MESH_TOPIC);
    peer.behaviour_mut().subscribe(&topic).unwrap();
    peer.dial(target.addr.clone()).unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let ev = tokio::time::timeout_at(deadline, peer.select_next_some())
            .await
            .expect("the raw peer sees its target subscribe");
        if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. }) = ev {
            break;
        }
    }
    (peer, topic)
}

/// Keeps a raw peer's swarm polled in the background.
fn drive(mut peer: Raw) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            peer.select_next_some().await;
        }
    })
}

fn envelope(key: &Keypair, target: &str, nonce: u64, text: &str) -> Vec<u8> {
    let body = meshchat_core::room::Text {
        nick: "raw".into(),
        text: text.into(),
    }
    .encode()
    .unwrap();
    Envelope::sign(
        key,
        Draft {
            kind: Kind::RoomText,
            target,
            timestamp_ms: unix_ms(),
            nonce,
            body: &body,
        },
    )
    .unwrap()
    .into_bytes()
}

/// Waits until the raw peer's connection to `to` closes.
async fn wait_closed(peer: &mut Raw, to: meshchat_node::PeerId) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let ev = tokio::time::timeout_at(deadline, peer.select_next_some())
            .await
            .expect("the node closes the connection");
        if matches!(ev, SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == to) {
            return;
        }
    }
}

/// Finding 1: envelopes of the largest size, back to back, all arrive, and the link keeps working.
/// Gossipsub's decoder compared everything it had buffered with the frame limit, so a largest
/// envelope followed by the start of the next failed the stream, and after a few failures the
/// direction stayed dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn largest_envelopes_back_to_back_all_arrive_and_the_link_stays_up() {
    const RAW: usize = 40;
    const OWN: usize = 20;
    let mut a = TestNode::start("a", &[]).await;
    let mut b = TestNode::start("b", &[&a]).await;
    a.wait_peers(1).await;
    b.wait_peers(1).await;

    // A raw peer publishes 40 largest envelopes at once through B.
    let (mut raw, topic) = raw_peer(&b, 1 << 20).await;
    let key = Keypair::from_secret_bytes(&[61; 32]);
    let big = "x".repeat(meshchat_core::room::MAX_TEXT_LEN - 8);
    for i in 0..RAW {
        let env = envelope(&key, "lobby", i as u64, &format!("{i:08}{big}"));
        assert!(env.len() > 61_000, "{}", env.len());
        raw.behaviour_mut().publish(topic.clone(), env).unwrap();
    }
    let driver = drive(raw);
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
    driver.abort();
}

/// Finding 1, the other half: a link that stops carrying messages is closed, counted and warned
/// about, not left half-dead. The raw peer cannot take frames over 1 KiB: its gossipsub drops
/// the stream B forwards a longer message on, without a reset (yamux sends none), so B's writes
/// wait for flow-control credit that never comes, exactly the half-dead link the independent
/// client saw. B notices its send queue to the peer staying full and reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_stops_carrying_messages_is_closed_and_counted() {
    let mut b = TestNode::start("b", &[]).await;
    let b_id = b.peer_id;
    let (mut raw, _topic) = raw_peer(&b, 1024).await;
    let big = "z".repeat(20_000);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut sent = 0;
    let mut warned = false;
    let closed = 'run: loop {
        // Large ones first (each fails the peer's stream, and they use up the stream's credit),
        // then small ones, which queue up behind them.
        for _ in 0..50 {
            let text = if sent < 20 { big.as_str() } else { "small" };
            b.send("lobby", &format!("{sent} {text}")).await;
            sent += 1;
        }
        // B's own messages fill its event queue; read it as we go.
        while let Ok(e) = b.events.try_recv() {
            warned |= matches!(e, Event::Warning(w) if w.contains("stopped carrying messages"));
        }
        while let Ok(ev) =
            tokio::time::timeout(Duration::from_millis(10), raw.select_next_some()).await
        {
            if matches!(ev, SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == b_id) {
                break 'run true;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            break false;
        }
    };
    assert!(closed, "B kept the dead link after {sent} messages");
    let s = b
        .wait_stats("the broken link counted", |s| s.broken_links >= 1)
        .await;
    assert_eq!(s.broken_links, 1, "{s:?}");
    if !warned {
        b.wait_for(|e| matches!(e, Event::Warning(w) if w.contains("stopped carrying messages")))
            .await;
    }
}

/// Finding 3: random junk is a strike, so a junk sender is blocked (it used to read as an
/// "unknown version", which cost nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_random_junk_is_blocked() {
    use rand::{Rng, SeedableRng};
    let b = TestNode::start("b", &[]).await;
    let (mut raw, topic) = raw_peer(&b, 1 << 20).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..200 {
        let len = rng.gen_range(1..300);
        let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let _ = raw.behaviour_mut().publish(topic.clone(), junk);
    }
    wait_closed(&mut raw, b.peer_id).await;
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
    let (mut raw, topic) = raw_peer(&b, 1 << 20).await;
    let key = Keypair::from_secret_bytes(&[62; 32]);
    let long = "x".repeat(64);
    for (i, target) in ["LOBBY", "#lobby", long.as_str(), "lobby"]
        .iter()
        .enumerate()
    {
        let env = envelope(&key, target, i as u64, &format!("to {target}"));
        raw.behaviour_mut().publish(topic.clone(), env).unwrap();
    }
    let driver = drive(raw);
    let got = c.collect_messages(1).await;
    assert_eq!(got[0].text, "to lobby");
    c.assert_no_more_messages().await;
    let s = b.wait_stats("all four checked", |s| s.verified == 4).await;
    assert_eq!(s.rejected.bad_target, 3, "{s:?}");
    assert_eq!(s.accepted, 1, "{s:?}");
    assert_eq!(c.handle.stats().await.unwrap().accepted, 1);
    driver.abort();
}

/// Resident memory of this process, in bytes.
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
/// the flood costs (gossipsub remembers every id it received) stays bounded. The junk imitates a
/// newer version, which is no strike: only the flood rule can stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_far_over_its_rate_is_blocked_and_memory_stays_bounded() {
    const CAP: u64 = 400_000;
    let limits = |c: &mut meshchat_node::Config| {
        c.guard.rate = 1000.0;
        c.guard.burst = 2000.0;
        c.guard.flood_limit = 5000;
    };
    let b = TestNode::start_with(tempfile::tempdir().unwrap(), Some("b"), &[], limits).await;
    let (mut raw, topic) = raw_peer(&b, 1 << 20).await;
    let before = rss_bytes();
    // Version 2, kind 1, target length 5, and room for the rest: a newer node's envelope as far
    // as this node can tell.
    let mut junk = vec![0u8; meshchat_core::envelope::FIXED_LEN + 5];
    junk[..3].copy_from_slice(&[2, 1, 5]);
    let mut sent = 0u64;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    'flood: while sent < CAP {
        for _ in 0..200 {
            junk[10..18].copy_from_slice(&sent.to_be_bytes());
            if raw
                .behaviour_mut()
                .publish(topic.clone(), junk.clone())
                .is_ok()
            {
                sent += 1;
            }
        }
        // Let the swarm write (and see the close) before publishing more.
        while let Ok(ev) =
            tokio::time::timeout(Duration::from_millis(1), raw.select_next_some()).await
        {
            if matches!(ev, SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == b.peer_id) {
                break 'flood;
            }
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
    // 10 throwaway identities that connect, subscribe and idle.
    let mut strangers = Vec::new();
    for _ in 0..10 {
        let (peer, _) = raw_peer(&b, 1 << 16).await;
        strangers.push(drive(peer));
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
    for s in strangers {
        s.abort();
    }
    drop(idle);
}
