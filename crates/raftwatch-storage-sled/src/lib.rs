//! raftwatch-storage-sled: the sled engine behind
//! [`raftwatch_storage::KvStore`].
//!
//! Architecture invariant: this is the only crate that names `sled`. sled
//! starts OS threads of its own (its flusher is disabled here, its I/O pool
//! is not), so the deterministic simulator uses
//! [`raftwatch_storage::MemStore`] instead.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use raftwatch_storage::{BatchOp, KvStore, ScanIter, StorageError, WriteBatch};

/// `SledMode` chooses sled's trade-off between disk space and write speed.
///
/// sled 0.34.7 stores this setting and never reads it: both modes behave
/// the same (measured: within run-to-run noise of each other, see
/// [`SledConfig`]). It is kept so that a later sled can honour it.
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
/// sample: zstd level 1 on sled's default 512 KiB segments. Measured with
/// `examples/sled_matrix.sh` (1,000 series x 60 chunk records of 120..=350
/// bytes under 17-byte keys, written interleaved in batches of 1,000, all
/// 1,000 head records of 50..=300 bytes rewritten and flushed every 10
/// batches and then 30 more times; 15.3 MB logical), as directory bytes
/// over logical bytes after the 30 extra flushes, three runs each:
///
/// | config                   | chunk-like values | random values | write s | read s  |
/// |--------------------------|-------------------|---------------|---------|---------|
/// | no zstd, 512 KiB (default)| 2.81–3.09x        | 2.98x         | 1.2–1.9 | 0.2–0.3 |
/// | no zstd, 1 MiB           | 2.54–2.74x        | 2.71x         | 1.4–2.0 | 0.3     |
/// | zstd 1, 512 KiB          | 1.95–2.37x        | 2.57x         | 5.1–7.6 | 0.4–0.7 |
/// | zstd 1, 1 MiB            | 2.26–2.32x        |               | 6.1–7.1 | 0.5–0.6 |
/// | zstd 3 / 5 / 10, 512 KiB | 2.61 / 2.43 / 2.47x | 2.50x (3)   | 5.7–7.0 | 0.4–0.7 |
///
/// "Chunk-like" values are 70% random bytes and 30% zeros; zstd alone
/// makes them about 0.8x. Other segment sizes are worse (256 KiB: 3.67x;
/// 2/4/8 MiB: 3.15/3.84/4.43x; 256 B..4 KiB push every node into its own
/// blob file, 2.1–2.7x apparent but 4.4–4.6x in allocated blocks and
/// 13,000–16,000 files). Writing keys in ascending order instead of
/// interleaved gives 1.92x without zstd and 1.68x with it; one 60,000-record
/// batch is worse (3.87x) than batches of 100 or 1,000.
///
/// Why sled needs 2–3x: every insert is logged as a delta holding the key
/// and value; after 10 deltas the whole leaf (at most 16 entries) is logged
/// again, and again at each split, so each value is written 2–3 times. A
/// segment is only cleaned once at most 50% of it is live, free segments
/// stay inside the file unless they are at its end, and the threshold,
/// consolidation and split sizes are constants with no knob. So no
/// configuration reaches 1.3x.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SledConfig {
    /// `cache_capacity_bytes` bounds sled's page cache, in bytes.
    pub cache_capacity_bytes: u64,
    /// `mode` is sled's space/speed trade-off; a no-op in sled 0.34.7.
    pub mode: SledMode,
    /// `segment_size_bytes` is the size of sled's log segments (and I/O
    /// buffers): a power of two from 256 B to 16 MiB. Fixed when the
    /// database is created; opening it with another value fails.
    pub segment_size_bytes: usize,
    /// `compression_factor` is the zstd level (1..=22) sled compresses
    /// every logged page fragment and blob with, or `None` to store them
    /// raw. Whether to compress is fixed when the database is created
    /// (opening it the other way fails); the level may change. Costs about
    /// 4x write time and 2x read time (see the table above).
    pub compression_factor: Option<i32>,
}

impl SledConfig {
    /// `DEFAULT_CACHE_CAPACITY_BYTES` is the default page cache bound,
    /// 64 MiB: sled's own default is 1 GiB, too much for a node that hosts
    /// several shards.
    pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 64 << 20;
    /// `DEFAULT_SEGMENT_SIZE_BYTES` is 512 KiB, sled's own default: with
    /// zstd, 1 MiB measured the same within noise, and every other size
    /// measured worse.
    pub const DEFAULT_SEGMENT_SIZE_BYTES: usize = 512 << 10;
    /// `DEFAULT_COMPRESSION_FACTOR` is `None` (no zstd). On the synthetic
    /// table above zstd level 1 saved 15–30%, but on the real engine
    /// workload (`raftwatch-bench tsdb --series 10000 --rounds 720`) it
    /// made no difference (131.96 MB with zstd 1, 132.25 MB without) while
    /// costing about 4x write and 2x read time. Levels 3, 5 and 10 used no
    /// fewer bytes than level 1 (2.43–2.61x, one run each).
    pub const DEFAULT_COMPRESSION_FACTOR: Option<i32> = None;
}

impl Default for SledConfig {
    fn default() -> SledConfig {
        SledConfig {
            cache_capacity_bytes: SledConfig::DEFAULT_CACHE_CAPACITY_BYTES,
            mode: SledMode::LowSpace,
            segment_size_bytes: SledConfig::DEFAULT_SEGMENT_SIZE_BYTES,
            compression_factor: SledConfig::DEFAULT_COMPRESSION_FACTOR,
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
///
/// Blobs live beside sled, one file each in [`BLOB_DIR`] inside the store's
/// directory (sled stores every value 2–3 times over, see [`SledConfig`];
/// a file holds exactly its bytes). A blob file is written and
/// `fdatasync`ed, and the directory fsynced, before the batch's keys go to
/// sled, so sled can never persist a key that refers to a missing blob,
/// even when it writes unflushed data on its own. A batch that deletes a
/// blob is applied, sled flushed, and only then are the files removed.
pub struct SledStore {
    db: sled::Db,
    path: PathBuf,
    blob_dir: PathBuf,
    /// Open blob files, so that reads do not reopen them.
    blob_files: Mutex<BTreeMap<u64, Arc<File>>>,
}

/// `BLOB_FILES_OPEN_MAX` bounds the blob files a [`SledStore`] keeps open
/// for reading; beyond it the lowest id (usually the oldest) is closed.
pub const BLOB_FILES_OPEN_MAX: usize = 128;

/// `BLOB_DIR` is the directory, inside a [`SledStore`]'s, that holds its
/// blobs, one file per blob named by its id in 16 hex digits.
pub const BLOB_DIR: &str = "raftwatch-blobs";

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
        let mut sled_config = sled::Config::new()
            .path(path)
            .cache_capacity(config.cache_capacity_bytes)
            .mode(mode)
            .segment_size(config.segment_size_bytes)
            .flush_every_ms(None);
        if let Some(factor) = config.compression_factor {
            sled_config = sled_config.use_compression(true).compression_factor(factor);
        }
        // sled finishes writing a dropped database's last buffers on its
        // own I/O threads, which hold the directory's file lock until they
        // are done (sled's own tests block on the lock for this reason), so
        // reopening right after a drop can find the lock taken, more often
        // with compression on. Retry a bounded number of times; a store that
        // is really open elsewhere still fails.
        let mut attempts_left = OPEN_LOCK_ATTEMPTS_MAX;
        let db = loop {
            match sled_config.open() {
                Err(sled::Error::Io(e)) if attempts_left > 1 && is_lock_error(&e) => {
                    attempts_left -= 1;
                    std::thread::yield_now();
                }
                result => break result.map_err(storage_error)?,
            }
        };
        let blob_dir = path.join(BLOB_DIR);
        std::fs::create_dir_all(&blob_dir)?;
        sync_dir(path)?;
        Ok(SledStore {
            db,
            path: path.to_path_buf(),
            blob_dir,
            blob_files: Mutex::new(BTreeMap::new()),
        })
    }

    fn blob_path(&self, id: u64) -> PathBuf {
        self.blob_dir.join(format!("{id:016x}"))
    }

    fn blob_files(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<File>>> {
        // The map is only inserted into and removed from: always consistent.
        self.blob_files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes blob `id` and makes it durable.
    fn put_blob(&self, id: u64, data: &[u8]) -> io::Result<()> {
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.blob_path(id))?;
        file.write_all(data)?;
        file.sync_data()?;
        self.cache_blob_file(id, Arc::new(file));
        Ok(())
    }

    /// Keeps `file` open for reads, closing another if
    /// [`BLOB_FILES_OPEN_MAX`] are open.
    fn cache_blob_file(&self, id: u64, file: Arc<File>) {
        let mut files = self.blob_files();
        if files.len() >= BLOB_FILES_OPEN_MAX && !files.contains_key(&id) {
            files.pop_first();
        }
        files.insert(id, file);
    }

    fn blob_file(&self, id: u64) -> Result<Option<Arc<File>>, StorageError> {
        if let Some(f) = self.blob_files().get(&id) {
            return Ok(Some(f.clone()));
        }
        match File::open(self.blob_path(id)) {
            Ok(f) => {
                let f = Arc::new(f);
                self.cache_blob_file(id, f.clone());
                Ok(Some(f))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
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

/// How many times [`SledStore::open`] tries to take a directory's lock
/// before reporting it as held.
const OPEN_LOCK_ATTEMPTS_MAX: u32 = 10_000;

/// Whether `e` is sled 0.34's "could not acquire lock" error, which it
/// builds as `io::ErrorKind::Other` around the `WouldBlock` of `flock`.
fn is_lock_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Other && e.to_string().starts_with("could not acquire lock")
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
        let mut blobs_put = false;
        let mut blob_deletes = Vec::new();
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { key, value } => sled_batch.insert(key, value),
                BatchOp::Delete { key } => sled_batch.remove(key),
                BatchOp::PutBlob { id, data } => {
                    self.put_blob(id, &data)?;
                    blobs_put = true;
                }
                BatchOp::DeleteBlob { id } => blob_deletes.push(id),
            }
        }
        if blobs_put {
            // The new files' names, before any key can refer to them.
            sync_dir(&self.blob_dir)?;
        }
        self.db.apply_batch(sled_batch).map_err(storage_error)?;
        if blob_deletes.is_empty() {
            return Ok(());
        }
        self.db.flush().map_err(storage_error)?;
        for id in blob_deletes {
            self.blob_files().remove(&id);
            match std::fs::remove_file(self.blob_path(id)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        sync_dir(&self.blob_dir)?;
        Ok(())
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

    fn read_blob(&self, id: u64, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let Some(file) = self.blob_file(id)? else {
            return Err(raftwatch_storage::blob_range_error(id, offset, len, None));
        };
        let past_end = |file: &File| -> Result<Vec<u8>, StorageError> {
            let size = file.metadata()?.len();
            Err(raftwatch_storage::blob_range_error(
                id,
                offset,
                len,
                Some(size),
            ))
        };
        // pread refuses offsets beyond i64::MAX with EINVAL.
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > i64::MAX as u64)
        {
            return past_end(&file);
        }
        let mut buf = vec![0; len];
        match file.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(buf),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => past_end(&file),
            Err(e) => Err(e.into()),
        }
    }

    fn blob_ids(&self) -> Result<Vec<u64>, StorageError> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.blob_dir)? {
            let name = entry?.file_name();
            // Anything else in the directory is not ours to list.
            if let Some(id) = name
                .to_str()
                .filter(|n| n.len() == 16)
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }
}

/// fsyncs directory `dir`, so that names created or removed in it persist.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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
