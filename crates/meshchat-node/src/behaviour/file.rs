//! `/meshchat/file/1`: file pieces and the requests for them, routed hop by hop (the protocol
//! is [`meshchat_core::transfer`]). Its frames travel on the same kind of long-lived,
//! length-prefixed streams as the broadcast ([`super::broadcast::Links`]), with queues sized
//! for pieces rather than messages: what a relay holds of a file is what sits in these queues,
//! whatever the file's size.

use libp2p::StreamProtocol;
use meshchat_core::transfer::wire::Frame;

use super::broadcast::Queues;

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/meshchat/file/1");

/// The largest frame: a piece of the largest chunk, sealed, with its header.
pub fn max_frame() -> usize {
    Frame::<[u8; 32]>::max_len()
}

/// Frames from every neighbour waiting for the actor (up to 64 MiB of pieces), and frames and
/// bytes queued for one neighbour (up to 16 MiB: several downloaders' windows, seconds of a
/// 10 Mbit/s link). A relay's memory for files is at most these, per neighbour.
pub const QUEUES: Queues = Queues {
    inbound: 64,
    send_frames: 128,
    send_bytes: 16 * 1024 * 1024,
};
