//! Across NATs (issue 23), what loopback can show: AutoNAT's verdict and what a node then
//! advertises, the relay service's bounds against a flood of reservations, and a relayed
//! connection that hole punching replaces with a direct one (which closes the relayed one).
//! Real NATs (masquerading routers, a symmetric one, UPnP) are the lab's: `nat-*` scenarios.

use std::time::Duration;

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, relay, tcp, yamux, Multiaddr};
use meshchat_node::{Config, Event, Reach};

use crate::support::*;

/// AutoNAT's first probe soon after start, and again each second while unsure.
fn quick(c: &mut Config) {
    c.nat.boot_delay = Duration::from_millis(200);
    c.nat.retry = Duration::from_secs(1);
}

async fn start(name: &str, peers: &[&TestNode], tweak: impl FnOnce(&mut Config)) -> TestNode {
    TestNode::start_with(tempfile::tempdir().unwrap(), Some(name), peers, |c| {
        quick(c);
        tweak(c);
    })
    .await
}

async fn wait_public(node: &mut TestNode) {
    node.wait_for(|e| matches!(e, Event::Reachability(r) if r.reach == Reach::Public))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_its_peers_can_dial_back_is_public_and_advertises_that_address() {
    let a = start("a", &[], |_| {}).await;
    let mut b = start("b", &[&a], |_| {}).await;
    let listen_tcp: Multiaddr = b
        .addr
        .iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect();
    // The verdict, then the address it confirmed (two events, in that order).
    b.wait_for(|e| {
        matches!(e, Event::Reachability(r)
            if r.reach == Reach::Public && r.addrs.contains(&listen_tcp))
    })
    .await;
    let info = b.handle.info().await.unwrap();
    assert_eq!(info.reach.reach, Reach::Public);
    assert!(
        info.reach.addrs.contains(&listen_tcp),
        "advertises the address a dialed back: {:?}",
        info.reach.addrs
    );
    assert!(info.reach.relays.is_empty(), "no reservations when public");
}

/// A raw peer with only a relay client: what a flood of reservations is made of.
#[derive(libp2p::swarm::NetworkBehaviour)]
struct RelayClient {
    relay: relay::client::Behaviour,
}

/// Asks `relay` for a reservation from a fresh identity: `true` when granted.
async fn reserve(relay: &Multiaddr) -> bool {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_, relay| RelayClient { relay })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let id = swarm
        .listen_on(relay.clone().with(Protocol::P2pCircuit))
        .unwrap();
    let outcome = tokio::time::timeout(DEADLINE, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { listener_id, .. } if listener_id == id => break true,
                SwarmEvent::ListenerClosed { listener_id, .. } if listener_id == id => break false,
                _ => {}
            }
        }
    })
    .await
    .expect("the relay answers the reservation");
    // Held while the caller asks for more: the swarm keeps the reservation alive.
    std::mem::forget(swarm);
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_refuses_reservations_beyond_its_bounds() {
    let h = start("h", &[], |_| {}).await;
    let mut r = start("r", &[&h], |c| c.nat.relay.max_reservations = 3).await;
    wait_public(&mut r).await;
    let mut granted = 0;
    for _ in 0..6 {
        granted += usize::from(reserve(&r.addr).await);
    }
    assert_eq!(granted, 3, "the relay's total bound");
    let stats = r
        .wait_stats("the relay counted its answers", |s| {
            s.nat.reservations_served + s.nat.reservations_refused == 6
        })
        .await;
    assert_eq!(stats.nat.reservations_served, 3);
    assert_eq!(stats.nat.reservations_refused, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_connection_is_replaced_by_a_direct_one() {
    let h = start("h", &[], |_| {}).await;
    let mut r = start("r", &[&h], |_| {}).await;
    wait_public(&mut r).await;
    // `b` also listens through `r` (as a node behind a NAT does once it has a reservation).
    let circuit = r.addr.clone().with(Protocol::P2pCircuit);
    let mut b = start("b", &[&r], |c| c.listen.push(circuit.clone())).await;
    let mut a = start("a", &[], |_| {}).await;
    let relayed = circuit.with(Protocol::P2p(b.peer_id)).to_string();
    assert_eq!(a.handle.connect(&relayed).await.unwrap(), b.peer_id);
    // Hole punching (DCUtR) on loopback always succeeds: the direct connection stands and the
    // relayed one is closed.
    let stats = a
        .wait_stats("the relayed connection replaced", |s| {
            s.nat.relayed_closed >= 1
        })
        .await;
    let b_stats = b.handle.stats().await.unwrap();
    assert!(
        stats.nat.hole_punches + b_stats.nat.hole_punches >= 1,
        "{:?} {:?}",
        stats.nat,
        b_stats.nat
    );
    eventually("only a direct connection from a to b", async || {
        let peers = a.handle.peers().await.unwrap();
        peers.iter().any(|p| {
            p.peer_id == b.peer_id
                && !p.addrs.is_empty()
                && p.addrs
                    .iter()
                    .all(|addr| !addr.iter().any(|x| x == Protocol::P2pCircuit))
        })
    })
    .await;
    // And the chat goes on over it.
    a.wait_peers(1).await;
    b.wait_peers(2).await;
    let id = a.send("lobby", "through the punched hole").await;
    let got = b.collect_messages(1).await;
    assert_eq!(got[0].id, id);
}
