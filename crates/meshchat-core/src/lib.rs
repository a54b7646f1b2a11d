//! # meshchat-core
//!
//! The sans-io heart of meshchat: no sockets, no files, no clock reads. Everything here takes its
//! inputs (bytes, the current time, a random number generator) as arguments, so it can be tested
//! exhaustively and deterministically.
//!
//! - [`identity`]: Ed25519 keys, fingerprints people can compare, a key-file format.
//! - [`envelope`]: the one signed, versioned message format, its [`envelope::MessageId`] and limits.
//! - [`dedup`]: the bounded, time-limited cache of message ids already seen.
//! - [`guard`]: per-peer bounds: a rate for unique messages, and blocks for peers that send what no
//!   honest node forwards.
//! - [`room`]: room names and the text body of a room message.
//! - [`inbound`]: the check of an envelope from a neighbour, and the reasons for refusing one.
//! - [`sync`]: history sync: range-based reconciliation of the envelope ids two peers hold, its
//!   frames, budgets and per-peer sessions.
//! - [`broadcast`]: rooms on an epidemic broadcast tree (Plumtree over the node's connections):
//!   the state machine and its wire format.
//! - `sim` (tests and the `sim` feature): a discrete-event network simulator for these state
//!   machines: latency, loss, cut links, crashed nodes, seeded randomness, virtual time.
//! - [`routing`]: the direct-message routing table: a distance vector with per-destination
//!   sequence numbers (Babel's feasibility condition), its adverts and their wire format.
//! - [`election`]: the tracker's Bully election (ranks, epochs, heartbeats) and its roster.
//! - [`routed`]: a signed envelope routed hop by hop to one node, best effort (tracker messages).
//! - [`dm`]: direct messages: profiles with the encryption key, DMs sealed with HPKE, signed
//!   receipts, and the outbox (retries, custody for offline recipients, delivery at most once).

pub mod authors;
pub mod broadcast;
pub mod clock;
pub mod dedup;
pub mod dm;
pub mod election;
pub mod envelope;
pub mod guard;
pub mod identity;
pub mod inbound;
pub mod rate;
pub mod room;
pub mod routed;
pub mod routing;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod sync;

pub use envelope::{Envelope, MessageId};
pub use identity::{Fingerprint, KeyCache, Keypair, PublicKey};
