//! AVX-512 (F/BW/VL) rows: 16 elements per step with masked tails.

use crate::kernels::QuantParams;
use std::arch::x86_64::*;

/// The scalar quantize row in 16-lane steps (the operations of the AVX2 row; `vpmovsdb`
/// narrows the exact integers).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn quantize_row(x: &[f32], q: QuantParams, y: &mut [i8]) {
    let n = x.len().min(y.len());
    let scale = _mm512_set1_ps(q.scale);
    let zp = _mm512_set1_ps(q.zero_point as f32);
    let (lo, hi) = (_mm512_set1_ps(-128.0), _mm512_set1_ps(127.0));
    let mut i = 0;
    while i < n {
        let k: __mmask16 = if n - i >= 16 { !0 } else { (1u16 << (n - i)) - 1 };
        // SAFETY: mask `k` covers only elements i..n, inside `x` and `y`; masked-off lanes
        // are neither read nor written.
        unsafe {
            let t = _mm512_div_ps(_mm512_maskz_loadu_ps(k, x[i..].as_ptr()), scale);
            let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
            let v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, zp), lo), hi);
            _mm512_mask_cvtsepi32_storeu_epi8(y[i..].as_mut_ptr(), k, _mm512_cvttps_epi32(v));
        }
        i += 16;
    }
}

/// The scalar dequantize row in 16-lane steps.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn dequantize_row(x: &[i8], q: QuantParams, y: &mut [f32]) {
    let n = x.len().min(y.len());
    let scale = _mm512_set1_ps(q.scale);
    let zp = _mm512_set1_epi32(q.zero_point);
    let mut i = 0;
    while i < n {
        let k: __mmask16 = if n - i >= 16 { !0 } else { (1u16 << (n - i)) - 1 };
        // SAFETY: mask `k` covers only elements i..n, inside `x` and `y`.
        unsafe {
            let b = _mm_maskz_loadu_epi8(k, x[i..].as_ptr());
            let v = _mm512_sub_epi32(_mm512_cvtepi8_epi32(b), zp);
            _mm512_mask_storeu_ps(
                y[i..].as_mut_ptr(),
                k,
                _mm512_mul_ps(_mm512_cvtepi32_ps(v), scale),
            );
        }
        i += 16;
    }
}

/// [`scalar::finite_range`] in 16-lane steps: `vminps` / `vmaxps` per lane, folded across
/// lanes at the end (a NaN may pass through or be dropped by them, so NaNs are found by an
/// unordered compare accumulated in a mask).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn finite_range(x: &[f32]) -> Option<(f32, f32)> {
    let n = x.len();
    let (mut lo, mut hi) = (_mm512_set1_ps(f32::INFINITY), _mm512_set1_ps(f32::NEG_INFINITY));
    let mut nan: __mmask16 = 0;
    let mut i = 0;
    while i < n {
        let k: __mmask16 = if n - i >= 16 { !0 } else { (1u16 << (n - i)) - 1 };
        // SAFETY: mask `k` covers only elements i..n, inside `x`; masked-off lanes are not
        // read and keep the accumulators' values.
        unsafe {
            let v = _mm512_maskz_loadu_ps(k, x[i..].as_ptr());
            lo = _mm512_mask_min_ps(lo, k, lo, v);
            hi = _mm512_mask_max_ps(hi, k, hi, v);
            nan |= _mm512_mask_cmp_ps_mask::<_CMP_UNORD_Q>(k, v, v);
        }
        i += 16;
    }
    let (lo, hi) = (_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi));
    (n > 0 && nan == 0 && lo.is_finite() && hi.is_finite()).then_some((lo, hi))
}
