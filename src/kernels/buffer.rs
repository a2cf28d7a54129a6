//! A 64-byte-aligned, zero-initialised byte buffer for packed weights and scratch space.

use crate::{Error, Result};

/// Largest packed-weights buffer the packers create (1 GiB); bigger requests are an error.
pub const MAX_PACKED_BYTES: usize = 1 << 30;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Owned bytes whose start is aligned to a cache line (64 bytes).
#[derive(Clone)]
pub struct AlignedBytes {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBytes {
    /// `len` zero bytes; fails with [`Error::ResourceLimit`] above [`MAX_PACKED_BYTES`].
    pub fn zeroed(len: usize) -> Result<Self> {
        if len > MAX_PACKED_BYTES {
            return Err(Error::ResourceLimit(format!(
                "packed buffer of {len} bytes exceeds the {MAX_PACKED_BYTES}-byte limit"
            )));
        }
        Ok(AlignedBytes {
            lines: vec![Line([0; 64]); len.div_ceil(64)],
            len,
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `lines` owns `lines.len() * 64 >= len` initialised bytes, contiguous
        // because `Line` is `repr(C)` with size 64 and no padding.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<u8>(), self.len) }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

impl std::fmt::Debug for AlignedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBytes({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        let mut b = AlignedBytes::zeroed(100).unwrap();
        assert_eq!(b.as_slice().as_ptr() as usize % 64, 0);
        assert!(b.as_slice().iter().all(|&x| x == 0));
        b.as_mut_slice()[99] = 7;
        assert_eq!(b.as_slice()[99], 7);
        assert!(AlignedBytes::zeroed(MAX_PACKED_BYTES + 1).is_err());
    }
}
