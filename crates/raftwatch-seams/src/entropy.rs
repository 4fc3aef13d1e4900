//! [`entropy_seed`]: the seam for a seed that must differ between runs.

use std::sync::atomic::{AtomicU64, Ordering};

static CALLS: AtomicU64 = AtomicU64::new(0);

/// `entropy_seed` returns a seed that differs between processes and between
/// calls: the wall clock in nanoseconds, the process id and a per-process
/// call counter, mixed. For identifiers that must never collide across
/// clients (generated request ids); never for anything the simulator must
/// reproduce, which passes explicit seeds instead.
pub fn entropy_seed() -> u64 {
    // The seam: the one permitted read of the real clock for seeding.
    #[allow(clippy::disallowed_methods)]
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ n.rotate_left(17);
    // splitmix64 finaliser: nearby inputs give unrelated outputs.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_differ_between_calls() {
        let a: std::collections::BTreeSet<u64> = (0..1000).map(|_| super::entropy_seed()).collect();
        assert_eq!(a.len(), 1000);
    }
}
