//! Slash commands, sending, and Tab completion.

use meshchat_core::room::{normalize_room, validate_nick};
use meshchat_node::store::MAX_HISTORY;

use crate::commands::{self, Command, Complete, Interface, Parsed};

use super::super::room::{Level, Older, PAGE};
use super::{Action, App, HistoryFor, Overlay, PeersFor};

/// What the input history keeps of a `/join` line that may hold a passphrase (`None`: keep the
/// line as typed): `/join ROOM --key `, to type it again.
fn without_passphrase(line: &str, parsed: &Parsed<'_>) -> Option<String> {
    match parsed {
        Parsed::Command(Command::Join(room, Some(_))) => Some(format!("/join {room} --key ")),
        // Something after the room that is not a well-formed `--key`: it may still be a secret.
        Parsed::Error(commands::Error::KeyExpected { .. }) => {
            let room = line.split_whitespace().nth(1).unwrap_or_default();
            Some(format!("/join {room} --key "))
        }
        _ => None,
    }
}

impl App {
    // ---- completion ----

    /// Tab (`forward`) and Shift+Tab.
    pub(super) fn complete(&mut self, forward: bool) {
        // Candidates are gathered when a completion starts; later presses cycle through them.
        let list = if self.input.is_completing() {
            Vec::new()
        } else {
            self.candidates()
        };
        self.input.complete(move || list, forward);
    }

    /// What the word before the cursor could become, each with what follows it.
    pub fn candidates(&self) -> Vec<String> {
        let word = self.input.word();
        if word.position == 0 && word.prefix.starts_with('/') {
            return commands::available(Interface::Tui)
                .filter(|c| c.name.starts_with(&word.prefix[1..]))
                .map(|c| {
                    let space = if c.takes_args() { " " } else { "" };
                    format!("/{}{space}", c.name)
                })
                .collect();
        }
        let arg = if word.position == 1 {
            word.first
                .strip_prefix('/')
                .and_then(commands::lookup)
                .map(|s| s.complete)
        } else if word.first.starts_with('/') && !word.first.starts_with("//") {
            Some(Complete::None)
        } else {
            None
        };
        match arg {
            Some(Complete::Room) => {
                let prefix = word.prefix.trim_start_matches('#').to_lowercase();
                self.rooms
                    .iter()
                    .filter(|r| r.dm.is_none() && r.name.starts_with(&prefix))
                    .map(|r| format!("{} ", r.name))
                    .collect()
            }
            Some(Complete::Nick) => self
                .book
                .nicks_starting_with(word.prefix, "")
                .into_iter()
                .map(|n| format!("{n} "))
                .collect(),
            Some(Complete::None | Complete::Other) => Vec::new(),
            None => {
                let suffix = if word.position == 0 { ": " } else { " " };
                self.book
                    .nicks_starting_with(word.prefix, &self.me.nick)
                    .into_iter()
                    .map(|n| format!("{n}{suffix}"))
                    .collect()
            }
        }
    }

    // ---- commands ----

    pub(super) fn submit(&mut self) {
        if self.input.text().trim().is_empty() {
            return;
        }
        let line = self.input.submit();
        let parsed = commands::parse(&line, Interface::Tui);
        if let Some(shown) = without_passphrase(&line, &parsed) {
            self.input.redact_last(&shown);
        }
        match parsed {
            Parsed::Text(text) => self.send(text.to_owned()),
            Parsed::Command(cmd) => self.run(cmd),
            Parsed::Error(e) => self.notice(&e.to_string(), Level::Error),
        }
    }

    fn send(&mut self, text: String) {
        if let Some(peer) = self
            .rooms
            .get(self.current)
            .and_then(|r| r.dm.as_ref())
            .map(|d| d.peer)
        {
            if self.room().scroll > 0 {
                self.scroll(isize::MIN / 2);
            }
            self.actions.push(Action::Dm {
                to: peer.to_string(),
                text,
            });
            return;
        }
        let Some(room) = self.rooms.get(self.current).map(|r| r.name.clone()) else {
            self.notice("you are in no room: /join ROOM first", Level::Error);
            self.input.set(&text);
            return;
        };
        // Sending jumps to the newest messages, where the sent one will appear.
        if self.room().scroll > 0 {
            self.scroll(isize::MIN / 2);
        }
        self.actions.push(Action::Send { room, text });
    }

    fn run(&mut self, cmd: Command<'_>) {
        match cmd {
            Command::Join(arg, Some(key)) => self.join_private(arg, key.0),
            Command::Join(arg, None) => match normalize_room(arg) {
                Ok(room) => match self.room_index(&room) {
                    Some(i) => self.switch_to(i),
                    None => self.actions.push(Action::Join { room, key: None }),
                },
                Err(e) => self.notice(&e.to_string(), Level::Error),
            },
            Command::Create(arg) => self.create_room(arg),
            Command::Invite(who) => self.invite(who),
            Command::Remove(who) => self.remove_member(who),
            Command::Members => self.members(),
            Command::Leave(None) if self.room().dm.is_some() => {
                // Closing a conversation: its messages stay in the database (`/msg` reopens it).
                let shown = self.title(self.room());
                self.rooms.remove(self.current);
                if self.current >= self.rooms.len() {
                    self.current = self.rooms.len().saturating_sub(1);
                }
                if let Some(r) = self.rooms.get_mut(self.current) {
                    r.unread = 0;
                    r.mentions = 0;
                }
                self.notice(&format!("closed {shown}"), Level::Info);
            }
            Command::Leave(arg) => {
                let room = match arg {
                    Some(a) => normalize_room(a).map_err(|e| e.to_string()),
                    None => self
                        .rooms
                        .get(self.current)
                        .map(|r| r.name.clone())
                        .ok_or_else(|| "you are in no room".to_owned()),
                };
                match room {
                    Ok(room) => self.actions.push(Action::Leave { room }),
                    Err(e) => self.notice(&e, Level::Error),
                }
            }
            Command::Rooms => {
                let list: Vec<String> = self
                    .rooms
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let unread = if r.unread > 0 {
                            format!(" ({} unread)", r.unread)
                        } else {
                            String::new()
                        };
                        let here = if i == self.current { " (here)" } else { "" };
                        format!("{} {}{unread}{here}", i + 1, self.title(r))
                    })
                    .collect();
                let text = if list.is_empty() {
                    "you are in no room".to_owned()
                } else {
                    format!("rooms: {}", list.join(", "))
                };
                self.notice(&text, Level::Info);
            }
            Command::Nick(nick) => match validate_nick(nick) {
                Ok(()) => self.actions.push(Action::Nick {
                    nick: nick.to_owned(),
                }),
                Err(e) => self.notice(&e.to_string(), Level::Error),
            },
            Command::Peers => self.actions.push(Action::Peers {
                purpose: PeersFor::Panel,
            }),
            Command::Connect(addr) => {
                self.notice(&format!("connecting to {addr} …"), Level::Info);
                self.actions.push(Action::Connect {
                    addr: addr.to_owned(),
                });
            }
            Command::Whois(query) => self.actions.push(Action::Whois {
                query: query.to_owned(),
            }),
            Command::History(n) => {
                let Some(room) = self.rooms.get_mut(self.current) else {
                    self.notice("you are in no room", Level::Error);
                    return;
                };
                let limit = n.unwrap_or(PAGE).clamp(1, MAX_HISTORY);
                room.older = Older::Loading;
                let action = Action::History {
                    room: room.name.clone(),
                    before: room.oldest_message(),
                    limit,
                    purpose: HistoryFor::Older { announce: true },
                };
                self.actions.push(action);
            }
            Command::Msg(who, Some(text)) => self.actions.push(Action::Dm {
                to: who.to_owned(),
                text: text.to_owned(),
            }),
            Command::Msg(who, None) | Command::Dms(Some(who)) => {
                self.actions.push(Action::OpenDm {
                    who: who.to_owned(),
                })
            }
            Command::Dms(None) => self.actions.push(Action::Conversations { announce: true }),
            Command::Routes => self.actions.push(Action::Routes),
            Command::Who => self.actions.push(Action::Who),
            Command::Tracker => self.actions.push(Action::Tracker { announce: true }),
            Command::File(path) => self.send_file(path),
            Command::Accept(n) => self.accept_file(n),
            Command::Files => self.actions.push(Action::Files),
            Command::Cancel(n) => self.cancel_file(n),
            Command::Id => self.open(Overlay::Id),
            Command::Help => self.open(Overlay::Help),
            Command::Quit => self.quit = true,
        }
    }
}
