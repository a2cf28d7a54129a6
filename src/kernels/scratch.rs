//! Per-call scratch arrays of kernels: on the stack up to a bound, so that a kernel call
//! allocates nothing in the common case, and on the heap beyond it.

use std::ops::{Deref, DerefMut};

/// `len` copies of a value, on the stack when `len <= N` and on the heap otherwise.
pub enum Scratch<T: Copy, const N: usize> {
    /// The first `len` of `N` elements are in use.
    Stack([T; N], usize),
    /// More than `N` elements.
    Heap(Vec<T>),
}

impl<T: Copy, const N: usize> Scratch<T, N> {
    /// `len` copies of `fill`.
    pub fn new(len: usize, fill: T) -> Self {
        if len <= N {
            Scratch::Stack([fill; N], len)
        } else {
            Scratch::Heap(vec![fill; len])
        }
    }
}

impl<T: Copy, const N: usize> Deref for Scratch<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Scratch::Stack(a, len) => &a[..*len],
            Scratch::Heap(v) => v,
        }
    }
}

impl<T: Copy, const N: usize> DerefMut for Scratch<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Scratch::Stack(a, len) => &mut a[..*len],
            Scratch::Heap(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_arrays_live_on_the_stack_and_long_ones_on_the_heap() {
        let mut s: Scratch<u8, 4> = Scratch::new(3, 7);
        assert!(matches!(s, Scratch::Stack(_, 3)));
        s[2] = 1;
        assert_eq!(&*s, &[7, 7, 1]);
        let h: Scratch<u8, 4> = Scratch::new(5, 2);
        assert!(matches!(h, Scratch::Heap(_)));
        assert_eq!(&*h, &[2; 5]);
    }
}
