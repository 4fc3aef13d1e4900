//! Segment rollover and garbage collection.

use raftwatch_wal::{
    GroupId, LogIndex, MemDisk, NodeId, RECORD_FRAME_HEADER_BYTES, Record, SEGMENT_HEADER_BYTES,
    Term, Vote, Wal, WalConfig,
};

use crate::common::*;

/// One single-entry record with a 100-byte payload.
const REC: u64 = RECORD_FRAME_HEADER_BYTES + 20 + 12 + 100;

fn three_per_segment() -> WalConfig {
    WalConfig {
        segment_size_bytes: SEGMENT_HEADER_BYTES + 3 * REC,
        ..WalConfig::default()
    }
}

fn reopen_equals(disk: &MemDisk, config: &WalConfig, log: &[Record]) {
    let (wal, report) = Wal::open(disk.clone(), config.clone()).unwrap();
    assert_eq!(report.torn_tail, None);
    assert_eq!(observe(&wal), normalized(Model::replay(log)));
}

#[test]
fn segments_roll_over_at_the_configured_size_and_are_named_by_first_record() {
    let disk = MemDisk::new();
    let config = three_per_segment();
    let (mut wal, _) = Wal::open(disk.clone(), config.clone()).unwrap();
    let mut log = Vec::new();
    for i in 1..=10 {
        let r = ents(1, i, 1, 1, 100);
        wal.submit(r.clone()).unwrap();
        log.push(r);
        if i % 4 == 0 {
            wal.flush_pending().unwrap();
        }
    }
    wal.flush_pending().unwrap();
    let names = disk.names();
    assert_eq!(
        names,
        vec![
            "wal-0000000000000000.log",
            "wal-0000000000000003.log",
            "wal-0000000000000006.log",
            "wal-0000000000000009.log",
        ]
    );
    for s in wal.segments() {
        assert!(s.size_bytes <= config.segment_size_bytes, "{s:?}");
    }
    drop(wal);
    reopen_equals(&disk, &config, &log);
}

#[test]
fn a_record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let disk = MemDisk::new();
    let config = three_per_segment();
    let (mut wal, _) = Wal::open(disk.clone(), config.clone()).unwrap();
    let log = vec![
        ents(1, 1, 1, 1, 100),
        ents(1, 2, 1, 1, 5000),
        ents(1, 3, 1, 1, 100),
    ];
    for r in &log {
        wal.submit(r.clone()).unwrap();
    }
    wal.flush_pending().unwrap();
    assert_eq!(disk.names().len(), 3);
    drop(wal);
    reopen_equals(&disk, &config, &log);
}

#[test]
fn purge_deletes_segments_whose_records_are_all_dead() {
    let disk = MemDisk::new();
    let config = three_per_segment();
    let (mut wal, _) = Wal::open(disk.clone(), config.clone()).unwrap();
    let mut log = Vec::new();
    let mut submit = |wal: &mut Wal<MemDisk>, r: Record| {
        wal.submit(r.clone()).unwrap();
        log.push(r);
    };
    // Segments 0 and 3 hold only group 1; 6 and 9 mix groups 1 and 2.
    for i in 1..=6 {
        submit(&mut wal, ents(1, i, 1, 1, 100));
    }
    for i in 1..=3 {
        submit(&mut wal, ents(2, i, 1, 1, 100));
        submit(&mut wal, ents(1, 6 + i, 1, 1, 100));
    }
    wal.flush_pending().unwrap();
    assert_eq!(wal.segments().len(), 4);

    // Purging group 1 up to 6 frees exactly the two group-1-only segments.
    submit(&mut wal, purge(1, 6, 1));
    let report = wal.flush_pending().unwrap();
    assert_eq!(report.gc.segments_removed_count, 2);
    // (Segment 9 was full, so the purge record opened segment 12 = 0xc.)
    assert_eq!(
        disk.names(),
        vec![
            "wal-0000000000000006.log",
            "wal-0000000000000009.log",
            "wal-000000000000000c.log"
        ]
    );
    // Purging all of group 1 frees nothing: group 2 still lives in both.
    submit(&mut wal, purge(1, 9, 1));
    assert_eq!(wal.flush_pending().unwrap().gc.segments_removed_count, 0);
    assert_eq!(observe(&wal), normalized(Model::replay(&log)));
    drop(wal);
    reopen_equals(&disk, &config, &log);
}

#[test]
fn a_truncate_stays_while_an_older_segment_holds_entries_it_deleted() {
    let disk = MemDisk::new();
    let config = three_per_segment();
    let (mut wal, _) = Wal::open(disk.clone(), config.clone()).unwrap();
    let mut log = Vec::new();
    let mut submit = |wal: &mut Wal<MemDisk>, r: Record| {
        wal.submit(r.clone()).unwrap();
        log.push(r);
    };
    // Segment 0: group 1 entries 1..=3. Segment 3: truncate group 1 from 2,
    // then group 3 entries 1..=2. Segment 6: group 3 entry 3, purge group 3.
    for i in 1..=3 {
        submit(&mut wal, ents(1, i, 1, 1, 100));
    }
    submit(&mut wal, truncate(1, 2));
    for i in 1..=3 {
        submit(&mut wal, ents(3, i, 1, 1, 100));
    }
    submit(&mut wal, purge(3, 3, 1));
    wal.flush_pending().unwrap();
    // Segment 3 has no live entry and no latest state, but dropping it
    // would resurrect group 1's entries 2 and 3 from segment 0.
    assert_eq!(disk.names().len(), 3);
    assert_eq!(wal.last_index(GroupId(1)), Some(LogIndex(1)));
    drop(wal);
    reopen_equals(&disk, &config, &log);

    // Once segment 0 is dead too, both go.
    let (mut wal, _) = Wal::open(disk.clone(), config.clone()).unwrap();
    let r = purge(1, 1, 1);
    wal.submit(r.clone()).unwrap();
    log.push(r);
    assert_eq!(wal.flush_pending().unwrap().gc.segments_removed_count, 2);
    assert_eq!(disk.names(), vec!["wal-0000000000000006.log"]);
    drop(wal);
    reopen_equals(&disk, &config, &log);
}

#[test]
fn latest_votes_are_copied_forward_so_old_segments_can_go() {
    let disk = MemDisk::new();
    let config = three_per_segment();
    let (mut wal, _) = Wal::open(disk.clone(), config.clone()).unwrap();
    let v = Vote {
        term: Term(5),
        node_id: NodeId(2),
        committed: true,
    };
    // An idle group's vote sits in the first segment...
    wal.save_vote(GroupId(9), v).unwrap();
    wal.submit(commit(9, 0, 5)).unwrap();
    for i in 1..=9 {
        wal.submit(ents(1, i, 1, 1, 100)).unwrap();
    }
    wal.flush_pending().unwrap();
    assert_eq!(disk.names().len(), 4);
    // ...and once group 1 is purged, only that vote keeps segment 0.
    wal.submit(purge(1, 9, 1)).unwrap();
    let report = wal.flush_pending().unwrap();
    assert_eq!(report.gc.records_rewritten_count, 2);
    assert_eq!(disk.names().len(), 1, "{:?}", disk.names());
    assert_eq!(wal.stats().segments_removed_count, 3);
    drop(wal);
    let (wal, _) = Wal::open(disk, config).unwrap();
    assert_eq!(wal.vote(GroupId(9)), Some(v));
    assert_eq!(wal.committed(GroupId(9)).map(|c| c.term), Some(Term(5)));
    assert_eq!(wal.purged(GroupId(1)).map(|p| p.index), Some(LogIndex(9)));
    assert_eq!(wal.first_index(GroupId(1)), None);
}
