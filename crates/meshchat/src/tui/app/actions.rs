//! What the interface asks of the node ([`Action`]) and what comes back ([`Reply`]): the
//! event loop (`tui/term.rs`) carries out the one and hands the App the other.

use meshchat_core::MessageId;
use meshchat_node::{
    Conversation, DmSent, DmState, MemberView, MessageView, OnlinePeer, PeerId, PeerInfo,
    PrivateKind, ProfileView, RoomView, RouteView, Sent, TrackerView,
};

use super::{HistoryFor, PeersFor};

/// Why the node refused a direct message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Several keys use the nick: their fingerprints.
    Ambiguous {
        nick: String,
        candidates: Vec<String>,
    },
    /// Anything else, as the node says it.
    Other(String),
}

/// A private room's passphrase on its way to the node: its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(pub String);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(…)")
    }
}

/// A node call the interface wants made. The event loop runs them off the interface's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send {
        room: String,
        text: String,
    },
    /// Join a room; with a passphrase, the private room of that name and passphrase.
    Join {
        room: String,
        key: Option<Passphrase>,
    },
    Leave {
        room: String,
    },
    /// `/create`: a new invite room.
    Create {
        room: String,
    },
    /// `/invite`: add `who` to the invite room `room`.
    Invite {
        room: String,
        who: String,
    },
    /// `/remove`: take `who` out of the invite room `room`.
    Remove {
        room: String,
        who: String,
    },
    /// `/members` of a private room.
    Members {
        room: String,
    },
    /// The joined rooms' kinds and member counts (at start, and after missed events).
    Rooms,
    Nick {
        nick: String,
    },
    Connect {
        addr: String,
    },
    Peers {
        purpose: PeersFor,
    },
    /// History of a room, or of a conversation (a room name made by
    /// [`super::room::conversation_name`]).
    History {
        room: String,
        before: Option<(u64, MessageId)>,
        limit: usize,
        purpose: HistoryFor,
    },
    /// A direct message to `to` (a nick, fingerprint or peer id).
    Dm {
        to: String,
        text: String,
    },
    /// `/msg WHO` without a text: find who that is, to open the conversation.
    OpenDm {
        who: String,
    },
    /// The conversations with DMs, newest first, opened (up to [`MAX_CONVERSATIONS`]); listed
    /// in a notice for `/dms` (`announce`).
    Conversations {
        announce: bool,
    },
    Routes,
    /// `/who`: the tracker's roster and the tracker.
    Who,
    /// The node's view of the tracker: for `/tracker` (`announce`), or to learn its nick.
    Tracker {
        announce: bool,
    },
    /// `/whois`: the connected peers (for addresses) and the profiles matching `query`.
    Whois {
        query: String,
    },
    /// `/file`: offer a file to a room or to one person (a peer id).
    SendFile {
        room: Option<String>,
        to: Option<String>,
        path: String,
    },
    /// `/accept`: fetch this offer (`None`: the newest one not fetched).
    AcceptFile {
        id: Option<String>,
    },
    CancelFile {
        id: String,
    },
    /// `/files`.
    Files,
}

/// The answer to an [`Action`], node errors as text.
#[derive(Debug)]
pub enum Reply {
    Sent {
        room: String,
        text: String,
        result: Result<Sent, String>,
    },
    Joined {
        room: String,
        /// The kind asked for: a passphrase room when joined with a key.
        private: Option<PrivateKind>,
        result: Result<bool, String>,
    },
    Left {
        room: String,
        result: Result<bool, String>,
    },
    /// `/create`'s answer: the room's name as the node keeps it.
    Created {
        room: String,
        result: Result<String, String>,
    },
    Invited {
        room: String,
        who: String,
        result: Result<PeerId, String>,
    },
    Removed {
        room: String,
        who: String,
        result: Result<PeerId, String>,
    },
    Members {
        room: String,
        result: Result<Vec<MemberView>, String>,
    },
    Rooms(Result<Vec<RoomView>, String>),
    Nick {
        nick: String,
        result: Result<(), String>,
    },
    Connected {
        addr: String,
        result: Result<PeerId, String>,
    },
    Peers {
        purpose: PeersFor,
        result: Result<Vec<PeerInfo>, String>,
    },
    History {
        room: String,
        limit: usize,
        purpose: HistoryFor,
        result: Result<Vec<MessageView>, String>,
        /// For a conversation: the states of our own DMs in the page.
        states: Vec<(MessageId, DmState)>,
    },
    DmSent {
        to: String,
        text: String,
        /// The recipient's nick from their profile, when the DM was accepted.
        nick: Option<String>,
        result: Result<DmSent, Refusal>,
    },
    OpenDm {
        who: String,
        result: Result<Vec<ProfileView>, String>,
    },
    Conversations {
        announce: bool,
        result: Result<Vec<Conversation>, String>,
    },
    Routes(Result<Vec<RouteView>, String>),
    Who {
        peers: Result<Vec<OnlinePeer>, String>,
        tracker: Result<TrackerView, String>,
    },
    Tracker {
        announce: bool,
        result: Result<TrackerView, String>,
    },
    Whois {
        query: String,
        peers: Result<Vec<PeerInfo>, String>,
        /// Profiles that reached the node (none, not an error, for someone without one).
        profiles: Result<Vec<ProfileView>, String>,
    },
    FileOffered(Result<meshchat_api::File, String>),
    /// The offer now being fetched.
    FileAccepted(Result<meshchat_api::File, String>),
    FileCancelled {
        id: String,
        result: Result<(), String>,
    },
    Files(Result<Vec<meshchat_api::File>, String>),
}
