//! The tracker (issue 12): wires [`meshchat_core::election`] to the broadcast trees (flooded
//! election messages and heartbeats), routed envelopes (registrations, rosters, answers), the
//! routing table (who is reachable), the known-peer store and dialing (roster addresses), and
//! the front-end (`/who`, `/tracker`, [`Event::TrackerChanged`]). The state machine decides;
//! this module signs, sends, persists and shows what it asks.
//!
//! Every election message is the body of a kind-4 envelope signed by its sender (target
//! [`TARGET`]): the inbound path has checked the signature before [`Tracker::on_envelope`]
//! sees it, so the state machine's `from` is authenticated, its target is [`TARGET`], its body
//! decodes and it is no older than [`MAX_AGE`] (refused otherwise, and never relayed: see
//! [`meshchat_core::inbound`]). Flooded and routed ones alike are deduplicated by the
//! one way in's seen-cache (`Inbound`), before they reach this handler.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use meshchat_core::election::{self, Election, Entry, Input, Msg, Output};
use meshchat_core::envelope::{Draft, Kind};
use meshchat_core::{Envelope, Fingerprint, Keypair};

use super::context::{Ctx, Io, Key, Note};
use super::disk::Write;
use crate::node::{now_ms, peer_id_of_bytes, Event, OnlinePeer, Stats, TrackerView};

use meshchat_core::election::{MAX_AGE, TARGET};
/// Roster peers dialed per roster answer when the node has fewer peers than it wants.
const ROSTER_DIALS: usize = 4;
/// A roster entry's addresses are written to the known-peer store again (its `last_seen`
/// refreshed) at most this often while they stay the same.
const REMEMBER_EVERY: Duration = Duration::from_secs(5 * 60);

/// The tracker's handler.
pub(super) struct Tracker {
    election: Election<Key>,
    /// The last roster: our tracker's answer, or our own when serving.
    roster: Vec<Entry<Key>>,
    truncated: bool,
    /// The epoch last written to the store.
    saved_epoch: u64,
    /// What we last registered about ourselves (nick, addresses).
    me: Option<(String, Vec<String>)>,
    /// The addresses last written to the known-peer store for each roster entry, and when:
    /// a roster comes with every registration, and most of it is unchanged. Only entries of
    /// the current roster are kept, so this is bounded by it.
    remembered: HashMap<Key, (Vec<String>, Instant)>,
}

impl Tracker {
    pub(super) fn new(election: Election<Key>) -> Self {
        let saved_epoch = election.max_epoch();
        Self {
            election,
            roster: Vec::new(),
            truncated: false,
            saved_epoch,
            me: None,
            remembered: HashMap::new(),
        }
    }

    /// When [`Tracker::tick`] is due.
    pub(super) fn wake(&self) -> Option<Instant> {
        self.election.next_deadline()
    }

    /// The election's counters, into the node's.
    pub(super) fn stats(&self, stats: &mut Stats) {
        stats.tracker = *self.election.stats();
    }

    /// At start, once listening: what we register about ourselves, and the first wake-up.
    pub(super) fn start(&mut self, addrs: Vec<Multiaddr>, ctx: &mut Ctx<'_>) {
        self.me_changed(addrs, ctx);
        self.feed(Input::Tick, ctx);
    }

    /// Our nick or addresses may have changed: registered again if they did. `addrs` are the
    /// ones we advertise (the NAT handler's: those that work from outside, as far as we know).
    pub(super) fn me_changed(&mut self, addrs: Vec<Multiaddr>, ctx: &mut Ctx<'_>) {
        let me = (ctx.io.nick.clone(), own_addrs(&addrs));
        if self.me.as_ref() == Some(&me) {
            return;
        }
        self.me = Some(me.clone());
        self.feed(
            Input::Me {
                nick: me.0,
                addrs: me.1,
            },
            ctx,
        );
    }

    /// The routing table's reachability changed for `dests`.
    pub(super) fn reachability(&mut self, changes: Vec<(Key, bool)>, ctx: &mut Ctx<'_>) {
        self.feed(Input::Reachability(changes), ctx);
    }

    /// The election's timer fired.
    pub(super) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        self.feed(Input::Tick, ctx);
    }

    /// A checked tracker envelope, flooded on the trees or routed to us (the one way in has
    /// dropped copies and replays).
    pub(super) fn on_envelope(&mut self, env: Envelope, ctx: &mut Ctx<'_>) {
        let author = *env.author().as_bytes();
        if author == ctx.io.me() {
            // Our own, echoed by the trees.
            return;
        }
        if env.timestamp_ms() + (MAX_AGE.as_millis() as u64) < now_ms() {
            // Checked by the inbound path already; the clock moved on since.
            ctx.io.stats.tracker_dropped += 1;
            return;
        }
        match Msg::<Key>::decode(env.body()) {
            Ok(msg) => self.feed(Input::Received { from: author, msg }, ctx),
            Err(e) => {
                tracing::debug!("undecodable tracker message from {author:?}: {e}");
                ctx.io.stats.tracker_dropped += 1;
            }
        }
    }

    /// Hands one input to the election and carries out what it asks.
    fn feed(&mut self, input: Input<Key>, ctx: &mut Ctx<'_>) {
        let outs = self.election.handle(input, Instant::now());
        for out in &outs {
            let (Output::Send { msg, .. } | Output::Flood(msg)) = out else {
                continue;
            };
            match msg {
                Msg::Heartbeat { .. } => ctx.io.stats.tracker_heartbeats += 1,
                Msg::Election { .. } | Msg::Alive { .. } | Msg::Coordinator { .. } => {
                    ctx.io.stats.tracker_election_msgs += 1
                }
                Msg::Register { .. } | Msg::Roster { .. } => ctx.io.stats.tracker_roster_msgs += 1,
            }
        }
        for out in outs {
            match out {
                Output::Send { to, msg } => match sign(&msg, &ctx.io.key) {
                    Some(envelope) => ctx.notes.push(Note::SendRouted { to, envelope }),
                    None => ctx.io.stats.tracker_unroutable += 1,
                },
                Output::Flood(msg) => {
                    if let Some(env) = sign(&msg, &ctx.io.key) {
                        ctx.notes.push(Note::Publish {
                            id: env.id(),
                            payload: env.as_bytes().to_vec(),
                        });
                    }
                }
                Output::TrackerChanged { tracker, epoch } => {
                    let tracker = tracker.map(|t| peer_id_of_bytes(&t));
                    match tracker {
                        Some(t) => tracing::info!(%t, epoch, "tracker"),
                        None => tracing::info!(epoch, "tracker gone: electing"),
                    }
                    ctx.io.emit(Event::TrackerChanged {
                        tracker,
                        epoch,
                        is_self: self.election.is_serving(),
                    });
                }
                Output::Serving(on) => {
                    tracing::info!(serving = on, "tracker role");
                    if !on {
                        self.roster.clear();
                    }
                }
                Output::Roster { entries, truncated } => self.on_roster(entries, truncated, ctx),
                // Read back by `wake`.
                Output::WakeAt(_) => {}
            }
        }
        let epoch = self.election.max_epoch();
        if epoch != self.saved_epoch {
            self.saved_epoch = epoch;
            if let Err(e) = ctx
                .io
                .store
                .set_setting("tracker_epoch", &epoch.to_string())
            {
                ctx.io.write_failed(Write::Other("the tracker epoch"), &e);
            }
        }
    }

    /// A roster: kept for `/who`, and its addresses remembered (peer exchange: they let the
    /// node rejoin when its neighbours are gone). A follower also dials a few of the
    /// unconnected ones while it has fewer peers than it wants; a serving node's roster is what
    /// others told it, and it dials nobody for it (everyone dials the tracker).
    ///
    /// The tracker remembers too: registrations are signed by the peer they describe, so their
    /// addresses are as good as identify's, and a tracker that restarts alone has only them.
    fn on_roster(&mut self, entries: Vec<Entry<Key>>, truncated: bool, ctx: &mut Ctx<'_>) {
        let me = ctx.io.me();
        let serving = self.election.is_serving();
        let now = Instant::now();
        let mut dials = 0;
        let mut remembered = HashMap::with_capacity(entries.len());
        // New or changed entries, written in one transaction after the loop.
        let mut to_store: Vec<(Key, String, Vec<String>)> = Vec::new();
        for e in &entries {
            if e.id == me {
                continue;
            }
            let peer = peer_id_of_bytes(&e.id);
            let addrs: Vec<Multiaddr> = e
                .addrs
                .iter()
                .filter_map(|a| a.parse::<Multiaddr>().ok())
                .filter(super::conns::is_dialable)
                .map(|a| super::conns::strip_p2p(&a))
                .collect();
            if addrs.is_empty() {
                continue;
            }
            let texts: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
            let fresh = self.remembered.remove(&e.id).filter(|(old, at)| {
                *old == texts && now.saturating_duration_since(*at) < REMEMBER_EVERY
            });
            let at = match fresh {
                Some((_, at)) => at,
                None => {
                    to_store.push((e.id, peer.to_string(), texts.clone()));
                    now
                }
            };
            remembered.insert(e.id, (texts, at));
            if !serving
                && dials < ROSTER_DIALS
                && ctx.io.connected_count() < ctx.io.config.target_peers
                && !ctx.io.connected(&peer)
            {
                dials += 1;
                ctx.notes.push(Note::Dial { peer, addrs });
            }
        }
        let rows: Vec<(&str, &[String])> = to_store
            .iter()
            .map(|(_, p, a)| (p.as_str(), a.as_slice()))
            .collect();
        if let Err(err) = ctx.io.store.upsert_peers(&rows, now_ms()) {
            ctx.io
                .write_failed(Write::Other("the known-peer list"), &err);
            // Not remembered as written: the next roster tries them again.
            for (id, _, _) in &to_store {
                remembered.remove(id);
            }
        }
        self.remembered = remembered;
        self.roster = entries;
        self.truncated = truncated;
    }

    /// `/who`: everyone in the last roster (ours when serving), sorted by nick.
    pub(super) fn who(&self, io: &Io, hops: impl Fn(&Key) -> Option<u16>) -> Vec<OnlinePeer> {
        let me = io.me();
        let mut out: Vec<OnlinePeer> = self
            .roster
            .iter()
            .map(|e| {
                let peer_id = peer_id_of_bytes(&e.id);
                OnlinePeer {
                    peer_id,
                    nick: e.nick.clone(),
                    fingerprint: Fingerprint::of_key_bytes(&e.id),
                    addrs: e.addrs.clone(),
                    priority: e.priority,
                    is_self: e.id == me,
                    connected: io.connected(&peer_id),
                    hops: hops(&e.id),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            a.nick
                .to_lowercase()
                .cmp(&b.nick.to_lowercase())
                .then(a.peer_id.to_bytes().cmp(&b.peer_id.to_bytes()))
        });
        out
    }

    /// `/tracker`: who it is, at which epoch, and where we stand.
    pub(super) fn view(&self, nick_of: impl Fn(&Key) -> Option<String>) -> TrackerView {
        let e = &self.election;
        let tracker = e.tracker();
        TrackerView {
            tracker: tracker.map(|(t, _)| peer_id_of_bytes(&t)),
            nick: tracker.and_then(|(t, _)| {
                self.roster
                    .iter()
                    .find(|x| x.id == t)
                    .map(|x| x.nick.clone())
                    .filter(|n| !n.is_empty())
                    .or_else(|| nick_of(&t))
            }),
            epoch: tracker.map_or(e.max_epoch(), |(_, epoch)| epoch),
            priority: e.tracker_priority(),
            is_self: e.is_serving(),
            registered: e.is_registered(),
            own_priority: e.rank().map(|r| r.priority),
            online: self.roster.len(),
            truncated: self.truncated,
        }
    }
}

/// The addresses others can dial us at: the advertised ones, loopback ones only when there is
/// nothing else (a node on one machine), at most [`election::MAX_ADDRS`].
fn own_addrs(listen_addrs: &[Multiaddr]) -> Vec<String> {
    let loopback = |a: &Multiaddr| {
        a.iter().any(|p| match p {
            Protocol::Ip4(ip) => ip.is_loopback(),
            Protocol::Ip6(ip) => ip.is_loopback(),
            _ => false,
        })
    };
    let mut addrs: Vec<&Multiaddr> = listen_addrs.iter().filter(|a| !loopback(a)).collect();
    if addrs.is_empty() {
        addrs = listen_addrs.iter().collect();
    }
    addrs
        .into_iter()
        .map(|a| a.to_string())
        .filter(|a| a.len() <= election::MAX_ADDR_LEN)
        .take(election::MAX_ADDRS)
        .collect()
}

/// An election message, signed as the body of a tracker envelope.
fn sign(msg: &Msg<Key>, key: &Keypair) -> Option<Envelope> {
    let body = msg.encode();
    match Envelope::sign(
        key,
        Draft {
            kind: Kind::Tracker,
            target: TARGET,
            timestamp_ms: now_ms(),
            nonce: rand::random(),
            body: &body,
        },
    ) {
        Ok(env) => Some(env),
        Err(e) => {
            tracing::warn!("cannot sign a tracker message: {e}");
            None
        }
    }
}
