//! The check of an envelope a neighbour handed over, and the reasons a node refuses one.
//!
//! Every node runs exactly this check before it relays, so what it refuses for a [`Reason`] that
//! [`Reason::is_strike`] never comes from an honest relay: the node counts a strike against the
//! neighbour (see [`crate::guard`]). Receivers apply the senders' rules: a room message whose
//! target is not a room name, or whose body is not a room text, is refused and never relayed, so
//! an envelope no node can show does not travel the mesh.

use crate::envelope::{self, Kind};
use crate::identity::KeyCache;
use crate::room::{self, Text};
use crate::transfer::wire::Offer;
use crate::Envelope;

/// Why a message from a neighbour was refused (or dropped unchecked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Larger than the largest envelope.
    TooLarge,
    /// Not an envelope, or not a valid body for its kind.
    Malformed,
    /// The author's key or signature does not verify.
    BadSignature,
    /// A room message whose target is not a room name: no node could show it.
    BadTarget,
    /// Dated more than the allowed clock skew ahead of our clock.
    FromFuture,
    /// A version this node is too old to read, from a plausibly newer node.
    NewerVersion,
    /// The neighbour is blocked: dropped without a check.
    BlockedPeer,
    /// The neighbour is over its message rate: dropped without a check.
    OverRate,
    /// The neighbour's grafts asked for more than its byte budget (`broadcast::Config::graft_bytes`).
    OverBudget,
    /// The author is over its rate (`authors::Limits::per_author`): dropped without a check.
    AuthorOverRate,
    /// A new author, and the neighbour introduced too many lately
    /// (`authors::Limits::new_authors`): dropped without a check.
    NewAuthorOverRate,
    /// A tracker envelope signed longer ago than `election::MAX_AGE`.
    Stale,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::TooLarge,
        Reason::Malformed,
        Reason::BadSignature,
        Reason::BadTarget,
        Reason::FromFuture,
        Reason::NewerVersion,
        Reason::BlockedPeer,
        Reason::OverRate,
        Reason::OverBudget,
        Reason::AuthorOverRate,
        Reason::NewAuthorOverRate,
        Reason::Stale,
    ];

    /// The name used in stats and the JSON interface.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::Malformed => "malformed",
            Reason::BadSignature => "bad_signature",
            Reason::BadTarget => "bad_target",
            Reason::FromFuture => "from_future",
            Reason::NewerVersion => "newer_version",
            Reason::BlockedPeer => "blocked_peer",
            Reason::OverRate => "over_rate",
            Reason::OverBudget => "over_budget",
            Reason::AuthorOverRate => "author_over_rate",
            Reason::NewAuthorOverRate => "new_author_over_rate",
            Reason::Stale => "stale",
        }
    }

    /// Whether the refusal proves the neighbour misbehaves. A timestamp ahead of our clock (the
    /// relay's clock may be ahead too), a stale one (the relay's clock may be behind) and a
    /// newer version can come from an honest relay; the drops for a block or a rate are not the
    /// message's fault (honest relays apply the same rates, on other clocks). Grafts beyond the
    /// byte budget are the neighbour's own doing.
    pub fn is_strike(self) -> bool {
        matches!(
            self,
            Reason::TooLarge
                | Reason::Malformed
                | Reason::BadSignature
                | Reason::BadTarget
                | Reason::OverBudget
        )
    }
}

/// Refusals counted by reason: fixed fields, so counting one allocates nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    pub too_large: u64,
    pub malformed: u64,
    pub bad_signature: u64,
    pub bad_target: u64,
    pub from_future: u64,
    pub newer_version: u64,
    pub blocked_peer: u64,
    pub over_rate: u64,
    pub over_budget: u64,
    pub author_over_rate: u64,
    pub new_author_over_rate: u64,
    pub stale: u64,
}

impl Rejected {
    fn slot(&mut self, r: Reason) -> &mut u64 {
        match r {
            Reason::TooLarge => &mut self.too_large,
            Reason::Malformed => &mut self.malformed,
            Reason::BadSignature => &mut self.bad_signature,
            Reason::BadTarget => &mut self.bad_target,
            Reason::FromFuture => &mut self.from_future,
            Reason::NewerVersion => &mut self.newer_version,
            Reason::BlockedPeer => &mut self.blocked_peer,
            Reason::OverRate => &mut self.over_rate,
            Reason::OverBudget => &mut self.over_budget,
            Reason::AuthorOverRate => &mut self.author_over_rate,
            Reason::NewAuthorOverRate => &mut self.new_author_over_rate,
            Reason::Stale => &mut self.stale,
        }
    }

    pub fn count(&mut self, r: Reason) {
        *self.slot(r) += 1;
    }

    pub fn get(&self, r: Reason) -> u64 {
        let mut copy = *self;
        *copy.slot(r)
    }

    /// All refusals, whatever the reason.
    pub fn total(&self) -> u64 {
        Reason::ALL.iter().map(|r| self.get(*r)).sum()
    }

    /// The reasons counted at least once, with their counts.
    pub fn nonzero(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL
            .into_iter()
            .map(|r| (r, self.get(r)))
            .filter(|(_, n)| *n > 0)
    }
}

/// What a checked envelope is.
#[derive(Debug, Clone)]
pub enum Checked {
    /// A room text, or a file offer in a room (its [`Text`] is how it reads in the history:
    /// [`Offer::as_text`]): relay it; store it; show it where the room is joined.
    Room(Envelope, Text),
    /// A profile (nick, DM seal key): relay it; keep it if it is the author's newest.
    Profile(Envelope, crate::dm::Profile),
    /// A tracker election or roster message (target `tracker`, a body that decodes, not stale):
    /// relay it, hand its body to the election; not stored.
    Tracker(Envelope),
    /// A private room's message or operation (PROTOCOL §10): relay it, store it and sync it
    /// like a room message; only members open it.
    Private(Envelope),
    /// A kind this version does not know, with a valid signature: a newer node's. Relayed so the
    /// mesh carries it to the nodes that can read it; not stored or shown here.
    Other(Envelope),
}

impl Checked {
    /// The checked envelope, whatever its kind.
    pub fn envelope(&self) -> &Envelope {
        match self {
            Checked::Room(env, _)
            | Checked::Profile(env, _)
            | Checked::Tracker(env)
            | Checked::Private(env)
            | Checked::Other(env) => env,
        }
    }
}

/// Why [`check`] refused an envelope; [`Refused::reason`] is what is counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Envelope(#[from] envelope::Error),
    #[error("envelope version {0} is newer than this node reads")]
    NewerVersion(u8),
    #[error("room text body: {0}")]
    Body(#[source] room::Error),
    #[error("target is not a room name")]
    BadTarget,
    #[error("profile: {0}")]
    Profile(#[source] crate::dm::Error),
    /// A DM envelope outside its seal: DMs travel sealed on `/meshchat/route/1` (or flooded in
    /// a sealed frame), so no honest node puts one in the clear on the broadcast path.
    #[error("a direct message in the clear")]
    Unsealed,
    #[error("tracker body: {0}")]
    Tracker(#[source] crate::election::Error),
    #[error("file offer: {0}")]
    File(#[source] crate::transfer::Error),
    #[error("tracker message signed more than {} s ago", crate::election::MAX_AGE.as_secs())]
    Stale,
    #[error("private room envelope too short to be sealed")]
    Private,
}

impl Refused {
    /// Whether the signature was checked before the refusal (for the count of checks done).
    pub fn signature_checked(&self) -> bool {
        matches!(
            self,
            Refused::Envelope(envelope::Error::BadSignature)
                | Refused::Body(_)
                | Refused::BadTarget
                | Refused::Profile(_)
                | Refused::Unsealed
                | Refused::Tracker(_)
                | Refused::File(_)
                | Refused::Private
        )
    }

    pub fn reason(&self) -> Reason {
        use envelope::Error as E;
        match self {
            Refused::Envelope(E::TooLarge(_)) => Reason::TooLarge,
            Refused::Envelope(E::BadSignature | E::BadAuthor) => Reason::BadSignature,
            Refused::Envelope(E::FromFuture(_)) => Reason::FromFuture,
            Refused::Envelope(_)
            | Refused::Body(_)
            | Refused::Profile(_)
            | Refused::Unsealed
            | Refused::Tracker(_)
            | Refused::File(_)
            | Refused::Private => Reason::Malformed,
            Refused::Stale => Reason::Stale,
            Refused::NewerVersion(_) => Reason::NewerVersion,
            Refused::BadTarget => Reason::BadTarget,
        }
    }
}

/// Checks an envelope from the network, cheapest first: size, structure, timestamp, signature
/// (author keys through `keys`), then what its kind requires (a room name as target, a room-text
/// body). `now_ms` is our clock.
pub fn check(bytes: Vec<u8>, now_ms: u64, keys: &mut KeyCache) -> Result<Checked, Refused> {
    let newer = match bytes.first() {
        Some(&v) if v != envelope::VERSION => {
            envelope::looks_like_newer_version(&bytes).then_some(v)
        }
        _ => None,
    };
    let env = match Envelope::open_cached(bytes, now_ms, keys) {
        Ok(env) => env,
        Err(envelope::Error::BadVersion(v)) if newer == Some(v) => {
            return Err(Refused::NewerVersion(v))
        }
        Err(e) => return Err(e.into()),
    };
    match env.kind() {
        Kind::RoomText => {
            if !room::is_room_name(env.target()) {
                return Err(Refused::BadTarget);
            }
            let text = Text::decode(env.body()).map_err(Refused::Body)?;
            Ok(Checked::Room(env, text))
        }
        Kind::Profile => {
            let profile = crate::dm::Profile::from_envelope(&env).map_err(Refused::Profile)?;
            Ok(Checked::Profile(env, profile))
        }
        Kind::File => {
            if !room::is_room_name(env.target()) {
                return Err(Refused::BadTarget);
            }
            let offer = Offer::decode(env.body()).map_err(Refused::File)?;
            // A room offer's pieces travel in the clear: a key in it would be no secret.
            if offer.key.is_some() {
                return Err(Refused::File(crate::transfer::Error::Malformed(
                    "a key in a room offer",
                )));
            }
            let text = offer.as_text();
            Ok(Checked::Room(env, text))
        }
        Kind::Direct | Kind::Invite => Err(Refused::Unsealed),
        Kind::Sealed | Kind::Op => {
            // Relays cannot open it: what they can check is the target and that the body is
            // long enough to be sealed (PROTOCOL §10); members check the rest.
            if !crate::private::is_target(env.target()) {
                return Err(Refused::BadTarget);
            }
            if env.body().len() < crate::private::MIN_BODY_LEN {
                return Err(Refused::Private);
            }
            Ok(Checked::Private(env))
        }
        Kind::Tracker => {
            // Checked here, before relay, so a refused one travels no further (issue 24: they
            // were counted as dropped and relayed on).
            if env.target() != crate::election::TARGET {
                return Err(Refused::BadTarget);
            }
            crate::election::Msg::<[u8; 32]>::decode(env.body()).map_err(Refused::Tracker)?;
            let max_age = crate::election::MAX_AGE.as_millis() as u64;
            if env.timestamp_ms().saturating_add(max_age) < now_ms {
                return Err(Refused::Stale);
            }
            Ok(Checked::Tracker(env))
        }
        Kind::Other(_) => Ok(Checked::Other(env)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Draft;
    use crate::Keypair;
    use proptest::prelude::*;

    const NOW: u64 = 1_700_000_000_000;

    fn signed(kind: Kind, target: &str, body: &[u8]) -> Vec<u8> {
        let key = Keypair::from_secret_bytes(&[5; 32]);
        Envelope::sign(
            &key,
            Draft {
                kind,
                target,
                timestamp_ms: NOW,
                nonce: 3,
                body,
            },
        )
        .unwrap()
        .into_bytes()
    }

    fn reason(bytes: Vec<u8>) -> Reason {
        check(bytes, NOW, &mut KeyCache::new(8))
            .unwrap_err()
            .reason()
    }

    #[test]
    fn room_texts_pass_and_unshowable_ones_are_strikes() {
        let ok = signed(Kind::RoomText, "lobby", b"\x05alicehi");
        assert!(matches!(
            check(ok, NOW, &mut KeyCache::new(8)),
            Ok(Checked::Room(_, t)) if t.text == "hi"
        ));
        for target in ["LOBBY", "#lobby", &"x".repeat(64), "a b"] {
            let r = reason(signed(Kind::RoomText, target, b"\x05alicehi"));
            assert_eq!(r, Reason::BadTarget, "{target:?}");
            assert!(r.is_strike());
        }
        let r = reason(signed(Kind::RoomText, "lobby", b"\xffx"));
        assert_eq!(r, Reason::Malformed);
        assert!(r.is_strike());
    }

    #[test]
    fn a_newer_kind_is_relayed_and_a_newer_version_tolerated() {
        let other = signed(Kind::Other(9), "anything at all", b"opaque");
        assert!(matches!(
            check(other, NOW, &mut KeyCache::new(8)),
            Ok(Checked::Other(_))
        ));
        let mut v3 = signed(Kind::RoomText, "lobby", b"\x05alicehi");
        v3[0] = 3;
        let r = reason(v3);
        assert_eq!(r, Reason::NewerVersion);
        assert!(!r.is_strike());
        let r = reason(b"\x07\x00junk that says version 7".to_vec());
        assert_eq!(r, Reason::Malformed);
        assert!(r.is_strike());
    }

    #[test]
    fn profiles_are_checked_and_clear_dms_refused() {
        let key = Keypair::from_secret_bytes(&[5; 32]);
        let profile = crate::dm::Profile {
            nick: "bob".into(),
            seal_key: crate::dm::EncryptionKey::derive(&key).public(),
            version: 3,
        };
        let env = profile.sign(&key, NOW, 1).unwrap().into_bytes();
        assert!(matches!(
            check(env, NOW, &mut KeyCache::new(8)),
            Ok(Checked::Profile(_, p)) if p == profile
        ));
        let bad = signed(Kind::Profile, crate::dm::PROFILE_TARGET, b"\x01short");
        assert_eq!(reason(bad), Reason::Malformed);
        let clear = signed(Kind::Direct, &"ab".repeat(32), b"\x05alicehi");
        let r = check(clear, NOW, &mut KeyCache::new(8)).unwrap_err();
        assert_eq!(r, Refused::Unsealed);
        assert!(r.reason().is_strike() && r.signature_checked());
    }

    #[test]
    fn tracker_envelopes_are_checked_before_relay() {
        let key = Keypair::from_secret_bytes(&[6; 32]);
        let heartbeat = |target: &str, body: &[u8], at: u64| {
            Envelope::sign(
                &key,
                Draft {
                    kind: Kind::Tracker,
                    target,
                    timestamp_ms: at,
                    nonce: 1,
                    body,
                },
            )
            .unwrap()
            .into_bytes()
        };
        let body = crate::election::Msg::<[u8; 32]>::Heartbeat {
            epoch: 1,
            priority: 100,
            roster: 0,
        }
        .encode();
        let ok = heartbeat("tracker", &body, NOW);
        assert!(matches!(
            check(ok, NOW, &mut KeyCache::new(8)),
            Ok(Checked::Tracker(_))
        ));
        let r = reason(heartbeat("tracker", b"\xffgarbage", NOW));
        assert_eq!(r, Reason::Malformed);
        assert!(r.is_strike());
        let r = reason(heartbeat("lobby", &body, NOW));
        assert_eq!(r, Reason::BadTarget);
        assert!(r.is_strike());
        let eleven_minutes = 11 * 60 * 1000;
        let r = reason(heartbeat("tracker", &body, NOW - eleven_minutes));
        assert_eq!(r, Reason::Stale);
        assert!(!r.is_strike(), "a relay with a slow clock took it honestly");
    }

    #[test]
    fn counters_count_each_reason() {
        let mut c = Rejected::default();
        for (i, r) in Reason::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                c.count(r);
            }
        }
        for (i, r) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(c.get(r), i as u64 + 1);
        }
        assert_eq!(c.total(), 78);
        assert_eq!(c.nonzero().count(), 12);
        let names: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), 12);
    }

    proptest! {
        /// Random bytes never panic the check and, but for a small fraction that looks like a
        /// newer version, are strikes.
        #[test]
        fn junk_never_panics_and_is_nearly_always_a_strike(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let looks_newer = envelope::looks_like_newer_version(&bytes);
            match check(bytes, NOW, &mut KeyCache::new(8)) {
                Ok(_) => prop_assert!(false, "random bytes passed the check"),
                Err(e) => prop_assert!(e.reason().is_strike() || looks_newer || e.reason() == Reason::FromFuture),
            }
        }
    }
}
