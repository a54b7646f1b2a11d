//! Per-IP bounds on incoming connections still in their handshake.
//!
//! libp2p's `connection_limits` bounds pending incoming connections in total (32 here); one host
//! opening that many sockets and never finishing a handshake then shut everyone else out until the
//! handshakes timed out (found by an independent client). This gate refuses a new incoming
//! connection when its IP address already has [`Behaviour::per_ip`] handshakes in progress, so one
//! address can hold only a few of the shared slots.

use std::collections::HashMap;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// Most handshakes tracked at once (beyond it, new ones are refused): more than the swarm's own
/// pending limit, so this is only a bound on the map.
const MAX_TRACKED: usize = 256;

/// Refused: the remote address has too many handshakes in progress.
#[derive(Debug, thiserror::Error)]
#[error("{ip} has {pending} incoming handshakes in progress already")]
pub struct TooManyPending {
    pub ip: IpAddr,
    pub pending: usize,
}

pub struct Behaviour {
    per_ip: usize,
    /// Handshakes in progress: connection -> remote IP.
    pending: HashMap<ConnectionId, IpAddr>,
}

impl Behaviour {
    /// `per_ip`: handshakes one address may have in progress (at least 1).
    pub fn new(per_ip: usize) -> Self {
        Self {
            per_ip: per_ip.max(1),
            pending: HashMap::new(),
        }
    }

    fn pending_from(&self, ip: IpAddr) -> usize {
        self.pending.values().filter(|p| **p == ip).count()
    }
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(a) => Some(IpAddr::V4(a)),
        Protocol::Ip6(a) => Some(IpAddr::V6(a)),
        _ => None,
    })
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote_addr) else {
            return Ok(());
        };
        let pending = self.pending_from(ip);
        if pending >= self.per_ip || self.pending.len() >= MAX_TRACKED {
            return Err(ConnectionDenied::new(TooManyPending { ip, pending }));
        }
        self.pending.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.pending.remove(&connection_id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.pending.remove(&connection_id);
            }
            // Established and then refused by a later behaviour: no longer pending either.
            FromSwarm::ConnectionEstablished(e) => {
                self.pending.remove(&e.connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_holds_at_most_per_ip_handshakes() {
        let mut gate = Behaviour::new(2);
        let local: Multiaddr = "/ip4/127.0.0.1/tcp/7447".parse().unwrap();
        let a: Multiaddr = "/ip4/127.0.0.2/tcp/5000".parse().unwrap();
        let b: Multiaddr = "/ip4/127.0.0.3/tcp/5000".parse().unwrap();
        let ids: Vec<ConnectionId> = (0..4).map(ConnectionId::new_unchecked).collect();
        assert!(gate
            .handle_pending_inbound_connection(ids[0], &local, &a)
            .is_ok());
        assert!(gate
            .handle_pending_inbound_connection(ids[1], &local, &a)
            .is_ok());
        assert!(gate
            .handle_pending_inbound_connection(ids[2], &local, &a)
            .is_err());
        assert!(gate
            .handle_pending_inbound_connection(ids[2], &local, &b)
            .is_ok());
        // A finished handshake frees its slot.
        gate.handle_established_inbound_connection(ids[0], PeerId::random(), &local, &a)
            .unwrap();
        assert!(gate
            .handle_pending_inbound_connection(ids[3], &local, &a)
            .is_ok());
    }
}
