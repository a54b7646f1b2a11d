//! meshchat-lab: a network lab for meshchat.
//!
//! It builds emulated networks out of Linux network namespaces (one per host, veth pairs for
//! links, bridges for LAN segments), runs one real `meshchat --json` process per host, drives the
//! nodes through their JSON stdin/stdout interface, injects faults (link down/up, partitions,
//! kill -9 and restart, graceful stop, bandwidth limits, packet loss) and checks outcomes
//! (every message shown exactly once everywhere, stored histories equal, no crash).
//!
//! - [`topology`]: which hosts share a link (line, ring, star, grid, random, edge list, LAN) and
//!   which hosts are NAT routers;
//! - [`net`]: namespaces, links, addresses and network faults;
//! - [`node`]: node processes and the event state they feed;
//! - [`lab`]: the scenario API ([`Lab`], [`NodeRef`]) and the checks;
//! - [`scenarios`]: the named scenarios (`meshchat-lab run NAME`);
//! - [`bench`]: latency / throughput / CPU / RSS measurements;
//! - [`cleanup`]: unique names and removal of everything on drop, signal or `cleanup`.
//!
//! The nodes speak the typed JSON contract of [`meshchat_api`] (re-exported as [`api`]).
//!
//! Everything needs root; see `docs/LAB.md`.

pub mod bench;
pub mod cleanup;
pub mod lab;
pub mod net;
pub mod node;
pub mod scenarios;
pub mod sys;
pub mod topology;

pub use meshchat_api as api;

pub use lab::{default_bin, Lab, LabOptions, NodeRef, Report, LOBBY};
pub use net::Net;
pub use topology::{Nat, Router, Topology};
