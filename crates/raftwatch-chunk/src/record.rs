//! The on-disk chunk record; the byte diagram is in `docs/format/chunk.md`.
//!
//! ```text
//! version u8 | encoding u8 | num_samples uvarint | min_time varint
//!   | max_time - min_time uvarint | payload_len uvarint | payload
//!   | crc32c u32 LE over every preceding byte of the record
//! ```

use raftwatch_model::encoding::{Reader, get_varint, put_uvarint, put_varint};

use raftwatch_model::Sample;

use crate::ChunkError;
use crate::decimal::{DecimalIter, ScaledDecimalIter};
use crate::xor::XorIter;

/// `RECORD_VERSION` is the only record version this crate reads and writes.
pub const RECORD_VERSION: u8 = 1;

/// `ENCODING_XOR` is the encoding byte of a Gorilla/XOR payload.
pub const ENCODING_XOR: u8 = 1;

/// `ENCODING_DECIMAL` is the encoding byte of a decimal payload (integer
/// mantissas and one decimal exponent per chunk; see [`crate::encode_decimal`]).
pub const ENCODING_DECIMAL: u8 = 2;

/// `ENCODING_DECIMAL_SCALED` is the encoding byte of a scaled decimal
/// payload: a decimal payload whose mantissa differences are coded divided
/// by their common factor (see [`crate::encode_scaled_decimal`]).
pub const ENCODING_DECIMAL_SCALED: u8 = 3;

/// `RECORD_SAMPLES_MAX` is the largest `num_samples` a record may carry
/// (inclusive; the smallest is 1). It matches Prometheus' 16-bit count.
pub const RECORD_SAMPLES_MAX: u64 = 65_535;

/// `CRC_BYTES` is the size of the trailing checksum.
const CRC_BYTES: usize = 4;

/// `encode` appends one record. Preconditions (asserted by the caller):
/// `1 <= num_samples <= RECORD_SAMPLES_MAX`, `min_time <= max_time`.
pub(crate) fn encode(
    encoding: u8,
    min_time: i64,
    max_time: i64,
    num_samples: usize,
    payload: &[u8],
    buf: &mut Vec<u8>,
) {
    let start = buf.len();
    buf.push(RECORD_VERSION);
    buf.push(encoding);
    put_uvarint(buf, num_samples as u64);
    put_varint(buf, min_time);
    // max_time >= min_time, so the wrapping difference is the true span.
    put_uvarint(buf, max_time.wrapping_sub(min_time) as u64);
    put_uvarint(buf, payload.len() as u64);
    buf.extend_from_slice(payload);
    let crc = crc32c::crc32c(&buf[start..]);
    buf.extend_from_slice(&crc.to_le_bytes());
}

/// `verified_body` is `bytes` without its trailing CRC-32C, which must
/// match them.
fn verified_body(bytes: &[u8]) -> Result<&[u8], ChunkError> {
    let Some(body_len) = bytes.len().checked_sub(CRC_BYTES) else {
        return Err(ChunkError::Truncated);
    };
    let (body, crc) = bytes.split_at(body_len);
    let expected = Reader::new(crc).u32_le().ok_or(ChunkError::Truncated)?;
    let actual = crc32c::crc32c(body);
    if expected != actual {
        return Err(ChunkError::ChecksumMismatch { expected, actual });
    }
    Ok(body)
}

/// `read_encoding_and_count` reads and checks the encoding byte and the
/// sample count that start a record (after its version) and a bare record.
fn read_encoding_and_count(rd: &mut Reader<'_>) -> Result<(u8, u64), ChunkError> {
    let encoding = rd.u8().ok_or(ChunkError::Truncated)?;
    if !(ENCODING_XOR..=ENCODING_DECIMAL_SCALED).contains(&encoding) {
        return Err(ChunkError::UnsupportedEncoding(encoding));
    }
    let num_samples = rd
        .uvarint()
        .ok_or(ChunkError::Malformed("bad num_samples varint"))?;
    if !(1..=RECORD_SAMPLES_MAX).contains(&num_samples) {
        return Err(ChunkError::Malformed("num_samples outside 1..=65535"));
    }
    Ok((encoding, num_samples))
}

/// `ChunkRecord` is a decoded and verified record header borrowing its
/// payload. `min_time <= max_time` are the first and last sample timestamps
/// (inclusive), `num_samples` is in `1..=RECORD_SAMPLES_MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRecord<'a> {
    /// Timestamp of the first sample, in milliseconds.
    pub min_time: i64,
    /// Timestamp of the last sample, in milliseconds.
    pub max_time: i64,
    /// Number of samples in the payload.
    pub num_samples: usize,
    /// [`ENCODING_XOR`], [`ENCODING_DECIMAL`] or [`ENCODING_DECIMAL_SCALED`].
    pub encoding: u8,
    /// The bitstream, in `encoding`; for a record read by
    /// [`ChunkRecord::decode_bare`], without its first timestamp (which is
    /// `min_time`).
    pub payload: &'a [u8],
    /// `payload` starts after its first timestamp.
    first_time_elided: bool,
}

impl<'a> ChunkRecord<'a> {
    /// `decode` parses and verifies one record occupying exactly `bytes`
    /// (untrusted). Checks, in order: the version byte (first, because it
    /// decides the layout, including where the checksum is); the CRC-32C in
    /// the last four bytes over everything before them; the encoding byte;
    /// the header fields (`num_samples` in range, `min_time + span` within
    /// `i64`, a single sample has span 0); that `payload_len` covers exactly
    /// the bytes up to the checksum; and that the payload's first timestamp
    /// equals `min_time`. The payload itself is decoded lazily by
    /// [`ChunkRecord::iter`], which reports any remaining corruption.
    pub fn decode(bytes: &'a [u8]) -> Result<ChunkRecord<'a>, ChunkError> {
        let version = *bytes.first().ok_or(ChunkError::Truncated)?;
        if version != RECORD_VERSION {
            return Err(ChunkError::UnsupportedVersion(version));
        }
        let body = verified_body(bytes)?;

        let mut rd = Reader::new(body);
        rd.u8().ok_or(ChunkError::Truncated)?; // version, checked above
        let (encoding, num_samples) = read_encoding_and_count(&mut rd)?;
        let min_time = rd
            .varint()
            .ok_or(ChunkError::Malformed("bad min_time varint"))?;
        let span = rd
            .uvarint()
            .ok_or(ChunkError::Malformed("bad time span varint"))?;
        let max_time = min_time
            .checked_add_unsigned(span)
            .ok_or(ChunkError::Malformed("max_time overflows i64"))?;
        if num_samples == 1 && span != 0 {
            return Err(ChunkError::Malformed(
                "single-sample record with non-zero time span",
            ));
        }
        let payload_len = rd
            .uvarint()
            .ok_or(ChunkError::Malformed("bad payload_len varint"))?;
        let payload_len = usize::try_from(payload_len)
            .map_err(|_| ChunkError::Malformed("payload_len does not fit in memory"))?;
        let payload = rd.bytes(payload_len).ok_or(ChunkError::Truncated)?;
        if rd.position() != body.len() {
            return Err(ChunkError::Malformed("bytes between payload and checksum"));
        }
        match get_varint(payload) {
            Some((t0, _)) if t0 == min_time => {}
            Some(_) => {
                return Err(ChunkError::Malformed(
                    "first timestamp differs from min_time",
                ));
            }
            None => return Err(crate::payload::varint_error(payload)),
        }
        Ok(ChunkRecord {
            min_time,
            max_time,
            num_samples: num_samples as usize,
            encoding,
            payload,
            first_time_elided: false,
        })
    }

    /// `full_payload` is the payload with its first timestamp.
    fn full_payload(&self) -> std::borrow::Cow<'a, [u8]> {
        if self.first_time_elided {
            let mut p = Vec::with_capacity(self.payload.len() + 10);
            put_varint(&mut p, self.min_time);
            p.extend_from_slice(self.payload);
            std::borrow::Cow::Owned(p)
        } else {
            std::borrow::Cow::Borrowed(self.payload)
        }
    }

    /// `bare_payload` is the payload after its first timestamp.
    fn bare_payload(&self) -> &'a [u8] {
        if self.first_time_elided {
            return self.payload;
        }
        // `decode` checked that the payload starts with a varint.
        let skip = get_varint(self.payload).map_or(0, |(_, n)| n);
        &self.payload[skip..]
    }

    /// `encode` appends this record in full (as [`ChunkRecord::decode`]
    /// reads it).
    pub fn encode(&self, buf: &mut Vec<u8>) {
        encode(
            self.encoding,
            self.min_time,
            self.max_time,
            self.num_samples,
            &self.full_payload(),
            buf,
        );
    }

    /// `encode_bare` appends the bare form of this record, for a container
    /// that keeps each chunk's time bounds and length itself (a block's
    /// directory): `encoding u8 | num_samples uvarint | payload after its
    /// first timestamp | crc32c`, the CRC-32C over every preceding byte of
    /// the bare record. The version, time bounds, payload length and the
    /// payload's first timestamp (always `min_time`) are left out.
    pub fn encode_bare(&self, buf: &mut Vec<u8>) {
        let start = buf.len();
        buf.push(self.encoding);
        put_uvarint(buf, self.num_samples as u64);
        buf.extend_from_slice(self.bare_payload());
        let crc = crc32c::crc32c(&buf[start..]);
        buf.extend_from_slice(&crc.to_le_bytes());
    }

    /// `decode_bare` parses and verifies a bare record (see
    /// [`ChunkRecord::encode_bare`]) occupying exactly `bytes` (untrusted),
    /// whose time bounds its container recorded as `min_time ..= max_time`.
    /// Checks, in order: the CRC-32C; the encoding byte; `num_samples` in
    /// range; the bounds (`min_time <= max_time`, equal for one sample).
    /// The payload is decoded lazily from `min_time` on.
    pub fn decode_bare(
        bytes: &'a [u8],
        min_time: i64,
        max_time: i64,
    ) -> Result<ChunkRecord<'a>, ChunkError> {
        let body = verified_body(bytes)?;
        let mut rd = Reader::new(body);
        let (encoding, num_samples) = read_encoding_and_count(&mut rd)?;
        if min_time > max_time || (num_samples == 1 && min_time != max_time) {
            return Err(ChunkError::Malformed(
                "time bounds do not fit the sample count",
            ));
        }
        Ok(ChunkRecord {
            min_time,
            max_time,
            num_samples: num_samples as usize,
            encoding,
            payload: &body[rd.position()..],
            first_time_elided: true,
        })
    }

    /// `iter` decodes the record's samples in timestamp order.
    pub fn iter(&self) -> ChunkIter<'a> {
        let (p, n) = (self.payload, self.num_samples);
        if self.first_time_elided {
            let t0 = self.min_time;
            return match self.encoding {
                ENCODING_DECIMAL => ChunkIter::Decimal(DecimalIter::with_first_time(p, n, t0)),
                ENCODING_DECIMAL_SCALED => {
                    ChunkIter::ScaledDecimal(ScaledDecimalIter::with_first_time(p, n, t0))
                }
                _ => ChunkIter::Xor(XorIter::with_first_time(p, n, t0)),
            };
        }
        match self.encoding {
            ENCODING_DECIMAL => ChunkIter::Decimal(DecimalIter::new(p, n)),
            ENCODING_DECIMAL_SCALED => ChunkIter::ScaledDecimal(ScaledDecimalIter::new(p, n)),
            _ => ChunkIter::Xor(XorIter::new(p, n)),
        }
    }
}

/// `ChunkIter` decodes a record's payload in whichever encoding it has.
#[derive(Clone, Debug)]
pub enum ChunkIter<'a> {
    /// An [`ENCODING_XOR`] payload.
    Xor(XorIter<'a>),
    /// An [`ENCODING_DECIMAL`] payload.
    Decimal(DecimalIter<'a>),
    /// An [`ENCODING_DECIMAL_SCALED`] payload.
    ScaledDecimal(ScaledDecimalIter<'a>),
}

impl ChunkIter<'_> {
    /// `append_to` decodes the samples not yet yielded onto `out`, faster
    /// than collecting the iterator. On corrupt input `out` ends with the
    /// samples the iterator would have yielded before its `Err`, and that
    /// error is returned.
    pub fn append_to(&mut self, out: &mut Vec<Sample>) -> Result<(), ChunkError> {
        match self {
            ChunkIter::Xor(it) => it.append_to(out),
            ChunkIter::Decimal(it) => it.append_to(out),
            ChunkIter::ScaledDecimal(it) => it.append_to(out),
        }
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = Result<Sample, ChunkError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            ChunkIter::Xor(it) => it.next(),
            ChunkIter::Decimal(it) => it.next(),
            ChunkIter::ScaledDecimal(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            ChunkIter::Xor(it) => it.size_hint(),
            ChunkIter::Decimal(it) => it.size_hint(),
            ChunkIter::ScaledDecimal(it) => it.size_hint(),
        }
    }
}
