//! Snapshot → restore gives an engine with identical query results.

use proptest::prelude::*;
use raftwatch_model::{Labels, Sample, TimestampMs};
use raftwatch_storage::MemStore;
use raftwatch_tsdb::{Tsdb, TsdbError};

use crate::{all_samples, labels, range_samples, small_config};

fn build(ops: &[(usize, i64, bool)], window: i64) -> Tsdb<MemStore> {
    let mut db = Tsdb::open(MemStore::new(), small_config(window)).unwrap();
    for &(s, t, flush) in ops {
        let name = format!("s{s}");
        let l: Labels = labels(&[("__name__", "m"), ("s", name.as_str())]);
        db.append_series(&[(l, vec![Sample::new(t, t as f64 * 0.5)])])
            .unwrap();
        if flush {
            db.flush().unwrap();
        }
    }
    db
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_restore_gives_identical_results(
        ops in proptest::collection::vec((0usize..5, 0i64..500, proptest::bool::weighted(0.1)), 0..150),
        window in 0i64..200,
        piece_bytes in 64usize..2048,
        cutoff in proptest::option::of(0i64..300),
    ) {
        let mut db = build(&ops, window);
        if let Some(c) = cutoff {
            db.delete_before(TimestampMs(c)).unwrap();
        }
        let pieces: Vec<Vec<u8>> = db.snapshot(piece_bytes).collect::<Result<_, _>>().unwrap();
        for p in &pieces[..pieces.len() - 1] {
            // Bounded pieces (a single oversized entry may exceed the bound).
            prop_assert!(p.len() <= piece_bytes + 512);
        }
        let restored = Tsdb::restore(MemStore::new(), small_config(window), pieces.clone()).unwrap();
        prop_assert_eq!(all_samples(&restored), all_samples(&db));
        prop_assert_eq!(range_samples(&restored, 100, 250), range_samples(&db, 100, 250));
        prop_assert_eq!(
            restored.label_names(&[], TimestampMs::MIN, TimestampMs::MAX),
            db.label_names(&[], TimestampMs::MIN, TimestampMs::MAX)
        );
        // A snapshot of the restored engine restores to the same results too.
        let again: Vec<Vec<u8>> = restored.snapshot(piece_bytes).collect::<Result<_, _>>().unwrap();
        let twice = Tsdb::restore(MemStore::new(), small_config(window), again).unwrap();
        prop_assert_eq!(all_samples(&twice), all_samples(&db));
    }
}

#[test]
fn damaged_or_truncated_snapshots_are_refused() {
    let ops: Vec<(usize, i64, bool)> = (0..200).map(|i| (i % 3, i as i64, i % 50 == 0)).collect();
    let db = build(&ops, 0);
    let pieces: Vec<Vec<u8>> = db.snapshot(256).collect::<Result<_, _>>().unwrap();
    assert!(pieces.len() > 3);

    let mut flipped = pieces.clone();
    flipped[1][5] ^= 0x40;
    let err = Tsdb::restore(MemStore::new(), small_config(0), flipped).unwrap_err();
    assert!(
        matches!(err, TsdbError::InvalidSnapshot(ref m) if m.contains("checksum")),
        "{err}"
    );

    let truncated = pieces[..pieces.len() - 1].to_vec();
    let err = Tsdb::restore(MemStore::new(), small_config(0), truncated).unwrap_err();
    assert!(
        matches!(err, TsdbError::InvalidSnapshot(ref m) if m.contains("last piece")),
        "{err}"
    );

    // Restoring into a store that already holds an engine is refused.
    let store = MemStore::new();
    let _ = Tsdb::restore(store.clone(), small_config(0), pieces.clone()).unwrap();
    let err = Tsdb::restore(store, small_config(0), pieces).unwrap_err();
    assert!(
        matches!(err, TsdbError::InvalidSnapshot(ref m) if m.contains("not empty")),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// A restored engine is not just equal at the moment of the snapshot:
    /// the same further appends and flushes keep it equal (a replica that
    /// installed a snapshot goes on applying the log).
    #[test]
    fn a_restored_engine_stays_identical_under_further_appends(
        ops in proptest::collection::vec((0usize..4, 0i64..40, proptest::bool::weighted(0.15)), 0..300),
        split in 0usize..300,
        window in 0i64..50,
    ) {
        let split = split.min(ops.len());
        let mut a = Tsdb::open(MemStore::new(), small_config(window)).unwrap();
        let mut b: Option<Tsdb<MemStore>> = None;
        let mut clock = [0i64; 4];
        for (i, &(s, dt, flush)) in ops.iter().enumerate() {
            if i == split {
                let pieces: Vec<Vec<u8>> = a.snapshot(256).collect::<Result<_, _>>().unwrap();
                b = Some(Tsdb::restore(MemStore::new(), small_config(window), pieces).unwrap());
            }
            // Mostly in order, sometimes back in time (within or beyond
            // the window), as writers do.
            clock[s] += dt - 8;
            let name = format!("s{s}");
            let l: Labels = labels(&[("__name__", "m"), ("s", name.as_str())]);
            let samples: Vec<Sample> = (0..3).map(|j| Sample::new(clock[s] + j, (clock[s] + j) as f64)).collect();
            let ra = a.append_series(&[(l.clone(), samples.clone())]).unwrap();
            if let Some(b) = b.as_mut() {
                let rb = b.append_series(&[(l, samples)]).unwrap();
                prop_assert_eq!(format!("{ra:?}"), format!("{rb:?}"));
            }
            if flush {
                a.flush().unwrap();
                if let Some(b) = b.as_mut() {
                    b.flush().unwrap();
                }
            }
            if let Some(b) = b.as_ref() {
                prop_assert_eq!(all_samples(b), all_samples(&a));
            }
        }
    }
}

#[test]
fn a_restored_engine_reopens_identical_across_its_first_checkpoints() {
    use raftwatch_storage::KvStore;
    // A restore writes each head and each series record under its own key;
    // the first checkpoint replaces them with the one checkpoint blob. Both
    // read back the same.
    let ops: Vec<(usize, i64, bool)> = (0..300i64)
        .map(|i| ((i % 5) as usize, i, i % 40 == 39))
        .collect();
    let source = build(&ops, 0);
    let pieces: Vec<Vec<u8>> = source.snapshot(256).collect::<Result<_, _>>().unwrap();
    let store = MemStore::new();
    let db = Tsdb::restore(store.clone(), small_config(0), pieces).unwrap();
    let head_keys = |s: &MemStore| s.scan(&[0x04], Some(&[0x05])).count();
    let series_keys = |s: &MemStore| s.scan(&[0x02], Some(&[0x03])).count();
    assert!(head_keys(&store) > 0);
    assert_eq!(series_keys(&store), 5);
    drop(db);
    let mut db = Tsdb::open(store.clone(), small_config(0)).unwrap();
    assert_eq!(all_samples(&db), all_samples(&source));
    for round in 0..10i64 {
        let l: Labels = labels(&[("__name__", "m"), ("s", "s1")]);
        db.append_series(&[(l, vec![Sample::new(1000 + round, 1.0)])])
            .unwrap();
        db.flush().unwrap();
    }
    assert_eq!(head_keys(&store), 0, "a checkpoint replaced the head keys");
    assert_eq!(
        series_keys(&store),
        0,
        "a checkpoint replaced the series keys"
    );
    let expected = all_samples(&db);
    drop(db);
    let db = Tsdb::open(store, small_config(0)).unwrap();
    assert_eq!(all_samples(&db), expected);
}
