//! The scheduler's rules one at a time; the whole-mesh runs are in `sim.rs`.

use super::*;

fn id(n: u32) -> MessageId {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    MessageId(b)
}

fn sched() -> Scheduler<u32> {
    Scheduler::new(Config::new(Limits::default(), Duration::from_secs(60)))
}

/// Feeds `input`, answering `NeedItems` with an empty set and `Check` with every id lacking;
/// returns the other outputs.
fn feed(s: &mut Scheduler<u32>, input: Input<u32>, now: Instant) -> Vec<Output<u32>> {
    let mut queue: VecDeque<Output<u32>> = s.handle(input, now).into();
    let mut out = Vec::new();
    while let Some(o) = queue.pop_front() {
        match o {
            Output::NeedItems => queue.extend(s.handle(
                Input::Items {
                    items: ItemSet::default(),
                    since_ms: 0,
                },
                now,
            )),
            Output::Check { token, ids } => {
                queue.extend(s.handle(Input::Lacking { token, ids }, now));
            }
            other => out.push(other),
        }
    }
    out
}

fn opens(out: &[Output<u32>]) -> Vec<u32> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                peer,
                request: Request::Sync(_),
                ..
            } => Some(*peer),
            _ => None,
        })
        .collect()
}

fn fetches(out: &[Output<u32>]) -> Vec<(u32, Token, Vec<MessageId>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                peer,
                token,
                request: Request::Fetch(ids),
            } => Some((*peer, *token, ids.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_round_starts_on_contact_and_not_again_within_the_gap() {
    let t0 = Instant::now();
    let mut s = sched();
    let out = s.handle(
        Input::Capable {
            peer: 1,
            offers: true,
        },
        t0,
    );
    assert_eq!(out, [Output::NeedItems], "the items are asked for once");
    let out = s.handle(
        Input::Capable {
            peer: 2,
            offers: true,
        },
        t0,
    );
    assert!(out.is_empty(), "already asked: {out:?}");
    let out = feed(
        &mut s,
        Input::Items {
            items: ItemSet::default(),
            since_ms: 0,
        },
        t0,
    );
    assert_eq!(opens(&out), [1, 2]);
    // Identify again (a second connection), and a maintenance tick: nothing in flight twice.
    let again = Input::Capable {
        peer: 1,
        offers: true,
    };
    assert!(opens(&feed(&mut s, again, t0 + MIN_ROUND_GAP)).is_empty());
    // The peer goes: its round goes with it.
    assert!(s.handle(Input::Gone(2), t0).is_empty());
    assert_eq!(s.capable_count(), 1);
}

#[test]
fn a_join_starts_a_round_with_everyone_whatever_the_gap() {
    let t0 = Instant::now();
    let mut s = sched();
    for p in [1, 2, 3] {
        feed(
            &mut s,
            Input::Capable {
                peer: p,
                offers: false,
            },
            t0,
        );
    }
    // Each round fails (the peer went quiet): a join starts them again at once.
    let tokens: Vec<Token> = s.requests.keys().copied().collect();
    for token in tokens {
        feed(&mut s, Input::Failed { token }, t0);
    }
    let out = feed(&mut s, Input::Maintain, t0 + Duration::from_secs(1));
    assert!(opens(&out).is_empty(), "within the interval: {out:?}");
    let out = feed(&mut s, Input::All, t0 + Duration::from_secs(1));
    assert_eq!(opens(&out), [1, 2, 3]);
}

#[test]
fn the_bucket_of_opens_allows_a_burst_then_one_a_second() {
    let t0 = Instant::now();
    let mut s = sched();
    let taken = (0..10).filter(|_| s.take_open(7, t0)).count();
    assert_eq!(taken, OPEN_BURST as usize);
    assert!(s.take_open(8, t0), "another peer has its own bucket");
    assert!(!s.take_open(7, t0 + Duration::from_millis(900)));
    assert!(s.take_open(7, t0 + Duration::from_millis(1000)));
    // A peer that leaves and comes back has a full bucket.
    s.handle(Input::Gone(7), t0);
    assert_eq!(
        (0..10).filter(|_| s.take_open(7, t0)).count(),
        OPEN_BURST as usize
    );
}

#[test]
fn an_id_offered_by_two_peers_is_fetched_from_one_at_a_time() {
    let t0 = Instant::now();
    let mut s = sched();
    let out = feed(
        &mut s,
        Input::Offered {
            peer: 1,
            ids: vec![id(1), id(2)],
        },
        t0,
    );
    let f = fetches(&out);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].0, &f[0].2), (1, &vec![id(1), id(2)]));
    // Peer 2 offers the same and one more: only the new one is asked of it.
    let out = feed(
        &mut s,
        Input::Offered {
            peer: 2,
            ids: vec![id(2), id(3), id(1)],
        },
        t0,
    );
    assert_eq!(fetches(&out), [(2, fetches(&out)[0].1, vec![id(3)])]);
    assert_eq!(s.fetching_from(&id(2)), [1]);
    // Peer 1 brings only id 1: id 2 is asked of peer 2 once its fetch ends.
    let out = feed(
        &mut s,
        Input::Fetched {
            token: f[0].1,
            got: Fetched::Envelopes {
                arrived: vec![id(1)],
                fresh: vec![id(1)],
                more: false,
            },
        },
        t0,
    );
    assert!(fetches(&out).is_empty(), "peer 2's fetch is in flight");
    let t2 = s
        .requests
        .iter()
        .find(|(_, (p, _))| *p == 2)
        .map(|(t, _)| *t)
        .unwrap();
    let out = s.handle(
        Input::Fetched {
            token: t2,
            got: Fetched::Envelopes {
                arrived: vec![id(3)],
                fresh: vec![id(3)],
                more: false,
            },
        },
        t0,
    );
    // Both waited for peer 1; the store holds id 1 by now, so only id 2 goes.
    let [Output::Check { token, ids }] = &out[..] else {
        panic!("{out:?}");
    };
    assert_eq!(ids, &[id(2), id(1)]);
    let out = s.handle(
        Input::Lacking {
            token: *token,
            ids: vec![id(2)],
        },
        t0,
    );
    assert_eq!(fetches(&out), [(2, *token, vec![id(2)])]);
}

#[test]
fn what_the_store_holds_by_the_time_of_the_fetch_is_not_asked_for() {
    let t0 = Instant::now();
    let mut s = sched();
    let out = s.handle(
        Input::Offered {
            peer: 1,
            ids: vec![id(1), id(2)],
        },
        t0,
    );
    let [Output::Check { token, ids }] = &out[..] else {
        panic!("{out:?}");
    };
    assert_eq!(ids, &[id(1), id(2)]);
    let out = s.handle(
        Input::Lacking {
            token: *token,
            ids: vec![id(2)],
        },
        t0,
    );
    assert_eq!(
        out,
        [Output::Send {
            peer: 1,
            token: *token,
            request: Request::Fetch(vec![id(2)])
        }]
    );
    // All held: nothing is sent, and nothing is in flight.
    let out = s.handle(
        Input::Offered {
            peer: 3,
            ids: vec![id(5)],
        },
        t0,
    );
    let [Output::Check { token, .. }] = &out[..] else {
        panic!("{out:?}");
    };
    let out = s.handle(
        Input::Lacking {
            token: *token,
            ids: vec![],
        },
        t0,
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(s.in_flight(), 1);
}

#[test]
fn a_round_asked_for_waits_for_the_gap_and_a_wake_up_says_when() {
    let t0 = Instant::now();
    let mut s = sched();
    feed(
        &mut s,
        Input::Capable {
            peer: 1,
            offers: true,
        },
        t0,
    );
    // The round ends (refused, not busy).
    let token = *s.requests.keys().next().unwrap();
    feed(
        &mut s,
        Input::Answer {
            token,
            response: Response::Refused(Refusal::NoSession),
        },
        t0,
    );
    let out = feed(
        &mut s,
        Input::RoundAsked(1),
        t0 + Duration::from_millis(200),
    );
    assert_eq!(out, [Output::WakeAt(t0 + ROUND_REQUEST_GAP)]);
    assert_eq!(s.next_deadline(), Some(t0 + ROUND_REQUEST_GAP));
    let out = feed(&mut s, Input::Tick, t0 + ROUND_REQUEST_GAP);
    assert_eq!(opens(&out), [1]);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn a_wrong_answer_is_a_strike_and_gone_peers_leave_no_trace() {
    let t0 = Instant::now();
    let mut s = sched();
    feed(
        &mut s,
        Input::Capable {
            peer: 1,
            offers: true,
        },
        t0,
    );
    let token = *s.requests.keys().next().unwrap();
    let out = feed(
        &mut s,
        Input::Answer {
            token,
            response: Response::Noted,
        },
        t0,
    );
    assert_eq!(
        out,
        [Output::Strike {
            peer: 1,
            why: Strike::NotAReply
        }]
    );
    feed(
        &mut s,
        Input::Offered {
            peer: 1,
            ids: vec![id(1)],
        },
        t0,
    );
    s.take_open(1, t0);
    s.handle(Input::Gone(1), t0);
    assert_eq!((s.capable_count(), s.in_flight()), (0, 0));
    assert!(s.wanted.is_empty() && s.opened.is_empty() && s.starting.is_empty());
}
