//! Which links carry which messages: the shared tree and the per-origin trees (issue 25's fourth
//! round; the reasons are in the [`super`] module docs, "A tree per origin").

use super::*;

/// Most origins remembered as ours ([`Broadcast::spoke`]); beyond, the oldest is forgotten (its
/// next message runs on the shared tree once more).
const MAX_SPOKE: usize = 16;

/// The origins this node published from, oldest first.
#[derive(Debug, Default)]
pub(super) struct Spoke(VecDeque<[u8; 32]>);

impl Spoke {
    /// Notes `key`; whether it is new.
    pub(super) fn insert(&mut self, key: [u8; 32]) -> bool {
        if self.0.contains(&key) {
            return false;
        }
        if self.0.len() >= MAX_SPOKE {
            self.0.pop_front();
        }
        self.0.push_back(key);
        true
    }
}

/// A per-origin tree ([`Trees::PerOrigin`]).
#[derive(Debug)]
pub(super) struct OriginTree<P> {
    /// The neighbours this origin's messages are announced to, not pushed to (every other is
    /// eager for it: a link starts eager in every tree).
    pub(super) lazy: Vec<P>,
    /// When this origin's last message was relayed; the oldest tree is forgotten first.
    pub(super) used: Instant,
    /// The neighbour its last message came from first (none: not known, or published here).
    pub(super) parent: Option<P>,
}

impl<P: Ord + Copy> Broadcast<P> {
    pub(super) fn on_down(&mut self, p: P) {
        // Its queued announcements go with it; missing entries skip it when grafting.
        if self.peers.remove(&p).is_none() {
            return;
        }
        // A node whose last eager link of a tree closed would hear of that tree's messages by
        // one announcement per link until a miss repaired it, and a lost announcement is never
        // repeated: ask a lazy link to push that tree at once. So does a node whose parent in
        // a per-origin tree left (it still has eager links, its children): with a tree per
        // sender, one departure would otherwise leave many trees to the lazy path at once.
        let peers = &self.peers;
        let orphaned = |lazy: &[P]| !lazy.contains(&p) && peers.keys().all(|q| lazy.contains(q));
        let mut repair: Vec<Tree> = Vec::new();
        if orphaned(&self.shared_lazy) {
            repair.push(None);
        }
        for (k, t) in &self.trees {
            if t.parent == Some(p) || orphaned(&t.lazy) {
                repair.push(Some(*k));
            }
        }
        self.shared_lazy.retain(|q| *q != p);
        for t in self.trees.values_mut() {
            t.lazy.retain(|q| *q != p);
            if t.parent == Some(p) {
                t.parent = None;
            }
        }
        for tree in repair {
            let lazy = self.lazy_of(&tree);
            let Some(&q) = lazy.first().or_else(|| self.peers.keys().next()) else {
                continue;
            };
            self.set_eager(q, tree, true);
            self.stats.reconnects += 1;
            self.send(q, Message::Push(tree));
        }
    }

    pub(super) fn per_origin(&self) -> bool {
        matches!(self.config.trees, Trees::PerOrigin(_))
    }

    /// The lazy neighbours of `tree` (none for a tree not kept: every link starts eager).
    pub(super) fn lazy_of(&self, tree: &Tree) -> &[P] {
        match tree {
            None => &self.shared_lazy,
            Some(key) => self.trees.get(key).map_or(&[], |t| &t.lazy),
        }
    }

    /// Decides which tree a message accepted or published here runs on, and notes its origin
    /// for the anchor. With [`Trees::PerOrigin`], a received message runs where its author put
    /// it (`own_tree`, kept by every relay, so every node agrees even when a sender's second
    /// message overtakes its first); our own message runs on our tree if we published from that
    /// origin before and it is not the anchor, else on the shared tree. A new tree floods its
    /// first message, which pays only for senders that speak again; the anchor's messages keep
    /// shaping the shared tree, as with [`Trees::Anchor`].
    pub(super) fn choose_tree(
        &mut self,
        payload: &[u8],
        own_tree: Option<bool>,
        now: Instant,
    ) -> Tree {
        let key = origin(payload)?;
        if self.config.trees != Trees::Shared {
            self.anchor.heard(key, now);
        }
        if !self.per_origin() {
            return None;
        }
        let own = match own_tree {
            Some(flag) => flag,
            None => !self.spoke.insert(key) && !self.anchor.is_anchor(Some(key)),
        };
        if !own {
            return None;
        }
        self.use_tree(key, now);
        Some(key)
    }

    /// Keeps origin `key`'s tree, used at `now`, forgetting the least recently used one if
    /// [`Config::max_trees`] are kept.
    pub(super) fn use_tree(&mut self, key: [u8; 32], now: Instant) {
        if let Some(t) = self.trees.get_mut(&key) {
            t.used = now;
            return;
        }
        if self.trees.len() >= self.config.max_trees {
            let oldest = self
                .trees
                .iter()
                .min_by_key(|(_, t)| t.used)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.trees.remove(&k);
                self.stats.trees_forgotten += 1;
            }
        }
        self.trees.insert(
            key,
            OriginTree {
                lazy: Vec::new(),
                used: now,
                parent: None,
            },
        );
    }

    /// The tree in which a duplicate of a message of `tree` prunes its link, if it does: always
    /// in a per-origin tree and with [`Trees::Shared`]; in the shared tree of [`Trees::Anchor`]
    /// and [`Trees::PerOrigin`], only the anchor's messages.
    pub(super) fn pruned_tree(&self, tree: Tree, payload: &[u8]) -> Option<Tree> {
        match (tree, self.config.trees) {
            (Some(_), _) | (None, Trees::Shared) => Some(tree),
            (None, _) => self.anchor.is_anchor(origin(payload)).then_some(None),
        }
    }

    /// Makes the link to `p` eager or lazy in `tree` (a tree not kept is left alone: its links
    /// are all eager).
    pub(super) fn set_eager(&mut self, p: P, tree: Tree, eager: bool) {
        if !self.peers.contains_key(&p) {
            return;
        }
        let lazy = match tree {
            None => &mut self.shared_lazy,
            Some(key) => match self.trees.get_mut(&key) {
                Some(t) => &mut t.lazy,
                None => return,
            },
        };
        if eager {
            lazy.retain(|q| *q != p);
        } else if !lazy.contains(&p) {
            lazy.push(p);
        }
    }

    /// Makes the link to `p` eager in every tree.
    pub(super) fn set_eager_everywhere(&mut self, p: P) {
        self.shared_lazy.retain(|q| *q != p);
        for t in self.trees.values_mut() {
            t.lazy.retain(|q| *q != p);
        }
    }

    pub(super) fn is_eager(&self, p: &P, tree: &Tree) -> bool {
        self.peers.contains_key(p) && !self.lazy_of(tree).contains(p)
    }
}
