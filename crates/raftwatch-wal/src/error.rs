//! The crate's error type.

/// `WalError` is everything the log can fail with. Callers branch on:
/// `Corruption` (refuse to start; a human must look), `Io` and `Poisoned`
/// (this log instance is dead; reopen it), `InvalidRecord`, `RecordTooLarge`
/// and `PendingFull` (this request failed; the log is fine).
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// `Corruption`: bytes on disk are damaged somewhere other than a torn
    /// tail, so the log refuses to open (or a read-back failed its check).
    /// `file` is the full path (or the in-memory disk's name) and `offset`
    /// the byte offset of the damaged record or header in that file.
    #[error("WAL corruption in {file} at offset {offset}: {reason}")]
    Corruption {
        /// `file` names the damaged file.
        file: String,
        /// `offset` is the byte offset of the damaged record or header.
        offset: u64,
        /// `reason` says what check failed.
        reason: String,
    },
    /// `Io`: an operation on the disk failed. After a failed write or sync
    /// the log is poisoned: what reached the disk is unknown.
    #[error("WAL I/O error: {op} {file}: {source}")]
    Io {
        /// `op` is the operation that failed (`"sync_data"`, `"append"`, ...).
        op: &'static str,
        /// `file` names the file (or directory) operated on.
        file: String,
        /// `source` is the operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// `Poisoned`: an earlier write or sync failed, so this instance refuses
    /// all further work. Reopening recovers the durable prefix.
    #[error("WAL poisoned by an earlier failure: {reason}")]
    Poisoned {
        /// `reason` is the message of the failure that poisoned the log.
        reason: String,
    },
    /// `InvalidRecord`: a submitted record would break the log's invariants
    /// (non-consecutive indices, a purge moving backwards, ...). Nothing was
    /// queued.
    #[error("invalid WAL record for group {group}: {reason}")]
    InvalidRecord {
        /// `group` is the record's group.
        group: u64,
        /// `reason` says which invariant would break.
        reason: String,
    },
    /// `InvalidConfig`: a [`crate::WalConfig`] value is out of range.
    #[error("invalid WAL config: {reason}")]
    InvalidConfig {
        /// `reason` names the bad field.
        reason: String,
    },
    /// `RecordTooLarge`: one encoded record exceeds
    /// [`crate::WalConfig::record_bytes_max`]. Nothing was queued.
    #[error("WAL record of {bytes} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// `bytes` is the record body's encoded size.
        bytes: u64,
        /// `limit` is the configured maximum.
        limit: u64,
    },
    /// `PendingFull`: the queue of records not yet flushed holds
    /// [`crate::WalConfig::pending_bytes_max`]; call
    /// [`crate::Wal::flush_pending`] and retry. Nothing was queued.
    #[error("WAL pending queue full ({pending_bytes} bytes queued, limit {limit})")]
    PendingFull {
        /// `pending_bytes` is how much is queued.
        pending_bytes: u64,
        /// `limit` is the configured maximum.
        limit: u64,
    },
}
