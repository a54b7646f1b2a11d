//! Validated node configuration. Built by the binary (or a test); this crate never reads argv or
//! the environment.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;

/// Port tried first when no `--listen` is given, so a node's address stays the same across
/// restarts; if it is taken (a second node on the same machine), the OS picks one.
pub const DEFAULT_PORT: u16 = 7447;

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds the identity key, the database and the log. Created with mode 0700.
    pub data_dir: PathBuf,
    /// Nick to use; `None` keeps the stored one (or a default made from the peer id).
    pub nick: Option<String>,
    /// Addresses to listen on; empty means every IPv4 interface, TCP and QUIC, on
    /// [`DEFAULT_PORT`] or any free port.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start, besides the known peers from the database.
    pub peers: Vec<Multiaddr>,
    /// Discover peers on the LAN by multicast DNS.
    pub mdns: bool,
    /// Take part in the Kademlia DHT (peer discovery beyond the LAN).
    pub dht: bool,
    /// Ask the router for a port mapping (UPnP IGD) when behind one. It searches the LAN by
    /// multicast (SSDP), so tests on loopback turn it off.
    pub upnp: bool,
    /// Relay for nodes behind NATs (circuit relay v2), within [`Nat`]'s bounds.
    pub relay_service: bool,
    /// NAT traversal: AutoNAT's probes, the relay service's bounds, reservations held.
    pub nat: Nat,
    /// Keep the database in memory (benchmarks); nothing survives a restart.
    pub in_memory_store: bool,
    /// Most established connections at once.
    pub max_connections: u32,
    /// Longest a new connection may take to finish its handshake (TCP or QUIC, Noise, Yamux),
    /// in either direction: see [`DEFAULT_HANDSHAKE_TIMEOUT`]. Tests lengthen it to show that
    /// something else frees a slot.
    pub handshake_timeout: Duration,
    /// Below this many connected peers, the node dials known and DHT-discovered peers; 0 means
    /// it dials only what it is told to (start-up peers, known peers at start, `connect`), which
    /// keeps a test or benchmark topology exactly as built.
    pub target_peers: usize,
    /// Per-neighbour bounds: unique messages per second, and the strikes that block a peer
    /// sending forged or malformed envelopes.
    pub guard: meshchat_core::guard::Limits,
    /// Events queued for the front-end before further ones are dropped (see `Event::Lagged`).
    pub event_queue: usize,
    /// History sync reconciles the room messages of this last stretch of time.
    pub sync_window: Duration,
    /// How often a node reconciles with each peer while connected (also on connecting and after
    /// joining a room).
    pub sync_interval: Duration,
    /// Most bytes of envelopes kept for rooms this node is not in (held to serve sync); the
    /// oldest go first.
    pub relay_budget: u64,
    /// Bounds of reconciliation (frame size, rounds, ids per round, sessions).
    pub sync: meshchat_core::sync::Limits,
    /// Timers and bounds of the broadcast trees.
    pub broadcast: meshchat_core::broadcast::Config,
    /// Per-author limits on what the node takes from the trees and relays.
    pub authors: meshchat_core::authors::Limits,
    /// Rank in tracker elections (issue 12): the highest-priority reachable node is the
    /// network's tracker; `None` never becomes it.
    pub tracker_priority: Option<u32>,
    /// Trackers to register with (`--tracker ADDR`): dialed at start and whenever not
    /// connected, so the preferred trackers they are stay in this node's component and win its
    /// election (the node registers with the elected tracker, see ARCHITECTURE).
    pub trackers: Vec<Multiaddr>,
    /// Election timers and roster bounds.
    pub election: meshchat_core::election::Limits,
    /// Routing table timers and bounds (direct messages).
    pub routing: meshchat_core::routing::Limits,
    /// Outbox and custody bounds (direct messages).
    pub dm: meshchat_core::dm::Limits,
    /// File transfer (issue 20): where downloads go, what is fetched unasked, how much disk
    /// is kept free, and the downloader's windows and timeouts.
    pub files: Files,
    /// Tests: while set, message writes fail as on a full disk.
    #[doc(hidden)]
    pub fail_writes: Option<Arc<AtomicBool>>,
}

/// File transfer settings ([`Config::files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// Finished downloads go here; partial ones in its `.meshchat-partial/` (the same disk, so
    /// a verified file is moved in place, never copied).
    pub download_dir: PathBuf,
    /// Offers up to this many bytes, in a joined room or to us, are fetched without asking.
    pub auto_accept_size: u64,
    /// A download that would leave less than this free on the download dir's disk is refused.
    pub keep_free: u64,
    /// The downloader's windows, timeouts and holder bounds.
    pub download: meshchat_core::transfer::Config,
}

/// NAT traversal settings ([`Config::nat`]). The defaults are what a node runs with; tests
/// shorten the probe delays.
#[derive(Debug, Clone, Copy)]
pub struct Nat {
    /// AutoNAT (v1): first probe this long after start, then again every `retry` while the
    /// verdict is unsure, every `refresh` once it is sure.
    pub boot_delay: Duration,
    pub retry: Duration,
    pub refresh: Duration,
    /// Our reservations at relays: how many, and when to ask again.
    pub reach: meshchat_core::reach::Limits,
    /// The relay service's bounds (see ARCHITECTURE, "Across NATs").
    pub relay: RelayLimits,
}

/// What one node's relay service gives, in total and per peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    pub max_reservations: usize,
    pub max_reservations_per_peer: usize,
    pub reservation_duration: Duration,
    /// New reservations a peer may ask for in a minute (a renewal counts).
    pub reservations_per_minute: u32,
    pub max_circuits: usize,
    pub max_circuits_per_peer: usize,
    pub max_circuit_duration: Duration,
    /// Bytes relayed on one circuit, both directions together, before it is closed.
    pub max_circuit_bytes: u64,
    /// New circuits a peer may open through us in a minute.
    pub circuits_per_minute: u32,
}

impl Default for Nat {
    fn default() -> Self {
        Self {
            boot_delay: Duration::from_secs(3),
            // Longer than the idle timeout (30 s), so that a probe's dial-back connection is
            // gone before the next probe: they would otherwise pile up against the per-peer
            // connection limit and make dial-backs fail (lab, `file-line`).
            retry: Duration::from_secs(60),
            refresh: Duration::from_secs(15 * 60),
            reach: meshchat_core::reach::Limits::default(),
            relay: RelayLimits::default(),
        }
    }
}

impl Default for RelayLimits {
    /// A relay on a modest machine: reservations are a few hundred bytes each, a circuit holds
    /// two copy buffers; a circuit lives until hole punching replaces it, or carries a chat
    /// between two nodes that cannot punch through (symmetric NATs) for a while.
    fn default() -> Self {
        Self {
            max_reservations: 128,
            max_reservations_per_peer: 2,
            reservation_duration: Duration::from_secs(60 * 60),
            reservations_per_minute: 4,
            max_circuits: 64,
            max_circuits_per_peer: 8,
            max_circuit_duration: Duration::from_secs(30 * 60),
            max_circuit_bytes: 32 * 1024 * 1024,
            circuits_per_minute: 30,
        }
    }
}

/// Default [`Files::auto_accept_size`]: 8 MiB (photos and documents, not videos).
pub const DEFAULT_AUTO_ACCEPT_SIZE: u64 = 8 * 1024 * 1024;
/// Default [`Files::keep_free`]: 64 MiB, so a download never fills the disk the database is on.
pub const DEFAULT_KEEP_FREE: u64 = 64 * 1024 * 1024;

/// Default [`Config::handshake_timeout`]: sockets that never finish a handshake free their slot
/// soon (libp2p's default is 10 s), while a slow honest link still has time for its few round
/// trips.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default [`Config::tracker_priority`].
pub const DEFAULT_TRACKER_PRIORITY: u32 = 100;

/// Default [`Config::sync_window`]: 30 days.
pub const DEFAULT_SYNC_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default [`Config::relay_budget`]: 256 MiB.
pub const DEFAULT_RELAY_BUDGET: u64 = 256 * 1024 * 1024;

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir: PathBuf = data_dir.into();
        Self {
            files: Files {
                download_dir: data_dir.join("downloads"),
                auto_accept_size: DEFAULT_AUTO_ACCEPT_SIZE,
                keep_free: DEFAULT_KEEP_FREE,
                download: meshchat_core::transfer::Config::default(),
            },
            data_dir,
            nick: None,
            listen: Vec::new(),
            peers: Vec::new(),
            mdns: true,
            dht: true,
            upnp: true,
            relay_service: true,
            nat: Nat::default(),
            in_memory_store: false,
            max_connections: 128,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            target_peers: 8,
            guard: meshchat_core::guard::Limits::default(),
            event_queue: crate::node::EVENT_QUEUE,
            sync_window: DEFAULT_SYNC_WINDOW,
            sync_interval: Duration::from_secs(60),
            relay_budget: DEFAULT_RELAY_BUDGET,
            sync: meshchat_core::sync::Limits::default(),
            broadcast: meshchat_core::broadcast::Config {
                // Announcements are most of the trees' frames (a node announces each message to
                // all its links but one), and each frame wakes a neighbour's process. Batching
                // them for 50 ms instead of 20 cut the CPU per node and message at N = 100,
                // 45 msg/s from ~313 to ~269 µs (BENCHMARKS §1); 250 ms instead of 50 cut the
                // CPU per process by a fifth in the 30-process lab at 20 msg/s and the median to
                // all nodes by as much (BENCHMARKS §2, issue 25). It delays only repairs (a lost
                // push is grafted ~400 ms after it was sent instead of ~200).
                ihave_interval: Duration::from_millis(250),
                ..meshchat_core::broadcast::Config::default()
            },
            authors: meshchat_core::authors::Limits::default(),
            tracker_priority: Some(DEFAULT_TRACKER_PRIORITY),
            trackers: Vec::new(),
            election: meshchat_core::election::Limits::default(),
            routing: meshchat_core::routing::Limits::default(),
            dm: meshchat_core::dm::Limits::default(),
            fail_writes: None,
        }
    }

    /// A configuration for tests: loopback TCP on a free port, no mDNS.
    pub fn loopback(data_dir: impl Into<PathBuf>) -> Self {
        let mut c = Self::new(data_dir);
        c.listen = vec!["/ip4/127.0.0.1/tcp/0"
            .parse()
            .expect("static multiaddr parses")];
        c.mdns = false;
        c.upnp = false;
        c
    }
}
