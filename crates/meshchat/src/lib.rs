//! # meshchat (the interfaces)
//!
//! The parts of the `meshchat` binary that are worth reusing and measuring on their own: the
//! full-screen terminal interface ([`tui`]), the slash commands it shares with line mode
//! ([`commands`]), the renderings shared by the line and JSON modes ([`output`]) and the node's
//! views as the typed JSON API ([`api`]). The binary (`src/main.rs`) adds the command line, line
//! mode and JSON mode.

pub mod api;
pub mod commands;
pub mod output;
pub mod tui;
