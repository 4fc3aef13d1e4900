//! Big-endian bit streams: a writer that keeps its output as a byte slice
//! at every moment (the head chunk's payload is read while it is still
//! being appended to), and a reader that loads whole 64-bit words.
//!
//! Bit order matches Prometheus' `bstream`: the first bit written is the
//! most significant bit of the first byte, and the last byte is padded with
//! zero bits.

/// `mask` returns the low `n` bits set, for `n` in `0..=64`.
#[inline]
fn mask(n: u32) -> u64 {
    u64::MAX.checked_shr(64 - n).unwrap_or(0)
}

/// `SLACK_BYTES` is how many zero bytes [`BitWriter`] keeps past the byte
/// holding the next bit, so that every write is one 8-byte read-modify-write
/// with no length bookkeeping. Grown 16 at a time so growth is rare.
const SLACK_BYTES: usize = 8;
const GROW_BYTES: usize = 16;

/// `BitWriter` appends bits to a byte vector. `bit_len` counts the bits
/// written. The vector holds the written bytes followed by zero slack:
/// every bit past `bit_len` is zero, which is what lets
/// [`BitWriter::write_bits`] OR new bits in, and `bytes.len() >= bit_len / 8
/// + SLACK_BYTES` whenever a write starts.
#[derive(Clone, Debug, Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    bit_len: usize,
}

impl BitWriter {
    /// `from_parts` resumes writing after `bit_len` bits of `bytes`.
    /// Precondition (checked by the caller): `bytes.len() == bit_len.div_ceil(8)`
    /// and the padding bits of the last byte are zero.
    pub(crate) fn from_parts(mut bytes: Vec<u8>, bit_len: usize) -> BitWriter {
        debug_assert_eq!(bytes.len(), bit_len.div_ceil(8));
        bytes.resize(bit_len / 8 + SLACK_BYTES, 0);
        BitWriter { bytes, bit_len }
    }

    /// `bytes` is everything written so far, the last byte zero-padded.
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.bit_len.div_ceil(8)]
    }

    /// `capacity` is the heap capacity of the byte vector.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// `append_aligned` lets `f` append whole bytes (the varints at the
    /// start of a chunk). Precondition: the stream is byte-aligned.
    #[inline]
    pub(crate) fn append_aligned(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        debug_assert_eq!(self.bit_len % 8, 0);
        self.bytes.truncate(self.bit_len / 8);
        f(&mut self.bytes);
        self.bit_len = self.bytes.len() * 8;
        self.bytes.resize(self.bytes.len() + SLACK_BYTES, 0);
    }

    /// `write_bits` appends the low `n` bits of `v`, most significant first.
    /// `n` must be in `1..=64`; bits of `v` above `n` are ignored.
    #[inline]
    pub(crate) fn write_bits(&mut self, v: u64, n: u32) {
        debug_assert!((1..=64).contains(&n));
        let v = v & mask(n);
        if n <= 57 {
            self.put(v, n);
        } else {
            self.put(v >> 32, n - 32);
            self.put(v & 0xffff_ffff, 32);
        }
    }

    /// `put` ORs `n <= 57` bits into the 8-byte word holding the next bit:
    /// with at most 7 bits of that byte used, they always fit.
    #[inline(always)]
    fn put(&mut self, v: u64, n: u32) {
        let idx = self.bit_len / 8;
        let used = (self.bit_len % 8) as u32;
        if self.bytes.len() < idx + SLACK_BYTES {
            self.bytes.resize(idx + SLACK_BYTES + GROW_BYTES, 0);
        }
        if let Some(slot) = self
            .bytes
            .get_mut(idx..)
            .and_then(|s| s.first_chunk_mut::<8>())
        {
            let word = u64::from_be_bytes(*slot) | (v << (64 - used - n));
            *slot = word.to_be_bytes();
        }
        self.bit_len += n as usize;
    }
}

/// `tail_word` is the word at byte `pos` of `data` when fewer than eight
/// bytes remain, zero-padded. A free function so that calling it out of line
/// does not pin the reader's state to memory.
#[cold]
fn tail_word(data: &[u8], pos: usize) -> u64 {
    let rest = data.get(pos..).unwrap_or(&[]);
    let mut w = [0u8; 8];
    let n = rest.len().min(8);
    w[..n].copy_from_slice(&rest[..n]);
    u64::from_be_bytes(w)
}

/// `BitReader` reads bits from an untrusted byte slice. Reading past the end
/// yields zero bits instead of failing, so the hot path carries no error
/// branches; callers compare [`BitReader::bit_pos`] with the input length
/// once per sample to detect truncation.
#[derive(Clone, Debug)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Next bits, left-aligned: the next bit to read is the MSB. Bits below
    /// the top `valid` may already hold the following input bits (see
    /// `refill`), never garbage.
    acc: u64,
    /// Number of bits of `acc` that are counted as loaded.
    valid: u32,
    /// Index of the next byte to load; may run past `data.len()`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// `new` starts reading at byte `start` of `data` (which may be past the
    /// end: then everything reads as zero and `bit_pos` reports overrun).
    pub(crate) fn new(data: &'a [u8], start: usize) -> BitReader<'a> {
        BitReader {
            data,
            acc: 0,
            valid: 0,
            pos: start,
        }
    }

    /// `bit_pos` is the number of bits consumed from the start of the data.
    #[inline(always)]
    pub(crate) fn bit_pos(&self) -> usize {
        self.pos * 8 - self.valid as usize
    }

    /// `refill` tops `valid` up to at least 56 bits. This is the branch-light
    /// refill from Fabian Giesen's "Reading bits in far too many ways"
    /// (variant 4): OR the next eight bytes in below the valid bits and
    /// advance by whole bytes; bits loaded but not counted are reloaded
    /// identically next time, so the OR is harmless. Calling it when enough
    /// bits are already loaded is cheap, and cheaper than a mispredicted
    /// "do I need to refill" branch, so decoders call it unconditionally at
    /// points where they know they will need bits.
    #[inline(always)]
    pub(crate) fn refill(&mut self) {
        let word = match self.data.get(self.pos..).and_then(|s| s.first_chunk::<8>()) {
            Some(w) => u64::from_be_bytes(*w),
            None => tail_word(self.data, self.pos),
        };
        self.acc |= word >> self.valid;
        self.pos += ((63 - self.valid) >> 3) as usize;
        self.valid |= 56;
    }

    /// `peek` returns the loaded bits left-aligned without consuming
    /// anything; only the top `valid` bits are meaningful (the rest are
    /// zero or the following input), so call [`BitReader::refill`] first
    /// unless enough bits are known to be loaded.
    #[inline(always)]
    pub(crate) fn peek(&self) -> u64 {
        self.acc
    }

    /// `valid` is the number of loaded bits.
    #[inline(always)]
    pub(crate) fn valid(&self) -> u32 {
        self.valid
    }

    /// `consume` drops `n` loaded bits, `n <= valid` and `n < 64`.
    #[inline(always)]
    pub(crate) fn consume(&mut self, n: u32) {
        debug_assert!(n <= self.valid && n < 64);
        self.acc <<= n;
        self.valid -= n;
    }

    /// `take` reads `n` bits, `n` in `1..=56`, as the low bits of the
    /// result.
    #[inline(always)]
    fn take(&mut self, n: u32) -> u64 {
        debug_assert!((1..=56).contains(&n));
        if self.valid < n {
            self.refill();
        }
        let v = self.acc >> (64 - n);
        self.consume(n);
        v
    }

    /// `read_bits` reads `n` bits, `n` in `1..=64`, as the low bits of the
    /// result. Not recursive, so that it always inlines: an out-of-line call
    /// would pin the reader's state to memory.
    #[inline(always)]
    pub(crate) fn read_bits(&mut self, n: u32) -> u64 {
        debug_assert!((1..=64).contains(&n));
        if n <= 56 {
            self.take(n)
        } else {
            let hi = self.take(32);
            let lo = self.take(n - 32);
            (hi << (n - 32)) | lo
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bits_round_trip(fields in proptest::collection::vec((any::<u64>(), 1u32..=64), 0..64)) {
            let mut w = BitWriter::default();
            for &(v, n) in &fields {
                w.write_bits(v, n);
            }
            let total: usize = fields.iter().map(|&(_, n)| n as usize).sum();
            prop_assert_eq!(w.bytes().len(), total.div_ceil(8));
            let mut r = BitReader::new(w.bytes(), 0);
            for &(v, n) in &fields {
                prop_assert_eq!(r.read_bits(n), v & mask(n));
            }
            prop_assert_eq!(r.bit_pos(), total);
            // Past the end everything reads as zero.
            prop_assert_eq!(r.read_bits(64), 0);
        }
    }

    #[test]
    fn writer_matches_hand_computed_bytes() {
        let mut w = BitWriter::default();
        w.write_bits(0b101, 3);
        w.write_bits(0xff, 8);
        w.write_bits(0, 1);
        w.write_bits(1, 1);
        assert_eq!(w.bytes(), &[0b1011_1111, 0b1110_1000]);
    }

    #[test]
    fn mask_covers_edges() {
        assert_eq!(mask(0), 0);
        assert_eq!(mask(1), 1);
        assert_eq!(mask(64), u64::MAX);
    }
}
