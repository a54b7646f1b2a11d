//! The streams of `/meshchat/broadcast/2`, the room broadcast (the protocol itself is
//! [`meshchat_core::broadcast`]; this module only moves its frames).
//!
//! Each node opens one long-lived stream to each connected peer and writes frames on it; the
//! peer does the same the other way, so each direction of a link is one stream. A frame is a
//! 4-byte big-endian length and then that many bytes of [`meshchat_core::broadcast::wire`]
//! frame. Streams come from [`libp2p_stream`]: the bytes are read and written in tasks outside
//! the swarm, so a slow peer never holds up the swarm's event loop, and everything between the
//! tasks and the actor goes through bounded queues:
//!
//! - **Out**: one writer task per peer, fed by a queue of [`SEND_QUEUE`] frames and at most
//!   [`SEND_QUEUE_BYTES`] bytes. When the queue is full the frame is dropped (the tree repairs a lost push: announcements also go to eager
//!   peers, and a miss is grafted from another announcer) and [`Links::send`] says so; a queue
//!   that stays full for [`STALL`] marks the peer as stalled, and the node closes and redials the
//!   link.
//! - **In**: one reader task per incoming stream (at most [`STREAMS_PER_PEER`] per peer), all
//!   feeding one queue of [`INBOUND_QUEUE`] frames to the actor. A reader waits when that queue
//!   is full, which stops it reading, which (through Yamux's or QUIC's flow control) slows the
//!   peer's writer: a busy node pushes back instead of buffering. A reader never allocates more
//!   than what has arrived: a frame's buffer grows with its bytes, not with its announced length.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use meshchat_core::broadcast::wire::MAX_FRAME_LEN;
use tokio::sync::mpsc;

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/meshchat/broadcast/2");
/// Frames queued for one peer's writer before further ones are dropped. A frame holds up to 64
/// messages, so this is thousands of messages: seconds of the fastest sending we measured.
pub const SEND_QUEUE: usize = 256;
/// Bytes queued for one peer's writer before further frames are dropped: 256 frames of up to
/// 1 MiB each would be 256 MiB for one peer (a peer that grafted everything it could saw a node
/// at 1.9 GB, issue 24). 16 MiB is seconds of the fastest link we measured.
pub const SEND_QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// Frames from every peer waiting for the actor.
pub const INBOUND_QUEUE: usize = 1024;
/// How long a peer's queue may stay full before the link counts as stalled.
pub const STALL: Duration = Duration::from_secs(3);
/// Longest wait for a peer to accept our stream.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Incoming broadcast streams one peer may have open at once: one per connection, and a peer
/// has at most two connections (`Behaviour::new`'s limits). Further ones are dropped.
pub const STREAMS_PER_PEER: usize = 2;
/// A writer gathers queued frames into one write up to about this many bytes.
const WRITE_BATCH: usize = 256 * 1024;

/// What the stream tasks tell the actor.
#[derive(Debug)]
pub enum Inbound {
    /// Our stream to `peer` is open.
    Up { peer: PeerId, link: u64 },
    /// Our stream to `peer` failed to open, or closed.
    Down { peer: PeerId, link: u64 },
    /// A frame from `peer` (not yet decoded).
    Frame { peer: PeerId, bytes: Vec<u8> },
    /// `peer` announced a frame length no honest node sends (0, or over the limit); that stream
    /// was dropped.
    BadLength { peer: PeerId, len: u32 },
}

/// Why [`Links::send`] did not queue a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No stream to that peer (not connected, or it does not speak the protocol).
    NoLink,
    /// The peer's queue is full; the frame is dropped.
    Full,
    /// The peer's queue has been full for [`STALL`]: the peer takes nothing.
    Stalled,
}

struct Writer {
    /// Tells this writer's reports from those of an earlier one to the same peer.
    link: u64,
    frames: mpsc::Sender<Vec<u8>>,
    /// Bytes in `frames` (added here, taken off by the writer task).
    queued: Arc<AtomicUsize>,
    /// The stream is open.
    up: bool,
    /// Since when the queue has been full, if it is.
    full_since: Option<Instant>,
}

/// How much a [`Links`] may hold: frames from all peers waiting for the actor, and frames and
/// bytes queued for each peer's writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queues {
    pub inbound: usize,
    pub send_frames: usize,
    pub send_bytes: usize,
}

impl Queues {
    /// The broadcast's and the DM routing's queues.
    pub const MESSAGES: Queues = Queues {
        inbound: INBOUND_QUEUE,
        send_frames: SEND_QUEUE,
        send_bytes: SEND_QUEUE_BYTES,
    };
}

/// Our streams to every connected peer.
pub struct Links {
    protocol: StreamProtocol,
    max_frame: usize,
    queues: Queues,
    control: libp2p_stream::Control,
    writers: HashMap<PeerId, Writer>,
    tx: mpsc::Sender<Inbound>,
    next_link: u64,
}

impl Links {
    /// Links over `behaviour`'s connections, and the queue their reports arrive on. Call
    /// [`Links::start`] from within the runtime before the first connection.
    pub fn new(behaviour: &libp2p_stream::Behaviour) -> (Self, mpsc::Receiver<Inbound>) {
        Self::with_protocol(behaviour, PROTOCOL, MAX_FRAME_LEN, Queues::MESSAGES)
    }

    /// Links speaking `protocol`, whose frames are at most `max_frame` bytes.
    pub fn with_protocol(
        behaviour: &libp2p_stream::Behaviour,
        protocol: StreamProtocol,
        max_frame: usize,
        queues: Queues,
    ) -> (Self, mpsc::Receiver<Inbound>) {
        let (tx, rx) = mpsc::channel(queues.inbound);
        let links = Self {
            protocol,
            max_frame,
            queues,
            control: behaviour.new_control(),
            writers: HashMap::new(),
            tx,
            next_link: 0,
        };
        (links, rx)
    }

    /// Starts accepting the peers' streams.
    pub fn start(&mut self) {
        match self.control.accept(self.protocol.clone()) {
            Ok(incoming) => {
                tokio::spawn(accept(incoming, self.tx.clone(), self.max_frame));
            }
            Err(e) => tracing::error!("{} streams: {e}", self.protocol),
        }
    }

    /// Opens our stream to `peer` (a connection to it was established), unless one is open or
    /// opening.
    pub fn connect(&mut self, peer: PeerId) {
        if self.writers.contains_key(&peer) {
            return;
        }
        self.next_link += 1;
        let link = self.next_link;
        let (frames, queue) = mpsc::channel(self.queues.send_frames);
        let queued = Arc::new(AtomicUsize::new(0));
        self.writers.insert(
            peer,
            Writer {
                link,
                frames,
                queued: queued.clone(),
                up: false,
                full_since: None,
            },
        );
        tokio::spawn(write_frames(
            self.control.clone(),
            self.protocol.clone(),
            peer,
            link,
            Queue {
                frames: queue,
                bytes: queued,
            },
            self.tx.clone(),
        ));
    }

    /// Drops our stream to `peer` (its last connection closed); its writer ends.
    pub fn disconnect(&mut self, peer: &PeerId) {
        self.writers.remove(peer);
    }

    /// Records an [`Inbound::Up`]; false if it is about a writer since replaced.
    pub fn on_up(&mut self, peer: &PeerId, link: u64) -> bool {
        match self.writers.get_mut(peer) {
            Some(w) if w.link == link => {
                w.up = true;
                true
            }
            _ => false,
        }
    }

    /// Records an [`Inbound::Down`] of the current stream: `Some(true)` if it was open (it
    /// broke), `Some(false)` if it never opened (the peer does not speak the protocol, or did
    /// not answer in time); `None` for a report about a stream since replaced.
    pub fn on_down(&mut self, peer: &PeerId, link: u64) -> Option<bool> {
        match self.writers.get(peer) {
            Some(w) if w.link == link => self.writers.remove(peer).map(|w| w.up),
            _ => None,
        }
    }

    /// Whether our stream to `peer` is open or opening.
    pub fn has(&self, peer: &PeerId) -> bool {
        self.writers.contains_key(peer)
    }

    pub fn is_up(&self, peer: &PeerId) -> bool {
        self.writers.get(peer).is_some_and(|w| w.up)
    }

    /// Peers whose stream is open.
    pub fn up_count(&self) -> usize {
        self.writers.values().filter(|w| w.up).count()
    }

    /// Queues a frame for `peer`.
    pub fn send(&mut self, peer: &PeerId, frame: Vec<u8>, now: Instant) -> Result<(), SendError> {
        let Some(w) = self.writers.get_mut(peer) else {
            return Err(SendError::NoLink);
        };
        let len = frame.len();
        let sent = if w.queued.load(Ordering::Relaxed) + len > self.queues.send_bytes {
            Err(mpsc::error::TrySendError::Full(frame))
        } else {
            w.frames.try_send(frame)
        };
        match sent {
            Ok(()) => {
                w.queued.fetch_add(len, Ordering::Relaxed);
                w.full_since = None;
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                let since = *w.full_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= STALL {
                    w.full_since = None;
                    Err(SendError::Stalled)
                } else {
                    Err(SendError::Full)
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::NoLink),
        }
    }
}

/// A writer's end of its queue.
struct Queue {
    frames: mpsc::Receiver<Vec<u8>>,
    /// Bytes in `frames`, shared with [`Writer::queued`].
    bytes: Arc<AtomicUsize>,
}

impl Queue {
    async fn recv(&mut self) -> Option<Vec<u8>> {
        let frame = self.frames.recv().await?;
        self.bytes.fetch_sub(frame.len(), Ordering::Relaxed);
        Some(frame)
    }

    fn try_recv(&mut self) -> Option<Vec<u8>> {
        let frame = self.frames.try_recv().ok()?;
        self.bytes.fetch_sub(frame.len(), Ordering::Relaxed);
        Some(frame)
    }
}

/// Opens the stream to `peer` and writes what is queued for it until the queue's sender is
/// dropped or a write fails.
async fn write_frames(
    mut control: libp2p_stream::Control,
    protocol: StreamProtocol,
    peer: PeerId,
    link: u64,
    mut queue: Queue,
    tx: mpsc::Sender<Inbound>,
) {
    let opened = tokio::time::timeout(OPEN_TIMEOUT, control.open_stream(peer, protocol)).await;
    let mut stream = match opened {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "no broadcast stream: {e}");
            let _ = tx.send(Inbound::Down { peer, link }).await;
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no broadcast stream: timed out");
            let _ = tx.send(Inbound::Down { peer, link }).await;
            return;
        }
    };
    if tx.send(Inbound::Up { peer, link }).await.is_err() {
        return;
    }
    let mut out = Vec::with_capacity(WRITE_BATCH);
    // Whether the peer's side of our stream may still end (see `peer_dropped`).
    let mut watching = true;
    let mut scratch = [0u8; 1];
    loop {
        let frame = tokio::select! {
            frame = queue.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
            read = stream.read(&mut scratch), if watching => match read {
                // No honest peer writes on a stream we opened. One that does is not read
                // any further (flow control then holds it back) rather than read and dropped
                // for as long as it cares to send.
                Ok(n) if n > 0 => {
                    watching = false;
                    continue;
                }
                _ => {
                    if peer_dropped(&mut stream).await {
                        tracing::debug!(%peer, "the peer dropped our stream");
                        break;
                    }
                    watching = false;
                    continue;
                }
            },
        };
        out.clear();
        push_frame(&mut out, &frame);
        while out.len() < WRITE_BATCH {
            match queue.try_recv() {
                Some(frame) => push_frame(&mut out, &frame),
                None => break,
            }
        }
        if let Err(e) = write(&mut stream, &out).await {
            tracing::debug!(%peer, "broadcast stream closed: {e}");
            break;
        }
    }
    let _ = stream.close().await;
    let _ = tx.send(Inbound::Down { peer, link }).await;
}

/// Our stream's read side ended: the peer dropped the stream (a reset: it will read nothing
/// more), or only closed its own side. Only a reset makes a write fail, so an empty write tells
/// them apart.
///
/// Noticing a reset here, rather than at the next frame, matters when the link is idle: a peer
/// drops a stream it cannot take at once (libp2p-stream hands a node its incoming streams one
/// at a time, and one that arrives before the previous was taken is dropped), and what we wrote
/// into it meanwhile (a routing table's full dump, say) is lost. The node opens a new stream
/// when this writer ends, instead of at its next write, which for routing is the next periodic
/// update, up to 30 s later.
async fn peer_dropped(stream: &mut Stream) -> bool {
    stream.write(&[]).await.is_err()
}

fn push_frame(out: &mut Vec<u8>, frame: &[u8]) {
    let len = u32::try_from(frame.len()).expect("frames are at most a few MiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(frame);
}

async fn write(stream: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Incoming streams per peer, shared by the accept loop and the readers.
type Open = Arc<Mutex<HashMap<PeerId, usize>>>;

/// Takes the peers' streams, one reader each, at most [`STREAMS_PER_PEER`] per peer.
async fn accept(
    mut incoming: libp2p_stream::IncomingStreams,
    tx: mpsc::Sender<Inbound>,
    max_frame: usize,
) {
    let open: Open = Arc::default();
    while let Some((peer, stream)) = incoming.next().await {
        if tx.is_closed() {
            return;
        }
        {
            let mut open = open.lock().expect("the count is never left poisoned");
            let n = open.entry(peer).or_insert(0);
            if *n >= STREAMS_PER_PEER {
                tracing::debug!(%peer, "broadcast stream refused: {n} open already");
                continue;
            }
            *n += 1;
        }
        let slot = Slot {
            open: open.clone(),
            peer,
        };
        tokio::spawn(read_frames(peer, stream, tx.clone(), slot, max_frame));
    }
}

/// A reader's place in the per-peer count, given back when the reader ends.
struct Slot {
    open: Open,
    peer: PeerId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock() {
            if let Some(n) = open.get_mut(&self.peer) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.peer);
                }
            }
        }
    }
}

/// Reads frames from one of `peer`'s streams until it ends, fails, or breaks the framing.
async fn read_frames(
    peer: PeerId,
    mut stream: Stream,
    tx: mpsc::Sender<Inbound>,
    _slot: Slot,
    max_frame: usize,
) {
    let mut len = [0u8; 4];
    loop {
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let n = u32::from_be_bytes(len);
        if n == 0 || n as usize > max_frame {
            let _ = tx.send(Inbound::BadLength { peer, len: n }).await;
            return;
        }
        let mut bytes = Vec::new();
        match (&mut stream)
            .take(u64::from(n))
            .read_to_end(&mut bytes)
            .await
        {
            Ok(got) if got == n as usize => {}
            _ => return,
        }
        if tx.send(Inbound::Frame { peer, bytes }).await.is_err() {
            return;
        }
    }
}
