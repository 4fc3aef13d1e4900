//! `raftwatch.v1.Ingest` served with the request left as bytes.
//!
//! The generated `IngestServer` decodes `WriteRequest` with prost: two
//! `String`s per label and a struct per sample, which was about 9 % of a
//! `raftwatch dev` cluster's CPU under the ingest benchmark. This server
//! is the same service on the wire (same path, same limits, same response
//! encoding), but hands its handler the request's bytes, which the node
//! parses into borrowed views (`raftwatch_shard::wire::WriteView`) and
//! decodes with prost only when the view refuses them.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::codegen::{Arc, Body, BoxFuture, Bytes, Context, Poll, Service, StdError, http};
use tonic::{Request, Response, Status};
use tonic_prost::ProstEncoder;

use crate::v1 as pb;

/// `IngestRaw` is the handler of [`IngestRawServer`].
#[tonic::async_trait]
pub trait IngestRaw: Send + Sync + 'static {
    /// `write` answers `Ingest.Write`; `request` holds the
    /// `WriteRequest`'s encoded bytes, at most the server's decoding limit.
    async fn write(&self, request: Request<Bytes>) -> Result<Response<pb::WriteResponse>, Status>;
}

/// `IngestRawServer` serves `raftwatch.v1.Ingest` through an
/// [`IngestRaw`] handler.
#[derive(Debug)]
pub struct IngestRawServer<T> {
    inner: Arc<T>,
    max_decoding_message_size: Option<usize>,
}

impl<T> IngestRawServer<T> {
    /// `new` serves `inner`.
    pub fn new(inner: T) -> Self {
        IngestRawServer {
            inner: Arc::new(inner),
            max_decoding_message_size: None,
        }
    }

    /// `max_decoding_message_size` refuses longer requests, as tonic's
    /// generated servers do.
    #[must_use]
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.max_decoding_message_size = Some(limit);
        self
    }
}

impl<T> Clone for IngestRawServer<T> {
    fn clone(&self) -> Self {
        IngestRawServer {
            inner: self.inner.clone(),
            max_decoding_message_size: self.max_decoding_message_size,
        }
    }
}

impl<T> tonic::server::NamedService for IngestRawServer<T> {
    const NAME: &'static str = pb::ingest_server::SERVICE_NAME;
}

struct WriteSvc<T>(Arc<T>);

impl<T: IngestRaw> tonic::server::UnaryService<Bytes> for WriteSvc<T> {
    type Response = pb::WriteResponse;
    type Future = BoxFuture<Response<pb::WriteResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.write(request).await })
    }
}

impl<T, B> Service<http::Request<B>> for IngestRawServer<T>
where
    T: IngestRaw,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != "/raftwatch.v1.Ingest/Write" {
            return Box::pin(async move {
                Ok(Status::unimplemented("no such method in raftwatch.v1.Ingest").into_http())
            });
        }
        let inner = self.inner.clone();
        let max = self.max_decoding_message_size;
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec::<pb::WriteResponse>::default())
                .apply_max_message_size_config(max, None);
            Ok(grpc.unary(WriteSvc(inner), req).await)
        })
    }
}

/// `RawCodec` encodes responses `T` as tonic's `ProstCodec` does and
/// decodes a request as its bytes.
#[derive(Debug)]
struct RawCodec<T> {
    _pd: PhantomData<T>,
}

impl<T> Default for RawCodec<T> {
    fn default() -> Self {
        RawCodec { _pd: PhantomData }
    }
}

impl<T: prost::Message + Send + 'static> Codec for RawCodec<T> {
    type Encode = T;
    type Decode = Bytes;
    type Encoder = ProstEncoder<T>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

#[derive(Debug)]
struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        use prost::bytes::Buf;
        let n = buf.remaining();
        Ok(Some(buf.copy_to_bytes(n)))
    }
}
