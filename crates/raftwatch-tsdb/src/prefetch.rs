//! A hint to the CPU to start loading memory that will be read soon.
//!
//! Appending a scrape touches every series once, in an order unrelated to
//! where their heads live, so each sample would otherwise wait for one or
//! two cache misses (the series, then the tail of its head chunk). Asking
//! for them a few samples ahead overlaps those waits.

/// `prefetch` asks for the cache line holding `p`. It is only a hint: it
/// never faults, whatever `p` points at (dangling, null or unmapped), and
/// changes no program state, which is why it may take any address.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: `prefetcht0` reads no memory architecturally and cannot fault
    // (Intel SDM, PREFETCHh: "does not affect program behavior"); SSE is
    // part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
