//! The node's views as the typed API ([`meshchat_api`]) that JSON mode writes: every
//! conversion from `meshchat_node`'s types in one place. (Free functions, not `From` impls:
//! both sides are other crates' types.) Line mode and the TUI keep the node's types.

use meshchat_api as api;
use meshchat_node::{
    DmState, DmView, Event, MessageView, NodeInfo, OnlinePeer, PeerInfo, ProfileView, RouteView,
    Stats, TrackerView,
};

use crate::output::clock_text;

/// `ready` and `info`.
pub fn node_info(i: &NodeInfo) -> api::NodeInfo {
    api::NodeInfo {
        peer_id: i.peer_id.to_string(),
        fingerprint: i.fingerprint.to_string(),
        nick: i.nick.clone(),
        listen: i.listen.iter().map(|a| a.to_string()).collect(),
        rooms: i.rooms.clone(),
    }
}

/// A `message` event, and each entry of `history`.
pub fn message(m: &MessageView) -> api::Message {
    api::Message {
        room: m.room.clone(),
        id: m.id.to_string(),
        from: m.author.to_string(),
        fingerprint: m.fingerprint.to_string(),
        nick: m.nick.clone(),
        ts: m.timestamp_ms,
        text: m.text.clone(),
        own: m.own,
        synced: m.synced,
    }
}

pub fn dm_state(s: DmState) -> api::DmState {
    match s {
        DmState::Queued => api::DmState::Queued,
        DmState::Sent => api::DmState::Sent,
        DmState::Delivered => api::DmState::Delivered,
        DmState::Failed => api::DmState::Failed,
    }
}

/// A `dm` event, and each entry of `dm_history`.
pub fn dm(d: &DmView) -> api::DirectMessage {
    api::DirectMessage {
        id: d.id.to_string(),
        from: d.from.to_string(),
        to: d.to.to_string(),
        fingerprint: d.fingerprint.to_string(),
        nick: d.nick.clone(),
        ts: d.timestamp_ms,
        text: d.text.clone(),
        own: d.own,
        state: d.state.map(dm_state),
    }
}

pub fn peer(p: &PeerInfo) -> api::Peer {
    api::Peer {
        peer_id: p.peer_id.to_string(),
        addrs: p.addrs.iter().map(|a| a.to_string()).collect(),
        chat: p.chat,
        nick: p.nick.clone(),
    }
}

pub fn route(r: &RouteView) -> api::Route {
    api::Route {
        dest: r.dest.to_string(),
        next_hop: r.next_hop.to_string(),
        hops: r.hops.into(),
        age_ms: r.age_ms,
        nick: r.nick.clone(),
    }
}

pub fn profile(p: &ProfileView) -> api::Profile {
    api::Profile {
        peer_id: p.peer_id.to_string(),
        fingerprint: p.fingerprint.to_string(),
        nick: p.nick.clone(),
        version: p.version,
        hops: p.hops.map(u32::from),
        connected: p.connected,
    }
}

/// An entry of the `who` answer.
pub fn online_peer(p: &OnlinePeer) -> api::OnlinePeer {
    api::OnlinePeer {
        peer_id: p.peer_id.to_string(),
        nick: p.nick.clone(),
        fingerprint: p.fingerprint.to_string(),
        addrs: p.addrs.clone(),
        priority: p.priority,
        is_self: p.is_self,
        connected: p.connected,
        hops: p.hops.map(u32::from),
    }
}

pub fn tracker(t: &TrackerView) -> api::Tracker {
    api::Tracker {
        tracker: t.tracker.map(|p| p.to_string()),
        nick: t.nick.clone(),
        epoch: t.epoch,
        is_self: t.is_self,
        priority: t.priority,
        registered: t.registered,
        own_priority: t.own_priority,
        online: t.online as u64,
        truncated: t.truncated,
    }
}

/// The `stats` answer: the node's counters, flat (the election's under `tracker`).
pub fn stats(s: &Stats) -> api::Stats {
    let e = &s.tracker;
    api::Stats {
        accepted: s.accepted,
        verified: s.verified,
        duplicates: s.duplicates,
        rejected: s
            .rejected
            .nonzero()
            .map(|(r, n)| (r.as_str().to_owned(), n))
            .collect(),
        stored: s.stored,
        published: s.published,
        copies_received: s.copies_received,
        blocked_peers: s.blocked_peers,
        relayed_unknown: s.relayed_unknown,
        broken_links: s.broken_links,
        silent_links: s.silent_links,
        evicted_peers: s.evicted_peers,
        broadcast_dropped: s.broadcast_dropped,
        store_failures: s.store_failures,
        synced: s.synced,
        sync_rounds: s.sync_rounds,
        sync_envelopes_received: s.sync_envelopes_received,
        sync_offers_sent: s.sync_offers_sent,
        sync_bytes_sent: s.sync_bytes_sent,
        sync_bytes_received: s.sync_bytes_received,
        sync_strikes: s.sync_strikes,
        routes: s.routes,
        route_refused: s.route_refused,
        profiles_taken: s.profiles_taken,
        dm_frames_sent: s.dm_frames_sent,
        dm_flooded_relayed: s.dm_flooded_relayed,
        dm_delivered: s.dm.delivered,
        dm_forwarded: s.dm.forwarded,
        dm_custody_held: s.dm_custody_held,
        dm_own_held: s.dm_own_held,
        dm_custody_taken: s.dm.custody_taken,
        dm_forged_receipts: s.dm.forged_receipts,
        dm_cannot_open: s.dm.cannot_open,
        dm_replays: s.dm.replays,
        dm_refused: s.dm.refused_total
            + s.dm.refused_bytes
            + s.dm.refused_per_recipient
            + s.dm.refused_per_neighbour,
        routing_from_strangers: s.routing.from_strangers,
        tracker: api::ElectionStats {
            elections: e.elections,
            won: e.won,
            stepped_down: e.stepped_down,
            sent: e.sent,
            flooded: e.flooded,
            stale: e.stale,
            outranked: e.outranked,
            forged: e.forged,
            suspected: e.suspected,
            registrations: e.registrations,
            registrations_refused: e.registrations_refused,
            roster_queries: e.roster_queries,
            roster_resent: e.roster_resent,
            roster_full: e.roster_full,
            roster_cut: e.roster_cut,
            known_full: e.known_full,
            reachable_full: e.reachable_full,
            unexpected: e.unexpected,
        },
        tracker_dropped: s.tracker_dropped,
        tracker_unroutable: s.tracker_unroutable,
        tracker_checked: s.tracker_checked,
        tracker_heartbeats: s.tracker_heartbeats,
        tracker_election_msgs: s.tracker_election_msgs,
        tracker_roster_msgs: s.tracker_roster_msgs,
        // What the trees and the transport refused a neighbour (issue 24).
        delivered_pushed: s.trees.delivered_pushed,
        delivered_grafted: s.trees.delivered_grafted,
        graft_over_budget: s.trees.graft_over_budget,
        graft_repeats: s.trees.graft_repeats,
        ihave_over_rate: s.trees.ihave_over_rate,
        missing_peer_full: s.trees.missing_peer_full,
        handshakes_evicted: s.handshakes.evicted,
        handshakes_refused: s.handshakes.refused,
    }
}

/// The line of a node event.
pub fn event(event: &Event) -> api::Event {
    match event {
        Event::Message(m) => api::Event::Message(message(m)),
        Event::PeerConnected { peer_id } => api::Event::PeerConnected {
            peer_id: peer_id.to_string(),
        },
        Event::PeerDisconnected { peer_id } => api::Event::PeerDisconnected {
            peer_id: peer_id.to_string(),
        },
        Event::ListenAddr(addr) => api::Event::Listening {
            addr: addr.to_string(),
        },
        Event::Warning(message) => api::Event::Warning(api::Warning {
            message: message.clone(),
            kind: None,
        }),
        Event::Clock {
            offset_ms,
            authors,
            off,
        } => api::Event::Warning(api::Warning {
            message: clock_text(*offset_ms, *authors, *off),
            kind: Some(api::WarningKind::Clock {
                offset_ms: *offset_ms,
                authors: *authors as u64,
                off: *off,
            }),
        }),
        Event::Lagged { missed } => api::Event::Lagged { missed: *missed },
        Event::Dm(d) => api::Event::Dm(dm(d)),
        Event::DmStatus { id, to, state } => api::Event::DmStatus {
            id: id.to_string(),
            to: to.to_string(),
            state: dm_state(*state),
        },
        Event::TrackerChanged {
            tracker,
            epoch,
            is_self,
        } => api::Event::TrackerChanged {
            tracker: tracker.map(|t| t.to_string()),
            epoch: *epoch,
            is_self: *is_self,
        },
    }
}

/// An `error` line.
pub fn error(message: impl Into<String>) -> api::Event {
    api::Event::Error {
        message: message.into(),
    }
}
