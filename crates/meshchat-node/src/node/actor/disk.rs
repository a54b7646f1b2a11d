//! Whether the database takes writes, for every write path at once: one warning when writing
//! stops, at most one every [`WARN_EVERY`] while it lasts, and one notice when it works again
//! (a full disk used to print one warning per message: 93 in 6 s, measured on a 4 MiB tmpfs).
//!
//! Room messages, DMs, profiles, held DMs, known peers, settings and pruning all report here
//! (through `Io::write_failed`), so an outage is one warning whichever write found it first.
//! Writes a user asked for (`/nick`, `/join`, `/leave`, `send`) also fail to the user, as the
//! command's error. The outage ends when a write of messages or DMs works again: those are the
//! large writes, so a small one squeezing into a nearly full disk does not announce a recovery
//! that the next message disproves.

use std::time::{Duration, Instant};

/// While writes keep failing, the warning is repeated at most this often.
pub(super) const WARN_EVERY: Duration = Duration::from_secs(5 * 60);

/// What a failed write was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Write {
    /// A batch of this many room messages.
    Messages(usize),
    /// Anything else, named for the user ("a profile", "the known-peer list", …).
    Other(&'static str),
}

#[derive(Debug, Default)]
pub(super) struct Disk {
    /// Since when writes fail, and when the user was last told.
    failing: Option<(Instant, Instant)>,
    /// Messages not stored since the last warning.
    lost_since_warning: u64,
    /// Messages not stored since writes started failing.
    lost: u64,
}

impl Disk {
    /// A write failed with `error`: the warning to show now, if any.
    pub(super) fn failed(
        &mut self,
        what: Write,
        error: &dyn std::fmt::Display,
        now: Instant,
    ) -> Option<String> {
        let n = match what {
            Write::Messages(n) => n as u64,
            Write::Other(_) => 0,
        };
        self.lost += n;
        self.lost_since_warning += n;
        match &mut self.failing {
            None => {
                self.failing = Some((now, now));
                self.lost_since_warning = 0;
                Some(match what {
                    Write::Messages(n) => format!(
                        "could not store {n} messages ({error}); still relaying, and they will \
                         be fetched again from peers once storing works"
                    ),
                    Write::Other(what) => format!(
                        "could not write {what} to the database ({error}); still relaying, and \
                         nothing stored before is lost"
                    ),
                })
            }
            Some((since, told)) if now.saturating_duration_since(*told) >= WARN_EVERY => {
                *told = now;
                let lost = std::mem::take(&mut self.lost_since_warning);
                Some(format!(
                    "still cannot write to the database ({error}) for {} min: {lost} more \
                     messages not stored",
                    now.saturating_duration_since(*since).as_secs() / 60
                ))
            }
            Some(_) => None,
        }
    }

    /// A write of messages or DMs worked: the notice to show if writes had been failing.
    pub(super) fn worked(&mut self) -> Option<String> {
        self.failing.take()?;
        self.lost_since_warning = 0;
        let lost = std::mem::take(&mut self.lost);
        Some(format!(
            "storing messages again ({lost} could not be stored meanwhile; they are being \
             fetched again from peers)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_disk_is_one_warning_then_one_every_few_minutes_then_one_notice() {
        let t0 = Instant::now();
        let mut h = Disk::default();
        let e = "database or disk is full";
        assert!(h.worked().is_none(), "nothing to say while all is well");
        let first = h.failed(Write::Messages(3), &e, t0).unwrap();
        assert!(
            first.contains("could not store 3 messages") && first.contains(e),
            "{first}"
        );
        for i in 1..100 {
            let at = t0 + Duration::from_millis(60 * i);
            assert!(
                h.failed(Write::Messages(1), &e, at).is_none(),
                "one warning, not one per message"
            );
        }
        let again = h.failed(Write::Messages(1), &e, t0 + WARN_EVERY).unwrap();
        assert!(again.contains("100 more messages not stored"), "{again}");
        let back = h.worked().unwrap();
        assert!(
            back.contains("storing messages again (103 could not"),
            "{back}"
        );
        assert!(h.worked().is_none());
        // A new failure later is news again.
        assert!(h
            .failed(Write::Messages(1), &e, t0 + 2 * WARN_EVERY)
            .is_some());
    }

    #[test]
    fn any_write_starts_the_one_outage_and_names_what_failed() {
        let t0 = Instant::now();
        let mut h = Disk::default();
        let e = "database or disk is full";
        let first = h.failed(Write::Other("a profile"), &e, t0).unwrap();
        assert!(
            first.contains("could not write a profile") && first.contains(e),
            "{first}"
        );
        // Messages, peers, settings during the same outage: nothing more to say.
        assert!(h.failed(Write::Messages(5), &e, t0).is_none());
        assert!(h
            .failed(Write::Other("the known-peer list"), &e, t0)
            .is_none());
        let back = h.worked().unwrap();
        assert!(back.contains("(5 could not be stored"), "{back}");
    }
}
