//! Integration tests for raftwatch-storage-sled: the storage conformance
//! suite over [`SledStore`] in both modes, with and without compression.

use std::path::PathBuf;

use raftwatch_storage::conformance::{self, Harness};
use raftwatch_storage::{KvStore, StorageError, WriteBatch};
use raftwatch_storage_sled::{SledConfig, SledMode, SledStore};

/// `SledHarness` owns a temporary directory and reopens the database in it.
#[derive(Debug)]
struct SledHarness {
    dir: tempfile::TempDir,
    config: SledConfig,
}

impl SledHarness {
    fn new(config: SledConfig) -> SledHarness {
        SledHarness {
            dir: tempfile::tempdir().expect("creating a temporary directory failed"),
            config,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("db")
    }
}

impl Harness for SledHarness {
    type Store = SledStore;

    fn open(&mut self) -> SledStore {
        SledStore::open(&self.path(), &self.config).expect("opening sled failed")
    }

    /// Drops the database without calling `flush`. This is a weak crash:
    /// sled writes out full buffers on its own and flushes everything when
    /// the last handle drops (`Drop for TreeInner`), so unflushed batches
    /// usually survive. The contract allows that (unflushed batches may be
    /// present, as long as each is whole); a real process kill is not
    /// simulated here.
    fn crash(&mut self, store: SledStore) {
        drop(store);
    }
}

#[test]
fn sled_low_space_passes_the_conformance_suite() {
    conformance::run_all(|| {
        SledHarness::new(SledConfig {
            mode: SledMode::LowSpace,
            ..SledConfig::default()
        })
    });
}

#[test]
fn sled_without_compression_passes_the_conformance_suite() {
    conformance::run_all(|| {
        SledHarness::new(SledConfig {
            compression_factor: None,
            ..SledConfig::default()
        })
    });
}

#[test]
fn sled_with_compression_level_10_passes_the_conformance_suite() {
    conformance::run_all(|| {
        SledHarness::new(SledConfig {
            compression_factor: Some(10),
            segment_size_bytes: 1 << 20,
            ..SledConfig::default()
        })
    });
}

#[test]
fn reopening_with_other_compression_or_segment_size_is_an_error_not_a_panic() {
    let compressed = SledConfig {
        compression_factor: Some(1),
        ..SledConfig::default()
    };
    let harness = SledHarness::new(compressed.clone());
    let store = SledStore::open(&harness.path(), &compressed).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(b"k".to_vec(), b"v".to_vec());
    store.write(batch).unwrap();
    store.flush().unwrap();
    drop(store);
    for config in [
        SledConfig {
            compression_factor: None,
            ..compressed.clone()
        },
        SledConfig {
            segment_size_bytes: SledConfig::DEFAULT_SEGMENT_SIZE_BYTES * 2,
            ..compressed.clone()
        },
    ] {
        let reopened = SledStore::open(&harness.path(), &config);
        assert!(
            matches!(reopened, Err(StorageError::Engine(_))),
            "expected an engine error for {config:?}, got {reopened:?}"
        );
    }
    // The zstd level is not part of the format: another level reads it.
    let reopened = SledStore::open(
        &harness.path(),
        &SledConfig {
            compression_factor: Some(5),
            ..compressed
        },
    )
    .unwrap();
    assert_eq!(reopened.get(b"k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn sled_high_throughput_passes_the_conformance_suite() {
    conformance::run_all(|| {
        SledHarness::new(SledConfig {
            mode: SledMode::HighThroughput,
            cache_capacity_bytes: 1 << 20,
            ..SledConfig::default()
        })
    });
}

#[test]
fn opening_a_directory_twice_is_an_error_not_a_panic() {
    let harness = SledHarness::new(SledConfig::default());
    let first = SledStore::open(&harness.path(), &SledConfig::default()).unwrap();
    let second = SledStore::open(&harness.path(), &SledConfig::default());
    // sled holds a file lock on the directory; today it reports it as I/O.
    assert!(
        matches!(second, Err(StorageError::Io(_))),
        "expected an I/O error, got {second:?}"
    );
    drop(first);
}

#[test]
fn size_on_disk_counts_every_file_in_the_directory() {
    // Uncompressed, so that the size can be checked against the data's.
    let config = SledConfig {
        compression_factor: None,
        ..SledConfig::default()
    };
    let harness = SledHarness::new(config.clone());
    let store = SledStore::open(&harness.path(), &config).unwrap();
    let mut batch = WriteBatch::new();
    for i in 0u32..2000 {
        batch.put(i.to_be_bytes().to_vec(), vec![0x5a; 200]);
    }
    store.write(batch).unwrap();
    store.flush().unwrap();
    let size = store.size_on_disk_bytes().unwrap();
    let mut walked = 0;
    let mut stack = vec![harness.path()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                stack.push(entry.path());
            } else {
                walked += metadata.len();
            }
        }
    }
    assert_eq!(size, walked);
    assert!(size >= 2000 * 204, "smaller than the data: {size}");
}
