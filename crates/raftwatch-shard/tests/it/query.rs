//! Instant, range, series and label queries on the shard state machine,
//! through encoded `ShardRead`s, against a brute-force model over the raw
//! samples: Prometheus's lookback rule `(t - lookback, t]`, staleness
//! markers hiding a series, matcher semantics (an absent label is ""), and
//! the limits.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use prost::Message;
use raftwatch_model::{MatchOp, Matcher, is_stale_nan, stale_nan};
use raftwatch_raft::GroupStateMachine;
use raftwatch_shard::codec::{
    COMMAND_VERSION, LabelPb, MatcherPb, SeriesPb, ShardCommand, ShardQuery, ShardQueryResult,
    ShardWriteResult,
};
use raftwatch_shard::query::{ErrorCode, QueryKind, STEPS_MAX, ShardRead, ShardReadResult};
use raftwatch_shard::{ShardStateMachine, StoreFactory};
use raftwatch_storage::MemStore;

struct Mem;

impl StoreFactory<MemStore> for Mem {
    fn create(&mut self) -> Result<MemStore, String> {
        Ok(MemStore::new())
    }
    fn retire(&mut self, _store: MemStore) {}
}

fn sm() -> ShardStateMachine<MemStore> {
    ShardStateMachine::open(raftwatch_tsdb::TsdbConfig::default(), Box::new(Mem)).unwrap()
}

/// Labels as sorted `(name, value)` pairs, no empty values.
type LabelSet = Vec<(String, String)>;
/// Every series' samples: timestamp → value bits.
type Raw = BTreeMap<LabelSet, BTreeMap<i64, u64>>;

fn write(sm: &mut ShardStateMachine<MemStore>, index: u64, raw: &Raw) {
    let series: Vec<SeriesPb> = raw
        .iter()
        .map(|(labels, samples)| SeriesPb {
            labels: labels
                .iter()
                .map(|(n, v)| LabelPb {
                    name: n.clone(),
                    value: v.clone(),
                })
                .collect(),
            timestamps: samples.keys().copied().collect(),
            values: samples.values().map(|b| f64::from_bits(*b)).collect(),
        })
        .collect();
    let cmd = ShardCommand {
        version: COMMAND_VERSION,
        series,
        ..Default::default()
    };
    let r = ShardWriteResult::decode(sm.apply(index, &cmd.encode_to_vec()).as_slice()).unwrap();
    assert_eq!(r.error, "");
    assert!(r.rejections.is_empty(), "{:?}", r.rejections);
}

fn ask(sm: &ShardStateMachine<MemStore>, read: &ShardRead) -> ShardReadResult {
    let r = ShardReadResult::decode(sm.query(&read.encode_to_vec()).as_slice()).unwrap();
    assert_eq!(r.kind, read.kind, "the answer echoes the kind");
    r
}

fn matcher(op: u32, name: &str, value: &str) -> MatcherPb {
    MatcherPb {
        op,
        name: name.into(),
        value: value.into(),
    }
}

fn read(kind: QueryKind, matchers: Vec<MatcherPb>) -> ShardRead {
    ShardRead {
        kind: kind.wire(),
        matchers,
        start_ms: i64::MIN,
        end_ms: i64::MAX,
        lookback_ms: 300_000,
        ..Default::default()
    }
}

fn instant(matchers: Vec<MatcherPb>, t: i64, lookback: i64) -> ShardRead {
    ShardRead {
        start_ms: t,
        end_ms: t,
        lookback_ms: lookback,
        ..read(QueryKind::Instant, matchers)
    }
}

fn range(matchers: Vec<MatcherPb>, start: i64, end: i64, step: i64, lookback: i64) -> ShardRead {
    ShardRead {
        start_ms: start,
        end_ms: end,
        step_ms: step,
        lookback_ms: lookback,
        ..read(QueryKind::Range, matchers)
    }
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    let mut l: LabelSet = pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    l.sort();
    l
}

fn raw_of(series: &[(LabelSet, &[(i64, f64)])]) -> Raw {
    series
        .iter()
        .map(|(l, s)| {
            (
                l.clone(),
                s.iter().map(|(t, v)| (*t, v.to_bits())).collect(),
            )
        })
        .collect()
}

/// Points of an answer: labels → [(t, value bits)].
fn points(r: &ShardReadResult) -> BTreeMap<LabelSet, Vec<(i64, u64)>> {
    assert_eq!(r.error, "", "{r:?}");
    r.series
        .iter()
        .map(|s| {
            let l: LabelSet = s
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            let p = s
                .timestamps
                .iter()
                .zip(&s.values)
                .map(|(t, v)| (*t, v.to_bits()))
                .collect();
            (l, p)
        })
        .collect()
}

// ---- The model ----

fn model_matchers(ms: &[MatcherPb]) -> Vec<Matcher> {
    ms.iter()
        .map(|m| {
            let op = [
                MatchOp::Equal,
                MatchOp::NotEqual,
                MatchOp::RegexMatch,
                MatchOp::RegexNoMatch,
            ][m.op as usize];
            Matcher::new(op, m.name.clone(), m.value.clone()).unwrap()
        })
        .collect()
}

fn selected(labels: &LabelSet, ms: &[Matcher]) -> bool {
    ms.iter().all(|m| {
        let v = labels
            .iter()
            .find(|(n, _)| n == m.name())
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        m.matches(v)
    })
}

/// The instant rule, by brute force: the latest sample at or before `t`,
/// if newer than `t - lookback` and not a staleness marker.
fn model_at(samples: &BTreeMap<i64, u64>, t: i64, lookback: i64) -> Option<u64> {
    let (&ts, &bits) = samples.range(..=t).next_back()?;
    (ts > t - lookback && !is_stale_nan(f64::from_bits(bits))).then_some(bits)
}

fn model_range(
    raw: &Raw,
    ms: &[MatcherPb],
    start: i64,
    end: i64,
    step: i64,
    lookback: i64,
) -> BTreeMap<LabelSet, Vec<(i64, u64)>> {
    let ms = model_matchers(ms);
    let mut out = BTreeMap::new();
    for (labels, samples) in raw.iter().filter(|(l, _)| selected(l, &ms)) {
        let mut p = Vec::new();
        let mut t = start;
        while t <= end {
            if let Some(v) = model_at(samples, t, lookback) {
                p.push((t, v));
            }
            t += step;
        }
        if !p.is_empty() {
            out.insert(labels.clone(), p);
        }
    }
    out
}

/// Series whose samples span (first to last sample) overlaps
/// `[start, end]`: the engine's selection rule for series and labels.
fn model_series(raw: &Raw, ms: &[MatcherPb], start: i64, end: i64) -> Vec<LabelSet> {
    let ms = model_matchers(ms);
    raw.iter()
        .filter(|(l, _)| selected(l, &ms))
        .filter(|(_, s)| match (s.keys().next(), s.keys().next_back()) {
            (Some(&first), Some(&last)) => first <= end && last >= start,
            _ => false,
        })
        .map(|(l, _)| l.clone())
        .collect()
}

// ---- Fixed cases ----

#[test]
fn instant_takes_the_latest_sample_in_the_left_open_window() {
    let mut sm = sm();
    let a = labels(&[("__name__", "up"), ("job", "a")]);
    let b = labels(&[("__name__", "up"), ("job", "b")]);
    write(
        &mut sm,
        1,
        &raw_of(&[
            (a.clone(), &[(100, 1.0), (200, 2.0)]),
            (b.clone(), &[(150, 5.0), (250, stale_nan())]),
        ]),
    );
    let up = || vec![matcher(0, "__name__", "up")];
    // (t - lookback, t]: a sample exactly lookback old is out, one ms newer in.
    let p = points(&ask(&sm, &instant(up(), 300, 100)));
    assert_eq!(
        p.len(),
        0,
        "200 is not in (200, 300]; 250 is a marker: {p:?}"
    );
    let p = points(&ask(&sm, &instant(up(), 299, 100)));
    assert_eq!(
        p[&a],
        vec![(299, 2.0f64.to_bits())],
        "reported at the evaluation time"
    );
    assert!(!p.contains_key(&b), "the marker at 250 hides 150");
    let p = points(&ask(&sm, &instant(up(), 249, 100)));
    assert_eq!(p[&b], vec![(249, 5.0f64.to_bits())]);
    assert_eq!(p[&a], vec![(249, 2.0f64.to_bits())]);
    // A sample after t never counts.
    let p = points(&ask(&sm, &instant(up(), 99, 1_000)));
    assert!(p.is_empty(), "{p:?}");
    // Range: one point per step that has one.
    let p = points(&ask(&sm, &range(up(), 100, 300, 50, 60)));
    assert_eq!(
        p[&a],
        vec![
            (100, 1.0f64.to_bits()),
            (150, 1.0f64.to_bits()),
            (200, 2.0f64.to_bits()),
            (250, 2.0f64.to_bits())
        ]
    );
    assert_eq!(
        p[&b],
        vec![(150, 5.0f64.to_bits()), (200, 5.0f64.to_bits())]
    );
}

#[test]
fn old_shard_queries_still_mean_a_raw_select() {
    let mut sm = sm();
    write(
        &mut sm,
        1,
        &raw_of(&[(labels(&[("__name__", "m")]), &[(1, 1.0), (2, 2.0)])]),
    );
    let old = ShardQuery {
        matchers: vec![matcher(0, "__name__", "m")],
        start_ms: 0,
        end_ms: 10,
        series_max: 7,
        samples_max: 9,
    };
    // The new message reads the old one as kind 0 with the same fields...
    let as_new = ShardRead::decode(old.encode_to_vec().as_slice()).unwrap();
    assert_eq!(as_new.kind, QueryKind::Select.wire());
    assert_eq!(
        (as_new.matchers.clone(), as_new.start_ms, as_new.end_ms),
        (old.matchers.clone(), 0, 10)
    );
    assert_eq!((as_new.series_max, as_new.samples_max), (7, 9));
    // ...and the state machine answers it exactly as before.
    let r = ShardQueryResult::decode(sm.query(&old.encode_to_vec()).as_slice()).unwrap();
    assert_eq!(r.error, "");
    assert_eq!(r.series[0].timestamps, vec![1, 2]);
    let same = ShardQueryResult::decode(sm.query(&as_new.encode_to_vec()).as_slice()).unwrap();
    assert_eq!(same, r);
    // An older replica answers a new kind with a raw select: the answer
    // reads as kind 0, so the caller can tell.
    let from_old_replica = ShardReadResult::decode(r.encode_to_vec().as_slice()).unwrap();
    assert_eq!(from_old_replica.kind, 0);
    assert!(from_old_replica.series.is_empty() && from_old_replica.values.is_empty());
}

#[test]
fn bad_requests_are_refused_as_invalid() {
    let sm = sm();
    let m = || vec![matcher(0, "__name__", "m")];
    let code = |r: ShardRead| {
        let a = ask(&sm, &r);
        (ErrorCode::from_wire(a.error_code), a.error)
    };
    let (c, e) = code(range(m(), 0, 100, 0, 10));
    assert_eq!(c, ErrorCode::InvalidArgument);
    assert!(e.contains("step"), "{e}");
    assert_eq!(
        code(range(m(), 0, 100, -5, 10)).0,
        ErrorCode::InvalidArgument
    );
    let (c, e) = code(range(m(), 100, 0, 1, 10));
    assert_eq!(c, ErrorCode::InvalidArgument);
    assert!(
        e.contains("end timestamp must not be before start time"),
        "{e}"
    );
    // Exactly 11,000 steps after the first is allowed; one more is not.
    assert_eq!(code(range(m(), 0, STEPS_MAX, 1, 10)).0, ErrorCode::None);
    let (c, e) = code(range(m(), 0, STEPS_MAX + 1, 1, 10));
    assert_eq!(c, ErrorCode::InvalidArgument);
    assert!(
        e.contains("exceeded maximum resolution of 11,000 points"),
        "{e}"
    );
    assert_eq!(
        code(range(m(), i64::MIN, i64::MAX, 1, 10)).0,
        ErrorCode::InvalidArgument
    );
    assert_eq!(code(instant(m(), 5, 0)).0, ErrorCode::InvalidArgument);
    let (c, e) = code(instant(vec![matcher(2, "job", "(")], 5, 10));
    assert_eq!(c, ErrorCode::InvalidArgument);
    assert!(e.contains("regular expression"), "{e}");
    assert_eq!(
        code(instant(vec![matcher(9, "job", "x")], 5, 10)).0,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(ShardRead {
            start_ms: 1,
            ..instant(m(), 5, 10)
        })
        .0,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(read(QueryKind::LabelValues, vec![])).0,
        ErrorCode::InvalidArgument,
        "no label name"
    );
    let (c, e) = code(ShardRead {
        kind: 77,
        ..read(QueryKind::Series, m())
    });
    assert_eq!(c, ErrorCode::Unsupported);
    assert!(e.contains("77"), "{e}");
}

#[test]
fn extreme_times_do_not_overflow() {
    let mut sm = sm();
    write(
        &mut sm,
        1,
        &raw_of(&[(labels(&[("__name__", "m")]), &[(0, 1.0), (10, 2.0)])]),
    );
    let m = || vec![matcher(0, "__name__", "m")];
    let p = points(&ask(&sm, &instant(m(), i64::MAX, i64::MAX)));
    assert_eq!(
        p.values().next().unwrap(),
        &vec![(i64::MAX, 2.0f64.to_bits())]
    );
    let p = points(&ask(&sm, &instant(m(), i64::MIN, i64::MAX)));
    assert!(p.is_empty(), "{p:?}");
    let p = points(&ask(&sm, &range(m(), i64::MIN, i64::MIN + 5, 1, i64::MAX)));
    assert!(p.is_empty(), "{p:?}");
    let p = points(&ask(
        &sm,
        &range(m(), i64::MAX - 10, i64::MAX, i64::MAX / 2, i64::MAX),
    ));
    assert_eq!(
        p.values().next().unwrap(),
        &vec![(i64::MAX - 10, 2.0f64.to_bits())]
    );
}

// ---- Against the model ----

fn arb_labels() -> impl Strategy<Value = LabelSet> {
    (0u8..2, 0u8..3, 0u8..3).prop_map(|(n, j, e)| {
        let mut l = vec![
            ("__name__".to_string(), format!("m{n}")),
            ("job".to_string(), format!("j{j}")),
        ];
        match e {
            0 => {} // No env label at all.
            1 => l.push(("env".into(), "prod".into())),
            _ => l.push(("env".into(), "dev".into())),
        }
        l.sort();
        l
    })
}

fn arb_samples() -> impl Strategy<Value = BTreeMap<i64, u64>> {
    // Values 0..4 or, one time in five, a staleness marker.
    prop::collection::btree_map(
        0i64..400,
        prop_oneof![
            4 => (0u8..4).prop_map(|v| f64::from(v).to_bits()),
            1 => Just(stale_nan().to_bits()),
        ],
        0..40,
    )
}

fn arb_raw() -> impl Strategy<Value = Raw> {
    prop::collection::btree_map(arb_labels(), arb_samples(), 0..10).prop_map(|mut r| {
        r.retain(|_, s| !s.is_empty());
        r
    })
}

fn arb_matchers() -> impl Strategy<Value = Vec<MatcherPb>> {
    let one = prop_oneof![
        Just(matcher(0, "__name__", "m0")),
        Just(matcher(2, "__name__", "m.*")),
        Just(matcher(1, "job", "j1")),
        Just(matcher(2, "job", "j[01]")),
        Just(matcher(0, "env", "")),
        Just(matcher(1, "env", "")),
        Just(matcher(2, "env", "pr.*")),
        Just(matcher(3, "env", "dev")),
        Just(matcher(2, "env", ".*")),
        Just(matcher(0, "nope", "")),
    ];
    prop::collection::vec(one, 0..3)
}

/// The raw samples split into two commands at `cut` (by time), so some
/// series get samples from both and chunks are built over two appends.
fn apply_in_two(sm: &mut ShardStateMachine<MemStore>, raw: &Raw, cut: i64) {
    let part = |keep: &dyn Fn(i64) -> bool| -> Raw {
        raw.iter()
            .map(|(l, s)| {
                (
                    l.clone(),
                    s.iter()
                        .filter(|(t, _)| keep(**t))
                        .map(|(t, v)| (*t, *v))
                        .collect::<BTreeMap<_, _>>(),
                )
            })
            .filter(|(_, s)| !s.is_empty())
            .collect()
    };
    write(sm, 1, &part(&|t| t < cut));
    write(sm, 2, &part(&|t| t >= cut));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Instant and range points equal the brute-force lookback rule over
    /// the raw samples; series, label names and label values equal the
    /// model's selection.
    #[test]
    fn queries_match_the_brute_force_model(
        raw in arb_raw(),
        cut in 0i64..400,
        ms in arb_matchers(),
        start in -50i64..450,
        len in 0i64..300,
        step in 1i64..60,
        lookback in 1i64..120,
        name in prop_oneof![Just("env"), Just("job"), Just("__name__"), Just("nope")],
    ) {
        let mut sm = sm();
        apply_in_two(&mut sm, &raw, cut);
        let end = start + len;

        let got = points(&ask(&sm, &instant(ms.clone(), end, lookback)));
        prop_assert_eq!(got, model_range(&raw, &ms, end, end, 1, lookback));

        let got = points(&ask(&sm, &range(ms.clone(), start, end, step, lookback)));
        prop_assert_eq!(got, model_range(&raw, &ms, start, end, step, lookback));

        let want = model_series(&raw, &ms, start, end);
        let r = ask(&sm, &ShardRead {
            start_ms: start,
            end_ms: end,
            ..read(QueryKind::Series, ms.clone())
        });
        prop_assert_eq!(r.error_code, 0, "{:?}", r.error);
        let got: Vec<LabelSet> = r.series.iter().map(|s| {
            prop_assert!(s.timestamps.is_empty());
            Ok(s.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect())
        }).collect::<Result<_, TestCaseError>>()?;
        prop_assert_eq!(&got, &want);

        let names: BTreeSet<String> = want.iter().flatten().map(|(n, _)| n.clone()).collect();
        let r = ask(&sm, &ShardRead {
            start_ms: start,
            end_ms: end,
            ..read(QueryKind::LabelNames, ms.clone())
        });
        prop_assert_eq!(r.values, names.into_iter().collect::<Vec<_>>());

        let values: BTreeSet<String> = want
            .iter()
            .flatten()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect();
        let r = ask(&sm, &ShardRead {
            start_ms: start,
            end_ms: end,
            label_name: name.into(),
            ..read(QueryKind::LabelValues, ms.clone())
        });
        prop_assert_eq!(r.values, values.into_iter().collect::<Vec<_>>());
    }

    /// A limit refuses exactly the answers that exceed it, with its own code.
    #[test]
    fn limits_refuse_exactly_what_exceeds_them(
        raw in arb_raw(),
        ms in arb_matchers(),
        start in 0i64..400,
        len in 0i64..300,
        step in 1i64..60,
        series_max in 1u64..8,
        samples_max in 1u64..60,
    ) {
        let mut sm = sm();
        apply_in_two(&mut sm, &raw, 200);
        let end = start + len;
        let want = model_range(&raw, &ms, start, end, step, 100);
        let series = want.len() as u64;
        let samples: u64 = want.values().map(|p| p.len() as u64).sum();

        let r = ask(&sm, &ShardRead {
            series_max,
            ..range(ms.clone(), start, end, step, 100)
        });
        let code = ErrorCode::from_wire(r.error_code);
        prop_assert_eq!(code == ErrorCode::SeriesLimit, series > series_max, "{:?}", r.error);
        prop_assert!(code == ErrorCode::None || code == ErrorCode::SeriesLimit);
        if code == ErrorCode::SeriesLimit {
            prop_assert!(r.error.contains(&series_max.to_string()), "{}", r.error);
            prop_assert!(r.error.contains("series limit"), "{}", r.error);
        }

        let r = ask(&sm, &ShardRead {
            samples_max,
            ..range(ms.clone(), start, end, step, 100)
        });
        let code = ErrorCode::from_wire(r.error_code);
        prop_assert_eq!(code == ErrorCode::SamplesLimit, samples > samples_max, "{:?}", r.error);
        prop_assert!(code == ErrorCode::None || code == ErrorCode::SamplesLimit);

        let listed = model_series(&raw, &ms, start, end).len() as u64;
        let r = ask(&sm, &ShardRead {
            start_ms: start,
            end_ms: end,
            series_max,
            ..read(QueryKind::Series, ms.clone())
        });
        prop_assert_eq!(
            ErrorCode::from_wire(r.error_code) == ErrorCode::SeriesLimit,
            listed > series_max
        );
    }
}

fn eval(expr: &str, start: i64, end: i64, step: i64) -> ShardRead {
    ShardRead {
        start_ms: start,
        end_ms: end,
        step_ms: step,
        expr: expr.into(),
        ..read(QueryKind::Eval, Vec::new())
    }
}

#[test]
fn eval_runs_promql_over_this_shards_series() {
    let mut sm = sm();
    let a: Vec<(i64, f64)> = (0..10).map(|i| (i * 15_000, i as f64)).collect();
    let b: Vec<(i64, f64)> = (0..10).map(|i| (i * 15_000, 2.0 * i as f64)).collect();
    let c: Vec<(i64, f64)> = vec![(0, 5.0), (15_000, stale_nan())];
    let raw = raw_of(&[
        (
            labels(&[("__name__", "x_total"), ("job", "a"), ("i", "1")]),
            &a,
        ),
        (
            labels(&[("__name__", "x_total"), ("job", "a"), ("i", "2")]),
            &b,
        ),
        (
            labels(&[("__name__", "x_total"), ("job", "b"), ("i", "3")]),
            &c,
        ),
    ]);
    write(&mut sm, 1, &raw);

    // Instant: per-second rate of each series, summed per job.
    let r = ask(
        &sm,
        &eval("sum by (job) (rate(x_total[1m]))", 135_000, 135_000, 0),
    );
    let p = points(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    let (l, pts) = p.iter().next().unwrap();
    assert_eq!(l, &labels(&[("job", "a")]));
    assert_eq!(pts.len(), 1);
    let v = f64::from_bits(pts[0].1);
    assert!((v - 0.2).abs() < 1e-9, "rate sum {v}");
    assert!(r.infos.is_empty(), "{:?}", r.infos);

    // Range: the stale marker ends job b's series after one step.
    let r = ask(&sm, &eval("count by (job) (x_total)", 0, 30_000, 15_000));
    let p = points(&r);
    assert_eq!(p[&labels(&[("job", "a")])].len(), 3);
    assert_eq!(p[&labels(&[("job", "b")])].len(), 1);

    // Annotations travel back.
    let r = ask(
        &sm,
        &eval("sum(rate({job=\"a\"}[1m]))", 135_000, 135_000, 0),
    );
    assert_eq!(r.error, "");
    assert_eq!(r.infos.len(), 0);
    let r = ask(
        &sm,
        &eval(
            "sum(rate(x_total[1m])) + sum(rate(label_replace(x_total, \"__name__\", \"y\", \"\", \"\")[1m:15s]))",
            135_000,
            135_000,
            0,
        ),
    );
    assert_eq!(r.error, "");
    assert!(
        r.infos.iter().any(|i| i.contains("might not be a counter")),
        "{:?}",
        r.infos
    );
}

#[test]
fn eval_refuses_bad_expressions_and_limits() {
    let mut sm = sm();
    let a: Vec<(i64, f64)> = (0..100).map(|i| (i * 1_000, i as f64)).collect();
    write(&mut sm, 1, &raw_of(&[(labels(&[("__name__", "m")]), &a)]));
    let r = ask(&sm, &eval("sum(", 0, 0, 0));
    assert_eq!(
        ErrorCode::from_wire(r.error_code),
        ErrorCode::InvalidArgument,
        "{r:?}"
    );
    let r = ask(&sm, &eval("m", 0, 10, 0));
    assert_eq!(
        ErrorCode::from_wire(r.error_code),
        ErrorCode::InvalidArgument,
        "{r:?}"
    );
    let mut limited = eval("sum(m)", 0, 99_000, 1_000);
    limited.samples_max = 10;
    let r = ask(&sm, &limited);
    assert_eq!(
        ErrorCode::from_wire(r.error_code),
        ErrorCode::SamplesLimit,
        "{r:?}"
    );
}

#[test]
fn eval_keeps_names_and_flags_the_ones_to_remove() {
    let mut sm = sm();
    let a: Vec<(i64, f64)> = (0..10).map(|i| (i * 15_000, i as f64)).collect();
    write(
        &mut sm,
        1,
        &raw_of(&[(labels(&[("__name__", "x_total"), ("i", "1")]), &a)]),
    );
    let r = ask(
        &sm,
        &eval(
            "rate(x_total[1m]) or last_over_time(x_total[1m])",
            135_000,
            135_000,
            0,
        ),
    );
    assert_eq!(r.error, "");
    assert_eq!(r.series.len(), 1);
    assert!(
        r.series[0].labels.iter().any(|l| l.name == "__name__"),
        "the name travels"
    );
    assert_eq!(r.drop_name, [true], "and is flagged for removal");
}
