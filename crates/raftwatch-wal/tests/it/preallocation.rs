//! Preallocation: zeros written ahead of the records so that most flushes
//! overwrite space the file already has (`WalConfig::preallocate_bytes`).

use raftwatch_wal::{
    FsDisk, GroupId, LogIndex, MemDisk, PREALLOCATE_BYTES_DEFAULT, RECORD_FRAME_HEADER_BYTES,
    SEGMENT_HEADER_BYTES, Wal, WalConfig,
};

use crate::common::*;

const FIRST: &str = "wal-0000000000000000.log";
/// One single-entry `Entries` record with a 100-byte payload.
const REC: u64 = RECORD_FRAME_HEADER_BYTES + 20 + 12 + 100;

fn offset_of(record: u64) -> u64 {
    SEGMENT_HEADER_BYTES + REC * record
}

#[test]
fn flushes_within_the_preallocated_space_leave_the_file_size_alone() {
    let disk = MemDisk::new();
    let (mut wal, _) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
    let mut sizes = std::collections::BTreeSet::new();
    for i in 1..=100 {
        wal.submit(ents(1, i, 1, 1, 100)).unwrap();
        wal.flush_pending().unwrap();
        sizes.insert(disk.file_bytes(FIRST).unwrap().len() as u64);
    }
    // The first flush (the header's) grew the file by one step; the 100
    // records since fit in it.
    assert_eq!(
        sizes.into_iter().collect::<Vec<_>>(),
        vec![SEGMENT_HEADER_BYTES + PREALLOCATE_BYTES_DEFAULT]
    );
    assert_eq!(wal.stats().bytes_preallocated, PREALLOCATE_BYTES_DEFAULT);
    assert_eq!(wal.segments()[0].size_bytes, offset_of(100));
    drop(wal);
    let (wal, report) = Wal::open(disk, WalConfig::default()).unwrap();
    assert_eq!((report.records_count, report.torn_tail), (100, None));
    assert_eq!(wal.last_index(GroupId(1)), Some(LogIndex(100)));
}

#[test]
fn the_space_grows_by_a_step_and_never_past_the_segment_size() {
    let disk = MemDisk::new();
    let config = WalConfig {
        preallocate_bytes: 3 * REC,
        segment_size_bytes: offset_of(5) + 10,
        ..WalConfig::default()
    };
    let (mut wal, _) = Wal::open(disk.clone(), config.clone()).unwrap();
    let mut lens = Vec::new();
    for i in 1..=5 {
        wal.submit(ents(1, i, 1, 1, 100)).unwrap();
        wal.flush_pending().unwrap();
        lens.push(disk.file_bytes(FIRST).unwrap().len() as u64);
    }
    // Opening wrote the header and room for 3 records; record 4 grew the
    // file, which made room for 3 more, cut at the segment size.
    let (o3, o5) = (offset_of(3), offset_of(5));
    assert_eq!(lens, vec![o3, o3, o3, o5 + 10, o5 + 10]);
}

#[test]
fn a_new_segment_cuts_the_previous_one_to_its_records() {
    let disk = MemDisk::new();
    let config = WalConfig {
        segment_size_bytes: offset_of(3) + 50,
        ..WalConfig::default()
    };
    {
        let (mut wal, _) = Wal::open(disk.clone(), config.clone()).unwrap();
        for i in 1..=7 {
            wal.submit(ents(1, i, 1, 1, 100)).unwrap();
            wal.flush_pending().unwrap();
        }
    }
    let lens: Vec<u64> = disk
        .names()
        .iter()
        .map(|n| disk.file_bytes(n).unwrap().len() as u64)
        .collect();
    // Two full segments cut to their three records, and the last one with
    // its one record and the rest preallocated.
    assert_eq!(lens, vec![offset_of(3), offset_of(3), offset_of(3) + 50]);
    let (wal, report) = Wal::open(disk, config).unwrap();
    assert_eq!((report.records_count, report.torn_tail), (7, None));
    assert_eq!(wal.last_index(GroupId(1)), Some(LogIndex(7)));
}

#[test]
fn a_real_file_is_written_in_place_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let path = wal_dir.join(FIRST);
    {
        let (mut wal, _) =
            Wal::open(FsDisk::open(&wal_dir).unwrap(), WalConfig::default()).unwrap();
        for i in 1..=10 {
            wal.submit(ents(1, i, 1, 1, 100)).unwrap();
        }
        wal.flush_pending().unwrap();
    }
    // Opening wrote the header and a step of zeros; the records fit in it.
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(len, SEGMENT_HEADER_BYTES + PREALLOCATE_BYTES_DEFAULT);
    for round in 0..2u64 {
        let (mut wal, report) =
            Wal::open(FsDisk::open(&wal_dir).unwrap(), WalConfig::default()).unwrap();
        assert_eq!((report.records_count, report.torn_tail), (10 + round, None));
        wal.submit(ents(1, 11 + round, 1, 1, 100)).unwrap();
        wal.flush_pending().unwrap();
        let read = wal
            .entries(GroupId(1), LogIndex(1)..LogIndex(12 + round))
            .unwrap();
        assert_eq!(read.len() as u64, 11 + round);
    }
    // Both records went where the zeros started: the size never moved.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
}
