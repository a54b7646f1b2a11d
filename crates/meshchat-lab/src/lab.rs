//! The scenario API: a [`Lab`] is a network ([`Net`]) with one node per host, plus helpers to
//! drive nodes, inject faults and check outcomes.
//!
//! ```no_run
//! # use meshchat_lab::{Lab, LabOptions, Topology};
//! # fn main() -> anyhow::Result<()> {
//! let mut lab = Lab::up(Topology::line(3), LabOptions::from_env()?)?;
//! let id = lab.node(0).send("lobby", "hello")?;
//! lab.wait_all_have(&[id], lab.deadline(20))?;
//! lab.kill(1)?;
//! lab.restart(1)?;
//! lab.check_no_duplicates()?;
//! lab.finish()?;
//! # Ok(()) }
//! ```
//!
//! Waiting is always "until a condition holds, or fail at a deadline"; deadlines are scaled by
//! `MESHCHAT_LAB_TIME_SCALE` for slow machines. Dropping a `Lab` (error, panic) kills every node
//! and removes the network; the run directory (data dirs and stderr logs) is kept for inspection
//! unless the run finished cleanly.

use crate::net::Net;
use crate::node::{Expect, Hub, HubState, Proc, Spec};
use crate::sys;
use crate::topology::Topology;
use anyhow::{bail, Context as _, Result};
use meshchat_api::{Command, Message};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod checks;
mod dm;
mod node_ref;
pub use node_ref::NodeRef;

/// The default room every node is in.
pub const LOBBY: &str = "lobby";

/// How to run nodes.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The `meshchat` binary.
    pub bin: PathBuf,
    /// Extra arguments for every node.
    pub extra_args: Vec<String>,
    /// Also listen on QUIC.
    pub quic: bool,
    /// Let nodes discover each other by mDNS (default off: nodes get `--no-mdns`, so links are
    /// exactly the dials the lab makes).
    pub mdns: bool,
    /// Multiplier for every deadline.
    pub time_scale: f64,
    /// Keep the run directory even after a clean finish.
    pub keep_dir: bool,
    /// Install missing packages with apt-get when root.
    pub install: bool,
    /// Print progress to stderr.
    pub verbose: bool,
    /// Environment variables for every node process (on top of the lab's own environment,
    /// which they inherit), e.g. `RUST_LOG`.
    pub env: Vec<(String, String)>,
}

impl LabOptions {
    /// Options from the environment: `MESHCHAT_BIN` (else [`default_bin`]),
    /// `MESHCHAT_LAB_TIME_SCALE`, `MESHCHAT_LAB_KEEP=1`, `MESHCHAT_LAB_QUIET=1`.
    pub fn from_env() -> Result<Self> {
        let bin = match std::env::var_os("MESHCHAT_BIN") {
            Some(p) => PathBuf::from(p),
            None => default_bin().context(
                "meshchat binary not found: build it with `cargo build -p meshchat` or pass \
                 --bin / MESHCHAT_BIN",
            )?,
        };
        Ok(Self::with_bin(bin))
    }

    /// Defaults with the given binary.
    pub fn with_bin(bin: PathBuf) -> Self {
        let time_scale = std::env::var("MESHCHAT_LAB_TIME_SCALE")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| *v > 0.0)
            .unwrap_or(1.0);
        LabOptions {
            bin,
            extra_args: Vec::new(),
            quic: false,
            mdns: false,
            time_scale,
            keep_dir: std::env::var("MESHCHAT_LAB_KEEP").is_ok_and(|v| v == "1"),
            install: true,
            verbose: !std::env::var("MESHCHAT_LAB_QUIET").is_ok_and(|v| v == "1"),
            env: Vec::new(),
        }
    }
}

/// The `meshchat` next to the running executable (or in its parent directory, as for test
/// binaries in `target/debug/deps`), else in this workspace's `target/{debug,release}`.
pub fn default_bin() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("meshchat"));
            if let Some(up) = dir.parent() {
                candidates.push(up.join("meshchat"));
            }
        }
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    candidates.push(ws.join("debug/meshchat"));
    candidates.push(ws.join("release/meshchat"));
    candidates.into_iter().find(|p| p.is_file())
}

/// Summary of a finished run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Scenario or bench name.
    pub name: String,
    /// Topology description.
    pub topology: String,
    /// Hosts.
    pub nodes: usize,
    /// Messages sent by the lab (probes excluded).
    pub messages: usize,
    /// Message events seen over all nodes.
    pub deliveries: usize,
    /// Direct messages sent by the lab (answered `dm_sent`).
    pub dms: usize,
    /// Wall time of the run in seconds.
    pub seconds: f64,
    /// Free-form notes (what was checked, informative counts).
    pub notes: Vec<String>,
}

/// A network of hosts, each running one meshchat node.
pub struct Lab {
    /// The network; public for faults not wrapped here.
    pub net: Net,
    /// Shared event state.
    pub hub: Arc<Hub>,
    procs: Vec<Option<Proc>>,
    specs: Vec<Spec>,
    opts: LabOptions,
    /// Data dirs and logs of this run.
    pub run_dir: PathBuf,
    started: Instant,
    finished: bool,
    probes: u64,
    /// Notes collected for the report.
    pub notes: Vec<String>,
}

impl Lab {
    /// Checks the environment, builds the network for `topo` (no node started yet).
    pub fn new(topo: Topology, opts: LabOptions) -> Result<Self> {
        let env = sys::check_env(opts.install)?;
        if !opts.bin.is_file() {
            bail!("meshchat binary {} does not exist", opts.bin.display());
        }
        crate::cleanup::install_signal_handler();
        let net = Net::create(&topo, env)?;
        let run_dir = std::env::temp_dir().join("meshchat-lab").join(&net.prefix);
        let specs = (0..topo.n)
            .map(|i| {
                let h = &net.hosts[i];
                let mut listen: Vec<String> = h
                    .ifaces
                    .iter()
                    .map(|f| format!("/ip4/{}/tcp/0", f.addr))
                    .collect();
                if opts.quic {
                    listen.extend(
                        h.ifaces
                            .iter()
                            .map(|f| format!("/ip4/{}/udp/0/quic-v1", f.addr)),
                    );
                }
                if listen.is_empty() {
                    listen.push("/ip4/127.0.0.1/tcp/0".into());
                }
                let dir = run_dir.join(format!("n{i}"));
                Spec {
                    bin: opts.bin.clone(),
                    ns: h.ns.clone(),
                    data_dir: dir.join("data"),
                    log_dir: dir,
                    nick: format!("n{i}"),
                    listen,
                    extra_args: opts.extra_args.clone(),
                    mdns: opts.mdns,
                    env: opts.env.clone(),
                }
            })
            .collect();
        let lab = Lab {
            hub: Hub::new(topo.n),
            procs: (0..topo.n).map(|_| None).collect(),
            specs,
            run_dir,
            net,
            opts,
            started: Instant::now(),
            finished: false,
            probes: 0,
            notes: Vec::new(),
        };
        lab.log(format!(
            "network {} up: {} hosts, prefix {}, run dir {}",
            topo.name,
            topo.n,
            lab.net.prefix,
            lab.run_dir.display()
        ));
        Ok(lab)
    }

    /// [`Lab::new`], start every node, wait until all links are connected and a probe from each
    /// end of the network reaches everyone.
    pub fn up(topo: Topology, opts: LabOptions) -> Result<Self> {
        let mut lab = Self::new(topo, opts)?;
        lab.start_all()?;
        lab.warmup(lab.deadline(60))?;
        Ok(lab)
    }

    /// Prints a progress line unless quiet.
    pub fn log(&self, msg: impl AsRef<str>) {
        if self.opts.verbose {
            eprintln!(
                "[lab {:>7.2}s] {}",
                self.started.elapsed().as_secs_f64(),
                msg.as_ref()
            );
        }
    }

    /// Now + `secs`, scaled by the time scale.
    pub fn deadline(&self, secs: u64) -> Instant {
        Instant::now() + Duration::from_secs_f64(secs as f64 * self.opts.time_scale)
    }

    /// Number of hosts.
    pub fn n(&self) -> usize {
        self.net.topo.n
    }

    /// The topology.
    pub fn topo(&self) -> &Topology {
        &self.net.topo
    }

    /// A handle to drive host `i`'s node.
    pub fn node(&self, i: usize) -> NodeRef<'_> {
        NodeRef { lab: self, i }
    }

    /// Hosts whose node is running.
    pub fn running(&self) -> Vec<usize> {
        let st = self.hub.lock();
        (0..self.n()).filter(|&i| st.nodes[i].running).collect()
    }

    /// Starts every node, waits for `ready`, dials along the topology, waits until connected.
    pub fn start_all(&mut self) -> Result<()> {
        self.start_nodes()?;
        self.connect_topology()?;
        self.wait_connected(self.deadline(30 + self.n() as u64))?;
        self.log("all links connected");
        Ok(())
    }

    /// Starts every node (no `--peer`) and waits until each is ready; dials nothing. Routers
    /// ([`Lab::is_router`]) run no node.
    pub fn start_nodes(&mut self) -> Result<()> {
        let all = self.topo().end_hosts();
        for &i in &all {
            self.procs[i] = Some(Proc::spawn(&self.hub, i, &self.specs[i], &[])?);
        }
        self.wait_ready(&all, self.deadline(30 + self.n() as u64))?;
        self.log("all nodes ready");
        Ok(())
    }

    /// Whether host `i` is a NAT router (see [`crate::topology::Router`]): a namespace that
    /// forwards, where no node runs ([`Lab::start_all`] skips it).
    pub fn is_router(&self, i: usize) -> bool {
        self.topo().is_router(i)
    }

    /// Host `i`'s own address on the internet segment (the public node's, a router's WAN), if it
    /// has one: see [`Net::public_addr`].
    pub fn public_addr(&self, i: usize) -> Option<std::net::Ipv4Addr> {
        self.net.public_addr(i)
    }

    /// Where host `i`'s connections appear to come from on the internet segment: its router's
    /// WAN address when it is NATed, else its own public address ([`Net::external_addr`]).
    pub fn external_addr(&self, i: usize) -> Option<std::net::Ipv4Addr> {
        self.net.external_addr(i)
    }

    /// Host `i`'s data directory (kept across restarts).
    pub fn data_dir(&self, i: usize) -> &std::path::Path {
        &self.specs[i].data_dir
    }

    /// Sets environment variables for host `i`'s node, for every later start of it.
    pub fn add_env(&mut self, i: usize, vars: &[(&str, &str)]) {
        self.specs[i]
            .env
            .extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    }

    /// Adds `args` to host `i`'s command line, for every later start of it.
    pub fn add_args(&mut self, i: usize, args: &[String]) {
        self.specs[i].extra_args.extend(args.iter().cloned());
    }

    /// Starts `nodes` only (no `--peer`) and waits until they are ready; with `connect`, then
    /// dials the topology's links between running nodes and waits until they are up.
    pub fn start_only(&mut self, nodes: &[usize], connect: bool) -> Result<()> {
        for &i in nodes {
            self.procs[i] = Some(Proc::spawn(&self.hub, i, &self.specs[i], &[])?);
        }
        self.wait_ready(nodes, self.deadline(30 + nodes.len() as u64))?;
        if connect {
            self.connect_topology()?;
            self.wait_connected(self.deadline(30 + self.n() as u64))?;
        }
        self.log(format!("started {nodes:?}"));
        Ok(())
    }

    /// Whether host `i` printed `ready` and a TCP port is known for each of its addresses.
    fn is_ready(&self, st: &HubState, i: usize) -> bool {
        let n = &st.nodes[i];
        n.listen.is_some()
            && self.net.hosts[i]
                .ifaces
                .iter()
                .all(|f| n.tcp_port(&f.addr.to_string()).is_some())
    }

    /// Waits until each of `nodes` printed `ready` with a bound TCP port for each address.
    pub fn wait_ready(&self, nodes: &[usize], deadline: Instant) -> Result<()> {
        let ok = self.hub.wait_until(deadline, |st| {
            nodes
                .iter()
                .all(|&i| self.is_ready(st, i) || !st.nodes[i].running)
        });
        let st = self.hub.lock();
        let bad: Vec<String> = nodes
            .iter()
            .filter(|&&i| !self.is_ready(&st, i))
            .map(|&i| self.describe(&st, i))
            .collect();
        if !ok || !bad.is_empty() {
            bail!("nodes not ready:\n{}", bad.join("\n"));
        }
        Ok(())
    }

    /// Multiaddr (with `/p2p/`) at which `from` can dial `to`, if `to` is ready and a segment
    /// between them is up, or `from` is NATed and `to` listens on its router's WAN segment (a
    /// NATed host dialing the public node: [`Net::route_addr`]). A NATed host is never dialable
    /// from outside its LAN this way (a UPnP mapping's address is the node's to announce).
    pub fn dial_addr(&self, from: usize, to: usize) -> Option<String> {
        let ip = self.net.route_addr(from, to)?;
        let st = self.hub.lock();
        let n = &st.nodes[to];
        let peer = n.peer_id.as_ref()?;
        n.listen.as_ref()?;
        let port = n.tcp_port(&ip.to_string())?;
        Some(format!("/ip4/{ip}/tcp/{port}/p2p/{peer}"))
    }

    /// Pairs that should be connected now: dial pairs whose ends run and whose segment is up.
    pub fn expected_links(&self) -> Vec<(usize, usize)> {
        let running: BTreeSet<usize> = self.running().into_iter().collect();
        self.topo()
            .dial_pairs()
            .into_iter()
            .filter(|&(a, b)| {
                running.contains(&a) && running.contains(&b) && self.net.link_is_up(a, b)
            })
            .collect()
    }

    /// Sends `connect` for every expected link (from the lower-numbered end of each dial pair).
    pub fn connect_topology(&self) -> Result<()> {
        for (a, b) in self.expected_links() {
            self.dial(a, b)?;
        }
        Ok(())
    }

    /// Makes `a` dial `b`.
    pub fn dial(&self, a: usize, b: usize) -> Result<()> {
        let addr = self
            .dial_addr(a, b)
            .with_context(|| format!("no address for {a} to dial {b}"))?;
        self.node(a).connect(&addr)
    }

    fn missing_links(&self, st: &HubState, links: &[(usize, usize)]) -> Vec<(usize, usize)> {
        let linked = |x: usize, y: usize| {
            st.nodes[y]
                .peer_id
                .as_ref()
                .is_some_and(|p| st.nodes[x].connected.contains_key(p))
        };
        links
            .iter()
            .copied()
            .filter(|&(a, b)| !(linked(a, b) && linked(b, a)))
            .collect()
    }

    /// Waits, without dialing anything, until both ends of every pair in `pairs` report the other
    /// in `peer_connected`. Returns when the last of those pairs became connected (the arrival
    /// time of the event that completed it).
    pub fn wait_linked(&self, pairs: &[(usize, usize)], deadline: Instant) -> Result<Instant> {
        let mut done = None;
        self.hub.wait_until(deadline, |st| {
            if !self.missing_links(st, pairs).is_empty() {
                return false;
            }
            done = pairs
                .iter()
                .flat_map(|&(a, b)| [(a, b), (b, a)])
                .filter_map(|(x, y)| {
                    let peer = st.nodes[y].peer_id.as_ref()?;
                    st.nodes[x].connected_at.get(peer).copied()
                })
                .max();
            true
        });
        match done {
            Some(at) => Ok(at),
            None if pairs.is_empty() => Ok(Instant::now()),
            None => {
                let missing = self.missing_links(&self.hub.lock(), pairs);
                bail!("pairs not connected by the deadline (nothing was dialed): {missing:?}")
            }
        }
    }

    /// Checks that every running node process lives in its host's namespace (not in the lab's
    /// own one): `/proc/<pid>/ns/net` is the namespace file `/run/netns/<ns>`.
    pub fn check_node_netns(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt as _;
        let id = |p: &Path| -> Result<(u64, u64)> {
            let m = std::fs::metadata(p).with_context(|| format!("stat {}", p.display()))?;
            Ok((m.dev(), m.ino()))
        };
        let own = id(Path::new("/proc/self/ns/net"))?;
        let mut problems = Vec::new();
        for i in self.running() {
            let Some(pid) = self.pid(i) else { continue };
            let ns = self.net.ns(i);
            let node = id(Path::new(&format!("/proc/{pid}/ns/net")))?;
            let host = id(&Path::new("/run/netns").join(ns))?;
            if node != host || node == own {
                problems.push(format!(
                    "n{i} (pid {pid}) is not in namespace {ns} (or is in the lab's own)"
                ));
            }
        }
        if !problems.is_empty() {
            bail!(
                "nodes outside their namespaces:\n  {}",
                problems.join("\n  ")
            );
        }
        Ok(())
    }

    /// Waits until both ends of every expected link report the other as connected; re-dials
    /// missing links every few seconds.
    pub fn wait_connected(&self, deadline: Instant) -> Result<()> {
        let links = self.expected_links();
        let mut retry = Duration::from_secs(3);
        loop {
            let until = deadline.min(Instant::now() + retry);
            if self
                .hub
                .wait_until(until, |st| self.missing_links(st, &links).is_empty())
            {
                return Ok(());
            }
            let missing = self.missing_links(&self.hub.lock(), &links);
            if Instant::now() >= deadline {
                bail!("links not connected by the deadline: {missing:?}");
            }
            for (a, b) in missing {
                let _ = self.dial(a, b);
            }
            retry = (retry * 2).min(Duration::from_secs(10));
        }
    }

    /// Sends probes from the two ends of the network (host 0 and the host farthest from it)
    /// until one from each reaches every running node; probes are excluded from delivery
    /// assertions (only checked for duplicates). Call after connecting and after faults heal.
    pub fn warmup(&mut self, deadline: Instant) -> Result<()> {
        let running = self.running();
        let Some(&first) = running.first() else {
            return Ok(());
        };
        let far = self.farthest(first);
        let mut senders = vec![first];
        if far != first {
            senders.push(far);
        }
        for s in senders {
            let mut window = Duration::from_secs_f64(2.0 * self.opts.time_scale);
            loop {
                self.probes += 1;
                let text = format!("lab-probe {} from n{s}", self.probes);
                let id = self.node(s).send_probe(LOBBY, &text)?;
                let until = deadline.min(Instant::now() + window);
                if self.wait_nodes_have(&running, &[id], until).is_ok() {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!("warm-up probes from n{s} do not reach every node");
                }
                window = (window * 2).min(Duration::from_secs(10));
            }
        }
        self.log("mesh warm: probes reach every node");
        Ok(())
    }

    /// The running host farthest (in hops over up links between running hosts) from `from`.
    pub fn farthest(&self, from: usize) -> usize {
        let running: BTreeSet<usize> = self.running().into_iter().collect();
        let mut dist = BTreeMap::from([(from, 0usize)]);
        let mut queue = VecDeque::from([from]);
        let mut last = from;
        while let Some(i) = queue.pop_front() {
            last = i;
            for j in self.topo().neighbours(i) {
                if running.contains(&j) && self.net.link_is_up(i, j) && !dist.contains_key(&j) {
                    dist.insert(j, dist[&i] + 1);
                    queue.push_back(j);
                }
            }
        }
        last
    }

    // ----- faults -----

    /// SIGKILLs host `i`'s node and waits until its exit is recorded.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        self.hub.lock().nodes[i].expect = Some(Expect::Kill);
        if let Some(p) = &self.procs[i] {
            p.signal("KILL");
        }
        self.reap(i, self.deadline(10))?;
        self.log(format!("killed n{i}"));
        Ok(())
    }

    /// Graceful stop: `{"cmd":"quit"}`, then SIGTERM after 10 s, then SIGKILL after 5 s more.
    pub fn stop(&mut self, i: usize) -> Result<()> {
        let Some(p) = &self.procs[i] else {
            return Ok(());
        };
        self.hub.lock().nodes[i].expect = Some(Expect::Quit);
        let _ = p.write(&Command::Quit);
        let exited = |st: &HubState| !st.nodes[i].running;
        if !self.hub.wait_until(self.deadline(10), exited) {
            self.hub.lock().nodes[i].expect = Some(Expect::Term);
            p.signal("TERM");
            if !self.hub.wait_until(self.deadline(5), exited) {
                p.signal("KILL");
            }
        }
        self.reap(i, self.deadline(10))?;
        self.log(format!("stopped n{i}"));
        Ok(())
    }

    fn reap(&mut self, i: usize, deadline: Instant) -> Result<()> {
        if !self.hub.wait_until(deadline, |st| !st.nodes[i].running) {
            bail!("node {i} did not exit");
        }
        if let Some(mut p) = self.procs[i].take() {
            p.join();
        }
        Ok(())
    }

    /// Starts host `i`'s node again (same data dir), dialing its reachable running neighbours
    /// with `--peer`, and waits until it is ready and connected to them.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        if self.procs[i].is_some() {
            bail!("node {i} is still running");
        }
        let peers: Vec<String> = self
            .topo()
            .neighbours(i)
            .into_iter()
            .filter(|&j| self.hub.lock().nodes[j].running)
            .filter_map(|j| self.dial_addr(i, j))
            .collect();
        self.procs[i] = Some(Proc::spawn(&self.hub, i, &self.specs[i], &peers)?);
        self.wait_ready(&[i], self.deadline(30))?;
        self.wait_connected(self.deadline(30))?;
        self.log(format!("restarted n{i}"));
        Ok(())
    }

    /// Takes the link `a`-`b` down (both ends).
    pub fn link_down(&mut self, a: usize, b: usize) -> Result<()> {
        self.net.set_link(a, b, false)?;
        self.log(format!("link n{a}-n{b} down"));
        Ok(())
    }

    /// Brings the link `a`-`b` up again and re-dials it if both nodes run.
    pub fn link_up(&mut self, a: usize, b: usize) -> Result<()> {
        self.net.set_link(a, b, true)?;
        self.log(format!("link n{a}-n{b} up"));
        Ok(())
    }

    /// Cuts every link between `side` and the rest; returns them for [`Lab::heal`].
    pub fn partition(&mut self, side: &[usize]) -> Result<Vec<(usize, usize)>> {
        let cut = self.net.partition(side)?;
        self.log(format!("partitioned {side:?} from the rest: cut {cut:?}"));
        Ok(cut)
    }

    /// Brings `links` up again.
    pub fn heal(&mut self, links: &[(usize, usize)]) -> Result<()> {
        self.net.heal(links)?;
        self.log(format!("healed {links:?}"));
        Ok(())
    }

    /// Bandwidth limit on link `a`-`b` (tc rate such as `1mbit`; `None` to remove).
    pub fn bandwidth(&mut self, a: usize, b: usize, rate: Option<&str>) -> Result<()> {
        self.net.set_bandwidth(a, b, rate)
    }

    /// TCP gives a connection up after `retries` unanswered retransmissions in every host
    /// (`net.ipv4.tcp_retries2`; see [`Net::set_tcp_retries`]).
    pub fn tcp_retries(&mut self, retries: u8) -> Result<()> {
        self.net.set_tcp_retries(retries)?;
        self.log(format!("net.ipv4.tcp_retries2 = {retries} in every host"));
        Ok(())
    }

    /// Random packet loss in percent on link `a`-`b`, both directions (0 to remove).
    pub fn loss(&mut self, a: usize, b: usize, percent: f64) -> Result<()> {
        self.net.set_loss(a, b, percent)
    }

    // ----- checks -----

    // ----- direct messages -----

    // ----- the end -----

    /// Stops every node gracefully (all at once), checks health, removes the network and (unless
    /// kept) the run directory.
    pub fn finish(mut self) -> Result<Report> {
        self.quit_all();
        self.check_health()?;
        let report = self.report("");
        self.net.destroy();
        if !self.opts.keep_dir {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
        self.finished = true;
        self.log(format!("finished cleanly in {:.1}s", report.seconds));
        Ok(report)
    }

    /// Stops every running node gracefully, all at once (`quit`; those still running after 15 s
    /// get [`Lab::stop`]'s SIGTERM and SIGKILL), and reaps them. Their data dirs and logs stay
    /// (to inspect before [`Lab::finish`], which then has nothing left to stop).
    pub fn quit_all(&mut self) {
        let running = self.running();
        for &i in &running {
            self.hub.lock().nodes[i].expect = Some(Expect::Quit);
            if let Some(p) = &self.procs[i] {
                let _ = p.write(&Command::Quit);
            }
        }
        let all_down = |st: &HubState| st.nodes.iter().all(|n| !n.running);
        if !self.hub.wait_until(self.deadline(15), all_down) {
            for &i in &running {
                let _ = self.stop(i);
            }
        }
        for i in 0..self.n() {
            if let Some(mut p) = self.procs[i].take() {
                p.signal("KILL");
                p.join();
            }
        }
    }

    /// Ends a run whose failure was expected (tests of the checks): kills everything and removes
    /// the run directory without checking anything.
    pub fn discard(mut self) {
        let dir = self.run_dir.clone();
        self.finished = true;
        drop(self);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A report of the run so far.
    pub fn report(&self, name: &str) -> Report {
        let st = self.hub.lock();
        Report {
            name: name.to_string(),
            topology: self.topo().name.clone(),
            nodes: self.n(),
            messages: st.sent.values().filter(|s| !s.probe).count(),
            deliveries: st.nodes.iter().map(|n| n.received.len()).sum(),
            dms: st.dms_sent.len(),
            seconds: self.started.elapsed().as_secs_f64(),
            notes: self.notes.clone(),
        }
    }

    /// One line about host `i` for error messages.
    fn describe(&self, st: &HubState, i: usize) -> String {
        let n = &st.nodes[i];
        format!(
            "  n{i} ({}): running={} ready={} exits={:?} stderr={} last stdout={:?}",
            self.net.hosts.get(i).map_or("", |h| h.ns.as_str()),
            n.running,
            n.listen.is_some(),
            n.exits.last().map(|e| (e.code, e.signal)),
            self.specs[i]
                .log_dir
                .join(format!("stderr.{}.log", n.incarnation))
                .display(),
            n.recent.back()
        )
    }

    /// The stderr log path of host `i`'s current incarnation.
    pub fn log_path(&self, i: usize) -> PathBuf {
        let inc = self.hub.lock().nodes[i].incarnation;
        self.specs[i].log_dir.join(format!("stderr.{inc}.log"))
    }

    /// Pid of host `i`'s running node.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.procs[i].as_ref().map(|p| p.pid)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in self.procs.iter_mut() {
            if let Some(mut p) = p.take() {
                p.close_stdin();
                p.signal("KILL");
                p.join();
            }
        }
        self.net.destroy();
        if !self.finished {
            eprintln!(
                "meshchat-lab: run did not finish cleanly; logs and data kept in {}",
                self.run_dir.display()
            );
        }
    }
}
