//! File transfer: chunked, verified, resumable, across hops, from several holders at once.
//!
//! # Overview
//!
//! A file is cut into chunks of one size (the last may be short). Each chunk's BLAKE3 hash goes
//! into the **manifest**; the file's identity, its **root**, is a BLAKE3 hash over the manifest
//! (with the size and the chunk size). A signed **offer** ([`wire::Offer`], envelope kind 5)
//! names the root, the size, the chunk size and a file name, so a downloader that trusts the
//! offer's author can check every byte it gets from anyone:
//!
//! 1. it fetches the manifest ([`Piece::Manifest`]) from a holder and checks it against the root
//!    ([`Manifest::decode`]);
//! 2. it fetches the chunks ([`Piece::Chunk`]), each checked against its hash in the manifest
//!    ([`Manifest::check`]), from one or more **holders** (the offer's author, and nodes that
//!    finished the file), with a bounded window per holder, timeouts and retries
//!    ([`Download`], the downloader's state machine);
//! 3. the node writes each verified chunk at its offset and marks it had, so a restart resumes
//!    with the chunks on disk (`have`) and the manifest.
//!
//! Frames ([`wire::Frame`]) travel hop by hop on `/meshchat/file/1` like [`crate::routed`]:
//! relays read the header ([`wire::peek`]), decrement the hop limit in place
//! ([`wire::set_hop_limit`]) and forward along their routing table, never decoding or checking
//! the rest. Only the ends check: the holder checks a `Want`'s signature, the downloader checks
//! data against the manifest, so relays cannot forge anything the downloader would accept.
//!
//! Why these choices:
//!
//! - **One chunk size per file size** ([`chunk_size_for`]): the smallest power of two from
//!   [`MIN_CHUNK`] that keeps the manifest at [`MAX_CHUNKS`] hashes (128 KiB, one piece). The
//!   same file always has the same root, whoever offers it, so holders of one file are
//!   interchangeable; offers with another chunk size are refused.
//! - **A flat manifest** rather than a hash tree: at most 4 096 hashes, fetched once (one piece),
//!   after which every chunk is checked on its own, in any order, from anyone.
//! - **BLAKE3**: fast (the downloader hashes every byte it receives) and a standard hash.
//!
//! # The manifest and the root
//!
//! ```text
//! manifest (on the wire) = hash [32] * count          count = ceil(size / chunk_size)
//! root = BLAKE3( "meshchat file manifest v1" | size u64 | chunk_size u32 | hash [32] * count )
//! ```
//!
//! Integers are big-endian. The domain string is a fixed prefix and every field after it has a
//! fixed length (the count follows from the size), so no two manifests hash the same bytes. The
//! manifest on the wire holds only the hashes: the size and the chunk size are in the offer.
//!
//! # DM files
//!
//! A file offered in a DM is encrypted piece by piece ([`seal_piece`], [`open_piece`]) with
//! ChaCha20-Poly1305 under a random 32-byte key chosen per offer and carried inside the sealed
//! DM offer ([`wire::Offer::key`]). The nonce is the piece number ([`Piece::to_u32`], big-endian,
//! in the last 4 of 12 bytes) and the associated data is the root. Each piece has exactly one
//! plaintext under a key (the chunk the manifest names, or the manifest itself), so the nonce is
//! never used for two different plaintexts: resending a piece encrypts the same plaintext with the
//! same nonce and yields the same ciphertext, which tells an observer only that the same piece
//! was sent twice (visible anyway from the frame's `piece` field), and leaks nothing of the key
//! or the data, unlike a nonce reused for different plaintexts. The root as associated data
//! keeps sealed pieces from being replayed into another transfer under the same key. Relays see
//! the root, the sizes and the piece numbers, not the content; the hashes that name the file
//! are computed over the plaintext, so the root of a DM file reveals only whether someone
//! else holds the very same file.
//!
//! # Wire format
//!
//! Integers are big-endian; `ID` is the routing id (the 32-byte node key). In short (the
//! details, limits and checks are in [`wire`]):
//!
//! ```text
//! offer (envelope kind 5 body):
//!   nick_len u8 | nick | name_len u16 | name | size u64 | chunk_size u32 | root [32]
//!   | has_key u8 | key [32] if has_key
//! frames of /meshchat/file/1, all starting  tag u8 | hop_limit u16 | to [ID] | from [ID] | root [32]
//!   tag 1 Want:   timestamp_ms u64 | n u8 | piece u32 * n | signature [64]     n in 1..=32
//!   tag 2 Piece:  piece u32 | len u32 | data [len]                             len <= 1 MiB + 16
//!   tag 3 Nope:   reason u8            1 not here, 2 busy, 3 no route, 4 gone
//! piece u32: FFFFFFFF is the manifest, any other value a chunk index
//! ```
//!
//! The header is the same for every frame so a relay can route without decoding the rest, and
//! rewrite the hop limit in place. Only Wants are signed (they make a holder send data, so a
//! node must not be able to send them in another's name); pieces need no signature, the
//! manifest checks them; a Nope is advice (the downloader's timeouts cover a lying one).

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

mod download;
pub mod wire;

pub use download::{Config, Download, Input, Output, Stats};

/// A BLAKE3 hash: of a chunk, or of a manifest (the root).
pub type Hash = [u8; 32];

/// Smallest chunk: small files are still cut into pieces of this size (one piece if smaller), so
/// per-piece overhead (a hash, a frame header, a round of the window) stays small.
pub const MIN_CHUNK: u32 = 256 * 1024;
/// Largest chunk: bounds one frame's data, so relays' buffers and a lost piece cost at most 1 MiB.
pub const MAX_CHUNK: u32 = 1024 * 1024;
/// Most chunks in a file, so a manifest is at most 128 KiB (fetched as one piece).
pub const MAX_CHUNKS: u32 = 4096;
/// Largest file: [`MAX_CHUNKS`] chunks of [`MAX_CHUNK`] bytes (4 GiB).
pub const MAX_FILE_SIZE: u64 = MAX_CHUNK as u64 * MAX_CHUNKS as u64;
/// Bytes [`seal_piece`] adds (the Poly1305 tag).
pub const SEAL_OVERHEAD: usize = 16;

/// The domain string that starts the bytes hashed into a root.
const MANIFEST_DOMAIN: &[u8] = b"meshchat file manifest v1";

/// The chunk size of a file of `size` bytes: the smallest power of two from [`MIN_CHUNK`] such
/// that the file has at most [`MAX_CHUNKS`] chunks; `None` if `size` is over [`MAX_FILE_SIZE`].
/// There is exactly one per size, so the same file always has the same root.
pub fn chunk_size_for(size: u64) -> Option<u32> {
    if size > MAX_FILE_SIZE {
        return None;
    }
    let mut chunk = MIN_CHUNK;
    while size.div_ceil(u64::from(chunk)) > u64::from(MAX_CHUNKS) {
        chunk *= 2;
    }
    Some(chunk)
}

/// A file name safe to create in a directory: its last path component, control characters
/// replaced, not hidden (no leading dot), at most 200 bytes (room for ` (n)` before the
/// extension); `file` when nothing is left. For names from offers and from uploads alike.
pub fn safe_file_name(name: &str) -> String {
    const MAX: usize = 200;
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let clean = clean.trim().trim_start_matches('.').trim();
    let mut out = String::new();
    for c in clean.chars() {
        if out.len() + c.len_utf8() > MAX {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        "file".to_owned()
    } else {
        out
    }
}

/// The `n`th other name for a taken `name`: `photo (2).jpg`, `README (1)`; `name` itself for 0.
pub fn numbered_name(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_owned();
    }
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{} ({n}){}", &name[..i], &name[i..]),
        _ => format!("{name} ({n})"),
    }
}

/// Chunks in a file of `size` bytes: `ceil(size / chunk_size)`; 0 for an empty file (and for a
/// chunk size of 0, which no valid offer has). Saturates at `u32::MAX`.
pub fn chunk_count(size: u64, chunk_size: u32) -> u32 {
    if chunk_size == 0 {
        return 0;
    }
    u32::try_from(size.div_ceil(u64::from(chunk_size))).unwrap_or(u32::MAX)
}

/// Which piece of a transfer: the manifest, or chunk `i`. On the wire a `u32`: `u32::MAX` is the
/// manifest (no file has that many chunks), any other value a chunk index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Piece {
    /// The manifest (the chunk hashes), fetched first.
    Manifest,
    /// Chunk `i` of the file, from 0.
    Chunk(u32),
}

impl Piece {
    /// The wire value (also the piece's nonce in [`seal_piece`]).
    pub fn to_u32(self) -> u32 {
        match self {
            Piece::Manifest => u32::MAX,
            Piece::Chunk(i) => i,
        }
    }

    /// The piece a wire value names; every value names one (an index out of range is the
    /// manifest's business, see [`Manifest::chunk_len`]).
    pub fn from_u32(v: u32) -> Self {
        if v == u32::MAX {
            Piece::Manifest
        } else {
            Piece::Chunk(v)
        }
    }
}

/// What is wrong with a manifest, an offer or a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("file of {0} bytes is over the limit of {MAX_FILE_SIZE}")]
    TooLarge(u64),
    #[error("chunk {index} has {got} bytes, expected {expected}")]
    ChunkLength {
        index: u32,
        expected: usize,
        got: usize,
    },
    #[error("manifest incomplete: chunks missing")]
    Incomplete,
    #[error("malformed: {0}")]
    Malformed(&'static str),
    #[error("manifest does not match the offer's root")]
    RootMismatch,
    /// The chunk size is not [`chunk_size_for`] the size.
    #[error("chunk size {chunk_size} is not the one for {size} bytes")]
    ChunkSize { size: u64, chunk_size: u32 },
    /// A file name that is empty, too long, or could name another path (see [`wire::Offer`]).
    #[error("bad file name: {0}")]
    BadName(&'static str),
    #[error("bad nick: {0}")]
    BadNick(#[from] crate::room::Error),
    #[error("frame of {0} bytes is over its limit")]
    FrameTooLarge(usize),
}

/// The chunk hashes of a file, with its size and chunk size: what every chunk is checked
/// against. Its [`root`](Manifest::root) names the file.
#[derive(Clone, PartialEq, Eq)]
pub struct Manifest {
    /// File size in bytes (at most [`MAX_FILE_SIZE`]).
    size: u64,
    /// [`chunk_size_for`] the size: one chunking per size.
    chunk_size: u32,
    /// BLAKE3 of each chunk, in file order; `chunk_count(size, chunk_size)` of them.
    hashes: Vec<Hash>,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Up to 4 096 hashes would drown any log line.
        f.debug_struct("Manifest")
            .field("size", &self.size)
            .field("chunk_size", &self.chunk_size)
            .field("count", &self.count())
            .finish()
    }
}

impl Manifest {
    /// A builder for the manifest of a file of `size` bytes, fed chunk by chunk in file order as
    /// the sender reads it (so the file is read once and never held whole).
    pub fn builder(size: u64) -> Result<ManifestBuilder, Error> {
        let chunk_size = chunk_size_for(size).ok_or(Error::TooLarge(size))?;
        let count = chunk_count(size, chunk_size);
        Ok(ManifestBuilder {
            manifest: Manifest {
                size,
                chunk_size,
                hashes: Vec::with_capacity(count as usize),
            },
        })
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Chunk size in bytes.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Number of chunks.
    pub fn count(&self) -> u32 {
        chunk_count(self.size, self.chunk_size)
    }

    /// Byte length of chunk `i` (the last one may be short); `None` if `i` is out of range.
    pub fn chunk_len(&self, i: u32) -> Option<usize> {
        chunk_len(self.size, self.chunk_size, i)
    }

    /// Byte offset of chunk `i` in the file (where the node writes it).
    pub fn offset(&self, i: u32) -> u64 {
        u64::from(i) * u64::from(self.chunk_size)
    }

    /// The hash of chunk `i`, if in range.
    pub fn hash(&self, i: u32) -> Option<&Hash> {
        self.hashes.get(i as usize)
    }

    /// The file's identity (see the module docs for the bytes hashed).
    pub fn root(&self) -> Hash {
        root_of(self.size, self.chunk_size, &self.hashes)
    }

    /// Whether `data` is exactly chunk `i`: its length and its hash. Out of range: false.
    pub fn check(&self, i: u32, data: &[u8]) -> bool {
        match (self.chunk_len(i), self.hash(i)) {
            (Some(len), Some(hash)) => data.len() == len && Self::hash_chunk(data) == *hash,
            _ => false,
        }
    }

    /// The manifest as sent on the wire: the concatenated hashes (the size and the chunk size
    /// are in the offer).
    pub fn encode(&self) -> Vec<u8> {
        self.hashes.concat()
    }

    /// Decodes a manifest received for an offer and checks it against the offer's facts: the
    /// chunk size is the one for the size, the length is right for the count, and the root is
    /// `root`. Anything else is an error, never a panic.
    pub fn decode(bytes: &[u8], size: u64, chunk_size: u32, root: &Hash) -> Result<Self, Error> {
        check_sizes(size, chunk_size)?;
        let count = chunk_count(size, chunk_size) as usize;
        if bytes.len() != count * 32 {
            return Err(Error::Malformed("manifest length"));
        }
        let hashes: Vec<Hash> = bytes
            .chunks_exact(32)
            .map(|h| h.try_into().expect("32-byte chunks"))
            .collect();
        if root_of(size, chunk_size, &hashes) != *root {
            return Err(Error::RootMismatch);
        }
        Ok(Self {
            size,
            chunk_size,
            hashes,
        })
    }

    /// The hash of a chunk's bytes (BLAKE3).
    pub fn hash_chunk(data: &[u8]) -> Hash {
        *blake3::hash(data).as_bytes()
    }
}

/// Builds a [`Manifest`] chunk by chunk ([`Manifest::builder`]).
#[derive(Debug)]
pub struct ManifestBuilder {
    /// The manifest so far: the hashes of the chunks pushed.
    manifest: Manifest,
}

impl ManifestBuilder {
    /// Adds the next chunk; it must be exactly the next chunk's length
    /// ([`Error::ChunkLength`]; a chunk past the last one has an expected length of 0).
    pub fn push(&mut self, data: &[u8]) -> Result<(), Error> {
        let m = &mut self.manifest;
        let index = m.hashes.len() as u32;
        let expected = m.chunk_len(index).unwrap_or(0);
        if data.len() != expected || expected == 0 {
            return Err(Error::ChunkLength {
                index,
                expected,
                got: data.len(),
            });
        }
        m.hashes.push(Manifest::hash_chunk(data));
        Ok(())
    }

    /// The manifest, once every chunk was pushed ([`Error::Incomplete`] otherwise).
    pub fn finish(self) -> Result<Manifest, Error> {
        if self.manifest.hashes.len() != self.manifest.count() as usize {
            return Err(Error::Incomplete);
        }
        Ok(self.manifest)
    }
}

/// The offer's facts are consistent: size in range, the one chunk size for it.
fn check_sizes(size: u64, chunk_size: u32) -> Result<(), Error> {
    match chunk_size_for(size) {
        None => Err(Error::TooLarge(size)),
        Some(c) if c != chunk_size => Err(Error::ChunkSize { size, chunk_size }),
        Some(_) => Ok(()),
    }
}

/// Length of chunk `i` of a file, `None` out of range.
pub fn chunk_len(size: u64, chunk_size: u32, i: u32) -> Option<usize> {
    if i >= chunk_count(size, chunk_size) {
        return None;
    }
    let start = u64::from(i) * u64::from(chunk_size);
    Some((size - start).min(u64::from(chunk_size)) as usize)
}

fn root_of(size: u64, chunk_size: u32, hashes: &[Hash]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(MANIFEST_DOMAIN);
    h.update(&size.to_be_bytes());
    h.update(&chunk_size.to_be_bytes());
    for hash in hashes {
        h.update(hash);
    }
    *h.finalize().as_bytes()
}

/// The nonce of a piece: 8 zero bytes, then the piece's wire value big-endian.
fn nonce(piece: Piece) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[8..].copy_from_slice(&piece.to_u32().to_be_bytes());
    n
}

/// Encrypts a piece of a DM file (see the module docs: ChaCha20-Poly1305, nonce = the piece,
/// associated data = the root). The result is [`SEAL_OVERHEAD`] bytes longer.
pub fn seal_piece(key: &[u8; 32], root: &Hash, piece: Piece, plain: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    cipher
        .encrypt(
            Nonce::from_slice(&nonce(piece)),
            Payload {
                msg: plain,
                aad: root,
            },
        )
        // Fails only for plaintexts over 256 GiB; pieces are at most 1 MiB.
        .expect("a piece is far below ChaCha20-Poly1305's limit")
}

/// Decrypts a piece of a DM file; `None` if it was not sealed with this key, root and piece (or
/// was altered on the way).
pub fn open_piece(key: &[u8; 32], root: &Hash, piece: Piece, sealed: &[u8]) -> Option<Vec<u8>> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    cipher
        .decrypt(
            Nonce::from_slice(&nonce(piece)),
            Payload {
                msg: sealed,
                aad: root,
            },
        )
        .ok()
}

#[cfg(test)]
mod tests;
