//! The bytes of election messages: the body of a [`crate::envelope::Kind::Tracker`] envelope.
//! The sender is the envelope's author, so no message names its sender.
//!
//! ```text
//! 1 heartbeat    | epoch u64 | priority u32 | roster u32                     17 bytes
//! 2 election     | epoch u64 | flags u8 | priority u32                       14 bytes
//!                  flags: 1 eligible, 2 flooded (other bits refused)
//! 3 alive        | epoch u64 | priority u32                                  13 bytes
//! 4 coordinator  | epoch u64 | priority u32                                  13 bytes
//! 5 register     | epoch u64 | entry
//! 6 roster       | epoch u64 | version u32 | truncated u8 (0/1) | count u16 | entry * count
//!
//! entry = id [ID] | eligible u8 (0/1) | priority u32 | nick_len u8 | nick
//!         | addr_count u8 | (addr_len u8 | addr) * addr_count
//! ```
//!
//! Integers are big-endian; `[ID]` is the peer id's fixed-length encoding
//! ([`PeerBytes`]: 32 bytes for the node's key). A node that is not eligible sends priority 0
//! with `eligible` 0. Nicks are 0..=[`MAX_NICK_LEN`] bytes of UTF-8 without control
//! characters; an entry has at most [`MAX_ADDRS`] addresses of 1..=[`MAX_ADDR_LEN`] bytes of
//! the same kind of text (multiaddrs in their string form). The whole body is at most
//! [`MAX_BODY`] bytes. [`Msg::decode`] refuses anything else (an unknown tag or flag, a
//! priority without `eligible`, a length or count over its bound, bad UTF-8, a control
//! character, trailing bytes) with an [`Error`], and never panics; [`Msg::encode`] never
//! produces what `decode` refuses: it clips nicks, drops addresses that do not fit and cuts a
//! roster that would not fit, setting its `truncated` flag ([`sanitize`] and [`fit_roster`],
//! which the state machine applies before it sends).
//!
//! An entry with 32-byte ids, an 8-byte nick and two 40-byte addresses is 129 bytes, so a
//! roster message holds about 470 of those; a worst-case entry is 1 103 bytes (at least 55).

use crate::routing::wire::PeerBytes;

/// One roster entry: what a node registers about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<P> {
    pub id: P,
    pub nick: String,
    /// Where to dial it (multiaddrs as text), at most [`MAX_ADDRS`].
    pub addrs: Vec<String>,
    /// `None`: not tracker-eligible.
    pub priority: Option<u32>,
}

/// What travels between nodes: the body of a tracker envelope (bytes: the module docs). None
/// names its sender: that is the envelope's (authenticated) author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg<P> {
    /// Flooded by the tracker every [`super::Limits::heartbeat_interval`]. `roster` is the
    /// version of its roster (it changes with every change of the roster): a follower whose
    /// copy is of another version asks for the roster again.
    Heartbeat {
        epoch: u64,
        priority: u32,
        roster: u32,
    },
    /// "I am running an election": routed to the higher-ranked candidates the sender knows,
    /// flooded (`flooded`) when it knows none. `epoch` is the highest the sender has seen;
    /// `priority` is `None` from a node that is not eligible. A flooded one is answered only by
    /// the few highest candidates (those that know fewer than
    /// [`super::Limits::election_fanout`] live ones above them), not by every higher node.
    Election {
        epoch: u64,
        priority: Option<u32>,
        flooded: bool,
    },
    /// Bully's OK, routed back to an electing node by a higher-ranked candidate, which then runs
    /// its own election.
    Alive { epoch: u64, priority: u32 },
    /// "I am the tracker from `epoch` on": flooded by the winner; also routed to a lower node
    /// whose election reaches the serving tracker, as its answer.
    Coordinator { epoch: u64, priority: u32 },
    /// Routed to the tracker the sender follows, at that tracker's `epoch`.
    Register { epoch: u64, entry: Entry<P> },
    /// The tracker's answer to a registration: its roster (cut to one message, see
    /// [`super::Limits::max_roster`] and [`MAX_BODY`]).
    Roster {
        epoch: u64,
        /// The roster's version (see [`Msg::Heartbeat`]).
        version: u32,
        entries: Vec<Entry<P>>,
        truncated: bool,
    },
}

/// Addresses in one roster entry.
pub const MAX_ADDRS: usize = 8;
/// Bytes of one address.
pub const MAX_ADDR_LEN: usize = 128;
/// Bytes of a nick.
pub const MAX_NICK_LEN: usize = 32;
/// Bytes of a message: within the envelope's body limit ([`crate::envelope::MAX_BODY_LEN`]).
pub const MAX_BODY: usize = 60 * 1024;

const TAG_HEARTBEAT: u8 = 1;
const TAG_ELECTION: u8 = 2;
const TAG_ALIVE: u8 = 3;
const TAG_COORDINATOR: u8 = 4;
const TAG_REGISTER: u8 = 5;
const TAG_ROSTER: u8 = 6;
/// Tag, epoch, version, flag and count before a roster's entries.
const ROSTER_HEADER: usize = 1 + 8 + 4 + 1 + 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("election message of {0} bytes is over its limit")]
    TooLarge(usize),
    #[error("malformed election message: {0}")]
    Malformed(&'static str),
}

/// The entry as it goes on the wire: the nick clipped to [`MAX_NICK_LEN`] bytes (on a character
/// boundary) with control characters removed, the empty, oversized or control-character
/// addresses dropped and at most [`MAX_ADDRS`] kept.
pub fn sanitize<P>(mut e: Entry<P>) -> Entry<P> {
    if e.nick.len() > MAX_NICK_LEN || e.nick.contains(char::is_control) {
        let clean: String = e.nick.chars().filter(|c| !c.is_control()).collect();
        e.nick = clip(&clean, MAX_NICK_LEN).to_owned();
    }
    e.addrs
        .retain(|a| !a.is_empty() && a.len() <= MAX_ADDR_LEN && !a.contains(char::is_control));
    e.addrs.truncate(MAX_ADDRS);
    e
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Bytes of a (sanitized) entry on the wire.
pub fn entry_len<P: PeerBytes>(e: &Entry<P>) -> usize {
    P::LEN + 1 + 4 + 1 + e.nick.len() + 1 + e.addrs.iter().map(|a| 1 + a.len()).sum::<usize>()
}

/// The longest prefix of `entries` (sanitized) that fits in one roster message, and whether
/// anything was left out.
pub fn fit_roster<P: PeerBytes>(entries: Vec<Entry<P>>) -> (Vec<Entry<P>>, bool) {
    let mut room = MAX_BODY - ROSTER_HEADER;
    let total = entries.len();
    let mut kept = Vec::new();
    for e in entries {
        let e = sanitize(e);
        let n = entry_len(&e);
        if n > room || kept.len() >= usize::from(u16::MAX) {
            break;
        }
        room -= n;
        kept.push(e);
    }
    let cut = kept.len() < total;
    (kept, cut)
}

fn put_entry<P: PeerBytes>(e: &Entry<P>, out: &mut Vec<u8>) {
    e.id.put(out);
    out.push(u8::from(e.priority.is_some()));
    out.extend_from_slice(&e.priority.unwrap_or(0).to_be_bytes());
    out.push(e.nick.len() as u8);
    out.extend_from_slice(e.nick.as_bytes());
    out.push(e.addrs.len() as u8);
    for a in &e.addrs {
        out.push(a.len() as u8);
        out.extend_from_slice(a.as_bytes());
    }
}

impl<P: PeerBytes + Clone> Msg<P> {
    /// The body bytes. Entries are sanitized and a roster cut to [`MAX_BODY`] on the way (see
    /// the module docs), so the result always decodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        match self {
            Msg::Heartbeat {
                epoch,
                priority,
                roster,
            } => {
                out.push(TAG_HEARTBEAT);
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(&priority.to_be_bytes());
                out.extend_from_slice(&roster.to_be_bytes());
            }
            Msg::Election {
                epoch,
                priority,
                flooded,
            } => {
                out.push(TAG_ELECTION);
                out.extend_from_slice(&epoch.to_be_bytes());
                out.push(u8::from(priority.is_some()) | u8::from(*flooded) << 1);
                out.extend_from_slice(&priority.unwrap_or(0).to_be_bytes());
            }
            Msg::Alive { epoch, priority } => {
                out.push(TAG_ALIVE);
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(&priority.to_be_bytes());
            }
            Msg::Coordinator { epoch, priority } => {
                out.push(TAG_COORDINATOR);
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(&priority.to_be_bytes());
            }
            Msg::Register { epoch, entry } => {
                out.push(TAG_REGISTER);
                out.extend_from_slice(&epoch.to_be_bytes());
                put_entry(&sanitize(entry.clone()), &mut out);
            }
            Msg::Roster {
                epoch,
                version,
                entries,
                truncated,
            } => {
                let (entries, cut) = fit_roster(entries.clone());
                out.push(TAG_ROSTER);
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(&version.to_be_bytes());
                out.push(u8::from(*truncated || cut));
                out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
                for e in &entries {
                    put_entry(e, &mut out);
                }
            }
        }
        out
    }

    /// Decodes a body; anything malformed or oversized is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_BODY {
            return Err(Error::TooLarge(bytes.len()));
        }
        let mut r = Reader { buf: bytes, pos: 0 };
        let msg = match r.u8()? {
            TAG_HEARTBEAT => Msg::Heartbeat {
                epoch: r.u64()?,
                priority: r.u32()?,
                roster: r.u32()?,
            },
            TAG_ELECTION => {
                let epoch = r.u64()?;
                let flags = r.u8()?;
                if flags > 3 {
                    return Err(Error::Malformed("flags"));
                }
                let eligible = flags & 1 != 0;
                let p = r.u32()?;
                if !eligible && p != 0 {
                    return Err(Error::Malformed("priority of an ineligible node"));
                }
                Msg::Election {
                    epoch,
                    priority: eligible.then_some(p),
                    flooded: flags & 2 != 0,
                }
            }
            TAG_ALIVE => Msg::Alive {
                epoch: r.u64()?,
                priority: r.u32()?,
            },
            TAG_COORDINATOR => Msg::Coordinator {
                epoch: r.u64()?,
                priority: r.u32()?,
            },
            TAG_REGISTER => Msg::Register {
                epoch: r.u64()?,
                entry: r.entry()?,
            },
            TAG_ROSTER => {
                let epoch = r.u64()?;
                let version = r.u32()?;
                let truncated = r.flag()?;
                let n = usize::from(u16::from_be_bytes(r.array()?));
                // Each entry takes at least this much, so a count the bytes cannot hold is
                // refused before anything is allocated for it.
                let min = P::LEN + 1 + 4 + 1 + 1;
                if n.saturating_mul(min) > bytes.len() - r.pos {
                    return Err(Error::Malformed("roster count"));
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    entries.push(r.entry()?);
                }
                Msg::Roster {
                    epoch,
                    version,
                    entries,
                    truncated,
                }
            }
            _ => return Err(Error::Malformed("tag")),
        };
        if r.pos != bytes.len() {
            return Err(Error::Malformed("trailing bytes"));
        }
        Ok(msg)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Error> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or(Error::Malformed("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn flag(&mut self) -> Result<bool, Error> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::Malformed("flag")),
        }
    }
    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn text(&mut self, min: usize, max: usize) -> Result<String, Error> {
        let n = usize::from(self.u8()?);
        if n < min || n > max {
            return Err(Error::Malformed("text length"));
        }
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| Error::Malformed("utf-8"))?;
        if s.contains(char::is_control) {
            return Err(Error::Malformed("control character"));
        }
        Ok(s.to_owned())
    }
    fn entry<P: PeerBytes>(&mut self) -> Result<Entry<P>, Error> {
        let id = P::get(self.take(P::LEN)?).ok_or(Error::Malformed("id"))?;
        let eligible = self.flag()?;
        let p = self.u32()?;
        if !eligible && p != 0 {
            return Err(Error::Malformed("priority of an ineligible node"));
        }
        let nick = self.text(0, MAX_NICK_LEN)?;
        let n = usize::from(self.u8()?);
        if n > MAX_ADDRS {
            return Err(Error::Malformed("too many addresses"));
        }
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            addrs.push(self.text(1, MAX_ADDR_LEN)?);
        }
        Ok(Entry {
            id,
            nick,
            addrs,
            priority: eligible.then_some(p),
        })
    }
}
