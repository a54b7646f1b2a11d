//! The lab's own machinery against real `meshchat` processes: kill -9 and restart keep a node's
//! identity and history and are told apart from crashes, a crash the lab did not cause fails the
//! run, and link faults, typed answers and events work with live nodes. (How the checks catch a
//! node that shows a message twice, forgets one or panics is tested over crafted events in
//! `src/lab/checks.rs`: the real node does not misbehave on request.)

use crate::{need_root, node_lock, real_opts};
use meshchat_lab::api::Event;
use meshchat_lab::{sys, Lab, Topology, LOBBY};

#[test]
fn kill_restart_keeps_identity_and_history() {
    need_root("kill_restart_keeps_identity_and_history");
    let _g = node_lock();
    let mut lab = Lab::up(Topology::ring(4), real_opts()).unwrap();
    let before = lab.node(1).peer_id();
    let id = lab.node(0).send(LOBBY, "before").unwrap();
    lab.wait_all_have(std::slice::from_ref(&id), lab.deadline(20))
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
    lab.wait_all_have(&[id2], lab.deadline(20)).unwrap();
    lab.check_no_duplicates().unwrap();
    lab.check_health().unwrap();
    let st = lab.hub.lock();
    assert_eq!(st.nodes[1].exits.len(), 1);
    assert_eq!(st.nodes[2].exits[0].code, Some(0), "quit exits 0");
    drop(st);
    lab.finish().unwrap();
}

#[test]
fn crashes_are_caught() {
    need_root("crashes_are_caught");
    let _g = node_lock();
    let lab = Lab::up(Topology::line(2), real_opts()).unwrap();
    // A fatal signal the lab did not send (SIGUSR1: meshchat does not handle it, and unlike
    // SIGSEGV it is not caught by Rust's stack-overflow handler): to the lab, a crash.
    sys::signal(lab.pid(1).unwrap(), "USR1");
    assert!(lab
        .hub
        .wait_until(lab.deadline(10), |st| !st.nodes[1].running));
    let dir = lab.run_dir.clone();
    let err = lab.finish().unwrap_err().to_string();
    assert!(
        err.contains("n1 incarnation 0 exited") && err.contains("signal Some(10)"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn link_faults_with_nodes() {
    need_root("link_faults_with_nodes");
    let _g = node_lock();
    let mut lab = Lab::up(Topology::line(3), real_opts()).unwrap();
    let peers = lab.node(1).peers().unwrap();
    assert_eq!(peers.len(), 2);
    // Typed answers and events that are not answers.
    lab.node(1)
        .wait_event(lab.deadline(30), |e| {
            matches!(
                e,
                Event::TrackerChanged {
                    tracker: Some(_),
                    ..
                }
            )
        })
        .unwrap();
    let who = lab.node(1).who().unwrap();
    assert!(who.iter().all(|p| !p.peer_id.is_empty()), "{who:?}");
    lab.node(1).tracker().unwrap();
    lab.link_down(1, 2).unwrap();
    lab.loss(0, 1, 0.0).unwrap();
    lab.bandwidth(0, 1, Some("10mbit")).unwrap();
    let id = lab.node(0).send(LOBBY, "partitioned").unwrap();
    lab.wait_nodes_have(&[0, 1], std::slice::from_ref(&id), lab.deadline(10))
        .unwrap();
    assert!(lab.node(0).stats().unwrap().published >= 1);
    lab.link_up(1, 2).unwrap();
    lab.finish().unwrap();
}
