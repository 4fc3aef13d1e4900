//! The block page cache: recently read pages of block blobs, so that reads
//! of many series fetch a block's chunks a page at a time instead of one
//! store read per series, and repeated reads do not reach the store.
//!
//! Blocks never change once written, so a cached page never goes stale;
//! the pages of a block are dropped when the engine drops the block
//! (compaction, retention). Whether a page is cached changes how fast a
//! read is, never what it returns.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use raftwatch_storage::{KvStore, StorageError};

/// `BLOCK_CACHE_PAGE_BYTES` is the size of a cached page, and so of every
/// store read the cache makes (less at a block's end).
pub const BLOCK_CACHE_PAGE_BYTES: u64 = 64 << 10;

/// `BlockCache` holds up to `capacity` bytes of block pages, evicting the
/// least recently used. Shared by concurrent readers (one lock, held only
/// to look a page up or insert it; the store read happens outside it).
#[derive(Debug)]
pub(crate) struct BlockCache {
    capacity: usize,
    pages: Mutex<Pages>,
}

/// `PageKey` is (block id, page number); a page is its bytes and when it
/// was last used.
type PageKey = (u64, u64);

#[derive(Debug, Default)]
struct Pages {
    map: BTreeMap<PageKey, (Arc<[u8]>, u64)>,
    /// The same pages by last use (`map`'s second field), so that the
    /// least recently used is found in O(log n) whatever the capacity.
    by_use: BTreeMap<u64, PageKey>,
    bytes: usize,
    /// Incremented at every use: larger is more recent.
    clock: u64,
    hits: u64,
    misses: u64,
}

/// `CacheStats` is what [`BlockCache::stats`] reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Bytes of pages held.
    pub bytes: usize,
    /// Blocks with a page held.
    pub blocks: usize,
    /// Page lookups answered from the cache, and those that read the store.
    pub hits: u64,
    pub misses: u64,
}

impl BlockCache {
    /// `new` is an empty cache of `capacity` bytes; 0 disables it (every
    /// read goes to the store for exactly the bytes asked).
    pub fn new(capacity: usize) -> BlockCache {
        BlockCache {
            capacity,
            pages: Mutex::new(Pages::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pages> {
        // Every critical section leaves the map consistent.
        self.pages.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `read` replaces `out` with bytes `start..start + len` of block `id`,
    /// whose chunk bytes end at `chunk_bytes` (the range must lie below
    /// it; the store's error otherwise).
    pub fn read(
        &self,
        store: &dyn KvStore,
        id: u64,
        chunk_bytes: u64,
        start: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        out.clear();
        let end = start.saturating_add(len as u64);
        if self.capacity == 0 || end > chunk_bytes || len == 0 {
            *out = store.read_blob(id, start, len)?;
            return Ok(());
        }
        out.reserve(len);
        let mut at = start;
        while at < end {
            let page = at / BLOCK_CACHE_PAGE_BYTES;
            let page_start = page * BLOCK_CACHE_PAGE_BYTES;
            let bytes = self.page(store, id, page, chunk_bytes)?;
            let from = (at - page_start) as usize;
            let to = (end.min(page_start + bytes.len() as u64) - page_start) as usize;
            out.extend_from_slice(&bytes[from..to]);
            at = page_start + to as u64;
        }
        Ok(())
    }

    /// `page` is page `page` of block `id`, from the cache or the store.
    fn page(
        &self,
        store: &dyn KvStore,
        id: u64,
        page: u64,
        chunk_bytes: u64,
    ) -> Result<Arc<[u8]>, StorageError> {
        {
            let mut p = self.lock();
            p.clock += 1;
            let now = p.clock;
            if let Some((bytes, used)) = p.map.get_mut(&(id, page)) {
                let before = std::mem::replace(used, now);
                let bytes = bytes.clone();
                p.by_use.remove(&before);
                p.by_use.insert(now, (id, page));
                p.hits += 1;
                return Ok(bytes);
            }
            p.misses += 1;
        }
        let page_start = page * BLOCK_CACHE_PAGE_BYTES;
        let len = (chunk_bytes - page_start).min(BLOCK_CACHE_PAGE_BYTES) as usize;
        let bytes: Arc<[u8]> = store.read_blob(id, page_start, len)?.into();
        let mut p = self.lock();
        p.clock += 1;
        let now = p.clock;
        if let Some((old, used)) = p.map.insert((id, page), (bytes.clone(), now)) {
            // Another reader fetched it meanwhile.
            p.bytes -= old.len();
            p.by_use.remove(&used);
        }
        p.by_use.insert(now, (id, page));
        p.bytes += bytes.len();
        while p.bytes > self.capacity {
            // The least recently used page (never the one just inserted,
            // which is the most recent).
            let Some((&used, &key)) = p.by_use.first_key_value() else {
                break;
            };
            if key == (id, page) {
                break;
            }
            p.by_use.remove(&used);
            if let Some((old, _)) = p.map.remove(&key) {
                p.bytes -= old.len();
            }
        }
        Ok(bytes)
    }

    /// `forget` drops the pages of block `id` (which the engine no longer
    /// reads).
    pub fn forget(&self, id: u64) {
        let mut p = self.lock();
        let keys: Vec<PageKey> = p
            .map
            .range((id, 0)..=(id, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some((old, used)) = p.map.remove(&k) {
                p.bytes -= old.len();
                p.by_use.remove(&used);
            }
        }
    }

    /// `stats` is the bytes held and the hit and miss counts so far.
    pub fn stats(&self) -> CacheStats {
        let p = self.lock();
        let mut ids: Vec<u64> = p.map.keys().map(|&(id, _)| id).collect();
        ids.dedup();
        CacheStats {
            bytes: p.bytes,
            blocks: ids.len(),
            hits: p.hits,
            misses: p.misses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftwatch_storage::{MemStore, WriteBatch};

    fn store_with_blob(id: u64, len: usize) -> (MemStore, Vec<u8>) {
        let store = MemStore::new();
        let blob: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut b = WriteBatch::new();
        b.put_blob(id, blob.clone());
        store.write(b).unwrap();
        (store, blob)
    }

    #[test]
    fn reads_return_the_store_bytes_across_pages_and_hit_once_cached() {
        let page = BLOCK_CACHE_PAGE_BYTES as usize;
        let (store, blob) = store_with_blob(3, 3 * page + 100);
        // The directory starts 50 bytes before the blob's end.
        let chunk_bytes = (blob.len() - 50) as u64;
        let cache = BlockCache::new(2 * page);
        let mut out = Vec::new();
        for (start, len) in [
            (0, 10),
            (page - 5, 10),
            (10, 2 * page + 7),
            (3 * page, 50),
            (chunk_bytes as usize - 1, 1),
        ] {
            cache
                .read(&store, 3, chunk_bytes, start as u64, len, &mut out)
                .unwrap();
            assert_eq!(out, &blob[start..start + len], "{start}+{len}");
        }
        let s = cache.stats();
        assert!(s.bytes <= 2 * page, "{s:?}");
        assert!(s.hits > 0 && s.misses >= 4, "{s:?}");
        // Past the chunk bytes, the store's answer (here: the bytes, as the
        // blob is longer), never a cached page's.
        cache
            .read(&store, 3, chunk_bytes, chunk_bytes, 10, &mut out)
            .unwrap();
        assert_eq!(out, &blob[chunk_bytes as usize..][..10]);
        // A block the store does not hold is the store's error.
        assert!(cache.read(&store, 4, 100, 0, 10, &mut out).is_err());
    }

    #[test]
    fn the_least_recently_used_page_is_evicted_and_forget_drops_a_block() {
        let page = BLOCK_CACHE_PAGE_BYTES as usize;
        let (store, _) = store_with_blob(1, 3 * page);
        let cache = BlockCache::new(2 * page);
        let mut out = Vec::new();
        let mut read = |p: usize| {
            cache
                .read(&store, 1, 3 * page as u64, (p * page) as u64, 1, &mut out)
                .unwrap();
        };
        read(0);
        read(1);
        read(0); // page 1 is now the least recently used
        read(2); // evicts page 1
        read(0); // hit
        read(1); // miss
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (2, 4), "{s:?}");
        assert_eq!((s.bytes, s.blocks), (2 * page, 1));
        cache.forget(1);
        assert_eq!((cache.stats().bytes, cache.stats().blocks), (0, 0));
    }

    proptest::proptest! {
        /// Hits, misses and evictions match a reference LRU (a list in
        /// order of use) over reads of pages of three blocks and forgets,
        /// and the index by last use stays the map's mirror.
        #[test]
        fn hits_and_evictions_follow_a_reference_lru(
            ops in proptest::collection::vec((0u64..3, 0u64..4, 0u8..8), 1..200),
            capacity_pages in 1usize..5,
        ) {
            let page = BLOCK_CACHE_PAGE_BYTES;
            let store = MemStore::new();
            let mut b = WriteBatch::new();
            for id in 0..3 {
                b.put_blob(id, vec![id as u8; 4 * page as usize]);
            }
            store.write(b).unwrap();
            let cache = BlockCache::new(capacity_pages * page as usize);
            let mut lru: Vec<PageKey> = Vec::new();
            let (mut hits, mut misses) = (0, 0);
            let mut out = Vec::new();
            for (id, n, op) in ops {
                if op == 0 {
                    cache.forget(id);
                    lru.retain(|&(b, _)| b != id);
                } else {
                    cache.read(&store, id, 4 * page, n * page + 1, 1, &mut out).unwrap();
                    proptest::prop_assert_eq!(&out, &vec![id as u8]);
                    if let Some(i) = lru.iter().position(|&k| k == (id, n)) {
                        lru.remove(i);
                        hits += 1;
                    } else {
                        misses += 1;
                        if lru.len() == capacity_pages {
                            lru.remove(0);
                        }
                    }
                    lru.push((id, n));
                }
                let s = cache.stats();
                proptest::prop_assert_eq!((s.hits, s.misses), (hits, misses));
                proptest::prop_assert_eq!(s.bytes, lru.len() * page as usize);
                let p = cache.lock();
                let mut by_use: Vec<PageKey> = p.by_use.values().copied().collect();
                proptest::prop_assert_eq!(&by_use, &lru);
                by_use.sort_unstable();
                proptest::prop_assert_eq!(by_use, p.map.keys().copied().collect::<Vec<_>>());
                for (k, (_, used)) in &p.map {
                    proptest::prop_assert_eq!(p.by_use.get(used), Some(k));
                }
            }
        }
    }

    #[test]
    fn a_disabled_cache_holds_nothing() {
        let (store, blob) = store_with_blob(1, 1000);
        let cache = BlockCache::new(0);
        let mut out = Vec::new();
        cache.read(&store, 1, 1000, 10, 20, &mut out).unwrap();
        assert_eq!(out, &blob[10..30]);
        assert_eq!(cache.stats(), CacheStats::default());
    }
}
