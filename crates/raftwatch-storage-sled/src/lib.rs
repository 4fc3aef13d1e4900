//! raftwatch-storage-sled: the sled engine behind
//! [`raftwatch_storage::KvStore`].
//!
//! Architecture invariant: this is the only crate that names `sled`. sled
//! starts OS threads of its own (its flusher is disabled here, its I/O pool
//! is not), so the deterministic simulator uses
//! [`raftwatch_storage::MemStore`] instead.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use raftwatch_storage::{BatchOp, KvStore, ScanIter, StorageError, WriteBatch};

/// `SledMode` chooses sled's trade-off between disk space and write speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SledMode {
    /// Compact more eagerly: fewer bytes on disk, more write amplification
    /// (`sled::Mode::LowSpace`).
    LowSpace,
    /// Compact lazily: faster writes, more bytes on disk
    /// (`sled::Mode::HighThroughput`).
    HighThroughput,
}

/// `SledConfig` is how a [`SledStore`] is opened.
///
/// The default minimises bytes on disk, which the TSDB benchmark counts per
/// sample, so it uses [`SledMode::LowSpace`]. Measured with
/// `examples/sled_space.rs` (60,000 incompressible 200-byte values under
/// 16-byte keys, batches of 1,000, one flush; 12.96 MB of keys and values):
/// both modes used 27.8–29.9 MB for a single write pass (about 2.2x, the
/// difference between them within run-to-run noise); rewriting the same
/// keys 5 times, LowSpace used 37.7–39.3 MB and HighThroughput 41.9 MB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SledConfig {
    /// `cache_capacity_bytes` bounds sled's page cache, in bytes.
    pub cache_capacity_bytes: u64,
    /// `mode` is sled's space/speed trade-off.
    pub mode: SledMode,
}

impl SledConfig {
    /// `DEFAULT_CACHE_CAPACITY_BYTES` is the default page cache bound,
    /// 64 MiB: sled's own default is 1 GiB, too much for a node that hosts
    /// several shards.
    pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 64 << 20;
}

impl Default for SledConfig {
    fn default() -> SledConfig {
        SledConfig {
            cache_capacity_bytes: SledConfig::DEFAULT_CACHE_CAPACITY_BYTES,
            mode: SledMode::LowSpace,
        }
    }
}

/// `SledStore` is a [`KvStore`] backed by one sled database in a directory.
///
/// Durability: sled's periodic background flush is turned off
/// (`flush_every_ms(None)`), so the only durable point is
/// [`KvStore::flush`]. On Linux sled 0.34's flush uses `sync_file_range`,
/// not `fsync`/`fdatasync`: it does not flush the device's cache or the file
/// metadata, so a flushed write survives a **process crash but not a power
/// loss**. sled may also write unflushed data out on its own (when its
/// buffers fill, and when the last handle is dropped), which the
/// [`KvStore`] contract allows.
pub struct SledStore {
    db: sled::Db,
    path: PathBuf,
}

impl SledStore {
    /// `open` opens the sled database in directory `path`, creating it if it
    /// does not exist. Fails with [`StorageError::Io`] if the directory
    /// cannot be used (including when another `SledStore` in this or
    /// another process holds it open), [`StorageError::Corruption`] if
    /// sled finds its files damaged.
    pub fn open(path: &Path, config: &SledConfig) -> Result<SledStore, StorageError> {
        let mode = match config.mode {
            SledMode::LowSpace => sled::Mode::LowSpace,
            SledMode::HighThroughput => sled::Mode::HighThroughput,
        };
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(config.cache_capacity_bytes)
            .mode(mode)
            .flush_every_ms(None)
            .open()
            .map_err(storage_error)?;
        Ok(SledStore {
            db,
            path: path.to_path_buf(),
        })
    }

    /// `path` is the directory this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Maps a sled error onto the storage error callers branch on.
fn storage_error(e: sled::Error) -> StorageError {
    match e {
        sled::Error::Io(e) => StorageError::Io(e),
        e @ sled::Error::Corruption { .. } => StorageError::Corruption(e.to_string()),
        e => StorageError::Engine(e.to_string()),
    }
}

impl KvStore for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get(key).map_err(storage_error)?.map(|v| v.to_vec()))
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        // A sled::Batch keeps one entry per key, the last one written, which
        // matches our "later operation on the same key wins".
        let mut sled_batch = sled::Batch::default();
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { key, value } => sled_batch.insert(key, value),
                BatchOp::Delete { key } => sled_batch.remove(key),
            }
        }
        self.db.apply_batch(sled_batch).map_err(storage_error)
    }

    fn scan<'a>(&'a self, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a> {
        // An empty or reversed range yields nothing; don't rely on sled to
        // agree.
        if end.is_some_and(|end| start >= end) {
            return Box::new(std::iter::empty());
        }
        let iter = match end {
            Some(end) => self.db.range(start.to_vec()..end.to_vec()),
            None => self.db.range(start.to_vec()..),
        };
        Box::new(iter.map(|item| {
            item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(storage_error)
        }))
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map(|_| ()).map_err(storage_error)
    }

    /// `size_on_disk_bytes` is the total length of every file under the
    /// store's directory, found by walking it: data, blobs, snapshots and
    /// configuration alike.
    fn size_on_disk_bytes(&self) -> Result<u64, StorageError> {
        Ok(dir_size_bytes(&self.path)?)
    }
}

/// Sums the lengths of all files under `dir`, recursively, without
/// following symlinks. Entries that vanish during the walk (sled deletes
/// old snapshots and blobs in the background) count as zero.
fn dir_size_bytes(dir: &Path) -> io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry?;
        let metadata = match entry.path().symlink_metadata() {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if metadata.is_dir() {
            total += dir_size_bytes(&entry.path())?;
        } else {
            total += metadata.len();
        }
    }
    Ok(total)
}
