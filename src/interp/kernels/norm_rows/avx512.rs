//! [`super::scalar`]'s operations on one 512-bit register of 16 lanes (AVX-512 F).

use super::scalar::LANES;
use std::arch::x86_64::*;

/// The lanes `j < rem` of a mask.
fn mask(rem: usize) -> __mmask16 {
    ((1u32 << rem) - 1) as __mmask16
}

/// [`super::scalar::fold`] of the 16 lanes of `acc`.
#[target_feature(enable = "avx512f")]
fn fold(acc: __m512) -> f32 {
    let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc)));
    let h = _mm256_add_ps(_mm512_castps512_ps256(acc), high);
    let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
    let p = _mm_add_ps(q, _mm_movehl_ps(q, q));
    _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps::<1>(p, p)))
}

/// The lane sum of `f(x[i])`, `f` given every lane of a block and the lanes of the tail
/// that hold elements (the others must come back zero).
///
/// # Safety
/// `x` readable for `n` elements.
#[target_feature(enable = "avx512f")]
unsafe fn lane_sum(x: *const f32, n: usize, f: impl Fn(__m512, __mmask16) -> __m512) -> f32 {
    let mut acc = _mm512_setzero_ps();
    let blocks = n / LANES;
    for i in 0..blocks {
        // SAFETY: `16 * i + 16 <= n`.
        let v = unsafe { _mm512_loadu_ps(x.add(LANES * i)) };
        acc = _mm512_add_ps(acc, f(v, 0xffff));
    }
    let rem = n % LANES;
    if rem > 0 {
        let m = mask(rem);
        // SAFETY: the masked load reads only the `rem` elements left.
        let v = unsafe { _mm512_maskz_loadu_ps(m, x.add(LANES * blocks)) };
        acc = _mm512_add_ps(acc, f(v, m));
    }
    fold(acc)
}

/// [`super::scalar::sum`].
///
/// # Safety
/// The CPU has AVX-512 F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sum(x: &[f32]) -> f32 {
    // SAFETY: `x` has `x.len()` elements.
    unsafe { lane_sum(x.as_ptr(), x.len(), |v, _| v) }
}

/// [`super::scalar::sum_sq_dev`].
///
/// # Safety
/// The CPU has AVX-512 F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    let m = _mm512_set1_ps(mean);
    // SAFETY: `x` has `x.len()` elements.
    unsafe {
        lane_sum(x.as_ptr(), x.len(), |v, k| {
            let d = _mm512_maskz_sub_ps(k, v, m);
            _mm512_mul_ps(d, d)
        })
    }
}

/// [`super::scalar::sum_sq`].
///
/// # Safety
/// The CPU has AVX-512 F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sum_sq(x: &[f32]) -> f32 {
    // SAFETY: `x` has `x.len()` elements.
    unsafe { lane_sum(x.as_ptr(), x.len(), |v, _| _mm512_mul_ps(v, v)) }
}

/// Applies `f(x, scale, bias)` to 16 lanes at a time, the tail masked.
///
/// # Safety
/// `x`, `s`, `b` readable and `y` writable for `n` elements; `y` equal to `x` or not
/// overlapping it (each block is read before it is written).
#[target_feature(enable = "avx512f")]
unsafe fn apply(
    x: *const f32,
    s: *const f32,
    b: *const f32,
    y: *mut f32,
    n: usize,
    f: impl Fn(__m512, __m512, __m512) -> __m512,
) {
    let blocks = n / LANES;
    for i in 0..blocks {
        let o = LANES * i;
        // SAFETY: `o + 16 <= n`.
        unsafe {
            let r = f(
                _mm512_loadu_ps(x.add(o)),
                _mm512_loadu_ps(s.add(o)),
                _mm512_loadu_ps(b.add(o)),
            );
            _mm512_storeu_ps(y.add(o), r);
        }
    }
    let rem = n % LANES;
    if rem > 0 {
        let (m, o) = (mask(rem), LANES * blocks);
        // SAFETY: the masked loads and store touch only the `rem` elements left.
        unsafe {
            let r = f(
                _mm512_maskz_loadu_ps(m, x.add(o)),
                _mm512_maskz_loadu_ps(m, s.add(o)),
                _mm512_maskz_loadu_ps(m, b.add(o)),
            );
            _mm512_mask_storeu_ps(y.add(o), m, r);
        }
    }
}

/// [`super::scalar::layer_apply`] on `n` elements.
///
/// # Safety
/// The CPU has AVX-512 F; `x` readable, `y` writable (equal or not overlapping) and the
/// slices hold `n` elements.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn layer_apply(
    x: *const f32,
    scale: &[f32],
    bias: Option<&[f32]>,
    mean: f32,
    inv: f32,
    y: *mut f32,
    n: usize,
) {
    let (m, iv) = (_mm512_set1_ps(mean), _mm512_set1_ps(inv));
    // Without a bias the scale is read in its place and ignored: `+0.0` is added.
    let (b, zero) = match bias {
        Some(b) => (b.as_ptr(), false),
        None => (scale.as_ptr(), true),
    };
    // SAFETY: every buffer holds `n` elements (caller).
    unsafe {
        apply(x, scale.as_ptr(), b, y, n, |x, s, b| {
            let t = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(x, m), iv), s);
            _mm512_add_ps(t, if zero { _mm512_setzero_ps() } else { b })
        })
    }
}

/// [`super::scalar::rms_apply`] on `n` elements.
///
/// # Safety
/// The CPU has AVX-512 F; `x` readable, `y` writable (equal or not overlapping) and the
/// slices hold `n` elements.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn rms_apply(x: *const f32, scale: &[f32], inv: f32, y: *mut f32, n: usize) {
    let iv = _mm512_set1_ps(inv);
    // SAFETY: every buffer holds `n` elements (caller); the scale stands in for the bias.
    unsafe {
        apply(x, scale.as_ptr(), scale.as_ptr(), y, n, |x, s, _| {
            _mm512_mul_ps(_mm512_mul_ps(x, iv), s)
        })
    }
}
