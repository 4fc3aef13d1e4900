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
