//! An output buffer that several threads may write disjoint tiles of.

use std::marker::PhantomData;

/// A mutable `i8` output borrowed for `'a` that kernels write through a raw pointer, so
/// that threads computing disjoint tiles can share it. Creating one is safe; the `unsafe`
/// `run_shared` functions that write through it require disjoint tiles.
pub struct SharedOutput<'a> {
    ptr: *mut i8,
    len: usize,
    _borrow: PhantomData<&'a mut [i8]>,
}

// SAFETY: the pointer comes from an exclusive borrow held for 'a; concurrent writers are
// required (by the unsafe `run_shared` contracts) to write disjoint elements.
unsafe impl Send for SharedOutput<'_> {}
// SAFETY: as above.
unsafe impl Sync for SharedOutput<'_> {}

impl<'a> SharedOutput<'a> {
    /// Wraps an exclusively borrowed output slice.
    pub fn new(out: &'a mut [i8]) -> Self {
        SharedOutput {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _borrow: PhantomData,
        }
    }

    /// Length in elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the output is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The start of the buffer.
    pub(crate) fn as_ptr(&self) -> *mut i8 {
        self.ptr
    }
}
