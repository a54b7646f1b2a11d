//! The DM encryption key (X25519, for HPKE) and the profile that publishes it.

use std::fmt;

use hpke::{Deserializable, Kem as _, Serializable};
use zeroize::Zeroizing;

use super::{Error, Kem};
use crate::envelope::{Draft, Envelope, Kind};
use crate::identity::Keypair;
use crate::room;

/// The target of every profile envelope.
pub const PROFILE_TARGET: &str = "profile";
/// Version of the profile body layout.
pub const PROFILE_FORMAT: u8 = 1;
/// Domain of the key derived from an identity (see [`EncryptionKey::derive`]).
const DERIVE_DOMAIN: &[u8] = b"meshchat/dm-x25519/v1\0";

/// An X25519 public key that DMs are sealed to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SealKey(pub [u8; 32]);

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealKey({})", hex::encode(self.0))
    }
}

impl SealKey {
    pub(super) fn to_hpke(self) -> Result<<Kem as hpke::Kem>::PublicKey, Error> {
        <Kem as hpke::Kem>::PublicKey::from_bytes(&self.0).map_err(|_| Error::BadSealKey)
    }
}

/// The node's X25519 secret for opening DMs. Its `Debug` shows only the public key.
#[derive(Clone)]
pub struct EncryptionKey {
    secret: <Kem as hpke::Kem>::PrivateKey,
    public: SealKey,
}

impl EncryptionKey {
    /// The key derived from the node's identity (HPKE's `DeriveKeyPair` over a domain tag and
    /// the identity's secret seed): nothing more to store, but it changes only with the
    /// identity, and whoever steals the identity key can also read every DM sent to it.
    pub fn derive(identity: &Keypair) -> Self {
        let seed = identity.secret_bytes();
        let mut ikm = Zeroizing::new(Vec::with_capacity(DERIVE_DOMAIN.len() + 32));
        ikm.extend_from_slice(DERIVE_DOMAIN);
        ikm.extend_from_slice(seed.as_ref());
        let (secret, public) = Kem::derive_keypair(&ikm);
        Self::from_parts(secret, &public)
    }

    /// A fresh random key (store it with [`EncryptionKey::secret_bytes`]; publish a new profile).
    pub fn generate<R: rand::RngCore + rand::CryptoRng>(rng: &mut R) -> Self {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ikm.as_mut());
        let (secret, public) = Kem::derive_keypair(ikm.as_ref());
        Self::from_parts(secret, &public)
    }

    /// The key with this stored secret.
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        let secret =
            <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes).map_err(|_| Error::BadSealKey)?;
        let public = Kem::sk_to_pk(&secret);
        Ok(Self::from_parts(secret, &public))
    }

    fn from_parts(
        secret: <Kem as hpke::Kem>::PrivateKey,
        public: &<Kem as hpke::Kem>::PublicKey,
    ) -> Self {
        let mut p = [0u8; 32];
        p.copy_from_slice(&public.to_bytes());
        Self {
            secret,
            public: SealKey(p),
        }
    }

    /// The secret, zeroized when dropped. Never log it.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&self.secret.to_bytes());
        out
    }

    pub fn public(&self) -> SealKey {
        self.public
    }

    pub(crate) fn hpke_secret(&self) -> &<Kem as hpke::Kem>::PrivateKey {
        &self.secret
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The body of a [`Kind::Profile`] envelope: who the author says they are and where to seal
/// their DMs. Nodes keep the newest `version` per author.
///
/// ```text
/// format u8 = 1 | version u64 | seal_key [32] | nick_len u8 | nick [nick_len]
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub nick: String,
    pub seal_key: SealKey,
    /// Raised on every change (a timestamp works); the newest wins.
    pub version: u64,
}

/// Length of a profile body before the nick.
const PROFILE_FIXED: usize = 1 + 8 + 32 + 1;

impl Profile {
    pub fn encoded_len(&self) -> usize {
        PROFILE_FIXED + self.nick.len()
    }

    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        room::validate_nick(&self.nick).map_err(|_| Error::Malformed("profile nick"))?;
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(PROFILE_FORMAT);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.seal_key.0);
        out.push(self.nick.len() as u8);
        out.extend_from_slice(self.nick.as_bytes());
        Ok(out)
    }

    pub fn decode(body: &[u8]) -> Result<Self, Error> {
        if body.len() < PROFILE_FIXED {
            return Err(Error::Malformed("profile truncated"));
        }
        if body[0] != PROFILE_FORMAT {
            return Err(Error::Malformed("profile format"));
        }
        let version = u64::from_be_bytes(body[1..9].try_into().expect("8 bytes"));
        let seal_key = SealKey(body[9..41].try_into().expect("32 bytes"));
        let nick_len = body[41] as usize;
        if body.len() != PROFILE_FIXED + nick_len {
            return Err(Error::Malformed("profile length"));
        }
        let nick = std::str::from_utf8(&body[PROFILE_FIXED..])
            .map_err(|_| Error::Malformed("profile nick"))?
            .to_owned();
        if nick.trim().is_empty()
            || nick.len() > room::MAX_NICK_LEN
            || nick.contains(char::is_control)
        {
            return Err(Error::Malformed("profile nick"));
        }
        Ok(Self {
            nick,
            seal_key,
            version,
        })
    }

    /// Signs this profile as `identity`'s profile envelope.
    pub fn sign(
        &self,
        identity: &Keypair,
        timestamp_ms: u64,
        nonce: u64,
    ) -> Result<Envelope, Error> {
        let body = self.encode()?;
        Envelope::sign(
            identity,
            Draft {
                kind: Kind::Profile,
                target: PROFILE_TARGET,
                timestamp_ms,
                nonce,
                body: &body,
            },
        )
        .map_err(Error::Envelope)
    }

    /// The profile in a verified envelope (its author is the profile's owner).
    pub fn from_envelope(env: &Envelope) -> Result<Self, Error> {
        if env.kind() != Kind::Profile || env.target() != PROFILE_TARGET {
            return Err(Error::Malformed("not a profile envelope"));
        }
        Self::decode(env.body())
    }
}

/// Why a profile was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileVerdict {
    /// New, or newer than the one kept: taken.
    Taken,
    /// The same version as, or older than, the one kept.
    Stale,
    /// A new author while the directory is full.
    Full,
}

/// The newest profile per author, bounded: what `/msg NICK` looks up, and where a DM's seal key
/// comes from. When full, a new author is refused rather than evicting a known one (an attacker
/// making up authors cannot push out the people one talks to); the node may [`Directory::remove`]
/// authors it has not heard from in a long time.
#[derive(Debug)]
pub struct Directory {
    profiles: std::collections::BTreeMap<[u8; 32], Profile>,
    capacity: usize,
}

impl Directory {
    pub fn new(capacity: usize) -> Self {
        Self {
            profiles: std::collections::BTreeMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Offers `author`'s profile (from a verified envelope).
    pub fn offer(&mut self, author: &crate::identity::PublicKey, p: Profile) -> ProfileVerdict {
        let key = *author.as_bytes();
        let full = self.profiles.len() >= self.capacity;
        match self.profiles.get_mut(&key) {
            Some(old) if p.version <= old.version => ProfileVerdict::Stale,
            Some(old) => {
                *old = p;
                ProfileVerdict::Taken
            }
            None if full => ProfileVerdict::Full,
            None => {
                self.profiles.insert(key, p);
                ProfileVerdict::Taken
            }
        }
    }

    pub fn get(&self, author: &[u8; 32]) -> Option<&Profile> {
        self.profiles.get(author)
    }

    /// Authors whose nick is `nick` (several people may share one).
    pub fn by_nick<'a>(&'a self, nick: &'a str) -> impl Iterator<Item = &'a [u8; 32]> + 'a {
        self.profiles
            .iter()
            .filter(move |(_, p)| p.nick == nick)
            .map(|(k, _)| k)
    }

    /// Every author with a profile.
    pub fn keys(&self) -> impl Iterator<Item = [u8; 32]> + '_ {
        self.profiles.keys().copied()
    }

    pub fn remove(&mut self, author: &[u8; 32]) -> Option<Profile> {
        self.profiles.remove(author)
    }

    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }
}
