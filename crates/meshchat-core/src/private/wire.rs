//! The bytes of §10 and the primitives they are sealed with: sealed messages (kind 6), the two
//! formats of an operation envelope (kind 7), key shares, and the passphrase room's derivation.
//!
//! Everything here is a composition of library primitives as §10 writes it down, nothing more:
//! XChaCha20-Poly1305 (random 24-byte nonces, so no nonce bookkeeping across nodes that share a
//! key), HKDF-SHA256, Argon2id and the HPKE suite of the DMs (§7). The decoders are strict (exact
//! lengths, zero padding, known tags) so one body has one meaning.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hpke::{Deserializable, Serializable};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{Refusal, Secret, Unread, ROOM_ID_LEN, SHARES_PER_ENVELOPE};
use crate::dm::wire::Bridge;
use crate::dm::{EncryptionKey, SealKey};
use crate::room::{self, Text};
use crate::MessageId;

/// The HPKE suite of §7: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.
type Kem = hpke::kem::X25519HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;
type HpkeKdf = hpke::kdf::HkdfSha256;

/// Start of a sealed message's associated data.
const SEALED_AAD: &[u8] = b"meshchat sealed room v1";
/// Start of an operation's associated data.
const OP_AAD: &[u8] = b"meshchat room op v1";
/// Start of a share's HPKE `info`.
const SHARE_INFO: &[u8] = b"meshchat room key v1";
/// Domain of an invite room's id.
const INVITE_ROOM_DOMAIN: &[u8] = b"meshchat invite room v1";
/// Argon2id salt of a passphrase room's id.
const ROOM_ID_SALT: &[u8] = b"meshchat room id v1";
/// Argon2id salt (followed by the room id) of a passphrase room's secret.
const ROOM_KEY_SALT: &[u8] = b"meshchat room key v1";
/// HKDF `info` of a passphrase room's key and of its key id.
const KEY_INFO: &[u8] = b"meshchat room key";
const KEY_ID_INFO: &[u8] = b"meshchat room key id";

/// Bytes in a key id (the start of a sealed message's body).
pub(super) const KEY_ID_LEN: usize = 8;
/// Bytes in an XChaCha20-Poly1305 nonce.
pub(super) const NONCE_LEN: usize = 24;
/// Bytes in an AEAD tag.
const TAG_LEN: usize = 16;
/// Sealed plaintexts are padded to a multiple of this.
const PAD: usize = 64;
/// The only inner kind of a sealed message so far: a room text.
const INNER_TEXT: u8 = 1;
/// Bytes in one share: member [32] | enc [32] | ct [48].
pub(super) const SHARE_LEN: usize = 32 + 32 + 48;
/// Most parents of one operation, and most format-2 parts.
pub(super) const MAX_PARENTS: usize = 16;
pub(super) const MAX_PARTS: usize = 16;

// --- Primitives --------------------------------------------------------------------------------

fn aead_seal(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], msg: &[u8]) -> Vec<u8> {
    XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(nonce), Payload { msg, aad })
        .expect("XChaCha20-Poly1305 seals any length we give it")
}

fn aead_open(key: &[u8; 32], nonce: &[u8], aad: &[u8], ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

fn argon2id(password: &[u8], salt: &[u8], out: &mut [u8]) {
    let params = Params::new(19 * 1024, 2, 1, Some(out.len())).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password, salt, out)
        .expect("salt and output lengths are within Argon2's bounds");
}

fn hkdf(secret: &[u8; 32], info: &[u8], out: &mut [u8]) {
    Hkdf::<Sha256>::new(None, secret)
        .expand(info, out)
        .expect("HKDF-SHA256 gives up to 8160 bytes");
}

// --- Room ids and passphrase rooms -------------------------------------------------------------

/// A passphrase room's id: Argon2id of the name alone.
pub(super) fn passphrase_room_id(name: &str) -> [u8; ROOM_ID_LEN] {
    let mut id = [0u8; ROOM_ID_LEN];
    argon2id(name.as_bytes(), ROOM_ID_SALT, &mut id);
    id
}

/// A passphrase room's secret: Argon2id of the passphrase, salted with the room id.
pub(super) fn passphrase_secret(passphrase: &str, id: &[u8; ROOM_ID_LEN]) -> Secret {
    let mut salt = Vec::with_capacity(ROOM_KEY_SALT.len() + ROOM_ID_LEN);
    salt.extend_from_slice(ROOM_KEY_SALT);
    salt.extend_from_slice(id);
    let mut secret = Zeroizing::new([0u8; 32]);
    argon2id(passphrase.as_bytes(), &salt, secret.as_mut());
    Secret::from_bytes(*secret)
}

/// The key and key id a passphrase room's secret gives.
pub(super) fn passphrase_key(secret: &Secret) -> (Secret, [u8; KEY_ID_LEN]) {
    let mut key = Zeroizing::new([0u8; 32]);
    hkdf(secret.as_bytes(), KEY_INFO, key.as_mut());
    let mut key_id = [0u8; KEY_ID_LEN];
    hkdf(secret.as_bytes(), KEY_ID_INFO, &mut key_id);
    (Secret::from_bytes(*key), key_id)
}

/// An invite room's id: SHA-256 of the domain, the creator's key and the create's nonce.
pub(super) fn invite_room_id(creator: &[u8; 32], nonce: &[u8; 16]) -> [u8; ROOM_ID_LEN] {
    let digest = Sha256::new()
        .chain_update(INVITE_ROOM_DOMAIN)
        .chain_update(creator)
        .chain_update(nonce)
        .finalize();
    digest[..ROOM_ID_LEN].try_into().expect("16 bytes")
}

// --- Sealed messages (kind 6) ------------------------------------------------------------------

fn sealed_aad(target: &str, author: &[u8; 32]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(SEALED_AAD.len() + target.len() + 32);
    aad.extend_from_slice(SEALED_AAD);
    aad.extend_from_slice(target.as_bytes());
    aad.extend_from_slice(author);
    aad
}

/// The body of a sealed message: `key_id | nonce | XChaCha20-Poly1305(padded text)`.
pub(super) fn seal_text<R: rand::RngCore + rand::CryptoRng>(
    key: &Secret,
    key_id: &[u8; KEY_ID_LEN],
    target: &str,
    author: &[u8; 32],
    text: &Text,
    rng: &mut R,
) -> Result<Vec<u8>, room::Error> {
    let inner = text.encode()?;
    let used = 1 + 4 + inner.len();
    let mut plain = Zeroizing::new(Vec::with_capacity(used.div_ceil(PAD) * PAD));
    plain.push(INNER_TEXT);
    plain.extend_from_slice(&(inner.len() as u32).to_be_bytes());
    plain.extend_from_slice(&inner);
    plain.resize(used.div_ceil(PAD) * PAD, 0);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let ct = aead_seal(key.as_bytes(), &nonce, &sealed_aad(target, author), &plain);
    let mut body = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + ct.len());
    body.extend_from_slice(key_id);
    body.extend_from_slice(&nonce);
    body.extend_from_slice(&ct);
    Ok(body)
}

/// The key id a sealed body names, if it is long enough to be one.
pub(super) fn key_id(body: &[u8]) -> Option<[u8; KEY_ID_LEN]> {
    body.get(..KEY_ID_LEN)
        .map(|b| b.try_into().expect("8 bytes"))
}

/// Decrypts a sealed body under `key` (the key id already matched): `Unreadable` if it does not
/// open, `Malformed` if what it holds is not a padded text.
pub(super) fn open_text(
    key: &Secret,
    body: &[u8],
    target: &str,
    author: &[u8; 32],
) -> Result<Text, Unread> {
    let refused = |r| Err(Unread::Refused(r));
    if body.len() < KEY_ID_LEN + NONCE_LEN + TAG_LEN {
        return refused(Refusal::Malformed);
    }
    let nonce = &body[KEY_ID_LEN..KEY_ID_LEN + NONCE_LEN];
    let ct = &body[KEY_ID_LEN + NONCE_LEN..];
    let Some(plain) = aead_open(key.as_bytes(), nonce, &sealed_aad(target, author), ct) else {
        return refused(Refusal::Unreadable);
    };
    if plain.len() < 5 || plain.len() % PAD != 0 || plain[0] != INNER_TEXT {
        return refused(Refusal::Malformed);
    }
    let len = u32::from_be_bytes(plain[1..5].try_into().expect("4 bytes")) as usize;
    let Some(inner) = plain.get(5..5usize.saturating_add(len)) else {
        return refused(Refusal::Malformed);
    };
    if plain.len() != (5 + len).div_ceil(PAD) * PAD || plain[5 + len..].iter().any(|&b| b != 0) {
        return refused(Refusal::Malformed);
    }
    Text::decode(inner).map_err(|_| Unread::Refused(Refusal::Malformed))
}

// --- Operations (kind 7) -----------------------------------------------------------------------

/// What an operation does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Change {
    Create {
        nonce: [u8; 16],
        name: String,
        seal: SealKey,
        nick: String,
    },
    Add {
        member: [u8; 32],
        seal: SealKey,
        admin: bool,
        nick: String,
    },
    Remove {
        member: [u8; 32],
    },
    Rekey,
}

/// One member's copy of an epoch key, sealed to its X25519 key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Share {
    pub member: [u8; 32],
    pub enc: [u8; 32],
    pub ct: [u8; 48],
}

/// A format-1 body, opened.
#[derive(Clone, Debug)]
pub(super) struct OpBody {
    pub parents: Vec<MessageId>,
    pub nonce: [u8; NONCE_LEN],
    pub change: Change,
    pub shares: Vec<Share>,
    pub parts: u8,
}

/// A format-2 body (more shares of `op`), opened.
#[derive(Clone, Debug)]
pub(super) struct PartBody {
    pub op: MessageId,
    pub part: u8,
    pub shares: Vec<Share>,
}

#[derive(Clone, Debug)]
pub(super) enum Body {
    Op(OpBody),
    Part(PartBody),
}

fn op_aad(target: &str, author: &[u8; 32], header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(OP_AAD.len() + target.len() + 32 + header.len());
    aad.extend_from_slice(OP_AAD);
    aad.extend_from_slice(target.as_bytes());
    aad.extend_from_slice(author);
    aad.extend_from_slice(header);
    aad
}

/// `header | nonce | sealed(plaintext)`, the associated data ending with the header.
fn seal_body<R: rand::RngCore + rand::CryptoRng>(
    roster: &Secret,
    target: &str,
    author: &[u8; 32],
    header: Vec<u8>,
    nonce: Option<[u8; NONCE_LEN]>,
    plain: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    let nonce = nonce.unwrap_or_else(|| {
        let mut n = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut n);
        n
    });
    let ct = aead_seal(
        roster.as_bytes(),
        &nonce,
        &op_aad(target, author, &header),
        plain,
    );
    let mut body = header;
    body.extend_from_slice(&nonce);
    body.extend_from_slice(&ct);
    body
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn put_shares(out: &mut Vec<u8>, shares: &[Share]) {
    out.extend_from_slice(&(shares.len() as u16).to_be_bytes());
    for s in shares {
        out.extend_from_slice(&s.member);
        out.extend_from_slice(&s.enc);
        out.extend_from_slice(&s.ct);
    }
}

/// A format-1 body (`op.shares` at most [`SHARES_PER_ENVELOPE`], `op.parents` at most 16).
pub(super) fn encode_op<R: rand::RngCore + rand::CryptoRng>(
    roster: &Secret,
    target: &str,
    author: &[u8; 32],
    op: &OpBody,
    rng: &mut R,
) -> Vec<u8> {
    debug_assert!(op.parents.len() <= MAX_PARENTS && op.shares.len() <= SHARES_PER_ENVELOPE);
    let mut header = vec![1, op.parents.len() as u8];
    for p in &op.parents {
        header.extend_from_slice(&p.0);
    }
    let mut plain = Vec::with_capacity(128 + op.shares.len() * SHARE_LEN);
    match &op.change {
        Change::Create {
            nonce,
            name,
            seal,
            nick,
        } => {
            plain.push(1);
            plain.extend_from_slice(nonce);
            put_str(&mut plain, name);
            plain.extend_from_slice(&seal.0);
            put_str(&mut plain, nick);
        }
        Change::Add {
            member,
            seal,
            admin,
            nick,
        } => {
            plain.push(2);
            plain.extend_from_slice(member);
            plain.extend_from_slice(&seal.0);
            plain.push(u8::from(*admin));
            put_str(&mut plain, nick);
        }
        Change::Remove { member } => {
            plain.push(3);
            plain.extend_from_slice(member);
        }
        Change::Rekey => plain.push(4),
    }
    put_shares(&mut plain, &op.shares);
    plain.push(op.parts);
    seal_body(roster, target, author, header, Some(op.nonce), &plain, rng)
}

/// A format-2 body.
pub(super) fn encode_part<R: rand::RngCore + rand::CryptoRng>(
    roster: &Secret,
    target: &str,
    author: &[u8; 32],
    part: &PartBody,
    rng: &mut R,
) -> Vec<u8> {
    let mut header = vec![2];
    header.extend_from_slice(&part.op.0);
    header.push(part.part);
    let mut plain = Vec::with_capacity(2 + part.shares.len() * SHARE_LEN);
    put_shares(&mut plain, &part.shares);
    seal_body(roster, target, author, header, None, &plain, rng)
}

/// Reads fields off a byte slice; every miss is `Malformed`.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        if self.0.len() < n {
            return Err(Refusal::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Refusal> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Result<u8, Refusal> {
        Ok(self.take(1)?[0])
    }
    fn string(&mut self) -> Result<String, Refusal> {
        let len = self.u8()? as usize;
        let s = std::str::from_utf8(self.take(len)?).map_err(|_| Refusal::Malformed)?;
        Ok(s.to_owned())
    }
    fn shares(&mut self) -> Result<Vec<Share>, Refusal> {
        let count = u16::from_be_bytes(self.array()?) as usize;
        if count > SHARES_PER_ENVELOPE {
            return Err(Refusal::Malformed);
        }
        let mut shares = Vec::with_capacity(count);
        for _ in 0..count {
            shares.push(Share {
                member: self.array()?,
                enc: self.array()?,
                ct: self.array()?,
            });
        }
        Ok(shares)
    }
    fn end(&self) -> Result<(), Refusal> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Refusal::Malformed)
        }
    }
}

/// Opens an operation envelope's body with the roster key: `Unreadable` if it does not open,
/// `Malformed` if its bytes are not one of the two formats.
pub(super) fn open_body(
    roster: &Secret,
    target: &str,
    author: &[u8; 32],
    body: &[u8],
) -> Result<Body, Refusal> {
    let mut r = Reader(body);
    let (header_len, part) = match r.u8()? {
        1 => {
            let n = r.u8()? as usize;
            if n > MAX_PARENTS {
                return Err(Refusal::Malformed);
            }
            (2 + 32 * n, None)
        }
        2 => (1 + 32 + 1, Some(())),
        _ => return Err(Refusal::Malformed),
    };
    let mut r = Reader(body);
    let header = r.take(header_len)?;
    let nonce: [u8; NONCE_LEN] = r.array()?;
    let plain = aead_open(
        roster.as_bytes(),
        &nonce,
        &op_aad(target, author, header),
        r.0,
    )
    .ok_or(Refusal::Unreadable)?;
    let mut h = Reader(&header[1..]);
    let mut p = Reader(&plain);
    if part.is_some() {
        let op = MessageId(h.array()?);
        let part = h.u8()?;
        if part == 0 || part as usize > MAX_PARTS {
            return Err(Refusal::Malformed);
        }
        let shares = p.shares()?;
        p.end()?;
        return Ok(Body::Part(PartBody { op, part, shares }));
    }
    let n = h.u8()? as usize;
    let parents = (0..n)
        .map(|_| h.array().map(MessageId))
        .collect::<Result<Vec<_>, _>>()?;
    let change = match p.u8()? {
        1 => {
            let nonce = p.array()?;
            let name = p.string()?;
            let seal = SealKey(p.array()?);
            let nick = p.string()?;
            if !room::is_room_name(&name) || room::check_nick_received(&nick).is_err() {
                return Err(Refusal::Malformed);
            }
            Change::Create {
                nonce,
                name,
                seal,
                nick,
            }
        }
        2 => {
            let member = p.array()?;
            let seal = SealKey(p.array()?);
            let admin = match p.u8()? {
                0 => false,
                1 => true,
                _ => return Err(Refusal::Malformed),
            };
            let nick = p.string()?;
            if room::check_nick_received(&nick).is_err() {
                return Err(Refusal::Malformed);
            }
            Change::Add {
                member,
                seal,
                admin,
                nick,
            }
        }
        3 => Change::Remove { member: p.array()? },
        4 => Change::Rekey,
        _ => return Err(Refusal::Malformed),
    };
    let shares = p.shares()?;
    let parts = p.u8()?;
    p.end()?;
    if parts as usize > MAX_PARTS {
        return Err(Refusal::Malformed);
    }
    Ok(Body::Op(OpBody {
        parents,
        nonce,
        change,
        shares,
        parts,
    }))
}

// --- Shares ------------------------------------------------------------------------------------

/// The HPKE `info` of an operation's shares: domain, target, author and the operation's nonce
/// (the format-1 body's; the shares carried in format-2 parts use it too).
pub(super) fn share_info(target: &str, author: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    let mut info = Vec::with_capacity(SHARE_INFO.len() + target.len() + 32 + NONCE_LEN);
    info.extend_from_slice(SHARE_INFO);
    info.extend_from_slice(target.as_bytes());
    info.extend_from_slice(author);
    info.extend_from_slice(nonce);
    info
}

/// `epoch` sealed to `member`'s X25519 key, `None` if that key is not a usable X25519 key.
pub(super) fn seal_share<R: rand::RngCore + rand::CryptoRng>(
    epoch: &Secret,
    member: &[u8; 32],
    seal: &SealKey,
    info: &[u8],
    rng: &mut R,
) -> Option<Share> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&seal.0).ok()?;
    let (enc, ct) = hpke::single_shot_seal_with_rng::<HpkeAead, HpkeKdf, Kem>(
        &hpke::OpModeS::Base,
        &pk,
        info,
        epoch.as_bytes(),
        member,
        &mut Bridge(rng),
    )
    .ok()?;
    Some(Share {
        member: *member,
        enc: enc.to_bytes().as_slice().try_into().ok()?,
        ct: ct.as_slice().try_into().ok()?,
    })
}

/// A share that opens for nobody (for a member whose listed key is not a usable X25519 key, so
/// the operation still names every member; and for the tests' cheap rooms).
pub(super) fn junk_share<R: rand::RngCore>(member: &[u8; 32], rng: &mut R) -> Share {
    let mut share = Share {
        member: *member,
        enc: [0; 32],
        ct: [0; 48],
    };
    rng.fill_bytes(&mut share.enc);
    rng.fill_bytes(&mut share.ct);
    share
}

/// The epoch key in our share, if it opens.
pub(super) fn open_share(share: &Share, key: &EncryptionKey, info: &[u8]) -> Option<Secret> {
    let sk = key.hpke_secret();
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&share.enc).ok()?;
    let plain = Zeroizing::new(
        hpke::single_shot_open::<HpkeAead, HpkeKdf, Kem>(
            &hpke::OpModeR::Base,
            sk,
            &enc,
            info,
            &share.ct,
            &share.member,
        )
        .ok()?,
    );
    Some(Secret::from_bytes(plain.as_slice().try_into().ok()?))
}

/// Keeps the compiler honest about the bound in §10: the shares of a full room fit in the
/// operation and its parts.
const _: () = assert!(super::MAX_MEMBERS <= SHARES_PER_ENVELOPE * (1 + MAX_PARTS));
