//! The terminal and the event loop.
//!
//! One task owns the [`App`] and the terminal. It waits on three bounded sources — keys and other
//! terminal events first, then answers to node calls, then node events, drained in batches — and
//! draws at most once per [`FRAME_INTERVAL`], so typing stays responsive however fast messages
//! arrive. Node calls run on a worker task in the order they were asked (so sent messages keep
//! their order), except dials, which can take seconds and run on tasks of their own.
//!
//! The terminal is restored when [`Guard`] drops (normal exit, an error, or the future being
//! dropped on SIGTERM) and by a panic hook.

use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    Event as TermEvent,
};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use futures::{Stream, StreamExt};
use meshchat_node::{Event, Handle};
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::Terminal;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use super::app::{Action, App, Refusal, Reply};
use super::render;

/// Node calls waiting for the worker; when full, the interface says "busy" instead of waiting.
pub const ACTION_QUEUE: usize = 64;
/// Answers waiting for the interface.
pub const REPLY_QUEUE: usize = 64;
/// Most node events handled between two looks at the keyboard.
pub const EVENT_BATCH: usize = 512;
/// Shortest time between two frames (about 60 per second).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(16);
/// Dials (`/connect`) under way at once.
pub const MAX_DIALS: usize = 8;

/// True while the terminal is in raw mode on the alternate screen.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set by the panic hook: the terminal was given back, so the interface must stop.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// The terminal in full-screen mode; dropping it gives the terminal back as it was.
pub struct Guard {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Guard {
    pub fn enter() -> anyhow::Result<Self> {
        install_panic_hook();
        enable_raw_mode().context("cannot put the terminal in raw mode")?;
        ACTIVE.store(true, Ordering::SeqCst);
        let mut out = io::stdout();
        let setup = crossterm::execute!(
            out,
            EnterAlternateScreen,
            EnableBracketedPaste,
            EnableMouseCapture
        )
        .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match setup {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore();
                Err(e).context("cannot set up the terminal")
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Gives the terminal back: cooked mode, main screen, no mouse reporting, cursor shown. Does
/// nothing the second time.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = crossterm::execute!(
            io::stdout(),
            DisableMouseCapture,
            DisableBracketedPaste,
            LeaveAlternateScreen,
            crossterm::cursor::Show
        );
    }
}

fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            restore();
            tracing::error!("panic: {info}");
            previous(info);
        }));
    });
}

/// Runs the interface until the user quits. `on_frame` sees the state after each frame drawn
/// (benchmarks measure with it).
pub async fn event_loop<B, S>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut input: S,
    handle: Handle,
    mut events: mpsc::Receiver<Event>,
    mut on_frame: impl FnMut(&App),
) -> anyhow::Result<()>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    S: Stream<Item = io::Result<TermEvent>> + Unpin,
{
    let (action_tx, action_rx) = mpsc::channel(ACTION_QUEUE);
    let (reply_tx, mut reply_rx) = mpsc::channel(REPLY_QUEUE);
    let worker = AbortOnDrop(tokio::spawn(worker(handle, action_rx, reply_tx)));
    let mut dirty = true;
    let mut last_frame: Option<Instant> = None;
    let mut node_running = true;
    let mut worker_running = true;
    loop {
        if PANICKED.load(Ordering::SeqCst) {
            anyhow::bail!("internal error: a task panicked (see the log)");
        }
        for action in app.take_actions() {
            match action_tx.try_send(action) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(a)) => app.refused(a),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    anyhow::bail!("internal error: the node worker stopped (see the log)")
                }
            }
        }
        if app.quit {
            break;
        }
        let frame_due = last_frame.map_or_else(Instant::now, |t| t + FRAME_INTERVAL);
        if dirty && Instant::now() >= frame_due {
            if std::mem::take(&mut app.repaint) {
                terminal.clear()?;
            }
            terminal.draw(|f| render::draw(f, app))?;
            on_frame(app);
            dirty = app.after_frame();
            last_frame = Some(Instant::now());
            continue;
        }
        tokio::select! {
            biased;
            ev = input.next() => match ev {
                Some(Ok(ev)) => {
                    app.on_terminal(ev);
                    dirty = true;
                }
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => break,
            },
            reply = reply_rx.recv(), if worker_running => match reply {
                Some(reply) => {
                    app.on_reply(reply);
                    dirty = true;
                }
                None => worker_running = false,
            },
            ev = events.recv(), if node_running => match ev {
                Some(ev) => {
                    app.on_node_event(ev);
                    for _ in 1..EVENT_BATCH {
                        match events.try_recv() {
                            Ok(ev) => app.on_node_event(ev),
                            Err(_) => break,
                        }
                    }
                    dirty = true;
                }
                None => {
                    node_running = false;
                    app.notice("the node has stopped: /quit and see the log", super::room::Level::Error);
                    dirty = true;
                }
            },
            () = tokio::time::sleep_until(frame_due), if dirty => {}
        }
    }
    drop(worker);
    Ok(())
}

/// A DM as the room view shows messages (under the conversation's name).
fn dm_as_message(d: meshchat_node::DmView, room: &str) -> meshchat_node::MessageView {
    meshchat_node::MessageView {
        id: d.id,
        room: room.to_owned(),
        author: d.from,
        fingerprint: d.fingerprint,
        nick: d.nick,
        timestamp_ms: d.timestamp_ms,
        text: d.text,
        own: d.own,
        synced: false,
        seq: d.seq,
        private: None,
    }
}

/// Aborts a task when dropped, so a worker never outlives its interface.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts fetching offer `id` (`None`: the newest offer not fetched); the offer as it was.
async fn accept_file(handle: &Handle, id: Option<String>) -> Result<meshchat_api::File, String> {
    let files = handle.files().await.map_err(|e| e.to_string())?;
    let offer = match id {
        Some(id) => files.into_iter().find(|f| f.id == id),
        None => files
            .into_iter()
            .find(|f| !f.own && f.state == meshchat_api::FileState::Offered),
    }
    .ok_or("no such offer; /files lists them")?;
    handle
        .accept_file(&offer.id)
        .await
        .map_err(|e| e.to_string())?;
    Ok(offer)
}

/// Runs node calls one after another and sends back their answers.
async fn worker(handle: Handle, mut actions: mpsc::Receiver<Action>, replies: mpsc::Sender<Reply>) {
    let dials = Arc::new(Semaphore::new(MAX_DIALS));
    while let Some(action) = actions.recv().await {
        let reply = match action {
            Action::Connect { addr } => {
                let Ok(permit) = dials.clone().try_acquire_owned() else {
                    let result = Err(format!(
                        "{MAX_DIALS} connection attempts are under way; wait for one to finish"
                    ));
                    if replies
                        .send(Reply::Connected { addr, result })
                        .await
                        .is_err()
                    {
                        break;
                    }
                    continue;
                };
                let (handle, replies) = (handle.clone(), replies.clone());
                tokio::spawn(async move {
                    let result = handle.connect(&addr).await.map_err(|e| e.to_string());
                    drop(permit);
                    let _ = replies.send(Reply::Connected { addr, result }).await;
                });
                continue;
            }
            Action::SendFile { room, to, path } => {
                // Hashing a large file takes seconds: on a task of its own.
                let (handle, replies) = (handle.clone(), replies.clone());
                tokio::spawn(async move {
                    let result = handle
                        .send_file(room.as_deref(), to.as_deref(), &path)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = replies.send(Reply::FileOffered(result)).await;
                });
                continue;
            }
            Action::AcceptFile { id } => Reply::FileAccepted(accept_file(&handle, id).await),
            Action::CancelFile { id } => {
                let result = handle.cancel_file(&id).await.map_err(|e| e.to_string());
                Reply::FileCancelled { id, result }
            }
            Action::Files => Reply::Files(handle.files().await.map_err(|e| e.to_string())),
            Action::Send { room, text } => {
                let result = handle.send(&room, &text).await.map_err(|e| e.to_string());
                Reply::Sent { room, text, result }
            }
            Action::Join { room, key } => {
                let (private, result) = match key {
                    Some(key) => (
                        Some(meshchat_node::PrivateKind::Passphrase),
                        handle.join_private(&room, &key.0).await,
                    ),
                    None => (None, handle.join(&room).await),
                };
                let result = result.map_err(|e| e.to_string());
                Reply::Joined {
                    room,
                    private,
                    result,
                }
            }
            Action::Create { room } => {
                let result = handle.create_room(&room).await.map_err(|e| e.to_string());
                Reply::Created { room, result }
            }
            Action::Invite { room, who } => {
                let result = handle.invite(&room, &who).await.map_err(|e| e.to_string());
                Reply::Invited { room, who, result }
            }
            Action::Remove { room, who } => {
                let result = handle
                    .remove_member(&room, &who)
                    .await
                    .map_err(|e| e.to_string());
                Reply::Removed { room, who, result }
            }
            Action::Members { room } => {
                let result = handle.members(&room).await.map_err(|e| e.to_string());
                Reply::Members { room, result }
            }
            Action::Rooms => Reply::Rooms(handle.rooms().await.map_err(|e| e.to_string())),
            Action::Leave { room } => {
                let result = handle.leave(&room).await.map_err(|e| e.to_string());
                Reply::Left { room, result }
            }
            Action::Nick { nick } => {
                let result = handle.set_nick(&nick).await.map_err(|e| e.to_string());
                Reply::Nick { nick, result }
            }
            Action::Peers { purpose } => {
                let result = handle.peers().await.map_err(|e| e.to_string());
                Reply::Peers { purpose, result }
            }
            Action::History {
                room,
                before,
                limit,
                purpose,
            } => {
                let (result, states) = match room.strip_prefix('@') {
                    // A conversation: its DMs, shown like a room's messages.
                    Some(peer) => match handle.dm_history(peer, limit, before).await {
                        Ok(dms) => {
                            let states =
                                dms.iter().filter_map(|d| Some((d.id, d.state?))).collect();
                            let msgs = dms.into_iter().map(|d| dm_as_message(d, &room)).collect();
                            (Ok(msgs), states)
                        }
                        Err(e) => (Err(e.to_string()), Vec::new()),
                    },
                    None => (
                        handle
                            .history(&room, limit, before)
                            .await
                            .map_err(|e| e.to_string()),
                        Vec::new(),
                    ),
                };
                Reply::History {
                    room,
                    limit,
                    purpose,
                    result,
                    states,
                }
            }
            Action::Dm { to, text } => match handle.dm(&to, &text).await {
                Ok(sent) => {
                    // Their nick, to name the conversation (the DM itself carries ours).
                    let nick = handle
                        .whois(&sent.to.to_string())
                        .await
                        .ok()
                        .and_then(|found| found.into_iter().next())
                        .map(|p| p.nick);
                    Reply::DmSent {
                        to,
                        text,
                        nick,
                        result: Ok(sent),
                    }
                }
                Err(e) => {
                    let refusal = match e {
                        meshchat_node::Error::AmbiguousNick { nick, candidates } => {
                            Refusal::Ambiguous { nick, candidates }
                        }
                        e => Refusal::Other(e.to_string()),
                    };
                    Reply::DmSent {
                        to,
                        text,
                        nick: None,
                        result: Err(refusal),
                    }
                }
            },
            Action::OpenDm { who } => {
                let result = handle.whois(&who).await.map_err(|e| e.to_string());
                Reply::OpenDm { who, result }
            }
            Action::Conversations { announce } => Reply::Conversations {
                announce,
                result: handle.conversations().await.map_err(|e| e.to_string()),
            },
            Action::Routes => Reply::Routes(handle.routes().await.map_err(|e| e.to_string())),
            Action::Who => Reply::Who {
                peers: handle.who().await.map_err(|e| e.to_string()),
                tracker: handle.tracker().await.map_err(|e| e.to_string()),
            },
            Action::Tracker { announce } => Reply::Tracker {
                announce,
                result: handle.tracker().await.map_err(|e| e.to_string()),
            },
            Action::Whois { query } => {
                let peers = handle.peers().await.map_err(|e| e.to_string());
                let profiles = match handle.whois(&query).await {
                    Ok(found) => Ok(found),
                    // Nobody, or nobody with a profile: the nick book may still know them.
                    Err(
                        meshchat_node::Error::UnknownPerson(_) | meshchat_node::Error::NoProfile(_),
                    ) => Ok(Vec::new()),
                    Err(e) => Err(e.to_string()),
                };
                Reply::Whois {
                    query,
                    peers,
                    profiles,
                }
            }
        };
        if replies.send(reply).await.is_err() {
            break;
        }
    }
}
