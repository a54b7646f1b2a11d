//! The lab's own machinery against the stand-in node (`meshchat-lab fake-node`): scenarios pass
//! on a correct node, and each check catches the failure it is meant to catch.

use crate::{fake_opts, node_lock, root_or_skip};
use meshchat_lab::{scenarios, Lab, Topology, LOBBY};

#[test]
fn scenarios_pass_on_a_correct_node() {
    if !root_or_skip("scenarios_pass_on_a_correct_node") {
        return;
    }
    let _g = node_lock();
    for s in scenarios::ALL {
        if let Some(why) = s.real_only {
            eprintln!("selftest: skipping {} on the stand-in node: {why}", s.name);
            continue;
        }
        let r =
            scenarios::run(s.name, &fake_opts(&[])).unwrap_or_else(|e| panic!("{}: {e:#}", s.name));
        assert!(r.messages > 0);
    }
}

#[test]
fn duplicates_are_caught() {
    if !root_or_skip("duplicates_are_caught") {
        return;
    }
    let _g = node_lock();
    let lab = Lab::up(Topology::line(3), fake_opts(&["--fake-bug", "dup"])).unwrap();
    let id = lab.node(0).send(LOBBY, "hello").unwrap();
    lab.wait_all_have(&[id], lab.deadline(10)).unwrap();
    let err = lab.check_no_duplicates().unwrap_err().to_string();
    assert!(err.contains("duplicate"), "{err}");
    lab.discard();
}

#[test]
fn unstored_messages_are_caught() {
    if !root_or_skip("unstored_messages_are_caught") {
        return;
    }
    let _g = node_lock();
    let lab = Lab::up(Topology::line(3), fake_opts(&["--fake-bug", "forget"])).unwrap();
    let id = lab.node(0).send(LOBBY, "hello").unwrap();
    lab.wait_all_have(std::slice::from_ref(&id), lab.deadline(10))
        .unwrap();
    let err = lab
        .check_histories(LOBBY, &[0, 1, 2], &[id])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("history misses") && err.contains("shown but are not in history"),
        "{err}"
    );
    lab.discard();
}

#[test]
fn panics_and_crashes_are_caught() {
    if !root_or_skip("panics_and_crashes_are_caught") {
        return;
    }
    let _g = node_lock();
    let lab = Lab::up(Topology::line(2), fake_opts(&["--fake-bug", "panic"])).unwrap();
    let mut ids = Vec::new();
    for k in 0..8 {
        ids.push(lab.node(0).send(LOBBY, &format!("m{k}")).unwrap());
    }
    // Node 1 panics in its connection thread on the 5th message; later ones never arrive.
    assert!(lab.wait_all_have(&ids, lab.deadline(2)).is_err());
    let dir = lab.run_dir.clone();
    let err = lab.finish().unwrap_err().to_string();
    assert!(err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn kill_restart_keeps_identity_and_history() {
    if !root_or_skip("kill_restart_keeps_identity_and_history") {
        return;
    }
    let _g = node_lock();
    let mut lab = Lab::up(Topology::ring(4), fake_opts(&[])).unwrap();
    let before = lab.node(1).peer_id();
    let id = lab.node(0).send(LOBBY, "before").unwrap();
    lab.wait_all_have(std::slice::from_ref(&id), lab.deadline(10))
        .unwrap();
    let pid = lab.pid(1).unwrap();
    lab.kill(1).unwrap();
    assert!(!lab.node(1).is_running());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(
        lab.node(1).send(LOBBY, "x").is_err(),
        "a dead node cannot send"
    );
    lab.restart(1).unwrap();
    assert_eq!(lab.node(1).peer_id(), before);
    let hist = lab.node(1).history(LOBBY, 100).unwrap();
    assert!(hist.iter().any(|m| m.id == id));
    lab.stop(2).unwrap();
    lab.restart(2).unwrap();
    let id2 = lab.node(2).send(LOBBY, "after").unwrap();
    lab.wait_all_have(&[id2], lab.deadline(10)).unwrap();
    lab.check_no_duplicates().unwrap();
    lab.check_health().unwrap();
    let st = lab.hub.lock();
    assert_eq!(st.nodes[1].exits.len(), 1);
    assert_eq!(st.nodes[2].exits[0].code, Some(0), "quit exits 0");
    drop(st);
    lab.finish().unwrap();
}

#[test]
fn link_faults_with_nodes() {
    if !root_or_skip("link_faults_with_nodes") {
        return;
    }
    let _g = node_lock();
    let mut lab = Lab::up(Topology::line(3), fake_opts(&[])).unwrap();
    let peers = lab.node(1).peers().unwrap();
    assert_eq!(peers.len(), 2);
    // Commands and events the lab does not model pass through untouched.
    lab.node(2)
        .raw(&serde_json::json!({"cmd":"echo","data":7}))
        .unwrap();
    let ev = lab
        .node(2)
        .wait_event(lab.deadline(5), |v| v["event"] == "echo")
        .unwrap();
    assert_eq!(ev["data"], 7);
    lab.link_down(1, 2).unwrap();
    lab.loss(0, 1, 0.0).unwrap();
    lab.bandwidth(0, 1, Some("10mbit")).unwrap();
    let id = lab.node(0).send(LOBBY, "partitioned").unwrap();
    lab.wait_nodes_have(&[0, 1], std::slice::from_ref(&id), lab.deadline(10))
        .unwrap();
    lab.link_up(1, 2).unwrap();
    lab.finish().unwrap();
}
