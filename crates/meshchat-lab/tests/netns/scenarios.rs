//! The required scenarios against the real `meshchat` binary (built if needed).

use crate::{need_root, node_lock, real_bin};
use meshchat_lab::{scenarios, LabOptions};

fn run(name: &str) {
    need_root(name);
    let _g = node_lock();
    let opts = LabOptions::with_bin(real_bin());
    match scenarios::run(name, &opts) {
        Ok(r) => {
            eprintln!(
                "PASS {name}: {} messages, {} deliveries, {} DMs, {:.1}s",
                r.messages, r.deliveries, r.dms, r.seconds
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

#[test]
fn dm_line() {
    run("dm-line");
}

#[test]
fn dm_offline() {
    run("dm-offline");
}

/// About 33 s, nearly all of it the ~29 s the ends of the cut link take to notice (two failed
/// pings); the tables themselves converge in a few hundred ms.
#[test]
fn routes30() {
    run("routes30");
}

/// Profiles reach every node within seconds of a mesh forming link by link (a profile taken
/// from history sync is re-published on the trees; before that, a far node waited a minute per
/// hop for the periodic sync round).
#[test]
fn dm_profiles() {
    run("dm-profiles");
}

/// Tracker failover on a line, a newcomer via one address, the old tracker's return.
#[test]
fn tracker_line() {
    run("tracker-line");
}

/// One tracker per half of a partition, one again after the heal.
#[test]
fn tracker_partition() {
    run("tracker-partition");
}

/// Two preferred trackers named with `--tracker ADDR`; the elected one dies.
#[test]
fn tracker_named() {
    run("tracker-named");
}

#[test]
fn trees_load() {
    run("trees-load");
}

#[test]
fn clock_skew() {
    run("clock-skew");
}

#[test]
fn disk_full() {
    run("disk-full");
}

#[test]
fn file_line() {
    run("file-line");
}

#[test]
fn private_line() {
    run("private-line");
}

#[test]
fn private_partition() {
    run("private-partition");
}

#[test]
fn nat_punch() {
    run("nat-punch");
}

#[test]
fn nat_symmetric() {
    run("nat-symmetric");
}

#[test]
fn nat_upnp() {
    run("nat-upnp");
}
