//! The head-memory figure the benchmark reports (`Stats::head_bytes`) is an
//! estimate from structure sizes; this checks it against what the
//! allocator actually hands out on this thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use raftwatch_model::{Labels, Sample};
use raftwatch_storage::MemStore;
use raftwatch_tsdb::{Tsdb, TsdbConfig};

use crate::labels;

/// Counts live heap bytes per thread, so tests running in parallel threads
/// do not disturb each other's figures.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: delegates every call to the system allocator unchanged; the
// counter is a const-initialised thread-local `Cell`, which never
// allocates, so the allocator does not recurse.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.with(|l| l.set(l.get() + layout.size() as isize));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.with(|l| l.set(l.get() - layout.size() as isize));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.with(|l| l.get())
}

#[test]
fn head_bytes_estimate_is_within_15_percent_of_the_allocator_count() {
    let before = live();
    let mut db = Tsdb::open(MemStore::new(), TsdbConfig::default()).unwrap();
    for round in 0..150i64 {
        let batch: Vec<(Labels, Vec<Sample>)> = (0..2_000)
            .map(|i| {
                let host = format!("host-{}", i / 100);
                let metric = format!("metric_{}", i % 100);
                let l = labels(&[
                    ("__name__", metric.as_str()),
                    ("instance", host.as_str()),
                    ("job", "node"),
                ]);
                (
                    l,
                    vec![Sample::new(round * 15_000, (i as f64) * 1.5 + round as f64)],
                )
            })
            .collect();
        db.append_series(&batch).unwrap();
    }
    let measured = (live() - before) as f64;
    let estimated = db.stats().head_bytes as f64;
    let ratio = estimated / measured;
    eprintln!("head bytes: estimate {estimated}, allocator {measured}, ratio {ratio:.3}");
    assert!(
        (0.85..=1.15).contains(&ratio),
        "estimate {estimated} vs allocator {measured} (ratio {ratio:.2})"
    );
}
