//! The bytes of file transfer: the offer (an envelope body) and the frames of
//! `/meshchat/file/1`. Integers are big-endian.
//!
//! # Offer (body of an envelope of kind 5)
//!
//! ```text
//! nick_len u8 | nick [nick_len] | name_len u16 | name [name_len] | size u64 | chunk_size u32
//!   | root [32] | has_key u8 | key [32] if has_key == 1
//! ```
//!
//! The envelope's target is a room name, or, inside a sealed DM, the recipient's key in hex.
//! `nick` is checked as a room message's nick; `name` is 1..=255 bytes of UTF-8 without control
//! characters, `/` or `\`, and not `.` or `..`, so that a name can never be a path (the node
//! still picks where to save it); `chunk_size` must be [`chunk_size_for`]`(size)`; `has_key` is
//! 0 (a room file: pieces in the clear) or 1 (a DM file: pieces sealed with `key`,
//! [`super::seal_piece`]). No trailing bytes.
//!
//! # Frames
//!
//! Every frame starts with the same header, which is all a relay reads ([`peek`]):
//!
//! ```text
//! header = tag u8 | hop_limit u16 | to [ID] | from [ID] | root [32]
//! tag 1 Want:   header | timestamp_ms u64 | n u8 | piece u32 * n | signature [64]    n in 1..=32
//! tag 2 Piece:  header | piece u32 | len u32 | data [len]           len <= MAX_PIECE_LEN
//! tag 3 Nope:   header | reason u8                                 reason in 1..=4
//! ```
//!
//! `ID` is the routing id ([`PeerBytes`], the node's 32-byte key). `piece` is
//! [`Piece::to_u32`]: `FFFFFFFF` is the manifest. A Want's signature is Ed25519 by `from` over
//! [`WANT_DOMAIN`] `| to | from | root | timestamp_ms u64 | n u8 | piece u32 * n` (the frame
//! less its tag, hop limit and signature: relays decrement the hop limit). A frame's length must
//! be exactly what its fields say; anything else is an [`Error`], never a panic.
//!
//! For example, with 4-byte ids (the tests'), a Nope from 2 to 1, hop limit 7, root `ab * 32`,
//! reason Busy: `03 0007 00000001 00000002 ab*32 02`.

use std::fmt;

use super::{
    chunk_count, chunk_size_for, Error, Hash, Piece, MAX_CHUNK, MAX_CHUNKS, MAX_FILE_SIZE,
    SEAL_OVERHEAD,
};
use crate::identity::{Keypair, PublicKey};
use crate::room;
use crate::routing::wire::PeerBytes;

/// Longest piece data on the wire: a chunk of [`MAX_CHUNK`] bytes, sealed. The largest manifest
/// ([`MAX_CHUNKS`] hashes, sealed) is far under it.
pub const MAX_PIECE_LEN: usize = MAX_CHUNK as usize + SEAL_OVERHEAD;
const _: () = assert!(MAX_CHUNKS as usize * 32 + SEAL_OVERHEAD <= MAX_PIECE_LEN);

/// Most pieces one Want asks for: with 1 MiB chunks, 32 MiB, above any window.
pub const MAX_WANT: usize = 32;
/// Longest file name in an offer, in bytes (what file systems allow).
pub const MAX_NAME_LEN: usize = 255;

/// First byte of a Want frame.
pub const TAG_WANT: u8 = 1;
/// First byte of a Piece frame.
pub const TAG_PIECE: u8 = 2;
/// First byte of a Nope frame.
pub const TAG_NOPE: u8 = 3;

/// What a Want's signature starts with.
pub const WANT_DOMAIN: &[u8] = b"meshchat file want v1";

/// The body of a file-offer envelope (kind 5): what is offered, by whom, and for a DM file the
/// key its pieces are sealed with. The envelope's signature makes the root the author's word.
#[derive(Clone, PartialEq, Eq)]
pub struct Offer {
    /// The author's nick, shown with the offer (inside the signature, like a room message's).
    pub nick: String,
    /// The file name the author suggests; never a path (see the module docs).
    pub name: String,
    /// File size in bytes, at most [`MAX_FILE_SIZE`].
    pub size: u64,
    /// Exactly [`chunk_size_for`]`(size)`.
    pub chunk_size: u32,
    /// The file's identity ([`super::Manifest::root`]).
    pub root: Hash,
    /// For a DM file, the key its pieces are sealed with (the offer itself travels sealed);
    /// `None` for a room file. A secret: [`Offer`]'s `Debug` does not show it.
    pub key: Option<[u8; 32]>,
}

impl fmt::Debug for Offer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Offer")
            .field("nick", &self.nick)
            .field("name", &self.name)
            .field("size", &self.size)
            .field("chunk_size", &self.chunk_size)
            .field("root", &hex::encode(self.root))
            .field("key", &self.key.map(|_| "…"))
            .finish()
    }
}

/// A file name an offer may carry (see the module docs).
fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::BadName("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::BadName("over 255 bytes"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(Error::BadName("control character"));
    }
    if name.contains(['/', '\\']) {
        return Err(Error::BadName("path separator"));
    }
    if name == "." || name == ".." {
        return Err(Error::BadName("dot name"));
    }
    Ok(())
}

impl Offer {
    /// The offer's bytes; refuses what [`Offer::decode`] would refuse, and a nick this node may
    /// not send ([`room::validate_nick`]).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        room::validate_nick(&self.nick)?;
        self.check()?;
        let mut out = Vec::with_capacity(1 + self.nick.len() + 2 + self.name.len() + 12 + 33 + 32);
        out.push(self.nick.len() as u8);
        out.extend_from_slice(self.nick.as_bytes());
        out.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.chunk_size.to_be_bytes());
        out.extend_from_slice(&self.root);
        match &self.key {
            Some(key) => {
                out.push(1);
                out.extend_from_slice(key);
            }
            None => out.push(0),
        }
        Ok(out)
    }

    /// The checks both ends make, beyond the nick.
    fn check(&self) -> Result<(), Error> {
        check_name(&self.name)?;
        if self.size > MAX_FILE_SIZE {
            return Err(Error::TooLarge(self.size));
        }
        if chunk_size_for(self.size) != Some(self.chunk_size) {
            return Err(Error::ChunkSize {
                size: self.size,
                chunk_size: self.chunk_size,
            });
        }
        Ok(())
    }

    /// Decodes an offer's body; anything malformed is an error, never a panic. The nick is
    /// checked as a received room message's ([`room`]), leniently.
    pub fn decode(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader(body);
        let nick_len = r.u8()? as usize;
        let nick = std::str::from_utf8(r.take(nick_len)?)
            .map_err(|_| Error::Malformed("nick not UTF-8"))?;
        room::check_nick_received(nick)?;
        let name_len = r.u16()? as usize;
        let name = std::str::from_utf8(r.take(name_len)?)
            .map_err(|_| Error::Malformed("name not UTF-8"))?;
        let size = r.u64()?;
        let chunk_size = r.u32()?;
        let root = r.array::<32>()?;
        let key = match r.u8()? {
            0 => None,
            1 => Some(r.array::<32>()?),
            _ => return Err(Error::Malformed("has_key")),
        };
        if !r.0.is_empty() {
            return Err(Error::Malformed("trailing bytes"));
        }
        let offer = Self {
            nick: nick.to_owned(),
            name: name.to_owned(),
            size,
            chunk_size,
            root,
            key,
        };
        offer.check()?;
        Ok(offer)
    }

    /// Chunks in the offered file.
    /// How a file offer reads in a room's history or a DM conversation, for every front-end
    /// and for nodes that only show texts: `📎 photo.jpg (2.2 MiB)`.
    pub fn as_text(&self) -> crate::room::Text {
        crate::room::Text {
            nick: self.nick.clone(),
            text: format!("📎 {} ({})", self.name, crate::room::human_size(self.size)),
        }
    }

    pub fn chunk_count(&self) -> u32 {
        chunk_count(self.size, self.chunk_size)
    }
}

/// Reads fields off the front of a slice; running out is [`Error::Malformed`].
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn peer<P: PeerBytes>(&mut self) -> Result<P, Error> {
        P::get(self.take(P::LEN)?).ok_or(Error::Malformed("peer id"))
    }
}

/// A frame of `/meshchat/file/1`, routed hop by hop like [`crate::routed`]: relays forward it on
/// their routing table's next hop for `to` with the hop limit less one, reading only the header.
/// `P` is the node id ([`PeerBytes`]; the node uses the 32-byte Ed25519 key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<P> {
    /// Tag 1: a downloader asks a holder for pieces.
    Want(Want<P>),
    /// Tag 2: a holder sends a piece.
    Piece(PieceFrame<P>),
    /// Tag 3: a holder or relay refuses.
    Nope(Nope<P>),
}

/// A downloader (`from`) asks holder `to` for pieces of `root`. Signed by `from` (see the module
/// docs for the bytes), so nobody can make holders send data toward a victim in someone else's
/// name. A holder serves only a Want that verifies and whose `timestamp_ms` is within a window
/// of its own clock (the node's choice), which bounds how long a captured Want can be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want<P> {
    /// Hops left; outside the signature, so relays can decrement it.
    pub hop_limit: u16,
    /// The holder asked.
    pub to: P,
    /// The downloader, who signed.
    pub from: P,
    /// The file.
    pub root: Hash,
    /// When the downloader sent it (Unix ms, its clock), for the holder's replay window.
    pub timestamp_ms: u64,
    /// The pieces wanted, 1..=[`MAX_WANT`].
    pub pieces: Vec<Piece>,
    /// Ed25519 by `from`.
    pub signature: [u8; 64],
}

impl<P: PeerBytes> Want<P> {
    /// The bytes the signature covers.
    fn signed_bytes(to: &P, from: &P, root: &Hash, timestamp_ms: u64, pieces: &[Piece]) -> Vec<u8> {
        let mut m = Vec::with_capacity(WANT_DOMAIN.len() + 2 * P::LEN + 32 + 9 + 4 * pieces.len());
        m.extend_from_slice(WANT_DOMAIN);
        to.put(&mut m);
        from.put(&mut m);
        m.extend_from_slice(root);
        m.extend_from_slice(&timestamp_ms.to_be_bytes());
        m.push(pieces.len() as u8);
        for p in pieces {
            m.extend_from_slice(&p.to_u32().to_be_bytes());
        }
        m
    }
}

impl Want<[u8; 32]> {
    /// A Want from `key`'s node (`from` = its public key) to holder `to`.
    ///
    /// # Panics
    /// If `pieces` is empty or longer than [`MAX_WANT`] (the download machine never asks so).
    pub fn sign(
        key: &Keypair,
        hop_limit: u16,
        to: [u8; 32],
        root: Hash,
        timestamp_ms: u64,
        pieces: Vec<Piece>,
    ) -> Self {
        assert!(
            (1..=MAX_WANT).contains(&pieces.len()),
            "a Want of {} pieces",
            pieces.len()
        );
        let from = *key.public().as_bytes();
        let signature = key.sign(&Self::signed_bytes(
            &to,
            &from,
            &root,
            timestamp_ms,
            &pieces,
        ));
        Self {
            hop_limit,
            to,
            from,
            root,
            timestamp_ms,
            pieces,
            signature,
        }
    }

    /// Whether `from` signed this Want (strict Ed25519). The holder also checks the timestamp.
    pub fn verify(&self) -> bool {
        let Ok(key) = PublicKey::from_bytes(&self.from) else {
            return false;
        };
        let msg = Self::signed_bytes(
            &self.to,
            &self.from,
            &self.root,
            self.timestamp_ms,
            &self.pieces,
        );
        key.verify(&msg, &self.signature).is_ok()
    }
}

/// Piece data from holder `from` to downloader `to`: in the clear for a room file, sealed for a
/// DM file. Not signed: the downloader checks the data against the manifest (and the manifest
/// against the root), which no relay can forge.
#[derive(Clone, PartialEq, Eq)]
pub struct PieceFrame<P> {
    /// Hops left.
    pub hop_limit: u16,
    /// The downloader.
    pub to: P,
    /// The holder that sent it.
    pub from: P,
    /// The file.
    pub root: Hash,
    /// Which piece.
    pub piece: Piece,
    /// The piece's bytes, at most [`MAX_PIECE_LEN`].
    pub data: Vec<u8>,
}

impl<P: fmt::Debug> fmt::Debug for PieceFrame<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The data can be a megabyte: its length is enough in a log.
        f.debug_struct("PieceFrame")
            .field("hop_limit", &self.hop_limit)
            .field("to", &self.to)
            .field("from", &self.from)
            .field("root", &hex::encode(self.root))
            .field("piece", &self.piece)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// A refusal to the downloader (`to`) about one holder (`from`): sent by the holder itself, or
/// by a relay that could not pass on a frame from or for that holder (no route, a full queue),
/// so that the downloader backs off that holder at once. Not signed: a relay that lies in one
/// could only slow a transfer it could as well drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nope<P> {
    /// Hops left.
    pub hop_limit: u16,
    /// The downloader.
    pub to: P,
    /// The holder it is about.
    pub from: P,
    /// The file.
    pub root: Hash,
    /// Why.
    pub reason: Refusal,
}

/// Why a Want was not served. An unknown byte is a decode error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Refusal {
    /// The holder does not have the file.
    NotHere = 1,
    /// The holder or a relay is over its limits: retry later.
    Busy = 2,
    /// A relay has no route to `to`.
    NoRoute = 3,
    /// The holder's file changed or was removed.
    Gone = 4,
}

impl Refusal {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Refusal::NotHere,
            2 => Refusal::Busy,
            3 => Refusal::NoRoute,
            4 => Refusal::Gone,
            _ => return None,
        })
    }
}

/// The header of a frame, as a relay reads it ([`peek`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<P> {
    /// [`TAG_WANT`], [`TAG_PIECE`] or [`TAG_NOPE`].
    pub tag: u8,
    /// Hops left: a relay drops the frame at 0, else forwards it with one less.
    pub hop_limit: u16,
    /// Where the frame goes (what the relay routes on).
    pub to: P,
    /// Who sent it (for the relay's per-peer limits).
    pub from: P,
    /// The file it is about (for a relay's refusal to the downloader).
    pub root: Hash,
}

/// Bytes of the shared header for ids of type `P`.
fn header_len<P: PeerBytes>() -> usize {
    1 + 2 + 2 * P::LEN + 32
}

/// Bytes of a Want after the header, with `n` pieces.
fn want_tail(n: usize) -> usize {
    8 + 1 + 4 * n + 64
}

/// For relays: the tag, hop limit, `to` and `from` of a frame, read from its first bytes without
/// decoding (or copying) the rest. `None` if too short, the tag is unknown or an id is invalid.
pub fn peek<P: PeerBytes>(bytes: &[u8]) -> Option<Header<P>> {
    if bytes.len() < header_len::<P>() {
        return None;
    }
    let mut r = Reader(bytes);
    let tag = r.u8().ok()?;
    if !(TAG_WANT..=TAG_NOPE).contains(&tag) {
        return None;
    }
    Some(Header {
        tag,
        hop_limit: r.u16().ok()?,
        to: r.peer().ok()?,
        from: r.peer().ok()?,
        root: r.array().ok()?,
    })
}

/// For relays: rewrites a frame's hop limit in place (bytes 1..3). Does nothing to a frame too
/// short to have one.
pub fn set_hop_limit(bytes: &mut [u8], hop_limit: u16) {
    if let Some(field) = bytes.get_mut(1..3) {
        field.copy_from_slice(&hop_limit.to_be_bytes());
    }
}

impl<P: PeerBytes + Copy> Frame<P> {
    /// The largest frame for ids of type `P` (a Piece with the longest data).
    pub fn max_len() -> usize {
        header_len::<P>() + (4 + 4 + MAX_PIECE_LEN).max(want_tail(MAX_WANT)).max(1)
    }

    /// The recipient.
    pub fn to(&self) -> P {
        match self {
            Frame::Want(w) => w.to,
            Frame::Piece(p) => p.to,
            Frame::Nope(n) => n.to,
        }
    }

    /// The sender (the downloader for a Want, the holder or relay otherwise).
    pub fn from(&self) -> P {
        match self {
            Frame::Want(w) => w.from,
            Frame::Piece(p) => p.from,
            Frame::Nope(n) => n.from,
        }
    }

    /// The file.
    pub fn root(&self) -> &Hash {
        match self {
            Frame::Want(w) => &w.root,
            Frame::Piece(p) => &p.root,
            Frame::Nope(n) => &n.root,
        }
    }

    /// Hops left.
    pub fn hop_limit(&self) -> u16 {
        match self {
            Frame::Want(w) => w.hop_limit,
            Frame::Piece(p) => p.hop_limit,
            Frame::Nope(n) => n.hop_limit,
        }
    }

    /// The frame's bytes.
    ///
    /// # Panics
    /// For a Want of 0 or more than [`MAX_WANT`] pieces, or piece data over [`MAX_PIECE_LEN`]
    /// bytes (this node never builds either).
    pub fn encode(&self) -> Vec<u8> {
        let (tag, tail) = match self {
            Frame::Want(w) => {
                assert!((1..=MAX_WANT).contains(&w.pieces.len()), "Want length");
                (TAG_WANT, want_tail(w.pieces.len()))
            }
            Frame::Piece(p) => {
                assert!(p.data.len() <= MAX_PIECE_LEN, "piece length");
                (TAG_PIECE, 8 + p.data.len())
            }
            Frame::Nope(_) => (TAG_NOPE, 1),
        };
        let mut out = Vec::with_capacity(header_len::<P>() + tail);
        out.push(tag);
        out.extend_from_slice(&self.hop_limit().to_be_bytes());
        self.to().put(&mut out);
        self.from().put(&mut out);
        out.extend_from_slice(self.root());
        match self {
            Frame::Want(w) => {
                out.extend_from_slice(&w.timestamp_ms.to_be_bytes());
                out.push(w.pieces.len() as u8);
                for p in &w.pieces {
                    out.extend_from_slice(&p.to_u32().to_be_bytes());
                }
                out.extend_from_slice(&w.signature);
            }
            Frame::Piece(p) => {
                out.extend_from_slice(&p.piece.to_u32().to_be_bytes());
                out.extend_from_slice(&(p.data.len() as u32).to_be_bytes());
                out.extend_from_slice(&p.data);
            }
            Frame::Nope(n) => out.push(n.reason as u8),
        }
        out
    }

    /// Decodes a frame; anything malformed or oversized is an error, never a panic, and nothing
    /// is allocated before the lengths are checked.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > Self::max_len() {
            return Err(Error::FrameTooLarge(bytes.len()));
        }
        let mut r = Reader(bytes);
        let tag = r.u8()?;
        let hop_limit = r.u16()?;
        let to = r.peer()?;
        let from = r.peer()?;
        let root = r.array::<32>()?;
        let frame = match tag {
            TAG_WANT => {
                let timestamp_ms = r.u64()?;
                let n = r.u8()? as usize;
                if n == 0 || n > MAX_WANT {
                    return Err(Error::Malformed("Want piece count"));
                }
                let list = r.take(4 * n)?;
                let pieces = list
                    .chunks_exact(4)
                    .map(|b| Piece::from_u32(u32::from_be_bytes(b.try_into().expect("4 bytes"))))
                    .collect();
                let signature = r.array::<64>()?;
                Frame::Want(Want {
                    hop_limit,
                    to,
                    from,
                    root,
                    timestamp_ms,
                    pieces,
                    signature,
                })
            }
            TAG_PIECE => {
                let piece = Piece::from_u32(r.u32()?);
                let len = r.u32()? as usize;
                if len > MAX_PIECE_LEN {
                    return Err(Error::Malformed("piece length"));
                }
                let data = r.take(len)?.to_vec();
                Frame::Piece(PieceFrame {
                    hop_limit,
                    to,
                    from,
                    root,
                    piece,
                    data,
                })
            }
            TAG_NOPE => {
                let reason = Refusal::from_u8(r.u8()?).ok_or(Error::Malformed("refusal"))?;
                Frame::Nope(Nope {
                    hop_limit,
                    to,
                    from,
                    root,
                    reason,
                })
            }
            _ => return Err(Error::Malformed("tag")),
        };
        if !r.0.is_empty() {
            return Err(Error::Malformed("trailing bytes"));
        }
        Ok(frame)
    }
}
