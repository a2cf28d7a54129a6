//! [`super::scalar`]'s operations on two 256-bit registers of 8 lanes (AVX2): lanes 0–7 of
//! the definition in the first, lanes 8–15 in the second.

use super::scalar::LANES;
use std::arch::x86_64::*;

/// The mask of the lanes `j < rem` (`rem` may exceed 8 or be negative).
#[target_feature(enable = "avx2")]
fn mask(rem: i32) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// [`super::scalar::fold`] of lanes `lo` (0–7) and `hi` (8–15).
#[target_feature(enable = "avx2")]
fn fold(lo: __m256, hi: __m256) -> f32 {
    let h = _mm256_add_ps(lo, hi);
    let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
    let p = _mm_add_ps(q, _mm_movehl_ps(q, q));
    _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps::<1>(p, p)))
}

/// The lane sum of `f(x[i])`, `f` given 8 lanes and their mask (all ones outside the tail;
/// masked-off lanes must come back zero).
///
/// # Safety
/// `x` readable for `n` elements.
#[target_feature(enable = "avx2")]
unsafe fn lane_sum(x: *const f32, n: usize, f: impl Fn(__m256, __m256i) -> __m256) -> f32 {
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let all = _mm256_set1_epi32(-1);
    let blocks = n / LANES;
    for i in 0..blocks {
        // SAFETY: `16 * i + 16 <= n`.
        let (a, b) = unsafe {
            (
                _mm256_loadu_ps(x.add(LANES * i)),
                _mm256_loadu_ps(x.add(LANES * i + 8)),
            )
        };
        lo = _mm256_add_ps(lo, f(a, all));
        hi = _mm256_add_ps(hi, f(b, all));
    }
    let rem = (n % LANES) as i32;
    if rem > 0 {
        let o = LANES * blocks;
        let (ma, mb) = (mask(rem), mask(rem - 8));
        // SAFETY: the masked loads read only the `rem` elements left.
        let (a, b) = unsafe {
            (
                _mm256_maskload_ps(x.add(o), ma),
                _mm256_maskload_ps(x.add(o + 8), mb),
            )
        };
        lo = _mm256_add_ps(lo, f(a, ma));
        hi = _mm256_add_ps(hi, f(b, mb));
    }
    fold(lo, hi)
}

/// [`super::scalar::sum`].
///
/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sum(x: &[f32]) -> f32 {
    // SAFETY: `x` has `x.len()` elements.
    unsafe { lane_sum(x.as_ptr(), x.len(), |v, _| v) }
}

/// [`super::scalar::sum_sq_dev`].
///
/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    let m = _mm256_set1_ps(mean);
    // SAFETY: `x` has `x.len()` elements.
    unsafe {
        lane_sum(x.as_ptr(), x.len(), |v, k| {
            let d = _mm256_and_ps(_mm256_sub_ps(v, m), _mm256_castsi256_ps(k));
            _mm256_mul_ps(d, d)
        })
    }
}

/// [`super::scalar::sum_sq`].
///
/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sum_sq(x: &[f32]) -> f32 {
    // SAFETY: `x` has `x.len()` elements.
    unsafe { lane_sum(x.as_ptr(), x.len(), |v, _| _mm256_mul_ps(v, v)) }
}

/// Applies `f(x, scale, bias)` to 8 lanes at a time, the tail masked.
///
/// # Safety
/// `x`, `s`, `b` readable and `y` writable for `n` elements; `y` equal to `x` or not
/// overlapping it (each block is read before it is written).
#[target_feature(enable = "avx2")]
unsafe fn apply(
    x: *const f32,
    s: *const f32,
    b: *const f32,
    y: *mut f32,
    n: usize,
    f: impl Fn(__m256, __m256, __m256) -> __m256,
) {
    let blocks = n / 8;
    for i in 0..blocks {
        let o = 8 * i;
        // SAFETY: `o + 8 <= n`.
        unsafe {
            let r = f(
                _mm256_loadu_ps(x.add(o)),
                _mm256_loadu_ps(s.add(o)),
                _mm256_loadu_ps(b.add(o)),
            );
            _mm256_storeu_ps(y.add(o), r);
        }
    }
    let rem = (n % 8) as i32;
    if rem > 0 {
        let (m, o) = (mask(rem), 8 * blocks);
        // SAFETY: the masked loads and store touch only the `rem` elements left.
        unsafe {
            let r = f(
                _mm256_maskload_ps(x.add(o), m),
                _mm256_maskload_ps(s.add(o), m),
                _mm256_maskload_ps(b.add(o), m),
            );
            _mm256_maskstore_ps(y.add(o), m, r);
        }
    }
}

/// [`super::scalar::layer_apply`] on `n` elements.
///
/// # Safety
/// The CPU has AVX2; `x` readable, `y` writable (equal or not overlapping) and the slices
/// hold `n` elements.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn layer_apply(
    x: *const f32,
    scale: &[f32],
    bias: Option<&[f32]>,
    mean: f32,
    inv: f32,
    y: *mut f32,
    n: usize,
) {
    let (m, iv) = (_mm256_set1_ps(mean), _mm256_set1_ps(inv));
    // Without a bias the scale is read in its place and ignored: `+0.0` is added.
    let (b, zero) = match bias {
        Some(b) => (b.as_ptr(), false),
        None => (scale.as_ptr(), true),
    };
    // SAFETY: every buffer holds `n` elements (caller).
    unsafe {
        apply(x, scale.as_ptr(), b, y, n, |x, s, b| {
            let t = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(x, m), iv), s);
            _mm256_add_ps(t, if zero { _mm256_setzero_ps() } else { b })
        })
    }
}

/// [`super::scalar::rms_apply`] on `n` elements.
///
/// # Safety
/// The CPU has AVX2; `x` readable, `y` writable (equal or not overlapping) and the slices
/// hold `n` elements.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn rms_apply(x: *const f32, scale: &[f32], inv: f32, y: *mut f32, n: usize) {
    let iv = _mm256_set1_ps(inv);
    // SAFETY: every buffer holds `n` elements (caller); the scale stands in for the bias.
    unsafe {
        apply(x, scale.as_ptr(), scale.as_ptr(), y, n, |x, s, _| {
            _mm256_mul_ps(_mm256_mul_ps(x, iv), s)
        })
    }
}
