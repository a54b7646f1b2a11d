//! The contract holds: every command and event round-trips, the names agree with the enums,
//! and every example in `docs/JSON.md` is a command or an event, exactly as a node writes it.

use meshchat_api::*;
use serde_json::{json, Value};

fn message(own: bool) -> Message {
    Message {
        room: "lobby".into(),
        id: "ab".repeat(32),
        from: "12D3KooWA".into(),
        fingerprint: "0a1b 2c3d 4e5f 6071 8293 a4b5 c6d7 e8f9".into(),
        nick: "bob".into(),
        ts: 1_700_000_000_000,
        text: "hi \u{1F680}\n\"quoted\"".into(),
        own,
        synced: !own,
        seq: 41,
        private: None,
    }
}

fn dm(state: Option<DmState>) -> DirectMessage {
    DirectMessage {
        id: "cd".repeat(32),
        from: "12D3KooWA".into(),
        to: "12D3KooWB".into(),
        fingerprint: "f".into(),
        nick: "alice".into(),
        ts: 7,
        text: "psst".into(),
        own: state.is_some(),
        state,
    }
}

fn info() -> NodeInfo {
    NodeInfo {
        peer_id: "12D3KooWA".into(),
        fingerprint: "f".into(),
        nick: "alice".into(),
        listen: vec!["/ip4/127.0.0.1/tcp/40001".into()],
        rooms: vec!["lobby".into(), "x".into()],
        reach: Reachability::default(),
        web: None,
    }
}

fn commands() -> Vec<Command> {
    vec![
        Command::Send {
            room: "lobby".into(),
            text: "hi".into(),
        },
        Command::Join {
            room: "x".into(),
            key: None,
        },
        Command::Join {
            room: "team".into(),
            key: Some("correct horse".into()),
        },
        Command::Create {
            room: "team".into(),
        },
        Command::Invite {
            room: "team".into(),
            who: "bob".into(),
        },
        Command::Remove {
            room: "team".into(),
            who: "bob".into(),
        },
        Command::Members {
            room: "team".into(),
        },
        Command::Rooms,
        Command::Leave { room: "x".into() },
        Command::Nick { nick: "al".into() },
        Command::Connect {
            addr: "/ip4/127.0.0.1/tcp/7447".into(),
        },
        Command::Peers,
        Command::History {
            room: "x".into(),
            limit: 5,
            before: Some(Position {
                ts: 17,
                id: "ab".repeat(32),
            }),
        },
        Command::Dm {
            to: "bob".into(),
            text: "hi".into(),
        },
        Command::DmHistory {
            with: "bob".into(),
            limit: 100,
            before: None,
        },
        Command::Conversations,
        Command::Routes,
        Command::Whois { who: "bob".into() },
        Command::Who,
        Command::Tracker,
        Command::Info,
        Command::Stats,
        Command::Quit,
        Command::SendFile {
            room: Some("lobby".into()),
            to: None,
            path: "/home/a/photo.jpg".into(),
        },
        Command::SendFile {
            room: None,
            to: Some("bob".into()),
            path: "/tmp/x".into(),
        },
        Command::AcceptFile {
            id: "ab".repeat(32),
        },
        Command::CancelFile {
            id: "ab".repeat(32),
        },
        Command::Files,
    ]
}

/// Numbers the variants; a new variant does not compile until it is numbered here, and the
/// tests then want a sample of it.
fn command_index(c: &Command) -> usize {
    match c {
        Command::Send { .. } => 0,
        Command::Join { .. } => 1,
        Command::Leave { .. } => 2,
        Command::Nick { .. } => 3,
        Command::Connect { .. } => 4,
        Command::Peers => 5,
        Command::History { .. } => 6,
        Command::Dm { .. } => 7,
        Command::DmHistory { .. } => 8,
        Command::Routes => 9,
        Command::Whois { .. } => 10,
        Command::Who => 11,
        Command::Tracker => 12,
        Command::Info => 13,
        Command::Stats => 14,
        Command::Quit => 15,
        Command::Conversations => 16,
        Command::SendFile { .. } => 17,
        Command::AcceptFile { .. } => 18,
        Command::CancelFile { .. } => 19,
        Command::Files => 20,
        Command::Create { .. } => 21,
        Command::Invite { .. } => 22,
        Command::Remove { .. } => 23,
        Command::Members { .. } => 24,
        Command::Rooms => 25,
    }
}
const COMMANDS: usize = 26;

fn file(own: bool) -> File {
    File {
        id: "ab".repeat(32),
        from: "12D3KooWA".into(),
        fingerprint: "f".into(),
        nick: "alice".into(),
        name: "photo.jpg".into(),
        size: 2_345_678,
        hash: "cd".repeat(32),
        room: (!own).then(|| "lobby".into()),
        to: own.then(|| "12D3KooWB".into()),
        ts: 7,
        own,
        state: if own {
            FileState::Serving
        } else {
            FileState::Offered
        },
        bytes: 0,
        path: own.then(|| "/home/a/photo.jpg".into()),
        reason: None,
    }
}

fn events() -> Vec<Event> {
    let stats = Stats {
        accepted: 3,
        rejected: [("bad_signature".to_owned(), 2), ("over_rate".to_owned(), 9)]
            .into_iter()
            .collect(),
        tracker: ElectionStats {
            won: 1,
            unexpected: 4,
            ..Default::default()
        },
        handshakes_refused: 5,
        ..Default::default()
    };
    vec![
        Event::Ready(info()),
        Event::Message(message(false)),
        Event::PeerConnected {
            peer_id: "12D3KooWB".into(),
        },
        Event::PeerDisconnected {
            peer_id: "12D3KooWB".into(),
        },
        Event::Listening {
            addr: "/ip4/10.0.0.1/tcp/1".into(),
        },
        Event::Reachability(Reachability {
            status: "relayed".into(),
            addrs: vec!["/ip4/192.88.99.1/tcp/7447/p2p/12D3KooWR/p2p-circuit".into()],
            relays: vec!["12D3KooWR".into()],
        }),
        Event::Warning(Warning {
            message: "disk full".into(),
            kind: None,
        }),
        Event::Warning(Warning {
            message: "your clock is 2 min ahead".into(),
            kind: Some(WarningKind::Clock {
                offset_ms: -120_000,
                authors: 3,
                off: true,
            }),
        }),
        Event::Error {
            message: "no".into(),
        },
        Event::Lagged { missed: 12 },
        Event::Dm(dm(None)),
        Event::Dm(dm(Some(DmState::Queued))),
        Event::DmStatus {
            id: "cd".repeat(32),
            to: "12D3KooWB".into(),
            state: DmState::Delivered,
        },
        Event::TrackerChanged {
            tracker: None,
            epoch: 4,
            is_self: false,
        },
        Event::TrackerChanged {
            tracker: Some("12D3KooWA".into()),
            epoch: 5,
            is_self: true,
        },
        Event::Sent {
            room: "lobby".into(),
            id: "ab".repeat(32),
            relayed: true,
        },
        Event::Joined {
            room: "x".into(),
            private: None,
            by: None,
        },
        Event::Joined {
            room: "team".into(),
            private: Some("invite".into()),
            by: Some("12D3KooWB".into()),
        },
        Event::Message(Message {
            room: "team".into(),
            private: Some("passphrase".into()),
            ..message(false)
        }),
        Event::Rooms {
            rooms: vec![
                Room {
                    name: "lobby".into(),
                    private: None,
                    members: None,
                },
                Room {
                    name: "team".into(),
                    private: Some("invite".into()),
                    members: Some(3),
                },
            ],
        },
        Event::Members {
            room: "team".into(),
            members: vec![
                Member {
                    peer_id: "12D3KooWA".into(),
                    fingerprint: "f".into(),
                    nick: "alice".into(),
                    admin: true,
                },
                Member {
                    peer_id: "12D3KooWB".into(),
                    fingerprint: "g".into(),
                    nick: "bob".into(),
                    admin: false,
                },
            ],
        },
        Event::Invited {
            room: "team".into(),
            who: "bob".into(),
            peer_id: "12D3KooWB".into(),
        },
        Event::Removed {
            room: "team".into(),
            who: "bob".into(),
            peer_id: "12D3KooWB".into(),
        },
        Event::Left {
            room: "x".into(),
            was_member: false,
        },
        Event::Nick { nick: "al".into() },
        Event::Connected {
            addr: "/ip4/127.0.0.1/tcp/7447".into(),
            peer_id: "12D3KooWB".into(),
        },
        Event::Peers {
            peers: vec![
                Peer {
                    peer_id: "12D3KooWB".into(),
                    addrs: vec!["/ip4/127.0.0.1/tcp/7447".into()],
                    chat: true,
                    nick: Some("bob".into()),
                },
                Peer {
                    peer_id: "12D3KooWC".into(),
                    addrs: vec![],
                    chat: false,
                    nick: None,
                },
            ],
        },
        Event::History {
            room: "lobby".into(),
            messages: vec![message(true), message(false)],
            before: None,
        },
        Event::DmSent(DmSent {
            id: "cd".repeat(32),
            to: "12D3KooWB".into(),
            state: DmState::Sent,
        }),
        Event::DmHistory {
            with: "bob".into(),
            messages: vec![dm(Some(DmState::Failed)), dm(None)],
            before: Some(Position {
                ts: 7,
                id: "cd".repeat(32),
            }),
        },
        Event::Conversations {
            conversations: vec![Conversation {
                peer_id: "12D3KooWB".into(),
                nick: "bob".into(),
                fingerprint: "f".into(),
                last_ts: 7,
                count: 2,
            }],
        },
        Event::Routes {
            routes: vec![Route {
                dest: "12D3KooWD".into(),
                next_hop: "12D3KooWB".into(),
                hops: 3,
                age_ms: 1200,
                nick: None,
            }],
        },
        Event::Whois {
            who: "bob".into(),
            profiles: vec![Profile {
                peer_id: "12D3KooWB".into(),
                fingerprint: "f".into(),
                nick: "bob".into(),
                version: 2,
                hops: None,
                connected: false,
            }],
        },
        Event::Who {
            peers: vec![OnlinePeer {
                peer_id: "12D3KooWB".into(),
                nick: "bob".into(),
                fingerprint: "f".into(),
                addrs: vec!["/ip4/192.0.2.7/tcp/7447".into()],
                priority: Some(100),
                is_self: false,
                connected: true,
                hops: Some(1),
            }],
        },
        Event::Tracker(Tracker {
            tracker: Some("12D3KooWA".into()),
            nick: None,
            epoch: 3,
            is_self: false,
            priority: Some(100),
            registered: true,
            own_priority: None,
            online: 12,
            truncated: false,
        }),
        Event::Info(info()),
        Event::Stats(Box::new(stats)),
        Event::Unknown,
        Event::FileOffered(file(true)),
        Event::FileOffer(file(false)),
        Event::FileAccepted {
            id: "ab".repeat(32),
        },
        Event::FileProgress {
            id: "ab".repeat(32),
            bytes: 1024,
            total: 2_345_678,
        },
        Event::FileDone {
            id: "ab".repeat(32),
            path: "/home/b/Downloads/meshchat/photo.jpg".into(),
            hash: "cd".repeat(32),
        },
        Event::FileFailed {
            id: "ab".repeat(32),
            reason: "no space: needs 2.2 MiB, 1.0 MiB free".into(),
        },
        Event::FileCancelled {
            id: "ab".repeat(32),
        },
        Event::Files {
            files: vec![file(true), file(false)],
        },
    ]
}

fn event_index(e: &Event) -> usize {
    match e {
        Event::Ready(_) => 0,
        Event::Message(_) => 1,
        Event::PeerConnected { .. } => 2,
        Event::PeerDisconnected { .. } => 3,
        Event::Listening { .. } => 4,
        Event::Warning(_) => 5,
        Event::Error { .. } => 6,
        Event::Lagged { .. } => 7,
        Event::Dm(_) => 8,
        Event::DmStatus { .. } => 9,
        Event::TrackerChanged { .. } => 10,
        Event::Sent { .. } => 11,
        Event::Joined { .. } => 12,
        Event::Left { .. } => 13,
        Event::Nick { .. } => 14,
        Event::Connected { .. } => 15,
        Event::Peers { .. } => 16,
        Event::History { .. } => 17,
        Event::DmSent(_) => 18,
        Event::DmHistory { .. } => 19,
        Event::Routes { .. } => 20,
        Event::Whois { .. } => 21,
        Event::Who { .. } => 22,
        Event::Tracker(_) => 23,
        Event::Info(_) => 24,
        Event::Stats(_) => 25,
        Event::Conversations { .. } => 26,
        Event::FileOffered(_) => 27,
        Event::FileOffer(_) => 28,
        Event::FileAccepted { .. } => 29,
        Event::FileProgress { .. } => 30,
        Event::FileDone { .. } => 31,
        Event::FileFailed { .. } => 32,
        Event::FileCancelled { .. } => 33,
        Event::Files { .. } => 34,
        Event::Rooms { .. } => 35,
        Event::Members { .. } => 36,
        Event::Invited { .. } => 37,
        Event::Removed { .. } => 38,
        Event::Reachability(_) => 39,
        // Last: the docs show every event but this one.
        Event::Unknown => 40,
    }
}
const EVENTS: usize = 41;

#[test]
fn every_command_round_trips() {
    let samples = commands();
    let mut seen: Vec<usize> = samples.iter().map(command_index).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, (0..COMMANDS).collect::<Vec<_>>(), "a sample of each");
    for c in samples {
        let line = c.to_line();
        assert_eq!(Command::from_line(&line), Ok(c.clone()), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(
            Command::NAMES.contains(&v["cmd"].as_str().unwrap()),
            "{line}"
        );
    }
}

#[test]
fn every_event_round_trips() {
    let samples = events();
    let mut seen: Vec<usize> = samples.iter().map(event_index).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, (0..EVENTS).collect::<Vec<_>>(), "a sample of each");
    for e in samples {
        let line = e.to_line();
        assert_eq!(Event::from_line(&line).unwrap(), e, "{line}");
        assert_eq!(serde_json::to_string(&e).unwrap().len(), line.len());
        assert!(!line.contains('\n'));
    }
}

#[test]
fn command_names_are_the_variants() {
    for name in Command::NAMES {
        // A known name fails, if at all, on its fields.
        match Command::from_line(&json!({ "cmd": name }).to_string()) {
            Ok(_) | Err(CommandError::Fields { .. }) => {}
            Err(e) => panic!("{name}: {e}"),
        }
    }
    assert_eq!(
        Command::from_line(r#"{"cmd":"id"}"#),
        Ok(Command::Info),
        "the alias"
    );
}

#[test]
fn bad_commands_say_what_is_wrong() {
    let err = |line: &str| Command::from_line(line).unwrap_err().to_string();
    assert!(err("this is not json").starts_with("invalid JSON: "));
    assert_eq!(err(r#"{"room":"x"}"#), r#"missing string field "cmd""#);
    assert_eq!(err(r#"{"cmd":5}"#), r#"missing string field "cmd""#);
    assert_eq!(err("[1]"), r#"missing string field "cmd""#);
    let unknown = err(r#"{"cmd":"fly"}"#);
    assert!(
        unknown.starts_with(r#"unknown command "fly" (known: send, join,"#),
        "{unknown}"
    );
    assert_eq!(
        err(r#"{"cmd":"send","room":"lobby"}"#),
        r#"bad "send" command: missing field `text`"#
    );
    assert!(err(r#"{"cmd":"join","room":5}"#).starts_with(r#"bad "join" command: invalid type"#));
    assert!(err(r#"{"cmd":"history","room":"x","limit":-1}"#).starts_with(r#"bad "history""#));
}

#[test]
fn commands_take_defaults_and_ignore_unknown_fields() {
    assert_eq!(
        Command::from_line(r#"{"cmd":"history","room":"x"}"#),
        Ok(Command::History {
            room: "x".into(),
            limit: DEFAULT_HISTORY_LIMIT,
            before: None,
        })
    );
    assert_eq!(
        Command::from_line(r#"{"cmd":"peers","please":true}"#),
        Ok(Command::Peers)
    );
    assert_eq!(
        Command::from_line(r#"{"cmd":"dm_history","with":"bob","limit":7,"x":[1]}"#),
        Ok(Command::DmHistory {
            with: "bob".into(),
            limit: 7,
            before: None,
        })
    );
}

#[test]
fn new_events_and_fields_do_not_break_readers() {
    assert_eq!(
        Event::from_line(r#"{"event":"something_new","x":[1,2]}"#).unwrap(),
        Event::Unknown
    );
    let e = Event::from_line(r#"{"event":"joined","room":"x","since":5}"#).unwrap();
    assert_eq!(
        e,
        Event::Joined {
            room: "x".into(),
            private: None,
            by: None
        }
    );
    // A public room's `joined` and `message` carry no `private`, nor `by`: as before.
    let line = Event::Joined {
        room: "x".into(),
        private: None,
        by: None,
    }
    .to_line();
    assert_eq!(line, r#"{"event":"joined","room":"x"}"#);
    assert!(!Event::Message(message(true)).to_line().contains("private"));
    // `join` without a key is the join it always was.
    assert_eq!(
        Command::from_line(r#"{"cmd":"join","room":"x"}"#),
        Ok(Command::Join {
            room: "x".into(),
            key: None
        })
    );
    assert_eq!(
        Command::Join {
            room: "x".into(),
            key: None
        }
        .to_line(),
        r#"{"cmd":"join","room":"x"}"#
    );
    // A warning of a kind this version does not know keeps its message.
    let e = Event::from_line(r#"{"event":"warning","kind":"disk","free":0,"message":"m"}"#);
    assert_eq!(
        e.unwrap(),
        Event::Warning(Warning {
            message: "m".into(),
            kind: None
        })
    );
}

#[test]
fn lines_have_sorted_keys() {
    // As JSON mode has always written them (through `serde_json::Value`).
    let line = Event::Tracker(Tracker {
        tracker: None,
        nick: None,
        epoch: 1,
        is_self: false,
        priority: None,
        registered: false,
        own_priority: Some(100),
        online: 0,
        truncated: false,
    })
    .to_line();
    assert_eq!(
        line,
        r#"{"epoch":1,"event":"tracker","nick":null,"online":0,"own_priority":100,"priority":null,"registered":false,"self":false,"tracker":null,"truncated":false}"#
    );
    let clock = Event::Warning(Warning {
        message: "m".into(),
        kind: Some(WarningKind::Clock {
            offset_ms: 61_000,
            authors: 2,
            off: true,
        }),
    });
    assert_eq!(
        clock.to_line(),
        r#"{"authors":2,"event":"warning","kind":"clock","message":"m","off":true,"offset_ms":61000}"#
    );
    let v: Value = serde_json::from_str(&Event::Stats(Box::default()).to_line()).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 61, "{v}");
    assert_eq!(v["nat"].as_object().unwrap().len(), 7, "{v}");
    assert_eq!(v["tracker"].as_object().unwrap().len(), 18, "{v}");
}

/// The JSON examples of `docs/JSON.md`: code spans that start with `{"cmd"` or `{"event"`,
/// every line of a `sh` block that starts with `{`, and every `json` block as a whole.
fn doc_examples(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<(String, String)> = None;
    for line in doc.lines() {
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            block = match block.take() {
                None => Some((lang.to_owned(), String::new())),
                Some((lang, text)) => {
                    if lang == "json" {
                        out.push(text);
                    }
                    None
                }
            };
            continue;
        }
        match &mut block {
            Some((lang, text)) if lang == "json" => {
                text.push_str(line);
                text.push('\n');
            }
            Some(_) => {
                if line.starts_with('{') {
                    out.push(line.to_owned());
                }
            }
            None => {
                for (i, span) in line.split('`').enumerate() {
                    if i % 2 == 1
                        && (span.starts_with("{\"cmd\"") || span.starts_with("{\"event\""))
                    {
                        out.push(span.to_owned());
                    }
                }
            }
        }
    }
    out
}

#[test]
fn the_docs_examples_are_commands_and_events() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/JSON.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let examples = doc_examples(&doc);
    let (mut commands, mut events) = (Vec::new(), Vec::new());
    for text in &examples {
        let v: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("docs/JSON.md: not JSON ({e}): {text}"));
        // Exactly what the parsed value writes back: no field missing, none unknown, none of
        // the wrong type.
        if v.get("cmd").is_some() {
            let c =
                Command::from_line(text).unwrap_or_else(|e| panic!("docs/JSON.md: {e}: {text}"));
            assert_eq!(serde_json::to_value(&c).unwrap(), v, "docs/JSON.md: {text}");
            commands.push(command_index(&c));
        } else {
            let e = Event::from_line(text)
                .unwrap_or_else(|e| panic!("docs/JSON.md: not an event ({e}): {text}"));
            assert_ne!(e, Event::Unknown, "docs/JSON.md: unknown event: {text}");
            assert_eq!(serde_json::to_value(&e).unwrap(), v, "docs/JSON.md: {text}");
            events.push(event_index(&e));
        }
    }
    // The doc shows every command and every event.
    for (seen, n, what) in [
        (&mut commands, COMMANDS, "command"),
        (&mut events, EVENTS - 1, "event"),
    ] {
        seen.sort();
        seen.dedup();
        let missing: Vec<usize> = (0..n).filter(|i| !seen.contains(i)).collect();
        assert!(
            missing.is_empty(),
            "docs/JSON.md shows no {what} numbered {missing:?}"
        );
    }
}

#[test]
fn a_passphrase_is_a_plain_string_on_the_wire_and_hidden_in_debug() {
    let line = r#"{"cmd":"join","room":"harbor","key":"violet kettle drums"}"#;
    let cmd = Command::from_line(line).unwrap();
    assert_eq!(cmd.to_line(), line);
    let shown = format!("{cmd:?}");
    assert!(!shown.contains("violet"), "{shown}");
    assert!(shown.contains("harbor"), "{shown}");
}

#[test]
fn a_stats_line_of_an_older_node_reads_its_missing_counters_as_zero() {
    // What the gossipsub-era node (before the trees, the tracker and routing) answered.
    let line = r#"{"event":"stats","accepted":5,"verified":6,"duplicates":7,"rejected":{},
        "stored":5,"published":1,"copies_received":12,"blocked_peers":0,"relayed_unknown":0,
        "broken_links":0,"evicted_peers":0,"synced":0,"sync_rounds":2,"sync_bytes_sent":10,
        "sync_bytes_received":20,"sync_strikes":0,"store_failures":0}"#;
    let Event::Stats(s) = serde_json::from_str::<Event>(line).unwrap() else {
        panic!("not a stats event");
    };
    assert_eq!((s.accepted, s.copies_received, s.sync_rounds), (5, 12, 2));
    assert_eq!((s.delivered_pushed, s.delivered_grafted), (0, 0));
    assert_eq!(s.tracker, ElectionStats::default());
}
