//! Test harness: a node on loopback with a temporary data dir, and deadline-bounded waits.
#![allow(dead_code)]

pub mod raw;
pub mod relay;

use std::path::PathBuf;
use std::time::Duration;

use meshchat_core::MessageId;
use meshchat_node::{Config, Event, Handle, MessageView, Multiaddr, PeerId};
use tokio::sync::mpsc;

/// A room text by `key` (nick `nick`) to `target`, dated `timestamp_ms`: the envelope a node
/// would publish, for tests and benches that write frames by hand.
pub fn room_envelope(
    key: &meshchat_core::Keypair,
    target: &str,
    timestamp_ms: u64,
    nonce: u64,
    text: &str,
) -> Vec<u8> {
    let body = meshchat_core::room::Text {
        nick: "raw".into(),
        text: text.into(),
    }
    .encode()
    .unwrap();
    meshchat_core::Envelope::sign(
        key,
        meshchat_core::envelope::Draft {
            kind: meshchat_core::envelope::Kind::RoomText,
            target,
            timestamp_ms,
            nonce,
            body: &body,
        },
    )
    .unwrap()
    .into_bytes()
}

/// Longest any single condition is waited for before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How long "nothing more arrives" is watched for. Only ever shortens a passing test's
/// certainty, never makes a failing one pass.
pub const QUIET: Duration = Duration::from_millis(500);

pub struct TestNode {
    pub name: String,
    pub handle: Handle,
    pub events: mpsc::Receiver<Event>,
    pub peer_id: PeerId,
    /// Listen address with `/p2p/<peer id>`.
    pub addr: Multiaddr,
    /// Keeps the data dir alive for the node's lifetime.
    pub dir: tempfile::TempDir,
    /// Chat peers connected now, as seen from events.
    pub connected: std::collections::HashSet<PeerId>,
    /// Events read while waiting for something else, not yet consumed.
    backlog: Vec<Event>,
}

/// With `MESHCHAT_TEST_LOG` set (an env-filter such as `meshchat_node=debug`), the nodes' logs
/// go to the test's output: what a failing test did, without a rebuild.
fn init_log() {
    if let Ok(filter) = std::env::var("MESHCHAT_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

impl TestNode {
    pub async fn start(name: &str, peers: &[&TestNode]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), name, peers).await
    }

    pub async fn start_in(dir: tempfile::TempDir, name: &str, peers: &[&TestNode]) -> Self {
        Self::start_in_with_nick(dir, Some(name), peers).await
    }

    pub async fn start_in_with_nick(
        dir: tempfile::TempDir,
        nick: Option<&str>,
        peers: &[&TestNode],
    ) -> Self {
        Self::start_with(dir, nick, peers, |_| {}).await
    }

    /// Starts a node with a configuration adjusted by `tweak` after the test defaults.
    pub async fn start_with(
        dir: tempfile::TempDir,
        nick: Option<&str>,
        peers: &[&TestNode],
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        init_log();
        let mut config = Config::loopback(dir.path());
        config.nick = nick.map(str::to_owned);
        config.peers = peers.iter().map(|p| p.addr.clone()).collect();
        // Exactly the topology the test builds: no DHT lookups (which connect to the peers they
        // ask) and no extra dials to discovered peers.
        config.target_peers = 0;
        config.dht = false;
        tweak(&mut config);
        let (handle, events) = meshchat_node::spawn(config).await.expect("node starts");
        let info = handle.info().await.unwrap();
        let addr = info.listen[0]
            .clone()
            .with(libp2p::multiaddr::Protocol::P2p(info.peer_id));
        Self {
            name: info.nick.clone(),
            handle,
            events,
            peer_id: info.peer_id,
            addr,
            dir,
            connected: Default::default(),
            backlog: Vec::new(),
        }
    }

    /// A node named `name` dialing `peers` whose database writes fail (as on a full disk)
    /// while the returned flag is set.
    pub async fn start_with_failing_disk(
        name: &str,
        peers: &[&TestNode],
    ) -> (Self, std::sync::Arc<std::sync::atomic::AtomicBool>) {
        let full = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = full.clone();
        let node = Self::start_with(tempfile::tempdir().unwrap(), Some(name), peers, move |c| {
            c.fail_writes = Some(flag)
        })
        .await;
        (node, full)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Stops the node and hands back its data dir for a restart.
    pub async fn stop(self) -> tempfile::TempDir {
        self.handle.shutdown().await;
        self.dir
    }

    pub async fn send(&self, room: &str, text: &str) -> MessageId {
        self.handle.send(room, text).await.expect("send").id
    }

    pub async fn send_err(&self, room: &str, text: &str) -> String {
        self.handle.send(room, text).await.unwrap_err().to_string()
    }

    fn track(&mut self, e: &Event) {
        match e {
            Event::PeerConnected { peer_id } => {
                self.connected.insert(*peer_id);
            }
            Event::PeerDisconnected { peer_id } => {
                self.connected.remove(peer_id);
            }
            _ => {}
        }
    }

    async fn next_event(&mut self, deadline: tokio::time::Instant) -> Option<Event> {
        let e = tokio::time::timeout_at(deadline, self.events.recv())
            .await
            .ok()??;
        self.track(&e);
        Some(e)
    }

    /// Waits for an event matching `pred` (other events are kept for later).
    pub async fn wait_for(&mut self, pred: impl Fn(&Event) -> bool) -> Event {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match self.next_event(deadline).await {
                Some(e) if pred(&e) => return e,
                Some(e) => self.backlog.push(e),
                None => panic!("{}: no matching event within {DEADLINE:?}", self.name),
            }
        }
    }

    /// Waits until at least `n` chat peers are connected.
    pub async fn wait_peers(&mut self, n: usize) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.connected.len() < n {
            match self.next_event(deadline).await {
                Some(e) if matches!(e, Event::Message(_) | Event::Warning(_)) => {
                    self.backlog.push(e)
                }
                Some(_) => {}
                None => panic!(
                    "{}: {} of {n} peers within {DEADLINE:?}",
                    self.name,
                    self.connected.len()
                ),
            }
        }
    }

    /// Collects exactly `n` message events (own ones included).
    pub async fn collect_messages(&mut self, n: usize) -> Vec<MessageView> {
        let mut out = Vec::new();
        self.backlog.retain(|e| match e {
            Event::Message(m) if out.len() < n => {
                out.push(m.clone());
                false
            }
            _ => true,
        });
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while out.len() < n {
            match self.next_event(deadline).await {
                Some(Event::Message(m)) => out.push(m),
                Some(_) => {}
                None => panic!(
                    "{}: {} of {n} messages within {DEADLINE:?}: {:?}",
                    self.name,
                    out.len(),
                    out.iter().map(|m| &m.text).collect::<Vec<_>>()
                ),
            }
        }
        out
    }

    /// Waits until `cond` holds for the node's stats (polled every 20 ms, within [`DEADLINE`]).
    pub async fn wait_stats(
        &self,
        what: &str,
        cond: impl Fn(&meshchat_node::Stats) -> bool,
    ) -> meshchat_node::Stats {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let s = self.handle.stats().await.unwrap();
            if cond(&s) {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {what} within {DEADLINE:?}: {s:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The texts of a room's stored messages, sorted.
    pub async fn history_texts(&self, room: &str) -> Vec<String> {
        let mut texts: Vec<String> = self
            .handle
            .history(room, 1000, None)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        texts.sort();
        texts
    }

    /// Every event read so far (while waiting for something else) and those queued now, taken.
    pub fn take_events(&mut self) -> Vec<Event> {
        while let Ok(e) = self.events.try_recv() {
            self.backlog.push(e);
        }
        std::mem::take(&mut self.backlog)
    }

    /// The warnings read so far (while waiting for something else) and those queued now.
    pub fn warnings(&mut self) -> Vec<String> {
        while let Ok(e) = self.events.try_recv() {
            self.backlog.push(e);
        }
        self.backlog
            .iter()
            .filter_map(|e| match e {
                Event::Warning(w) => Some(w.clone()),
                _ => None,
            })
            .collect()
    }

    /// Asserts that no further message event arrives within [`QUIET`].
    pub async fn assert_no_more_messages(&mut self) {
        if let Some(Event::Message(m)) =
            self.backlog.iter().find(|e| matches!(e, Event::Message(_)))
        {
            panic!("{}: unexpected message {:?}", self.name, m.text);
        }
        let deadline = tokio::time::Instant::now() + QUIET;
        while let Some(e) = self.next_event(deadline).await {
            if let Event::Message(m) = e {
                panic!("{}: unexpected message {:?}", self.name, m.text);
            }
        }
    }
}

/// Waits until `cond` holds (polled every 20 ms, within [`DEADLINE`]).
pub async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Everything a node's data dir holds, as bytes (database, WAL, key file): for checks that a
/// relay keeps no plaintext.
pub fn dir_bytes(node_dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(node_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
