//! The routing table: the state machine of the module docs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::{
    seqno_newer, Advert, Forward, Input, Limits, Message, Output, Request, Route, Stats, INFINITY,
};

/// A neighbour we listen to.
#[derive(Debug, Clone, Copy)]
struct Neighbour {
    /// Added to what it advertises; 1..INFINITY.
    cost: u16,
}

/// A route as one neighbour advertised it (its own distance, before the link's cost).
#[derive(Debug, Clone, Copy)]
struct Entry<P> {
    via: P,
    seqno: u16,
    /// Finite: a retraction removes the entry.
    metric: u16,
    hops: u16,
    /// When `via` last advertised it; it expires `route_expiry` later.
    heard: Instant,
}

/// The route we use and advertise (our own distance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Selected<P> {
    via: P,
    seqno: u16,
    metric: u16,
    hops: u16,
}

/// A seqno request in flight for a destination: ours, or one we forwarded.
#[derive(Debug, Clone, Copy)]
struct Asked {
    seqno: u16,
    at: Instant,
    /// Times we sent our own request for `seqno`.
    tries: u8,
}

/// Everything about one destination.
#[derive(Debug, Clone)]
struct Dest<P> {
    /// One per neighbour advertising a finite route, feasible or not (an unfeasible one that is
    /// shorter than the selected route is what makes us ask for a new seqno).
    routes: Vec<Entry<P>>,
    selected: Option<Selected<P>>,
    /// Feasibility distance `(seqno, metric)`: the best we selected (and so advertised).
    fd: Option<(u16, u16)>,
    /// When the last selected route was lost; the entry is forgotten `route_expiry` later.
    lost_at: Option<Instant>,
    asked: Option<Asked>,
}

/// What one call to [`Table::handle`] accumulates before it becomes outputs.
struct Pending<P> {
    /// Destinations whose selected route changed (our own id when our seqno did).
    changed: BTreeSet<P>,
    /// Adverts for one neighbour only: full dumps and answers to requests.
    unicast: BTreeMap<P, Vec<Advert<P>>>,
    requests: BTreeMap<P, Vec<Request<P>>>,
    /// The earliest deadline set during the call.
    deadline: Option<Instant>,
    /// A full dump went to every neighbour during the call: it already carries every change.
    dumped: bool,
}

impl<P> Default for Pending<P> {
    fn default() -> Self {
        Self {
            changed: BTreeSet::new(),
            unicast: BTreeMap::new(),
            requests: BTreeMap::new(),
            deadline: None,
            dumped: false,
        }
    }
}

impl<P> Pending<P> {
    fn deadline(&mut self, at: Instant) {
        self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
    }
}

/// The routing table of one node.
///
/// The node calls [`Table::handle`] with every input and acts on the outputs; it asks
/// [`Table::forward`] what to do with each DM and shows [`Table::routes`].
#[derive(Debug)]
pub struct Table<P> {
    me: P,
    /// Our own seqno; raised only when asked (see the module docs).
    seqno: u16,
    limits: Limits,
    /// Ordered maps throughout: iteration order is part of the output, and a seeded simulation
    /// must replay exactly.
    neighbours: BTreeMap<P, Neighbour>,
    dests: BTreeMap<P, Dest<P>>,
    next_dump: Instant,
    /// The wake-up time last handed out.
    wake: Option<Instant>,
    /// Destinations whose changed route waits for the next triggered update (see
    /// [`Limits::triggered_delay`]); retractions never wait here.
    batch: BTreeSet<P>,
    /// When the last batched triggered update went out.
    last_flush: Option<Instant>,
    /// When the waiting batch goes out.
    flush_at: Option<Instant>,
    stats: Stats,
}

impl<P: Copy + Ord + std::fmt::Debug> Table<P> {
    /// A table for node `me`, whose seqno starts at `seqno` (the node may persist it across
    /// restarts; it need not: a stale one is fixed by the first request, see the module docs).
    ///
    /// # Panics
    /// If `limits` are inconsistent (see [`Limits`]).
    pub fn new(me: P, seqno: u16, limits: Limits, now: Instant) -> Self {
        limits.check();
        Self {
            me,
            seqno,
            limits,
            neighbours: BTreeMap::new(),
            dests: BTreeMap::new(),
            next_dump: now + limits.update_interval,
            wake: None,
            batch: BTreeSet::new(),
            last_flush: None,
            flush_at: None,
            stats: Stats::default(),
        }
    }

    /// Moves the first periodic dump to `at` (then one every [`Limits::update_interval`]). A
    /// node passes a random phase: nodes started together (a site's power coming back, the lab)
    /// would otherwise send their whole tables to every neighbour in the same milliseconds,
    /// every interval, for as long as they run. Nothing here draws randomness (the state
    /// machine stays deterministic under the simulator).
    pub fn with_first_dump(mut self, at: Instant) -> Self {
        self.next_dump = at;
        self
    }

    pub fn me(&self) -> P {
        self.me
    }

    pub fn seqno(&self) -> u16 {
        self.seqno
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Destinations in the table (reachable or recently lost).
    pub fn len(&self) -> usize {
        self.dests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dests.is_empty()
    }

    /// The neighbours listened to, in order.
    pub fn neighbours(&self) -> impl Iterator<Item = P> + '_ {
        self.neighbours.keys().copied()
    }

    pub fn is_neighbour(&self, p: &P) -> bool {
        self.neighbours.contains_key(p)
    }

    /// The next hop and hop count towards `dest`, if we have a route.
    pub fn next_hop(&self, dest: &P) -> Option<(P, u16)> {
        let s = self.dests.get(dest)?.selected?;
        Some((s.via, s.hops))
    }

    /// What to do with a DM for `dest` that arrived (or is sent) with `hop_limit` hops left.
    pub fn forward(&self, dest: &P, hop_limit: u16) -> Forward<P> {
        if *dest == self.me {
            return Forward::Local;
        }
        if hop_limit == 0 {
            return Forward::Expired;
        }
        match self.next_hop(dest) {
            Some((via, _)) => Forward::Next {
                via,
                hop_limit: hop_limit - 1,
            },
            None => Forward::Flood,
        }
    }

    /// Every selected route, sorted by destination.
    pub fn routes(&self, now: Instant) -> Vec<Route<P>> {
        self.dests
            .iter()
            .filter_map(|(dest, d)| {
                let s = d.selected?;
                let heard = d.routes.iter().find(|r| r.via == s.via)?.heard;
                Some(Route {
                    dest: *dest,
                    next_hop: s.via,
                    metric: s.metric,
                    hops: s.hops,
                    seqno: s.seqno,
                    age: now.saturating_duration_since(heard),
                })
            })
            .collect()
    }

    /// An estimate of the memory the table holds, in bytes: the map entries (B-tree nodes taken
    /// as two thirds full, as after random inserts) and the capacity of every route vector.
    pub fn approx_memory(&self) -> usize {
        use std::mem::size_of;
        let dest = (size_of::<P>() + size_of::<Dest<P>>()) * 3 / 2;
        let neighbour = (size_of::<P>() + size_of::<Neighbour>()) * 3 / 2;
        let routes: usize = self
            .dests
            .values()
            .map(|d| d.routes.capacity() * size_of::<Entry<P>>())
            .sum();
        size_of::<Self>() + self.dests.len() * dest + self.neighbours.len() * neighbour + routes
    }

    /// When the table next wants [`Input::Tick`]: the time of the last [`Output::WakeAt`] it
    /// gave (`None` before the first tick).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.wake
    }

    /// Feeds one input; returns what to do about it.
    pub fn handle(&mut self, input: Input<P>, now: Instant) -> Vec<Output<P>> {
        let mut pend = Pending::default();
        let mut out = Vec::new();
        let tick = matches!(input, Input::Tick);
        match input {
            Input::NeighborUp(p, cost) => self.neighbour_up(p, cost, now, &mut pend),
            Input::NeighborDown(p) => self.neighbour_down(p, now, &mut pend),
            Input::Update(from, adverts) => self.update(from, adverts, now, &mut pend),
            Input::Request(from, requests) => self.request(from, requests, now, &mut pend),
            Input::Tick => self.tick(now, &mut pend, &mut out),
        }
        self.finish(pend, tick, now, &mut out);
        out
    }

    fn neighbour_up(&mut self, p: P, cost: u16, now: Instant, pend: &mut Pending<P>) {
        if p == self.me {
            return;
        }
        let cost = cost.clamp(1, INFINITY - 1);
        match self.neighbours.get_mut(&p) {
            Some(n) if n.cost == cost => {}
            Some(n) => {
                n.cost = cost;
                let via_p: Vec<P> = self
                    .dests
                    .iter()
                    .filter(|(_, d)| d.routes.iter().any(|r| r.via == p))
                    .map(|(k, _)| *k)
                    .collect();
                for dest in via_p {
                    self.reselect(dest, now, pend);
                }
            }
            None => {
                if self.neighbours.len() >= self.limits.max_neighbours {
                    self.stats.refused_neighbours += 1;
                    return;
                }
                self.neighbours.insert(p, Neighbour { cost });
            }
        }
        let dump = self.dump();
        pend.unicast.entry(p).or_default().extend(dump);
    }

    fn neighbour_down(&mut self, p: P, now: Instant, pend: &mut Pending<P>) {
        if self.neighbours.remove(&p).is_none() {
            return;
        }
        let mut affected = Vec::new();
        for (dest, d) in self.dests.iter_mut() {
            let before = d.routes.len();
            d.routes.retain(|r| r.via != p);
            if d.routes.len() != before {
                affected.push(*dest);
            }
        }
        for dest in affected {
            self.reselect(dest, now, pend);
        }
    }

    fn update(
        &mut self,
        from: P,
        mut adverts: Vec<Advert<P>>,
        now: Instant,
        pend: &mut Pending<P>,
    ) {
        if !self.neighbours.contains_key(&from) {
            self.stats.from_strangers += 1;
            return;
        }
        if adverts.len() > self.limits.max_adverts {
            self.stats.truncated += (adverts.len() - self.limits.max_adverts) as u64;
            adverts.truncate(self.limits.max_adverts);
        }
        self.stats.adverts_received += adverts.len() as u64;
        for a in adverts {
            if a.dest == self.me {
                // A route to ourselves with a seqno newer than ours: left over from an earlier
                // run of this node. Jump past it so our own adverts win everywhere.
                if seqno_newer(a.seqno, self.seqno) {
                    self.seqno = a.seqno.wrapping_add(1);
                    self.stats.seqno_bumps += 1;
                    pend.changed.insert(self.me);
                }
                continue;
            }
            if !self.dests.contains_key(&a.dest) {
                if a.is_retraction() {
                    continue;
                }
                if self.dests.len() >= self.limits.max_destinations {
                    self.gc(now, pend);
                }
                if self.dests.len() >= self.limits.max_destinations {
                    self.stats.refused_destinations += 1;
                    continue;
                }
                self.dests.insert(
                    a.dest,
                    Dest {
                        routes: Vec::new(),
                        selected: None,
                        fd: None,
                        lost_at: None,
                        asked: None,
                    },
                );
            }
            let Some(d) = self.dests.get_mut(&a.dest) else {
                continue;
            };
            let slot = d.routes.iter().position(|r| r.via == from);
            match (slot, a.is_retraction()) {
                (Some(i), true) => {
                    d.routes.swap_remove(i);
                }
                (None, true) => continue,
                (Some(i), false) => {
                    d.routes[i] = Entry {
                        via: from,
                        seqno: a.seqno,
                        metric: a.metric,
                        hops: a.hops,
                        heard: now,
                    };
                }
                (None, false) => d.routes.push(Entry {
                    via: from,
                    seqno: a.seqno,
                    metric: a.metric,
                    hops: a.hops,
                    heard: now,
                }),
            }
            self.reselect(a.dest, now, pend);
        }
    }

    fn request(
        &mut self,
        from: P,
        mut requests: Vec<Request<P>>,
        now: Instant,
        pend: &mut Pending<P>,
    ) {
        if !self.neighbours.contains_key(&from) {
            self.stats.from_strangers += 1;
            return;
        }
        if requests.len() > self.limits.max_adverts {
            self.stats.truncated += (requests.len() - self.limits.max_adverts) as u64;
            requests.truncate(self.limits.max_adverts);
        }
        for r in requests {
            if r.dest == self.me {
                if seqno_newer(r.seqno, self.seqno) {
                    self.seqno = r.seqno;
                    self.stats.seqno_bumps += 1;
                    // Everyone hears of it: the triggered update goes to every neighbour.
                    pend.changed.insert(self.me);
                } else {
                    let own = self.own_advert();
                    pend.unicast.entry(from).or_default().push(own);
                }
                continue;
            }
            let (timeout, retries) = (self.limits.request_timeout, self.limits.request_retries);
            let Some(d) = self.dests.get_mut(&r.dest) else {
                continue;
            };
            if let Some(s) = d.selected {
                if !seqno_newer(r.seqno, s.seqno) {
                    pend.unicast.entry(from).or_default().push(Advert {
                        dest: r.dest,
                        seqno: s.seqno,
                        metric: s.metric,
                        hops: s.hops,
                    });
                    continue;
                }
            }
            if r.hop_limit <= 1 {
                continue;
            }
            if let Some(a) = d.asked {
                // The same request is already on its way: a copy is dropped while we retry ours
                // ourselves, but after one we forwarded only for half a request timeout (RFC 8966
                // §3.8.1.2 drops redundant copies; babeld counts a forwarded request as recent for
                // a second at most, shorter than its resend). Its requester retries a whole timeout
                // after its first try, and the retry, taking the same path, reaches us a few
                // milliseconds sooner as often as later: held for a whole timeout, a retry was
                // taken for a copy of the request it repeats about half the time, so a request lost
                // beyond us left the requester starving until its next round, 30 to 60 s later
                // (seed 2334 of the election simulator; see
                // `a_restart_during_churn_leaves_no_node_without_a_route`).
                let ours = a.tries > 0 && a.tries < retries;
                let hold = if ours { timeout } else { timeout / 2 };
                if !seqno_newer(r.seqno, a.seqno) && now < a.at + hold {
                    continue;
                }
            }
            // Along the selected route if it does not lead back, else the best other one.
            let via = match d.selected {
                Some(s) if s.via != from => Some(s.via),
                _ => d
                    .routes
                    .iter()
                    .filter(|e| e.via != from)
                    .min_by_key(|e| (e.metric, e.via))
                    .map(|e| e.via),
            };
            let Some(via) = via else { continue };
            d.asked = Some(Asked {
                seqno: r.seqno,
                at: now,
                tries: 0,
            });
            self.stats.requests_forwarded += 1;
            // If the answer is lost on the way, our own request goes out when this one times
            // out (it holds ours back until then), so wake up for it.
            pend.deadline(now + timeout);
            pend.requests.entry(via).or_default().push(Request {
                dest: r.dest,
                seqno: r.seqno,
                hop_limit: r.hop_limit - 1,
            });
        }
    }

    fn tick(&mut self, now: Instant, pend: &mut Pending<P>, out: &mut Vec<Output<P>>) {
        let expiry = self.limits.route_expiry;
        let mut affected = Vec::new();
        for (dest, d) in self.dests.iter_mut() {
            let before = d.routes.len();
            d.routes.retain(|r| now < r.heard + expiry);
            if d.routes.len() != before {
                self.stats.expired += (before - d.routes.len()) as u64;
                affected.push(*dest);
            }
        }
        for dest in affected {
            self.reselect(dest, now, pend);
        }
        self.gc(now, pend);
        // Retries of requests still unanswered.
        let dests: Vec<P> = self.dests.keys().copied().collect();
        for dest in dests {
            self.maybe_request(dest, now, pend);
        }
        if now >= self.next_dump {
            self.next_dump = now + self.limits.update_interval;
            let dump = self.dump();
            let neighbours: Vec<P> = self.neighbours.keys().copied().collect();
            self.send_adverts(&neighbours, &dump, out);
            // The dump carries every waiting change too.
            self.batch.clear();
            self.flush_at = None;
            pend.dumped = true;
        }
    }

    /// Forgets destinations with no route whose hold time has passed, and the feasibility
    /// distance of those that still have (unfeasible) routes: after the hold time no neighbour
    /// can still route through us to them, so any route is safe again. This bounds starvation
    /// that seqno requests cannot end (Babel's source garbage collection, RFC 8966 §3.7.3): a
    /// destination that restarted with a seqno exactly half the sequence space away from the
    /// one we remember is neither newer nor older, and no request can make it so.
    fn gc(&mut self, now: Instant, pend: &mut Pending<P>) {
        let hold = self.limits.route_expiry;
        let past = |d: &Dest<P>| d.selected.is_none() && d.lost_at.is_some_and(|t| now >= t + hold);
        self.dests.retain(|_, d| {
            !(d.routes.is_empty()
                && d.selected.is_none()
                && d.lost_at.is_none_or(|t| now >= t + hold))
        });
        let starved: Vec<P> = self
            .dests
            .iter()
            .filter(|(_, d)| past(d))
            .map(|(k, _)| *k)
            .collect();
        for dest in starved {
            if let Some(d) = self.dests.get_mut(&dest) {
                d.fd = None;
                d.lost_at = None;
                d.asked = None;
                self.stats.forgotten_distances += 1;
            }
            self.reselect(dest, now, pend);
        }
    }

    /// Selects the best feasible route to `dest` again; records a change, moves the feasibility
    /// distance, and asks for a new seqno if the routes call for it.
    fn reselect(&mut self, dest: P, now: Instant, pend: &mut Pending<P>) {
        let Some(d) = self.dests.get_mut(&dest) else {
            return;
        };
        let neighbours = &self.neighbours;
        let current = d.selected.map(|s| s.via);
        let mut best: Option<(Selected<P>, Preference<P>)> = None;
        for r in &d.routes {
            let Some(metric) = total(r, neighbours) else {
                continue;
            };
            if !feasible(d.fd, r.seqno, r.metric) {
                continue;
            }
            let hops = r.hops.saturating_add(1);
            // Shortest, then fewest hops, then the route we already use (no flapping between
            // equals), then the smallest id (deterministic).
            let key = (metric, hops, Some(r.via) != current, r.via);
            if best.as_ref().is_none_or(|(_, k)| key < *k) {
                let s = Selected {
                    via: r.via,
                    seqno: r.seqno,
                    metric,
                    hops,
                };
                best = Some((s, key));
            }
        }
        let new = best.map(|(s, _)| s);
        if new != d.selected {
            d.selected = new;
            pend.changed.insert(dest);
            self.stats.route_changes += 1;
            match new {
                Some(s) => {
                    d.lost_at = None;
                    let better = match d.fd {
                        None => true,
                        Some((fs, fm)) => {
                            seqno_newer(s.seqno, fs) || (s.seqno == fs && s.metric < fm)
                        }
                    };
                    if better {
                        d.fd = Some((s.seqno, s.metric));
                    }
                }
                None => {
                    d.lost_at = Some(now);
                    pend.deadline(now + self.limits.route_expiry);
                }
            }
        }
        self.maybe_request(dest, now, pend);
    }

    /// Sends (or resends) a seqno request for `dest` if we have no feasible route while one
    /// exists, or an unfeasible route is shorter than the selected one.
    fn maybe_request(&mut self, dest: P, now: Instant, pend: &mut Pending<P>) {
        let Some(d) = self.dests.get_mut(&dest) else {
            return;
        };
        let neighbours = &self.neighbours;
        let best = d.routes.iter().filter_map(|r| total(r, neighbours)).min();
        let want = best.is_some_and(|b| d.selected.is_none_or(|s| b < s.metric));
        if !want {
            // Answered, or moot: forget our own request (a forwarded one stays, to drop copies).
            if d.asked.is_some_and(|a| a.tries > 0) {
                d.asked = None;
            }
            return;
        }
        // Some route is unfeasible, so we have selected (and have a feasibility distance) before.
        let Some((fd_seqno, _)) = d.fd else {
            return;
        };
        let seqno = fd_seqno.wrapping_add(1);
        // Retries every `request_timeout`; after `request_retries` of them, a fresh round every
        // update interval (`next_deadline` wakes us), so a starving route is never given up on.
        let l = &self.limits;
        let tries = match d.asked {
            Some(a) if a.seqno == seqno || seqno_newer(a.seqno, seqno) => {
                if now < a.at + l.request_timeout {
                    return;
                }
                if a.tries < l.request_retries {
                    a.tries + 1
                } else if now >= a.at + l.update_interval {
                    1
                } else {
                    return;
                }
            }
            _ => 1,
        };
        d.asked = Some(Asked {
            seqno,
            at: now,
            tries,
        });
        let mut sent = false;
        for r in d.routes.iter().filter(|r| total(r, neighbours).is_some()) {
            sent = true;
            pend.requests.entry(r.via).or_default().push(Request {
                dest,
                seqno,
                hop_limit: l.request_hops,
            });
        }
        if sent {
            self.stats.requests_sent += 1;
            if tries < l.request_retries {
                pend.deadline(now + l.request_timeout);
            }
        }
    }

    fn own_advert(&self) -> Advert<P> {
        Advert {
            dest: self.me,
            seqno: self.seqno,
            metric: 0,
            hops: 0,
        }
    }

    /// What we advertise for `dest`: our route, a retraction, or nothing if we never had one.
    fn advert(&self, dest: P) -> Option<Advert<P>> {
        if dest == self.me {
            return Some(self.own_advert());
        }
        let d = self.dests.get(&dest)?;
        Some(match d.selected {
            Some(s) => Advert {
                dest,
                seqno: s.seqno,
                metric: s.metric,
                hops: s.hops,
            },
            None => Advert {
                dest,
                seqno: d.fd.map_or(0, |(s, _)| s),
                metric: INFINITY,
                hops: 0,
            },
        })
    }

    /// Our route to ourselves, every selected route, and a retraction for every destination
    /// lost within its hold time: a triggered retraction that was lost on the way is repeated,
    /// so a neighbour's stale route through us goes within a dump interval instead of waiting
    /// out its expiry (which, hop after hop, would add up along a chain of lost retractions).
    fn dump(&self) -> Vec<Advert<P>> {
        let mut v = Vec::with_capacity(self.dests.len() + 1);
        v.push(self.own_advert());
        v.extend(self.dests.iter().filter_map(|(dest, d)| match d.selected {
            Some(s) => Some(Advert {
                dest: *dest,
                seqno: s.seqno,
                metric: s.metric,
                hops: s.hops,
            }),
            None if d.lost_at.is_some() => self.advert(*dest),
            None => None,
        }));
        v
    }

    fn send_adverts(&mut self, to: &[P], adverts: &[Advert<P>], out: &mut Vec<Output<P>>) {
        for chunk in adverts.chunks(self.limits.max_adverts) {
            for p in to {
                self.stats.adverts_sent += chunk.len() as u64;
                out.push(Output::Send(*p, Message::Update(chunk.to_vec())));
            }
        }
    }

    /// Turns what a call accumulated into outputs.
    fn finish(&mut self, pend: Pending<P>, tick: bool, now: Instant, out: &mut Vec<Output<P>>) {
        self.trigger(&pend, now, out);
        for (p, adverts) in &pend.unicast {
            if self.neighbours.contains_key(p) {
                self.send_adverts(&[*p], adverts, out);
            }
        }
        for (p, requests) in pend.requests {
            for chunk in requests.chunks(self.limits.max_adverts) {
                out.push(Output::Send(p, Message::Request(chunk.to_vec())));
            }
        }
        let changed: Vec<P> = pend.changed.into_iter().filter(|p| *p != self.me).collect();
        if !changed.is_empty() {
            out.push(Output::Changed(changed));
        }
        let mut deadline = pend.deadline;
        if let Some(f) = self.flush_at {
            deadline = Some(deadline.map_or(f, |d| d.min(f)));
        }
        let wake = if tick {
            Some(self.earliest_due(now))
        } else {
            match (deadline, self.wake) {
                (Some(d), Some(w)) if d < w => Some(d),
                (Some(d), None) => Some(d.min(self.next_dump)),
                _ => None,
            }
        };
        if let Some(w) = wake {
            self.wake = Some(w);
            out.push(Output::WakeAt(w));
        }
    }

    /// Triggered updates for the destinations whose route changed during this call: a
    /// retraction goes to every neighbour at once, any other change joins the batch, which goes
    /// out at once if the last batch left at least [`Limits::triggered_delay`] ago and else
    /// when that much time has passed (the table asks to be woken for it).
    fn trigger(&mut self, pend: &Pending<P>, now: Instant, out: &mut Vec<Output<P>>) {
        if pend.dumped {
            return;
        }
        let mut urgent = Vec::new();
        for dest in &pend.changed {
            match self.advert(*dest) {
                Some(a) if a.is_retraction() => {
                    urgent.push(a);
                    self.batch.remove(dest);
                }
                Some(_) => {
                    self.batch.insert(*dest);
                }
                None => {}
            }
        }
        let neighbours: Vec<P> = self.neighbours.keys().copied().collect();
        self.stats.urgent_retractions += urgent.len() as u64;
        self.send_adverts(&neighbours, &urgent, out);
        if self.batch.is_empty() {
            self.flush_at = None;
            return;
        }
        let due = self
            .last_flush
            .map_or(now, |t| t + self.limits.triggered_delay);
        if now < due {
            self.flush_at = Some(due);
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let adverts: Vec<Advert<P>> = batch.iter().filter_map(|d| self.advert(*d)).collect();
        self.send_adverts(&neighbours, &adverts, out);
        self.stats.triggered_updates += 1;
        self.last_flush = Some(now);
        self.flush_at = None;
    }

    /// The earliest time something is due: a dump, a route expiry, a hold ending, a retry, the
    /// waiting batch of triggered updates.
    fn earliest_due(&self, now: Instant) -> Instant {
        let l = &self.limits;
        let mut at = self.next_dump;
        if let Some(f) = self.flush_at {
            at = at.min(f);
        }
        for d in self.dests.values() {
            for r in &d.routes {
                at = at.min(r.heard + l.route_expiry);
            }
            if let Some(t) = d.lost_at {
                at = at.min(t + l.route_expiry);
            }
            // Our own requests' retries, and forwarded ones (`tries == 0`) timing out: a lost
            // answer to a forwarded request must not hold our own back until the next dump.
            // Retries spent, the fresh round an update interval after the last one (waiting
            // for our next dump instead made that gap up to two intervals).
            if let Some(a) = d.asked {
                let due = if a.tries < l.request_retries {
                    a.at + l.request_timeout
                } else {
                    a.at + l.update_interval
                };
                if due > now {
                    at = at.min(due);
                }
            }
        }
        // Never in the past, never busy-looping on a deadline that is due now.
        at.max(now + Duration::from_millis(1))
    }
}

/// How routes are ranked, smallest first: metric, hops, not the current one, next hop.
type Preference<P> = (u16, u16, bool, P);

/// Our distance through this route, `None` if infinite.
fn total<P: Ord>(r: &Entry<P>, neighbours: &BTreeMap<P, Neighbour>) -> Option<u16> {
    let cost = neighbours.get(&r.via)?.cost;
    let m = u32::from(r.metric) + u32::from(cost);
    (m < u32::from(INFINITY)).then_some(m as u16)
}

/// The feasibility condition (module docs): a newer seqno, or the same and a strictly smaller
/// advertised metric than our feasibility distance.
fn feasible(fd: Option<(u16, u16)>, seqno: u16, metric: u16) -> bool {
    match fd {
        None => true,
        Some((fs, fm)) => seqno_newer(seqno, fs) || (seqno == fs && metric < fm),
    }
}
