//! Random input sequences: the invariants hold whatever the neighbours send.

use std::collections::{HashSet, VecDeque};

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Step {
    Up(u32),
    Down(u32),
    /// From, message, hops, on its origin's own tree.
    Gossip(u32, u8, u16, bool),
    IHave(u32, Vec<(u8, u16)>),
    Graft(u32, Vec<u8>),
    /// A prune of the tree of no origin, or of author `[a; 32]`'s.
    Prune(u32, Option<u8>),
    /// The same, `Push`.
    Push(u32, Option<u8>),
    Publish(u8),
    /// Answer the oldest validation request.
    Validate,
    Wait(u16),
}

fn step() -> impl Strategy<Value = Step> {
    let peer = 0u32..6;
    let id = 0u8..24;
    prop_oneof![
        peer.clone().prop_map(Step::Up),
        peer.clone().prop_map(Step::Down),
        (peer.clone(), id.clone(), 0u16..12, any::<bool>())
            .prop_map(|(p, i, h, own)| Step::Gossip(p, i, h, own)),
        (
            peer.clone(),
            proptest::collection::vec((id.clone(), 0u16..12), 1..5)
        )
            .prop_map(|(p, e)| Step::IHave(p, e)),
        (peer.clone(), proptest::collection::vec(id.clone(), 0..4))
            .prop_map(|(p, e)| Step::Graft(p, e)),
        (peer.clone(), proptest::option::of(0u8..5)).prop_map(|(p, a)| Step::Prune(p, a)),
        (peer, proptest::option::of(0u8..5)).prop_map(|(p, a)| Step::Push(p, a)),
        id.prop_map(Step::Publish),
        Just(Step::Validate),
        Just(Step::Validate),
        (0u16..300).prop_map(Step::Wait),
    ]
}

proptest! {
    /// Random inputs: no panic, bounds hold, an invalid message (ids 16..24 carry bad payloads) is
    /// never relayed, announced or delivered, a message is delivered at most once and only after
    /// it was checked, and sends go to neighbours only.
    #[test]
    fn random_inputs_keep_the_invariants(steps in proptest::collection::vec(step(), 0..200),
                                         per_origin in any::<bool>()) {
        let (trees, optimize_threshold) = if per_origin {
            (Trees::PerOrigin(ms(500)), None)
        } else {
            (Trees::Anchor(ms(500)), Some(3))
        };
        let config = Config {
            max_peers: 4,
            max_ihave_batch: 3,
            max_seen: 30,
            max_cached: 8,
            max_cached_bytes: 60,
            max_pending: 3,
            max_missing: 5,
            max_sources: 2,
            max_anchor_candidates: 2,
            max_trees: 2,
            trees,
            optimize_threshold,
            ..Config::default()
        };
        let bad = |i: u8| i >= 16;
        // Half the messages have an author (five of them, for the anchor or their trees), half
        // none.
        let ids: Vec<(MessageId, Payload)> = (0..24)
            .map(|i| if i % 2 == 0 { by(i % 5, i) } else { msg(i) })
            .collect();
        let bad_ids: HashSet<MessageId> = (16..24).map(|i| ids[i as usize].0).collect();
        let mut b = Broadcast::new(config);
        let mut now = Instant::now();
        let mut up: HashSet<u32> = HashSet::new();
        let mut to_check: VecDeque<MessageId> = VecDeque::new();
        let mut delivered: HashSet<MessageId> = HashSet::new();
        let mut checked_ok: HashSet<MessageId> = HashSet::new();
        for s in steps {
            let input = match s {
                Step::Up(p) => { if up.len() < 4 { up.insert(p); } Input::NeighborUp(p) }
                Step::Down(p) => { up.remove(&p); Input::NeighborDown(p) }
                Step::Gossip(p, i, h, own) => gossip_on(p, &ids[i as usize], h, own),
                Step::IHave(p, e) => from(p, Message::IHave(e.into_iter().map(|(i, h)| (ids[i as usize].0, h)).collect())),
                Step::Graft(p, e) => from(p, Message::Graft(e.into_iter().map(|i| ids[i as usize].0).collect())),
                Step::Prune(p, a) => from(p, Message::Prune(a.map(|a| [a; 32]))),
                Step::Push(p, a) => from(p, Message::Push(a.map(|a| [a; 32]))),
                Step::Publish(i) if !bad(i) && i % 3 == 0 => Input::Republish { id: ids[i as usize].0, payload: ids[i as usize].1.clone() },
                Step::Publish(i) if !bad(i) => Input::Publish { id: ids[i as usize].0, payload: ids[i as usize].1.clone() },
                Step::Publish(_) => Input::Tick,
                Step::Validate => match to_check.pop_front() {
                    Some(id) => {
                        let ok = !bad_ids.contains(&id);
                        if ok { checked_ok.insert(id); }
                        Input::Validated { id, ok }
                    }
                    None => Input::Tick,
                },
                Step::Wait(d) => { now += ms(d as u64); Input::Tick }
            };
            for o in b.handle(input, now).collect::<Vec<_>>() {
                match o {
                    Output::Send { to, message } => {
                        prop_assert!(up.contains(&to) || b.peers.contains_key(&to), "send to a stranger {to}");
                        match message {
                            Message::Gossip { id, .. } => prop_assert!(!bad_ids.contains(&id)),
                            Message::IHave(e) => {
                                prop_assert!(e.len() <= 3);
                                prop_assert!(e.iter().all(|(id, _)| !bad_ids.contains(id)));
                            }
                            _ => {}
                        }
                    }
                    Output::Validate { id, .. } => to_check.push_back(id),
                    Output::Deliver { id, .. } => {
                        prop_assert!(checked_ok.contains(&id));
                        prop_assert!(delivered.insert(id), "delivered twice");
                    }
                    Output::WakeAt(t) => prop_assert!(t >= now),
                    Output::Misbehaved { .. } => {}
                }
            }
            let (cached, bytes, pending, missing) = b.table_sizes();
            prop_assert!(cached <= 8 && bytes <= 60 && pending <= 3 && missing <= 5);
            prop_assert!(b.peers.len() <= 4);
            prop_assert!(b.peers.values().all(|p| p.ihave.len() <= 3));
            prop_assert!(b.anchor.len() <= b.config.max_anchor_candidates);
            prop_assert!(b.trees.len() <= 2);
            // Lazy lists name neighbours only, each once.
            for lazy in std::iter::once(&b.shared_lazy).chain(b.trees.values().map(|t| &t.lazy)) {
                prop_assert!(lazy.iter().all(|p| b.peers.contains_key(p)));
                prop_assert!(lazy.iter().collect::<HashSet<_>>().len() == lazy.len());
            }
            prop_assert_eq!(b.deadlines.len(), b.missing.len());
            prop_assert_eq!(b.missing_owned.values().sum::<usize>(), b.missing.len());
            prop_assert!(b.missing_owned.values().all(|n| (1..=b.config.max_missing_per_peer).contains(n)));
            prop_assert!(b.missing.values().all(|m| m.sources.len() <= 2));
        }
    }
}
