//! DM tests: keys and profiles, the seal, receipts, the frames (golden bytes, round trips,
//! encoded length, damage), the outbox's rules one by one, and whole networks (`tests/sim.rs`).

use std::collections::BTreeMap;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::identity::Keypair;
use crate::room::Text;

mod sim;

const NOW: u64 = 1_800_000_000_000;
const HOUR: u64 = 3600 * 1000;

type Id = [u8; 32];

struct Node {
    id: Keypair,
    key: EncryptionKey,
}

fn node(seed: u8) -> Node {
    let id = Keypair::from_secret_bytes(&[seed; 32]);
    let key = EncryptionKey::derive(&id);
    Node { id, key }
}

fn addr(n: &Node) -> Id {
    *n.id.public().as_bytes()
}

fn dm_from(from: &Node, to: &Node, text: &str, expires_ms: u64, rng: &mut StdRng) -> Dm<Id> {
    let t = Text {
        nick: "alice".into(),
        text: text.into(),
    };
    let env = sign_dm(&from.id, &to.id.public(), &t, NOW, 7).unwrap();
    seal(&env, addr(to), to.key.public(), expires_ms, 64, rng).unwrap()
}

/// Routes fixed by the test: destination -> next hop; custodian: the first neighbour.
#[derive(Default)]
struct Fixed {
    next: BTreeMap<Id, Id>,
    neighbours: Vec<Id>,
}

impl Routes<Id> for Fixed {
    fn next_hop(&self, dest: &Id) -> Option<Id> {
        self.next.get(dest).copied()
    }
    fn custodian(&self, dest: &Id) -> Option<Id> {
        self.neighbours.iter().find(|n| *n != dest).copied()
    }
}

fn outbox(n: &Node, limits: Limits) -> Outbox<Id> {
    Outbox::new(addr(n), n.id.clone(), n.key.clone(), limits)
}

fn forwards(out: &[Output<Id>]) -> Vec<(Id, Frame<Id>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Forward(to, f) => Some((*to, f.clone())),
            _ => None,
        })
        .collect()
}

fn statuses(out: &[Output<Id>]) -> Vec<Status> {
    out.iter()
        .filter_map(|o| match o {
            Output::Status(_, s) => Some(*s),
            _ => None,
        })
        .collect()
}

fn delivered(out: &[Output<Id>]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Deliver(d) => Some(d.text.text.clone()),
            _ => None,
        })
        .collect()
}

// ---- keys, profiles, seal, receipts ----

#[test]
fn debug_never_shows_the_encryption_secret() {
    let n = node(1);
    let secret = hex::encode(n.key.secret_bytes().as_ref());
    let dbg = format!("{:?} {:#?}", n.key, n.key);
    assert!(!dbg.contains(&secret), "{dbg}");
    assert!(dbg.contains("redacted"));
    // Stored and loaded again, it is the same key; derived again, too.
    let back = EncryptionKey::from_secret_bytes(&n.key.secret_bytes()).unwrap();
    assert_eq!(back.public(), n.key.public());
    assert_eq!(EncryptionKey::derive(&n.id).public(), n.key.public());
    assert_ne!(node(2).key.public(), n.key.public());
    // Nor does the outbox's, which holds both secrets.
    let ob = outbox(&n, Limits::default());
    let dbg = format!("{ob:?}");
    assert!(!dbg.contains(&secret), "{dbg}");
    assert!(!dbg.contains(&hex::encode(n.id.secret_bytes().as_ref())));
}

#[test]
fn profile_bytes_and_envelope() {
    let n = node(3);
    let p = Profile {
        nick: "bob".into(),
        seal_key: SealKey([0xab; 32]),
        version: 5,
    };
    let body = p.encode().unwrap();
    let mut golden = vec![1, 0, 0, 0, 0, 0, 0, 0, 5];
    golden.extend_from_slice(&[0xab; 32]);
    golden.extend_from_slice(&[3, b'b', b'o', b'b']);
    assert_eq!(body, golden);
    assert_eq!(body.len(), p.encoded_len());
    assert_eq!(Profile::decode(&body).unwrap(), p);
    let env = p.sign(&n.id, NOW, 1).unwrap();
    let env = crate::Envelope::open(env.into_bytes(), NOW).unwrap();
    assert_eq!(env.kind(), crate::envelope::Kind::Profile);
    assert_eq!(Profile::from_envelope(&env).unwrap(), p);
    for bad in [&body[..10], &[2u8; 42][..], &[&body[..], b"x"].concat()[..]] {
        assert!(Profile::decode(bad).is_err());
    }
}

#[test]
fn the_directory_keeps_the_newest_profile_per_author_and_is_bounded() {
    let (a, b, c) = (node(1), node(2), node(3));
    let p = |nick: &str, version| Profile {
        nick: nick.into(),
        seal_key: SealKey([version as u8; 32]),
        version,
    };
    let mut d = Directory::new(2);
    assert_eq!(d.offer(&a.id.public(), p("ann", 2)), ProfileVerdict::Taken);
    assert_eq!(d.offer(&a.id.public(), p("old", 1)), ProfileVerdict::Stale);
    assert_eq!(d.offer(&a.id.public(), p("ann", 2)), ProfileVerdict::Stale);
    assert_eq!(d.offer(&a.id.public(), p("anna", 3)), ProfileVerdict::Taken);
    assert_eq!(d.get(&addr(&a)).unwrap().nick, "anna");
    assert_eq!(d.offer(&b.id.public(), p("anna", 1)), ProfileVerdict::Taken);
    assert_eq!(d.offer(&c.id.public(), p("cy", 1)), ProfileVerdict::Full);
    assert_eq!(d.by_nick("anna").count(), 2);
    assert_eq!(d.len(), 2);
}

#[test]
fn a_dm_opens_for_its_recipient_only() {
    let mut rng = StdRng::seed_from_u64(1);
    let (a, b, c) = (node(1), node(2), node(3));
    let dm = dm_from(&a, &b, "hi", NOW + HOUR, &mut rng);
    let o = open(&dm, &b.key, &b.id.public(), NOW).unwrap();
    assert_eq!(o.text.text, "hi");
    assert_eq!(o.envelope.author(), &a.id.public());
    // Someone else's key does not open it.
    assert_eq!(
        open(&dm, &c.key, &c.id.public(), NOW),
        Err(Error::CannotOpen)
    );
    // A relay that changes the expiry or the recipient makes it unreadable.
    let mut later = dm.clone();
    later.expires_ms += 1;
    assert_eq!(
        open(&later, &b.key, &b.id.public(), NOW),
        Err(Error::CannotOpen)
    );
    let mut flipped = dm.clone();
    flipped.ct[0] ^= 1;
    assert_eq!(
        open(&flipped, &b.key, &b.id.public(), NOW),
        Err(Error::CannotOpen)
    );
    // b re-seals a's envelope to c: it opens, but names b, so c refuses it.
    let env = o.envelope.clone();
    let resealed = seal(&env, addr(&c), c.key.public(), NOW + HOUR, 64, &mut rng).unwrap();
    assert_eq!(
        open(&resealed, &c.key, &c.id.public(), NOW),
        Err(Error::NotForUs)
    );
    // The relay sees nothing of the text or the sender in the sealed bytes.
    let bytes = Frame::Dm(dm).encode();
    assert!(!bytes.windows(2).any(|w| w == b"hi"));
    assert!(!bytes
        .windows(32)
        .any(|w| w == a.id.public().as_bytes().as_slice()));
}

#[test]
fn receipts_verify_and_forgeries_do_not() {
    let (a, b, c) = (node(1), node(2), node(3));
    let id = DmId([9; 32]);
    let r = Receipt::sign(&b.id, id, &a.id.public());
    r.verify().unwrap();
    let mut forged = r;
    forged.dm.0[0] ^= 1;
    assert_eq!(forged.verify(), Err(Error::BadReceipt));
    let mut other = r;
    other.recipient = addr(&c);
    assert_eq!(other.verify(), Err(Error::BadReceipt));
    let mut sender = r;
    sender.sender = addr(&c);
    assert_eq!(sender.verify(), Err(Error::BadReceipt));
}

// ---- wire ----

/// The bytes of a DM frame and a receipt frame. If this fails, the format changed: that is a
/// new protocol version, not a new constant.
#[test]
fn golden_frame_bytes() {
    let dm = Frame::Dm(Dm {
        hop_limit: 0x0102,
        recipient: [0x11; 32],
        expires_ms: 0x0000_0193_0000_0001,
        enc: [0x22; 32],
        ct: vec![0x33; 16],
    });
    let mut want = vec![3, 0x01, 0x02];
    want.extend_from_slice(&[0x11; 32]);
    want.extend_from_slice(&[0, 0, 0x01, 0x93, 0, 0, 0, 1]);
    want.extend_from_slice(&[0x22; 32]);
    want.extend_from_slice(&[0, 0, 0, 16]);
    want.extend_from_slice(&[0x33; 16]);
    assert_eq!(dm.encode(), want);
    assert_eq!(dm.encoded_len(), 95);
    let r = Frame::Receipt(RoutedReceipt {
        hop_limit: 7,
        to: [0x44; 32],
        receipt: Receipt {
            dm: DmId([0x55; 32]),
            sender: [0x66; 32],
            recipient: [0x77; 32],
            signature: [0x88; 64],
        },
    });
    let mut want = vec![4, 0, 7];
    for (b, n) in [(0x44, 32), (0x55, 32), (0x66, 32), (0x77, 32), (0x88, 64)] {
        want.extend(std::iter::repeat_n(b, n));
    }
    assert_eq!(r.encode(), want);
    assert_eq!(r.encoded_len(), 195);
    assert_eq!(Frame::<Id>::decode(&want).unwrap(), r);
}

#[test]
fn flooded_payload_round_trips_and_is_told_from_envelopes() {
    let dm = Dm {
        hop_limit: 5,
        recipient: [0x11; 32],
        expires_ms: 99,
        enc: [0x22; 32],
        ct: vec![0x33; 16],
    };
    let (id, payload) = crate::dm::flood_payload(&dm);
    assert_eq!(id, dm.id());
    assert_eq!(payload[0], crate::dm::FLOODED_DM);
    assert_eq!(&payload[1..], &Frame::Dm(dm.clone()).encode()[..]);
    assert_eq!(crate::dm::parse_flooded::<Id>(&payload), Some(Ok(dm)));
    // An envelope (version 1) is not a flooded DM; a damaged one is an error, not a panic.
    assert_eq!(crate::dm::parse_flooded::<Id>(&[1, 1, 5]), None);
    assert_eq!(crate::dm::parse_flooded::<Id>(&[]), None);
    assert!(matches!(
        crate::dm::parse_flooded::<Id>(&payload[..40]),
        Some(Err(_))
    ));
    let mut receipt = vec![crate::dm::FLOODED_DM];
    receipt.extend(
        Frame::Receipt(RoutedReceipt {
            hop_limit: 1,
            to: [1; 32],
            receipt: Receipt {
                dm: DmId([2; 32]),
                sender: [3; 32],
                recipient: [4; 32],
                signature: [5; 64],
            },
        })
        .encode(),
    );
    assert!(matches!(
        crate::dm::parse_flooded::<Id>(&receipt),
        Some(Err(Error::Malformed(_)))
    ));
}

/// A DM sealed with a seeded RNG is the same bytes every time: its id pins the envelope, the
/// HPKE suite, `info`, `aad` and the id's domain. If this fails, one of them changed: that is a
/// new protocol version, not a new constant.
#[test]
fn golden_sealed_dm_id() {
    let mut rng = StdRng::seed_from_u64(2026);
    let dm = dm_from(&node(1), &node(2), "hello", NOW + HOUR, &mut rng);
    // The envelope: 119 fixed bytes, a 64-byte target, an 11-byte body.
    assert_eq!(dm.ct.len(), 194 + wire::TAG_LEN);
    assert_eq!(
        dm.id().to_string(),
        "179971f771d56a306164d08f7a722e3533442427e949adcc3e2d8acd74724ab9"
    );
}

#[test]
fn damaged_and_oversized_frames_are_refused() {
    let f = Frame::Dm(Dm {
        hop_limit: 1,
        recipient: 5u32,
        expires_ms: 9,
        enc: [1; 32],
        ct: vec![2; 40],
    });
    let b = f.encode();
    assert_eq!(Frame::<u32>::decode(&b).unwrap(), f);
    assert!(Frame::<u32>::decode(&b[..b.len() - 1]).is_err());
    assert!(Frame::<u32>::decode(&[&b[..], &[0]].concat()).is_err());
    assert_eq!(
        Frame::<u32>::decode(&[9, 0, 0]),
        Err(Error::Malformed("truncated"))
    );
    let mut tag = b.clone();
    tag[0] = 1;
    assert_eq!(Frame::<u32>::decode(&tag), Err(Error::UnknownTag(1)));
    // A length over the limit, and a frame over the limit.
    let mut long = b.clone();
    let at = 1 + 2 + 4 + 8 + 32;
    long[at..at + 4].copy_from_slice(&((wire::MAX_CT_LEN + 1) as u32).to_be_bytes());
    assert!(matches!(
        Frame::<u32>::decode(&long),
        Err(Error::TooLarge(_))
    ));
    let huge = vec![3u8; Frame::<u32>::max_len() + 1];
    assert!(matches!(
        Frame::<u32>::decode(&huge),
        Err(Error::TooLarge(_))
    ));
    // A sealed envelope over the limit is refused at the sender.
    let a = node(1);
    let t = Text {
        nick: "a".into(),
        text: "x".repeat(wire::MAX_DM_ENVELOPE_LEN),
    };
    let env = sign_dm(&a.id, &a.id.public(), &t, NOW, 1).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    assert!(matches!(
        seal(&env, addr(&a), a.key.public(), NOW + 1, 1, &mut rng),
        Err(Error::TooLarge(_))
    ));
}

fn frame32() -> impl Strategy<Value = Frame<Id>> {
    prop_oneof![
        (
            any::<u16>(),
            any::<Id>(),
            any::<u64>(),
            any::<Id>(),
            prop::collection::vec(any::<u8>(), 16..200)
        )
            .prop_map(|(hop_limit, recipient, expires_ms, enc, ct)| {
                Frame::Dm(Dm {
                    hop_limit,
                    recipient,
                    expires_ms,
                    enc,
                    ct,
                })
            }),
        (
            any::<u16>(),
            any::<Id>(),
            any::<Id>(),
            any::<Id>(),
            any::<Id>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>()
        )
            .prop_map(|(hop_limit, to, dm, sender, recipient, s1, s2)| {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&s1);
                signature[32..].copy_from_slice(&s2);
                Frame::Receipt(RoutedReceipt {
                    hop_limit,
                    to,
                    receipt: Receipt {
                        dm: DmId(dm),
                        sender,
                        recipient,
                        signature,
                    },
                })
            }),
    ]
}

proptest! {
    #[test]
    fn frames_round_trip_at_their_encoded_length(f in frame32()) {
        let b = f.encode();
        prop_assert_eq!(b.len(), f.encoded_len());
        prop_assert_eq!(Frame::<Id>::decode(&b).unwrap(), f);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(f) = Frame::<Id>::decode(&b) {
            prop_assert_eq!(f.encode(), b);
        }
    }

    /// Any text seals and opens (sizes up to the limit's neighbourhood), the id is stable.
    #[test]
    fn seal_open_round_trip(text in "[a-z ]{1,300}", seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (a, b) = (node(1), node(2));
        let dm = dm_from(&a, &b, &text, NOW + HOUR, &mut rng);
        let back = Frame::<Id>::decode(&Frame::Dm(dm.clone()).encode()).unwrap();
        let Frame::Dm(back) = back else { panic!("a DM") };
        prop_assert_eq!(back.id(), dm.id());
        prop_assert_eq!(open(&back, &b.key, &b.id.public(), NOW).unwrap().text.text, text);
    }
}

// ---- the outbox ----

#[test]
fn a_dm_is_queued_handed_to_a_custodian_then_sent_then_delivered() {
    let mut rng = StdRng::seed_from_u64(2);
    let (a, b, relay) = (node(1), node(2), node(3));
    let mut ob = outbox(&a, Limits::default());
    let mut routes = Fixed {
        neighbours: vec![addr(&relay)],
        ..Fixed::default()
    };
    let dm = dm_from(&a, &b, "hello", NOW + HOUR, &mut rng);
    let id = dm.id();
    let out = ob.handle(Input::Send(dm.clone()), &routes, NOW);
    assert_eq!(statuses(&out), vec![Status::Queued]);
    assert_eq!(forwards(&out), vec![(addr(&relay), Frame::Dm(dm.clone()))]);
    assert!(out.iter().any(|o| matches!(o, Output::Flood(_))));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Persist(s) if s.role == Role::Own)));
    assert_eq!(ob.status(&id), Some(Status::Queued));
    // A route appears.
    routes.next.insert(addr(&b), addr(&relay));
    let out = ob.handle(Input::RoutesChanged(vec![addr(&b)]), &routes, NOW + 10);
    assert_eq!(statuses(&out), vec![Status::Sent]);
    assert_eq!(forwards(&out).len(), 1);
    // A route that flaps does not resend it on every change.
    let out = ob.handle(Input::RoutesChanged(vec![addr(&b)]), &routes, NOW + 20);
    assert!(forwards(&out).is_empty());
    // Retries back off: 30 s, then 60 s.
    let out = ob.handle(Input::Tick, &routes, NOW + 10 + 30_000);
    assert_eq!(forwards(&out).len(), 1);
    let out = ob.handle(Input::Tick, &routes, NOW + 10 + 60_000);
    assert_eq!(forwards(&out).len(), 0);
    // b receives it, delivers it once, and answers.
    let mut bo = outbox(&b, Limits::default());
    let back = Fixed {
        next: BTreeMap::from([(addr(&a), addr(&relay))]),
        neighbours: vec![addr(&relay)],
    };
    let out = bo.handle(
        Input::Frame(addr(&relay), Frame::Dm(dm.clone())),
        &back,
        NOW,
    );
    assert_eq!(delivered(&out), vec!["hello".to_string()]);
    let receipt = match &forwards(&out)[..] {
        [(to, Frame::Receipt(r))] if *to == addr(&relay) => *r,
        other => panic!("{other:?}"),
    };
    // A copy is not shown again, but the receipt goes again.
    let out = bo.handle(
        Input::Frame(addr(&relay), Frame::Dm(dm.clone())),
        &back,
        NOW + 5,
    );
    assert!(delivered(&out).is_empty());
    assert_eq!(forwards(&out).len(), 1);
    assert_eq!(bo.stats().duplicates, 1);
    // A forged receipt changes nothing; the real one delivers.
    let mut forged = receipt;
    forged.receipt.signature[0] ^= 1;
    let out = ob.handle(
        Input::Frame(addr(&relay), Frame::Receipt(forged)),
        &routes,
        NOW + 20,
    );
    assert!(statuses(&out).is_empty());
    assert_eq!(ob.stats().forged_receipts, 1);
    // A receipt someone else signed for this id does not count either.
    let fake = RoutedReceipt {
        receipt: Receipt::sign(&relay.id, id, &a.id.public()),
        ..receipt
    };
    ob.handle(
        Input::Frame(addr(&relay), Frame::Receipt(fake)),
        &routes,
        NOW + 20,
    );
    assert_eq!(ob.stats().unmatched_receipts, 1);
    let out = ob.handle(
        Input::Frame(addr(&relay), Frame::Receipt(receipt)),
        &routes,
        NOW + 30,
    );
    assert_eq!(statuses(&out), vec![Status::Delivered]);
    assert!(out.contains(&Output::Remove(Slot {
        role: Role::Own,
        id
    })));
    assert_eq!(ob.status(&id), None);
}

/// A DM the recipient's node could not store (a full disk) is forgotten as delivered: its
/// receipt is withdrawn, and the sender's next try delivers it again, with a receipt then.
#[test]
fn a_dm_that_could_not_be_stored_is_taken_again_from_the_next_try() {
    let mut rng = StdRng::seed_from_u64(9);
    let (a, b, relay) = (node(1), node(2), node(3));
    let dm = dm_from(&a, &b, "kept", NOW + HOUR, &mut rng);
    let mut bo = outbox(&b, Limits::default());
    // No route back: the receipt waits in custody, which the withdrawal must drop too.
    let nowhere = Fixed {
        neighbours: vec![addr(&relay)],
        ..Fixed::default()
    };
    let out = bo.handle(
        Input::Frame(addr(&relay), Frame::Dm(dm.clone())),
        &nowhere,
        NOW,
    );
    assert_eq!(delivered(&out), vec!["kept".to_string()]);
    let envelope = match out.iter().find_map(|o| match o {
        Output::Deliver(d) => Some(d.envelope.id()),
        _ => None,
    }) {
        Some(e) => e,
        None => unreachable!(),
    };
    let held = Slot {
        role: Role::Receipt,
        id: dm.id(),
    };
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Persist(s) if s.role == Role::Receipt)));
    let out = bo.handle(
        Input::NotStored {
            dm: dm.id(),
            envelope,
        },
        &nowhere,
        NOW + 1,
    );
    assert!(out.contains(&Output::Remove(held)), "{out:?}");
    assert_eq!(bo.stats().not_stored, 1);
    // The sender's retry: delivered again (not a duplicate), and answered.
    let back = Fixed {
        next: BTreeMap::from([(addr(&a), addr(&relay))]),
        neighbours: vec![addr(&relay)],
    };
    let out = bo.handle(
        Input::Frame(addr(&relay), Frame::Dm(dm.clone())),
        &back,
        NOW + 30_000,
    );
    assert_eq!(delivered(&out), vec!["kept".to_string()]);
    assert!(
        matches!(&forwards(&out)[..], [(_, Frame::Receipt(_))]),
        "{out:?}"
    );
    assert_eq!(bo.stats().duplicates, 0);
    bo.check_invariants(NOW + 30_000);
}

#[test]
fn an_unacknowledged_dm_fails_at_its_expiry() {
    let mut rng = StdRng::seed_from_u64(3);
    let (a, b) = (node(1), node(2));
    let mut ob = outbox(&a, Limits::default());
    let routes = Fixed::default();
    let dm = dm_from(&a, &b, "x", NOW + HOUR, &mut rng);
    let out = ob.handle(Input::Send(dm), &routes, NOW);
    let wake = out.iter().find_map(|o| match o {
        Output::WakeAt(t) => Some(*t),
        _ => None,
    });
    assert_eq!(wake, Some(NOW + 30_000));
    let out = ob.handle(Input::Tick, &routes, NOW + HOUR);
    assert_eq!(statuses(&out), vec![Status::Failed]);
    assert_eq!(ob.held(Role::Own), 0);
}

#[test]
fn relays_forward_take_custody_drop_replays_and_hand_on() {
    let mut rng = StdRng::seed_from_u64(4);
    let (a, b, relay, next) = (node(1), node(2), node(3), node(4));
    let mut ro = outbox(&relay, Limits::default());
    let mut routes = Fixed::default();
    let dm = dm_from(&a, &b, "x", NOW + HOUR, &mut rng);
    let out = ro.handle(Input::Frame(addr(&a), Frame::Dm(dm.clone())), &routes, NOW);
    assert!(forwards(&out).is_empty());
    assert_eq!(ro.held(Role::Custody), 1);
    // A replay is dropped and counted.
    ro.handle(
        Input::Frame(addr(&a), Frame::Dm(dm.clone())),
        &routes,
        NOW + 1,
    );
    assert_eq!(ro.stats().replays, 1);
    routes.next.insert(addr(&b), addr(&next));
    let out = ro.handle(Input::RoutesChanged(vec![addr(&b)]), &routes, NOW + 2);
    let want = Dm {
        hop_limit: dm.hop_limit - 1,
        ..dm.clone()
    };
    assert_eq!(forwards(&out), vec![(addr(&next), Frame::Dm(want))]);
    assert_eq!(ro.held(Role::Custody), 0);
    // A spent hop limit, an expired DM, and a too distant expiry are dropped.
    let mut spent = dm_from(&a, &b, "y", NOW + HOUR, &mut rng);
    spent.hop_limit = 0;
    ro.handle(Input::Frame(addr(&a), Frame::Dm(spent)), &routes, NOW);
    assert_eq!(ro.stats().hop_limit_spent, 1);
    let old = dm_from(&a, &b, "z", NOW - 1, &mut rng);
    ro.handle(Input::Frame(addr(&a), Frame::Dm(old)), &routes, NOW);
    assert_eq!(ro.stats().expired, 1);
    let far = dm_from(&a, &b, "w", NOW + 8 * 24 * HOUR, &mut rng);
    ro.handle(Input::Frame(addr(&a), Frame::Dm(far)), &routes, NOW);
    assert_eq!(ro.stats().too_long_lived, 1);
}

#[test]
fn a_custody_flood_is_bounded_and_counted() {
    let mut rng = StdRng::seed_from_u64(5);
    let (a, relay) = (node(1), node(3));
    let limits = Limits {
        max_custody: 14,
        max_custody_per_recipient: 4,
        max_custody_per_neighbour: 8,
        ..Limits::default()
    };
    let mut ro = outbox(&relay, limits);
    let routes = Fixed::default();
    let recipients: Vec<Node> = (10..15).map(node).collect();
    // One neighbour floods: 5 recipients x 3 DMs; 8 kept (its share).
    for r in &recipients {
        for i in 0..3 {
            let dm = dm_from(&a, r, &format!("{i}"), NOW + HOUR, &mut rng);
            ro.handle(Input::Frame(addr(&a), Frame::Dm(dm)), &routes, NOW);
        }
    }
    assert_eq!(ro.held(Role::Custody), 8);
    assert_eq!(ro.stats().refused_per_neighbour, 7);
    // Another neighbour, to one recipient: that recipient's share caps it.
    let other = node(20);
    for i in 0..5 {
        let dm = dm_from(&a, &recipients[4], &format!("o{i}"), NOW + HOUR, &mut rng);
        ro.handle(Input::Frame(addr(&other), Frame::Dm(dm)), &routes, NOW);
    }
    assert_eq!(ro.stats().refused_per_recipient, 1, "{:?}", ro.stats());
    // Everyone: the total caps it.
    for (k, r) in recipients.iter().enumerate().take(4) {
        let dm = dm_from(&a, r, "t", NOW + HOUR, &mut rng);
        ro.handle(
            Input::Frame(addr(&node(30 + k as u8)), Frame::Dm(dm)),
            &routes,
            NOW,
        );
    }
    assert_eq!(ro.held(Role::Custody), 14);
    assert!(ro.stats().refused_total == 2, "{:?}", ro.stats());
    // They expire.
    ro.handle(Input::Tick, &routes, NOW + HOUR);
    assert_eq!(ro.held(Role::Custody), 0);
}

#[test]
fn a_dm_sealed_to_someone_else_is_refused_and_counted() {
    let mut rng = StdRng::seed_from_u64(6);
    let (a, b, c) = (node(1), node(2), node(3));
    // Addressed to b's id but sealed to c's key.
    let t = Text {
        nick: "a".into(),
        text: "x".into(),
    };
    let env = sign_dm(&a.id, &b.id.public(), &t, NOW, 1).unwrap();
    let dm = seal(&env, addr(&b), c.key.public(), NOW + HOUR, 8, &mut rng).unwrap();
    let mut bo = outbox(&b, Limits::default());
    let out = bo.handle(
        Input::Frame(addr(&c), Frame::Dm(dm)),
        &Fixed::default(),
        NOW,
    );
    assert!(delivered(&out).is_empty());
    assert_eq!(bo.stats().cannot_open, 1);
    // An envelope for c, sealed to b: it opens but names c.
    let env = sign_dm(&a.id, &c.id.public(), &t, NOW, 2).unwrap();
    let dm = seal(&env, addr(&b), b.key.public(), NOW + HOUR, 8, &mut rng).unwrap();
    let out = bo.handle(Input::Flooded(dm), &Fixed::default(), NOW);
    assert!(delivered(&out).is_empty());
    assert_eq!(bo.stats().not_for_us, 1);
}

#[test]
fn persisted_items_restore() {
    let mut rng = StdRng::seed_from_u64(7);
    let (a, b, relay) = (node(1), node(2), node(3));
    let mut ob = outbox(&a, Limits::default());
    let mut routes = Fixed::default();
    let dm = dm_from(&a, &b, "x", NOW + HOUR, &mut rng);
    let out = ob.handle(Input::Send(dm.clone()), &routes, NOW);
    let stored: Vec<Stored<Id>> = out
        .into_iter()
        .filter_map(|o| match o {
            Output::Persist(s) => Some(s),
            _ => None,
        })
        .collect();
    let mut again = outbox(&a, Limits::default());
    for s in stored {
        let bytes = s.frame.encode();
        let frame = Frame::decode(&bytes).unwrap();
        again.restore(Stored { frame, ..s }, NOW + 5);
    }
    assert_eq!(again.status(&dm.id()), Some(Status::Queued));
    routes.next.insert(addr(&b), addr(&relay));
    let out = again.handle(Input::Tick, &routes, NOW + 10);
    assert_eq!(forwards(&out), vec![(addr(&relay), Frame::Dm(dm))]);
}

// ---- the outbox under arbitrary inputs ----

/// DMs to recipients 10..14 (four each) and to the relay 50 (three), sealed once for all cases.
fn pool() -> &'static Vec<Dm<Id>> {
    static POOL: std::sync::OnceLock<Vec<Dm<Id>>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(99);
        let a = node(1);
        let mut v = Vec::new();
        for r in (10..14).chain(std::iter::once(50)) {
            for i in 0..if r == 50 { 3 } else { 4 } {
                v.push(dm_from(
                    &a,
                    &node(r),
                    &format!("{r}/{i}"),
                    NOW + 2 * HOUR,
                    &mut rng,
                ));
            }
        }
        v
    })
}

#[derive(Debug, Clone)]
enum Op {
    /// DM `pool[i % len]` from neighbour `20 + n`.
    Arrive(usize, u8),
    /// A route to recipient `10 + r` via neighbour `20 + n` appears, or (None) goes.
    Route(u8, Option<u8>),
    /// A receipt for `pool[i]`, valid or forged, comes from neighbour 20.
    Receipt(usize, bool),
    /// Time passes (ms), then a tick.
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..4).prop_map(|(i, n)| Op::Arrive(i, n)),
        2 => (0u8..4, prop::option::of(0u8..4)).prop_map(|(r, n)| Op::Route(r, n)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Op::Receipt(i, ok)),
        2 => (0u64..3 * HOUR).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A relay (50) fed arbitrary DMs, routes, receipts and time: bounds hold after every
    /// input, forwards follow the routes, each DM to it is shown at most once, nothing panics.
    #[test]
    fn the_outbox_stays_bounded_and_shows_each_dm_once(ops in prop::collection::vec(op(), 0..60)) {
        let me = node(50);
        let limits = Limits {
            max_custody: 6,
            max_custody_per_recipient: 3,
            max_custody_per_neighbour: 4,
            max_custody_bytes: 6 * 1000,
            ..Limits::default()
        };
        let mut ob = outbox(&me, limits);
        let mut routes = Fixed { neighbours: (20..24).map(|n| addr(&node(n))).collect(), ..Fixed::default() };
        let mut now = NOW;
        let mut shown = std::collections::BTreeSet::new();
        let pool = pool();
        for op in ops {
            let out = match op {
                Op::Arrive(i, n) => {
                    let dm = pool[i % pool.len()].clone();
                    ob.handle(Input::Frame(addr(&node(20 + n)), Frame::Dm(dm)), &routes, now)
                }
                Op::Route(r, via) => {
                    let dest = addr(&node(10 + r));
                    match via {
                        Some(n) => routes.next.insert(dest, addr(&node(20 + n))),
                        None => routes.next.remove(&dest),
                    };
                    ob.handle(Input::RoutesChanged(vec![dest]), &routes, now)
                }
                Op::Receipt(i, ok) => {
                    let dm = &pool[i % pool.len()];
                    let r = 10 + (i % pool.len() / 4) as u8;
                    let mut receipt = Receipt::sign(&node(r).id, dm.id(), &node(1).id.public());
                    if !ok {
                        receipt.signature[5] ^= 1;
                    }
                    let rr = RoutedReceipt { hop_limit: 9, to: addr(&node(1)), receipt };
                    ob.handle(Input::Frame(addr(&node(20)), Frame::Receipt(rr)), &routes, now)
                }
                Op::Wait(ms) => {
                    now += ms;
                    ob.handle(Input::Tick, &routes, now)
                }
            };
            for o in &out {
                match o {
                    Output::Forward(to, Frame::Dm(d)) => {
                        prop_assert_eq!(routes.next.get(&d.recipient), Some(to));
                        prop_assert!(d.expires_ms > now);
                    }
                    Output::Deliver(d) => prop_assert!(shown.insert(d.envelope.id()), "shown twice"),
                    _ => {}
                }
            }
            ob.check_invariants(now);
        }
    }
}
