//! The per-origin trees (issue 25's fourth round), rule by rule.

use super::*;

/// Issue 25, fourth round: with per-origin trees (the default) a message runs on the tree its
/// author put it on (the Gossip's flag): its origin's own tree, which starts eager on every link
/// and where every duplicate prunes its link for that origin only, or the shared tree, shaped by
/// the anchor's duplicates only. Two senders' messages each keep the tree their fastest copies
/// drew.
#[test]
fn each_origin_has_its_own_tree() {
    let t0 = Instant::now();
    let mut b = node(Config::default(), &[1, 2, 3], t0);
    // 0x01 is the anchor (the smallest key heard on the shared tree): its duplicates prune it.
    receive(&mut b, 1, &by(0x01, 0), 0, t0);
    assert_eq!(
        run(&mut b, gossip(3, &by(0x01, 0), 2), t0),
        [send(3, Message::Prune(None))]
    );
    assert_eq!(b.eager_peers().collect::<Vec<_>>(), [1, 2]);
    let (ka, kb) = (Some([0x10; 32]), Some([0x20; 32]));
    let [a1, a2, a3] = [1, 2, 3].map(|n| by(0x10, n));
    let [b1, b2, b3] = [1, 2, 3].map(|n| by(0x20, n));
    // A message on the shared tree: pushed to 2 only (3 is lazy there, 1 sent it), and its
    // duplicate prunes nothing (not the anchor's).
    let out = receive(&mut b, 1, &a1, 0, t0);
    assert!(out.contains(&push(2, &a1, 1)) && !out.contains(&push(3, &a1, 1)));
    assert_eq!(run(&mut b, gossip(2, &a1, 3), t0), []);
    assert_eq!((b.stats().duplicates_kept, b.tree_count()), (1, 0));
    // On its own tree: every link at first, flag kept, and duplicates prune there.
    let out = receive_own(&mut b, 1, &a2, 0, t0);
    assert!(out.contains(&push_own(2, &a2, 1)) && out.contains(&push_own(3, &a2, 1)));
    assert_eq!(
        run(&mut b, gossip_own(2, &a2, 3), t0),
        [send(2, Message::Prune(ka))]
    );
    receive_own(&mut b, 2, &b2, 0, t0);
    assert_eq!(
        run(&mut b, gossip_own(1, &b2, 3), t0),
        [send(1, Message::Prune(kb))]
    );
    assert_eq!(b.eager_peers_of(ka).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(b.eager_peers_of(kb).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(b.eager_peers().collect::<Vec<_>>(), [1, 2], "shared");
    assert_eq!(b.tree_count(), 2);
    // A sender's first message may come after its second (it took the shared tree's longer
    // path): it stays on the shared tree, and prunes nothing of the sender's own.
    receive(&mut b, 2, &b1, 0, t0);
    assert_eq!(run(&mut b, gossip(3, &b1, 3), t0), []);
    assert_eq!(b.eager_peers_of(kb).collect::<Vec<_>>(), [2, 3]);
    // Each sender's next message is pushed on its own tree: a3 to 3 only (2 is lazy for it, and
    // 1 sent it), b3 likewise.
    let out = receive_own(&mut b, 1, &a3, 0, t0);
    assert!(out.contains(&push_own(3, &a3, 1)) && !out.contains(&push_own(2, &a3, 1)));
    let out = receive_own(&mut b, 2, &b3, 0, t0);
    assert!(out.contains(&push_own(3, &b3, 1)) && !out.contains(&push_own(1, &b3, 1)));
    // A prune names its tree; one for a tree not kept changes nothing.
    run(&mut b, from(3, Message::Prune(ka)), t0);
    assert_eq!(b.eager_peers_of(ka).collect::<Vec<_>>(), [1]);
    assert_eq!(b.eager_peers_of(kb).collect::<Vec<_>>(), [2, 3]);
    run(&mut b, from(3, Message::Prune(Some([0x30; 32]))), t0);
    assert_eq!(b.tree_count(), 2);
    // A graft makes its link eager in the trees of the ids it asks for (the answer keeps the
    // flag); one with no ids, in all.
    let out = run(&mut b, from(2, Message::Graft(vec![a3.0])), t0);
    assert_eq!(out, [push_own(2, &a3, 1)]);
    assert_eq!(b.eager_peers_of(ka).collect::<Vec<_>>(), [1, 2]);
    run(&mut b, from(3, Message::Graft(vec![])), t0);
    assert_eq!(b.eager_peers_of(ka).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(b.eager_peers().collect::<Vec<_>>(), [1, 2, 3]);
    // A keyless prune is about the shared tree only.
    run(&mut b, from(1, Message::Prune(None)), t0);
    assert_eq!(b.eager_peers().collect::<Vec<_>>(), [2, 3]);
    assert_eq!(b.eager_peers_of(kb).collect::<Vec<_>>(), [2, 3]);
}

/// Our own messages: the first from an origin runs on the shared tree, the next on its own,
/// unless we are the anchor (the smallest origin heard): its messages shape the shared tree.
#[test]
fn a_node_marks_its_own_messages_from_the_second_on() {
    let t0 = Instant::now();
    let (m1, m2, m3) = (by(0x10, 1), by(0x10, 2), by(0x10, 3));
    let mut b = node(Config::default(), &[1, 2], t0);
    assert_eq!(
        run(&mut b, publish(&m1), t0),
        [
            push(1, &m1, 0),
            push(2, &m1, 0),
            Output::WakeAt(t0 + ms(20))
        ]
    );
    assert_eq!(
        run(&mut b, publish(&m2), t0),
        [push(1, &m2, 0), push(2, &m2, 0)],
        "the anchor"
    );
    receive(&mut b, 1, &by(0x01, 0), 0, t0);
    assert_eq!(
        run(&mut b, publish(&m3), t0),
        [push_own(1, &m3, 0), push_own(2, &m3, 0)]
    );
    // Someone else's message we push on: the shared tree, however often.
    let (o1, o2) = (by(0x20, 1), by(0x20, 2));
    for o in [&o1, &o2] {
        let input = Input::Republish {
            id: o.0,
            payload: o.1.clone(),
        };
        assert_eq!(run(&mut b, input, t0), [push(1, o, 0), push(2, o, 0)]);
    }
    // With one shared tree, never.
    let mut b = node(anchored(), &[1], t0);
    receive(&mut b, 1, &by(0x01, 0), 0, t0);
    run(&mut b, publish(&m1), t0);
    assert_eq!(run(&mut b, publish(&m2), t0), [push(1, &m2, 0)]);
}

/// A push over a link this node pruned (its Prune crossed the push): the node cancels the
/// Prune with a Push, so that both ends agree the link is eager, and prunes its other link.
#[test]
fn a_prune_crossed_by_a_push_is_cancelled() {
    let t0 = Instant::now();
    let mut b = node(Config::default(), &[1, 2], t0);
    let k = Some([0x10; 32]);
    let (a2, a3) = (by(0x10, 2), by(0x10, 3));
    receive_own(&mut b, 1, &a2, 0, t0);
    assert_eq!(
        run(&mut b, gossip_own(2, &a2, 0), t0),
        [send(2, Message::Prune(k))]
    );
    // 2 had pushed a3 before our Prune reached it.
    let out = receive_own(&mut b, 2, &a3, 0, t0);
    assert!(out.contains(&send(2, Message::Push(k))), "{out:?}");
    assert_eq!(
        run(&mut b, gossip_own(1, &a3, 0), t0),
        [send(1, Message::Prune(k))]
    );
    assert_eq!(b.eager_peers_of(k).collect::<Vec<_>>(), [2]);
    assert_eq!(b.stats().prunes_cancelled, 1);
    // An answer to a graft over a lazy link needs no Push: the graft made it eager there.
    let a4 = by(0x10, 4);
    run(&mut b, from(1, Message::IHave(vec![(a4.0, 0)])), t0);
    run(&mut b, Input::Tick, t0 + ms(150));
    let out = receive_own(&mut b, 1, &a4, 0, t0 + ms(160));
    assert!(!out.iter().any(|o| matches!(
        o,
        Output::Send {
            message: Message::Push(_),
            ..
        }
    )));
    assert_eq!(b.stats().prunes_cancelled, 1);
}

/// At most `max_trees` per-origin trees are kept: the one used least recently is forgotten, and
/// its sender's next message starts its tree over, eager on every link.
#[test]
fn the_least_recently_used_tree_is_forgotten() {
    let t0 = Instant::now();
    let config = Config {
        max_trees: 2,
        ..Config::default()
    };
    let mut b = node(config, &[1, 2], t0);
    for (i, author) in [0x10u8, 0x20, 0x10, 0x30].into_iter().enumerate() {
        let (m, t) = (by(author, i as u8), t0 + ms(i as u64));
        receive_own(&mut b, 1, &m, 0, t);
        run(&mut b, gossip_own(2, &m, 0), t);
    }
    assert_eq!((b.tree_count(), b.stats().trees_forgotten), (2, 1));
    let tree = |a: u8| b.eager_peers_of(Some([a; 32])).collect::<Vec<_>>();
    assert_eq!((tree(0x10), tree(0x30)), (vec![1], vec![1]));
    assert_eq!(tree(0x20), [1, 2], "0x20's tree was forgotten");
}

/// Per-origin trees: a node whose parent in a tree leaves asks a lazy neighbour to push that
/// tree at once, and a missing message (its tree unknown) is grafted like any other; the link
/// becomes eager in the message's tree when the answer comes.
#[test]
fn per_origin_repairs() {
    let t0 = Instant::now();
    let mut b = node(Config::default(), &[1, 2, 3], t0);
    let k = Some([0x10; 32]);
    let a2 = by(0x10, 2);
    receive_own(&mut b, 1, &a2, 0, t0);
    run(&mut b, gossip_own(2, &a2, 0), t0);
    run(&mut b, gossip_own(3, &a2, 0), t0);
    assert_eq!(b.eager_peers_of(k).collect::<Vec<_>>(), [1]);
    // Its parent goes: the tree has no eager link left.
    assert_eq!(
        run(&mut b, Input::NeighborDown(1), t0),
        [send(2, Message::Push(k))]
    );
    assert_eq!(b.eager_peers_of(k).collect::<Vec<_>>(), [2]);
    assert_eq!(b.stats().reconnects, 1);
    run(&mut b, from(2, Message::Prune(k)), t0);
    let a3 = by(0x10, 3);
    run(&mut b, from(3, Message::IHave(vec![(a3.0, 1)])), t0);
    let out = run(&mut b, Input::Tick, t0 + ms(150));
    let grafts: Vec<_> = out
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    message: Message::Graft(_),
                    ..
                }
            )
        })
        .collect();
    assert_eq!(grafts, [&send(3, Message::Graft(vec![a3.0]))]);
    assert_eq!(b.eager_peers_of(k).count(), 0, "eager once answered");
    receive_own(&mut b, 3, &a3, 1, t0 + ms(160));
    assert_eq!(b.eager_peers_of(k).collect::<Vec<_>>(), [3]);
    assert_eq!(b.stats().delivered_grafted, 1);
    // A parent that leaves while the node has other eager links in the tree (its children) is
    // replaced too.
    let mut b = node(Config::default(), &[1, 2, 3], t0);
    receive_own(&mut b, 1, &a2, 0, t0);
    run(&mut b, gossip_own(2, &a2, 0), t0);
    assert_eq!(b.eager_peers_of(k).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(
        run(&mut b, Input::NeighborDown(1), t0),
        [send(2, Message::Push(k))]
    );
}
