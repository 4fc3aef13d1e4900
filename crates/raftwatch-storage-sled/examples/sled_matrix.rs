//! `sled_matrix` measures bytes on disk for a TSDB-shaped workload through
//! [`SledStore`], one configuration per run, to choose
//! `SledConfig::default()`. `examples/sled_matrix.sh` runs the grid.
//!
//! The workload imitates the TSDB's: `series` series, each with `chunks`
//! chunk records under 17-byte keys (`0x01`, series id u64 BE, min time u64
//! BE) of 120..=350 bytes, and one head record under a 9-byte key (`0x02`,
//! series id) of 50..=300 bytes that every flush rewrites. Chunks go in
//! batches of `batch` records; every `flush_every` batches all head records
//! are rewritten and the store is flushed. After the load, `churn` more
//! rounds rewrite all head records and flush, as a flush every few minutes
//! would. Logical bytes are the keys and values of the final state.
//!
//! Values are `kind=gorilla` (each byte random with probability 0.7, else
//! zero: close to the entropy of XOR-encoded chunks, which zstd shrinks to
//! about 0.8x) or `kind=random` (incompressible, the worst case).
//! `order=asc` writes series by series (a bulk import or compaction);
//! `order=interleaved` writes chunk `t` of every series before chunk `t + 1`
//! of any (live ingestion).
//!
//! `phase=write` creates the database in `dir` and prints one line of
//! `key=value` results; `phase=read` reopens it, scans everything and gets
//! every chunk key in a shuffled order. Time each phase with `time`: the
//! workspace bans clock reads in code.
//!
//! Usage: `cargo run --release -p raftwatch-storage-sled --example
//! sled_matrix -- phase=write dir=/tmp/x seg=524288 zstd=0 mode=low-space
//! kind=gorilla order=interleaved series=1000 chunks=60 batch=1000
//! flush_every=10 churn=30`.

use std::collections::HashMap;
use std::path::PathBuf;

use raftwatch_storage::{KvStore, WriteBatch};
use raftwatch_storage_sled::{SledConfig, SledMode, SledStore};

/// `XorShift` is a fixed-seed generator so that runs are comparable.
struct XorShift(u64);

impl XorShift {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `below` is uniform enough in `0..n` for a benchmark.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn value(&mut self, len: usize, gorilla: bool) -> Vec<u8> {
        (0..len)
            .map(|_| {
                let x = self.next_u64();
                if gorilla && x % 10 >= 7 {
                    0
                } else {
                    (x >> 32) as u8
                }
            })
            .collect()
    }
}

fn chunk_key(series: u64, chunk: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(0x01);
    key.extend_from_slice(&series.to_be_bytes());
    // Min times two hours apart, in milliseconds.
    key.extend_from_slice(&(1_700_000_000_000 + chunk * 7_200_000).to_be_bytes());
    key
}

fn head_key(series: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(0x02);
    key.extend_from_slice(&series.to_be_bytes());
    key
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: HashMap<String, String> = std::env::args()
        .skip(1)
        .filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let get = |k: &str, default: &str| args.get(k).cloned().unwrap_or_else(|| default.to_owned());
    let num = |k: &str, default: u64| -> Result<u64, Box<dyn std::error::Error>> {
        Ok(get(k, &default.to_string()).parse()?)
    };
    let dir = PathBuf::from(get("dir", "/tmp/sled_matrix"));
    let zstd = num("zstd", 0)?;
    let config = SledConfig {
        mode: match get("mode", "low-space").as_str() {
            "low-space" => SledMode::LowSpace,
            "high-throughput" => SledMode::HighThroughput,
            other => return Err(format!("unknown mode {other}").into()),
        },
        segment_size_bytes: usize::try_from(num("seg", 512 << 10)?)?,
        compression_factor: (zstd > 0).then_some(i32::try_from(zstd)?),
        ..SledConfig::default()
    };
    let series_count = num("series", 1000)?;
    let chunks_count = num("chunks", 60)?;
    let gorilla = match get("kind", "gorilla").as_str() {
        "gorilla" => true,
        "random" => false,
        other => return Err(format!("unknown kind {other}").into()),
    };
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);

    if get("phase", "write") == "read" {
        let store = SledStore::open(&dir, &config)?;
        let mut scanned_bytes = 0;
        for item in store.scan(&[], None) {
            let (k, v) = item?;
            scanned_bytes += k.len() + v.len();
        }
        let mut keys: Vec<(u64, u64)> = (0..series_count)
            .flat_map(|s| (0..chunks_count).map(move |c| (s, c)))
            .collect();
        for i in (1..keys.len()).rev() {
            let j = usize::try_from(rng.below(i as u64 + 1))?;
            keys.swap(i, j);
        }
        let mut got_bytes = 0;
        for (s, c) in keys {
            let value = store.get(&chunk_key(s, c))?.ok_or("missing chunk")?;
            got_bytes += value.len();
        }
        println!("scanned_bytes={scanned_bytes} got_bytes={got_bytes}");
        return Ok(());
    }

    let batch_len = num("batch", 1000)?;
    let flush_every = num("flush_every", 10)?;
    let churn = num("churn", 0)?;
    let interleaved = match get("order", "interleaved").as_str() {
        "interleaved" => true,
        "asc" => false,
        other => return Err(format!("unknown order {other}").into()),
    };
    let store = SledStore::open(&dir, &config)?;
    let mut head_bytes = vec![0u64; usize::try_from(series_count)?];
    let mut rewrite_heads = |store: &SledStore, rng: &mut XorShift| {
        let mut batch = WriteBatch::new();
        for s in 0..series_count {
            let len = 50 + rng.below(251) as usize;
            head_bytes[s as usize] = 9 + len as u64;
            batch.put(head_key(s), rng.value(len, gorilla));
        }
        store.write(batch)?;
        store.flush()
    };

    let order: Vec<(u64, u64)> = if interleaved {
        (0..chunks_count)
            .flat_map(|c| (0..series_count).map(move |s| (s, c)))
            .collect()
    } else {
        (0..series_count)
            .flat_map(|s| (0..chunks_count).map(move |c| (s, c)))
            .collect()
    };
    let mut chunk_bytes = 0u64;
    let mut batch = WriteBatch::new();
    let mut batches_count = 0u64;
    for (i, (s, c)) in order.iter().enumerate() {
        let len = 120 + rng.below(231) as usize;
        chunk_bytes += 17 + len as u64;
        batch.put(chunk_key(*s, *c), rng.value(len, gorilla));
        if (i as u64 + 1).is_multiple_of(batch_len) || i + 1 == order.len() {
            store.write(std::mem::take(&mut batch))?;
            batches_count += 1;
            if batches_count.is_multiple_of(flush_every) {
                rewrite_heads(&store, &mut rng)?;
            }
        }
    }
    rewrite_heads(&store, &mut rng)?;
    let loaded = store.size_on_disk_bytes()?;
    let mut after_churn_rounds = Vec::new();
    for round in 1..=churn {
        rewrite_heads(&store, &mut rng)?;
        if round.is_multiple_of(10) || round == churn {
            after_churn_rounds.push(store.size_on_disk_bytes()?);
        }
    }
    let logical = chunk_bytes + head_bytes.iter().sum::<u64>();
    let before_close = store.size_on_disk_bytes()?;
    drop(store);
    let reopened = SledStore::open(&dir, &config)?.size_on_disk_bytes()?;
    let ratio = |x: u64| format!("{:.2}", x as f64 / logical as f64);
    println!(
        "logical={logical} loaded={loaded} loaded_x={} churn_x=[{}] final={before_close} final_x={} reopened_x={}",
        ratio(loaded),
        after_churn_rounds
            .iter()
            .map(|&b| ratio(b))
            .collect::<Vec<_>>()
            .join(","),
        ratio(before_close),
        ratio(reopened),
    );
    Ok(())
}
