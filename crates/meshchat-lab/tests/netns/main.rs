//! Lab tests, one test binary: `plumbing` (namespaces, links, faults, cleanup), `nat` (NAT
//! routers: masquerade, symmetric, UPnP, at the network level), `selftest` (the
//! lab's own machinery driving real `meshchat` processes: kills, restarts, crashes, link faults)
//! and `scenarios` (the named scenarios). The checks against a misbehaving node (duplicates,
//! unstored messages, panics) are unit tests over crafted events in `src/lab/checks.rs`. Every
//! test needs root and fails without it (a test that cannot run must not pass: a non-root run
//! would be green without testing mDNS, kill -9, partitions, custody or failover). Tests that
//! run nodes take a shared lock so they do not compete for the 2 cores.

mod nat;
mod plumbing;
mod scenarios;
mod selftest;

use meshchat_lab::{sys, LabOptions};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Fails `test` unless we are root: a lab test that cannot run must not pass.
///
/// # Panics
/// When not root.
pub fn need_root(test: &str) {
    assert!(
        sys::euid() == Some(0),
        "{test} needs root (network namespaces): run the tests as root, as .ci/run does"
    );
}

/// Serializes tests that run node processes.
pub fn node_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Options running the real node ([`real_bin`]).
pub fn real_opts() -> LabOptions {
    LabOptions::with_bin(real_bin())
}

/// The real `meshchat` binary: `$MESHCHAT_BIN`, else built with `cargo build -p meshchat` (once
/// per test run; a no-op when up to date) in this workspace.
pub fn real_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("MESHCHAT_BIN") {
            return PathBuf::from(p);
        }
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| ws.join("target"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        eprintln!("building meshchat: {cargo} build -p meshchat");
        let status = std::process::Command::new(&cargo)
            .args(["build", "-p", "meshchat"])
            .current_dir(&ws)
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build -p meshchat failed");
        let bin = target.join("debug/meshchat");
        assert!(bin.is_file(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}
