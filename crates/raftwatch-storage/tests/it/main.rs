//! Integration tests for raftwatch-storage: the conformance suite over
//! [`MemStore`], the reference in-memory engine.

use raftwatch_storage::conformance::{self, Harness};
use raftwatch_storage::{KvStore, MemStore, WriteBatch};

/// `MemHarness` reopens by cloning the handle; a crash discards everything
/// since the last flush, so every unflushed batch is absent afterwards.
#[derive(Debug, Default)]
struct MemHarness {
    store: MemStore,
}

impl Harness for MemHarness {
    type Store = MemStore;

    fn open(&mut self) -> MemStore {
        self.store.clone()
    }

    fn crash(&mut self, store: MemStore) {
        store.crash();
    }
}

#[test]
fn mem_store_passes_the_conformance_suite() {
    conformance::run_all(MemHarness::default);
}

#[test]
fn mem_store_random_batches_over_several_seeds() {
    for seed in 1..=8 {
        conformance::check_random_batches_match_model(&mut MemHarness::default(), seed);
    }
}

#[test]
fn mem_store_loses_every_unflushed_batch_on_crash() {
    let mut harness = MemHarness::default();
    let store = harness.open();
    let mut batch = WriteBatch::new();
    batch.put(b"flushed".to_vec(), b"1".to_vec());
    store.write(batch).unwrap();
    store.flush().unwrap();
    for i in 0u8..10 {
        let mut batch = WriteBatch::new();
        batch.put(vec![b'u', i], vec![i]);
        store.write(batch).unwrap();
    }
    harness.crash(store);
    let store = harness.open();
    let all: Vec<_> = store.scan(&[], None).map(Result::unwrap).collect();
    assert_eq!(all, vec![(b"flushed".to_vec(), b"1".to_vec())]);
}
