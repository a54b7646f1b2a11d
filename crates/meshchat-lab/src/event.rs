//! The `meshchat --json` protocol as the lab sees it: commands written to stdin and events read
//! from stdout, one JSON object per line. Unknown event kinds parse as [`Event::Unknown`] and are
//! ignored, so the binary can add events freely.

use serde::{Deserialize, Serialize};

/// A chat message as carried by `message` events and `history` answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Message {
    /// Room name.
    pub room: String,
    /// Message id (64 hex characters).
    pub id: String,
    /// Author's peer id.
    pub from: String,
    /// Author's nick.
    #[serde(default)]
    pub nick: String,
    /// Author timestamp, ms since the epoch.
    #[serde(default)]
    pub ts: u64,
    /// Body.
    #[serde(default)]
    pub text: String,
    /// Whether this node authored it.
    #[serde(default)]
    pub own: bool,
    /// Whether it arrived by history sync rather than by the broadcast (`message` events of
    /// nodes with history sync; absent, so false, elsewhere).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub synced: bool,
}

/// A peer in a `peers` answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PeerInfo {
    /// Peer id.
    pub peer_id: String,
    /// Known addresses.
    #[serde(default)]
    pub addrs: Vec<String>,
}

/// One line of `meshchat --json` output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The node is listening.
    Ready {
        /// Our peer id.
        peer_id: String,
        /// Key fingerprint.
        #[serde(default)]
        fingerprint: String,
        /// Bound listen addresses (without `/p2p/`).
        #[serde(default)]
        listen: Vec<String>,
    },
    /// A room message was shown (own ones too).
    Message(Message),
    /// Answer to `send`.
    Sent {
        /// Room.
        room: String,
        /// Id of the new message.
        id: String,
    },
    /// A peer connected.
    PeerConnected {
        /// Its peer id.
        peer_id: String,
    },
    /// A peer disconnected.
    PeerDisconnected {
        /// Its peer id.
        peer_id: String,
    },
    /// Answer to `history`, oldest first.
    History {
        /// Room.
        room: String,
        /// Stored messages.
        messages: Vec<Message>,
    },
    /// Answer to `peers`.
    Peers {
        /// Connected / known peers.
        peers: Vec<PeerInfo>,
    },
    /// Answer to `join`.
    Joined {
        /// Room.
        room: String,
    },
    /// Answer to `leave`.
    Left {
        /// Room.
        room: String,
    },
    /// A listen address became active (some builds report bound ports here too).
    Listening {
        /// The multiaddr.
        addr: String,
    },
    /// Answer to `connect` once the dial succeeded (not in the minimal contract).
    Connected {
        /// The dialled address.
        #[serde(default)]
        addr: String,
    },
    /// A command failed; the node keeps running.
    Error {
        /// What went wrong.
        message: String,
    },
    /// Any event kind the lab does not know.
    #[serde(other)]
    Unknown,
}

/// A command for the node's stdin.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Post `text` to `room`.
    Send {
        /// Room.
        room: String,
        /// Body.
        text: String,
    },
    /// Join a room.
    Join {
        /// Room.
        room: String,
    },
    /// Leave a room.
    Leave {
        /// Room.
        room: String,
    },
    /// Dial a multiaddr (with `/p2p/<id>`).
    Connect {
        /// Multiaddr.
        addr: String,
    },
    /// List peers.
    Peers,
    /// Stored messages of a room.
    History {
        /// Room.
        room: String,
        /// Most messages to return.
        limit: usize,
    },
    /// Shut down gracefully.
    Quit,
}

impl Command {
    /// The JSON line (without newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("commands serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_contract_events() {
        let e: Event = serde_json::from_str(
            r#"{"event":"ready","peer_id":"12D3x","fingerprint":"f","listen":["/ip4/10.0.0.1/tcp/1"]}"#,
        )
        .unwrap();
        assert!(matches!(e, Event::Ready { ref listen, .. } if listen.len() == 1));
        let e: Event = serde_json::from_str(
            r#"{"event":"message","room":"lobby","id":"ab","from":"p","nick":"n","ts":5,"text":"hi","own":true}"#,
        )
        .unwrap();
        assert!(matches!(
            e,
            Event::Message(Message {
                own: true,
                ts: 5,
                ..
            })
        ));
        let e: Event =
            serde_json::from_str(r#"{"event":"history","room":"r","messages":[]}"#).unwrap();
        assert_eq!(
            e,
            Event::History {
                room: "r".into(),
                messages: vec![]
            }
        );
        let e: Event = serde_json::from_str(r#"{"event":"something_new","x":[1,2]}"#).unwrap();
        assert_eq!(e, Event::Unknown);
    }

    #[test]
    fn commands_match_contract() {
        assert_eq!(
            Command::Send {
                room: "lobby".into(),
                text: "hi".into()
            }
            .to_line(),
            r#"{"cmd":"send","room":"lobby","text":"hi"}"#
        );
        assert_eq!(Command::Quit.to_line(), r#"{"cmd":"quit"}"#);
        assert_eq!(Command::Peers.to_line(), r#"{"cmd":"peers"}"#);
        assert_eq!(
            Command::History {
                room: "x".into(),
                limit: 100
            }
            .to_line(),
            r#"{"cmd":"history","room":"x","limit":100}"#
        );
    }
}
