//! History sync between real nodes (issue 10): whatever a node missed while it was away, cut
//! off or not yet in a room, it gets from its peers when it (re)connects, each message once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use meshchat_core::sync::wire::Request;
use meshchat_node::{Event, MessageView};

use super::support::*;

/// Messages shown, as (text, synced).
fn texts(msgs: &[MessageView]) -> HashSet<(String, bool)> {
    msgs.iter().map(|m| (m.text.clone(), m.synced)).collect()
}

/// A bare libp2p peer speaking only `/meshchat/sync/1`, with the node's own codec.
fn raw_sync_peer() -> libp2p::Swarm<meshchat_node::behaviour::sync::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| meshchat_node::behaviour::sync::behaviour())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// A node stopped while others talk gets every message when it comes back, marked as synced,
/// each once; and what it said while cut off reaches the others the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_away_catches_up_when_it_returns() {
    let mut a = TestNode::start("a", &[]).await;
    let mut b = TestNode::start("b", &[&a]).await;
    a.wait_peers(1).await;
    b.wait_peers(1).await;
    let dir = b.stop().await;
    a.wait_for(|e| matches!(e, Event::PeerDisconnected { .. }))
        .await;
    for i in 0..20 {
        a.send("lobby", &format!("while b was away {i}")).await;
    }
    a.collect_messages(20).await;

    let mut b = TestNode::start_in(dir, "b", &[&a]).await;
    let got = b.collect_messages(20).await;
    let want: HashSet<(String, bool)> = (0..20)
        .map(|i| (format!("while b was away {i}"), true))
        .collect();
    assert_eq!(texts(&got), want);
    b.assert_no_more_messages().await;
    // In display order in the history, whatever order they arrived in.
    let history = b.handle.history("lobby", 100, None).await.unwrap();
    assert_eq!(history.len(), 20);
    assert!(history
        .windows(2)
        .all(|w| (w[0].timestamp_ms, w[0].id) <= (w[1].timestamp_ms, w[1].id)));
    let s = b.handle.stats().await.unwrap();
    assert_eq!(s.synced, 20, "{s:?}");

    // Restarted again: nothing is shown twice.
    let dir = b.stop().await;
    let mut b = TestNode::start_in(dir, "b", &[&a]).await;
    b.wait_peers(1).await;
    b.wait_stats("a round with A", |s| s.sync_rounds >= 1).await;
    b.assert_no_more_messages().await;
}

/// A – B – C – D, only A and D in room `x`, D offline while A talks: B and C relayed and held
/// A's messages, and D gets them from C when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_member_relays_serve_a_member_that_was_offline() {
    let mut a = TestNode::start("a", &[]).await;
    let mut b = TestNode::start("b", &[&a]).await;
    let mut c = TestNode::start("c", &[&b]).await;
    a.wait_peers(1).await;
    b.wait_peers(2).await;
    c.wait_peers(1).await;
    a.handle.join("x").await.unwrap();
    // D joined `x` in an earlier life and is offline now.
    let d = TestNode::start("d", &[]).await;
    d.handle.join("x").await.unwrap();
    let d_dir = d.stop().await;

    for i in 0..10 {
        a.send("x", &format!("to x {i}")).await;
    }
    // C relayed them all (and holds them) before D returns.
    c.wait_stats("C relayed all ten", |s| s.stored >= 10).await;

    let mut d = TestNode::start_in(d_dir, "d", &[&c]).await;
    let got = d.collect_messages(10).await;
    assert!(got.iter().all(|m| m.synced && m.room == "x"), "{got:?}");
    assert_eq!(
        texts(&got),
        (0..10).map(|i| (format!("to x {i}"), true)).collect()
    );
    d.assert_no_more_messages().await;
    // D's only peer is C.
    let peers = d.handle.peers().await.unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].peer_id, c.peer_id);
}

/// A node that joins a room finds its recent history there: it relayed (and held) it, or fetches
/// it from its peers on joining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_finds_the_rooms_history() {
    let mut a = TestNode::start("a", &[]).await;
    let mut b = TestNode::start("b", &[&a]).await;
    a.wait_peers(1).await;
    b.wait_peers(1).await;
    a.handle.join("x").await.unwrap();
    for i in 0..5 {
        a.send("x", &format!("early {i}")).await;
    }
    b.wait_stats("B holds the five", |s| s.stored >= 5).await;
    // B was not in `x`: nothing was shown. Joining finds the history already there.
    b.assert_no_more_messages().await;
    b.handle.join("x").await.unwrap();
    assert_eq!(b.handle.history("x", 10, None).await.unwrap().len(), 5);

    // C never saw them: it fetches them from B when it joins.
    let mut c = TestNode::start("c", &[&b]).await;
    c.wait_peers(1).await;
    c.handle.join("x").await.unwrap();
    let got = c.collect_messages(5).await;
    assert!(got.iter().all(|m| m.synced));
    c.assert_no_more_messages().await;
}

/// A round fetches at most the per-round budget; the next round starts as soon as that is
/// fetched, until nothing is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_fetches_at_most_its_budget() {
    let mut a = TestNode::start("a", &[]).await;
    for i in 0..120 {
        a.send("lobby", &format!("m{i}")).await;
    }
    a.collect_messages(120).await;
    let small = |c: &mut meshchat_node::Config| {
        c.sync.max_need = 50;
        // No periodic round during the test: only the one on contact.
        c.sync_interval = Duration::from_secs(3600);
    };
    let mut b = TestNode::start_with(tempfile::tempdir().unwrap(), Some("b"), &[&a], small).await;
    let got = b.collect_messages(120).await;
    assert!(got.iter().all(|m| m.synced));
    b.assert_no_more_messages().await;
    // Two rounds stopped at their budget of 50; the third found the last 20 and ended.
    let s = b
        .wait_stats("the last round over", |s| s.sync_rounds >= 3)
        .await;
    assert_eq!(s.synced, 120, "{s:?}");
}

/// A peer sending sync messages no meshchat node sends is struck, and blocked at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sync_frames_get_the_peer_blocked() {
    let b = TestNode::start("b", &[]).await;
    let mut raw = raw_sync_peer();
    raw.dial(b.addr.clone()).unwrap();
    let limit = meshchat_core::guard::Limits::default().strike_limit;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut sent = 0;
    loop {
        let ev = tokio::time::timeout_at(deadline, raw.select_next_some())
            .await
            .expect("B closes the connection");
        match ev {
            SwarmEvent::ConnectionEstablished { .. } => {
                for _ in 0..limit {
                    // Tag 0xff: no such sync frame.
                    raw.behaviour_mut()
                        .send_request(&b.peer_id, Request::Sync(vec![0xff, 1, 2, 3]));
                    sent += 1;
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == b.peer_id => break,
            _ => {}
        }
    }
    assert!(sent >= limit);
    let s = b
        .wait_stats("the peer blocked", |s| s.blocked_peers == 1)
        .await;
    assert_eq!(s.sync_strikes, u64::from(limit), "{s:?}");
}

/// A failed database write is reported, not silent: the message is not shown, the user is
/// warned, and it comes back by sync once the disk works again. An own message that cannot be
/// stored is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_is_reported_and_healed_by_sync() {
    let mut a = TestNode::start("a", &[]).await;
    let full = Arc::new(AtomicBool::new(false));
    let flag = full.clone();
    let mut b = TestNode::start_with(tempfile::tempdir().unwrap(), Some("b"), &[&a], move |c| {
        c.fail_writes = Some(flag)
    })
    .await;
    a.wait_peers(1).await;
    b.wait_peers(1).await;

    full.store(true, Ordering::Relaxed);
    a.send("lobby", "written while b's disk was full").await;
    a.collect_messages(1).await;
    b.wait_for(|e| matches!(e, Event::Warning(w) if w.contains("could not store")))
        .await;
    assert!(b.send_err("lobby", "mine").await.contains("full"));
    b.assert_no_more_messages().await;
    assert!(b
        .handle
        .history("lobby", 10, None)
        .await
        .unwrap()
        .is_empty());

    full.store(false, Ordering::Relaxed);
    // A join starts a round at once (periodic rounds would get there too).
    b.handle.join("elsewhere").await.unwrap();
    let got = b.collect_messages(1).await;
    assert_eq!(got[0].text, "written while b's disk was full");
    assert!(got[0].synced);
    let s = b.handle.stats().await.unwrap();
    assert!(s.store_failures >= 2, "{s:?}");
    // A never got B's unsent message.
    a.assert_no_more_messages().await;
}

/// Each round a peer opens costs a pass over our items: a peer opening rounds back to back gets a
/// few answered and the rest refused as busy (no strike, no block).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_opened_back_to_back_are_refused_beyond_a_burst() {
    use libp2p::request_response::{Event as RrEvent, Message};
    use meshchat_core::sync::wire::{Refusal, Response};
    use meshchat_core::sync::{ItemSet, Limits, Peers};

    let b = TestNode::start("b", &[]).await;
    let mut raw = raw_sync_peer();
    raw.dial(b.addr.clone()).unwrap();
    const OPENS: usize = 10;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    // Answered, refused as busy, or (beyond B's 8 concurrent streams per connection) not taken.
    let (mut answered, mut busy, mut not_taken) = (0, 0, 0);
    while answered + busy + not_taken < OPENS {
        let ev = tokio::time::timeout_at(deadline, raw.select_next_some())
            .await
            .expect("every Open ends");
        match ev {
            SwarmEvent::ConnectionEstablished { .. } => {
                let items = ItemSet::default();
                for i in 0..OPENS {
                    // A fresh session each time: a new Open replaces the old one.
                    let mut ours = Peers::<u8>::new(Limits::default());
                    let open = ours
                        .start(i as u8, &items, 0, std::time::Instant::now())
                        .unwrap();
                    raw.behaviour_mut()
                        .send_request(&b.peer_id, Request::Sync(open));
                }
            }
            SwarmEvent::Behaviour(RrEvent::Message {
                message: Message::Response { response, .. },
                ..
            }) => match response {
                Response::Sync(_) => answered += 1,
                Response::Refused(Refusal::Busy) => busy += 1,
                other => panic!("unexpected answer {other:?}"),
            },
            SwarmEvent::Behaviour(RrEvent::OutboundFailure { .. }) => not_taken += 1,
            _ => {}
        }
    }
    assert!(
        (4..=5).contains(&answered),
        "{answered} answered, {busy} busy"
    );
    let s = b.handle.stats().await.unwrap();
    assert_eq!((s.sync_strikes, s.blocked_peers), (0, 0), "{s:?}");
}
