//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use meshchat_node::config::Config;

/// meshchat: decentralized mesh chat. Every node is client and server; messages hop from node to
/// node until everyone who should have them has them.
#[derive(Debug, Parser)]
#[command(name = "meshchat", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Where the identity key, the database and the log live [default: the XDG data dir]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Your nick (kept for later starts)
    #[arg(long, global = true, value_name = "NAME")]
    pub nick: Option<String>,

    /// Address to listen on, e.g. /ip4/0.0.0.0/tcp/7447 (repeatable) [default: all IPv4
    /// interfaces, TCP and QUIC, port 7447 or any free port]
    #[arg(long, global = true, value_name = "MULTIADDR")]
    pub listen: Vec<libp2p_addr::Addr>,

    /// Peer to dial at start, e.g. /ip4/192.0.2.7/tcp/7447 (repeatable)
    #[arg(long, global = true, value_name = "MULTIADDR")]
    pub peer: Vec<libp2p_addr::Addr>,

    /// Do not discover peers on the LAN by multicast DNS
    #[arg(long, global = true)]
    pub no_mdns: bool,

    /// Do not ask the home router for a port mapping (UPnP)
    #[arg(long, global = true)]
    pub no_upnp: bool,

    /// Do not relay for nodes behind NATs (by default a node others can reach relays for them,
    /// within bounds: see the README)
    #[arg(long, global = true)]
    pub no_relay_service: bool,

    /// Scripting mode: one JSON object per line on stdin and stdout (see docs/JSON.md)
    #[arg(long, global = true, conflicts_with = "plain")]
    pub json: bool,

    /// Plain line mode instead of the full-screen interface. Messages print as
    /// `[room] nick (fp): text`; one that arrived late, by history sync, as
    /// `[room] (synced 14:02) nick (fp): text` with the time it was written
    #[arg(long, global = true)]
    pub plain: bool,

    /// How far back history sync reaches, in days: older messages are neither fetched from peers
    /// nor offered to them, and those kept only to serve others are dropped [default: 30]
    #[arg(long, global = true, value_name = "DAYS", value_parser = parse_days)]
    pub sync_window: Option<Duration>,

    /// Most MiB of messages of rooms you are not in that this node keeps to serve others by
    /// history sync (the oldest go first) [default: 256]
    #[arg(long, global = true, value_name = "MIB", value_parser = parse_mib)]
    pub relay_budget: Option<u64>,

    /// Events held for a front-end that does not keep up (a script that stops reading) before
    /// it is told it lagged and catches up from the database [default: 4096]
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub event_queue: Option<u32>,

    /// A tracker to register with, e.g. /ip4/192.0.2.7/tcp/7447/p2p/12D3… (repeatable). Alone,
    /// with no address (`meshchat daemon --tracker`): this node is a preferred tracker (priority
    /// 1000 unless --tracker-priority says otherwise)
    #[arg(long, global = true, value_name = "MULTIADDR", num_args = 0..=1,
          default_missing_value = "self")]
    pub tracker: Vec<TrackerArg>,

    /// Never become the network's tracker (e.g. on a battery-powered device); still register
    /// with it and see who is online
    #[arg(long, global = true, conflicts_with = "tracker_priority")]
    pub no_tracker: bool,

    /// This node's rank in tracker elections: the highest-priority reachable node is the
    /// tracker, ties broken by peer id [default: 100]
    #[arg(long, global = true, value_name = "N")]
    pub tracker_priority: Option<u32>,

    /// Serve the web UI, on 127.0.0.1:7448 or ADDR (a taken port falls back to a free one);
    /// prints the URL to open, which carries the access token
    #[arg(long, global = true, value_name = "ADDR", num_args = 0..=1,
          default_missing_value = "127.0.0.1:7448")]
    pub web: Option<std::net::SocketAddr>,

    /// Where fetched files go [default: your download dir's meshchat/, or DIR/downloads with
    /// --data-dir DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub download_dir: Option<PathBuf>,

    /// Files offered to you or in your rooms up to this many MiB are fetched without asking
    /// (0: none) [default: 8]
    #[arg(long, global = true, value_name = "MIB", value_parser = parse_mib_or_zero)]
    pub auto_accept_size: Option<u64>,

    /// MiB kept free on the download dir's disk: a file that would leave less is refused
    /// [default: 64]
    #[arg(long, global = true, value_name = "MIB", value_parser = parse_mib_or_zero)]
    pub keep_free: Option<u64>,

    /// Let --web listen on an address other than loopback (other computers can then reach it;
    /// they still need the token)
    #[arg(long, global = true, requires = "web")]
    pub web_public: bool,

    /// Make a new web UI access token (pages opened with the old one stop working)
    #[arg(long, global = true, requires = "web")]
    pub web_new_token: bool,
}

/// One `--tracker`: an address to register with, or (alone) "be a tracker".
#[derive(Debug, Clone)]
pub enum TrackerArg {
    Serve,
    Addr(meshchat_node::Multiaddr),
}

impl std::str::FromStr for TrackerArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "self" {
            return Ok(TrackerArg::Serve);
        }
        s.parse::<libp2p_addr::Addr>()
            .map(|a| TrackerArg::Addr(a.0))
    }
}

/// Priority of a node started with a bare `--tracker`.
pub const PREFERRED_TRACKER_PRIORITY: u32 = 1000;

/// A whole number of days, at least 1, as a duration.
fn parse_days(s: &str) -> Result<Duration, String> {
    const MAX_DAYS: u64 = 100 * 365;
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1 day".into()),
        Ok(d) if d > MAX_DAYS => Err(format!("at most {MAX_DAYS} days")),
        Ok(d) => Ok(Duration::from_secs(d * 24 * 3600)),
        Err(_) => Err(format!("{s:?} is not a whole number of days, e.g. 30")),
    }
}

/// A whole number of MiB, at least 1, in bytes.
fn parse_mib(s: &str) -> Result<u64, String> {
    const MAX_MIB: u64 = 1 << 30;
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1 MiB".into()),
        Ok(m) if m > MAX_MIB => Err(format!("at most {MAX_MIB} MiB")),
        Ok(m) => Ok(m * 1024 * 1024),
        Err(_) => Err(format!("{s:?} is not a whole number of MiB, e.g. 256")),
    }
}

/// A whole number of MiB, 0 allowed, in bytes.
fn parse_mib_or_zero(s: &str) -> Result<u64, String> {
    match s.trim() {
        "0" => Ok(0),
        _ => parse_mib(s),
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print this node's peer id and fingerprint (creating the identity on first use)
    Id,
    /// Run headless: relay, store and serve peers with no interface (stop with Ctrl-C or SIGTERM)
    Daemon,
    /// Open the web UI of the node running on this data dir (started with --web) in the
    /// default browser
    Web,
}

impl Cli {
    /// How to serve the web UI, if asked to.
    pub fn web(&self) -> Option<crate::web::Options> {
        self.web.map(|addr| crate::web::Options {
            addr: Some(addr),
            public: self.web_public,
            new_token: self.web_new_token,
        })
    }

    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.data_dir {
            return Ok(dir.clone());
        }
        directories::ProjectDirs::from("", "", "meshchat")
            .map(|d| d.data_dir().to_owned())
            .ok_or_else(|| anyhow::anyhow!("no home directory found; pass --data-dir DIR"))
    }

    /// `--download-dir`, or where a user looks for downloads (`~/Downloads/meshchat`), or,
    /// for a node on its own `--data-dir` (a second identity, a test, a lab host), a
    /// `downloads` dir beside its data, so two nodes on one machine never share one.
    pub fn download_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.download_dir {
            return Ok(dir.clone());
        }
        if let Some(dir) = &self.data_dir {
            return Ok(dir.join("downloads"));
        }
        Ok(directories::UserDirs::new()
            .and_then(|u| u.download_dir().map(|d| d.join("meshchat")))
            .map_or(self.data_dir()?.join("downloads"), |d| d))
    }

    pub fn node_config(&self) -> anyhow::Result<Config> {
        let mut config = Config::new(self.data_dir()?);
        config.nick = self.nick.clone();
        config.listen = self.listen.iter().map(|a| a.0.clone()).collect();
        config.peers = self.peer.iter().map(|a| a.0.clone()).collect();
        config.mdns = !self.no_mdns;
        config.upnp = !self.no_upnp;
        config.relay_service = !self.no_relay_service;
        if let Some(window) = self.sync_window {
            config.sync_window = window;
        }
        if let Some(budget) = self.relay_budget {
            config.relay_budget = budget;
        }
        if let Some(n) = self.event_queue {
            config.event_queue = n as usize;
        }
        config.files.download_dir = self.download_dir()?;
        if let Some(size) = self.auto_accept_size {
            config.files.auto_accept_size = size;
        }
        if let Some(free) = self.keep_free {
            config.files.keep_free = free;
        }
        let serve = self.tracker.iter().any(|t| matches!(t, TrackerArg::Serve));
        if serve && self.no_tracker {
            anyhow::bail!("--tracker (be a tracker) and --no-tracker contradict each other");
        }
        config.tracker_priority = if self.no_tracker {
            None
        } else if let Some(p) = self.tracker_priority {
            Some(p)
        } else if serve {
            Some(PREFERRED_TRACKER_PRIORITY)
        } else {
            config.tracker_priority
        };
        config.trackers = self
            .tracker
            .iter()
            .filter_map(|t| match t {
                TrackerArg::Addr(a) => Some(a.clone()),
                TrackerArg::Serve => None,
            })
            .collect();
        Ok(config)
    }
}

/// A multiaddr argument, parsed by clap so a bad one is a usage error.
pub mod libp2p_addr {
    use std::str::FromStr;

    use meshchat_node::Multiaddr;

    #[derive(Debug, Clone)]
    pub struct Addr(pub Multiaddr);

    impl FromStr for Addr {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, Self::Err> {
            s.parse::<Multiaddr>().map(Addr).map_err(|e| {
                format!("{e} (a multiaddr looks like /ip4/192.0.2.7/tcp/7447 or /ip4/192.0.2.7/udp/7447/quic-v1)")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("meshchat").chain(args.iter().copied()))
    }

    #[test]
    fn file_flags() {
        let cli = parse(&[
            "--data-dir",
            "/tmp/x",
            "--auto-accept-size",
            "0",
            "--keep-free",
            "100",
        ])
        .unwrap();
        let c = cli.node_config().unwrap();
        assert_eq!(c.files.auto_accept_size, 0);
        assert_eq!(c.files.keep_free, 100 << 20);
        assert_eq!(c.files.download_dir, PathBuf::from("/tmp/x/downloads"));
        let c = parse(&["--download-dir", "/srv/in"])
            .unwrap()
            .node_config()
            .unwrap();
        assert_eq!(c.files.download_dir, PathBuf::from("/srv/in"));
        assert_eq!(
            c.files.auto_accept_size,
            meshchat_node::config::DEFAULT_AUTO_ACCEPT_SIZE
        );
        let e = parse(&["--keep-free", "lots"]).unwrap_err().to_string();
        assert!(e.contains("--keep-free"), "{e}");
    }

    #[test]
    fn sync_window_and_relay_budget() {
        let cli = parse(&[
            "--data-dir",
            "/tmp/x",
            "--sync-window",
            "7",
            "--relay-budget",
            "64",
        ])
        .unwrap();
        let config = cli.node_config().unwrap();
        assert_eq!(config.sync_window, Duration::from_secs(7 * 86_400));
        assert_eq!(config.relay_budget, 64 << 20);
        let defaults = parse(&["--data-dir", "/tmp/x"])
            .unwrap()
            .node_config()
            .unwrap();
        assert_eq!(
            defaults.sync_window,
            meshchat_node::config::DEFAULT_SYNC_WINDOW
        );
        assert_eq!(
            defaults.relay_budget,
            meshchat_node::config::DEFAULT_RELAY_BUDGET
        );
        for bad in ["0", "-3", "1.5", "x", "99999999999999999999"] {
            let arg = format!("--sync-window={bad}");
            let e = parse(&[&arg]).unwrap_err().to_string();
            assert!(e.contains("--sync-window"), "{bad}: {e}");
        }
        assert!(parse(&["--relay-budget", "0"])
            .unwrap_err()
            .to_string()
            .contains("at least 1 MiB"));
    }

    #[test]
    fn tracker_flags() {
        let config = |args: &[&str]| {
            let mut all = vec!["--data-dir", "/tmp/x"];
            all.extend_from_slice(args);
            parse(&all).unwrap().node_config()
        };
        let d = config(&[]).unwrap();
        assert_eq!(
            d.tracker_priority,
            Some(meshchat_node::config::DEFAULT_TRACKER_PRIORITY)
        );
        assert!(d.trackers.is_empty());
        assert_eq!(config(&["--no-tracker"]).unwrap().tracker_priority, None);
        assert_eq!(
            config(&["--tracker-priority", "7"])
                .unwrap()
                .tracker_priority,
            Some(7)
        );
        let daemon = config(&["daemon", "--tracker"]).unwrap();
        assert_eq!(daemon.tracker_priority, Some(PREFERRED_TRACKER_PRIORITY));
        let two = config(&[
            "--tracker",
            "/ip4/192.0.2.1/tcp/7447",
            "--tracker",
            "/ip4/192.0.2.2/tcp/7447",
        ])
        .unwrap();
        assert_eq!(two.trackers.len(), 2);
        assert_eq!(two.tracker_priority, d.tracker_priority);
        assert!(config(&["daemon", "--tracker", "--no-tracker"]).is_err());
        assert!(parse(&["--no-tracker", "--tracker-priority", "3"]).is_err());
        assert!(parse(&["--tracker", "not-an-address"]).is_err());
        assert!(parse(&["--tracker-priority", "-1"]).is_err());
    }
}
