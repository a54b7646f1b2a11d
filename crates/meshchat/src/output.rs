//! Renderings of node data for people: line mode's lines and the summaries the TUI shares with
//! it. (JSON mode writes the typed API instead: [`crate::api`].)
//!
//! Line mode prints what other people chose to send straight onto a terminal, so every nick,
//! room name and text goes through [`visible_text`] or [`visible_name`] first; JSON mode keeps
//! text exact (its escaping already keeps control characters off the script's terminal).

use std::borrow::Cow;

use chrono::TimeZone;

use meshchat_core::room::{is_bidi_control, is_format, is_invisible};
use meshchat_node::{
    DmView, MessageView, Multiaddr, OnlinePeer, PeerId, Reach, ReachView, TrackerView,
};

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

/// How others reach this node, in a sentence (`/id`, line mode's `*` lines, the interface's
/// notices): `reachable: relayed by 2 relays (behind a NAT; hole punching makes direct
/// connections)`.
pub fn reach_text(r: &ReachView) -> String {
    let relays = match r.relays.len() {
        1 => "1 relay".to_owned(),
        n => format!("{n} relays"),
    };
    match r.reach {
        Reach::Unknown => "reachability: not known yet (no peer has tested it)".into(),
        Reach::Public if r.addrs.is_empty() => "reachable: public (a peer dialed it back)".into(),
        Reach::Public => format!("reachable: public, at {}", addrs(&r.addrs)),
        Reach::Mapped => format!(
            "reachable: through a port mapping on the router (UPnP), at {}",
            addrs(&r.addrs)
        ),
        Reach::Relayed => format!(
            "reachable: behind a NAT, through {relays} (direct connections by hole punching)"
        ),
        Reach::Private => {
            "reachable: not from outside: behind a NAT, no relay yet (outgoing connections only)"
                .into()
        }
    }
}

/// The status bar's word for it; `None` while not known.
pub fn reach_word(r: Reach) -> Option<&'static str> {
    match r {
        Reach::Unknown => None,
        Reach::Public => Some("public"),
        Reach::Mapped => Some("mapped (UPnP)"),
        Reach::Relayed => Some("relayed"),
        Reach::Private => Some("behind NAT"),
    }
}

/// What `/tracker` says (line mode after `* `, the interface as a notice and in `/who`):
/// `tracker: NAME — priority 100, epoch 7; registered, 3 online; your priority 100`. `name`
/// calls the tracker, already made safe for where it is shown (`None`: its peer id).
pub fn tracker_summary(t: &TrackerView, name: Option<&str>) -> String {
    let me = match t.own_priority {
        Some(p) => format!("your priority {p}"),
        None => "you never become it (--no-tracker)".to_owned(),
    };
    let rank = match t.priority {
        Some(p) => format!("priority {p}, epoch {}", t.epoch),
        None => format!("epoch {}", t.epoch),
    };
    let online = match (t.online, t.truncated) {
        (n, true) => format!("{n} online listed (the list was cut: more are)"),
        (n, false) => format!("{n} online"),
    };
    match t.tracker {
        None => format!("tracker: none, electing (epoch {}); {me}", t.epoch),
        Some(_) if t.is_self => format!("tracker: this node — {rank}; {online}"),
        Some(peer) => {
            let registered = if t.registered {
                "registered"
            } else {
                "not registered yet"
            };
            let name = name.map_or_else(|| peer.to_string(), str::to_owned);
            format!("tracker: {name} — {rank}; {registered}, {online}; {me}")
        }
    }
}

/// The `[tracker]` line of a [`meshchat_node::Event::TrackerChanged`] in line mode; `nick` (already made
/// safe) names the new tracker when known, with its short fingerprint as messages show it.
pub fn tracker_changed_line(
    tracker: Option<PeerId>,
    epoch: u64,
    is_self: bool,
    nick: Option<&str>,
) -> String {
    let fingerprint = |peer: &PeerId| {
        meshchat_node::key_of_peer_id(peer)
            .map(|k| meshchat_core::Fingerprint::of_key_bytes(&k).short())
    };
    match tracker {
        _ if is_self => format!("[tracker] this node is the tracker (epoch {epoch})"),
        None => format!("[tracker] none: electing (epoch {epoch})"),
        Some(peer) => match (nick, fingerprint(&peer)) {
            (Some(n), Some(fp)) => format!("[tracker] now {n} ({fp}) (epoch {epoch})"),
            _ => format!("[tracker] now {peer} (epoch {epoch})"),
        },
    }
}

/// One line of `/who` in line mode (after `* `): nick, short fingerprint, how far, and marks
/// for this node and the tracker.
pub fn who_line(p: &OnlinePeer, tracker: Option<PeerId>) -> String {
    let reach = match (p.is_self, p.hops, p.connected) {
        (true, _, _) => "this node".to_owned(),
        (_, Some(1), _) | (_, None, true) => "connected".to_owned(),
        (_, Some(h), true) => format!("connected, {h} hops"),
        (_, Some(h), false) => format!("{h} hops"),
        (_, None, false) => "no route now".to_owned(),
    };
    let mut marks = String::new();
    if p.is_self {
        marks.push_str(" (you)");
    }
    if tracker == Some(p.peer_id) {
        marks.push_str(" (tracker)");
    }
    format!(
        "{} ({}) {reach}{marks}",
        visible_name(&p.nick),
        p.fingerprint.short()
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

/// The mark before a private room's name (PROTOCOL §10), in line mode and the full-screen
/// interface.
pub const LOCK: &str = "🔒";

/// A message as line mode prints it: `[room] nick (fp): text` (`[🔒room]` in a private room), continuation lines indented
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
        "[{}{}] {synced}{} ({}): {}",
        if m.private.is_some() { LOCK } else { "" },
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

/// What to tell a person about this computer's clock ([`meshchat_node::Event::Clock`]): every interface says
/// the same.
pub use meshchat_core::clock::notice as clock_text;

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
            private: None,
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
        let mut private = view(false, NOW);
        private.private = Some(meshchat_node::PrivateKind::Invite);
        assert_eq!(
            message_line_at(&private, &tz, NOW),
            format!("[🔒lobby] bob ({fp}): hi")
        );
        assert_eq!(
            message_line_at(&view(true, NOW - 3_600_000), &tz, NOW),
            format!("[lobby] (synced 13:00) bob ({fp}): hi")
        );
        assert_eq!(
            message_line_at(&view(true, NOW - 3 * 86_400_000), &tz, NOW),
            format!("[lobby] (synced 2025-04-28 14:00) bob ({fp}): hi")
        );
    }

    #[test]
    fn names_show_every_invisible_character() {
        assert_eq!(visible_name("alice"), "alice");
        assert_eq!(visible_name("al\u{200D}ice"), "al\\u{200d}ice");
        assert_eq!(visible_name("ali\u{202E}ecila"), "ali\\u{202e}ecila");
        assert_eq!(visible_name("a\nb\tc"), "a\\u{a}b\\u{9}c");
    }

    fn online(n: u8, nick: &str, hops: Option<u16>, connected: bool) -> OnlinePeer {
        let key = meshchat_core::Keypair::from_secret_bytes(&[n; 32]);
        OnlinePeer {
            peer_id: meshchat_node::peer_id_of(&key.public()),
            nick: nick.into(),
            fingerprint: key.public().fingerprint(),
            addrs: vec!["/ip4/192.0.2.7/tcp/7447".into()],
            priority: (n != 3).then_some(100),
            is_self: n == 1,
            connected,
            hops,
        }
    }

    fn tracker_view(tracker: Option<&OnlinePeer>) -> TrackerView {
        TrackerView {
            tracker: tracker.map(|p| p.peer_id),
            nick: tracker.map(|p| p.nick.clone()),
            epoch: 4,
            priority: tracker.and_then(|p| p.priority),
            is_self: tracker.is_some_and(|p| p.is_self),
            registered: tracker.is_some(),
            own_priority: Some(100),
            online: 3,
            truncated: false,
        }
    }

    #[test]
    fn who_and_tracker_lines() {
        let me = online(1, "alice", Some(0), false);
        let bob = online(2, "bob\u{1b}[2J", Some(1), true);
        let carol = online(3, "carol", Some(3), false);
        let dave = online(4, "dave", None, false);
        let fp = |p: &OnlinePeer| p.fingerprint.short();
        assert_eq!(
            who_line(&me, Some(me.peer_id)),
            format!("alice ({}) this node (you) (tracker)", fp(&me))
        );
        assert_eq!(
            who_line(&bob, Some(me.peer_id)),
            format!("bob\\u{{1b}}[2J ({}) connected", fp(&bob))
        );
        assert_eq!(
            who_line(&carol, Some(carol.peer_id)),
            format!("carol ({}) 3 hops (tracker)", fp(&carol))
        );
        assert_eq!(
            who_line(&dave, None),
            format!("dave ({}) no route now", fp(&dave))
        );

        let t = tracker_view(Some(&carol));
        assert_eq!(
            tracker_summary(&t, Some("carol")),
            "tracker: carol — epoch 4; registered, 3 online; your priority 100"
        );
        let t = tracker_view(Some(&bob));
        assert_eq!(
            tracker_summary(&t, None),
            format!(
                "tracker: {} — priority 100, epoch 4; registered, 3 online; your priority 100",
                bob.peer_id
            )
        );
        let mut t = tracker_view(Some(&me));
        t.truncated = true;
        assert_eq!(
            tracker_summary(&t, None),
            "tracker: this node — priority 100, epoch 4; 3 online listed (the list was cut: more are)"
        );
        let mut t = tracker_view(None);
        t.own_priority = None;
        assert_eq!(
            tracker_summary(&t, None),
            "tracker: none, electing (epoch 4); you never become it (--no-tracker)"
        );

        assert_eq!(
            tracker_changed_line(None, 3, false, None),
            "[tracker] none: electing (epoch 3)"
        );
        assert_eq!(
            tracker_changed_line(Some(me.peer_id), 4, true, None),
            "[tracker] this node is the tracker (epoch 4)"
        );
        let id = carol.peer_id.to_string();
        assert_eq!(
            tracker_changed_line(Some(carol.peer_id), 5, false, Some("carol")),
            format!("[tracker] now carol ({}) (epoch 5)", fp(&carol))
        );
        assert_eq!(
            tracker_changed_line(Some(carol.peer_id), 5, false, None),
            format!("[tracker] now {id} (epoch 5)")
        );
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
