//! Bad or odd PromQL never panics: any text, and random well-formed
//! expressions over odd data, give a value or an error.

use std::sync::atomic::AtomicBool;

use proptest::prelude::*;
use raftwatch_promql::{Engine, EngineConfig, Error, Labels, MemStorage};

fn storage() -> MemStorage {
    let mut m = MemStorage::new();
    let odd = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e308,
        -1e-308,
    ];
    for (i, name) in ["a_total", "b", "h_bucket"].iter().enumerate() {
        for j in 0..3 {
            let le = ["0.1", "1", "+Inf"][j];
            let labels =
                Labels::from_strs(&[("__name__", name), ("i", &j.to_string()), ("le", le)]);
            for k in 0..20i64 {
                let v = odd[(k as usize * 7 + i + j) % odd.len()];
                let v = if k % 5 == 4 {
                    raftwatch_model::stale_nan()
                } else {
                    v
                };
                m.add(labels.clone(), k * 15_000 - 60_000, v);
            }
        }
    }
    m
}

fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("a_total".to_string()),
        Just("b{i=~\"0|1\"}".to_string()),
        Just("h_bucket".to_string()),
        Just("1".to_string()),
        Just("-Inf".to_string()),
        Just("NaN".to_string()),
        Just("b offset -1m".to_string()),
        Just("a_total @ 30".to_string()),
    ];
    leaf.prop_recursive(4, 32, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec![
                    "rate",
                    "irate",
                    "delta",
                    "deriv",
                    "changes",
                    "resets",
                    "max_over_time",
                    "stddev_over_time",
                    "quantile_over_time(0.3,",
                    "predict_linear",
                    "last_over_time",
                    "absent_over_time"
                ]),
                prop::sample::select(vec!["1m", "5m", "10s"])
            )
                .prop_map(|(e, f, r)| match f {
                    "quantile_over_time(0.3," => format!("quantile_over_time(0.3, ({e})[{r}:])"),
                    "predict_linear" => format!("predict_linear(({e})[{r}:15s], 60)"),
                    f => format!("{f}(({e})[{r}:])"),
                }),
            (
                inner.clone(),
                prop::sample::select(vec![
                    "abs",
                    "sqrt",
                    "ln",
                    "round",
                    "sort",
                    "timestamp",
                    "absent",
                    "scalar",
                    "histogram_quantile(0.5,",
                    "label_replace"
                ])
            )
                .prop_map(|(e, f)| match f {
                    "histogram_quantile(0.5," => format!("histogram_quantile(0.5, {e})"),
                    "label_replace" =>
                        format!("label_replace({e}, \"x\", \"$1\", \"i\", \"(.*)\")"),
                    "scalar" => format!("vector(scalar({e}))"),
                    f => format!("{f}({e})"),
                }),
            (
                inner.clone(),
                prop::sample::select(vec![
                    ("sum", ""),
                    ("avg", ""),
                    ("count", ""),
                    ("min", ""),
                    ("max", ""),
                    ("stddev", ""),
                    ("topk", "2, "),
                    ("bottomk", "1, "),
                    ("quantile", "0.9, "),
                    ("count_values", "\"v\", "),
                    ("group", "")
                ]),
                prop::sample::select(vec!["", " by (i)", " without (le)"])
            )
                .prop_map(|(e, (a, p), g)| format!("{a}{g} ({p}{e})")),
            (
                inner.clone(),
                inner,
                prop::sample::select(vec![
                    "+",
                    "/",
                    "%",
                    "^",
                    "==",
                    "> bool",
                    "and",
                    "or",
                    "unless",
                    "* on (i) group_left",
                    "- ignoring (le)",
                    "atan2"
                ])
            )
                .prop_map(|(l, r, op)| format!("({l}) {op} ({r})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_expressions_never_panic(e in expr(), t in -120i64..400) {
        let m = storage();
        let engine = Engine::new(EngineConfig { max_samples: 5_000, ..EngineConfig::default() });
        let cancel = AtomicBool::new(false);
        // About 60 % of these expressions type-check and evaluate.
        if let Ok(q) = engine.instant_query(&e, t * 1000) {
            let _ = q.exec(&m, &cancel);
        }
        if let Ok(q) = engine.range_query(&e, t * 1000, t * 1000 + 300_000, 7_000) {
            let _ = q.exec(&m, &cancel);
        }
    }

    #[test]
    fn any_text_is_a_value_or_an_error(s in "\\PC{0,60}") {
        let engine = Engine::default();
        let cancel = AtomicBool::new(false);
        if let Ok(q) = engine.instant_query(&s, 0) {
            let _ = q.exec(&storage(), &cancel);
        }
    }
}

#[test]
fn too_many_samples_is_prometheus_error() {
    let engine = Engine::new(EngineConfig {
        max_samples: 10,
        ..EngineConfig::default()
    });
    let q = engine.range_query("b", 0, 200_000, 1_000).unwrap();
    let e = q.exec(&storage(), &AtomicBool::new(false)).unwrap_err();
    assert_eq!(e, Error::TooManySamples("query execution"));
    assert_eq!(e.kind(), "execution");
    assert_eq!(
        e.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
}

#[test]
fn a_cancelled_query_stops() {
    let q = Engine::default()
        .instant_query("sum(rate(a_total[5m]))", 60_000)
        .unwrap();
    let e = q.exec(&storage(), &AtomicBool::new(true)).unwrap_err();
    assert_eq!(e, Error::Canceled);
}

#[test]
fn bad_queries_are_bad_data() {
    let engine = Engine::default();
    for bad in [
        "sum(",
        "rate(a_total)",
        "a_total[5m] + 1",
        "{}",
        "foo{a=~\"(\"}",
        "\"x\" + 1",
    ] {
        let e = engine.instant_query(bad, 0).unwrap_err();
        assert_eq!(e.kind(), "bad_data", "{bad}: {e}");
    }
    let e = engine.range_query("a_total", 10, 0, 1).unwrap_err();
    assert_eq!(e.kind(), "bad_data");
    let e = engine.range_query("a_total", 0, 20_000_000, 1).unwrap_err();
    assert!(e.to_string().contains("11,000"), "{e}");
    let e = engine.range_query("a_total[5m]", 0, 10, 1).unwrap();
    let e = e.exec(&storage(), &AtomicBool::new(false)).unwrap_err();
    assert_eq!(e.kind(), "bad_data", "{e}");
}

#[test]
fn a_subquery_with_more_steps_than_the_limit_fails_before_allocating() {
    // 86.4 M inner steps: refused up front, not after gigabytes.
    let q = Engine::default()
        .instant_query("count_over_time(vector(1)[1d:1ms])", 86_400_000)
        .unwrap();
    let e = q.exec(&storage(), &AtomicBool::new(false)).unwrap_err();
    assert_eq!(e, Error::TooManySamples("subquery evaluation"));
}
