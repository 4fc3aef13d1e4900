//! The shard state machine against a model: a `BTreeMap` of accepted
//! samples per label set, through encoded commands, queries, snapshots and
//! restores.

#![allow(clippy::unwrap_used)]

mod query;

use std::collections::BTreeMap;

use proptest::prelude::*;
use prost::Message;
use raftwatch_raft::GroupStateMachine;
use raftwatch_shard::codec::{
    COMMAND_VERSION, LabelPb, MatcherPb, SeriesPb, ShardCommand, ShardQuery, ShardQueryResult,
    ShardRequest, ShardWriteResult,
};
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

fn series(name: &str, job: &str, samples: &[(i64, f64)]) -> SeriesPb {
    SeriesPb {
        labels: vec![
            LabelPb {
                name: "__name__".into(),
                value: name.into(),
            },
            LabelPb {
                name: "job".into(),
                value: job.into(),
            },
        ],
        timestamps: samples.iter().map(|s| s.0).collect(),
        values: samples.iter().map(|s| s.1).collect(),
    }
}

fn command(series: Vec<SeriesPb>) -> Vec<u8> {
    ShardCommand {
        version: COMMAND_VERSION,
        series,
        request_id: String::new(),
        requests: vec![],
    }
    .encode_to_vec()
}

fn apply(sm: &mut ShardStateMachine<MemStore>, index: u64, cmd: &[u8]) -> ShardWriteResult {
    ShardWriteResult::decode(sm.apply(index, cmd).as_slice()).unwrap()
}

type Model = BTreeMap<(String, String), BTreeMap<i64, u64>>;

fn read_all(sm: &ShardStateMachine<MemStore>) -> Model {
    let q = ShardQuery {
        matchers: vec![MatcherPb {
            op: 2,
            name: "__name__".into(),
            value: ".+".into(),
        }],
        start_ms: i64::MIN,
        end_ms: i64::MAX,
        series_max: 0,
        samples_max: 0,
    };
    let r = ShardQueryResult::decode(sm.query(&q.encode_to_vec()).as_slice()).unwrap();
    assert_eq!(r.error, "");
    let mut out = Model::new();
    for s in r.series {
        let get = |n: &str| {
            s.labels
                .iter()
                .find(|l| l.name == n)
                .map(|l| l.value.clone())
                .unwrap()
        };
        let e = out.entry((get("__name__"), get("job"))).or_default();
        for (t, v) in s.timestamps.iter().zip(&s.values) {
            e.insert(*t, v.to_bits());
        }
    }
    out
}

#[test]
fn rejections_are_numbered_in_the_command_including_invalid_series() {
    let mut sm = sm();
    let bad = SeriesPb {
        labels: vec![LabelPb {
            name: String::new(),
            value: "x".into(),
        }],
        timestamps: vec![1, 2],
        values: vec![1.0, 2.0],
    };
    let r = apply(
        &mut sm,
        1,
        &command(vec![
            series("a", "j", &[(10, 1.0)]),
            bad,
            series("b", "j", &[(10, 1.0), (10, 2.0)]),
        ]),
    );
    assert_eq!(r.error, "");
    assert_eq!(r.accepted, 2);
    let idx: Vec<u32> = r.rejections.iter().map(|r| r.index).collect();
    // Samples 1 and 2 are the invalid series'; 4 duplicates 3's timestamp.
    assert_eq!(idx, vec![1, 2, 4], "{:?}", r.rejections);
    assert!(r.rejections[0].reason.contains("invalid"));
    assert!(r.rejections[2].reason.contains("duplicate"));
}

fn coalesced(requests: Vec<(&str, Vec<SeriesPb>)>) -> Vec<u8> {
    ShardCommand {
        version: COMMAND_VERSION,
        series: vec![],
        request_id: String::new(),
        requests: requests
            .into_iter()
            .map(|(id, series)| ShardRequest {
                series,
                request_id: id.into(),
            })
            .collect(),
    }
    .encode_to_vec()
}

#[test]
fn a_request_id_is_applied_once_and_remembered_across_snapshots() {
    let mut sm = sm();
    let first = apply(
        &mut sm,
        1,
        &coalesced(vec![
            ("r1", vec![series("a", "j", &[(10, 1.0), (10, 2.0)])]),
            ("r2", vec![series("b", "j", &[(10, 1.0)])]),
        ]),
    );
    assert_eq!(first.results.len(), 2);
    assert_eq!(first.results[0].accepted, 1);
    assert_eq!(first.results[0].rejections.len(), 1);
    assert!(!first.results[0].deduplicated);
    // Meanwhile series a moves on, so a re-applied old sample would now be
    // refused as out of order: the retry must get the stored answer.
    apply(
        &mut sm,
        2,
        &coalesced(vec![("r3", vec![series("a", "j", &[(20, 3.0)])])]),
    );
    let before = read_all(&sm);
    let mut restored = self::sm();
    restored.restore(&sm.snapshot().unwrap()).unwrap();
    for m in [&mut sm, &mut restored] {
        let retry = apply(
            m,
            3,
            &coalesced(vec![(
                "r1",
                vec![series("a", "j", &[(10, 1.0), (10, 2.0)])],
            )]),
        );
        assert!(retry.results[0].deduplicated);
        assert_eq!(retry.results[0].accepted, first.results[0].accepted);
        assert_eq!(retry.results[0].rejections, first.results[0].rejections);
        assert_eq!(read_all(m), before);
    }
}

#[test]
fn request_ids_expire_by_log_index() {
    let mut sm = sm();
    let cmd = coalesced(vec![("r1", vec![series("a", "j", &[(10, 1.0)])])]);
    apply(&mut sm, 1, &cmd);
    let window = raftwatch_shard::sm::DEDUP_WINDOW_ENTRIES;
    let inside = apply(&mut sm, 1 + window, &cmd);
    assert!(inside.results[0].deduplicated);
    let outside = apply(&mut sm, 2 + window, &cmd);
    // Forgotten: applied again (an identical sample is a no-op).
    assert!(!outside.results[0].deduplicated);
    assert_eq!(outside.results[0].accepted, 1);
}

#[test]
fn undecodable_and_future_commands_change_nothing() {
    let mut sm = sm();
    apply(&mut sm, 1, &command(vec![series("a", "j", &[(1, 1.0)])]));
    let before = read_all(&sm);
    let r = apply(&mut sm, 2, &[0xff, 0xff, 0xff]);
    assert!(!r.error.is_empty());
    let future = ShardCommand {
        version: COMMAND_VERSION + 1,
        series: vec![series("a", "j", &[(2, 2.0)])],
        request_id: String::new(),
        requests: vec![],
    }
    .encode_to_vec();
    let r = apply(&mut sm, 3, &future);
    assert!(r.error.contains("version"), "{r:?}");
    assert_eq!(read_all(&sm), before);
}

#[test]
fn restore_refuses_damage_and_keeps_the_state() {
    let mut sm = sm();
    apply(
        &mut sm,
        1,
        &command(vec![series("a", "j", &[(1, 1.0), (2, 2.0)])]),
    );
    let before = read_all(&sm);
    let mut snap = sm.snapshot().unwrap();
    let last = snap.len() - 1;
    snap[last] ^= 0xff;
    assert!(sm.restore(&snap).is_err());
    assert!(sm.restore(b"nonsense").is_err());
    assert!(sm.restore(&snap[..snap.len() / 2]).is_err());
    assert_eq!(read_all(&sm), before);
}

/// One command: (metric, job, samples as (timestamp, value)) per series.
type Batch = Vec<(u8, u8, Vec<(i64, u8)>)>;

fn arb_batch() -> impl Strategy<Value = Batch> {
    prop::collection::vec(
        (
            0u8..3,
            0u8..3,
            prop::collection::vec((0i64..50, 0u8..4), 0..6),
        ),
        1..5,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every accepted sample is readable with its value and never replaces
    /// a different stored value; refused samples change nothing; and a snapshot
    /// restored into a fresh machine answers identically, and keeps doing
    /// so after the same further commands.
    #[test]
    fn matches_model_and_snapshots_round_trip(
        batches in prop::collection::vec(arb_batch(), 1..8),
        split in 0usize..8,
    ) {
        let mut a = sm();
        let mut model = Model::new();
        let mut b: Option<ShardStateMachine<MemStore>> = None;
        for (i, batch) in batches.iter().enumerate() {
            if i == split.min(batches.len() - 1) {
                let mut fresh = sm();
                fresh.restore(&a.snapshot().unwrap()).unwrap();
                prop_assert_eq!(read_all(&fresh), read_all(&a));
                b = Some(fresh);
            }
            let series_list: Vec<SeriesPb> = batch
                .iter()
                .map(|(n, j, samples)| {
                    let samples: Vec<(i64, f64)> =
                        samples.iter().map(|(t, v)| (*t, f64::from(*v))).collect();
                    series(&format!("m{n}"), &format!("j{j}"), &samples)
                })
                .collect();
            let cmd = command(series_list.clone());
            let r = apply(&mut a, i as u64 + 1, &cmd);
            prop_assert_eq!(&r.error, "");
            if let Some(b) = b.as_mut() {
                let rb = apply(b, i as u64 + 1, &cmd);
                prop_assert_eq!(&rb, &r);
            }
            let rejected: std::collections::BTreeSet<u32> =
                r.rejections.iter().map(|r| r.index).collect();
            let mut index = 0u32;
            for s in &series_list {
                let key = (s.labels[0].value.clone(), s.labels[1].value.clone());
                for (t, v) in s.timestamps.iter().zip(&s.values) {
                    let entry = model.entry(key.clone()).or_default();
                    if rejected.contains(&index) {
                        // A refused sample changes nothing (checked by the
                        // read-back below). It may equal a stored one: an
                        // old identical sample is refused as out of order,
                        // as Prometheus does.
                    } else {
                        let old = entry.insert(*t, v.to_bits());
                        prop_assert!(old.is_none() || old == Some(v.to_bits()));
                    }
                    index += 1;
                }
            }
            model.retain(|_, v| !v.is_empty());
            prop_assert_eq!(read_all(&a), model.clone());
        }
        if let Some(b) = b {
            prop_assert_eq!(read_all(&b), read_all(&a));
        }
    }
}

/// The apply path before borrowed decoding: prost, then `Labels::new` for
/// every series, then the engine's `append_series`; rejections numbered
/// across the command. The state machine must answer exactly this.
fn reference_append(
    db: &mut raftwatch_tsdb::Tsdb<MemStore>,
    series: &[SeriesPb],
) -> (u64, Vec<(u32, String)>) {
    use raftwatch_model::{Label, Labels, Sample};
    let limits = db.config().label_limits;
    let mut batch = Vec::new();
    let mut offsets = Vec::new();
    let mut rejections = Vec::new();
    let mut index = 0u32;
    for s in series {
        let n = s.timestamps.len().min(s.values.len()) as u32;
        let labels = s
            .labels
            .iter()
            .map(|l| Label::new(l.name.clone(), l.value.clone()))
            .collect();
        match Labels::new(labels, &limits) {
            Ok(labels) => {
                let samples: Vec<Sample> = s
                    .timestamps
                    .iter()
                    .zip(&s.values)
                    .map(|(&t, &v)| Sample::new(t, v))
                    .collect();
                offsets.extend(index..index + n);
                batch.push((labels, samples));
            }
            Err(e) => {
                for k in 0..n {
                    rejections.push((index + k, format!("invalid series labels: {e}")));
                }
            }
        }
        index += n;
    }
    let report = db.append_series(&batch).unwrap();
    for r in report.rejections {
        rejections.push((offsets[r.index], r.reason.to_string()));
    }
    rejections.sort();
    ((report.accepted + report.duplicates) as u64, rejections)
}

fn arb_label() -> impl Strategy<Value = LabelPb> {
    // Small alphabets so names repeat, values go empty, order varies.
    ("[ab_]{0,2}", "[xy]{0,2}").prop_map(|(name, value)| LabelPb { name, value })
}

fn arb_series() -> impl Strategy<Value = SeriesPb> {
    (
        prop::collection::vec(arb_label(), 0..4),
        any::<bool>(),
        prop::collection::vec((0i64..20, 0u8..3), 0..4),
        0usize..2,
    )
        .prop_map(|(mut labels, sort, samples, drop_values)| {
            if sort {
                labels.sort_by(|a, b| a.name.cmp(&b.name));
            }
            let mut values: Vec<f64> = samples.iter().map(|s| f64::from(s.1)).collect();
            values.truncate(values.len().saturating_sub(drop_values));
            SeriesPb {
                labels,
                timestamps: samples.iter().map(|s| s.0).collect(),
                values,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Borrowed decoding and the known-series fast path change nothing:
    /// canonical, unsorted, duplicate, empty and over-limit label sets,
    /// single and coalesced commands, all answer as the owned path did.
    #[test]
    fn apply_answers_as_the_owned_path_did(
        commands in prop::collection::vec(
            (prop::collection::vec(arb_series(), 0..4), any::<bool>()),
            1..10,
        ),
        colliding in any::<bool>(),
    ) {
        let mut config = raftwatch_tsdb::TsdbConfig::default();
        if colliding {
            // Every series shares one hash: identity rests on comparing labels.
            config.series_hash = |_| raftwatch_model::SeriesHash(7);
        }
        config.label_limits.labels_per_series_max = 2;
        config.label_limits.label_value_bytes_max = 1;
        let mut sm = ShardStateMachine::open(config.clone(), Box::new(Mem)).unwrap();
        let mut db = raftwatch_tsdb::Tsdb::open(MemStore::new(), config).unwrap();
        for (i, (series, coalesce)) in commands.into_iter().enumerate() {
            let (bytes, parts) = if coalesce {
                let (a, b) = series.split_at(series.len() / 2);
                let parts = vec![a.to_vec(), b.to_vec()];
                let cmd = ShardCommand {
                    version: COMMAND_VERSION,
                    series: vec![],
                    request_id: String::new(),
                    requests: parts
                        .iter()
                        .map(|p| ShardRequest { series: p.clone(), request_id: String::new() })
                        .collect(),
                };
                (cmd.encode_to_vec(), parts)
            } else {
                (command(series.clone()), vec![series])
            };
            let got = apply(&mut sm, i as u64 + 1, &bytes);
            prop_assert_eq!(&got.error, "");
            let got: Vec<ShardWriteResult> = if coalesce { got.results } else { vec![got] };
            prop_assert_eq!(got.len(), parts.len());
            for (r, part) in got.iter().zip(&parts) {
                let (accepted, rejections) = reference_append(&mut db, part);
                let r_rej: Vec<(u32, String)> =
                    r.rejections.iter().map(|x| (x.index, x.reason.clone())).collect();
                prop_assert_eq!(r.accepted, accepted);
                prop_assert_eq!(r_rej, rejections);
            }
            prop_assert_eq!(sm.db().unwrap().stats().series, db.stats().series);
        }
    }
}

#[test]
fn flushes_move_sealed_chunks_out_and_write_no_series_or_head_records() {
    // A replica is rebuilt from snapshot and log at every start, so its
    // engine's flushes write sealed chunks only; reads are unaffected.
    let mut m = sm();
    let entries = raftwatch_shard::sm::FLUSH_EVERY_ENTRIES * 2 + 1;
    let mut expected: Model = BTreeMap::new();
    for i in 0..entries {
        let t = i64::try_from(i).unwrap() * 1_000;
        let job = format!("j{}", i % 3);
        apply(
            &mut m,
            i + 1,
            &command(vec![series("up", &job, &[(t, 1.0)])]),
        );
        expected
            .entry(("up".into(), job))
            .or_default()
            .insert(t, 1.0f64.to_bits());
    }
    assert_eq!(read_all(&m), expected);
    let store = m.db().unwrap().store();
    let mut prefixes = BTreeMap::new();
    for kv in raftwatch_storage::KvStore::scan(store, &[0x00], None) {
        let (k, _) = kv.unwrap();
        *prefixes.entry(k[0]).or_insert(0usize) += 1;
    }
    assert!(
        prefixes.get(&0x03).copied().unwrap_or(0) >= 3,
        "{prefixes:?}"
    );
    assert_eq!(
        prefixes.keys().copied().collect::<Vec<_>>(),
        vec![0x03],
        "{prefixes:?}"
    );
}
