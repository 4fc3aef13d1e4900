//! Key layout in the [`raftwatch_storage::KvStore`] and the small records
//! the engine owns. Specified in `docs/format/tsdb.md`.
//!
//! The engine owns key prefixes `0x00..=0x0F`; callers that store their own
//! keys in the same store (the Raft state machine) use `0x10` and above.

use std::collections::HashMap;

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

/// `SeriesLogEntry` is a change to the series records in a head-log
/// record: series `series` now has the [`SeriesRecord`] `record` (encoded),
/// or, when `record` is `None`, no longer exists (retention removed it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesLogEntry {
    /// The series.
    pub series: SeriesRef,
    /// The encoded [`SeriesRecord`], or `None` for a removal.
    pub record: Option<Vec<u8>>,
}

/// `HeadLogRecord` is one flush's head deltas and series changes (version
/// 2): `version u8 | uvarint n | n × (uvarint series, varint min_time,
/// uvarint num_samples, uvarint start_byte, uvarint len, bytes) | uvarint m
/// | m × (uvarint series, u8 kind, [uvarint len, series record if kind = 1])
/// | crc32c LE`, kind 1 a new or changed record, 0 a removal. Version 1 has
/// no series section (the series records were keys then).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeadLogRecord {
    /// The head entries, at most one per series.
    pub entries: Vec<HeadLogEntry>,
    /// The series changes, at most one per series.
    pub series: Vec<SeriesLogEntry>,
}

const HEAD_LOG_VERSION: u8 = 2;
const HEAD_LOG_VERSION_KEYED_SERIES: u8 = 1;

impl HeadLogRecord {
    /// `is_empty` says whether the record carries nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.series.is_empty()
    }

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
        put_uvarint(&mut b, self.series.len() as u64);
        for e in &self.series {
            put_uvarint(&mut b, e.series.0);
            match &e.record {
                Some(rec) => {
                    b.push(1);
                    put_uvarint(&mut b, rec.len() as u64);
                    b.extend_from_slice(rec);
                }
                None => b.push(0),
            }
        }
        seal(&mut b);
        b
    }

    /// `decode` parses and verifies a record from untrusted bytes, of
    /// either version.
    pub fn decode(bytes: &[u8]) -> Result<HeadLogRecord, String> {
        let body = unseal(bytes)?;
        let mut r = Reader::new(body);
        let version = r.u8();
        if version != Some(HEAD_LOG_VERSION) && version != Some(HEAD_LOG_VERSION_KEYED_SERIES) {
            return Err(format!("unsupported head-log version {version:?}"));
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
        let mut series = Vec::new();
        if version == Some(HEAD_LOG_VERSION) {
            let m = r.uvarint().ok_or("truncated series count")?;
            if m > body.len() as u64 {
                return Err("series count exceeds record".into());
            }
            series.reserve(m as usize);
            for _ in 0..m {
                let s = SeriesRef(r.uvarint().ok_or("truncated series ref")?);
                let record = match r.u8() {
                    Some(1) => {
                        let len = usize::try_from(r.uvarint().ok_or("truncated record length")?)
                            .map_err(|_| "record length too large")?;
                        Some(r.bytes(len).ok_or("truncated series record")?.to_vec())
                    }
                    Some(0) => None,
                    other => return Err(format!("series entry kind {other:?}")),
                };
                series.push(SeriesLogEntry { series: s, record });
            }
        }
        if !r.remaining().is_empty() {
            return Err("trailing bytes in head-log record".into());
        }
        Ok(HeadLogRecord { entries, series })
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

const CHECKPOINT_VERSION: u8 = 2;
const CHECKPOINT_VERSION_HEADS_ONLY: u8 = 1;

/// `Checkpoint` is the head checkpoint: every series record and every open
/// head (as an encoded chunk record), series ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every series the store holds, ascending.
    pub series: Vec<(SeriesRef, SeriesRecord)>,
    /// (series, chunk record) for every open head, ascending.
    pub heads: Vec<(SeriesRef, Vec<u8>)>,
}

fn put_entries(b: &mut Vec<u8>, entries: &[(SeriesRef, Vec<u8>)]) {
    put_uvarint(b, entries.len() as u64);
    for (r, rec) in entries {
        put_uvarint(b, r.0);
        put_uvarint(b, rec.len() as u64);
        b.extend_from_slice(rec);
    }
}

fn get_entries(r: &mut Reader<'_>, what: &str) -> Result<Vec<(SeriesRef, Vec<u8>)>, String> {
    let n = r
        .uvarint()
        .ok_or_else(|| format!("truncated {what} count"))?;
    let mut out = Vec::new();
    for i in 0..n {
        let series = r
            .uvarint()
            .ok_or_else(|| format!("{what} {i}: truncated series"))?;
        let len = r
            .uvarint()
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| format!("{what} {i}: truncated length"))?;
        let rec = r
            .bytes(len)
            .ok_or_else(|| format!("{what} {i}: truncated record"))?;
        out.push((SeriesRef(series), rec.to_vec()));
    }
    Ok(out)
}

/// `put_series` writes the series section: a symbol table of every label
/// name and value (each once, in order of first use), then per series its
/// ref and `min_time` as differences from the previous series' and its
/// labels as pairs of symbol numbers.
fn put_series(b: &mut Vec<u8>, series: &[(SeriesRef, SeriesRecord)]) {
    let mut numbers: HashMap<&str, u64> = HashMap::new();
    let mut symbols: Vec<&str> = Vec::new();
    let mut body = Vec::new();
    put_uvarint(&mut body, series.len() as u64);
    let (mut prev_ref, mut prev_min) = (0u64, 0i64);
    for (r, rec) in series {
        put_uvarint(&mut body, r.0.wrapping_sub(prev_ref));
        put_varint(&mut body, rec.min_time.wrapping_sub(prev_min));
        (prev_ref, prev_min) = (r.0, rec.min_time);
        put_uvarint(&mut body, rec.labels.len() as u64);
        for l in rec.labels.iter() {
            for s in [l.name.as_str(), l.value.as_str()] {
                let n = *numbers.entry(s).or_insert_with(|| {
                    symbols.push(s);
                    symbols.len() as u64 - 1
                });
                put_uvarint(&mut body, n);
            }
        }
    }
    put_uvarint(b, symbols.len() as u64);
    for s in symbols {
        put_uvarint(b, s.len() as u64);
        b.extend_from_slice(s.as_bytes());
    }
    b.extend_from_slice(&body);
}

/// `get_series` reads what [`put_series`] wrote, validating each label set
/// as [`Labels::decode`] does and that refs strictly ascend.
fn get_series(r: &mut Reader<'_>) -> Result<Vec<(SeriesRef, SeriesRecord)>, String> {
    let n = r.uvarint().ok_or("truncated symbol count")?;
    let mut symbols: Vec<&[u8]> = Vec::new();
    for i in 0..n {
        let len = r
            .uvarint()
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| format!("symbol {i}: truncated length"))?;
        symbols.push(
            r.bytes(len)
                .ok_or_else(|| format!("symbol {i}: truncated"))?,
        );
    }
    let m = r.uvarint().ok_or("truncated series count")?;
    let mut out = Vec::new();
    let (mut prev_ref, mut prev_min) = (0u64, 0i64);
    let mut buf = Vec::new();
    for i in 0..m {
        let bad = |what: &str| format!("series {i}: {what}");
        let delta = r.uvarint().ok_or_else(|| bad("truncated ref"))?;
        if i > 0 && delta == 0 {
            return Err(bad("refs not ascending"));
        }
        let series = prev_ref
            .checked_add(delta)
            .ok_or_else(|| bad("ref overflows"))?;
        let min_time = prev_min.wrapping_add(r.varint().ok_or_else(|| bad("truncated min_time"))?);
        (prev_ref, prev_min) = (series, min_time);
        let count = r.uvarint().ok_or_else(|| bad("truncated label count"))?;
        if count > r.remaining().len() as u64 {
            return Err(bad("label count exceeds the checkpoint"));
        }
        // The labels' own encoding, so that one decoder validates them.
        buf.clear();
        put_uvarint(&mut buf, count);
        for _ in 0..count * 2 {
            let k = r
                .uvarint()
                .and_then(|k| usize::try_from(k).ok())
                .ok_or_else(|| bad("truncated symbol number"))?;
            let sym = symbols
                .get(k)
                .ok_or_else(|| bad("symbol number out of range"))?;
            put_uvarint(&mut buf, sym.len() as u64);
            buf.extend_from_slice(sym);
        }
        let (labels, _) =
            Labels::decode(&buf, &LabelLimits::UNLIMITED).map_err(|e| bad(&e.to_string()))?;
        out.push((SeriesRef(series), SeriesRecord { min_time, labels }));
    }
    Ok(out)
}

/// `encode_checkpoint` is the head checkpoint blob (version 2): `version u8
/// | series section | uvarint n | n × (uvarint series, uvarint len, chunk
/// record) | crc32c LE`. The series section is `uvarint s | s × (uvarint
/// len, bytes) | uvarint m | m × (uvarint ref delta, varint min_time delta,
/// uvarint labels, labels × (uvarint name symbol, uvarint value symbol))`.
/// Version 1 had only the heads.
pub fn encode_checkpoint(c: &Checkpoint) -> Vec<u8> {
    let bytes: usize = c.heads.iter().map(|(_, r)| r.len() + 12).sum();
    let mut b = Vec::with_capacity(bytes + c.series.len() * 24 + 16);
    b.push(CHECKPOINT_VERSION);
    put_series(&mut b, &c.series);
    put_entries(&mut b, &c.heads);
    seal(&mut b);
    b
}

/// `decode_checkpoint` inverts [`encode_checkpoint`] (and reads version 1),
/// verifying the checksum; the records are returned undecoded.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<Checkpoint, String> {
    let body = unseal(bytes)?;
    let mut r = Reader::new(body);
    let series = match r.u8() {
        Some(CHECKPOINT_VERSION) => get_series(&mut r)?,
        Some(CHECKPOINT_VERSION_HEADS_ONLY) => Vec::new(),
        _ => return Err("unsupported checkpoint version".into()),
    };
    let heads = get_entries(&mut r, "head")?;
    if !r.remaining().is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(Checkpoint { series, heads })
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
            series: vec![
                SeriesLogEntry {
                    series: SeriesRef(4),
                    record: Some(vec![9, 8, 7]),
                },
                SeriesLogEntry {
                    series: SeriesRef(2),
                    record: None,
                },
            ],
        };
        let enc = log.encode();
        assert_eq!(HeadLogRecord::decode(&enc), Ok(log.clone()));
        for i in 0..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x10;
            assert!(HeadLogRecord::decode(&bad).is_err(), "flipped byte {i}");
        }
        // Version 1 (series records were keys): head entries only.
        let mut v1 = vec![1u8, 1, 1, 9, 2, 3, 2, 1, 2];
        seal(&mut v1);
        assert_eq!(
            HeadLogRecord::decode(&v1),
            Ok(HeadLogRecord {
                series: Vec::new(),
                ..log
            })
        );
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
        let record = |min_time: i64, pairs: &[(&str, &str)]| SeriesRecord {
            min_time,
            labels: Labels::from_pairs(pairs.iter().copied(), &LabelLimits::default()).unwrap(),
        };
        let c = Checkpoint {
            series: vec![
                (
                    SeriesRef(0),
                    record(i64::MIN, &[("__name__", "up"), ("job", "a")]),
                ),
                (
                    SeriesRef(1),
                    record(5, &[("__name__", "up"), ("job", "up")]),
                ),
                (SeriesRef(7), record(i64::MAX, &[("a", "ü"), ("job", "a")])),
            ],
            heads: heads.clone(),
        };
        let blob = encode_checkpoint(&c);
        assert_eq!(decode_checkpoint(&blob).unwrap(), c);
        let empty = Checkpoint::default();
        assert_eq!(
            decode_checkpoint(&encode_checkpoint(&empty)).unwrap(),
            empty
        );
        // Version 1: the heads alone.
        let mut v1 = vec![1u8];
        put_entries(&mut v1, &heads);
        seal(&mut v1);
        assert_eq!(
            decode_checkpoint(&v1).unwrap(),
            Checkpoint {
                series: Vec::new(),
                heads
            }
        );
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x04;
            assert!(decode_checkpoint(&bad).is_err(), "flipped byte {i}");
        }
        assert!(decode_checkpoint(&blob[..blob.len() - 1]).is_err());
    }
}
