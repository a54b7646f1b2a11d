//! State and update tests: keys, completion, scrolling, unread counts, replies; no terminal.

use super::super::room::{Body, LIVE_CAP};
use super::super::tests::fixtures::*;
use super::*;

fn sends(app: &mut App) -> Vec<(String, String)> {
    app.take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Send { room, text } => Some((room, text)),
            _ => None,
        })
        .collect()
}

fn texts(app: &App) -> Vec<String> {
    app.room()
        .entries()
        .iter()
        .map(|e| e.text().to_owned())
        .collect()
}

#[test]
fn typing_and_sending() {
    let mut app = app(&["lobby"]);
    type_str(&mut app, "hello world");
    ctrl(&mut app, 'w');
    type_str(&mut app, "there");
    press(&mut app, KeyCode::Home);
    type_str(&mut app, "> ");
    press(&mut app, KeyCode::Enter);
    assert_eq!(sends(&mut app), [("lobby".into(), "> hello there".into())]);
    assert!(app.input.is_empty());
    // Alt+Backspace deletes a word too; Up brings back the sent line.
    type_str(&mut app, "one two");
    alt(&mut app, KeyCode::Backspace);
    assert_eq!(app.input.text(), "one ");
    ctrl(&mut app, 'u');
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input.text(), "> hello there");
    press(&mut app, KeyCode::Down);
    assert_eq!(app.input.text(), "");
    // A blank line sends nothing; "//" sends a leading slash.
    type_str(&mut app, "   ");
    press(&mut app, KeyCode::Enter);
    assert!(sends(&mut app).is_empty());
    ctrl(&mut app, 'u');
    type_str(&mut app, "//shrug");
    press(&mut app, KeyCode::Enter);
    assert_eq!(sends(&mut app), [("lobby".into(), "/shrug".into())]);
}

#[test]
fn paste_is_one_message_and_alt_enter_adds_a_line() {
    let mut app = app(&["lobby"]);
    app.on_terminal(TermEvent::Paste("line one\r\nline two\n".into()));
    alt(&mut app, KeyCode::Enter);
    type_str(&mut app, "three");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        sends(&mut app),
        [("lobby".into(), "line one\nline two\n\nthree".into())]
    );
}

#[test]
fn tab_completes_commands_rooms_and_nicks() {
    let mut app = app(&["lobby", "dev", "design"]);
    deliver(&mut app, msg(1, "lobby", 2, "bob", "hi"));
    deliver(&mut app, msg(2, "lobby", 3, "bobby", "hi"));
    type_str(&mut app, "/jo");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "/join ");
    type_str(&mut app, "#de");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "/join dev ");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "/join design ");
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.input.text(), "/join dev ");
    ctrl(&mut app, 'u');
    // Nicks: most recently active first, with ": " at the start of the line.
    type_str(&mut app, "bo");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "bobby: ");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "bob: ");
    type_str(&mut app, "see ");
    type_str(&mut app, "BOBB");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "bob: see bobby ");
    ctrl(&mut app, 'u');
    type_str(&mut app, "/whois b");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "/whois bobby ");
    ctrl(&mut app, 'u');
    // Nothing to complete: nothing changes. The own nick is not offered in text.
    type_str(&mut app, "/quit x");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "/quit x");
    ctrl(&mut app, 'u');
    type_str(&mut app, "ali");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "ali");
}

#[test]
fn rooms_switch_and_count_unread() {
    let mut app = app(&["lobby", "dev", "random"]);
    deliver(&mut app, msg(1, "dev", 2, "bob", "hello"));
    deliver(&mut app, msg(2, "dev", 2, "bob", "alice: ping"));
    deliver(
        &mut app,
        msg(3, "random", 1, "alice", "own messages are not unread"),
    );
    deliver(
        &mut app,
        msg(4, "lobby", 2, "bob", "the room on screen is read"),
    );
    assert_eq!((app.rooms[1].unread, app.rooms[1].mentions), (2, 1));
    assert_eq!(app.rooms[2].unread, 0);
    assert_eq!(app.rooms[0].unread, 0);
    alt(&mut app, KeyCode::Char('2'));
    assert_eq!(app.current, 1);
    assert_eq!((app.rooms[1].unread, app.rooms[1].mentions), (0, 0));
    ctrl(&mut app, 'n');
    assert_eq!(app.current, 2);
    ctrl(&mut app, 'n');
    assert_eq!(app.current, 0);
    ctrl(&mut app, 'p');
    assert_eq!(app.current, 2);
    alt(&mut app, KeyCode::Char('9'));
    assert_eq!(app.current, 2, "no ninth room: stay");
    // /join of a joined room switches at once; of a new one asks the node.
    type_str(&mut app, "/join #Lobby");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.current, 0);
    assert!(app.take_actions().is_empty());
    type_str(&mut app, "/join ops");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.take_actions(), [Action::Join { room: "ops".into() }]);
    app.on_reply(Reply::Joined {
        room: "ops".into(),
        result: Ok(true),
    });
    assert_eq!(app.room().name, "ops");
    assert!(matches!(
        app.take_actions().as_slice(),
        [Action::History { room, before: None, purpose: HistoryFor::Initial, .. }] if room == "ops"
    ));
    // /leave leaves the room on screen.
    type_str(&mut app, "/leave");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.take_actions(), [Action::Leave { room: "ops".into() }]);
    app.on_reply(Reply::Left {
        room: "ops".into(),
        result: Ok(true),
    });
    assert_eq!(app.rooms.len(), 3);
    assert_eq!(app.room().name, "random");
    // A bad room name is refused here.
    type_str(&mut app, "/join a b");
    press(&mut app, KeyCode::Enter);
    assert!(app.take_actions().is_empty());
    assert!(matches!(
        app.room().entries().back().map(|e| &e.body),
        Some(Body::Notice {
            level: Level::Error,
            ..
        })
    ));
}

#[test]
fn late_messages_sort_by_time_then_id() {
    let mut app = app(&["lobby"]);
    for n in [5, 1, 3, 2, 4, 3] {
        deliver(&mut app, msg(n, "lobby", 2, "bob", &format!("m{n}")));
    }
    let shown: Vec<String> = texts(&app).into_iter().filter(|t| t.len() == 2).collect();
    assert_eq!(shown, ["m1", "m2", "m3", "m4", "m5"]);
}

#[test]
fn synced_messages_are_unread_but_not_new_below_a_scrolled_view() {
    let mut app = app(&["lobby", "dev"]);
    app.pane.set((80, 6));
    for n in 20..40 {
        deliver(&mut app, msg(n, "lobby", 2, "bob", &format!("line {n}")));
    }
    app.scroll(5);
    let view = app.room().visible(app.room().geometry(80, 6));
    let mut old = msg(2, "lobby", 3, "carol", "from before");
    old.synced = true;
    deliver(&mut app, old);
    assert_eq!(app.room().new_below, 0, "it landed above the view");
    assert!(texts(&app).iter().any(|t| t == "from before"));
    // The notice lands at the bottom, below the view, which stays where it was.
    assert_eq!(
        app.room().visible(app.room().geometry(80, 6)).first,
        view.first + 1
    );
    deliver(&mut app, msg(41, "lobby", 2, "bob", "live"));
    assert_eq!(app.room().new_below, 1);
    let mut other = msg(3, "dev", 3, "carol", "in dev");
    other.synced = true;
    other.text = "alice: in dev".into();
    deliver(&mut app, other);
    assert_eq!((app.rooms[1].unread, app.rooms[1].mentions), (1, 1));
}

#[test]
fn nicks_with_invisible_characters_are_shown_with_replacement_characters() {
    let mut app = app(&["lobby"]);
    deliver(&mut app, msg(1, "lobby", 4, "al\u{200D}ice\u{FEFF}", "hi"));
    app.on_node_event(Event::PeerConnected { peer_id: peer(4) });
    let Some(Body::Message(m)) = app.room().entries().front().map(|e| &e.body) else {
        panic!("a message first");
    };
    assert_eq!(m.nick, "al\u{FFFD}ice\u{FFFD}");
    assert!(texts(&app)
        .iter()
        .any(|t| t.starts_with("peer connected: al\u{FFFD}ice\u{FFFD} (")));
    assert_eq!(
        app.book.get(&peer(4)).map(|k| k.nick.as_str()),
        Some("al\u{FFFD}ice\u{FFFD}")
    );
    // An older message (history sync) does not bring back an older nick.
    deliver(&mut app, msg(0, "lobby", 4, "mallory", "from before"));
    assert_eq!(
        app.book.get(&peer(4)).map(|k| k.nick.as_str()),
        Some("al\u{FFFD}ice\u{FFFD}")
    );
}

#[test]
fn scrolling_loads_older_pages_on_demand() {
    let mut app = app(&["lobby"]);
    app.pane.set((80, 10));
    // The room has history: a full first page.
    let page: Vec<MessageView> = (1000..1000 + PAGE as u64)
        .map(|n| msg(n, "lobby", 2, "bob", "x"))
        .collect();
    app.on_reply(Reply::History {
        room: "lobby".into(),
        limit: PAGE,
        purpose: HistoryFor::Initial,
        result: Ok(page),
        states: Vec::new(),
    });
    assert!(app.take_actions().is_empty());
    press(&mut app, KeyCode::PageUp);
    assert_eq!(app.room().scroll, 8);
    assert!(app.take_actions().is_empty());
    // Home (input empty) goes to the top of the window, which asks for the page before it.
    press(&mut app, KeyCode::Home);
    let actions = app.take_actions();
    let expected_before = Some((
        msg(1000, "", 2, "", "").timestamp_ms,
        msg(1000, "", 2, "", "").id,
    ));
    assert!(
        matches!(actions.as_slice(), [Action::History { before, limit: PAGE, purpose: HistoryFor::Older { announce: false }, .. }] if *before == expected_before),
        "{actions:?}"
    );
    // Only one request at a time.
    press(&mut app, KeyCode::PageUp);
    assert!(app.take_actions().is_empty());
    let top = app.room().scroll;
    app.on_reply(Reply::History {
        room: "lobby".into(),
        limit: PAGE,
        purpose: HistoryFor::Older { announce: false },
        result: Ok((900..1000)
            .map(|n| msg(n, "lobby", 2, "bob", "x"))
            .collect()),
        states: Vec::new(),
    });
    // The view did not move; the room's beginning is known now.
    assert_eq!(app.room().scroll, top);
    assert_eq!(app.room().older, super::super::room::Older::Exhausted);
    // The mouse wheel scrolls too; End returns to the newest.
    app.on_terminal(TermEvent::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 0,
        row: 0,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(app.room().scroll, top - 3);
    press(&mut app, KeyCode::End);
    assert_eq!(app.room().scroll, 0);
    // With text in the input, Home/End edit it and Ctrl+Home scrolls.
    type_str(&mut app, "abc");
    press(&mut app, KeyCode::Home);
    assert_eq!((app.input.cursor(), app.room().scroll), (0, 0));
    app.on_key(KeyEvent::new(KeyCode::Home, KeyModifiers::CONTROL));
    assert!(app.room().scroll > 0);
}

#[test]
fn history_command_loads_and_announces() {
    let mut app = app(&["lobby"]);
    deliver(&mut app, msg(50, "lobby", 2, "bob", "x"));
    type_str(&mut app, "/history 20");
    press(&mut app, KeyCode::Enter);
    let actions = app.take_actions();
    assert!(matches!(
        actions.as_slice(),
        [Action::History {
            limit: 20,
            purpose: HistoryFor::Older { announce: true },
            before: Some(_),
            ..
        }]
    ));
    app.on_reply(Reply::History {
        room: "lobby".into(),
        limit: 20,
        purpose: HistoryFor::Older { announce: true },
        result: Ok((30..50).map(|n| msg(n, "lobby", 2, "bob", "x")).collect()),
        states: Vec::new(),
    });
    assert!(texts(&app)
        .iter()
        .any(|t| t.contains("loaded 20 older messages")));
}

#[test]
fn memory_is_bounded_per_room() {
    let mut app = app(&["lobby"]);
    for n in 0..(LIVE_CAP as u64 * 2) {
        deliver(&mut app, msg(n, "lobby", 2, "bob", "flood"));
    }
    assert_eq!(app.room().entries().len(), LIVE_CAP);
}

#[test]
fn errors_and_events_show_in_the_room() {
    let mut app = app(&["lobby"]);
    app.on_node_event(Event::Warning("listener failed".into()));
    app.on_node_event(Event::PeerConnected { peer_id: peer(2) });
    assert_eq!(app.peers.len(), 1);
    app.on_node_event(Event::PeerDisconnected { peer_id: peer(2) });
    assert!(app.peers.is_empty());
    let t = texts(&app);
    assert!(t.iter().any(|t| t == "listener failed"));
    assert!(t.iter().any(|t| t.starts_with("peer connected")));
    assert!(t.iter().any(|t| t.starts_with("peer disconnected")));
    // A failed send puts the text back.
    app.on_reply(Reply::Sent {
        room: "lobby".into(),
        text: "lost?".into(),
        result: Err("the node has stopped".into()),
    });
    assert_eq!(app.input.text(), "lost?");
    // A refused action (queue full) too.
    ctrl(&mut app, 'u');
    app.refused(Action::Send {
        room: "lobby".into(),
        text: "again".into(),
    });
    assert_eq!(app.input.text(), "again");
}

#[test]
fn quitting_and_panels() {
    let mut app = app(&["lobby"]);
    press(&mut app, KeyCode::F(1));
    assert!(matches!(app.overlay, Some(Overlay::Help)));
    // Typing closes the panel and goes on in the input line.
    press(&mut app, KeyCode::Char('x'));
    assert!(app.overlay.is_none());
    assert_eq!(app.input.text(), "x");
    ctrl(&mut app, 'u');
    type_str(&mut app, "/help");
    press(&mut app, KeyCode::Enter);
    assert!(matches!(app.overlay, Some(Overlay::Help)));
    press(&mut app, KeyCode::Esc);
    assert!(app.overlay.is_none());
    // Nobody who wrote where we saw it: the node's profiles are asked, and it says who is not
    // known.
    type_str(&mut app, "/whois nobody");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.take_actions(),
        [Action::Profiles {
            query: "nobody".into()
        }]
    );
    app.on_reply(Reply::Profiles {
        query: "nobody".into(),
        result: Err("nobody known as \"nobody\"".into()),
    });
    assert!(app.overlay.is_none());
    type_str(&mut app, "/peers");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.take_actions(),
        [Action::Peers {
            purpose: PeersFor::Panel
        }]
    );
    type_str(&mut app, "/connect /ip4/127.0.0.1/tcp/1");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.take_actions(),
        [Action::Connect {
            addr: "/ip4/127.0.0.1/tcp/1".into()
        }]
    );
    type_str(&mut app, &format!("/nick {}", "n".repeat(40)));
    press(&mut app, KeyCode::Enter);
    assert!(app.take_actions().is_empty());
    type_str(&mut app, "/nick zed");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.take_actions(), [Action::Nick { nick: "zed".into() }]);
    app.on_reply(Reply::Nick {
        nick: "zed".into(),
        result: Ok(()),
    });
    assert_eq!(app.me.nick, "zed");
    assert!(!app.quit);
    type_str(&mut app, "/quit");
    press(&mut app, KeyCode::Enter);
    assert!(app.quit);
    let mut app = super::super::tests::fixtures::app(&[]);
    ctrl(&mut app, 'c');
    assert!(app.quit);
}

#[test]
fn no_room_means_no_send() {
    let mut app = app(&[]);
    type_str(&mut app, "into the void");
    press(&mut app, KeyCode::Enter);
    assert!(sends(&mut app).is_empty());
    assert_eq!(app.input.text(), "into the void");
}

fn dm(n: u64, from: u8, to: u8, nick: &str, text: &str, state: Option<DmState>) -> DmView {
    let mut id = [0xd0u8; 32];
    id[..8].copy_from_slice(&n.to_be_bytes());
    let own = from == 1;
    DmView {
        id: MessageId(id),
        peer: peer(if own { to } else { from }),
        from: peer(from),
        to: peer(to),
        fingerprint: key(from).public().fingerprint(),
        nick: nick.into(),
        timestamp_ms: NOW_MS - 3_600_000 + n * 60_000,
        text: text.into(),
        own,
        state,
        seq: n,
    }
}

#[test]
fn a_dm_opens_a_conversation_beside_the_rooms_with_unread_and_states() {
    let mut app = app(&["lobby"]);
    app.on_node_event(Event::Dm(dm(1, 2, 1, "bob", "psst, alice", None)));
    // A conversation entry appeared, named after bob, with one unread (counted as a mention),
    // and its history was asked for.
    assert_eq!(app.rooms.len(), 2);
    let conv = &app.rooms[1];
    assert_eq!(conv.shown(), "@bob");
    assert_eq!((conv.unread, conv.mentions), (1, 1));
    let actions = app.take_actions();
    assert!(actions.iter().any(
        |a| matches!(a, Action::History { room, .. } if *room == conversation_name(&peer(2)))
    ));
    assert_eq!(app.current, 0, "a DM does not steal the screen");
    // Switching to it clears the count; typing there sends a DM to bob's peer id.
    app.switch_to(1);
    assert_eq!(app.rooms[1].unread, 0);
    type_str(&mut app, "hi bob");
    press(&mut app, KeyCode::Enter);
    let to_bob = peer(2).to_string();
    assert!(app
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::Dm { to, text } if *to == to_bob && text == "hi bob")));
    // Our own DM comes back as an event with its state, which then moves on.
    let mine = dm(2, 1, 2, "alice", "hi bob", Some(DmState::Queued));
    let id = mine.id;
    app.on_node_event(Event::Dm(mine));
    assert_eq!(app.rooms[1].unread, 0, "own messages are not unread");
    let last = |app: &App| app.room().entries().back().unwrap().text().to_owned();
    assert_eq!(last(&app), "hi bob  · queued");
    for (state, shown) in [
        (DmState::Sent, "hi bob  · sent"),
        (DmState::Delivered, "hi bob  · delivered ✓"),
    ] {
        app.on_node_event(Event::DmStatus {
            id,
            to: peer(2),
            state,
        });
        assert_eq!(last(&app), shown);
    }
    // The same DM again (a history page racing the event) is shown once.
    app.on_node_event(Event::Dm(dm(
        2,
        1,
        2,
        "alice",
        "hi bob",
        Some(DmState::Sent),
    )));
    assert_eq!(app.room().entries().len(), 2);
    // /leave closes the conversation, not a room.
    type_str(&mut app, "/leave");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.rooms.len(), 1);
    assert!(app
        .take_actions()
        .iter()
        .all(|a| !matches!(a, Action::Leave { .. })));
}

#[test]
fn msg_command_opens_the_conversation_and_refusals_say_why() {
    let mut app = app(&["lobby"]);
    type_str(&mut app, "/msg carol are you there?");
    press(&mut app, KeyCode::Enter);
    let actions = app.take_actions();
    assert!(actions.iter().any(
        |a| matches!(a, Action::Dm { to, text } if to == "carol" && text == "are you there?")
    ));
    // Two keys use "carol": the node refuses with both fingerprints; the text comes back.
    let refusal = "\"carol\" is used by several keys; name one by fingerprint: \
                   aaaa bbbb cccc dddd eeee ffff 0000 1111, 2222 3333 4444 5555 6666 7777 8888 9999";
    app.on_reply(Reply::DmSent {
        to: "carol".into(),
        text: "are you there?".into(),
        result: Err(refusal.into()),
    });
    let notice = app.room().entries().back().unwrap().text().to_owned();
    assert!(
        notice.contains("aaaa bbbb") && notice.contains("2222 3333"),
        "{notice}"
    );
    assert_eq!(app.input.text(), "are you there?");
    // Accepted: the conversation opens and is shown.
    app.on_reply(Reply::DmSent {
        to: "carol".into(),
        text: "are you there?".into(),
        result: Ok(DmSent {
            id: MessageId([7; 32]),
            to: peer(3),
            state: DmState::Sent,
        }),
    });
    assert_eq!(app.room().shown(), "@carol");
    // /msg without a text is refused by the parser.
    ctrl(&mut app, 'u');
    type_str(&mut app, "/msg carol");
    press(&mut app, KeyCode::Enter);
    assert!(app
        .take_actions()
        .iter()
        .all(|a| !matches!(a, Action::Dm { .. })));
}

#[test]
fn conversations_are_listed_at_start_and_whois_falls_back_to_profiles() {
    let mut app = app(&["lobby"]);
    app.on_reply(Reply::Conversations(Ok(vec![Conversation {
        peer: peer(4),
        nick: "dave".into(),
        fingerprint: key(4).public().fingerprint(),
        last_ms: NOW_MS - 1000,
        count: 3,
    }])));
    assert_eq!(app.rooms[1].shown(), "@dave");
    assert_eq!(app.current, 0);
    // dave never wrote in a room: /whois asks the node for profiles.
    let _ = app.take_actions();
    type_str(&mut app, "/whois erin");
    press(&mut app, KeyCode::Enter);
    assert!(app
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::Profiles { query } if query == "erin")));
    app.on_reply(Reply::Profiles {
        query: "erin".into(),
        result: Ok(vec![ProfileView {
            peer_id: peer(5),
            fingerprint: key(5).public().fingerprint(),
            nick: "erin".into(),
            version: 1,
            hops: Some(3),
            connected: false,
        }]),
    });
    assert!(matches!(&app.overlay, Some(Overlay::Whois { rows, .. }) if rows[0].nick == "erin"));
}
