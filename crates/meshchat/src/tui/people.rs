//! Who is who: nicks learnt from messages (the node does not tell nicks of peers), for `/whois`,
//! nick completion and telling apart people who use the same nick.

use std::collections::HashMap;

use meshchat_core::Fingerprint;
use meshchat_node::{Multiaddr, PeerId};

/// Authors remembered at most; past that, new authors are not learnt (their messages still show).
pub const MAX_KNOWN: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub nick: String,
    pub fingerprint: Fingerprint,
    pub last_seen_ms: u64,
}

#[derive(Debug, Default)]
pub struct NickBook {
    by_peer: HashMap<PeerId, Known>,
    /// Lower-cased nick to the peers using it (more than one: a collision).
    by_nick: HashMap<String, Vec<PeerId>>,
}

impl NickBook {
    /// Records that `peer` wrote as `nick` at `ts_ms`.
    pub fn learn(&mut self, peer: PeerId, fingerprint: Fingerprint, nick: &str, ts_ms: u64) {
        if let Some(k) = self.by_peer.get_mut(&peer) {
            k.last_seen_ms = k.last_seen_ms.max(ts_ms);
            if k.nick == nick {
                return;
            }
            let old = std::mem::replace(&mut k.nick, nick.to_owned());
            let key = old.to_lowercase();
            if let Some(peers) = self.by_nick.get_mut(&key) {
                peers.retain(|p| *p != peer);
                if peers.is_empty() {
                    self.by_nick.remove(&key);
                }
            }
        } else {
            if self.by_peer.len() >= MAX_KNOWN {
                return;
            }
            self.by_peer.insert(
                peer,
                Known {
                    nick: nick.to_owned(),
                    fingerprint,
                    last_seen_ms: ts_ms,
                },
            );
        }
        let peers = self.by_nick.entry(nick.to_lowercase()).or_default();
        if !peers.contains(&peer) {
            peers.push(peer);
        }
    }

    /// More than one key writes as `nick` (ignoring case).
    pub fn collides(&self, nick: &str) -> bool {
        if nick.is_ascii() && !nick.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.by_nick.get(nick).is_some_and(|p| p.len() > 1);
        }
        self.by_nick
            .get(&nick.to_lowercase())
            .is_some_and(|p| p.len() > 1)
    }

    pub fn get(&self, peer: &PeerId) -> Option<&Known> {
        self.by_peer.get(peer)
    }

    /// The peers known as `query`: a nick (ignoring case), a fingerprint (or its start, at least
    /// four hex digits, spaces ignored), or a peer id.
    pub fn find(&self, query: &str) -> Vec<(PeerId, &Known)> {
        let mut found: Vec<(PeerId, &Known)> = match self.by_nick.get(&query.to_lowercase()) {
            Some(peers) => peers
                .iter()
                .filter_map(|p| self.by_peer.get(p).map(|k| (*p, k)))
                .collect(),
            None => {
                let hex: String = query.chars().filter(|c| !c.is_whitespace()).collect();
                let hex = hex.to_lowercase();
                let is_hex = hex.len() >= 4 && hex.chars().all(|c| c.is_ascii_hexdigit());
                self.by_peer
                    .iter()
                    .filter(|(p, k)| {
                        p.to_string() == query
                            || (is_hex
                                && k.fingerprint.to_string().replace(' ', "").starts_with(&hex))
                    })
                    .map(|(p, k)| (*p, k))
                    .collect()
            }
        };
        found.sort_by_key(|f| std::cmp::Reverse(f.1.last_seen_ms));
        found
    }

    /// Known nicks starting with `prefix` (ignoring case), most recently active first.
    pub fn nicks_starting_with(&self, prefix: &str, except: &str) -> Vec<String> {
        let prefix = prefix.to_lowercase();
        let mut found: Vec<&Known> = self
            .by_peer
            .values()
            .filter(|k| k.nick.to_lowercase().starts_with(&prefix) && k.nick != except)
            .collect();
        found.sort_by(|a, b| {
            b.last_seen_ms
                .cmp(&a.last_seen_ms)
                .then_with(|| a.nick.cmp(&b.nick))
        });
        let mut nicks: Vec<String> = Vec::new();
        for k in found {
            if !nicks.contains(&k.nick) {
                nicks.push(k.nick.clone());
            }
        }
        nicks
    }
}

/// The meshchat fingerprint of a peer, read from its peer id: an Ed25519 peer id embeds the
/// public key (identity multihash of the protobuf-encoded key: `00 24 08 01 12 20` + 32 bytes).
pub fn fingerprint_of(peer: &PeerId) -> Option<Fingerprint> {
    let bytes = peer.to_bytes();
    let key = bytes.strip_prefix(&[0x00, 0x24, 0x08, 0x01, 0x12, 0x20])?;
    let key: [u8; 32] = key.try_into().ok()?;
    meshchat_core::PublicKey::from_bytes(&key)
        .ok()
        .map(|k| k.fingerprint())
}

/// How a peer is named in notices: `nick (1a2b3c4d)`, or the short fingerprint alone.
pub fn describe(book: &NickBook, peer: &PeerId) -> String {
    let fp = book
        .get(peer)
        .map(|k| k.fingerprint)
        .or_else(|| fingerprint_of(peer));
    match (book.get(peer), fp) {
        (Some(k), Some(fp)) => format!("{} ({})", k.nick, fp.short()),
        (None, Some(fp)) => fp.short(),
        _ => peer.to_string(),
    }
}

/// A connected peer, as the `/peers` panel shows it.
#[derive(Debug, Clone)]
pub struct PeerRow {
    pub peer_id: PeerId,
    pub fingerprint: Option<Fingerprint>,
    pub nick: Option<String>,
    pub addrs: Vec<Multiaddr>,
    /// Subscribed to the mesh: a meshchat peer, not only a libp2p one.
    pub chat: bool,
}

/// One key behind a nick, as the `/whois` panel shows it.
#[derive(Debug, Clone)]
pub struct WhoisRow {
    pub nick: String,
    pub peer_id: PeerId,
    pub fingerprint: Fingerprint,
    pub last_seen_ms: Option<u64>,
    /// Addresses of the open connections, if the peer is connected directly.
    pub addrs: Option<Vec<Multiaddr>>,
    pub own: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> (PeerId, Fingerprint) {
        let k = meshchat_core::Keypair::from_secret_bytes(&[n; 32]);
        (
            meshchat_node::peer_id_of(&k.public()),
            k.public().fingerprint(),
        )
    }

    #[test]
    fn learns_nicks_and_collisions() {
        let mut b = NickBook::default();
        let (a, fa) = key(1);
        let (c, fc) = key(2);
        b.learn(a, fa, "alice", 10);
        assert!(!b.collides("alice"));
        b.learn(c, fc, "Alice", 20);
        assert!(b.collides("alice"));
        assert!(b.collides("ALICE"));
        assert_eq!(b.find("alice").len(), 2);
        assert_eq!(b.find("alice")[0].0, c, "most recent first");
        // Renaming ends the collision.
        b.learn(c, fc, "carol", 30);
        assert!(!b.collides("alice"));
        assert_eq!(b.find("carol")[0].0, c);
        assert_eq!(b.find(&fc.short()[..6])[0].0, c);
        assert_eq!(b.find(&c.to_string())[0].0, c);
        assert_eq!(b.nicks_starting_with("", "carol"), ["alice"]);
        assert_eq!(b.nicks_starting_with("CA", ""), ["carol"]);
    }

    #[test]
    fn fingerprint_from_peer_id() {
        let (p, fp) = key(3);
        assert_eq!(fingerprint_of(&p), Some(fp));
        assert_eq!(describe(&NickBook::default(), &p), fp.short());
    }
}
