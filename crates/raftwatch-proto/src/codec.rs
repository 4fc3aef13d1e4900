//! The codec of every generated server: protobuf through prost, like
//! tonic's `ProstCodec`, except for what a request that does not decode
//! becomes.
//!
//! tonic's `ProstCodec` answers a malformed message with `INTERNAL`,
//! following gRPC's status-code guide for a server that cannot parse a
//! request. Our contract (`CONTRACTS.md`) is `INVALID_ARGUMENT` for bad
//! input, and bytes that are not the message the method takes are the
//! caller's bad input, not a fault of the server. The generated clients keep
//! `ProstCodec`: there the decoded message is a response, and a response
//! that does not decode is the server's fault (`INTERNAL`).

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// `ServerCodec` is the codec of the generated servers (selected with
/// `codec_path` in `build.rs`): it encodes responses `T` exactly as tonic's
/// `ProstCodec` does and decodes requests `U`, answering bytes that are not
/// a valid `U` with `INVALID_ARGUMENT` ([`decode_error_status`]).
#[derive(Debug)]
pub struct ServerCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for ServerCodec<T, U> {
    fn default() -> Self {
        ServerCodec { _pd: PhantomData }
    }
}

impl<T, U> Clone for ServerCodec<T, U> {
    fn clone(&self) -> Self {
        ServerCodec::default()
    }
}

impl<T, U> Codec for ServerCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder { _pd: PhantomData }
    }
}

/// `RequestDecoder` decodes one request message `U` from the bytes of one
/// gRPC frame (tonic has already checked the frame's length against the
/// server's limit and collected all of it).
#[derive(Debug)]
pub struct RequestDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        decode_request(buf).map(Some)
    }
}

/// `decode_request` decodes all of `buf` as one request message `U`.
fn decode_request<U: Message + Default>(buf: impl prost::bytes::Buf) -> Result<U, Status> {
    U::decode(buf).map_err(decode_error_status)
}

/// `decode_error_status` is what a request that prost cannot decode is
/// answered with: `INVALID_ARGUMENT`, saying so and quoting prost's reason
/// (which names the message and field where decoding stopped).
pub fn decode_error_status(error: prost::DecodeError) -> Status {
    Status::invalid_argument(format!("the request could not be decoded: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1 as pb;
    use tonic::Code;

    /// Decodes `bytes` as `U` the way the codec does.
    fn decode<U: Message + Default>(bytes: &[u8]) -> Result<Option<U>, Status> {
        decode_request(bytes).map(Some)
    }

    #[test]
    fn a_valid_request_decodes_to_the_message() {
        let req = pb::WriteRequest {
            series: vec![pb::Series {
                labels: vec![pb::Label {
                    name: "__name__".into(),
                    value: "up".into(),
                }],
                samples: vec![pb::Sample {
                    timestamp_ms: 5,
                    value: 1.5,
                }],
            }],
            request_id: "r1".into(),
            shard_map_epoch: 3,
            shard: 0,
        };
        let got: Option<pb::WriteRequest> = decode(&req.encode_to_vec()).unwrap();
        assert_eq!(got, Some(req));
        // The empty body is the default message, as in protobuf.
        let empty: Option<pb::WriteRequest> = decode(&[]).unwrap();
        assert_eq!(empty, Some(pb::WriteRequest::default()));
    }

    #[test]
    fn malformed_requests_are_invalid_argument_saying_they_could_not_be_decoded() {
        let truncated = {
            let mut b = pb::WriteRequest {
                request_id: "abcdef".into(),
                ..Default::default()
            }
            .encode_to_vec();
            b.pop();
            b
        };
        let not_utf8 = {
            // Field 2 (request_id, a string), length 2, invalid UTF-8.
            vec![0x12, 0x02, 0xff, 0xfe]
        };
        let cases: [(&str, Vec<u8>); 4] = [
            ("an unterminated varint", vec![0xff, 0xff, 0xff, 0x0f, 0x12]),
            ("a truncated message", truncated),
            ("a string that is not UTF-8", not_utf8),
            ("wire type 7", vec![0x0f]),
        ];
        for (what, bytes) in cases {
            let e = decode::<pb::WriteRequest>(&bytes).unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
            assert!(
                e.message()
                    .starts_with("the request could not be decoded: failed to decode"),
                "{what}: {e:?}"
            );
        }
    }

    #[test]
    fn decode_errors_name_the_field_where_decoding_stopped() {
        let e = decode::<pb::WriteRequest>(&[0x12, 0x02, 0xff, 0xfe]).unwrap_err();
        assert!(e.message().contains("WriteRequest.request_id"), "{e:?}");
    }

    #[test]
    fn every_prefix_of_a_request_decodes_or_is_refused_without_panicking() {
        let bytes = pb::ShardWriteRequest {
            shard: 7,
            request: vec![1, 2, 3, 4, 5],
        }
        .encode_to_vec();
        for n in 0..=bytes.len() {
            match decode::<pb::ShardWriteRequest>(&bytes[..n]) {
                Ok(_) => {}
                Err(e) => assert_eq!(e.code(), Code::InvalidArgument, "{n}: {e:?}"),
            }
        }
    }

    /// A request body: one gRPC frame holding `message`.
    #[derive(Debug)]
    struct OneFrame(Option<Vec<u8>>);

    impl tonic::codegen::Body for OneFrame {
        type Data = tonic::codegen::Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            let framed = self.0.take().map(|message| {
                let mut out = vec![0];
                out.extend_from_slice(&(message.len() as u32).to_be_bytes());
                out.extend_from_slice(&message);
                Ok(http_body::Frame::data(out.into()))
            });
            std::task::Poll::Ready(framed)
        }
    }

    #[tokio::test]
    async fn tonics_request_stream_reports_a_malformed_message_as_invalid_argument() {
        let mut codec = ServerCodec::<pb::WriteResponse, pb::WriteRequest>::default();
        let body = OneFrame(Some(vec![0xff, 0xff, 0xff, 0x0f, 0x12]));
        let mut stream = tonic::codec::Streaming::new_request(codec.decoder(), body, None, None);
        let e = stream.message().await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(
            e.message()
                .starts_with("the request could not be decoded: ")
        );

        let ok = pb::WriteRequest {
            request_id: "x".into(),
            ..Default::default()
        };
        let body = OneFrame(Some(ok.encode_to_vec()));
        let mut stream = tonic::codec::Streaming::new_request(codec.decoder(), body, None, None);
        assert_eq!(stream.message().await.unwrap(), Some(ok));
    }
}
