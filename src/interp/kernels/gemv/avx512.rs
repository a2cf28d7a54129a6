//! [`super::scalar::gemv`] on 16 columns per register (AVX-512 F), four registers at a time.

use std::arch::x86_64::*;
use std::ops::Range;

/// Computes the columns of `cols` in blocks of 64, then of 16; returns how many (from
/// `cols.start`) it wrote, leaving the rest to the scalar definition.
///
/// # Safety
/// AVX-512 F present; `x` readable for `k` values, `w` for `k × n`, `cols.end <= n`, `y`
/// writable for `cols.len()` values.
#[target_feature(enable = "avx512f")]
pub unsafe fn gemv(
    x: *const f32,
    k: usize,
    w: *const f32,
    n: usize,
    cols: Range<usize>,
    y: *mut f32,
) -> usize {
    let mut c = cols.start;
    while c + 64 <= cols.end {
        let (mut a0, mut a1, mut a2, mut a3) = (
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
        );
        for kk in 0..k {
            // SAFETY: kk < k and c + 64 <= cols.end <= n: inside `x` and `w` (caller).
            unsafe {
                let xv = _mm512_set1_ps(*x.add(kk));
                let row = w.add(kk * n + c);
                a0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row), a0);
                a1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row.add(16)), a1);
                a2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row.add(32)), a2);
                a3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row.add(48)), a3);
            }
        }
        // SAFETY: columns c..c + 64 are inside `cols`, so inside `y` (caller).
        unsafe {
            let out = y.add(c - cols.start);
            _mm512_storeu_ps(out, a0);
            _mm512_storeu_ps(out.add(16), a1);
            _mm512_storeu_ps(out.add(32), a2);
            _mm512_storeu_ps(out.add(48), a3);
        }
        c += 64;
    }
    while c + 16 <= cols.end {
        let mut a = _mm512_setzero_ps();
        for kk in 0..k {
            // SAFETY: as above, for 16 columns.
            unsafe { a = _mm512_fmadd_ps(_mm512_set1_ps(*x.add(kk)), _mm512_loadu_ps(w.add(kk * n + c)), a) };
        }
        // SAFETY: as above.
        unsafe { _mm512_storeu_ps(y.add(c - cols.start), a) };
        c += 16;
    }
    c - cols.start
}
