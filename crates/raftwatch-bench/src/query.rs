//! `raftwatch-bench query`: query latency of a running cluster, through
//! `raftwatch.v1.Query/Select` (a `grpc://` target) or through the
//! Prometheus HTTP API (an `http://HOST:PORT` target: a raftwatch node's
//! HTTP port, or Prometheus itself, so the two compare).
//!
//! Sends `--expr` `--queries` times with at most `--concurrency` in
//! flight. The bench does not read the wall clock: `--end-ms` defaults to
//! one hour after `ingest`'s default `--start-ms` (1 700 000 000 000 +
//! 3 600 000), so with the defaults of both the window covers the first 240
//! rounds `ingest` wrote; pass the `ingest` report's `next_start_ms` to end
//! at its last round.
//!
//! - gRPC: `--expr` is a series selector, read raw over
//!   `[end_ms - range, end_ms]` (`--range` defaults to 1 h; `--step` has no
//!   effect, Select returns raw samples).
//! - HTTP: `--expr` is any PromQL expression. With `--range` it is a
//!   `GET /api/v1/query_range` over `[end_ms - range, end_ms]` at `--step`;
//!   without, a `GET /api/v1/query` at `end_ms`. Every request carries
//!   `consistency=linearizable|stale` (Prometheus ignores it). A latency
//!   runs from connecting until the whole answer is read (JSON decoding
//!   excluded). A non-2xx answer counts under `errors."HTTP <status>
//!   <errorType>"`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use raftwatch_client::{Client, ClientConfig, ClientError, code_name, error_chain, selector};
use raftwatch_proto::v1 as pb;
use raftwatch_seams::{Clock, SystemClock};
use serde::Serialize;

use crate::grpc::{self, Target};
use crate::http1::{self, HttpUrl};

/// The largest Select answer the bench decodes (tonic's default is 4 MiB,
/// which an hour of a few thousand series exceeds).
const RESPONSE_BYTES_MAX: usize = 512 << 20;

/// Consistency of the reads.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsistencyArg {
    /// Reflects every write acknowledged before the read began.
    Linearizable,
    /// The answering node's local state, which may lag.
    Stale,
}

/// Arguments of `raftwatch-bench query`.
#[derive(clap::Args, Debug, Clone)]
pub struct QueryArgs {
    /// `grpc://HOST:PORT` (any node's gRPC address) or `http://HOST:PORT`
    /// (the Prometheus HTTP API of a node, or of Prometheus).
    #[arg(long)]
    target: String,
    /// gRPC: a series selector, `metric{label="v",other=~"re",...}`, metric
    /// name optional, operators `=`, `!=`, `=~`, `!~`. HTTP: any PromQL
    /// expression.
    #[arg(long)]
    expr: String,
    /// Length of the queried window, e.g. `1h`, `30m`, `90s`. gRPC: default
    /// 1h. HTTP: makes it a range query; without it, an instant query.
    #[arg(long)]
    range: Option<String>,
    /// Resolution of HTTP range queries (no effect on gRPC Select, which
    /// returns raw samples).
    #[arg(long, default_value = "15s")]
    step: String,
    /// End of the window in ms since the epoch (default: `ingest`'s
    /// default start + 1 h).
    #[arg(long, default_value_t = 1_700_000_000_000 + 3_600_000)]
    end_ms: i64,
    /// Queries to send.
    #[arg(long, default_value_t = 100)]
    queries: usize,
    /// Queries in flight at most.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long, value_enum, default_value_t = ConsistencyArg::Linearizable)]
    consistency: ConsistencyArg,
    /// Deadline of one query (and of connecting), in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
}

/// The printed result (CONTRACTS.md fields first). Latencies are of
/// successful queries; `series` and `samples` are of the last answer (for
/// an HTTP instant vector, one sample per series; a scalar or string is
/// one sample and no series).
#[derive(Serialize, Debug)]
pub struct QueryReport {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub series: u64,
    pub samples: u64,
    pub queries: u64,
    pub max_ms: f64,
    pub queries_per_sec: f64,
    /// Failed queries by gRPC code name, or by `HTTP <status> <errorType>`.
    pub errors: BTreeMap<String, u64>,
    pub error_examples: BTreeMap<String, String>,
    pub wall_s: f64,
    /// `select` (gRPC), `instant` or `range` (HTTP).
    pub kind: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
    pub concurrency: usize,
    pub consistency: String,
}

/// `HttpQuery` is one Prometheus API query the bench repeats.
#[derive(Debug, Clone)]
pub struct HttpQuery {
    /// The PromQL expression.
    pub expr: String,
    /// `None`: an instant query at `end_ms`; `Some((range_ms, step_ms))`: a
    /// range query over `[end_ms - range_ms, end_ms]`.
    pub range: Option<(i64, i64)>,
    /// Evaluation time (instant) or end (range), ms since the epoch.
    pub end_ms: i64,
    pub consistency: ConsistencyArg,
    /// Send raftwatch's `pushdown=false` (raw samples to the querying
    /// node, to measure what push-down gains). Prometheus ignores it.
    pub no_pushdown: bool,
}

impl HttpQuery {
    /// `target` is the request's path and query string under `prefix` (the
    /// target URL's path, without a trailing `/`).
    fn target(&self, prefix: &str) -> String {
        let q = http1::encode_query_value(&self.expr);
        let c = consistency_name(self.consistency);
        let p = if self.no_pushdown {
            "&pushdown=false"
        } else {
            ""
        };
        match self.range {
            None => format!(
                "{prefix}/api/v1/query?query={q}&time={}&consistency={c}{p}",
                seconds(self.end_ms)
            ),
            Some((range_ms, step_ms)) => format!(
                "{prefix}/api/v1/query_range?query={q}&start={}&end={}&step={}&consistency={c}{p}",
                seconds(self.end_ms - range_ms),
                seconds(self.end_ms),
                seconds(step_ms)
            ),
        }
    }
}

/// Milliseconds as the API's decimal seconds (`1700000000.5`).
fn seconds(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    match abs % 1000 {
        0 => format!("{sign}{}", abs / 1000),
        frac => format!("{sign}{}.{frac:03}", abs / 1000),
    }
}

fn consistency_name(c: ConsistencyArg) -> &'static str {
    match c {
        ConsistencyArg::Linearizable => "linearizable",
        ConsistencyArg::Stale => "stale",
    }
}

/// `run` parses `--expr`, connects to `--target` and sends the queries;
/// it fails only on bad arguments or when it cannot connect.
pub fn run(args: &QueryArgs) -> anyhow::Result<QueryReport> {
    let step_ms = parse_duration_ms(&args.step).context("invalid --step")?;
    if args.queries == 0 || args.concurrency == 0 {
        bail!("--queries and --concurrency must be positive");
    }
    let range_ms = args
        .range
        .as_deref()
        .map(parse_duration_ms)
        .transpose()
        .context("invalid --range")?;
    let url = match Target::parse(&args.target)? {
        Target::Grpc(url) => url,
        Target::Http(text) => {
            let url = HttpUrl::parse(&text).context("invalid --target")?;
            let query = HttpQuery {
                expr: args.expr.clone(),
                range: range_ms.map(|r| (r, step_ms)),
                end_ms: args.end_ms,
                consistency: args.consistency,
                no_pushdown: false,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let timeout = Duration::from_secs(args.timeout_s.max(1));
            return rt.block_on(run_http(
                url,
                query,
                args.queries,
                args.concurrency,
                timeout,
            ));
        }
    };
    let range_ms = range_ms.unwrap_or(3_600_000);
    let matchers = selector::parse_selector(&args.expr)
        .map_err(|e| anyhow!("invalid --expr {:?}: {e}", args.expr))?;
    let start_ms = args
        .end_ms
        .checked_sub(range_ms)
        .context("--end-ms - --range underflows")?;
    let request = pb::SelectRequest {
        matchers: matchers.into_iter().map(pb::LabelMatcher::from).collect(),
        start_ms,
        end_ms: args.end_ms,
        consistency: match args.consistency {
            ConsistencyArg::Linearizable => pb::Consistency::Linearizable,
            ConsistencyArg::Stale => pb::Consistency::Stale,
        } as i32,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args.clone(), url, request, step_ms))
}

async fn run_async(
    args: QueryArgs,
    url: String,
    request: pb::SelectRequest,
    step_ms: i64,
) -> anyhow::Result<QueryReport> {
    let timeout = Duration::from_secs(args.timeout_s.max(1));
    // One attempt per query: the bench measures the cluster, and a failed
    // query is counted, not hidden behind retries.
    let client = Arc::new(Client::new(
        vec![url],
        ClientConfig {
            attempts_max: 1,
            request_timeout: timeout,
            connect_timeout: timeout,
            message_bytes_max: RESPONSE_BYTES_MAX,
            ..ClientConfig::default()
        },
    )?);
    client.connect().await?;
    let clock = Arc::new(SystemClock::new());

    let mut latencies_ns = Vec::with_capacity(args.queries);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut error_examples: BTreeMap<String, String> = BTreeMap::new();
    let (mut series, mut samples) = (0u64, 0u64);
    let mut in_flight = FuturesUnordered::new();
    let mut sent = 0usize;
    let t0 = clock.now_mono();
    while sent < args.queries || !in_flight.is_empty() {
        if sent < args.queries && in_flight.len() < args.concurrency {
            in_flight.push(raftwatch_raft::rt::spawn(
                0,
                select(client.clone(), request.clone(), clock.clone()),
            ));
            sent += 1;
            continue;
        }
        let Some(done) = in_flight.next().await else {
            break;
        };
        match done? {
            (latency_ns, Ok((s, n))) => {
                latencies_ns.push(latency_ns);
                (series, samples) = (s, n);
            }
            (_, Err(e)) => {
                let (kind, example) = match e.status() {
                    Some(status) => (code_name(status.code()), error_chain(status)),
                    None => ("CLIENT", e.to_string()),
                };
                *errors.entry(kind.to_owned()).or_default() += 1;
                error_examples.entry(kind.to_owned()).or_insert(example);
            }
        }
    }
    let wall_s = clock.now_mono().nanos_since(t0) as f64 / 1e9;
    latencies_ns.sort_unstable();
    Ok(QueryReport {
        p50_ms: grpc::percentile_ms(&latencies_ns, 0.50),
        p99_ms: grpc::percentile_ms(&latencies_ns, 0.99),
        series,
        samples,
        queries: sent as u64,
        max_ms: grpc::percentile_ms(&latencies_ns, 1.0),
        queries_per_sec: latencies_ns.len() as f64 / wall_s,
        errors,
        error_examples,
        wall_s,
        kind: "select".to_owned(),
        start_ms: request.start_ms,
        end_ms: request.end_ms,
        step_ms,
        concurrency: args.concurrency,
        consistency: format!("{:?}", args.consistency).to_lowercase(),
    })
}

/// `run_http` sends `query` to the Prometheus API at `url` `queries` times
/// with at most `concurrency` in flight; it fails only when nothing
/// listens at `url`.
pub async fn run_http(
    url: HttpUrl,
    query: HttpQuery,
    queries: usize,
    concurrency: usize,
    timeout: Duration,
) -> anyhow::Result<QueryReport> {
    tokio::net::TcpStream::connect(&url.authority)
        .await
        .with_context(|| format!("cannot connect to {}", url.authority))?;
    let prefix = url.path.trim_end_matches('/').to_owned();
    let target = Arc::new(query.target(&prefix));
    let authority = Arc::new(url.authority.clone());
    let clock = Arc::new(SystemClock::new());
    let mut latencies_ns = Vec::with_capacity(queries);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut error_examples: BTreeMap<String, String> = BTreeMap::new();
    let (mut series, mut samples) = (0u64, 0u64);
    let mut in_flight = FuturesUnordered::new();
    let mut sent = 0usize;
    let t0 = clock.now_mono();
    while sent < queries || !in_flight.is_empty() {
        if sent < queries && in_flight.len() < concurrency.max(1) {
            let (authority, target, clock) = (authority.clone(), target.clone(), clock.clone());
            in_flight.push(raftwatch_raft::rt::spawn(0, async move {
                let start = clock.now_mono();
                let r = http1::request(&authority, "GET", &target, &[], &[], timeout).await;
                (clock.now_mono().nanos_since(start), r)
            }));
            sent += 1;
            continue;
        }
        let Some(done) = in_flight.next().await else {
            break;
        };
        let (latency_ns, answer) = done?;
        match answer.map_err(|e| ("CONNECTION".to_owned(), format!("{e:#}"))) {
            Ok(r) if r.status == 200 => match count_result(&r.body) {
                Ok((s, n)) => {
                    latencies_ns.push(latency_ns);
                    (series, samples) = (s, n);
                }
                Err(e) => {
                    *errors.entry("BAD ANSWER".to_owned()).or_default() += 1;
                    error_examples
                        .entry("BAD ANSWER".to_owned())
                        .or_insert(format!("{e:#}"));
                }
            },
            Ok(r) => {
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                let error_type = v["errorType"].as_str().unwrap_or("-");
                let kind = format!("HTTP {} {error_type}", r.status);
                let message = v["error"].as_str().map_or_else(
                    || String::from_utf8_lossy(&r.body).chars().take(300).collect(),
                    str::to_owned,
                );
                *errors.entry(kind.clone()).or_default() += 1;
                error_examples.entry(kind).or_insert(message);
            }
            Err((kind, message)) => {
                *errors.entry(kind.clone()).or_default() += 1;
                error_examples.entry(kind).or_insert(message);
            }
        }
    }
    let wall_s = clock.now_mono().nanos_since(t0) as f64 / 1e9;
    latencies_ns.sort_unstable();
    let (kind, start_ms, step_ms) = match query.range {
        None => ("instant", query.end_ms, 0),
        Some((range_ms, step_ms)) => ("range", query.end_ms - range_ms, step_ms),
    };
    Ok(QueryReport {
        p50_ms: grpc::percentile_ms(&latencies_ns, 0.50),
        p99_ms: grpc::percentile_ms(&latencies_ns, 0.99),
        series,
        samples,
        queries: sent as u64,
        max_ms: grpc::percentile_ms(&latencies_ns, 1.0),
        queries_per_sec: latencies_ns.len() as f64 / wall_s,
        errors,
        error_examples,
        wall_s,
        kind: kind.to_owned(),
        start_ms,
        end_ms: query.end_ms,
        step_ms,
        concurrency,
        consistency: consistency_name(query.consistency).to_owned(),
    })
}

/// (series, samples) of a successful Prometheus API answer.
fn count_result(body: &[u8]) -> anyhow::Result<(u64, u64)> {
    let v: serde_json::Value = serde_json::from_slice(body).context("the answer is not JSON")?;
    if v["status"] != "success" {
        bail!("status {} in a 200 answer", v["status"]);
    }
    let data = &v["data"];
    let result = &data["result"];
    Ok(match data["resultType"].as_str() {
        Some("matrix") => {
            let series = result.as_array().context("matrix result is not a list")?;
            let samples = series
                .iter()
                .map(|s| {
                    s["values"].as_array().map_or(0, Vec::len)
                        + s["histograms"].as_array().map_or(0, Vec::len)
                })
                .sum::<usize>();
            (series.len() as u64, samples as u64)
        }
        Some("vector") => {
            let n = result
                .as_array()
                .context("vector result is not a list")?
                .len() as u64;
            (n, n)
        }
        Some("scalar" | "string") => (0, 1),
        other => bail!("unknown resultType {other:?}"),
    })
}

/// Sends one Select and returns its latency and (series, samples) counts.
async fn select(
    client: Arc<Client>,
    request: pb::SelectRequest,
    clock: Arc<SystemClock>,
) -> (u64, Result<(u64, u64), ClientError>) {
    let start = clock.now_mono();
    let consistency = request.consistency();
    let result = client
        .select(
            request.matchers,
            request.start_ms,
            request.end_ms,
            consistency,
        )
        .await
        .map(|r| {
            let samples = r.series.iter().map(|s| s.samples.len() as u64).sum();
            (r.series.len() as u64, samples)
        });
    (clock.now_mono().nanos_since(start), result)
}

/// `parse_duration_ms` parses a Prometheus duration: one or more
/// `<integer><unit>` with units `ms`, `s`, `m`, `h`, `d`, `w`, `y` (365 d),
/// largest first, e.g. `1h30m`. Must be positive.
pub fn parse_duration_ms(text: &str) -> anyhow::Result<i64> {
    const UNITS: [(&str, i64); 7] = [
        ("ms", 1),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 7 * 86_400_000),
        ("y", 365 * 86_400_000),
    ];
    let bad = || anyhow!("{text:?} is not a duration like 1h, 15s or 1h30m");
    let mut rest = text;
    let mut total: i64 = 0;
    let mut last_unit = i64::MAX;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        // "ms" before "m", so the longest unit name wins.
        let (name, unit) = UNITS
            .iter()
            .find(|(name, _)| rest.starts_with(name))
            .ok_or_else(bad)?;
        if *unit >= last_unit {
            return Err(bad());
        }
        last_unit = *unit;
        rest = &rest[name.len()..];
        total = n
            .checked_mul(*unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if total <= 0 {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_query_targets() {
        let mut q = HttpQuery {
            expr: "sum(up)".into(),
            range: None,
            end_ms: 1_700_000_000_500,
            consistency: ConsistencyArg::Stale,
            no_pushdown: false,
        };
        assert_eq!(
            q.target(""),
            "/api/v1/query?query=sum%28up%29&time=1700000000.500&consistency=stale"
        );
        q.range = Some((3_600_000, 15_000));
        q.end_ms = 1_700_003_600_000;
        q.consistency = ConsistencyArg::Linearizable;
        assert_eq!(
            q.target("/prom"),
            "/prom/api/v1/query_range?query=sum%28up%29&start=1700000000&end=1700003600&step=15&consistency=linearizable"
        );
        q.no_pushdown = true;
        assert!(
            q.target("")
                .ends_with("&consistency=linearizable&pushdown=false")
        );
        assert_eq!(seconds(-1_500), "-1.500");
    }

    #[test]
    fn results_are_counted() {
        let m = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"a":"1"},"values":[[1,"1"],[2,"2"]]},{"metric":{},"values":[[1,"3"]]}]}}"#;
        assert_eq!(count_result(m).unwrap(), (2, 3));
        let v = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}"#;
        assert_eq!(count_result(v).unwrap(), (1, 1));
        let s = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#;
        assert_eq!(count_result(s).unwrap(), (0, 1));
        assert!(count_result(br#"{"status":"error"}"#).is_err());
        assert!(count_result(b"<html>").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1h").unwrap(), 3_600_000);
        assert_eq!(parse_duration_ms("15s").unwrap(), 15_000);
        assert_eq!(parse_duration_ms("500ms").unwrap(), 500);
        assert_eq!(parse_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("2d").unwrap(), 172_800_000);
        for bad in ["", "h", "1", "1x", "0s", "30m1h", "1h1h", "-1h", "1.5h"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
