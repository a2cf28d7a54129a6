//! AVX2 depthwise microkernel: 8 channels per register, `vpmaddwd` of sign-extended inputs
//! with zero-extended `i16` weights (exactly `x·w` per lane); channel tails via a copy.

use super::{DwArgs, BLOCK};
use crate::kernels::epilogue::{store_low_bytes, Requant256};
use std::arch::x86_64::*;

/// Computes one output row.
///
/// # Safety
/// `a` satisfies the [`DwArgs`] contract and the CPU supports AVX2.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn row(a: &DwArgs) {
    const HALF: usize = 8;
    let rq = Requant256::new(&a.rq);
    for px in 0..a.pixels {
        let ptrs = &a.ptrs[px * a.taps..][..a.taps];
        let mut c0 = 0;
        while c0 < a.channels {
            let n = (a.channels - c0).min(HALF);
            // SAFETY: the 8 channels c0.. lie in block c0/16 at lane offset c0%16.
            let lanes = unsafe { a.w.add((c0 / BLOCK) * a.block_bytes + (c0 % BLOCK) * 4) };
            let mut acc = unsafe { _mm256_load_si256(lanes.cast()) };
            for (t, &p) in ptrs.iter().enumerate() {
                // SAFETY: reads n <= 8 channels of the pixel (copied when fewer than 8 remain).
                let bytes = unsafe {
                    if n == HALF {
                        _mm_loadl_epi64(p.add(c0).cast())
                    } else {
                        let mut tmp = [0i8; 16];
                        std::ptr::copy_nonoverlapping(p.add(c0), tmp.as_mut_ptr(), n);
                        _mm_loadu_si128(tmp.as_ptr().cast())
                    }
                };
                let x = _mm256_cvtepi8_epi32(bytes);
                // SAFETY: the weight lanes of tap t are inside the block, 32-byte aligned.
                let w = unsafe { _mm256_load_si256(lanes.add(BLOCK * 4 * (1 + t)).cast()) };
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, w));
            }
            // SAFETY: the multipliers end the block.
            let mult = unsafe { _mm256_load_ps(lanes.add(BLOCK * 4 * (1 + a.taps)).cast()) };
            // SAFETY: writes n bytes of pixel px, channels c0.., inside the output row.
            unsafe { store_low_bytes(a.out.add(px * a.channels + c0), rq.apply(acc, mult), n) };
            c0 += HALF;
        }
    }
}
