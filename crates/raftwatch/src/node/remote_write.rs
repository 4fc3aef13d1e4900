//! `POST /api/v1/write`: the Prometheus remote-write 1.0 receiver.
//!
//! The body is a snappy block (`snap::raw`, not the frame format) holding a
//! `prometheus.WriteRequest`. It goes through the same ingest path as
//! `Ingest.Write`, so the answer comes only once every accepted sample is
//! committed by its shard's Raft group. Status codes, as Prometheus'
//! senders read them (4xx but 429: never retried; 429 and 5xx: retried):
//!
//! | outcome | status |
//! |---|---|
//! | every sample committed | 204 |
//! | malformed body (snappy, protobuf, labels unsorted, duplicate or empty names, native histograms) or samples refused one by one (out of order, duplicate timestamp with another value) | 400, body says which and why; the other samples are committed |
//! | wrong `Content-Type` or `Content-Encoding` | 415 |
//! | body or decoded request over a size limit (`request_bytes_max`, 8× that decoded, the series and sample caps) | 413: retrying the same request cannot succeed |
//! | a shard's write queue is full | 429 with `Retry-After` |
//! | no leader, a timeout, a stale shard map | 503: a retry can succeed |

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use raftwatch_proto::prometheus as prom;
use raftwatch_proto::v1 as pb;
use raftwatch_seams::MonoNanos;
use tonic::Code;

use super::Node;
use super::metrics::Protocol;

/// How much larger than the compressed body limit a decoded request may
/// be. Remote-write bodies compress 5–10×; a decompression bomb stops here.
pub const DECODED_BYTES_FACTOR: usize = 8;

/// Rejections listed in a 400 body; the rest are counted.
const REJECTIONS_LISTED_MAX: usize = 20;

/// A refused body: the status and the reason.
type Refused = (StatusCode, String);

fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The handler of `POST /api/v1/write`.
pub(crate) async fn receive(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = node.metrics.now();
    match decode(&headers, &body, node.config.request_bytes_max) {
        Ok(req) => write(&node, started, req, &body).await,
        Err((status, message)) => {
            let limit = status == StatusCode::PAYLOAD_TOO_LARGE;
            node.metrics
                .observe_write_refused(Protocol::RemoteWrite, started, limit);
            plain(status, message)
        }
    }
}

/// Checks the headers and decodes the body into an ingest request.
fn decode(headers: &HeaderMap, body: &[u8], bytes_max: usize) -> Result<pb::WriteRequest, Refused> {
    let header_is = |name: header::HeaderName, want: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case(want)
            })
    };
    if !header_is(header::CONTENT_TYPE, "application/x-protobuf") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "remote write takes Content-Type: application/x-protobuf (remote-write 1.0)\n".into(),
        ));
    }
    if !header_is(header::CONTENT_ENCODING, "snappy") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "remote write takes Content-Encoding: snappy\n".into(),
        ));
    }
    let decoded_max = bytes_max.saturating_mul(DECODED_BYTES_FACTOR);
    let len = snap::raw::decompress_len(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("snappy: {e}\n")))?;
    if len > decoded_max {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request decodes to {len} bytes; the limit is {decoded_max}\n"),
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("snappy: {e}\n")))?;
    let req = prom::WriteRequest::decode(raw.as_slice()).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("protobuf: not a prometheus.WriteRequest: {e}\n"),
        )
    })?;
    let mut series = Vec::with_capacity(req.timeseries.len());
    for (i, ts) in req.timeseries.into_iter().enumerate() {
        check_labels(i, &ts.labels).map_err(|m| (StatusCode::BAD_REQUEST, m))?;
        if !ts.histograms.is_empty() {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "series {i} {}: native histograms are not supported; send classic histograms\n",
                    show(&ts.labels)
                ),
            ));
        }
        series.push(pb::Series {
            labels: ts
                .labels
                .into_iter()
                .map(|l| pb::Label {
                    name: l.name,
                    value: l.value,
                })
                .collect(),
            samples: ts
                .samples
                .into_iter()
                .map(|s| pb::Sample {
                    timestamp_ms: s.timestamp,
                    value: s.value,
                })
                .collect(),
        });
    }
    Ok(pb::WriteRequest {
        series,
        ..Default::default()
    })
}

/// The request in an already validated body.
fn original(body: &[u8]) -> Option<prom::WriteRequest> {
    let raw = snap::raw::Decoder::new().decompress_vec(body).ok()?;
    prom::WriteRequest::decode(raw.as_slice()).ok()
}

/// The spec's label rules a receiver must enforce before anything is
/// written: names sorted, unique and non-empty. (Name syntax and size
/// limits are the ingest path's, one rejection per sample.)
fn check_labels(i: usize, labels: &[prom::Label]) -> Result<(), String> {
    for (k, l) in labels.iter().enumerate() {
        if l.name.is_empty() {
            return Err(format!(
                "series {i} {}: a label has an empty name\n",
                show(labels)
            ));
        }
        if k > 0 {
            let prev = &labels[k - 1].name;
            if *prev == l.name {
                return Err(format!(
                    "series {i} {}: label {:?} appears twice\n",
                    show(labels),
                    l.name
                ));
            }
            if *prev > l.name {
                return Err(format!(
                    "series {i} {}: labels are not sorted by name ({:?} before {:?}); remote write requires sorted labels\n",
                    show(labels),
                    prev,
                    l.name
                ));
            }
        }
    }
    Ok(())
}

fn show(labels: &[prom::Label]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

async fn write(
    node: &Arc<Node>,
    started: MonoNanos,
    req: pb::WriteRequest,
    sent_body: &[u8],
) -> Response {
    match node
        .write_observed(Protocol::RemoteWrite, started, req)
        .await
    {
        Ok(resp) if resp.rejections.is_empty() => StatusCode::NO_CONTENT.into_response(),
        Ok(resp) => {
            let mut body = format!(
                "{} samples committed, {} refused:\n",
                resp.samples_accepted,
                resp.rejections.len()
            );
            // Named from the body, decoded again: rare, and it keeps the
            // accepted path from copying every label set and timestamp.
            let sent = original(sent_body);
            for r in resp.rejections.iter().take(REJECTIONS_LISTED_MAX) {
                let (si, ki) = (r.series_index as usize, r.sample_index as usize);
                let ts = sent.as_ref().and_then(|w| w.timeseries.get(si));
                let series = ts.map_or_else(|| "?".to_string(), |t| show(&t.labels));
                let ts = ts
                    .and_then(|t| t.samples.get(ki))
                    .map_or(0, |x| x.timestamp);
                body.push_str(&format!(
                    "series {si} {series} sample at {ts}: {}\n",
                    r.reason
                ));
            }
            if resp.rejections.len() > REJECTIONS_LISTED_MAX {
                body.push_str(&format!(
                    "... and {} more\n",
                    resp.rejections.len() - REJECTIONS_LISTED_MAX
                ));
            }
            plain(StatusCode::BAD_REQUEST, body)
        }
        Err(s) => status_response(&s),
    }
}

/// Maps an ingest error to the status remote-write senders act on.
fn status_response(s: &tonic::Status) -> Response {
    let msg = format!("{}\n", s.message());
    match s.code() {
        Code::InvalidArgument => plain(StatusCode::BAD_REQUEST, msg),
        Code::ResourceExhausted => match retry_after_ms(s) {
            Some(ms) => {
                let secs = ms.div_ceil(1000).max(1);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, secs.to_string())],
                    msg,
                )
                    .into_response()
            }
            // A per-request limit: the same request can never fit.
            None => plain(StatusCode::PAYLOAD_TOO_LARGE, msg),
        },
        _ => plain(StatusCode::SERVICE_UNAVAILABLE, msg),
    }
}

fn retry_after_ms(s: &tonic::Status) -> Option<u64> {
    s.metadata()
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(req: &prom::WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    fn series(labels: &[(&str, &str)]) -> prom::TimeSeries {
        prom::TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| prom::Label {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
            samples: vec![prom::Sample {
                value: f64::from_bits(raftwatch_model::STALE_NAN_BITS),
                timestamp: 1_000,
            }],
            histograms: vec![],
        }
    }

    fn status(r: Result<pb::WriteRequest, Refused>) -> StatusCode {
        match r {
            Ok(_) => StatusCode::OK,
            Err((status, _)) => status,
        }
    }

    #[test]
    fn bodies_are_checked_before_anything_is_written() {
        let h = HeaderMap::new();
        let ok = prom::WriteRequest {
            timeseries: vec![series(&[("__name__", "up"), ("job", "a")])],
        };
        let req = decode(&h, &encode(&ok), 1 << 20).unwrap();
        assert_eq!(req.series.len(), 1);
        // The staleness marker keeps its bits.
        assert_eq!(
            req.series[0].samples[0].value.to_bits(),
            raftwatch_model::STALE_NAN_BITS
        );

        assert_eq!(
            status(decode(&h, b"\xff\xff\xff\xff\xff", 1 << 20)),
            StatusCode::BAD_REQUEST
        );
        let garbage = snap::raw::Encoder::new()
            .compress_vec(b"\x0a\xff\xff")
            .unwrap();
        assert_eq!(
            status(decode(&h, &garbage, 1 << 20)),
            StatusCode::BAD_REQUEST
        );
        for bad in [
            vec![("job", "a"), ("__name__", "up")],
            vec![("__name__", "up"), ("__name__", "down")],
            vec![("", "x"), ("__name__", "up")],
        ] {
            let r = prom::WriteRequest {
                timeseries: vec![series(&bad)],
            };
            assert_eq!(
                status(decode(&h, &encode(&r), 1 << 20)),
                StatusCode::BAD_REQUEST,
                "{bad:?}"
            );
        }
        let mut hist = series(&[("__name__", "h")]);
        hist.histograms.push(vec![1, 2, 3]);
        let r = prom::WriteRequest {
            timeseries: vec![hist],
        };
        assert_eq!(
            status(decode(&h, &encode(&r), 1 << 20)),
            StatusCode::BAD_REQUEST
        );
        // A decompression bomb is refused from the length header.
        let big = prom::WriteRequest {
            timeseries: (0..2_000).map(|_| series(&[("__name__", "up")])).collect(),
        };
        assert_eq!(
            status(decode(&h, &encode(&big), 1_000)),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let mut json = HeaderMap::new();
        json.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert_eq!(
            status(decode(&json, &encode(&ok), 1 << 20)),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[test]
    fn errors_map_to_what_senders_retry() {
        let mut full = tonic::Status::resource_exhausted("queue full");
        full.metadata_mut()
            .insert("retry-after-ms", "100".parse().unwrap());
        let r = status_response(&full);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let too_big = tonic::Status::resource_exhausted("too many series");
        assert_eq!(
            status_response(&too_big).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status_response(&tonic::Status::unavailable("no leader")).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_response(&tonic::Status::invalid_argument("bad")).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
