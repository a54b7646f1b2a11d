//! The web UI in a real browser: headless Chromium driven through chromedriver (Debian's
//! `chromium` and `chromium-driver`, which `.ci/run` installs), against real `meshchat`
//! processes on loopback. Without them the test fails, saying what to install.
//!
//! `MESHCHAT_SCREENSHOTS=DIR` also saves the screenshots of docs/ (desktop and phone width).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{json, Value};

mod support;
use support::browser::{js, open_page, pick_file, shown_ids, type_line, until, until_or, Driver};
use support::{Proc, DEADLINE};

/// Opens a joined room from the room list.
async fn open_room(c: &fantoccini::Client, room: &str) {
    c.find(Locator::Css(&format!("#rooms li[data-room=\"{room}\"]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let script = format!("return document.querySelector('#title')?.textContent === '{room}';");
    until(c, &format!("{room} opens"), &script).await;
}

/// One HTTP/1.1 request on loopback; the status code of the answer.
fn status(addr: &str, request: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

/// One HTTP/1.1 request on loopback (`head` ends with its blank line, `body` follows it): the
/// status, the head and the body of the answer (which the server ends by closing).
fn http(addr: &str, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(body);
    s.write_all(&request).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    (head[9..12].parse().unwrap(), head, all[end + 4..].to_vec())
}

/// `n` bytes that differ from one file to the next (`seed`), so a mix-up shows.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The `host:port` and the token of a web UI URL.
fn split(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, query) = rest.split_once("/?token=").unwrap();
    (addr.to_owned(), query.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_chat_through_the_web_page_in_a_real_browser() {
    let driver = Driver::start();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let web = ["--web", "127.0.0.1:0"];
    let mut a = Proc::start_gated("alice", dirs[0].path(), &[], &web, None);
    let a_url = a.ready["web"]
        .as_str()
        .expect("ready names the web UI")
        .to_owned();
    let mut b = Proc::start_gated("bob", dirs[1].path(), &[&a.addr.clone()], &web, None);
    let b_url = b.ready["web"].as_str().unwrap().to_owned();
    a.wait_peers(1);
    b.wait_peers(1);

    // History to scroll back through: more than the page's first screenful (100).
    for i in 0..150 {
        a.cmd(json!({"cmd": "send", "room": "lobby", "text": format!("old {i}")}));
    }
    for _ in 0..150 {
        a.wait_event("sent", |_| true);
    }

    let browser = driver.browser(dirs[2].path(), 1280, 800).await;
    open_page(&browser, &a_url).await;
    // The token went into a cookie: the address bar no longer shows it.
    let here = browser.current_url().await.unwrap();
    assert!(!here.as_str().contains("token"), "{here}");
    until(
        &browser,
        "the newest page of history shows",
        "return document.querySelectorAll('#messages .msg').length >= 100;",
    )
    .await;
    assert_eq!(shown_ids(&browser).await.len(), 100, "one page first");

    // Scrolling to the top loads the older messages, in the node's order.
    let deadline = Instant::now() + DEADLINE;
    while shown_ids(&browser).await.len() < 150 {
        js(
            &browser,
            "const m = document.querySelector('#messages'); m.scrollTop = 0; \
             m.dispatchEvent(new Event('scroll')); return true;",
        )
        .await;
        assert!(Instant::now() < deadline, "older messages did not load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let texts = js(
        &browser,
        "return [...document.querySelectorAll('#messages .msg .text')].map(t => t.textContent);",
    )
    .await;
    // The node's display order: author time, then id (several messages share a millisecond).
    let want: Vec<Value> = a
        .history("lobby")
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, json!(want));

    // Typed in alice's page, it reaches bob.
    type_line(&browser, "hello from the web").await;
    let got = b.wait_event("message", |v| v["text"] == "hello from the web");
    assert_eq!(
        (&got["nick"], &got["own"]),
        (&json!("alice"), &json!(false))
    );
    until(
        &browser,
        "the own message shows",
        "return [...document.querySelectorAll('#messages .msg.own .text')]\
         .some(t => t.textContent === 'hello from the web');",
    )
    .await;

    // Markup from a peer is text, and runs nothing.
    let attack =
        "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>";
    b.cmd(json!({"cmd": "send", "room": "lobby", "text": attack}));
    let script = format!(
        "return [...document.querySelectorAll('#messages .msg .text')]\
         .some(t => t.textContent === {});",
        json!(attack)
    );
    until(&browser, "bob's message shows as text", &script).await;
    let probe = js(
        &browser,
        "return [document.querySelectorAll('#messages img, #messages script').length, \
         document.title.includes('pwned')];",
    )
    .await;
    assert_eq!(probe, json!([0, false]));

    // A reload shows each message once.
    let before = shown_ids(&browser).await;
    browser.refresh().await.unwrap();
    until(
        &browser,
        "the page comes back",
        "return document.querySelector('#status')?.dataset.state === 'open' && \
         document.querySelectorAll('#messages .msg').length >= 100;",
    )
    .await;
    let after = shown_ids(&browser).await;
    let mut unique = after.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        after.len(),
        "a message shown twice after reload"
    );
    assert_eq!(
        after.last(),
        before.last(),
        "the newest message is the same"
    );

    // A direct message from the people list, with its states, and the answer.
    let bob_id = b.peer_id.clone();
    let dm_button = format!("#people li[data-peer=\"{bob_id}\"] .dm-button");
    let deadline = Instant::now() + DEADLINE;
    let button = loop {
        if let Ok(button) = browser.find(Locator::Css(&dm_button)).await {
            break button;
        }
        assert!(Instant::now() < deadline, "bob is not in the people list");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    button.click().await.unwrap();
    until(
        &browser,
        "the conversation with bob opens",
        "return document.querySelector('#title')?.textContent === 'bob';",
    )
    .await;
    type_line(&browser, "psst bob").await;
    let dm = b.wait_event("dm", |v| v["text"] == "psst bob");
    assert_eq!(dm["from"], json!(a.peer_id));
    until(
        &browser,
        "the DM shows as delivered",
        "return [...document.querySelectorAll('#messages .msg.own')].some(m =>          m.querySelector('.text')?.textContent === 'psst bob' &&          m.querySelector('.state')?.dataset.state === 'delivered');",
    )
    .await;
    b.cmd(json!({"cmd": "dm", "to": a.peer_id, "text": "hi alice"}));
    until(
        &browser,
        "bob's answer shows",
        "return [...document.querySelectorAll('#messages .msg .text')]\
         .some(t => t.textContent === 'hi alice');",
    )
    .await;

    // A DM while another conversation is open counts as unread, in the list and the title,
    // and is notified (the browser's notifications stood in for, as granted).
    open_room(&browser, "lobby").await;
    js(
        &browser,
        "window.__notes = []; window.__errors = []; \
         window.addEventListener('error', e => window.__errors.push(String(e.message))); \
         window.addEventListener('unhandledrejection', e => window.__errors.push(String(e.reason))); \
         window.Notification = class { \
           static permission = 'granted'; \
           static requestPermission() { return Promise.resolve('granted'); } \
           constructor(title, options) { window.__notes.push([title, options.body]); } \
           addEventListener() {} close() {} }; return true;",
    )
    .await;
    b.cmd(json!({"cmd": "dm", "to": a.peer_id, "text": "are you there?"}));
    a.wait_event("dm", |v| v["text"] == "are you there?");
    let unread = format!(
        "return document.querySelector('#conversations li[data-peer=\"{bob_id}\"] .unread')\
         ?.textContent === '1' && document.title.startsWith('(1)');"
    );
    let seen = until_or(&browser, &unread).await;
    assert!(
        seen,
        "the DM is not counted as unread: {}",
        js(
            &browser,
            "return [document.title, [...document.querySelectorAll('#conversations li')]\
             .map(l => l.dataset.peer + '=' + l.querySelector('.unread')?.textContent), \
             window.__errors, window.__notes];"
        )
        .await
    );
    until(
        &browser,
        "the DM is notified",
        "return window.__notes.some(([t, b]) => t.includes('bob') && b === 'are you there?');",
    )
    .await;

    // Joining a room from the page opens it; leaving it goes back.
    let join = browser.find(Locator::Css("#join-input")).await.unwrap();
    join.send_keys("garden").await.unwrap();
    browser
        .find(Locator::Css("#join-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &browser,
        "the new room opens",
        "return document.querySelector('#rooms li[data-room=\"garden\"]') !== null && \
         document.querySelector('#title')?.textContent === 'garden';",
    )
    .await;
    a.cmd(json!({"cmd": "info"}));
    let info = a.wait_event("info", |_| true);
    assert!(
        info["rooms"].as_array().unwrap().contains(&json!("garden")),
        "{info}"
    );
    open_room(&browser, "lobby").await;

    // Alice's node restarts: the page reconnects by itself and shows what came meanwhile, once.
    let (addr, _) = split(&a_url);
    let a_dir = dirs[0].path().to_owned();
    assert!(a.quit().success());
    until(
        &browser,
        "the page sees the node go",
        "return document.querySelector('#status')?.dataset.state !== 'open';",
    )
    .await;
    b.cmd(json!({"cmd": "send", "room": "lobby", "text": "while you were away"}));
    b.wait_event("sent", |_| true);
    let web = ["--web", addr.as_str()];
    let a = Proc::start_gated("alice", &a_dir, &[&b.addr.clone()], &web, None);
    assert_eq!(
        a.ready["web"].as_str(),
        Some(a_url.as_str()),
        "same port, same token"
    );
    until(
        &browser,
        "the page reconnects and shows the message sent meanwhile",
        "return document.querySelector('#status')?.dataset.state === 'open' && \
         [...document.querySelectorAll('#messages .msg .text')]\
         .some(t => t.textContent === 'while you were away');",
    )
    .await;
    let ids = shown_ids(&browser).await;
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ids.len(),
        "a message shown twice after the restart"
    );

    if let Ok(dir) = std::env::var("MESHCHAT_SCREENSHOTS") {
        let png = browser.screenshot().await.unwrap();
        std::fs::write(format!("{dir}/web-desktop.png"), png).unwrap();
    }

    // Bob's own page, in the same browser (each port has its own cookie), shows alice's
    // message from the web.
    open_page(&browser, &b_url).await;
    until(
        &browser,
        "bob's page shows alice's message",
        "return [...document.querySelectorAll('#messages .msg .text')]\
         .some(t => t.textContent === 'hello from the web');",
    )
    .await;
    if let Ok(dir) = std::env::var("MESHCHAT_SCREENSHOTS") {
        browser.set_window_size(390, 844).await.unwrap();
        until(
            &browser,
            "the page takes the phone width",
            "return window.innerWidth <= 400;",
        )
        .await;
        let png = browser.screenshot().await.unwrap();
        std::fs::write(format!("{dir}/web-phone.png"), png).unwrap();
    }
    browser.close().await.unwrap();

    // Without the token, or from a foreign page, nothing.
    let (addr, token) = split(&a_url);
    let get = |host: &str, extra: &str| {
        format!("GET / HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
    };
    assert_eq!(status(&addr, &get(&addr, "")), 401);
    let bearer = format!("Authorization: Bearer {token}\r\n");
    assert_eq!(status(&addr, &get(&addr, &bearer)), 200);
    assert_eq!(
        status(&addr, &get(&addr, "Authorization: Bearer 00\r\n")),
        401
    );
    let port = addr.rsplit_once(':').unwrap().1;
    // DNS rebinding: a name that is not ours.
    assert_eq!(
        status(&addr, &get(&format!("evil.example:{port}"), &bearer)),
        403
    );
    let upgrade = |origin: &str| {
        format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\n{bearer}Origin: {origin}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    assert_eq!(status(&addr, &upgrade("http://evil.example")), 403);
    assert_eq!(status(&addr, &upgrade(&format!("http://{addr}"))), 101);

    for p in [a, b] {
        let name = p.name.clone();
        assert!(p.quit().success(), "{name} exit status");
    }
}

/// A page that stops reading holds up nothing: the node answers its script throughout, and
/// when the page reads again it is told it lagged and is given every message it missed, each
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_stops_reading_lags_and_catches_up_without_holding_up_the_node() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let dir = tempfile::tempdir().unwrap();
    let mut a = Proc::start_gated("alice", dir.path(), &[], &["--web", "127.0.0.1:0"], None);
    let (addr, token) = split(a.ready["web"].as_str().unwrap());
    // A small receive buffer, so the page's socket backs up soon.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut page, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();

    // The script sends far more than the page's queues and socket buffers hold (~12 MiB of
    // lines), and every answer comes while the page reads nothing.
    const N: usize = 4000;
    let filler = "x".repeat(3000);
    for i in 0..N {
        a.cmd(json!({"cmd": "send", "room": "lobby", "text": format!("{i} {filler}")}));
    }
    let mut ids = std::collections::HashSet::new();
    for _ in 0..N {
        ids.insert(
            a.wait_event("sent", |_| true)["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    // Now the page reads: `ready`, then (somewhere) `lagged`, and every message once.
    let mut seen = std::collections::HashSet::new();
    let mut lagged = false;
    let deadline = Instant::now() + DEADLINE;
    while seen.len() < N {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, page.next())
            .await
            .unwrap_or_else(|_| panic!("{} of {N} messages reached the page", seen.len()))
            .expect("the socket stays open")
            .unwrap();
        let line = frame.into_text().unwrap();
        let event = meshchat_api::Event::from_line(line.as_str()).unwrap();
        match event {
            meshchat_api::Event::Message(m) => {
                assert!(ids.contains(&m.id), "not one of ours: {}", m.id);
                assert!(seen.insert(m.id.clone()), "shown twice: {}", m.text);
            }
            meshchat_api::Event::Lagged { .. } => lagged = true,
            _ => {}
        }
    }
    assert!(
        lagged,
        "the page was never told it lagged: the test did not stall it"
    );
    assert!(a.quit().success());
}

/// `meshchat web` finds the running node's page, or says there is none.
#[test]
fn meshchat_web_names_the_running_nodes_page() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(support::BIN)
            .arg("web")
            .arg("--data-dir")
            .arg(dir.path())
            // No browser opener here: it prints the URL instead.
            .env("PATH", empty.path())
            .output()
            .unwrap()
    };
    let out = run();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no node with a web UI runs"), "{err}");

    let a = Proc::start_gated("alice", dir.path(), &[], &["--web", "127.0.0.1:0"], None);
    let url = a.ready["web"].as_str().unwrap().to_owned();
    let out = run();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("open this URL: {url}")), "{said}");
    assert!(a.quit().success());
    // Stopped: the page is gone, and `meshchat web` says so.
    let out = run();
    assert!(!out.status.success());
}

/// Files through the web UI: a file picked in alice's page is uploaded, offered in the room and
/// fetched by bob's node unasked (it is small), and bob's server hands out exactly its bytes; a
/// file over the auto-accept size waits for "Download" in bob's page, shows its progress, then
/// "Save"; and the upload endpoint refuses what it must.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_through_the_web_page() {
    let driver = Driver::start();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let web = ["--web", "127.0.0.1:0"];
    let mut a = Proc::start_gated("alice", dirs[0].path(), &[], &web, None);
    let a_url = a.ready["web"].as_str().unwrap().to_owned();
    let mut b = Proc::start_gated("bob", dirs[1].path(), &[&a.addr.clone()], &web, None);
    let b_url = b.ready["web"].as_str().unwrap().to_owned();
    a.wait_peers(1);
    b.wait_peers(1);

    // A name that is markup: it must show as text.
    let small_name = "<img src=x onerror=\"document.title='pwned'\">.txt";
    let small = bytes(3 * 1024 * 1024, 1);
    let small_path = dirs[3].path().join(small_name);
    std::fs::write(&small_path, &small).unwrap();
    let big = bytes(10 * 1024 * 1024, 2);
    let big_path = dirs[3].path().join("big.bin");
    std::fs::write(&big_path, &big).unwrap();

    let browser = driver.browser(dirs[2].path(), 1280, 800).await;
    open_page(&browser, &a_url).await;
    pick_file(&browser, "#file-input", &small_path).await;

    // Bob's node hears of it and fetches it by itself (3 MiB is under the auto-accept size).
    let offer = b.wait_event("file_offer", |v| v["name"] == small_name);
    assert_eq!(
        (&offer["room"], &offer["size"], &offer["nick"]),
        (&json!("lobby"), &json!(small.len()), &json!("alice"))
    );
    let id = offer["id"].as_str().unwrap().to_owned();
    b.wait_event("file_done", |v| v["id"] == id.as_str());
    // Alice's page shows her offer's card, its name as text, with "Save".
    let card = format!("#messages .msg[data-id=\"{id}\"] .file-card");
    let script = format!(
        "const c = document.querySelector('{card}'); return !!c && \
         c.querySelector('.file-name').textContent === {} && \
         c.querySelector('a.file-save')?.getAttribute('href') === '/files/{id}';",
        json!(small_name)
    );
    until(&browser, "alice's page shows her file's card", &script).await;
    let probe = js(
        &browser,
        "return [document.querySelectorAll('#messages img, #messages script').length, \
         document.title.includes('pwned')];",
    )
    .await;
    assert_eq!(probe, json!([0, false]));
    // The upload was kept in alice's data dir, under its own name.
    let kept = std::fs::read(dirs[0].path().join("uploads").join(small_name)).unwrap();
    assert!(kept == small, "the uploaded copy differs");

    // Bob's server gives exactly the bytes, as a download.
    let (b_addr, b_token) = split(&b_url);
    let (code, head, body) = http(
        &b_addr,
        &format!(
            "GET /files/{id} HTTP/1.1\r\nHost: {b_addr}\r\nAuthorization: Bearer {b_token}\r\n\
             Connection: close\r\n\r\n"
        ),
        b"",
    );
    assert_eq!(code, 200, "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/octet-stream")
            && lower.contains("x-content-type-options: nosniff")
            && lower.contains(
                "content-disposition: attachment; filename*=utf-8''%3cimg%20src%3dx%20onerror%3d"
            ),
        "{head}"
    );
    assert!(body == small, "bob's copy differs ({} bytes)", body.len());

    // 10 MiB is over the auto-accept size: bob's page offers "Download".
    pick_file(&browser, "#file-input", &big_path).await;
    let offer = b.wait_event("file_offer", |v| v["name"] == "big.bin");
    let big_id = offer["id"].as_str().unwrap().to_owned();
    assert_eq!(offer["state"], "offered");
    open_page(&browser, &b_url).await;
    let card = format!("#messages .msg[data-id=\"{big_id}\"] .file-card");
    until(
        &browser,
        "bob's page offers the big file",
        &format!(
            "return document.querySelector('{card}')?.dataset.state === 'offered' && \
             !!document.querySelector('{card} .file-download');"
        ),
    )
    .await;
    // Every progress bar the card shows is noted, however fast the download goes.
    js(
        &browser,
        "window.__progress = []; new MutationObserver(records => { for (const r of records) \
         for (const n of r.addedNodes) { const p = n.querySelector?.('.file-percent'); \
         if (p) window.__progress.push(p.textContent); } }).observe(\
         document.querySelector('#messages'), {childList: true, subtree: true}); return true;",
    )
    .await;
    browser
        .find(Locator::Css(&format!("{card} .file-download")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_event("file_done", |v| v["id"] == big_id.as_str());
    until(
        &browser,
        "bob's page shows Save for the big file",
        &format!(
            "return document.querySelector('{card}')?.dataset.state === 'done' && \
             document.querySelector('{card} a.file-save')?.getAttribute('download') === 'big.bin';"
        ),
    )
    .await;
    let progress = js(&browser, "return window.__progress;").await;
    let shown = progress.as_array().unwrap();
    assert!(
        !shown.is_empty() && shown.iter().all(|p| p.as_str().unwrap().contains('%')),
        "no progress shown: {progress}"
    );
    // The page's own link works with its cookie.
    let fetched = js(
        &browser,
        &format!(
            "return fetch('/files/{big_id}').then(r => \
             r.arrayBuffer().then(b => [r.status, b.byteLength]));"
        ),
    )
    .await;
    assert_eq!(fetched, json!([200, big.len()]));
    browser.close().await.unwrap();

    // The upload endpoint's refusals.
    let (addr, token) = split(&a_url);
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let post = |query: &str, extra: &str, body: &[u8]| {
        http(
            &addr,
            &format!(
                "POST /files?{query} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            ),
            body,
        )
    };
    let upload = "X-Meshchat-Upload: 1\r\n";
    assert_eq!(post("room=lobby&name=a.txt", upload, b"hi").0, 401);
    assert_eq!(post("room=lobby&name=a.txt", &bearer, b"hi").0, 403);
    let both = format!("{bearer}{upload}");
    let (code, _, body) = post("room=nowhere&name=a.txt", &both, b"hi");
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((code, &answer["event"]), (400, &json!("error")), "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("nowhere"),
        "{answer}"
    );
    // Over the size limit: refused from its length, before any byte is read.
    let (code, _, _) = http(
        &addr,
        &format!(
            "POST /files?room=lobby&name=huge HTTP/1.1\r\nHost: {addr}\r\n{both}\
             Content-Length: 5000000000\r\nConnection: close\r\n\r\n"
        ),
        b"",
    );
    assert_eq!(code, 413);
    // The same name twice: two files, never one over the other; names made safe.
    let mut names = Vec::new();
    for _ in 0..2 {
        let (code, _, body) = post("room=lobby&name=..%2Fsub%2Fnote.txt", &both, b"note");
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        let offered: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(offered["event"], "file_offered");
        names.push(offered["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(names, ["note.txt", "note (1).txt"]);
    let get = |path: &str| {
        http(
            &addr,
            &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{bearer}Connection: close\r\n\r\n"),
            b"",
        )
        .0
    };
    assert_eq!(get(&format!("/files/{}", "0".repeat(64))), 404);
    assert_eq!(get("/files/nonsense"), 404);

    for p in [a, b] {
        let name = p.name.clone();
        assert!(p.quit().success(), "{name} exit status");
    }
}
