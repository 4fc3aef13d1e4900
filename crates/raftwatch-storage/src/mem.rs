//! `MemStore`: the in-memory engine with crash semantics.
//!
//! It keeps two images of the data: the current (visible) one, which every
//! read sees, and the durable one, which is what survives [`MemStore::crash`].
//! Writes since the last flush are also kept as a list of pending operations,
//! so a flush costs time in proportion to what was written since the previous
//! one rather than to the size of the store; a crash copies the durable image
//! back, which is rare and may cost the whole store.
//!
//! Everything is deterministic: no threads, no clocks, and the only maps are
//! `BTreeMap`s, so the deterministic simulator can run it.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::{BatchOp, KvPair, KvStore, ScanIter, StorageError, WriteBatch};

/// `MemStore` is an in-memory [`KvStore`] that can lose unflushed writes on
/// demand, for tests and the deterministic simulator.
///
/// Cloning a `MemStore` gives another handle to the **same** store; that is
/// how a test "reopens" the store after [`MemStore::crash`]. Semantics:
/// - [`KvStore::write`] applies a batch atomically to the current image.
/// - [`KvStore::flush`] makes the durable image equal to the current one,
///   unless a failure was armed with [`MemStore::fail_next_flush`].
/// - [`MemStore::crash`] discards every write since the last successful
///   flush: the current image becomes the durable one. Each unflushed batch
///   is therefore lost entirely, never partially.
/// - Blobs follow the [`KvStore`] contract exactly: a put is durable at
///   once, a batch that deletes one is made durable whole (as by a flush)
///   before the blob goes.
/// - [`KvStore::size_on_disk_bytes`] is the sum of key and value lengths in
///   the durable image, plus every blob's length.
#[derive(Clone, Default)]
pub struct MemStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// What reads see.
    current: BTreeMap<Vec<u8>, Vec<u8>>,
    /// What survives a crash.
    durable: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Operations applied to `current` but not yet to `durable`, in order.
    pending: Vec<BatchOp>,
    /// Sum of key and value lengths in `durable`.
    durable_bytes: u64,
    /// When set, the next flush fails without making anything durable.
    fail_next_flush: bool,
    /// Blobs, durable as soon as they are written.
    blobs: BTreeMap<u64, Arc<Vec<u8>>>,
    /// Sum of blob lengths.
    blob_bytes: u64,
}

impl MemStore {
    /// `SCAN_PAGE_ENTRIES` is how many entries a scan copies out of the store
    /// per lock acquisition. A scan over more entries than this resumes after
    /// the last key it returned, so it observes writes made between pages.
    pub const SCAN_PAGE_ENTRIES: usize = 256;

    /// `new` returns an empty store with nothing durable.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// `crash` simulates process death: every write since the last
    /// successful flush is discarded, and the store (through every handle)
    /// then holds exactly its durable image. An armed
    /// [`MemStore::fail_next_flush`] is disarmed, as a restarted process
    /// would not inherit it.
    pub fn crash(&self) {
        let mut inner = self.lock();
        inner.current = inner.durable.clone();
        inner.pending.clear();
        inner.fail_next_flush = false;
    }

    /// `fail_next_flush` arms a fault: the next [`KvStore::flush`] returns
    /// [`StorageError::Io`] and makes nothing durable. The unflushed writes
    /// stay visible and pending, so a later successful flush (or a crash)
    /// treats them as usual. The fault fires once.
    pub fn fail_next_flush(&self) {
        self.lock().fail_next_flush = true;
    }

    /// `unflushed_ops_count` is the number of batch operations written since
    /// the last successful flush, i.e. what a crash now would discard.
    pub fn unflushed_ops_count(&self) -> usize {
        self.lock().pending.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below completes without panicking, so a poisoned
        // lock (a panic elsewhere while holding it) still guards a
        // consistent state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Copies at most `SCAN_PAGE_ENTRIES` entries from `(lo, end)` out of the
    /// current image.
    fn page(&self, lo: Bound<&[u8]>, end: Option<&[u8]>) -> Vec<KvPair> {
        let hi = match end {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        if is_empty_range(lo, hi) {
            return Vec::new();
        }
        let inner = self.lock();
        inner
            .current
            .range::<[u8], _>((lo, hi))
            .take(Self::SCAN_PAGE_ENTRIES)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// `BTreeMap::range` panics when the start is after the end (or equal with
/// both excluded); such a range is empty for us.
fn is_empty_range(lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    match (lo, hi) {
        (Bound::Included(l), Bound::Excluded(h)) => l >= h,
        (Bound::Excluded(l), Bound::Excluded(h)) => l >= h,
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Excluded(l), Bound::Included(h)) => l >= h,
        _ => false,
    }
}

impl fmt::Debug for MemStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Contents can be large; show only their shape.
        let inner = self.lock();
        f.debug_struct("MemStore")
            .field("current_len", &inner.current.len())
            .field("durable_len", &inner.durable.len())
            .field("pending_ops", &inner.pending.len())
            .field("durable_bytes", &inner.durable_bytes)
            .field("fail_next_flush", &inner.fail_next_flush)
            .field("blobs", &inner.blobs.len())
            .field("blob_bytes", &inner.blob_bytes)
            .finish()
    }
}

fn entry_bytes(key: &[u8], value: &[u8]) -> u64 {
    // usize always fits in u64 on the platforms we build for.
    (key.len() + value.len()) as u64
}

impl KvStore for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.lock().current.get(key).cloned())
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let mut blob_deletes = Vec::new();
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { key, value } => {
                    inner.current.insert(key.clone(), value.clone());
                    inner.pending.push(BatchOp::Put { key, value });
                }
                BatchOp::Delete { key } => {
                    inner.current.remove(&key);
                    inner.pending.push(BatchOp::Delete { key });
                }
                BatchOp::PutBlob { id, data } => {
                    let added = data.len() as u64;
                    if let Some(old) = inner.blobs.insert(id, Arc::new(data)) {
                        inner.blob_bytes -= old.len() as u64;
                    }
                    inner.blob_bytes += added;
                }
                BatchOp::DeleteBlob { id } => blob_deletes.push(id),
            }
        }
        if !blob_deletes.is_empty() {
            make_durable(&mut inner);
            for id in blob_deletes {
                if let Some(old) = inner.blobs.remove(&id) {
                    inner.blob_bytes -= old.len() as u64;
                }
            }
        }
        Ok(())
    }

    fn scan<'a>(&'a self, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a> {
        Box::new(MemScan {
            store: self,
            resume: Resume::From(start.to_vec()),
            end: end.map(<[u8]>::to_vec),
            page: VecDeque::new(),
        })
    }

    fn flush(&self) -> Result<(), StorageError> {
        let mut inner = self.lock();
        if std::mem::take(&mut inner.fail_next_flush) {
            return Err(StorageError::Io(std::io::Error::other(
                "MemStore: injected flush failure (fail_next_flush)",
            )));
        }
        make_durable(&mut inner);
        Ok(())
    }

    fn size_on_disk_bytes(&self) -> Result<u64, StorageError> {
        let inner = self.lock();
        Ok(inner.durable_bytes + inner.blob_bytes)
    }

    fn read_blob(&self, id: u64, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let inner = self.lock();
        let Some(blob) = inner.blobs.get(&id) else {
            return Err(crate::blob_range_error(id, offset, len, None));
        };
        usize::try_from(offset)
            .ok()
            .and_then(|start| Some(start..start.checked_add(len)?))
            .and_then(|range| blob.get(range))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| crate::blob_range_error(id, offset, len, Some(blob.len() as u64)))
    }

    fn blob_ids(&self) -> Result<Vec<u64>, StorageError> {
        Ok(self.lock().blobs.keys().copied().collect())
    }
}

/// Applies every pending key operation to the durable image.
fn make_durable(inner: &mut Inner) {
    let pending = std::mem::take(&mut inner.pending);
    let Inner {
        durable,
        durable_bytes,
        ..
    } = inner;
    for op in pending {
        match op {
            BatchOp::Put { key, value } => {
                let added = entry_bytes(&key, &value);
                if let Some(old) = durable.insert(key.clone(), value) {
                    *durable_bytes -= entry_bytes(&key, &old);
                }
                *durable_bytes += added;
            }
            BatchOp::Delete { key } => {
                if let Some(old) = durable.remove(&key) {
                    *durable_bytes -= entry_bytes(&key, &old);
                }
            }
            // Never pending: blobs are durable when written.
            BatchOp::PutBlob { .. } | BatchOp::DeleteBlob { .. } => {}
        }
    }
}

/// Where the next page of a scan starts.
enum Resume {
    /// At this key, inclusive (the scan's start).
    From(Vec<u8>),
    /// After this key (the last one returned).
    After(Vec<u8>),
    /// The scan has reached its end.
    Done,
}

/// A scan over a [`MemStore`] that copies one page at a time, so it neither
/// holds the lock across the iteration nor copies the whole store.
struct MemScan<'a> {
    store: &'a MemStore,
    resume: Resume,
    end: Option<Vec<u8>>,
    page: VecDeque<KvPair>,
}

impl Iterator for MemScan<'_> {
    type Item = Result<KvPair, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() {
            let lo = match &self.resume {
                Resume::From(key) => Bound::Included(key.as_slice()),
                Resume::After(key) => Bound::Excluded(key.as_slice()),
                Resume::Done => return None,
            };
            let page = self.store.page(lo, self.end.as_deref());
            self.resume = match page.last() {
                Some((last, _)) if page.len() == MemStore::SCAN_PAGE_ENTRIES => {
                    Resume::After(last.clone())
                }
                // A short page means the range is exhausted.
                _ => Resume::Done,
            };
            self.page = page.into();
        }
        self.page.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(store: &MemStore, key: &[u8], value: &[u8]) {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        store.write(batch).unwrap();
    }

    #[test]
    fn crash_drops_exactly_the_unflushed_writes() {
        let store = MemStore::new();
        put(&store, b"a", b"1");
        put(&store, b"b", b"2");
        store.flush().unwrap();
        put(&store, b"a", b"overwritten");
        put(&store, b"c", b"3");
        let mut batch = WriteBatch::new();
        batch.delete(b"b".to_vec());
        store.write(batch).unwrap();
        assert_eq!(store.unflushed_ops_count(), 3);

        let reopened = store.clone();
        store.crash();
        assert_eq!(reopened.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(reopened.get(b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(reopened.get(b"c").unwrap(), None);
        assert_eq!(reopened.unflushed_ops_count(), 0);
        assert_eq!(reopened.size_on_disk_bytes().unwrap(), 4);
    }

    #[test]
    fn fail_next_flush_makes_nothing_durable_once() {
        let store = MemStore::new();
        put(&store, b"a", b"1");
        store.fail_next_flush();
        assert!(matches!(store.flush(), Err(StorageError::Io(_))));
        assert_eq!(store.size_on_disk_bytes().unwrap(), 0);
        // Still visible, still pending.
        assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
        store.crash();
        assert_eq!(store.get(b"a").unwrap(), None);

        // The fault fired once: the next flush works.
        put(&store, b"a", b"2");
        store.fail_next_flush();
        assert!(store.flush().is_err());
        store.flush().unwrap();
        store.crash();
        assert_eq!(store.get(b"a").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn size_tracks_overwrites_and_deletes_in_the_durable_image() {
        let store = MemStore::new();
        put(&store, b"k", b"12345");
        store.flush().unwrap();
        assert_eq!(store.size_on_disk_bytes().unwrap(), 6);
        put(&store, b"k", b"1");
        assert_eq!(store.size_on_disk_bytes().unwrap(), 6, "unflushed");
        store.flush().unwrap();
        assert_eq!(store.size_on_disk_bytes().unwrap(), 2);
        let mut batch = WriteBatch::new();
        batch.delete(b"k".to_vec());
        batch.delete(b"absent".to_vec());
        store.write(batch).unwrap();
        store.flush().unwrap();
        assert_eq!(store.size_on_disk_bytes().unwrap(), 0);
    }

    #[test]
    fn scan_sees_writes_between_pages_and_does_not_hold_the_lock() {
        let store = MemStore::new();
        let mut batch = WriteBatch::new();
        for i in 0..(MemStore::SCAN_PAGE_ENTRIES as u32 * 2) {
            batch.put(i.to_be_bytes().to_vec(), b"v".to_vec());
        }
        store.write(batch).unwrap();
        let mut scan = store.scan(&[], None);
        assert!(scan.next().is_some());
        // Writing while the scan is live would deadlock if it held the lock.
        let late = u32::MAX.to_be_bytes();
        put(&store, &late, b"late");
        let rest: Vec<_> = scan.map(Result::unwrap).collect();
        assert_eq!(rest.len(), MemStore::SCAN_PAGE_ENTRIES * 2);
        assert_eq!(rest.last().unwrap().0, late.to_vec());
    }

    #[test]
    fn reversed_range_is_empty_not_a_panic() {
        let store = MemStore::new();
        put(&store, b"m", b"1");
        assert_eq!(store.scan(b"z", Some(b"a")).count(), 0);
        assert_eq!(store.scan(b"m", Some(b"m")).count(), 0);
    }
}
