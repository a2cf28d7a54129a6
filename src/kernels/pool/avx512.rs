//! AVX-512 pooling kernels: 16-channel `i32` sums for the mean, 64-channel byte max.

use super::{AvgArgs, MaxArgs, MeanArgs, I16_TAPS};
use crate::kernels::epilogue::Requant512;
use std::arch::x86_64::*;

/// Mean of one image.
///
/// # Safety
/// `a` satisfies the [`MeanArgs`] contract and the CPU supports AVX-512 F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn mean(a: &MeanArgs) {
    let rq = Requant512::new(&a.rq);
    let m = _mm512_set1_ps(a.m);
    let zc = _mm512_set1_epi32(a.zp_times_count);
    let mut c0 = 0;
    while c0 < a.channels {
        let n = (a.channels - c0).min(16);
        let mask: __mmask16 = ((1u32 << n) - 1) as __mmask16;
        let mut sum = _mm512_setzero_si512();
        for p in 0..a.pixels {
            // SAFETY: the mask limits the read to channels c0..c0+n of pixel p.
            let x = unsafe { _mm_maskz_loadu_epi8(mask, a.x.add(p * a.channels + c0)) };
            sum = _mm512_add_epi32(sum, _mm512_cvtepi8_epi32(x));
        }
        let v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(sum, zc)), m);
        // SAFETY: writes n bytes at out + c0.
        unsafe { _mm_mask_storeu_epi8(a.out.add(c0), mask, rq.apply_f32(v)) };
        c0 += 16;
    }
}

/// Max over the taps of one output pixel.
///
/// # Safety
/// `a` satisfies the [`MaxArgs`] contract and the CPU supports AVX-512 F/BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn max(a: &MaxArgs) {
    let (lo, hi) = (_mm512_set1_epi8(a.lo), _mm512_set1_epi8(a.hi));
    let mut c0 = 0;
    while c0 < a.channels {
        let n = (a.channels - c0).min(64);
        let mask: __mmask64 = if n == 64 { !0 } else { (1u64 << n) - 1 };
        let mut v = _mm512_set1_epi8(i8::MIN);
        for &p in a.ptrs {
            // SAFETY: the mask limits the read to channels c0..c0+n.
            v = _mm512_max_epi8(v, unsafe { _mm512_maskz_loadu_epi8(mask, p.add(c0)) });
        }
        v = _mm512_min_epi8(_mm512_max_epi8(v, lo), hi);
        // SAFETY: writes n bytes at out + c0.
        unsafe { _mm512_mask_storeu_epi8(a.out.add(c0), mask, v) };
        c0 += 64;
    }
}

/// Average over the taps of one output pixel: up to 64 channels per pass (one masked load
/// per tap), summed in `i16` lanes when there are at most [`I16_TAPS`] taps (exact), else in
/// `i32` lanes; the sums are widened to `i32` before the requantization either way.
///
/// # Safety
/// `a` satisfies the [`AvgArgs`] contract and the CPU supports AVX-512 F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn avg(a: &AvgArgs) {
    let rq = Requant512::new(&a.rq);
    let m = _mm512_set1_ps(a.m);
    let zc = _mm512_set1_epi32(a.zp_times_count);
    let mut c0 = 0;
    while c0 < a.channels {
        let n = (a.channels - c0).min(64);
        let mask: __mmask64 = if n == 64 { !0 } else { (1u64 << n) - 1 };
        let mut sums = [_mm512_setzero_si512(); 4];
        if a.ptrs.len() <= I16_TAPS {
            let (mut lo, mut hi) = (_mm512_setzero_si512(), _mm512_setzero_si512());
            for &p in a.ptrs {
                // SAFETY: the mask limits the read to channels c0..c0+n of the pixel.
                let x = unsafe { _mm512_maskz_loadu_epi8(mask, p.add(c0)) };
                lo = _mm512_add_epi16(lo, _mm512_cvtepi8_epi16(_mm512_castsi512_si256(x)));
                hi = _mm512_add_epi16(hi, _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64::<1>(x)));
            }
            sums[0] = _mm512_cvtepi16_epi32(_mm512_castsi512_si256(lo));
            sums[1] = _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64::<1>(lo));
            sums[2] = _mm512_cvtepi16_epi32(_mm512_castsi512_si256(hi));
            sums[3] = _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64::<1>(hi));
        } else {
            for &p in a.ptrs {
                // SAFETY: the mask limits the read to channels c0..c0+n of the pixel.
                let x = unsafe { _mm512_maskz_loadu_epi8(mask, p.add(c0)) };
                sums[0] = _mm512_add_epi32(sums[0], _mm512_cvtepi8_epi32(_mm512_castsi512_si128(x)));
                sums[1] = _mm512_add_epi32(sums[1], _mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32::<1>(x)));
                sums[2] = _mm512_add_epi32(sums[2], _mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32::<2>(x)));
                sums[3] = _mm512_add_epi32(sums[3], _mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32::<3>(x)));
            }
        }
        for (j, &sum) in sums.iter().enumerate().take(n.div_ceil(16)) {
            let v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(sum, zc)), m);
            let lanes = (n - 16 * j).min(16);
            let store: __mmask16 = ((1u32 << lanes) - 1) as __mmask16;
            // SAFETY: writes channels c0+16j..c0+16j+lanes, inside the output pixel.
            unsafe { _mm_mask_storeu_epi8(a.out.add(c0 + 16 * j), store, rq.apply_f32(v)) };
        }
        c0 += 64;
    }
}
