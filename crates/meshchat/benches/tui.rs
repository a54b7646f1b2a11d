//! Terminal interface benchmarks: `cargo bench -p meshchat --bench tui` prints the figures.
//!
//! 1. Opening a room with 100 000 stored messages: a real node on a real database, from
//!    `info()` to the first frame drawn (the path `meshchat` takes at start).
//! 2. Frame time with a full screen of wrapped, mixed-script messages, at the bottom and deep in
//!    the scrollback, into ratatui's `TestBackend` and through crossterm into a byte buffer.
//! 3. Input latency while 1000 messages a second arrive: the real event loop, keys typed every
//!    20 ms, measured from a key entering the input stream to the frame that shows it.
//!
//! Targets: first frame under 200 ms, a frame under 5 ms.

use meshchat::tui::{app, render, room, term};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use meshchat_core::envelope::{Draft, Kind};
use meshchat_core::room::Text;
use meshchat_core::{Envelope, Keypair, MessageId};
use meshchat_node::store::Store;
use meshchat_node::{Event, MessageView};
use ratatui::backend::{CrosstermBackend, TestBackend};
use ratatui::Terminal;

use app::{Action, App, Clock, Reply};

const STORED: usize = 100_000;
const AUTHORS: u8 = 8;
const NICKS: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];

fn sample_text(i: usize) -> String {
    match i % 7 {
        0 => format!("short message {i}"),
        1 => format!(
            "a longer message number {i} that needs to wrap over more than one row on a normal \
             terminal, because people do write paragraphs in chat rooms"
        ),
        2 => format!("日本語のメッセージ {i}: 折り返しは二セル幅の文字を割りません"),
        3 => format!("emoji {i} 🚀🎉👨‍👩‍👧 and combining cafe\u{301} n\u{303}"),
        4 => format!("two lines {i}\nsecond line"),
        5 => format!("ok {i}"),
        _ => format!("{i} {}", "word ".repeat(30)),
    }
}

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return "no samples".into();
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    let p = |q: f64| v[((n as f64 * q) as usize).min(n - 1)];
    format!(
        "n={n} mean={mean:.3} p50={:.3} p99={:.3} max={:.3}",
        p(0.5),
        p(0.99),
        v[n - 1]
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Writes `STORED` signed messages into the database a node in `dir` will open.
fn populate(dir: &std::path::Path) -> anyhow::Result<()> {
    let keys: Vec<Keypair> = (0..AUTHORS)
        .map(|n| Keypair::from_secret_bytes(&[n + 10; 32]))
        .collect();
    let mut store = Store::open(&dir.join("meshchat.sqlite"))?;
    let base = 1_700_000_000_000u64;
    let mut batch = Vec::with_capacity(5000);
    for i in 0..STORED {
        let a = i % AUTHORS as usize;
        let body = Text {
            nick: NICKS[a].into(),
            text: sample_text(i),
        }
        .encode()?;
        batch.push(Envelope::sign(
            &keys[a],
            Draft {
                kind: Kind::RoomText,
                target: "lobby",
                timestamp_ms: base + i as u64 * 1000,
                nonce: i as u64,
                body: &body,
            },
        )?);
        if batch.len() == 5000 {
            store.insert_messages(&batch, base)?;
            batch.clear();
        }
    }
    store.insert_messages(&batch, base)?;
    store.close()?;
    Ok(())
}

/// From the node's info to the first frame, as `tui::run` does it (history answered by the
/// node from its database).
async fn open_and_draw(handle: &meshchat_node::Handle) -> anyhow::Result<(Duration, usize)> {
    let start = Instant::now();
    let info = handle.info().await?;
    let mut app = App::new(&info, Clock::local());
    for action in app.take_actions() {
        if let Action::History {
            room,
            before,
            limit,
            purpose,
        } = action
        {
            let result = handle
                .history(&room, limit, before)
                .await
                .map_err(|e| e.to_string());
            app.on_reply(Reply::History {
                room,
                limit,
                purpose,
                result,
                states: Vec::new(),
            });
        }
    }
    let mut terminal = Terminal::new(TestBackend::new(120, 40))?;
    terminal.draw(|f| render::draw(f, &app))?;
    let elapsed = start.elapsed();
    Ok((elapsed, app.room().entries().len()))
}

async fn bench_open() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    populate(dir.path())?;
    println!(
        "populate: {STORED} signed messages written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let (handle, _events) =
        meshchat_node::spawn(meshchat_node::Config::loopback(dir.path())).await?;
    println!("node start on that database: {:.1} ms", ms(t.elapsed()));
    let (first, shown) = open_and_draw(&handle).await?;
    println!(
        "open room (100k stored) + first frame 120x40: first {:.1} ms ({shown} entries in memory)",
        ms(first)
    );
    let mut again = Vec::new();
    for _ in 0..20 {
        again.push(ms(open_and_draw(&handle).await?.0));
    }
    println!("  repeated (warm cache), ms: {}", stats(again));
    handle.shutdown().await;
    Ok(())
}

fn full_app(messages: usize) -> App {
    let me = Keypair::from_secret_bytes(&[1; 32]);
    let info = meshchat_node::NodeInfo {
        peer_id: meshchat_node::peer_id_of(&me.public()),
        fingerprint: me.public().fingerprint(),
        nick: "alice".into(),
        listen: Vec::new(),
        rooms: vec!["lobby".into(), "dev".into(), "random".into()],
        reach: Default::default(),
        new_identity: false,
        seq_at_start: 0,
    };
    let mut app = App::new(&info, Clock::local());
    let _ = app.take_actions();
    for i in 0..messages {
        app.on_node_event(Event::Message(view(i as u64, "lobby")));
    }
    app
}

fn view(i: u64, room: &str) -> MessageView {
    let a = (i % AUTHORS as u64) as u8;
    let key = Keypair::from_secret_bytes(&[a + 10; 32]);
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&i.to_be_bytes());
    MessageView {
        private: None,
        id: MessageId(id),
        room: room.into(),
        author: meshchat_node::peer_id_of(&key.public()),
        fingerprint: key.public().fingerprint(),
        nick: NICKS[a as usize].into(),
        timestamp_ms: 1_700_000_000_000 + i * 1000,
        text: sample_text(i as usize),
        own: false,
        synced: false,
        seq: 0,
    }
}

/// A terminal that counts what it is sent.
struct Counting(Arc<std::sync::atomic::AtomicU64>);

impl std::io::Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn bench_frames() -> anyhow::Result<()> {
    let mut app = full_app(room::LIVE_CAP);
    for (w, h) in [(120u16, 40u16), (200, 60)] {
        let mut terminal = Terminal::new(TestBackend::new(w, h))?;
        // Something changes every frame, as when typing.
        let samples = time_frames(&mut terminal, &mut app, |app, i| {
            app.input
                .insert_char(if i.is_multiple_of(2) { 'x' } else { 'y' });
        })?;
        println!(
            "frame {w}x{h}, 5000 messages in the room, at the bottom, ms: {}",
            stats(samples)
        );
        app.input.set("");

        app.scroll(3000);
        // Alternate between two positions: every frame repaints the whole pane.
        let samples = time_frames(&mut terminal, &mut app, scroll_back_and_forth)?;
        println!(
            "frame {w}x{h}, 3000 rows up in the scrollback, ms: {}",
            stats(samples)
        );
        app.scroll(-1_000_000);

        // Through crossterm: escape sequences for every changed cell, counted and dropped.
        let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut terminal = Terminal::with_options(
            CrosstermBackend::new(Counting(written.clone())),
            ratatui::TerminalOptions {
                viewport: ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, w, h)),
            },
        )?;
        let samples = time_frames(&mut terminal, &mut app, scroll_back_and_forth)?;
        let bytes = written.load(std::sync::atomic::Ordering::Relaxed) / FRAMES as u64;
        println!(
            "frame {w}x{h} through crossterm (pane repainted each frame, {bytes} bytes/frame), ms: {}",
            stats(samples)
        );
        app.scroll(-1_000_000);
    }
    Ok(())
}

/// Frames drawn per measurement.
const FRAMES: usize = 500;

/// Draws [`FRAMES`] frames, calling `change` before each; returns each frame's time in ms.
fn time_frames<B: ratatui::backend::Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut change: impl FnMut(&mut App, usize),
) -> anyhow::Result<Vec<f64>>
where
    B::Error: Send + Sync + 'static,
{
    let mut samples = Vec::with_capacity(FRAMES);
    for i in 0..FRAMES {
        change(app, i);
        let t = Instant::now();
        terminal.draw(|f| render::draw(f, app))?;
        samples.push(ms(t.elapsed()));
    }
    Ok(samples)
}

fn scroll_back_and_forth(app: &mut App, i: usize) {
    app.scroll(if i.is_multiple_of(2) { 1 } else { -1 });
}

async fn bench_latency() -> anyhow::Result<()> {
    const RATE: u64 = 1000;
    const SECONDS: u64 = 5;
    const KEY_EVERY: Duration = Duration::from_millis(20);

    let dir = tempfile::tempdir()?;
    let mut config = meshchat_node::Config::loopback(dir.path());
    config.in_memory_store = true;
    let (handle, _node_events) = meshchat_node::spawn(config).await?;
    let info = handle.info().await?;
    let mut app = App::new(&info, Clock::local());

    // Node events come from a feeder at RATE per second (in 1 ms steps).
    let (event_tx, event_rx) = tokio::sync::mpsc::channel(meshchat_node::node::EVENT_QUEUE);
    let feeder = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < Duration::from_secs(SECONDS + 1) {
            tick.tick().await;
            let due = start.elapsed().as_millis() as u64 * RATE / 1000;
            while sent < due {
                if event_tx
                    .send(Event::Message(view(sent, "lobby")))
                    .await
                    .is_err()
                {
                    return sent;
                }
                sent += 1;
            }
        }
        sent
    });

    // Keys: one every KEY_EVERY, each stamped when it enters the stream.
    let (key_tx, mut key_rx) = tokio::sync::mpsc::channel::<std::io::Result<TermEvent>>(64);
    let stamps: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let typist = {
        let (key_tx, stamps) = (key_tx.clone(), stamps.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(KEY_EVERY);
            let end = Instant::now() + Duration::from_secs(SECONDS);
            while Instant::now() < end {
                tick.tick().await;
                if let Ok(mut s) = stamps.lock() {
                    s.push(Instant::now());
                }
                let key = KeyEvent::new(KeyCode::Char('k'), KeyModifiers::NONE);
                if key_tx.send(Ok(TermEvent::Key(key))).await.is_err() {
                    break;
                }
            }
            let quit = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
            let _ = key_tx.send(Ok(TermEvent::Key(quit))).await;
        })
    };
    let keys = futures::stream::poll_fn(move |cx| key_rx.poll_recv(cx));

    let mut terminal = Terminal::new(TestBackend::new(120, 40))?;
    let mut latencies = Vec::new();
    let mut frames = 0u64;
    let mut shown_keys = 0usize;
    let on_frame = |app: &App| {
        frames += 1;
        let now = Instant::now();
        let typed = app.input.text().len();
        if let Ok(s) = stamps.lock() {
            while shown_keys < typed.min(s.len()) {
                latencies.push(ms(now - s[shown_keys]));
                shown_keys += 1;
            }
        }
    };
    let start = Instant::now();
    term::event_loop(
        &mut terminal,
        &mut app,
        keys,
        handle.clone(),
        event_rx,
        on_frame,
    )
    .await?;
    let elapsed = start.elapsed();
    let _ = typist.await;
    feeder.abort();
    println!(
        "input latency, key to frame, while {RATE} messages/s arrive ({frames} frames in {:.1} s, \
         {:.0} frames/s), ms: {}",
        elapsed.as_secs_f64(),
        frames as f64 / elapsed.as_secs_f64(),
        stats(latencies)
    );
    handle.shutdown().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        bench_open().await?;
        bench_frames()?;
        bench_latency().await
    })
}
