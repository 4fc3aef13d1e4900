//! Crash tests on the in-memory disk, differential against the model.
//!
//! Random appends across groups, truncates, purges, votes and commits;
//! flushes at random points; crashes at random points, with and without a
//! torn last write (a write whose sync failed, of which the crash keeps a
//! random prefix). After every reopen:
//! - every submission whose callback fired `Ok` is present;
//! - nothing never written is visible, and of a write whose sync failed
//!   at most a prefix of whole records is;
//! - the log's state equals the model replayed up to that point.
//!
//! Small segments make rollover and garbage collection frequent, so this
//! is also the differential test of GC's "replaying the survivors rebuilds
//! the same state" argument.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use raftwatch_wal::{Entry, GroupId, LogIndex, MemDisk, Record, Term, Wal, WalConfig};

use crate::common::*;

#[derive(Clone, Debug)]
enum Op {
    Append {
        group: u64,
        n: u64,
        size: usize,
        term_bump: bool,
        callback: bool,
    },
    Truncate {
        group: u64,
        back: u64,
    },
    Purge {
        group: u64,
        forward: u64,
    },
    Vote {
        group: u64,
        term: u64,
        node: u64,
        committed: bool,
    },
    Commit {
        group: u64,
        back: u64,
    },
    Flush,
    Crash {
        torn: bool,
        seed: u64,
    },
    /// The process dies but the machine does not: queued records are lost,
    /// written ones stay.
    Restart,
}

fn arb_op() -> impl Strategy<Value = Op> {
    let group = 0u64..4;
    prop_oneof![
        8 => (group.clone(), 1u64..5, 0usize..300, proptest::bool::weighted(0.1), any::<bool>())
            .prop_map(|(group, n, size, term_bump, callback)| Op::Append { group, n, size, term_bump, callback }),
        1 => (group.clone(), 0u64..4).prop_map(|(group, back)| Op::Truncate { group, back }),
        2 => (group.clone(), 0u64..8).prop_map(|(group, forward)| Op::Purge { group, forward }),
        1 => (group.clone(), 0u64..10, 0u64..3, any::<bool>())
            .prop_map(|(group, term, node, committed)| Op::Vote { group, term, node, committed }),
        1 => (group, 0u64..3).prop_map(|(group, back)| Op::Commit { group, back }),
        3 => Just(Op::Flush),
        1 => (any::<bool>(), any::<u64>()).prop_map(|(torn, seed)| Op::Crash { torn, seed }),
        1 => Just(Op::Restart),
    ]
}

struct Harness {
    disk: MemDisk,
    config: WalConfig,
    wal: Option<Wal<MemDisk>>,
    /// Every record submitted and not lost to a crash, in order.
    log: Vec<Record>,
    /// `log[..durable_len]` is durable.
    durable_len: usize,
    model: Model,
    terms: BTreeMap<u64, u64>,
    fired: Fired,
    /// Appends with callbacks of the current instance: tag → log length
    /// after the submission.
    awaiting: BTreeMap<u64, usize>,
    counter: u64,
}

impl Harness {
    fn new(segment_size_bytes: u64) -> Harness {
        let disk = MemDisk::new();
        let config = WalConfig {
            segment_size_bytes,
            ..WalConfig::default()
        };
        let (wal, _) = Wal::open(disk.clone(), config.clone()).unwrap();
        Harness {
            disk,
            config,
            wal: Some(wal),
            log: Vec::new(),
            durable_len: 0,
            model: Model::default(),
            terms: BTreeMap::new(),
            fired: Arc::new(Mutex::new(Vec::new())),
            awaiting: BTreeMap::new(),
            counter: 0,
        }
    }

    fn wal(&mut self) -> &mut Wal<MemDisk> {
        self.wal.as_mut().unwrap()
    }

    fn submit(&mut self, rec: Record, callback: bool) {
        if callback {
            let tag = self.counter;
            let cb = recorder(&self.fired, tag);
            self.wal().append(vec![rec.clone()], cb).unwrap();
            self.awaiting.insert(tag, self.log.len() + 1);
        } else {
            self.wal().submit(rec.clone()).unwrap();
        }
        self.model.apply(&rec);
        self.log.push(rec);
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.counter += 1;
        match *op {
            Op::Append {
                group,
                n,
                size,
                term_bump,
                callback,
            } => {
                let term = self.terms.entry(group).or_insert(1);
                if term_bump {
                    *term += 1;
                }
                let term = *term;
                let first = self.model.group(group).next_index();
                let salt = self.counter;
                let rec = Record::Entries {
                    group: GroupId(group),
                    entries: (first..first + n)
                        .map(|i| Entry {
                            index: LogIndex(i),
                            term: Term(term),
                            payload: payload(group, i, term ^ (salt << 8), size),
                        })
                        .collect(),
                };
                self.submit(rec, callback);
            }
            Op::Truncate { group, back } => {
                let mg = self.model.group(group);
                if let (Some(first), Some(last)) = (mg.first(), mg.last()) {
                    let from = (last + 1).saturating_sub(back).max(first);
                    self.submit(truncate(group, from), false);
                }
            }
            Op::Purge { group, forward } => {
                let mg = self.model.group(group);
                let base = match (mg.purged, mg.first()) {
                    (Some(p), _) => p.index.0,
                    (None, Some(f)) => f - 1,
                    (None, None) => 0,
                };
                let up_to = base + forward;
                let term = mg
                    .entries
                    .get(&up_to)
                    .map_or_else(|| *self.terms.get(&group).unwrap_or(&1), |(t, _)| *t);
                self.submit(purge(group, up_to, term), false);
            }
            Op::Vote {
                group,
                term,
                node,
                committed,
            } => {
                self.submit(vote(group, term, node, committed), false);
            }
            Op::Commit { group, back } => {
                if let Some(last) = self.model.group(group).last() {
                    let index = last.saturating_sub(back);
                    self.submit(commit(group, index, 1), false);
                }
            }
            Op::Flush => {
                self.wal().flush_pending().unwrap();
                self.durable_len = self.log.len();
                self.check_callbacks()?;
            }
            Op::Restart => {
                drop(self.wal.take());
                self.reopen(self.durable_len, self.durable_len)?;
            }
            Op::Crash { torn, seed } => {
                let attempted = if torn && self.wal().pending_records_count() > 0 {
                    // The write reaches the disk, its sync fails, the
                    // machine dies: a prefix of the write may survive.
                    self.disk.fail_next_sync();
                    prop_assert!(self.wal().flush_pending().is_err());
                    self.log.len()
                } else {
                    self.durable_len
                };
                drop(self.wal.take());
                if torn {
                    self.disk.crash_torn(seed);
                } else {
                    self.disk.crash();
                }
                self.reopen(self.durable_len, attempted)?;
            }
        }
        if let Some(wal) = self.wal.as_ref() {
            prop_assert_eq!(observe(wal), normalized(self.model.clone()));
        }
        Ok(())
    }

    /// Reopens and checks the state is the model after `log[..k]` for some
    /// `k` in `lo..=hi`; continues from there.
    fn reopen(&mut self, lo: usize, hi: usize) -> Result<(), TestCaseError> {
        let (wal, _report) = Wal::open(self.disk.clone(), self.config.clone()).unwrap();
        let got = observe(&wal);
        let k = (lo..=hi).find(|&k| got == normalized(Model::replay(&self.log[..k])));
        let Some(k) = k else {
            return Err(TestCaseError::fail(format!(
                "recovered state matches no prefix of the log in {lo}..={hi}: {got:?}"
            )));
        };
        let mut fired = self.fired.lock().unwrap();
        for (tag, ok) in fired.iter() {
            let end = self.awaiting[tag];
            if *ok {
                prop_assert!(
                    end <= k,
                    "acknowledged submission {tag} (log ..{end}) lost, recovered ..{k}"
                );
            }
        }
        // The old instance's callbacks have all fired or been dropped.
        fired.clear();
        drop(fired);
        self.awaiting.clear();
        self.log.truncate(k);
        self.durable_len = k;
        self.model = Model::replay(&self.log);
        self.wal = Some(wal);
        Ok(())
    }

    /// After a successful flush every awaited callback up to the durable
    /// point fired `Ok`, exactly once, in order.
    fn check_callbacks(&self) -> Result<(), TestCaseError> {
        let fired = self.fired.lock().unwrap();
        prop_assert!(
            fired.iter().all(|(_, ok)| *ok),
            "a callback failed without a failure"
        );
        let tags: Vec<u64> = fired.iter().map(|(t, _)| *t).collect();
        let mut sorted = tags.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(&tags, &sorted, "callbacks out of order or repeated");
        for (t, end) in &self.awaiting {
            if *end <= self.durable_len {
                prop_assert!(tags.contains(t), "callback {} not fired after flush", t);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn crash_recovery_matches_the_model(
        segment_size_bytes in prop_oneof![Just(256u64), Just(1024), Just(8192)],
        ops in proptest::collection::vec(arb_op(), 1..120),
    ) {
        let mut h = Harness::new(segment_size_bytes);
        for op in &ops {
            h.step(op)?;
        }
        // A final crash after a flush loses nothing.
        h.step(&Op::Flush)?;
        h.step(&Op::Crash { torn: true, seed: 1 })?;
        prop_assert_eq!(h.durable_len, h.log.len());
    }
}

/// A pinned torn-write case: the write of 20 records is torn at each
/// possible seed; recovery always yields a whole-record prefix and
/// reports the cut.
#[test]
fn torn_write_recovers_a_prefix_for_many_seeds() {
    let mut seen_torn = 0;
    for seed in 0..100u64 {
        let disk = MemDisk::new();
        let (mut wal, _) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
        wal.submit(ents(1, 1, 5, 1, 100)).unwrap();
        wal.flush_pending().unwrap();
        for i in 0..20 {
            wal.submit(ents(1, 6 + i, 1, 1, 100)).unwrap();
        }
        disk.fail_next_sync();
        assert!(wal.flush_pending().is_err());
        drop(wal);
        disk.crash_torn(seed);
        let (wal, report) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
        let last = wal.last_index(GroupId(1)).unwrap().0;
        assert!((5..=25).contains(&last), "seed {seed}: last {last}");
        if let Some(t) = &report.torn_tail {
            seen_torn += 1;
            assert!(t.bytes_truncated > 0);
            assert!(t.file.starts_with("mem:wal-"), "{t:?}");
        }
        // Repaired: the next open finds nothing to cut, and appends continue.
        drop(wal);
        let (mut wal, report) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
        assert_eq!(report.torn_tail, None, "seed {seed}");
        wal.submit(ents(1, last + 1, 1, 2, 10)).unwrap();
        wal.flush_pending().unwrap();
        drop(wal);
        disk.crash();
        let (wal, _) = Wal::open(disk, WalConfig::default()).unwrap();
        assert_eq!(wal.last_index(GroupId(1)), Some(LogIndex(last + 1)));
    }
    assert!(
        seen_torn > 50,
        "most seeds should tear mid-record: {seen_torn}"
    );
}
