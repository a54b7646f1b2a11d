//! The network's tracker and who is online (issue 12): the status bar's `tracker:` label, kept
//! current by [`Event::TrackerChanged`](meshchat_node::Event::TrackerChanged), the `/who`
//! panel and the `/tracker` line.

use meshchat_node::{OnlinePeer, PeerId, TrackerView};

use super::super::people;
use super::super::room::Level;
use super::super::wrap;
use super::{Action, App, Overlay};

/// People the `/who` panel keeps at most (the roster itself is bounded by the node).
pub const MAX_WHO_ROWS: usize = 1000;

/// The tracker as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The tracker followed; `None` while an election runs.
    pub tracker: Option<PeerId>,
    pub epoch: u64,
    /// This node is the tracker.
    pub is_self: bool,
    /// Its nick from the node's last view of it, shown safely; `None` until one came.
    pub nick: Option<String>,
}

impl Status {
    pub fn from_view(v: &TrackerView) -> Self {
        Self {
            tracker: v.tracker,
            epoch: v.epoch,
            is_self: v.is_self,
            nick: v
                .nick
                .as_deref()
                .filter(|n| !n.trim().is_empty())
                .map(wrap::sanitize_name),
        }
    }
}

/// The `/who` panel: the tracker's roster as the node had it, and the tracker then.
#[derive(Debug, Clone)]
pub struct WhoPanel {
    /// Online people, nicks made safe to show, in the node's order (by nick).
    pub rows: Vec<OnlinePeer>,
    /// Rows the node listed beyond [`MAX_WHO_ROWS`].
    pub more: usize,
    /// The node's view of the tracker, if it could be read.
    pub tracker: Option<TrackerView>,
}

impl App {
    /// The status bar's label: `tracker: you`, `tracker: bob`, `tracker: electing…`; `None`
    /// until the node has said anything about it.
    pub fn tracker_label(&self) -> Option<String> {
        let s = self.tracker.as_ref()?;
        Some(match s.tracker {
            _ if s.is_self => "tracker: you".to_owned(),
            None => "tracker: electing…".to_owned(),
            Some(peer) => format!("tracker: {}", self.tracker_name(&peer, s.nick.as_deref())),
        })
    }

    /// The tracker's nick: the node's (from its roster entry or profile), else the nick book's,
    /// else its short fingerprint.
    fn tracker_name(&self, peer: &PeerId, nick: Option<&str>) -> String {
        match nick {
            Some(n) => n.to_owned(),
            None => self.nick_of(peer),
        }
    }

    /// [`Event::TrackerChanged`](meshchat_node::Event::TrackerChanged). Epochs only grow, so
    /// an older one is an event that a fresher answer overtook.
    pub(super) fn on_tracker_changed(
        &mut self,
        tracker: Option<PeerId>,
        epoch: u64,
        is_self: bool,
    ) {
        let nick = match &self.tracker {
            Some(s) if s.epoch > epoch => return,
            Some(s) if s.tracker == tracker => s.nick.clone(),
            _ => None,
        };
        if nick.is_none() && !is_self && tracker.is_some() {
            // The event names it by peer id: ask the node for its nick.
            self.actions.push(Action::Tracker { announce: false });
        }
        self.tracker = Some(Status {
            tracker,
            epoch,
            is_self,
            nick,
        });
    }

    /// Takes the node's view unless the status already follows a newer epoch, or another
    /// tracker at the same epoch (the events say what happened after the view was read).
    fn take_tracker_view(&mut self, v: &TrackerView) {
        let fresher = match &self.tracker {
            None => true,
            Some(s) => v.epoch > s.epoch || (v.epoch == s.epoch && v.tracker == s.tracker),
        };
        if fresher {
            self.tracker = Some(Status::from_view(v));
        }
    }

    /// The answer to `/tracker` (`announce`) or to a silent refresh.
    pub(super) fn on_tracker_reply(&mut self, announce: bool, result: Result<TrackerView, String>) {
        match result {
            Ok(v) => {
                self.take_tracker_view(&v);
                if announce {
                    // Named as messages name people: nick and short fingerprint.
                    let name = v.tracker.map(|peer| {
                        let nick = v.nick.as_deref().map(wrap::sanitize_name);
                        let nick = nick.unwrap_or_else(|| self.nick_of(&peer));
                        match people::fingerprint_of(&peer) {
                            Some(fp) if fp.short() != nick => format!("{nick} {}", fp.short()),
                            _ => nick,
                        }
                    });
                    let text = crate::output::tracker_summary(&v, name.as_deref());
                    self.notice(&text, Level::Info);
                }
            }
            Err(e) if announce => self.notice(&format!("tracker unknown: {e}"), Level::Error),
            Err(_) => {}
        }
    }

    /// The answer to `/who`: the panel, or why there is none.
    pub(super) fn show_who(
        &mut self,
        peers: Result<Vec<OnlinePeer>, String>,
        tracker: Result<TrackerView, String>,
    ) {
        let tracker = tracker.ok();
        if let Some(v) = &tracker {
            self.take_tracker_view(v);
        }
        let mut rows = match peers {
            Ok(rows) => rows,
            Err(e) => {
                self.notice(&format!("who is online is unknown: {e}"), Level::Error);
                return;
            }
        };
        let more = rows.len().saturating_sub(MAX_WHO_ROWS);
        rows.truncate(MAX_WHO_ROWS);
        for p in &mut rows {
            p.nick = if p.nick.trim().is_empty() {
                people::fingerprint_of(&p.peer_id).map_or_else(String::new, |f| f.short())
            } else {
                wrap::sanitize_name(&p.nick)
            };
        }
        self.open(Overlay::Who(WhoPanel {
            rows,
            more,
            tracker,
        }));
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::KeyCode;
    use meshchat_node::Event;

    use super::super::super::tests::fixtures::*;
    use super::super::Reply;
    use super::*;

    fn view(tracker: Option<u8>, nick: Option<&str>, epoch: u64) -> TrackerView {
        TrackerView {
            tracker: tracker.map(peer),
            nick: nick.map(str::to_owned),
            epoch,
            priority: tracker.map(|_| 100),
            is_self: tracker == Some(1),
            registered: tracker.is_some(),
            own_priority: Some(100),
            online: 0,
            truncated: false,
        }
    }

    fn changed(app: &mut App, tracker: Option<u8>, epoch: u64) {
        app.on_node_event(Event::TrackerChanged {
            tracker: tracker.map(peer),
            epoch,
            is_self: tracker == Some(1),
        });
    }

    fn last_notice(app: &App) -> String {
        app.room()
            .entries()
            .iter()
            .last()
            .map(|e| e.text().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn the_status_follows_the_events_and_learns_the_nick() {
        let mut app = app(&["lobby"]);
        assert_eq!(app.tracker_label(), None, "nothing said yet: nothing shown");
        changed(&mut app, None, 0);
        assert_eq!(app.tracker_label().as_deref(), Some("tracker: electing…"));
        assert!(app.take_actions().is_empty());
        // Another node won: named by its short fingerprint until the node tells its nick.
        changed(&mut app, Some(2), 1);
        let fp = key(2).public().fingerprint().short();
        assert_eq!(app.tracker_label(), Some(format!("tracker: {fp}")));
        assert_eq!(app.take_actions(), [Action::Tracker { announce: false }]);
        app.on_reply(Reply::Tracker {
            announce: false,
            result: Ok(view(Some(2), Some("bob\u{202e}"), 1)),
        });
        assert_eq!(app.tracker_label().as_deref(), Some("tracker: bob\u{fffd}"));
        // A silent refresh says nothing in the room.
        assert!(!last_notice(&app).contains("tracker"));
        // The same tracker at the same epoch keeps its nick; no new question.
        changed(&mut app, Some(2), 1);
        assert!(app.take_actions().is_empty());
        assert_eq!(app.tracker_label().as_deref(), Some("tracker: bob\u{fffd}"));
        // This node takes over; an event of an older epoch (overtaken) changes nothing.
        changed(&mut app, Some(1), 2);
        assert_eq!(app.tracker_label().as_deref(), Some("tracker: you"));
        changed(&mut app, None, 1);
        assert_eq!(app.tracker_label().as_deref(), Some("tracker: you"));
        assert!(app.take_actions().is_empty());
    }

    #[test]
    fn an_answer_read_before_the_latest_event_does_not_undo_it() {
        let mut app = app(&["lobby"]);
        changed(&mut app, Some(3), 4);
        app.take_actions();
        // Read at epoch 3, answered after the epoch-4 event.
        app.on_reply(Reply::Tracker {
            announce: false,
            result: Ok(view(Some(2), Some("bob"), 3)),
        });
        assert_eq!(app.tracker.as_ref().unwrap().tracker, Some(peer(3)));
        // Same epoch, another tracker: the event came after the answer was read.
        app.on_reply(Reply::Tracker {
            announce: false,
            result: Ok(view(None, None, 4)),
        });
        assert_eq!(app.tracker.as_ref().unwrap().tracker, Some(peer(3)));
        // A newer epoch is taken.
        app.on_reply(Reply::Tracker {
            announce: false,
            result: Ok(view(Some(2), Some("bob"), 5)),
        });
        assert_eq!(app.tracker_label().as_deref(), Some("tracker: bob"));
        // Missed events: the tracker is asked for again.
        app.on_node_event(Event::Lagged { missed: 2 });
        assert!(app
            .take_actions()
            .contains(&Action::Tracker { announce: false }));
    }

    #[test]
    fn the_tracker_command_says_it_in_the_room() {
        let mut app = app(&["lobby"]);
        type_str(&mut app, "/tracker");
        press(&mut app, KeyCode::Enter);
        assert_eq!(app.take_actions(), [Action::Tracker { announce: true }]);
        app.on_reply(Reply::Tracker {
            announce: true,
            result: Ok(view(Some(2), Some("bob"), 7)),
        });
        let said = last_notice(&app);
        let fp = key(2).public().fingerprint().short();
        assert_eq!(
            said,
            format!(
                "tracker: bob {fp} — priority 100, epoch 7; registered, 0 online; \
                 your priority 100"
            )
        );
        assert_eq!(app.tracker_label().as_deref(), Some("tracker: bob"));
        app.on_reply(Reply::Tracker {
            announce: true,
            result: Ok(view(None, None, 8)),
        });
        assert_eq!(
            last_notice(&app),
            "tracker: none, electing (epoch 8); your priority 100"
        );
        app.on_reply(Reply::Tracker {
            announce: true,
            result: Err("the node has stopped".into()),
        });
        assert_eq!(last_notice(&app), "tracker unknown: the node has stopped");
    }

    fn online(n: u8, nick: &str, hops: Option<u16>) -> OnlinePeer {
        OnlinePeer {
            peer_id: peer(n),
            nick: nick.into(),
            fingerprint: key(n).public().fingerprint(),
            addrs: vec!["/ip4/192.0.2.7/tcp/7447".into()],
            priority: Some(100),
            is_self: n == 1,
            connected: hops == Some(1),
            hops,
        }
    }

    #[test]
    fn who_opens_a_panel_of_safe_nicks_and_refreshes_the_status() {
        let mut app = app(&["lobby"]);
        type_str(&mut app, "/who");
        press(&mut app, KeyCode::Enter);
        assert_eq!(app.take_actions(), [Action::Who]);
        app.on_reply(Reply::Who {
            peers: Err("the node has stopped".into()),
            tracker: Err("the node has stopped".into()),
        });
        assert!(app.overlay.is_none());
        assert!(last_notice(&app).contains("the node has stopped"));
        app.on_reply(Reply::Who {
            peers: Ok(vec![
                online(1, "alice", Some(0)),
                online(2, "bob\u{1b}[2J", Some(1)),
                online(3, "", None),
            ]),
            tracker: Ok(view(Some(2), Some("bob"), 3)),
        });
        let Some(Overlay::Who(panel)) = &app.overlay else {
            panic!("the who panel");
        };
        let nicks: Vec<&str> = panel.rows.iter().map(|p| p.nick.as_str()).collect();
        assert_eq!(
            nicks,
            [
                "alice",
                "bob\u{fffd}[2J",
                &key(3).public().fingerprint().short()
            ]
        );
        assert_eq!(panel.more, 0);
        assert_eq!(app.tracker_label().as_deref(), Some("tracker: bob"));
        // Bounded.
        let many = (0..MAX_WHO_ROWS + 5)
            .map(|i| {
                let mut p = online(2, "x", Some(2));
                p.nick = format!("n{i}");
                p
            })
            .collect();
        app.on_reply(Reply::Who {
            peers: Ok(many),
            tracker: Err("gone".into()),
        });
        let Some(Overlay::Who(panel)) = &app.overlay else {
            panic!("the who panel");
        };
        assert_eq!((panel.rows.len(), panel.more), (MAX_WHO_ROWS, 5));
        assert!(panel.tracker.is_none());
    }
}
