//! raftwatch-model: the vocabulary every other raftwatch crate speaks.
//!
//! Layer 1 of the workspace (see `ARCHITECTURE.md`): identifiers and units,
//! the label and sample model, label matchers, limits, and the small binary
//! encodings (varints, label sets) that storage formats build on. Nothing
//! here performs I/O, reads a clock or spawns a task.

pub mod encoding;
pub mod hash_range;
pub mod ids;
pub mod labels;
pub mod limits;
pub mod matcher;
pub mod sample;

pub use hash_range::HashRange;
pub use ids::{SeriesHash, SeriesRef, TimestampMs};
pub use labels::{Label, LabelError, Labels, METRIC_NAME_LABEL};
pub use limits::LabelLimits;
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use sample::{STALE_NAN_BITS, Sample, is_stale_nan, stale_nan};
