//! Engine configuration with its defaults.

use raftwatch_model::{LabelLimits, SeriesHash};

/// `OUT_OF_ORDER_WINDOW_MS_DEFAULT` is 0, as in Prometheus: by default a
/// sample older than its series' newest is refused.
pub const OUT_OF_ORDER_WINDOW_MS_DEFAULT: i64 = 0;
/// `CHUNK_SPAN_MS_MAX_DEFAULT` caps a chunk's time span (2 h, Prometheus'
/// head block range), so sparse series still cut chunks.
pub const CHUNK_SPAN_MS_MAX_DEFAULT: i64 = 2 * 60 * 60 * 1000;
/// `OOO_BUFFER_SAMPLES_MAX_DEFAULT` bounds the per-series buffer of
/// out-of-order samples; a full buffer is written out as a chunk.
pub const OOO_BUFFER_SAMPLES_MAX_DEFAULT: usize = 32;
/// `HEAD_LOG_BYTES_MIN_DEFAULT` (4 MiB): the head log is never checkpointed
/// while smaller than this.
pub const HEAD_LOG_BYTES_MIN_DEFAULT: usize = 4 << 20;
/// `BLOCK_BYTES_MIN_DEFAULT` (256 KiB): sealed chunks are kept one key each
/// until they add up to this, then packed into a block.
pub const BLOCK_BYTES_MIN_DEFAULT: usize = 256 << 10;
/// `SERIES_MAX_DEFAULT` caps the series one engine holds.
pub const SERIES_MAX_DEFAULT: usize = 5_000_000;
/// `COMPACTION_FANIN_DEFAULT`: blocks of one size tier merged at a time.
pub const COMPACTION_FANIN_DEFAULT: usize = 4;
/// `COMPACTION_BYTES_MAX_DEFAULT` (64 MiB): blocks are not merged into one
/// larger than this (a merge holds its inputs and output in memory).
pub const COMPACTION_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// `BLOCK_CACHE_BYTES_DEFAULT` (16 MiB): block pages kept in memory for
/// reads (see [`TsdbConfig::block_cache_bytes`]).
pub const BLOCK_CACHE_BYTES_DEFAULT: usize = 16 << 20;

const _: () = assert!(CHUNK_SPAN_MS_MAX_DEFAULT > 0);
const _: () = assert!(OOO_BUFFER_SAMPLES_MAX_DEFAULT <= raftwatch_chunk::CHUNK_SAMPLES_TARGET);

/// `TsdbConfig` holds every limit and policy knob of the engine.
#[derive(Clone, Debug)]
pub struct TsdbConfig {
    /// Limits every stored label set must satisfy.
    pub label_limits: LabelLimits,
    /// How far (ms, inclusive) behind its series' newest sample a sample may
    /// be and still be accepted. Measured against the series' data, never
    /// against a clock.
    pub out_of_order_window_ms: i64,
    /// Samples after which the head chunk is cut.
    pub chunk_samples_max: usize,
    /// Time span after which the head chunk is cut: a sample at or beyond
    /// `head.min_time + chunk_span_ms_max` starts a new chunk. Every chunk
    /// therefore spans less than this, which bounds range scans.
    pub chunk_span_ms_max: i64,
    /// Out-of-order samples buffered per series before they are written out
    /// as a chunk.
    pub ooo_buffer_samples_max: usize,
    /// Series the engine may hold.
    pub series_max: usize,
    /// Flushes persist open heads as deltas in a head log; a flush writes a
    /// checkpoint of every head (and drops the log) once the log holds at
    /// least as many bytes as the last checkpoint, and at least this many.
    pub head_log_bytes_min: usize,
    /// Sealed chunks are stored one key each (the store's per-entry
    /// overhead included) until the flushed and not yet packed ones add up
    /// to this many bytes; that flush packs them all into one block, a
    /// single store blob with a directory (`docs/format/tsdb.md`). Smaller
    /// makes more, smaller blocks; 0 packs every flush's chunks.
    pub block_bytes_min: usize,
    /// Once this many blocks share a size tier (tier `t` holds blocks of
    /// up to `block_bytes_min × fanin^t` chunk bytes), a flush merges the
    /// oldest of them into one, so that a series' chunks of a longer time
    /// range lie side by side and a read fetches them at once. Each byte is
    /// rewritten once per tier it climbs. 0 turns compaction off; 1 is
    /// refused.
    pub compaction_fanin: usize,
    /// Blocks whose merge would exceed this many chunk bytes are left as
    /// they are.
    pub compaction_bytes_max: usize,
    /// Bytes of block pages (64 KiB each) kept in memory, least recently
    /// used evicted first. A read fetches a block's chunks a page at a
    /// time through this cache, so reading many series costs a store read
    /// per page rather than per series. 0 turns it off: each read then
    /// fetches exactly a series' chunks from the store.
    pub block_cache_bytes: usize,
    /// Whether flushes keep the store reopenable: series records, the head
    /// log and its checkpoints, the meta record, all made durable. Off, a
    /// flush writes only what bounds memory (sealed chunks, retention's
    /// deletions and the caller's own writes) and does not sync, and a
    /// reopen would not find the series: for a store that is never
    /// reopened, such as a Raft shard's, rebuilt from snapshot and log at
    /// every start. Reads and snapshots are the same either way.
    pub reopenable: bool,
    /// The hash used to find a series by its labels. Always
    /// [`raftwatch_model::Labels::hash`] in production; tests replace it with a degenerate
    /// one to exercise collision handling.
    /// It takes the `(name, value)` pairs in canonical order.
    pub series_hash: fn(&mut dyn Iterator<Item = (&str, &str)>) -> SeriesHash,
}

impl TsdbConfig {
    /// `validate` refuses settings the engine cannot honour, naming them.
    pub fn validate(&self) -> Result<(), crate::TsdbError> {
        let bad = |m: String| Err(crate::TsdbError::InvalidConfig(m));
        let samples_max = raftwatch_chunk::RECORD_SAMPLES_MAX as usize;
        if self.chunk_samples_max == 0 || self.chunk_samples_max > samples_max {
            return bad(format!(
                "chunk_samples_max = {} (must be 1..={samples_max})",
                self.chunk_samples_max
            ));
        }
        if self.ooo_buffer_samples_max == 0 || self.ooo_buffer_samples_max > samples_max {
            return bad(format!(
                "ooo_buffer_samples_max = {} (must be 1..={samples_max})",
                self.ooo_buffer_samples_max
            ));
        }
        if self.chunk_span_ms_max <= 0 {
            return bad(format!(
                "chunk_span_ms_max = {} (must be positive)",
                self.chunk_span_ms_max
            ));
        }
        if self.compaction_fanin == 1 {
            return bad("compaction_fanin = 1 (must be 0, off, or at least 2)".into());
        }
        if self.out_of_order_window_ms < 0 {
            return bad(format!(
                "out_of_order_window_ms = {} (must not be negative)",
                self.out_of_order_window_ms
            ));
        }
        Ok(())
    }
}

impl Default for TsdbConfig {
    fn default() -> Self {
        TsdbConfig {
            label_limits: LabelLimits::default(),
            out_of_order_window_ms: OUT_OF_ORDER_WINDOW_MS_DEFAULT,
            chunk_samples_max: raftwatch_chunk::CHUNK_SAMPLES_TARGET,
            chunk_span_ms_max: CHUNK_SPAN_MS_MAX_DEFAULT,
            ooo_buffer_samples_max: OOO_BUFFER_SAMPLES_MAX_DEFAULT,
            series_max: SERIES_MAX_DEFAULT,
            head_log_bytes_min: HEAD_LOG_BYTES_MIN_DEFAULT,
            block_bytes_min: BLOCK_BYTES_MIN_DEFAULT,
            compaction_fanin: COMPACTION_FANIN_DEFAULT,
            compaction_bytes_max: COMPACTION_BYTES_MAX_DEFAULT,
            block_cache_bytes: BLOCK_CACHE_BYTES_DEFAULT,
            reopenable: true,
            series_hash: raftwatch_model::labels::hash_pairs,
        }
    }
}
