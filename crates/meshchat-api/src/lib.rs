//! The JSON contract of `meshchat --json`, as types.
//!
//! A program drives a node by writing one [`Command`] per line to its stdin and reads one
//! [`Event`] per line from its stdout. These enums *are* the contract that `docs/JSON.md`
//! describes in prose: JSON mode parses and writes them, the lab drives nodes with them, and the
//! web UI's WebSocket will carry them. A new command or event is written here once.
//!
//! - [`Command`] is tagged by `"cmd"`; [`Command::from_line`] parses a line and says what is
//!   wrong with a bad one, in the words JSON mode answers with.
//! - [`Event`] is tagged by `"event"`; [`Event::to_line`] writes the line JSON mode prints.
//!   Replies to commands (`sent`, `history`, `who`, …) are variants of [`Event`], not a
//!   separate enum: they share the one output stream and the one `event` tag with unsolicited
//!   events (a reply and the event it causes can arrive in either order, as `sent` and the own
//!   `message` do), so a reader matches one enum per line either way, and a separate `Reply`
//!   would only move the same tags behind an untagged wrapper.
//! - The data they carry ([`Message`], [`DirectMessage`], [`Peer`], [`Route`], [`Profile`],
//!   [`OnlinePeer`], [`Tracker`], [`Stats`], …) are plain structs of strings and numbers:
//!   peer ids, fingerprints, message ids and multiaddrs are in their text forms.
//!
//! Compatibility: readers must tolerate what they do not know. Unknown fields are ignored
//! (nothing here denies them), and an event of a kind this version does not know parses as
//! [`Event::Unknown`] instead of failing, so an old reader keeps working against a newer node.
//! Fields that a newer node may leave out are `Option`s; everything else is always written.

use serde::{Deserialize, Serialize};

mod types;
pub use types::*;

/// How many messages `history` and `dm_history` return when the command gives no `limit`.
pub const DEFAULT_HISTORY_LIMIT: u64 = 100;
/// The most messages one `history` or `dm_history` returns (a larger `limit` is cut to this).
pub const MAX_HISTORY_LIMIT: u64 = 10_000;

fn default_history_limit() -> u64 {
    DEFAULT_HISTORY_LIMIT
}

/// A line written to the node's stdin: `{"cmd":"send","room":"lobby","text":"hi"}`.
///
/// Each command is answered by one [`Event`] (named in its doc), or by [`Event::Error`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Post `text` to `room` (which this node has joined). Answer: [`Event::Sent`], and the
    /// [`Event::Message`] of the own message, in either order.
    Send { room: String, text: String },
    /// Join a room; with `key`, the private room of that name and passphrase (PROTOCOL §10).
    /// Answer: [`Event::Joined`].
    Join {
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<Passphrase>,
    },
    /// Create an invite-only private room, with this node as its admin. Answer:
    /// [`Event::Joined`].
    Create { room: String },
    /// Add someone (nick, fingerprint or peer id) to an invite room this node administers;
    /// they get the invite by DM. Answer: [`Event::Invited`].
    Invite { room: String, who: String },
    /// Remove a member from an invite room this node administers. Answer: [`Event::Removed`].
    Remove { room: String, who: String },
    /// The members of a private room. Answer: [`Event::Members`].
    Members { room: String },
    /// The joined rooms, public and private. Answer: [`Event::Rooms`].
    Rooms,
    /// Leave a room. Answer: [`Event::Left`].
    Leave { room: String },
    /// Set this node's nick. Answer: [`Event::Nick`].
    Nick { nick: String },
    /// Dial a multiaddr (with `/p2p/<peer id>` to check whom). Answered when the dial ends, by
    /// [`Event::Connected`] or an error; other commands go on meanwhile.
    Connect { addr: String },
    /// The connected peers. Answer: [`Event::Peers`].
    Peers,
    /// The stored messages of a room, oldest first. Answer: [`Event::History`].
    History {
        room: String,
        /// At most this many (the newest), cut to [`MAX_HISTORY_LIMIT`].
        #[serde(default = "default_history_limit")]
        limit: u64,
        /// Only messages before this place (scrolling back); the newest when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Position>,
    },
    /// Send a direct message. Answer: [`Event::DmSent`], the own [`Event::Dm`] and its first
    /// [`Event::DmStatus`], in any order.
    Dm {
        /// Nick, fingerprint or peer id of the recipient.
        to: String,
        text: String,
    },
    /// The stored DMs exchanged with someone, oldest first. Answer: [`Event::DmHistory`].
    DmHistory {
        /// Peer id, nick or fingerprint.
        with: String,
        /// At most this many (the newest), cut to [`MAX_HISTORY_LIMIT`].
        #[serde(default = "default_history_limit")]
        limit: u64,
        /// Only DMs before this place (scrolling back); the newest when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Position>,
    },
    /// Everyone this node exchanged DMs with, newest first. Answer: [`Event::Conversations`].
    Conversations,
    /// The routing table. Answer: [`Event::Routes`].
    Routes,
    /// The profiles known for a nick, fingerprint or peer id. Answer: [`Event::Whois`].
    Whois { who: String },
    /// Everyone online, from the tracker's roster. Answer: [`Event::Who`].
    Who,
    /// The tracker this node follows. Answer: [`Event::Tracker`].
    Tracker,
    /// This node's identity and addresses (also accepted as `"id"`). Answer: [`Event::Info`].
    #[serde(alias = "id")]
    Info,
    /// The node's counters. Answer: [`Event::Stats`].
    Stats,
    /// Offer a file to a joined `room`, or to one person (`to`: nick, fingerprint or peer id);
    /// exactly one of the two. `path` is a file on the node's machine, read in place (it must
    /// stay there while others fetch it). Answer: [`Event::FileOffered`].
    SendFile {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        path: String,
    },
    /// Download an offered file (its `id` from [`Event::FileOffer`] or [`Event::Files`]) into
    /// the download directory. Answer: [`Event::FileAccepted`]; then [`Event::FileProgress`]
    /// and [`Event::FileDone`] or [`Event::FileFailed`].
    AcceptFile { id: String },
    /// Stop a download (its partial data is deleted) or stop serving a file we offered.
    /// Answer: [`Event::FileCancelled`].
    CancelFile { id: String },
    /// The offers and transfers this node knows, newest first. Answer: [`Event::Files`].
    Files,
    /// Stop the node cleanly (exit status 0). No answer.
    Quit,
}

impl Command {
    /// Every `cmd` accepted, aliases included (a test checks it against the enum).
    pub const NAMES: &'static [&'static str] = &[
        "send",
        "join",
        "create",
        "invite",
        "remove",
        "members",
        "rooms",
        "leave",
        "nick",
        "connect",
        "peers",
        "history",
        "dm",
        "dm_history",
        "conversations",
        "routes",
        "whois",
        "who",
        "tracker",
        "info",
        "id",
        "stats",
        "send_file",
        "accept_file",
        "cancel_file",
        "files",
        "quit",
    ];

    /// Parses one input line; the error says what is wrong in words meant for the user.
    pub fn from_line(line: &str) -> Result<Command, CommandError> {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| CommandError::Json(e.to_string()))?;
        let name = match value.get("cmd") {
            Some(serde_json::Value::String(name)) => name.clone(),
            _ => return Err(CommandError::NoCmd),
        };
        if !Self::NAMES.contains(&name.as_str()) {
            return Err(CommandError::Unknown(name));
        }
        Command::deserialize(value).map_err(|e| CommandError::Fields {
            cmd: name,
            error: e.to_string(),
        })
    }

    /// The line for the node's stdin (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a command is a JSON object with string keys")
    }
}

/// What is wrong with an input line ([`Command::from_line`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not JSON at all.
    Json(String),
    /// No string field `cmd`.
    NoCmd,
    /// A `cmd` that is not in [`Command::NAMES`].
    Unknown(String),
    /// A known command with a missing or ill-typed field.
    Fields { cmd: String, error: String },
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::Json(e) => write!(f, "invalid JSON: {e}"),
            CommandError::NoCmd => f.write_str("missing string field \"cmd\""),
            CommandError::Unknown(name) => write!(
                f,
                "unknown command {name:?} (known: {})",
                Command::NAMES.join(", ")
            ),
            CommandError::Fields { cmd, error } => write!(f, "bad {cmd:?} command: {error}"),
        }
    }
}

impl std::error::Error for CommandError {}

/// A line the node writes to stdout: an event, or the answer to a command (see the crate docs
/// for why both are one enum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The first line, once the node listens.
    Ready(NodeInfo),
    /// A room message of a joined room, own ones too; each id at most once, ever.
    Message(Message),
    /// A meshchat peer is connected and subscribed: messages now flow both ways.
    PeerConnected { peer_id: String },
    /// The last connection to a peer closed.
    PeerDisconnected { peer_id: String },
    /// A listen address that appeared after [`Event::Ready`].
    Listening { addr: String },
    /// How others can reach this node changed (see [`Reachability`]).
    Reachability(Reachability),
    /// Something went wrong in the node, or it blocked a peer; it keeps running.
    Warning(Warning),
    /// A command was refused; the node keeps running.
    Error { message: String },
    /// This process did not read stdout for a while and the node dropped `missed` events; the
    /// stored messages it has not been given follow as [`Event::Message`]s.
    Lagged { missed: u64 },
    /// A direct message to this node, or our own; each id at most once, ever.
    Dm(DirectMessage),
    /// The state of one of our DMs changed.
    DmStatus {
        id: String,
        /// The recipient's peer id.
        to: String,
        state: DmState,
    },
    /// The tracker this node follows changed, or its epoch did.
    TrackerChanged {
        /// Its peer id; `None` while it is gone and an election runs.
        tracker: Option<String>,
        epoch: u64,
        /// This node became the tracker.
        #[serde(rename = "self")]
        is_self: bool,
    },
    /// Answer to [`Command::Send`].
    Sent {
        room: String,
        id: String,
        /// False when no peer was connected: the message is stored here only.
        relayed: bool,
    },
    /// Answer to [`Command::Join`] and [`Command::Create`]; also sent unasked when an invite
    /// made this node join a private room.
    Joined {
        room: String,
        /// `"passphrase"` or `"invite"` for a private room; absent for a public one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        private: Option<String>,
        /// Who invited this node (a peer id), when an invite made it join.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Answer to [`Command::Rooms`], in the order joined.
    Rooms { rooms: Vec<Room> },
    /// Answer to [`Command::Members`]; also sent unasked when an invite room's membership
    /// changes (this node is no longer in it when it is not listed).
    Members { room: String, members: Vec<Member> },
    /// Answer to [`Command::Invite`]: the add is signed and published, the invite on its way.
    Invited {
        room: String,
        /// The `who` of the command, as given.
        who: String,
        peer_id: String,
    },
    /// Answer to [`Command::Remove`]: the removal is signed and published with a new key.
    Removed {
        room: String,
        who: String,
        peer_id: String,
    },
    /// Answer to [`Command::Leave`].
    Left { room: String, was_member: bool },
    /// Answer to [`Command::Nick`].
    Nick { nick: String },
    /// Answer to [`Command::Connect`], once the connection is up.
    Connected {
        /// The address as the command gave it.
        addr: String,
        peer_id: String,
    },
    /// Answer to [`Command::Peers`].
    Peers { peers: Vec<Peer> },
    /// Answer to [`Command::History`]: oldest first, in display order (author timestamp,
    /// then id).
    History {
        room: String,
        messages: Vec<Message>,
        /// The `before` of the command, as given (`null` when it gave none).
        #[serde(default)]
        before: Option<Position>,
    },
    /// Answer to [`Command::Dm`]: the DM is stored here and on its way.
    DmSent(DmSent),
    /// Answer to [`Command::DmHistory`]: oldest first (author timestamp, then id).
    DmHistory {
        /// The `with` of the command, as given.
        with: String,
        messages: Vec<DirectMessage>,
        /// The `before` of the command, as given (`null` when it gave none).
        #[serde(default)]
        before: Option<Position>,
    },
    /// Answer to [`Command::Conversations`]: newest first.
    Conversations { conversations: Vec<Conversation> },
    /// Answer to [`Command::Routes`]: one selected route per reachable node.
    Routes { routes: Vec<Route> },
    /// Answer to [`Command::Whois`] (several profiles for a shared nick).
    Whois {
        /// The `who` of the command, as given.
        who: String,
        profiles: Vec<Profile>,
    },
    /// Answer to [`Command::Who`]: the tracker's roster, sorted by nick.
    Who { peers: Vec<OnlinePeer> },
    /// Answer to [`Command::Tracker`].
    Tracker(Tracker),
    /// Answer to [`Command::Info`].
    Info(NodeInfo),
    /// Answer to [`Command::Stats`].
    Stats(Box<Stats>),
    /// Answer to [`Command::SendFile`]: the file is hashed and offered; others fetch it from
    /// this node (and, in a room, from whoever downloaded it).
    FileOffered(File),
    /// Someone offered a file: in a joined room, or to this node (`to` is then our peer id).
    FileOffer(File),
    /// Answer to [`Command::AcceptFile`]: the download started (or resumed).
    FileAccepted { id: String },
    /// Bytes of a download verified so far (at most a few a second per transfer), or, for a
    /// file we offered to one person, bytes of it they fetched.
    FileProgress { id: String, bytes: u64, total: u64 },
    /// A download finished: the file at `path` matches its `hash`.
    FileDone {
        id: String,
        path: String,
        hash: String,
    },
    /// A download or an offer could not go on; nothing unverified was kept.
    FileFailed { id: String, reason: String },
    /// Answer to [`Command::CancelFile`].
    FileCancelled { id: String },
    /// Answer to [`Command::Files`].
    Files { files: Vec<File> },
    /// An event of a kind this version does not know (written by a newer node); its fields are
    /// not kept. Nodes never write it.
    #[serde(other)]
    Unknown,
}

impl Event {
    /// The line JSON mode prints (without the newline). Keys are in alphabetical order, as
    /// they have been since JSON mode began (it wrote `serde_json::Value`s, whose maps sort).
    pub fn to_line(&self) -> String {
        serde_json::to_value(self)
            .expect("an event is a JSON object with string keys")
            .to_string()
    }

    /// Parses one output line.
    pub fn from_line(line: &str) -> serde_json::Result<Event> {
        serde_json::from_str(line)
    }
}
