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
use crate::payload::{ValueCodec, payload_iter, write_dod};

/// `NO_WINDOW` marks "no XOR window yet" in `leading` (Prometheus uses the
/// same 0xff sentinel).
const NO_WINDOW: u8 = 0xff;

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
        let bit_len = it.0.r.bit_pos();
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
            t: it.0.st.t,
            delta: it.0.st.delta,
            v: it.0.st.v.v,
            leading: it.0.st.v.leading,
            trailing: it.0.st.v.trailing,
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
    /// (see [`crate::encode_decimal`]) and a decimal payload is smaller, the
    /// record carries the smallest one instead ([`crate::ENCODING_DECIMAL`]
    /// or [`crate::ENCODING_DECIMAL_SCALED`]). The samples read back are
    /// bit-identical either way. Costs one decode of the chunk and one or
    /// two decimal encodes.
    ///
    /// # Panics
    ///
    /// As [`XorChunk::encode_record`].
    pub fn encode_compact_record(&self, buf: &mut Vec<u8>) {
        // Decoded in one loop (`append_to`), not a `Result` per sample.
        let mut samples = Vec::new();
        let decimal = self
            .iter()
            .append_to(&mut samples)
            .ok()
            .and_then(|()| crate::decimal::encode_compact(&samples))
            .filter(|(_, p)| p.len() < self.payload().len());
        match decimal {
            Some((encoding, p))
                if !self.is_empty() && self.num_samples as u64 <= crate::RECORD_SAMPLES_MAX =>
            {
                crate::record::encode(encoding, self.t_min, self.t, self.num_samples, &p, buf);
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

payload_iter!(
    /// `XorIter` decodes `num_samples` samples from an XOR payload.
    XorIter,
    XorValues
);

/// `XorValues` is the XOR value decoder's state: the last value's bits and
/// the current window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct XorValues {
    v: u64,
    leading: u8,
    trailing: u8,
}

impl ValueCodec for XorValues {
    const START: XorValues = XorValues {
        v: 0,
        leading: NO_WINDOW,
        trailing: 0,
    };

    #[inline]
    fn read_first(&mut self, rd: &mut Reader<'_>, _rest: &[u8]) -> Result<(), ChunkError> {
        self.v = rd.u64_be().ok_or(ChunkError::Truncated)?;
        Ok(())
    }

    /// Decodes one XOR-encoded value, updating the window.
    #[inline(always)]
    fn read_next(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError> {
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
            if self.leading == NO_WINDOW {
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
            self.leading = lead;
            self.trailing = 64 - lead - sig;
        }
        let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
        let bits = r.read_bits(sig);
        self.v ^= bits << self.trailing;
        Ok(())
    }

    #[inline(always)]
    fn repeat(&mut self) {}

    #[inline(always)]
    fn value(&self) -> f64 {
        f64::from_bits(self.v)
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
