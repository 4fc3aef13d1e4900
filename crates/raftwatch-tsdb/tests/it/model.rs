//! The engine against a `BTreeMap` model: same accept/duplicate/reject
//! decisions, same stored samples, across flushes, crashes and reopens.

use std::collections::BTreeMap;

use proptest::prelude::*;
use raftwatch_model::{Labels, Sample, TimestampMs, stale_nan};
use raftwatch_storage::MemStore;
use raftwatch_tsdb::{RejectReason, Tsdb, TsdbConfig};

use crate::{all_samples, labels, range_samples, small_config};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Duplicate,
    Rejected,
}

#[derive(Clone, Debug)]
struct Model {
    series: BTreeMap<Labels, BTreeMap<i64, u64>>,
    /// Retention: samples before it are gone and refused.
    cutoff: i64,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            series: BTreeMap::new(),
            cutoff: i64::MIN,
        }
    }
}

impl Model {
    fn append(&mut self, l: &Labels, t: i64, bits: u64, window: i64) -> Outcome {
        if t < self.cutoff {
            return Outcome::Rejected;
        }
        let s = self.series.entry(l.clone()).or_default();
        let newest = s.keys().next_back().copied();
        match newest {
            None => {}
            Some(n) if t > n => {}
            Some(n) if n - t > window => return Outcome::Rejected,
            Some(_) => match s.get(&t) {
                Some(&b) if b == bits => return Outcome::Duplicate,
                Some(_) => return Outcome::Rejected,
                None => {}
            },
        }
        s.insert(t, bits);
        Outcome::Accepted
    }

    /// Retention to `cutoff`: a series left with no sample is removed.
    fn delete_before(&mut self, cutoff: i64) {
        self.cutoff = self.cutoff.max(cutoff);
        for s in self.series.values_mut() {
            *s = s.split_off(&self.cutoff);
        }
        self.series.retain(|_, s| !s.is_empty());
    }

    fn window(&self, mint: i64, maxt: i64) -> Vec<(Labels, Vec<(i64, u64)>)> {
        self.series
            .iter()
            .map(|(l, s)| {
                let w: Vec<(i64, u64)> = s.range(mint..=maxt).map(|(&t, &b)| (t, b)).collect();
                (l.clone(), w)
            })
            .filter(|(_, w)| !w.is_empty())
            .collect()
    }

    fn dump(&self) -> Vec<(Labels, Vec<(i64, u64)>)> {
        self.series
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(l, s)| (l.clone(), s.iter().map(|(&t, &b)| (t, b)).collect()))
            .collect()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<(usize, i64, usize)>),
    Flush,
    Crash,
    Reopen,
    Retention(i64),
}

const VALUES: [f64; 6] = [0.0, -0.0, 1.5, f64::INFINITY, f64::NAN, 42.0];

fn value(i: usize) -> f64 {
    if i == VALUES.len() {
        stale_nan()
    } else {
        VALUES[i]
    }
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => proptest::collection::vec((0usize..4, 0i64..400, 0usize..=VALUES.len()), 1..20).prop_map(Op::Append),
        1 => Just(Op::Flush),
        1 => Just(Op::Crash),
        1 => Just(Op::Reopen),
        1 => (0i64..400).prop_map(Op::Retention),
    ]
}

fn series_labels(i: usize) -> Labels {
    let i = i.to_string();
    labels(&[("__name__", "m"), ("i", i.as_str())])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model(window in prop_oneof![Just(0i64), 0i64..100, Just(1000)],
                            // Off, one page at most (every read evicts), or
                            // the default.
                            block_cache_bytes in prop_oneof![Just(0usize), Just(1), Just(raftwatch_tsdb::BLOCK_CACHE_BYTES_DEFAULT)],
                            ops in proptest::collection::vec(arb_op(), 1..40)) {
        let store = MemStore::new();
        let config = TsdbConfig { block_cache_bytes, ..small_config(window) };
        let mut db = Tsdb::open(store.clone(), config.clone()).unwrap();
        let mut model = Model::default();
        let mut flushed = Model::default();
        for op in ops {
            match op {
                Op::Append(batch) => {
                    let items: Vec<(Labels, Vec<Sample>)> = batch
                        .iter()
                        .map(|&(s, t, v)| (series_labels(s), vec![Sample::new(t, value(v))]))
                        .collect();
                    let report = db.append_series(&items).unwrap();
                    let mut expected_rejected = Vec::new();
                    let (mut acc, mut dup) = (0, 0);
                    for (i, &(s, t, v)) in batch.iter().enumerate() {
                        match model.append(&series_labels(s), t, value(v).to_bits(), window) {
                            Outcome::Accepted => acc += 1,
                            Outcome::Duplicate => dup += 1,
                            Outcome::Rejected => expected_rejected.push(i),
                        }
                    }
                    let got: Vec<usize> = report.rejections.iter().map(|r| r.index).collect();
                    prop_assert_eq!(got, expected_rejected);
                    prop_assert_eq!(report.accepted, acc);
                    prop_assert_eq!(report.duplicates, dup);
                    for r in &report.rejections {
                        let expected_kind = matches!(r.reason,
                            RejectReason::OutOfOrder { .. }
                                | RejectReason::DuplicateTimestamp { .. }
                                | RejectReason::BeforeRetention { .. });
                        prop_assert!(expected_kind, "unexpected reason {:?}", r.reason);
                    }
                }
                Op::Flush => {
                    db.flush().unwrap();
                    flushed = model.clone();
                }
                Op::Crash => {
                    drop(db);
                    store.crash();
                    db = Tsdb::open(store.clone(), config.clone()).unwrap();
                    model = flushed.clone();
                }
                Op::Reopen => {
                    db.flush().unwrap();
                    drop(db);
                    db = Tsdb::open(store.clone(), config.clone()).unwrap();
                    flushed = model.clone();
                }
                Op::Retention(cutoff) => {
                    db.delete_before(TimestampMs(cutoff)).unwrap();
                    model.delete_before(cutoff);
                }
            }
            prop_assert_eq!(all_samples(&db), model.dump());
            // Windows starting at every stored time: reads of recent data
            // may skip the store, and must still see every persisted chunk
            // (in-order or out-of-order) that reaches into the window.
            let starts: std::collections::BTreeSet<i64> =
                model.series.values().flat_map(|s| s.keys().copied()).collect();
            for &mint in starts.iter().step_by(3) {
                for maxt in [mint + 10, i64::MAX] {
                    prop_assert_eq!(
                        range_samples(&db, mint, maxt),
                        model.window(mint, maxt),
                        "window [{}, {}]", mint, maxt
                    );
                }
            }
        }
    }
}

#[test]
fn staleness_marker_and_nan_payloads_round_trip_bit_exactly() {
    let store = MemStore::new();
    let mut db = Tsdb::open(store.clone(), small_config(0)).unwrap();
    let l = labels(&[("__name__", "up")]);
    let odd_nan = f64::from_bits(0x7ff8_0000_0000_00ff);
    let samples = vec![
        Sample::new(1, 1.0),
        Sample::new(2, stale_nan()),
        Sample::new(3, odd_nan),
        Sample::new(4, -0.0),
    ];
    db.append_series(&[(l.clone(), samples.clone())]).unwrap();
    db.flush().unwrap();
    drop(db);
    let db = Tsdb::open(store, small_config(0)).unwrap();
    let expected: Vec<(i64, u64)> = samples
        .iter()
        .map(|s| (s.timestamp.0, s.value.to_bits()))
        .collect();
    assert_eq!(all_samples(&db), vec![(l, expected)]);
    assert!(raftwatch_model::is_stale_nan(f64::from_bits(
        all_samples(&db)[0].1[1].1
    )));
}

#[test]
fn out_of_order_window_is_measured_against_the_series_newest() {
    let mut db = Tsdb::open(MemStore::new(), small_config(100)).unwrap();
    let a = labels(&[("s", "a")]);
    let b = labels(&[("s", "b")]);
    // Series b is far ahead; it must not affect series a's window.
    db.append_series(&[(b, vec![Sample::new(10_000, 1.0)])])
        .unwrap();
    db.append_series(&[(a.clone(), vec![Sample::new(500, 1.0)])])
        .unwrap();
    let r = db
        .append_series(&[(
            a.clone(),
            vec![Sample::new(400, 2.0), Sample::new(399, 3.0)],
        )])
        .unwrap();
    assert_eq!(r.accepted, 1);
    assert_eq!(r.rejections.len(), 1);
    assert_eq!(r.rejections[0].index, 1);
    assert!(matches!(
        r.rejections[0].reason,
        RejectReason::OutOfOrder { window_ms: 100, .. }
    ));
    // Same timestamp, same value: a no-op; another value: rejected.
    let r = db
        .append_series(&[(
            a,
            vec![
                Sample::new(400, 2.0),
                Sample::new(400, 9.0),
                Sample::new(500, 1.0),
            ],
        )])
        .unwrap();
    assert_eq!((r.accepted, r.duplicates, r.rejections.len()), (0, 2, 1));
    assert!(matches!(
        r.rejections[0].reason,
        RejectReason::DuplicateTimestamp { .. }
    ));
}
