//! Persistence on both storage engines: flushed data reads back identical
//! after a reopen, a crash loses exactly what was not flushed, retention,
//! hash collisions and corruption reporting.

use raftwatch_model::{Labels, Sample, SeriesHash, SeriesRef, TimestampMs};
use raftwatch_seams::DetRng;
use raftwatch_storage::{KvStore, MemStore, WriteBatch};
use raftwatch_storage_sled::{SledConfig, SledStore};
use raftwatch_tsdb::{RejectReason, Tsdb, TsdbConfig, TsdbError};

use crate::{all_samples, labels, small_config};

/// Appends a seeded pseudo-random workload: in-order samples, some
/// out-of-order ones, duplicates and a few hundred chunk cuts.
fn workload<S: KvStore>(db: &mut Tsdb<S>, seed: u64, rounds: std::ops::Range<i64>) {
    let mut rng = DetRng::new(seed);
    for round in rounds {
        let mut batch = Vec::new();
        for s in 0..8 {
            let name = format!("s{s}");
            let l: Labels = labels(&[("__name__", "w"), ("s", name.as_str())]);
            let jitter = rng.range_i64(-30, 0);
            let t = round * 10 + jitter;
            // Half the series hold decimals (hundredths), so sealed chunks
            // are stored in both encodings.
            let v = if rng.chance(0.1) {
                f64::NAN
            } else if s % 2 == 0 {
                (rng.unit_f64() * 10_000.0).round() / 100.0
            } else {
                rng.unit_f64() * 100.0
            };
            batch.push((l, vec![Sample::new(t, v)]));
        }
        db.append_series(&batch).unwrap();
    }
}

/// `chunk_encodings` counts the persisted chunk records (stored one key
/// each or packed in blocks) by encoding byte, reading them out of a
/// snapshot of a freshly flushed engine (whose chunks are all persisted),
/// parsed per `docs/format/tsdb.md`.
fn chunk_encodings<S: KvStore>(db: &Tsdb<S>) -> [usize; 256] {
    use raftwatch_model::encoding::Reader;
    let mut counts = [0; 256];
    for piece in db.snapshot(1 << 16) {
        let piece = piece.unwrap();
        let mut r = Reader::new(&piece[..piece.len() - 4]);
        let (_version, _flags) = (r.u8().unwrap(), r.u8().unwrap());
        for _ in 0..r.uvarint().unwrap() {
            let klen = r.uvarint().unwrap() as usize;
            let key = r.bytes(klen).unwrap();
            let vlen = r.uvarint().unwrap() as usize;
            let value = r.bytes(vlen).unwrap();
            if key[0] == 0x03 {
                let rec = raftwatch_chunk::ChunkRecord::decode(value).unwrap();
                counts[usize::from(rec.encoding)] += 1;
            }
        }
    }
    counts
}

fn reopen_reads_back_identical<S: KvStore>(store: S, reopen: impl Fn(S) -> S) {
    let config = small_config(50);
    let mut db = Tsdb::open(store, config.clone()).unwrap();
    workload(&mut db, 1, 0..300);
    db.flush().unwrap();
    let before = all_samples(&db);
    assert!(before.iter().map(|(_, s)| s.len()).sum::<usize>() > 2000);
    let (stats, encodings) = (db.stats(), chunk_encodings(&db));
    assert!(
        stats.blocks >= 1 && stats.block_index_bytes > 0,
        "{stats:?}"
    );
    let store = db.into_store();
    assert!(
        encodings[usize::from(raftwatch_chunk::ENCODING_XOR)] > 0
            && encodings[usize::from(raftwatch_chunk::ENCODING_DECIMAL)] > 0,
        "chunk records by encoding: {encodings:?}"
    );
    let store = reopen(store);
    let mut db = Tsdb::open(store, config.clone()).unwrap();
    assert_eq!(all_samples(&db), before);
    // The reopened engine continues: heads were restored appendable.
    workload(&mut db, 2, 300..620);
    db.flush().unwrap();
    let after = all_samples(&db);
    let store = reopen(db.into_store());
    let db = Tsdb::open(store, config).unwrap();
    assert_eq!(all_samples(&db), after);
}

#[test]
fn flushed_data_reads_back_identical_after_reopen_in_memory() {
    reopen_reads_back_identical(MemStore::new(), |s| s);
}

#[test]
fn flushed_data_reads_back_identical_after_reopen_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = SledStore::open(&path, &SledConfig::default()).unwrap();
    reopen_reads_back_identical(store, |s| {
        drop(s);
        SledStore::open(&path, &SledConfig::default()).unwrap()
    });
}

#[test]
fn crash_loses_exactly_what_was_not_flushed() {
    let store = MemStore::new();
    let config = small_config(50);
    let mut db = Tsdb::open(store.clone(), config.clone()).unwrap();
    workload(&mut db, 3, 0..100);
    db.flush().unwrap();
    let flushed = all_samples(&db);
    workload(&mut db, 4, 100..200);
    assert_ne!(all_samples(&db), flushed);
    drop(db);
    store.crash();
    let db = Tsdb::open(store, config).unwrap();
    assert_eq!(all_samples(&db), flushed);
}

#[test]
fn failed_flush_poisons_the_engine_and_reopen_recovers_the_last_flush() {
    let store = MemStore::new();
    let config = small_config(0);
    let mut db = Tsdb::open(store.clone(), config.clone()).unwrap();
    workload(&mut db, 5, 0..50);
    db.flush().unwrap();
    let flushed = all_samples(&db);
    workload(&mut db, 6, 50..60);
    store.fail_next_flush();
    assert!(matches!(db.flush(), Err(TsdbError::Storage(_))));
    assert!(matches!(db.append(&[]), Err(TsdbError::Poisoned)));
    drop(db);
    store.crash();
    let db = Tsdb::open(store, config).unwrap();
    assert_eq!(all_samples(&db), flushed);
}

#[test]
fn retention_hides_refuses_and_deletes_old_data() {
    let store = MemStore::new();
    let config = small_config(0);
    let mut db = Tsdb::open(store.clone(), config.clone()).unwrap();
    let keep = labels(&[("__name__", "keep")]);
    let gone = labels(&[("__name__", "gone")]);
    let samples: Vec<Sample> = (0..100).map(|i| Sample::new(i * 10, i as f64)).collect();
    db.append_series(&[
        (keep.clone(), samples.clone()),
        (gone.clone(), samples[..20].to_vec()),
    ])
    .unwrap();
    db.flush().unwrap();
    let size_before = store.size_on_disk_bytes().unwrap();

    let report = db.delete_before(TimestampMs(505)).unwrap();
    assert_eq!(report.series_deleted, 1);
    assert!(report.chunks_deleted > 0);
    let check = |db: &Tsdb<MemStore>| {
        let all = all_samples(db);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, keep);
        assert_eq!(all[0].1.first().map(|s| s.0), Some(510));
        assert_eq!(all[0].1.len(), 49);
        assert_eq!(db.lookup(&gone), None);
    };
    check(&db);
    let r = db
        .append_series(&[(keep.clone(), vec![Sample::new(100, 1.0)])])
        .unwrap();
    assert!(matches!(
        r.rejections[0].reason,
        RejectReason::BeforeRetention { .. }
    ));
    db.flush().unwrap();
    assert!(store.size_on_disk_bytes().unwrap() < size_before);
    drop(db);
    let mut db = Tsdb::open(store, config).unwrap();
    check(&db);
    // A series removed by retention can come back as a new series.
    db.append_series(&[(gone.clone(), vec![Sample::new(2000, 1.0)])])
        .unwrap();
    assert!(db.lookup(&gone).is_some());
}

#[test]
fn colliding_hashes_never_merge_series() {
    let store = MemStore::new();
    let config = TsdbConfig {
        series_hash: |_| SeriesHash(7),
        ..small_config(0)
    };
    let mut db = Tsdb::open(store.clone(), config.clone()).unwrap();
    let series: Vec<Labels> = (0..4)
        .map(|i| labels(&[("__name__", "c"), ("i", i.to_string().as_str())]))
        .collect();
    for (i, l) in series.iter().enumerate() {
        db.append_series(&[(l.clone(), vec![Sample::new(1, i as f64)])])
            .unwrap();
    }
    let refs: Vec<_> = series.iter().map(|l| db.lookup(l).unwrap()).collect();
    let mut distinct = refs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4);
    let check = |db: &Tsdb<MemStore>| {
        let all = all_samples(db);
        assert_eq!(all.len(), 4);
        for (i, (l, s)) in all.iter().enumerate() {
            assert_eq!(l, &series[i]);
            assert_eq!(s, &vec![(1, (i as f64).to_bits())]);
        }
    };
    check(&db);
    db.flush().unwrap();
    drop(db);
    let db = Tsdb::open(store, config).unwrap();
    check(&db);
    for (l, r) in series.iter().zip(&refs) {
        assert_eq!(db.lookup(l), Some(*r));
    }
}

/// Finds the first persisted chunk key (prefix 0x03, per
/// `docs/format/tsdb.md`).
fn first_chunk_key(store: &MemStore) -> Vec<u8> {
    store
        .scan(&[0x03], Some(&[0x04]))
        .next()
        .unwrap()
        .unwrap()
        .0
}

#[test]
fn checksum_mismatch_is_reported_as_corruption_naming_series_and_chunk() {
    let store = MemStore::new();
    let mut db = Tsdb::open(store.clone(), small_config(0)).unwrap();
    let l = labels(&[("__name__", "x")]);
    db.append_series(&[(l, (0..20).map(|i| Sample::new(i, 1.0)).collect())])
        .unwrap();
    db.flush().unwrap();
    drop(db);
    let key = first_chunk_key(&store);
    let mut value = store.get(&key).unwrap().unwrap();
    let mid = value.len() / 2;
    value[mid] ^= 0x10;
    let mut b = WriteBatch::new();
    b.put(key, value);
    store.write(b).unwrap();
    let db = Tsdb::open(store, small_config(0)).unwrap();
    let e = db.select(&[], TimestampMs::MIN, TimestampMs::MAX);
    let err = db
        .samples(e[0].series_ref, TimestampMs::MIN, TimestampMs::MAX)
        .unwrap()
        .find_map(Result::err)
        .unwrap();
    runs_report_what_the_iterator_does(&db, e[0].series_ref);
    let msg = err.to_string();
    assert!(matches!(err, TsdbError::Corruption { .. }));
    assert!(
        msg.contains("series 0") && msg.contains("starting at 0ms") && msg.contains("checksum"),
        "{msg}"
    );
}

#[test]
fn non_monotonic_chunk_with_valid_checksum_is_corruption_not_a_panic() {
    use raftwatch_model::encoding::{put_uvarint, put_varint};
    let store = MemStore::new();
    let mut db = Tsdb::open(store.clone(), small_config(0)).unwrap();
    db.append_series(&[(
        labels(&[("__name__", "x")]),
        (0..20).map(|i| Sample::new(i * 10, 1.0)).collect(),
    )])
    .unwrap();
    db.flush().unwrap();
    drop(db);
    // A well-formed record (docs/format/chunk.md) whose second timestamp
    // goes backwards: delta u64::MAX wraps to -1.
    let mut payload = Vec::new();
    put_varint(&mut payload, 0);
    payload.extend_from_slice(&1.0f64.to_bits().to_be_bytes());
    put_uvarint(&mut payload, u64::MAX);
    payload.push(0); // value XOR bit '0': unchanged
    let mut rec = vec![1u8, 1u8];
    put_uvarint(&mut rec, 2);
    put_varint(&mut rec, 0);
    put_uvarint(&mut rec, 0);
    put_uvarint(&mut rec, payload.len() as u64);
    rec.extend_from_slice(&payload);
    let crc = crc32c_of(&rec);
    rec.extend_from_slice(&crc.to_le_bytes());
    let mut b = WriteBatch::new();
    b.put(first_chunk_key(&store), rec);
    store.write(b).unwrap();
    let db = Tsdb::open(store, small_config(0)).unwrap();
    let e = db.select(&[], TimestampMs::MIN, TimestampMs::MAX);
    let results: Vec<_> = db
        .samples(e[0].series_ref, TimestampMs::MIN, TimestampMs::MAX)
        .unwrap()
        .collect();
    let err = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("corruption must be reported");
    assert!(matches!(err, TsdbError::Corruption { .. }), "{err}");
    runs_report_what_the_iterator_does(&db, e[0].series_ref);
}

/// `runs_report_what_the_iterator_does` reads series `r` of a damaged
/// store both ways: `next_run` yields the samples the iterator yields
/// before its error, then the same error, then nothing.
fn runs_report_what_the_iterator_does<S: KvStore>(db: &Tsdb<S>, r: SeriesRef) {
    let items: Vec<_> = db
        .samples(r, TimestampMs::MIN, TimestampMs::MAX)
        .unwrap()
        .collect();
    let mut it = db.samples(r, TimestampMs::MIN, TimestampMs::MAX).unwrap();
    let mut got = Vec::new();
    loop {
        match it.next_run() {
            Ok(Some(run)) => got.extend(run.iter().copied().map(Ok)),
            Ok(None) => break,
            Err(e) => got.push(Err(e)),
        }
    }
    let show = |v: &[Result<Sample, TsdbError>]| -> Vec<String> {
        v.iter().map(|x| format!("{x:?}")).collect()
    };
    assert_eq!(show(&got), show(&items));
    assert!(
        items.iter().any(Result::is_err),
        "the store was not damaged"
    );
}

fn crc32c_of(b: &[u8]) -> u32 {
    // CRC-32C (Castagnoli), bitwise; independent of the crate under test.
    let mut crc = !0u32;
    for &byte in b {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn label_limits_and_series_limit_are_typed_rejections() {
    let config = TsdbConfig {
        series_max: 2,
        label_limits: raftwatch_model::LabelLimits {
            labels_per_series_max: 2,
            ..Default::default()
        },
        ..small_config(0)
    };
    let mut db = Tsdb::open(MemStore::new(), config).unwrap();
    let loose =
        Labels::from_pairs([("a", "1"), ("b", "2"), ("c", "3")], &Default::default()).unwrap();
    let r = db
        .append_series(&[
            (labels(&[("a", "1")]), vec![Sample::new(1, 1.0)]),
            (loose, vec![Sample::new(1, 1.0), Sample::new(2, 1.0)]),
            (labels(&[("a", "2")]), vec![Sample::new(1, 1.0)]),
            (labels(&[("a", "3")]), vec![Sample::new(1, 1.0)]),
        ])
        .unwrap();
    assert_eq!(r.accepted, 2);
    let reasons: Vec<(usize, RejectReason)> = r
        .rejections
        .into_iter()
        .map(|x| (x.index, x.reason))
        .collect();
    assert!(matches!(reasons[0], (1, RejectReason::InvalidLabels(_))));
    assert!(matches!(reasons[1], (2, RejectReason::InvalidLabels(_))));
    assert!(matches!(
        reasons[2],
        (4, RejectReason::SeriesLimit { limit: 2 })
    ));
}

#[test]
fn head_log_records_and_checkpoints_alternate_and_replay_exactly() {
    let store = MemStore::new();
    let config = small_config(50);
    let mut db = Tsdb::open(store.clone(), config.clone()).unwrap();
    let count = |prefix: u8| store.scan(&[prefix], Some(&[prefix + 1])).count();
    let (mut saw_log, mut saw_checkpoint_drop) = (false, false);
    let mut previous_logs = 0;
    for round in 0..60i64 {
        workload(&mut db, 100 + round as u64, round * 3..round * 3 + 3);
        db.flush().unwrap();
        let logs = count(0x05);
        saw_log |= logs > 0;
        saw_checkpoint_drop |= previous_logs > 0 && logs == 0;
        previous_logs = logs;
        // Every flush point reopens to exactly what the engine serves.
        if round % 7 == 0 {
            let expected = all_samples(&db);
            drop(db);
            store.crash();
            db = Tsdb::open(store.clone(), config.clone()).unwrap();
            assert_eq!(all_samples(&db), expected, "after flush {round}");
        }
    }
    assert!(saw_log, "flushes must write head-log records");
    assert!(
        saw_checkpoint_drop,
        "a checkpoint must replace the head log"
    );
}

#[test]
fn unusable_configuration_is_refused_naming_the_setting() {
    for (config, setting) in [
        (
            TsdbConfig {
                chunk_samples_max: 70_000,
                ..TsdbConfig::default()
            },
            "chunk_samples_max",
        ),
        (
            TsdbConfig {
                chunk_samples_max: 0,
                ..TsdbConfig::default()
            },
            "chunk_samples_max",
        ),
        (
            TsdbConfig {
                chunk_span_ms_max: 0,
                ..TsdbConfig::default()
            },
            "chunk_span_ms_max",
        ),
        (
            TsdbConfig {
                out_of_order_window_ms: -1,
                ..TsdbConfig::default()
            },
            "out_of_order_window_ms",
        ),
    ] {
        let err = Tsdb::open(MemStore::new(), config).unwrap_err();
        assert!(
            matches!(err, TsdbError::InvalidConfig(ref m) if m.contains(setting)),
            "{err}"
        );
    }
}

/// `engine_prefixes` counts the store's keys by their first byte.
fn engine_prefixes(store: &MemStore) -> std::collections::BTreeMap<u8, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for kv in store.scan(&[0x00], None) {
        let (k, _) = kv.unwrap();
        *counts.entry(k[0]).or_insert(0) += 1;
    }
    counts
}

#[test]
fn an_engine_that_is_not_reopenable_reads_the_same_and_writes_only_chunks() {
    // The same workload, flushes and retention on a reopenable engine and
    // on one that is not: every read agrees at every step, and the second
    // store holds chunks only (chunk and block records with their blobs;
    // no head-log, checkpoint or meta records, so no series records), since
    // nothing will ever reopen it.
    let config = small_config(50);
    let scratch_config = TsdbConfig {
        reopenable: false,
        ..config.clone()
    };
    let (full, scratch) = (MemStore::new(), MemStore::new());
    let mut a = Tsdb::open(full.clone(), config.clone()).unwrap();
    let mut b = Tsdb::open(scratch.clone(), scratch_config.clone()).unwrap();
    for step in 0..6i64 {
        workload(&mut a, 7 + step as u64, step * 50..step * 50 + 50);
        workload(&mut b, 7 + step as u64, step * 50..step * 50 + 50);
        if step == 3 {
            let ra = a.delete_before(TimestampMs(1_000)).unwrap();
            let rb = b.delete_before(TimestampMs(1_000)).unwrap();
            assert_eq!(ra, rb);
        }
        a.flush().unwrap();
        b.flush().unwrap();
        assert_eq!(all_samples(&b), all_samples(&a), "after flush {step}");
        assert_eq!(
            crate::range_samples(&b, 600, 1_900),
            crate::range_samples(&a, 600, 1_900)
        );
    }
    let full_keys = engine_prefixes(&full);
    let scratch_keys = engine_prefixes(&scratch);
    // Series records travel in the head log and checkpoint, not as keys.
    assert!(
        full_keys.contains_key(&0x01)
            && (full_keys.contains_key(&0x05) || full_keys.contains_key(&0x07))
            && !full_keys.contains_key(&0x02),
        "{full_keys:?}"
    );
    assert!(
        scratch_keys.get(&0x06).copied().unwrap_or(0) >= 1,
        "{scratch_keys:?}"
    );
    assert!(
        scratch_keys.keys().all(|p| [0x03, 0x06].contains(p)),
        "only chunk and block records: {scratch_keys:?}"
    );
    assert_eq!(scratch.blob_ids().unwrap().len(), scratch_keys[&0x06]);
    // Its snapshot restores to the same engine as the reopenable one's.
    let pieces = |db: &Tsdb<MemStore>| -> Vec<Vec<u8>> {
        db.snapshot(512).collect::<Result<_, _>>().unwrap()
    };
    let from_a = Tsdb::restore(MemStore::new(), scratch_config.clone(), pieces(&a)).unwrap();
    let from_b = Tsdb::restore(MemStore::new(), scratch_config, pieces(&b)).unwrap();
    assert_eq!(all_samples(&from_b), all_samples(&a));
    assert_eq!(all_samples(&from_a), all_samples(&from_b));
}

/// Every series' samples as `all_samples` returns them.
type Dump = Vec<(Labels, Vec<(i64, u64)>)>;

/// A flushed engine whose chunks are all packed into blocks
/// (`block_bytes_min: 0`), with its samples.
fn packed_engine(store: &MemStore) -> (TsdbConfig, Dump) {
    let config = TsdbConfig {
        block_bytes_min: 0,
        ..small_config(0)
    };
    let mut db = Tsdb::open(store.clone(), config.clone()).unwrap();
    workload(&mut db, 11, 0..60);
    db.flush().unwrap();
    workload(&mut db, 12, 60..120);
    db.flush().unwrap();
    assert_eq!(db.stats().inline_chunk_bytes, 0);
    assert!(db.stats().blocks >= 2, "{:?}", db.stats());
    (config, all_samples(&db))
}

#[test]
fn a_block_written_by_a_flush_that_failed_is_deleted_on_reopen() {
    let store = MemStore::new();
    let (config, flushed) = packed_engine(&store);
    let blobs_before = store.blob_ids().unwrap();
    let mut db = Tsdb::open(store.clone(), config.clone()).unwrap();
    workload(&mut db, 13, 120..180);
    // The block's blob is durable as soon as it is written; the flush that
    // would make its record durable fails, then the process dies.
    store.fail_next_flush();
    assert!(db.flush().is_err());
    drop(db);
    assert!(store.blob_ids().unwrap().len() > blobs_before.len());
    store.crash();
    let db = Tsdb::open(store.clone(), config).unwrap();
    assert_eq!(all_samples(&db), flushed);
    assert_eq!(
        store.blob_ids().unwrap(),
        blobs_before,
        "the orphan is gone"
    );
    // Blocks, head-log records and the head checkpoint are all blobs.
    assert!(db.stats().blocks >= 2 && db.stats().blocks < blobs_before.len());
}

#[test]
fn damage_in_a_block_is_corruption_naming_the_block_and_chunk() {
    let store = MemStore::new();
    let (config, _) = packed_engine(&store);
    let id = store.blob_ids().unwrap()[0];
    let put = |bytes: &[u8]| {
        let mut b = WriteBatch::new();
        b.put_blob(id, bytes.to_vec());
        store.write(b).unwrap();
    };
    // The blob's length: the largest readable prefix.
    let (mut lo, mut hi) = (0usize, 1 << 20);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if store.read_blob(id, 0, mid).is_ok() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let full = store.read_blob(id, 0, lo).unwrap();
    assert!(full.len() > 100);
    let mut damaged = full.clone();
    damaged[5] ^= 0x40;
    put(&damaged);
    let db = Tsdb::open(store.clone(), config.clone()).unwrap();
    let err = db
        .select(&[], TimestampMs::MIN, TimestampMs::MAX)
        .iter()
        .find_map(|e| {
            db.samples(e.series_ref, TimestampMs::MIN, TimestampMs::MAX)
                .unwrap()
                .find_map(Result::err)
        })
        .unwrap();
    assert!(matches!(err, TsdbError::Corruption { .. }), "{err}");
    assert!(err.to_string().contains("chunk of series"), "{err}");
    drop(db);
    // A damaged directory (the blob's last bytes) stops the open, naming
    // the block.
    let mut damaged = full.clone();
    let last = damaged.len() - 6;
    damaged[last] ^= 0x01;
    put(&damaged);
    let err = Tsdb::open(store.clone(), config.clone()).unwrap_err();
    assert!(err.to_string().contains(&format!("block {id}")), "{err}");
    // A blob cut short too.
    put(&full[..full.len() - 1]);
    let err = Tsdb::open(store.clone(), config.clone()).unwrap_err();
    assert!(err.to_string().contains(&format!("block {id}")), "{err}");
    put(&full);
    assert!(Tsdb::open(store, config).is_ok());
}

#[test]
fn compaction_merges_a_tier_of_blocks_and_reads_stay_identical() {
    // The same workload with compaction off and on: every read agrees at
    // every flush and after a crash and reopen, and with it on the store
    // holds fewer, larger blocks whose series' chunks lie side by side.
    let off = TsdbConfig {
        compaction_fanin: 0,
        ..small_config(50)
    };
    let on = TsdbConfig {
        compaction_fanin: 2,
        ..small_config(50)
    };
    let (store_off, store_on) = (MemStore::new(), MemStore::new());
    let mut a = Tsdb::open(store_off.clone(), off.clone()).unwrap();
    let mut b = Tsdb::open(store_on.clone(), on.clone()).unwrap();
    for step in 0..12i64 {
        workload(&mut a, 40 + step as u64, step * 30..step * 30 + 30);
        workload(&mut b, 40 + step as u64, step * 30..step * 30 + 30);
        if step == 8 {
            assert_eq!(
                a.delete_before(TimestampMs(200)).unwrap().series_deleted,
                b.delete_before(TimestampMs(200)).unwrap().series_deleted
            );
        }
        a.flush().unwrap();
        b.flush().unwrap();
        assert_eq!(all_samples(&b), all_samples(&a), "after flush {step}");
        assert_eq!(
            crate::range_samples(&b, 100, 250),
            crate::range_samples(&a, 100, 250)
        );
    }
    let (blocks_off, blocks_on) = (a.stats().blocks, b.stats().blocks);
    assert!(
        blocks_on * 2 < blocks_off,
        "compaction on: {blocks_on} blocks, off: {blocks_off}"
    );
    // Every flush read every block; the cache kept pages of the live ones
    // only (a merged block's pages are dropped with it).
    let cached = b.stats().block_cache;
    assert!(cached.hits > 0 && cached.misses > 0, "{cached:?}");
    assert!(
        (1..=blocks_on).contains(&cached.blocks),
        "{cached:?} for {blocks_on} blocks"
    );
    // The merged blocks' blobs are gone: every blob is a block, a head-log
    // record or the checkpoint that a key points to.
    let keys = engine_prefixes(&store_on);
    let count = |p: u8| keys.get(&p).copied().unwrap_or(0);
    assert_eq!(
        store_on.blob_ids().unwrap().len(),
        count(0x06) + count(0x05) + count(0x07)
    );
    let expected = all_samples(&b);
    drop(b);
    store_on.crash();
    let b = Tsdb::open(store_on, on).unwrap();
    assert_eq!(all_samples(&b), expected);
    assert_eq!(expected, all_samples(&a));
}
