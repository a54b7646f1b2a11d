//! Per-peer bounds on what a neighbour can make a node do: how many unique messages it may hand
//! over for checking per second, and how many envelopes no honest node would forward it may send
//! before it is blocked for a while.
//!
//! A "strike" is an envelope that an honest meshchat relay never forwards because it checks every
//! envelope the same way before relaying it: a bad signature, malformed bytes, an oversized
//! envelope. Envelopes that honest relays may disagree about (a timestamp ahead of our clock, a
//! version or kind we do not know yet) are refused without a strike. Strikes are counted per peer in
//! a window; at the limit the peer is blocked until a deadline. A peer that keeps handing over
//! messages far beyond its rate ([`Limits::flood_limit`] drops within [`Limits::flood_window`]) is
//! blocked the same way: dropping its excess unchecked costs little CPU, but every message it
//! sends still costs the transport some state, so only cutting it off bounds memory.
//!
//! Every table here is bounded; time is passed in, the guard never reads a clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The guard's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Strikes within [`Limits::strike_window`] that block a peer.
    pub strike_limit: u32,
    /// Strikes older than this (counted from a peer's first strike) are forgotten.
    pub strike_window: Duration,
    /// How long a blocked peer stays blocked.
    pub block_time: Duration,
    /// Unique messages per second a peer may hand over, sustained.
    pub rate: f64,
    /// Unique messages a peer may hand over at once, after being quiet.
    pub burst: f64,
    /// Over-rate messages within [`Limits::flood_window`] that block a peer: one that keeps
    /// sending far over its rate is flooding, not bursting. Each message it hands over costs
    /// reading and decoding its frame even when dropped unchecked, so throttling alone would
    /// not bound the work a flooder makes a node do.
    pub flood_limit: u32,
    /// The window over-rate messages are counted in (from the first one).
    pub flood_window: Duration,
    /// Most peers tracked in each table (strikes, blocks, rate buckets); beyond that the stalest
    /// entry is dropped.
    pub max_peers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            strike_limit: 8,
            strike_window: Duration::from_secs(10 * 60),
            block_time: Duration::from_secs(30 * 60),
            // A neighbour hands over each message once however many rooms and authors there
            // are, so this must exceed the whole network's rate, bulk sends by scripts included
            // (a release build publishes ~3500 messages a second from a script; 1000/s with a
            // 2000 burst measurably dropped such a send). 4000 checks a second are about a
            // quarter of a core: the bound on what one connection can make a node verify.
            rate: 4000.0,
            burst: 20_000.0,
            // A peer more than 2000/s over the rate for 10 s, or a burst of 20 000 beyond it.
            flood_limit: 20_000,
            flood_window: Duration::from_secs(10),
            max_peers: 1024,
        }
    }
}

/// Whether a message handed over by a peer may be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// The peer is blocked: refuse without checking.
    Blocked,
    /// The peer is over its rate: drop without checking (not relayed, no strike).
    OverRate,
    /// The peer has been far over its rate for a while and is blocked from now on: drop this
    /// message and close its connections.
    Flooding,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    count: u32,
    first: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Over-rate messages since `dropped_since`.
    dropped: u32,
    dropped_since: Instant,
}

/// Per-peer strike counts, blocks and rate buckets.
#[derive(Debug)]
pub struct Guard<P> {
    limits: Limits,
    strikes: HashMap<P, Strikes>,
    /// Blocked peers with the time their block ends.
    blocked: HashMap<P, Instant>,
    buckets: HashMap<P, Bucket>,
}

impl<P: Eq + Hash + Copy> Guard<P> {
    /// # Panics
    /// If `limits.max_peers` or `limits.strike_limit` is zero.
    pub fn new(limits: Limits) -> Self {
        assert!(
            limits.max_peers > 0,
            "the guard must track at least one peer"
        );
        assert!(
            limits.strike_limit > 0,
            "a strike limit of zero would block everyone"
        );
        Self {
            limits,
            strikes: HashMap::new(),
            blocked: HashMap::new(),
            buckets: HashMap::new(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Takes one message from `peer` for checking, if its block and its rate allow.
    pub fn admit(&mut self, peer: P, now: Instant) -> Admit {
        if self.is_blocked(&peer, now) {
            return Admit::Blocked;
        }
        if !self.buckets.contains_key(&peer) && self.buckets.len() >= self.limits.max_peers {
            // Drop the bucket that has been idle longest: it is the fullest one anyway.
            remove_min_by_key(&mut self.buckets, |b| b.at);
        }
        let Limits { rate, burst, .. } = self.limits;
        let bucket = self.buckets.entry(peer).or_insert(Bucket {
            tokens: burst,
            at: now,
            dropped: 0,
            dropped_since: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Admit::Yes;
        }
        if now.saturating_duration_since(bucket.dropped_since) >= self.limits.flood_window {
            bucket.dropped = 0;
            bucket.dropped_since = now;
        }
        bucket.dropped += 1;
        if bucket.dropped < self.limits.flood_limit {
            return Admit::OverRate;
        }
        self.block_now(peer, now);
        Admit::Flooding
    }

    /// Counts a strike against `peer`; true when this strike blocks it (the caller then closes
    /// its connections). A peer already blocked is not blocked again.
    pub fn strike(&mut self, peer: P, now: Instant) -> bool {
        if self.is_blocked(&peer, now) {
            return false;
        }
        let window = self.limits.strike_window;
        if !self.strikes.contains_key(&peer) && self.strikes.len() >= self.limits.max_peers {
            self.strikes
                .retain(|_, s| now.saturating_duration_since(s.first) < window);
            if self.strikes.len() >= self.limits.max_peers {
                remove_min_by_key(&mut self.strikes, |s| s.first);
            }
        }
        let s = self.strikes.entry(peer).or_insert(Strikes {
            count: 0,
            first: now,
        });
        if now.saturating_duration_since(s.first) >= window {
            *s = Strikes {
                count: 0,
                first: now,
            };
        }
        s.count += 1;
        if s.count < self.limits.strike_limit {
            return false;
        }
        self.block_now(peer, now);
        true
    }

    fn block_now(&mut self, peer: P, now: Instant) {
        self.strikes.remove(&peer);
        self.buckets.remove(&peer);
        if self.blocked.len() >= self.limits.max_peers {
            // Full of blocks: lift the one that ends first.
            remove_min_by_key(&mut self.blocked, |t| *t);
        }
        self.blocked.insert(peer, now + self.limits.block_time);
    }

    pub fn is_blocked(&self, peer: &P, now: Instant) -> bool {
        self.blocked.get(peer).is_some_and(|until| now < *until)
    }

    /// Peers blocked right now.
    pub fn blocked_count(&self, now: Instant) -> usize {
        self.blocked.values().filter(|until| now < **until).count()
    }

    /// Forgets the rate bucket of a peer that is gone (its strikes and block stay).
    pub fn forget_rate(&mut self, peer: &P) {
        self.buckets.remove(peer);
    }

    /// Lifts the blocks that have ended and forgets old strikes; returns the peers unblocked.
    pub fn expire(&mut self, now: Instant) -> Vec<P> {
        let window = self.limits.strike_window;
        self.strikes
            .retain(|_, s| now.saturating_duration_since(s.first) < window);
        let ended: Vec<P> = self
            .blocked
            .iter()
            .filter(|(_, until)| now >= **until)
            .map(|(p, _)| *p)
            .collect();
        for p in &ended {
            self.blocked.remove(p);
        }
        ended
    }
}

/// Removes the entry with the smallest `key` (a linear scan: the tables hold at most
/// `Limits::max_peers` entries and are only full under attack).
fn remove_min_by_key<P: Eq + Hash + Copy, V, K: Ord>(
    map: &mut HashMap<P, V>,
    key: impl Fn(&V) -> K,
) {
    if let Some(p) = map.iter().min_by_key(|(_, v)| key(v)).map(|(p, _)| *p) {
        map.remove(&p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            strike_limit: 3,
            strike_window: Duration::from_secs(60),
            block_time: Duration::from_secs(600),
            rate: 10.0,
            burst: 20.0,
            flood_limit: 50,
            flood_window: Duration::from_secs(10),
            max_peers: 4,
        }
    }

    #[test]
    fn a_peer_far_over_its_rate_is_blocked() {
        let t0 = Instant::now();
        let mut g = Guard::new(limits());
        for _ in 0..20 {
            assert_eq!(g.admit(3u32, t0), Admit::Yes);
        }
        for i in 0..49 {
            assert_eq!(g.admit(3, t0), Admit::OverRate, "drop {i}");
        }
        assert_eq!(g.admit(3, t0), Admit::Flooding);
        assert!(g.is_blocked(&3, t0));
        assert_eq!(g.admit(3, t0), Admit::Blocked);
        assert_eq!(g.blocked_count(t0), 1);
    }

    #[test]
    fn being_over_the_rate_now_and_then_is_not_flooding() {
        let t0 = Instant::now();
        let mut g = Guard::new(limits());
        // 40 over-rate drops in each of many 10 s windows: never 50 in one.
        for w in 0..20u64 {
            let start = t0 + Duration::from_secs(10 * w);
            for _ in 0..(20 + 40) {
                assert_ne!(g.admit(4u32, start), Admit::Flooding);
            }
            // A quiet spell refills the bucket.
            let quiet = start + Duration::from_secs(5);
            assert_eq!(g.admit(4, quiet), Admit::Yes);
        }
        assert!(!g.is_blocked(&4, t0 + Duration::from_secs(300)));
    }

    #[test]
    fn strikes_block_at_the_limit_and_the_block_ends() {
        let t0 = Instant::now();
        let mut g = Guard::new(limits());
        assert!(!g.strike(1u32, t0));
        assert!(!g.strike(1, t0));
        assert!(g.strike(1, t0), "the third strike blocks");
        assert!(g.is_blocked(&1, t0));
        assert_eq!(g.admit(1, t0), Admit::Blocked);
        assert!(!g.strike(1, t0), "already blocked");
        assert_eq!(g.admit(2, t0), Admit::Yes, "others are not affected");
        assert_eq!(g.blocked_count(t0), 1);

        let later = t0 + Duration::from_secs(599);
        assert!(g.expire(later).is_empty());
        assert!(g.is_blocked(&1, later));
        let end = t0 + Duration::from_secs(600);
        assert_eq!(g.expire(end), vec![1]);
        assert!(!g.is_blocked(&1, end));
        assert_eq!(g.admit(1, end), Admit::Yes);
        // Strikes start from zero after a block.
        assert!(!g.strike(1, end));
    }

    #[test]
    fn strikes_outside_the_window_are_forgotten() {
        let t0 = Instant::now();
        let mut g = Guard::new(limits());
        assert!(!g.strike(1u32, t0));
        assert!(!g.strike(1, t0 + Duration::from_secs(30)));
        // The window counts from the first strike: at 60 s the count starts again.
        assert!(!g.strike(1, t0 + Duration::from_secs(60)));
        assert!(!g.strike(1, t0 + Duration::from_secs(61)));
        assert!(g.strike(1, t0 + Duration::from_secs(62)));
    }

    #[test]
    fn rate_allows_the_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut g = Guard::new(limits());
        for i in 0..20 {
            assert_eq!(g.admit(7u32, t0), Admit::Yes, "message {i} of the burst");
        }
        assert_eq!(g.admit(7, t0), Admit::OverRate);
        // 10 per second: one more every 100 ms.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(g.admit(7, t1), Admit::Yes);
        assert_eq!(g.admit(7, t1), Admit::OverRate);
        // Over a long quiet spell the bucket refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(3600);
        let admitted = (0..60).filter(|_| g.admit(7, t2) == Admit::Yes).count();
        assert_eq!(admitted, 20);
        // Over-rate drops are not strikes.
        assert!(!g.is_blocked(&7, t2));
    }

    #[test]
    fn tables_stay_bounded() {
        let t0 = Instant::now();
        let mut g = Guard::new(limits());
        for p in 0..100u32 {
            let now = t0 + Duration::from_millis(p as u64);
            g.admit(p, now);
            g.strike(p, now);
            for _ in 0..3 {
                g.strike(p + 1000, now);
            }
            assert!(g.buckets.len() <= 4);
            assert!(g.strikes.len() <= 4);
            assert!(g.blocked.len() <= 4);
        }
        // The newest blocks are the ones kept.
        let now = t0 + Duration::from_millis(100);
        assert!(g.is_blocked(&1099, now));
        assert!(!g.is_blocked(&1000, now));
    }
}
