//! State and update tests: keys, completion, scrolling, unread counts, replies; no terminal.

use super::super::room::{Body, LIVE_CAP};
use super::super::tests::fixtures::*;
use super::*;
use meshchat_node::DmSent;

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
    assert_eq!(
        app.take_actions(),
        [Action::Join {
            room: "ops".into(),
            key: None
        }]
    );
    app.on_reply(Reply::Joined {
        room: "ops".into(),
        private: None,
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
    // Nobody known to the nick book or to the node's profiles: said, no panel.
    type_str(&mut app, "/whois nobody");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.take_actions(),
        [Action::Whois {
            query: "nobody".into()
        }]
    );
    app.on_reply(Reply::Whois {
        query: "nobody".into(),
        peers: Ok(Vec::new()),
        profiles: Ok(Vec::new()),
    });
    assert!(app.overlay.is_none());
    assert!(texts(&app)
        .last()
        .unwrap()
        .contains("nobody known as nobody"));
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

// ---- direct messages ----

/// DM number `n` between alice (key 1, us) and `other`; `from_us` decides its direction.
fn dm(n: u64, other: u8, from_us: bool, nick: &str, text: &str) -> DmView {
    let mut id = [0xd0u8; 32];
    id[..8].copy_from_slice(&n.to_be_bytes());
    let (from, to) = if from_us { (1, other) } else { (other, 1) };
    DmView {
        id: MessageId(id),
        peer: peer(other),
        from: peer(from),
        to: peer(to),
        fingerprint: key(from).public().fingerprint(),
        nick: nick.into(),
        timestamp_ms: NOW_MS - 3_600_000 + n * 60_000,
        text: text.into(),
        own: from_us,
        state: from_us.then_some(DmState::Queued),
        seq: n,
    }
}

fn last_text(app: &App) -> String {
    texts(app).last().cloned().unwrap_or_default()
}

/// Answers the history requests queued so far with empty pages.
fn empty_pages(app: &mut App) {
    for a in app.take_actions() {
        if let Action::History {
            room,
            limit,
            purpose,
            ..
        } = a
        {
            app.on_reply(Reply::History {
                room,
                limit,
                purpose,
                result: Ok(Vec::new()),
                states: Vec::new(),
            });
        }
    }
}

#[test]
fn receiving_a_dm_creates_the_conversation_with_an_unread_count() {
    let mut app = app(&["lobby"]);
    app.on_node_event(Event::Dm(dm(1, 2, false, "bob", "psst, alice")));
    assert_eq!(app.rooms.len(), 2);
    let conv = &app.rooms[1];
    assert_eq!(app.title(conv), "@bob");
    assert_eq!(
        conv.dm.as_ref().map(|d| d.peer),
        Some(peer(2)),
        "kept under bob's peer id"
    );
    // Counted as a mention: a DM is addressed to the user.
    assert_eq!((conv.unread, conv.mentions), (1, 1));
    assert_eq!(app.current, 0, "a DM does not take the screen");
    // Its history is asked for under the conversation's name (the worker asks dm_history).
    let actions = app.take_actions();
    assert!(
        actions.iter().any(|a| matches!(a,
            Action::History { room, before: None, .. } if *room == conversation_name(&peer(2)))),
        "{actions:?}"
    );
    app.on_node_event(Event::Dm(dm(2, 2, false, "bob", "are you there?")));
    assert_eq!(app.rooms.len(), 2, "one conversation per person");
    assert_eq!(app.rooms[1].unread, 2);
    // The room list shows it beside the rooms, with its count.
    let screen = render(&app, 70, 8).backend().to_string();
    assert!(screen.contains("2 @bob"), "{screen}");
    // What bob sends cannot act on the terminal.
    app.on_node_event(Event::Dm(dm(
        3,
        2,
        false,
        "b\u{1b}[2Job",
        "x\u{1b}]0;pwned\u{7}y",
    )));
    let shown = app.rooms[1].entries().back().unwrap();
    let Body::Message(m) = &shown.body else {
        panic!("a message")
    };
    assert!(!m.nick.contains('\u{1b}') && !m.text.contains('\u{1b}'));
    assert!(!app.title(&app.rooms[1]).contains('\u{1b}'));
}

#[test]
fn switching_to_the_conversation_clears_unread_and_typing_there_sends_a_dm() {
    let mut app = app(&["lobby"]);
    app.on_node_event(Event::Dm(dm(1, 2, false, "bob", "psst")));
    empty_pages(&mut app);
    alt(&mut app, KeyCode::Char('2'));
    assert_eq!(app.current, 1);
    assert_eq!((app.rooms[1].unread, app.rooms[1].mentions), (0, 0));
    type_str(&mut app, "hi bob");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.take_actions(),
        [Action::Dm {
            to: peer(2).to_string(),
            text: "hi bob".into()
        }]
    );
    assert!(sends(&mut app).is_empty(), "nothing goes to a room");
    // While shown, bob's next DM is not unread.
    app.on_node_event(Event::Dm(dm(2, 2, false, "bob", "hi!")));
    assert_eq!(app.rooms[1].unread, 0);
    // Refused (the node stopped, say): the text comes back as typed.
    app.on_reply(Reply::DmSent {
        to: peer(2).to_string(),
        text: "hi bob".into(),
        nick: None,
        result: Err(Refusal::Other("the node has stopped".into())),
    });
    assert_eq!(app.input.text(), "hi bob");
    assert!(last_text(&app).contains("direct message to @bob not sent: the node has stopped"));
    // The worker queue full: the same.
    ctrl(&mut app, 'u');
    app.refused(Action::Dm {
        to: peer(2).to_string(),
        text: "again".into(),
    });
    assert_eq!(app.input.text(), "again");
}

#[test]
fn status_events_update_the_mark_of_own_dms() {
    let mut app = app(&["lobby"]);
    let mine = dm(1, 2, true, "alice", "on my way");
    let id = mine.id;
    app.on_node_event(Event::Dm(mine));
    assert_eq!(app.rooms[1].unread, 0, "own messages are not unread");
    empty_pages(&mut app);
    app.switch_to(1);
    assert_eq!(last_text(&app), "on my way  · queued");
    for (state, shown) in [
        (DmState::Sent, "on my way  · sent"),
        (DmState::Delivered, "on my way  · delivered ✓"),
        (DmState::Failed, "on my way  · failed"),
    ] {
        app.on_node_event(Event::DmStatus {
            id,
            to: peer(2),
            state,
        });
        assert_eq!(last_text(&app), shown);
    }
    let Body::Message(m) = &app.room().entries().back().unwrap().body else {
        panic!("a message")
    };
    assert_eq!(m.body(), "on my way");
    assert_eq!(m.state, Some(DmState::Failed));
    // A state for a conversation not open, or a DM not in the window: nothing happens.
    app.on_node_event(Event::DmStatus {
        id,
        to: peer(9),
        state: DmState::Sent,
    });
    app.on_node_event(Event::DmStatus {
        id: MessageId([0x55; 32]),
        to: peer(2),
        state: DmState::Sent,
    });
    assert_eq!(app.room().len(), 1);
    // The same DM again (a page racing the event) is shown once, with the newer state.
    let mut again = dm(1, 2, true, "alice", "on my way");
    again.state = Some(DmState::Delivered);
    app.on_node_event(Event::Dm(again));
    assert_eq!(app.room().len(), 1);
    assert_eq!(last_text(&app), "on my way  · delivered ✓");
}

#[test]
fn a_conversation_opens_with_its_history_and_pages_back_like_a_room() {
    let mut app = app(&["lobby"]);
    app.on_reply(Reply::Conversations {
        announce: false,
        result: Ok(vec![Conversation {
            peer: peer(2),
            nick: "bob".into(),
            fingerprint: key(2).public().fingerprint(),
            last_ms: NOW_MS - 1000,
            count: 900,
        }]),
    });
    assert_eq!(app.title(&app.rooms[1]), "@bob");
    let name = conversation_name(&peer(2));
    let actions = app.take_actions();
    assert_eq!(
        actions,
        [Action::History {
            room: name.clone(),
            before: None,
            limit: PAGE,
            purpose: HistoryFor::Initial
        }]
    );
    // A full page of DMs, as the worker turns them into message views, with our states.
    let page: Vec<MessageView> = (0..PAGE as u64)
        .map(|n| {
            let d = dm(
                1000 + n,
                2,
                n % 2 == 0,
                if n % 2 == 0 { "alice" } else { "bob" },
                "x",
            );
            MessageView {
                private: None,
                id: d.id,
                room: name.clone(),
                author: d.from,
                fingerprint: d.fingerprint,
                nick: d.nick,
                timestamp_ms: d.timestamp_ms,
                text: format!("dm {n}"),
                own: d.own,
                synced: false,
                seq: d.seq,
            }
        })
        .collect();
    let newest = page.last().unwrap().id;
    let states = vec![(page[PAGE - 2].id, DmState::Delivered)];
    app.on_reply(Reply::History {
        room: name.clone(),
        limit: PAGE,
        purpose: HistoryFor::Initial,
        result: Ok(page),
        states,
    });
    app.switch_to(1);
    assert_eq!(app.room().len(), PAGE);
    let texts = texts(&app);
    assert_eq!(texts[PAGE - 2], "dm 498  · delivered ✓");
    assert_eq!(texts[PAGE - 1], "dm 499", "bob's DMs have no mark");
    assert!(app.room().entries().iter().any(|e| matches!(&e.body,
        Body::Message(m) if m.id == newest)));
    // Scrolling up reaches the top of the window: the page before it is asked for.
    let _ = app.take_actions();
    for _ in 0..200 {
        press(&mut app, KeyCode::PageUp);
    }
    let actions = app.take_actions();
    assert!(
        actions.iter().any(|a| matches!(a,
            Action::History { room, before: Some(_), purpose: HistoryFor::Older { .. }, .. }
                if *room == name)),
        "{actions:?}"
    );
}

#[test]
fn msg_with_an_ambiguous_nick_shows_the_candidates() {
    let mut app = app(&["lobby"]);
    type_str(&mut app, "/msg carol are you there?");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.take_actions(),
        [Action::Dm {
            to: "carol".into(),
            text: "are you there?".into()
        }]
    );
    let (f3, f4) = (key(3).public().fingerprint(), key(4).public().fingerprint());
    app.on_reply(Reply::DmSent {
        to: "carol".into(),
        text: "are you there?".into(),
        nick: None,
        result: Err(Refusal::Ambiguous {
            nick: "carol".into(),
            candidates: vec![f3.to_string(), f4.to_string()],
        }),
    });
    let notice = last_text(&app);
    assert!(
        notice.contains("carol names 2 keys")
            && notice.contains(&format!("/msg {}", f3.short()))
            && notice.contains(&format!("/msg {}", f4.short())),
        "{notice}"
    );
    assert_eq!(app.rooms.len(), 1, "no conversation opened");
    // The command comes back, to name one and press Enter again.
    assert_eq!(app.input.text(), "/msg carol are you there?");
    // Named by fingerprint: accepted; the conversation opens, named by the profile's nick.
    ctrl(&mut app, 'u');
    type_str(&mut app, &format!("/msg {} are you there?", f3.short()));
    press(&mut app, KeyCode::Enter);
    let _ = app.take_actions();
    app.on_reply(Reply::DmSent {
        to: f3.short(),
        text: "are you there?".into(),
        nick: Some("carol".into()),
        result: Ok(DmSent {
            id: MessageId([7; 32]),
            to: peer(3),
            state: DmState::Queued,
        }),
    });
    assert_eq!(app.current, 1);
    assert_eq!(app.room().dm.as_ref().map(|d| d.peer), Some(peer(3)));
    // The other carol is known too now: the names tell them apart by fingerprint.
    app.on_node_event(Event::Dm(dm(1, 4, false, "carol", "I am the other carol")));
    assert_eq!(app.title(&app.rooms[1]), format!("@carol {}", f3.short()));
    assert_eq!(app.title(&app.rooms[2]), format!("@carol {}", f4.short()));
    // Unknown people and missing profiles are said as the node says them.
    app.on_reply(Reply::DmSent {
        to: "zed".into(),
        text: "hi".into(),
        nick: None,
        result: Err(Refusal::Other(
            meshchat_node::Error::UnknownPerson("zed".into()).to_string(),
        )),
    });
    assert!(last_text(&app).contains("nobody known as \"zed\""));
    assert_eq!(app.input.text(), "/msg zed hi");
    ctrl(&mut app, 'u');
    // /msg without a text opens the conversation (several matches: the candidates again).
    let _ = app.take_actions();
    type_str(&mut app, "/msg dave");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.take_actions(), [Action::OpenDm { who: "dave".into() }]);
    let profile = |n: u8| ProfileView {
        peer_id: peer(n),
        fingerprint: key(n).public().fingerprint(),
        nick: "dave".into(),
        version: 1,
        hops: Some(2),
        connected: false,
    };
    app.on_reply(Reply::OpenDm {
        who: "dave".into(),
        result: Ok(vec![profile(5), profile(6)]),
    });
    assert!(last_text(&app).contains("dave names 2 keys"));
    app.on_reply(Reply::OpenDm {
        who: "dave".into(),
        result: Ok(vec![profile(5)]),
    });
    assert_eq!(app.title(app.room()), "@dave");
    assert_eq!(app.room().dm.as_ref().map(|d| d.peer), Some(peer(5)));
}

#[test]
fn conversations_are_listed_at_start_and_bounded() {
    let mut app = app(&["lobby"]);
    let list: Vec<Conversation> = (0..MAX_CONVERSATIONS as u64 + 10)
        .map(|n| {
            let k = key(100 + n as u8);
            Conversation {
                peer: meshchat_node::peer_id_of(&k.public()),
                nick: format!("p{n}"),
                fingerprint: k.public().fingerprint(),
                last_ms: NOW_MS - 1000 * n,
                count: 1,
            }
        })
        .collect();
    app.on_reply(Reply::Conversations {
        announce: false,
        result: Ok(list),
    });
    assert_eq!(app.rooms.len(), 1 + MAX_CONVERSATIONS);
    assert_eq!(app.title(&app.rooms[1]), "@p0", "the newest first");
    assert_eq!(app.current, 0);
    // Listing again (after missed updates) opens none twice.
    app.on_node_event(Event::Lagged { missed: 1 });
    assert!(app
        .take_actions()
        .contains(&Action::Conversations { announce: false }));
    // A DM from someone new: the quietest conversation closes to make room.
    app.on_node_event(Event::Dm(dm(1, 2, false, "bob", "hi")));
    assert_eq!(app.rooms.len(), 1 + MAX_CONVERSATIONS);
    assert_eq!(app.title(app.rooms.last().unwrap()), "@bob");
    let last = format!("@p{}", MAX_CONVERSATIONS - 1);
    assert!(app.rooms.iter().all(|r| app.title(r) != last));
    assert!(last_text(&app).contains(&format!("closed {last}")));
}

/// `/dms` (which line mode had alone) lists the node's conversations; `/dms WHO` opens one,
/// as `/msg WHO` does; aliases complete their argument like the command.
#[test]
fn dms_lists_the_conversations_and_opens_one() {
    let mut app = app(&["lobby"]);
    app.take_actions();
    type_str(&mut app, "/dms");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.take_actions(),
        [Action::Conversations { announce: true }]
    );
    app.on_reply(Reply::Conversations {
        announce: true,
        result: Ok(Vec::new()),
    });
    assert!(last_text(&app).contains("no direct messages yet"));
    let k = key(7);
    app.on_reply(Reply::Conversations {
        announce: true,
        result: Ok(vec![Conversation {
            peer: meshchat_node::peer_id_of(&k.public()),
            nick: "carol".into(),
            fingerprint: k.public().fingerprint(),
            last_ms: NOW_MS - 1000,
            count: 3,
        }]),
    });
    let short = k.public().fingerprint().short();
    assert!(
        last_text(&app).contains(&format!("@carol {short} (3)")),
        "{}",
        last_text(&app)
    );
    assert_eq!(app.title(&app.rooms[1]), "@carol", "and it is open");
    app.take_actions();
    type_str(&mut app, "/dms carol");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.take_actions(),
        [Action::OpenDm {
            who: "carol".into()
        }]
    );
    // An alias completes its argument as its command does.
    type_str(&mut app, "/j lob");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "/j lobby ");
    ctrl(&mut app, 'u');
    // A wrong number of arguments names the usage.
    type_str(&mut app, "/rooms all");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        last_text(&app),
        "too many arguments (\"all\"); usage: /rooms"
    );
}

#[test]
fn rooms_stay_before_conversations_and_leave_closes_a_conversation() {
    let mut app = app(&["lobby"]);
    app.on_node_event(Event::Dm(dm(1, 2, false, "bob", "hi")));
    empty_pages(&mut app);
    app.switch_to(1);
    app.on_reply(Reply::Joined {
        room: "dev".into(),
        private: None,
        result: Ok(true),
    });
    let names: Vec<String> = app.rooms.iter().map(|r| app.title(r)).collect();
    assert_eq!(names, ["#lobby", "#dev", "@bob"]);
    assert_eq!(app.current, 1);
    // Room completion does not offer conversations.
    type_str(&mut app, "/join ");
    assert_eq!(app.candidates(), ["lobby ", "dev "]);
    ctrl(&mut app, 'u');
    // /leave in a conversation closes it, asking the node nothing.
    app.switch_to(2);
    let _ = app.take_actions();
    type_str(&mut app, "/leave");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.rooms.len(), 2);
    assert!(app.take_actions().is_empty());
    assert!(last_text(&app).contains("closed @bob"));
}

#[test]
fn whois_shows_profiles_of_people_who_never_wrote_in_a_room() {
    let mut app = app(&["lobby"]);
    deliver(&mut app, msg(1, "lobby", 2, "bob", "hello"));
    type_str(&mut app, "/whois erin");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.take_actions(),
        [Action::Whois {
            query: "erin".into()
        }]
    );
    let profile = |n: u8, nick: &str, hops| ProfileView {
        peer_id: peer(n),
        fingerprint: key(n).public().fingerprint(),
        nick: nick.into(),
        version: 1,
        hops,
        connected: false,
    };
    app.on_reply(Reply::Whois {
        query: "erin".into(),
        peers: Ok(Vec::new()),
        profiles: Ok(vec![profile(5, "erin", Some(3))]),
    });
    let Some(Overlay::Whois { rows, .. }) = &app.overlay else {
        panic!("the whois panel")
    };
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].nick.as_str(), rows[0].reach),
        ("erin", Reach::Hops(Some(3)))
    );
    // Someone known from a room and by profile is one row, with both.
    app.on_reply(Reply::Whois {
        query: "bob".into(),
        peers: Ok(Vec::new()),
        profiles: Ok(vec![profile(2, "bob", None)]),
    });
    let Some(Overlay::Whois { rows, .. }) = &app.overlay else {
        panic!("the whois panel")
    };
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].reach, Reach::Hops(None));
    assert!(rows[0].last_seen_ms.is_some());
    // Known from a room only: no profile reached the node.
    app.on_reply(Reply::Whois {
        query: "bob".into(),
        peers: Ok(Vec::new()),
        profiles: Ok(Vec::new()),
    });
    let Some(Overlay::Whois { rows, .. }) = &app.overlay else {
        panic!("the whois panel")
    };
    assert_eq!(rows[0].reach, Reach::NoProfile);
}

#[test]
fn routes_open_a_panel() {
    let mut app = app(&["lobby"]);
    type_str(&mut app, "/routes");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.take_actions(), [Action::Routes]);
    app.on_reply(Reply::Routes(Err("the node has stopped".into())));
    assert!(app.overlay.is_none());
    app.on_reply(Reply::Routes(Ok(Vec::new())));
    assert!(matches!(&app.overlay, Some(Overlay::Routes(r)) if r.is_empty()));
}

mod private;
