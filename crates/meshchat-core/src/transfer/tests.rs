//! Manifests, sealing, and the wire formats: golden bytes, round trips, decoding never panics.

use proptest::prelude::*;

use super::wire::{
    peek, set_hop_limit, Frame, Header, Nope, Offer, PieceFrame, Refusal, Want, MAX_PIECE_LEN,
    MAX_WANT,
};
use super::*;
use crate::Keypair;

const MIB: u64 = 1024 * 1024;

#[test]
fn chunk_sizes() {
    let min = u64::from(MIN_CHUNK);
    assert_eq!(chunk_size_for(0), Some(MIN_CHUNK));
    assert_eq!(chunk_size_for(1), Some(MIN_CHUNK));
    assert_eq!(chunk_size_for(min * 4096), Some(MIN_CHUNK));
    assert_eq!(chunk_size_for(min * 4096 + 1), Some(2 * MIN_CHUNK));
    assert_eq!(chunk_size_for(2 * min * 4096 + 1), Some(MAX_CHUNK));
    assert_eq!(chunk_size_for(MAX_FILE_SIZE), Some(MAX_CHUNK));
    assert_eq!(chunk_size_for(MAX_FILE_SIZE + 1), None);
    assert_eq!(MAX_FILE_SIZE, 4 * 1024 * MIB);
    assert_eq!(chunk_count(0, MIN_CHUNK), 0);
    assert_eq!(chunk_count(1, MIN_CHUNK), 1);
    assert_eq!(chunk_count(min, MIN_CHUNK), 1);
    assert_eq!(chunk_count(min + 1, MIN_CHUNK), 2);
    assert_eq!(chunk_count(MAX_FILE_SIZE, MAX_CHUNK), MAX_CHUNKS);
    assert_eq!(chunk_count(u64::MAX, 1), u32::MAX);
    assert_eq!(chunk_count(5, 0), 0);
}

#[test]
fn pieces_on_the_wire() {
    assert_eq!(Piece::Manifest.to_u32(), u32::MAX);
    assert_eq!(Piece::from_u32(u32::MAX), Piece::Manifest);
    assert_eq!(Piece::from_u32(7), Piece::Chunk(7));
    assert_eq!(Piece::Chunk(7).to_u32(), 7);
}

/// A file of `size` pseudo-random bytes.
fn file(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

fn manifest_of(data: &[u8]) -> Manifest {
    let mut b = Manifest::builder(data.len() as u64).unwrap();
    let chunk = b.manifest.chunk_size() as usize;
    for c in data.chunks(chunk) {
        b.push(c).unwrap();
    }
    b.finish().unwrap()
}

#[test]
fn manifest_builds_checks_and_decodes() {
    let size = 2 * MIN_CHUNK as usize + 1000;
    let data = file(size, 1);
    let m = manifest_of(&data);
    assert_eq!(m.size(), size as u64);
    assert_eq!(m.chunk_size(), MIN_CHUNK);
    assert_eq!(m.count(), 3);
    assert_eq!(m.chunk_len(0), Some(MIN_CHUNK as usize));
    assert_eq!(m.chunk_len(2), Some(1000));
    assert_eq!(m.chunk_len(3), None);
    assert_eq!(m.offset(2), 2 * u64::from(MIN_CHUNK));
    let c2 = &data[2 * MIN_CHUNK as usize..];
    assert!(m.check(2, c2));
    assert!(!m.check(1, c2));
    assert!(!m.check(3, c2));
    assert!(!m.check(2, &c2[1..]));
    let mut flipped = c2.to_vec();
    flipped[5] ^= 1;
    assert!(!m.check(2, &flipped));

    // The root: the domain, the sizes, the hashes.
    let mut h = blake3::Hasher::new();
    h.update(b"meshchat file manifest v1");
    h.update(&(size as u64).to_be_bytes());
    h.update(&MIN_CHUNK.to_be_bytes());
    for c in data.chunks(MIN_CHUNK as usize) {
        h.update(blake3::hash(c).as_bytes());
    }
    let root = m.root();
    assert_eq!(root, *h.finalize().as_bytes());

    let bytes = m.encode();
    assert_eq!(bytes.len(), 3 * 32);
    assert_eq!(
        Manifest::decode(&bytes, size as u64, MIN_CHUNK, &root),
        Ok(m.clone())
    );
    assert_eq!(
        Manifest::decode(&bytes[..64], size as u64, MIN_CHUNK, &root),
        Err(Error::Malformed("manifest length"))
    );
    assert_eq!(
        Manifest::decode(&bytes, size as u64 + 1, MIN_CHUNK, &root),
        Err(Error::RootMismatch)
    );
    assert_eq!(
        Manifest::decode(&bytes, size as u64, 2 * MIN_CHUNK, &root),
        Err(Error::ChunkSize {
            size: size as u64,
            chunk_size: 2 * MIN_CHUNK
        })
    );
    assert_eq!(
        Manifest::decode(&bytes, MAX_FILE_SIZE + 1, MAX_CHUNK, &root),
        Err(Error::TooLarge(MAX_FILE_SIZE + 1))
    );
    let mut other = bytes.clone();
    other[40] ^= 1;
    assert_eq!(
        Manifest::decode(&other, size as u64, MIN_CHUNK, &root),
        Err(Error::RootMismatch)
    );
    let debug = format!("{m:?}");
    assert!(debug.contains("count: 3"), "{debug}");
}

#[test]
fn empty_file_and_builder_errors() {
    let m = Manifest::builder(0).unwrap().finish().unwrap();
    assert_eq!(m.count(), 0);
    assert!(m.encode().is_empty());
    // Golden: a change here changes every file's identity.
    let mut h = blake3::Hasher::new();
    h.update(b"meshchat file manifest v1\0\0\0\0\0\0\0\0\0\x04\0\0");
    assert_eq!(m.root(), *h.finalize().as_bytes());
    assert_eq!(
        hex::encode(m.root()),
        "a82adb29a49a9b8e944c93156265e10875db11c93d0d74fbe4b5738a8f67aa4f"
    );
    assert_eq!(Manifest::decode(&[], 0, MIN_CHUNK, &m.root()), Ok(m));
    assert_eq!(
        Manifest::builder(MAX_FILE_SIZE + 1).unwrap_err(),
        Error::TooLarge(MAX_FILE_SIZE + 1)
    );
    let mut b = Manifest::builder(u64::from(MIN_CHUNK) + 10).unwrap();
    assert_eq!(
        b.push(&[0; 10]),
        Err(Error::ChunkLength {
            index: 0,
            expected: MIN_CHUNK as usize,
            got: 10
        })
    );
    b.push(&vec![0; MIN_CHUNK as usize]).unwrap();
    b.push(&[0; 10]).unwrap();
    assert!(b.push(&[0; 10]).is_err(), "past the last chunk");
    b.finish().unwrap();
    let b = Manifest::builder(u64::from(MIN_CHUNK) + 10).unwrap();
    assert_eq!(b.finish(), Err(Error::Incomplete));
}

#[test]
fn sealed_pieces_open_only_with_their_key_root_and_piece() {
    let key = [7u8; 32];
    let root = [1u8; 32];
    let plain = b"chunk bytes".to_vec();
    let sealed = seal_piece(&key, &root, Piece::Chunk(3), &plain);
    assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
    // The nonce is the piece number in the last 4 bytes; the root is the associated data.
    {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        let cipher = chacha20poly1305::ChaCha20Poly1305::new(&key.into());
        let nonce = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
        let direct = cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: &plain,
                    aad: &root,
                },
            )
            .unwrap();
        assert_eq!(sealed, direct);
    }
    assert_ne!(&sealed[..plain.len()], &plain[..]);
    // Same key, piece and plaintext: the same ciphertext (see the module docs).
    assert_eq!(sealed, seal_piece(&key, &root, Piece::Chunk(3), &plain));
    assert_eq!(
        open_piece(&key, &root, Piece::Chunk(3), &sealed),
        Some(plain.clone())
    );
    assert_eq!(
        open_piece(&[8u8; 32], &root, Piece::Chunk(3), &sealed),
        None
    );
    assert_eq!(open_piece(&key, &[2u8; 32], Piece::Chunk(3), &sealed), None);
    assert_eq!(open_piece(&key, &root, Piece::Chunk(4), &sealed), None);
    assert_eq!(open_piece(&key, &root, Piece::Manifest, &sealed), None);
    assert_eq!(open_piece(&key, &root, Piece::Chunk(3), &sealed[1..]), None);
    assert_eq!(open_piece(&key, &root, Piece::Chunk(3), &[]), None);
    let empty = seal_piece(&key, &root, Piece::Manifest, &[]);
    assert_eq!(empty.len(), SEAL_OVERHEAD);
    assert_eq!(
        open_piece(&key, &root, Piece::Manifest, &empty),
        Some(vec![])
    );
}

fn offer() -> Offer {
    Offer {
        nick: "al".into(),
        name: "a.txt".into(),
        size: 5,
        chunk_size: MIN_CHUNK,
        root: [0xab; 32],
        key: None,
    }
}

#[test]
fn offer_golden_bytes_and_round_trip() {
    let o = offer();
    let bytes = o.encode().unwrap();
    let mut golden = vec![2, b'a', b'l', 0, 5];
    golden.extend_from_slice(b"a.txt");
    golden.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5]);
    golden.extend_from_slice(&[0, 4, 0, 0]);
    golden.extend_from_slice(&[0xab; 32]);
    golden.push(0);
    assert_eq!(bytes, golden);
    assert_eq!(Offer::decode(&bytes), Ok(o.clone()));
    assert_eq!(o.chunk_count(), 1);

    let dm = Offer {
        key: Some([0x5a; 32]),
        ..o
    };
    let bytes = dm.encode().unwrap();
    assert_eq!(bytes.len(), golden.len() + 32);
    assert_eq!(bytes[golden.len() - 1], 1);
    assert_eq!(&bytes[golden.len()..], &[0x5a; 32]);
    assert_eq!(Offer::decode(&bytes), Ok(dm.clone()));

    // Truncated, trailing, a bad has_key byte.
    assert!(Offer::decode(&bytes[..bytes.len() - 1]).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        Offer::decode(&longer),
        Err(Error::Malformed("trailing bytes"))
    );
    let mut bad_flag = golden.clone();
    *bad_flag.last_mut().unwrap() = 2;
    assert_eq!(Offer::decode(&bad_flag), Err(Error::Malformed("has_key")));
}

#[test]
fn offer_debug_hides_the_key() {
    let dm = Offer {
        key: Some([0x5a; 32]),
        ..offer()
    };
    let debug = format!("{dm:?}");
    assert!(debug.contains("key: Some(\"…\")"), "{debug}");
    assert!(!debug.contains(&hex::encode([0x5a; 32])), "{debug}");
    assert!(!debug.contains("90, 90"), "{debug}");
    assert!(format!("{:?}", offer()).contains("key: None"));
}

#[test]
fn offer_refuses_paths_bad_names_and_wrong_chunk_sizes() {
    let long = "x".repeat(256);
    for name in [
        "../x",
        "a/b",
        "a\\b",
        "\u{7}x",
        "",
        long.as_str(),
        "..",
        ".",
    ] {
        let o = Offer {
            name: name.to_owned(),
            ..offer()
        };
        assert!(
            matches!(o.encode(), Err(Error::BadName(_))),
            "{name:?} encoded"
        );
        // And on receipt, from bytes made by hand.
        let mut bytes = vec![2, b'a', b'l'];
        bytes.extend_from_slice(&(name.len() as u16).to_be_bytes());
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(&5u64.to_be_bytes());
        bytes.extend_from_slice(&MIN_CHUNK.to_be_bytes());
        bytes.extend_from_slice(&[0xab; 32]);
        bytes.push(0);
        assert!(
            matches!(Offer::decode(&bytes), Err(Error::BadName(_))),
            "{name:?} decoded"
        );
    }
    let ok = Offer {
        name: "x".repeat(255),
        ..offer()
    };
    assert_eq!(Offer::decode(&ok.encode().unwrap()), Ok(ok));

    let wrong = Offer {
        chunk_size: 2 * MIN_CHUNK,
        ..offer()
    };
    assert!(matches!(wrong.encode(), Err(Error::ChunkSize { .. })));
    let mut bytes = offer().encode().unwrap();
    let at = 1 + 2 + 2 + 5 + 8;
    bytes[at..at + 4].copy_from_slice(&(2 * MIN_CHUNK).to_be_bytes());
    assert!(matches!(
        Offer::decode(&bytes),
        Err(Error::ChunkSize { .. })
    ));
    let huge = Offer {
        size: MAX_FILE_SIZE + 1,
        chunk_size: MAX_CHUNK,
        ..offer()
    };
    assert_eq!(huge.encode(), Err(Error::TooLarge(MAX_FILE_SIZE + 1)));
    let bad_nick = Offer {
        nick: String::new(),
        ..offer()
    };
    assert!(matches!(bad_nick.encode(), Err(Error::BadNick(_))));
}

const ROOT: Hash = [0xab; 32];

#[test]
fn frame_golden_bytes() {
    let nope: Frame<u32> = Frame::Nope(Nope {
        hop_limit: 7,
        to: 1,
        from: 2,
        root: ROOT,
        reason: Refusal::Busy,
    });
    let head = |tag: u8| {
        let mut v = vec![tag, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2];
        v.extend_from_slice(&ROOT);
        v
    };
    let mut golden = head(3);
    golden.push(2);
    assert_eq!(nope.encode(), golden);
    assert_eq!(Frame::decode(&golden), Ok(nope));

    let piece: Frame<u32> = Frame::Piece(PieceFrame {
        hop_limit: 7,
        to: 1,
        from: 2,
        root: ROOT,
        piece: Piece::Manifest,
        data: vec![9, 8, 7],
    });
    let mut golden = head(2);
    golden.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 3, 9, 8, 7]);
    assert_eq!(piece.encode(), golden);
    assert_eq!(Frame::decode(&golden), Ok(piece));

    let want: Frame<u32> = Frame::Want(Want {
        hop_limit: 7,
        to: 1,
        from: 2,
        root: ROOT,
        timestamp_ms: 0x0102,
        pieces: vec![Piece::Manifest, Piece::Chunk(5)],
        signature: [0x33; 64],
    });
    let mut golden = head(1);
    golden.extend_from_slice(&[
        0, 0, 0, 0, 0, 0, 1, 2, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 5,
    ]);
    golden.extend_from_slice(&[0x33; 64]);
    assert_eq!(want.encode(), golden);
    assert_eq!(Frame::decode(&golden), Ok(want));
}

#[test]
fn frame_decode_refuses_bad_lengths_tags_and_counts() {
    let nope: Frame<u32> = Frame::Nope(Nope {
        hop_limit: 7,
        to: 1,
        from: 2,
        root: ROOT,
        reason: Refusal::Gone,
    });
    let bytes = nope.encode();
    let mut bad = bytes.clone();
    *bad.last_mut().unwrap() = 5;
    assert_eq!(Frame::<u32>::decode(&bad), Err(Error::Malformed("refusal")));
    *bad.last_mut().unwrap() = 0;
    assert!(Frame::<u32>::decode(&bad).is_err());
    bad[0] = 4;
    assert_eq!(Frame::<u32>::decode(&bad), Err(Error::Malformed("tag")));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Frame::<u32>::decode(&longer).is_err());
    assert!(Frame::<u32>::decode(&bytes[..bytes.len() - 1]).is_err());
    assert!(Frame::<u32>::decode(&[]).is_err());

    // A Want of 0 and of 33 pieces.
    let mut want = bytes[..43].to_vec();
    want[0] = 1;
    want.extend_from_slice(&[0; 8]);
    let mut zero = want.clone();
    zero.push(0);
    zero.extend_from_slice(&[0; 64]);
    assert_eq!(
        Frame::<u32>::decode(&zero),
        Err(Error::Malformed("Want piece count"))
    );
    let mut many = want.clone();
    many.push(33);
    many.extend_from_slice(&[0; 33 * 4 + 64]);
    assert!(Frame::<u32>::decode(&many).is_err());

    // Piece data one byte over the limit, and a length that lies.
    let mut piece = bytes[..43].to_vec();
    piece[0] = 2;
    piece.extend_from_slice(&[0, 0, 0, 1]);
    let mut over = piece.clone();
    over.extend_from_slice(&(MAX_PIECE_LEN as u32 + 1).to_be_bytes());
    over.resize(over.len() + MAX_PIECE_LEN + 1, 0);
    assert!(Frame::<u32>::decode(&over).is_err());
    let mut lying = piece.clone();
    lying.extend_from_slice(&10u32.to_be_bytes());
    lying.extend_from_slice(&[1; 9]);
    assert_eq!(
        Frame::<u32>::decode(&lying),
        Err(Error::Malformed("truncated"))
    );
}

#[test]
fn relays_peek_and_rewrite_the_hop_limit() {
    let frame: Frame<[u8; 32]> = Frame::Piece(PieceFrame {
        hop_limit: 9,
        to: [1; 32],
        from: [2; 32],
        root: ROOT,
        piece: Piece::Chunk(0),
        data: vec![1; 100],
    });
    let mut bytes = frame.encode();
    assert_eq!(
        peek::<[u8; 32]>(&bytes),
        Some(Header {
            tag: 2,
            hop_limit: 9,
            to: [1; 32],
            from: [2; 32],
            root: ROOT,
        })
    );
    assert_eq!(frame.to(), [1; 32]);
    assert_eq!(frame.hop_limit(), 9);
    set_hop_limit(&mut bytes, 8);
    assert_eq!(Frame::<[u8; 32]>::decode(&bytes).unwrap().hop_limit(), 8);
    assert_eq!(peek::<[u8; 32]>(&bytes[..60]), None);
    bytes[0] = 9;
    assert_eq!(peek::<[u8; 32]>(&bytes), None);
    let mut short = [1u8, 2];
    set_hop_limit(&mut short, 5);
    assert_eq!(short, [1, 2]);
}

#[test]
fn wants_verify_and_tampered_ones_do_not() {
    let key = Keypair::from_secret_bytes(&[3; 32]);
    let want = Want::sign(&key, 4, [9; 32], ROOT, 1_000, vec![Piece::Chunk(1)]);
    assert_eq!(want.from, *key.public().as_bytes());
    assert!(want.verify());
    let bytes = Frame::Want(want.clone()).encode();
    let Ok(Frame::Want(back)) = Frame::<[u8; 32]>::decode(&bytes) else {
        panic!("a Want");
    };
    assert!(back.verify());
    // The hop limit is outside the signature.
    assert!(Want {
        hop_limit: 0,
        ..want.clone()
    }
    .verify());
    let tampered = [
        Want {
            to: [8; 32],
            ..want.clone()
        },
        Want {
            root: [0; 32],
            ..want.clone()
        },
        Want {
            timestamp_ms: 1_001,
            ..want.clone()
        },
        Want {
            pieces: vec![Piece::Chunk(2)],
            ..want.clone()
        },
        Want {
            pieces: vec![Piece::Chunk(1), Piece::Chunk(1)],
            ..want.clone()
        },
        Want {
            from: *Keypair::from_secret_bytes(&[4; 32]).public().as_bytes(),
            ..want.clone()
        },
        Want {
            from: [0; 32],
            ..want.clone()
        },
    ];
    for t in tampered {
        assert!(!t.verify(), "{t:?}");
    }
    let mut sig = want.clone();
    sig.signature[0] ^= 1;
    assert!(!sig.verify());
}

#[test]
fn max_len_is_the_largest_frame() {
    let biggest: Frame<[u8; 32]> = Frame::Piece(PieceFrame {
        hop_limit: 1,
        to: [1; 32],
        from: [2; 32],
        root: ROOT,
        piece: Piece::Chunk(0),
        data: vec![0; MAX_PIECE_LEN],
    });
    let bytes = biggest.encode();
    assert_eq!(bytes.len(), Frame::<[u8; 32]>::max_len());
    assert_eq!(Frame::<[u8; 32]>::decode(&bytes), Ok(biggest));
    let mut over = bytes;
    over.push(0);
    assert_eq!(
        Frame::<[u8; 32]>::decode(&over),
        Err(Error::FrameTooLarge(Frame::<[u8; 32]>::max_len() + 1))
    );
}

fn arb_piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        Just(Piece::Manifest),
        any::<u32>().prop_map(Piece::from_u32)
    ]
}

fn arb_frame() -> impl Strategy<Value = Frame<[u8; 32]>> {
    let head = (
        any::<u16>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    );
    prop_oneof![
        (
            head,
            any::<u64>(),
            proptest::collection::vec(arb_piece(), 1..=MAX_WANT),
            proptest::collection::vec(any::<u8>(), 64)
        )
            .prop_map(|((hop_limit, to, from, root), timestamp_ms, pieces, sig)| {
                Frame::Want(Want {
                    hop_limit,
                    to,
                    from,
                    root,
                    timestamp_ms,
                    pieces,
                    signature: sig.try_into().unwrap(),
                })
            }),
        (
            head,
            arb_piece(),
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|((hop_limit, to, from, root), piece, data)| {
                Frame::Piece(PieceFrame {
                    hop_limit,
                    to,
                    from,
                    root,
                    piece,
                    data,
                })
            }),
        (head, 1u8..=4).prop_map(|((hop_limit, to, from, root), r)| {
            let reason = [
                Refusal::NotHere,
                Refusal::Busy,
                Refusal::NoRoute,
                Refusal::Gone,
            ][r as usize - 1];
            Frame::Nope(Nope {
                hop_limit,
                to,
                from,
                root,
                reason,
            })
        }),
    ]
}

proptest! {
    #[test]
    fn frames_round_trip(frame in arb_frame()) {
        let bytes = frame.encode();
        prop_assert!(bytes.len() <= Frame::<[u8; 32]>::max_len());
        let header = peek::<[u8; 32]>(&bytes).unwrap();
        prop_assert_eq!(header.to, frame.to());
        prop_assert_eq!(header.from, frame.from());
        prop_assert_eq!(header.hop_limit, frame.hop_limit());
        prop_assert_eq!(Frame::decode(&bytes), Ok(frame));
    }

    #[test]
    fn frame_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Frame::<[u8; 32]>::decode(&bytes);
        let _ = peek::<[u8; 32]>(&bytes);
        let mut tagged = bytes.clone();
        if let Some(t) = tagged.first_mut() {
            *t = 1 + *t % 3;
        }
        let _ = Frame::<u32>::decode(&tagged);
        let _ = Frame::<[u8; 32]>::decode(&tagged);
        let _ = peek::<u32>(&tagged);
        set_hop_limit(&mut tagged, 1);
    }

    #[test]
    fn offers_round_trip(
        nick in "[a-zA-Z0-9 ]{0,31}[a-z]",
        name in "[a-zA-Z0-9 ._-]{0,60}[a-z]",
        size in 0..=MAX_FILE_SIZE,
        root in any::<[u8; 32]>(),
        key in any::<Option<[u8; 32]>>(),
    ) {
        let o = Offer { nick, name, size, chunk_size: chunk_size_for(size).unwrap(), root, key };
        prop_assert_eq!(Offer::decode(&o.encode().unwrap()), Ok(o));
    }

    #[test]
    fn offer_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Offer::decode(&bytes);
    }

    #[test]
    fn manifest_decode_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        size in any::<u64>(),
        chunk_size in any::<u32>(),
    ) {
        let _ = Manifest::decode(&bytes, size, chunk_size, &ROOT);
    }
}

#[test]
fn file_names_are_made_safe_and_numbered() {
    use super::{numbered_name, safe_file_name};
    assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
    assert_eq!(safe_file_name("..\\..\\boot.ini"), "boot.ini");
    assert_eq!(safe_file_name("C:\\x\\y.txt"), "y.txt");
    assert_eq!(safe_file_name(".."), "file");
    assert_eq!(safe_file_name("..."), "file");
    assert_eq!(safe_file_name(""), "file");
    assert_eq!(safe_file_name(".bashrc"), "bashrc");
    assert_eq!(safe_file_name("a\u{7}b\nc"), "a_b_c");
    assert_eq!(safe_file_name("   "), "file");
    assert_eq!(safe_file_name(&"é".repeat(300)).len(), 200);
    assert_eq!(numbered_name("photo.jpg", 0), "photo.jpg");
    assert_eq!(numbered_name("photo.jpg", 2), "photo (2).jpg");
    assert_eq!(numbered_name("README", 1), "README (1)");
    assert_eq!(numbered_name(".x", 1), ".x (1)");
}
