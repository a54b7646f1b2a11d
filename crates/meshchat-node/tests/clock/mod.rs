//! Wrong clocks (issue 18): a node whose clock is off its peers' is told so, and one handed
//! envelopes dated ahead of its clock names the neighbour and how far, instead of silence.

use meshchat_core::Keypair;
use meshchat_node::Event;

use crate::hostile::{raw_peer, Reading};
use crate::support::*;
use crate::unix_ms;

const MIN: u64 = 60_000;

fn dated(key: &Keypair, timestamp_ms: u64, text: &str) -> Vec<u8> {
    room_envelope(key, "lobby", timestamp_ms, rand::random(), text)
}

/// Three authors whose clocks agree, 10 minutes behind A's: A's clock is the odd one out,
/// 10 minutes ahead, and A says so once (their messages still flow: older is not refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_clock_is_ahead_of_its_peers_is_told() {
    let mut a = TestNode::start("a", &[]).await;
    let mut g = raw_peer(&a, Reading::Drain).await;
    let behind = unix_ms() - 10 * MIN;
    let envs: Vec<Vec<u8>> = (0..3u8)
        .map(|i| dated(&Keypair::from_secret_bytes(&[80 + i; 32]), behind, "hi"))
        .collect();
    g.publish_all(envs).await.unwrap();
    let e = a
        .wait_for(|e| matches!(e, Event::Clock { off: true, .. }))
        .await;
    assert_eq!(a.collect_messages(3).await.len(), 3);
    let Event::Clock {
        offset_ms, authors, ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(authors, 3);
    let off = offset_ms - (10 * MIN) as i64;
    assert!(off.abs() < 5_000, "{offset_ms} ms");
    // Told once: more of the same says nothing new.
    g.publish(dated(
        &Keypair::from_secret_bytes(&[84; 32]),
        behind,
        "again",
    ))
    .await
    .unwrap();
    a.collect_messages(1).await;
    let again = a
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, Event::Clock { .. }))
        .count();
    assert_eq!(again, 0, "told once");
}

/// An envelope dated 10 minutes ahead of A's clock is refused (more than 5 minutes), and A
/// names the neighbour that handed it over and how far ahead it was, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_from_the_future_name_the_neighbour() {
    let mut a = TestNode::start("a", &[]).await;
    let mut g = raw_peer(&a, Reading::Drain).await;
    let ahead = unix_ms() + 10 * MIN;
    let key = Keypair::from_secret_bytes(&[90; 32]);
    g.publish_all(vec![
        dated(&key, ahead, "from the future"),
        dated(&key, ahead + 1, "and another"),
    ])
    .await
    .unwrap();
    let w = a
        .wait_for(|e| matches!(e, Event::Warning(w) if w.contains("refused messages from")))
        .await;
    let Event::Warning(w) = w else { unreachable!() };
    assert!(w.contains(&g.id.to_string()), "{w}");
    assert!(w.contains("10 min ahead"), "{w}");
    let s = a
        .wait_stats("both refused", |s| s.rejected.from_future == 2)
        .await;
    assert_eq!(s.accepted, 0, "{s:?}");
    a.assert_no_more_messages().await;
    let named = a
        .warnings()
        .iter()
        .filter(|w| w.contains("refused messages from"))
        .count();
    assert_eq!(named, 0, "named once, not once per envelope");
}
