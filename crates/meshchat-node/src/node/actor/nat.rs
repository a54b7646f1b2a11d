//! Across NATs (issue 23): the handler that wires libp2p's AutoNAT, UPnP, circuit relay v2 and
//! DCUtR to [`meshchat_core::reach::Reachability`], which decides what the node says of itself
//! and when it holds relay reservations.
//!
//! - AutoNAT's verdict, UPnP's mappings, our reservations' listeners and the neighbours that
//!   serve relays go into the machine; its `Reserve`/`Release` become listeners on
//!   `/…/p2p/RELAY/p2p-circuit` (the relay client asks for the reservation over the existing
//!   connection) and their removal.
//! - What the node advertises (tracker roster, `info`) follows the machine: confirmed external
//!   addresses when public or mapped, relayed addresses when relayed, nothing while private
//!   with no relay (a private address only misleads someone outside our network), the listen
//!   addresses while nothing is known yet.
//! - Hole punching is DCUtR's own: it starts on a relayed connection; `Conns` closes the
//!   relayed connection once a direct one to the same peer stands.
//! - The relay service is libp2p's, bounded by `Config::nat.relay`, switched on once at start
//!   (see `behaviour::relay_service`).

use std::collections::HashMap;
use std::time::Instant;

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{autonat, dcutr, relay, upnp, Multiaddr, PeerId, StreamProtocol};
use meshchat_core::reach::{Advertise, Input, NatStatus, Output, Reachability};

use super::context::{Ctx, Note};
use crate::behaviour::{BehaviourEvent, RELAY_HOP};
use crate::node::{Event, ReachView};

pub(super) struct Nat {
    machine: Reachability<PeerId>,
    /// Reservation listeners by relay, and back.
    listeners: HashMap<PeerId, ListenerId>,
    relays: HashMap<ListenerId, PeerId>,
}

impl Nat {
    pub(super) fn new(limits: meshchat_core::reach::Limits) -> Self {
        Self {
            machine: Reachability::new(limits),
            listeners: HashMap::new(),
            relays: HashMap::new(),
        }
    }

    /// When [`Nat::tick`] is due.
    pub(super) fn wake(&self) -> Option<Instant> {
        self.machine.next_deadline()
    }

    pub(super) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        self.feed(Input::Tick, ctx);
    }

    /// How others reach us, for `info` and the `reachability` event.
    pub(super) fn view(&self, ctx: &mut Ctx<'_>) -> ReachView {
        ReachView {
            reach: self.machine.reach(),
            addrs: advertised(&self.machine, ctx),
            relays: self.machine.relays().copied().collect(),
        }
    }

    /// The addresses to advertise now (see the module doc).
    pub(super) fn advertised(&self, ctx: &mut Ctx<'_>) -> Vec<Multiaddr> {
        advertised(&self.machine, ctx)
    }

    /// The NAT behaviours' events.
    pub(super) fn on_event(&mut self, event: BehaviourEvent, ctx: &mut Ctx<'_>) {
        match event {
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. }) => {
                tracing::info!("AutoNAT: {new:?}");
                let status = match new {
                    autonat::NatStatus::Public(_) => NatStatus::Public,
                    autonat::NatStatus::Private => NatStatus::Private,
                    autonat::NatStatus::Unknown => NatStatus::Unknown,
                };
                self.feed(Input::Nat(status), ctx);
            }
            BehaviourEvent::Autonat(_) => {}
            BehaviourEvent::Upnp(upnp::Event::NewExternalAddr {
                external_addr: addr,
                ..
            }) => {
                tracing::info!(%addr, "the router mapped a port for us (UPnP)");
                self.feed(Input::Mapped(addr.to_string()), ctx);
            }
            BehaviourEvent::Upnp(upnp::Event::ExpiredExternalAddr {
                external_addr: addr,
                ..
            }) => {
                tracing::info!(%addr, "the router's port mapping is gone");
                self.feed(Input::Unmapped(addr.to_string()), ctx);
            }
            BehaviourEvent::Upnp(upnp::Event::GatewayNotFound) => {
                tracing::debug!("no UPnP router on the LAN");
            }
            BehaviourEvent::Upnp(upnp::Event::NonRoutableGateway) => {
                tracing::debug!("the UPnP router is behind another NAT: no mapping asked");
            }
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            }) => {
                tracing::debug!(relay = %relay_peer_id, renewal, "relay reservation accepted");
            }
            BehaviourEvent::RelayClient(_) => {}
            BehaviourEvent::Relay(event) => on_relay_service(event, ctx),
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => match result {
                Ok(_) => {
                    tracing::info!(peer = %remote_peer_id, "hole punched: direct connection");
                    ctx.io.stats.nat.hole_punches += 1;
                }
                Err(e) => {
                    tracing::info!(peer = %remote_peer_id, "hole punching failed: {e}");
                    ctx.io.stats.nat.hole_punch_failures += 1;
                }
            },
            _ => {}
        }
    }

    /// Listener and external-address events (the swarm's), before `Conns` sees them.
    pub(super) fn on_swarm_event<T>(&mut self, event: &SwarmEvent<T>, ctx: &mut Ctx<'_>) {
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                if let Some(relay) = self.relays.get(listener_id) {
                    tracing::info!(%address, "reachable through a relay");
                    let input = Input::Reserved {
                        relay: *relay,
                        addr: address.to_string(),
                    };
                    self.feed(input, ctx);
                }
            }
            SwarmEvent::ListenerClosed { listener_id, .. } => {
                if let Some(relay) = self.relays.remove(listener_id) {
                    self.listeners.remove(&relay);
                    self.feed(Input::ReservationEnded(relay), ctx);
                }
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "confirmed external address");
                self.external_changed(ctx);
            }
            SwarmEvent::ExternalAddrExpired { .. } => self.external_changed(ctx),
            _ => {}
        }
    }

    /// The swarm's confirmed external addresses changed: when they are what we advertise, the
    /// tracker and the front-ends hear of it.
    fn external_changed(&mut self, ctx: &mut Ctx<'_>) {
        if self.machine.advertised() == Advertise::External {
            ctx.notes.push(Note::MeChanged);
            let view = self.view(ctx);
            ctx.io.emit(Event::Reachability(view));
        }
    }

    /// A neighbour said what it speaks: one we dialed directly that serves relays is a relay
    /// we may ask; `dialed` is the address we reached it at.
    pub(super) fn on_identified(
        &mut self,
        peer: PeerId,
        protocols: &[StreamProtocol],
        dialed: Option<&Multiaddr>,
        ctx: &mut Ctx<'_>,
    ) {
        match dialed {
            Some(addr) if protocols.contains(&RELAY_HOP) => {
                let input = Input::RelayOffered {
                    relay: peer,
                    addr: addr.to_string(),
                };
                self.feed(input, ctx);
            }
            _ => self.feed(Input::RelayGone(peer), ctx),
        }
    }

    /// The last connection to `peer` closed.
    pub(super) fn disconnected(&mut self, peer: PeerId, ctx: &mut Ctx<'_>) {
        self.feed(Input::RelayGone(peer), ctx);
    }

    fn feed(&mut self, input: Input<PeerId>, ctx: &mut Ctx<'_>) {
        for out in self.machine.handle(input, Instant::now()) {
            match out {
                Output::Reserve { relay, addr } => self.reserve(relay, &addr, ctx),
                Output::Release(relay) => {
                    if let Some(id) = self.listeners.remove(&relay) {
                        self.relays.remove(&id);
                        ctx.io.swarm.remove_listener(id);
                    }
                }
                Output::Changed(reach) => {
                    tracing::info!("reachability: {}", reach.as_str());
                    let view = self.view(ctx);
                    ctx.io.emit(Event::Reachability(view));
                }
                Output::AddrsChanged => ctx.notes.push(Note::MeChanged),
            }
        }
    }

    fn reserve(&mut self, relay: PeerId, addr: &str, ctx: &mut Ctx<'_>) {
        let circuit = addr.parse::<Multiaddr>().map(|a| {
            super::conns::strip_p2p(&a)
                .with(Protocol::P2p(relay))
                .with(Protocol::P2pCircuit)
        });
        match circuit.map(|c| (ctx.io.swarm.listen_on(c.clone()), c)) {
            Ok((Ok(id), circuit)) => {
                tracing::debug!(%circuit, "asking for a relay reservation");
                self.listeners.insert(relay, id);
                self.relays.insert(id, relay);
            }
            Ok((Err(e), circuit)) => {
                tracing::debug!(%circuit, "cannot listen through the relay: {e}");
                self.feed(Input::ReservationEnded(relay), ctx);
            }
            Err(e) => {
                tracing::debug!(%relay, "the relay's address {addr} does not parse: {e}");
                self.feed(Input::ReservationEnded(relay), ctx);
            }
        }
    }
}

/// The relay service's events: counted (its bounds are libp2p's, set in `behaviour`).
fn on_relay_service(event: relay::Event, ctx: &mut Ctx<'_>) {
    let stats = &mut ctx.io.stats.nat;
    match event {
        relay::Event::ReservationReqAccepted { renewed: false, .. } => {
            stats.reservations_served += 1
        }
        relay::Event::ReservationReqDenied { src_peer_id, .. } => {
            tracing::debug!(peer = %src_peer_id, "relay reservation refused (over a bound)");
            stats.reservations_refused += 1;
        }
        relay::Event::CircuitReqAccepted { .. } => stats.circuits_served += 1,
        relay::Event::CircuitReqDenied { src_peer_id, .. } => {
            tracing::debug!(peer = %src_peer_id, "relay circuit refused (over a bound)");
            stats.circuits_refused += 1;
        }
        _ => {}
    }
}

fn advertised(machine: &Reachability<PeerId>, ctx: &Ctx<'_>) -> Vec<Multiaddr> {
    let relayed = super::conns::is_relayed;
    match machine.advertised() {
        Advertise::Listen => ctx
            .io
            .listen_addrs
            .iter()
            .filter(|a| !relayed(a))
            .cloned()
            .collect(),
        Advertise::External => ctx
            .io
            .swarm
            .external_addresses()
            .filter(|a| !relayed(a))
            .map(super::conns::strip_p2p)
            .collect(),
        // Without our own id at the end: others add it when they dial, and the roster's
        // addresses are short (`election::MAX_ADDR_LEN`: a relayed address with two peer ids
        // would not fit).
        Advertise::Relayed => machine
            .relayed()
            .filter_map(|(_, a)| a.parse().ok())
            .map(|a| super::conns::strip_p2p(&a))
            .collect(),
        Advertise::Nothing => Vec::new(),
    }
}
