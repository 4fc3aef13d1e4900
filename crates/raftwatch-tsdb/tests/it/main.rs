//! Integration tests of the time-series engine: differential tests against

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]
//! a `BTreeMap` model, persistence and crash behaviour on both storage
//! engines, snapshots, retention, collisions and corruption.

mod memory;
mod model;
mod persistence;
mod select;
mod snapshot;

use raftwatch_model::{LabelLimits, Labels, Sample, TimestampMs};
use raftwatch_storage::KvStore;
use raftwatch_tsdb::{Tsdb, TsdbConfig};

/// `labels` builds a label set from pairs, panicking on invalid input.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied(), &LabelLimits::default()).unwrap()
}

/// `all_samples` reads every sample of every series, sorted by labels.
pub fn all_samples<S: KvStore>(db: &Tsdb<S>) -> Vec<(Labels, Vec<(i64, u64)>)> {
    range_samples(db, i64::MIN, i64::MAX)
}

/// `range_samples` reads every series' samples in `[mint, maxt]`.
pub fn range_samples<S: KvStore>(
    db: &Tsdb<S>,
    mint: i64,
    maxt: i64,
) -> Vec<(Labels, Vec<(i64, u64)>)> {
    db.select(&[], TimestampMs(mint), TimestampMs(maxt))
        .into_iter()
        .map(|e| {
            let samples: Vec<(i64, u64)> = db
                .samples(e.series_ref, TimestampMs(mint), TimestampMs(maxt))
                .unwrap()
                .map(|s| {
                    let s: Sample = s.unwrap();
                    (s.timestamp.0, s.value.to_bits())
                })
                .collect();
            // The bulk reader yields exactly what the iterator does.
            let mut it = db
                .samples(e.series_ref, TimestampMs(mint), TimestampMs(maxt))
                .unwrap();
            let mut by_run = Vec::new();
            while let Some(run) = it.next_run().unwrap() {
                by_run.extend(run.iter().map(|s| (s.timestamp.0, s.value.to_bits())));
            }
            assert_eq!(by_run, samples, "next_run and the iterator differ");
            (e.labels, samples)
        })
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

/// `small_config` makes chunks tiny so that few samples exercise cutting,
/// spans, out-of-order write-out, and both head-log records and head
/// checkpoints, and chunks stored one key each as well as packed into
/// blocks.
pub fn small_config(window_ms: i64) -> TsdbConfig {
    TsdbConfig {
        head_log_bytes_min: 64,
        block_bytes_min: 150,
        out_of_order_window_ms: window_ms,
        chunk_samples_max: 5,
        chunk_span_ms_max: 60,
        ooo_buffer_samples_max: 3,
        ..TsdbConfig::default()
    }
}
