//! # meshchat (the interfaces)
//!
//! The parts of the `meshchat` binary that are worth reusing and measuring on their own: the
//! full-screen terminal interface ([`tui`]) and the renderings shared by the line and JSON modes
//! ([`output`]). The binary (`src/main.rs`) adds the command line, line mode and JSON mode.

pub mod output;
pub mod tui;
