//! The request/response messages of `/meshchat/sync/1`: reconciliation frames one way, the
//! envelopes a node found it lacks the other, and offers that tell a neighbour to fetch. One
//! request and one response per stream; each is read to the end of the stream, at most
//! [`MAX_REQUEST_LEN`] or [`MAX_RESPONSE_LEN`] bytes.
//!
//! ```text
//! request  = 0x01 | sync frame                  (see the module docs of `sync`)
//!          | 0x02 | count u16 | id [32] * count  (Fetch: 1..=MAX_FETCH ids)
//!          | 0x03 | count u16 | id [32] * count  (Offer: 0..=MAX_OFFER ids; 0: reconcile with me)
//! response = 0x01 | sync frame                  (the Reply to an Open or Query)
//!          | 0x02 | flags u8 | count u16 | (len u32 | envelope [len]) * count
//!                   flags bit 0: more of the asked-for envelopes exist than fit
//!          | 0x03 | reason u8                     (refused; 1 busy, 2 no session, 3 version)
//!          | 0x04                                (Noted: the answer to an Offer)
//! ```
//!
//! Integers are big-endian. A node answers a Fetch with the envelopes it holds among the ids, in
//! the order asked, as many as fit in [`MAX_RESPONSE_LEN`]; ids it does not hold are left out.
//! An Offer names envelopes the sender holds and the receiver may lack (it fetches those it
//! does lack); one with no ids asks the receiver to start a round with the sender. Why offers
//! exist and how they are bounded: [`super::Offers`].

use crate::envelope::MessageId;

/// Most ids in one Fetch.
pub const MAX_FETCH: usize = 512;
/// Most ids in one Offer: one Fetch's worth, so an offer is fetched in one request.
pub const MAX_OFFER: usize = MAX_FETCH;
/// Largest request: a sync frame with its tag, or a full Fetch.
pub const MAX_REQUEST_LEN: usize = 1 + super::MAX_FRAME_LEN;
/// Largest response: envelopes up to 1 MiB (at least one largest envelope fits).
pub const MAX_RESPONSE_LEN: usize = 1024 * 1024;

const REQ_SYNC: u8 = 1;
const REQ_FETCH: u8 = 2;
const REQ_OFFER: u8 = 3;
const RES_SYNC: u8 = 1;
const RES_ENVELOPES: u8 = 2;
const RES_REFUSED: u8 = 3;
const RES_NOTED: u8 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// An `Open` or `Query` frame of a session the sender started.
    Sync(Vec<u8>),
    /// Envelopes the sender learnt it lacks.
    Fetch(Vec<MessageId>),
    /// Envelopes the sender holds and the receiver may lack: the receiver fetches those it
    /// lacks. No ids: the sender holds more than an offer lists, and asks the receiver to start
    /// a round with it.
    Offer(Vec<MessageId>),
}

/// Why a request was refused without a strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many sessions, or a session already open with the sender.
    Busy,
    /// A Query for a session that ended or expired.
    NoSession,
    /// A reconciliation protocol version this node does not speak.
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The `Reply` frame.
    Sync(Vec<u8>),
    /// Envelopes asked for; `more`: some held ones did not fit.
    Envelopes {
        envelopes: Vec<Vec<u8>>,
        more: bool,
    },
    Refused(Refusal),
    /// The answer to an Offer taken (whether or not anything is fetched).
    Noted,
}

/// A request or response no honest node sends (a strike).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("sync message of {0} bytes exceeds its limit")]
    TooLarge(usize),
    #[error("sync message truncated or with trailing bytes")]
    Malformed,
    #[error("unknown sync message tag {0}")]
    UnknownTag(u8),
    #[error("fetch of {0} ids (1..={MAX_FETCH} allowed)")]
    BadCount(usize),
    #[error("offer of {0} ids (0..={MAX_OFFER} allowed)")]
    BadOfferCount(usize),
}

impl Request {
    /// Bytes of [`Request::encode`], without encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Request::Sync(frame) => 1 + frame.len(),
            Request::Fetch(ids) | Request::Offer(ids) => 3 + 32 * ids.len(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Sync(frame) => {
                let mut out = Vec::with_capacity(1 + frame.len());
                out.push(REQ_SYNC);
                out.extend_from_slice(frame);
                out
            }
            Request::Fetch(ids) => encode_ids(REQ_FETCH, ids),
            Request::Offer(ids) => encode_ids(REQ_OFFER, ids),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_REQUEST_LEN {
            return Err(Error::TooLarge(bytes.len()));
        }
        let (&tag, rest) = bytes.split_first().ok_or(Error::Malformed)?;
        match tag {
            REQ_SYNC => Ok(Request::Sync(rest.to_vec())),
            REQ_FETCH => Ok(Request::Fetch(decode_ids(
                rest,
                1..=MAX_FETCH,
                Error::BadCount,
            )?)),
            REQ_OFFER => Ok(Request::Offer(decode_ids(
                rest,
                0..=MAX_OFFER,
                Error::BadOfferCount,
            )?)),
            other => Err(Error::UnknownTag(other)),
        }
    }
}

/// `tag | count u16 | id [32] * count`.
fn encode_ids(tag: u8, ids: &[MessageId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + 32 * ids.len());
    out.push(tag);
    out.extend_from_slice(&(ids.len() as u16).to_be_bytes());
    for id in ids {
        out.extend_from_slice(&id.0);
    }
    out
}

/// `count u16 | id [32] * count` with `count` in `counts` (else `bad(count)`) and nothing
/// after the ids.
fn decode_ids(
    rest: &[u8],
    counts: std::ops::RangeInclusive<usize>,
    bad: fn(usize) -> Error,
) -> Result<Vec<MessageId>, Error> {
    let (count, ids) = rest.split_first_chunk::<2>().ok_or(Error::Malformed)?;
    let count = u16::from_be_bytes(*count) as usize;
    if !counts.contains(&count) {
        return Err(bad(count));
    }
    if ids.len() != 32 * count {
        return Err(Error::Malformed);
    }
    Ok(ids
        .chunks_exact(32)
        .map(|c| MessageId(c.try_into().expect("chunks of 32")))
        .collect())
}

impl Response {
    /// Bytes of [`Response::encode`], without encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Response::Sync(frame) => 1 + frame.len(),
            Response::Envelopes { envelopes, .. } => {
                4 + envelopes.iter().map(|e| 4 + e.len()).sum::<usize>()
            }
            Response::Refused(_) => 2,
            Response::Noted => 1,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Response::Sync(frame) => {
                let mut out = Vec::with_capacity(1 + frame.len());
                out.push(RES_SYNC);
                out.extend_from_slice(frame);
                out
            }
            Response::Envelopes { envelopes, more } => {
                let len: usize = envelopes.iter().map(|e| 4 + e.len()).sum();
                let mut out = Vec::with_capacity(4 + len);
                out.push(RES_ENVELOPES);
                out.push(u8::from(*more));
                out.extend_from_slice(&(envelopes.len() as u16).to_be_bytes());
                for e in envelopes {
                    out.extend_from_slice(&(e.len() as u32).to_be_bytes());
                    out.extend_from_slice(e);
                }
                out
            }
            Response::Refused(r) => vec![
                RES_REFUSED,
                match r {
                    Refusal::Busy => 1,
                    Refusal::NoSession => 2,
                    Refusal::Version => 3,
                },
            ],
            Response::Noted => vec![RES_NOTED],
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_RESPONSE_LEN {
            return Err(Error::TooLarge(bytes.len()));
        }
        let (&tag, rest) = bytes.split_first().ok_or(Error::Malformed)?;
        match tag {
            RES_SYNC => Ok(Response::Sync(rest.to_vec())),
            RES_ENVELOPES => {
                let [flags, c0, c1, rest @ ..] = rest else {
                    return Err(Error::Malformed);
                };
                if *flags > 1 {
                    return Err(Error::Malformed);
                }
                let count = u16::from_be_bytes([*c0, *c1]) as usize;
                if count > MAX_FETCH {
                    return Err(Error::BadCount(count));
                }
                let mut envelopes = Vec::with_capacity(count.min(rest.len() / 4));
                let mut r = rest;
                for _ in 0..count {
                    let (len, tail) = r.split_first_chunk::<4>().ok_or(Error::Malformed)?;
                    let len = u32::from_be_bytes(*len) as usize;
                    if len > tail.len() {
                        return Err(Error::Malformed);
                    }
                    let (env, tail) = tail.split_at(len);
                    envelopes.push(env.to_vec());
                    r = tail;
                }
                if !r.is_empty() {
                    return Err(Error::Malformed);
                }
                Ok(Response::Envelopes {
                    envelopes,
                    more: *flags == 1,
                })
            }
            RES_REFUSED => match rest {
                [1] => Ok(Response::Refused(Refusal::Busy)),
                [2] => Ok(Response::Refused(Refusal::NoSession)),
                [3] => Ok(Response::Refused(Refusal::Version)),
                _ => Err(Error::Malformed),
            },
            RES_NOTED if rest.is_empty() => Ok(Response::Noted),
            RES_NOTED => Err(Error::Malformed),
            other => Err(Error::UnknownTag(other)),
        }
    }
}

/// Packs envelopes (in the order given) into a Fetch answer of at most [`MAX_RESPONSE_LEN`]
/// bytes; `more` is set when some did not fit. At least one is always included if any is given
/// (a largest envelope fits many times over).
pub fn pack(envelopes: impl IntoIterator<Item = Vec<u8>>) -> Response {
    let mut out = Vec::new();
    let mut len = 4;
    let mut more = false;
    for e in envelopes {
        if len + 4 + e.len() > MAX_RESPONSE_LEN || out.len() >= MAX_FETCH {
            more = true;
            break;
        }
        len += 4 + e.len();
        out.push(e);
    }
    Response::Envelopes {
        envelopes: out,
        more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes() {
        let ids = vec![MessageId([0xab; 32])];
        let mut want = vec![2, 0, 1];
        want.extend_from_slice(&[0xab; 32]);
        assert_eq!(Request::Fetch(ids.clone()).encode(), want);
        assert_eq!(Request::decode(&want).unwrap(), Request::Fetch(ids));
        assert_eq!(Request::Sync(vec![9, 9]).encode(), [1, 9, 9]);
        let r = Response::Envelopes {
            envelopes: vec![vec![7, 7, 7]],
            more: true,
        };
        assert_eq!(r.encode(), [2, 1, 0, 1, 0, 0, 0, 3, 7, 7, 7]);
        assert_eq!(Response::decode(&r.encode()).unwrap(), r);
        assert_eq!(Response::Refused(Refusal::NoSession).encode(), [3, 2]);
    }

    #[test]
    fn offer_golden_bytes() {
        // Two ids: tag 3, count 2, the ids.
        let ids = vec![MessageId([0x11; 32]), MessageId([0x22; 32])];
        let mut want = vec![3, 0, 2];
        want.extend_from_slice(&[0x11; 32]);
        want.extend_from_slice(&[0x22; 32]);
        let offer = Request::Offer(ids);
        assert_eq!(offer.encode(), want);
        assert_eq!(offer.encoded_len(), 67);
        assert_eq!(Request::decode(&want).unwrap(), offer);
        // No ids: "start a round with me".
        assert_eq!(Request::Offer(Vec::new()).encode(), [3, 0, 0]);
        assert_eq!(
            Request::decode(&[3, 0, 0]).unwrap(),
            Request::Offer(Vec::new())
        );
        assert_eq!(Response::Noted.encode(), [4]);
        assert_eq!(Response::Noted.encoded_len(), 1);
        assert_eq!(Response::decode(&[4]).unwrap(), Response::Noted);
    }

    #[test]
    fn offer_limits_are_enforced() {
        // 513 ids: one more than an offer may list.
        assert_eq!(
            Request::decode(&[3, 0x02, 0x01]),
            Err(Error::BadOfferCount(513))
        );
        let mut full = vec![3, 0x02, 0x00];
        full.extend(std::iter::repeat_n(7u8, 32 * MAX_OFFER));
        assert!(matches!(Request::decode(&full), Ok(Request::Offer(ids)) if ids.len() == 512));
        assert!(full.len() <= MAX_REQUEST_LEN);
        // A count that disagrees with the bytes, and a missing count.
        assert_eq!(Request::decode(&[3, 0, 1, 5]), Err(Error::Malformed));
        assert_eq!(Request::decode(&[3, 0, 0, 0]), Err(Error::Malformed));
        assert_eq!(Request::decode(&[3, 0]), Err(Error::Malformed));
        assert_eq!(Request::decode(&[3]), Err(Error::Malformed));
        // Noted carries nothing.
        assert_eq!(Response::decode(&[4, 0]), Err(Error::Malformed));
    }

    #[test]
    fn limits_are_enforced() {
        assert_eq!(Request::decode(&[2, 0, 0]), Err(Error::BadCount(0)));
        assert_eq!(Request::decode(&[2, 0x02, 0x01]), Err(Error::BadCount(513)));
        assert_eq!(Request::decode(&[2, 0, 1, 5]), Err(Error::Malformed));
        assert!(matches!(
            Request::decode(&vec![1; MAX_REQUEST_LEN + 1]),
            Err(Error::TooLarge(_))
        ));
        assert!(matches!(
            Response::decode(&vec![1; MAX_RESPONSE_LEN + 1]),
            Err(Error::TooLarge(_))
        ));
        // A length beyond the bytes left is refused before anything is copied.
        assert_eq!(
            Response::decode(&[2, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn pack_fits_the_limit_and_says_more() {
        let big = vec![0u8; crate::envelope::MAX_ENVELOPE_LEN];
        let r = pack(std::iter::repeat_n(big, 40));
        let Response::Envelopes { envelopes, more } = &r else {
            unreachable!()
        };
        assert!(*more);
        assert_eq!(envelopes.len(), 17);
        assert!(r.encode().len() <= MAX_RESPONSE_LEN);
        let r = pack(std::iter::repeat_n(vec![1u8; 10], 3));
        assert_eq!(
            r,
            Response::Envelopes {
                envelopes: vec![vec![1; 10]; 3],
                more: false
            }
        );
    }

    proptest! {
        #[test]
        fn round_trips(ids in proptest::collection::vec(any::<[u8; 32]>(), 1..40),
                       envs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
                       more in any::<bool>()) {
            let req = Request::Fetch(ids.into_iter().map(MessageId).collect());
            prop_assert_eq!(req.encode().len(), req.encoded_len());
            prop_assert_eq!(Request::decode(&req.encode()).unwrap(), req);
            let res = Response::Envelopes { envelopes: envs, more };
            prop_assert_eq!(res.encode().len(), res.encoded_len());
            prop_assert_eq!(Response::decode(&res.encode()).unwrap(), res);
        }

        #[test]
        fn offers_round_trip(ids in proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_OFFER)) {
            let req = Request::Offer(ids.into_iter().map(MessageId).collect());
            let bytes = req.encode();
            prop_assert_eq!(bytes.len(), req.encoded_len());
            prop_assert!(bytes.len() <= MAX_REQUEST_LEN);
            prop_assert_eq!(Request::decode(&bytes).unwrap(), req);
            let res = Response::Noted;
            prop_assert_eq!(res.encode().len(), res.encoded_len());
            prop_assert_eq!(Response::decode(&res.encode()).unwrap(), res);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
        }
    }
}
