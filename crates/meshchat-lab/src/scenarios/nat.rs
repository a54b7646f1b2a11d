//! Across NATs (issue 23) between real processes, behind the lab's routers
//! ([`crate::topology::Nat`]): n0 is a public node on the internet segment; hosts behind
//! routers know only n0's address (`--peer`). TCP and QUIC.
//!
//! - `nat-punch`: A and B behind two port-preserving masquerading routers. A room message and
//!   a DM pass both ways at once (through n0); n0 finds it is public, A and B that they are
//!   private, then relayed (reservations at n0); they find each other (tracker roster, DHT),
//!   connect through n0's relay, and hole punching (DCUtR) gives them a direct connection,
//!   after which the relayed one is closed; chat passes again.
//! - `nat-symmetric`: the same behind two NATs that map every connection to a new random port:
//!   hole punching fails, both stay relayed and say so, and the relayed connection carries
//!   their chat.
//! - `nat-upnp`: a host behind a router that offers UPnP IGD (miniupnpd): it maps its port,
//!   says it is `mapped` with the router's address, and n0 dials it there directly.
//!
//! Each reports the time from start to each reachability (BENCHMARKS §12).

use super::peer;
use super::private::wait;
use crate::lab::{Lab, LabOptions, Report, LOBBY};
use crate::topology::{Nat, Topology};
use anyhow::{bail, Result};
use meshchat_api::Stats;
use std::time::{Duration, Instant};

const PUBLIC: usize = 0;

/// QUIC too (its hole punching shares the UDP socket), and debug logs of the NAT handler.
fn nat_opts(opts: &LabOptions) -> LabOptions {
    let mut o = opts.clone();
    o.quic = true;
    if !o.env.iter().any(|(k, _)| k == "RUST_LOG") {
        o.env.push((
            "RUST_LOG".into(),
            "warn,meshchat_node=debug,libp2p_dcutr=debug,libp2p_relay=debug,libp2p_autonat=debug"
                .into(),
        ));
    }
    o
}

/// Waits until host `i` says `status`; returns how long after `t0` it said so.
fn wait_reach(lab: &Lab, i: usize, status: &str, t0: Instant, secs: u64) -> Result<Duration> {
    let mut at = None;
    wait(&format!("n{i} is {status}"), lab.deadline(secs), || {
        at = lab
            .node(i)
            .reach()
            .filter(|(r, _)| r.status == status)
            .map(|(_, at)| at);
        Ok(at.is_some())
    })?;
    Ok(at.map_or(Duration::ZERO, |at| at.saturating_duration_since(t0)))
}

/// How host `i` is connected to host `j` now: `None` not at all, `Some(true)` only directly,
/// `Some(false)` through a relay (too).
fn link(lab: &Lab, i: usize, j: usize) -> Result<Option<bool>> {
    let target = peer(lab, j)?;
    Ok(lab
        .node(i)
        .peers()?
        .into_iter()
        .find(|p| p.peer_id == target && !p.addrs.is_empty())
        .map(|p| p.addrs.iter().all(|a| !a.contains("/p2p-circuit"))))
}

/// A room message each way and a DM each way between `a` and `b`, each waited for.
fn chat(lab: &Lab, a: usize, b: usize, tag: &str) -> Result<()> {
    for (from, to) in [(a, b), (b, a)] {
        let text = format!("{tag}: room message from n{from}");
        lab.node(from).send(LOBBY, &text)?;
        wait(&format!("n{to} shows {text:?}"), lab.deadline(30), || {
            Ok(lab
                .node(to)
                .history(LOBBY, 200)?
                .iter()
                .any(|m| m.text == text))
        })?;
        let text = format!("{tag}: DM from n{from}");
        let (from_id, to_id) = (peer(lab, from)?, peer(lab, to)?);
        lab.node(from).dm(&to_id, &text)?;
        wait(&format!("n{to} shows {text:?}"), lab.deadline(30), || {
            Ok(lab
                .node(to)
                .dm_history(&from_id, 200)?
                .iter()
                .any(|m| m.text == text))
        })?;
    }
    Ok(())
}

/// Starts n0, then the NATed hosts with n0's address; returns when they are connected to it.
fn start(lab: &mut Lab, nated: &[usize]) -> Result<Instant> {
    let t0 = Instant::now();
    lab.start_only(&[PUBLIC], false)?;
    for &i in nated {
        let Some(addr) = lab.dial_addr(i, PUBLIC) else {
            bail!("n{i} has no route to n0");
        };
        lab.add_args(i, &["--peer".into(), addr]);
    }
    lab.start_only(nated, false)?;
    for &i in nated {
        wait(&format!("n{i} connected to n0"), lab.deadline(30), || {
            Ok(link(lab, i, PUBLIC)? == Some(true))
        })?;
    }
    Ok(t0)
}

/// Room messages from `from` to `to`, one at a time: each message's time from send to shown,
/// sorted.
fn latencies(lab: &Lab, from: usize, to: usize, n: usize) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let id = lab
            .node(from)
            .send(LOBBY, &format!("timed {k} from n{from}"))?;
        lab.wait_nodes_have(&[to], std::slice::from_ref(&id), lab.deadline(20))?;
        out.extend(lab.delivery_time(&id, to));
    }
    out.sort();
    Ok(out)
}

/// `median 1.2 ms, max 3.4 ms (20 messages)`.
fn describe(l: &[Duration]) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    match (l.get(l.len() / 2), l.last()) {
        (Some(m), Some(x)) => format!(
            "median {:.1} ms, max {:.1} ms ({} messages)",
            ms(*m),
            ms(*x),
            l.len()
        ),
        _ => "no messages".into(),
    }
}

fn nat_stats(lab: &Lab, i: usize) -> Result<meshchat_api::NatStats> {
    lab.node(i).stats().map(|s: Stats| s.nat)
}

pub fn nat_punch(opts: &LabOptions) -> Result<Report> {
    let (a, b) = (3, 4);
    let mut lab = Lab::new(
        Topology::nat(&[Nat::Masquerade, Nat::Masquerade]),
        nat_opts(opts),
    )?;
    let t0 = start(&mut lab, &[a, b])?;
    chat(&lab, a, b, "before")?;
    lab.log("before: room messages and DMs both ways (through n0)");
    let public = wait_reach(&lab, PUBLIC, "public", t0, 60)?;
    let relayed_a = wait_reach(&lab, a, "relayed", t0, 60)?;
    let relayed_b = wait_reach(&lab, b, "relayed", t0, 60)?;
    for i in [a, b] {
        let (r, _) = lab.node(i).reach().expect("said relayed");
        let wan = lab.external_addr(PUBLIC).expect("n0 is on the internet");
        if r.addrs.is_empty() || !r.addrs.iter().all(|x| x.contains("/p2p-circuit")) {
            bail!(
                "n{i} advertises {:?}: only relayed addresses expected",
                r.addrs
            );
        }
        if !r
            .addrs
            .iter()
            .all(|x| x.starts_with(&format!("/ip4/{wan}/")))
        {
            bail!("n{i} advertises {:?}: not n0's address", r.addrs);
        }
    }
    lab.log(format!(
        "n0 public after {public:?}; A relayed after {relayed_a:?}, B after {relayed_b:?}"
    ));
    let mut direct_at = None;
    wait("A and B directly connected", lab.deadline(90), || {
        let direct = link(&lab, a, b)? == Some(true) && link(&lab, b, a)? == Some(true);
        if direct {
            direct_at = Some(t0.elapsed());
        }
        Ok(direct)
    })?;
    let (sa, sb, sp) = (
        nat_stats(&lab, a)?,
        nat_stats(&lab, b)?,
        nat_stats(&lab, PUBLIC)?,
    );
    if sa.hole_punches + sb.hole_punches == 0 {
        bail!("direct, but not by hole punching: A {sa:?}, B {sb:?}");
    }
    if sp.circuits_served == 0 || sp.reservations_served < 2 {
        bail!("n0 relayed nothing: {sp:?}");
    }
    if sa.relayed_closed + sb.relayed_closed == 0 {
        bail!("the relayed connection was not closed: A {sa:?}, B {sb:?}");
    }
    lab.log(format!(
        "direct after {:?}: hole punches A {} B {}, relayed connections closed A {} B {}; n0 served {} reservations, {} circuits",
        direct_at.unwrap_or_default(),
        sa.hole_punches,
        sb.hole_punches,
        sa.relayed_closed,
        sb.relayed_closed,
        sp.reservations_served,
        sp.circuits_served
    ));
    chat(&lab, a, b, "after")?;
    let direct = latencies(&lab, a, b, 20)?;
    lab.notes.push(format!(
        "public {} ms; relayed A {} ms B {} ms; direct {} ms; chat before and after; A to B direct: {}",
        public.as_millis(),
        relayed_a.as_millis(),
        relayed_b.as_millis(),
        direct_at.unwrap_or_default().as_millis(),
        describe(&direct)
    ));
    lab.finish()
}

pub fn nat_symmetric(opts: &LabOptions) -> Result<Report> {
    let (a, b) = (3, 4);
    let mut lab = Lab::new(
        Topology::nat(&[Nat::Symmetric, Nat::Symmetric]),
        nat_opts(opts),
    )?;
    let t0 = start(&mut lab, &[a, b])?;
    let relayed_a = wait_reach(&lab, a, "relayed", t0, 60)?;
    let relayed_b = wait_reach(&lab, b, "relayed", t0, 60)?;
    wait("A and B connected through n0", lab.deadline(60), || {
        Ok(link(&lab, a, b)?.is_some())
    })?;
    wait("a hole punch tried and failed", lab.deadline(90), || {
        let (sa, sb) = (nat_stats(&lab, a)?, nat_stats(&lab, b)?);
        Ok(sa.hole_punch_failures + sb.hole_punch_failures > 0)
    })?;
    let (sa, sb) = (nat_stats(&lab, a)?, nat_stats(&lab, b)?);
    if sa.hole_punches + sb.hole_punches > 0 {
        bail!("a hole punched through symmetric NATs: A {sa:?}, B {sb:?}");
    }
    let links = (link(&lab, a, b)?, link(&lab, b, a)?);
    if links != (Some(false), Some(false)) {
        let peers = lab.node(a).peers()?;
        bail!("A and B should be linked through the relay only: {links:?}; A's peers {peers:?}");
    }
    for i in [a, b] {
        let (r, _) = lab.node(i).reach().expect("said relayed");
        if r.status != "relayed" {
            bail!("n{i} says {}", r.status);
        }
    }
    chat(&lab, a, b, "relayed")?;
    let relayed = latencies(&lab, a, b, 20)?;
    if link(&lab, a, b)? != Some(false) {
        bail!("the relayed link went away during the chat");
    }
    lab.notes.push(format!(
        "relayed A {} ms B {} ms; hole punching failed (A {} B {} attempts failed); chat over the relay; A to B relayed: {}",
        relayed_a.as_millis(),
        relayed_b.as_millis(),
        sa.hole_punch_failures,
        sb.hole_punch_failures,
        describe(&relayed)
    ));
    lab.finish()
}

pub fn nat_upnp(opts: &LabOptions) -> Result<Report> {
    let h = 2;
    let mut lab = Lab::new(Topology::nat(&[Nat::Upnp]), nat_opts(opts))?;
    lab.net.wait_upnp(1, lab.deadline(20))?;
    let t0 = Instant::now();
    lab.start_only(&[PUBLIC, h], false)?;
    let wan = lab.external_addr(h).expect("behind a router");
    let tcp_at_router = format!("/ip4/{wan}/tcp/");
    // Mapped once the first mapping stands; TCP's and QUIC's come one after the other.
    let mut mapped = Duration::ZERO;
    wait("n2 mapped, with a TCP address", lab.deadline(60), || {
        Ok(match lab.node(h).reach() {
            Some((r, at)) if r.status == "mapped" => {
                mapped = at.saturating_duration_since(t0);
                r.addrs.iter().any(|x| x.starts_with(&tcp_at_router))
            }
            _ => false,
        })
    })?;
    let (r, _) = lab.node(h).reach().expect("said mapped");
    let Some(addr) = r
        .addrs
        .iter()
        .find(|x| x.starts_with(&tcp_at_router))
        .cloned()
    else {
        bail!(
            "n{h} advertises {:?}: no TCP address at its router",
            r.addrs
        );
    };
    if r.addrs.iter().any(|x| x.contains("/ip4/10.")) {
        bail!("n{h} advertises a private address: {:?}", r.addrs);
    }
    let mappings = lab.net.upnp_mappings(1)?;
    lab.log(format!(
        "mapped after {mapped:?}: {addr}; router: {mappings:?}"
    ));
    // A host outside dials it there: nothing else connects them.
    let target = format!("{addr}/p2p/{}", peer(&lab, h)?);
    lab.node(PUBLIC).connect(&target)?;
    wait("n0 connected to the NATed host", lab.deadline(30), || {
        Ok(link(&lab, PUBLIC, h)? == Some(true))
    })?;
    chat(&lab, PUBLIC, h, "mapped")?;
    lab.notes.push(format!(
        "mapped after {} ms at {addr}; n0 dialed it there and chatted",
        mapped.as_millis()
    ));
    lab.finish()
}
