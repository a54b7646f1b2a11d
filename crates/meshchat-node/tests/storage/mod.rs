//! Storage faults (issue 18, disks): a node whose database stops taking writes keeps relaying,
//! says so once (not once per message), and says so again when writes work.

use std::sync::atomic::Ordering;

use meshchat_node::Event;

use crate::support::*;

/// A full disk used to print one warning per message (93 in 6 s, measured on a 4 MiB tmpfs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_one_warning_and_one_notice_when_it_clears() {
    const SENT: usize = 60;
    let mut a = TestNode::start("a", &[]).await;
    let (mut b, full) = TestNode::start_with_failing_disk("b", &[&a]).await;
    let mut c = TestNode::start("c", &[&b]).await;
    a.wait_peers(1).await;
    c.wait_peers(1).await;

    full.store(true, Ordering::Relaxed);
    for i in 0..SENT {
        a.send("lobby", &format!("while full {i}")).await;
        // Spread out, so that B writes (and fails) many batches, not one.
        if i % 10 == 9 {
            b.wait_stats("a failed batch", |s| {
                s.store_failures >= (i / 10 + 1) as u64
            })
            .await;
        }
    }
    // B keeps relaying: C has everything.
    assert_eq!(c.collect_messages(SENT).await.len(), SENT);
    let s = b.handle.stats().await.unwrap();
    assert!(s.store_failures >= 6, "{s:?}");

    full.store(false, Ordering::Relaxed);
    a.send("lobby", "after the disk cleared").await;
    b.wait_for(|e| matches!(e, Event::Message(m) if m.text == "after the disk cleared"))
        .await;
    b.wait_for(|e| matches!(e, Event::Warning(w) if w.contains("storing messages again")))
        .await;
    // Everything B said meanwhile: one warning for the whole outage.
    let warnings = b.warnings();
    let told: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("could not store") || w.contains("still cannot store"))
        .collect();
    assert_eq!(told.len(), 1, "{warnings:?}");
}

/// A data dir and key file open to others are set to 0700 and 0600 at start, and the user is
/// told (the README promises those modes; only a log line said anything before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loose_permissions_are_fixed_and_said() {
    use std::os::unix::fs::PermissionsExt;
    let first = TestNode::start("a", &[]).await;
    let dir = first.stop().await;
    let set = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set(dir.path(), 0o755);
    set(&dir.path().join(meshchat_node::keyfile::KEY_FILE), 0o644);
    let mut a = TestNode::start_in(dir, "a", &[]).await;
    a.wait_for(|e| matches!(e, Event::Warning(w) if w.contains("data directory") && w.contains("set to 700")))
        .await;
    a.wait_for(
        |e| matches!(e, Event::Warning(w) if w.contains("key file") && w.contains("set to 600")),
    )
    .await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(a.dir.path()), 0o700);
    assert_eq!(
        mode(&a.dir.path().join(meshchat_node::keyfile::KEY_FILE)),
        0o600
    );
}
