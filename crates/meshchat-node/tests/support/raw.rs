//! The raw libp2p peers of the hostile tests: a swarm with no meshchat node in it, which writes
//! the node's frames by hand, as the independent client of issue 9 did.

use std::time::Duration;

use futures::{AsyncReadExt, FutureExt};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{noise, ping, tcp, yamux, PeerId, StreamProtocol, Swarm};
use tokio::sync::watch;

use super::DEADLINE;

/// Streams, and ping: a ping round trip tells when the node has handled what we sent before it.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub stream: libp2p_stream::Behaviour,
    pub ping: ping::Behaviour,
}

/// How often the raw peer pings: the wait in [`open_accepted`] is two of these.
const PING_EVERY: Duration = Duration::from_millis(50);

/// A raw peer's swarm over TCP, Noise and Yamux, as a node's.
pub fn swarm(identity: libp2p::identity::Keypair) -> Swarm<Behaviour> {
    libp2p::SwarmBuilder::with_existing_identity(identity)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| Behaviour {
            stream: libp2p_stream::Behaviour::new(),
            ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_EVERY)),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Counts a successful ping in `pongs` (the swarm's driver calls this for each of its events).
pub fn count_pong(event: &BehaviourEvent, pongs: &watch::Sender<u64>) {
    if let BehaviourEvent::Ping(ping::Event { result: Ok(_), .. }) = event {
        pongs.send_modify(|n| *n += 1);
    }
}

/// Opens a `protocol` stream to `peer` that the node has taken.
///
/// libp2p-stream hands a node its incoming streams over a channel that holds one: a stream that
/// arrives while the node's accept task has not yet taken the one before is dropped, i.e. reset
/// (at the node's first moments, its peers' streams arrive together). A node's own writer sees
/// the reset and opens a new stream; a raw peer that wrote frames into the dropped one would
/// lose them and make its test flaky. So the stream is checked after two ping round trips that
/// started after it was opened (the node handles a connection's streams in the order they
/// arrive, and a reset is sent before the later pong), and opened again if it was reset.
pub async fn open_accepted(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
    protocol: StreamProtocol,
    pongs: &mut watch::Receiver<u64>,
) -> libp2p::Stream {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let mut stream =
            tokio::time::timeout_at(deadline, control.open_stream(peer, protocol.clone()))
                .await
                .expect("the raw peer's stream opens in time")
                .expect("the node takes the raw peer's stream");
        let start = *pongs.borrow_and_update();
        while *pongs.borrow_and_update() < start + 2 {
            tokio::time::timeout_at(deadline, pongs.changed())
                .await
                .expect("the node answers pings in time")
                .expect("the swarm's driver runs");
        }
        // A live stream has nothing to read (the node never writes on a stream we opened); a
        // reset one reads as its end at once.
        let mut byte = [0u8; 1];
        match stream.read(&mut byte).now_or_never() {
            None => return stream,
            Some(Ok(0) | Err(_)) => {
                eprintln!("raw peer: the node dropped our new stream; opening another");
            }
            Some(Ok(_)) => panic!("the node wrote on the raw peer's own stream"),
        }
    }
}
