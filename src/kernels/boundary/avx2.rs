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

/// For output vector `k` (bytes `16k..16k + 16` of 16 interleaved 3-channel pixels) and channel
/// `ch`: the `pshufb` control that takes each byte of channel `ch` from that channel's run
/// (pixel `(16k + l) / 3` for output byte `l`), and zeroes the others (`0x80`).
const INTERLEAVE3: [[[i8; 16]; 3]; 3] = {
    let mut m = [[[i8::MIN; 16]; 3]; 3];
    let mut k = 0;
    while k < 3 {
        let mut l = 0;
        while l < 16 {
            let j = 16 * k + l;
            m[k][j % 3][l] = (j / 3) as i8;
            l += 1;
        }
        k += 1;
    }
    m
};

/// [`super::interleave`] for 3 channels, 16 pixels per step with `pshufb` (three shuffles and
/// two ors per 16 output bytes); the tail pixels one by one. Byte moves only, so the same
/// bytes as the scalar loop.
#[target_feature(enable = "avx2")]
pub(super) fn interleave3(runs: &[i8], pixels: &mut [i8]) {
    let n = (pixels.len() / 3).min(super::BLOCK);
    assert!(runs.len() >= 2 * super::BLOCK + n, "interleave3 runs are short");
    let ctl = INTERLEAVE3.map(|per_ch| {
        per_ch.map(|m| {
            // SAFETY: `m` holds 16 bytes.
            unsafe { _mm_loadu_si128(m.as_ptr().cast()) }
        })
    });
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n <= BLOCK, so each load reads inside its run (checked above)
        // and each store writes inside bytes 3i..3i + 48 <= 3n of `pixels`.
        unsafe {
            let src = [0, 1, 2].map(|ch| _mm_loadu_si128(runs[ch * super::BLOCK + i..].as_ptr().cast()));
            for (k, ctl) in ctl.iter().enumerate() {
                let v = _mm_or_si128(
                    _mm_or_si128(_mm_shuffle_epi8(src[0], ctl[0]), _mm_shuffle_epi8(src[1], ctl[1])),
                    _mm_shuffle_epi8(src[2], ctl[2]),
                );
                _mm_storeu_si128(pixels[3 * i + 16 * k..].as_mut_ptr().cast(), v);
            }
        }
        i += 16;
    }
    for p in i..n {
        for ch in 0..3 {
            pixels[3 * p + ch] = runs[ch * super::BLOCK + p];
        }
    }
}

/// [`scalar::finite_range`] in 8-lane steps (NaN found by an unordered compare accumulated
/// in a register; the tail through the scalar row).
#[target_feature(enable = "avx2")]
pub(super) fn finite_range(x: &[f32]) -> Option<(f32, f32)> {
    let n = x.len();
    let (mut lo, mut hi) = (_mm256_set1_ps(f32::INFINITY), _mm256_set1_ps(f32::NEG_INFINITY));
    let mut nan = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, so the load reads inside `x`.
        let v = unsafe { _mm256_loadu_ps(x[i..].as_ptr()) };
        lo = _mm256_min_ps(lo, v);
        hi = _mm256_max_ps(hi, v);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        i += 8;
    }
    let mut lanes = [[0f32; 8]; 2];
    // SAFETY: each array holds 8 floats.
    unsafe {
        _mm256_storeu_ps(lanes[0].as_mut_ptr(), lo);
        _mm256_storeu_ps(lanes[1].as_mut_ptr(), hi);
    }
    if _mm256_movemask_ps(nan) != 0 {
        return None;
    }
    let tail = scalar::finite_range(&x[i..]);
    if i < n && tail.is_none() {
        return None;
    }
    let (mut l, mut h) = tail.unwrap_or((f32::INFINITY, f32::NEG_INFINITY));
    for (&lane_lo, &lane_hi) in lanes[0].iter().zip(&lanes[1]) {
        l = l.min(lane_lo);
        h = h.max(lane_hi);
    }
    (n > 0 && l.is_finite() && h.is_finite()).then_some((l, h))
}
