//! The actor: one task owns the swarm, the store and the protocols' handlers, and serves
//! commands. Its loop takes a command, a swarm event, a stream report or a timer, hands it to the
//! one handler that owns it, then hands on the [`Note`]s the handlers queued ([`Actor::route`]:
//! the table of who gets what). Handlers own their state and never call each other; each gets a
//! [`Ctx`] lending it the node's I/O, the one way in for envelopes, and the note queue.
//!
//! Local work (commands) goes before remote work (swarm events); database writes are batched and
//! flushed whenever the loop is idle, when a batch is full, or when its oldest entry has waited
//! [`inbound::FLUSH_DELAY`].

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use tokio::sync::mpsc;

mod broadcast;
mod conns;
mod context;
mod disk;
mod files;
mod inbound;
mod listen;
mod nat;
mod private;
mod rooms;
mod route;
mod sync;
mod tracker;

use super::{Command, Error, Event};
use crate::behaviour::broadcast::Links;
use crate::behaviour::BehaviourEvent;
use crate::store::Store;
use crate::{keyfile, Config};
use context::{Ctx, Io, Note, Notes};

/// How often the node checks it has enough peers.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(10);
/// Longest wait for peers to be told goodbye at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub(super) struct Actor {
    io: Io,
    inbound: inbound::Inbound,
    notes: Notes,
    conns: conns::Conns,
    trees: broadcast::Trees,
    direct: route::Direct,
    sync: sync::Sync,
    tracker: tracker::Tracker,
    files: files::Files,
    private: private::Private,
    nat: nat::Nat,
}

/// A handler's context, borrowed from the actor's fields.
macro_rules! ctx {
    ($a:expr) => {
        &mut Ctx {
            io: &mut $a.io,
            inbound: &mut $a.inbound,
            notes: &mut $a.notes,
        }
    };
}

// After the macro, which it uses.
mod commands;

impl Actor {
    pub(super) fn new(config: Config, events: mpsc::Sender<Event>) -> Result<Self, Error> {
        let (key, new_identity) = keyfile::load_or_create(&config.data_dir)?;
        let config_nat = config.nat.reach;
        let tightened = keyfile::tighten(&config.data_dir);
        let mut store = Store::open_for(&config)?;
        let (swarm, handshakes) = listen::swarm(&key, &config)?;

        let (nick, rooms) = rooms::load(&mut store, &config, &key)?;
        let setting = |name: &str| -> Result<Option<u64>, Error> {
            Ok(store.setting(name)?.and_then(|s| s.parse::<u64>().ok()))
        };
        let me = *key.public().as_bytes();
        let (links, trees_rx) = Links::new(&swarm.behaviour().broadcast);
        let trees = broadcast::Trees::new(
            meshchat_core::broadcast::Broadcast::new(config.broadcast),
            links,
            trees_rx,
        );
        let mut authors = meshchat_core::authors::Authors::new(config.authors);
        authors.know(me, Instant::now());
        // One past the saved seqno: harmless, and newer than anything a crash left unsaved.
        let seqno = setting("routing_seqno")?.map_or(0, |s| (s as u16).wrapping_add(1));
        let version = setting("profile_version")?.unwrap_or(0);
        let direct = route::Direct::open(&key, &config, &swarm, seqno, version);
        let tracker = tracker::Tracker::new(meshchat_core::election::Election::new(
            me,
            config.tracker_priority,
            setting("tracker_epoch")?.unwrap_or(0),
            config.election,
            Instant::now(),
        ));
        let sync = sync::Sync::new(config.sync);
        let files = files::Files::new(&swarm.behaviour().broadcast);
        let (private, private_names) =
            private::Private::load(&store, meshchat_core::dm::EncryptionKey::derive(&key), me)?;
        let mut io = Io::new(
            swarm,
            store,
            key,
            config,
            nick,
            rooms,
            new_identity,
            handshakes,
            events,
        );
        io.private = private_names;
        let notices = tightened.into_iter().chain(io.store.recovery_notice());
        for notice in notices {
            tracing::warn!("{notice}");
            io.emit(Event::Warning(notice));
        }
        Ok(Self {
            io,
            inbound: inbound::Inbound::new(authors),
            notes: Notes::default(),
            conns: conns::Conns::default(),
            trees,
            direct,
            sync,
            tracker,
            files,
            private,
            nat: nat::Nat::new(config_nat),
        })
    }

    /// Listens, subscribes, dials; returns once every listener has an address.
    pub(super) async fn start(&mut self) -> Result<(), Error> {
        self.trees.start();
        let listen = self.io.config.listen.clone();
        for event in listen::listen(&mut self.io.swarm, &listen).await? {
            self.on_swarm_event(event);
        }
        self.direct.start(ctx!(self))?;
        let addrs = self.nat.advertised(ctx!(self));
        self.tracker.start(addrs, ctx!(self));
        self.files.start(ctx!(self));
        self.private.start(ctx!(self));
        self.conns.start(ctx!(self))?;
        self.hand_on();
        Ok(())
    }

    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        // Maintenance runs at once, then at a phase of its own: nodes started together (a
        // site's power coming back, the lab) do not all dial, prune and reconcile in the same
        // few milliseconds every round.
        self.maintain();
        self.hand_on();
        let phase = crate::first_round(MAINTENANCE_INTERVAL);
        let mut maintenance =
            tokio::time::interval_at(tokio::time::Instant::now() + phase, MAINTENANCE_INTERVAL);
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut liveness = tokio::time::interval(conns::LIVENESS_CHECK);
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A second handle on the event queue, so waiting for room does not borrow `self`.
        let lag_notice = self.io.events();
        let mut trees_rx = self.trees.take_reports();
        let mut route_rx = self.direct.take_reports();
        let mut files_rx = self.files.take_reports();
        let mut checks_rx = self.files.take_checks();
        let at = |t: Option<Instant>| t.map(tokio::time::Instant::from_std);
        let shutdown_reply = loop {
            let flush_due = at(self.inbound.flush_due());
            let tree_due = at(self.trees.wake());
            let route_due = tokio::time::Instant::from_std(self.direct.due());
            let tracker_due = at(self.tracker.wake());
            let sync_due = at(self.sync.wake());
            let files_due = at(self.files.wake());
            let nat_due = at(self.nat.wake());
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => break Some(reply),
                    Some(Command::Run(job)) => job(&mut self),
                    None => break None,
                },
                Ok(permit) = lag_notice.reserve(), if self.io.lagged() > 0 => {
                    permit.send(Event::Lagged { missed: self.io.lagged() });
                    self.io.lag_told();
                }
                () = sleep_until_opt(flush_due) => ctx!(self).flush(),
                () = sleep_until_opt(tree_due) => self.trees.tick(ctx!(self)),
                () = tokio::time::sleep_until(route_due) => self.direct.tick(ctx!(self)),
                () = sleep_until_opt(tracker_due) => self.tracker.tick(ctx!(self)),
                () = sleep_until_opt(sync_due) => self.sync.tick(ctx!(self)),
                () = sleep_until_opt(files_due) => self.files.tick(ctx!(self)),
                () = sleep_until_opt(nat_due) => self.nat.tick(ctx!(self)),
                Some(report) = recv_opt(&mut route_rx) => self.direct.on_report(report, ctx!(self)),
                Some(report) = recv_opt(&mut files_rx) => self.files.on_report(report, ctx!(self)),
                Some(checked) = recv_opt(&mut checks_rx) => self.files.on_checked(checked, ctx!(self)),
                Some(report) = recv_opt(&mut trees_rx) => {
                    self.trees.on_report(report, ctx!(self));
                    // What else has arrived, up to a batch, before anything is sent.
                    if let Some(rx) = trees_rx.as_mut() {
                        for _ in 1..broadcast::REPORT_BATCH {
                            match rx.try_recv() {
                                Ok(report) => {
                                    self.trees.on_report(report, ctx!(self));
                                    self.hand_on();
                                }
                                Err(_) => break,
                            }
                        }
                    }
                }
                event = self.io.swarm.select_next_some() => self.on_swarm_event(event),
                // After the swarm (the select is biased): a check runs only when no swarm
                // event, and so no ping answer, is waiting to be read.
                _ = liveness.tick() => self.conns.check_liveness(ctx!(self)),
                _ = maintenance.tick() => self.maintain(),
                () = std::future::ready(()), if self.inbound.has_pending() => ctx!(self).flush(),
            }
            self.hand_on();
            self.trees.send(ctx!(self));
            self.hand_on();
        };
        self.shutdown().await;
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    /// The periodic round: redials, expiries, history sync's schedule, private rooms' upkeep.
    fn maintain(&mut self) {
        self.conns.maintain(ctx!(self));
        self.sync.maintain(ctx!(self));
        self.private.maintain(ctx!(self));
    }

    /// Hands every queued note to the handler that takes it, until none is left.
    fn hand_on(&mut self) {
        while let Some(note) = self.notes.pop() {
            self.route(note);
        }
    }

    /// Who gets what.
    fn route(&mut self, note: Note) {
        let ctx = ctx!(self);
        match note {
            Note::Publish { id, payload } => {
                ctx.inbound.mark_seen(id, Instant::now());
                self.trees.publish(id, &payload, ctx);
            }
            Note::Profile {
                env,
                profile,
                republish,
            } => self.direct.on_profile(env, profile, republish, ctx),
            Note::Tracker { env } => self.tracker.on_envelope(env, ctx),
            Note::FloodedDm(dm) => self
                .direct
                .feed_outbox(meshchat_core::dm::Input::Flooded(dm), ctx),
            Note::SendRouted { to, envelope } => self.direct.send_routed(to, &envelope, ctx),
            Note::Reachability(changes) => self.tracker.reachability(changes, ctx),
            Note::MeChanged => {
                let addrs = self.nat.advertised(ctx);
                self.tracker.me_changed(addrs, ctx);
            }
            Note::PublishProfile => self.direct.publish_profile(ctx),
            Note::Dial { peer, addrs } => self.conns.dial_if_due(peer, addrs, ctx),
            Note::Useful(peer) => self.conns.useful(peer),
            Note::Stalled(peer) => self.conns.on_stalled(peer, ctx),
            Note::PeerUp(peer) => {
                self.trees.connected(peer, ctx);
                self.direct.connected(peer, ctx);
                self.files.connected(peer, ctx);
            }
            Note::PeerDown(peer) => {
                self.nat.disconnected(peer, ctx);
                self.trees.disconnected(peer, ctx);
                self.direct.disconnected(peer, ctx);
                self.files.disconnected(&peer);
                self.sync.forget(&peer, ctx);
            }
            Note::Identified {
                peer,
                protocols,
                dialed,
            } => {
                self.nat
                    .on_identified(peer, &protocols, dialed.as_ref(), ctx);
                self.sync.on_identified(peer, &protocols, ctx);
            }
            Note::Stored { timestamp_ms, id } => self.sync.added(timestamp_ms, id),
            Note::Relayed(len) => self.sync.relayed(len),
            Note::ItemsChanged => self.sync.changed(),
            Note::RoomsChanged => self.sync.rooms_changed(),
            Note::SyncAll => self.sync.all(ctx),
            Note::Private { env, from, synced } => self.private.on_envelope(env, from, synced, ctx),
            Note::Invite { invite, from } => self.private.on_invite(*invite, from, ctx),
            Note::FileOffer { env, offer, dm } => self.files.on_offer(env, *offer, dm, ctx),
            Note::FileSend { to, frame, origin } => {
                // Straight to a neighbour (also before the routing table has heard from it),
                // else along the table's route.
                let direct = ctx.io.connected(&crate::node::peer_id_of_bytes(&to));
                let via = if direct {
                    Some(to)
                } else {
                    self.direct.next_hop(&to)
                };
                self.files.send_via(to, via, frame, origin, ctx);
            }
        }
    }

    async fn shutdown(mut self) {
        self.files.save_all(ctx!(self));
        ctx!(self).flush();
        self.conns.disconnect_all(ctx!(self));
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.conns.is_empty() {
            match tokio::time::timeout_at(deadline, self.io.swarm.select_next_some()).await {
                Ok(SwarmEvent::ConnectionClosed {
                    peer_id,
                    connection_id,
                    ..
                }) => self.conns.closed(peer_id, connection_id),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if let Err(e) = self.io.store.close() {
            tracing::error!("closing the database: {e}");
        }
        tracing::info!("node stopped");
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.sync.on_event(ev, ctx!(self)),
            SwarmEvent::Behaviour(
                ev @ (BehaviourEvent::Autonat(_)
                | BehaviourEvent::Upnp(_)
                | BehaviourEvent::RelayClient(_)
                | BehaviourEvent::Relay(_)
                | BehaviourEvent::Dcutr(_)),
            ) => self.nat.on_event(ev, ctx!(self)),
            other => {
                self.nat.on_swarm_event(&other, ctx!(self));
                self.conns.on_swarm_event(other, ctx!(self));
            }
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

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("peer_id", self.io.swarm.local_peer_id())
            .finish_non_exhaustive()
    }
}
