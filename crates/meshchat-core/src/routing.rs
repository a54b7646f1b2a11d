//! Direct-message routing: which neighbour to hand a DM to, learnt from neighbours by a distance
//! vector with per-destination sequence numbers (Babel, RFC 8966, reduced to what meshchat needs).
//!
//! Every node originates one route, to itself, stamped with its own sequence number (*seqno*).
//! Neighbours exchange *adverts* `(destination, seqno, metric, hops)`: a full dump of their
//! selected routes every [`Limits::update_interval`], and a triggered update of the destinations
//! whose route changed, batched (at most one per [`Limits::triggered_delay`]; retractions at
//! once). A node adds the cost of the link to what a neighbour
//! advertises, keeps one entry per `(destination, neighbour)`, selects the best *feasible* one and
//! advertises that. [`Table`] is the whole state machine: inputs ([`Input`]) in, outputs
//! ([`Output`]: messages to neighbours, a wake-up time, the destinations whose route changed) out,
//! time passed in, generic over the peer id `P` so tests use `u32`.
//!
//! # Why this is loop-free (the feasibility condition)
//!
//! For every destination a node remembers its *feasibility distance* `fd = (seqno, metric)`: the
//! best it has advertised (a newer seqno is better; at the same seqno a smaller metric is). An
//! advert from a neighbour is *feasible* when its seqno is newer than `fd`'s, or the same with a
//! metric strictly smaller than `fd`'s; only feasible routes are selected. The metric compared is
//! the neighbour's own (advertised) distance, so a node only ever routes through a neighbour that
//! is strictly closer to the destination than the node itself has claimed to be: following next
//! hops, `(seqno, metric)` strictly improves at every step, so no path can come back to where it
//! started, even while adverts are in flight or lost. That is also why there is no
//! count-to-infinity: a node whose route got worse cannot pick up a neighbour's stale route
//! through itself, because that route's metric is larger than its own `fd`.
//!
//! The price is *starvation*: after a link fails, a node may hold routes that exist but are
//! unfeasible. It then sends a *seqno request* `(destination, fd.seqno + 1)` to the neighbours that
//! have a route. A node that holds a route with that seqno or newer answers with an advert; one
//! that does not forwards the request along its route (hop limit [`Limits::request_hops`]); the
//! destination itself raises its seqno to the one asked for and announces it. A newer seqno is
//! feasible everywhere, so the new route spreads. A node also asks when an unfeasible route is
//! strictly shorter than its selected one, so the tables settle on shortest paths rather than on
//! whatever was feasible first. A request is retried every [`Limits::request_timeout`],
//! [`Limits::request_retries`] times at most, then once more every [`Limits::update_interval`] for
//! as long as the route starves. Copies of a request on its way are dropped (RFC 8966 §3.8.1.2): of
//! one the node itself will retry, for a request timeout; of one it forwarded, for half of one
//! only, so the requester's retry, which may reach it a little sooner after the request than the
//! retry interval, is not taken for a copy (that left a node without a route for up to a minute
//! after a request was lost; see `Table::request`). Seqnos are 16-bit and compared modulo 2^16
//! (RFC 8966 §3.2.1); a node raises its own only when asked, or when a neighbour advertises the
//! node itself with a newer seqno than its own (an earlier run of the node, after a restart that
//! lost its seqno), to one past that. A seqno exactly half the space away from the one a neighbour
//! remembers is neither newer nor older, so no request can fix it; such starvation ends when the
//! neighbour forgets its feasibility distance, a hold time ([`Limits::route_expiry`]) after it lost
//! its last selected route (RFC 8966 §3.7.3 bounds it the same way). The node is to persist its
//! seqno, so that it takes a lost or corrupt store.
//!
//! Hold-down is not needed: a lost route is retracted at once (an advert with metric
//! [`INFINITY`]), and the feasibility distance is kept for [`Limits::route_expiry`] after the last
//! route to a destination is gone, the longest a neighbour may still hold a route through us (it
//! expires routes it does not hear about for that long), before the destination is forgotten.
//! Until then every full dump repeats the retraction, so one that was lost costs a neighbour at
//! most a dump interval of stale route, not a whole expiry per hop.
//!
//! # What a node learns from, and what it keeps
//!
//! Only direct neighbours the node has authenticated ([`Input::NeighborUp`]) are listened to: an
//! update or request from anyone else is ignored and counted in [`Stats::from_strangers`]. Every
//! table is bounded:
//!
//! - destinations: [`Limits::max_destinations`]. When the table is full, a new destination is
//!   refused (and counted), not swapped for an old one: evicting would let one neighbour that
//!   invents destinations push out the real ones, and an evicted destination's feasibility
//!   distance would have to be kept anyway until no neighbour can still route through us. Lost
//!   destinations leave after their hold time, which makes room.
//! - routes: one per `(destination, neighbour)`, so at most `max_neighbours` per destination; a
//!   route not re-advertised within [`Limits::route_expiry`] expires.
//! - neighbours: [`Limits::max_neighbours`]; beyond that a new neighbour is refused and counted.
//! - adverts: at most [`Limits::max_adverts`] per update we send (a full dump is cut into several)
//!   and read from an update we receive (the rest is dropped and counted).
//!
//! The rate of updates a neighbour sends is not limited here: each input costs work linear in its
//! adverts, produces at most one triggered update per neighbour, and the node's guard
//! ([`crate::guard`]) already bounds the messages per second a neighbour may hand over.
//!
//! # Forwarding
//!
//! A DM carries a hop limit outside its signature. [`Table::forward`] decides at each node:
//! deliver it here, hand it to the next hop with the limit less one, drop it when the limit is
//! spent, or, with no route, put it on the flooded (broadcast) path.
//!
//! # Wire format
//!
//! See [`wire`]: one frame per message, `tag | count | entries`, entries of fixed length, the peer
//! id encoded by the [`wire::PeerBytes`] trait (32 bytes for the node's key).
//!
//! # Testing
//!
//! `routing/tests.rs` runs the tables in a small deterministic discrete-event network of its own
//! (`routing/tests/net.rs`: seeded latency jitter and loss, links that fail and recover, nodes
//! that crash and restart) over lines, rings, grids and random graphs of up to 1 000 nodes. It
//! checks after every event that no forwarding loop exists through the node whose routes changed
//! (a new loop must pass through the one edge that changed), and after convergence that every
//! node reaches every reachable node along next hops in exactly the breadth-first hop count. That
//! harness should move onto the shared simulator (`sim.rs`) once it exists.
//!
//! Measured there (release build, 10 ms ± 2 ms links, cost 1, default [`Limits`]; the 1 000-node
//! tests are `#[ignore]`d, `cargo test --release -p meshchat-core -- --ignored` runs them):
//!
//! - after a link change, triggered updates and seqno requests do the work, not the 30 s dumps:
//!   random graph of 1 000 nodes and 2 499 links, the busiest link of node 0 down: converged in
//!   687 ms (simulated; 166 ms without batching); up again: 113 ms (63 ms). Line of 30, middle
//!   link: 133 ms down, 155 ms up. Where every route must be retracted or re-requested end to
//!   end the diameter dominates: a 1 000-node line 5.3 s (as before batching), a 1 000-node
//!   ring 26.7 s (20.7 s before batching: requests travel ~500 hops and back, and the new seqno
//!   waits up to a batch interval at some hops; 27.3 s while a retried request could be dropped
//!   as a copy of itself). First convergence of the 1 000-node graph of
//!   `random_graph_of_1000_nodes_fails_and_recovers`: 56 866 messages, 371 ms.
//! - the cost of triggered updates, and what batching them ([`Limits::triggered_delay`]) did:
//!   that link change on the 1 000-node graph (measured with dumps pushed out of the window, so
//!   the figures are triggered updates and requests only) sent 842 032 messages (843 603
//!   adverts, 11.1 MB with 4-byte ids) with every change sent at once, and 67 312 messages
//!   (1 134 451 adverts, 11.7 MB) with the default 50 ms batches: 12.5 times fewer messages,
//!   which is what costs (a frame, an encryption tag and a wake-up each), for a third more
//!   adverts and 4 times the convergence time (687 ms instead of 166 ms). Both rise because a
//!   new seqno no longer spreads in breadth-first order: a node may hear it over a longer path
//!   first, select and advertise that, then move. The delay trades messages for time
//!   (messages / adverts / convergence): 0 ms 842 032 / 843 603 / 166 ms, 10 ms 131 913 /
//!   1 004 180 / 333 ms, 20 ms 100 341 / 1 104 647 / 460 ms, 50 ms 67 312 / 1 134 451 / 687 ms,
//!   100 ms 65 271 / 1 228 448 / 1 192 ms: 50 ms is the knee. Nearly all of that storm is
//!   adverts of a *newer seqno* (answers to the starving nodes' requests, spreading): sending
//!   those at once like retractions, tried, brought back 838 591 messages. The line of 30 is
//!   unchanged (84 messages). First convergence of the graph without batching: 5.0 M messages.
//! - memory for 10 000 destinations, each advertised by 4 neighbours ([`Table::approx_memory`]):
//!   266 bytes per destination with `u32` ids, 440 bytes with 32-byte ids (4.3 MiB in all): the
//!   map entry (the id and 88 or 112 bytes of state, times 1.5 for B-tree slack) and one route
//!   entry per advertising neighbour (32 or 56 bytes; `size_of`, vector capacity counted).

use std::time::{Duration, Instant};

mod table;
pub mod wire;

pub use table::Table;

/// A metric that means "no route": an advert with it is a retraction.
pub const INFINITY: u16 = u16::MAX;

/// Whether seqno `a` is newer than `b`, modulo 2^16 (RFC 8966 §3.2.1): `a` is at most 2^15 - 1
/// steps ahead of `b`.
pub fn seqno_newer(a: u16, b: u16) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000
}

/// One route as a neighbour advertises it: its own distance, before we add the link's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Advert<P> {
    pub dest: P,
    /// The destination's seqno this route was learnt with.
    pub seqno: u16,
    /// The sender's distance to `dest` (sum of link costs), [`INFINITY`] for a retraction.
    pub metric: u16,
    /// The sender's hop count to `dest` (0 for itself), for DM hop limits and `/routes`.
    pub hops: u16,
}

impl<P> Advert<P> {
    pub fn is_retraction(&self) -> bool {
        self.metric == INFINITY
    }
}

/// A seqno request: "send me a route to `dest` with at least `seqno`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Request<P> {
    pub dest: P,
    pub seqno: u16,
    /// How many more times the request may be forwarded.
    pub hop_limit: u16,
}

/// What travels between neighbours (see [`wire`] for the bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<P> {
    Update(Vec<Advert<P>>),
    Request(Vec<Request<P>>),
}

/// What the node hands the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<P> {
    /// An authenticated neighbour, with the cost of the link to it (1 for "one hop"; 0 is taken
    /// as 1, [`INFINITY`] as `INFINITY - 1`). Again for a known neighbour: its cost changed or it
    /// reconnected; either way it gets a full dump.
    NeighborUp(P, u16),
    /// The last connection to a neighbour closed.
    NeighborDown(P),
    /// An update from a neighbour.
    Update(P, Vec<Advert<P>>),
    /// Seqno requests from a neighbour.
    Request(P, Vec<Request<P>>),
    /// The time given by the last [`Output::WakeAt`] has come (calling it early or more often is
    /// harmless). Call it once at start to get the first wake-up time.
    Tick,
}

impl<P> Input<P> {
    /// The input for a message received from `from`.
    pub fn received(from: P, message: Message<P>) -> Self {
        match message {
            Message::Update(adverts) => Input::Update(from, adverts),
            Message::Request(requests) => Input::Request(from, requests),
        }
    }
}

/// What the table asks the node to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P> {
    /// Send this message to this neighbour.
    Send(P, Message<P>),
    /// Call [`Table::handle`] with [`Input::Tick`] at this time (replaces earlier wake-ups).
    WakeAt(Instant),
    /// The selected routes to these destinations changed (appeared, moved or were lost), sorted:
    /// the outbox may now retry DMs waiting for a route.
    Changed(Vec<P>),
}

/// What [`Table::forward`] says to do with a DM addressed to `dest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward<P> {
    /// It is for this node.
    Local,
    /// Hand it to `via`, carrying `hop_limit` (one less than it arrived with).
    Next { via: P, hop_limit: u16 },
    /// No route: put it on the flooded path.
    Flood,
    /// Its hop limit is spent: drop it (and count it).
    Expired,
}

/// One selected route, for `/routes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<P> {
    pub dest: P,
    pub next_hop: P,
    pub metric: u16,
    pub hops: u16,
    pub seqno: u16,
    /// Since the next hop last advertised it.
    pub age: Duration,
}

/// Counters, for the node's stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Updates and requests from peers that are not (or no longer) neighbours, ignored.
    pub from_strangers: u64,
    /// Adverts for a new destination refused because the table was full.
    pub refused_destinations: u64,
    /// Neighbours refused because [`Limits::max_neighbours`] were up.
    pub refused_neighbours: u64,
    /// Adverts or requests beyond [`Limits::max_adverts`] in one message, dropped.
    pub truncated: u64,
    /// Changes of a selected route.
    pub route_changes: u64,
    /// Routes expired because their neighbour stopped advertising them.
    pub expired: u64,
    /// Seqno requests sent for our own starving or suboptimal routes.
    pub requests_sent: u64,
    /// Seqno requests forwarded for others.
    pub requests_forwarded: u64,
    /// Times our own seqno was raised.
    pub seqno_bumps: u64,
    /// Feasibility distances forgotten after a hold time of starvation (see `Table::gc`).
    pub forgotten_distances: u64,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// Batched triggered updates sent (each to every neighbour; retractions not counted).
    pub triggered_updates: u64,
    /// Retractions sent at once, outside the batch.
    pub urgent_retractions: u64,
}

/// Timers and bounds of the routing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Every this often each neighbour gets a full dump of our routes.
    pub update_interval: Duration,
    /// A route not re-advertised for this long expires; also how long a lost destination's
    /// feasibility distance is kept. More than `update_interval` (3.5 times, as in Babel: two lost
    /// dumps in a row do not lose a route).
    pub route_expiry: Duration,
    /// A seqno request is resent after this time (and copies of it dropped within it; copies of
    /// one we forwarded within half of it).
    pub request_timeout: Duration,
    /// Times a request for the same seqno is sent before the node gives up on it.
    pub request_retries: u8,
    /// Hop limit of the seqno requests we originate: at least the network's diameter.
    pub request_hops: u16,
    /// Triggered updates are batched: a changed route that is not a retraction waits until at
    /// least this long after the previous batch left (the first change after a quiet spell
    /// goes at once), so a node sends each neighbour at most one batched update per interval
    /// however many of its routes move during a convergence storm. Zero sends every change at
    /// once. Retractions never wait: they are what stops neighbours from forwarding DMs into a
    /// route that no longer exists (each one held back is DMs flooded or dropped one hop
    /// further on), they start the neighbours' search for another route (their seqno requests),
    /// so a failure's convergence is not slowed by the delay at every hop, and there are few of
    /// them (one per destination lost, never repeated until the route is back). Loop-freedom
    /// does not depend on the delay: the feasibility condition holds however late an advert
    /// arrives, and a route selected and replaced within one interval is never advertised,
    /// which only leaves the feasibility distance lower than anything advertised.
    pub triggered_delay: Duration,
    pub max_destinations: usize,
    pub max_neighbours: usize,
    /// Most adverts (or requests) in one message, sent or read; at most [`wire::MAX_ENTRIES`].
    pub max_adverts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            update_interval: Duration::from_secs(30),
            route_expiry: Duration::from_secs(105),
            // Several round trips across a large mesh.
            request_timeout: Duration::from_secs(2),
            request_retries: 3,
            request_hops: 512,
            // A few link latencies: long enough to gather the changes a wave of updates brings.
            triggered_delay: Duration::from_millis(50),
            // About 1.5 MB with 32-byte ids and a few neighbours (see the module docs).
            max_destinations: 10_000,
            max_neighbours: 256,
            max_adverts: wire::MAX_ENTRIES,
        }
    }
}

impl Limits {
    /// # Panics
    /// On a configuration no table can work with.
    fn check(&self) {
        assert!(
            !self.update_interval.is_zero() && self.route_expiry > self.update_interval,
            "routes must outlive the update interval"
        );
        assert!(
            !self.request_timeout.is_zero(),
            "request timeout must not be zero"
        );
        assert!(
            self.triggered_delay < self.update_interval,
            "triggered updates must come before the next dump"
        );
        assert!(
            (1..=wire::MAX_ENTRIES).contains(&self.max_adverts),
            "max_adverts outside 1..={}",
            wire::MAX_ENTRIES
        );
        assert!(
            self.max_destinations > 0 && self.max_neighbours > 0,
            "tables need room for one entry"
        );
    }
}

#[cfg(test)]
mod tests;
