//! The commands: each [`Handle`] method sends the actor a job that calls the handler owning the
//! work, and [`Handle::call`] carries out a command of the typed API (`meshchat_api`) with
//! them. A new command is its variant in `meshchat-api`, its arm in [`Handle::call`] and the
//! handler method it calls; a front-end that wants node types (the TUI, line mode) also gets a
//! typed method here.

use std::time::Instant;

use libp2p::{Multiaddr, PeerId};
use meshchat_api as api;
use meshchat_core::{Envelope, MessageId};

use meshchat_core::transfer::wire::Offer;

use super::{files, rooms, Actor, Ctx};
use crate::api as convert;
use crate::node::{
    Conversation, DmSent, DmView, Error, Handle, MemberView, MessageView, NodeInfo, OnlinePeer,
    PeerInfo, PrivateKind, ProfileView, RoomView, RouteView, Sent, Stats, TrackerView,
};

impl Handle {
    /// Signs and publishes a text message to a joined room (sealed in a private room).
    pub async fn send(&self, room: &str, text: &str) -> Result<Sent, Error> {
        let (room, text) = (room.to_owned(), text.to_owned());
        self.ask(move |a: &mut Actor| {
            let ctx = ctx!(a);
            let target = ctx.io.target_of(&room)?;
            let envs = if ctx.io.private.contains_key(&target) {
                a.private.send(&target, text, ctx)?
            } else {
                vec![rooms::send(&room, text, ctx)?]
            };
            let mut relayed = false;
            for env in &envs {
                relayed = a.trees.publish(env.id(), env.as_bytes(), ctx);
            }
            let id = envs.last().map(Envelope::id).ok_or(Error::Stopped)?;
            Ok(Sent { id, relayed })
        })
        .await
    }

    /// Joins a room (name normalized); true if newly joined.
    pub async fn join(&self, room: &str) -> Result<bool, Error> {
        let room = room.to_owned();
        self.ask(move |a: &mut Actor| rooms::join(&room, ctx!(a)))
            .await
    }

    /// Joins the private room of that name and passphrase (PROTOCOL §10); true if newly
    /// joined. Its key is derived on a blocking thread: Argon2id takes a moment on purpose.
    pub async fn join_private(&self, room: &str, passphrase: &str) -> Result<bool, Error> {
        if passphrase.is_empty() || passphrase.len() > 256 {
            return Err(meshchat_core::private::Error::BadPassphrase.into());
        }
        let name = meshchat_core::room::normalize_room(room)?;
        let passphrase = zeroize::Zeroizing::new(passphrase.to_owned());
        let derived = name.clone();
        let derived = tokio::task::spawn_blocking(move || {
            meshchat_core::private::PassphraseRoom::derive(&derived, &passphrase)
        })
        .await
        .map_err(|e| Error::Private(format!("deriving the room key: {e}")))??;
        self.ask(move |a: &mut Actor| a.private.join_passphrase(&name, derived, ctx!(a)))
            .await
    }

    /// Leaves a room; true if it was joined. Leaving an invite room tells its members.
    pub async fn leave(&self, room: &str) -> Result<bool, Error> {
        let room = room.to_owned();
        self.ask(move |a: &mut Actor| {
            let ctx = ctx!(a);
            let target = ctx.io.target_of(&room)?;
            if !ctx.io.private.contains_key(&target) {
                return rooms::leave(&room, ctx);
            }
            for env in a.private.leave(&target, ctx)? {
                a.trees.publish(env.id(), env.as_bytes(), ctx);
            }
            Ok(true)
        })
        .await
    }

    /// Creates an invite-only private room with this node as its admin.
    pub async fn create_room(&self, room: &str) -> Result<String, Error> {
        let room = room.to_owned();
        self.ask(move |a: &mut Actor| {
            let ctx = ctx!(a);
            let env = a.private.create(&room, ctx)?;
            a.trees.publish(env.id(), env.as_bytes(), ctx);
            Ok(ctx.io.room_name(env.target()))
        })
        .await
    }

    /// Adds `who` (nick, fingerprint or peer id) to an invite room we administer and sends
    /// them the invite by DM. Returns their peer id.
    pub async fn invite(&self, room: &str, who: &str) -> Result<PeerId, Error> {
        let (room, who) = (room.to_owned(), who.to_owned());
        self.ask(move |a: &mut Actor| {
            let ctx = ctx!(a);
            let target = ctx.io.target_of(&room)?;
            let (key, seal, nick) = a.direct.person(&who, ctx.io.me())?;
            let (envs, invite) = a.private.invite(&target, key, seal, &nick, ctx)?;
            for env in &envs {
                a.trees.publish(env.id(), env.as_bytes(), ctx);
            }
            a.direct.send_invite(&key, &invite, ctx)?;
            Ok(crate::node::peer_id_of_bytes(&key))
        })
        .await
    }

    /// Removes a member from an invite room we administer; returns their peer id.
    pub async fn remove_member(&self, room: &str, who: &str) -> Result<PeerId, Error> {
        let (room, who) = (room.to_owned(), who.to_owned());
        self.ask(move |a: &mut Actor| {
            let ctx = ctx!(a);
            let target = ctx.io.target_of(&room)?;
            let (envs, peer) = a.private.remove(&target, &who, ctx)?;
            for env in &envs {
                a.trees.publish(env.id(), env.as_bytes(), ctx);
            }
            Ok(peer)
        })
        .await
    }

    /// The members of a private room (of a passphrase room: the people heard in it).
    pub async fn members(&self, room: &str) -> Result<Vec<MemberView>, Error> {
        let room = room.to_owned();
        self.ask(move |a: &mut Actor| {
            let target = a.io.target_of(&room)?;
            if !a.io.private.contains_key(&target) {
                return Err(Error::Private(format!(
                    "#{room} is a public room: anyone may join it"
                )));
            }
            a.private.members(&target)
        })
        .await
    }

    /// The joined rooms, public and private, in the order joined.
    pub async fn rooms(&self) -> Result<Vec<RoomView>, Error> {
        self.ask(|a: &mut Actor| Ok(a.private.rooms(&a.io))).await
    }

    /// Changes the nick used on messages from now on (stored for later starts).
    pub async fn set_nick(&self, nick: &str) -> Result<(), Error> {
        let nick = nick.to_owned();
        self.ask(move |a: &mut Actor| rooms::set_nick(nick, ctx!(a)))
            .await
    }

    /// Dials an address and waits until the connection is up or failed.
    pub async fn connect(&self, addr: &str) -> Result<PeerId, Error> {
        let addr: Multiaddr = addr.trim().parse().map_err(|e| Error::BadAddress {
            addr: addr.to_owned(),
            reason: format!("{e}"),
        })?;
        self.ask_with(move |a: &mut Actor, reply| a.conns.dial_addr(addr, Some(reply), ctx!(a)))
            .await
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        self.ask(|a: &mut Actor| {
            let nick = |p: &PeerId| crate::node::key_of_peer_id(p).and_then(|k| a.direct.nick(&k));
            Ok(a.conns.peers(|p| a.trees.is_chat_peer(p), nick))
        })
        .await
    }

    /// The last `limit` messages of `room` before `before` (exclusive), oldest first.
    pub async fn history(
        &self,
        room: &str,
        limit: usize,
        before: Option<(u64, MessageId)>,
    ) -> Result<Vec<MessageView>, Error> {
        let room = room.to_owned();
        self.ask(move |a: &mut Actor| rooms::history(&room, limit, before, ctx!(a)))
            .await
    }

    /// Messages of joined rooms stored after arrival number `after` (see [`MessageView::seq`]),
    /// in arrival order, at most `limit`: what a front-end that fell behind has not shown.
    pub async fn arrived_after(&self, after: u64, limit: usize) -> Result<Vec<MessageView>, Error> {
        self.ask(move |a: &mut Actor| rooms::arrived_after(after, limit, ctx!(a)))
            .await
    }

    /// Seals and sends a direct message to `to`: a nick, a fingerprint (whole or its first
    /// eight digits) or a peer id. Returns once it is stored here; its state changes arrive as
    /// [`crate::Event::DmStatus`].
    pub async fn dm(&self, to: &str, text: &str) -> Result<DmSent, Error> {
        let (to, text) = (to.to_owned(), text.to_owned());
        self.ask(move |a: &mut Actor| a.direct.send_dm(&to, text, ctx!(a)))
            .await
    }

    /// The last `limit` DMs with `with` (named as for [`Handle::dm`]) before `before`
    /// (exclusive), oldest first.
    pub async fn dm_history(
        &self,
        with: &str,
        limit: usize,
        before: Option<(u64, MessageId)>,
    ) -> Result<Vec<DmView>, Error> {
        let with = with.to_owned();
        self.ask(move |a: &mut Actor| a.direct.dm_history(&with, limit, before, ctx!(a)))
            .await
    }

    /// Every conversation with at least one DM, newest first.
    pub async fn conversations(&self) -> Result<Vec<Conversation>, Error> {
        self.ask(|a: &mut Actor| a.direct.conversations(ctx!(a)))
            .await
    }

    /// The routing table: one selected route per reachable destination.
    pub async fn routes(&self) -> Result<Vec<RouteView>, Error> {
        self.ask(|a: &mut Actor| {
            let ctx = ctx!(a);
            Ok(a.direct.routes(ctx))
        })
        .await
    }

    /// The profiles matching `who` (a nick may match several people).
    pub async fn whois(&self, who: &str) -> Result<Vec<ProfileView>, Error> {
        let who = who.to_owned();
        self.ask(move |a: &mut Actor| a.direct.whois(&who, ctx!(a)))
            .await
    }

    /// Everyone online in the network, from the tracker's roster (sorted by nick).
    pub async fn who(&self) -> Result<Vec<OnlinePeer>, Error> {
        self.ask(|a: &mut Actor| {
            let me = a.io.me();
            Ok(a.tracker.who(&a.io, |k| a.direct.hops(k, &me)))
        })
        .await
    }

    /// The tracker this node follows, its rank and epoch.
    pub async fn tracker(&self) -> Result<TrackerView, Error> {
        self.ask(|a: &mut Actor| Ok(a.tracker.view(|k| a.direct.nick(k))))
            .await
    }

    /// This node's identity, addresses and rooms.
    pub async fn info(&self) -> Result<NodeInfo, Error> {
        self.ask(|a: &mut Actor| {
            let reach = a.nat.view(ctx!(a));
            Ok(info(reach, ctx!(a)))
        })
        .await
    }

    /// The node's counters.
    pub async fn stats(&self) -> Result<Stats, Error> {
        self.ask(|a: &mut Actor| {
            let ctx = ctx!(a);
            let mut stats = ctx.io.stats.clone();
            stats.blocked_peers = ctx.io.guard.blocked_count(Instant::now()) as u64;
            stats.handshakes = ctx.io.handshakes.stats();
            a.trees.stats(&mut stats);
            a.direct.stats(&mut stats);
            a.tracker.stats(&mut stats);
            Ok(stats)
        })
        .await
    }

    /// Offers a file to a joined `room` or to one person `to` (named as for [`Handle::dm`]):
    /// hashes it (on a blocking thread: a large file takes seconds), signs the offer and sends
    /// it. The file is read from `path` whenever someone fetches it, so it must stay there.
    pub async fn send_file(
        &self,
        room: Option<&str>,
        to: Option<&str>,
        path: &str,
    ) -> Result<api::File, Error> {
        let target = match (room, to) {
            (Some(room), None) => Ok(room.to_owned()),
            (None, Some(to)) => Err(to.to_owned()),
            _ => {
                return Err(Error::File(
                    "name a room or a person to send the file to, not both".into(),
                ))
            }
        };
        let path =
            std::path::absolute(path.trim()).map_err(|e| Error::File(format!("{path}: {e}")))?;
        let hashed = path.clone();
        let manifest = tokio::task::spawn_blocking(move || files::hash_file(&hashed))
            .await
            .map_err(|e| Error::File(format!("hashing {}: {e}", path.display())))??;
        self.ask(move |a: &mut Actor| {
            let ctx = ctx!(a);
            let name = path
                .file_name()
                .map(|n| meshchat_core::transfer::safe_file_name(&n.to_string_lossy()))
                .unwrap_or_else(|| "file".into());
            let offer = Offer {
                nick: ctx.io.nick.clone(),
                name,
                size: manifest.size(),
                chunk_size: manifest.chunk_size(),
                root: manifest.root(),
                key: target.is_err().then(rand::random),
            };
            match &target {
                Ok(room) if ctx.io.private.contains_key(&ctx.io.target_of(room)?) => {
                    Err(Error::File(
                        "files cannot be offered in a private room yet (its relays could read \
                         them): send them to each member by DM"
                            .into(),
                    ))
                }
                Ok(room) => {
                    let env = rooms::send_offer(room, &offer, ctx)?;
                    a.trees.publish(env.id(), env.as_bytes(), ctx);
                    a.files
                        .record_own(&env, &offer, &path, &manifest, None, ctx!(a))
                }
                Err(to) => {
                    let (_, env, key) = a.direct.send_offer(to, &offer, ctx)?;
                    a.files
                        .record_own(&env, &offer, &path, &manifest, Some(key), ctx!(a))
                }
            }
        })
        .await
    }

    /// Starts (or resumes) fetching an offered file; `id` is its offer's id.
    pub async fn accept_file(&self, id: &str) -> Result<(), Error> {
        let id = file_id(id)?;
        self.ask(move |a: &mut Actor| a.files.accept(id, ctx!(a)))
            .await
    }

    /// Stops a download (deleting its partial data) or stops serving our offer.
    pub async fn cancel_file(&self, id: &str) -> Result<(), Error> {
        let id = file_id(id)?;
        self.ask(move |a: &mut Actor| a.files.cancel(id, ctx!(a)))
            .await
    }

    /// The file offers and transfers this node knows, newest first.
    pub async fn files(&self) -> Result<Vec<api::File>, Error> {
        self.ask(|a: &mut Actor| a.files.list(ctx!(a))).await
    }

    /// Carries out one command of the typed API and gives its answer: the one place where the
    /// API's commands meet the node, for every program-facing interface (JSON mode, the web
    /// UI). `None` for [`api::Command::Quit`], which has no answer (the interface stops).
    /// [`api::Command::Connect`] is answered when the dial ends, so an interface that goes on
    /// with other commands meanwhile runs it on a task of its own.
    pub async fn call(&self, cmd: api::Command) -> Option<api::Event> {
        use api::{Command, Event as Line};
        let limit = |l: u64| l.min(api::MAX_HISTORY_LIMIT) as usize;
        let reply: Result<Line, Error> = match cmd {
            Command::Send { room, text } => self.send(&room, &text).await.map(|s| Line::Sent {
                room,
                id: s.id.to_string(),
                relayed: s.relayed,
            }),
            Command::Join { room, key } => {
                let joined = match &key {
                    Some(key) => self.join_private(&room, key.as_str()).await,
                    None => self.join(&room).await,
                };
                joined.map(|_| Line::Joined {
                    private: key.map(|_| PrivateKind::Passphrase.as_str().to_owned()),
                    room,
                    by: None,
                })
            }
            Command::Create { room } => self.create_room(&room).await.map(|room| Line::Joined {
                room,
                private: Some(PrivateKind::Invite.as_str().to_owned()),
                by: None,
            }),
            Command::Invite { room, who } => {
                self.invite(&room, &who).await.map(|peer| Line::Invited {
                    room,
                    who,
                    peer_id: peer.to_string(),
                })
            }
            Command::Remove { room, who } => {
                self.remove_member(&room, &who)
                    .await
                    .map(|peer| Line::Removed {
                        room,
                        who,
                        peer_id: peer.to_string(),
                    })
            }
            Command::Members { room } => self.members(&room).await.map(|m| Line::Members {
                room,
                members: m.iter().map(convert::member).collect(),
            }),
            Command::Rooms => self.rooms().await.map(|r| Line::Rooms {
                rooms: r.iter().map(convert::room).collect(),
            }),
            Command::Leave { room } => self
                .leave(&room)
                .await
                .map(|was_member| Line::Left { room, was_member }),
            Command::Nick { nick } => self.set_nick(&nick).await.map(|()| Line::Nick { nick }),
            Command::Connect { addr } => self.connect(&addr).await.map(|peer| Line::Connected {
                addr,
                peer_id: peer.to_string(),
            }),
            Command::Peers => self.peers().await.map(|p| Line::Peers {
                peers: p.iter().map(convert::peer).collect(),
            }),
            Command::History {
                room,
                limit: l,
                before,
            } => match position(before.as_ref()) {
                Ok(at) => self
                    .history(&room, limit(l), at)
                    .await
                    .map(|msgs| Line::History {
                        messages: msgs.iter().map(convert::message).collect(),
                        room,
                        before,
                    }),
                Err(e) => Err(e),
            },
            Command::Info => self
                .info()
                .await
                .map(|i| Line::Info(convert::node_info(&i))),
            Command::Stats => self
                .stats()
                .await
                .map(|s| Line::Stats(Box::new(convert::stats(&s)))),
            Command::Dm { to, text } => self.dm(&to, &text).await.map(|s| {
                Line::DmSent(api::DmSent {
                    id: s.id.to_string(),
                    to: s.to.to_string(),
                    state: convert::dm_state(s.state),
                })
            }),
            Command::DmHistory {
                with,
                limit: l,
                before,
            } => match position(before.as_ref()) {
                Ok(at) => self
                    .dm_history(&with, limit(l), at)
                    .await
                    .map(|dms| Line::DmHistory {
                        messages: dms.iter().map(convert::dm).collect(),
                        with,
                        before,
                    }),
                Err(e) => Err(e),
            },
            Command::Conversations => self.conversations().await.map(|c| Line::Conversations {
                conversations: c.iter().map(convert::conversation).collect(),
            }),
            Command::Routes => self.routes().await.map(|r| Line::Routes {
                routes: r.iter().map(convert::route).collect(),
            }),
            Command::Whois { who } => self.whois(&who).await.map(|p| Line::Whois {
                profiles: p.iter().map(convert::profile).collect(),
                who,
            }),
            Command::Who => self.who().await.map(|p| Line::Who {
                peers: p.iter().map(convert::online_peer).collect(),
            }),
            Command::Tracker => self
                .tracker()
                .await
                .map(|t| Line::Tracker(convert::tracker(&t))),
            Command::SendFile { room, to, path } => self
                .send_file(room.as_deref(), to.as_deref(), &path)
                .await
                .map(Line::FileOffered),
            Command::AcceptFile { id } => self
                .accept_file(&id)
                .await
                .map(|()| Line::FileAccepted { id }),
            Command::CancelFile { id } => self
                .cancel_file(&id)
                .await
                .map(|()| Line::FileCancelled { id }),
            Command::Files => self.files().await.map(|files| Line::Files { files }),
            Command::Quit => return None,
        };
        Some(reply.unwrap_or_else(|e| convert::error(e.to_string())))
    }
}

/// A file offer's id (64 hex digits).
fn file_id(id: &str) -> Result<MessageId, Error> {
    id.trim()
        .parse::<MessageId>()
        .map_err(|_| Error::UnknownFile(id.to_owned()))
}

/// A history position of the API (`{"ts":…,"id":"<64 hex>"}`) as the store's.
fn position(at: Option<&api::Position>) -> Result<Option<(u64, MessageId)>, Error> {
    at.map(|p| {
        let id =
            p.id.parse::<MessageId>()
                .map_err(|_| Error::BadPosition { id: p.id.clone() })?;
        Ok((p.ts, id))
    })
    .transpose()
}

fn info(reach: crate::node::ReachView, ctx: &mut Ctx<'_>) -> NodeInfo {
    NodeInfo {
        reach,
        peer_id: *ctx.io.swarm.local_peer_id(),
        fingerprint: ctx.io.key.public().fingerprint(),
        nick: ctx.io.nick.clone(),
        listen: ctx.io.listen_addrs.clone(),
        rooms: ctx.io.rooms.iter().map(|r| ctx.io.room_name(r)).collect(),
        new_identity: ctx.io.new_identity,
        seq_at_start: ctx.io.store.seq_at_open(),
    }
}
