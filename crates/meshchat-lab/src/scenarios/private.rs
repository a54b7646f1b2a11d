//! Private rooms (issue 22, PROTOCOL §10) between real processes:
//!
//! - `private-line`: a line of 5 hosts whose middle host n2 is in no private room. n0 creates
//!   an invite room and invites n1, n3 and n4; n0 and n4 also share a passphrase room. Members
//!   at both ends talk in both; every member reads every message; n2 relays and stores them
//!   all, and after the nodes stop, n2's files (database, WAL, keys, debug logs) contain
//!   neither a text, nor a room's name, nor the passphrase; the same search finds the text in
//!   n0's files.
//! - `private-partition`: a line of 4, all members of n0's invite room, cut between n1 and n2.
//!   On n0's side n0 removes n3; on the other side n2 writes. Healed: everyone computes the
//!   same membership (n0, n1, n2); n2's message, written before its side heard of the removal,
//!   is read by all four (n3 included, as §10 says); what n2 writes after the heal is read by
//!   n0 and n1 and not by n3.

use super::peer;
use crate::lab::{Lab, LabOptions, Report};
use crate::topology::Topology;
use anyhow::{bail, Result};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(100);

/// Names and texts nothing else in a run contains.
const INVITE_ROOM: &str = "saffron-crew";
const PASS_ROOM: &str = "heron-harbor";
const PASSPHRASE: &str = "violet kettle drums";

/// Polls until `cond` holds, or fails with `what` at the deadline (the NAT scenarios' too).
pub(super) fn wait(
    what: &str,
    deadline: Instant,
    mut cond: impl FnMut() -> Result<bool>,
) -> Result<()> {
    loop {
        if cond()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{what}: not by the deadline");
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until host `from` knows the profile of host `to` (nick `n<to>`).
fn wait_profile(lab: &Lab, from: usize, to: usize) -> Result<()> {
    let nick = format!("n{to}");
    wait(
        &format!("n{from} knows n{to}'s profile"),
        lab.deadline(20),
        || Ok(lab.node(from).whois(&nick).is_ok_and(|p| !p.is_empty())),
    )
}

/// Waits until every one of `nodes` has `text` in `room`'s history.
fn wait_read(lab: &Lab, nodes: &[usize], room: &str, text: &str) -> Result<()> {
    for &i in nodes {
        wait(
            &format!("n{i} reads {text:?} in #{room}"),
            lab.deadline(30),
            || Ok(reads(lab, i, room, text)),
        )?;
    }
    Ok(())
}

fn reads(lab: &Lab, i: usize, room: &str, text: &str) -> bool {
    lab.node(i)
        .history(room, 1000)
        .is_ok_and(|h| h.iter().any(|m| m.text == text && m.private.is_some()))
}

/// The sorted nicks of `room`'s members as host `i` sees them.
fn member_nicks(lab: &Lab, i: usize, room: &str) -> Result<Vec<String>> {
    let mut nicks: Vec<String> = lab
        .node(i)
        .members(room)?
        .into_iter()
        .map(|m| m.nick)
        .collect();
    nicks.sort();
    Ok(nicks)
}

/// Waits until each of `nodes` sees exactly `want` as `room`'s members.
fn wait_members(lab: &Lab, nodes: &[usize], room: &str, want: &[&str]) -> Result<()> {
    for &i in nodes {
        wait(
            &format!("n{i} sees {want:?} in #{room}"),
            lab.deadline(30),
            // Not a member yet (the invite is still on its way) is "not yet", not a failure.
            || Ok(member_nicks(lab, i, room).is_ok_and(|m| m == want)),
        )?;
    }
    Ok(())
}

/// `private-line`; see the module docs.
pub fn private_line(opts: &LabOptions) -> Result<Report> {
    let mut opts = opts.clone();
    if std::env::var_os("RUST_LOG").is_none() {
        opts.env.push((
            "RUST_LOG".into(),
            "warn,meshchat=debug,meshchat_node=debug,meshchat_core=debug".into(),
        ));
    }
    let mut lab = Lab::new(Topology::line(5), opts)?;
    lab.start_all()?;
    lab.warmup(lab.deadline(60))?;
    let t = Instant::now();

    // The invite room: n0 creates it and invites n1, n3, n4 (not n2, the middle).
    lab.node(0).create(INVITE_ROOM)?;
    for i in [1, 3, 4] {
        wait_profile(&lab, 0, i)?;
        lab.node(0).invite(INVITE_ROOM, &format!("n{i}"))?;
    }
    wait_members(&lab, &[0, 1, 3, 4], INVITE_ROOM, &["n0", "n1", "n3", "n4"])?;
    let invited = t.elapsed();
    // The passphrase room: only the ends.
    for i in [0, 4] {
        lab.node(i).join_private(PASS_ROOM, PASSPHRASE)?;
    }

    let texts = [
        "amber lanterns over the quay, seven bells",
        "the far end answers: cobalt gulls at dawn",
        "passphrase words: juniper smoke and tin",
    ];
    let t = Instant::now();
    lab.node(0).send(INVITE_ROOM, texts[0])?;
    lab.node(4).send(INVITE_ROOM, texts[1])?;
    lab.node(0).send(PASS_ROOM, texts[2])?;
    wait_read(&lab, &[1, 3, 4], INVITE_ROOM, texts[0])?;
    wait_read(&lab, &[0, 1, 3], INVITE_ROOM, texts[1])?;
    wait_read(&lab, &[4], PASS_ROOM, texts[2])?;
    let read_in = t.elapsed();
    // The middle stored all three (it serves them by sync) and showed none.
    let stored = lab.node(2).stats()?.stored;
    let shown = lab.hub.lock().nodes[2]
        .received
        .values()
        .filter(|r| r.msg.private.is_some() || r.msg.room != crate::lab::LOBBY)
        .count();
    if shown != 0 {
        bail!("n2, in no private room, showed {shown} private messages");
    }

    lab.quit_all();
    lab.check_no_duplicates()?;
    let (mut files, mut bytes) = (0, 0);
    for needle in texts
        .iter()
        .copied()
        .chain([INVITE_ROOM, PASS_ROOM, PASSPHRASE])
    {
        let (found, f, b) = lab.files_containing(2, needle.as_bytes())?;
        (files, bytes) = (f, b);
        if !found.is_empty() {
            bail!("n2 holds {needle:?} in {found:?}");
        }
    }
    let (control, _, _) = lab.files_containing(0, texts[1].as_bytes())?;
    if control.is_empty() {
        bail!("n0's files do not contain what it read either: the search proves nothing");
    }
    lab.notes.push(format!(
        "n0 created #{INVITE_ROOM} and invited n1, n3, n4: all four agree on the members {} ms after the create",
        invited.as_millis()
    ));
    lab.notes.push(format!(
        "3 messages (two in the invite room from both ends, one in the passphrase room) read by every member within {} ms",
        read_in.as_millis()
    ));
    lab.notes.push(format!(
        "n2 (not a member) stored {stored} envelopes and showed none; its {files} files ({bytes} bytes: database, WAL, keys, debug logs) contain no text, no room name and no passphrase; the same search finds the text in n0's files"
    ));
    lab.finish()
}

/// `private-partition`; see the module docs.
pub fn private_partition(opts: &LabOptions) -> Result<Report> {
    let mut lab = Lab::new(Topology::line(4), opts.clone())?;
    lab.start_all()?;
    lab.warmup(lab.deadline(60))?;
    lab.node(0).create(INVITE_ROOM)?;
    for i in [1, 2, 3] {
        wait_profile(&lab, 0, i)?;
        lab.node(0).invite(INVITE_ROOM, &format!("n{i}"))?;
    }
    let all = ["n0", "n1", "n2", "n3"];
    wait_members(&lab, &[0, 1, 2, 3], INVITE_ROOM, &all)?;

    // Cut between n1 and n2: n0 removes n3 on its side, n2 writes on the other.
    let cut = lab.partition(&[0, 1])?;
    lab.node(0).remove(INVITE_ROOM, "n3")?;
    wait_members(&lab, &[0, 1], INVITE_ROOM, &["n0", "n1", "n2"])?;
    let during = "written on the far side during the cut";
    lab.node(2).send(INVITE_ROOM, during)?;
    wait_read(&lab, &[3], INVITE_ROOM, during)?;
    if member_nicks(&lab, 2, INVITE_ROOM)? != all {
        bail!("n2 heard of the removal across the cut");
    }

    let t = Instant::now();
    lab.heal(&cut)?;
    let after = ["n0", "n1", "n2"];
    wait_members(&lab, &[0, 1, 2, 3], INVITE_ROOM, &after)?;
    wait_read(&lab, &[0, 1], INVITE_ROOM, during)?;
    let healed = t.elapsed();
    let later = "written after the heal";
    let stored_before = lab.node(3).stats()?.stored;
    lab.node(2).send(INVITE_ROOM, later)?;
    wait_read(&lab, &[0, 1], INVITE_ROOM, later)?;
    // n3 has the envelope (it relays) but not the key.
    let n3 = peer(&lab, 3)?;
    wait(
        "n3 stored the message written after the heal",
        lab.deadline(20),
        || Ok(lab.node(3).stats()?.stored > stored_before),
    )?;
    if reads(&lab, 3, INVITE_ROOM, later) {
        bail!("n3 ({n3}), removed, reads what was written after the heal");
    }
    lab.quit_all();
    lab.check_no_duplicates()?;
    lab.notes.push(format!(
        "removal on n0's side, message on n2's: {} ms after the heal all four computed the members n0, n1, n2 and n0, n1 read n2's message; n3 read it too (written before n2 heard of the removal) and not the one written after the heal",
        healed.as_millis()
    ));
    lab.finish()
}
