//! The actor: one task owns the swarm, the store and the protocol state, and serves commands.
//! Local work (commands) goes before remote work (swarm events); database writes are batched and
//! flushed whenever the loop is idle, when a batch is full, or when its oldest entry has waited
//! [`FLUSH_DELAY`].

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::Version;
use libp2p::core::ConnectedPoint;
use libp2p::core::Transport as _;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{ConnectionId, DialError, SwarmEvent};
use libp2p::{identify, kad, mdns, noise, quic, tcp, yamux, Multiaddr, PeerId, Swarm};
use meshchat_core::dedup::SeenCache;
use meshchat_core::guard::Guard;
use meshchat_core::room;
use meshchat_core::{Envelope, KeyCache, Keypair, MessageId};
use tokio::sync::mpsc;

mod broadcast;
mod conns;
mod inbound;
mod rooms;
mod route;
mod sync;
mod tracker;

use super::{now_ms, Command, Error, Event, NodeInfo, Reply, Stats};
use crate::behaviour::broadcast::{Inbound as TreeInbound, Links};
use crate::behaviour::handshakes::{self, Handshakes};
use crate::behaviour::{Behaviour, BehaviourEvent, KAD_PROTOCOL, PROTOCOL_VERSION};
use crate::config::DEFAULT_PORT;
use crate::store::{Store, StoredMessage};
use crate::{keyfile, Config};

/// A connection nothing keeps alive closes after this long. The broadcast streams keep a
/// connection alive while they are open (libp2p counts open streams).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most envelopes in one database transaction.
const MAX_BATCH: usize = 512;
/// Longest an envelope waits for its batch to be written (and shown).
const FLUSH_DELAY: Duration = Duration::from_millis(10);
/// Decoded author keys kept (about 250 bytes each with the map: about 500 KiB when full).
const AUTHOR_KEY_CACHE: usize = 2048;
/// Ids remembered to drop duplicate copies without decoding them.
const SEEN_CAPACITY: usize = 200_000;
const SEEN_TTL: Duration = Duration::from_secs(30 * 60);
/// How often the node checks it has enough peers.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(10);
/// Longest wait for listeners to report their addresses at start.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for peers to be told goodbye at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Known peers dialed at start.
const START_DIALS: usize = 16;
/// Pending `/connect` replies kept at most; beyond that, the oldest is answered with an error.
const MAX_PENDING_DIALS: usize = 64;
/// Peers found on the LAN remembered for redialing, and addresses kept per peer.
const MAX_LAN_PEERS: usize = 256;
const MAX_LAN_ADDRS: usize = 8;

pub(super) struct Actor {
    swarm: Swarm<Behaviour>,
    store: Store,
    /// Our signing key (the same key is the libp2p identity).
    key: Keypair,
    new_identity: bool,
    config: Config,
    nick: String,
    /// Joined rooms, in join order.
    rooms: Vec<String>,
    seen: SeenCache<MessageId>,
    /// Per-neighbour message rate, strikes and blocks.
    guard: Guard<PeerId>,
    /// Decoded keys of recent authors.
    author_keys: KeyCache,
    /// Envelopes waiting for the next database write (own ones are told apart by author later).
    /// Verified room envelopes to store and show, each with its decoded form.
    pending: Vec<(Envelope, StoredMessage)>,
    pending_since: Option<Instant>,
    /// Whether room-message writes work, for one warning per outage rather than one per batch.
    store_health: inbound::StoreHealth,
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
    /// connection whose peer does not speak ping is left out (see `Actor::check_liveness`).
    pongs: HashMap<ConnectionId, (PeerId, Instant)>,
    /// History sync: sessions, what to fetch, the item snapshot.
    sync: sync::State,
    /// Room broadcast on the trees.
    trees: broadcast::State,
    /// Reports of the broadcast stream tasks; taken by [`Actor::run`].
    trees_rx: Option<mpsc::Receiver<TreeInbound>>,
    /// Direct messages: routing table, outbox, profiles, route streams.
    route: route::State,
    /// Reports of the route stream tasks; taken by [`Actor::run`].
    route_rx: Option<mpsc::Receiver<TreeInbound>>,
    /// The tracker election and the roster.
    tracker: tracker::State,
    /// Peers announced to the front-end as chat peers (connected, broadcast stream open).
    chat_peers: HashSet<PeerId>,
    /// `/connect` calls waiting for their dial's outcome.
    pending_dials: HashMap<ConnectionId, (Multiaddr, Reply<PeerId>)>,
    listen_addrs: Vec<Multiaddr>,
    /// Peers mDNS found and has not expired: redialed by maintenance while unconnected, because
    /// mDNS reports a peer only once and a first dial can fail.
    lan_peers: HashMap<PeerId, Vec<Multiaddr>>,
    stats: Stats,
    /// Incoming handshakes' slots (see `behaviour::handshakes`): its counters, for `Stats`.
    handshakes: Handshakes,
    events: mpsc::Sender<Event>,
    /// Events dropped since the front-end's queue was last found full (0: none pending).
    lagged: u64,
}

impl Actor {
    pub(super) fn new(config: Config, events: mpsc::Sender<Event>) -> Result<Self, Error> {
        let (key, new_identity) = keyfile::load_or_create(&config.data_dir)?;
        let tightened = keyfile::tighten(&config.data_dir);
        let store = if config.in_memory_store {
            Store::open_in_memory()?
        } else {
            Store::open(&config.data_dir.join("meshchat.sqlite"))?
        };
        let mut secret = key.secret_bytes();
        let libp2p_key = libp2p::identity::Keypair::ed25519_from_bytes(&mut secret[..])
            .map_err(|e| Error::Network(format!("identity: {e}")))?;
        let net = |e: &dyn std::fmt::Display| Error::Network(e.to_string());
        let (mdns, dht, max_conn) = (config.mdns, config.dht, config.max_connections);
        let handshakes = Handshakes::new(handshakes::MAX_PENDING, handshakes::PER_ADDRESS);
        let swarm = libp2p::SwarmBuilder::with_existing_identity(libp2p_key)
            .with_tokio()
            .with_other_transport(|k| {
                transport(k, &handshakes)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            })
            .map_err(|e| net(&e))?
            .with_dns()
            .map_err(|e| net(&e))?
            .with_behaviour(|k| {
                Behaviour::new(k, mdns, dht, max_conn)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            })
            .map_err(|e| net(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
            .with_connection_timeout(config.handshake_timeout)
            .build();

        let nick = match &config.nick {
            Some(n) => {
                room::validate_nick(n)?;
                store.set_setting("nick", n)?;
                n.clone()
            }
            None => match store.setting("nick")? {
                Some(n) => n,
                None => format!("anon-{}", key.public().fingerprint().short()),
            },
        };
        if store.setting("rooms_initialized")?.is_none() {
            store.join_room(room::DEFAULT_ROOM, now_ms())?;
            store.set_setting("rooms_initialized", "1")?;
        }
        let rooms = store.joined_rooms()?;
        let (links, trees_rx) = Links::new(&swarm.behaviour().broadcast);
        let mut trees = broadcast::State::new(
            meshchat_core::broadcast::Broadcast::new(config.broadcast),
            meshchat_core::authors::Authors::new(config.authors),
            links,
        );
        trees
            .authors
            .know(*key.public().as_bytes(), std::time::Instant::now());
        let (route_links, route_rx) = Links::with_protocol(
            &swarm.behaviour().broadcast,
            crate::behaviour::route::PROTOCOL,
            crate::behaviour::route::max_frame(),
        );
        let me = *key.public().as_bytes();
        // One past the saved seqno: harmless, and newer than anything a crash left unsaved.
        let seqno = store
            .setting("routing_seqno")?
            .and_then(|s| s.parse::<u16>().ok())
            .map_or(0, |s| s.wrapping_add(1));
        let version = store
            .setting("profile_version")?
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        let enc = meshchat_core::dm::EncryptionKey::derive(&key);
        let route = route::State::new(
            meshchat_core::routing::Table::new(me, seqno, config.routing, Instant::now()),
            meshchat_core::dm::Outbox::new(me, key.clone(), enc.clone(), config.dm),
            enc,
            route_links,
            version,
        );
        let epoch = store
            .setting("tracker_epoch")?
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        let tracker = tracker::State::new(meshchat_core::election::Election::new(
            me,
            config.tracker_priority,
            epoch,
            config.election,
            Instant::now(),
        ));
        let guard_limits = config.guard;
        let sync_limits = config.sync;
        let mut store = store;
        if let Some(flag) = &config.fail_writes {
            store.fail_writes_when(flag.clone());
        }
        let mut actor = Self {
            swarm,
            store,
            key,
            new_identity,
            config,
            nick,
            rooms,
            seen: SeenCache::new(SEEN_CAPACITY, SEEN_TTL),
            guard: Guard::new(guard_limits),
            author_keys: KeyCache::new(AUTHOR_KEY_CACHE),
            pending: Vec::new(),
            pending_since: None,
            store_health: inbound::StoreHealth::default(),
            connections: HashMap::new(),
            useful: HashMap::new(),
            evicting: HashSet::new(),
            redial: HashMap::new(),
            failure_warned: HashMap::new(),
            pongs: HashMap::new(),
            sync: sync::State::new(sync_limits),
            trees,
            trees_rx: Some(trees_rx),
            route,
            route_rx: Some(route_rx),
            tracker,
            chat_peers: HashSet::new(),
            pending_dials: HashMap::new(),
            listen_addrs: Vec::new(),
            lan_peers: HashMap::new(),
            stats: Stats::default(),
            handshakes,
            events,
            lagged: 0,
        };
        for notice in tightened {
            tracing::warn!("{notice}");
            actor.emit(Event::Warning(notice));
        }
        Ok(actor)
    }

    /// Listens, subscribes, dials; returns once every listener has an address.
    pub(super) async fn start(&mut self) -> Result<(), Error> {
        self.trees.links.start();

        let mut listeners = Vec::new();
        if self.config.listen.is_empty() {
            for proto in ["tcp", "udp"] {
                let suffix = if proto == "udp" { "/quic-v1" } else { "" };
                let preferred: Multiaddr = format!("/ip4/0.0.0.0/{proto}/{DEFAULT_PORT}{suffix}")
                    .parse()
                    .expect("static multiaddr parses");
                let free = !tcp_port_taken(&preferred);
                let id = match free.then(|| self.swarm.listen_on(preferred)) {
                    Some(Ok(id)) => id,
                    _ => {
                        let any: Multiaddr = format!("/ip4/0.0.0.0/{proto}/0{suffix}")
                            .parse()
                            .expect("static multiaddr parses");
                        self.swarm
                            .listen_on(any.clone())
                            .map_err(|e| Error::Listen {
                                addr: any,
                                reason: e.to_string(),
                            })?
                    }
                };
                listeners.push(id);
            }
        } else {
            for addr in self.config.listen.clone() {
                if tcp_port_taken(&addr) {
                    return Err(Error::Listen {
                        addr,
                        reason: ADDR_IN_USE.into(),
                    });
                }
                let id = self
                    .swarm
                    .listen_on(addr.clone())
                    .map_err(|e| Error::Listen {
                        addr,
                        reason: listen_error_reason(&e),
                    })?;
                listeners.push(id);
            }
        }

        // Wait for each listener's first address, handling whatever else happens meanwhile.
        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        let mut waiting: HashSet<_> = listeners.into_iter().collect();
        while !waiting.is_empty() {
            let event = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
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
            self.on_swarm_event(event);
        }

        self.route_start()?;
        self.tracker_start();
        for addr in self.config.peers.clone() {
            self.dial_addr(addr, None);
        }
        self.dial_trackers();
        for peer in self.store.known_peers(START_DIALS)? {
            let Ok(peer_id) = peer.peer_id.parse::<PeerId>() else {
                continue;
            };
            let addrs: Vec<Multiaddr> = peer.addrs.iter().filter_map(|a| a.parse().ok()).collect();
            for a in &addrs {
                self.add_dht_address(&peer_id, a.clone());
            }
            self.dial_peer(peer_id, addrs);
        }
        Ok(())
    }

    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut maintenance = tokio::time::interval(MAINTENANCE_INTERVAL);
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut liveness = tokio::time::interval(conns::LIVENESS_CHECK);
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A second handle on the event queue, so waiting for room does not borrow `self`.
        let lag_notice = self.events.clone();
        let mut trees_rx = self.trees_rx.take();
        let mut route_rx = self.route_rx.take();
        let shutdown_reply = loop {
            let flush_due = self
                .pending_since
                .map(|t| tokio::time::Instant::from_std(t + FLUSH_DELAY));
            let tree_due = self.trees.wake.map(tokio::time::Instant::from_std);
            let route_due = tokio::time::Instant::from_std(self.route.due());
            let tracker_due = self.tracker.wake.map(tokio::time::Instant::from_std);
            let sync_due = self.sync.wake.map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => break Some(reply),
                    Some(cmd) => self.on_command(cmd),
                    None => break None,
                },
                Ok(permit) = lag_notice.reserve(), if self.lagged > 0 => {
                    permit.send(Event::Lagged { missed: self.lagged });
                    self.lagged = 0;
                }
                () = sleep_until_opt(flush_due) => self.flush(),
                () = sleep_until_opt(tree_due) => self.broadcast_tick(),
                () = tokio::time::sleep_until(route_due) => self.route_tick(),
                () = sleep_until_opt(tracker_due) => self.tracker_tick(),
                () = sleep_until_opt(sync_due) => self.sync_tick(),
                Some(report) = recv_opt(&mut route_rx) => self.on_route(report),
                Some(report) = recv_opt(&mut trees_rx) => {
                    self.on_broadcast(report);
                    // What else has arrived, up to a batch, before anything is sent.
                    if let Some(rx) = trees_rx.as_mut() {
                        for _ in 1..broadcast::REPORT_BATCH {
                            match rx.try_recv() {
                                Ok(report) => self.on_broadcast(report),
                                Err(_) => break,
                            }
                        }
                    }
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                // After the swarm (the select is biased): a check runs only when no swarm
                // event, and so no ping answer, is waiting to be read.
                _ = liveness.tick() => self.check_liveness(),
                _ = maintenance.tick() => self.maintain(),
                () = std::future::ready(()), if !self.pending.is_empty() => self.flush(),
            }
            self.send_broadcast();
        };
        self.shutdown().await;
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    async fn shutdown(mut self) {
        self.flush();
        let peers: Vec<PeerId> = self.connections.keys().copied().collect();
        for p in peers {
            let _ = self.swarm.disconnect_peer_id(p);
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.connections.is_empty() {
            match tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await {
                Ok(SwarmEvent::ConnectionClosed {
                    peer_id,
                    connection_id,
                    ..
                }) => {
                    self.forget_connection(peer_id, connection_id);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if let Err(e) = self.store.close() {
            tracing::error!("closing the database: {e}");
        }
        tracing::info!("node stopped");
    }

    /// Hands an event to the front-end without ever waiting: relaying for the mesh must not stop
    /// because an interface stopped reading (a paused terminal, a script that reads slowly). On a
    /// full queue the event is dropped and counted; the loop sends [`Event::Lagged`] as soon as
    /// there is room. A front-end that went away is not an error either.
    fn emit(&mut self, event: Event) {
        if self.lagged > 0 {
            self.lagged += 1;
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(event) {
            self.lagged = 1;
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Send { room, text, reply } => {
                let _ = reply.send(self.send(&room, text));
            }
            Command::Join { room, reply } => {
                let _ = reply.send(self.join(&room));
            }
            Command::Leave { room, reply } => {
                let _ = reply.send(self.leave(&room));
            }
            Command::SetNick { nick, reply } => {
                let _ = reply.send(self.set_nick(nick));
            }
            Command::Dm { to, text, reply } => {
                let _ = reply.send(self.send_dm(&to, text));
            }
            Command::DmHistory {
                with,
                limit,
                before,
                reply,
            } => {
                let _ = reply.send(self.dm_history(&with, limit, before));
            }
            Command::Conversations { reply } => {
                let _ = reply.send(self.conversations());
            }
            Command::Routes { reply } => {
                let _ = reply.send(Ok(self.routes()));
            }
            Command::Whois { who, reply } => {
                let _ = reply.send(self.whois(&who));
            }
            Command::Who { reply } => {
                let _ = reply.send(Ok(self.who()));
            }
            Command::Tracker { reply } => {
                let _ = reply.send(Ok(self.tracker_view()));
            }
            Command::Connect { addr, reply } => self.dial_addr(addr, Some(reply)),
            Command::Peers { reply } => {
                let _ = reply.send(Ok(self.peers()));
            }
            Command::History {
                room,
                limit,
                before,
                reply,
            } => {
                let _ = reply.send(self.history(&room, limit, before));
            }
            Command::ArrivedAfter {
                after,
                limit,
                reply,
            } => {
                let _ = reply.send(self.arrived_after(after, limit));
            }
            Command::Info { reply } => {
                let _ = reply.send(Ok(NodeInfo {
                    peer_id: *self.swarm.local_peer_id(),
                    fingerprint: self.key.public().fingerprint(),
                    nick: self.nick.clone(),
                    listen: self.listen_addrs.clone(),
                    rooms: self.rooms.clone(),
                    new_identity: self.new_identity,
                }));
            }
            Command::Stats { reply } => {
                let mut stats = self.stats.clone();
                stats.copies_received = self.trees.core.stats().gossip_received;
                stats.trees = self.trees.core.stats().clone();
                stats.blocked_peers = self.guard.blocked_count(Instant::now()) as u64;
                stats.handshakes = self.handshakes.stats();
                stats.routing = *self.route.table.stats();
                stats.routes = self.route.table.len() as u64;
                stats.dm = *self.route.outbox.stats();
                stats.tracker = *self.tracker.election.stats();
                stats.dm_own_held = self.route.outbox.held(meshchat_core::dm::Role::Own) as u64;
                stats.dm_custody_held =
                    self.route.outbox.held(meshchat_core::dm::Role::Custody) as u64;
                let _ = reply.send(Ok(stats));
            }
            Command::Shutdown { .. } => unreachable!("handled by the loop"),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ev)) => self.on_ping(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if info.protocol_version != PROTOCOL_VERSION {
                    return;
                }
                self.sync_on_identified(peer_id, &info.protocols);
                let addrs: Vec<Multiaddr> =
                    info.listen_addrs.into_iter().filter(is_dialable).collect();
                if info.protocols.contains(&KAD_PROTOCOL) {
                    for a in &addrs {
                        self.add_dht_address(&peer_id, a.clone());
                    }
                }
                let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
                if let Err(e) = self
                    .store
                    .upsert_peer(&peer_id.to_string(), &addrs, now_ms())
                {
                    tracing::warn!("remembering peer {peer_id}: {e}");
                }
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
                    self.dial_peer(peer, addrs);
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
                    if let Err(e) = self.store.upsert_peer(&peer.to_string(), &addrs, now_ms()) {
                        tracing::warn!("remembering peer {peer}: {e}");
                    }
                }
                if self.connections.len() < self.config.target_peers {
                    self.dial_peer(peer, addresses.into_vec());
                }
            }
            SwarmEvent::Behaviour(_) => {}
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen_addrs.push(address.clone());
                self.emit(Event::ListenAddr(address));
                self.tracker_me_changed();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address);
                self.tracker_me_changed();
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let remote = endpoint.get_remote_address().clone();
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    let addr = strip_p2p(address);
                    if let Err(e) =
                        self.store
                            .upsert_peer(&peer_id.to_string(), &[addr.to_string()], now_ms())
                    {
                        tracing::warn!("remembering peer {peer_id}: {e}");
                    }
                    self.add_dht_address(&peer_id, addr);
                }
                tracing::debug!(%peer_id, %remote, "connected");
                self.pongs.insert(connection_id, (peer_id, Instant::now()));
                let dialed = endpoint.is_dialer();
                self.connections
                    .entry(peer_id)
                    .or_default()
                    .push((connection_id, remote, dialed));
                self.useful.entry(peer_id).or_insert_with(Instant::now);
                self.evict_if_full(peer_id);
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                self.broadcast_connected(peer_id);
                self.route_connected(peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                cause,
                ..
            } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
                if self.forget_connection(peer_id, connection_id) {
                    self.emit(Event::PeerDisconnected { peer_id });
                }
                if !self.connections.contains_key(&peer_id) {
                    self.broadcast_disconnected(peer_id);
                    self.route_disconnected(peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                tracing::debug!(?peer_id, "dial failed: {error}");
                if let Some((addr, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(Error::Dial {
                        addr: addr.to_string(),
                        reason: dial_error_reason(&error),
                    }));
                }
            }
            SwarmEvent::ListenerError { error, .. } => {
                self.emit(Event::Warning(format!("listener failed: {error}")));
            }
            _ => {}
        }
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

const ADDR_IN_USE: &str =
    "address already in use (another program, or another meshchat, has that port)";

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

fn strip_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

/// Addresses worth remembering and announcing: not unspecified (0.0.0.0, ::).
fn is_dialable(addr: &Multiaddr) -> bool {
    !addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
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

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("peer_id", self.swarm.local_peer_id())
            .finish_non_exhaustive()
    }
}
