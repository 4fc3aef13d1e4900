//! PromQL on the node: plan → fetch every planned selection from the
//! shards → evaluate here.
//!
//! The evaluator (`raftwatch-promql`) is synchronous and I/O-free: it
//! plans a query into the selections it will make
//! ([`raftwatch_promql::Query::selects`]), and evaluates over a
//! [`Queryable`]. This module is the node's side: it fetches each
//! selection with one fan-out to every shard at the requested consistency
//! (raw samples, staleness markers included: the select path of
//! `query.rs`), all selections at once, under the query's samples limit
//! and timeout; then it evaluates on a blocking thread over what it
//! fetched ([`Prefetched`]), with a cancel flag that is set when the
//! timeout passes or the caller's future is dropped. (A gRPC client that
//! cancels drops it; hyper's HTTP/1 server does not notice a client that
//! disconnects while the handler runs, so an HTTP query runs on to its
//! timeout. The evaluator reads the flag once per expression node.)
//!
//! Both the HTTP API (`prom_api.rs`) and gRPC `Query.Promql` come here; the
//! errors carry Prometheus's error types ([`QueryError`]), mapped to HTTP
//! and gRPC in one place each.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use raftwatch_model::MatchOp;
use raftwatch_promql::{
    Engine, EngineConfig, Labels, PushdownAnswer, PushdownRequest, Query, QueryResult, Queryable,
    RawSeries, SelectRequest, Series, Value,
};
use raftwatch_proto::v1 as pb;
use raftwatch_raft::ReadConsistency;
use raftwatch_shard::codec as sc;
use raftwatch_shard::query::{ShardRead, ShardReadResult};
use tonic::{Code, Status};

use super::Node;

/// `ERROR_TYPE_KEY` is the gRPC metadata key of a failed `Query.Promql`
/// call's Prometheus error type (`bad_data`, `execution`, ...).
pub const ERROR_TYPE_KEY: &str = "raftwatch-error-type";

// ---- Errors ----

/// `ErrorType` is Prometheus's `errorType` of a failed query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorType {
    /// The request is malformed: parameters, the expression (400).
    BadData,
    /// The query cannot be evaluated on this data, or is over a limit (422).
    Execution,
    /// Past the query timeout (503).
    Timeout,
    /// The caller went away (499, as Prometheus).
    Canceled,
    /// A fault of ours (500).
    Internal,
    /// A shard could not answer; a retry can succeed (503).
    Unavailable,
}

impl ErrorType {
    /// `name` is the `errorType` string.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
        }
    }

    /// `http_status` is Prometheus's HTTP status for the type, but for
    /// `unavailable`: Prometheus answers 500 (its default), we answer 503,
    /// which tells clients that a retry can succeed.
    pub(crate) fn http_status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            // Prometheus's statusClientClosedConnection (nginx's 499);
            // the client never sees it.
            ErrorType::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// `QueryError` is a failed PromQL query: Prometheus's error type, the
/// gRPC code that goes with it, and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueryError {
    pub(crate) typ: ErrorType,
    code: Code,
    pub(crate) message: String,
}

impl QueryError {
    pub(crate) fn bad_data(message: impl Into<String>) -> QueryError {
        QueryError {
            typ: ErrorType::BadData,
            code: Code::InvalidArgument,
            message: message.into(),
        }
    }

    /// `from_engine` maps an evaluator error.
    fn from_engine(e: raftwatch_promql::Error) -> QueryError {
        use raftwatch_promql::Error as E;
        let (typ, code) = match &e {
            E::Parse(_) | E::BadRequest(_) => (ErrorType::BadData, Code::InvalidArgument),
            E::Execution(_) => (ErrorType::Execution, Code::InvalidArgument),
            E::TooManySamples(_) => (ErrorType::Execution, Code::ResourceExhausted),
            E::Canceled => (ErrorType::Canceled, Code::Cancelled),
            E::Storage(_) => (ErrorType::Internal, Code::Internal),
        };
        QueryError {
            typ,
            code,
            message: e.to_string(),
        }
    }

    /// `from_status` maps a failed shard read. A shard over the samples
    /// limit is the evaluator's own "too many samples" error.
    pub(crate) fn from_status(s: &Status) -> QueryError {
        let (typ, code) = match s.code() {
            Code::InvalidArgument => (ErrorType::BadData, Code::InvalidArgument),
            Code::ResourceExhausted if s.message().contains(sc::SAMPLES_LIMIT_REFUSAL) => {
                return too_many_samples();
            }
            Code::ResourceExhausted => (ErrorType::Execution, Code::ResourceExhausted),
            Code::DeadlineExceeded => (ErrorType::Timeout, Code::DeadlineExceeded),
            Code::Unavailable
            | Code::Cancelled
            | Code::Unknown
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::Aborted => (ErrorType::Unavailable, Code::Unavailable),
            _ => (ErrorType::Internal, Code::Internal),
        };
        QueryError {
            typ,
            code,
            message: s.message().to_string(),
        }
    }

    /// `with_prefix` puts `prefix` before the message (the HTTP API's
    /// `invalid parameter "query": `).
    pub(crate) fn with_prefix(mut self, prefix: &str) -> QueryError {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    /// `to_status` is the gRPC status, with the error type in
    /// [`ERROR_TYPE_KEY`].
    pub(crate) fn to_status(&self) -> Status {
        let mut s = Status::new(self.code, self.message.clone());
        if let Ok(v) = self.typ.name().parse() {
            s.metadata_mut().insert(ERROR_TYPE_KEY, v);
        }
        s
    }
}

fn too_many_samples() -> QueryError {
    QueryError::from_engine(raftwatch_promql::Error::TooManySamples("query execution"))
}

fn timed_out(timeout: Duration) -> QueryError {
    QueryError {
        typ: ErrorType::Timeout,
        code: Code::DeadlineExceeded,
        message: format!(
            "query timed out in query execution (the query timeout is {} ms)",
            timeout.as_millis()
        ),
    }
}

// ---- Planning ----

/// When a query is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Times {
    /// At one time, ms.
    Instant(i64),
    /// At `start_ms`, `start_ms + step_ms`, ... up to `end_ms` inclusive.
    Range {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

/// `Request` is a PromQL query as the API edges hand it over, checked for
/// form but not yet parsed.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) expr: String,
    pub(crate) times: Times,
    /// `None`: the engine's default (5 minutes); else > 0.
    pub(crate) lookback_delta_ms: Option<i64>,
    pub(crate) consistency: ReadConsistency,
    /// A lower timeout than the node's, if the request asked for one.
    pub(crate) timeout: Option<Duration>,
    /// A lower samples limit than the node's, if the request asked for one.
    pub(crate) samples_max: Option<usize>,
    /// Let the shards evaluate what they can (`raftwatch_promql`'s
    /// push-down); `false` fetches raw samples for everything (the
    /// `pushdown=false` API parameter, for comparison).
    pub(crate) pushdown: bool,
}

/// `Planned` is a parsed and planned query with the limits it runs under.
#[derive(Debug)]
pub(crate) struct Planned {
    query: Query,
    consistency: ReadConsistency,
    samples_max: usize,
    timeout: Duration,
}

/// `plan` parses and plans `req` under the node's limits, lowered by the
/// request's. Errors are the engine's (`bad_data`).
pub(crate) fn plan(node: &Node, req: &Request) -> Result<Planned, QueryError> {
    let samples_max = req.samples_max.map_or(node.config.query_max_samples, |n| {
        n.min(node.config.query_max_samples)
    });
    let node_timeout = Duration::from_millis(node.config.query_timeout_ms);
    let timeout = req.timeout.map_or(node_timeout, |t| t.min(node_timeout));
    let config = EngineConfig {
        lookback_delta_ms: req
            .lookback_delta_ms
            .unwrap_or(raftwatch_promql::LOOKBACK_DELTA_MS_DEFAULT),
        max_samples: samples_max,
        pushdown: req.pushdown,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config);
    let query = match req.times {
        Times::Instant(t) => engine.instant_query(&req.expr, t),
        Times::Range {
            start_ms,
            end_ms,
            step_ms,
        } => engine.range_query(&req.expr, start_ms, end_ms, step_ms),
    }
    .map_err(QueryError::from_engine)?;
    Ok(Planned {
        query,
        consistency: req.consistency,
        samples_max,
        timeout,
    })
}

// ---- Fetching and evaluating ----

/// `Answer` is an evaluated query and how its data was read.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) result: QueryResult,
    pub(crate) read: pb::ReadInfo,
}

/// Sets the flag when dropped: when the query finishes, times out, or its
/// caller's future is dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `execute` fetches every selection of `planned` and evaluates it, all
/// within its timeout.
pub(crate) async fn execute(node: &Arc<Node>, planned: Planned) -> Result<Answer, QueryError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let timeout = planned.timeout;
    let work = async {
        let (data, read) = fetch(node, &planned).await?;
        let Planned { query, .. } = planned;
        let flag = cancel.clone();
        // The evaluation is synchronous and may be long: off the runtime's
        // worker threads. It stops at its next step once `flag` is set.
        // Under the simulator it runs here (no real threads there).
        let result = if node.evaluate_inline {
            query.exec(&data, &flag)
        } else {
            raftwatch_raft::rt::spawn_blocking(move || query.exec(&data, &flag))
                .await
                .map_err(|e| QueryError {
                    typ: ErrorType::Internal,
                    code: Code::Internal,
                    message: format!("the evaluation failed: {e}"),
                })?
        }
        .map_err(QueryError::from_engine)?;
        Ok(Answer { result, read })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(timeout)),
    }
}

/// `fetch` reads every planned selection (identical ones once), all
/// concurrently, each from every shard at the query's consistency, and
/// holds them for the evaluation. Over the samples limit — one shard's
/// part or the sum — it is the evaluator's "too many samples" error.
async fn fetch(
    node: &Arc<Node>,
    planned: &Planned,
) -> Result<(Prefetched, pb::ReadInfo), QueryError> {
    let selects = planned.query.selects();
    // Distinct selections, and how many planned selections each serves.
    let mut distinct: Vec<(&SelectRequest, usize)> = Vec::new();
    for s in selects {
        match distinct.iter_mut().find(|(d, _)| same_select(d, s)) {
            Some((_, uses)) => *uses += 1,
            None => distinct.push((s, 1)),
        }
    }
    let samples_max = u64::try_from(planned.samples_max).unwrap_or(u64::MAX);
    let reads = distinct.iter().map(|(s, _)| {
        let query = sc::ShardQuery {
            matchers: s.matchers.iter().map(matcher_pb).collect(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            series_max: 0,
            samples_max,
        };
        super::query::select(node, query, planned.consistency)
    });
    // Push-downs: every shard evaluates its part; only their points
    // travel.
    let evals = planned.query.pushdowns().iter().map(|p| {
        let read = ShardRead::pushdown(p);
        // The query's own timeout (around the whole of `execute`) answers
        // first; this one only bounds the fan-out as every read is.
        let bound = Duration::from_millis(node.config.query_timeout_ms) + Duration::from_secs(1);
        super::query::eval(node, read, planned.consistency, samples_max, bound)
    });
    let (answers, evals) = futures::future::try_join(
        futures::future::try_join_all(reads),
        futures::future::try_join_all(evals),
    )
    .await
    .map_err(|s| QueryError::from_status(&s))?;
    let total: u64 = answers
        .iter()
        .flat_map(|(series, _)| series.iter().map(|s| s.timestamps.len() as u64))
        .chain(evals.iter().flat_map(|(parts, _)| {
            parts
                .iter()
                .flat_map(|p| p.series.iter().map(|s| s.timestamps.len() as u64))
        }))
        .sum();
    if total > samples_max {
        return Err(too_many_samples());
    }
    let mut infos = Vec::with_capacity(answers.len() + evals.len());
    let mut pushed = Vec::with_capacity(evals.len());
    for (req, (parts, info)) in planned.query.pushdowns().iter().zip(evals) {
        infos.push(info);
        pushed.push((req.clone(), Mutex::new(Some(pushdown_answer(parts)))));
    }
    let mut entries = Vec::with_capacity(answers.len());
    for ((req, uses), (series, info)) in distinct.into_iter().zip(answers) {
        infos.push(info);
        entries.push(Entry {
            req: req.clone(),
            uses: Mutex::new((uses, Some(series.into_iter().map(raw_series).collect()))),
        });
    }
    Ok((
        Prefetched { entries, pushed },
        merge_read_infos(planned.consistency, infos),
    ))
}

/// Every shard's answer to one push-down, as the evaluator takes it.
fn pushdown_answer(parts: Vec<ShardReadResult>) -> PushdownAnswer {
    let mut a = PushdownAnswer::default();
    for p in parts {
        let n = p.series.len();
        let mut flags = p.drop_name;
        flags.resize(n, false);
        a.drop_name.extend(flags);
        a.series.extend(p.series.into_iter().map(|s| Series {
            labels: Labels::new(s.labels.into_iter().map(|l| (l.name, l.value)).collect()),
            points: s.timestamps.into_iter().zip(s.values).collect(),
        }));
        a.annotations.warnings.extend(p.warnings);
        a.annotations.infos.extend(p.infos);
    }
    a
}

fn same_select(a: &SelectRequest, b: &SelectRequest) -> bool {
    a.start_ms == b.start_ms && a.end_ms == b.end_ms && a.matchers == b.matchers
}

fn matcher_pb(m: &raftwatch_model::Matcher) -> sc::MatcherPb {
    sc::MatcherPb {
        op: match m.op() {
            MatchOp::Equal => 0,
            MatchOp::NotEqual => 1,
            MatchOp::RegexMatch => 2,
            MatchOp::RegexNoMatch => 3,
        },
        name: m.name().to_string(),
        value: m.value().to_string(),
    }
}

fn raw_series(s: sc::SeriesPb) -> RawSeries {
    RawSeries {
        labels: Labels::new(s.labels.into_iter().map(|l| (l.name, l.value)).collect()),
        samples: s.timestamps.into_iter().zip(s.values).collect(),
    }
}

/// One read per shard and selection, as one `ReadInfo`: each shard's
/// entry is its least advanced answer (lowest applied index), with the
/// largest lag any of its answers reported.
fn merge_read_infos(consistency: ReadConsistency, infos: Vec<pb::ReadInfo>) -> pb::ReadInfo {
    let mut by_shard: std::collections::BTreeMap<u64, pb::ShardReadInfo> = Default::default();
    for s in infos.into_iter().flat_map(|i| i.shards) {
        match by_shard.get_mut(&s.shard) {
            None => {
                by_shard.insert(s.shard, s);
            }
            Some(have) => {
                let lag = have.lag_entries.max(s.lag_entries);
                if s.applied_index < have.applied_index {
                    *have = s;
                }
                have.lag_entries = lag;
            }
        }
    }
    super::query::read_info(consistency, by_shard.into_values().collect())
}

/// One fetched selection: the request, and its series until the last of
/// the planned selections it serves has taken them.
#[derive(Debug)]
struct Entry {
    req: SelectRequest,
    /// (planned selections not yet answered, the series).
    uses: Mutex<(usize, Option<Vec<RawSeries>>)>,
}

/// `Prefetched` is the [`Queryable`] over what [`fetch`] read. The
/// evaluator asks for each planned selection once (it caches by
/// selector), so the last ask takes the series instead of copying them:
/// the fetched samples are held once, not twice.
#[derive(Debug)]
pub(crate) struct Prefetched {
    entries: Vec<Entry>,
    /// The push-downs' answers, each taken once.
    pushed: Vec<(PushdownRequest, Mutex<Option<PushdownAnswer>>)>,
}

impl Queryable for Prefetched {
    fn pushdown(
        &self,
        req: &PushdownRequest,
    ) -> Result<Option<PushdownAnswer>, raftwatch_promql::Error> {
        // Identical push-downs were each fetched: take the first one
        // not yet taken.
        for (r, slot) in &self.pushed {
            if r != req {
                continue;
            }
            let mut slot = slot
                .lock()
                .map_err(|_| raftwatch_promql::Error::Storage("poisoned".into()))?;
            if let Some(a) = slot.take() {
                return Ok(Some(a));
            }
        }
        Err(raftwatch_promql::Error::Storage(
            "internal error: a push-down was not fetched or was read twice".into(),
        ))
    }

    fn select(&self, req: &SelectRequest) -> Result<Vec<RawSeries>, raftwatch_promql::Error> {
        let not_fetched = || {
            raftwatch_promql::Error::Storage(format!(
                "internal error: a selection was not fetched or was read twice \
                 ({} .. {} ms)",
                req.start_ms, req.end_ms
            ))
        };
        let entry = self
            .entries
            .iter()
            .find(|e| same_select(&e.req, req))
            .ok_or_else(not_fetched)?;
        let mut slot = entry
            .uses
            .lock()
            .map_err(|_| raftwatch_promql::Error::Storage("poisoned".into()))?;
        let (uses, series) = &mut *slot;
        match *uses {
            0 => Err(not_fetched()),
            1 => {
                *uses = 0;
                series.take().ok_or_else(not_fetched)
            }
            _ => {
                *uses -= 1;
                series.clone().ok_or_else(not_fetched)
            }
        }
    }
}

// ---- gRPC ----

/// `grpc` answers `Query.Promql`.
pub(crate) async fn grpc(
    node: &Arc<Node>,
    req: pb::PromqlRequest,
) -> Result<pb::PromqlResponse, QueryError> {
    let times = match &req.range {
        Some(r) => Times::Range {
            start_ms: r.start_ms,
            end_ms: r.end_ms,
            step_ms: r.step_ms,
        },
        None => Times::Instant(req.time_ms.unwrap_or_else(|| node.clock.now_wall().0)),
    };
    let lookback_delta_ms = match req.lookback_delta_ms {
        0 => None,
        ms if ms < 0 => {
            return Err(QueryError::bad_data(format!(
                "the lookback delta must not be negative, not {ms} ms"
            )));
        }
        ms => Some(ms),
    };
    let consistency = match pb::Consistency::try_from(req.consistency) {
        Ok(pb::Consistency::Linearizable) => ReadConsistency::Linearizable,
        Ok(pb::Consistency::Stale) => ReadConsistency::Stale,
        Err(_) => {
            return Err(QueryError::bad_data(format!(
                "unknown consistency {}",
                req.consistency
            )));
        }
    };
    let limits = req.limits.unwrap_or_default();
    let request = Request {
        expr: req.expr,
        times,
        lookback_delta_ms,
        consistency,
        timeout: (limits.timeout_ms > 0).then(|| Duration::from_millis(limits.timeout_ms)),
        samples_max: (limits.samples_max > 0)
            .then(|| usize::try_from(limits.samples_max).unwrap_or(usize::MAX)),
        pushdown: true,
    };
    let planned = plan(node, &request)?;
    let answer = execute(node, planned).await?;
    Ok(response(answer))
}

fn label_pbs(labels: Labels) -> Vec<pb::Label> {
    labels
        .into_pairs()
        .into_iter()
        .map(|(name, value)| pb::Label { name, value })
        .collect()
}

fn response(answer: Answer) -> pb::PromqlResponse {
    let QueryResult {
        value,
        annotations,
        samples_read,
    } = answer.result;
    let mut out = pb::PromqlResponse {
        result_type: value.type_name().to_string(),
        warnings: annotations.warnings,
        infos: annotations.infos,
        read: Some(answer.read),
        samples_read,
        ..Default::default()
    };
    match value {
        Value::Scalar { t, v } => {
            out.scalar = Some(pb::Sample {
                timestamp_ms: t,
                value: v,
            });
        }
        Value::String { t, s } => {
            out.string = Some(pb::PromqlString {
                timestamp_ms: t,
                value: s,
            });
        }
        Value::Vector(samples) => {
            out.series = samples
                .into_iter()
                .map(|s| pb::Series {
                    labels: label_pbs(s.labels),
                    samples: vec![pb::Sample {
                        timestamp_ms: s.t,
                        value: s.v,
                    }],
                })
                .collect();
        }
        Value::Matrix(series) => {
            out.series = series
                .into_iter()
                .map(|s| pb::Series {
                    labels: label_pbs(s.labels),
                    samples: s
                        .points
                        .into_iter()
                        .map(|(timestamp_ms, value)| pb::Sample {
                            timestamp_ms,
                            value,
                        })
                        .collect(),
                })
                .collect();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, start_ms: i64, end_ms: i64) -> SelectRequest {
        SelectRequest {
            matchers: vec![raftwatch_model::Matcher::equal("__name__", name)],
            start_ms,
            end_ms,
        }
    }

    fn series(name: &str, samples: &[(i64, f64)]) -> RawSeries {
        RawSeries {
            labels: Labels::from_strs(&[("__name__", name)]),
            samples: samples.to_vec(),
        }
    }

    fn push(expr: &str) -> PushdownRequest {
        PushdownRequest {
            expr: expr.into(),
            start_ms: 0,
            end_ms: 0,
            step_ms: 0,
            lookback_delta_ms: 300_000,
        }
    }

    #[test]
    fn prefetched_answers_each_planned_selection_once() {
        let data = Prefetched {
            entries: vec![
                Entry {
                    req: req("a", 0, 10),
                    uses: Mutex::new((2, Some(vec![series("a", &[(1, 1.0)])]))),
                },
                Entry {
                    req: req("b", 0, 10),
                    uses: Mutex::new((1, Some(vec![]))),
                },
            ],
            pushed: vec![
                (push("sum(a)"), Mutex::new(Some(PushdownAnswer::default()))),
                (push("sum(a)"), Mutex::new(Some(PushdownAnswer::default()))),
            ],
        };
        // Two identical push-downs each get their own answer, once.
        assert!(data.pushdown(&push("sum(a)")).unwrap().is_some());
        assert!(data.pushdown(&push("sum(a)")).unwrap().is_some());
        assert!(data.pushdown(&push("sum(a)")).is_err());
        assert!(data.pushdown(&push("sum(b)")).is_err());
        // Two planned selections share the first entry: both get the data.
        assert_eq!(data.select(&req("a", 0, 10)).unwrap().len(), 1);
        assert_eq!(data.select(&req("a", 0, 10)).unwrap().len(), 1);
        // A third ask is a bug of ours, reported, never silently empty.
        let e = data.select(&req("a", 0, 10)).unwrap_err();
        assert_eq!(e.kind(), "internal");
        assert!(data.select(&req("b", 0, 10)).unwrap().is_empty());
        // Another range is another selection: never fetched.
        assert!(data.select(&req("a", 0, 11)).is_err());
    }

    #[test]
    fn errors_carry_prometheus_types_and_statuses() {
        use raftwatch_promql::Error as E;
        let cases = [
            (E::Parse("x".into()), "bad_data", 400, Code::InvalidArgument),
            (
                E::Execution("x".into()),
                "execution",
                422,
                Code::InvalidArgument,
            ),
            (
                E::TooManySamples("query execution"),
                "execution",
                422,
                Code::ResourceExhausted,
            ),
            (E::Canceled, "canceled", 499, Code::Cancelled),
            (E::Storage("x".into()), "internal", 500, Code::Internal),
        ];
        for (e, typ, http, code) in cases {
            let q = QueryError::from_engine(e);
            assert_eq!(q.typ.name(), typ);
            assert_eq!(q.typ.http_status().as_u16(), http);
            let s = q.to_status();
            assert_eq!(s.code(), code);
            assert_eq!(s.metadata().get(ERROR_TYPE_KEY).unwrap(), typ);
        }
        let limit = QueryError::from_status(&Status::resource_exhausted(format!(
            "shard 3: {} 10 samples",
            sc::SAMPLES_LIMIT_REFUSAL
        )));
        assert_eq!(limit, too_many_samples());
        assert_eq!(
            limit.message,
            "query processing would load too many samples into memory in query execution"
        );
        let down = QueryError::from_status(&Status::unavailable("no leader"));
        assert_eq!(down.typ, ErrorType::Unavailable);
        assert_eq!(down.typ.http_status().as_u16(), 503);
        let t = timed_out(Duration::from_millis(5));
        assert_eq!(
            (t.typ.name(), t.typ.http_status().as_u16()),
            ("timeout", 503)
        );
        assert!(
            t.message.starts_with("query timed out in "),
            "{}",
            t.message
        );
    }

    #[test]
    fn read_infos_merge_to_each_shards_least_advanced_answer() {
        let info = |shards: Vec<(u64, u64, u64)>| pb::ReadInfo {
            consistency: pb::Consistency::Stale as i32,
            shards: shards
                .into_iter()
                .map(|(shard, applied_index, lag_entries)| pb::ShardReadInfo {
                    shard,
                    applied_index,
                    lag_entries,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let m = merge_read_infos(
            ReadConsistency::Stale,
            vec![
                info(vec![(1, 10, 0), (2, 20, 3)]),
                info(vec![(1, 8, 1), (2, 25, 0)]),
            ],
        );
        let got: Vec<(u64, u64, u64)> = m
            .shards
            .iter()
            .map(|s| (s.shard, s.applied_index, s.lag_entries))
            .collect();
        assert_eq!(got, vec![(1, 8, 1), (2, 20, 3)]);
        assert_eq!((m.min_applied_index, m.max_lag_entries), (8, 3));
        assert_eq!(m.consistency, pb::Consistency::Stale as i32);
        let none = merge_read_infos(ReadConsistency::Linearizable, vec![]);
        assert!(none.shards.is_empty());
    }
}
