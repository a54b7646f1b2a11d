//! Direct-message conversations in the interface: opening one (by peer, closing the quietest
//! beyond [`MAX_CONVERSATIONS`](super::MAX_CONVERSATIONS)), showing a DM and its state, the
//! refusal of a nick that several keys use, the `/whois` panel, and giving a refused DM's text
//! back to the input line.

use super::*;

impl App {
    /// The conversation with `peer`, opened (and its first page asked for) if it is not. A
    /// `nick` (the latest known) relabels it; `last_ms` is when its newest DM was written.
    /// Opening one past [`MAX_CONVERSATIONS`] closes the quietest other one.
    pub(super) fn conversation(&mut self, peer: PeerId, nick: Option<&str>, last_ms: u64) -> usize {
        let nick = nick
            .filter(|n| !n.trim().is_empty())
            .map(wrap::sanitize_name);
        if let Some(i) = self.room_index(&conversation_name(&peer)) {
            if let Some(d) = self.rooms[i].dm.as_mut() {
                if let Some(nick) = nick {
                    d.nick = nick;
                }
                d.last_ms = d.last_ms.max(last_ms);
            }
            return i;
        }
        if self.conversation_count() >= MAX_CONVERSATIONS {
            self.close_quietest_conversation();
        }
        let fingerprint = people::fingerprint_of(&peer);
        let nick = nick.unwrap_or_else(|| self.nick_of(&peer));
        self.rooms
            .push(Room::conversation(peer, &nick, fingerprint, last_ms));
        let i = self.rooms.len() - 1;
        self.load_first_page(i);
        i
    }

    pub(super) fn conversation_count(&self) -> usize {
        self.rooms.iter().filter(|r| r.dm.is_some()).count()
    }

    /// Closes the conversation (not the one on screen) with nothing unread and the oldest DM, or
    /// failing that the one with the oldest DM.
    pub(super) fn close_quietest_conversation(&mut self) {
        let quietest = self
            .rooms
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.current)
            .filter_map(|(i, r)| r.dm.as_ref().map(|d| (i, (r.unread > 0, d.last_ms))))
            .min_by_key(|(_, k)| *k)
            .map(|(i, _)| i);
        let Some(i) = quietest else {
            return;
        };
        let title = self.title(&self.rooms[i]);
        self.rooms.remove(i);
        if self.current > i {
            self.current -= 1;
        }
        self.notice(
            &format!(
                "closed {title}: at most {MAX_CONVERSATIONS} conversations stay open \
                 (its messages are kept; /msg reopens it)"
            ),
            Level::Info,
        );
    }

    pub(super) fn on_dm(&mut self, d: DmView) {
        self.book
            .learn(d.from, d.fingerprint, &d.nick, d.timestamp_ms);
        // Our own DM says our nick: theirs is whatever is known (the send's answer tells it).
        let nick = if d.own {
            self.book.get(&d.peer).map(|k| k.nick.clone())
        } else {
            Some(d.nick.clone())
        };
        let i = self.conversation(d.peer, nick.as_deref(), d.timestamp_ms);
        let msg = Msg::from_dm(&d);
        let own = msg.own;
        let label = self.label_width(&msg);
        let geo = self.geometry(&self.rooms[i]);
        let shown = i == self.current;
        let room = &mut self.rooms[i];
        let below = match room.insert(Entry::message(msg, d.timestamp_ms), label, geo) {
            Inserted::Duplicate => {
                // A page raced the event: the event's state is the newer.
                if let Some(state) = d.state {
                    room.set_state(&d.id, state, geo);
                }
                return;
            }
            Inserted::Added { below } => below,
            Inserted::Beyond => true,
            Inserted::Earlier => false,
        };
        if !own {
            if !shown {
                // A DM is addressed to the user: counted as a mention.
                room.unread = room.unread.saturating_add(1);
                room.mentions = room.mentions.saturating_add(1);
            } else if room.scroll > 0 && below {
                room.new_below = room.new_below.saturating_add(1);
            }
        }
        room.trim();
    }

    /// `/dms`: the conversations the node has, newest first, in one notice.
    pub(super) fn announce_conversations(&mut self, list: &[Conversation]) {
        let mine = self.me.peer_id;
        let list: Vec<String> = list
            .iter()
            .filter(|c| c.peer != mine)
            .map(|c| {
                let nick = if c.nick.trim().is_empty() {
                    self.nick_of(&c.peer)
                } else {
                    wrap::sanitize_name(&c.nick)
                };
                format!("@{nick} {} ({})", c.fingerprint.short(), c.count)
            })
            .collect();
        let text = if list.is_empty() {
            "no direct messages yet; /msg WHO TEXT starts one".to_owned()
        } else {
            format!(
                "conversations (DMs in each): {}; /msg WHO opens one",
                list.join(", ")
            )
        };
        self.notice(&text, Level::Info);
    }

    /// Says that `nick` names several keys, with a fingerprint prefix to type for each.
    pub(super) fn refuse_ambiguous(&mut self, nick: &str, fingerprints: &[String]) {
        let typed = people::distinct_prefixes(fingerprints, 8);
        let mut list: Vec<String> = typed
            .iter()
            .take(MAX_CANDIDATES_SHOWN)
            .map(|p| format!("/msg {p}"))
            .collect();
        if typed.len() > MAX_CANDIDATES_SHOWN {
            list.push(format!("{} more", typed.len() - MAX_CANDIDATES_SHOWN));
        }
        self.notice(
            &format!(
                "{nick} names {} keys: name one by fingerprint — {} \
                 (/whois {nick} compares them)",
                fingerprints.len(),
                list.join(", ")
            ),
            Level::Error,
        );
    }

    /// `/whois`: everyone the nick book or the node's profiles know as `query`.
    pub(super) fn show_whois(
        &mut self,
        query: String,
        peers: Result<Vec<PeerInfo>, String>,
        profiles: Result<Vec<ProfileView>, String>,
    ) {
        let peers = peers.unwrap_or_default();
        let addrs_of = |peer: &PeerId, own: bool, me: &Me| {
            if own {
                Some(me.listen.clone())
            } else {
                peers
                    .iter()
                    .find(|p| p.peer_id == *peer)
                    .map(|p| p.addrs.clone())
            }
        };
        let reach_of = |peer: &PeerId| match &profiles {
            Ok(found) => found
                .iter()
                .find(|p| p.peer_id == *peer)
                .map_or(Reach::NoProfile, |p| Reach::Hops(p.hops)),
            Err(_) => Reach::Unknown,
        };
        let mut rows: Vec<WhoisRow> = self
            .book
            .find(&query)
            .into_iter()
            .map(|(peer, k)| {
                let own = peer == self.me.peer_id;
                WhoisRow {
                    nick: k.nick.clone(),
                    peer_id: peer,
                    fingerprint: k.fingerprint,
                    last_seen_ms: (!own).then_some(k.last_seen_ms),
                    addrs: addrs_of(&peer, own, &self.me),
                    reach: reach_of(&peer),
                    own,
                }
            })
            .collect();
        // People whose profile reached the node but who never wrote where this interface saw.
        for p in profiles.iter().flatten() {
            if rows.iter().any(|r| r.peer_id == p.peer_id) {
                continue;
            }
            let own = p.peer_id == self.me.peer_id;
            rows.push(WhoisRow {
                nick: wrap::sanitize_name(&p.nick),
                peer_id: p.peer_id,
                fingerprint: p.fingerprint,
                last_seen_ms: None,
                addrs: addrs_of(&p.peer_id, own, &self.me),
                reach: Reach::Hops(p.hops),
                own,
            });
        }
        if rows.len() > MAX_WHOIS_ROWS {
            self.notice(
                &format!(
                    "{} keys match {query}: the panel lists {MAX_WHOIS_ROWS}",
                    rows.len()
                ),
                Level::Info,
            );
            rows.truncate(MAX_WHOIS_ROWS);
        }
        if rows.is_empty() {
            let why = match profiles {
                Err(e) => e,
                Ok(_) => format!("nobody known as {query} (from messages or profiles)"),
            };
            self.notice(&why, Level::Error);
        } else {
            self.open(Overlay::Whois { query, rows });
        }
    }

    /// Puts an unsent DM back in an empty input line: as it was typed in its conversation, or
    /// as the `/msg` command, so Enter tries again.
    pub(super) fn give_back_dm(&mut self, to: &str, text: String) {
        if !self.input.is_empty() {
            return;
        }
        let here = self
            .room()
            .dm
            .as_ref()
            .is_some_and(|d| d.peer.to_string() == to);
        if here {
            self.input.set(&text);
        } else {
            self.input.set(&format!("/msg {to} {text}"));
        }
    }
}
