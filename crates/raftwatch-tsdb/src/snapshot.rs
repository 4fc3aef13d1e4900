//! Snapshots: the whole engine state as a stream of bounded, checksummed
//! pieces, and the restore that rebuilds an identical engine from them.
//! Raft snapshots carry these pieces. Format in `docs/format/tsdb.md`.
//!
//! A piece is `version u8 | flags u8 | uvarint entries | entries | crc32c
//! u32 LE`, each entry `uvarint key_len | key | uvarint value_len | value`.
//! Flag bit 0 marks the last piece, so a truncated stream is detected.

use raftwatch_model::SeriesRef;
use raftwatch_model::encoding::{Reader, put_uvarint};
use raftwatch_storage::{KvPair, KvStore, ScanIter, WriteBatch};

use raftwatch_chunk::ChunkRecord;

use crate::block::{BLOCK_PREFIX, BlockBuilder, block_key};
use crate::error::TsdbError;
use crate::keys::{self, SeriesRecord};
use crate::{Tsdb, TsdbConfig};

/// `SNAPSHOT_PIECE_BYTES_DEFAULT` is the default piece size bound (1 MiB).
pub const SNAPSHOT_PIECE_BYTES_DEFAULT: usize = 1 << 20;
/// `RESTORE_BLOCK_BYTES` is the chunk bytes per block a restore packs.
const RESTORE_BLOCK_BYTES: usize = 4 << 20;
const PIECE_VERSION: u8 = 1;
const FLAG_LAST: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Meta,
    Series(usize),
    Chunks,
    /// Block index, and which of its chunks comes next.
    Blocks(usize, usize),
    Sealed(usize, usize),
    /// Series index, and which of its out-of-order chunks comes next.
    Ooo(usize, usize),
    Heads(usize),
    Done,
}

/// `SnapshotStream` yields the pieces of a snapshot of a [`Tsdb`] as it
/// is at the time of the call (it borrows the engine, so the engine cannot
/// change underneath it). Every piece is at most the configured size unless
/// a single entry is larger, in which case the piece holds just that entry.
pub struct SnapshotStream<'a, S: KvStore> {
    db: &'a Tsdb<S>,
    piece_bytes_max: usize,
    phase: Phase,
    scan: Option<ScanIter<'a>>,
    /// The chunk bytes of the block being streamed.
    block_data: Vec<u8>,
    /// An entry produced but not yet placed in a piece.
    carry: Option<KvPair>,
    finished: bool,
}

impl<S: KvStore> std::fmt::Debug for SnapshotStream<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStream")
            .field("phase", &self.phase)
            .finish()
    }
}

impl<'a, S: KvStore> SnapshotStream<'a, S> {
    /// Produces the next entry in the fixed order meta, series records,
    /// persisted chunks, sealed (unflushed) chunks, out-of-order buffers as
    /// chunks, heads. Persisted chunks that retention has condemned but the
    /// next flush has not yet deleted are included; the meta's retention
    /// cutoff hides them after restore just as it does now.
    fn next_entry(&mut self) -> Result<Option<KvPair>, TsdbError> {
        let db = self.db;
        loop {
            match self.phase {
                Phase::Meta => {
                    self.phase = Phase::Series(0);
                    return Ok(Some((keys::META_KEY.to_vec(), db.meta.encode())));
                }
                Phase::Series(i) => {
                    let Some(slot) = db.series.get(i) else {
                        self.phase = Phase::Chunks;
                        let (start, end) = ([keys::CHUNK_PREFIX], [keys::CHUNK_PREFIX + 1]);
                        self.scan = Some(db.store.scan(&start, Some(&end)));
                        continue;
                    };
                    self.phase = Phase::Series(i + 1);
                    if let Some(s) = slot.as_deref().filter(|s| s.newest.is_some()) {
                        let rec = SeriesRecord {
                            min_time: s.min_time,
                            labels: s.labels(),
                        };
                        return Ok(Some((
                            keys::series_key(SeriesRef(i as u64)).to_vec(),
                            rec.encode(),
                        )));
                    }
                }
                Phase::Chunks => match self.scan.as_mut().and_then(|s| s.next()) {
                    Some(kv) => return Ok(Some(kv?)),
                    None => {
                        self.scan = None;
                        self.phase = Phase::Blocks(0, 0);
                    }
                },
                Phase::Blocks(b, e) => {
                    let Some(block) = db.blocks.get(b) else {
                        self.phase = Phase::Sealed(0, 0);
                        continue;
                    };
                    let Some(entry) = block.entries.get(e) else {
                        self.phase = Phase::Blocks(b + 1, 0);
                        continue;
                    };
                    if e == 0 {
                        let len = usize::try_from(block.chunk_bytes).unwrap_or(usize::MAX);
                        self.block_data = db.store.read_blob(block.id, 0, len).map_err(|err| {
                            TsdbError::Corruption {
                                what: format!("block {}", block.id),
                                reason: err.to_string(),
                            }
                        })?;
                    }
                    self.phase = Phase::Blocks(b, e + 1);
                    // Offsets were checked against the chunk bytes on load.
                    let start = entry.offset as usize;
                    let bytes = self
                        .block_data
                        .get(start..start + entry.len as usize)
                        .ok_or_else(|| TsdbError::Corruption {
                            what: format!("block {}", block.id),
                            reason: "a chunk runs past the chunk bytes".into(),
                        })?;
                    // Streamed as a whole record, whatever the block holds.
                    let rec = block.full_record(entry, bytes).map_err(|e| {
                        TsdbError::chunk_corruption(entry.series, entry.min_time, e)
                    })?;
                    return Ok(Some((
                        keys::chunk_key(entry.series, entry.min_time).to_vec(),
                        rec,
                    )));
                }
                Phase::Sealed(i, j) => {
                    let Some(slot) = db.series.get(i) else {
                        self.phase = Phase::Ooo(0, 0);
                        continue;
                    };
                    let chunk = slot.as_deref().and_then(|s| s.sealed.get(j));
                    let Some(chunk) = chunk else {
                        self.phase = Phase::Sealed(i + 1, 0);
                        continue;
                    };
                    self.phase = Phase::Sealed(i, j + 1);
                    if let Some(min) = chunk.min_time() {
                        let mut rec = Vec::new();
                        chunk.encode_compact_record(&mut rec);
                        return Ok(Some((
                            keys::chunk_key(SeriesRef(i as u64), min).to_vec(),
                            rec,
                        )));
                    }
                }
                Phase::Ooo(i, k) => {
                    let Some(slot) = db.series.get(i) else {
                        self.phase = Phase::Heads(0);
                        continue;
                    };
                    // Cut as a flush seals the buffer: within the chunk
                    // sample and span limits (the buffer holds at most
                    // `ooo_buffer_samples_max` samples, so recutting it
                    // per chunk is cheap).
                    let chunk = slot.as_deref().and_then(|s| {
                        crate::ooo_chunks(
                            &s.ooo,
                            db.config.chunk_samples_max,
                            db.config.chunk_span_ms_max,
                        )
                        .into_iter()
                        .nth(k)
                    });
                    let Some(chunk) = chunk else {
                        self.phase = Phase::Ooo(i + 1, 0);
                        continue;
                    };
                    self.phase = Phase::Ooo(i, k + 1);
                    if let Some(min) = chunk.min_time() {
                        let mut rec = Vec::new();
                        chunk.encode_compact_record(&mut rec);
                        let key = keys::chunk_key(SeriesRef(i as u64), min);
                        return Ok(Some((key.to_vec(), rec)));
                    }
                }
                Phase::Heads(i) => {
                    let Some(slot) = db.series.get(i) else {
                        self.phase = Phase::Done;
                        continue;
                    };
                    self.phase = Phase::Heads(i + 1);
                    if let Some(s) = slot.as_deref().filter(|s| !s.head.is_empty()) {
                        let mut rec = Vec::new();
                        s.head.encode_record(&mut rec);
                        return Ok(Some((keys::head_key(SeriesRef(i as u64)).to_vec(), rec)));
                    }
                }
                Phase::Done => return Ok(None),
            }
        }
    }

    fn next_piece(&mut self) -> Result<Vec<u8>, TsdbError> {
        let mut body = Vec::new();
        let mut count = 0u64;
        let mut last = false;
        loop {
            let entry = match self.carry.take() {
                Some(e) => Some(e),
                None => self.next_entry()?,
            };
            let Some((k, v)) = entry else {
                last = true;
                break;
            };
            let size = k.len() + v.len() + 20;
            if count > 0 && body.len() + size > self.piece_bytes_max {
                self.carry = Some((k, v));
                break;
            }
            put_uvarint(&mut body, k.len() as u64);
            body.extend_from_slice(&k);
            put_uvarint(&mut body, v.len() as u64);
            body.extend_from_slice(&v);
            count += 1;
        }
        let mut piece = vec![PIECE_VERSION, if last { FLAG_LAST } else { 0 }];
        put_uvarint(&mut piece, count);
        piece.extend_from_slice(&body);
        let crc = crc32c::crc32c(&piece);
        piece.extend_from_slice(&crc.to_le_bytes());
        self.finished = last;
        Ok(piece)
    }
}

impl<S: KvStore> Iterator for SnapshotStream<'_, S> {
    type Item = Result<Vec<u8>, TsdbError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let piece = self.next_piece();
        if piece.is_err() {
            self.finished = true;
        }
        Some(piece)
    }
}

impl<S: KvStore> Tsdb<S> {
    /// `snapshot` streams the engine's complete state in pieces of at most
    /// about `piece_bytes_max` bytes. Unflushed data is included: the
    /// snapshot is of the engine, not of its last durable point.
    pub fn snapshot(&self, piece_bytes_max: usize) -> SnapshotStream<'_, S> {
        SnapshotStream {
            db: self,
            piece_bytes_max: piece_bytes_max.max(64),
            phase: Phase::Meta,
            scan: None,
            block_data: Vec::new(),
            carry: None,
            finished: false,
        }
    }

    /// `restore` rebuilds an engine from snapshot pieces into `store`, which
    /// must hold no engine keys. Every piece is verified (checksum, version,
    /// owned key range); a stream without its last piece is refused. The
    /// store is flushed before the engine is opened.
    pub fn restore<I>(store: S, config: TsdbConfig, pieces: I) -> Result<Tsdb<S>, TsdbError>
    where
        I: IntoIterator<Item = Vec<u8>>,
    {
        if let Some(kv) = store.scan(&[0x00], Some(&[keys::OWNED_PREFIX_END])).next() {
            let (k, _) = kv?;
            return Err(TsdbError::InvalidSnapshot(format!(
                "target store is not empty (holds key {k:?})"
            )));
        }
        if let Some(id) = store.blob_ids()?.first() {
            return Err(TsdbError::InvalidSnapshot(format!(
                "target store is not empty (holds blob {id})"
            )));
        }
        // Chunks are packed into blocks as they arrive, whatever the
        // engine that streamed them stored them as.
        let mut builder = BlockBuilder::default();
        let mut next_block = 0u64;
        // Every record was decoded as it arrived, so packing cannot fail
        // on a record; a failure is reported all the same.
        let mut pack = |builder: BlockBuilder, batch: &mut WriteBatch| {
            let (blob, rec, _) = builder
                .finish(next_block)
                .map_err(|e| TsdbError::InvalidSnapshot(format!("chunk: {e}")))?;
            batch.put_blob(next_block, blob);
            batch.put(block_key(next_block).to_vec(), rec.encode());
            next_block += 1;
            Ok::<(), TsdbError>(())
        };
        let bad = |m: &str| TsdbError::InvalidSnapshot(m.to_string());
        let mut saw_last = false;
        for (n, piece) in pieces.into_iter().enumerate() {
            if saw_last {
                return Err(bad("data after the last piece"));
            }
            let split = piece
                .len()
                .checked_sub(4)
                .ok_or_else(|| bad("piece shorter than its checksum"))?;
            let (body, tail) = piece.split_at(split);
            let crc = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
            if crc32c::crc32c(body) != crc {
                return Err(TsdbError::InvalidSnapshot(format!(
                    "checksum mismatch in piece {n}"
                )));
            }
            let mut r = Reader::new(body);
            if r.u8() != Some(PIECE_VERSION) {
                return Err(bad("unsupported piece version"));
            }
            let flags = r.u8().ok_or_else(|| bad("truncated piece header"))?;
            saw_last = flags & FLAG_LAST != 0;
            let count = r.uvarint().ok_or_else(|| bad("truncated piece header"))?;
            let mut batch = WriteBatch::new();
            for _ in 0..count {
                let klen = usize::try_from(r.uvarint().ok_or_else(|| bad("truncated entry"))?)
                    .map_err(|_| bad("key too long"))?;
                let key = r.bytes(klen).ok_or_else(|| bad("truncated key"))?;
                let vlen = usize::try_from(r.uvarint().ok_or_else(|| bad("truncated entry"))?)
                    .map_err(|_| bad("value too long"))?;
                let value = r.bytes(vlen).ok_or_else(|| bad("truncated value"))?;
                if key.first().is_none_or(|&p| p >= keys::OWNED_PREFIX_END) {
                    return Err(bad("entry key outside the engine's key space"));
                }
                if key.first() == Some(&BLOCK_PREFIX) {
                    return Err(bad("block records are not snapshot entries"));
                }
                if let Some((r, min_t)) = keys::parse_chunk_key(key) {
                    let rec = ChunkRecord::decode(value).map_err(|e| {
                        TsdbError::InvalidSnapshot(format!(
                            "chunk of series {r} starting at {min_t}ms: {e}"
                        ))
                    })?;
                    if rec.min_time != min_t {
                        return Err(TsdbError::InvalidSnapshot(format!(
                            "chunk of series {r} keyed at {min_t}ms starts at {}ms",
                            rec.min_time
                        )));
                    }
                    builder.push(r, min_t, rec.max_time, value.to_vec());
                    if builder.bytes() >= RESTORE_BLOCK_BYTES {
                        pack(std::mem::take(&mut builder), &mut batch)?;
                    }
                    continue;
                }
                batch.put(key.to_vec(), value.to_vec());
            }
            if !r.remaining().is_empty() {
                return Err(bad("trailing bytes in piece"));
            }
            store.write(batch)?;
        }
        if !saw_last {
            return Err(bad("stream ended before its last piece"));
        }
        if !builder.is_empty() {
            let mut batch = WriteBatch::new();
            pack(builder, &mut batch)?;
            store.write(batch)?;
        }
        store.flush()?;
        Tsdb::open(store, config)
    }
}
