//! 8 lanes of [`super::scalar`]'s operations (AVX2 + FMA), in the same order.

use super::scalar::{AS_A, AS_P, CLAMP, EXP, EXP_MAX, EXP_MIN, LN2_HI, LN2_LO, LOG2E, SERIES, SERIES_LIMIT};
use super::Function;
use std::arch::x86_64::*;

/// [`super::scalar::exp_nonpositive`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
fn exp_nonpositive(z: __m256) -> __m256 {
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        z,
        _mm256_set1_ps(LOG2E),
    ));
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), z);
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
    let mut p = _mm256_set1_ps(EXP[7]);
    for &c in EXP[..7].iter().rev() {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let scale = _mm256_slli_epi32::<23>(_mm256_cvtps_epi32(n));
    _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), scale))
}

/// [`super::scalar::erf`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
fn erf(x: __m256) -> __m256 {
    let sign = _mm256_set1_ps(-0.0);
    let one = _mm256_set1_ps(1.0);
    // `min` returns its second operand for a NaN lane, as `f32::min` returns the non-NaN one.
    let a = _mm256_min_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(CLAMP));
    let s = _mm256_mul_ps(a, a);
    let mut q = _mm256_set1_ps(SERIES[10]);
    for &c in SERIES[..10].iter().rev() {
        q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(c));
    }
    let series = _mm256_mul_ps(q, a);
    let t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(AS_P), a, one));
    let mut r = _mm256_set1_ps(AS_A[4]);
    for &c in AS_A[..4].iter().rev() {
        r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(c));
    }
    let e = exp_nonpositive(_mm256_xor_ps(s, sign));
    let tail = _mm256_sub_ps(one, _mm256_mul_ps(_mm256_mul_ps(r, t), e));
    let small = _mm256_cmp_ps::<_CMP_LT_OQ>(a, _mm256_set1_ps(SERIES_LIMIT));
    let m = _mm256_blendv_ps(tail, series, small);
    let signed = _mm256_or_ps(m, _mm256_and_ps(x, sign));
    _mm256_blendv_ps(signed, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x))
}

/// [`super::scalar::exp`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
fn exp(z: __m256) -> __m256 {
    let c = _mm256_min_ps(_mm256_max_ps(z, _mm256_set1_ps(EXP_MIN)), _mm256_set1_ps(EXP_MAX));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        c,
        _mm256_set1_ps(LOG2E),
    ));
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), c);
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
    let mut p = _mm256_set1_ps(EXP[7]);
    for &k in EXP[..7].iter().rev() {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(k));
    }
    let half = _mm256_mul_ps(n, _mm256_set1_ps(0.5));
    let n1 = _mm256_floor_ps(half);
    let n2 = _mm256_sub_ps(n, n1);
    let bias = _mm256_set1_epi32(127);
    let scale = |k: __m256| -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(k),
            bias,
        )))
    };
    let v = _mm256_mul_ps(_mm256_mul_ps(p, scale(n1)), scale(n2));
    let v = _mm256_blendv_ps(
        v,
        _mm256_setzero_ps(),
        _mm256_cmp_ps::<_CMP_LT_OQ>(z, _mm256_set1_ps(EXP_MIN)),
    );
    let v = _mm256_blendv_ps(
        v,
        _mm256_set1_ps(f32::INFINITY),
        _mm256_cmp_ps::<_CMP_GT_OQ>(z, _mm256_set1_ps(EXP_MAX)),
    );
    _mm256_blendv_ps(v, z, _mm256_cmp_ps::<_CMP_UNORD_Q>(z, z))
}

/// [`super::scalar::gelu`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
fn gelu(x: __m256) -> __m256 {
    let e = erf(_mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2)));
    _mm256_mul_ps(
        _mm256_mul_ps(_mm256_set1_ps(0.5), x),
        _mm256_add_ps(_mm256_set1_ps(1.0), e),
    )
}

/// [`super::scalar::sigmoid`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
fn sigmoid(x: __m256) -> __m256 {
    let one = _mm256_set1_ps(1.0);
    let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
    let e = exp(_mm256_xor_ps(a, _mm256_set1_ps(-0.0)));
    let d = _mm256_add_ps(one, e);
    // One division: the numerator is 1 for x >= 0 and e below.
    let numerator = _mm256_blendv_ps(e, one, _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_setzero_ps()));
    _mm256_div_ps(numerator, d)
}

/// [`super::scalar::silu`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
fn silu(x: __m256) -> __m256 {
    _mm256_mul_ps(x, sigmoid(x))
}

/// Applies `f` to the whole 8-lane blocks of the `n` elements at `x` into `y` and returns
/// how many elements it wrote (the caller finishes the tail with the scalar definition).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `x` must be readable and `y` writable for `n`
/// elements; they may be the same pointer (each block is loaded before it is stored) but must not
/// otherwise overlap.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn map(f: Function, x: *const f32, y: *mut f32, n: usize) -> usize {
    let blocks = n / 8;
    for i in 0..blocks {
        // SAFETY: `8 * i + 8 <= n`, in bounds of both buffers (caller); unaligned accesses.
        unsafe {
            let v = _mm256_loadu_ps(x.add(8 * i));
            let r = match f {
                Function::Erf => erf(v),
                Function::Gelu => gelu(v),
                Function::Exp => exp(v),
                Function::Sigmoid => sigmoid(v),
                Function::Silu => silu(v),
            };
            _mm256_storeu_ps(y.add(8 * i), r);
        }
    }
    8 * blocks
}
