//! raftwatch-storage: the persistence seam under the time-series engine and
//! (later) the Raft state machines.
//!
//! [`KvStore`] is an ordered key-value store with atomic batches, range
//! scans and one explicit durable point, [`KvStore::flush`]. Two engines
//! implement it: `raftwatch-storage-sled` (on disk, the default) and
//! [`MemStore`] (in memory, with crash semantics, for tests and the
//! deterministic simulator). [`conformance`] is one suite that every engine
//! runs.
//!
//! Architecture invariant: this crate names neither `sled` nor `tokio`;
//! only `raftwatch-storage-sled` names `sled`.

pub mod conformance;
mod mem;

pub use mem::MemStore;

use std::fmt;

use thiserror::Error;

/// `StorageError` is what a [`KvStore`] operation can fail with.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The underlying device or file system failed.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The engine found its own files damaged.
    #[error("storage corruption: {0}")]
    Corruption(String),
    /// Any other engine-specific failure, described.
    #[error("storage engine error: {0}")]
    Engine(String),
}

/// `KvPair` is one key and its value as returned by a scan.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// `ScanIter` yields key-value pairs in ascending key order.
pub type ScanIter<'a> = Box<dyn Iterator<Item = Result<KvPair, StorageError>> + 'a>;

/// `BatchOp` is one operation of a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Remove `key` if present.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// Store `data` as blob `id`, replacing any blob with that id.
    PutBlob {
        /// The blob's id.
        id: u64,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// Remove blob `id` if present.
    DeleteBlob {
        /// The blob's id.
        id: u64,
    },
}

/// `WriteBatch` is a list of operations applied atomically, in order: a
/// later operation on the same key wins.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
    bytes: usize,
}

impl WriteBatch {
    /// `new` returns an empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// `put` queues setting `key` to `value`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let (key, value) = (key.into(), value.into());
        self.bytes += key.len() + value.len();
        self.ops.push(BatchOp::Put { key, value });
    }

    /// `delete` queues removing `key`.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        let key = key.into();
        self.bytes += key.len();
        self.ops.push(BatchOp::Delete { key });
    }

    /// `put_blob` queues storing `data` as blob `id` (see [`KvStore`] for
    /// when a blob becomes durable).
    pub fn put_blob(&mut self, id: u64, data: Vec<u8>) {
        self.bytes += data.len();
        self.ops.push(BatchOp::PutBlob { id, data });
    }

    /// `delete_blob` queues removing blob `id`.
    pub fn delete_blob(&mut self, id: u64) {
        self.ops.push(BatchOp::DeleteBlob { id });
    }

    /// `has_blob_deletes` is true when the batch removes a blob, which makes
    /// writing it a durable point (see [`KvStore`]).
    pub fn has_blob_deletes(&self) -> bool {
        self.ops
            .iter()
            .any(|op| matches!(op, BatchOp::DeleteBlob { .. }))
    }

    /// `len` is the number of queued operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// `is_empty` is true when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// `size_bytes` is the total of key and value bytes queued.
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    /// `ops` returns the queued operations in order.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// `into_ops` consumes the batch.
    pub fn into_ops(self) -> Vec<BatchOp> {
        self.ops
    }
}

impl fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WriteBatch({} ops, {} bytes)",
            self.ops.len(),
            self.bytes
        )
    }
}

/// `KvStore` is an ordered key-value store.
///
/// Contract, checked by [`conformance`]:
/// - [`KvStore::write`] applies a whole batch atomically: readers see all of
///   it or none of it, and after a crash it is present entirely or not at
///   all. A write is visible to `get` and `scan` as soon as `write` returns,
///   but it is **not durable** until a later [`KvStore::flush`] returns.
/// - [`KvStore::flush`] is the durable point: every write that returned
///   before `flush` was called survives a crash and a reopen once `flush`
///   returns `Ok`.
/// - [`KvStore::scan`] yields keys in ascending byte order within
///   `[start, end)` (`end = None` means unbounded). A scan observes every
///   write that returned before it started; writes during the scan may or
///   may not be observed.
/// - Blobs are large immutable byte strings named by a `u64` id, beside the
///   keys, read by range ([`KvStore::read_blob`]) and stored without the
///   per-entry overhead of keys (on sled: one file each). A blob put in a
///   batch is **durable before** the batch's keys are applied, so a key
///   that refers to it never survives a crash without it; a crash can leave
///   a blob no surviving key refers to, which the owner finds with
///   [`KvStore::blob_ids`] and deletes. A batch that deletes a blob is a
///   durable point: when `write` returns, it and every write before it are
///   durable, and only then is the blob's space freed.
pub trait KvStore: Send + Sync + fmt::Debug {
    /// `get` returns the current value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// `write` applies `batch` atomically (not durably, see `flush`).
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError>;

    /// `scan` iterates `[start, end)` in ascending key order.
    fn scan<'a>(&'a self, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a>;

    /// `flush` makes every write that returned before this call durable.
    fn flush(&self) -> Result<(), StorageError>;

    /// `size_on_disk_bytes` is the engine's current footprint in bytes: on
    /// disk for persistent engines, the durable image for in-memory ones.
    fn size_on_disk_bytes(&self) -> Result<u64, StorageError>;

    /// `read_blob` returns `len` bytes of blob `id` from `offset`. A blob
    /// that does not exist, or a range past its end, is
    /// [`StorageError::Corruption`] naming the blob: its owner refers to it.
    fn read_blob(&self, id: u64, offset: u64, len: usize) -> Result<Vec<u8>, StorageError>;

    /// `blob_ids` lists the ids of every blob present, ascending.
    fn blob_ids(&self) -> Result<Vec<u64>, StorageError>;
}

/// `blob_range_error` is the error for a read of a missing blob or past the
/// end of one.
pub fn blob_range_error(id: u64, offset: u64, len: usize, size: Option<u64>) -> StorageError {
    match size {
        None => StorageError::Corruption(format!("blob {id} does not exist")),
        Some(size) => StorageError::Corruption(format!(
            "blob {id}: {len} bytes at offset {offset} are past its end ({size} bytes)"
        )),
    }
}

/// `prefix_end` returns the smallest key greater than every key starting
/// with `prefix`, or `None` if there is none (all bytes 0xFF), for use as
/// the exclusive end of a prefix scan.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(&[]), None);
    }
}
