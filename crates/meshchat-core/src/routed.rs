//! A signed envelope routed hop by hop to one node, best effort: how the tracker's unicast
//! messages (registrations, roster answers, election replies) cross a mesh where the tracker is
//! not a neighbour. Frame tag 5 on `/meshchat/route/1`, beside the routing table's (1, 2) and
//! the DMs' (3, 4):
//!
//! ```text
//! 5 | hop_limit u16 | to [ID] | env_len u32 | envelope [env_len]      env_len in 1..=MAX_ENVELOPE_LEN
//! ```
//!
//! Unlike a DM it is not sealed (what it carries is for the tracker and is no secret: who is
//! online), not held for an absent recipient, and not acknowledged: the protocols on top repeat
//! what matters (a node registers again a minute later). Relays forward it along their routing
//! table's next hop with the hop limit less one and drop it when the limit is spent or there is
//! no route; the recipient checks the envelope like any other (size, signature) and hands it to
//! the protocol its kind names. The sender is the envelope's author, so a node cannot speak for
//! another.

use crate::envelope::MAX_ENVELOPE_LEN;
use crate::routing::wire::PeerBytes;

pub const TAG_ROUTED: u8 = 5;

/// A routed envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed<P> {
    pub hop_limit: u16,
    pub to: P,
    /// The signed envelope's bytes (checked by the recipient, not by relays).
    pub envelope: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("routed frame of {0} bytes is over its limit")]
    TooLarge(usize),
    #[error("malformed routed frame: {0}")]
    Malformed(&'static str),
}

impl<P: PeerBytes> Routed<P> {
    /// The largest frame for ids of type `P`.
    pub fn max_len() -> usize {
        1 + 2 + P::LEN + 4 + MAX_ENVELOPE_LEN
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 2 + P::LEN + 4 + self.envelope.len());
        out.push(TAG_ROUTED);
        out.extend_from_slice(&self.hop_limit.to_be_bytes());
        self.to.put(&mut out);
        out.extend_from_slice(&(self.envelope.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.envelope);
        out
    }

    /// Decodes a frame; anything malformed or oversized is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > Self::max_len() {
            return Err(Error::TooLarge(bytes.len()));
        }
        let head = 1 + 2 + P::LEN + 4;
        if bytes.len() < head {
            return Err(Error::Malformed("truncated"));
        }
        if bytes[0] != TAG_ROUTED {
            return Err(Error::Malformed("tag"));
        }
        let hop_limit = u16::from_be_bytes([bytes[1], bytes[2]]);
        let to = P::get(&bytes[3..3 + P::LEN]).ok_or(Error::Malformed("routing id"))?;
        let len_at = 3 + P::LEN;
        let len =
            u32::from_be_bytes(bytes[len_at..len_at + 4].try_into().expect("four bytes")) as usize;
        if len == 0 || len > MAX_ENVELOPE_LEN || bytes.len() != head + len {
            return Err(Error::Malformed("envelope length"));
        }
        Ok(Self {
            hop_limit,
            to,
            envelope: bytes[head..].to_vec(),
        })
    }
}

/// A frame of `/meshchat/route/1`, by its tag: the routing table's, a DM's or receipt's, or a
/// routed envelope. The node hands each to its state machine without knowing the tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteFrame<P> {
    Routing(crate::routing::Message<P>),
    Dm(crate::dm::Frame<P>),
    Routed(Routed<P>),
}

impl<P: PeerBytes + Copy + Eq> RouteFrame<P> {
    /// Decodes a frame by its tag; an unknown tag or a malformed frame is an error (a strike:
    /// no honest node sends one), never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        match bytes.first() {
            Some(1 | 2) => crate::routing::Message::decode(bytes)
                .map(Self::Routing)
                .map_err(|e| e.to_string()),
            Some(3 | 4) => crate::dm::Frame::decode(bytes)
                .map(Self::Dm)
                .map_err(|e| e.to_string()),
            Some(&TAG_ROUTED) => Routed::decode(bytes)
                .map(Self::Routed)
                .map_err(|e| e.to_string()),
            _ => Err("unknown tag".to_owned()),
        }
    }
}

/// What a node does with a routed envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<P> {
    /// It is for us: check the envelope.
    Deliver(Vec<u8>),
    /// Send this frame to that neighbour.
    Forward(P, Vec<u8>),
    /// Dropped: hop limit spent, or no route.
    Drop,
}

impl<P: PeerBytes + Copy + Eq> Routed<P> {
    /// The forwarding rule: ours is delivered; another's goes to `next_hop`'s answer with the
    /// hop limit less one, or is dropped when the limit is spent or there is no route.
    pub fn step(self, me: &P, next_hop: impl FnOnce(&P) -> Option<P>) -> Step<P> {
        if self.to == *me {
            return Step::Deliver(self.envelope);
        }
        if self.hop_limit == 0 {
            return Step::Drop;
        }
        match next_hop(&self.to) {
            Some(via) => Step::Forward(
                via,
                Routed {
                    hop_limit: self.hop_limit - 1,
                    ..self
                }
                .encode(),
            ),
            None => Step::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes_and_round_trip() {
        let r = Routed {
            hop_limit: 0x0102,
            to: 0x0a0b0c0du32,
            envelope: vec![9, 8, 7],
        };
        let bytes = r.encode();
        assert_eq!(
            bytes,
            [5, 1, 2, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 3, 9, 8, 7]
        );
        assert_eq!(Routed::<u32>::decode(&bytes).unwrap(), r);
        assert!(Routed::<u32>::decode(&bytes[..13]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Routed::<u32>::decode(&longer).is_err());
        let mut empty = bytes[..7].to_vec();
        empty.extend_from_slice(&[0, 0, 0, 0]);
        assert!(Routed::<u32>::decode(&empty).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Routed::<[u8; 32]>::decode(&bytes);
            let mut tagged = bytes.clone();
            if !tagged.is_empty() {
                tagged[0] = TAG_ROUTED;
            }
            let _ = Routed::<u32>::decode(&tagged);
        }
    }

    #[test]
    fn frames_are_told_apart_by_tag_and_forwarded_by_the_rule() {
        let r = Routed {
            hop_limit: 2,
            to: [7u8; 32],
            envelope: vec![1, 2, 3],
        };
        let frame = r.encode();
        assert_eq!(
            RouteFrame::<[u8; 32]>::decode(&frame),
            Ok(RouteFrame::Routed(r.clone()))
        );
        assert!(RouteFrame::<[u8; 32]>::decode(&[9, 0]).is_err());
        assert!(RouteFrame::<[u8; 32]>::decode(&[]).is_err());
        let me = [7u8; 32];
        assert_eq!(r.clone().step(&me, |_| None), Step::Deliver(vec![1, 2, 3]));
        let other = [1u8; 32];
        let Step::Forward(via, bytes) = r.clone().step(&other, |_| Some([2u8; 32])) else {
            panic!("forwarded");
        };
        assert_eq!(via, [2u8; 32]);
        assert_eq!(Routed::<[u8; 32]>::decode(&bytes).unwrap().hop_limit, 1);
        assert_eq!(r.clone().step(&other, |_| None), Step::Drop);
        let spent = Routed { hop_limit: 0, ..r };
        assert_eq!(spent.step(&other, |_| Some([2u8; 32])), Step::Drop);
    }
}
