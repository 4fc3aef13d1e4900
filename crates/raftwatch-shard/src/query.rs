//! Instant, range, series and label queries on one shard. The shard
//! evaluates Prometheus's lookback rule itself and ships the resulting
//! points (push-down): one point per step instead of every raw sample in
//! the lookback windows.
//!
//! Wire format (`docs/format/shard-entry.md`): a [`ShardRead`] is a
//! superset of [`crate::codec::ShardQuery`] — the same fields under the
//! same tags, plus `kind` and the parameters of the new kinds — so an old
//! `ShardQuery` decodes as a `ShardRead` of kind [`QueryKind::Select`] and
//! keeps meaning "raw samples" (answered by the state machine's select path
//! with a `ShardQueryResult`). Every other kind is answered here with a
//! [`ShardReadResult`], whose tags 1 and 2 are never used: they are
//! `ShardQueryResult`'s, which a replica too old to know `kind` answers
//! with; such an answer decodes with `kind == 0`, and the caller refuses it
//! instead of mistaking raw samples for points.

use prost::Message;
use raftwatch_model::{MatchOp, Matcher, TimestampMs, is_stale_nan};
use raftwatch_storage::KvStore;
use raftwatch_tsdb::Tsdb;

use crate::codec::{LabelPb, MatcherPb, SeriesPb};

/// `STEPS_MAX` is Prometheus's maximum resolution: a range query may ask
/// for `(end - start) / step` of at most this many steps (so at most
/// `STEPS_MAX + 1` points per series).
pub const STEPS_MAX: i64 = 11_000;

/// `STEPS_EXCEEDED` is the error when a range query asks for more steps
/// than [`STEPS_MAX`] (Prometheus's wording).
pub const STEPS_EXCEEDED: &str = "exceeded maximum resolution of 11,000 points per timeseries. \
     Try decreasing the query resolution (?step=XX)";

/// `QueryKind` is what a [`ShardRead`] asks for; on the wire its `kind`
/// field (uint32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueryKind {
    /// 0: raw samples in `[start_ms, end_ms]` (the original `ShardQuery`).
    Select = 0,
    /// 1: the instant rule at `end_ms` (`start_ms` must equal it).
    Instant = 1,
    /// 2: the instant rule at every step `start_ms + k * step_ms <= end_ms`.
    Range = 2,
    /// 3: label sets of the selected series.
    Series = 3,
    /// 4: sorted unique label names of the selected series.
    LabelNames = 4,
    /// 5: sorted unique values of `label_name` among the selected series.
    LabelValues = 5,
    /// 6: PromQL `expr` evaluated over this shard's series alone (a
    /// pushed-down partial aggregation): instant at `start_ms` when
    /// `step_ms` is 0, else at every step of `[start_ms, end_ms]`.
    Eval = 6,
}

impl QueryKind {
    /// `from_wire` is the kind numbered `k`, if known.
    pub fn from_wire(k: u32) -> Option<QueryKind> {
        Some(match k {
            0 => QueryKind::Select,
            1 => QueryKind::Instant,
            2 => QueryKind::Range,
            3 => QueryKind::Series,
            4 => QueryKind::LabelNames,
            5 => QueryKind::LabelValues,
            6 => QueryKind::Eval,
            _ => return None,
        })
    }

    /// `wire` is the kind's number on the wire.
    pub fn wire(self) -> u32 {
        self as u32
    }
}

/// `ErrorCode` says why a [`ShardReadResult`] carries no answer; on the
/// wire its `error_code` field (uint32). The caller maps it to a gRPC
/// status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorCode {
    /// 0: no error.
    None = 0,
    /// 1: the request is malformed (bad matcher, start after end, ...).
    InvalidArgument = 1,
    /// 2: more series (or label names/values) than `series_max`.
    SeriesLimit = 2,
    /// 3: more points than `samples_max`.
    SamplesLimit = 3,
    /// 4: this replica cannot answer now (failed engine, storage error);
    /// another replica may.
    Unavailable = 4,
    /// 5: the kind is unknown to this replica (a newer sender).
    Unsupported = 5,
}

impl ErrorCode {
    /// `from_wire` is the code numbered `c`; unknown codes read as
    /// [`ErrorCode::Unavailable`] (a failure, never a success).
    pub fn from_wire(c: u32) -> ErrorCode {
        match c {
            0 => ErrorCode::None,
            1 => ErrorCode::InvalidArgument,
            2 => ErrorCode::SeriesLimit,
            3 => ErrorCode::SamplesLimit,
            5 => ErrorCode::Unsupported,
            _ => ErrorCode::Unavailable,
        }
    }
}

/// `ShardRead` is a read request on one shard. Tags 1–5 are exactly
/// [`crate::codec::ShardQuery`]'s.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShardRead {
    /// Every matcher must match (Prometheus semantics: an absent label is "").
    #[prost(message, repeated, tag = "1")]
    pub matchers: Vec<MatcherPb>,
    /// Start, ms, inclusive.
    #[prost(int64, tag = "2")]
    pub start_ms: i64,
    /// End, ms, inclusive; the evaluation time of an instant query.
    #[prost(int64, tag = "3")]
    pub end_ms: i64,
    /// Refuse when the answer would hold more series (label sets, names or
    /// values for the label kinds); 0: no limit.
    #[prost(uint64, tag = "4")]
    pub series_max: u64,
    /// Refuse when the answer would hold more samples (points); 0: no limit.
    #[prost(uint64, tag = "5")]
    pub samples_max: u64,
    /// [`QueryKind`]; 0 (absent) is a raw select.
    #[prost(uint32, tag = "6")]
    pub kind: u32,
    /// Range: the step, ms, > 0.
    #[prost(int64, tag = "7")]
    pub step_ms: i64,
    /// Instant and range: the lookback window, ms, > 0.
    #[prost(int64, tag = "8")]
    pub lookback_ms: i64,
    /// Label values: the label.
    #[prost(string, tag = "9")]
    pub label_name: String,
    /// Eval: the PromQL expression.
    #[prost(string, tag = "10")]
    pub expr: String,
}

impl ShardRead {
    /// `pushdown` is the eval read that asks a shard for its part of one
    /// partial aggregation the PromQL planner pushed down
    /// (`raftwatch_promql::Query::pushdowns`).
    pub fn pushdown(p: &raftwatch_promql::PushdownRequest) -> ShardRead {
        ShardRead {
            kind: QueryKind::Eval.wire(),
            expr: p.expr.clone(),
            start_ms: p.start_ms,
            end_ms: p.end_ms,
            step_ms: p.step_ms,
            lookback_ms: p.lookback_delta_ms,
            ..Default::default()
        }
    }
}

/// `ShardReadResult` answers a [`ShardRead`] of any kind but select.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShardReadResult {
    /// The request's kind, echoed; 0 means an older replica answered a raw
    /// select instead (tags 1 and 2 are reserved for its fields).
    #[prost(uint32, tag = "3")]
    pub kind: u32,
    /// [`ErrorCode`]; 0 when the answer is complete.
    #[prost(uint32, tag = "4")]
    pub error_code: u32,
    /// Why, when `error_code` is not 0.
    #[prost(string, tag = "5")]
    pub error: String,
    /// Instant and range: series with their points (timestamps are step
    /// times), sorted by labels, none empty. Series: label sets (no
    /// points), sorted.
    #[prost(message, repeated, tag = "6")]
    pub series: Vec<SeriesPb>,
    /// Label names or values, sorted, unique.
    #[prost(string, repeated, tag = "7")]
    pub values: Vec<String>,
    /// Eval: the evaluation's warnings (Prometheus's wording).
    #[prost(string, repeated, tag = "8")]
    pub warnings: Vec<String>,
    /// Eval: the evaluation's infos.
    #[prost(string, repeated, tag = "9")]
    pub infos: Vec<String>,
    /// Eval: per series, whether its metric name is still to be removed.
    #[prost(bool, repeated, tag = "10")]
    pub drop_name: Vec<bool>,
}

/// `ReadError` is a refused read: its code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    /// Why, for the caller to branch on.
    pub code: ErrorCode,
    /// Human-readable.
    pub message: String,
}

impl ReadError {
    fn new(code: ErrorCode, message: impl Into<String>) -> ReadError {
        ReadError {
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> ReadError {
        ReadError::new(ErrorCode::InvalidArgument, message)
    }
}

/// `answer` is the state machine's entry point: `None` when `request` is a
/// raw select (kind 0) or undecodable — both are the select path's to
/// answer — else the encoded [`ShardReadResult`]. `failed` is the
/// replica's failure, if any: a failed replica refuses every read.
pub fn answer<S: KvStore>(
    db: Option<&Tsdb<S>>,
    failed: Option<&str>,
    request: &[u8],
) -> Option<Vec<u8>> {
    let read = ShardRead::decode(request).ok()?;
    if read.kind == QueryKind::Select.wire() {
        return None;
    }
    let result = match (failed, db) {
        (Some(f), _) => refused(
            read.kind,
            ReadError::new(ErrorCode::Unavailable, format!("replica failed: {f}")),
        ),
        (None, None) => refused(
            read.kind,
            ReadError::new(ErrorCode::Unavailable, "no engine"),
        ),
        (None, Some(db)) => evaluate(db, &read),
    };
    Some(result.encode_to_vec())
}

fn refused(kind: u32, e: ReadError) -> ShardReadResult {
    ShardReadResult {
        kind,
        error_code: e.code as u32,
        error: e.message,
        ..Default::default()
    }
}

/// `evaluate` answers `read` (any kind but select) from `db`. Pure: the
/// answer depends only on the engine's state and the request.
pub fn evaluate<S: KvStore>(db: &Tsdb<S>, read: &ShardRead) -> ShardReadResult {
    let answer = match QueryKind::from_wire(read.kind) {
        None => Err(ReadError::new(
            ErrorCode::Unsupported,
            format!("query kind {} is not supported by this replica", read.kind),
        )),
        Some(QueryKind::Select) => Err(ReadError::invalid(
            "a raw select is answered by the select path",
        )),
        Some(QueryKind::Instant) => {
            if read.start_ms != read.end_ms {
                Err(ReadError::invalid(
                    "an instant query has start_ms equal to end_ms (its time)",
                ))
            } else {
                points(db, read, read.end_ms, read.end_ms, 1).map(series_answer)
            }
        }
        Some(QueryKind::Range) => {
            check_steps(read.start_ms, read.end_ms, read.step_ms).and_then(|()| {
                points(db, read, read.start_ms, read.end_ms, read.step_ms).map(series_answer)
            })
        }
        Some(QueryKind::Series) => series(db, read).map(series_answer),
        Some(QueryKind::LabelNames) => label_names(db, read).map(values_answer),
        Some(QueryKind::LabelValues) => label_values(db, read).map(values_answer),
        Some(QueryKind::Eval) => eval(db, read),
    };
    match answer {
        Ok(mut r) => {
            r.kind = read.kind;
            r
        }
        Err(e) => refused(read.kind, e),
    }
}

fn series_answer(series: Vec<SeriesPb>) -> ShardReadResult {
    ShardReadResult {
        series,
        ..Default::default()
    }
}

fn values_answer(values: Vec<String>) -> ShardReadResult {
    ShardReadResult {
        values,
        ..Default::default()
    }
}

/// `check_steps` validates a range query's steps as Prometheus does.
pub fn check_steps(start_ms: i64, end_ms: i64, step_ms: i64) -> Result<(), ReadError> {
    if step_ms <= 0 {
        return Err(ReadError::invalid(
            "zero or negative query resolution step widths are not accepted. \
             Try a positive integer",
        ));
    }
    check_range(start_ms, end_ms)?;
    // i128: end - start may not fit an i64.
    if (i128::from(end_ms) - i128::from(start_ms)) / i128::from(step_ms) > i128::from(STEPS_MAX) {
        return Err(ReadError::invalid(STEPS_EXCEEDED));
    }
    Ok(())
}

/// `check_range` refuses an end before the start.
pub fn check_range(start_ms: i64, end_ms: i64) -> Result<(), ReadError> {
    if end_ms < start_ms {
        return Err(ReadError::invalid(
            "end timestamp must not be before start time",
        ));
    }
    Ok(())
}

/// `matchers` builds the engine's matchers from their wire form.
pub fn matchers(pbs: &[MatcherPb]) -> Result<Vec<Matcher>, ReadError> {
    pbs.iter()
        .map(|m| {
            let op = match m.op {
                0 => MatchOp::Equal,
                1 => MatchOp::NotEqual,
                2 => MatchOp::RegexMatch,
                3 => MatchOp::RegexNoMatch,
                other => return Err(ReadError::invalid(format!("unknown matcher op {other}"))),
            };
            Matcher::new(op, m.name.clone(), m.value.clone())
                .map_err(|e| ReadError::invalid(e.to_string()))
        })
        .collect()
}

fn labels_pb(labels: &raftwatch_model::Labels) -> Vec<LabelPb> {
    labels
        .iter()
        .map(|l| LabelPb {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

fn series_limit(series_max: u64) -> ReadError {
    ReadError::new(
        ErrorCode::SeriesLimit,
        format!("the query returns more than {series_max} series (the series limit)"),
    )
}

fn samples_limit(samples_max: u64) -> ReadError {
    ReadError::new(
        ErrorCode::SamplesLimit,
        format!("the query returns more than {samples_max} samples (the samples limit)"),
    )
}

/// The instant rule at every step `start, start + step, ... <= end`: for
/// each selected series, the latest sample with a timestamp in
/// `(t - lookback, t]`, unless it is a staleness marker (then no point at
/// `t`; an older sample never shows through). Points carry the step time.
fn points<S: KvStore>(
    db: &Tsdb<S>,
    read: &ShardRead,
    start: i64,
    end: i64,
    step: i64,
) -> Result<Vec<SeriesPb>, ReadError> {
    let lookback = read.lookback_ms;
    if lookback <= 0 {
        return Err(ReadError::invalid(format!(
            "the lookback delta must be positive, not {lookback} ms"
        )));
    }
    check_range(start, end)?;
    let matchers = matchers(&read.matchers)?;
    // The first window is (start - lookback, start]: samples from
    // start - lookback + 1 on.
    let mint = start.saturating_sub(lookback).saturating_add(1);
    let mut out = Vec::new();
    let mut samples_count: u64 = 0;
    for e in db.select(&matchers, TimestampMs(mint), TimestampMs(end)) {
        let mut iter = db
            .samples(e.series_ref, TimestampMs(mint), TimestampMs(end))
            .map_err(|err| ReadError::new(ErrorCode::Unavailable, err.to_string()))?;
        let mut next = iter.next().transpose().map_err(storage)?;
        let mut latest = None;
        let (mut timestamps, mut values) = (Vec::new(), Vec::new());
        let mut t = start;
        loop {
            while let Some(s) = next.filter(|s| s.timestamp.0 <= t) {
                latest = Some(s);
                next = iter.next().transpose().map_err(storage)?;
            }
            if let Some(s) = latest
                && s.timestamp.0 > t.saturating_sub(lookback)
                && !is_stale_nan(s.value)
            {
                timestamps.push(t);
                values.push(s.value);
            }
            match t.checked_add(step) {
                Some(n) if n <= end => t = n,
                _ => break,
            }
        }
        if timestamps.is_empty() {
            continue;
        }
        samples_count += timestamps.len() as u64;
        if read.samples_max > 0 && samples_count > read.samples_max {
            return Err(samples_limit(read.samples_max));
        }
        if read.series_max > 0 && out.len() as u64 >= read.series_max {
            return Err(series_limit(read.series_max));
        }
        out.push(SeriesPb {
            labels: labels_pb(&e.labels),
            timestamps,
            values,
        });
    }
    Ok(out)
}

/// `TsdbSource` reads the PromQL engine's selections from this shard's
/// engine: raw samples, staleness markers included.
struct TsdbSource<'a, S: KvStore> {
    db: &'a Tsdb<S>,
}

impl<S: KvStore> raftwatch_promql::Queryable for TsdbSource<'_, S> {
    fn select(
        &self,
        req: &raftwatch_promql::SelectRequest,
    ) -> Result<Vec<raftwatch_promql::RawSeries>, raftwatch_promql::Error> {
        let mut out = Vec::new();
        let (mint, maxt) = (TimestampMs(req.start_ms), TimestampMs(req.end_ms));
        let storage =
            |err: raftwatch_tsdb::TsdbError| raftwatch_promql::Error::Storage(err.to_string());
        for e in self.db.select(&req.matchers, mint, maxt) {
            let mut samples = Vec::new();
            let mut iter = self.db.samples(e.series_ref, mint, maxt).map_err(storage)?;
            // Copied out a run at a time (see `SampleIter::next_run`).
            while let Some(run) = iter.next_run().map_err(storage)? {
                samples.extend(run.iter().map(|s| (s.timestamp.0, s.value)));
            }
            if samples.is_empty() {
                continue;
            }
            out.push(raftwatch_promql::RawSeries {
                // Moved, not cloned: the entry is ours.
                labels: raftwatch_promql::Labels::new(
                    e.labels
                        .into_vec()
                        .into_iter()
                        .map(|l| (l.name, l.value))
                        .collect(),
                ),
                samples,
            });
        }
        Ok(out)
    }
}

/// `eval` evaluates a pushed-down expression over this shard's series
/// alone, with the request's lookback delta and samples limit.
fn eval<S: KvStore>(db: &Tsdb<S>, read: &ShardRead) -> Result<ShardReadResult, ReadError> {
    use raftwatch_promql::{Engine, EngineConfig, Error as QError};
    if read.lookback_ms <= 0 {
        return Err(ReadError::invalid(format!(
            "the lookback delta must be positive, not {} ms",
            read.lookback_ms
        )));
    }
    let engine = Engine::new(EngineConfig {
        lookback_delta_ms: read.lookback_ms,
        max_samples: match read.samples_max {
            0 => raftwatch_promql::MAX_SAMPLES_DEFAULT,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        },
        // The node already refused what it does not enable.
        experimental_functions: true,
        ..EngineConfig::default()
    });
    let query = if read.step_ms == 0 {
        if read.start_ms != read.end_ms {
            return Err(ReadError::invalid(
                "an instant evaluation has start_ms equal to end_ms",
            ));
        }
        engine.instant_query(&read.expr, read.start_ms)
    } else {
        check_steps(read.start_ms, read.end_ms, read.step_ms)?;
        engine.range_query(&read.expr, read.start_ms, read.end_ms, read.step_ms)
    };
    let map = |e: QError| match e {
        QError::Parse(m) | QError::BadRequest(m) | QError::Execution(m) => ReadError::invalid(m),
        e @ QError::TooManySamples(_) => ReadError::new(ErrorCode::SamplesLimit, e.to_string()),
        e @ (QError::Canceled | QError::Storage(_)) => {
            ReadError::new(ErrorCode::Unavailable, e.to_string())
        }
    };
    let query = query.map_err(map)?;
    // Partial: names still to be removed travel as flags, for the node
    // to remove after it has combined every shard's part (Prometheus's
    // delayed name removal).
    let result = query
        .exec_partial(
            &TsdbSource { db },
            &std::sync::atomic::AtomicBool::new(false),
        )
        .map_err(map)?;
    let series: Vec<SeriesPb> = result
        .series
        .into_iter()
        .map(|s| SeriesPb {
            timestamps: s.points.iter().map(|p| p.0).collect(),
            values: s.points.iter().map(|p| p.1).collect(),
            labels: s
                .labels
                .into_pairs()
                .into_iter()
                .map(|(name, value)| LabelPb { name, value })
                .collect(),
        })
        .collect();
    if read.series_max > 0 && series.len() as u64 > read.series_max {
        return Err(series_limit(read.series_max));
    }
    Ok(ShardReadResult {
        series,
        warnings: result.annotations.warnings,
        infos: result.annotations.infos,
        drop_name: result.drop_name,
        ..Default::default()
    })
}

fn storage(e: raftwatch_tsdb::TsdbError) -> ReadError {
    ReadError::new(ErrorCode::Unavailable, e.to_string())
}

/// Label sets of the series [`Tsdb::select`] returns: those matching every
/// matcher whose samples span (first to newest sample) overlaps
/// `[start, end]`.
fn series<S: KvStore>(db: &Tsdb<S>, read: &ShardRead) -> Result<Vec<SeriesPb>, ReadError> {
    check_range(read.start_ms, read.end_ms)?;
    let matchers = matchers(&read.matchers)?;
    let selected = db.select(
        &matchers,
        TimestampMs(read.start_ms),
        TimestampMs(read.end_ms),
    );
    if read.series_max > 0 && selected.len() as u64 > read.series_max {
        return Err(series_limit(read.series_max));
    }
    Ok(selected
        .iter()
        .map(|e| SeriesPb {
            labels: labels_pb(&e.labels),
            ..Default::default()
        })
        .collect())
}

fn label_names<S: KvStore>(db: &Tsdb<S>, read: &ShardRead) -> Result<Vec<String>, ReadError> {
    check_range(read.start_ms, read.end_ms)?;
    let matchers = matchers(&read.matchers)?;
    let names = db.label_names(
        &matchers,
        TimestampMs(read.start_ms),
        TimestampMs(read.end_ms),
    );
    if read.series_max > 0 && names.len() as u64 > read.series_max {
        return Err(series_limit(read.series_max));
    }
    Ok(names)
}

fn label_values<S: KvStore>(db: &Tsdb<S>, read: &ShardRead) -> Result<Vec<String>, ReadError> {
    if read.label_name.is_empty() {
        return Err(ReadError::invalid("the label name is empty"));
    }
    check_range(read.start_ms, read.end_ms)?;
    let mut matchers = matchers(&read.matchers)?;
    // Only series with the label have a value: `name != ""` lets the index
    // narrow the selection without changing the answer.
    matchers.push(
        Matcher::new(MatchOp::NotEqual, read.label_name.clone(), "")
            .map_err(|e| ReadError::invalid(e.to_string()))?,
    );
    let values = db.label_values(
        &read.label_name,
        &matchers,
        TimestampMs(read.start_ms),
        TimestampMs(read.end_ms),
    );
    if read.series_max > 0 && values.len() as u64 > read.series_max {
        return Err(series_limit(read.series_max));
    }
    Ok(values)
}
