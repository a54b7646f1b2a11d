//! The emulated network: one network namespace per host, veth pairs for links, bridges in switch
//! namespaces for LAN segments, and the faults that can be injected into them.
//!
//! Addressing (private test range, only ever inside our namespaces):
//! - point-to-point segment number `k` gets `10.231.0.0/17 + 4k` as a `/30`: `.1` for the lower
//!   host index, `.2` for the higher;
//! - LAN segment number `m` gets `10.231.(128+m).0/24`, host `i` of the segment `.(position+1)`;
//! - the *internet* segment ([`Topology::internet`], always built as a LAN, even with two hosts)
//!   gets [`INTERNET_NET`]`/24` = `11.231.0.0/24` instead, host at position `p` `.(p+1)`.
//!
//! The internet segment needs addresses that count as global: libp2p's UPnP behaviour ignores a
//! gateway whose external address is not global, and `miniupnpd` refuses to map ports when its
//! WAN address is in its own reserved list. That list (miniupnpd 2.3.1's `addr_is_reserved`) is
//! longer than libp2p's: besides RFC 1918, 100.64/10, the documentation and benchmarking ranges it
//! also rejects 192.88.99/24 (6to4 relay anycast), 192.31.196/24, 192.52.193/24 and
//! 192.175.48/24, so no special-purpose range satisfies both and the lab borrows an ordinary
//! public range, `11.231.0.0/24` (in 11/8, a US DoD allocation). These addresses exist only
//! inside the lab's own namespaces, which have no route out of the machine: no interface of a lab
//! namespace leads to the root namespace ([`Net::check_confined`]), nothing on the internet
//! segment has a default route, and nothing the lab does touches the root namespace's routes.
//!
//! Interfaces are created directly inside the namespaces (`ip link add NAME netns A type veth
//! peer name NAME2 netns B`), never in the root namespace: in host `a` the link to host `b` is
//! `v<b>`, a LAN port is `l<m>`. Namespaces have only connected routes, IP forwarding off and
//! IPv6 off, so a host reaches exactly the hosts it shares a segment with.
//!
//! Routers ([`crate::topology::Router`]) are the one exception: a router's namespace has
//! `ip_forward=1` and an nftables table `inet mcl_nat` that masquerades what leaves by its WAN
//! interface (`fully-random` for [`Nat::Symmetric`](crate::topology::Nat::Symmetric)) and, in its forward hook (policy drop),
//! lets LAN to WAN and established/related replies through and nothing else: a new connection
//! from the WAN side is dropped unless a UPnP mapping DNATs it. Its input hook drops what
//! arrives unasked on the WAN interface for the router itself but pings, as home routers do (a reset
//! from the router's own stack would end a hole punch's early SYN instead of letting the
//! other end's SYN open the way). Every other host of a router's LAN
//! gets a default route via the router's LAN address; nothing else gets a default route (routers
//! included), so the private LANs are unreachable from the internet segment and from each other,
//! and a NATed host reaches the internet segment only through its router's translation.
//!
//! UPnP ([`Nat::Upnp`](crate::topology::Nat::Upnp)): `miniupnpd` (Debian `miniupnpd-nftables`) runs in the router's namespace
//! in the foreground, with its config, lease file, pid file and log in a temporary directory of
//! the run, listening on the LAN interface (HTTP on [`UPNP_HTTP_PORT`], SSDP on 1900, NAT-PMP on
//! 5351), external interface the WAN one, `secure_mode` (a LAN host maps ports to itself only).
//! Its rules go into chains of `inet mcl_nat` that the router's hooks jump to: `miniupnpd`
//! (forward), `prerouting_miniupnpd` (DNAT), `postrouting_miniupnpd`. The LAN hosts' default route
//! also carries their SSDP multicast (239.255.255.250:1900) to the router.
//!
//! Faults: link down/up (`ip link set`), bandwidth (`tc qdisc tbf`), packet loss (an nftables
//! `numgen random` drop rule in the output hook, or an iptables `statistic --mode random` rule
//! when nft is absent), a shorter TCP retransmission timeout (`net.ipv4.tcp_retries2`, so
//! connections over a cut link end in seconds). `tc netem` is not used: the test machines' kernels lack `sch_netem`.

mod router;
pub use router::Mapping;

use crate::cleanup::{self, check_name};
use crate::sys::{self, Env};
use crate::topology::Topology;
use anyhow::{bail, Context as _, Result};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The internet segment's `/24` (see the module docs: global-looking, only inside the lab).
pub const INTERNET_NET: Ipv4Addr = Ipv4Addr::new(11, 231, 0, 0);

/// The TCP port of `miniupnpd`'s HTTP (IGD description and SOAP control) on a router's LAN.
pub const UPNP_HTTP_PORT: u16 = 2869;

/// A `miniupnpd` running in a router's namespace.
struct Upnpd {
    /// The router's host index.
    router: usize,
    /// `ip netns exec NS miniupnpd ...` (exec'd: this is miniupnpd itself).
    child: std::process::Child,
    /// Config, leases, pid file and log.
    dir: PathBuf,
}

/// One interface of a host.
#[derive(Debug, Clone)]
pub struct Iface {
    /// Interface name inside the host's namespace.
    pub name: String,
    /// The host's address on this segment.
    pub addr: Ipv4Addr,
    /// Prefix length of the segment's subnet.
    pub prefix_len: u8,
    /// Index into [`Topology::segments`].
    pub segment: usize,
}

/// One emulated host.
#[derive(Debug, Clone)]
pub struct Host {
    /// Network namespace name.
    pub ns: String,
    /// Its interfaces, one per segment it belongs to.
    pub ifaces: Vec<Iface>,
}

/// Namespaces, links and the fault state of one lab run. Dropping it removes everything.
pub struct Net {
    /// Run prefix shared by all names of this run.
    pub prefix: String,
    /// The topology this network was built from.
    pub topo: Topology,
    /// Hosts by index.
    pub hosts: Vec<Host>,
    /// Switch namespaces by LAN segment index (`None` for point-to-point segments).
    switches: Vec<Option<String>>,
    /// Per segment: whether it is administratively up.
    seg_up: Vec<bool>,
    /// Loss in percent per (host, interface name); rules are regenerated from this map.
    loss: BTreeMap<(usize, String), f64>,
    /// Tools found at setup.
    env: Env,
    /// `miniupnpd` daemons of UPnP routers.
    upnpd: Vec<Upnpd>,
}

impl Net {
    /// Creates all namespaces and links for `topo`. On error everything created is removed.
    pub fn create(topo: &Topology, env: Env) -> Result<Self> {
        let prefix = cleanup::new_run_prefix();
        let mut net = Net {
            prefix: prefix.clone(),
            topo: topo.clone(),
            hosts: Vec::with_capacity(topo.n),
            switches: vec![None; topo.segments.len()],
            seg_up: vec![true; topo.segments.len()],
            loss: BTreeMap::new(),
            env,
            upnpd: Vec::new(),
        };
        // On error, `net` is dropped here and removes what exists.
        net.build()
            .with_context(|| format!("building network {}", topo.name))?;
        Ok(net)
    }

    fn build(&mut self) -> Result<()> {
        for i in 0..self.topo.n {
            let ns = format!("{}h{i}", self.prefix);
            add_ns(&ns)?;
            self.hosts.push(Host {
                ns,
                ifaces: Vec::new(),
            });
        }
        // Per-namespace batches of `ip` commands, run once per namespace at the end.
        let mut batches: BTreeMap<String, String> = BTreeMap::new();
        for h in &self.hosts {
            batches.insert(h.ns.clone(), "link set lo up\n".into());
        }
        let mut p2p = 0u32;
        let mut lans = 0u32;
        for (s, seg) in self.topo.segments.clone().iter().enumerate() {
            let internet = self.topo.internet == Some(s);
            if seg.len() == 2 && !internet {
                let (a, b) = (seg[0], seg[1]);
                if p2p >= 8192 {
                    bail!("too many links (max 8192)");
                }
                let base = u32::from(Ipv4Addr::new(10, 231, 0, 0)) + 4 * p2p;
                p2p += 1;
                let (ia, ib) = (format!("v{b}"), format!("v{a}"));
                check_name(&ia)?;
                check_name(&ib)?;
                let (na, nb) = (self.hosts[a].ns.clone(), self.hosts[b].ns.clone());
                sys::run(
                    "ip",
                    &[
                        "link", "add", &ia, "netns", &na, "type", "veth", "peer", "name", &ib,
                        "netns", &nb,
                    ],
                )?;
                for (host, ifname, addr) in [(a, ia, base + 1), (b, ib, base + 2)] {
                    let addr = Ipv4Addr::from(addr);
                    let batch = batches.get_mut(&self.hosts[host].ns).expect("host batch");
                    batch.push_str(&format!("addr add {addr}/30 dev {ifname}\n"));
                    batch.push_str(&format!("link set {ifname} up\n"));
                    self.hosts[host].ifaces.push(Iface {
                        name: ifname,
                        addr,
                        prefix_len: 30,
                        segment: s,
                    });
                }
            } else {
                if lans >= 127 || seg.len() > 254 {
                    bail!("too many LAN segments (max 127) or hosts on one (max 254)");
                }
                let m = lans;
                lans += 1;
                let sw = format!("{}s{m}", self.prefix);
                add_ns(&sw)?;
                self.switches[s] = Some(sw.clone());
                let mut sw_batch = String::from("link add br0 type bridge\nlink set br0 up\n");
                for (pos, &host) in seg.iter().enumerate() {
                    let (hif, port) = (format!("l{m}"), format!("p{host}"));
                    check_name(&port)?;
                    let hns = self.hosts[host].ns.clone();
                    sys::run(
                        "ip",
                        &[
                            "link", "add", &hif, "netns", &hns, "type", "veth", "peer", "name",
                            &port, "netns", &sw,
                        ],
                    )?;
                    sw_batch.push_str(&format!("link set {port} master br0\nlink set {port} up\n"));
                    let addr = if internet {
                        Ipv4Addr::from(u32::from(INTERNET_NET) + pos as u32 + 1)
                    } else {
                        Ipv4Addr::new(10, 231, 128 + m as u8, pos as u8 + 1)
                    };
                    let batch = batches.get_mut(&hns).expect("host batch");
                    batch.push_str(&format!(
                        "addr add {addr}/24 dev {hif}\nlink set {hif} up\n"
                    ));
                    self.hosts[host].ifaces.push(Iface {
                        name: hif,
                        addr,
                        prefix_len: 24,
                        segment: s,
                    });
                }
                batches.insert(sw, sw_batch);
            }
        }
        for (ns, batch) in &batches {
            sys::run_with_stdin("ip", &["-n", ns, "-batch", "-"], batch)
                .with_context(|| format!("configuring {ns}"))?;
        }
        self.settle(Instant::now() + Duration::from_secs(10))?;
        for r in self.topo.routers.clone() {
            self.setup_router(&r)
                .with_context(|| format!("setting up router {}", r.host))?;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for d in &self.upnpd {
            self.wait_upnp(d.router, deadline)?;
        }
        Ok(())
    }

    /// Waits until every interface (and bridge) in every namespace of the run is operationally
    /// up: right after creation a bridge may not forward yet.
    fn settle(&self, deadline: std::time::Instant) -> Result<()> {
        loop {
            let mut pending = Vec::new();
            for ns in self.namespaces() {
                let out = sys::run("ip", &["-n", &ns, "-o", "link", "show", "up"])?;
                for line in out.lines().filter(|l| !l.contains(" lo:")) {
                    if !line.contains("state UP") {
                        pending.push(format!("{ns}: {}", line.split('<').next().unwrap_or(line)));
                    }
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                bail!("interfaces not up: {pending:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Namespace of host `i`.
    pub fn ns(&self, i: usize) -> &str {
        &self.hosts[i].ns
    }

    /// Index of the point-to-point segment between `a` and `b`.
    fn link_segment(&self, a: usize, b: usize) -> Result<usize> {
        let (lo, hi) = (a.min(b), a.max(b));
        self.topo
            .segments
            .iter()
            .position(|s| s.len() == 2 && s[0] == lo && s[1] == hi)
            .with_context(|| format!("no link between hosts {a} and {b}"))
    }

    /// The interface of host `i` on segment `s`.
    pub fn iface_on(&self, i: usize, s: usize) -> Option<&Iface> {
        self.hosts[i].ifaces.iter().find(|f| f.segment == s)
    }

    /// The address of `to` that `from` can use (on a segment they share, if it is up).
    pub fn addr_for(&self, from: usize, to: usize) -> Option<Ipv4Addr> {
        self.hosts[to]
            .ifaces
            .iter()
            .find(|f| self.seg_up[f.segment] && self.topo.segments[f.segment].contains(&from))
            .map(|f| f.addr)
    }

    /// The address of `to` that `from` can reach: on a shared (up) segment ([`Net::addr_for`]),
    /// else, when `from` sits behind a router whose LAN and WAN segments are up, `to`'s address
    /// on that WAN segment (reached through the router's NAT). `None` for anything else: in
    /// particular nothing reaches a NATed host's private address from outside its LAN.
    pub fn route_addr(&self, from: usize, to: usize) -> Option<Ipv4Addr> {
        if let Some(a) = self.addr_for(from, to) {
            return Some(a);
        }
        let r = self.topo.router_of(from)?;
        if !self.seg_up[r.lan] || !self.seg_up[r.wan] {
            return None;
        }
        self.iface_on(to, r.wan).map(|f| f.addr)
    }

    /// Host `i`'s own address on the internet segment ([`Topology::internet`]), if it has one
    /// (the public node, a router's WAN side).
    pub fn public_addr(&self, i: usize) -> Option<Ipv4Addr> {
        self.iface_on(i, self.topo.internet?).map(|f| f.addr)
    }

    /// The address host `i`'s connections to the WAN appear to come from: its router's WAN
    /// address when it sits behind a router, else its own internet address.
    pub fn external_addr(&self, i: usize) -> Option<Ipv4Addr> {
        match self.topo.router_of(i) {
            Some(r) => self.iface_on(r.host, r.wan).map(|f| f.addr),
            None => self.public_addr(i),
        }
    }

    /// Host `i`'s address on segment `s`, if it is on it.
    pub fn addr_on(&self, i: usize, s: usize) -> Option<Ipv4Addr> {
        self.iface_on(i, s).map(|f| f.addr)
    }

    /// Whether the segment(s) joining `a` and `b` is up.
    pub fn link_is_up(&self, a: usize, b: usize) -> bool {
        self.addr_for(a, b).is_some()
    }

    /// Takes the link between `a` and `b` down (both ends) or up again.
    pub fn set_link(&mut self, a: usize, b: usize, up: bool) -> Result<()> {
        let s = self.link_segment(a, b)?;
        let state = if up { "up" } else { "down" };
        for h in [a, b] {
            let ifname = self.iface_on(h, s).expect("link iface").name.clone();
            sys::run(
                "ip",
                &["-n", &self.hosts[h].ns, "link", "set", &ifname, state],
            )?;
        }
        self.seg_up[s] = up;
        Ok(())
    }

    /// Detaches host `i` from LAN segment `s` (or reattaches it): its switch port goes down.
    pub fn set_lan_port(&mut self, i: usize, s: usize, up: bool) -> Result<()> {
        let sw = self.switches[s].clone().context("not a LAN segment")?;
        let state = if up { "up" } else { "down" };
        sys::run("ip", &["-n", &sw, "link", "set", &format!("p{i}"), state])?;
        Ok(())
    }

    /// Cuts every link between `side` and the other hosts; returns the links cut, for
    /// [`Net::heal`].
    pub fn partition(&mut self, side: &[usize]) -> Result<Vec<(usize, usize)>> {
        let mut cut = Vec::new();
        for (a, b) in self.topo.edges() {
            if side.contains(&a) != side.contains(&b) && self.link_is_up(a, b) {
                self.set_link(a, b, false)?;
                cut.push((a, b));
            }
        }
        Ok(cut)
    }

    /// Brings the given links up again.
    pub fn heal(&mut self, links: &[(usize, usize)]) -> Result<()> {
        for &(a, b) in links {
            self.set_link(a, b, true)?;
        }
        Ok(())
    }

    /// Limits the link between `a` and `b` to `rate` (tc syntax, e.g. `1mbit`) in both directions
    /// with a token bucket; `None` removes the limit.
    pub fn set_bandwidth(&mut self, a: usize, b: usize, rate: Option<&str>) -> Result<()> {
        let s = self.link_segment(a, b)?;
        for h in [a, b] {
            let ifname = self.iface_on(h, s).expect("link iface").name.clone();
            let ns = self.hosts[h].ns.clone();
            match rate {
                Some(rate) => {
                    sys::run(
                        "ip",
                        &[
                            "netns", "exec", &ns, "tc", "qdisc", "replace", "dev", &ifname, "root",
                            "tbf", "rate", rate, "burst", "32kbit", "latency", "200ms",
                        ],
                    )?;
                }
                None => {
                    let _ = sys::output(
                        "ip",
                        &[
                            "netns", "exec", &ns, "tc", "qdisc", "del", "dev", &ifname, "root",
                        ],
                    );
                }
            }
        }
        Ok(())
    }

    /// Drops `percent` of the packets sent each way over the link between `a` and `b`
    /// (0 removes the rule).
    pub fn set_loss(&mut self, a: usize, b: usize, percent: f64) -> Result<()> {
        if !(0.0..=100.0).contains(&percent) {
            bail!("loss must be within 0..=100 percent, got {percent}");
        }
        let s = self.link_segment(a, b)?;
        for h in [a, b] {
            let ifname = self.iface_on(h, s).expect("link iface").name.clone();
            if percent > 0.0 {
                self.loss.insert((h, ifname), percent);
            } else {
                self.loss.remove(&(h, ifname));
            }
            self.apply_loss(h)?;
        }
        Ok(())
    }

    /// Rewrites host `h`'s loss rules from [`Net::loss`].
    fn apply_loss(&self, h: usize) -> Result<()> {
        let ns = &self.hosts[h].ns;
        let rules: Vec<(&str, f64)> = self
            .loss
            .iter()
            .filter(|((host, _), _)| *host == h)
            .map(|((_, ifname), p)| (ifname.as_str(), *p))
            .collect();
        if self.env.nft {
            let mut script = String::from(
                "table inet mcl_lab {\n chain out { type filter hook output priority 0; policy accept; }\n}\n\
                 flush chain inet mcl_lab out\n",
            );
            for (ifname, p) in &rules {
                let thr = (p * 100.0).round() as u32; // out of 10000
                let cond = if thr >= 10_000 {
                    String::new()
                } else {
                    format!("numgen random mod 10000 < {thr} ")
                };
                script.push_str(&format!(
                    "add rule inet mcl_lab out oifname \"{ifname}\" {cond}drop\n"
                ));
            }
            sys::run_with_stdin("ip", &["netns", "exec", ns, "nft", "-f", "-"], &script)
        } else if self.env.iptables {
            sys::run_in(ns, "iptables", &["-w", "-F", "OUTPUT"])?;
            for (ifname, p) in &rules {
                let prob = format!("{:.4}", p / 100.0);
                let mut args = vec!["-w", "-A", "OUTPUT", "-o", ifname];
                if *p < 100.0 {
                    args.extend([
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        &prob,
                    ]);
                }
                args.extend(["-j", "DROP"]);
                sys::run_in(ns, "iptables", &args)?;
            }
            Ok(())
        } else {
            bail!("packet loss needs nft or iptables (run `meshchat-lab setup`)")
        }
    }

    /// Sets `net.ipv4.tcp_retries2` in every host namespace: how often TCP retransmits
    /// unacknowledged data before it gives a connection up. The kernel's default, 15, keeps a
    /// connection over a dead link for about 15 minutes; 3 gives up about 3 s after the first
    /// unanswered segment (the timeout is `(2^(n+1) - 1) x 200 ms`). Nothing else changes: a cut
    /// link still drops every packet silently, connections just end sooner.
    pub fn set_tcp_retries(&self, retries: u8) -> Result<()> {
        let key = "net.ipv4.tcp_retries2";
        for h in &self.hosts {
            let set = if sys::have("sysctl") {
                sys::run_in(&h.ns, "sysctl", &["-q", "-w", &format!("{key}={retries}")])
            } else {
                let cmd = format!("echo {retries} > /proc/sys/net/ipv4/tcp_retries2");
                sys::run_in(&h.ns, "sh", &["-c", &cmd])
            };
            set.with_context(|| format!("setting {key} in {}", h.ns))?;
        }
        Ok(())
    }

    /// Whether host `from` gets an answer from `addr` to one ping within a second.
    pub fn ping(&self, from: usize, addr: Ipv4Addr) -> bool {
        sys::output(
            "ip",
            &[
                "netns",
                "exec",
                &self.hosts[from].ns,
                "ping",
                "-n",
                "-q",
                "-c1",
                "-W1",
                &addr.to_string(),
            ],
        )
        .map(|o| o.status.success())
        .unwrap_or(false)
    }

    /// Whether a ping from `a` to `b`'s interface `f` should be answered: `f` is on a shared up
    /// segment, or `a` sits behind router `b` (any of the router's own addresses), or `a` sits
    /// behind a router and `f` is on that router's WAN segment (translated, both segments up).
    fn expect_reachable(&self, a: usize, b: usize, f: &Iface) -> bool {
        if self.seg_up[f.segment] && self.topo.segments[f.segment].contains(&a) {
            return true;
        }
        let Some(r) = self.topo.router_of(a) else {
            return false;
        };
        if !self.seg_up[r.lan] {
            return false;
        }
        b == r.host || (f.segment == r.wan && self.seg_up[r.wan])
    }

    /// Checks the reachability rules: every host reaches its neighbours' addresses on shared
    /// (up) segments and no address of any other host, except that a host behind a router also
    /// reaches the router's addresses and the addresses on the router's WAN segment. With more
    /// than `exhaustive_max` hosts only the links and a deterministic sample of other pairs are
    /// checked.
    pub fn verify_isolation(&self, exhaustive_max: usize) -> Result<usize> {
        let n = self.topo.n;
        let mut checks = 0;
        let mut failures = Vec::new();
        for a in 0..n {
            for b in 0..n {
                if a == b {
                    continue;
                }
                let sampled =
                    n <= exhaustive_max || self.topo.adjacent(a, b) || (a * 31 + b) % n == 0;
                if !sampled {
                    continue;
                }
                for f in &self.hosts[b].ifaces {
                    let expect = self.expect_reachable(a, b, f);
                    checks += 1;
                    if self.ping(a, f.addr) != expect {
                        failures.push(format!(
                            "host {a} -> host {b} at {} ({}): expected {}",
                            f.addr,
                            f.name,
                            if expect { "reachable" } else { "unreachable" }
                        ));
                    }
                }
            }
        }
        if !failures.is_empty() {
            bail!("reachability rules violated:\n  {}", failures.join("\n  "));
        }
        Ok(checks)
    }

    /// The interfaces of namespace `ns`, from `ip -d -o link show`.
    pub fn links(&self, ns: &str) -> Result<Vec<LinkInfo>> {
        let out = sys::run("ip", &["-n", ns, "-d", "-o", "link", "show"])?;
        Ok(out.lines().filter_map(LinkInfo::parse).collect())
    }

    /// Checks that the run's namespaces are closed: each host has only `lo` and its own lab
    /// interfaces, each a multicast-capable veth whose other end is in a namespace of this run;
    /// each switch has only `lo`, its bridge `br0` and veth ports to this run's hosts; every
    /// IPv4 route of a host goes out one of its lab interfaces, and the only default routes are
    /// those of hosts behind a router, via the router's LAN address; IP forwarding is on in
    /// routers only. So nothing a node sends (mDNS multicast included) can leave the lab's
    /// namespaces. Returns a one-line summary.
    pub fn check_confined(&self) -> Result<String> {
        let ours = self.namespaces();
        let mut problems = Vec::new();
        let mut veths = 0;
        let mut check_veth = |ns: &str, l: &LinkInfo, problems: &mut Vec<String>| {
            veths += 1;
            if l.kind.as_deref() != Some("veth") {
                problems.push(format!("{ns}: {} is a {:?}, not a veth", l.name, l.kind));
            }
            match &l.peer_ns {
                Some(p) if ours.contains(p) => {}
                other => problems.push(format!(
                    "{ns}: the other end of {} is in {other:?}, not in a namespace of this run",
                    l.name
                )),
            }
            if !l.flags.iter().any(|f| f == "MULTICAST") {
                problems.push(format!("{ns}: {} has no MULTICAST flag", l.name));
            }
        };
        for (i, h) in self.hosts.iter().enumerate() {
            let links = self.links(&h.ns)?;
            let mut names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
            names.sort_unstable();
            let mut want: Vec<&str> = h.ifaces.iter().map(|f| f.name.as_str()).collect();
            want.push("lo");
            want.sort_unstable();
            if names != want {
                problems.push(format!("{}: interfaces {names:?}, expected {want:?}", h.ns));
            }
            for l in links.iter().filter(|l| l.name != "lo") {
                check_veth(&h.ns, l, &mut problems);
            }
            let routes = sys::run("ip", &["-n", &h.ns, "-4", "route", "show", "table", "all"])?;
            for r in routes.lines().filter(|r| !r.trim().is_empty()) {
                let dev = r.split_whitespace().skip_while(|w| *w != "dev").nth(1);
                if !dev.is_some_and(|d| d == "lo" || h.ifaces.iter().any(|f| f.name == d)) {
                    problems.push(format!("{}: route {r:?} leaves the lab interfaces", h.ns));
                }
                if r.starts_with("default") {
                    let ok = self.topo.router_of(i).is_some_and(|rt| {
                        let via = self.iface_on(rt.host, rt.lan).map(|f| f.addr);
                        let dev = self.iface_on(i, rt.lan).map(|f| f.name.as_str());
                        let w: Vec<&str> = r.split_whitespace().collect();
                        via.is_some_and(|v| w.get(2) == Some(&v.to_string().as_str()))
                            && w.get(4).copied() == dev
                    });
                    if !ok {
                        problems.push(format!(
                            "{}: default route {r:?} (only hosts behind a router may have one, via it)",
                            h.ns
                        ));
                    }
                }
            }
            let fwd = sys::run_in(&h.ns, "cat", &["/proc/sys/net/ipv4/ip_forward"])?;
            if (fwd.trim() == "1") != self.topo.is_router(i) {
                problems.push(format!("{}: ip_forward is {}", h.ns, fwd.trim()));
            }
        }
        for sw in self.switches.iter().flatten() {
            for l in self.links(sw)? {
                match l.name.as_str() {
                    "lo" => {}
                    "br0" if l.kind.as_deref() == Some("bridge") => {}
                    n if n.starts_with('p') => check_veth(sw, &l, &mut problems),
                    _ => problems.push(format!("{sw}: unexpected interface {}", l.name)),
                }
            }
        }
        if !problems.is_empty() {
            bail!("network not confined:\n  {}", problems.join("\n  "));
        }
        Ok(format!(
            "{} namespaces hold only lo, bridges and {veths} veth ends whose peers are all in this run's namespaces; host routes only via lab interfaces",
            ours.len()
        ))
    }

    /// Interfaces of host `i` on which the IPv4 multicast group `group` is joined (from
    /// `ip maddr show`), e.g. `224.0.0.251` for mDNS.
    pub fn multicast_members(&self, i: usize, group: Ipv4Addr) -> Result<Vec<String>> {
        let out = sys::run("ip", &["-n", &self.hosts[i].ns, "maddr", "show"])?;
        Ok(parse_maddr(&out, group))
    }

    /// All namespace names of this run (hosts and switches).
    pub fn namespaces(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| h.ns.clone())
            .chain(self.switches.iter().flatten().cloned())
            .collect()
    }

    /// Removes every namespace of this run (killing what runs inside). Idempotent.
    pub fn destroy(&mut self) {
        for mut d in self.upnpd.drain(..) {
            let _ = d.child.kill();
            let _ = d.child.wait();
            let _ = std::fs::remove_dir_all(&d.dir);
            if let Some(parent) = d.dir.parent() {
                // The run's temp dir, if nothing else (a Lab's node dirs) is in it.
                let _ = std::fs::remove_dir(parent);
            }
        }
        let names = self.namespaces();
        let mut reg = cleanup::registry();
        for ns in &names {
            cleanup::kill_and_delete_ns(ns);
            reg.namespaces.remove(ns);
        }
        self.hosts.clear();
        self.switches.iter_mut().for_each(|s| *s = None);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// One interface as `ip -d -o link show` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Name (without `@peer`).
    pub name: String,
    /// Flags such as `UP`, `MULTICAST`, `LOWER_UP`.
    pub flags: Vec<String>,
    /// Link kind (`veth`, `bridge`, ...); `None` for `lo` and plain devices.
    pub kind: Option<String>,
    /// The named namespace of a veth's other end (`link-netns NAME`).
    pub peer_ns: Option<String>,
}

impl LinkInfo {
    /// Parses one line of `ip -d -o link show` (segments separated by `\`).
    pub fn parse(line: &str) -> Option<Self> {
        let mut segs = line.split('\\');
        let head = segs.next()?;
        let name = head
            .split(": ")
            .nth(1)?
            .split('@')
            .next()?
            .trim()
            .to_string();
        let flags = head
            .split_once('<')
            .and_then(|(_, r)| r.split_once('>'))
            .map(|(f, _)| f.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        let mut words = line.split_whitespace();
        let peer_ns = words
            .by_ref()
            .skip_while(|w| *w != "link-netns")
            .nth(1)
            .map(str::to_string);
        // Segment 1 is `link/... promiscuity ...`; the next one, if any, starts with the kind.
        let kind = segs
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .filter(|k| *k != "addrgenmode")
            .map(str::to_string);
        Some(LinkInfo {
            name,
            flags,
            kind,
            peer_ns,
        })
    }
}

/// Devices of `ip maddr show` output on which `group` is joined.
fn parse_maddr(out: &str, group: Ipv4Addr) -> Vec<String> {
    let mut dev = None;
    let mut found = Vec::new();
    for line in out.lines() {
        if !line.starts_with(char::is_whitespace) {
            // `2:\tl0` (a device header)
            dev = line.split_whitespace().nth(1).map(str::to_string);
        } else {
            let mut w = line.split_whitespace();
            if w.next() == Some("inet") && w.next() == Some(group.to_string().as_str()) {
                found.extend(dev.clone());
            }
        }
    }
    found.dedup();
    found
}

/// Creates namespace `ns`, registered for signal cleanup, with forwarding and IPv6 off.
fn add_ns(ns: &str) -> Result<()> {
    check_name(ns)?;
    {
        let mut reg = cleanup::registry();
        if reg.shutting_down {
            bail!("lab is shutting down");
        }
        reg.namespaces.insert(ns.to_owned());
        sys::run("ip", &["netns", "add", ns])?;
    }
    sys::run_in(
        ns,
        "sh",
        &[
            "-c",
            "echo 0 > /proc/sys/net/ipv4/ip_forward; \
             echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; \
             echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_link_lines() {
        let lo = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00 promiscuity 0  allmulti 0 minmtu 0 maxmtu 0 addrgenmode eui64 numtxqueues 1 ";
        let l = LinkInfo::parse(lo).unwrap();
        assert_eq!((l.name.as_str(), l.kind, l.peer_ns), ("lo", None, None));
        let veth = "2: l0@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\\    link/ether 02:ee:a6:21:5a:15 brd ff:ff:ff:ff:ff:ff link-netns mcl0001a2b00s0 promiscuity 0  allmulti 0 minmtu 68 maxmtu 65535 \\    veth addrgenmode eui64 numtxqueues 2 ";
        let l = LinkInfo::parse(veth).unwrap();
        assert_eq!(l.name, "l0");
        assert_eq!(l.kind.as_deref(), Some("veth"));
        assert_eq!(l.peer_ns.as_deref(), Some("mcl0001a2b00s0"));
        assert!(l.flags.iter().any(|f| f == "MULTICAST"));
        let port = "3: p0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master br0 state UP\\    link/ether f2:55:fe:8b:78:87 brd ff:ff:ff:ff:ff:ff link-netns mcl0001a2b00h0 promiscuity 1 \\    veth \\    bridge_slave state forwarding priority 32";
        let l = LinkInfo::parse(port).unwrap();
        assert_eq!((l.name.as_str(), l.kind.as_deref()), ("p0", Some("veth")));
        let br = "2: br0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\\    link/ether 16:99:7f:6a:cb:48 brd ff:ff:ff:ff:ff:ff promiscuity 0 \\    bridge forward_delay 1500";
        let l = LinkInfo::parse(br).unwrap();
        assert_eq!(
            (l.name.as_str(), l.kind.as_deref()),
            ("br0", Some("bridge"))
        );
        // The root namespace has no name: only `link-netnsid 0` is printed.
        let out = "4: eth0@if5: <BROADCAST,MULTICAST,UP> mtu 1500\\    link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff link-netnsid 0 promiscuity 0 \\    veth";
        assert_eq!(LinkInfo::parse(out).unwrap().peer_ns, None);
    }

    #[test]
    fn parses_ip_maddr() {
        let out = "1:\tlo\n\tinet  224.0.0.1\n2:\tl0\n\tlink  01:00:5e:00:00:fb\n\tlink  01:00:5e:00:00:01\n\tinet  224.0.0.251\n\tinet  224.0.0.1\n";
        let mdns = Ipv4Addr::new(224, 0, 0, 251);
        assert_eq!(parse_maddr(out, mdns), vec!["l0".to_string()]);
        assert_eq!(
            parse_maddr(out, Ipv4Addr::new(224, 0, 0, 1)),
            vec!["lo".to_string(), "l0".to_string()]
        );
        assert!(parse_maddr("1:\tlo\n\tinet  224.0.0.1\n", mdns).is_empty());
    }
}
