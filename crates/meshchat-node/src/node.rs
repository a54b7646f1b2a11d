//! The node: [`spawn`] starts it, [`Handle`] drives it, [`Event`]s report what happens.

mod actor;

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use meshchat_core::{Fingerprint, MessageId};
use tokio::sync::{mpsc, oneshot};

use crate::store::StoredMessage;
use crate::Config;

/// Commands waiting for the actor. Front-ends wait when it is full.
pub const COMMAND_QUEUE: usize = 256;
/// Events waiting for the front-end (the default of `Config::event_queue`). The actor never waits
/// on it: when it is full, events are dropped and counted, and the front-end gets
/// [`Event::Lagged`] once it reads again.
pub const EVENT_QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Key(#[from] crate::keyfile::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("listening did not start within {0:?}")]
    ListenTimeout(Duration),
    #[error("network setup: {0}")]
    Network(String),
    #[error("invalid address {addr:?}: {reason}")]
    BadAddress { addr: String, reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Dial { addr: String, reason: String },
    #[error(transparent)]
    Room(#[from] meshchat_core::room::Error),
    #[error(transparent)]
    Envelope(#[from] meshchat_core::envelope::Error),
    #[error("not in room {0}; join it first")]
    NotInRoom(String),
    #[error("bad history position: {id:?} is not a message id (64 hex digits)")]
    BadPosition { id: String },
    #[error("nobody known as {0:?} (a nick, fingerprint or peer id of someone whose profile reached this node)")]
    UnknownPerson(String),
    #[error("{nick:?} is used by several keys; name one by fingerprint: {}", candidates.join(", "))]
    AmbiguousNick {
        nick: String,
        candidates: Vec<String>,
    },
    #[error("no profile of {0} has reached this node yet, so a DM cannot be sealed to them")]
    NoProfile(PeerId),
    #[error("that is this node's own key")]
    ToSelf,
    #[error("direct message: {0}")]
    Dm(#[from] meshchat_core::dm::Error),
    #[error("no file offer {0:?} is known here (see /files)")]
    UnknownFile(String),
    #[error("{0}")]
    File(String),
    #[error("not enough space for {name}: it needs {needs}, {free} is free and {keep} is kept free (--keep-free)")]
    NoSpace {
        name: String,
        needs: String,
        free: String,
        keep: String,
    },
    #[error("{0}")]
    Private(String),
    #[error(transparent)]
    PrivateRoom(#[from] meshchat_core::private::Error),
    #[error("the node has stopped")]
    Stopped,
}

/// Something the front-end should know about.
#[derive(Debug, Clone)]
pub enum Event {
    /// A room message, shown once: own messages too (with `own`), each id at most once ever.
    Message(MessageView),
    /// A meshchat peer is connected and subscribed: messages now flow to and from it.
    PeerConnected { peer_id: PeerId },
    /// The last connection to a peer announced by `PeerConnected` closed.
    PeerDisconnected { peer_id: PeerId },
    /// A new address the node listens on.
    ListenAddr(Multiaddr),
    /// How others can reach this node changed (public, mapped, relayed, private).
    Reachability(ReachView),
    /// Something went wrong that the user should see; the node keeps running.
    Warning(String),
    /// This node's clock against its peers' (the median of the authors heard lately): off by
    /// `offset_ms` (positive: ours is ahead) when `off`, or agreeing again. Said once when it
    /// passes a minute, and when it is fixed ([`meshchat_core::clock`]).
    Clock {
        offset_ms: i64,
        authors: usize,
        off: bool,
    },
    /// The front-end fell behind: `missed` events were dropped while its queue was full. The node
    /// kept relaying and storing meanwhile; messages are in the history, peers in `peers`.
    Lagged { missed: u64 },
    /// A direct message, shown once: received ones and our own (with `own`), each id at most
    /// once ever.
    Dm(DmView),
    /// The delivery state of one of our DMs changed.
    DmStatus {
        id: MessageId,
        to: PeerId,
        state: DmState,
    },
    /// A file offer or transfer event: one of `meshchat_api::Event`'s `file_*` variants,
    /// which the files handler writes in the API's own terms (ids and hashes as hex).
    File(meshchat_api::Event),
    /// A private room event in the API's terms: `joined` (an invite made this node join) or
    /// `members` (an invite room's membership changed).
    Room(meshchat_api::Event),
    /// The tracker this node follows changed, or its epoch did. `None`: it is gone and an
    /// election is running. `is_self`: this node is the tracker now.
    TrackerChanged {
        tracker: Option<PeerId>,
        epoch: u64,
        is_self: bool,
    },
}

/// The network's tracker as this node sees it, for `/tracker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerView {
    /// The tracker followed (this node, when serving); `None` while an election runs.
    pub tracker: Option<PeerId>,
    /// Its nick, from its roster entry or its profile.
    pub nick: Option<String>,
    /// The election epoch: the tracker's, or the highest seen while there is none.
    pub epoch: u64,
    /// The tracker's rank: its priority (ties go to the higher peer id).
    pub priority: Option<u32>,
    /// This node is the tracker.
    pub is_self: bool,
    /// The tracker answered this node's registration at this epoch.
    pub registered: bool,
    /// This node's own priority (`None`: `--no-tracker`).
    pub own_priority: Option<u32>,
    /// Entries in the last roster, and whether it was cut to fit one message.
    pub online: usize,
    pub truncated: bool,
}

/// Someone online in the network, from the tracker's roster, for `/who`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlinePeer {
    pub peer_id: PeerId,
    pub nick: String,
    pub fingerprint: Fingerprint,
    /// Where it says it can be dialed (multiaddrs as text).
    pub addrs: Vec<String>,
    /// Its tracker priority (`None`: not eligible).
    pub priority: Option<u32>,
    /// This node itself.
    pub is_self: bool,
    /// Directly connected now.
    pub connected: bool,
    /// Hops on the route to it, if there is one (0: this node).
    pub hops: Option<u16>,
}

/// Where one of our DMs is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DmState {
    /// Waiting here: no route to the recipient yet (offline or unknown). Also handed to a
    /// neighbour that keeps it for them.
    Queued,
    /// Left this node on a route; no receipt yet.
    Sent,
    /// The recipient's signed receipt came back.
    Delivered,
    /// Expired without a receipt.
    Failed,
}

impl DmState {
    pub fn as_str(self) -> &'static str {
        match self {
            DmState::Queued => "queued",
            DmState::Sent => "sent",
            DmState::Delivered => "delivered",
            DmState::Failed => "failed",
        }
    }

    pub(crate) fn to_code(self) -> i64 {
        match self {
            DmState::Queued => 0,
            DmState::Sent => 1,
            DmState::Delivered => 2,
            DmState::Failed => 3,
        }
    }

    pub(crate) fn from_code(c: i64) -> Self {
        match c {
            1 => DmState::Sent,
            2 => DmState::Delivered,
            3 => DmState::Failed,
            _ => DmState::Queued,
        }
    }
}

impl From<meshchat_core::dm::Status> for DmState {
    fn from(s: meshchat_core::dm::Status) -> Self {
        use meshchat_core::dm::Status;
        match s {
            Status::Queued => DmState::Queued,
            Status::Sent => DmState::Sent,
            Status::Delivered => DmState::Delivered,
            Status::Failed => DmState::Failed,
        }
    }
}

/// A direct message ready to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmView {
    /// The id of the sender's signed envelope: the same on both ends.
    pub id: MessageId,
    /// The other person of the conversation (the recipient of our own DMs, else the author).
    pub peer: PeerId,
    pub from: PeerId,
    pub to: PeerId,
    /// The author's fingerprint and nick.
    pub fingerprint: Fingerprint,
    pub nick: String,
    /// Author's clock, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub text: String,
    pub own: bool,
    /// Our own DMs: where it is. Received ones: `None`.
    pub state: Option<DmState>,
    /// Arrival order among DMs on this node.
    pub seq: u64,
}

/// What [`Handle::dm`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmSent {
    pub id: MessageId,
    pub to: PeerId,
    pub state: DmState,
}

/// One conversation, for the list beside the rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub peer: PeerId,
    /// Their nick from their profile (or their last DM).
    pub nick: String,
    pub fingerprint: Fingerprint,
    /// Timestamp of the newest DM.
    pub last_ms: u64,
    pub count: u64,
}

/// One selected route, for `/routes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    pub dest: PeerId,
    pub next_hop: PeerId,
    pub hops: u16,
    /// Since the route was last advertised to us.
    pub age_ms: u64,
    /// The destination's nick, if its profile is known.
    pub nick: Option<String>,
}

/// Someone's profile, for `/whois`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileView {
    pub peer_id: PeerId,
    pub fingerprint: Fingerprint,
    pub nick: String,
    pub version: u64,
    /// Hops on the route to them, if there is one (0: this node).
    pub hops: Option<u16>,
    /// Directly connected now.
    pub connected: bool,
}

/// A room message ready to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView {
    pub id: MessageId,
    pub room: String,
    pub author: PeerId,
    pub fingerprint: Fingerprint,
    pub nick: String,
    /// Author's clock, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub text: String,
    /// Written by this node's key.
    pub own: bool,
    /// Arrived by history sync (it was sent while this node was away or cut off), not live.
    pub synced: bool,
    /// Arrival order on this node: increases with every message stored. Front-ends that fell
    /// behind catch up with [`Handle::arrived_after`].
    pub seq: u64,
    /// The kind of private room it is in (`None`: a public room).
    pub private: Option<PrivateKind>,
}

/// The two kinds of private room (PROTOCOL §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateKind {
    Passphrase,
    Invite,
}

impl PrivateKind {
    /// The name in the JSON interface.
    pub fn as_str(self) -> &'static str {
        match self {
            PrivateKind::Passphrase => "passphrase",
            PrivateKind::Invite => "invite",
        }
    }
}

/// A joined room, public or private.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomView {
    pub name: String,
    pub private: Option<PrivateKind>,
    /// An invite room's members; the people heard in a passphrase room.
    pub members: Option<u64>,
}

/// A member of a private room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub peer_id: PeerId,
    pub fingerprint: Fingerprint,
    pub nick: String,
    pub admin: bool,
}

impl MessageView {
    /// The view of a stored (so already verified) message. No curve arithmetic: the peer id and
    /// fingerprint are functions of the key's bytes.
    fn from_stored(m: StoredMessage, me: &meshchat_core::PublicKey) -> Self {
        Self {
            private: None,
            id: m.id,
            room: m.room,
            author: peer_id_of_bytes(&m.author),
            fingerprint: Fingerprint::of_key_bytes(&m.author),
            nick: m.nick,
            timestamp_ms: m.timestamp_ms,
            text: m.text,
            own: m.author == *me.as_bytes(),
            synced: m.synced,
            seq: m.seq,
        }
    }
}

/// What the node is.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub peer_id: PeerId,
    pub fingerprint: Fingerprint,
    pub nick: String,
    /// Addresses the node listens on now.
    pub listen: Vec<Multiaddr>,
    /// Joined rooms, in the order joined.
    pub rooms: Vec<String>,
    /// How others can reach this node, and the addresses it tells them.
    pub reach: ReachView,
    /// True when the identity key was created by this start.
    pub new_identity: bool,
    /// The arrival number ([`MessageView::seq`]) of the last message stored before the node
    /// started: the node's events carry every message stored after it, so a front-end that
    /// reads them from the start hands on exactly the messages above it.
    pub seq_at_start: u64,
}

/// How others can reach this node ([`NodeInfo::reach`], [`Event::Reachability`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReachView {
    pub reach: meshchat_core::reach::Reach,
    /// What the node advertises (tracker roster, `info`): the addresses that work from
    /// outside, as far as it knows.
    pub addrs: Vec<Multiaddr>,
    /// The relays it holds (or asked for) reservations at.
    pub relays: Vec<PeerId>,
}

/// NAT traversal counters ([`Stats::nat`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatStats {
    /// Relayed connections turned into direct ones by hole punching (DCUtR), and attempts
    /// that failed.
    pub hole_punches: u64,
    pub hole_punch_failures: u64,
    /// The relay service: reservations and circuits given to others, and refused (over a
    /// bound: per peer, in total, or a rate).
    pub reservations_served: u64,
    pub reservations_refused: u64,
    pub circuits_served: u64,
    pub circuits_refused: u64,
    /// Relayed connections closed because a direct one to the same peer stood.
    pub relayed_closed: u64,
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    /// Remote addresses of the open connections.
    pub addrs: Vec<Multiaddr>,
    /// Our broadcast stream to it is open: a chat peer, not only a libp2p one.
    pub chat: bool,
    /// Its nick, from its profile, if one reached this node.
    pub nick: Option<String>,
}

/// Counters, for status lines, tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Unique messages accepted from the network (valid, first copy).
    pub accepted: u64,
    /// Envelope signature checks done: once per unique message, never per copy.
    pub verified: u64,
    /// First copies that had already arrived another way (history sync): valid, not checked
    /// again. (Repeat copies on the tree are dropped before the check: `copies_received`.)
    pub duplicates: u64,
    /// Refused envelopes by reason (malformed, bad signature, from the future, ...), and those
    /// dropped unchecked (blocked neighbour, over its rate).
    pub rejected: meshchat_core::inbound::Rejected,
    /// Envelopes of a kind this version does not know (a newer node's), checked and relayed but
    /// not stored.
    pub relayed_unknown: u64,
    /// Messages written to the database.
    pub stored: u64,
    /// Own messages published.
    pub published: u64,
    /// Copies of room messages pushed to this node on the broadcast trees, duplicates included.
    pub copies_received: u64,
    /// Peers blocked right now for sending forged or malformed envelopes, or for flooding.
    pub blocked_peers: u64,
    /// Messages stored that arrived by history sync.
    pub synced: u64,
    /// Reconciliation rounds this node started and finished.
    pub sync_rounds: u64,
    /// Bytes of sync requests and responses sent and received (frames and envelopes).
    pub sync_bytes_sent: u64,
    pub sync_bytes_received: u64,
    /// Sync messages no honest node sends (each a strike against its sender).
    pub sync_strikes: u64,
    /// Envelopes received in answer to our fetches, copies of ones already held included (a
    /// heal's copies per message: this over `synced`).
    pub sync_envelopes_received: u64,
    /// Offers sent to neighbours: ids we hold that they may lack, or a request to reconcile
    /// (PROTOCOL.md §6).
    pub sync_offers_sent: u64,
    /// Batches of messages whose database write failed (each reported with a warning).
    pub store_failures: u64,
    /// Links closed (and redialed) because the neighbour stopped taking broadcast frames.
    pub broken_links: u64,
    /// Connections closed because their pings stopped coming back: the link died silently.
    pub silent_links: u64,
    /// Connections closed to make room for a newcomer when every slot was taken.
    pub evicted_peers: u64,
    /// Incoming handshakes aborted to make room, or refused for their source's limit.
    pub handshakes: crate::behaviour::handshakes::Stats,
    /// Broadcast frames dropped because a neighbour's send queue was full (the tree repairs
    /// what they carried).
    pub broadcast_dropped: u64,
    /// The broadcast trees' own counters (pushes, announcements, grafts, prunes, ...).
    pub trees: meshchat_core::broadcast::Stats,
    /// Profile envelopes checked (first copies; not in `verified` or `accepted`, which count
    /// messages), those taken (new or newer), and those refused because the directory was full.
    pub profiles_checked: u64,
    pub profiles_taken: u64,
    pub profiles_refused: u64,
    /// Frames on `/meshchat/route/1` refused: malformed, oversized, over the neighbour's rate,
    /// or from a blocked peer.
    pub route_refused: u64,
    /// Flooded DMs carried on the broadcast trees (checked, relayed, not stored).
    pub dm_flooded_relayed: u64,
    /// DM and receipt frames sent to neighbours on `/meshchat/route/1`.
    pub dm_frames_sent: u64,
    /// Routed envelopes (tracker messages) forwarded for others, dropped (no route, hop limit
    /// spent, queue full), received for us, and refused (not a valid tracker envelope).
    pub routed_forwarded: u64,
    pub routed_dropped: u64,
    pub routed_received: u64,
    pub routed_refused: u64,
    /// The routing table's counters and size.
    pub routing: meshchat_core::routing::Stats,
    pub routes: u64,
    /// The DM state machine's counters.
    pub dm: meshchat_core::dm::Stats,
    /// Hole punches and the relay service.
    pub nat: NatStats,
    /// Items held in the outbox: ours awaiting a receipt, others' in custody, receipts.
    pub dm_own_held: u64,
    pub dm_custody_held: u64,
    /// The election's counters (elections, wins, messages, stale and forged claims,
    /// registrations, ...).
    pub tracker: meshchat_core::election::Stats,
    /// Tracker envelopes checked on the broadcast trees (first copies; not in `verified` or
    /// `accepted`, which count messages).
    pub tracker_checked: u64,
    /// Tracker envelopes dropped before the election: replays, too old, undecodable bodies.
    pub tracker_dropped: u64,
    /// Tracker messages this node sent (routed or flooded): heartbeats; election messages
    /// (ELECTION, ALIVE, COORDINATOR); registrations and roster answers.
    pub tracker_heartbeats: u64,
    pub tracker_election_msgs: u64,
    pub tracker_roster_msgs: u64,
    /// Tracker messages that could not be routed (no route to the node they were for).
    pub tracker_unroutable: u64,
    /// File transfer: piece bytes this node served (its own files and finished downloads),
    /// verified piece bytes it received for its downloads, and bytes it forwarded for others.
    pub file_bytes_sent: u64,
    pub file_bytes_received: u64,
    pub file_bytes_relayed: u64,
    /// File frames dropped: over a neighbour's byte rate, no route, a full queue, a stale or
    /// forged request.
    pub file_frames_dropped: u64,
    /// Pieces that failed verification (their holder is dropped from that download).
    pub file_pieces_bad: u64,
    /// Private rooms: messages of rooms we are in that we opened, and envelopes of those rooms
    /// refused, by [`meshchat_core::private::Refusal`] (never shown).
    pub private_opened: u64,
    pub private_refused: std::collections::BTreeMap<&'static str, u64>,
}

/// What [`Handle::send`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub id: MessageId,
    /// False when no peer was there to take it: it is stored here, and reaches others only by a
    /// later history sync.
    pub relayed: bool,
}

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// Work for the actor: a closure run on it, with every field in reach, between two turns of its
/// loop. Each command is one (see `actor/commands.rs`), so a command is its [`Handle`] method
/// and the handler method it calls: no enum of commands, no second dispatch.
type Job = Box<dyn FnOnce(&mut actor::Actor) + Send>;

enum Command {
    Run(Job),
    Shutdown { reply: oneshot::Sender<()> },
}

/// Drives a node. Cheap to clone; the node stops when told to or when every handle is dropped.
///
/// Its methods are in `node/actor/commands.rs`, beside the handlers they call; [`Handle::call`]
/// carries out a command of the typed API ([`meshchat_api::Command`]).
#[derive(Clone, Debug)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl Handle {
    /// Runs `job` on the actor and waits for what it sends on its reply (now, or later, as a
    /// dial does when it ends).
    async fn ask_with<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut actor::Actor, Reply<T>) + Send + 'static,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let run: Job = Box::new(move |actor| job(actor, tx));
        self.commands
            .send(Command::Run(run))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Runs `job` on the actor and gives its result.
    async fn ask<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut actor::Actor) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.ask_with(move |actor, reply| {
            let _ = reply.send(job(actor));
        })
        .await
    }

    /// Stops the node: pending writes flushed, peers disconnected, database closed. Returns when
    /// done; harmless if the node already stopped.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown { reply: tx })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

/// Starts a node: loads or creates its identity, opens its database, listens, dials the given and
/// known peers, and returns once it is listening.
pub async fn spawn(config: Config) -> Result<(Handle, mpsc::Receiver<Event>), Error> {
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (event_tx, event_rx) = mpsc::channel(config.event_queue.max(1));
    let mut actor = actor::Actor::new(config, event_tx)?;
    actor.start().await?;
    tokio::spawn(actor.run(cmd_rx));
    Ok((Handle { commands: cmd_tx }, event_rx))
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The libp2p peer id of a meshchat key (the same Ed25519 key).
pub fn peer_id_of(key: &meshchat_core::PublicKey) -> PeerId {
    peer_id_of_bytes(key.as_bytes())
}

/// The identity multihash header of an Ed25519 key's peer id (see [`peer_id_of_bytes`]).
const ED25519_PEER_ID_PREFIX: [u8; 6] = [0x00, 36, 0x08, 0x01, 0x12, 32];

/// The peer id of an Ed25519 key given by its 32 bytes, without decoding the point: libp2p's peer
/// id of a key this short is the identity multihash (code 0, length 36) of the key's protobuf
/// encoding (field 1 = type 1 (Ed25519), field 2 = the 32 bytes).
pub(crate) fn peer_id_of_bytes(key: &[u8; 32]) -> PeerId {
    let mut bytes = [0u8; 38];
    bytes[..6].copy_from_slice(&ED25519_PEER_ID_PREFIX);
    bytes[6..].copy_from_slice(key);
    PeerId::from_bytes(&bytes).expect("an identity multihash of 36 bytes is a valid peer id")
}

/// The Ed25519 key bytes inside a peer id, if it is an Ed25519 one (every meshchat node's is).
pub fn key_of_peer_id(peer: &PeerId) -> Option<[u8; 32]> {
    let bytes = peer.to_bytes();
    if bytes.len() != 38 || bytes[..6] != ED25519_PEER_ID_PREFIX {
        return None;
    }
    bytes[6..].try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_from_key_bytes_matches_libp2p() {
        for i in 0..32u8 {
            let key = meshchat_core::Keypair::from_secret_bytes(&[i; 32]).public();
            let slow = libp2p::identity::PublicKey::from(
                libp2p::identity::ed25519::PublicKey::try_from_bytes(key.as_bytes()).unwrap(),
            )
            .to_peer_id();
            assert_eq!(peer_id_of(&key), slow);
            assert_eq!(key_of_peer_id(&slow), Some(*key.as_bytes()));
        }
        let rsa_like = PeerId::random();
        assert_eq!(key_of_peer_id(&rsa_like), None);
    }
}
