//! One `meshchat --json` process per host, and the shared state its events feed.
//!
//! Each process runs as `ip netns exec NS meshchat --json ...` (which execs, so the child pid is
//! the node's pid). Its stdout is read by one thread per process that parses events, stamps them
//! with the arrival [`Instant`] and records them in the lab-wide [`Hub`] (one mutex + condvar), so
//! waiting for a condition over all nodes is a condvar wait with a deadline, never a sleep.
//! stderr goes to a log file per incarnation (`stderr.<n>.log`), scanned later for panics.
//!
//! Requests (every [`Command`] but `quit`) are correlated with their answers by kind (and room,
//! or the address, `with` or `who` the answer echoes): the reader hands an answer to the oldest
//! unanswered request of that kind; an `error` event answers the oldest unanswered request of
//! any kind.

use anyhow::{bail, Context as _, Result};
use meshchat_api::{Command, DirectMessage, DmState, Event, Message};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest stdout line accepted (a big `history` answer); longer lines are dropped and counted.
const MAX_LINE: usize = 16 << 20;
/// Raw stdout lines kept per node for failure reports.
const RECENT_LINES: usize = 64;
/// Unmatched `error` events kept per node.
const MAX_ERRORS: usize = 256;
/// Events that are neither answers nor kept elsewhere, kept per node (oldest dropped first).
const MAX_OTHER_EVENTS: usize = 4096;
/// How often the reader polls for the exit status after stdout closed.
const EXIT_POLL: Duration = Duration::from_millis(5);

/// Why the lab expects a process to exit (so its exit status is judged accordingly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Not expected to exit: any exit is a crash.
    Running,
    /// Sent `{"cmd":"quit"}`: should exit 0.
    Quit,
    /// Sent SIGTERM after quit timed out.
    Term,
    /// Sent SIGKILL.
    Kill,
}

/// How one incarnation ended.
#[derive(Debug, Clone)]
pub struct Exit {
    /// Which incarnation (0 = first start).
    pub incarnation: u32,
    /// Exit code, if it exited normally.
    pub code: Option<i32>,
    /// Terminating signal, if any.
    pub signal: Option<i32>,
    /// What the lab expected at the time.
    pub expect: Expect,
}

impl Exit {
    /// Whether this exit is consistent with what the lab did to the process.
    pub fn is_clean(&self) -> bool {
        match self.expect {
            Expect::Running => false,
            Expect::Quit => self.code == Some(0),
            Expect::Term => self.code == Some(0) || self.signal == Some(15),
            Expect::Kill => true,
        }
    }
}

/// A message as received by one node.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message.
    pub msg: Message,
    /// When the lab read the event.
    pub at: Instant,
    /// Incarnation that showed it.
    pub incarnation: u32,
}

/// A direct message as shown by one node (a `dm` event).
#[derive(Debug, Clone)]
pub struct ReceivedDm {
    /// The DM.
    pub dm: DirectMessage,
    /// When the lab read the event.
    pub at: Instant,
    /// Incarnation that showed it.
    pub incarnation: u32,
}

/// A `dm_status` event.
#[derive(Debug, Clone)]
pub struct DmStatusSeen {
    /// DM id.
    pub id: String,
    /// New state.
    pub state: DmState,
    /// When the lab read the event.
    pub at: Instant,
    /// Incarnation that reported it.
    pub incarnation: u32,
}

/// A DM the lab asked a node to send (from its `dm_sent` answer).
#[derive(Debug, Clone)]
pub struct DmSentInfo {
    /// Sending host.
    pub node: usize,
    /// Recipient's peer id.
    pub to: String,
    /// When the `dm` command was written.
    pub at: Instant,
    /// State in the answer.
    pub state: DmState,
}

/// A message the lab asked a node to send.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Sending host.
    pub node: usize,
    /// Room.
    pub room: String,
    /// When the command was written to the node's stdin.
    pub at: Instant,
    /// Whether it is a lab probe (excluded from delivery assertions, still checked for dups).
    pub probe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Send,
    History,
    Peers,
    Join,
    Leave,
    /// Answered by `connected` or an `error`; nobody waits for it, but it must absorb the error
    /// of a failed dial so that error is not taken as the answer to another request.
    Connect,
    Nick,
    Dm,
    DmHistory,
    Conversations,
    Routes,
    Whois,
    Who,
    Tracker,
    Info,
    Stats,
    SendFile,
    AcceptFile,
    CancelFile,
    Invite,
    Remove,
    Members,
    Rooms,
    Files,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    kind: Kind,
    room: Option<String>,
    at: Instant,
    probe: bool,
    /// Nobody waits for the answer (pipelined send or timed-out request): drop it on arrival.
    detached: bool,
    reply: Option<Result<Event, String>>,
}

/// Everything the lab knows about one host's node, across restarts.
#[derive(Debug, Default)]
pub struct NodeState {
    /// Incarnation counter; 0 for the first start.
    pub incarnation: u32,
    /// Whether a process is running.
    pub running: bool,
    /// What exit the lab expects for the current process.
    pub expect: Option<Expect>,
    /// Peer id (from the latest `ready`).
    pub peer_id: Option<String>,
    /// Listen addresses of the current incarnation; `None` until `ready`.
    pub listen: Option<Vec<String>>,
    /// When the lab read the current incarnation's `ready` event.
    pub ready_at: Option<Instant>,
    /// The node's reachability (from `ready` and `reachability` events) and when it was read.
    pub reach: Option<(meshchat_api::Reachability, Instant)>,
    /// Addresses from `listening` events, current incarnation.
    pub listening: Vec<String>,
    /// Connected peers (count of connected minus disconnected events), current incarnation.
    pub connected: HashMap<String, u32>,
    /// When each peer in `connected` last became connected (its count went from 0 to 1).
    pub connected_at: HashMap<String, Instant>,
    /// When each peer last stopped being connected (its count went from 1 to 0), current
    /// incarnation.
    pub disconnected_at: HashMap<String, Instant>,
    /// Messages shown, by id, across incarnations (first showing).
    pub received: HashMap<String, Received>,
    /// Ids shown again after their first showing: (id, incarnation of the repeat).
    pub duplicates: Vec<(String, u32)>,
    /// Direct messages shown (`dm` events, own ones too), by id, across incarnations (first
    /// showing).
    pub dms: HashMap<String, ReceivedDm>,
    /// DM ids shown again after their first showing: (id, incarnation of the repeat).
    pub dm_duplicates: Vec<(String, u32)>,
    /// Every `dm_status` event, in arrival order, across incarnations.
    pub dm_statuses: Vec<DmStatusSeen>,
    /// `error` events that answered no request.
    pub errors: Vec<String>,
    /// The events that are not answers and not kept above (warnings, `tracker_changed`,
    /// `lagged`, kinds this version does not know, …), with arrival time.
    pub other_events: VecDeque<(Instant, Event)>,
    /// Last raw stdout lines.
    pub recent: VecDeque<String>,
    /// Lines that were not valid events.
    pub bad_lines: u64,
    /// The first such line (truncated), for the report.
    pub first_bad_line: Option<String>,
    /// How each incarnation ended.
    pub exits: Vec<Exit>,
    /// Pid of the current process.
    pub pid: Option<u32>,
    pending: VecDeque<Pending>,
}

impl NodeState {
    /// The TCP port this incarnation listens on at `ip` (from `ready` or `listening`, an
    /// exact-address listener first, then a wildcard one; port 0 ignored).
    pub fn tcp_port(&self, ip: &str) -> Option<u16> {
        let all: Vec<&String> = self
            .listen
            .iter()
            .flatten()
            .chain(&self.listening)
            .collect();
        [format!("/ip4/{ip}/tcp/"), "/ip4/0.0.0.0/tcp/".to_string()]
            .iter()
            .find_map(|pre| {
                all.iter().find_map(|l| {
                    let port = l
                        .strip_prefix(pre.as_str())?
                        .split('/')
                        .next()?
                        .parse()
                        .ok()?;
                    (port != 0).then_some(port)
                })
            })
    }

    fn answer(
        &mut self,
        kind: Option<Kind>,
        room: Option<&str>,
        reply: Result<Event, String>,
    ) -> Option<Pending> {
        let pos = self.pending.iter().position(|p| {
            p.reply.is_none()
                && kind.is_none_or(|k| k == p.kind)
                && (room.is_none() || p.room.is_none() || p.room.as_deref() == room)
        })?;
        self.pending[pos].reply = Some(reply);
        if self.pending[pos].detached {
            return self.pending.remove(pos);
        }
        None
    }
}

/// Lab-wide state shared with the reader threads.
#[derive(Debug, Default)]
pub struct HubState {
    /// Per host.
    pub nodes: Vec<NodeState>,
    /// Every message the lab sent, by id.
    pub sent: HashMap<String, Sent>,
    /// Every direct message the lab sent, by id.
    pub dms_sent: HashMap<String, DmSentInfo>,
    next_seq: u64,
}

/// [`HubState`] behind a mutex, with a condvar notified on every event.
#[derive(Debug, Default)]
pub struct Hub {
    state: Mutex<HubState>,
    cv: Condvar,
}

impl Hub {
    /// A hub for `n` hosts.
    pub fn new(n: usize) -> Arc<Self> {
        let hub = Hub::default();
        hub.lock().nodes = (0..n).map(|_| NodeState::default()).collect();
        Arc::new(hub)
    }

    /// Locks the state (poisoning is ignored: a panicking reader must not hide the state).
    pub fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `cond` holds or `deadline` passes; returns whether it holds.
    pub fn wait_until(&self, deadline: Instant, mut cond: impl FnMut(&HubState) -> bool) -> bool {
        let mut st = self.lock();
        loop {
            if cond(&st) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn notify(&self) {
        self.cv.notify_all();
    }
}

/// How to start a node.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The `meshchat` binary.
    pub bin: PathBuf,
    /// Network namespace.
    pub ns: String,
    /// Data directory (kept across restarts).
    pub data_dir: PathBuf,
    /// Directory for stderr logs.
    pub log_dir: PathBuf,
    /// Nick.
    pub nick: String,
    /// `--listen` multiaddrs.
    pub listen: Vec<String>,
    /// Extra arguments appended at the end.
    pub extra_args: Vec<String>,
    /// Let the node discover peers by mDNS (otherwise it gets `--no-mdns`).
    pub mdns: bool,
    /// Environment variables set for the process (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
}

/// A running (or exited) node process.
pub struct Proc {
    /// Process id (of meshchat itself: `ip netns exec` execs).
    pub pid: u32,
    child: Arc<Mutex<Child>>,
    stdin: Mutex<Option<ChildStdin>>,
    reader: Option<JoinHandle<()>>,
    /// Path of this incarnation's stderr log.
    pub log: PathBuf,
}

impl Proc {
    /// Starts host `idx`'s node with `--peer` for each of `peers`, as a new incarnation.
    pub fn spawn(hub: &Arc<Hub>, idx: usize, spec: &Spec, peers: &[String]) -> Result<Self> {
        std::fs::create_dir_all(&spec.data_dir)?;
        std::fs::create_dir_all(&spec.log_dir)?;
        let incarnation = {
            let st = hub.lock();
            let n = &st.nodes[idx];
            if n.running {
                bail!("node {idx} is already running");
            }
            n.incarnation + u32::from(!n.exits.is_empty() || n.pid.is_some())
        };
        let log = spec.log_dir.join(format!("stderr.{incarnation}.log"));
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &spec.ns]);
        if !spec.env.is_empty() {
            // The node's own variables reach the node alone, through `env` (which execs too):
            // set on `ip`, an `LD_PRELOAD` (the clock-skew scenario's libfaketime) loaded into
            // `ip` as well, whose exec left libfaketime's shared-memory file behind every start.
            cmd.arg("env")
                .args(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
        }
        cmd.arg(&spec.bin);
        cmd.arg("--json").arg("--data-dir").arg(&spec.data_dir);
        cmd.args(["--nick", &spec.nick]);
        if !spec.mdns {
            cmd.arg("--no-mdns");
        }
        for l in &spec.listen {
            cmd.args(["--listen", l]);
        }
        for p in peers {
            cmd.args(["--peer", p]);
        }
        cmd.args(&spec.extra_args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(File::create(&log)?));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {} in {}", spec.bin.display(), spec.ns))?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("child stdout")?;
        {
            let mut st = hub.lock();
            let n = &mut st.nodes[idx];
            n.incarnation = incarnation;
            n.running = true;
            n.expect = Some(Expect::Running);
            n.listen = None;
            n.ready_at = None;
            n.listening.clear();
            n.connected.clear();
            n.connected_at.clear();
            n.disconnected_at.clear();
            n.pid = Some(pid);
        }
        let child = Arc::new(Mutex::new(child));
        let reader = {
            let (hub, child) = (hub.clone(), child.clone());
            std::thread::Builder::new()
                .name(format!("lab-node{idx}"))
                .spawn(move || read_events(hub, idx, incarnation, stdout, child))?
        };
        Ok(Proc {
            pid,
            child,
            stdin: Mutex::new(stdin),
            reader: Some(reader),
            log,
        })
    }

    /// Writes one command line. Fails if stdin is closed (process gone).
    pub fn write(&self, cmd: &Command) -> Result<()> {
        let mut guard = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let stdin = guard.as_mut().context("node stdin is closed")?;
        let mut line = cmd.to_line();
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .and_then(|_| stdin.flush())
            .context("writing to node stdin")
    }

    /// Closes stdin (EOF for the node).
    pub fn close_stdin(&self) {
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Sends `sig` to the process if it has not been reaped yet.
    pub fn signal(&self, sig: &str) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(child.try_wait(), Ok(None)) {
            if sig == "KILL" {
                let _ = child.kill();
            } else {
                // Not reaped, so the pid cannot have been reused.
                crate::sys::signal(self.pid, sig);
            }
        }
    }

    /// Waits for the reader thread (it ends once the exit status is recorded).
    pub fn join(&mut self) {
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.close_stdin();
        self.signal("KILL");
        self.join();
    }
}

/// Registers a request and writes it; returns its sequence number.
pub fn request(
    hub: &Hub,
    idx: usize,
    proc_: &Proc,
    cmd: &Command,
    probe: bool,
    detached: bool,
) -> Result<u64> {
    let (kind, room) = match cmd {
        Command::Send { room, .. } => (Kind::Send, Some(room.clone())),
        Command::History { room, .. } => (Kind::History, Some(room.clone())),
        Command::Peers => (Kind::Peers, None),
        Command::Join { room, .. } | Command::Create { room } => (Kind::Join, Some(room.clone())),
        Command::Invite { room, .. } => (Kind::Invite, Some(room.clone())),
        Command::Remove { room, .. } => (Kind::Remove, Some(room.clone())),
        Command::Members { room } => (Kind::Members, Some(room.clone())),
        Command::Rooms => (Kind::Rooms, None),
        Command::Leave { room } => (Kind::Leave, Some(room.clone())),
        Command::Connect { addr } => (Kind::Connect, Some(addr.clone())),
        Command::Nick { .. } => (Kind::Nick, None),
        Command::Dm { .. } => (Kind::Dm, None),
        Command::DmHistory { with, .. } => (Kind::DmHistory, Some(with.clone())),
        Command::Conversations => (Kind::Conversations, None),
        Command::Routes => (Kind::Routes, None),
        Command::Whois { who } => (Kind::Whois, Some(who.clone())),
        Command::Who => (Kind::Who, None),
        Command::Tracker => (Kind::Tracker, None),
        Command::Info => (Kind::Info, None),
        Command::Stats => (Kind::Stats, None),
        Command::SendFile { .. } => (Kind::SendFile, None),
        Command::AcceptFile { .. } => (Kind::AcceptFile, None),
        Command::CancelFile { .. } => (Kind::CancelFile, None),
        Command::Files => (Kind::Files, None),
        Command::Quit => {
            proc_.write(cmd)?;
            return Ok(0);
        }
    };
    let seq = {
        let mut st = hub.lock();
        st.next_seq += 1;
        let seq = st.next_seq;
        let at = Instant::now();
        st.nodes[idx].pending.push_back(Pending {
            seq,
            kind,
            room,
            at,
            probe,
            detached,
            reply: None,
        });
        seq
    };
    if let Err(e) = proc_.write(cmd) {
        hub.lock().nodes[idx].pending.retain(|p| p.seq != seq);
        return Err(e);
    }
    Ok(seq)
}

/// Waits for the answer to request `seq` of host `idx`.
pub fn await_reply(hub: &Hub, idx: usize, seq: u64, deadline: Instant) -> Result<Event> {
    let ok = hub.wait_until(deadline, |st| {
        let n = &st.nodes[idx];
        n.pending.iter().any(|p| p.seq == seq && p.reply.is_some())
            || !n.pending.iter().any(|p| p.seq == seq)
    });
    let mut st = hub.lock();
    let pending = &mut st.nodes[idx].pending;
    let pos = pending.iter().position(|p| p.seq == seq);
    if !ok {
        if let Some(pos) = pos {
            pending[pos].detached = true;
        }
        bail!("node {idx}: no answer to request before the deadline");
    }
    let p = pos
        .and_then(|pos| pending.remove(pos))
        .context("request vanished")?;
    p.reply
        .unwrap_or_else(|| Err("no reply".into()))
        .map_err(|e| anyhow::anyhow!("node {idx}: {e}"))
}

fn read_events(
    hub: Arc<Hub>,
    idx: usize,
    incarnation: u32,
    stdout: std::process::ChildStdout,
    child: Arc<Mutex<Child>>,
) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let overlong = buf.last() != Some(&b'\n') && buf.len() >= MAX_LINE;
        if overlong {
            // Skip the rest of the line.
            let mut sink = Vec::new();
            let _ = reader.read_until(b'\n', &mut sink);
        }
        let at = Instant::now();
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = if overlong {
            None
        } else {
            Event::from_line(line).ok()
        };
        let mut st = hub.lock();
        {
            let n = &mut st.nodes[idx];
            if n.recent.len() >= RECENT_LINES {
                n.recent.pop_front();
            }
            n.recent.push_back(line.chars().take(300).collect());
        }
        match parsed {
            Some(ev) => on_event(&mut st, idx, incarnation, ev, at),
            None => {
                let n = &mut st.nodes[idx];
                n.bad_lines += 1;
                if n.first_bad_line.is_none() {
                    n.first_bad_line = Some(line.chars().take(300).collect());
                }
            }
        }
        drop(st);
        hub.notify();
    }
    // stdout closed: wait for the exit status.
    let status = loop {
        {
            let mut c = child.lock().unwrap_or_else(|e| e.into_inner());
            match c.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) => {}
                Err(_) => break None,
            }
        }
        std::thread::sleep(EXIT_POLL);
    };
    let mut st = hub.lock();
    let n = &mut st.nodes[idx];
    n.exits.push(Exit {
        incarnation,
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        expect: n.expect.unwrap_or(Expect::Running),
    });
    n.running = false;
    n.listen = None;
    n.reach = None;
    n.connected.clear();
    n.connected_at.clear();
    for p in n.pending.iter_mut().filter(|p| p.reply.is_none()) {
        p.reply = Some(Err("node exited".into()));
    }
    n.pending.retain(|p| !p.detached);
    drop(st);
    hub.notify();
}

pub(crate) fn on_event(st: &mut HubState, idx: usize, incarnation: u32, ev: Event, at: Instant) {
    match ev {
        Event::Ready(info) => {
            let n = &mut st.nodes[idx];
            n.peer_id = Some(info.peer_id);
            n.listen = Some(info.listen);
            n.ready_at = Some(at);
            n.reach = Some((info.reach, at));
        }
        Event::Reachability(r) => st.nodes[idx].reach = Some((r, at)),
        Event::Message(msg) => {
            let n = &mut st.nodes[idx];
            if n.received.contains_key(&msg.id) {
                n.duplicates.push((msg.id, incarnation));
            } else {
                n.received.insert(
                    msg.id.clone(),
                    Received {
                        msg,
                        at,
                        incarnation,
                    },
                );
            }
        }
        Event::Sent {
            ref room, ref id, ..
        } => {
            let (room, id) = (room.clone(), id.clone());
            let n = &mut st.nodes[idx];
            // Record the send time from the oldest unanswered send of this room.
            let info = n
                .pending
                .iter()
                .find(|p| {
                    p.reply.is_none() && p.kind == Kind::Send && p.room.as_deref() == Some(&room)
                })
                .map(|p| (p.at, p.probe));
            n.answer(Some(Kind::Send), Some(&room), Ok(ev));
            if let Some((sent_at, probe)) = info {
                st.sent.insert(
                    id,
                    Sent {
                        node: idx,
                        room,
                        at: sent_at,
                        probe,
                    },
                );
            }
        }
        Event::PeerConnected { peer_id } => {
            let n = &mut st.nodes[idx];
            let count = n.connected.entry(peer_id.clone()).or_default();
            *count += 1;
            if *count == 1 {
                n.connected_at.insert(peer_id, at);
            }
        }
        Event::PeerDisconnected { peer_id } => {
            let n = &mut st.nodes[idx];
            if let Some(v) = n.connected.get_mut(&peer_id) {
                *v -= 1;
                if *v == 0 {
                    n.connected.remove(&peer_id);
                    n.connected_at.remove(&peer_id);
                    n.disconnected_at.insert(peer_id, at);
                }
            }
        }
        Event::History { ref room, .. } => {
            let room = room.clone();
            st.nodes[idx].answer(Some(Kind::History), Some(&room), Ok(ev));
        }
        Event::Peers { .. } => {
            st.nodes[idx].answer(Some(Kind::Peers), None, Ok(ev));
        }
        Event::Joined {
            ref room, by: None, ..
        } => {
            let room = room.clone();
            st.nodes[idx].answer(Some(Kind::Join), Some(&room), Ok(ev));
        }
        Event::Left { ref room, .. } => {
            let room = room.clone();
            st.nodes[idx].answer(Some(Kind::Leave), Some(&room), Ok(ev));
        }
        Event::Dm(dm) => {
            let n = &mut st.nodes[idx];
            if n.dms.contains_key(&dm.id) {
                n.dm_duplicates.push((dm.id, incarnation));
            } else {
                n.dms.insert(
                    dm.id.clone(),
                    ReceivedDm {
                        dm,
                        at,
                        incarnation,
                    },
                );
            }
        }
        Event::DmStatus { id, state, .. } => {
            st.nodes[idx].dm_statuses.push(DmStatusSeen {
                id,
                state,
                at,
                incarnation,
            });
        }
        Event::DmSent(ref sent) => {
            let info = (sent.id.clone(), sent.to.clone(), sent.state);
            let n = &mut st.nodes[idx];
            let asked = n
                .pending
                .iter()
                .find(|p| p.reply.is_none() && p.kind == Kind::Dm)
                .map(|p| p.at);
            n.answer(Some(Kind::Dm), None, Ok(ev));
            if let Some(at) = asked {
                let (id, to, state) = info;
                st.dms_sent.insert(
                    id,
                    DmSentInfo {
                        node: idx,
                        to,
                        at,
                        state,
                    },
                );
            }
        }
        Event::DmHistory { ref with, .. } => {
            let with = with.clone();
            st.nodes[idx].answer(Some(Kind::DmHistory), Some(&with), Ok(ev));
        }
        Event::Conversations { .. } => {
            st.nodes[idx].answer(Some(Kind::Conversations), None, Ok(ev));
        }
        Event::Routes { .. } => {
            st.nodes[idx].answer(Some(Kind::Routes), None, Ok(ev));
        }
        Event::Whois { ref who, .. } => {
            let who = who.clone();
            st.nodes[idx].answer(Some(Kind::Whois), Some(&who), Ok(ev));
        }
        Event::Error { message } => {
            let n = &mut st.nodes[idx];
            let unanswered = n.pending.iter().any(|p| p.reply.is_none());
            if unanswered {
                n.answer(None, None, Err(message));
            } else if n.errors.len() < MAX_ERRORS {
                n.errors.push(message);
            }
        }
        Event::Listening { addr } => {
            let n = &mut st.nodes[idx];
            if !n.listening.contains(&addr) {
                n.listening.push(addr);
            }
        }
        Event::Connected { ref addr, .. } => {
            let addr = addr.clone();
            st.nodes[idx].answer(Some(Kind::Connect), Some(&addr), Ok(ev));
        }
        Event::Nick { .. } => {
            st.nodes[idx].answer(Some(Kind::Nick), None, Ok(ev));
        }
        Event::Who { .. } => {
            st.nodes[idx].answer(Some(Kind::Who), None, Ok(ev));
        }
        Event::Tracker(_) => {
            st.nodes[idx].answer(Some(Kind::Tracker), None, Ok(ev));
        }
        Event::Info(_) => {
            st.nodes[idx].answer(Some(Kind::Info), None, Ok(ev));
        }
        Event::Stats(_) => {
            st.nodes[idx].answer(Some(Kind::Stats), None, Ok(ev));
        }
        Event::FileOffered(_) => {
            st.nodes[idx].answer(Some(Kind::SendFile), None, Ok(ev));
        }
        Event::FileAccepted { .. } => {
            st.nodes[idx].answer(Some(Kind::AcceptFile), None, Ok(ev));
        }
        Event::FileCancelled { .. } => {
            st.nodes[idx].answer(Some(Kind::CancelFile), None, Ok(ev));
        }
        Event::Files { .. } => {
            st.nodes[idx].answer(Some(Kind::Files), None, Ok(ev));
        }
        Event::Invited { ref room, .. } => {
            let room = room.clone();
            st.nodes[idx].answer(Some(Kind::Invite), Some(&room), Ok(ev));
        }
        Event::Removed { ref room, .. } => {
            let room = room.clone();
            st.nodes[idx].answer(Some(Kind::Remove), Some(&room), Ok(ev));
        }
        Event::Members { ref room, .. } => {
            // An answer if one is asked for, else a change told unasked (not kept).
            let room = room.clone();
            st.nodes[idx].answer(Some(Kind::Members), Some(&room), Ok(ev));
        }
        Event::Rooms { .. } => {
            st.nodes[idx].answer(Some(Kind::Rooms), None, Ok(ev));
        }
        // Joined by an invite: not an answer.
        Event::Warning(_)
        | Event::Joined { by: Some(_), .. }
        | Event::TrackerChanged { .. }
        | Event::Lagged { .. }
        | Event::FileOffer(_)
        | Event::FileProgress { .. }
        | Event::FileDone { .. }
        | Event::FileFailed { .. }
        | Event::Unknown => {
            let n = &mut st.nodes[idx];
            if n.other_events.len() >= MAX_OTHER_EVENTS {
                n.other_events.pop_front();
            }
            n.other_events.push_back((at, ev));
        }
    }
}
