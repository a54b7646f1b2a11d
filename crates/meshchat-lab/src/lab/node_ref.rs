//! [`NodeRef`]: one host's node, driven through its JSON interface.

use super::Lab;
use crate::node::{self, Proc};
use anyhow::{anyhow, Context as _, Result};
use meshchat_api::{
    Command, DirectMessage, DmSent, Event, Member, Message, OnlinePeer, Peer, Profile, Route,
    Stats, Tracker,
};
use std::time::Instant;

/// Drives one host's node.
pub struct NodeRef<'a> {
    pub(super) lab: &'a Lab,
    pub(super) i: usize,
}

impl NodeRef<'_> {
    fn proc_(&self) -> Result<&Proc> {
        self.lab.procs[self.i]
            .as_ref()
            .with_context(|| format!("node {} is not running", self.i))
    }

    fn ask(&self, cmd: Command, probe: bool) -> Result<Event> {
        let seq = node::request(&self.lab.hub, self.i, self.proc_()?, &cmd, probe, false)?;
        node::await_reply(&self.lab.hub, self.i, seq, self.lab.deadline(20))
    }

    fn send_inner(&self, room: &str, text: &str, probe: bool) -> Result<String> {
        let cmd = Command::Send {
            room: room.into(),
            text: text.into(),
        };
        match self.ask(cmd, probe)? {
            Event::Sent { id, .. } => Ok(id),
            other => Err(anyhow!("unexpected answer to send: {other:?}")),
        }
    }

    /// Posts `text` to `room`; returns the new message id.
    pub fn send(&self, room: &str, text: &str) -> Result<String> {
        self.send_inner(room, text, false)
    }

    /// Like [`NodeRef::send`] but marks the message as a probe.
    pub fn send_probe(&self, room: &str, text: &str) -> Result<String> {
        self.send_inner(room, text, true)
    }

    /// Posts without waiting for the answer (the id is recorded in the hub when it comes).
    pub fn send_nowait(&self, room: &str, text: &str) -> Result<()> {
        let cmd = Command::Send {
            room: room.into(),
            text: text.into(),
        };
        node::request(&self.lab.hub, self.i, self.proc_()?, &cmd, false, true)?;
        Ok(())
    }

    /// Stored messages of `room`, oldest first.
    pub fn history(&self, room: &str, limit: usize) -> Result<Vec<Message>> {
        let cmd = Command::History {
            room: room.into(),
            limit: limit as u64,
            before: None,
        };
        match self.ask(cmd, false)? {
            Event::History { messages, .. } => Ok(messages),
            other => Err(anyhow!("unexpected answer to history: {other:?}")),
        }
    }

    /// The node's `peers` answer.
    pub fn peers(&self) -> Result<Vec<Peer>> {
        match self.ask(Command::Peers, false)? {
            Event::Peers { peers } => Ok(peers),
            other => Err(anyhow!("unexpected answer to peers: {other:?}")),
        }
    }

    /// Joins `room` and waits for `joined`.
    pub fn join(&self, room: &str) -> Result<()> {
        self.ask(
            Command::Join {
                room: room.into(),
                key: None,
            },
            false,
        )
        .map(drop)
    }

    /// Joins the passphrase room `room` and waits for `joined`.
    pub fn join_private(&self, room: &str, passphrase: &str) -> Result<()> {
        self.ask(
            Command::Join {
                room: room.into(),
                key: Some(passphrase.into()),
            },
            false,
        )
        .map(drop)
    }

    /// Creates the invite room `room` and waits for `joined`.
    pub fn create(&self, room: &str) -> Result<()> {
        self.ask(Command::Create { room: room.into() }, false)
            .map(drop)
    }

    /// Invites `who` into `room`; returns the invitee's peer id.
    pub fn invite(&self, room: &str, who: &str) -> Result<String> {
        let cmd = Command::Invite {
            room: room.into(),
            who: who.into(),
        };
        match self.ask(cmd, false)? {
            Event::Invited { peer_id, .. } => Ok(peer_id),
            other => Err(anyhow!("unexpected answer to invite: {other:?}")),
        }
    }

    /// Removes `who` from `room`; returns their peer id.
    pub fn remove(&self, room: &str, who: &str) -> Result<String> {
        let cmd = Command::Remove {
            room: room.into(),
            who: who.into(),
        };
        match self.ask(cmd, false)? {
            Event::Removed { peer_id, .. } => Ok(peer_id),
            other => Err(anyhow!("unexpected answer to remove: {other:?}")),
        }
    }

    /// The members of the private room `room`.
    pub fn members(&self, room: &str) -> Result<Vec<Member>> {
        match self.ask(Command::Members { room: room.into() }, false)? {
            Event::Members { members, .. } => Ok(members),
            other => Err(anyhow!("unexpected answer to members: {other:?}")),
        }
    }

    /// Leaves `room` and waits for `left`.
    pub fn leave(&self, room: &str) -> Result<()> {
        self.ask(Command::Leave { room: room.into() }, false)
            .map(drop)
    }

    /// Asks the node to dial `addr` (no answer is awaited).
    pub fn connect(&self, addr: &str) -> Result<()> {
        node::request(
            &self.lab.hub,
            self.i,
            self.proc_()?,
            &Command::Connect { addr: addr.into() },
            false,
            true,
        )
        .map(drop)
    }

    /// Sends a direct message to `to` (nick, fingerprint or peer id); returns the `dm_sent`
    /// answer. Fails with the node's `error` (for example
    /// when no profile of the recipient has arrived yet).
    pub fn dm(&self, to: &str, text: &str) -> Result<DmSent> {
        let cmd = Command::Dm {
            to: to.into(),
            text: text.into(),
        };
        match self.ask(cmd, false)? {
            Event::DmSent(sent) => Ok(sent),
            other => Err(anyhow!("unexpected answer to dm: {other:?}")),
        }
    }

    /// Stored DMs exchanged with `with` (nick or peer id), oldest first.
    pub fn dm_history(&self, with: &str, limit: usize) -> Result<Vec<DirectMessage>> {
        let cmd = Command::DmHistory {
            with: with.into(),
            limit: limit as u64,
            before: None,
        };
        match self.ask(cmd, false)? {
            Event::DmHistory { messages, .. } => Ok(messages),
            other => Err(anyhow!("unexpected answer to dm_history: {other:?}")),
        }
    }

    /// The node's selected routes (`routes`).
    pub fn routes(&self) -> Result<Vec<Route>> {
        match self.ask(Command::Routes, false)? {
            Event::Routes { routes } => Ok(routes),
            other => Err(anyhow!("unexpected answer to routes: {other:?}")),
        }
    }

    /// Profiles the node knows for `who` (`whois`); an error when it knows none.
    pub fn whois(&self, who: &str) -> Result<Vec<Profile>> {
        match self.ask(Command::Whois { who: who.into() }, false)? {
            Event::Whois { profiles, .. } => Ok(profiles),
            other => Err(anyhow!("unexpected answer to whois: {other:?}")),
        }
    }

    /// Everyone online, from the tracker's roster (`who`).
    pub fn who(&self) -> Result<Vec<OnlinePeer>> {
        match self.ask(Command::Who, false)? {
            Event::Who { peers } => Ok(peers),
            other => Err(anyhow!("unexpected answer to who: {other:?}")),
        }
    }

    /// The tracker the node follows (`tracker`).
    pub fn tracker(&self) -> Result<Tracker> {
        match self.ask(Command::Tracker, false)? {
            Event::Tracker(t) => Ok(t),
            other => Err(anyhow!("unexpected answer to tracker: {other:?}")),
        }
    }

    /// The node's counters (`stats`).
    pub fn stats(&self) -> Result<Stats> {
        match self.ask(Command::Stats, false)? {
            Event::Stats(s) => Ok(*s),
            other => Err(anyhow!("unexpected answer to stats: {other:?}")),
        }
    }

    /// Writes a command and returns at once, for asking many nodes in one round trip: the
    /// answer is collected with [`NodeRef::reply`] (`quit` has none).
    pub fn submit(&self, cmd: &Command) -> Result<u64> {
        node::request(&self.lab.hub, self.i, self.proc_()?, cmd, false, false)
    }

    /// The answer to the request [`NodeRef::submit`] returned `seq` for.
    pub fn reply(&self, seq: u64, deadline: Instant) -> Result<Event> {
        node::await_reply(&self.lab.hub, self.i, seq, deadline)
    }

    /// Waits until the node has emitted an event that is not an answer (a warning,
    /// `tracker_changed`, …: those kept in `HubState::nodes[i].other_events`) for which `pred`
    /// holds, looking at events already received too; returns it.
    pub fn wait_event(
        &self,
        deadline: Instant,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Result<Event> {
        let mut found = None;
        self.lab.hub.wait_until(deadline, |st| {
            found = st.nodes[self.i]
                .other_events
                .iter()
                .find(|(_, e)| pred(e))
                .map(|(_, e)| e.clone());
            found.is_some()
        });
        found.with_context(|| format!("node {}: no matching event before the deadline", self.i))
    }

    /// The node's peer id, once it has been ready.
    pub fn peer_id(&self) -> Option<String> {
        self.lab.hub.lock().nodes[self.i].peer_id.clone()
    }

    /// How others reach the node, as its last `ready` or `reachability` event said, and when
    /// the lab read it.
    pub fn reach(&self) -> Option<(meshchat_api::Reachability, Instant)> {
        self.lab.hub.lock().nodes[self.i].reach.clone()
    }

    /// Whether it runs.
    pub fn is_running(&self) -> bool {
        self.lab.hub.lock().nodes[self.i].running
    }
}
