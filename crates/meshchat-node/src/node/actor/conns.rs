//! Connections: the swarm's own events (connections, identify, mDNS, the DHT, ping, listen
//! addresses), dialing and redialing peers, keeping connection slots for peers that are useful
//! (evicting the least useful peer when every slot is taken), and replacing connections whose
//! broadcast stream stalls. The protocols hear of peers through [`Note::PeerUp`],
//! [`Note::PeerDown`] and [`Note::Identified`].

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, SwarmEvent};
use libp2p::{identify, kad, mdns, Multiaddr, PeerId};

use crate::behaviour::{BehaviourEvent, KAD_PROTOCOL, PROTOCOL_VERSION};
use meshchat_core::backoff::Backoff;

use super::context::{Ctx, Note};
use super::disk::Write;
use crate::node::{now_ms, Error, Event, PeerInfo, Reply};

/// A connection none of whose pings has come back for this long is closed (pings go every
/// [`crate::behaviour::PING_INTERVAL`]; see [`Conns::check_liveness`]).
pub(super) const SILENCE_LIMIT: Duration = Duration::from_secs(8);
/// How often connections are checked for silence.
pub(super) const LIVENESS_CHECK: Duration = Duration::from_secs(1);

/// Known peers dialed at start and by maintenance.
const START_DIALS: usize = 16;
/// Known peers looked at by maintenance for the [`START_DIALS`] to dial: those whose dials
/// failed lately wait (see [`Redials`]), and others are dialed instead.
const KNOWN_LOOKED_AT: usize = 4 * START_DIALS;
/// After a failed dial, maintenance waits this long before dialing that peer again, twice as
/// long after each further failure, at most [`REDIAL_MAX`].
const REDIAL_FIRST: Duration = Duration::from_secs(10);
const REDIAL_MAX: Duration = Duration::from_secs(5 * 60);
/// Peers whose failed dials are remembered.
const REDIAL_PEERS: usize = 1024;
/// Pending `/connect` replies kept at most; beyond that, the oldest is answered with an error.
const MAX_PENDING_DIALS: usize = 64;
/// Peers found on the LAN remembered for redialing, and addresses kept per peer.
const MAX_LAN_PEERS: usize = 256;
const MAX_LAN_ADDRS: usize = 8;

/// The connections' handler.
#[derive(Default)]
pub(super) struct Conns {
    /// Open connections per peer, with their remote address and whether we dialed them.
    connections: HashMap<PeerId, Vec<(ConnectionId, Multiaddr, bool)>>,
    /// When each connected peer last handed over a new valid message (or connected): the
    /// least useful peer is evicted when every connection slot is taken.
    useful: HashMap<PeerId, Instant>,
    /// Peers closed to make room, until their connections are gone (bounded by `connections`).
    evicting: HashSet<PeerId>,
    /// Peers whose failing connection the watchdog closed, with addresses to dial them again
    /// once it is gone.
    redial: HashMap<PeerId, Vec<Multiaddr>>,
    /// When the user was last told a peer's link failed (bounded, one warning a minute).
    failure_warned: HashMap<PeerId, Instant>,
    /// Each open connection's peer and when its last ping came back (or it opened); a
    /// connection whose peer does not speak ping is left out (see `Conns::check_liveness`).
    pongs: HashMap<ConnectionId, (PeerId, Instant)>,
    /// `/connect` calls waiting for their dial's outcome.
    pending_dials: HashMap<ConnectionId, (Multiaddr, Reply<PeerId>)>,
    /// Peers mDNS found and has not expired: redialed by maintenance while unconnected, because
    /// mDNS reports a peer only once and a first dial can fail.
    lan_peers: HashMap<PeerId, Vec<Multiaddr>>,
    /// Failed dials per peer: when maintenance may dial each again.
    redials: Redials,
}

/// Failed dials per peer ([`meshchat_core::backoff`]).
struct Redials(Backoff<PeerId>);

impl Default for Redials {
    fn default() -> Self {
        Self(Backoff::new(REDIAL_FIRST, REDIAL_MAX, REDIAL_PEERS))
    }
}

/// What the eviction policy knows of a connected peer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate<P> {
    pub peer: P,
    /// When it last handed over a new valid message, or connected.
    pub useful: Instant,
    /// We dialed it (a peer we chose: configured, known, found on the LAN or by the DHT).
    pub dialed: bool,
    /// Found by mDNS on our LAN.
    pub lan: bool,
}

/// The peer to close when every slot is taken: never one we dialed or found on the LAN, and never
/// the newcomer; of the rest, the one that has been useless longest. A flood of throwaway
/// identities that connect and then idle is evicted first; a neighbour that relays messages keeps
/// its slot. `None`: nobody can be evicted, so the newcomer is refused instead.
pub(super) fn choose_victim<P: Copy + Eq + Hash>(
    newcomer: P,
    peers: impl IntoIterator<Item = Candidate<P>>,
) -> Option<P> {
    peers
        .into_iter()
        .filter(|c| c.peer != newcomer && !c.dialed && !c.lan)
        .min_by_key(|c| c.useful)
        .map(|c| c.peer)
}

impl Conns {
    /// Whether connections stand to peers other than those being closed.
    pub(super) fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// At start: the configured peers, the trackers and known peers are dialed.
    pub(super) fn start(&mut self, ctx: &mut Ctx<'_>) -> Result<(), Error> {
        for addr in ctx.io.config.peers.clone() {
            self.dial_addr(addr, None, ctx);
        }
        self.dial_trackers(ctx);
        for peer in ctx.io.store.known_peers(START_DIALS)? {
            let Ok(peer_id) = peer.peer_id.parse::<PeerId>() else {
                continue;
            };
            let addrs: Vec<Multiaddr> = peer.addrs.iter().filter_map(|a| a.parse().ok()).collect();
            for a in &addrs {
                self.add_dht_address(&peer_id, a.clone(), ctx);
            }
            self.dial_peer(peer_id, addrs, ctx);
        }
        Ok(())
    }

    /// `peer` handed over a new valid message.
    pub(super) fn useful(&mut self, peer: PeerId) {
        if let Some(t) = self.useful.get_mut(&peer) {
            *t = Instant::now();
        }
    }

    /// The swarm's events that are not a protocol's.
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>, ctx: &mut Ctx<'_>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ev)) => self.on_ping(ev, ctx),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if info.protocol_version != PROTOCOL_VERSION {
                    return;
                }
                let addrs: Vec<Multiaddr> =
                    info.listen_addrs.into_iter().filter(is_dialable).collect();
                if info.protocols.contains(&KAD_PROTOCOL) {
                    for a in &addrs {
                        self.add_dht_address(&peer_id, a.clone(), ctx);
                    }
                }
                let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
                if let Err(e) = ctx
                    .io
                    .store
                    .upsert_peer(&peer_id.to_string(), &addrs, now_ms())
                {
                    ctx.io.write_failed(Write::Other("the known-peer list"), &e);
                }
                let dialed = self.connections.get(&peer_id).and_then(|conns| {
                    conns
                        .iter()
                        .find(|(_, addr, dialed)| *dialed && !is_relayed(addr))
                        .map(|(_, addr, _)| strip_p2p(addr))
                });
                ctx.notes.push(Note::Identified {
                    peer: peer_id,
                    protocols: info.protocols,
                    dialed,
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, addr) in found {
                    by_peer.entry(peer).or_default().push(addr);
                }
                for (peer, addrs) in by_peer {
                    tracing::debug!(%peer, "found on the LAN");
                    if self.lan_peers.len() < MAX_LAN_PEERS || self.lan_peers.contains_key(&peer) {
                        let known = self.lan_peers.entry(peer).or_default();
                        for a in &addrs {
                            if !known.contains(a) && known.len() < MAX_LAN_ADDRS {
                                known.push(a.clone());
                            }
                        }
                    }
                    self.dial_peer(peer, addrs, ctx);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(gone))) => {
                for (peer, addr) in gone {
                    if let Some(addrs) = self.lan_peers.get_mut(&peer) {
                        addrs.retain(|a| *a != addr);
                        if addrs.is_empty() {
                            self.lan_peers.remove(&peer);
                        }
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer,
                addresses,
                ..
            })) => {
                // Peer exchange: what the DHT teaches is kept for later starts too.
                let addrs: Vec<String> = addresses
                    .iter()
                    .filter(|a| is_dialable(a))
                    .map(|a| strip_p2p(a).to_string())
                    .collect();
                if !addrs.is_empty() {
                    if let Err(e) = ctx
                        .io
                        .store
                        .upsert_peer(&peer.to_string(), &addrs, now_ms())
                    {
                        ctx.io.write_failed(Write::Other("the known-peer list"), &e);
                    }
                }
                // The DHT reports a peer again and again as its queries meet it: one that
                // could not be reached waits its turn like maintenance's dials.
                if self.connections.len() < ctx.io.config.target_peers
                    && self.redials.0.may_dial(&peer, Instant::now())
                {
                    self.dial_peer(peer, addresses.into_vec(), ctx);
                }
            }
            SwarmEvent::Behaviour(_) => {}
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                ctx.io.listen_addrs.push(address.clone());
                ctx.io.emit(Event::ListenAddr(address));
                ctx.notes.push(Note::MeChanged);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                ctx.io.listen_addrs.retain(|a| *a != address);
                ctx.notes.push(Note::MeChanged);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                // An incoming relayed connection's remote address is only `/p2p/PEER`: it is
                // kept as our circuit address through the relay instead, so that it reads (and
                // is treated) as relayed.
                let remote = match &endpoint {
                    ConnectedPoint::Listener { local_addr, .. } if endpoint.is_relayed() => {
                        local_addr.clone()
                    }
                    _ => endpoint.get_remote_address().clone(),
                };
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    let addr = strip_p2p(address);
                    if let Err(e) = ctx.io.store.upsert_peer(
                        &peer_id.to_string(),
                        &[addr.to_string()],
                        now_ms(),
                    ) {
                        ctx.io.write_failed(Write::Other("the known-peer list"), &e);
                    }
                    self.add_dht_address(&peer_id, addr, ctx);
                }
                tracing::debug!(%peer_id, %remote, "connected");
                self.redials.0.connected(&peer_id);
                self.pongs.insert(connection_id, (peer_id, Instant::now()));
                let dialed = endpoint.is_dialer();
                self.connections
                    .entry(peer_id)
                    .or_default()
                    .push((connection_id, remote, dialed));
                self.useful.entry(peer_id).or_insert_with(Instant::now);
                self.close_relayed_beside_direct(peer_id, ctx);
                self.evict_if_full(peer_id, ctx);
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                ctx.notes.push(Note::PeerUp(peer_id));
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                cause,
                ..
            } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
                self.forget_connection(peer_id, connection_id, ctx);
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                tracing::debug!(?peer_id, "dial failed: {error}");
                if let Some(peer) = peer_id {
                    // The peer could not be reached (not: we gave up, or refused it ourselves).
                    if matches!(
                        error,
                        DialError::Transport(_)
                            | DialError::NoAddresses
                            | DialError::WrongPeerId { .. }
                    ) {
                        self.redials.0.failed(peer, Instant::now());
                    }
                }
                if let Some((addr, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(Error::Dial {
                        addr: addr.to_string(),
                        reason: dial_error_reason(&error),
                    }));
                }
            }
            SwarmEvent::ListenerError { error, .. } => {
                ctx.io
                    .emit(Event::Warning(format!("listener failed: {error}")));
            }
            _ => {}
        }
    }

    /// A relayed connection is for reaching a peer behind a NAT until a direct one stands
    /// (hole punching, or a dial either way): then it is closed, freeing the relay's circuit.
    /// The protocols' streams move to the direct connection (they are opened per peer).
    fn close_relayed_beside_direct(&mut self, peer: PeerId, ctx: &mut Ctx<'_>) {
        let Some(conns) = self.connections.get(&peer) else {
            return;
        };
        if !conns.iter().any(|(_, addr, _)| !is_relayed(addr)) {
            return;
        }
        for (conn, addr, _) in conns.iter().filter(|(_, addr, _)| is_relayed(addr)) {
            if ctx.io.swarm.close_connection(*conn) {
                tracing::debug!(%peer, %addr, "direct connection stands: closing the relayed one");
                ctx.io.stats.nat.relayed_closed += 1;
            }
        }
    }

    /// At shutdown: every peer is told goodbye.
    pub(super) fn disconnect_all(&mut self, ctx: &mut Ctx<'_>) {
        let peers: Vec<PeerId> = self.connections.keys().copied().collect();
        for p in peers {
            let _ = ctx.io.swarm.disconnect_peer_id(p);
        }
    }

    /// At shutdown: a connection closed (nobody is told).
    pub(super) fn closed(&mut self, peer: PeerId, conn: ConnectionId) {
        if let Some(conns) = self.connections.get_mut(&peer) {
            conns.retain(|(c, _, _)| *c != conn);
            if conns.is_empty() {
                self.connections.remove(&peer);
            }
        }
    }

    /// Over the connection limit (the hard limit in `connection_limits` leaves some room above
    /// it), closes the least useful peer, or the newcomer if nobody may be evicted.
    pub(super) fn evict_if_full(&mut self, newcomer: PeerId, ctx: &mut Ctx<'_>) {
        // Peers already being closed still hold their connections until the close completes:
        // they neither count nor are chosen again.
        let open: usize = self
            .connections
            .iter()
            .filter(|(p, _)| !self.evicting.contains(*p))
            .map(|(_, c)| c.len())
            .sum();
        if open <= ctx.io.config.max_connections as usize {
            return;
        }
        let now = Instant::now();
        let candidates = self
            .connections
            .iter()
            .filter(|(p, _)| !self.evicting.contains(*p))
            .map(|(p, conns)| Candidate {
                peer: *p,
                useful: self.useful.get(p).copied().unwrap_or(now),
                dialed: conns.iter().any(|(_, _, dialed)| *dialed),
                lan: self.lan_peers.contains_key(p),
            });
        let victim = choose_victim(newcomer, candidates).unwrap_or(newcomer);
        tracing::debug!(%victim, open, "every connection slot is taken: closing the least useful");
        ctx.io.stats.evicted_peers += 1;
        self.evicting.insert(victim);
        let _ = ctx.io.swarm.disconnect_peer_id(victim);
    }

    /// `peer` has taken no broadcast frames for a while (its send queue stayed full): it takes
    /// messages slower than we hand them over, or not at all. A stream the peer dropped without a
    /// reset looks exactly like this forever (our writes wait for flow-control credit that never
    /// comes), so the link is closed and dialed again, which also frees the queued frames.
    ///
    /// Counted in `broken_links`; the user is warned at most once a minute per peer, and the
    /// peer is dialed again once its connections are gone (at addresses we dialed it at, else
    /// at those it announced).
    pub(super) fn on_stalled(&mut self, peer: PeerId, ctx: &mut Ctx<'_>) {
        tracing::warn!(%peer, "this peer has taken no messages for seconds: reconnecting");
        ctx.io.stats.broken_links += 1;
        let mut addrs: Vec<Multiaddr> = self
            .connections
            .get(&peer)
            .into_iter()
            .flatten()
            .filter(|(_, _, dialed)| *dialed)
            .map(|(_, a, _)| a.clone())
            .collect();
        if addrs.is_empty() {
            addrs = self.announced_addrs(&peer, ctx);
        }
        // One warning per peer and minute at most reaches the user (a hostile peer could make
        // its own link stall on purpose, again and again).
        let now = Instant::now();
        let recent = self
            .failure_warned
            .get(&peer)
            .is_some_and(|t| now.saturating_duration_since(*t).as_secs() < 60);
        if !recent {
            bounded_insert(&mut self.failure_warned, peer, now, 256);
            ctx.io.emit(Event::Warning(format!(
                "the link to peer {peer} stopped carrying messages; reconnecting"
            )));
        }
        if !addrs.is_empty() && self.redial.len() < 256 {
            self.redial.insert(peer, addrs);
        }
        let _ = ctx.io.swarm.disconnect_peer_id(peer);
    }

    /// A ping that came back keeps its connection alive (see [`Conns::check_liveness`]). One
    /// that failed means the link under this connection is gone (or too slow to chat over): the
    /// connection is closed, so the peer is redialed (known peers, LAN peers) and a new
    /// connection forms when the link is back. A peer that does not speak ping is left alone.
    pub(super) fn on_ping(&mut self, event: libp2p::ping::Event, ctx: &mut Ctx<'_>) {
        match event.result {
            Ok(_) => {
                if let Some((_, at)) = self.pongs.get_mut(&event.connection) {
                    *at = Instant::now();
                }
            }
            Err(libp2p::ping::Failure::Unsupported) => {
                self.pongs.remove(&event.connection);
            }
            Err(e) => {
                tracing::info!(peer = %event.peer, "ping failed ({e}): closing the connection");
                self.pongs.remove(&event.connection);
                ctx.io.swarm.close_connection(event.connection);
            }
        }
    }

    /// Closes the connections whose pings have not come back for [`SILENCE_LIMIT`]: a link that
    /// died without a word (a host that lost power, a cable pulled, a radio out of range) sends
    /// neither a FIN nor a reset, and TCP would try for minutes.
    ///
    /// libp2p-ping reports only a connection's second failure in a row (the first is "free"), so
    /// with its 10 s timeout a dead link took up to 2 x (5 + 10) = 30 s to be noticed (the lab's
    /// routing benchmark measured 29 s). Watching for answers instead: pings go every 2 s, so a
    /// live link answers several times within the limit, and a dead one is closed 8-9 s after
    /// its last answer.
    pub(super) fn check_liveness(&mut self, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        let silent: Vec<(ConnectionId, PeerId)> = self
            .pongs
            .iter()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) >= SILENCE_LIMIT)
            .map(|(conn, (peer, _))| (*conn, *peer))
            .collect();
        for (conn, peer) in silent {
            tracing::info!(
                %peer,
                "no ping came back for {} s: closing the connection",
                SILENCE_LIMIT.as_secs()
            );
            self.pongs.remove(&conn);
            ctx.io.stats.silent_links += 1;
            ctx.io.swarm.close_connection(conn);
        }
    }

    /// Everyone connected now, sorted by peer id, with the addresses of their connections.
    pub(super) fn peers(
        &self,
        is_chat: impl Fn(&PeerId) -> bool,
        nick_of: impl Fn(&PeerId) -> Option<String>,
    ) -> Vec<PeerInfo> {
        let mut peers: Vec<PeerInfo> = self
            .connections
            .iter()
            .map(|(p, conns)| PeerInfo {
                peer_id: *p,
                addrs: conns.iter().map(|(_, a, _)| a.clone()).collect(),
                chat: is_chat(p),
                nick: nick_of(p),
            })
            .collect();
        peers.sort_by_key(|p| p.peer_id.to_string());
        peers
    }

    /// The addresses `peer` announced (identify), from the known-peer table.
    fn announced_addrs(&self, peer: &PeerId, ctx: &Ctx<'_>) -> Vec<Multiaddr> {
        let id = peer.to_string();
        match ctx.io.store.known_peers(256) {
            Ok(known) => known
                .into_iter()
                .filter(|k| k.peer_id == id)
                .flat_map(|k| k.addrs)
                .filter_map(|a| a.parse().ok())
                .collect(),
            Err(e) => {
                tracing::warn!("reading known peers: {e}");
                Vec::new()
            }
        }
    }
}

impl Conns {
    /// Drops a closed connection; tells the protocols when it was the peer's last.
    fn forget_connection(&mut self, peer: PeerId, conn: ConnectionId, ctx: &mut Ctx<'_>) {
        self.pongs.remove(&conn);
        if let Some(conns) = self.connections.get_mut(&peer) {
            conns.retain(|(c, _, _)| *c != conn);
            if conns.is_empty() {
                self.connections.remove(&peer);
                self.useful.remove(&peer);
                self.evicting.remove(&peer);
                ctx.io.guard.forget_rate(&peer);
                ctx.notes.push(Note::PeerDown(peer));
                if let Some(addrs) = self.redial.remove(&peer) {
                    self.dial_peer(peer, addrs, ctx);
                }
            }
        }
    }

    pub(super) fn dial_addr(
        &mut self,
        addr: Multiaddr,
        reply: Option<Reply<PeerId>>,
        ctx: &mut Ctx<'_>,
    ) {
        // The last: a relayed address names the relay first (`/…/p2p/RELAY/p2p-circuit/p2p/PEER`).
        let peer = addr
            .iter()
            .filter_map(|p| match p {
                Protocol::P2p(id) => Some(id),
                _ => None,
            })
            .last();
        if peer == Some(*ctx.io.swarm.local_peer_id()) {
            if let Some(reply) = reply {
                let _ = reply.send(Err(Error::Dial {
                    addr: addr.to_string(),
                    reason: "that is this node's own address".into(),
                }));
            }
            return;
        }
        let opts = match peer {
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::Always)
                .allocate_new_port()
                .build(),
            None => DialOpts::unknown_peer_id()
                .address(addr.clone())
                .allocate_new_port()
                .build(),
        };
        let conn = opts.connection_id();
        match ctx.io.swarm.dial(opts) {
            Ok(()) => {
                if let Some(reply) = reply {
                    if self.pending_dials.len() >= MAX_PENDING_DIALS {
                        // Answer the oldest waiting call rather than grow without bound.
                        if let Some(k) = self.pending_dials.keys().next().copied() {
                            if let Some((a, r)) = self.pending_dials.remove(&k) {
                                let _ = r.send(Err(Error::Dial {
                                    addr: a.to_string(),
                                    reason: "too many connection attempts at once".into(),
                                }));
                            }
                        }
                    }
                    self.pending_dials.insert(conn, (addr, reply));
                }
            }
            Err(e) => {
                tracing::debug!(%addr, "dial refused: {e}");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(Error::Dial {
                        addr: addr.to_string(),
                        reason: dial_error_reason(&e),
                    }));
                }
            }
        }
    }

    pub(super) fn add_dht_address(&mut self, peer: &PeerId, addr: Multiaddr, ctx: &mut Ctx<'_>) {
        if let Some(kad) = ctx.io.swarm.behaviour_mut().kad.as_mut() {
            kad.add_address(peer, addr);
        }
    }

    pub(super) fn dial_peer(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, ctx: &mut Ctx<'_>) {
        if peer == *ctx.io.swarm.local_peer_id() || self.connections.contains_key(&peer) {
            return;
        }
        // A relayed address is often the one that works for a peer behind a NAT, learnt after
        // its private ones (which fail slowly from outside its network): it does not wait for a
        // dial in progress to fail first.
        let condition = if addrs.iter().any(is_relayed) {
            PeerCondition::Disconnected
        } else {
            PeerCondition::DisconnectedAndNotDialing
        };
        tracing::debug!(%peer, ?addrs, "dialing");
        // A fresh source port, not the listening one: when two nodes dial each other at the same
        // instant (both just heard the same mDNS exchange), dials from both listening ports would
        // meet as one TCP simultaneous open, which fails the Noise handshake on both sides.
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(condition)
            .allocate_new_port()
            .build();
        if let Err(e) = ctx.io.swarm.dial(opts) {
            tracing::debug!(%peer, "dial refused: {e}");
        }
    }

    /// Dials `peer` unless its dials failed lately (see [`Redials`]): for peers named again and
    /// again (the tracker's roster comes with every registration).
    pub(super) fn dial_if_due(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, ctx: &mut Ctx<'_>) {
        if self.redials.0.may_dial(&peer, Instant::now()) {
            self.dial_peer(peer, addrs, ctx);
        }
    }

    /// Keeps the node connected: below the target, dial LAN and known peers we are not
    /// connected to.
    pub(super) fn maintain(&mut self, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        ctx.inbound.expire(now);
        for peer in ctx.io.guard.expire(now) {
            tracing::info!(%peer, "block lifted");
            ctx.io.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
        self.dial_trackers(ctx);
        if self.connections.len() >= ctx.io.config.target_peers {
            return;
        }
        let me = *ctx.io.swarm.local_peer_id();
        let due = |p: &PeerId| {
            *p != me && !self.connections.contains_key(p) && self.redials.0.may_dial(p, now)
        };
        let mut dials: Vec<(PeerId, Vec<Multiaddr>)> = self
            .lan_peers
            .iter()
            .filter(|(p, _)| due(p))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        match ctx.io.store.known_peers(KNOWN_LOOKED_AT) {
            Ok(known) => dials.extend(
                known
                    .into_iter()
                    .filter_map(|k| Some((k.peer_id.parse::<PeerId>().ok()?, k.addrs)))
                    .filter(|(p, _)| due(p) && !self.lan_peers.contains_key(p))
                    .take(START_DIALS)
                    .map(|(p, addrs)| (p, addrs.iter().filter_map(|a| a.parse().ok()).collect())),
            ),
            Err(e) => tracing::warn!("reading known peers: {e}"),
        }
        for (peer, addrs) in dials {
            self.dial_peer(peer, addrs, ctx);
        }
    }
}

impl Conns {
    /// `--tracker ADDR` trackers not connected: dialed (at start and by maintenance).
    fn dial_trackers(&mut self, ctx: &mut Ctx<'_>) {
        for addr in ctx.io.config.trackers.clone() {
            let peer = addr.iter().find_map(|p| match p {
                Protocol::P2p(id) => Some(id),
                _ => None,
            });
            let connected = match peer {
                Some(p) => self.connections.contains_key(&p),
                None => self
                    .connections
                    .values()
                    .flatten()
                    .any(|(_, a, _)| strip_p2p(a) == strip_p2p(&addr)),
            };
            match (connected, peer) {
                (true, _) => {}
                (false, Some(p)) => self.dial_peer(p, vec![strip_p2p(&addr)], ctx),
                (false, None) => self.dial_addr(addr, None, ctx),
            }
        }
    }
}

/// The address without the peer id at its end. A relayed address keeps its relay's
/// (`/…/p2p/RELAY/p2p-circuit`), without which it leads nowhere.
pub(super) fn strip_p2p(addr: &Multiaddr) -> Multiaddr {
    let mut addr = addr.clone();
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}

/// Whether an address goes through a relay.
pub(super) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// Addresses worth remembering and announcing: not unspecified (0.0.0.0, ::).
pub(super) fn is_dialable(addr: &Multiaddr) -> bool {
    !addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

fn dial_error_reason(e: &DialError) -> String {
    match e {
        DialError::Transport(errs) => errs
            .iter()
            .map(|(addr, err)| format!("{addr}: {err}"))
            .collect::<Vec<_>>()
            .join("; "),
        DialError::WrongPeerId { obtained, .. } => {
            format!("the peer there is {obtained}, not the one in the address")
        }
        DialError::NoAddresses => "no address to dial".into(),
        other => other.to_string(),
    }
}

/// Inserts into a map kept under `max` entries by dropping the oldest value.
fn bounded_insert<K: Copy + Eq + Hash>(
    map: &mut HashMap<K, Instant>,
    k: K,
    v: Instant,
    max: usize,
) {
    if map.len() >= max && !map.contains_key(&k) {
        if let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
            map.remove(&oldest);
        }
    }
    map.insert(k, v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_the_trailing_peer_id_is_stripped() {
        let relay = "12D3KooWRmL6fdjYUbCjMgb4aXUpuhd2gzHyVXHuWZXk7ta1cT5i";
        let peer = "12D3KooWMjS4d7tFJhcfzG3GxJGSBXcGX8ZxpmLGYvUyQNChrQQ2";
        let direct: Multiaddr = format!("/ip4/10.0.0.1/tcp/7447/p2p/{peer}")
            .parse()
            .unwrap();
        assert_eq!(strip_p2p(&direct).to_string(), "/ip4/10.0.0.1/tcp/7447");
        assert!(!is_relayed(&direct));
        let relayed: Multiaddr =
            format!("/ip4/192.88.99.1/tcp/7447/p2p/{relay}/p2p-circuit/p2p/{peer}")
                .parse()
                .unwrap();
        assert_eq!(
            strip_p2p(&relayed).to_string(),
            format!("/ip4/192.88.99.1/tcp/7447/p2p/{relay}/p2p-circuit")
        );
        assert!(is_relayed(&relayed));
        assert_eq!(strip_p2p(&strip_p2p(&relayed)), strip_p2p(&relayed));
    }

    #[test]
    fn the_idle_stranger_goes_first() {
        let t0 = Instant::now();
        let c = |peer: u32, secs: u64, dialed: bool, lan: bool| Candidate {
            peer,
            useful: t0 + Duration::from_secs(secs),
            dialed,
            lan,
        };
        let peers = [
            c(1, 0, true, false),   // dialed long ago: kept
            c(2, 1, false, true),   // on the LAN: kept
            c(3, 50, false, false), // relayed a message at 50 s
            c(4, 10, false, false), // idle since it connected at 10 s
            c(5, 60, false, false), // the newcomer
        ];
        assert_eq!(choose_victim(5, peers), Some(4));
        assert_eq!(choose_victim(5, [peers[0], peers[1], peers[4]]), None);
    }
}
