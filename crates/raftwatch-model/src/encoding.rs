//! Small binary encodings shared by the on-disk formats: LEB128 varints
//! (unsigned, and zig-zag signed). Decoders return `None` on truncated or
//! overlong input instead of panicking: their bytes come from disk or the
//! network.

/// `put_uvarint` appends `v` as an unsigned LEB128 varint (1 to 10 bytes).
pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// `put_varint` appends `v` zig-zag encoded as an unsigned varint.
pub fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, zigzag(v));
}

/// `zigzag` maps signed integers to unsigned so that small magnitudes stay
/// small: 0, -1, 1, -2, ... become 0, 1, 2, 3, ...
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// `unzigzag` inverts [`zigzag`].
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// `get_uvarint` decodes an unsigned varint from the front of `buf`,
/// returning the value and the bytes consumed, or `None` if `buf` is
/// truncated or the varint is longer than 10 bytes or overflows 64 bits.
pub fn get_uvarint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        let low = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return None; // overflow
        }
        v |= low << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// `get_varint` decodes a zig-zag signed varint, see [`get_uvarint`].
pub fn get_varint(buf: &[u8]) -> Option<(i64, usize)> {
    get_uvarint(buf).map(|(v, n)| (unzigzag(v), n))
}

/// `Reader` is a cursor over untrusted bytes; every accessor returns `None`
/// at the end of input instead of panicking.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// `new` starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// `position` is the number of bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// `remaining` is the unread tail.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// `uvarint` reads an unsigned varint.
    pub fn uvarint(&mut self) -> Option<u64> {
        let (v, n) = get_uvarint(self.remaining())?;
        self.pos += n;
        Some(v)
    }

    /// `varint` reads a zig-zag signed varint.
    pub fn varint(&mut self) -> Option<i64> {
        let (v, n) = get_varint(self.remaining())?;
        self.pos += n;
        Some(v)
    }

    /// `u8` reads one byte.
    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// `bytes` reads exactly `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// `u32_le` reads a little-endian `u32`.
    pub fn u32_le(&mut self) -> Option<u32> {
        let b = self.bytes(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `u64_be` reads a big-endian `u64`.
    pub fn u64_be(&mut self) -> Option<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_be_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn uvarint_round_trips(v in any::<u64>()) {
            let mut buf = Vec::new();
            put_uvarint(&mut buf, v);
            prop_assert_eq!(get_uvarint(&buf), Some((v, buf.len())));
        }

        #[test]
        fn varint_round_trips(v in any::<i64>()) {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            prop_assert_eq!(get_varint(&buf), Some((v, buf.len())));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = get_uvarint(&bytes);
            let _ = get_varint(&bytes);
        }
    }

    #[test]
    fn truncated_and_overlong_varints_are_rejected() {
        assert_eq!(get_uvarint(&[]), None);
        assert_eq!(get_uvarint(&[0x80]), None);
        assert_eq!(get_uvarint(&[0xff; 11]), None);
        // 10th byte may only carry the top bit of a u64.
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(get_uvarint(&max), Some((u64::MAX, 10)));
        max[9] = 0x02;
        assert_eq!(get_uvarint(&max), None);
    }
}
