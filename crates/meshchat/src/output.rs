//! Shared renderings of node data for the line and JSON interfaces.

use meshchat_node::{Event, MessageView, Multiaddr, PeerInfo};
use serde_json::{json, Value};

pub fn addrs(addrs: &[Multiaddr]) -> String {
    if addrs.is_empty() {
        return "(none)".into();
    }
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The JSON object of a message (the `message` event, and each entry of `history`).
pub fn message_json(m: &MessageView) -> Value {
    json!({
        "room": m.room,
        "id": m.id.to_string(),
        "from": m.author.to_string(),
        "fingerprint": m.fingerprint.to_string(),
        "nick": m.nick,
        "ts": m.timestamp_ms,
        "text": m.text,
        "own": m.own,
    })
}

pub fn peers_json(peers: &[PeerInfo]) -> Value {
    Value::Array(
        peers
            .iter()
            .map(|p| {
                json!({
                    "peer_id": p.peer_id.to_string(),
                    "addrs": p.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "chat": p.chat,
                })
            })
            .collect(),
    )
}

/// The JSON line of a node event.
pub fn event_json(event: &Event) -> Value {
    match event {
        Event::Message(m) => {
            let mut v = message_json(m);
            v["event"] = "message".into();
            v
        }
        Event::PeerConnected { peer_id } => {
            json!({"event": "peer_connected", "peer_id": peer_id.to_string()})
        }
        Event::PeerDisconnected { peer_id } => {
            json!({"event": "peer_disconnected", "peer_id": peer_id.to_string()})
        }
        Event::ListenAddr(addr) => json!({"event": "listening", "addr": addr.to_string()}),
        Event::Warning(message) => json!({"event": "warning", "message": message}),
        Event::Lagged { missed } => json!({"event": "lagged", "missed": missed}),
    }
}

/// A message as line mode prints it: `[room] nick (fp): text`, continuation lines indented.
pub fn message_line(m: &MessageView) -> String {
    let text = m.text.replace('\n', "\n    ");
    format!(
        "[{}] {} ({}): {}",
        m.room,
        m.nick,
        m.fingerprint.short(),
        text
    )
}
