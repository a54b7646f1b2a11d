//! Rooms: sending to, joining and leaving them, the nick, and the history the front-ends page
//! through. Room messages travel on the broadcast trees (`broadcast.rs`) and are checked and
//! stored in `inbound.rs`; what a node missed comes by history sync (`sync.rs`).

use std::time::Instant;

use meshchat_core::envelope::{Draft, Kind};
use meshchat_core::room::{self, Text};
use meshchat_core::{Envelope, MessageId};

use super::Actor;
use crate::node::{now_ms, Error, MessageView, Sent};
use crate::store::StoredMessage;

impl Actor {
    pub(super) fn send(&mut self, room: &str, text: String) -> Result<Sent, Error> {
        let room = room::normalize_room(room)?;
        if !self.rooms.contains(&room) {
            return Err(Error::NotInRoom(room));
        }
        let message = Text {
            nick: self.nick.clone(),
            text,
        };
        let body = message.encode()?;
        let env = Envelope::sign(
            &self.key,
            Draft {
                kind: Kind::RoomText,
                target: &room,
                timestamp_ms: now_ms(),
                nonce: rand::random(),
                body: &body,
            },
        )?;
        let id = env.id();
        // On disk before it leaves: a message the user was told is sent survives a crash (or
        // was never sent).
        let stored = StoredMessage::new(&env, message);
        self.pending.push((env.clone(), stored));
        self.try_flush()?;
        self.seen.insert(id, Instant::now());
        let relayed = self.broadcast_publish(id, env.as_bytes());
        self.stats.published += 1;
        Ok(Sent { id, relayed })
    }

    pub(super) fn join(&mut self, room: &str) -> Result<bool, Error> {
        let room = room::normalize_room(room)?;
        if self.rooms.contains(&room) {
            return Ok(false);
        }
        self.store.join_room(&room, now_ms())?;
        self.rooms.push(room);
        self.sync.rooms_changed();
        // What the mesh said in the room while we were not in it: held here already if we
        // relayed it, else fetched from the peers now.
        self.sync_all();
        Ok(true)
    }

    pub(super) fn leave(&mut self, room: &str) -> Result<bool, Error> {
        let room = room::normalize_room(room)?;
        let Some(pos) = self.rooms.iter().position(|r| *r == room) else {
            return Ok(false);
        };
        self.store.leave_room(&room)?;
        self.rooms.remove(pos);
        self.sync.rooms_changed();
        Ok(true)
    }

    /// A new nick: checked, kept for later starts, announced in our profile and to the tracker.
    pub(super) fn set_nick(&mut self, nick: String) -> Result<(), Error> {
        room::validate_nick(&nick)?;
        self.store.set_setting("nick", &nick)?;
        self.nick = nick;
        self.publish_profile();
        self.tracker_me_changed();
        Ok(())
    }

    /// A page of `room`'s history, newest first, older than `before`.
    pub(super) fn history(
        &mut self,
        room: &str,
        limit: usize,
        before: Option<(u64, MessageId)>,
    ) -> Result<Vec<MessageView>, Error> {
        // Whatever is waiting to be written belongs in the answer.
        self.flush();
        let room = room::normalize_room(room)?;
        let msgs = self.store.history(&room, limit, before)?;
        Ok(self.views(msgs))
    }

    /// Room messages stored after `after` (arrival order), for a front-end catching up.
    pub(super) fn arrived_after(
        &mut self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<MessageView>, Error> {
        self.flush();
        let msgs = self.store.arrived_after(after, limit)?;
        Ok(self.views(msgs))
    }

    fn views(&self, msgs: Vec<StoredMessage>) -> Vec<MessageView> {
        let me = self.key.public();
        msgs.into_iter()
            .map(|m| MessageView::from_stored(m, &me))
            .collect()
    }
}
