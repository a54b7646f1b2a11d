//! What the loop lends a handler: the node's I/O ([`Io`]: swarm, store, keys, counters, the
//! per-neighbour guard, the event queue), the one way in for envelopes ([`Inbound`]), and the
//! queue of [`Note`]s, by which a handler asks something of another protocol. Handlers never
//! call each other; the loop (`actor.rs`) hands each note to the handler that owns it.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use libp2p::{Multiaddr, PeerId, Swarm};
use meshchat_core::dm::{self, Profile};
use meshchat_core::guard::{Admit, Guard};
use meshchat_core::inbound::Reason;
use meshchat_core::{Envelope, Keypair, MessageId};
use tokio::sync::mpsc;

use super::disk::{Disk, Write};
use super::inbound::Inbound;
use crate::behaviour::handshakes::Handshakes;
use crate::behaviour::Behaviour;
use crate::node::{Error, Event, MessageView, PrivateKind, Stats};
use crate::store::Store;
use crate::store::StoredMessage;
use crate::Config;

/// A node's routing id: its Ed25519 public key.
pub(super) type Key = [u8; 32];

/// Notes a turn of the loop may queue: each is handed on before the turn ends, and each handler
/// adds a bounded number per input, so the queue stays short (it is checked in debug builds).
const MAX_NOTES: usize = 1 << 16;

/// The node's I/O and shared services, owned by no protocol.
pub(super) struct Io {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) store: Store,
    /// Our signing key (the same key is the libp2p identity).
    pub(super) key: Keypair,
    pub(super) config: Config,
    pub(super) nick: String,
    /// Joined rooms, in join order: public rooms by name, private ones by target (room id).
    pub(super) rooms: Vec<String>,
    /// The private rooms we are in: target → (name here, kind). Owned by the private rooms'
    /// handler, read by every view of a message.
    pub(super) private: HashMap<String, (String, PrivateKind)>,
    /// Whether the key was made at this start.
    pub(super) new_identity: bool,
    pub(super) listen_addrs: Vec<Multiaddr>,
    pub(super) stats: Stats,
    /// Per-neighbour message rate, strikes and blocks, for every protocol.
    pub(super) guard: Guard<PeerId>,
    /// Incoming handshakes' slots (see `behaviour::handshakes`): its counters, for `Stats`.
    pub(super) handshakes: Handshakes,
    events: mpsc::Sender<Event>,
    /// Events dropped since the front-end's queue was last found full (0: none pending).
    lagged: u64,
    /// Whether the database takes writes (one warning per outage, for every write path).
    disk: Disk,
}

impl Io {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        swarm: Swarm<Behaviour>,
        store: Store,
        key: Keypair,
        config: Config,
        nick: String,
        rooms: Vec<String>,
        new_identity: bool,
        handshakes: Handshakes,
        events: mpsc::Sender<Event>,
    ) -> Self {
        let guard = Guard::new(config.guard);
        Self {
            swarm,
            store,
            key,
            config,
            nick,
            rooms,
            private: HashMap::new(),
            new_identity,
            listen_addrs: Vec::new(),
            stats: Stats::default(),
            guard,
            handshakes,
            events,
            lagged: 0,
            disk: Disk::default(),
        }
    }

    /// Our routing id.
    pub(super) fn me(&self) -> Key {
        *self.key.public().as_bytes()
    }

    /// How a stored message shows: a private room's under its name.
    pub(super) fn view(&self, m: StoredMessage) -> MessageView {
        let mut v = MessageView::from_stored(m, &self.key.public());
        if let Some((name, kind)) = self.private.get(&v.room) {
            v.room = name.clone();
            v.private = Some(*kind);
        }
        v
    }

    /// The target of the room a person names: a private room's id, or a public room's name.
    pub(super) fn target_of(&self, room: &str) -> Result<String, Error> {
        let name = room.trim().trim_start_matches('#');
        if let Some((target, _)) = self.private.iter().find(|(_, (n, _))| n == name) {
            return Ok(target.clone());
        }
        Ok(meshchat_core::room::normalize_room(room)?)
    }

    /// The name of a joined room's target.
    pub(super) fn room_name(&self, target: &str) -> String {
        self.private
            .get(target)
            .map_or_else(|| target.to_owned(), |(n, _)| n.clone())
    }

    /// Whether a connection to `peer` stands.
    pub(super) fn connected(&self, peer: &PeerId) -> bool {
        self.swarm.is_connected(peer)
    }

    /// Peers with a connection.
    pub(super) fn connected_count(&self) -> usize {
        self.swarm.connected_peers().count()
    }

    /// Hands an event to the front-end without ever waiting: relaying for the mesh must not stop
    /// because an interface stopped reading (a paused terminal, a script that reads slowly). On a
    /// full queue the event is dropped and counted; the loop sends [`Event::Lagged`] as soon as
    /// there is room. A front-end that went away is not an error either.
    pub(super) fn emit(&mut self, event: Event) {
        if self.lagged > 0 {
            self.lagged += 1;
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(event) {
            self.lagged = 1;
        }
    }

    /// A write to the database failed (a full disk, a failing card): counted, logged, and the
    /// user told once per outage ([`Disk`]); the node goes on relaying either way.
    pub(super) fn write_failed(&mut self, what: Write, error: &crate::store::Error) {
        self.stats.store_failures += 1;
        tracing::debug!("a database write failed ({what:?}): {error}");
        if let Some(warning) = self.disk.failed(what, error, Instant::now()) {
            tracing::warn!("{warning}");
            self.emit(Event::Warning(warning));
        }
    }

    /// A write of messages or DMs worked; true (and the user told) if writes had been failing.
    pub(super) fn write_worked(&mut self) -> bool {
        match self.disk.worked() {
            Some(notice) => {
                tracing::info!("{notice}");
                self.emit(Event::Warning(notice));
                true
            }
            None => false,
        }
    }

    /// Events dropped since the queue was found full (0: none).
    pub(super) fn lagged(&self) -> u64 {
        self.lagged
    }

    /// A second handle on the event queue, so the loop can wait for room without borrowing.
    pub(super) fn events(&self) -> mpsc::Sender<Event> {
        self.events.clone()
    }

    /// The front-end was told it lagged.
    pub(super) fn lag_told(&mut self) {
        self.lagged = 0;
    }

    /// A frame of a neighbour's passes its rate; false if it is dropped (over the rate, blocked,
    /// or flooding, which blocks it). `refused` counts the drop where the caller keeps a count.
    pub(super) fn admit(&mut self, peer: PeerId, now: Instant, refused: fn(&mut Stats)) -> bool {
        match self.guard.admit(peer, now) {
            Admit::Yes => true,
            Admit::OverRate => {
                refused(&mut self.stats);
                self.stats.rejected.count(Reason::OverRate);
                false
            }
            Admit::Blocked => {
                refused(&mut self.stats);
                self.stats.rejected.count(Reason::BlockedPeer);
                false
            }
            Admit::Flooding => {
                refused(&mut self.stats);
                self.stats.rejected.count(Reason::OverRate);
                self.block(peer, Reason::OverRate);
                false
            }
        }
    }

    /// Counts a refusal and gives `peer` a strike if it is one, blocking it at the limit.
    pub(super) fn refuse(&mut self, peer: PeerId, reason: Reason, now: Instant) {
        self.stats.rejected.count(reason);
        if reason.is_strike() && self.guard.strike(peer, now) {
            self.block(peer, reason);
        }
    }

    /// Closes every connection to `peer` and refuses new ones until the guard lifts the block.
    /// `why` is the refusal that tipped the guard: a strike, or [`Reason::OverRate`] for a flood.
    pub(super) fn block(&mut self, peer: PeerId, why: Reason) {
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        let limits = self.guard.limits();
        let minutes = limits.block_time.as_secs() / 60;
        let what = if why == Reason::OverRate {
            format!(
                "it kept sending far over its rate of {} messages a second",
                limits.rate
            )
        } else {
            format!(
                "it sent {} forged or malformed envelopes",
                limits.strike_limit
            )
        };
        tracing::warn!(%peer, "blocked for {minutes} min: {what}");
        self.emit(Event::Warning(format!(
            "blocked peer {peer} for {minutes} min: {what}"
        )));
    }
}

/// What one protocol's handler asks of another; the loop's `route` says who takes each.
#[derive(Debug)]
pub(super) enum Note {
    /// Publish an envelope on the trees (ours, or one worth pushing on): marked seen first.
    Publish { id: MessageId, payload: Vec<u8> },
    /// A checked profile, for the directory; `republish`: on the trees too if it was new here.
    Profile {
        env: Envelope,
        profile: Profile,
        republish: bool,
    },
    /// A checked tracker envelope, flooded on the trees or routed to us.
    Tracker { env: Envelope },
    /// A DM on the flooded path, for the outbox.
    FloodedDm(dm::Dm<Key>),
    /// Send a signed envelope to `to` along our route.
    SendRouted { to: Key, envelope: Envelope },
    /// Reachability of these destinations changed (true: a route exists).
    Reachability(Vec<(Key, bool)>),
    /// Our nick or listen addresses may have changed: registered with the tracker again.
    MeChanged,
    /// Our profile, signed anew and published (first neighbour, a new nick).
    PublishProfile,
    /// Dial `peer` at `addrs` unless connected, or waiting after failed dials (a peer a
    /// roster names again and again: `conns::Conns::dial_if_due`).
    Dial { peer: PeerId, addrs: Vec<Multiaddr> },
    /// `peer` handed over a new valid message.
    Useful(PeerId),
    /// `peer` takes no frames: close its connections and dial it again.
    Stalled(PeerId),
    /// A connection to `peer` stands (sent for each; handlers ignore one for a known peer).
    PeerUp(PeerId),
    /// The last connection to `peer` closed.
    PeerDown(PeerId),
    /// `peer` announced these protocols (identify); `dialed` is the address we dialed it at
    /// when we hold a direct connection we opened ourselves (it is reachable there).
    Identified {
        peer: PeerId,
        protocols: Vec<libp2p::StreamProtocol>,
        dialed: Option<Multiaddr>,
    },
    /// A message was stored (for history sync's item set).
    Stored { timestamp_ms: u64, id: MessageId },
    /// A message of a room we are not in was stored (`usize` bytes of envelope).
    Relayed(usize),
    /// Stored messages were replaced or deleted: sync reads its items anew.
    ItemsChanged,
    /// Joined rooms changed.
    RoomsChanged,
    /// Reconcile with every peer now (a join, or storing works again).
    SyncAll,
    /// A checked file offer: in a room (stored like its texts), or opened from a DM to us
    /// (`dm`).
    FileOffer {
        env: Envelope,
        offer: Box<meshchat_core::transfer::wire::Offer>,
        dm: bool,
    },
    /// A checked envelope of a private room, for the private rooms' handler.
    Private {
        env: Envelope,
        from: Option<PeerId>,
        synced: bool,
    },
    /// An invite to a private room, opened from a DM by `from`.
    Invite {
        invite: Box<meshchat_core::private::Invite>,
        from: Key,
    },
    /// Send a file frame toward `to`: the loop asks the routing table for the next hop and
    /// hands both to the files handler; `origin` says whom a failure concerns.
    FileSend {
        to: Key,
        frame: Vec<u8>,
        origin: super::files::Origin,
    },
}

/// The notes of a turn, handed on in order.
#[derive(Debug, Default)]
pub(super) struct Notes(VecDeque<Note>);

impl Notes {
    pub(super) fn push(&mut self, note: Note) {
        debug_assert!(self.0.len() < MAX_NOTES, "a handler loops on notes");
        self.0.push_back(note);
    }

    pub(super) fn pop(&mut self) -> Option<Note> {
        self.0.pop_front()
    }
}

/// What a handler gets for one input: the node's I/O, the one way in, and the note queue.
pub(super) struct Ctx<'a> {
    pub(super) io: &'a mut Io,
    pub(super) inbound: &'a mut Inbound,
    pub(super) notes: &'a mut Notes,
}

impl Ctx<'_> {
    /// Writes the pending batch of checked messages (see [`Inbound::flush`]).
    pub(super) fn flush(&mut self) {
        let _ = self.inbound.flush(self.io, self.notes);
    }
}
