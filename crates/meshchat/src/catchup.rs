//! Recovering what a front-end missed while it did not read its events. The node never waits for
//! a front-end: when its event queue is full it drops events and later says how many
//! (`Event::Lagged`). Every message is stored, so line and JSON mode read back, in arrival order,
//! the messages they have not handed on yet.
//!
//! Every stored message has an arrival number ([`MessageView::seq`]), and the node hands on
//! message events in that order, dropping only a tail (from the first event that finds the queue
//! full until it can say `Lagged`). So the highest arrival number handed on is a watermark: an
//! event at or below it was handed on already (by a catch-up), and after `Lagged` everything above
//! it is read back with [`Handle::arrived_after`], a page at a time.
//!
//! Paging by arrival, not by author time, is what makes history sync safe here: a message written
//! days ago can arrive during the gap, far older than the newest page, and is still found.

use meshchat_api::Event as Line;
use meshchat_node::{api, Event, Handle, MessageView};
use tokio::sync::mpsc;

/// Messages read back per call.
pub const PAGE: usize = 500;

/// Where stored messages are read back in arrival order: the node, or a fake in tests.
pub trait Arrivals {
    /// Messages of joined rooms stored after arrival number `after`, oldest arrival first, at
    /// most `limit`.
    async fn arrived_after(&self, after: u64, limit: usize) -> anyhow::Result<Vec<MessageView>>;
}

impl Arrivals for Handle {
    async fn arrived_after(&self, after: u64, limit: usize) -> anyhow::Result<Vec<MessageView>> {
        Ok(Handle::arrived_after(self, after, limit).await?)
    }
}

pub struct Catchup {
    /// The highest arrival number handed on (or stored before this front-end started).
    last_seq: u64,
}

impl Catchup {
    /// Starts after everything stored so far: a catch-up hands on what arrives from now on, not
    /// the whole database. Call it before reading the first event.
    pub async fn start(source: &impl Arrivals) -> anyhow::Result<Self> {
        Ok(Self {
            last_seq: newest_arrival(source).await?,
        })
    }

    /// Starts after arrival number `seq`: what a reader that saw up to `seq` has not seen (the
    /// web UI's page reconnecting with `?after=`; a front-end reading the node's events from
    /// its start, with `NodeInfo::seq_at_start`).
    pub fn after(seq: u64) -> Self {
        Self { last_seq: seq }
    }

    /// Hands `event` on to `out` as API lines, as JSON mode and the web UI do: a message
    /// handed on before is skipped; after [`Event::Lagged`] come the stored messages not handed
    /// on yet. Err when `out` is closed (its reader is gone).
    pub async fn hand_on(
        &mut self,
        event: &Event,
        source: &Handle,
        out: &mpsc::Sender<Line>,
    ) -> Result<(), Gone> {
        match event {
            Event::Message(m) if !self.first_time(m) => Ok(()),
            Event::Lagged { missed } => self.lagged(*missed, source, out).await,
            _ => out.send(api::event(event)).await.map_err(|_| Gone),
        }
    }

    /// Says that `missed` events were dropped, then hands on the stored messages not handed on
    /// yet, a page at a time.
    pub async fn lagged(
        &mut self,
        missed: u64,
        source: &Handle,
        out: &mpsc::Sender<Line>,
    ) -> Result<(), Gone> {
        out.send(Line::Lagged { missed }).await.map_err(|_| Gone)?;
        self.replay(source, out).await
    }

    /// Hands on the stored messages not handed on yet, a page at a time.
    pub async fn replay(&mut self, source: &Handle, out: &mpsc::Sender<Line>) -> Result<(), Gone> {
        loop {
            let page = match self.next_page(source).await {
                Ok(page) if page.is_empty() => return Ok(()),
                Ok(page) => page,
                Err(e) => {
                    let warning = Line::Warning(meshchat_api::Warning {
                        message: format!("could not read the history back: {e}"),
                        kind: None,
                    });
                    return out.send(warning).await.map_err(|_| Gone);
                }
            };
            for m in &page {
                out.send(Line::Message(api::message(m)))
                    .await
                    .map_err(|_| Gone)?;
            }
        }
    }

    /// Records that `m` is being handed on; false if it was before (skip it).
    pub fn first_time(&mut self, m: &MessageView) -> bool {
        if m.seq <= self.last_seq {
            return false;
        }
        self.last_seq = m.seq;
        true
    }

    /// The next messages not handed on yet, in arrival order, recorded as handed on; empty once
    /// caught up. After `Lagged`, call it until it comes back empty, handing on each page before
    /// reading the next (memory stays bounded however long the gap). Messages whose events are
    /// still queued are handed on here and skipped when their events come.
    pub async fn next_page(&mut self, source: &impl Arrivals) -> anyhow::Result<Vec<MessageView>> {
        let mut page = source.arrived_after(self.last_seq, PAGE).await?;
        page.retain(|m| self.first_time(m));
        Ok(page)
    }
}

/// The reader of a [`Catchup`]'s lines is gone.
#[derive(Debug)]
pub struct Gone;

/// The highest arrival number among stored messages of joined rooms (0 when there are none),
/// found with `O(log n)` one-message reads: `arrived_after(x, 1)` is empty exactly when nothing
/// arrived after `x`, and otherwise names the next arrival.
async fn newest_arrival(source: &impl Arrivals) -> anyhow::Result<u64> {
    let next_after = |x: u64| async move {
        anyhow::Ok(source.arrived_after(x, 1).await?.first().map(|m| m.seq))
    };
    // `lo` is an arrival number that exists (or 0); nothing arrived after `hi`.
    let Some(mut lo) = next_after(0).await? else {
        return Ok(0);
    };
    let mut hi = lo.saturating_mul(2).max(1024);
    while let Some(seq) = next_after(hi).await? {
        lo = seq;
        hi = seq.saturating_mul(16);
        if hi == u64::MAX {
            break;
        }
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match next_after(mid).await? {
            Some(seq) => lo = seq,
            None => hi = mid,
        }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use meshchat_core::{Keypair, MessageId};
    use meshchat_node::{Config, Event};

    use super::*;

    /// A store in memory: messages in arrival order.
    struct Fake(RefCell<Vec<MessageView>>);

    impl Arrivals for Fake {
        async fn arrived_after(
            &self,
            after: u64,
            limit: usize,
        ) -> anyhow::Result<Vec<MessageView>> {
            Ok(self
                .0
                .borrow()
                .iter()
                .filter(|m| m.seq > after)
                .take(limit)
                .cloned()
                .collect())
        }
    }

    impl Fake {
        /// Stores a message written at `ts_ms`; returns its view (with its arrival number).
        fn store(&self, ts_ms: u64) -> MessageView {
            let mut v = self.0.borrow_mut();
            let seq = v.len() as u64 * 3 + 7;
            let key = Keypair::from_secret_bytes(&[2; 32]);
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&seq.to_be_bytes());
            let m = MessageView {
                private: None,
                id: MessageId(id),
                room: "lobby".into(),
                author: meshchat_node::peer_id_of(&key.public()),
                fingerprint: key.public().fingerprint(),
                nick: "bob".into(),
                timestamp_ms: ts_ms,
                text: format!("at {ts_ms}"),
                own: false,
                synced: false,
                seq,
            };
            v.push(m.clone());
            m
        }
    }

    async fn drain(c: &mut Catchup, source: &impl Arrivals) -> Vec<u64> {
        let mut out = Vec::new();
        loop {
            let page = c.next_page(source).await.unwrap();
            if page.is_empty() {
                return out;
            }
            out.extend(page.iter().map(|m| m.seq));
        }
    }

    #[tokio::test]
    async fn starts_after_what_is_stored() {
        for n in [0, 1, 2, 5, 1000, 1500, 5000] {
            let fake = Fake(RefCell::new(Vec::new()));
            for i in 0..n {
                fake.store(i);
            }
            let want = fake.0.borrow().last().map_or(0, |m| m.seq);
            let mut c = Catchup::start(&fake).await.unwrap();
            assert_eq!(c.last_seq, want, "{n} stored");
            assert!(drain(&mut c, &fake).await.is_empty());
        }
    }

    /// A message written long ago (history sync brings such) arrives during the gap, after more
    /// than a page of messages that were shown. Walking history back by author time from the
    /// newest page stops at the first page shown already and never reaches it; paging by arrival
    /// finds it.
    #[tokio::test]
    async fn an_old_message_arriving_during_a_gap_is_handed_on_once() {
        let fake = Fake(RefCell::new(Vec::new()));
        fake.store(1);
        let mut c = Catchup::start(&fake).await.unwrap();
        // Shown live: more than two pages, so a whole page of them lies between the gap and the
        // old message.
        for ts in 0..(PAGE as u64 * 2 + 100) {
            let m = fake.store(1_000_000 + ts);
            assert!(c.first_time(&m));
        }
        // The gap: events dropped. One of them was written long ago.
        let mut missed = Vec::new();
        for ts in 0..(PAGE as u64 * 2 + 3) {
            missed.push(fake.store(2_000_000 + ts).seq);
        }
        missed.push(fake.store(5).seq);
        let queued = fake.store(3_000_000);
        missed.push(queued.seq);
        // Lagged: the catch-up hands on exactly the missed messages, in arrival order...
        assert_eq!(drain(&mut c, &fake).await, missed);
        // ...and the queued event of one of them is skipped.
        assert!(!c.first_time(&queued));
        let later = fake.store(4_000_000);
        assert!(c.first_time(&later));
    }

    async fn next(events: &mut tokio::sync::mpsc::Receiver<Event>) -> Event {
        tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("an event in time")
            .expect("node running")
    }

    /// The same with a real node: a message written by a node that was offline arrives by
    /// history sync while this front-end does not read its events, after more than a page of
    /// newer messages it did show, and is handed on by the catch-up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_synced_old_message_missed_in_a_gap_is_caught_up() {
        const DEADLINE: Duration = Duration::from_secs(30);
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let config = |dir: &std::path::Path, queue: usize| {
            let mut c = Config::loopback(dir);
            c.in_memory_store = true;
            c.dht = false;
            c.target_peers = 0;
            c.event_queue = queue;
            c
        };
        // The offline author writes first, so its message is the oldest.
        let (away, _away_events) = meshchat_node::spawn(config(dirs[0].path(), 64))
            .await
            .unwrap();
        let old = away.send("lobby", "written while away").await.unwrap().id;

        let (here, mut events) = meshchat_node::spawn(config(dirs[1].path(), 16))
            .await
            .unwrap();
        let mut c = Catchup::start(&here).await.unwrap();
        let mut shown = std::collections::HashSet::new();
        // More than two pages shown live.
        const SHOWN: usize = PAGE * 2 + 20;
        for i in 0..SHOWN {
            here.send("lobby", &format!("shown {i}")).await.unwrap();
            loop {
                if let Event::Message(m) = next(&mut events).await {
                    assert!(c.first_time(&m));
                    assert!(shown.insert(m.id));
                    break;
                }
            }
        }
        // Not read any more: the queue fills and the node drops events.
        for i in 0..40 {
            here.send("lobby", &format!("missed {i}")).await.unwrap();
        }
        let info = here.info().await.unwrap();
        away.connect(&format!("{}/p2p/{}", info.listen[0], info.peer_id))
            .await
            .unwrap();
        // History sync brings the old message in, during the gap.
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !here
            .history("lobby", 10_000, None)
            .await
            .unwrap()
            .iter()
            .any(|m| m.id == old && m.synced)
        {
            assert!(tokio::time::Instant::now() < deadline, "not synced in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Reading again: queued events, `Lagged`, the catch-up.
        let total = SHOWN + 40 + 1;
        let mut lagged = false;
        while shown.len() < total {
            match next(&mut events).await {
                Event::Message(m) => {
                    if c.first_time(&m) {
                        assert!(shown.insert(m.id), "shown twice: {m:?}");
                    }
                }
                Event::Lagged { .. } => {
                    lagged = true;
                    loop {
                        let page = c.next_page(&here).await.unwrap();
                        if page.is_empty() {
                            break;
                        }
                        for m in page {
                            assert!(shown.insert(m.id), "shown twice: {m:?}");
                        }
                    }
                }
                _ => {}
            }
        }
        assert!(lagged, "the queue overflowed");
        assert!(shown.contains(&old));
        away.shutdown().await;
        here.shutdown().await;
    }
}
