//! What a node knows of the others: who is reachable (from the routing table), who is
//! eligible and at which priority (from their own messages, or a roster's word), and which
//! candidates stayed silent when asked. The election's view of who the live candidates are.

use std::collections::{BTreeMap, BTreeSet};

use super::Rank;

/// What is known of another node's eligibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    priority: Option<u32>,
    /// Heard from the node itself (a roster's word does not override it).
    direct: bool,
}

#[derive(Debug)]
pub(super) struct Peers<P> {
    me: P,
    known: BTreeMap<P, Known>,
    reachable: BTreeSet<P>,
    /// Candidates that did not answer an election: not asked, not counted as alive, until
    /// heard from again (or their route comes back).
    suspected: BTreeSet<P>,
    max_known: usize,
    max_reachable: usize,
}

/// What became of a route change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// Newly reachable (suspicion dropped), or still reachable.
    Up,
    /// No longer reachable.
    Lost,
    /// Nothing changed (already unreachable).
    Same,
    /// Not remembered: the reachable set is full.
    Full,
}

impl<P: Copy + Ord> Peers<P> {
    pub(super) fn new(me: P, max_known: usize, max_reachable: usize) -> Self {
        Self {
            me,
            known: BTreeMap::new(),
            reachable: BTreeSet::new(),
            suspected: BTreeSet::new(),
            max_known,
            max_reachable,
        }
    }

    /// Records `p`'s priority (`None`: not eligible), heard from `p` itself (`direct`) or from
    /// a roster. When the table is full, an unreachable node other than `keep` is forgotten
    /// for it; false if there is none (and `p` is not remembered).
    pub(super) fn learn(
        &mut self,
        p: P,
        priority: Option<u32>,
        direct: bool,
        keep: Option<P>,
    ) -> bool {
        if p == self.me {
            return true;
        }
        if let Some(k) = self.known.get_mut(&p) {
            if direct || !k.direct {
                *k = Known {
                    priority,
                    direct: direct || k.direct,
                };
            }
            return true;
        }
        if self.known.len() >= self.max_known {
            let gone = self
                .known
                .keys()
                .copied()
                .find(|q| !self.reachable.contains(q) && Some(*q) != keep);
            let Some(gone) = gone else {
                return false;
            };
            self.known.remove(&gone);
            self.suspected.remove(&gone);
        }
        self.known.insert(p, Known { priority, direct });
        true
    }

    /// Heard from `p` itself: it is alive.
    pub(super) fn heard(&mut self, p: P, priority: Option<u32>, keep: Option<P>) -> bool {
        self.suspected.remove(&p);
        self.learn(p, priority, true, keep)
    }

    /// Whether `p` is newly suspected.
    pub(super) fn suspect(&mut self, p: P) -> bool {
        self.suspected.insert(p)
    }

    pub(super) fn route(&mut self, p: P, up: bool) -> Route {
        if p == self.me {
            return Route::Same;
        }
        if !up {
            return if self.reachable.remove(&p) {
                Route::Lost
            } else {
                Route::Same
            };
        }
        if !self.reachable.contains(&p) {
            if self.reachable.len() >= self.max_reachable {
                return Route::Full;
            }
            self.reachable.insert(p);
            self.suspected.remove(&p); // back, or new: worth asking again
        }
        Route::Up
    }

    pub(super) fn is_reachable(&self, p: &P) -> bool {
        self.reachable.contains(p)
    }

    /// Whether some reachable node's eligibility is unknown.
    pub(super) fn any_unknown(&self) -> bool {
        self.reachable.iter().any(|p| !self.known.contains_key(p))
    }

    /// The live candidates: known eligible, reachable, not suspected.
    fn live(&self) -> impl Iterator<Item = Rank<P>> + '_ {
        self.known.iter().filter_map(|(p, k)| {
            let live = self.reachable.contains(p) && !self.suspected.contains(p);
            live.then_some(Rank {
                priority: k.priority?,
                id: *p,
            })
        })
    }

    /// Live candidates ranked above `r` (all of them for `None`) and not in `skip`, highest
    /// first.
    pub(super) fn higher(&self, r: Option<Rank<P>>, skip: &BTreeSet<P>) -> Vec<Rank<P>> {
        let mut v: Vec<Rank<P>> = self
            .live()
            .filter(|c| r.is_none_or(|r| *c > r) && !skip.contains(&c.id))
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    }

    /// Whether at least `n` live candidates rank above `r`.
    pub(super) fn above(&self, r: Rank<P>, n: usize) -> bool {
        self.live().filter(|c| *c > r).take(n).count() >= n
    }

    /// Whether a live candidate other than `except` ranks above `r`.
    pub(super) fn outranked(&self, r: Rank<P>, except: P) -> bool {
        self.live().any(|c| c.id != except && c > r)
    }
}
