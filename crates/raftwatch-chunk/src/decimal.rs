//! The decimal payload (record encoding 2): [`encode_decimal`] writes it,
//! [`DecimalIter`] reads it.
//!
//! Most float samples a monitoring system stores are decimals in disguise:
//! byte and packet counters are integers, CPU seconds come in hundredths,
//! load averages in two decimals. XOR encoding pays for the binary noise of
//! such values (`0.01` has a 52-bit mantissa); this encoding stores each
//! value as an integer mantissa `m` with one exponent `k` per chunk, so that
//! the value is exactly `m as f64 / 10^k`, and writes the mantissas as
//! deltas. VictoriaMetrics stores every value this way; here it is an
//! alternative the writer picks per sealed chunk, only when every value of
//! the chunk survives the conversion bit-exactly and the result is smaller
//! than the XOR payload. NaN (including the staleness marker), infinities
//! and `-0.0` never qualify, so they always stay in XOR chunks.
//!
//! Byte layout in `docs/format/chunk.md`.

use raftwatch_model::Sample;
use raftwatch_model::encoding::{Reader, put_uvarint, put_varint};

use crate::ChunkError;
use crate::bits::{BitReader, BitWriter};
use crate::payload::{ValueCodec, payload_iter, varint_error, write_dod};

/// `DECIMAL_EXPONENT_MAX` is the largest exponent `k` a decimal payload
/// uses: every `10^k` up to it is exact in an `f64`.
pub const DECIMAL_EXPONENT_MAX: u8 = 15;

/// `MANTISSA_MAX` bounds `|m|`: every integer up to `2^53` is exact in an
/// `f64`, and deltas of such mantissas fit in 55 bits after zig-zag.
const MANTISSA_MAX: f64 = (1u64 << 53) as f64;

/// `WIDTH_SLACK` is how many unused bits the writer tolerates in the current
/// delta width before it writes a narrower one (8 header bits).
const WIDTH_SLACK: u32 = 3;

const POW10: [f64; DECIMAL_EXPONENT_MAX as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// `value_of` is the one conversion from mantissa to value, used by both the
/// writer (to verify) and the reader. Dividing by `10^0 = 1.0` is exact.
#[inline(always)]
fn value_of(m: i64, k: u8) -> f64 {
    // Integers (most counters) skip the division, which is exact by 1 but
    // the slowest step of decoding a sample.
    if k == 0 {
        m as f64
    } else {
        m as f64 / POW10[usize::from(k)]
    }
}

/// `mantissa` is `m` with `value_of(m, k)` bit-identical to `v`, if any.
#[inline]
fn mantissa(v: f64, k: u8) -> Option<i64> {
    if !v.is_finite() {
        return None;
    }
    let m = (v * POW10[usize::from(k)]).round();
    if m.abs() > MANTISSA_MAX {
        return None;
    }
    let m = m as i64;
    (value_of(m, k).to_bits() == v.to_bits()).then_some(m)
}

#[inline(always)]
fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

#[inline(always)]
fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// `ValueWriter` is the mantissa-delta coder's state. It codes each
/// difference divided by `g` (1 in a plain decimal payload, the common
/// factor in a scaled one).
struct ValueWriter {
    m: i64,
    g: i64,
    /// The last coded (divided) difference.
    e: i64,
    /// Current delta width in bits, 0 before the first.
    width: u32,
}

impl ValueWriter {
    #[inline]
    fn write(&mut self, w: &mut BitWriter, m: i64) {
        // |m| <= 2^53 on both sides, so the difference cannot overflow, and
        // `g` divides every difference (see `common_factor`).
        let e = (m - self.m) / self.g;
        if e == self.e {
            w.write_bits(0, 1);
        } else {
            let z = zigzag(e);
            let b = (64 - z.leading_zeros()).max(1);
            if self.width != 0 && b <= self.width && self.width - b <= WIDTH_SLACK {
                w.write_bits((0b10 << self.width) | z, self.width + 2);
            } else {
                // b <= 56, so the 8-bit header and the field fit in 64 bits.
                let header = (0b11 << 6) | u64::from(b - 1);
                w.write_bits((header << b) | z, 8 + b);
                self.width = b;
            }
        }
        self.m = m;
        self.e = e;
    }
}

/// `mantissas` is the smallest exponent at which every value of `samples`
/// is a decimal, with every value's mantissa at it; `None` when there is
/// none or no samples.
fn mantissas(samples: &[Sample]) -> Option<(u8, Vec<i64>)> {
    samples.first()?;
    let mut k = 0u8;
    let mut ms = Vec::with_capacity(samples.len());
    // `ms[..stale]` were found at a smaller exponent than `k`.
    let mut stale = 0;
    for s in samples {
        let m = loop {
            if let Some(m) = mantissa(s.value, k) {
                break m;
            }
            if k == DECIMAL_EXPONENT_MAX {
                return None;
            }
            k += 1;
            stale = ms.len();
        };
        ms.push(m);
    }
    // Usually none: the exponent settles at the first sample. A value that
    // fit a smaller exponent may not fit the final one (`round` can land
    // elsewhere at another scale): then no payload.
    for (m, s) in ms.iter_mut().zip(samples).take(stale) {
        *m = mantissa(s.value, k)?;
    }
    Some((k, ms))
}

/// `common_factor` is the greatest common divisor of the differences of
/// consecutive mantissas (0 when they are all equal).
fn common_factor(ms: &[i64]) -> u64 {
    let mut g = 0u64;
    for pair in ms.windows(2) {
        let (mut a, mut b) = (g, pair[1].abs_diff(pair[0]));
        while b != 0 {
            (a, b) = (b, a % b);
        }
        g = a;
        if g == 1 {
            break;
        }
    }
    g
}

/// `write_payload` writes the decimal payload of `samples`, whose values
/// have mantissas `ms` at exponent `k`; with `scale`, the differences are
/// coded divided by it (the scaled payload, encoding 3).
fn write_payload(samples: &[Sample], k: u8, ms: &[i64], scale: Option<u64>) -> Vec<u8> {
    let mut w = BitWriter::default();
    let t0 = samples[0].timestamp.0;
    let m0 = ms[0];
    w.append_aligned(|bytes| {
        put_varint(bytes, t0);
        bytes.push(k);
        if let Some(g) = scale {
            put_uvarint(bytes, g);
        }
        put_varint(bytes, m0);
    });
    let mut values = ValueWriter {
        m: m0,
        // g <= 2^54, a difference of two mantissas.
        g: scale.map_or(1, |g| g as i64),
        e: 0,
        width: 0,
    };
    let (mut t, mut delta) = (t0, 0i64);
    for (i, (s, &m)) in samples.iter().zip(ms).enumerate().skip(1) {
        let d = s.timestamp.0.wrapping_sub(t);
        if i == 1 {
            w.append_aligned(|bytes| put_uvarint(bytes, d as u64));
        } else {
            write_dod(&mut w, d.wrapping_sub(delta));
        }
        values.write(&mut w, m);
        t = s.timestamp.0;
        delta = d;
    }
    w.bytes().to_vec()
}

/// `encode_decimal` returns the decimal payload of `samples` (strictly
/// increasing timestamps, as a chunk holds them), or `None` when some value
/// is not a decimal with at most [`DECIMAL_EXPONENT_MAX`] digits after the
/// point and a mantissa within `±2^53`, or when there are no samples. The
/// smallest exponent that fits every value is used.
pub fn encode_decimal(samples: &[Sample]) -> Option<Vec<u8>> {
    let (k, ms) = mantissas(samples)?;
    Some(write_payload(samples, k, &ms, None))
}

/// `encode_scaled_decimal` returns the scaled decimal payload of `samples`
/// (record encoding 3): as [`encode_decimal`], and the differences of
/// consecutive mantissas are coded divided by their greatest common
/// divisor, which the payload carries. `None` when `encode_decimal` would
/// refuse, or when that divisor is below 2 (a plain decimal payload is then
/// smaller).
///
/// Many gauges move in fixed steps: memory in 4 KiB pages, clock
/// frequencies in MHz, sizes in sectors. Their plain decimal payload pays
/// for the step's bits on every change; this one pays for the step once.
pub fn encode_scaled_decimal(samples: &[Sample]) -> Option<Vec<u8>> {
    let (k, ms) = mantissas(samples)?;
    let g = common_factor(&ms);
    (g >= 2).then(|| write_payload(samples, k, &ms, Some(g)))
}

/// `encode_compact` is the smallest decimal payload of `samples` with its
/// record encoding: scaled when the mantissa differences share a factor and
/// that is smaller, plain otherwise; `None` as for [`encode_decimal`].
pub(crate) fn encode_compact(samples: &[Sample]) -> Option<(u8, Vec<u8>)> {
    let (k, ms) = mantissas(samples)?;
    let plain = write_payload(samples, k, &ms, None);
    let g = common_factor(&ms);
    if g >= 2 {
        let scaled = write_payload(samples, k, &ms, Some(g));
        if scaled.len() < plain.len() {
            return Some((crate::ENCODING_DECIMAL_SCALED, scaled));
        }
    }
    Some((crate::ENCODING_DECIMAL, plain))
}

/// `SCALE_MAX` bounds a scaled payload's divisor: it divides a difference
/// of two mantissas, so it is at most `2^54`.
const SCALE_MAX: u64 = 1 << 54;

payload_iter!(
    /// `DecimalIter` decodes `num_samples` samples from a decimal payload.
    DecimalIter,
    DecimalValues<false>
);

payload_iter!(
    /// `ScaledDecimalIter` decodes `num_samples` samples from a scaled
    /// decimal payload (record encoding 3).
    ScaledDecimalIter,
    DecimalValues<true>
);

/// `DecimalValues` is the decimal value decoder's state: exponent, the
/// divisor differences are coded by (`SCALED`; 1 otherwise), last
/// mantissa, last difference and current width.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DecimalValues<const SCALED: bool> {
    k: u8,
    g: i64,
    m: i64,
    d: i64,
    width: u32,
}

impl<const SCALED: bool> ValueCodec for DecimalValues<SCALED> {
    const START: DecimalValues<SCALED> = DecimalValues {
        k: 0,
        g: 1,
        m: 0,
        d: 0,
        width: 0,
    };

    fn read_first(&mut self, rd: &mut Reader<'_>, rest: &[u8]) -> Result<(), ChunkError> {
        self.k = rd.u8().ok_or(ChunkError::Truncated)?;
        if self.k > DECIMAL_EXPONENT_MAX {
            return Err(ChunkError::Malformed("decimal exponent above 15"));
        }
        if SCALED {
            let after = rest.get(rd.position()..).unwrap_or(&[]);
            let g = rd.uvarint().ok_or_else(|| varint_error(after))?;
            if !(2..=SCALE_MAX).contains(&g) {
                return Err(ChunkError::Malformed("decimal scale outside 2..=2^54"));
            }
            self.g = g as i64;
        }
        let after = rest.get(rd.position()..).unwrap_or(&[]);
        self.m = rd.varint().ok_or_else(|| varint_error(after))?;
        Ok(())
    }

    /// Decodes one mantissa difference.
    #[inline(always)]
    fn read_next(&mut self, r: &mut BitReader<'_>) -> Result<(), ChunkError> {
        if r.valid() < 8 {
            r.refill();
        }
        let w = r.peek();
        if w >> 63 != 0 {
            if (w >> 62) & 1 == 0 {
                r.consume(2);
                if self.width == 0 {
                    return Err(ChunkError::Malformed(
                        "value reuses a delta width before one was set",
                    ));
                }
            } else {
                self.width = ((w >> 56) & 63) as u32 + 1;
                r.consume(8);
            }
            let e = unzigzag(r.read_bits(self.width));
            self.d = if SCALED { e.wrapping_mul(self.g) } else { e };
        } else {
            r.consume(1);
        }
        // Corrupt input can make any mantissa; the conversion never fails.
        self.m = self.m.wrapping_add(self.d);
        Ok(())
    }

    #[inline(always)]
    fn repeat(&mut self) {
        self.m = self.m.wrapping_add(self.d);
    }

    #[inline(always)]
    fn value(&self) -> f64 {
        value_of(self.m, self.k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample::new(1_000 + 15_000 * i as i64, v))
            .collect()
    }

    fn round_trip(values: &[f64]) -> Option<Vec<u64>> {
        let s = samples(values);
        let p = encode_decimal(&s)?;
        let got: Vec<Sample> = DecimalIter::new(&p, s.len())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got.len(), s.len());
        for (a, b) in got.iter().zip(&s) {
            assert_eq!(a.timestamp, b.timestamp);
        }
        Some(got.iter().map(|x| x.value.to_bits()).collect())
    }

    /// The exponent search as first written: find the exponent over all
    /// values, then every mantissa at it.
    fn mantissas_two_passes(samples: &[Sample]) -> Option<(u8, Vec<i64>)> {
        samples.first()?;
        let mut k = 0u8;
        for s in samples {
            while mantissa(s.value, k).is_none() {
                if k == DECIMAL_EXPONENT_MAX {
                    return None;
                }
                k += 1;
            }
        }
        let ms = samples
            .iter()
            .map(|s| mantissa(s.value, k))
            .collect::<Option<Vec<i64>>>()?;
        Some((k, ms))
    }

    proptest::proptest! {
        /// One pass finds what two did: values with 0 to 17 digits after
        /// the point (past the 15 allowed), in any order, and non-decimals.
        #[test]
        fn one_pass_finds_the_exponent_and_mantissas_two_passes_did(
            raw in proptest::collection::vec((-1_000_000_000i64..1_000_000_000, 0u32..18), 1..20),
            odd in proptest::option::of(proptest::num::f64::ANY),
        ) {
            let mut values: Vec<f64> = raw.iter().map(|&(m, k)| m as f64 / 10f64.powi(k as i32)).collect();
            values.extend(odd);
            let s = samples(&values);
            proptest::prop_assert_eq!(mantissas(&s), mantissas_two_passes(&s));
        }
    }

    #[test]
    fn decimals_round_trip_bit_exactly() {
        for values in [
            vec![0.0, 1.0, 2.0, 3.0],
            vec![0.29, 0.3, 12_345.67, -0.01],
            vec![1.5e9, 1.5e9 + 4096.0, 1.5e9],
            vec![0.000_001, 123.456_789],
            vec![9_007_199_254_740_992.0, -9_007_199_254_740_992.0],
        ] {
            let want: Vec<u64> = values.iter().map(|v: &f64| v.to_bits()).collect();
            assert_eq!(round_trip(&values), Some(want), "{values:?}");
        }
    }

    #[test]
    fn non_decimals_are_refused() {
        for v in [
            f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0002),
            f64::INFINITY,
            -0.0,
            1.0 / 3.0,
            1e300,
            0.1 + 0.2,
        ] {
            assert_eq!(encode_decimal(&samples(&[1.0, v])), None, "{v:?}");
        }
        assert_eq!(encode_decimal(&[]), None);
    }

    #[test]
    fn any_short_decimal_qualifies() {
        // π's shortest representation has 15 digits after the point.
        let values = [std::f64::consts::PI, 2.5];
        let want: Vec<u64> = values.iter().map(|v: &f64| v.to_bits()).collect();
        assert_eq!(round_trip(&values), Some(want));
    }

    #[test]
    fn the_smallest_exponent_is_used() {
        let p = encode_decimal(&samples(&[3.0, 4.5, 4.25])).unwrap();
        // t0 = 1000 is a 2-byte varint; the exponent byte follows.
        assert_eq!(p[2], 2);
    }

    #[test]
    fn a_counter_costs_a_bit_per_sample_at_a_constant_rate() {
        let values: Vec<f64> = (0..120).map(|i| 1e9 + 0.25 * i as f64).collect();
        let p = encode_decimal(&samples(&values)).unwrap();
        // Head bytes, one width header, then 1 bit of time and 1 of value.
        assert!(p.len() <= 8 + 3 + 2 + 30 + 2, "{} bytes", p.len());
    }
}
