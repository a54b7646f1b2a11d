//! The cache of message ids already seen: bounded in entries and in time.
//!
//! A node asks it before doing any work on a message (decoding, verifying, storing, relaying), so a
//! message that arrives by ten paths is checked once. Entries leave after `ttl` or, when the cache
//! is full, oldest first. Time is passed in; the cache never reads a clock.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A bounded, time-limited set.
#[derive(Debug)]
pub struct SeenCache<K> {
    /// Membership.
    set: HashSet<K>,
    /// Insertion order with insertion time, for expiry and eviction; same keys as `set`.
    order: VecDeque<(Instant, K)>,
    /// Most entries kept; when full, the oldest is evicted.
    capacity: usize,
    /// How long an entry is kept.
    ttl: Duration,
}

impl<K: Eq + Hash + Clone> SeenCache<K> {
    /// # Panics
    /// If `capacity` is zero.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        assert!(capacity > 0, "a seen cache needs room for at least one id");
        Self {
            set: HashSet::with_capacity(capacity.min(1024)),
            order: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
            ttl,
        }
    }

    /// Records `key`; true if it was not already there (the caller should process the message).
    pub fn insert(&mut self, key: K, now: Instant) -> bool {
        self.expire(now);
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() >= self.capacity {
            if let Some((_, oldest)) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        self.set.insert(key.clone());
        self.order.push_back((now, key));
        true
    }

    /// Forgets `key` (its slot in the insertion order is freed when it would have expired).
    pub fn remove(&mut self, key: &K) -> bool {
        self.set.remove(key)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.set.contains(key)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Drops entries older than the time-to-live.
    pub fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.set.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duplicates_are_refused() {
        let t0 = Instant::now();
        let mut c = SeenCache::new(10, Duration::from_secs(60));
        assert!(c.insert(1u32, t0));
        assert!(!c.insert(1, t0));
        assert!(!c.insert(1, t0 + Duration::from_secs(59)));
        assert!(c.insert(2, t0));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn entries_expire() {
        let t0 = Instant::now();
        let mut c = SeenCache::new(10, Duration::from_secs(60));
        c.insert(1u32, t0);
        c.insert(2, t0 + Duration::from_secs(30));
        c.expire(t0 + Duration::from_secs(60));
        assert!(!c.contains(&1));
        assert!(c.contains(&2));
        assert!(c.insert(1, t0 + Duration::from_secs(61)));
    }

    #[test]
    fn capacity_evicts_oldest() {
        let t0 = Instant::now();
        let mut c = SeenCache::new(3, Duration::from_secs(60));
        for k in 0u32..5 {
            c.insert(k, t0);
        }
        assert_eq!(c.len(), 3);
        assert!(!c.contains(&0) && !c.contains(&1));
        assert!(c.contains(&2) && c.contains(&3) && c.contains(&4));
    }

    proptest! {
        #[test]
        fn never_exceeds_capacity(keys in proptest::collection::vec(0u16..50, 0..500), cap in 1usize..20) {
            let t0 = Instant::now();
            let mut c = SeenCache::new(cap, Duration::from_secs(60));
            for (i, k) in keys.iter().enumerate() {
                c.insert(*k, t0 + Duration::from_millis(i as u64));
                prop_assert!(c.len() <= cap);
                prop_assert_eq!(c.len(), c.order.len());
            }
        }
    }
}
