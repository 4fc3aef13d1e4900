//! raftwatch-wal: the node-wide durable Raft log.
//!
//! Every Raft group on a node (the control plane and each shard) appends to
//! one shared, segmented write-ahead log, so appends from all groups in a
//! flush window share one `fdatasync` (group commit), as in TiKV's
//! raft-engine. The format is specified in `docs/format/wal.md`.
//!
//! The crate is a synchronous core: no async runtime, no threads, no clock,
//! no `HashMap` driving behaviour. Storage goes through the [`Disk`] seam:
//! [`FsDisk`] (real files, `fdatasync`, directory `fsync`) or [`MemDisk`]
//! (in memory, with crash and torn-write semantics for tests and the
//! simulator). An openraft adapter maps `RaftLogStorage` onto it:
//! `append(entries, callback)` → [`Wal::append`] with the callback fired
//! by [`Wal::flush_pending`] once the entries are durable;
//! `save_vote` → [`Wal::save_vote`] (durable before it returns);
//! `truncate_after(id)` → [`Record::Truncate`] from `id.index + 1`;
//! `purge(id)` → [`Record::Purge`].
//!
//! Architecture invariant: a record whose [`OnDurable`] callback fired
//! `Ok` survives any crash; after a crash the log holds a prefix of the
//! submitted records. Damage other than a torn tail refuses to open.

mod disk;
mod error;
mod format;
mod index;
mod types;
mod wal;

pub use disk::{Disk, DiskFile, FsDisk, FsFile, MemDisk, MemFile};
pub use error::WalError;
pub use types::{Entry, GroupId, LogId, LogIndex, NodeId, Record, Term, Ticket, Vote};
pub use wal::{
    FlushReport, GcReport, OnDurable, PENDING_BYTES_MAX_DEFAULT, PREALLOCATE_BYTES_DEFAULT,
    RECORD_SIZE_BYTES_MAX_DEFAULT, RecoveryReport, SEGMENT_SIZE_BYTES_DEFAULT, SegmentInfo,
    TornTail, Wal, WalConfig, WalStats,
};

/// `SEGMENT_HEADER_BYTES` is the size of a segment's header (format
/// version 2); records start at this offset.
pub const SEGMENT_HEADER_BYTES: u64 = format::HEADER_BYTES;
/// `RECORD_FRAME_HEADER_BYTES` is the size of a record's frame header
/// (length, checksum, type) before its body.
pub const RECORD_FRAME_HEADER_BYTES: u64 = format::FRAME_HEADER_BYTES;
