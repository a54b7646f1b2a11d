//! The interface's state and everything that changes it: node events, keys, the mouse, pastes,
//! and the answers to the node calls it asked for. Nothing here waits: what needs the node is
//! queued as an [`Action`] and its answer comes back later as a [`Reply`], so this module is
//! tested without a terminal and without a node.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};

use chrono::{FixedOffset, Local, TimeZone};
use crossterm::event::{
    Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent,
    MouseEventKind,
};
use meshchat_core::room::MAX_TEXT_LEN;
use meshchat_core::{Fingerprint, MessageId};
use meshchat_node::{
    Conversation, DmState, DmView, Event, MessageView, Multiaddr, NodeInfo, PeerId, PeerInfo,
    ProfileView, RouteView,
};
use ratatui::layout::Rect;

use super::input::Input;
use super::people::{self, describe, NickBook, PeerRow, Reach, WhoisRow};
use super::room::{
    conversation_name, Entry, Geometry, Inserted, Level, Msg, Need, Room, FP_COLS, PAGE,
};
use super::wrap;

pub use actions::{Action, Passphrase, Refusal, Reply};

/// Conversations open at most (the newest are listed at start; opening one more closes the
/// quietest). A closed one opens again with `/msg`; its messages stay in the database.
pub const MAX_CONVERSATIONS: usize = 50;
/// Candidates named in the refusal of a nick that several keys use.
const MAX_CANDIDATES_SHOWN: usize = 8;
/// Keys the `/whois` panel lists at most.
const MAX_WHOIS_ROWS: usize = 50;
/// Widest nick in a conversation's name when a fingerprint follows it.
const TAGGED_NICK_COLS: usize = 12;

/// Rows one wheel notch scrolls.
const WHEEL_ROWS: isize = 3;

/// How times are shown: the local zone (the program), or a fixed offset (tests, for snapshots
/// that do not depend on where they run).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    offset: Option<FixedOffset>,
    /// A frozen "now" for notices, in tests.
    frozen_ms: Option<u64>,
}

impl Clock {
    pub fn local() -> Self {
        Self {
            offset: None,
            frozen_ms: None,
        }
    }

    pub fn fixed(offset: FixedOffset, now_ms: u64) -> Self {
        Self {
            offset: Some(offset),
            frozen_ms: Some(now_ms),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.frozen_ms.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        })
    }

    /// `HH:MM` of a Unix time in milliseconds.
    pub fn hhmm(&self, ts_ms: u64) -> String {
        let ms = i64::try_from(ts_ms).unwrap_or(i64::MAX);
        let shown = match self.offset {
            Some(off) => off
                .timestamp_millis_opt(ms)
                .single()
                .map(|t| t.format("%H:%M")),
            None => Local
                .timestamp_millis_opt(ms)
                .single()
                .map(|t| t.format("%H:%M")),
        };
        shown.map_or_else(|| "--:--".to_owned(), |t| t.to_string())
    }
}

/// This node, as the status bar and `/id` show it.
#[derive(Debug, Clone)]
pub struct Me {
    pub peer_id: PeerId,
    pub fingerprint: Fingerprint,
    pub nick: String,
    pub listen: Vec<Multiaddr>,
    /// How others reach us (public, mapped, relayed, behind a NAT).
    pub reach: meshchat_node::ReachView,
}

/// A panel over the conversation; Esc closes it.
#[derive(Debug, Clone)]
pub enum Overlay {
    Help,
    Id,
    Peers(Vec<PeerRow>),
    Whois {
        query: String,
        rows: Vec<WhoisRow>,
    },
    /// The routing table (`/routes`).
    Routes(Vec<RouteView>),
    /// Everyone online (`/who`).
    Who(tracker::WhoPanel),
}

/// Why a history page was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryFor {
    /// The first page of a room.
    Initial,
    /// The page before the window, while scrolling (or for `/history`, which says so).
    Older { announce: bool },
    /// The newest page, replacing a detached window.
    Newest,
    /// The newest page, replacing the window after the node dropped `missed` updates for this
    /// interface (the window may have a hole; the database has everything).
    Resync { missed: u64 },
}

/// Why the peer list was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeersFor {
    Panel,
    /// Re-learn who is connected after events were missed.
    Refresh,
}

#[derive(Debug)]
pub struct App {
    pub me: Me,
    /// Joined rooms, in the order of the room list.
    pub rooms: Vec<Room>,
    /// Index of the room shown (meaningless while `rooms` is empty).
    pub current: usize,
    /// What the pane shows when no room is joined (notices land there).
    pub roomless: Room,
    pub input: Input,
    pub overlay: Option<Overlay>,
    /// Rows the overlay is scrolled down.
    pub overlay_scroll: u16,
    /// Most rows the overlay could scroll at the last frame.
    pub overlay_max: Cell<u16>,
    /// Connected meshchat peers.
    pub peers: BTreeSet<PeerId>,
    pub book: NickBook,
    /// The network's tracker, for the status bar; `None` until the node said.
    pub tracker: Option<tracker::Status>,
    /// Show the listening addresses in the status bar (F2).
    pub show_addrs: bool,
    /// How far this computer's clock is off its peers' (ms, positive: ahead), while it is.
    pub clock_off: Option<i64>,
    pub clock: Clock,
    pub quit: bool,
    /// Ctrl+L: repaint the whole screen at the next frame.
    pub repaint: bool,
    /// Node calls waiting for the event loop.
    actions: Vec<Action>,
    /// Orders notices made in the same millisecond.
    seq: u64,
    /// Width and height of the message pane at the last frame.
    pub pane: Cell<(u16, u16)>,
    /// The pane size the scroll position was last checked against.
    settled_pane: (u16, u16),
    /// Where each room's entry in the room list was drawn at the last frame, for clicks.
    pub room_hits: RefCell<Vec<(Rect, usize)>>,
    /// "Not relayed" was said since the last peer came: say it once.
    unrelayed_said: bool,
    /// File offers' numbers and the downloads under way.
    pub transfers: files::Transfers,
}

impl App {
    pub fn new(info: &NodeInfo, clock: Clock) -> Self {
        let mut app = Self {
            me: Me {
                peer_id: info.peer_id,
                fingerprint: info.fingerprint,
                nick: wrap::sanitize_name(&info.nick),
                listen: info.listen.clone(),
                reach: info.reach.clone(),
            },
            rooms: info.rooms.iter().map(Room::new).collect(),
            current: 0,
            roomless: Room::new(""),
            input: Input::new(MAX_TEXT_LEN),
            overlay: None,
            overlay_scroll: 0,
            overlay_max: Cell::new(0),
            peers: BTreeSet::new(),
            book: NickBook::default(),
            tracker: None,
            show_addrs: false,
            clock_off: None,
            clock,
            quit: false,
            repaint: false,
            actions: Vec::new(),
            seq: 0,
            pane: Cell::new((80, 20)),
            settled_pane: (80, 20),
            room_hits: RefCell::new(Vec::new()),
            unrelayed_said: false,
            transfers: files::Transfers::default(),
        };
        let now = app.clock.now_ms();
        app.book
            .learn(info.peer_id, info.fingerprint, &info.nick, now);
        for i in 0..app.rooms.len() {
            app.load_first_page(i);
        }
        app.actions.push(Action::Conversations { announce: false });
        app.notice(
            &format!(
                "meshchat — you are {} ({}). F1 or /help lists commands.",
                app.me.nick,
                info.fingerprint.short()
            ),
            Level::Info,
        );
        if app.rooms.is_empty() {
            app.notice("you are in no room: /join ROOM", Level::Info);
        }
        app
    }

    /// Node calls queued since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The room shown.
    pub fn room(&self) -> &Room {
        self.rooms.get(self.current).unwrap_or(&self.roomless)
    }

    fn room_mut(&mut self) -> &mut Room {
        match self.rooms.get_mut(self.current) {
            Some(r) => r,
            None => &mut self.roomless,
        }
    }

    fn room_index(&self, name: &str) -> Option<usize> {
        self.rooms.iter().position(|r| r.name == name)
    }

    /// How a room is named on screen: `#room`, `@nick`, or `@nick 1a2b3c4d` for a conversation
    /// with someone whose nick another key uses too (or one that looks the same).
    pub fn title(&self, room: &Room) -> String {
        let Some(d) = &room.dm else {
            return room.shown();
        };
        let shared = self.book.collides(&d.nick)
            || self.rooms.iter().any(|r| {
                r.dm.as_ref()
                    .is_some_and(|o| o.peer != d.peer && o.nick.eq_ignore_ascii_case(&d.nick))
            });
        match d.fingerprint {
            Some(fp) if shared && d.nick != fp.short() => format!(
                "@{} {}",
                wrap::ellipsize(&d.nick, TAGGED_NICK_COLS),
                fp.short()
            ),
            _ => room.shown(),
        }
    }

    fn geometry(&self, room: &Room) -> Geometry {
        let (w, h) = self.pane.get();
        room.geometry(w, h)
    }

    /// Cells the nick label of `m` takes (with a fingerprint when the nick is shared).
    pub fn label_width(&self, m: &Msg) -> usize {
        wrap::width(&m.nick)
            + if self.book.collides(&m.nick) {
                FP_COLS
            } else {
                0
            }
    }

    /// Shows a notice in the room on screen.
    pub fn notice(&mut self, text: &str, level: Level) {
        self.seq += 1;
        let entry = Entry::notice(text, level, self.clock.now_ms(), self.seq);
        let geo = self.geometry(self.room());
        let room = self.room_mut();
        room.insert(entry, 0, geo);
        room.trim();
    }

    fn load_first_page(&mut self, i: usize) {
        let room = self.rooms[i].name.clone();
        self.actions.push(Action::History {
            room,
            before: None,
            limit: PAGE,
            purpose: HistoryFor::Initial,
        });
    }

    // ---- node events ----

    pub fn on_node_event(&mut self, event: Event) {
        match event {
            Event::Message(m) => self.on_message(m),
            Event::PeerConnected { peer_id } => {
                self.peers.insert(peer_id);
                self.unrelayed_said = false;
                let who = describe(&self.book, &peer_id);
                self.notice(&format!("peer connected: {who}"), Level::Info);
            }
            Event::PeerDisconnected { peer_id } => {
                self.peers.remove(&peer_id);
                let who = describe(&self.book, &peer_id);
                self.notice(&format!("peer disconnected: {who}"), Level::Info);
            }
            Event::ListenAddr(addr) => {
                if !self.me.listen.contains(&addr) {
                    self.notice(&format!("listening on {addr}"), Level::Info);
                    self.me.listen.push(addr);
                }
            }
            Event::Reachability(r) => {
                self.notice(&crate::output::reach_text(&r), Level::Info);
                self.me.reach = r;
            }
            Event::Warning(w) => self.notice(&w, Level::Error),
            Event::Clock {
                offset_ms,
                authors,
                off,
            } => {
                let level = if off { Level::Error } else { Level::Info };
                self.notice(&crate::output::clock_text(offset_ms, authors, off), level);
                self.clock_off = off.then_some(offset_ms);
            }
            Event::Dm(d) => self.on_dm(d),
            Event::File(e) => self.on_file_event(e),
            Event::Room(e) => self.on_room_event(e),
            Event::DmStatus { id, to, state } => {
                if let Some(i) = self.room_index(&conversation_name(&to)) {
                    let geo = self.geometry(&self.rooms[i]);
                    self.rooms[i].set_state(&id, state, geo);
                }
            }
            Event::TrackerChanged {
                tracker,
                epoch,
                is_self,
            } => self.on_tracker_changed(tracker, epoch, is_self),
            Event::Lagged { missed } => {
                // The node dropped updates while this interface was not reading: everything is
                // in the database, so each room's window restarts from its newest page (older
                // pages load contiguously from there) and the peer list is asked for again.
                for r in &self.rooms {
                    self.actions.push(Action::History {
                        room: r.name.clone(),
                        before: None,
                        limit: PAGE,
                        purpose: HistoryFor::Resync { missed },
                    });
                }
                self.actions.push(Action::Peers {
                    purpose: PeersFor::Refresh,
                });
                // A DM from someone new may have been among the missed updates, or a new tracker.
                self.actions.push(Action::Conversations { announce: false });
                self.actions.push(Action::Tracker { announce: false });
                // An invite, or a membership change, may have been among them too.
                self.actions.push(Action::Rooms);
            }
        }
    }

    fn on_message(&mut self, m: MessageView) {
        self.book
            .learn(m.author, m.fingerprint, &m.nick, m.timestamp_ms);
        let Some(i) = self.room_index(&m.room) else {
            // A message still in flight for a room just left.
            return;
        };
        let ts = m.timestamp_ms;
        let msg = Msg::from_view(m, &self.me.nick);
        let (own, mention, synced) = (msg.own, msg.mention, msg.synced);
        let label = self.label_width(&msg);
        let geo = self.geometry(&self.rooms[i]);
        let shown = i == self.current;
        let now = self.clock.now_ms();
        self.seq += 1;
        let seq = self.seq;
        let room = &mut self.rooms[i];
        let below = match room.insert(Entry::message(msg, ts), label, geo) {
            Inserted::Duplicate => return,
            Inserted::Added { below } => below,
            Inserted::Beyond => true,
            Inserted::Earlier => false,
        };
        if !own {
            if !shown {
                room.unread = room.unread.saturating_add(1);
                if mention {
                    room.mentions = room.mentions.saturating_add(1);
                }
            } else if room.scroll > 0 && below {
                room.new_below = room.new_below.saturating_add(1);
            }
        }
        if synced {
            // Usually older than what is on screen: say that it came, once for a burst.
            room.count_synced(now, seq, geo);
        }
        room.trim();
    }

    /// A label for `peer` while no nick of theirs is known: the nick book's, else the short
    /// fingerprint (read from the peer id), else the peer id's end.
    fn nick_of(&self, peer: &PeerId) -> String {
        if let Some(k) = self.book.get(peer) {
            return k.nick.clone();
        }
        match people::fingerprint_of(peer) {
            Some(fp) => fp.short(),
            None => {
                let s = peer.to_string();
                s[s.len().saturating_sub(8)..].to_owned()
            }
        }
    }

    // ---- answers from the node ----

    pub fn on_reply(&mut self, reply: Reply) {
        match reply {
            r @ (Reply::FileOffered(_)
            | Reply::FileAccepted(_)
            | Reply::FileCancelled { .. }
            | Reply::Files(_)) => self.on_file_reply(r),
            Reply::Sent { room, text, result } => match result {
                Ok(sent) => {
                    if !sent.relayed && !self.unrelayed_said {
                        self.unrelayed_said = true;
                        self.notice(
                            "no peer is connected: your messages are stored here and reach \
                             others only by a later history sync",
                            Level::Info,
                        );
                    }
                }
                Err(e) => {
                    self.notice(&format!("not sent to #{room}: {e}"), Level::Error);
                    if self.input.is_empty() {
                        self.input.set(&text);
                    }
                }
            },
            Reply::Joined {
                room,
                private,
                result,
            } => match result {
                Ok(_) => {
                    let i = self.open_room(&room);
                    if private.is_some() {
                        self.rooms[i].private = private;
                    }
                    self.switch_to(i);
                    let title = self.title(&self.rooms[i]);
                    self.notice(&format!("joined {title}"), Level::Info);
                }
                Err(e) => self.notice(&format!("cannot join #{room}: {e}"), Level::Error),
            },
            r @ (Reply::Created { .. }
            | Reply::Invited { .. }
            | Reply::Removed { .. }
            | Reply::Members { .. }
            | Reply::Rooms(_)) => self.on_private_reply(r),
            Reply::Left { room, result } => match result {
                Ok(true) => {
                    if let Some(i) = self.room_index(&room) {
                        self.rooms.remove(i);
                        if self.current > i || self.current >= self.rooms.len() {
                            self.current = self.current.saturating_sub(1);
                        }
                        if let Some(r) = self.rooms.get_mut(self.current) {
                            r.unread = 0;
                            r.mentions = 0;
                        }
                    }
                    self.notice(&format!("left #{room}"), Level::Info);
                    if self.rooms.is_empty() {
                        self.notice("you are in no room: /join ROOM", Level::Info);
                    }
                }
                Ok(false) => self.notice(&format!("you are not in #{room}"), Level::Error),
                Err(e) => self.notice(&format!("cannot leave #{room}: {e}"), Level::Error),
            },
            Reply::Nick { nick, result } => match result {
                Ok(()) => {
                    let nick = wrap::sanitize_name(&nick);
                    self.me.nick = nick.clone();
                    let now = self.clock.now_ms();
                    self.book
                        .learn(self.me.peer_id, self.me.fingerprint, &nick, now);
                    self.notice(&format!("you are now {nick}"), Level::Info);
                }
                Err(e) => self.notice(&format!("nick unchanged: {e}"), Level::Error),
            },
            Reply::Connected { addr, result } => match result {
                Ok(peer) => {
                    let who = describe(&self.book, &peer);
                    self.notice(&format!("connected to {who} at {addr}"), Level::Info);
                }
                Err(e) => self.notice(&e, Level::Error),
            },
            Reply::Peers { purpose, result } => match result {
                Ok(peers) => self.show_peers(purpose, peers),
                Err(e) => self.notice(&format!("peer list unavailable: {e}"), Level::Error),
            },
            Reply::History {
                room,
                limit,
                purpose,
                result,
                states,
            } => self.on_history(&room, limit, purpose, result, states),
            Reply::DmSent {
                to,
                text,
                nick,
                result,
            } => match result {
                Ok(sent) => {
                    if let Some(n) = &nick {
                        if let Some(fp) = people::fingerprint_of(&sent.to) {
                            let now = self.clock.now_ms();
                            self.book.learn(sent.to, fp, n, now);
                        }
                    }
                    let now = self.clock.now_ms();
                    let i = self.conversation(sent.to, nick.as_deref(), now);
                    if i != self.current {
                        self.switch_to(i);
                    }
                }
                Err(refusal) => {
                    match refusal {
                        Refusal::Ambiguous { nick, candidates } => {
                            self.refuse_ambiguous(&nick, &candidates)
                        }
                        Refusal::Other(e) => {
                            // Typed in a conversation, `to` is a peer id: name it as shown.
                            let whom = self
                                .rooms
                                .iter()
                                .find(|r| r.dm.as_ref().is_some_and(|d| d.peer.to_string() == to))
                                .map_or_else(|| to.clone(), |r| self.title(r));
                            self.notice(
                                &format!("direct message to {whom} not sent: {e}"),
                                Level::Error,
                            );
                        }
                    }
                    self.give_back_dm(&to, text);
                }
            },
            Reply::OpenDm { who, result } => match result {
                Ok(found) => {
                    let mine = self.me.peer_id;
                    match found.as_slice() {
                        [] => self.notice(&format!("nobody known as {who}"), Level::Error),
                        [p] if p.peer_id == mine => {
                            self.notice("that is you: a DM goes to someone else", Level::Error)
                        }
                        [p] => {
                            let (peer, nick) = (p.peer_id, p.nick.clone());
                            let now = self.clock.now_ms();
                            let i = self.conversation(peer, Some(&nick), now);
                            self.switch_to(i);
                        }
                        many => {
                            let fps: Vec<String> =
                                many.iter().map(|p| p.fingerprint.to_string()).collect();
                            self.refuse_ambiguous(&who, &fps);
                        }
                    }
                }
                Err(e) => self.notice(&e, Level::Error),
            },
            Reply::Conversations { announce, result } => match result {
                Ok(list) => {
                    if announce {
                        self.announce_conversations(&list);
                    }
                    let now = self.clock.now_ms();
                    for c in list {
                        if c.peer == self.me.peer_id {
                            continue;
                        }
                        let open = self.room_index(&conversation_name(&c.peer)).is_some();
                        if !open && self.conversation_count() >= MAX_CONVERSATIONS {
                            // The newest come first: the rest wait for `/msg`.
                            break;
                        }
                        if !c.nick.is_empty() {
                            self.book
                                .learn(c.peer, c.fingerprint, &c.nick, c.last_ms.min(now));
                        }
                        let nick = Some(c.nick.as_str()).filter(|n| !n.is_empty());
                        self.conversation(c.peer, nick, c.last_ms);
                    }
                }
                Err(e) => self.notice(&format!("conversations unavailable: {e}"), Level::Error),
            },
            Reply::Routes(result) => match result {
                Ok(mut routes) => {
                    routes.sort_by(|a, b| {
                        a.hops
                            .cmp(&b.hops)
                            .then_with(|| a.nick.cmp(&b.nick))
                            .then_with(|| a.dest.to_bytes().cmp(&b.dest.to_bytes()))
                    });
                    self.open(Overlay::Routes(routes));
                }
                Err(e) => self.notice(&format!("routes unavailable: {e}"), Level::Error),
            },
            Reply::Whois {
                query,
                peers,
                profiles,
            } => self.show_whois(query, peers, profiles),
            Reply::Who { peers, tracker } => self.show_who(peers, tracker),
            Reply::Tracker { announce, result } => self.on_tracker_reply(announce, result),
        }
    }

    /// The index of `room` in the list, added (after the other rooms, before the conversations,
    /// its first page asked for) if it was not there.
    pub(super) fn open_room(&mut self, room: &str) -> usize {
        if let Some(i) = self.room_index(room) {
            return i;
        }
        let i = self
            .rooms
            .iter()
            .position(|r| r.dm.is_some())
            .unwrap_or(self.rooms.len());
        self.rooms.insert(i, Room::new(room));
        if self.current >= i && self.rooms.len() > 1 {
            self.current += 1;
        }
        self.load_first_page(i);
        i
    }

    fn on_history(
        &mut self,
        room: &str,
        limit: usize,
        purpose: HistoryFor,
        result: Result<Vec<MessageView>, String>,
        states: Vec<(MessageId, DmState)>,
    ) {
        let Some(i) = self.room_index(room) else {
            return;
        };
        let msgs = match result {
            Ok(msgs) => msgs,
            Err(e) => {
                let r = &mut self.rooms[i];
                r.older = super::room::Older::Unknown;
                r.reloading = false;
                let title = self.title(&self.rooms[i]);
                self.notice(
                    &format!("history of {title} unavailable: {e}"),
                    Level::Error,
                );
                return;
            }
        };
        let my_nick = self.me.nick.clone();
        let conversation = self.rooms[i].dm.is_some();
        let states: HashMap<MessageId, DmState> = states.into_iter().collect();
        let mut page = Vec::with_capacity(msgs.len());
        for m in msgs {
            self.book
                .learn(m.author, m.fingerprint, &m.nick, m.timestamp_ms);
            let ts = m.timestamp_ms;
            let mut msg = Msg::from_view(m, &my_nick);
            if conversation {
                // Every DM is for the user: none is singled out as naming them.
                msg.mention = false;
            }
            if let Some(state) = states.get(&msg.id) {
                msg.set_state(*state);
            }
            page.push((msg, ts));
        }
        let geo = self.geometry(&self.rooms[i]);
        let book = &self.book;
        let label =
            |m: &Msg| wrap::width(&m.nick) + if book.collides(&m.nick) { FP_COLS } else { 0 };
        let r = &mut self.rooms[i];
        match purpose {
            HistoryFor::Initial | HistoryFor::Older { .. } => {
                let added = r.add_history(page, limit, label, geo);
                if purpose == (HistoryFor::Older { announce: true }) {
                    let more = if added == 0 {
                        "no older messages".to_owned()
                    } else {
                        format!("loaded {added} older messages (PgUp to read)")
                    };
                    self.notice(&more, Level::Info);
                }
            }
            HistoryFor::Newest => r.reset_newest(page, limit, label, geo),
            HistoryFor::Resync { missed } => {
                r.reset_newest(page, limit, label, geo);
                if i == self.current {
                    self.notice(
                        &format!("{missed} updates came while the screen was busy; reloaded"),
                        Level::Info,
                    );
                }
            }
        }
        // A short first page may not fill the screen: the next may be wanted at once.
        if i == self.current {
            self.settle();
        }
    }

    fn show_peers(&mut self, purpose: PeersFor, peers: Vec<PeerInfo>) {
        match purpose {
            PeersFor::Refresh => {
                self.peers = peers.iter().filter(|p| p.chat).map(|p| p.peer_id).collect();
            }
            PeersFor::Panel => {
                let rows = peers
                    .into_iter()
                    .map(|p| PeerRow {
                        fingerprint: self
                            .book
                            .get(&p.peer_id)
                            .map(|k| k.fingerprint)
                            .or_else(|| people::fingerprint_of(&p.peer_id)),
                        nick: self
                            .book
                            .get(&p.peer_id)
                            .map(|k| k.nick.clone())
                            .or_else(|| p.nick.as_deref().map(wrap::sanitize_name)),
                        peer_id: p.peer_id,
                        addrs: p.addrs,
                        chat: p.chat,
                    })
                    .collect();
                self.open(Overlay::Peers(rows));
            }
        }
    }

    /// The event loop could not queue `action` (too many waiting): undo what waits for it.
    pub fn refused(&mut self, action: Action) {
        match action {
            Action::Send { text, .. } => {
                if self.input.is_empty() {
                    self.input.set(&text);
                }
                self.notice("busy: not sent, press Enter again", Level::Error);
            }
            Action::Dm { to, text } => {
                self.give_back_dm(&to, text);
                self.notice("busy: not sent, press Enter again", Level::Error);
            }
            Action::History { room, .. } => {
                if let Some(i) = self.room_index(&room) {
                    self.rooms[i].older = super::room::Older::Unknown;
                    self.rooms[i].reloading = false;
                }
            }
            _ => self.notice("busy: not done, try again", Level::Error),
        }
    }

    // ---- terminal input ----

    /// After a frame: if the pane changed size (a resize), keeps the view inside the window.
    /// True if that changed something worth drawing again.
    pub fn after_frame(&mut self) -> bool {
        let pane = self.pane.get();
        if pane == self.settled_pane {
            return false;
        }
        self.settled_pane = pane;
        let before = self.room().scroll;
        self.settle();
        self.room().scroll != before
    }

    /// Keeps the shown room's view valid (after a resize, a page, a switch).
    pub fn settle(&mut self) {
        let geo = self.geometry(self.room());
        let need = self.room_mut().settle(geo);
        self.on_need(need);
    }

    fn on_need(&mut self, need: Need) {
        let room = self.room().name.clone();
        if room.is_empty() {
            return;
        }
        match need {
            Need::Nothing => {}
            Need::Older(ts, id) => self.actions.push(Action::History {
                room,
                before: Some((ts, id)),
                limit: PAGE,
                purpose: HistoryFor::Older { announce: false },
            }),
            Need::Newest => self.actions.push(Action::History {
                room,
                before: None,
                limit: PAGE,
                purpose: HistoryFor::Newest,
            }),
        }
    }
}

mod actions;
mod commands;
mod dm;
pub mod files;
mod keys;
mod private;
#[cfg(test)]
mod tests;
pub mod tracker;
