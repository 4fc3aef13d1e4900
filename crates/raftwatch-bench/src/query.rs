//! `raftwatch-bench query`: latency of `raftwatch.v1.Query/Select` on a
//! running cluster.
//!
//! Sends the selector `--expr` over `[end_ms - range, end_ms]`
//! `--queries` times with at most `--concurrency` in flight. The bench does
//! not read the wall clock: `--end-ms` defaults to one hour after `ingest`'s
//! default `--start-ms` (1 700 000 000 000 + 3 600 000), so with the
//! defaults of both the window covers the first 240 rounds `ingest` wrote;
//! pass the `ingest` report's `next_start_ms` to end at its last round.
//! Select returns raw samples, so `--step` has no effect on the gRPC
//! target; it is accepted (and reported) for the HTTP `query_range` target.

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

use crate::grpc::{self, Target, Unsupported};

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
    /// `grpc://HOST:PORT` (any node's gRPC address).
    #[arg(long)]
    target: String,
    /// A series selector: `metric{label="v",other=~"re",...}`, metric name
    /// optional, operators `=`, `!=`, `=~`, `!~`.
    #[arg(long)]
    expr: String,
    /// Length of the queried window, e.g. `1h`, `30m`, `90s`.
    #[arg(long, default_value = "1h")]
    range: String,
    /// Resolution for range queries (no effect on gRPC Select, which
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
/// successful queries; `series` and `samples` are of the last answer.
#[derive(Serialize, Debug)]
pub struct QueryReport {
    p50_ms: f64,
    p99_ms: f64,
    series: u64,
    samples: u64,
    queries: u64,
    max_ms: f64,
    queries_per_sec: f64,
    /// Failed queries by gRPC code name.
    errors: BTreeMap<String, u64>,
    error_examples: BTreeMap<String, String>,
    wall_s: f64,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    concurrency: usize,
    consistency: String,
}

/// `run` parses `--expr`, connects to `--target` and sends the queries;
/// it fails only on bad arguments or when it cannot connect.
pub fn run(args: &QueryArgs) -> anyhow::Result<QueryReport> {
    let url = match Target::parse(&args.target)? {
        Target::Grpc(url) => url,
        Target::Http(_) => {
            return Err(Unsupported("HTTP queries arrive with the HTTP API issue".into()).into());
        }
    };
    let matchers = selector::parse_selector(&args.expr)
        .map_err(|e| anyhow!("invalid --expr {:?}: {e}", args.expr))?;
    let range_ms = parse_duration_ms(&args.range).context("invalid --range")?;
    let step_ms = parse_duration_ms(&args.step).context("invalid --step")?;
    if args.queries == 0 || args.concurrency == 0 {
        bail!("--queries and --concurrency must be positive");
    }
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
        start_ms: request.start_ms,
        end_ms: request.end_ms,
        step_ms,
        concurrency: args.concurrency,
        consistency: format!("{:?}", args.consistency).to_lowercase(),
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
fn parse_duration_ms(text: &str) -> anyhow::Result<i64> {
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
