//! # meshchat (the interfaces)
//!
//! The parts of the `meshchat` binary that are worth reusing and measuring on their own: the
//! full-screen terminal interface ([`tui`]), the slash commands it shares with line mode
//! ([`commands`]) and the renderings shared by the line and JSON modes ([`output`]). The binary
//! (`src/main.rs`) adds the command line, line mode and JSON mode. The typed JSON API lives in
//! `meshchat-api`; the node carries its commands out (`meshchat_node::Handle::call`) and
//! converts its views (`meshchat_node::api`).

pub mod commands;
pub mod files;
pub mod output;
pub mod tui;
