//! A stand-in node that speaks the `meshchat --json` contract over a trivial flooding protocol
//! (TCP, one JSON object per line, dedup by id, history in a JSON-lines file). It exists so the
//! lab's own machinery (processes, events, kill/restart, checks) is tested without depending on
//! the real binary: `meshchat-lab fake-node --json --data-dir D --nick N --listen ... --peer ...`.
//! It is not a model of meshchat's protocol.
//!
//! Without `--no-mdns` it also finds peers on its LAN segments, as the real node does by mDNS,
//! with a crude stand-in: it joins the mDNS group 224.0.0.251 on each listen address and
//! multicasts `{"fake_mdns": ID, "addr": ...}` to port 5353 every 500 ms from each of them; the
//! node with the smaller id dials the other (this is not DNS, only the lab's namespaces see it).
//!
//! Each connection carries a heartbeat every second and is closed after 5 s without a line, so
//! connections over a cut link end (and `peer_disconnected` is shown). On connecting, each side
//! sends its whole history (shown as `"synced":true` by the receiver where new); `stats` reports
//! `synced` and `sync_rounds` for that.
//!
//! `--fake-bug dup|forget|panic` makes it misbehave on purpose (show received messages twice,
//! not store received messages, panic on the 5th received message) so tests can check that the
//! lab's checks catch each kind of failure.

use crate::event::Message;
use anyhow::{bail, Context as _, Result};
use rand::Rng as _;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A deliberate misbehaviour.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bug {
    None,
    Dup,
    Forget,
    Panic,
}

struct State {
    bug: Bug,
    received: usize,
    me: String,
    nick: String,
    conns: HashMap<u64, (Option<String>, TcpStream)>,
    next_conn: u64,
    seen: HashSet<String>,
    history: Vec<Message>,
    store: std::fs::File,
    /// Messages first seen in a peer's backlog (the stand-in's history sync).
    synced: u64,
    /// Backlogs received.
    sync_rounds: u64,
}

type Shared = Arc<Mutex<State>>;

fn emit(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

/// Runs the stand-in node with meshchat's command-line flags.
pub fn main(args: &[String]) -> Result<()> {
    let mut data_dir = None;
    let mut nick = "fake".to_string();
    let mut listen = Vec::new();
    let mut peers = Vec::new();
    let mut bug = Bug::None;
    let mut mdns = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data-dir" => data_dir = it.next().map(PathBuf::from),
            "--nick" => nick = it.next().cloned().unwrap_or_default(),
            "--listen" => listen.extend(it.next().cloned()),
            "--peer" => peers.extend(it.next().cloned()),
            "--no-mdns" => mdns = false,
            "--fake-bug" => {
                bug = match it.next().map(String::as_str) {
                    Some("dup") => Bug::Dup,
                    Some("forget") => Bug::Forget,
                    Some("panic") => Bug::Panic,
                    other => bail!("unknown --fake-bug {other:?}"),
                }
            }
            _ => {}
        }
    }
    let dir = data_dir.context("--data-dir is required")?;
    std::fs::create_dir_all(&dir)?;
    let id_file = dir.join("fake-id");
    let me = match std::fs::read_to_string(&id_file) {
        Ok(s) => s.trim().to_string(),
        Err(_) => {
            let id = format!("12D3KooFake{}", random_hex(20));
            std::fs::write(&id_file, &id)?;
            id
        }
    };
    let store_path = dir.join("history.jsonl");
    let history: Vec<Message> = std::fs::read_to_string(&store_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let store = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&store_path)?;
    let state: Shared = Arc::new(Mutex::new(State {
        bug,
        received: 0,
        me: me.clone(),
        nick,
        conns: HashMap::new(),
        next_conn: 0,
        seen: history.iter().map(|m| m.id.clone()).collect(),
        history,
        store,
        synced: 0,
        sync_rounds: 0,
    }));
    let mut bound = Vec::new();
    for l in &listen {
        let ip: IpAddr = l
            .split('/')
            .nth(2)
            .context("bad --listen")?
            .parse()
            .context("bad --listen ip")?;
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))?;
        bound.push(format!("/ip4/{ip}/tcp/{}", listener.local_addr()?.port()));
        let st = state.clone();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || conn(st, s));
            }
        });
    }
    emit(&json!({"event":"ready","peer_id":me,"fingerprint":"fake","listen":bound}));
    for p in peers {
        dial(&state, &p);
    }
    if mdns {
        lan_discovery(&state, &me, &bound)?;
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Err(e) = command(&state, &line) {
            emit(&json!({"event":"error","message":e.to_string()}));
        }
    }
    Ok(())
}

/// The mDNS stand-in (see the module docs): announce on every listen address, dial the peers
/// heard whose id is larger than ours.
fn lan_discovery(state: &Shared, me: &str, bound: &[String]) -> Result<()> {
    use std::net::{Ipv4Addr, UdpSocket};
    const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
    let recv = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 5353)).context("binding udp/5353")?;
    let mut senders = Vec::new();
    for addr in bound {
        let Some(Ok(ip)) = addr.split('/').nth(2).map(str::parse::<Ipv4Addr>) else {
            continue;
        };
        recv.join_multicast_v4(&GROUP, &ip)
            .with_context(|| format!("joining {GROUP} on {ip}"))?;
        // Bound to the interface address, so the kernel sends out of that interface.
        let s = UdpSocket::bind((ip, 0))?;
        let hello = json!({"fake_mdns": me, "addr": addr}).to_string();
        senders.push((s, hello));
    }
    std::thread::spawn(move || loop {
        for (s, hello) in &senders {
            let _ = s.send_to(hello.as_bytes(), (GROUP, 5353));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    });
    let (st, me) = (state.clone(), me.to_string());
    std::thread::spawn(move || {
        let mut dialed = HashSet::new();
        let mut buf = [0u8; 2048];
        while let Ok((len, _)) = recv.recv_from(&mut buf) {
            let Ok(v) = serde_json::from_slice::<Value>(&buf[..len]) else {
                continue;
            };
            let (Some(peer), Some(addr)) = (v["fake_mdns"].as_str(), v["addr"].as_str()) else {
                continue;
            };
            if me.as_str() < peer && dialed.insert(peer.to_string()) {
                dial(&st, addr);
            }
        }
    });
    Ok(())
}

fn command(state: &Shared, line: &str) -> Result<()> {
    let v: Value = serde_json::from_str(line)?;
    let room = v["room"].as_str().unwrap_or("").to_string();
    match v["cmd"].as_str().unwrap_or("") {
        "send" => {
            let mut st = lock(state);
            let msg = Message {
                room: room.clone(),
                id: random_hex(32),
                from: st.me.clone(),
                nick: st.nick.clone(),
                ts: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_millis() as u64,
                text: v["text"].as_str().unwrap_or("").to_string(),
                own: false,
                synced: false,
            };
            emit(&json!({"event":"sent","room":room,"id":msg.id}));
            accept(&mut st, msg, None, true, false);
        }
        "history" => {
            let st = lock(state);
            let limit = v["limit"].as_u64().unwrap_or(100) as usize;
            // Display order, as the real node: author timestamp, then id.
            let mut msgs: Vec<&Message> = st.history.iter().filter(|m| m.room == room).collect();
            msgs.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
            let msgs = &msgs[msgs.len().saturating_sub(limit)..];
            emit(&json!({"event":"history","room":room,"messages":msgs}));
        }
        "peers" => {
            let st = lock(state);
            let peers: Vec<Value> = st
                .conns
                .values()
                .filter_map(|(p, _)| p.as_ref())
                .map(|p| json!({"peer_id":p,"addrs":[]}))
                .collect();
            emit(&json!({"event":"peers","peers":peers}));
        }
        "stats" => {
            let st = lock(state);
            emit(&json!({"event":"stats","synced":st.synced,"sync_rounds":st.sync_rounds}));
        }
        "join" => emit(&json!({"event":"joined","room":room})),
        "leave" => emit(&json!({"event":"left","room":room})),
        "connect" => dial(state, v["addr"].as_str().unwrap_or("")),
        // An event kind the lab does not model, for testing `NodeRef::raw` / `wait_event`.
        "echo" => emit(&json!({"event":"echo","data":v["data"]})),
        "quit" => std::process::exit(0),
        other => bail!("unknown command {other:?}"),
    }
    Ok(())
}

/// Stores, shows and floods a message unless already seen (`synced`: it came in a backlog).
fn accept(st: &mut State, mut msg: Message, from_conn: Option<u64>, own: bool, synced: bool) {
    if !st.seen.insert(msg.id.clone()) {
        return;
    }
    msg.own = false;
    msg.synced = false;
    if synced {
        st.synced += 1;
    }
    if !own {
        st.received += 1;
        if st.bug == Bug::Panic && st.received == 5 {
            panic!("fake-node: deliberate panic on the 5th received message");
        }
    }
    if own || st.bug != Bug::Forget {
        let _ = writeln!(
            st.store,
            "{}",
            serde_json::to_string(&msg).unwrap_or_default()
        );
        let _ = st.store.flush();
        st.history.push(msg.clone());
    }
    let wire = format!("{}\n", json!({"msg": msg}));
    for (id, (_, s)) in st.conns.iter_mut() {
        if Some(*id) != from_conn {
            let _ = s.write_all(wire.as_bytes());
        }
    }
    msg.own = own;
    msg.synced = synced;
    let mut ev = serde_json::to_value(&msg).unwrap_or_default();
    ev["event"] = json!("message");
    emit(&ev);
    if st.bug == Bug::Dup && !own {
        emit(&ev);
    }
}

fn dial(state: &Shared, addr: &str) {
    let parts: Vec<&str> = addr.split('/').collect();
    let target = match (parts.get(2), parts.get(4)) {
        (Some(ip), Some(port)) => format!("{ip}:{port}"),
        _ => return,
    };
    let st = state.clone();
    std::thread::spawn(move || {
        if let Ok(s) = TcpStream::connect(&target) {
            conn(st, s);
        }
    });
}

/// A connection whose peer sent nothing (not even a heartbeat) for this long is closed, so a cut
/// link ends its connections as a dead TCP peer would, only sooner.
const CONN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Heartbeat interval on every connection.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);

fn conn(state: Shared, stream: TcpStream) {
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    if stream.set_read_timeout(Some(CONN_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(CONN_TIMEOUT)).is_err()
    {
        return;
    }
    let id = {
        let mut st = lock(&state);
        let hello = format!("{}\n", json!({"hello": st.me}));
        if w.write_all(hello.as_bytes()).is_err() {
            return;
        }
        st.next_conn += 1;
        let id = st.next_conn;
        st.conns.insert(id, (None, w));
        id
    };
    let st = state.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(HEARTBEAT);
        let mut st = lock(&st);
        let Some((_, s)) = st.conns.get_mut(&id) else {
            return;
        };
        if s.write_all(b"{\"heartbeat\":1}\n").is_err() {
            return;
        }
    });
    let mut peer = None;
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(h) = v["hello"].as_str() {
            peer = Some(h.to_string());
            let mut st = lock(&state);
            // The peer answers our hello with its backlog.
            st.sync_rounds += 1;
            // Send our history so the peer catches up (a crude history sync).
            let backlog: Vec<String> = st
                .history
                .iter()
                .map(|m| format!("{}\n", json!({"msg": m, "sync": true})))
                .collect();
            if let Some((p, s)) = st.conns.get_mut(&id) {
                *p = Some(h.to_string());
                for b in backlog {
                    let _ = s.write_all(b.as_bytes());
                }
            }
            emit(&json!({"event":"peer_connected","peer_id":h}));
        } else if let Ok(m) = serde_json::from_value::<Message>(v["msg"].clone()) {
            let synced = v["sync"] == true;
            accept(&mut lock(&state), m, Some(id), false, synced);
        }
    }
    lock(&state).conns.remove(&id);
    if let Some(p) = peer {
        emit(&json!({"event":"peer_disconnected","peer_id":p}));
    }
}
