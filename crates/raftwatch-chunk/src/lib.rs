//! raftwatch-chunk: Gorilla (XOR) compression of float samples, and the
//! checksummed record that carries one chunk on disk.
//!
//! Layer 2 of the workspace: pure, synchronous, no I/O. The bitstream is the
//! one Prometheus' `tsdb/chunkenc/xor.go` writes (Gorilla, Pelkonen et al.,
//! VLDB 2015, adapted to millisecond timestamps), minus Prometheus' 2-byte
//! sample-count header: the count lives in the record header instead. The
//! byte-level specification, and where it departs from the paper and from
//! Prometheus, is `docs/format/chunk.md`.
//!
//! - [`XorChunk`] is the appendable head chunk;
//! - [`XorIter`] decodes a payload, never panicking on corrupt input;
//! - [`ChunkRecord`] is the on-disk record (version, encoding, header, CRC);
//! - [`encode_decimal`] and [`DecimalIter`] are the second payload encoding,
//!   integer mantissas of decimal values, and [`encode_scaled_decimal`] and
//!   [`ScaledDecimalIter`] the third, the same with mantissa differences
//!   divided by their common factor; [`XorChunk::encode_compact_record`]
//!   picks the smallest for a sealed chunk.

mod bits;
mod decimal;
mod payload;
mod record;
mod xor;

pub use decimal::{
    DECIMAL_EXPONENT_MAX, DecimalIter, ScaledDecimalIter, encode_decimal, encode_scaled_decimal,
};
pub use record::{
    ChunkIter, ChunkRecord, ENCODING_DECIMAL, ENCODING_DECIMAL_SCALED, ENCODING_XOR,
    RECORD_SAMPLES_MAX, RECORD_VERSION,
};
pub use xor::{XorChunk, XorIter};

/// `CHUNK_SAMPLES_TARGET` is the sample count at which callers cut the head
/// chunk and start a new one (Prometheus uses the same 120: two hours of
/// 60 s scrapes, where compression has flattened out).
pub const CHUNK_SAMPLES_TARGET: usize = 120;

const _: () = assert!(CHUNK_SAMPLES_TARGET as u64 <= RECORD_SAMPLES_MAX);

/// `ChunkError` says why a payload or a record could not be decoded. All of
/// them mean the bytes are not a chunk this crate wrote; none is retryable.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// The payload (or record) ended before `num_samples` samples were read.
    #[error("chunk truncated: input ended before all samples were read")]
    Truncated,
    /// Decoded timestamps were not strictly increasing, which an encoder
    /// never produces: the payload is corrupt.
    #[error("chunk corrupt: timestamp {next} does not follow {previous}")]
    NonMonotonic {
        /// The timestamp decoded before `next`.
        previous: i64,
        /// The offending timestamp, `<= previous`.
        next: i64,
    },
    /// The record's CRC-32C did not match its bytes.
    #[error("chunk record checksum mismatch: stored {expected:#010x}, computed {actual:#010x}")]
    ChecksumMismatch {
        /// The checksum stored in the record.
        expected: u32,
        /// The checksum computed over the record's bytes.
        actual: u32,
    },
    /// The record's version byte is not [`RECORD_VERSION`].
    #[error("unsupported chunk record version {0}")]
    UnsupportedVersion(u8),
    /// The record's encoding byte is not [`ENCODING_XOR`].
    #[error("unsupported chunk encoding {0}")]
    UnsupportedEncoding(u8),
    /// Anything else structurally wrong: a header field out of range,
    /// trailing bytes, an overlong varint, or a payload bit pattern the
    /// encoder never emits.
    #[error("malformed chunk: {0}")]
    Malformed(&'static str),
}
