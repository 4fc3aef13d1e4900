//! Round trips on both disks: what was flushed is what reopening finds.

use std::sync::{Arc, Mutex};

use raftwatch_wal::{
    Disk, FsDisk, GroupId, LogId, LogIndex, MemDisk, NodeId, Record, Term, Vote, Wal, WalConfig,
    WalError,
};

use crate::common::*;

/// Interleaves three groups with appends, a truncate and rewrite, a purge,
/// votes and commits; returns the records in submission order.
fn scenario<D: Disk>(wal: &mut Wal<D>) -> Vec<Record> {
    let mut log = Vec::new();
    let mut push = |wal: &mut Wal<D>, r: Record| {
        wal.submit(r.clone()).unwrap();
        log.push(r);
    };
    push(wal, vote(0, 1, 7, false));
    push(wal, vote(1, 1, 7, true));
    for round in 0..10u64 {
        for g in 0..3u64 {
            push(wal, ents(g, round * 4 + 1, 4, 1, 50 + (g as usize) * 300));
        }
        if round % 3 == 2 {
            wal.flush_pending().unwrap();
        }
    }
    push(wal, truncate(1, 30));
    push(wal, ents(1, 30, 5, 2, 700));
    push(wal, purge(2, 12, 1));
    push(wal, commit(0, 40, 1));
    push(wal, vote(2, 3, 9, true));
    push(wal, purge(0, 40, 1)); // everything of group 0
    wal.flush_pending().unwrap();
    log
}

fn round_trip<D: Disk + Clone>(disk: D) {
    let (mut wal, report) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
    assert_eq!(report.records_count, 0);
    let log = scenario(&mut wal);
    let model = normalized(Model::replay(&log));
    assert_eq!(observe(&wal), model);
    assert_eq!(wal.last_index(GroupId(1)), Some(LogIndex(34)));
    assert_eq!(wal.first_index(GroupId(2)), Some(LogIndex(13)));
    assert_eq!(wal.first_index(GroupId(0)), None);
    assert_eq!(
        wal.purged(GroupId(0)),
        Some(LogId {
            term: Term(1),
            leader: leader_of(1),
            index: LogIndex(40)
        })
    );
    assert_eq!(wal.term_at(GroupId(1), LogIndex(30)), Some(Term(2)));
    drop(wal);

    for _ in 0..2 {
        let (wal, report) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
        assert_eq!(report.torn_tail, None);
        assert_eq!(observe(&wal), model);
        assert_eq!(
            wal.vote(GroupId(2)),
            Some(Vote {
                term: Term(3),
                node_id: NodeId(9),
                committed: true
            })
        );
        let range = wal.entries(GroupId(1), LogIndex(28)..LogIndex(32)).unwrap();
        assert_eq!(
            range
                .iter()
                .map(|e| (e.index.0, e.term.0))
                .collect::<Vec<_>>(),
            vec![(28, 1), (29, 1), (30, 2), (31, 2)]
        );
    }
}

#[test]
fn round_trip_on_mem_disk() {
    round_trip(MemDisk::new());
}

#[test]
fn round_trip_on_fs_disk() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(FsDisk::open(dir.path().join("wal")).unwrap());
    let names: Vec<String> = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["wal-0000000000000000.log".to_string()]);
}

#[test]
fn queued_records_are_readable_before_they_are_durable() {
    let disk = MemDisk::new();
    let (mut wal, _) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
    wal.submit(ents(5, 1, 3, 1, 10)).unwrap();
    wal.flush_pending().unwrap();
    let t = wal.submit(ents(5, 4, 2, 1, 10)).unwrap();
    assert!(!wal.is_durable(t));
    let got = wal.entries(GroupId(5), LogIndex(1)..LogIndex(10)).unwrap();
    assert_eq!(got.len(), 5);
    assert_eq!(got[4].payload, payload(5, 5, 1, 10));
    // Unflushed records die with the process.
    drop(wal);
    let (wal, _) = Wal::open(disk, WalConfig::default()).unwrap();
    assert_eq!(wal.last_index(GroupId(5)), Some(LogIndex(3)));
}

#[test]
fn invalid_records_are_refused_and_nothing_is_queued() {
    let (mut wal, _) = Wal::open(MemDisk::new(), WalConfig::default()).unwrap();
    wal.submit(ents(1, 1, 3, 1, 10)).unwrap();
    let cases = [
        ents(1, 5, 1, 1, 1), // gap
        ents(1, 3, 1, 1, 1), // overlap without truncate
        Record::Entries {
            group: GroupId(1),
            entries: vec![],
        },
    ];
    for bad in cases {
        let before = wal.pending_records_count();
        let err = wal.submit(bad.clone()).unwrap_err();
        assert!(
            matches!(err, WalError::InvalidRecord { group: 1, .. }),
            "{bad:?}: {err}"
        );
        assert_eq!(wal.pending_records_count(), before);
    }
    // A batch is all or nothing.
    let fired = Arc::new(Mutex::new(Vec::new()));
    let err = wal
        .append(
            vec![ents(1, 4, 1, 1, 1), ents(1, 9, 1, 1, 1)],
            recorder(&fired, 1),
        )
        .unwrap_err();
    assert!(matches!(err, WalError::InvalidRecord { .. }));
    assert_eq!(wal.last_index(GroupId(1)), Some(LogIndex(3)));
    wal.submit(purge(1, 2, 1)).unwrap();
    assert!(matches!(
        wal.submit(purge(1, 1, 1)),
        Err(WalError::InvalidRecord { .. })
    ));
    wal.flush_pending().unwrap();
    assert!(
        fired.lock().unwrap().is_empty(),
        "a refused append never calls back"
    );
}

#[test]
fn limits_are_enforced() {
    let config = WalConfig {
        record_size_bytes_max: 1000,
        pending_bytes_max: 3000,
        ..WalConfig::default()
    };
    let (mut wal, _) = Wal::open(MemDisk::new(), config).unwrap();
    assert!(matches!(
        wal.submit(ents(1, 1, 1, 1, 2000)),
        Err(WalError::RecordTooLarge { limit: 1000, .. })
    ));
    wal.submit(ents(1, 1, 1, 1, 900)).unwrap();
    wal.submit(ents(1, 2, 1, 1, 900)).unwrap();
    wal.submit(ents(1, 3, 1, 1, 900)).unwrap();
    assert!(matches!(
        wal.submit(ents(1, 4, 1, 1, 900)),
        Err(WalError::PendingFull { limit: 3000, .. })
    ));
    wal.flush_pending().unwrap();
    wal.submit(ents(1, 4, 1, 1, 900)).unwrap();
}

#[test]
fn a_failed_sync_poisons_the_log_and_fails_every_queued_callback() {
    let disk = MemDisk::new();
    let (mut wal, _) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
    let fired = Arc::new(Mutex::new(Vec::new()));
    wal.append(vec![ents(1, 1, 2, 1, 10)], recorder(&fired, 1))
        .unwrap();
    wal.flush_pending().unwrap();
    wal.append(vec![ents(1, 3, 2, 1, 10)], recorder(&fired, 2))
        .unwrap();
    wal.append(vec![vote(1, 2, 2, false)], recorder(&fired, 3))
        .unwrap();
    disk.fail_next_sync();
    assert!(matches!(
        wal.flush_pending(),
        Err(WalError::Io {
            op: "sync_data",
            ..
        })
    ));
    assert_eq!(
        *fired.lock().unwrap(),
        vec![(1, true), (2, false), (3, false)]
    );
    assert!(matches!(
        wal.submit(vote(1, 3, 1, false)),
        Err(WalError::Poisoned { .. })
    ));
    assert!(matches!(
        wal.entries(GroupId(1), LogIndex(1)..LogIndex(9)),
        Err(WalError::Poisoned { .. })
    ));
    drop(wal);
    disk.crash();
    let (wal, _) = Wal::open(disk, WalConfig::default()).unwrap();
    assert_eq!(wal.last_index(GroupId(1)), Some(LogIndex(2)));
    assert_eq!(wal.vote(GroupId(1)), None);
}

#[test]
fn an_empty_append_with_nothing_pending_completes_at_once() {
    let (mut wal, _) = Wal::open(MemDisk::new(), WalConfig::default()).unwrap();
    let fired = Arc::new(Mutex::new(Vec::new()));
    wal.append(vec![], recorder(&fired, 1)).unwrap();
    assert_eq!(*fired.lock().unwrap(), vec![(1, true)]);
    wal.submit(vote(1, 1, 1, false)).unwrap();
    wal.append(vec![], recorder(&fired, 2)).unwrap();
    assert_eq!(fired.lock().unwrap().len(), 1, "waits for the pending vote");
    wal.flush_pending().unwrap();
    assert_eq!(*fired.lock().unwrap(), vec![(1, true), (2, true)]);
}

#[test]
fn save_vote_is_durable_when_it_returns() {
    let disk = MemDisk::new();
    let (mut wal, _) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
    let v = Vote {
        term: Term(4),
        node_id: NodeId(2),
        committed: false,
    };
    wal.save_vote(GroupId(3), v).unwrap();
    disk.crash();
    drop(wal);
    let (wal, _) = Wal::open(disk, WalConfig::default()).unwrap();
    assert_eq!(wal.vote(GroupId(3)), Some(v));
}

#[test]
fn a_dropped_log_fails_its_queued_callbacks() {
    let (mut wal, _) = Wal::open(MemDisk::new(), WalConfig::default()).unwrap();
    let fired = Arc::new(Mutex::new(Vec::new()));
    wal.append(vec![ents(1, 1, 1, 1, 1)], recorder(&fired, 1))
        .unwrap();
    drop(wal);
    assert_eq!(*fired.lock().unwrap(), vec![(1, false)]);
}

#[test]
fn reads_return_the_present_part_of_a_range() {
    let (mut wal, _) = Wal::open(MemDisk::new(), WalConfig::default()).unwrap();
    wal.submit(ents(1, 10, 5, 1, 8)).unwrap();
    let idx = |r: std::ops::Range<u64>| {
        wal.entries(GroupId(1), LogIndex(r.start)..LogIndex(r.end))
            .unwrap()
            .iter()
            .map(|e| e.index.0)
            .collect::<Vec<_>>()
    };
    assert_eq!(idx(0..12), vec![10, 11]);
    assert_eq!(idx(13..100), vec![13, 14]);
    assert_eq!(idx(12..12), Vec::<u64>::new());
    assert_eq!(idx(20..30), Vec::<u64>::new());
    assert!(
        wal.entries(GroupId(2), LogIndex(0)..LogIndex(9))
            .unwrap()
            .is_empty()
    );
}
