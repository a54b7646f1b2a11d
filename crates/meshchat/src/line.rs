//! Line mode: typed lines go to the current room; incoming messages print as
//! `[room] nick (fp): text` (`[room] (synced 14:02) nick (fp): text` for one that came late, by
//! history sync; see [`message_line`]); slash commands do the rest. Used with `--plain` or when stdin is not
//! a terminal, until the full-screen interface takes over interactive use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshchat_api as api;
use meshchat_core::room::human_size;
use meshchat_node::{Event, Handle};
use tokio::io::BufReader;
use tokio::sync::mpsc;

use meshchat::commands::{self, Command, Interface, Parsed};
use meshchat::files::{self, Meters, Numbers};

use crate::catchup::Catchup;
use crate::json::{read_line_bounded, LineRead, MAX_LINE};
use crate::output::{
    addrs, clock_text, dm_line, message_line, short_peer, tracker_changed_line, tracker_summary,
    visible_name, visible_text, who_line,
};

/// Messages a room shows when it becomes current, and `/history` without N.
const PAGE: usize = 20;

/// What line mode's `/help` says after the commands (which come from [`commands::COMMANDS`]).
const HELP_AFTER: &str = "\
anything else is sent to the current room
messages print as [room] nick (fingerprint): text; one that arrived late, by
history sync (written while you were away), as [room] (synced HH:MM) nick ...
direct messages as [dm] nick (fingerprint): text; yours as [dm -> PEER] and
their state as * dm ID to PEER: queued|sent|delivered|failed; a change of
the network's tracker as [tracker] now NICK (fingerprint) (epoch N)
files as [file N] ...: an offer, its progress (at most every 2 s), done or
failed; /file PATH offers one to the current room";

/// Line mode's `/help`: the commands it has, then how it prints.
fn help() -> String {
    let mut out = String::from("commands:\n");
    for c in commands::available(Interface::Line) {
        let usage = c.usage_line();
        out.push_str(&format!("  {usage:<18} {}\n", c.help_in(Interface::Line)));
    }
    out.push_str(&format!(
        "  also {}\n",
        commands::aliases_line(Interface::Line)
    ));
    out.push_str(HELP_AFTER);
    out
}

/// `web`: the web UI's URL, when the node serves one.
pub async fn run(
    handle: Handle,
    mut events: mpsc::Receiver<Event>,
    web: Option<String>,
) -> anyhow::Result<()> {
    let info = handle.info().await?;
    let mut current = info
        .rooms
        .first()
        .cloned()
        .unwrap_or_else(|| meshchat_core::room::DEFAULT_ROOM.to_owned());
    println!(
        "* meshchat — you are {} ({})",
        visible_name(&info.nick),
        info.peer_id
    );
    println!("* fingerprint {}", info.fingerprint);
    println!("* listening on {}", addrs(&info.listen));
    if let Some(url) = web {
        println!("* web UI: {url}");
    }
    println!(
        "* rooms: {} — current: {current} — /help for commands",
        info.rooms.join(", ")
    );
    show_history(&handle, &current, PAGE).await;

    let mut catchup = Catchup::start(&handle).await?;
    let printer_handle = handle.clone();
    // File numbers, shared by the printer (which gives them) and the commands (which read them).
    let numbers = Arc::new(Mutex::new(Numbers::default()));
    let printer_numbers = numbers.clone();
    let mut meters = Meters::default();
    let mut printed: HashMap<String, Instant> = HashMap::new();
    let printer = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                Event::File(e) => {
                    let mut numbers = printer_numbers.lock().expect("not poisoned");
                    if let Some(line) = file_line(&e, &mut numbers, &mut meters, &mut printed) {
                        println!("{line}");
                    }
                }
                Event::Message(m) => {
                    if catchup.first_time(&m) {
                        println!("{}", message_line(&m));
                    }
                }
                Event::PeerConnected { peer_id } => println!("* peer connected: {peer_id}"),
                Event::PeerDisconnected { peer_id } => println!("* peer disconnected: {peer_id}"),
                Event::ListenAddr(a) => tracing::info!("listening on {a}"),
                Event::Warning(w) => println!("* warning: {}", visible_text(&w)),
                Event::Clock {
                    offset_ms,
                    authors,
                    off,
                } => println!("* warning: {}", clock_text(offset_ms, authors, off)),
                Event::Dm(d) => println!("{}", dm_line(&d)),
                Event::Room(_) => {}
                Event::DmStatus { id, to, state } => println!(
                    "* dm {} to {}: {}",
                    &id.to_string()[..8],
                    short_peer(&to.to_string()),
                    state.as_str()
                ),
                Event::TrackerChanged {
                    tracker,
                    epoch,
                    is_self,
                } => {
                    // The event names the tracker by peer id; its nick is in the node's view.
                    let nick = match tracker {
                        Some(_) if !is_self => printer_handle
                            .tracker()
                            .await
                            .ok()
                            .filter(|v| v.tracker == tracker)
                            .and_then(|v| v.nick),
                        _ => None,
                    };
                    let nick = nick.as_deref().map(visible_name);
                    println!(
                        "{}",
                        tracker_changed_line(tracker, epoch, is_self, nick.as_deref())
                    );
                }
                Event::Lagged { missed } => {
                    println!(
                        "* output was blocked: {missed} updates were not printed; catching up"
                    );
                    loop {
                        match catchup.next_page(&printer_handle).await {
                            Ok(page) if page.is_empty() => break,
                            Ok(page) => {
                                for m in &page {
                                    println!("{}", message_line(m));
                                }
                            }
                            Err(e) => {
                                println!("* could not read the history back: {e}");
                                break;
                            }
                        }
                    }
                }
            }
        }
    });

    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_line_bounded(&mut stdin, &mut buf, MAX_LINE).await? {
            LineRead::Eof => break,
            LineRead::TooLong => {
                println!("* line too long, not sent");
                continue;
            }
            LineRead::Line => {}
        }
        let line = String::from_utf8_lossy(&buf)
            .trim_end_matches('\r')
            .to_owned();
        if line.trim().is_empty() {
            continue;
        }
        let cmd = match commands::parse(&line, Interface::Line) {
            Parsed::Text(text) => {
                if let Err(e) = handle.send(&current, text).await {
                    println!("* not sent: {e}");
                } else if handle.peers().await.map(|p| p.is_empty()).unwrap_or(false) {
                    println!("* (no peers connected yet: kept here until someone connects)");
                }
                continue;
            }
            Parsed::Error(e) => {
                println!("* {}", visible_text(&e.to_string()));
                continue;
            }
            Parsed::Command(cmd) => cmd,
        };
        match cmd {
            Command::Quit => break,
            Command::Help => println!("{}", help()),
            Command::Join(arg) => match handle.join(arg).await {
                Ok(_) => {
                    current = meshchat_core::room::normalize_room(arg)?;
                    println!("* now in {current}");
                    show_history(&handle, &current, PAGE).await;
                }
                Err(e) => println!("* {e}"),
            },
            Command::Leave(arg) => {
                let room = arg.map_or_else(|| current.clone(), str::to_owned);
                match handle.leave(&room).await {
                    Ok(true) => {
                        println!("* left {room}");
                        let rooms = handle.info().await?.rooms;
                        if meshchat_core::room::normalize_room(&room).ok().as_ref()
                            == Some(&current)
                        {
                            match rooms.first() {
                                Some(r) => {
                                    current = r.clone();
                                    println!("* now in {current}");
                                }
                                None => println!("* you are in no room; /join one"),
                            }
                        }
                    }
                    Ok(false) => println!("* you are not in {room}"),
                    Err(e) => println!("* {e}"),
                }
            }
            Command::Rooms => {
                let rooms = handle.info().await?.rooms;
                for r in rooms {
                    let mark = if r == current { " (current)" } else { "" };
                    println!("* {r}{mark}");
                }
            }
            Command::Nick(arg) => match handle.set_nick(arg).await {
                Ok(()) => println!("* you are now {arg}"),
                Err(e) => println!("* {e}"),
            },
            Command::Peers => {
                let peers = handle.peers().await?;
                if peers.is_empty() {
                    println!("* no peers connected");
                }
                for p in peers {
                    let nick = p
                        .nick
                        .as_deref()
                        .map(|n| format!("{} ", visible_name(n)))
                        .unwrap_or_default();
                    println!("* {nick}{} {}", p.peer_id, addrs(&p.addrs));
                }
            }
            Command::Connect(arg) => {
                let (handle, arg) = (handle.clone(), arg.to_owned());
                println!("* connecting to {arg} …");
                tokio::spawn(async move {
                    match handle.connect(&arg).await {
                        Ok(peer) => println!("* connected to {peer}"),
                        Err(e) => println!("* {e}"),
                    }
                });
            }
            Command::History(n) => show_history(&handle, &current, n.unwrap_or(PAGE)).await,
            Command::Id => {
                let i = handle.info().await?;
                println!(
                    "* {} ({}) fingerprint {}",
                    visible_name(&i.nick),
                    i.peer_id,
                    i.fingerprint
                );
                println!("* listening on {}", addrs(&i.listen));
            }
            Command::Msg(who, Some(text)) => match handle.dm(who, text).await {
                Ok(sent) => println!(
                    "* dm {} to {}: {}",
                    &sent.id.to_string()[..8],
                    sent.to,
                    sent.state.as_str()
                ),
                Err(e) => println!("* not sent: {}", visible_text(&e.to_string())),
            },
            Command::Dms(None) => {
                let convs = handle.conversations().await?;
                if convs.is_empty() {
                    println!("* no direct messages yet; /msg WHO TEXT starts one");
                }
                for c in convs {
                    println!(
                        "* {} ({}) {}: {} messages",
                        visible_name(&c.nick),
                        c.fingerprint.short(),
                        c.peer,
                        c.count
                    );
                }
            }
            Command::Msg(who, None) | Command::Dms(Some(who)) => {
                match handle.dm_history(who, PAGE, None).await {
                    Ok(dms) => {
                        for d in &dms {
                            println!("{}", dm_line(d));
                        }
                    }
                    Err(e) => println!("* {}", visible_text(&e.to_string())),
                }
            }
            Command::Routes => {
                let routes = handle.routes().await?;
                if routes.is_empty() {
                    println!("* no routes yet");
                }
                for r in routes {
                    println!(
                        "* {} {} via {} hops {} age {} s",
                        r.dest,
                        r.nick.as_deref().map(visible_name).unwrap_or_default(),
                        short_peer(&r.next_hop.to_string()),
                        r.hops,
                        r.age_ms / 1000
                    );
                }
            }
            Command::Whois(arg) => match handle.whois(arg).await {
                Ok(people) => {
                    for p in people {
                        let route = match p.hops {
                            Some(0) => "this node".to_owned(),
                            Some(h) => format!("{h} hops away"),
                            None => "no route now".to_owned(),
                        };
                        println!(
                            "* {} fingerprint {} peer {} — {route}{}",
                            visible_name(&p.nick),
                            p.fingerprint,
                            p.peer_id,
                            if p.connected { ", connected" } else { "" }
                        );
                    }
                }
                Err(e) => println!("* {}", visible_text(&e.to_string())),
            },
            Command::Who => {
                let peers = handle.who().await?;
                let tracker = handle.tracker().await?;
                match (peers.len(), tracker.tracker) {
                    (0, None) => println!(
                        "* nobody listed: there is no tracker now (electing, epoch {})",
                        tracker.epoch
                    ),
                    (0, Some(_)) => {
                        println!("* nobody listed yet: the tracker's roster has not come")
                    }
                    (n, _) => println!(
                        "* {n} online{}",
                        if tracker.truncated {
                            " (the roster was cut to fit: more are)"
                        } else {
                            ""
                        }
                    ),
                }
                for p in &peers {
                    println!("* {}", who_line(p, tracker.tracker));
                }
            }
            Command::File(path) => match handle.send_file(Some(&current), None, path).await {
                Ok(f) => {
                    let n = numbers.lock().expect("not poisoned").number(&f.id);
                    println!(
                        "[file {n}] offered {} ({}) in {current}",
                        visible_name(&f.name),
                        human_size(f.size)
                    );
                }
                Err(e) => println!("* not offered: {e}"),
            },
            Command::Files => match handle.files().await {
                Ok(files) if files.is_empty() => println!("* no file offers yet"),
                Ok(files) => {
                    let mut numbers = numbers.lock().expect("not poisoned");
                    for f in files.iter().rev() {
                        let n = numbers.number(&f.id);
                        println!("{}", files::list_line(n, f));
                    }
                }
                Err(e) => println!("* {e}"),
            },
            Command::Accept(n) => {
                let id = match n {
                    Some(n) => numbers
                        .lock()
                        .expect("not poisoned")
                        .id(n)
                        .map(str::to_owned),
                    None => newest_offer(&handle).await,
                };
                match id {
                    None => println!("* no such offer; /files lists them"),
                    Some(id) => match handle.accept_file(&id).await {
                        Ok(()) => println!("* fetching; progress follows"),
                        Err(e) => println!("* not fetched: {e}"),
                    },
                }
            }
            Command::Cancel(n) => {
                let n: usize = n.parse().unwrap_or(0);
                let id = numbers
                    .lock()
                    .expect("not poisoned")
                    .id(n)
                    .map(str::to_owned);
                match id {
                    None => println!("* no such file; /files lists them"),
                    Some(id) => match handle.cancel_file(&id).await {
                        Ok(()) => println!("[file {n}] cancelled"),
                        Err(e) => println!("* {e}"),
                    },
                }
            }
            Command::Tracker => {
                let t = handle.tracker().await?;
                let name = t
                    .tracker
                    .zip(t.nick.as_deref())
                    .map(|(peer, nick)| format!("{} {peer}", visible_name(nick)));
                println!("* {}", tracker_summary(&t, name.as_deref()));
            }
        }
    }
    printer.abort();
    Ok(())
}

/// How often line mode prints a transfer's progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Line mode's line for a file event, if it prints one now (progress at most every
/// [`PROGRESS_EVERY`] per transfer).
fn file_line(
    e: &api::Event,
    numbers: &mut Numbers,
    meters: &mut Meters,
    printed: &mut HashMap<String, Instant>,
) -> Option<String> {
    match e {
        api::Event::FileOffer(f) => Some(files::offer_line(numbers.number(&f.id), f)),
        api::Event::FileProgress { id, bytes, total } => {
            let now = Instant::now();
            let rate = meters.update(id, *bytes, now);
            let due = printed
                .get(id)
                .is_none_or(|t| now.duration_since(*t) >= PROGRESS_EVERY);
            if !due || bytes >= total {
                return None;
            }
            if printed.len() > 1000 {
                printed.clear();
            }
            printed.insert(id.clone(), now);
            Some(format!(
                "[file {}] {}",
                numbers.number(id),
                files::progress_text(*bytes, *total, rate)
            ))
        }
        api::Event::FileDone { id, path, .. } => {
            meters.done(id);
            printed.remove(id);
            Some(format!(
                "[file {}] done, verified: {}",
                numbers.number(id),
                visible_text(path)
            ))
        }
        api::Event::FileFailed { id, reason } => {
            meters.done(id);
            printed.remove(id);
            Some(format!(
                "[file {}] failed: {}",
                numbers.number(id),
                visible_text(reason)
            ))
        }
        _ => None,
    }
}

/// The newest offer to us not fetched yet.
async fn newest_offer(handle: &Handle) -> Option<String> {
    let files = handle.files().await.ok()?;
    files
        .into_iter()
        .find(|f| !f.own && f.state == api::FileState::Offered)
        .map(|f| f.id)
}

async fn show_history(handle: &Handle, room: &str, n: usize) {
    match handle.history(room, n, None).await {
        Ok(msgs) => {
            for m in msgs {
                println!("{}", message_line(&m));
            }
        }
        Err(e) => println!("* history unavailable: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Line mode's help lists every command it has, with its usage, and every alias.
    #[test]
    fn help_lists_every_command_and_alias() {
        let help = help();
        for c in commands::available(Interface::Line) {
            let row = format!("  {:<18} {}", c.usage_line(), c.help);
            assert!(help.lines().any(|l| l == row), "{row:?} in\n{help}");
            for a in c.aliases {
                assert!(help.contains(&format!("/{a} ")), "/{a} in\n{help}");
            }
        }
    }
}
