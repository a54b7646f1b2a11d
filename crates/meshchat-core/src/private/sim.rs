//! A deterministic simulator of one invite room across a partitionable mesh, to check §10's
//! claims where they matter: with members offline, concurrent changes on both sides of a split,
//! and history arriving in any order.
//!
//! Each node holds every envelope it has seen, member or not (relays store private rooms like
//! any room). A step is: some nodes go offline or come back, at the split the mesh cuts in two
//! and at the heal it joins again, admins add and remove members and members write, each acting
//! on its own view; then every connected component (the online nodes of one side) exchanges
//! everything it holds, each node taking what it lacks in a random order (the anti-entropy of
//! §6), operations through [`Group::offer`] and messages through [`Group::open`], kept and
//! retried when an operation becomes valid. Invites travel at once (as a DM would when routed).
//!
//! The ground truth is what each author saw when writing: the membership it wrote to. After the
//! heal and a few exchanges, [`run`] asserts that every node agrees on the membership, reads
//! every message whose writer's membership included it, and gets [`Unread::NoKey`] for every
//! other one (a removed member reads nothing written by someone who had seen the removal, and a
//! new member nothing from before its add).

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::{Group, Invite, OpOutcome, Unread};
use crate::dm::EncryptionKey;
use crate::envelope::Kind;
use crate::room::Text;
use crate::{Envelope, Keypair, MessageId};

const START_MS: u64 = 1_700_000_000_000;

struct Node {
    kp: Keypair,
    enc: EncryptionKey,
    group: Option<Group>,
    /// Everything this node holds, by id.
    seen: BTreeMap<MessageId, Envelope>,
    /// Messages whose epoch is not here yet.
    kept: Vec<Envelope>,
    online: bool,
    side: u8,
}

impl Node {
    fn key(&self) -> [u8; 32] {
        *self.kp.public().as_bytes()
    }

    /// Takes one envelope from a neighbour.
    fn deliver(&mut self, env: Envelope, now_ms: u64) {
        self.seen.insert(env.id(), env.clone());
        let Some(g) = &mut self.group else {
            return;
        };
        match env.kind() {
            Kind::Op => {
                if let OpOutcome::Valid(_) = g.offer(&env, now_ms) {
                    let kept = std::mem::take(&mut self.kept);
                    self.kept = kept
                        .into_iter()
                        .filter(|m| g.open(m) == Err(Unread::Later))
                        .collect();
                }
            }
            _ => {
                if g.open(&env) == Err(Unread::Later) {
                    self.kept.push(env);
                }
            }
        }
    }

    /// Joins from an invite, and feeds the group what the node already held.
    fn join(&mut self, invite: &Invite, now_ms: u64, rng: &mut StdRng) {
        let g = Group::joined(
            invite.room,
            invite.roster_key.clone(),
            self.key(),
            self.enc.clone(),
        );
        self.group = Some(g);
        let mut held: Vec<Envelope> = std::mem::take(&mut self.seen).into_values().collect();
        held.shuffle(rng);
        for env in held {
            self.deliver(env, now_ms);
        }
    }
}

/// A message and the membership its author wrote to.
struct Written {
    env: Envelope,
    text: Text,
    readers: BTreeSet<[u8; 32]>,
}

/// What a run did, so a test can tell the runs exercised what they claim to.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Stats {
    pub adds: usize,
    pub removes: usize,
    /// Rekeys signed before a message (after concurrent changes).
    pub rekeys: usize,
    pub messages: usize,
    /// (node, message) pairs that read, and that got `NoKey`.
    pub read: usize,
    pub no_key: usize,
}

struct Sim {
    stats: Stats,
    rng: StdRng,
    nodes: Vec<Node>,
    invite: Invite,
    written: Vec<Written>,
    now_ms: u64,
    seed: u64,
}

impl Sim {
    fn new(seed: u64, n: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut nodes: Vec<Node> = (0..n)
            .map(|_| Node {
                kp: Keypair::generate(&mut rng),
                enc: EncryptionKey::generate(&mut rng),
                group: None,
                seen: BTreeMap::new(),
                kept: Vec::new(),
                online: true,
                side: 0,
            })
            .collect();
        let creator = &mut nodes[0];
        let (g, create) = Group::create(
            &creator.kp,
            creator.enc.clone(),
            "sim",
            "n0",
            START_MS,
            &mut rng,
        )
        .unwrap();
        let invite = g.invite();
        creator.group = Some(g);
        creator.seen.insert(create.id(), create);
        Self {
            stats: Stats::default(),
            rng,
            nodes,
            invite,
            written: Vec::new(),
            now_ms: START_MS,
            seed,
        }
    }

    fn group(&self, i: usize) -> Option<&Group> {
        self.nodes[i].group.as_ref()
    }

    fn is_member(&self, i: usize, in_view_of: usize) -> bool {
        self.group(in_view_of)
            .is_some_and(|g| g.is_member(&self.nodes[i].key()))
    }

    fn publish(&mut self, i: usize, envs: Vec<Envelope>) {
        for e in envs {
            self.nodes[i].seen.insert(e.id(), e);
        }
    }

    /// Node `i` acts on its own view: an admin adds or removes, a member writes or leaves.
    fn act(&mut self, i: usize) {
        let n = self.nodes.len();
        let me = self.nodes[i].key();
        let Some(g) = self.group(i) else {
            return;
        };
        if !g.is_member(&me) {
            return;
        }
        let admin = g.is_admin(&me);
        let roll: f64 = self.rng.gen();
        let (now, seed) = (self.now_ms, self.seed);
        if admin && roll < 0.3 {
            let outsiders: Vec<usize> = (0..n).filter(|&j| !self.is_member(j, i)).collect();
            let Some(&j) = outsiders.choose(&mut self.rng) else {
                return;
            };
            let as_admin = self.rng.gen_bool(0.4);
            let seal = self.nodes[j].enc.public();
            let key = self.nodes[j].key();
            let node = &mut self.nodes[i];
            let (kp, g) = (&node.kp, node.group.as_mut().unwrap());
            let envs = g.add(
                kp,
                key,
                seal,
                &format!("n{j}"),
                as_admin,
                now,
                &mut self.rng,
            );
            let envs = envs.unwrap_or_else(|e| panic!("seed {seed}: add: {e}"));
            self.publish(i, envs);
            self.stats.adds += 1;
            if self.nodes[j].group.is_none() {
                let invite = Invite::decode(&self.invite.encode()).unwrap();
                self.nodes[j].join(&invite, now, &mut self.rng);
            }
        } else if (admin && roll < 0.45) || (i != 0 && roll < 0.03) {
            // Remove someone (never the creator, so the room keeps an admin), or leave.
            let members: Vec<usize> = (1..n).filter(|&j| j != i && self.is_member(j, i)).collect();
            let j = match members.choose(&mut self.rng) {
                Some(&j) if admin && roll >= 0.03 => j,
                _ if i != 0 => i,
                _ => return,
            };
            let key = self.nodes[j].key();
            let node = &mut self.nodes[i];
            let (kp, g) = (&node.kp, node.group.as_mut().unwrap());
            let envs = g.remove(kp, key, now, &mut self.rng);
            let envs = envs.unwrap_or_else(|e| panic!("seed {seed}: remove: {e}"));
            self.publish(i, envs);
            self.stats.removes += 1;
        } else {
            self.write(i);
        }
    }

    fn write(&mut self, i: usize) {
        let (now, seed) = (self.now_ms, self.seed);
        let count = self.written.len();
        let text = Text {
            nick: format!("n{i}"),
            text: format!("message {count} from n{i}"),
        };
        let node = &mut self.nodes[i];
        let (kp, g) = (&node.kp, node.group.as_mut().unwrap());
        let envs = g.seal(kp, &text, now, &mut self.rng);
        let mut envs = envs.unwrap_or_else(|e| panic!("seed {seed}: seal: {e}"));
        let readers: BTreeSet<[u8; 32]> = g.members().iter().map(|m| m.key).collect();
        self.stats.rekeys += envs.len() - 1;
        let env = envs.last().unwrap().clone();
        assert_eq!(env.kind(), Kind::Sealed);
        assert_eq!(
            g.open(&env).as_ref(),
            Ok(&text),
            "seed {seed}: the author reads itself"
        );
        envs.pop();
        self.publish(i, envs);
        self.publish(i, vec![env.clone()]);
        self.written.push(Written { env, text, readers });
    }

    /// Every connected component pools what its nodes hold.
    fn exchange(&mut self) {
        for side in 0..2u8 {
            let comp: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].online && self.nodes[i].side == side)
                .collect();
            let mut pool: BTreeMap<MessageId, Envelope> = BTreeMap::new();
            for &i in &comp {
                pool.extend(self.nodes[i].seen.iter().map(|(k, v)| (*k, v.clone())));
            }
            for &i in &comp {
                let mut missing: Vec<Envelope> = pool
                    .iter()
                    .filter(|(id, _)| !self.nodes[i].seen.contains_key(id))
                    .map(|(_, e)| e.clone())
                    .collect();
                missing.shuffle(&mut self.rng);
                for env in missing {
                    self.nodes[i].deliver(env, self.now_ms);
                }
            }
        }
    }

    fn split(&mut self) {
        let n = self.nodes.len();
        for i in 1..n {
            self.nodes[i].side = self.rng.gen_range(0..2);
        }
        // An admin other than the creator on the far side, when there is one, so both sides
        // change the membership.
        let admins: Vec<usize> = (1..n)
            .filter(|&j| {
                self.group(0)
                    .is_some_and(|g| g.is_admin(&self.nodes[j].key()))
            })
            .collect();
        if let Some(&j) = admins.choose(&mut self.rng) {
            self.nodes[j].side = 1;
        }
    }

    fn check(&mut self) {
        let seed = self.seed;
        let mut stats = self.stats;
        let holders: Vec<&Node> = self.nodes.iter().filter(|n| n.group.is_some()).collect();
        let members = holders[0].group.as_ref().unwrap().members();
        for node in &holders {
            let g = node.group.as_ref().unwrap();
            assert_eq!(
                g.members(),
                members,
                "seed {seed}: every node agrees on the membership"
            );
            assert!(node.kept.is_empty(), "seed {seed}: every epoch arrived");
            for w in &self.written {
                let got = g.open(&w.env);
                if w.readers.contains(&node.key()) {
                    assert_eq!(
                        got.as_ref(),
                        Ok(&w.text),
                        "seed {seed}: a reader of its epoch"
                    );
                    stats.read += 1;
                } else {
                    assert_eq!(
                        got,
                        Err(Unread::NoKey),
                        "seed {seed}: not a member when written"
                    );
                    stats.no_key += 1;
                }
            }
        }
        self.stats = stats;
    }
}

/// One run of `steps` steps with `n` nodes, split from a quarter to three quarters of the way.
pub(super) fn run(seed: u64, n: usize, steps: usize) -> Stats {
    let mut sim = Sim::new(seed, n);
    for step in 0..steps {
        sim.now_ms += 1000;
        if step == steps / 4 {
            sim.split();
        }
        if step == 3 * steps / 4 {
            sim.nodes.iter_mut().for_each(|n| n.side = 0);
        }
        for i in 1..n {
            if sim.rng.gen_bool(0.1) {
                sim.nodes[i].online = !sim.nodes[i].online;
            }
        }
        for _ in 0..sim.rng.gen_range(1..=3) {
            let actors: Vec<usize> = (0..n)
                .filter(|&i| sim.nodes[i].online && sim.is_member(i, i))
                .collect();
            if let Some(&i) = actors.choose(&mut sim.rng) {
                sim.act(i);
            }
        }
        sim.exchange();
    }
    for node in &mut sim.nodes {
        node.online = true;
        node.side = 0;
    }
    sim.exchange();
    // Everyone still in writes once more: after concurrent changes, under a rekey.
    for i in 0..n {
        if sim.is_member(i, i) {
            sim.write(i);
        }
    }
    sim.exchange();
    sim.check();
    sim.stats.messages = sim.written.len();
    sim.stats
}
