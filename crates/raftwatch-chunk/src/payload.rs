//! What the XOR and decimal payloads share: the first timestamp a varint,
//! the second a uvarint delta (both byte-aligned), every later one a
//! bucketed delta-of-delta, each followed by a value in the payload's own
//! code. [`PayloadIter`] decodes that frame; a [`ValueCodec`] decodes the
//! values.

use raftwatch_model::Sample;
use raftwatch_model::encoding::Reader;

use crate::ChunkError;
use crate::bits::{BitReader, BitWriter};

/// `DOD_BUCKETS` are the widths of the delta-of-delta buckets selected by
/// control prefixes `10`, `110` and `1110`.
const DOD_BUCKETS: [u32; 3] = [14, 17, 20];

/// `dod_bucket_bits` is the width of the bucket after `ones` (1 to 3) one
/// bits of prefix: [`DOD_BUCKETS`], computed rather than looked up, which
/// keeps a load off the decoder's critical path.
#[inline(always)]
const fn dod_bucket_bits(ones: u32) -> u32 {
    11 + 3 * ones
}

const _: () = {
    let mut i = 0;
    while i < DOD_BUCKETS.len() {
        assert!(dod_bucket_bits(i as u32 + 1) == DOD_BUCKETS[i]);
        i += 1;
    }
};

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
/// `docs/format/chunk.md`.
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
fn read_dod(r: &mut BitReader<'_>) -> i64 {
    let w = r.peek();
    let ones = (!w).leading_zeros();
    match ones {
        0 => {
            r.consume(1);
            0
        }
        1..=3 => {
            let sz = dod_bucket_bits(ones);
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

/// `ValueCodec` decodes one payload encoding's values.
pub(crate) trait ValueCodec: Copy + std::fmt::Debug {
    /// The decoder state before the first sample.
    const START: Self;
    /// Reads the first value, byte-aligned after the first timestamp, from
    /// `rd` (which reads `rest`).
    fn read_first(&mut self, rd: &mut Reader<'_>, rest: &[u8]) -> Result<(), ChunkError>;
    /// Reads the next value from the bitstream.
    fn read_next(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError>;
    /// Applies what `read_next` does on a single `0` bit (the value
    /// repeats, or the decimal mantissa moves by the same difference
    /// again), without reading it.
    fn repeat(&mut self);
    /// The value decoded last.
    fn value(&self) -> f64;
}

/// `State` is what decoding one sample needs from the previous ones. Kept
/// apart from the reader so that the hot loop's state stays in registers
/// (see [`read_head`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct State<V> {
    pub(crate) t: i64,
    pub(crate) delta: i64,
    pub(crate) v: V,
}

/// `PayloadIter` decodes `num_samples` samples from a payload whose values
/// `V` decodes. On corrupt input it yields one `Err` and then `None`; it
/// never panics and never reads outside the payload. Samples are yielded
/// with strictly increasing timestamps or not at all
/// ([`ChunkError::NonMonotonic`]).
///
/// `num_samples` is trusted to be right (the record's CRC covers it): asking
/// for more samples than were written may decode the last byte's zero
/// padding as a few extra samples repeating the last deltas before
/// reporting [`ChunkError::Truncated`].
#[derive(Clone, Debug)]
pub(crate) struct PayloadIter<'a, V> {
    payload: &'a [u8],
    pub(crate) r: BitReader<'a>,
    /// Samples yielded so far.
    read: usize,
    /// Samples to yield in all; set to `read` after an error.
    total: usize,
    /// `payload.len() * 8`: reading past it means the payload is truncated.
    payload_bits: usize,
    /// The first timestamp, when the payload starts after it (a bare
    /// record's payload, see `ChunkRecord::decode_bare`).
    first_time: Option<i64>,
    pub(crate) st: State<V>,
}

impl<'a, V: ValueCodec> PayloadIter<'a, V> {
    /// `new` prepares to decode `num_samples` samples from `payload`. It
    /// does no work until the first call to `next`.
    pub(crate) fn new(payload: &'a [u8], num_samples: usize) -> PayloadIter<'a, V> {
        PayloadIter {
            payload,
            r: BitReader::new(payload, 0),
            read: 0,
            total: num_samples,
            payload_bits: payload.len().saturating_mul(8),
            first_time: None,
            st: State {
                t: 0,
                delta: 0,
                v: V::START,
            },
        }
    }

    /// `with_first_time` is [`PayloadIter::new`] for a payload whose first
    /// timestamp, `t0`, was left out: `rest` starts with the first value.
    pub(crate) fn with_first_time(
        rest: &'a [u8],
        num_samples: usize,
        t0: i64,
    ) -> PayloadIter<'a, V> {
        PayloadIter {
            first_time: Some(t0),
            ..PayloadIter::new(rest, num_samples)
        }
    }
}

/// `read_head` decodes sample `index` (0 or 1), whose timestamps are
/// byte-aligned varints starting at byte `pos`, and returns the reader
/// positioned after it. It runs twice per chunk, so it is out of line; it
/// takes and returns state by value because an out-of-line call taking
/// `&mut PayloadIter` would pin the iterator's state to memory for the
/// whole decode loop.
#[cold]
#[inline(never)]
fn read_head<V: ValueCodec>(
    payload: &[u8],
    index: usize,
    pos: usize,
    first_time: Option<i64>,
    mut st: State<V>,
) -> Result<(BitReader<'_>, State<V>), ChunkError> {
    let rest = payload.get(pos..).unwrap_or(&[]);
    let mut rd = Reader::new(rest);
    if index == 0 {
        st.t = match first_time {
            Some(t0) => t0,
            None => rd.varint().ok_or_else(|| varint_error(rest))?,
        };
        st.v.read_first(&mut rd, rest)?;
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
    st.v.read_next(&mut r)?;
    st.t = t;
    st.delta = delta;
    Ok((r, st))
}

/// `read_tail` decodes a sample after the second: delta-of-delta
/// timestamp, then value.
#[inline(always)]
fn read_tail<V: ValueCodec>(r: &mut BitReader<'_>, st: &mut State<V>) -> Result<(), ChunkError> {
    // One refill covers the common case: at most 24 bits of timestamp and
    // a value header out of the 56 loaded.
    r.refill();
    read_tail_loaded(r, st)
}

/// `read_tail_loaded` is [`read_tail`] after its refill.
#[inline(always)]
fn read_tail_loaded<V: ValueCodec>(
    r: &mut BitReader<'_>,
    st: &mut State<V>,
) -> Result<(), ChunkError> {
    let dod = read_dod(r);
    let delta = st.delta.wrapping_add(dod);
    let t = st.t.wrapping_add(delta);
    if t <= st.t {
        return Err(ChunkError::NonMonotonic {
            previous: st.t,
            next: t,
        });
    }
    st.v.read_next(r)?;
    st.delta = delta;
    st.t = t;
    Ok(())
}

impl<V: ValueCodec> PayloadIter<'_, V> {
    /// `append_to` decodes the samples not yet yielded onto `out`: what
    /// the iterator would yield, without an `Option<Result>` per sample.
    /// On corrupt input `out` ends with the samples decoded before the
    /// error, which is returned (and the iterator is then exhausted), as the
    /// iterator yields them.
    pub(crate) fn append_to(&mut self, out: &mut Vec<Sample>) -> Result<(), ChunkError> {
        // Room for every sample at once: growing as they come reallocates
        // and copies. Every sample takes at least one bit, so a count the
        // payload cannot hold (a caller's, not a record's, which is bounded)
        // does not size the buffer.
        let fit = (self.total - self.read).min(self.payload_bits.saturating_add(2));
        out.reserve(fit);
        // The two byte-aligned head samples, through the iterator.
        while self.read < self.total.min(2) {
            match self.next() {
                Some(Ok(s)) => out.push(s),
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
        // The rest in a loop over locals, which stay in registers, into
        // slots made beforehand (cheaper than a capacity check per push).
        let base = out.len();
        let fit = (self.total - self.read).min(self.payload_bits.saturating_add(2));
        out.resize(base + fit, Sample::new(0, 0.0));
        let slots = &mut out[base..];
        let (mut r, mut st, start) = (self.r.clone(), self.st, self.read);
        let mut n = 0;
        let res = loop {
            let left = slots.len() - n;
            if left == 0 {
                break Ok(());
            }
            // A sample on time (delta-of-delta `0`) whose value code is a
            // single `0` takes two zero bits: decode a run of them at once.
            // Only where `read_tail` would accept them all: inside the
            // payload, and with timestamps that keep increasing.
            r.refill();
            if r.peek() >> 62 == 0 && st.delta > 0 {
                let pairs = r.peek().leading_zeros().min(r.valid()) / 2;
                let room = self.payload_bits.saturating_sub(r.bit_pos()) / 2;
                let mut k = (pairs as usize).min(left).min(room);
                // k <= 28. A run whose last timestamp would overflow is left
                // to `read_tail_loaded`, which reports it.
                if st
                    .delta
                    .checked_mul(k as i64)
                    .and_then(|span| st.t.checked_add(span))
                    .is_none()
                {
                    k = 0;
                }
                for slot in &mut slots[n..n + k] {
                    st.t += st.delta;
                    st.v.repeat();
                    *slot = Sample::new(st.t, st.v.value());
                }
                r.consume(2 * k as u32);
                n += k;
                if k > 0 {
                    continue;
                }
            }
            if let Err(e) = read_tail_loaded(&mut r, &mut st) {
                break Err(e);
            }
            if r.bit_pos() > self.payload_bits {
                break Err(ChunkError::Truncated);
            }
            slots[n] = Sample::new(st.t, st.v.value());
            n += 1;
        };
        out.truncate(base + n);
        // All the slots filled and samples still owed: the payload ran out
        // (unreachable, since reading that many samples overruns it first).
        let res = res.and_then(|()| {
            if start + n < self.total {
                Err(ChunkError::Truncated)
            } else {
                Ok(())
            }
        });
        let read = start + n;
        (self.r, self.st, self.read) = (r, st, read);
        if res.is_err() {
            self.total = self.read;
        }
        res
    }
}

impl<V: ValueCodec> Iterator for PayloadIter<'_, V> {
    type Item = Result<Sample, ChunkError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.read == self.total {
            return None;
        }
        let res = if self.read >= 2 {
            read_tail(&mut self.r, &mut self.st)
        } else {
            read_head(
                self.payload,
                self.read,
                self.r.bit_pos() / 8,
                self.first_time,
                self.st,
            )
            .map(|(r, st)| {
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
                Some(Ok(Sample::new(self.st.t, self.st.v.value())))
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

/// `payload_iter!` declares the public iterator over one encoding's
/// payload: a wrapper around [`PayloadIter`] with that encoding's
/// [`ValueCodec`], so the codec stays private to the crate.
macro_rules! payload_iter {
    ($(#[$doc:meta])* $name:ident, $values:ty) => {
        $(#[$doc])*
        ///
        /// On corrupt input it yields one `Err` and then `None`; it never
        /// panics and never reads outside the payload. Samples are yielded
        /// with strictly increasing timestamps or not at all
        /// ([`ChunkError::NonMonotonic`]). `num_samples` is trusted to be
        /// right (the record's CRC covers it): asking for more samples than
        /// were written may decode the last byte's zero padding as a few
        /// extra samples repeating the last deltas before reporting
        /// [`ChunkError::Truncated`].
        #[derive(Clone, Debug)]
        pub struct $name<'a>(pub(crate) $crate::payload::PayloadIter<'a, $values>);

        impl<'a> $name<'a> {
            /// `new` prepares to decode `num_samples` samples from
            /// `payload`. It does no work until the first call to `next`.
            pub fn new(payload: &'a [u8], num_samples: usize) -> $name<'a> {
                $name($crate::payload::PayloadIter::new(payload, num_samples))
            }

            /// `with_first_time` decodes a payload whose first timestamp,
            /// `t0`, was left out (a bare record's).
            pub(crate) fn with_first_time(rest: &'a [u8], num_samples: usize, t0: i64) -> $name<'a> {
                $name($crate::payload::PayloadIter::with_first_time(rest, num_samples, t0))
            }

            /// `append_to` decodes the samples not yet yielded onto `out`,
            /// faster than collecting the iterator. On corrupt input `out`
            /// ends with the samples the iterator would have yielded before
            /// its `Err`, and that error is returned.
            pub fn append_to(&mut self, out: &mut Vec<Sample>) -> Result<(), ChunkError> {
                self.0.append_to(out)
            }
        }

        impl Iterator for $name<'_> {
            type Item = Result<Sample, ChunkError>;

            #[inline]
            fn next(&mut self) -> Option<Self::Item> {
                self.0.next()
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                self.0.size_hint()
            }
        }
    };
}

pub(crate) use payload_iter;
