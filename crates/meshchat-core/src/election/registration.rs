//! The tracker's side of registration, and the follower's: a node registers itself with the
//! tracker it follows, the tracker answers with the roster (at once, or when the answer gap
//! has passed), and a follower keeps the roster its tracker sends. The roster's own rules are
//! in `roster.rs`.

use std::time::Instant;

use super::*;

impl<P: Copy + Ord + Debug + PeerBytes> Election<P> {
    pub(super) fn register_self(&mut self, now: Instant) {
        let epoch = self.tracker.map_or(self.max_epoch, |t| t.epoch);
        self.roster.set_own(self.me_entry.clone(), epoch, now);
    }

    /// Serving, our roster changed: the next heartbeat (which carries its version) goes within
    /// [`Limits::roster_heartbeat`], so followers learn of the change soon; a burst of changes
    /// is one early heartbeat per that interval.
    pub(super) fn roster_changed(&mut self, now: Instant) {
        self.next_heartbeat = self.next_heartbeat.min(now + self.limits.roster_heartbeat);
    }

    pub(super) fn roster_output(&self) -> Output<P> {
        Output::Roster {
            entries: self.served_roster(),
            truncated: false,
        }
    }

    pub(super) fn on_register(
        &mut self,
        from: P,
        epoch: u64,
        entry: Entry<P>,
        now: Instant,
        out: &mut Vec<Output<P>>,
    ) {
        if entry.id != from {
            self.stats.forged += 1;
            return;
        }
        if self.phase != Phase::Leader {
            self.stats.unexpected += 1;
            return;
        }
        self.heard(from, entry.priority);
        let ours = self.tracker.expect("a leader follows itself").epoch;
        if epoch > ours {
            self.stats.stale += 1;
            return;
        }
        let entry = sanitize(entry);
        match self
            .roster
            .register(entry.clone(), epoch, &self.limits, now)
        {
            // A follower whose roster is out of date asks again: the roster, at most once per
            // `min_answer_gap` (sooner asks are answered when it has passed), and nothing else
            // changes.
            Err(Refused::TooSoon) => {
                match self
                    .roster
                    .may_answer(&entry, self.limits.min_answer_gap, now)
                {
                    Resend::Now => {
                        self.stats.roster_resent += 1;
                        self.answer(from, ours, out);
                    }
                    Resend::Later => {}
                    Resend::No => self.stats.registrations_refused += 1,
                }
            }
            Err(Refused::Full) => self.stats.roster_full += 1,
            Ok(changed) => {
                self.stats.registrations += 1;
                if changed {
                    self.roster_changed(now);
                    out.push(self.roster_output());
                }
                self.answer(from, ours, out);
            }
        }
    }

    /// Our roster, sent to `to`.
    pub(super) fn answer(&self, to: P, epoch: u64, out: &mut Vec<Output<P>>) {
        let (entries, truncated) = self.roster.answer_for(to);
        out.push(Output::Send {
            to,
            msg: Msg::Roster {
                epoch,
                version: self.roster.version(),
                entries,
                truncated,
            },
        });
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_roster(
        &mut self,
        from: P,
        epoch: u64,
        version: u32,
        mut entries: Vec<Entry<P>>,
        truncated: bool,
        now: Instant,
        out: &mut Vec<Output<P>>,
    ) {
        let Some(t) = self.tracker.filter(|t| t.id == from && t.id != self.me) else {
            self.stats.unexpected += 1;
            return;
        };
        if epoch < t.epoch {
            self.stats.stale += 1;
            return;
        }
        self.last_heard = self.last_heard.max(now);
        self.registered = true;
        self.roster_version = Some(version);
        // Answered: a heartbeat showing a newer version may be asked about at once.
        self.last_query = None;
        self.next_register = Some(now + self.limits.register_interval);
        self.register_backoff = self.limits.register_retry;
        let before = entries.len();
        entries.truncate(self.limits.max_roster);
        let mut seen = BTreeSet::new();
        entries.retain(|e| seen.insert(e.id));
        self.stats.roster_cut += (before - entries.len()) as u64;
        for e in &entries {
            self.learn(e.id, e.priority);
        }
        out.push(Output::Roster {
            truncated: truncated || entries.len() < before,
            entries,
        });
    }
}
