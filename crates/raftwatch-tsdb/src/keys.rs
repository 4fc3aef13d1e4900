//! Key layout in the [`raftwatch_storage::KvStore`] and the small records
//! the engine owns. Specified in `docs/format/tsdb.md`.
//!
//! The engine owns key prefixes `0x00..=0x0F`; callers that store their own
//! keys in the same store (the Raft state machine) use `0x10` and above.

use raftwatch_model::encoding::{Reader, put_uvarint, put_varint};
use raftwatch_model::{LabelLimits, Labels, SeriesRef};

/// `META_KEY` holds the engine's [`Meta`].
pub const META_KEY: &[u8] = &[0x01];
/// `SERIES_PREFIX` + series ref (u64 BE) → [`SeriesRecord`].
pub const SERIES_PREFIX: u8 = 0x02;
/// `CHUNK_PREFIX` + series ref (u64 BE) + min time (order-preserving i64)
/// → a chunk record (`docs/format/chunk.md`).
pub const CHUNK_PREFIX: u8 = 0x03;
/// `HEAD_PREFIX` + series ref (u64 BE) → the open head chunk as of the last
/// write-out, as a chunk record.
pub const HEAD_PREFIX: u8 = 0x04;
/// `HEAD_LOG_PREFIX` + flush sequence (u64 BE) → a [`HeadLogRecord`]: what
/// each open head gained in one flush since the last head checkpoint.
pub const HEAD_LOG_PREFIX: u8 = 0x05;
/// `CHECKPOINT_KEY` holds a blob pointer to the head checkpoint, every
/// open head in one blob ([`encode_checkpoint`]).
pub const CHECKPOINT_KEY: &[u8] = &[0x07];
/// `OWNED_PREFIX_END` is the first prefix the engine does not own.
pub const OWNED_PREFIX_END: u8 = 0x10;

/// `META_VERSION` is the version of the key layout and engine records.
pub const META_VERSION: u8 = 1;
const SERIES_RECORD_VERSION: u8 = 1;

/// `time_key` maps an i64 to 8 bytes whose byte order is the numeric order.
pub fn time_key(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// `time_from_key` inverts [`time_key`].
pub fn time_from_key(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

/// `series_key` is the key of a series record.
pub fn series_key(r: SeriesRef) -> [u8; 9] {
    prefixed(SERIES_PREFIX, r)
}

/// `head_key` is the key of a series' head chunk.
pub fn head_key(r: SeriesRef) -> [u8; 9] {
    prefixed(HEAD_PREFIX, r)
}

/// `chunk_prefix` is the prefix of all chunk keys of a series.
pub fn chunk_prefix(r: SeriesRef) -> [u8; 9] {
    prefixed(CHUNK_PREFIX, r)
}

/// `chunk_key` is the key of the chunk of series `r` whose first sample is
/// at `min_time`.
pub fn chunk_key(r: SeriesRef, min_time: i64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..9].copy_from_slice(&chunk_prefix(r));
    k[9..].copy_from_slice(&time_key(min_time));
    k
}

fn prefixed(prefix: u8, r: SeriesRef) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&r.0.to_be_bytes());
    k
}

/// `head_log_key` is the key of the head-log record of flush `seq`.
pub fn head_log_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = HEAD_LOG_PREFIX;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// `parse_series_ref` reads the series ref of a 9-byte series/head key or
/// the first 9 bytes of a chunk key.
pub fn parse_series_ref(key: &[u8]) -> Option<SeriesRef> {
    let b: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some(SeriesRef(u64::from_be_bytes(b)))
}

/// `parse_chunk_key` splits a chunk key into series ref and min time.
pub fn parse_chunk_key(key: &[u8]) -> Option<(SeriesRef, i64)> {
    if key.len() != 17 || key[0] != CHUNK_PREFIX {
        return None;
    }
    let t: [u8; 8] = key[9..17].try_into().ok()?;
    Some((parse_series_ref(key)?, time_from_key(t)))
}

/// `Meta` is the engine-wide record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The next series ref to hand out.
    pub next_series_ref: u64,
    /// The largest `chunk_span_ms_max` this store was ever written with; range
    /// scans must look back this far.
    pub chunk_span_ms_max: i64,
    /// Samples before this time are hidden and refused (`i64::MIN`: none).
    pub retention_cutoff: i64,
    /// The sequence number the next head-log record gets.
    pub next_log_seq: u64,
}

impl Meta {
    /// `encode` is `version u8 | uvarint next_ref | varint span | varint
    /// retention_cutoff | uvarint next_log_seq | crc32c LE`.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![META_VERSION];
        put_uvarint(&mut b, self.next_series_ref);
        put_varint(&mut b, self.chunk_span_ms_max);
        put_varint(&mut b, self.retention_cutoff);
        put_uvarint(&mut b, self.next_log_seq);
        seal(&mut b);
        b
    }

    /// `decode` parses and verifies a meta record.
    pub fn decode(bytes: &[u8]) -> Result<Meta, String> {
        let body = unseal(bytes)?;
        let mut r = Reader::new(body);
        match r.u8() {
            Some(META_VERSION) => {}
            other => return Err(format!("unsupported meta version {other:?}")),
        }
        let next_series_ref = r.uvarint().ok_or("truncated next_series_ref")?;
        let chunk_span_ms_max = r.varint().ok_or("truncated chunk_span_ms_max")?;
        let retention_cutoff = r.varint().ok_or("truncated retention_cutoff")?;
        let next_log_seq = r.uvarint().ok_or("truncated next_log_seq")?;
        if !r.remaining().is_empty() || chunk_span_ms_max <= 0 {
            return Err("malformed meta record".into());
        }
        Ok(Meta {
            next_series_ref,
            chunk_span_ms_max,
            retention_cutoff,
            next_log_seq,
        })
    }
}

/// `SeriesRecord` is the persisted identity of a series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesRecord {
    /// The earliest sample time the series has (or had, before retention
    /// moved it), used to restrict label queries by time.
    pub min_time: i64,
    /// The series' labels.
    pub labels: Labels,
}

impl SeriesRecord {
    /// `encode` is `version u8 | varint min_time | labels | crc32c LE`.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![SERIES_RECORD_VERSION];
        put_varint(&mut b, self.min_time);
        self.labels.encode(&mut b);
        seal(&mut b);
        b
    }

    /// `decode` parses and verifies a series record.
    pub fn decode(bytes: &[u8]) -> Result<SeriesRecord, String> {
        let body = unseal(bytes)?;
        let mut r = Reader::new(body);
        match r.u8() {
            Some(SERIES_RECORD_VERSION) => {}
            other => return Err(format!("unsupported series record version {other:?}")),
        }
        let min_time = r.varint().ok_or("truncated min_time")?;
        let (labels, n) =
            Labels::decode(r.remaining(), &LabelLimits::UNLIMITED).map_err(|e| e.to_string())?;
        if n != r.remaining().len() {
            return Err("trailing bytes after labels".into());
        }
        Ok(SeriesRecord { min_time, labels })
    }
}

/// `HeadLogEntry` says: series `series`'s open head chunk starts at
/// `min_time` and now holds `num_samples` samples; its payload is the
/// payload known so far truncated to `start_byte`, followed by `bytes`.
/// `num_samples == 0` means the series has no open head any more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadLogEntry {
    /// The series.
    pub series: SeriesRef,
    /// The head chunk's first timestamp.
    pub min_time: i64,
    /// Samples in the head chunk after this entry.
    pub num_samples: u64,
    /// Where `bytes` start in the payload. 0 when the head is new.
    pub start_byte: u64,
    /// The payload from `start_byte` on.
    pub bytes: Vec<u8>,
}

/// `HeadLogRecord` is one flush's head deltas:
/// `version u8 | uvarint n | n × (uvarint series, varint min_time, uvarint
/// num_samples, uvarint start_byte, uvarint len, bytes) | crc32c LE`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeadLogRecord {
    /// The entries, at most one per series.
    pub entries: Vec<HeadLogEntry>,
}

const HEAD_LOG_VERSION: u8 = 1;

impl HeadLogRecord {
    /// `encode` serialises the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![HEAD_LOG_VERSION];
        put_uvarint(&mut b, self.entries.len() as u64);
        for e in &self.entries {
            put_uvarint(&mut b, e.series.0);
            put_varint(&mut b, e.min_time);
            put_uvarint(&mut b, e.num_samples);
            put_uvarint(&mut b, e.start_byte);
            put_uvarint(&mut b, e.bytes.len() as u64);
            b.extend_from_slice(&e.bytes);
        }
        seal(&mut b);
        b
    }

    /// `decode` parses and verifies a record from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<HeadLogRecord, String> {
        let body = unseal(bytes)?;
        let mut r = Reader::new(body);
        match r.u8() {
            Some(HEAD_LOG_VERSION) => {}
            other => return Err(format!("unsupported head-log version {other:?}")),
        }
        let n = r.uvarint().ok_or("truncated entry count")?;
        if n > body.len() as u64 {
            return Err("entry count exceeds record".into());
        }
        let mut entries = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let series = SeriesRef(r.uvarint().ok_or("truncated series")?);
            let min_time = r.varint().ok_or("truncated min_time")?;
            let num_samples = r.uvarint().ok_or("truncated num_samples")?;
            let start_byte = r.uvarint().ok_or("truncated start_byte")?;
            let len = usize::try_from(r.uvarint().ok_or("truncated length")?)
                .map_err(|_| "length too large")?;
            let bytes = r.bytes(len).ok_or("truncated payload bytes")?.to_vec();
            entries.push(HeadLogEntry {
                series,
                min_time,
                num_samples,
                start_byte,
                bytes,
            });
        }
        if !r.remaining().is_empty() {
            return Err("trailing bytes in head-log record".into());
        }
        Ok(HeadLogRecord { entries })
    }
}

/// `seal` appends the CRC32C of everything in `b`.
pub(crate) fn seal(b: &mut Vec<u8>) {
    let crc = crc32c::crc32c(b);
    b.extend_from_slice(&crc.to_le_bytes());
}

/// `unseal` verifies and strips the trailing CRC32C.
pub(crate) fn unseal(bytes: &[u8]) -> Result<&[u8], String> {
    let split = bytes
        .len()
        .checked_sub(4)
        .ok_or("record shorter than its checksum")?;
    let (body, tail) = bytes.split_at(split);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let actual = crc32c::crc32c(body);
    if stored != actual {
        return Err(format!(
            "checksum mismatch: stored {stored:08x}, computed {actual:08x}"
        ));
    }
    Ok(body)
}

const CHECKPOINT_VERSION: u8 = 1;

/// `encode_checkpoint` is the head checkpoint blob: `version u8 | uvarint n
/// | n × (uvarint series, uvarint len, chunk record) | crc32c LE`, series
/// ascending.
pub fn encode_checkpoint(heads: &[(SeriesRef, Vec<u8>)]) -> Vec<u8> {
    let bytes: usize = heads.iter().map(|(_, r)| r.len() + 12).sum();
    let mut b = Vec::with_capacity(bytes + 16);
    b.push(CHECKPOINT_VERSION);
    put_uvarint(&mut b, heads.len() as u64);
    for (r, rec) in heads {
        put_uvarint(&mut b, r.0);
        put_uvarint(&mut b, rec.len() as u64);
        b.extend_from_slice(rec);
    }
    seal(&mut b);
    b
}

/// `decode_checkpoint` inverts [`encode_checkpoint`], verifying the
/// checksum; the chunk records are returned undecoded.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<Vec<(SeriesRef, Vec<u8>)>, String> {
    let body = unseal(bytes)?;
    let mut r = Reader::new(body);
    if r.u8() != Some(CHECKPOINT_VERSION) {
        return Err("unsupported checkpoint version".into());
    }
    let n = r.uvarint().ok_or("truncated head count")?;
    let mut heads = Vec::new();
    for i in 0..n {
        let series = r
            .uvarint()
            .ok_or_else(|| format!("head {i}: truncated series"))?;
        let len = r
            .uvarint()
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| format!("head {i}: truncated length"))?;
        let rec = r
            .bytes(len)
            .ok_or_else(|| format!("head {i}: truncated record"))?;
        heads.push((SeriesRef(series), rec.to_vec()));
    }
    if !r.remaining().is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(heads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_numerically() {
        let ts = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in ts.windows(2) {
            assert!(time_key(w[0]) < time_key(w[1]));
        }
        for t in ts {
            assert_eq!(time_from_key(time_key(t)), t);
        }
    }

    #[test]
    fn records_round_trip_and_detect_damage() {
        let m = Meta {
            next_series_ref: 42,
            chunk_span_ms_max: 7_200_000,
            retention_cutoff: -1,
            next_log_seq: 3,
        };
        let log = HeadLogRecord {
            entries: vec![HeadLogEntry {
                series: SeriesRef(1),
                min_time: -5,
                num_samples: 2,
                start_byte: 3,
                bytes: vec![1, 2],
            }],
        };
        assert_eq!(HeadLogRecord::decode(&log.encode()), Ok(log));
        assert_eq!(Meta::decode(&m.encode()), Ok(m));
        let labels = Labels::from_pairs([("a", "b")], &LabelLimits::default()).unwrap();
        let s = SeriesRecord {
            min_time: -3,
            labels,
        };
        let mut enc = s.encode();
        assert_eq!(SeriesRecord::decode(&enc), Ok(s));
        enc[2] ^= 1;
        assert!(SeriesRecord::decode(&enc).unwrap_err().contains("checksum"));
        assert!(SeriesRecord::decode(&[]).is_err());
    }

    #[test]
    fn chunk_keys_parse() {
        let k = chunk_key(SeriesRef(9), -100);
        assert_eq!(parse_chunk_key(&k), Some((SeriesRef(9), -100)));
        assert_eq!(parse_chunk_key(&series_key(SeriesRef(9))), None);
    }

    #[test]
    fn checkpoint_round_trips_and_refuses_any_damaged_byte() {
        let heads = vec![(SeriesRef(1), vec![7u8; 20]), (SeriesRef(300), Vec::new())];
        let blob = encode_checkpoint(&heads);
        assert_eq!(decode_checkpoint(&blob).unwrap(), heads);
        assert_eq!(decode_checkpoint(&encode_checkpoint(&[])).unwrap(), vec![]);
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x04;
            assert!(decode_checkpoint(&bad).is_err(), "flipped byte {i}");
        }
        assert!(decode_checkpoint(&blob[..blob.len() - 1]).is_err());
    }
}
