//! The one way in: every envelope a neighbour hands over, whichever path brought it (the
//! broadcast trees, a sync fetch, a routed frame), is checked here once and handed on by kind;
//! room messages are written in batches, and the database decides what is shown once.
//!
//! The order of checks: a copy of an id taken already is a duplicate (no check); on the trees,
//! its author's limits ([`meshchat_core::authors`]) are looked at before the signature check
//! and spent after it; then the one signature and body check ([`meshchat_core::inbound::check`]).
//! A valid room message joins the pending batch; a profile, a tracker message or a flooded DM
//! becomes a [`Note`] for its handler. A refusal is counted once, in `Stats::rejected`, and is
//! a strike where the sender should have known better.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use meshchat_core::authors::{Authors, Limited};
use meshchat_core::clock::{self, Clock, Notice};
use meshchat_core::dedup::SeenCache;
use meshchat_core::inbound::{self, Checked, Reason};
use meshchat_core::{envelope, Envelope, KeyCache, MessageId};

use super::context::{Io, Key, Note, Notes};
use super::disk::Write;
use crate::node::{now_ms, Event};
use crate::store::{Sealed, StoredMessage};

/// Most envelopes in one database transaction.
const MAX_BATCH: usize = 512;
/// Longest an envelope waits for its batch to be written (and shown).
pub(super) const FLUSH_DELAY: Duration = Duration::from_millis(10);
/// Decoded author keys kept (about 250 bytes each with the map: about 500 KiB when full).
const AUTHOR_KEY_CACHE: usize = 2048;
/// Ids remembered to drop duplicate copies without decoding them.
const SEEN_CAPACITY: usize = 200_000;
const SEEN_TTL: Duration = Duration::from_secs(30 * 60);
/// A neighbour handing over envelopes dated ahead of our clock is named at most this often.
const FUTURE_TELL_EVERY: Duration = Duration::from_secs(10 * 60);
/// Neighbours remembered as named for envelopes from the future.
const FUTURE_WARNINGS: usize = 256;

/// Which path brought an envelope: what it may be, and what its sender answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// Pushed by this neighbour on the broadcast trees (its first copy here).
    Trees(PeerId),
    /// Fetched from this neighbour by history sync (we asked for it).
    Sync(PeerId),
    /// Routed to us; relays do not check what they forward, so a bad one is no neighbour's
    /// fault.
    Routed,
}

/// What became of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// New here and valid: taken (stored, or handed to its protocol).
    Taken { room: bool },
    /// Taken before, by another path: valid, not checked again.
    Known,
    /// Not taken now, through no fault of the sender (an author over its limits, a kind this
    /// path does not carry); it may come again.
    Dropped,
    /// Refused; a strike when [`Reason::is_strike`] (counted here).
    Refused(Reason),
}

impl Verdict {
    /// Whether the envelope may be relayed on.
    pub(super) fn valid(self) -> bool {
        matches!(self, Verdict::Taken { .. } | Verdict::Known)
    }
}

/// The inbound pipeline's state.
pub(super) struct Inbound {
    /// Ids taken (checked, or ours): a later copy is a duplicate.
    pub(super) seen: SeenCache<MessageId>,
    /// Decoded keys of recent authors.
    author_keys: KeyCache,
    /// Per-author rates and new-author introductions, by author key.
    pub(super) authors: Authors<PeerId, Key>,
    /// Our clock against the authors heard fresh on the trees.
    clock: Clock<Key>,
    /// When each neighbour was last named for handing over envelopes dated ahead of our clock
    /// (at most [`FUTURE_WARNINGS`] remembered).
    future_told: HashMap<PeerId, Instant>,
    /// Verified room envelopes to store and show, each with its decoded form.
    pending: Vec<(Envelope, StoredMessage)>,
    pending_since: Option<Instant>,
}

impl Inbound {
    pub(super) fn new(authors: Authors<PeerId, Key>) -> Self {
        Self {
            seen: SeenCache::new(SEEN_CAPACITY, SEEN_TTL),
            author_keys: KeyCache::new(AUTHOR_KEY_CACHE),
            authors,
            clock: Clock::default(),
            future_told: HashMap::new(),
            pending: Vec::new(),
            pending_since: None,
        }
    }

    /// When the pending batch is due to be written.
    pub(super) fn flush_due(&self) -> Option<Instant> {
        self.pending_since.map(|t| t + FLUSH_DELAY)
    }

    /// Whether checked messages wait to be written.
    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The one check of an envelope's first copy here: that `payload` is the envelope `id`
    /// names, and a valid one (signature, limits, body). What is valid is handed on by kind.
    pub(super) fn accept(
        &mut self,
        io: &mut Io,
        notes: &mut Notes,
        via: Via,
        id: MessageId,
        payload: &[u8],
        now: Instant,
    ) -> Verdict {
        let from = match via {
            Via::Trees(p) | Via::Sync(p) => Some(p),
            Via::Routed => None,
        };
        if self.seen.contains(&id) {
            // Already taken another way: valid, stored, shown; relayed on only if the payload is
            // that message and not something else under its id.
            if matches!(via, Via::Trees(_)) && MessageId::of(payload) != id {
                return self.refused(io, from, Reason::Malformed, now);
            }
            io.stats.duplicates += 1;
            return Verdict::Known;
        }
        // On the trees, the author's limits come before the signature check: over them, the
        // envelope costs no verification and is left to a later push or to history sync.
        let author = envelope::peek_author(payload);
        if let (Via::Trees(p), Some(a)) = (via, &author) {
            if let Err(limited) = self.authors.check(p, a, now) {
                io.stats.rejected.count(match limited {
                    Limited::AuthorOverRate => Reason::AuthorOverRate,
                    Limited::NewAuthorOverRate => Reason::NewAuthorOverRate,
                });
                return Verdict::Dropped;
            }
        }
        self.seen.insert(id, now);
        let checked = match inbound::check(payload.to_vec(), now_ms(), &mut self.author_keys) {
            Ok(checked) if checked.envelope().id() != id => {
                // A valid envelope under another message's id: forged by the neighbour itself.
                self.seen.remove(&id);
                io.stats.verified += 1;
                return self.refused(io, from, Reason::Malformed, now);
            }
            Ok(checked) => checked,
            Err(refused) => {
                // Forgotten, so the real message under this id is taken if it comes.
                self.seen.remove(&id);
                if refused.signature_checked() {
                    io.stats.verified += 1;
                }
                tracing::debug!(?via, "rejected envelope: {refused}");
                if let inbound::Refused::Envelope(envelope::Error::FromFuture(ahead_ms)) = refused {
                    if let Via::Trees(p) = via {
                        self.dated_ahead(io, p, author, ahead_ms, now);
                    }
                }
                return self.refused(io, from, refused.reason(), now);
            }
        };
        // What each path carries: the trees everything, sync the kinds nodes keep, routes
        // only election messages.
        let carried = match (&checked, via) {
            (_, Via::Trees(_)) => true,
            (Checked::Room(..) | Checked::Profile(..) | Checked::Private(_), Via::Sync(_)) => true,
            (Checked::Tracker(_), Via::Routed) => true,
            (_, Via::Sync(_) | Via::Routed) => false,
        };
        if !carried {
            io.stats.verified += 1;
            return Verdict::Dropped;
        }
        let author = *checked.envelope().author().as_bytes();
        match via {
            Via::Trees(p) => {
                self.authors.accepted(Some(p), author, now);
                self.clock_sample(io, &author, checked.envelope().timestamp_ms(), now);
            }
            // Known from now on: its later messages on the trees need no introduction.
            Via::Sync(_) => self.authors.know(author, now),
            Via::Routed => {}
        }
        // Profiles and tracker messages are counted apart, so `verified` and `accepted` stay
        // the counts of messages.
        match &checked {
            Checked::Profile(..) => io.stats.profiles_checked += 1,
            Checked::Tracker(..) => io.stats.tracker_checked += 1,
            Checked::Room(..) | Checked::Private(_) | Checked::Other(_) => {
                io.stats.verified += 1;
                io.stats.accepted += 1;
            }
        }
        if let Some(p) = from {
            notes.push(Note::Useful(p));
        }
        let room = matches!(checked, Checked::Room(..) | Checked::Private(_));
        match checked {
            Checked::Room(env, text) => {
                if env.kind() == meshchat_core::envelope::Kind::File {
                    if let Ok(offer) = meshchat_core::transfer::wire::Offer::decode(env.body()) {
                        notes.push(Note::FileOffer {
                            env: env.clone(),
                            offer: Box::new(offer),
                            dm: false,
                        });
                    }
                }
                let mut stored = StoredMessage::new(&env, text);
                stored.synced = matches!(via, Via::Sync(_));
                self.queue_for_store(io, notes, env, stored);
            }
            Checked::Profile(env, profile) => notes.push(Note::Profile {
                env,
                profile,
                // New here by sync, so maybe new to the neighbours that synced with us before
                // we had it: on the trees it reaches them now, not at their next round (a
                // minute per hop; found by the lab's dm-profiles scenario).
                republish: matches!(via, Via::Sync(_)),
            }),
            Checked::Tracker(env) => notes.push(Note::Tracker { env }),
            Checked::Private(env) => notes.push(Note::Private {
                env,
                from,
                synced: matches!(via, Via::Sync(_)),
            }),
            Checked::Other(_) => io.stats.relayed_unknown += 1,
        }
        Verdict::Taken { room }
    }

    /// Counts a refusal and gives its sender a strike if it is one.
    fn refused(&mut self, io: &mut Io, from: Option<PeerId>, r: Reason, now: Instant) -> Verdict {
        match from {
            Some(p) => io.refuse(p, r, now),
            None => io.stats.rejected.count(r),
        }
        Verdict::Refused(r)
    }

    /// Our own envelope (or one we push on): taken already.
    pub(super) fn mark_seen(&mut self, id: MessageId, now: Instant) -> bool {
        self.seen.insert(id, now)
    }

    /// A fresh envelope by `author` dated `timestamp_ms`: a sample of our clock's offset from
    /// the mesh's; tells the user when it says our clock is off (or fixed).
    fn clock_sample(&mut self, io: &mut Io, author: &Key, timestamp_ms: u64, now: Instant) {
        if *author == io.me() {
            return;
        }
        self.clock.sample(*author, timestamp_ms, now_ms(), now);
        match self.clock.poll(now) {
            Some(Notice::Off { offset_ms, authors }) => {
                tracing::warn!(offset_ms, authors, "this node's clock is off its peers'");
                io.emit(Event::Clock {
                    offset_ms,
                    authors,
                    off: true,
                });
            }
            Some(Notice::Agrees { authors }) => io.emit(Event::Clock {
                offset_ms: self.clock.offset(now).map_or(0, |(o, _)| o),
                authors,
                off: false,
            }),
            None => {}
        }
    }

    /// `peer` handed over an envelope dated `ahead_ms` ahead of our clock (refused beyond
    /// [`envelope::MAX_CLOCK_SKEW_MS`]): counted as a clock sample, and the user is told which
    /// neighbour and how far (at most every [`FUTURE_TELL_EVERY`] per neighbour).
    fn dated_ahead(
        &mut self,
        io: &mut Io,
        peer: PeerId,
        author: Option<Key>,
        ahead_ms: u64,
        now: Instant,
    ) {
        if let Some(a) = author {
            self.clock_sample(io, &a, now_ms().saturating_add(ahead_ms), now);
        }
        let told = &mut self.future_told;
        if told
            .get(&peer)
            .is_some_and(|t| now.saturating_duration_since(*t) < FUTURE_TELL_EVERY)
        {
            return;
        }
        if !told.contains_key(&peer) && told.len() >= FUTURE_WARNINGS {
            told.retain(|_, t| now.saturating_duration_since(*t) < FUTURE_TELL_EVERY);
            if told.len() >= FUTURE_WARNINGS {
                return;
            }
        }
        told.insert(peer, now);
        let ahead = clock::describe(i64::try_from(ahead_ms).unwrap_or(i64::MAX));
        io.emit(Event::Warning(format!(
            "refused messages from {peer} dated {ahead} of this computer's clock (more than {} min \
             ahead is refused): its author's clock, or this one, is wrong",
            envelope::MAX_CLOCK_SKEW_MS / 60_000
        )));
    }

    /// Writes the pending batch in one transaction and shows what was new in joined rooms.
    ///
    /// **The database, not memory, decides "shown once"**: only rows whose insert was new become
    /// events. On a failed write (disk full, I/O error) nothing of the batch is stored: the user
    /// is warned, and the ids are forgotten by the seen-cache so the messages are taken again
    /// when they come back, by history sync at the latest (the peers still hold them).
    pub(super) fn flush(
        &mut self,
        io: &mut Io,
        notes: &mut Notes,
    ) -> Result<(), crate::store::Error> {
        self.pending_since = None;
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let rows: Vec<(&Envelope, &StoredMessage)> = batch.iter().map(|(e, m)| (e, m)).collect();
        match io.store.insert_decoded(&rows, now_ms()) {
            Ok(fresh) => {
                if io.write_worked() {
                    // What could not be stored meanwhile is fetched now, not at the next round.
                    notes.push(Note::SyncAll);
                }
                for ((env, mut m), seq) in batch.into_iter().zip(fresh) {
                    let Some(seq) = seq else {
                        continue;
                    };
                    m.seq = seq;
                    io.stats.stored += 1;
                    notes.push(Note::Stored {
                        timestamp_ms: m.timestamp_ms,
                        id: m.id,
                    });
                    if m.synced {
                        io.stats.synced += 1;
                    }
                    if !io.rooms.contains(&m.room) {
                        notes.push(Note::Relayed(env.as_bytes().len()));
                    } else if matches!(m.sealed, Sealed::No | Sealed::Read) {
                        let view = io.view(m);
                        io.emit(Event::Message(view));
                    }
                }
                Ok(())
            }
            Err(e) => {
                for (env, _) in &batch {
                    self.seen.remove(&env.id());
                }
                io.write_failed(Write::Messages(batch.len()), &e);
                Err(e)
            }
        }
    }

    /// Adds a checked room envelope to the pending batch (written when the loop is idle, when
    /// the batch is full, or after [`FLUSH_DELAY`]).
    pub(super) fn queue_for_store(
        &mut self,
        io: &mut Io,
        notes: &mut Notes,
        env: Envelope,
        stored: StoredMessage,
    ) {
        self.pending.push((env, stored));
        self.pending_since.get_or_insert_with(Instant::now);
        if self.pending.len() >= MAX_BATCH {
            let _ = self.flush(io, notes);
        }
    }

    /// Stores our own message now, with whatever waits: on disk before it leaves, so a message
    /// the user was told is sent survives a crash (or was never sent).
    pub(super) fn store_own(
        &mut self,
        io: &mut Io,
        notes: &mut Notes,
        env: Envelope,
        stored: StoredMessage,
    ) -> Result<(), crate::store::Error> {
        let id = env.id();
        self.pending.push((env, stored));
        self.flush(io, notes)?;
        self.seen.insert(id, Instant::now());
        Ok(())
    }

    /// Ids taken are remembered for [`SEEN_TTL`].
    pub(super) fn expire(&mut self, now: Instant) {
        self.seen.expire(now);
    }
}
