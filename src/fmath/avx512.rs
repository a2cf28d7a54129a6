//! 16 lanes of [`super::scalar`]'s operations (AVX-512 F), in the same order.

use super::scalar::{AS_A, AS_P, CLAMP, EXP, LN2_HI, LN2_LO, LOG2E, SERIES, SERIES_LIMIT};
use super::Function;
use std::arch::x86_64::*;

/// [`super::scalar::exp_nonpositive`] on 16 lanes.
#[target_feature(enable = "avx512f")]
fn exp_nonpositive(z: __m512) -> __m512 {
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
        z,
        _mm512_set1_ps(LOG2E),
    ));
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), z);
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r);
    let mut p = _mm512_set1_ps(EXP[7]);
    for &c in EXP[..7].iter().rev() {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let scale = _mm512_slli_epi32::<23>(_mm512_cvtps_epi32(n));
    _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), scale))
}

/// The bits of `v` as integers (AVX-512 F has no float logic operations).
#[target_feature(enable = "avx512f")]
fn int(v: __m512) -> __m512i {
    _mm512_castps_si512(v)
}

/// Integer lanes as floats, bit for bit.
#[target_feature(enable = "avx512f")]
fn bits(v: __m512i) -> __m512 {
    _mm512_castsi512_ps(v)
}

/// [`super::scalar::erf`] on 16 lanes.
#[target_feature(enable = "avx512f")]
fn erf(x: __m512) -> __m512 {
    let sign = _mm512_set1_ps(-0.0);
    let one = _mm512_set1_ps(1.0);
    // `min` returns its second operand for a NaN lane, as `f32::min` returns the non-NaN one.
    let a = _mm512_min_ps(_mm512_abs_ps(x), _mm512_set1_ps(CLAMP));
    let s = _mm512_mul_ps(a, a);
    let mut q = _mm512_set1_ps(SERIES[10]);
    for &c in SERIES[..10].iter().rev() {
        q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(c));
    }
    let series = _mm512_mul_ps(q, a);
    let t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(AS_P), a, one));
    let mut r = _mm512_set1_ps(AS_A[4]);
    for &c in AS_A[..4].iter().rev() {
        r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(c));
    }
    let e = exp_nonpositive(bits(_mm512_xor_si512(int(s), int(sign))));
    let tail = _mm512_sub_ps(one, _mm512_mul_ps(_mm512_mul_ps(r, t), e));
    let small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, _mm512_set1_ps(SERIES_LIMIT));
    let m = _mm512_mask_blend_ps(small, tail, series);
    let signed = bits(_mm512_or_si512(int(m), _mm512_and_si512(int(x), int(sign))));
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), signed, x)
}

/// [`super::scalar::gelu`] on 16 lanes.
#[target_feature(enable = "avx512f")]
fn gelu(x: __m512) -> __m512 {
    let e = erf(_mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2)));
    _mm512_mul_ps(
        _mm512_mul_ps(_mm512_set1_ps(0.5), x),
        _mm512_add_ps(_mm512_set1_ps(1.0), e),
    )
}

/// Applies `f` to the whole 16-lane blocks of `x` into `y` and returns how many elements it
/// wrote (the caller finishes the tail with the scalar definition).
///
/// # Safety
/// The CPU must support AVX-512 F; `y` must be at least as long as `x`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn map(f: Function, x: &[f32], y: &mut [f32]) -> usize {
    let blocks = x.len() / 16;
    for i in 0..blocks {
        // SAFETY: `16 * i + 16 <= x.len() <= y.len()`; unaligned loads and stores.
        unsafe {
            let v = _mm512_loadu_ps(x.as_ptr().add(16 * i));
            let r = match f {
                Function::Erf => erf(v),
                Function::Gelu => gelu(v),
            };
            _mm512_storeu_ps(y.as_mut_ptr().add(16 * i), r);
        }
    }
    16 * blocks
}
