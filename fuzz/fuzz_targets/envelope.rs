//! The check every envelope from the network goes through (size, structure, timestamp,
//! signature, room name, room-text body), and the room-text body decoder on its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshchat_core::{inbound, room::Text, KeyCache};

fuzz_target!(|data: &[u8]| {
    let _ = Text::decode(data);
    let _ = inbound::check(data.to_vec(), 1_700_000_000_000, &mut KeyCache::new(4));
});
