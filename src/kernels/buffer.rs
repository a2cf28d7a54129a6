//! A 64-byte-aligned, zero-initialised byte buffer for packed weights and scratch space, and
//! [`PackedBytes`]: packed weights either built at load or shared from their owner (a
//! memory-mapped program file) without a copy.

use crate::{Error, Result};
use std::sync::Arc;

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

impl AsRef<[u8]> for AlignedBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for AlignedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBytes({} bytes)", self.len)
    }
}

/// Alignment the SIMD kernels require of packed weights (aligned 64-byte loads).
pub const PACKED_ALIGN: usize = 64;

/// Immutable bytes whose owner is shared, e.g. a program file mapped into memory.
pub type ByteOwner = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A [`PACKED_ALIGN`]-aligned range of a shared, immutable byte owner.
#[derive(Clone)]
pub struct SharedBytes {
    owner: ByteOwner,
    start: usize,
    len: usize,
}

impl SharedBytes {
    /// `len` bytes of `owner` from `start`; fails unless the range is inside the owner and
    /// starts at a [`PACKED_ALIGN`]-aligned address.
    pub fn new(owner: ByteOwner, start: usize, len: usize) -> Result<Self> {
        let bytes = (*owner).as_ref();
        let end = start.checked_add(len).filter(|&e| e <= bytes.len());
        if end.is_none() {
            return Err(Error::CorruptFile(format!(
                "packed range {start}+{len} lies outside {} bytes",
                bytes.len()
            )));
        }
        if !(bytes.as_ptr() as usize + start).is_multiple_of(PACKED_ALIGN) {
            return Err(Error::CorruptFile(format!(
                "packed range at {start} is not {PACKED_ALIGN}-byte aligned in memory"
            )));
        }
        Ok(SharedBytes { owner, start, len })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.start..self.start + self.len]
    }
}

/// Packed constant data of a kernel: built at load, or shared in place from a program file.
/// Either way the bytes start at a [`PACKED_ALIGN`]-aligned address.
#[derive(Clone)]
pub enum PackedBytes {
    /// Packed at load into a buffer of its own.
    Built(AlignedBytes),
    /// Used in place from shared bytes.
    Shared(SharedBytes),
}

impl PackedBytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            PackedBytes::Built(b) => b.as_slice(),
            PackedBytes::Shared(s) => s.as_slice(),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bytes are shared with their owner (not copied).
    pub fn is_shared(&self) -> bool {
        matches!(self, PackedBytes::Shared(_))
    }
}

impl std::fmt::Debug for PackedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = if self.is_shared() { "shared" } else { "built" };
        write!(f, "PackedBytes({} bytes, {how})", self.len())
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

    #[test]
    fn shared_ranges_are_checked() {
        let owner: ByteOwner = Arc::new(AlignedBytes::zeroed(256).unwrap());
        let s = SharedBytes::new(owner.clone(), 64, 128).unwrap();
        assert_eq!(s.as_slice().len(), 128);
        assert_eq!(s.as_slice().as_ptr() as usize % PACKED_ALIGN, 0);
        let p = PackedBytes::Shared(s);
        assert!(p.is_shared() && p.len() == 128);
        for (start, len) in [(64, 193), (usize::MAX, 2), (256, 1)] {
            assert!(matches!(
                SharedBytes::new(owner.clone(), start, len),
                Err(Error::CorruptFile(_))
            ));
        }
        let err = SharedBytes::new(owner, 32, 32).err().unwrap().to_string();
        assert!(err.contains("aligned"), "{err}");
    }
}
