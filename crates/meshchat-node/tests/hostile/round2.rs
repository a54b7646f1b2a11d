//! Issue 24, hostile peers round 2: the trees' control frames and fresh identities must not be
//! amplifiers. Each test reproduces one finding with a raw libp2p peer writing frames by hand,
//! as the independent client did (finding 5, connection slots, is in `slots.rs`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use meshchat_core::broadcast::wire::{self, Message};
use meshchat_core::envelope::{Draft, Kind};
use meshchat_core::{Envelope, Keypair, MessageId};
use meshchat_node::Event;

use super::{alone, envelope, raw_peer, rss_bytes, Raw, Reading};
use crate::support::*;
use crate::unix_ms;

/// Any envelope, signed by `key`.
fn signed(key: &Keypair, kind: Kind, target: &str, timestamp_ms: u64, body: &[u8]) -> Vec<u8> {
    Envelope::sign(
        key,
        Draft {
            kind,
            target,
            timestamp_ms,
            nonce: rand::random(),
            body,
        },
    )
    .unwrap()
    .into_bytes()
}

/// Waits until the raw peer reads no more than the mesh's background traffic (heartbeats,
/// announcements: under 16 KiB) in [`QUIET`]; returns the bytes read so far.
async fn received_settled(raw: &Raw) -> u64 {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut last = raw.received.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(QUIET).await;
        let now = raw.received.load(Ordering::Relaxed);
        if now - last < 16 * 1024 {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still reading after {DEADLINE:?}: {now} bytes"
        );
        last = now;
    }
}

/// Finding 1: a Graft that names one message many times, and frames of Grafts that name every
/// cached message, made a node send gigabytes back. A repeated id in one Graft is now malformed
/// (a strike), an id is answered once per neighbour within a window, and what Grafts make the
/// node send is bounded by a byte budget per neighbour (8 MiB, then 2 MiB/s). Before: the
/// 4 frames below asked for ~3 GB and the node queued all it could (256 frames of 1 MiB). Runs
/// in a process of its own ([`alone`]), so the memory measured is this test's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafts_cannot_make_a_node_send_more_than_its_budget() {
    if !alone(
        module_path!(),
        "grafts_cannot_make_a_node_send_more_than_its_budget",
    ) {
        return;
    }
    // 200 of ~60 KB: 12 MB, more than the budget's 8 MiB burst.
    const N: usize = 200;
    let mut a = TestNode::start("a", &[]).await;
    let mut b = TestNode::start("b", &[&a]).await;
    b.wait_peers(1).await;
    let mut g = raw_peer(&a, Reading::Drain).await;

    // G's own ~60 KB messages in a room nobody joined: A checks, caches and relays them.
    let key = Keypair::from_secret_bytes(&[71; 32]);
    let big = "g".repeat(meshchat_core::room::MAX_TEXT_LEN - 8);
    let envs: Vec<Vec<u8>> = (0..N)
        .map(|i| envelope(&key, "nowhere", i as u64, &format!("{i:08}{big}")))
        .collect();
    let ids: Vec<MessageId> = envs.iter().map(|e| MessageId::of(e)).collect();
    g.publish_all(envs).await.unwrap();
    a.wait_stats("G's messages taken", |s| s.accepted == N as u64)
        .await;
    b.wait_stats("and relayed to B", |s| s.accepted == N as u64)
        .await;
    let before = received_settled(&g).await;
    let rss_before = rss_bytes();
    let start = Instant::now();

    // One Graft naming one message 512 times, then four frames of 63 Grafts naming all of them.
    let repeated = wire::encode(&[Message::Graft(vec![ids[0]; 512])]);
    g.send_frame(&repeated).await.unwrap();
    let all = wire::encode(&vec![Message::Graft(ids.clone()); 63]);
    for _ in 0..4 {
        g.send_frame(&all).await.unwrap();
    }
    // An honest message through A meanwhile.
    b.send("lobby", "through the attack").await;
    a.wait_for(|e| matches!(e, Event::Message(m) if m.text == "through the attack"))
        .await;
    let sent = received_settled(&g).await - before;
    let elapsed = start.elapsed().as_secs_f64();
    let grown = rss_bytes().saturating_sub(rss_before);
    let s = a.handle.stats().await.unwrap();
    eprintln!(
        "grafts: A sent {} KiB in {elapsed:.1} s, RSS +{} MiB; {:?}",
        sent >> 10,
        grown >> 20,
        s.trees
    );
    // The budget (8 MiB at once, 2 MiB/s), and a little for frames and announcements.
    let budget = (8.0 + 2.0 * elapsed) * 1024.0 * 1024.0;
    assert!(
        (sent as f64) < budget + 1024.0 * 1024.0,
        "A sent {sent} bytes for grafts in {elapsed:.1} s"
    );
    assert!(grown < 256 << 20, "RSS grew by {} MiB", grown >> 20);
    assert_eq!(s.rejected.malformed, 1, "the repeated id: {s:?}");
    assert!(s.rejected.over_budget >= 1, "{s:?}");
    assert!(s.trees.graft_repeats > 0, "{s:?}");
}

/// Finding 2: announcements of ids that never come filled the missing table, so an honest
/// neighbour's announcement was refused and its message never grafted (left to history sync,
/// a minute later). Now a neighbour's announcements are rate-limited and hold at most a share
/// of the table: the honest one is grafted as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_flood_does_not_crowd_out_honest_repairs() {
    let a = TestNode::start("a", &[]).await;
    let mut g = raw_peer(&a, Reading::Drain).await;
    let mut h = raw_peer(&a, Reading::Decode).await;

    // 60 IHaves of 500 ids each in one frame: 30 000 ids that never come.
    let mut n = 0u32;
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
    g.send_frame(&wire::encode(&flood)).await.unwrap();
    // A handles G's frames in order: once G's next message is taken, the flood was read.
    let key = Keypair::from_secret_bytes(&[72; 32]);
    g.publish(envelope(&key, "nowhere", 0, "after the flood"))
        .await
        .unwrap();
    a.wait_stats("G's message taken", |s| s.accepted == 1).await;

    // H announces a message it holds.
    let real = envelope(&key, "nowhere", 1, "the honest one");
    let id = MessageId::of(&real);
    h.send_frame(&wire::encode(&[Message::IHave(vec![(id, 0)])]))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let m = tokio::time::timeout_at(deadline, h.messages.recv())
            .await
            .expect("A grafts the honest announcement within the deadline")
            .unwrap();
        if matches!(&m, Message::Graft(ids) if ids.contains(&id)) {
            break;
        }
    }
    h.publish(real).await.unwrap();
    let s = a
        .wait_stats("the honest one taken", |s| s.accepted == 2)
        .await;
    eprintln!("ihave flood: {:?}", s.trees);
    assert!(s.trees.ihave_over_rate > 0, "{s:?}");
    assert!(s.trees.missing_peer_full > 0, "{s:?}");
    drop(g);
}

/// Finding 3: a neighbour signing each message with a new key passed under its rate, and every
/// message was stored and relayed mesh-wide. Now a neighbour introduces at most 200 new authors at
/// once (then one a second), one author sends at most 300 at once (then 10 a second), and an
/// honest paste of 200 lines still arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_identities_and_one_loud_author_are_bounded() {
    const FRESH: usize = 2000;
    const LOUD: usize = 1000;
    let mut a = TestNode::start("a", &[]).await;
    let mut c = TestNode::start("c", &[&a]).await;
    c.wait_peers(1).await;
    a.wait_peers(1).await;
    let mut g = raw_peer(&a, Reading::Drain).await;

    // An honest paste of 200 lines from A reaches C whole.
    for i in 0..200 {
        a.send("lobby", &format!("line {i}")).await;
    }
    assert_eq!(c.collect_messages(200).await.len(), 200);
    a.collect_messages(200).await;

    let base = a.handle.stats().await.unwrap();
    let start = Instant::now();
    let now = unix_ms();
    // One loud author (a new one: it spends one introduction), then a fresh key per message.
    let loud_key = Keypair::from_secret_bytes(&[73; 32]);
    let loud: Vec<Vec<u8>> = (0..LOUD)
        .map(|i| room_envelope(&loud_key, "nowhere", now, i as u64, &format!("loud {i}")))
        .collect();
    g.publish_all(loud).await.unwrap();
    let fresh: Vec<Vec<u8>> = (0..FRESH)
        .map(|i| {
            let key = Keypair::from_secret_bytes(&rand::random());
            envelope(&key, "nowhere", i as u64, "fresh")
        })
        .collect();
    g.publish_all(fresh).await.unwrap();
    let s = a
        .wait_stats("everything looked at", |s| {
            s.accepted + s.rejected.total() >= base.accepted + (FRESH + LOUD) as u64
        })
        .await;
    let elapsed = start.elapsed().as_secs_f64();
    eprintln!("fresh identities: {elapsed:.1} s, {s:?}");
    let from_g = s.accepted - base.accepted;
    // 200 new authors (the loud one among them), and the loud author's burst plus its rate.
    let most = 200.0 + 300.0 + 10.0 * elapsed + 2.0;
    assert!((from_g as f64) <= most, "A took {from_g} of G's messages");
    let refilled = elapsed.ceil() as u64;
    assert!(
        s.rejected.new_author_over_rate >= (FRESH - 200) as u64 - refilled,
        "{s:?}"
    );
    assert!(s.rejected.author_over_rate >= (LOUD - 400) as u64, "{s:?}");
    // What A refused went no further (C also has A's 200 lines).
    let sc = c.handle.stats().await.unwrap();
    assert!(sc.accepted <= 200 + from_g, "{sc:?}");
}

/// Finding 4: tracker envelopes with a garbage body, a wrong target or signed 11 minutes ago
/// were counted as dropped and still relayed, so an old heartbeat could be replayed across the
/// mesh. Now they are refused before relay: the first two are strikes, the stale one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tracker_envelopes_are_not_relayed() {
    let a = TestNode::start("a", &[]).await;
    let mut c = TestNode::start("c", &[&a]).await;
    c.wait_peers(1).await;
    let mut g = raw_peer(&a, Reading::Drain).await;
    let key = Keypair::from_secret_bytes(&[74; 32]);
    let heartbeat = meshchat_core::election::Msg::<[u8; 32]>::Heartbeat {
        epoch: 99,
        priority: u32::MAX,
        roster: 0,
    }
    .encode();
    let now = unix_ms();
    let eleven_minutes = 11 * 60 * 1000;
    g.publish_all(vec![
        signed(&key, Kind::Tracker, "tracker", now, b"\xffgarbage"),
        signed(&key, Kind::Tracker, "lobby", now, &heartbeat),
        signed(
            &key,
            Kind::Tracker,
            "tracker",
            now - eleven_minutes,
            &heartbeat,
        ),
        envelope(&key, "lobby", 9, "after the tracker junk"),
    ])
    .await
    .unwrap();
    // C has what A relayed up to G's room message once that message is here (links keep order).
    let got = c.collect_messages(1).await;
    assert_eq!(got[0].text, "after the tracker junk");
    let s = a.handle.stats().await.unwrap();
    assert_eq!(s.rejected.malformed, 1, "{s:?}");
    assert_eq!(s.rejected.bad_target, 1, "{s:?}");
    assert_eq!(s.rejected.stale, 1, "{s:?}");
    let sc = c.handle.stats().await.unwrap();
    assert_eq!(
        sc.rejected.total(),
        0,
        "C was handed refused envelopes: {sc:?}"
    );
    assert_eq!(sc.tracker_dropped, 0, "{sc:?}");
}
