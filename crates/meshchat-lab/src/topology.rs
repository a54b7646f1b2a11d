//! Topologies: which hosts share a link. Pure data, no side effects.
//!
//! A topology is `n` hosts plus a list of *segments*. A segment of two hosts is a point-to-point
//! link (a veth pair); a segment of three or more hosts is a LAN (a bridge in a switch namespace).
//! Hosts that share no segment cannot reach each other at all: there is no routing between
//! namespaces, except through a declared [`Router`]: a host that forwards between a WAN segment
//! and a LAN segment with a [`Nat`] in front of the LAN (see [`Topology::nat`]). One segment may
//! be marked as the *internet* ([`Topology::internet`]): it gets public-looking addresses.
//!
//! Short descriptions (the `--topology` flag, [`Topology::parse`]):
//! `line:5`, `ring:6`, `star:7` (host 0 in the middle), `grid:3x4`, `random:12:3[:seed]`
//! (connected, every host of degree 3 when `n*d` is even), `edges:5:0-1,1-2,2-3,3-4`,
//! `lan:4` (one shared segment), `nat:masquerade,symmetric` (a public host and one NATed host per
//! listed router kind, see [`Topology::nat`]; kinds `masquerade`, `symmetric`, `upnp`).

use anyhow::{bail, Context as _, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use std::collections::BTreeSet;

/// Hosts and the segments that connect them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Number of hosts, numbered `0..n`.
    pub n: usize,
    /// Segments; each is a sorted list of distinct host indices (2 = link, more = LAN).
    pub segments: Vec<Vec<usize>>,
    /// The description this was built from, for reports.
    pub name: String,
    /// Hosts that route (with NAT) between two segments; empty for plain topologies.
    pub routers: Vec<Router>,
    /// The segment that plays the public internet (public-looking addresses), if any.
    pub internet: Option<usize>,
}

/// How a [`Router`] translates the addresses of its LAN towards its WAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// Linux masquerade: the usual home router. The source port is kept when it is free on the
    /// WAN address (so one local port maps to one external port, whatever the destination).
    Masquerade,
    /// Masquerade with `fully-random`: every connection gets a new random external port
    /// (a "symmetric" NAT: the external port depends on the destination).
    Symmetric,
    /// [`Nat::Masquerade`] plus `miniupnpd` serving UPnP IGD (and NAT-PMP) on the LAN side.
    Upnp,
}

impl Nat {
    /// Parses `masquerade`, `symmetric` or `upnp`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "masquerade" => Ok(Nat::Masquerade),
            "symmetric" => Ok(Nat::Symmetric),
            "upnp" => Ok(Nat::Upnp),
            other => bail!("unknown NAT kind {other:?}; use masquerade, symmetric or upnp"),
        }
    }

    /// The name [`Nat::parse`] takes.
    pub fn name(self) -> &'static str {
        match self {
            Nat::Masquerade => "masquerade",
            Nat::Symmetric => "symmetric",
            Nat::Upnp => "upnp",
        }
    }
}

/// Host `host` forwards between segment `wan` and segment `lan` (indices into
/// [`Topology::segments`]), translating the LAN's addresses to its own WAN address. The other
/// hosts of `lan` get a default route via it; new connections from the WAN to the LAN are dropped
/// (unless a UPnP mapping forwards them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Router {
    /// The routing host.
    pub host: usize,
    /// Its outside segment.
    pub wan: usize,
    /// Its inside segment.
    pub lan: usize,
    /// The translation.
    pub nat: Nat,
}

impl Topology {
    /// Builds a topology from point-to-point edges (duplicates and self-loops rejected).
    pub fn from_edges(n: usize, edges: &[(usize, usize)], name: impl Into<String>) -> Result<Self> {
        let mut seen = BTreeSet::new();
        let mut segments = Vec::with_capacity(edges.len());
        for &(a, b) in edges {
            if a >= n || b >= n {
                bail!("edge {a}-{b}: host index out of range (n = {n})");
            }
            if a == b {
                bail!("edge {a}-{b}: self-loop");
            }
            let e = (a.min(b), a.max(b));
            if !seen.insert(e) {
                bail!("edge {a}-{b}: duplicate");
            }
            segments.push(vec![e.0, e.1]);
        }
        Ok(Self {
            n,
            segments,
            name: name.into(),
            routers: Vec::new(),
            internet: None,
        })
    }

    /// `0 - 1 - ... - n-1`.
    pub fn line(n: usize) -> Self {
        let edges: Vec<_> = (1..n).map(|i| (i - 1, i)).collect();
        Self::from_edges(n, &edges, format!("line:{n}")).expect("valid line")
    }

    /// A line closed into a cycle (`n >= 3`).
    pub fn ring(n: usize) -> Self {
        assert!(n >= 3, "a ring needs at least 3 hosts");
        let mut edges: Vec<_> = (1..n).map(|i| (i - 1, i)).collect();
        edges.push((n - 1, 0));
        Self::from_edges(n, &edges, format!("ring:{n}")).expect("valid ring")
    }

    /// Host 0 linked to every other host.
    pub fn star(n: usize) -> Self {
        let edges: Vec<_> = (1..n).map(|i| (0, i)).collect();
        Self::from_edges(n, &edges, format!("star:{n}")).expect("valid star")
    }

    /// `w x h` grid, host `r*w + c` at row `r`, column `c`.
    pub fn grid(w: usize, h: usize) -> Self {
        let mut edges = Vec::new();
        for r in 0..h {
            for c in 0..w {
                let i = r * w + c;
                if c + 1 < w {
                    edges.push((i, i + 1));
                }
                if r + 1 < h {
                    edges.push((i, i + w));
                }
            }
        }
        Self::from_edges(w * h, &edges, format!("grid:{w}x{h}")).expect("valid grid")
    }

    /// All hosts on one shared LAN segment.
    pub fn lan(n: usize) -> Self {
        Self {
            n,
            segments: vec![(0..n).collect()],
            name: format!("lan:{n}"),
            routers: Vec::new(),
            internet: None,
        }
    }

    /// A public host behind no NAT and one NATed host per entry of `kinds`: with `k` kinds,
    /// host 0 is the public node, hosts `1..=k` are routers and hosts `k+1..=2k` sit behind them
    /// (host `k+j` behind router `j`). Segment 0 is the internet (host 0 and every router's WAN);
    /// segment `j` is router `j`'s LAN, a point-to-point link to its host.
    pub fn nat(kinds: &[Nat]) -> Self {
        let k = kinds.len();
        let names: Vec<&str> = kinds.iter().map(|n| n.name()).collect();
        let mut t = Self {
            n: 1 + 2 * k,
            segments: vec![(0..=k).collect()],
            name: format!("nat:{}", names.join(",")),
            routers: Vec::new(),
            internet: Some(0),
        };
        for (j, &nat) in kinds.iter().enumerate() {
            let (router, host) = (1 + j, 1 + k + j);
            t.segments.push(vec![router, host]);
            t.add_router(router, 0, 1 + j, nat)
                .expect("valid NAT topology");
        }
        t
    }

    /// Declares that `host` routes between segments `wan` and `lan` with `nat` (see [`Router`]).
    /// A host behind a router may not be a router itself or sit behind a second one.
    pub fn add_router(&mut self, host: usize, wan: usize, lan: usize, nat: Nat) -> Result<()> {
        let seg = |s: usize| {
            self.segments
                .get(s)
                .with_context(|| format!("no segment {s}"))
        };
        if wan == lan {
            bail!("router {host}: WAN and LAN are the same segment {wan}");
        }
        if !seg(wan)?.contains(&host) || !seg(lan)?.contains(&host) {
            bail!("router {host} is not on both segments {wan} and {lan}");
        }
        if self.is_router(host) {
            bail!("host {host} is already a router");
        }
        if self.router_of(host).is_some() {
            bail!("router {host} sits behind another router (no double NAT)");
        }
        for &h in self.segments[lan].iter().filter(|&&h| h != host) {
            if self.is_router(h) || self.router_of(h).is_some() {
                bail!("host {h} on router {host}'s LAN is a router or already behind one");
            }
        }
        if self.routers.iter().any(|r| r.lan == lan) {
            bail!("segment {lan} already has a router");
        }
        self.routers.push(Router {
            host,
            wan,
            lan,
            nat,
        });
        Ok(())
    }

    /// Whether host `i` is a router.
    pub fn is_router(&self, i: usize) -> bool {
        self.routers.iter().any(|r| r.host == i)
    }

    /// The router host `i` sits behind (on the router's LAN), if any.
    pub fn router_of(&self, i: usize) -> Option<&Router> {
        self.routers
            .iter()
            .find(|r| r.host != i && self.segments[r.lan].contains(&i))
    }

    /// Hosts that are not routers: where nodes run.
    pub fn end_hosts(&self) -> Vec<usize> {
        (0..self.n).filter(|&i| !self.is_router(i)).collect()
    }

    /// A connected random graph where every host has degree `d` (one host has `d - 1` when
    /// `n * d` is odd), drawn with a seeded RNG: the same arguments give the same graph.
    pub fn random(n: usize, d: usize, seed: u64) -> Result<Self> {
        if n < 2 || d == 0 || d >= n {
            bail!("random graph needs 2 <= n and 1 <= degree < n (n = {n}, degree = {d})");
        }
        if d == 1 && n > 2 {
            bail!("a degree-1 graph of more than 2 hosts cannot be connected");
        }
        let mut rng = StdRng::seed_from_u64(seed);
        for _attempt in 0..10_000 {
            if let Some(edges) = try_regular(n, d, &mut rng) {
                let t = Self::from_edges(n, &edges, format!("random:{n}:{d}:{seed}"))?;
                if t.is_connected() {
                    return Ok(t);
                }
            }
        }
        bail!("could not draw a connected random graph with n = {n}, degree = {d}")
    }

    /// Parses a short description (see the module docs).
    pub fn parse(desc: &str) -> Result<Self> {
        let parts: Vec<&str> = desc.split(':').collect();
        let num = |s: &str| -> Result<usize> {
            s.trim()
                .parse::<usize>()
                .with_context(|| format!("bad number {s:?} in topology {desc:?}"))
        };
        let t = match parts.as_slice() {
            ["line", n] => Self::line(num(n)?),
            ["ring", n] if num(n)? >= 3 => Self::ring(num(n)?),
            ["star", n] => Self::star(num(n)?),
            ["lan", n] => Self::lan(num(n)?),
            ["grid", wh] => {
                let (w, h) = wh
                    .split_once('x')
                    .with_context(|| format!("grid wants WxH, got {wh:?}"))?;
                Self::grid(num(w)?, num(h)?)
            }
            ["nat", kinds] => {
                let kinds = kinds
                    .split(',')
                    .map(Nat::parse)
                    .collect::<Result<Vec<_>>>()?;
                Self::nat(&kinds)
            }
            ["random", n, d] => Self::random(num(n)?, num(d)?, 1)?,
            ["random", n, d, seed] => Self::random(num(n)?, num(d)?, num(seed)? as u64)?,
            ["edges", n, list] => {
                let mut edges = Vec::new();
                for e in list.split(',').filter(|e| !e.trim().is_empty()) {
                    let (a, b) = e
                        .split_once('-')
                        .with_context(|| format!("edge wants A-B, got {e:?}"))?;
                    edges.push((num(a)?, num(b)?));
                }
                Self::from_edges(num(n)?, &edges, desc)?
            }
            _ => bail!(
                "unknown topology {desc:?}; use line:N ring:N star:N grid:WxH random:N:D[:SEED] \
                 edges:N:A-B,... lan:N nat:KIND,... (masquerade, symmetric, upnp)"
            ),
        };
        if t.n == 0 {
            bail!("topology {desc:?} has no hosts");
        }
        Ok(t)
    }

    /// Point-to-point edges `(a, b)` with `a < b`, in segment order.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        self.segments
            .iter()
            .filter(|s| s.len() == 2)
            .map(|s| (s[0], s[1]))
            .collect()
    }

    /// Hosts sharing a segment with `i`.
    pub fn neighbours(&self, i: usize) -> BTreeSet<usize> {
        self.segments
            .iter()
            .filter(|s| s.contains(&i))
            .flat_map(|s| s.iter().copied())
            .filter(|&j| j != i)
            .collect()
    }

    /// Hops from `from` to every host through segments (`usize::MAX`: unreachable).
    pub fn hops_from(&self, from: usize) -> Vec<usize> {
        let mut hops = vec![usize::MAX; self.n];
        let mut queue = std::collections::VecDeque::from([from]);
        hops[from] = 0;
        while let Some(i) = queue.pop_front() {
            for j in self.neighbours(i) {
                if hops[j] == usize::MAX {
                    hops[j] = hops[i] + 1;
                    queue.push_back(j);
                }
            }
        }
        hops
    }

    /// Whether `a` and `b` share a segment.
    pub fn adjacent(&self, a: usize, b: usize) -> bool {
        a != b
            && self
                .segments
                .iter()
                .any(|s| s.contains(&a) && s.contains(&b))
    }

    /// Whether every host can reach every other through segments.
    pub fn is_connected(&self) -> bool {
        self.is_connected_without(&BTreeSet::new())
    }

    /// Whether the hosts not in `removed` stay connected among themselves when the hosts in
    /// `removed` are gone (used to pick nodes to kill without partitioning the survivors).
    pub fn is_connected_without(&self, removed: &BTreeSet<usize>) -> bool {
        let alive: Vec<usize> = (0..self.n).filter(|i| !removed.contains(i)).collect();
        let Some(&start) = alive.first() else {
            return true;
        };
        let mut seen = BTreeSet::from([start]);
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            for j in self.neighbours(i) {
                if !removed.contains(&j) && seen.insert(j) {
                    stack.push(j);
                }
            }
        }
        seen.len() == alive.len()
    }

    /// Pairs of hosts that dial each other at start: both ends of each link, and the first member
    /// of each LAN with every other member.
    pub fn dial_pairs(&self) -> Vec<(usize, usize)> {
        self.segments
            .iter()
            .flat_map(|s| s[1..].iter().map(move |&j| (s[0], j)))
            .collect()
    }
}

/// One attempt at a `d`-regular simple graph by random stub matching that avoids loops and
/// multi-edges (restart on dead end).
fn try_regular(n: usize, d: usize, rng: &mut StdRng) -> Option<Vec<(usize, usize)>> {
    let mut stubs: Vec<usize> = (0..n).flat_map(|i| std::iter::repeat_n(i, d)).collect();
    if stubs.len() % 2 == 1 {
        stubs.pop();
    }
    stubs.shuffle(rng);
    let mut edges = BTreeSet::new();
    while !stubs.is_empty() {
        let mut placed = false;
        for _ in 0..100 {
            let i = rng.gen_range(0..stubs.len());
            let j = rng.gen_range(0..stubs.len());
            let (a, b) = (stubs[i], stubs[j]);
            if i == j || a == b || edges.contains(&(a.min(b), a.max(b))) {
                continue;
            }
            edges.insert((a.min(b), a.max(b)));
            let (hi, lo) = (i.max(j), i.min(j));
            stubs.swap_remove(hi);
            stubs.swap_remove(lo);
            placed = true;
            break;
        }
        if !placed {
            return None;
        }
    }
    Some(edges.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn degree(t: &Topology, i: usize) -> usize {
        t.neighbours(i).len()
    }

    #[test]
    fn basic_shapes() {
        let l = Topology::line(5);
        assert_eq!(l.edges(), vec![(0, 1), (1, 2), (2, 3), (3, 4)]);
        assert!(l.adjacent(1, 2) && !l.adjacent(0, 2));
        let r = Topology::ring(6);
        assert!((0..6).all(|i| degree(&r, i) == 2));
        assert!(r.is_connected_without(&BTreeSet::from([1, 2])));
        assert!(!r.is_connected_without(&BTreeSet::from([1, 4])));
        let s = Topology::star(5);
        assert_eq!(degree(&s, 0), 4);
        let g = Topology::grid(3, 2);
        assert_eq!(g.edges().len(), 7);
        assert!(g.is_connected());
        let lan = Topology::lan(4);
        assert_eq!(lan.dial_pairs(), vec![(0, 1), (0, 2), (0, 3)]);
        assert!(lan.adjacent(2, 3));
    }

    #[test]
    fn hops_from_a_host() {
        assert_eq!(Topology::line(4).hops_from(1), vec![1, 0, 1, 2]);
        assert_eq!(Topology::ring(6).hops_from(0), vec![0, 1, 2, 3, 2, 1]);
        let two = Topology::parse("edges:3:0-1").unwrap();
        assert_eq!(two.hops_from(0), vec![0, 1, usize::MAX]);
    }

    #[test]
    fn random_is_regular_connected_and_seeded() {
        for (n, d) in [(12, 3), (10, 4), (30, 4), (50, 4), (7, 3), (2, 1)] {
            for seed in 0..5 {
                let t = Topology::random(n, d, seed).unwrap();
                assert!(t.is_connected(), "{n} {d} {seed}");
                let odd = (n * d) % 2;
                let short = (0..n).filter(|&i| degree(&t, i) != d).count();
                assert_eq!(short, odd, "{n} {d} {seed}: {:?}", t.edges());
                assert_eq!(t, Topology::random(n, d, seed).unwrap());
            }
        }
        assert_ne!(
            Topology::random(12, 3, 1).unwrap().edges(),
            Topology::random(12, 3, 2).unwrap().edges()
        );
    }

    #[test]
    fn parse_descriptions() {
        assert_eq!(Topology::parse("line:3").unwrap(), Topology::line(3));
        assert_eq!(Topology::parse("grid:2x3").unwrap().n, 6);
        assert_eq!(Topology::parse("random:12:3:7").unwrap().n, 12);
        let e = Topology::parse("edges:4:0-1,1-2,2-3").unwrap();
        assert_eq!(e.edges(), vec![(0, 1), (1, 2), (2, 3)]);
        assert!(Topology::parse("edges:3:0-0").is_err());
        assert!(Topology::parse("edges:3:0-1,1-0").is_err());
        assert!(Topology::parse("edges:3:0-5").is_err());
        assert!(Topology::parse("ring:2").is_err());
        assert!(Topology::parse("blob:3").is_err());
        assert!(Topology::parse("nat:cone").is_err());
    }

    #[test]
    fn nat_topology() {
        let t = Topology::parse("nat:masquerade,symmetric").unwrap();
        assert_eq!(t, Topology::nat(&[Nat::Masquerade, Nat::Symmetric]));
        assert_eq!(t.n, 5);
        assert_eq!(t.segments, vec![vec![0, 1, 2], vec![1, 3], vec![2, 4]]);
        assert_eq!(t.internet, Some(0));
        assert!(t.is_router(1) && t.is_router(2) && !t.is_router(0) && !t.is_router(3));
        assert_eq!(
            t.router_of(3).map(|r| (r.host, r.nat)),
            Some((1, Nat::Masquerade))
        );
        assert_eq!(
            t.router_of(4).map(|r| (r.host, r.nat)),
            Some((2, Nat::Symmetric))
        );
        assert!(t.router_of(0).is_none() && t.router_of(1).is_none());
        assert_eq!(t.end_hosts(), vec![0, 3, 4]);
        // No double NAT, no router off its segments.
        let mut t2 = t.clone();
        assert!(t2.add_router(3, 1, 0, Nat::Upnp).is_err());
        assert!(t2.add_router(0, 0, 1, Nat::Upnp).is_err());
        assert!(Topology::line(3).router_of(1).is_none());
    }
}
