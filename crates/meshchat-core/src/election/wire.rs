//! The bytes of election messages: the body of a [`crate::envelope::Kind::Tracker`] envelope.
//!
//! ```text
//! 1 heartbeat    | epoch u64 | priority u32
//! 2 election     | epoch u64 | eligible u8 (0/1) | priority u32
//! 3 alive        | priority u32
//! 4 coordinator  | epoch u64 | priority u32
//! 5 register     | entry
//! 6 roster       | epoch u64 | truncated u8 | count u16 | entry * count
//! entry = id [ID] | eligible u8 | priority u32 | nick_len u8 | nick | addr_count u8
//!         | (addr_len u8 | addr) * addr_count
//! ```
//!
//! Integers big-endian; nicks 0..=32 bytes of UTF-8 (no control characters), at most
//! [`MAX_ADDRS`] addresses of at most [`MAX_ADDR_LEN`] bytes. The whole body is at most
//! [`MAX_BODY`]; a roster that would not fit is cut ([`fit_roster`]) and says so.

use super::{Entry, Msg};
use crate::routing::wire::PeerBytes;

pub const MAX_ADDRS: usize = 8;
pub const MAX_ADDR_LEN: usize = 128;
pub const MAX_NICK_LEN: usize = 32;
/// Within an envelope's body limit, with room to spare.
pub const MAX_BODY: usize = 60 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("election message of {0} bytes is over its limit")]
    TooLarge(usize),
    #[error("malformed election message: {0}")]
    Malformed(&'static str),
}

fn put_entry<P: PeerBytes>(e: &Entry<P>, out: &mut Vec<u8>) {
    e.id.put(out);
    out.push(u8::from(e.priority.is_some()));
    out.extend_from_slice(&e.priority.unwrap_or(0).to_be_bytes());
    let nick = clip(&e.nick, MAX_NICK_LEN);
    out.push(nick.len() as u8);
    out.extend_from_slice(nick.as_bytes());
    let addrs: Vec<&str> = e
        .addrs
        .iter()
        .filter(|a| a.len() <= MAX_ADDR_LEN)
        .take(MAX_ADDRS)
        .map(String::as_str)
        .collect();
    out.push(addrs.len() as u8);
    for a in addrs {
        out.push(a.len() as u8);
        out.extend_from_slice(a.as_bytes());
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn entry_len<P: PeerBytes>(e: &Entry<P>) -> usize {
    let mut v = Vec::new();
    put_entry(e, &mut v);
    v.len()
}

/// Cuts a roster to what fits in one message; true if something was left out.
pub fn fit_roster<P: PeerBytes>(entries: Vec<Entry<P>>) -> (Vec<Entry<P>>, bool) {
    let mut room = MAX_BODY - (1 + 8 + 1 + 2);
    let total = entries.len();
    let mut kept = Vec::new();
    for e in entries {
        let n = entry_len(&e);
        if n > room || kept.len() >= u16::MAX as usize {
            break;
        }
        room -= n;
        kept.push(e);
    }
    let cut = kept.len() < total;
    (kept, cut)
}

impl<P: PeerBytes + Clone> Msg<P> {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Msg::Heartbeat { epoch, priority } => {
                out.push(1);
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(&priority.to_be_bytes());
            }
            Msg::Election { epoch, priority } => {
                out.push(2);
                out.extend_from_slice(&epoch.to_be_bytes());
                out.push(u8::from(priority.is_some()));
                out.extend_from_slice(&priority.unwrap_or(0).to_be_bytes());
            }
            Msg::Alive { priority } => {
                out.push(3);
                out.extend_from_slice(&priority.to_be_bytes());
            }
            Msg::Coordinator { epoch, priority } => {
                out.push(4);
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(&priority.to_be_bytes());
            }
            Msg::Register(e) => {
                out.push(5);
                put_entry(e, &mut out);
            }
            Msg::Roster {
                epoch,
                entries,
                truncated,
            } => {
                let (entries, cut) = fit_roster(entries.clone());
                out.push(6);
                out.extend_from_slice(&epoch.to_be_bytes());
                out.push(u8::from(*truncated || cut));
                out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
                for e in &entries {
                    put_entry(e, &mut out);
                }
            }
        }
        out
    }

    /// Decodes a body; anything malformed is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_BODY {
            return Err(Error::TooLarge(bytes.len()));
        }
        let mut r = Reader { buf: bytes, pos: 0 };
        let msg = match r.u8()? {
            1 => Msg::Heartbeat {
                epoch: r.u64()?,
                priority: r.u32()?,
            },
            2 => {
                let epoch = r.u64()?;
                let eligible = r.flag()?;
                let p = r.u32()?;
                Msg::Election {
                    epoch,
                    priority: eligible.then_some(p),
                }
            }
            3 => Msg::Alive { priority: r.u32()? },
            4 => Msg::Coordinator {
                epoch: r.u64()?,
                priority: r.u32()?,
            },
            5 => Msg::Register(r.entry()?),
            6 => {
                let epoch = r.u64()?;
                let truncated = r.flag()?;
                let n = u16::from_be_bytes(r.array()?) as usize;
                let mut entries = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    entries.push(r.entry()?);
                }
                Msg::Roster {
                    epoch,
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
        Ok(self.take(N)?.try_into().expect("N bytes"))
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
    fn text(&mut self, max: usize) -> Result<String, Error> {
        let n = self.u8()? as usize;
        if n > max {
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
        let nick = self.text(MAX_NICK_LEN)?;
        let n = self.u8()? as usize;
        if n > MAX_ADDRS {
            return Err(Error::Malformed("too many addresses"));
        }
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            addrs.push(self.text(MAX_ADDR_LEN)?);
        }
        Ok(Entry {
            id,
            nick,
            addrs,
            priority: eligible.then_some(p),
        })
    }
}
