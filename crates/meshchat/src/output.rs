//! Shared renderings of node data for the line and JSON interfaces.
//!
//! Line mode prints what other people chose to send straight onto a terminal, so every nick,
//! room name and text goes through [`visible_text`] or [`visible_name`] first; JSON mode keeps
//! text exact (its escaping already keeps control characters off the script's terminal).

use std::borrow::Cow;

use chrono::TimeZone;

use meshchat_core::room::{is_bidi_control, is_format, is_invisible};
use meshchat_node::{DmView, Event, MessageView, Multiaddr, PeerInfo, ProfileView, RouteView};
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
        "synced": m.synced,
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
                    "nick": p.nick,
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
        Event::Dm(d) => {
            let mut v = dm_json(d);
            v["event"] = "dm".into();
            v
        }
        Event::DmStatus { id, to, state } => json!({
            "event": "dm_status", "id": id.to_string(), "to": to.to_string(),
            "state": state.as_str(),
        }),
    }
}

/// The JSON object of a direct message (the `dm` event, and each entry of `dm_history`).
pub fn dm_json(d: &DmView) -> Value {
    let mut v = json!({
        "id": d.id.to_string(),
        "from": d.from.to_string(),
        "to": d.to.to_string(),
        "fingerprint": d.fingerprint.to_string(),
        "nick": d.nick,
        "ts": d.timestamp_ms,
        "text": d.text,
        "own": d.own,
    });
    if let Some(state) = d.state {
        v["state"] = state.as_str().into();
    }
    v
}

pub fn routes_json(routes: &[RouteView]) -> Value {
    Value::Array(
        routes
            .iter()
            .map(|r| {
                json!({
                    "dest": r.dest.to_string(),
                    "next_hop": r.next_hop.to_string(),
                    "hops": r.hops,
                    "age_ms": r.age_ms,
                    "nick": r.nick,
                })
            })
            .collect(),
    )
}

pub fn profiles_json(profiles: &[ProfileView]) -> Value {
    Value::Array(
        profiles
            .iter()
            .map(|p| {
                json!({
                    "peer_id": p.peer_id.to_string(),
                    "fingerprint": p.fingerprint.to_string(),
                    "nick": p.nick,
                    "version": p.version,
                    "hops": p.hops,
                    "connected": p.connected,
                })
            })
            .collect(),
    )
}

/// A DM as line mode prints it: `[dm nick (fp) -> nick2] text` style, safe for the terminal:
/// `[dm] nick (fp) -> PEER: text` for our own, `[dm] nick (fp): text` for received ones.
pub fn dm_line(d: &DmView) -> String {
    if d.own {
        format!(
            "[dm -> {}] {} ({}): {}",
            short_peer(&d.to.to_string()),
            visible_name(&d.nick),
            d.fingerprint.short(),
            visible_text(&d.text)
        )
    } else {
        format!(
            "[dm] {} ({}): {}",
            visible_name(&d.nick),
            d.fingerprint.short(),
            visible_text(&d.text)
        )
    }
}

/// The last eight characters of a peer id: enough to tell peers apart in a line.
pub fn short_peer(peer: &str) -> &str {
    &peer[peer.len().saturating_sub(8)..]
}

/// A message as line mode prints it: `[room] nick (fp): text`, continuation lines indented
/// (see [`visible_text`]). The fingerprint is always there: nicks are not unique. A message that
/// arrived by history sync (written while this node was away, so usually older than what was
/// printed before it) says so and when it was written, in local time:
/// `[room] (synced 14:02) nick (fp): text`, with the date when not today
/// (`(synced 2025-04-28 09:15)`).
pub fn message_line(m: &MessageView) -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    message_line_at(m, &chrono::Local, now_ms)
}

/// [`message_line`] with times shown in `tz`, "today" being the day of `now_ms` there.
pub fn message_line_at<Tz: TimeZone>(m: &MessageView, tz: &Tz, now_ms: u64) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let synced = if m.synced {
        format!("({}) ", synced_stamp(m.timestamp_ms, tz, now_ms))
    } else {
        String::new()
    };
    format!(
        "[{}] {synced}{} ({}): {}",
        visible_name(&m.room),
        visible_name(&m.nick),
        m.fingerprint.short(),
        visible_text(&m.text)
    )
}

/// `synced HH:MM`, or `synced YYYY-MM-DD HH:MM` when `ts_ms` is not on the day of `now_ms`.
fn synced_stamp<Tz: TimeZone>(ts_ms: u64, tz: &Tz, now_ms: u64) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let at = |ms: u64| {
        tz.timestamp_millis_opt(i64::try_from(ms).unwrap_or(i64::MAX))
            .single()
    };
    match (at(ts_ms), at(now_ms)) {
        (Some(t), Some(now)) if t.date_naive() == now.date_naive() => {
            format!("synced {}", t.format("%H:%M"))
        }
        (Some(t), _) => format!("synced {}", t.format("%Y-%m-%d %H:%M")),
        (None, _) => "synced".to_owned(),
    }
}

/// What starts each continuation line of a multi-line text in line mode: indented, so that no
/// line of a message can pass for the start of another message.
pub const CONTINUATION: &str = "    ";

/// A message text made safe to print on a terminal, on lines of its own: nothing in it acts on
/// the terminal and no line of it can pass for a new message.
///
/// - A line break (`\n`, or `\r\n`) starts a continuation line indented by [`CONTINUATION`].
/// - A tab becomes four spaces.
/// - Other control characters (C0 with ESC, lone CR, BEL; DEL; C1), the bidirectional controls
///   and the other format characters are shown as Rust escapes (`\u{1b}`, `\u{202e}`), never
///   interpreted. Kept as they are: the zero-width (non-)joiners, which emoji and some scripts
///   need, and the tag characters of a flag emoji (U+1F3F4 followed by tags).
pub fn visible_text(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

/// A nick or room name made safe to print on one line: every [invisible](is_invisible)
/// character, line breaks included, is shown as a Rust escape (`\u{200b}`).
pub fn visible_name(name: &str) -> Cow<'_, str> {
    escape(name, false)
}

fn escape(text: &str, multiline: bool) -> Cow<'_, str> {
    if classify(text, multiline).all(|(_, kept)| kept) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = classify(text, multiline).peekable();
    while let Some((c, kept)) = chars.next() {
        match c {
            _ if kept => out.push(c),
            '\r' if multiline && chars.peek().is_some_and(|&(next, _)| next == '\n') => {}
            '\n' if multiline => {
                out.push('\n');
                out.push_str(CONTINUATION);
            }
            '\t' if multiline => out.push_str("    "),
            c => out.extend(c.escape_unicode()),
        }
    }
    Cow::Owned(out)
}

/// Each character of `text` and whether it may be printed as it is (see [`visible_text`] and
/// [`visible_name`]).
fn classify(text: &str, multiline: bool) -> impl Iterator<Item = (char, bool)> + '_ {
    const TAGS: std::ops::RangeInclusive<char> = '\u{E0020}'..='\u{E007F}';
    // Inside a flag emoji's tag sequence (U+1F3F4 then tags), whose tags are kept.
    let mut in_flag = false;
    text.chars().map(move |c| {
        let kept = if !multiline {
            !is_invisible(c)
        } else if c.is_control() || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}') {
            false
        } else if matches!(c, '\u{200C}' | '\u{200D}') {
            true
        } else if TAGS.contains(&c) {
            in_flag
        } else {
            !is_format(c)
        };
        in_flag = c == '\u{1F3F4}' || (in_flag && kept && TAGS.contains(&c));
        (c, kept)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn terminal_controls_are_shown_not_interpreted() {
        assert!(matches!(
            visible_text("plain text"),
            Cow::Borrowed("plain text")
        ));
        assert_eq!(visible_text("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(visible_text("\x1b]0;pwned\x07x"), "\\u{1b}]0;pwned\\u{7}x");
        assert_eq!(visible_text("a\u{9b}31m"), "a\\u{9b}31m");
        assert_eq!(visible_text("a\x7f"), "a\\u{7f}");
        // A lone CR would return to the line start and overwrite it with a fake message.
        assert_eq!(
            visible_text("hi\r[lobby] alice (1a2b): bye"),
            "hi\\u{d}[lobby] alice (1a2b): bye"
        );
        // Line breaks start indented continuation lines, CR LF too.
        assert_eq!(visible_text("a\nb\r\nc"), "a\n    b\n    c");
        assert_eq!(visible_text("a\tb"), "a    b");
        assert_eq!(visible_text("a\u{2028}b"), "a\\u{2028}b");
        assert_eq!(visible_text("x\u{202E}y\u{2066}z"), "x\\u{202e}y\\u{2066}z");
        assert_eq!(visible_text("a\u{200B}b\u{FEFF}"), "a\\u{200b}b\\u{feff}");
    }

    #[test]
    fn emoji_and_scripts_are_kept() {
        for s in [
            "Zoë 🚀",
            "👩\u{200D}💻",
            "می\u{200C}خواهم",
            "❤\u{FE0F}",
            // Scotland's flag: a black flag and tag characters.
            "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
        ] {
            assert_eq!(visible_text(s), s);
        }
        // Tags hiding text elsewhere are shown.
        assert_eq!(visible_text("a\u{E0041}"), "a\\u{e0041}");
    }

    fn view(synced: bool, ts_ms: u64) -> MessageView {
        let key = meshchat_core::Keypair::from_secret_bytes(&[2; 32]);
        MessageView {
            id: meshchat_core::MessageId([3; 32]),
            room: "lobby".into(),
            author: meshchat_node::peer_id_of(&key.public()),
            fingerprint: key.public().fingerprint(),
            nick: "bob".into(),
            timestamp_ms: ts_ms,
            text: "hi".into(),
            own: false,
            synced,
            seq: 9,
        }
    }

    #[test]
    fn synced_messages_are_marked_with_their_time() {
        // 2025-05-01 12:00 UTC; shown two hours east.
        const NOW: u64 = 1_746_100_800_000;
        let tz = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
        let fp = view(false, 0).fingerprint.short();
        assert_eq!(
            message_line_at(&view(false, NOW), &tz, NOW),
            format!("[lobby] bob ({fp}): hi")
        );
        assert_eq!(
            message_line_at(&view(true, NOW - 3_600_000), &tz, NOW),
            format!("[lobby] (synced 13:00) bob ({fp}): hi")
        );
        assert_eq!(
            message_line_at(&view(true, NOW - 3 * 86_400_000), &tz, NOW),
            format!("[lobby] (synced 2025-04-28 14:00) bob ({fp}): hi")
        );
        let json = event_json(&Event::Message(view(true, NOW)));
        assert_eq!(json["synced"], true);
        assert_eq!(message_json(&view(false, NOW))["synced"], false);
    }

    #[test]
    fn names_show_every_invisible_character() {
        assert_eq!(visible_name("alice"), "alice");
        assert_eq!(visible_name("al\u{200D}ice"), "al\\u{200d}ice");
        assert_eq!(visible_name("ali\u{202E}ecila"), "ali\\u{202e}ecila");
        assert_eq!(visible_name("a\nb\tc"), "a\\u{a}b\\u{9}c");
    }

    fn has_no_controls(s: &str) -> bool {
        !s.chars()
            .any(|c| (c.is_control() && c != '\n') || is_bidi_control(c))
    }

    proptest! {
        #[test]
        fn visible_text_has_no_controls(s in "\\PC{0,40}|.{0,40}|[\\x00-\\x20\\u{7f}-\\u{a0}\\u{200b}-\\u{206f}a]{0,40}") {
            let out = visible_text(&s);
            prop_assert!(has_no_controls(&out), "{:?} -> {:?}", s, out);
            // A line break only ever starts an indented continuation line.
            for line in out.split('\n').skip(1) {
                prop_assert!(line.starts_with(CONTINUATION), "{:?}", out);
            }
        }

        #[test]
        fn visible_name_has_no_invisible_characters(s in "\\PC{0,40}|.{0,40}|[\\x00-\\x20\\u{7f}-\\u{a0}\\u{200b}-\\u{206f}a]{0,40}") {
            let out = visible_name(&s);
            prop_assert!(!out.chars().any(|c| c.is_control() || is_invisible(c)), "{:?} -> {:?}", s, out);
        }

        #[test]
        fn clean_text_is_unchanged(s in "[a-zA-Z0-9 .,:!?éü🚀]{0,40}") {
            prop_assert_eq!(visible_text(&s), s.as_str());
            prop_assert_eq!(visible_name(&s), s.as_str());
        }
    }
}
