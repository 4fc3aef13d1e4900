//! The on-disk format: segment names, the segment header and record
//! frames. `docs/format/wal.md` is the specification; this must agree.
//!
//! Every decoder here takes untrusted bytes and returns an error instead of
//! panicking: nothing read from disk is unwrapped or indexed unchecked.

use crate::types::{GroupId, LogId, LogIndex, NodeId, Record, Term, Vote};

/// The segment magic, `"RWAL"`.
pub(crate) const MAGIC: [u8; 4] = *b"RWAL";
/// The only format version this code writes and reads. Version 2 added the
/// leader node id to `Purge` and `Commit` bodies; version 1 was never
/// deployed, so it is refused rather than migrated.
pub(crate) const VERSION: u8 = 2;
/// Segment header: magic (4) | version (1) | reserved (3) | first_seq (8) | crc32c (4).
pub(crate) const HEADER_BYTES: u64 = 20;
/// Record frame header: len (4) | crc32c (4) | type (1).
pub(crate) const FRAME_HEADER_BYTES: u64 = 9;
/// The smallest valid record body (a `Truncate`: group + index).
pub(crate) const BODY_BYTES_MIN: u64 = 16;

const TYPE_ENTRIES: u8 = 1;
const TYPE_VOTE: u8 = 2;
const TYPE_TRUNCATE: u8 = 3;
const TYPE_PURGE: u8 = 4;
const TYPE_COMMIT: u8 = 5;

/// Per-entry overhead inside an `Entries` body: term (8) | len (4).
const ENTRY_HEADER_BYTES: usize = 12;
/// Fixed part of an `Entries` body: group (8) | first_index (8) | count (4).
const ENTRIES_FIXED_BYTES: usize = 20;

/// `segment_name` is the file name of the segment whose first record has
/// sequence number `first_seq`.
pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("wal-{first_seq:016x}.log")
}

/// `parse_segment_name` is the inverse of [`segment_name`]; other names
/// (temporary files, foreign files) yield `None` and are ignored.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if hex.len() != 16
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// `encode_header` is the 20-byte header of a segment starting at `first_seq`.
pub(crate) fn encode_header(first_seq: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_BYTES as usize);
    h.extend_from_slice(&MAGIC);
    h.push(VERSION);
    h.extend_from_slice(&[0, 0, 0]);
    h.extend_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// `decode_header` checks a segment header and returns its `first_seq`.
/// The version is checked before the checksum, as it decides the layout.
pub(crate) fn decode_header(bytes: &[u8]) -> Result<u64, String> {
    let mut r = Reader::new(bytes);
    let magic = r.bytes(4)?;
    if magic != MAGIC {
        return Err(format!("bad magic {magic:02x?}, want {MAGIC:02x?}"));
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(format!("unsupported version {version}, want {VERSION}"));
    }
    let reserved = r.bytes(3)?;
    let first_seq = r.u64()?;
    let stored = r.u32()?;
    let covered = bytes.get(..16).ok_or("header too short")?;
    let actual = crc32c::crc32c(covered);
    if stored != actual {
        return Err(format!(
            "header checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
        ));
    }
    if reserved != [0, 0, 0] {
        return Err("reserved header bytes are not zero".to_string());
    }
    Ok(first_seq)
}

/// `EntryMeta` locates one entry's payload inside its record frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryMeta {
    pub(crate) term: Term,
    /// Offset of the payload from the start of the frame.
    pub(crate) payload_off: u32,
    pub(crate) payload_len: u32,
}

/// `Parsed` is a record as the index needs it: everything except payload
/// bytes, which stay on disk and are located by [`EntryMeta`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    Entries {
        group: GroupId,
        first: LogIndex,
        metas: Vec<EntryMeta>,
    },
    Vote {
        group: GroupId,
        vote: Vote,
    },
    Truncate {
        group: GroupId,
        from_index: LogIndex,
    },
    Purge {
        group: GroupId,
        up_to: LogId,
    },
    Commit {
        group: GroupId,
        committed: LogId,
    },
}

impl Parsed {
    pub(crate) fn group(&self) -> GroupId {
        match self {
            Parsed::Entries { group, .. }
            | Parsed::Vote { group, .. }
            | Parsed::Truncate { group, .. }
            | Parsed::Purge { group, .. }
            | Parsed::Commit { group, .. } => *group,
        }
    }
}

/// `check_shape` rejects records that cannot be encoded or replayed on
/// their own: empty or non-consecutive entries, oversized payloads.
pub(crate) fn check_shape(rec: &Record) -> Result<(), String> {
    if let Record::Entries { entries, .. } = rec {
        let Some(first) = entries.first() else {
            return Err("an Entries record needs at least one entry".to_string());
        };
        if u32::try_from(entries.len()).is_err() {
            return Err("too many entries in one record".to_string());
        }
        for (i, e) in entries.iter().enumerate() {
            let want = u64::try_from(i)
                .ok()
                .and_then(|i| first.index.0.checked_add(i));
            if want != Some(e.index.0) {
                return Err(format!(
                    "entry indices must be consecutive: entry {i} has index {}, want {}",
                    e.index.0,
                    first.index.0.saturating_add(i as u64)
                ));
            }
            if u32::try_from(e.payload.len()).is_err() {
                return Err(format!("entry {} payload exceeds 4 GiB", e.index.0));
            }
        }
    }
    Ok(())
}

/// `encode_record` appends one framed record to `out` and returns its
/// parsed form (payload offsets relative to the frame's start). The record
/// must have passed [`check_shape`]; the caller checks the body length
/// against the configured limit (a body over 4 GiB is clamped in the length
/// field, so the limit check must reject it).
pub(crate) fn encode_record(rec: &Record, out: &mut Vec<u8>) -> Parsed {
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]);
    let parsed = match rec {
        Record::Entries { group, entries } => {
            out.push(TYPE_ENTRIES);
            out.extend_from_slice(&group.0.to_le_bytes());
            let first = entries.first().map_or(LogIndex(0), |e| e.index);
            out.extend_from_slice(&first.0.to_le_bytes());
            let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_le_bytes());
            let mut metas = Vec::with_capacity(entries.len());
            for e in entries {
                out.extend_from_slice(&e.term.0.to_le_bytes());
                let len = u32::try_from(e.payload.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                let payload_off = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
                out.extend_from_slice(&e.payload);
                metas.push(EntryMeta {
                    term: e.term,
                    payload_off,
                    payload_len: len,
                });
            }
            Parsed::Entries {
                group: *group,
                first,
                metas,
            }
        }
        Record::Vote { group, vote } => {
            out.push(TYPE_VOTE);
            out.extend_from_slice(&group.0.to_le_bytes());
            out.extend_from_slice(&vote.term.0.to_le_bytes());
            out.extend_from_slice(&vote.node_id.0.to_le_bytes());
            out.push(u8::from(vote.committed));
            Parsed::Vote {
                group: *group,
                vote: *vote,
            }
        }
        Record::Truncate { group, from_index } => {
            out.push(TYPE_TRUNCATE);
            out.extend_from_slice(&group.0.to_le_bytes());
            out.extend_from_slice(&from_index.0.to_le_bytes());
            Parsed::Truncate {
                group: *group,
                from_index: *from_index,
            }
        }
        Record::Purge { group, up_to } => {
            out.push(TYPE_PURGE);
            out.extend_from_slice(&group.0.to_le_bytes());
            out.extend_from_slice(&up_to.index.0.to_le_bytes());
            out.extend_from_slice(&up_to.term.0.to_le_bytes());
            out.extend_from_slice(&up_to.leader.0.to_le_bytes());
            Parsed::Purge {
                group: *group,
                up_to: *up_to,
            }
        }
        Record::Commit { group, committed } => {
            out.push(TYPE_COMMIT);
            out.extend_from_slice(&group.0.to_le_bytes());
            out.extend_from_slice(&committed.index.0.to_le_bytes());
            out.extend_from_slice(&committed.term.0.to_le_bytes());
            out.extend_from_slice(&committed.leader.0.to_le_bytes());
            Parsed::Commit {
                group: *group,
                committed: *committed,
            }
        }
    };
    let body_len = out.len() - start - FRAME_HEADER_BYTES as usize;
    let len = u32::try_from(body_len).unwrap_or(u32::MAX);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    parsed
}

/// `FrameError` says why no record could be read at some offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The frame is incomplete, its length is implausible or its checksum
    /// fails: what a torn write leaves behind (at the tail) or bit rot.
    Damaged(String),
    /// The checksum matches but the body breaks the format: never a torn
    /// write, always corruption (or a bug).
    Malformed(String),
}

/// `read_frame` reads the record frame at the start of `buf` and returns
/// its total length (header + body) and parsed form.
pub(crate) fn read_frame(buf: &[u8], body_bytes_max: u64) -> Result<(u64, Parsed), FrameError> {
    let mut r = Reader::new(buf);
    let (Ok(len), Ok(stored), Ok(ty)) = (r.u32(), r.u32(), r.u8()) else {
        return Err(FrameError::Damaged(format!(
            "incomplete record header ({} of {FRAME_HEADER_BYTES} bytes)",
            buf.len()
        )));
    };
    let len = u64::from(len);
    if len > body_bytes_max {
        return Err(FrameError::Damaged(format!(
            "record length {len} exceeds the limit {body_bytes_max}"
        )));
    }
    let frame_len = FRAME_HEADER_BYTES + len;
    let Some(covered) = usize::try_from(frame_len)
        .ok()
        .and_then(|end| buf.get(8..end))
    else {
        return Err(FrameError::Damaged(format!(
            "incomplete record: length {len} but only {} body bytes present",
            (buf.len() as u64).saturating_sub(FRAME_HEADER_BYTES)
        )));
    };
    let actual = crc32c::crc32c(covered);
    if actual != stored {
        return Err(FrameError::Damaged(format!(
            "record checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
        )));
    }
    let body = covered.get(1..).unwrap_or(&[]);
    decode_body(ty, body)
        .map(|p| (frame_len, p))
        .map_err(FrameError::Malformed)
}

fn decode_body(ty: u8, body: &[u8]) -> Result<Parsed, String> {
    let mut r = Reader::new(body);
    let group = GroupId(r.u64()?);
    let parsed = match ty {
        TYPE_ENTRIES => {
            let first = LogIndex(r.u64()?);
            let count = r.u32()?;
            // Each entry takes at least ENTRY_HEADER_BYTES, which bounds the
            // allocation by the (checksummed, length-limited) body size.
            let count_max = (body.len() - ENTRIES_FIXED_BYTES.min(body.len())) / ENTRY_HEADER_BYTES;
            if count == 0 || count as usize > count_max {
                return Err(format!("entry count {count} impossible in this body"));
            }
            if first.0.checked_add(u64::from(count) - 1).is_none() {
                return Err("entry indices overflow".to_string());
            }
            let mut metas = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let term = Term(r.u64()?);
                let payload_len = r.u32()?;
                // Offsets are from the frame start: the 9-byte frame header
                // precedes the body.
                let off = FRAME_HEADER_BYTES as usize + r.pos;
                let payload_off =
                    u32::try_from(off).map_err(|_| "payload offset overflow".to_string())?;
                r.bytes(payload_len as usize)?;
                metas.push(EntryMeta {
                    term,
                    payload_off,
                    payload_len,
                });
            }
            Parsed::Entries {
                group,
                first,
                metas,
            }
        }
        TYPE_VOTE => {
            let term = Term(r.u64()?);
            let node_id = NodeId(r.u64()?);
            let committed = match r.u8()? {
                0 => false,
                1 => true,
                b => return Err(format!("vote committed flag {b} is neither 0 nor 1")),
            };
            Parsed::Vote {
                group,
                vote: Vote {
                    term,
                    node_id,
                    committed,
                },
            }
        }
        TYPE_TRUNCATE => Parsed::Truncate {
            group,
            from_index: LogIndex(r.u64()?),
        },
        TYPE_PURGE => {
            let index = LogIndex(r.u64()?);
            let term = Term(r.u64()?);
            let leader = NodeId(r.u64()?);
            Parsed::Purge {
                group,
                up_to: LogId {
                    term,
                    leader,
                    index,
                },
            }
        }
        TYPE_COMMIT => {
            let index = LogIndex(r.u64()?);
            let term = Term(r.u64()?);
            let leader = NodeId(r.u64()?);
            Parsed::Commit {
                group,
                committed: LogId {
                    term,
                    leader,
                    index,
                },
            }
        }
        other => return Err(format!("unknown record type {other}")),
    };
    if r.pos != body.len() {
        return Err(format!(
            "{} trailing bytes after the record body",
            body.len() - r.pos
        ));
    }
    Ok(parsed)
}

/// `payload` is the payload of one entry of a verified `Entries` frame, or
/// `None` if the meta does not fit the frame.
pub(crate) fn payload<'a>(frame: &'a [u8], meta: &EntryMeta) -> Option<&'a [u8]> {
    let start = meta.payload_off as usize;
    frame.get(start..start.checked_add(meta.payload_len as usize)?)
}

/// `verify_frame` checks the length and checksum of the frame filling
/// exactly `frame` (a read-back check; the body is not decoded).
pub(crate) fn verify_frame(frame: &[u8]) -> Result<(), String> {
    let mut r = Reader::new(frame);
    let len = u64::from(r.u32()?);
    let stored = r.u32()?;
    if FRAME_HEADER_BYTES + len != frame.len() as u64 {
        return Err(format!(
            "record length {len} does not match the indexed length {}",
            frame.len()
        ));
    }
    let actual = crc32c::crc32c(frame.get(8..).unwrap_or(&[]));
    if actual != stored {
        return Err(format!(
            "record checksum mismatch on read-back: stored {stored:#010x}, computed {actual:#010x}"
        ));
    }
    Ok(())
}

/// `Reader` is a bounds-checked little-endian cursor over untrusted bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("truncated: need {n} bytes at body offset {}", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        let b = self.bytes(1)?;
        Ok(b[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.bytes(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::types::Entry;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        let group = any::<u64>().prop_map(GroupId);
        prop_oneof![
            (
                group.clone(),
                0u64..u64::MAX / 2,
                proptest::collection::vec(
                    (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)),
                    1..8
                )
            )
                .prop_map(|(g, first, es)| Record::Entries {
                    group: g,
                    entries: es
                        .into_iter()
                        .enumerate()
                        .map(|(i, (t, p))| Entry {
                            index: LogIndex(first + i as u64),
                            term: Term(t),
                            payload: p,
                        })
                        .collect(),
                }),
            (group.clone(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(g, t, n, c)| {
                Record::Vote {
                    group: g,
                    vote: Vote {
                        term: Term(t),
                        node_id: NodeId(n),
                        committed: c,
                    },
                }
            }),
            (group.clone(), any::<u64>()).prop_map(|(g, i)| Record::Truncate {
                group: g,
                from_index: LogIndex(i)
            }),
            (group.clone(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(g, i, t, n)| {
                Record::Purge {
                    group: g,
                    up_to: LogId {
                        term: Term(t),
                        leader: NodeId(n),
                        index: LogIndex(i),
                    },
                }
            }),
            (group, any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(g, i, t, n)| {
                Record::Commit {
                    group: g,
                    committed: LogId {
                        term: Term(t),
                        leader: NodeId(n),
                        index: LogIndex(i),
                    },
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn record_round_trips(rec in arb_record()) {
            let mut buf = vec![0xAA]; // frames need not start at offset 0
            let parsed = encode_record(&rec, &mut buf);
            let (len, back) = read_frame(&buf[1..], u64::from(u32::MAX)).unwrap();
            prop_assert_eq!(len as usize, buf.len() - 1);
            prop_assert_eq!(&back, &parsed);
            if let (Record::Entries { entries, .. }, Parsed::Entries { metas, .. }) = (&rec, &back) {
                for (e, m) in entries.iter().zip(metas) {
                    prop_assert_eq!(payload(&buf[1..], m).unwrap(), &e.payload[..]);
                }
            }
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = read_frame(&bytes, 1 << 20);
            let _ = decode_header(&bytes);
            if bytes.len() > 9 {
                let _ = decode_body(bytes[0], &bytes[1..]);
            }
        }

        #[test]
        fn any_single_byte_flip_is_detected(rec in arb_record(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut buf = Vec::new();
            encode_record(&rec, &mut buf);
            let i = at.index(buf.len());
            buf[i] ^= 1 << bit;
            prop_assert!(read_frame(&buf, 1 << 20).is_err());
        }
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = encode_header(0x1234);
        assert_eq!(h.len() as u64, HEADER_BYTES);
        assert_eq!(decode_header(&h), Ok(0x1234));
        for i in 0..h.len() {
            let mut bad = h.clone();
            bad[i] ^= 0x10;
            assert!(decode_header(&bad).is_err(), "flip at {i} undetected");
        }
        assert!(decode_header(&h[..10]).is_err());
    }

    #[test]
    fn version_1_segments_are_refused() {
        // Version 1 (no leader in Purge/Commit) was never deployed.
        let mut h = encode_header(7);
        h[4] = 1;
        let crc = crc32c::crc32c(&h[..16]);
        h[16..].copy_from_slice(&crc.to_le_bytes());
        let err = decode_header(&h).unwrap_err();
        assert!(err.contains("unsupported version 1"), "{err}");
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_name(0x2a), "wal-000000000000002a.log");
        assert_eq!(parse_segment_name("wal-000000000000002a.log"), Some(0x2a));
        assert_eq!(parse_segment_name("wal-000000000000002A.log"), None);
        assert_eq!(parse_segment_name("wal-2a.log"), None);
        assert_eq!(parse_segment_name("wal-000000000000002a.log.tmp"), None);
    }
}
