//! The operations DAG of an invite room, as one member holds it: validity, the membership
//! function, the epoch keys it was given, and making new operations.
//!
//! Valid operations are numbered in the order they became valid, which is always after their
//! parents, and each carries the set of its ancestors and itself as a bitset over those numbers.
//! "Does add `a` follow remove `r`" is then one bit test, so the membership of any causally
//! closed set (the ancestors of an operation, or everything) costs one pass over the adds and
//! removes of each key, through a per-key index. Nothing about the membership is stored that
//! could disagree with the set: it is recomputed from the set when the set grows.
//!
//! Operations whose parents (or format-2 parts) are missing wait, bounded in number and time;
//! each arrival re-runs the waiting list until nothing more becomes valid, so the order in
//! which a member receives operations changes nothing about which ones are valid.

use std::collections::{BTreeMap, HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::wire::{self, Body, Change, OpBody, PartBody, Share, KEY_ID_LEN, MAX_PARENTS};
use super::{
    Error, Member, OpOutcome, Refusal, RoomId, Secret, Unread, MAX_MEMBERS, MAX_OPS, MAX_WAITING,
    OP_KIND, SEALED_KIND, SHARES_PER_ENVELOPE, WAIT_MS,
};
use crate::dm::{EncryptionKey, SealKey};
use crate::envelope::Draft;
use crate::room::Text;
use crate::{Envelope, Keypair, MessageId};

/// Invalid operations remembered (so their descendants are refused at once rather than left
/// waiting); past this, they are forgotten and their descendants wait and expire instead.
const MAX_REFUSED: usize = MAX_OPS;

/// What the DAG needs from its group: the room and our keys.
pub(super) struct Ctx<'a> {
    pub room: RoomId,
    pub roster: &'a Secret,
    pub me: [u8; 32],
    pub seal: &'a EncryptionKey,
}

/// A set of valid operations, by number.
#[derive(Clone, Default, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn has(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| (w >> (i % 64)) & 1 == 1)
    }

    fn set(&mut self, i: usize) {
        if self.0.len() <= i / 64 {
            self.0.resize(i / 64 + 1, 0);
        }
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn union(&mut self, other: &Bits) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
}

/// A valid operation.
struct Op {
    id: MessageId,
    author: [u8; 32],
    timestamp_ms: u64,
    change: Change,
    parts: u8,
    /// Its ancestors and itself.
    anc: Bits,
    has_child: bool,
    /// Hash of the membership of `anc` (what "current" compares).
    mhash: [u8; 32],
    /// Our copy of its epoch key, if it gave us one that opens.
    epoch: Option<Secret>,
}

/// An operation waiting for parents or parts.
struct Waiting {
    id: MessageId,
    author: [u8; 32],
    timestamp_ms: u64,
    body: OpBody,
    since: u64,
}

/// More shares whose operation is not valid yet.
struct Part {
    id: MessageId,
    author: [u8; 32],
    body: PartBody,
    since: u64,
}

/// The adds (create included) and removes of one key, by operation number.
#[derive(Default)]
struct KeyOps {
    adds: Vec<usize>,
    removes: Vec<usize>,
}

fn target_key(change: &Change, author: &[u8; 32]) -> Option<([u8; 32], bool)> {
    match change {
        Change::Create { .. } => Some((*author, true)),
        Change::Add { member, .. } => Some((*member, true)),
        Change::Remove { member } => Some((*member, false)),
        Change::Rekey => None,
    }
}

fn members_hash(members: &[Member]) -> [u8; 32] {
    let mut h = Sha256::new();
    for m in members {
        h.update(m.key);
        h.update(m.seal.0);
        h.update([u8::from(m.admin), m.nick.len() as u8]);
        h.update(m.nick.as_bytes());
    }
    h.finalize().into()
}

#[derive(Default)]
pub(super) struct Dag {
    ops: Vec<Op>,
    index: HashMap<MessageId, usize>,
    by_key_id: HashMap<[u8; KEY_ID_LEN], Vec<usize>>,
    keys: BTreeMap<[u8; 32], KeyOps>,
    /// Every valid operation.
    all: Bits,
    waiting: Vec<Waiting>,
    parts: Vec<Part>,
    /// Ids of what is valid, waiting, stored as a part, or remembered as refused.
    seen: HashSet<MessageId>,
    refused: HashSet<MessageId>,
    /// The membership of every valid operation, and its hash.
    members: Vec<Member>,
    mhash: [u8; 32],
    name: Option<String>,
    /// The epoch key of the operation being applied, when we made it.
    own: Option<(MessageId, Secret)>,
    /// Tests only: seal shares as junk (cheap big rooms for the cost table and the split test).
    #[cfg(test)]
    pub(super) junk_shares: bool,
}

impl Dag {
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, key: &[u8; 32]) -> Option<&Member> {
        self.members
            .binary_search_by(|m| m.key.cmp(key))
            .ok()
            .map(|i| &self.members[i])
    }

    pub fn operations(&self) -> usize {
        self.ops.len()
    }

    /// Tests only: our copy of an operation's epoch key (to forge what a thief of it could).
    #[cfg(test)]
    pub fn epoch_key(&self, id: &MessageId) -> Option<Secret> {
        self.ops[*self.index.get(id)?].epoch.clone()
    }

    /// The valid operations nothing valid follows, by id.
    fn heads(&self) -> Vec<usize> {
        let mut heads: Vec<usize> = (0..self.ops.len())
            .filter(|&i| !self.ops[i].has_child)
            .collect();
        heads.sort_by_key(|&i| self.ops[i].id);
        heads
    }

    pub fn head_ids(&self) -> Vec<MessageId> {
        self.heads().into_iter().map(|i| self.ops[i].id).collect()
    }

    /// Whether `key` is a member of the set `s`: whether it is an admin there, and its latest
    /// surviving add (by timestamp, then id).
    fn status(&self, key: &[u8; 32], s: &Bits) -> Option<(bool, usize)> {
        let k = self.keys.get(key)?;
        let mut best: Option<usize> = None;
        let mut admin = false;
        for &a in k.adds.iter().filter(|&&a| s.has(a)) {
            if k.removes
                .iter()
                .any(|&r| s.has(r) && !self.ops[a].anc.has(r))
            {
                continue;
            }
            admin |= match &self.ops[a].change {
                Change::Create { .. } => true,
                Change::Add { admin, .. } => *admin,
                _ => false,
            };
            let rank = |i: usize| (self.ops[i].timestamp_ms, self.ops[i].id);
            if best.is_none_or(|b| rank(a) > rank(b)) {
                best = Some(a);
            }
        }
        best.map(|b| (admin, b))
    }

    /// The membership of the set `s` (closed under parents), sorted by key.
    fn membership(&self, s: &Bits) -> Vec<Member> {
        self.keys
            .keys()
            .filter_map(|key| {
                let (admin, a) = self.status(key, s)?;
                let (seal, nick) = match &self.ops[a].change {
                    Change::Create { seal, nick, .. } | Change::Add { seal, nick, .. } => {
                        (*seal, nick.clone())
                    }
                    _ => unreachable!("adds are creates or adds"),
                };
                Some(Member {
                    key: *key,
                    seal,
                    nick,
                    admin,
                })
            })
            .collect()
    }

    // --- Taking operations ---------------------------------------------------------------------

    pub fn offer(&mut self, ctx: &Ctx<'_>, env: &Envelope, now_ms: u64) -> OpOutcome {
        if env.kind() != OP_KIND || env.target() != ctx.room.target() {
            return OpOutcome::Refused(Refusal::Malformed);
        }
        let id = env.id();
        if self.seen.contains(&id) {
            return OpOutcome::Known;
        }
        let author = *env.author().as_bytes();
        match wire::open_body(ctx.roster, env.target(), &author, env.body()) {
            Err(r) => OpOutcome::Refused(r),
            Ok(Body::Op(body)) => self.offer_op(ctx, id, author, env.timestamp_ms(), body, now_ms),
            Ok(Body::Part(body)) => self.offer_part(ctx, id, author, body, now_ms),
        }
    }

    fn refuse(&mut self, id: MessageId, r: Refusal) -> Refusal {
        if self.refused.len() < MAX_REFUSED {
            self.refused.insert(id);
            self.seen.insert(id);
        }
        r
    }

    fn offer_op(
        &mut self,
        ctx: &Ctx<'_>,
        id: MessageId,
        author: [u8; 32],
        timestamp_ms: u64,
        body: OpBody,
        now_ms: u64,
    ) -> OpOutcome {
        let mut parents = body.parents.clone();
        parents.sort();
        parents.dedup();
        if parents.len() != body.parents.len() {
            return OpOutcome::Refused(self.refuse(id, Refusal::Malformed));
        }
        if matches!(body.change, Change::Create { .. }) != body.parents.is_empty() {
            return OpOutcome::Refused(self.refuse(id, Refusal::BadOperation));
        }
        self.seen.insert(id);
        self.waiting.push(Waiting {
            id,
            author,
            timestamp_ms,
            body,
            since: now_ms,
        });
        let outcome = self.settle(ctx, id);
        if outcome == OpOutcome::Waiting && self.waiting.len() + self.parts.len() > MAX_WAITING {
            self.waiting.retain(|w| w.id != id);
            self.seen.remove(&id);
            return OpOutcome::Refused(Refusal::TooMany);
        }
        outcome
    }

    fn offer_part(
        &mut self,
        ctx: &Ctx<'_>,
        id: MessageId,
        author: [u8; 32],
        body: PartBody,
        now_ms: u64,
    ) -> OpOutcome {
        if let Some(&i) = self.index.get(&body.op) {
            // Its operation is valid, so it had all its parts: this one is a copy or junk.
            let op = &self.ops[i];
            return if op.author == author && body.part <= op.parts {
                OpOutcome::Known
            } else {
                OpOutcome::Refused(self.refuse(id, Refusal::BadOperation))
            };
        }
        if self.refused.contains(&body.op) {
            return OpOutcome::Refused(self.refuse(id, Refusal::BadOperation));
        }
        if let Some(w) = self.waiting.iter().find(|w| w.id == body.op) {
            if w.author != author || body.part > w.body.parts {
                return OpOutcome::Refused(self.refuse(id, Refusal::BadOperation));
            }
        }
        let duplicate = self
            .parts
            .iter()
            .any(|p| p.body.op == body.op && p.body.part == body.part && p.author == author);
        if duplicate {
            return OpOutcome::Known;
        }
        if self.waiting.len() + self.parts.len() >= MAX_WAITING {
            return OpOutcome::Refused(Refusal::TooMany);
        }
        let op = body.op;
        self.seen.insert(id);
        self.parts.push(Part {
            id,
            author,
            body,
            since: now_ms,
        });
        self.settle(ctx, op)
    }

    /// Runs the waiting list and says what became of `focus`.
    fn settle(&mut self, ctx: &Ctx<'_>, focus: MessageId) -> OpOutcome {
        let (mut valid, refused) = self.drain(ctx);
        if let Some(&(_, r)) = refused.iter().find(|(id, _)| *id == focus) {
            return OpOutcome::Refused(r);
        }
        match valid.iter().position(|id| *id == focus) {
            Some(i) => {
                valid[..=i].rotate_right(1);
                OpOutcome::Valid(valid)
            }
            None => OpOutcome::Waiting,
        }
    }

    /// Validates every waiting operation whose parents and parts are all here, until none is
    /// left that can be: (valid ids in the order they became valid, refused ids).
    fn drain(&mut self, ctx: &Ctx<'_>) -> (Vec<MessageId>, Vec<(MessageId, Refusal)>) {
        let mut valid = Vec::new();
        let mut refused = Vec::new();
        loop {
            let mut progress = false;
            let mut i = 0;
            while i < self.waiting.len() {
                let w = &self.waiting[i];
                if w.body.parents.iter().any(|p| self.refused.contains(p)) {
                    let w = self.waiting.remove(i);
                    refused.push((w.id, self.refuse(w.id, Refusal::UnknownParents)));
                    progress = true;
                    continue;
                }
                if !w.body.parents.iter().all(|p| self.index.contains_key(p)) {
                    i += 1;
                    continue;
                }
                let Some(extra) = self.collect_parts(w) else {
                    i += 1;
                    continue;
                };
                let w = self.waiting.remove(i);
                let id = w.id;
                self.parts.retain(|p| p.body.op != id);
                match self.validate(ctx, w, extra) {
                    Ok(()) => valid.push(id),
                    Err(r) => refused.push((id, self.refuse(id, r))),
                }
                progress = true;
            }
            if !progress {
                return (valid, refused);
            }
        }
    }

    /// The shares of `w`'s parts, in order, if all of them are here.
    fn collect_parts(&self, w: &Waiting) -> Option<Vec<Share>> {
        let mut shares = Vec::new();
        for n in 1..=w.body.parts {
            let part = self
                .parts
                .iter()
                .find(|p| p.body.op == w.id && p.body.part == n && p.author == w.author)?;
            shares.extend(part.body.shares.iter().cloned());
        }
        Some(shares)
    }

    /// Checks §10's rules for `w` (parents valid, parts here) and, if it passes, adds it.
    fn validate(&mut self, ctx: &Ctx<'_>, w: Waiting, extra: Vec<Share>) -> Result<(), Refusal> {
        if self.ops.len() >= MAX_OPS {
            return Err(Refusal::TooMany);
        }
        let idx = self.ops.len();
        let mut anc = Bits::default();
        for p in &w.body.parents {
            anc.union(&self.ops[self.index[p]].anc);
        }
        // The rules on the membership P of the ancestors.
        let author = self.status(&w.author, &anc);
        match &w.body.change {
            Change::Create { nonce, .. } => {
                if self.name.is_some() || wire::invite_room_id(&w.author, nonce) != ctx.room.0 {
                    return Err(Refusal::BadOperation);
                }
            }
            Change::Add { .. } => {
                if !author.is_some_and(|(admin, _)| admin) {
                    return Err(Refusal::NotAdmin);
                }
            }
            Change::Remove { member } => {
                if self.status(member, &anc).is_none() {
                    return Err(Refusal::BadOperation);
                }
                if *member != w.author && !author.is_some_and(|(admin, _)| admin) {
                    return Err(Refusal::NotAdmin);
                }
            }
            Change::Rekey => {
                if author.is_none() {
                    return Err(Refusal::NotMember);
                }
            }
        }
        anc.set(idx);
        let key = target_key(&w.body.change, &w.author);
        self.ops.push(Op {
            id: w.id,
            author: w.author,
            timestamp_ms: w.timestamp_ms,
            change: w.body.change,
            parts: w.body.parts,
            anc,
            has_child: false,
            mhash: [0; 32],
            epoch: None,
        });
        if let Some((key, add)) = key {
            let k = self.keys.entry(key).or_default();
            if add { &mut k.adds } else { &mut k.removes }.push(idx);
        }
        // The shares name exactly the resulting membership.
        let members = self.membership(&self.ops[idx].anc);
        let mut named: Vec<&[u8; 32]> = w
            .body
            .shares
            .iter()
            .chain(&extra)
            .map(|s| &s.member)
            .collect();
        named.sort();
        let exact =
            named.len() == members.len() && named.iter().zip(&members).all(|(n, m)| **n == m.key);
        if !exact || members.len() > MAX_MEMBERS {
            self.ops.pop();
            if let Some((key, add)) = key {
                let k = self.keys.get_mut(&key).expect("just pushed");
                if add { &mut k.adds } else { &mut k.removes }.pop();
                if k.adds.is_empty() && k.removes.is_empty() {
                    self.keys.remove(&key);
                }
            }
            return Err(if exact {
                Refusal::TooMany
            } else {
                Refusal::BadOperation
            });
        }
        // Valid. Our own operation's key we chose, but keep it only if it was sealed to us
        // too (not when we just left).
        let in_it = members.binary_search_by(|m| m.key.cmp(&ctx.me)).is_ok();
        let epoch = match self.own.take() {
            Some((id, key)) if id == w.id => in_it.then_some(key),
            other => {
                self.own = other;
                let info = wire::share_info(&ctx.room.target(), &w.author, &w.body.nonce);
                w.body
                    .shares
                    .iter()
                    .chain(&extra)
                    .find(|s| s.member == ctx.me)
                    .and_then(|s| wire::open_share(s, ctx.seal, &info))
            }
        };
        let op = &mut self.ops[idx];
        op.mhash = members_hash(&members);
        op.epoch = epoch;
        if let Change::Create { name, .. } = &op.change {
            self.name = Some(name.clone());
        }
        for p in &w.body.parents {
            let i = self.index[p];
            self.ops[i].has_child = true;
        }
        self.index.insert(w.id, idx);
        let key_id: [u8; KEY_ID_LEN] = w.id.0[..KEY_ID_LEN].try_into().expect("8 bytes");
        self.by_key_id.entry(key_id).or_default().push(idx);
        self.all.set(idx);
        self.members = if self.ops[idx].anc == self.all {
            members
        } else {
            self.membership(&self.all)
        };
        self.mhash = members_hash(&self.members);
        Ok(())
    }

    /// Forgets operations and parts that waited longer than [`WAIT_MS`]. They are not remembered
    /// as refused: if they come again once their parents are here, they are valid after all.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let old = |since: u64| now_ms.saturating_sub(since) > WAIT_MS;
        let mut gone = Vec::new();
        self.waiting
            .retain(|w| !old(w.since) || (gone.push(w.id), false).1);
        // A part lives as long as its operation waits, however early it came.
        let waiting: HashSet<MessageId> = self.waiting.iter().map(|w| w.id).collect();
        self.parts.retain(|p| {
            !old(p.since) || waiting.contains(&p.body.op) || (gone.push(p.id), false).1
        });
        for id in &gone {
            self.seen.remove(id);
        }
        gone.len()
    }

    // --- Sealed messages -----------------------------------------------------------------------

    /// The epoch we write under: the current head with the smallest id.
    fn current(&self) -> Option<usize> {
        self.heads()
            .into_iter()
            .find(|&i| self.ops[i].mhash == self.mhash && self.ops[i].epoch.is_some())
    }

    pub fn seal_text<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        ctx: &Ctx<'_>,
        me: &Keypair,
        text: &Text,
        now_ms: u64,
        rng: &mut R,
    ) -> Result<Vec<Envelope>, Error> {
        if self.name.is_none() {
            return Err(Error::NotReady);
        }
        if self.member(&ctx.me).is_none() {
            return Err(Error::NotMember);
        }
        let mut out = Vec::new();
        if self.current().is_none() {
            out = self.make(ctx, me, Change::Rekey, now_ms, rng)?;
        }
        let i = self.current().expect("a rekey we made is current");
        let op = &self.ops[i];
        let key_id = op.id.0[..KEY_ID_LEN].try_into().expect("8 bytes");
        let target = ctx.room.target();
        let epoch = op.epoch.as_ref().expect("current heads have a key");
        let body = wire::seal_text(epoch, &key_id, &target, &ctx.me, text, rng)?;
        out.push(Envelope::sign(
            me,
            Draft {
                kind: SEALED_KIND,
                target: &target,
                timestamp_ms: now_ms,
                nonce: rng.next_u64(),
                body: &body,
            },
        )?);
        Ok(out)
    }

    pub fn open(&self, ctx: &Ctx<'_>, env: &Envelope) -> Result<Text, Unread> {
        let target = ctx.room.target();
        if env.kind() != SEALED_KIND || env.target() != target {
            return Err(Unread::Refused(Refusal::Malformed));
        }
        let Some(key_id) = wire::key_id(env.body()) else {
            return Err(Unread::Refused(Refusal::Malformed));
        };
        let Some(candidates) = self.by_key_id.get(&key_id) else {
            return Err(Unread::Later);
        };
        let author = env.author().as_bytes();
        let mut result = Err(Unread::NoKey);
        for &i in candidates {
            let Some(key) = &self.ops[i].epoch else {
                continue;
            };
            let opened = wire::open_text(key, env.body(), &target, author);
            if matches!(opened, Err(Unread::Refused(Refusal::Unreadable))) {
                result = opened;
                continue;
            }
            // It opened: its author must be a member of that epoch.
            if self.status(author, &self.ops[i].anc).is_none() {
                return Err(Unread::Refused(Refusal::NotMember));
            }
            return opened;
        }
        result
    }

    // --- Making operations ---------------------------------------------------------------------

    /// Signs `change` (after rekeys merging the heads down to 16 parents, if there are more),
    /// applies it here, and returns the envelopes to publish in order.
    pub fn make<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        ctx: &Ctx<'_>,
        me: &Keypair,
        change: Change,
        now_ms: u64,
        rng: &mut R,
    ) -> Result<Vec<Envelope>, Error> {
        let mut out = Vec::new();
        while self.heads().len() > MAX_PARENTS {
            out.extend(self.make_one(ctx, me, Change::Rekey, now_ms, rng)?);
        }
        out.extend(self.make_one(ctx, me, change, now_ms, rng)?);
        Ok(out)
    }

    fn make_one<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        ctx: &Ctx<'_>,
        me: &Keypair,
        change: Change,
        now_ms: u64,
        rng: &mut R,
    ) -> Result<Vec<Envelope>, Error> {
        let heads = self.heads();
        let parents: Vec<MessageId> = heads
            .iter()
            .take(MAX_PARENTS)
            .map(|&i| self.ops[i].id)
            .collect();
        let mut anc = Bits::default();
        for &i in heads.iter().take(MAX_PARENTS) {
            anc.union(&self.ops[i].anc);
        }
        // Who the result seals to, and a timestamp that makes an add the member's latest.
        let mut timestamp_ms = now_ms;
        let mut to: Vec<([u8; 32], SealKey)> = self
            .membership(&anc)
            .iter()
            .map(|m| (m.key, m.seal))
            .collect();
        match &change {
            Change::Create { seal, .. } => to = vec![(ctx.me, *seal)],
            Change::Add { member, seal, .. } => {
                to.retain(|(k, _)| k != member);
                to.push((*member, *seal));
                to.sort_by_key(|(k, _)| *k);
                for &a in self.keys.get(member).map(|k| &k.adds[..]).unwrap_or(&[]) {
                    timestamp_ms = timestamp_ms.max(self.ops[a].timestamp_ms + 1);
                }
            }
            Change::Remove { member } => to.retain(|(k, _)| k != member),
            Change::Rekey => {}
        }
        let parts = to.len().saturating_sub(1) / SHARES_PER_ENVELOPE;
        if to.len() > MAX_MEMBERS || self.ops.len() >= MAX_OPS {
            return Err(Error::Full);
        }
        let epoch = {
            let mut key = zeroize::Zeroizing::new([0u8; 32]);
            rng.fill_bytes(key.as_mut());
            Secret::from_bytes(*key)
        };
        let mut nonce = [0u8; wire::NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let target = ctx.room.target();
        let info = wire::share_info(&target, &ctx.me, &nonce);
        #[cfg(test)]
        let junk = self.junk_shares;
        #[cfg(not(test))]
        let junk = false;
        let mut shares: Vec<Share> = to
            .iter()
            .map(|(k, s)| {
                match junk {
                    true => None,
                    false => wire::seal_share(&epoch, k, s, &info, rng),
                }
                .unwrap_or_else(|| wire::junk_share(k, rng))
            })
            .collect();
        let rest = shares.split_off(shares.len().min(SHARES_PER_ENVELOPE));
        let body = OpBody {
            parents,
            nonce,
            change,
            shares,
            parts: parts as u8,
        };
        let sign = |body: &[u8], rng: &mut R| {
            Envelope::sign(
                me,
                Draft {
                    kind: OP_KIND,
                    target: &target,
                    timestamp_ms,
                    nonce: rng.next_u64(),
                    body,
                },
            )
        };
        let op_body = wire::encode_op(ctx.roster, &target, &ctx.me, &body, rng);
        let op = sign(&op_body, rng)?;
        let mut out = vec![op.clone()];
        for (n, chunk) in rest.chunks(SHARES_PER_ENVELOPE).enumerate() {
            let part = PartBody {
                op: op.id(),
                part: n as u8 + 1,
                shares: chunk.to_vec(),
            };
            let bytes = wire::encode_part(ctx.roster, &target, &ctx.me, &part, rng);
            out.push(sign(&bytes, rng)?);
        }
        self.own = Some((op.id(), epoch));
        let mut outcome = self.offer(ctx, &op, now_ms);
        for part in &out[1..] {
            outcome = self.offer(ctx, part, now_ms);
        }
        self.own = None;
        match outcome {
            OpOutcome::Valid(_) => Ok(out),
            // Only when the waiting list is full of others' operations.
            _ => Err(Error::Full),
        }
    }
}
