//! Envelope wire-format tests: golden bytes, round trips, length, and rejection of damage.

use super::*;
use crate::identity::Keypair;
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000_000;

fn key() -> Keypair {
    Keypair::from_secret_bytes(&[1u8; 32])
}

fn sample() -> Envelope {
    Envelope::sign(
        &key(),
        Draft {
            kind: Kind::RoomText,
            target: "lobby",
            timestamp_ms: NOW,
            nonce: 0x0102_0304_0506_0708,
            body: b"\x05alicehello",
        },
    )
    .unwrap()
}

/// The exact bytes of `sample()`. If this test fails, the wire format changed: bump VERSION and
/// update docs/PROTOCOL.md rather than the constant.
const GOLDEN_HEX: &str = "0101056c6f6262798a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c0000018bcfe5680001020304050607080000000b05616c69636568656c6c6f699d59249ce44e95c01b4817e9a3b5a68674f740fb101287b1fb2fad1d204ad1095433572359bcaccedc6ab4f1369edd5a6ffc609471adcf094e9c27d2295a0b";
const GOLDEN_ID: &str = "58393511530b8d6898e22ef5cb32f35572824839c7c17e2bc59158c85be2450f";

#[test]
fn golden_bytes() {
    let env = sample();
    let hex = hex::encode(env.as_bytes());
    // Header, target, author, timestamp, nonce, body length, body: checked field by field.
    let b = env.as_bytes();
    assert_eq!(&b[..3], &[1, 1, 5]);
    assert_eq!(&b[3..8], b"lobby");
    assert_eq!(&b[8..40], key().public().as_bytes());
    assert_eq!(&b[40..48], &NOW.to_be_bytes());
    assert_eq!(&b[48..56], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&b[56..60], &[0, 0, 0, 11]);
    assert_eq!(&b[60..71], b"\x05alicehello");
    assert_eq!(b.len(), 71 + 64);
    assert_eq!(hex, GOLDEN_HEX, "golden bytes changed");
    assert_eq!(env.id().to_string(), GOLDEN_ID);
}

#[test]
fn encoded_length_is_fixed_plus_target_plus_body() {
    let env = sample();
    assert_eq!(env.as_bytes().len(), FIXED_LEN + 5 + 11);
}

#[test]
fn open_accepts_what_sign_makes() {
    let env = sample();
    let opened = Envelope::open(env.as_bytes().to_vec(), NOW).unwrap();
    assert_eq!(opened, env);
    assert_eq!(opened.target(), "lobby");
    assert_eq!(opened.body(), b"\x05alicehello");
    assert_eq!(opened.author(), &key().public());
    assert_eq!(opened.id(), MessageId::of(env.as_bytes()));
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let bytes = sample().into_bytes();
    // Also through a key cache that already holds the author's key (and, as the loop goes on,
    // the damaged keys that decoded): caching a key must never let a damaged envelope pass.
    let mut keys = KeyCache::new(64);
    Envelope::open_cached(bytes.clone(), NOW, &mut keys).unwrap();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[i] ^= 1 << bit;
            assert!(
                Envelope::open(damaged.clone(), NOW).is_err(),
                "flip of bit {bit} in byte {i} accepted"
            );
            assert!(
                Envelope::open_cached(damaged, NOW, &mut keys).is_err(),
                "flip of bit {bit} in byte {i} accepted with a warm key cache"
            );
        }
    }
    assert_eq!(
        Envelope::open_cached(bytes.clone(), NOW, &mut keys).unwrap(),
        Envelope::open(bytes, NOW).unwrap()
    );
}

#[test]
fn specific_rejections() {
    let bytes = sample().into_bytes();
    assert_eq!(
        Envelope::open(vec![0; MAX_ENVELOPE_LEN + 1], NOW),
        Err(Error::TooLarge(MAX_ENVELOPE_LEN + 1))
    );
    assert_eq!(Envelope::open(vec![], NOW), Err(Error::Truncated));
    assert_eq!(
        Envelope::open(bytes[..bytes.len() - 1].to_vec(), NOW),
        Err(Error::Truncated)
    );
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(Envelope::open(trailing, NOW), Err(Error::TrailingBytes));
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert_eq!(Envelope::open(v2, NOW), Err(Error::BadVersion(2)));
    // A changed kind breaks the signature; kind 0 is reserved and refused before it.
    let mut kind = bytes.clone();
    kind[1] = 99;
    assert_eq!(Envelope::open(kind, NOW), Err(Error::BadSignature));
    let mut kind = bytes.clone();
    kind[1] = 0;
    assert_eq!(Envelope::open(kind, NOW), Err(Error::UnknownKind(0)));
    let mut sig = bytes.clone();
    let last = sig.len() - 1;
    sig[last] ^= 0x10;
    assert_eq!(Envelope::open(sig, NOW), Err(Error::BadSignature));
    // From the future: beyond the skew allowance, refused; within it, accepted.
    let early = NOW - MAX_CLOCK_SKEW_MS - 1;
    assert_eq!(
        Envelope::open(bytes.clone(), early),
        Err(Error::FromFuture(MAX_CLOCK_SKEW_MS + 1))
    );
    assert!(Envelope::open(bytes, NOW - MAX_CLOCK_SKEW_MS).is_ok());
}

#[test]
fn sign_refuses_bad_fields() {
    let draft = |target: &'static str, body: &'static [u8]| Draft {
        kind: Kind::RoomText,
        target,
        timestamp_ms: NOW,
        nonce: 1,
        body,
    };
    assert_eq!(
        Envelope::sign(&key(), draft("", b"x")),
        Err(Error::FieldEmpty("target"))
    );
    let long: &'static str = Box::leak("t".repeat(MAX_TARGET_LEN + 1).into_boxed_str());
    assert_eq!(
        Envelope::sign(&key(), draft(long, b"x")),
        Err(Error::FieldTooLong("target"))
    );
    let big: &'static [u8] = Box::leak(vec![0u8; MAX_BODY_LEN + 1].into_boxed_slice());
    assert_eq!(
        Envelope::sign(&key(), draft("r", big)),
        Err(Error::FieldTooLong("body"))
    );
    // The largest legal envelope is exactly MAX_ENVELOPE_LEN and opens.
    let max_target: &'static str = Box::leak("t".repeat(MAX_TARGET_LEN).into_boxed_str());
    let max_body: &'static [u8] = Box::leak(vec![7u8; MAX_BODY_LEN].into_boxed_slice());
    let env = Envelope::sign(&key(), draft(max_target, max_body)).unwrap();
    assert_eq!(env.as_bytes().len(), MAX_ENVELOPE_LEN);
    assert!(Envelope::open(env.into_bytes(), NOW).is_ok());
}

#[test]
fn debug_is_short_and_has_no_body() {
    let dbg = format!("{:?}", sample());
    assert!(!dbg.contains("hello"), "{dbg}");
}

#[test]
fn message_id_hex_round_trip() {
    let id = sample().id();
    assert_eq!(id.to_string().parse::<MessageId>().unwrap(), id);
    assert!("zz".parse::<MessageId>().is_err());
}

proptest! {
    #[test]
    fn round_trip(
        seed in any::<[u8; 32]>(),
        target in "[a-z0-9._-]{1,64}",
        ts in 0u64..NOW,
        nonce in any::<u64>(),
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let key = Keypair::from_secret_bytes(&seed);
        let env = Envelope::sign(&key, Draft { kind: Kind::RoomText, target: &target, timestamp_ms: ts, nonce, body: &body }).unwrap();
        prop_assert_eq!(env.as_bytes().len(), FIXED_LEN + target.len() + body.len());
        let back = Envelope::open(env.as_bytes().to_vec(), NOW).unwrap();
        prop_assert_eq!(back.target(), target.as_str());
        prop_assert_eq!(back.timestamp_ms(), ts);
        prop_assert_eq!(back.nonce(), nonce);
        prop_assert_eq!(back.body(), body.as_slice());
        prop_assert_eq!(back, env);
    }

    #[test]
    fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Envelope::open(bytes.clone(), NOW);
        let _ = Envelope::open_trusted(bytes);
    }
}

#[test]
fn a_future_kind_opens_with_its_signature_checked() {
    let env = Envelope::sign(
        &key(),
        Draft {
            kind: Kind::Other(42),
            target: "someone",
            timestamp_ms: NOW,
            nonce: 1,
            body: b"opaque",
        },
    )
    .unwrap();
    let back = Envelope::open(env.as_bytes().to_vec(), NOW).unwrap();
    assert_eq!(back.kind(), Kind::Other(42));
    let mut forged = env.into_bytes();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(Envelope::open(forged, NOW), Err(Error::BadSignature));
}

#[test]
fn newer_versions_are_told_from_junk() {
    let mut v2 = sample().into_bytes();
    v2[0] = 2;
    assert!(looks_like_newer_version(&v2));
    // Kind 0, a zero or oversized target length, a version beyond the reserved range, too short.
    for (i, b) in [(1, 0u8), (2, 0), (2, 65), (0, 16), (0, 0xff)] {
        let mut bad = v2.clone();
        bad[i] = b;
        assert!(!looks_like_newer_version(&bad), "byte {i} = {b}");
    }
    assert!(!looks_like_newer_version(&v2[..FIXED_LEN]));
    assert!(!looks_like_newer_version(&[2, 1]));
    // Random bytes: only a small fraction pass (each junk message is then a strike).
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(9);
    let passed = (0..10_000)
        .filter(|_| {
            let len = rand::Rng::gen_range(&mut rng, 0..400);
            let bytes: Vec<u8> = (0..len).map(|_| rand::Rng::gen(&mut rng)).collect();
            looks_like_newer_version(&bytes)
        })
        .count();
    assert!(
        passed < 300,
        "{passed} of 10 000 random payloads look like envelopes"
    );
}
