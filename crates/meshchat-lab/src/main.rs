//! `meshchat-lab`: run meshchat scenarios and benchmarks in emulated networks (needs root).
//!
//! ```text
//! meshchat-lab setup                      check / install ip, tc, nft, ping
//! meshchat-lab cleanup [--all]            remove namespaces left by dead lab runs
//! meshchat-lab list                       list scenarios
//! meshchat-lab run chain5|mesh12|ring6-kill|lan-mdns|partition-sync|dm-line|dm-offline|routes30|
//!                  tracker-line|tracker-partition|tracker-named|all
//! meshchat-lab bench --nodes 30 --degree 4 [--rate 20] [--bandwidth 1mbit] [--json out.json]
//! meshchat-lab routes [--topology random:30:3:30] [--links 1] [--json out.json]
//! meshchat-lab tracker [--sizes 6,20,50] [--degree 3] [--rounds 3] [--json out.json]
//! meshchat-lab net --topology ring:6      build a network, check reachability, remove it
//! ```

use anyhow::Result;
use clap::{Parser, Subcommand};
use meshchat_lab::scenarios::{routes, tracker};
use meshchat_lab::{bench, cleanup, scenarios, sys, LabOptions, Net, Topology};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "meshchat-lab",
    version,
    about = "Network lab for meshchat (needs root)"
)]
struct Cli {
    /// The meshchat binary (default: $MESHCHAT_BIN, else `meshchat` next to this executable or
    /// in the workspace's target directory).
    #[arg(long, global = true)]
    bin: Option<PathBuf>,
    /// Also listen on QUIC.
    #[arg(long, global = true)]
    quic: bool,
    /// Keep data dirs and logs even after a clean run.
    #[arg(long, global = true)]
    keep: bool,
    /// No progress lines.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Multiply every deadline (slow machines).
    #[arg(long, global = true)]
    time_scale: Option<f64>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check for ip, tc, nft/iptables and ping; install missing Debian packages.
    Setup,
    /// Remove lab namespaces whose run is gone (with --all: every lab namespace).
    Cleanup {
        /// Remove every lab namespace, including those of live runs.
        #[arg(long)]
        all: bool,
    },
    /// List scenarios.
    List,
    /// Run a scenario (or `all`).
    Run {
        /// Scenario name, or `all`.
        scenario: String,
        /// Write the report(s) as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Measure latency, throughput, CPU and memory with N real nodes.
    Bench {
        /// Number of nodes.
        #[arg(long, default_value_t = 10)]
        nodes: usize,
        /// Degree of the random graph.
        #[arg(long, default_value_t = 4)]
        degree: usize,
        /// Messages per second (all senders together).
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// Seconds of sending, measured.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds of sending at the same rate before the measured part (0: none).
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Per-link bandwidth limit, tc syntax (e.g. 1mbit).
        #[arg(long)]
        bandwidth: Option<String>,
        /// Seed for the graph and the senders.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the result as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Another topology instead of the random graph (as `run`'s, e.g. `line:8`).
        #[arg(long)]
        topology: Option<String>,
        /// Write every delivery as CSV here (message, sender, receiver, hops, sent, latency).
        #[arg(long)]
        deliveries: Option<PathBuf>,
    },
    /// Measure file transfer over a line of 4: one hop and three, the relays' CPU per MiB and
    /// memory (issue 20).
    Files {
        /// The file's size.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Limit the n1–n2 link for the three-hop transfer (tc syntax, e.g. 10mbit).
        #[arg(long)]
        bandwidth: Option<String>,
        /// Write the result as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Measure how long the routing tables take to converge after a link fails and comes back.
    Routes {
        /// Topology description (random:N:D[:SEED] grid:WxH ring:N edges:N:A-B,..).
        #[arg(long, default_value = "random:30:3:30")]
        topology: String,
        /// Links to fail, one after the other (those whose loss changes the most hop counts
        /// first; only links whose loss leaves the graph connected).
        #[arg(long, default_value_t = 1)]
        links: usize,
        /// Write the result as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Measure tracker failover: kill -9 the tracker of a random graph of N hosts, time until
    /// everyone follows and is registered with the new one, and count the messages.
    Tracker {
        /// Host counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "6,20,50")]
        sizes: Vec<usize>,
        /// Degree of the random graphs.
        #[arg(long, default_value_t = 3)]
        degree: usize,
        /// Failovers per size (the killed tracker returns and takes over between them).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the result as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Build a network, check its reachability rules with pings, print it, remove it.
    Net {
        /// Topology description (line:N ring:N star:N grid:WxH random:N:D[:SEED] edges:N:A-B,.. lan:N).
        #[arg(long)]
        topology: String,
        /// Keep the network until SIGINT/SIGTERM (prints `holding` when built).
        #[arg(long)]
        hold: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::List) {
        // One line and a non-zero exit when we cannot work at all.
        if let Err(e) = sys::check_env(true) {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    }
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshchat-lab: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn options(cli: &Cli) -> Result<LabOptions> {
    let mut opts = if let Some(bin) = &cli.bin {
        LabOptions::with_bin(bin.clone())
    } else {
        LabOptions::from_env()?
    };
    opts.quic = cli.quic;
    opts.keep_dir |= cli.keep;
    opts.verbose = !cli.quiet;
    if let Some(s) = cli.time_scale {
        opts.time_scale = s;
    }
    Ok(opts)
}

fn real_main(cli: Cli) -> Result<()> {
    match &cli.cmd {
        Cmd::Setup => {
            let env = sys::check_env(true)?;
            println!(
                "meshchat-lab: ready (root; ip, tc, ping present; packet loss via {})",
                if env.nft { "nft" } else { "iptables" }
            );
        }
        Cmd::Cleanup { all } => {
            let removed = cleanup::remove_stale(*all)?;
            println!("removed {} namespace(s)", removed.len());
            for ns in removed {
                println!("  {ns}");
            }
        }
        Cmd::List => {
            for s in scenarios::ALL {
                println!("{:<12} {}", s.name, s.about);
            }
        }
        Cmd::Run { scenario, json } => {
            let opts = options(&cli)?;
            let names: Vec<&str> = if scenario == "all" {
                scenarios::ALL.iter().map(|s| s.name).collect()
            } else {
                vec![scenario.as_str()]
            };
            let mut reports = Vec::new();
            for name in names {
                eprintln!("=== scenario {name}");
                let r = scenarios::run(name, &opts)?;
                let dms = if r.dms > 0 {
                    format!(", {} DMs", r.dms)
                } else {
                    String::new()
                };
                println!(
                    "PASS {} ({} nodes, {} messages, {} deliveries{dms}, {:.1}s)",
                    r.name, r.nodes, r.messages, r.deliveries, r.seconds
                );
                for n in &r.notes {
                    println!("  - {n}");
                }
                reports.push(r);
            }
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_string_pretty(&reports)? + "\n")?;
            }
        }
        Cmd::Bench {
            nodes,
            degree,
            rate,
            duration,
            warmup,
            bandwidth,
            seed,
            json,
            deliveries,
            topology,
        } => {
            let opts = options(&cli)?;
            let args = bench::BenchArgs {
                nodes: *nodes,
                degree: *degree,
                rate: *rate,
                duration: *duration,
                warmup: *warmup,
                bandwidth: bandwidth.clone(),
                seed: *seed,
                json: json.clone(),
                deliveries: deliveries.clone(),
                topology: topology.clone(),
            };
            let r = bench::run(&args, &opts)?;
            print!("{}", bench::table(&r));
            if json.is_none() {
                println!("{}", serde_json::to_string(&r)?);
            }
        }
        Cmd::Files {
            size_mib,
            bandwidth,
            json,
        } => {
            let opts = options(&cli)?;
            let r = bench::files::run(*size_mib, bandwidth.as_deref(), &opts)?;
            println!(
                "{} MiB: one hop {:.1} MB/s, three hops{} {:.1} MB/s; relays n1/n2: {:.1}/{:.1} ms CPU per MiB, RSS {:.0}/{:.0} MiB before, {:.0}/{:.0} MiB at peak",
                r.size_mib,
                r.one_hop_mb_s,
                r.bandwidth.as_deref().map(|b| format!(" (n1–n2 at {b})")).unwrap_or_default(),
                r.three_hops_mb_s,
                r.relay_cpu_ms_per_mib[0],
                r.relay_cpu_ms_per_mib[1],
                r.relay_rss_before_mib[0],
                r.relay_rss_before_mib[1],
                r.relay_rss_peak_mib[0],
                r.relay_rss_peak_mib[1],
            );
            let line = serde_json::to_string(&r)?;
            match json {
                Some(path) => std::fs::write(path, line + "\n")?,
                None => println!("{line}"),
            }
        }
        Cmd::Routes {
            topology,
            links,
            json,
        } => {
            let opts = options(&cli)?;
            let args = routes::RoutesArgs {
                topology: topology.clone(),
                links: *links,
                json: json.clone(),
            };
            let (r, report) = routes::measure(&args, &opts)?;
            println!(
                "{} ({} nodes): first convergence {:.0} ms after the last link connected; {:.1}s in all",
                r.topology, r.nodes, r.initial_converged_ms, r.seconds
            );
            for n in &report.notes {
                println!("  - {n}");
            }
            if json.is_none() {
                println!("{}", serde_json::to_string(&r)?);
            }
        }
        Cmd::Tracker {
            sizes,
            degree,
            rounds,
            seed,
            json,
        } => {
            let opts = options(&cli)?;
            let args = tracker::FailoverArgs {
                sizes: sizes.clone(),
                degree: *degree,
                rounds: *rounds,
                seed: *seed,
            };
            let (r, report) = tracker::measure(&args, &opts)?;
            for n in &report.notes {
                println!("  - {n}");
            }
            let out = serde_json::to_string(&r)?;
            match json {
                Some(path) => std::fs::write(path, out)?,
                None => println!("{out}"),
            }
        }
        Cmd::Net { topology, hold } => {
            let topo = Topology::parse(topology)?;
            let env = sys::check_env(true)?;
            cleanup::install_signal_handler();
            let net = Net::create(&topo, env)?;
            for (i, h) in net.hosts.iter().enumerate() {
                let addrs: Vec<String> = h
                    .ifaces
                    .iter()
                    .map(|f| format!("{}={}/{}", f.name, f.addr, f.prefix_len))
                    .collect();
                let role = if let Some(r) = topo.routers.iter().find(|r| r.host == i) {
                    format!(" (router, NAT {})", r.nat.name())
                } else if let Some(r) = topo.router_of(i) {
                    format!(" (behind host {})", r.host)
                } else {
                    String::new()
                };
                println!("host {i:>3} {:<15} {}{role}", h.ns, addrs.join(" "));
            }
            let checks = net.verify_isolation(16)?;
            println!("reachability OK ({checks} ping checks)");
            if *hold {
                use std::io::Write as _;
                println!("holding");
                std::io::stdout().flush()?;
                loop {
                    std::thread::park();
                }
            }
        }
    }
    Ok(())
}
