//! Seeded randomness.

/// `DetRng` is a small, fast, seedable generator (xoshiro256** seeded
/// through SplitMix64). Its output for a given seed is fixed forever:
/// benchmarks, the simulator and randomized tests rely on that to be
/// reproducible, so the algorithm is written here rather than taken from a
/// crate whose stream might change between versions.
#[derive(Clone, Debug)]
pub struct DetRng {
    s: [u64; 4],
}

impl DetRng {
    /// `new` seeds the generator; every seed (0 included) is valid.
    pub fn new(seed: u64) -> DetRng {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        DetRng {
            s: [next(), next(), next(), next()],
        }
    }

    /// `fork` derives an independent generator, e.g. one per series, so
    /// that adding a consumer does not shift everyone else's stream.
    pub fn fork(&mut self, salt: u64) -> DetRng {
        DetRng::new(self.next_u64() ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// `next_u64` returns the next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// `below` returns a value uniformly in `0..n` (`n > 0`), using
    /// Lemire's multiply-shift; a zero `n` yields 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// `range_i64` returns a value uniformly in `lo..=hi`.
    pub fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi as i128 - lo as i128 + 1) as u128;
        let r = (u128::from(self.next_u64()) * span) >> 64;
        (lo as i128 + r as i128) as i64
    }

    /// `unit_f64` returns a float uniformly in `[0, 1)` with 53 random bits.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `chance` is true with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit_f64() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_pinned() {
        // Changing these values breaks every recorded seed: don't.
        let mut r = DetRng::new(0);
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(got, PINNED_SEED0);
    }

    const PINNED_SEED0: [u64; 3] = [
        11091344671253066420,
        13793997310169335082,
        1900383378846508768,
    ];

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let a: Vec<u64> = (0..8)
            .scan(DetRng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..8)
            .scan(DetRng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..8)
            .scan(DetRng::new(8), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn bounded_draws_stay_in_range() {
        let mut r = DetRng::new(1);
        for _ in 0..10_000 {
            assert!(r.below(7) < 7);
            let x = r.range_i64(-3, 3);
            assert!((-3..=3).contains(&x));
            let u = r.unit_f64();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(r.range_i64(i64::MIN, i64::MIN), i64::MIN);
        let _ = r.range_i64(i64::MIN, i64::MAX);
    }
}
