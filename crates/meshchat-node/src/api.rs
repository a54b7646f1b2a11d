//! The node's views as the typed API ([`meshchat_api`]) that JSON mode and the web UI speak:
//! every conversion from the node's types in one place. [`crate::Handle::call`] carries out an
//! API command with them. (Free functions, not `From` impls: the API's types are another
//! crate's.) Line mode and the TUI keep the node's types and call the typed `Handle` methods.

use meshchat_api as api;
use meshchat_core::clock::notice as clock_text;

use crate::node::{
    Conversation, DmState, DmView, Event, MessageView, NodeInfo, OnlinePeer, PeerInfo, ProfileView,
    RouteView, Stats, TrackerView,
};

/// `ready` and `info`.
pub fn node_info(i: &NodeInfo) -> api::NodeInfo {
    api::NodeInfo {
        peer_id: i.peer_id.to_string(),
        fingerprint: i.fingerprint.to_string(),
        nick: i.nick.clone(),
        listen: i.listen.iter().map(|a| a.to_string()).collect(),
        rooms: i.rooms.clone(),
        reach: reachability(&i.reach),
        web: None,
    }
}

/// `info`'s `reach`, and the `reachability` event.
pub fn reachability(r: &crate::ReachView) -> api::Reachability {
    api::Reachability {
        status: r.reach.as_str().to_owned(),
        addrs: r.addrs.iter().map(|a| a.to_string()).collect(),
        relays: r.relays.iter().map(|p| p.to_string()).collect(),
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
        seq: m.seq,
        private: m.private.map(|k| k.as_str().to_owned()),
    }
}

/// A joined room, for `rooms`.
pub fn room(r: &crate::node::RoomView) -> api::Room {
    api::Room {
        name: r.name.clone(),
        private: r.private.map(|k| k.as_str().to_owned()),
        members: r.members,
    }
}

/// A private room's member, for `members`.
pub fn member(m: &crate::node::MemberView) -> api::Member {
    api::Member {
        peer_id: m.peer_id.to_string(),
        fingerprint: m.fingerprint.to_string(),
        nick: m.nick.clone(),
        admin: m.admin,
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

/// An entry of the `conversations` answer.
pub fn conversation(c: &Conversation) -> api::Conversation {
    api::Conversation {
        peer_id: c.peer.to_string(),
        nick: c.nick.clone(),
        fingerprint: c.fingerprint.to_string(),
        last_ts: c.last_ms,
        count: c.count,
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
        nat: api::NatStats {
            hole_punches: s.nat.hole_punches,
            hole_punch_failures: s.nat.hole_punch_failures,
            reservations_served: s.nat.reservations_served,
            reservations_refused: s.nat.reservations_refused,
            circuits_served: s.nat.circuits_served,
            circuits_refused: s.nat.circuits_refused,
            relayed_closed: s.nat.relayed_closed,
        },
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
        file_bytes_sent: s.file_bytes_sent,
        file_bytes_received: s.file_bytes_received,
        file_bytes_relayed: s.file_bytes_relayed,
        file_frames_dropped: s.file_frames_dropped,
        file_pieces_bad: s.file_pieces_bad,
        private_opened: s.private_opened,
        private_refused: s
            .private_refused
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        tracker_checked: s.tracker_checked,
        tracker_heartbeats: s.tracker_heartbeats,
        tracker_election_msgs: s.tracker_election_msgs,
        tracker_roster_msgs: s.tracker_roster_msgs,
        // What the trees and the transport refused a neighbour (issue 24).
        delivered_pushed: s.trees.delivered_pushed,
        delivered_grafted: s.trees.delivered_grafted,
        delivered_hops: s.trees.delivered_hops,
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
        Event::Reachability(r) => api::Event::Reachability(reachability(r)),
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
        Event::File(e) | Event::Room(e) => e.clone(),
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

#[cfg(test)]
mod tests {
    //! Golden lines: the bytes JSON mode wrote when it built them with `json!` (the key order
    //! is alphabetical, `null`s are written, a received DM has no `state`).

    use super::*;
    use crate::{peer_id_of, PeerId};
    use meshchat_core::{Keypair, MessageId};

    fn key(n: u8) -> Keypair {
        Keypair::from_secret_bytes(&[n; 32])
    }

    fn pid(n: u8) -> PeerId {
        peer_id_of(&key(n).public())
    }

    const P1: &str = "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5";
    const P2: &str = "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq";
    const P3: &str = "12D3KooWRndVhVZPCiQwHBBBdg769GyrPUW13zxwqQyf9r3ANaba";
    const FP2: &str = "6a38 03d5 f059 902a 1c6d afbc 9ba4 7292";

    fn line(e: &Event) -> String {
        event(e).to_line()
    }

    #[test]
    fn events_are_written_as_before() {
        assert_eq!(
            (pid(1).to_string(), pid(2).to_string()),
            (P1.into(), P2.into())
        );
        let m = MessageView {
            id: MessageId([3; 32]),
            room: "lobby".into(),
            author: pid(2),
            fingerprint: key(2).public().fingerprint(),
            nick: "bob\"\n\u{1b}".into(),
            timestamp_ms: 17,
            text: "hi 🚀".into(),
            own: true,
            synced: false,
            seq: 9,
            private: None,
        };
        let id3 = "03".repeat(32);
        assert_eq!(
            line(&Event::Message(m)),
            format!(
                r#"{{"event":"message","fingerprint":"{FP2}","from":"{P2}","id":"{id3}","nick":"bob\"\n\u001b","own":true,"room":"lobby","seq":9,"synced":false,"text":"hi 🚀","ts":17}}"#
            )
        );
        let d = |state: Option<DmState>| DmView {
            id: MessageId([4; 32]),
            peer: pid(3),
            from: pid(2),
            to: pid(3),
            fingerprint: key(2).public().fingerprint(),
            nick: "al".into(),
            timestamp_ms: 5,
            text: "psst".into(),
            own: state.is_some(),
            state,
            seq: 1,
        };
        let id4 = "04".repeat(32);
        assert_eq!(
            line(&Event::Dm(d(None))),
            format!(
                r#"{{"event":"dm","fingerprint":"{FP2}","from":"{P2}","id":"{id4}","nick":"al","own":false,"text":"psst","to":"{P3}","ts":5}}"#
            )
        );
        assert_eq!(
            line(&Event::Dm(d(Some(DmState::Delivered)))),
            format!(
                r#"{{"event":"dm","fingerprint":"{FP2}","from":"{P2}","id":"{id4}","nick":"al","own":true,"state":"delivered","text":"psst","to":"{P3}","ts":5}}"#
            )
        );
        assert_eq!(
            line(&Event::DmStatus {
                id: MessageId([4; 32]),
                to: pid(3),
                state: DmState::Failed
            }),
            format!(r#"{{"event":"dm_status","id":"{id4}","state":"failed","to":"{P3}"}}"#)
        );
        assert_eq!(
            line(&Event::ListenAddr("/ip4/1.2.3.4/tcp/5".parse().unwrap())),
            r#"{"addr":"/ip4/1.2.3.4/tcp/5","event":"listening"}"#
        );
        assert_eq!(
            line(&Event::Warning("w".into())),
            r#"{"event":"warning","message":"w"}"#
        );
        assert_eq!(
            line(&Event::Clock {
                offset_ms: 0,
                authors: 4,
                off: false
            }),
            r#"{"authors":4,"event":"warning","kind":"clock","message":"this computer's clock agrees with its peers' again (4 heard)","off":false,"offset_ms":0}"#
        );
        assert_eq!(
            line(&Event::Lagged { missed: 3 }),
            r#"{"event":"lagged","missed":3}"#
        );
        assert_eq!(
            line(&Event::PeerConnected { peer_id: pid(1) }),
            format!(r#"{{"event":"peer_connected","peer_id":"{P1}"}}"#)
        );
        assert_eq!(
            line(&Event::TrackerChanged {
                tracker: None,
                epoch: 2,
                is_self: false
            }),
            r#"{"epoch":2,"event":"tracker_changed","self":false,"tracker":null}"#
        );
        assert_eq!(
            line(&Event::TrackerChanged {
                tracker: Some(pid(1)),
                epoch: 3,
                is_self: true
            }),
            format!(r#"{{"epoch":3,"event":"tracker_changed","self":true,"tracker":"{P1}"}}"#)
        );
    }

    #[test]
    fn answers_are_written_as_before() {
        let online = |n: u8| OnlinePeer {
            peer_id: pid(n),
            nick: "nn".into(),
            fingerprint: key(n).public().fingerprint(),
            addrs: vec!["/ip4/192.0.2.7/tcp/7447".into()],
            priority: (n != 3).then_some(100),
            is_self: n == 1,
            connected: n == 3,
            hops: (n == 1).then_some(0),
        };
        let fp = |n: u8| key(n).public().fingerprint().to_string();
        let (fp1, fp3) = (fp(1), fp(3));
        let who = api::Event::Who {
            peers: [online(1), online(3)].iter().map(online_peer).collect(),
        };
        assert_eq!(
            who.to_line(),
            format!(
                r#"{{"event":"who","peers":[{{"addrs":["/ip4/192.0.2.7/tcp/7447"],"connected":false,"fingerprint":"{fp1}","hops":0,"nick":"nn","peer_id":"{P1}","priority":100,"self":true}},{{"addrs":["/ip4/192.0.2.7/tcp/7447"],"connected":true,"fingerprint":"{fp3}","hops":null,"nick":"nn","peer_id":"{P3}","priority":null,"self":false}}]}}"#
            )
        );
        let t = TrackerView {
            tracker: Some(pid(1)),
            nick: None,
            epoch: 4,
            priority: Some(3),
            is_self: false,
            registered: true,
            own_priority: None,
            online: 3,
            truncated: true,
        };
        assert_eq!(
            api::Event::Tracker(tracker(&t)).to_line(),
            format!(
                r#"{{"epoch":4,"event":"tracker","nick":null,"online":3,"own_priority":null,"priority":3,"registered":true,"self":false,"tracker":"{P1}","truncated":true}}"#
            )
        );
        let peers = [
            PeerInfo {
                peer_id: pid(1),
                addrs: vec!["/ip4/1.2.3.4/tcp/5".parse().unwrap()],
                chat: true,
                nick: None,
            },
            PeerInfo {
                peer_id: pid(2),
                addrs: vec![],
                chat: false,
                nick: Some("x".into()),
            },
        ];
        assert_eq!(
            api::Event::Peers {
                peers: peers.iter().map(peer).collect()
            }
            .to_line(),
            format!(
                r#"{{"event":"peers","peers":[{{"addrs":["/ip4/1.2.3.4/tcp/5"],"chat":true,"nick":null,"peer_id":"{P1}"}},{{"addrs":[],"chat":false,"nick":"x","peer_id":"{P2}"}}]}}"#
            )
        );
        let routes = [RouteView {
            dest: pid(1),
            next_hop: pid(2),
            hops: 3,
            age_ms: 9,
            nick: None,
        }];
        assert_eq!(
            api::Event::Routes {
                routes: routes.iter().map(route).collect()
            }
            .to_line(),
            format!(
                r#"{{"event":"routes","routes":[{{"age_ms":9,"dest":"{P1}","hops":3,"next_hop":"{P2}","nick":null}}]}}"#
            )
        );
        let profiles = [ProfileView {
            peer_id: pid(1),
            fingerprint: key(1).public().fingerprint(),
            nick: "n".into(),
            version: 4,
            hops: None,
            connected: true,
        }];
        assert_eq!(
            api::Event::Whois {
                who: "n".into(),
                profiles: profiles.iter().map(profile).collect()
            }
            .to_line(),
            format!(
                r#"{{"event":"whois","profiles":[{{"connected":true,"fingerprint":"{fp1}","hops":null,"nick":"n","peer_id":"{P1}","version":4}}],"who":"n"}}"#
            )
        );
    }

    #[test]
    fn stats_are_written_as_before() {
        let mut s = Stats::default();
        let mut n = 0u64;
        let mut next = || {
            n += 1;
            n
        };
        // Every counter a different number, in the order of the old `json!` builder, so a
        // counter written under another's name shows.
        for c in [
            &mut s.accepted,
            &mut s.verified,
            &mut s.duplicates,
            &mut s.stored,
            &mut s.published,
            &mut s.copies_received,
            &mut s.blocked_peers,
            &mut s.relayed_unknown,
            &mut s.broken_links,
            &mut s.silent_links,
            &mut s.evicted_peers,
            &mut s.broadcast_dropped,
            &mut s.store_failures,
            &mut s.synced,
            &mut s.sync_rounds,
            &mut s.sync_envelopes_received,
            &mut s.sync_offers_sent,
            &mut s.sync_bytes_sent,
            &mut s.sync_bytes_received,
            &mut s.sync_strikes,
            &mut s.routes,
            &mut s.route_refused,
            &mut s.profiles_taken,
            &mut s.dm_frames_sent,
            &mut s.dm_flooded_relayed,
            &mut s.dm.delivered,
            &mut s.dm.forwarded,
            &mut s.dm_custody_held,
            &mut s.dm_own_held,
            &mut s.dm.custody_taken,
            &mut s.dm.forged_receipts,
            &mut s.dm.cannot_open,
            &mut s.dm.replays,
            &mut s.dm.refused_total,
            &mut s.dm.refused_bytes,
            &mut s.dm.refused_per_recipient,
            &mut s.dm.refused_per_neighbour,
            &mut s.routing.from_strangers,
            &mut s.tracker_dropped,
            &mut s.tracker_unroutable,
            &mut s.tracker_checked,
            &mut s.tracker_heartbeats,
            &mut s.tracker_election_msgs,
            &mut s.tracker_roster_msgs,
            &mut s.trees.delivered_pushed,
            &mut s.trees.delivered_grafted,
            &mut s.trees.graft_over_budget,
            &mut s.trees.graft_repeats,
            &mut s.trees.ihave_over_rate,
            &mut s.trees.missing_peer_full,
            &mut s.handshakes.evicted,
            &mut s.handshakes.refused,
            &mut s.tracker.elections,
            &mut s.tracker.won,
            &mut s.tracker.stepped_down,
            &mut s.tracker.sent,
            &mut s.tracker.flooded,
            &mut s.tracker.stale,
            &mut s.tracker.outranked,
            &mut s.tracker.forged,
            &mut s.tracker.suspected,
            &mut s.tracker.registrations,
            &mut s.tracker.registrations_refused,
            &mut s.tracker.roster_queries,
            &mut s.tracker.roster_resent,
            &mut s.tracker.roster_full,
            &mut s.tracker.roster_cut,
            &mut s.tracker.known_full,
            &mut s.tracker.reachable_full,
            &mut s.tracker.unexpected,
            &mut s.file_bytes_sent,
            &mut s.file_bytes_received,
            &mut s.file_bytes_relayed,
            &mut s.file_frames_dropped,
            &mut s.file_pieces_bad,
            &mut s.private_opened,
            &mut s.nat.hole_punches,
            &mut s.nat.hole_punch_failures,
            &mut s.nat.reservations_served,
            &mut s.nat.reservations_refused,
            &mut s.nat.circuits_served,
            &mut s.nat.circuits_refused,
            &mut s.nat.relayed_closed,
            &mut s.trees.delivered_hops,
        ] {
            *c = next();
        }
        use meshchat_core::inbound::Reason;
        s.rejected.count(Reason::BadSignature);
        s.rejected.count(Reason::OverRate);
        s.rejected.count(Reason::OverRate);
        s.private_refused.insert("not_admin", 1);
        assert_eq!(
            api::Event::Stats(Box::new(stats(&s))).to_line(),
            r#"{"accepted":1,"blocked_peers":7,"broadcast_dropped":12,"broken_links":9,"copies_received":6,"delivered_grafted":46,"delivered_hops":84,"delivered_pushed":45,"dm_cannot_open":32,"dm_custody_held":28,"dm_custody_taken":30,"dm_delivered":26,"dm_flooded_relayed":25,"dm_forged_receipts":31,"dm_forwarded":27,"dm_frames_sent":24,"dm_own_held":29,"dm_refused":142,"dm_replays":33,"duplicates":3,"event":"stats","evicted_peers":11,"file_bytes_received":72,"file_bytes_relayed":73,"file_bytes_sent":71,"file_frames_dropped":74,"file_pieces_bad":75,"graft_over_budget":47,"graft_repeats":48,"handshakes_evicted":51,"handshakes_refused":52,"ihave_over_rate":49,"missing_peer_full":50,"nat":{"circuits_refused":82,"circuits_served":81,"hole_punch_failures":78,"hole_punches":77,"relayed_closed":83,"reservations_refused":80,"reservations_served":79},"private_opened":76,"private_refused":{"not_admin":1},"profiles_taken":23,"published":5,"rejected":{"bad_signature":1,"over_rate":2},"relayed_unknown":8,"route_refused":22,"routes":21,"routing_from_strangers":38,"silent_links":10,"store_failures":13,"stored":4,"sync_bytes_received":19,"sync_bytes_sent":18,"sync_envelopes_received":16,"sync_offers_sent":17,"sync_rounds":15,"sync_strikes":20,"synced":14,"tracker":{"elections":53,"flooded":57,"forged":60,"known_full":68,"outranked":59,"reachable_full":69,"registrations":62,"registrations_refused":63,"roster_cut":67,"roster_full":66,"roster_queries":64,"roster_resent":65,"sent":56,"stale":58,"stepped_down":55,"suspected":61,"unexpected":70,"won":54},"tracker_checked":41,"tracker_dropped":39,"tracker_election_msgs":43,"tracker_heartbeats":42,"tracker_roster_msgs":44,"tracker_unroutable":40,"verified":2}"#
        );
    }
}
