//! The swarm, its transports and listeners: TCP and QUIC with bounded incoming handshakes, and
//! listening at start, with clear errors for an address that is taken or not supported.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::Version;
use libp2p::core::Transport as _;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, quic, tcp, yamux, Multiaddr, PeerId, Swarm};

use crate::behaviour::handshakes::{self, Handshakes};
use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::config::DEFAULT_PORT;
use crate::node::Error;
use crate::Config;

/// A connection nothing keeps alive closes after this long. The broadcast streams keep a
/// connection alive while they are open (libp2p counts open streams).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait for listeners to report their addresses at start.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

const ADDR_IN_USE: &str =
    "address already in use (another program, or another meshchat, has that port)";

/// The swarm for our key, and the counters of its incoming handshakes.
pub(super) fn swarm(
    key: &meshchat_core::Keypair,
    config: &Config,
) -> Result<(Swarm<Behaviour>, Handshakes), Error> {
    let mut secret = key.secret_bytes();
    let libp2p_key = libp2p::identity::Keypair::ed25519_from_bytes(&mut secret[..])
        .map_err(|e| Error::Network(format!("identity: {e}")))?;
    let net = |e: &dyn std::fmt::Display| Error::Network(e.to_string());
    let handshakes = Handshakes::new(handshakes::MAX_PENDING, handshakes::PER_ADDRESS);
    let swarm = libp2p::SwarmBuilder::with_existing_identity(libp2p_key)
        .with_tokio()
        .with_other_transport(|k| transport(k, &handshakes).map_err(boxed::<noise::Error>))
        .map_err(|e| net(&e))?
        .with_dns()
        .map_err(|e| net(&e))?
        // Circuits through relays (`/p2p/RELAY/p2p-circuit`), over the connection to the relay.
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| net(&e))?
        .with_behaviour(|k, relay_client| {
            Behaviour::new(k, relay_client, config).map_err(boxed::<crate::behaviour::Error>)
        })
        .map_err(|e| net(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .with_connection_timeout(config.handshake_timeout)
        .build();
    Ok((swarm, handshakes))
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(
    e: E,
) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

/// TCP (nodelay, Noise, Yamux) or QUIC, as `SwarmBuilder::with_tcp(..).with_quic()` builds them,
/// with their incoming handshakes bounded by `handshakes`: the builder has no way to wrap the
/// transports it builds itself. Boxed, because the builder needs the wrapped transport's
/// associated types to be `Send`, which an `impl Transport` return type would hide.
fn transport(
    key: &libp2p::identity::Keypair,
    handshakes: &Handshakes,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    let quic = quic::tokio::Transport::new(quic::Config::new(key))
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    let either = tcp.or_transport(quic).map(|either, _| either.into_inner());
    Ok(handshakes.wrap(either).boxed())
}

/// Listens on `listen` (or the default port on TCP and QUIC, any port if it is taken), and
/// returns once every listener has an address, with the swarm events seen meanwhile (for the
/// loop to handle).
pub(super) async fn listen(
    swarm: &mut Swarm<Behaviour>,
    listen: &[Multiaddr],
) -> Result<Vec<SwarmEvent<BehaviourEvent>>, Error> {
    let mut listeners = Vec::new();
    if listen.is_empty() {
        for proto in ["tcp", "udp"] {
            let suffix = if proto == "udp" { "/quic-v1" } else { "" };
            let preferred: Multiaddr = format!("/ip4/0.0.0.0/{proto}/{DEFAULT_PORT}{suffix}")
                .parse()
                .expect("static multiaddr parses");
            let free = !tcp_port_taken(&preferred);
            let id = match free.then(|| swarm.listen_on(preferred)) {
                Some(Ok(id)) => id,
                _ => {
                    let any: Multiaddr = format!("/ip4/0.0.0.0/{proto}/0{suffix}")
                        .parse()
                        .expect("static multiaddr parses");
                    swarm.listen_on(any.clone()).map_err(|e| Error::Listen {
                        addr: any,
                        reason: e.to_string(),
                    })?
                }
            };
            listeners.push(id);
        }
    } else {
        for addr in listen.iter().cloned() {
            if tcp_port_taken(&addr) {
                return Err(Error::Listen {
                    addr,
                    reason: ADDR_IN_USE.into(),
                });
            }
            let id = swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
                addr,
                reason: listen_error_reason(&e),
            })?;
            listeners.push(id);
        }
    }

    // Wait for each listener's first address, keeping whatever else happens meanwhile.
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    let mut waiting: HashSet<_> = listeners.into_iter().collect();
    let mut seen = Vec::new();
    while !waiting.is_empty() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| Error::ListenTimeout(LISTEN_TIMEOUT))?;
        match &event {
            SwarmEvent::NewListenAddr { listener_id, .. } => {
                waiting.remove(listener_id);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason: Err(e),
                addresses,
            } if waiting.contains(listener_id) => {
                return Err(Error::Listen {
                    addr: addresses.first().cloned().unwrap_or_else(Multiaddr::empty),
                    reason: e.to_string(),
                });
            }
            SwarmEvent::ListenerError { error, .. } => {
                return Err(Error::Network(format!("listener failed: {error}")));
            }
            _ => {}
        }
        seen.push(event);
    }
    Ok(seen)
}

/// Whether a TCP listen address names a port some other socket holds. libp2p's TCP transport
/// sets `SO_REUSEPORT` on its listeners (so dials can reuse the port), which lets a second
/// meshchat bind the same port silently and receive half of the first one's connections. A
/// plain bind without that option fails exactly when the port is held, so it is tried first.
fn tcp_port_taken(addr: &Multiaddr) -> bool {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            Protocol::P2p(_) => {}
            _ => return false,
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) if port != 0 => matches!(
            std::net::TcpListener::bind((ip, port)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse
        ),
        _ => false,
    }
}

fn listen_error_reason(e: &libp2p::TransportError<std::io::Error>) -> String {
    match e {
        libp2p::TransportError::MultiaddrNotSupported(a) => {
            format!(
                "address not supported (use /ip4/ADDR/tcp/PORT or /ip4/ADDR/udp/PORT/quic-v1): {a}"
            )
        }
        libp2p::TransportError::Other(io) if io.kind() == std::io::ErrorKind::AddrInUse => {
            ADDR_IN_USE.into()
        }
        libp2p::TransportError::Other(io) => io.to_string(),
    }
}
