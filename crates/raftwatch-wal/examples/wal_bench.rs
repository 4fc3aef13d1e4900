//! `wal_bench`: group-commit throughput and fdatasync latency of the log on
//! real files.
//!
//! ```text
//! cargo run --release -p raftwatch-wal --example wal_bench [-- DIR [SECONDS_PER_CASE]]
//! ```
//!
//! For each batch size (1, 8, 64 entries per sync) it queues that many
//! 1 KiB entries, each its own `append` with a callback (as independent
//! openraft appends from 8 groups would be), then calls `flush_pending`
//! (one write + one fdatasync), until the case's time is up. It prints
//! entries/s, syncs/s, MiB/s and p50/p99/max latency of `flush_pending`.
//! DIR defaults to a fresh temporary directory under /tmp; the file system
//! there decides the numbers (tmpfs makes fdatasync free).
//! Time is read through `raftwatch_seams::SystemClock`.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use raftwatch_seams::{Clock, SystemClock};
use raftwatch_wal::{Entry, FsDisk, GroupId, LogIndex, Record, Term, Wal, WalConfig};

const ENTRY_BYTES: usize = 1024;
const GROUPS: u64 = 8;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let tmp;
    let base = match args.next() {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("wal_bench")
                .tempdir_in("/tmp")?;
            tmp.path().to_path_buf()
        }
    };
    let seconds: f64 = args.next().map_or(Ok(3.0), |s| s.parse())?;
    let clock = SystemClock::new();
    println!(
        "dir={} entry_bytes={ENTRY_BYTES} groups={GROUPS} seconds_per_case={seconds}",
        base.display()
    );
    println!(
        "{:>6} {:>10} {:>9} {:>8} {:>9} {:>9} {:>9} {:>8}",
        "batch", "entries/s", "syncs/s", "MiB/s", "p50_us", "p99_us", "max_us", "syncs"
    );
    for batch in [1u64, 8, 64] {
        let dir = base.join(format!("batch-{batch}"));
        let (mut wal, _) = Wal::open(FsDisk::open(&dir)?, WalConfig::default())?;
        let acked = Arc::new(AtomicU64::new(0));
        let payload = vec![0xA5u8; ENTRY_BYTES];
        let mut next_index = [1u64; GROUPS as usize];
        let mut latencies_ns = Vec::new();
        let mut entries = 0u64;
        let start = clock.now_mono();
        let budget_ns = (seconds * 1e9) as u64;
        let before = wal.stats();
        while clock.now_mono().nanos_since(start) < budget_ns {
            for i in 0..batch {
                let g = ((entries + i) % GROUPS) as usize;
                let record = Record::Entries {
                    group: GroupId(g as u64),
                    entries: vec![Entry {
                        index: LogIndex(next_index[g]),
                        term: Term(1),
                        payload: payload.clone(),
                    }],
                };
                next_index[g] += 1;
                let acked = Arc::clone(&acked);
                wal.append(
                    vec![record],
                    Box::new(move |r| {
                        if r.is_ok() {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                    }),
                )?;
            }
            let t0 = clock.now_mono();
            wal.flush_pending()?;
            latencies_ns.push(clock.now_mono().nanos_since(t0));
            entries += batch;
        }
        let elapsed_s = clock.now_mono().nanos_since(start) as f64 / 1e9;
        let stats = wal.stats();
        let syncs = stats.syncs_count - before.syncs_count;
        let bytes = stats.bytes_written - before.bytes_written;
        if acked.load(Ordering::Relaxed) != entries {
            return Err("not every append was acknowledged".into());
        }
        latencies_ns.sort_unstable();
        println!(
            "{:>6} {:>10.0} {:>9.0} {:>8.1} {:>9.0} {:>9.0} {:>9.0} {:>8}",
            batch,
            entries as f64 / elapsed_s,
            syncs as f64 / elapsed_s,
            bytes as f64 / elapsed_s / (1 << 20) as f64,
            percentile(&latencies_ns, 0.50) as f64 / 1e3,
            percentile(&latencies_ns, 0.99) as f64 / 1e3,
            latencies_ns.last().copied().unwrap_or(0) as f64 / 1e3,
            syncs,
        );
    }
    Ok(())
}
