//! The tracker between real nodes on loopback (issue 12): a chain elects its highest-ranked
//! node even when it is several hops away, everyone registers with it and sees everyone in
//! `who`; when it stops, the rest elect the next one at a newer epoch; when it returns it takes
//! over, and there is never more than one serving once things settle. Forged, stale and
//! outranked claims from a raw peer change nothing.

use std::time::Duration;

use meshchat_core::election::{Entry, Msg};
use meshchat_core::envelope::{Draft, Kind};
use meshchat_core::routed::Routed;
use meshchat_core::{Envelope, Keypair};
use meshchat_node::{Event, PeerId, TrackerView};

use crate::dm::hostile::{key_of, raw_route_peer, RawRoute};
use crate::support::*;
use crate::unix_ms;

/// Waits until every node follows `tracker` (at one epoch), is registered with it, and lists
/// exactly `online` in `who`; returns the epoch.
async fn wait_agreed(nodes: &[&TestNode], tracker: PeerId, online: &[PeerId]) -> u64 {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut want: Vec<PeerId> = online.to_vec();
    want.sort();
    loop {
        let mut views: Vec<TrackerView> = Vec::new();
        let mut whos = Vec::new();
        for n in nodes {
            views.push(n.handle.tracker().await.unwrap());
            let mut who: Vec<PeerId> = n
                .handle
                .who()
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.peer_id)
                .collect();
            who.sort();
            whos.push(who);
        }
        let epoch = views[0].epoch;
        let agreed = views
            .iter()
            .all(|v| v.tracker == Some(tracker) && v.registered && v.epoch == epoch)
            && whos.iter().all(|w| *w == want);
        if agreed {
            let serving: Vec<bool> = views.iter().map(|v| v.is_self).collect();
            for (n, v) in nodes.iter().zip(&views) {
                assert_eq!(v.is_self, n.peer_id == tracker, "{}: {serving:?}", n.name);
            }
            return epoch;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no agreement on tracker {tracker} within {DEADLINE:?}: {views:#?} {whos:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn with_priority(p: u32) -> impl FnOnce(&mut meshchat_node::Config) {
    move |c| c.tracker_priority = Some(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_elects_its_far_end_fails_over_and_takes_it_back() {
    // A - B - C - D, D ranked highest: three hops from A.
    let a = TestNode::start("a", &[]).await;
    let b = TestNode::start("b", &[&a]).await;
    let c = TestNode::start("c", &[&b]).await;
    let d_dir = tempfile::tempdir().unwrap();
    let mut d = TestNode::start_with(d_dir, Some("d"), &[&c], with_priority(500)).await;
    let (pa, pb, pc, pd) = (a.peer_id, b.peer_id, c.peer_id, d.peer_id);
    let first = wait_agreed(&[&a, &b, &c, &d], pd, &[pa, pb, pc, pd]).await;
    assert!(first >= 1);
    d.wait_for(
        |e| matches!(e, Event::TrackerChanged { tracker: Some(t), is_self: true, .. } if *t == pd),
    )
    .await;

    // A newcomer that knows one address (B's) gets the whole roster.
    let e = TestNode::start("e", &[&b]).await;
    let pe = e.peer_id;
    wait_agreed(&[&a, &b, &c, &d, &e], pd, &[pa, pb, pc, pd, pe]).await;
    let who = e.handle.who().await.unwrap();
    let d_entry = who.iter().find(|p| p.peer_id == pd).unwrap();
    assert_eq!((d_entry.nick.as_str(), d_entry.hops), ("d", Some(3)));
    assert_eq!(d_entry.priority, Some(500));
    assert!(!d_entry.addrs.is_empty());

    // The tracker stops: the best of the rest takes over, at a newer epoch; its roster has the
    // live nodes only.
    let d_dir = d.stop().await;
    let next = *[pa, pb, pc, pe].iter().max().unwrap();
    let second = wait_agreed(&[&a, &b, &c, &e], next, &[pa, pb, pc, pe]).await;
    assert!(second > first, "epochs {first} then {second}");

    // It returns (same identity, persisted epoch): it takes over again, and only it serves.
    let d = TestNode::start_with(d_dir, Some("d"), &[&c], with_priority(500)).await;
    let third = wait_agreed(&[&a, &b, &c, &d, &e], pd, &[pa, pb, pc, pd, pe]).await;
    assert!(third > second, "epochs {second} then {third}");

    let stats = d.handle.stats().await.unwrap();
    assert!(stats.tracker.won >= 1, "{:?}", stats.tracker);
    assert_eq!(stats.tracker.forged, 0);
    let b_stats = b.handle.stats().await.unwrap();
    assert!(b_stats.routed_forwarded > 0, "B forwards registrations");
    assert!(b_stats.tracker_checked > 0, "B checks heartbeats");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_not_eligible_never_serves() {
    let a = TestNode::start_with(tempfile::tempdir().unwrap(), Some("a"), &[], |c| {
        c.tracker_priority = None
    })
    .await;
    let b = TestNode::start_with(tempfile::tempdir().unwrap(), Some("b"), &[&a], |c| {
        c.tracker_priority = Some(1)
    })
    .await;
    // B has the lowest priority, but the only one: it serves, A (not eligible) follows.
    wait_agreed(&[&a, &b], b.peer_id, &[a.peer_id, b.peer_id]).await;
    let who = a.handle.who().await.unwrap();
    let a_entry = who.iter().find(|p| p.peer_id == a.peer_id).unwrap();
    assert_eq!(a_entry.priority, None);
    assert!(a_entry.is_self);
    let view = a.handle.tracker().await.unwrap();
    assert_eq!((view.own_priority, view.priority), (None, Some(1)));
}

/// A tracker envelope signed by `key`, routed to `to`.
fn routed(key: &Keypair, to: [u8; 32], msg: &Msg<[u8; 32]>) -> Vec<u8> {
    let env = Envelope::sign(
        key,
        Draft {
            kind: Kind::Tracker,
            target: "tracker",
            timestamp_ms: unix_ms(),
            nonce: rand::random(),
            body: &msg.encode(),
        },
    )
    .unwrap();
    Routed {
        hop_limit: 8,
        to,
        envelope: env.as_bytes().to_vec(),
    }
    .encode()
}

async fn wait_tracker_stats(
    node: &TestNode,
    what: &str,
    pred: impl Fn(&meshchat_node::Stats) -> bool,
) -> meshchat_node::Stats {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let s = node.handle.stats().await.unwrap();
        if pred(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: {what} within {DEADLINE:?}: {:?} dropped {} refused {}",
            node.name,
            s.tracker,
            s.tracker_dropped,
            s.routed_refused
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_outranked_claims_and_bad_registrations_change_nothing() {
    // A serves (priority 300); B follows; a raw peer R, neighbour of A, attacks.
    let a = TestNode::start_with(tempfile::tempdir().unwrap(), Some("a"), &[], |c| {
        c.tracker_priority = Some(300)
    })
    .await;
    let b = TestNode::start("b", &[&a]).await;
    let (pa, pb) = (a.peer_id, b.peer_id);
    let epoch = wait_agreed(&[&a, &b], pa, &[pa, pb]).await;
    let mut raw: RawRoute = raw_route_peer(&a, 91).await;
    let to = key_of(&a);

    // 1. A coordinator that claims to be B's but is signed by R: the signature check refuses it.
    let b_key = key_of(&b);
    let mut forged = Envelope::sign(
        &raw.key,
        Draft {
            kind: Kind::Tracker,
            target: "tracker",
            timestamp_ms: unix_ms(),
            nonce: 1,
            body: &Msg::<[u8; 32]>::Coordinator {
                epoch: epoch + 10,
                priority: u32::MAX,
            }
            .encode(),
        },
    )
    .unwrap()
    .as_bytes()
    .to_vec();
    // The author field follows the version, kind and timestamp fields; put B's key there.
    let at = forged
        .windows(32)
        .position(|w| w == raw.key.public().as_bytes())
        .unwrap();
    forged[at..at + 32].copy_from_slice(&b_key);
    let before = a.handle.stats().await.unwrap();
    raw.send(
        &Routed {
            hop_limit: 8,
            to,
            envelope: forged,
        }
        .encode(),
    )
    .await;
    wait_tracker_stats(&a, "the forged coordinator refused", |s| {
        s.routed_refused > before.routed_refused
    })
    .await;

    // 2. A coordinator at a stale epoch (below the current one), however high its priority.
    raw.send(&routed(
        &raw.key,
        to,
        &Msg::Coordinator {
            epoch: epoch - 1,
            priority: u32::MAX,
        },
    ))
    .await;
    wait_tracker_stats(&a, "the stale coordinator ignored", |s| {
        s.tracker.stale > before.tracker.stale
    })
    .await;

    // 3. A claim from a lower rank than the serving tracker: A answers with its own claim.
    raw.send(&routed(
        &raw.key,
        to,
        &Msg::Heartbeat {
            epoch: epoch + 1,
            priority: 5,
            roster: 0,
        },
    ))
    .await;

    // 4. A registration of somebody else, and a flood of its own registrations.
    let other = Entry {
        id: b_key,
        nick: "not-b".into(),
        addrs: vec![],
        priority: None,
    };
    raw.send(&routed(
        &raw.key,
        to,
        &Msg::Register {
            epoch: a.handle.tracker().await.unwrap().epoch,
            entry: other,
        },
    ))
    .await;
    wait_tracker_stats(&a, "the registration for B refused as forged", |s| {
        s.tracker.forged > before.tracker.forged
    })
    .await;
    let raw_key = *raw.key.public().as_bytes();
    let mine = |n: u32| Entry {
        id: raw_key,
        nick: format!("raw{n}"),
        addrs: vec![],
        priority: None,
    };
    for n in 0..20 {
        let msg = Msg::Register {
            epoch: a.handle.tracker().await.unwrap().epoch,
            entry: mine(n),
        };
        raw.send(&routed(&raw.key, to, &msg)).await;
    }
    wait_tracker_stats(&a, "registrations over the rate refused", |s| {
        s.tracker.registrations_refused >= 15
    })
    .await;

    // A still serves, B still follows it, R is in the roster once under one name, B is not
    // renamed.
    let view = a.handle.tracker().await.unwrap();
    assert!(view.is_self && view.tracker == Some(pa), "{view:?}");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let bv = b.handle.tracker().await.unwrap();
        if bv.tracker == Some(pa) && bv.epoch == view.epoch && bv.registered {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{bv:?} vs {view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let who = a.handle.who().await.unwrap();
    let raws: Vec<_> = who.iter().filter(|p| p.peer_id == raw.id).collect();
    assert!(raws.len() <= 1, "{who:?}");
    assert!(who.iter().all(|p| p.nick != "not-b"), "{who:?}");
    assert!(who.iter().any(|p| p.peer_id == pb && p.nick == "b"));
}

/// A - B - C: C has only ever connected to B; the roster teaches it A's address, and after B
/// is gone C rejoins A from what it stored. C follows A here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_from_the_roster_let_a_node_rejoin_without_its_only_neighbour() {
    rejoin_from_the_roster(false).await;
}

/// The same when C is the tracker: its roster is the registrations it took, and it remembers
/// their addresses too (it used to remember only its connections', and found nobody).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracker_remembers_its_registrants_addresses() {
    rejoin_from_the_roster(true).await;
}

async fn rejoin_from_the_roster(c_serves: bool) {
    let (a_rank, c_rank) = if c_serves { (100, 300) } else { (300, 100) };
    let dir = || tempfile::tempdir().unwrap();
    let mut a = TestNode::start_with(dir(), Some("a"), &[], with_priority(a_rank)).await;
    let b = TestNode::start_with(dir(), Some("b"), &[&a], with_priority(1)).await;
    let c = TestNode::start_with(dir(), Some("c"), &[&b], with_priority(c_rank)).await;
    let (pa, pb, pc) = (a.peer_id, b.peer_id, c.peer_id);
    let tracker = if c_serves { pc } else { pa };
    wait_agreed(&[&a, &b, &c], tracker, &[pa, pb, pc]).await;
    assert!(!c
        .handle
        .peers()
        .await
        .unwrap()
        .iter()
        .any(|p| p.peer_id == pa));

    // B is gone; C restarts knowing no address but what it stored.
    let c_dir = c.stop().await;
    b.stop().await;
    let c = TestNode::start_in_with_nick(c_dir, Some("c"), &[]).await;
    a.wait_for(|e| matches!(e, Event::PeerConnected { peer_id } if *peer_id == pc))
        .await;
    let peers = c.handle.peers().await.unwrap();
    assert!(peers.iter().any(|p| p.peer_id == pa), "{peers:?}");
}
