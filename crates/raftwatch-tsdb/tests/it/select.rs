//! Selection with Prometheus matcher semantics against brute force.

use proptest::prelude::*;
use raftwatch_model::{Labels, MatchOp, Matcher, Sample, TimestampMs};
use raftwatch_storage::MemStore;
use raftwatch_tsdb::{Tsdb, TsdbConfig};

use crate::labels;

fn arb_series() -> impl Strategy<Value = Vec<Vec<(String, String)>>> {
    let pair = (
        prop_oneof![Just("a"), Just("b"), Just("c")],
        prop_oneof![Just(""), Just("x"), Just("y"), Just("xy")],
    )
        .prop_map(|(n, v)| (n.to_string(), v.to_string()));
    proptest::collection::vec(proptest::collection::vec(pair, 1..4), 1..12)
}

fn arb_matcher() -> impl Strategy<Value = Matcher> {
    let op = prop_oneof![
        Just(MatchOp::Equal),
        Just(MatchOp::NotEqual),
        Just(MatchOp::RegexMatch),
        Just(MatchOp::RegexNoMatch)
    ];
    let name = prop_oneof![Just("a"), Just("b"), Just("c"), Just("__name__")];
    let value = prop_oneof![
        Just(""),
        Just("x"),
        Just("y"),
        Just("x.*"),
        Just(".*"),
        Just(".+"),
        Just("x|y"),
        Just("xy")
    ];
    (op, name, value).prop_map(|(op, n, v)| Matcher::new(op, n, v).unwrap())
}

fn brute_force(series: &[Labels], matchers: &[Matcher]) -> Vec<Labels> {
    let mut out: Vec<Labels> = series
        .iter()
        .filter(|l| {
            matchers
                .iter()
                .all(|m| m.matches(l.get(m.name()).unwrap_or("")))
        })
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

proptest! {
    #[test]
    fn select_matches_brute_force(raw in arb_series(), matchers in proptest::collection::vec(arb_matcher(), 0..4)) {
        let mut db = Tsdb::open(MemStore::new(), TsdbConfig::default()).unwrap();
        let mut all = Vec::new();
        for (i, pairs) in raw.iter().enumerate() {
            let mut pairs = pairs.clone();
            pairs.sort();
            pairs.dedup_by(|a, b| a.0 == b.0);
            let Ok(l) = Labels::from_pairs(pairs, &Default::default()) else { continue };
            db.append_series(&[(l.clone(), vec![Sample::new(i as i64, 1.0)])]).unwrap();
            all.push(l);
        }
        let got: Vec<Labels> = db.select(&matchers, TimestampMs::MIN, TimestampMs::MAX).into_iter().map(|e| e.labels).collect();
        let expected = brute_force(&all, &matchers);
        prop_assert_eq!(&got, &expected);

        let mut names: Vec<String> = expected.iter().flat_map(|l| l.iter().map(|x| x.name.clone())).collect();
        names.sort();
        names.dedup();
        prop_assert_eq!(db.label_names(&matchers, TimestampMs::MIN, TimestampMs::MAX), names);
        let mut values: Vec<String> = expected.iter().filter_map(|l| l.get("a").map(str::to_string)).collect();
        values.sort();
        values.dedup();
        prop_assert_eq!(db.label_values("a", &matchers, TimestampMs::MIN, TimestampMs::MAX), values);
    }
}

#[test]
fn empty_matching_matchers_select_series_without_the_label() {
    let mut db = Tsdb::open(MemStore::new(), TsdbConfig::default()).unwrap();
    let with = labels(&[("__name__", "m"), ("env", "prod")]);
    let without = labels(&[("__name__", "m")]);
    db.append_series(&[
        (with.clone(), vec![Sample::new(1, 1.0)]),
        (without.clone(), vec![Sample::new(1, 1.0)]),
    ])
    .unwrap();
    let sel = |ms: Vec<Matcher>| -> Vec<Labels> {
        db.select(&ms, TimestampMs::MIN, TimestampMs::MAX)
            .into_iter()
            .map(|e| e.labels)
            .collect()
    };
    let name = Matcher::equal("__name__", "m");
    assert_eq!(
        sel(vec![name.clone(), Matcher::equal("env", "")]),
        vec![without.clone()]
    );
    assert_eq!(
        sel(vec![
            name.clone(),
            Matcher::new(MatchOp::NotEqual, "env", "prod").unwrap()
        ]),
        vec![without.clone()]
    );
    assert_eq!(
        sel(vec![
            name.clone(),
            Matcher::new(MatchOp::RegexMatch, "env", "prod|").unwrap()
        ])
        .len(),
        2
    );
    assert_eq!(
        sel(vec![
            name.clone(),
            Matcher::new(MatchOp::RegexMatch, "env", ".+").unwrap()
        ]),
        vec![with.clone()]
    );
    // Regexes are anchored: "pro" does not match "prod".
    assert!(
        sel(vec![
            name,
            Matcher::new(MatchOp::RegexMatch, "env", "pro").unwrap()
        ])
        .is_empty()
    );
}

#[test]
fn time_range_restricts_selection_and_label_queries() {
    let mut db = Tsdb::open(MemStore::new(), TsdbConfig::default()).unwrap();
    let early = labels(&[("__name__", "early"), ("k", "1")]);
    let late = labels(&[("__name__", "late"), ("k", "2")]);
    db.append_series(&[
        (
            early.clone(),
            vec![Sample::new(0, 1.0), Sample::new(100, 1.0)],
        ),
        (
            late.clone(),
            vec![Sample::new(1000, 1.0), Sample::new(2000, 1.0)],
        ),
    ])
    .unwrap();
    let got: Vec<Labels> = db
        .select(&[], TimestampMs(150), TimestampMs(999))
        .into_iter()
        .map(|e| e.labels)
        .collect();
    assert!(got.is_empty());
    let got: Vec<Labels> = db
        .select(&[], TimestampMs(100), TimestampMs(1000))
        .into_iter()
        .map(|e| e.labels)
        .collect();
    assert_eq!(got, vec![early, late]);
    assert_eq!(
        db.label_values("k", &[], TimestampMs(1500), TimestampMs::MAX),
        vec!["2".to_string()]
    );
    assert_eq!(
        db.label_names(&[], TimestampMs(3000), TimestampMs::MAX),
        Vec::<String>::new()
    );
    let samples: Vec<i64> = db
        .samples(
            db.select(
                &[Matcher::equal("k", "2")],
                TimestampMs::MIN,
                TimestampMs::MAX,
            )[0]
            .series_ref,
            TimestampMs(1001),
            TimestampMs(2000),
        )
        .unwrap()
        .map(|s| s.unwrap().timestamp.0)
        .collect();
    assert_eq!(samples, vec![2000]);
}
