//! The data the events carry. Ids, fingerprints and addresses are strings: a peer id as
//! libp2p prints it (`12D3KooW…`), a message id as 64 hex characters, a fingerprint as 8
//! groups of 4 hex characters, an address as a multiaddr.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who this node is and where it listens ([`crate::Event::Ready`], [`crate::Event::Info`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub peer_id: String,
    pub fingerprint: String,
    pub nick: String,
    /// The bound listen addresses; append `/p2p/<peer_id>` to dial.
    pub listen: Vec<String>,
    /// The joined rooms.
    pub rooms: Vec<String>,
    /// How others can reach this node.
    #[serde(default)]
    pub reach: Reachability,
    /// The web UI's URL, with its access token, when the node serves one (`--web`; only in
    /// JSON mode's `ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<String>,
}

/// How others can reach this node ([`NodeInfo::reach`], [`crate::Event::Reachability`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reachability {
    /// `public` (peers dialed us back), `mapped` (a port mapping on the home router, UPnP),
    /// `relayed` (behind a NAT, reachable through relays; hole punching makes direct
    /// connections from there), `private` (behind a NAT, not reachable yet) or `unknown`.
    pub status: String,
    /// The addresses the node advertises (tracker roster): those that work from outside, as
    /// far as it knows; relayed ones end in `/p2p-circuit`.
    #[serde(default)]
    pub addrs: Vec<String>,
    /// Peer ids of the relays it holds (or asked for) reservations at.
    #[serde(default)]
    pub relays: Vec<String>,
}

impl Default for Reachability {
    fn default() -> Self {
        Self {
            status: "unknown".into(),
            addrs: Vec::new(),
            relays: Vec::new(),
        }
    }
}

/// NAT traversal counters ([`Stats::nat`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatStats {
    /// Relayed connections made direct by hole punching, and attempts that failed.
    pub hole_punches: u64,
    pub hole_punch_failures: u64,
    /// The relay service: reservations and circuits given to others, and refused (over a
    /// bound).
    pub reservations_served: u64,
    pub reservations_refused: u64,
    pub circuits_served: u64,
    pub circuits_refused: u64,
    /// Relayed connections closed because a direct one to the same peer stood.
    pub relayed_closed: u64,
}

/// A room message ([`crate::Event::Message`], and each entry of [`crate::Event::History`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub room: String,
    /// 64 hex characters.
    pub id: String,
    /// The author's peer id.
    pub from: String,
    /// The author's key fingerprint.
    pub fingerprint: String,
    /// The author's nick.
    pub nick: String,
    /// The author's clock, in milliseconds since the Unix epoch.
    pub ts: u64,
    pub text: String,
    /// Written by this node.
    pub own: bool,
    /// It arrived by history sync (written while this node was away or cut off), not live.
    pub synced: bool,
    /// `"passphrase"` or `"invite"` in a private room; absent in a public one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<String>,
    /// Its arrival number on this node: higher for later arrivals (whatever its `ts`). A
    /// reader that keeps the highest it has seen can ask for what came after it (the web UI's
    /// `/ws?after=`). 0 from a node that does not say.
    #[serde(default)]
    pub seq: u64,
}

/// A place in a conversation's history (`before` of `history` and `dm_history`): the
/// messages before it, in display order (author timestamp, then id), are the older ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The author timestamp of the message it is at.
    pub ts: u64,
    /// Its id, 64 hex characters.
    pub id: String,
}

/// Someone this node exchanged DMs with ([`crate::Event::Conversations`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub peer_id: String,
    /// Their nick, from their profile or their last DM.
    pub nick: String,
    pub fingerprint: String,
    /// The author timestamp of the newest DM.
    pub last_ts: u64,
    /// DMs stored, both ways.
    pub count: u64,
}

/// The delivery state of one of our DMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DmState {
    /// Created, with no route yet, or handed to a neighbour that holds it for the recipient.
    Queued,
    /// It left on a route.
    Sent,
    /// The recipient's signed receipt came back (final).
    Delivered,
    /// It expired (7 days) without a receipt (final).
    Failed,
}

impl DmState {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DmState::Queued => "queued",
            DmState::Sent => "sent",
            DmState::Delivered => "delivered",
            DmState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for DmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A direct message ([`crate::Event::Dm`], and each entry of [`crate::Event::DmHistory`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectMessage {
    /// The sender's signed envelope id, the same on both ends (64 hex characters).
    pub id: String,
    /// The author's peer id.
    pub from: String,
    /// The recipient's peer id.
    pub to: String,
    /// The author's key fingerprint.
    pub fingerprint: String,
    /// The author's nick.
    pub nick: String,
    /// The author's clock, in milliseconds since the Unix epoch.
    pub ts: u64,
    pub text: String,
    /// Written by this node.
    pub own: bool,
    /// The delivery state of an own DM; absent on received ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DmState>,
}

/// The answer to `dm` ([`crate::Event::DmSent`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmSent {
    /// The new DM's id.
    pub id: String,
    /// The recipient's peer id (whom the command's `to` named).
    pub to: String,
    /// `queued` or `sent`.
    pub state: DmState,
}

/// A connected peer ([`crate::Event::Peers`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub peer_id: String,
    pub addrs: Vec<String>,
    /// Its room-broadcast stream is open (false for a libp2p peer that is not, or not yet, a
    /// meshchat neighbour).
    pub chat: bool,
    /// From its profile; `None` until one has arrived.
    pub nick: Option<String>,
}

/// One selected route of the routing table ([`crate::Event::Routes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The destination's peer id.
    pub dest: String,
    /// The neighbour the route goes through.
    pub next_hop: String,
    pub hops: u32,
    /// Since the route was last advertised.
    pub age_ms: u64,
    /// The destination's nick, from its profile if known.
    pub nick: Option<String>,
}

/// A profile ([`crate::Event::Whois`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub peer_id: String,
    pub fingerprint: String,
    pub nick: String,
    /// The profile's version (each change publishes a higher one).
    pub version: u64,
    /// Hops on the route to it; `None` with no route now.
    pub hops: Option<u32>,
    /// Directly connected now.
    pub connected: bool,
}

/// Someone online, from the tracker's roster ([`crate::Event::Who`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlinePeer {
    pub peer_id: String,
    pub nick: String,
    pub fingerprint: String,
    /// Where it says it can be dialed.
    pub addrs: Vec<String>,
    /// Its rank in tracker elections; `None`: it never becomes the tracker.
    pub priority: Option<u32>,
    /// This node.
    #[serde(rename = "self")]
    pub is_self: bool,
    /// Directly connected now.
    pub connected: bool,
    /// Hops on the route to it (0 for this node); `None` with no route now.
    pub hops: Option<u32>,
}

/// The tracker this node follows ([`crate::Event::Tracker`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracker {
    /// Its peer id; `None` while an election runs.
    pub tracker: Option<String>,
    /// Its nick; `None` while an election runs or while unknown.
    pub nick: Option<String>,
    /// The tracker's election epoch, or the highest seen while there is none.
    pub epoch: u64,
    /// This node is the tracker.
    #[serde(rename = "self")]
    pub is_self: bool,
    /// The tracker's rank (ties go to the higher peer id).
    pub priority: Option<u32>,
    /// The tracker answered this node's registration at this epoch (always true of the
    /// tracker itself).
    pub registered: bool,
    /// This node's rank; `None` with `--no-tracker`.
    pub own_priority: Option<u32>,
    /// The entries of the last roster.
    pub online: u64,
    /// The last roster was cut to fit one message (more are online than `who` lists).
    pub truncated: bool,
}

/// A warning ([`crate::Event::Warning`]): `message` is for people; `kind`, when present, says
/// what it is about in fields a program can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub message: String,
    /// `None` for a plain warning (and for a kind this version does not know).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WarningKind>,
}

/// What a [`Warning`] is about, tagged by `"kind"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WarningKind {
    /// This computer's clock against its peers' (PROTOCOL §1): said once when it passes a
    /// minute off, and with `off: false` when it agrees again.
    Clock {
        /// Off the median of the peers' clocks, positive when ours is ahead.
        offset_ms: i64,
        /// How many authors' clocks the median is of.
        authors: u64,
        off: bool,
    },
}

/// The node's counters ([`crate::Event::Stats`]); `docs/JSON.md` says what each counts. A
/// counter missing from a `stats` line reads as 0: a node of an older version, which lacks the
/// newer counters, can still be read (the lab compares the gossipsub-era node this way).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub accepted: u64,
    pub verified: u64,
    pub duplicates: u64,
    /// Envelopes refused, by reason (`bad_signature`, `over_rate`, …): only the reasons
    /// counted at least once.
    pub rejected: BTreeMap<String, u64>,
    pub stored: u64,
    pub published: u64,
    pub copies_received: u64,
    pub blocked_peers: u64,
    pub relayed_unknown: u64,
    pub broken_links: u64,
    pub silent_links: u64,
    pub evicted_peers: u64,
    pub broadcast_dropped: u64,
    pub store_failures: u64,
    pub synced: u64,
    pub sync_rounds: u64,
    pub sync_envelopes_received: u64,
    pub sync_offers_sent: u64,
    pub sync_bytes_sent: u64,
    pub sync_bytes_received: u64,
    pub sync_strikes: u64,
    pub routes: u64,
    pub route_refused: u64,
    pub profiles_taken: u64,
    pub dm_frames_sent: u64,
    pub dm_flooded_relayed: u64,
    pub dm_delivered: u64,
    pub dm_forwarded: u64,
    pub dm_custody_held: u64,
    pub dm_own_held: u64,
    pub dm_custody_taken: u64,
    pub dm_forged_receipts: u64,
    pub dm_cannot_open: u64,
    pub dm_replays: u64,
    pub dm_refused: u64,
    pub routing_from_strangers: u64,
    /// The election's counters.
    pub tracker: ElectionStats,
    pub tracker_dropped: u64,
    pub tracker_unroutable: u64,
    /// File transfer: piece bytes served, verified piece bytes received, bytes forwarded for
    /// others, frames dropped (over a rate, no route, a full queue, a forged request), pieces
    /// that failed verification.
    #[serde(default)]
    pub file_bytes_sent: u64,
    #[serde(default)]
    pub file_bytes_received: u64,
    #[serde(default)]
    pub file_bytes_relayed: u64,
    #[serde(default)]
    pub file_frames_dropped: u64,
    #[serde(default)]
    pub file_pieces_bad: u64,
    /// Private rooms: messages of rooms this node is in that it opened.
    #[serde(default)]
    pub private_opened: u64,
    /// Envelopes of private rooms this node is in that it refused, by reason (`unreadable`,
    /// `not_member`, `not_admin`, `unknown_parents`, `bad_operation`, `malformed`, `too_many`).
    #[serde(default)]
    pub private_refused: BTreeMap<String, u64>,
    /// Hole punching and the relay service.
    #[serde(default)]
    pub nat: NatStats,
    pub tracker_checked: u64,
    pub tracker_heartbeats: u64,
    pub tracker_election_msgs: u64,
    pub tracker_roster_msgs: u64,
    pub delivered_pushed: u64,
    pub delivered_grafted: u64,
    /// Hops travelled by the first copies of the messages delivered on the trees, summed (mean
    /// path length: this over `delivered_pushed + delivered_grafted`). Absent from older nodes.
    #[serde(default)]
    pub delivered_hops: u64,
    pub graft_over_budget: u64,
    pub graft_repeats: u64,
    pub ihave_over_rate: u64,
    pub missing_peer_full: u64,
    pub handshakes_evicted: u64,
    pub handshakes_refused: u64,
}

/// The tracker election's counters (the `tracker` object of [`Stats`]); each field's meaning
/// is on `meshchat_core::election::Stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionStats {
    pub elections: u64,
    pub won: u64,
    pub stepped_down: u64,
    pub sent: u64,
    pub flooded: u64,
    pub stale: u64,
    pub outranked: u64,
    pub forged: u64,
    pub suspected: u64,
    pub registrations: u64,
    pub registrations_refused: u64,
    pub roster_queries: u64,
    pub roster_resent: u64,
    pub roster_full: u64,
    pub roster_cut: u64,
    pub known_full: u64,
    pub reachable_full: u64,
    pub unexpected: u64,
}

/// A file offer and what became of it ([`crate::Event::FileOffer`], [`crate::Event::Files`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// The offer's message id (64 hex characters): what `accept_file` and `cancel_file` take.
    pub id: String,
    /// The offer's author: its peer id, key fingerprint and nick.
    pub from: String,
    pub fingerprint: String,
    pub nick: String,
    /// The file name, made safe (no directories, no control characters).
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// The file's BLAKE3 root (64 hex characters): the hash of its chunk hashes, see
    /// `docs/PROTOCOL.md`.
    pub hash: String,
    /// The room it was offered in, or the peer id it was offered to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The offer's author timestamp (Unix ms).
    pub ts: u64,
    /// Offered by this node.
    pub own: bool,
    pub state: FileState,
    /// Bytes verified here (the whole size for our own offers).
    pub bytes: u64,
    /// Where the file is: the source of our offers, the finished download's place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where a [`File`] stands on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// Offered to us; not accepted yet.
    Offered,
    /// Being fetched (or waiting for a holder to come back).
    Downloading,
    /// Fetched and verified.
    Done,
    /// Given up; see `reason`.
    Failed,
    /// Cancelled here.
    Cancelled,
    /// Our own offer, served to whoever asks.
    Serving,
}

/// A joined room ([`crate::Event::Rooms`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    pub name: String,
    /// `"passphrase"` or `"invite"` for a private room; absent for a public one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<String>,
    /// An invite room's member count; for a passphrase room, the people heard in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<u64>,
}

/// A member of a private room ([`crate::Event::Members`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub peer_id: String,
    pub fingerprint: String,
    pub nick: String,
    /// May invite and remove (invite rooms).
    pub admin: bool,
}

/// A private room's passphrase in a command (`join`'s `key`): written and read as a plain JSON
/// string, but never shown by `Debug`, so a command logged or printed does not give it away.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Passphrase(String);

impl Passphrase {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for Passphrase {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Passphrase {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}
