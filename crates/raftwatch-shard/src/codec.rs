//! The shard's log-entry and query formats: protobuf messages (prost
//! derive), versioned, so a newer node reads an older node's log. Spec:
//! `docs/format/shard-entry.md`.

/// `COMMAND_VERSION` is the version written into every command.
pub const COMMAND_VERSION: u32 = 1;

/// `LabelPb` is one label.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPb {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `SeriesPb` is one series' labels and samples (parallel arrays).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SeriesPb {
    /// Labels, any order (the engine sorts and validates).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<LabelPb>,
    /// Timestamps, ms.
    #[prost(int64, repeated, tag = "2")]
    pub timestamps: Vec<i64>,
    /// Values; raw IEEE-754 bits on the wire, so NaN payloads survive.
    #[prost(double, repeated, tag = "3")]
    pub values: Vec<f64>,
}

/// `ShardCommand` is one shard log entry: a batch of samples to append
/// (fields 2–3), or several client requests coalesced into one entry
/// (field 4; then fields 2–3 are empty). Each request is applied and
/// answered on its own.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShardCommand {
    /// Format version ([`COMMAND_VERSION`]).
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The series and their samples.
    #[prost(message, repeated, tag = "2")]
    pub series: Vec<SeriesPb>,
    /// The client's request id, or empty.
    #[prost(string, tag = "3")]
    pub request_id: String,
    /// Coalesced requests, applied in order.
    #[prost(message, repeated, tag = "4")]
    pub requests: Vec<ShardRequest>,
}

/// `ShardRequest` is one client request's part for one shard.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShardRequest {
    /// The series and their samples.
    #[prost(message, repeated, tag = "1")]
    pub series: Vec<SeriesPb>,
    /// The client's request id, or empty (no deduplication).
    #[prost(string, tag = "2")]
    pub request_id: String,
}

/// `put_request_series` appends one `series` field of a [`ShardRequest`]
/// to `buf`: a [`SeriesPb`] with `labels` in the order given and
/// `timestamps` and `values` packed, byte for byte what prost writes for
/// that series. With [`put_request_id`] after the last series, `buf`
/// is the request's encoding, built from borrowed labels.
pub fn put_request_series(
    buf: &mut Vec<u8>,
    labels: &[(&str, &str)],
    timestamps: &[i64],
    values: &[f64],
) {
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
    fn field_len(n: usize) -> usize {
        1 + encoded_len_varint(n as u64) + n
    }
    fn string_len(s: &str) -> usize {
        if s.is_empty() { 0 } else { field_len(s.len()) }
    }
    fn put_string(tag: u32, s: &str, buf: &mut Vec<u8>) {
        if !s.is_empty() {
            encode_key(tag, WireType::LengthDelimited, buf);
            encode_varint(s.len() as u64, buf);
            buf.extend_from_slice(s.as_bytes());
        }
    }
    let label_len = |(n, v): &(&str, &str)| string_len(n) + string_len(v);
    let ts_len: usize = timestamps
        .iter()
        .map(|t| encoded_len_varint(*t as u64))
        .sum();
    let mut len: usize = labels.iter().map(|l| field_len(label_len(l))).sum();
    if !timestamps.is_empty() {
        len += field_len(ts_len);
    }
    if !values.is_empty() {
        len += field_len(8 * values.len());
    }
    buf.reserve(field_len(len));
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    for l in labels {
        encode_key(1, WireType::LengthDelimited, buf);
        encode_varint(label_len(l) as u64, buf);
        put_string(1, l.0, buf);
        put_string(2, l.1, buf);
    }
    if !timestamps.is_empty() {
        encode_key(2, WireType::LengthDelimited, buf);
        encode_varint(ts_len as u64, buf);
        for t in timestamps {
            encode_varint(*t as u64, buf);
        }
    }
    if !values.is_empty() {
        encode_key(3, WireType::LengthDelimited, buf);
        encode_varint(8 * values.len() as u64, buf);
        for v in values {
            buf.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
}

/// `put_request_id` appends a [`ShardRequest`]'s `request_id` field (none
/// when `id` is empty, as prost writes it).
pub fn put_request_id(buf: &mut Vec<u8>, id: &str) {
    use prost::encoding::{WireType, encode_key, encode_varint};
    if !id.is_empty() {
        encode_key(2, WireType::LengthDelimited, buf);
        encode_varint(id.len() as u64, buf);
        buf.extend_from_slice(id.as_bytes());
    }
}

/// `coalesced_command` is the encoding of a [`ShardCommand`] of version
/// [`COMMAND_VERSION`] whose `requests` are `encoded` (each a
/// [`ShardRequest`] already encoded), byte for byte what prost would write
/// for the decoded requests, built by copying: the proposer coalesces
/// parts without decoding or re-encoding their labels. The caller vouches
/// that each part decodes; a part that does not makes the whole entry fail
/// at apply.
pub fn coalesced_command<B: AsRef<[u8]>>(encoded: &[B]) -> Vec<u8> {
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
    let body: usize = encoded
        .iter()
        .map(|e| {
            let n = e.as_ref().len();
            1 + encoded_len_varint(n as u64) + n
        })
        .sum();
    let mut buf = Vec::with_capacity(body + 1 + encoded_len_varint(u64::from(COMMAND_VERSION)));
    encode_key(1, WireType::Varint, &mut buf);
    encode_varint(u64::from(COMMAND_VERSION), &mut buf);
    for e in encoded {
        let e = e.as_ref();
        encode_key(4, WireType::LengthDelimited, &mut buf);
        encode_varint(e.len() as u64, &mut buf);
        buf.extend_from_slice(e);
    }
    buf
}

const _: () = assert!(COMMAND_VERSION != 0, "prost omits a zero version");

/// `RejectionPb` is one refused sample: its index across the command's
/// samples (series in order) and why.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RejectionPb {
    /// Index across the batch.
    #[prost(uint32, tag = "1")]
    pub index: u32,
    /// Reason, human-readable.
    #[prost(string, tag = "2")]
    pub reason: String,
}

/// `ShardWriteResult` is the apply response to a [`ShardCommand`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShardWriteResult {
    /// Samples stored (new) or identical to stored ones.
    #[prost(uint64, tag = "1")]
    pub accepted: u64,
    /// Refused samples.
    #[prost(message, repeated, tag = "2")]
    pub rejections: Vec<RejectionPb>,
    /// Set when the command could not be applied at all on this replica.
    #[prost(string, tag = "3")]
    pub error: String,
    /// For a command of coalesced requests: one result per request, in order.
    #[prost(message, repeated, tag = "4")]
    pub results: Vec<ShardWriteResult>,
    /// This request id was applied before: the result is the stored one
    /// and nothing was applied now.
    #[prost(bool, tag = "5")]
    pub deduplicated: bool,
}

/// `MatcherPb` is one label matcher; `op`: 0 `=`, 1 `!=`, 2 `=~`, 3 `!~`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MatcherPb {
    /// Operator.
    #[prost(uint32, tag = "1")]
    pub op: u32,
    /// Label name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Value or pattern.
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `ShardQuery` selects raw samples.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShardQuery {
    /// Every matcher must match.
    #[prost(message, repeated, tag = "1")]
    pub matchers: Vec<MatcherPb>,
    /// Start, ms, inclusive.
    #[prost(int64, tag = "2")]
    pub start_ms: i64,
    /// End, ms, inclusive.
    #[prost(int64, tag = "3")]
    pub end_ms: i64,
    /// Refuse when more series match (0: no limit).
    #[prost(uint64, tag = "4")]
    pub series_max: u64,
    /// Refuse when more samples would be returned (0: no limit).
    #[prost(uint64, tag = "5")]
    pub samples_max: u64,
}

/// `SAMPLES_LIMIT_REFUSAL` starts [`ShardQueryResult::error`] when the
/// answer would hold more than [`ShardQuery::samples_max`] samples, so a
/// caller can tell a limit from a failure (the select answer has no error
/// code; its tags are frozen, see `query.rs`). Older replicas use the same
/// words.
pub const SAMPLES_LIMIT_REFUSAL: &str = "query would return more than the limit of";

/// `ShardQueryResult` answers a [`ShardQuery`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShardQueryResult {
    /// Matching series sorted by labels.
    #[prost(message, repeated, tag = "1")]
    pub series: Vec<SeriesPb>,
    /// Set when the query was refused (limit, bad matcher, storage error).
    #[prost(string, tag = "2")]
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message;

    fn request() -> impl Strategy<Value = ShardRequest> {
        let label = ("[a-z_]{0,6}", "\\PC{0,8}").prop_map(|(name, value)| LabelPb { name, value });
        let series = (
            prop::collection::vec(label, 0..4),
            prop::collection::vec((any::<i64>(), any::<f64>()), 0..4),
        )
            .prop_map(|(labels, samples)| SeriesPb {
                labels,
                timestamps: samples.iter().map(|s| s.0).collect(),
                values: samples.iter().map(|s| s.1).collect(),
            });
        (prop::collection::vec(series, 0..4), "[a-z0-9-]{0,12}")
            .prop_map(|(series, request_id)| ShardRequest { series, request_id })
    }

    proptest! {
        #[test]
        fn a_request_built_from_borrowed_labels_is_what_prost_writes(r in request()) {
            let mut buf = Vec::new();
            for s in &r.series {
                let labels: Vec<(&str, &str)> =
                    s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
                put_request_series(&mut buf, &labels, &s.timestamps, &s.values);
            }
            put_request_id(&mut buf, &r.request_id);
            prop_assert_eq!(buf, r.encode_to_vec());
        }
    }

    proptest! {
        #[test]
        fn coalesced_command_is_what_prost_writes(requests in prop::collection::vec(request(), 0..5)) {
            let encoded: Vec<Vec<u8>> = requests.iter().map(|r| r.encode_to_vec()).collect();
            let command = ShardCommand {
                version: COMMAND_VERSION,
                series: vec![],
                request_id: String::new(),
                requests,
            };
            prop_assert_eq!(coalesced_command(&encoded), command.encode_to_vec());
        }
    }
}
