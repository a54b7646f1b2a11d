//! File transfers in the full-screen interface: `/file`, `/accept`, `/files`, `/cancel`, the
//! offers and results as notices, and a progress bar with rate and time left for every
//! download under way (drawn above the status bar, see `render::transfers`).

use std::collections::HashMap;
use std::time::Instant;

use meshchat_api::{self as api, FileState};
use meshchat_core::room::human_size;

use super::{Action, App, Level, Reply};
use crate::files::{self, Meters, Numbers};

/// Progress bars shown at once; further transfers are counted on the last row.
pub const MAX_BARS: usize = 3;

/// What the interface knows of file transfers.
#[derive(Debug, Default)]
pub struct Transfers {
    /// Short numbers for offer ids, as `/accept N` takes them.
    pub numbers: Numbers,
    meters: Meters,
    /// Transfers under way, oldest first.
    pub active: Vec<Transfer>,
    /// Names of the offers seen (and whether ours), for the bars of transfers that start
    /// after them; forgotten all at once past [`KNOWN`].
    known: HashMap<String, (String, bool)>,
}

/// Offers whose names are kept for their bars.
const KNOWN: usize = 1000;

/// A download under way, as its bar shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    pub id: String,
    pub n: usize,
    pub name: String,
    pub bytes: u64,
    pub total: u64,
    /// Bytes a second, smoothed (0 until measured).
    pub rate: f64,
    /// Our own offer being fetched by the person we sent it to (an upload).
    pub up: bool,
}

impl Transfers {
    /// Rows the bars take (0 with no transfer).
    pub fn rows(&self) -> u16 {
        self.active.len().min(MAX_BARS) as u16
    }

    /// Remembers an offer's name for its bar.
    fn know(&mut self, f: &api::File) {
        if self.known.len() >= KNOWN {
            self.known.clear();
        }
        self.known.insert(f.id.clone(), (f.name.clone(), f.own));
    }

    fn start(&mut self, id: &str, total: u64) -> &mut Transfer {
        let n = self.numbers.number(id);
        let i = match self.active.iter().position(|t| t.id == id) {
            Some(i) => i,
            None => {
                let (name, up) = self
                    .known
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| ("file".to_owned(), false));
                self.active.push(Transfer {
                    id: id.to_owned(),
                    n,
                    name: crate::tui::wrap::sanitize_name(&name),
                    bytes: 0,
                    total,
                    rate: 0.0,
                    up,
                });
                self.active.len() - 1
            }
        };
        &mut self.active[i]
    }

    fn end(&mut self, id: &str) {
        self.active.retain(|t| t.id != id);
        self.meters.done(id);
    }
}

impl App {
    /// `/file PATH`: offered to the conversation shown (a room, or one person).
    pub(super) fn send_file(&mut self, path: &str) {
        if self.rooms.is_empty() {
            return self.notice("you are in no room: /join ROOM first", Level::Error);
        }
        let room = self.room();
        let (room, to) = match &room.dm {
            Some(dm) => (None, Some(dm.peer.to_string())),
            None => (Some(room.name.clone()), None),
        };
        self.notice(&format!("hashing {path}…"), Level::Info);
        self.actions.push(Action::SendFile {
            room,
            to,
            path: path.to_owned(),
        });
    }

    /// `/accept [N]`: offer N, or the newest offer not fetched.
    pub(super) fn accept_file(&mut self, n: Option<usize>) {
        let id = match n {
            Some(n) => match self.transfers.numbers.id(n) {
                Some(id) => Some(id.to_owned()),
                None => {
                    return self.notice(&format!("no file {n}; /files lists them"), Level::Error)
                }
            },
            None => None,
        };
        self.actions.push(Action::AcceptFile { id });
    }

    /// `/cancel N`.
    pub(super) fn cancel_file(&mut self, n: &str) {
        let Ok(n) = n.parse::<usize>() else {
            return self.notice("usage: /cancel N (the number /files shows)", Level::Error);
        };
        match self.transfers.numbers.id(n) {
            Some(id) => {
                let id = id.to_owned();
                self.actions.push(Action::CancelFile { id });
            }
            None => self.notice(&format!("no file {n}; /files lists them"), Level::Error),
        }
    }

    pub(super) fn on_file_event(&mut self, e: api::Event) {
        match e {
            api::Event::FileOffer(f) => {
                self.transfers.know(&f);
                let n = self.transfers.numbers.number(&f.id);
                let line = files::offer_line(n, &f);
                self.notice(
                    line.trim_start_matches(&format!("[file {n}] ")),
                    Level::Info,
                );
            }
            api::Event::FileProgress { id, bytes, total } => {
                let now = Instant::now();
                let rate = self.transfers.meters.update(&id, bytes, now);
                if bytes >= total {
                    // An upload's end (a download's comes as `file_done`).
                    self.transfers.end(&id);
                    return;
                }
                let t = self.transfers.start(&id, total);
                t.bytes = bytes;
                t.total = total;
                t.rate = rate;
            }
            api::Event::FileDone { id, path, .. } => {
                let n = self.transfers.numbers.number(&id);
                self.transfers.end(&id);
                self.notice(&format!("file {n} done, verified: {path}"), Level::Info);
            }
            api::Event::FileFailed { id, reason } => {
                let n = self.transfers.numbers.number(&id);
                self.transfers.end(&id);
                self.notice(&format!("file {n} failed: {reason}"), Level::Error);
            }
            _ => {}
        }
    }

    pub(super) fn on_file_reply(&mut self, reply: Reply) {
        match reply {
            Reply::FileOffered(Ok(f)) => {
                self.transfers.know(&f);
                let n = self.transfers.numbers.number(&f.id);
                self.notice(
                    &format!(
                        "file {n}: offered {} ({}); it is read from {} when fetched",
                        f.name,
                        human_size(f.size),
                        f.path.as_deref().unwrap_or("?")
                    ),
                    Level::Info,
                );
            }
            Reply::FileOffered(Err(e)) => self.notice(&format!("not offered: {e}"), Level::Error),
            Reply::FileAccepted(Ok(f)) => {
                self.transfers.know(&f);
                let n = self.transfers.numbers.number(&f.id);
                let t = self.transfers.start(&f.id, f.size);
                t.bytes = t.bytes.max(f.bytes);
                self.notice(
                    &format!("file {n}: fetching {} ({})", f.name, human_size(f.size)),
                    Level::Info,
                );
            }
            Reply::FileAccepted(Err(e)) => self.notice(&format!("not fetched: {e}"), Level::Error),
            Reply::FileCancelled { id, result } => {
                let n = self.transfers.numbers.number(&id);
                match result {
                    Ok(()) => {
                        self.transfers.end(&id);
                        self.notice(&format!("file {n} cancelled"), Level::Info);
                    }
                    Err(e) => self.notice(&e, Level::Error),
                }
            }
            Reply::Files(Ok(list)) if list.is_empty() => {
                self.notice("no file offers yet", Level::Info)
            }
            Reply::Files(Ok(list)) => {
                for f in list.iter().rev() {
                    self.transfers.know(f);
                    let n = self.transfers.numbers.number(&f.id);
                    if f.state == FileState::Downloading {
                        let t = self.transfers.start(&f.id, f.size);
                        t.bytes = t.bytes.max(f.bytes);
                    }
                    let line = files::list_line(n, f);
                    self.notice(
                        line.trim_start_matches(&format!("[file {n}] ")),
                        Level::Info,
                    );
                }
            }
            Reply::Files(Err(e)) => self.notice(&e, Level::Error),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_follow_progress_and_end() {
        let mut t = Transfers::default();
        t.start("a", 100).bytes = 10;
        t.start("b", 100);
        assert_eq!(t.rows(), 2);
        assert_eq!(t.active[0].n, 1);
        assert_eq!(t.active[0].name, "file", "a name not known yet");
        assert_eq!(t.start("a", 100).bytes, 10, "the same transfer");
        t.end("a");
        assert_eq!(t.rows(), 1);
    }
}
