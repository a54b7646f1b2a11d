//! Direct messages between real nodes on loopback: routed over a chain, sealed, acknowledged;
//! held by a relay for a recipient that is offline while the sender is gone too.

pub(crate) mod hostile;

use std::time::Duration;

use meshchat_node::{DmState, Event};

use crate::support::*;

/// Waits until `from` has a route to `to` and knows its profile.
async fn wait_route(from: &TestNode, to: &TestNode, hops: u16) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let routes = from.handle.routes().await.unwrap();
        let route = routes.iter().find(|r| r.dest == to.peer_id);
        let profile = from.handle.whois(&to.peer_id.to_string()).await;
        if route.is_some_and(|r| r.hops == hops) && profile.is_ok() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: no {hops}-hop route to {} within {DEADLINE:?}: {routes:?} {profile:?}",
            from.name,
            to.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_state(node: &mut TestNode, id: meshchat_core::MessageId, state: DmState) {
    node.wait_for(
        |e| matches!(e, Event::DmStatus { id: i, state: s, .. } if *i == id && *s == state),
    )
    .await;
}

async fn wait_dm(node: &mut TestNode, text: &str) -> meshchat_node::DmView {
    let text = text.to_owned();
    match node
        .wait_for(|e| matches!(e, Event::Dm(d) if d.text == text && !d.own))
        .await
    {
        Event::Dm(d) => d,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_crosses_a_chain_once_per_hop_and_its_receipt_comes_back() {
    // A - B - C - D: A cannot reach D directly.
    let mut a = TestNode::start("a", &[]).await;
    let mut b = TestNode::start("b", &[&a]).await;
    let mut c = TestNode::start("c", &[&b]).await;
    let mut d = TestNode::start("d", &[&c]).await;
    a.wait_peers(1).await;
    b.wait_peers(2).await;
    c.wait_peers(2).await;
    d.wait_peers(1).await;
    wait_route(&a, &d, 3).await;
    wait_route(&d, &a, 3).await;
    let before: Vec<u64> = futures_stats(&[&a, &b, &c, &d]).await;

    let secret = "meet at the water tower at nine";
    let sent = a.handle.dm("d", secret).await.unwrap();
    assert_eq!(sent.to, d.peer_id);
    let own = a
        .wait_for(|e| matches!(e, Event::Dm(m) if m.own && m.id == sent.id))
        .await;
    assert!(matches!(own, Event::Dm(m) if m.text == secret && m.to == d.peer_id));
    let got = wait_dm(&mut d, secret).await;
    assert_eq!(
        (got.id, got.from, got.nick.as_str()),
        (sent.id, a.peer_id, "a")
    );
    assert_eq!(got.fingerprint, a.handle.info().await.unwrap().fingerprint);
    wait_state(&mut a, sent.id, DmState::Delivered).await;

    // One transmission per hop each way: 3 for the DM, 3 for the receipt.
    let after = futures_stats(&[&a, &b, &c, &d]).await;
    let frames: u64 = after.iter().zip(&before).map(|(x, y)| x - y).sum();
    assert_eq!(
        frames, 6,
        "DM frames sent per node: {after:?} (before {before:?})"
    );

    // Shown once: no second copy, on either end, and history has it.
    let history = d.handle.dm_history("a", 10, None).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].text, secret);
    let mine = a
        .handle
        .dm_history(&d.peer_id.to_string(), 10, None)
        .await
        .unwrap();
    assert_eq!(mine[0].state, Some(DmState::Delivered));
    let convs = d.handle.conversations().await.unwrap();
    assert_eq!((convs[0].peer, convs[0].count), (a.peer_id, 1));

    // The relays hold no plaintext.
    for relay in [b, c] {
        let dir = relay.stop().await;
        assert!(!contains(&dir_bytes(dir.path()), secret.as_bytes()));
    }
}

async fn futures_stats(nodes: &[&TestNode]) -> Vec<u64> {
    let mut out = Vec::new();
    for n in nodes {
        out.push(n.handle.stats().await.unwrap().dm_frames_sent);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_holds_a_dm_for_an_offline_recipient_after_the_sender_left() {
    // A - B - C. C goes offline; A writes to C and goes offline too; C comes back and gets the
    // DM from B; A comes back and learns it was delivered.
    let mut a = TestNode::start("a", &[]).await;
    let mut b = TestNode::start("b", &[&a]).await;
    let mut c = TestNode::start("c", &[&b]).await;
    a.wait_peers(1).await;
    b.wait_peers(2).await;
    c.wait_peers(1).await;
    wait_route(&a, &c, 2).await;
    let c_peer = c.peer_id;
    let c_dir = c.stop().await;
    // The route to C is retracted at once when B loses it.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while a
        .handle
        .routes()
        .await
        .unwrap()
        .iter()
        .any(|r| r.dest == c_peer)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "route to C not retracted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let secret = "the keys are under the mat";
    let sent = a.handle.dm("c", secret).await.unwrap();
    assert_eq!(sent.state, DmState::Queued);
    b.wait_stats("custody taken", |s| s.dm_custody_held == 1)
        .await;
    let a_dir = a.stop().await;

    let mut c = TestNode::start_in(c_dir, "c", &[&b]).await;
    let got = wait_dm(&mut c, secret).await;
    assert_eq!(got.id, sent.id);
    b.wait_stats("custody released", |s| s.dm_custody_held == 0)
        .await;

    let mut a = TestNode::start_in(a_dir, "a", &[&b]).await;
    wait_state(&mut a, sent.id, DmState::Delivered).await;
    let mine = a.handle.dm_history("c", 10, None).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].state, Some(DmState::Delivered));
    // C was sent the DM twice at most (B's custody copy, A's retry); it shows it once.
    c.wait_stats("delivered", |s| s.dm.delivered == 1).await;
    let history = c.handle.dm_history("a", 10, None).await.unwrap();
    assert_eq!(history.len(), 1);
    let b_dir = b.stop().await;
    assert!(!contains(&dir_bytes(b_dir.path()), secret.as_bytes()));
}

/// A DM that reaches a node whose disk is full is not acknowledged (a receipt would tell the
/// sender it arrived, and it would be lost): the recipient says so, the sender keeps it as sent
/// and tries again, and once the disk has room it is stored, shown and acknowledged (issue 18).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_to_a_full_disk_is_not_acknowledged_until_it_is_stored() {
    use std::sync::atomic::Ordering;
    let quick_retry = |c: &mut meshchat_node::Config| c.dm.retry_initial_ms = 300;
    let mut a =
        TestNode::start_with(tempfile::tempdir().unwrap(), Some("a"), &[], quick_retry).await;
    let (mut b, full) = TestNode::start_with_failing_disk("b", &[&a]).await;
    a.wait_peers(1).await;
    b.wait_peers(1).await;
    wait_route(&a, &b, 1).await;
    wait_route(&b, &a, 1).await;

    full.store(true, Ordering::Relaxed);
    let sent = a.handle.dm("b", "kept for later").await.unwrap();
    b.wait_for(
        |e| matches!(e, Event::Warning(w) if w.contains("could not write a direct message")),
    )
    .await;
    // The sender tries again (at least once more) and is never told it arrived.
    b.wait_stats("a second try refused", |s| s.dm.not_stored >= 2)
        .await;
    assert!(!a.take_events().iter().any(|e| matches!(
        e,
        Event::DmStatus {
            state: DmState::Delivered,
            ..
        }
    )));

    full.store(false, Ordering::Relaxed);
    let got = wait_dm(&mut b, "kept for later").await;
    assert_eq!(got.id, sent.id);
    wait_state(&mut a, sent.id, DmState::Delivered).await;
}
