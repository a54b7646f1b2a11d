//! The roster a tracker serves: one entry per registered node, keyed by the authenticated
//! sender, refreshed by its registrations, dropped after [`Limits::entry_ttl`] without one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{wire, Entry, Limits};
use crate::routing::wire::PeerBytes;

#[derive(Debug, Clone)]
struct Registered<P> {
    entry: Entry<P>,
    expires: Instant,
    /// When the last registration was accepted, and at which epoch of ours.
    accepted: Instant,
    epoch: u64,
    /// When the roster was last sent to it again (within the register gap), and whether it
    /// asked again since, too soon: then it is sent when the gap has passed.
    resent: Option<Instant>,
    deferred: bool,
}

/// What a registrant that asks again too soon gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resend {
    /// The roster, now.
    Now,
    /// The roster, when the answer gap has passed.
    Later,
    /// Nothing: its entry changed (a registration, refused within the register gap).
    No,
}

/// Why a registration was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Within [`Limits::min_register_gap`] of the last one, at no newer epoch.
    TooSoon,
    /// [`Limits::max_roster`] entries already, and this is a newcomer.
    Full,
}

#[derive(Debug)]
pub(super) struct Roster<P> {
    /// The tracker itself: its entry never expires.
    me: P,
    entries: BTreeMap<P, Registered<P>>,
    /// Changes with every change of the entries (wrapping): heartbeats carry it, so followers
    /// know when their copy is out of date.
    version: u32,
}

impl<P: Copy + Ord + PeerBytes> Roster<P> {
    pub(super) fn new(me: P) -> Self {
        Self {
            me,
            entries: BTreeMap::new(),
            version: 0,
        }
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.bump();
    }

    pub(super) fn version(&self) -> u32 {
        self.version
    }

    fn bump(&mut self) {
        self.version = self.version.wrapping_add(1);
    }

    /// Whether `id`, registered and unchanged (`entry` is what it sent again too soon), may
    /// have the roster sent again: at most once per `gap`; one asking sooner is answered when
    /// the gap has passed ([`Roster::due_resends`]). A follower asks again when a heartbeat
    /// shows a roster version it does not have.
    pub(super) fn may_answer(&mut self, entry: &Entry<P>, gap: Duration, now: Instant) -> Resend {
        match self.entries.get_mut(&entry.id) {
            Some(r) if r.entry == *entry && r.resent.is_none_or(|t| now >= t + gap) => {
                r.resent = Some(now);
                Resend::Now
            }
            Some(r) if r.entry == *entry => {
                r.deferred = true;
                Resend::Later
            }
            _ => Resend::No,
        }
    }

    /// The registrants whose deferred resend is due now (marked sent).
    pub(super) fn due_resends(&mut self, gap: Duration, now: Instant) -> Vec<P> {
        let mut due = Vec::new();
        for (p, r) in &mut self.entries {
            if r.deferred && r.resent.is_none_or(|t| now >= t + gap) {
                r.deferred = false;
                r.resent = Some(now);
                due.push(*p);
            }
        }
        due
    }

    /// When the next deferred resend is due.
    pub(super) fn next_resend(&self, gap: Duration) -> Option<Instant> {
        self.entries
            .values()
            .filter(|r| r.deferred)
            .filter_map(|r| r.resent.map(|t| t + gap))
            .min()
    }

    /// Our own entry (when we start serving, and when it changes).
    pub(super) fn set_own(&mut self, entry: Entry<P>, epoch: u64, now: Instant) {
        if self.entries.get(&self.me).is_some_and(|r| r.entry == entry) {
            return;
        }
        let r = Registered {
            entry,
            expires: now,
            accepted: now,
            epoch,
            resent: None,
            deferred: false,
        };
        self.entries.insert(self.me, r);
        self.bump();
    }

    /// Takes a registration: `entry` is the sender's own (checked by the caller) and `epoch`
    /// not newer than ours. `Ok(true)` if the roster changed (a newcomer, or a new nick or
    /// address); `Ok(false)` for a plain refresh.
    pub(super) fn register(
        &mut self,
        entry: Entry<P>,
        epoch: u64,
        limits: &Limits,
        now: Instant,
    ) -> Result<bool, Refused> {
        let fresh = Registered {
            expires: now + limits.entry_ttl,
            accepted: now,
            epoch,
            entry,
            resent: None,
            deferred: false,
        };
        let full = self.entries.len() >= limits.max_roster;
        match self.entries.get_mut(&fresh.entry.id) {
            Some(r) if now < r.accepted + limits.min_register_gap && epoch <= r.epoch => {
                Err(Refused::TooSoon)
            }
            Some(r) => {
                let changed = r.entry != fresh.entry;
                *r = fresh;
                if changed {
                    self.bump();
                }
                Ok(changed)
            }
            None if full => Err(Refused::Full),
            None => {
                self.entries.insert(fresh.entry.id, fresh);
                self.bump();
                Ok(true)
            }
        }
    }

    /// Drops the entries not refreshed in time; true if any was.
    pub(super) fn expire(&mut self, now: Instant) -> bool {
        let me = self.me;
        let before = self.entries.len();
        self.entries.retain(|p, r| *p == me || r.expires > now);
        let changed = self.entries.len() != before;
        if changed {
            self.bump();
        }
        changed
    }

    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter(|(p, _)| **p != self.me)
            .map(|(_, r)| r.expires)
            .min()
    }

    /// Every entry, sorted by id.
    pub(super) fn entries(&self) -> Vec<Entry<P>> {
        self.entries.values().map(|r| r.entry.clone()).collect()
    }

    /// The answer to `to`'s registration: the entries from `to` on in id order, wrapping, cut
    /// to one message ([`wire::fit_roster`]), and whether something was left out. When the
    /// roster is too big for one message, different nodes see different parts of it.
    pub(super) fn answer_for(&self, to: P) -> (Vec<Entry<P>>, bool) {
        let after = self.entries.range(to..).map(|(_, r)| r.entry.clone());
        let before = self.entries.range(..to).map(|(_, r)| r.entry.clone());
        wire::fit_roster(after.chain(before).collect())
    }
}
