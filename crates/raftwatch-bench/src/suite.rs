//! `raftwatch-bench suite`: the query suite of issue 7 against one
//! Prometheus HTTP API (a raftwatch node, or Prometheus itself), over data
//! `ingest` wrote: `--series` node_exporter-like series over the hour that
//! ends at `--end-ms` (the `ingest` report's `next_start_ms`).
//!
//! Each query is sent once untimed (`first_ms`: cold caches, planning),
//! then `--queries` times one after another; `p50_ms` and `p99_ms` are of
//! those. A query that fails is counted in its `errors` and the suite goes
//! on, so one JSON object always describes every query.
//!
//! | name | kind | expression |
//! |---|---|---|
//! | `cpu_rate_by_instance` | range over the hour, `--step` | `sum by (instance) (rate(node_cpu_seconds_total[5m]))` |
//! | `topk_network` | range over the hour, `--step` | `topk(5, sum by (instance) (rate(node_network_receive_bytes_total[5m])))` |
//! | `histogram_p90` | range over the hour, `--step` | `histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))` |
//! | `raw_series` | instant at the end | `node_load1{instance="host-00000.example.internal:9100"}[1h]`: one series' raw samples |
//! | `count_all` | instant at the end | `count({__name__=~".+"})` |

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::http1::HttpUrl;
use crate::query::{self, ConsistencyArg, HttpQuery, QueryReport};

/// Arguments of `raftwatch-bench suite`.
#[derive(clap::Args, Debug, Clone)]
pub struct SuiteArgs {
    /// `http://HOST:PORT`: the Prometheus HTTP API of a raftwatch node or
    /// of Prometheus.
    #[arg(long)]
    target: String,
    /// End of the loaded hour, ms since the epoch (`ingest`'s
    /// `next_start_ms`; default: `ingest`'s default start + 1 h).
    #[arg(long, default_value_t = 1_700_000_000_000 + 3_600_000)]
    end_ms: i64,
    /// Length of the range queries' window.
    #[arg(long, default_value = "1h")]
    range: String,
    /// Resolution of the range queries.
    #[arg(long, default_value = "15s")]
    step: String,
    /// Timed runs of each query (after one untimed run).
    #[arg(long, default_value_t = 20)]
    queries: usize,
    #[arg(long, value_enum, default_value_t = ConsistencyArg::Linearizable)]
    consistency: ConsistencyArg,
    /// Ask raftwatch not to push evaluation down to the shards
    /// (`pushdown=false`), to measure what push-down gains.
    #[arg(long)]
    no_pushdown: bool,
    /// Deadline of one query, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
}

/// One query's figures.
#[derive(Serialize, Debug)]
pub struct SuiteQuery {
    name: &'static str,
    expr: String,
    p50_ms: f64,
    p99_ms: f64,
    series: u64,
    samples: u64,
    max_ms: f64,
    /// The untimed first run's latency (0 when it failed).
    first_ms: f64,
    errors: std::collections::BTreeMap<String, u64>,
    error_examples: std::collections::BTreeMap<String, String>,
    kind: String,
    queries: u64,
}

/// The printed result.
#[derive(Serialize, Debug)]
pub struct SuiteReport {
    target: String,
    consistency: String,
    end_ms: i64,
    range_ms: i64,
    step_ms: i64,
    queries: Vec<SuiteQuery>,
    wall_s: f64,
}

/// The suite: (name, expression, whether it is a range query).
pub fn suite() -> Vec<(&'static str, &'static str, bool)> {
    vec![
        (
            "cpu_rate_by_instance",
            "sum by (instance) (rate(node_cpu_seconds_total[5m]))",
            true,
        ),
        (
            "topk_network",
            "topk(5, sum by (instance) (rate(node_network_receive_bytes_total[5m])))",
            true,
        ),
        (
            "histogram_p90",
            "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
            true,
        ),
        (
            "raw_series",
            r#"node_load1{instance="host-00000.example.internal:9100"}[1h]"#,
            false,
        ),
        ("count_all", r#"count({__name__=~".+"})"#, false),
    ]
}

/// `run` sends every query of the suite; it fails only on bad arguments or
/// when nothing listens at `--target`.
pub fn run(args: &SuiteArgs) -> anyhow::Result<SuiteReport> {
    let url = HttpUrl::parse(&args.target).context("invalid --target")?;
    let range_ms = query::parse_duration_ms(&args.range).context("invalid --range")?;
    let step_ms = query::parse_duration_ms(&args.step).context("invalid --step")?;
    if args.queries == 0 {
        bail!("--queries must be positive");
    }
    let timeout = Duration::from_secs(args.timeout_s.max(1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut out = Vec::new();
    let mut wall_s = 0.0;
    for (name, expr, is_range) in suite() {
        eprintln!("{name}: {expr}");
        let q = HttpQuery {
            expr: expr.to_owned(),
            range: is_range.then_some((range_ms, step_ms)),
            end_ms: args.end_ms,
            consistency: args.consistency,
            no_pushdown: args.no_pushdown,
        };
        let first: QueryReport =
            rt.block_on(query::run_http(url.clone(), q.clone(), 1, 1, timeout))?;
        let r = rt.block_on(query::run_http(url.clone(), q, args.queries, 1, timeout))?;
        wall_s += first.wall_s + r.wall_s;
        let mut errors = r.errors;
        let mut error_examples = r.error_examples;
        for (k, n) in first.errors {
            *errors.entry(k).or_default() += n;
        }
        for (k, e) in first.error_examples {
            error_examples.entry(k).or_insert(e);
        }
        out.push(SuiteQuery {
            name,
            expr: expr.to_owned(),
            p50_ms: r.p50_ms,
            p99_ms: r.p99_ms,
            series: r.series,
            samples: r.samples,
            max_ms: r.max_ms,
            first_ms: first.p50_ms,
            errors,
            error_examples,
            kind: r.kind,
            queries: r.queries,
        });
    }
    Ok(SuiteReport {
        target: args.target.clone(),
        consistency: match args.consistency {
            ConsistencyArg::Linearizable => "linearizable",
            ConsistencyArg::Stale => "stale",
        }
        .to_owned(),
        end_ms: args.end_ms,
        range_ms,
        step_ms,
        queries: out,
        wall_s,
    })
}
