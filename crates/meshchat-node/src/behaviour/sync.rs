//! `/meshchat/sync/1` on libp2p request-response: one request and one response per stream, each
//! read to the end of the stream with a size limit, in the format of
//! [`meshchat_core::sync::wire`].

use std::io;

use futures::prelude::*;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::StreamProtocol;
use meshchat_core::sync::wire::{self, Request, Response};

pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/meshchat/sync/1");
/// Listed in identify by nodes that take Offers (PROTOCOL.md §6); never negotiated (it is taken
/// inbound only, and we open every stream on [`SYNC_PROTOCOL`]). A node of an earlier version
/// would refuse the unknown request as a strike, so offers go only to peers that list this.
pub const SYNC_OFFERS: StreamProtocol = StreamProtocol::new("/meshchat/sync/1/offers");
/// Longest a request waits for its response.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// Streams of this protocol open at once on one connection, each way.
pub const MAX_STREAMS: usize = 8;

pub type Behaviour = request_response::Behaviour<Codec>;

pub fn behaviour() -> Behaviour {
    request_response::Behaviour::with_codec(
        Codec,
        [
            (SYNC_PROTOCOL, ProtocolSupport::Full),
            (SYNC_OFFERS, ProtocolSupport::Inbound),
        ],
        request_response::Config::default()
            .with_request_timeout(REQUEST_TIMEOUT)
            .with_max_concurrent_streams(MAX_STREAMS),
    )
}

/// Whether an I/O error of this protocol means the peer sent something no honest node sends (our
/// codec reports a message that does not decode, or is too large, as `InvalidData`).
pub fn is_malformed(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Codec;

/// Reads the whole stream, refusing more than `limit` bytes.
async fn read_limited<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    limit: usize,
) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(limit as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            wire::Error::TooLarge(buf.len()),
        ));
    }
    Ok(buf)
}

fn invalid(e: wire::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_limited(io, wire::MAX_REQUEST_LEN).await?;
        Request::decode(&bytes).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_limited(io, wire::MAX_RESPONSE_LEN).await?;
        Response::decode(&bytes).map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&req.encode()).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&res.encode()).await?;
        io.close().await
    }
}
