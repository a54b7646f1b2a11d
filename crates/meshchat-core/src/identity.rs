//! Identities: an Ed25519 key pair per node. The same key signs envelopes and is the node's libp2p
//! identity, so a peer id, a public key and a fingerprint all name the same person.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Errors about keys and key files.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("not a valid Ed25519 public key")]
    BadPublicKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("key file is not a meshchat key file (expected first line {expected:?})")]
    KeyFileHeader { expected: &'static str },
    #[error("key file is corrupt: {0}")]
    KeyFileCorrupt(&'static str),
}

/// First line of a key file; the second is the 32-byte secret in hex, the third the public key in
/// hex (a check that the file was not damaged).
pub const KEY_FILE_HEADER: &str = "meshchat-ed25519-secret-v1";

/// A node's signing key. Its `Debug` shows only the public fingerprint, never the secret.
#[derive(Clone)]
pub struct Keypair {
    /// The Ed25519 secret; `ed25519-dalek` zeroizes it on drop.
    signing: SigningKey,
}

impl Keypair {
    /// A fresh key from a cryptographically secure RNG.
    pub fn generate<R: rand::CryptoRng + rand::RngCore>(rng: &mut R) -> Self {
        Self {
            signing: SigningKey::generate(rng),
        }
    }

    /// The key with this 32-byte secret seed.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// The 32-byte secret seed, zeroized when dropped. Handle with care: never log it.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }

    /// The key-file text for this key (see [`KEY_FILE_HEADER`]).
    pub fn to_key_file(&self) -> Zeroizing<String> {
        let secret = self.secret_bytes();
        Zeroizing::new(format!(
            "{KEY_FILE_HEADER}\n{}\n{}\n",
            hex::encode(secret.as_ref()),
            hex::encode(self.public().as_bytes())
        ))
    }

    /// Parses a key file. Any damage is an error; nothing is guessed or repaired.
    pub fn from_key_file(text: &[u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(text).map_err(|_| Error::KeyFileCorrupt("not UTF-8"))?;
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(Error::KeyFileHeader {
                expected: KEY_FILE_HEADER,
            });
        }
        let secret_hex = Zeroizing::new(
            lines
                .next()
                .ok_or(Error::KeyFileCorrupt("missing secret line"))?
                .trim()
                .to_owned(),
        );
        let public_hex = lines
            .next()
            .ok_or(Error::KeyFileCorrupt("missing public key line"))?
            .trim();
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(secret_hex.as_bytes(), secret.as_mut())
            .map_err(|_| Error::KeyFileCorrupt("secret is not 64 hex digits"))?;
        let keypair = Self::from_secret_bytes(&secret);
        let mut public = [0u8; 32];
        hex::decode_to_slice(public_hex.as_bytes(), &mut public)
            .map_err(|_| Error::KeyFileCorrupt("public key is not 64 hex digits"))?;
        if keypair.public().as_bytes() != &public {
            return Err(Error::KeyFileCorrupt(
                "public key does not match the secret",
            ));
        }
        Ok(keypair)
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("public", &self.public().fingerprint())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Decoded author keys by their 32 bytes, so a busy author's key is decompressed (a square root
/// on the curve, about a fifth of a signature check) once rather than for every message.
/// Bounded: when full, one arbitrary entry makes room, so a flood of fresh keys costs no memory.
#[derive(Debug)]
pub struct KeyCache {
    keys: std::collections::HashMap<[u8; 32], PublicKey>,
    capacity: usize,
}

impl KeyCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            keys: std::collections::HashMap::with_capacity(capacity.min(1024)),
            capacity: capacity.max(1),
        }
    }

    /// The key for `bytes`, decoded now if it is not cached. Invalid keys are not cached.
    pub fn get(&mut self, bytes: &[u8; 32]) -> Result<PublicKey, Error> {
        if let Some(key) = self.keys.get(bytes) {
            return Ok(*key);
        }
        let key = PublicKey::from_bytes(bytes)?;
        if self.keys.len() >= self.capacity {
            if let Some(evict) = self.keys.keys().next().copied() {
                self.keys.remove(&evict);
            }
        }
        self.keys.insert(*bytes, key);
        Ok(key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// An Ed25519 public key, checked to be a valid curve point.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| Error::BadPublicKey)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Strict verification (rejects small-order keys and non-canonical signatures), so a message
    /// has exactly one valid encoding and therefore exactly one id.
    pub fn verify(&self, msg: &[u8], signature: &[u8; 64]) -> Result<(), Error> {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.0
            .verify_strict(msg, &sig)
            .map_err(|_| Error::BadSignature)
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_key_bytes(self.as_bytes())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.as_bytes()))
    }
}

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// What people compare to know they talk to the same key: the first 128 bits of SHA-256 of the
/// public key, shown as eight groups of four hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 16]);

impl Fingerprint {
    /// The fingerprint of the public key with these bytes: the first 128 bits of its SHA-256.
    pub fn of_key_bytes(key: &[u8; 32]) -> Self {
        let digest = Sha256::digest(key);
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&digest[..16]);
        Fingerprint(fp)
    }

    /// The first eight hex digits: enough to tell apart people with the same nick.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = hex::encode(self.0);
        for (i, chunk) in hex.as_bytes().chunks(4).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(std::str::from_utf8(chunk).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> Keypair {
        Keypair::from_secret_bytes(&[seed; 32])
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let k = key(7);
        let secret_hex = hex::encode(k.secret_bytes().as_ref());
        let dbg = format!("{k:?} {:#?}", k);
        assert!(!dbg.contains(&secret_hex), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn key_file_round_trip_and_damage_detected() {
        let k = key(3);
        let file = k.to_key_file();
        let back = Keypair::from_key_file(file.as_bytes()).unwrap();
        assert_eq!(back.public(), k.public());

        assert!(matches!(
            Keypair::from_key_file(b"garbage"),
            Err(Error::KeyFileHeader { .. })
        ));
        // Flip one hex digit of the secret: the public-key check catches it.
        let mut damaged = file.as_bytes().to_vec();
        let pos = KEY_FILE_HEADER.len() + 1;
        damaged[pos] = if damaged[pos] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            Keypair::from_key_file(&damaged).unwrap_err(),
            Error::KeyFileCorrupt("public key does not match the secret")
        );
        let truncated = &file.as_bytes()[..KEY_FILE_HEADER.len() + 10];
        assert!(Keypair::from_key_file(truncated).is_err());
    }

    #[test]
    fn fingerprint_format() {
        let fp = key(1).public().fingerprint();
        let shown = fp.to_string();
        assert_eq!(shown.len(), 8 * 4 + 7);
        assert_eq!(shown.split(' ').count(), 8);
        assert_eq!(fp.short(), shown[..4].to_string() + &shown[5..9]);
    }

    #[test]
    fn key_cache_is_bounded_and_refuses_bad_keys() {
        let mut cache = KeyCache::new(3);
        let keys: Vec<Keypair> = (0..5u8)
            .map(|i| Keypair::from_secret_bytes(&[i; 32]))
            .collect();
        for k in &keys {
            assert_eq!(cache.get(k.public().as_bytes()).unwrap(), k.public());
            assert!(cache.len() <= 3);
        }
        // Still right after evictions.
        for k in &keys {
            assert_eq!(cache.get(k.public().as_bytes()).unwrap(), k.public());
        }
        // A y coordinate with no point on the curve is refused and not cached.
        let bad = (0u8..=255)
            .map(|i| [i; 32])
            .find(|b| PublicKey::from_bytes(b).is_err())
            .expect("some byte patterns are not points");
        assert_eq!(cache.get(&bad), Err(Error::BadPublicKey));
        assert!(cache.len() <= 3);
    }

    #[test]
    fn sign_and_verify() {
        let k = key(9);
        let sig = k.sign(b"hello");
        k.public().verify(b"hello", &sig).unwrap();
        assert_eq!(k.public().verify(b"hellO", &sig), Err(Error::BadSignature));
        assert_eq!(
            key(8).public().verify(b"hello", &sig),
            Err(Error::BadSignature)
        );
    }
}
