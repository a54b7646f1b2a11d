//! The bytes of a routing [`Message`] on `/meshchat/route/1`: one frame per message, read to the
//! end of the stream (or length-delimited by the node), at most [`max_len`] bytes.
//!
//! ```text
//! message = tag u8 | count u16 | entry * count          count in 1..=MAX_ENTRIES
//!   tag 1  Update:   entry = dest [ID] | seqno u16 | metric u16 | hops u16
//!   tag 2  Request:  entry = dest [ID] | seqno u16 | hop_limit u16
//! ```
//!
//! Integers are big-endian. `ID` is [`PeerBytes::LEN`] bytes, the peer id as [`PeerBytes::put`]
//! writes it: for the node's 32-byte keys, the key itself. `metric` 0xFFFF ([`INFINITY`](super::INFINITY)) is a
//! retraction. The frame's length must be exactly `3 + count * entry length`; anything else
//! (empty, unknown tag, a count of 0 or above [`MAX_ENTRIES`], missing or trailing bytes, an id
//! the codec refuses) is an [`Error`] no honest node causes: a strike. No input panics, and
//! nothing is allocated before the length has been checked against the count.
//!
//! For example an update with one advert for the key `11 11 .. 11`, seqno 5, metric 3, hops 3:
//! `01 0001 1111..11 0005 0003 0003` (41 bytes).

use super::{Advert, Message, Request};

/// Most entries in one message.
pub const MAX_ENTRIES: usize = 256;

const TAG_UPDATE: u8 = 1;
const TAG_REQUEST: u8 = 2;
const HEADER_LEN: usize = 3;
/// Bytes after the id in an update entry and in a request entry.
const ADVERT_TAIL: usize = 6;
const REQUEST_TAIL: usize = 4;

/// How a peer id is written: a fixed number of bytes. Implemented for the node's 32-byte keys
/// and for `u32` (the tests' ids).
pub trait PeerBytes: Sized {
    const LEN: usize;
    /// Appends exactly `LEN` bytes.
    fn put(&self, out: &mut Vec<u8>);
    /// Reads `LEN` bytes (`bytes.len() == LEN`); `None` if they are not a valid id.
    fn get(bytes: &[u8]) -> Option<Self>;
}

impl PeerBytes for [u8; 32] {
    const LEN: usize = 32;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn get(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok()
    }
}

impl PeerBytes for u32 {
    const LEN: usize = 4;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn get(bytes: &[u8]) -> Option<Self> {
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }
}

/// The largest message for ids of type `P`.
pub fn max_len<P: PeerBytes>() -> usize {
    HEADER_LEN + MAX_ENTRIES * (P::LEN + ADVERT_TAIL.max(REQUEST_TAIL))
}

/// A message no honest node sends (a strike).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("routing message of {0} bytes exceeds its limit")]
    TooLarge(usize),
    #[error("routing message truncated, or with trailing bytes")]
    Malformed,
    #[error("unknown routing message tag {0}")]
    UnknownTag(u8),
    #[error("routing message of {0} entries (1..={MAX_ENTRIES} allowed)")]
    BadCount(usize),
    #[error("invalid peer id in a routing message")]
    BadId,
}

impl<P: PeerBytes> Message<P> {
    /// Entries in the message.
    pub fn len(&self) -> usize {
        match self {
            Message::Update(v) => v.len(),
            Message::Request(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of [`Message::encode`], without encoding.
    pub fn encoded_len(&self) -> usize {
        let tail = match self {
            Message::Update(_) => ADVERT_TAIL,
            Message::Request(_) => REQUEST_TAIL,
        };
        HEADER_LEN + self.len() * (P::LEN + tail)
    }

    /// # Panics
    /// If the message has no entries or more than [`MAX_ENTRIES`] (the table never makes one).
    pub fn encode(&self) -> Vec<u8> {
        assert!(
            (1..=MAX_ENTRIES).contains(&self.len()),
            "routing message of {} entries",
            self.len()
        );
        let mut out = Vec::with_capacity(self.encoded_len());
        let (tag, count) = match self {
            Message::Update(v) => (TAG_UPDATE, v.len()),
            Message::Request(v) => (TAG_REQUEST, v.len()),
        };
        out.push(tag);
        out.extend_from_slice(&(count as u16).to_be_bytes());
        match self {
            Message::Update(adverts) => {
                for a in adverts {
                    a.dest.put(&mut out);
                    out.extend_from_slice(&a.seqno.to_be_bytes());
                    out.extend_from_slice(&a.metric.to_be_bytes());
                    out.extend_from_slice(&a.hops.to_be_bytes());
                }
            }
            Message::Request(requests) => {
                for r in requests {
                    r.dest.put(&mut out);
                    out.extend_from_slice(&r.seqno.to_be_bytes());
                    out.extend_from_slice(&r.hop_limit.to_be_bytes());
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > max_len::<P>() {
            return Err(Error::TooLarge(bytes.len()));
        }
        let (header, body) = bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(Error::Malformed)?;
        let tag = header[0];
        let count = u16::from_be_bytes([header[1], header[2]]) as usize;
        let tail = match tag {
            TAG_UPDATE => ADVERT_TAIL,
            TAG_REQUEST => REQUEST_TAIL,
            other => return Err(Error::UnknownTag(other)),
        };
        if count == 0 || count > MAX_ENTRIES {
            return Err(Error::BadCount(count));
        }
        let entry = P::LEN + tail;
        if body.len() != count * entry {
            return Err(Error::Malformed);
        }
        let u16_at = |e: &[u8], i: usize| u16::from_be_bytes([e[P::LEN + i], e[P::LEN + i + 1]]);
        let mut entries = body.chunks_exact(entry);
        Ok(match tag {
            TAG_UPDATE => Message::Update(
                entries
                    .by_ref()
                    .map(|e| {
                        Ok(Advert {
                            dest: P::get(&e[..P::LEN]).ok_or(Error::BadId)?,
                            seqno: u16_at(e, 0),
                            metric: u16_at(e, 2),
                            hops: u16_at(e, 4),
                        })
                    })
                    .collect::<Result<_, Error>>()?,
            ),
            _ => Message::Request(
                entries
                    .by_ref()
                    .map(|e| {
                        Ok(Request {
                            dest: P::get(&e[..P::LEN]).ok_or(Error::BadId)?,
                            seqno: u16_at(e, 0),
                            hop_limit: u16_at(e, 2),
                        })
                    })
                    .collect::<Result<_, Error>>()?,
            ),
        })
    }
}
