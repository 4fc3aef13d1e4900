//! The `Query` service's instant, range, series and label queries. A
//! request is checked and converted here, sent to every shard as a
//! `ShardRead` (`raftwatch_shard::query`, which evaluates it on one
//! replica: points, not raw samples, cross the network), and the answers
//! are merged. The limits and the timeout hold for the whole query, every
//! shard included; every answer says how it was served (`ReadInfo`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::try_join_all;
use prost::Message;
use raftwatch_control::ShardId;
use raftwatch_proto::v1 as pb;
use raftwatch_raft::ReadConsistency;
use raftwatch_raft::host::ReadResult;
use raftwatch_shard::codec as sc;
use raftwatch_shard::query::{self as sq, ErrorCode, QueryKind, ShardRead, ShardReadResult};
use tonic::Status;

use super::Node;

// ---- Limits ----

/// `SERIES_PER_QUERY_MAX`: series in one answer (label sets for `Series`,
/// names or values for the label queries, which never outnumber the series
/// they come from) unless the request asks for fewer. Over it:
/// `RESOURCE_EXHAUSTED`.
pub const SERIES_PER_QUERY_MAX: u64 = 100_000;
/// `SAMPLES_PER_QUERY_MAX`: points in one instant or range answer unless
/// the request asks for fewer (Prometheus's `--query.max-samples`
/// default). Over it: `RESOURCE_EXHAUSTED`.
pub const SAMPLES_PER_QUERY_MAX: u64 = 50_000_000;
/// `QUERY_TIMEOUT`: a whole query, from the shard list to the merged
/// answer, unless the request asks for less (Prometheus's
/// `--query.timeout` default). Past it: `DEADLINE_EXCEEDED`. A shard
/// already computing its part finishes it (bounded by the limits above):
/// the engine is synchronous and not interrupted.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(120);
/// `LOOKBACK_DELTA_MS_DEFAULT`: how far back an instant or range query
/// looks for a series' latest sample when the request does not say
/// (Prometheus's `--query.lookback-delta` default, 5 minutes).
pub const LOOKBACK_DELTA_MS_DEFAULT: i64 = 300_000;
/// `SHARD_ANSWER_BYTES_MAX`: one shard's encoded answer received from
/// another node (the `NodeInternal` server encodes at most as much; see
/// `api::routes`). A local replica's answer is not bounded by it. Over it:
/// `RESOURCE_EXHAUSTED`.
pub const SHARD_ANSWER_BYTES_MAX: usize = 32 << 20;

// Every series of an instant answer has one point: a series limit above
// the samples limit could never be reached.
const _: () = assert!(SERIES_PER_QUERY_MAX <= SAMPLES_PER_QUERY_MAX);
// A shard read retries other replicas for up to OPERATION_TIMEOUT; the
// query must leave it that long.
const _: () = assert!(QUERY_TIMEOUT.as_millis() > super::OPERATION_TIMEOUT.as_millis());
const _: () = assert!(LOOKBACK_DELTA_MS_DEFAULT > 0);

/// The limits one query runs under: the defaults, or lower ones the
/// request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Limits {
    series_max: u64,
    samples_max: u64,
    timeout: Duration,
}

impl Limits {
    /// 0, an absent field, or a value above the default means the default.
    fn of(asked: Option<&pb::QueryLimits>) -> Limits {
        let lower = |asked: u64, default: u64| match asked {
            0 => default,
            n => n.min(default),
        };
        let default_ms = QUERY_TIMEOUT.as_millis() as u64;
        let asked = asked.cloned().unwrap_or_default();
        Limits {
            series_max: lower(asked.series_max, SERIES_PER_QUERY_MAX),
            samples_max: lower(asked.samples_max, SAMPLES_PER_QUERY_MAX),
            timeout: Duration::from_millis(lower(asked.timeout_ms, default_ms)),
        }
    }
}

fn series_limit(n: u64) -> Status {
    Status::resource_exhausted(format!(
        "the query returns more than {n} series (the series limit)"
    ))
}

fn samples_limit(n: u64) -> Status {
    Status::resource_exhausted(format!(
        "the query returns more than {n} samples (the samples limit)"
    ))
}

// ---- The handlers ----

// Each records its duration and, when it fails, its status code in the
// node's metrics (`raftwatch_query_duration_seconds`,
// `raftwatch_query_errors_total`).

/// `instant` answers `Query.Instant` (query kind `instant` in the node's metrics).
pub(super) async fn instant(
    node: &Arc<Node>,
    req: pb::InstantRequest,
) -> Result<pb::InstantResponse, Status> {
    node.metrics
        .timed_query("instant", answer_instant(node, req))
        .await
}

/// `range` answers `Query.Range` (query kind `range` in the node's metrics).
pub(super) async fn range(
    node: &Arc<Node>,
    req: pb::RangeRequest,
) -> Result<pb::RangeResponse, Status> {
    node.metrics
        .timed_query("range", answer_range(node, req))
        .await
}

/// `series` answers `Query.Series` (query kind `series` in the node's metrics).
pub(super) async fn series(
    node: &Arc<Node>,
    req: pb::SeriesRequest,
) -> Result<pb::SeriesResponse, Status> {
    node.metrics
        .timed_query("series", answer_series(node, req))
        .await
}

/// `label_names` answers `Query.LabelNames` (query kind `labels` in the node's metrics).
pub(super) async fn label_names(
    node: &Arc<Node>,
    req: pb::LabelNamesRequest,
) -> Result<pb::LabelNamesResponse, Status> {
    node.metrics
        .timed_query("labels", answer_label_names(node, req))
        .await
}

/// `label_values` answers `Query.LabelValues` (query kind `label_values` in the node's metrics).
pub(super) async fn label_values(
    node: &Arc<Node>,
    req: pb::LabelValuesRequest,
) -> Result<pb::LabelValuesResponse, Status> {
    node.metrics
        .timed_query("label_values", answer_label_values(node, req))
        .await
}

async fn answer_instant(
    node: &Arc<Node>,
    req: pb::InstantRequest,
) -> Result<pb::InstantResponse, Status> {
    let read = ShardRead {
        kind: QueryKind::Instant.wire(),
        matchers: matchers(&req.matchers, Need::Selector)?,
        start_ms: req.time_ms,
        end_ms: req.time_ms,
        lookback_ms: lookback(req.lookback_delta_ms)?,
        ..Default::default()
    };
    let limits = Limits::of(req.limits.as_ref());
    let (answers, read) = fan_out(node, read, consistency(req.consistency)?, limits).await?;
    Ok(pb::InstantResponse {
        series: merge_points(answers, limits)?,
        read: Some(read),
    })
}

async fn answer_range(
    node: &Arc<Node>,
    req: pb::RangeRequest,
) -> Result<pb::RangeResponse, Status> {
    sq::check_steps(req.start_ms, req.end_ms, req.step_ms).map_err(invalid)?;
    let read = ShardRead {
        kind: QueryKind::Range.wire(),
        matchers: matchers(&req.matchers, Need::Selector)?,
        start_ms: req.start_ms,
        end_ms: req.end_ms,
        step_ms: req.step_ms,
        lookback_ms: lookback(req.lookback_delta_ms)?,
        ..Default::default()
    };
    let limits = Limits::of(req.limits.as_ref());
    let (answers, read) = fan_out(node, read, consistency(req.consistency)?, limits).await?;
    Ok(pb::RangeResponse {
        series: merge_points(answers, limits)?,
        read: Some(read),
    })
}

async fn answer_series(
    node: &Arc<Node>,
    req: pb::SeriesRequest,
) -> Result<pb::SeriesResponse, Status> {
    let (start_ms, end_ms) = time_range(req.start_ms, req.end_ms)?;
    let read = ShardRead {
        kind: QueryKind::Series.wire(),
        matchers: matchers(&req.matchers, Need::Selector)?,
        start_ms,
        end_ms,
        ..Default::default()
    };
    let limits = Limits::of(req.limits.as_ref());
    let (answers, read) = fan_out(node, read, consistency(req.consistency)?, limits).await?;
    let mut series: Vec<sc::SeriesPb> = answers.into_iter().flat_map(|a| a.series).collect();
    series.sort_by(|a, b| label_key(a).cmp(label_key(b)));
    // A series lives in one shard; this only guards a move's overlap.
    series.dedup_by(|a, b| a.labels == b.labels);
    if series.len() as u64 > limits.series_max {
        return Err(series_limit(limits.series_max));
    }
    Ok(pb::SeriesResponse {
        series: series
            .into_iter()
            .map(|s| pb::LabelSet {
                labels: labels(s.labels),
            })
            .collect(),
        read: Some(read),
    })
}

async fn answer_label_names(
    node: &Arc<Node>,
    req: pb::LabelNamesRequest,
) -> Result<pb::LabelNamesResponse, Status> {
    let (start_ms, end_ms) = time_range(req.start_ms, req.end_ms)?;
    let read = ShardRead {
        kind: QueryKind::LabelNames.wire(),
        matchers: matchers(&req.matchers, Need::Optional)?,
        start_ms,
        end_ms,
        ..Default::default()
    };
    let limits = Limits::of(req.limits.as_ref());
    let (answers, read) = fan_out(node, read, consistency(req.consistency)?, limits).await?;
    Ok(pb::LabelNamesResponse {
        names: merge_values(answers, limits)?,
        read: Some(read),
    })
}

async fn answer_label_values(
    node: &Arc<Node>,
    req: pb::LabelValuesRequest,
) -> Result<pb::LabelValuesResponse, Status> {
    if req.name.is_empty() {
        return Err(Status::invalid_argument("the label name is empty"));
    }
    let (start_ms, end_ms) = time_range(req.start_ms, req.end_ms)?;
    let read = ShardRead {
        kind: QueryKind::LabelValues.wire(),
        matchers: matchers(&req.matchers, Need::Optional)?,
        start_ms,
        end_ms,
        label_name: req.name,
        ..Default::default()
    };
    let limits = Limits::of(req.limits.as_ref());
    let (answers, read) = fan_out(node, read, consistency(req.consistency)?, limits).await?;
    Ok(pb::LabelValuesResponse {
        values: merge_values(answers, limits)?,
        read: Some(read),
    })
}

// ---- Checking and converting requests ----

fn invalid(e: sq::ReadError) -> Status {
    Status::invalid_argument(e.message)
}

fn consistency(c: i32) -> Result<ReadConsistency, Status> {
    match pb::Consistency::try_from(c) {
        Ok(pb::Consistency::Linearizable) => Ok(ReadConsistency::Linearizable),
        Ok(pb::Consistency::Stale) => Ok(ReadConsistency::Stale),
        Err(_) => Err(Status::invalid_argument(format!("unknown consistency {c}"))),
    }
}

fn lookback(ms: i64) -> Result<i64, Status> {
    match ms {
        0 => Ok(LOOKBACK_DELTA_MS_DEFAULT),
        ms if ms < 0 => Err(Status::invalid_argument(format!(
            "the lookback delta must not be negative, not {ms} ms"
        ))),
        ms => Ok(ms),
    }
}

/// An absent bound is unbounded, as Prometheus's label APIs.
fn time_range(start: Option<i64>, end: Option<i64>) -> Result<(i64, i64), Status> {
    let (start, end) = (start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX));
    sq::check_range(start, end).map_err(invalid)?;
    Ok((start, end))
}

/// Whether a query needs matchers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// A series selector: at least one matcher that does not match "".
    Selector,
    /// None, or else a series selector.
    Optional,
}

/// `matchers` checks and converts the request's matchers. Like
/// Prometheus, a selector must hold a matcher that refuses the empty
/// string: otherwise it would select every series there is.
pub(crate) fn matchers(pbs: &[pb::LabelMatcher], need: Need) -> Result<Vec<sc::MatcherPb>, Status> {
    if pbs.is_empty() && need == Need::Optional {
        return Ok(vec![]);
    }
    let mut out = Vec::with_capacity(pbs.len());
    for m in pbs {
        let op = match pb::MatchType::try_from(m.r#type) {
            Ok(pb::MatchType::MatchEqual) => 0,
            Ok(pb::MatchType::MatchNotEqual) => 1,
            Ok(pb::MatchType::MatchRegex) => 2,
            Ok(pb::MatchType::MatchNotRegex) => 3,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown match type {}",
                    m.r#type
                )));
            }
        };
        out.push(sc::MatcherPb {
            op,
            name: m.name.clone(),
            value: m.value.clone(),
        });
    }
    // Compiled here too, so a bad regex is the caller's error before any
    // shard is asked.
    let compiled = sq::matchers(&out).map_err(invalid)?;
    if compiled.iter().all(|m| m.matches_empty()) {
        return Err(Status::invalid_argument(
            "vector selector must contain at least one non-empty matcher",
        ));
    }
    Ok(out)
}

// ---- Fan-out and merge ----

fn wire_consistency(c: ReadConsistency) -> pb::Consistency {
    match c {
        ReadConsistency::Linearizable => pb::Consistency::Linearizable,
        ReadConsistency::Stale => pb::Consistency::Stale,
    }
}

/// `within` runs `work` for at most `timeout`; past it, `DEADLINE_EXCEEDED`
/// naming the limit (dropping `work` cancels the shard reads in flight).
async fn within<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "the query did not finish within {} ms (the query timeout)",
            timeout.as_millis()
        ))),
    }
}

/// `eval` sends a pushed-down PromQL evaluation (`ShardRead` kind eval)
/// to every shard at `consistency` under the samples limit, and returns
/// every shard's answer with how they were served.
pub(super) async fn eval(
    node: &Arc<Node>,
    read: ShardRead,
    consistency: ReadConsistency,
    samples_max: u64,
    timeout: Duration,
) -> Result<(Vec<ShardReadResult>, pb::ReadInfo), Status> {
    let limits = Limits {
        series_max: SERIES_PER_QUERY_MAX,
        samples_max,
        timeout,
    };
    fan_out(node, read, consistency, limits).await
}

/// `fan_out` sends `read` (with the query's limits: each shard refuses
/// when its part alone exceeds one) to every shard at `consistency` and
/// returns their answers with how they were served. The first shard to
/// fail fails the query, and the others' reads are dropped.
async fn fan_out(
    node: &Arc<Node>,
    mut read: ShardRead,
    consistency: ReadConsistency,
    limits: Limits,
) -> Result<(Vec<ShardReadResult>, pb::ReadInfo), Status> {
    read.series_max = limits.series_max;
    read.samples_max = limits.samples_max;
    let kind = read.kind;
    let work = shard_reads(node, read.encode_to_vec(), consistency, |shard, r| {
        shard_answer(shard, kind, r)
    });
    within(limits.timeout, work).await
}

/// `shard_reads` sends the encoded shard request `bytes` to every shard
/// of the shard list at `consistency` (a local replica when there is one,
/// else a remote one), decodes each answer with `decode`, and returns them
/// in shard order with how they were served. The first shard to fail fails
/// the read, and the others' reads are dropped. No timeout of its own: the
/// caller bounds the whole query.
async fn shard_reads<T>(
    node: &Arc<Node>,
    bytes: Vec<u8>,
    consistency: ReadConsistency,
    decode: impl Fn(ShardId, &ReadResult) -> Result<T, Status>,
) -> Result<(Vec<T>, pb::ReadInfo), Status> {
    let state = node.shard_list_state(consistency).await?;
    let decode = &decode;
    let calls = state.shards.keys().map(|&shard| {
        let bytes = bytes.clone();
        async move {
            let r = node
                .group_read_with_index(
                    shard.group(),
                    bytes,
                    consistency,
                    &node.shard_candidates(shard),
                )
                .await
                .map_err(|s| read_failed(shard, s))?;
            let answer = decode(shard, &r)?;
            Ok::<_, Status>((shard, answer, r))
        }
    });
    let answers = try_join_all(calls).await?;
    let shards: Vec<pb::ShardReadInfo> = answers
        .iter()
        .map(|(shard, _, r)| shard_read_info(*shard, r))
        .collect();
    let info = read_info(consistency, shards);
    Ok((answers.into_iter().map(|(_, a, _)| a).collect(), info))
}

/// `read_info` is the `ReadInfo` of an answer built from `shards`: its
/// minimum applied index runs over every shard, a replica that has
/// applied nothing counting as 0 (skipping it would claim more than the
/// answer reflects), and its largest lag likewise.
pub(super) fn read_info(
    consistency: ReadConsistency,
    shards: Vec<pb::ShardReadInfo>,
) -> pb::ReadInfo {
    pb::ReadInfo {
        consistency: wire_consistency(consistency) as i32,
        min_applied_index: shards.iter().map(|s| s.applied_index).min().unwrap_or(0),
        max_lag_entries: shards.iter().map(|s| s.lag_entries).max().unwrap_or(0),
        shards,
    }
}

/// `select` reads the raw samples (staleness markers included) of the
/// series matching every matcher of `query` in `[start_ms, end_ms]` from
/// every shard at `consistency`: a `ShardQuery`, answered by the shard
/// state machine's select path. The series come back sorted by labels.
/// A shard over `query.samples_max` refuses with `RESOURCE_EXHAUSTED`
/// whose message holds [`sc::SAMPLES_LIMIT_REFUSAL`]; a replica that
/// cannot answer, with `UNAVAILABLE`. The caller has checked the matchers.
pub(super) async fn select(
    node: &Arc<Node>,
    query: sc::ShardQuery,
    consistency: ReadConsistency,
) -> Result<(Vec<sc::SeriesPb>, pb::ReadInfo), Status> {
    let (answers, info) =
        shard_reads(node, query.encode_to_vec(), consistency, select_answer).await?;
    let mut series: Vec<sc::SeriesPb> = answers.into_iter().flatten().collect();
    series.sort_by(|a, b| label_key(a).cmp(label_key(b)));
    // A series lives in one shard; this only guards a move's overlap.
    series.dedup_by(|a, b| a.labels == b.labels);
    Ok((series, info))
}

/// `select_answer` decodes one shard's answer to a `ShardQuery` and maps
/// its refusal: a limit is the caller's (`RESOURCE_EXHAUSTED`); anything
/// else — a failed replica, a storage error — may pass on another replica
/// or later (`UNAVAILABLE`), since the node checked the request first.
fn select_answer(shard: ShardId, r: &ReadResult) -> Result<Vec<sc::SeriesPb>, Status> {
    let a = sc::ShardQueryResult::decode(r.response.as_slice())
        .map_err(|e| Status::internal(format!("shard {shard} answer: {e}")))?;
    if a.error.is_empty() {
        return Ok(a.series);
    }
    let message = format!("shard {shard}: {}", a.error);
    if a.error.contains("more than the limit of") {
        Err(Status::resource_exhausted(message))
    } else {
        Err(Status::unavailable(message))
    }
}

/// How one shard's part was served: the log position its answer reflects
/// and, for a stale read, how many committed entries the replica knew of
/// but had not applied (a lower bound on how far behind it was).
fn shard_read_info(shard: ShardId, r: &ReadResult) -> pb::ShardReadInfo {
    let applied = r.applied_index.unwrap_or(0);
    let known = r.known_commit_index.unwrap_or(0).max(applied);
    pb::ShardReadInfo {
        shard: shard.0,
        applied_index: applied,
        read_index: r.read_index.unwrap_or(0),
        known_commit_index: known,
        // A linearizable answer reflects every write acknowledged before
        // the read began, whatever was committed since.
        lag_entries: if r.read_index.is_some() {
            0
        } else {
            known - applied
        },
    }
}

/// A shard read that failed in transport: an answer too large to receive
/// is over a limit; anything else passes through.
fn read_failed(shard: ShardId, s: Status) -> Status {
    if s.code() == tonic::Code::OutOfRange {
        return Status::resource_exhausted(format!(
            "shard {shard}: its answer is larger than {SHARD_ANSWER_BYTES_MAX} bytes \
             (the shard answer limit): {}",
            s.message()
        ));
    }
    s
}

/// `shard_answer` decodes one shard's answer and maps its refusal.
fn shard_answer(shard: ShardId, kind: u32, r: &ReadResult) -> Result<ShardReadResult, Status> {
    let a = ShardReadResult::decode(r.response.as_slice())
        .map_err(|e| Status::internal(format!("shard {shard} answer: {e}")))?;
    if a.kind != kind {
        // An older replica ignored the kind and answered a raw select.
        return Err(Status::unavailable(format!(
            "shard {shard}: the replica that answered does not support query kind {kind}"
        )));
    }
    let message = |e: &str| format!("shard {shard}: {e}");
    match ErrorCode::from_wire(a.error_code) {
        ErrorCode::None => Ok(a),
        ErrorCode::InvalidArgument => Err(Status::invalid_argument(message(&a.error))),
        ErrorCode::SeriesLimit | ErrorCode::SamplesLimit => {
            Err(Status::resource_exhausted(message(&a.error)))
        }
        ErrorCode::Unavailable | ErrorCode::Unsupported => {
            Err(Status::unavailable(message(&a.error)))
        }
    }
}

fn label_key(s: &sc::SeriesPb) -> impl Iterator<Item = (&str, &str)> + '_ {
    s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str()))
}

fn labels(ls: Vec<sc::LabelPb>) -> Vec<pb::Label> {
    ls.into_iter()
        .map(|l| pb::Label {
            name: l.name,
            value: l.value,
        })
        .collect()
}

/// Every shard's series with their points, sorted by labels; the limits
/// hold over the sum.
fn merge_points(answers: Vec<ShardReadResult>, limits: Limits) -> Result<Vec<pb::Series>, Status> {
    let mut all: Vec<sc::SeriesPb> = answers.into_iter().flat_map(|a| a.series).collect();
    if all.len() as u64 > limits.series_max {
        return Err(series_limit(limits.series_max));
    }
    let samples: u64 = all.iter().map(|s| s.timestamps.len() as u64).sum();
    if samples > limits.samples_max {
        return Err(samples_limit(limits.samples_max));
    }
    all.sort_by(|a, b| label_key(a).cmp(label_key(b)));
    Ok(all
        .into_iter()
        .map(|s| pb::Series {
            samples: s
                .timestamps
                .iter()
                .zip(&s.values)
                .map(|(&timestamp_ms, &value)| pb::Sample {
                    timestamp_ms,
                    value,
                })
                .collect(),
            labels: labels(s.labels),
        })
        .collect())
}

/// The union of every shard's names or values, sorted; the series limit
/// holds over it.
fn merge_values(answers: Vec<ShardReadResult>, limits: Limits) -> Result<Vec<String>, Status> {
    let all: BTreeSet<String> = answers.into_iter().flat_map(|a| a.values).collect();
    if all.len() as u64 > limits.series_max {
        return Err(series_limit(limits.series_max));
    }
    Ok(all.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(t: pb::MatchType, name: &str, value: &str) -> pb::LabelMatcher {
        pb::LabelMatcher {
            r#type: t as i32,
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn a_request_may_lower_its_limits_but_not_raise_them() {
        let d = Limits::of(None);
        assert_eq!(
            d,
            Limits {
                series_max: SERIES_PER_QUERY_MAX,
                samples_max: SAMPLES_PER_QUERY_MAX,
                timeout: QUERY_TIMEOUT,
            }
        );
        let asked = pb::QueryLimits {
            series_max: 5,
            samples_max: u64::MAX,
            timeout_ms: 0,
        };
        let l = Limits::of(Some(&asked));
        assert_eq!(l.series_max, 5);
        assert_eq!(l.samples_max, SAMPLES_PER_QUERY_MAX);
        assert_eq!(l.timeout, QUERY_TIMEOUT);
    }

    #[test]
    fn selectors_need_a_matcher_that_refuses_the_empty_string() {
        use pb::MatchType::*;
        let err = |ms: &[pb::LabelMatcher], need| matchers(ms, need).unwrap_err();
        for ms in [
            vec![],
            vec![m(MatchEqual, "job", "")],
            vec![m(MatchRegex, "job", ".*"), m(MatchNotEqual, "x", "y")],
        ] {
            let e = err(&ms, Need::Selector);
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(
                e.message().contains("at least one non-empty matcher"),
                "{e}"
            );
        }
        assert_eq!(matchers(&[], Need::Optional).unwrap(), vec![]);
        let e = err(&[m(MatchEqual, "job", "")], Need::Optional);
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let e = err(&[m(MatchRegex, "job", "(")], Need::Selector);
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("regular expression"), "{e}");
        let ok = matchers(
            &[m(MatchRegex, "job", ".*"), m(MatchNotRegex, "x", "")],
            Need::Selector,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        let e = err(
            &[pb::LabelMatcher {
                r#type: 9,
                name: "a".into(),
                value: "b".into(),
            }],
            Need::Selector,
        );
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn bad_times_are_invalid() {
        assert_eq!(time_range(None, None).unwrap(), (i64::MIN, i64::MAX));
        assert_eq!(
            time_range(Some(5), Some(4)).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(lookback(0).unwrap(), LOOKBACK_DELTA_MS_DEFAULT);
        assert_eq!(
            lookback(-1).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[tokio::test]
    async fn a_query_past_its_timeout_is_deadline_exceeded() {
        let e = within(
            Duration::from_millis(10),
            std::future::pending::<Result<(), Status>>(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded);
        assert!(e.message().contains("query timeout"), "{e}");
    }

    fn points(labels: &[(&str, &str)], n: usize) -> sc::SeriesPb {
        sc::SeriesPb {
            labels: labels
                .iter()
                .map(|(n, v)| sc::LabelPb {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            timestamps: (0..n as i64).collect(),
            values: vec![1.0; n],
        }
    }

    #[test]
    fn merged_answers_are_sorted_and_limited_over_all_shards() {
        let answers = || {
            vec![
                ShardReadResult {
                    series: vec![points(&[("a", "2")], 3)],
                    values: vec!["x".into(), "z".into()],
                    ..Default::default()
                },
                ShardReadResult {
                    series: vec![points(&[("a", "1")], 2), points(&[("b", "0")], 1)],
                    values: vec!["x".into(), "y".into()],
                    ..Default::default()
                },
            ]
        };
        let limits = |series_max, samples_max| Limits {
            series_max,
            samples_max,
            timeout: QUERY_TIMEOUT,
        };
        let s = merge_points(answers(), limits(3, 6)).unwrap();
        let firsts: Vec<&str> = s.iter().map(|s| s.labels[0].value.as_str()).collect();
        assert_eq!(firsts, vec!["1", "2", "0"]);
        let e = merge_points(answers(), limits(2, 6)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("series limit"), "{e}");
        let e = merge_points(answers(), limits(3, 5)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("samples limit"), "{e}");
        assert_eq!(
            merge_values(answers(), limits(3, 0)).unwrap(),
            ["x", "y", "z"]
        );
        let e = merge_values(answers(), limits(2, 0)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    }

    #[test]
    fn read_info_counts_a_replica_that_applied_nothing() {
        let r = ReadResult {
            response: Vec::new(),
            applied_index: None,
            read_index: None,
            known_commit_index: Some(2),
        };
        let caught_up = ReadResult {
            applied_index: Some(2),
            ..r.clone()
        };
        let shards = vec![
            shard_read_info(ShardId(1), &r),
            shard_read_info(ShardId(2), &caught_up),
        ];
        let info = read_info(ReadConsistency::Stale, shards);
        assert_eq!((info.min_applied_index, info.max_lag_entries), (0, 2));
        assert_eq!(info.shards[0].lag_entries, 2);
        assert_eq!(info.consistency, pb::Consistency::Stale as i32);
    }
}
