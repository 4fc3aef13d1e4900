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

/// `EncodedWrite` is an `Ingest.Write` request whose series are encoded
/// once ([`EncodedWrite::encode_series`]) and whose other fields are
/// written per attempt, so a client that retries, or re-routes, a write
/// sends the same bytes again instead of cloning and re-encoding every
/// label. The bytes on the wire are exactly prost's encoding of the
/// equivalent `WriteRequest`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncodedWrite {
    /// The `series` fields, from [`EncodedWrite::encode_series`].
    pub series: Bytes,
    /// `WriteRequest.request_id`.
    pub request_id: String,
    /// `WriteRequest.shard_map_epoch`.
    pub shard_map_epoch: u64,
    /// `WriteRequest.shard`.
    pub shard: u64,
}

impl EncodedWrite {
    /// `encode_series` is the encoding of a `WriteRequest`'s `series`
    /// field holding `series`.
    pub fn encode_series<'a, I>(series: I) -> Bytes
    where
        I: IntoIterator<Item = &'a pb::Series>,
        I::IntoIter: Clone,
    {
        let series = series.into_iter();
        let len: usize = series
            .clone()
            .map(|s| prost::encoding::message::encoded_len(1, s))
            .sum();
        let mut buf = Vec::with_capacity(len);
        for s in series {
            prost::encoding::message::encode(1, s, &mut buf);
        }
        Bytes::from(buf)
    }

    /// `tail` is the encoding of the fields after `series`, as prost
    /// writes them (defaults omitted).
    fn tail(&self) -> Vec<u8> {
        use prost::encoding::{string, uint64};
        let mut buf = Vec::new();
        if !self.request_id.is_empty() {
            string::encode(2, &self.request_id, &mut buf);
        }
        if self.shard_map_epoch != 0 {
            uint64::encode(3, &self.shard_map_epoch, &mut buf);
        }
        if self.shard != 0 {
            uint64::encode(4, &self.shard, &mut buf);
        }
        buf
    }
}

/// `write_encoded` calls `Ingest.Write` on `channel` with `request`,
/// refusing to send more than `max_encoding` bytes or accept an answer of
/// more than `max_decoding`, as the generated client's settings do.
pub async fn write_encoded(
    channel: tonic::transport::Channel,
    request: Request<EncodedWrite>,
    max_encoding: usize,
    max_decoding: usize,
) -> Result<Response<pb::WriteResponse>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_encoding_message_size(max_encoding)
        .max_decoding_message_size(max_decoding);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("the channel is not ready: {e}")))?;
    grpc.unary(
        request,
        http::uri::PathAndQuery::from_static("/raftwatch.v1.Ingest/Write"),
        EncodedWriteCodec,
    )
    .await
}

/// `EncodedWriteCodec` writes an [`EncodedWrite`] and reads the
/// `WriteResponse` with prost.
#[derive(Debug, Default, Clone, Copy)]
struct EncodedWriteCodec;

impl Codec for EncodedWriteCodec {
    type Encode = EncodedWrite;
    type Decode = pb::WriteResponse;
    type Encoder = EncodedWriteEncoder;
    type Decoder = tonic_prost::ProstDecoder<pb::WriteResponse>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedWriteEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(BufferSettings::default())
    }
}

#[derive(Debug)]
struct EncodedWriteEncoder;

impl tonic::codec::Encoder for EncodedWriteEncoder {
    type Item = EncodedWrite;
    type Error = Status;

    fn encode(
        &mut self,
        item: EncodedWrite,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item.series);
        dst.put_slice(&item.tail());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn an_encoded_write_is_what_prost_writes_for_the_request() {
        let series = vec![
            pb::Series {
                labels: vec![
                    pb::Label {
                        name: "__name__".into(),
                        value: "up".into(),
                    },
                    pb::Label {
                        name: "job".into(),
                        value: "é".into(),
                    },
                ],
                samples: vec![
                    pb::Sample {
                        timestamp_ms: -5,
                        value: f64::NAN,
                    },
                    pb::Sample {
                        timestamp_ms: 0,
                        value: 0.0,
                    },
                ],
            },
            pb::Series::default(),
        ];
        for (request_id, shard_map_epoch, shard) in
            [("", 0, 0), ("r-1", 0, 7), ("r-2", 3, 0), ("r", u64::MAX, 1)]
        {
            let request = pb::WriteRequest {
                series: series.clone(),
                request_id: request_id.into(),
                shard_map_epoch,
                shard,
            };
            let encoded = EncodedWrite {
                series: EncodedWrite::encode_series(&series),
                request_id: request_id.into(),
                shard_map_epoch,
                shard,
            };
            let mut bytes = encoded.series.to_vec();
            bytes.extend_from_slice(&encoded.tail());
            assert_eq!(bytes, request.encode_to_vec(), "{request:?}");
        }
        assert!(EncodedWrite::encode_series(&[]).is_empty());
    }
}
