//! `sled_space` measures bytes on disk for one sled mode, to choose
//! `SledConfig::default()`: 60,000 values of 200 bytes under 16-byte keys,
//! written in batches of 1,000 with one flush at the end, then the whole
//! directory is measured (after the flush, and again after a close and
//! reopen). With `ROUNDS` > 1 the same keys are rewritten that many times
//! in all, each round flushed, to show how each mode copes with churn.
//!
//! Usage: `cargo run --release -p raftwatch-storage-sled --example sled_space
//! -- low-space|high-throughput [ROUNDS] [DIR]`. Time it with `time`; the workspace
//! bans clock reads in code.

use std::path::PathBuf;

use raftwatch_storage::{KvStore, WriteBatch};
use raftwatch_storage_sled::{SledConfig, SledMode, SledStore};

const VALUES_COUNT: u64 = 60_000;
const VALUE_BYTES: usize = 200;
const BATCH_LEN: u64 = 1_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = match args.next().as_deref() {
        Some("low-space") => SledMode::LowSpace,
        Some("high-throughput") => SledMode::HighThroughput,
        other => {
            return Err(format!("expected low-space or high-throughput, got {other:?}").into());
        }
    };
    let rounds: u64 = args.next().map_or(Ok(1), |r| r.parse())?;
    let tmp = tempfile::tempdir()?;
    let path = args
        .next()
        .map_or_else(|| tmp.path().join("db"), PathBuf::from);
    let config = SledConfig {
        mode,
        ..SledConfig::default()
    };

    let store = SledStore::open(&path, &config)?;
    // Values that do not compress, like encoded chunks; a fixed xorshift
    // keeps runs comparable.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut batch = WriteBatch::new();
    for i in (0..rounds).flat_map(|_| 0..VALUES_COUNT) {
        // 16-byte key: a series-like prefix then a big-endian counter.
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&(i % 97).to_be_bytes());
        key[8..].copy_from_slice(&i.to_be_bytes());
        let value: Vec<u8> = (0..VALUE_BYTES)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        batch.put(key.to_vec(), value);
        if (i + 1) % BATCH_LEN == 0 {
            store.write(std::mem::take(&mut batch))?;
        }
        if (i + 1) % VALUES_COUNT == 0 {
            store.flush()?;
        }
    }
    store.write(batch)?;
    store.flush()?;
    let logical = VALUES_COUNT * (16 + VALUE_BYTES as u64);
    let flushed = store.size_on_disk_bytes()?;
    drop(store);
    let reopened = SledStore::open(&path, &config)?;
    let after_reopen = reopened.size_on_disk_bytes()?;
    println!(
        "{mode:?}, {rounds} round(s): logical {logical} B; on disk after flush {flushed} B ({:.2}x, {:.1} B/value); \
         after close+reopen {after_reopen} B ({:.2}x)",
        flushed as f64 / logical as f64,
        flushed as f64 / VALUES_COUNT as f64,
        after_reopen as f64 / logical as f64,
    );
    Ok(())
}
