//! The envelope: the one signed, versioned format every meshchat message travels in.
//!
//! Byte layout (version 1; all integers big-endian; see `docs/PROTOCOL.md`):
//!
//! ```text
//! version u8 = 1 | kind u8 | target_len u8 | target [target_len] | author [32]
//! | timestamp_ms u64 | nonce u64 | body_len u32 | body [body_len] | signature [64]
//! ```
//!
//! The signature is Ed25519 (strict verification) by `author` over [`SIGNING_DOMAIN`] followed by
//! every byte before the signature. The [`MessageId`] is SHA-256 of the whole encoding. Decoding is
//! canonical (no trailing bytes, exact lengths) and signatures are strict, so one message has one
//! encoding and one id.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::identity::{self, KeyCache, Keypair, PublicKey};

/// The only version this code speaks.
pub const VERSION: u8 = 1;
/// Prepended to the signed bytes so a meshchat signature can never be replayed as another
/// protocol's (or vice versa).
pub const SIGNING_DOMAIN: &[u8] = b"meshchat/envelope/v1\0";
/// Longest target (room name or recipient id), in bytes.
pub const MAX_TARGET_LEN: usize = 64;
/// Largest body, in bytes.
pub const MAX_BODY_LEN: usize = 60 * 1024;
/// Fixed part of an encoding: everything but target and body.
pub const FIXED_LEN: usize = 1 + 1 + 1 + 32 + 8 + 8 + 4 + 64;
/// Largest possible encoding. Checked before anything is parsed.
pub const MAX_ENVELOPE_LEN: usize = FIXED_LEN + MAX_TARGET_LEN + MAX_BODY_LEN;
/// How far in the future an author's timestamp may be before the envelope is rejected.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// Why an envelope was refused. Every variant is counted by the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("envelope of {0} bytes exceeds the {MAX_ENVELOPE_LEN}-byte limit")]
    TooLarge(usize),
    #[error("envelope truncated")]
    Truncated,
    #[error("unsupported envelope version {0}")]
    BadVersion(u8),
    /// Kind 0 is reserved and never valid. (Other unknown kinds are [`Kind::Other`]: their
    /// envelope is checked like any other, so a newer node's messages can be relayed.)
    #[error("envelope kind {0} is reserved")]
    UnknownKind(u8),
    #[error("{0} too long")]
    FieldTooLong(&'static str),
    #[error("{0} is empty")]
    FieldEmpty(&'static str),
    #[error("{0} is not valid UTF-8")]
    BadUtf8(&'static str),
    #[error("trailing bytes after the signature")]
    TrailingBytes,
    #[error("author is not a valid public key")]
    BadAuthor,
    #[error("signature does not verify")]
    BadSignature,
    #[error("timestamp is {0} ms in the future")]
    FromFuture(u64),
}

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A text message to a room; the body is a [`crate::room::Text`].
    RoomText,
    /// A node's profile (nick, DM encryption key); the body is a [`crate::dm::Profile`], the
    /// target [`crate::dm::PROFILE_TARGET`].
    Profile,
    /// A direct message; the target is the recipient's public key in hex, the body a
    /// [`crate::room::Text`]. It travels sealed (see [`crate::dm`]), never in the clear.
    Direct,
    /// A tracker election or roster message (issue 12): flooded on the broadcast trees or routed
    /// hop by hop ([`crate::routed`]); the body is the election's message.
    Tracker,
    /// A file offer (issue 20): the body is a [`crate::transfer::wire::Offer`]; the target a
    /// room name (shown in the room, stored and synced like its texts), or, sealed inside a
    /// direct message, the recipient's key in hex, like [`Kind::Direct`].
    File,
    /// A message in a private room (issue 22): the target is the room id in hex, the body
    /// sealed (see [`crate::private`]).
    Sealed,
    /// An operation of an invite room (membership change or rekey), or more of its key shares;
    /// the target is the room id in hex, the body sealed under the roster key.
    Op,
    /// An invite to a private room: only ever sealed inside a direct message, like
    /// [`Kind::Direct`]; its body is a [`crate::private::Invite`].
    Invite,
    /// A kind this version does not know (9..=255): a newer node's. The envelope's layout and
    /// signature are the same for every kind, so it is checked in full; its body is opaque.
    Other(u8),
}

impl Kind {
    pub fn to_byte(self) -> u8 {
        match self {
            Kind::RoomText => 1,
            Kind::Profile => 2,
            Kind::Direct => 3,
            Kind::Tracker => 4,
            Kind::File => 5,
            Kind::Sealed => 6,
            Kind::Op => 7,
            Kind::Invite => 8,
            Kind::Other(b) => b,
        }
    }

    /// Kind 0 is reserved: no node ever sends it.
    pub fn from_byte(b: u8) -> Result<Self, Error> {
        match b {
            0 => Err(Error::UnknownKind(0)),
            1 => Ok(Kind::RoomText),
            2 => Ok(Kind::Profile),
            3 => Ok(Kind::Direct),
            4 => Ok(Kind::Tracker),
            5 => Ok(Kind::File),
            6 => Ok(Kind::Sealed),
            7 => Ok(Kind::Op),
            8 => Ok(Kind::Invite),
            other => Ok(Kind::Other(other)),
        }
    }
}

/// Versions a future meshchat may use (2..=15). Every version keeps the first three bytes
/// (version, kind, target length) and the 64-byte signature at the end, so a receiver can tell an
/// envelope it is too old to read from junk (see [`looks_like_newer_version`]).
pub const FUTURE_VERSIONS: std::ops::RangeInclusive<u8> = 2..=15;

/// The author key of a version-1 encoding, read without checking anything else: for limits
/// applied before the signature is checked (a forgery gets no further than that check). `None`
/// if the bytes are too short or not version 1.
pub fn peek_author(bytes: &[u8]) -> Option<[u8; 32]> {
    if bytes.first() != Some(&VERSION) {
        return None;
    }
    let start = 3 + usize::from(*bytes.get(2)?);
    bytes.get(start..start + 32)?.try_into().ok()
}

/// Whether `bytes`, refused as [`Error::BadVersion`], are plausibly a newer node's envelope rather
/// than junk: a version in [`FUTURE_VERSIONS`], a kind other than 0, a target length of
/// 1..=[`MAX_TARGET_LEN`], and room for this version's fixed fields and that target. Random bytes
/// pass with a probability of about 1.3 %, so a junk sender earns strikes; a newer node's relay
/// does not.
pub fn looks_like_newer_version(bytes: &[u8]) -> bool {
    match bytes {
        [version, kind, target_len, ..] => {
            let t = *target_len as usize;
            FUTURE_VERSIONS.contains(version)
                && *kind != 0
                && (1..=MAX_TARGET_LEN).contains(&t)
                && bytes.len() >= FIXED_LEN + t
                && bytes.len() <= MAX_ENVELOPE_LEN
        }
        _ => false,
    }
}

/// SHA-256 of an envelope's encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// The id of the envelope encoded as `bytes` (whether or not it is valid).
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", &hex::encode(self.0)[..12])
    }
}

impl FromStr for MessageId {
    type Err = hex::FromHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut id = [0u8; 32];
        hex::decode_to_slice(s, &mut id)?;
        Ok(Self(id))
    }
}

/// A signed envelope. Only [`Envelope::sign`] and [`Envelope::open`] make one, so holding an
/// `Envelope` means its signature was made or checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The canonical encoding, kept so relaying and storing never re-encode.
    bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    id: MessageId,
    kind: Kind,
    /// Room name (for room kinds); validated UTF-8 of at most [`MAX_TARGET_LEN`] bytes.
    target: String,
    author: PublicKey,
    timestamp_ms: u64,
    /// Random, so two identical texts sent in the same millisecond still differ.
    nonce: u64,
    /// Offset of the body within `bytes`.
    body_start: usize,
    body_len: usize,
}

/// The fields an author chooses.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    pub kind: Kind,
    pub target: &'a str,
    pub timestamp_ms: u64,
    pub nonce: u64,
    pub body: &'a [u8],
}

impl Envelope {
    /// Encodes and signs a new envelope.
    pub fn sign(keypair: &Keypair, draft: Draft<'_>) -> Result<Self, Error> {
        check_target(draft.target)?;
        if draft.body.len() > MAX_BODY_LEN {
            return Err(Error::FieldTooLong("body"));
        }
        let mut bytes = Vec::with_capacity(FIXED_LEN + draft.target.len() + draft.body.len());
        bytes.push(VERSION);
        bytes.push(draft.kind.to_byte());
        bytes.push(draft.target.len() as u8);
        bytes.extend_from_slice(draft.target.as_bytes());
        bytes.extend_from_slice(keypair.public().as_bytes());
        bytes.extend_from_slice(&draft.timestamp_ms.to_be_bytes());
        bytes.extend_from_slice(&draft.nonce.to_be_bytes());
        bytes.extend_from_slice(&(draft.body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(draft.body);
        let signature = keypair.sign(&signing_input(&bytes));
        bytes.extend_from_slice(&signature);
        let (env, _) = Self::parse(bytes, |_| Ok(keypair.public()))?;
        Ok(env)
    }

    /// Checks everything, cheapest first: size, structure, timestamp, then the signature.
    /// `now_ms` is the receiver's clock (milliseconds since the Unix epoch).
    pub fn open(bytes: Vec<u8>, now_ms: u64) -> Result<Self, Error> {
        Self::open_with(bytes, now_ms, PublicKey::from_bytes)
    }

    /// [`Envelope::open`] with author keys decoded through `keys`, so a busy author's key is not
    /// decompressed again for every message. Same checks, same result.
    pub fn open_cached(bytes: Vec<u8>, now_ms: u64, keys: &mut KeyCache) -> Result<Self, Error> {
        Self::open_with(bytes, now_ms, |b| keys.get(b))
    }

    fn open_with(
        bytes: Vec<u8>,
        now_ms: u64,
        decode_key: impl FnOnce(&[u8; 32]) -> Result<PublicKey, identity::Error>,
    ) -> Result<Self, Error> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(Error::TooLarge(bytes.len()));
        }
        let (env, signature) = Self::parse(bytes, decode_key)?;
        if env.timestamp_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(Error::FromFuture(env.timestamp_ms - now_ms));
        }
        let signed = &env.bytes[..env.bytes.len() - 64];
        env.author
            .verify(&signing_input(signed), &signature)
            .map_err(|_| Error::BadSignature)?;
        Ok(env)
    }

    /// Structural decoding without checking the signature: only for bytes this node verified
    /// before (its own database).
    pub fn open_trusted(bytes: Vec<u8>) -> Result<Self, Error> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(Error::TooLarge(bytes.len()));
        }
        Self::parse(bytes, PublicKey::from_bytes).map(|(env, _)| env)
    }

    fn parse(
        bytes: Vec<u8>,
        decode_key: impl FnOnce(&[u8; 32]) -> Result<PublicKey, identity::Error>,
    ) -> Result<(Self, [u8; 64]), Error> {
        let mut r = Reader {
            buf: &bytes,
            pos: 0,
        };
        let version = r.u8()?;
        if version != VERSION {
            return Err(Error::BadVersion(version));
        }
        let kind = Kind::from_byte(r.u8()?)?;
        let target_len = r.u8()? as usize;
        let target = std::str::from_utf8(r.take(target_len)?)
            .map_err(|_| Error::BadUtf8("target"))?
            .to_owned();
        check_target(&target)?;
        let author_bytes: [u8; 32] = r.array()?;
        let author = decode_key(&author_bytes).map_err(|_| Error::BadAuthor)?;
        let timestamp_ms = u64::from_be_bytes(r.array()?);
        let nonce = u64::from_be_bytes(r.array()?);
        let body_len = u32::from_be_bytes(r.array()?) as usize;
        if body_len > MAX_BODY_LEN {
            return Err(Error::FieldTooLong("body"));
        }
        let body_start = r.pos;
        r.take(body_len)?;
        let signature: [u8; 64] = r.array()?;
        if r.pos != bytes.len() {
            return Err(Error::TrailingBytes);
        }
        let id = MessageId::of(&bytes);
        Ok((
            Self {
                bytes,
                id,
                kind,
                target,
                author,
                timestamp_ms,
                nonce,
                body_start,
                body_len,
            },
            signature,
        ))
    }

    pub fn id(&self) -> MessageId {
        self.id
    }
    pub fn kind(&self) -> Kind {
        self.kind
    }
    pub fn target(&self) -> &str {
        &self.target
    }
    pub fn author(&self) -> &PublicKey {
        &self.author
    }
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }
    pub fn nonce(&self) -> u64 {
        self.nonce
    }
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.body_start..self.body_start + self.body_len]
    }
    /// The canonical encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("target", &self.target)
            .field("author", &self.author.fingerprint())
            .field("timestamp_ms", &self.timestamp_ms)
            .field("body_len", &self.body_len)
            .finish()
    }
}

fn check_target(target: &str) -> Result<(), Error> {
    if target.is_empty() {
        return Err(Error::FieldEmpty("target"));
    }
    if target.len() > MAX_TARGET_LEN {
        return Err(Error::FieldTooLong("target"));
    }
    Ok(())
}

fn signing_input(signed: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(SIGNING_DOMAIN.len() + signed.len());
    input.extend_from_slice(SIGNING_DOMAIN);
    input.extend_from_slice(signed);
    input
}

/// A cursor that fails with [`Error::Truncated`] instead of panicking.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated)?;
        let slice = self.buf.get(self.pos..end).ok_or(Error::Truncated)?;
        self.pos = end;
        Ok(slice)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
