//! Reconciliation tests: random set pairs, large sets, bounds, the wire format (golden bytes and a
//! parser written from the module docs), and damaged or arbitrary frames.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;

const BASE: u64 = 1_700_000_000_000;

/// A distinct, well-spread id per number.
fn id(n: u64) -> MessageId {
    MessageId(Sha256::digest(n.to_be_bytes()).into())
}

fn unbounded() -> Limits {
    Limits {
        max_rounds: 10_000,
        max_have: usize::MAX,
        max_need: usize::MAX,
        max_items: usize::MAX,
        ..Limits::default()
    }
}

/// What a whole session between two in-memory peers came to.
#[derive(Debug)]
struct Outcome {
    have: BTreeSet<MessageId>,
    need: BTreeSet<MessageId>,
    /// Ids reported, duplicates included.
    reported: usize,
    /// Replies the initiator handled (round trips).
    rounds: u32,
    /// Bytes of every frame, both ways.
    bytes: usize,
    /// The largest frame either way.
    largest: usize,
    end: Next,
}

/// The in-memory two-party driver: `a` initiates over its items from `since` on, `b` responds
/// with its window starting at `horizon`; frames are exchanged until the initiator ends.
fn reconcile(
    a: &ItemSet,
    b: &ItemSet,
    since: u64,
    horizon: u64,
    limits: &Limits,
) -> Result<Outcome, Error> {
    let (mut initiator, mut frame) = Initiator::new(a, since, limits);
    let mut responder: Option<Responder> = None;
    let mut out = Outcome {
        have: BTreeSet::new(),
        need: BTreeSet::new(),
        reported: 0,
        rounds: 0,
        bytes: 0,
        largest: 0,
        end: Next::Done,
    };
    loop {
        out.bytes += frame.len();
        out.largest = out.largest.max(frame.len());
        let reply = match &mut responder {
            None => {
                let (r, reply) = Responder::open(&frame, b, horizon, limits)?;
                responder = Some(r);
                reply
            }
            Some(r) => r.handle(&frame)?,
        };
        out.bytes += reply.len();
        out.largest = out.largest.max(reply.len());
        let step = initiator.handle(&reply)?;
        out.reported += step.have.len() + step.need.len();
        out.have.extend(step.have);
        out.need.extend(step.need);
        out.rounds = initiator.rounds();
        match step.next {
            Next::Send(next) => frame = next,
            end => {
                out.end = end;
                return Ok(out);
            }
        }
    }
}

/// Items by number: `(timestamp, id(n))`.
fn set(items: impl IntoIterator<Item = (u64, u64)>) -> ItemSet {
    ItemSet::new(items.into_iter().map(|(ts, n)| (ts, id(n))), usize::MAX)
}

fn ids(ns: impl IntoIterator<Item = u64>) -> BTreeSet<MessageId> {
    ns.into_iter().map(id).collect()
}

/// Which side holds item `i`: 0 only the initiator, 1 only the responder, 2 both.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Random,
    Identical,
    Disjoint,
    OneMissingEachSide,
    /// The initiator's set is a subset of the responder's.
    Subset,
    /// The responder's set is a subset of the initiator's.
    Superset,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Random),
        Just(Shape::Identical),
        Just(Shape::Disjoint),
        Just(Shape::OneMissingEachSide),
        Just(Shape::Subset),
        Just(Shape::Superset),
    ]
}

fn check_pair(items: &[(u64, u8)], shape: Shape, frame_size: usize) -> Result<(), TestCaseError> {
    let n = items.len();
    let side = |i: usize, random: u8| -> u8 {
        match shape {
            Shape::Random => random,
            Shape::Identical => 2,
            Shape::Disjoint => random % 2,
            Shape::OneMissingEachSide if i == 0 => 0,
            Shape::OneMissingEachSide if i == n - 1 => 1,
            Shape::OneMissingEachSide => 2,
            Shape::Subset => 1 + random % 2,
            Shape::Superset => [0, 2][usize::from(random % 2)],
        }
    };
    let (mut a, mut b, mut only_a, mut only_b) = (vec![], vec![], vec![], vec![]);
    for (i, &(ts, random)) in items.iter().enumerate() {
        let item = (BASE + ts, i as u64);
        match side(i, random) {
            0 => {
                a.push(item);
                only_a.push(i as u64);
            }
            1 => {
                b.push(item);
                only_b.push(i as u64);
            }
            _ => {
                a.push(item);
                b.push(item);
            }
        }
    }
    let limits = Limits {
        frame_size,
        ..unbounded()
    };
    let out = reconcile(&set(a), &set(b), 0, 0, &limits)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&out.end, &Next::Done);
    prop_assert_eq!(&out.have, &ids(only_a));
    prop_assert_eq!(&out.need, &ids(only_b));
    prop_assert_eq!(
        out.reported,
        out.have.len() + out.need.len(),
        "an id reported twice"
    );
    prop_assert!(
        out.largest <= frame_size,
        "a frame of {} bytes",
        out.largest
    );
    Ok(())
}

proptest! {
    /// Random pairs of sets in every shape; few distinct timestamps, so bounds need id prefixes;
    /// small frames, so large differences take several rounds.
    #[test]
    fn random_set_pairs_reconcile_exactly(
        items in prop::collection::vec((0u64..40, 0u8..3), 0..1500),
        shape in shape(),
        frame_size in MIN_FRAME_LEN..8192,
    ) {
        check_pair(&items, shape, frame_size)?;
    }
}

#[test]
fn empty_sets_reconcile_in_one_round_trip() {
    let out = reconcile(
        &ItemSet::default(),
        &ItemSet::default(),
        0,
        0,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(out.end, Next::Done);
    assert_eq!((out.rounds, out.have.len(), out.need.len()), (1, 0, 0));
}

/// 100 000 items, two to a timestamp.
fn hundred_thousand() -> Vec<(u64, u64)> {
    (0..100_000u64).map(|i| (BASE + (i / 2) * 700, i)).collect()
}

#[test]
fn identical_100k_reconcile_in_one_round_trip_under_10kb() {
    let items = set(hundred_thousand());
    assert_eq!(items.len(), 100_000);
    let out = reconcile(&items, &items.clone(), 0, 0, &Limits::default()).unwrap();
    eprintln!(
        "identical 100k: {} round trip(s), {} bytes",
        out.rounds, out.bytes
    );
    assert_eq!(out.end, Next::Done);
    assert_eq!(out.rounds, 1);
    assert!(out.have.is_empty() && out.need.is_empty());
    assert!(out.bytes < 10_000, "{} bytes", out.bytes);
}

#[test]
fn ten_thousand_differences_in_100k() {
    // 90 000 shared, 5 000 only on each side, spread evenly.
    let all = hundred_thousand();
    let a = set(all.iter().copied().filter(|(_, n)| n % 20 != 1));
    let b = set(all.iter().copied().filter(|(_, n)| n % 20 != 2));
    let limits = Limits::default();
    let out = reconcile(&a, &b, 0, 0, &limits).unwrap();
    eprintln!(
        "10 000 differences in 100k: {} round trips, {} bytes, largest frame {}, {} reported",
        out.rounds, out.bytes, out.largest, out.reported
    );
    assert_eq!(out.end, Next::Done);
    assert_eq!(out.have, ids((0..100_000).filter(|n| n % 20 == 2)));
    assert_eq!(out.need, ids((0..100_000).filter(|n| n % 20 == 1)));
    assert!(out.largest <= limits.frame_size);
    assert!(out.rounds <= limits.max_rounds);
}

#[test]
fn ten_thousand_missing_on_one_side_of_100k() {
    let all = hundred_thousand();
    let a = set(all.iter().copied());
    let b = set(all.iter().copied().filter(|(_, n)| n % 10 != 0));
    let limits = Limits::default();
    let out = reconcile(&b, &a, 0, 0, &limits).unwrap();
    eprintln!(
        "10 000 missing on one side of 100k: {} round trips, {} bytes, {} reported",
        out.rounds, out.bytes, out.reported
    );
    assert_eq!(out.end, Next::Done);
    assert!(out.have.is_empty());
    assert_eq!(out.need, ids((0..100_000).filter(|n| n % 10 == 0)));
}

#[test]
fn since_leaves_older_items_out() {
    let a = set((0..200).map(|i| (BASE + i, i)));
    // The responder lacks the first hundred and holds others the initiator lacks, all old.
    let b = set((100..200)
        .map(|i| (BASE + i, i))
        .chain((1000..1050).map(|i| (BASE, i))));
    let out = reconcile(&a, &b, BASE + 100, 0, &Limits::default()).unwrap();
    assert_eq!(out.end, Next::Done);
    assert!(out.have.is_empty() && out.need.is_empty());
}

#[test]
fn the_responders_window_bounds_have() {
    // The initiator asks from BASE; the responder keeps only from BASE + 100 on.
    let a = set((0..200).filter(|i| i % 7 != 0).map(|i| (BASE + i, i)));
    let b = set((100..200).filter(|i| i % 5 != 0).map(|i| (BASE + i, i)));
    let limits = Limits::default();
    let (mut initiator, open) = Initiator::new(&a, BASE, &limits);
    let (_, reply) = Responder::open(&open, &b, BASE + 100, &limits).unwrap();
    assert_eq!(
        reply[1..9],
        (BASE + 100).to_be_bytes(),
        "the reply carries the bound used"
    );
    drop(initiator.handle(&reply).unwrap());

    let out = reconcile(&a, &b, BASE, BASE + 100, &limits).unwrap();
    assert_eq!(out.end, Next::Done);
    assert_eq!(
        out.have,
        ids((100..200).filter(|i| i % 5 == 0 && i % 7 != 0))
    );
    assert_eq!(
        out.need,
        ids((100..200).filter(|i| i % 7 == 0 && i % 5 != 0))
    );
}

#[test]
fn a_reply_bound_below_the_asked_one_is_a_strike() {
    let a = set((0..10).map(|i| (BASE + i, i)));
    let limits = Limits::default();
    let (mut initiator, open) = Initiator::new(&a, BASE, &limits);
    let (_, mut reply) = Responder::open(&open, &a, 0, &limits).unwrap();
    reply[1..9].copy_from_slice(&(BASE - 1).to_be_bytes());
    let err = initiator.handle(&reply).unwrap_err();
    assert!(matches!(err, Error::BadSince { .. }) && err.is_strike());
    assert_eq!(initiator.handle(&reply), Err(Error::Finished));
}

#[test]
fn the_need_budget_stops_the_session() {
    let a = set((0..100).map(|i| (BASE + i, i)));
    let b = set((0..300).map(|i| (BASE + i, i)));
    let limits = Limits {
        max_need: 50,
        ..Limits::default()
    };
    let out = reconcile(&a, &b, 0, 0, &limits).unwrap();
    assert_eq!(out.end, Next::Stopped(Stop::NeedBudget));
    assert_eq!(out.need.len(), 50);
    assert!(out.need.is_subset(&ids(100..300)));
}

#[test]
fn the_have_budget_stops_the_session() {
    let a = set((0..300).map(|i| (BASE + i, i)));
    let b = set((0..100).map(|i| (BASE + i, i)));
    let limits = Limits {
        max_have: 50,
        ..Limits::default()
    };
    let out = reconcile(&a, &b, 0, 0, &limits).unwrap();
    assert_eq!(out.end, Next::Stopped(Stop::HaveBudget));
    assert_eq!(out.have.len(), 50);
    assert!(out.have.is_subset(&ids(100..300)));
}

#[test]
fn budgeted_sessions_converge() {
    // Each session moves at most 60 ids each way; repeated sessions reconcile everything.
    let all: Vec<(u64, u64)> = (0..20_000u64).map(|i| (BASE + (i / 2) * 700, i)).collect();
    let mut a: BTreeSet<(u64, u64)> = all.iter().copied().filter(|(_, n)| n % 50 != 1).collect();
    let mut b: BTreeSet<(u64, u64)> = all.iter().copied().filter(|(_, n)| n % 50 != 2).collect();
    let limits = Limits {
        max_have: 60,
        max_need: 60,
        ..Limits::default()
    };
    let by_id: std::collections::HashMap<MessageId, (u64, u64)> =
        all.iter().map(|&(ts, n)| (id(n), (ts, n))).collect();
    let mut sessions = 0;
    loop {
        sessions += 1;
        assert!(sessions <= 20, "no convergence");
        let out = reconcile(&set(a.clone()), &set(b.clone()), 0, 0, &limits).unwrap();
        for m in &out.have {
            b.insert(by_id[m]);
        }
        for m in &out.need {
            a.insert(by_id[m]);
        }
        if out.end == Next::Done {
            break;
        }
    }
    assert_eq!(a, b);
    assert_eq!(a.len(), 20_000);
    assert_eq!(sessions, 7, "400 ids each way, 60 per session");
}

#[test]
fn the_round_limit_stops_the_initiator_and_the_responder() {
    let a = set((0..3000).map(|i| (BASE + i, i)));
    let b = set((0..3000).filter(|i| i % 2 == 0).map(|i| (BASE + i, i)));
    let limits = Limits {
        frame_size: MIN_FRAME_LEN,
        max_rounds: 2,
        ..unbounded()
    };
    let out = reconcile(&a, &b, 0, 0, &limits).unwrap();
    assert_eq!(out.end, Next::Stopped(Stop::Rounds));
    assert_eq!(out.rounds, 2);

    // A responder answers max_rounds frames, then refuses without a strike.
    let (mut initiator, open) = Initiator::new(&a, 0, &unbounded());
    let (mut responder, reply) = Responder::open(&open, &b, 0, &limits).unwrap();
    let Next::Send(query) = initiator.handle(&reply).unwrap().next else {
        panic!("expected more rounds")
    };
    let reply = responder.handle(&query).unwrap();
    let Next::Send(query) = initiator.handle(&reply).unwrap().next else {
        panic!("expected more rounds")
    };
    let err = responder.handle(&query).unwrap_err();
    assert_eq!(err, Error::TooManyRounds(2));
    assert!(!err.is_strike());
}

#[test]
fn item_set_sorts_deduplicates_and_keeps_the_newest() {
    let items = [(5, 1), (3, 2), (5, 1), (9, 3), (1, 4), (u64::MAX, 5)];
    let s = ItemSet::new(items.iter().map(|&(ts, n)| (ts, id(n))), 3);
    let got: Vec<(u64, MessageId)> = s.iter().collect();
    assert_eq!(got, vec![(3, id(2)), (5, id(1)), (9, id(3))]);
    let s = ItemSet::new(items.iter().map(|&(ts, n)| (ts, id(n))), 0);
    assert!(s.is_empty());
}

proptest! {
    #[test]
    fn item_set_is_bounded_and_sorted(
        items in prop::collection::vec((0u64..100, 0u64..200), 0..600),
        max in 0usize..300,
    ) {
        let s = ItemSet::new(items.iter().map(|&(ts, n)| (ts, id(n))), max);
        let mut want: Vec<(u64, MessageId)> = items.iter().map(|&(ts, n)| (ts, id(n))).collect();
        want.sort();
        want.dedup();
        let keep = want.len().min(max);
        let want = want.split_off(want.len() - keep);
        prop_assert_eq!(s.iter().collect::<Vec<_>>(), want);
    }
}

// ---- Wire format ----

/// Two items, since 0: the whole set fits one id list. If this fails, the wire format changed:
/// update docs/PROTOCOL.md, not the constant.
const GOLDEN_OPEN: &str = concat!(
    "01",               // tag: Open
    "0000000000000000", // since_ms
    "61",               // negentropy protocol 1
    "0000",             // upper bound: infinity, no id prefix
    "02",               // mode: IdList
    "02",               // two ids
    "1111111111111111111111111111111111111111111111111111111111111111",
    "2222222222222222222222222222222222222222222222222222222222222222",
);

/// The responder holds 0x11.. and 0x33..: it answers the id list with its own.
const GOLDEN_REPLY: &str = concat!(
    "03",               // tag: Reply
    "0000000000000000", // since_ms used
    "61",
    "0000",
    "02",
    "02",
    "1111111111111111111111111111111111111111111111111111111111111111",
    "3333333333333333333333333333333333333333333333333333333333333333",
);

#[test]
fn golden_frames() {
    let item = |ts, b: u8| (ts, MessageId([b; 32]));
    let a = ItemSet::new([item(1000, 0x22), item(1000, 0x11)], 10);
    let b = ItemSet::new([item(1000, 0x11), item(2000, 0x33)], 10);
    let limits = Limits::default();
    let (mut initiator, open) = Initiator::new(&a, 0, &limits);
    assert_eq!(hex::encode(&open), GOLDEN_OPEN);
    assert_eq!(open.len(), HEADER_LEN + 1 + 2 + 1 + 1 + 64);
    let (_, reply) = Responder::open(&open, &b, 0, &limits).unwrap();
    assert_eq!(hex::encode(&reply), GOLDEN_REPLY);
    let step = initiator.handle(&reply).unwrap();
    assert_eq!(step.have, vec![MessageId([0x22; 32])]);
    assert_eq!(step.need, vec![MessageId([0x33; 32])]);
    assert_eq!(step.next, Next::Done);
}

/// The module docs' varint: base 128, most significant group first.
fn varint(bytes: &mut &[u8]) -> u64 {
    let mut n = 0u64;
    while let Some((&b, rest)) = bytes.split_first() {
        *bytes = rest;
        n = (n << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
    }
    n
}

fn write_varint(mut n: u64) -> Vec<u8> {
    let mut out = vec![(n & 0x7f) as u8];
    n >>= 7;
    while n > 0 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.reverse();
    out
}

/// The module docs' fingerprint of a range.
fn fingerprint(range: &[MessageId]) -> [u8; 16] {
    let mut sum = [0u64; 4];
    for m in range {
        let mut carry = false;
        for (lane, chunk) in sum.iter_mut().zip(m.0.chunks_exact(8)) {
            let word = u64::from_le_bytes(chunk.try_into().unwrap());
            let (s, c1) = lane.overflowing_add(word);
            let (s, c2) = s.overflowing_add(u64::from(carry));
            *lane = s;
            carry = c1 || c2;
        }
    }
    let mut h = Sha256::new();
    for lane in sum {
        h.update(lane.to_le_bytes());
    }
    h.update(write_varint(range.len() as u64));
    h.finalize()[..16].try_into().unwrap()
}

/// An `Open` frame over 100 items with distinct timestamps, read with a parser written from the
/// module docs: 16 fingerprint ranges whose bounds and fingerprints match the documented rules.
#[test]
fn the_open_frame_follows_the_documented_format() {
    let items: Vec<(u64, MessageId)> = (0..100).map(|i| (BASE + 10 * i, id(i))).collect();
    let (_, open) = Initiator::new(&ItemSet::new(items.clone(), 1000), BASE, &Limits::default());
    assert_eq!(open[0], 1);
    assert_eq!(open[1..9], BASE.to_be_bytes());
    assert_eq!(open[9], 0x61);
    let mut rest = &open[10..];
    let (mut prev_ts, mut lower) = (0u64, 0usize);
    for bucket in 0..16 {
        let ts = match varint(&mut rest) {
            0 => u64::MAX,
            d => prev_ts + d - 1,
        };
        prev_ts = ts;
        let id_len = varint(&mut rest);
        assert_eq!(id_len, 0, "distinct timestamps need no id prefix");
        assert_eq!(varint(&mut rest), 1, "mode Fingerprint");
        let (fp, r) = rest.split_at(16);
        rest = r;
        let upper = items
            .iter()
            .position(|(t, _)| *t >= ts)
            .unwrap_or(items.len());
        // 100 items in 16 buckets: the first four hold 7, the rest 6.
        assert_eq!(upper - lower, if bucket < 4 { 7 } else { 6 });
        let range: Vec<MessageId> = items[lower..upper].iter().map(|(_, m)| *m).collect();
        assert_eq!(fp, fingerprint(&range), "bucket {bucket}");
        lower = upper;
    }
    assert!(rest.is_empty());
    assert_eq!(prev_ts, u64::MAX, "the last range is open-ended");
}

#[test]
fn oversized_and_truncated_frames_are_strikes() {
    let a = set((0..10).map(|i| (BASE + i, i)));
    let limits = Limits::default();
    let big = vec![TAG_OPEN; MAX_FRAME_LEN + 1];
    let err = Responder::open(&big, &a, 0, &limits).unwrap_err();
    assert_eq!(err, Error::TooLarge(MAX_FRAME_LEN + 1));
    assert!(err.is_strike());
    for (frame, want) in [
        (&[][..], Error::Empty),
        (&[9][..], Error::UnknownTag(9)),
        (&[TAG_OPEN, 0, 0][..], Error::Truncated),
        (&[TAG_REPLY, 0, 0, 0, 0, 0, 0, 0, 0][..], Error::Unexpected),
    ] {
        let err = Responder::open(frame, &a, 0, &limits).unwrap_err();
        assert_eq!(err, want);
        assert!(err.is_strike());
    }
}

#[test]
fn an_id_count_beyond_the_frame_is_refused_before_allocating() {
    // IdList claiming 2^34 ids with none following.
    let mut frame = vec![TAG_OPEN];
    frame.extend_from_slice(&0u64.to_be_bytes());
    frame.extend_from_slice(&[0x61, 0x00, 0x00, 0x02, 0xc0, 0x80, 0x80, 0x80, 0x00]);
    let a = set((0..10).map(|i| (BASE + i, i)));
    let err = Responder::open(&frame, &a, 0, &Limits::default()).unwrap_err();
    assert!(
        matches!(err, Error::Malformed(_)) && err.is_strike(),
        "{err:?}"
    );
}

#[test]
fn another_protocol_version_is_no_strike() {
    let a = set((0..10).map(|i| (BASE + i, i)));
    let limits = Limits::default();
    let (mut initiator, _) = Initiator::new(&a, 0, &limits);
    let mut reply = vec![TAG_REPLY];
    reply.extend_from_slice(&0u64.to_be_bytes());
    reply.push(0x62);
    let err = initiator.handle(&reply).unwrap_err();
    assert_eq!(err, Error::Version);
    assert!(!err.is_strike());
    // A responder answers a newer initiator with its own version alone, as negentropy specifies.
    let mut open = vec![TAG_OPEN];
    open.extend_from_slice(&0u64.to_be_bytes());
    open.push(0x62);
    let (_, reply) = Responder::open(&open, &a, 0, &limits).unwrap();
    assert_eq!(reply[HEADER_LEN..], [0x61]);
}

/// Item sets built once for the damage tests (they are shared snapshots).
fn fixture_sets() -> &'static (ItemSet, ItemSet, ItemSet) {
    static SETS: std::sync::OnceLock<(ItemSet, ItemSet, ItemSet)> = std::sync::OnceLock::new();
    SETS.get_or_init(|| {
        (
            set((0..2000).map(|i| (BASE + i / 3, i))),
            set((0..2000).filter(|i| i % 3 != 0).map(|i| (BASE + i / 3, i))),
            set((0..500).map(|i| (BASE + i / 2, i))),
        )
    })
}

/// A live pair in mid-session over sets that differ a lot, for the damage tests.
fn mid_session() -> (Initiator, Responder, Vec<u8>, Vec<u8>) {
    let (a, b, _) = fixture_sets();
    let limits = Limits {
        frame_size: MIN_FRAME_LEN,
        ..unbounded()
    };
    let (mut initiator, open) = Initiator::new(a, 0, &limits);
    let (responder, reply) = Responder::open(&open, b, 0, &limits).unwrap();
    let reply_copy = reply.clone();
    let Next::Send(query) = initiator.handle(&reply).unwrap().next else {
        panic!("expected more rounds")
    };
    (initiator, responder, query, reply_copy)
}

/// Feeds `frame` to every entry point; none may panic, and every frame produced stays in bounds.
fn feed_everywhere(frame: &[u8]) -> Result<(), TestCaseError> {
    let limits = Limits {
        frame_size: MIN_FRAME_LEN,
        ..Limits::default()
    };
    let items = &fixture_sets().2;
    if let Ok((_, reply)) = Responder::open(frame, items, 0, &limits) {
        prop_assert!(reply.len() <= limits.frame_size);
    }
    let (mut initiator, mut responder, _, _) = mid_session();
    if let Ok(reply) = responder.handle(frame) {
        prop_assert!(reply.len() <= MIN_FRAME_LEN);
    }
    if let Ok(Step {
        next: Next::Send(query),
        ..
    }) = initiator.handle(frame)
    {
        prop_assert!(query.len() <= MIN_FRAME_LEN);
    }
    let t0 = Instant::now();
    let mut peers = Peers::new(limits);
    let _ = peers.on_request(7u32, frame, items, 0, t0);
    let _ = peers.start(7, items, 0, t0);
    let _ = peers.on_reply(7, frame, t0);
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(frame in prop::collection::vec(any::<u8>(), 0..4096)) {
        feed_everywhere(&frame)?;
    }

    /// Arbitrary messages behind a valid header, to get past the tag into negentropy's decoder.
    #[test]
    fn arbitrary_messages_never_panic(
        tag in 1u8..4,
        since in prop_oneof![Just(0u64), any::<u64>()],
        body in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let mut frame = vec![tag];
        if tag != TAG_QUERY {
            frame.extend_from_slice(&since.to_be_bytes());
        }
        frame.push(0x61);
        frame.extend_from_slice(&body);
        feed_everywhere(&frame)?;
    }

    /// Valid frames with a few bytes changed, cut or inserted.
    #[test]
    fn damaged_frames_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        which in 0usize..2,
    ) {
        let (_, _, query, reply) = mid_session();
        let mut frame = if which == 0 { query } else { reply };
        for (at, byte, op) in edits {
            let i = at.index(frame.len().max(1));
            match op {
                0 if i < frame.len() => frame[i] = byte,
                1 => frame.truncate(i),
                _ => frame.insert(i.min(frame.len()), byte),
            }
        }
        feed_everywhere(&frame)?;
    }
}

// ---- Peers ----

#[test]
fn peers_reconcile_end_to_end() {
    let a = set((0..1000).filter(|i| i % 4 != 0).map(|i| (BASE + i, i)));
    let b = set((0..1000).filter(|i| i % 4 != 1).map(|i| (BASE + i, i)));
    let t0 = Instant::now();
    let mut alice = Peers::new(Limits::default());
    let mut bob = Peers::new(Limits::default());
    let mut frame = alice.start(2u32, &a, 0, t0).unwrap();
    assert!(alice.in_flight(&2));
    assert_eq!(alice.start(2, &a, 0, t0), Err(Error::InFlight));
    let (mut have, mut need) = (BTreeSet::new(), BTreeSet::new());
    loop {
        let reply = bob.on_request(1u32, &frame, &b, 0, t0).unwrap();
        let step = alice.on_reply(2, &reply, t0).unwrap();
        have.extend(step.have);
        need.extend(step.need);
        match step.next {
            Next::Send(f) => frame = f,
            end => {
                assert_eq!(end, Next::Done);
                break;
            }
        }
    }
    assert_eq!(have, ids((0..1000).filter(|i| i % 4 == 1)));
    assert_eq!(need, ids((0..1000).filter(|i| i % 4 == 0)));
    assert!(!alice.in_flight(&2), "a finished session is dropped");
    assert_eq!(alice.on_reply(2, &frame, t0), Err(Error::NoSession));
}

#[test]
fn a_query_without_a_session_is_refused_without_a_strike() {
    let (_, _, query, _) = mid_session();
    let items = set((0..10).map(|i| (BASE + i, i)));
    let mut peers = Peers::new(Limits::default());
    let err = peers
        .on_request(1u32, &query, &items, 0, Instant::now())
        .unwrap_err();
    assert_eq!(err, Error::NoSession);
    assert!(!err.is_strike());
}

#[test]
fn a_malformed_request_is_a_strike_and_ends_the_session() {
    let a = set((0..1000).map(|i| (BASE + i, i)));
    let b = set((0..1000).filter(|i| i % 2 == 0).map(|i| (BASE + i, i)));
    let t0 = Instant::now();
    let (mut initiator, open) = Initiator::new(&a, 0, &Limits::default());
    let mut peers = Peers::new(Limits::default());
    let reply = peers.on_request(1u32, &open, &b, 0, t0).unwrap();
    assert_eq!(peers.incoming_count(), 1);
    let Next::Send(mut query) = initiator.handle(&reply).unwrap().next else {
        panic!("expected more rounds")
    };
    // An upper bound at infinity with mode 7, which does not exist.
    query.truncate(2);
    query.extend_from_slice(&[0x00, 0x00, 0x07]);
    let err = peers.on_request(1, &query, &b, 0, t0).unwrap_err();
    assert!(err.is_strike(), "{err:?}");
    assert_eq!(peers.incoming_count(), 0);
}

#[test]
fn sessions_are_bounded_and_expire() {
    let items = set((0..10).map(|i| (BASE + i, i)));
    let limits = Limits {
        max_sessions: 2,
        session_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let t0 = Instant::now();
    let mut peers = Peers::new(limits);
    let (_, open) = Initiator::new(&items, 0, &limits);
    for p in 0..2u32 {
        peers.start(p, &items, 0, t0).unwrap();
        peers.on_request(p, &open, &items, 0, t0).unwrap();
    }
    assert_eq!(peers.start(9, &items, 0, t0), Err(Error::Busy));
    assert_eq!(peers.on_request(9, &open, &items, 0, t0), Err(Error::Busy));
    // A peer's new Open replaces its own session rather than needing a slot.
    peers.on_request(0, &open, &items, 0, t0).unwrap();
    assert_eq!(peers.incoming_count(), 2);

    let later = t0 + Duration::from_secs(30);
    // Full tables make room from idle sessions.
    peers.start(9, &items, 0, later).unwrap();
    peers.on_request(9, &open, &items, 0, later).unwrap();
    assert!(peers.outgoing_count() <= 2 && peers.incoming_count() <= 2);
    // A timed-out session is gone, so starting again is allowed.
    peers.start(1, &items, 0, later).unwrap();
    let gone = peers.expire(later + Duration::from_secs(30));
    assert_eq!(gone.len(), 2);
    assert_eq!((peers.outgoing_count(), peers.incoming_count()), (0, 0));
    peers.start(1, &items, 0, later).unwrap();
    peers.forget(&1);
    assert!(!peers.in_flight(&1));
}
