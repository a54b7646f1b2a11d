//! Rooms: sending to, joining and leaving them, the nick, and the history the front-ends page
//! through. Room messages travel on the broadcast trees (`broadcast.rs`) and are checked and
//! stored by the one way in (`inbound.rs`); what a node missed comes by history sync
//! (`sync.rs`). Rooms own no state of their own: the joined rooms and the nick are the node's
//! (`context::Io`), read by the others too.

use meshchat_core::envelope::{Draft, Kind};
use meshchat_core::room::{self, Text};
use meshchat_core::transfer::wire::Offer;
use meshchat_core::{Envelope, Keypair, MessageId};

use super::context::{Ctx, Note};
use crate::node::{now_ms, Error, MessageView};
use crate::store::{Store, StoredMessage};
use crate::Config;

/// The nick (given, saved, or made from the key) and the joined rooms (the default room at the
/// first start).
pub(super) fn load(
    store: &mut Store,
    config: &Config,
    key: &Keypair,
) -> Result<(String, Vec<String>), Error> {
    let nick = match &config.nick {
        Some(n) => {
            room::validate_nick(n)?;
            store.set_setting("nick", n)?;
            n.clone()
        }
        None => match store.setting("nick")? {
            Some(n) => n,
            None => format!("anon-{}", key.public().fingerprint().short()),
        },
    };
    if store.setting("rooms_initialized")?.is_none() {
        store.join_room(room::DEFAULT_ROOM, now_ms())?;
        store.set_setting("rooms_initialized", "1")?;
    }
    Ok((nick, store.joined_rooms()?))
}

/// Signs and stores a message to `room`; the loop publishes the envelope it returns.
pub(super) fn send(room: &str, text: String, ctx: &mut Ctx<'_>) -> Result<Envelope, Error> {
    let message = Text {
        nick: ctx.io.nick.clone(),
        text,
    };
    let body = message.encode()?;
    sign_and_store(room, Kind::RoomText, &body, message, ctx)
}

/// A file offer in a joined room: signed, stored and shown like a text (the caller
/// publishes it).
pub(super) fn send_offer(room: &str, offer: &Offer, ctx: &mut Ctx<'_>) -> Result<Envelope, Error> {
    let body = offer
        .encode()
        .map_err(|e| Error::File(format!("cannot offer it: {e}")))?;
    sign_and_store(room, Kind::File, &body, offer.as_text(), ctx)
}

fn sign_and_store(
    room: &str,
    kind: Kind,
    body: &[u8],
    shown: Text,
    ctx: &mut Ctx<'_>,
) -> Result<Envelope, Error> {
    let room = room::normalize_room(room)?;
    if !ctx.io.rooms.contains(&room) {
        return Err(Error::NotInRoom(room));
    }
    let env = Envelope::sign(
        &ctx.io.key,
        Draft {
            kind,
            target: &room,
            timestamp_ms: now_ms(),
            nonce: rand::random(),
            body,
        },
    )?;
    let stored = StoredMessage::new(&env, shown);
    ctx.inbound
        .store_own(ctx.io, ctx.notes, env.clone(), stored)?;
    ctx.io.stats.published += 1;
    Ok(env)
}

pub(super) fn join(room: &str, ctx: &mut Ctx<'_>) -> Result<bool, Error> {
    let room = room::normalize_room(room)?;
    if ctx.io.rooms.contains(&room) {
        return Ok(false);
    }
    if ctx.io.private.values().any(|(n, _)| *n == room) {
        return Err(Error::Private(format!(
            "#{room} is a private room here; leave it before joining the public one"
        )));
    }
    ctx.io.store.join_room(&room, now_ms())?;
    ctx.io.rooms.push(room);
    ctx.notes.push(Note::RoomsChanged);
    // What the mesh said in the room while we were not in it: held here already if we
    // relayed it, else fetched from the peers now.
    ctx.notes.push(Note::SyncAll);
    Ok(true)
}

pub(super) fn leave(room: &str, ctx: &mut Ctx<'_>) -> Result<bool, Error> {
    let room = room::normalize_room(room)?;
    let Some(pos) = ctx.io.rooms.iter().position(|r| *r == room) else {
        return Ok(false);
    };
    ctx.io.store.leave_room(&room)?;
    ctx.io.rooms.remove(pos);
    ctx.notes.push(Note::RoomsChanged);
    Ok(true)
}

/// A new nick: checked, kept for later starts, announced in our profile and to the tracker.
pub(super) fn set_nick(nick: String, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    room::validate_nick(&nick)?;
    ctx.io.store.set_setting("nick", &nick)?;
    ctx.io.nick = nick;
    ctx.notes.push(Note::PublishProfile);
    ctx.notes.push(Note::MeChanged);
    Ok(())
}

/// A page of `room`'s history, newest first, older than `before`.
pub(super) fn history(
    room: &str,
    limit: usize,
    before: Option<(u64, MessageId)>,
    ctx: &mut Ctx<'_>,
) -> Result<Vec<MessageView>, Error> {
    // Whatever is waiting to be written belongs in the answer.
    ctx.flush();
    let room = ctx.io.target_of(room)?;
    let msgs = ctx.io.store.history(&room, limit, before)?;
    Ok(views(msgs, ctx))
}

/// Room messages stored after `after` (arrival order), for a front-end catching up.
pub(super) fn arrived_after(
    after: u64,
    limit: usize,
    ctx: &mut Ctx<'_>,
) -> Result<Vec<MessageView>, Error> {
    ctx.flush();
    let msgs = ctx.io.store.arrived_after(after, limit)?;
    Ok(views(msgs, ctx))
}

fn views(msgs: Vec<StoredMessage>, ctx: &Ctx<'_>) -> Vec<MessageView> {
    msgs.into_iter().map(|m| ctx.io.view(m)).collect()
}
