//! What direct messages keep: profiles (the newest per author, also served by history sync),
//! the conversations (plaintext, on the two ends only) and the outbox's items (sealed frames:
//! the only thing a relay stores).

use meshchat_core::MessageId;
use rusqlite::{params, OptionalExtension};

use super::{Error, Store};

/// Most DMs one history query returns.
pub const MAX_DM_HISTORY: usize = 10_000;

pub(super) const SCHEMA_V3: &str = "
    CREATE TABLE profiles (
        author BLOB PRIMARY KEY NOT NULL,
        version INTEGER NOT NULL,
        nick TEXT NOT NULL,
        seal_key BLOB NOT NULL,
        id BLOB NOT NULL,
        ts INTEGER NOT NULL,
        envelope BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX profiles_id ON profiles (id);
    CREATE INDEX profiles_ts ON profiles (ts, id);
    CREATE TABLE dms (
        id BLOB PRIMARY KEY NOT NULL,
        dm_id BLOB,
        peer BLOB NOT NULL,
        author BLOB NOT NULL,
        recipient BLOB NOT NULL,
        nick TEXT NOT NULL,
        ts INTEGER NOT NULL,
        text TEXT NOT NULL,
        own INTEGER NOT NULL,
        state INTEGER,
        seq INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX dms_peer_ts ON dms (peer, ts, id);
    CREATE INDEX dms_dm_id ON dms (dm_id);
    CREATE INDEX dms_seq ON dms (seq);
    CREATE TABLE dm_items (
        role INTEGER NOT NULL,
        id BLOB NOT NULL,
        frame BLOB NOT NULL,
        from_peer BLOB,
        attempts INTEGER NOT NULL,
        hold_until INTEGER NOT NULL,
        PRIMARY KEY (role, id)
    ) WITHOUT ROWID;
";

/// A stored profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRow {
    pub author: [u8; 32],
    pub version: u64,
    pub nick: String,
    pub seal_key: [u8; 32],
    /// The id and timestamp of its envelope (history sync serves it like a message).
    pub id: MessageId,
    pub timestamp_ms: u64,
}

/// A stored DM (ours or to us).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmRow {
    /// The sender's envelope id.
    pub id: MessageId,
    /// The sealed DM's id (our own DMs; their states are reported by it).
    pub dm_id: Option<[u8; 32]>,
    /// The other person.
    pub peer: [u8; 32],
    pub author: [u8; 32],
    pub recipient: [u8; 32],
    pub nick: String,
    pub timestamp_ms: u64,
    pub text: String,
    pub own: bool,
    /// Our own DMs: the state code (see `DmState`).
    pub state: Option<i64>,
    pub seq: u64,
}

/// One conversation: the other person, the newest timestamp, the count, their last nick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    pub peer: [u8; 32],
    pub last_ms: u64,
    pub count: u64,
    pub nick: String,
}

/// An outbox item as stored: the role code, the DM id, the encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub role: u8,
    pub id: [u8; 32],
    pub frame: Vec<u8>,
    pub from: Option<[u8; 32]>,
    pub attempts: u32,
    pub hold_until_ms: u64,
}

fn key32(v: Vec<u8>, what: &str) -> Result<[u8; 32], Error> {
    v.try_into()
        .map_err(|_| Error::BadRow(what.into(), "not 32 bytes".into()))
}

impl Store {
    /// Stores `author`'s profile envelope, replacing an older version. False if a version as new
    /// was stored already.
    pub fn put_profile(&self, p: &ProfileRow, envelope: &[u8]) -> Result<bool, Error> {
        self.injected_failure()?;
        let n = self.conn.execute(
            "INSERT INTO profiles (author, version, nick, seal_key, id, ts, envelope)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(author) DO UPDATE SET version = excluded.version,
                nick = excluded.nick, seal_key = excluded.seal_key, id = excluded.id,
                ts = excluded.ts, envelope = excluded.envelope
             WHERE excluded.version > profiles.version",
            params![
                &p.author[..],
                p.version.min(i64::MAX as u64) as i64,
                p.nick,
                &p.seal_key[..],
                &p.id.0[..],
                p.timestamp_ms.min(i64::MAX as u64) as i64,
                envelope,
            ],
        )?;
        Ok(n == 1)
    }

    /// Every stored profile (at start, to fill the directory), at most `limit`, newest first.
    pub fn profiles(&self, limit: usize) -> Result<Vec<(ProfileRow, Vec<u8>)>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT author, version, nick, seal_key, id, ts, envelope FROM profiles
             ORDER BY ts DESC LIMIT ?1",
        )?;
        let mut rows = stmt.query(params![limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push((
                ProfileRow {
                    author: key32(r.get(0)?, "profile author")?,
                    version: r.get::<_, i64>(1)? as u64,
                    nick: r.get(2)?,
                    seal_key: key32(r.get(3)?, "profile key")?,
                    id: MessageId(key32(r.get(4)?, "profile id")?),
                    timestamp_ms: r.get::<_, i64>(5)? as u64,
                },
                r.get(6)?,
            ));
        }
        Ok(out)
    }

    /// Stores a DM; its arrival number if it was new, `None` if that envelope id was stored
    /// already (so it is shown at most once, across restarts too).
    pub fn insert_dm(&mut self, dm: &DmRow) -> Result<Option<u64>, Error> {
        self.injected_failure()?;
        let seq: i64 =
            self.conn
                .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM dms", [], |r| {
                    r.get(0)
                })?;
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO dms
                (id, dm_id, peer, author, recipient, nick, ts, text, own, state, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                &dm.id.0[..],
                dm.dm_id.as_ref().map(|d| &d[..]),
                &dm.peer[..],
                &dm.author[..],
                &dm.recipient[..],
                dm.nick,
                dm.timestamp_ms.min(i64::MAX as u64) as i64,
                dm.text,
                dm.own,
                dm.state,
                seq,
            ],
        )?;
        Ok((n == 1).then_some(seq as u64))
    }

    /// Sets the state of our DM sealed as `dm_id`; the envelope id and recipient if one was
    /// changed (a state already recorded is not reported again).
    pub fn set_dm_state(
        &self,
        dm_id: &[u8; 32],
        state: i64,
    ) -> Result<Option<(MessageId, [u8; 32])>, Error> {
        self.injected_failure()?;
        let row: Option<(Vec<u8>, Vec<u8>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT id, recipient, state FROM dms WHERE dm_id = ?1 AND own = 1",
                params![&dm_id[..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((id, recipient, old)) = row else {
            return Ok(None);
        };
        // Delivered is final: a late retry's "sent" does not undo it.
        if old == Some(state) || old == Some(2) {
            return Ok(None);
        }
        self.conn.execute(
            "UPDATE dms SET state = ?2 WHERE dm_id = ?1 AND own = 1",
            params![&dm_id[..], state],
        )?;
        Ok(Some((
            MessageId(key32(id, "dm id")?),
            key32(recipient, "dm recipient")?,
        )))
    }

    /// The state code of our DM `id`, if it is stored.
    pub fn dm_state(&self, id: &MessageId) -> Result<Option<i64>, Error> {
        Ok(self
            .conn
            .query_row(
                "SELECT state FROM dms WHERE id = ?1 AND own = 1",
                params![&id.0[..]],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten())
    }

    /// The last `limit` DMs with `peer` before `before` (exclusive), oldest first.
    pub fn dm_history(
        &self,
        peer: &[u8; 32],
        limit: usize,
        before: Option<(u64, MessageId)>,
    ) -> Result<Vec<DmRow>, Error> {
        let limit = limit.min(MAX_DM_HISTORY) as i64;
        let (ts, id) = match before {
            Some((ts, id)) => (ts.min(i64::MAX as u64) as i64, id.0.to_vec()),
            None => (i64::MAX, vec![0xff; 33]),
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, dm_id, peer, author, recipient, nick, ts, text, own, state, seq FROM dms
             WHERE peer = ?1 AND (ts < ?2 OR (ts = ?2 AND id < ?3))
             ORDER BY ts DESC, id DESC LIMIT ?4",
        )?;
        let mut rows = stmt.query(params![&peer[..], ts, id, limit])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(DmRow {
                id: MessageId(key32(r.get(0)?, "dm id")?),
                dm_id: r
                    .get::<_, Option<Vec<u8>>>(1)?
                    .map(|v| key32(v, "sealed dm id"))
                    .transpose()?,
                peer: key32(r.get(2)?, "dm peer")?,
                author: key32(r.get(3)?, "dm author")?,
                recipient: key32(r.get(4)?, "dm recipient")?,
                nick: r.get(5)?,
                timestamp_ms: r.get::<_, i64>(6)? as u64,
                text: r.get(7)?,
                own: r.get(8)?,
                state: r.get(9)?,
                seq: r.get::<_, i64>(10)? as u64,
            });
        }
        out.reverse();
        Ok(out)
    }

    /// Every conversation: the other person, the newest timestamp and the count, newest first.
    pub fn conversations(&self) -> Result<Vec<ConversationRow>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT peer, MAX(ts), COUNT(*),
                    (SELECT nick FROM dms d2 WHERE d2.peer = dms.peer AND d2.own = 0
                     ORDER BY ts DESC LIMIT 1)
             FROM dms GROUP BY peer ORDER BY MAX(ts) DESC LIMIT 1000",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(ConversationRow {
                peer: key32(r.get(0)?, "dm peer")?,
                last_ms: r.get::<_, i64>(1)? as u64,
                count: r.get::<_, i64>(2)? as u64,
                nick: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Stores (or overwrites) an outbox item.
    pub fn put_item(&self, item: &ItemRow) -> Result<(), Error> {
        self.injected_failure()?;
        self.conn.execute(
            "INSERT INTO dm_items (role, id, frame, from_peer, attempts, hold_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(role, id) DO UPDATE SET frame = excluded.frame,
                from_peer = excluded.from_peer, attempts = excluded.attempts,
                hold_until = excluded.hold_until",
            params![
                item.role,
                &item.id[..],
                item.frame,
                item.from.as_ref().map(|f| &f[..]),
                item.attempts,
                item.hold_until_ms.min(i64::MAX as u64) as i64,
            ],
        )?;
        Ok(())
    }

    pub fn remove_item(&self, role: u8, id: &[u8; 32]) -> Result<(), Error> {
        self.injected_failure()?;
        self.conn.execute(
            "DELETE FROM dm_items WHERE role = ?1 AND id = ?2",
            params![role, &id[..]],
        )?;
        Ok(())
    }

    /// Every stored outbox item (bounded by the outbox's own limits when they were written).
    pub fn items(&self) -> Result<Vec<ItemRow>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT role, id, frame, from_peer, attempts, hold_until FROM dm_items",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(ItemRow {
                role: r.get(0)?,
                id: key32(r.get(1)?, "item id")?,
                frame: r.get(2)?,
                from: r
                    .get::<_, Option<Vec<u8>>>(3)?
                    .map(|v| key32(v, "item from"))
                    .transpose()?,
                attempts: r.get(4)?,
                hold_until_ms: r.get::<_, i64>(5)? as u64,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(author: u8, version: u64, nick: &str) -> ProfileRow {
        ProfileRow {
            author: [author; 32],
            version,
            nick: nick.into(),
            seal_key: [9; 32],
            id: MessageId([author ^ version as u8; 32]),
            timestamp_ms: version,
        }
    }

    #[test]
    fn the_newest_profile_per_author_is_kept() {
        let s = Store::open_in_memory().unwrap();
        assert!(s.put_profile(&profile(1, 5, "bob"), b"v5").unwrap());
        assert!(!s.put_profile(&profile(1, 4, "old"), b"v4").unwrap());
        assert!(!s.put_profile(&profile(1, 5, "same"), b"v5b").unwrap());
        assert!(s.put_profile(&profile(1, 6, "robert"), b"v6").unwrap());
        let all = s.profiles(10).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0.nick, "robert");
        assert_eq!(all[0].1, b"v6");
    }

    fn dm(id: u8, peer: u8, ts: u64, own: bool) -> DmRow {
        DmRow {
            id: MessageId([id; 32]),
            dm_id: own.then_some([id ^ 0x80; 32]),
            peer: [peer; 32],
            author: if own { [0; 32] } else { [peer; 32] },
            recipient: if own { [peer; 32] } else { [0; 32] },
            nick: format!("n{peer}"),
            timestamp_ms: ts,
            text: format!("t{id}"),
            own,
            state: own.then_some(0),
            seq: 0,
        }
    }

    #[test]
    fn dms_are_stored_once_and_their_state_moves_forward_only() {
        let mut s = Store::open_in_memory().unwrap();
        assert_eq!(s.insert_dm(&dm(1, 7, 10, true)).unwrap(), Some(1));
        assert_eq!(s.insert_dm(&dm(2, 7, 20, false)).unwrap(), Some(2));
        assert_eq!(s.insert_dm(&dm(2, 7, 20, false)).unwrap(), None);
        assert_eq!(s.insert_dm(&dm(3, 8, 5, false)).unwrap(), Some(3));
        let h = s.dm_history(&[7; 32], 10, None).unwrap();
        assert_eq!(h.iter().map(|d| d.id.0[0]).collect::<Vec<_>>(), [1, 2]);
        let older = s
            .dm_history(&[7; 32], 10, Some((20, MessageId([2; 32]))))
            .unwrap();
        assert_eq!(older.len(), 1);
        assert_eq!(
            s.set_dm_state(&[0x81; 32], 1).unwrap(),
            Some((MessageId([1; 32]), [7; 32]))
        );
        assert_eq!(s.set_dm_state(&[0x81; 32], 1).unwrap(), None);
        assert!(s.set_dm_state(&[0x81; 32], 2).unwrap().is_some());
        assert_eq!(
            s.set_dm_state(&[0x81; 32], 1).unwrap(),
            None,
            "delivered is final"
        );
        assert_eq!(s.set_dm_state(&[0x99; 32], 1).unwrap(), None);
        let c = s.conversations().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].peer, c[0].count, c[0].nick.as_str()),
            ([7; 32], 2, "n7")
        );
    }

    #[test]
    fn outbox_items_round_trip() {
        let s = Store::open_in_memory().unwrap();
        let item = ItemRow {
            role: 1,
            id: [3; 32],
            frame: vec![3, 0, 1],
            from: Some([4; 32]),
            attempts: 2,
            hold_until_ms: 99,
        };
        s.put_item(&item).unwrap();
        s.put_item(&ItemRow {
            attempts: 3,
            ..item.clone()
        })
        .unwrap();
        assert_eq!(s.items().unwrap()[0].attempts, 3);
        s.remove_item(1, &[3; 32]).unwrap();
        assert!(s.items().unwrap().is_empty());
    }
}
