//! Private rooms (issue 22; the bytes and the rules are `docs/PROTOCOL.md` §10): rooms only
//! their members read, carried, stored and synced by every node like any room.
//!
//! - [`PassphraseRoom`]: everyone with the name and the passphrase reads and writes; the room id
//!   and key come from Argon2id, messages are sealed with XChaCha20-Poly1305.
//! - [`Group`]: an invite room: a DAG of signed operations (create, add, remove, rekey) sealed
//!   under the roster key, each making a new epoch key sealed (HPKE) to every member of the
//!   membership it results in. The membership is a deterministic function of the set of valid
//!   operations (remove wins over a concurrent add), so members that hold the same operations
//!   agree, in whatever order they came and across partitions.
//! - [`Invite`]: the body of the DM (kind 8) that hands a new member the room id, the roster key
//!   and the name.
//!
//! Pure like the rest of the core: time (`now_ms`) and randomness come in as arguments.
//!
//! # Layout
//!
//! - `wire`: the bytes of §10 and the primitives they are sealed with (nothing composed
//!   beyond what §10 writes down).
//! - `group`: the operations DAG behind [`Group`]: validity, the membership function, the
//!   waiting list, the epoch keys we were given, and making operations.
//! - `sim` (tests): a seeded simulator of one room across a mesh that splits, heals and loses
//!   nodes, checking who reads what against what each author saw.
//!
//! # Where §10 leaves a choice, what this code does
//!
//! - **Shares in format-2 parts** are sealed with the same HPKE `info` as the operation's own:
//!   its `nonce` is the format-1 body's, since the epoch key belongs to the operation.
//! - **An operation with parts waits for all of them** (like a missing parent) before it is
//!   checked, so "the shares name exactly the members" is one check over the operation and its
//!   parts, and its validity never depends on what arrived first. A part is matched to its
//!   operation by id, number and author; one by another author, or numbered past the
//!   operation's `parts`, is refused (`bad_operation`).
//! - **Admin flags**: a key is an admin if any of its surviving adds says so (§10). An add
//!   with `admin = 0` therefore cannot demote; [`Group::add`] demotes with a remove followed by
//!   an add (two operations). Nick and seal key come from the latest surviving add by
//!   `(timestamp_ms, id)`; our own adds carry a timestamp past the member's earlier adds, so the
//!   new one is the latest.
//! - **"Current"** compares whole membership entries (key, seal key, nick, admin), not only keys:
//!   a concurrent change of someone's seal key also makes the heads stale, and a rekey follows.
//! - **More than 16 heads**: an operation names at most 16 parents, so we first sign rekeys
//!   over 16 heads at a time until at most 16 are left.
//! - **Expired waiting operations are forgotten**, not remembered as refused: offered again
//!   once their parents are here, they are valid (every member then agrees). Operations refused
//!   for a rule are remembered (up to [`MAX_OPS`] of them), and their descendants refused at once
//!   (`unknown_parents`).
//! - **Leaving**: the leaver's own remove is sealed to the others only, and the leaver does not
//!   keep the epoch key it drew for it.
//! - Structure the prose implies, refused: a create with parents or another operation without
//!   (`bad_operation`), repeated parents (`malformed`), removing a non-member (`bad_operation`),
//!   a rekey by a non-member (`not_member`). A share to a member whose listed X25519 key is
//!   unusable is random bytes, so the operation still names every member.

use std::fmt;

use zeroize::Zeroizing;

use crate::dm::{EncryptionKey, SealKey};
use crate::envelope::{Draft, Kind};
use crate::room::Text;
use crate::{Envelope, Keypair, MessageId};

mod group;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
mod wire;

use group::{Ctx, Dag};
use wire::Change;

/// The envelope kind of a message in a private room.
pub const SEALED_KIND: Kind = Kind::Sealed;
/// The envelope kind of an invite room's operation (or more of its shares).
pub const OP_KIND: Kind = Kind::Op;
/// The kind of the envelope sealed inside an invite DM.
pub const INVITE_KIND: Kind = Kind::Invite;
/// Bytes in a room id.
pub const ROOM_ID_LEN: usize = 16;
/// Most operations one room holds.
pub const MAX_OPS: usize = 4096;
/// Most members of one invite room.
pub const MAX_MEMBERS: usize = 2000;
/// Shares carried in the operation itself; the rest go in format-2 envelopes.
pub const SHARES_PER_ENVELOPE: usize = 500;
/// Operations kept while their parents are missing, per room.
pub const MAX_WAITING: usize = 256;
/// Shortest body a relay lets through: a sealed message's key id, nonce and tag.
pub const MIN_BODY_LEN: usize = 8 + 24 + 16;
/// How long an operation waits for its parents before it is refused.
pub const WAIT_MS: u64 = 10 * 60 * 1000;

/// A private room's id: its envelopes' target is its 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub [u8; ROOM_ID_LEN]);

impl RoomId {
    /// The target string of the room's envelopes.
    pub fn target(&self) -> String {
        hex::encode(self.0)
    }

    /// The room id a target names, if it is 32 lowercase hex digits.
    pub fn from_target(target: &str) -> Option<Self> {
        if target.len() != 2 * ROOM_ID_LEN
            || !target
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let mut id = [0u8; ROOM_ID_LEN];
        hex::decode_to_slice(target, &mut id).ok()?;
        Some(Self(id))
    }
}

impl fmt::Debug for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomId({})", self.target())
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.target())
    }
}

/// Whether a private envelope's target is well formed (what relays check).
pub fn is_target(target: &str) -> bool {
    RoomId::from_target(target).is_some()
}

/// Why something could not be done or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("malformed: {0}")]
    Malformed(&'static str),
    #[error("the passphrase must be 1 to 256 bytes")]
    BadPassphrase,
    #[error("room name: {0}")]
    Room(#[from] crate::room::Error),
    #[error("you are not a member of this room")]
    NotMember,
    #[error("only the room's admins can do that")]
    NotAdmin,
    #[error("already a member")]
    AlreadyMember,
    #[error("the room is full ({MAX_MEMBERS} members, {MAX_OPS} operations)")]
    Full,
    #[error("the room's first operation has not arrived yet")]
    NotReady,
    #[error("envelope: {0}")]
    Envelope(#[from] crate::envelope::Error),
}

/// Why a member refused a private envelope: counted by reason, never shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Does not open with the key it names (a wrong passphrase, or forged by someone without
    /// the key).
    Unreadable,
    /// Its author is not a member of the epoch it is sealed under.
    NotMember,
    /// A membership change by someone who is not an admin.
    NotAdmin,
    /// An operation whose parents never came, or are invalid.
    UnknownParents,
    /// An operation whose shares do not name exactly its membership, or that makes no sense
    /// (removing a non-member, a second create).
    BadOperation,
    /// The body does not parse.
    Malformed,
    /// Over [`MAX_OPS`], [`MAX_WAITING`] or [`MAX_MEMBERS`].
    TooMany,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::Unreadable,
        Refusal::NotMember,
        Refusal::NotAdmin,
        Refusal::UnknownParents,
        Refusal::BadOperation,
        Refusal::Malformed,
        Refusal::TooMany,
    ];

    /// The name used in stats and the JSON interface.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unreadable => "unreadable",
            Refusal::NotMember => "not_member",
            Refusal::NotAdmin => "not_admin",
            Refusal::UnknownParents => "unknown_parents",
            Refusal::BadOperation => "bad_operation",
            Refusal::Malformed => "malformed",
            Refusal::TooMany => "too_many",
        }
    }
}

/// Why a member cannot show a sealed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unread {
    /// Its epoch is not known here yet (its operation may still come): keep it, try again when
    /// an operation becomes valid.
    Later,
    /// Sealed under an epoch this member was not given (before it joined, after its removal).
    NoKey,
    /// Refused for good.
    Refused(Refusal),
}

/// A 32-byte symmetric secret (a passphrase room's secret, a roster key): zeroized on drop,
/// never in a `Debug` output.
#[derive(Clone)]
pub struct Secret(Zeroizing<[u8; 32]>);

impl Secret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A passphrase room: its id and its key.
#[derive(Clone, Debug)]
pub struct PassphraseRoom {
    id: RoomId,
    secret: Secret,
    /// HKDF of the secret: the message key, and the key id every message starts with.
    key: Secret,
    key_id: [u8; wire::KEY_ID_LEN],
}

impl PassphraseRoom {
    /// The room `name` (a room name, normalized) with `passphrase`: two Argon2id runs (about
    /// 50 ms each in a release build; run it off the event loop).
    pub fn derive(name: &str, passphrase: &str) -> Result<Self, Error> {
        if !crate::room::is_room_name(name) {
            return Err(Error::Room(crate::room::Error::BadRoomName));
        }
        if passphrase.is_empty() || passphrase.len() > 256 {
            return Err(Error::BadPassphrase);
        }
        let id = Self::room_id(name);
        Ok(Self::from_secret(
            id,
            wire::passphrase_secret(passphrase, &id.0),
        ))
    }

    /// The room id of `name` alone (one Argon2id run).
    pub fn room_id(name: &str) -> RoomId {
        RoomId(wire::passphrase_room_id(name))
    }

    /// The room again from what [`PassphraseRoom::secret`] gave (no Argon2: for restarts).
    pub fn from_secret(id: RoomId, secret: Secret) -> Self {
        let (key, key_id) = wire::passphrase_key(&secret);
        Self {
            id,
            secret,
            key,
            key_id,
        }
    }

    pub fn id(&self) -> RoomId {
        self.id
    }

    /// What to keep to open the room again after a restart.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Signs `text` as a sealed message of this room.
    pub fn seal<R: rand::RngCore + rand::CryptoRng>(
        &self,
        author: &Keypair,
        text: &Text,
        timestamp_ms: u64,
        rng: &mut R,
    ) -> Result<Envelope, Error> {
        let target = self.id.target();
        let me = *author.public().as_bytes();
        let body = wire::seal_text(&self.key, &self.key_id, &target, &me, text, rng)?;
        Ok(Envelope::sign(
            author,
            Draft {
                kind: SEALED_KIND,
                target: &target,
                timestamp_ms,
                nonce: rng.next_u64(),
                body: &body,
            },
        )?)
    }

    /// The text of a sealed message of this room (an envelope already checked by
    /// [`crate::inbound::check`]). A message under another passphrase's key is
    /// `Refused(Unreadable)`.
    pub fn open(&self, env: &Envelope) -> Result<Text, Unread> {
        if env.kind() != SEALED_KIND {
            return Err(Unread::Refused(Refusal::Malformed));
        }
        match wire::key_id(env.body()) {
            None => Err(Unread::Refused(Refusal::Malformed)),
            Some(id) if id != self.key_id => Err(Unread::Refused(Refusal::Unreadable)),
            Some(_) => {
                wire::open_text(&self.key, env.body(), env.target(), env.author().as_bytes())
            }
        }
    }
}

/// A member of an invite room, as its latest surviving add lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub key: [u8; 32],
    pub seal: SealKey,
    pub nick: String,
    pub admin: bool,
}

/// What offering an operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpOutcome {
    /// Valid now, with the operations that waited for it and became valid too (their ids, this
    /// one first). The membership or the keys may have changed: sealed messages kept for
    /// [`Unread::Later`] may open now.
    Valid(Vec<MessageId>),
    /// Kept until its parents (or, for more shares, its operation) come.
    Waiting,
    /// Had already.
    Known,
    Refused(Refusal),
}

/// The body of an invite (kind 8, sealed in a DM).
#[derive(Clone, Debug)]
pub struct Invite {
    pub room: RoomId,
    pub roster_key: Secret,
    pub name: String,
}

impl Invite {
    /// `room id [16] | roster key [32] | name_len u8 | name`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ROOM_ID_LEN + 32 + 1 + self.name.len());
        out.extend_from_slice(&self.room.0);
        out.extend_from_slice(self.roster_key.as_bytes());
        out.push(self.name.len() as u8);
        out.extend_from_slice(self.name.as_bytes());
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, Error> {
        const FIXED: usize = ROOM_ID_LEN + 32 + 1;
        if body.len() < FIXED || body.len() != FIXED + body[FIXED - 1] as usize {
            return Err(Error::Malformed("invite length"));
        }
        let name =
            std::str::from_utf8(&body[FIXED..]).map_err(|_| Error::Malformed("invite name"))?;
        if !crate::room::is_room_name(name) {
            return Err(Error::Malformed("invite name"));
        }
        Ok(Self {
            room: RoomId(body[..ROOM_ID_LEN].try_into().expect("16 bytes")),
            roster_key: Secret::from_bytes(
                body[ROOM_ID_LEN..FIXED - 1].try_into().expect("32 bytes"),
            ),
            name: name.to_owned(),
        })
    }
}

/// An invite room as one member sees it.
pub struct Group {
    room: RoomId,
    roster_key: Secret,
    me: [u8; 32],
    seal: EncryptionKey,
    dag: Dag,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

impl Group {
    /// A new room named `name` with us as its only member and admin, and its first operation
    /// (the caller publishes it).
    pub fn create<R: rand::RngCore + rand::CryptoRng>(
        me: &Keypair,
        seal: EncryptionKey,
        name: &str,
        nick: &str,
        now_ms: u64,
        rng: &mut R,
    ) -> Result<(Group, Envelope), Error> {
        if !crate::room::is_room_name(name) {
            return Err(Error::Room(crate::room::Error::BadRoomName));
        }
        crate::room::validate_nick(nick)?;
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let key = *me.public().as_bytes();
        let room = RoomId(wire::invite_room_id(&key, &nonce));
        let mut roster = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(roster.as_mut());
        let change = Change::Create {
            nonce,
            name: name.to_owned(),
            seal: seal.public(),
            nick: nick.to_owned(),
        };
        let mut group = Group::joined(room, Secret::from_bytes(*roster), key, seal);
        let (ctx, dag) = group.split();
        let mut out = dag.make(&ctx, me, change, now_ms, rng)?;
        let env = out.pop().expect("one create");
        Ok((group, env))
    }

    /// A room we were invited to (or created before a restart): its operations come by
    /// [`Group::offer`].
    pub fn joined(room: RoomId, roster_key: Secret, me: [u8; 32], seal: EncryptionKey) -> Group {
        Group {
            room,
            roster_key,
            me,
            seal,
            dag: Dag::default(),
        }
    }

    /// What the DAG needs of us, borrowed apart from the DAG itself.
    fn split(&mut self) -> (Ctx<'_>, &mut Dag) {
        let ctx = Ctx {
            room: self.room,
            roster: &self.roster_key,
            me: self.me,
            seal: &self.seal,
        };
        (ctx, &mut self.dag)
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            room: self.room,
            roster: &self.roster_key,
            me: self.me,
            seal: &self.seal,
        }
    }

    /// The heads (valid operations nothing valid follows), by id: what a new operation's parents
    /// are.
    pub fn heads(&self) -> Vec<MessageId> {
        self.dag.head_ids()
    }

    pub fn id(&self) -> RoomId {
        self.room
    }

    pub fn roster_key(&self) -> &Secret {
        &self.roster_key
    }

    /// The room's name, once its first operation is here.
    pub fn name(&self) -> Option<&str> {
        self.dag.name()
    }

    /// The membership of every valid operation, sorted by key.
    pub fn members(&self) -> Vec<Member> {
        self.dag.members().to_vec()
    }

    /// `key`'s entry in [`Group::members`].
    pub fn member(&self, key: &[u8; 32]) -> Option<&Member> {
        self.dag.member(key)
    }

    pub fn is_member(&self, key: &[u8; 32]) -> bool {
        self.dag.member(key).is_some()
    }

    pub fn is_admin(&self, key: &[u8; 32]) -> bool {
        self.dag.member(key).is_some_and(|m| m.admin)
    }

    /// Number of valid operations.
    pub fn operations(&self) -> usize {
        self.dag.operations()
    }

    /// The invite that lets someone read the room (after an add gives them a share). Its name is
    /// empty, and does not decode, until the room's first operation is here (an admin always
    /// has it).
    pub fn invite(&self) -> Invite {
        Invite {
            room: self.room,
            roster_key: self.roster_key.clone(),
            name: self.dag.name().unwrap_or_default().to_owned(),
        }
    }

    /// Takes an operation envelope (kind 7, checked by [`crate::inbound::check`]).
    pub fn offer(&mut self, env: &Envelope, now_ms: u64) -> OpOutcome {
        let (ctx, dag) = self.split();
        dag.offer(&ctx, env, now_ms)
    }

    /// Refuses operations that waited longer than [`WAIT_MS`]; returns how many (count them as
    /// [`Refusal::UnknownParents`]). They are forgotten rather than remembered as refused: offered
    /// again once their parents are here, they are valid.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        self.dag.expire(now_ms)
    }

    /// Adds `member` (we must be an admin): the envelopes to publish, applied here already.
    #[allow(clippy::too_many_arguments)]
    pub fn add<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        me: &Keypair,
        member: [u8; 32],
        seal: SealKey,
        nick: &str,
        admin: bool,
        now_ms: u64,
        rng: &mut R,
    ) -> Result<Vec<Envelope>, Error> {
        crate::room::validate_nick(nick)?;
        self.check_admin()?;
        let add = Change::Add {
            member,
            seal,
            admin,
            nick: nick.to_owned(),
        };
        let (ctx, dag) = self.split();
        match dag.member(&member) {
            None if dag.members().len() >= MAX_MEMBERS => Err(Error::Full),
            None => dag.make(&ctx, me, add, now_ms, rng),
            Some(m) if m.admin == admin || member == ctx.me => Err(Error::AlreadyMember),
            // An admin's surviving add keeps it an admin: demoting is a remove, then an add.
            Some(m) if m.admin => {
                let mut out = dag.make(&ctx, me, Change::Remove { member }, now_ms, rng)?;
                out.extend(dag.make(&ctx, me, add, now_ms, rng)?);
                Ok(out)
            }
            Some(_) => dag.make(&ctx, me, add, now_ms, rng),
        }
    }

    /// `Ok` if the room is here and we are one of its admins.
    fn check_admin(&self) -> Result<(), Error> {
        if self.dag.name().is_none() {
            return Err(Error::NotReady);
        }
        match self.dag.member(&self.me) {
            None => Err(Error::NotMember),
            Some(m) if !m.admin => Err(Error::NotAdmin),
            Some(_) => Ok(()),
        }
    }

    /// Removes `member` (we must be an admin, or `member` is us: leaving).
    pub fn remove<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        me: &Keypair,
        member: [u8; 32],
        now_ms: u64,
        rng: &mut R,
    ) -> Result<Vec<Envelope>, Error> {
        if member == self.me {
            if self.dag.name().is_none() {
                return Err(Error::NotReady);
            }
        } else {
            self.check_admin()?;
        }
        // Removing someone who is not a member (or leaving a room we are not in).
        if !self.is_member(&member) {
            return Err(Error::NotMember);
        }
        let (ctx, dag) = self.split();
        dag.make(&ctx, me, Change::Remove { member }, now_ms, rng)
    }

    /// Seals `text` under the current epoch: a rekey first if there is none (§10), then the
    /// message, last. Everything returned is applied here already.
    pub fn seal<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        me: &Keypair,
        text: &Text,
        now_ms: u64,
        rng: &mut R,
    ) -> Result<Vec<Envelope>, Error> {
        let (ctx, dag) = self.split();
        dag.seal_text(&ctx, me, text, now_ms, rng)
    }

    /// The text of a sealed message of this room (checked by [`crate::inbound::check`]).
    pub fn open(&self, env: &Envelope) -> Result<Text, Unread> {
        self.dag.open(&self.ctx(), env)
    }
}
