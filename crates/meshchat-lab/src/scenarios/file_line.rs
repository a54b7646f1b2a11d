//! `file-line`: a 100 MiB file across a line of 4 with a slow link, the downloader killed
//! halfway (issue 20).
//!
//! n0 – n1 – n2 – n3, the n1–n2 link limited to 10 Mbit/s. n0 offers a 100 MiB file in the
//! lobby; n3 (which cannot reach n0 but through n1 and n2) accepts it. When n3 has half, it is
//! killed with SIGKILL and started again on the same data dir. Asserted:
//!
//! 1. n3 resumes by itself and finishes; the file at the path it names has the source's bytes;
//! 2. only the missing part is sent again: what n0 served in all exceeds the file by less than
//!    a fifth (what was in flight when n3 died, and what n3 had not yet recorded);
//! 3. the relays forwarded it and kept none of it: n1 and n2 list no finished file.
//!
//! Noted: the rate over the 10 Mbit/s link after the restart, against the link's rate.

use crate::lab::{Lab, LabOptions, Report, LOBBY};
use crate::topology::Topology;
use anyhow::{bail, Context as _, Result};
use meshchat_api::{Command, Event, FileState};
use std::io::Write as _;
use std::time::Instant;

const SIZE: u64 = 100 * 1024 * 1024;
/// The slow link's rate, in tc's words and in bytes a second.
const LINK: &str = "10mbit";
const LINK_BYTES_PER_SEC: f64 = 10_000_000.0 / 8.0;

/// Writes `SIZE` bytes that repeat nowhere a chunk mix-up could hide; returns them.
fn write_source(path: &std::path::Path) -> Result<Vec<u8>> {
    let mut data = Vec::with_capacity(SIZE as usize);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    while (data.len() as u64) < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(SIZE as usize);
    std::fs::File::create(path)?.write_all(&data)?;
    Ok(data)
}

/// The bytes of the download `id` that `i` has verified, by its newest progress event.
fn progress(lab: &Lab, i: usize, id: &str) -> u64 {
    let st = lab.hub.lock();
    st.nodes[i]
        .other_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::FileProgress { id: p, bytes, .. } if p == id => Some(*bytes),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

pub fn file_line(opts: &LabOptions) -> Result<Report> {
    let mut lab = Lab::new(Topology::line(4), opts.clone())?;
    lab.start_all()?;
    lab.warmup(lab.deadline(60))?;
    lab.bandwidth(1, 2, Some(LINK))?;
    let source = lab.run_dir.join("film.bin");
    let data = write_source(&source)?;

    let seq = lab.node(0).submit(&Command::SendFile {
        room: Some(LOBBY.into()),
        to: None,
        path: source.display().to_string(),
    })?;
    let offered = match lab.node(0).reply(seq, lab.deadline(60))? {
        Event::FileOffered(f) => f,
        other => bail!("n0's answer to send_file: {other:?}"),
    };
    let id = offered.id.clone();
    lab.node(3).wait_event(
        lab.deadline(30),
        |e| matches!(e, Event::FileOffer(f) if f.id == id),
    )?;
    let seq = lab
        .node(3)
        .submit(&Command::AcceptFile { id: id.clone() })?;
    match lab.node(3).reply(seq, lab.deadline(20))? {
        Event::FileAccepted { .. } => {}
        other => bail!("n3's answer to accept_file: {other:?}"),
    }
    lab.log("n3 fetches the file");

    // Half, then SIGKILL.
    let half = lab
        .node(3)
        .wait_event(lab.deadline(150), |e| {
            matches!(e, Event::FileProgress { id: p, bytes, .. } if *p == id && *bytes >= SIZE / 2)
        })
        .is_ok();
    if !half {
        bail!(
            "n3 did not get half of the file within 150 s (it has {} bytes)",
            progress(&lab, 3, &id)
        );
    }
    lab.kill(3)?;
    let had = progress(&lab, 3, &id);
    let sent_at_kill = lab.node(0).stats()?.file_bytes_sent;
    lab.log(format!(
        "killed n3 at {had} bytes; n0 had sent {sent_at_kill}"
    ));

    // 1. It resumes and finishes.
    lab.restart(3)?;
    let t = Instant::now();
    let done = lab.node(3).wait_event(lab.deadline(200), |e| {
        matches!(e, Event::FileDone { id: d, .. } | Event::FileFailed { id: d, .. } if *d == id)
    });
    let path = match done {
        Ok(Event::FileDone { path, hash, .. }) => {
            if hash != offered.hash {
                bail!("n3 says {hash}, the offer {}", offered.hash);
            }
            path
        }
        Ok(other) => bail!("n3's download failed: {other:?}"),
        Err(_) => bail!(
            "n3 did not finish within 200 s of its restart (it has {} bytes)",
            progress(&lab, 3, &id)
        ),
    };
    let took = t.elapsed();
    let got = std::fs::read(&path).with_context(|| format!("reading n3's {path}"))?;
    if got != data {
        bail!("n3's {path} differs from the source");
    }

    // 2. Only the missing part was sent again.
    let sent = lab.node(0).stats()?.file_bytes_sent;
    let again = sent.saturating_sub(SIZE);
    if again > SIZE / 5 {
        bail!("n0 sent {sent} bytes for a {SIZE}-byte file: {again} again");
    }

    // 3. The relays carried it and kept none.
    for relay in [1, 2] {
        let seq = lab.node(relay).submit(&Command::Files)?;
        let files = match lab.node(relay).reply(seq, lab.deadline(20))? {
            Event::Files { files } => files,
            other => bail!("n{relay}'s answer to files: {other:?}"),
        };
        if files.iter().any(|f| f.state == FileState::Done) {
            bail!("relay n{relay} fetched the file: {files:?}");
        }
        let relayed = lab.node(relay).stats()?.file_bytes_relayed;
        if relayed < SIZE {
            bail!("relay n{relay} forwarded only {relayed} bytes");
        }
    }

    let rest = SIZE - had;
    let rate = rest as f64 / took.as_secs_f64();
    lab.notes.push(format!(
        "100 MiB n0→n3 over 3 hops, n1–n2 at {LINK}: n3 killed at {:.1} MiB, restarted, done {:.1?} later ({:.0}% of the link's {:.2} MB/s for the {:.1} MiB left); n0 sent {:.1} MiB in all, {:.1} MiB ({:.1}%) of it again",
        had as f64 / 1048576.0,
        took,
        100.0 * rate / LINK_BYTES_PER_SEC,
        LINK_BYTES_PER_SEC / 1e6,
        rest as f64 / 1048576.0,
        sent as f64 / 1048576.0,
        again as f64 / 1048576.0,
        100.0 * again as f64 / SIZE as f64,
    ));
    let _ = std::fs::remove_file(&source);
    lab.finish()
}
