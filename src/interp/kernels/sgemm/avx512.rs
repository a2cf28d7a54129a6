//! [`super::scalar::sgemm`] on panels of 32 columns (two zmm registers, AVX-512 F): tiles of
//! up to [`ROWS`] rows × 32 columns of accumulators.

use std::arch::x86_64::*;

/// Columns per panel.
pub(super) const WIDTH: usize = 32;
/// Rows per full tile (24 accumulators, two B registers, a broadcast).
const ROWS: usize = 12;

/// Every panel against every row block of A, over the first `k` of each panel's
/// `panel_rows` rows (`k ≤ panel_rows`).
///
/// # Safety
/// AVX-512 F present; rows `r < m` of `a` (stride `lda`) readable for `k` values, `b` for
/// `n.div_ceil(32) · 32 · panel_rows` values, rows `r < m` of `c` (stride `ldc`) writable for `n`; `bias` null or readable for `n` values.
#[target_feature(enable = "avx512f")]
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
        // SAFETY: panel p < n.div_ceil(32) starts inside `b`; column p · 32 < n inside each
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
            // SAFETY: rows r..r + 12 are rows of A and C (caller).
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
                5 => tile::<5>(a, lda, k, panel, c, ldc, cols, bias),
                6 => tile::<6>(a, lda, k, panel, c, ldc, cols, bias),
                7 => tile::<7>(a, lda, k, panel, c, ldc, cols, bias),
                8 => tile::<8>(a, lda, k, panel, c, ldc, cols, bias),
                9 => tile::<9>(a, lda, k, panel, c, ldc, cols, bias),
                10 => tile::<10>(a, lda, k, panel, c, ldc, cols, bias),
                _ => tile::<11>(a, lda, k, panel, c, ldc, cols, bias),
            }
        }
    }
}

/// `R` rows of A against one panel, the first `cols` (1 to 32) columns stored, plus the
/// panel's `bias` values (one rounding after the chain) unless `bias` is null.
///
/// # Safety
/// AVX-512 F present; rows `r < R` of `a` readable for `k` values, `b` for `32 · k`, rows of
/// `c` writable for `cols` values; `bias` null or readable for `cols` values.
#[inline]
#[target_feature(enable = "avx512f")]
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
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for kk in 0..k {
        // SAFETY: kk < k: inside the panel and each of the R rows of A (caller).
        unsafe {
            let b0 = _mm512_loadu_ps(b.add(kk * WIDTH));
            let b1 = _mm512_loadu_ps(b.add(kk * WIDTH + 16));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*a.add(r * lda + kk));
                acc[0] = _mm512_fmadd_ps(x, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(x, b1, acc[1]);
            }
        }
    }
    let bias = if bias.is_null() {
        None
    } else {
        // SAFETY: a bias holds `cols` values here (caller); the masked loads read only those.
        unsafe {
            let low = _mm512_maskz_loadu_ps(((1u32 << cols.min(16)) - 1) as __mmask16, bias);
            let high = if cols > 16 {
                _mm512_maskz_loadu_ps(((1u32 << (cols - 16)) - 1) as __mmask16, bias.add(16))
            } else {
                _mm512_setzero_ps()
            };
            Some([low, high])
        }
    };
    for (r, acc) in acc.iter().enumerate() {
        let acc = match bias {
            Some(b) => [_mm512_add_ps(acc[0], b[0]), _mm512_add_ps(acc[1], b[1])],
            None => *acc,
        };
        // SAFETY: row r < R of C holds `cols` writable values (caller); the masked stores write
        // only the first `cols`, and the second half is addressed only when cols > 16.
        unsafe {
            let row = c.add(r * ldc);
            if cols == WIDTH {
                _mm512_storeu_ps(row, acc[0]);
                _mm512_storeu_ps(row.add(16), acc[1]);
            } else if cols > 16 {
                _mm512_storeu_ps(row, acc[0]);
                _mm512_mask_storeu_ps(row.add(16), ((1u32 << (cols - 16)) - 1) as __mmask16, acc[1]);
            } else {
                _mm512_mask_storeu_ps(row, ((1u32 << cols) - 1) as __mmask16, acc[0]);
            }
        }
    }
}
