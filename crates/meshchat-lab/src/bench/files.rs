//! `meshchat-lab files`: file transfer over a line of 4 real nodes (issue 20), measuring
//!
//! - throughput over one hop (n0 → n1) and three (n0 → n3), optionally with the n1–n2 link
//!   limited (`--bandwidth`, tc syntax), as the file's size over the time from `accept_file`
//!   to `file_done` (the downloader's whole-file check included);
//! - what the relays n1 and n2 spend forwarding it: CPU seconds per MiB (`/proc/<pid>/stat`)
//!   and resident memory (`VmRSS`, sampled every 50 ms) before and at its peak, which must not
//!   grow with the file.
//!
//! The file is offered in the lobby by n0; n1 fetches it first (one hop), then n3 (three
//! hops: n1 holds it too by then, but is not n3's neighbour, so n3 asks n0 and n2, and only
//! n0 has it).

use crate::lab::{Lab, LabOptions, LOBBY};
use crate::sys;
use crate::topology::Topology;
use anyhow::{bail, Result};
use meshchat_api::{Command, Event};
use serde::Serialize;
use std::io::Write as _;
use std::time::{Duration, Instant};

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FilesResult {
    pub size_mib: u64,
    pub bandwidth: Option<String>,
    /// MB/s (10^6 bytes) from `accept_file` to `file_done`.
    pub one_hop_mb_s: f64,
    pub three_hops_mb_s: f64,
    /// CPU seconds of n1 and n2 per MiB they forwarded, during the three-hop transfer.
    pub relay_cpu_ms_per_mib: [f64; 2],
    /// n1's and n2's resident memory before the three-hop transfer and at its peak, MiB.
    pub relay_rss_before_mib: [f64; 2],
    pub relay_rss_peak_mib: [f64; 2],
    pub seconds: f64,
}

fn write_source(path: &std::path::Path, size: u64) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for w in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

/// `i` fetches offer `id`; the seconds from its `accept_file` to its `file_done`, sampling the
/// relays' memory meanwhile (peak RSS, KiB).
fn fetch(lab: &Lab, i: usize, id: &str, relays: &[usize], peak: &mut [u64]) -> Result<f64> {
    lab.node(i).wait_event(
        lab.deadline(60),
        |e| matches!(e, Event::FileOffer(f) if f.id == id),
    )?;
    let seq = lab.node(i).submit(&Command::AcceptFile { id: id.into() })?;
    let t = Instant::now();
    match lab.node(i).reply(seq, lab.deadline(30))? {
        Event::FileAccepted { .. } => {}
        other => bail!("n{i}'s answer to accept_file: {other:?}"),
    }
    let deadline = lab.deadline(3600);
    loop {
        for (k, &r) in relays.iter().enumerate() {
            if let Some(kib) = lab.pid(r).and_then(sys::rss_kib) {
                peak[k] = peak[k].max(kib);
            }
        }
        let done = lab.hub.lock().nodes[i]
            .other_events
            .iter()
            .find_map(|(_, e)| match e {
                Event::FileDone { id: d, .. } if d == id => Some(Ok(())),
                Event::FileFailed { id: d, reason } if d == id => Some(Err(reason.clone())),
                _ => None,
            });
        match done {
            Some(Ok(())) => return Ok(t.elapsed().as_secs_f64()),
            Some(Err(reason)) => bail!("n{i}'s download failed: {reason}"),
            None if Instant::now() > deadline => bail!("n{i}'s download did not finish"),
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

pub fn run(size_mib: u64, bandwidth: Option<&str>, opts: &LabOptions) -> Result<FilesResult> {
    let started = Instant::now();
    let size = size_mib << 20;
    let mut lab = Lab::new(Topology::line(4), opts.clone())?;
    lab.start_all()?;
    lab.warmup(lab.deadline(60))?;
    let source = lab.run_dir.join("bench.bin");
    write_source(&source, size)?;
    let seq = lab.node(0).submit(&Command::SendFile {
        room: Some(LOBBY.into()),
        to: None,
        path: source.display().to_string(),
    })?;
    let id = match lab.node(0).reply(seq, lab.deadline(600))? {
        Event::FileOffered(f) => f.id,
        other => bail!("n0's answer to send_file: {other:?}"),
    };
    lab.log(format!("offered {size_mib} MiB"));

    let mut unused = [0u64; 0];
    let one = fetch(&lab, 1, &id, &[], &mut unused)?;
    lab.log(format!("one hop: {one:.1} s"));

    if let Some(rate) = bandwidth {
        lab.bandwidth(1, 2, Some(rate))?;
    }
    let relays = [1usize, 2];
    let tck = sys::clk_tck();
    let cpu = |lab: &Lab, r: usize| {
        lab.pid(r)
            .and_then(|p| sys::cpu_seconds(p, tck))
            .unwrap_or(0.0)
    };
    let rss = |lab: &Lab, r: usize| lab.pid(r).and_then(sys::rss_kib).unwrap_or(0);
    let cpu_before = relays.map(|r| cpu(&lab, r));
    let rss_before = relays.map(|r| rss(&lab, r));
    let relayed_before: Vec<u64> = relays
        .iter()
        .map(|&r| lab.node(r).stats().map(|s| s.file_bytes_relayed))
        .collect::<Result<_>>()?;
    let mut peak = rss_before;
    let three = fetch(&lab, 3, &id, &relays, &mut peak)?;
    lab.log(format!("three hops: {three:.1} s"));
    let mut cpu_per_mib = [0.0; 2];
    for (k, &r) in relays.iter().enumerate() {
        let relayed = lab.node(r).stats()?.file_bytes_relayed - relayed_before[k];
        let mib = relayed as f64 / 1048576.0;
        cpu_per_mib[k] = 1000.0 * (cpu(&lab, r) - cpu_before[k]) / mib.max(1.0);
    }
    let _ = std::fs::remove_file(&source);
    lab.finish()?;
    let mb = size as f64 / 1e6;
    Ok(FilesResult {
        size_mib,
        bandwidth: bandwidth.map(str::to_owned),
        one_hop_mb_s: mb / one,
        three_hops_mb_s: mb / three,
        relay_cpu_ms_per_mib: cpu_per_mib,
        relay_rss_before_mib: rss_before.map(|k| k as f64 / 1024.0),
        relay_rss_peak_mib: peak.map(|k| k as f64 / 1024.0),
        seconds: started.elapsed().as_secs_f64(),
    })
}
