//! `/meshchat/route/1`: DM routing between neighbours (the protocol is
//! [`meshchat_core::routing`] and [`meshchat_core::dm`]). Its frames travel on the same kind of
//! long-lived, length-prefixed streams as the broadcast ([`super::broadcast::Links`]); the first
//! byte of a frame is its tag: 1 routing update, 2 seqno request, 3 DM, 4 receipt, 5 routed
//! envelope ([`meshchat_core::routed`]).

use libp2p::StreamProtocol;
use meshchat_core::dm::Frame;
use meshchat_core::routing::wire;

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/meshchat/route/1");

/// The largest frame: a full routing update, the largest DM or the largest routed envelope.
pub fn max_frame() -> usize {
    wire::max_len::<[u8; 32]>()
        .max(Frame::<[u8; 32]>::max_len())
        .max(meshchat_core::routed::Routed::<[u8; 32]>::max_len())
}
