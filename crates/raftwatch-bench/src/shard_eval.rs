//! `raftwatch-bench shard-eval`: one shard's share of the issue-7 query
//! suite, in process, without Raft or the network.
//!
//! Writes `--series` node_exporter-like series for `--rounds` scrapes
//! (15 s apart) through the engine onto sled, flushing every
//! `--flush-every` rounds, as a shard replica would hold them; then times
//! the shard-side evaluation (`raftwatch_shard::query::evaluate`, kind
//! `eval`) of the expressions the node pushes down for the suite's
//! queries, `--queries` times each after one untimed run. This isolates
//! what a shard spends per query from the ReadIndex round and the
//! transport that `raftwatch-bench suite` also measures.

use std::path::PathBuf;

use anyhow::bail;
use raftwatch_promql::{Engine, EngineConfig};
use raftwatch_seams::{Clock, SystemClock};
use raftwatch_shard::query::{ShardRead, evaluate};
use serde::Serialize;

use crate::nodegen::SCRAPE_INTERVAL_MS;
use crate::tsdb::START_MS;

/// Arguments of `raftwatch-bench shard-eval`.
#[derive(clap::Args, Debug)]
pub struct ShardEvalArgs {
    /// Number of series on the shard (10,000 over 8 shards: 1,250).
    #[arg(long, default_value_t = 1_250)]
    series: usize,
    /// Scrapes per series (15 s apart; 240 = 1 h).
    #[arg(long, default_value_t = 240)]
    rounds: i64,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Flush every this many rounds.
    #[arg(long, default_value_t = 20)]
    flush_every: i64,
    /// Timed evaluations per query (after one untimed).
    #[arg(long, default_value_t = 20)]
    queries: usize,
    /// Directory for the sled store (default: a fresh temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// One pushed-down expression's timings.
#[derive(Serialize, Debug)]
pub struct QueryTiming {
    /// The suite query it is part of (`suite::suite`).
    name: &'static str,
    /// The expression the node asks each shard to evaluate.
    expr: String,
    range: bool,
    p50_ms: f64,
    min_ms: f64,
    max_ms: f64,
    /// p50 divided by the shard's series count.
    p50_us_per_series: f64,
    /// Series in the shard's answer.
    series_out: usize,
}

/// The printed result.
#[derive(Serialize, Debug)]
pub struct ShardEvalReport {
    series: usize,
    rounds: i64,
    seed: u64,
    queries: Vec<QueryTiming>,
    /// Suite queries with nothing to push down (they select raw samples).
    not_pushed: Vec<&'static str>,
}

pub fn run(args: &ShardEvalArgs) -> anyhow::Result<ShardEvalReport> {
    if args.series == 0 || args.rounds <= 0 || args.flush_every <= 0 || args.queries == 0 {
        bail!("--series, --rounds, --flush-every and --queries must be positive");
    }
    let clock = SystemClock::new();
    let tmp = tempfile::tempdir()?;
    let (_, mut db) = crate::tsdb::fresh_db(args.data_dir.as_deref(), &tmp, "shard")?;
    crate::tsdb::write_fleet(
        &mut db,
        args.series,
        args.seed,
        args.rounds,
        args.flush_every,
    )?;

    // Queries end just after the last scrape, as a dashboard's would, and
    // are planned as a node plans them: what the planner pushes down is
    // exactly what is timed here.
    let end_ms = START_MS + args.rounds * SCRAPE_INTERVAL_MS;
    let start_ms = (end_ms - 3_600_000).max(START_MS);
    let engine = Engine::new(EngineConfig {
        pushdown: true,
        ..EngineConfig::default()
    });
    let mut queries = Vec::new();
    let mut not_pushed = Vec::new();
    for (name, expr, range) in crate::suite::suite() {
        let planned = if range {
            engine.range_query(expr, start_ms, end_ms, SCRAPE_INTERVAL_MS)
        } else {
            engine.instant_query(expr, end_ms)
        }
        .map_err(|e| anyhow::anyhow!("{name}: cannot plan {expr}: {e}"))?;
        if planned.pushdowns().is_empty() {
            not_pushed.push(name);
        }
        for p in planned.pushdowns() {
            let read = ShardRead::pushdown(p);
            let mut times = Vec::with_capacity(args.queries);
            let mut series_out = 0;
            for i in 0..=args.queries {
                let t0 = clock.now_mono();
                let result = evaluate(&db, &read);
                let ns = clock.now_mono().nanos_since(t0);
                if !result.error.is_empty() {
                    bail!("{name}: the shard refused {}: {}", p.expr, result.error);
                }
                series_out = result.series.len();
                std::hint::black_box(&result);
                if i > 0 {
                    times.push(ns as f64 / 1e6);
                }
            }
            times.sort_by(f64::total_cmp);
            let p50 = times[times.len() / 2];
            eprintln!("{name} ({}): p50 {p50:.2} ms", p.expr);
            queries.push(QueryTiming {
                name,
                expr: p.expr.clone(),
                range: p.step_ms > 0,
                p50_ms: p50,
                min_ms: times[0],
                max_ms: times[times.len() - 1],
                p50_us_per_series: p50 * 1e3 / args.series as f64,
                series_out,
            });
        }
    }
    Ok(ShardEvalReport {
        series: args.series,
        rounds: args.rounds,
        seed: args.seed,
        queries,
        not_pushed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_answers_every_query() {
        let report = run(&ShardEvalArgs {
            series: 200,
            rounds: 30,
            seed: 3,
            flush_every: 10,
            queries: 1,
            data_dir: None,
        })
        .unwrap();
        // Every suite query but the raw selector pushes something down.
        assert_eq!(report.not_pushed, ["raw_series"]);
        assert_eq!(report.queries.len(), crate::suite::suite().len() - 1);
        let topk = report
            .queries
            .iter()
            .find(|q| q.name == "topk_network")
            .unwrap();
        // topk itself is not pushable: its aggregation argument is.
        assert!(topk.expr.starts_with("sum by (instance)"), "{topk:?}");
        let count = report
            .queries
            .iter()
            .find(|q| q.name == "count_all")
            .unwrap();
        // count() of everything: one output series.
        assert_eq!(count.series_out, 1);
        let cpu = &report.queries[0];
        assert!(cpu.series_out > 0, "{cpu:?}");
    }
}
