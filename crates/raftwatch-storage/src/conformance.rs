//! `conformance`: one suite that every [`KvStore`] engine runs, in the style
//! of TiKV's `engine_traits_tests`.
//!
//! An engine provides a [`Harness`] (a way to open, crash and reopen the same
//! storage) and calls [`run_all`], or calls the individual `check_*`
//! functions from separate `#[test]`s. Every check panics with a descriptive
//! message on a contract violation.
//!
//! The randomized check, [`check_random_batches_match_model`], takes its seed
//! from the environment variable named by [`SEED_ENV_VAR`] (decimal or
//! `0x`-prefixed hex) and prints the seed it used; without the variable it
//! uses [`DEFAULT_SEED`], so runs are reproducible.

use std::collections::{BTreeMap, BTreeSet};

use crate::{KvPair, KvStore, WriteBatch, prefix_end};

/// `Harness` is a way to open the same underlying storage repeatedly.
pub trait Harness {
    /// `Store` is the engine under test.
    type Store: KvStore;

    /// `open` opens (or reopens) the storage this harness owns. At most one
    /// store from a harness is open at a time: the suite always hands the
    /// previous one to [`Harness::crash`] before opening again.
    fn open(&mut self) -> Self::Store;

    /// `crash` simulates process death: the store is dropped without a
    /// flush. Engines may lose anything written since the last flush,
    /// nothing before it, and each lost batch must be lost entirely.
    fn crash(&mut self, store: Self::Store);
}

/// `SEED_ENV_VAR` names the environment variable that seeds the randomized
/// check in [`run_all`].
pub const SEED_ENV_VAR: &str = "RAFTWATCH_STORAGE_SEED";

/// `DEFAULT_SEED` seeds the randomized check when [`SEED_ENV_VAR`] is unset.
pub const DEFAULT_SEED: u64 = 0x5eed_0f57_09a6;

/// `seed_from_env` returns the seed in [`SEED_ENV_VAR`], or [`DEFAULT_SEED`]
/// when it is unset. Panics if the variable is set but is not a `u64`.
pub fn seed_from_env() -> u64 {
    match std::env::var(SEED_ENV_VAR) {
        Err(_) => DEFAULT_SEED,
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("{SEED_ENV_VAR}={text:?} is not a u64: {e}"))
        }
    }
}

/// A named check, as [`run_all`] runs it.
type Check<H> = (&'static str, fn(&mut H));

/// `run_all` runs every conformance check, each on fresh storage from
/// `new_harness`. Panics (assert) with a descriptive message on a violation.
pub fn run_all<H: Harness>(mut new_harness: impl FnMut() -> H) {
    let checks: [Check<H>; 13] = [
        ("get_put_delete", check_get_put_delete),
        ("batch_ops_apply_in_order", check_batch_ops_apply_in_order),
        ("scan_order_and_bounds", check_scan_order_and_bounds),
        ("prefix_scan", check_prefix_scan),
        ("scan_many_pages", check_scan_many_pages),
        (
            "binary_keys_and_empty_values",
            check_binary_keys_and_empty_values,
        ),
        ("large_values", check_large_values),
        ("flush_crash_reopen", check_flush_crash_reopen),
        (
            "unflushed_batches_atomic_across_crash",
            check_unflushed_batches_atomic_across_crash,
        ),
        ("random_batches_match_model", |h| {
            check_random_batches_match_model(h, seed_from_env())
        }),
        ("size_on_disk_after_flush", check_size_on_disk_after_flush),
        ("blobs_read_by_range", check_blobs_read_by_range),
        (
            "blob_durability_across_crash",
            check_blob_durability_across_crash,
        ),
    ];
    for (name, check) in checks {
        eprintln!("storage conformance: {name}");
        check(&mut new_harness());
    }
}

// ---------------------------------------------------------------------------
// Helpers.

fn put<S: KvStore>(store: &S, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put(key, value);
    store.write(batch).expect("write of a one-put batch failed");
}

fn delete<S: KvStore>(store: &S, key: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.delete(key);
    store
        .write(batch)
        .expect("write of a one-delete batch failed");
}

fn get<S: KvStore>(store: &S, key: &[u8]) -> Option<Vec<u8>> {
    store
        .get(key)
        .unwrap_or_else(|e| panic!("get({key:?}) failed: {e}"))
}

fn flush<S: KvStore>(store: &S) {
    store.flush().expect("flush failed");
}

fn scan<S: KvStore>(store: &S, start: &[u8], end: Option<&[u8]>) -> Vec<KvPair> {
    store
        .scan(start, end)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("scan({start:?}, {end:?}) failed: {e}"))
}

fn keys_of(pairs: &[KvPair]) -> Vec<Vec<u8>> {
    pairs.iter().map(|(k, _)| k.clone()).collect()
}

fn crash_and_reopen<H: Harness>(harness: &mut H, store: H::Store) -> H::Store {
    harness.crash(store);
    harness.open()
}

/// The entries of `model` in `[start, end)`, in order.
fn model_range(
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
    start: &[u8],
    end: Option<&[u8]>,
) -> Vec<KvPair> {
    model
        .iter()
        .filter(|(k, _)| k.as_slice() >= start && end.is_none_or(|end| k.as_slice() < end))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Asserts that `store` holds exactly `model`, comparing a full scan and a
/// `get` of every key. Compares lengths first so a mismatch of large values
/// does not print megabytes.
fn assert_store_is<S: KvStore>(store: &S, model: &BTreeMap<Vec<u8>, Vec<u8>>, context: &str) {
    let actual = scan(store, &[], None);
    let expected = model_range(model, &[], None);
    if actual != expected {
        let actual_keys: BTreeSet<_> = keys_of(&actual).into_iter().collect();
        let expected_keys: BTreeSet<_> = model.keys().cloned().collect();
        let missing: Vec<_> = expected_keys.difference(&actual_keys).take(5).collect();
        let extra: Vec<_> = actual_keys.difference(&expected_keys).take(5).collect();
        let differing: Vec<_> = actual
            .iter()
            .filter(|(k, v)| model.get(k).is_some_and(|m| m != v))
            .map(|(k, v)| (k, v.len(), model.get(k).map(Vec::len)))
            .take(5)
            .collect();
        panic!(
            "{context}: full scan differs from the model: {} entries vs {} expected; \
             missing (first 5) {missing:?}; unexpected {extra:?}; \
             differing values (key, len, expected len) {differing:?}; \
             or the scan is out of order",
            actual.len(),
            expected.len(),
        );
    }
    for (key, value) in model {
        let got = get(store, key);
        assert!(
            got.as_ref() == Some(value),
            "{context}: get({key:?}) returned {:?} bytes, expected {} bytes (or different content)",
            got.map(|v| v.len()),
            value.len()
        );
    }
}

/// SplitMix64: a tiny deterministic generator, so the suite needs no
/// dependency and no ambient randomness.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n`; `n` must be positive.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `1/n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

// ---------------------------------------------------------------------------
// Checks.

/// `check_get_put_delete`: a put is visible to `get`, an overwrite replaces
/// it, a delete removes it, deleting an absent key succeeds, and a missing
/// key reads as `None`.
pub fn check_get_put_delete<H: Harness>(harness: &mut H) {
    let store = harness.open();
    assert_eq!(get(&store, b"k"), None, "fresh store has a value for k");
    put(&store, b"k", b"v1");
    assert_eq!(get(&store, b"k"), Some(b"v1".to_vec()), "put not visible");
    put(&store, b"k", b"v2");
    assert_eq!(get(&store, b"k"), Some(b"v2".to_vec()), "overwrite lost");
    put(&store, b"other", b"o");
    delete(&store, b"k");
    assert_eq!(get(&store, b"k"), None, "delete not visible");
    assert_eq!(
        get(&store, b"other"),
        Some(b"o".to_vec()),
        "delete hit another key"
    );
    delete(&store, b"never-written");
    store
        .write(WriteBatch::new())
        .expect("writing an empty batch failed");
    assert_eq!(get(&store, b"k"), None);
    harness.crash(store);
}

/// `check_batch_ops_apply_in_order`: operations in one batch apply in
/// order, so the later operation on the same key wins.
pub fn check_batch_ops_apply_in_order<H: Harness>(harness: &mut H) {
    let store = harness.open();
    put(&store, b"b", b"old-b");
    put(&store, b"d", b"old-d");

    let mut batch = WriteBatch::new();
    batch.put(b"a".to_vec(), b"1".to_vec());
    batch.put(b"a".to_vec(), b"2".to_vec()); // put then put: last wins
    batch.delete(b"b".to_vec());
    batch.put(b"b".to_vec(), b"new-b".to_vec()); // delete then put: present
    batch.put(b"c".to_vec(), b"3".to_vec());
    batch.delete(b"c".to_vec()); // put then delete: absent
    batch.delete(b"d".to_vec()); // plain delete of an old key
    store.write(batch).expect("write failed");

    let expected: BTreeMap<Vec<u8>, Vec<u8>> = [
        (b"a".to_vec(), b"2".to_vec()),
        (b"b".to_vec(), b"new-b".to_vec()),
    ]
    .into_iter()
    .collect();
    assert_store_is(&store, &expected, "after an ordered batch");
    flush(&store);
    let store = crash_and_reopen(harness, store);
    assert_store_is(
        &store,
        &expected,
        "ordered batch after flush, crash, reopen",
    );
    harness.crash(store);
}

/// `check_scan_order_and_bounds`: scans yield ascending keys within
/// `[start, end)`; `end = None` is unbounded; bounds need not be stored
/// keys; empty and reversed ranges yield nothing (and do not panic).
pub fn check_scan_order_and_bounds<H: Harness>(harness: &mut H) {
    let store = harness.open();
    let mut model = BTreeMap::new();
    // Written out of order, across several batches.
    for chunk in [
        &["m", "c", "x"][..],
        &["a", "q"][..],
        &["k", "b", "z", "mm"][..],
    ] {
        let mut batch = WriteBatch::new();
        for key in chunk {
            let value = format!("value-of-{key}").into_bytes();
            batch.put(key.as_bytes(), value.clone());
            model.insert(key.as_bytes().to_vec(), value);
        }
        store.write(batch).expect("write failed");
    }

    let cases: [(&[u8], Option<&[u8]>); 12] = [
        (b"", None),
        (b"a", None),
        (b"c", Some(b"q")),   // start included, end excluded
        (b"bb", Some(b"mn")), // bounds that are not keys
        (b"m", Some(b"mm")),  // exactly one key
        (b"m", Some(b"m")),   // empty: start == end
        (b"q", Some(b"c")),   // empty: start > end
        (b"zz", None),        // past the last key
        (b"", Some(b"a")),    // before the first key
        (b"", Some(b"b")),
        (b"mm", None),
        (b"z", Some(b"zzz")),
    ];
    for (start, end) in cases {
        let actual = scan(&store, start, end);
        let expected = model_range(&model, start, end);
        assert_eq!(
            actual, expected,
            "scan({start:?}, {end:?}) returned the wrong entries or order"
        );
    }
    // A delete disappears from scans.
    delete(&store, b"k");
    model.remove(&b"k"[..]);
    assert_eq!(
        scan(&store, b"", None),
        model_range(&model, b"", None),
        "delete not seen by scan"
    );
    harness.crash(store);
}

/// `check_prefix_scan`: `scan(prefix, prefix_end(prefix))` yields exactly
/// the keys starting with `prefix`, including prefixes ending in 0xFF and an
/// all-0xFF prefix (unbounded end).
pub fn check_prefix_scan<H: Harness>(harness: &mut H) {
    let store = harness.open();
    let keys: [&[u8]; 12] = [
        &[0x00],
        &[0x01],
        &[0x01, 0x00],
        &[0x01, 0xff],
        &[0x01, 0xff, 0x00],
        &[0x01, 0xff, 0xff],
        &[0x02],
        &[0x02, 0x00],
        &[0xfe, 0xff, 0xff],
        &[0xff],
        &[0xff, 0xff],
        &[0xff, 0xff, 0x01],
    ];
    let mut batch = WriteBatch::new();
    for key in keys {
        batch.put(key, key.to_vec());
    }
    store.write(batch).expect("write failed");

    let prefixes: [&[u8]; 7] = [
        &[0x01],
        &[0x01, 0xff],
        &[0x02],
        &[0xff],
        &[0xff, 0xff],
        &[0x03],
        &[],
    ];
    for prefix in prefixes {
        let end = prefix_end(prefix);
        let actual = keys_of(&scan(&store, prefix, end.as_deref()));
        let expected: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| k.starts_with(prefix))
            .map(|k| k.to_vec())
            .collect();
        assert_eq!(actual, expected, "prefix scan of {prefix:?} (end {end:?})");
    }
    harness.crash(store);
}

/// `check_scan_many_pages`: a scan over thousands of keys (more than any
/// sensible internal page) returns every key once, in order, including a
/// range that starts and ends mid-way.
pub fn check_scan_many_pages<H: Harness>(harness: &mut H) {
    const KEYS_COUNT: u32 = 3000;
    let store = harness.open();
    let mut model = BTreeMap::new();
    // Big-endian u32 keys sort numerically; insert them in a scrambled order.
    for chunk_start in (0..KEYS_COUNT).step_by(500) {
        let mut batch = WriteBatch::new();
        for i in chunk_start..chunk_start + 500 {
            let n = i * 7 % KEYS_COUNT; // a permutation: gcd(7, 3000) = 1
            let key = [b"page/".as_slice(), &n.to_be_bytes()].concat();
            let value = n.to_le_bytes().to_vec();
            batch.put(key.clone(), value.clone());
            model.insert(key, value);
        }
        store.write(batch).expect("write failed");
    }
    assert_eq!(
        model.len(),
        KEYS_COUNT as usize,
        "test keys are not distinct"
    );

    let all = scan(&store, b"page/", prefix_end(b"page/").as_deref());
    assert_eq!(
        all.len(),
        KEYS_COUNT as usize,
        "full scan lost or duplicated keys"
    );
    assert_eq!(
        all,
        model_range(&model, b"", None),
        "full scan out of order or wrong"
    );

    let start = [b"page/".as_slice(), &257u32.to_be_bytes()].concat();
    let end = [b"page/".as_slice(), &2100u32.to_be_bytes()].concat();
    let mid = scan(&store, &start, Some(&end));
    assert_eq!(mid.len(), 2100 - 257, "mid-range scan count");
    assert_eq!(
        mid,
        model_range(&model, &start, Some(&end)),
        "mid-range scan"
    );

    // Resuming from the middle of a page after deleting the resume point.
    let pivot = [b"page/".as_slice(), &1000u32.to_be_bytes()].concat();
    delete(&store, &pivot);
    model.remove(&pivot);
    assert_eq!(
        scan(&store, &pivot, None),
        model_range(&model, &pivot, None)
    );
    harness.crash(store);
}

/// `check_binary_keys_and_empty_values`: keys with 0x00 and 0xFF bytes
/// (including the empty key and keys that are prefixes of each other) and
/// empty values round-trip, before and after flush, crash, reopen; an empty
/// value is distinct from an absent key.
pub fn check_binary_keys_and_empty_values<H: Harness>(harness: &mut H) {
    let store = harness.open();
    let entries: [(&[u8], &[u8]); 9] = [
        (b"", b"empty key"),
        (&[0x00], b""),
        (&[0x00, 0x00], &[0x00]),
        (&[0x00, 0xff, 0x00], &[0xff, 0x00, 0xff]),
        (&[0x7f], b""),
        (&[0x80], &[0x80]),
        (&[0xff], &[0xff; 3]),
        (&[0xff, 0xff, 0xff, 0xff], b""),
        (b"text\0with\0nuls", b"v\0"),
    ];
    let mut batch = WriteBatch::new();
    let mut model = BTreeMap::new();
    for (key, value) in entries {
        batch.put(key, value);
        model.insert(key.to_vec(), value.to_vec());
    }
    store.write(batch).expect("write failed");
    assert_eq!(
        get(&store, &[0x00]),
        Some(Vec::new()),
        "empty value read as absent"
    );
    assert_eq!(
        get(&store, &[0x00, 0x01]),
        None,
        "absent key read as present"
    );
    assert_store_is(&store, &model, "binary keys before flush");
    flush(&store);
    let store = crash_and_reopen(harness, store);
    assert_store_is(&store, &model, "binary keys after flush, crash, reopen");
    harness.crash(store);
}

/// `check_large_values`: 1 MiB values round-trip byte-identical, also after
/// flush, crash, reopen, and can be overwritten by small ones.
pub fn check_large_values<H: Harness>(harness: &mut H) {
    const MIB: usize = 1 << 20;
    let mut rng = SplitMix64(0x1a26e);
    let store = harness.open();
    let mut model = BTreeMap::new();
    for i in 0u8..3 {
        // Random bytes: an engine that compresses cannot shrink them.
        let value = rng.bytes(MIB + usize::from(i));
        let key = vec![b'L', i];
        put(&store, &key, &value);
        model.insert(key, value);
    }
    put(&store, b"small", b"s");
    model.insert(b"small".to_vec(), b"s".to_vec());
    assert_store_is(&store, &model, "large values before flush");
    flush(&store);
    let store = crash_and_reopen(harness, store);
    assert_store_is(&store, &model, "large values after flush, crash, reopen");

    put(&store, &[b'L', 0], b"now small");
    model.insert(vec![b'L', 0], b"now small".to_vec());
    delete(&store, &[b'L', 1]);
    model.remove(&[b'L', 1][..]);
    flush(&store);
    let store = crash_and_reopen(harness, store);
    assert_store_is(&store, &model, "large values overwritten, after reopen");
    harness.crash(store);
}

/// `check_flush_crash_reopen`: everything written before a successful
/// flush is there after a crash and reopen, byte-identical, over several
/// generations, and a reopened store accepts further writes.
pub fn check_flush_crash_reopen<H: Harness>(harness: &mut H) {
    let mut rng = SplitMix64(0xf1u64);
    let mut model = BTreeMap::new();
    let mut store = harness.open();
    for generation in 0u32..3 {
        for batch_index in 0u32..10 {
            let mut batch = WriteBatch::new();
            for i in 0u32..50 {
                let key = format!("gen/{:05}", (batch_index * 50 + i) * 7 % 600).into_bytes();
                if rng.one_in(5) {
                    batch.delete(key.clone());
                    model.remove(&key);
                } else {
                    let len = rng.below(300);
                    let value = rng.bytes(len);
                    batch.put(key.clone(), value.clone());
                    model.insert(key, value);
                }
            }
            store.write(batch).expect("write failed");
        }
        flush(&store);
        store = crash_and_reopen(harness, store);
        assert_store_is(
            &store,
            &model,
            &format!("generation {generation}: flushed writes after crash and reopen"),
        );
    }
    harness.crash(store);
}

/// `check_unflushed_batches_atomic_across_crash`: after a crash, everything
/// flushed is present, and each batch written after the last flush is
/// entirely present or entirely absent (which of the two is up to the
/// engine; the contract does not require a prefix of them either).
pub fn check_unflushed_batches_atomic_across_crash<H: Harness>(harness: &mut H) {
    const BATCHES_COUNT: usize = 40;
    const PUTS_PER_BATCH: usize = 8;
    let store = harness.open();
    let mut base = WriteBatch::new();
    for i in 0..BATCHES_COUNT {
        base.put(format!("base/{i:03}").into_bytes(), b"base".to_vec());
    }
    base.put(b"last".to_vec(), b"base".to_vec());
    store.write(base).expect("write failed");
    flush(&store);

    for i in 0..BATCHES_COUNT {
        let mut batch = WriteBatch::new();
        for j in 0..PUTS_PER_BATCH {
            // Values large enough that a batch spans engine buffers.
            let value = format!("{i}/{j}/{}", "x".repeat(4000)).into_bytes();
            batch.put(format!("batch/{i:03}/{j}").into_bytes(), value);
        }
        batch.delete(format!("base/{i:03}").into_bytes());
        batch.put(b"last".to_vec(), i.to_string().into_bytes());
        store.write(batch).expect("write failed");
    }
    let store = crash_and_reopen(harness, store);

    let mut present_count = 0;
    for i in 0..BATCHES_COUNT {
        let puts_present = (0..PUTS_PER_BATCH)
            .filter(|j| {
                let got = get(&store, format!("batch/{i:03}/{j}").as_bytes());
                let expected = format!("{i}/{j}/{}", "x".repeat(4000)).into_bytes();
                match got {
                    None => false,
                    Some(v) if v == expected => true,
                    Some(v) => panic!("batch {i} put {j}: wrong value of {} bytes", v.len()),
                }
            })
            .count();
        let base_deleted = get(&store, format!("base/{i:03}").as_bytes()).is_none();
        let present = puts_present == PUTS_PER_BATCH && base_deleted;
        let absent = puts_present == 0 && !base_deleted;
        assert!(
            present || absent,
            "unflushed batch {i} is torn after a crash: {puts_present}/{PUTS_PER_BATCH} puts \
             present, its delete {}applied",
            if base_deleted { "" } else { "not " }
        );
        present_count += usize::from(present);
    }
    let last = get(&store, b"last").expect("key `last` was flushed but is gone");
    if last != b"base" {
        let i: usize = String::from_utf8_lossy(&last)
            .parse()
            .unwrap_or_else(|_| panic!("key `last` has a value no batch wrote: {last:?}"));
        assert!(
            i < BATCHES_COUNT && get(&store, format!("batch/{i:03}/0").as_bytes()).is_some(),
            "key `last` = {i} but batch {i} is otherwise absent: torn batch"
        );
    }
    eprintln!(
        "storage conformance: {present_count}/{BATCHES_COUNT} unflushed batches survived the crash"
    );
    harness.crash(store);
}

/// `check_random_batches_match_model`: many random batches of puts and
/// deletes over a small pool of binary keys, with random flushes, scans and
/// crashes, compared with a `BTreeMap` model. After a flush-then-crash the
/// store must equal the model exactly. After a crash without a flush, keys
/// untouched since the last flush must hold their flushed value and touched
/// keys one of the values they held since; the model then adopts what the
/// store holds. Prints `seed`; rerun with [`SEED_ENV_VAR`] set to it.
pub fn check_random_batches_match_model<H: Harness>(harness: &mut H, seed: u64) {
    eprintln!("storage conformance: random batches with {SEED_ENV_VAR}={seed}");
    let mut rng = SplitMix64(seed);
    // Short keys biased towards 0x00 and 0xFF so prefixes collide often.
    let mut pool: BTreeSet<Vec<u8>> = BTreeSet::new();
    pool.insert(Vec::new());
    while pool.len() < 64 {
        let len = 1 + rng.below(4);
        let key = (0..len)
            .map(|_| match rng.below(4) {
                0 => 0x00,
                1 => 0xff,
                _ => rng.next_u64() as u8,
            })
            .collect();
        pool.insert(key);
    }
    let pool: Vec<Vec<u8>> = pool.into_iter().collect();

    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut durable = model.clone();
    // Every value (None = deleted) each key took since the last flush.
    let mut since_flush: BTreeMap<Vec<u8>, Vec<Option<Vec<u8>>>> = BTreeMap::new();
    let mut store = harness.open();

    for cycle in 0..12 {
        let context = format!("seed {seed}, cycle {cycle}");
        for _ in 0..(1 + rng.below(40)) {
            let mut batch = WriteBatch::new();
            for _ in 0..(1 + rng.below(12)) {
                let key = pool[rng.below(pool.len())].clone();
                let value = if rng.one_in(3) {
                    batch.delete(key.clone());
                    model.remove(&key);
                    None
                } else {
                    let len = if rng.one_in(20) { 5000 } else { rng.below(40) };
                    let value = rng.bytes(len);
                    batch.put(key.clone(), value.clone());
                    model.insert(key.clone(), value.clone());
                    Some(value)
                };
                since_flush.entry(key).or_default().push(value);
            }
            store.write(batch).expect("write failed");

            if rng.one_in(8) {
                flush(&store);
                durable = model.clone();
                since_flush.clear();
            }
            if rng.one_in(4) {
                let key = &pool[rng.below(pool.len())];
                assert_eq!(
                    get(&store, key),
                    model.get(key).cloned(),
                    "{context}: get({key:?})"
                );
            }
            if rng.one_in(4) {
                let start = pool[rng.below(pool.len())].clone();
                let end = (!rng.one_in(4)).then(|| pool[rng.below(pool.len())].clone());
                assert_eq!(
                    scan(&store, &start, end.as_deref()),
                    model_range(&model, &start, end.as_deref()),
                    "{context}: scan({start:?}, {end:?})"
                );
            }
        }
        assert_store_is(&store, &model, &format!("{context}: before crash"));

        if !rng.one_in(4) {
            flush(&store);
            store = crash_and_reopen(harness, store);
            assert_store_is(
                &store,
                &model,
                &format!("{context}: after flush, crash, reopen"),
            );
        } else {
            store = crash_and_reopen(harness, store);
            let actual: BTreeMap<Vec<u8>, Vec<u8>> = scan(&store, &[], None).into_iter().collect();
            if let Some(stray) = actual.keys().find(|k| pool.binary_search(k).is_err()) {
                panic!("{context}: key {stray:?} was never written but exists after a crash");
            }
            for key in &pool {
                let got = actual.get(key);
                let flushed = durable.get(key);
                match since_flush.get(key) {
                    None => assert_eq!(
                        got, flushed,
                        "{context}: key {key:?} untouched since the last flush changed across a crash"
                    ),
                    Some(values) => assert!(
                        got == flushed || values.iter().any(|v| v.as_ref() == got),
                        "{context}: key {key:?} holds a value it never held since the last flush"
                    ),
                }
            }
            model = actual;
        }
        durable = model.clone();
        since_flush.clear();
    }
    harness.crash(store);
}

/// `check_size_on_disk_after_flush`: `size_on_disk_bytes` is positive once
/// data has been flushed, and still after a crash and reopen.
pub fn check_size_on_disk_after_flush<H: Harness>(harness: &mut H) {
    let store = harness.open();
    let mut batch = WriteBatch::new();
    for i in 0u32..1000 {
        batch.put(i.to_be_bytes().to_vec(), vec![0xa5; 100]);
    }
    store.write(batch).expect("write failed");
    flush(&store);
    let size = store
        .size_on_disk_bytes()
        .expect("size_on_disk_bytes failed");
    assert!(size > 0, "size_on_disk_bytes is 0 after flushing 100 KB");
    let store = crash_and_reopen(harness, store);
    let size = store
        .size_on_disk_bytes()
        .expect("size_on_disk_bytes failed");
    assert!(size > 0, "size_on_disk_bytes is 0 after reopening 100 KB");
    harness.crash(store);
}

fn read_blob<S: KvStore>(store: &S, id: u64, offset: u64, len: usize) -> Vec<u8> {
    store
        .read_blob(id, offset, len)
        .unwrap_or_else(|e| panic!("read_blob({id}, {offset}, {len}) failed: {e}"))
}

fn blob_ids<S: KvStore>(store: &S) -> Vec<u64> {
    store.blob_ids().expect("blob_ids failed")
}

/// `check_blobs_read_by_range`: a blob put in a batch reads back by any
/// range inside it, reads past its end or of a missing blob are
/// corruption errors (not panics), ids list ascending, a put replaces, a
/// delete removes, and blobs never show up among the keys.
pub fn check_blobs_read_by_range<H: Harness>(harness: &mut H) {
    let mut rng = SplitMix64(0xb10b);
    let store = harness.open();
    let big = rng.bytes(300_000);
    let small = rng.bytes(10);
    let mut batch = WriteBatch::new();
    batch.put_blob(7, big.clone());
    batch.put_blob(3, small.clone());
    batch.put_blob(1 << 40, Vec::new());
    batch.put(b"k", b"v");
    store.write(batch).expect("write failed");
    assert_eq!(blob_ids(&store), vec![3, 7, 1 << 40]);
    assert_eq!(read_blob(&store, 7, 0, big.len()), big);
    assert_eq!(read_blob(&store, 7, 123_457, 1000), big[123_457..124_457]);
    assert_eq!(read_blob(&store, 7, big.len() as u64, 0), Vec::<u8>::new());
    assert_eq!(read_blob(&store, 3, 2, 8), small[2..]);
    assert_eq!(read_blob(&store, 1 << 40, 0, 0), Vec::<u8>::new());
    for (id, offset, len) in [
        (7, big.len() as u64, 1),
        (7, 0, big.len() + 1),
        (3, u64::MAX, 2),
        (4, 0, 0),
    ] {
        match store.read_blob(id, offset, len) {
            Err(crate::StorageError::Corruption(m)) => {
                assert!(m.contains(&format!("blob {id}")), "{m}")
            }
            other => panic!("read_blob({id}, {offset}, {len}) = {other:?}, want corruption"),
        }
    }
    assert_eq!(
        scan(&store, &[], None),
        vec![(b"k".to_vec(), b"v".to_vec())]
    );
    let mut batch = WriteBatch::new();
    batch.put_blob(3, b"replaced".to_vec());
    store.write(batch).expect("write failed");
    // No read is served from what an engine cached of the replaced blob
    // (this range was read above).
    assert_eq!(read_blob(&store, 3, 2, 6), b"placed");
    assert_eq!(read_blob(&store, 3, 0, 8), b"replaced");
    // Many small reads in a row, forwards and back, as a scan over the
    // chunks of a block makes them.
    let mut offset = 0;
    while offset + 300 < big.len() {
        let len = 1 + (offset * 7) % 300;
        assert_eq!(
            read_blob(&store, 7, offset as u64, len),
            big[offset..offset + len]
        );
        let back = offset.saturating_sub(5_000);
        assert_eq!(read_blob(&store, 7, back as u64, 40), big[back..back + 40]);
        offset += len + offset % 97;
    }
    let mut batch = WriteBatch::new();
    batch.delete_blob(7);
    batch.delete_blob(99);
    store.write(batch).expect("write failed");
    assert_eq!(blob_ids(&store), vec![3, 1 << 40]);
    assert!(store.read_blob(7, 0, 1).is_err());
    harness.crash(store);
}

/// `check_blob_durability_across_crash`: a blob survives a crash as soon
/// as the write that put it returns, even when the keys of that batch do
/// not; a batch that deletes a blob is durable when `write` returns,
/// together with everything written before it.
pub fn check_blob_durability_across_crash<H: Harness>(harness: &mut H) {
    let store = harness.open();
    let mut batch = WriteBatch::new();
    batch.put_blob(1, b"one".to_vec());
    batch.put(b"refers-to-1", b"");
    store.write(batch).expect("write failed");
    let store = crash_and_reopen(harness, store);
    assert_eq!(blob_ids(&store), vec![1], "a blob is durable when written");
    assert_eq!(read_blob(&store, 1, 0, 3), b"one");
    // The key may or may not have survived (it was not flushed): both are
    // allowed; what matters is that a surviving key finds its blob.

    let mut batch = WriteBatch::new();
    batch.put_blob(2, b"two".to_vec());
    batch.put(b"refers-to-2", b"");
    store.write(batch).expect("write failed");
    put(&store, b"unflushed", b"x");
    let mut batch = WriteBatch::new();
    batch.delete_blob(1);
    batch.delete(b"refers-to-1");
    store.write(batch).expect("write failed");
    let store = crash_and_reopen(harness, store);
    assert_eq!(blob_ids(&store), vec![2]);
    assert_eq!(
        get(&store, b"refers-to-2"),
        Some(Vec::new()),
        "a blob delete is a durable point"
    );
    assert_eq!(
        get(&store, b"unflushed"),
        Some(b"x".to_vec()),
        "for earlier writes too"
    );
    assert_eq!(get(&store, b"refers-to-1"), None);
    assert_eq!(read_blob(&store, 2, 0, 3), b"two");
    harness.crash(store);
}
