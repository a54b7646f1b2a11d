//! The composed libp2p behaviour: everything a meshchat node speaks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    allow_block_list, connection_limits, gossipsub, identify, identity, kad, mdns, ping,
    StreamProtocol,
};
use meshchat_core::envelope::MAX_ENVELOPE_LEN;
use meshchat_core::MessageId;

pub mod broadcast;
pub mod gate;
pub mod sync;
pub mod watch;

/// The protocol string nodes announce in identify; peers that do not speak it are not chat peers.
pub const PROTOCOL_VERSION: &str = "/meshchat/1.0.0";
/// The one mesh-wide gossipsub topic every node joins, so every node relays every room.
pub const MESH_TOPIC: &str = "meshchat/v1/mesh";
/// Kademlia protocol name: our own DHT, separate from other libp2p networks.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/meshchat/kad/1.0.0");

/// Gossipsub mesh degree: how many peers each node forwards every message to (it keeps between
/// [`MESH_DEGREE_LOW`] and [`MESH_DEGREE_HIGH`]). Every copy costs both ends a frame through Yamux,
/// Noise and the kernel, and that per-copy work is most of what a relay spends on a message, so the
/// degree sets the broadcast cost. Gossipsub's default (6, 5..12) puts every link of a node with
/// the typical ~6 links into the mesh and a message arrives ~4.4 times at each node; 4 (3..8) cuts
/// that to ~3.3. A sparser mesh (3, 2..5) cut it to ~2 but made well-connected nodes prune so often
/// that, with the prune backoff, a poorly connected node could be left out of every mesh for a
/// minute, living on IHAVE gossip alone (p99 320-825 ms at N = 50). Measurements and the rejected
/// settings: docs/BENCHMARKS.md.
pub const MESH_DEGREE: usize = 4;
pub const MESH_DEGREE_LOW: usize = 3;
pub const MESH_DEGREE_HIGH: usize = 8;
/// Most messages in one gossipsub RPC; a frame with more is dropped whole.
pub const MAX_MESSAGES_PER_RPC: usize = 64;
/// Gossipsub's frame limit. Gossipsub 0.50's decoder compares this with everything it has
/// buffered from a stream, not with one frame, and its reader adds up to 8 KiB per read: so
/// with a limit of one envelope plus framing, a largest envelope followed by the start of the
/// next one failed the stream, and after a few failed streams gossipsub gave up on the
/// connection for good (found by an independent client: two 61 KB texts back to back cut the
/// link). The limit is therefore the largest frame (an envelope, the topic and protobuf
/// framing, under 1 KiB) plus the reader's 8 KiB, rounded up with room to spare. The envelope
/// limit itself is enforced by our check ([`meshchat_core::inbound`]); a frame between the two
/// limits is a `too_large` strike.
pub const MAX_FRAME: usize = 2 * (MAX_ENVELOPE_LEN + 1024 + 8 * 1024);
/// How often each connection is pinged, and how long an answer may take. A ping that fails
/// closes the connection (`Actor::on_ping`): over a link that died silently (a cable pulled, a
/// radio out of range) TCP keeps a connection for about 15 minutes by default, and while it
/// stands no new connection forms when the link comes back, so neither the broadcast nor the
/// sync round on contact resume (found by the lab's partition scenario). With these values every
/// connection over a cut link was gone 30 s after the cut (lab, `partition-sync`).
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes one IP address may have in progress towards us (of 32 in all).
pub const PENDING_PER_IP: usize = 8;
/// Connections accepted beyond `Config::max_connections` while the node evicts one.
pub const EVICTION_ROOM: u32 = 16;
/// Gossip streams one direction of a connection may need before the connection counts as
/// failing and is closed and redialed (see [`watch`]); gossipsub itself gives up silently at 5.
pub const GOSSIP_MAX_STREAMS: u32 = 3;
/// Messages queued for one peer before gossipsub drops more and reports the peer slow (its
/// default is 5000). A peer that stops taking messages holds this many copies (up to 61 KB each)
/// until the node sees the stall (`Actor::on_slow_peer`) and reconnects.
pub const SEND_QUEUE: usize = 2048;
/// How long gossipsub remembers the id of every message it received. Each id costs it ~150
/// bytes, so this multiplies the rate a node takes messages in into memory. Copies of a message
/// arrive within a few heartbeats (gossip covers the last 3 s); a later copy is caught by the
/// node's own bounded seen-cache. Gossipsub's default is 60 s; 30 s halves the cost of a flood.
pub const DUPLICATE_CACHE_TIME: Duration = Duration::from_secs(30);

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Peers blocked for sending envelopes no honest node forwards (see `meshchat_core::guard`):
    /// their connections are closed and new ones refused.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Per-IP bounds on handshakes in progress, before the global limits.
    pub gate: gate::Behaviour,
    pub limits: connection_limits::Behaviour,
    /// Gossipsub behind a watchdog that closes connections whose gossip streams keep failing.
    pub gossipsub: watch::Watched<gossipsub::Behaviour>,
    /// Room broadcast streams (`/meshchat/broadcast/1`, see [`broadcast`]).
    pub broadcast: libp2p_stream::Behaviour,
    /// History sync (`/meshchat/sync/1`).
    pub sync: sync::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("gossipsub configuration: {0}")]
    Gossipsub(String),
    #[error("mDNS: {0}")]
    Mdns(#[from] std::io::Error),
}

impl Behaviour {
    pub fn new(
        key: &identity::Keypair,
        mdns_enabled: bool,
        dht_enabled: bool,
        max_connections: u32,
        copies: Arc<AtomicU64>,
    ) -> Result<Self, Error> {
        let peer_id = key.public().to_peer_id();

        // Our envelopes are signed by their authors and verified once per unique message by the
        // node, so gossipsub carries them anonymously (no second signature, no per-copy
        // verification) and waits for our verdict before forwarding (`validate_messages`).
        let gossip_config = gossipsub::ConfigBuilder::default()
            // A sparser mesh than gossipsub's default (6, 5..12): see MESH_DEGREE.
            .mesh_n(MESH_DEGREE)
            .mesh_n_low(MESH_DEGREE_LOW)
            .mesh_n_high(MESH_DEGREE_HIGH)
            .mesh_outbound_min(2)
            .validation_mode(gossipsub::ValidationMode::Anonymous)
            .validate_messages()
            // Called for every copy that arrives (before gossipsub's duplicate filter) and for
            // every publish: the count is the "copies received" figure of the benchmarks.
            .message_id_fn(move |m: &gossipsub::Message| {
                copies.fetch_add(1, Ordering::Relaxed);
                gossipsub::MessageId::new(&MessageId::of(&m.data).0)
            })
            .max_transmit_size(MAX_FRAME)
            // Our nodes send one message per RPC; a peer packing thousands into one frame is
            // flooding (gossipsub's default is 5000).
            .max_publish_messages(MAX_MESSAGES_PER_RPC)
            .heartbeat_interval(Duration::from_secs(1))
            .duplicate_cache_time(DUPLICATE_CACHE_TIME)
            .connection_handler_queue_len(SEND_QUEUE)
            .build()
            .map_err(|e| Error::Gossipsub(e.to_string()))?;
        let gossipsub =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_config)
                .map_err(|e| Error::Gossipsub(e.to_string()))?;

        let identify = identify::Behaviour::new(
            identify::Config::new(PROTOCOL_VERSION.into(), key.public())
                .with_agent_version(format!("meshchat/{}", env!("CARGO_PKG_VERSION"))),
        );

        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        kad_config.set_query_timeout(Duration::from_secs(30));
        let mut kad =
            kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
        // Every meshchat node serves the DHT: there is no "public" tier that could do it instead.
        kad.set_mode(Some(kad::Mode::Server));

        let mdns = if mdns_enabled {
            Some(mdns::tokio::Behaviour::new(
                mdns::Config::default(),
                peer_id,
            )?)
        } else {
            None
        };

        Ok(Self {
            blocked: allow_block_list::Behaviour::default(),
            gate: gate::Behaviour::new(PENDING_PER_IP),
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    // Beyond `max_connections` the node evicts the least useful peer (see
                    // `Actor::evict_if_full`); the hard limit only leaves room to do so.
                    .with_max_established(Some(max_connections + EVICTION_ROOM))
                    .with_max_established_per_peer(Some(2))
                    .with_max_pending_incoming(Some(32))
                    .with_max_pending_outgoing(Some(32)),
            ),
            gossipsub: watch::Watched::new(gossipsub, GOSSIP_MAX_STREAMS),
            broadcast: libp2p_stream::Behaviour::new(),
            sync: sync::behaviour(),
            identify,
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_INTERVAL)
                    .with_timeout(PING_TIMEOUT),
            ),
            kad: dht_enabled.then_some(kad).into(),
            mdns: mdns.into(),
        })
    }
}
