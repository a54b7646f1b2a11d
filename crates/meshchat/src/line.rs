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
    addrs, clock_text, dm_line, message_line, reach_text, short_peer, tracker_changed_line,
    tracker_summary, visible_name, visible_text, who_line, LOCK,
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
failed; /file PATH offers one to the current room
private rooms: /join ROOM --key PASSPHRASE, or /create ROOM then /invite WHO
(/invite, /remove and /members act on the current room); their messages print
as [🔒room] ..., an invite as * joined private room #room (invite from WHO)";

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
    let me = info.peer_id.to_string();
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
                Event::Reachability(r) => println!("* {}", reach_text(&r)),
                Event::Warning(w) => println!("* warning: {}", visible_text(&w)),
                Event::Clock {
                    offset_ms,
                    authors,
                    off,
                } => println!("* warning: {}", clock_text(offset_ms, authors, off)),
                Event::Dm(d) => println!("{}", dm_line(&d)),
                Event::Room(e) => {
                    // Name who invited us, when their nick is known.
                    let by = match &e {
                        api::Event::Joined { by: Some(p), .. } => printer_handle
                            .whois(p)
                            .await
                            .ok()
                            .and_then(|found| found.into_iter().next())
                            .map(|p| visible_name(&p.nick).into_owned()),
                        _ => None,
                    };
                    if let Some(line) = room_event_line(&e, &me, by.as_deref()) {
                        println!("{line}");
                    }
                }
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
            Command::Join(arg, key) => {
                let joined = match key {
                    Some(key) => handle.join_private(arg, key.0).await,
                    None => handle.join(arg).await,
                };
                match joined {
                    Ok(_) => {
                        current = meshchat_core::room::normalize_room(arg)?;
                        match key {
                            Some(_) => println!("* now in {LOCK}{current} (private: passphrase)"),
                            None => println!("* now in {current}"),
                        }
                        show_history(&handle, &current, PAGE).await;
                    }
                    Err(e) => println!("* {e}"),
                }
            }
            Command::Create(arg) => match handle.create_room(arg).await {
                Ok(room) => {
                    current = room;
                    println!(
                        "* created private room {LOCK}#{current}: only those you /invite can \
                         read it; now in it"
                    );
                }
                Err(e) => println!("* {e}"),
            },
            Command::Invite(who) => match handle.invite(&current, who).await {
                Ok(_) => println!(
                    "* invited {} to {LOCK}#{current} (the invite travels by DM)",
                    visible_name(who)
                ),
                Err(e) => println!("* {}", visible_text(&e.to_string())),
            },
            Command::Remove(who) => match handle.remove_member(&current, who).await {
                Ok(_) => println!(
                    "* removed {} from {LOCK}#{current}: a new key went to the others",
                    visible_name(who)
                ),
                Err(e) => println!("* {}", visible_text(&e.to_string())),
            },
            Command::Members => match handle.members(&current).await {
                Ok(members) => {
                    let members: Vec<api::Member> =
                        members.iter().map(meshchat_node::api::member).collect();
                    println!("{}", members_line(&current, &members));
                }
                Err(e) => println!("* {}", visible_text(&e.to_string())),
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
                let rooms: Vec<api::Room> = match handle.rooms().await {
                    Ok(rooms) => rooms.iter().map(meshchat_node::api::room).collect(),
                    // Without the kinds, the names.
                    Err(_) => handle
                        .info()
                        .await?
                        .rooms
                        .into_iter()
                        .map(|name| api::Room {
                            name,
                            private: None,
                            members: None,
                        })
                        .collect(),
                };
                for r in &rooms {
                    println!("{}", room_line(r, &current));
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
                println!("* {}", reach_text(&i.reach));
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

/// A joined room as `/rooms` lists it: `* lobby (current)`, `* 🔒team (invite, 3 members)`.
fn room_line(r: &api::Room, current: &str) -> String {
    let mark = if r.name == current { " (current)" } else { "" };
    let name = visible_name(&r.name);
    match &r.private {
        None => format!("* {name}{mark}"),
        Some(kind) => {
            let members = match r.members {
                Some(1) => ", 1 member".to_owned(),
                Some(n) => format!(", {n} members"),
                None => String::new(),
            };
            format!("* {LOCK}{name} ({}{members}){mark}", visible_name(kind))
        }
    }
}

/// The first 8 hex digits of a fingerprint as the API writes it (in groups).
fn short_fingerprint(fp: &str) -> String {
    fp.chars().filter(|c| !c.is_whitespace()).take(8).collect()
}

/// `* members of 🔒#team (2): ★alice (1a2b3c4d), bob (5e6f7a8b)` (★: an admin).
fn members_line(room: &str, members: &[api::Member]) -> String {
    if members.is_empty() {
        return format!("* members of {LOCK}#{}: none heard yet", visible_name(room));
    }
    let mut sorted: Vec<&api::Member> = members.iter().collect();
    sorted.sort_by(|a, b| b.admin.cmp(&a.admin).then_with(|| a.nick.cmp(&b.nick)));
    let list: Vec<String> = sorted
        .iter()
        .map(|m| {
            format!(
                "{}{} ({})",
                if m.admin { "★" } else { "" },
                visible_name(&m.nick),
                short_fingerprint(&m.fingerprint)
            )
        })
        .collect();
    format!(
        "* members of {LOCK}#{} ({}): {}",
        visible_name(room),
        members.len(),
        list.join(", ")
    )
}

/// Line mode's line for a private room event (`me`: our peer id; `by_nick`: the nick of who
/// invited us, when known).
fn room_event_line(e: &api::Event, me: &str, by_nick: Option<&str>) -> Option<String> {
    match e {
        api::Event::Joined {
            room, by: Some(by), ..
        } => {
            let who = match by_nick {
                Some(nick) => format!("{nick} {}", short_peer(by)),
                None => by.clone(),
            };
            Some(format!(
                "* joined private room {LOCK}#{} (invite from {who})",
                visible_name(room)
            ))
        }
        api::Event::Joined { room, .. } => Some(format!("* joined #{}", visible_name(room))),
        api::Event::Members { room, members } if !members.iter().any(|m| m.peer_id == me) => {
            Some(format!(
                "* you were removed from {LOCK}#{}: what came before stays readable, nothing new",
                visible_name(room)
            ))
        }
        api::Event::Members { room, members } => Some(members_line(room, members)),
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

    fn member(peer: &str, nick: &str, admin: bool) -> api::Member {
        api::Member {
            peer_id: peer.into(),
            fingerprint: "1a2b 3c4d 5e6f 7a8b".into(),
            nick: nick.into(),
            admin,
        }
    }

    #[test]
    fn private_room_events_print_as_lines() {
        let invited = api::Event::Joined {
            room: "team".into(),
            private: Some("invite".into()),
            by: Some("12D3KooWabcdefgh".into()),
        };
        assert_eq!(
            room_event_line(&invited, "me", Some("alice")).as_deref(),
            Some("* joined private room 🔒#team (invite from alice abcdefgh)")
        );
        assert_eq!(
            room_event_line(&invited, "me", None).as_deref(),
            Some("* joined private room 🔒#team (invite from 12D3KooWabcdefgh)")
        );
        let members = api::Event::Members {
            room: "team".into(),
            members: vec![member("bob", "bob", false), member("me", "alice", true)],
        };
        assert_eq!(
            room_event_line(&members, "me", None).as_deref(),
            Some("* members of 🔒#team (2): ★alice (1a2b3c4d), bob (1a2b3c4d)")
        );
        assert_eq!(
            room_event_line(&members, "carol", None).as_deref(),
            Some("* you were removed from 🔒#team: what came before stays readable, nothing new")
        );
        assert_eq!(
            room_event_line(&api::Event::Rooms { rooms: vec![] }, "me", None),
            None
        );
    }

    #[test]
    fn rooms_list_private_rooms_with_a_lock_and_their_size() {
        let room = |name: &str, private: Option<&str>, members: Option<u64>| api::Room {
            name: name.into(),
            private: private.map(Into::into),
            members,
        };
        assert_eq!(
            room_line(&room("lobby", None, None), "lobby"),
            "* lobby (current)"
        );
        assert_eq!(
            room_line(&room("team", Some("invite"), Some(3)), "lobby"),
            "* 🔒team (invite, 3 members)"
        );
        assert_eq!(
            room_line(&room("club", Some("passphrase"), Some(1)), "club"),
            "* 🔒club (passphrase, 1 member) (current)"
        );
        assert_eq!(
            members_line("club", &[]),
            "* members of 🔒#club: none heard yet"
        );
    }

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
