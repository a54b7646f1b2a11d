//! The composed libp2p behaviour: everything a meshchat node speaks.

use std::time::Duration;

use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    allow_block_list, autonat, connection_limits, dcutr, identify, identity, kad, mdns, ping,
    relay, upnp, StreamProtocol,
};

use crate::Config;

pub mod broadcast;
pub mod file;
pub mod handshakes;
pub mod route;
pub mod sync;

/// The protocol string nodes announce in identify; peers that do not speak it are not chat peers.
pub const PROTOCOL_VERSION: &str = "/meshchat/1.0.0";
/// Kademlia protocol name: our own DHT, separate from other libp2p networks.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/meshchat/kad/1.0.0");
/// How often each connection is pinged, and how long an answer may take. A connection whose
/// pings stop coming back for 8 s is closed (`Conns::check_liveness`), as is one whose ping
/// fails (`Conns::on_ping`): over a link that died silently (a cable pulled, a radio out of
/// range) TCP keeps a connection for about 15 minutes by default, and while it stands no new
/// connection forms when the link comes back, so neither the broadcast nor the sync round on
/// contact resume (found by the lab's partition scenario). Pinging every 5 s and closing on
/// libp2p-ping's reported failures alone, every connection over a cut link was gone 30 s after
/// the cut (lab, `partition-sync`); libp2p-ping keeps a connection's first failure to itself.
pub const PING_INTERVAL: Duration = Duration::from_secs(2);
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// The swarm's own bound on incoming connections still in their handshake: only a backstop.
/// [`handshakes`] bounds them in the transport, and this stays well above its
/// [`handshakes::MAX_PENDING`] so it never binds first: handshakes the transport refused or
/// aborted still count here until the swarm has heard that they ended.
pub const PENDING_INCOMING: u32 = 4 * handshakes::MAX_PENDING as u32;
/// Connections accepted beyond `Config::max_connections` while the node evicts one.
pub const EVICTION_ROOM: u32 = 16;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Peers blocked for sending envelopes no honest node forwards (see `meshchat_core::guard`):
    /// their connections are closed and new ones refused.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub limits: connection_limits::Behaviour,
    /// Room broadcast streams (`/meshchat/broadcast/2`, see [`broadcast`]), DM routing
    /// streams (`/meshchat/route/1`, see [`route`]) and file streams (`/meshchat/file/1`, see
    /// [`file`]).
    pub broadcast: libp2p_stream::Behaviour,
    /// History sync (`/meshchat/sync/1`).
    pub sync: sync::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// NAT traversal (issue 23, ARCHITECTURE "Across NATs"): AutoNAT v1 finds out whether
    /// peers can dial us (and serves their probes), UPnP asks the home router for a port
    /// mapping, the relay client holds reservations on public nodes while we are private, the
    /// relay service gives them to others, and DCUtR turns a relayed connection into a direct
    /// one by hole punching.
    pub autonat: autonat::Behaviour,
    pub upnp: Toggle<upnp::tokio::Behaviour>,
    pub relay_client: relay::client::Behaviour,
    pub relay: Toggle<relay::Behaviour>,
    pub dcutr: dcutr::Behaviour,
}

/// The relay protocol a peer that serves relays names in identify.
pub const RELAY_HOP: StreamProtocol = StreamProtocol::new("/libp2p/circuit/relay/0.2.0/hop");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mDNS: {0}")]
    Mdns(#[from] std::io::Error),
}

impl Behaviour {
    pub fn new(
        key: &identity::Keypair,
        relay_client: relay::client::Behaviour,
        config: &Config,
    ) -> Result<Self, Error> {
        let (mdns_enabled, dht_enabled, max_connections) =
            (config.mdns, config.dht, config.max_connections);
        let peer_id = key.public().to_peer_id();

        // Listen-address pushes tell neighbours at once when a relayed address appears or goes.
        let identify = identify::Behaviour::new(
            identify::Config::new(PROTOCOL_VERSION.into(), key.public())
                .with_agent_version(format!("meshchat/{}", env!("CARGO_PKG_VERSION")))
                .with_push_listen_addr_updates(true),
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
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    // Beyond `max_connections` the node evicts the least useful peer (see
                    // `Conns::evict_if_full`); the hard limit only leaves room to do so.
                    .with_max_established(Some(max_connections + EVICTION_ROOM))
                    // A relayed connection, and the direct one hole punching makes beside it
                    // (both ends dial at once, so briefly two) before the relayed one closes;
                    // AutoNAT's dial-backs, which live until idle, one each way.
                    .with_max_established_per_peer(Some(4))
                    .with_max_pending_incoming(Some(PENDING_INCOMING))
                    .with_max_pending_outgoing(Some(32)),
            ),
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
            autonat: autonat::Behaviour::new(peer_id, autonat_config(config)),
            upnp: config.upnp.then(upnp::tokio::Behaviour::default).into(),
            relay_client,
            relay: config
                .relay_service
                .then(|| relay_service(peer_id, config))
                .into(),
            dcutr: dcutr::Behaviour::new(peer_id),
        })
    }
}

fn autonat_config(config: &Config) -> autonat::Config {
    let nat = &config.nat;
    autonat::Config {
        timeout: Duration::from_secs(10),
        boot_delay: nat.boot_delay,
        retry_interval: nat.retry,
        refresh_interval: nat.refresh,
        // Any neighbour may be asked again after this: a node behind a NAT often has one or two.
        throttle_server_period: nat.retry,
        // meshchat's home is the LAN and community networks as much as the internet: a peer
        // on a private network is a fine judge of whether we can be dialed there, and we dial
        // back peers on private networks too (AutoNAT's server only ever dials the IP address
        // the asking peer was seen at, so it cannot be aimed at a third host).
        only_global_ips: false,
        ..autonat::Config::default()
    }
}

/// The relay service, advertised from the start. libp2p-relay 0.22 would switch the hop
/// protocol on and off with the node's confirmed external addresses, telling every connection's
/// handler, and a relayed connection's handler is a dummy that panics on being told anything
/// (`Either` mismatch: found by the lab's `file-line`, where a restarted node's relayed
/// connection was killed that way). Set once here, before any connection, the status never
/// changes. Nodes choose relays only among peers they dialed directly (`Nat`), so a node
/// behind a NAT offering the service costs nothing.
fn relay_service(peer_id: libp2p::PeerId, config: &Config) -> relay::Behaviour {
    let mut relay = relay::Behaviour::new(peer_id, relay_config(&config.nat.relay));
    relay.set_status(Some(relay::Status::Enable));
    relay
}

fn relay_config(l: &crate::config::RelayLimits) -> relay::Config {
    let per_minute = |n: u32| std::num::NonZeroU32::new(n.max(1)).expect("at least 1");
    relay::Config {
        max_reservations: l.max_reservations,
        max_reservations_per_peer: l.max_reservations_per_peer,
        reservation_duration: l.reservation_duration,
        reservation_rate_limiters: Vec::new(),
        max_circuits: l.max_circuits,
        max_circuits_per_peer: l.max_circuits_per_peer,
        max_circuit_duration: l.max_circuit_duration,
        max_circuit_bytes: l.max_circuit_bytes,
        circuit_src_rate_limiters: Vec::new(),
    }
    .reservation_rate_per_peer(
        per_minute(l.reservations_per_minute),
        Duration::from_secs(60),
    )
    .circuit_src_per_peer(per_minute(l.circuits_per_minute), Duration::from_secs(60))
}
