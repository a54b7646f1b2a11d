//! A watchdog around a behaviour's connection handlers: it counts the streams each connection's
//! handler had to (re)open and reports a connection whose streams keep failing, so the node closes
//! it and dials again instead of keeping a half-dead link.
//!
//! Why: gossipsub keeps one long-lived stream each way per connection. When a stream fails it
//! waits for a new one, and after five attempts in either direction it disables itself on that
//! connection without telling anyone; the connection stays up (other protocols keep using it), so
//! both nodes still list each other while messages in one direction are lost for good. That is
//! what an independent client saw after large messages tripped gossipsub's frame limit. The
//! watchdog sees every stream negotiation and upgrade failure of the wrapped handler, and a
//! handler that needed [`Watched::max_streams`] streams in one direction is failing: an honest,
//! working connection opens exactly one each way.

use std::collections::VecDeque;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId,
    FromSwarm, NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// Most failing connections waiting to be reported and closed (each handler reports once, so the
/// queues only fill if the swarm stops polling the behaviour).
const MAX_QUEUED: usize = 64;

/// What the watchdog reports (besides the wrapped behaviour's own events).
#[derive(Debug)]
pub enum Event<E> {
    /// An event of the wrapped behaviour.
    Inner(E),
    /// The streams of `connection` kept failing; the watchdog is closing it.
    StreamsFailing {
        peer: PeerId,
        connection: ConnectionId,
    },
}

/// Wraps a behaviour whose handlers keep one stream per direction.
pub struct Watched<B> {
    inner: B,
    /// Streams one direction may need before the connection counts as failing (at least 2).
    max_streams: u32,
    /// Failing connections to report, and to close.
    failing: VecDeque<(PeerId, ConnectionId)>,
    closing: VecDeque<(PeerId, ConnectionId)>,
}

impl<B> Watched<B> {
    pub fn new(inner: B, max_streams: u32) -> Self {
        Self {
            inner,
            max_streams: max_streams.max(2),
            failing: VecDeque::new(),
            closing: VecDeque::new(),
        }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    pub fn max_streams(&self) -> u32 {
        self.max_streams
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for Watched<B> {
    type ConnectionHandler = Handler<THandler<B>>;
    type ToSwarm = Event<B::ToSwarm>;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        Ok(Handler::new(inner, self.max_streams))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        Ok(Handler::new(inner, self.max_streams))
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Out::Inner(e) => self.inner.on_connection_handler_event(peer, connection, e),
            Out::Failing => {
                // Each handler reports once; the queues only fill if the swarm stops polling.
                if self.failing.len() < MAX_QUEUED {
                    self.failing.push_back((peer, connection));
                }
                if self.closing.len() < MAX_QUEUED {
                    self.closing.push_back((peer, connection));
                }
            }
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some((peer_id, connection)) = self.closing.pop_front() {
            return Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::One(connection),
            });
        }
        if let Some((peer, connection)) = self.failing.pop_front() {
            return Poll::Ready(ToSwarm::GenerateEvent(Event::StreamsFailing {
                peer,
                connection,
            }));
        }
        self.inner.poll(cx).map(|e| e.map_out(Event::Inner))
    }
}

/// What the watchdog's handler tells its behaviour.
#[derive(Debug)]
pub enum Out<E> {
    Inner(E),
    /// The connection's streams keep failing (sent once).
    Failing,
}

/// The wrapped handler, counting stream attempts per direction.
pub struct Handler<H> {
    inner: H,
    max_streams: u32,
    inbound: u32,
    outbound: u32,
    /// The connection was found failing (reported once).
    reported: bool,
    /// `Out::Failing` waits for the next poll.
    pending_report: bool,
}

impl<H> Handler<H> {
    fn new(inner: H, max_streams: u32) -> Self {
        Self {
            inner,
            max_streams,
            inbound: 0,
            outbound: 0,
            reported: false,
            pending_report: false,
        }
    }
}

impl<H: ConnectionHandler> ConnectionHandler for Handler<H> {
    type FromBehaviour = H::FromBehaviour;
    type ToBehaviour = Out<H::ToBehaviour>;
    type InboundProtocol = H::InboundProtocol;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = H::InboundOpenInfo;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        if self.pending_report {
            self.pending_report = false;
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(Out::Failing));
        }
        self.inner.poll(cx).map(|e| e.map_custom(Out::Inner))
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx).map(|e| e.map(Out::Inner))
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.inner.on_behaviour_event(event);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            '_,
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        if event.is_inbound() {
            self.inbound += 1;
        }

        if event.is_outbound() {
            self.outbound += 1;
        }
        if !self.reported && self.inbound.max(self.outbound) >= self.max_streams {
            self.reported = true;
            self.pending_report = true;
        }
        self.inner.on_connection_event(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::core::upgrade::DeniedUpgrade;
    use libp2p::swarm::handler::DialUpgradeError;
    use libp2p::swarm::StreamUpgradeError;

    /// A handler that opens nothing and ignores what happens to it.
    struct Idle;

    impl ConnectionHandler for Idle {
        type FromBehaviour = ();
        type ToBehaviour = ();
        type InboundProtocol = DeniedUpgrade;
        type OutboundProtocol = DeniedUpgrade;
        type InboundOpenInfo = ();
        type OutboundOpenInfo = ();

        fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade> {
            SubstreamProtocol::new(DeniedUpgrade, ())
        }

        fn poll(
            &mut self,
            _: &mut Context<'_>,
        ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, (), ()>> {
            Poll::Pending
        }

        fn on_behaviour_event(&mut self, _: ()) {}

        fn on_connection_event(&mut self, _: ConnectionEvent<'_, DeniedUpgrade, DeniedUpgrade>) {}
    }

    fn failed_dial() -> ConnectionEvent<'static, DeniedUpgrade, DeniedUpgrade> {
        ConnectionEvent::DialUpgradeError(DialUpgradeError {
            info: (),
            error: StreamUpgradeError::Timeout,
        })
    }

    fn poll_once(h: &mut Handler<Idle>) -> bool {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        matches!(
            h.poll(&mut cx),
            Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(Out::Failing))
        )
    }

    #[test]
    fn the_third_stream_in_one_direction_reports_the_connection_once() {
        let mut h = Handler::new(Idle, 3);
        h.on_connection_event(failed_dial());
        assert!(!poll_once(&mut h));
        h.on_connection_event(failed_dial());
        assert!(!poll_once(&mut h), "two streams are one replacement: fine");
        h.on_connection_event(failed_dial());
        assert!(poll_once(&mut h), "the third is reported");
        assert!(!poll_once(&mut h), "once");
        h.on_connection_event(failed_dial());
        assert!(!poll_once(&mut h), "and only once");
    }
}
