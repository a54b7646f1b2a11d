//! The bytes of DMs and receipts on `/meshchat/route/1` (the routing protocol's tags 1 and 2
//! are adverts and requests, see [`crate::routing::wire`]), the seal, and the receipt's
//! signature.
//!
//! ```text
//! tag 3 DM:       3 | hop_limit u16 | recipient [ID] | expires_ms u64 | enc [32]
//!                   | ct_len u32 | ct [ct_len]                      ct_len in 16..=MAX_CT_LEN
//! tag 4 receipt:  4 | hop_limit u16 | to [ID] | dm_id [32] | sender [32] | recipient [32]
//!                   | signature [64]
//! ```
//!
//! Integers are big-endian; `ID` is the routing id ([`PeerBytes`]; the 32-byte node key). `enc`
//! and `ct` are HPKE's encapsulated key and ciphertext (RFC 9180 base mode,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305) with `info` = [`SEAL_INFO`] and
//! `aad` = [`SEAL_INFO`] `| recipient [ID] | expires_ms u64`, so a relay that changes the
//! recipient or the expiry makes the DM unreadable rather than misdirected. The plaintext is the
//! sender's signed envelope (kind [`Kind::Direct`], target = the recipient's key in hex, body a
//! [`crate::room::Text`]). The hop limit is outside everything: relays decrement it.
//!
//! The DM id ([`DmId`]) is not sent: everyone computes it as SHA-256 of [`DM_ID_DOMAIN`] `|
//! recipient | expires_ms | enc | ct`, so a relay cannot attach a false id to poison others'
//! dedup, and it tells nothing the sealed bytes do not. The receipt's signature is Ed25519 by
//! `recipient` over [`RECEIPT_DOMAIN`] `| dm_id | sender | recipient`.

use sha2::{Digest, Sha256};

use super::keys::{EncryptionKey, SealKey};
use super::{Error, Kem};
use crate::envelope::{self, Envelope, Kind};
use crate::identity::{Keypair, PublicKey};
use crate::room::Text;
use crate::routing::wire::PeerBytes;
use crate::transfer::wire::Offer;

/// HPKE `info`, and the start of the `aad`.
pub const SEAL_INFO: &[u8] = b"meshchat/dm/v1\0";
pub const DM_ID_DOMAIN: &[u8] = b"meshchat/dm-id/v1\0";
pub const RECEIPT_DOMAIN: &[u8] = b"meshchat/receipt/v1\0";
/// Largest sealed envelope: DMs are kept by relays for days, so they are smaller than room
/// messages.
pub const MAX_DM_ENVELOPE_LEN: usize = 16 * 1024;
/// ChaCha20-Poly1305's tag.
pub const TAG_LEN: usize = 16;
pub const MAX_CT_LEN: usize = MAX_DM_ENVELOPE_LEN + TAG_LEN;

const TAG_DM: u8 = 3;
const TAG_RECEIPT: u8 = 4;

/// First byte of a DM put on the broadcast (flooded) path, followed by its tag-3 frame. Envelopes
/// start with their version (`0x01`, with `0x02..=0x0f` reserved for later ones), so a broadcast
/// payload is told apart by its first byte.
pub const FLOODED_DM: u8 = 0xd3;

/// The broadcast payload of a flooded DM, and the id the broadcast carries it under (the DM id).
pub fn flood_payload<P: PeerBytes + Clone>(dm: &Dm<P>) -> (DmId, Vec<u8>) {
    let frame = Frame::Dm(dm.clone()).encode();
    let mut out = Vec::with_capacity(1 + frame.len());
    out.push(FLOODED_DM);
    out.extend_from_slice(&frame);
    (dm.id(), out)
}

/// The DM in a broadcast payload that starts with [`FLOODED_DM`]; `None` for any other payload
/// (an envelope), an error for a malformed DM.
pub fn parse_flooded<P: PeerBytes>(payload: &[u8]) -> Option<Result<Dm<P>, Error>> {
    let (&first, rest) = payload.split_first()?;
    if first != FLOODED_DM {
        return None;
    }
    Some(match Frame::decode(rest) {
        Ok(Frame::Dm(dm)) => Ok(dm),
        Ok(Frame::Receipt(_)) => Err(Error::Malformed("a receipt on the flooded path")),
        Err(e) => Err(e),
    })
}

/// The id of a sealed DM (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DmId(pub [u8; 32]);

impl std::fmt::Debug for DmId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DmId({})", &hex::encode(self.0)[..12])
    }
}

impl std::fmt::Display for DmId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A sealed DM with its routing header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dm<P> {
    pub hop_limit: u16,
    pub recipient: P,
    /// Unix milliseconds after which nobody keeps or forwards it.
    pub expires_ms: u64,
    pub enc: [u8; 32],
    pub ct: Vec<u8>,
}

impl<P: PeerBytes> Dm<P> {
    pub fn id(&self) -> DmId {
        let mut h = Sha256::new();
        h.update(DM_ID_DOMAIN);
        let mut r = Vec::with_capacity(P::LEN);
        self.recipient.put(&mut r);
        h.update(&r);
        h.update(self.expires_ms.to_be_bytes());
        h.update(self.enc);
        h.update(&self.ct);
        DmId(h.finalize().into())
    }

    pub fn encoded_len(&self) -> usize {
        1 + 2 + P::LEN + 8 + 32 + 4 + self.ct.len()
    }
}

/// A recipient's signed statement that it received DM `dm` from `sender`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub dm: DmId,
    /// The DM's author (the envelope's signer).
    pub sender: [u8; 32],
    /// Who signs the receipt.
    pub recipient: [u8; 32],
    pub signature: [u8; 64],
}

impl Receipt {
    pub fn sign(recipient: &Keypair, dm: DmId, sender: &PublicKey) -> Self {
        let r = *recipient.public().as_bytes();
        let signature = recipient.sign(&receipt_input(&dm, sender.as_bytes(), &r));
        Self {
            dm,
            sender: *sender.as_bytes(),
            recipient: r,
            signature,
        }
    }

    /// Checks the signature (strict Ed25519): only `recipient` can have made it.
    pub fn verify(&self) -> Result<(), Error> {
        let key = PublicKey::from_bytes(&self.recipient).map_err(|_| Error::BadReceipt)?;
        key.verify(
            &receipt_input(&self.dm, &self.sender, &self.recipient),
            &self.signature,
        )
        .map_err(|_| Error::BadReceipt)
    }
}

fn receipt_input(dm: &DmId, sender: &[u8; 32], recipient: &[u8; 32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(RECEIPT_DOMAIN.len() + 96);
    v.extend_from_slice(RECEIPT_DOMAIN);
    v.extend_from_slice(&dm.0);
    v.extend_from_slice(sender);
    v.extend_from_slice(recipient);
    v
}

/// A receipt on its way back to the DM's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutedReceipt<P> {
    pub hop_limit: u16,
    /// The sender's routing id.
    pub to: P,
    pub receipt: Receipt,
}

/// One DM-layer frame on `/meshchat/route/1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<P> {
    Dm(Dm<P>),
    Receipt(RoutedReceipt<P>),
}

impl<P: PeerBytes> Frame<P> {
    pub fn encoded_len(&self) -> usize {
        match self {
            Frame::Dm(d) => d.encoded_len(),
            Frame::Receipt(_) => 1 + 2 + P::LEN + 32 + 32 + 32 + 64,
        }
    }

    /// The largest frame for ids of type `P`.
    pub fn max_len() -> usize {
        1 + 2 + P::LEN + 8 + 32 + 4 + MAX_CT_LEN
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        match self {
            Frame::Dm(d) => {
                out.push(TAG_DM);
                out.extend_from_slice(&d.hop_limit.to_be_bytes());
                d.recipient.put(&mut out);
                out.extend_from_slice(&d.expires_ms.to_be_bytes());
                out.extend_from_slice(&d.enc);
                out.extend_from_slice(&(d.ct.len() as u32).to_be_bytes());
                out.extend_from_slice(&d.ct);
            }
            Frame::Receipt(r) => {
                out.push(TAG_RECEIPT);
                out.extend_from_slice(&r.hop_limit.to_be_bytes());
                r.to.put(&mut out);
                out.extend_from_slice(&r.receipt.dm.0);
                out.extend_from_slice(&r.receipt.sender);
                out.extend_from_slice(&r.receipt.recipient);
                out.extend_from_slice(&r.receipt.signature);
            }
        }
        out
    }

    /// Decodes one frame; anything malformed or oversized is an error (a strike), never a panic,
    /// and the size is checked before anything is allocated.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > Self::max_len() {
            return Err(Error::TooLarge(bytes.len()));
        }
        let mut r = Reader { buf: bytes, pos: 0 };
        let tag = r.take(1)?[0];
        let hop_limit = u16::from_be_bytes(r.array()?);
        let id = P::get(r.take(P::LEN)?).ok_or(Error::Malformed("routing id"))?;
        let frame = match tag {
            TAG_DM => {
                let expires_ms = u64::from_be_bytes(r.array()?);
                let enc: [u8; 32] = r.array()?;
                let len = u32::from_be_bytes(r.array()?) as usize;
                if !(TAG_LEN..=MAX_CT_LEN).contains(&len) {
                    return Err(Error::TooLarge(len));
                }
                let ct = r.take(len)?.to_vec();
                Frame::Dm(Dm {
                    hop_limit,
                    recipient: id,
                    expires_ms,
                    enc,
                    ct,
                })
            }
            TAG_RECEIPT => Frame::Receipt(RoutedReceipt {
                hop_limit,
                to: id,
                receipt: Receipt {
                    dm: DmId(r.array()?),
                    sender: r.array()?,
                    recipient: r.array()?,
                    signature: r.array()?,
                },
            }),
            other => return Err(Error::UnknownTag(other)),
        };
        if r.pos != bytes.len() {
            return Err(Error::Malformed("trailing bytes"));
        }
        Ok(frame)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(Error::Malformed("truncated"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(Error::Malformed("truncated"))?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

fn aad<P: PeerBytes>(recipient: &P, expires_ms: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(SEAL_INFO.len() + P::LEN + 8);
    v.extend_from_slice(SEAL_INFO);
    recipient.put(&mut v);
    v.extend_from_slice(&expires_ms.to_be_bytes());
    v
}

/// rand 0.8's RNG (the one the core injects everywhere) as the `rand_core` 0.10 RNG `hpke`
/// takes (also for the private rooms' shares). Plumbing only: every byte comes from `R`.
pub(crate) struct Bridge<'a, R>(pub(crate) &'a mut R);

impl<R: rand::RngCore + rand::CryptoRng> hpke::rand_core::TryRng for Bridge<'_, R> {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.0.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

impl<R: rand::RngCore + rand::CryptoRng> hpke::rand_core::TryCryptoRng for Bridge<'_, R> {}

/// Seals `env` (a [`Kind::Direct`] envelope the sender signed) to `recipient`, whose profile
/// gave `key`.
pub fn seal<P: PeerBytes, R: rand::RngCore + rand::CryptoRng>(
    env: &Envelope,
    recipient: P,
    key: SealKey,
    expires_ms: u64,
    hop_limit: u16,
    rng: &mut R,
) -> Result<Dm<P>, Error> {
    if !matches!(env.kind(), Kind::Direct | Kind::File | Kind::Invite) {
        return Err(Error::Malformed("not a direct-message envelope"));
    }
    if env.as_bytes().len() > MAX_DM_ENVELOPE_LEN {
        return Err(Error::TooLarge(env.as_bytes().len()));
    }
    let pk = key.to_hpke()?;
    let (enc, ct) = hpke::single_shot_seal_with_rng::<
        hpke::aead::ChaCha20Poly1305,
        hpke::kdf::HkdfSha256,
        Kem,
    >(
        &hpke::OpModeS::Base,
        &pk,
        SEAL_INFO,
        env.as_bytes(),
        &aad(&recipient, expires_ms),
        &mut Bridge(rng),
    )
    .map_err(|_| Error::BadSealKey)?;
    let mut e = [0u8; 32];
    e.copy_from_slice(&hpke::Serializable::to_bytes(&enc));
    Ok(Dm {
        hop_limit,
        recipient,
        expires_ms,
        enc: e,
        ct,
    })
}

/// A DM opened and checked: the sender's envelope and its text. A file offer (an envelope of
/// [`Kind::File`] sealed like a DM) reads as [`Offer::as_text`] in the conversation and
/// carries the offer, whose piece key only the two ends ever see.
#[derive(Debug, Clone)]
pub struct Opened {
    pub envelope: Envelope,
    pub text: Text,
    pub offer: Option<Offer>,
    /// An invite to a private room (an envelope of [`Kind::Invite`]): its text says so, with
    /// an empty nick (the body carries none; the node names the sender from its profile).
    pub invite: Option<crate::private::Invite>,
}

impl PartialEq for Opened {
    fn eq(&self, other: &Self) -> bool {
        let invite = |o: &Opened| {
            o.invite
                .as_ref()
                .map(|i| (i.room, i.name.clone(), *i.roster_key.as_bytes()))
        };
        self.envelope == other.envelope
            && self.text == other.text
            && self.offer == other.offer
            && invite(self) == invite(other)
    }
}

impl Eq for Opened {}

/// Opens a DM addressed to us (`me` is our identity key) and checks the envelope inside: its
/// signature, that it is a DM, that it names us as target, and its text.
pub fn open<P: PeerBytes>(
    dm: &Dm<P>,
    key: &EncryptionKey,
    me: &PublicKey,
    now_ms: u64,
) -> Result<Opened, Error> {
    let enc = <<Kem as hpke::Kem>::EncappedKey as hpke::Deserializable>::from_bytes(&dm.enc)
        .map_err(|_| Error::CannotOpen)?;
    let plain = hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, Kem>(
        &hpke::OpModeR::Base,
        key.hpke_secret(),
        &enc,
        SEAL_INFO,
        &dm.ct,
        &aad(&dm.recipient, dm.expires_ms),
    )
    .map_err(|_| Error::CannotOpen)?;
    let envelope = Envelope::open(plain, now_ms).map_err(Error::Envelope)?;
    if envelope.target() != hex::encode(me.as_bytes()) {
        return Err(Error::NotForUs);
    }
    match envelope.kind() {
        Kind::Direct => {
            let text = Text::decode(envelope.body()).map_err(|_| Error::Malformed("DM text"))?;
            Ok(Opened {
                envelope,
                text,
                offer: None,
                invite: None,
            })
        }
        Kind::Invite => {
            let invite = crate::private::Invite::decode(envelope.body())
                .map_err(|_| Error::Malformed("room invite"))?;
            let text = Text {
                nick: String::new(),
                text: format!("🔒 invited you to the private room #{}", invite.name),
            };
            Ok(Opened {
                envelope,
                text,
                offer: None,
                invite: Some(invite),
            })
        }
        Kind::File => {
            let offer =
                Offer::decode(envelope.body()).map_err(|_| Error::Malformed("DM file offer"))?;
            // Its pieces are sealed with the key in it: an offer without one would send the
            // file in the clear across the relays.
            if offer.key.is_none() {
                return Err(Error::Malformed("DM file offer without a key"));
            }
            Ok(Opened {
                envelope,
                text: offer.as_text(),
                offer: Some(offer),
                invite: None,
            })
        }
        _ => Err(Error::Malformed("sealed envelope is not a DM")),
    }
}

/// Signs a file offer from `sender` to `recipient`, to be sealed like a DM (the offer must
/// carry its piece key).
pub fn sign_offer(
    sender: &Keypair,
    recipient: &PublicKey,
    offer: &Offer,
    timestamp_ms: u64,
    nonce: u64,
) -> Result<Envelope, Error> {
    if offer.key.is_none() {
        return Err(Error::Malformed("DM file offer without a key"));
    }
    let body = offer
        .encode()
        .map_err(|_| Error::Malformed("DM file offer"))?;
    let target = hex::encode(recipient.as_bytes());
    Envelope::sign(
        sender,
        envelope::Draft {
            kind: Kind::File,
            target: &target,
            timestamp_ms,
            nonce,
            body: &body,
        },
    )
    .map_err(Error::Envelope)
}

/// Signs an invite to a private room from `sender` to `recipient`, to be sealed like a DM.
pub fn sign_invite(
    sender: &Keypair,
    recipient: &PublicKey,
    invite: &crate::private::Invite,
    timestamp_ms: u64,
    nonce: u64,
) -> Result<Envelope, Error> {
    let target = hex::encode(recipient.as_bytes());
    Envelope::sign(
        sender,
        envelope::Draft {
            kind: Kind::Invite,
            target: &target,
            timestamp_ms,
            nonce,
            body: &invite.encode(),
        },
    )
    .map_err(Error::Envelope)
}

/// Signs a DM envelope from `sender` to `recipient` (the step before [`seal`]).
pub fn sign_dm(
    sender: &Keypair,
    recipient: &PublicKey,
    text: &Text,
    timestamp_ms: u64,
    nonce: u64,
) -> Result<Envelope, Error> {
    let body = text.encode().map_err(|_| Error::Malformed("DM text"))?;
    let target = hex::encode(recipient.as_bytes());
    Envelope::sign(
        sender,
        envelope::Draft {
            kind: Kind::Direct,
            target: &target,
            timestamp_ms,
            nonce,
            body: &body,
        },
    )
    .map_err(Error::Envelope)
}
