//! The XOR bitstream: [`XorChunk`] encodes, [`XorIter`] decodes.
//!
//! Departures from the Gorilla paper (all shared with Prometheus): timestamps
//! are milliseconds, not seconds, so the delta-of-delta buckets are 14, 17
//! and 20 bits instead of 7, 9 and 12, with a 64-bit escape instead of 32;
//! the first timestamp is a zig-zag varint rather than a delta from a 2-hour
//! block header; the first delta is an unsigned varint rather than 14 bits;
//! and the leading-zero count of a new XOR window is clamped to 31 so it
//! fits in 5 bits. Departure from Prometheus: no 2-byte sample count at the
//! start of the payload (it lives in the record header).

use raftwatch_model::Sample;
use raftwatch_model::encoding::{Reader, put_uvarint, put_varint};

use crate::ChunkError;
use crate::bits::{BitReader, BitWriter};

/// `NO_WINDOW` marks "no XOR window yet" in `leading` (Prometheus uses the
/// same 0xff sentinel).
const NO_WINDOW: u8 = 0xff;

/// `DOD_BUCKETS` are the widths of the delta-of-delta buckets selected by
/// control prefixes `10`, `110` and `1110`.
const DOD_BUCKETS: [u32; 3] = [14, 17, 20];

/// `dod_fits` reports whether `dod` fits a `bits`-wide bucket, using
/// Prometheus' asymmetric range `[-(2^(bits-1) - 1), 2^(bits-1)]` (its
/// decoder reads `2^(bits-1)` as positive, so `-2^(bits-1)` must not be
/// written).
#[inline]
fn dod_fits(dod: i64, bits: u32) -> bool {
    let half = 1i64 << (bits - 1);
    -(half - 1) <= dod && dod <= half
}

/// `write_dod` writes a timestamp delta-of-delta with the bucketed code of
/// `docs/format/chunk.md` (shared by the XOR and decimal payloads).
#[inline]
pub(crate) fn write_dod(w: &mut BitWriter, dod: i64) {
    let d = dod as u64;
    if dod == 0 {
        w.write_bits(0, 1);
    } else if dod_fits(dod, 14) {
        w.write_bits((0b10 << 14) | (d & 0x3fff), 16);
    } else if dod_fits(dod, 17) {
        w.write_bits((0b110 << 17) | (d & 0x1_ffff), 20);
    } else if dod_fits(dod, 20) {
        w.write_bits((0b1110 << 20) | (d & 0xf_ffff), 24);
    } else {
        w.write_bits(0b1111, 4);
        w.write_bits(d, 64);
    }
}

/// `read_dod` reads what [`write_dod`] wrote. The caller has refilled the
/// reader, so at least 56 bits are loaded.
#[inline(always)]
pub(crate) fn read_dod(r: &mut BitReader<'_>) -> i64 {
    let w = r.peek();
    let ones = (!w).leading_zeros();
    match ones {
        0 => {
            r.consume(1);
            0
        }
        1..=3 => {
            let sz = DOD_BUCKETS[ones as usize - 1];
            r.consume(ones + 1 + sz);
            // Prometheus' decoder maps the `sz`-bit field `b` to `b` when
            // `b <= 2^(sz-1)` and to `b - 2^sz` above. That is the
            // two's-complement value of `b - 1`, plus one: subtract one at
            // the field's lowest bit while it is still left-aligned (bits
            // below it are unaffected), then shift it down arithmetically.
            let field = w << (ones + 1);
            ((field.wrapping_sub(1 << (64 - sz)) as i64) >> (64 - sz)) + 1
        }
        _ => {
            r.consume(4);
            r.read_bits(64) as i64
        }
    }
}

/// `XorChunk` is an open, appendable XOR chunk (the "head chunk"). Its
/// payload is valid to read (through [`XorChunk::payload`] or
/// [`XorChunk::iter`]) after every append.
#[derive(Clone, Debug)]
pub struct XorChunk {
    w: BitWriter,
    num_samples: usize,
    /// First timestamp; meaningful only when `num_samples > 0`.
    t_min: i64,
    /// Last timestamp.
    t: i64,
    /// Last timestamp delta, as the wrapping difference of the last two
    /// timestamps (its bits are the true `u64` delta).
    delta: i64,
    /// Last value's bits.
    v: u64,
    /// Leading zeros of the current XOR window, or `NO_WINDOW`.
    leading: u8,
    /// Trailing zeros of the current XOR window.
    trailing: u8,
}

impl XorChunk {
    /// `new` returns an empty chunk. It does not allocate.
    pub fn new() -> XorChunk {
        XorChunk {
            w: BitWriter::default(),
            num_samples: 0,
            t_min: 0,
            t: 0,
            delta: 0,
            v: 0,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }

    /// `append` adds the sample `(t, v)`. Precondition: `t > self.max_time()`
    /// when the chunk is not empty; the caller enforces it (checked only by
    /// `debug_assert`, since a violation is a caller bug and the decoder
    /// reports it as [`ChunkError::NonMonotonic`] anyway). Any `f64` is
    /// accepted and stored bit-exactly.
    #[inline]
    pub fn append(&mut self, t: i64, v: f64) {
        debug_assert!(
            self.num_samples == 0 || t > self.t,
            "append: {t} after {}",
            self.t
        );
        let vb = v.to_bits();
        match self.num_samples {
            0 => {
                self.w.append_aligned(|bytes| {
                    put_varint(bytes, t);
                    bytes.extend_from_slice(&vb.to_be_bytes());
                });
                self.t_min = t;
            }
            1 => {
                // Strictly increasing timestamps make the true delta fit in
                // u64 even from i64::MIN to i64::MAX; the wrapping difference
                // has exactly its bits.
                let delta = t.wrapping_sub(self.t);
                self.w
                    .append_aligned(|bytes| put_uvarint(bytes, delta as u64));
                self.delta = delta;
                self.write_value(vb);
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                let dod = delta.wrapping_sub(self.delta);
                write_dod(&mut self.w, dod);
                self.delta = delta;
                self.write_value(vb);
            }
        }
        self.t = t;
        self.v = vb;
        self.num_samples += 1;
    }

    #[inline]
    fn write_value(&mut self, vb: u64) {
        let x = vb ^ self.v;
        if x == 0 {
            self.w.write_bits(0, 1);
            return;
        }
        // At most 31 so that it fits in 5 bits; a clamped window is merely
        // wider than necessary.
        let lead = x.leading_zeros().min(31);
        let trail = x.trailing_zeros();
        let (leading, trailing) = (u32::from(self.leading), u32::from(self.trailing));
        if self.leading != NO_WINDOW && lead >= leading && trail >= trailing {
            // '10' then the meaningful bits of the previous window.
            let sig = 64 - leading - trailing;
            let bits = x >> trailing;
            if sig <= 62 {
                self.w.write_bits((0b10 << sig) | bits, sig + 2);
            } else {
                self.w.write_bits(0b10, 2);
                self.w.write_bits(bits, sig);
            }
        } else {
            // '11', 5 bits leading, 6 bits significant (64 written as 0).
            let sig = 64 - lead - trail;
            self.leading = lead as u8;
            self.trailing = trail as u8;
            let header = (0b11 << 11) | (u64::from(lead) << 6) | u64::from(sig & 63);
            if sig <= 51 {
                self.w.write_bits((header << sig) | (x >> trail), 13 + sig);
            } else {
                self.w.write_bits(header, 13);
                self.w.write_bits(x >> trail, sig);
            }
        }
    }

    /// `num_samples` is the number of samples appended.
    #[inline]
    pub fn num_samples(&self) -> usize {
        self.num_samples
    }

    /// `is_empty` reports whether no sample has been appended.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.num_samples == 0
    }

    /// `min_time` is the first (smallest) timestamp, `None` when empty.
    #[inline]
    pub fn min_time(&self) -> Option<i64> {
        (!self.is_empty()).then_some(self.t_min)
    }

    /// `max_time` is the last (largest) timestamp, `None` when empty.
    #[inline]
    pub fn max_time(&self) -> Option<i64> {
        (!self.is_empty()).then_some(self.t)
    }

    /// `last_value` is the last value appended (bit-exact), `None` when
    /// empty.
    #[inline]
    pub fn last_value(&self) -> Option<f64> {
        (!self.is_empty()).then_some(f64::from_bits(self.v))
    }

    /// `payload` is the bitstream written so far, the last byte zero-padded.
    /// It decodes with [`XorIter::new`]`(payload, self.num_samples())`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.w.bytes()
    }

    /// `iter` decodes the samples appended so far, in order.
    pub fn iter(&self) -> XorIter<'_> {
        XorIter::new(self.payload(), self.num_samples)
    }

    /// `heap_bytes` is the heap memory owned by this chunk (the payload
    /// vector's capacity), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.w.capacity()
    }

    /// `from_payload` rebuilds an appendable chunk from a payload and its
    /// sample count as read back from disk. It decodes every sample to
    /// recover the appender state (last timestamp, delta and value, XOR
    /// window, exact bit length), and fails if the payload is corrupt: any
    /// decoding error, bytes after the last sample, or non-zero padding
    /// bits (which appending would otherwise corrupt). The payload is
    /// copied. `num_samples == 0` requires an empty payload.
    pub fn from_payload(payload: &[u8], num_samples: usize) -> Result<XorChunk, ChunkError> {
        if num_samples == 0 {
            if !payload.is_empty() {
                return Err(ChunkError::Malformed(
                    "payload present but num_samples is 0",
                ));
            }
            return Ok(XorChunk::new());
        }
        let mut it = XorIter::new(payload, num_samples);
        let mut t_min = None;
        for s in &mut it {
            let s = s?;
            t_min.get_or_insert(s.timestamp.0);
        }
        let Some(t_min) = t_min else {
            return Err(ChunkError::Truncated);
        };
        let bit_len = it.r.bit_pos();
        if payload.len() != bit_len.div_ceil(8) {
            return Err(ChunkError::Malformed(
                "payload has bytes after its last sample",
            ));
        }
        let pad = (8 - bit_len % 8) % 8;
        if let Some(&last) = payload.last()
            && last & ((1u8 << pad) - 1) != 0
        {
            return Err(ChunkError::Malformed("payload padding bits are not zero"));
        }
        Ok(XorChunk {
            w: BitWriter::from_parts(payload.to_vec(), bit_len),
            num_samples,
            t_min,
            t: it.st.t,
            delta: it.st.delta,
            v: it.st.v,
            leading: it.st.leading,
            trailing: it.st.trailing,
        })
    }

    /// `encode_record` appends this chunk to `buf` as an on-disk record (see
    /// [`ChunkRecord`] and `docs/format/chunk.md`).
    ///
    /// # Panics
    ///
    /// If the chunk is empty or holds more than
    /// [`RECORD_SAMPLES_MAX`](crate::RECORD_SAMPLES_MAX) samples: callers cut
    /// chunks at [`CHUNK_SAMPLES_TARGET`](crate::CHUNK_SAMPLES_TARGET), so
    /// either is a programmer error, and writing a record that can never be
    /// decoded would be worse.
    pub fn encode_record(&self, buf: &mut Vec<u8>) {
        assert!(
            !self.is_empty() && self.num_samples as u64 <= crate::RECORD_SAMPLES_MAX,
            "encode_record: {} samples is outside 1..={}",
            self.num_samples,
            crate::RECORD_SAMPLES_MAX
        );
        crate::record::encode(
            crate::ENCODING_XOR,
            self.t_min,
            self.t,
            self.num_samples,
            self.payload(),
            buf,
        );
    }

    /// `encode_compact_record` is [`XorChunk::encode_record`] for a chunk
    /// that will not be appended to again: when every value is a decimal
    /// (see [`crate::encode_decimal`]) and the decimal payload is smaller,
    /// the record carries that instead ([`crate::ENCODING_DECIMAL`]). The
    /// samples read back are bit-identical either way. Costs one decode of
    /// the chunk and one decimal encode.
    ///
    /// # Panics
    ///
    /// As [`XorChunk::encode_record`].
    pub fn encode_compact_record(&self, buf: &mut Vec<u8>) {
        let decimal = self
            .iter()
            .collect::<Result<Vec<Sample>, _>>()
            .ok()
            .and_then(|samples| crate::encode_decimal(&samples))
            .filter(|p| p.len() < self.payload().len());
        match decimal {
            Some(p) if !self.is_empty() && self.num_samples as u64 <= crate::RECORD_SAMPLES_MAX => {
                crate::record::encode(
                    crate::ENCODING_DECIMAL,
                    self.t_min,
                    self.t,
                    self.num_samples,
                    &p,
                    buf,
                );
            }
            _ => self.encode_record(buf),
        }
    }
}

impl Default for XorChunk {
    /// `default` is [`XorChunk::new`]. Not derived: an empty chunk has no
    /// XOR window, which is `leading == NO_WINDOW`, not zero.
    fn default() -> XorChunk {
        XorChunk::new()
    }
}

/// `XorIter` decodes `num_samples` samples from an XOR payload. On corrupt
/// input it yields one `Err` and then `None`; it never panics and never
/// reads outside the payload. Samples are yielded with strictly increasing
/// timestamps or not at all ([`ChunkError::NonMonotonic`]).
///
/// `num_samples` is trusted to be right (the record's CRC covers it): asking
/// for more samples than were written may decode the last byte's zero
/// padding as a few extra samples repeating the last delta and value before
/// reporting [`ChunkError::Truncated`].
#[derive(Clone, Debug)]
pub struct XorIter<'a> {
    payload: &'a [u8],
    r: BitReader<'a>,
    /// Samples yielded so far.
    read: usize,
    /// Samples to yield in all; set to `read` after an error.
    total: usize,
    /// `payload.len() * 8`: reading past it means the payload is truncated.
    payload_bits: usize,
    st: State,
}

/// `State` is what decoding one sample needs from the previous ones. Kept
/// apart from the reader so that the hot loop's state stays in registers
/// (see [`read_head`]).
#[derive(Clone, Copy, Debug)]
struct State {
    t: i64,
    delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl<'a> XorIter<'a> {
    /// `new` prepares to decode `num_samples` samples from `payload`. It
    /// does no work until the first call to `next`.
    pub fn new(payload: &'a [u8], num_samples: usize) -> XorIter<'a> {
        XorIter {
            payload,
            r: BitReader::new(payload, 0),
            read: 0,
            total: num_samples,
            payload_bits: payload.len().saturating_mul(8),
            st: State {
                t: 0,
                delta: 0,
                v: 0,
                leading: NO_WINDOW,
                trailing: 0,
            },
        }
    }
}

/// `varint_error` tells a truncated varint from an overlong one: the model's
/// decoder returns `None` for both, and only an input of ten or more bytes
/// can be overlong.
pub(crate) fn varint_error(rest: &[u8]) -> ChunkError {
    if rest.len() < 10 {
        ChunkError::Truncated
    } else {
        ChunkError::Malformed("overlong varint in payload")
    }
}

/// `read_head` decodes sample `index` (0 or 1), whose timestamps are
/// byte-aligned varints starting at byte `pos`, and returns the reader
/// positioned after it. It runs twice per chunk, so it is out of line; it
/// takes and returns state by value because an out-of-line call taking
/// `&mut XorIter` would pin the iterator's state to memory for the whole
/// decode loop.
#[cold]
#[inline(never)]
fn read_head(
    payload: &[u8],
    index: usize,
    pos: usize,
    mut st: State,
) -> Result<(BitReader<'_>, State), ChunkError> {
    let rest = payload.get(pos..).unwrap_or(&[]);
    let mut rd = Reader::new(rest);
    if index == 0 {
        st.t = rd.varint().ok_or_else(|| varint_error(rest))?;
        st.v = rd.u64_be().ok_or(ChunkError::Truncated)?;
        return Ok((BitReader::new(payload, pos + rd.position()), st));
    }
    let delta = rd.uvarint().ok_or_else(|| varint_error(rest))? as i64;
    let mut r = BitReader::new(payload, pos + rd.position());
    let t = st.t.wrapping_add(delta);
    if t <= st.t {
        return Err(ChunkError::NonMonotonic {
            previous: st.t,
            next: t,
        });
    }
    read_value(&mut r, &mut st)?;
    st.t = t;
    st.delta = delta;
    Ok((r, st))
}

/// `read_tail` decodes a sample after the second (delta-of-delta timestamp,
/// then XOR value) into `st`.
#[inline(always)]
fn read_tail(r: &mut BitReader<'_>, st: &mut State) -> Result<(), ChunkError> {
    // One refill covers the common case: at most 24 bits of timestamp and
    // 13 bits of value header out of the 56 loaded.
    r.refill();
    let dod = read_dod(r);
    let delta = st.delta.wrapping_add(dod);
    let t = st.t.wrapping_add(delta);
    if t <= st.t {
        return Err(ChunkError::NonMonotonic {
            previous: st.t,
            next: t,
        });
    }
    read_value(r, st)?;
    st.delta = delta;
    st.t = t;
    Ok(())
}

/// `read_value` decodes one XOR-encoded value into `st.v`, updating the
/// window.
#[inline(always)]
fn read_value(r: &mut BitReader<'_>, st: &mut State) -> Result<(), ChunkError> {
    // Callers leave at least 24 bits loaded except right after the
    // byte-aligned head, so this refill is rarely taken.
    if r.valid() < 13 {
        r.refill();
    }
    let w = r.peek();
    if w >> 63 == 0 {
        r.consume(1);
        return Ok(());
    }
    if (w >> 62) & 1 == 0 {
        r.consume(2);
        if st.leading == NO_WINDOW {
            return Err(ChunkError::Malformed(
                "value reuses an XOR window before one was set",
            ));
        }
    } else {
        let lead = ((w >> 57) & 31) as u8;
        let sig = match ((w >> 51) & 63) as u8 {
            0 => 64,
            s => s,
        };
        r.consume(13);
        if lead + sig > 64 {
            return Err(ChunkError::Malformed("XOR window wider than 64 bits"));
        }
        st.leading = lead;
        st.trailing = 64 - lead - sig;
    }
    let sig = 64 - u32::from(st.leading) - u32::from(st.trailing);
    let bits = r.read_bits(sig);
    st.v ^= bits << st.trailing;
    Ok(())
}

impl Iterator for XorIter<'_> {
    type Item = Result<Sample, ChunkError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.read == self.total {
            return None;
        }
        let res = if self.read >= 2 {
            read_tail(&mut self.r, &mut self.st)
        } else {
            read_head(self.payload, self.read, self.r.bit_pos() / 8, self.st).map(|(r, st)| {
                self.r = r;
                self.st = st;
            })
        };
        // The reader returns zero bits past the end rather than failing
        // mid-sample; a sample that needed them is truncated.
        let res = res.and_then(|()| {
            if self.r.bit_pos() > self.payload_bits {
                Err(ChunkError::Truncated)
            } else {
                Ok(())
            }
        });
        match res {
            Ok(()) => {
                self.read += 1;
                Some(Ok(Sample::new(self.st.t, f64::from_bits(self.st.v))))
            }
            Err(e) => {
                self.total = self.read;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.total - self.read;
        (remaining.min(1), Some(remaining))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(c: &XorChunk) -> Vec<(i64, u64)> {
        c.iter()
            .map(|s| s.map(|s| (s.timestamp.0, s.value.to_bits())))
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn dod_bucket_edges_round_trip() {
        // Deltas chosen so that successive dods hit each bucket's edges,
        // including Prometheus' asymmetric ones.
        let mut dods = vec![0i64];
        for bits in [14u32, 17, 20] {
            let half = 1i64 << (bits - 1);
            dods.extend([half, half + 1, -(half - 1), -half, -half - 1]);
        }
        dods.extend([i64::MAX / 4, i64::MIN / 4]);
        let mut c = XorChunk::new();
        let mut want = Vec::new();
        let (mut t, mut delta) = (0i64, 1i64 << 40);
        c.append(t, 0.0);
        want.push((t, 0));
        for (i, dod) in dods.into_iter().enumerate() {
            // Keep delta positive so timestamps stay increasing.
            delta = (delta + dod).max(1);
            t += delta;
            c.append(t, i as f64);
            want.push((t, (i as f64).to_bits()));
        }
        assert_eq!(decode(&c), want);
    }

    #[test]
    fn default_is_new() {
        let mut c = XorChunk::default();
        c.append(1, 1.0);
        c.append(2, 3.0);
        c.append(3, 7.0);
        assert_eq!(
            decode(&c),
            vec![
                (1, 1f64.to_bits()),
                (2, 3f64.to_bits()),
                (3, 7f64.to_bits())
            ]
        );
    }

    #[test]
    fn extreme_timestamps_round_trip() {
        let mut c = XorChunk::new();
        c.append(i64::MIN, 1.0);
        c.append(i64::MIN + 1, 1.0);
        c.append(i64::MAX - 1, -0.0);
        c.append(i64::MAX, f64::NAN);
        assert_eq!(
            decode(&c),
            vec![
                (i64::MIN, 1f64.to_bits()),
                (i64::MIN + 1, 1f64.to_bits()),
                (i64::MAX - 1, (-0.0f64).to_bits()),
                (i64::MAX, f64::NAN.to_bits())
            ]
        );
    }

    #[test]
    fn reuse_before_window_is_malformed() {
        // Sample 0 at t=0 v=0, sample 1 delta 1, then value bits '10'.
        let mut p = vec![0u8];
        p.extend_from_slice(&0u64.to_be_bytes());
        p.push(1);
        p.push(0b1000_0000);
        let got: Vec<_> = XorIter::new(&p, 2).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1],
            Err(ChunkError::Malformed(
                "value reuses an XOR window before one was set"
            ))
        );
    }

    #[test]
    fn from_payload_rejects_trailing_bytes_and_dirty_padding() {
        let mut c = XorChunk::new();
        c.append(1, 1.0);
        c.append(2, 2.0);
        c.append(3, 2.0);
        let mut p = c.payload().to_vec();
        p.push(0);
        assert!(matches!(
            XorChunk::from_payload(&p, 3),
            Err(ChunkError::Malformed(_))
        ));
        let mut p = c.payload().to_vec();
        if let Some(last) = p.last_mut() {
            *last |= 1;
        }
        assert!(XorChunk::from_payload(&p, 3).is_err());
        assert!(matches!(
            XorChunk::from_payload(&[1], 0),
            Err(ChunkError::Malformed(_))
        ));
        assert_eq!(XorChunk::from_payload(&[], 0).unwrap().num_samples(), 0);
    }
}
