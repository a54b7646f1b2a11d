//! Drawing: the room list, the message pane, the status bar, the input line and the panels.
//!
//! Only the rows on screen are wrapped and drawn; entries above them are measured from a cache
//! ([`super::room::Entry::rows`]), so a frame costs the same with ten messages or twenty thousand.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget, Wrap};
use ratatui::Frame;

use std::collections::HashMap;

use meshchat_node::{DmState, PeerId};

use crate::commands::{self, Interface};

use super::app::{App, Overlay};
use super::people::{self, Reach};
use super::room::{
    Body, Entry, Geometry, Level, Older, FP_COLS, SEPARATOR_COLS, SYNCED_MARK, TIME_COLS,
};
use super::wrap::{self, ellipsize, width};

/// Most rows the input line grows to.
const MAX_INPUT_ROWS: usize = 5;
/// Routes the `/routes` panel lists at most (the nearest).
const MAX_ROUTES_SHOWN: usize = 500;
/// Narrower than this, the room list is one row on top instead of a column.
const SIDEBAR_MIN_WIDTH: u16 = 60;

/// Keys, as the help overlay lists them under the slash commands (which come from
/// [`commands::COMMANDS`]).
const KEYS: &[(&str, &str)] = &[
    ("Enter", "send; Alt+Enter: new line"),
    ("Alt+1..9, Ctrl+N/P", "switch room (or click it)"),
    ("PgUp/PgDn, wheel", "scroll; Shift+Up/Down: one line"),
    ("Ctrl+Home/End", "oldest / newest (Home/End if input empty)"),
    ("Up/Down", "input history"),
    ("Tab, Shift+Tab", "complete commands, rooms, nicks"),
    ("Ctrl+W, Alt+Bksp", "delete word; Alt+D: word ahead"),
    ("Ctrl+A/E, Ctrl+U/K", "line start/end; delete to start/end"),
    ("Ctrl+Left/Right", "move by word (Alt+B/F too)"),
    ("F1 / F2", "this help / show listen addresses"),
    ("Esc", "close a panel; Ctrl+L: redraw"),
    ("Shift+drag", "select text (the mouse scrolls otherwise)"),
    ("Ctrl+C", "quit"),
];

const DIM: Style = Style::new().fg(Color::DarkGray);
const ERROR: Style = Style::new().fg(Color::Red);
const OWN_NICK: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
const STATUS: Style = Style::new().fg(Color::White).bg(Color::Blue);
const CURRENT_ROOM: Style = Style::new()
    .fg(Color::Black)
    .bg(Color::Cyan)
    .add_modifier(Modifier::BOLD);
const UNREAD: Style = Style::new().fg(Color::White).add_modifier(Modifier::BOLD);
const MENTION: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
/// Nick colours of other people, picked by fingerprint (cyan is the user's own).
const NICK_COLORS: [Color; 8] = [
    Color::Green,
    Color::Yellow,
    Color::Magenta,
    Color::LightBlue,
    Color::LightRed,
    Color::LightGreen,
    Color::LightMagenta,
    Color::LightYellow,
];

pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let area = frame.area();
    if area.width < 16 || area.height < 4 {
        frame
            .buffer_mut()
            .set_stringn(0, 0, "too small", area.width as usize, ERROR);
        return;
    }
    let input = InputLayout::new(app, area.width, (area.height / 3).max(1) as usize);
    let [main, bars, status, input_area] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(app.transfers.rows()),
        Constraint::Length(1),
        Constraint::Length(input.shown_rows() as u16),
    ])
    .areas(area);
    transfers(frame.buffer_mut(), bars, app);
    app.room_hits.borrow_mut().clear();
    let pane = if area.width >= SIDEBAR_MIN_WIDTH {
        let list_width = sidebar_width(app, area.width);
        let [list, sep, pane] = Layout::horizontal([
            Constraint::Length(list_width),
            Constraint::Length(1),
            Constraint::Min(1),
        ])
        .areas(main);
        room_list(frame.buffer_mut(), list, app);
        for y in sep.top()..sep.bottom() {
            frame.buffer_mut().set_stringn(sep.x, y, "│", 1, DIM);
        }
        pane
    } else {
        let [bar, pane] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(main);
        room_bar(frame.buffer_mut(), bar, app);
        pane
    };
    messages(frame.buffer_mut(), pane, app);
    status_bar(frame.buffer_mut(), status, app);
    input.draw(frame, input_area);
    if let Some(overlay) = &app.overlay {
        draw_overlay(frame, area, app, overlay);
    }
}

/// A progress bar for each download under way (at most `files::MAX_BARS`, the last row
/// saying how many more there are): `⇣ 3 photo.jpg [####....] 42% 1.0 MiB / 2.2 MiB, …`.
fn transfers(buf: &mut Buffer, area: Rect, app: &App) {
    let active = &app.transfers.active;
    for (row, t) in active.iter().take(area.height as usize).enumerate() {
        let y = area.y + row as u16;
        let more = active.len() - area.height as usize;
        let line = if row + 1 == area.height as usize && more > 0 {
            format!("… {} more transfers under way (/files)", more + 1)
        } else {
            let fraction = if t.total == 0 {
                1.0
            } else {
                t.bytes as f64 / t.total as f64
            };
            let text = crate::files::progress_text(t.bytes, t.total, t.rate);
            let name: String = t.name.chars().take(24).collect();
            let bar_width = (area.width as usize)
                .saturating_sub(name.len() + text.len() + 12)
                .clamp(4, 30);
            format!(
                "{} {} {name} {} {}",
                if t.up { "⇡" } else { "⇣" },
                t.n,
                crate::files::bar(fraction, bar_width),
                text.trim_start()
            )
        };
        buf.set_stringn(area.x, y, &line, area.width as usize, DIM);
    }
}

/// `label` is the room as shown (`#room`, `@nick`).
fn room_label(i: usize, label: &str) -> String {
    let name = wrap::sanitize_name(label);
    if i < 9 {
        format!("{} {name}", i + 1)
    } else if i == 9 {
        format!("0 {name}")
    } else {
        format!("  {name}")
    }
}

fn count_label(unread: u32, mentions: u32) -> String {
    match (unread, mentions) {
        (0, _) => String::new(),
        (n, 0) => n.to_string(),
        (n, _) => format!("{n}!"),
    }
}

fn sidebar_width(app: &App, total: u16) -> u16 {
    let widest = app
        .rooms
        .iter()
        .enumerate()
        .map(|(i, r)| {
            width(&room_label(i, &app.title(r))) + 1 + count_label(r.unread, r.mentions).len()
        })
        .max()
        .unwrap_or(0);
    (widest as u16 + 2).clamp(12, 24).min(total / 4)
}

fn room_list(buf: &mut Buffer, area: Rect, app: &App) {
    let mut hits = app.room_hits.borrow_mut();
    for (i, room) in app.rooms.iter().enumerate() {
        let y = area.y + i as u16;
        if y >= area.bottom() {
            break;
        }
        let row = Rect::new(area.x, y, area.width, 1);
        hits.push((row, i));
        let (style, count_style) = if i == app.current {
            (CURRENT_ROOM, CURRENT_ROOM)
        } else if room.mentions > 0 {
            (MENTION, MENTION)
        } else if room.unread > 0 {
            (UNREAD, UNREAD)
        } else {
            (Style::new(), DIM)
        };
        buf.set_style(row, style);
        let count = count_label(room.unread, room.mentions);
        let cols = area.width as usize;
        let label = ellipsize(
            &room_label(i, &app.title(room)),
            cols.saturating_sub(count.len() + 2),
        );
        buf.set_stringn(area.x + 1, y, &label, cols.saturating_sub(1), style);
        if !count.is_empty() && count.len() + 1 < cols {
            let x = area.right() - count.len() as u16 - 1;
            buf.set_stringn(x, y, &count, count.len(), count_style);
        }
    }
    if app.rooms.is_empty() && area.height > 0 {
        buf.set_stringn(area.x + 1, area.y, "(no room)", area.width as usize, DIM);
    }
}

/// Narrow terminals: the rooms in one row, the current one kept in view.
fn room_bar(buf: &mut Buffer, area: Rect, app: &App) {
    let labels: Vec<(String, Style)> = app
        .rooms
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let count = count_label(r.unread, r.mentions);
            let label = room_label(i, &app.title(r));
            let text = if count.is_empty() {
                format!(" {label} ")
            } else {
                format!(" {label} ({count}) ")
            };
            let style = if i == app.current {
                CURRENT_ROOM
            } else if r.mentions > 0 {
                MENTION
            } else if r.unread > 0 {
                UNREAD
            } else {
                DIM
            };
            (text, style)
        })
        .collect();
    // Skip rooms on the left until the current one fits.
    let mut start = 0;
    while start < app.current
        && labels[start..=app.current.min(labels.len().saturating_sub(1))]
            .iter()
            .map(|(t, _)| width(t))
            .sum::<usize>()
            > area.width as usize
    {
        start += 1;
    }
    let mut hits = app.room_hits.borrow_mut();
    let mut x = area.x;
    for (i, (text, style)) in labels.iter().enumerate().skip(start) {
        if x >= area.right() {
            break;
        }
        let w = width(text) as u16;
        hits.push((Rect::new(x, area.y, w.min(area.right() - x), 1), i));
        let (end, _) = buf.set_stringn(x, area.y, text, (area.right() - x) as usize, *style);
        x = end;
    }
    if app.rooms.is_empty() {
        buf.set_stringn(area.x, area.y, " (no room)", area.width as usize, DIM);
    }
}

fn nick_style(own: bool, fp_byte: u8) -> Style {
    if own {
        OWN_NICK
    } else {
        Style::new().fg(NICK_COLORS[fp_byte as usize % NICK_COLORS.len()])
    }
}

fn messages(buf: &mut Buffer, area: Rect, app: &App) {
    app.pane.set((area.width, area.height));
    let room = app.room();
    let geo = room.geometry(area.width, area.height);
    let view = room.visible(geo);
    let mut y = area.y + view.pad as u16;
    if view.pad > 0 && room.older == Older::Exhausted && !room.name.is_empty() {
        let text = format!("· beginning of {} ·", wrap::sanitize_name(&app.title(room)));
        let x = area.x + (area.width.saturating_sub(width(&text) as u16)) / 2;
        buf.set_stringn(x, y - 1, &text, area.width as usize, DIM);
    }
    let mut skip = view.skip;
    for entry in room.entries().range(view.first..) {
        if y >= area.bottom() {
            break;
        }
        let rows_drawn = draw_entry(buf, area, y, skip, entry, geo, app);
        y += rows_drawn;
        skip = 0;
    }
    if room.older == Older::Loading {
        let text = " loading older messages… ";
        buf.set_stringn(
            area.x,
            area.y,
            text,
            area.width as usize,
            DIM.add_modifier(Modifier::REVERSED),
        );
    }
}

/// Draws `entry` from its row `skip` on, at row `y` of `area`; returns the rows drawn.
fn draw_entry(
    buf: &mut Buffer,
    area: Rect,
    y: u16,
    skip: usize,
    entry: &Entry,
    geo: Geometry,
    app: &App,
) -> u16 {
    let nick_col = geo.nick_col as usize;
    let text_x = area.x + (TIME_COLS + nick_col + SEPARATOR_COLS) as u16;
    let text_cols = geo.text_cols();
    let (text_style, label): (Style, Vec<(String, Style)>) = match &entry.body {
        Body::Message(m) => {
            let style = if m.mention {
                Style::new().add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            let nstyle = nick_style(m.own, m.fingerprint.as_bytes()[0]);
            let nstyle = if m.mention {
                nstyle.add_modifier(Modifier::REVERSED)
            } else {
                nstyle
            };
            let label = if app.book.collides(&m.nick) && nick_col > FP_COLS {
                let nick = ellipsize(&m.nick, nick_col - FP_COLS);
                vec![(nick, nstyle), (format!(" {}", m.fingerprint.short()), DIM)]
            } else if app.book.collides(&m.nick) {
                vec![(ellipsize(&m.fingerprint.short(), nick_col), nstyle)]
            } else {
                vec![(ellipsize(&m.nick, nick_col), nstyle)]
            };
            (style, label)
        }
        Body::Notice { level, .. } => match level {
            Level::Info => (DIM, vec![("--".to_owned(), DIM)]),
            Level::Error => (
                ERROR,
                vec![("!!".to_owned(), ERROR.add_modifier(Modifier::BOLD))],
            ),
        },
    };
    let separator = match &entry.body {
        Body::Message(m) if m.synced => SYNCED_MARK,
        _ => "│",
    };
    // A DM's state mark, after its text: dimmed, red when it failed.
    let mark = match &entry.body {
        Body::Message(m) => m.mark_start().map(|at| {
            let style = if m.state == Some(DmState::Failed) {
                ERROR
            } else {
                DIM
            };
            (at, style)
        }),
        Body::Notice { .. } => None,
    };
    let text = entry.text();
    let mut drawn = 0;
    for (k, range) in wrap::wrap(text, text_cols)
        .into_iter()
        .enumerate()
        .skip(skip)
    {
        let row = y + drawn;
        if row >= area.bottom() {
            break;
        }
        if k == 0 {
            let time = app.clock.hhmm(entry.key.ts_ms);
            buf.set_stringn(area.x, row, &time, TIME_COLS - 1, DIM);
            let label_w: usize = label.iter().map(|(s, _)| width(s)).sum();
            let mut x = area.x + (TIME_COLS + nick_col.saturating_sub(label_w)) as u16;
            for (s, style) in &label {
                let (end, _) = buf.set_stringn(x, row, s, nick_col, *style);
                x = end;
            }
        }
        let sep_x = area.x + (TIME_COLS + nick_col + 1) as u16;
        if sep_x < area.right() {
            buf.set_stringn(sep_x, row, separator, 1, DIM);
        }
        if text_x < area.right() {
            match mark {
                Some((at, style)) if range.end > at => {
                    let body = range.start..at.max(range.start);
                    let (x, _) = buf.set_stringn(text_x, row, &text[body], text_cols, text_style);
                    let left = text_cols.saturating_sub((x - text_x) as usize);
                    buf.set_stringn(x, row, &text[at.max(range.start)..range.end], left, style);
                }
                _ => {
                    buf.set_stringn(text_x, row, &text[range], text_cols, text_style);
                }
            }
        }
        drawn += 1;
    }
    drawn
}

fn status_bar(buf: &mut Buffer, area: Rect, app: &App) {
    buf.set_style(area, STATUS);
    let peers = match app.peers.len() {
        1 => "1 peer".to_owned(),
        n => format!("{n} peers"),
    };
    let room = app.room();
    let reach = crate::output::reach_word(app.me.reach.reach)
        .map(|w| format!(" ({w})"))
        .unwrap_or_default();
    let mut left = format!(
        " {} {} │ {peers}{reach} │ {}",
        app.me.nick,
        app.me.fingerprint.short(),
        if room.name.is_empty() {
            "no room".to_owned()
        } else if room.dm.is_some() {
            format!("{} (direct, sealed)", app.title(room))
        } else {
            room_status(room)
        }
    );
    if room.scroll > 0 {
        if room.new_below > 0 {
            left.push_str(&format!(" │ ↓ {} new, End", room.new_below));
        } else {
            left.push_str(" │ ↑ scrolled, End");
        }
    }
    if let Some(tracker) = app.tracker_label() {
        left.push_str(" │ ");
        left.push_str(&tracker);
    }
    if let Some(off) = app.clock_off {
        left.push_str(" │ clock ");
        left.push_str(&meshchat_core::clock::describe(off));
    }
    if app.show_addrs {
        left.push_str(" │ ");
        left.push_str(&crate::output::addrs(&app.me.listen));
    }
    let right = if app.show_addrs {
        "F2 hide "
    } else {
        "F1 help "
    };
    let cols = area.width as usize;
    let room_for_left = cols.saturating_sub(right.len() + 1);
    buf.set_stringn(
        area.x,
        area.y,
        ellipsize(&left, room_for_left),
        room_for_left,
        STATUS,
    );
    if cols > right.len() {
        buf.set_stringn(
            area.right() - right.len() as u16,
            area.y,
            right,
            right.len(),
            STATUS,
        );
    }
}

/// The status bar's room: `#room`, or for a private one `🔒#room (invite, 3 members)`, with
/// `removed` once we were taken out of it.
fn room_status(room: &super::room::Room) -> String {
    let Some(kind) = room.private else {
        return format!("#{}", room.name);
    };
    let mut bits = vec![match kind {
        meshchat_node::PrivateKind::Passphrase => "passphrase",
        meshchat_node::PrivateKind::Invite => "invite",
    }
    .to_owned()];
    if let Some(n) = room.members {
        let heard = if kind == meshchat_node::PrivateKind::Passphrase {
            " heard"
        } else {
            ""
        };
        bits.push(match n {
            1 => format!("1 member{heard}"),
            n => format!("{n} members{heard}"),
        });
    }
    if room.removed {
        bits.push("removed: read only".to_owned());
    }
    format!("{}#{} ({})", super::room::LOCK, room.name, bits.join(", "))
}

/// The input line wrapped to its area, with the cursor's place.
struct InputLayout<'a> {
    prompt: String,
    text: &'a str,
    rows: Vec<std::ops::Range<usize>>,
    cursor_row: usize,
    cursor_col: usize,
    max_rows: usize,
}

impl<'a> InputLayout<'a> {
    fn new(app: &'a App, total_width: u16, max_rows: usize) -> Self {
        let prompt = match app.rooms.get(app.current) {
            Some(r) => format!("[{}] ", wrap::sanitize_name(&app.title(r))),
            None => "[no room] ".to_owned(),
        };
        let prompt = ellipsize(&prompt, total_width as usize / 3);
        let cols = (total_width as usize).saturating_sub(width(&prompt)).max(1);
        let text = app.input.text();
        let cursor = app.input.cursor();
        let mut rows = wrap::wrap(text, cols);
        let mut cursor_row = rows
            .iter()
            .rposition(|r| r.start <= cursor && cursor <= r.end)
            .unwrap_or(0);
        let mut cursor_col = width(&text[rows[cursor_row].start..cursor]);
        if cursor_col >= cols {
            // At the end of a full row: the cursor goes to the start of a row of its own.
            rows.insert(cursor_row + 1, cursor..cursor);
            cursor_row += 1;
            cursor_col = 0;
        }
        Self {
            prompt,
            text,
            rows,
            cursor_row,
            cursor_col,
            max_rows: max_rows.clamp(1, MAX_INPUT_ROWS),
        }
    }

    fn shown_rows(&self) -> usize {
        self.rows.len().min(self.max_rows)
    }

    fn draw(&self, frame: &mut Frame<'_>, area: Rect) {
        let first = (self.cursor_row + 1).saturating_sub(area.height as usize);
        let prompt_w = width(&self.prompt) as u16;
        let buf = frame.buffer_mut();
        buf.set_stringn(area.x, area.y, &self.prompt, area.width as usize, DIM);
        for (k, range) in self.rows.iter().enumerate().skip(first) {
            let y = area.y + (k - first) as u16;
            if y >= area.bottom() {
                break;
            }
            let x = area.x + prompt_w;
            buf.set_stringn(
                x,
                y,
                &self.text[range.clone()],
                area.width.saturating_sub(prompt_w) as usize,
                Style::new(),
            );
        }
        let cy = area.y + (self.cursor_row - first) as u16;
        let cx = area.x + prompt_w + self.cursor_col as u16;
        frame.set_cursor_position((cx.min(area.right().saturating_sub(1)), cy));
    }
}

/// A peer as the routes panel names it: its short fingerprint (read from the peer id), else the
/// peer id's end.
fn short_peer(p: &PeerId) -> String {
    match people::fingerprint_of(p) {
        Some(fp) => fp.short(),
        None => {
            let s = p.to_string();
            format!("…{}", &s[s.len().saturating_sub(8)..])
        }
    }
}

/// `text` cut or padded to `cols` cells.
fn pad(text: &str, cols: usize) -> String {
    let mut s = ellipsize(text, cols);
    let w = width(&s);
    s.push_str(&" ".repeat(cols.saturating_sub(w)));
    s
}

/// A duration as `12s`, `5m`, `3h`, `2d`.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7_199 => format!("{}m", s / 60),
        7_200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Who a route leads to or through: the nick their profile gave (or the nick book's), else
/// nothing known.
fn route_nick(app: &App, nicks: &HashMap<PeerId, &str>, p: &PeerId) -> Option<String> {
    nicks
        .get(p)
        .map(|n| wrap::sanitize_name(n))
        .or_else(|| app.book.get(p).map(|k| k.nick.clone()))
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn heading(text: &str) -> Line<'static> {
    Line::from(Span::styled(
        text.to_owned(),
        Style::new().add_modifier(Modifier::BOLD),
    ))
}

fn field(name: &str, value: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("  {name:<13} "), DIM),
        Span::raw(value),
    ])
}

fn overlay_lines(app: &App, overlay: &Overlay) -> (String, Vec<Line<'static>>) {
    let mut lines = Vec::new();
    let title = match overlay {
        Overlay::Help => {
            lines.push(heading("Commands"));
            for c in commands::available(Interface::Tui) {
                lines.push(Line::from(vec![
                    Span::styled(
                        // At least one space after a long usage.
                        format!("  {:<17} ", c.usage_line()),
                        Style::new().fg(Color::Cyan),
                    ),
                    Span::raw(c.help_in(Interface::Tui)),
                ]));
            }
            lines.push(Line::styled(
                format!("  also {}", commands::aliases_line(Interface::Tui)),
                DIM,
            ));
            lines.push(Line::raw(""));
            lines.push(heading("Keys"));
            for (k, what) in KEYS {
                lines.push(Line::from(vec![
                    Span::styled(format!("  {k:<20}"), Style::new().fg(Color::Cyan)),
                    Span::raw(*what),
                ]));
            }
            lines.push(Line::raw(""));
            lines.push(Line::styled(
                "Anything else is sent to the room on screen (// sends a leading /).",
                DIM,
            ));
            lines.push(Line::styled(
                format!(
                    "{SYNCED_MARK} instead of │ marks a message that came late, by history sync."
                ),
                DIM,
            ));
            lines.push(Line::styled(
                "@nick in the room list is a direct conversation; your DMs there are marked \
                 queued (no route yet), sent, delivered ✓ or failed (expired undelivered).",
                DIM,
            ));
            " help — Esc closes "
        }
        Overlay::Id => {
            lines.push(heading(&app.me.nick));
            lines.push(field("fingerprint", app.me.fingerprint.to_string()));
            lines.push(field("peer id", app.me.peer_id.to_string()));
            let rooms: Vec<String> = app
                .rooms
                .iter()
                .filter(|r| r.dm.is_none())
                .map(|r| format!("#{}", r.name))
                .collect();
            lines.push(field("rooms", rooms.join(" ")));
            lines.push(Line::raw(""));
            if app.me.listen.is_empty() {
                lines.push(heading("Listening on no address yet."));
            } else {
                lines.push(heading(
                    "Others reach you with /connect ADDR or meshchat --peer ADDR, where ADDR is one of:",
                ));
            }
            for a in &app.me.listen {
                lines.push(Line::raw(format!("  {a}/p2p/{}", app.me.peer_id)));
            }
            lines.push(Line::raw(""));
            lines.push(heading(&crate::output::reach_text(&app.me.reach)));
            if app.me.reach.reach == meshchat_node::Reach::Relayed {
                lines.push(Line::raw("From outside your network, others reach you at:"));
                for a in &app.me.reach.addrs {
                    lines.push(Line::raw(format!("  {a}/p2p/{}", app.me.peer_id)));
                }
            }
            " you — Esc closes "
        }
        Overlay::Peers(rows) => {
            lines.push(heading(&match rows.len() {
                0 => "No peer connected. /connect ADDR dials one.".to_owned(),
                1 => "1 peer connected".to_owned(),
                n => format!("{n} peers connected"),
            }));
            for p in rows {
                lines.push(Line::raw(""));
                let name = match (&p.nick, &p.fingerprint) {
                    (Some(n), Some(fp)) => format!("{n} ({})", fp.short()),
                    (None, Some(fp)) => format!("({}, no message seen yet)", fp.short()),
                    _ => "(unknown key)".to_owned(),
                };
                let name = if p.chat {
                    name
                } else {
                    format!("{name} — not a meshchat peer yet")
                };
                lines.push(heading(&name));
                if let Some(fp) = &p.fingerprint {
                    lines.push(field("fingerprint", fp.to_string()));
                }
                lines.push(field("peer id", p.peer_id.to_string()));
                for (i, a) in p.addrs.iter().enumerate() {
                    lines.push(field(if i == 0 { "address" } else { "" }, a.to_string()));
                }
            }
            " peers — Esc closes "
        }
        Overlay::Whois { query, rows } => {
            if rows.len() > 1 {
                lines.push(Line::styled(
                    format!(
                        "{} different keys use the nick {query}: compare fingerprints.",
                        rows.len()
                    ),
                    MENTION,
                ));
            }
            for (i, w) in rows.iter().enumerate() {
                if i > 0 || rows.len() > 1 {
                    lines.push(Line::raw(""));
                }
                let you = if w.own { " (you)" } else { "" };
                lines.push(heading(&format!("{}{you}", w.nick)));
                lines.push(field("fingerprint", w.fingerprint.to_string()));
                lines.push(field("peer id", w.peer_id.to_string()));
                match w.reach {
                    _ if w.own => {}
                    Reach::Unknown => {}
                    Reach::NoProfile => lines.push(field(
                        "profile",
                        "none reached this node yet: a DM cannot be sealed to them".into(),
                    )),
                    Reach::Hops(Some(1)) => {
                        lines.push(field("route", "1 hop (a neighbour)".into()))
                    }
                    Reach::Hops(Some(h)) => lines.push(field("route", format!("{h} hops"))),
                    Reach::Hops(None) => lines.push(field(
                        "route",
                        "none now: DMs to them wait here until one is found".into(),
                    )),
                }
                if let Some(ts) = w.last_seen_ms {
                    lines.push(field("last message", app.clock.hhmm(ts)));
                }
                match &w.addrs {
                    Some(addrs) if !addrs.is_empty() => {
                        for (i, a) in addrs.iter().enumerate() {
                            let name = if i == 0 { "address" } else { "" };
                            lines.push(field(name, a.to_string()));
                        }
                    }
                    Some(_) => lines.push(field("address", "(none)".into())),
                    None => lines.push(field(
                        "address",
                        "not connected directly (messages come through other peers)".into(),
                    )),
                }
            }
            " whois — Esc closes "
        }
        Overlay::Routes(routes) => {
            lines.push(heading(&match routes.len() {
                0 => "No routes yet: nobody is reachable beyond this node.".to_owned(),
                1 => "1 node reachable".to_owned(),
                n => format!("{n} nodes reachable"),
            }));
            let row = |who: &str, key: &str, via: &str, hops: &str, age: &str| {
                format!(
                    "  {} {}  {}  {hops:>4} {age:>5}",
                    pad(who, 16),
                    pad(key, 8),
                    pad(via, 25)
                )
            };
            lines.push(Line::styled(
                row("who", "key", "next hop", "hops", "age"),
                DIM,
            ));
            let nicks: HashMap<PeerId, &str> = routes
                .iter()
                .filter_map(|r| Some((r.dest, r.nick.as_deref()?)))
                .collect();
            for r in routes.iter().take(MAX_ROUTES_SHOWN) {
                let who =
                    route_nick(app, &nicks, &r.dest).unwrap_or_else(|| "(no profile)".to_owned());
                let via = if r.next_hop == r.dest {
                    "(direct)".to_owned()
                } else {
                    match route_nick(app, &nicks, &r.next_hop) {
                        Some(n) => format!("{} {}", ellipsize(&n, 16), short_peer(&r.next_hop)),
                        None => short_peer(&r.next_hop),
                    }
                };
                lines.push(Line::raw(row(
                    &who,
                    &short_peer(&r.dest),
                    &via,
                    &r.hops.to_string(),
                    &age(r.age_ms),
                )));
            }
            if routes.len() > MAX_ROUTES_SHOWN {
                lines.push(Line::styled(
                    format!("  … and {} more", routes.len() - MAX_ROUTES_SHOWN),
                    DIM,
                ));
            }
            " routes — Esc closes "
        }
        Overlay::Who(panel) => who::lines(panel, &mut lines),
    };
    (title.to_owned(), lines)
}

fn draw_overlay(frame: &mut Frame<'_>, area: Rect, app: &App, overlay: &Overlay) {
    let (title, lines) = overlay_lines(app, overlay);
    let box_width = area.width.saturating_sub(4).clamp(area.width.min(20), 84);
    let inner_width = box_width.saturating_sub(2).max(1);
    let text = Paragraph::new(lines).wrap(Wrap { trim: false });
    let rows = text.line_count(inner_width);
    let box_height = (rows as u16).saturating_add(2).min(area.height);
    let rect = centered(area, box_width, box_height);
    let visible = rect.height.saturating_sub(2) as usize;
    let max_scroll = rows.saturating_sub(visible) as u16;
    app.overlay_max.set(max_scroll);
    let scroll = app.overlay_scroll.min(max_scroll);
    let more = if scroll < max_scroll {
        " ↓ more "
    } else {
        ""
    };
    Clear.render(rect, frame.buffer_mut());
    text.scroll((scroll, 0))
        .block(
            Block::bordered()
                .title(title)
                .title_bottom(Line::from(more).right_aligned())
                .border_style(Style::new().fg(Color::Cyan)),
        )
        .render(rect, frame.buffer_mut());
}

mod who;
