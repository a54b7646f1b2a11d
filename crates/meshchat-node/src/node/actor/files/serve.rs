//! Serving: the pieces of the files complete here (our offers, finished downloads), to whoever
//! may have them, within a budget per downloader; our DM offers' progress on our side.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use meshchat_api as api;
use meshchat_core::rate::{Buckets, Rate};
use meshchat_core::transfer::wire::{Frame, Nope, PieceFrame, Refusal, Want};
use meshchat_core::transfer::{self, Manifest, Piece};
use meshchat_core::MessageId;

use super::{failed, Origin, HOP_LIMIT, PROGRESS_EVERY, RATE_TABLE};
use crate::node::actor::context::{Ctx, Key, Note};
use crate::node::{now_ms, Event};
use crate::store::FileRow;

/// A `Want` signed further than this from our clock is not served (a replay, or a clock far
/// off: the downloader asks again with a fresh one).
const WANT_MAX_SKEW_MS: u64 = 10 * 60 * 1000;
/// Piece bytes served to one downloader a second, and its burst: above what any link we
/// measured carries (an honest downloader's windows keep it below), so it binds only a node
/// asking faster than it can take.
const SERVE_RATE: Rate = Rate::new(256 * 1024 * 1024, 64 * 1024 * 1024);
/// Our DM offers whose upload progress is followed at once.
const MAX_UPLOADS: usize = 64;
/// Why an offer stops being served.
const GONE: &str = "the file changed or was removed since it was offered";

/// What the files handler serves with.
pub(super) struct Serving {
    /// Piece bytes served to each downloader.
    served: Buckets<Key>,
    /// Our DM offers being fetched: what the recipient was sent, for our side's progress (a
    /// room offer has no one recipient to measure; `/files` shows it as served).
    uploads: HashMap<MessageId, Upload>,
}

/// One of our DM offers being fetched.
struct Upload {
    /// Chunks sent at least once.
    sent: Vec<bool>,
    bytes: u64,
    total: u64,
    told_at: Instant,
    told_bytes: u64,
}

impl Serving {
    pub(super) fn new() -> Self {
        Self {
            served: Buckets::new(SERVE_RATE, RATE_TABLE),
            uploads: HashMap::new(),
        }
    }

    /// A `Want` for us: the pieces, if the file is complete here and the asker may have it.
    pub(super) fn serve(&mut self, w: Want<Key>, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        let fresh = now_ms().abs_diff(w.timestamp_ms) <= WANT_MAX_SKEW_MS;
        // Relays do not check what they forward, so a forged or stale one is no neighbour's
        // fault: dropped, no strike.
        if !fresh || !w.verify() {
            ctx.io.stats.file_frames_dropped += 1;
            return;
        }
        let nope = |reason| Note::FileSend {
            to: w.from,
            frame: Frame::Nope(Nope {
                hop_limit: HOP_LIMIT,
                to: w.from,
                from: w.to,
                root: w.root,
                reason,
            })
            .encode(),
            origin: Origin::Served,
        };
        let source = match ctx.io.store.file_source(&w.root) {
            Ok(Some(s)) => s,
            Ok(None) => return ctx.notes.push(nope(Refusal::NotHere)),
            Err(e) => {
                tracing::warn!("reading a file to serve: {e}");
                return ctx.notes.push(nope(Refusal::Busy));
            }
        };
        let (row, manifest) = source;
        // A DM file goes to the person it was offered to (or came from), no one else.
        if row.key.is_some() && row.peer != Some(w.from) {
            return ctx.notes.push(nope(Refusal::NotHere));
        }
        let Ok(manifest) = Manifest::decode(&manifest, row.size, row.chunk_size, &w.root) else {
            return ctx.notes.push(nope(Refusal::Gone));
        };
        let wanted: u64 = w
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Manifest => manifest.encode().len() as u64,
                Piece::Chunk(i) => manifest.chunk_len(*i).unwrap_or(0) as u64,
            })
            .sum();
        if !self.served.take(w.from, wanted as f64, now) {
            return ctx.notes.push(nope(Refusal::Busy));
        }
        let path = row.path.clone().unwrap_or_default();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("file {path} offered but not readable: {e}");
                failed(&row, GONE, ctx);
                return ctx.notes.push(nope(Refusal::Gone));
            }
        };
        let me = ctx.io.me();
        for piece in &w.pieces {
            let plain = match *piece {
                Piece::Manifest => manifest.encode(),
                Piece::Chunk(i) => {
                    let Some(len) = manifest.chunk_len(i) else {
                        continue;
                    };
                    let mut buf = vec![0u8; len];
                    if file.read_exact_at(&mut buf, manifest.offset(i)).is_err()
                        || !manifest.check(i, &buf)
                    {
                        tracing::warn!("file {path} changed since it was offered");
                        failed(&row, GONE, ctx);
                        return ctx.notes.push(nope(Refusal::Gone));
                    }
                    buf
                }
            };
            let data = match &row.key {
                Some(key) => transfer::seal_piece(key, &w.root, *piece, &plain),
                None => plain,
            };
            let frame = Frame::Piece(PieceFrame {
                hop_limit: HOP_LIMIT,
                to: w.from,
                from: me,
                root: w.root,
                piece: *piece,
                data,
            })
            .encode();
            ctx.notes.push(Note::FileSend {
                to: w.from,
                frame,
                origin: Origin::Served,
            });
        }
        if row.own && row.key.is_some() {
            self.uploaded(&row, &manifest, &w.pieces, ctx);
        }
    }

    /// Our DM offer `row`'s recipient was sent `pieces`: its progress, told at most every
    /// [`PROGRESS_EVERY`] (and at the end).
    fn uploaded(
        &mut self,
        row: &FileRow,
        manifest: &Manifest,
        pieces: &[Piece],
        ctx: &mut Ctx<'_>,
    ) {
        if !self.uploads.contains_key(&row.id) && self.uploads.len() >= MAX_UPLOADS {
            let oldest = self
                .uploads
                .iter()
                .min_by_key(|(_, u)| u.told_at)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                self.uploads.remove(&id);
            }
        }
        let now = Instant::now();
        let u = self.uploads.entry(row.id).or_insert_with(|| Upload {
            sent: vec![false; manifest.count() as usize],
            bytes: 0,
            total: row.size,
            told_at: now,
            told_bytes: 0,
        });
        for piece in pieces {
            if let Piece::Chunk(i) = *piece {
                if let Some(false) = u.sent.get(i as usize) {
                    u.sent[i as usize] = true;
                    u.bytes += manifest.chunk_len(i).unwrap_or(0) as u64;
                }
            }
        }
        let done = u.bytes >= u.total;
        if u.bytes != u.told_bytes && (done || now >= u.told_at + PROGRESS_EVERY) {
            u.told_at = now;
            u.told_bytes = u.bytes;
            ctx.io.emit(Event::File(api::Event::FileProgress {
                id: row.id.to_string(),
                bytes: u.bytes,
                total: u.total,
            }));
        }
        if done {
            self.uploads.remove(&row.id);
        }
    }
}
