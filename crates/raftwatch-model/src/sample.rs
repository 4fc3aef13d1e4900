//! Samples and the staleness marker.

use crate::ids::TimestampMs;

/// `STALE_NAN_BITS` is the bit pattern of Prometheus' staleness marker, a
/// signalling-free NaN with payload 2. It must round-trip bit-exactly
/// through every encoding: other NaNs are ordinary values.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// `stale_nan` returns the staleness marker as an `f64`.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// `is_stale_nan` reports whether `v` is exactly the staleness marker
/// (compared by bits, since every NaN compares unequal).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// `Sample` is one float observation of a series.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When the value was observed, in milliseconds.
    pub timestamp: TimestampMs,
    /// The value; any `f64`, NaN payloads included.
    pub value: f64,
}

impl Sample {
    /// `new` builds a sample from raw milliseconds and a value.
    pub fn new(timestamp_ms: i64, value: f64) -> Sample {
        Sample {
            timestamp: TimestampMs(timestamp_ms),
            value,
        }
    }

    /// `bit_eq` compares timestamp and the value's bits: two NaNs with the
    /// same payload are equal, `0.0` and `-0.0` are not. This is the
    /// equality the duplicate-sample policy and all round-trip tests use.
    pub fn bit_eq(&self, other: &Sample) -> bool {
        self.timestamp == other.timestamp && self.value.to_bits() == other.value.to_bits()
    }
}

impl PartialEq for Sample {
    /// Bitwise equality, see [`Sample::bit_eq`].
    fn eq(&self, other: &Sample) -> bool {
        self.bit_eq(other)
    }
}

impl Eq for Sample {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_marker_is_recognised_and_distinct_from_other_nans() {
        assert!(is_stale_nan(stale_nan()));
        assert!(stale_nan().is_nan());
        assert!(!is_stale_nan(f64::NAN));
        assert!(!is_stale_nan(1.0));
    }

    #[test]
    fn bit_equality_distinguishes_signed_zero_and_nan_payloads() {
        assert_eq!(Sample::new(1, f64::NAN), Sample::new(1, f64::NAN));
        assert_ne!(Sample::new(1, 0.0), Sample::new(1, -0.0));
        assert_ne!(Sample::new(1, stale_nan()), Sample::new(1, f64::NAN));
        assert_ne!(Sample::new(1, 1.0), Sample::new(2, 1.0));
    }
}
