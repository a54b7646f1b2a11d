//! SQLite storage: messages, joined rooms, known peers and settings.
//!
//! The node actor owns one [`Store`] and calls it synchronously; writes of incoming messages are
//! batched by the actor into one transaction per batch ([`Store::insert_messages`]), so storage is
//! not the throughput limit. The database runs in WAL mode with `synchronous=NORMAL`: a crash can
//! lose at most the last commits since a checkpoint, never corrupt the file. The node's store
//! checkpoints from a thread of its own ([`checkpoint`]), so the actor never waits for the disk
//! to sync.
//!
//! A database that cannot be read is an error, never replaced: the caller reports it and exits.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use meshchat_core::envelope::Kind;
use meshchat_core::room::Text;
use meshchat_core::{Envelope, MessageId};
use rusqlite::{params, Connection, OptionalExtension};

/// Newest schema this code knows; `PRAGMA user_version` holds the database's. Version 2 added
/// the arrival order (`seq`) and the `synced` mark; version 3 the direct messages (`dms`,
/// `dm_items`) and profiles; version 4 the file offers and transfers (`files`).
pub const SCHEMA_VERSION: i64 = 5;
/// Most known peers remembered; the least recently seen are forgotten first.
pub const MAX_KNOWN_PEERS: i64 = 1000;
/// Most addresses remembered per peer.
pub const MAX_ADDRS_PER_PEER: usize = 8;
/// Most messages one history query returns.
pub const MAX_HISTORY: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database {path} is damaged ({detail}); it was left untouched — move it away to start afresh")]
    Corrupt { path: String, detail: String },
    /// Not damage: the file could not be read or its side files made (a full or read-only
    /// disk). Telling the user to move a sound database away would lose their history.
    #[error("cannot open database {path} ({detail}); nothing in it was changed — is the disk full or read-only?")]
    Unavailable { path: String, detail: String },
    #[error(
        "database schema version {0} is newer than this meshchat understands ({SCHEMA_VERSION})"
    )]
    TooNew(i64),
    #[error("stored message {0} cannot be decoded: {1}")]
    BadRow(String, String),
}

/// A room message as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: MessageId,
    pub room: String,
    /// Author's Ed25519 public key.
    pub author: [u8; 32],
    pub nick: String,
    pub timestamp_ms: u64,
    pub text: String,
    /// Arrived by history sync rather than the live broadcast.
    pub synced: bool,
    /// Arrival order: increases with every message stored (0 until stored).
    pub seq: u64,
    /// A private room's envelope, and whether this node read it.
    pub sealed: Sealed,
}

/// What a stored row of a private room is to this node (column `sealed`): only `No` and `Read`
/// rows are ever shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sealed {
    /// A public room's message.
    #[default]
    No = 0,
    /// A private room's message this node cannot read (yet): kept to relay and sync; nick and
    /// text are empty.
    Unread = 1,
    /// A private room's message this node opened: nick and text are filled in.
    Read = 2,
    /// An invite room's operation: never shown.
    Op = 3,
}

impl Sealed {
    fn from_code(c: i64) -> Self {
        match c {
            1 => Sealed::Unread,
            2 => Sealed::Read,
            3 => Sealed::Op,
            _ => Sealed::No,
        }
    }
}

impl StoredMessage {
    /// The displayable form of a verified room-text envelope, or of a file offer in a room
    /// (its text says what it offers).
    pub fn from_envelope(env: &Envelope) -> Option<Self> {
        let text = match env.kind() {
            Kind::RoomText => Text::decode(env.body()).ok()?,
            Kind::File => meshchat_core::transfer::wire::Offer::decode(env.body())
                .ok()?
                .as_text(),
            _ => return None,
        };
        Some(Self::new(env, text))
    }

    /// The stored form of a verified room-text envelope whose body the caller already decoded.
    pub fn new(env: &Envelope, text: Text) -> Self {
        Self {
            id: env.id(),
            room: env.target().to_owned(),
            author: *env.author().as_bytes(),
            nick: text.nick,
            timestamp_ms: env.timestamp_ms(),
            text: text.text,
            synced: false,
            seq: 0,
            sealed: Sealed::No,
        }
    }

    /// A private room's envelope as this node keeps it: `shown` when it opened it.
    pub fn private(env: &Envelope, sealed: Sealed, shown: Option<Text>) -> Self {
        let shown = shown.unwrap_or(Text {
            nick: String::new(),
            text: String::new(),
        });
        Self {
            sealed,
            ..Self::new(env, shown)
        }
    }
}

/// A peer this node connected to, with the addresses it was reached at or announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownPeer {
    pub peer_id: String,
    pub addrs: Vec<String>,
    pub last_seen_ms: u64,
}

pub struct Store {
    conn: Connection,
    /// The arrival number the next stored message gets.
    next_seq: u64,
    /// The arrival number of the last message stored before this open (0: none).
    seq_at_open: u64,
    /// Tests: while set, message writes fail as on a full disk.
    fail_writes: Option<Arc<AtomicBool>>,
    /// The write-ahead log had frames at open: the last stop was not clean.
    unclean: bool,
    /// Checkpoints the log from a thread of its own (the node's store; not tests' or
    /// benchmarks').
    checkpointer: Option<checkpoint::Checkpointer>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if absent) the database at `path`, checks it and migrates it.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let classify = |e: rusqlite::Error| {
            let (path, detail) = (path.display().to_string(), e.to_string());
            match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                    Error::Corrupt { path, detail }
                }
                _ => Error::Unavailable { path, detail },
            }
        };
        // A clean stop checkpoints the write-ahead log and removes it; one left with frames in
        // it means the last stop was not clean.
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let unclean = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
        let conn = Connection::open(path)?;
        // The first read of the header is where a non-database file shows itself.
        conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0))
            .map_err(classify)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(classify)?;
        if check != "ok" {
            return Err(Error::Corrupt {
                path: path.display().to_string(),
                detail: check,
            });
        }
        let mut store = Self::init(conn)?;
        store.unclean = unclean;
        Ok(store)
    }

    /// Whether the last stop was not clean (a crash, a power loss, a kill): SQLite then replays
    /// the write-ahead log's complete transactions and drops a torn or damaged tail, so every
    /// write completed before it is kept (`quick_check` has passed when this is read).
    pub fn recovered(&self) -> bool {
        self.unclean
    }

    /// What to tell the user at start if [`Store::recovered`].
    pub fn recovery_notice(&self) -> Option<String> {
        self.unclean.then(|| {
            "meshchat did not stop cleanly last time (a crash, a power loss, or another meshchat \
             using this data directory); the database was recovered with every completed \
             write, and anything cut off is fetched again from peers"
                .to_owned()
        })
    }

    /// The node's database as `config` says: in the data dir, or in memory; with a test's
    /// failure injection ([`Store::fail_writes_when`]) if it sets one.
    pub(crate) fn open_for(config: &crate::Config) -> Result<Self, Error> {
        let mut store = if config.in_memory_store {
            Self::open_in_memory()?
        } else {
            let path = config.data_dir.join("meshchat.sqlite");
            let mut store = Self::open(&path)?;
            store.checkpoint_in_background(&path)?;
            store
        };
        if let Some(flag) = &config.fail_writes {
            store.fail_writes_when(flag.clone());
        }
        Ok(store)
    }

    /// Moves the log's checkpoints off this connection, and so off the caller's thread, to a
    /// thread of their own ([`checkpoint`]); this connection checkpoints only as a backstop.
    pub fn checkpoint_in_background(&mut self, path: &Path) -> Result<(), Error> {
        if let Some(c) = checkpoint::Checkpointer::start(path) {
            self.conn
                .pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP_PAGES)?;
            self.checkpointer = Some(c);
        }
        Ok(())
    }

    /// A database in memory (benchmarks and tests).
    pub fn open_in_memory() -> Result<Self, Error> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, Error> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Self {
            conn,
            next_seq: 1,
            seq_at_open: 0,
            fail_writes: None,
            unclean: false,
            checkpointer: None,
        };
        store.migrate()?;
        store.next_seq =
            store
                .conn
                .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM messages", [], |r| {
                    r.get::<_, i64>(0)
                })? as u64;
        store.seq_at_open = store.next_seq - 1;
        Ok(store)
    }

    /// The arrival number of the last message stored before this open (0: none): every message
    /// stored since has a higher one.
    pub fn seq_at_open(&self) -> u64 {
        self.seq_at_open
    }

    fn migrate(&mut self) -> Result<(), Error> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(Error::TooNew(version));
        }
        let tx = self.conn.transaction()?;
        if version < 1 {
            tx.execute_batch(
                "CREATE TABLE messages (
                    id BLOB PRIMARY KEY NOT NULL,
                    room TEXT NOT NULL,
                    author BLOB NOT NULL,
                    nick TEXT NOT NULL,
                    ts INTEGER NOT NULL,
                    text TEXT NOT NULL,
                    envelope BLOB NOT NULL,
                    received_at INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 CREATE INDEX messages_room_ts ON messages (room, ts, id);
                 CREATE TABLE rooms (
                    name TEXT PRIMARY KEY NOT NULL,
                    joined_at INTEGER NOT NULL
                 );
                 CREATE TABLE peers (
                    peer_id TEXT PRIMARY KEY NOT NULL,
                    addrs TEXT NOT NULL,
                    last_seen INTEGER NOT NULL
                 );
                 CREATE TABLE settings (
                    key TEXT PRIMARY KEY NOT NULL,
                    value TEXT NOT NULL
                 );",
            )?;
        }
        if version < 2 {
            // Arrival order for existing rows: as they were received.
            tx.execute_batch(
                "ALTER TABLE messages ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE messages ADD COLUMN synced INTEGER NOT NULL DEFAULT 0;
                 CREATE TEMP TABLE arrival (i BLOB PRIMARY KEY NOT NULL, n INTEGER NOT NULL)
                    WITHOUT ROWID;
                 INSERT INTO arrival
                    SELECT id, ROW_NUMBER() OVER (ORDER BY received_at, ts, id) FROM messages;
                 UPDATE messages SET seq = (SELECT n FROM arrival WHERE i = messages.id);
                 DROP TABLE arrival;
                 CREATE INDEX messages_seq ON messages (seq);
                 CREATE INDEX messages_ts ON messages (ts, id);",
            )?;
        }
        if version < 3 {
            tx.execute_batch(dm::SCHEMA_V3)?;
        }
        if version < 4 {
            tx.execute_batch(files::SCHEMA_V4)?;
        }
        if version < 5 {
            tx.execute_batch(private::SCHEMA_V5)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(())
    }

    /// Tests: makes every write fail (as on a full disk) while `flag` is set: messages, DMs and
    /// their states, profiles, held DM items, settings, rooms, known peers, pruning and the
    /// checkpoint at close.
    pub fn fail_writes_when(&mut self, flag: Arc<AtomicBool>) {
        self.fail_writes = Some(flag);
    }

    /// The failure [`Store::fail_writes_when`] injects, while its flag is set.
    pub(crate) fn injected_failure(&self) -> Result<(), Error> {
        if self
            .fail_writes
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            return Err(Error::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                Some("database or disk is full (injected by a test)".into()),
            )));
        }
        Ok(())
    }

    /// Inserts a batch in one transaction. For each envelope, true if it was new (and so should be
    /// shown), false if it was already stored. Envelopes that are not room texts are skipped (false).
    pub fn insert_messages(&mut self, envs: &[Envelope], now_ms: u64) -> Result<Vec<bool>, Error> {
        let decoded: Vec<Option<StoredMessage>> =
            envs.iter().map(StoredMessage::from_envelope).collect();
        let rows: Vec<(&Envelope, &StoredMessage)> = envs
            .iter()
            .zip(&decoded)
            .filter_map(|(env, m)| Some((env, m.as_ref()?)))
            .collect();
        let mut fresh = self.insert_decoded(&rows, now_ms)?.into_iter();
        Ok(decoded
            .iter()
            .map(|m| m.is_some() && fresh.next().flatten().is_some())
            .collect())
    }

    /// [`Store::insert_messages`] for envelopes whose stored form the caller already has (the node
    /// decodes each body once, when it checks it). One transaction; for each row, its arrival
    /// number if it was new, `None` if it was stored already. All or nothing: on an error nothing
    /// was stored.
    pub fn insert_decoded(
        &mut self,
        rows: &[(&Envelope, &StoredMessage)],
        now_ms: u64,
    ) -> Result<Vec<Option<u64>>, Error> {
        self.injected_failure()?;
        let tx = self.conn.transaction()?;
        let mut fresh = Vec::with_capacity(rows.len());
        let mut seq = self.next_seq;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO messages
                    (id, room, author, nick, ts, text, envelope, received_at, seq, synced, sealed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for (env, m) in rows {
                let n = stmt.execute(params![
                    &m.id.0[..],
                    m.room,
                    &m.author[..],
                    m.nick,
                    m.timestamp_ms as i64,
                    m.text,
                    env.as_bytes(),
                    now_ms as i64,
                    seq as i64,
                    m.synced,
                    m.sealed as i64,
                ])?;
                if n == 1 {
                    fresh.push(Some(seq));
                    seq += 1;
                } else {
                    fresh.push(None);
                }
            }
        }
        tx.commit()?;
        self.next_seq = seq;
        Ok(fresh)
    }

    pub fn contains(&self, id: &MessageId) -> Result<bool, Error> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM messages WHERE id = ?1")?
            .exists(params![&id.0[..]])?)
    }

    /// The last `limit` messages of `room` before `before` (exclusive; `None` = the newest), in
    /// display order: author timestamp, then id. Returned oldest first.
    pub fn history(
        &self,
        room: &str,
        limit: usize,
        before: Option<(u64, MessageId)>,
    ) -> Result<Vec<StoredMessage>, Error> {
        let limit = limit.min(MAX_HISTORY) as i64;
        let (ts, id) = match before {
            Some((ts, id)) => (ts as i64, id.0.to_vec()),
            None => (i64::MAX, vec![0xff; 33]),
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, room, author, nick, ts, text, synced, seq, sealed FROM messages
             WHERE room = ?1 AND (ts < ?2 OR (ts = ?2 AND id < ?3)) AND sealed IN (0, 2)
             ORDER BY ts DESC, id DESC LIMIT ?4",
        )?;
        let mut out = read_messages(stmt.query(params![room, ts, id, limit])?)?;
        out.reverse();
        Ok(out)
    }

    /// Messages of joined rooms that arrived after arrival number `after`, in arrival order, at
    /// most `limit` (front-ends catch up with this after they fell behind). It walks the
    /// arrival index from `after` (the `+` keeps SQLite off the room index, which would read
    /// and sort a joined room's whole history for every call).
    pub fn arrived_after(&self, after: u64, limit: usize) -> Result<Vec<StoredMessage>, Error> {
        let limit = limit.min(MAX_HISTORY) as i64;
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, room, author, nick, ts, text, synced, seq, sealed FROM messages
             WHERE seq > ?1 AND +room IN (SELECT name FROM rooms) AND sealed IN (0, 2)
             ORDER BY seq LIMIT ?2",
        )?;
        let out = read_messages(stmt.query(params![after as i64, limit])?)?;
        Ok(out)
    }

    /// The newest arrival number given out (0: none).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn message_count(&self, room: &str) -> Result<u64, Error> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM messages WHERE room = ?1",
            params![room],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    pub fn joined_rooms(&self) -> Result<Vec<String>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM rooms ORDER BY joined_at, name")?;
        let rooms = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(rooms)
    }

    pub fn join_room(&self, room: &str, now_ms: u64) -> Result<(), Error> {
        self.injected_failure()?;
        self.conn.execute(
            "INSERT OR IGNORE INTO rooms (name, joined_at) VALUES (?1, ?2)",
            params![room, now_ms as i64],
        )?;
        Ok(())
    }

    pub fn leave_room(&self, room: &str) -> Result<(), Error> {
        self.injected_failure()?;
        self.conn
            .execute("DELETE FROM rooms WHERE name = ?1", params![room])?;
        Ok(())
    }

    /// Remembers `peer_id` at `addrs` (merged with what was known, newest first, bounded), and
    /// forgets the least recently seen peers beyond [`MAX_KNOWN_PEERS`].
    pub fn upsert_peer(&self, peer_id: &str, addrs: &[String], now_ms: u64) -> Result<(), Error> {
        self.upsert_peers(&[(peer_id, addrs)], now_ms)
    }

    /// [`Store::upsert_peer`] for many peers (a tracker's roster) in one transaction: one
    /// commit, and one trim to [`MAX_KNOWN_PEERS`]. A roster of 29 peers written row by row
    /// took 58 commits, and every node of a mesh writes the same roster at the same moment
    /// (BENCHMARKS §2, issue 25's sixth round).
    pub fn upsert_peers(&self, peers: &[(&str, &[String])], now_ms: u64) -> Result<(), Error> {
        if peers.is_empty() {
            return Ok(());
        }
        self.injected_failure()?;
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut read = tx.prepare_cached("SELECT addrs FROM peers WHERE peer_id = ?1")?;
            let mut write = tx.prepare_cached(
                "INSERT INTO peers (peer_id, addrs, last_seen) VALUES (?1, ?2, ?3)
                 ON CONFLICT(peer_id) DO UPDATE SET addrs = excluded.addrs,
                                                    last_seen = excluded.last_seen",
            )?;
            for (peer_id, addrs) in peers {
                let old: Option<String> =
                    read.query_row(params![peer_id], |r| r.get(0)).optional()?;
                let mut merged: Vec<&str> = Vec::new();
                for a in addrs
                    .iter()
                    .map(String::as_str)
                    .chain(old.as_deref().unwrap_or("").split('\n'))
                {
                    if !a.is_empty() && !merged.contains(&a) {
                        merged.push(a);
                    }
                }
                merged.truncate(MAX_ADDRS_PER_PEER);
                write.execute(params![peer_id, merged.join("\n"), now_ms as i64])?;
            }
            let known: i64 = tx
                .prepare_cached("SELECT count(*) FROM peers")?
                .query_row([], |r| r.get(0))?;
            if known > MAX_KNOWN_PEERS {
                tx.prepare_cached(
                    "DELETE FROM peers WHERE peer_id NOT IN
                       (SELECT peer_id FROM peers ORDER BY last_seen DESC LIMIT ?1)",
                )?
                .execute(params![MAX_KNOWN_PEERS])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Known peers, most recently seen first.
    pub fn known_peers(&self, limit: usize) -> Result<Vec<KnownPeer>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT peer_id, addrs, last_seen FROM peers ORDER BY last_seen DESC LIMIT ?1",
        )?;
        let peers = stmt
            .query_map(params![limit as i64], |r| {
                let addrs: String = r.get(1)?;
                Ok(KnownPeer {
                    peer_id: r.get(0)?,
                    addrs: addrs
                        .split('\n')
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    last_seen_ms: r.get::<_, i64>(2)? as u64,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(peers)
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM settings WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), Error> {
        self.injected_failure()?;
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Checkpoints the WAL into the main file; called on clean shutdown.
    pub fn close(mut self) -> Result<(), Error> {
        // The thread stops first, so the last checkpoint has the log to itself.
        drop(self.checkpointer.take());
        self.injected_failure()?;
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        self.conn.close().map_err(|(_, e)| Error::Sqlite(e))
    }
}

/// Reads rows of `id, room, author, nick, ts, text, synced, seq`.
fn read_messages(mut rows: rusqlite::Rows<'_>) -> Result<Vec<StoredMessage>, Error> {
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let room: String = r.get(1)?;
        let id: [u8; 32] = r
            .get::<_, Vec<u8>>(0)?
            .try_into()
            .map_err(|_| Error::BadRow(room.clone(), "id is not 32 bytes".into()))?;
        let author: [u8; 32] = r
            .get::<_, Vec<u8>>(2)?
            .try_into()
            .map_err(|_| Error::BadRow(hex::encode(id), "author is not 32 bytes".into()))?;
        out.push(StoredMessage {
            id: MessageId(id),
            room,
            author,
            nick: r.get(3)?,
            timestamp_ms: r.get::<_, i64>(4)? as u64,
            text: r.get(5)?,
            synced: r.get(6)?,
            seq: r.get::<_, i64>(7)? as u64,
            sealed: Sealed::from_code(r.get(8)?),
        });
    }
    Ok(out)
}

mod checkpoint;
mod dm;
mod files;
mod private;
mod sync;

pub use dm::{ConversationRow, DmRow, ItemRow, ProfileRow, MAX_DM_HISTORY};
pub use files::{state_code, state_of_code, FileRow, Progress as FileProgress, MAX_FILES};
pub use private::PrivateRoomRow;

/// The wall clock in Unix milliseconds (a row's `updated`).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
