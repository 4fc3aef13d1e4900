//! Group commit: many appends, one fdatasync.

use std::sync::{Arc, Mutex};

use raftwatch_wal::{Disk, FsDisk, MemDisk, Wal, WalConfig};

use crate::common::*;

fn thousand_appends_one_sync<D: Disk>(disk: D) {
    let (mut wal, _) = Wal::open(disk, WalConfig::default()).unwrap();
    let before = wal.stats();
    let fired = Arc::new(Mutex::new(Vec::new()));
    let mut tickets = Vec::new();
    for i in 0..1000u64 {
        let group = i % 7;
        let index = i / 7 + 1;
        let t = wal
            .append(vec![ents(group, index, 1, 1, 64)], recorder(&fired, i))
            .unwrap();
        tickets.push(t);
    }
    assert!(
        fired.lock().unwrap().is_empty(),
        "nothing is durable before the flush"
    );
    assert!(tickets.iter().all(|t| !wal.is_durable(*t)));
    let report = wal.flush_pending().unwrap();
    assert_eq!(report.syncs_count, 1);
    assert_eq!(report.records_count, 1000);
    assert_eq!(report.callbacks_count, 1000);
    let after = wal.stats();
    assert_eq!(after.syncs_count - before.syncs_count, 1);
    assert_eq!(after.records_count - before.records_count, 1000);
    assert_eq!(
        after.bytes_written - before.bytes_written,
        1000 * (9 + 20 + 12 + 64)
    );
    let fired = fired.lock().unwrap();
    assert_eq!(*fired, (0..1000).map(|i| (i, true)).collect::<Vec<_>>());
    assert!(tickets.iter().all(|t| wal.is_durable(*t)));
    // Nothing queued: a flush does no I/O.
    assert_eq!(wal.flush_pending().unwrap().syncs_count, 0);
}

#[test]
fn thousand_appends_share_one_sync_on_mem_disk() {
    thousand_appends_one_sync(MemDisk::new());
}

#[test]
fn thousand_appends_share_one_sync_on_fs_disk() {
    let dir = tempfile::tempdir().unwrap();
    thousand_appends_one_sync(FsDisk::open(dir.path()).unwrap());
}
