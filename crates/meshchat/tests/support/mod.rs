//! What the end-to-end tests share: one real `meshchat --json` process, driven by its stdin
//! and read from its stdout, with every wait under a deadline.

// Each test binary uses its own part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod browser;

pub const BIN: &str = env!("CARGO_BIN_EXE_meshchat");
pub const DEADLINE: Duration = Duration::from_secs(30);

/// One `meshchat --json` process.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub lines: Receiver<Value>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// Events read while waiting for others.
    pub backlog: Vec<Value>,
    pub peer_id: String,
    pub addr: String,
    /// Its `ready` line.
    pub ready: Value,
}

impl Proc {
    pub fn start(name: &str, data_dir: &Path, peers: &[&str]) -> Proc {
        Self::start_gated(name, data_dir, peers, &[], None)
    }

    /// With a `gate`, stdout is read up to the `ready` line and then not at all (the pipe fills
    /// and the process blocks writing) until the gate's sender is dropped.
    /// `args`: more command-line arguments.
    pub fn start_gated(
        name: &str,
        data_dir: &Path,
        peers: &[&str],
        args: &[&str],
        gate: Option<Receiver<()>>,
    ) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--json",
            "--no-mdns",
            "--nick",
            name,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .arg("--data-dir")
        .arg(data_dir);
        for p in peers {
            cmd.args(["--peer", p]);
        }
        cmd.args(args);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("meshchat starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = sync_channel(100_000);
        let who = name.to_owned();
        std::thread::spawn(move || {
            let mut gate = gate;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("{who}: stdout line is not JSON ({e}): {line}"));
                // Every line is an event of the typed contract, written as it writes it.
                match meshchat_api::Event::from_line(&line) {
                    Ok(meshchat_api::Event::Unknown) | Err(_) => {
                        panic!("{who}: stdout line is not a meshchat_api::Event: {line}")
                    }
                    Ok(event) => assert_eq!(event.to_line(), line, "{who}"),
                }
                let ready = v["event"] == "ready";
                if tx.send(v).is_err() {
                    break;
                }
                if ready {
                    if let Some(gate) = gate.take() {
                        // Returns when the sender is dropped.
                        let _ = gate.recv();
                    }
                }
            }
        });
        let stderr_buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr_buf.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                if s.len() < 1 << 20 {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        let stdin = child.stdin.take();
        let mut p = Proc {
            name: name.to_owned(),
            child,
            stdin,
            lines,
            stderr: stderr_buf,
            backlog: Vec::new(),
            peer_id: String::new(),
            addr: String::new(),
            ready: Value::Null,
        };
        let ready = p.wait_event("ready", |_| true);
        p.ready = ready.clone();
        p.peer_id = ready["peer_id"].as_str().unwrap().to_owned();
        let listen = ready["listen"][0].as_str().unwrap();
        p.addr = format!("{listen}/p2p/{}", p.peer_id);
        p
    }

    pub fn cmd(&mut self, v: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{v}").expect("write command");
        stdin.flush().unwrap();
    }

    pub fn raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write line");
    }

    pub fn wait(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(v) => self.backlog.push(v),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => panic!(
                    "{}: no matching event within {DEADLINE:?}; backlog {:?}; stderr:\n{}",
                    self.name,
                    self.backlog,
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    pub fn wait_event(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait(|v| v["event"] == kind && pred(v))
    }

    pub fn wait_peers(&mut self, n: usize) {
        let mut connected = std::collections::HashSet::new();
        for v in self.backlog.iter() {
            if v["event"] == "peer_connected" {
                connected.insert(v["peer_id"].to_string());
            }
        }
        self.backlog.retain(|v| v["event"] != "peer_connected");
        while connected.len() < n {
            let v = self.wait_event("peer_connected", |_| true);
            connected.insert(v["peer_id"].to_string());
        }
    }

    pub fn send(&mut self, room: &str, text: &str) -> String {
        self.cmd(json!({"cmd": "send", "room": room, "text": text}));
        let sent = self.wait_event("sent", |_| true);
        sent["id"].as_str().unwrap().to_owned()
    }

    /// Message ids of `n` message events (own ones included).
    pub fn messages(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                self.wait_event("message", |_| true)["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    pub fn history(&mut self, room: &str) -> Vec<Value> {
        self.cmd(json!({"cmd": "history", "room": room, "limit": 1000}));
        self.wait_event("history", |_| true)["messages"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn quit(mut self) -> std::process::ExitStatus {
        self.cmd(json!({"cmd": "quit"}));
        self.wait_exit()
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let err = self.stderr.lock().unwrap();
                assert!(!err.contains("panicked"), "{}: {err}", self.name);
                return status;
            }
            assert!(Instant::now() < deadline, "{}: did not exit", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
