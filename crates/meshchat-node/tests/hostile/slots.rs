//! Issue 24, finding 5: sockets that open a connection and never say a word cannot hold the
//! node's inbound handshake slots against an honest newcomer (`behaviour::handshakes`).
//!
//! The node under attack gets a handshake timeout far beyond [`DEADLINE`], so no silent socket
//! times out while the test runs: the newcomer gets in only if the slots bound what silent
//! sockets can hold (per source address) or are taken back from them (the oldest of the largest
//! holder is aborted when every slot is full).

use std::net::Ipv4Addr;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use meshchat_node::Config;
use tokio::net::TcpStream;

use crate::support::*;

/// B's handshake timeout in these tests: no silent socket may free its slot by timing out.
const LONG_HANDSHAKE: Duration = Duration::from_secs(600);

/// A node whose handshakes never time out within the test.
async fn patient_node() -> TestNode {
    let patient = |c: &mut Config| c.handshake_timeout = LONG_HANDSHAKE;
    TestNode::start_with(tempfile::tempdir().unwrap(), Some("b"), &[], patient).await
}

/// `count` TCP connections to `target` from `source` that never send a byte.
async fn silent_sockets(target: &TestNode, source: Ipv4Addr, count: usize) -> Vec<TcpStream> {
    let port = target
        .addr
        .iter()
        .find_map(|p| match p {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .expect("the node listens on TCP");
    let mut socks = Vec::with_capacity(count);
    for _ in 0..count {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind((source, 0).into()).unwrap();
        socks.push(sock.connect(([127, 0, 0, 1], port).into()).await.unwrap());
    }
    socks
}

/// An honest node connects to `b` and becomes its chat peer within [`DEADLINE`].
async fn newcomer_gets_in(b: &TestNode) {
    let mut d = TestNode::start("d", &[]).await;
    tokio::time::timeout(DEADLINE, d.handle.connect(&b.addr.to_string()))
        .await
        .expect("the dial ends within the deadline")
        .expect("the newcomer gets in");
    d.wait_peers(1).await;
}

/// 32 silent sockets, 8 from each of four addresses: before, each address could hold 8
/// handshakes and the swarm 32 in all, so they took every slot until they timed out. Now each
/// address holds at most `PER_ADDRESS` and the rest are refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_from_four_addresses_do_not_lock_a_newcomer_out() {
    let b = patient_node().await;
    let mut silent = Vec::new();
    for last in 2..=5 {
        silent.extend(silent_sockets(&b, Ipv4Addr::new(127, 0, 0, last), 8).await);
    }
    newcomer_gets_in(&b).await;
    b.wait_stats("4 refused per address", |s| s.handshakes.refused >= 16)
        .await;
    drop(silent);
}

/// 32 silent sockets, 4 from each of eight addresses, fill every slot without one refusal: the
/// newcomer gets in because the oldest handshake of the largest holder is aborted to make room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_takes_a_slot_back_when_silent_sockets_hold_them_all() {
    let b = patient_node().await;
    let mut silent = Vec::new();
    for last in 2..=9 {
        silent.extend(silent_sockets(&b, Ipv4Addr::new(127, 0, 0, last), 4).await);
    }
    newcomer_gets_in(&b).await;
    let s = b
        .wait_stats("a handshake evicted", |s| s.handshakes.evicted >= 1)
        .await;
    assert_eq!(s.handshakes.refused, 0, "{s:?}");
    drop(silent);
}
