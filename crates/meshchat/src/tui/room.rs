//! One room as the interface holds it: a bounded window of its messages in display order, with
//! the notices shown among them, unread counts and the scroll position.
//!
//! The window holds the newest [`LIVE_CAP`] entries while the user follows the conversation. When
//! they scroll up, older pages are loaded from the database ([`PAGE`] at a time) and the window may
//! grow to [`HARD_CAP`]; beyond that the newest entries are dropped and the room is *detached*: new
//! messages are counted but not kept (they are in the database), and reaching the bottom again
//! reloads the newest page.
//!
//! The window is always a contiguous stretch of the room's history, so that the next older page
//! can be asked for as "the page before the oldest message shown". A message that history sync
//! brings in late sorts where its author time puts it; when that is before the start of a window
//! that does not reach the room's first message, it is not kept either ([`Inserted::Earlier`]):
//! the page that covers its place will bring it when the user scrolls there.

use std::cell::Cell;
use std::collections::{HashSet, VecDeque};

use meshchat_core::{Fingerprint, MessageId};
use meshchat_node::{DmState, DmView, MessageView, PeerId, PrivateKind};

use super::wrap;

/// Entries kept per room while following the newest messages.
pub const LIVE_CAP: usize = 5_000;
/// Entries kept per room at most, while reading older history.
pub const HARD_CAP: usize = 20_000;
/// Messages loaded per database page.
pub const PAGE: usize = 500;
/// Widest nick column, in cells.
pub const MAX_NICK_COL: usize = 16;
/// Cells before the nick column: `HH:MM `.
pub const TIME_COLS: usize = 6;
/// Cells between the nick column and the text: ` │ `.
pub const SEPARATOR_COLS: usize = 3;
pub use crate::output::LOCK;
/// Cells a short fingerprint adds to a nick that several keys use: ` 1a2b3c4d`.
pub const FP_COLS: usize = 9;

/// Where an entry sorts: author timestamp, then message id; notices (which have no id) after the
/// messages of the same millisecond, in the order they were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub ts_ms: u64,
    id: [u8; 32],
    seq: u64,
}

impl Key {
    pub fn message(ts_ms: u64, id: &MessageId) -> Self {
        Self {
            ts_ms,
            id: id.0,
            seq: 0,
        }
    }

    pub fn notice(ts_ms: u64, seq: u64) -> Self {
        Self {
            ts_ms,
            id: [0xff; 32],
            seq,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Joins, peers coming and going, confirmations: shown dimmed.
    Info,
    /// Something failed: shown in red.
    Error,
}

/// A room message, already made safe to show.
#[derive(Debug, Clone)]
pub struct Msg {
    pub id: MessageId,
    pub fingerprint: Fingerprint,
    /// Without control characters or newlines.
    pub nick: String,
    /// Without control characters; newlines kept.
    pub text: String,
    pub own: bool,
    /// Names the user's nick.
    pub mention: bool,
    /// Arrived by history sync (sent while this node was away): marked in the view.
    pub synced: bool,
    /// Our own direct messages: where it is, shown after the text (`text` ends with the mark;
    /// the message itself is `text[..base]`).
    pub state: Option<DmState>,
    base: usize,
}

impl Msg {
    pub fn from_view(m: MessageView, my_nick: &str) -> Self {
        let mention = !m.own && mentions(&m.text, my_nick);
        let text = wrap::sanitize(&m.text, true);
        Self {
            id: m.id,
            fingerprint: m.fingerprint,
            nick: wrap::sanitize_name(&m.nick),
            base: text.len(),
            text,
            own: m.own,
            mention,
            synced: m.synced,
            state: None,
        }
    }

    /// A direct message (received, or our own with its state).
    pub fn from_dm(d: &DmView) -> Self {
        let text = wrap::sanitize(&d.text, true);
        let mut m = Self {
            id: d.id,
            fingerprint: d.fingerprint,
            nick: wrap::sanitize_name(&d.nick),
            base: text.len(),
            text,
            own: d.own,
            mention: false,
            synced: false,
            state: None,
        };
        if let Some(s) = d.state {
            m.set_state(s);
        }
        m
    }

    /// The message without the state mark.
    pub fn body(&self) -> &str {
        &self.text[..self.base]
    }

    /// Where the state mark starts in `text`, if there is one.
    pub fn mark_start(&self) -> Option<usize> {
        self.state.map(|_| self.base)
    }

    /// Shows `state` after the text.
    pub fn set_state(&mut self, state: DmState) {
        self.text.truncate(self.base);
        self.text.push_str(&format!("  {}", state_mark(state)));
        self.state = Some(state);
    }
}

/// How a DM's state is shown after it.
pub fn state_mark(state: DmState) -> &'static str {
    match state {
        DmState::Queued => "· queued",
        DmState::Sent => "· sent",
        DmState::Delivered => "· delivered ✓",
        DmState::Failed => "· failed",
    }
}

/// The other person of a direct-message conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmPeer {
    pub peer: PeerId,
    /// Sanitized: the nick their profile or latest DM gave, or their short fingerprint while none
    /// is known.
    pub nick: String,
    /// Read from the peer id (shown beside the nick when nicks look alike).
    pub fingerprint: Option<Fingerprint>,
    /// The newest DM of the conversation known here (which conversation to close first when too
    /// many are open).
    pub last_ms: u64,
}

/// The room name a conversation with `peer` is kept under: no room name has an `@`.
pub fn conversation_name(peer: &PeerId) -> String {
    format!("@{peer}")
}

/// True when `text` contains `nick` as a word (case-insensitive).
pub fn mentions(text: &str, nick: &str) -> bool {
    if nick.is_empty() {
        return false;
    }
    let (text, nick) = (text.to_lowercase(), nick.to_lowercase());
    let is_word = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != '-');
    text.match_indices(&nick).any(|(i, _)| {
        is_word(text[..i].chars().next_back()) && is_word(text[i + nick.len()..].chars().next())
    })
}

#[derive(Debug, Clone)]
pub enum Body {
    Message(Msg),
    Notice { text: String, level: Level },
}

#[derive(Debug)]
pub struct Entry {
    pub key: Key,
    pub body: Body,
    /// Rows at the geometry of the last measurement: (geometry key, rows).
    rows: Cell<(u32, u32)>,
}

impl Entry {
    pub fn message(m: Msg, ts_ms: u64) -> Self {
        Self {
            key: Key::message(ts_ms, &m.id),
            body: Body::Message(m),
            rows: Cell::new((0, 0)),
        }
    }

    pub fn notice(text: &str, level: Level, ts_ms: u64, seq: u64) -> Self {
        Self {
            key: Key::notice(ts_ms, seq),
            body: Body::Notice {
                text: wrap::sanitize(text, true),
                level,
            },
            rows: Cell::new((0, 0)),
        }
    }

    /// Changes a notice's text (a message's stays what it is).
    fn set_notice_text(&mut self, new: &str) {
        if let Body::Notice { text, .. } = &mut self.body {
            *text = wrap::sanitize(new, true);
            self.rows.set((0, 0));
        }
    }

    pub fn text(&self) -> &str {
        match &self.body {
            Body::Message(m) => &m.text,
            Body::Notice { text, .. } => text,
        }
    }

    /// Rows this entry takes at `geo`, measured once per geometry.
    pub fn rows(&self, geo: Geometry) -> usize {
        let (key, rows) = self.rows.get();
        if key == geo.key() && key != 0 {
            return rows as usize;
        }
        let rows = wrap::row_count(self.text(), geo.text_cols());
        self.rows.set((geo.key(), rows as u32));
        rows
    }
}

/// The message pane's size and nick column, which decide how entries wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: u16,
    pub height: u16,
    pub nick_col: u16,
}

impl Geometry {
    pub fn text_cols(&self) -> usize {
        (self.width as usize)
            .saturating_sub(TIME_COLS + self.nick_col as usize + SEPARATOR_COLS)
            .max(1)
    }

    fn key(&self) -> u32 {
        (u32::from(self.width) << 16) | u32::from(self.nick_col) | 0x8000_0000
    }
}

/// Whether older messages may exist in the database below the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Older {
    /// Maybe: ask when the user scrolls near the top.
    Unknown,
    /// A request is out.
    Loading,
    /// The window starts at the room's first message.
    Exhausted,
}

/// What [`Room::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Kept; `below` when it landed below a scrolled-up view (the view stayed where it was).
    Added { below: bool },
    /// The message is shown already.
    Duplicate,
    /// Newer than a detached window: not kept, but new to the user.
    Beyond,
    /// Older than the start of a window that does not reach the room's first message (a message
    /// that came late, by history sync): not kept, but new to the user; it comes with the older
    /// pages.
    Earlier,
}

/// How long the notice counting messages that arrived by history sync goes on counting: later
/// ones start a new notice.
pub const SYNC_NOTICE_MS: u64 = 30_000;

/// The notice that counts messages that arrived by history sync in a room.
#[derive(Debug, Clone, Copy)]
struct SyncNotice {
    key: Key,
    count: u64,
    updated_ms: u64,
}

/// The text of the notice for `n` messages that arrived by history sync.
pub fn sync_notice_text(n: u64) -> String {
    let what = if n == 1 {
        "1 earlier message".to_owned()
    } else {
        format!("{n} earlier messages")
    };
    format!("{what} arrived while you were away (marked {SYNCED_MARK})")
}

/// Drawn in place of the separator on the rows of a message that arrived by history sync.
pub const SYNCED_MARK: &str = "┆";

/// What the room needs after a scroll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Nothing,
    /// Load the page before this message.
    Older(u64, MessageId),
    /// Replace the detached window with the newest page.
    Newest,
}

#[derive(Debug)]
pub struct Room {
    /// The room's name, or for a conversation [`conversation_name`].
    pub name: String,
    /// Set for a direct-message conversation.
    pub dm: Option<DmPeer>,
    /// Set for a private room (PROTOCOL §10): shown with [`LOCK`].
    pub private: Option<PrivateKind>,
    /// A private room's member count (a passphrase room's: the people heard in it), when known.
    pub members: Option<u64>,
    /// We were removed from this invite room: what came before stays readable, nothing after.
    pub removed: bool,
    entries: VecDeque<Entry>,
    /// Ids of the messages in `entries`, so a message seen twice (live and in a history page) is
    /// shown once.
    ids: HashSet<MessageId>,
    /// Messages that arrived while another room was shown.
    pub unread: u32,
    /// Of those, how many name the user.
    pub mentions: u32,
    /// Rows between the bottom of the window and the bottom of the view; 0 follows new messages.
    pub scroll: usize,
    /// Messages that arrived below the view while scrolled up.
    pub new_below: u32,
    pub older: Older,
    /// The newest messages were dropped from the window (see the module docs).
    pub detached: bool,
    /// The first history page arrived.
    pub loaded: bool,
    /// A reload of the newest page is out.
    pub reloading: bool,
    /// Widest nick label seen, in cells.
    widest_label: usize,
    /// The notice counting messages that arrived by history sync, if one is counting.
    sync_notice: Option<SyncNotice>,
}

impl Room {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            dm: None,
            private: None,
            members: None,
            removed: false,
            entries: VecDeque::new(),
            ids: HashSet::new(),
            unread: 0,
            mentions: 0,
            scroll: 0,
            new_below: 0,
            older: Older::Unknown,
            detached: false,
            loaded: false,
            reloading: false,
            widest_label: 0,
            sync_notice: None,
        }
    }

    /// A direct-message conversation with `peer` (`fingerprint` read from its peer id).
    pub fn conversation(
        peer: PeerId,
        nick: &str,
        fingerprint: Option<Fingerprint>,
        last_ms: u64,
    ) -> Self {
        let mut r = Self::new(conversation_name(&peer));
        r.dm = Some(DmPeer {
            peer,
            nick: wrap::sanitize_name(nick),
            fingerprint,
            last_ms,
        });
        r
    }

    /// How the room is named on screen: `#room`, or `@nick` for a conversation.
    pub fn shown(&self) -> String {
        match &self.dm {
            Some(d) => format!("@{}", d.nick),
            None if self.private.is_some() => format!("{LOCK}#{}", self.name),
            None => format!("#{}", self.name),
        }
    }

    /// Shows `state` on our DM `id`, if it is in the window (true if it was). A view scrolled
    /// above it stays on the same rows.
    pub fn set_state(&mut self, id: &MessageId, state: DmState, geo: Geometry) -> bool {
        if !self.ids.contains(id) {
            return false;
        }
        // Own DMs being re-marked are nearly always among the newest: look from the end.
        let Some(idx) = self
            .entries
            .iter()
            .rposition(|e| matches!(&e.body, Body::Message(m) if m.id == *id))
        else {
            return false;
        };
        let below = self.scroll > 0 && self.rows_after(idx + 1, geo, self.scroll) < self.scroll;
        let entry = &mut self.entries[idx];
        let before = entry.rows(geo);
        if let Body::Message(m) = &mut entry.body {
            m.set_state(state);
        }
        entry.rows.set((0, 0));
        let after = entry.rows(geo);
        if below {
            self.scroll = (self.scroll + after).saturating_sub(before);
        }
        true
    }

    pub fn entries(&self) -> &VecDeque<Entry> {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The nick column for a pane `width` cells wide.
    pub fn nick_col(&self, width: u16) -> u16 {
        let fit = (width as usize / 4).max(2);
        self.widest_label.clamp(2, MAX_NICK_COL).min(fit) as u16
    }

    pub fn geometry(&self, width: u16, height: u16) -> Geometry {
        Geometry {
            width,
            height,
            nick_col: self.nick_col(width),
        }
    }

    /// Inserts an entry where it sorts. `label_width` is the cells its nick label needs.
    pub fn insert(&mut self, entry: Entry, label_width: usize, geo: Geometry) -> Inserted {
        self.place(entry, label_width, geo, false)
    }

    /// [`Room::insert`]; `paged` for a message of a history page, which was asked for by its
    /// place and so belongs in the window even before its start.
    fn place(&mut self, entry: Entry, label_width: usize, geo: Geometry, paged: bool) -> Inserted {
        if let Body::Message(m) = &entry.body {
            if self.ids.contains(&m.id) {
                return Inserted::Duplicate;
            }
            if self.detached && self.entries.back().is_some_and(|b| entry.key > b.key) {
                return Inserted::Beyond;
            }
            if !paged
                && self.older != Older::Exhausted
                && self.oldest_key().is_some_and(|oldest| entry.key < oldest)
            {
                return Inserted::Earlier;
            }
        }
        let idx = self.entries.partition_point(|e| e.key < entry.key);
        let below = self.scroll > 0 && self.rows_after(idx, geo, self.scroll + 1) <= self.scroll;
        if below {
            // It lands below the view: keep the view where it is.
            self.scroll += entry.rows(geo);
        }
        if let Body::Message(m) = &entry.body {
            self.ids.insert(m.id);
            self.widest_label = self.widest_label.max(label_width);
        }
        self.entries.insert(idx, entry);
        Inserted::Added { below }
    }

    /// Counts a message that arrived by history sync in this room's notice: the notice made in
    /// the last [`SYNC_NOTICE_MS`] is updated, or a new one is added at `now_ms` (`seq` orders
    /// notices of the same millisecond).
    pub fn count_synced(&mut self, now_ms: u64, seq: u64, geo: Geometry) {
        if let Some(n) = self.sync_notice.as_mut() {
            let idx = self.entries.partition_point(|e| e.key < n.key);
            let found = self.entries.get(idx).is_some_and(|e| e.key == n.key);
            if found && now_ms.saturating_sub(n.updated_ms) < SYNC_NOTICE_MS {
                n.count += 1;
                n.updated_ms = now_ms;
                let text = sync_notice_text(n.count);
                let below =
                    self.scroll > 0 && self.rows_after(idx + 1, geo, self.scroll) < self.scroll;
                let entry = &mut self.entries[idx];
                let before = entry.rows(geo);
                entry.set_notice_text(&text);
                let after = entry.rows(geo);
                if below {
                    // Keep the view on the same rows.
                    self.scroll = (self.scroll + after).saturating_sub(before);
                }
                return;
            }
        }
        let entry = Entry::notice(&sync_notice_text(1), Level::Info, now_ms, seq);
        let key = entry.key;
        self.insert(entry, 0, geo);
        self.sync_notice = Some(SyncNotice {
            key,
            count: 1,
            updated_ms: now_ms,
        });
    }

    /// The key of the oldest message in the window.
    fn oldest_key(&self) -> Option<Key> {
        self.entries
            .iter()
            .find(|e| matches!(e.body, Body::Message(_)))
            .map(|e| e.key)
    }

    /// Rows of the entries after index `idx`, counted up to `limit` at most.
    fn rows_after(&self, idx: usize, geo: Geometry, limit: usize) -> usize {
        let mut rows = 0;
        for e in self.entries.range(idx..).rev() {
            if rows >= limit {
                break;
            }
            rows += e.rows(geo);
        }
        rows
    }

    /// Drops the oldest entries beyond the cap (the database still has the messages).
    pub fn trim(&mut self) {
        let cap = if self.scroll == 0 { LIVE_CAP } else { HARD_CAP };
        while self.entries.len() > cap {
            if let Some(e) = self.entries.pop_front() {
                if let Body::Message(m) = e.body {
                    self.ids.remove(&m.id);
                    self.older = Older::Unknown;
                }
            }
        }
    }

    /// Adds a page of history (oldest first) that answered a request for `limit` messages.
    pub fn add_history(
        &mut self,
        msgs: Vec<(Msg, u64)>,
        limit: usize,
        label: impl Fn(&Msg) -> usize,
        geo: Geometry,
    ) -> usize {
        let exhausted = msgs.len() < limit;
        // A full page reaches back to its first message, no further: anything older in the
        // window (a message that came late before the first page did) would leave a hole.
        let start = match msgs.first() {
            Some((m, ts)) if !exhausted => Some(Key::message(*ts, &m.id)),
            _ => None,
        };
        let mut added = 0;
        for (m, ts) in msgs.into_iter().rev() {
            let w = label(&m);
            if matches!(
                self.place(Entry::message(m, ts), w, geo, true),
                Inserted::Added { .. }
            ) {
                added += 1;
            }
        }
        if let Some(start) = start {
            // Entries sort by key: those before the page's start are a prefix. Notices stay.
            let before = self.entries.partition_point(|e| e.key < start);
            let ids = &mut self.ids;
            let notices: Vec<Entry> = self
                .entries
                .drain(..before)
                .filter(|e| match &e.body {
                    Body::Message(m) => {
                        ids.remove(&m.id);
                        false
                    }
                    Body::Notice { .. } => true,
                })
                .collect();
            for e in notices.into_iter().rev() {
                self.entries.push_front(e);
            }
        }
        self.older = if exhausted {
            Older::Exhausted
        } else {
            Older::Unknown
        };
        self.loaded = true;
        // Reading far back: drop the newest, which lie below the view.
        while self.entries.len() > HARD_CAP {
            if let Some(e) = self.entries.pop_back() {
                self.scroll = self.scroll.saturating_sub(e.rows(geo));
                if let Body::Message(m) = e.body {
                    self.ids.remove(&m.id);
                }
                self.detached = true;
            }
        }
        added
    }

    /// Replaces the window with the newest page, following new messages again.
    pub fn reset_newest(
        &mut self,
        msgs: Vec<(Msg, u64)>,
        limit: usize,
        label: impl Fn(&Msg) -> usize,
        geo: Geometry,
    ) {
        self.entries.clear();
        self.ids.clear();
        self.detached = false;
        self.reloading = false;
        self.scroll = 0;
        self.new_below = 0;
        self.add_history(msgs, limit, label, geo);
    }

    /// The oldest message in the window, where the next older page starts.
    pub fn oldest_message(&self) -> Option<(u64, MessageId)> {
        self.entries.iter().find_map(|e| match &e.body {
            Body::Message(m) => Some((e.key.ts_ms, m.id)),
            Body::Notice { .. } => None,
        })
    }

    /// Rows of the newest entries, counted until `limit` is reached (or all of them).
    pub fn rows_upto(&self, geo: Geometry, limit: usize) -> usize {
        self.rows_after(0, geo, limit)
    }

    /// Moves the view `delta` rows (positive: back in time), keeps it inside the window, and says
    /// what should be loaded.
    pub fn scroll_by(&mut self, delta: isize, geo: Geometry) -> Need {
        self.scroll = if delta < 0 {
            self.scroll.saturating_sub(delta.unsigned_abs())
        } else {
            self.scroll.saturating_add(delta as usize)
        };
        self.settle(geo)
    }

    /// Keeps the scroll position inside the window and says what should be loaded.
    pub fn settle(&mut self, geo: Geometry) -> Need {
        let height = geo.height as usize;
        let prefetch = height * 2;
        let want = self.scroll.saturating_add(height).saturating_add(prefetch);
        let total = self.rows_upto(geo, want);
        if total < self.scroll + height {
            self.scroll = total.saturating_sub(height);
        }
        if self.scroll == 0 {
            self.new_below = 0;
            if self.detached && !self.reloading {
                self.reloading = true;
                return Need::Newest;
            }
        }
        let above = total.saturating_sub(self.scroll + height);
        if above < prefetch && self.loaded && self.older == Older::Unknown {
            if let Some((ts, id)) = self.oldest_message() {
                self.older = Older::Loading;
                return Need::Older(ts, id);
            }
            self.older = Older::Exhausted;
        }
        Need::Nothing
    }

    /// Which entries the view shows, for a pane of `geo`.
    pub fn visible(&self, geo: Geometry) -> View {
        let height = geo.height as usize;
        let top = self.scroll + height;
        let mut rows = 0;
        for (i, e) in self.entries.iter().enumerate().rev() {
            rows += e.rows(geo);
            if rows >= top {
                return View {
                    first: i,
                    skip: rows - top,
                    pad: 0,
                };
            }
        }
        // Fewer rows than the pane: they sit at the bottom, as in every chat.
        View {
            first: 0,
            skip: 0,
            pad: top.saturating_sub(rows).min(height),
        }
    }
}

/// What [`Room::visible`] found: draw from entry `first`, without its first `skip` rows, after
/// `pad` empty rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub first: usize,
    pub skip: usize,
    pub pad: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> (meshchat_node::PeerId, Fingerprint) {
        let key = meshchat_core::Keypair::from_secret_bytes(&[7; 32]);
        (
            meshchat_node::peer_id_of(&key.public()),
            key.public().fingerprint(),
        )
    }

    pub fn msg(n: u64, text: &str) -> (Msg, u64) {
        let (_, fingerprint) = peer();
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&n.to_be_bytes());
        (
            Msg {
                id: MessageId(id),
                fingerprint,
                nick: "bob".into(),
                text: text.into(),
                own: false,
                mention: false,
                synced: false,
                state: None,
                base: text.len(),
            },
            n * 1000,
        )
    }

    const GEO: Geometry = Geometry {
        width: 40,
        height: 5,
        nick_col: 4,
    };

    #[test]
    fn late_messages_sort_and_duplicates_are_dropped() {
        let mut r = Room::new("lobby");
        for n in [1, 3, 2] {
            let (m, ts) = msg(n, "x");
            assert_eq!(
                r.insert(Entry::message(m, ts), 3, GEO),
                Inserted::Added { below: false }
            );
        }
        let (m, ts) = msg(2, "x");
        assert_eq!(r.insert(Entry::message(m, ts), 3, GEO), Inserted::Duplicate);
        let ts: Vec<u64> = r.entries().iter().map(|e| e.key.ts_ms).collect();
        assert_eq!(ts, [1000, 2000, 3000]);
        // A notice at the same millisecond sorts after the message.
        r.insert(Entry::notice("hi", Level::Info, 2000, 1), 0, GEO);
        assert!(matches!(r.entries()[2].body, Body::Notice { .. }));
    }

    #[test]
    fn scrolling_is_clamped_and_asks_for_older_pages() {
        let mut r = Room::new("lobby");
        let page: Vec<_> = (100..120).map(|n| msg(n, "line")).collect();
        r.add_history(page, 20, |_| 3, GEO);
        assert_eq!(r.older, Older::Unknown);
        // 20 rows, 5 visible: at most 15 up; near the top the next page is wanted.
        assert_eq!(r.scroll_by(3, GEO), Need::Nothing);
        assert_eq!(
            r.scroll_by(100, GEO),
            Need::Older(100_000, msg(100, "").0.id)
        );
        assert_eq!(r.scroll, 15);
        assert_eq!(r.older, Older::Loading);
        // The page arrives: the view stays on the same rows (counted from the bottom).
        let older: Vec<_> = (90..100).map(|n| msg(n, "line")).collect();
        r.add_history(older, 20, |_| 3, GEO);
        assert_eq!(r.older, Older::Exhausted);
        assert_eq!(r.scroll, 15);
        assert_eq!(r.scroll_by(100, GEO), Need::Nothing);
        assert_eq!(r.scroll, 25);
        assert_eq!((r.visible(GEO).first, r.visible(GEO).skip), (0, 0));
        assert_eq!(r.scroll_by(-1000, GEO), Need::Nothing);
        assert_eq!(r.scroll, 0);
        assert_eq!((r.visible(GEO).first, r.visible(GEO).skip), (25, 0));
    }

    #[test]
    fn new_messages_keep_a_scrolled_view_still() {
        let mut r = Room::new("lobby");
        r.add_history((0..20).map(|n| msg(n, "line")).collect(), 100, |_| 3, GEO);
        r.scroll_by(4, GEO);
        let before = r.visible(GEO);
        let (m, ts) = msg(50, "a long line that wraps over two rows here ok");
        r.insert(Entry::message(m, ts), 3, GEO);
        assert_eq!(r.scroll, 6);
        assert_eq!(r.visible(GEO), before);
    }

    #[test]
    fn windows_are_bounded_and_detach_when_reading_far_back() {
        let mut r = Room::new("lobby");
        for n in 0..(LIVE_CAP as u64 + 10) {
            let (m, ts) = msg(1_000_000 + n, "x");
            r.insert(Entry::message(m, ts), 3, GEO);
            r.trim();
        }
        assert_eq!(r.len(), LIVE_CAP);
        // Reading back past the hard cap drops the newest and detaches.
        r.scroll = 10;
        let mut next = 1_000_000;
        while !r.detached {
            let page: Vec<_> = (next - PAGE as u64..next).map(|n| msg(n, "x")).collect();
            next -= PAGE as u64;
            r.add_history(page, PAGE, |_| 3, GEO);
        }
        assert_eq!(r.len(), HARD_CAP);
        // Newer live messages are not kept, and the bottom asks for the newest page.
        let (m, ts) = msg(9_000_000, "x");
        assert_eq!(r.insert(Entry::message(m, ts), 3, GEO), Inserted::Beyond);
        assert_eq!(r.scroll_by(-1_000_000, GEO), Need::Newest);
        r.reset_newest(vec![msg(9_000_000, "x")], PAGE, |_| 3, GEO);
        assert!(!r.detached);
        assert_eq!(r.len(), 1);
    }

    fn message_ts(r: &Room) -> Vec<u64> {
        r.entries()
            .iter()
            .filter(|e| matches!(e.body, Body::Message(_)))
            .map(|e| e.key.ts_ms / 1000)
            .collect()
    }

    /// A message that comes late (by history sync) sorts by author time inside the window, but
    /// is not kept before the start of a window that does not reach the room's first message:
    /// the window stays contiguous and the older page brings it.
    #[test]
    fn late_messages_keep_the_window_contiguous() {
        let mut r = Room::new("lobby");
        r.add_history((100..120).map(|n| msg(n, "x")).collect(), 20, |_| 3, GEO);
        assert_eq!(r.older, Older::Unknown);
        let (m, ts) = msg(50, "x");
        assert_eq!(r.insert(Entry::message(m, ts), 3, GEO), Inserted::Earlier);
        let mut late = msg(1105, "x");
        late.1 = 110_500;
        assert!(matches!(
            r.insert(Entry::message(late.0, late.1), 3, GEO),
            Inserted::Added { .. }
        ));
        assert_eq!(
            message_ts(&r)[..12],
            [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 110]
        );
        assert_eq!(r.oldest_message().map(|(ts, _)| ts), Some(100_000));
        // The older page holds it.
        r.add_history((40..100).map(|n| msg(n, "x")).collect(), 500, |_| 3, GEO);
        assert_eq!(r.older, Older::Exhausted);
        assert!(message_ts(&r).contains(&50));
        // Now the window starts at the room's first message: anything fits.
        let (m, ts) = msg(3, "x");
        assert!(matches!(
            r.insert(Entry::message(m, ts), 3, GEO),
            Inserted::Added { .. }
        ));
        assert_eq!(message_ts(&r)[0], 3);
    }

    /// A late message that came before the first page: a full page reaches back to its own
    /// first message and no further, so the late one waits for the older page.
    #[test]
    fn a_full_page_drops_what_lies_before_it() {
        let mut r = Room::new("lobby");
        let (m, ts) = msg(5, "early");
        r.insert(Entry::message(m, ts), 3, GEO);
        r.insert(Entry::notice("joined", Level::Info, 1, 1), 0, GEO);
        r.add_history((100..120).map(|n| msg(n, "x")).collect(), 20, |_| 3, GEO);
        assert_eq!(message_ts(&r)[0], 100);
        assert_eq!(r.oldest_message().map(|(ts, _)| ts), Some(100_000));
        assert_eq!(r.len(), 21, "the notice stays");
        // It can come back with its page.
        r.add_history(vec![msg(5, "early")], 500, |_| 3, GEO);
        assert_eq!(message_ts(&r)[0], 5);
        // A short page is the whole start of the room: nothing is dropped.
        let mut r = Room::new("lobby");
        let (m, ts) = msg(5, "early");
        r.insert(Entry::message(m, ts), 3, GEO);
        r.add_history((100..110).map(|n| msg(n, "x")).collect(), 20, |_| 3, GEO);
        assert_eq!(message_ts(&r)[0], 5);
    }

    #[test]
    fn synced_messages_are_counted_in_one_notice_per_burst() {
        let mut r = Room::new("lobby");
        let notices = |r: &Room| -> Vec<String> {
            r.entries()
                .iter()
                .filter(|e| matches!(e.body, Body::Notice { .. }))
                .map(|e| e.text().to_owned())
                .collect()
        };
        r.count_synced(1_000_000, 1, GEO);
        assert_eq!(notices(&r), [sync_notice_text(1)]);
        for k in 0..11 {
            r.count_synced(1_000_000 + k * 1000, 2 + k, GEO);
        }
        assert_eq!(
            notices(&r),
            ["12 earlier messages arrived while you were away (marked ┆)"]
        );
        // A later burst gets a notice of its own.
        r.count_synced(1_000_000 + 10_000 + SYNC_NOTICE_MS, 20, GEO);
        assert_eq!(notices(&r), [sync_notice_text(12), sync_notice_text(1)]);
        // A notice no longer in the window (reloaded, trimmed) is not updated.
        r.reset_newest(Vec::new(), PAGE, |_| 3, GEO);
        r.count_synced(1_000_000 + 11_000 + SYNC_NOTICE_MS, 21, GEO);
        assert_eq!(notices(&r), [sync_notice_text(1)]);
    }

    /// The notice's count grows below a scrolled-up view: the view stays on the same rows.
    #[test]
    fn a_growing_notice_keeps_a_scrolled_view_still() {
        let narrow = Geometry {
            width: 20,
            height: 3,
            nick_col: 2,
        };
        let mut r = Room::new("lobby");
        r.add_history((0..20).map(|n| msg(n, "x")).collect(), 100, |_| 2, narrow);
        r.count_synced(1_000_000, 1, narrow);
        r.scroll_by(5, narrow);
        let before = r.visible(narrow);
        let scroll = r.scroll;
        for k in 0..200 {
            r.count_synced(1_000_000 + k, 2 + k, narrow);
        }
        assert!(r.scroll > scroll, "the notice wrapped over more rows");
        assert_eq!(r.visible(narrow), before);
    }

    #[test]
    fn mention_detection() {
        assert!(mentions("hey alice, look", "alice"));
        assert!(mentions("ALICE!", "Alice"));
        assert!(!mentions("malice", "alice"));
        assert!(!mentions("alice_2 hi", "alice"));
        assert!(!mentions("anything", ""));
    }
}
