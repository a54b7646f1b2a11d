//! JSON mode: one command object per stdin line, one event object per stdout line, nothing else on
//! stdout. The contract is in `docs/JSON.md`.

use anyhow::Context;
use meshchat_node::{Event, Handle};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::catchup::Catchup;
use crate::output::{
    dm_json, election_stats_json, event_json, message_json, peers_json, profiles_json, routes_json,
    tracker_json, who_json,
};

/// Longest accepted input line; longer lines are answered with an error and skipped.
pub const MAX_LINE: usize = 256 * 1024;
/// Lines waiting to be written to stdout (fewer with a smaller `--event-queue`: a reader that
/// does not keep up is told it lagged as soon).
const OUT_QUEUE: usize = 1024;
/// Most messages one `history` command returns.
const MAX_HISTORY_LIMIT: usize = 10_000;

pub async fn run(handle: Handle, mut events: mpsc::Receiver<Event>) -> anyhow::Result<()> {
    let (out_tx, mut out_rx) = mpsc::channel::<Value>(OUT_QUEUE.min(events.max_capacity()));
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(v) = out_rx.recv().await {
            let mut line = v.to_string();
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });

    let info = handle.info().await?;
    out_tx
        .send(json!({
            "event": "ready",
            "peer_id": info.peer_id.to_string(),
            "fingerprint": info.fingerprint.to_string(),
            "nick": info.nick,
            "listen": info.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "rooms": info.rooms,
        }))
        .await?;

    let mut catchup = Catchup::start(&handle).await?;
    let forward_tx = out_tx.clone();
    let forward_handle = handle.clone();
    let forward = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match &event {
                Event::Message(m) if !catchup.first_time(m) => continue,
                Event::Lagged { .. } => {
                    // Say so, then hand on the stored messages this process has not seen, a page
                    // at a time.
                    if forward_tx.send(event_json(&event)).await.is_err() {
                        return;
                    }
                    loop {
                        let lines: Vec<Value> = match catchup.next_page(&forward_handle).await {
                            Ok(page) if page.is_empty() => break,
                            Ok(page) => page
                                .into_iter()
                                .map(|m| event_json(&Event::Message(m)))
                                .collect(),
                            Err(e) => {
                                let warning = json!({"event": "warning",
                                    "message": format!("could not read the history back: {e}")});
                                let _ = forward_tx.send(warning).await;
                                break;
                            }
                        };
                        for line in lines {
                            if forward_tx.send(line).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                _ => {
                    if forward_tx.send(event_json(&event)).await.is_err() {
                        return;
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
                out_tx
                    .send(error(format!(
                        "input line longer than {MAX_LINE} bytes ignored"
                    )))
                    .await?;
                continue;
            }
            LineRead::Line => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(cmd) => {
                if !command(&handle, cmd, &out_tx).await? {
                    break;
                }
            }
            Err(e) => out_tx.send(error(format!("invalid JSON: {e}"))).await?,
        }
    }
    drop(out_tx);
    forward.abort();
    let _ = writer.await;
    Ok(())
}

fn error(message: impl Into<String>) -> Value {
    json!({"event": "error", "message": message.into()})
}

fn str_field<'a>(cmd: &'a Value, name: &str) -> Result<&'a str, String> {
    cmd.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing string field \"{name}\""))
}

/// Runs one command; false means quit.
async fn command(handle: &Handle, cmd: Value, out: &mpsc::Sender<Value>) -> anyhow::Result<bool> {
    let name = cmd.get("cmd").and_then(Value::as_str).unwrap_or_default();
    let reply: Result<Value, String> = match name {
        "send" => match (str_field(&cmd, "room"), str_field(&cmd, "text")) {
            (Ok(room), Ok(text)) => handle
                .send(room, text)
                .await
                .map(|s| {
                    json!({"event": "sent", "room": room, "id": s.id.to_string(), "relayed": s.relayed})
                })
                .map_err(|e| e.to_string()),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        "join" => match str_field(&cmd, "room") {
            Ok(room) => handle
                .join(room)
                .await
                .map(|_| json!({"event": "joined", "room": room}))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        },
        "leave" => match str_field(&cmd, "room") {
            Ok(room) => handle
                .leave(room)
                .await
                .map(|was| json!({"event": "left", "room": room, "was_member": was}))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        },
        "nick" => match str_field(&cmd, "nick") {
            Ok(nick) => handle
                .set_nick(nick)
                .await
                .map(|()| json!({"event": "nick", "nick": nick}))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        },
        "connect" => match str_field(&cmd, "addr") {
            Ok(addr) => {
                // Dialing takes a while; answer when it is done without holding up other commands.
                let (handle, out, addr) = (handle.clone(), out.clone(), addr.to_owned());
                tokio::spawn(async move {
                    let v = match handle.connect(&addr).await {
                        Ok(peer) => json!({"event": "connected", "addr": addr, "peer_id": peer.to_string()}),
                        Err(e) => error(e.to_string()),
                    };
                    let _ = out.send(v).await;
                });
                return Ok(true);
            }
            Err(e) => Err(e),
        },
        "peers" => handle
            .peers()
            .await
            .map(|p| json!({"event": "peers", "peers": peers_json(&p)}))
            .map_err(|e| e.to_string()),
        "history" => match str_field(&cmd, "room") {
            Ok(room) => {
                let limit = cmd
                    .get("limit")
                    .and_then(Value::as_u64)
                    .map_or(100, |l| l as usize)
                    .min(MAX_HISTORY_LIMIT);
                handle
                    .history(room, limit, None)
                    .await
                    .map(|msgs| {
                        json!({"event": "history", "room": room,
                               "messages": msgs.iter().map(message_json).collect::<Vec<_>>()})
                    })
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        },
        "info" | "id" => handle
            .info()
            .await
            .map(|i| {
                json!({"event": "info", "peer_id": i.peer_id.to_string(),
                       "fingerprint": i.fingerprint.to_string(), "nick": i.nick,
                       "listen": i.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                       "rooms": i.rooms})
            })
            .map_err(|e| e.to_string()),
        "stats" => handle
            .stats()
            .await
            .map(|s| stats_json(&s))
            .map_err(|e| e.to_string()),
        "dm" => match (str_field(&cmd, "to"), str_field(&cmd, "text")) {
            (Ok(to), Ok(text)) => handle
                .dm(to, text)
                .await
                .map(|s| {
                    json!({"event": "dm_sent", "id": s.id.to_string(), "to": s.to.to_string(),
                           "state": s.state.as_str()})
                })
                .map_err(|e| e.to_string()),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        "dm_history" => match str_field(&cmd, "with") {
            Ok(with) => {
                let limit = cmd
                    .get("limit")
                    .and_then(Value::as_u64)
                    .map_or(100, |l| l as usize)
                    .min(MAX_HISTORY_LIMIT);
                handle
                    .dm_history(with, limit, None)
                    .await
                    .map(|dms| {
                        json!({"event": "dm_history", "with": with,
                               "messages": dms.iter().map(dm_json).collect::<Vec<_>>()})
                    })
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        },
        "routes" => handle
            .routes()
            .await
            .map(|r| json!({"event": "routes", "routes": routes_json(&r)}))
            .map_err(|e| e.to_string()),
        "whois" => match str_field(&cmd, "who") {
            Ok(who) => handle
                .whois(who)
                .await
                .map(|p| json!({"event": "whois", "who": who, "profiles": profiles_json(&p)}))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        },
        "who" => handle
            .who()
            .await
            .map(|p| json!({"event": "who", "peers": who_json(&p)}))
            .map_err(|e| e.to_string()),
        "tracker" => handle
            .tracker()
            .await
            .map(|t| {
                let mut v = tracker_json(&t);
                v["event"] = "tracker".into();
                v
            })
            .map_err(|e| e.to_string()),
        "quit" => return Ok(false),
        "" => Err("missing string field \"cmd\"".into()),
        other => Err(format!(
            "unknown command {other:?} (known: send, join, leave, nick, connect, peers, history, dm, dm_history, routes, whois, who, tracker, info, stats, quit)"
        )),
    };
    out.send(reply.unwrap_or_else(error))
        .await
        .context("stdout writer stopped")?;
    Ok(true)
}

pub enum LineRead {
    Line,
    TooLong,
    Eof,
}

/// Reads one line into `buf` (without the newline), never holding more than `max` bytes: the rest
/// of an over-long line is read and discarded.
pub async fn read_line_bounded<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if too_long {
                LineRead::TooLong
            } else if buf.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let consumed = done.unwrap_or(available.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}

/// The `stats` event: the node's counters, flat (the election's under `tracker`).
fn stats_json(s: &meshchat_node::Stats) -> Value {
    let rejected: serde_json::Map<String, Value> = s
        .rejected
        .nonzero()
        .map(|(r, n)| (r.as_str().to_owned(), n.into()))
        .collect();
    // In parts: one `json!` with every field outgrows the macro's recursion limit.
    let parts = [
        json!({"event": "stats", "accepted": s.accepted, "verified": s.verified,
               "duplicates": s.duplicates, "rejected": rejected, "stored": s.stored,
               "published": s.published, "copies_received": s.copies_received,
               "blocked_peers": s.blocked_peers, "relayed_unknown": s.relayed_unknown,
               "broken_links": s.broken_links, "silent_links": s.silent_links,
               "evicted_peers": s.evicted_peers, "broadcast_dropped": s.broadcast_dropped,
               "store_failures": s.store_failures}),
        json!({"synced": s.synced, "sync_rounds": s.sync_rounds,
               "sync_envelopes_received": s.sync_envelopes_received,
               "sync_offers_sent": s.sync_offers_sent,
               "sync_bytes_sent": s.sync_bytes_sent,
               "sync_bytes_received": s.sync_bytes_received, "sync_strikes": s.sync_strikes}),
        json!({"routes": s.routes, "route_refused": s.route_refused,
               "profiles_taken": s.profiles_taken, "dm_frames_sent": s.dm_frames_sent,
               "dm_flooded_relayed": s.dm_flooded_relayed,
               "dm_delivered": s.dm.delivered, "dm_forwarded": s.dm.forwarded,
               "dm_custody_held": s.dm_custody_held, "dm_own_held": s.dm_own_held,
               "dm_custody_taken": s.dm.custody_taken,
               "dm_forged_receipts": s.dm.forged_receipts,
               "dm_cannot_open": s.dm.cannot_open, "dm_replays": s.dm.replays,
               "dm_refused": s.dm.refused_total + s.dm.refused_bytes
                   + s.dm.refused_per_recipient + s.dm.refused_per_neighbour,
               "routing_from_strangers": s.routing.from_strangers}),
        json!({"tracker": election_stats_json(&s.tracker),
               "tracker_dropped": s.tracker_dropped,
               "tracker_unroutable": s.tracker_unroutable,
               "tracker_checked": s.tracker_checked,
               "tracker_heartbeats": s.tracker_heartbeats,
               "tracker_election_msgs": s.tracker_election_msgs,
               "tracker_roster_msgs": s.tracker_roster_msgs}),
        // What the trees and the transport refused a neighbour (issue 24).
        json!({"delivered_pushed": s.trees.delivered_pushed,
               "delivered_grafted": s.trees.delivered_grafted,
               "graft_over_budget": s.trees.graft_over_budget,
               "graft_repeats": s.trees.graft_repeats,
               "ihave_over_rate": s.trees.ihave_over_rate,
               "missing_peer_full": s.trees.missing_peer_full,
               "handshakes_evicted": s.handshakes.evicted,
               "handshakes_refused": s.handshakes.refused}),
    ];
    let mut all = serde_json::Map::new();
    for part in parts {
        if let Value::Object(fields) = part {
            all.extend(fields);
        }
    }
    Value::Object(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match read_line_bounded(&mut r, &mut buf, max).await.unwrap() {
                LineRead::Eof => return out,
                LineRead::TooLong => out.push("<too long>".into()),
                LineRead::Line => out.push(String::from_utf8(buf.clone()).unwrap()),
            }
        }
    }

    #[test]
    fn stats_carry_every_counter_once() {
        let s = meshchat_node::Stats {
            silent_links: 3,
            broken_links: 2,
            ..Default::default()
        };
        let v = stats_json(&s);
        assert_eq!(v["event"], "stats");
        assert_eq!(
            (v["silent_links"].as_u64(), v["broken_links"].as_u64()),
            (Some(3), Some(2))
        );
        for key in [
            "sync_rounds",
            "dm_delivered",
            "routing_from_strangers",
            "tracker_roster_msgs",
        ] {
            assert!(v[key].is_u64(), "{key} in {v}");
        }
        assert!(v["tracker"].is_object() && v["rejected"].is_object(), "{v}");
        // Every part's fields, none lost to another part's of the same name.
        assert_eq!(v.as_object().unwrap().len(), 52, "{v}");
    }

    #[test]
    fn stats_old_and_new_same_bytes() {
        let mut s = meshchat_node::Stats::default();
        let mut n = 0u64;
        let mut next = || {
            n += 1;
            n
        };
        s.accepted = next();
        s.verified = next();
        s.duplicates = next();
        s.stored = next();
        s.published = next();
        s.copies_received = next();
        s.blocked_peers = next();
        s.relayed_unknown = next();
        s.broken_links = next();
        s.silent_links = next();
        s.evicted_peers = next();
        s.broadcast_dropped = next();
        s.store_failures = next();
        s.synced = next();
        s.sync_rounds = next();
        s.sync_envelopes_received = next();
        s.sync_offers_sent = next();
        s.sync_bytes_sent = next();
        s.sync_bytes_received = next();
        s.sync_strikes = next();
        s.routes = next();
        s.route_refused = next();
        s.profiles_taken = next();
        s.dm_frames_sent = next();
        s.dm_flooded_relayed = next();
        s.dm.delivered = next();
        s.dm.forwarded = next();
        s.dm_custody_held = next();
        s.dm_own_held = next();
        s.dm.custody_taken = next();
        s.dm.forged_receipts = next();
        s.dm.cannot_open = next();
        s.dm.replays = next();
        s.dm.refused_total = next();
        s.dm.refused_bytes = next();
        s.dm.refused_per_recipient = next();
        s.dm.refused_per_neighbour = next();
        s.routing.from_strangers = next();
        s.tracker_dropped = next();
        s.tracker_unroutable = next();
        s.tracker_checked = next();
        s.tracker_heartbeats = next();
        s.tracker_election_msgs = next();
        s.tracker_roster_msgs = next();
        s.trees.delivered_pushed = next();
        s.trees.delivered_grafted = next();
        s.trees.graft_over_budget = next();
        s.trees.graft_repeats = next();
        s.trees.ihave_over_rate = next();
        s.trees.missing_peer_full = next();
        s.handshakes.evicted = next();
        s.handshakes.refused = next();
        let e = &mut s.tracker;
        e.elections = next();
        e.won = next();
        e.stepped_down = next();
        e.sent = next();
        e.flooded = next();
        e.stale = next();
        e.outranked = next();
        e.forged = next();
        e.suspected = next();
        e.registrations = next();
        e.registrations_refused = next();
        e.roster_queries = next();
        e.roster_resent = next();
        e.roster_full = next();
        e.roster_cut = next();
        e.known_full = next();
        e.reachable_full = next();
        e.unexpected = next();
        s.rejected
            .count(meshchat_core::inbound::Reason::BadSignature);
        s.rejected.count(meshchat_core::inbound::Reason::OverRate);
        s.rejected.count(meshchat_core::inbound::Reason::OverRate);
        let old = stats_json(&s).to_string();
        let new = meshchat_api::Event::Stats(Box::new(meshchat::api::stats(&s))).to_line();
        eprintln!("{new}");
        assert_eq!(old, new);
    }

    #[tokio::test]
    async fn bounded_lines() {
        assert_eq!(lines(b"ab\ncd\n", 10).await, ["ab", "cd"]);
        assert_eq!(lines(b"ab\ncd", 10).await, ["ab", "cd"]);
        assert_eq!(
            lines(b"0123456789abc\nok\n", 10).await,
            ["<too long>", "ok"]
        );
        assert_eq!(lines(b"", 10).await, Vec::<String>::new());
    }
}
