//! The full-screen terminal interface (ratatui + crossterm), used when `meshchat` runs in a
//! terminal without `--plain` or `--json`.
//!
//! - [`app`]: the state and its updates (keys, node events, answers to node calls; slash
//!   commands (read by [`crate::commands`]) and completion in `app/commands.rs`, the tracker and `/who` in
//!   [`app::tracker`]); no I/O.
//! - [`room`]: one room's bounded window of messages, ordering, unread counts, scrolling.
//! - [`input`]: the input line editor, its history and Tab completion.
//! - [`people`]: nicks learnt from messages, for `/whois`, completion and nick collisions.
//! - [`wrap`]: terminal-safe text, widths in cells, wrapping.
//! - [`render`]: drawing a frame from the state.
//! - [`term`]: the terminal set-up and restore, and the event loop.

pub mod app;
pub mod input;
pub mod people;
pub mod render;
pub mod room;
pub mod term;
pub mod wrap;

#[cfg(test)]
mod tests;

use meshchat_node::{Event, Handle};
use tokio::sync::mpsc;

/// Runs the interface on this terminal until the user quits.
/// `web`: the web UI's URL, when the node serves one (shown as a notice).
pub async fn run(
    handle: Handle,
    events: mpsc::Receiver<Event>,
    web: Option<String>,
) -> anyhow::Result<()> {
    let info = handle.info().await?;
    let mut app = app::App::new(&info, app::Clock::local());
    if let Some(url) = web {
        app.notice(&format!("web UI: {url}"), room::Level::Info);
    }
    // Which rooms are private, and their member counts; events keep them current.
    if let Ok(rooms) = handle.rooms().await {
        app.take_rooms(rooms);
    }
    // The status bar's tracker; events keep it current from here on.
    if let Ok(view) = handle.tracker().await {
        app.tracker = Some(app::tracker::Status::from_view(&view));
    }
    let mut guard = term::Guard::enter()?;
    let input = crossterm::event::EventStream::new();
    term::event_loop(&mut guard.terminal, &mut app, input, handle, events, |_| {}).await
}
