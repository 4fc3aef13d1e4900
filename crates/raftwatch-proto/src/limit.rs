//! A request-size limit in front of a generated server that answers
//! `RESOURCE_EXHAUSTED`, as our contract says a limit must.
//!
//! tonic checks each message's declared length against the server's
//! `max_decoding_message_size` as soon as it reads the 5-byte frame header,
//! before it buffers the message, and answers `OUT_OF_RANGE` (the code for
//! a value outside a valid range, not for a limit). [`RequestBytesLimit`]
//! makes the same check one step earlier, on the request body as it
//! streams in, and fails the body with a `RESOURCE_EXHAUSTED` status that
//! names the message's length and the limit; tonic's decoder passes a
//! `Status` found in a body error through unchanged. Set the server's own
//! `max_decoding_message_size` to the same limit: then tonic's check never
//! fires first, and remains as a backstop.
//!
//! The check follows gRPC's length-prefixed framing across body chunks (a
//! header may be split anywhere), so it holds for streaming requests too,
//! and it neither buffers nor copies: it only counts.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http_body::{Frame, SizeHint};
use tonic::Status;
use tonic::codegen::{Body, Bytes, Service, StdError, http};
use tonic::server::NamedService;

/// `FRAME_HEADER_BYTES` is the length of a gRPC message's prefix: one
/// compression-flag byte, then the message length as a big-endian `u32`.
const FRAME_HEADER_BYTES: usize = 5;

/// `RequestBytesLimit` wraps a gRPC service `S` so that a request message
/// longer than `limit_bytes` (as declared by its frame header; the limit
/// itself is allowed) is refused with `RESOURCE_EXHAUSTED` before it is
/// read. Its message names the length, the limit and `note` (how the limit
/// can be changed). It serves under `S`'s name.
#[derive(Clone, Debug)]
pub struct RequestBytesLimit<S> {
    inner: S,
    limit_bytes: usize,
    note: Arc<str>,
}

impl<S> RequestBytesLimit<S> {
    /// `new` puts `inner` behind a limit of `limit_bytes` per request
    /// message; `note` ends the refusal's message (e.g. the setting that
    /// changes the limit).
    pub fn new(inner: S, limit_bytes: usize, note: impl Into<Arc<str>>) -> Self {
        RequestBytesLimit {
            inner,
            limit_bytes,
            note: note.into(),
        }
    }
}

impl<S: NamedService> NamedService for RequestBytesLimit<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for RequestBytesLimit<S>
where
    S: Service<http::Request<LimitedBody<B>>>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<StdError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (limit_bytes, note) = (self.limit_bytes, self.note.clone());
        self.inner
            .call(request.map(|body| LimitedBody::new(body, limit_bytes, note)))
    }
}

/// `LimitedBody` is a request body passed through unchanged until a frame
/// header declares a message longer than the limit; then it ends with one
/// `RESOURCE_EXHAUSTED` [`Status`] error (boxed) instead of that chunk.
#[derive(Debug)]
pub struct LimitedBody<B> {
    inner: B,
    frames: FrameScanner,
    note: Arc<str>,
    refused: bool,
}

impl<B> LimitedBody<B> {
    fn new(inner: B, limit_bytes: usize, note: Arc<str>) -> Self {
        LimitedBody {
            inner,
            frames: FrameScanner::new(limit_bytes),
            note,
            refused: false,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<StdError>,
{
    type Data = Bytes;
    type Error = StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StdError>>> {
        let this = &mut *self;
        if this.refused {
            return Poll::Ready(None);
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref()
            && let Err(message_bytes) = this.frames.scan(data)
        {
            this.refused = true;
            let status = too_large(message_bytes, this.frames.limit_bytes, &this.note);
            return Poll::Ready(Some(Err(Box::new(status))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.refused || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.refused {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}

/// `too_large` is the refusal of a `message_bytes`-long request message.
pub fn too_large(message_bytes: u64, limit_bytes: usize, note: &str) -> Status {
    Status::resource_exhausted(format!(
        "request message of {message_bytes} bytes is over this server's limit of \
         {limit_bytes} bytes per message ({note})"
    ))
}

/// `FrameScanner` follows gRPC's length-prefixed framing through a byte
/// stream fed in arbitrary pieces, remembering a partial header between
/// pieces and skipping message bytes without looking at them.
#[derive(Debug)]
struct FrameScanner {
    limit_bytes: usize,
    header: [u8; FRAME_HEADER_BYTES],
    /// Bytes of `header` received so far, `0..FRAME_HEADER_BYTES`.
    header_len: usize,
    /// Bytes of the current message still to come; 0 between messages.
    message_left: u64,
}

impl FrameScanner {
    fn new(limit_bytes: usize) -> Self {
        FrameScanner {
            limit_bytes,
            header: [0; FRAME_HEADER_BYTES],
            header_len: 0,
            message_left: 0,
        }
    }

    /// `scan` consumes the next `data` of the stream. It returns the
    /// declared length of the first message longer than the limit whose
    /// header completes in `data`; the scanner must not be fed after that.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), u64> {
        while !data.is_empty() {
            if self.message_left > 0 {
                let skip = usize::try_from(self.message_left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                data = data.get(skip..).unwrap_or_default();
                self.message_left -= skip as u64;
                continue;
            }
            let take = (FRAME_HEADER_BYTES - self.header_len).min(data.len());
            let (head, rest) = data.split_at(take);
            if let Some(slot) = self.header.get_mut(self.header_len..self.header_len + take) {
                slot.copy_from_slice(head);
            }
            self.header_len += take;
            data = rest;
            if self.header_len == FRAME_HEADER_BYTES {
                self.header_len = 0;
                let [_flag, b0, b1, b2, b3] = self.header;
                let len = u64::from(u32::from_be_bytes([b0, b1, b2, b3]));
                if len > self.limit_bytes as u64 {
                    return Err(len);
                }
                self.message_left = len;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::convert::Infallible;

    /// One gRPC frame: an uncompressed message of `len` bytes of `fill`.
    fn frame(len: u32, fill: u8) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(std::iter::repeat_n(fill, len as usize));
        out
    }

    /// A body delivering `chunks` one by one, then `trailers` if any.
    #[derive(Debug)]
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    /// Splits `bytes` at `cuts` (sorted offsets) into a body.
    fn chunked(bytes: &[u8], cuts: &[usize]) -> Chunks {
        let mut out = VecDeque::new();
        let mut at = 0;
        for &cut in cuts.iter().chain([&bytes.len()]) {
            out.push_back(Bytes::copy_from_slice(&bytes[at..cut]));
            at = cut;
        }
        Chunks(out)
    }

    /// Reads `body` to its end: the data passed through, or the error.
    async fn drain<B: Body<Data = Bytes, Error = StdError> + Unpin>(
        mut body: B,
    ) -> Result<Vec<u8>, Status> {
        let mut out = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            match frame {
                Ok(f) => out.extend_from_slice(f.data_ref().unwrap()),
                Err(e) => return Err(Status::from_error(e)),
            }
        }
        Ok(out)
    }

    #[test]
    fn messages_up_to_the_limit_pass_and_longer_ones_are_named() {
        let mut s = FrameScanner::new(10);
        assert_eq!(s.scan(&frame(10, 1)), Ok(()));
        assert_eq!(s.scan(&frame(0, 0)), Ok(()));
        assert_eq!(s.scan(&frame(3, 2)), Ok(()));
        assert_eq!(s.scan(&frame(11, 3)[..5]), Err(11));
        let mut s = FrameScanner::new(10);
        assert_eq!(
            s.scan(&[1, 0xff, 0xff, 0xff, 0xff]),
            Err(u64::from(u32::MAX))
        );
    }

    #[test]
    fn a_header_split_anywhere_is_still_read() {
        // Two messages within the limit, then one over it; every way of
        // cutting the stream in up to two places finds the third.
        let stream: Vec<u8> = [frame(4, 7), frame(0, 0), frame(9, 8)].concat();
        let third = frame(4, 7).len() + frame(0, 0).len();
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                let mut s = FrameScanner::new(8);
                let r = [&stream[..a], &stream[a..b], &stream[b..]]
                    .iter()
                    .try_for_each(|piece| s.scan(piece));
                assert_eq!(r, Err(9), "cuts {a}, {b}");
            }
        }
        // Nothing before the offending header completes trips it.
        let mut s = FrameScanner::new(8);
        assert_eq!(s.scan(&stream[..third + 4]), Ok(()));
        assert_eq!(s.scan(&stream[third + 4..third + 5]), Err(9));
    }

    #[test]
    fn message_bytes_that_look_like_headers_are_skipped() {
        // The message's own bytes would declare 4 GiB if read as a header.
        let mut s = FrameScanner::new(16);
        assert_eq!(s.scan(&frame(16, 0xff)), Ok(()));
        assert_eq!(s.scan(&frame(16, 0xff)[..7]), Ok(()));
    }

    #[tokio::test]
    async fn the_body_passes_data_through_unchanged_within_the_limit() {
        let stream: Vec<u8> = [frame(100, 1), frame(50, 2)].concat();
        let body = LimitedBody::new(chunked(&stream, &[3, 40, 104]), 100, "note".into());
        assert_eq!(drain(body).await.unwrap(), stream);
    }

    #[tokio::test]
    async fn the_body_ends_with_resource_exhausted_naming_length_limit_and_note() {
        let stream: Vec<u8> = [frame(100, 1), frame(101, 2)].concat();
        let body = LimitedBody::new(
            chunked(&stream, &[3, 107]),
            100,
            "set request_bytes_max".into(),
        );
        let e = drain(body).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
        assert_eq!(
            e.message(),
            "request message of 101 bytes is over this server's limit of 100 bytes per \
             message (set request_bytes_max)"
        );
    }

    #[tokio::test]
    async fn after_the_refusal_the_body_ends() {
        let stream: Vec<u8> = [frame(20, 1), frame(1, 2)].concat();
        let mut body = LimitedBody::new(chunked(&stream, &[2, 8, 20]), 10, "n".into());
        let mut errors = 0;
        while let Some(f) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            errors += usize::from(f.is_err());
        }
        assert_eq!(errors, 1);
        assert!(body.is_end_stream());
    }

    /// An `Ingest` that accepts every write.
    #[derive(Debug)]
    struct AcceptAll;

    #[tonic::async_trait]
    impl crate::v1::ingest_server::Ingest for AcceptAll {
        async fn write(
            &self,
            _: tonic::Request<crate::v1::WriteRequest>,
        ) -> Result<tonic::Response<crate::v1::WriteResponse>, Status> {
            Ok(tonic::Response::new(crate::v1::WriteResponse::default()))
        }
    }

    /// Calls `Ingest.Write` on the generated server behind a limit of 100
    /// bytes with `body` as the request body, and returns the status the
    /// response carries (in its headers, or else in its trailers).
    async fn call_write(body: Chunks) -> Status {
        let server =
            crate::v1::ingest_server::IngestServer::new(AcceptAll).max_decoding_message_size(100);
        let mut svc = RequestBytesLimit::new(server, 100, "note");
        let request = http::Request::builder()
            .method("POST")
            .uri("/raftwatch.v1.Ingest/Write")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(body)
            .unwrap();
        let response = svc.call(request).await.unwrap();
        if let Some(status) = Status::from_header_map(response.headers()) {
            return status;
        }
        let mut body = response.into_body();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Ok(trailers) = frame.unwrap().into_trailers() {
                return Status::from_header_map(&trailers).unwrap();
            }
        }
        panic!("no grpc-status in the response");
    }

    #[tokio::test]
    async fn a_generated_server_behind_the_limit_answers_each_case_with_its_code() {
        use prost::Message;
        let write = crate::v1::WriteRequest {
            request_id: "r".repeat(80),
            ..Default::default()
        };
        let ok = write.encode_to_vec();
        assert!(ok.len() <= 100);
        let s = call_write(chunked(&frame_of(&ok), &[1])).await;
        assert_eq!(s.code(), tonic::Code::Ok, "{s:?}");

        // Over the limit: refused from the header alone, message unsent.
        let s = call_write(chunked(&frame(101, 0)[..5], &[2])).await;
        assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
        assert_eq!(
            s.message(),
            "request message of 101 bytes is over this server's limit of 100 bytes per \
             message (note)"
        );

        // Within the limit but not a WriteRequest.
        let s = call_write(chunked(&frame_of(&[0xff; 100]), &[])).await;
        assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
        assert!(
            s.message()
                .starts_with("the request could not be decoded: ")
        );
    }

    fn frame_of(message: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        out
    }
}
