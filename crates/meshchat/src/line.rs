//! Line mode: typed lines go to the current room; incoming messages print as
//! `[room] nick (fp): text` (`[room] (synced 14:02) nick (fp): text` for one that came late, by
//! history sync; see [`message_line`]); slash commands do the rest. Used with `--plain` or when stdin is not
//! a terminal, until the full-screen interface takes over interactive use.

use meshchat_node::{Event, Handle};
use tokio::io::BufReader;
use tokio::sync::mpsc;

use crate::catchup::Catchup;
use crate::json::{read_line_bounded, LineRead, MAX_LINE};
use crate::output::{
    addrs, clock_text, dm_line, message_line, short_peer, tracker_changed_line, tracker_summary,
    visible_name, visible_text, who_line,
};

const HELP: &str = "\
commands:
  /join ROOM         join ROOM (or switch to it) and make it current
  /leave [ROOM]      leave ROOM (default: the current room)
  /rooms             list joined rooms
  /nick NAME         change your nick
  /peers             list connected peers
  /connect ADDR      dial a peer, e.g. /connect /ip4/192.0.2.7/tcp/7447
  /history [N]       show the last N messages of the current room (default 20)
  /msg WHO TEXT      direct message to WHO (nick, fingerprint or peer id), sealed
                     end to end, delivered through other nodes, kept until they are back
  /dms [WHO]         list conversations, or show the last DMs with WHO
  /routes            the routing table: destination, next hop, hops, age
  /whois WHO         someone's profile: nick, fingerprint, peer id, route
  /who               everyone online in the network (the tracker's roster)
  /tracker           the network's tracker: who, its priority and epoch, and
                     whether this node is registered with it
  /id                show your peer id, fingerprint and addresses
  /help              this list
  /quit              leave meshchat
anything else is sent to the current room
messages print as [room] nick (fingerprint): text; one that arrived late, by
history sync (written while you were away), as [room] (synced HH:MM) nick ...
direct messages as [dm] nick (fingerprint): text; yours as [dm -> PEER] and
their state as * dm ID to PEER: queued|sent|delivered|failed; a change of
the network's tracker as [tracker] now NICK (fingerprint) (epoch N)";

pub async fn run(handle: Handle, mut events: mpsc::Receiver<Event>) -> anyhow::Result<()> {
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
    println!(
        "* rooms: {} — current: {current} — /help for commands",
        info.rooms.join(", ")
    );
    show_history(&handle, &current, 20).await;

    let mut catchup = Catchup::start(&handle).await?;
    let printer_handle = handle.clone();
    let printer = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
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
        if !line.starts_with('/') || line.starts_with("//") {
            let text = line.strip_prefix('/').unwrap_or(&line);
            if let Err(e) = handle.send(&current, text).await {
                println!("* not sent: {e}");
            } else if handle.peers().await.map(|p| p.is_empty()).unwrap_or(false) {
                println!("* (no peers connected yet: kept here until someone connects)");
            }
            continue;
        }
        let (cmd, arg) = line[1..]
            .split_once(char::is_whitespace)
            .map(|(c, a)| (c, a.trim()))
            .unwrap_or((&line[1..], ""));
        match cmd {
            "quit" | "exit" => break,
            "help" => println!("{HELP}"),
            "join" if !arg.is_empty() => match handle.join(arg).await {
                Ok(_) => {
                    current = meshchat_core::room::normalize_room(arg)?;
                    println!("* now in {current}");
                    show_history(&handle, &current, 20).await;
                }
                Err(e) => println!("* {e}"),
            },
            "leave" => {
                let room = if arg.is_empty() {
                    current.clone()
                } else {
                    arg.to_owned()
                };
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
            "rooms" => {
                let rooms = handle.info().await?.rooms;
                for r in rooms {
                    let mark = if r == current { " (current)" } else { "" };
                    println!("* {r}{mark}");
                }
            }
            "nick" if !arg.is_empty() => match handle.set_nick(arg).await {
                Ok(()) => println!("* you are now {arg}"),
                Err(e) => println!("* {e}"),
            },
            "peers" => {
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
            "connect" if !arg.is_empty() => {
                let (handle, arg) = (handle.clone(), arg.to_owned());
                println!("* connecting to {arg} …");
                tokio::spawn(async move {
                    match handle.connect(&arg).await {
                        Ok(peer) => println!("* connected to {peer}"),
                        Err(e) => println!("* {e}"),
                    }
                });
            }
            "history" => {
                let n = arg.parse().unwrap_or(20);
                show_history(&handle, &current, n).await;
            }
            "id" => {
                let i = handle.info().await?;
                println!(
                    "* {} ({}) fingerprint {}",
                    visible_name(&i.nick),
                    i.peer_id,
                    i.fingerprint
                );
                println!("* listening on {}", addrs(&i.listen));
            }
            "msg" if arg.split_once(char::is_whitespace).is_some() => {
                let (who, text) = arg
                    .split_once(char::is_whitespace)
                    .expect("checked by the guard");
                match handle.dm(who, text.trim_start()).await {
                    Ok(sent) => println!(
                        "* dm {} to {}: {}",
                        &sent.id.to_string()[..8],
                        sent.to,
                        sent.state.as_str()
                    ),
                    Err(e) => println!("* not sent: {}", visible_text(&e.to_string())),
                }
            }
            "dms" if arg.is_empty() => {
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
            "dms" => match handle.dm_history(arg, 20, None).await {
                Ok(dms) => {
                    for d in &dms {
                        println!("{}", dm_line(d));
                    }
                }
                Err(e) => println!("* {}", visible_text(&e.to_string())),
            },
            "routes" => {
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
            "whois" if !arg.is_empty() => match handle.whois(arg).await {
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
            "who" => {
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
            "tracker" => {
                let t = handle.tracker().await?;
                let name = t
                    .tracker
                    .zip(t.nick.as_deref())
                    .map(|(peer, nick)| format!("{} {peer}", visible_name(nick)));
                println!("* {}", tracker_summary(&t, name.as_deref()));
            }
            "join" | "nick" | "connect" | "whois" => {
                println!("* /{cmd} needs an argument; see /help")
            }
            "msg" => println!("* usage: /msg WHO TEXT"),
            other => println!("* unknown command /{other}; /help lists them"),
        }
    }
    printer.abort();
    Ok(())
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
