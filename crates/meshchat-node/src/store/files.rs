//! What file transfer keeps (issue 20): one row per offer this node saw or made, with what
//! became of it. Our own offers keep their source path and manifest, so they are served again
//! after a restart without hashing the file again; a download keeps its manifest and the
//! bitmap of verified chunks, so it resumes where it stopped.

use meshchat_core::MessageId;
use rusqlite::{params, OptionalExtension};

use super::{Error, Store};

/// Most offers remembered; beyond it the oldest that are neither ours nor under way are
/// forgotten (their files, if fetched, stay where they are).
pub const MAX_FILES: i64 = 10_000;

pub(super) const SCHEMA_V4: &str = "
    CREATE TABLE files (
        id BLOB PRIMARY KEY NOT NULL,
        root BLOB NOT NULL,
        author BLOB NOT NULL,
        nick TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        chunk_size INTEGER NOT NULL,
        room TEXT,
        peer BLOB,
        ts INTEGER NOT NULL,
        own INTEGER NOT NULL,
        key BLOB,
        state INTEGER NOT NULL,
        path TEXT,
        reason TEXT,
        have BLOB,
        manifest BLOB,
        updated INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX files_root ON files (root);
    CREATE INDEX files_updated ON files (updated);
";

/// An offer as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct FileRow {
    /// The offer envelope's id.
    pub id: MessageId,
    pub root: [u8; 32],
    pub author: [u8; 32],
    pub nick: String,
    pub name: String,
    pub size: u64,
    pub chunk_size: u32,
    /// The room it was offered in.
    pub room: Option<String>,
    /// The other end of a DM offer (the recipient of ours, the author of theirs).
    pub peer: Option<[u8; 32]>,
    pub timestamp_ms: u64,
    pub own: bool,
    /// A DM offer's piece key (the database also holds the DMs' plaintext).
    pub key: Option<[u8; 32]>,
    /// [`meshchat_api::FileState`] as a code ([`state_code`]).
    pub state: u8,
    pub path: Option<String>,
    pub reason: Option<String>,
}

impl std::fmt::Debug for FileRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("size", &self.size)
            .field("state", &self.state)
            .field("key", &self.key.map(|_| "…"))
            .finish_non_exhaustive()
    }
}

/// What a download has stored of its progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The manifest, once it arrived (or ours, for our offers).
    pub manifest: Option<Vec<u8>>,
    /// The verified chunks' bitmap (see `set_file_have`).
    pub have: Option<Vec<u8>>,
}

/// The stored code of a file's state.
pub fn state_code(s: meshchat_api::FileState) -> u8 {
    use meshchat_api::FileState as S;
    match s {
        S::Offered => 0,
        S::Downloading => 1,
        S::Done => 2,
        S::Failed => 3,
        S::Cancelled => 4,
        S::Serving => 5,
    }
}

pub fn state_of_code(c: u8) -> meshchat_api::FileState {
    use meshchat_api::FileState as S;
    match c {
        1 => S::Downloading,
        2 => S::Done,
        3 => S::Failed,
        4 => S::Cancelled,
        5 => S::Serving,
        _ => S::Offered,
    }
}

fn opt32(v: Option<Vec<u8>>) -> Option<[u8; 32]> {
    v.and_then(|v| v.try_into().ok())
}

const COLUMNS: &str =
    "id, root, author, nick, name, size, chunk_size, room, peer, ts, own, key, state, path, reason";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileRow> {
    let id: Vec<u8> = r.get(0)?;
    let root: Vec<u8> = r.get(1)?;
    let author: Vec<u8> = r.get(2)?;
    let bad = |i| {
        rusqlite::Error::InvalidColumnType(i, "not 32 bytes".into(), rusqlite::types::Type::Blob)
    };
    Ok(FileRow {
        id: MessageId(id.try_into().map_err(|_| bad(0))?),
        root: root.try_into().map_err(|_| bad(1))?,
        author: author.try_into().map_err(|_| bad(2))?,
        nick: r.get(3)?,
        name: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
        chunk_size: r.get::<_, i64>(6)? as u32,
        room: r.get(7)?,
        peer: opt32(r.get(8)?),
        timestamp_ms: r.get::<_, i64>(9)? as u64,
        own: r.get(10)?,
        key: opt32(r.get(11)?),
        state: r.get::<_, i64>(12)? as u8,
        path: r.get(13)?,
        reason: r.get(14)?,
    })
}

impl Store {
    /// Stores a new offer; false if it was known already (nothing changes then).
    pub fn insert_file(&self, f: &FileRow, manifest: Option<&[u8]>) -> Result<bool, Error> {
        self.injected_failure()?;
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO files (id, root, author, nick, name, size, chunk_size, room,
                peer, ts, own, key, state, path, reason, have, manifest, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, NULL, ?16,
                ?17)",
            params![
                &f.id.0[..],
                &f.root[..],
                &f.author[..],
                f.nick,
                f.name,
                f.size as i64,
                i64::from(f.chunk_size),
                f.room,
                f.peer.as_ref().map(|p| &p[..]),
                f.timestamp_ms.min(i64::MAX as u64) as i64,
                f.own,
                f.key.as_ref().map(|k| &k[..]),
                i64::from(f.state),
                f.path,
                f.reason,
                manifest,
                super::now_ms() as i64,
            ],
        )?;
        if n == 1 {
            self.prune_files()?;
        }
        Ok(n == 1)
    }

    /// Forgets the oldest offers beyond [`MAX_FILES`] that are not ours and not under way.
    fn prune_files(&self) -> Result<(), Error> {
        self.conn.execute(
            "DELETE FROM files WHERE id IN (
                SELECT id FROM files WHERE own = 0 AND state != 1
                ORDER BY updated LIMIT max(0, (SELECT count(*) FROM files) - ?1))",
            params![MAX_FILES],
        )?;
        Ok(())
    }

    pub fn file(&self, id: &MessageId) -> Result<Option<FileRow>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM files WHERE id = ?1");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(params![&id.0[..]], row)
            .optional()?)
    }

    /// The newest `limit` offers, newest first.
    pub fn files(&self, limit: usize) -> Result<Vec<FileRow>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM files ORDER BY ts DESC, id LIMIT ?1");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![limit as i64], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Offers in `state` (at start: the downloads to resume, the files to serve).
    pub fn files_in_state(&self, state: u8) -> Result<Vec<FileRow>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM files WHERE state = ?1 ORDER BY ts");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![i64::from(state)], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A file's new state, with its path and reason.
    pub fn set_file_state(
        &self,
        id: &MessageId,
        state: u8,
        path: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        self.injected_failure()?;
        self.conn.execute(
            "UPDATE files SET state = ?2, path = coalesce(?3, path), reason = ?4, updated = ?5
             WHERE id = ?1",
            params![
                &id.0[..],
                i64::from(state),
                path,
                reason,
                super::now_ms() as i64
            ],
        )?;
        Ok(())
    }

    /// A download's verified chunks (one bit each, chunk 0 in the lowest bit of byte 0).
    pub fn set_file_have(&self, id: &MessageId, have: &[u8]) -> Result<(), Error> {
        self.injected_failure()?;
        self.conn.execute(
            "UPDATE files SET have = ?2, updated = ?3 WHERE id = ?1",
            params![&id.0[..], have, super::now_ms() as i64],
        )?;
        Ok(())
    }

    pub fn set_file_manifest(&self, id: &MessageId, manifest: &[u8]) -> Result<(), Error> {
        self.injected_failure()?;
        self.conn.execute(
            "UPDATE files SET manifest = ?2 WHERE id = ?1",
            params![&id.0[..], manifest],
        )?;
        Ok(())
    }

    /// A file's manifest and verified-chunk bitmap, as far as they are known.
    pub fn file_progress(&self, id: &MessageId) -> Result<Progress, Error> {
        Ok(self
            .conn
            .prepare_cached("SELECT manifest, have FROM files WHERE id = ?1")?
            .query_row(params![&id.0[..]], |r| {
                Ok(Progress {
                    manifest: r.get(0)?,
                    have: r.get(1)?,
                })
            })
            .optional()?
            .unwrap_or_default())
    }

    /// A file whose content is `root`, complete on this node: our own offer or a finished
    /// download, with its path and manifest.
    pub fn file_source(&self, root: &[u8; 32]) -> Result<Option<(FileRow, Vec<u8>)>, Error> {
        let sql = format!(
            "SELECT {COLUMNS}, manifest FROM files WHERE root = ?1 AND state IN (2, 5)
             AND manifest IS NOT NULL AND path IS NOT NULL ORDER BY own DESC LIMIT 1"
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(params![&root[..]], |r| {
                Ok((row(r)?, r.get::<_, Vec<u8>>(15)?))
            })
            .optional()?)
    }
}
