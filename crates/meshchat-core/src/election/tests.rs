//! The rules one node at a time, bad input, and the wire format (golden bytes, round trips,
//! lengths, a decoder that never panics). Whole networks: `simulation.rs`.

use proptest::prelude::*;

use super::*;

type Id = u32;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Without the start-up spread, so that the grace ends at 1.5 s for everyone.
fn limits() -> Limits {
    Limits {
        start_spread: Duration::ZERO,
        ..Limits::default()
    }
}

fn node(me: Id, priority: Option<u32>, t0: Instant) -> Election<Id> {
    let mut e = Election::new(me, priority, 0, limits(), t0);
    e.handle(Input::Tick, t0);
    e
}

fn recv(e: &mut Election<Id>, from: Id, msg: Msg<Id>, now: Instant) -> Vec<Output<Id>> {
    e.handle(Input::Received { from, msg }, now)
}

fn reach(e: &mut Election<Id>, peers: &[Id], up: bool, now: Instant) -> Vec<Output<Id>> {
    e.handle(
        Input::Reachability(peers.iter().map(|&p| (p, up)).collect()),
        now,
    )
}

fn sends(out: &[Output<Id>]) -> Vec<(Id, Msg<Id>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, msg } => Some((*to, msg.clone())),
            _ => None,
        })
        .collect()
}

fn floods(out: &[Output<Id>]) -> Vec<Msg<Id>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Flood(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn hb(epoch: u64, priority: u32) -> Msg<Id> {
    Msg::Heartbeat {
        epoch,
        priority,
        roster: 0,
    }
}

fn hbv(epoch: u64, priority: u32, roster: u32) -> Msg<Id> {
    Msg::Heartbeat {
        epoch,
        priority,
        roster,
    }
}

fn elect(epoch: u64, priority: Option<u32>) -> Msg<Id> {
    Msg::Election {
        epoch,
        priority,
        flooded: false,
    }
}

fn elect_flood(epoch: u64, priority: Option<u32>) -> Msg<Id> {
    Msg::Election {
        epoch,
        priority,
        flooded: true,
    }
}

fn coord(epoch: u64, priority: u32) -> Msg<Id> {
    Msg::Coordinator { epoch, priority }
}

fn entry(id: Id, priority: Option<u32>) -> Entry<Id> {
    Entry {
        id,
        nick: format!("n{id}"),
        addrs: vec![],
        priority,
    }
}

/// Node 1 following node 9 (epoch 3), with 2..=9 reachable and their priorities known from
/// the roster (all 100).
fn follower(t0: Instant) -> Election<Id> {
    let mut e = node(1, Some(100), t0);
    reach(&mut e, &[2, 3, 4, 5, 6, 7, 8, 9], true, t0);
    recv(&mut e, 9, hb(3, 100), t0);
    let entries = (1..=9).map(|i| entry(i, Some(100))).collect();
    recv(
        &mut e,
        9,
        Msg::Roster {
            epoch: 3,
            version: 1,
            entries,
            truncated: false,
        },
        t0,
    );
    assert_eq!(e.tracker(), Some((9, 3)));
    e
}

// ---- the election ----

#[test]
fn a_lone_node_serves_after_the_grace_and_heartbeats() {
    let t0 = Instant::now();
    let mut e = node(1, Some(100), t0);
    assert_eq!(e.tracker(), None);
    let out = e.handle(Input::Tick, t0 + ms(1500));
    assert!(e.is_serving());
    assert!(out.contains(&Output::Serving(true)));
    assert_eq!(floods(&out), [coord(1, 100)]);
    assert!(out.contains(&Output::TrackerChanged {
        tracker: Some(1),
        epoch: 1
    }));
    let out = e.handle(Input::Tick, t0 + ms(2000));
    assert!(
        matches!(
            &floods(&out)[..],
            [Msg::Heartbeat {
                epoch: 1,
                priority: 100,
                ..
            }]
        ),
        "{out:?}"
    );
    assert!(out.contains(&Output::WakeAt(t0 + ms(2500))));
}

#[test]
fn a_lost_tracker_starts_an_election_asking_the_highest_few() {
    let t0 = Instant::now();
    let mut e = follower(t0);
    let out = reach(&mut e, &[9], false, t0 + ms(10));
    assert!(out.contains(&Output::TrackerChanged {
        tracker: None,
        epoch: 3
    }));
    let asked = sends(&out);
    let election = elect(3, Some(100));
    assert_eq!(asked, [(8, election.clone()), (7, election.clone())]);
    // Neither answers: the next two, then (nobody higher left) it wins at epoch 4.
    let out = e.handle(Input::Tick, t0 + ms(310));
    assert_eq!(sends(&out), [(6, election.clone()), (5, election.clone())]);
    assert_eq!(e.stats().suspected, 2);
    let out = e.handle(Input::Tick, t0 + ms(610));
    assert_eq!(sends(&out), [(4, election.clone()), (3, election.clone())]);
    e.handle(Input::Tick, t0 + ms(910));
    let out = e.handle(Input::Tick, t0 + ms(1210));
    assert!(e.is_serving());
    assert_eq!(floods(&out), [coord(4, 100)]);
}

#[test]
fn an_alive_makes_it_wait_for_the_coordinator() {
    let t0 = Instant::now();
    let mut e = follower(t0);
    reach(&mut e, &[9], false, t0);
    recv(
        &mut e,
        8,
        Msg::Alive {
            epoch: 3,
            priority: 100,
        },
        t0 + ms(50),
    );
    // No win at the election timeout: it waits for 8.
    assert!(floods(&e.handle(Input::Tick, t0 + ms(400))).is_empty());
    assert!(!e.is_serving());
    let out = recv(&mut e, 8, coord(4, 100), t0 + ms(500));
    assert_eq!(e.tracker(), Some((8, 4)));
    assert_eq!(
        sends(&out),
        [(
            8,
            Msg::Register {
                epoch: 4,
                entry: Entry {
                    id: 1,
                    nick: String::new(),
                    addrs: vec![],
                    priority: Some(100)
                }
            }
        )]
    );
    // A coordinator that never comes: it starts over after the coordinator timeout.
    let mut e = follower(t0);
    reach(&mut e, &[9], false, t0);
    let alive = Msg::Alive {
        epoch: 3,
        priority: 100,
    };
    recv(&mut e, 8, alive, t0 + ms(50));
    let out = e.handle(Input::Tick, t0 + ms(1050));
    assert_eq!(sends(&out).len(), 2, "{out:?}");
    assert_eq!(e.stats().elections, 2);
}

#[test]
fn the_best_known_candidate_wins_at_once_and_the_unknown_are_asked_by_flood() {
    let t0 = Instant::now();
    // Everyone reachable is known and lower: a lower claim makes it win at once.
    let mut top = node(10, Some(500), t0);
    reach(&mut top, &[9], true, t0);
    let out = recv(&mut top, 9, hb(3, 100), t0);
    assert!(top.is_serving());
    assert_eq!(floods(&out), [coord(4, 500)]);
    // With reachable nodes of unknown priority, it floods the election first.
    let mut unsure = node(10, Some(500), t0);
    reach(&mut unsure, &[1, 2, 9], true, t0);
    let out = recv(&mut unsure, 9, hb(3, 100), t0);
    assert_eq!(floods(&out), [elect_flood(3, Some(500))]);
    let out = recv(&mut unsure, 1, elect(3, Some(100)), t0 + ms(20));
    assert_eq!(
        sends(&out),
        [(
            1,
            Msg::Alive {
                epoch: 3,
                priority: 500
            }
        )]
    );
    // Nobody higher answered: it wins when the election times out.
    assert!(!unsure.is_serving());
    let out = unsure.handle(Input::Tick, t0 + ms(300));
    assert!(unsure.is_serving(), "{out:?}");
    assert_eq!(floods(&out), [coord(4, 500)]);
}

#[test]
fn a_higher_node_answers_alive_and_runs_its_own_election() {
    let t0 = Instant::now();
    let mut e = follower(t0);
    // 9 is gone for 1 too; 0 (lower) asks 1.
    reach(&mut e, &[9], false, t0);
    let mut h = node(8, Some(100), t0);
    reach(&mut h, &[1, 9], true, t0);
    recv(&mut h, 9, hb(3, 100), t0);
    // 8 follows 9, which outranks it, at the epoch 1 has: it only answers.
    let out = recv(&mut h, 1, elect(3, Some(100)), t0);
    assert_eq!(
        sends(&out),
        [(
            1,
            Msg::Alive {
                epoch: 3,
                priority: 100
            }
        )]
    );
    assert_eq!(h.stats().elections, 0);
    // 9 is gone for 8 as well: now it runs its own, and wins (nobody higher reachable).
    let out = reach(&mut h, &[9], false, t0 + ms(5));
    assert!(h.is_serving(), "{out:?}");
    // A lower node's election reaches the serving tracker: the coordinator is the answer.
    let out = recv(&mut h, 1, elect(3, Some(100)), t0 + ms(10));
    assert_eq!(sends(&out), [(1, coord(4, 100))]);
}

#[test]
fn a_returning_higher_node_takes_over_and_the_lower_tracker_steps_down() {
    let t0 = Instant::now();
    let mut low = node(5, Some(100), t0);
    low.handle(Input::Tick, t0 + ms(1500));
    assert_eq!(low.tracker(), Some((5, 1)));
    // 7 returns and hears 5's heartbeat: it takes over above epoch 1.
    let mut high = node(7, Some(100), t0 + ms(2000));
    reach(&mut high, &[5], true, t0 + ms(2000));
    let out = recv(&mut high, 5, hb(1, 100), t0 + ms(2010));
    assert!(high.is_serving());
    assert_eq!(floods(&out), [coord(2, 100)]);
    // 5 hears it and steps down.
    reach(&mut low, &[7], true, t0 + ms(2000));
    let out = recv(&mut low, 7, coord(2, 100), t0 + ms(2020));
    assert!(!low.is_serving());
    assert!(out.contains(&Output::Serving(false)));
    assert_eq!(low.tracker(), Some((7, 2)));
    assert_eq!(low.stats().stepped_down, 1);
}

#[test]
fn healed_partitions_converge_at_equal_and_unequal_epochs() {
    let t0 = Instant::now();
    // Same epoch: the lower tracker adopts the higher one on its heartbeat.
    let mut a = node(3, Some(100), t0);
    a.handle(Input::Tick, t0 + ms(1500));
    let out = recv(&mut a, 4, hb(1, 100), t0 + ms(2000));
    assert!(out.contains(&Output::Serving(false)));
    assert_eq!(a.tracker(), Some((4, 1)));
    // The higher tracker at an older epoch claims above the lower one's newer epoch.
    let mut b = node(4, Some(100), t0);
    b.handle(Input::Tick, t0 + ms(1500));
    let out = recv(&mut b, 3, hb(7, 100), t0 + ms(2100));
    assert_eq!(floods(&out), [coord(8, 100)]);
    assert_eq!(b.tracker(), Some((4, 8)));
    // Nobody can make it claim faster than once a heartbeat interval.
    let out = recv(&mut b, 2, elect(20, Some(1)), t0 + ms(2200));
    assert!(floods(&out).is_empty());
    let out = b.handle(Input::Tick, t0 + ms(2600));
    assert_eq!(floods(&out), [coord(21, 100)]);
}

#[test]
fn ineligible_nodes_follow_but_never_serve() {
    let t0 = Instant::now();
    let mut e = node(1, None, t0);
    reach(&mut e, &[2], true, t0);
    // Nobody known: it floods an election and waits, longer each time.
    let out = e.handle(Input::Tick, t0 + ms(1500));
    assert_eq!(floods(&out), [elect_flood(0, None)]);
    for t in [1800, 5000, 20_000, 100_000] {
        e.handle(Input::Tick, t0 + ms(t));
        assert!(!e.is_serving());
    }
    let flooded = e.stats().flooded;
    assert!(flooded < 5, "{flooded} floods in 100 s");
    // It never answers elections and follows whoever is elected, even a low priority.
    assert!(recv(&mut e, 2, elect(0, Some(0)), t0 + ms(100_001))
        .iter()
        .all(|o| !matches!(o, Output::Send { .. } | Output::Flood(_))));
    recv(&mut e, 2, coord(1, 0), t0 + ms(100_002));
    assert_eq!(e.tracker(), Some((2, 1)));
}

// ---- bad input ----

#[test]
fn a_lower_coordinator_is_refused_while_a_higher_candidate_is_alive() {
    let t0 = Instant::now();
    let mut e = node(1, Some(100), t0);
    reach(&mut e, &[2, 3], true, t0);
    // 3 outranks 2 and is reachable: 2's coordinator is not followed.
    let alive = Msg::Alive {
        epoch: 0,
        priority: 100,
    };
    recv(&mut e, 3, alive, t0);
    recv(&mut e, 2, coord(5, 100), t0);
    assert_eq!(e.tracker(), None);
    assert_eq!(e.stats().outranked, 1);
    // 3 claims: followed.
    recv(&mut e, 3, coord(6, 100), t0 + ms(10));
    assert_eq!(e.tracker(), Some((3, 6)));
    // A higher candidate that stays silent when asked stops counting as alive.
    let mut e = node(1, Some(100), t0);
    reach(&mut e, &[2, 3], true, t0);
    let e3 = elect(0, Some(100));
    recv(&mut e, 3, e3, t0);
    e.handle(Input::Tick, t0 + ms(1500)); // grace over: asks 3
    e.handle(Input::Tick, t0 + ms(1800)); // no answer: suspected; floods (2 is unknown)
    assert_eq!(e.stats().suspected, 1);
    e.handle(Input::Tick, t0 + ms(2100)); // nobody answers: wins
    assert!(e.is_serving());
    // 2 (which outranks 1) claims: with 3 suspected, nothing stops 1 from following it.
    recv(&mut e, 2, coord(5, 100), t0 + ms(2200));
    assert_eq!(e.tracker(), Some((2, 5)));
    assert!(!e.is_serving());
    // If this node is the higher one, it takes over instead.
    let mut top = node(9, Some(100), t0);
    reach(&mut top, &[2], true, t0);
    recv(&mut top, 2, coord(5, 100), t0);
    assert!(top.is_serving());
    assert_eq!(top.tracker(), Some((9, 6)));
}

#[test]
fn stale_epochs_are_fenced() {
    let t0 = Instant::now();
    let mut e = follower(t0);
    // A higher-ranked node with an older epoch: ignored (it will take over at a newer one).
    recv(&mut e, 9, hb(3, 100), t0);
    recv(&mut e, 10, hb(2, 5000), t0);
    recv(&mut e, 10, coord(2, 5000), t0);
    assert_eq!(e.tracker(), Some((9, 3)));
    assert_eq!(e.stats().stale, 2);
    // At the same epoch, the higher rank wins; at a newer epoch, anyone not outranked.
    recv(&mut e, 10, hb(3, 5000), t0);
    assert_eq!(e.tracker(), Some((10, 3)));
    // After the tracker is gone, an epoch below the highest seen is still refused.
    reach(&mut e, &[10], true, t0);
    reach(&mut e, &[10], false, t0);
    assert_eq!(e.tracker(), None);
    recv(&mut e, 9, coord(2, 100), t0);
    assert_eq!(e.tracker(), None);
    assert_eq!(e.stats().stale, 3);
    // A roster for an older epoch, or from a node that is not the tracker, is not taken.
    let mut e = follower(t0);
    let roster = |epoch| Msg::Roster {
        epoch,
        version: 1,
        entries: vec![entry(5, Some(1))],
        truncated: false,
    };
    assert!(recv(&mut e, 9, roster(2), t0).is_empty());
    assert!(recv(&mut e, 8, roster(3), t0).is_empty());
    assert_eq!(e.stats().unexpected, 1);
}

#[test]
fn forged_senders_are_refused_and_counted() {
    let t0 = Instant::now();
    let mut e = follower(t0);
    // Something claiming to come from this node itself (an echo or a forgery).
    recv(&mut e, 1, coord(50, u32::MAX), t0);
    recv(
        &mut e,
        1,
        Msg::Alive {
            epoch: 50,
            priority: u32::MAX,
        },
        t0,
    );
    assert_eq!(e.stats().forged, 2);
    assert_eq!(e.tracker(), Some((9, 3)));
    assert_eq!(e.max_epoch(), 3);
    // A coordinator relayed by 2 for 8 is 2's claim: there is no field to name another.
    recv(&mut e, 2, coord(4, 100), t0);
    assert_ne!(e.tracker().map(|t| t.0), Some(8));
    // A registration for another node, at the tracker.
    let mut t = node(9, Some(100), t0);
    t.handle(Input::Tick, t0 + ms(1500));
    let out = recv(
        &mut t,
        2,
        Msg::Register {
            epoch: 1,
            entry: entry(3, Some(100)),
        },
        t0 + ms(1600),
    );
    assert!(sends(&out).is_empty());
    assert_eq!(t.stats().forged, 1);
    assert_eq!(t.served_roster().len(), 1);
}

#[test]
fn registrations_only_for_oneself_once_per_gap_bounded_and_expiring() {
    let t0 = Instant::now();
    let limits = Limits {
        max_roster: 3,
        ..limits()
    };
    let mut t = Election::new(9u32, Some(100), 0, limits, t0);
    t.handle(Input::Tick, t0 + ms(1500));
    assert!(t.is_serving());
    let reg = |id: Id, epoch| Msg::Register {
        epoch,
        entry: entry(id, None),
    };
    let now = t0 + ms(3000);
    let out = recv(&mut t, 1, reg(1, 1), now);
    let answer = sends(&out);
    assert!(
        matches!(&answer[..], [(1, Msg::Roster { epoch: 1, entries, truncated: false, .. })]
            if entries.iter().map(|e| e.id).collect::<Vec<_>>() == [1, 9]),
        "{answer:?}"
    );
    // A flood of registrations: one accepted per 5 s; the roster sent again at most once per
    // answer gap, 250 ms (an unchanged registrant whose copy is out of date asks again; those
    // asking sooner are answered once the gap has passed, not each).
    let answered = (0..100)
        .filter(|i| !sends(&recv(&mut t, 1, reg(1, 1), now + ms(i * 10))).is_empty())
        .count();
    assert_eq!(answered, 4);
    assert_eq!(t.stats().roster_resent, 4);
    assert_eq!(t.stats().registrations_refused, 0);
    assert_eq!(t.stats().registrations, 1);
    assert_eq!(sends(&recv(&mut t, 1, reg(1, 1), now + ms(5000))).len(), 1);
    // An epoch the tracker never had is refused.
    recv(&mut t, 2, reg(2, 7), now);
    assert_eq!(t.stats().stale, 1);
    recv(&mut t, 2, reg(2, 1), now);
    // Full (9, 1, 2): a newcomer is refused, nobody evicted.
    recv(&mut t, 3, reg(3, 1), now);
    assert_eq!(t.stats().roster_full, 1);
    assert_eq!(t.served_roster().len(), 3);
    // Entries expire without a refresh; the tracker's own stays.
    t.handle(Input::Tick, now + Duration::from_secs(126));
    let left: Vec<Id> = t.served_roster().iter().map(|e| e.id).collect();
    assert_eq!(left, [9]);
    // A node that does not serve answers nobody.
    let mut f = follower(t0);
    assert!(sends(&recv(&mut f, 2, reg(2, 3), t0)).is_empty());
    assert_eq!(f.stats().unexpected, 1);
}

#[test]
fn registration_is_retried_until_answered_then_refreshed() {
    let t0 = Instant::now();
    let mut e = node(1, Some(100), t0);
    reach(&mut e, &[9], true, t0);
    let out = recv(&mut e, 9, hb(3, 100), t0);
    assert_eq!(sends(&out).len(), 1);
    let mut at = Vec::new();
    let mut now = t0;
    while now < t0 + Duration::from_secs(20) {
        now += ms(100);
        // Heartbeats keep the tracker.
        let mut out = recv(&mut e, 9, hb(3, 100), now);
        out.extend(e.handle(Input::Tick, now));
        if !sends(&out).is_empty() {
            at.push((now - t0).as_millis());
        }
    }
    // Unanswered while the tracker's heartbeats show it alive (its answers may have no route
    // to us): asked again once per answer gap.
    let every_gap: Vec<u128> = (1..=66).map(|s| s * 300).collect();
    assert_eq!(at, every_gap);
    // Answered: the next one a register interval later.
    recv(
        &mut e,
        9,
        Msg::Roster {
            epoch: 3,
            version: 1,
            entries: vec![entry(9, Some(100)), entry(1, Some(100))],
            truncated: false,
        },
        now,
    );
    let answered = now;
    let mut at = Vec::new();
    while now < answered + Duration::from_secs(70) {
        now += ms(400);
        let mut out = recv(&mut e, 9, hbv(3, 100, 1), now);
        out.extend(e.handle(Input::Tick, now));
        if !sends(&out).is_empty() {
            at.push((now - answered).as_millis());
        }
    }
    assert_eq!(at, [60_000, 66_000]);
}

#[test]
fn an_oversized_roster_is_cut_and_says_so() {
    let entries: Vec<Entry<Id>> = (0..2000)
        .map(|i| Entry {
            id: i,
            nick: "x".repeat(32),
            addrs: vec!["/ip4/10.0.0.1/tcp/7447".into(); 2],
            priority: Some(1),
        })
        .collect();
    let m = Msg::Roster {
        epoch: 1,
        version: 1,
        entries: entries.clone(),
        truncated: false,
    };
    let bytes = m.encode();
    assert!(bytes.len() <= MAX_BODY);
    let Msg::Roster {
        entries: got,
        truncated,
        ..
    } = Msg::<Id>::decode(&bytes).unwrap()
    else {
        panic!("a roster")
    };
    assert!(truncated);
    assert!(got.len() > 500 && got.len() < 2000, "{}", got.len());
    assert_eq!(got[..], entries[..got.len()]);
    // A body over the bound is refused before anything else.
    let mut big = bytes.clone();
    big.resize(MAX_BODY + 1, 0);
    assert_eq!(Msg::<Id>::decode(&big), Err(Error::TooLarge(MAX_BODY + 1)));
    // A count the bytes cannot hold is refused before allocating.
    let mut lying = vec![6, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0xff, 0xff];
    lying.extend_from_slice(&[0; 20]);
    assert!(Msg::<Id>::decode(&lying).is_err());
    // From the tracker: more than max_roster entries (or repeats) are cut and counted.
    let t0 = Instant::now();
    let mut e = Election::new(
        1,
        Some(100),
        0,
        Limits {
            max_roster: 10,
            ..limits()
        },
        t0,
    );
    recv(&mut e, 9, hb(3, 100), t0);
    let mut list = entries[..12].to_vec();
    list.insert(0, list[0].clone());
    let out = recv(
        &mut e,
        9,
        Msg::Roster {
            epoch: 3,
            version: 1,
            entries: list,
            truncated: false,
        },
        t0,
    );
    let shown = out.iter().find_map(|o| match o {
        Output::Roster { entries, truncated } => Some((entries.len(), *truncated)),
        _ => None,
    });
    assert_eq!(shown, Some((9, true)));
    assert_eq!(e.stats().roster_cut, 4);
}

#[test]
fn the_roster_answer_starts_at_the_registrant() {
    let t0 = Instant::now();
    let mut t = node(5, Some(100), t0);
    t.handle(Input::Tick, t0 + ms(1500));
    for i in [1, 2, 3, 7, 8] {
        recv(
            &mut t,
            i,
            Msg::Register {
                epoch: 1,
                entry: entry(i, None),
            },
            t0 + ms(2000),
        );
    }
    let out = recv(
        &mut t,
        3,
        Msg::Register {
            epoch: 1,
            entry: entry(3, None),
        },
        t0 + ms(8000),
    );
    let [(3, Msg::Roster { entries, .. })] = &sends(&out)[..] else {
        panic!("{out:?}")
    };
    let ids: Vec<Id> = entries.iter().map(|e| e.id).collect();
    assert_eq!(ids, [3, 5, 7, 8, 1, 2]);
}

#[test]
fn own_entry_is_sanitized() {
    let t0 = Instant::now();
    let mut t = node(5, Some(100), t0);
    t.handle(Input::Tick, t0 + ms(1500));
    t.handle(
        Input::Me {
            nick: format!("a\u{7}{}", "é".repeat(40)),
            addrs: vec![String::new(), "x".repeat(200), "/ip4/1.2.3.4".into()],
        },
        t0 + ms(1600),
    );
    let me = &t.served_roster()[0];
    assert!(me.nick.len() <= MAX_NICK_LEN && me.nick.starts_with("aé"));
    assert_eq!(me.addrs, ["/ip4/1.2.3.4"]);
}

#[test]
fn what_a_node_remembers_of_others_is_bounded() {
    let t0 = Instant::now();
    let limits = Limits {
        max_known: 2,
        max_reachable: 3,
        ..limits()
    };
    let mut e = Election::new(1, Some(100), 0, limits, t0);
    reach(&mut e, &[2, 3, 4, 5], true, t0);
    assert_eq!(e.stats().reachable_full, 1);
    // 2 and 3 known and reachable: a third cannot push either out.
    for p in [2, 3, 4] {
        recv(&mut e, p, elect(0, Some(500)), t0);
    }
    assert_eq!(e.stats().known_full, 1);
    // Once 3 is unreachable, it makes room for 4.
    reach(&mut e, &[3], false, t0);
    recv(&mut e, 4, elect(0, Some(500)), t0);
    assert_eq!(e.stats().known_full, 1);
    // The election asks the two it knows to be reachable and above it: 4 and 2.
    let out = e.handle(Input::Tick, t0 + ms(1500));
    let asked: Vec<Id> = sends(&out).iter().map(|(to, _)| *to).collect();
    assert_eq!(asked, [4, 2]);
}

// ---- the wire ----

#[test]
fn golden_bytes() {
    let cases: Vec<(Msg<Id>, Vec<u8>)> = vec![
        (
            hb(0x0102, 0x0a0b),
            vec![1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0x0a, 0x0b, 0, 0, 0, 0],
        ),
        (
            Msg::Heartbeat {
                epoch: 1,
                priority: 2,
                roster: 0x0304,
            },
            vec![1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 3, 4],
        ),
        (
            elect(1, Some(3)),
            vec![2, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 3],
        ),
        (
            elect(1, None),
            vec![2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        ),
        (
            elect_flood(1, Some(3)),
            vec![2, 0, 0, 0, 0, 0, 0, 0, 1, 3, 0, 0, 0, 3],
        ),
        (
            Msg::Alive {
                epoch: 2,
                priority: 9,
            },
            vec![3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 9],
        ),
        (
            coord(2, 1000),
            vec![4, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 3, 0xe8],
        ),
        (
            Msg::Register {
                epoch: 5,
                entry: Entry {
                    id: 0x0506,
                    nick: "bob".into(),
                    addrs: vec!["/a".into()],
                    priority: Some(100),
                },
            },
            vec![
                5, 0, 0, 0, 0, 0, 0, 0, 5, // tag, epoch
                0, 0, 5, 6, 1, 0, 0, 0, 100, // id, eligible, priority
                3, b'b', b'o', b'b', 1, 2, b'/', b'a', // nick, addrs
            ],
        ),
        (
            Msg::Roster {
                epoch: 3,
                version: 9,
                entries: vec![entry(6, None)],
                truncated: true,
            },
            vec![
                6, 0, 0, 0, 0, 0, 0, 0, 3, // tag, epoch
                0, 0, 0, 9, 1, 0, 1, // version, truncated, count
                0, 0, 0, 6, 0, 0, 0, 0, 0, 2, b'n', b'6', 0,
            ],
        ),
    ];
    for (msg, bytes) in cases {
        assert_eq!(msg.encode(), bytes, "{msg:?}");
        assert_eq!(Msg::<Id>::decode(&bytes).unwrap(), msg);
        if let Msg::Register { entry, .. } = &msg {
            assert_eq!(wire::entry_len(entry), bytes.len() - 9);
        }
    }
    // With the node's 32-byte ids, a heartbeat is 17 bytes and a typical entry 129.
    let e = Entry {
        id: [7u8; 32],
        nick: "12345678".into(),
        addrs: vec!["x".repeat(40); 2],
        priority: Some(100),
    };
    assert_eq!(wire::entry_len(&e), 129);
    assert_eq!(
        Msg::<[u8; 32]>::Heartbeat {
            epoch: 1,
            priority: 1,
            roster: 1
        }
        .encode()
        .len(),
        17
    );
}

#[test]
fn malformed_bodies_are_errors() {
    let bad: &[&[u8]] = &[
        &[],
        &[9],
        &[1, 0, 0],
        &[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0], // trailing byte
        &[2, 0, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 1],             // unknown flag
        &[2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],             // ineligible with a priority
        &[5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 33], // nick of 33
        &[
            5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0xff, 0,
        ], // bad utf-8
        &[
            5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 7, 0,
        ], // control
        &[5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 9], // 9 addresses
        &[
            5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 0,
        ], // empty address
    ];
    for b in bad {
        assert!(Msg::<Id>::decode(b).is_err(), "{b:?}");
    }
}

fn arb_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..max).prop_map(|v| v.into_iter().collect())
}

fn arb_entry() -> impl Strategy<Value = Entry<Id>> {
    (
        any::<Id>(),
        arb_text(40),
        proptest::collection::vec(arb_text(20), 0..10),
        any::<Option<u32>>(),
    )
        .prop_map(|(id, nick, addrs, priority)| Entry {
            id,
            nick,
            addrs,
            priority,
        })
}

fn arb_msg() -> impl Strategy<Value = Msg<Id>> {
    prop_oneof![
        (any::<u64>(), any::<u32>()).prop_map(|(epoch, priority)| hb(epoch, priority)),
        (any::<u64>(), any::<Option<u32>>(), any::<bool>()).prop_map(
            |(epoch, priority, flooded)| Msg::Election {
                epoch,
                priority,
                flooded
            }
        ),
        (any::<u64>(), any::<u32>()).prop_map(|(epoch, priority)| Msg::Alive { epoch, priority }),
        (any::<u64>(), any::<u32>()).prop_map(|(epoch, priority)| coord(epoch, priority)),
        (any::<u64>(), arb_entry()).prop_map(|(epoch, entry)| Msg::Register { epoch, entry }),
        (
            any::<u64>(),
            any::<u32>(),
            proptest::collection::vec(arb_entry(), 0..20),
            any::<bool>()
        )
            .prop_map(|(epoch, version, entries, truncated)| Msg::Roster {
                epoch,
                version,
                entries,
                truncated
            }),
    ]
}

/// What `decode(encode(m))` must give: the message with its entries sanitized.
fn sanitized(m: Msg<Id>) -> Msg<Id> {
    match m {
        Msg::Register { epoch, entry } => Msg::Register {
            epoch,
            entry: sanitize(entry),
        },
        Msg::Roster {
            epoch,
            version,
            entries,
            truncated,
        } => {
            let (entries, cut) = wire::fit_roster(entries);
            Msg::Roster {
                epoch,
                version,
                entries,
                truncated: truncated || cut,
            }
        }
        m => m,
    }
}

proptest! {
    #[test]
    fn round_trips(m in arb_msg()) {
        let bytes = m.encode();
        prop_assert!(bytes.len() <= MAX_BODY);
        prop_assert_eq!(Msg::<Id>::decode(&bytes).unwrap(), sanitized(m));
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Msg::<[u8; 32]>::decode(&bytes);
        let _ = Msg::<Id>::decode(&bytes);
    }

    #[test]
    fn decode_of_a_mutated_message_never_panics(
        m in arb_msg(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let mut bytes = m.encode();
        for (i, v) in flips {
            let n = bytes.len();
            bytes[i % n] = v;
        }
        let keep = cut % (bytes.len() + 1);
        let _ = Msg::<Id>::decode(&bytes);
        let _ = Msg::<Id>::decode(&bytes[..keep]);
    }
}

#[test]
fn a_follower_with_an_old_roster_asks_again_and_is_answered_at_most_once_a_gap() {
    let t0 = Instant::now();
    // The follower: registered with 9, holding roster version 1.
    let mut f = node(1, Some(100), t0);
    reach(&mut f, &[9], true, t0);
    recv(&mut f, 9, hbv(3, 100, 1), t0);
    recv(
        &mut f,
        9,
        Msg::Roster {
            epoch: 3,
            version: 1,
            entries: vec![entry(9, Some(100)), entry(1, Some(100))],
            truncated: false,
        },
        t0,
    );
    // The same version: nothing to ask.
    assert!(sends(&recv(&mut f, 9, hbv(3, 100, 1), t0 + ms(500))).is_empty());
    // A newer one: asks at once, then not again within the answer gap.
    let out = recv(&mut f, 9, hbv(3, 100, 2), t0 + ms(1000));
    assert!(
        matches!(&sends(&out)[..], [(9, Msg::Register { epoch: 3, .. })]),
        "{out:?}"
    );
    assert!(sends(&recv(&mut f, 9, hbv(3, 100, 2), t0 + ms(1100))).is_empty());
    assert_eq!(
        sends(&recv(&mut f, 9, hbv(3, 100, 2), t0 + ms(1300))).len(),
        1
    );
    assert_eq!(f.stats().roster_queries, 2);

    // The tracker: an unchanged registrant asking again within the register gap gets the
    // roster at most once per answer gap; a changed one is refused until the gap.
    let mut t = node(9, Some(100), t0);
    t.handle(Input::Tick, t0 + ms(2500));
    assert!(t.is_serving());
    let epoch = t.tracker().unwrap().1;
    let me = entry(1, Some(100));
    let reg = |e: Entry<Id>| Msg::Register { epoch, entry: e };
    let t1 = t0 + ms(3000);
    assert_eq!(sends(&recv(&mut t, 1, reg(me.clone()), t1)).len(), 1);
    let again = recv(&mut t, 1, reg(me.clone()), t1 + ms(300));
    assert!(
        matches!(&sends(&again)[..], [(1, Msg::Roster { entries, .. })] if entries.len() == 2),
        "{again:?}"
    );
    // Asked again 100 ms later: answered when the gap (250 ms) has passed, not before.
    assert!(sends(&recv(&mut t, 1, reg(me.clone()), t1 + ms(400))).is_empty());
    assert!(sends(&t.handle(Input::Tick, t1 + ms(500))).is_empty());
    assert_eq!(sends(&t.handle(Input::Tick, t1 + ms(550))).len(), 1);
    let renamed = Entry {
        nick: "other".into(),
        ..me.clone()
    };
    assert!(sends(&recv(&mut t, 1, reg(renamed), t1 + ms(2500))).is_empty());
    assert_eq!(t.stats().roster_resent, 2);
    assert_eq!(t.stats().registrations_refused, 1);
}
