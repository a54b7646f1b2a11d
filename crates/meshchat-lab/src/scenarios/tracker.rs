//! The tracker and its Bully election (issue 12) between real nodes, with real crashes
//! (`kill -9`), partitions and restarts:
//!
//! - `tracker-line`: a line n0 … n5 plus n6 hanging off n2 (started later). n0, at one end,
//!   has the highest priority: everyone follows it, registered, `who` complete everywhere. n0 is
//!   killed: one new tracker, every live node registered with it, `who` complete (the failover
//!   time is measured). n6, which knows only n2's address (priority 50, below the rest), joins
//!   and gets the whole roster. n0 returns on its data dir: it takes over at a newer epoch,
//!   still exactly one tracker.
//! - `tracker-partition`: a line of 6 agrees on one tracker, is cut in two halves (one
//!   tracker each, each half's `who` lists that half), and healed (one tracker again, `who`
//!   complete, measured).
//! - `tracker-named`: a LAN of 6 with no mDNS and no `--peer`: n0 and n5 are preferred trackers
//!   (bare `--tracker`), the others name them with `--tracker ADDR` and find each other through
//!   them; the elected one is killed: the other takes over, every node is registered with it,
//!   and a room message still reaches every live node (nothing stalls).
//!
//! [`measure`] (`meshchat-lab tracker`) measures failover on random graphs of N hosts.
//!
//! What "agreed" means ([`wait_agreed`]): every node of a set follows the same tracker at the
//! same epoch, is registered with it, that node (and no other) reports itself as the tracker,
//! and every node's `who` lists exactly the set.

use super::peer;
use crate::lab::{Lab, LabOptions, Report, LOBBY};
use crate::topology::Topology;
use anyhow::{bail, Context as _, Result};
use meshchat_api::{Command, Event, Stats};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How often the nodes are asked while waiting.
const POLL: Duration = Duration::from_millis(20);

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// What one node says of the tracker (its `tracker` answer).
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    tracker: Option<String>,
    epoch: u64,
    is_self: bool,
    registered: bool,
}

/// Asks every one of `nodes` at once (all commands written before any answer is awaited, so
/// a round over 50 nodes takes about one round trip, not 50) and returns their answers.
fn ask_all(lab: &Lab, nodes: &[usize], cmd: &Command) -> Result<Vec<Event>> {
    let seqs = nodes
        .iter()
        .map(|&i| lab.node(i).submit(cmd))
        .collect::<Result<Vec<u64>>>()?;
    let deadline = lab.deadline(20);
    nodes
        .iter()
        .zip(seqs)
        .map(|(&i, seq)| lab.node(i).reply(seq, deadline))
        .collect()
}

fn views(lab: &Lab, nodes: &[usize]) -> Result<Vec<View>> {
    ask_all(lab, nodes, &Command::Tracker)?
        .into_iter()
        .map(|e| match e {
            Event::Tracker(t) => Ok(View {
                tracker: t.tracker,
                epoch: t.epoch,
                is_self: t.is_self,
                registered: t.registered,
            }),
            other => bail!("unexpected answer to tracker: {other:?}"),
        })
        .collect()
}

/// The peer ids in each node's `who`.
fn whos(lab: &Lab, nodes: &[usize]) -> Result<Vec<BTreeSet<String>>> {
    ask_all(lab, nodes, &Command::Who)?
        .into_iter()
        .map(|e| match e {
            Event::Who { peers } => Ok(peers.into_iter().map(|p| p.peer_id).collect()),
            other => bail!("unexpected answer to who: {other:?}"),
        })
        .collect()
}

/// Whether `nodes` agree (see the module docs); `Err` says how they do not. With `exact`
/// false, a node's `who` may list more than `nodes` (entries of nodes that left, kept until
/// they expire).
fn agreed_with(
    lab: &Lab,
    nodes: &[usize],
    exact: bool,
) -> Result<std::result::Result<(usize, u64), String>> {
    let peers: Vec<String> = nodes.iter().map(|&i| peer(lab, i)).collect::<Result<_>>()?;
    let want: BTreeSet<String> = peers.iter().cloned().collect();
    let views = views(lab, nodes)?;
    let first = &views[0];
    let Some(t) = &first.tracker else {
        return Ok(Err(format!("n{} follows no tracker", nodes[0])));
    };
    for (&i, v) in nodes.iter().zip(&views) {
        if v.tracker.as_ref() != Some(t) || v.epoch != first.epoch || !v.registered {
            return Ok(Err(format!("n{i}: {v:?}; n{}: {first:?}", nodes[0])));
        }
    }
    let Some(host) = nodes
        .iter()
        .zip(&peers)
        .find(|(_, p)| *p == t)
        .map(|(&i, _)| i)
    else {
        return Ok(Err(format!("the tracker {t} is not among {nodes:?}")));
    };
    let serving: Vec<usize> = nodes
        .iter()
        .zip(&views)
        .filter(|(_, v)| v.is_self)
        .map(|(&i, _)| i)
        .collect();
    if serving != [host] {
        return Ok(Err(format!("serving: {serving:?}, followed: n{host}")));
    }
    for (&i, w) in nodes.iter().zip(whos(lab, nodes)?) {
        if (exact && w != want) || !want.is_subset(&w) {
            let names = |s: &BTreeSet<String>| -> Vec<String> {
                s.iter()
                    .map(|p| match lab.host_of(p) {
                        Some(h) => format!("n{h}"),
                        None => p.clone(),
                    })
                    .collect()
            };
            return Ok(Err(format!("n{i}'s who: {:?}", names(&w))));
        }
    }
    Ok(Ok((host, first.epoch)))
}

fn agreed(lab: &Lab, nodes: &[usize]) -> Result<std::result::Result<(usize, u64), String>> {
    agreed_with(lab, nodes, true)
}

/// Waits until `nodes` agree; returns the tracker's host, the epoch, and when it was seen.
fn wait_agreed(lab: &Lab, nodes: &[usize], deadline: Instant) -> Result<(usize, u64, Instant)> {
    loop {
        match agreed(lab, nodes)? {
            Ok((host, epoch)) => return Ok((host, epoch, Instant::now())),
            Err(why) if Instant::now() >= deadline => {
                bail!("{nodes:?} do not agree on one tracker by the deadline: {why}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Waits until every one of `nodes` follows a tracker other than `old` (not necessarily
/// registered yet); returns when.
fn wait_followed_other(lab: &Lab, nodes: &[usize], old: &str, deadline: Instant) -> Result<()> {
    loop {
        let views = views(lab, nodes)?;
        let t = views[0].tracker.clone();
        if t.as_deref().is_some_and(|t| t != old) && views.iter().all(|v| v.tracker == t) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{nodes:?} do not follow one new tracker: {views:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// When the last of `nodes` printed `tracker_changed` naming `tracker` (the first such event of
/// each node after `since`), by the lab's arrival stamps: exact, unlike polling.
fn adopted_at(lab: &Lab, nodes: &[usize], tracker: &str, since: Instant) -> Option<Instant> {
    let st = lab.hub.lock();
    nodes
        .iter()
        .map(|&i| {
            st.nodes[i]
                .other_events
                .iter()
                .find(|(at, e)| {
                    *at >= since
                        && matches!(e, Event::TrackerChanged { tracker: Some(t), .. } if t == tracker)
                })
                .map(|(at, _)| *at)
        })
        .collect::<Option<Vec<Instant>>>()?
        .into_iter()
        .max()
}

fn priority(p: u32) -> Vec<String> {
    vec!["--tracker-priority".into(), p.to_string()]
}

/// `tracker-line`; see the module docs.
pub fn tracker_line(opts: &LabOptions) -> Result<Report> {
    let edges = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (2, 6)];
    let topo = Topology::from_edges(7, &edges, "line:6+1")?;
    let mut lab = Lab::new(topo, opts.clone())?;
    lab.add_args(0, &priority(500));
    // The newcomer ranks below everyone: with the default priority it would outrank the new
    // tracker whenever its peer id were the largest (one run in six), and rightly take over.
    lab.add_args(6, &priority(50));
    let line: Vec<usize> = (0..6).collect();
    let started = Instant::now();
    lab.start_only(&line, true)?;
    let (host, first, at) = wait_agreed(&lab, &line, lab.deadline(60))?;
    if host != 0 {
        bail!("the line follows n{host}, not n0 (priority 500)");
    }
    let elected = at - started;
    lab.log(format!(
        "n0 to n5 follow n0 (epoch {first}), all registered, who complete, {} after start",
        ms(elected)
    ));

    // kill -9 the tracker.
    let old = peer(&lab, 0)?;
    let rest: Vec<usize> = (1..6).collect();
    let killed = Instant::now();
    lab.kill(0)?;
    wait_followed_other(&lab, &rest, &old, lab.deadline(30))?;
    let followed = killed.elapsed();
    let (next, second, at) = wait_agreed(&lab, &rest, lab.deadline(30))?;
    let failover = at - killed;
    if second <= first {
        bail!("the new tracker's epoch {second} is not above {first}");
    }
    lab.log(format!(
        "n0 killed: n1..n5 follow n{next} (epoch {second}) after {}, all registered with it and who complete after {}",
        ms(followed),
        ms(failover)
    ));
    let changed = lab.node(1).wait_event(
        lab.deadline(5),
        |e| matches!(e, Event::TrackerChanged { epoch, .. } if *epoch == second),
    )?;
    let next_peer = peer(&lab, next)?;
    if !matches!(&changed, Event::TrackerChanged { tracker: Some(t), .. } if *t == next_peer) {
        bail!("n1's tracker_changed event names another tracker: {changed:?}");
    }

    // A newcomer that knows only n2's address (and ranks below the tracker).
    let joined = Instant::now();
    lab.restart(6)?;
    let joiners: Vec<usize> = (1..7).collect();
    let (host, _, at) = wait_agreed(&lab, &joiners, lab.deadline(30))?;
    if host != next {
        bail!("after n6 joined, the tracker is n{host}, not n{next}");
    }
    lab.log(format!(
        "n6 (given only n2's address) registered, and everyone lists n1..n6, {} after its start",
        ms(at - joined)
    ));

    // The old tracker returns: it takes over; still exactly one.
    let back = Instant::now();
    lab.restart(0)?;
    let all: Vec<usize> = (0..7).collect();
    let (host, third, at) = wait_agreed(&lab, &all, lab.deadline(30))?;
    if host != 0 || third <= second {
        bail!("after n0 returned: tracker n{host} at epoch {third} (before: n{next} at {second})");
    }
    lab.log(format!(
        "n0 returned: everyone follows it at epoch {third}, registered, who complete, {} after its restart",
        ms(at - back)
    ));
    let forged: u64 = all
        .iter()
        .map(|&i| lab.node(i).stats().map(|s| s.tracker.forged))
        .sum::<Result<u64>>()?;
    if forged != 0 {
        bail!("{forged} tracker messages counted as forged");
    }
    lab.quit_all();
    lab.notes.push(format!(
        "line n0..n5, n0 priority 500: all followed n0, registered, who complete {} after start (epoch {first})",
        ms(elected)
    ));
    lab.notes.push(format!(
        "kill -9 n0: one new tracker n{next} (epoch {second}); followed by all after {}, all registered and who complete after {}",
        ms(followed),
        ms(failover)
    ));
    lab.notes.push(format!(
        "n0 back: it took over at epoch {third}; exactly one tracker, who complete on 7 nodes"
    ));
    lab.finish()
}

/// `tracker-partition`; see the module docs.
pub fn tracker_partition(opts: &LabOptions) -> Result<Report> {
    let mut lab = Lab::new(Topology::line(6), opts.clone())?;
    let all: Vec<usize> = (0..6).collect();
    lab.start_only(&all, true)?;
    let (host, epoch, _) = wait_agreed(&lab, &all, lab.deadline(60))?;
    lab.log(format!("one tracker: n{host} (epoch {epoch})"));

    let (west, east) = ([0, 1, 2], [3, 4, 5]);
    let cut = lab.partition(&west)?;
    let split = Instant::now();
    // Each half: one tracker, its own members in who. The links die silently, so a half
    // notices when the heartbeats stop (1.5 s) and its routes go when the pings fail (~30 s);
    // the roster of the half that kept the tracker loses the others when their entries expire
    // (two minutes), so who may list more than the half; the half that elected a new tracker
    // lists exactly itself.
    let deadline = lab.deadline(90);
    let (wt, et) = loop {
        let w = agreed_with(&lab, &west, false)?;
        let e = agreed_with(&lab, &east, false)?;
        match (w, e) {
            (Ok(w), Ok(e)) => break (w, e),
            (w, e) if Instant::now() >= deadline => {
                bail!("the halves do not each agree on a tracker: west {w:?}, east {e:?}")
            }
            _ => std::thread::sleep(POLL),
        }
    };
    let halves = split.elapsed();
    for (side, t) in [(&west[..], wt.0), (&east[..], et.0)] {
        if t != host {
            if let Err(why) = agreed(&lab, side)? {
                bail!("the half {side:?} elected n{t} but does not list exactly itself: {why}");
            }
        }
    }
    lab.log(format!(
        "partitioned: west follows n{} (epoch {}), east n{} (epoch {}), each who lists its half, after {}",
        wt.0,
        wt.1,
        et.0,
        et.1,
        ms(halves)
    ));

    lab.heal(&cut)?;
    let healed = Instant::now();
    lab.wait_connected(lab.deadline(60))?;
    let (host, epoch, at) = wait_agreed(&lab, &all, lab.deadline(60))?;
    let merged = at - healed;
    lab.log(format!(
        "healed: everyone follows n{host} (epoch {epoch}), registered, who complete, {} after the heal",
        ms(merged)
    ));
    lab.quit_all();
    lab.notes.push(format!(
        "halves: west n{} (epoch {}), east n{} (epoch {}), {} after the cut",
        wt.0,
        wt.1,
        et.0,
        et.1,
        ms(halves)
    ));
    lab.notes.push(format!(
        "healed: one tracker n{host} (epoch {epoch}), who complete on all 6, {} after the heal",
        ms(merged)
    ));
    lab.finish()
}

/// `tracker-named`; see the module docs.
pub fn tracker_named(opts: &LabOptions) -> Result<Report> {
    let mut lab = Lab::new(Topology::lan(6), opts.clone())?;
    let named = [0, 5];
    for i in named {
        lab.add_args(i, &["--tracker".to_string()]);
    }
    lab.start_only(&named, false)?;
    let mut args = Vec::new();
    for i in named {
        let addr = lab
            .dial_addr(1, i)
            .with_context(|| format!("no address of n{i}"))?;
        args.extend(["--tracker".to_string(), addr]);
    }
    let others = [1, 2, 3, 4];
    for i in others {
        lab.add_args(i, &args);
    }
    lab.start_only(&others, false)?;
    let all: Vec<usize> = (0..6).collect();
    let (host, epoch, _) = wait_agreed(&lab, &all, lab.deadline(60))?;
    if !named.contains(&host) {
        bail!("the tracker is n{host}, not one of the named ones");
    }
    let other = if host == 0 { 5 } else { 0 };
    lab.log(format!("everyone follows n{host} (epoch {epoch})"));

    let killed = Instant::now();
    lab.kill(host)?;
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != host).collect();
    let (next, second, at) = wait_agreed(&lab, &rest, lab.deadline(30))?;
    if next != other {
        bail!("after n{host} died the tracker is n{next}, not the other named one n{other}");
    }
    let failover = at - killed;
    // Nothing stalls: a room message reaches every live node.
    let sender = rest[1];
    let id = lab
        .node(sender)
        .send(LOBBY, "still here after the tracker died")?;
    lab.wait_nodes_have(&rest, &[id], lab.deadline(20))?;
    let other_peer = peer(&lab, other)?;
    for &i in &rest {
        if i != other && !lab.node(i).peers()?.iter().any(|p| p.peer_id == other_peer) {
            bail!("n{i} is not connected to the named tracker n{other}");
        }
    }
    lab.quit_all();
    lab.check_no_duplicates()?;
    lab.notes.push(format!(
        "named trackers n0, n5 (bare --tracker, priority 1000); the others given only their addresses: all followed n{host} (epoch {epoch})"
    ));
    lab.notes.push(format!(
        "kill -9 n{host}: n{other} took over (epoch {second}), everyone registered, who complete after {}; a room message from n{sender} reached all 5",
        ms(failover)
    ));
    lab.finish()
}

/// `meshchat-lab tracker` arguments.
#[derive(Debug, Clone)]
pub struct FailoverArgs {
    /// Host counts to measure.
    pub sizes: Vec<usize>,
    /// Degree of the random graphs.
    pub degree: usize,
    /// Failovers per size.
    pub rounds: usize,
    pub seed: u64,
}

/// One failover.
#[derive(Debug, Clone, Serialize)]
pub struct Failover {
    pub n: usize,
    /// From the kill to every live node following the new tracker.
    pub followed_ms: f64,
    /// From the kill to every live node registered with it and its `who` complete.
    pub settled_ms: f64,
    /// Election messages (ELECTION, ALIVE, COORDINATOR) the live nodes sent meanwhile, and
    /// registrations and roster answers.
    pub election_msgs: u64,
    pub roster_msgs: u64,
}

fn sum_stat(lab: &Lab, nodes: &[usize], field: fn(&Stats) -> u64) -> Result<u64> {
    nodes
        .iter()
        .map(|&i| lab.node(i).stats().map(|s| field(&s)))
        .sum()
}

/// Kills the tracker of a random graph of `n` hosts, `rounds` times (restarting it between),
/// and measures how long until everyone follows and is registered with the new one.
pub fn measure(args: &FailoverArgs, opts: &LabOptions) -> Result<(Vec<Failover>, Report)> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let mut total = Report::default();
    for &n in &args.sizes {
        let topo = Topology::random(n, args.degree, args.seed)?;
        let mut lab = Lab::new(topo, opts.clone())?;
        let all: Vec<usize> = (0..n).collect();
        lab.start_only(&all, true)?;
        let (mut host, _, _) = wait_agreed(&lab, &all, lab.deadline(120))?;
        for round in 0..args.rounds {
            let rest: Vec<usize> = all.iter().copied().filter(|&i| i != host).collect();
            let before = (
                sum_stat(&lab, &rest, |s| s.tracker_election_msgs)?,
                sum_stat(&lab, &rest, |s| s.tracker_roster_msgs)?,
            );
            let old = peer(&lab, host)?;
            let killed = Instant::now();
            lab.kill(host)?;
            wait_followed_other(&lab, &rest, &old, lab.deadline(60))?;
            let polled = killed.elapsed();
            let (next, _, at) = wait_agreed(&lab, &rest, lab.deadline(60))?;
            let followed =
                adopted_at(&lab, &rest, &peer(&lab, next)?, killed).map_or(polled, |t| t - killed);
            let after = (
                sum_stat(&lab, &rest, |s| s.tracker_election_msgs)?,
                sum_stat(&lab, &rest, |s| s.tracker_roster_msgs)?,
            );
            let f = Failover {
                n,
                followed_ms: followed.as_secs_f64() * 1000.0,
                settled_ms: (at - killed).as_secs_f64() * 1000.0,
                election_msgs: after.0 - before.0,
                roster_msgs: after.1 - before.1,
            };
            lab.log(format!("N = {n}, round {round}: {f:?}"));
            notes.push(format!(
                "N = {n}: kill -9 n{host}: all follow n{next} after {:.0} ms, registered and who complete after {:.0} ms; {} election messages, {} registrations/rosters",
                f.followed_ms, f.settled_ms, f.election_msgs, f.roster_msgs
            ));
            out.push(f);
            // Back for the next round: it takes over again.
            lab.restart(host)?;
            let (h, _, _) = wait_agreed(&lab, &all, lab.deadline(60))?;
            host = h;
        }
        lab.quit_all();
        let r = lab.finish()?;
        total.seconds += r.seconds;
        total.nodes = total.nodes.max(n);
    }
    total.name = "tracker-failover".into();
    total.notes = notes;
    Ok((out, total))
}
