//! Checkpoints of the write-ahead log, off the actor's thread (issue 25).
//!
//! In WAL mode a commit only appends to the log; moving the log into the database file (a
//! checkpoint) is where SQLite waits for the disk: it syncs the log, writes the pages and syncs
//! the file. SQLite runs it inside the commit that takes the log past `wal_autocheckpoint`
//! pages, which is the actor's commit: in the 30-process lab every node did it about once per
//! 10 s run, each sync took 50–110 ms (`strace -T`), and for that time the node relayed nothing,
//! which was most of the lab's latency tail (p99 to all nodes 300 ms on disk against 105 ms with
//! the data dirs on tmpfs, BENCHMARKS §2).
//!
//! So a node's store checkpoints from a thread of its own with a second connection, every
//! [`EVERY`], `PASSIVE` (it never waits for, nor blocks, the actor's reads and writes). With
//! nothing new in the log it does no I/O. What stays on the actor's thread is the sync of the
//! log's header when its next commit starts the log over (`strace`: 0.4–3 ms, against 50–110 ms
//! for a checkpoint's syncs). The actor's connection keeps automatic checkpoints
//! only as a backstop, at [`BACKSTOP_PAGES`], should this thread fail or fall behind.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// How often the log is checkpointed. After a checkpoint that took the whole log, the next
/// commit starts the log over and syncs its header, on the actor's thread (1–3 ms, measured):
/// so not more often than this.
pub(super) const EVERY: Duration = Duration::from_secs(5);
/// Log pages (4 KiB each) after which the actor's own commit checkpoints: 32 MiB, seconds of
/// the fastest writing measured; never reached while the thread keeps up.
pub(super) const BACKSTOP_PAGES: u32 = 8192;

/// The checkpoint thread; stopped (and waited for) when dropped.
pub(super) struct Checkpointer {
    stop: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`; `None` (the actor's own checkpoints then
    /// do the work, as before) if a second connection or the thread cannot be had.
    pub(super) fn start(path: &Path) -> Option<Self> {
        let conn = match Connection::open(path) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!("no background checkpoints of the database log: {e}");
                return None;
            }
        };
        let (stop, stopped) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("meshchat-checkpoint".into())
            .spawn(move || run(&conn, &stopped))
            .map_err(|e| tracing::warn!("no background checkpoints of the database log: {e}"))
            .ok()?;
        Some(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Its end of the channel gone, the thread stops at once.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    let mut failing = false;
    // The first at a phase of its own (each checkpoint is followed by a commit that starts its
    // log over).
    let mut wait = crate::first_round(EVERY);
    loop {
        match stopped.recv_timeout(std::mem::replace(&mut wait, EVERY)) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        // One row (busy, frames in the log, frames checkpointed); only success matters here.
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1));
        match done {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("database log checkpoints work again");
            }
            Ok(_) => {}
            // Another checkpoint runs (the backstop's): this one's turn comes next time.
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {}
            // Told once per outage (a full disk is also told by the writes that fail); the log
            // keeps every commit meanwhile.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("checkpointing the database log: {e}");
            }
            Err(_) => {}
        }
    }
}
