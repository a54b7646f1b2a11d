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
//!   frames, budgets and per-peer sessions, offers, and [`sync::Scheduler`] (when rounds run and
//!   what is fetched from whom) with its simulator.
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
//! - [`authors`]: per-author rates and per-neighbour introductions of new authors.
//! - [`clock`]: our clock's offset from the network's, from the timestamps of what arrives.
//! - [`rate`]: token buckets, alone and in a bounded table per peer.
//! - [`transfer`]: files: manifests and roots, offers, the file frames, and the downloader's machine.
//! - [`reach`]: reachability: what AutoNAT, UPnP and relay reservations say of us, and when to ask
//!   relays for reservations or give them back.
//!
//! ## One contract for the state machines
//!
//! Every protocol machine has the same shape, so a node handler drives each the same way:
//!
//! - `handle(input, now) -> outputs`: an `Input` enum in, the `Output`s in order out; the caller
//!   carries them out (send, store, show) and feeds back what came of them as further inputs.
//! - The timer is the machine's: an `Output::WakeAt(t)` whenever it changes, and
//!   `next_deadline()` to read it at any time; the node calls `handle(Input::Tick, now)` once it
//!   passes (early or extra ticks are harmless). A handler keeps no copy of the deadline and
//!   never guesses one: the loop asks `next_deadline()` before each wait.
//!
//! | machine | input, output | outputs as | clock |
//! |---|---|---|---|
//! | [`broadcast::Broadcast`] | [`broadcast::Input`], [`broadcast::Output`] | a drain of its queue | `Instant` |
//! | [`sync::Scheduler`] | [`sync::schedule::Input`], [`sync::schedule::Output`] | `Vec` | `Instant` |
//! | [`routing::Table`] | [`routing::Input`], [`routing::Output`] | `Vec` | `Instant` |
//! | [`election::Election`] | [`election::Input`], [`election::Output`] | `Vec` | `Instant` |
//! | [`dm::Outbox`] | [`dm::Input`], [`dm::Output`] | `Vec` | Unix ms |
//!
//! Where they differ, and why: the trees' `handle` runs for every copy of every room message,
//! so it drains a queue it keeps rather than allocating a `Vec` per call; the outbox runs on Unix
//! milliseconds because its deadlines (a DM's expiry, custody) travel in frames and are stored,
//! and it takes the routing table as a third argument (`&impl Routes`) because where a DM goes
//! next is the table's state, read at that moment, not an input. The pieces that are not
//! machines with timers are plain functions or values: the envelope check
//! ([`inbound::check`]), the route-frame step ([`routed::Routed::step`]), the reconciliation
//! sessions ([`sync::Peers`]) the scheduler drives, and the bounded tables ([`dedup`], [`guard`],
//! [`authors`], [`rate`], [`clock`]).

pub mod authors;
pub mod backoff;
pub mod broadcast;
pub mod clock;
pub mod dedup;
pub mod dm;
pub mod election;
pub mod envelope;
pub mod guard;
pub mod identity;
pub mod inbound;
pub mod private;
pub mod rate;
pub mod reach;
pub mod room;
pub mod routed;
pub mod routing;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod sync;
pub mod transfer;

pub use envelope::{Envelope, MessageId};
pub use identity::{Fingerprint, KeyCache, Keypair, PublicKey};
