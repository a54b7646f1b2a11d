//! Who is who: nicks learnt from messages (the node does not tell nicks of peers), for `/whois`,
//! nick completion and telling apart people whose nicks look the same.

use std::collections::HashMap;

use meshchat_core::room::is_invisible;
use meshchat_core::Fingerprint;
use meshchat_node::{Multiaddr, PeerId};

use super::wrap::sanitize_name;

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
    /// Lower-cased nick to the peers using it, for [`NickBook::find`].
    by_nick: HashMap<String, Vec<PeerId>>,
    /// [`look_alike_key`] of a nick to the peers whose nicks have it (more than one: a
    /// collision, and their messages show fingerprints).
    by_look: HashMap<String, Vec<PeerId>>,
}

impl NickBook {
    /// Records that `peer` wrote as `nick` at `ts_ms`. The nick is kept as shown
    /// ([`sanitize_name`]); a message older than one seen before (history sync brings such) does
    /// not bring back an older nick.
    pub fn learn(&mut self, peer: PeerId, fingerprint: Fingerprint, nick: &str, ts_ms: u64) {
        let nick = &sanitize_name(nick);
        if let Some(k) = self.by_peer.get_mut(&peer) {
            let older = ts_ms < k.last_seen_ms;
            k.last_seen_ms = k.last_seen_ms.max(ts_ms);
            if k.nick == *nick || older {
                return;
            }
            let old = std::mem::replace(&mut k.nick, nick.to_owned());
            forget(&mut self.by_nick, old.to_lowercase(), peer);
            forget(&mut self.by_look, look_alike_key(&old), peer);
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
        for (map, key) in [
            (&mut self.by_nick, nick.to_lowercase()),
            (&mut self.by_look, look_alike_key(nick)),
        ] {
            let peers = map.entry(key).or_default();
            if !peers.contains(&peer) {
                peers.push(peer);
            }
        }
    }

    /// More than one key writes as `nick` or as a nick that looks like it ([`look_alike_key`]).
    pub fn collides(&self, nick: &str) -> bool {
        self.by_look
            .get(&look_alike_key(nick))
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

fn forget(map: &mut HashMap<String, Vec<PeerId>>, key: String, peer: PeerId) {
    if let Some(peers) = map.get_mut(&key) {
        peers.retain(|p| *p != peer);
        if peers.is_empty() {
            map.remove(&key);
        }
    }
}

/// What a nick looks like, as a string two nicks share when a reader could take one for the
/// other:
///
/// 1. invisible characters ([`is_invisible`]: zero-width, bidirectional and other format
///    characters, controls) and U+FFFD (what [`super::wrap::sanitize`] shows for some of them)
///    are dropped, white space is trimmed and runs of it become one space;
/// 2. the Unicode confusable skeleton (UTS #39: `а` Cyrillic → `a`, `0` → `O`, `m` → `rn`),
///    lower-cased, and skeleton and lower case again (so `Mallory` meets `mallory` → `rnallory`);
/// 3. `i` → `l`: the skeleton maps a capital `I` to `l`, so after lower-casing the two letters
///    can no longer be told apart (`ALICE`, `aIice` and `alice` all meet).
///
/// Some nicks that merely look similar meet too (`alice`, `allce`); that costs a fingerprint
/// shown next to them, never a message.
pub fn look_alike_key(nick: &str) -> String {
    use unicode_security::confusable_detection::skeleton;
    let visible: String = nick
        .chars()
        .filter(|&c| !is_invisible(c) && c != '\u{FFFD}')
        .collect();
    let visible = visible.split_whitespace().collect::<Vec<_>>().join(" ");
    let once = skeleton(&visible).collect::<String>().to_lowercase();
    skeleton(&once)
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'i' { 'l' } else { c })
        .collect()
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
    /// What the node knows of reaching them (for direct messages).
    pub reach: Reach,
    pub own: bool,
}

/// Whether a direct message can reach someone, as `/whois` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The node could not say.
    Unknown,
    /// No profile of theirs reached the node: a DM cannot be sealed to them yet.
    NoProfile,
    /// Their profile is here; hops away, if a route to them is known now.
    Hops(Option<u16>),
}

/// For each fingerprint (as shown, spaces or not), the shortest start of its hex digits, at
/// least `min` long, that no other of them shares: what to type to name it.
pub fn distinct_prefixes(fingerprints: &[String], min: usize) -> Vec<String> {
    let hex: Vec<String> = fingerprints
        .iter()
        .map(|f| {
            f.chars()
                .filter(char::is_ascii_hexdigit)
                .collect::<String>()
                .to_ascii_lowercase()
        })
        .collect();
    hex.iter()
        .enumerate()
        .map(|(i, h)| {
            let mut n = min.min(h.len());
            while n < h.len()
                && hex
                    .iter()
                    .enumerate()
                    .any(|(j, o)| j != i && o != h && o.starts_with(&h[..n]))
            {
                n += 1;
            }
            h[..n].to_owned()
        })
        .collect()
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
    fn look_alike_nicks_collide() {
        for (a, b) in [
            ("alice", "ALICE"),
            ("alice", "al\u{200B}ice"),
            ("alice", "ali\u{202E}ce"),
            ("alice", "\u{FEFF}alice\u{2060}"),
            ("alice", "al\u{FFFD}ice"),
            ("alice", " alice "),
            ("alice", "\u{430}lice"),
            ("alice", "aIice"),
            ("alice", "a1ice"),
            ("bob", "b0b"),
            ("bob", "ｂｏｂ"),
            ("mallory", "rnallory"),
            ("Mallory", "mallory"),
            ("Zoë", "Zoe\u{308}"),
            ("al ice", "al  ice"),
        ] {
            assert_eq!(look_alike_key(a), look_alike_key(b), "{a:?} {b:?}");
        }
        for (a, b) in [
            ("alice", "alicia"),
            ("bob", "rob"),
            ("al ice", "alice"),
            ("a", "b"),
        ] {
            assert_ne!(look_alike_key(a), look_alike_key(b), "{a:?} {b:?}");
        }

        let mut b = NickBook::default();
        let (a, fa) = key(1);
        let (m, fm) = key(2);
        b.learn(a, fa, "alice", 10);
        b.learn(m, fm, "al\u{200B}i\u{202E}ce", 20);
        assert!(b.collides("alice"));
        // The interface asks with the nick as it shows it.
        assert!(b.collides("al\u{200B}i\u{FFFD}ce"));
        // Still two people for /whois, by exact nick.
        assert_eq!(b.find("alice").len(), 1);
        b.learn(m, fm, "mallory", 30);
        assert!(!b.collides("alice") && !b.collides("mallory"));
        b.learn(m, fm, "\u{430}lice", 40);
        assert!(b.collides("alice"));
    }

    #[test]
    fn fingerprint_prefixes_tell_keys_apart() {
        let fps = [
            "aaaa bbbb cccc dddd".to_owned(),
            "aaaa bbbb ccc0 0000".to_owned(),
            "1234 5678 9abc def0".to_owned(),
        ];
        assert_eq!(
            distinct_prefixes(&fps, 8),
            ["aaaabbbbcccc", "aaaabbbbccc0", "12345678"]
        );
    }

    #[test]
    fn fingerprint_from_peer_id() {
        let (p, fp) = key(3);
        assert_eq!(fingerprint_of(&p), Some(fp));
        assert_eq!(describe(&NickBook::default(), &p), fp.short());
    }
}
