//! The web UI under load, in headless Chromium against a real node (docs/BENCHMARKS.md §9):
//!
//! 1. time to first render of a room with `MESSAGES` (default 100 000) stored messages, beside
//!    the same for an empty room;
//! 2. message-to-screen latency while `RATE` (default 1 000) messages/s arrive for `SECONDS`
//!    (default 10), to the first animation frame after the page put the message in its list:
//!    from the moment the node made the message (its `ts`), and from the moment the script
//!    handed the command to JSON mode (which adds JSON mode's own queue).
//!
//! `cargo bench -p meshchat --bench web` (needs chromium and chromium-driver, as the tests).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

#[path = "../tests/support/mod.rs"]
mod support;
use support::browser::{js, open_page, until, Driver};
use support::Proc;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Sends `n` messages to the lobby and waits for every answer, `batch` commands at a time.
fn fill(a: &mut Proc, n: u64, batch: u64) {
    let mut sent = 0;
    while sent < n {
        let k = batch.min(n - sent);
        for i in 0..k {
            a.cmd(json!({"cmd": "send", "room": "lobby", "text": format!("stored {}", sent + i)}));
        }
        for _ in 0..k {
            a.wait_event("sent", |_| true);
        }
        // What the script does not read piles up in its backlog: drop it.
        a.backlog.clear();
        sent += k;
    }
}

/// Seconds from opening the page to the first message on screen.
async fn first_render(driver: &Driver, url: &str, profile: &std::path::Path) -> f64 {
    let browser = driver.browser(profile, 1280, 800).await;
    let start = Instant::now();
    open_page(&browser, url).await;
    until(
        &browser,
        "a message shows",
        "return document.querySelectorAll('#messages .msg').length > 0;",
    )
    .await;
    let took = start.elapsed().as_secs_f64();
    browser.close().await.unwrap();
    took
}

/// The upgrade request of a bare WebSocket client to the web UI at `url` (its token as a
/// bearer).
fn socket_request(url: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let (host, token) = url
        .strip_prefix("http://")
        .and_then(|r| r.split_once("/?token="))
        .unwrap();
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{host}/ws"
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// What the server takes to give a page its first screen: the upgrade, `ready`, and the
/// answer to `history`, over a bare WebSocket client.
async fn bare_first_page(url: &str) {
    use futures::{SinkExt, StreamExt};
    let request = socket_request(url);
    let start = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let upgraded = start.elapsed();
    let first = ws.next().await.unwrap().unwrap().into_text().unwrap();
    let ready = start.elapsed();
    assert!(first.contains("\"ready\""), "{first}");
    let cmd = json!({"cmd": "history", "room": "lobby", "limit": 100}).to_string();
    ws.send(tokio_tungstenite::tungstenite::Message::text(cmd))
        .await
        .unwrap();
    loop {
        let line = ws.next().await.unwrap().unwrap().into_text().unwrap();
        if line.contains("\"event\":\"history\"") {
            break;
        }
    }
    println!(
        "a bare WebSocket client: upgraded in {:.1} ms, ready at {:.1} ms, history at {:.1} ms",
        upgraded.as_secs_f64() * 1000.0,
        ready.as_secs_f64() * 1000.0,
        start.elapsed().as_secs_f64() * 1000.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let messages = knob("MESSAGES", 100_000);
    let rate = knob("RATE", 1_000);
    let seconds = knob("SECONDS", 10);
    let driver = Driver::start();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let web = ["--web", "127.0.0.1:0"];

    // 1. First render: one message stored, then `messages`.
    let mut a = Proc::start_gated("alice", dirs[0].path(), &[], &web, None);
    let url = a.ready["web"].as_str().unwrap().to_owned();
    fill(&mut a, 1, 1);
    let small = first_render(&driver, &url, dirs[1].path()).await;
    let start = Instant::now();
    fill(&mut a, messages - 1, 500);
    println!(
        "stored {messages} messages in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    // The same first page by JSON mode, for comparison: what the node takes.
    let start = Instant::now();
    a.cmd(json!({"cmd": "history", "room": "lobby", "limit": 100}));
    a.wait_event("history", |_| true);
    println!(
        "history (100 of {messages}) by JSON mode: {:.1} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    bare_first_page(&url).await;
    let big = first_render(&driver, &url, dirs[2].path()).await;
    println!("first render, 1 message: {:.0} ms", small * 1000.0);
    println!("first render, {messages} messages: {:.0} ms", big * 1000.0);

    // 2. Latency at `rate` messages/s.
    let browser = driver.browser(dirs[3].path(), 1280, 800).await;
    open_page(&browser, &url).await;
    until(
        &browser,
        "history shows",
        "return document.querySelectorAll('#messages .msg').length > 0;",
    )
    .await;
    js(
        &browser,
        "window.__seen = []; \
         new MutationObserver(records => { \
           const texts = []; \
           for (const r of records) for (const n of r.addedNodes) { \
             const t = n.querySelector && n.querySelector('.text'); \
             if (t && t.textContent.startsWith('lat ')) texts.push(t.textContent); \
           } \
           if (texts.length) requestAnimationFrame(() => { \
             const at = Date.now(); for (const t of texts) window.__seen.push([t, at]); }); \
         }).observe(document.querySelector('#messages'), {childList: true, subtree: true}); \
         return true;",
    )
    .await;
    // A bare WebSocket client beside the page: when each message leaves the server.
    let request = socket_request(&url);
    let (mut bare, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let total = rate * seconds;
    let wire = tokio::spawn(async move {
        use futures::StreamExt;
        let mut at = vec![0u64; total as usize];
        let mut got = 0;
        while got < total {
            let next = tokio::time::timeout(support::DEADLINE, bare.next()).await;
            let Ok(Some(Ok(frame))) = next else {
                panic!("the bare client got {got} of {total} messages")
            };
            let Ok(text) = frame.into_text() else {
                continue;
            };
            if let Ok(meshchat_api::Event::Message(m)) = meshchat_api::Event::from_line(&text) {
                if let Some(n) = m
                    .text
                    .strip_prefix("lat ")
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    at[n] = now_ms();
                    got += 1;
                }
            }
        }
        at
    });
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let mut sent_at = Vec::with_capacity(total as usize);
    let start = Instant::now();
    let mut next = start;
    let mut i = 0u64;
    // The node's timestamp of each message, from JSON mode's `message` events.
    let mut made_at = vec![0u64; total as usize];
    let mut made = 0;
    let note = |v: &Value, made_at: &mut Vec<u64>, made: &mut usize| {
        let n = v["text"].as_str().and_then(|t| t.strip_prefix("lat "));
        if let (Some(n), Some(ts)) = (n.and_then(|n| n.parse::<usize>().ok()), v["ts"].as_u64()) {
            made_at[n] = ts;
            *made += 1;
        }
    };
    while i < total {
        for _ in 0..per_tick.min(total - i) {
            sent_at.push(now_ms());
            a.cmd(json!({"cmd": "send", "room": "lobby", "text": format!("lat {i}")}));
            i += 1;
        }
        while let Ok(v) = a.lines.try_recv() {
            note(&v, &mut made_at, &mut made);
        }
        next += tick;
        // Pacing the load generator, not waiting for a condition.
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let offered = total as f64 / start.elapsed().as_secs_f64();
    while made < total as usize {
        let v = a
            .lines
            .recv_timeout(support::DEADLINE)
            .expect("every message comes back");
        note(&v, &mut made_at, &mut made);
    }
    until(
        &browser,
        "every message reaches the page",
        &format!("return window.__seen.length >= {total};"),
    )
    .await;
    let seen: Vec<(String, u64)> =
        serde_json::from_value(js(&browser, "return window.__seen;").await).unwrap();
    let shown: Value = js(
        &browser,
        "return document.querySelectorAll('#messages .msg').length;",
    )
    .await;
    println!(
        "latency at {offered:.0} msg/s for {seconds} s ({} messages, {shown} on the page):",
        seen.len()
    );
    let wire_at = wire.await.unwrap();
    let mut wire_lat: Vec<u64> = (0..total as usize)
        .map(|i| wire_at[i].saturating_sub(made_at[i]))
        .collect();
    wire_lat.sort_unstable();
    let q = |p: f64| wire_lat[((wire_lat.len() as f64 - 1.0) * p) as usize];
    println!(
        "  node made it -> a bare WebSocket client has it: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
    for (what, from) in [("node made it", &made_at), ("script sent it", &sent_at)] {
        let mut lat: Vec<u64> = seen
            .iter()
            .filter_map(|(t, at)| {
                let i: usize = t.strip_prefix("lat ")?.parse().ok()?;
                Some(at.saturating_sub(from[i]))
            })
            .collect();
        lat.sort_unstable();
        let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
        println!(
            "  from when the {what}: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0)
        );
    }
    browser.close().await.unwrap();
    assert!(a.quit().success());
}
