//! `disk-full`: a node whose disk fills up (issue 18), on a real full filesystem.
//!
//! A line of 3; n1's data directory is a 4 MiB tmpfs, filled to the last byte once the mesh is
//! up. n2 restarts (n1 learns its addresses again and cannot store them), then n0 sends 30
//! messages of ~20 KB and a DM to n2, through n1. Asserted:
//!
//! 1. n1 keeps relaying: n2 shows all 30 and gets the DM;
//! 2. n1 says its disk is full once (one `could not …` warning, whichever write found it), not
//!    once per message, profile or peer;
//! 3. when space comes back, n1 says it stores again and fetches what it missed from its peers at
//!    once (all 30 and a message sent afterwards within 20 s, no periodic round);
//! 4. after a restart, n1's history holds everything it stored.

use crate::lab::{Lab, LabOptions, Report, LOBBY};
use crate::topology::Topology;
use anyhow::{bail, Context as _, Result};
use meshchat_api::Event;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Unmounts the tmpfs however the scenario ends.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Result<Mounted> {
    std::fs::create_dir_all(dir)?;
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .status()
        .context("running mount")?
        .success();
    if !ok {
        bail!("could not mount a tmpfs at {}", dir.display());
    }
    Ok(Mounted(dir.to_owned()))
}

/// Writes a file until the filesystem is full; returns its path.
fn fill(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path)?;
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    // Then byte by byte into the last partial page.
    while f.write_all(&[0]).is_ok() {}
    Ok(path)
}

/// Node `i`'s `warning` messages so far.
fn warnings(lab: &Lab, i: usize) -> Vec<String> {
    let st = lab.hub.lock();
    st.nodes[i]
        .other_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Warning(w) => Some(w.message.clone()),
            _ => None,
        })
        .collect()
}

pub fn disk_full(opts: &LabOptions) -> Result<Report> {
    let mut lab = Lab::new(Topology::line(3), opts.clone())?;
    let mounted = mount_tmpfs(lab.data_dir(1), "4m")?;
    lab.start_all()?;
    lab.warmup(lab.deadline(60))?;
    let n2 = lab.node(2).peer_id().context("n2's peer id")?;
    let filler = fill(&mounted.0)?;
    lab.log("n1's disk is full");
    // n2 comes back while n1's disk is full: n1 cannot store what it learns of it (the known-peer
    // list) either; that is the same outage, told once.
    lab.stop(2)?;
    lab.restart(2)?;
    lab.wait_linked(&[(1, 2)], lab.deadline(30))?;

    let big = "d".repeat(20_000);
    let mut ids = Vec::new();
    for k in 0..30 {
        ids.push(lab.node(0).send(LOBBY, &format!("{k:03} {big}"))?);
        std::thread::sleep(Duration::from_millis(20));
    }
    let dm = lab.node(0).dm(&n2, "a DM across a full disk")?;
    // 1. n1 keeps relaying.
    lab.wait_nodes_have(&[2], &ids, lab.deadline(30))?;
    let got_dm = lab.hub.wait_until(lab.deadline(30), |st| {
        st.nodes[2]
            .dms
            .values()
            .any(|d| d.dm.text == "a DM across a full disk")
    });
    if !got_dm {
        bail!("n2 did not get the DM relayed by n1 (sent as {})", dm.id);
    }
    // 2. One warning for the outage.
    let full: Vec<String> = warnings(&lab, 1)
        .into_iter()
        .filter(|w| w.contains("could not") || w.contains("still cannot"))
        .collect();
    if full.len() != 1 {
        bail!("n1 should say its disk is full once: {full:?}");
    }

    // 3. Space comes back.
    std::fs::remove_file(&filler)?;
    let t = Instant::now();
    let after = lab.node(0).send(LOBBY, "after the disk has room")?;
    let mut all = ids.clone();
    all.push(after);
    lab.wait_nodes_have(&[1], &all, t + Duration::from_secs(20))
        .context("n1 did not catch up within 20 s of the disk having room")?;
    let caught_up = t.elapsed();
    if !warnings(&lab, 1)
        .iter()
        .any(|w| w.contains("storing messages again"))
    {
        bail!("n1 did not say it stores again: {:?}", warnings(&lab, 1));
    }

    // 4. A restart keeps everything.
    lab.stop(1)?;
    lab.restart(1)?;
    let history = lab.node(1).history(LOBBY, 1000)?;
    let kept: std::collections::HashSet<&str> = history.iter().map(|m| m.id.as_str()).collect();
    if let Some(missing) = all.iter().find(|id| !kept.contains(id.as_str())) {
        bail!("n1's history lost {missing} across the restart");
    }
    lab.notes.push(format!(
        "n1's 4 MiB tmpfs full: n2 got all 30 and the DM through it; n1 warned once ({:?}); with room again it had all 31 {:.1?} later and said so; after a restart its history holds all 31",
        full[0].chars().take(80).collect::<String>(),
        caught_up
    ));
    // n1 stops and its tmpfs goes before the lab removes the run directory: with the tmpfs
    // still mounted there, the removal failed at the mount point and left the directory behind
    // after every clean run.
    lab.stop(1)?;
    drop(mounted);
    lab.finish()
}
