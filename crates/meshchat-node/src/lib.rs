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

pub use config::Config;
pub use libp2p::{Multiaddr, PeerId};
pub use meshchat_core::reach::Reach;
pub use node::{
    key_of_peer_id, peer_id_of, spawn, Conversation, DmSent, DmState, DmView, Error, Event, Handle,
    MemberView, MessageView, NatStats, NodeInfo, OnlinePeer, PeerInfo, PrivateKind, ProfileView,
    ReachView, RoomView, RouteView, Sent, Stats, TrackerView,
};
