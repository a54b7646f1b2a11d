//! The tracker: one node per connected component keeps the network's roster (who is online, at
//! which addresses), chosen by a Bully election over the mesh (issue 12).
//!
//! # The election
//!
//! Every node has a *rank* `(priority, id)`, compared in that order; a node started with
//! `--no-tracker` has none and never becomes tracker, but follows everything else. The tracker
//! floods a [`Msg::Heartbeat`] every [`Limits::heartbeat_interval`]. A node starts an election
//! when it has heard no heartbeat for [`Limits::missed_heartbeats`] intervals, or at once when
//! the routing table says the tracker is unreachable ([`Input::Reachable`]), or when it is not
//! following anyone after its start-up grace:
//!
//! - it floods [`Msg::Election`]; every eligible node of higher rank that hears it answers
//!   [`Msg::Alive`] (routed to it) and runs its own election;
//! - a node that hears no `Alive` within [`Limits::election_timeout`] becomes tracker: it floods
//!   [`Msg::Coordinator`] with a new *epoch* (one more than the highest it has seen) and starts
//!   serving; a node that heard `Alive` waits [`Limits::coordinator_timeout`] for the
//!   coordinator and starts over if none comes;
//! - a node that knows of no reachable node of higher rank does not wait at all.
//!
//! A node adopts a coordinator (or the sender of a heartbeat) whose `(epoch, rank)` is newer
//! than what it follows: a higher epoch, or the same epoch and a higher rank. An older epoch is
//! stale and ignored (*fencing*: a tracker that was cut off and comes back with an old epoch is
//! not followed). Whatever the epoch, an eligible node that hears a coordinator or a heartbeat
//! of lower rank than its own runs an election, which it wins with a newer epoch: this is how a
//! returning higher-ranked node takes over, and how two components that each elected a tracker
//! converge on one when a partition heals (the higher tracker hears the lower one's heartbeats).
//! A tracker that adopts another steps down.
//!
//! # The roster
//!
//! Every node registers with its tracker ([`Msg::Register`]: nick, addresses, priority, routed)
//! when it adopts it and every [`Limits::register_interval`]; the tracker answers with the
//! [`Msg::Roster`] and drops an entry [`Limits::entry_ttl`] after its last registration. A node
//! registers only itself (the sender is the envelope's author, checked by the node), once per
//! [`Limits::min_register_gap`] (more are refused and counted), and the roster is bounded
//! ([`Limits::max_roster`]; when full, newcomers are refused rather than anyone evicted).
//! After a partition heals, the nodes that followed the losing tracker register with the winner
//! as they adopt it, so the rosters merge within a round trip.
//!
//! # What it costs (simulated)
//!
//! `election/tests.rs` runs the state machines in a discrete-event harness of its own:
//! components (partitions) and crashes decide who reaches whom, floods reach every node of the
//! component in 5-60 ms, routed messages in 5-120 ms, routing reports reachability changes
//! 20-80 ms after they happen. 300 seeded runs in CI (`cargo test -p meshchat-core`), 5 000
//! ignored ones of up to 20 nodes (`cargo test --release -p meshchat-core -- election
//! --ignored`): a start, then 3-20 partitions, heals, crashes and restarts (a restarted node
//! keeps its highest epoch) under 5 % loss, then 75 s of quiet; after it, in every component,
//! exactly one tracker, the highest-ranked eligible live node, followed at one epoch by every
//! node, with every node in its roster; and no node's epoch ever went down.
//!
//! Failover when the tracker crashes, all nodes priority 100 (messages sent: a flood counts
//! once; heartbeats not counted): N = 6: 18 messages, every node following the new tracker
//! 110 ms after the crash; N = 20: 145, 130 ms; N = 50: 841, 130 ms; N = 1 000: 260 213,
//! 620 ms. The messages grow about as N²/3: every node that learns the tracker is gone floods
//! an ELECTION and every higher one answers it. The first election of a network that starts
//! together costs 80 (N = 10), 255 (20), 530 (30), 905 (40) messages. Heartbeats cost one flood
//! every 500 ms.
//!
//! # Transport
//!
//! Messages are the bodies of signed envelopes of kind [`crate::envelope::Kind::Tracker`].
//! [`Output::Flood`] goes on the broadcast trees to every node of the component;
//! [`Output::Send`] is routed hop by hop ([`crate::routed`]). Both are best effort: heartbeats
//! repeat, registrations are refreshed, elections time out and start over.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::routing::wire::PeerBytes;

mod wire;

pub use wire::{fit_roster, Error, MAX_ADDRS, MAX_ADDR_LEN, MAX_BODY};

/// A node's rank; higher wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rank<P> {
    pub priority: u32,
    pub id: P,
}

/// One roster entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<P> {
    pub id: P,
    pub nick: String,
    pub addrs: Vec<String>,
    /// `None`: not tracker-eligible.
    pub priority: Option<u32>,
}

/// What travels between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg<P> {
    Heartbeat {
        epoch: u64,
        priority: u32,
    },
    Election {
        epoch: u64,
        priority: Option<u32>,
    },
    Alive {
        priority: u32,
    },
    Coordinator {
        epoch: u64,
        priority: u32,
    },
    Register(Entry<P>),
    Roster {
        epoch: u64,
        entries: Vec<Entry<P>>,
        truncated: bool,
    },
}

/// Timers and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub heartbeat_interval: Duration,
    /// Heartbeats missed before an election (3 × 500 ms: 1.5 s).
    pub missed_heartbeats: u32,
    /// How long an electing node waits for an `Alive` from a higher one.
    pub election_timeout: Duration,
    /// How long, after an `Alive`, it waits for the coordinator before starting over.
    pub coordinator_timeout: Duration,
    pub register_interval: Duration,
    pub entry_ttl: Duration,
    pub min_register_gap: Duration,
    pub max_roster: usize,
    /// Priorities remembered of other nodes.
    pub max_known: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(500),
            missed_heartbeats: 3,
            election_timeout: Duration::from_millis(300),
            coordinator_timeout: Duration::from_millis(1000),
            register_interval: Duration::from_secs(60),
            entry_ttl: Duration::from_secs(120),
            min_register_gap: Duration::from_secs(5),
            max_roster: 1024,
            max_known: 4096,
        }
    }
}

/// What the node hands the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<P> {
    /// A message whose envelope `from` signed.
    Received {
        from: P,
        msg: Msg<P>,
    },
    /// The nodes the routing table reaches now (this node excluded).
    Reachable(Vec<P>),
    /// What this node registers: its nick and addresses (at start and on a change).
    Me {
        nick: String,
        addrs: Vec<String>,
    },
    Tick,
}

/// What the election asks of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P> {
    /// Route this message to `to`.
    Send {
        to: P,
        msg: Msg<P>,
    },
    /// Flood it to the component.
    Flood(Msg<P>),
    /// The tracker this node follows changed.
    TrackerChanged {
        tracker: Option<P>,
        epoch: u64,
    },
    /// This node started (true) or stopped serving as tracker.
    Serving(bool),
    /// The roster, from the tracker (or ours, when serving), to show and to dial.
    Roster(Vec<Entry<P>>),
    WakeAt(Instant),
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub elections: u64,
    pub won: u64,
    pub messages_sent: u64,
    /// Coordinators and heartbeats with an epoch older than the one followed.
    pub stale: u64,
    /// Coordinators refused because a live node of higher rank is known.
    pub outranked: u64,
    pub registrations: u64,
    pub registrations_refused: u64,
    pub roster_full: u64,
    /// Messages that make no sense from their sender (an `Alive` from a lower rank, a roster
    /// from a node that is not our tracker, a registration to a node that does not serve).
    pub unexpected: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Following a tracker, or waiting to hear one (until the deadline).
    Follower {
        grace_until: Option<Instant>,
    },
    Electing {
        until: Instant,
    },
    AwaitCoordinator {
        until: Instant,
    },
    Leader,
}

#[derive(Debug, Clone)]
struct Registered<P> {
    entry: Entry<P>,
    expires: Instant,
    accepted: Instant,
}

/// One node's election and (when serving) roster.
#[derive(Debug)]
pub struct Election<P> {
    me: P,
    priority: Option<u32>,
    limits: Limits,
    phase: Phase,
    /// The tracker followed and its epoch.
    tracker: Option<(P, u32, u64)>,
    /// Highest epoch seen anywhere.
    max_epoch: u64,
    last_heard: Instant,
    next_heartbeat: Instant,
    next_register: Option<Instant>,
    known: BTreeMap<P, u32>,
    reachable: BTreeSet<P>,
    roster: BTreeMap<P, Registered<P>>,
    me_entry: Entry<P>,
    wake: Option<Instant>,
    /// When we last flooded our coordinator again in answer to a lower claim.
    last_reassert: Option<Instant>,
    stats: Stats,
}

impl<P: Copy + Ord + std::fmt::Debug + PeerBytes> Election<P> {
    /// A node that has just started: it listens for a tracker for the start-up grace
    /// (`missed_heartbeats` intervals) before it runs an election. `epoch` is the highest it
    /// saw in an earlier run (0 if none).
    pub fn new(me: P, priority: Option<u32>, epoch: u64, limits: Limits, now: Instant) -> Self {
        let grace = now + limits.heartbeat_interval * limits.missed_heartbeats;
        Self {
            me,
            priority,
            limits,
            phase: Phase::Follower {
                grace_until: Some(grace),
            },
            tracker: None,
            max_epoch: epoch,
            last_heard: now,
            next_heartbeat: now,
            next_register: None,
            known: BTreeMap::new(),
            reachable: BTreeSet::new(),
            roster: BTreeMap::new(),
            me_entry: Entry {
                id: me,
                nick: String::new(),
                addrs: Vec::new(),
                priority,
            },
            wake: None,
            last_reassert: None,
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The tracker followed (this node when serving) and the epoch.
    pub fn tracker(&self) -> Option<(P, u64)> {
        self.tracker.map(|(p, _, e)| (p, e))
    }

    pub fn is_serving(&self) -> bool {
        self.phase == Phase::Leader
    }

    /// The highest epoch seen (to persist across restarts).
    pub fn max_epoch(&self) -> u64 {
        self.max_epoch
    }

    /// The roster this node serves (empty unless serving).
    pub fn served_roster(&self) -> Vec<Entry<P>> {
        self.roster.values().map(|r| r.entry.clone()).collect()
    }

    fn my_rank(&self) -> Option<Rank<P>> {
        self.priority.map(|priority| Rank {
            priority,
            id: self.me,
        })
    }

    fn learn(&mut self, p: P, priority: u32) {
        if self.known.len() < self.limits.max_known || self.known.contains_key(&p) {
            self.known.insert(p, priority);
        }
    }

    /// Reachable nodes known to outrank us.
    fn higher_alive(&self) -> bool {
        let Some(mine) = self.my_rank() else {
            return true;
        };
        self.known
            .iter()
            .any(|(p, &priority)| self.reachable.contains(p) && Rank { priority, id: *p } > mine)
    }

    pub fn handle(&mut self, input: Input<P>, now: Instant) -> Vec<Output<P>> {
        let mut out = Vec::new();
        match input {
            Input::Received { from, msg } if from != self.me => {
                self.on_msg(from, msg, now, &mut out)
            }
            Input::Received { .. } => {}
            Input::Reachable(nodes) => {
                self.reachable = nodes.into_iter().filter(|p| *p != self.me).collect();
                if let Some((t, _, _)) = self.tracker {
                    if t != self.me && !self.reachable.contains(&t) && self.phase_is_follower() {
                        self.start_election(now, &mut out);
                    }
                }
            }
            Input::Me { nick, addrs } => {
                self.me_entry.nick = nick;
                self.me_entry.addrs = addrs;
                if self.phase == Phase::Leader {
                    self.register_self(now);
                } else if self.tracker.is_some() {
                    self.next_register = Some(now);
                }
            }
            Input::Tick => {}
        }
        self.tick(now, &mut out);
        self.stats.messages_sent += out
            .iter()
            .filter(|o| matches!(o, Output::Send { .. } | Output::Flood(_)))
            .count() as u64;
        let next = self.next_wake();
        if next != self.wake {
            self.wake = next;
            if let Some(w) = next {
                out.push(Output::WakeAt(w));
            }
        }
        out
    }

    fn phase_is_follower(&self) -> bool {
        matches!(self.phase, Phase::Follower { .. })
    }

    fn next_wake(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Follower { grace_until } => match (self.tracker, grace_until) {
                (Some(_), _) => Some(
                    self.last_heard
                        + self.limits.heartbeat_interval * self.limits.missed_heartbeats,
                ),
                (None, g) => g,
            },
            Phase::Electing { until } | Phase::AwaitCoordinator { until } => Some(until),
            Phase::Leader => Some(self.next_heartbeat),
        };
        let expiry = self.roster.values().map(|r| r.expires).min();
        [phase, self.next_register, expiry]
            .into_iter()
            .flatten()
            .min()
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Output<P>>) {
        match self.phase {
            Phase::Follower { grace_until } => {
                let silent = match self.tracker {
                    Some((t, _, _)) if t != self.me => {
                        now >= self.last_heard
                            + self.limits.heartbeat_interval * self.limits.missed_heartbeats
                    }
                    Some(_) => false,
                    None => grace_until.is_none_or(|g| now >= g),
                };
                if silent {
                    self.start_election(now, out);
                }
            }
            Phase::Electing { until } if now >= until => self.win(now, out),
            Phase::AwaitCoordinator { until } if now >= until => self.start_election(now, out),
            Phase::Leader if now >= self.next_heartbeat => {
                self.next_heartbeat = now + self.limits.heartbeat_interval;
                if let (Some(priority), Some((_, _, epoch))) = (self.priority, self.tracker) {
                    out.push(Output::Flood(Msg::Heartbeat { epoch, priority }));
                }
            }
            _ => {}
        }
        if self.phase == Phase::Leader {
            let before = self.roster.len();
            self.roster.retain(|_, r| r.expires > now);
            if self.roster.len() != before {
                out.push(Output::Roster(self.served_roster()));
            }
            if self.next_register.is_some_and(|t| now >= t) {
                self.register_self(now);
            }
        } else if let (Some((t, _, _)), Some(at)) = (self.tracker, self.next_register) {
            if now >= at && t != self.me {
                self.next_register = Some(now + self.limits.register_interval);
                out.push(Output::Send {
                    to: t,
                    msg: Msg::Register(self.me_entry.clone()),
                });
            }
        }
    }

    fn register_self(&mut self, now: Instant) {
        let entry = self.me_entry.clone();
        self.roster.insert(
            self.me,
            Registered {
                entry,
                expires: now + self.limits.entry_ttl,
                accepted: now,
            },
        );
        self.next_register = Some(now + self.limits.register_interval);
    }

    /// Whether every reachable node's priority is known (then whether anyone outranks us is
    /// known without asking).
    fn know_everyone(&self) -> bool {
        self.reachable.iter().all(|p| self.known.contains_key(p))
    }

    fn start_election(&mut self, now: Instant, out: &mut Vec<Output<P>>) {
        // The tracker we followed is gone (silent or unreachable): forget it, so whoever wins
        // at the same epoch is followed (it could not know that epoch was taken).
        if self.tracker.is_some_and(|(t, _, _)| t != self.me) {
            self.tracker = None;
            out.push(Output::TrackerChanged {
                tracker: None,
                epoch: self.max_epoch,
            });
        }
        self.stats.elections += 1;
        if self.my_rank().is_some() && self.know_everyone() && !self.higher_alive() {
            self.win(now, out);
            return;
        }
        out.push(Output::Flood(Msg::Election {
            epoch: self.max_epoch,
            priority: self.priority,
        }));
        self.phase = if self.priority.is_some() {
            Phase::Electing {
                until: now + self.limits.election_timeout,
            }
        } else {
            // Not a candidate: it only prompts the others, and waits for their coordinator.
            Phase::AwaitCoordinator {
                until: now + self.limits.election_timeout + self.limits.coordinator_timeout,
            }
        };
    }

    fn win(&mut self, now: Instant, out: &mut Vec<Output<P>>) {
        let Some(priority) = self.priority else {
            self.phase = Phase::AwaitCoordinator {
                until: now + self.limits.coordinator_timeout,
            };
            return;
        };
        self.stats.won += 1;
        self.max_epoch += 1;
        let was_leader = self.phase == Phase::Leader;
        self.phase = Phase::Leader;
        self.tracker = Some((self.me, priority, self.max_epoch));
        out.push(Output::Flood(Msg::Coordinator {
            epoch: self.max_epoch,
            priority,
        }));
        self.next_heartbeat = now + self.limits.heartbeat_interval;
        if !was_leader {
            out.push(Output::Serving(true));
            self.register_self(now);
        }
        out.push(Output::TrackerChanged {
            tracker: Some(self.me),
            epoch: self.max_epoch,
        });
        out.push(Output::Roster(self.served_roster()));
    }

    /// Whether we follow a live tracker (not us) that outranks `other`: it deals with them.
    fn covered(&self, other: Rank<P>) -> bool {
        self.phase_is_follower()
            && self.tracker.is_some_and(|(t, pr, _)| {
                Rank {
                    priority: pr,
                    id: t,
                } > other
                    && t != self.me
                    && (self.reachable.contains(&t) || self.reachable.is_empty())
            })
    }

    /// `from` claims to be tracker at `epoch` (a coordinator or a heartbeat).
    fn on_claim(
        &mut self,
        from: P,
        epoch: u64,
        priority: u32,
        heartbeat: bool,
        now: Instant,
        out: &mut Vec<Output<P>>,
    ) {
        self.learn(from, priority);
        let theirs = Rank { priority, id: from };
        // A lower-ranked tracker while we are a candidate: take over (a returning node, or a
        // healed partition), whatever its epoch.
        let covered = self.covered(theirs);
        if let Some(mine) = self.my_rank().filter(|mine| *mine > theirs && !covered) {
            self.max_epoch = self.max_epoch.max(epoch);
            match (self.phase, self.tracker) {
                // Serving at an epoch at least as new: say so again (at most once a
                // heartbeat interval; the heartbeats say it anyway), which it adopts.
                (Phase::Leader, Some((_, _, e))) if e >= epoch => {
                    let due = self
                        .last_reassert
                        .is_none_or(|t| now >= t + self.limits.heartbeat_interval);
                    if !heartbeat && due {
                        self.last_reassert = Some(now);
                        out.push(Output::Flood(Msg::Coordinator {
                            epoch: e,
                            priority: mine.priority,
                        }));
                    }
                }
                // Serving at an older epoch: claim above it.
                (Phase::Leader, _) => self.win(now, out),
                (Phase::Electing { .. }, _) => {}
                _ => self.start_election(now, out),
            }
            return;
        }
        let current = self.tracker.map(|(p, pr, e)| {
            (
                e,
                Rank {
                    priority: pr,
                    id: p,
                },
            )
        });
        let newer = match current {
            None => epoch >= self.max_epoch,
            Some((e, r)) => epoch > e || (epoch == e && theirs >= r),
        };
        if !newer {
            self.stats.stale += 1;
            return;
        }
        // A live node of higher rank than the claimant is known: it will take over; do not
        // follow the claimant meanwhile (a heartbeat of the tracker we follow is still taken).
        let following = current.is_some_and(|(_, r)| r == theirs);
        let outranked = self.known.iter().any(|(p, &pr)| {
            self.reachable.contains(p)
                && Rank {
                    priority: pr,
                    id: *p,
                } > theirs
        });
        if outranked && !following && !heartbeat {
            self.stats.outranked += 1;
            if self.phase_is_follower() || self.phase == Phase::Leader {
                self.phase = Phase::AwaitCoordinator {
                    until: now + self.limits.coordinator_timeout,
                };
            }
            return;
        }
        self.max_epoch = self.max_epoch.max(epoch);
        self.last_heard = now;
        if following && current.is_some_and(|(e, _)| e == epoch) {
            if !self.phase_is_follower() {
                self.phase = Phase::Follower { grace_until: None };
            }
            return;
        }
        if self.phase == Phase::Leader {
            out.push(Output::Serving(false));
            self.roster.clear();
        }
        self.phase = Phase::Follower { grace_until: None };
        self.tracker = Some((from, priority, epoch));
        self.next_register = Some(now);
        out.push(Output::TrackerChanged {
            tracker: Some(from),
            epoch,
        });
    }

    fn on_msg(&mut self, from: P, msg: Msg<P>, now: Instant, out: &mut Vec<Output<P>>) {
        match msg {
            Msg::Heartbeat { epoch, priority } => {
                self.on_claim(from, epoch, priority, true, now, out)
            }
            Msg::Coordinator { epoch, priority } => {
                self.on_claim(from, epoch, priority, false, now, out)
            }
            Msg::Election { epoch, priority } => {
                if let Some(p) = priority {
                    self.learn(from, p);
                }
                self.max_epoch = self.max_epoch.max(epoch);
                let Some(mine) = self.my_rank() else { return };
                // An ineligible sender ranks below everyone.
                let theirs = priority.map(|p| Rank {
                    priority: p,
                    id: from,
                });
                if theirs.is_some_and(|t| t > mine) {
                    return;
                }
                if self.phase == Phase::Leader {
                    let current = self.tracker.map_or(0, |t| t.2);
                    out.push(Output::Send {
                        to: from,
                        msg: Msg::Alive {
                            priority: mine.priority,
                        },
                    });
                    if epoch > current {
                        // Its epoch is ahead of ours: claim again above it.
                        self.win(now, out);
                    } else {
                        out.push(Output::Send {
                            to: from,
                            msg: Msg::Coordinator {
                                epoch: current,
                                priority: mine.priority,
                            },
                        });
                    }
                    return;
                }
                if self.covered(theirs.unwrap_or(mine)) {
                    // Our tracker outranks it and answers it.
                    return;
                }
                out.push(Output::Send {
                    to: from,
                    msg: Msg::Alive {
                        priority: mine.priority,
                    },
                });
                if !matches!(
                    self.phase,
                    Phase::Electing { .. } | Phase::AwaitCoordinator { .. }
                ) {
                    self.start_election(now, out);
                }
            }
            Msg::Alive { priority } => {
                self.learn(from, priority);
                let higher = self
                    .my_rank()
                    .is_none_or(|mine| Rank { priority, id: from } > mine);
                if !higher {
                    self.stats.unexpected += 1;
                    return;
                }
                if let Phase::Electing { .. } = self.phase {
                    self.phase = Phase::AwaitCoordinator {
                        until: now + self.limits.coordinator_timeout,
                    };
                }
            }
            Msg::Register(entry) => self.on_register(from, entry, now, out),
            Msg::Roster { epoch, entries, .. } => {
                if self.tracker.is_none_or(|(t, _, e)| t != from || e != epoch) {
                    self.stats.unexpected += 1;
                    return;
                }
                for e in &entries {
                    if let Some(p) = e.priority {
                        self.learn(e.id, p);
                    }
                }
                out.push(Output::Roster(entries));
            }
        }
    }

    fn on_register(&mut self, from: P, entry: Entry<P>, now: Instant, out: &mut Vec<Output<P>>) {
        if self.phase != Phase::Leader {
            self.stats.unexpected += 1;
            return;
        }
        if entry.id != from {
            // Registering someone else.
            self.stats.registrations_refused += 1;
            return;
        }
        if let Some(p) = entry.priority {
            self.learn(from, p);
        }
        let full = self.roster.len() >= self.limits.max_roster;
        let (gap, ttl) = (self.limits.min_register_gap, self.limits.entry_ttl);
        match self.roster.get_mut(&from) {
            Some(r) if now < r.accepted + gap => {
                self.stats.registrations_refused += 1;
                return;
            }
            Some(r) => {
                r.entry = entry;
                r.expires = now + ttl;
                r.accepted = now;
            }
            None if full => {
                self.stats.roster_full += 1;
                return;
            }
            None => {
                self.roster.insert(
                    from,
                    Registered {
                        entry,
                        expires: now + self.limits.entry_ttl,
                        accepted: now,
                    },
                );
                out.push(Output::Roster(self.served_roster()));
            }
        }
        self.stats.registrations += 1;
        let (entries, truncated) = wire::fit_roster(self.served_roster());
        let epoch = self.tracker.map_or(self.max_epoch, |t| t.2);
        out.push(Output::Send {
            to: from,
            msg: Msg::Roster {
                epoch,
                entries,
                truncated,
            },
        });
    }
}

#[cfg(test)]
mod tests;
