//! Room messages from the mesh: the check of each unique envelope, the per-neighbour guard, and
//! the batched write that makes a message shown once.

use std::time::Instant;

use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::PeerId;
use meshchat_core::envelope::{self, Kind};
use meshchat_core::guard::Admit;
use meshchat_core::room::Text;
use meshchat_core::{Envelope, MessageId};

use super::{Actor, MAX_BATCH};
use crate::node::{now_ms, Event, MessageView};
use crate::store::StoredMessage;

impl Actor {
    /// Writes the pending batch in one transaction and shows what was new.
    pub(super) fn flush(&mut self) {
        self.pending_since = None;
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let rows: Vec<(&Envelope, &StoredMessage)> = batch.iter().map(|(e, m)| (e, m)).collect();
        match self.store.insert_decoded(&rows, now_ms()) {
            Ok(fresh) => {
                let me = self.key.public();
                for ((_, m), is_new) in batch.into_iter().zip(fresh) {
                    if !is_new {
                        continue;
                    }
                    self.stats.stored += 1;
                    self.emit(Event::Message(MessageView::from_stored(m, &me)));
                }
            }
            Err(e) => {
                tracing::error!("storing {} messages failed: {e}", batch.len());
                self.emit(Event::Warning(format!("could not store messages: {e}")));
            }
        }
    }

    /// Checks a gossiped envelope once and tells gossipsub whether to forward it.
    pub(super) fn on_gossip(
        &mut self,
        source: PeerId,
        msg_id: gossipsub::MessageId,
        data: Vec<u8>,
    ) {
        let gossip = &mut self.swarm.behaviour_mut().gossipsub;
        let id = match <[u8; 32]>::try_from(msg_id.0.as_slice()) {
            Ok(bytes) => MessageId(bytes),
            Err(_) => {
                gossip.report_message_validation_result(
                    &msg_id,
                    &source,
                    MessageAcceptance::Reject,
                );
                return;
            }
        };
        let now = Instant::now();
        // Checked before any decoding: a blocked or over-rate neighbour costs no signature check
        // and no entry in the seen-cache. (Gossipsub's own duplicate filter drops nearly all
        // repeat copies before they get here, so the rate is in practice one of unique messages.)
        match self.guard.admit(source, now) {
            Admit::Yes => {}
            Admit::Blocked => {
                gossip.report_message_validation_result(
                    &msg_id,
                    &source,
                    MessageAcceptance::Reject,
                );
                *self
                    .stats
                    .rejected
                    .entry("blocked_peer".into())
                    .or_default() += 1;
                return;
            }
            Admit::OverRate => {
                // Not the message's fault: not relayed from here, but no strike.
                gossip.report_message_validation_result(
                    &msg_id,
                    &source,
                    MessageAcceptance::Ignore,
                );
                *self.stats.rejected.entry("over_rate".into()).or_default() += 1;
                return;
            }
        }
        if !self.seen.insert(id, now) {
            self.stats.duplicates += 1;
            gossip.report_message_validation_result(&msg_id, &source, MessageAcceptance::Ignore);
            return;
        }
        self.stats.verified += 1;
        // The envelope, then its body: a validly signed envelope with a malformed body is refused
        // too, so it is never relayed.
        let checked = match Envelope::open_cached(data, now_ms(), &mut self.author_keys) {
            Ok(env) => match env.kind() {
                Kind::RoomText => match Text::decode(env.body()) {
                    Ok(text) => Ok((env, text)),
                    Err(e) => Err(("malformed".to_owned(), e.to_string(), true)),
                },
            },
            Err(e) => Err((reject_reason(&e), e.to_string(), is_strike(&e))),
        };
        match checked {
            Ok((env, text)) => {
                gossip.report_message_validation_result(
                    &msg_id,
                    &source,
                    MessageAcceptance::Accept,
                );
                self.stats.accepted += 1;
                if self.rooms.iter().any(|r| r == env.target()) {
                    let stored = StoredMessage::new(&env, text);
                    self.pending.push((env, stored));
                    self.pending_since.get_or_insert_with(Instant::now);
                    if self.pending.len() >= MAX_BATCH {
                        self.flush();
                    }
                }
            }
            Err((reason, detail, strike)) => {
                gossip.report_message_validation_result(
                    &msg_id,
                    &source,
                    MessageAcceptance::Reject,
                );
                tracing::debug!(%source, "rejected envelope: {detail}");
                *self.stats.rejected.entry(reason).or_default() += 1;
                if strike && self.guard.strike(source, now) {
                    self.block(source);
                }
            }
        }
    }

    /// Closes every connection to `peer` and refuses new ones until the guard lifts the block.
    fn block(&mut self, peer: PeerId) {
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        let limits = self.guard.limits();
        let (strikes, minutes) = (limits.strike_limit, limits.block_time.as_secs() / 60);
        tracing::warn!(%peer, "blocked for {minutes} min: sent {strikes} envelopes no honest node forwards");
        self.emit(Event::Warning(format!(
            "blocked peer {peer} for {minutes} min: it sent {strikes} forged or malformed envelopes"
        )));
    }
}

fn reject_reason(e: &meshchat_core::envelope::Error) -> String {
    use meshchat_core::envelope::Error as E;
    match e {
        E::TooLarge(_) => "too_large",
        E::BadSignature | E::BadAuthor => "bad_signature",
        E::FromFuture(_) => "from_future",
        _ => "malformed",
    }
    .to_owned()
}

/// Whether an envelope refused for `e` proves its sender misbehaves. Every meshchat node checks
/// envelopes the same way before relaying them, so a bad signature or malformed bytes never come
/// from an honest relay. A timestamp ahead of our clock (the relay's clock may be ahead too) or a
/// version or kind we do not know (a newer node) may, so they cost no strike.
fn is_strike(e: &envelope::Error) -> bool {
    use envelope::Error as E;
    !matches!(e, E::FromFuture(_) | E::BadVersion(_) | E::UnknownKind(_))
}
