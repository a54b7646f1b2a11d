//! The frames of `/meshchat/broadcast/2`: encoding, decoding and packing. The layout is in the
//! module docs of [`crate::broadcast`].
//!
//! Every count and length is checked against its bound and against the bytes left before
//! anything is allocated, so a frame of `n` bytes never makes the decoder hold much more than `n`
//! bytes. Anything an honest node never sends is an [`Error`] (a strike, see [`crate::guard`]);
//! no input panics.

use std::sync::Arc;

use crate::envelope::{MessageId, MAX_ENVELOPE_LEN};

/// Most messages in one frame.
pub const MAX_MESSAGES: usize = 64;
/// Most `(id, hops)` entries in one IHave.
pub const MAX_IHAVE: usize = 512;
/// Most ids in one Graft.
pub const MAX_GRAFT: usize = 512;
/// Largest payload of a Gossip: the largest envelope.
pub const MAX_PAYLOAD_LEN: usize = MAX_ENVELOPE_LEN;
/// Largest frame, in bytes; a larger one is refused before it is parsed. At least one largest
/// Gossip fits, with room to spare (seventeen).
pub const MAX_FRAME_LEN: usize = 1024 * 1024;

/// Bytes of a Gossip besides its payload: tag, id, hops, tree, length.
pub const GOSSIP_OVERHEAD: usize = 1 + 32 + 2 + 1 + 4;
/// Bytes of one IHave entry: id and hops.
pub const IHAVE_ENTRY_LEN: usize = 32 + 2;

const TAG_GOSSIP: u8 = 1;
const TAG_IHAVE: u8 = 2;
const TAG_GRAFT: u8 = 3;
const TAG_PRUNE: u8 = 4;
const TAG_PUSH: u8 = 5;
const TREE_NONE: u8 = 0;
const TREE_ORIGIN: u8 = 1;

/// Which broadcast tree a `Prune` is about: the origin key of the messages it carries (the
/// envelope's author, with per-origin trees), or `None`: the tree of the messages that have no
/// readable origin, which is also the one shared tree when a node keeps a single tree
/// ([`super::Trees`]).
pub type Tree = Option<[u8; 32]>;

/// A payload: the envelope's bytes, shared between the cache, the outputs and the frames.
pub type Payload = Arc<[u8]>;

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A message pushed to an eager peer, or sent in answer to a Graft. `hops` is the sender's
    /// own hop count for it: 0 at the author, one more at every relay.
    Gossip {
        id: MessageId,
        hops: u16,
        /// Whether the message runs on its origin's own tree (else on the shared tree): set by
        /// its author, kept by every relay, so that every node puts it on the same tree.
        own_tree: bool,
        payload: Payload,
    },
    /// "I have these": `(id, hops)` with the announcer's hop count, 1..=[`MAX_IHAVE`] entries.
    IHave(Vec<(MessageId, u16)>),
    /// "Push to me from now on, and send me these": 0..=[`MAX_GRAFT`] ids (none: only the
    /// first part, used by the tree optimisation).
    Graft(Vec<MessageId>),
    /// "Stop pushing this tree's messages to me; announce them instead."
    Prune(Tree),
    /// "Push this tree's messages to me from now on": a Graft of one tree, with no ids.
    Push(Tree),
}

/// A frame no honest node sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("broadcast frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge(usize),
    #[error("broadcast frame truncated")]
    Truncated,
    #[error("trailing bytes after the last broadcast message")]
    TrailingBytes,
    #[error("unknown broadcast message tag {0}")]
    UnknownTag(u8),
    #[error("broadcast frame of {0} messages (1..={MAX_MESSAGES} allowed)")]
    BadMessageCount(usize),
    #[error("ihave of {0} entries (1..={MAX_IHAVE} allowed)")]
    BadIHaveCount(usize),
    #[error("graft of {0} ids (at most {MAX_GRAFT} allowed)")]
    BadGraftCount(usize),
    #[error("gossip payload of {0} bytes exceeds the {MAX_PAYLOAD_LEN}-byte limit")]
    PayloadTooLarge(usize),
    /// An id listed twice in one IHave or one Graft: an honest node lists each once, and a
    /// repeated id in a Graft would ask for the same payload again (issue 24: one 16 KB Graft
    /// naming one 60 KB message 512 times made a node send 30 MB).
    #[error("id listed twice in one {0}")]
    RepeatedId(&'static str),
    #[error("unknown broadcast tree kind {0}")]
    BadTree(u8),
}

impl Message {
    /// Bytes of the encoding, without encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::Gossip { payload, .. } => GOSSIP_OVERHEAD + payload.len(),
            Message::IHave(entries) => 3 + IHAVE_ENTRY_LEN * entries.len(),
            Message::Graft(ids) => 3 + 32 * ids.len(),
            Message::Prune(tree) | Message::Push(tree) => 2 + if tree.is_some() { 32 } else { 0 },
        }
    }

    /// Appends the encoding to `out`.
    ///
    /// # Panics
    /// If a count or length is beyond its bound (a bug in the caller: the state machine never
    /// makes such a message).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Message::Gossip {
                id,
                hops,
                own_tree,
                payload,
            } => {
                assert!(payload.len() <= MAX_PAYLOAD_LEN, "gossip payload too large");
                out.push(TAG_GOSSIP);
                out.extend_from_slice(&id.0);
                out.extend_from_slice(&hops.to_be_bytes());
                out.push(if *own_tree { TREE_ORIGIN } else { TREE_NONE });
                out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                out.extend_from_slice(payload);
            }
            Message::IHave(entries) => {
                assert!(
                    (1..=MAX_IHAVE).contains(&entries.len()),
                    "ihave of {} entries",
                    entries.len()
                );
                out.push(TAG_IHAVE);
                out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
                for (id, hops) in entries {
                    out.extend_from_slice(&id.0);
                    out.extend_from_slice(&hops.to_be_bytes());
                }
            }
            Message::Graft(ids) => {
                assert!(ids.len() <= MAX_GRAFT, "graft of {} ids", ids.len());
                out.push(TAG_GRAFT);
                out.extend_from_slice(&(ids.len() as u16).to_be_bytes());
                for id in ids {
                    out.extend_from_slice(&id.0);
                }
            }
            Message::Prune(tree) | Message::Push(tree) => {
                out.push(if matches!(self, Message::Prune(_)) {
                    TAG_PRUNE
                } else {
                    TAG_PUSH
                });
                match tree {
                    None => out.push(TREE_NONE),
                    Some(key) => {
                        out.push(TREE_ORIGIN);
                        out.extend_from_slice(key);
                    }
                }
            }
        }
    }

    /// Reads one message from the front of `bytes`; returns it and the rest.
    fn decode_from(bytes: &[u8]) -> Result<(Self, &[u8]), Error> {
        let (&tag, rest) = bytes.split_first().ok_or(Error::Truncated)?;
        match tag {
            TAG_GOSSIP => {
                let (id, rest) = read_id(rest)?;
                let (hops, rest) = read_u16(rest)?;
                let (&tree, rest) = rest.split_first().ok_or(Error::Truncated)?;
                let own_tree = match tree {
                    TREE_NONE => false,
                    TREE_ORIGIN => true,
                    other => return Err(Error::BadTree(other)),
                };
                let (len, rest) = rest.split_first_chunk::<4>().ok_or(Error::Truncated)?;
                let len = u32::from_be_bytes(*len) as usize;
                if len > MAX_PAYLOAD_LEN {
                    return Err(Error::PayloadTooLarge(len));
                }
                if len > rest.len() {
                    return Err(Error::Truncated);
                }
                let (payload, rest) = rest.split_at(len);
                let payload = Payload::from(payload);
                Ok((
                    Message::Gossip {
                        id,
                        hops,
                        own_tree,
                        payload,
                    },
                    rest,
                ))
            }
            TAG_IHAVE => {
                let (count, mut rest) = read_u16(rest)?;
                let count = count as usize;
                if !(1..=MAX_IHAVE).contains(&count) {
                    return Err(Error::BadIHaveCount(count));
                }
                if rest.len() < count * IHAVE_ENTRY_LEN {
                    return Err(Error::Truncated);
                }
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    let (id, r) = read_id(rest)?;
                    let (hops, r) = read_u16(r)?;
                    entries.push((id, hops));
                    rest = r;
                }
                if has_repeats(entries.iter().map(|(id, _)| id)) {
                    return Err(Error::RepeatedId("ihave"));
                }
                Ok((Message::IHave(entries), rest))
            }
            TAG_GRAFT => {
                let (count, rest) = read_u16(rest)?;
                let count = count as usize;
                if count > MAX_GRAFT {
                    return Err(Error::BadGraftCount(count));
                }
                if rest.len() < 32 * count {
                    return Err(Error::Truncated);
                }
                let (ids, rest) = rest.split_at(32 * count);
                let ids: Vec<MessageId> = ids
                    .chunks_exact(32)
                    .map(|c| MessageId(c.try_into().expect("chunks of 32")))
                    .collect();
                if has_repeats(ids.iter()) {
                    return Err(Error::RepeatedId("graft"));
                }
                Ok((Message::Graft(ids), rest))
            }
            TAG_PRUNE => {
                let (tree, rest) = read_tree(rest)?;
                Ok((Message::Prune(tree), rest))
            }
            TAG_PUSH => {
                let (tree, rest) = read_tree(rest)?;
                Ok((Message::Push(tree), rest))
            }
            other => Err(Error::UnknownTag(other)),
        }
    }
}

/// Whether an id occurs twice (at most [`MAX_IHAVE`] ids: sorting a copy of their references
/// costs less than hashing them).
fn has_repeats<'a>(ids: impl Iterator<Item = &'a MessageId>) -> bool {
    let mut sorted: Vec<&MessageId> = ids.collect();
    sorted.sort_unstable();
    sorted.windows(2).any(|w| w[0] == w[1])
}

fn read_id(bytes: &[u8]) -> Result<(MessageId, &[u8]), Error> {
    let (id, rest) = bytes.split_first_chunk::<32>().ok_or(Error::Truncated)?;
    Ok((MessageId(*id), rest))
}

fn read_tree(bytes: &[u8]) -> Result<(Tree, &[u8]), Error> {
    let (&kind, rest) = bytes.split_first().ok_or(Error::Truncated)?;
    match kind {
        TREE_NONE => Ok((None, rest)),
        TREE_ORIGIN => {
            let (key, rest) = rest.split_first_chunk::<32>().ok_or(Error::Truncated)?;
            Ok((Some(*key), rest))
        }
        other => Err(Error::BadTree(other)),
    }
}

fn read_u16(bytes: &[u8]) -> Result<(u16, &[u8]), Error> {
    let (v, rest) = bytes.split_first_chunk::<2>().ok_or(Error::Truncated)?;
    Ok((u16::from_be_bytes(*v), rest))
}

/// Bytes of the frame [`encode`] makes of `messages`, without encoding.
pub fn encoded_len(messages: &[Message]) -> usize {
    1 + messages.iter().map(Message::encoded_len).sum::<usize>()
}

/// Encodes one frame.
///
/// # Panics
/// If there are not 1..=[`MAX_MESSAGES`] messages or a message is beyond its bounds; use
/// [`pack`] to split any list into valid frames.
pub fn encode(messages: &[Message]) -> Vec<u8> {
    assert!(
        (1..=MAX_MESSAGES).contains(&messages.len()),
        "frame of {} messages",
        messages.len()
    );
    let mut out = Vec::with_capacity(encoded_len(messages));
    out.push(messages.len() as u8);
    for m in messages {
        m.encode_into(&mut out);
    }
    out
}

/// Decodes one frame.
pub fn decode(bytes: &[u8]) -> Result<Vec<Message>, Error> {
    if bytes.len() > MAX_FRAME_LEN {
        return Err(Error::TooLarge(bytes.len()));
    }
    let (&count, mut rest) = bytes.split_first().ok_or(Error::Truncated)?;
    let count = count as usize;
    if !(1..=MAX_MESSAGES).contains(&count) {
        return Err(Error::BadMessageCount(count));
    }
    let mut messages = Vec::with_capacity(count);
    for _ in 0..count {
        let (m, r) = Message::decode_from(rest)?;
        messages.push(m);
        rest = r;
    }
    if !rest.is_empty() {
        return Err(Error::TrailingBytes);
    }
    Ok(messages)
}

/// Splits messages (in order) into encoded frames of at most [`MAX_MESSAGES`] messages and
/// [`MAX_FRAME_LEN`] bytes each. Every message fits a frame on its own, so none is dropped.
pub fn pack(messages: impl IntoIterator<Item = Message>) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut current: Vec<Message> = Vec::new();
    let mut len = 1;
    for m in messages {
        let l = m.encoded_len();
        if !current.is_empty() && (current.len() >= MAX_MESSAGES || len + l > MAX_FRAME_LEN) {
            frames.push(encode(&current));
            current.clear();
            len = 1;
        }
        len += l;
        current.push(m);
    }
    if !current.is_empty() {
        frames.push(encode(&current));
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(b: u8) -> MessageId {
        MessageId([b; 32])
    }

    #[test]
    fn golden_bytes() {
        let frame = encode(&[
            Message::Gossip {
                id: id(0xab),
                hops: 0x0102,
                own_tree: true,
                payload: Payload::from(&b"hey"[..]),
            },
            Message::IHave(vec![(id(0xcd), 7)]),
            Message::Graft(vec![id(0xef)]),
            Message::Graft(vec![]),
            Message::Prune(None),
            Message::Prune(Some([0x12; 32])),
            Message::Push(Some([0x34; 32])),
        ]);
        let mut want = vec![7];
        want.push(1);
        want.extend_from_slice(&[0xab; 32]);
        want.extend_from_slice(&[1, 2, 1, 0, 0, 0, 3]);
        want.extend_from_slice(b"hey");
        want.extend_from_slice(&[2, 0, 1]);
        want.extend_from_slice(&[0xcd; 32]);
        want.extend_from_slice(&[0, 7]);
        want.extend_from_slice(&[3, 0, 1]);
        want.extend_from_slice(&[0xef; 32]);
        want.extend_from_slice(&[3, 0, 0]);
        want.extend_from_slice(&[4, 0]);
        want.extend_from_slice(&[4, 1]);
        want.extend_from_slice(&[0x12; 32]);
        want.extend_from_slice(&[5, 1]);
        want.extend_from_slice(&[0x34; 32]);
        assert_eq!(frame, want);
        assert_eq!(
            frame.len(),
            1 + (40 + 3) + (3 + 34) + (3 + 32) + 3 + 2 + 34 + 34
        );
        let back = decode(&frame).unwrap();
        assert_eq!(back.len(), 7);
        assert_eq!(encode(&back), want);
        assert_eq!(decode(&[1, 4, 0]).unwrap(), vec![Message::Prune(None)]);
    }

    #[test]
    fn an_id_listed_twice_in_one_message_is_malformed() {
        let twice = encode(&[Message::Graft(vec![id(1), id(2), id(1)])]);
        assert_eq!(decode(&twice), Err(Error::RepeatedId("graft")));
        let twice = encode(&[Message::IHave(vec![(id(3), 1), (id(3), 2)])]);
        assert_eq!(decode(&twice), Err(Error::RepeatedId("ihave")));
        // The same id in two messages of one frame is not a repeat (grafts are split in chunks
        // of MAX_GRAFT, and announcements queued in two batches may share a frame).
        let apart = encode(&[
            Message::Graft(vec![id(1)]),
            Message::Graft(vec![id(1)]),
            Message::IHave(vec![(id(1), 0)]),
            Message::IHave(vec![(id(1), 0)]),
        ]);
        assert_eq!(decode(&apart).unwrap().len(), 4);
    }

    #[test]
    fn limits_are_enforced() {
        assert_eq!(decode(&[]), Err(Error::Truncated));
        assert_eq!(decode(&[0]), Err(Error::BadMessageCount(0)));
        assert_eq!(decode(&[65, 4, 0]), Err(Error::BadMessageCount(65)));
        assert_eq!(decode(&[2, 4, 0]), Err(Error::Truncated));
        assert_eq!(decode(&[1, 4, 0, 4]), Err(Error::TrailingBytes));
        assert_eq!(decode(&[1, 4]), Err(Error::Truncated));
        assert_eq!(decode(&[1, 4, 2]), Err(Error::BadTree(2)));
        assert_eq!(decode(&[1, 4, 1, 7]), Err(Error::Truncated));
        assert_eq!(decode(&[1, 9]), Err(Error::UnknownTag(9)));
        assert_eq!(decode(&[1, 5, 3]), Err(Error::BadTree(3)));
        assert_eq!(decode(&[1, 0]), Err(Error::UnknownTag(0)));
        assert_eq!(decode(&[1, 2, 0, 0]), Err(Error::BadIHaveCount(0)));
        assert_eq!(decode(&[1, 2, 0x02, 0x01]), Err(Error::BadIHaveCount(513)));
        assert_eq!(decode(&[1, 2, 0, 1, 5]), Err(Error::Truncated));
        assert_eq!(decode(&[1, 3, 0x02, 0x01]), Err(Error::BadGraftCount(513)));
        assert_eq!(decode(&[1, 3, 0, 1, 5]), Err(Error::Truncated));
        assert!(matches!(
            decode(&vec![1; MAX_FRAME_LEN + 1]),
            Err(Error::TooLarge(_))
        ));
        // A payload length beyond its bound, or beyond the bytes left, is refused before anything
        // is copied.
        let mut g = vec![1, 1];
        g.extend_from_slice(&[0; 32]);
        g.extend_from_slice(&[0, 0, 0]);
        let mut bad_tree = g.clone();
        bad_tree[36] = 2;
        assert_eq!(decode(&bad_tree), Err(Error::BadTree(2)));
        let mut huge = g.clone();
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            decode(&huge),
            Err(Error::PayloadTooLarge(u32::MAX as usize))
        );
        let mut short = g.clone();
        short.extend_from_slice(&[0, 0, 0, 2, 9]);
        assert_eq!(decode(&short), Err(Error::Truncated));
        // The largest legal counts decode.
        let distinct = |i: usize| MessageId::of(&i.to_be_bytes());
        let ihave = Message::IHave((0..MAX_IHAVE).map(|i| (distinct(i), 1)).collect());
        let graft = Message::Graft((0..MAX_GRAFT).map(distinct).collect());
        let gossip = Message::Gossip {
            id: id(3),
            hops: u16::MAX,
            own_tree: false,
            payload: vec![0u8; MAX_PAYLOAD_LEN].into(),
        };
        let full = vec![ihave, graft, gossip];
        assert_eq!(decode(&encode(&full)).unwrap(), full);
        let many = vec![Message::Prune(Some([7; 32])); MAX_MESSAGES];
        assert_eq!(decode(&encode(&many)).unwrap(), many);
    }

    #[test]
    fn encoded_lengths() {
        let p = Payload::from(vec![7u8; 150]);
        let gossip = Message::Gossip {
            id: id(1),
            hops: 3,
            own_tree: false,
            payload: p,
        };
        assert_eq!(gossip.encoded_len(), 190);
        assert_eq!(Message::IHave(vec![(id(1), 1); 10]).encoded_len(), 343);
        assert_eq!(Message::Graft(vec![id(1); 2]).encoded_len(), 67);
        assert_eq!(Message::Graft(vec![]).encoded_len(), 3);
        assert_eq!(Message::Prune(None).encoded_len(), 2);
        assert_eq!(Message::Prune(Some([1; 32])).encoded_len(), 34);
        let frame = [gossip, Message::Prune(None)];
        assert_eq!(encode(&frame).len(), encoded_len(&frame));
        assert_eq!(encoded_len(&frame), 193);
    }

    #[test]
    fn pack_respects_both_bounds_and_keeps_order() {
        let big = Message::Gossip {
            id: id(9),
            hops: 1,
            own_tree: true,
            payload: vec![0u8; MAX_PAYLOAD_LEN].into(),
        };
        let frames = pack(std::iter::repeat_n(big.clone(), 40));
        // 17 largest gossips (61 663 bytes each) fit in 1 MiB, the 18th does not.
        assert_eq!(
            frames.iter().map(|f| f[0] as usize).collect::<Vec<_>>(),
            [17, 17, 6]
        );
        assert!(frames.iter().all(|f| f.len() <= MAX_FRAME_LEN));
        let small: Vec<Message> = (0..200u8).map(|i| Message::Graft(vec![id(i)])).collect();
        let frames = pack(small.clone());
        assert_eq!(frames.len(), 4);
        let back: Vec<Message> = frames.iter().flat_map(|f| decode(f).unwrap()).collect();
        assert_eq!(back, small);
        assert!(pack(std::iter::empty()).is_empty());
    }

    fn message() -> impl Strategy<Value = Message> {
        let id = any::<[u8; 32]>().prop_map(MessageId);
        prop_oneof![
            (
                id.clone(),
                any::<u16>(),
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 0..400)
            )
                .prop_map(|(id, hops, own_tree, p)| Message::Gossip {
                    id,
                    hops,
                    own_tree,
                    payload: p.into()
                }),
            proptest::collection::vec((id.clone(), any::<u16>()), 1..40).prop_map(Message::IHave),
            proptest::collection::vec(id, 0..40).prop_map(Message::Graft),
            proptest::option::of(any::<[u8; 32]>()).prop_map(Message::Prune),
            proptest::option::of(any::<[u8; 32]>()).prop_map(Message::Push),
        ]
    }

    proptest! {
        #[test]
        fn round_trips(messages in proptest::collection::vec(message(), 1..=MAX_MESSAGES)) {
            let frame = encode(&messages);
            prop_assert_eq!(frame.len(), encoded_len(&messages));
            prop_assert_eq!(decode(&frame).unwrap(), messages.clone());
            let packed = pack(messages.clone());
            prop_assert_eq!(packed.len(), 1);
            prop_assert_eq!(&packed[0], &frame);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            if let Ok(messages) = decode(&bytes) {
                // What decodes re-encodes to the same bytes: one encoding per frame.
                prop_assert_eq!(encode(&messages), bytes);
            }
        }

        #[test]
        fn damaged_frames_never_panic(messages in proptest::collection::vec(message(), 1..8),
                                      cut in any::<prop::sample::Index>(),
                                      flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let frame = encode(&messages);
            let _ = decode(&frame[..cut.index(frame.len())]);
            let mut damaged = frame.clone();
            let i = flip.index(damaged.len());
            damaged[i] ^= 1 << bit;
            if let Ok(m) = decode(&damaged) {
                prop_assert_eq!(encode(&m), damaged);
            }
        }
    }
}
