//! Reconciliation frames as a responder receives them (Open, then Query) and as an initiator
//! receives replies, over a small item set.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use meshchat_core::sync::{ItemSet, Limits, Peers};
use meshchat_core::MessageId;

fuzz_target!(|data: &[u8]| {
    let items = ItemSet::new(
        (0..64u64).map(|i| (i * 1000, MessageId([i as u8; 32]))),
        1000,
    );
    let now = Instant::now();
    let mut peers: Peers<u8> = Peers::new(Limits::default());
    let _ = peers.on_request(1, data, &items, 0, now);
    let _ = peers.on_request(1, data, &items, 0, now);
    if peers.start(2, &items, 0, now).is_ok() {
        let _ = peers.on_reply(2, data, now);
    }
});
