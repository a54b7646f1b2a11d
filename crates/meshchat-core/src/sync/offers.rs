//! Offers: a node that took something new by sync tells its neighbours at once, without pushing
//! it to them.
//!
//! Sync is pull only: a round teaches its initiator the difference, and each node fetches only
//! what it lacks. So a node that took envelopes new to it had no way to make its other
//! neighbours fetch them before their next periodic round: across a healed partition, a minute
//! per hop (measured on a 6-node line: 131 s). An Offer ([`wire::Request::Offer`]) names the ids;
//! the receiver fetches those it lacks with an ordinary Fetch, so it still receives only what it
//! asked for, verified as any fetched envelope. Past [`MAX_OFFER`] ids the offer names none and
//! asks the receiver to start a round instead: a round's cost grows with the difference, a list's
//! would not stay bounded.
//!
//! A node offers (the node decides; this module paces and bounds):
//! - the envelopes it took by sync that were new to it, to every neighbour but the one it took
//!   them from;
//! - the `have` of a round it started (ids the peer lacks), to that peer.
//!
//! The cascade stops where nothing is new: a neighbour that holds everything offered fetches
//! nothing and offers nothing on. Each node takes each envelope once, so each offers it once to
//! each neighbour: the cost of a heal is one offered id (32 bytes) per link and direction and
//! healed envelope, plus one fetch of it per node that lacked it.
//!
//! Why not push what a round brought on the broadcast trees: a node's tree push reaches nodes
//! that hold the envelope already, and a node that forgot it in its seen-cache checks it again
//! (a signature check at every node of the mesh for every old message a node caught up on), and
//! the trees' per-author rate (10 a second, burst 300) drops a large heal after its burst anyway.
//! An offer costs 32 bytes where the envelope is held already, and nothing beyond that neighbour.
//!
//! # Bounds
//!
//! - Sending: at most one offer in flight to each neighbour, and at least [`OFFER_GAP`] between
//!   two; ids learnt meanwhile gather into the next (without repeats, at most [`MAX_OFFER`], then
//!   a request for a round instead). Outboxes are kept for at most `max_peers` neighbours.
//! - Taking: [`OFFER_RATE`] offers per neighbour (a token bucket); beyond it an offer is refused
//!   as busy, which is no strike: the sender keeps what it offered and offers it again after
//!   [`BUSY_BACKOFF`]. A sender pacing at [`OFFER_GAP`] stays within the rate: the burst absorbs
//!   offers that network delays bunch together (property-tested with delays up to 1.5 s).

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::wire::MAX_OFFER;
use crate::envelope::MessageId;
use crate::rate::{Buckets, Rate};

/// Least time between two offers to one neighbour: what is learnt meanwhile goes in one offer.
/// Short next to a round's cost, long enough that a node catching up on many batches offers a
/// neighbour a few times a second, not once per batch.
pub const OFFER_GAP: Duration = Duration::from_millis(250);
/// How long a sender waits after an offer was refused as busy before offering it again.
pub const BUSY_BACKOFF: Duration = Duration::from_secs(1);
/// Offers a node takes from one neighbour: the sender's pace (one per [`OFFER_GAP`]) with a
/// burst for offers that network delays bunch together.
pub const OFFER_RATE: Rate = Rate::new(4, 8);

/// Offers to neighbours (sending) and the bound on offers from them (taking), generic over the
/// peer id so tests can use `u32`. Time is passed in.
///
/// Sending: [`Offers::offer`] or [`Offers::reconcile`] gather what to offer a peer; the node
/// sends what [`Offers::due`] returns (each marked in flight), reports the answer with
/// [`Offers::noted`] or [`Offers::busy`], and calls `due` again at [`Offers::wake`].
/// Taking: [`Offers::take`] for each offer a peer makes.
#[derive(Debug)]
pub struct Offers<P> {
    /// Ordered, so offers due at once go out in the same order on every run (the simulator is
    /// deterministic).
    out: BTreeMap<P, Outbox>,
    taken: Buckets<P>,
    max_peers: usize,
}

/// What is to be offered to one neighbour.
#[derive(Debug, Default)]
struct Outbox {
    /// Ids to offer, in the order learnt, no repeats, at most [`MAX_OFFER`].
    ids: Vec<MessageId>,
    listed: HashSet<MessageId>,
    /// More than an offer lists were learnt, or the peer is asked to reconcile: the next offer
    /// names no ids.
    reconcile: bool,
    /// An offer is awaiting its answer.
    in_flight: bool,
    /// No offer before this (the gap after the last one, or the backoff after a refusal).
    not_before: Option<Instant>,
}

impl Outbox {
    fn has_work(&self) -> bool {
        self.reconcile || !self.ids.is_empty()
    }

    fn add(&mut self, id: MessageId) {
        if self.reconcile || !self.listed.insert(id) {
            return;
        }
        if self.ids.len() < MAX_OFFER {
            self.ids.push(id);
        } else {
            self.ask_round();
        }
    }

    fn ask_round(&mut self) {
        self.reconcile = true;
        self.ids = Vec::new();
        self.listed = HashSet::new();
    }
}

impl<P: Eq + Hash + Ord + Copy> Offers<P> {
    /// Offers to and from at most `max_peers` neighbours are tracked (the node passes its
    /// connection limit); beyond that, new outboxes are not opened.
    ///
    /// # Panics
    /// If `max_peers` is zero.
    pub fn new(max_peers: usize) -> Self {
        Self {
            out: BTreeMap::new(),
            taken: Buckets::new(OFFER_RATE, max_peers),
            max_peers,
        }
    }

    fn outbox(&mut self, peer: P) -> Option<&mut Outbox> {
        if !self.out.contains_key(&peer) && self.out.len() >= self.max_peers {
            return None;
        }
        Some(self.out.entry(peer).or_default())
    }

    /// `ids` are held here and `peer` may lack them: offer them. False if no outbox was free
    /// (the peer's periodic round finds them).
    pub fn offer(&mut self, peer: P, ids: impl IntoIterator<Item = MessageId>) -> bool {
        let Some(outbox) = self.outbox(peer) else {
            return false;
        };
        for id in ids {
            outbox.add(id);
        }
        true
    }

    /// Ask `peer` to start a round with us (we hold more than an offer lists).
    pub fn reconcile(&mut self, peer: P) -> bool {
        let Some(outbox) = self.outbox(peer) else {
            return false;
        };
        outbox.ask_round();
        true
    }

    /// The offers to send now, each marked in flight: `(peer, ids)`, no ids meaning "start a
    /// round with me".
    pub fn due(&mut self, now: Instant) -> Vec<(P, Vec<MessageId>)> {
        let mut out = Vec::new();
        for (peer, b) in &mut self.out {
            if b.in_flight || !b.has_work() || b.not_before.is_some_and(|t| now < t) {
                continue;
            }
            let ids = if b.reconcile {
                Vec::new()
            } else {
                std::mem::take(&mut b.ids)
            };
            b.reconcile = false;
            b.listed = HashSet::new();
            b.in_flight = true;
            b.not_before = Some(now + OFFER_GAP);
            out.push((*peer, ids));
        }
        out
    }

    /// When [`Offers::due`] next has something to send (`None`: nothing is waiting, or only
    /// for answers).
    pub fn wake(&self) -> Option<Instant> {
        self.out
            .values()
            .filter(|b| !b.in_flight && b.has_work())
            .filter_map(|b| b.not_before)
            .min()
    }

    /// `peer` answered the offer in flight (or it failed: what it named is left to rounds).
    pub fn noted(&mut self, peer: P) {
        if let Some(b) = self.out.get_mut(&peer) {
            b.in_flight = false;
        }
    }

    /// `peer` refused the offer in flight as busy: what it named (`offered`; none: a request for
    /// a round) is offered again after [`BUSY_BACKOFF`].
    pub fn busy(&mut self, peer: P, offered: Vec<MessageId>, now: Instant) {
        let Some(b) = self.out.get_mut(&peer) else {
            return;
        };
        b.in_flight = false;
        if offered.is_empty() {
            b.ask_round();
        } else {
            for id in offered {
                b.add(id);
            }
        }
        b.not_before = Some(b.not_before.unwrap_or(now).max(now + BUSY_BACKOFF));
    }

    /// `peer` disconnected: nothing more is offered to it.
    pub fn forget(&mut self, peer: &P) {
        self.out.remove(peer);
    }

    /// `peer` made an offer: true if it is within [`OFFER_RATE`] (a token is spent), false if
    /// it is to be refused as busy.
    pub fn take(&mut self, peer: P, now: Instant) -> bool {
        self.taken.take(peer, 1.0, now)
    }

    /// Neighbours with an outbox (at most `max_peers`).
    pub fn outboxes(&self) -> usize {
        self.out.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u32) -> MessageId {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        MessageId(b)
    }

    #[test]
    fn an_offer_goes_at_once_and_the_next_gathers_until_the_answer_and_the_gap() {
        let t0 = Instant::now();
        let mut o = Offers::<u32>::new(8);
        assert!(o.offer(1, [id(1), id(2), id(1)]));
        assert_eq!(o.due(t0), vec![(1, vec![id(1), id(2)])]);
        // Learnt while the first is in flight: gathered, not sent.
        o.offer(1, [id(3)]);
        o.offer(1, [id(4), id(3)]);
        assert!(o.due(t0).is_empty());
        assert_eq!(o.wake(), None, "waiting for the answer, not for a time");
        o.noted(1);
        assert_eq!(o.wake(), Some(t0 + OFFER_GAP));
        assert!(o.due(t0 + OFFER_GAP / 2).is_empty());
        assert_eq!(o.due(t0 + OFFER_GAP), vec![(1, vec![id(3), id(4)])]);
        o.noted(1);
        assert_eq!(o.wake(), None, "nothing left");
    }

    #[test]
    fn past_one_offers_worth_the_peer_is_asked_for_a_round() {
        let t0 = Instant::now();
        let mut o = Offers::<u32>::new(8);
        o.offer(1, (0..MAX_OFFER as u32).map(id));
        o.offer(2, (0..=MAX_OFFER as u32).map(id));
        let mut due = o.due(t0);
        due.sort();
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].1.len(), MAX_OFFER);
        assert_eq!(due[1], (2, Vec::new()));
        o.noted(1);
        o.reconcile(1);
        o.offer(1, [id(7)]);
        assert_eq!(o.due(t0 + OFFER_GAP), vec![(1, Vec::new())]);
    }

    #[test]
    fn a_busy_offer_is_made_again_after_the_backoff() {
        let t0 = Instant::now();
        let mut o = Offers::<u32>::new(8);
        o.offer(1, [id(1)]);
        let sent = o.due(t0).remove(0).1;
        o.offer(1, [id(2), id(1)]);
        o.busy(1, sent, t0);
        assert_eq!(o.wake(), Some(t0 + BUSY_BACKOFF));
        assert!(o.due(t0 + OFFER_GAP).is_empty());
        let again = o.due(t0 + BUSY_BACKOFF).remove(0).1;
        assert_eq!(again.len(), 2);
        assert!(again.contains(&id(1)) && again.contains(&id(2)));
        // A refused request for a round stays one.
        o.busy(1, Vec::new(), t0 + BUSY_BACKOFF);
        assert_eq!(o.due(t0 + 3 * BUSY_BACKOFF), vec![(1, Vec::new())]);
    }

    #[test]
    fn outboxes_are_bounded_and_forgotten() {
        let mut o = Offers::<u32>::new(2);
        assert!(o.offer(1, [id(1)]));
        assert!(o.reconcile(2));
        assert!(!o.offer(3, [id(1)]));
        assert_eq!(o.outboxes(), 2);
        o.forget(&1);
        assert!(o.offer(3, [id(1)]));
        assert_eq!(o.outboxes(), 2);
    }

    #[test]
    fn taking_is_bounded_per_peer() {
        let t0 = Instant::now();
        let mut o = Offers::<u32>::new(8);
        let burst = OFFER_RATE.burst as usize;
        assert_eq!((0..20).filter(|_| o.take(1, t0)).count(), burst);
        // Another peer has its own bucket; a second later, the first has four more.
        assert!(o.take(2, t0));
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            (0..20).filter(|_| o.take(1, later)).count(),
            OFFER_RATE.per_sec as usize
        );
    }

    proptest! {
        /// An honest sender is never refused: whenever it learns something, and whatever the
        /// network delays (up to 1.5 s each way), the offers it paces at `OFFER_GAP` stay
        /// within the receiver's rate.
        #[test]
        fn a_paced_sender_is_never_refused(
            learnt in proptest::collection::vec(0u64..200, 1..300),
            delays in proptest::collection::vec(0u64..1500, 1..50),
        ) {
            let t0 = Instant::now();
            let ms = |n: u64| t0 + Duration::from_millis(n);
            // When the sender learns something new, in ms from the start.
            let times: Vec<u64> = learnt
                .iter()
                .scan(0, |t, gap| {
                    *t += gap;
                    Some(*t)
                })
                .collect();
            let mut sender = Offers::<u32>::new(4);
            let mut receiver = Offers::<u32>::new(4);
            let (mut learnt, mut sent, mut answer_at) = (0, 0, None);
            for _ in 0..10 * times.len() + 10 {
                let wake = sender
                    .wake()
                    .map(|w| w.saturating_duration_since(t0).as_millis() as u64);
                let Some(now) = [times.get(learnt).copied(), answer_at, wake]
                    .into_iter()
                    .flatten()
                    .min()
                else {
                    break;
                };
                if answer_at == Some(now) {
                    sender.noted(7);
                    answer_at = None;
                }
                while times.get(learnt) == Some(&now) {
                    sender.offer(7, [id(learnt as u32)]);
                    learnt += 1;
                }
                for (peer, _) in sender.due(ms(now)) {
                    let delay = delays[sent % delays.len()];
                    sent += 1;
                    prop_assert!(receiver.take(peer, ms(now + delay)), "refused at {} ms", now + delay);
                    answer_at = Some(now + 2 * delay);
                }
            }
            prop_assert_eq!(learnt, times.len());
            prop_assert!(sender.wake().is_none() && answer_at.is_none(), "all offered");
        }
    }
}
