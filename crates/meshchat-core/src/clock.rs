//! How far this node's clock is from its peers': from the envelopes it receives fresh on the
//! broadcast trees, whose author timestamps are seconds old at most when they arrive.
//!
//! Envelopes are dated by their authors' clocks, and a receiver refuses one dated more than
//! [`crate::envelope::MAX_CLOCK_SKEW_MS`] ahead of its own. A node whose clock is wrong (a
//! Raspberry Pi without a real-time clock boots in 1970) used to lose messages with nobody
//! told. Each fresh envelope's `timestamp - now` is a sample of the offset between its author's
//! clock and ours (plus the transit, milliseconds). Taking the **median over authors** (the
//! latest sample of each, at most [`MAX_AUTHORS`]), one author with a wrong clock does not move
//! it; only when most of the authors heard lately disagree with us is it our clock that is off.
//!
//! This module only measures and says when to tell the user. Nothing adjusts for the offset: a
//! group of peers must not be able to shift a node's time and so make it refuse honest messages
//! (or take stale ones). Time is passed in; nothing here reads a clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Authors whose latest sample is kept (the longest silent forgotten first).
pub const MAX_AUTHORS: usize = 256;
/// Authors needed before the median is believed.
pub const MIN_AUTHORS: usize = 3;
/// Samples older than this are not counted (the mesh's clocks, or ours, may have been fixed).
pub const SAMPLE_TTL: Duration = Duration::from_secs(30 * 60);
/// A median offset beyond this is worth telling the user about.
pub const TELL_BEYOND_MS: i64 = 60_000;
/// [`Clock::poll`] looks at the median at most this often, unless a new author was heard.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// The offset tracker, generic over the author key.
#[derive(Debug)]
pub struct Clock<A> {
    /// Each author's latest `timestamp - now` (ms) and when it was taken.
    samples: HashMap<A, (i64, Instant)>,
    /// The offset the user was last told of (`None`: told nothing, or told it is fine again).
    told: Option<i64>,
    /// When [`Clock::poll`] last looked, and whether an author was added since.
    polled: Option<Instant>,
    new_author: bool,
}

impl<A> Default for Clock<A> {
    fn default() -> Self {
        Self {
            samples: HashMap::new(),
            told: None,
            polled: None,
            new_author: false,
        }
    }
}

/// What to tell the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Our clock is `offset_ms` off the median of `authors` peers' clocks: positive, ours is
    /// ahead (their envelopes look old); negative, ours is behind (theirs look from the future).
    Off { offset_ms: i64, authors: usize },
    /// Our clock agrees with the peers' again.
    Agrees { authors: usize },
}

impl<A: Eq + Hash + Copy> Clock<A> {
    /// A fresh envelope by `author` dated `timestamp_ms`, received at `now_ms` (our clock).
    pub fn sample(&mut self, author: A, timestamp_ms: u64, now_ms: u64, now: Instant) {
        let offset = i64::try_from(i128::from(timestamp_ms) - i128::from(now_ms)).unwrap_or(0);
        if !self.samples.contains_key(&author) && self.samples.len() >= MAX_AUTHORS {
            if let Some(oldest) = self
                .samples
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(a, _)| *a)
            {
                self.samples.remove(&oldest);
            }
        }
        if self.samples.insert(author, (offset, now)).is_none() {
            self.new_author = true;
        }
    }

    /// [`Clock::notice`], for a hot path: the median (a sort of up to [`MAX_AUTHORS`] samples) is
    /// looked at only when an author was added since the last look, or [`POLL_EVERY`] later.
    pub fn poll(&mut self, now: Instant) -> Option<Notice> {
        let due = self.new_author
            || self
                .polled
                .is_none_or(|t| now.saturating_duration_since(t) >= POLL_EVERY);
        if !due {
            return None;
        }
        self.new_author = false;
        self.polled = Some(now);
        self.notice(now)
    }

    /// Our clock's offset from the median of the authors heard within [`SAMPLE_TTL`] (positive:
    /// ours is ahead), if at least [`MIN_AUTHORS`] were; and how many.
    pub fn offset(&self, now: Instant) -> Option<(i64, usize)> {
        let mut v: Vec<i64> = self
            .samples
            .values()
            .filter(|(_, at)| now.saturating_duration_since(*at) < SAMPLE_TTL)
            .map(|(o, _)| *o)
            .collect();
        if v.len() < MIN_AUTHORS {
            return None;
        }
        v.sort_unstable();
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2
        };
        // Their envelopes dated behind ours: our clock is ahead.
        Some((-median, n))
    }

    /// What the user should be told now, if anything: once when the offset passes
    /// [`TELL_BEYOND_MS`], again only if it moves by more than that since, and once when it is
    /// back within half of it.
    pub fn notice(&mut self, now: Instant) -> Option<Notice> {
        let (offset, authors) = self.offset(now)?;
        match self.told {
            None if offset.abs() > TELL_BEYOND_MS => {
                self.told = Some(offset);
                Some(Notice::Off {
                    offset_ms: offset,
                    authors,
                })
            }
            Some(_) if offset.abs() <= TELL_BEYOND_MS / 2 => {
                self.told = None;
                Some(Notice::Agrees { authors })
            }
            Some(told) if (offset - told).abs() > TELL_BEYOND_MS => {
                self.told = Some(offset);
                Some(Notice::Off {
                    offset_ms: offset,
                    authors,
                })
            }
            _ => None,
        }
    }
}

/// "10 min ahead", "1 year behind": an offset for people.
pub fn describe(offset_ms: i64) -> String {
    let dir = if offset_ms >= 0 { "ahead" } else { "behind" };
    let s = offset_ms.unsigned_abs() / 1000;
    let (n, unit) = match s {
        0..=119 => (s, "s"),
        120..=7_199 => ((s + 30) / 60, "min"),
        7_200..=172_799 => ((s + 1_800) / 3600, "h"),
        172_800..=31_535_999 => ((s + 43_200) / 86_400, "days"),
        31_536_000..=63_071_999 => (1, "year"),
        _ => (s / 31_536_000, "years"),
    };
    format!("{n} {unit} {dir}")
}

/// What a front-end tells the user about this computer's clock: `off` (it is `offset_ms` off the
/// median of `authors` peers' clocks), or agreeing again.
pub fn notice(offset_ms: i64, authors: usize, off: bool) -> String {
    if !off {
        return format!("this computer's clock agrees with its peers' again ({authors} heard)");
    }
    let how = describe(offset_ms);
    let effect = if offset_ms > 0 {
        "peers refuse your messages when they are more than 5 min ahead of their clocks"
    } else {
        "peers' messages look like they come from the future and are refused beyond 5 min"
    };
    format!(
        "this computer's clock is {how} of its peers' (the median of {authors}): {effect}; set \
         the clock (or turn on network time)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW_MS: u64 = 1_800_000_000_000;
    const MIN: i64 = 60_000;

    fn at(c: &mut Clock<u32>, author: u32, offset_ms: i64, t: Instant) {
        c.sample(author, (NOW_MS as i64 + offset_ms) as u64, NOW_MS, t);
    }

    #[test]
    fn a_clock_ten_minutes_ahead_is_told_once_and_when_fixed() {
        let t0 = Instant::now();
        let mut c = Clock::default();
        // Two authors are not enough to blame our clock.
        at(&mut c, 1, -10 * MIN, t0);
        at(&mut c, 2, -10 * MIN - 40, t0);
        assert_eq!(c.notice(t0), None);
        at(&mut c, 3, -10 * MIN + 30, t0);
        assert_eq!(
            c.notice(t0),
            Some(Notice::Off {
                offset_ms: 10 * MIN,
                authors: 3
            })
        );
        // Told once, not again for the same offset.
        at(&mut c, 4, -10 * MIN, t0);
        assert_eq!(c.notice(t0), None);
        // Fixed: every author agrees again.
        for a in 1..=4 {
            at(&mut c, a, -5, t0);
        }
        assert_eq!(c.notice(t0), Some(Notice::Agrees { authors: 4 }));
        assert_eq!(c.notice(t0), None);
    }

    #[test]
    fn one_wrong_author_does_not_move_the_median_and_a_year_behind_is_told() {
        let t0 = Instant::now();
        let mut c = Clock::default();
        at(&mut c, 1, 0, t0);
        at(&mut c, 2, 3, t0);
        at(&mut c, 3, 365 * 24 * 60 * MIN, t0);
        assert_eq!(
            c.notice(t0),
            None,
            "one author a year ahead is its own problem"
        );
        let mut behind = Clock::default();
        for a in 1..=5 {
            at(&mut behind, a, 365 * 24 * 60 * MIN, t0);
        }
        match behind.notice(t0) {
            Some(Notice::Off { offset_ms, .. }) => {
                assert_eq!(describe(offset_ms), "1 year behind")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn old_samples_and_silent_authors_are_forgotten() {
        let t0 = Instant::now();
        let mut c = Clock::default();
        for a in 0..3 {
            at(&mut c, a, -10 * MIN, t0);
        }
        assert!(c.offset(t0 + SAMPLE_TTL).is_none());
        for a in 0..(MAX_AUTHORS as u32 + 10) {
            at(&mut c, a, 0, t0 + Duration::from_millis(a.into()));
        }
        assert_eq!(c.samples.len(), MAX_AUTHORS);
        assert!(!c.samples.contains_key(&0));
    }

    #[test]
    fn polling_looks_when_an_author_is_new_or_a_second_passed() {
        let t0 = Instant::now();
        let mut c = Clock::default();
        for a in 1..=3 {
            at(&mut c, a, -10 * MIN, t0);
        }
        assert!(matches!(c.poll(t0), Some(Notice::Off { .. })));
        // The clock is fixed, but the same authors within the second: not looked at yet.
        for a in 1..=3 {
            at(&mut c, a, 0, t0);
        }
        assert_eq!(c.poll(t0 + Duration::from_millis(10)), None);
        assert_eq!(c.poll(t0 + POLL_EVERY), Some(Notice::Agrees { authors: 3 }));
    }

    #[test]
    fn offsets_read_for_people() {
        assert_eq!(describe(10 * MIN), "10 min ahead");
        assert_eq!(describe(10 * MIN - 20), "10 min ahead", "rounded, not cut");
        assert_eq!(describe(-90_000), "90 s behind");
        assert_eq!(describe(-3 * 3600 * 1000), "3 h behind");
        assert_eq!(describe(3 * 86_400 * 1000), "3 days ahead");
    }

    proptest! {
        /// Whatever the samples, no panic, the table stays bounded, and the median lies within
        /// the samples' range.
        #[test]
        fn the_median_is_within_the_samples(
            samples in proptest::collection::vec((0u32..400, any::<i32>()), 0..600),
        ) {
            let t0 = Instant::now();
            let mut c = Clock::default();
            for (a, o) in &samples {
                at(&mut c, *a, i64::from(*o), t0);
                prop_assert!(c.samples.len() <= MAX_AUTHORS);
            }
            if let Some((offset, n)) = c.offset(t0) {
                let lo = c.samples.values().map(|(o, _)| *o).min().unwrap();
                let hi = c.samples.values().map(|(o, _)| *o).max().unwrap();
                prop_assert!(-offset >= lo && -offset <= hi);
                prop_assert!(n >= MIN_AUTHORS);
            }
            let _ = c.notice(t0);
        }
    }
}
