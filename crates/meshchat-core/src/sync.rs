//! History sync: which room envelopes two peers hold in the sync window, found at a cost that grows
//! with the difference between them, not with the history.
//!
//! When two nodes connect, and periodically while connected, one of them (the *initiator*) opens a
//! reconciliation session with the other (the *responder*) over the `(timestamp_ms, MessageId)` of
//! the envelopes each holds from a lower bound `since_ms` on. Frames go back and forth until the
//! initiator knows `have` (ids it holds that the peer lacks: it offers those, see [`Offers`]) and
//! `need` (ids the peer holds that it lacks: it requests them). Only the initiator learns the
//! difference; both peers start sessions of their own, and each fetches only what it lacks.
//!
//! - [`ItemSet`]: a sorted, deduplicated, bounded snapshot of the items in the window, built once
//!   and shared (it is an `Arc`) by every session until the node rebuilds it.
//! - [`Initiator`] and [`Responder`]: the two sides of one session, driven by frames.
//! - [`Peers`]: the per-peer table the node keeps: at most one session in flight per peer in each
//!   direction, a cap on sessions, idle sessions expire. Time is passed in.
//! - [`Offers`]: telling neighbours at once what a node took that they may lack (ids, or a
//!   request for a round), paced and bounded per peer; how a healed partition converges in
//!   seconds instead of a periodic round per hop.
//! - [`Scheduler`] ([`schedule`]): the node's side: when rounds start, what is fetched from
//!   whom, the rate of opens a peer may make; `handle(input, now) -> outputs` over [`Peers`] and
//!   [`Offers`], with a simulator that asserts convergence under loss, churn and a busy peer.
//!
//! # Why the `negentropy` crate
//!
//! The reconciliation is Meyer's range-based set reconciliation as specified by negentropy
//! (protocol version 1, the message format of Nostr's NIP-77), done by the
//! [`negentropy`](https://docs.rs/negentropy/0.5.3) crate; this module is a thin adapter around
//! it. We use the crate rather than our own implementation because it is sans-io (bytes in, bytes
//! out), has no dependencies, bounds the size of every message it produces (`frame_size_limit`),
//! speaks the format of the reference implementations (C++, JS), and its 0.5.x releases
//! fixed the two problems that matter to us: an id-list count is checked against the bytes left
//! before anything is reserved (0.5.2), and a frame-size cut no longer ends a sync with items
//! missing (0.5.3). We read its decoder for panics and unbounded allocation and found neither
//! (every length is checked against the bytes left; ranges only move forward through the
//! storage), and the tests here fuzz it through our API. What it lacks we add here: our frame around its message,
//! the window negotiation, the per-session budgets and round limit, and a storage over a shared
//! snapshot (its own `NegentropyStorageVector` would copy the set per session).
//!
//! Its quirks: a varint cut short at the end of a message, or longer than ten bytes, decodes to
//! some number instead of failing, so a peer can send a message we would not have produced; what it
//! decodes to is still a well-formed (if useless) range. And after a frame-size cut it may report an
//! id twice; the initiator drops repeats before counting against the budgets.
//!
//! # Wire format (`/meshchat/sync/1`)
//!
//! Every frame is at most [`MAX_FRAME_LEN`] bytes; a larger one is refused before it is parsed.
//! Integers in our header are big-endian.
//!
//! ```text
//! frame = tag u8 | ...
//!   tag 1  Open   initiator -> responder, first frame of a session:  since_ms u64 | message
//!   tag 2  Query  initiator -> responder, every later frame:         message
//!   tag 3  Reply  responder -> initiator, one per Open or Query:     since_ms u64 | message
//! ```
//!
//! `since_ms` in `Open` is the lower bound of the initiator's window. The responder reconciles its
//! items with `timestamp_ms >= max(since_ms, its own window start)` and repeats that bound in every
//! `Reply`; the initiator then leaves its own items below the responder's bound out of `have` (the
//! responder would not keep them). A `Reply` bound below the `Open` bound, or one that changes
//! within a session, is malformed.
//!
//! `message` is a negentropy protocol-1 message (see the negentropy `docs/` and NIP-77):
//!
//! ```text
//! message     = version u8 (0x61) | range*
//! range       = upper_bound | mode varint | payload
//! upper_bound = timestamp varint | id_len varint | id prefix [id_len <= 32]
//!                 timestamp: 0 is infinity; otherwise 1 + the difference from the previous
//!                 bound's timestamp in this message (the first counts from 0)
//! mode 0 Skip         no payload: nothing to do for this range
//! mode 1 Fingerprint  fingerprint [16]
//! mode 2 IdList       count varint | ids [count * 32]
//! varint      = base 128, most significant group first, high bit set on every byte but the last
//! fingerprint = first 16 bytes of SHA-256(sum of the range's ids mod 2^256, each id read as a
//!               256-bit little-endian integer, written as 32 little-endian bytes | varint(count))
//! ```
//!
//! Items are ordered by `(timestamp, id)`. A range runs from the previous range's upper bound
//! (inclusive; the first from the lowest item) to its own (exclusive); a bound's id prefix is padded
//! with zero bytes to 32 and the bound compared like an item. On a fingerprint that
//! differs from its own, a side answers the range with its ids if it holds fewer than 32 items there
//! and with 16 sub-range fingerprints otherwise; on an id list the responder answers with its own
//! ids of the range, and the initiator works out `have` and `need` from it. A side whose message
//! would outgrow its frame limit stops there and ends the message with one Fingerprint range from
//! the last bound it wrote to infinity; the rest is settled in later rounds. The session ends when
//! the initiator has nothing left to ask (its next message would be the version byte alone).
//!
//! Measured (`sync/tests.rs`, 60 KiB frames): two identical sets of 100 000 items reconcile in one
//! round trip of 371 bytes (16 fingerprints out, a version byte back). 10 000 differences in
//! 100 000 items (5 000 on each side) take 70 round trips and 4.4 MB; 10 000 missing on one side,
//! 94 round trips and 5.9 MB. At that density nearly every leaf range holds a difference, so most
//! ids travel once in an id list: the cost grows with the difference, about 440 bytes per
//! difference here, and with a sparser difference the fingerprints settle most of the history.
//!
//! # Bounds
//!
//! A peer cannot make us hold or fetch unbounded data: the item set holds at most
//! [`Limits::max_items`] items (the newest), every frame we send is at most [`Limits::frame_size`]
//! and every frame we accept at most [`MAX_FRAME_LEN`], a session lasts at most
//! [`Limits::max_rounds`] replies, reports at most [`Limits::max_have`] and [`Limits::max_need`] ids
//! (the per-peer budget of one reconciliation), and [`Peers`] keeps one session per peer and
//! direction, [`Limits::max_sessions`] in all. A frame an honest node never sends is an
//! [`Error`] for which [`Error::is_strike`] is true; no input panics.

use std::sync::Arc;

use negentropy::{Id, Item};

use crate::envelope::MessageId;

mod offers;
mod peers;
pub mod schedule;
mod session;
pub mod wire;

pub use offers::{Offers, BUSY_BACKOFF, OFFER_GAP, OFFER_RATE};
pub use peers::Peers;
pub use schedule::Scheduler;
pub use session::{Initiator, Next, Responder, Step, Stop};

/// Largest frame we accept, in bytes (the protocol's bound; we send at most [`Limits::frame_size`]).
pub const MAX_FRAME_LEN: usize = 60 * 1024;
/// Longest header before a negentropy message (tag and `since_ms`).
pub const HEADER_LEN: usize = 1 + 8;
/// Smallest [`Limits::frame_size`]: negentropy needs room for 4096-byte messages.
pub const MIN_FRAME_LEN: usize = 4096 + HEADER_LEN;

/// The bounds of reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame we send, in bytes, between [`MIN_FRAME_LEN`] and [`MAX_FRAME_LEN`]. Smaller
    /// frames mean more round trips for a large difference.
    pub frame_size: usize,
    /// Most items an [`ItemSet`] keeps (the newest; the node passes it to [`ItemSet::new`]): 40
    /// bytes each.
    pub max_items: usize,
    /// Most replies in one session; an initiator stops after this many, a responder refuses more.
    pub max_rounds: u32,
    /// Most ids one session reports in `have` (envelopes we will send the peer).
    pub max_have: usize,
    /// Most ids one session reports in `need` (envelopes we will request from the peer).
    pub max_need: usize,
    /// Most sessions [`Peers`] keeps in each direction.
    pub max_sessions: usize,
    /// A session with no frame for this long is dropped by [`Peers::expire`].
    pub session_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            frame_size: MAX_FRAME_LEN,
            // 8 MB of snapshot, shared by every session.
            max_items: 200_000,
            // 10 000 differences out of 100 000 items take 70 round trips at 60 KiB, 94 when all
            // are on one side (measured in the tests): a budget's worth fits one session.
            max_rounds: 128,
            max_have: 10_000,
            max_need: 10_000,
            max_sessions: 64,
            session_timeout: std::time::Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// # Panics
    /// If `frame_size` is outside `MIN_FRAME_LEN..=MAX_FRAME_LEN` or `max_rounds` or
    /// `max_sessions` is zero: a configuration mistake, not an input.
    fn check(&self) {
        assert!(
            (MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&self.frame_size),
            "sync frame size {} outside {MIN_FRAME_LEN}..={MAX_FRAME_LEN}",
            self.frame_size
        );
        assert!(self.max_rounds > 0, "a session needs at least one round");
        assert!(self.max_sessions > 0, "sync needs room for one session");
    }

    /// The limit handed to negentropy for the message inside a frame.
    fn message_limit(&self) -> u64 {
        (self.frame_size - HEADER_LEN) as u64
    }
}

/// Why a frame was refused or a session could not go on.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // Frames no honest node sends: strikes.
    #[error("sync frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge(usize),
    #[error("empty sync frame")]
    Empty,
    #[error("unknown sync frame tag {0}")]
    UnknownTag(u8),
    #[error("sync frame header truncated")]
    Truncated,
    #[error("sync frame of the wrong kind for this side of the session")]
    Unexpected,
    #[error("reply window bound {got} below the {asked} asked for, or changed within the session")]
    BadSince { asked: u64, got: u64 },
    #[error("malformed reconciliation message")]
    Malformed(#[source] negentropy::Error),

    // Refusals an honest peer can cause: no strike.
    #[error("peer speaks another reconciliation protocol version")]
    Version,
    #[error("session exceeded {0} rounds")]
    TooManyRounds(u32),
    #[error("no session with this peer (it ended or expired)")]
    NoSession,
    #[error("a session with this peer is already in flight")]
    InFlight,
    #[error("too many sync sessions")]
    Busy,
    #[error("the session has ended")]
    Finished,
    /// A negentropy error no input should cause (a bug here or there); no strike.
    #[error("reconciliation failed")]
    Internal(#[source] negentropy::Error),
}

impl Error {
    /// True for frames an honest meshchat node never sends: the node counts a strike against the
    /// peer (see [`crate::guard`]). The session has ended either way.
    pub fn is_strike(&self) -> bool {
        matches!(
            self,
            Error::TooLarge(_)
                | Error::Empty
                | Error::UnknownTag(_)
                | Error::Truncated
                | Error::Unexpected
                | Error::BadSince { .. }
                | Error::Malformed(_)
        )
    }

    /// Sorts an error negentropy returned while reading a peer's message.
    fn from_negentropy(e: negentropy::Error) -> Self {
        use negentropy::Error as N;
        match e {
            N::UnsupportedProtocolVersion => Error::Version,
            N::ParseEndsPrematurely
            | N::UnexpectedMode(_)
            | N::IdTooBig
            | N::InvalidIdSize
            | N::ProtocolVersionNotFound
            | N::InvalidProtocolVersion
            | N::TryFromSlice => Error::Malformed(e),
            other => Error::Internal(other),
        }
    }
}

/// A decoded frame, borrowing the negentropy message from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame<'a> {
    Open { since_ms: u64, message: &'a [u8] },
    Query { message: &'a [u8] },
    Reply { since_ms: u64, message: &'a [u8] },
}

/// The first byte of an `Open` frame (lets a node rate-limit new rounds before decoding).
pub const TAG_OPEN: u8 = 1;
const TAG_QUERY: u8 = 2;
const TAG_REPLY: u8 = 3;

impl<'a> Frame<'a> {
    fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_FRAME_LEN {
            return Err(Error::TooLarge(bytes.len()));
        }
        let (&tag, rest) = bytes.split_first().ok_or(Error::Empty)?;
        let since = |rest: &'a [u8]| -> Result<(u64, &'a [u8]), Error> {
            let (head, message) = rest.split_first_chunk::<8>().ok_or(Error::Truncated)?;
            Ok((u64::from_be_bytes(*head), message))
        };
        match tag {
            TAG_OPEN => {
                let (since_ms, message) = since(rest)?;
                Ok(Frame::Open { since_ms, message })
            }
            TAG_QUERY => Ok(Frame::Query { message: rest }),
            TAG_REPLY => {
                let (since_ms, message) = since(rest)?;
                Ok(Frame::Reply { since_ms, message })
            }
            other => Err(Error::UnknownTag(other)),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let (tag, since_ms, message) = match *self {
            Frame::Open { since_ms, message } => (TAG_OPEN, Some(since_ms), message),
            Frame::Query { message } => (TAG_QUERY, None, message),
            Frame::Reply { since_ms, message } => (TAG_REPLY, Some(since_ms), message),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + message.len());
        out.push(tag);
        if let Some(s) = since_ms {
            out.extend_from_slice(&s.to_be_bytes());
        }
        out.extend_from_slice(message);
        out
    }
}

/// The items (envelopes) a node holds in its sync window: `(timestamp_ms, id)`, sorted and
/// deduplicated, at most `max_items` of them (the newest).
///
/// Memory: 40 bytes per item, shared: cloning the set or opening a session over it copies nothing.
/// Building from 100 000 items is one sort, a few milliseconds in a release build; the node
/// rebuilds it from its store when the store changes or before a periodic round, not per frame.
#[derive(Debug, Clone, Default)]
pub struct ItemSet {
    /// Sorted by `(timestamp, id)`, no duplicates, no `u64::MAX` timestamps (the wire format's
    /// infinity).
    items: Arc<[Item]>,
}

impl ItemSet {
    /// Collects, sorts and deduplicates `items`, keeping the newest `max_items`. Items stamped
    /// `u64::MAX` are left out (no honest envelope carries that time; the wire format uses it as
    /// infinity). While building, at most `2 * max_items` items are held.
    pub fn new(items: impl IntoIterator<Item = (u64, MessageId)>, max_items: usize) -> Self {
        let compact_at = max_items.saturating_mul(2).max(1);
        let mut v: Vec<Item> = Vec::new();
        for (ts, id) in items {
            if ts == u64::MAX {
                continue;
            }
            v.push(Item::with_timestamp_and_id(ts, Id::from_byte_array(id.0)));
            if v.len() >= compact_at {
                compact(&mut v, max_items);
            }
        }
        compact(&mut v, max_items);
        Self { items: v.into() }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, MessageId)> + '_ {
        self.items
            .iter()
            .map(|it| (it.timestamp, MessageId(it.id.to_bytes())))
    }

    /// The items with `timestamp >= since_ms`, without copying.
    fn since(&self, since_ms: u64) -> session::View {
        let start = self.items.partition_point(|it| it.timestamp < since_ms);
        session::View::new(Arc::clone(&self.items), start)
    }
}

/// Sorts, deduplicates and keeps the newest `max` items.
fn compact(v: &mut Vec<Item>, max: usize) {
    v.sort_unstable();
    v.dedup();
    if v.len() > max {
        v.drain(..v.len() - max);
    }
}

#[cfg(test)]
mod tests;
