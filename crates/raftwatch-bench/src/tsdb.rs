//! `raftwatch-bench tsdb`: the storage engine on node_exporter-like data.
//!
//! Writes `--series` series for `--rounds` scrapes (15 s apart) through
//! [`Tsdb::append`] onto sled, flushing every `--flush-every` rounds and at
//! the end; measures the directory's size; reopens the engine from disk and
//! reads everything back through `select` + `samples`, timing that pass;
//! then compares every sample bit-exactly with a regenerated copy.

use std::path::PathBuf;

use anyhow::{Context, bail};
use raftwatch_model::{Sample, SeriesRef, TimestampMs};
use raftwatch_seams::{Clock, SystemClock};
use raftwatch_storage::KvStore;
use raftwatch_storage_sled::{SledConfig, SledStore};
use raftwatch_tsdb::{Tsdb, TsdbConfig};
use serde::Serialize;

use crate::nodegen::Fleet;

/// Arguments of `raftwatch-bench tsdb`.
#[derive(clap::Args, Debug)]
pub struct TsdbArgs {
    /// Number of series.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Scrapes per series (15 s apart; 720 = 3 h).
    #[arg(long, default_value_t = 720)]
    rounds: i64,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Flush (the durable point) every this many rounds.
    #[arg(long, default_value_t = 20)]
    flush_every: i64,
    /// Directory for the sled store (default: a fresh temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// The printed result (CONTRACTS.md fields first).
#[derive(Serialize, Debug)]
pub struct TsdbReport {
    samples: u64,
    bytes_per_sample: f64,
    encode_ns_per_sample: f64,
    decode_ns_per_sample: f64,
    roundtrip_ok: bool,
    decode_warm_ns_per_sample: f64,
    series: usize,
    rounds: i64,
    seed: u64,
    disk_bytes: u64,
    logical_bytes_per_sample: f64,
    flush_ns_per_sample: f64,
    flushes: u64,
    head_bytes_per_series: f64,
    /// Memory of the chunk blocks' directories, per series (not head
    /// memory: it grows with the data kept, about 32 bytes per chunk).
    block_index_bytes_per_series: f64,
    /// Blocks, and bytes of chunks still stored one key each.
    blocks: usize,
    inline_chunk_bytes: usize,
    reopen_ms: f64,
    series_per_host: usize,
}

pub(crate) const START_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

pub fn run(args: &TsdbArgs) -> anyhow::Result<TsdbReport> {
    if args.series == 0 || args.rounds <= 0 || args.flush_every <= 0 {
        bail!("--series, --rounds and --flush-every must be positive");
    }
    let clock = SystemClock::new();
    let tmp = tempfile::tempdir()?;
    let sled_config = SledConfig::default();
    let (dir, mut db) = fresh_db(args.data_dir.as_deref(), &tmp, "tsdb")?;
    let written = write_fleet(
        &mut db,
        args.series,
        args.seed,
        args.rounds,
        args.flush_every,
    )?;
    let Written {
        samples,
        encode_ns,
        flush_ns,
        flushes,
        series_per_host,
    } = written;
    let stats = db.stats();
    let head_bytes = stats.head_bytes;
    // Logical size: every key and value the engine holds, as a snapshot
    // streams them; the gap to `disk_bytes` is the store's overhead.
    let mut logical_bytes = 0u64;
    for piece in db.snapshot(raftwatch_tsdb::SNAPSHOT_PIECE_BYTES_DEFAULT) {
        logical_bytes += piece?.len() as u64;
    }
    let store = db.into_store();
    drop(store);
    // Sizes after close, so nothing is still buffered.
    let disk_bytes = dir_size(&dir)?;

    let t0 = clock.now_mono();
    let store = SledStore::open(&dir, &sled_config).context("reopening sled")?;
    let db = Tsdb::open(store, TsdbConfig::default())?;
    let reopen_ns = clock.now_mono().nanos_since(t0);

    // Timed passes: read every sample back through the engine, first right
    // after the reopen (sled's cache cold), then again (warm).
    let (read, decode_ns) = read_all(&db, &clock)?;
    let (_, decode_warm_ns) = read_all(&db, &clock)?;

    let roundtrip_ok = read == samples && verify(&db, args)?;
    Ok(TsdbReport {
        samples,
        bytes_per_sample: disk_bytes as f64 / samples as f64,
        encode_ns_per_sample: encode_ns as f64 / samples as f64,
        decode_ns_per_sample: decode_ns as f64 / read.max(1) as f64,
        roundtrip_ok,
        decode_warm_ns_per_sample: decode_warm_ns as f64 / read.max(1) as f64,
        series: args.series,
        rounds: args.rounds,
        seed: args.seed,
        disk_bytes,
        logical_bytes_per_sample: logical_bytes as f64 / samples as f64,
        flush_ns_per_sample: flush_ns as f64 / samples as f64,
        flushes,
        head_bytes_per_series: head_bytes as f64 / args.series as f64,
        block_index_bytes_per_series: stats.block_index_bytes as f64 / args.series as f64,
        blocks: stats.blocks,
        inline_chunk_bytes: stats.inline_chunk_bytes,
        reopen_ms: reopen_ns as f64 / 1e6,
        series_per_host,
    })
}

/// `fresh_db` opens an empty engine on sled (default settings) in
/// `data_dir`, or in `name` inside `tmp`; refused if the directory exists.
pub(crate) fn fresh_db(
    data_dir: Option<&std::path::Path>,
    tmp: &tempfile::TempDir,
    name: &str,
) -> anyhow::Result<(PathBuf, Tsdb<SledStore>)> {
    let dir = data_dir.map_or_else(|| tmp.path().join(name), std::path::Path::to_path_buf);
    if dir.exists() {
        bail!(
            "data dir {} already exists; the benchmark needs a fresh one",
            dir.display()
        );
    }
    let store = SledStore::open(&dir, &SledConfig::default()).context("opening sled")?;
    let db = Tsdb::open(store, TsdbConfig::default())?;
    Ok((dir, db))
}

/// What [`write_fleet`] wrote and how long the engine took.
pub(crate) struct Written {
    pub samples: u64,
    pub encode_ns: u64,
    pub flush_ns: u64,
    pub flushes: u64,
    pub series_per_host: usize,
}

/// `write_fleet` appends `rounds` scrapes of `series` node_exporter-like
/// series (seed `seed`) from [`START_MS`], flushing every `flush_every`
/// rounds and after the last; fails if the engine refuses a sample.
pub(crate) fn write_fleet<S: KvStore>(
    db: &mut Tsdb<S>,
    series: usize,
    seed: u64,
    rounds: i64,
    flush_every: i64,
) -> anyhow::Result<Written> {
    let clock = SystemClock::new();
    let mut fleet = Fleet::new(series, seed)?;
    let refs: Vec<SeriesRef> = fleet
        .series
        .iter()
        .map(|s| db.series_ref(&s.labels))
        .collect::<Result<_, _>>()?;
    let mut w = Written {
        samples: 0,
        encode_ns: 0,
        flush_ns: 0,
        flushes: 0,
        series_per_host: fleet.series_per_host,
    };
    let mut batch: Vec<(SeriesRef, Sample)> = Vec::with_capacity(series);
    for round in 0..rounds {
        batch.clear();
        for (i, series_gen) in fleet.series.iter_mut().enumerate() {
            let t = START_MS + round * crate::nodegen::SCRAPE_INTERVAL_MS + fleet.offsets_ms[i];
            batch.push((refs[i], Sample::new(t, series_gen.next_value())));
        }
        let t0 = clock.now_mono();
        let report = db.append(&batch)?;
        w.encode_ns += clock.now_mono().nanos_since(t0);
        if !report.rejections.is_empty() || report.accepted != batch.len() {
            bail!(
                "round {round}: engine refused samples: {:?}",
                report.rejections.first()
            );
        }
        w.samples += batch.len() as u64;
        if (round + 1) % flush_every == 0 || round + 1 == rounds {
            let t0 = clock.now_mono();
            db.flush()?;
            w.flush_ns += clock.now_mono().nanos_since(t0);
            w.flushes += 1;
        }
    }
    Ok(w)
}

/// Reads every sample of every series; returns the count and nanoseconds.
fn read_all<S: KvStore>(db: &Tsdb<S>, clock: &SystemClock) -> anyhow::Result<(u64, u64)> {
    let t0 = clock.now_mono();
    let entries = db.select(&[], TimestampMs::MIN, TimestampMs::MAX);
    let mut read = 0u64;
    let mut checksum = 0u64;
    for e in &entries {
        let mut it = db.samples(e.series_ref, TimestampMs::MIN, TimestampMs::MAX)?;
        while let Some(run) = it.next_run()? {
            for s in run {
                checksum = checksum.wrapping_add(s.value.to_bits() ^ s.timestamp.0 as u64);
            }
            read += run.len() as u64;
        }
    }
    std::hint::black_box(checksum);
    Ok((read, clock.now_mono().nanos_since(t0)))
}

/// Regenerates the data and compares it with what the engine returns,
/// series by series, bit-exactly.
fn verify<S: KvStore>(db: &Tsdb<S>, args: &TsdbArgs) -> anyhow::Result<bool> {
    let mut fleet = Fleet::new(args.series, args.seed)?;
    let mut expected: Vec<Vec<(i64, u64)>> =
        vec![Vec::with_capacity(args.rounds as usize); args.series];
    for round in 0..args.rounds {
        let offsets = &fleet.offsets_ms;
        for (i, series_gen) in fleet.series.iter_mut().enumerate() {
            let t = START_MS + round * crate::nodegen::SCRAPE_INTERVAL_MS + offsets[i];
            expected[i].push((t, series_gen.next_value().to_bits()));
        }
    }
    for (i, series_gen) in fleet.series.iter().enumerate() {
        let Some(r) = db.lookup(&series_gen.labels) else {
            eprintln!("series {} missing after reopen", series_gen.labels);
            return Ok(false);
        };
        let got: Vec<(i64, u64)> = db
            .samples(r, TimestampMs::MIN, TimestampMs::MAX)?
            .map(|s| s.map(|s| (s.timestamp.0, s.value.to_bits())))
            .collect::<Result<_, _>>()?;
        if got != expected[i] {
            eprintln!("series {} differs after reopen", series_gen.labels);
            return Ok(false);
        }
    }
    Ok(true)
}

fn dir_size(dir: &std::path::Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_round_trips_and_reports_consistent_figures() {
        let args = TsdbArgs {
            series: 400,
            rounds: 130,
            seed: 3,
            flush_every: 25,
            data_dir: None,
        };
        let report = run(&args).unwrap();
        assert!(report.roundtrip_ok);
        assert_eq!(report.samples, 400 * 130);
        assert_eq!(report.flushes, 6);
        assert!(report.disk_bytes > 0);
        assert!(report.logical_bytes_per_sample > 0.1 && report.logical_bytes_per_sample < 16.0);
        assert!(report.head_bytes_per_series > 0.0);
    }

    #[test]
    fn invalid_arguments_are_refused() {
        let args = TsdbArgs {
            series: 0,
            rounds: 1,
            seed: 1,
            flush_every: 1,
            data_dir: None,
        };
        assert!(run(&args).is_err());
    }
}
