//! Connections: dialing and redialing peers, keeping connection slots for peers that are useful
//! (evicting the least useful peer when every slot is taken), and replacing connections whose
//! broadcast stream stalls.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};

use super::{dial_error_reason, Actor, MAX_PENDING_DIALS, START_DIALS};
use crate::node::{Error, Event, PeerInfo, Reply};

/// A connection none of whose pings has come back for this long is closed (pings go every
/// [`crate::behaviour::PING_INTERVAL`]; see [`Actor::check_liveness`]).
pub(super) const SILENCE_LIMIT: Duration = Duration::from_secs(8);
/// How often connections are checked for silence.
pub(super) const LIVENESS_CHECK: Duration = Duration::from_secs(1);

/// What the eviction policy knows of a connected peer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate<P> {
    pub peer: P,
    /// When it last handed over a new valid message, or connected.
    pub useful: Instant,
    /// We dialed it (a peer we chose: configured, known, found on the LAN or by the DHT).
    pub dialed: bool,
    /// Found by mDNS on our LAN.
    pub lan: bool,
}

/// The peer to close when every slot is taken: never one we dialed or found on the LAN, and never
/// the newcomer; of the rest, the one that has been useless longest. A flood of throwaway
/// identities that connect and then idle is evicted first; a neighbour that relays messages keeps
/// its slot. `None`: nobody can be evicted, so the newcomer is refused instead.
pub(super) fn choose_victim<P: Copy + Eq + Hash>(
    newcomer: P,
    peers: impl IntoIterator<Item = Candidate<P>>,
) -> Option<P> {
    peers
        .into_iter()
        .filter(|c| c.peer != newcomer && !c.dialed && !c.lan)
        .min_by_key(|c| c.useful)
        .map(|c| c.peer)
}

impl Actor {
    /// Over the connection limit (the hard limit in `connection_limits` leaves some room above
    /// it), closes the least useful peer, or the newcomer if nobody may be evicted.
    pub(super) fn evict_if_full(&mut self, newcomer: PeerId) {
        // Peers already being closed still hold their connections until the close completes:
        // they neither count nor are chosen again.
        let open: usize = self
            .connections
            .iter()
            .filter(|(p, _)| !self.evicting.contains(*p))
            .map(|(_, c)| c.len())
            .sum();
        if open <= self.config.max_connections as usize {
            return;
        }
        let now = Instant::now();
        let candidates = self
            .connections
            .iter()
            .filter(|(p, _)| !self.evicting.contains(*p))
            .map(|(p, conns)| Candidate {
                peer: *p,
                useful: self.useful.get(p).copied().unwrap_or(now),
                dialed: conns.iter().any(|(_, _, dialed)| *dialed),
                lan: self.lan_peers.contains_key(p),
            });
        let victim = choose_victim(newcomer, candidates).unwrap_or(newcomer);
        tracing::debug!(%victim, open, "every connection slot is taken: closing the least useful");
        self.stats.evicted_peers += 1;
        self.evicting.insert(victim);
        let _ = self.swarm.disconnect_peer_id(victim);
    }

    /// `peer` has taken no broadcast frames for a while (its send queue stayed full): it takes
    /// messages slower than we hand them over, or not at all. A stream the peer dropped without a
    /// reset looks exactly like this forever (our writes wait for flow-control credit that never
    /// comes), so the link is closed and dialed again, which also frees the queued frames.
    ///
    /// Counted in `broken_links`; the user is warned at most once a minute per peer, and the
    /// peer is dialed again once its connections are gone (at addresses we dialed it at, else
    /// at those it announced).
    pub(super) fn on_stalled(&mut self, peer: PeerId) {
        tracing::warn!(%peer, "this peer has taken no messages for seconds: reconnecting");
        self.stats.broken_links += 1;
        let mut addrs: Vec<Multiaddr> = self
            .connections
            .get(&peer)
            .into_iter()
            .flatten()
            .filter(|(_, _, dialed)| *dialed)
            .map(|(_, a, _)| a.clone())
            .collect();
        if addrs.is_empty() {
            addrs = self.announced_addrs(&peer);
        }
        // One warning per peer and minute at most reaches the user (a hostile peer could make
        // its own link stall on purpose, again and again).
        let now = Instant::now();
        let recent = self
            .failure_warned
            .get(&peer)
            .is_some_and(|t| now.saturating_duration_since(*t).as_secs() < 60);
        if !recent {
            bounded_insert(&mut self.failure_warned, peer, now, 256);
            self.emit(Event::Warning(format!(
                "the link to peer {peer} stopped carrying messages; reconnecting"
            )));
        }
        if !addrs.is_empty() && self.redial.len() < 256 {
            self.redial.insert(peer, addrs);
        }
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    /// A ping that came back keeps its connection alive (see [`Actor::check_liveness`]). One
    /// that failed means the link under this connection is gone (or too slow to chat over): the
    /// connection is closed, so the peer is redialed (known peers, LAN peers) and a new
    /// connection forms when the link is back. A peer that does not speak ping is left alone.
    pub(super) fn on_ping(&mut self, event: libp2p::ping::Event) {
        match event.result {
            Ok(_) => {
                if let Some((_, at)) = self.pongs.get_mut(&event.connection) {
                    *at = Instant::now();
                }
            }
            Err(libp2p::ping::Failure::Unsupported) => {
                self.pongs.remove(&event.connection);
            }
            Err(e) => {
                tracing::info!(peer = %event.peer, "ping failed ({e}): closing the connection");
                self.pongs.remove(&event.connection);
                self.swarm.close_connection(event.connection);
            }
        }
    }

    /// Closes the connections whose pings have not come back for [`SILENCE_LIMIT`]: a link that
    /// died without a word (a host that lost power, a cable pulled, a radio out of range) sends
    /// neither a FIN nor a reset, and TCP would try for minutes.
    ///
    /// libp2p-ping reports only a connection's second failure in a row (the first is "free"), so
    /// with its 10 s timeout a dead link took up to 2 x (5 + 10) = 30 s to be noticed (the lab's
    /// routing benchmark measured 29 s). Watching for answers instead: pings go every 2 s, so a
    /// live link answers several times within the limit, and a dead one is closed 8-9 s after
    /// its last answer.
    pub(super) fn check_liveness(&mut self) {
        let now = Instant::now();
        let silent: Vec<(ConnectionId, PeerId)> = self
            .pongs
            .iter()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) >= SILENCE_LIMIT)
            .map(|(conn, (peer, _))| (*conn, *peer))
            .collect();
        for (conn, peer) in silent {
            tracing::info!(
                %peer,
                "no ping came back for {} s: closing the connection",
                SILENCE_LIMIT.as_secs()
            );
            self.pongs.remove(&conn);
            self.stats.silent_links += 1;
            self.swarm.close_connection(conn);
        }
    }

    /// Everyone connected now, sorted by peer id, with the addresses of their connections.
    pub(super) fn peers(&self) -> Vec<PeerInfo> {
        let mut peers: Vec<PeerInfo> = self
            .connections
            .iter()
            .map(|(p, conns)| PeerInfo {
                peer_id: *p,
                addrs: conns.iter().map(|(_, a, _)| a.clone()).collect(),
                chat: self.chat_peers.contains(p),
                nick: self.nick_of(p),
            })
            .collect();
        peers.sort_by_key(|p| p.peer_id.to_string());
        peers
    }

    /// The addresses `peer` announced (identify), from the known-peer table.
    fn announced_addrs(&self, peer: &PeerId) -> Vec<Multiaddr> {
        let id = peer.to_string();
        match self.store.known_peers(256) {
            Ok(known) => known
                .into_iter()
                .filter(|k| k.peer_id == id)
                .flat_map(|k| k.addrs)
                .filter_map(|a| a.parse().ok())
                .collect(),
            Err(e) => {
                tracing::warn!("reading known peers: {e}");
                Vec::new()
            }
        }
    }
}

impl Actor {
    /// Drops a closed connection; true if that was the peer's last and it had been announced.
    pub(super) fn forget_connection(&mut self, peer: PeerId, conn: ConnectionId) -> bool {
        self.pongs.remove(&conn);
        if let Some(conns) = self.connections.get_mut(&peer) {
            conns.retain(|(c, _, _)| *c != conn);
            if conns.is_empty() {
                self.connections.remove(&peer);
                self.useful.remove(&peer);
                self.evicting.remove(&peer);
                self.sync_forget(&peer);
                self.guard.forget_rate(&peer);
                if let Some(addrs) = self.redial.remove(&peer) {
                    self.dial_peer(peer, addrs);
                }
                return self.chat_peers.remove(&peer);
            }
        }
        false
    }

    pub(super) fn dial_addr(&mut self, addr: Multiaddr, reply: Option<Reply<PeerId>>) {
        let peer = addr.iter().find_map(|p| match p {
            Protocol::P2p(id) => Some(id),
            _ => None,
        });
        if peer == Some(*self.swarm.local_peer_id()) {
            if let Some(reply) = reply {
                let _ = reply.send(Err(Error::Dial {
                    addr: addr.to_string(),
                    reason: "that is this node's own address".into(),
                }));
            }
            return;
        }
        let opts = match peer {
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::Always)
                .allocate_new_port()
                .build(),
            None => DialOpts::unknown_peer_id()
                .address(addr.clone())
                .allocate_new_port()
                .build(),
        };
        let conn = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                if let Some(reply) = reply {
                    if self.pending_dials.len() >= MAX_PENDING_DIALS {
                        // Answer the oldest waiting call rather than grow without bound.
                        if let Some(k) = self.pending_dials.keys().next().copied() {
                            if let Some((a, r)) = self.pending_dials.remove(&k) {
                                let _ = r.send(Err(Error::Dial {
                                    addr: a.to_string(),
                                    reason: "too many connection attempts at once".into(),
                                }));
                            }
                        }
                    }
                    self.pending_dials.insert(conn, (addr, reply));
                }
            }
            Err(e) => {
                tracing::debug!(%addr, "dial refused: {e}");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(Error::Dial {
                        addr: addr.to_string(),
                        reason: dial_error_reason(&e),
                    }));
                }
            }
        }
    }

    pub(super) fn add_dht_address(&mut self, peer: &PeerId, addr: Multiaddr) {
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            kad.add_address(peer, addr);
        }
    }

    pub(super) fn dial_peer(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id() || self.connections.contains_key(&peer) {
            return;
        }
        // A fresh source port, not the listening one: when two nodes dial each other at the same
        // instant (both just heard the same mDNS exchange), dials from both listening ports would
        // meet as one TCP simultaneous open, which fails the Noise handshake on both sides.
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .allocate_new_port()
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, "dial refused: {e}");
        }
    }

    /// Keeps the node connected: below the target, dial LAN and known peers we are not
    /// connected to.
    pub(super) fn maintain(&mut self) {
        let now = Instant::now();
        self.seen.expire(now);
        for peer in self.guard.expire(now) {
            tracing::info!(%peer, "block lifted");
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
        self.sync_maintain();
        self.dial_trackers();
        if self.connections.len() >= self.config.target_peers {
            return;
        }
        let lan: Vec<(PeerId, Vec<Multiaddr>)> = self
            .lan_peers
            .iter()
            .filter(|(p, _)| !self.connections.contains_key(p))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        for (peer, addrs) in lan {
            self.dial_peer(peer, addrs);
        }
        let known = match self.store.known_peers(START_DIALS) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("reading known peers: {e}");
                return;
            }
        };
        for peer in known {
            let Ok(peer_id) = peer.peer_id.parse::<PeerId>() else {
                continue;
            };
            let addrs = peer.addrs.iter().filter_map(|a| a.parse().ok()).collect();
            self.dial_peer(peer_id, addrs);
        }
    }
}

/// Inserts into a map kept under `max` entries by dropping the oldest value.
fn bounded_insert<K: Copy + Eq + Hash>(
    map: &mut HashMap<K, Instant>,
    k: K,
    v: Instant,
    max: usize,
) {
    if map.len() >= max && !map.contains_key(&k) {
        if let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
            map.remove(&oldest);
        }
    }
    map.insert(k, v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_idle_stranger_goes_first() {
        let t0 = Instant::now();
        let c = |peer: u32, secs: u64, dialed: bool, lan: bool| Candidate {
            peer,
            useful: t0 + Duration::from_secs(secs),
            dialed,
            lan,
        };
        let peers = [
            c(1, 0, true, false),   // dialed long ago: kept
            c(2, 1, false, true),   // on the LAN: kept
            c(3, 50, false, false), // relayed a message at 50 s
            c(4, 10, false, false), // idle since it connected at 10 s
            c(5, 60, false, false), // the newcomer
        ];
        assert_eq!(choose_victim(5, peers), Some(4));
        assert_eq!(choose_victim(5, [peers[0], peers[1], peers[4]]), None);
    }
}
