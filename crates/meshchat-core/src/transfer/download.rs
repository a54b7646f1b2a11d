//! The downloader's state machine: which pieces to ask of which holder, and when to give up on
//! a request.
//!
//! - **Manifest first**: one holder is asked for [`Piece::Manifest`]; on a timeout another is
//!   asked. Chunks are wanted only once the manifest verified (nothing else can be checked).
//! - **A window per holder**, in bytes: it starts at [`Config::window_bytes`], grows by one chunk
//!   per chunk that holder delivers up to [`Config::max_window_bytes`], halves on a timeout, and
//!   never drops below one chunk. A slow or far holder gets fewer pieces at once, a fast one
//!   more: the holders share the file by how fast each delivers.
//! - **Spread**: wanted pieces (lowest index first) go round robin to the holders with room, in
//!   Wants of at most [`MAX_WANT`] pieces; a piece is in flight at one holder at a time, except in
//!   the **endgame**: once every missing piece is in flight, a holder with nothing in flight may
//!   also ask for the oldest pieces in flight elsewhere (at most [`ENDGAME_COPIES`] requests per
//!   piece), so one slow holder does not hold up the last pieces.
//! - **Timeouts** per request: `max(min_timeout, 4 × the holder's smoothed latency)` (an EWMA of
//!   arrival − request time, which includes the holder's queue). A piece that times out is
//!   wanted again (preferably from another holder); the holder's window halves, and after
//!   [`SILENT_TIMEOUTS`] rounds of timeouts with nothing arriving it backs off
//!   ([`Config::holder_backoff`], doubling to [`Config::max_backoff`]).
//! - **Verification**: a piece that fails its hash (or that the node reports as bad) bans its
//!   holder for this download ([`Output::Bad`]); a valid piece is accepted whoever sent it and
//!   whether or not it was asked for, if it is still missing, and written exactly once.
//!
//! Bounds: at most [`Config::max_holders`] holders (more are ignored) and as many banned ones
//! remembered; requests in flight at most each holder's window (so at most
//! `max_holders × max_window_bytes` bytes) plus one endgame copy each; the `have` bitmap. No
//! chunk data is kept: it is handed to the node in [`Output::Write`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash as StdHash;
use std::time::{Duration, Instant};

use super::wire::{Refusal, MAX_WANT};
use super::{chunk_count, chunk_len, Hash, Manifest, Piece};

/// Requests for one piece at once in the endgame (the first and one copy).
pub const ENDGAME_COPIES: usize = 2;
/// Rounds of timeouts at a holder, with nothing from it in between, before it backs off.
pub const SILENT_TIMEOUTS: u32 = 2;
/// How long a holder that said `busy` (or whose path did) is asked nothing new.
pub const BUSY_PAUSE: Duration = Duration::from_millis(200);

/// Windows, timeouts and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Bytes in flight per holder at first (at least one chunk is always allowed). 4 MiB keeps
    /// a fast holder busy across a round trip of a few hundred ms without flooding a slow path.
    pub window_bytes: u64,
    /// Most bytes in flight per holder, however well it delivers: bounds relays' queues and what
    /// a vanished holder leaves hanging.
    pub max_window_bytes: u64,
    /// Shortest time a request may take before it is given up (the first requests to a holder
    /// have no latency measured yet).
    pub min_timeout: Duration,
    /// Most holders used at once; more are ignored (and remembered banned ones at most as many).
    pub max_holders: usize,
    /// First back-off of a holder that refused as busy or unreachable, or stopped answering.
    pub holder_backoff: Duration,
    /// Longest back-off (the first one doubles up to this).
    pub max_backoff: Duration,
    /// The queueing delay a holder's window aims at: it grows while the latency stays within
    /// this of the holder's base latency and shrinks beyond (LEDBAT's idea, RFC 6817). A
    /// window sized by delivery alone filled a 10 Mbit/s link's queues with 16 MiB, 13 s of
    /// pieces (the lab's `file-line`): a chat message crossing that link waited behind them,
    /// and a downloader that restarted found 13 s of stale pieces ahead of its new requests.
    pub target_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            window_bytes: 4 * 1024 * 1024,
            max_window_bytes: 16 * 1024 * 1024,
            min_timeout: Duration::from_secs(5),
            max_holders: 16,
            holder_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            target_delay: Duration::from_millis(500),
        }
    }
}

/// An input to [`Download::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<P> {
    /// A node that holds the whole file (the offer's author; a node that announced it finished
    /// the file). At most [`Config::max_holders`] are used; banned ones are ignored.
    Holder(P),
    /// It is gone (left the mesh, no route): its pieces in flight are wanted again.
    HolderGone(P),
    /// Piece data from holder `from` (decrypted by the node for a DM file). Whoever handed it
    /// over is the node's business.
    Piece {
        from: P,
        piece: Piece,
        data: Vec<u8>,
    },
    /// A piece from `from` the node could not decrypt, or knows is bad otherwise: as a piece
    /// that fails its hash.
    BadPiece { from: P, piece: Piece },
    /// A Nope from `from`. The node passes the holder it concerns; a refusal from anyone who is
    /// not a holder is ignored (timeouts cover what it means).
    Refused { from: P, reason: Refusal },
    /// The node re-checked the finished file and these chunks did not match (writes lost in a
    /// crash): they are wanted again.
    Lost(Vec<u32>),
    /// The timer of the last [`Output::WakeAt`] fired (an early or extra tick is harmless).
    Tick,
}

/// An output of [`Download::handle`], to carry out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P> {
    /// Send a Want for these pieces (1..=[`MAX_WANT`]) to holder `to`; the node signs it.
    Want { to: P, pieces: Vec<Piece> },
    /// The manifest arrived and verified: persist it (a restart then resumes with it).
    Manifest(Manifest),
    /// Chunk `index` verified: write `data` at [`Manifest::offset`]`(index)`, then mark it had.
    /// Never twice for one index (unless [`Input::Lost`] said it was lost).
    Write { index: u32, data: Vec<u8> },
    /// `from` sent data that failed verification: the node strikes the neighbour that handed
    /// it over; this download no longer asks `from`.
    Bad { from: P },
    /// Every chunk is verified (the node re-checks the whole file, see [`Input::Lost`]).
    Done,
    /// No usable holder is left (all gone, refused or bad): the download waits for
    /// [`Input::Holder`].
    Stalled,
    /// Pass [`Input::Tick`] at this time; replaces any earlier `WakeAt`.
    WakeAt(Instant),
}

/// Counters, for progress displays and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Pieces received (manifest included), duplicates and bad ones too.
    pub pieces_received: u64,
    /// Bytes of those pieces.
    pub bytes_received: u64,
    /// Pieces received that were already had (dropped).
    pub duplicates: u64,
    /// Pieces that failed verification (or were reported bad).
    pub bad: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Wants sent.
    pub wants_sent: u64,
    /// Pieces asked for, over all Wants.
    pub pieces_wanted: u64,
    /// Chunks that arrived before the manifest (dropped: nothing to check them against).
    pub early: u64,
    /// Holders ignored because [`Config::max_holders`] were in use.
    pub holders_full: u64,
}

/// One request in flight.
#[derive(Debug, Clone)]
struct Request<P> {
    /// Asked of.
    holder: P,
    /// When the Want went out (for the latency sample).
    at: Instant,
    /// When it is given up.
    deadline: Instant,
}

/// A holder in use.
#[derive(Debug, Clone)]
struct Holder {
    /// Bytes it may have in flight.
    window: u64,
    /// Bytes it has in flight.
    in_flight: u64,
    /// Smoothed latency (arrival − request), once measured.
    srtt: Option<Duration>,
    /// The lowest latency seen lately: what the path takes with no queue of ours on it. It
    /// drifts up slowly (1/64 of the gap per sample), so a path that got longer is learnt.
    base: Option<Duration>,
    /// Not asked until then (busy, unreachable, or silent).
    backoff_until: Option<Instant>,
    /// The next back-off's length.
    backoff: Duration,
    /// Rounds of timeouts since it last delivered anything.
    silent: u32,
}

/// The download of one file (by its root) from one or more holders. Generic over the holder id
/// `P`; `Ord` keeps every iteration in a fixed order, so a seeded simulation is reproducible.
#[derive(Debug)]
pub struct Download<P> {
    config: Config,
    /// The file, as the offer says.
    root: Hash,
    size: u64,
    chunk_size: u32,
    /// `chunk_count(size, chunk_size)`.
    count: u32,
    /// Once fetched and verified (or given).
    manifest: Option<Manifest>,
    /// Chunk `i` is verified and handed to the node.
    have: Vec<bool>,
    /// Bytes of the chunks had.
    bytes_have: u64,
    /// Chunks had.
    had: u32,
    holders: BTreeMap<P, Holder>,
    /// Holders that sent bad data, never asked again (bounded: oldest forgotten first).
    banned: VecDeque<P>,
    /// Requests in flight, per piece (more than one only in the endgame).
    in_flight: BTreeMap<Piece, Vec<Request<P>>>,
    /// `(deadline, piece, holder)` of every request in flight.
    deadlines: BTreeSet<(Instant, Piece, P)>,
    /// Pieces given up at a holder (timeout) and not asked again yet: ask another first. At
    /// most one entry per request that was in flight.
    avoid: BTreeMap<Piece, P>,
    /// Where the round robin over holders starts next, so pieces spread.
    rotate: usize,
    /// [`Output::Done`] sent (and not undone by [`Input::Lost`]).
    done_sent: bool,
    /// [`Output::Stalled`] sent and no holder since.
    stalled: bool,
    /// The last [`Output::WakeAt`] sent.
    wake: Option<Instant>,
    stats: Stats,
}

impl<P: Clone + Eq + Ord + StdHash + Debug> Download<P> {
    /// A new or resumed download of the file an offer names (`root`, `size`, `chunk_size`, which
    /// the offer's decoding checked). `have[i]`: chunk `i` is already verified and on disk (the
    /// node's store, after a restart); a bitmap of the wrong length is taken as all false.
    /// `manifest`: if the node kept it (ignored if it is not this file's); otherwise the first
    /// piece wanted is the manifest.
    pub fn new(
        root: Hash,
        size: u64,
        chunk_size: u32,
        manifest: Option<Manifest>,
        have: Vec<bool>,
        config: Config,
        _now: Instant,
    ) -> Self {
        let count = chunk_count(size, chunk_size);
        let have = if have.len() == count as usize {
            have
        } else {
            vec![false; count as usize]
        };
        let manifest = manifest
            .filter(|m| m.size() == size && m.chunk_size() == chunk_size && m.root() == root);
        let mut d = Self {
            config,
            root,
            size,
            chunk_size,
            count,
            manifest,
            have,
            bytes_have: 0,
            had: 0,
            holders: BTreeMap::new(),
            banned: VecDeque::new(),
            in_flight: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            avoid: BTreeMap::new(),
            rotate: 0,
            done_sent: false,
            stalled: false,
            wake: None,
            stats: Stats::default(),
        };
        for i in 0..count {
            if d.have[i as usize] {
                d.had += 1;
                d.bytes_have += d.len_of(i) as u64;
            }
        }
        d
    }

    /// The file's root.
    pub fn root(&self) -> &Hash {
        &self.root
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes of the verified chunks (progress).
    pub fn bytes_have(&self) -> u64 {
        self.bytes_have
    }

    /// Every chunk verified (with the manifest).
    pub fn is_done(&self) -> bool {
        self.manifest.is_some() && self.had == self.count
    }

    /// Which chunks are verified.
    pub fn have(&self) -> &[bool] {
        &self.have
    }

    /// The manifest, once verified.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// The holders in use (backing off or not).
    pub fn holders(&self) -> impl Iterator<Item = &P> {
        self.holders.keys()
    }

    /// Requests in flight (for bounds checks).
    pub fn in_flight(&self) -> usize {
        self.in_flight.values().map(Vec::len).sum()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters (progress displays, tests).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The next time the machine has work due: a request's deadline, or the end of a holder's
    /// back-off while something is still missing.
    pub fn next_deadline(&self) -> Option<Instant> {
        let request = self.deadlines.first().map(|(t, _, _)| *t);
        let backoff = if self.is_done() {
            None
        } else {
            self.holders.values().filter_map(|h| h.backoff_until).min()
        };
        match (request, backoff) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles one input at time `now`; the outputs, in order.
    pub fn handle(&mut self, input: Input<P>, now: Instant) -> Vec<Output<P>> {
        let mut out = Vec::new();
        match input {
            Input::Holder(p) => self.add_holder(p),
            Input::HolderGone(p) => self.drop_holder(&p),
            Input::Piece { from, piece, data } => self.on_piece(from, piece, data, now, &mut out),
            Input::BadPiece { from, .. } => {
                self.stats.pieces_received += 1;
                self.on_bad(from, &mut out);
            }
            Input::Refused { from, reason } => match reason {
                Refusal::NotHere | Refusal::Gone => self.drop_holder(&from),
                Refusal::Busy => self.slow_down(&from, now),
                Refusal::NoRoute => self.back_off(&from, now),
            },
            Input::Lost(indices) => self.on_lost(indices),
            Input::Tick => {}
        }
        self.expire(now);
        if self.is_done() {
            if !self.done_sent {
                self.done_sent = true;
                out.push(Output::Done);
            }
        } else {
            self.fill(now, &mut out);
            if self.holders.is_empty() {
                if !self.stalled {
                    self.stalled = true;
                    out.push(Output::Stalled);
                }
            } else {
                self.stalled = false;
            }
        }
        if let Some(next) = self.next_deadline() {
            if self.wake != Some(next) {
                self.wake = Some(next);
                out.push(Output::WakeAt(next));
            }
        }
        out
    }

    /// Bytes of piece `piece` (the manifest: its hashes).
    fn len_of(&self, i: u32) -> usize {
        chunk_len(self.size, self.chunk_size, i).unwrap_or(0)
    }

    fn piece_len(&self, piece: Piece) -> u64 {
        match piece {
            Piece::Manifest => u64::from(self.count) * 32,
            Piece::Chunk(i) => self.len_of(i) as u64,
        }
    }

    /// Whether a piece is still missing.
    fn needed(&self, piece: Piece) -> bool {
        match piece {
            Piece::Manifest => self.manifest.is_none(),
            Piece::Chunk(i) => {
                self.manifest.is_some() && self.have.get(i as usize).is_some_and(|h| !h)
            }
        }
    }

    fn add_holder(&mut self, p: P) {
        if self.holders.contains_key(&p) || self.banned.contains(&p) {
            return;
        }
        if self.holders.len() >= self.config.max_holders {
            self.stats.holders_full += 1;
            return;
        }
        let one_chunk = u64::from(self.chunk_size).max(1);
        self.holders.insert(
            p,
            Holder {
                window: self.config.window_bytes.max(one_chunk),
                in_flight: 0,
                srtt: None,
                base: None,
                backoff_until: None,
                backoff: self.config.holder_backoff,
                silent: 0,
            },
        );
    }

    /// Forgets a holder (gone, or refused for good); its requests are wanted again.
    fn drop_holder(&mut self, p: &P) {
        self.cancel_all(p);
        self.holders.remove(p);
        self.avoid.retain(|_, h| h != p);
    }

    /// Cancels every request in flight at `p`.
    fn cancel_all(&mut self, p: &P) {
        let pieces: Vec<Piece> = self
            .in_flight
            .iter()
            .filter(|(_, reqs)| reqs.iter().any(|r| r.holder == *p))
            .map(|(piece, _)| *piece)
            .collect();
        for piece in pieces {
            self.cancel(piece, p);
        }
    }

    /// Removes the request for `piece` at `p`, if any; the piece is wanted again if no other
    /// request for it is left. Returns the request.
    fn cancel(&mut self, piece: Piece, p: &P) -> Option<Request<P>> {
        let reqs = self.in_flight.get_mut(&piece)?;
        let at = reqs.iter().position(|r| r.holder == *p)?;
        let req = reqs.swap_remove(at);
        if reqs.is_empty() {
            self.in_flight.remove(&piece);
        }
        self.deadlines
            .remove(&(req.deadline, piece, req.holder.clone()));
        let len = self.piece_len(piece);
        if let Some(h) = self.holders.get_mut(p) {
            h.in_flight = h.in_flight.saturating_sub(len);
        }
        Some(req)
    }

    /// Cancels every request for `piece` (it arrived).
    fn settle(&mut self, piece: Piece) {
        let holders: Vec<P> = self
            .in_flight
            .get(&piece)
            .map(|reqs| reqs.iter().map(|r| r.holder.clone()).collect())
            .unwrap_or_default();
        for h in holders {
            self.cancel(piece, &h);
        }
        self.avoid.remove(&piece);
    }

    /// A holder refused as busy or unreachable, or stopped answering: not asked until its
    /// back-off ends (doubling each time), and its requests are wanted again.
    /// A holder, or a relay on the way to it, is over a limit: a congestion signal. The window
    /// halves and the holder is asked nothing new for [`BUSY_PAUSE`]; what is in flight stays
    /// (most of it still comes; what was dropped times out). Backing off as for an unreachable
    /// holder, with its requests cancelled, turned each busy signal into seconds idle and
    /// pieces fetched twice (lab, 1 GiB over one hop at 2 MB/s).
    fn slow_down(&mut self, p: &P, now: Instant) {
        let one_chunk = u64::from(self.chunk_size);
        let Some(h) = self.holders.get_mut(p) else {
            return;
        };
        h.window = (h.window / 2).max(one_chunk);
        let until = now + BUSY_PAUSE;
        if h.backoff_until.is_none_or(|t| t < until) {
            h.backoff_until = Some(until);
        }
    }

    fn back_off(&mut self, p: &P, now: Instant) {
        let Some(h) = self.holders.get_mut(p) else {
            return;
        };
        h.backoff_until = Some(now + h.backoff);
        h.backoff = (h.backoff * 2).min(self.config.max_backoff);
        self.cancel_all(p);
    }

    /// Bans a holder that sent bad data.
    fn on_bad(&mut self, from: P, out: &mut Vec<Output<P>>) {
        self.stats.bad += 1;
        out.push(Output::Bad { from: from.clone() });
        self.drop_holder(&from);
        if !self.banned.contains(&from) {
            if self.banned.len() >= self.config.max_holders.max(1) {
                self.banned.pop_front();
            }
            self.banned.push_back(from);
        }
    }

    fn on_piece(
        &mut self,
        from: P,
        piece: Piece,
        data: Vec<u8>,
        now: Instant,
        out: &mut Vec<Output<P>>,
    ) {
        self.stats.pieces_received += 1;
        self.stats.bytes_received += data.len() as u64;
        if !self.needed(piece) {
            if let Piece::Chunk(i) = piece {
                if i >= self.count {
                    // Not a chunk of this file: no honest holder sends it.
                    return self.on_bad(from, out);
                }
                if self.manifest.is_none() {
                    self.stats.early += 1;
                    return;
                }
            }
            self.stats.duplicates += 1;
            if let Some(h) = self.holders.get_mut(&from) {
                h.silent = 0;
            }
            return;
        }
        let ok = match piece {
            Piece::Manifest => {
                match Manifest::decode(&data, self.size, self.chunk_size, &self.root) {
                    Ok(m) => {
                        self.manifest = Some(m.clone());
                        out.push(Output::Manifest(m));
                        true
                    }
                    Err(_) => false,
                }
            }
            Piece::Chunk(i) => self.manifest.as_ref().is_some_and(|m| m.check(i, &data)),
        };
        if !ok {
            return self.on_bad(from, out);
        }
        let mine = self
            .in_flight
            .get(&piece)
            .and_then(|reqs| reqs.iter().find(|r| r.holder == from))
            .map(|r| r.at);
        self.settle(piece);
        let one_chunk = u64::from(self.chunk_size);
        let max_window = self.config.max_window_bytes.max(one_chunk);
        if let Some(h) = self.holders.get_mut(&from) {
            h.silent = 0;
            h.backoff = self.config.holder_backoff;
            let mut queued = Duration::ZERO;
            if let Some(at) = mine {
                let sample = now.saturating_duration_since(at);
                let srtt = match h.srtt {
                    Some(s) => (s * 7 + sample) / 8,
                    None => sample,
                };
                h.srtt = Some(srtt);
                let base = match h.base {
                    Some(b) if sample < b => sample,
                    Some(b) => b + (sample - b) / 64,
                    None => sample,
                };
                h.base = Some(base);
                queued = srtt.saturating_sub(base);
            }
            if matches!(piece, Piece::Chunk(_)) {
                h.window = if queued <= self.config.target_delay {
                    (h.window + one_chunk).min(max_window)
                } else {
                    h.window.saturating_sub(one_chunk).max(one_chunk)
                };
            }
        }
        if let Piece::Chunk(i) = piece {
            self.have[i as usize] = true;
            self.had += 1;
            self.bytes_have += data.len() as u64;
            out.push(Output::Write { index: i, data });
        }
    }

    fn on_lost(&mut self, indices: Vec<u32>) {
        for i in indices {
            if let Some(h) = self.have.get_mut(i as usize) {
                if *h {
                    *h = false;
                    self.had -= 1;
                    self.bytes_have -= self.len_of(i) as u64;
                    self.done_sent = false;
                }
            }
        }
    }

    /// Gives up the requests whose deadline passed, and ends back-offs that are over.
    fn expire(&mut self, now: Instant) {
        let mut timed_out: BTreeSet<P> = BTreeSet::new();
        while let Some((deadline, piece, holder)) = self.deadlines.first().cloned() {
            if deadline > now {
                break;
            }
            self.cancel(piece, &holder);
            self.stats.timeouts += 1;
            if !self.in_flight.contains_key(&piece) {
                self.avoid.insert(piece, holder.clone());
            }
            timed_out.insert(holder);
        }
        let one_chunk = u64::from(self.chunk_size).max(1);
        for p in timed_out {
            let Some(h) = self.holders.get_mut(&p) else {
                continue;
            };
            // Once per round of timeouts, as TCP halves once per loss event.
            h.window = (h.window / 2).max(one_chunk);
            h.silent += 1;
            if h.silent >= SILENT_TIMEOUTS {
                h.silent = 0;
                self.back_off(&p, now);
            }
        }
        for h in self.holders.values_mut() {
            if h.backoff_until.is_some_and(|t| t <= now) {
                h.backoff_until = None;
            }
        }
    }

    /// Records a request for `piece` at holder `p` (one of `holders`).
    fn request(&mut self, piece: Piece, p: &P, now: Instant) {
        let len = self.piece_len(piece);
        let min_timeout = self.config.min_timeout;
        let Some(h) = self.holders.get_mut(p) else {
            return;
        };
        h.in_flight += len;
        let timeout = h.srtt.map_or(min_timeout, |s| (s * 4).max(min_timeout));
        let deadline = now + timeout;
        self.in_flight.entry(piece).or_default().push(Request {
            holder: p.clone(),
            at: now,
            deadline,
        });
        self.deadlines.insert((deadline, piece, p.clone()));
        self.avoid.remove(&piece);
    }

    /// Whether holder `p` has room for `len` more bytes (one piece always fits an idle holder).
    fn has_room(&self, p: &P, len: u64) -> bool {
        self.holders
            .get(p)
            .is_some_and(|h| h.in_flight == 0 || h.in_flight + len <= h.window)
    }

    /// Asks holders with room for the missing pieces not in flight, then (endgame) idle holders
    /// for the oldest pieces in flight elsewhere.
    fn fill(&mut self, now: Instant, out: &mut Vec<Output<P>>) {
        let ready: Vec<P> = self
            .holders
            .iter()
            .filter(|(_, h)| h.backoff_until.is_none())
            .map(|(p, _)| p.clone())
            .collect();
        if ready.is_empty() {
            return;
        }
        let mut batches: BTreeMap<P, Vec<Piece>> = BTreeMap::new();
        let n = ready.len();
        let start = self.rotate % n;
        self.rotate = self.rotate.wrapping_add(1);
        let mut turn = start;
        let wanted: Vec<Piece> = if self.manifest.is_none() {
            vec![Piece::Manifest]
        } else {
            (0..self.count)
                .filter(|&i| !self.have[i as usize])
                .map(Piece::Chunk)
                .collect()
        };
        // Two passes: first each piece goes to a holder other than the one it last timed out
        // at (a piece with no such holder waits), then the pieces left may go back to it.
        'passes: for strict in [true, false] {
            for &piece in &wanted {
                if self.in_flight.contains_key(&piece) {
                    continue;
                }
                let len = self.piece_len(piece);
                let avoid = self.avoid.get(&piece).cloned();
                // The next holder in turn with room (the avoided one only as a fallback).
                let mut pick = None;
                let mut fallback = None;
                for k in 0..n {
                    let p = &ready[(turn + k) % n];
                    if !self.has_room(p, len) {
                        continue;
                    }
                    if avoid.as_ref() == Some(p) {
                        fallback.get_or_insert(k);
                        continue;
                    }
                    pick = Some(k);
                    break;
                }
                let k = match (pick, fallback) {
                    (Some(k), _) => k,
                    (None, Some(_)) if strict => continue,
                    (None, Some(k)) => k,
                    (None, None) => break 'passes, // nobody has room
                };
                let p = ready[(turn + k) % n].clone();
                turn = (turn + k + 1) % n;
                self.request(piece, &p, now);
                batches.entry(p).or_default().push(piece);
            }
        }
        // Endgame: everything missing is in flight; idle holders double the oldest requests.
        // The manifest is asked of one holder at a time (a retry goes to another).
        if self.manifest.is_some()
            && !wanted.is_empty()
            && wanted.iter().all(|p| self.in_flight.contains_key(p))
        {
            let mut oldest: Vec<(Instant, Piece)> = self
                .in_flight
                .iter()
                .filter(|(_, reqs)| reqs.len() < ENDGAME_COPIES)
                .filter_map(|(piece, reqs)| reqs.iter().map(|r| r.at).min().map(|t| (t, *piece)))
                .collect();
            oldest.sort();
            for p in &ready {
                if self.holders.get(p).is_none_or(|h| h.in_flight > 0) || batches.contains_key(p) {
                    continue;
                }
                let mut taken = Vec::new();
                for (i, &(_, piece)) in oldest.iter().enumerate() {
                    let at_p = self.in_flight[&piece].iter().any(|r| r.holder == *p);
                    if at_p || !self.has_room(p, self.piece_len(piece)) {
                        continue;
                    }
                    self.request(piece, p, now);
                    batches.entry(p.clone()).or_default().push(piece);
                    taken.push(i);
                }
                for i in taken.into_iter().rev() {
                    oldest.remove(i);
                }
            }
        }
        for (to, pieces) in batches {
            for chunk in pieces.chunks(MAX_WANT) {
                self.stats.wants_sent += 1;
                self.stats.pieces_wanted += chunk.len() as u64;
                out.push(Output::Want {
                    to: to.clone(),
                    pieces: chunk.to_vec(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
