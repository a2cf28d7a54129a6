//! AVX2 rows: 32 elements per quantize step, 8 per dequantize step; tails run the scalar
//! row (the same operations, so the same bytes).

use super::scalar;
use crate::kernels::QuantParams;
use std::arch::x86_64::*;

/// [`scalar::quantize_row`] in 8-lane steps: `vdivps`, `vroundps` to nearest even, `vaddps`
/// of the zero point, `vmaxps` against -128 (which returns -128 for NaN, as the scalar
/// rule), `vminps` against 127, then an exact conversion and packing to bytes.
#[target_feature(enable = "avx2")]
pub(super) fn quantize_row(x: &[f32], q: QuantParams, y: &mut [i8]) {
    let n = x.len().min(y.len());
    let scale = _mm256_set1_ps(q.scale);
    let zp = _mm256_set1_ps(q.zero_point as f32);
    let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
    let one = |p: *const f32| {
        // SAFETY: the caller's loop bound keeps 8 floats from `p` inside `x`.
        let t = _mm256_div_ps(unsafe { _mm256_loadu_ps(p) }, scale);
        let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
        _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, zp), lo), hi))
    };
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let mut i = 0;
    while i + 32 <= n {
        let p = x[i..].as_ptr();
        // SAFETY: i + 32 <= n, so every load below reads inside `x`.
        let (a, b, c, d) = unsafe { (one(p), one(p.add(8)), one(p.add(16)), one(p.add(24))) };
        let bytes = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
        let bytes = _mm256_permutevar8x32_epi32(bytes, order);
        // SAFETY: i + 32 <= n <= y.len().
        unsafe { _mm256_storeu_si256(y[i..].as_mut_ptr().cast(), bytes) };
        i += 32;
    }
    scalar::quantize_row(&x[i..n], q, &mut y[i..n]);
}

/// [`scalar::dequantize_row`] in 8-lane steps: sign extension, `vpsubd` of the zero point,
/// an exact conversion to `f32`, one `vmulps`.
#[target_feature(enable = "avx2")]
pub(super) fn dequantize_row(x: &[i8], q: QuantParams, y: &mut [f32]) {
    let n = x.len().min(y.len());
    let scale = _mm256_set1_ps(q.scale);
    let zp = _mm256_set1_epi32(q.zero_point);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n: the 8-byte load reads inside `x`, the store writes inside `y`.
        unsafe {
            let b = _mm_loadl_epi64(x[i..].as_ptr().cast());
            let v = _mm256_sub_epi32(_mm256_cvtepi8_epi32(b), zp);
            _mm256_storeu_ps(y[i..].as_mut_ptr(), _mm256_mul_ps(_mm256_cvtepi32_ps(v), scale));
        }
        i += 8;
    }
    scalar::dequantize_row(&x[i..n], q, &mut y[i..n]);
}
