//! The batched write that makes a room message shown once, and blocking a neighbour (shared by
//! the broadcast trees and history sync).

use std::time::{Duration, Instant};

use libp2p::PeerId;
use meshchat_core::inbound::Reason;
use meshchat_core::Envelope;

use super::{Actor, MAX_BATCH};
use crate::node::{now_ms, Event, MessageView};
use crate::store::StoredMessage;

/// While writes keep failing, the warning is repeated at most this often (a full disk used to
/// print one warning per message: 93 in 6 s).
pub(super) const STORE_WARN_EVERY: Duration = Duration::from_secs(5 * 60);

/// Whether the database takes writes: one warning when writing stops, at most one every
/// [`STORE_WARN_EVERY`] while it lasts, and one when it works again.
#[derive(Debug, Default)]
pub(super) struct StoreHealth {
    /// Since when writes fail, and when the user was last told.
    failing: Option<(Instant, Instant)>,
    /// Messages not stored since the last warning.
    lost_since_warning: u64,
    /// Messages not stored since writes started failing.
    lost: u64,
}

impl StoreHealth {
    /// A write of `n` messages failed with `error`: the warning to show now, if any.
    fn failed(&mut self, n: usize, error: &dyn std::fmt::Display, now: Instant) -> Option<String> {
        self.lost += n as u64;
        self.lost_since_warning += n as u64;
        match &mut self.failing {
            None => {
                self.failing = Some((now, now));
                self.lost_since_warning = 0;
                Some(format!(
                    "could not store {n} messages ({error}); still relaying, and they will be \
                     fetched again from peers once storing works"
                ))
            }
            Some((since, told)) if now.saturating_duration_since(*told) >= STORE_WARN_EVERY => {
                *told = now;
                let lost = std::mem::take(&mut self.lost_since_warning);
                Some(format!(
                    "still cannot store messages ({error}) for {} min: {lost} more not stored",
                    now.saturating_duration_since(*since).as_secs() / 60
                ))
            }
            Some(_) => None,
        }
    }

    /// A write succeeded: the notice to show if writes had been failing.
    fn succeeded(&mut self) -> Option<String> {
        self.failing.take()?;
        self.lost_since_warning = 0;
        let lost = std::mem::take(&mut self.lost);
        Some(format!(
            "storing messages again ({lost} could not be stored meanwhile; they are being \
             fetched again from peers)"
        ))
    }
}

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
                if let Some(notice) = self.store_health.succeeded() {
                    tracing::info!("{notice}");
                    self.emit(Event::Warning(notice));
                    // What could not be stored meanwhile is fetched now, not at the next round.
                    self.sync_all();
                }
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
                tracing::debug!("storing {} messages failed: {e}", batch.len());
                self.stats.store_failures += 1;
                for (env, _) in &batch {
                    self.seen.remove(&env.id());
                }
                if let Some(warning) = self.store_health.failed(batch.len(), &e, Instant::now()) {
                    self.emit(Event::Warning(warning));
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_disk_is_one_warning_then_one_every_few_minutes_then_one_notice() {
        let t0 = Instant::now();
        let mut h = StoreHealth::default();
        let e = "database or disk is full";
        assert!(h.succeeded().is_none(), "nothing to say while all is well");
        let first = h.failed(3, &e, t0).unwrap();
        assert!(
            first.contains("could not store 3 messages") && first.contains(e),
            "{first}"
        );
        for i in 1..100 {
            let at = t0 + Duration::from_millis(60 * i);
            assert!(
                h.failed(1, &e, at).is_none(),
                "one warning, not one per message"
            );
        }
        let again = h.failed(1, &e, t0 + STORE_WARN_EVERY).unwrap();
        assert!(again.contains("100 more not stored"), "{again}");
        let back = h.succeeded().unwrap();
        assert!(
            back.contains("storing messages again (103 could not"),
            "{back}"
        );
        assert!(h.succeeded().is_none());
        // A new failure later is news again.
        assert!(h.failed(1, &e, t0 + 2 * STORE_WARN_EVERY).is_some());
    }
}
