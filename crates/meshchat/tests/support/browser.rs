//! A headless Chromium driven through chromedriver (Debian's `chromium` and
//! `chromium-driver`), and waits on the page under a deadline.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::DEADLINE;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver on a free loopback port, stopped on drop.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    pub fn start() -> Driver {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install Debian's chromium and chromium-driver \
                 (apt-get install chromium chromium-driver), as .ci/run does"
            );
        }
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let port = line
                    .strip_prefix("ChromeDriver was started successfully on port ")
                    .and_then(|p| p.trim_end_matches('.').parse::<u16>().ok());
                if let Some(port) = port {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(DEADLINE)
            .expect("chromedriver says its port");
        Driver { child, port }
    }

    /// A headless Chromium with a fresh profile, its window `w`×`h`.
    pub async fn browser(&self, profile: &std::path::Path, w: u32, h: u32) -> Client {
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--user-data-dir={}", profile.display()),
            format!("--window-size={w},{h}"),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("chromedriver starts a browser")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `script` in the page (a function body; `arguments` as WebDriver passes them).
pub async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect("script runs")
}

/// Waits until `script` returns true in the page; false if it does not within the deadline.
pub async fn until_or(c: &Client, script: &str) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if js(c, script).await == Value::Bool(true) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Waits until `script` returns true in the page.
pub async fn until(c: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if js(c, script).await == Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ids of the messages on the page, in page order.
pub async fn shown_ids(c: &Client) -> Vec<String> {
    let v = js(
        c,
        "return [...document.querySelectorAll('#messages .msg')].map(m => m.dataset.id);",
    )
    .await;
    serde_json::from_value(v).unwrap()
}

/// Types `text` into the composer and presses Enter.
pub async fn type_line(c: &Client, text: &str) {
    let composer = c.find(Locator::Css("#composer")).await.unwrap();
    composer.send_keys(text).await.unwrap();
    composer
        .send_keys(&char::from(fantoccini::key::Key::Enter).to_string())
        .await
        .unwrap();
}

pub async fn open_page(c: &Client, url: &str) {
    c.goto(url).await.expect("page opens");
    until(
        c,
        "the socket opens",
        "return document.querySelector('#status')?.dataset.state === 'open';",
    )
    .await;
}

/// Picks the file at `path` (absolute) in the `<input type=file>` matched by `css`, hidden or
/// not: WebDriver's element send-keys (`POST /session/{id}/element/{el}/value`) with the path
/// as its text, which is how a test stands in for the browser's file dialog.
pub async fn pick_file(c: &Client, css: &str, path: &std::path::Path) {
    assert!(path.is_absolute(), "{}", path.display());
    let input = c.find(Locator::Css(css)).await.expect("the file input");
    input
        .send_keys(path.to_str().expect("a UTF-8 path"))
        .await
        .expect("the file is picked");
}
