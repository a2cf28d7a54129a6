//! AVX2 pooling kernels: 8-channel `i32` sums for the mean, 32-channel byte max; channel
//! tails go through the scalar kernels (identical results: integer max, same requantizer).

use super::{AvgArgs, MaxArgs, MeanArgs, I16_TAPS};
use crate::kernels::epilogue::Requant256;
use std::arch::x86_64::*;

/// Mean of one image.
///
/// # Safety
/// `a` satisfies the [`MeanArgs`] contract and the CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn mean(a: &MeanArgs) {
    let rq = Requant256::new(&a.rq);
    let m = _mm256_set1_ps(a.m);
    let zc = _mm256_set1_epi32(a.zp_times_count);
    let full = a.channels / 8 * 8;
    let mut c0 = 0;
    while c0 < full {
        let mut sum = _mm256_setzero_si256();
        for p in 0..a.pixels {
            // SAFETY: channels c0..c0+8 of pixel p are inside the image.
            let x = unsafe { _mm_loadl_epi64(a.x.add(p * a.channels + c0).cast()) };
            sum = _mm256_add_epi32(sum, _mm256_cvtepi8_epi32(x));
        }
        let v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(sum, zc)), m);
        // SAFETY: writes 8 bytes at out + c0.
        unsafe { _mm_storel_epi64(a.out.add(c0).cast(), rq.apply_f32(v)) };
        c0 += 8;
    }
    if full < a.channels {
        let tail = MeanArgs {
            // SAFETY: offsets stay inside the image and output rows.
            x: unsafe { a.x.add(full) },
            // SAFETY: as above.
            out: unsafe { a.out.add(full) },
            channels: a.channels - full,
            ..*a
        };
        // The tail shares the row stride of the full image: walk it with the scalar kernel.
        // SAFETY: reads channels full.. of each pixel, all inside the image.
        unsafe { mean_strided_tail(&tail, a.channels) };
    }
}

/// Scalar mean of `t.channels` channels whose pixels are `stride` apart.
///
/// # Safety
/// Every `(p, c)` read at `t.x + p * stride + c` is inside the image.
unsafe fn mean_strided_tail(t: &MeanArgs, stride: usize) {
    for c in 0..t.channels {
        let mut sum = 0i32;
        for p in 0..t.pixels {
            // SAFETY: caller contract.
            sum += unsafe { *t.x.add(p * stride + c) } as i32;
        }
        // SAFETY: c < channels of the tail is writable.
        unsafe { *t.out.add(c) = t.rq.apply((sum - t.zp_times_count) as f32 * t.m) };
    }
}

/// Max over the taps of one output pixel.
///
/// # Safety
/// `a` satisfies the [`MaxArgs`] contract and the CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn max(a: &MaxArgs) {
    let (lo, hi) = (_mm256_set1_epi8(a.lo), _mm256_set1_epi8(a.hi));
    let full = a.channels / 32 * 32;
    let mut c0 = 0;
    while c0 < full {
        let mut v = _mm256_set1_epi8(i8::MIN);
        for &p in a.ptrs {
            // SAFETY: channels c0..c0+32 are inside the pixel.
            v = _mm256_max_epi8(v, unsafe { _mm256_loadu_si256(p.add(c0).cast()) });
        }
        v = _mm256_min_epi8(_mm256_max_epi8(v, lo), hi);
        // SAFETY: writes 32 bytes at out + c0.
        unsafe { _mm256_storeu_si256(a.out.add(c0).cast(), v) };
        c0 += 32;
    }
    for c in full..a.channels {
        let mut v = i8::MIN;
        for &p in a.ptrs {
            // SAFETY: c < channels.
            v = v.max(unsafe { *p.add(c) });
        }
        // SAFETY: c < channels is writable.
        unsafe { *a.out.add(c) = v.clamp(a.lo, a.hi) };
    }
}

/// Average over the taps of one output pixel: 16 channels per pass (one 16-lane `i16` sum when
/// there are at most [`I16_TAPS`] taps, exact, else two 8-lane `i32` sums), then 8, then the
/// scalar kernel for the last `< 8`.
///
/// # Safety
/// `a` satisfies the [`AvgArgs`] contract and the CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn avg(a: &AvgArgs) {
    let rq = Requant256::new(&a.rq);
    let m = _mm256_set1_ps(a.m);
    let zc = _mm256_set1_epi32(a.zp_times_count);
    let finish = |sum: __m256i| rq.apply_f32(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(sum, zc)), m));
    let mut c0 = 0;
    let narrow = a.ptrs.len() <= I16_TAPS;
    while c0 + 16 <= a.channels {
        let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        if narrow {
            let mut sum = _mm256_setzero_si256();
            for &p in a.ptrs {
                // SAFETY: channels c0..c0+16 are inside the pixel.
                let x = unsafe { _mm_loadu_si128(p.add(c0).cast()) };
                sum = _mm256_add_epi16(sum, _mm256_cvtepi8_epi16(x));
            }
            lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(sum));
            hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(sum));
        } else {
            for &p in a.ptrs {
                // SAFETY: channels c0..c0+16 are inside the pixel.
                let x = unsafe { _mm_loadu_si128(p.add(c0).cast()) };
                lo = _mm256_add_epi32(lo, _mm256_cvtepi8_epi32(x));
                hi = _mm256_add_epi32(hi, _mm256_cvtepi8_epi32(_mm_unpackhi_epi64(x, x)));
            }
        }
        // SAFETY: writes channels c0..c0+16, inside the output pixel.
        unsafe {
            _mm_storel_epi64(a.out.add(c0).cast(), finish(lo));
            _mm_storel_epi64(a.out.add(c0 + 8).cast(), finish(hi));
        }
        c0 += 16;
    }
    if c0 + 8 <= a.channels {
        let mut sum = _mm256_setzero_si256();
        for &p in a.ptrs {
            // SAFETY: channels c0..c0+8 are inside the pixel.
            let x = unsafe { _mm_loadl_epi64(p.add(c0).cast()) };
            sum = _mm256_add_epi32(sum, _mm256_cvtepi8_epi32(x));
        }
        // SAFETY: writes channels c0..c0+8, inside the output pixel.
        unsafe { _mm_storel_epi64(a.out.add(c0).cast(), finish(sum)) };
        c0 += 8;
    }
    for c in c0..a.channels {
        let mut sum = 0i32;
        for &p in a.ptrs {
            // SAFETY: c < channels.
            sum += unsafe { *p.add(c) } as i32;
        }
        // SAFETY: c < channels is writable.
        unsafe { *a.out.add(c) = a.rq.apply((sum - a.zp_times_count) as f32 * a.m) };
    }
}
