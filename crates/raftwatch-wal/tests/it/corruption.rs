//! Damage on disk: a torn tail is repaired and reported; anything else
//! refuses to open with an error naming the file and offset.

use raftwatch_wal::{
    FsDisk, GroupId, LogIndex, MemDisk, RECORD_FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES, Wal,
    WalConfig, WalError,
};

use crate::common::*;

const FIRST: &str = "wal-0000000000000000.log";
/// One single-entry `Entries` record with a 100-byte payload: frame header
/// (9) + group, first index, count (20) + term, length (12) + payload.
const REC: u64 = RECORD_FRAME_HEADER_BYTES + 20 + 12 + 100;

fn offset_of(record: u64) -> u64 {
    SEGMENT_HEADER_BYTES + REC * record
}

/// A log that appends (no preallocated zeros after its records), so the
/// tests below can build damaged files from a segment's exact bytes.
fn appending() -> WalConfig {
    WalConfig {
        preallocate_bytes: 0,
        ..WalConfig::default()
    }
}

/// Ten single-entry records of group 1 (indices 1..=10), flushed, in a
/// file that ends after the last one.
fn ten_records(disk: MemDisk) {
    let (mut wal, _) = Wal::open(disk, appending()).unwrap();
    for i in 1..=10 {
        wal.submit(ents(1, i, 1, 1, 100)).unwrap();
    }
    wal.flush_pending().unwrap();
}

fn expect_corruption(
    result: Result<impl std::fmt::Debug, WalError>,
    file: &str,
    offset: u64,
) -> String {
    match result {
        Err(e @ WalError::Corruption { .. }) => {
            let WalError::Corruption {
                file: f, offset: o, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((f.as_str(), *o), (file, offset), "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains(file) && msg.contains(&format!("offset {offset}")),
                "{msg}"
            );
            msg
        }
        other => panic!("expected corruption in {file} at {offset}, got {other:?}"),
    }
}

#[test]
fn a_flipped_byte_mid_segment_refuses_to_open() {
    let disk = MemDisk::new();
    ten_records(disk.clone());
    assert_eq!(disk.file_bytes(FIRST).unwrap().len() as u64, offset_of(10));
    assert!(disk.flip_byte(FIRST, offset_of(3) + 60, 0x01));
    let msg = expect_corruption(
        Wal::open(disk.clone(), WalConfig::default()),
        &format!("mem:{FIRST}"),
        offset_of(3),
    );
    assert!(msg.contains("checksum mismatch"), "{msg}");
    // Refusing changed nothing: the valid records after it are still there.
    assert_eq!(disk.file_bytes(FIRST).unwrap().len() as u64, offset_of(10));
}

#[test]
fn a_flipped_length_field_mid_segment_refuses_to_open() {
    let disk = MemDisk::new();
    ten_records(disk.clone());
    // The length is now implausible, so the scan for a later valid record
    // cannot trust it and searches byte by byte.
    assert!(disk.flip_byte(FIRST, offset_of(5) + 3, 0x40));
    expect_corruption(
        Wal::open(disk, WalConfig::default()),
        &format!("mem:{FIRST}"),
        offset_of(5),
    );
}

#[test]
fn a_flipped_byte_in_a_real_file_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    {
        let (mut wal, _) =
            Wal::open(FsDisk::open(&wal_dir).unwrap(), WalConfig::default()).unwrap();
        for i in 1..=10 {
            wal.submit(ents(1, i, 1, 1, 100)).unwrap();
        }
        wal.flush_pending().unwrap();
    }
    let path = wal_dir.join(FIRST);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(offset_of(7) + 80) as usize] ^= 0x80;
    std::fs::write(&path, &bytes).unwrap();
    expect_corruption(
        Wal::open(FsDisk::open(&wal_dir).unwrap(), WalConfig::default()),
        &path.display().to_string(),
        offset_of(7),
    );
}

#[test]
fn damage_at_the_end_of_a_segment_that_is_not_the_last_refuses_to_open() {
    let disk = MemDisk::new();
    let config = WalConfig {
        segment_size_bytes: SEGMENT_HEADER_BYTES + 3 * REC,
        ..WalConfig::default()
    };
    {
        let (mut wal, _) = Wal::open(disk.clone(), config.clone()).unwrap();
        for i in 1..=7 {
            wal.submit(ents(1, i, 1, 1, 100)).unwrap();
        }
        wal.flush_pending().unwrap();
        assert_eq!(wal.segments().len(), 3);
    }
    // The last record of the first segment: nothing valid follows it in
    // that file, but later segments exist, so it is not a torn tail.
    assert!(disk.flip_byte(FIRST, offset_of(2) + 50, 0x04));
    let msg = expect_corruption(
        Wal::open(disk, config),
        &format!("mem:{FIRST}"),
        offset_of(2),
    );
    assert!(msg.contains("not the last"), "{msg}");
}

#[test]
fn a_bad_header_refuses_to_open() {
    let disk = MemDisk::new();
    ten_records(disk.clone());
    assert!(disk.flip_byte(FIRST, 1, 0xFF));
    let msg = expect_corruption(
        Wal::open(disk, WalConfig::default()),
        &format!("mem:{FIRST}"),
        0,
    );
    assert!(msg.contains("magic"), "{msg}");
}

#[test]
fn a_torn_tail_is_repaired_and_reported() {
    let disk = MemDisk::new();
    ten_records(disk.clone());
    let mut bytes = disk.file_bytes(FIRST).unwrap();
    // Half of an eleventh record, as a crash mid-write leaves it.
    let whole = bytes[offset_of(9) as usize..].to_vec();
    bytes.extend_from_slice(&whole[..70]);
    disk.replace_durably(FIRST, &bytes);
    let (wal, report) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
    let torn = report.torn_tail.expect("torn tail reported");
    assert_eq!(torn.file, format!("mem:{FIRST}"));
    assert_eq!(torn.offset, offset_of(10));
    assert_eq!(torn.bytes_truncated, 70);
    assert_eq!(report.records_count, 10);
    assert_eq!(wal.last_index(GroupId(1)), Some(LogIndex(10)));
    assert_eq!(disk.file_bytes(FIRST).unwrap().len() as u64, offset_of(10));
}

#[test]
fn zeroes_after_the_last_record_of_the_last_segment_are_free_space() {
    // What preallocation leaves, and what a file system that extended the
    // file but lost the data leaves: nothing to repair or report.
    let disk = MemDisk::new();
    ten_records(disk.clone());
    let mut bytes = disk.file_bytes(FIRST).unwrap();
    bytes.extend_from_slice(&[0u8; 4096]);
    disk.replace_durably(FIRST, &bytes);
    let (mut wal, report) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
    assert_eq!(report.torn_tail, None);
    assert_eq!(report.records_count, 10);
    assert_eq!(wal.segments()[0].size_bytes, offset_of(10));
    // The next record goes where the zeros start, not after them.
    wal.submit(ents(1, 11, 1, 1, 100)).unwrap();
    wal.flush_pending().unwrap();
    drop(wal);
    let bytes = disk.file_bytes(FIRST).unwrap();
    assert_eq!(bytes.len() as u64, offset_of(10) + 4096);
    assert!(bytes[offset_of(11) as usize..].iter().all(|b| *b == 0));
    let (wal, report) = Wal::open(disk, WalConfig::default()).unwrap();
    assert_eq!((report.records_count, report.torn_tail), (11, None));
    assert_eq!(wal.last_index(GroupId(1)), Some(LogIndex(11)));
}

#[test]
fn zeroes_after_the_last_record_of_an_earlier_segment_refuse_to_open() {
    // The log cuts a segment to its records before it starts the next, so
    // zeros there are damage (records zeroed out), not free space.
    let disk = MemDisk::new();
    ten_records(disk.clone());
    let mut bytes = disk.file_bytes(FIRST).unwrap();
    bytes.extend_from_slice(&[0u8; 100]);
    disk.replace_durably(FIRST, &bytes);
    let mut next = bytes[..SEGMENT_HEADER_BYTES as usize].to_vec();
    next[8..16].copy_from_slice(&10u64.to_le_bytes());
    let crc = crc32c::crc32c(&next[..16]);
    next[16..20].copy_from_slice(&crc.to_le_bytes());
    disk.replace_durably("wal-000000000000000a.log", &next);
    let msg = expect_corruption(
        Wal::open(disk, WalConfig::default()),
        &format!("mem:{FIRST}"),
        offset_of(10),
    );
    assert!(msg.contains("not the last"), "{msg}");
}

#[test]
fn a_last_segment_of_only_zeros_is_removed() {
    // Its preallocated zeros reached the disk, its header did not.
    let disk = MemDisk::new();
    ten_records(disk.clone());
    disk.replace_durably("wal-000000000000000a.log", &[0u8; 300]);
    let (wal, report) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
    let torn = report.torn_tail.expect("reported");
    assert_eq!((torn.offset, torn.bytes_truncated), (0, 300));
    assert!(torn.reason.contains("only zeros"), "{}", torn.reason);
    assert_eq!(disk.names(), vec![FIRST.to_string()]);
    assert_eq!(wal.last_index(GroupId(1)), Some(LogIndex(10)));
}

#[test]
fn a_flipped_byte_in_the_very_last_record_reads_as_a_torn_tail() {
    // Today's behaviour, by design: damage to the last record with nothing
    // valid after it cannot be told apart from a torn write, and that
    // record's sync cannot have completed... unless it did and the disk
    // rotted it. We accept losing it: Raft re-replicates an unacknowledged
    // suffix, and a rotted acknowledged entry is a minority-replica loss.
    let disk = MemDisk::new();
    ten_records(disk.clone());
    assert!(disk.flip_byte(FIRST, offset_of(9) + 50, 0x01));
    let (wal, report) = Wal::open(disk, WalConfig::default()).unwrap();
    assert_eq!(report.torn_tail.map(|t| t.offset), Some(offset_of(9)));
    assert_eq!(wal.last_index(GroupId(1)), Some(LogIndex(9)));
}

#[test]
fn a_last_segment_without_a_whole_header_is_removed() {
    let disk = MemDisk::new();
    ten_records(disk.clone());
    let name = "wal-000000000000000a.log";
    disk.replace_durably(name, b"RWAL\x01\0\0");
    let (mut wal, report) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
    let torn = report.torn_tail.expect("reported");
    assert_eq!(
        (torn.file.as_str(), torn.offset, torn.bytes_truncated),
        ("mem:wal-000000000000000a.log", 0, 7)
    );
    assert_eq!(disk.names(), vec![FIRST.to_string()]);
    wal.submit(ents(1, 11, 1, 1, 100)).unwrap();
    wal.flush_pending().unwrap();
}

#[test]
fn damage_found_on_read_back_is_corruption() {
    let disk = MemDisk::new();
    let (mut wal, _) = Wal::open(disk.clone(), WalConfig::default()).unwrap();
    for i in 1..=10 {
        wal.submit(ents(1, i, 1, 1, 100)).unwrap();
    }
    wal.flush_pending().unwrap();
    assert!(disk.flip_byte(FIRST, offset_of(4) + 90, 0x02));
    assert!(wal.entries(GroupId(1), LogIndex(1)..LogIndex(5)).is_ok());
    expect_corruption(
        wal.entries(GroupId(1), LogIndex(1)..LogIndex(6)),
        &format!("mem:{FIRST}"),
        offset_of(4),
    );
}

#[test]
fn segments_out_of_order_refuse_to_open() {
    let disk = MemDisk::new();
    ten_records(disk.clone());
    // A segment claiming to start at record 3, inside the first one's range.
    let mut other = disk.file_bytes(FIRST).unwrap();
    other.truncate(SEGMENT_HEADER_BYTES as usize);
    disk.replace_durably("wal-0000000000000003.log", &other);
    let msg = expect_corruption(
        Wal::open(disk, WalConfig::default()),
        "mem:wal-0000000000000003.log",
        0,
    );
    assert!(msg.contains("previous segment ends at record 10"), "{msg}");
}

#[test]
fn a_missing_segment_that_held_live_entries_is_corruption() {
    let disk = MemDisk::new();
    let config = WalConfig {
        segment_size_bytes: SEGMENT_HEADER_BYTES + 3 * REC,
        ..WalConfig::default()
    };
    {
        let (mut wal, _) = Wal::open(disk.clone(), config.clone()).unwrap();
        for i in 1..=7 {
            wal.submit(ents(1, i, 1, 1, 100)).unwrap();
        }
        wal.flush_pending().unwrap();
    }
    use raftwatch_wal::Disk;
    disk.remove("wal-0000000000000003.log").unwrap();
    let msg = expect_corruption(
        Wal::open(disk, config),
        "mem:wal-0000000000000006.log",
        SEGMENT_HEADER_BYTES,
    );
    assert!(msg.contains("between 3 and 7"), "{msg}");
}
