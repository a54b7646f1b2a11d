//! The request/response messages of `/meshchat/sync/1`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshchat_core::sync::wire::{Request, Response};

fuzz_target!(|data: &[u8]| {
    let _ = Request::decode(data);
    let _ = Response::decode(data);
});
