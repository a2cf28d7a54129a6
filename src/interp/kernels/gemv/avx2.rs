//! [`super::scalar::gemv`] on 8 columns per register (AVX2 + FMA), four registers at a time.

use std::arch::x86_64::*;
use std::ops::Range;

/// Computes the columns of `cols` in blocks of 32, then of 8; returns how many (from
/// `cols.start`) it wrote, leaving the rest to the scalar definition.
///
/// # Safety
/// AVX2 and FMA present; `x` readable for `k` values, `w` for `k × n`, `cols.end <= n`, `y`
/// writable for `cols.len()` values.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gemv(
    x: *const f32,
    k: usize,
    w: *const f32,
    n: usize,
    cols: Range<usize>,
    y: *mut f32,
) -> usize {
    let mut c = cols.start;
    while c + 32 <= cols.end {
        let (mut a0, mut a1, mut a2, mut a3) = (
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
        );
        for kk in 0..k {
            // SAFETY: kk < k and c + 32 <= cols.end <= n: inside `x` and `w` (caller).
            unsafe {
                let xv = _mm256_set1_ps(*x.add(kk));
                let row = w.add(kk * n + c);
                a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row), a0);
                a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row.add(8)), a1);
                a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row.add(16)), a2);
                a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row.add(24)), a3);
            }
        }
        // SAFETY: columns c..c + 32 are inside `cols`, so inside `y` (caller).
        unsafe {
            let out = y.add(c - cols.start);
            _mm256_storeu_ps(out, a0);
            _mm256_storeu_ps(out.add(8), a1);
            _mm256_storeu_ps(out.add(16), a2);
            _mm256_storeu_ps(out.add(24), a3);
        }
        c += 32;
    }
    while c + 8 <= cols.end {
        let mut a = _mm256_setzero_ps();
        for kk in 0..k {
            // SAFETY: as above, for 8 columns.
            unsafe { a = _mm256_fmadd_ps(_mm256_set1_ps(*x.add(kk)), _mm256_loadu_ps(w.add(kk * n + c)), a) };
        }
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(y.add(c - cols.start), a) };
        c += 8;
    }
    c - cols.start
}
