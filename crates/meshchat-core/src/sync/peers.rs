//! The sessions a node has with its peers: one per peer and direction, bounded in number, dropped
//! when idle. Time is passed in; nothing here reads a clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

use super::{Error, Frame, Initiator, ItemSet, Limits, Next, Responder, Step};

/// Per-peer reconciliation sessions, generic over the peer id so tests can use `u32`.
///
/// The node starts a session with [`Peers::start`], passes the peer's replies to
/// [`Peers::on_reply`] and the peer's requests to [`Peers::on_request`], calls [`Peers::expire`]
/// from a timer and [`Peers::forget`] when a peer disconnects. An error whose
/// [`Error::is_strike`] is true is a strike against the peer; either way that session is gone.
#[derive(Debug)]
pub struct Peers<P> {
    limits: Limits,
    /// Sessions we started, with the time of their last frame: at most one per peer, so at most
    /// one of our frames is in flight to each peer.
    outgoing: HashMap<P, (Initiator, Instant)>,
    /// Sessions peers started with us, with the time of their last frame: at most one per peer (a
    /// new `Open` replaces it).
    incoming: HashMap<P, (Responder, Instant)>,
}

impl<P: Eq + Hash + Copy> Peers<P> {
    /// # Panics
    /// If `limits` are invalid (see [`Limits::frame_size`]).
    pub fn new(limits: Limits) -> Self {
        limits.check();
        Self {
            limits,
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Starts a session with `peer` over our `items` from `since_ms` on: the `Open` frame to send.
    /// Refused with [`Error::InFlight`] while a session with `peer` is live, and with
    /// [`Error::Busy`] when [`Limits::max_sessions`] are.
    pub fn start(
        &mut self,
        peer: P,
        items: &ItemSet,
        since_ms: u64,
        now: Instant,
    ) -> Result<Vec<u8>, Error> {
        let timeout = self.limits.session_timeout;
        let live = |at: &Instant| now.saturating_duration_since(*at) < timeout;
        if self.outgoing.get(&peer).is_some_and(|(_, at)| live(at)) {
            return Err(Error::InFlight);
        }
        self.outgoing.remove(&peer);
        if self.outgoing.len() >= self.limits.max_sessions {
            self.outgoing.retain(|_, (_, at)| live(at));
            if self.outgoing.len() >= self.limits.max_sessions {
                return Err(Error::Busy);
            }
        }
        let (session, frame) = Initiator::new(items, since_ms, &self.limits);
        self.outgoing.insert(peer, (session, now));
        Ok(frame)
    }

    /// Handles `peer`'s reply to our session. The session ends unless the step says
    /// [`Next::Send`]; [`Error::NoSession`] if there is none (it ended or expired).
    pub fn on_reply(&mut self, peer: P, frame: &[u8], now: Instant) -> Result<Step, Error> {
        let timeout = self.limits.session_timeout;
        let Some((session, at)) = self.outgoing.get_mut(&peer) else {
            return Err(Error::NoSession);
        };
        if now.saturating_duration_since(*at) >= timeout {
            self.outgoing.remove(&peer);
            return Err(Error::NoSession);
        }
        let step = session.handle(frame);
        match &step {
            Ok(Step {
                next: Next::Send(_),
                ..
            }) => *at = now,
            _ => {
                self.outgoing.remove(&peer);
            }
        }
        step
    }

    /// Answers `peer`'s `Open` or `Query` frame from our `items` (used on `Open` only) and the
    /// start of our window `horizon_ms`. On an error the peer's session is dropped.
    pub fn on_request(
        &mut self,
        peer: P,
        frame: &[u8],
        items: &ItemSet,
        horizon_ms: u64,
        now: Instant,
    ) -> Result<Vec<u8>, Error> {
        let reply = self.answer(peer, frame, items, horizon_ms, now);
        if reply.is_err() {
            self.incoming.remove(&peer);
        }
        reply
    }

    fn answer(
        &mut self,
        peer: P,
        frame: &[u8],
        items: &ItemSet,
        horizon_ms: u64,
        now: Instant,
    ) -> Result<Vec<u8>, Error> {
        let timeout = self.limits.session_timeout;
        let live = |at: &Instant| now.saturating_duration_since(*at) < timeout;
        match Frame::decode(frame)? {
            Frame::Open { since_ms, message } => {
                // A new Open replaces the peer's session: it gave up on the old one.
                self.incoming.remove(&peer);
                if self.incoming.len() >= self.limits.max_sessions {
                    self.incoming.retain(|_, (_, at)| live(at));
                    if self.incoming.len() >= self.limits.max_sessions {
                        return Err(Error::Busy);
                    }
                }
                let (session, reply) =
                    Responder::open_decoded(since_ms, message, items, horizon_ms, &self.limits)?;
                self.incoming.insert(peer, (session, now));
                Ok(reply)
            }
            Frame::Query { message } => {
                let Some((session, at)) = self.incoming.get_mut(&peer) else {
                    return Err(Error::NoSession);
                };
                if !live(at) {
                    return Err(Error::NoSession);
                }
                let reply = session.answer(message)?;
                *at = now;
                Ok(reply)
            }
            Frame::Reply { .. } => Err(Error::Unexpected),
        }
    }

    /// Drops sessions idle for [`Limits::session_timeout`]; returns the peers whose session we
    /// started timed out (the node may count them).
    pub fn expire(&mut self, now: Instant) -> Vec<P> {
        let timeout = self.limits.session_timeout;
        let live = |at: &Instant| now.saturating_duration_since(*at) < timeout;
        self.incoming.retain(|_, (_, at)| live(at));
        let gone: Vec<P> = self
            .outgoing
            .iter()
            .filter(|(_, (_, at))| !live(at))
            .map(|(p, _)| *p)
            .collect();
        for p in &gone {
            self.outgoing.remove(p);
        }
        gone
    }

    /// Forgets both sessions with a peer that disconnected.
    pub fn forget(&mut self, peer: &P) {
        self.outgoing.remove(peer);
        self.incoming.remove(peer);
    }

    /// Whether we hold a session we started with `peer` (until it ends or [`Peers::expire`] drops
    /// it).
    pub fn in_flight(&self, peer: &P) -> bool {
        self.outgoing.contains_key(peer)
    }

    /// Sessions we started that are still held.
    pub fn outgoing_count(&self) -> usize {
        self.outgoing.len()
    }

    /// Sessions peers started that are still held.
    pub fn incoming_count(&self) -> usize {
        self.incoming.len()
    }
}
