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

/// A direct message as carried by `dm` events and `dm_history` answers (issue 11).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct DirectMessage {
    /// Envelope id (64 hex characters); `dm_status` and `dm_sent` use the same id.
    pub id: String,
    /// Author's peer id.
    pub from: String,
    /// Recipient's peer id.
    pub to: String,
    /// Author's key fingerprint.
    #[serde(default)]
    pub fingerprint: String,
    /// Author's nick.
    #[serde(default)]
    pub nick: String,
    /// Author timestamp, ms since the epoch.
    #[serde(default)]
    pub ts: u64,
    /// Body.
    #[serde(default)]
    pub text: String,
    /// Whether this node wrote it.
    #[serde(default)]
    pub own: bool,
    /// Delivery state of an own DM (`queued`, `sent`, `delivered`, `failed`); absent on
    /// received ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// The answer to `dm`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct DmSent {
    /// Id of the new DM.
    pub id: String,
    /// Recipient's peer id.
    #[serde(default)]
    pub to: String,
    /// Its state when the answer was written (`queued`, `sent`, ...).
    #[serde(default)]
    pub state: String,
}

/// One entry of a `routes` answer: the node's selected route to `dest`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RouteInfo {
    /// Destination peer id.
    pub dest: String,
    /// Neighbour the route goes through.
    pub next_hop: String,
    /// Hop count.
    pub hops: u32,
    /// Since the route was last heard, ms.
    #[serde(default)]
    pub age_ms: u64,
    /// Destination's nick, if its profile is known.
    #[serde(default)]
    pub nick: Option<String>,
}

/// One entry of a `whois` answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ProfileInfo {
    /// Peer id.
    pub peer_id: String,
    /// Key fingerprint.
    #[serde(default)]
    pub fingerprint: String,
    /// Nick.
    #[serde(default)]
    pub nick: String,
    /// Hops to it, if routed.
    #[serde(default)]
    pub hops: Option<u32>,
    /// Whether it is a neighbour.
    #[serde(default)]
    pub connected: bool,
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
    /// A direct message was shown (received, or our own when sent); once per id.
    Dm(DirectMessage),
    /// The state of one of our DMs changed.
    DmStatus {
        /// DM id.
        id: String,
        /// Recipient's peer id.
        #[serde(default)]
        to: String,
        /// `queued`, `sent`, `delivered` or `failed`.
        state: String,
    },
    /// Answer to `dm`.
    DmSent(DmSent),
    /// Answer to `dm_history`, oldest first.
    DmHistory {
        /// The `with` of the command, as given.
        #[serde(default)]
        with: String,
        /// Stored DMs of the conversation.
        messages: Vec<DirectMessage>,
    },
    /// Answer to `routes`.
    Routes {
        /// Selected routes (not to the node itself).
        routes: Vec<RouteInfo>,
    },
    /// Answer to `whois`.
    Whois {
        /// The `who` of the command, as given.
        #[serde(default)]
        who: String,
        /// Matching profiles.
        profiles: Vec<ProfileInfo>,
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
    /// Send a direct message to `to` (nick, fingerprint or peer id).
    Dm {
        /// Recipient.
        to: String,
        /// Body.
        text: String,
    },
    /// Stored DMs exchanged with `with` (nick or peer id).
    DmHistory {
        /// The other person.
        with: String,
        /// Most messages to return.
        limit: usize,
    },
    /// The routing table.
    Routes,
    /// Profiles known for `who`.
    Whois {
        /// Nick, fingerprint or peer id.
        who: String,
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
        let e: Event = serde_json::from_str(
            r#"{"event":"dm","id":"d1","from":"a","to":"b","fingerprint":"f","nick":"n0","ts":7,"text":"hi","own":false}"#,
        )
        .unwrap();
        assert!(
            matches!(e, Event::Dm(DirectMessage { ref text, state: None, .. }) if text == "hi")
        );
        let e: Event =
            serde_json::from_str(r#"{"event":"dm_status","id":"d1","to":"b","state":"delivered"}"#)
                .unwrap();
        assert!(matches!(e, Event::DmStatus { ref state, .. } if state == "delivered"));
        let e: Event = serde_json::from_str(
            r#"{"event":"routes","routes":[{"dest":"b","next_hop":"c","hops":4,"age_ms":10,"nick":null}]}"#,
        )
        .unwrap();
        assert!(matches!(e, Event::Routes { ref routes } if routes[0].hops == 4));
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
        assert_eq!(
            Command::Dm {
                to: "n4".into(),
                text: "hi".into()
            }
            .to_line(),
            r#"{"cmd":"dm","to":"n4","text":"hi"}"#
        );
        assert_eq!(
            Command::DmHistory {
                with: "n4".into(),
                limit: 100
            }
            .to_line(),
            r#"{"cmd":"dm_history","with":"n4","limit":100}"#
        );
        assert_eq!(Command::Routes.to_line(), r#"{"cmd":"routes"}"#);
        assert_eq!(
            Command::Whois { who: "n4".into() }.to_line(),
            r#"{"cmd":"whois","who":"n4"}"#
        );
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
