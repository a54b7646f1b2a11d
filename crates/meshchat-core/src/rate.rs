//! Token buckets by key, in a bounded table: the budgets a node keeps per neighbour (graft
//! bytes, announced ids) and per author (messages).
//!
//! A bucket holds up to `burst` tokens and gains `rate` a second. A key not in the table has a
//! full bucket, so forgetting the bucket that has been idle longest (what happens when the table
//! is full) forgets the least: it has refilled the most. Time is passed in; nothing here reads a
//! clock.

use std::collections::BTreeMap;
use std::time::Instant;

/// A rate and a burst, in whole tokens (so configurations compare exactly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens gained per second.
    pub per_sec: u32,
    /// Most tokens held (what a key that was quiet may spend at once).
    pub burst: u32,
}

impl Rate {
    pub const fn new(per_sec: u32, burst: u32) -> Self {
        Self { per_sec, burst }
    }

    fn per_sec_f(self) -> f64 {
        f64::from(self.per_sec)
    }

    fn burst_f(self) -> f64 {
        f64::from(self.burst)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets for at most `max` keys.
#[derive(Debug)]
pub struct Buckets<K> {
    rate: Rate,
    max: usize,
    map: BTreeMap<K, Bucket>,
}

impl<K: Ord + Copy> Buckets<K> {
    /// # Panics
    /// If `max` is zero.
    pub fn new(rate: Rate, max: usize) -> Self {
        assert!(max > 0, "a bucket table must hold at least one key");
        Self {
            rate,
            max,
            map: BTreeMap::new(),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Tokens `key` holds at `now`.
    pub fn tokens(&self, key: &K, now: Instant) -> f64 {
        match self.map.get(key) {
            Some(b) => self.refilled(b, now),
            None => self.rate.burst_f(),
        }
    }

    /// Whether `key` holds `amount` tokens at `now` (nothing is spent).
    pub fn can_take(&self, key: &K, amount: f64, now: Instant) -> bool {
        self.tokens(key, now) >= amount
    }

    /// Spends `amount` tokens of `key` if it holds them; false (nothing spent) if not.
    pub fn take(&mut self, key: K, amount: f64, now: Instant) -> bool {
        let tokens = self.tokens(&key, now);
        if tokens < amount {
            return false;
        }
        self.set(key, tokens - amount, now);
        true
    }

    /// Spends up to `amount` tokens of `key`; returns how many it held (at most `amount`).
    pub fn take_up_to(&mut self, key: K, amount: f64, now: Instant) -> f64 {
        let tokens = self.tokens(&key, now);
        let spent = tokens.min(amount).max(0.0);
        self.set(key, tokens - spent, now);
        spent
    }

    /// Keys in the table (at most `max`).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * self.rate.per_sec_f()).min(self.rate.burst_f())
    }

    fn set(&mut self, key: K, tokens: f64, now: Instant) {
        if tokens >= self.rate.burst_f() {
            // A full bucket is the same as none.
            self.map.remove(&key);
            return;
        }
        if !self.map.contains_key(&key) && self.map.len() >= self.max {
            self.evict(now);
        }
        self.map.insert(key, Bucket { tokens, at: now });
    }

    /// Makes room: drops every bucket that has refilled, or else the one idle longest. A linear
    /// scan, only when the table is full; dropping the refilled ones at once makes the next
    /// scans rare.
    fn evict(&mut self, now: Instant) {
        let rate = self.rate;
        let before = self.map.len();
        self.map.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens + elapsed * rate.per_sec_f() < rate.burst_f()
        });
        if self.map.len() < before {
            return;
        }
        if let Some(k) = self.map.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k) {
            self.map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_spends_and_refills() {
        let t0 = Instant::now();
        let mut b = Buckets::new(Rate::new(10, 20), 4);
        assert!(b.take(1u32, 15.0, t0));
        assert!(!b.take(1, 10.0, t0), "5 left");
        assert!(b.can_take(&1, 5.0, t0));
        assert!(!b.can_take(&1, 5.5, t0));
        // Half a second later: 5 + 5.
        assert!(b.take(1, 10.0, t0 + Duration::from_millis(500)));
        assert_eq!(b.take_up_to(1, 100.0, t0 + Duration::from_secs(1)), 5.0);
        assert_eq!(b.tokens(&2, t0), 20.0, "an unknown key is full");
        // Refilled buckets leave the table.
        assert!(b.take(2, 1.0, t0));
        assert_eq!(b.len(), 2);
        assert!(b.take(2, 0.0, t0 + Duration::from_secs(10)));
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_full_table_forgets_the_refilled_then_the_idlest() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut b = Buckets::new(Rate::new(1, 10), 3);
        b.take(1u32, 10.0, t0);
        b.take(2, 10.0, t0 + s);
        b.take(3, 10.0, t0 + 2 * s);
        // Nothing has refilled: the idlest (1) goes.
        b.take(4, 10.0, t0 + 3 * s);
        assert_eq!(b.len(), 3);
        assert_eq!(b.tokens(&1, t0 + 3 * s), 10.0);
        assert!(b.tokens(&2, t0 + 3 * s) < 10.0);
    }

    proptest! {
        /// Whatever is asked, a key never spends more than its burst plus what it earned (with
        /// room for every key, so nothing is evicted), and the table never exceeds its bound.
        #[test]
        fn spending_is_bounded(
            ops in proptest::collection::vec((0u32..6, 0.0f64..30.0, 0u64..500), 1..300),
        ) {
            let t0 = Instant::now();
            let rate = Rate::new(10, 20);
            let mut b = Buckets::new(rate, 6);
            let mut now = t0;
            let mut spent = [0.0f64; 6];
            for (key, amount, step_ms) in ops {
                now += Duration::from_millis(step_ms);
                if b.take(key, amount, now) {
                    spent[key as usize] += amount;
                }
                prop_assert!(b.len() <= 6);
            }
            let elapsed = now.duration_since(t0).as_secs_f64();
            for s in spent {
                prop_assert!(s <= rate.burst_f() + rate.per_sec_f() * elapsed + 1e-6);
            }
        }
    }
}
