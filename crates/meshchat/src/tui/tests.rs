//! Screens rendered into ratatui's `TestBackend` and compared with the committed snapshots in
//! `snapshots/` (`INSTA_UPDATE=always cargo test -p meshchat` rewrites them), plus one run of
//! the real event loop against a real node.

use chrono::FixedOffset;
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use meshchat_core::{Keypair, MessageId};
use meshchat_node::{Event, MessageView, NodeInfo, PeerId, PeerInfo};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

use super::app::{Action, App, Clock, HistoryFor, PeersFor, Reply};
use super::render;

pub mod fixtures {
    use super::*;

    /// 2025-05-01 12:00:00 UTC, "now" in every test.
    pub const NOW_MS: u64 = 1_746_100_800_000;

    pub fn key(n: u8) -> Keypair {
        Keypair::from_secret_bytes(&[n; 32])
    }

    pub fn peer(n: u8) -> PeerId {
        meshchat_node::peer_id_of(&key(n).public())
    }

    /// Alice (key 1) in `rooms`, times in UTC.
    pub fn app(rooms: &[&str]) -> App {
        let me = key(1);
        let info = NodeInfo {
            peer_id: peer(1),
            fingerprint: me.public().fingerprint(),
            nick: "alice".into(),
            listen: vec!["/ip4/127.0.0.1/tcp/7447".parse().expect("static address")],
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
            reach: Default::default(),
            new_identity: false,
            seq_at_start: 0,
        };
        let mut app = App::new(&info, Clock::fixed(utc(), NOW_MS));
        // Answer the first-page requests with empty rooms.
        for a in app.take_actions() {
            if let Action::History { room, limit, .. } = a {
                app.on_reply(Reply::History {
                    room,
                    limit,
                    purpose: HistoryFor::Initial,
                    result: Ok(Vec::new()),
                    states: Vec::new(),
                });
            }
        }
        app
    }

    pub fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).expect("zero offset")
    }

    /// Message number `n` (its id and time derive from it: `n` minutes before now).
    pub fn msg(n: u64, room: &str, author: u8, nick: &str, text: &str) -> MessageView {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&n.to_be_bytes());
        MessageView {
            private: None,
            id: MessageId(id),
            room: room.into(),
            author: peer(author),
            fingerprint: key(author).public().fingerprint(),
            nick: nick.into(),
            timestamp_ms: NOW_MS - 3_600_000 + n * 60_000,
            text: text.into(),
            own: author == 1,
            synced: false,
            seq: 0,
        }
    }

    pub fn deliver(app: &mut App, m: MessageView) {
        app.on_node_event(Event::Message(m));
    }

    pub fn press(app: &mut App, code: KeyCode) {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    pub fn ctrl(app: &mut App, c: char) {
        app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
    }

    pub fn alt(app: &mut App, code: KeyCode) {
        app.on_key(KeyEvent::new(code, KeyModifiers::ALT));
    }

    pub fn type_str(app: &mut App, s: &str) {
        for c in s.chars() {
            press(app, KeyCode::Char(c));
        }
    }

    pub fn render(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut t = Terminal::new(TestBackend::new(width, height)).expect("test backend");
        t.draw(|f| render::draw(f, app))
            .expect("test backend draws");
        t
    }
}

use fixtures::*;

/// A conversation with a bit of everything.
fn conversation() -> App {
    let mut app = app(&["lobby", "dev", "random"]);
    deliver(&mut app, msg(1, "lobby", 2, "bob", "morning all"));
    deliver(
        &mut app,
        msg(2, "lobby", 1, "alice", "hi bob! the build is green again"),
    );
    deliver(
        &mut app,
        msg(
            3,
            "lobby",
            3,
            "carol",
            "did anyone look at the relay numbers? the chain of five nodes held up well, \
             and the late messages landed where they belong",
        ),
    );
    app.on_node_event(Event::PeerConnected { peer_id: peer(3) });
    deliver(
        &mut app,
        msg(5, "lobby", 2, "bob", "alice: yes, see the bench page"),
    );
    deliver(&mut app, msg(6, "dev", 2, "bob", "PR is up"));
    deliver(
        &mut app,
        msg(7, "dev", 3, "carol", "alice, can you review?"),
    );
    deliver(&mut app, msg(8, "random", 3, "carol", "🎉"));
    // A late message: older than the last one shown, it sorts in place.
    deliver(
        &mut app,
        msg(
            4,
            "lobby",
            3,
            "carol",
            "(late) and the tracker election too",
        ),
    );
    app.on_node_event(Event::Warning("could not store messages: disk full".into()));
    type_str(&mut app, "hello wor");
    app
}

#[test]
fn main_screen() {
    let app = conversation();
    let t = render(&app, 100, 20);
    insta::assert_snapshot!(t.backend());
    // Own messages stand out: alice's nick is drawn in the own-nick colour.
    let buf = t.backend().buffer();
    let own_row = (0..20)
        .find(|&y| {
            (0..100)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .contains("hi bob!")
        })
        .expect("own message on screen");
    let nick_cell = (0..100)
        .find(|&x| buf[(x, own_row)].symbol() == "a" && buf[(x + 1, own_row)].symbol() == "l")
        .expect("nick drawn");
    assert_eq!(buf[(nick_cell, own_row)].fg, Color::Cyan);
    // Notices are dimmed, errors red.
    let notice_row = (0..20)
        .find(|&y| {
            (0..100)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .contains("peer connected")
        })
        .expect("notice on screen");
    let x = (0..100)
        .find(|&x| buf[(x, notice_row)].symbol() == "p")
        .expect("notice text");
    assert_eq!(buf[(x, notice_row)].fg, Color::DarkGray);
}

#[test]
fn narrow_terminal() {
    let app = conversation();
    insta::assert_snapshot!(render(&app, 40, 16).backend());
}

#[test]
fn unicode_wraps() {
    let mut app = app(&["lobby"]);
    let texts = [
        "日本語のテキストはとても長くなることがあります。折り返しは二セル幅の文字を割りません。",
        "emoji 🚀🎉👨‍👩‍👧 and flags 🇫🇷🇯🇵 take two cells each, the family too",
        "combining: e\u{301}te\u{301} cafe\u{301} n\u{303}and\u{fa} — a\u{30a}ngstro\u{308}m",
        "averyveryverylongwordwithoutanyspacesthatmustbebrokenacrossrowsbecauseitcannotfit",
        "two lines\nin one message",
        "escape \u{1b}[2J and bidi \u{202e}reversed are shown harmless",
    ];
    for (i, t) in texts.iter().enumerate() {
        deliver(&mut app, msg(i as u64 + 1, "lobby", 2, "bob", t));
    }
    insta::assert_snapshot!(render(&app, 60, 24).backend());
}

#[test]
fn help_overlay() {
    let mut app = conversation();
    press(&mut app, KeyCode::F(1));
    insta::assert_snapshot!(render(&app, 100, 34).backend());
}

#[test]
fn help_overlay_scrolls_when_short() {
    let mut app = conversation();
    press(&mut app, KeyCode::F(1));
    let _ = render(&app, 60, 14);
    press(&mut app, KeyCode::PageDown);
    insta::assert_snapshot!(render(&app, 60, 14).backend());
}

#[test]
fn peers_and_whois_panels() {
    let mut app = conversation();
    // A second key that also calls itself bob: shown with fingerprints.
    deliver(&mut app, msg(9, "lobby", 4, "bob", "I am the other bob"));
    let peers = vec![
        PeerInfo {
            peer_id: peer(2),
            addrs: vec!["/ip4/192.0.2.7/tcp/7447".parse().expect("address")],
            chat: true,
            nick: None,
        },
        PeerInfo {
            peer_id: peer(5),
            addrs: vec!["/ip4/192.0.2.9/udp/7447/quic-v1".parse().expect("address")],
            chat: false,
            nick: None,
        },
    ];
    app.on_reply(Reply::Peers {
        purpose: PeersFor::Panel,
        result: Ok(peers.clone()),
    });
    insta::assert_snapshot!("peers_panel", render(&app, 90, 24).backend());
    press(&mut app, KeyCode::Esc);
    ctrl(&mut app, 'u');
    type_str(&mut app, "/whois bob");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.take_actions(),
        [Action::Whois {
            query: "bob".into()
        }]
    );
    // One bob's profile reached the node (a neighbour), the other's did not.
    app.on_reply(Reply::Whois {
        query: "bob".into(),
        peers: Ok(peers),
        profiles: Ok(vec![meshchat_node::ProfileView {
            peer_id: peer(2),
            fingerprint: key(2).public().fingerprint(),
            nick: "bob".into(),
            version: 3,
            hops: Some(1),
            connected: true,
        }]),
    });
    insta::assert_snapshot!("whois_panel", render(&app, 90, 24).backend());
    press(&mut app, KeyCode::Esc);
    insta::assert_snapshot!("nick_collision", render(&app, 90, 24).backend());
}

#[test]
fn id_panel_and_addresses_in_status() {
    let mut app = conversation();
    type_str(&mut app, "/id");
    // The typed text is kept; clear it first.
    ctrl(&mut app, 'u');
    type_str(&mut app, "/id");
    press(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("id_panel", render(&app, 100, 20).backend());
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::F(2));
    let t = render(&app, 100, 20);
    let status = (0..100)
        .map(|x| t.backend().buffer()[(x, 18)].symbol().to_owned())
        .collect::<String>();
    assert!(status.contains("/ip4/127.0.0.1/tcp/7447"), "{status}");
}

#[test]
fn scrolled_view_and_multiline_input() {
    let mut app = app(&["lobby"]);
    for n in 1..=40 {
        deliver(
            &mut app,
            msg(n, "lobby", 2, "bob", &format!("message number {n}")),
        );
    }
    let _ = render(&app, 70, 16);
    press(&mut app, KeyCode::PageUp);
    deliver(&mut app, msg(41, "lobby", 3, "carol", "new while scrolled"));
    deliver(&mut app, msg(42, "lobby", 3, "carol", "and another"));
    app.on_terminal(TermEvent::Paste("first line\r\nsecond line\nthird".into()));
    insta::assert_snapshot!(render(&app, 70, 16).backend());
}

/// Messages that history sync brought in late sort where their author time puts them, are marked
/// with ┆, and one notice per room says how many came. A nick never shows an invisible
/// character: the look-alike of alice shows U+FFFD (and fingerprints).
#[test]
fn synced_messages_are_marked_and_announced() {
    let mut app = app(&["lobby", "dev"]);
    deliver(&mut app, msg(20, "lobby", 2, "bob", "back online"));
    deliver(&mut app, msg(21, "lobby", 1, "alice", "welcome back"));
    let late = [
        (3, "lobby", 3, "carol", "did the build pass?"),
        (5, "lobby", 2, "bob", "it did, twice"),
        (7, "lobby", 4, "al\u{200B}ice", "I am alice too"),
        (9, "dev", 3, "carol", "and dev is quiet"),
    ];
    for (n, room, author, nick, text) in late {
        let mut m = msg(n, room, author, nick, text);
        m.synced = true;
        deliver(&mut app, m.clone());
        // Never twice.
        deliver(&mut app, m);
    }
    let t = render(&app, 100, 14);
    insta::assert_snapshot!(t.backend());
    let screen = screen_text(&t);
    assert!(!screen.contains('\u{200B}'), "{screen}");
    assert!(screen.contains("al\u{FFFD}ice"), "{screen}");
    assert!(
        screen.contains("3 earlier messages arrived while you were away"),
        "{screen}"
    );
    assert_eq!(screen.matches("it did, twice").count(), 1, "{screen}");
    assert_eq!(app.rooms[1].unread, 1);
    alt(&mut app, KeyCode::Char('2'));
    let screen = screen_text(&render(&app, 100, 14));
    assert!(
        screen.contains("1 earlier message arrived while you were away"),
        "{screen}"
    );
}

#[test]
fn tiny_terminal_does_not_panic() {
    let app = conversation();
    for (w, h) in [(1, 1), (10, 3), (16, 4), (20, 5), (200, 2)] {
        let _ = render(&app, w, h);
    }
}

/// The real event loop against a real node: type a line, see it come back as a message, quit.
/// A key queue for the event loop with `line` typed and Enter pressed; the sender stays open
/// for more keys.
async fn typed_line(
    line: &str,
) -> (
    tokio::sync::mpsc::Sender<std::io::Result<TermEvent>>,
    impl futures::Stream<Item = std::io::Result<TermEvent>>,
) {
    let (key_tx, mut key_rx) = tokio::sync::mpsc::channel::<std::io::Result<TermEvent>>(64);
    let keys = futures::stream::poll_fn(move |cx| key_rx.poll_recv(cx));
    let enter = std::iter::once(KeyCode::Enter);
    for code in line.chars().map(KeyCode::Char).chain(enter) {
        key_tx
            .send(Ok(TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))))
            .await
            .expect("queue key");
    }
    (key_tx, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_loop_sends_and_shows() {
    use std::time::Duration;

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = meshchat_node::Config::loopback(dir.path());
    config.in_memory_store = true;
    let (handle, events) = meshchat_node::spawn(config).await.expect("node starts");
    let info = handle.info().await.expect("info");
    let mut app = App::new(&info, Clock::fixed(utc(), NOW_MS));
    let (key_tx, keys) = typed_line("hello loop").await;
    let mut terminal = Terminal::new(TestBackend::new(80, 12)).expect("test backend");
    let mut seen = false;
    let quit_tx = key_tx.clone();
    let run = super::term::event_loop(
        &mut terminal,
        &mut app,
        keys,
        handle.clone(),
        events,
        |app| {
            if !seen
                && app
                    .room()
                    .entries()
                    .iter()
                    .any(|e| e.text() == "hello loop")
            {
                seen = true;
                let _ = quit_tx.try_send(Ok(TermEvent::Key(KeyEvent::new(
                    KeyCode::Char('c'),
                    KeyModifiers::CONTROL,
                ))));
            }
        },
    );
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the loop ends after Ctrl+C")
        .expect("the loop runs without error");
    let screen = terminal.backend().to_string();
    assert!(screen.contains("hello loop"), "{screen}");
    handle.shutdown().await;
}

/// The real event loop and two real nodes: `/msg` opens the conversation, the DM is marked
/// until its receipt comes back, and the answer appears in the same conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_loop_direct_messages_between_real_nodes() {
    use std::time::Duration;

    let node = |dir: &std::path::Path, nick: &str, peers: Vec<meshchat_node::Multiaddr>| {
        let mut config = meshchat_node::Config::loopback(dir);
        config.in_memory_store = true;
        config.nick = Some(nick.to_owned());
        config.peers = peers;
        config.target_peers = 0;
        config.dht = false;
        config
    };
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    );
    let (alice, alice_events) = meshchat_node::spawn(node(dir_a.path(), "alice", Vec::new()))
        .await
        .expect("node starts");
    let info = alice.info().await.expect("info");
    let addr: meshchat_node::Multiaddr = format!("{}/p2p/{}", info.listen[0], info.peer_id)
        .parse()
        .expect("address");
    let (bob, mut bob_events) = meshchat_node::spawn(node(dir_b.path(), "bob", vec![addr]))
        .await
        .expect("node starts");
    let bob_id = bob.info().await.expect("info").peer_id;
    // Alice's node knows bob's profile and a route to him.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while alice.whois(&bob_id.to_string()).await.is_err()
        || !alice
            .routes()
            .await
            .expect("routes")
            .iter()
            .any(|r| r.dest == bob_id)
    {
        assert!(tokio::time::Instant::now() < deadline, "no route to bob");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Bob answers the first DM he gets.
    let answer = {
        let bob = bob.clone();
        tokio::spawn(async move {
            while let Some(ev) = bob_events.recv().await {
                if let Event::Dm(d) = ev {
                    if !d.own {
                        bob.dm("alice", "hi alice").await.expect("bob answers");
                        break;
                    }
                }
            }
            bob_events
        })
    };
    let mut app = App::new(&info, Clock::fixed(utc(), NOW_MS));
    let (key_tx, keys) = typed_line("/msg bob hello bob").await;
    let mut terminal = Terminal::new(TestBackend::new(80, 12)).expect("test backend");
    let quit_tx = key_tx.clone();
    let mut done = false;
    let run = super::term::event_loop(
        &mut terminal,
        &mut app,
        keys,
        alice.clone(),
        alice_events,
        |app| {
            let room = app.room();
            let texts: Vec<&str> = room.entries().iter().map(|e| e.text()).collect();
            if !done
                && room.dm.as_ref().is_some_and(|d| d.peer == bob_id)
                && texts.contains(&"hello bob  · delivered ✓")
                && texts.contains(&"hi alice")
            {
                done = true;
                let _ = quit_tx.try_send(Ok(TermEvent::Key(KeyEvent::new(
                    KeyCode::Char('c'),
                    KeyModifiers::CONTROL,
                ))));
            }
        },
    );
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the conversation completes and the loop ends after Ctrl+C")
        .expect("the loop runs without error");
    let screen = terminal.backend().to_string();
    assert!(screen.contains("[@bob]"), "{screen}");
    assert!(screen.contains("delivered ✓"), "{screen}");
    drop(answer.await);
    bob.shutdown().await;
    alice.shutdown().await;
}

/// Updates the node dropped while the interface was not reading are recovered from the database:
/// each room's newest page and the peer list are asked for again, and what was missed appears.
#[test]
fn missed_updates_are_reloaded() {
    let mut app = app(&["lobby", "rust"]);
    deliver(&mut app, msg(1, "lobby", 2, "bob", "before the gap"));
    app.on_node_event(Event::Lagged { missed: 3 });
    let actions = app.take_actions();
    let rooms: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::History {
                room, before: None, ..
            } => Some(room.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(rooms, ["lobby", "rust"], "{actions:?}");
    assert!(actions.contains(&Action::Peers {
        purpose: PeersFor::Refresh
    }));
    // The reloaded page holds what was missed, and what was already shown stays once.
    let page = vec![
        msg(1, "lobby", 2, "bob", "before the gap"),
        msg(2, "lobby", 3, "carol", "said during the gap"),
    ];
    for a in actions {
        if let Action::History {
            room,
            limit,
            purpose,
            ..
        } = a
        {
            let result = Ok(if room == "lobby" {
                page.clone()
            } else {
                Vec::new()
            });
            app.on_reply(Reply::History {
                room,
                limit,
                purpose,
                result,
                states: Vec::new(),
            });
        }
    }
    let screen = screen_text(&render(&app, 80, 16));
    assert!(screen.contains("said during the gap"), "{screen}");
    assert_eq!(screen.matches("before the gap").count(), 1, "{screen}");
    assert!(screen.contains("3 updates came while"), "{screen}");
    // Peers connected during the gap are known again.
    app.on_reply(Reply::Peers {
        purpose: PeersFor::Refresh,
        result: Ok(vec![
            PeerInfo {
                peer_id: peer(2),
                addrs: Vec::new(),
                chat: true,
                nick: None,
            },
            PeerInfo {
                peer_id: peer(5),
                addrs: Vec::new(),
                chat: false,
                nick: None,
            },
        ]),
    });
    assert_eq!(app.peers.iter().copied().collect::<Vec<_>>(), [peer(2)]);
}

fn screen_text(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let area = buf.area;
    (0..area.height)
        .map(|y| {
            (0..area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_conversation_with_states_and_the_routes_panel() {
    use meshchat_node::{DmState, DmView, RouteView};
    let mut app = app(&["lobby", "dev"]);
    let dm = |n: u64, from: u8, text: &str, state: Option<DmState>| {
        let mut id = [0xd0u8; 32];
        id[..8].copy_from_slice(&n.to_be_bytes());
        DmView {
            id: MessageId(id),
            peer: peer(2),
            from: peer(from),
            to: peer(if from == 1 { 2 } else { 1 }),
            fingerprint: key(from).public().fingerprint(),
            nick: if from == 1 { "alice" } else { "bob" }.into(),
            timestamp_ms: NOW_MS - 600_000 + n * 60_000,
            text: text.into(),
            own: from == 1,
            state,
            seq: n,
        }
    };
    let events = [
        dm(1, 2, "are you coming to the meeting?", None),
        dm(2, 1, "yes, on my way", Some(DmState::Queued)),
        dm(
            3,
            1,
            "bringing the radio and the spare batteries for it",
            Some(DmState::Queued),
        ),
        dm(4, 1, "is the north road open?", Some(DmState::Queued)),
        dm(5, 1, "call me when you read this", Some(DmState::Queued)),
    ];
    let ids: Vec<MessageId> = events.iter().map(|d| d.id).collect();
    for d in events {
        app.on_node_event(Event::Dm(d));
    }
    // Unread beside the rooms while another room is shown.
    assert_eq!(app.rooms[2].unread, 1);
    for (id, state) in [
        (ids[1], DmState::Delivered),
        (ids[2], DmState::Sent),
        (ids[4], DmState::Failed),
    ] {
        app.on_node_event(Event::DmStatus {
            id,
            to: peer(2),
            state,
        });
    }
    app.switch_to(2);
    insta::assert_snapshot!(render(&app, 72, 14).backend());
    // Marks are dim, a failure red.
    let t = render(&app, 72, 14);
    let screen = screen_text(&t);
    let row = screen
        .lines()
        .position(|l| l.contains("call me"))
        .expect("the failed DM is shown");
    let col = screen
        .lines()
        .nth(row)
        .unwrap()
        .chars()
        .position(|c| c == 'f')
        .unwrap();
    assert_eq!(
        t.backend().buffer()[(col as u16, row as u16)].fg,
        Color::Red
    );
    app.on_reply(Reply::Routes(Ok(vec![
        RouteView {
            dest: peer(4),
            next_hop: peer(3),
            hops: 3,
            age_ms: 300_000,
            nick: None,
        },
        RouteView {
            dest: peer(2),
            next_hop: peer(3),
            hops: 2,
            age_ms: 4_000,
            nick: Some("bob".into()),
        },
        RouteView {
            dest: peer(3),
            next_hop: peer(3),
            hops: 1,
            age_ms: 1_000,
            nick: Some("carol".into()),
        },
    ])));
    insta::assert_snapshot!(render(&app, 72, 14).backend());
}

/// The tracker in the status bar, and the `/who` panel with marks for this node and the tracker.
#[test]
fn the_tracker_in_the_status_bar_and_the_who_panel() {
    use meshchat_node::{OnlinePeer, TrackerView};
    let mut app = app(&["lobby", "dev"]);
    deliver(&mut app, msg(1, "lobby", 2, "bob", "morning all"));
    app.on_node_event(Event::TrackerChanged {
        tracker: None,
        epoch: 2,
        is_self: false,
    });
    let status = |app: &App| {
        screen_text(&render(app, 90, 12))
            .lines()
            .nth(10)
            .unwrap()
            .to_owned()
    };
    assert!(
        status(&app).contains("│ tracker: electing…"),
        "{}",
        status(&app)
    );
    app.on_node_event(Event::TrackerChanged {
        tracker: Some(peer(3)),
        epoch: 3,
        is_self: false,
    });
    let online = |n: u8, nick: &str, hops: Option<u16>, connected: bool| OnlinePeer {
        peer_id: peer(n),
        nick: nick.into(),
        fingerprint: key(n).public().fingerprint(),
        addrs: Vec::new(),
        priority: Some(100),
        is_self: n == 1,
        connected,
        hops,
    };
    let tracker = TrackerView {
        tracker: Some(peer(3)),
        nick: Some("carol".into()),
        epoch: 3,
        priority: Some(100),
        is_self: false,
        registered: true,
        own_priority: Some(100),
        online: 4,
        truncated: false,
    };
    app.on_reply(Reply::Who {
        peers: Ok(vec![
            online(1, "alice", Some(0), false),
            online(2, "bob", Some(1), true),
            online(3, "carol", Some(2), false),
            online(4, "dave", None, false),
        ]),
        tracker: Ok(tracker),
    });
    insta::assert_snapshot!(render(&app, 90, 14).backend());
    press(&mut app, KeyCode::Esc);
    assert!(
        status(&app).contains("│ tracker: carol"),
        "{}",
        status(&app)
    );
}

/// An offer, `/accept`, and the bars of a download and of an upload with rate and time left.
#[test]
fn file_offers_and_progress_bars() {
    use meshchat_api as api;
    let mut app = conversation();
    let file = |id: &str, name: &str, own: bool| api::File {
        id: id.repeat(64),
        from: peer(2).to_string(),
        fingerprint: "0a1b 2c3d 4e5f 6071 8293 a4b5 c6d7 e8f9".into(),
        nick: "bob".into(),
        name: name.into(),
        size: 64 << 20,
        hash: "c".repeat(64),
        room: Some("lobby".into()),
        to: None,
        ts: 1,
        own,
        state: if own {
            api::FileState::Serving
        } else {
            api::FileState::Offered
        },
        bytes: 0,
        path: None,
        reason: None,
    };
    app.on_node_event(Event::File(api::Event::FileOffer(file(
        "a", "film.mkv", false,
    ))));
    app.on_reply(Reply::FileOffered(Ok(file("b", "notes.pdf", true))));
    app.on_reply(Reply::FileAccepted(Ok(file("a", "film.mkv", false))));
    for (id, bytes) in [("a", 16u64 << 20), ("b", 4 << 20)] {
        app.on_node_event(Event::File(api::Event::FileProgress {
            id: id.repeat(64),
            bytes,
            total: 64 << 20,
        }));
    }
    let screen = format!("{:?}", render(&app, 100, 20).backend());
    assert!(
        screen.contains("bob (0a1b 2c3d) offers film.mkv (64.0 MiB) in lobby — /accept 1"),
        "{screen}"
    );
    assert!(screen.contains("⇣ 1 film.mkv ["), "{screen}");
    assert!(screen.contains("25% 16.0 MiB / 64.0 MiB"), "{screen}");
    assert!(screen.contains("⇡ 2 notes.pdf ["), "{screen}");
    // The upload ends when all of it was sent; the download with `file_done`.
    app.on_node_event(Event::File(api::Event::FileProgress {
        id: "b".repeat(64),
        bytes: 64 << 20,
        total: 64 << 20,
    }));
    app.on_node_event(Event::File(api::Event::FileDone {
        id: "a".repeat(64),
        path: "/home/alice/Downloads/meshchat/film.mkv".into(),
        hash: "c".repeat(64),
    }));
    assert_eq!(app.transfers.rows(), 0);
    let screen = format!("{:?}", render(&app, 100, 20).backend());
    assert!(
        screen.contains("file 1 done, verified: /home/alice/Downloads/meshchat/film.mkv"),
        "{screen}"
    );
}

/// A private room shows its lock in the room list, and its kind and size in the status bar.
#[test]
fn a_private_room_shows_its_lock_and_size() {
    let mut app = app(&["lobby", "team"]);
    app.take_rooms(vec![meshchat_node::RoomView {
        name: "team".into(),
        private: Some(meshchat_node::PrivateKind::Invite),
        members: Some(3),
    }]);
    app.switch_to(1);
    let t = render(&app, 90, 12);
    let buf = t.backend().buffer();
    let rows: Vec<String> = (0..buf.area.height)
        .map(|y| {
            // The cell after a wide symbol is covered by it: not drawn.
            let mut row = String::new();
            let mut skip = 0;
            for x in 0..buf.area.width {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let symbol = buf[(x, y)].symbol();
                skip = super::wrap::width(symbol).saturating_sub(1);
                row.push_str(symbol);
            }
            row
        })
        .collect();
    let all = rows.join("\n");
    assert!(all.contains("2 🔒#team"), "{all}");
    assert!(all.contains("🔒#team (invite, 3 members)"), "{all}");
}
