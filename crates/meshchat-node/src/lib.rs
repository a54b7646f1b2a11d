//! # meshchat-node
//!
//! A running meshchat node: the libp2p swarm, the SQLite store and the protocol state, all owned
//! by one actor task. Front-ends (terminal UI, line mode, JSON mode, tests) talk to it through a
//! cloneable [`Handle`] and receive [`Event`]s from a bounded channel.
//!
//! ```no_run
//! # async fn demo() -> Result<(), meshchat_node::Error> {
//! let config = meshchat_node::Config::loopback("/tmp/meshchat-demo");
//! let (handle, mut events) = meshchat_node::spawn(config).await?;
//! handle.send("lobby", "hello").await?;
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```

pub mod api;
pub mod behaviour;
pub mod config;
pub mod keyfile;
pub mod node;
pub mod store;

/// When a periodic round first runs: at a random point between half and one and a half of its
/// interval, then every interval. Nodes started together (a site's power coming back, the lab)
/// would otherwise run their rounds in the same milliseconds for as long as they run (issue 25,
/// "Bursts in step" in ARCHITECTURE).
pub(crate) fn first_round(every: std::time::Duration) -> std::time::Duration {
    every.mul_f64(0.5 + rand::random::<f64>())
}

pub use config::Config;
pub use libp2p::{Multiaddr, PeerId};
pub use meshchat_core::reach::Reach;
pub use node::{
    key_of_peer_id, peer_id_of, spawn, Conversation, DmSent, DmState, DmView, Error, Event, Handle,
    MemberView, MessageView, NatStats, NodeInfo, OnlinePeer, PeerInfo, PrivateKind, ProfileView,
    ReachView, RoomView, RouteView, Sent, Stats, TrackerView,
};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_first_round_falls_between_half_and_one_and_a_half_intervals() {
        let every = Duration::from_secs(10);
        let draws: Vec<Duration> = (0..1000).map(|_| super::first_round(every)).collect();
        assert!(draws.iter().all(|d| *d >= every / 2 && *d < every * 3 / 2));
        // Spread, not one phase for all.
        assert!(draws.iter().any(|d| *d < every) && draws.iter().any(|d| *d > every));
    }
}
