//! Chunk blocks: sealed chunks packed into one store blob with a directory,
//! instead of one key per chunk. Specified in `docs/format/tsdb.md`.
//!
//! A key-value store stores every small value with large overhead (sled
//! writes each two to three times over); a blob is stored as its bytes. A
//! flush therefore writes its completed chunks as one block once there
//! are enough of them, and the only per-block key is a small
//! [`BlockRecord`]. The directory of every block is held in memory
//! ([`Block`]), about 32 bytes per chunk, so a read finds a series' chunks
//! without touching the store until it reads the chunk bytes themselves.

use raftwatch_chunk::{ChunkError, ChunkRecord};
use raftwatch_model::SeriesRef;
use raftwatch_model::encoding::{Reader, put_uvarint, put_varint};

/// `BLOCK_PREFIX` + block id (u64 BE) → a [`BlockRecord`].
pub const BLOCK_PREFIX: u8 = 0x06;
const BLOCK_RECORD_VERSION: u8 = 1;
const DIRECTORY_VERSION: u8 = 2;
/// Blocks written before 2026-12-03: absolute `min_time` varints in the
/// directory, and whole chunk records (not bare ones) in the chunk bytes.
const DIRECTORY_VERSION_ABSOLUTE_TIMES: u8 = 1;

/// `block_key` is the key of block `id`'s record.
pub fn block_key(id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = BLOCK_PREFIX;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// `BlockRecord` is what the key-value store holds per block: its time
/// bounds and where its directory starts in the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRecord {
    /// The smallest first-sample time of its chunks.
    pub min_time: i64,
    /// The largest last-sample time of its chunks.
    pub max_time: i64,
    /// How many chunks it holds.
    pub chunks: u64,
    /// Where the directory starts in the blob (the chunk bytes' length).
    pub dir_offset: u64,
    /// The directory's length, its checksum included (the blob ends there).
    pub dir_len: u64,
}

impl BlockRecord {
    /// `encode` is `version u8 | varint min_time | varint max_time |
    /// uvarint chunks | uvarint dir_offset | uvarint dir_len | crc32c LE`.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![BLOCK_RECORD_VERSION];
        put_varint(&mut b, self.min_time);
        put_varint(&mut b, self.max_time);
        put_uvarint(&mut b, self.chunks);
        put_uvarint(&mut b, self.dir_offset);
        put_uvarint(&mut b, self.dir_len);
        crate::keys::seal(&mut b);
        b
    }

    /// `decode` inverts [`BlockRecord::encode`], verifying the checksum.
    pub fn decode(b: &[u8]) -> Result<BlockRecord, String> {
        let body = crate::keys::unseal(b)?;
        let mut r = Reader::new(body);
        if r.u8() != Some(BLOCK_RECORD_VERSION) {
            return Err("unsupported block record version".into());
        }
        let field = |name: &str, v: Option<u64>| v.ok_or_else(|| format!("truncated {name}"));
        let min_time = r.varint().ok_or("truncated min_time")?;
        let max_time = r.varint().ok_or("truncated max_time")?;
        let chunks = field("chunk count", r.uvarint())?;
        let dir_offset = field("directory offset", r.uvarint())?;
        let dir_len = field("directory length", r.uvarint())?;
        if !r.remaining().is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(BlockRecord {
            min_time,
            max_time,
            chunks,
            dir_offset,
            dir_len,
        })
    }
}

/// `BLOB_POINTER_VERSION` starts a value that stands for a record kept in
/// a blob (a head-log record): distinct from every record version.
pub const BLOB_POINTER_VERSION: u8 = 0x80;

/// `encode_blob_pointer` is `0x80 | uvarint blob id | uvarint length |
/// crc32c LE`.
pub fn encode_blob_pointer(id: u64, len: usize) -> Vec<u8> {
    let mut b = vec![BLOB_POINTER_VERSION];
    put_uvarint(&mut b, id);
    put_uvarint(&mut b, len as u64);
    crate::keys::seal(&mut b);
    b
}

/// `decode_blob_pointer` returns the blob id and length of a value that
/// starts with [`BLOB_POINTER_VERSION`].
pub fn decode_blob_pointer(b: &[u8]) -> Result<(u64, usize), String> {
    let body = crate::keys::unseal(b)?;
    let mut r = Reader::new(body);
    if r.u8() != Some(BLOB_POINTER_VERSION) {
        return Err("not a blob pointer".into());
    }
    let id = r.uvarint().ok_or("truncated blob id")?;
    let len = r
        .uvarint()
        .and_then(|l| usize::try_from(l).ok())
        .ok_or("truncated blob length")?;
    if !r.remaining().is_empty() {
        return Err("trailing bytes".into());
    }
    Ok((id, len))
}

/// `BlockEntry` locates one chunk in a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockEntry {
    pub series: SeriesRef,
    pub min_time: i64,
    pub max_time: i64,
    pub offset: u32,
    pub len: u32,
}

/// `Block` is a block's directory as held in memory: entries sorted by
/// (series, min time).
#[derive(Clone, Debug)]
pub(crate) struct Block {
    pub id: u64,
    pub min_time: i64,
    pub max_time: i64,
    pub entries: Vec<BlockEntry>,
    /// Where the chunk bytes end (and the directory starts) in the blob.
    pub chunk_bytes: u64,
    /// The chunks are bare records (directory version 2), else whole ones.
    pub bare: bool,
    /// Where each series' entries start: `starts[r - first_ref]` for the
    /// refs from the block's first, one more at the end. Empty when the
    /// refs are too sparse for it to stay small (see
    /// [`SERIES_INDEX_SLOTS_PER_SERIES`]); lookups then search `entries`.
    starts: Vec<u32>,
    first_ref: u64,
}

/// `SERIES_INDEX_SLOTS_PER_SERIES` bounds a block's series index: at most
/// this many 4-byte slots per series it holds (plus a few), so that a
/// block of scattered refs does not pay for the gaps.
const SERIES_INDEX_SLOTS_PER_SERIES: u64 = 4;

impl Block {
    /// `new` is a block's directory, `entries` sorted by (series, min time).
    pub fn new(
        id: u64,
        min_time: i64,
        max_time: i64,
        entries: Vec<BlockEntry>,
        chunk_bytes: u64,
        bare: bool,
    ) -> Block {
        let (starts, first_ref) = series_index(&entries);
        Block {
            id,
            min_time,
            max_time,
            entries,
            chunk_bytes,
            bare,
            starts,
            first_ref,
        }
    }

    /// The entries of series `r` whose first sample is at or after `from`.
    pub fn entries_of(&self, r: SeriesRef, from: i64) -> impl Iterator<Item = &BlockEntry> {
        let of_series = if self.starts.is_empty() {
            let lo = self.entries.partition_point(|e| e.series < r);
            let n = self.entries[lo..].partition_point(|e| e.series == r);
            &self.entries[lo..lo + n]
        } else {
            // `r - first_ref` is in range exactly when it indexes a start
            // that has an end after it (a ref below the first wraps far
            // past the end).
            let i = r.0.wrapping_sub(self.first_ref);
            match usize::try_from(i)
                .ok()
                .and_then(|i| self.starts.get(i..)?.first_chunk::<2>())
            {
                Some(&[lo, hi]) => &self.entries[lo as usize..hi as usize],
                None => &[],
            }
        };
        let start = of_series.partition_point(|e| e.min_time < from);
        of_series[start..].iter()
    }

    /// `record` decodes entry `e`'s chunk from its bytes `bytes`.
    pub fn record<'a>(
        &self,
        e: &BlockEntry,
        bytes: &'a [u8],
    ) -> Result<ChunkRecord<'a>, ChunkError> {
        if self.bare {
            ChunkRecord::decode_bare(bytes, e.min_time, e.max_time)
        } else {
            ChunkRecord::decode(bytes)
        }
    }

    /// `full_record` is entry `e`'s chunk, from its bytes `bytes`, as a
    /// whole chunk record (what `0x03` keys and snapshots hold).
    pub fn full_record(&self, e: &BlockEntry, bytes: &[u8]) -> Result<Vec<u8>, ChunkError> {
        let rec = self.record(e, bytes)?;
        let mut out = Vec::with_capacity(bytes.len() + 16);
        rec.encode(&mut out);
        Ok(out)
    }

    /// Heap bytes of the directory.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<BlockEntry>()
            + self.starts.capacity() * std::mem::size_of::<u32>()
    }
}

/// `BlockBuilder` packs chunk records into a block blob.
#[derive(Debug, Default)]
pub(crate) struct BlockBuilder {
    /// (series, min time, max time, record, whether the record is bare).
    chunks: Vec<(SeriesRef, i64, i64, Vec<u8>, bool)>,
    bytes: usize,
}

/// `BLOCK_BYTES_MAX` bounds a block's chunk bytes, so that offsets fit in
/// `u32`; builders are cut well before it.
pub(crate) const BLOCK_BYTES_MAX: usize = u32::MAX as usize / 2;

impl BlockBuilder {
    /// Adds one chunk record with its series and time bounds.
    pub fn push(&mut self, r: SeriesRef, min_time: i64, max_time: i64, record: Vec<u8>) {
        self.bytes += record.len();
        self.chunks.push((r, min_time, max_time, record, false));
    }

    /// Adds one bare chunk record (as a version 2 block holds it) with its
    /// series and time bounds: it is copied into the block as it is.
    pub fn push_bare(&mut self, r: SeriesRef, min_time: i64, max_time: i64, bare: Vec<u8>) {
        self.bytes += bare.len();
        self.chunks.push((r, min_time, max_time, bare, true));
    }

    /// Chunk bytes added so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The whole records added with [`BlockBuilder::push`], unsorted:
    /// (series, min time, max time, record).
    pub fn into_chunks(self) -> Vec<(SeriesRef, i64, i64, Vec<u8>)> {
        self.chunks
            .into_iter()
            .filter(|c| !c.4)
            .map(|(r, min, max, rec, _)| (r, min, max, rec))
            .collect()
    }

    /// Builds block `id`: the blob, its record and its directory. Each
    /// chunk is stored bare (its time bounds and length are in the
    /// directory); fails if a pushed record does not decode.
    pub fn finish(mut self, id: u64) -> Result<(Vec<u8>, BlockRecord, Block), ChunkError> {
        self.chunks
            .sort_unstable_by_key(|&(r, min_time, ..)| (r, min_time));
        let mut blob = Vec::with_capacity(self.bytes + self.chunks.len() * 8 + 16);
        let mut entries = Vec::with_capacity(self.chunks.len());
        let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
        for (r, min, max, record, bare) in &self.chunks {
            let offset = blob.len();
            let rec = if *bare {
                // Verified, then copied as it is.
                let rec = ChunkRecord::decode_bare(record, *min, *max)?;
                blob.extend_from_slice(record);
                rec
            } else {
                let rec = ChunkRecord::decode(record)?;
                rec.encode_bare(&mut blob);
                rec
            };
            entries.push(BlockEntry {
                series: *r,
                min_time: rec.min_time,
                max_time: rec.max_time,
                offset: offset as u32,
                len: (blob.len() - offset) as u32,
            });
            min_time = min_time.min(rec.min_time);
            max_time = max_time.max(rec.max_time);
        }
        let dir_offset = blob.len() as u64;
        encode_directory(&entries, min_time, &mut blob);
        let rec = BlockRecord {
            min_time,
            max_time,
            chunks: entries.len() as u64,
            dir_offset,
            dir_len: blob.len() as u64 - dir_offset,
        };
        let block = Block::new(id, min_time, max_time, entries, dir_offset, true);
        Ok((blob, rec, block))
    }
}

/// `series_index` is [`Block::starts`] and the first ref for `entries`,
/// or nothing if that would take more than
/// [`SERIES_INDEX_SLOTS_PER_SERIES`] slots per series.
fn series_index(entries: &[BlockEntry]) -> (Vec<u32>, u64) {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return (Vec::new(), 0);
    };
    let (first_ref, span) = (first.series.0, last.series.0 - first.series.0 + 1);
    let distinct = 1 + entries
        .windows(2)
        .filter(|w| w[0].series != w[1].series)
        .count() as u64;
    if span > SERIES_INDEX_SLOTS_PER_SERIES * distinct + 64 || entries.len() > u32::MAX as usize {
        return (Vec::new(), 0);
    }
    let mut starts = Vec::with_capacity(span as usize + 1);
    for (i, e) in entries.iter().enumerate() {
        // Every ref up to this entry's starts here if it has not started.
        while (starts.len() as u64) <= e.series.0 - first_ref {
            starts.push(i as u32);
        }
    }
    starts.push(entries.len() as u32);
    (starts, first_ref)
}

/// Appends the directory (version 2): `version u8 | uvarint n | n ×
/// (uvarint series delta, uvarint min_time − block min_time, uvarint
/// max_time − min_time, uvarint len) | crc32c LE`. Offsets are implied:
/// chunks are stored back to back in entry order from offset 0. Version 1
/// wrote each `min_time` as an absolute varint.
fn encode_directory(entries: &[BlockEntry], block_min: i64, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(DIRECTORY_VERSION);
    put_uvarint(out, entries.len() as u64);
    let mut prev = 0u64;
    for e in entries {
        put_uvarint(out, e.series.0 - prev);
        prev = e.series.0;
        // Every entry starts at or after the block's minimum.
        put_uvarint(out, e.min_time.wrapping_sub(block_min) as u64);
        put_uvarint(out, e.max_time.wrapping_sub(e.min_time) as u64);
        put_uvarint(out, u64::from(e.len));
    }
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// `decode_directory` reads block `rec`'s directory bytes back into a
/// [`Block`], checking the checksum, the order of entries and that every
/// chunk lies inside the chunk bytes.
pub(crate) fn decode_directory(id: u64, rec: &BlockRecord, dir: &[u8]) -> Result<Block, String> {
    let body = crate::keys::unseal(dir)?;
    let mut r = Reader::new(body);
    let relative = match r.u8() {
        Some(DIRECTORY_VERSION) => true,
        Some(DIRECTORY_VERSION_ABSOLUTE_TIMES) => false,
        _ => return Err("unsupported directory version".into()),
    };
    let n = r.uvarint().ok_or("truncated entry count")?;
    if n != rec.chunks {
        return Err(format!(
            "directory holds {n} chunks, the block record says {}",
            rec.chunks
        ));
    }
    let mut entries = Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(body.len()));
    let (mut series, mut offset) = (0u64, 0u64);
    for i in 0..n {
        let bad = |what: &str| format!("entry {i}: {what}");
        series = series
            .checked_add(r.uvarint().ok_or_else(|| bad("truncated series"))?)
            .ok_or_else(|| bad("series overflows"))?;
        let min_time = if relative {
            let d = r.uvarint().ok_or_else(|| bad("truncated min_time"))?;
            i64::try_from(d)
                .ok()
                .and_then(|d| rec.min_time.checked_add(d))
                .ok_or_else(|| bad("min_time overflows"))?
        } else {
            r.varint().ok_or_else(|| bad("truncated min_time"))?
        };
        let span = r.uvarint().ok_or_else(|| bad("truncated span"))?;
        let max_time = i64::try_from(span)
            .ok()
            .and_then(|s| min_time.checked_add(s))
            .ok_or_else(|| bad("max_time overflows"))?;
        let len = r.uvarint().ok_or_else(|| bad("truncated length"))?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= rec.dir_offset)
            .ok_or_else(|| bad("chunk runs past the chunk bytes"))?;
        let e = BlockEntry {
            series: SeriesRef(series),
            min_time,
            max_time,
            offset: u32::try_from(offset).map_err(|_| bad("offset too large"))?,
            len: u32::try_from(len).map_err(|_| bad("length too large"))?,
        };
        if let Some(p) = entries.last().map(|p: &BlockEntry| (p.series, p.min_time))
            && p >= (e.series, e.min_time)
        {
            return Err(bad("entries out of order"));
        }
        if min_time < rec.min_time || max_time > rec.max_time {
            return Err(bad("chunk outside the block's time bounds"));
        }
        entries.push(e);
        offset = end;
    }
    if !r.remaining().is_empty() {
        return Err("trailing bytes in directory".into());
    }
    if offset != rec.dir_offset {
        return Err(format!(
            "chunks end at {offset}, the directory starts at {}",
            rec.dir_offset
        ));
    }
    Ok(Block::new(
        id,
        rec.min_time,
        rec.max_time,
        entries,
        rec.dir_offset,
        relative,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftwatch_chunk::XorChunk;

    /// A whole chunk record with samples at `min` and `max`.
    fn record(min: i64, max: i64, v: f64) -> Vec<u8> {
        let mut c = XorChunk::new();
        c.append(min, v);
        if max > min {
            c.append(max, v + 1.0);
        }
        let mut out = Vec::new();
        c.encode_record(&mut out);
        out
    }

    #[test]
    fn a_built_block_decodes_to_the_same_directory() {
        let mut b = BlockBuilder::default();
        b.push(SeriesRef(9), 100, 200, record(100, 200, 1.0));
        b.push(SeriesRef(2), -50, 10, record(-50, 10, 2.0));
        b.push(SeriesRef(9), 0, 99, record(0, 99, 3.0));
        let (blob, rec, block) = b.finish(4).unwrap();
        assert!(block.bare);
        assert_eq!((rec.min_time, rec.max_time, rec.chunks), (-50, 200, 3));
        let back = BlockRecord::decode(&rec.encode()).unwrap();
        assert_eq!(back, rec);
        let dir = &blob[rec.dir_offset as usize..];
        let decoded = decode_directory(4, &rec, dir).unwrap();
        assert_eq!(decoded.entries, block.entries);
        assert!(decoded.bare);
        let of9: Vec<_> = block
            .entries_of(SeriesRef(9), 1)
            .map(|e| e.min_time)
            .collect();
        assert_eq!(of9, vec![100]);
        // Each chunk is stored bare and reads back as the record pushed.
        let e = block.entries_of(SeriesRef(2), i64::MIN).next().unwrap();
        let bytes = &blob[e.offset as usize..][..e.len as usize];
        assert!(bytes.len() < record(-50, 10, 2.0).len());
        assert_eq!(block.full_record(e, bytes).unwrap(), record(-50, 10, 2.0));
        for i in 0..dir.len() {
            let mut bad = dir.to_vec();
            bad[i] ^= 0x20;
            assert!(decode_directory(4, &rec, &bad).is_err(), "flipped byte {i}");
        }
        let mut wrong = rec;
        wrong.dir_offset -= 1;
        assert!(decode_directory(4, &wrong, dir).is_err());
        // A pushed record that does not decode fails the build.
        let mut b = BlockBuilder::default();
        b.push(SeriesRef(1), 0, 0, vec![1; 7]);
        assert!(b.finish(5).is_err());
    }

    #[test]
    fn a_version_1_block_with_whole_records_and_absolute_times_still_reads() {
        let chunks = [
            (SeriesRef(2), -50, 10, record(-50, 10, 2.0)),
            (SeriesRef(9), 100, 200, record(100, 200, 1.0)),
        ];
        let mut blob = Vec::new();
        let mut v1 = vec![DIRECTORY_VERSION_ABSOLUTE_TIMES, 2];
        let mut prev = 0;
        for (r, mint, maxt, rec) in &chunks {
            put_uvarint(&mut v1, r.0 - prev);
            prev = r.0;
            put_varint(&mut v1, *mint);
            put_uvarint(&mut v1, (maxt - mint) as u64);
            put_uvarint(&mut v1, rec.len() as u64);
            blob.extend_from_slice(rec);
        }
        crate::keys::seal(&mut v1);
        let rec1 = BlockRecord {
            min_time: -50,
            max_time: 200,
            chunks: 2,
            dir_offset: blob.len() as u64,
            dir_len: v1.len() as u64,
        };
        let block = decode_directory(1, &rec1, &v1).unwrap();
        assert!(!block.bare);
        for (e, (r, mint, maxt, rec)) in block.entries.iter().zip(&chunks) {
            assert_eq!((e.series, e.min_time, e.max_time), (*r, *mint, *maxt));
            let bytes = &blob[e.offset as usize..][..e.len as usize];
            assert_eq!(&block.full_record(e, bytes).unwrap(), rec);
        }
    }

    proptest::proptest! {
        /// Lookups through the series index (dense refs) and through the
        /// search that replaces it (sparse refs) find exactly the entries a
        /// scan finds, for refs inside, between and outside the block's.
        #[test]
        fn entries_of_finds_what_a_scan_finds(
            gaps in proptest::collection::vec((0u64..8, 1usize..4), 0..40),
            sparse in proptest::bool::ANY,
            probes in proptest::collection::vec((0u64..400, -5i64..40), 1..20),
        ) {
            let mut entries = Vec::new();
            let mut r = 3u64;
            for (gap, n) in gaps {
                r += if sparse { gap * 1_000 } else { gap };
                for k in 0..n {
                    let min_time = 10 * k as i64;
                    entries.push(BlockEntry {
                        series: SeriesRef(r),
                        min_time,
                        max_time: min_time + 5,
                        offset: entries.len() as u32,
                        len: 1,
                    });
                }
                r += 1;
            }
            let block = Block::new(1, 0, 100, entries.clone(), entries.len() as u64, true);
            if !sparse {
                proptest::prop_assert!(block.starts.is_empty() == entries.is_empty());
            }
            let refs: Vec<u64> = entries.iter().map(|e| e.series.0).collect();
            for (p, from) in probes {
                // Probe near real refs as well as anywhere.
                let probe = refs.get(p as usize % refs.len().max(1)).map_or(p, |&x| x + p % 3) ;
                for q in [p, probe] {
                    let got: Vec<BlockEntry> = block.entries_of(SeriesRef(q), from).copied().collect();
                    let want: Vec<BlockEntry> = entries
                        .iter()
                        .filter(|e| e.series.0 == q && e.min_time >= from)
                        .copied()
                        .collect();
                    proptest::prop_assert_eq!(got, want);
                }
            }
        }
    }
}
