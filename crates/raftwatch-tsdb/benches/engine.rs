//! The engine's two hot paths at the size of `raftwatch-bench tsdb`'s
//! default run (10,000 series), on the in-memory store so that only the
//! engine is timed:
//!
//! - `append/round`: one scrape (one sample for each series) through
//!   [`Tsdb::append`], with a flush every 20 rounds outside the timing;
//! - `read/all`: every sample of every series (720 rounds, flushed every 20)
//!   through [`Tsdb::select`] and [`Tsdb::samples`], one at a time;
//!   `read/all_runs` the same through `SampleIter::next_run`.
//!
//! Throughput is in samples, so criterion's "elem/s" inverts to ns/sample.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raftwatch_model::{LabelLimits, Labels, Sample, SeriesRef, TimestampMs};
use raftwatch_seams::{Clock, SystemClock};
use raftwatch_storage::MemStore;
use raftwatch_tsdb::{Tsdb, TsdbConfig};

const SERIES: usize = 10_000;
const FLUSH_EVERY: u64 = 20;
const INTERVAL_MS: i64 = 15_000;

/// `Fleet` is a fixed-seed mix of counters, random-walk gauges and
/// constants, 15 s apart with a per-series offset.
struct Fleet {
    state: u64,
    values: Vec<f64>,
    offsets: Vec<i64>,
}

impl Fleet {
    fn new() -> Fleet {
        let mut f = Fleet {
            // A fixed-seed xorshift: reproducible, and no RNG dependency.
            state: 0x9e37_79b9_7f4a_7c15,
            values: vec![0.0; SERIES],
            offsets: Vec::with_capacity(SERIES),
        };
        for _ in 0..SERIES {
            let o = (f.next() % 15_000) as i64;
            f.offsets.push(o);
        }
        f
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// `round` fills `batch` with scrape `round` of every series.
    fn round(&mut self, refs: &[SeriesRef], round: u64, batch: &mut Vec<(SeriesRef, Sample)>) {
        batch.clear();
        for (i, &r) in refs.iter().enumerate() {
            let x = self.next();
            let v = &mut self.values[i];
            match i % 3 {
                0 => *v += (x % 4_096) as f64,
                1 => *v = ((*v * 100.0).round() + (x % 201) as f64 - 100.0) / 100.0,
                _ => *v = 1.0,
            }
            let t = 1_700_000_000_000 + round as i64 * INTERVAL_MS + self.offsets[i];
            batch.push((r, Sample::new(t, *v)));
        }
    }
}

fn engine() -> (Tsdb<MemStore>, Vec<SeriesRef>) {
    let mut db = Tsdb::open(MemStore::new(), TsdbConfig::default()).expect("open");
    let limits = LabelLimits::default();
    let refs = (0..SERIES)
        .map(|i| {
            let labels = Labels::from_pairs(
                [
                    ("__name__", format!("metric_{}", i % 97)),
                    ("instance", format!("host-{}:9100", i / 97)),
                    ("job", "node".to_string()),
                ],
                &limits,
            )
            .expect("labels");
            db.series_ref(&labels).expect("series")
        })
        .collect();
    (db, refs)
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("round", |b| {
        let (mut db, mut refs) = engine();
        let mut fleet = Fleet::new();
        let mut batch = Vec::with_capacity(SERIES);
        let mut round = 0u64;
        let clock = SystemClock::new();
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                // A fresh engine every 6 h of data keeps memory bounded.
                if round == 1_440 {
                    (db, refs) = engine();
                    fleet = Fleet::new();
                    round = 0;
                }
                fleet.round(&refs, round, &mut batch);
                let t0 = clock.now_mono();
                let report = db.append(black_box(&batch)).expect("append");
                timed += Duration::from_nanos(clock.now_mono().nanos_since(t0));
                assert_eq!(report.accepted, SERIES);
                round += 1;
                if round.is_multiple_of(FLUSH_EVERY) {
                    db.flush().expect("flush");
                }
            }
            timed
        });
    });
    g.finish();
}

fn read(c: &mut Criterion) {
    let (mut db, refs) = engine();
    let mut fleet = Fleet::new();
    let mut batch = Vec::with_capacity(SERIES);
    let rounds = 720;
    for round in 0..rounds {
        fleet.round(&refs, round, &mut batch);
        db.append(&batch).expect("append");
        if (round + 1).is_multiple_of(FLUSH_EVERY) {
            db.flush().expect("flush");
        }
    }
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(SERIES as u64 * rounds));
    g.sample_size(20);
    g.bench_function("all", |b| {
        b.iter(|| {
            let mut n = 0u64;
            let mut sum = 0u64;
            for e in db.select(&[], TimestampMs::MIN, TimestampMs::MAX) {
                for s in db
                    .samples(e.series_ref, TimestampMs::MIN, TimestampMs::MAX)
                    .expect("samples")
                {
                    let s = s.expect("sample");
                    sum = sum.wrapping_add(s.value.to_bits() ^ s.timestamp.0 as u64);
                    n += 1;
                }
            }
            assert_eq!(n, SERIES as u64 * rounds);
            sum
        })
    });
    g.bench_function("all_runs", |b| {
        b.iter(|| {
            let mut n = 0u64;
            let mut sum = 0u64;
            for e in db.select(&[], TimestampMs::MIN, TimestampMs::MAX) {
                let mut it = db
                    .samples(e.series_ref, TimestampMs::MIN, TimestampMs::MAX)
                    .expect("samples");
                while let Some(run) = it.next_run().expect("samples") {
                    for s in run {
                        sum = sum.wrapping_add(s.value.to_bits() ^ s.timestamp.0 as u64);
                    }
                    n += run.len() as u64;
                }
            }
            assert_eq!(n, SERIES as u64 * rounds);
            sum
        })
    });
    g.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
