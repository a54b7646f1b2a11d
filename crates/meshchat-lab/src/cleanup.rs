//! Names that cannot collide, and removal of everything a run created, whatever way it ends.
//!
//! Every lab run gets a prefix `mcl` + the lab's pid as 6 hex digits + a per-process counter as
//! 2 hex digits (11 characters). Namespaces are `<prefix>h<i>` for hosts and `<prefix>s<k>` for
//! LAN switches, at most 15 characters (the kernel's limit for interface names; we keep namespace
//! names to the same bound). Interfaces live only inside our namespaces, so their names only need
//! to be unique per namespace and are never created in the root namespace.
//!
//! Three layers of cleanup:
//! 1. `Drop` of [`crate::net::Net`] and [`crate::lab::Lab`] (normal exit, error, panic);
//! 2. a SIGINT/SIGTERM handler ([`install_signal_handler`]) that removes every namespace still in
//!    the process-wide [`registry`] and exits 130;
//! 3. `meshchat-lab cleanup` ([`remove_stale`]) for runs that were killed with SIGKILL: it removes
//!    lab namespaces whose creating pid is gone (or all of them with `--all`), killing any process
//!    still inside first (a namespace with processes in it would outlive `ip netns del`).

use crate::sys;
use anyhow::{bail, Result};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// First characters of every lab namespace.
pub const PREFIX: &str = "mcl";
/// Kernel limit on interface names (`IFNAMSIZ - 1`); we hold namespace names to it too.
pub const MAX_NAME: usize = 15;

static RUN_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh run prefix, unique among live processes: `mcl` + pid (6 hex) + counter (2 hex).
pub fn new_run_prefix() -> String {
    let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed) % 256;
    format!("{PREFIX}{:06x}{:02x}", std::process::id() & 0xff_ffff, n)
}

/// Checks a namespace or interface name against the kernel limit.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME {
        bail!("name {name:?} is longer than {MAX_NAME} characters");
    }
    Ok(())
}

/// Parses a lab namespace name into (creator pid, run prefix); `None` if not a lab name.
pub fn parse_ns(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix(PREFIX)?;
    if name.len() > MAX_NAME || rest.len() < 10 || !rest.is_char_boundary(8) {
        return None;
    }
    let (hexpart, tail) = rest.split_at(8);
    if !hexpart.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut chars = tail.chars();
    if !matches!(chars.next(), Some('h' | 's')) {
        return None;
    }
    let idx = chars.as_str();
    if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid = u32::from_str_radix(&hexpart[..6], 16).ok()?;
    Some((pid, &name[..PREFIX.len() + 8]))
}

/// Process-wide record of namespaces this process created and has not removed yet.
#[derive(Default)]
pub struct Registry {
    /// Namespaces to delete on a signal.
    pub namespaces: BTreeSet<String>,
    /// Set by the signal handler: no new namespace may be created after this.
    pub shutting_down: bool,
}

/// The registry; hold the guard while creating a namespace so a signal cannot race with it.
pub fn registry() -> MutexGuard<'static, Registry> {
    static REG: OnceLock<Mutex<Registry>> = OnceLock::new();
    REG.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Kills every process inside `ns`, then deletes it. Errors are ignored (it may be gone).
pub fn kill_and_delete_ns(ns: &str) {
    if let Ok(pids) = sys::run("ip", &["netns", "pids", ns]) {
        let pids: Vec<u32> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        for &pid in &pids {
            sys::signal(pid, "KILL");
        }
        // SIGKILL is asynchronous: wait (bounded) until they are gone or zombies.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while pids.iter().any(|&p| sys::pid_running(p)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let _ = sys::output("ip", &["netns", "del", ns]);
}

/// Installs (once) a SIGINT/SIGTERM handler that removes all registered namespaces (killing the
/// processes in them) and exits with status 130.
pub fn install_signal_handler() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("meshchat-lab: cannot install signal handler: {e}");
                return;
            }
        };
        std::thread::Builder::new()
            .name("lab-signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    eprintln!("meshchat-lab: signal {sig}, cleaning up");
                    let mut reg = registry();
                    reg.shutting_down = true;
                    let names: Vec<String> = reg.namespaces.iter().cloned().collect();
                    for ns in &names {
                        kill_and_delete_ns(ns);
                    }
                    reg.namespaces.clear();
                    std::process::exit(130);
                }
            })
            .expect("spawn signal thread");
    });
}

/// Lists lab namespaces present on the machine.
pub fn list_lab_namespaces() -> Result<Vec<String>> {
    let out = sys::run("ip", &["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| parse_ns(n).is_some())
        .map(str::to_owned)
        .collect())
}

/// Removes lab namespaces left by runs whose process is gone (all lab namespaces if `all`).
/// Returns the names removed.
pub fn remove_stale(all: bool) -> Result<Vec<String>> {
    let me = std::process::id() & 0xff_ffff;
    let mut removed = Vec::new();
    for ns in list_lab_namespaces()? {
        let Some((pid, _)) = parse_ns(&ns) else {
            continue;
        };
        if all || (pid != me && !sys::pid_alive(pid)) {
            kill_and_delete_ns(&ns);
            removed.push(ns);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique_and_short() {
        let a = new_run_prefix();
        let b = new_run_prefix();
        assert_ne!(a, b);
        assert_eq!(a.len(), 11);
        let ns = format!("{a}h999");
        assert!(check_name(&ns).is_ok());
        assert!(check_name(&format!("{a}h9999x")).is_err());
        let (pid, prefix) = parse_ns(&ns).unwrap();
        assert_eq!(pid, std::process::id() & 0xff_ffff);
        assert_eq!(prefix, a);
    }

    #[test]
    fn parse_rejects_other_names() {
        assert!(parse_ns("mcl").is_none());
        assert!(parse_ns("mclzzzzzzzzh1").is_none());
        assert!(parse_ns("mcl00001a00x1").is_none());
        assert!(parse_ns("mcl00001a00h").is_none());
        assert!(parse_ns("other00001a00h1").is_none());
        assert_eq!(parse_ns("mcl00001a00s3").unwrap().0, 0x1a);
    }
}
