//! `clock-skew`: nodes with wrong clocks, in real processes under libfaketime (issue 18).
//!
//! A line of 5: n0's clock runs 10 minutes ahead, n4's a year behind (`FAKETIME`, with the
//! monotonic clock left alone so timers keep working), n1-n3 are right. PROTOCOL §1's rule:
//! an envelope dated more than 5 minutes ahead of the receiver's clock is refused, an old one is
//! fine; clocks are measured against the median of the authors heard and the user is told, never
//! adjusted. Asserted:
//!
//! 1. n1-n3's messages reach n0 (old to it, fine) and not n4 (from its future);
//! 2. n0 is told its clock is about 10 minutes ahead, n4 that it is about a year behind, each
//!    once (a `warning` event with `kind: clock`);
//! 3. n4 names its neighbour n3 for the envelopes it refused as from the future;
//! 4. n0's own message is refused by n1, which names n0; n4's own message (dated a year back)
//!    reaches n0-n3.

use crate::lab::{Lab, LabOptions, Report, LOBBY};
use crate::topology::Topology;
use anyhow::{bail, Result};
use meshchat_api::{Event, Warning, WarningKind};
use std::time::{Duration, Instant};

/// Where Debian's `faketime` package puts the library.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

const MIN_MS: i64 = 60_000;
const YEAR_MS: i64 = 365 * 24 * 60 * MIN_MS;

/// Node `i`'s `warning` events of kind `clock` so far: `(offset_ms, off)`.
fn clock_warnings(lab: &Lab, i: usize) -> Vec<(i64, bool)> {
    let st = lab.hub.lock();
    st.nodes[i]
        .other_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Warning(Warning {
                kind: Some(WarningKind::Clock { offset_ms, off, .. }),
                ..
            }) => Some((*offset_ms, *off)),
            _ => None,
        })
        .collect()
}

/// Whether node `i` has said it refused messages from `peer` dated ahead of its clock.
fn named(lab: &Lab, i: usize, peer: &str) -> bool {
    let st = lab.hub.lock();
    st.nodes[i].other_events.iter().any(|(_, e)| {
        matches!(e, Event::Warning(w)
            if w.message.contains("refused messages from") && w.message.contains(peer))
    })
}

/// Polls `cond` until it holds or `deadline` passes.
fn wait_for(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn clock_skew(opts: &LabOptions) -> Result<Report> {
    if !std::path::Path::new(LIBFAKETIME).exists() {
        bail!("{LIBFAKETIME} is needed (Debian package faketime; .ci/run installs it)");
    }
    let mut lab = Lab::new(Topology::line(5), opts.clone())?;
    for (i, shift) in [(0, "+10m"), (4, "-365d")] {
        lab.add_env(
            i,
            &[
                ("LD_PRELOAD", LIBFAKETIME),
                ("FAKETIME", shift),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ],
        );
    }
    lab.start_all()?;
    lab.wait_connected(lab.deadline(30))?;
    let peer = |i: usize| lab.node(i).peer_id().unwrap_or_default();
    let (n0, n3) = (peer(0), peer(3));

    // 1. The right clocks' messages.
    let mut honest = Vec::new();
    for i in 1..=3 {
        for k in 0..2 {
            honest.push(lab.node(i).send(LOBBY, &format!("from n{i} #{k}"))?);
        }
    }
    lab.wait_nodes_have(&[0, 1, 2, 3], &honest, lab.deadline(30))?;

    // 2. Both wrong clocks are told, about the right size and direction.
    let told = |i: usize, want: i64, tolerance: i64| {
        clock_warnings(&lab, i)
            .iter()
            .any(|(o, off)| *off && (o - want).abs() <= tolerance)
    };
    if !wait_for(lab.deadline(20), || told(0, 10 * MIN_MS, MIN_MS)) {
        bail!(
            "n0 (10 min ahead) was not told: {:?}",
            clock_warnings(&lab, 0)
        );
    }
    if !wait_for(lab.deadline(20), || told(4, -YEAR_MS, 60 * MIN_MS)) {
        bail!(
            "n4 (a year behind) was not told: {:?}",
            clock_warnings(&lab, 4)
        );
    }
    // 3. n4 names who handed it the envelopes from its future.
    if !wait_for(lab.deadline(10), || named(&lab, 4, &n3)) {
        bail!("n4 did not name n3 for the envelopes it refused");
    }
    let shown4 = lab.shown_ids(4);
    if let Some(id) = honest.iter().find(|id| shown4.contains(*id)) {
        bail!("n4, a year behind, showed {id}, dated a year in its future");
    }

    // 4. What the wrong clocks write.
    let from0 = lab.node(0).send(LOBBY, "from ten minutes ahead")?;
    let from4 = lab.node(4).send(LOBBY, "from a year behind")?;
    lab.wait_nodes_have(
        &[0, 1, 2, 3],
        std::slice::from_ref(&from4),
        lab.deadline(30),
    )?;
    if !wait_for(lab.deadline(10), || named(&lab, 1, &n0)) {
        bail!("n1 did not name n0 for its message from the future");
    }
    for i in 1..=4 {
        if lab.shown_ids(i).contains(&from0) {
            bail!("n{i} showed n0's message, dated 10 min ahead of its clock");
        }
    }
    let once: Vec<usize> = clock_warnings(&lab, 0)
        .iter()
        .chain(clock_warnings(&lab, 4).iter())
        .map(|_| 1)
        .collect();
    if once.len() != 2 {
        bail!(
            "each wrong clock should be told once: n0 {:?}, n4 {:?}",
            clock_warnings(&lab, 0),
            clock_warnings(&lab, 4)
        );
    }
    lab.notes.push(format!(
        "n0 (+10 min) told {:?}, n4 (-1 year) told {:?}; n4 named n3 and n1 named n0 for envelopes from the future; n1-n3's messages reached n0 and not n4, n0's reached nobody, n4's reached everyone",
        clock_warnings(&lab, 0),
        clock_warnings(&lab, 4)
    ));
    lab.finish()
}
