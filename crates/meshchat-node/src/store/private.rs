//! Private rooms in the store (issue 22): the rooms this node is in with their secrets, and
//! the sealed rows of their messages. The envelopes live in `messages` like every room's (so
//! sync serves them and relays keep them), with the `sealed` column saying what they are here.

use meshchat_core::MessageId;
use rusqlite::params;

use super::{Error, Sealed, Store};

/// Schema version 5: the private rooms, and what each stored row is to this node.
pub(super) const SCHEMA_V5: &str = "
    ALTER TABLE messages ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE private_rooms (
        id TEXT PRIMARY KEY NOT NULL,
        kind INTEGER NOT NULL,
        name TEXT NOT NULL,
        secret BLOB NOT NULL,
        joined_at INTEGER NOT NULL
    );";

/// A private room this node is in.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateRoomRow {
    /// The room id as its envelopes' target (32 hex digits).
    pub id: String,
    /// 1: a passphrase room; 2: an invite room.
    pub kind: u8,
    /// Its name here.
    pub name: String,
    /// The passphrase room's secret, or the invite room's roster key.
    pub secret: [u8; 32],
}

impl std::fmt::Debug for PrivateRoomRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateRoomRow")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The private rooms this node is in, in the order joined.
    pub fn private_rooms(&self) -> Result<Vec<PrivateRoomRow>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, kind, name, secret FROM private_rooms ORDER BY joined_at, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, name, secret) = row?;
            let secret: [u8; 32] = secret
                .try_into()
                .map_err(|_| Error::BadRow(id.clone(), "room secret is not 32 bytes".into()))?;
            out.push(PrivateRoomRow {
                id,
                kind: kind as u8,
                name,
                secret,
            });
        }
        Ok(out)
    }

    /// Remembers a private room (and joins it, so its history is kept and shown).
    pub fn add_private_room(&mut self, room: &PrivateRoomRow, now_ms: u64) -> Result<(), Error> {
        self.injected_failure()?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO private_rooms (id, kind, name, secret, joined_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                room.id,
                room.kind,
                room.name,
                &room.secret[..],
                now_ms as i64
            ],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO rooms (name, joined_at) VALUES (?1, ?2)",
            params![room.id, now_ms as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets a private room's secret and leaves it. What was read stays in the history.
    pub fn remove_private_room(&mut self, id: &str) -> Result<(), Error> {
        self.injected_failure()?;
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM private_rooms WHERE id = ?1", params![id])?;
        tx.execute("DELETE FROM rooms WHERE name = ?1", params![id])?;
        tx.commit()?;
        Ok(())
    }

    /// The envelopes of `room` stored as `sealed`, oldest first (at most `limit`).
    pub fn sealed_envelopes(
        &self,
        room: &str,
        sealed: Sealed,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT envelope FROM messages WHERE room = ?1 AND sealed = ?2
             ORDER BY ts, id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![room, sealed as i64, limit as i64], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A private message this node could not read before and can now: its nick and text, and a
    /// new arrival number (it is shown now). `None` if it was not stored unread.
    pub fn mark_read(
        &mut self,
        id: &MessageId,
        nick: &str,
        text: &str,
    ) -> Result<Option<u64>, Error> {
        self.injected_failure()?;
        let seq = self.next_seq;
        let n = self.conn.execute(
            "UPDATE messages SET nick = ?2, text = ?3, sealed = 2, seq = ?4
             WHERE id = ?1 AND sealed = 1",
            params![&id.0[..], nick, text, seq as i64],
        )?;
        if n == 0 {
            return Ok(None);
        }
        self.next_seq += 1;
        Ok(Some(seq))
    }
}
