//! Thin wrappers around the system tools the lab drives (`ip`, `tc`, `nft`, `iptables`, `ping`,
//! `apt-get`), plus the environment checks done before anything is created.
//!
//! Every external command goes through [`run`] so failures carry the full command line and stderr.
//! Nothing here uses `unsafe`: the effective uid is read from `/proc/self/status`, signals are
//! sent with the `kill` utility.

use anyhow::{bail, Context as _, Result};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `prog args...`, returns stdout; fails with the command line and stderr on non-zero exit.
pub fn run(prog: &str, args: &[&str]) -> Result<String> {
    let out = output(prog, args)?;
    if !out.status.success() {
        bail!(
            "`{} {}` failed ({}): {}",
            prog,
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `prog args...` and returns its full output, whatever the exit status.
pub fn output(prog: &str, args: &[&str]) -> Result<Output> {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{prog}` (is it installed?)"))
}

/// Runs `prog args...` with `input` on stdin (used for `nft -f -`).
pub fn run_with_stdin(prog: &str, args: &[&str], input: &str) -> Result<()> {
    use std::io::Write as _;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{prog}`"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`{} {}` failed ({}): {}\ninput:\n{}",
            prog,
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            input
        );
    }
    Ok(())
}

/// Runs `prog args...` inside network namespace `ns` (`ip netns exec ns prog args...`).
pub fn run_in(ns: &str, prog: &str, args: &[&str]) -> Result<String> {
    let mut full = vec!["netns", "exec", ns, prog];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// Effective uid of this process, from `/proc/self/status`.
pub fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether `prog` is found on `PATH` (or in the sbin directories, which non-login root shells
/// sometimes lack).
pub fn have(prog: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .any(|dir| Path::new(dir).join(prog).is_file());
    found
}

/// Sends signal `sig` (e.g. "TERM", "KILL") to `pid` with the `kill` utility. Errors are ignored:
/// the process may already be gone.
pub fn signal(pid: u32, sig: &str) {
    let _ = output("kill", &["-s", sig, &pid.to_string()]);
}

/// Whether a process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` exists and is not a zombie.
pub fn pid_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Tools the lab needs and the Debian package that provides each.
const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("tc", "iproute2"),
    ("ping", "iputils-ping"),
];

/// What [`check_env`] found.
#[derive(Debug, Clone)]
pub struct Env {
    /// `nft` is available (preferred for packet-loss rules).
    pub nft: bool,
    /// `iptables` is available (fallback for packet-loss rules).
    pub iptables: bool,
}

/// Checks that we are root and the tools exist; installs missing Debian packages with
/// `apt-get install -y` (running `apt-get update` once if the first try fails).
/// Errors are one line, meant to be printed as is.
pub fn check_env(install: bool) -> Result<Env> {
    if euid() != Some(0) {
        bail!("meshchat-lab needs root (it creates network namespaces); run it as root");
    }
    // One check (and at most one apt-get) at a time in this process: parallel tests call this.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(tool, _)| !have(tool))
        .map(|(_, pkg)| *pkg)
        .collect();
    if !have("nft") && !have("iptables") {
        missing.push("nftables");
    }
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        if !install || !have("apt-get") {
            bail!(
                "meshchat-lab: missing tools; install the packages: {}",
                missing.join(" ")
            );
        }
        eprintln!("meshchat-lab: installing {}", missing.join(" "));
        if !apt_install(&missing)? {
            let _ = output("apt-get", &["update", "-qq"]);
            if !apt_install(&missing)? {
                bail!(
                    "meshchat-lab: `apt-get install -y {}` failed",
                    missing.join(" ")
                );
            }
        }
    }
    if !have("ip") {
        bail!("meshchat-lab: `ip` (iproute2) not found");
    }
    Ok(Env {
        nft: have("nft"),
        iptables: have("iptables"),
    })
}

fn apt_install(pkgs: &[&str]) -> Result<bool> {
    let mut args = vec!["install", "-y", "-qq"];
    args.extend_from_slice(pkgs);
    let out = Command::new("apt-get")
        .args(&args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .context("cannot run apt-get")?;
    Ok(out.status.success())
}

/// Clock ticks per second for `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 if unknown).
pub fn clk_tck() -> f64 {
    run("getconf", &["CLK_TCK"])
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

/// CPU seconds (user + system) used so far by `pid`, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32, tck: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / tck)
}

/// Resident set size of `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_proc_stats() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid, 100.0).is_some());
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(euid().is_some());
        assert!(pid_alive(pid));
    }

    #[test]
    fn run_reports_failures() {
        let err = run("false", &[]).unwrap_err().to_string();
        assert!(err.contains("`false ` failed"), "{err}");
        assert_eq!(run("echo", &["hi"]).unwrap(), "hi\n");
    }
}
