//! [`super::scalar::sgemm`] on panels of 16 columns (two ymm registers, AVX2 + FMA): tiles of
//! up to [`ROWS`] rows × 16 columns of accumulators.

use std::arch::x86_64::*;

/// Columns per panel.
pub(super) const WIDTH: usize = 16;
/// Rows per full tile (12 accumulators, two B registers, a broadcast).
const ROWS: usize = 6;

/// Every panel against every row block of A, over the first `k` of each panel's
/// `panel_rows` rows (`k ≤ panel_rows`).
///
/// # Safety
/// AVX2 and FMA present; rows `r < m` of `a` (stride `lda`) readable for `k` values, `b` for
/// `n.div_ceil(16) · 16 · panel_rows` values, rows `r < m` of `c` (stride `ldc`) writable for `n`; `bias` null or readable for `n` values.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn sgemm(
    a: *const f32,
    lda: usize,
    m: usize,
    k: usize,
    b: *const f32,
    panel_rows: usize,
    n: usize,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
) {
    for p in 0..n.div_ceil(WIDTH) {
        let cols = (n - p * WIDTH).min(WIDTH);
        // SAFETY: panel p < n.div_ceil(16) starts inside `b`; column p · 16 < n inside each
        // row of `c` (caller).
        let (panel, c) = unsafe { (b.add(p * WIDTH * panel_rows), c.add(p * WIDTH)) };
        let bias = if bias.is_null() {
            bias
        } else {
            // SAFETY: a bias holds n values (caller), and p · WIDTH < n.
            unsafe { bias.add(p * WIDTH) }
        };
        let mut r = 0;
        while r + ROWS <= m {
            // SAFETY: rows r..r + 6 are rows of A and C (caller).
            unsafe { tile::<ROWS>(a.add(r * lda), lda, k, panel, c.add(r * ldc), ldc, cols, bias) };
            r += ROWS;
        }
        // SAFETY: the remaining m - r rows, as above.
        unsafe {
            let (a, c) = (a.add(r * lda), c.add(r * ldc));
            match m - r {
                0 => {}
                1 => tile::<1>(a, lda, k, panel, c, ldc, cols, bias),
                2 => tile::<2>(a, lda, k, panel, c, ldc, cols, bias),
                3 => tile::<3>(a, lda, k, panel, c, ldc, cols, bias),
                4 => tile::<4>(a, lda, k, panel, c, ldc, cols, bias),
                _ => tile::<5>(a, lda, k, panel, c, ldc, cols, bias),
            }
        }
    }
}

/// Lane masks for `_mm256_maskstore_ps`: the 8 lanes from `8 - count` are the first `count`.
const MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// The mask of the first `count` (0 to 8) lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn mask(count: usize) -> __m256i {
    // SAFETY: 8 - count <= 8, so the 8 lanes read are inside `MASKS`.
    unsafe { _mm256_loadu_si256(MASKS.as_ptr().add(8 - count).cast()) }
}

/// `R` rows of A against one panel, the first `cols` (1 to 16) columns stored, plus the
/// panel's `bias` values (one rounding after the chain) unless `bias` is null.
///
/// # Safety
/// AVX2 and FMA present; rows `r < R` of `a` readable for `k` values, `b` for `16 · k`, rows
/// of `c` writable for `cols` values; `bias` null or readable for `cols` values.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(
    a: *const f32,
    lda: usize,
    k: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    bias: *const f32,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for kk in 0..k {
        // SAFETY: kk < k: inside the panel and each of the R rows of A (caller).
        unsafe {
            let b0 = _mm256_loadu_ps(b.add(kk * WIDTH));
            let b1 = _mm256_loadu_ps(b.add(kk * WIDTH + 8));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_set1_ps(*a.add(r * lda + kk));
                acc[0] = _mm256_fmadd_ps(x, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(x, b1, acc[1]);
            }
        }
    }
    let bias = if bias.is_null() {
        None
    } else {
        // SAFETY: a bias holds `cols` values here (caller); the masked loads read only those.
        unsafe {
            let low = _mm256_maskload_ps(bias, mask(cols.min(8)));
            let high = if cols > 8 {
                _mm256_maskload_ps(bias.add(8), mask(cols - 8))
            } else {
                _mm256_setzero_ps()
            };
            Some([low, high])
        }
    };
    for (r, acc) in acc.iter().enumerate() {
        let acc = match bias {
            Some(b) => [_mm256_add_ps(acc[0], b[0]), _mm256_add_ps(acc[1], b[1])],
            None => *acc,
        };
        // SAFETY: row r < R of C holds `cols` writable values (caller); the masked stores write
        // only the first `cols`, and the second half is addressed only when cols > 8.
        unsafe {
            let row = c.add(r * ldc);
            if cols == WIDTH {
                _mm256_storeu_ps(row, acc[0]);
                _mm256_storeu_ps(row.add(8), acc[1]);
            } else if cols > 8 {
                _mm256_storeu_ps(row, acc[0]);
                _mm256_maskstore_ps(row.add(8), mask(cols - 8), acc[1]);
            } else {
                _mm256_maskstore_ps(row, mask(cols), acc[0]);
            }
        }
    }
}
