//! The required scenarios against the real `meshchat` binary (built if needed).

use crate::{node_lock, real_bin, root_or_skip};
use meshchat_lab::{scenarios, LabOptions};

fn run(name: &str) {
    if !root_or_skip(name) {
        return;
    }
    let _g = node_lock();
    let opts = LabOptions::with_bin(real_bin());
    match scenarios::run(name, &opts) {
        Ok(r) => {
            eprintln!(
                "PASS {name}: {} messages, {} deliveries, {:.1}s",
                r.messages, r.deliveries, r.seconds
            );
            for n in r.notes {
                eprintln!("  - {n}");
            }
        }
        Err(e) => panic!("scenario {name} failed: {e:#}"),
    }
}

#[test]
fn chain5() {
    run("chain5");
}

#[test]
fn mesh12() {
    run("mesh12");
}

#[test]
fn ring6_kill() {
    run("ring6-kill");
}

#[test]
fn lan_mdns() {
    run("lan-mdns");
}

#[test]
fn partition_sync() {
    run("partition-sync");
}
