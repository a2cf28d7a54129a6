//! The portable lookup loop (the test oracle of the SIMD variants).

/// `y[i] = table[x[i] as u8]` for `i < n`.
///
/// # Safety
/// `x` is readable and `y` writable for `n` bytes; they are equal or do not overlap.
pub(super) unsafe fn map(table: &[i8; 256], x: *const i8, y: *mut i8, n: usize) {
    for i in 0..n {
        // SAFETY: i < n (caller contract); each byte is read before it is written.
        unsafe { *y.add(i) = table[*x.add(i) as u8 as usize] };
    }
}
