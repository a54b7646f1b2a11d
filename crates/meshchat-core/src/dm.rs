//! Direct messages: routed hop by hop, sealed end to end, kept for offline recipients,
//! acknowledged by signed receipts.
//!
//! # Overview
//!
//! - [`Profile`]: each node publishes a signed profile envelope ([`Kind::Profile`]) with its nick
//!   and the X25519 key ([`SealKey`]) DMs to it are sealed to; nodes keep the newest `version`
//!   per author ([`Directory`]). The secret half is an [`EncryptionKey`], derived from the
//!   identity or stored.
//! - [`wire`]: the sender signs an ordinary envelope ([`Kind::Direct`], target = recipient key)
//!   and seals it with HPKE (RFC 9180) to the recipient's profile key ([`seal`]); the [`Dm`]
//!   frame carries the sealed bytes behind a small routing header: recipient, hop limit (outside
//!   every signature, decremented by relays), expiry. Its [`DmId`] is a hash of the sealed
//!   bytes. The recipient answers with a [`Receipt`] it signs over the DM id and the sender,
//!   routed back like a DM ([`RoutedReceipt`]).
//! - [`Outbox`]: the state machine, pure like the others (`handle(input, routes, now_ms) ->
//!   outputs`): the sender keeps each DM until its receipt comes and retries with bounded
//!   exponential backoff when routes appear; a relay with no route takes *custody* of a DM
//!   (bounded per recipient, per neighbour, in count and bytes, expiring) and hands it on when a
//!   route to the recipient appears; the recipient delivers each DM at most once and signs a
//!   receipt, which is itself held until a route to the sender appears.
//!
//! Why one `dm` module rather than `outbox.rs` alone (as DESIGN §1 sketched): the profile, the
//! seal, the frames and the outbox are one protocol with one threat model, and the outbox needs
//! the other three's types; the state machine is `dm/outbox.rs` all the same.
//!
//! # Time
//!
//! The outbox runs on wall-clock Unix milliseconds passed in (`now_ms`), not on `Instant`: a DM's
//! expiry crosses nodes and restarts (it is in the frame and in the node's database), so it must
//! be a date. The node converts its [`Output::WakeAt`] to a timer.
//!
//! # What the node does
//!
//! It feeds [`Input`]s: its own sealed DMs, every DM-layer [`Frame`] from a neighbour on
//! `/meshchat/route/1` (frames with tags 3 and 4; tags 1 and 2 go to the routing table), DMs
//! that came over the flooded path, the routing table's [`crate::routing::Output::Changed`],
//! failed sends, and wake-ups; it passes its [`crate::routing::Table`] as the [`Routes`]. It acts
//! on the [`Output`]s: send a frame to a neighbour, flood a DM, persist or remove a stored item
//! (SQLite; [`Outbox::restore`] at start), show a delivered DM, show a status, set a timer. See
//! `docs/PROTOCOL.md` for the bytes and the threat model.

use std::fmt::Debug;

mod keys;
mod outbox;
pub mod wire;

pub use keys::{
    Directory, EncryptionKey, Profile, ProfileVerdict, SealKey, PROFILE_FORMAT, PROFILE_TARGET,
};
pub use outbox::{Input, Limits, Outbox, Output, Refusal, Role, Slot, Stats, Status, Stored};
pub use wire::{
    flood_payload, open, parse_flooded, seal, sign_dm, sign_invite, sign_offer, Dm, DmId, Frame,
    Opened, Receipt, RoutedReceipt, FLOODED_DM,
};

use crate::envelope::Kind;
use crate::routing::wire::PeerBytes;

/// The HPKE KEM: DHKEM(X25519, HKDF-SHA256).
type Kem = hpke::kem::X25519HkdfSha256;

/// Why a DM, a receipt or a profile was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("DM frame or sealed envelope of {0} bytes is over its limit")]
    TooLarge(usize),
    #[error("malformed: {0}")]
    Malformed(&'static str),
    #[error("unknown DM frame tag {0}")]
    UnknownTag(u8),
    #[error("not a valid X25519 key")]
    BadSealKey,
    /// The seal does not open with our key: sealed to someone else, or damaged.
    #[error("the DM does not open with our key")]
    CannotOpen,
    /// It opened, but the envelope inside names someone else as recipient.
    #[error("the sealed envelope is addressed to someone else")]
    NotForUs,
    #[error("receipt signature does not verify")]
    BadReceipt,
    #[error("sealed envelope: {0}")]
    Envelope(#[source] crate::envelope::Error),
}

/// A routing id that can name the node of an identity key: how the recipient finds where to
/// send a receipt (the DM's signer) and how a receipt's signer is matched to a DM's recipient.
/// The node's ids are the 32-byte keys themselves.
pub trait Address: Copy + Ord + Debug + PeerBytes {
    fn of_key(key: &[u8; 32]) -> Option<Self>;
}

impl Address for [u8; 32] {
    fn of_key(key: &[u8; 32]) -> Option<Self> {
        Some(*key)
    }
}

/// Where the outbox asks for next hops: the routing table.
pub trait Routes<P> {
    fn next_hop(&self, dest: &P) -> Option<P>;
    /// A neighbour to hand our own DM to when there is no route to its recipient (it takes
    /// custody), if any.
    fn custodian(&self, dest: &P) -> Option<P>;
}

impl<P: Copy + Ord + Debug> Routes<P> for crate::routing::Table<P> {
    fn next_hop(&self, dest: &P) -> Option<P> {
        crate::routing::Table::next_hop(self, dest).map(|(via, _)| via)
    }
    /// The first neighbour (by id): deterministic, and any neighbour will do, since whoever
    /// holds the DM hands it on as soon as it learns a route.
    fn custodian(&self, dest: &P) -> Option<P> {
        self.neighbours().find(|n| n != dest)
    }
}

/// The envelope kind a sealed DM must carry.
pub const DM_KIND: Kind = Kind::Direct;

#[cfg(test)]
mod tests;
