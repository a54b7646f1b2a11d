//! End to end: two real `meshchat` processes with the full-screen interface, each in a tmux pane.
//! One types, the other shows it; then one quits with `/quit` and the other gets SIGTERM, and
//! both leave their terminal usable (cooked mode, main screen).
//!
//! Every wait polls the screen until a deadline; nothing sleeps a fixed time.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meshchat");
/// Longest wait for anything to appear on a screen.
const DEADLINE: Duration = Duration::from_secs(45);
const POLL: Duration = Duration::from_millis(100);

/// A private tmux server, killed (with everything in it) when dropped.
struct Tmux {
    socket: String,
    /// Where the server's socket file is, to remove it afterwards.
    socket_path: std::cell::RefCell<Option<String>>,
}

impl Tmux {
    fn start() -> Self {
        ensure_tmux();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self {
            socket: format!("meshchat-test-{}-{nanos}", std::process::id()),
            socket_path: std::cell::RefCell::new(None),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("tmux");
        cmd.arg("-L").arg(&self.socket).args(args);
        if std::env::var_os("TERM").is_none() {
            cmd.env("TERM", "xterm-256color");
        }
        cmd.output().expect("tmux runs")
    }

    fn ok(&self, args: &[&str]) {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new 120×40 session running `command` (through `sh -c`).
    fn session(&self, name: &str, command: &str) {
        self.ok(&[
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            "-s",
            name,
            command,
        ]);
        if self.socket_path.borrow().is_none() {
            let out = self.run(&["display-message", "-p", "-t", name, "#{socket_path}"]);
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            *self.socket_path.borrow_mut() = Some(path).filter(|p| !p.is_empty());
        }
    }

    fn screen(&self, name: &str) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", name]).stdout).into_owned()
    }

    fn type_text(&self, name: &str, text: &str) {
        self.ok(&["send-keys", "-t", name, "-l", text]);
    }

    fn key(&self, name: &str, key: &str) {
        self.ok(&["send-keys", "-t", name, key]);
    }

    /// Waits until the pane shows `what`; fails with both screens and logs otherwise.
    fn wait_for(&self, name: &str, what: &str, logs: &[&Path]) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen(name);
            if screen.contains(what) {
                return screen;
            }
            if start.elapsed() > DEADLINE {
                let mut report =
                    format!("pane {name} never showed {what:?}; it shows:\n{screen}\n");
                for log in logs {
                    let text = std::fs::read_to_string(log).unwrap_or_default();
                    report.push_str(&format!("--- {}\n{text}\n", log.display()));
                }
                panic!("{report}");
            }
            std::thread::sleep(POLL);
        }
    }

    fn pane_pid(&self, name: &str) -> u32 {
        let out = self.run(&["display-message", "-p", "-t", name, "#{pane_pid}"]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pane pid")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        if let Some(path) = self.socket_path.borrow().as_deref() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Installs tmux with apt when it is missing (CI's .ci/run installs it too).
fn ensure_tmux() {
    let have = || {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have() {
        return;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !apt(&["install", "-y", "-qq", "tmux"]) {
        apt(&["update", "-qq"]);
        apt(&["install", "-y", "-qq", "tmux"]);
    }
    assert!(
        have(),
        "tmux is needed for this test and could not be installed"
    );
}

/// The pid of the `meshchat` process whose parent is `parent`.
fn child_meshchat(parent: u32) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((comm_part, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && comm_part.ends_with("(meshchat") {
            return Some(pid);
        }
    }
    None
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn peer_id(data_dir: &Path) -> String {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("id")
        .output()
        .expect("meshchat id runs");
    assert!(out.status.success(), "meshchat id failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("peer id:").map(|p| p.trim().to_owned()))
        .expect("meshchat id prints the peer id")
}

/// `meshchat ARGS`, then the exit status, then a shell on the same terminal (to check that the
/// terminal was given back in a usable state).
fn command_line(data_dir: &Path, args: &str) -> String {
    format!(
        "'{BIN}' --data-dir '{}' --no-mdns {args}; echo EXITED=$?; exec sh",
        data_dir.display()
    )
}

/// After meshchat exited: the shell reads a typed line and runs it only if the terminal is back
/// in cooked mode (in raw mode Enter sends a bare CR and nothing happens).
fn assert_terminal_usable(tmux: &Tmux, name: &str, logs: &[&Path]) {
    tmux.type_text(name, "echo usable-$((20+22))");
    tmux.key(name, "Enter");
    tmux.wait_for(name, "usable-42", logs);
}

#[test]
fn two_terminals_chat() {
    let tmux = Tmux::start();
    let dir_a = tempfile::tempdir().expect("temp dir");
    let dir_b = tempfile::tempdir().expect("temp dir");
    let (log_a, log_b) = (
        dir_a.path().join("meshchat.log"),
        dir_b.path().join("meshchat.log"),
    );
    let logs = [log_a.as_path(), log_b.as_path()];
    let id_a = peer_id(dir_a.path());
    let port = free_port();

    tmux.session(
        "a",
        &command_line(
            dir_a.path(),
            &format!("--nick alice --listen /ip4/127.0.0.1/tcp/{port}"),
        ),
    );
    tmux.wait_for("a", "F1 help", &logs);
    tmux.session(
        "b",
        &command_line(
            dir_b.path(),
            &format!(
                "--nick bob --listen /ip4/127.0.0.1/tcp/0 --peer /ip4/127.0.0.1/tcp/{port}/p2p/{id_a}"
            ),
        ),
    );
    tmux.wait_for("b", "1 peer │", &logs);
    tmux.wait_for("a", "1 peer │", &logs);

    // Bob writes; Alice sees it with his nick, wide characters and all.
    tmux.type_text("b", "hello from bob 日本語 🚀");
    tmux.key("b", "Enter");
    let screen = tmux.wait_for("a", "hello from bob 日本語", &logs);
    assert!(
        screen.lines().any(|l| l.contains("bob │ hello from bob")),
        "{screen}"
    );
    // Alice answers, completing his nick with Tab.
    tmux.type_text("a", "bo");
    tmux.key("a", "Tab");
    tmux.type_text("a", "hi there");
    tmux.key("a", "Enter");
    tmux.wait_for("b", "bob: hi there", &logs);

    // The help overlay opens on F1 and closes on Esc.
    tmux.key("a", "F1");
    tmux.wait_for("a", "help — Esc closes", &logs);
    tmux.key("a", "Escape");
    let start = Instant::now();
    while tmux.screen("a").contains("help — Esc closes") {
        assert!(start.elapsed() < DEADLINE, "the help overlay did not close");
        std::thread::sleep(POLL);
    }

    // Alice quits with /quit, Bob is stopped with SIGTERM: both terminals come back usable.
    tmux.type_text("a", "/quit");
    tmux.key("a", "Enter");
    tmux.wait_for("a", "EXITED=0", &logs);
    assert_terminal_usable(&tmux, "a", &logs);

    let shell = tmux.pane_pid("b");
    let pid = child_meshchat(shell).expect("bob's meshchat process");
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    tmux.wait_for("b", "EXITED=0", &logs);
    assert_terminal_usable(&tmux, "b", &logs);
}
