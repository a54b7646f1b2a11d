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
fn a_roster_is_remembered_in_one_transaction_and_the_list_stays_bounded() {
    let s = Store::open_in_memory().unwrap();
    s.upsert_peer("old", &["/ip4/1.2.3.4/tcp/9".into()], 5)
        .unwrap();
    s.upsert_peer("p1", &["/ip4/1.2.3.4/tcp/1".into()], 10)
        .unwrap();
    let addrs: Vec<(String, Vec<String>)> = (1..MAX_KNOWN_PEERS)
        .map(|i| (format!("r{i}"), vec![format!("/ip4/10.0.0.1/tcp/{i}")]))
        .collect();
    let mut rows: Vec<(&str, &[String])> = addrs
        .iter()
        .map(|(p, a)| (p.as_str(), a.as_slice()))
        .collect();
    let p1 = ["/ip4/1.2.3.4/tcp/2".to_string()];
    rows.push(("p1", &p1));
    let before = s.conn.total_changes();
    s.upsert_peers(&rows, 20).unwrap();
    // One write per peer, then one trim for the batch: the least recently seen goes.
    assert_eq!(s.conn.total_changes() - before, rows.len() as u64 + 1);
    let known = s.known_peers(2 * MAX_KNOWN_PEERS as usize).unwrap();
    assert_eq!(known.len() as i64, MAX_KNOWN_PEERS);
    assert!(known.iter().all(|p| p.peer_id != "old"));
    let p1 = known.iter().find(|p| p.peer_id == "p1").unwrap();
    assert_eq!(p1.addrs, ["/ip4/1.2.3.4/tcp/2", "/ip4/1.2.3.4/tcp/1"]);
    assert!(s.upsert_peers(&[], 30).is_ok());
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

#[test]
fn a_version_1_database_is_migrated_with_its_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let k = Keypair::from_secret_bytes(&[5; 32]);
    // Author times 30, 10, 20 received at 1, 2, 3: arrival order is receipt order.
    let envs = [(30, 1), (10, 2), (20, 3)].map(|(ts, at)| (msg(&k, "lobby", ts, "t"), at));
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE messages (id BLOB PRIMARY KEY NOT NULL, room TEXT NOT NULL,
                author BLOB NOT NULL, nick TEXT NOT NULL, ts INTEGER NOT NULL,
                text TEXT NOT NULL, envelope BLOB NOT NULL, received_at INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX messages_room_ts ON messages (room, ts, id);
             CREATE TABLE rooms (name TEXT PRIMARY KEY NOT NULL, joined_at INTEGER NOT NULL);
             CREATE TABLE peers (peer_id TEXT PRIMARY KEY NOT NULL, addrs TEXT NOT NULL,
                last_seen INTEGER NOT NULL);
             CREATE TABLE settings (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
             INSERT INTO rooms VALUES ('lobby', 0);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        for (e, at) in &envs {
            c.execute(
                "INSERT INTO messages VALUES (?1, 'lobby', ?2, 'n', ?3, 't', ?4, ?5)",
                params![
                    &e.id().0[..],
                    &e.author().as_bytes()[..],
                    e.timestamp_ms() as i64,
                    e.as_bytes(),
                    at
                ],
            )
            .unwrap();
        }
    }
    let mut s = Store::open(&path).unwrap();
    let by_arrival: Vec<u64> = s
        .arrived_after(0, 10)
        .unwrap()
        .iter()
        .map(|m| m.timestamp_ms)
        .collect();
    assert_eq!(by_arrival, [30, 10, 20]);
    assert_eq!(s.last_seq(), 3);
    assert!(s
        .history("lobby", 10, None)
        .unwrap()
        .iter()
        .all(|m| !m.synced));
    // New arrivals continue the order.
    let late = msg(&k, "lobby", 5, "late");
    s.insert_messages(std::slice::from_ref(&late), 0).unwrap();
    let after = s.arrived_after(3, 10).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!((after[0].id, after[0].seq), (late.id(), 4));
}

#[test]
fn arrival_order_skips_duplicates_and_rooms_not_joined() {
    let mut s = Store::open_in_memory().unwrap();
    s.join_room("lobby", 0).unwrap();
    let k = Keypair::from_secret_bytes(&[6; 32]);
    let a = msg(&k, "lobby", 50, "a");
    let b = msg(&k, "elsewhere", 60, "b");
    let c = msg(&k, "lobby", 10, "c");
    s.insert_messages(&[a.clone(), b, a.clone(), c], 0).unwrap();
    let got: Vec<(String, u64)> = s
        .arrived_after(0, 10)
        .unwrap()
        .into_iter()
        .map(|m| (m.text, m.seq))
        .collect();
    // "b" took seq 2 (it is stored, to serve sync) but its room is not joined.
    assert_eq!(got, [("a".to_owned(), 1), ("c".to_owned(), 3)]);
    assert_eq!(s.arrived_after(1, 1).unwrap()[0].text, "c");
}

#[test]
fn sync_queries_and_the_bounds_on_relayed_rooms() {
    let mut s = Store::open_in_memory().unwrap();
    s.join_room("mine", 0).unwrap();
    let k = Keypair::from_secret_bytes(&[7; 32]);
    let mine: Vec<_> = (0..5).map(|i| msg(&k, "mine", 100 + i, "m")).collect();
    let relayed: Vec<_> = (0..20).map(|i| msg(&k, "theirs", 200 + i, "r")).collect();
    s.insert_messages(&mine, 0).unwrap();
    s.insert_messages(&relayed, 0).unwrap();

    let items = s.sync_items(0, 1000).unwrap();
    assert_eq!(items.len(), 25);
    assert_eq!(s.sync_items(210, 1000).unwrap().len(), 10);
    assert_eq!(s.sync_items(0, 3).unwrap()[0].0, 219, "the newest first");
    let ids = [relayed[3].id(), MessageId([9; 32]), mine[0].id()];
    let got = s.envelopes(&ids).unwrap();
    assert_eq!(
        got,
        [relayed[3].as_bytes().to_vec(), mine[0].as_bytes().to_vec()]
    );
    assert_eq!(s.missing(&ids).unwrap(), [MessageId([9; 32])]);

    // The window drops old relayed messages, never those of a joined room.
    let mut relayed_count = None;
    assert_eq!(
        s.prune_relayed(205, u64::MAX, &mut relayed_count).unwrap(),
        5
    );
    assert_eq!(s.message_count("mine").unwrap(), 5);
    assert_eq!(s.message_count("theirs").unwrap(), 15);
    // The budget drops the oldest relayed ones until they fit.
    let each = relayed[0].as_bytes().len() as u64;
    assert_eq!(s.relayed_bytes().unwrap(), 15 * each);
    assert_eq!(
        relayed_count,
        Some(15 * each),
        "the running count follows the deletions"
    );
    assert_eq!(
        s.prune_relayed(0, 10 * each, &mut relayed_count).unwrap(),
        5
    );
    assert_eq!(relayed_count, Some(10 * each));
    // A count the caller kept (here, one stored message too many) is trusted, not re-read.
    let mut stale = Some(11 * each);
    assert_eq!(s.prune_relayed(0, 10 * each, &mut stale).unwrap(), 1);
    assert_eq!(s.relayed_bytes().unwrap(), 9 * each);
    let left: Vec<u64> = s
        .history("theirs", 100, None)
        .unwrap()
        .iter()
        .map(|m| m.timestamp_ms)
        .collect();
    assert_eq!(left, (211..220).collect::<Vec<_>>());
    assert_eq!(s.message_count("mine").unwrap(), 5);
}

#[test]
fn injected_write_failures_store_nothing() {
    let mut s = Store::open_in_memory().unwrap();
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    s.fail_writes_when(flag.clone());
    let k = Keypair::from_secret_bytes(&[8; 32]);
    let e = msg(&k, "lobby", 1, "x");
    assert!(s.insert_messages(std::slice::from_ref(&e), 0).is_err());
    assert!(!s.contains(&e.id()).unwrap());
    flag.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(s.insert_messages(&[e], 0).unwrap(), [true]);
    assert_eq!(s.last_seq(), 1, "a failed write uses no arrival number");
}

/// A crash leaves a `-wal` file beside the database; one whose last frames were damaged (a torn
/// write, a failing card) opens, keeps every transaction committed before the damage, and the
/// database checks clean: SQLite replays the frames whose checksums hold and ignores the rest
/// (issue 18). Nothing that was stored before the damaged write is lost.
#[test]
fn a_damaged_wal_left_by_a_crash_keeps_what_was_committed_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meshchat.sqlite");
    let k = Keypair::from_secret_bytes(&[9; 32]);
    let mut s = Store::open(&path).unwrap();
    let first: Vec<Envelope> = (0..20)
        .map(|i| msg(&k, "lobby", 100 + i, "early"))
        .collect();
    s.insert_messages(&first, 0).unwrap();
    let last: Vec<Envelope> = (0..20).map(|i| msg(&k, "lobby", 200 + i, "late")).collect();
    s.insert_messages(&last, 0).unwrap();
    // The crash: copy the files as they are while the connection is open (nothing checkpointed).
    let crashed = tempfile::tempdir().unwrap();
    let copy = crashed.path().join("meshchat.sqlite");
    std::fs::copy(&path, &copy).unwrap();
    let wal = std::fs::read(path.with_extension("sqlite-wal")).unwrap();
    assert!(wal.len() > 32, "the messages are still in the WAL");
    // Damage the last frame's bytes.
    let mut damaged = wal.clone();
    let n = damaged.len();
    for b in &mut damaged[n - 200..n - 100] {
        *b ^= 0xa5;
    }
    std::fs::write(copy.with_extension("sqlite-wal"), &damaged).unwrap();
    drop(s);
    let reopened = Store::open(&copy).expect("a damaged WAL does not stop the node");
    assert!(reopened.recovered(), "the node says it recovered");
    let shown = reopened.history("lobby", 100, None).unwrap();
    let early = shown.iter().filter(|m| m.text == "early").count();
    assert_eq!(early, 20, "what was committed before the damage is kept");
    assert!(shown.iter().filter(|m| m.text == "late").count() < 20);
}

/// Every write path fails cleanly on a full disk (issue 18): an error, nothing half-written,
/// nothing stored before lost, and it works again once the disk has room. A failed checkpoint
/// at close leaves the WAL, so a restart still finds everything.
#[test]
fn every_write_fails_whole_and_loses_nothing_stored_before() {
    use crate::store::dm::{DmRow, ItemRow, ProfileRow};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meshchat.sqlite");
    let k = Keypair::from_secret_bytes(&[8; 32]);
    let profile = |version: u64, nick: &str| ProfileRow {
        author: [5; 32],
        version,
        nick: nick.into(),
        seal_key: [9; 32],
        id: MessageId([version as u8; 32]),
        timestamp_ms: version,
    };
    let item = |attempts: u32| ItemRow {
        role: 1,
        id: [3; 32],
        frame: vec![3, 0, 1],
        from: Some([4; 32]),
        attempts,
        hold_until_ms: 99,
    };
    let dm = |id: u8| DmRow {
        id: MessageId([id; 32]),
        dm_id: Some([id ^ 0x80; 32]),
        peer: [7; 32],
        author: [0; 32],
        recipient: [7; 32],
        nick: "n".into(),
        timestamp_ms: 10,
        text: format!("dm {id}"),
        own: true,
        state: Some(0),
        seq: 0,
    };
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut s = Store::open(&path).unwrap();
    s.fail_writes_when(flag.clone());
    // Before the disk fills: one of everything.
    let before = msg(&k, "lobby", 1, "before");
    assert_eq!(
        s.insert_messages(std::slice::from_ref(&before), 0).unwrap(),
        [true]
    );
    s.join_room("lobby", 1).unwrap();
    s.upsert_peer("peer-a", &["/ip4/10.0.0.1/tcp/1".into()], 1)
        .unwrap();
    s.set_setting("nick", "before").unwrap();
    assert!(s.put_profile(&profile(1, "one"), b"v1").unwrap());
    s.put_item(&item(1)).unwrap();
    assert_eq!(s.insert_dm(&dm(1)).unwrap(), Some(1));

    flag.store(true, std::sync::atomic::Ordering::Relaxed);
    let after = msg(&k, "lobby", 2, "after");
    assert!(s.insert_messages(std::slice::from_ref(&after), 0).is_err());
    assert!(s.join_room("other", 2).is_err());
    assert!(s.leave_room("lobby").is_err());
    assert!(s
        .upsert_peer("peer-b", &["/ip4/10.0.0.2/tcp/1".into()], 2)
        .is_err());
    assert!(s
        .upsert_peer("peer-a", &["/ip4/10.0.0.3/tcp/1".into()], 2)
        .is_err());
    let b = ["/ip4/10.0.0.4/tcp/1".to_string()];
    assert!(s
        .upsert_peers(&[("peer-b", &b), ("peer-a", &b)], 2)
        .is_err());
    // Nothing to write is no failure: a roster of peers all remembered writes nothing.
    assert!(s.upsert_peers(&[], 2).is_ok());
    assert!(s.set_setting("nick", "after").is_err());
    assert!(s.put_profile(&profile(2, "two"), b"v2").is_err());
    assert!(s.put_item(&item(2)).is_err());
    assert!(s.remove_item(1, &[3; 32]).is_err());
    assert!(s.insert_dm(&dm(2)).is_err());
    assert!(s.set_dm_state(&[1 ^ 0x80; 32], 2).is_err());
    assert!(s.prune_relayed(u64::MAX, 0, &mut None).is_err());

    // Nothing of the failed writes, everything from before.
    let check = |s: &Store| {
        let texts: Vec<String> = s
            .history("lobby", 10, None)
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(texts, ["before"]);
        assert_eq!(s.joined_rooms().unwrap(), ["lobby"]);
        let peers = s.known_peers(10).unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].addrs, ["/ip4/10.0.0.1/tcp/1"]);
        assert_eq!(s.setting("nick").unwrap().as_deref(), Some("before"));
        let profiles = s.profiles(10).unwrap();
        assert_eq!(profiles.len(), 1);
        assert_eq!(profiles[0].0.nick, "one");
        let items = s.items().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].attempts, 1);
        let dms = s.dm_history(&[7; 32], 10, None).unwrap();
        assert_eq!(dms.len(), 1);
        assert_eq!(dms[0].state, Some(0));
    };
    check(&s);
    // The checkpoint at close fails too; the WAL keeps what was committed.
    assert!(s.close().is_err());
    let mut s = Store::open(&path).unwrap();
    check(&s);

    // Room again: every write works.
    s.fail_writes_when(flag.clone());
    flag.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(s.insert_messages(&[after], 0).unwrap(), [true]);
    s.set_setting("nick", "after").unwrap();
    assert_eq!(s.insert_dm(&dm(2)).unwrap(), Some(2));
    s.close().unwrap();
}

/// A clean stop leaves no write-ahead log, so the next start has nothing to say; a stop
/// without `close` (a crash) leaves one, and the next start says it recovered.
#[test]
fn only_an_unclean_stop_is_reported_as_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meshchat.sqlite");
    let k = Keypair::from_secret_bytes(&[6; 32]);
    let mut s = Store::open(&path).unwrap();
    assert!(!s.recovered(), "a new database");
    s.insert_messages(&[msg(&k, "lobby", 1, "a")], 0).unwrap();
    s.close().unwrap();
    let mut s = Store::open(&path).unwrap();
    assert!(!s.recovered(), "after a clean stop");
    s.insert_messages(&[msg(&k, "lobby", 2, "b")], 0).unwrap();
    // A crash: the WAL as it stands, copied beside a copy of the database before SQLite's
    // close checkpoints it.
    let copy = dir.path().join("crashed.sqlite");
    std::fs::copy(&path, &copy).unwrap();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let mut copy_wal = copy.as_os_str().to_owned();
    copy_wal.push("-wal");
    std::fs::copy(&wal, &copy_wal).unwrap();
    drop(s);
    let s = Store::open(&copy).unwrap();
    assert!(s.recovered());
    assert_eq!(s.history("lobby", 10, None).unwrap().len(), 2);
}

/// SQLite's virtual-machine steps while `f` runs on `s`: the cost of its queries, with no clock.
fn sqlite_steps(s: &mut Store, f: impl FnOnce(&mut Store)) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let steps = Arc::new(AtomicU64::new(0));
    let counter = steps.clone();
    s.conn.progress_handler(
        1,
        Some(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            false
        }),
    );
    f(s);
    s.conn.progress_handler(0, None::<fn() -> bool>);
    steps.load(Ordering::Relaxed)
}

/// Pruning relayed rooms costs what is relayed, not the joined rooms' history (issue 19's
/// rerun found each prune reading all 100 000 old messages of a joined room, 1.5 s with the
/// actor stopped). Counted in SQLite's virtual-machine steps, so no clock is involved: a hundred
/// times more old messages in a joined room must not make a prune cost more than twice as much.
#[test]
fn pruning_relayed_rooms_does_not_read_the_joined_history() {
    let k = Keypair::from_secret_bytes(&[3; 32]);
    let cost = |joined_old: u64| -> u64 {
        let mut s = Store::open_in_memory().unwrap();
        s.join_room("mine", 0).unwrap();
        let mut envs: Vec<Envelope> = (0..joined_old)
            .map(|i| msg(&k, "mine", 1 + i, "old"))
            .collect();
        envs.extend((0..20).map(|i| msg(&k, "theirs", 10_000_000 + i, "relayed")));
        for chunk in envs.chunks(500) {
            s.insert_messages(chunk, 0).unwrap();
        }
        // Everything before 9 000 000 is outside the window: the joined room's messages, none
        // of the relayed ones; and a budget that keeps them all.
        let steps = sqlite_steps(&mut s, |s| {
            s.prune_relayed(9_000_000, u64::MAX, &mut None).unwrap();
        });
        assert_eq!(s.message_count("mine").unwrap(), joined_old);
        assert_eq!(s.message_count("theirs").unwrap(), 20);
        steps
    };
    let (small, large) = (cost(20), cost(2_000));
    assert!(
        large < 2 * small,
        "{small} steps with 20 old joined messages, {large} with 2 000"
    );
}

/// Reading arrivals after a point costs what is read, not the room's history: with `room IN
/// (joined rooms)` SQLite walked the room index and sorted the whole room by arrival, 400 ms a
/// call with 100 000 messages, and the web UI's first screen (which finds the newest arrival
/// with ~20 such calls) took 9 s. Counted in SQLite's steps, as above.
#[test]
fn reading_arrivals_does_not_read_the_whole_room() {
    let k = Keypair::from_secret_bytes(&[3; 32]);
    let cost = |history: u64| -> u64 {
        let mut s = Store::open_in_memory().unwrap();
        s.join_room("mine", 0).unwrap();
        let envs: Vec<Envelope> = (0..history).map(|i| msg(&k, "mine", 1 + i, "m")).collect();
        for chunk in envs.chunks(500) {
            s.insert_messages(chunk, 0).unwrap();
        }
        // The last five, then nothing after the newest.
        sqlite_steps(&mut s, |s| {
            assert_eq!(s.arrived_after(history - 5, 10).unwrap().len(), 5);
            assert!(s.arrived_after(history, 10).unwrap().is_empty());
        })
    };
    let (small, large) = (cost(20), cost(2_000));
    assert!(
        large < 2 * small,
        "{small} steps with 20 messages, {large} with 2 000"
    );
}

/// The node's store moves the log into the database file from its own thread (issue 25): the
/// messages reach the main file with no checkpoint by the writer, whose connection checkpoints
/// only as a backstop far beyond this many pages.
#[test]
fn the_log_is_checkpointed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meshchat.sqlite");
    let k = Keypair::from_secret_bytes(&[7; 32]);
    let mut s = Store::open(&path).unwrap();
    s.checkpoint_in_background(&path).unwrap();
    let backstop: i64 = s
        .conn
        .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
        .unwrap();
    assert_eq!(backstop, i64::from(checkpoint::BACKSTOP_PAGES));
    let before = std::fs::metadata(&path).unwrap().len();
    let batch: Vec<Envelope> = (0..200)
        .map(|i| msg(&k, "lobby", 1000 + i, &"x".repeat(500)))
        .collect();
    s.insert_messages(&batch, 0).unwrap();
    let wal = std::fs::metadata(path.with_extension("sqlite-wal"))
        .unwrap()
        .len();
    assert!(
        wal > 100_000,
        "the messages went to the log first ({wal} bytes)"
    );
    // Deadline, not a fixed wait: the thread checkpoints every `EVERY` (5 s).
    let deadline = std::time::Instant::now() + checkpoint::EVERY * 20;
    loop {
        let now = std::fs::metadata(&path).unwrap().len();
        if now > before + 100_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file did not grow ({before} -> {now} bytes)"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    s.close().unwrap();
    let reopened = Store::open(&path).unwrap();
    assert_eq!(reopened.history("lobby", 1000, None).unwrap().len(), 200);
}
