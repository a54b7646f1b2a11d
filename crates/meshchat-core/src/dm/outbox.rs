//! The outbox: the DM state machine of the module docs.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::Hash;

use super::wire::{open, Dm, DmId, Frame, Opened, Receipt, RoutedReceipt};
use super::{Address, EncryptionKey, Error, Routes};
use crate::envelope::MessageId;
use crate::identity::Keypair;

const DAY_MS: u64 = 24 * 3600 * 1000;
/// An own DM whose hand-over to the next hop failed is tried again after this long.
const SEND_FAILED_RETRY_MS: u64 = 1000;

/// Bounds and timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Our own DMs awaiting a receipt; beyond it [`Input::Send`] fails at once.
    pub max_own: usize,
    /// Others' DMs and receipts held for lack of a route, in all.
    pub max_custody: usize,
    pub max_custody_bytes: usize,
    /// Held for one recipient: one popular or long-offline recipient cannot fill the store.
    pub max_custody_per_recipient: usize,
    /// Handed over by one neighbour. A relay cannot know who *sent* a DM (that is sealed), so
    /// the neighbour that hands it over is the one held to account; a flood from one sender
    /// fills that neighbour's share and no more.
    pub max_custody_per_neighbour: usize,
    /// Longest a DM may live (its expiry minus now); later expiries are refused. Default 7 days.
    pub max_lifetime_ms: u64,
    /// First retry of an unacknowledged DM of ours; doubled per attempt up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// DMs (and envelope ids) delivered here, remembered so each is shown once.
    pub max_delivered: usize,
    /// Recently relayed DM ids and receipts, to drop replays and copies.
    pub max_seen: usize,
    pub seen_ttl_ms: u64,
    /// Hop limit of the DMs and receipts we originate.
    pub hop_limit: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_own: 1000,
            max_custody: 2000,
            max_custody_bytes: 16 * 1024 * 1024,
            max_custody_per_recipient: 100,
            max_custody_per_neighbour: 200,
            max_lifetime_ms: 7 * DAY_MS,
            retry_initial_ms: 30_000,
            retry_max_ms: 3600 * 1000,
            max_delivered: 10_000,
            max_seen: 10_000,
            // Shorter than the first retry: a sender's retry must get past relays that saw the
            // first copy (it may have died with a crashed next hop).
            seen_ttl_ms: 10_000,
            hop_limit: 64,
        }
    }
}

/// What the sender's UI shows for a DM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No route yet (recipient offline or unknown): waiting here.
    Queued,
    /// Handed to a next hop (or flooded); no receipt yet.
    Sent,
    /// A valid receipt came back.
    Delivered,
    /// Expired without a receipt (or refused: our outbox was full).
    Failed,
}

/// Which store an item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Our own DM, until its receipt.
    Own,
    /// Someone else's DM, waiting for a route to its recipient.
    Custody,
    /// A receipt (ours or in transit) waiting for a route to the DM's sender; keyed by the DM id.
    Receipt,
}

/// The key of a stored item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub role: Role,
    pub id: DmId,
}

/// What the node persists (and hands back to [`Outbox::restore`] at start). `frame` is stored as
/// its encoding ([`Frame::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<P> {
    pub role: Role,
    pub frame: Frame<P>,
    /// The neighbour that handed it over (custody and receipts), for its share.
    pub from: Option<P>,
    /// Sends so far (own DMs).
    pub attempts: u32,
    /// Custody ends at this time even if the DM's own expiry is later.
    pub hold_until_ms: u64,
}

/// Why an incoming item was not kept. Counted in [`Stats::refused`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    Bytes,
    PerRecipient,
    PerNeighbour,
}

/// Counters (fixed fields, no strings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub delivered: u64,
    /// DMs delivered here that the node could not store ([`Input::NotStored`]): taken again
    /// from the sender's next try.
    pub not_stored: u64,
    /// Copies of a DM already delivered here (its receipt is sent again).
    pub duplicates: u64,
    pub forwarded: u64,
    pub flooded: u64,
    /// Our own DMs handed to a neighbour for custody for lack of a route.
    pub handed_to_custodian: u64,
    pub receipts_sent: u64,
    pub receipts_accepted: u64,
    /// Receipts whose signature does not verify.
    pub forged_receipts: u64,
    /// Valid receipts addressed to us for nothing we wait on: a copy of one already taken, a
    /// DM we never sent, or signed by someone other than the DM's recipient.
    pub unmatched_receipts: u64,
    /// DMs named to us that do not open with our key (sealed to someone else, or damaged).
    pub cannot_open: u64,
    /// Opened, but the envelope inside names someone else, or is not a valid DM.
    pub not_for_us: u64,
    pub bad_envelopes: u64,
    /// The sender's id cannot be named (no receipt possible).
    pub no_return_address: u64,
    /// A DM or receipt seen a moment ago, dropped.
    pub replays: u64,
    pub hop_limit_spent: u64,
    pub expired: u64,
    /// Expiry further away than [`Limits::max_lifetime_ms`].
    pub too_long_lived: u64,
    pub custody_taken: u64,
    pub refused_total: u64,
    pub refused_bytes: u64,
    pub refused_per_recipient: u64,
    pub refused_per_neighbour: u64,
    pub outbox_full: u64,
}

impl Stats {
    fn refused(&mut self, r: Refusal) {
        match r {
            Refusal::Total => self.refused_total += 1,
            Refusal::Bytes => self.refused_bytes += 1,
            Refusal::PerRecipient => self.refused_per_recipient += 1,
            Refusal::PerNeighbour => self.refused_per_neighbour += 1,
        }
    }
}

/// What the node hands the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<P> {
    /// Our own DM, sealed with [`super::seal`]; tracked until its receipt or its expiry.
    Send(Dm<P>),
    /// A DM-layer frame from neighbour `P`.
    Frame(P, Frame<P>),
    /// A DM that came over the flooded path (delivered if it is for us, else ignored: the
    /// broadcast layer relays it).
    Flooded(Dm<P>),
    /// The routing table's [`crate::routing::Output::Changed`].
    RoutesChanged(Vec<P>),
    /// A [`Output::Forward`] that could not be handed over: it is taken back.
    SendFailed(Frame<P>),
    /// The node could not store the DM `dm` (envelope `envelope`) that an [`Output::Deliver`]
    /// handed it (a full disk): it is forgotten as delivered and its receipt withdrawn (the node
    /// drops the receipt of the same call), so the sender's next try delivers it again instead
    /// of a receipt telling the sender it arrived.
    NotStored { dm: DmId, envelope: MessageId },
    /// The time of the last [`Output::WakeAt`] came.
    Tick,
}

/// What the outbox asks the node to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P> {
    /// Send this frame to this neighbour on `/meshchat/route/1`.
    Forward(P, Frame<P>),
    /// No route: put this DM on the flooded path.
    Flood(Dm<P>),
    /// Store (or overwrite) this item.
    Persist(Stored<P>),
    Remove(Slot),
    /// A DM for us, opened and checked, shown for the first time.
    Deliver(Box<Opened>),
    /// The state of one of our DMs changed.
    Status(DmId, Status),
    /// Call with [`Input::Tick`] at this Unix time (ms); replaces earlier ones.
    WakeAt(u64),
}

#[derive(Debug, Clone)]
struct Item<P> {
    frame: Frame<P>,
    from: Option<P>,
    attempts: u32,
    hold_until_ms: u64,
    /// Own DMs: when to try again; others: unused.
    next_try_ms: u64,
    /// Own DMs: when it last left on a route.
    last_sent_ms: Option<u64>,
    status: Status,
    flooded: bool,
}

impl<P: Address> Item<P> {
    fn dest(&self) -> P {
        match &self.frame {
            Frame::Dm(d) => d.recipient,
            Frame::Receipt(r) => r.to,
        }
    }
    fn size(&self) -> usize {
        self.frame.encoded_len()
    }
    fn expires_ms(&self) -> u64 {
        match &self.frame {
            Frame::Dm(d) => d.expires_ms.min(self.hold_until_ms),
            Frame::Receipt(_) => self.hold_until_ms,
        }
    }
}

/// A bounded set of recent keys, oldest out first, each for at most `ttl_ms`.
#[derive(Debug)]
struct Recent<K> {
    set: HashSet<K>,
    order: VecDeque<(u64, K)>,
    cap: usize,
    ttl_ms: u64,
}

impl<K: Eq + Hash + Copy> Recent<K> {
    fn new(cap: usize, ttl_ms: u64) -> Self {
        Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            ttl_ms,
        }
    }
    fn contains(&mut self, k: &K, now: u64) -> bool {
        while let Some(&(t, old)) = self.order.front() {
            if now < t.saturating_add(self.ttl_ms) && self.order.len() <= self.cap {
                break;
            }
            self.order.pop_front();
            self.set.remove(&old);
        }
        self.set.contains(k)
    }
    /// True if it was new.
    fn insert(&mut self, k: K, now: u64) -> bool {
        if self.contains(&k, now) {
            return false;
        }
        if self.order.len() >= self.cap {
            if let Some((_, old)) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(k);
        self.order.push_back((now, k));
        true
    }
}

/// One node's DM state: its own DMs, what it holds for others, what it delivered.
#[derive(Debug)]
pub struct Outbox<P> {
    me: P,
    identity: Keypair,
    key: EncryptionKey,
    limits: Limits,
    items: BTreeMap<Slot, Item<P>>,
    custody_bytes: usize,
    /// DM ids delivered here, with the receipt to send again for a copy.
    delivered: Recent<DmId>,
    receipts: BTreeMap<DmId, Receipt>,
    /// Envelope ids delivered here: a re-sealed copy of one is still shown once.
    delivered_envelopes: Recent<MessageId>,
    /// DMs and receipts relayed a moment ago (the receipt's DM id, with the tag bit flipped).
    seen: Recent<(bool, DmId)>,
    wake: Option<u64>,
    stats: Stats,
}

impl<P: Address> Outbox<P> {
    /// The outbox of node `me`, whose identity signs receipts and whose `key` opens DMs.
    pub fn new(me: P, identity: Keypair, key: EncryptionKey, limits: Limits) -> Self {
        let life = limits.max_lifetime_ms + crate::envelope::MAX_CLOCK_SKEW_MS;
        Self {
            me,
            identity,
            key,
            limits,
            items: BTreeMap::new(),
            custody_bytes: 0,
            delivered: Recent::new(limits.max_delivered, life),
            receipts: BTreeMap::new(),
            delivered_envelopes: Recent::new(limits.max_delivered, life),
            seen: Recent::new(limits.max_seen, limits.seen_ttl_ms),
            wake: None,
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// When the outbox next wants [`Input::Tick`], in Unix milliseconds: the time of the last
    /// [`Output::WakeAt`] it gave, `None` while nothing waits.
    pub fn next_deadline(&self) -> Option<u64> {
        self.wake
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The status of one of our DMs still tracked (delivered and failed ones are forgotten).
    pub fn status(&self, id: &DmId) -> Option<Status> {
        self.items
            .get(&Slot {
                role: Role::Own,
                id: *id,
            })
            .map(|i| i.status)
    }

    /// Items held, by role.
    pub fn held(&self, role: Role) -> usize {
        self.items.keys().filter(|s| s.role == role).count()
    }

    /// Loads an item the node persisted; call before the first input, then [`Input::Tick`].
    pub fn restore(&mut self, s: Stored<P>, now_ms: u64) {
        let id = match &s.frame {
            Frame::Dm(d) => d.id(),
            Frame::Receipt(r) => r.receipt.dm,
        };
        let item = Item {
            frame: s.frame,
            from: s.from,
            attempts: s.attempts,
            hold_until_ms: s.hold_until_ms,
            next_try_ms: now_ms,
            last_sent_ms: None,
            status: if s.attempts > 0 {
                Status::Sent
            } else {
                Status::Queued
            },
            flooded: s.attempts > 0,
        };
        if s.role != Role::Own {
            self.custody_bytes += item.size();
        }
        self.items.insert(Slot { role: s.role, id }, item);
    }

    /// Feeds one input; `routes` is the routing table, `now_ms` the wall clock.
    pub fn handle(
        &mut self,
        input: Input<P>,
        routes: &impl Routes<P>,
        now_ms: u64,
    ) -> Vec<Output<P>> {
        let mut out = Vec::new();
        match input {
            Input::Send(dm) => self.send(dm, routes, now_ms, &mut out),
            Input::Frame(from, Frame::Dm(dm)) => {
                self.on_dm(Some(from), dm, routes, now_ms, &mut out)
            }
            Input::Frame(from, Frame::Receipt(r)) => {
                self.on_receipt(Some(from), r, routes, now_ms, &mut out)
            }
            Input::Flooded(dm) => {
                if dm.recipient == self.me {
                    self.on_dm(None, dm, routes, now_ms, &mut out);
                }
            }
            Input::RoutesChanged(dests) => self.routes_changed(&dests, routes, now_ms, &mut out),
            Input::SendFailed(frame) => self.send_failed(frame, now_ms, &mut out),
            Input::NotStored { dm, envelope } => {
                self.delivered.set.remove(&dm);
                self.delivered_envelopes.set.remove(&envelope);
                self.receipts.remove(&dm);
                self.stats.not_stored += 1;
                let slot = Slot {
                    role: Role::Receipt,
                    id: dm,
                };
                if self.items.contains_key(&slot) {
                    self.drop_item(slot, &mut out);
                }
            }
            Input::Tick => self.tick(routes, now_ms, &mut out),
        }
        let next = self.next_wake();
        if next != self.wake {
            self.wake = next;
            if let Some(w) = next {
                out.push(Output::WakeAt(w.max(now_ms + 1)));
            }
        }
        out
    }

    fn send(&mut self, dm: Dm<P>, routes: &impl Routes<P>, now: u64, out: &mut Vec<Output<P>>) {
        let id = dm.id();
        let slot = Slot {
            role: Role::Own,
            id,
        };
        if self.items.contains_key(&slot) {
            return;
        }
        if dm.expires_ms <= now || self.held(Role::Own) >= self.limits.max_own {
            if dm.expires_ms > now {
                self.stats.outbox_full += 1;
            }
            out.push(Output::Status(id, Status::Failed));
            return;
        }
        let item = Item {
            frame: Frame::Dm(dm),
            from: None,
            attempts: 0,
            hold_until_ms: u64::MAX,
            next_try_ms: now,
            last_sent_ms: None,
            status: Status::Queued,
            flooded: false,
        };
        self.items.insert(slot, item);
        self.try_own(id, routes, now, out);
        if let Some(i) = self.items.get(&slot) {
            if i.attempts == 0 {
                out.push(Output::Status(id, Status::Queued));
            }
        }
        self.persist(slot, out);
    }

    /// Sends our DM `id` if there is a route (or floods it once if there is none), and sets
    /// the next retry.
    fn try_own(&mut self, id: DmId, routes: &impl Routes<P>, now: u64, out: &mut Vec<Output<P>>) {
        let slot = Slot {
            role: Role::Own,
            id,
        };
        let l = self.limits;
        let Some(item) = self.items.get_mut(&slot) else {
            return;
        };
        let Frame::Dm(dm) = &item.frame else { return };
        let backoff = |attempts: u32| {
            l.retry_initial_ms
                .saturating_mul(1u64 << attempts.min(20))
                .min(l.retry_max_ms)
        };
        match routes.next_hop(&dm.recipient) {
            Some(via) => {
                out.push(Output::Forward(via, Frame::Dm(dm.clone())));
                self.stats.forwarded += 1;
                item.next_try_ms = now + backoff(item.attempts);
                item.last_sent_ms = Some(now);
                item.attempts += 1;
                if item.status != Status::Sent {
                    item.status = Status::Sent;
                    out.push(Output::Status(id, Status::Sent));
                }
            }
            None => {
                // Someone else keeps a copy (so the DM survives us going offline), and the
                // flooded path gets it once; we keep ours and wait for a route
                // (`RoutesChanged`), checking again after a backoff.
                if let Some(c) = routes.custodian(&dm.recipient) {
                    out.push(Output::Forward(c, Frame::Dm(dm.clone())));
                    self.stats.handed_to_custodian += 1;
                }
                if !item.flooded {
                    out.push(Output::Flood(dm.clone()));
                    self.stats.flooded += 1;
                    item.flooded = true;
                }
                item.next_try_ms = now + backoff(item.attempts);
            }
        }
    }

    fn on_dm(
        &mut self,
        from: Option<P>,
        dm: Dm<P>,
        routes: &impl Routes<P>,
        now: u64,
        out: &mut Vec<Output<P>>,
    ) {
        if dm.expires_ms <= now {
            self.stats.expired += 1;
            return;
        }
        if dm.expires_ms > now.saturating_add(self.limits.max_lifetime_ms) {
            self.stats.too_long_lived += 1;
            return;
        }
        let id = dm.id();
        if dm.recipient == self.me {
            self.deliver(id, dm, routes, now, out);
            return;
        }
        if !self.seen.insert((false, id), now) {
            self.stats.replays += 1;
            return;
        }
        let held = Slot {
            role: Role::Custody,
            id,
        };
        if self.items.contains_key(&held)
            || self.items.contains_key(&Slot {
                role: Role::Own,
                id,
            })
        {
            self.stats.replays += 1;
            return;
        }
        if dm.hop_limit == 0 {
            self.stats.hop_limit_spent += 1;
            return;
        }
        let dm = Dm {
            hop_limit: dm.hop_limit - 1,
            ..dm
        };
        match routes.next_hop(&dm.recipient) {
            Some(via) => {
                self.stats.forwarded += 1;
                out.push(Output::Forward(via, Frame::Dm(dm)));
            }
            None => self.take(Role::Custody, id, Frame::Dm(dm), from, now, out),
        }
    }

    fn deliver(
        &mut self,
        id: DmId,
        dm: Dm<P>,
        routes: &impl Routes<P>,
        now: u64,
        out: &mut Vec<Output<P>>,
    ) {
        if self.delivered.contains(&id, now) {
            self.stats.duplicates += 1;
            if let Some(r) = self.receipts.get(&id).copied() {
                self.send_receipt(r, routes, now, out);
            }
            return;
        }
        let opened = match open(&dm, &self.key, &self.identity.public(), now) {
            Ok(o) => o,
            Err(Error::CannotOpen) => {
                self.stats.cannot_open += 1;
                return;
            }
            Err(Error::NotForUs) | Err(Error::Malformed(_)) => {
                self.stats.not_for_us += 1;
                return;
            }
            Err(_) => {
                self.stats.bad_envelopes += 1;
                return;
            }
        };
        let author = *opened.envelope.author();
        let receipt = Receipt::sign(&self.identity, id, &author);
        self.delivered.insert(id, now);
        // Bounded with `delivered`: forget receipts whose DM left the cache.
        self.receipts.insert(id, receipt);
        if self.receipts.len() > self.limits.max_delivered {
            let delivered = &mut self.delivered;
            self.receipts.retain(|k, _| delivered.set.contains(k));
        }
        if self.delivered_envelopes.insert(opened.envelope.id(), now) {
            self.stats.delivered += 1;
            out.push(Output::Deliver(Box::new(opened)));
        } else {
            self.stats.duplicates += 1;
        }
        self.send_receipt(receipt, routes, now, out);
    }

    fn send_receipt(
        &mut self,
        receipt: Receipt,
        routes: &impl Routes<P>,
        now: u64,
        out: &mut Vec<Output<P>>,
    ) {
        let Some(to) = P::of_key(&receipt.sender) else {
            self.stats.no_return_address += 1;
            return;
        };
        self.stats.receipts_sent += 1;
        let r = RoutedReceipt {
            hop_limit: self.limits.hop_limit,
            to,
            receipt,
        };
        match routes.next_hop(&to) {
            Some(via) => out.push(Output::Forward(via, Frame::Receipt(r))),
            None => self.take(Role::Receipt, receipt.dm, Frame::Receipt(r), None, now, out),
        }
    }

    fn on_receipt(
        &mut self,
        from: Option<P>,
        r: RoutedReceipt<P>,
        routes: &impl Routes<P>,
        now: u64,
        out: &mut Vec<Output<P>>,
    ) {
        if r.receipt.verify().is_err() {
            self.stats.forged_receipts += 1;
            return;
        }
        let id = r.receipt.dm;
        let signer = P::of_key(&r.receipt.recipient);
        if r.to == self.me {
            let slot = Slot {
                role: Role::Own,
                id,
            };
            let ours = r.receipt.sender == *self.identity.public().as_bytes();
            match self.items.get(&slot) {
                Some(item) if ours && signer == Some(item.dest()) => {
                    self.items.remove(&slot);
                    self.stats.receipts_accepted += 1;
                    out.push(Output::Status(id, Status::Delivered));
                    out.push(Output::Remove(slot));
                }
                _ => self.stats.unmatched_receipts += 1,
            }
            return;
        }
        if !self.seen.insert((true, id), now) {
            self.stats.replays += 1;
            return;
        }
        // The DM got there: a copy we hold for it can go.
        let held = Slot {
            role: Role::Custody,
            id,
        };
        if self
            .items
            .get(&held)
            .is_some_and(|i| Some(i.dest()) == signer)
        {
            self.drop_item(held, out);
        }
        if r.hop_limit == 0 {
            self.stats.hop_limit_spent += 1;
            return;
        }
        let r = RoutedReceipt {
            hop_limit: r.hop_limit - 1,
            ..r
        };
        match routes.next_hop(&r.to) {
            Some(via) => {
                self.stats.forwarded += 1;
                out.push(Output::Forward(via, Frame::Receipt(r)));
            }
            None => self.take(Role::Receipt, id, Frame::Receipt(r), from, now, out),
        }
    }

    /// Takes custody of a DM or a receipt, within the bounds.
    fn take(
        &mut self,
        role: Role,
        id: DmId,
        frame: Frame<P>,
        from: Option<P>,
        now: u64,
        out: &mut Vec<Output<P>>,
    ) {
        let slot = Slot { role, id };
        if self.items.contains_key(&slot) {
            return;
        }
        let item = Item {
            frame,
            from,
            attempts: 0,
            hold_until_ms: now.saturating_add(self.limits.max_lifetime_ms),
            next_try_ms: now,
            last_sent_ms: None,
            status: Status::Queued,
            flooded: false,
        };
        if let Some(r) = self.refusal(&item) {
            self.stats.refused(r);
            return;
        }
        self.custody_bytes += item.size();
        self.items.insert(slot, item);
        self.stats.custody_taken += 1;
        self.persist(slot, out);
    }

    fn refusal(&self, item: &Item<P>) -> Option<Refusal> {
        let l = &self.limits;
        let held = self.items.iter().filter(|(s, _)| s.role != Role::Own);
        let (mut total, mut dest, mut neighbour) = (0, 0, 0);
        for (_, i) in held {
            total += 1;
            if i.dest() == item.dest() {
                dest += 1;
            }
            if item.from.is_some() && i.from == item.from {
                neighbour += 1;
            }
        }
        if total >= l.max_custody {
            Some(Refusal::Total)
        } else if self.custody_bytes + item.size() > l.max_custody_bytes {
            Some(Refusal::Bytes)
        } else if dest >= l.max_custody_per_recipient {
            Some(Refusal::PerRecipient)
        } else if neighbour >= l.max_custody_per_neighbour {
            Some(Refusal::PerNeighbour)
        } else {
            None
        }
    }

    fn routes_changed(
        &mut self,
        dests: &[P],
        routes: &impl Routes<P>,
        now: u64,
        out: &mut Vec<Output<P>>,
    ) {
        let slots: Vec<Slot> = self
            .items
            .iter()
            .filter(|(_, i)| dests.contains(&i.dest()))
            .map(|(s, _)| *s)
            .collect();
        for slot in slots {
            self.hand_on(slot, routes, now, true, out);
        }
    }

    /// Sends what `slot` holds if a route exists: our own DM (at once if it waits for a route,
    /// else when its retry is due, or, `eager` (the route changed), if it left at least a first
    /// retry interval ago: a route that flaps does not resend it on every change), someone
    /// else's (then it leaves our custody).
    fn hand_on(
        &mut self,
        slot: Slot,
        routes: &impl Routes<P>,
        now: u64,
        eager: bool,
        out: &mut Vec<Output<P>>,
    ) {
        let Some(item) = self.items.get(&slot) else {
            return;
        };
        let Some(via) = routes.next_hop(&item.dest()) else {
            return;
        };
        if slot.role == Role::Own {
            let waiting = item.status == Status::Queued;
            let due = now >= item.next_try_ms;
            let recent = item
                .last_sent_ms
                .is_some_and(|t| now < t.saturating_add(self.limits.retry_initial_ms));
            if waiting || due || (eager && !recent) {
                self.try_own(slot.id, routes, now, out);
                self.persist(slot, out);
            }
            return;
        }
        let frame = item.frame.clone();
        self.drop_item(slot, out);
        self.stats.forwarded += 1;
        out.push(Output::Forward(via, frame));
    }

    fn send_failed(&mut self, frame: Frame<P>, now: u64, out: &mut Vec<Output<P>>) {
        match frame {
            Frame::Dm(dm) => {
                let id = dm.id();
                let own = Slot {
                    role: Role::Own,
                    id,
                };
                if let Some(i) = self.items.get_mut(&own) {
                    // Soon, not at once: the next hop's queue may still be full.
                    i.next_try_ms = now + SEND_FAILED_RETRY_MS;
                    return;
                }
                self.take(Role::Custody, id, Frame::Dm(dm), None, now, out);
            }
            Frame::Receipt(r) => self.take(
                Role::Receipt,
                r.receipt.dm,
                Frame::Receipt(r),
                None,
                now,
                out,
            ),
        }
    }

    fn tick(&mut self, routes: &impl Routes<P>, now: u64, out: &mut Vec<Output<P>>) {
        let expired: Vec<Slot> = self
            .items
            .iter()
            .filter(|(_, i)| i.expires_ms() <= now)
            .map(|(s, _)| *s)
            .collect();
        for slot in expired {
            self.stats.expired += 1;
            if slot.role == Role::Own {
                out.push(Output::Status(slot.id, Status::Failed));
            }
            self.drop_item(slot, out);
        }
        let due: Vec<Slot> = self
            .items
            .iter()
            .filter(|(s, i)| s.role == Role::Own && i.next_try_ms <= now)
            .map(|(s, _)| *s)
            .collect();
        for slot in due {
            self.try_own(slot.id, routes, now, out);
            self.persist(slot, out);
        }
        // Anything held whose route is there (a missed `RoutesChanged` costs no more than this).
        let held: Vec<Slot> = self
            .items
            .keys()
            .filter(|s| s.role != Role::Own)
            .copied()
            .collect();
        for slot in held {
            self.hand_on(slot, routes, now, false, out);
        }
    }

    fn drop_item(&mut self, slot: Slot, out: &mut Vec<Output<P>>) {
        if let Some(i) = self.items.remove(&slot) {
            if slot.role != Role::Own {
                self.custody_bytes -= i.size();
            }
            out.push(Output::Remove(slot));
        }
    }

    fn persist(&self, slot: Slot, out: &mut Vec<Output<P>>) {
        if let Some(i) = self.items.get(&slot) {
            out.push(Output::Persist(Stored {
                role: slot.role,
                frame: i.frame.clone(),
                from: i.from,
                attempts: i.attempts,
                hold_until_ms: i.hold_until_ms,
            }));
        }
    }

    /// Checks the bounds and the byte count (tests).
    #[cfg(test)]
    pub(super) fn check_invariants(&self, now: u64) {
        let l = &self.limits;
        let held: Vec<&Item<P>> = self
            .items
            .iter()
            .filter(|(s, _)| s.role != Role::Own)
            .map(|(_, i)| i)
            .collect();
        assert!(held.len() <= l.max_custody);
        let bytes: usize = held.iter().map(|i| i.size()).sum();
        assert_eq!(bytes, self.custody_bytes);
        assert!(bytes <= l.max_custody_bytes);
        for i in &held {
            let d = held.iter().filter(|j| j.dest() == i.dest()).count();
            assert!(d <= l.max_custody_per_recipient, "{d} for one recipient");
            if i.from.is_some() {
                let n = held.iter().filter(|j| j.from == i.from).count();
                assert!(n <= l.max_custody_per_neighbour, "{n} from one neighbour");
            }
        }
        assert!(self
            .items
            .values()
            .all(|i| i.expires_ms() > now || self.wake.is_some()));
        assert!(self.held(Role::Own) <= l.max_own);
    }

    /// The next time something is due: a retry of ours, an expiry.
    fn next_wake(&self) -> Option<u64> {
        self.items
            .iter()
            .map(|(s, i)| match s.role {
                Role::Own => i.expires_ms().min(i.next_try_ms),
                // Handed on by `RoutesChanged`; only their expiry is a deadline.
                _ => i.expires_ms(),
            })
            .min()
    }
}
