//! Command-line arguments.

use std::path::PathBuf;

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

    /// Scripting mode: one JSON object per line on stdin and stdout (see docs/JSON.md)
    #[arg(long, global = true, conflicts_with = "plain")]
    pub json: bool,

    /// Plain line mode instead of the full-screen interface
    #[arg(long, global = true)]
    pub plain: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print this node's peer id and fingerprint (creating the identity on first use)
    Id,
    /// Run headless: relay, store and serve peers with no interface (stop with Ctrl-C or SIGTERM)
    Daemon,
}

impl Cli {
    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.data_dir {
            return Ok(dir.clone());
        }
        directories::ProjectDirs::from("", "", "meshchat")
            .map(|d| d.data_dir().to_owned())
            .ok_or_else(|| anyhow::anyhow!("no home directory found; pass --data-dir DIR"))
    }

    pub fn node_config(&self) -> anyhow::Result<Config> {
        let mut config = Config::new(self.data_dir()?);
        config.nick = self.nick.clone();
        config.listen = self.listen.iter().map(|a| a.0.clone()).collect();
        config.peers = self.peer.iter().map(|a| a.0.clone()).collect();
        config.mdns = !self.no_mdns;
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
