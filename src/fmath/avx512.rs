//! 16 lanes of [`super::scalar`]'s operations (AVX-512 F), in the same order.

use super::scalar::{AS_A, AS_P, CLAMP, EXP, EXP_MAX, EXP_MIN, LN2_HI, LN2_LO, LOG2E, SERIES, SERIES_LIMIT};
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

/// [`super::scalar::exp`] on 16 lanes.
#[target_feature(enable = "avx512f")]
fn exp(z: __m512) -> __m512 {
    let c = _mm512_min_ps(_mm512_max_ps(z, _mm512_set1_ps(EXP_MIN)), _mm512_set1_ps(EXP_MAX));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
        c,
        _mm512_set1_ps(LOG2E),
    ));
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), c);
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r);
    let mut p = _mm512_set1_ps(EXP[7]);
    for &k in EXP[..7].iter().rev() {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(k));
    }
    let half = _mm512_mul_ps(n, _mm512_set1_ps(0.5));
    let n1 = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(half);
    let n2 = _mm512_sub_ps(n, n1);
    let bias = _mm512_set1_epi32(127);
    let scale = |k: __m512| -> __m512 {
        _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(k),
            bias,
        )))
    };
    let v = _mm512_mul_ps(_mm512_mul_ps(p, scale(n1)), scale(n2));
    let v = _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask::<_CMP_LT_OQ>(z, _mm512_set1_ps(EXP_MIN)),
        v,
        _mm512_setzero_ps(),
    );
    let v = _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask::<_CMP_GT_OQ>(z, _mm512_set1_ps(EXP_MAX)),
        v,
        _mm512_set1_ps(f32::INFINITY),
    );
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(z, z), v, z)
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

/// [`super::scalar::sigmoid`] on 16 lanes.
#[target_feature(enable = "avx512f")]
fn sigmoid(x: __m512) -> __m512 {
    let one = _mm512_set1_ps(1.0);
    let a = _mm512_castsi512_ps(_mm512_and_si512(
        _mm512_castps_si512(x),
        _mm512_set1_epi32(i32::MAX),
    ));
    let e = exp(_mm512_castsi512_ps(_mm512_xor_si512(
        _mm512_castps_si512(a),
        _mm512_set1_epi32(i32::MIN),
    )));
    let d = _mm512_add_ps(one, e);
    // One division: the numerator is 1 for x >= 0 and e below.
    let numerator = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_setzero_ps()), e, one);
    _mm512_div_ps(numerator, d)
}

/// [`super::scalar::silu`] on 16 lanes.
#[target_feature(enable = "avx512f")]
fn silu(x: __m512) -> __m512 {
    _mm512_mul_ps(x, sigmoid(x))
}

/// Applies `f` to the whole 16-lane blocks of the `n` elements at `x` into `y` and returns
/// how many elements it wrote (the caller finishes the tail with the scalar definition).
///
/// # Safety
/// The CPU must support AVX-512 F; `x` must be readable and `y` writable for `n`
/// elements; they may be the same pointer (each block is loaded before it is stored) but must not
/// otherwise overlap.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn map(f: Function, x: *const f32, y: *mut f32, n: usize) -> usize {
    let blocks = n / 16;
    for i in 0..blocks {
        // SAFETY: `16 * i + 16 <= n`, in bounds of both buffers (caller); unaligned accesses.
        unsafe {
            let v = _mm512_loadu_ps(x.add(16 * i));
            let r = match f {
                Function::Erf => erf(v),
                Function::Gelu => gelu(v),
                Function::Exp => exp(v),
                Function::Sigmoid => sigmoid(v),
                Function::Silu => silu(v),
            };
            _mm512_storeu_ps(y.add(16 * i), r);
        }
    }
    16 * blocks
}
