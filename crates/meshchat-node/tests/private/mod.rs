//! Private rooms between real nodes on loopback (issue 22, PROTOCOL §10): a passphrase room
//! across a relay that is not in it, an invite room whose removed member reads nothing new, a
//! member offline during a key change that catches up, and a wrong passphrase that says so.

use meshchat_api as api;
use meshchat_node::{Event, PrivateKind};

use crate::support::*;

/// Waits until `from` knows `to`'s profile (needed to seal an invite to it).
async fn wait_profile(from: &TestNode, to: &TestNode) {
    let who = to.peer_id.to_string();
    eventually(
        &format!("{} knows {}'s profile", from.name, to.name),
        async || from.handle.whois(&who).await.is_ok(),
    )
    .await;
}

/// Waits for the message `text` in `room`, shown as a private room's.
async fn wait_text(node: &mut TestNode, room: &str, text: &str) {
    let (room, text) = (room.to_owned(), text.to_owned());
    node.wait_for(|e| {
        matches!(e, Event::Message(m) if m.room == room && m.text == text && m.private.is_some())
    })
    .await;
}

/// Waits until `node` was invited into `room` (and joined it).
async fn wait_invited(node: &mut TestNode, room: &str) {
    let room = room.to_owned();
    node.wait_for(
        |e| matches!(e, Event::Room(api::Event::Joined { room: r, by: Some(_), .. }) if *r == room),
    )
    .await;
}

/// Waits until `node` sees `n` members in `room`.
async fn wait_members(node: &TestNode, room: &str, n: usize) {
    eventually(
        &format!("{} sees {n} members in #{room}", node.name),
        async || node.handle.members(room).await.is_ok_and(|m| m.len() == n),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passphrase_room_crosses_a_relay_that_cannot_read_it() {
    // A - R - B: R is in no private room, and relays and stores what passes.
    let mut a = TestNode::start("a", &[]).await;
    let mut r = TestNode::start("r", &[&a]).await;
    let mut b = TestNode::start("b", &[&r]).await;
    a.wait_peers(1).await;
    r.wait_peers(2).await;
    b.wait_peers(1).await;
    assert!(a
        .handle
        .join_private("hideout", "correct horse")
        .await
        .unwrap());
    assert!(b
        .handle
        .join_private("hideout", "correct horse")
        .await
        .unwrap());
    let rooms = a.handle.rooms().await.unwrap();
    assert!(rooms
        .iter()
        .any(|r| r.name == "hideout" && r.private == Some(PrivateKind::Passphrase)));

    a.send("hideout", "the eagle lands at noon").await;
    wait_text(&mut b, "hideout", "the eagle lands at noon").await;
    b.send("hideout", "copy that, eagle").await;
    wait_text(&mut a, "hideout", "copy that, eagle").await;
    assert_eq!(
        b.history_texts("hideout").await,
        ["copy that, eagle", "the eagle lands at noon"]
    );
    // R stored both (it serves them to sync) but can read neither, nor the room's name.
    r.wait_stats("the relay stored both", |s| s.stored >= 2)
        .await;
    r.assert_no_more_messages().await;
    let dir = r.stop().await;
    let bytes = dir_bytes(dir.path());
    for secret in ["the eagle lands", "copy that", "hideout", "correct horse"] {
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "the relay holds {secret:?}"
        );
    }
    // The members' own databases do hold what they read (the check above can find it).
    a.handle.shutdown().await;
    assert!(contains(&dir_bytes(&a.data_dir()), b"copy that, eagle"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_passphrase_reads_nothing_and_says_so() {
    let mut a = TestNode::start("a", &[]).await;
    let mut c = TestNode::start("c", &[&a]).await;
    a.wait_peers(1).await;
    c.wait_peers(1).await;
    a.handle
        .join_private("vault", "the right one")
        .await
        .unwrap();
    c.handle.join_private("vault", "a wrong one").await.unwrap();
    a.send("vault", "only for the right passphrase").await;
    c.wait_for(|e| matches!(e, Event::Warning(w) if w.contains("does not open with this room's passphrase")))
        .await;
    let stats = c
        .wait_stats("the refusal is counted", |s| {
            s.private_refused.get("unreadable").copied() >= Some(1)
        })
        .await;
    assert_eq!(stats.private_opened, 0);
    assert!(c.history_texts("vault").await.is_empty());
    c.assert_no_more_messages().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_room_of_four_where_the_removed_member_reads_nothing_new() {
    let mut a = TestNode::start("a", &[]).await;
    let mut b = TestNode::start("b", &[&a]).await;
    let mut c = TestNode::start("c", &[&a]).await;
    let mut d = TestNode::start("d", &[&a]).await;
    a.wait_peers(3).await;
    for n in [&mut b, &mut c, &mut d] {
        n.wait_peers(1).await;
    }
    for n in [&b, &c, &d] {
        wait_profile(&a, n).await;
    }
    assert_eq!(a.handle.create_room("team").await.unwrap(), "team");
    for n in [&b, &c, &d] {
        a.handle.invite("team", &n.name).await.unwrap();
    }
    for n in [&mut b, &mut c, &mut d] {
        wait_invited(n, "team").await;
        wait_members(n, "team", 4).await;
    }
    a.send("team", "welcome, all four").await;
    for n in [&mut b, &mut c, &mut d] {
        wait_text(n, "team", "welcome, all four").await;
    }
    d.send("team", "glad to be here").await;
    wait_text(&mut a, "team", "glad to be here").await;

    // A removes D: a new key goes to A, B and C only.
    a.handle.remove_member("team", "d").await.unwrap();
    for n in [&b, &c, &d] {
        wait_members(n, "team", 3).await;
    }
    let d_id = d.peer_id;
    assert!(!d
        .handle
        .members("team")
        .await
        .unwrap()
        .iter()
        .any(|m| m.peer_id == d_id));
    a.send("team", "after d left").await;
    for n in [&mut b, &mut c] {
        wait_text(n, "team", "after d left").await;
    }
    // D has the envelope (it relays it) but no key for it.
    d.wait_stats("d took the new message", |s| s.stored >= 8)
        .await;
    let shown = d.take_events();
    assert!(
        !shown
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.text == "after d left")),
        "d read what was written after its removal"
    );
    d.assert_no_more_messages().await;
    assert!(!d
        .history_texts("team")
        .await
        .contains(&"after d left".to_owned()));
    // D cannot write any more either: it has no current key.
    assert!(d.handle.send("team", "still here?").await.is_err());
    // B and C agree with A on the membership.
    let names = |m: Vec<meshchat_node::MemberView>| {
        let mut v: Vec<String> = m.into_iter().map(|m| m.nick).collect();
        v.sort();
        v
    };
    let want = names(a.handle.members("team").await.unwrap());
    assert_eq!(want, ["a", "b", "c"]);
    for n in [&b, &c] {
        assert_eq!(names(n.handle.members("team").await.unwrap()), want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_offline_during_a_key_change_catches_up() {
    let mut a = TestNode::start("a", &[]).await;
    let mut b = TestNode::start("b", &[&a]).await;
    let mut c = TestNode::start("c", &[&a]).await;
    a.wait_peers(2).await;
    b.wait_peers(1).await;
    c.wait_peers(1).await;
    wait_profile(&a, &b).await;
    wait_profile(&a, &c).await;
    a.handle.create_room("crew").await.unwrap();
    a.handle.invite("crew", "b").await.unwrap();
    a.handle.invite("crew", "c").await.unwrap();
    wait_invited(&mut b, "crew").await;
    wait_invited(&mut c, "crew").await;
    wait_members(&c, "crew", 3).await;
    a.send("crew", "before the change").await;
    wait_text(&mut c, "crew", "before the change").await;

    // C goes offline; A removes B (a new key, sealed to A and C) and writes under it.
    let c_dir = c.stop().await;
    a.handle.remove_member("crew", "b").await.unwrap();
    a.send("crew", "while c was away 1").await;
    a.send("crew", "while c was away 2").await;
    wait_members(&b, "crew", 2).await;

    // C comes back: the removal (with C's share of the new key) and the messages come by
    // sync, in whatever order, and C reads them all.
    let mut c = TestNode::start_in(c_dir, "c", &[&a]).await;
    c.wait_peers(1).await;
    eventually("c reads what it missed", async || {
        let texts = c.history_texts("crew").await;
        texts.contains(&"while c was away 1".to_owned())
            && texts.contains(&"while c was away 2".to_owned())
    })
    .await;
    wait_members(&c, "crew", 2).await;
    c.send("crew", "back again").await;
    wait_text(&mut a, "crew", "back again").await;
    // B, removed, reads none of it.
    let b_texts = b.history_texts("crew").await;
    assert!(!b_texts
        .iter()
        .any(|t| t.contains("while c was away") || t == "back again"));
}
