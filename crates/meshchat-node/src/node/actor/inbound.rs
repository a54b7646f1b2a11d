//! The batched write that makes a room message shown once, and blocking a neighbour (shared by
//! the broadcast trees and history sync).

use std::time::Instant;

use libp2p::PeerId;
use meshchat_core::inbound::Reason;
use meshchat_core::Envelope;

use super::{Actor, MAX_BATCH};
use crate::node::{now_ms, Event, MessageView};
use crate::store::StoredMessage;

impl Actor {
    /// Writes the pending batch in one transaction and shows what was new (a failure is
    /// reported; see [`Actor::try_flush`]).
    pub(super) fn flush(&mut self) {
        let _ = self.try_flush();
    }

    /// Writes the pending batch in one transaction and shows what was new in joined rooms.
    ///
    /// **The database, not memory, decides "shown once"**: only rows whose insert was new become
    /// events. On a failed write (disk full, I/O error) nothing of the batch is stored: the user
    /// is warned, and the ids are forgotten by the seen-cache so the messages are taken again
    /// when they come back, by history sync at the latest (the peers still hold them).
    pub(super) fn try_flush(&mut self) -> Result<(), crate::store::Error> {
        self.pending_since = None;
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let rows: Vec<(&Envelope, &StoredMessage)> = batch.iter().map(|(e, m)| (e, m)).collect();
        match self.store.insert_decoded(&rows, now_ms()) {
            Ok(fresh) => {
                let me = self.key.public();
                for ((env, mut m), seq) in batch.into_iter().zip(fresh) {
                    let Some(seq) = seq else {
                        continue;
                    };
                    m.seq = seq;
                    self.stats.stored += 1;
                    self.sync.added(m.timestamp_ms, m.id);
                    if m.synced {
                        self.stats.synced += 1;
                    }
                    if self.rooms.contains(&m.room) {
                        self.emit(Event::Message(MessageView::from_stored(m, &me)));
                    } else {
                        self.sync.relayed(env.as_bytes().len());
                    }
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!("storing {} messages failed: {e}", batch.len());
                self.stats.store_failures += 1;
                for (env, _) in &batch {
                    self.seen.remove(&env.id());
                }
                self.emit(Event::Warning(format!(
                    "could not store {} messages ({e}); they will be fetched again from peers",
                    batch.len()
                )));
                Err(e)
            }
        }
    }

    /// Adds a checked room envelope to the pending batch (written when the loop is idle, when
    /// the batch is full, or after [`super::FLUSH_DELAY`]).
    pub(super) fn queue_for_store(&mut self, env: Envelope, stored: StoredMessage) {
        self.pending.push((env, stored));
        self.pending_since.get_or_insert_with(Instant::now);
        if self.pending.len() >= MAX_BATCH {
            self.flush();
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
