//! The tree's anchor: the one sender whose messages may prune the shared tree (issue 25).
//!
//! Every node relays every sender's messages on one tree of eager links, and in the paper's rule
//! a duplicate of any message prunes the link it came by. The duplicates of one message meet at
//! points of its own first-arrival tree, so one message prunes exactly the links that close
//! cycles for it, and the tree stays connected. Two messages from different senders in flight at
//! once meet at different points of the same cycle, and each prunes a link of it: the cycle is
//! cut twice, the tree splits, and the nodes cut off hear of the next messages only by
//! announcement and graft them (the lazy path, ~200 ms). Grafts rejoin the parts, often by
//! several links at once (new cycles), and the next overlapping messages split them again. The
//! simulator measures the loop in `broadcast/simulation.rs`; at 20 messages a second from random
//! senders it never settles.
//!
//! So only duplicates of the **anchor**'s messages prune: the anchor is the smallest origin key
//! heard within a window ([`super::Config::anchor_window`]). Every node sees every message, so
//! every node picks the same anchor, and a smaller key that appears becomes the anchor at each
//! node as its message arrives there, before that message's duplicates are judged. One sender's
//! messages shape the tree as in the single-sender case, and the tree they shape is a spanning
//! tree for every sender. Duplicates of other messages are counted and left (a cycle they cross
//! is pruned by the anchor's next message, or by the next anchor's, within about a window).
//!
//! The candidates are kept as a sliding-window minimum: a deque of `(last heard, key)` with keys
//! increasing from front to back. A key heard removes every candidate behind it with a key not
//! smaller (they can never be the minimum again while it is in the window), so the front is the
//! anchor once entries older than the window are dropped from it. Random keys leave O(log n)
//! candidates; keys heard in increasing order would leave one each, so the deque is bounded
//! ([`super::Config::max_anchor_candidates`]): when it is full, the largest key (at the back) is
//! dropped, which only matters once every smaller one has left the window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The anchor and the keys that may follow it.
#[derive(Debug)]
pub struct Anchor<K> {
    /// `(last heard, key)`, keys strictly increasing and times increasing from front to back.
    candidates: VecDeque<(Instant, K)>,
    window: Duration,
    capacity: usize,
}

impl<K: Ord + Copy> Anchor<K> {
    /// # Panics
    /// If `capacity` is zero.
    pub fn new(window: Duration, capacity: usize) -> Self {
        assert!(capacity > 0, "room for at least one anchor candidate");
        Self {
            candidates: VecDeque::new(),
            window,
            capacity,
        }
    }

    /// A message of origin `key` was accepted at `now`.
    pub fn heard(&mut self, key: K, now: Instant) {
        self.expire(now);
        while self.candidates.back().is_some_and(|(_, k)| *k >= key) {
            self.candidates.pop_back();
        }
        if self.candidates.len() >= self.capacity {
            self.candidates.pop_back();
        }
        self.candidates.push_back((now, key));
    }

    /// Drops the candidates not heard within the window.
    pub fn expire(&mut self, now: Instant) {
        while self
            .candidates
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= self.window)
        {
            self.candidates.pop_front();
        }
    }

    /// The anchor: the smallest key heard within the window (as of the last
    /// [`Anchor::expire`] or [`Anchor::heard`]).
    pub fn get(&self) -> Option<K> {
        self.candidates.front().map(|(_, k)| *k)
    }

    /// Whether a message of origin `key` (`None`: no origin could be read) is the anchor's.
    /// A message with no origin sorts after every key: it is the anchor's only while no key was
    /// heard within the window.
    pub fn is_anchor(&self, key: Option<K>) -> bool {
        self.get() == key
    }

    /// Candidates kept (at most the capacity).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.candidates.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(v: u64) -> Duration {
        Duration::from_secs(v)
    }

    #[test]
    fn the_anchor_is_the_smallest_key_heard_within_the_window() {
        let t0 = Instant::now();
        let mut a = Anchor::new(s(10), 8);
        assert_eq!(a.get(), None);
        assert!(a.is_anchor(None), "no key heard: keyless messages prune");
        a.heard(5u32, t0);
        assert!(a.is_anchor(Some(5)) && !a.is_anchor(None));
        a.heard(7, t0 + s(1));
        a.heard(3, t0 + s(2));
        assert_eq!(a.get(), Some(3), "a smaller key takes over at once");
        a.heard(4, t0 + s(3));
        assert_eq!(
            a.len(),
            2,
            "5 and 7 can never be the anchor again while 3 is heard"
        );
        // 3 leaves the window; 4, heard later, follows.
        a.expire(t0 + s(12));
        assert_eq!(a.get(), Some(4));
        // Heard again, a key stays.
        a.heard(4, t0 + s(12));
        a.expire(t0 + s(20));
        assert_eq!(a.get(), Some(4));
        a.expire(t0 + s(22));
        assert_eq!(a.get(), None);
        assert!(a.is_anchor(None));
    }

    #[test]
    fn the_candidates_are_bounded_by_dropping_the_largest() {
        let t0 = Instant::now();
        let mut a = Anchor::new(s(10), 3);
        for k in 0..10u32 {
            a.heard(k, t0 + Duration::from_millis(k as u64));
        }
        assert_eq!(a.len(), 3);
        assert_eq!(a.get(), Some(0));
        a.expire(t0 + s(10));
        assert_eq!(a.get(), Some(1));
    }

    proptest! {
        /// The anchor is the minimum of the keys heard within the window, as long as the
        /// candidates fit; never more candidates than the capacity.
        #[test]
        fn matches_a_naive_sliding_minimum(
            steps in proptest::collection::vec((0u8..20, 0u64..3000), 1..200),
        ) {
            let t0 = Instant::now();
            let window = Duration::from_millis(5000);
            let mut a = Anchor::new(window, 64);
            let mut heard: Vec<(Instant, u8)> = Vec::new();
            let mut now = t0;
            for (key, gap) in steps {
                now += Duration::from_millis(gap);
                a.heard(key, now);
                heard.push((now, key));
                let naive = heard
                    .iter()
                    .filter(|(t, _)| now.saturating_duration_since(*t) < window)
                    .map(|(_, k)| *k)
                    .min();
                prop_assert_eq!(a.get(), naive);
                prop_assert!(a.len() <= 20);
            }
        }
    }
}
