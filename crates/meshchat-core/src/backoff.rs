//! When to dial a peer again after dials to it failed.
//!
//! A node below its target number of peers redials the peers it knows every maintenance round.
//! Without a memory of failures it dials the same unreachable ones every round, all their
//! addresses at once: in the 30-process lab, 60 failing connects in one burst every 10 s per
//! node, each burst holding the node's loop for ~10 ms (and on a real network, SYNs to dead
//! addresses every 10 s for as long as the node runs). Here each failure doubles the wait
//! before the next such dial of that peer, from `first` up to `max`; a connection forgets the
//! failures. Bounded: beyond `capacity` peers, the one due soonest is forgotten (it would be
//! dialed soonest anyway).
//!
//! What waits is what repeats: the node's periodic redials, and the dials of peers the DHT or
//! the tracker's roster names again and again. A peer named for the first time, found on the
//! LAN, or asked for (`/connect`, `--peer`) is dialed at once, and a peer that comes back
//! dials the peers it knows itself.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    failures: u32,
    next: Instant,
}

/// Failed dials per peer, and when each may be dialed again.
#[derive(Debug, Clone)]
pub struct Backoff<K> {
    entries: BTreeMap<K, Entry>,
    first: Duration,
    max: Duration,
    capacity: usize,
}

impl<K: Ord + Clone> Backoff<K> {
    /// Waits of `first`, then twice as long after each further failure, at most `max`; at most
    /// `capacity` peers remembered.
    pub fn new(first: Duration, max: Duration, capacity: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            first,
            max: max.max(first),
            capacity: capacity.max(1),
        }
    }

    /// Whether a periodic dial of `peer` may go now.
    pub fn may_dial(&self, peer: &K, now: Instant) -> bool {
        self.entries.get(peer).is_none_or(|e| now >= e.next)
    }

    /// A dial of `peer` failed at `now`.
    pub fn failed(&mut self, peer: K, now: Instant) {
        if !self.entries.contains_key(&peer) && self.entries.len() >= self.capacity {
            let soonest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.next)
                .map(|(k, _)| k.clone());
            if let Some(k) = soonest {
                self.entries.remove(&k);
            }
        }
        let failures = self
            .entries
            .get(&peer)
            .map_or(0, |e| e.failures)
            .saturating_add(1);
        let next = now + self.wait_after(failures);
        self.entries.insert(peer, Entry { failures, next });
    }

    /// The wait after `failures` failures in a row (at least one).
    fn wait_after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }

    /// A connection to `peer` stands: its failures are forgotten.
    pub fn connected(&mut self, peer: &K) {
        self.entries.remove(peer);
    }

    /// How long `peer` waits after its last failure, if it failed.
    pub fn wait_of(&self, peer: &K) -> Option<Duration> {
        self.entries.get(peer).map(|e| self.wait_after(e.failures))
    }

    /// Peers remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn each_failure_doubles_the_wait_up_to_the_max() {
        let t0 = Instant::now();
        let mut b = Backoff::new(10 * S, 60 * S, 8);
        assert!(b.may_dial(&1, t0));
        b.failed(1, t0);
        assert!(!b.may_dial(&1, t0 + 9 * S));
        assert!(b.may_dial(&1, t0 + 10 * S));
        let waits: Vec<u64> = (0..5)
            .map(|i| {
                b.failed(1, t0 + i * S);
                b.wait_of(&1).unwrap().as_secs()
            })
            .collect();
        assert_eq!(waits, [20, 40, 60, 60, 60]);
        assert!(!b.may_dial(&1, t0 + 4 * S + 59 * S));
        assert!(b.may_dial(&1, t0 + 4 * S + 60 * S));
        // Other peers are not held back.
        assert!(b.may_dial(&2, t0));
    }

    #[test]
    fn a_connection_forgets_the_failures() {
        let t0 = Instant::now();
        let mut b = Backoff::new(10 * S, 600 * S, 8);
        for _ in 0..5 {
            b.failed(7, t0);
        }
        b.connected(&7);
        assert!(b.may_dial(&7, t0));
        b.failed(7, t0);
        assert_eq!(b.wait_of(&7), Some(10 * S));
    }

    #[test]
    fn the_peer_due_soonest_is_forgotten_beyond_capacity() {
        let t0 = Instant::now();
        let mut b = Backoff::new(10 * S, 600 * S, 3);
        for _ in 0..3 {
            b.failed(1, t0);
        }
        b.failed(2, t0);
        b.failed(3, t0 + S);
        b.failed(4, t0 + 2 * S);
        assert_eq!(b.len(), 3);
        // Peer 2 was due soonest (t0 + 10 s): forgotten, so dialed at once.
        assert!(b.may_dial(&2, t0 + S));
        assert!(!b.may_dial(&1, t0 + S));
        assert!(!b.may_dial(&3, t0 + 2 * S));
        assert!(!b.may_dial(&4, t0 + 3 * S));
    }

    #[test]
    fn many_failures_never_overflow() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_millis(1), 3600 * S, 2);
        for _ in 0..100 {
            b.failed(1, t0);
        }
        assert_eq!(b.wait_of(&1), Some(Duration::from_millis(1 << 16)));
    }
}
