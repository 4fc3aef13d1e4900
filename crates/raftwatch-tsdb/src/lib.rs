//! raftwatch-tsdb: the time-series storage engine every shard wraps.
//!
//! A [`Tsdb`] holds, per series, an open Gorilla chunk (the head), a small
//! buffer of out-of-order samples, and an entry in an inverted index
//! (label name → value → postings). Completed chunks are written to a
//! [`KvStore`]; [`Tsdb::flush`] is the engine's durable point. The engine is
//! synchronous, reads no clock, and is deterministic: the same calls on the
//! same state give the same results and the same bytes, which is what a
//! Raft state machine needs.
//!
//! Sample policy (per series, decided only from the series' own data):
//! - newer than the series' newest sample: appended;
//! - same timestamp and bit-identical value as an existing sample: a no-op
//!   (counted as a duplicate);
//! - same timestamp, different value: rejected;
//! - older than the newest by at most `out_of_order_window_ms`: accepted
//!   into the out-of-order buffer; older still: rejected.
//!
//! Architecture invariant: this crate names neither `tokio` nor `sled`.

mod block;
mod cache;
mod config;
mod error;
mod index;
mod keys;
mod prefetch;
mod read;
mod snapshot;

pub use cache::{BLOCK_CACHE_PAGE_BYTES, CacheStats};
pub use config::{
    BLOCK_BYTES_MIN_DEFAULT, BLOCK_CACHE_BYTES_DEFAULT, CHUNK_SPAN_MS_MAX_DEFAULT,
    HEAD_LOG_BYTES_MIN_DEFAULT, OOO_BUFFER_SAMPLES_MAX_DEFAULT, OUT_OF_ORDER_WINDOW_MS_DEFAULT,
    SERIES_MAX_DEFAULT, TsdbConfig,
};
pub use error::{RejectReason, Rejection, TsdbError};
pub use keys::OWNED_PREFIX_END;
pub use read::{SampleIter, SeriesEntry};
pub use snapshot::{SNAPSHOT_PIECE_BYTES_DEFAULT, SnapshotStream};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use raftwatch_chunk::{ChunkRecord, XorChunk};
use raftwatch_model::{Label, LabelLimits, Labels, Sample, SeriesHash, SeriesRef, TimestampMs};
use raftwatch_storage::{KvStore, WriteBatch, prefix_end};

use crate::block::{Block, BlockBuilder, BlockRecord};
use crate::index::{Index, InternedLabels, Interner};
use crate::keys::{HeadLogEntry, HeadLogRecord, Meta, SeriesLogEntry, SeriesRecord};

/// `AppendReport` summarises one append call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendReport {
    /// Samples newly stored.
    pub accepted: usize,
    /// Samples identical to one already stored (no-ops).
    pub duplicates: usize,
    /// Samples refused, with their index in the batch and the reason.
    pub rejections: Vec<Rejection>,
}

/// `RetentionReport` summarises one [`Tsdb::delete_before`] call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Persisted chunks deleted.
    pub chunks_deleted: usize,
    /// Series removed because nothing of them was left.
    pub series_deleted: usize,
}

/// `Stats` describes the engine's current contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live series.
    pub series: usize,
    /// Estimated heap bytes of the head: series, open chunks, out-of-order
    /// buffers, index and interned strings.
    pub head_bytes: usize,
    /// Blocks of packed chunks.
    pub blocks: usize,
    /// Heap bytes of the blocks' directories (about 32 per chunk).
    pub block_index_bytes: usize,
    /// Bytes of chunk records stored one key each, not yet in a block.
    pub inline_chunk_bytes: usize,
    /// The block page cache's bytes, hits and misses.
    pub block_cache: CacheStats,
}

/// `MemSeries` is a series' in-memory state.
#[derive(Debug)]
struct MemSeries {
    labels: InternedLabels,
    /// The labels again, contiguous: `name 0xFF value 0xFF` per label in
    /// canonical order (the bytes the series hash digests). A lookup
    /// compares against this instead of following two interned pointers
    /// per label, which on the apply path was one cache miss each.
    key: Box<[u8]>,
    hash: SeriesHash,
    /// Earliest sample time; `i64::MAX` while the series has no sample.
    min_time: i64,
    /// Newest sample `(t, value bits)`; `None` while the series is empty.
    newest: Option<(i64, u64)>,
    /// The open chunk; may be empty (new series, or after recovery).
    head: XorChunk,
    /// Chunks cut since the last flush, oldest first; written by the flush.
    sealed: Vec<XorChunk>,
    /// What the store holds of the head: its first timestamp and payload
    /// length and sample count as of the last flush (checkpoint or head log).
    logged: Option<(i64, usize, usize)>,
    /// Out-of-order samples not yet written out, ascending by time, all
    /// older than `newest`.
    ooo: Vec<Sample>,
    /// No chunk the store holds for this series ends after this time: an
    /// upper bound (`i64::MIN` while it holds none), so a read whose range
    /// starts later skips the store. Raised by every flush that writes a
    /// chunk; after `open` it is the newest sample's time, since no stored
    /// sample, in order or not, is newer.
    persisted_max: i64,
    /// The series record must be (re)written.
    record_dirty: bool,
    /// The store holds a series record for this series.
    recorded: bool,
    /// Queued in `Tsdb::dirty`.
    queued: bool,
}

impl MemSeries {
    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<MemSeries>()
            + self.labels.len() * std::mem::size_of::<(Arc<str>, Arc<str>)>()
            + self.key.len()
            + self.head.heap_bytes()
            + self.sealed.capacity() * std::mem::size_of::<XorChunk>()
            + self.sealed.iter().map(XorChunk::heap_bytes).sum::<usize>()
            + self.ooo.capacity() * std::mem::size_of::<Sample>()
    }

    fn labels(&self) -> Labels {
        let v = self
            .labels
            .iter()
            .map(|(n, v)| Label::new(&**n, &**v))
            .collect();
        // Labels were validated when the series was created.
        Labels::new(v, &LabelLimits::UNLIMITED).unwrap_or_default()
    }
}

/// `Tsdb` is the engine. `S` is where chunks and series records persist.
#[derive(Debug)]
pub struct Tsdb<S: KvStore> {
    store: S,
    config: TsdbConfig,
    meta: Meta,
    /// Series by ref; refs are dense and never reused, deleted ones are
    /// `None` (8 bytes per deleted ref until the engine is reopened).
    series: Vec<Option<Box<MemSeries>>>,
    live_series: usize,
    by_hash: HashMap<SeriesHash, SeriesRef>,
    /// Further series whose hash collides with the one in `by_hash`.
    collisions: HashMap<SeriesHash, Vec<SeriesRef>>,
    index: Index,
    interner: Interner,
    /// Series with something to write at the next flush, in dirtying order.
    dirty: Vec<SeriesRef>,
    /// Deletions decided by retention, written at the next flush.
    retention_deletes: WriteBatch,
    /// First head-log sequence number still in the store.
    log_first_seq: u64,
    /// Bytes of head-log records written since the last checkpoint.
    log_bytes: usize,
    /// Head bytes the last checkpoint wrote (or loaded at open): the next
    /// checkpoint is due once the head log has grown as large.
    checkpoint_bytes: usize,
    /// Every block's directory, ascending by id.
    blocks: Vec<Block>,
    /// Recently read block pages (see `TsdbConfig::block_cache_bytes`).
    block_cache: cache::BlockCache,
    /// The id the next block gets: above every blob the store holds.
    next_block_id: u64,
    /// Bytes of the chunk records stored one key each (`0x03`).
    inline_bytes: usize,
    /// The blobs holding the head-log records still in the store.
    log_blobs: Vec<u64>,
    /// The blob holding the head checkpoint.
    checkpoint_blob: Option<u64>,
    /// Series with a `0x04` head key in the store (from a restore, or a
    /// store written before the checkpoint was a blob): the next
    /// checkpoint deletes them.
    legacy_head_keys: Vec<SeriesRef>,
    /// Series with a `0x02` series key in the store (from a restore, or a
    /// store written before series records moved into the head log and
    /// checkpoint): the next checkpoint deletes them.
    legacy_series_keys: Vec<SeriesRef>,
    /// Series retention removed since the last flush: the next head-log
    /// record says so (a checkpoint just leaves them out).
    removed_series: Vec<SeriesRef>,
    /// Blobs to delete once the next flush has made the removal of every
    /// key that refers to them durable (deleting a blob is itself a durable
    /// point, see `KvStore`, so it cannot share the flush's batch).
    blob_garbage: Vec<u64>,
    /// Blocks retention left at least half condemned: the next flush
    /// rewrites them without their condemned chunks.
    rewrites: Vec<u64>,
    poisoned: bool,
}

impl<S: KvStore> Tsdb<S> {
    /// `open` loads the engine from `store` (empty or previously written by
    /// a `Tsdb`): series records, head chunks and meta. Chunk data is read
    /// lazily. Fails with [`TsdbError::Corruption`] naming the record if
    /// anything read is damaged.
    pub fn open(store: S, config: TsdbConfig) -> Result<Tsdb<S>, TsdbError> {
        config.validate()?;
        let meta = match store.get(keys::META_KEY)? {
            Some(b) => Meta::decode(&b).map_err(|reason| TsdbError::Corruption {
                what: "engine meta record".into(),
                reason,
            })?,
            None => Meta {
                next_series_ref: 0,
                chunk_span_ms_max: config.chunk_span_ms_max,
                retention_cutoff: i64::MIN,
                next_log_seq: 0,
            },
        };
        let mut db = Tsdb {
            store,
            meta,
            series: Vec::new(),
            live_series: 0,
            by_hash: HashMap::new(),
            collisions: HashMap::new(),
            index: Index::default(),
            interner: Interner::default(),
            dirty: Vec::new(),
            retention_deletes: WriteBatch::new(),
            log_first_seq: 0,
            log_bytes: 0,
            checkpoint_bytes: 0,
            blocks: Vec::new(),
            block_cache: cache::BlockCache::new(config.block_cache_bytes),
            next_block_id: 0,
            inline_bytes: 0,
            log_blobs: Vec::new(),
            checkpoint_blob: None,
            legacy_head_keys: Vec::new(),
            legacy_series_keys: Vec::new(),
            removed_series: Vec::new(),
            blob_garbage: Vec::new(),
            rewrites: Vec::new(),
            poisoned: false,
            config,
        };
        db.meta.chunk_span_ms_max = db.meta.chunk_span_ms_max.max(db.config.chunk_span_ms_max);
        db.load_heads()?;
        db.load_blocks()?;
        db.recover_headless()?;
        for s in db.series.iter_mut().flatten() {
            s.persisted_max = s.newest.map_or(i64::MAX, |(t, _)| t);
        }
        Ok(db)
    }

    /// Reads every `prefix ‖ u64be` key with its value, in key order.
    fn scan_by_ref(&self, prefix: u8, what: &str) -> Result<Vec<(SeriesRef, Vec<u8>)>, TsdbError> {
        let mut out = Vec::new();
        for kv in self.store.scan(&[prefix], Some(&[prefix + 1])) {
            let (k, v) = kv?;
            let r = keys::parse_series_ref(&k)
                .filter(|_| k.len() == 9)
                .ok_or_else(|| TsdbError::Corruption {
                    what: format!("{what} key"),
                    reason: format!("{k:?}"),
                })?;
            out.push((r, v));
        }
        Ok(out)
    }

    /// Decodes one series record; `what` names where it was read from.
    fn decode_series(v: &[u8], what: impl FnOnce() -> String) -> Result<SeriesRecord, TsdbError> {
        SeriesRecord::decode(v).map_err(|reason| TsdbError::Corruption {
            what: what(),
            reason,
        })
    }

    /// Loads the series records and open heads: the head checkpoint (and
    /// `0x02`/`0x04` keys a restore or an older store wrote), then the
    /// head log (`0x05` records, in flush order) over it; then creates the
    /// series and rebuilds their open chunks.
    fn load_heads(&mut self) -> Result<(), TsdbError> {
        let mut series: BTreeMap<SeriesRef, SeriesRecord> = BTreeMap::new();
        for (r, v) in self.scan_by_ref(keys::SERIES_PREFIX, "series")? {
            series.insert(r, Self::decode_series(&v, || format!("series record {r}"))?);
            self.legacy_series_keys.push(r);
        }
        // series → (min_time, num_samples, payload)
        let mut heads: BTreeMap<SeriesRef, (i64, u64, Vec<u8>)> = BTreeMap::new();
        // The checkpoint is one blob; heads restored from a snapshot (and
        // stores written before blobs) are `0x04` keys, one per series.
        let mut checkpoint: Vec<(SeriesRef, Vec<u8>)> = Vec::new();
        if let Some(v) = self.store.get(keys::CHECKPOINT_KEY)? {
            let corrupt = |reason: String| TsdbError::Corruption {
                what: "head checkpoint".into(),
                reason,
            };
            let (id, len) = block::decode_blob_pointer(&v).map_err(corrupt)?;
            let blob = self
                .store
                .read_blob(id, 0, len)
                .map_err(|e| corrupt(e.to_string()))?;
            let c = keys::decode_checkpoint(&blob).map_err(corrupt)?;
            self.checkpoint_bytes += blob.len();
            series.extend(c.series);
            checkpoint = c.heads;
            self.checkpoint_blob = Some(id);
        }
        let legacy = self.scan_by_ref(keys::HEAD_PREFIX, "head")?;
        self.legacy_head_keys = legacy.iter().map(|(r, _)| *r).collect();
        self.checkpoint_bytes += legacy.iter().map(|(_, v)| v.len()).sum::<usize>();
        for (r, v) in legacy.into_iter().chain(checkpoint) {
            let rec = ChunkRecord::decode(&v).map_err(|e| TsdbError::Corruption {
                what: format!("head chunk of series {r}"),
                reason: e.to_string(),
            })?;
            // Heads are appended to after loading, so they are held as XOR;
            // a checkpoint stores them in the smallest encoding. XOR
            // encoding is a function of the samples alone, so re-encoding
            // gives back the bytes the head log's offsets refer to.
            let payload = if rec.encoding == raftwatch_chunk::ENCODING_XOR {
                rec.payload.to_vec()
            } else {
                let mut head = XorChunk::new();
                for x in rec.iter() {
                    let x = x.map_err(|e| TsdbError::Corruption {
                        what: format!("head chunk of series {r}"),
                        reason: e.to_string(),
                    })?;
                    head.append(x.timestamp.0, x.value);
                }
                head.payload().to_vec()
            };
            heads.insert(r, (rec.min_time, rec.num_samples as u64, payload));
        }
        let mut first_seq = None;
        // Head-log keys are `0x05 ‖ u64be(seq)`: the same shape as a series
        // key, so the same scan reads them.
        for (seq, v) in self.scan_by_ref(keys::HEAD_LOG_PREFIX, "head-log")? {
            let seq = seq.0;
            first_seq.get_or_insert(seq);
            let what = || format!("head-log record {seq}");
            // Records are kept in blobs; older stores held them inline.
            let v = if v.first() == Some(&block::BLOB_POINTER_VERSION) {
                let corrupt = |reason: String| TsdbError::Corruption {
                    what: what(),
                    reason,
                };
                let (id, len) = block::decode_blob_pointer(&v).map_err(corrupt)?;
                self.log_blobs.push(id);
                self.store
                    .read_blob(id, 0, len)
                    .map_err(|e| corrupt(e.to_string()))?
            } else {
                v
            };
            self.log_bytes += v.len();
            let rec = HeadLogRecord::decode(&v).map_err(|reason| TsdbError::Corruption {
                what: what(),
                reason,
            })?;
            for e in rec.series {
                match e.record {
                    Some(v) => {
                        let r = e.series;
                        let rec = Self::decode_series(&v, || {
                            format!("series record {r} in head-log record {seq}")
                        })?;
                        series.insert(r, rec);
                    }
                    None => {
                        series.remove(&e.series);
                    }
                }
            }
            for e in rec.entries {
                if e.num_samples == 0 {
                    heads.remove(&e.series);
                    continue;
                }
                let start = usize::try_from(e.start_byte).unwrap_or(usize::MAX);
                match heads.get_mut(&e.series) {
                    Some(h) if h.0 == e.min_time && start <= h.2.len() => {
                        h.1 = e.num_samples;
                        h.2.truncate(start);
                        h.2.extend_from_slice(&e.bytes);
                    }
                    _ if start == 0 => {
                        heads.insert(e.series, (e.min_time, e.num_samples, e.bytes));
                    }
                    _ => {
                        return Err(TsdbError::Corruption {
                            what: what(),
                            reason: format!(
                                "entry for series {} continues a head the store does not hold",
                                e.series
                            ),
                        });
                    }
                }
            }
        }
        self.log_first_seq = first_seq.unwrap_or(self.meta.next_log_seq);
        for (r, rec) in series {
            self.insert_series(r, &rec.labels, rec.min_time);
            if let Some(s) = self.series_mut(r) {
                s.recorded = true;
            }
            self.meta.next_series_ref = self.meta.next_series_ref.max(r.0 + 1);
        }
        for (r, (min_time, num_samples, payload)) in heads {
            let what = || format!("head chunk of series {r}");
            let chunk = XorChunk::from_payload(
                &payload,
                usize::try_from(num_samples).unwrap_or(usize::MAX),
            )
            .map_err(|e| TsdbError::Corruption {
                what: what(),
                reason: e.to_string(),
            })?;
            if chunk.min_time() != Some(min_time) {
                return Err(TsdbError::Corruption {
                    what: what(),
                    reason: "first sample does not match the recorded start".into(),
                });
            }
            // Series removed by retention may still have older log entries.
            let Some(s) = self.series_mut(r) else {
                continue;
            };
            if let (Some(t), Some(v)) = (chunk.max_time(), chunk.last_value()) {
                s.newest = Some((t, v.to_bits()));
            }
            s.logged = Some((min_time, payload.len(), chunk.num_samples()));
            s.head = chunk;
        }
        Ok(())
    }

    /// Loads every block's directory, deletes blobs no block record refers
    /// to (a crash after a block was written but before its record was
    /// durable), and sums the chunks stored one key each.
    fn load_blocks(&mut self) -> Result<(), TsdbError> {
        let mut referenced = BTreeSet::new();
        for (id, v) in self.scan_by_ref(block::BLOCK_PREFIX, "block")? {
            let id = id.0;
            let corrupt = |reason: String| TsdbError::Corruption {
                what: format!("block {id}"),
                reason,
            };
            let rec = BlockRecord::decode(&v).map_err(corrupt)?;
            let dir_len = usize::try_from(rec.dir_len)
                .map_err(|_| corrupt(format!("directory of {} bytes", rec.dir_len)))?;
            let dir = self
                .store
                .read_blob(id, rec.dir_offset, dir_len)
                .map_err(|e| corrupt(e.to_string()))?;
            self.blocks
                .push(block::decode_directory(id, &rec, &dir).map_err(corrupt)?);
            referenced.insert(id);
        }
        referenced.extend(self.log_blobs.iter().copied());
        referenced.extend(self.checkpoint_blob);
        let ids = self.store.blob_ids()?;
        self.next_block_id = ids
            .last()
            .copied()
            .max(referenced.last().copied())
            .map_or(0, |id| id + 1);
        let mut orphans = WriteBatch::new();
        for id in ids.into_iter().filter(|id| !referenced.contains(id)) {
            orphans.delete_blob(id);
        }
        if !orphans.is_empty() {
            self.store.write(orphans)?;
        }
        for kv in self
            .store
            .scan(&[keys::CHUNK_PREFIX], Some(&[keys::CHUNK_PREFIX + 1]))
        {
            self.inline_bytes += kv?.1.len();
        }
        Ok(())
    }

    /// A series record without a head record happens only when the series
    /// was emptied by retention or an older layout; find its newest sample
    /// by reading its chunks.
    fn recover_headless(&mut self) -> Result<(), TsdbError> {
        let headless: Vec<SeriesRef> = self
            .live_refs()
            .filter(|&r| self.get(r).is_some_and(|s| s.newest.is_none()))
            .collect();
        for r in headless {
            let mut newest: Option<(i64, u64)> = None;
            for item in self.samples(r, TimestampMs::MIN, TimestampMs::MAX)? {
                let s = item?;
                newest = Some((s.timestamp.0, s.value.to_bits()));
            }
            if let Some(s) = self.series_mut(r) {
                s.newest = newest;
            }
        }
        Ok(())
    }

    fn insert_series(&mut self, r: SeriesRef, labels: &Labels, min_time: i64) {
        let interned: InternedLabels = labels
            .iter()
            .map(|l| {
                (
                    self.interner.intern(&l.name),
                    self.interner.intern(&l.value),
                )
            })
            .collect();
        let hash = (self.config.series_hash)(&mut labels.pairs());
        self.index.add(r, &interned);
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(r);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.entry(hash).or_default().push(r);
            }
        }
        let slot = usize::try_from(r.0).unwrap_or(usize::MAX);
        if self.series.len() <= slot {
            self.series.resize_with(slot + 1, || None);
        }
        let key = label_key(labels.pairs());
        self.series[slot] = Some(Box::new(MemSeries {
            labels: interned,
            key,
            hash,
            min_time,
            newest: None,
            head: XorChunk::new(),
            sealed: Vec::new(),
            logged: None,
            ooo: Vec::new(),
            persisted_max: i64::MIN,
            record_dirty: false,
            recorded: false,
            queued: false,
        }));
        self.live_series += 1;
    }

    fn get(&self, r: SeriesRef) -> Option<&MemSeries> {
        self.series.get(usize::try_from(r.0).ok()?)?.as_deref()
    }

    fn series_mut(&mut self, r: SeriesRef) -> Option<&mut MemSeries> {
        self.series
            .get_mut(usize::try_from(r.0).ok()?)?
            .as_deref_mut()
    }

    fn live_refs(&self) -> impl Iterator<Item = SeriesRef> + '_ {
        self.series
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| SeriesRef(i as u64))
    }

    fn labels_equal(s: &MemSeries, labels: &Labels) -> bool {
        key_matches(&s.key, labels.pairs())
    }

    /// `lookup` finds the series with exactly these labels.
    pub fn lookup(&self, labels: &Labels) -> Option<SeriesRef> {
        let hash = (self.config.series_hash)(&mut labels.pairs());
        self.find(hash, |s| Self::labels_equal(s, labels))
    }

    /// `find` is the series with `hash` (first, then its collisions) that
    /// `matches` accepts.
    fn find(&self, hash: SeriesHash, matches: impl Fn(&MemSeries) -> bool) -> Option<SeriesRef> {
        let first = *self.by_hash.get(&hash)?;
        if self.get(first).is_some_and(&matches) {
            return Some(first);
        }
        self.collisions
            .get(&hash)?
            .iter()
            .copied()
            .find(|&r| self.get(r).is_some_and(&matches))
    }

    /// `lookup_pairs` is [`Tsdb::lookup`] over borrowed `(name, value)`
    /// pairs, without building a [`Labels`]. Only a canonical sequence
    /// ([`Labels::is_canonical`]) can match, since stored label sets are
    /// canonical; anything else finds nothing.
    pub fn lookup_pairs(&self, pairs: &[(&str, &str)]) -> Option<SeriesRef> {
        let hash = (self.config.series_hash)(&mut pairs.iter().copied());
        self.find(hash, |s| key_matches(&s.key, pairs.iter().copied()))
    }

    /// `series_ref` returns the series with these labels, creating it (in
    /// memory; it is persisted with its first sample) if needed. Refuses
    /// labels over the engine's limits and new series over `series_max`.
    /// Appending by the returned ref skips hashing and validation.
    pub fn series_ref(&mut self, labels: &Labels) -> Result<SeriesRef, TsdbError> {
        if let Some(r) = self.lookup(labels) {
            return Ok(r);
        }
        // Re-check against this engine's limits: `labels` may have been
        // built under looser ones.
        let labels = Labels::new(labels.clone().into_vec(), &self.config.label_limits)?;
        if self.live_series >= self.config.series_max {
            return Err(TsdbError::SeriesLimit {
                limit: self.config.series_max,
            });
        }
        let r = SeriesRef(self.meta.next_series_ref);
        self.meta.next_series_ref += 1;
        self.insert_series(r, &labels, i64::MAX);
        Ok(r)
    }

    /// `append` stores samples of known series, in order. Each sample is
    /// accepted, a duplicate no-op, or rejected with its index; the rest of
    /// the batch is applied regardless. Nothing is written to the store:
    /// accepted samples live in memory until [`Tsdb::flush`], which is the
    /// only call that writes. The outcome depends only on the engine's state
    /// and the batch.
    pub fn append(&mut self, samples: &[(SeriesRef, Sample)]) -> Result<AppendReport, TsdbError> {
        self.check_poisoned()?;
        let mut report = AppendReport::default();
        for (i, &(r, sample)) in samples.iter().enumerate() {
            // A batch usually holds one sample for each of many series:
            // start loading the series a few samples ahead, and the tail of
            // the head chunk of one nearer, which by then is in cache.
            if let Some(&(ahead, _)) = samples.get(i + PREFETCH_SERIES_AHEAD)
                && let Some(Some(s)) = self.series.get(ahead.0 as usize)
            {
                prefetch::prefetch(&raw const **s);
            }
            if let Some(&(ahead, _)) = samples.get(i + PREFETCH_TAIL_AHEAD)
                && let Some(s) = self.get(ahead)
            {
                let payload = s.head.payload();
                prefetch::prefetch(payload.as_ptr().wrapping_add(payload.len()));
            }
            self.append_one(i, r, sample, &mut report)?;
        }
        Ok(report)
    }

    /// `append_series` stores a batch given by label sets: each series is
    /// looked up or created, then its samples appended. A series that
    /// cannot be created (invalid labels, series limit) has each of its
    /// samples rejected; sample indices count across the whole batch.
    pub fn append_series(
        &mut self,
        batch: &[(Labels, Vec<Sample>)],
    ) -> Result<AppendReport, TsdbError> {
        self.check_poisoned()?;
        let mut report = AppendReport::default();
        let mut index = 0;
        for (labels, samples) in batch {
            self.append_labeled(index, labels, samples.iter().copied(), &mut report)?;
            index += samples.len();
        }
        Ok(report)
    }

    /// `append_labeled` is one series of [`Tsdb::append_series`]: the
    /// series is looked up or created, then `samples` appended and counted
    /// into `report`, numbered from `first_index`. A series that cannot be
    /// created has each of its samples rejected.
    pub fn append_labeled(
        &mut self,
        first_index: usize,
        labels: &Labels,
        samples: impl IntoIterator<Item = Sample>,
        report: &mut AppendReport,
    ) -> Result<(), TsdbError> {
        self.check_poisoned()?;
        match self.series_ref(labels) {
            Ok(r) => self.append_run(first_index, r, samples, report),
            Err(e) => {
                let reason = match e {
                    TsdbError::InvalidLabels(e) => RejectReason::InvalidLabels(e.to_string()),
                    TsdbError::SeriesLimit { limit } => RejectReason::SeriesLimit { limit },
                    other => return Err(other),
                };
                for (i, _) in samples.into_iter().enumerate() {
                    report.rejections.push(Rejection {
                        index: first_index + i,
                        reason: reason.clone(),
                    });
                }
                Ok(())
            }
        }
    }

    /// `append_run` appends samples of one known series (by reference, no
    /// hashing or validation), counted into `report` and numbered from
    /// `first_index`; see [`Tsdb::append`].
    pub fn append_run(
        &mut self,
        first_index: usize,
        r: SeriesRef,
        samples: impl IntoIterator<Item = Sample>,
        report: &mut AppendReport,
    ) -> Result<(), TsdbError> {
        self.check_poisoned()?;
        for (i, s) in samples.into_iter().enumerate() {
            self.append_one(first_index + i, r, s, report)?;
        }
        Ok(())
    }

    fn check_poisoned(&self) -> Result<(), TsdbError> {
        if self.poisoned {
            Err(TsdbError::Poisoned)
        } else {
            Ok(())
        }
    }

    #[inline]
    fn append_one(
        &mut self,
        index: usize,
        r: SeriesRef,
        sample: Sample,
        report: &mut AppendReport,
    ) -> Result<(), TsdbError> {
        let t = sample.timestamp.0;
        let bits = sample.value.to_bits();
        let (samples_max, span_max, window) = (
            self.config.chunk_samples_max,
            self.config.chunk_span_ms_max,
            self.config.out_of_order_window_ms,
        );
        if t < self.meta.retention_cutoff {
            report.rejections.push(Rejection {
                index,
                reason: RejectReason::BeforeRetention {
                    timestamp: sample.timestamp,
                    cutoff: TimestampMs(self.meta.retention_cutoff),
                },
            });
            return Ok(());
        }
        let Some(s) = self
            .series
            .get_mut(r.0 as usize)
            .and_then(|s| s.as_deref_mut())
        else {
            report.rejections.push(Rejection {
                index,
                reason: RejectReason::UnknownSeries(r),
            });
            return Ok(());
        };
        match s.newest {
            Some((nt, _)) if t > nt => {
                if let Some(head_min) = s.head.min_time()
                    && (s.head.num_samples() >= samples_max
                        || i128::from(t) - i128::from(head_min) >= i128::from(span_max))
                {
                    s.sealed
                        .push(std::mem::replace(&mut s.head, XorChunk::new()));
                }
                s.head.append(t, sample.value);
                s.newest = Some((t, bits));
                report.accepted += 1;
            }
            Some((nt, nbits)) if t == nt => {
                if nbits == bits {
                    report.duplicates += 1;
                } else {
                    report.rejections.push(Rejection {
                        index,
                        reason: RejectReason::DuplicateTimestamp {
                            timestamp: sample.timestamp,
                        },
                    });
                }
                return Ok(());
            }
            Some((nt, _)) => {
                if i128::from(nt) - i128::from(t) > i128::from(window) {
                    report.rejections.push(Rejection {
                        index,
                        reason: RejectReason::OutOfOrder {
                            timestamp: sample.timestamp,
                            newest: TimestampMs(nt),
                            window_ms: window,
                        },
                    });
                    return Ok(());
                }
                return self.append_out_of_order(index, r, sample, report);
            }
            None => {
                s.head.append(t, sample.value);
                s.newest = Some((t, bits));
                s.min_time = t;
                s.record_dirty = true;
                report.accepted += 1;
            }
        }
        if !s.queued {
            s.queued = true;
            self.dirty.push(r);
        }
        Ok(())
    }

    /// The slow path: a sample older than its series' newest, inside the
    /// window. It may duplicate a sample anywhere in the series.
    fn append_out_of_order(
        &mut self,
        index: usize,
        r: SeriesRef,
        sample: Sample,
        report: &mut AppendReport,
    ) -> Result<(), TsdbError> {
        let t = sample.timestamp.0;
        match self.find_sample(r, t)? {
            Some(bits) if bits == sample.value.to_bits() => {
                report.duplicates += 1;
                return Ok(());
            }
            Some(_) => {
                report.rejections.push(Rejection {
                    index,
                    reason: RejectReason::DuplicateTimestamp {
                        timestamp: sample.timestamp,
                    },
                });
                return Ok(());
            }
            None => {}
        }
        let (buffer_max, samples_max, span_max) = (
            self.config.ooo_buffer_samples_max.max(1),
            self.config.chunk_samples_max,
            self.config.chunk_span_ms_max,
        );
        let Some(s) = self
            .series
            .get_mut(r.0 as usize)
            .and_then(|s| s.as_deref_mut())
        else {
            return Ok(());
        };
        let pos = s.ooo.partition_point(|x| x.timestamp.0 < t);
        s.ooo.insert(pos, sample);
        if t < s.min_time {
            s.min_time = t;
            s.record_dirty = true;
        }
        if s.ooo.len() >= buffer_max {
            seal_ooo(s, samples_max, span_max);
        }
        if !std::mem::replace(&mut s.queued, true) {
            self.dirty.push(r);
        }
        report.accepted += 1;
        Ok(())
    }

    /// `find_sample` returns the value bits stored at exactly `t`, if any.
    fn find_sample(&self, r: SeriesRef, t: i64) -> Result<Option<u64>, TsdbError> {
        for item in self.samples(r, TimestampMs(t), TimestampMs(t))? {
            let found = item?;
            if found.timestamp.0 == t {
                return Ok(Some(found.value.to_bits()));
            }
        }
        Ok(None)
    }

    /// `flush` is the engine's durable point and its only write: once it
    /// returns `Ok`, every sample accepted before the call survives a crash
    /// and a reopen. The store is changed by exactly one atomic batch per
    /// flush, so after a crash it holds exactly the state of the last
    /// successful flush. With [`TsdbConfig::reopenable`] off it only moves
    /// sealed chunks out of memory (and applies retention's deletions): no
    /// series or head records, no sync.
    pub fn flush(&mut self) -> Result<(), TsdbError> {
        self.flush_with(WriteBatch::new())
    }

    /// `flush_with` is [`Tsdb::flush`] with the caller's own writes (keys at
    /// or above [`OWNED_PREFIX_END`]) written in the same atomic batch.
    /// Blobs belong to the engine: a batch with a blob operation is refused.
    pub fn flush_with(&mut self, extra: WriteBatch) -> Result<(), TsdbError> {
        self.check_poisoned()?;
        if extra.ops().iter().any(|op| {
            matches!(
                op,
                raftwatch_storage::BatchOp::PutBlob { .. }
                    | raftwatch_storage::BatchOp::DeleteBlob { .. }
            )
        }) {
            return Err(TsdbError::Storage(raftwatch_storage::StorageError::Engine(
                "flush_with: blobs belong to the engine; the caller's batch may hold only keys"
                    .into(),
            )));
        }
        let mut batch = std::mem::take(&mut self.retention_deletes);
        let (samples_max, span_max) =
            (self.config.chunk_samples_max, self.config.chunk_span_ms_max);
        // Heads persist as deltas in one head-log record per flush; once the
        // log has grown as large as the heads themselves, a checkpoint writes
        // every head whole and drops the log.
        let reopenable = self.config.reopenable;
        let checkpoint = reopenable
            && self.log_bytes >= self.checkpoint_bytes.max(self.config.head_log_bytes_min);
        let mut log = HeadLogRecord::default();
        let mut sealed = BlockBuilder::default();
        for &r in &self.dirty {
            let Some(s) = self
                .series
                .get_mut(r.0 as usize)
                .and_then(|s| s.as_deref_mut())
            else {
                continue;
            };
            if !s.ooo.is_empty() {
                seal_ooo(s, samples_max, span_max);
            }
            for chunk in &s.sealed {
                if let Some(max) = chunk.max_time() {
                    s.persisted_max = s.persisted_max.max(max);
                }
                if let (Some(min), Some(max)) = (chunk.min_time(), chunk.max_time()) {
                    let mut rec = Vec::with_capacity(chunk.payload().len() + 24);
                    chunk.encode_compact_record(&mut rec);
                    sealed.push(r, min, max, rec);
                }
            }
            if !reopenable {
                continue;
            }
            if !checkpoint && let Some(e) = head_log_entry(r, s) {
                log.entries.push(e);
            }
            // Series records live in the head log and the checkpoint, which
            // writes every one of them.
            if s.record_dirty && !checkpoint {
                let rec = SeriesRecord {
                    min_time: s.min_time,
                    labels: s.labels(),
                };
                log.series.push(SeriesLogEntry {
                    series: r,
                    record: Some(rec.encode()),
                });
            }
        }
        let placed = self
            .rewrite_blocks(&mut batch)
            .and_then(|rewritten| Ok((rewritten, self.place_sealed(sealed, &mut batch)?)));
        let (rewritten, (packed, inline_after)) = match placed {
            Ok(placed) => placed,
            Err(e) => {
                self.poisoned = true;
                return Err(e);
            }
        };
        let mut log_len = 0;
        let mut checkpoint_len = 0;
        let mut new_log_blob = None;
        let removed_series = std::mem::take(&mut self.removed_series);
        if checkpoint {
            // Every series record and every open head, in one blob.
            let mut c = keys::Checkpoint::default();
            for (i, slot) in self.series.iter().enumerate() {
                let Some(s) = slot.as_deref() else {
                    continue;
                };
                let r = SeriesRef(i as u64);
                if s.recorded || s.record_dirty {
                    c.series.push((
                        r,
                        SeriesRecord {
                            min_time: s.min_time,
                            labels: s.labels(),
                        },
                    ));
                }
                if s.head.is_empty() {
                    continue;
                }
                let mut rec = Vec::with_capacity(s.head.payload().len() + 24);
                s.head.encode_compact_record(&mut rec);
                c.heads.push((r, rec));
            }
            let blob = keys::encode_checkpoint(&c);
            checkpoint_len = blob.len();
            let id = self.next_block_id;
            self.next_block_id += 1;
            batch.put(
                keys::CHECKPOINT_KEY.to_vec(),
                block::encode_blob_pointer(id, blob.len()),
            );
            batch.put_blob(id, blob);
            self.blob_garbage.extend(self.checkpoint_blob.replace(id));
            for r in std::mem::take(&mut self.legacy_head_keys) {
                batch.delete(keys::head_key(r).to_vec());
            }
            for r in std::mem::take(&mut self.legacy_series_keys) {
                batch.delete(keys::series_key(r).to_vec());
            }
            for seq in self.log_first_seq..self.meta.next_log_seq {
                batch.delete(keys::head_log_key(seq).to_vec());
            }
            for &id in &self.log_blobs {
                self.blob_garbage.push(id);
            }
        } else {
            log.series
                .extend(removed_series.into_iter().map(|series| SeriesLogEntry {
                    series,
                    record: None,
                }));
        }
        if !checkpoint && reopenable && !log.is_empty() {
            // In a blob: a store would keep a value this large (one entry
            // per changed series) two or three times over.
            let rec = log.encode();
            log_len = rec.len();
            let id = self.next_block_id;
            self.next_block_id += 1;
            batch.put(
                keys::head_log_key(self.meta.next_log_seq).to_vec(),
                block::encode_blob_pointer(id, rec.len()),
            );
            batch.put_blob(id, rec);
            new_log_blob = Some(id);
            self.meta.next_log_seq += 1;
        }
        if reopenable {
            batch.put(keys::META_KEY.to_vec(), self.meta.encode());
        }
        for op in extra.into_ops() {
            match op {
                raftwatch_storage::BatchOp::Put { key, value } => batch.put(key, value),
                raftwatch_storage::BatchOp::Delete { key } => batch.delete(key),
                // Refused on entry.
                raftwatch_storage::BatchOp::PutBlob { .. }
                | raftwatch_storage::BatchOp::DeleteBlob { .. } => {}
            }
        }
        self.write_durably(batch)?;
        for (old, new) in rewritten {
            self.blocks.retain(|b| b.id != old);
            self.block_cache.forget(old);
            self.blocks.extend(new);
        }
        self.blocks.sort_by_key(|b| b.id);
        match packed {
            Some(block) => {
                self.blocks.push(block);
                self.inline_bytes = 0;
            }
            None => self.inline_bytes = inline_after,
        }
        for r in std::mem::take(&mut self.dirty) {
            if let Some(s) = self.series_mut(r) {
                s.queued = false;
                s.recorded |= s.record_dirty && reopenable;
                s.record_dirty = false;
                s.sealed = Vec::new();
                s.logged = s
                    .head
                    .min_time()
                    .map(|t| (t, s.head.payload().len(), s.head.num_samples()));
            }
        }
        if checkpoint {
            for s in self.series.iter_mut().flatten() {
                s.logged = s
                    .head
                    .min_time()
                    .map(|t| (t, s.head.payload().len(), s.head.num_samples()));
            }
            self.log_first_seq = self.meta.next_log_seq;
            self.log_bytes = 0;
            self.checkpoint_bytes = checkpoint_len;
            self.log_blobs.clear();
        } else {
            self.log_bytes += log_len;
            self.log_blobs.extend(new_log_blob);
        }
        self.compact()?;
        self.collect_blob_garbage()
    }

    /// `write_durably` writes `batch` and, for a reopenable engine, makes it
    /// durable. On failure the engine is poisoned: memory may be ahead of
    /// the store, and the batch is gone.
    fn write_durably(&mut self, batch: WriteBatch) -> Result<(), TsdbError> {
        let reopenable = self.config.reopenable;
        let written = self.store.write(batch).and_then(|()| {
            if reopenable {
                self.store.flush()
            } else {
                Ok(())
            }
        });
        written.map_err(|e| {
            self.poisoned = true;
            TsdbError::Storage(e)
        })
    }

    /// `copy_surviving_chunks` reads block `b` and pushes every chunk
    /// retention has not condemned into `into`, as the block holds it.
    fn copy_surviving_chunks(&self, b: &Block, into: &mut BlockBuilder) -> Result<(), TsdbError> {
        let corrupt = |reason: String| TsdbError::Corruption {
            what: format!("block {}", b.id),
            reason,
        };
        let len = usize::try_from(b.chunk_bytes).map_err(|_| corrupt("too large".into()))?;
        let data = self
            .store
            .read_blob(b.id, 0, len)
            .map_err(|e| corrupt(e.to_string()))?;
        for e in b
            .entries
            .iter()
            .filter(|e| e.max_time >= self.meta.retention_cutoff)
        {
            let start = e.offset as usize;
            let bytes = data
                .get(start..start + e.len as usize)
                .ok_or_else(|| corrupt("a chunk runs past the chunk bytes".into()))?;
            // Checked here to name the chunk; bare chunks are then copied
            // as they are, whole ones (version 1 blocks) made bare.
            b.record(e, bytes)
                .map_err(|err| TsdbError::chunk_corruption(e.series, e.min_time, err))?;
            if b.bare {
                into.push_bare(e.series, e.min_time, e.max_time, bytes.to_vec());
            } else {
                into.push(e.series, e.min_time, e.max_time, bytes.to_vec());
            }
        }
        Ok(())
    }

    /// `compaction_candidates` is the blocks the next merge takes: the
    /// `compaction_fanin` oldest of the smallest size tier that holds that
    /// many (blocks due for a retention rewrite sit out), if their chunk
    /// bytes stay within `compaction_bytes_max`.
    fn compaction_candidates(&self) -> Option<Vec<u64>> {
        let fanin = self.config.compaction_fanin;
        if fanin < 2 {
            return None;
        }
        let base = self.config.block_bytes_min.max(1) as u64;
        let tier = |bytes: u64| {
            let (mut t, mut limit) = (0u32, base);
            while bytes > limit {
                limit = limit.saturating_mul(fanin as u64);
                t += 1;
            }
            t
        };
        let mut tiers: BTreeMap<u32, Vec<&Block>> = BTreeMap::new();
        for b in self
            .blocks
            .iter()
            .filter(|b| !self.rewrites.contains(&b.id))
        {
            tiers.entry(tier(b.chunk_bytes)).or_default().push(b);
        }
        tiers.into_values().find_map(|blocks| {
            let picked = blocks.get(..fanin)?;
            let bytes: u64 = picked.iter().map(|b| b.chunk_bytes).sum();
            (bytes <= self.config.compaction_bytes_max as u64)
                .then(|| picked.iter().map(|b| b.id).collect())
        })
    }

    /// `compact` merges the blocks [`Tsdb::compaction_candidates`] picks
    /// into one new block (leaving out chunks retention condemned), in one
    /// atomic batch that writes the new block and deletes the old records,
    /// made durable like a flush; the old blobs become garbage.
    fn compact(&mut self) -> Result<(), TsdbError> {
        let Some(ids) = self.compaction_candidates() else {
            return Ok(());
        };
        let mut merged = BlockBuilder::default();
        let mut batch = WriteBatch::new();
        for &id in &ids {
            let Some(b) = self.blocks.iter().find(|b| b.id == id) else {
                continue;
            };
            self.copy_surviving_chunks(b, &mut merged)?;
            batch.delete(block::block_key(id).to_vec());
        }
        let new = if merged.is_empty() {
            None
        } else {
            let id = self.next_block_id;
            self.next_block_id += 1;
            let (blob, rec, block) = merged.finish(id).map_err(|e| TsdbError::Corruption {
                what: format!("a chunk merged into block {id}"),
                reason: e.to_string(),
            })?;
            batch.put_blob(id, blob);
            batch.put(block::block_key(id).to_vec(), rec.encode());
            Some(block)
        };
        self.write_durably(batch)?;
        self.blocks.retain(|b| !ids.contains(&b.id));
        for &id in &ids {
            self.block_cache.forget(id);
        }
        self.blocks.extend(new);
        self.blocks.sort_by_key(|b| b.id);
        self.blob_garbage.extend(ids);
        Ok(())
    }

    /// Deletes the blobs no durable key refers to any more. A failure
    /// leaves them for the next flush (or for the orphan sweep at open).
    fn collect_blob_garbage(&mut self) -> Result<(), TsdbError> {
        if self.blob_garbage.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        for &id in &self.blob_garbage {
            batch.delete_blob(id);
        }
        self.store.write(batch)?;
        self.blob_garbage.clear();
        Ok(())
    }

    /// Rewrites the blocks retention marked, without their condemned
    /// chunks, as new blocks in `batch` (the old ones deleted there too).
    /// Returns (old id, new block) pairs to swap in once the batch is
    /// written.
    fn rewrite_blocks(
        &mut self,
        batch: &mut WriteBatch,
    ) -> Result<Vec<(u64, Option<Block>)>, TsdbError> {
        let mut done = Vec::new();
        for id in std::mem::take(&mut self.rewrites) {
            let Some(b) = self.blocks.iter().find(|b| b.id == id) else {
                continue;
            };
            let corrupt = |reason: String| TsdbError::Corruption {
                what: format!("block {id}"),
                reason,
            };
            let mut kept = BlockBuilder::default();
            self.copy_surviving_chunks(b, &mut kept)?;
            self.blob_garbage.push(id);
            batch.delete(block::block_key(id).to_vec());
            let new = if kept.is_empty() {
                None
            } else {
                let new_id = self.next_block_id;
                self.next_block_id += 1;
                let (blob, rec, block) = kept.finish(new_id).map_err(|e| corrupt(e.to_string()))?;
                batch.put_blob(new_id, blob);
                batch.put(block::block_key(new_id).to_vec(), rec.encode());
                Some(block)
            };
            done.push((id, new));
        }
        Ok(done)
    }

    /// Puts one flush's sealed chunks into `batch`: one key each while the
    /// chunks stored that way stay under [`TsdbConfig::block_bytes_min`];
    /// otherwise packs them, with every chunk already stored one key each
    /// (whose keys it deletes), into a new block. Returns the new block and
    /// the bytes stored one key each after the flush.
    fn place_sealed(
        &mut self,
        mut sealed: BlockBuilder,
        batch: &mut WriteBatch,
    ) -> Result<(Option<Block>, usize), TsdbError> {
        if sealed.is_empty() {
            return Ok((None, self.inline_bytes));
        }
        if self.inline_bytes + sealed.bytes() < self.config.block_bytes_min {
            let mut inline = self.inline_bytes;
            for (r, min, _, rec) in sealed.into_chunks() {
                inline += rec.len();
                batch.put(keys::chunk_key(r, min).to_vec(), rec);
            }
            return Ok((None, inline));
        }
        for kv in self
            .store
            .scan(&[keys::CHUNK_PREFIX], Some(&[keys::CHUNK_PREFIX + 1]))
        {
            let (k, v) = kv?;
            let (r, min_t) = keys::parse_chunk_key(&k).ok_or_else(|| TsdbError::Corruption {
                what: "chunk key".into(),
                reason: format!("{k:?}"),
            })?;
            let max_t = ChunkRecord::decode(&v)
                .map_err(|e| TsdbError::chunk_corruption(r, min_t, e))?
                .max_time;
            batch.delete(k);
            // What retention condemned is deleted, not packed.
            if max_t >= self.meta.retention_cutoff {
                sealed.push(r, min_t, max_t, v);
            }
        }
        if sealed.bytes() > block::BLOCK_BYTES_MAX {
            return Err(TsdbError::Storage(raftwatch_storage::StorageError::Engine(
                format!(
                    "{} bytes of sealed chunks exceed a block's {} bytes",
                    sealed.bytes(),
                    block::BLOCK_BYTES_MAX
                ),
            )));
        }
        let id = self.next_block_id;
        self.next_block_id += 1;
        let (blob, rec, block) = sealed.finish(id).map_err(|e| TsdbError::Corruption {
            what: format!("a chunk packed into block {id}"),
            reason: e.to_string(),
        })?;
        batch.put_blob(id, blob);
        batch.put(block::block_key(id).to_vec(), rec.encode());
        Ok((Some(block), 0))
    }

    /// `delete_before` applies retention: afterwards no read returns a sample
    /// older than `cutoff`, appends older than it are rejected, series with
    /// nothing left are removed, and the next flush deletes the persisted
    /// chunks that lie entirely before it (chunks that straddle it are kept,
    /// their old samples hidden). A block goes whole once all its chunks
    /// are before the cutoff, and is rewritten without them by the next
    /// flush once they are at least half its bytes; until then they stay,
    /// hidden. The cutoff only moves forward and comes from the caller: the
    /// engine reads no clock.
    pub fn delete_before(&mut self, cutoff: TimestampMs) -> Result<RetentionReport, TsdbError> {
        self.check_poisoned()?;
        let mut report = RetentionReport::default();
        if cutoff.0 <= self.meta.retention_cutoff {
            return Ok(report);
        }
        // What an earlier cutoff condemned is already counted, and its
        // deletion already queued.
        let previous = self.meta.retention_cutoff;
        self.meta.retention_cutoff = cutoff.0;
        let cutoff = cutoff.0;
        // Earliest surviving persisted chunk per series.
        let mut surviving: HashMap<SeriesRef, i64> = HashMap::new();
        let mut survives = |r: SeriesRef, min_t: i64| {
            surviving
                .entry(r)
                .and_modify(|t| *t = (*t).min(min_t))
                .or_insert(min_t);
        };
        let start = [keys::CHUNK_PREFIX];
        let end = [keys::CHUNK_PREFIX + 1];
        let mut deletes = Vec::new();
        for kv in self.store.scan(&start, Some(&end)) {
            let (k, v) = kv?;
            let (r, min_t) = keys::parse_chunk_key(&k).ok_or_else(|| TsdbError::Corruption {
                what: "chunk key".into(),
                reason: format!("{k:?}"),
            })?;
            let rec =
                ChunkRecord::decode(&v).map_err(|e| TsdbError::chunk_corruption(r, min_t, e))?;
            if rec.max_time < previous {
                // Deleted by the next flush already.
            } else if rec.max_time < cutoff {
                self.inline_bytes -= v.len().min(self.inline_bytes);
                deletes.push(k);
            } else {
                survives(r, min_t);
            }
        }
        report.chunks_deleted = deletes.len();
        // Whole blocks go once all their chunks are before the cutoff; the
        // rest keep their old chunks, hidden by the cutoff.
        for b in std::mem::take(&mut self.blocks) {
            // A block already due for a rewrite had its condemned chunks
            // counted then.
            let counted = self.rewrites.contains(&b.id);
            if b.max_time < cutoff {
                report.chunks_deleted += if counted {
                    b.entries.iter().filter(|e| e.max_time >= previous).count()
                } else {
                    b.entries.len()
                };
                self.blob_garbage.push(b.id);
                self.retention_deletes
                    .delete(block::block_key(b.id).to_vec());
                continue;
            }
            let (mut condemned, mut condemned_chunks, mut newly_condemned) = (0u64, 0, 0);
            for e in &b.entries {
                if e.max_time >= cutoff {
                    survives(e.series, e.min_time);
                } else {
                    condemned += u64::from(e.len);
                    condemned_chunks += 1;
                    newly_condemned += usize::from(e.max_time >= previous);
                }
            }
            // Reclaim a block's space once at least half of it is
            // condemned; each rewrite at least halves what it keeps.
            if condemned * 2 >= b.chunk_bytes {
                if counted {
                    report.chunks_deleted += newly_condemned;
                } else {
                    self.rewrites.push(b.id);
                    report.chunks_deleted += condemned_chunks;
                }
            }
            self.blocks.push(b);
        }
        for k in deletes {
            self.retention_deletes.delete(k);
        }
        let mut removed = Vec::new();
        for i in 0..self.series.len() {
            let r = SeriesRef(i as u64);
            let Some(s) = self.series[i].as_deref_mut() else {
                continue;
            };
            if s.newest.is_none() {
                continue;
            }
            let before = (s.ooo.len(), s.sealed.len(), s.head.is_empty());
            s.ooo.retain(|x| x.timestamp.0 >= cutoff);
            s.sealed
                .retain(|c| c.max_time().is_some_and(|t| t >= cutoff));
            if s.head.max_time().is_some_and(|t| t < cutoff) {
                s.head = XorChunk::new();
            }
            // Sealed chunks are in cutting order, not time order: chunks of
            // out-of-order samples follow the in-order ones they predate.
            let earliest = [
                surviving.get(&r).copied(),
                s.sealed.iter().filter_map(XorChunk::min_time).min(),
                s.head.min_time(),
                s.ooo.first().map(|x| x.timestamp.0),
            ]
            .into_iter()
            .flatten()
            .min();
            match earliest {
                None => {
                    // Stores written before series records moved into
                    // the head log hold them as keys (restores still do).
                    self.retention_deletes.delete(keys::series_key(r).to_vec());
                    self.retention_deletes.delete(keys::head_key(r).to_vec());
                    self.removed_series.push(r);
                    if let Some(s) = self.series[i].take() {
                        removed.push((r, s));
                    }
                }
                Some(t) => {
                    let t = t.max(cutoff);
                    let changed = before != (s.ooo.len(), s.sealed.len(), s.head.is_empty());
                    if t != s.min_time || changed {
                        s.min_time = t;
                        s.record_dirty = true;
                        if !std::mem::replace(&mut s.queued, true) {
                            self.dirty.push(r);
                        }
                    }
                }
            }
        }
        report.series_deleted = removed.len();
        self.live_series -= removed.len();
        for (r, s) in &removed {
            self.forget_hash(*r, s.hash);
        }
        // Removed refs may linger in `dirty`; refs are never reused and
        // every consumer skips refs without a series.
        let removed: Vec<(SeriesRef, InternedLabels)> =
            removed.into_iter().map(|(r, s)| (r, s.labels)).collect();
        self.index.remove(&removed);
        drop(removed);
        self.interner.collect_garbage();
        Ok(report)
    }

    fn forget_hash(&mut self, r: SeriesRef, hash: SeriesHash) {
        if self.by_hash.get(&hash) == Some(&r) {
            self.by_hash.remove(&hash);
            if let Some(mut others) = self.collisions.remove(&hash) {
                let first = others.remove(0);
                self.by_hash.insert(hash, first);
                if !others.is_empty() {
                    self.collisions.insert(hash, others);
                }
            }
        } else if let Some(others) = self.collisions.get_mut(&hash) {
            others.retain(|x| *x != r);
            if others.is_empty() {
                self.collisions.remove(&hash);
            }
        }
    }

    /// `stats` reports series count and estimated head memory.
    pub fn stats(&self) -> Stats {
        let series_bytes: usize = self.series.iter().flatten().map(|s| s.heap_bytes()).sum();
        let maps = (self.by_hash.capacity() * (std::mem::size_of::<(SeriesHash, SeriesRef)>() + 1))
            + self.collisions.capacity() * 48;
        Stats {
            blocks: self.blocks.len(),
            block_index_bytes: self.blocks.iter().map(Block::heap_bytes).sum(),
            inline_chunk_bytes: self.inline_bytes,
            block_cache: self.block_cache.stats(),
            series: self.live_series,
            head_bytes: series_bytes
                + self.dirty.capacity() * std::mem::size_of::<SeriesRef>()
                + self.series.capacity() * std::mem::size_of::<Option<Box<MemSeries>>>()
                + maps
                + self.index.heap_bytes()
                + self.interner.heap_bytes(),
        }
    }

    /// `config` is the configuration the engine runs with.
    pub fn config(&self) -> &TsdbConfig {
        &self.config
    }

    /// `store` gives read access to the underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// `into_store` closes the engine without flushing and returns its
    /// store (what a crash leaves behind, for the in-memory engine after
    /// `crash()`).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Scan bounds for the chunk keys of `r` that can hold samples in
    /// `[mint, maxt]`: a chunk spans less than `chunk_span_ms_max`, so its
    /// first sample is after `mint - span`.
    fn chunk_scan_bounds(&self, r: SeriesRef, mint: i64, maxt: i64) -> (Vec<u8>, Option<Vec<u8>>) {
        let from = mint
            .saturating_sub(self.meta.chunk_span_ms_max)
            .saturating_add(1);
        let start = keys::chunk_key(r, from.min(maxt)).to_vec();
        let end = match maxt.checked_add(1) {
            Some(t) => Some(keys::chunk_key(r, t).to_vec()),
            None => prefix_end(&keys::chunk_prefix(r)),
        };
        (start, end)
    }
}

/// `KEY_SEPARATOR` ends every name and value in a [`MemSeries`] key; it
/// never occurs in UTF-8, so a key splits back into its labels one way only.
const KEY_SEPARATOR: u8 = 0xff;

/// How many samples ahead [`Tsdb::append`] starts loading a series, and
/// the tail of its head chunk: far enough for a cache miss (about 100 ns)
/// to finish while the samples between are appended (about 20 ns each).
const PREFETCH_SERIES_AHEAD: usize = 16;
const PREFETCH_TAIL_AHEAD: usize = 8;

/// `label_key` is a series' [`MemSeries::key`].
fn label_key<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Box<[u8]> {
    let mut key = Vec::new();
    for (n, v) in pairs {
        key.extend_from_slice(n.as_bytes());
        key.push(KEY_SEPARATOR);
        key.extend_from_slice(v.as_bytes());
        key.push(KEY_SEPARATOR);
    }
    key.into_boxed_slice()
}

/// `cmp_label_keys` orders two [`label_key`]s as their label sets order
/// (`Labels`' `Ord`: pair by pair, name then value, bytewise, a prefix
/// first). Plain byte order would not: the separator `0xFF` sorts after
/// every byte, so `a` would follow `ab`. Here it sorts before every byte,
/// as the end of a string does.
fn cmp_label_keys(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let n = a.len().min(b.len());
    let mut i = 0;
    // The first differing byte, eight bytes at a time.
    while let (Some(x), Some(y)) = (
        a.get(i..n).and_then(|s| s.first_chunk::<8>()),
        b.get(i..n).and_then(|s| s.first_chunk::<8>()),
    ) {
        let diff = u64::from_le_bytes(*x) ^ u64::from_le_bytes(*y);
        if diff != 0 {
            i += (diff.trailing_zeros() / 8) as usize;
            break;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    match (a.get(i), b.get(i)) {
        // `wrapping_add(1)` maps the separator to 0 and every other byte
        // one up, keeping their order.
        (Some(x), Some(y)) => x.wrapping_add(1).cmp(&y.wrapping_add(1)),
        _ => a.len().cmp(&b.len()),
    }
}

/// `key_matches` is true when `key` is exactly the [`label_key`] of
/// `pairs`, compared in place. Since neither side's strings contain
/// [`KEY_SEPARATOR`], matching each name and value followed by a separator
/// at the same offset means the same labels in the same order.
fn key_matches<'a>(key: &[u8], pairs: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
    let mut rest = key;
    for (n, v) in pairs {
        let (n, v) = (n.as_bytes(), v.as_bytes());
        let len = n.len() + v.len() + 2;
        if rest.len() < len {
            return false;
        }
        let (label, tail) = rest.split_at(len);
        if &label[..n.len()] != n
            || label[n.len()] != KEY_SEPARATOR
            || &label[n.len() + 1..len - 1] != v
            || label[len - 1] != KEY_SEPARATOR
        {
            return false;
        }
        rest = tail;
    }
    rest.is_empty()
}

/// The head-log entry recording what series `r`'s head gained since the
/// store last saw it, or `None` if nothing changed.
fn head_log_entry(r: SeriesRef, s: &MemSeries) -> Option<HeadLogEntry> {
    let payload = s.head.payload();
    let num_samples = s.head.num_samples();
    match (s.head.min_time(), s.logged) {
        (None, None) => None,
        (None, Some(_)) => Some(HeadLogEntry {
            series: r,
            min_time: 0,
            num_samples: 0,
            start_byte: 0,
            bytes: Vec::new(),
        }),
        (Some(min), Some((logged_min, _, logged_n)))
            if logged_min == min && logged_n == num_samples =>
        {
            None
        }
        (Some(min), logged) => {
            // The last logged byte may have been partial: rewrite from it.
            let start = match logged {
                Some((logged_min, logged_len, _)) if logged_min == min => {
                    logged_len.saturating_sub(1)
                }
                _ => 0,
            };
            Some(HeadLogEntry {
                series: r,
                min_time: min,
                num_samples: num_samples as u64,
                start_byte: start as u64,
                bytes: payload[start..].to_vec(),
            })
        }
    }
}

/// Moves a series' out-of-order buffer into sealed chunks, each within the
/// chunk sample and span limits.
fn seal_ooo(s: &mut MemSeries, samples_max: usize, span_max: i64) {
    let chunks = ooo_chunks(&s.ooo, samples_max, span_max);
    s.sealed.extend(chunks);
    s.ooo = Vec::new();
}

/// `ooo_chunks` cuts a sorted out-of-order buffer into chunks of at most
/// `samples_max` samples, each spanning less than `span_max` ms: the bound
/// reads rely on to limit their key scans. (The buffer's samples lie
/// within the out-of-order window of the series' newest, and that window
/// may be wider than one chunk's span.)
pub(crate) fn ooo_chunks(ooo: &[Sample], samples_max: usize, span_max: i64) -> Vec<XorChunk> {
    let mut out = Vec::new();
    let mut chunk = XorChunk::new();
    for x in ooo {
        if let Some(min) = chunk.min_time()
            && (chunk.num_samples() >= samples_max
                || i128::from(x.timestamp.0) - i128::from(min) >= i128::from(span_max))
        {
            out.push(std::mem::replace(&mut chunk, XorChunk::new()));
        }
        chunk.append(x.timestamp.0, x.value);
    }
    if !chunk.is_empty() {
        out.push(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
        // Short strings over a small alphabet, so that equal and
        // prefix-sharing label sets are frequent.
        proptest::collection::vec(("[ab\u{e9}]{0,2}", "[ab\u{e9}]{0,2}"), 0..4)
    }

    fn borrow(p: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
        p.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    proptest! {
        #[test]
        fn a_key_matches_exactly_its_own_labels(a in pairs(), b in pairs()) {
            let key = label_key(borrow(&a));
            prop_assert!(key_matches(&key, borrow(&a)));
            prop_assert_eq!(key_matches(&key, borrow(&b)), a == b, "{:?} vs {:?}", a, b);
        }

        /// Keys sort as their label sets do, including names and values
        /// that are prefixes of each other, long shared prefixes (past the
        /// 8-byte steps) and the lowest and highest UTF-8 bytes.
        #[test]
        fn keys_order_as_their_labels(
            a in proptest::collection::vec(("[ab\u{0}\u{10ffff}]{1,11}", "[ab\u{0}\u{10ffff}]{1,11}"), 1..4),
            b in proptest::collection::vec(("[ab\u{0}\u{10ffff}]{1,11}", "[ab\u{0}\u{10ffff}]{1,11}"), 1..4),
            shared in 0usize..4,
        ) {
            // Often the same first labels, so that the order is decided late.
            let b: Vec<_> = a.iter().take(shared).chain(&b).cloned().collect();
            let (Ok(la), Ok(lb)) = (
                Labels::from_pairs(a, &LabelLimits::UNLIMITED),
                Labels::from_pairs(b, &LabelLimits::UNLIMITED),
            ) else {
                return Ok(());
            };
            let (ka, kb) = (label_key(la.pairs()), label_key(lb.pairs()));
            prop_assert_eq!(cmp_label_keys(&ka, &kb), la.cmp(&lb), "{:?} vs {:?}", la, lb);
            prop_assert_eq!(cmp_label_keys(&kb, &ka), lb.cmp(&la));
        }

    }
}
