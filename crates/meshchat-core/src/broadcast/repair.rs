//! Repairs: messages announced but not received (grafted after a timeout, from the announcers in
//! turn), and the answers to a neighbour's grafts, within its budget.

use super::*;

impl<P: Ord + Copy> Broadcast<P> {
    pub(super) fn add_missing(&mut self, from: P, id: MessageId, hops: u16, now: Instant) {
        if let Some(m) = self.missing.get_mut(&id) {
            if m.sources.len() < self.config.max_sources && !m.sources.iter().any(|s| s.0 == from) {
                m.sources.push((from, hops));
            }
            return;
        }
        if self.missing.len() >= self.config.max_missing {
            self.stats.missing_full += 1;
            return;
        }
        if self.missing_owned.get(&from).copied().unwrap_or(0) >= self.config.max_missing_per_peer {
            self.stats.missing_peer_full += 1;
            return;
        }
        let deadline = now + self.config.graft_timeout;
        self.insert_missing(id, from, vec![(from, hops)], deadline);
    }

    pub(super) fn insert_missing(
        &mut self,
        id: MessageId,
        owner: P,
        sources: Vec<(P, u16)>,
        at: Instant,
    ) {
        let old = self.missing.insert(
            id,
            Missing {
                sources,
                owner,
                next: 0,
                attempts: 0,
                deadline: at,
            },
        );
        if let Some(old) = old {
            self.deadlines.remove(&(old.deadline, id));
            self.disown(old.owner);
        }
        *self.missing_owned.entry(owner).or_default() += 1;
        self.deadlines.insert((at, id));
    }

    pub(super) fn remove_missing(&mut self, id: &MessageId) {
        if let Some(m) = self.missing.remove(id) {
            self.deadlines.remove(&(m.deadline, *id));
            self.disown(m.owner);
        }
    }

    pub(super) fn disown(&mut self, owner: P) {
        if let Some(n) = self.missing_owned.get_mut(&owner) {
            *n -= 1;
            if *n == 0 {
                self.missing_owned.remove(&owner);
            }
        }
    }

    /// Answers a graft: each listed id still cached, at most once per neighbour within
    /// [`Config::graft_answer_window`], within the neighbour's byte budget. An id beyond the
    /// budget is not answered, and makes the Graft one offence unless it was refused to that
    /// neighbour within [`Config::graft_refusal_window`] already (an honest retry).
    pub(super) fn on_graft(&mut self, from: P, ids: Vec<MessageId>, now: Instant) {
        // With per-origin trees, the link becomes eager in the trees of the ids it asks for
        // (below); a Graft with no ids, or one to a node keeping one tree, makes it eager in
        // every tree.
        if ids.is_empty() || !self.per_origin() {
            self.set_eager_everywhere(from);
        }
        let (answer_window, refusal_window) = (
            self.config.graft_answer_window,
            self.config.graft_refusal_window,
        );
        let mut offence = false;
        for id in ids {
            let tree = match self.cache.get(&id) {
                Some(c) => c.tree,
                None => {
                    self.stats.graft_misses += 1;
                    continue;
                }
            };
            self.set_eager(from, tree, true);
            let Some(c) = self.cache.get_mut(&id) else {
                continue;
            };
            let mut refused_before = false;
            if let Some(i) = c.answered.iter().position(|a| a.peer == from) {
                let last = c.answered.swap_remove(i);
                let age = now.saturating_duration_since(last.at);
                if !last.refused && age < answer_window {
                    c.answered.push(last);
                    self.stats.graft_repeats += 1;
                    continue;
                }
                refused_before = last.refused && age < refusal_window;
            }
            let answered = self.graft_budget.take(from, c.payload.len() as f64, now);
            c.answered.push(Answer {
                peer: from,
                at: now,
                refused: !answered,
            });
            if !answered {
                self.stats.graft_over_budget += 1;
                offence |= !refused_before;
                continue;
            }
            let message = Message::Gossip {
                id,
                hops: c.hops,
                own_tree: c.tree.is_some(),
                payload: c.payload.clone(),
            };
            self.stats.gossip_sent += 1;
            self.out.push_back(Output::Send { to: from, message });
        }
        if offence {
            self.out.push_back(Output::Misbehaved {
                peer: from,
                offence: Offence::GraftOverBudget,
            });
        }
    }

    /// Sends due announcements and grafts.
    pub(super) fn run_timers(&mut self, now: Instant) {
        if self.flush_at.is_some_and(|t| t <= now) {
            self.flush_at = None;
            let due: Vec<P> = self
                .peers
                .iter()
                .filter(|(_, p)| !p.ihave.is_empty())
                .map(|(k, _)| *k)
                .collect();
            for p in due {
                self.flush(p);
            }
        }
        let mut grafts: BTreeMap<P, Vec<MessageId>> = BTreeMap::new();
        let per_origin = self.per_origin();
        while let Some(&(t, id)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(m) = self.missing.get_mut(&id) else {
                continue;
            };
            if m.attempts >= self.config.max_graft_attempts {
                let owner = m.owner;
                self.missing.remove(&id);
                self.disown(owner);
                self.stats.given_up += 1;
                continue;
            }
            let (peers, shared_lazy) = (&self.peers, &self.shared_lazy);
            let n = m.sources.len();
            // First ask an announcer whose link is eager in the shared tree, if any: its push
            // was lost (it announces after pushing, and links keep order), and asking it again
            // adds no eager link, so no cycle (in the shared tree only the anchor's duplicates
            // prune one). A message of a per-origin tree (its origin is unknown here) may come
            // from another, at the price of a duplicate, which prunes there. Then the
            // announcers in turn.
            let eager = |i: &usize| {
                let p = &m.sources[*i].0;
                peers.contains_key(p) && !shared_lazy.contains(p)
            };
            let first = if m.attempts == 0 {
                (0..n).find(eager)
            } else {
                None
            };
            let i = match first.or_else(|| {
                (0..n)
                    .map(|k| (m.next + k) % n)
                    .find(|&i| peers.contains_key(&m.sources[i].0))
            }) {
                Some(i) => i,
                None if !peers.is_empty() => {
                    // Every announcer is gone (crashed, or closed the connection): the message
                    // may still be next door, since a lost announcement is never repeated. Ask
                    // the neighbours we have.
                    m.sources = peers
                        .keys()
                        .take(self.config.max_sources)
                        .map(|p| (*p, u16::MAX))
                        .collect();
                    self.stats.fallback_grafts += 1;
                    0
                }
                None => {
                    let owner = m.owner;
                    self.missing.remove(&id);
                    self.disown(owner);
                    self.stats.given_up += 1;
                    continue;
                }
            };
            let n = m.sources.len();
            m.next = (i + 1) % n;
            m.attempts += 1;
            m.deadline = now + self.config.graft_retry;
            self.deadlines.insert((m.deadline, id));
            grafts.entry(m.sources[i].0).or_default().push(id);
        }
        for (p, ids) in grafts {
            // With per-origin trees the link becomes eager in a tree when its answer arrives.
            if !per_origin {
                self.set_eager(p, None, true);
            }
            self.stats.grafts_sent += ids.len() as u64;
            for chunk in ids.chunks(wire::MAX_GRAFT) {
                self.send(p, Message::Graft(chunk.to_vec()));
            }
        }
    }
}
