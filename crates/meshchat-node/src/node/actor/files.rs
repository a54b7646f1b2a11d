//! File transfer (issue 20): wires the downloader ([`meshchat_core::transfer::Download`]) and
//! the frames of `/meshchat/file/1` to the streams, the routing table (through the loop), the
//! store, the disk and the clock. The core machine decides what to ask whom; this module
//! carries it out.
//!
//! - **Offers** are envelopes of kind `File`: in a room they are stored, shown and synced like
//!   its texts (the inbound path hands them here as [`Note::FileOffer`]); to one person they are
//!   sealed like a DM and carry the key the pieces are sealed with. Each becomes a row of
//!   `files`; offers up to [`crate::config::Files::auto_accept_size`] are fetched unasked.
//! - **Downloads** ask the offer's author (and, later, other holders) for pieces with signed
//!   `Want`s, routed hop by hop; each piece is checked against the manifest as it arrives and
//!   written in place into `<download dir>/.meshchat-partial/<root>.part`. The verified chunks'
//!   bitmap is saved at most every [`SAVE_EVERY`], so a restart resumes with what is on disk;
//!   the finished file is checked whole again before it is moved into the download dir.
//! - **Serving**: a `Want` that verifies, is fresh and names a file complete here (our offer, a
//!   finished download) is answered with the pieces, read from the file and checked against
//!   the manifest on the way out (a file changed since it was offered is refused as `Gone`).
//!   A DM file is served only to the person it was offered to.
//! - **Relaying**: a frame for another node goes on along the routing table's next hop with
//!   its hop limit less one. It is never decoded beyond its header, and never stored: what a
//!   relay holds is what sits in the stream queues ([`crate::behaviour::file::QUEUES`]). Each
//!   neighbour's file bytes count against [`NEIGHBOUR_RATE`].
//!
//! Serving lives in `files/serve.rs` (its own state: the budgets per downloader, our DM
//! offers' progress), the disk work (hashing, the whole-file check, the bitmap, moving a file
//! into place) in `files/disk.rs`; this file keeps the downloads, the streams and the relaying.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use meshchat_api::{self as api, FileState};
use meshchat_core::inbound::Reason;
use meshchat_core::rate::{Buckets, Rate};
use meshchat_core::room::human_size;
use meshchat_core::transfer::wire::{self, Frame, Nope, Offer, PieceFrame, Refusal, Want};
use meshchat_core::transfer::{self, Download, Hash, Manifest};
use meshchat_core::{Envelope, Fingerprint, MessageId};
use tokio::sync::mpsc;

mod disk;
mod serve;

pub(crate) use disk::hash_file;
pub(super) use disk::Checked;
use disk::{bitmap, check_whole, free_space, place, unpack};

use super::context::{Ctx, Key, Note};
use super::disk::Write;
use crate::behaviour::broadcast::{Inbound, Links, SendError};
use crate::node::{key_of_peer_id, now_ms, peer_id_of_bytes, Error, Event};
use crate::store::{state_code, state_of_code, FileRow};

/// Hop limit of the file frames we originate: more than any mesh's diameter.
pub(super) const HOP_LIMIT: u16 = 64;
/// Downloads running at once; more are refused until one ends.
pub(super) const MAX_DOWNLOADS: usize = 8;
/// A download's progress is told at most this often.
pub(super) const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// A download's verified-chunk bitmap is saved at most this often (a crash refetches at most
/// this much).
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// File bytes one neighbour may hand us a second for others, and its burst. Beyond it frames
/// are dropped and their downloaders told (`busy`), so they back off that holder.
pub(super) const NEIGHBOUR_RATE: Rate = Rate::new(256 * 1024 * 1024, 64 * 1024 * 1024);
/// Neighbours and downloaders whose byte budgets are kept.
pub(super) const RATE_TABLE: usize = 1024;
/// Newest offers `/files` lists.
const LIST_LIMIT: usize = 200;

/// Whom a failed [`Note::FileSend`] concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// A frame we forward for others.
    Relayed,
    /// A `Want` of our download `MessageId`, to holder `Key`.
    Want(MessageId, Key),
    /// A piece we serve.
    Served,
}

/// A download under way.
struct Active {
    row: FileRow,
    machine: Download<Key>,
    /// The partial file, written in place.
    file: File,
    part: PathBuf,
    /// The bitmap has changed since it was saved.
    dirty: bool,
    /// Its whole-file check runs (see `finish`).
    checking: bool,
    saved_at: Instant,
    told_at: Instant,
    told_bytes: u64,
}

/// The files handler: downloads, the streams of `/meshchat/file/1`, budgets.
pub(super) struct Files {
    links: Links,
    /// Reports of the stream tasks; taken by the loop.
    reports: Option<mpsc::Receiver<Inbound>>,
    /// Whole-file checks' answers (at most one per download runs), and their sender.
    checks: Option<mpsc::Receiver<Checked>>,
    checks_tx: mpsc::Sender<Checked>,
    /// Downloads under way, by offer id.
    active: HashMap<MessageId, Active>,
    /// The same, by content root (pieces name their root).
    by_root: HashMap<Hash, MessageId>,
    /// File bytes each neighbour handed us.
    neighbour_bytes: Buckets<PeerId>,
    /// What we serve: budgets per downloader, our DM offers' progress.
    serving: serve::Serving,
}

impl Files {
    pub(super) fn new(behaviour: &libp2p_stream::Behaviour) -> Self {
        let (links, reports) = Links::with_protocol(
            behaviour,
            crate::behaviour::file::PROTOCOL,
            crate::behaviour::file::max_frame(),
            crate::behaviour::file::QUEUES,
        );
        let (checks_tx, checks) = mpsc::channel(MAX_DOWNLOADS);
        Self {
            links,
            reports: Some(reports),
            checks: Some(checks),
            checks_tx,
            active: HashMap::new(),
            by_root: HashMap::new(),
            neighbour_bytes: Buckets::new(NEIGHBOUR_RATE, RATE_TABLE),
            serving: serve::Serving::new(),
        }
    }

    /// The stream tasks' reports, for the loop to wait on.
    pub(super) fn take_reports(&mut self) -> Option<mpsc::Receiver<Inbound>> {
        self.reports.take()
    }

    /// The whole-file checks' answers, for the loop to wait on.
    pub(super) fn take_checks(&mut self) -> Option<mpsc::Receiver<Checked>> {
        self.checks.take()
    }

    /// Starts accepting streams, and resumes the downloads a stop interrupted.
    pub(super) fn start(&mut self, ctx: &mut Ctx<'_>) {
        self.links.start();
        let rows = match ctx
            .io
            .store
            .files_in_state(state_code(FileState::Downloading))
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("reading the downloads to resume: {e}");
                return;
            }
        };
        for row in rows {
            let id = row.id;
            match self.activate(row, ctx) {
                Ok(()) => {}
                // Said already, with its reason.
                Err(Error::NoSpace { .. }) => {}
                Err(e) => self.fail(id, &e.to_string(), ctx),
            }
        }
    }

    /// A new neighbour: our stream to it, and a holder to ask for the room files we fetch (it
    /// may have one: a download that lost its holders goes on when one comes).
    pub(super) fn connected(&mut self, peer: PeerId, ctx: &mut Ctx<'_>) {
        if self.links.has(&peer) {
            return;
        }
        self.links.connect(peer);
        let Some(key) = key_of_peer_id(&peer) else {
            return;
        };
        let rooms: Vec<MessageId> = self
            .active
            .iter()
            .filter(|(_, a)| a.row.key.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in rooms {
            self.feed(id, transfer::Input::Holder(key), None, ctx);
        }
    }

    pub(super) fn disconnected(&mut self, peer: &PeerId) {
        self.links.disconnect(peer);
    }

    /// When the next timer is due: a machine's deadline, a bitmap to save, progress to tell.
    pub(super) fn wake(&self) -> Option<Instant> {
        self.active
            .values()
            .flat_map(|a| {
                let save = a.dirty.then_some(a.saved_at + SAVE_EVERY);
                let tell =
                    (a.machine.bytes_have() != a.told_bytes).then_some(a.told_at + PROGRESS_EVERY);
                [a.machine.next_deadline(), save, tell]
            })
            .flatten()
            .min()
    }

    pub(super) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        let due: Vec<MessageId> = self
            .active
            .iter()
            .filter(|(_, a)| a.machine.next_deadline().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.feed(id, transfer::Input::Tick, None, ctx);
        }
        let ids: Vec<MessageId> = self.active.keys().copied().collect();
        for id in ids {
            self.save_and_tell(id, false, ctx);
        }
    }

    /// At a clean stop: every download's bitmap saved now, so a restart resumes from every
    /// chunk written, not from the last periodic save (a fast link fills a quarter of a large
    /// file in less than [`SAVE_EVERY`]).
    pub(super) fn save_all(&mut self, ctx: &mut Ctx<'_>) {
        let ids: Vec<MessageId> = self.active.keys().copied().collect();
        for id in ids {
            self.save_and_tell(id, true, ctx);
        }
    }

    pub(super) fn on_report(&mut self, event: Inbound, ctx: &mut Ctx<'_>) {
        match event {
            Inbound::Up { peer, link } => {
                self.links.on_up(&peer, link);
            }
            Inbound::Down { peer, link } => {
                if self.links.on_down(&peer, link) == Some(true) && ctx.io.connected(&peer) {
                    // The stream broke under a standing connection: a new one.
                    self.links.connect(peer);
                }
            }
            Inbound::Frame { peer, bytes } => self.on_frame(peer, bytes, ctx),
            Inbound::BadLength { peer, len } => {
                tracing::debug!(%peer, "file frame length {len} refused");
                ctx.io.stats.file_frames_dropped += 1;
                ctx.io.refuse(peer, Reason::TooLarge, Instant::now());
            }
        }
    }

    fn on_frame(&mut self, peer: PeerId, mut bytes: Vec<u8>, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        if !self.links.has(&peer) && ctx.io.connected(&peer) {
            self.links.connect(peer);
        }
        if ctx.io.guard.is_blocked(&peer, now) {
            ctx.io.stats.file_frames_dropped += 1;
            return;
        }
        let Some(head) = wire::peek::<Key>(&bytes) else {
            ctx.io.stats.file_frames_dropped += 1;
            ctx.io.refuse(peer, Reason::Malformed, now);
            return;
        };
        if head.to != ctx.io.me() {
            if head.hop_limit == 0 {
                ctx.io.stats.file_frames_dropped += 1;
                return;
            }
            // What we forward for others counts against the neighbour's byte rate; beyond it
            // the downloader is told at once (a silent drop cost it a timeout per piece).
            // What is for us is bounded elsewhere: pieces by our own windows, Wants by what we
            // serve per downloader, and all of it by the stream queues.
            if !self.neighbour_bytes.take(peer, bytes.len() as f64, now) {
                ctx.io.stats.file_frames_dropped += 1;
                let to = head.to;
                return self.refuse_relayed(head, Refusal::Busy, to, ctx);
            }
            wire::set_hop_limit(&mut bytes, head.hop_limit - 1);
            ctx.notes.push(Note::FileSend {
                to: head.to,
                frame: bytes,
                origin: Origin::Relayed,
            });
            return;
        }
        match Frame::<Key>::decode(&bytes) {
            Ok(Frame::Want(w)) => self.serving.serve(w, ctx),
            Ok(Frame::Piece(p)) => self.on_piece(peer, p, ctx),
            Ok(Frame::Nope(n)) => self.on_nope(n, ctx),
            Err(e) => {
                tracing::debug!(%peer, "malformed file frame: {e}");
                ctx.io.stats.file_frames_dropped += 1;
                ctx.io.refuse(peer, Reason::Malformed, now);
            }
        }
    }

    /// Sends a frame toward `to` by `via` (the routing table's next hop, from the loop).
    pub(super) fn send_via(
        &mut self,
        to: Key,
        via: Option<Key>,
        frame: Vec<u8>,
        origin: Origin,
        ctx: &mut Ctx<'_>,
    ) {
        let len = frame.len() as u64;
        // Read before the frame goes: whom a relay's refusal is for.
        let head = matches!(origin, Origin::Relayed)
            .then(|| wire::peek::<Key>(&frame))
            .flatten();
        let refusal = match via {
            None => Some(Refusal::NoRoute),
            Some(via) => match self
                .links
                .send(&peer_id_of_bytes(&via), frame, Instant::now())
            {
                Ok(()) => None,
                Err(SendError::Stalled) => {
                    ctx.notes.push(Note::Stalled(peer_id_of_bytes(&via)));
                    Some(Refusal::Busy)
                }
                Err(SendError::Full) => Some(Refusal::Busy),
                Err(SendError::NoLink) => Some(Refusal::NoRoute),
            },
        };
        match (origin, refusal) {
            (Origin::Relayed, None) => ctx.io.stats.file_bytes_relayed += len,
            (Origin::Served, None) => ctx.io.stats.file_bytes_sent += len,
            (Origin::Want(..), None) => {}
            (Origin::Served, Some(_)) => ctx.io.stats.file_frames_dropped += 1,
            (Origin::Relayed, Some(reason)) => {
                ctx.io.stats.file_frames_dropped += 1;
                if let Some(head) = head {
                    self.refuse_relayed(head, reason, to, ctx);
                }
            }
            (Origin::Want(id, holder), Some(reason)) => {
                self.feed(
                    id,
                    transfer::Input::Refused {
                        from: holder,
                        reason,
                    },
                    None,
                    ctx,
                );
            }
        }
    }

    /// A relay that cannot forward a frame (no route on, or the next link's queue is full)
    /// says so to the downloader, naming the holder the frame was from or for, so that the
    /// downloader backs off that holder instead of waiting for its timeouts. The name is not
    /// checked by anyone: a lying relay could only slow a transfer it could drop anyway.
    /// Refusals are not themselves refused back, and a dropped refusal is only counted.
    fn refuse_relayed(
        &mut self,
        head: wire::Header<Key>,
        reason: Refusal,
        to: Key,
        ctx: &mut Ctx<'_>,
    ) {
        let (downloader, holder) = match head.tag {
            wire::TAG_WANT => (head.from, to),
            wire::TAG_PIECE => (to, head.from),
            _ => return,
        };
        ctx.notes.push(Note::FileSend {
            to: downloader,
            frame: Frame::Nope(Nope {
                hop_limit: HOP_LIMIT,
                to: downloader,
                from: holder,
                root: head.root,
                reason,
            })
            .encode(),
            origin: Origin::Served,
        });
    }

    fn on_piece(&mut self, peer: PeerId, p: PieceFrame<Key>, ctx: &mut Ctx<'_>) {
        let Some(&id) = self.by_root.get(&p.root) else {
            // A piece of a download that ended (or was never asked for).
            ctx.io.stats.file_frames_dropped += 1;
            return;
        };
        let Some(a) = self.active.get(&id) else {
            return;
        };
        let input = match &a.row.key {
            Some(key) => match transfer::open_piece(key, &p.root, p.piece, &p.data) {
                Some(plain) => transfer::Input::Piece {
                    from: p.from,
                    piece: p.piece,
                    data: plain,
                },
                None => transfer::Input::BadPiece {
                    from: p.from,
                    piece: p.piece,
                },
            },
            None => transfer::Input::Piece {
                from: p.from,
                piece: p.piece,
                data: p.data,
            },
        };
        self.feed(id, input, Some(peer), ctx);
    }

    fn on_nope(&mut self, n: Nope<Key>, ctx: &mut Ctx<'_>) {
        let Some(&id) = self.by_root.get(&n.root) else {
            return;
        };
        self.feed(
            id,
            transfer::Input::Refused {
                from: n.from,
                reason: n.reason,
            },
            None,
            ctx,
        );
    }

    /// Hands one input to a download's machine and carries out what it asks. `neighbour`
    /// handed over the piece in `input`, if any.
    fn feed(
        &mut self,
        id: MessageId,
        input: transfer::Input<Key>,
        neighbour: Option<PeerId>,
        ctx: &mut Ctx<'_>,
    ) {
        let now = Instant::now();
        let Some(a) = self.active.get_mut(&id) else {
            return;
        };
        let outs = a.machine.handle(input, now);
        let mut done = false;
        for out in outs {
            match out {
                transfer::Output::Want { to, pieces } => {
                    let want = Want::sign(&ctx.io.key, HOP_LIMIT, to, a.row.root, now_ms(), pieces);
                    ctx.notes.push(Note::FileSend {
                        to,
                        frame: Frame::Want(want).encode(),
                        origin: Origin::Want(id, to),
                    });
                }
                transfer::Output::Manifest(m) => {
                    if let Err(e) = ctx.io.store.set_file_manifest(&id, &m.encode()) {
                        ctx.io
                            .write_failed(Write::Other("a download's manifest"), &e);
                    }
                }
                transfer::Output::Write { index, data } => {
                    let offset = u64::from(index) * u64::from(a.row.chunk_size);
                    if let Err(e) = a.file.write_all_at(&data, offset) {
                        let reason = format!("cannot write {}: {e}", a.part.display());
                        self.fail(id, &reason, ctx);
                        return;
                    }
                    ctx.io.stats.file_bytes_received += data.len() as u64;
                    a.dirty = true;
                }
                transfer::Output::Bad { from } => {
                    ctx.io.stats.file_pieces_bad += 1;
                    // The holder lied, or the piece was damaged on its way: relays do not
                    // check what they forward, so only a holder that is the neighbour
                    // itself is struck.
                    if let Some(n) = neighbour {
                        if key_of_peer_id(&n) == Some(from) {
                            ctx.io.refuse(n, Reason::Malformed, now);
                        }
                    }
                }
                transfer::Output::Done => done = true,
                transfer::Output::Stalled | transfer::Output::WakeAt(_) => {}
            }
        }
        if done {
            self.finish(id, ctx);
        }
    }

    /// Saves a download's bitmap and tells its progress when due (or now, with `force`).
    fn save_and_tell(&mut self, id: MessageId, force: bool, ctx: &mut Ctx<'_>) {
        let now = Instant::now();
        let Some(a) = self.active.get_mut(&id) else {
            return;
        };
        if a.dirty && (force || now >= a.saved_at + SAVE_EVERY) {
            a.dirty = false;
            a.saved_at = now;
            if let Err(e) = ctx.io.store.set_file_have(&id, &bitmap(a.machine.have())) {
                ctx.io
                    .write_failed(Write::Other("a download's progress"), &e);
            }
        }
        let bytes = a.machine.bytes_have();
        if bytes != a.told_bytes && (force || now >= a.told_at + PROGRESS_EVERY) {
            a.told_bytes = bytes;
            a.told_at = now;
            tracing::debug!(%id, bytes, in_flight = a.machine.in_flight(), "download progress");
            ctx.io.emit(Event::File(api::Event::FileProgress {
                id: id.to_string(),
                bytes,
                total: a.row.size,
            }));
        }
    }

    /// Every chunk verified: the file is checked whole, then moved into the download dir.
    fn finish(&mut self, id: MessageId, ctx: &mut Ctx<'_>) {
        self.save_and_tell(id, true, ctx);
        let Some(a) = self.active.get_mut(&id) else {
            return;
        };
        let Some(manifest) = a.machine.manifest().cloned() else {
            return;
        };
        if a.checking {
            return;
        }
        let file = match a.file.try_clone() {
            Ok(f) => f,
            Err(e) => {
                let reason = format!("cannot read {}: {e}", a.part.display());
                return self.fail(id, &reason, ctx);
            }
        };
        // Reading a large file back takes seconds: on a blocking thread, so the loop goes on
        // relaying meanwhile. Its answer comes back as `on_checked`.
        a.checking = true;
        let tx = self.checks_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = check_whole(&file, &manifest);
            let _ = tx.blocking_send(Checked { id, result });
        });
    }

    /// A finished download's whole-file check (from `finish`'s blocking thread).
    pub(super) fn on_checked(&mut self, checked: Checked, ctx: &mut Ctx<'_>) {
        let id = checked.id;
        let Some(a) = self.active.get_mut(&id) else {
            // Cancelled meanwhile.
            return;
        };
        a.checking = false;
        let lost = match checked.result {
            Ok(lost) => lost,
            Err(e) => {
                let reason = format!("cannot write {}: {e}", a.part.display());
                return self.fail(id, &reason, ctx);
            }
        };
        // Chunks the disk lost (a crash between a write and the bitmap's save, a bad sector):
        // fetched again.
        if !lost.is_empty() {
            tracing::warn!(
                lost = lost.len(),
                "chunks of a finished download did not verify"
            );
            return self.feed(id, transfer::Input::Lost(lost), None, ctx);
        }
        let Some(a) = self.active.remove(&id) else {
            return;
        };
        self.by_root.remove(&a.row.root);
        drop(a.file);
        let dir = ctx.io.config.files.download_dir.clone();
        let path = match place(&dir, &a.row.name, &a.part) {
            Ok(path) => path,
            Err(e) => {
                let _ = fs::remove_file(&a.part);
                return failed(
                    &a.row,
                    &format!("cannot move the file into {}: {e}", dir.display()),
                    ctx,
                );
            }
        };
        let path = path.display().to_string();
        if let Err(e) =
            ctx.io
                .store
                .set_file_state(&id, state_code(FileState::Done), Some(&path), None)
        {
            ctx.io
                .write_failed(Write::Other("a finished download's state"), &e);
        }
        tracing::info!(%id, path, "download finished");
        ctx.io.emit(Event::File(api::Event::FileDone {
            id: id.to_string(),
            path,
            hash: hex::encode(a.row.root),
        }));
    }

    /// A download ends with `reason`; its partial file is deleted.
    fn fail(&mut self, id: MessageId, reason: &str, ctx: &mut Ctx<'_>) {
        let row = match self.active.remove(&id) {
            Some(a) => {
                self.by_root.remove(&a.row.root);
                let _ = fs::remove_file(&a.part);
                a.row
            }
            None => match ctx.io.store.file(&id) {
                Ok(Some(row)) => row,
                _ => return,
            },
        };
        failed(&row, reason, ctx);
    }

    /// A checked offer: recorded and shown once; fetched at once when small enough.
    pub(super) fn on_offer(&mut self, env: Envelope, offer: Offer, dm: bool, ctx: &mut Ctx<'_>) {
        let author = *env.author().as_bytes();
        if author == ctx.io.me() {
            return;
        }
        let room = (!dm).then(|| env.target().to_owned());
        if let Some(room) = &room {
            if !ctx.io.rooms.contains(room) {
                // Relayed and stored for the room's members; not ours to show.
                return;
            }
        }
        let row = FileRow {
            id: env.id(),
            root: offer.root,
            author,
            nick: offer.nick.clone(),
            name: transfer::safe_file_name(&offer.name),
            size: offer.size,
            chunk_size: offer.chunk_size,
            room,
            peer: dm.then_some(author),
            timestamp_ms: env.timestamp_ms(),
            own: false,
            key: offer.key,
            state: state_code(FileState::Offered),
            path: None,
            reason: None,
        };
        match ctx.io.store.insert_file(&row, None) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => return ctx.io.write_failed(Write::Other("a file offer"), &e),
        }
        ctx.io.emit(Event::File(api::Event::FileOffer(view(
            &row,
            0,
            ctx.io.me(),
        ))));
        if row.size <= ctx.io.config.files.auto_accept_size {
            if let Err(e) = self.accept(row.id, ctx) {
                tracing::info!(id = %row.id, "not fetched unasked: {e}");
            }
        }
    }

    /// Records our own offer (the caller signed and sent it).
    pub(super) fn record_own(
        &mut self,
        env: &Envelope,
        offer: &Offer,
        path: &Path,
        manifest: &Manifest,
        peer: Option<Key>,
        ctx: &mut Ctx<'_>,
    ) -> Result<api::File, Error> {
        let row = FileRow {
            id: env.id(),
            root: offer.root,
            author: ctx.io.me(),
            nick: offer.nick.clone(),
            name: offer.name.clone(),
            size: offer.size,
            chunk_size: offer.chunk_size,
            room: peer.is_none().then(|| env.target().to_owned()),
            peer,
            timestamp_ms: env.timestamp_ms(),
            own: true,
            key: offer.key,
            state: state_code(FileState::Serving),
            path: Some(path.display().to_string()),
            reason: None,
        };
        ctx.io.store.insert_file(&row, Some(&manifest.encode()))?;
        Ok(view(&row, row.size, ctx.io.me()))
    }

    /// Starts (or resumes) fetching an offer.
    pub(super) fn accept(&mut self, id: MessageId, ctx: &mut Ctx<'_>) -> Result<(), Error> {
        let row = ctx
            .io
            .store
            .file(&id)?
            .ok_or_else(|| Error::UnknownFile(id.to_string()))?;
        if row.own {
            return Err(Error::File("that is this node's own offer".into()));
        }
        if self.active.contains_key(&id) || state_of_code(row.state) == FileState::Done {
            return Ok(());
        }
        if let Some(other) = self.by_root.get(&row.root) {
            return Err(Error::File(format!(
                "the same file is being fetched already (offer {other})"
            )));
        }
        self.activate(row, ctx)
    }

    /// Opens a download's partial file and machine, and asks its holders.
    fn activate(&mut self, mut row: FileRow, ctx: &mut Ctx<'_>) -> Result<(), Error> {
        if self.active.len() >= MAX_DOWNLOADS {
            return Err(Error::File(format!(
                "{MAX_DOWNLOADS} downloads are running; wait for one to end"
            )));
        }
        let id = row.id;
        let crate::store::FileProgress { manifest, have } = ctx.io.store.file_progress(&id)?;
        let manifest =
            manifest.and_then(|m| Manifest::decode(&m, row.size, row.chunk_size, &row.root).ok());
        let count = transfer::chunk_count(row.size, row.chunk_size);
        let have = match (&manifest, have) {
            (Some(_), Some(bits)) => unpack(&bits, count),
            _ => vec![false; count as usize],
        };
        let had: u64 = have
            .iter()
            .enumerate()
            .filter(|(_, h)| **h)
            .map(|(i, _)| {
                transfer::chunk_len(row.size, row.chunk_size, i as u32).unwrap_or(0) as u64
            })
            .sum();
        let files = ctx.io.config.files.clone();
        let partial = files.download_dir.join(".meshchat-partial");
        fs::create_dir_all(&partial)
            .map_err(|e| Error::File(format!("cannot make {}: {e}", partial.display())))?;
        let needs = row.size - had;
        let free = free_space(&partial)?;
        if free < needs.saturating_add(files.keep_free) {
            let e = Error::NoSpace {
                name: row.name.clone(),
                needs: human_size(needs),
                free: human_size(free),
                keep: human_size(files.keep_free),
            };
            failed(&row, &e.to_string(), ctx);
            return Err(e);
        }
        let part = partial.join(format!("{}.part", hex::encode(row.root)));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part)
            .map_err(|e| Error::File(format!("cannot open {}: {e}", part.display())))?;
        file.set_len(row.size)
            .map_err(|e| Error::File(format!("cannot size {}: {e}", part.display())))?;
        let now = Instant::now();
        let machine = Download::new(
            row.root,
            row.size,
            row.chunk_size,
            manifest,
            have,
            files.download,
            now,
        );
        if state_of_code(row.state) != FileState::Downloading {
            ctx.io
                .store
                .set_file_state(&id, state_code(FileState::Downloading), None, None)?;
            row.state = state_code(FileState::Downloading);
        }
        // A room file may be held by anyone who fetched it: its author, and our neighbours,
        // who are asked too (one `Want` each; a neighbour without it answers `NotHere` and is
        // asked no more). A DM file only by its author. The author first: the machine takes
        // at most `max_holders`.
        let mut holders = vec![row.author];
        if row.key.is_none() {
            let author = row.author;
            let neighbours = ctx
                .io
                .swarm
                .connected_peers()
                .filter_map(key_of_peer_id)
                .filter(|k| *k != author);
            holders.extend(neighbours.take(files.download.max_holders.saturating_sub(1)));
        }
        let root = row.root;
        self.active.insert(
            id,
            Active {
                told_bytes: had,
                row,
                machine,
                file,
                part,
                dirty: false,
                checking: false,
                saved_at: now,
                told_at: now,
            },
        );
        self.by_root.insert(root, id);
        for h in holders {
            self.feed(id, transfer::Input::Holder(h), None, ctx);
        }
        Ok(())
    }

    /// Stops a download (its partial data is deleted) or stops serving our offer.
    pub(super) fn cancel(&mut self, id: MessageId, ctx: &mut Ctx<'_>) -> Result<(), Error> {
        let row = ctx
            .io
            .store
            .file(&id)?
            .ok_or_else(|| Error::UnknownFile(id.to_string()))?;
        if let Some(a) = self.active.remove(&id) {
            self.by_root.remove(&a.row.root);
            drop(a.file);
            let _ = fs::remove_file(&a.part);
        }
        if state_of_code(row.state) != FileState::Done {
            ctx.io
                .store
                .set_file_state(&id, state_code(FileState::Cancelled), None, None)?;
        }
        Ok(())
    }

    /// The offers and transfers, newest first.
    pub(super) fn list(&self, ctx: &mut Ctx<'_>) -> Result<Vec<api::File>, Error> {
        let me = ctx.io.me();
        Ok(ctx
            .io
            .store
            .files(LIST_LIMIT)?
            .into_iter()
            .map(|row| {
                let bytes = match self.active.get(&row.id) {
                    Some(a) => a.machine.bytes_have(),
                    None if matches!(
                        state_of_code(row.state),
                        FileState::Done | FileState::Serving
                    ) =>
                    {
                        row.size
                    }
                    None => 0,
                };
                view(&row, bytes, me)
            })
            .collect())
    }
}

/// The API's view of a stored offer.
pub(super) fn view(row: &FileRow, bytes: u64, me: Key) -> api::File {
    let to = match (row.own, row.peer) {
        (true, Some(p)) => Some(peer_id_of_bytes(&p).to_string()),
        (false, Some(_)) => Some(peer_id_of_bytes(&me).to_string()),
        _ => None,
    };
    api::File {
        id: row.id.to_string(),
        from: peer_id_of_bytes(&row.author).to_string(),
        fingerprint: Fingerprint::of_key_bytes(&row.author).to_string(),
        nick: row.nick.clone(),
        name: row.name.clone(),
        size: row.size,
        hash: hex::encode(row.root),
        room: row.room.clone(),
        to,
        ts: row.timestamp_ms,
        own: row.own,
        state: state_of_code(row.state),
        bytes,
        path: row.path.clone(),
        reason: row.reason.clone(),
    }
}

/// A transfer ends with `reason`: stored and told.
fn failed(row: &FileRow, reason: &str, ctx: &mut Ctx<'_>) {
    tracing::warn!(id = %row.id, "file transfer failed: {reason}");
    if let Err(e) =
        ctx.io
            .store
            .set_file_state(&row.id, state_code(FileState::Failed), None, Some(reason))
    {
        ctx.io.write_failed(Write::Other("a file's state"), &e);
    }
    ctx.io.emit(Event::File(api::Event::FileFailed {
        id: row.id.to_string(),
        reason: reason.to_owned(),
    }));
}
