//! Routing tests: the table's rules one by one, the wire format (golden bytes, round trips,
//! arbitrary bytes), and whole networks in a discrete-event harness (`tests/net.rs`,
//! `tests/graphs.rs`).

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

mod graphs;
mod net;

fn limits() -> Limits {
    Limits {
        update_interval: Duration::from_secs(10),
        route_expiry: Duration::from_secs(35),
        request_timeout: Duration::from_secs(1),
        request_retries: 3,
        request_hops: 16,
        // Every change at once, so the rules below show one by one (batching has its own tests).
        triggered_delay: Duration::ZERO,
        max_destinations: 100,
        max_neighbours: 8,
        max_adverts: 4,
    }
}

fn adv(dest: u32, seqno: u16, metric: u16, hops: u16) -> Advert<u32> {
    Advert {
        dest,
        seqno,
        metric,
        hops,
    }
}

fn req(dest: u32, seqno: u16, hop_limit: u16) -> Request<u32> {
    Request {
        dest,
        seqno,
        hop_limit,
    }
}

/// Every advert sent to `p`, in order.
fn updates_to(out: &[Output<u32>], p: u32) -> Vec<Advert<u32>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(to, Message::Update(v)) if *to == p => Some(v.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn requests_to(out: &[Output<u32>], p: u32) -> Vec<Request<u32>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(to, Message::Request(v)) if *to == p => Some(v.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn changed(out: &[Output<u32>]) -> Vec<u32> {
    out.iter()
        .filter_map(|o| match o {
            Output::Changed(v) => Some(v.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Node 0 with neighbours `ns` (cost 1), at `t0`.
fn node(ns: &[u32], t0: Instant) -> Table<u32> {
    let mut t = Table::new(0, 0, limits(), t0);
    t.handle(Input::Tick, t0);
    for &n in ns {
        t.handle(Input::NeighborUp(n, 1), t0);
    }
    t
}

#[test]
fn seqnos_compare_modulo_2_16() {
    assert!(seqno_newer(1, 0));
    assert!(!seqno_newer(0, 0));
    assert!(!seqno_newer(0, 1));
    assert!(seqno_newer(0, u16::MAX), "wraps");
    assert!(seqno_newer(5, 65_000));
    assert!(seqno_newer(0x7fff, 0));
    assert!(!seqno_newer(0x8000, 0), "half way round is not newer");
}

#[test]
fn a_new_neighbour_gets_a_dump_and_its_routes_are_learnt() {
    let t0 = Instant::now();
    let mut t = Table::new(0u32, 7, limits(), t0);
    let out = t.handle(Input::NeighborUp(1, 1), t0);
    assert_eq!(updates_to(&out, 1), vec![adv(0, 7, 0, 0)]);

    let out = t.handle(Input::Update(1, vec![adv(1, 5, 0, 0), adv(2, 3, 1, 1)]), t0);
    assert_eq!(t.next_hop(&1), Some((1, 1)));
    assert_eq!(t.next_hop(&2), Some((1, 2)));
    assert_eq!(changed(&out), vec![1, 2]);
    // The triggered update carries our own distances.
    assert_eq!(updates_to(&out, 1), vec![adv(1, 5, 1, 1), adv(2, 3, 2, 2)]);
    let later = t0 + Duration::from_secs(3);
    let routes = t.routes(later);
    assert_eq!(routes.len(), 2);
    assert_eq!(
        routes[1],
        Route {
            dest: 2,
            next_hop: 1,
            metric: 2,
            hops: 2,
            seqno: 3,
            age: Duration::from_secs(3),
        }
    );
    assert_eq!(t.stats().adverts_received, 2);
}

#[test]
fn strangers_are_ignored_and_counted() {
    let t0 = Instant::now();
    let mut t = node(&[1], t0);
    assert!(t
        .handle(Input::Update(5, vec![adv(7, 1, 1, 1)]), t0)
        .is_empty());
    assert!(t
        .handle(Input::Request(5, vec![req(0, 9, 3)]), t0)
        .is_empty());
    assert_eq!(t.next_hop(&7), None);
    assert_eq!(t.seqno(), 0);
    assert_eq!(t.stats().from_strangers, 2);
    // A neighbour that went away is a stranger again.
    t.handle(Input::NeighborDown(1), t0);
    t.handle(Input::Update(1, vec![adv(7, 1, 1, 1)]), t0);
    assert_eq!(t.stats().from_strangers, 3);
}

#[test]
fn an_unfeasible_route_is_not_selected_and_starvation_asks_for_a_new_seqno() {
    let t0 = Instant::now();
    let mut t = node(&[1, 2], t0);
    t.handle(Input::Update(1, vec![adv(9, 1, 1, 1)]), t0);
    assert_eq!(t.next_hop(&9), Some((1, 2)));
    // Node 2 is no closer than we are (2 is not below our distance 2): it may route through us.
    t.handle(Input::Update(2, vec![adv(9, 1, 2, 2)]), t0);
    assert_eq!(t.next_hop(&9), Some((1, 2)));

    let out = t.handle(Input::Update(1, vec![adv(9, 1, INFINITY, 0)]), t0);
    assert_eq!(t.next_hop(&9), None, "the route via 2 is unfeasible");
    assert_eq!(changed(&out), vec![9]);
    for n in [1, 2] {
        assert_eq!(
            updates_to(&out, n),
            vec![adv(9, 1, INFINITY, 0)],
            "retraction"
        );
    }
    assert_eq!(requests_to(&out, 2), vec![req(9, 2, 16)]);
    assert!(requests_to(&out, 1).is_empty(), "1 has no route");
    assert_eq!(t.stats().requests_sent, 1);

    // Unanswered: retried after the timeout, from the wake-up.
    let t1 = t0 + Duration::from_secs(1);
    let out = t.handle(Input::Tick, t1);
    assert_eq!(requests_to(&out, 2), vec![req(9, 2, 16)]);

    // The newer seqno is feasible whatever its metric.
    let out = t.handle(Input::Update(2, vec![adv(9, 2, 7, 7)]), t1);
    assert_eq!(t.next_hop(&9), Some((2, 8)));
    assert_eq!(changed(&out), vec![9]);
}

#[test]
fn a_shorter_unfeasible_route_asks_for_a_new_seqno() {
    let t0 = Instant::now();
    let mut t = node(&[1, 2], t0);
    t.handle(Input::Update(1, vec![adv(9, 1, 2, 2)]), t0);
    t.handle(Input::Update(2, vec![adv(9, 1, 3, 3)]), t0);
    assert_eq!(t.next_hop(&9), Some((1, 3)));
    // The link to 1 gets expensive: via 1 costs 12, via 2 would cost 4 but is unfeasible.
    let out = t.handle(Input::NeighborUp(1, 10), t0);
    assert_eq!(t.next_hop(&9), Some((1, 3)));
    assert_eq!(t.routes(t0)[0].metric, 12);
    assert_eq!(requests_to(&out, 2), vec![req(9, 2, 16)]);
    assert_eq!(requests_to(&out, 1), vec![req(9, 2, 16)]);
    t.handle(Input::Update(2, vec![adv(9, 2, 3, 3)]), t0);
    assert_eq!(t.next_hop(&9), Some((2, 4)));
}

#[test]
fn a_request_for_ourselves_raises_our_seqno() {
    let t0 = Instant::now();
    let mut t = node(&[1, 2], t0);
    let out = t.handle(Input::Request(1, vec![req(0, 10, 5)]), t0);
    assert_eq!(t.seqno(), 10);
    assert_eq!(t.stats().seqno_bumps, 1);
    for n in [1, 2] {
        assert_eq!(updates_to(&out, n), vec![adv(0, 10, 0, 0)]);
    }
    assert!(
        changed(&out).is_empty(),
        "our own route is not a destination"
    );
    // An older request is answered with what we have, to the asker only.
    let out = t.handle(Input::Request(2, vec![req(0, 3, 5)]), t0);
    assert_eq!(t.seqno(), 10);
    assert_eq!(updates_to(&out, 2), vec![adv(0, 10, 0, 0)]);
    assert!(updates_to(&out, 1).is_empty());
}

#[test]
fn our_own_id_advertised_with_a_newer_seqno_makes_us_jump_past_it() {
    let t0 = Instant::now();
    let mut t = node(&[1], t0);
    let out = t.handle(Input::Update(1, vec![adv(0, 40, 1, 1)]), t0);
    assert_eq!(t.seqno(), 41);
    assert_eq!(updates_to(&out, 1), vec![adv(0, 41, 0, 0)]);
    assert!(t.is_empty(), "no route to ourselves is stored");
}

#[test]
fn a_request_is_answered_or_forwarded_towards_the_destination() {
    let t0 = Instant::now();
    let mut t = node(&[1, 2, 3], t0);
    t.handle(Input::Update(2, vec![adv(9, 4, 1, 1)]), t0);
    // We hold seqno 4: answered.
    let out = t.handle(Input::Request(1, vec![req(9, 4, 5)]), t0);
    assert_eq!(updates_to(&out, 1), vec![adv(9, 4, 2, 2)]);
    assert!(requests_to(&out, 2).is_empty());
    // Newer than ours: forwarded along our route, hop limit less one.
    let out = t.handle(Input::Request(1, vec![req(9, 5, 5)]), t0);
    assert_eq!(requests_to(&out, 2), vec![req(9, 5, 4)]);
    assert!(updates_to(&out, 1).is_empty());
    assert_eq!(t.stats().requests_forwarded, 1);
    // The same request again while the first is on its way: dropped.
    let out = t.handle(Input::Request(3, vec![req(9, 5, 5)]), t0);
    assert!(requests_to(&out, 2).is_empty());
    // Spent hop limit, unknown destination, or a route leading back to the asker: dropped.
    let t1 = t0 + Duration::from_secs(2);
    assert!(requests_to(&t.handle(Input::Request(1, vec![req(9, 6, 1)]), t1), 2).is_empty());
    assert!(t
        .handle(Input::Request(1, vec![req(77, 6, 5)]), t1)
        .is_empty());
    let out = t.handle(Input::Request(2, vec![req(9, 6, 5)]), t1);
    assert!(out.iter().all(|o| !matches!(o, Output::Send(..))));
}

#[test]
fn a_retry_of_a_forwarded_request_is_not_taken_for_a_copy() {
    let t0 = Instant::now();
    let mut t = node(&[1, 2, 3], t0);
    t.handle(Input::Update(2, vec![adv(9, 4, 1, 1)]), t0);
    assert_eq!(
        requests_to(&t.handle(Input::Request(1, vec![req(9, 5, 5)]), t0), 2).len(),
        1
    );
    // A copy within half a timeout is dropped...
    let half = limits().request_timeout / 2;
    let out = t.handle(Input::Request(3, vec![req(9, 5, 5)]), t0 + half / 2);
    assert!(requests_to(&out, 2).is_empty());
    // ...but the requester's retry, a timeout after its request and arriving a little sooner
    // after ours than that, goes on.
    let retry = t0 + limits().request_timeout - Duration::from_millis(3);
    assert_eq!(
        requests_to(&t.handle(Input::Request(1, vec![req(9, 5, 5)]), retry), 2),
        vec![req(9, 5, 4)]
    );
    assert_eq!(t.stats().requests_forwarded, 2);
}

#[test]
fn our_own_request_holds_copies_back_and_starts_a_fresh_round_after_its_retries() {
    let t0 = Instant::now();
    let l = limits();
    let mut t = node(&[1, 2, 3], t0);
    // Starving from a little before our first dump (at t0 + 10 s, then every 10 s).
    let start = t0 + l.update_interval - l.request_timeout;
    t.handle(Input::Update(1, vec![adv(9, 1, 1, 1)]), start);
    t.handle(Input::Update(2, vec![adv(9, 1, 2, 2)]), start);
    let out = t.handle(Input::Update(1, vec![adv(9, 1, INFINITY, 0)]), start);
    assert_eq!(requests_to(&out, 2), vec![req(9, 2, 16)]);
    // We retry it ourselves: a copy from a neighbour is dropped for the whole timeout.
    let late = start + l.request_timeout - Duration::from_millis(3);
    let out = t.handle(Input::Request(3, vec![req(9, 2, 5)]), late);
    assert!(requests_to(&out, 2).is_empty());
    // The retries, a timeout apart...
    let mut last = start;
    for _ in 1..l.request_retries {
        last += l.request_timeout;
        let out = t.handle(Input::Tick, last);
        assert_eq!(requests_to(&out, 2), vec![req(9, 2, 16)]);
    }
    // ...then a fresh round an update interval after the last one: the table wakes for it
    // rather than waiting for a dump at least that late (here a whole interval later).
    let mut now = last + l.request_timeout;
    let mut out = t.handle(Input::Tick, now);
    while requests_to(&out, 2).is_empty() {
        now = wake(&out).expect("a wake-up");
        assert!(
            now <= last + l.update_interval,
            "no request by {:?}",
            now - last
        );
        out = t.handle(Input::Tick, now);
    }
    assert_eq!(now, last + l.update_interval);
    assert_eq!(requests_to(&out, 2), vec![req(9, 2, 16)]);
}

#[test]
fn a_lost_destination_is_retracted_and_forgotten_after_its_hold() {
    let t0 = Instant::now();
    let mut t = node(&[1, 2], t0);
    t.handle(Input::Update(1, vec![adv(9, 1, 1, 1)]), t0);
    let out = t.handle(Input::NeighborDown(1), t0);
    assert_eq!(t.next_hop(&9), None);
    assert_eq!(changed(&out), vec![9]);
    assert_eq!(updates_to(&out, 2), vec![adv(9, 1, INFINITY, 0)]);
    assert!(updates_to(&out, 1).is_empty(), "1 is gone");
    // Kept (its feasibility distance) until no neighbour can still route through us.
    assert_eq!(t.len(), 1);
    t.handle(Input::Tick, t0 + Duration::from_secs(34));
    assert_eq!(t.len(), 1);
    t.handle(Input::Tick, t0 + Duration::from_secs(35));
    assert_eq!(t.len(), 0);
}

#[test]
fn routes_expire_when_no_longer_advertised() {
    let t0 = Instant::now();
    let mut t = node(&[1], t0);
    t.handle(Input::Update(1, vec![adv(9, 1, 1, 1)]), t0);
    let t1 = t0 + Duration::from_secs(20);
    t.handle(Input::Update(1, vec![adv(8, 1, 1, 1)]), t1);
    let out = t.handle(Input::Tick, t0 + Duration::from_secs(34));
    assert!(changed(&out).is_empty());
    // The next wake-up is no later than the first expiry.
    let wake = out.iter().find_map(|o| match o {
        Output::WakeAt(at) => Some(*at),
        _ => None,
    });
    assert!(wake.is_some_and(|w| w <= t0 + Duration::from_secs(35)));
    let out = t.handle(Input::Tick, t0 + Duration::from_secs(35));
    assert_eq!(changed(&out), vec![9]);
    assert_eq!(t.next_hop(&9), None);
    assert_eq!(t.next_hop(&8), Some((1, 2)));
    assert_eq!(t.stats().expired, 1);
}

#[test]
fn a_full_table_refuses_new_destinations() {
    let t0 = Instant::now();
    let mut t = node(&[1], t0);
    for chunk in (1000..1150).collect::<Vec<u32>>().chunks(4) {
        let adverts = chunk.iter().map(|&d| adv(d, 1, 1, 1)).collect();
        t.handle(Input::Update(1, adverts), t0);
    }
    assert_eq!(t.len(), 100);
    assert_eq!(t.stats().refused_destinations, 50);
    assert_eq!(t.next_hop(&1099), Some((1, 2)));
    assert_eq!(t.next_hop(&1100), None);
    // Known destinations still update.
    t.handle(Input::Update(1, vec![adv(1000, 2, 0, 0)]), t0);
    assert_eq!(t.next_hop(&1000), Some((1, 1)));
    // Once lost ones are forgotten, new ones fit.
    t.handle(Input::NeighborDown(1), t0);
    t.handle(Input::NeighborUp(1, 1), t0 + Duration::from_secs(40));
    t.handle(
        Input::Update(1, vec![adv(1100, 1, 1, 1)]),
        t0 + Duration::from_secs(40),
    );
    assert_eq!(t.next_hop(&1100), Some((1, 2)));
}

#[test]
fn messages_are_cut_at_max_adverts_both_ways() {
    let t0 = Instant::now();
    let mut t = node(&[1, 2], t0);
    let out = t.handle(
        Input::Update(1, (10..16).map(|d| adv(d, 1, 1, 1)).collect()),
        t0,
    );
    assert_eq!(t.stats().truncated, 2, "4 read, 2 dropped");
    assert_eq!(t.len(), 4);
    for o in &out {
        if let Output::Send(_, m) = o {
            assert!(m.len() <= 4);
        }
    }
    t.handle(
        Input::Update(1, (20..24).map(|d| adv(d, 1, 1, 1)).collect()),
        t0,
    );
    // The periodic dump: ourselves and 8 routes, in 3 messages of at most 4, to each neighbour.
    let out = t.handle(Input::Tick, t0 + Duration::from_secs(10));
    for n in [1, 2] {
        let msgs: Vec<usize> = out
            .iter()
            .filter_map(|o| match o {
                Output::Send(to, Message::Update(v)) if *to == n => Some(v.len()),
                _ => None,
            })
            .collect();
        assert_eq!(msgs, vec![4, 4, 1]);
        assert_eq!(updates_to(&out, n)[0], adv(0, 0, 0, 0));
    }
}

#[test]
fn neighbours_are_bounded() {
    let t0 = Instant::now();
    let mut t = node(&[], t0);
    for n in 1..=9 {
        t.handle(Input::NeighborUp(n, 1), t0);
    }
    assert!(t.is_neighbour(&8));
    assert!(!t.is_neighbour(&9));
    assert_eq!(t.stats().refused_neighbours, 1);
    t.handle(Input::NeighborUp(0, 1), t0);
    assert!(!t.is_neighbour(&0), "not our own neighbour");
}

#[test]
fn forward_delivers_hands_on_floods_or_expires() {
    let t0 = Instant::now();
    let mut t = node(&[1], t0);
    t.handle(Input::Update(1, vec![adv(9, 1, 1, 1)]), t0);
    assert_eq!(t.forward(&0, 0), Forward::Local);
    assert_eq!(
        t.forward(&9, 5),
        Forward::Next {
            via: 1,
            hop_limit: 4
        }
    );
    assert_eq!(t.forward(&9, 0), Forward::Expired);
    assert_eq!(t.forward(&42, 5), Forward::Flood);
}

#[test]
fn a_larger_link_cost_is_added_and_routes_prefer_cheaper_paths() {
    let t0 = Instant::now();
    let mut t = Table::new(0u32, 0, limits(), t0);
    t.handle(Input::NeighborUp(1, 5), t0);
    t.handle(Input::NeighborUp(2, 1), t0);
    t.handle(Input::Update(1, vec![adv(9, 1, 0, 0)]), t0);
    assert_eq!(t.next_hop(&9), Some((1, 1)));
    assert_eq!(t.routes(t0)[0].metric, 5);
    // Two hops through 2 cost 2 < 5, and 1 < our distance 5: feasible.
    t.handle(Input::Update(2, vec![adv(9, 1, 1, 1)]), t0);
    assert_eq!(t.next_hop(&9), Some((2, 2)));
    assert_eq!(t.routes(t0)[0].metric, 2);
}

fn wake(out: &[Output<u32>]) -> Option<Instant> {
    out.iter().find_map(|o| match o {
        Output::WakeAt(at) => Some(*at),
        _ => None,
    })
}

#[test]
fn triggered_updates_are_batched_and_retractions_go_at_once() {
    let t0 = Instant::now();
    let delay = Duration::from_millis(50);
    let mut t = Table::new(
        0u32,
        0,
        Limits {
            triggered_delay: delay,
            ..limits()
        },
        t0,
    );
    t.handle(Input::Tick, t0);
    t.handle(Input::NeighborUp(1, 1), t0);
    t.handle(Input::NeighborUp(2, 1), t0);
    // The first change after a quiet spell goes at once.
    let out = t.handle(Input::Update(1, vec![adv(1, 1, 0, 0)]), t0);
    assert_eq!(updates_to(&out, 2), vec![adv(1, 1, 1, 1)]);
    // The next ones wait for the interval to end; the outbox hears of them at once.
    let t1 = t0 + Duration::from_millis(10);
    let out = t.handle(Input::Update(1, vec![adv(5, 1, 1, 1)]), t1);
    assert_eq!(updates_to(&out, 2), vec![]);
    assert_eq!(changed(&out), vec![5]);
    assert_eq!(wake(&out), Some(t0 + delay));
    let t2 = t0 + Duration::from_millis(20);
    let out = t.handle(Input::Update(2, vec![adv(6, 1, 1, 1), adv(5, 1, 3, 3)]), t2);
    assert_eq!(updates_to(&out, 1), vec![]);
    assert_eq!(changed(&out), vec![6]);
    // A retraction does not wait, and leaves the batch.
    let t3 = t0 + Duration::from_millis(30);
    let out = t.handle(Input::Update(2, vec![adv(6, 1, INFINITY, 0)]), t3);
    assert_eq!(updates_to(&out, 1), vec![adv(6, 1, INFINITY, 0)]);
    assert_eq!(updates_to(&out, 2), vec![adv(6, 1, INFINITY, 0)]);
    assert_eq!(t.stats().urgent_retractions, 1);
    // Early wake-ups change nothing; at the deadline one update carries what is left.
    let out = t.handle(Input::Tick, t0 + Duration::from_millis(40));
    assert_eq!(updates_to(&out, 1), vec![]);
    let out = t.handle(Input::Tick, t0 + delay);
    assert_eq!(updates_to(&out, 1), vec![adv(5, 1, 2, 2)]);
    assert_eq!(updates_to(&out, 2), vec![adv(5, 1, 2, 2)]);
    assert_eq!(t.stats().triggered_updates, 2);
    // After a quiet interval, a change goes at once again.
    let t4 = t0 + delay * 3;
    let out = t.handle(Input::Update(1, vec![adv(7, 1, 1, 1)]), t4);
    assert_eq!(updates_to(&out, 2), vec![adv(7, 1, 2, 2)]);
}

/// The first periodic dump comes when the node said (a random phase, in the node), then every
/// interval after it; none before it.
#[test]
fn the_first_dump_comes_at_the_phase_given() {
    let t0 = Instant::now();
    let l = limits();
    let first = t0 + l.update_interval + l.update_interval * 3 / 10;
    let mut t = Table::new(0u32, 4, l, t0).with_first_dump(first);
    t.handle(Input::NeighborUp(1, 1), t0);
    let mut dumps = Vec::new();
    let step = l.update_interval / 100;
    for k in 1..400 {
        let now = t0 + step * k;
        if updates_to(&t.handle(Input::Tick, now), 1).contains(&adv(0, 4, 0, 0)) {
            dumps.push(now);
        }
    }
    assert_eq!(
        dumps,
        vec![
            first,
            first + l.update_interval,
            first + l.update_interval * 2
        ]
    );
}

#[test]
fn a_dump_carries_the_waiting_batch() {
    let t0 = Instant::now();
    let l = Limits {
        triggered_delay: Duration::from_millis(50),
        ..limits()
    };
    let mut t = Table::new(0u32, 0, l, t0);
    t.handle(Input::Tick, t0);
    t.handle(Input::NeighborUp(1, 1), t0);
    t.handle(Input::NeighborUp(2, 1), t0);
    let before = l.update_interval - Duration::from_millis(10);
    t.handle(Input::Update(1, vec![adv(1, 1, 0, 0)]), t0 + before);
    t.handle(Input::Update(1, vec![adv(5, 1, 1, 1)]), t0 + before);
    let out = t.handle(Input::Tick, t0 + l.update_interval);
    let sent = updates_to(&out, 2);
    assert_eq!(sent.iter().filter(|a| a.dest == 5).count(), 1, "{sent:?}");
    // Nothing is left to flush.
    let out = t.handle(
        Input::Tick,
        t0 + l.update_interval + Duration::from_millis(60),
    );
    assert_eq!(updates_to(&out, 2), vec![]);
}

#[test]
#[should_panic(expected = "outlive")]
fn inconsistent_limits_panic() {
    let l = Limits {
        route_expiry: Duration::from_secs(5),
        ..limits()
    };
    Table::new(0u32, 0, l, Instant::now());
}

// ---- wire format ----

fn key(b: u8) -> [u8; 32] {
    [b; 32]
}

/// The bytes of the example in the `wire` docs. If this fails, the format changed: that is a
/// new protocol version, not a new constant.
#[test]
fn golden_update_bytes() {
    let m = Message::Update(vec![Advert {
        dest: key(0x11),
        seqno: 5,
        metric: 3,
        hops: 3,
    }]);
    let b = m.encode();
    assert_eq!(&b[..3], &[1, 0, 1]);
    assert_eq!(&b[3..35], &[0x11; 32]);
    assert_eq!(&b[35..], &[0, 5, 0, 3, 0, 3]);
    assert_eq!(b.len(), 41);
    assert_eq!(
        hex::encode(&b),
        "010001".to_owned() + &"11".repeat(32) + "000500030003"
    );
    assert_eq!(Message::decode(&b), Ok(m));
}

#[test]
fn golden_request_bytes() {
    let m = Message::Request(vec![
        Request {
            dest: key(0xaa),
            seqno: 0x0102,
            hop_limit: 512,
        },
        Request {
            dest: key(0xbb),
            seqno: 0xffff,
            hop_limit: 1,
        },
    ]);
    let b = m.encode();
    let want = "020002".to_owned() + &"aa".repeat(32) + "01020200" + &"bb".repeat(32) + "ffff0001";
    assert_eq!(hex::encode(&b), want);
    assert_eq!(b.len(), m.encoded_len());
    assert_eq!(Message::decode(&b), Ok(m));
    // A retraction, and u32 ids (4 bytes, big-endian).
    let r = Message::Update(vec![adv(0x0a0b0c0d, 9, INFINITY, 0)]);
    assert_eq!(hex::encode(r.encode()), "0100010a0b0c0d0009ffff0000");
}

#[test]
fn damaged_messages_are_refused() {
    type M = Message<[u8; 32]>;
    let good = Message::Update(vec![Advert {
        dest: key(1),
        seqno: 1,
        metric: 1,
        hops: 1,
    }])
    .encode();
    assert_eq!(M::decode(&[]), Err(wire::Error::Malformed));
    assert_eq!(M::decode(&[1, 0]), Err(wire::Error::Malformed));
    assert_eq!(M::decode(&good[..40]), Err(wire::Error::Malformed));
    let mut long = good.clone();
    long.push(0);
    assert_eq!(M::decode(&long), Err(wire::Error::Malformed));
    let mut tag = good.clone();
    tag[0] = 3;
    assert_eq!(M::decode(&tag), Err(wire::Error::UnknownTag(3)));
    assert_eq!(M::decode(&[1, 0, 0]), Err(wire::Error::BadCount(0)));
    // A count above MAX_ENTRIES is refused before the length is looked at.
    assert_eq!(M::decode(&[1, 1, 1]), Err(wire::Error::BadCount(257)));
    let huge = vec![1u8; wire::max_len::<[u8; 32]>() + 1];
    assert!(matches!(M::decode(&huge), Err(wire::Error::TooLarge(_))));
    assert_eq!(wire::max_len::<[u8; 32]>(), 3 + 256 * 38);
}

fn advert32() -> impl Strategy<Value = Advert<[u8; 32]>> {
    (any::<[u8; 32]>(), any::<u16>(), any::<u16>(), any::<u16>()).prop_map(
        |(dest, seqno, metric, hops)| Advert {
            dest,
            seqno,
            metric,
            hops,
        },
    )
}

fn message32() -> impl Strategy<Value = Message<[u8; 32]>> {
    prop_oneof![
        prop::collection::vec(advert32(), 1..=wire::MAX_ENTRIES).prop_map(Message::Update),
        prop::collection::vec(
            (any::<[u8; 32]>(), any::<u16>(), any::<u16>()).prop_map(|(dest, seqno, hop_limit)| {
                Request {
                    dest,
                    seqno,
                    hop_limit,
                }
            }),
            1..=wire::MAX_ENTRIES
        )
        .prop_map(Message::Request),
    ]
}

proptest! {
    #[test]
    fn messages_round_trip_at_their_encoded_length(m in message32()) {
        let b = m.encode();
        prop_assert_eq!(b.len(), m.encoded_len());
        prop_assert!(b.len() <= wire::max_len::<[u8; 32]>());
        prop_assert_eq!(Message::decode(&b), Ok(m));
    }

    #[test]
    fn u32_messages_round_trip(v in prop::collection::vec((any::<u32>(), any::<u16>(), any::<u16>(), any::<u16>()), 1..300)) {
        let m = Message::Update(v.iter().map(|&(d, s, m, h)| adv(d, s, m, h)).take(wire::MAX_ENTRIES).collect());
        let b = m.encode();
        prop_assert_eq!(b.len(), m.encoded_len());
        prop_assert_eq!(Message::<u32>::decode(&b), Ok(m));
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..12_000)) {
        if let Ok(m) = Message::<[u8; 32]>::decode(&b) {
            prop_assert!((1..=wire::MAX_ENTRIES).contains(&m.len()));
            prop_assert_eq!(m.encode(), b.clone(), "decoding is canonical");
        }
        if let Ok(m) = Message::<u32>::decode(&b) {
            prop_assert_eq!(m.encode(), b, "decoding is canonical");
        }
    }

    /// Arbitrary entries behind a header that matches their length, to get past the length check.
    #[test]
    fn arbitrary_entries_decode_canonically(tag in 0u8..4, count in 0u16..300, fill in any::<u8>()) {
        let entry = if tag == 1 { 38 } else { 36 };
        let mut b = vec![tag];
        b.extend_from_slice(&count.to_be_bytes());
        b.extend((0..count as usize * entry).map(|i| fill.wrapping_add(i as u8)));
        match Message::<[u8; 32]>::decode(&b) {
            Ok(m) => {
                prop_assert!((1..=2).contains(&tag) && (1..=256).contains(&count));
                prop_assert_eq!(m.encode(), b);
            }
            Err(_) => prop_assert!(!(1..=2).contains(&tag) || count == 0 || count > 256),
        }
    }

    /// Any sequence of inputs: no panic, the table within its bounds, every message to a
    /// neighbour and within `max_adverts`, every route through a neighbour and finite.
    #[test]
    fn arbitrary_inputs_keep_the_table_bounded(
        ops in prop::collection::vec((0u8..6, 0u32..12, 0u32..12, 0u16..6, 0u16..8), 0..200)
    ) {
        let t0 = Instant::now();
        let l = limits();
        let mut t = Table::new(0u32, 0, l, t0);
        let mut now = t0;
        for (op, a, b, s, m) in ops {
            now += Duration::from_millis(u64::from(m) * 700);
            let input = match op {
                0 => Input::NeighborUp(a, m),
                1 => Input::NeighborDown(a),
                2 => Input::Update(a, vec![adv(b, s, if m == 7 { INFINITY } else { m }, m)]),
                3 => Input::Update(a, (0..6).map(|i| adv(b * 10 + i, s, m, m)).collect()),
                4 => Input::Request(a, vec![req(b, s, m)]),
                _ => Input::Tick,
            };
            for o in t.handle(input, now) {
                if let Output::Send(to, msg) = o {
                    prop_assert!(t.is_neighbour(&to));
                    prop_assert!((1..=l.max_adverts).contains(&msg.len()));
                }
            }
            prop_assert!(t.len() <= l.max_destinations);
            for r in t.routes(now) {
                prop_assert!(t.is_neighbour(&r.next_hop));
                prop_assert!(r.metric < INFINITY);
            }
        }
    }
}
