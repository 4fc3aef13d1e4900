//! Ranges of the series-hash space, as shards own them.
//!
//! The shard map gives each shard one contiguous range of the 64-bit hash
//! space, inclusive at both ends (so the last shard can own `u64::MAX`).
//! The node routing a write (`raftwatch-control`'s `shard_for_hash`) and the
//! client library routing it straight to a shard leader both decide
//! ownership with [`HashRange::contains`], so they cannot disagree.

use crate::SeriesHash;

/// `HashRange` is the inclusive range `[start, end]` of series hashes.
/// Empty when `start > end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashRange {
    /// First hash in the range (inclusive).
    pub start: u64,
    /// Last hash in the range (inclusive).
    pub end: u64,
}

impl HashRange {
    /// `new` is the range `[start, end]`, both ends inclusive.
    pub fn new(start: u64, end: u64) -> HashRange {
        HashRange { start, end }
    }

    /// `contains` is whether `hash` lies in `[start, end]`.
    pub fn contains(&self, hash: SeriesHash) -> bool {
        self.start <= hash.0 && hash.0 <= self.end
    }

    /// `is_empty` is whether the range holds no hash (`start > end`).
    pub fn is_empty(&self) -> bool {
        self.start > self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_are_inclusive() {
        let r = HashRange::new(10, 20);
        assert!(!r.contains(SeriesHash(9)));
        assert!(r.contains(SeriesHash(10)));
        assert!(r.contains(SeriesHash(20)));
        assert!(!r.contains(SeriesHash(21)));
        assert!(HashRange::new(0, u64::MAX).contains(SeriesHash(u64::MAX)));
        assert!(HashRange::new(5, 4).is_empty());
        assert!(!HashRange::new(5, 4).contains(SeriesHash(5)));
        assert!(!HashRange::new(5, 5).is_empty());
    }
}
