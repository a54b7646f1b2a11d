//! The `meshchat` binary: starts a node and puts a face on it (line mode, JSON mode, or headless).

mod catchup;
mod cli;
mod json;
mod line;
mod logging;
mod private_file;
mod web;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use meshchat::{output, tui};
use meshchat_node::{keyfile, peer_id_of, Handle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshchat: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Don't wait for the thread blocked reading stdin.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshchat: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The interface the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Json,
    Line,
    Tui,
    Daemon,
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let data_dir = cli.data_dir()?;
    if let Some(Command::Id) = cli.command {
        let (key, created) = keyfile::load_or_create(&data_dir)?;
        if created {
            eprintln!("created a new identity in {}", data_dir.display());
        }
        println!("peer id:     {}", peer_id_of(&key.public()));
        println!("fingerprint: {}", key.public().fingerprint());
        return Ok(());
    }
    if let Some(Command::Web) = cli.command {
        return web::open(&data_dir);
    }
    let mode = match (&cli.command, cli.json) {
        (Some(Command::Daemon), _) => Mode::Daemon,
        (_, true) => Mode::Json,
        (None, false) if !cli.plain && is_terminal() => Mode::Tui,
        _ => Mode::Line,
    };
    init_logging(mode, &data_dir)?;

    let config = cli.node_config()?;
    if let Some(web) = cli.web() {
        web.check()?;
    }
    let (handle, events) = meshchat_node::spawn(config)
        .await
        .context("cannot start the node")?;
    let info = handle.info().await?;
    tracing::info!(peer_id = %info.peer_id, fingerprint = %info.fingerprint, "node started");
    let (web, events) = match cli.web() {
        Some(options) => {
            match web::start(handle.clone(), events, &data_dir, &options).await {
                Ok((server, events)) => (Some(server), events),
                Err(e) => {
                    // The node is up: stop it cleanly before saying why.
                    handle.shutdown().await;
                    return Err(e);
                }
            }
        }
        None => (None, events),
    };
    let web_url = web.as_ref().map(|w| w.url.clone());
    if let Some(url) = &web_url {
        tracing::info!("web UI at {url}");
    }

    let ui = async {
        match mode {
            Mode::Json => json::run(handle.clone(), events, web_url).await,
            Mode::Line => line::run(handle.clone(), events, web_url).await,
            Mode::Tui => tui::run(handle.clone(), events, web_url).await,
            Mode::Daemon => daemon(&handle, events, &info, web_url).await,
        }
    };
    let outcome = tokio::select! {
        r = ui => r,
        () = shutdown_signal() => Ok(()),
    };
    handle.shutdown().await;
    drop(web);
    outcome
}

async fn daemon(
    handle: &Handle,
    mut events: tokio::sync::mpsc::Receiver<meshchat_node::Event>,
    info: &meshchat_node::NodeInfo,
    web: Option<String>,
) -> anyhow::Result<()> {
    eprintln!(
        "meshchat daemon {} ({}) listening on {}",
        info.peer_id,
        info.fingerprint,
        output::addrs(&info.listen)
    );
    if let Some(url) = web {
        eprintln!("web UI: {url}");
    }
    let _ = handle;
    while let Some(event) = events.recv().await {
        if let meshchat_node::Event::Reachability(r) = &event {
            eprintln!("{}", output::reach_text(r));
        }
        tracing::debug!(?event, "event");
    }
    Ok(())
}

/// Both stdin and stdout are terminals: the full-screen interface can run.
fn is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// JSON mode and the daemon log to stderr (stdout is the script's); line mode and the TUI log to a
/// file in the data directory so log lines never mix with the conversation. `RUST_LOG` sets the level.
/// Either way the output is bounded against peers that make other crates log on purpose: their
/// warnings and errors are rate-limited, and the file is rotated ([`logging`]).
fn init_logging(mode: Mode, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(match mode {
            Mode::Line | Mode::Tui => "info,libp2p=warn",
            _ => "warn",
        })
    });
    let registry = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer();
    match mode {
        Mode::Json | Mode::Daemon => registry
            .with(logging::RateLimited::new(
                layer.with_writer(std::io::stderr),
            ))
            .init(),
        Mode::Line | Mode::Tui => {
            keyfile::ensure_data_dir(data_dir)?;
            let path = data_dir.join("meshchat.log");
            let file = logging::RotatingFile::open(&path, logging::MAX_FILE_BYTES, logging::KEEP)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            registry
                .with(logging::RateLimited::new(
                    layer.with_ansi(false).with_writer(file),
                ))
                .init()
        }
    }
    Ok(())
}
