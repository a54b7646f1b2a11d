//! The `/who` panel: everyone in the tracker's roster, how far they are, marks for this node and
//! the tracker.

use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

use super::super::app::tracker::WhoPanel;
use super::super::wrap;
use super::{heading, pad, DIM};

const MARK: Style = Style::new().fg(Color::Cyan);

/// Appends the panel's lines; returns its title.
pub(super) fn lines(panel: &WhoPanel, lines: &mut Vec<Line<'static>>) -> &'static str {
    let tracker = panel.tracker.as_ref().and_then(|t| t.tracker);
    let listed = panel.rows.len() + panel.more;
    lines.push(heading(&match (listed, &panel.tracker) {
        (0, Some(t)) if t.tracker.is_none() => {
            "Nobody listed: there is no tracker now (an election is running).".to_owned()
        }
        (0, _) => "Nobody listed yet: the tracker's list has not come.".to_owned(),
        (1, _) => "1 online".to_owned(),
        (n, _) => format!("{n} online"),
    }));
    if let Some(t) = &panel.tracker {
        // The tracker's nick: the node's, else its row's.
        let nick = t.nick.as_deref().map(wrap::sanitize_name).or_else(|| {
            panel
                .rows
                .iter()
                .find(|p| Some(p.peer_id) == t.tracker)
                .map(|p| p.nick.clone())
        });
        lines.push(Line::styled(
            crate::output::tracker_summary(t, nick.as_deref()),
            DIM,
        ));
    }
    if panel.rows.is_empty() {
        return " who — Esc closes ";
    }
    let row = |who: &str, key: &str, reach: &str| {
        format!("  {} {}  {} ", pad(who, 16), pad(key, 8), pad(reach, 12))
    };
    lines.push(Line::styled(row("who", "key", "route"), DIM));
    for p in &panel.rows {
        let reach = match (p.is_self, p.hops, p.connected) {
            (true, _, _) => "this node".to_owned(),
            (_, Some(1), _) | (_, None, true) => "neighbour".to_owned(),
            (_, Some(h), _) => format!("{h} hops"),
            (_, None, false) => "no route".to_owned(),
        };
        let marks: Vec<&str> = [
            p.is_self.then_some("you"),
            (tracker == Some(p.peer_id)).then_some("tracker"),
        ]
        .into_iter()
        .flatten()
        .collect();
        lines.push(Line::from(vec![
            Span::raw(row(&p.nick, &p.fingerprint.short(), &reach)),
            Span::styled(marks.join(", "), MARK),
        ]));
    }
    if panel.more > 0 {
        lines.push(Line::styled(format!("  … and {} more", panel.more), DIM));
    }
    if panel.tracker.as_ref().is_some_and(|t| t.truncated) {
        lines.push(Line::styled(
            "The tracker's list was cut to fit one message: more are online.",
            DIM,
        ));
    }
    " who — Esc closes "
}
