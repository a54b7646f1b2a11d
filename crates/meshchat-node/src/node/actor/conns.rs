//! Keeping connection slots for peers that are useful: evicting the least useful peer when every
//! slot is taken, and replacing connections whose gossip streams keep failing.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use super::Actor;
use crate::node::Event;

/// Heartbeats in a row with a full send queue after which a link counts as stalled.
const STALL_HEARTBEATS: u32 = 3;
/// A longer pause between slow-peer reports starts the count again.
const STALL_GAP: std::time::Duration = std::time::Duration::from_millis(2500);

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

    /// The watchdog closed a connection whose gossip streams kept failing: count it, say so, and
    /// dial the peer again once the connection is gone (at an address we dialed it at, else at
    /// the addresses it announced), so the link comes back whole.
    pub(super) fn on_streams_failing(&mut self, peer: PeerId, connection: ConnectionId) {
        tracing::warn!(%peer, "gossip streams to this peer kept failing: reconnecting");
        self.replace_link(peer, Some(connection));
    }

    /// Gossipsub reports, at a heartbeat, a peer whose send queue was full: it takes messages
    /// slower than we hand them over, or not at all. A peer whose gossip stream died without a
    /// reset (yamux sends none for a stream the other side dropped) looks exactly like this
    /// forever: our writes wait for flow-control credit that never comes and the queue stays
    /// full. [`STALL_HEARTBEATS`] reports in a row mean the link is stalled: it is closed and
    /// dialed again, which also frees the queued messages (up to the queue length per peer).
    pub(super) fn on_slow_peer(&mut self, peer: PeerId) {
        let now = Instant::now();
        let entry = self.slow.entry(peer).or_insert((0, now));
        // Reports come once a heartbeat (1 s) while the queue stays full; a gap starts over.
        if now.saturating_duration_since(entry.1) > STALL_GAP {
            *entry = (0, now);
        }
        entry.0 += 1;
        entry.1 = now;
        if entry.0 < STALL_HEARTBEATS {
            return;
        }
        self.slow.remove(&peer);
        tracing::warn!(%peer, "this peer has taken no messages for {STALL_HEARTBEATS} heartbeats: reconnecting");
        self.replace_link(peer, None);
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    /// A ping that timed out or failed means the link under this connection is gone (or too
    /// slow to chat over): the connection is closed, so the peer is redialed (known peers, LAN
    /// peers) and a new connection forms when the link is back. A peer that does not speak ping
    /// is left alone.
    pub(super) fn on_ping(&mut self, event: libp2p::ping::Event) {
        match event.result {
            Ok(_) | Err(libp2p::ping::Failure::Unsupported) => {}
            Err(e) => {
                tracing::info!(peer = %event.peer, "ping failed ({e}): closing the connection");
                self.swarm.close_connection(event.connection);
            }
        }
    }

    /// Counts and reports a broken link to `peer` (one connection, or all) and arranges a redial
    /// once it is closed.
    fn replace_link(&mut self, peer: PeerId, connection: Option<ConnectionId>) {
        self.stats.broken_links += 1;
        let mut addrs: Vec<Multiaddr> = self
            .connections
            .get(&peer)
            .into_iter()
            .flatten()
            .filter(|(c, _, dialed)| connection.is_none_or(|x| x == *c) && *dialed)
            .map(|(_, a, _)| a.clone())
            .collect();
        if addrs.is_empty() {
            addrs = self.announced_addrs(&peer);
        }
        // One warning per peer and minute at most reaches the user (a hostile peer could make
        // its own connection fail on purpose, again and again).
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
