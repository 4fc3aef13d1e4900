//! The evaluator alone, over in-memory data: 10,000 node_exporter-like
//! series (1,000 instances × 10) over one hour at a 15 s interval, the
//! issue's query shapes as 1 h range queries at a 15 s step. Network and
//! storage are out of the picture: this is the floor under
//! `raftwatch-bench query`.

use std::sync::atomic::AtomicBool;

use criterion::{Criterion, criterion_group, criterion_main};
use raftwatch_promql::{Engine, Labels, MemStorage};

const HOUR_MS: i64 = 3_600_000;
const STEP_MS: i64 = 15_000;

fn data() -> MemStorage {
    let mut m = MemStorage::new();
    for inst in 0..1_000 {
        let instance = format!("host-{inst}:9100");
        for cpu in 0..2 {
            for mode in ["idle", "user", "system"] {
                let l = Labels::from_strs(&[
                    ("__name__", "node_cpu_seconds_total"),
                    ("instance", &instance),
                    ("cpu", &cpu.to_string()),
                    ("mode", mode),
                ]);
                for k in 0..=(HOUR_MS / STEP_MS) {
                    m.add(l.clone(), k * STEP_MS, (k * (inst % 7 + 1)) as f64);
                }
            }
        }
        for le in ["0.1", "0.5", "1", "+Inf"] {
            let l = Labels::from_strs(&[
                ("__name__", "http_request_duration_seconds_bucket"),
                ("instance", &instance),
                ("le", le),
            ]);
            let w = le.parse::<f64>().map_or(10, |x| (x * 8.0) as i64 + 1);
            for k in 0..=(HOUR_MS / STEP_MS) {
                m.add(l.clone(), k * STEP_MS, (k * w) as f64);
            }
        }
    }
    m
}

fn bench(c: &mut Criterion) {
    let m = data();
    let engine = Engine::default();
    let cancel = AtomicBool::new(false);
    let mut g = c.benchmark_group("promql_1h_15s_10k_series");
    g.sample_size(10);
    for (name, q) in [
        (
            "rate_sum_by_instance",
            "sum by (instance) (rate(node_cpu_seconds_total[5m]))",
        ),
        ("topk", "topk(5, rate(node_cpu_seconds_total[5m]))"),
        (
            "histogram_quantile",
            "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        ),
        (
            "raw_series",
            "node_cpu_seconds_total{instance=\"host-1:9100\",cpu=\"0\",mode=\"idle\"}",
        ),
        ("count_all", "count({__name__=~\".+\"})"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let query = engine.range_query(q, 0, HOUR_MS, STEP_MS).expect("plans");
                query.exec(&m, &cancel).expect("evaluates")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
