//! AVX-512 depthwise microkernel: 16 channels per register, `vpmaddwd` of sign-extended
//! inputs with zero-extended `i16` weights (exactly `x·w` per lane), masked channel tails.

use super::{DwArgs, BLOCK};
use crate::kernels::epilogue::Requant512;
use std::arch::x86_64::*;

/// Computes one output row.
///
/// # Safety
/// `a` satisfies the [`DwArgs`] contract and the CPU supports AVX-512 F/BW.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn row(a: &DwArgs) {
    let rq = Requant512::new(&a.rq);
    for px in 0..a.pixels {
        let ptrs = &a.ptrs[px * a.taps..][..a.taps];
        let mut c0 = 0;
        while c0 < a.channels {
            let n = (a.channels - c0).min(BLOCK);
            let mask: __mmask16 = ((1u32 << n) - 1) as __mmask16;
            // SAFETY: block c0/16 lies inside the packed data; loads are 64-byte aligned.
            let block = unsafe { a.w.add((c0 / BLOCK) * a.block_bytes) };
            let mut acc = unsafe { _mm512_load_si512(block.cast()) };
            for (t, &p) in ptrs.iter().enumerate() {
                // SAFETY: the mask limits the read to the pixel's channels c0..c0+n; the weight
                // vector of tap t is inside the block.
                let (x, w) = unsafe {
                    (
                        _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, p.add(c0))),
                        _mm512_load_si512(block.add(BLOCK * 4 * (1 + t)).cast()),
                    )
                };
                acc = _mm512_add_epi32(acc, _mm512_madd_epi16(x, w));
            }
            // SAFETY: the multipliers end the block.
            let mult = unsafe { _mm512_load_ps(block.add(BLOCK * 4 * (1 + a.taps)).cast()) };
            // SAFETY: writes n bytes of pixel px, channels c0.., inside the output row.
            unsafe { _mm_mask_storeu_epi8(a.out.add(px * a.channels + c0), mask, rq.apply(acc, mult)) };
            c0 += BLOCK;
        }
    }
}
