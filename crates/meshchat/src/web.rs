//! The web UI: the node serves a chat page and speaks the typed API (`meshchat-api`) to it over
//! a WebSocket, one command per text frame in, one event per text frame out, exactly the lines
//! of JSON mode (docs/JSON.md). The page is plain HTML, CSS and JS modules from `web/`,
//! embedded in the binary.
//!
//! Who may use it: the holder of a random token kept in the data dir (`web-token`, 0600). The
//! URL the node prints carries it once (`/?token=…`); the server answers with a cookie
//! (HttpOnly, SameSite=Strict) and a redirect to a URL without it. Every request is checked:
//! - `Host` must name the server as loopback or an IP address (a DNS name that rebinds to
//!   127.0.0.1 is refused, so a foreign site cannot read the page or its answers);
//! - the token must come as that cookie, as `Authorization: Bearer …`, or in `?token=`;
//! - a WebSocket upgrade that carries an `Origin` must come from the page's own origin (a
//!   foreign site cannot use the cookie to open the socket: no cross-site WebSocket hijacking).
//!
//! Every answer forbids framing and sniffing and sets a strict Content-Security-Policy (no
//! inline script, nothing from other origins); the page renders attacker-written text (messages,
//! nicks, room names) as text only.
//!
//! Bounded: at most [`MAX_CLIENTS`] sockets, frames up to [`json::MAX_LINE`], a queue of
//! [`CLIENT_QUEUE`] events per page. A page that does not keep up is never waited for: it
//! misses events, is told `lagged`, and is given the stored messages it missed, as JSON mode is.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::ws::{Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::DefaultBodyLimit;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::{SinkExt, StreamExt};
use include_dir::{include_dir, Dir};
use meshchat_api::{Command, Event as Line};
use meshchat_node::{api, Event, Handle};
use tokio::sync::{broadcast, mpsc, Semaphore};

use crate::catchup::Catchup;
use crate::json;

mod files;

/// The page's files.
static PAGES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// Where the web UI listens unless told otherwise.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7448);
/// Open sockets at most; more are refused (503) until one closes.
pub const MAX_CLIENTS: usize = 32;
/// Node events buffered for the pages; a page that falls further behind is told `lagged`.
pub const CLIENT_QUEUE: usize = 1024;
/// Lines waiting for one page's socket.
const OUT_QUEUE: usize = 256;
/// The token's file in the data dir.
const TOKEN_FILE: &str = "web-token";
/// Where a running node says its web UI is (read by `meshchat web`), in the data dir.
pub const URL_FILE: &str = "web-url";

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// How to serve.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where to listen ([`DEFAULT_ADDR`] when `None`); a taken port falls back to a free one.
    pub addr: Option<SocketAddr>,
    /// Allow an address other than loopback (others on the network can then reach the page;
    /// they still need the token).
    pub public: bool,
    /// Replace the token (every page open now must be given the new URL).
    pub new_token: bool,
}

impl Options {
    /// Refuses an address beyond loopback without `public` (checked before the node starts).
    pub fn check(&self) -> anyhow::Result<()> {
        let addr = self.addr.unwrap_or(DEFAULT_ADDR);
        if !addr.ip().is_loopback() && !self.public {
            anyhow::bail!(
                "--web {addr}: that address lets other computers reach the web UI; add \
                 --web-public if that is what you want (they still need the token)"
            );
        }
        Ok(())
    }
}

/// A web UI being served.
#[derive(Debug)]
pub struct Server {
    /// The URL to open, with the token.
    pub url: String,
    url_file: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.url_file);
    }
}

/// Starts serving the web UI for `handle` on the node's runtime. It takes the node's events
/// and gives back the front-end's share of them: every event goes on to the front-end as
/// before, and to the pages.
pub async fn start(
    handle: Handle,
    events: mpsc::Receiver<Event>,
    data_dir: &Path,
    options: &Options,
) -> anyhow::Result<(Server, mpsc::Receiver<Event>)> {
    options.check()?;
    let requested = options.addr.unwrap_or(DEFAULT_ADDR);
    let token = token(data_dir, options.new_token)?;
    let listener = match tokio::net::TcpListener::bind(requested).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!("web UI: {requested} is taken; listening on a free port instead");
            tokio::net::TcpListener::bind(SocketAddr::new(requested.ip(), 0))
                .await
                .with_context(|| format!("web UI: cannot listen on {}", requested.ip()))?
        }
        Err(e) => return Err(e).with_context(|| format!("web UI: cannot listen on {requested}")),
    };
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!("web UI on {addr}: reachable from other computers (with the token)");
    }
    let url = format!("http://{addr}/?token={token}");
    let url_file = data_dir.join(URL_FILE);
    crate::private_file::write(&url_file, url.as_bytes())
        .with_context(|| format!("cannot write {}", url_file.display()))?;

    let (front_tx, front_rx) = mpsc::channel(events.max_capacity());
    let (pages, _) = broadcast::channel(CLIENT_QUEUE);
    tokio::spawn(tee(events, front_tx, pages.clone()));
    let state = Arc::new(Shared {
        handle,
        pages,
        token,
        port: addr.port(),
        clients: Arc::new(Semaphore::new(MAX_CLIENTS)),
        data_dir: data_dir.to_owned(),
        uploads: Arc::new(Semaphore::new(files::MAX_UPLOADS)),
    });
    let app = Router::new()
        .route("/ws", get(socket))
        // The upload bounds its body itself (streamed to disk, up to MAX_FILE_SIZE).
        .route(
            "/files",
            post(files::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/files/{id}", get(files::download))
        .route("/", get(page))
        .route("/{*path}", get(page))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("web UI stopped: {e}");
        }
    });
    Ok((Server { url, url_file }, front_rx))
}

/// Hands each node event to the front-end (waiting for it, as the node's own queue would) and
/// to the pages (never waiting: a page that falls behind lags).
async fn tee(
    mut events: mpsc::Receiver<Event>,
    front: mpsc::Sender<Event>,
    pages: broadcast::Sender<Arc<Event>>,
) {
    let mut front = Some(front);
    while let Some(event) = events.recv().await {
        // No copy while no page is open (the common case of a TUI with --web).
        if pages.receiver_count() > 0 {
            let _ = pages.send(Arc::new(event.clone()));
        }
        if let Some(tx) = &front {
            if tx.send(event).await.is_err() {
                front = None;
            }
        }
    }
}

struct Shared {
    handle: Handle,
    pages: broadcast::Sender<Arc<Event>>,
    token: String,
    port: u16,
    clients: Arc<Semaphore>,
    /// The node's data dir: uploads are kept in its `uploads/`.
    data_dir: PathBuf,
    /// Uploads running ([`files::MAX_UPLOADS`] at once).
    uploads: Arc<Semaphore>,
}

impl Shared {
    /// `Host` names this server: loopback or an IP address, and our port. A DNS name other
    /// than `localhost` is refused, which is what stops DNS rebinding.
    fn host_ok(&self, host: &str) -> bool {
        let Some((name, port)) = host.rsplit_once(':') else {
            return false;
        };
        if port.parse::<u16>().ok() != Some(self.port) {
            return false;
        }
        let name = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
    }

    fn token_ok(&self, given: &str) -> bool {
        same(given.as_bytes(), self.token.as_bytes())
    }

    /// The cookie's name: one per port, as cookies are shared by every port of a host.
    fn cookie(&self) -> String {
        format!("meshchat-{}", self.port)
    }
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks every request (host, token) and gives every answer the security headers.
async fn guard(State(st): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let mut resp = check(&st, req, next).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn check(st: &Shared, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = text(headers, header::HOST);
    if !st.host_ok(host) {
        return refuse(StatusCode::FORBIDDEN, "unknown Host");
    }
    if let Some(given) = query_token(req.uri().query()) {
        if !st.token_ok(given) {
            return refuse(StatusCode::UNAUTHORIZED, "wrong token");
        }
        // Trade the token in the URL for a cookie, and drop it from the address bar.
        let cookie = format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            st.cookie(),
            st.token
        );
        let mut resp = (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, req.uri().path())],
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        return resp;
    }
    let bearer = text(headers, header::AUTHORIZATION).strip_prefix("Bearer ");
    let cookie = cookie_value(headers, &st.cookie());
    if !bearer.or(cookie).is_some_and(|t| st.token_ok(t)) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "open the web UI with the URL meshchat printed (it carries the access token), \
             or run `meshchat web`",
        );
    }
    next.run(req).await
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn query_token(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

fn refuse(status: StatusCode, why: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        why,
    )
        .into_response()
}

/// A file of the page (`/` is `index.html`).
async fn page(req: Request) -> Response {
    let path = req.uri().path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let Some(file) = PAGES.get_file(path) else {
        return refuse(StatusCode::NOT_FOUND, "not found");
    };
    let kind = match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, kind)], file.contents()).into_response()
}

#[derive(serde::Deserialize)]
struct SocketQuery {
    /// The highest message arrival number the page has seen: what came after is replayed.
    after: Option<u64>,
}

async fn socket(
    State(st): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<SocketQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    // Browsers always say where a page opening a socket comes from; only our own may.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = text(&headers, header::HOST);
        if origin.to_str().ok() != Some(&format!("http://{host}")) {
            return refuse(StatusCode::FORBIDDEN, "foreign Origin");
        }
    }
    let Ok(permit) = st.clients.clone().try_acquire_owned() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "too many web clients");
    };
    // Where the page starts: after what it saw, or after what is stored when it is answered
    // (found before subscribing). Then subscribed; the session replays everything stored since
    // that start, so a message stored meanwhile is replayed (its queued event skipped), and
    // none is lost, even one stored between this answer and the session's first step.
    let catchup = match q.after {
        Some(seq) => Catchup::after(seq),
        None => match Catchup::start(&st.handle).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("web UI: {e}");
                return refuse(StatusCode::SERVICE_UNAVAILABLE, "the node is not answering");
            }
        },
    };
    let events = st.pages.subscribe();
    ws.max_message_size(json::MAX_LINE)
        .max_frame_size(json::MAX_LINE)
        .on_upgrade(move |socket| async move {
            session(socket, st, catchup, events).await;
            drop(permit);
        })
}

/// One page's socket: its commands in, the node's events and the answers out.
async fn session(
    socket: WebSocket,
    st: Arc<Shared>,
    mut catchup: Catchup,
    mut events: broadcast::Receiver<Arc<Event>>,
) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<Line>(OUT_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(line) = out_rx.recv().await {
            if sink.send(Frame::Text(line.to_line().into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let handle = st.handle.clone();
    let forward_out = out.clone();
    let forward = tokio::spawn(async move {
        let out = forward_out;
        let Ok(info) = handle.info().await else {
            return;
        };
        if out.send(Line::Ready(api::node_info(&info))).await.is_err() {
            return;
        }
        if catchup.replay(&handle, &out).await.is_err() {
            return;
        }
        loop {
            let done = match events.recv().await {
                Ok(event) => catchup.hand_on(&event, &handle, &out).await,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    catchup.lagged(missed, &handle, &out).await
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if done.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(frame)) = stream.next().await {
        let reply = match frame {
            Frame::Text(text) => match Command::from_line(text.as_str()) {
                Ok(Command::Quit) => Some(api::error(
                    "quit is not taken from the web UI: stop the node where it runs",
                )),
                Ok(cmd) => match json::command(&st.handle, cmd, &out).await {
                    Ok(_) => None,
                    Err(_) => break,
                },
                Err(e) => Some(api::error(e.to_string())),
            },
            Frame::Binary(_) => Some(api::error("send commands as text frames")),
            Frame::Close(_) => break,
            Frame::Ping(_) | Frame::Pong(_) => None,
        };
        if let Some(line) = reply {
            if out.send(line).await.is_err() {
                break;
            }
        }
    }
    forward.abort();
    drop(out);
    let _ = writer.await;
}

/// The access token: read from the data dir, or made (32 random bytes) when there is none or
/// a new one is asked for.
fn token(data_dir: &Path, renew: bool) -> anyhow::Result<String> {
    let path = data_dir.join(TOKEN_FILE);
    if !renew {
        match std::fs::read_to_string(&path) {
            Ok(t) if t.trim().len() == 64 && t.trim().bytes().all(|b| b.is_ascii_hexdigit()) => {
                return Ok(t.trim().to_owned());
            }
            Ok(_) => tracing::warn!("{} is not a token; making a new one", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let token = hex::encode(bytes);
    crate::private_file::write(&path, token.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}

/// `meshchat web`: opens the running node's web UI in the default browser, or says where it
/// is.
pub fn open(data_dir: &Path) -> anyhow::Result<()> {
    let path = data_dir.join(URL_FILE);
    let url = std::fs::read_to_string(&path).map_err(|_| {
        anyhow::anyhow!(
            "no node with a web UI runs on {} (start one with `meshchat --web` or `meshchat \
             daemon --web`)",
            data_dir.display()
        )
    })?;
    let url = url.trim();
    let reachable = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok()
        });
    if !reachable {
        anyhow::bail!(
            "the node that served {url} is not running (start one with `meshchat --web`)"
        );
    }
    for opener in ["xdg-open", "open"] {
        let started = std::process::Command::new(opener)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if started.is_ok_and(|s| s.success()) {
            println!("opened {url}");
            return Ok(());
        }
    }
    println!("no browser to open here; open this URL: {url}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abcd", b"abcd"));
        assert!(!same(b"abcd", b"abce"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }

    #[test]
    fn the_token_comes_from_the_query_or_the_cookie() {
        assert_eq!(query_token(Some("a=1&token=xy")), Some("xy"));
        assert_eq!(query_token(Some("after=3")), None);
        assert_eq!(query_token(None), None);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; meshchat-7448=tok"),
        );
        assert_eq!(cookie_value(&h, "meshchat-7448"), Some("tok"));
        assert_eq!(cookie_value(&h, "meshchat-7449"), None);
    }

    #[test]
    fn the_page_is_embedded_and_has_no_inline_script() {
        let index = PAGES.get_file("index.html").expect("web/index.html");
        let html = index.contents_utf8().unwrap();
        assert!(html.contains("<script type=\"module\" src="), "{html}");
        // CSP forbids inline scripts and handlers: the page must not need them.
        assert!(!html.contains("<script>") && !html.contains(" onclick="));
        assert!(!html.contains(" style=\""));
    }
}
