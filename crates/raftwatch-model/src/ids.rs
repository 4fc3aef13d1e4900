//! Identifier and unit newtypes. No bare integer crosses a crate boundary
//! when it means a timestamp, a series or a hash.

use std::fmt;

/// `TimestampMs` is a point in time in milliseconds since the Unix epoch,
/// as Prometheus uses. It may be negative (before 1970) and covers the whole
/// `i64` range; arithmetic on it saturates rather than wrapping.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct TimestampMs(pub i64);

impl TimestampMs {
    /// `MIN` is the earliest representable timestamp.
    pub const MIN: TimestampMs = TimestampMs(i64::MIN);
    /// `MAX` is the latest representable timestamp.
    pub const MAX: TimestampMs = TimestampMs(i64::MAX);

    /// `saturating_sub_ms` returns `self - ms`, clamped to the `i64` range.
    pub fn saturating_sub_ms(self, ms: i64) -> TimestampMs {
        TimestampMs(self.0.saturating_sub(ms))
    }

    /// `saturating_add_ms` returns `self + ms`, clamped to the `i64` range.
    pub fn saturating_add_ms(self, ms: i64) -> TimestampMs {
        TimestampMs(self.0.saturating_add(ms))
    }
}

impl fmt::Debug for TimestampMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

impl fmt::Display for TimestampMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `SeriesRef` is an engine-local, dense identifier for a series, assigned
/// in creation order and never reused within one engine's lifetime. It is
/// not stable across shards or snapshots of different engines; the stable
/// identity of a series is its label set (and [`SeriesHash`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct SeriesRef(pub u64);

impl fmt::Debug for SeriesRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "series#{}", self.0)
    }
}

impl fmt::Display for SeriesRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `SeriesHash` is the stable 64-bit hash of a canonical label set:
/// XXH3-64 with seed 0 over the canonical encoding described in
/// [`crate::labels::Labels::hash`]. It never changes between versions:
/// shard placement depends on it. Two different label sets may share a
/// hash; identity is always decided by comparing the label sets.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct SeriesHash(pub u64);

impl fmt::Debug for SeriesHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for SeriesHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
