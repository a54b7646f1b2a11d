//! Whole networks on the shared simulator (`crate::sim`): each node runs a routing table and an
//! outbox. DMs take shortest paths once routes are known (transmissions per DM == hop count),
//! and custody carries a DM to a recipient that was offline while its sender went away.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::super::*;
use super::{Id, NOW};
use crate::identity::Keypair;
use crate::room::Text;
use crate::routing;
use crate::sim::{Ctx, LinkConfig, Node as SimNode, NodeId, Sim};

enum Msg {
    Route(routing::Message<Id>),
    Dm(Frame<Id>),
}

/// What outlives a crash: the node's "disk" (persisted items) and what the test observes.
#[derive(Default)]
struct Shared {
    disk: BTreeMap<Slot, Stored<Id>>,
    delivered: Vec<String>,
    statuses: Vec<(DmId, Status)>,
}

struct Peer {
    ids: Rc<Vec<Id>>,
    t0: Instant,
    table: routing::Table<Id>,
    outbox: Outbox<Id>,
    table_wake: Option<Instant>,
    outbox_wake: Option<u64>,
    shared: Rc<RefCell<Shared>>,
    dm_sends: Rc<Cell<u64>>,
}

impl Peer {
    fn new(
        i: usize,
        ids: Rc<Vec<Id>>,
        t0: Instant,
        now: Instant,
        shared: Rc<RefCell<Shared>>,
        dm_sends: Rc<Cell<u64>>,
    ) -> Self {
        let key = Keypair::from_secret_bytes(&seed(i));
        let enc = EncryptionKey::derive(&key);
        let table = routing::Table::new(ids[i], 0, routing::Limits::default(), now);
        let mut outbox = Outbox::new(ids[i], key, enc, Limits::default());
        let ms = NOW + (now - t0).as_millis() as u64;
        for s in shared.borrow().disk.values() {
            outbox.restore(s.clone(), ms);
        }
        Self {
            ids,
            t0,
            table,
            outbox,
            table_wake: None,
            outbox_wake: None,
            shared,
            dm_sends,
        }
    }

    fn id_of(&self, n: NodeId) -> Id {
        self.ids[n as usize]
    }

    fn node_of(&self, id: &Id) -> NodeId {
        self.ids.iter().position(|x| x == id).expect("known id") as NodeId
    }

    fn ms(&self, now: Instant) -> u64 {
        NOW + (now - self.t0).as_millis() as u64
    }

    fn route(&mut self, input: routing::Input<Id>, ctx: &mut Ctx<'_, Msg>) {
        let outs = self.table.handle(input, ctx.now);
        for o in outs {
            match o {
                routing::Output::Send(to, m) => {
                    let n = self.node_of(&to);
                    ctx.send(n, Msg::Route(m));
                }
                routing::Output::WakeAt(at) => self.table_wake = Some(at),
                routing::Output::Changed(dests) => self.dm(Input::RoutesChanged(dests), ctx),
            }
        }
        self.rewake(ctx);
    }

    fn dm(&mut self, input: Input<Id>, ctx: &mut Ctx<'_, Msg>) {
        let now = self.ms(ctx.now);
        let outs = self.outbox.handle(input, &self.table, now);
        for o in outs {
            match o {
                Output::Forward(to, f) => {
                    if matches!(f, Frame::Dm(_)) {
                        self.dm_sends.set(self.dm_sends.get() + 1);
                    }
                    let n = self.node_of(&to);
                    ctx.send(n, Msg::Dm(f));
                }
                Output::Flood(_) => {}
                Output::Persist(s) => {
                    let id = match &s.frame {
                        Frame::Dm(d) => d.id(),
                        Frame::Receipt(r) => r.receipt.dm,
                    };
                    let slot = Slot { role: s.role, id };
                    self.shared.borrow_mut().disk.insert(slot, s);
                }
                Output::Remove(slot) => {
                    self.shared.borrow_mut().disk.remove(&slot);
                }
                Output::Deliver(d) => self.shared.borrow_mut().delivered.push(d.text.text),
                Output::Status(id, s) => self.shared.borrow_mut().statuses.push((id, s)),
                Output::WakeAt(t) => self.outbox_wake = Some(t),
            }
        }
        self.rewake(ctx);
    }

    fn rewake(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some(t) = self.table_wake {
            ctx.wake_at(t);
        }
        if let Some(ms) = self.outbox_wake {
            ctx.wake_at(self.t0 + Duration::from_millis(ms.saturating_sub(NOW)));
        }
    }
}

fn seed(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    s
}

impl SimNode for Peer {
    type Message = Msg;
    fn on_link_up(&mut self, peer: NodeId, ctx: &mut Ctx<'_, Msg>) {
        let p = self.id_of(peer);
        self.route(routing::Input::NeighborUp(p, 1), ctx);
    }
    fn on_link_down(&mut self, peer: NodeId, ctx: &mut Ctx<'_, Msg>) {
        let p = self.id_of(peer);
        self.route(routing::Input::NeighborDown(p), ctx);
    }
    fn on_message(&mut self, from: NodeId, m: Msg, ctx: &mut Ctx<'_, Msg>) {
        let f = self.id_of(from);
        match m {
            Msg::Route(m) => self.route(routing::Input::received(f, m), ctx),
            Msg::Dm(frame) => self.dm(Input::Frame(f, frame), ctx),
        }
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.table_wake.is_some_and(|t| t <= ctx.now) {
            self.table_wake = None;
            self.route(routing::Input::Tick, ctx);
        }
        if self.outbox_wake.is_some_and(|t| t <= self.ms(ctx.now)) {
            self.outbox_wake = None;
            self.dm(Input::Tick, ctx);
        }
        self.rewake(ctx);
    }
}

struct World {
    sim: Sim<Peer>,
    ids: Rc<Vec<Id>>,
    shared: Vec<Rc<RefCell<Shared>>>,
    dm_sends: Rc<Cell<u64>>,
    t0: Instant,
    rng: StdRng,
}

fn link() -> LinkConfig {
    LinkConfig {
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(4),
        loss: 0.0,
    }
}

impl World {
    fn new(n: usize, seed_: u64) -> Self {
        let ids: Rc<Vec<Id>> = Rc::new(
            (0..n)
                .map(|i| *Keypair::from_secret_bytes(&seed(i)).public().as_bytes())
                .collect(),
        );
        let mut sim = Sim::new(seed_);
        let t0 = sim.now();
        let dm_sends = Rc::new(Cell::new(0));
        let shared: Vec<_> = (0..n).map(|_| Rc::default()).collect();
        for (i, sh) in shared.iter().enumerate() {
            let p = Peer::new(i, ids.clone(), t0, t0, Rc::clone(sh), dm_sends.clone());
            sim.add_node(p);
        }
        for i in 0..n as NodeId {
            sim.act(i, |p, ctx| p.route(routing::Input::Tick, ctx));
        }
        Self {
            sim,
            ids,
            shared,
            dm_sends,
            t0,
            rng: StdRng::seed_from_u64(seed_),
        }
    }

    fn connect(&mut self, edges: &[(u32, u32)]) {
        for &(a, b) in edges {
            self.sim.connect(a, b, link());
        }
    }

    fn restart(&mut self, i: NodeId) {
        let now = self.sim.now();
        let p = Peer::new(
            i as usize,
            self.ids.clone(),
            self.t0,
            now,
            Rc::clone(&self.shared[i as usize]),
            self.dm_sends.clone(),
        );
        self.sim.restart(i, p);
        self.sim.act(i, |p, ctx| {
            p.route(routing::Input::Tick, ctx);
            p.dm(Input::Tick, ctx);
        });
    }

    /// Node `from` sends `text` to `to`; returns the DM id.
    fn send(&mut self, from: NodeId, to: NodeId, text: &str) -> DmId {
        let a = Keypair::from_secret_bytes(&seed(from as usize));
        let b = Keypair::from_secret_bytes(&seed(to as usize));
        let key = EncryptionKey::derive(&b).public();
        let now_ms = NOW + (self.sim.now() - self.t0).as_millis() as u64;
        let t = Text {
            nick: "n".into(),
            text: text.into(),
        };
        let env = sign_dm(&a, &b.public(), &t, now_ms, 1).unwrap();
        let expires = now_ms + 7 * 24 * 3600 * 1000;
        let dm = seal(&env, self.ids[to as usize], key, expires, 64, &mut self.rng).unwrap();
        let id = dm.id();
        self.sim.act(from, |p, ctx| p.dm(Input::Send(dm), ctx));
        id
    }

    fn bfs(&self, src: NodeId) -> Vec<Option<u64>> {
        let n = self.sim.len();
        let mut d = vec![None; n];
        d[src as usize] = Some(0);
        let mut q = VecDeque::from([src]);
        while let Some(x) = q.pop_front() {
            let dx = d[x as usize].expect("queued");
            for y in self.sim.neighbors(x) {
                if d[y as usize].is_none() && self.sim.is_alive(y) {
                    d[y as usize] = Some(dx + 1);
                    q.push_back(y);
                }
            }
        }
        d
    }

    fn status(&self, node: NodeId, id: DmId) -> Option<Status> {
        self.shared[node as usize]
            .borrow()
            .statuses
            .iter()
            .rev()
            .find(|(i, _)| *i == id)
            .map(|(_, s)| *s)
    }
}

fn shortest_paths(name: &str, n: usize, edges: &[(u32, u32)], seed_: u64) {
    let mut w = World::new(n, seed_);
    w.connect(edges);
    w.sim.run_for(Duration::from_secs(5));
    let mut checked = 0;
    for k in 0..12u32 {
        let (a, b) = ((k * 7) % n as u32, (k * 13 + 5) % n as u32);
        if a == b {
            continue;
        }
        let hops = w.bfs(a)[b as usize].expect("connected");
        let before = w.dm_sends.get();
        let id = w.send(a, b, &format!("m{k}"));
        w.sim.run_for(Duration::from_secs(2));
        assert_eq!(w.dm_sends.get() - before, hops, "{name}: {a} -> {b}");
        assert_eq!(
            w.status(a, id),
            Some(Status::Delivered),
            "{name}: {a} -> {b}"
        );
        checked += 1;
    }
    let delivered: usize = w.shared.iter().map(|s| s.borrow().delivered.len()).sum();
    assert_eq!(delivered, checked, "{name}: each DM shown once");
}

/// A random tree plus `extra` random edges.
fn random_graph(n: u32, extra: usize, seed_: u64) -> Vec<(u32, u32)> {
    use rand::Rng;
    let mut rng = StdRng::seed_from_u64(seed_);
    let mut set = std::collections::BTreeSet::new();
    for i in 1..n {
        set.insert((rng.gen_range(0..i), i));
    }
    while set.len() < (n as usize - 1) + extra {
        let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
        if a != b {
            set.insert((a.min(b), a.max(b)));
        }
    }
    set.into_iter().collect()
}

#[test]
fn dms_take_shortest_paths_on_lines_rings_and_random_graphs() {
    let line: Vec<(u32, u32)> = (1..8).map(|i| (i - 1, i)).collect();
    shortest_paths("line", 8, &line, 1);
    let mut ring: Vec<(u32, u32)> = (1..12).map(|i| (i - 1, i)).collect();
    ring.push((11, 0));
    shortest_paths("ring", 12, &ring, 2);
    let random = random_graph(40, 30, 3);
    shortest_paths("random", 40, &random, 3);
}

/// The sender hands its DM to a neighbour and goes away; the recipient comes up later and gets
/// it; its receipt waits until the sender is back.
#[test]
fn custody_delivers_to_a_recipient_that_was_offline_while_the_sender_left() {
    // 0 - 1 - 2 - 3, the link 2 - 3 down: 3 is offline.
    let mut w = World::new(4, 9);
    w.connect(&[(0, 1), (1, 2)]);
    w.sim.run_for(Duration::from_secs(2));
    let id = w.send(0, 3, "while you were out");
    w.sim.run_for(Duration::from_secs(1));
    assert_eq!(w.status(0, id), Some(Status::Queued));
    assert_eq!(
        w.sim.node(1).map(|p| p.outbox.held(Role::Custody)),
        Some(1),
        "1 holds it"
    );
    // The sender crashes (its outbox is on its disk); the recipient comes up.
    w.sim.crash(0);
    w.sim.run_for(Duration::from_secs(5));
    w.sim.connect(2, 3, link());
    w.sim.run_for(Duration::from_secs(5));
    assert_eq!(
        w.shared[3].borrow().delivered,
        vec!["while you were out".to_string()]
    );
    // Its receipt is held (by 3 or a relay): there is no route to 0.
    let held: usize = (1..4)
        .filter_map(|i| w.sim.node(i))
        .map(|p| p.outbox.held(Role::Receipt))
        .sum();
    assert_eq!(held, 1);
    // The sender comes back from its disk; the receipt reaches it.
    w.restart(0);
    w.sim.connect(0, 1, link());
    w.sim.run_for(Duration::from_secs(5));
    assert_eq!(w.status(0, id), Some(Status::Delivered));
    assert_eq!(w.shared[3].borrow().delivered.len(), 1, "shown once");
    assert!(w.shared[0].borrow().disk.is_empty());
}

/// With 2 % of messages lost (routing and DMs alike, nothing acknowledged hop by hop), retries
/// get every DM through, each shown once, each sender told it was delivered.
#[test]
fn retries_get_dms_through_a_lossy_random_graph() {
    let n = 30;
    let mut w = World::new(n, 21);
    let lossy = LinkConfig {
        loss: 0.02,
        ..link()
    };
    for (a, b) in random_graph(n as u32, 15, 21) {
        w.sim.connect(a, b, lossy);
    }
    w.sim.run_for(Duration::from_secs(5));
    let sent: Vec<(NodeId, DmId)> = (0..12u32)
        .map(|k| {
            let (a, b) = ((k * 5) % n as u32, (k * 11 + 3) % n as u32);
            (a, w.send(a, b, &format!("lossy {k}")))
        })
        .collect();
    w.sim.run_for(Duration::from_secs(600));
    for (a, id) in sent {
        assert_eq!(w.status(a, id), Some(Status::Delivered), "{a}: {id:?}");
    }
    let mut shown: Vec<String> = w
        .shared
        .iter()
        .flat_map(|s| s.borrow().delivered.clone())
        .collect();
    shown.sort();
    let before = shown.len();
    shown.dedup();
    assert_eq!(shown.len(), before, "shown once");
    assert_eq!(shown.len(), 12);
}
