//! The composed libp2p behaviour: everything a meshchat node speaks.

use std::time::Duration;

use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    allow_block_list, connection_limits, identify, identity, kad, mdns, ping, StreamProtocol,
};

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
    /// Room broadcast streams (`/meshchat/broadcast/1`, see [`broadcast`]), DM routing
    /// streams (`/meshchat/route/1`, see [`route`]) and file streams (`/meshchat/file/1`, see
    /// [`file`]).
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
    #[error("mDNS: {0}")]
    Mdns(#[from] std::io::Error),
}

impl Behaviour {
    pub fn new(
        key: &identity::Keypair,
        mdns_enabled: bool,
        dht_enabled: bool,
        max_connections: u32,
    ) -> Result<Self, Error> {
        let peer_id = key.public().to_peer_id();

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
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    // Beyond `max_connections` the node evicts the least useful peer (see
                    // `Conns::evict_if_full`); the hard limit only leaves room to do so.
                    .with_max_established(Some(max_connections + EVICTION_ROOM))
                    .with_max_established_per_peer(Some(2))
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
        })
    }
}
