//! JSON mode: one command object per stdin line, one event object per stdout line, nothing else on
//! stdout. The contract is the `meshchat-api` crate (`Command` in, `Event` out), described in
//! `docs/JSON.md`.

use std::io::Write as _;

use anyhow::Context;
use meshchat_api::{Command, Event as Line};
use meshchat_node::api::{self, error};
use meshchat_node::{Event, Handle};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::catchup::Catchup;

/// Longest accepted input line; longer lines are answered with an error and skipped.
pub const MAX_LINE: usize = 256 * 1024;
/// Lines waiting to be written to stdout (fewer with a smaller `--event-queue`: a reader that
/// does not keep up is told it lagged as soon).
const OUT_QUEUE: usize = 1024;

/// `web`: the web UI's URL, when the node serves one (in `ready`).
pub async fn run(
    handle: Handle,
    mut events: mpsc::Receiver<Event>,
    web: Option<String>,
) -> anyhow::Result<()> {
    let (out_tx, out_rx) = mpsc::channel::<Line>(OUT_QUEUE.min(events.max_capacity()));
    let writer = std::thread::Builder::new()
        .name("meshchat-stdout".into())
        .spawn(move || write_lines(out_rx))
        .context("cannot start the stdout writer")?;

    let info = handle.info().await?;
    let mut ready = api::node_info(&info);
    ready.web = web;
    out_tx.send(Line::Ready(ready)).await?;

    // Every message stored since the node started has its event in the queue: skip none.
    let mut catchup = Catchup::after(info.seq_at_start);
    let forward_tx = out_tx.clone();
    let forward_handle = handle.clone();
    let forward = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if catchup
                .hand_on(&event, &forward_handle, &forward_tx)
                .await
                .is_err()
            {
                return;
            }
        }
    });

    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_line_bounded(&mut stdin, &mut buf, MAX_LINE).await? {
            LineRead::Eof => break,
            LineRead::TooLong => {
                out_tx
                    .send(error(format!(
                        "input line longer than {MAX_LINE} bytes ignored"
                    )))
                    .await?;
                continue;
            }
            LineRead::Line => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match Command::from_line(line) {
            Ok(cmd) => {
                if !command(&handle, cmd, &out_tx).await? {
                    break;
                }
            }
            Err(e) => out_tx.send(error(e.to_string())).await?,
        }
    }
    drop(out_tx);
    forward.abort();
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    Ok(())
}

/// Writes the event lines to stdout from a thread of their own, with blocking writes: what is
/// queued meanwhile goes out in the same write, flushed when the queue is empty. (Through
/// tokio's stdout each line took a hand-off to the blocking pool and back, for the write and
/// again for the flush: in the lab, a node's most frequent thread wake-ups per message.)
fn write_lines(mut lines: mpsc::Receiver<Line>) {
    let mut out = std::io::BufWriter::new(std::io::stdout());
    while let Some(event) = lines.blocking_recv() {
        let mut event = Some(event);
        while let Some(e) = event {
            if writeln!(out, "{}", e.to_line()).is_err() {
                return;
            }
            event = lines.try_recv().ok();
        }
        if out.flush().is_err() {
            return;
        }
    }
}

/// Runs one command, answering on `out` (a dial answers when it ends, meanwhile other
/// commands go on); false means quit.
pub async fn command(
    handle: &Handle,
    cmd: Command,
    out: &mpsc::Sender<Line>,
) -> anyhow::Result<bool> {
    let reply = match cmd {
        Command::Quit => return Ok(false),
        Command::Connect { .. } => {
            // Dialing takes a while; answer when it is done without holding up other commands.
            let (handle, out) = (handle.clone(), out.clone());
            tokio::spawn(async move {
                if let Some(line) = handle.call(cmd).await {
                    let _ = out.send(line).await;
                }
            });
            return Ok(true);
        }
        cmd => handle.call(cmd).await,
    };
    if let Some(line) = reply {
        out.send(line).await.context("stdout writer stopped")?;
    }
    Ok(true)
}

pub enum LineRead {
    Line,
    TooLong,
    Eof,
}

/// Reads one line into `buf` (without the newline), never holding more than `max` bytes: the rest
/// of an over-long line is read and discarded.
pub async fn read_line_bounded<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if too_long {
                LineRead::TooLong
            } else if buf.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let consumed = done.unwrap_or(available.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match read_line_bounded(&mut r, &mut buf, max).await.unwrap() {
                LineRead::Eof => return out,
                LineRead::TooLong => out.push("<too long>".into()),
                LineRead::Line => out.push(String::from_utf8(buf.clone()).unwrap()),
            }
        }
    }

    #[tokio::test]
    async fn bounded_lines() {
        assert_eq!(lines(b"ab\ncd\n", 10).await, ["ab", "cd"]);
        assert_eq!(lines(b"ab\ncd", 10).await, ["ab", "cd"]);
        assert_eq!(
            lines(b"0123456789abc\nok\n", 10).await,
            ["<too long>", "ok"]
        );
        assert_eq!(lines(b"", 10).await, Vec::<String>::new());
    }
}
