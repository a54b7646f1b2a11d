//! Reachability: whether other nodes can dial this one, and what the node does about it.
//!
//! The parts that find out and act are libp2p's (AutoNAT, UPnP, circuit relay v2, DCUtR); this
//! machine holds what they said and makes the few decisions that are ours:
//! - what to tell the user ([`Reach`]): public, mapped (a UPnP port mapping on the home
//!   router), relayed (reachable through reservations on public nodes), behind a NAT with no
//!   relay yet, or not known yet;
//! - when to ask public neighbours for relay reservations, how many, and from whom: only while
//!   AutoNAT says we are private and no port mapping stands, at most [`Limits::relays`] at once,
//!   from neighbours we dialed ourselves (so they are reachable) that serve relays, retrying a
//!   refused or lost one no sooner than [`Limits::retry`];
//! - when to give reservations back: as soon as we are public or mapped.
//!
//! Peers are `P` (a peer id in the node, small integers in tests); addresses are text (the
//! node's multiaddrs), which this machine only carries.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// What AutoNAT says of us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatStatus {
    /// No verdict yet (or no peer could test us).
    Unknown,
    /// A peer dialed us back at an address we were seen at.
    Public,
    /// Peers could not dial us back: a NAT or firewall is in the way.
    Private,
}

/// How others can reach us, as the user is told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reach {
    /// Not known yet.
    #[default]
    Unknown,
    /// Dialable at an address peers saw us at.
    Public,
    /// Dialable through a port mapping on the router (UPnP IGD).
    Mapped,
    /// Behind a NAT, dialable through relay reservations; hole punching makes direct
    /// connections from there.
    Relayed,
    /// Behind a NAT, not dialable at all yet: outgoing connections only.
    Private,
}

impl Reach {
    /// The word the front-ends show.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Public => "public",
            Self::Mapped => "mapped",
            Self::Relayed => "relayed",
            Self::Private => "private",
        }
    }
}

/// Tunables.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Reservations held at once while private. Two: one relay going away leaves us reachable.
    pub relays: usize,
    /// A reservation asked for and not granted in this time counts as refused.
    pub ask_timeout: Duration,
    /// A relay that refused or lost our reservation is asked again no sooner than this.
    pub retry: Duration,
    /// Most relay offers remembered (neighbours that serve relays).
    pub max_offers: usize,
    /// A node that was public and is then found private stays public this long, unless a probe
    /// says public again: one probe that fails (a neighbour busy, its connection slots full)
    /// must not send a reachable node's traffic through relays. A node found private from the
    /// start acts at once.
    pub demotion_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            relays: 2,
            ask_timeout: Duration::from_secs(20),
            retry: Duration::from_secs(30),
            max_offers: 64,
            demotion_grace: Duration::from_secs(120),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<P> {
    /// AutoNAT's verdict changed.
    Nat(NatStatus),
    /// The router mapped a port for us: this external address.
    Mapped(String),
    /// A mapping expired or failed.
    Unmapped(String),
    /// A neighbour we dialed serves relays; `addr` dials it.
    RelayOffered { relay: P, addr: String },
    /// That neighbour is gone (disconnected, or it stopped serving).
    RelayGone(P),
    /// A relay granted our reservation; `addr` is the relayed address others dial us at.
    Reserved { relay: P, addr: String },
    /// A reservation was refused, failed or ended (its listener closed).
    ReservationEnded(P),
    /// The timer ([`Reachability::next_deadline`]) passed.
    Tick,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P> {
    /// Ask `relay` (dialable at `addr`) for a reservation: listen on its circuit address.
    Reserve { relay: P, addr: String },
    /// Give the reservation at `relay` back (close that listener).
    Release(P),
    /// The user-facing reachability changed.
    Changed(Reach),
    /// The addresses to advertise changed (see [`Reachability::advertised`]).
    AddrsChanged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Asked(Instant),
    Reserved(String),
}

/// The machine.
#[derive(Debug)]
pub struct Reachability<P> {
    limits: Limits,
    nat: NatStatus,
    /// Whether AutoNAT ever said public, and since when it says private after that (the
    /// demotion waits [`Limits::demotion_grace`]).
    was_public: bool,
    demoted_at: Option<Instant>,
    mapped: BTreeSet<String>,
    offers: BTreeMap<P, String>,
    held: BTreeMap<P, Held>,
    /// Relays not to ask before the time given.
    resting: BTreeMap<P, Instant>,
}

impl<P: Ord + Clone> Reachability<P> {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            nat: NatStatus::Unknown,
            was_public: false,
            demoted_at: None,
            mapped: BTreeSet::new(),
            offers: BTreeMap::new(),
            held: BTreeMap::new(),
            resting: BTreeMap::new(),
        }
    }

    /// How others can reach us now.
    pub fn reach(&self) -> Reach {
        if !self.mapped.is_empty() {
            Reach::Mapped
        } else if self.nat == NatStatus::Public || self.demotion_pending() {
            Reach::Public
        } else if self.held.values().any(|h| matches!(h, Held::Reserved(_))) {
            Reach::Relayed
        } else if self.nat == NatStatus::Private {
            Reach::Private
        } else {
            Reach::Unknown
        }
    }

    /// AutoNAT's last verdict.
    pub fn nat(&self) -> NatStatus {
        self.nat
    }

    /// The relayed addresses we hold reservations for, by relay.
    pub fn relayed(&self) -> impl Iterator<Item = (&P, &str)> {
        self.held.iter().filter_map(|(p, h)| match h {
            Held::Reserved(a) => Some((p, a.as_str())),
            Held::Asked(_) => None,
        })
    }

    /// The relays we hold or asked reservations of.
    pub fn relays(&self) -> impl Iterator<Item = &P> {
        self.held.keys()
    }

    /// Which kind of address to advertise: `None` for "our listen addresses, as before anything
    /// is known" (Unknown), else the addresses that work from outside: the confirmed external
    /// ones (Public, Mapped: the caller has them from the swarm) or the relayed ones (Relayed);
    /// none at all while private with no relay, since a private address would only mislead
    /// someone outside our network.
    pub fn advertised(&self) -> Advertise {
        match self.reach() {
            Reach::Unknown => Advertise::Listen,
            Reach::Public | Reach::Mapped => Advertise::External,
            Reach::Relayed => Advertise::Relayed,
            Reach::Private => Advertise::Nothing,
        }
    }

    /// When [`Input::Tick`] is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let asked = self.held.values().filter_map(|h| match h {
            Held::Asked(at) => Some(*at + self.limits.ask_timeout),
            Held::Reserved(_) => None,
        });
        // A resting relay matters only when it could be asked once its rest is over.
        let rest = self
            .want_more()
            .then(|| {
                self.resting
                    .iter()
                    .filter(|(p, _)| self.offers.contains_key(*p))
                    .map(|(_, t)| *t)
                    .min()
            })
            .flatten();
        let demotion = self
            .demoted_at
            .filter(|_| self.demotion_pending())
            .map(|at| at + self.limits.demotion_grace);
        asked.chain(rest).chain(demotion).min()
    }

    fn needs_relays(&self) -> bool {
        self.nat == NatStatus::Private && !self.demotion_pending() && self.mapped.is_empty()
    }

    /// Said private after being public, within the grace: still taken as public.
    fn demotion_pending(&self) -> bool {
        self.nat == NatStatus::Private && self.was_public && self.demoted_at.is_some()
    }

    fn want_more(&self) -> bool {
        self.needs_relays() && self.held.len() < self.limits.relays
    }

    pub fn handle(&mut self, input: Input<P>, now: Instant) -> Vec<Output<P>> {
        let before = (self.reach(), self.advertised_key());
        let mut out = Vec::new();
        match input {
            Input::Nat(status) => {
                match status {
                    NatStatus::Public => {
                        self.was_public = true;
                        self.demoted_at = None;
                    }
                    NatStatus::Private if self.was_public && self.nat != NatStatus::Private => {
                        self.demoted_at = Some(now);
                    }
                    _ => {}
                }
                self.nat = status;
            }
            Input::Mapped(addr) => {
                self.mapped.insert(addr);
            }
            Input::Unmapped(addr) => {
                self.mapped.remove(&addr);
            }
            Input::RelayOffered { relay, addr } => {
                if self.offers.len() < self.limits.max_offers || self.offers.contains_key(&relay) {
                    self.offers.insert(relay, addr);
                }
            }
            Input::RelayGone(relay) => {
                self.offers.remove(&relay);
                self.resting.remove(&relay);
                if self.held.remove(&relay).is_some() {
                    out.push(Output::Release(relay));
                }
            }
            Input::Reserved { relay, addr } => {
                if let Some(held) = self.held.get_mut(&relay) {
                    *held = Held::Reserved(addr);
                } else {
                    // Granted after we gave up on it, or never asked: not wanted.
                    out.push(Output::Release(relay));
                }
            }
            Input::ReservationEnded(relay) => {
                if self.held.remove(&relay).is_some() {
                    self.resting.insert(relay, now + self.limits.retry);
                }
            }
            Input::Tick => {
                if self
                    .demoted_at
                    .is_some_and(|at| now >= at + self.limits.demotion_grace)
                {
                    // Private for the whole grace: it is so.
                    self.demoted_at = None;
                    self.was_public = false;
                }
                let late: Vec<P> = self
                    .held
                    .iter()
                    .filter(|(_, h)| {
                        matches!(h, Held::Asked(at) if now >= *at + self.limits.ask_timeout)
                    })
                    .map(|(p, _)| p.clone())
                    .collect();
                for relay in late {
                    self.held.remove(&relay);
                    self.resting.insert(relay.clone(), now + self.limits.retry);
                    out.push(Output::Release(relay));
                }
            }
        }
        self.resting.retain(|_, until| *until > now);
        if self.needs_relays() {
            self.ask_more(now, &mut out);
        } else if self.nat == NatStatus::Public || !self.mapped.is_empty() {
            // Reachable without them: reservations only cost the relays.
            for relay in std::mem::take(&mut self.held).into_keys() {
                out.push(Output::Release(relay));
            }
        }
        let after = (self.reach(), self.advertised_key());
        if after.0 != before.0 {
            out.push(Output::Changed(after.0));
        }
        if after != before {
            out.push(Output::AddrsChanged);
        }
        out
    }

    fn ask_more(&mut self, now: Instant, out: &mut Vec<Output<P>>) {
        while self.held.len() < self.limits.relays {
            let next = self
                .offers
                .iter()
                .find(|(p, _)| !self.held.contains_key(*p) && !self.resting.contains_key(*p))
                .map(|(p, a)| (p.clone(), a.clone()));
            let Some((relay, addr)) = next else { break };
            self.held.insert(relay.clone(), Held::Asked(now));
            out.push(Output::Reserve { relay, addr });
        }
    }

    /// What the advertised addresses depend on: the kind, and the relayed ones.
    fn advertised_key(&self) -> (Advertise, Vec<String>) {
        let relayed = self.relayed().map(|(_, a)| a.to_owned()).collect();
        (self.advertised(), relayed)
    }
}

/// Which addresses a node advertises (tracker roster, profiles): see
/// [`Reachability::advertised`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advertise {
    Listen,
    External,
    Relayed,
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64, t0: Instant) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    fn offer(r: u8) -> Input<u8> {
        Input::RelayOffered {
            relay: r,
            addr: format!("/relay/{r}"),
        }
    }

    fn reserves(out: &[Output<u8>]) -> Vec<u8> {
        out.iter()
            .filter_map(|o| match o {
                Output::Reserve { relay, .. } => Some(*relay),
                _ => None,
            })
            .collect()
    }

    fn releases(out: &[Output<u8>]) -> Vec<u8> {
        out.iter()
            .filter_map(|o| match o {
                Output::Release(r) => Some(*r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_private_node_reserves_two_relays_and_says_relayed() {
        let t0 = Instant::now();
        let mut r = Reachability::new(Limits::default());
        for p in 1..=3 {
            assert!(
                reserves(&r.handle(offer(p), t0)).is_empty(),
                "not while unknown"
            );
        }
        assert_eq!(r.advertised(), Advertise::Listen);
        let out = r.handle(Input::Nat(NatStatus::Private), t0);
        assert_eq!(reserves(&out), vec![1, 2]);
        assert!(out.contains(&Output::Changed(Reach::Private)));
        assert_eq!(r.advertised(), Advertise::Nothing);
        let out = r.handle(
            Input::Reserved {
                relay: 1,
                addr: "/relayed/1".into(),
            },
            t0,
        );
        assert!(out.contains(&Output::Changed(Reach::Relayed)));
        assert!(out.contains(&Output::AddrsChanged));
        assert_eq!(r.advertised(), Advertise::Relayed);
        assert_eq!(r.relayed().collect::<Vec<_>>(), vec![(&1, "/relayed/1")]);
    }

    #[test]
    fn a_relay_that_does_not_answer_is_replaced_and_rested() {
        let t0 = Instant::now();
        let mut r = Reachability::new(Limits {
            relays: 1,
            ..Limits::default()
        });
        r.handle(offer(1), t0);
        r.handle(offer(2), t0);
        assert_eq!(
            reserves(&r.handle(Input::Nat(NatStatus::Private), t0)),
            vec![1]
        );
        assert_eq!(r.next_deadline(), Some(t(20, t0)));
        let out = r.handle(Input::Tick, t(20, t0));
        assert_eq!(releases(&out), vec![1]);
        assert_eq!(reserves(&out), vec![2]);
        // 2 refuses too: 1 is still resting until 50 s.
        let out = r.handle(Input::ReservationEnded(2), t(21, t0));
        assert!(reserves(&out).is_empty());
        assert_eq!(r.next_deadline(), Some(t(50, t0)));
        assert_eq!(reserves(&r.handle(Input::Tick, t(50, t0))), vec![1]);
    }

    #[test]
    fn public_or_mapped_gives_reservations_back() {
        let t0 = Instant::now();
        let mut r = Reachability::new(Limits::default());
        r.handle(offer(1), t0);
        r.handle(Input::Nat(NatStatus::Private), t0);
        r.handle(
            Input::Reserved {
                relay: 1,
                addr: "/relayed/1".into(),
            },
            t0,
        );
        let out = r.handle(Input::Mapped("/ip4/192.88.99.2/tcp/7447".into()), t0);
        assert_eq!(releases(&out), vec![1]);
        assert_eq!(r.reach(), Reach::Mapped);
        assert_eq!(r.advertised(), Advertise::External);
        // The mapping goes: private again, relays asked again (1 was released, not refused).
        let out = r.handle(Input::Unmapped("/ip4/192.88.99.2/tcp/7447".into()), t0);
        assert_eq!(reserves(&out), vec![1]);
        assert_eq!(r.reach(), Reach::Private);
        let out = r.handle(Input::Nat(NatStatus::Public), t0);
        assert_eq!(releases(&out), vec![1]);
        assert_eq!(r.reach(), Reach::Public);
    }

    #[test]
    fn a_relay_that_goes_is_released_and_another_asked() {
        let t0 = Instant::now();
        let mut r = Reachability::new(Limits {
            relays: 1,
            ..Limits::default()
        });
        r.handle(offer(1), t0);
        r.handle(Input::Nat(NatStatus::Private), t0);
        r.handle(
            Input::Reserved {
                relay: 1,
                addr: "/relayed/1".into(),
            },
            t0,
        );
        assert!(
            reserves(&r.handle(offer(2), t0)).is_empty(),
            "one is enough"
        );
        let out = r.handle(Input::RelayGone(1), t0);
        assert_eq!(releases(&out), vec![1]);
        assert_eq!(reserves(&out), vec![2]);
        assert!(out.contains(&Output::Changed(Reach::Private)));
        // A grant nobody waits for is given back.
        let out = r.handle(
            Input::Reserved {
                relay: 3,
                addr: "/relayed/3".into(),
            },
            t0,
        );
        assert_eq!(releases(&out), vec![3]);
    }

    #[test]
    fn one_failed_probe_does_not_demote_a_public_node() {
        let t0 = Instant::now();
        let mut r = Reachability::new(Limits::default());
        r.handle(offer(1), t0);
        r.handle(Input::Nat(NatStatus::Public), t0);
        let out = r.handle(Input::Nat(NatStatus::Private), t(20, t0));
        assert!(reserves(&out).is_empty());
        assert_eq!(r.reach(), Reach::Public);
        assert_eq!(r.next_deadline(), Some(t(140, t0)));
        // Public again within the grace: nothing happened.
        r.handle(Input::Nat(NatStatus::Public), t(40, t0));
        r.handle(Input::Nat(NatStatus::Private), t(60, t0));
        assert!(reserves(&r.handle(Input::Tick, t(179, t0))).is_empty());
        // Private for the whole grace: relays are asked.
        let out = r.handle(Input::Tick, t(180, t0));
        assert_eq!(reserves(&out), vec![1]);
        assert!(out.contains(&Output::Changed(Reach::Private)));
    }

    #[test]
    fn offers_are_bounded() {
        let t0 = Instant::now();
        let mut r = Reachability::new(Limits {
            max_offers: 4,
            ..Limits::default()
        });
        for p in 0..100 {
            r.handle(offer(p), t0);
        }
        assert_eq!(r.offers.len(), 4);
    }
}
