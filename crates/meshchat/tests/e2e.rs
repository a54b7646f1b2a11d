//! End to end: the real `meshchat` binary, several processes on loopback in `--json` mode.
//! Every wait has a deadline; no fixed sleeps.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
use support::{Proc, BIN, DEADLINE};

/// alice in JSON mode and bob in line mode dialing her, connected.
fn json_and_plain(dirs: &[tempfile::TempDir]) -> (Proc, PlainProc) {
    let mut a = Proc::start("alice", dirs[0].path(), &[]);
    let mut b = PlainProc::start("bob", dirs[1].path(), &a.addr.clone());
    a.wait_peers(1);
    b.wait_line("* peer connected");
    (a, b)
}

/// alice - bob - carol in a line (each dials the one before), connected.
fn line_of_three(dirs: &[tempfile::TempDir]) -> (Proc, Proc, Proc) {
    let mut a = Proc::start("alice", dirs[0].path(), &[]);
    let a_addr = a.addr.clone();
    let mut b = Proc::start("bob", dirs[1].path(), &[&a_addr]);
    let b_addr = b.addr.clone();
    let mut c = Proc::start("carol", dirs[2].path(), &[&b_addr]);
    a.wait_peers(1);
    b.wait_peers(2);
    c.wait_peers(1);
    (a, b, c)
}

#[test]
fn three_processes_chat_and_a_killed_one_comes_back_intact() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut a, mut b, mut c) = line_of_three(&dirs);

    let m1 = a.send("lobby", "hi from alice");
    let m2 = c.send("lobby", "hi from carol");
    for p in [&mut a, &mut b, &mut c] {
        let mut got = p.messages(2);
        got.sort();
        let mut want = vec![m1.clone(), m2.clone()];
        want.sort();
        assert_eq!(got, want, "{}", p.name);
    }

    // Carol is killed hard, then restarted on the same data dir with no --peer.
    c.kill9();
    b.wait_event("peer_disconnected", |_| true);
    let mut c = Proc::start("carol", dirs[2].path(), &[]);
    let history = c.history("lobby");
    let ids: Vec<_> = history.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(
        ids.contains(&m1.as_str()) && ids.contains(&m2.as_str()),
        "{history:?}"
    );
    assert_eq!(ids.len(), 2);
    // It reconnects to the peer it knew and gets what is said from now on, exactly once.
    c.wait_peers(1);
    b.wait_peers(1);
    let m3 = a.send("lobby", "welcome back");
    let got = c.wait_event("message", |_| true);
    assert_eq!(got["id"], m3.as_str());
    assert_eq!(got["nick"], "alice");
    assert_eq!(got["text"], "welcome back");
    assert_eq!(got["own"], false);
    let history = c.history("lobby");
    assert_eq!(history.len(), 3);
    // Scrolling back: the page before the newest message is the two before it, in order, and
    // the page before the first is empty.
    let at = |m: &Value| json!({"ts": m["ts"], "id": m["id"]});
    c.cmd(json!({"cmd": "history", "room": "lobby", "limit": 5, "before": at(&history[2])}));
    let page = c.wait_event("history", |_| true);
    assert_eq!(page["messages"].as_array().unwrap()[..], history[..2]);
    assert_eq!(page["before"], at(&history[2]));
    c.cmd(json!({"cmd": "history", "room": "lobby", "before": at(&history[0])}));
    let page = c.wait_event("history", |_| true);
    assert_eq!(page["messages"], json!([]));
    c.cmd(json!({"cmd": "history", "room": "lobby", "before": {"ts": 1, "id": "zz"}}));
    let err = c.wait_event("error", |_| true);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("bad history position"),
        "{err}"
    );
    // Arrival numbers grow with arrival (carol stored the new message last).
    assert!(got["seq"].as_u64().unwrap() > 0);
    assert_eq!(
        history.iter().map(|m| m["seq"].as_u64().unwrap()).max(),
        got["seq"].as_u64()
    );
    assert!(
        c.backlog.iter().all(|v| v["event"] != "message"),
        "{:?}",
        c.backlog
    );

    for p in [a, b, c] {
        let name = p.name.clone();
        assert!(p.quit().success(), "{name} exit status");
    }
}

/// The JSON contract of direct messages, between real processes: alice - bob - carol in a
/// line. Alice's DM to carol (by nick) goes through bob, comes back delivered, and both ends'
/// histories have it; a nick two keys use is refused with both fingerprints.
#[test]
fn json_direct_messages_across_a_relay_with_states_and_history() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut a, b, mut c) = line_of_three(&dirs);

    // Carol's profile and a 2-hop route reach alice.
    let deadline = Instant::now() + DEADLINE;
    loop {
        a.cmd(json!({"cmd": "routes"}));
        let routes = a.wait_event("routes", |_| true);
        let two_hops = routes["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dest"] == c.peer_id.as_str() && r["hops"] == 2 && r["nick"] == "carol");
        if two_hops {
            break;
        }
        assert!(Instant::now() < deadline, "no route to carol: {routes}");
        std::thread::sleep(Duration::from_millis(50));
    }
    a.cmd(json!({"cmd": "whois", "who": "carol"}));
    let who = a.wait_event("whois", |_| true);
    assert_eq!(who["profiles"][0]["peer_id"], c.peer_id.as_str());
    assert_eq!(who["profiles"][0]["hops"], 2);

    let text = "a direct word for carol";
    a.cmd(json!({"cmd": "dm", "to": "carol", "text": text}));
    let sent = a.wait_event("dm_sent", |_| true);
    let id = sent["id"].as_str().unwrap().to_owned();
    assert_eq!(sent["to"], c.peer_id.as_str());
    let own = a.wait_event("dm", |v| v["id"] == id.as_str());
    assert_eq!(
        (own["own"].as_bool(), own["text"].as_str()),
        (Some(true), Some(text))
    );
    let got = c.wait_event("dm", |v| v["id"] == id.as_str());
    assert_eq!(got["from"], a.peer_id.as_str());
    assert_eq!(
        (got["nick"].as_str(), got["own"].as_bool()),
        (Some("alice"), Some(false))
    );
    let mut states = Vec::new();
    while states.last().map(String::as_str) != Some("delivered") {
        let s = a.wait_event("dm_status", |v| v["id"] == id.as_str());
        states.push(s["state"].as_str().unwrap().to_owned());
    }
    assert_eq!(states, ["queued", "sent", "delivered"]);

    c.cmd(json!({"cmd": "dm_history", "with": a.peer_id.as_str()}));
    let h = c.wait_event("dm_history", |_| true);
    assert_eq!(h["messages"].as_array().unwrap().len(), 1);
    assert_eq!(h["messages"][0]["text"], text);
    a.cmd(json!({"cmd": "dm_history", "with": "carol"}));
    let h = a.wait_event("dm_history", |_| true);
    assert_eq!(h["messages"][0]["state"], "delivered");
    assert_eq!(h["before"], Value::Null);
    // Scrolling back from the only DM finds nothing older.
    let first = &h["messages"][0];
    let before = json!({"ts": first["ts"], "id": first["id"]});
    a.cmd(json!({"cmd": "dm_history", "with": "carol", "before": before}));
    let h = a.wait_event("dm_history", |_| true);
    assert_eq!(
        (h["messages"].as_array().unwrap().len(), &h["before"]),
        (0, &before)
    );
    // The conversation list names carol, with her one DM.
    c.cmd(json!({"cmd": "conversations"}));
    let list = c.wait_event("conversations", |_| true)["conversations"].clone();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        (&list[0]["peer_id"], &list[0]["nick"], &list[0]["count"]),
        (&json!(a.peer_id), &json!("alice"), &json!(1))
    );

    // A second key that calls itself carol: the nick no longer names one person.
    let b_addr = b.addr.clone();
    let mut d = Proc::start("carol", dirs[3].path(), &[&b_addr]);
    d.wait_peers(1);
    let deadline = Instant::now() + DEADLINE;
    let carols = loop {
        a.cmd(json!({"cmd": "whois", "who": "carol"}));
        let who = a.wait(|v| v["event"] == "whois" || v["event"] == "error");
        if who["profiles"].as_array().is_some_and(|p| p.len() == 2) {
            break who;
        }
        assert!(Instant::now() < deadline, "second carol not known: {who}");
        std::thread::sleep(Duration::from_millis(50));
    };
    a.cmd(json!({"cmd": "dm", "to": "carol", "text": "which one?"}));
    let err = a.wait_event("error", |_| true);
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("several keys"), "{message}");
    for p in carols["profiles"].as_array().unwrap() {
        let fp = p["fingerprint"].as_str().unwrap();
        assert!(message.contains(fp), "{fp} missing from: {message}");
    }
    a.cmd(json!({"cmd": "dm", "to": "nobody-at-all", "text": "hello?"}));
    let err = a.wait_event("error", |_| true);
    assert!(
        err["message"].as_str().unwrap().contains("nobody known"),
        "{err}"
    );
    drop(d);
}

/// Issue 12 between real processes: alice - bob - carol in a line elect one tracker, each
/// registers with it, `who` on each lists all three, and the change was announced as a
/// `tracker_changed` event (with `self` on the tracker itself).
#[test]
fn json_three_nodes_in_a_line_agree_on_a_tracker_and_list_who_is_online() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b, c) = line_of_three(&dirs);
    let mut procs = [a, b, c];

    // Everyone follows the same tracker and is registered with it.
    let deadline = Instant::now() + DEADLINE;
    let tracker = loop {
        let views: Vec<Value> = procs
            .iter_mut()
            .map(|p| {
                p.cmd(json!({"cmd": "tracker"}));
                p.wait_event("tracker", |_| true)
            })
            .collect();
        let (first, epoch) = (&views[0]["tracker"], &views[0]["epoch"]);
        if first.is_string()
            && views
                .iter()
                .all(|v| v["tracker"] == *first && v["epoch"] == *epoch && v["registered"] == true)
        {
            let serving = views.iter().filter(|v| v["self"] == true).count();
            assert_eq!(serving, 1, "{views:?}");
            break first.as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no agreed tracker: {views:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let ids: Vec<String> = procs.iter().map(|p| p.peer_id.clone()).collect();
    assert!(ids.contains(&tracker), "{tracker} is none of {ids:?}");

    // Every node's roster lists all three, itself marked.
    for p in procs.iter_mut() {
        let deadline = Instant::now() + DEADLINE;
        let peers = loop {
            p.cmd(json!({"cmd": "who"}));
            let who = p.wait_event("who", |_| true);
            let peers = who["peers"].as_array().unwrap().clone();
            if peers.len() == 3 {
                break peers;
            }
            assert!(Instant::now() < deadline, "{}: who = {who}", p.name);
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut listed: Vec<(&str, &str)> = peers
            .iter()
            .map(|e| (e["nick"].as_str().unwrap(), e["peer_id"].as_str().unwrap()))
            .collect();
        listed.sort();
        let mut want: Vec<(&str, &str)> = vec![
            ("alice", ids[0].as_str()),
            ("bob", ids[1].as_str()),
            ("carol", ids[2].as_str()),
        ];
        want.sort();
        assert_eq!(listed, want, "{}", p.name);
        let me: Vec<&Value> = peers.iter().filter(|e| e["self"] == true).collect();
        assert_eq!(me.len(), 1, "{}: {peers:?}", p.name);
        assert_eq!(me[0]["peer_id"], p.peer_id.as_str());
        assert_eq!(me[0]["hops"], 0);
        for e in &peers {
            assert!(e["fingerprint"].is_string() && e["addrs"].is_array(), "{e}");
            if e["self"] == false {
                assert!(
                    e["hops"].as_u64().is_some_and(|h| (1..=2).contains(&h)),
                    "{e}"
                );
            }
        }

        // The change of tracker was announced; the tracker's own event says `self`.
        let changed = p.wait_event("tracker_changed", |v| v["tracker"] == tracker.as_str());
        assert_eq!(changed["self"], p.peer_id == tracker, "{changed}");
        assert!(changed["epoch"].is_u64());
        p.cmd(json!({"cmd": "stats"}));
        let stats = p.wait_event("stats", |_| true);
        assert!(stats["tracker"].is_object(), "{stats}");
        assert!(stats["tracker_dropped"].is_u64() && stats["tracker_unroutable"].is_u64());
        if p.peer_id == tracker {
            assert!(stats["tracker"]["won"].as_u64() >= Some(1), "{stats}");
            assert!(
                stats["tracker"]["registrations"].as_u64() >= Some(2),
                "{stats}"
            );
        }
    }
    for p in procs {
        let name = p.name.clone();
        assert!(p.quit().success(), "{name} exit status");
    }
}

#[test]
fn bad_commands_get_error_events_and_the_node_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Proc::start("alice", dir.path(), &[]);
    a.raw("this is not json");
    assert!(a.wait_event("error", |_| true)["message"]
        .as_str()
        .unwrap()
        .contains("invalid JSON"));
    a.cmd(json!({"cmd": "fly"}));
    assert!(a.wait_event("error", |_| true)["message"]
        .as_str()
        .unwrap()
        .contains("unknown command"));
    a.cmd(json!({"cmd": "send", "room": "lobby"}));
    a.wait_event("error", |v| v["message"].as_str().unwrap().contains("text"));
    a.cmd(json!({"cmd": "join", "room": "no spaces allowed"}));
    a.wait_event("error", |v| {
        v["message"].as_str().unwrap().contains("room name")
    });
    a.cmd(json!({"cmd": "send", "room": "elsewhere", "text": "x"}));
    a.wait_event("error", |v| {
        v["message"].as_str().unwrap().contains("not in room")
    });
    a.cmd(json!({"cmd": "connect", "addr": "/not/an/addr"}));
    a.wait_event("error", |v| {
        v["message"].as_str().unwrap().contains("invalid address")
    });
    a.cmd(json!({"cmd": "connect", "addr": "/ip4/127.0.0.1/tcp/1"}));
    a.wait_event("error", |v| {
        v["message"].as_str().unwrap().contains("cannot connect")
    });
    a.raw(&format!(
        "{{\"cmd\":\"send\",\"room\":\"lobby\",\"text\":\"{}\"}}",
        "x".repeat(300_000)
    ));
    a.wait_event("error", |v| {
        v["message"].as_str().unwrap().contains("longer than")
    });
    // Still alive and well.
    let id = a.send("lobby", "still here");
    assert_eq!(a.wait_event("message", |_| true)["id"], id.as_str());
    assert!(a.quit().success());
}

fn run_to_exit(args: &[&str], data_dir: &Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn bad_startup_input_is_one_clear_line_and_a_failure_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Malformed address: a usage error.
    let (code, _, err) = run_to_exit(&["--json", "--no-mdns", "--listen", "nonsense"], d);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid value 'nonsense'"), "{err}");
    assert!(!err.contains("panicked"));
    // Unsupported address.
    let (code, _, err) = run_to_exit(
        &["--json", "--no-mdns", "--listen", "/ip4/127.0.0.1/udp/5"],
        d,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
    // Port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let (code, _, err) = run_to_exit(&["--json", "--no-mdns", "--listen", &listen], d);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already in use"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // The web UI beyond loopback needs its own flag; a bad address is a usage error.
    let (code, _, err) = run_to_exit(&["--json", "--no-mdns", "--web", "0.0.0.0:7500"], d);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--web-public"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (code, _, err) = run_to_exit(&["--json", "--web", "localhost"], d);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run_to_exit(&["--json", "--web-public"], d);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--web"), "{err}");
    // `id` works and is stable.
    let (code, out1, _) = run_to_exit(&["id"], d);
    assert_eq!(code, 0);
    let (_, out2, _) = run_to_exit(&["id"], d);
    assert_eq!(out1, out2);
    assert!(out1.contains("peer id:") && out1.contains("fingerprint:"));
}

#[test]
fn corrupt_key_or_database_stops_startup_and_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, _, _) = run_to_exit(&["id"], d);
    assert_eq!(code, 0);
    // A corrupt database.
    let db = d.join("meshchat.sqlite");
    let junk = b"not a database at all".repeat(100);
    std::fs::write(&db, &junk).unwrap();
    let (code, out, err) = run_to_exit(
        &["--json", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"],
        d,
    );
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("damaged") && err.contains("left untouched"),
        "{err}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), junk);
    std::fs::remove_file(&db).unwrap();
    // A corrupt key.
    let key = d.join("identity.key");
    std::fs::write(&key, b"meshchat-ed25519-secret-v1\nzz\n").unwrap();
    let (code, _, err) = run_to_exit(
        &["--json", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"],
        d,
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("key file") && err.contains("left untouched"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        b"meshchat-ed25519-secret-v1\nzz\n"
    );
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Proc::start("alice", dir.path(), &[]);
    a.send("lobby", "persist me");
    a.wait_event("message", |_| true);
    let pid = a.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let status = a.wait_exit();
    assert!(status.success(), "{status:?}");
    // The WAL was checkpointed into the database on the clean shutdown.
    let wal = dir.path().join("meshchat.sqlite-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
}

/// A second meshchat asking for the TCP port the first one listens on is refused, even though
/// libp2p's listeners would otherwise share it (SO_REUSEPORT) and split incoming connections.
#[test]
fn a_second_node_cannot_share_the_first_ones_port() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut first = Command::new(BIN)
        .args(["--json", "--no-mdns", "--listen", &listen])
        .arg("--data-dir")
        .arg(d1.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(first.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.contains("\"ready\"") && line.contains(&listen),
        "{line}"
    );
    let (code, out, err) = run_to_exit(&["--json", "--no-mdns", "--listen", &listen], d2.path());
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(code, 1, "second node started on a taken port: {out}");
    assert!(err.contains("already in use"), "{err}");
}

/// A process whose stdout nobody reads keeps relaying; when its reader comes back it is told it
/// lagged and then gets every message it missed, each once.
#[test]
fn a_process_whose_output_is_not_read_keeps_relaying_and_catches_up() {
    // More than fit in B's stdout pipe (~55 lines of these), its writer's queue and its event
    // queue (64 each with `--event-queue 64`) together, and fewer than one author may send at
    // once (300: the per-author burst every relay enforces).
    const SENT: usize = 280;
    let long = "x".repeat(1000);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut a = Proc::start("a", dirs[0].path(), &[]);
    let (gate, gate_rx) = sync_channel::<()>(0);
    let mut b = Proc::start_gated(
        "b",
        dirs[1].path(),
        &[&a.addr.clone()],
        &["--event-queue", "64"],
        Some(gate_rx),
    );
    let mut c = Proc::start("c", dirs[2].path(), &[&b.addr.clone()]);
    a.wait_peers(1);
    c.wait_peers(1);

    for i in 0..SENT {
        a.raw(&json!({"cmd": "send", "room": "lobby", "text": format!("m{i} {long}")}).to_string());
    }
    let at_c: std::collections::HashSet<String> = c.messages(SENT).into_iter().collect();
    assert_eq!(at_c.len(), SENT, "C got every message once, through B");

    // B's reader comes back.
    drop(gate);
    let mut seen = std::collections::HashSet::new();
    let mut lagged = None;
    while seen.len() < SENT {
        let v = b.wait(|v| v["event"] == "message" || v["event"] == "lagged");
        if v["event"] == "lagged" {
            lagged = v["missed"].as_u64();
            continue;
        }
        let id = v["id"].as_str().unwrap().to_owned();
        assert!(seen.insert(id), "B showed a message twice: {v}");
    }
    assert!(lagged.is_some_and(|n| n > 0), "B was told it lagged");
    assert_eq!(seen, at_c);
    // Nothing more is shown twice afterwards.
    b.cmd(json!({"cmd": "peers"}));
    b.wait_event("peers", |_| true);
    assert!(
        b.backlog.iter().all(|v| v["event"] != "message"),
        "extra messages at B"
    );
    for p in [a, b, c] {
        assert!(p.quit().success());
    }
}

/// One `meshchat --plain` process (line mode): its stdout as raw bytes, line by line.
struct PlainProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Vec<u8>>,
    /// Every line read so far, in order.
    seen: Vec<Vec<u8>>,
}

impl PlainProc {
    fn start(name: &str, data_dir: &Path, peer: &str) -> PlainProc {
        let mut child = Command::new(BIN)
            .args(["--plain", "--no-mdns", "--nick", name])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--peer", peer])
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("meshchat starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = sync_channel(10_000);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        PlainProc {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `needle`.
    fn wait_line(&mut self, needle: &str) {
        let contains = |l: &[u8]| String::from_utf8_lossy(l).contains(needle);
        if self.seen.iter().any(|l| contains(l)) {
            return;
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = contains(&l);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {DEADLINE:?}; got:\n{}",
                    self.output()
                ),
            }
        }
    }

    /// Writes one line to stdin.
    fn line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write line");
        stdin.flush().unwrap();
    }

    /// Waits up to `wait` for a line not read before that contains `needle`.
    fn try_wait_line(&mut self, needle: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = String::from_utf8_lossy(&l).contains(needle);
                    self.seen.push(l);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Closes stdin (line mode quits at its end) and reads the rest of stdout.
    fn quit(mut self) -> Vec<Vec<u8>> {
        drop(self.stdin.take());
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("line mode did not quit at end of input"),
            }
        }
        assert!(self.child.wait().unwrap().success());
        std::mem::take(&mut self.seen)
    }

    fn output(&self) -> String {
        self.seen
            .iter()
            .map(|l| String::from_utf8_lossy(l) + "\n")
            .collect()
    }
}

impl Drop for PlainProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A text made to take over a terminal (clear the screen, set its title, return to the line
/// start and print a fake message) reaches line mode as visible text: no escape, CR or BEL byte
/// is printed, and no line of it starts like a message.
#[test]
fn line_mode_shows_terminal_escapes_in_texts_instead_of_running_them() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut a, mut b) = json_and_plain(&dirs);

    let hostile = "hello\x1b[2J\x1b]0;pwned title\x07\u{9b}31m\u{202E}desrever\r\
                   [lobby] alice (1a2b 3c4d): FAKE after CR\n\
                   [lobby] alice (1a2b 3c4d): FAKE after LF\r\n\
                   [lobby] alice (1a2b 3c4d): FAKE after CRLF the-end";
    a.send("lobby", hostile);
    b.wait_line("the-end");
    let out = b.quit();
    assert!(a.quit().success());

    let bytes = out.join(&b'\n');
    let text = String::from_utf8(bytes.clone()).expect("line mode prints UTF-8");
    for bad in [0x1b_u8, b'\r', 0x07] {
        assert!(!bytes.contains(&bad), "byte {bad:#x} printed raw:\n{text}");
    }
    for bad in ['\u{9b}', '\u{202E}'] {
        assert!(!text.contains(bad), "{bad:?} printed raw:\n{text}");
    }
    // Shown instead.
    assert!(
        text.contains("hello\\u{1b}[2J\\u{1b}]0;pwned title\\u{7}"),
        "{text}"
    );
    let message: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("hello"))
        .take(3)
        .collect();
    assert!(message[0].starts_with("[lobby] alice ("), "{text}");
    assert!(
        message[0].contains("\\u{d}[lobby] alice (1a2b 3c4d): FAKE after CR"),
        "{text}"
    );
    for l in text.lines().filter(|l| l.contains("FAKE")) {
        assert!(
            !l.starts_with("[lobby] alice (1a2b"),
            "a fake message line:\n{text}"
        );
    }
    assert_eq!(
        &message[1..],
        [
            "    [lobby] alice (1a2b 3c4d): FAKE after LF",
            "    [lobby] alice (1a2b 3c4d): FAKE after CRLF the-end"
        ],
        "{text}"
    );
}

/// Line mode's DM commands: `/msg` by nick, a DM arriving as a `[dm]` line with its states,
/// `/routes`, `/whois`, `/dms`, an alias, the help and a usage error.
#[test]
fn line_mode_direct_messages() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut a, mut b) = json_and_plain(&dirs);
    // Alice's profile reaches bob (it is published when she gets her first neighbour).
    let deadline = Instant::now() + DEADLINE;
    loop {
        b.line("/whois alice");
        if b.try_wait_line("hops away", Duration::from_millis(200)) {
            break;
        }
        assert!(Instant::now() < deadline, "alice's profile never arrived");
    }
    b.line("/msg alice hello from the line");
    let got = a.wait_event("dm", |v| v["text"] == "hello from the line");
    assert_eq!(got["nick"], "bob");
    b.wait_line(": delivered");
    a.cmd(json!({"cmd": "dm", "to": "bob", "text": "and back to you"}));
    b.wait_line("[dm] alice (");
    b.wait_line("and back to you");
    b.line("/routes");
    b.wait_line("alice via");
    b.line("/msg nobody-here hi");
    b.wait_line("* not sent: nobody known");
    // The TUI's aliases and line mode's /dms come from the one table; so do help and usage.
    b.line("/m alice by the alias");
    a.wait_event("dm", |v| v["text"] == "by the alias");
    b.line("/dms");
    b.wait_line(": 3 messages");
    b.line("/help");
    b.wait_line("/dms [WHO]");
    b.line("/rooms all");
    b.wait_line("* too many arguments (\"all\"); usage: /rooms");
    drop(b);
    assert!(a.quit().success());
}

/// Line mode's `/tracker` and `/who`, and its `[tracker]` line when the tracker changes.
#[test]
fn line_mode_who_and_tracker() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, mut b) = json_and_plain(&dirs);
    // Bob follows a tracker and is registered with it (or is the tracker).
    let deadline = Instant::now() + DEADLINE;
    loop {
        b.line("/tracker");
        if b.try_wait_line("; registered,", Duration::from_millis(200))
            || b.seen
                .iter()
                .any(|l| String::from_utf8_lossy(l).contains("* tracker: this node"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no tracker:\n{}", b.output());
    }
    b.wait_line("[tracker] ");
    // Both are listed once the roster has come.
    let deadline = Instant::now() + DEADLINE;
    loop {
        b.line("/who");
        if b.try_wait_line("* 2 online", Duration::from_millis(200)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "who never listed both:\n{}",
            b.output()
        );
    }
    b.wait_line(") this node (you)");
    b.wait_line("alice (");
    b.wait_line(" (tracker)");
    drop(b);
    assert!(a.quit().success());
}
