//! `wal_dump DIR [GROUP]`: lists what a node's log holds, per group: vote,
//! committed, purged, and one line per entry (index, term, payload length,
//! payload crc32c), so the logs of two replicas can be compared with
//! `diff`. Opening recovers the log (a torn tail is truncated): run it on a
//! copy of the directory.

use raftwatch_wal::{FsDisk, GroupId, LogIndex, Wal, WalConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: wal_dump DIR [GROUP]")?;
    let only: Option<u64> = args.next().map(|g| g.parse()).transpose()?;
    let (wal, report) = Wal::open(
        FsDisk::open(std::path::Path::new(&dir))?,
        WalConfig::default(),
    )?;
    eprintln!("{report:?}");
    for group in wal.groups() {
        if only.is_some_and(|g| g != group.0) {
            continue;
        }
        println!(
            "group {} vote {:?} committed {:?} purged {:?}",
            group.0,
            wal.vote(group),
            wal.committed(group),
            wal.purged(group)
        );
        let (Some(first), Some(last)) = (wal.first_index(group), wal.last_index(group)) else {
            continue;
        };
        for e in wal.entries(GroupId(group.0), first..LogIndex(last.0 + 1))? {
            println!(
                "{} {} {} {:08x}",
                e.index.0,
                e.term.0,
                e.payload.len(),
                crc32c::crc32c(&e.payload)
            );
        }
    }
    Ok(())
}
