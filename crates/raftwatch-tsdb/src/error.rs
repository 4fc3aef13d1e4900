//! Errors and per-sample rejections.

use raftwatch_chunk::ChunkError;
use raftwatch_model::{LabelError, SeriesRef, TimestampMs};
use raftwatch_storage::StorageError;
use thiserror::Error;

/// `TsdbError` is what a [`crate::Tsdb`] operation fails with as a whole.
/// Per-sample refusals are not errors: they are [`Rejection`]s in an
/// [`crate::AppendReport`].
#[derive(Debug, Error)]
pub enum TsdbError {
    /// The label set is invalid or over the engine's label limits.
    #[error("invalid series labels: {0}")]
    InvalidLabels(#[from] LabelError),
    /// Creating the series would exceed the configured series limit.
    #[error("series limit reached: the engine holds {limit} series")]
    SeriesLimit {
        /// The configured `series_max`.
        limit: usize,
    },
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Data read back from storage is damaged. Names what was being read.
    #[error("corruption in {what}: {reason}")]
    Corruption {
        /// Which record: e.g. `chunk of series 12 starting at 1000ms`.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration is unusable (names the setting).
    #[error("invalid engine configuration: {0}")]
    InvalidConfig(String),
    /// A snapshot stream could not be restored.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    /// An earlier storage failure left memory and storage out of step; the
    /// engine refuses further writes until it is reopened.
    #[error("engine is poisoned by an earlier storage failure; reopen it")]
    Poisoned,
}

impl TsdbError {
    pub(crate) fn chunk_corruption(series: SeriesRef, min_time: i64, err: ChunkError) -> TsdbError {
        TsdbError::Corruption {
            what: format!("chunk of series {series} starting at {min_time}ms"),
            reason: err.to_string(),
        }
    }
}

/// `RejectReason` says why one sample was not applied. The rest of its
/// batch is applied regardless.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RejectReason {
    /// Older than the series' newest sample by more than the out-of-order
    /// window.
    #[error(
        "sample at {timestamp:?} is out of order: series newest is {newest:?}, window is {window_ms}ms"
    )]
    OutOfOrder {
        /// The sample's timestamp.
        timestamp: TimestampMs,
        /// The series' newest timestamp.
        newest: TimestampMs,
        /// The configured out-of-order window.
        window_ms: i64,
    },
    /// A sample with this timestamp exists with a different value.
    #[error("duplicate timestamp {timestamp:?} with a different value")]
    DuplicateTimestamp {
        /// The sample's timestamp.
        timestamp: TimestampMs,
    },
    /// The series' labels are invalid or over the label limits.
    #[error("invalid series labels: {0}")]
    InvalidLabels(String),
    /// The series is new and the engine is at its series limit.
    #[error("series limit reached: the engine holds {limit} series")]
    SeriesLimit {
        /// The configured `series_max`.
        limit: usize,
    },
    /// Older than the retention cutoff applied by `delete_before`.
    #[error("sample at {timestamp:?} is before the retention cutoff {cutoff:?}")]
    BeforeRetention {
        /// The sample's timestamp.
        timestamp: TimestampMs,
        /// The cutoff.
        cutoff: TimestampMs,
    },
    /// The series reference is not known to this engine.
    #[error("unknown series reference {0}")]
    UnknownSeries(SeriesRef),
}

/// `Rejection` pairs a refused sample's position in its batch with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Zero-based index of the sample in the batch, counting samples across
    /// all series of the batch in order.
    pub index: usize,
    /// Why it was refused.
    pub reason: RejectReason,
}
