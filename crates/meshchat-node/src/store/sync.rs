//! What history sync asks of the store: the ids in the window, envelopes by id, and the bounds on
//! what a relay keeps of rooms it is not in.

use meshchat_core::MessageId;
use rusqlite::params;

use super::{Error, Store};

impl Store {
    /// `(author timestamp, id)` of the stored messages and profiles with `timestamp >=
    /// since_ms`, the newest `max` of them.
    pub fn sync_items(&self, since_ms: u64, max: usize) -> Result<Vec<(u64, MessageId)>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT ts, id FROM messages WHERE ts >= ?1
             UNION ALL SELECT ts, id FROM profiles WHERE ts >= ?1
             ORDER BY ts DESC, id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            params![since_ms.min(i64::MAX as u64) as i64, max as i64],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (ts, id) = row?;
            if let Ok(id) = <[u8; 32]>::try_from(id.as_slice()) {
                out.push((ts as u64, MessageId(id)));
            }
        }
        Ok(out)
    }

    /// The stored envelopes (messages and profiles) among `ids`, in the order asked; ids not
    /// stored are skipped.
    pub fn envelopes(&self, ids: &[MessageId]) -> Result<Vec<Vec<u8>>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT envelope FROM messages WHERE id = ?1
             UNION ALL SELECT envelope FROM profiles WHERE id = ?1 LIMIT 1",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let mut rows = stmt.query(params![&id.0[..]])?;
            if let Some(r) = rows.next()? {
                out.push(r.get(0)?);
            }
        }
        Ok(out)
    }

    /// Those of `ids` stored neither as a message nor as a profile. (A profile older than the
    /// one kept counts as missing: it is fetched, found stale and dropped, until the peer that
    /// holds it takes the newer one in its own round.)
    pub fn missing(&self, ids: &[MessageId]) -> Result<Vec<MessageId>, Error> {
        let mut profile = self
            .conn
            .prepare_cached("SELECT 1 FROM profiles WHERE id = ?1")?;
        let mut out = Vec::new();
        for id in ids {
            if !self.contains(id)? && !profile.exists(params![&id.0[..]])? {
                out.push(*id);
            }
        }
        Ok(out)
    }

    /// The rooms with messages stored that this node is not in. A skip-scan of the room index
    /// (one lookup per distinct room), so it costs nothing per message of the joined rooms.
    fn relayed_rooms(&self) -> Result<Vec<String>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "WITH RECURSIVE r(room) AS (
                SELECT MIN(room) FROM messages
                UNION ALL
                SELECT (SELECT MIN(room) FROM messages WHERE room > r.room) FROM r
                WHERE r.room IS NOT NULL
             )
             SELECT room FROM r
             WHERE room IS NOT NULL AND room NOT IN (SELECT name FROM rooms)",
        )?;
        let rooms = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(rooms)
    }

    /// Bytes of envelopes stored for rooms this node is not in.
    pub fn relayed_bytes(&self) -> Result<u64, Error> {
        let mut sum = self.conn.prepare_cached(
            "SELECT COALESCE(SUM(length(envelope)), 0) FROM messages WHERE room = ?1",
        )?;
        let mut total = 0u64;
        for room in self.relayed_rooms()? {
            total += sum.query_row(params![room], |r| r.get::<_, i64>(0))? as u64;
        }
        Ok(total)
    }

    /// Bounds what is kept of rooms this node is not in (held only to serve sync): drops those
    /// older than `window_start_ms` (but not the operations of invite rooms, which a member
    /// needs from the first to know the membership), then the oldest until at most `budget`
    /// bytes remain. Joined
    /// rooms keep their whole history. Returns how many were dropped.
    ///
    /// `relayed` is the caller's running count of relayed bytes (kept up to date as it stores
    /// messages): `None` makes this read the table once to learn it; it is updated here. Every
    /// query goes room by room through the `(room, ts, id)` index, so the cost follows what is
    /// relayed, never the joined rooms' history: reading old rows through the time index and
    /// skipping the joined ones took 1.5 s on a node with 100 000 messages older than the window
    /// in a joined room, every time it pruned, with the actor (and so relaying) stopped
    /// meanwhile.
    pub fn prune_relayed(
        &mut self,
        window_start_ms: u64,
        budget: u64,
        relayed: &mut Option<u64>,
    ) -> Result<u64, Error> {
        self.injected_failure()?;
        let window = window_start_ms.min(i64::MAX as u64) as i64;
        let rooms = self.relayed_rooms()?;
        let (mut old, mut dropped) = (0u64, 0u64);
        {
            let mut sum = self.conn.prepare_cached(
                "SELECT COALESCE(SUM(length(envelope)), 0) FROM messages
                 WHERE room = ?1 AND ts < ?2 AND sealed != 3",
            )?;
            let mut delete = self.conn.prepare_cached(
                "DELETE FROM messages WHERE room = ?1 AND ts < ?2 AND sealed != 3",
            )?;
            for room in &rooms {
                old += sum.query_row(params![room, window], |r| r.get::<_, i64>(0))? as u64;
                dropped += delete.execute(params![room, window])? as u64;
            }
        }
        let mut total = match *relayed {
            Some(b) => b.saturating_sub(old),
            None => self.relayed_bytes()?,
        };
        if total > budget && !rooms.is_empty() {
            // Oldest first across the relayed rooms, a page at a time: sizes are read, not
            // guessed.
            let list = vec!["?"; rooms.len()].join(", ");
            let page = format!(
                "SELECT id, length(envelope) FROM messages WHERE room IN ({list})
                 ORDER BY ts, id LIMIT 256"
            );
            while total > budget {
                let victims: Vec<(Vec<u8>, i64)> = {
                    let mut stmt = self.conn.prepare(&page)?;
                    let rows = stmt.query_map(rusqlite::params_from_iter(&rooms), |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                    rows.collect::<Result<_, _>>()?
                };
                if victims.is_empty() {
                    total = 0;
                    break;
                }
                let tx = self.conn.transaction()?;
                {
                    let mut del = tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?;
                    for (id, len) in victims {
                        if total <= budget {
                            break;
                        }
                        del.execute(params![id])?;
                        dropped += 1;
                        total = total.saturating_sub(len as u64);
                    }
                }
                tx.commit()?;
            }
        }
        *relayed = Some(total);
        Ok(dropped)
    }
}
