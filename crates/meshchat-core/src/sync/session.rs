//! The two sides of one reconciliation session, and the negentropy storage over a shared snapshot.

use std::collections::HashSet;
use std::sync::Arc;

use negentropy::{Bound, Id, Item, Negentropy, NegentropyStorageBase};

use super::{Error, Frame, ItemSet, Limits};
use crate::envelope::MessageId;

/// The items of an [`ItemSet`] from index `start` on, as negentropy storage. Cloning it clones an
/// `Arc`.
#[derive(Debug, Clone)]
pub(super) struct View {
    items: Arc<[Item]>,
    start: usize,
}

impl View {
    pub(super) fn new(items: Arc<[Item]>, start: usize) -> Self {
        Self { items, start }
    }

    fn items(&self) -> &[Item] {
        self.items.get(self.start..).unwrap_or_default()
    }
}

// negentropy calls these with indices it derived from `size` and `find_lower_bound`; out-of-range
// arguments are still answered without a panic.
impl NegentropyStorageBase for View {
    fn size(&self) -> Result<usize, negentropy::Error> {
        Ok(self.items().len())
    }

    fn get_item(&self, i: usize) -> Result<Option<Item>, negentropy::Error> {
        Ok(self.items().get(i).copied())
    }

    fn iterate(
        &self,
        begin: usize,
        end: usize,
        cb: &mut dyn FnMut(Item, usize) -> Result<bool, negentropy::Error>,
    ) -> Result<(), negentropy::Error> {
        let range = self
            .items()
            .get(begin..end)
            .ok_or(negentropy::Error::BadRange)?;
        for (i, item) in range.iter().enumerate() {
            if !cb(*item, begin + i)? {
                break;
            }
        }
        Ok(())
    }

    fn find_lower_bound(&self, first: usize, last: usize, value: &Bound) -> usize {
        match self.items().get(first..last) {
            Some(range) => first + range.partition_point(|item| *item < value.item),
            None => first,
        }
    }
}

/// What one reply taught the initiator, and what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Ids we hold that the peer lacks: send it these envelopes.
    pub have: Vec<MessageId>,
    /// Ids the peer holds that we lack: request these envelopes. A dishonest peer may name ids we
    /// hold or that do not exist; the node asks its store first and verifies whatever arrives.
    pub need: Vec<MessageId>,
    pub next: Next,
}

/// How a session goes on after a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send this frame to the peer and hand its reply to [`Initiator::handle`].
    Send(Vec<u8>),
    /// The two sets are reconciled: `have` and `need` of all steps are the whole difference.
    Done,
    /// The session ended before the difference was all found; the next session finds the rest.
    Stopped(Stop),
}

/// Why a session stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stop {
    /// [`Limits::max_rounds`] replies were handled.
    Rounds,
    /// [`Limits::max_have`] ids were reported in `have`; this step's `have` is cut to fit.
    HaveBudget,
    /// [`Limits::max_need`] ids were reported in `need`; this step's `need` is cut to fit.
    NeedBudget,
}

/// The side of a session that starts it and learns the difference.
#[derive(Debug)]
pub struct Initiator {
    neg: Negentropy<'static, View>,
    /// Our items from `since_ms` on (the same snapshot negentropy reads).
    view: View,
    /// The lower bound of our window, sent in the `Open` frame.
    since_ms: u64,
    /// The responder's window bound, from its first reply.
    peer_since: Option<u64>,
    /// Our ids below the responder's bound, left out of `have`; filled once, and only when the
    /// responder's bound is above ours.
    outside: HashSet<Id>,
    /// Ids reported so far. negentropy may report an id twice: when our frame is cut, the ranges
    /// already settled above its last written bound go back into the remainder's fingerprint, and
    /// the peer lists them again. At most the budgets plus one frame's ids.
    reported: HashSet<Id>,
    /// Replies handled.
    rounds: u32,
    /// Ids reported so far, against the budgets.
    have_count: usize,
    need_count: usize,
    limits: Limits,
    /// Set when the session ended (done, stopped or failed).
    finished: bool,
}

impl Initiator {
    /// Starts a session over our `items` with `timestamp_ms >= since_ms`: the session and the
    /// `Open` frame to send.
    ///
    /// # Panics
    /// If `limits` are invalid (see [`Limits::frame_size`]).
    pub fn new(items: &ItemSet, since_ms: u64, limits: &Limits) -> (Self, Vec<u8>) {
        limits.check();
        let view = items.since(since_ms);
        let mut neg = Negentropy::owned(view.clone(), limits.message_limit())
            .expect("the frame size was checked to leave negentropy at least 4096 bytes");
        // Over a new instance, and storage whose calls succeed for the indices negentropy derives
        // from it, this cannot fail.
        let message = neg
            .initiate()
            .expect("initiating a new session over a view cannot fail");
        let frame = Frame::Open {
            since_ms,
            message: &message,
        }
        .encode();
        let session = Self {
            neg,
            view,
            since_ms,
            peer_since: None,
            outside: HashSet::new(),
            reported: HashSet::new(),
            rounds: 0,
            have_count: 0,
            need_count: 0,
            limits: *limits,
            finished: false,
        };
        (session, frame)
    }

    /// Handles the responder's reply. On an error the session has ended; see [`Error::is_strike`].
    pub fn handle(&mut self, frame: &[u8]) -> Result<Step, Error> {
        if self.finished {
            return Err(Error::Finished);
        }
        let step = self.reconcile(frame);
        if !matches!(
            step,
            Ok(Step {
                next: Next::Send(_),
                ..
            })
        ) {
            self.finished = true;
        }
        step
    }

    /// Replies handled so far.
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    fn reconcile(&mut self, frame: &[u8]) -> Result<Step, Error> {
        let Frame::Reply { since_ms, message } = Frame::decode(frame)? else {
            return Err(Error::Unexpected);
        };
        self.accept_since(since_ms)?;
        self.rounds += 1;
        let (mut have_ids, mut need_ids) = (Vec::new(), Vec::new());
        let more = self
            .neg
            .reconcile_with_ids(message, &mut have_ids, &mut need_ids)
            .map_err(Error::from_negentropy)?;

        let mut have: Vec<MessageId> = have_ids
            .into_iter()
            .filter(|id| !self.outside.contains(id) && self.reported.insert(*id))
            .map(|id| MessageId(id.to_bytes()))
            .collect();
        let mut need: Vec<MessageId> = need_ids
            .into_iter()
            .filter(|id| self.reported.insert(*id))
            .map(|id| MessageId(id.to_bytes()))
            .collect();

        let mut stop = None;
        let room = self.limits.max_have.saturating_sub(self.have_count);
        if have.len() > room {
            have.truncate(room);
            stop = Some(Stop::HaveBudget);
        }
        let room = self.limits.max_need.saturating_sub(self.need_count);
        if need.len() > room {
            need.truncate(room);
            stop = stop.or(Some(Stop::NeedBudget));
        }
        self.have_count += have.len();
        self.need_count += need.len();

        let next = match (more, stop) {
            (_, Some(stop)) => Next::Stopped(stop),
            (None, None) => Next::Done,
            (Some(_), None) if self.rounds >= self.limits.max_rounds => Next::Stopped(Stop::Rounds),
            (Some(message), None) => Next::Send(Frame::Query { message: &message }.encode()),
        };
        Ok(Step { have, need, next })
    }

    /// Checks the responder's window bound: at least ours, and the same in every reply.
    fn accept_since(&mut self, got: u64) -> Result<(), Error> {
        let bad = Error::BadSince {
            asked: self.since_ms,
            got,
        };
        match self.peer_since {
            Some(s) if s == got => Ok(()),
            Some(_) => Err(bad),
            None if got < self.since_ms => Err(bad),
            None => {
                self.peer_since = Some(got);
                if got > self.since_ms {
                    self.outside = self
                        .view
                        .items()
                        .iter()
                        .take_while(|item| item.timestamp < got)
                        .map(|item| item.id)
                        .collect();
                }
                Ok(())
            }
        }
    }
}

/// The side of a session that answers. It learns nothing; its peer does.
#[derive(Debug)]
pub struct Responder {
    neg: Negentropy<'static, View>,
    /// The window bound used: the larger of the initiator's and ours.
    since_ms: u64,
    /// Frames answered.
    rounds: u32,
    max_rounds: u32,
    /// Set when an error ended the session.
    finished: bool,
}

impl Responder {
    /// Answers an `Open` frame: a session over our `items` with `timestamp_ms` at least the
    /// initiator's bound and at least `horizon_ms` (the start of our own window), and the reply.
    ///
    /// # Panics
    /// If `limits` are invalid (see [`Limits::frame_size`]).
    pub fn open(
        frame: &[u8],
        items: &ItemSet,
        horizon_ms: u64,
        limits: &Limits,
    ) -> Result<(Self, Vec<u8>), Error> {
        let Frame::Open { since_ms, message } = Frame::decode(frame)? else {
            return Err(Error::Unexpected);
        };
        Self::open_decoded(since_ms, message, items, horizon_ms, limits)
    }

    pub(super) fn open_decoded(
        since_ms: u64,
        message: &[u8],
        items: &ItemSet,
        horizon_ms: u64,
        limits: &Limits,
    ) -> Result<(Self, Vec<u8>), Error> {
        limits.check();
        let since_ms = since_ms.max(horizon_ms);
        let neg = Negentropy::owned(items.since(since_ms), limits.message_limit())
            .expect("the frame size was checked to leave negentropy at least 4096 bytes");
        let mut session = Self {
            neg,
            since_ms,
            rounds: 0,
            max_rounds: limits.max_rounds,
            finished: false,
        };
        let reply = session.answer(message)?;
        Ok((session, reply))
    }

    /// Answers a `Query` frame. On an error the session has ended; see [`Error::is_strike`].
    pub fn handle(&mut self, frame: &[u8]) -> Result<Vec<u8>, Error> {
        if self.finished {
            return Err(Error::Finished);
        }
        match Frame::decode(frame) {
            Ok(Frame::Query { message }) => self.answer(message),
            Ok(_) => {
                self.finished = true;
                Err(Error::Unexpected)
            }
            Err(e) => {
                self.finished = true;
                Err(e)
            }
        }
    }

    /// The window bound this session uses.
    pub fn since_ms(&self) -> u64 {
        self.since_ms
    }

    pub(super) fn answer(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
        if self.finished {
            return Err(Error::Finished);
        }
        if self.rounds >= self.max_rounds {
            self.finished = true;
            return Err(Error::TooManyRounds(self.max_rounds));
        }
        self.rounds += 1;
        match self.neg.reconcile(message) {
            Ok(out) => Ok(Frame::Reply {
                since_ms: self.since_ms,
                message: &out,
            }
            .encode()),
            Err(e) => {
                self.finished = true;
                Err(Error::from_negentropy(e))
            }
        }
    }
}
