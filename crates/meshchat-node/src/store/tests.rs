//! Store tests: idempotent inserts, history order and paging, peers, corruption refused.

use super::*;
use meshchat_core::envelope::{Draft, Kind};
use meshchat_core::Keypair;

fn msg(key: &Keypair, room: &str, ts: u64, text: &str) -> Envelope {
    let body = Text {
        nick: "n".into(),
        text: text.into(),
    }
    .encode()
    .unwrap();
    Envelope::sign(
        key,
        Draft {
            kind: Kind::RoomText,
            target: room,
            timestamp_ms: ts,
            nonce: ts,
            body: &body,
        },
    )
    .unwrap()
}

#[test]
fn insert_is_idempotent_and_reports_fresh() {
    let mut s = Store::open_in_memory().unwrap();
    let k = Keypair::from_secret_bytes(&[1; 32]);
    let a = msg(&k, "lobby", 10, "a");
    let b = msg(&k, "lobby", 20, "b");
    assert_eq!(
        s.insert_messages(&[a.clone(), b.clone()], 0).unwrap(),
        [true, true]
    );
    assert_eq!(
        s.insert_messages(&[b.clone(), a.clone()], 0).unwrap(),
        [false, false]
    );
    // A duplicate inside one batch is fresh only once.
    let c = msg(&k, "lobby", 30, "c");
    assert_eq!(
        s.insert_messages(&[c.clone(), c.clone()], 0).unwrap(),
        [true, false]
    );
    assert!(s.contains(&a.id()).unwrap());
    assert_eq!(s.message_count("lobby").unwrap(), 3);
}

#[test]
fn history_is_in_display_order_and_pages() {
    let mut s = Store::open_in_memory().unwrap();
    let k = Keypair::from_secret_bytes(&[2; 32]);
    // Inserted out of order (a late arrival); shown by author timestamp.
    let envs: Vec<_> = [50, 10, 40, 20, 30]
        .iter()
        .map(|ts| msg(&k, "r", *ts, &format!("t{ts}")))
        .collect();
    s.insert_messages(&envs, 0).unwrap();
    s.insert_messages(&[msg(&k, "other", 5, "x")], 0).unwrap();
    let all = s.history("r", 100, None).unwrap();
    let ts: Vec<u64> = all.iter().map(|m| m.timestamp_ms).collect();
    assert_eq!(ts, [10, 20, 30, 40, 50]);
    let last2 = s.history("r", 2, None).unwrap();
    assert_eq!(
        last2.iter().map(|m| m.timestamp_ms).collect::<Vec<_>>(),
        [40, 50]
    );
    let before = s
        .history("r", 2, Some((last2[0].timestamp_ms, last2[0].id)))
        .unwrap();
    assert_eq!(
        before.iter().map(|m| m.timestamp_ms).collect::<Vec<_>>(),
        [20, 30]
    );
    assert_eq!(all[0].text, "t10");
}

#[test]
fn rooms_peers_settings() {
    let s = Store::open_in_memory().unwrap();
    s.join_room("lobby", 1).unwrap();
    s.join_room("dev", 2).unwrap();
    s.join_room("lobby", 3).unwrap();
    assert_eq!(s.joined_rooms().unwrap(), ["lobby", "dev"]);
    s.leave_room("lobby").unwrap();
    assert_eq!(s.joined_rooms().unwrap(), ["dev"]);

    s.upsert_peer("p1", &["/ip4/1.2.3.4/tcp/1".into()], 10)
        .unwrap();
    s.upsert_peer("p2", &["/ip4/1.2.3.4/tcp/2".into()], 20)
        .unwrap();
    s.upsert_peer("p1", &["/ip4/1.2.3.4/tcp/3".into()], 30)
        .unwrap();
    let peers = s.known_peers(10).unwrap();
    assert_eq!(peers[0].peer_id, "p1");
    assert_eq!(peers[0].addrs, ["/ip4/1.2.3.4/tcp/3", "/ip4/1.2.3.4/tcp/1"]);
    assert_eq!(peers[1].peer_id, "p2");

    assert_eq!(s.setting("nick").unwrap(), None);
    s.set_setting("nick", "alice").unwrap();
    s.set_setting("nick", "bob").unwrap();
    assert_eq!(s.setting("nick").unwrap().as_deref(), Some("bob"));
}

#[test]
fn persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let k = Keypair::from_secret_bytes(&[3; 32]);
    let e = msg(&k, "lobby", 1, "kept");
    {
        let mut s = Store::open(&path).unwrap();
        s.insert_messages(std::slice::from_ref(&e), 0).unwrap();
        s.close().unwrap();
    }
    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.history("lobby", 10, None).unwrap()[0].text, "kept");
    assert_eq!(s.insert_messages(&[e], 0).unwrap(), [false]);
}

#[test]
fn garbage_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let garbage = b"this is not a database, it is a diary entry".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn damaged_pages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let mut s = Store::open(&path).unwrap();
        let k = Keypair::from_secret_bytes(&[4; 32]);
        let envs: Vec<_> = (0..500).map(|i| msg(&k, "lobby", i, "some text")).collect();
        s.insert_messages(&envs, 0).unwrap();
        s.close().unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8192);
    // Scribble over the second page (a b-tree page) but keep the header intact.
    for b in &mut bytes[4096..4096 + 200] {
        *b = 0xAB;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "file was modified");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    assert!(matches!(Store::open(&path), Err(Error::TooNew(99))));
}
