//! Private rooms (PROTOCOL §10): `/join ROOM --key`, `/create`, `/invite`, `/remove`,
//! `/members`, the node's answers, and its unasked `joined` (an invite came) and `members` (an
//! invite room's membership changed) events.

use meshchat_api as api;
use meshchat_core::room::normalize_room;
use meshchat_node::{MemberView, PrivateKind, RoomView};

use super::super::room::Level;
use super::super::wrap;
use super::{Action, App, Passphrase, Reply};

/// Members a `/members` answer lists at most (one notice each).
const MAX_MEMBERS_SHOWN: usize = 50;

/// A member as `/members` shows it: `★ alice 1a2b3c4d` for an admin, `  bob 5e6f7a8b`.
fn member_line(m: &MemberView) -> String {
    let star = if m.admin { "★" } else { " " };
    format!(
        "{star} {} {}",
        wrap::sanitize_name(&m.nick),
        m.fingerprint.short()
    )
}

/// The kind named in the JSON interface's terms.
fn kind_of(s: &str) -> Option<PrivateKind> {
    match s {
        "passphrase" => Some(PrivateKind::Passphrase),
        "invite" => Some(PrivateKind::Invite),
        _ => None,
    }
}

impl App {
    // ---- commands ----

    /// `/join ROOM --key PASSPHRASE`.
    pub(super) fn join_private(&mut self, arg: &str, passphrase: &str) {
        match normalize_room(arg) {
            Ok(room) => self.actions.push(Action::Join {
                room,
                key: Some(Passphrase(passphrase.to_owned())),
            }),
            Err(e) => self.notice(&e.to_string(), Level::Error),
        }
    }

    pub(super) fn create_room(&mut self, arg: &str) {
        match normalize_room(arg) {
            Ok(room) if self.room_index(&room).is_some() => {
                self.notice(&format!("you are already in #{room}"), Level::Error)
            }
            Ok(room) => self.actions.push(Action::Create { room }),
            Err(e) => self.notice(&e.to_string(), Level::Error),
        }
    }

    /// The private room shown, for `/invite`, `/remove` and `/members` (`what` names the
    /// command in the refusal).
    fn private_room_shown(&mut self, what: &str) -> Option<String> {
        let why = match self.rooms.get(self.current) {
            None => "you are in no room".to_owned(),
            Some(r) if r.dm.is_some() => {
                format!("/{what} is for a private room, not a conversation")
            }
            Some(r) if r.private.is_none() => format!(
                "#{} is a public room: anyone may join it (/create makes a private one)",
                r.name
            ),
            Some(r) => return Some(r.name.clone()),
        };
        self.notice(&why, Level::Error);
        None
    }

    pub(super) fn invite(&mut self, who: &str) {
        if let Some(room) = self.private_room_shown("invite") {
            self.actions.push(Action::Invite {
                room,
                who: who.to_owned(),
            });
        }
    }

    pub(super) fn remove_member(&mut self, who: &str) {
        if let Some(room) = self.private_room_shown("remove") {
            self.actions.push(Action::Remove {
                room,
                who: who.to_owned(),
            });
        }
    }

    pub(super) fn members(&mut self) {
        if let Some(room) = self.private_room_shown("members") {
            self.actions.push(Action::Members { room });
        }
    }

    // ---- answers ----

    pub(super) fn on_private_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Created { room, result } => match result {
                Ok(name) => {
                    let i = self.open_room(&name);
                    self.rooms[i].private = Some(PrivateKind::Invite);
                    self.rooms[i].members = Some(1);
                    self.switch_to(i);
                    let title = self.title(&self.rooms[i]);
                    self.notice(
                        &format!("created {title}: only those you /invite can read it"),
                        Level::Info,
                    );
                }
                Err(e) => self.notice(&format!("cannot create #{room}: {e}"), Level::Error),
            },
            Reply::Invited { room, who, result } => {
                let shown = self.shown_room(&room);
                let who = wrap::sanitize_name(&who);
                match result {
                    Ok(_) => self.notice(
                        &format!("invited {who} to {shown} (the invite travels by DM)"),
                        Level::Info,
                    ),
                    Err(e) => self.notice(
                        &format!("cannot invite {who} to {shown}: {e}"),
                        Level::Error,
                    ),
                }
            }
            Reply::Removed { room, who, result } => {
                let shown = self.shown_room(&room);
                let who = wrap::sanitize_name(&who);
                match result {
                    Ok(_) => self.notice(
                        &format!("removed {who} from {shown}: a new key went to the others"),
                        Level::Info,
                    ),
                    Err(e) => self.notice(
                        &format!("cannot remove {who} from {shown}: {e}"),
                        Level::Error,
                    ),
                }
            }
            Reply::Members { room, result } => match result {
                Ok(members) => self.show_members(&room, &members),
                Err(e) => self.notice(
                    &format!("members of {} unavailable: {e}", self.shown_room(&room)),
                    Level::Error,
                ),
            },
            Reply::Rooms(result) => match result {
                Ok(rooms) => self.take_rooms(rooms),
                Err(e) => tracing::debug!("room kinds unavailable: {e}"),
            },
            _ => {}
        }
    }

    /// The node's view of the joined rooms: kinds and member counts.
    pub fn take_rooms(&mut self, rooms: Vec<RoomView>) {
        for v in rooms {
            if let Some(i) = self.room_index(&v.name) {
                let r = &mut self.rooms[i];
                r.private = v.private;
                r.members = v.members;
            }
        }
    }

    fn show_members(&mut self, room: &str, members: &[MemberView]) {
        if let Some(i) = self.room_index(room) {
            self.rooms[i].members = Some(members.len() as u64);
        }
        let shown = self.shown_room(room);
        let n = members.len();
        self.notice(
            &format!(
                "members of {shown}: {n} (★: admin){}",
                if n == 0 { ", none heard yet" } else { "" }
            ),
            Level::Info,
        );
        let mut sorted: Vec<&MemberView> = members.iter().collect();
        sorted.sort_by(|a, b| b.admin.cmp(&a.admin).then_with(|| a.nick.cmp(&b.nick)));
        for m in sorted.iter().take(MAX_MEMBERS_SHOWN) {
            let line = member_line(m);
            self.notice(&line, Level::Info);
        }
        if n > MAX_MEMBERS_SHOWN {
            self.notice(
                &format!("… and {} more", n - MAX_MEMBERS_SHOWN),
                Level::Info,
            );
        }
    }

    /// `🔒#room` for a private room in the list, else `#room`.
    fn shown_room(&self, room: &str) -> String {
        match self.room_index(room) {
            Some(i) => self.title(&self.rooms[i]),
            None => format!("#{room}"),
        }
    }

    // ---- unasked events ----

    /// A private room event from the node (`joined` by an invite, `members` changed).
    pub(super) fn on_room_event(&mut self, e: api::Event) {
        match e {
            api::Event::Joined { room, private, by } => {
                let i = self.open_room(&room);
                let r = &mut self.rooms[i];
                r.private = private.as_deref().and_then(kind_of).or(r.private);
                r.removed = false;
                let title = self.title(&self.rooms[i]);
                match by {
                    Some(peer) => {
                        let who = peer
                            .parse()
                            .map_or_else(|_| peer.clone(), |p| self.nick_of(&p));
                        self.notice(&format!("{who} invited you to {title}"), Level::Info);
                    }
                    None => self.notice(&format!("joined {title}"), Level::Info),
                }
            }
            api::Event::Members { room, members } => {
                let Some(i) = self.room_index(&room) else {
                    return;
                };
                let me = self.me.peer_id.to_string();
                let member = members.iter().any(|m| m.peer_id == me);
                let r = &mut self.rooms[i];
                r.members = Some(members.len() as u64);
                let was_removed = std::mem::replace(&mut r.removed, !member);
                let title = self.title(&self.rooms[i]);
                if !member && !was_removed {
                    self.notice(
                        &format!(
                            "you were removed from {title}: what came before stays readable, \
                             nothing new will be (/leave closes it)"
                        ),
                        Level::Error,
                    );
                } else if member && was_removed {
                    self.notice(&format!("you are a member of {title} again"), Level::Info);
                }
            }
            _ => {}
        }
    }
}
