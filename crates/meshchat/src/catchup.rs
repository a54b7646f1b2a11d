//! Recovering what a front-end missed while it did not read its events. The node never waits for
//! a front-end: when its event queue is full it drops events and later says how many
//! (`Event::Lagged`). Every message is stored, so line and JSON mode read the newest history of
//! each joined room back and hand on, oldest first, the messages they have not shown yet.

use std::time::{Duration, Instant};

use meshchat_core::dedup::SeenCache;
use meshchat_core::MessageId;
use meshchat_node::{Handle, MessageView};

/// Ids of messages already handed on, kept to show each message once.
const SHOWN_CAPACITY: usize = 16_384;
const SHOWN_TTL: Duration = Duration::from_secs(24 * 3600);
/// History is read back in pages of this many messages, newest first...
const PAGE: usize = 500;
/// ...until a whole page was shown already, or this many were read in one room.
const MAX_SCAN: usize = 10_000;

pub struct Catchup {
    shown: SeenCache<MessageId>,
}

impl Catchup {
    pub fn new() -> Self {
        Self {
            shown: SeenCache::new(SHOWN_CAPACITY, SHOWN_TTL),
        }
    }

    /// Records that `m` is being shown; false if it was shown before (skip it).
    pub fn first_time(&mut self, m: &MessageView) -> bool {
        self.shown.insert(m.id, Instant::now())
    }

    /// The stored messages of the joined rooms not shown yet, in display order per room.
    ///
    /// Each room's history is read backwards from the newest message, a page at a time, until a
    /// page holds nothing new: the gap lies after everything shown before it. Messages that came
    /// in after the gap, whose events are still queued, are shown here and skipped later.
    pub async fn missed(&mut self, handle: &Handle) -> anyhow::Result<Vec<MessageView>> {
        let mut out = Vec::new();
        for room in handle.info().await?.rooms {
            let mut found = Vec::new();
            let mut before = None;
            let mut scanned = 0;
            while scanned < MAX_SCAN {
                let page = handle.history(&room, PAGE, before).await?;
                let Some(oldest) = page.first() else { break };
                before = Some((oldest.timestamp_ms, oldest.id));
                scanned += page.len();
                let full = page.len() == PAGE;
                let mut new_here = false;
                // Pages come oldest first; keep the newest-first walk's order by prepending.
                let mut fresh: Vec<MessageView> = Vec::new();
                for m in page {
                    if self.first_time(&m) {
                        new_here = true;
                        fresh.push(m);
                    }
                }
                fresh.append(&mut found);
                found = fresh;
                if !new_here || !full {
                    break;
                }
            }
            out.append(&mut found);
        }
        Ok(out)
    }
}
