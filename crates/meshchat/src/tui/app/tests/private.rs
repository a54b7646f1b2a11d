//! Private rooms in the interface: the passphrase kept out of sight, the commands and their
//! answers, invites and removals, the room kinds from the node.

use super::super::super::room::Body;
use super::super::super::tests::fixtures::*;
use super::super::*;
use super::texts;
use meshchat_node::{MemberView, PrivateKind, RoomView};

fn last_notice(app: &App) -> String {
    app.room()
        .entries()
        .iter()
        .rev()
        .find(|e| matches!(e.body, Body::Notice { .. }))
        .map(|e| e.text().to_owned())
        .unwrap_or_default()
}

fn api_member(n: u8, nick: &str, admin: bool) -> meshchat_api::Member {
    meshchat_api::Member {
        peer_id: peer(n).to_string(),
        fingerprint: key(n).public().fingerprint().to_string(),
        nick: nick.into(),
        admin,
    }
}

/// `/join ROOM --key P` asks the node for the private room, never shows the passphrase, and
/// the input history brings the line back without it.
#[test]
fn joining_with_a_passphrase_keeps_it_out_of_sight_and_of_the_history() {
    let mut app = app(&["lobby"]);
    type_str(&mut app, "/join #Team --key correct horse");
    press(&mut app, KeyCode::Enter);
    let actions = app.take_actions();
    assert_eq!(
        actions,
        [Action::Join {
            room: "team".into(),
            key: Some(Passphrase("correct horse".into())),
        }]
    );
    assert!(!format!("{actions:?}").contains("horse"));
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input.text(), "/join #Team --key ");
    ctrl(&mut app, 'u');
    // A passphrase typed without its flag is refused and not kept either.
    type_str(&mut app, "/join team horse");
    press(&mut app, KeyCode::Enter);
    assert!(app.take_actions().is_empty());
    assert!(
        !last_notice(&app).contains("horse"),
        "{}",
        last_notice(&app)
    );
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input.text(), "/join team --key ");
    ctrl(&mut app, 'u');
    app.on_reply(Reply::Joined {
        room: "team".into(),
        private: Some(PrivateKind::Passphrase),
        result: Ok(true),
    });
    assert_eq!(app.title(app.room()), "🔒#team");
    assert_eq!(last_notice(&app), "joined 🔒#team");
    let shown: Vec<String> = app
        .room()
        .entries()
        .iter()
        .chain(app.rooms[0].entries().iter())
        .map(|e| e.text().to_owned())
        .collect();
    assert!(shown.iter().all(|t| !t.contains("horse")), "{shown:?}");
}

/// `/create`, `/invite`, `/remove` and `/members` act on the private room shown, and say
/// what they did; in a public room or a conversation they are refused here.
#[test]
fn private_room_commands_and_their_answers() {
    let mut app = app(&["lobby"]);
    type_str(&mut app, "/invite bob");
    press(&mut app, KeyCode::Enter);
    assert!(app.take_actions().is_empty());
    assert!(
        last_notice(&app).contains("public room"),
        "{}",
        last_notice(&app)
    );
    type_str(&mut app, "/create Team");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.take_actions(),
        [Action::Create {
            room: "team".into()
        }]
    );
    app.on_reply(Reply::Created {
        room: "team".into(),
        result: Ok("team".into()),
    });
    assert_eq!(app.room().name, "team");
    assert_eq!(app.room().private, Some(PrivateKind::Invite));
    assert_eq!(app.room().members, Some(1));
    assert!(last_notice(&app).starts_with("created 🔒#team"));
    app.take_actions();
    for (line, action) in [
        (
            "/invite bob",
            Action::Invite {
                room: "team".into(),
                who: "bob".into(),
            },
        ),
        (
            "/remove bob",
            Action::Remove {
                room: "team".into(),
                who: "bob".into(),
            },
        ),
        (
            "/members",
            Action::Members {
                room: "team".into(),
            },
        ),
    ] {
        type_str(&mut app, line);
        press(&mut app, KeyCode::Enter);
        assert_eq!(app.take_actions(), [action], "{line}");
    }
    app.on_reply(Reply::Invited {
        room: "team".into(),
        who: "bob".into(),
        result: Ok(peer(2)),
    });
    assert_eq!(
        last_notice(&app),
        "invited bob to 🔒#team (the invite travels by DM)"
    );
    app.on_reply(Reply::Removed {
        room: "team".into(),
        who: "bob".into(),
        result: Ok(peer(2)),
    });
    assert_eq!(
        last_notice(&app),
        "removed bob from 🔒#team: a new key went to the others"
    );
    app.on_reply(Reply::Invited {
        room: "team".into(),
        who: "zed".into(),
        result: Err("nobody known as zed".into()),
    });
    assert_eq!(
        last_notice(&app),
        "cannot invite zed to 🔒#team: nobody known as zed"
    );
    let me = key(1).public().fingerprint();
    let bob = key(2).public().fingerprint();
    app.on_reply(Reply::Members {
        room: "team".into(),
        result: Ok(vec![
            MemberView {
                peer_id: peer(2),
                fingerprint: bob,
                nick: "bob".into(),
                admin: false,
            },
            MemberView {
                peer_id: peer(1),
                fingerprint: me,
                nick: "alice".into(),
                admin: true,
            },
        ]),
    });
    let t = texts(&app);
    let n = t.len();
    assert_eq!(t[n - 3], "members of 🔒#team: 2 (★: admin)");
    assert_eq!(t[n - 2], format!("★ alice {}", me.short()));
    assert_eq!(t[n - 1], format!("  bob {}", bob.short()));
    assert_eq!(app.room().members, Some(2));
}

/// An invite opens the room in the list (without leaving the room shown) and says who sent
/// it; a membership without us marks the room removed, once.
#[test]
fn an_invite_opens_the_room_and_a_removal_is_said_once() {
    let mut app = app(&["lobby"]);
    deliver(&mut app, msg(1, "lobby", 2, "bob", "hi"));
    app.on_node_event(Event::Room(meshchat_api::Event::Joined {
        room: "team".into(),
        private: Some("invite".into()),
        by: Some(peer(2).to_string()),
    }));
    assert_eq!(app.room().name, "lobby");
    assert_eq!(last_notice(&app), "bob invited you to 🔒#team");
    let i = app.room_index("team").expect("opened");
    assert_eq!(app.rooms[i].private, Some(PrivateKind::Invite));
    assert!(app
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::History { room, .. } if room == "team")));
    let members = vec![api_member(2, "bob", true), api_member(1, "alice", false)];
    app.on_node_event(Event::Room(meshchat_api::Event::Members {
        room: "team".into(),
        members: members.clone(),
    }));
    assert_eq!(app.rooms[i].members, Some(2));
    assert!(!app.rooms[i].removed);
    // Messages of the private room count as unread like any room's.
    let mut m = msg(2, "team", 2, "bob", "welcome alice");
    m.private = Some(PrivateKind::Invite);
    deliver(&mut app, m);
    assert_eq!((app.rooms[i].unread, app.rooms[i].mentions), (1, 1));
    let without_me = vec![api_member(2, "bob", true)];
    for _ in 0..2 {
        app.on_node_event(Event::Room(meshchat_api::Event::Members {
            room: "team".into(),
            members: without_me.clone(),
        }));
    }
    assert!(app.rooms[i].removed);
    assert_eq!(app.rooms[i].members, Some(1));
    let removed: Vec<String> = texts(&app)
        .into_iter()
        .filter(|t| t.starts_with("you were removed from 🔒#team"))
        .collect();
    assert_eq!(removed.len(), 1, "{removed:?}");
    app.on_node_event(Event::Room(meshchat_api::Event::Members {
        room: "team".into(),
        members,
    }));
    assert!(!app.rooms[i].removed);
    assert_eq!(last_notice(&app), "you are a member of 🔒#team again");
}

/// The node's room list at start marks the private rooms.
#[test]
fn the_room_kinds_come_from_the_node() {
    let mut app = app(&["lobby", "team"]);
    app.take_rooms(vec![
        RoomView {
            name: "lobby".into(),
            private: None,
            members: None,
        },
        RoomView {
            name: "team".into(),
            private: Some(PrivateKind::Passphrase),
            members: Some(4),
        },
    ]);
    let names: Vec<String> = app.rooms.iter().map(|r| app.title(r)).collect();
    assert_eq!(names, ["#lobby", "🔒#team"]);
    assert_eq!(app.rooms[1].members, Some(4));
}
