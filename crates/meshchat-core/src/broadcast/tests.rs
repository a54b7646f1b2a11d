//! State-machine tests: each rule of the protocol on a few peers and the bounds; the per-origin
//! trees' rules in `tests/trees.rs`, random input sequences in `tests/invariants.rs`. The
//! simulator tests (`simulation.rs`) check the whole network.

use super::*;
use crate::rate::Rate;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Message `n` with no readable origin (not an envelope).
fn msg(n: u8) -> (MessageId, Payload) {
    let payload: Payload = vec![n; 10].into();
    (MessageId::of(&payload), payload)
}

/// Message `n` by author key `[author; 32]`: a payload shaped as a version-1 envelope, whose
/// author the state machine reads as the message's origin (for the anchor).
fn by(author: u8, n: u8) -> (MessageId, Payload) {
    let mut p = vec![crate::envelope::VERSION, 1, 4];
    p.extend_from_slice(b"room");
    p.extend_from_slice(&[author; 32]);
    p.extend_from_slice(&[n; 8]);
    assert_eq!(crate::envelope::peek_author(&p), Some([author; 32]));
    let payload: Payload = p.into();
    (MessageId::of(&payload), payload)
}

fn publish((id, payload): &(MessageId, Payload)) -> Input<u32> {
    Input::Publish {
        id: *id,
        payload: payload.clone(),
    }
}

/// A node with neighbours `peers`, all eager.
fn node(config: Config, peers: &[u32], now: Instant) -> Broadcast<u32> {
    let mut b = Broadcast::new(config);
    for &p in peers {
        assert_eq!(run(&mut b, Input::NeighborUp(p), now), []);
    }
    b
}

fn run(b: &mut Broadcast<u32>, input: Input<u32>, now: Instant) -> Vec<Output<u32>> {
    b.handle(input, now).collect()
}

fn gossip(from: u32, m: &(MessageId, Payload), hops: u16) -> Input<u32> {
    gossip_on(from, m, hops, false)
}

/// A Gossip its author marked as running on its own tree ([`Trees::PerOrigin`]).
fn gossip_own(from: u32, m: &(MessageId, Payload), hops: u16) -> Input<u32> {
    gossip_on(from, m, hops, true)
}

fn gossip_on(from: u32, m: &(MessageId, Payload), hops: u16, own_tree: bool) -> Input<u32> {
    Input::Message {
        from,
        message: gossip_message(m, hops, own_tree),
    }
}

fn gossip_message((id, payload): &(MessageId, Payload), hops: u16, own_tree: bool) -> Message {
    Message::Gossip {
        id: *id,
        hops,
        own_tree,
        payload: payload.clone(),
    }
}

fn from(from: u32, message: Message) -> Input<u32> {
    Input::Message { from, message }
}

fn send(to: u32, message: Message) -> Output<u32> {
    Output::Send { to, message }
}

fn push(to: u32, m: &(MessageId, Payload), hops: u16) -> Output<u32> {
    push_on(to, m, hops, false)
}

/// A push of a message on its origin's own tree.
fn push_own(to: u32, m: &(MessageId, Payload), hops: u16) -> Output<u32> {
    push_on(to, m, hops, true)
}

fn push_on(to: u32, m: &(MessageId, Payload), hops: u16, own_tree: bool) -> Output<u32> {
    send(to, gossip_message(m, hops, own_tree))
}

/// Receives `m` from `peer` and validates it; returns the outputs of the validation.
fn receive(
    b: &mut Broadcast<u32>,
    peer: u32,
    m: &(MessageId, Payload),
    hops: u16,
    now: Instant,
) -> Vec<Output<u32>> {
    receive_on(b, peer, m, hops, false, now)
}

/// As [`receive`], a message on its origin's own tree.
fn receive_own(
    b: &mut Broadcast<u32>,
    peer: u32,
    m: &(MessageId, Payload),
    hops: u16,
    now: Instant,
) -> Vec<Output<u32>> {
    receive_on(b, peer, m, hops, true, now)
}

fn receive_on(
    b: &mut Broadcast<u32>,
    peer: u32,
    m: &(MessageId, Payload),
    hops: u16,
    own_tree: bool,
    now: Instant,
) -> Vec<Output<u32>> {
    let out = run(b, gossip_on(peer, m, hops, own_tree), now);
    assert!(
        out.contains(&Output::Validate {
            id: m.0,
            payload: m.1.clone(),
            from: peer
        }),
        "{out:?}"
    );
    run(b, Input::Validated { id: m.0, ok: true }, now)
}

#[test]
fn a_publish_is_pushed_to_new_neighbours_and_announced_in_one_batch() {
    let t0 = Instant::now();
    let mut b = node(Config::default(), &[1, 2], t0);
    assert_eq!(
        b.eager_peers().collect::<Vec<_>>(),
        [1, 2],
        "new links start eager"
    );
    let (a, c) = (msg(1), msg(2));
    let out = run(
        &mut b,
        Input::Publish {
            id: a.0,
            payload: a.1.clone(),
        },
        t0,
    );
    assert_eq!(
        out,
        [push(1, &a, 0), push(2, &a, 0), Output::WakeAt(t0 + ms(20))]
    );
    let out = run(
        &mut b,
        Input::Publish {
            id: c.0,
            payload: c.1.clone(),
        },
        t0 + ms(5),
    );
    assert_eq!(out, [push(1, &c, 0), push(2, &c, 0)]);
    // Publishing the same id again does nothing.
    assert_eq!(
        run(
            &mut b,
            Input::Publish {
                id: c.0,
                payload: c.1.clone()
            },
            t0
        ),
        []
    );
    assert_eq!(run(&mut b, Input::Tick, t0 + ms(19)), []);
    let batch = Message::IHave(vec![(a.0, 0), (c.0, 0)]);
    assert_eq!(
        run(&mut b, Input::Tick, t0 + ms(20)),
        [send(1, batch.clone()), send(2, batch)]
    );
    assert_eq!(b.stats().ihave_sent, 4);

    // Without announcements to eager links, nothing is announced here.
    let mut b = node(
        Config {
            announce_to_eager: false,
            ..Config::default()
        },
        &[1, 2],
        t0,
    );
    let out = run(
        &mut b,
        Input::Publish {
            id: a.0,
            payload: a.1.clone(),
        },
        t0,
    );
    assert_eq!(out, [push(1, &a, 0), push(2, &a, 0)]);
    assert_eq!(run(&mut b, Input::Tick, t0 + ms(100)), []);
}

#[test]
fn a_first_copy_is_validated_before_it_is_delivered_or_relayed() {
    let t0 = Instant::now();
    let mut b = node(Config::default(), &[1, 2, 3], t0);
    let m = msg(1);
    let out = run(&mut b, gossip(1, &m, 2), t0);
    assert_eq!(
        out,
        [Output::Validate {
            id: m.0,
            payload: m.1.clone(),
            from: 1
        }]
    );
    assert!(b.has_seen(&m.0));
    let out = run(&mut b, Input::Validated { id: m.0, ok: true }, t0);
    assert_eq!(
        out,
        [
            Output::Deliver {
                id: m.0,
                payload: m.1.clone(),
                hops: 3
            },
            push(2, &m, 3),
            push(3, &m, 3),
            Output::WakeAt(t0 + ms(20)),
        ]
    );
    // The announcement skips the peer it came from.
    let ihave = Message::IHave(vec![(m.0, 3)]);
    assert_eq!(
        run(&mut b, Input::Tick, t0 + ms(20)),
        [send(2, ihave.clone()), send(3, ihave)]
    );
    // A second answer for the same id, or one for an unknown id, is ignored.
    assert_eq!(run(&mut b, Input::Validated { id: m.0, ok: true }, t0), []);
    assert_eq!(b.stats().delivered, 1);
}

#[test]
fn a_rejected_message_is_never_relayed_and_its_id_stays_open() {
    let t0 = Instant::now();
    let mut b = node(Config::default(), &[1, 2, 3], t0);
    let (forged, real) = ((msg(1).0, msg(9).1), msg(1));
    run(&mut b, gossip(1, &forged, 0), t0);
    // Another copy while the first is checked: neither pruned nor checked again yet.
    assert_eq!(run(&mut b, gossip(2, &real, 0), t0), []);
    // Rejected: nothing relayed, announced or delivered; the other offerer is grafted at once.
    let out = run(
        &mut b,
        Input::Validated {
            id: forged.0,
            ok: false,
        },
        t0,
    );
    assert_eq!(
        out,
        [
            send(2, Message::Graft(vec![real.0])),
            Output::WakeAt(t0 + ms(75))
        ]
    );
    assert!(!b.has_seen(&real.0));
    assert_eq!(b.stats().rejected, 1);
    // The real one comes in answer and is checked like a first copy.
    let out = receive(&mut b, 2, &real, 0, t0 + ms(10));
    assert!(out.contains(&push(1, &real, 1)) && out.contains(&push(3, &real, 1)));
    assert!(!out.contains(&push(2, &real, 1)));
    let later = run(&mut b, Input::Tick, t0 + ms(500));
    assert!(!later.iter().any(|o| matches!(
        o,
        Output::Send {
            message: Message::Graft(_),
            ..
        }
    )));
}

#[test]
fn a_duplicate_prunes_its_sender() {
    let t0 = Instant::now();
    let mut b = node(Config::default(), &[1, 2, 3], t0);
    let m = msg(1);
    receive(&mut b, 1, &m, 0, t0);
    assert_eq!(
        run(&mut b, gossip(2, &m, 4), t0),
        [send(2, Message::Prune(None))]
    );
    assert_eq!(b.eager_peers().collect::<Vec<_>>(), [1, 3]);
    assert_eq!(b.lazy_peers().collect::<Vec<_>>(), [2]);
    // Duplicates that arrived while the first copy was checked are pruned once it is accepted.
    let n = msg(2);
    run(&mut b, gossip(3, &n, 0), t0);
    run(&mut b, gossip(1, &n, 0), t0);
    let out = run(&mut b, Input::Validated { id: n.0, ok: true }, t0);
    assert!(out.contains(&send(1, Message::Prune(None))), "{out:?}");
    assert_eq!(b.eager_peers().collect::<Vec<_>>(), [3]);
    // The next message is pushed to 3 only and announced to all but the sender.
    let o = msg(3);
    let out = receive(&mut b, 3, &o, 0, t0);
    let pushes: Vec<_> = out
        .iter()
        .filter(|x| {
            matches!(
                x,
                Output::Send {
                    message: Message::Gossip { .. },
                    ..
                }
            )
        })
        .collect();
    assert!(pushes.is_empty(), "{out:?}");
    assert_eq!(b.stats().duplicates, 2);
    assert_eq!(b.stats().prunes_sent, 2);
}

#[test]
fn prune_and_graft_switch_a_link_and_grafts_are_answered_from_the_cache() {
    let t0 = Instant::now();
    let mut b = node(Config::default(), &[1, 2], t0);
    let (m, n) = (msg(1), msg(2));
    run(
        &mut b,
        Input::Publish {
            id: m.0,
            payload: m.1.clone(),
        },
        t0,
    );
    assert_eq!(run(&mut b, from(1, Message::Prune(None)), t0), []);
    let out = run(
        &mut b,
        Input::Publish {
            id: n.0,
            payload: n.1.clone(),
        },
        t0,
    );
    assert_eq!(out, [push(2, &n, 0)]);
    let unknown = msg(3).0;
    let out = run(&mut b, from(1, Message::Graft(vec![m.0, unknown, n.0])), t0);
    assert_eq!(out, [push(1, &m, 0), push(1, &n, 0)]);
    assert_eq!(b.stats().graft_misses, 1);
    assert_eq!(b.eager_peers().collect::<Vec<_>>(), [1, 2]);
    // An empty graft only makes the link eager.
    run(&mut b, from(2, Message::Prune(None)), t0);
    assert_eq!(run(&mut b, from(2, Message::Graft(vec![])), t0), []);
    assert_eq!(b.eager_peers().collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn a_missing_message_is_grafted_after_the_timeout_then_from_the_next_announcer() {
    let t0 = Instant::now();
    let mut b = node(anchored(), &[1, 2, 3], t0);
    run(&mut b, from(1, Message::Prune(None)), t0);
    run(&mut b, from(2, Message::Prune(None)), t0);
    let m = msg(1);
    let out = run(&mut b, from(1, Message::IHave(vec![(m.0, 2)])), t0);
    assert_eq!(out, [Output::WakeAt(t0 + ms(150))]);
    assert_eq!(
        run(&mut b, from(2, Message::IHave(vec![(m.0, 1)])), t0 + ms(10)),
        []
    );
    assert_eq!(run(&mut b, Input::Tick, t0 + ms(149)), []);
    let out = run(&mut b, Input::Tick, t0 + ms(150));
    assert_eq!(
        out,
        [
            send(1, Message::Graft(vec![m.0])),
            Output::WakeAt(t0 + ms(225))
        ]
    );
    assert!(
        b.eager_peers().any(|p| p == 1),
        "a graft makes the link eager"
    );
    let out = run(&mut b, Input::Tick, t0 + ms(225));
    assert_eq!(out[0], send(2, Message::Graft(vec![m.0])));
    // The answer ends the repair: no more grafts.
    receive(&mut b, 2, &m, 1, t0 + ms(230));
    let out = run(&mut b, Input::Tick, t0 + ms(1000));
    assert!(out.iter().all(|o| !matches!(
        o,
        Output::Send {
            message: Message::Graft(_),
            ..
        }
    )));
    assert_eq!(b.stats().grafts_sent, 2);
    assert_eq!(b.table_sizes().3, 0);
}

#[test]
fn grafts_cycle_through_announcers_then_give_up() {
    let t0 = Instant::now();
    let config = Config::default();
    let mut b = node(config, &[1, 2], t0);
    let m = msg(1);
    run(&mut b, from(1, Message::IHave(vec![(m.0, 0)])), t0);
    run(&mut b, from(2, Message::IHave(vec![(m.0, 0)])), t0);
    let mut to = Vec::new();
    let mut now = t0;
    for _ in 0..20 {
        now += ms(75);
        for o in run(&mut b, Input::Tick, now) {
            if let Output::Send {
                to: p,
                message: Message::Graft(ids),
            } = o
            {
                assert_eq!(ids, [m.0]);
                to.push(p);
            }
        }
    }
    assert_eq!(to, [1, 2, 1, 2, 1, 2, 1, 2]);
    assert_eq!(to.len() as u32, config.max_graft_attempts);
    assert_eq!(b.stats().given_up, 1);
    assert_eq!(b.next_deadline(), None);

    // With its only announcer gone, the other neighbours are asked in turn; with none left, the
    // message is given up at its deadline.
    let mut b = node(config, &[1, 2, 3], t0);
    run(&mut b, from(1, Message::IHave(vec![(m.0, 0)])), t0);
    run(&mut b, Input::NeighborDown(1), t0);
    let out = run(&mut b, Input::Tick, t0 + ms(150));
    assert_eq!(out[0], send(2, Message::Graft(vec![m.0])));
    assert_eq!(b.stats().fallback_grafts, 1);
    let out = run(&mut b, Input::Tick, t0 + ms(225));
    assert_eq!(out[0], send(3, Message::Graft(vec![m.0])));
    run(&mut b, Input::NeighborDown(2), t0 + ms(230));
    run(&mut b, Input::NeighborDown(3), t0 + ms(230));
    assert_eq!(run(&mut b, Input::Tick, t0 + ms(300)), []);
    assert_eq!(b.stats().given_up, 1);
    assert_eq!(b.next_deadline(), None);
}

/// A node with the tree optimisation on (off by default).
fn optimising() -> Config {
    Config {
        optimize_threshold: Some(7),
        ..anchored()
    }
}

/// One tree shaped by the anchor's messages (issue 25's second round, the default before
/// per-origin trees).
fn anchored() -> Config {
    Config {
        trees: Trees::Anchor(Duration::from_secs(10)),
        ..Config::default()
    }
}

#[test]
fn the_tree_moves_to_a_much_shorter_lazy_path() {
    let t0 = Instant::now();
    let mut b = node(optimising(), &[1, 2, 3], t0);
    run(&mut b, from(2, Message::Prune(None)), t0);
    run(&mut b, from(3, Message::Prune(None)), t0);
    let m = msg(1);
    receive(&mut b, 1, &m, 9, t0); // our hop count: 10
                                   // Via 3: 3 + 1 = 4 hops, 6 fewer: below the threshold of 7.
    assert_eq!(run(&mut b, from(3, Message::IHave(vec![(m.0, 3)])), t0), []);
    // Via 2: 2 + 1 = 3 hops, 7 fewer: graft 2, prune 1.
    let out = run(&mut b, from(2, Message::IHave(vec![(m.0, 2)])), t0);
    assert_eq!(
        out,
        [
            send(2, Message::Graft(vec![])),
            send(1, Message::Prune(None))
        ]
    );
    assert_eq!(b.eager_peers().collect::<Vec<_>>(), [2]);
    assert_eq!(b.stats().optimisations, 1);
    // Once switched, a further announcement changes nothing.
    assert_eq!(run(&mut b, from(3, Message::IHave(vec![(m.0, 0)])), t0), []);
    // Our own messages never trigger it.
    let n = msg(2);
    run(
        &mut b,
        Input::Publish {
            id: n.0,
            payload: n.1.clone(),
        },
        t0,
    );
    assert_eq!(run(&mut b, from(3, Message::IHave(vec![(n.0, 0)])), t0), []);
}

/// Issue 25: only duplicates of the anchor's messages (the smallest author key heard within the
/// window) prune; another sender's duplicate is counted and leaves the link eager.
#[test]
fn only_the_anchors_duplicates_prune() {
    let t0 = Instant::now();
    let mut b = node(anchored(), &[1, 2, 3], t0);
    let (a1, b1, b2) = (by(0x10, 1), by(0x20, 1), by(0x20, 2));
    // The first author heard is the anchor at once, before its duplicates are judged.
    receive(&mut b, 1, &b1, 0, t0);
    assert_eq!(
        run(&mut b, gossip(2, &b1, 3), t0),
        [send(2, Message::Prune(None))]
    );
    // A smaller key takes over: now 0x20's duplicates leave the links alone.
    receive(&mut b, 1, &a1, 0, t0);
    assert_eq!(
        run(&mut b, gossip(3, &a1, 3), t0),
        [send(3, Message::Prune(None))]
    );
    run(&mut b, Input::NeighborUp(2), t0);
    run(&mut b, Input::NeighborUp(3), t0);
    receive(&mut b, 1, &b2, 0, t0);
    assert_eq!(run(&mut b, gossip(2, &b2, 3), t0), []);
    assert_eq!(b.eager_peers().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(b.stats().duplicates_kept, 1);
    // Duplicates that came while the first copy was checked: the same rule once it is accepted.
    let b3 = by(0x20, 3);
    run(&mut b, gossip(1, &b3, 0), t0);
    run(&mut b, gossip(2, &b3, 0), t0);
    let out = run(&mut b, Input::Validated { id: b3.0, ok: true }, t0);
    assert!(!out.contains(&send(2, Message::Prune(None))), "{out:?}");
    assert_eq!(b.stats().duplicates_kept, 2);
    // Once 0x10 has been silent for the window, 0x20 is the anchor again.
    let later = t0 + Duration::from_secs(10);
    let b4 = by(0x20, 4);
    receive(&mut b, 1, &b4, 0, later);
    assert_eq!(
        run(&mut b, gossip(3, &b4, 3), later),
        [send(3, Message::Prune(None))]
    );
    // Our own message counts as heard too: its duplicate prunes only if we are the anchor.
    let mine = by(0x30, 1);
    run(&mut b, publish(&mine), later);
    assert_eq!(run(&mut b, gossip(2, &mine, 1), later), []);
}

/// A payload with no readable origin (a flooded DM, a newer envelope) sorts after every key:
/// its duplicates prune only while no author was heard within the window. Without the window
/// ([`Trees::Shared`]) every duplicate prunes, the paper's rule.
#[test]
fn keyless_messages_prune_only_while_no_author_is_heard() {
    let t0 = Instant::now();
    let mut b = node(anchored(), &[1, 2, 3], t0);
    let (k1, k2, a) = (msg(1), msg(2), by(0x10, 1));
    receive(&mut b, 1, &k1, 0, t0);
    assert_eq!(
        run(&mut b, gossip(2, &k1, 3), t0),
        [send(2, Message::Prune(None))]
    );
    receive(&mut b, 1, &a, 0, t0);
    receive(&mut b, 1, &k2, 0, t0);
    assert_eq!(run(&mut b, gossip(3, &k2, 3), t0), []);

    let paper = Config {
        trees: Trees::Shared,
        ..Config::default()
    };
    let mut b = node(paper, &[1, 2, 3], t0);
    let (a, z) = (by(0x10, 1), by(0x20, 1));
    receive(&mut b, 1, &a, 0, t0);
    receive(&mut b, 1, &z, 0, t0);
    assert_eq!(
        run(&mut b, gossip(2, &z, 3), t0),
        [send(2, Message::Prune(None))]
    );
}

/// With the optimisation on, only the anchor's messages move the tree: hop counts of different
/// senders disagree on which path is shorter.
#[test]
fn only_the_anchors_messages_move_the_tree() {
    let t0 = Instant::now();
    let mut b = node(optimising(), &[1, 2], t0);
    run(&mut b, from(2, Message::Prune(None)), t0);
    let (a, z) = (by(0x10, 1), by(0x20, 1));
    receive(&mut b, 1, &a, 0, t0);
    receive(&mut b, 1, &z, 9, t0); // our hop count: 10
    assert_eq!(run(&mut b, from(2, Message::IHave(vec![(z.0, 0)])), t0), []);
    assert_eq!(b.stats().optimisations, 0);
    let a2 = by(0x10, 2);
    receive(&mut b, 1, &a2, 9, t0);
    let out = run(&mut b, from(2, Message::IHave(vec![(a2.0, 0)])), t0);
    assert_eq!(
        out,
        [
            send(2, Message::Graft(vec![])),
            send(1, Message::Prune(None))
        ]
    );
    // Off by default.
    let mut b = node(Config::default(), &[1, 2], t0);
    run(&mut b, from(2, Message::Prune(None)), t0);
    receive(&mut b, 1, &a, 20, t0);
    assert_eq!(run(&mut b, from(2, Message::IHave(vec![(a.0, 0)])), t0), []);
}

/// A missing message is first grafted from an announcer whose link is eager (its push was lost:
/// asking it again adds no eager link, so no cycle), then from the others in turn.
#[test]
fn a_lost_push_is_grafted_from_the_eager_announcer_first() {
    let t0 = Instant::now();
    let mut b = node(anchored(), &[1, 2, 3], t0);
    run(&mut b, from(1, Message::Prune(None)), t0);
    run(&mut b, from(2, Message::Prune(None)), t0);
    let m = msg(1);
    run(&mut b, from(1, Message::IHave(vec![(m.0, 2)])), t0);
    run(&mut b, from(2, Message::IHave(vec![(m.0, 2)])), t0);
    run(&mut b, from(3, Message::IHave(vec![(m.0, 2)])), t0 + ms(20));
    let out = run(&mut b, Input::Tick, t0 + ms(150));
    assert_eq!(out[0], send(3, Message::Graft(vec![m.0])));
    assert_eq!(
        b.eager_peers().collect::<Vec<_>>(),
        [3],
        "no new eager link"
    );
    let out = run(&mut b, Input::Tick, t0 + ms(225));
    assert_eq!(out[0], send(1, Message::Graft(vec![m.0])));
    // The answer came after a graft: a delivery by the lazy path.
    receive(&mut b, 1, &m, 2, t0 + ms(230));
    receive(&mut b, 3, &msg(2), 2, t0 + ms(230));
    let st = b.stats();
    assert_eq!((st.delivered_pushed, st.delivered_grafted), (1, 1));
    // Both were sent at 2 hops from their author, so each came 3.
    assert_eq!(st.delivered_hops, 6);
}

#[test]
fn strangers_and_departed_neighbours_are_ignored() {
    let t0 = Instant::now();
    let mut b = node(Config::default(), &[1, 2], t0);
    let m = msg(1);
    assert_eq!(run(&mut b, gossip(7, &m, 0), t0), []);
    assert_eq!(run(&mut b, from(7, Message::Graft(vec![m.0])), t0), []);
    assert_eq!(b.stats().unknown_peer, 2);
    run(&mut b, Input::NeighborDown(2), t0);
    let out = receive(&mut b, 1, &m, 0, t0);
    assert!(
        out.iter().all(|o| !matches!(o, Output::Send { .. })),
        "{out:?}"
    );
    // When the last eager link closes, a lazy one is grafted at once.
    run(&mut b, from(1, Message::Prune(None)), t0);
    run(&mut b, Input::NeighborUp(3), t0);
    run(&mut b, from(3, Message::Prune(None)), t0);
    run(&mut b, Input::NeighborUp(4), t0);
    assert_eq!(
        run(&mut b, Input::NeighborDown(4), t0),
        [send(1, Message::Push(None))]
    );
    assert_eq!(b.eager_peers().collect::<Vec<_>>(), [1]);
    assert_eq!(b.stats().reconnects, 1);
    assert_eq!(run(&mut b, Input::NeighborDown(3), t0), []);
    // A neighbour that comes back starts eager again.
    run(&mut b, Input::NeighborUp(2), t0);
    assert_eq!(b.eager_peers().collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn tables_stay_bounded() {
    let t0 = Instant::now();
    let config = Config {
        max_peers: 3,
        max_ihave_batch: 4,
        max_seen: 50,
        max_cached: 10,
        max_cached_bytes: 55,
        max_pending: 5,
        max_missing: 6,
        max_sources: 2,
        ..Config::default()
    };
    let mut b = node(config, &[1, 2, 3], t0);
    run(&mut b, Input::NeighborUp(4), t0);
    assert_eq!(b.stats().peers_full, 1);
    run(&mut b, from(2, Message::Prune(None)), t0);
    run(&mut b, from(3, Message::Prune(None)), t0);
    // A full announcement batch goes out at once.
    let mut ihaves = 0;
    for i in 0..9u8 {
        let m = msg(100 + i);
        for o in run(
            &mut b,
            Input::Publish {
                id: m.0,
                payload: m.1,
            },
            t0,
        ) {
            if let Output::Send {
                message: Message::IHave(e),
                ..
            } = o
            {
                assert_eq!(e.len(), 4);
                ihaves += 1;
            }
        }
        let (cached, bytes, _, _) = b.table_sizes();
        assert!(cached <= 10 && bytes <= 55, "{cached} {bytes}");
    }
    assert_eq!(ihaves, 6, "two full batches for each of three peers");
    assert_eq!(
        b.table_sizes().0,
        5,
        "five 10-byte payloads fit in 55 bytes"
    );
    // Missing: six ids at most, two announcers each.
    for i in 0..10u8 {
        for p in 1..=3 {
            run(&mut b, from(p, Message::IHave(vec![(msg(i).0, 1)])), t0);
        }
    }
    assert_eq!(b.table_sizes().3, 6);
    assert_eq!(b.stats().missing_full, 12);
    let grafted: usize = run(&mut b, Input::Tick, t0 + ms(150))
        .iter()
        .map(|o| match o {
            Output::Send {
                message: Message::Graft(ids),
                ..
            } => ids.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(grafted, 6);
    // Pending: five at most; a sixth first copy is left to a graft.
    for i in 50..56u8 {
        run(&mut b, gossip(1, &msg(i), 0), t0);
    }
    assert_eq!(b.table_sizes().2, 5);
    assert_eq!(b.stats().pending_full, 1);
    assert!(!b.has_seen(&msg(55).0));
}

#[test]
fn the_cache_expires_and_ids_are_remembered_longer() {
    let t0 = Instant::now();
    let mut b = node(Config::default(), &[1], t0);
    let m = msg(1);
    run(
        &mut b,
        Input::Publish {
            id: m.0,
            payload: m.1.clone(),
        },
        t0,
    );
    run(&mut b, Input::Tick, t0 + ms(20));
    let later = t0 + Duration::from_secs(60);
    assert_eq!(run(&mut b, from(1, Message::Graft(vec![m.0])), later), []);
    assert_eq!(b.stats().graft_misses, 1);
    assert!(b.has_seen(&m.0));
    assert_eq!(
        run(&mut b, gossip(1, &m, 0), later),
        [send(1, Message::Prune(None))]
    );
    let much_later = t0 + Duration::from_secs(5 * 60);
    run(&mut b, Input::Tick, much_later);
    assert!(!b.has_seen(&m.0));
}

/// A node holding `n` cached messages of `len` bytes each, published here, with neighbours 1
/// and 2.
fn holding(config: Config, n: u8, len: usize, t0: Instant) -> (Broadcast<u32>, Vec<MessageId>) {
    let mut b = node(config, &[1, 2], t0);
    let mut ids = Vec::new();
    for i in 0..n {
        let payload: Payload = vec![i; len].into();
        let id = MessageId::of(&payload);
        run(&mut b, Input::Publish { id, payload }, t0);
        ids.push(id);
    }
    (b, ids)
}

fn gossip_count(out: &[Output<u32>], to: u32) -> usize {
    out.iter()
        .filter(
            |o| matches!(o, Output::Send { to: t, message: Message::Gossip { .. } } if *t == to),
        )
        .count()
}

/// Issue 24, finding 1: the same id grafted again (in one Graft or in the next ones of a frame)
/// is answered once per neighbour within the window; another neighbour still gets its answer,
/// and after the window (an honest retry after a lost answer) the id is answered again.
#[test]
fn a_grafted_id_is_answered_once_per_neighbour_within_the_window() {
    let t0 = Instant::now();
    let (mut b, ids) = holding(Config::default(), 1, 1000, t0);
    let m = ids[0];
    let once = run(&mut b, from(1, Message::Graft(vec![m, m, m])), t0);
    assert_eq!(gossip_count(&once, 1), 1, "{once:?}");
    for _ in 0..62 {
        assert_eq!(
            run(&mut b, from(1, Message::Graft(vec![m])), t0 + ms(5)),
            []
        );
    }
    assert_eq!(b.stats().graft_repeats, 64);
    assert_eq!(
        gossip_count(&run(&mut b, from(2, Message::Graft(vec![m])), t0), 2),
        1
    );
    let later = t0 + Config::default().graft_answer_window;
    assert_eq!(
        gossip_count(&run(&mut b, from(1, Message::Graft(vec![m])), later), 1),
        1
    );
}

/// Issue 24, finding 1: the bytes a neighbour's grafts make the node send are bounded by its
/// budget, across reconnects; going over it is an offence (once per Graft), and what was refused
/// is not asked again within the window for free.
#[test]
fn grafts_are_answered_within_a_byte_budget_per_neighbour() {
    let t0 = Instant::now();
    let config = Config {
        graft_bytes: Rate::new(1000, 5000),
        graft_answer_window: ms(50),
        ..Config::default()
    };
    let offences = |out: &[Output<u32>]| {
        out.iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Misbehaved {
                        peer: 1,
                        offence: Offence::GraftOverBudget
                    }
                )
            })
            .count()
    };
    let (mut b, ids) = holding(config, 20, 1000, t0);
    let out = run(&mut b, from(1, Message::Graft(ids.clone())), t0);
    assert_eq!(gossip_count(&out, 1), 5, "{out:?}");
    assert_eq!(offences(&out), 1);
    assert_eq!(b.stats().graft_over_budget, 15);
    // Asking again for the same ids within the window: ignored, no offence.
    let again = run(&mut b, from(1, Message::Graft(ids.clone())), t0 + ms(10));
    assert!(again.is_empty(), "{again:?}");
    // Reconnecting does not refill the budget.
    run(&mut b, Input::NeighborDown(1), t0 + ms(100));
    run(&mut b, Input::NeighborUp(1), t0 + ms(100));
    let out = run(&mut b, from(1, Message::Graft(ids.clone())), t0 + ms(100));
    assert_eq!((gossip_count(&out, 1), offences(&out)), (0, 1), "{out:?}");
    // Two seconds on, the refill answers two more; the rest were refused lately already, so
    // asking again is no new offence (an honest node retries what it misses).
    let out = run(&mut b, from(1, Message::Graft(ids.clone())), t0 + ms(2100));
    assert_eq!((gossip_count(&out, 1), offences(&out)), (2, 0), "{out:?}");
    // Another neighbour has its own budget.
    let out = run(
        &mut b,
        from(2, Message::Graft(ids[..3].to_vec())),
        t0 + ms(2100),
    );
    assert_eq!(gossip_count(&out, 2), 3);
    assert!(!out.iter().any(|o| matches!(o, Output::Misbehaved { .. })));
}

/// Issue 24, finding 2: announcements beyond a neighbour's rate are dropped, and one neighbour's
/// announcements hold at most its share of the missing table, so another's still get in.
#[test]
fn announcements_are_rate_limited_and_one_neighbour_cannot_fill_the_missing_table() {
    let t0 = Instant::now();
    let config = Config {
        ihave_entries: Rate::new(10, 100),
        max_missing: 64,
        max_missing_per_peer: 16,
        ..Config::default()
    };
    let mut b = node(config, &[1, 2], t0);
    let bogus: Vec<(MessageId, u16)> = (0..200u32)
        .map(|i| (MessageId::of(&i.to_be_bytes()), 0))
        .collect();
    for chunk in bogus.chunks(50) {
        run(&mut b, from(1, Message::IHave(chunk.to_vec())), t0);
    }
    assert_eq!(b.stats().ihave_over_rate, 100);
    assert_eq!(b.table_sizes().3, 16);
    assert_eq!(b.stats().missing_peer_full, 84);
    let real = msg(7);
    run(&mut b, from(2, Message::IHave(vec![(real.0, 0)])), t0);
    assert_eq!(b.table_sizes().3, 17);
    // The honest announcer's id is grafted from it when due.
    let out = run(&mut b, Input::Tick, t0 + Config::default().graft_timeout);
    assert!(
        out.contains(&send(2, Message::Graft(vec![real.0]))),
        "{out:?}"
    );
}

mod invariants;
mod trees;
