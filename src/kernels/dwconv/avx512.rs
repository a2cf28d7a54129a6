//! AVX-512 depthwise microkernel: 16 channels per register, up to 4 registers (64 channels)
//! per pass with independent accumulators, `vpmaddwd` of sign-extended inputs with
//! zero-extended `i16` weights (exactly `x·w` per lane), masked channel tails.

use super::{DwArgs, BLOCK};
use crate::kernels::epilogue::Requant512;
use std::arch::x86_64::*;

/// Computes one output row.
///
/// # Safety
/// `a` satisfies the [`DwArgs`] contract and the CPU supports AVX-512 F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn row(a: &DwArgs) {
    let rq = Requant512::new(&a.rq);
    for px in 0..a.pixels {
        let ptrs = &a.ptrs[px * a.taps..][..a.taps];
        let mut c0 = 0;
        while c0 < a.channels {
            let blocks = (a.channels - c0).div_ceil(BLOCK).min(4);
            // SAFETY: forwarded contract; the pass covers channels c0..c0 + 16·blocks (masked).
            unsafe {
                match (blocks, c0 + blocks * BLOCK <= a.channels) {
                    (4, true) => pass::<4, true>(a, ptrs, px, c0, &rq),
                    (3, true) => pass::<3, true>(a, ptrs, px, c0, &rq),
                    (2, true) => pass::<2, true>(a, ptrs, px, c0, &rq),
                    (1, true) => pass::<1, true>(a, ptrs, px, c0, &rq),
                    (1, false) => pass::<1, false>(a, ptrs, px, c0, &rq),
                    (2, false) => pass::<2, false>(a, ptrs, px, c0, &rq),
                    (3, false) => pass::<3, false>(a, ptrs, px, c0, &rq),
                    _ => pass::<4, false>(a, ptrs, px, c0, &rq),
                }
            }
            c0 += blocks * BLOCK;
        }
    }
}

/// Output pixel `px`, channels `c0 .. min(c0 + 16·NB, channels)`; `FULL` promises that all
/// `16·NB` channels exist, so inputs are read with plain (foldable) loads.
///
/// # Safety
/// As [`row`]; `c0` is a multiple of 16 below `channels`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pass<const NB: usize, const FULL: bool>(
    a: &DwArgs,
    ptrs: &[*const i8],
    px: usize,
    c0: usize,
    rq: &Requant512,
) {
    let mut masks = [0 as __mmask16; NB];
    let mut blocks = [std::ptr::null::<u8>(); NB];
    let mut acc = [_mm512_setzero_si512(); NB];
    for b in 0..NB {
        let start = c0 + b * BLOCK;
        let n = a.channels.saturating_sub(start).min(BLOCK);
        masks[b] = ((1u32 << n) - 1) as __mmask16;
        // SAFETY: block (c0/16 + b) lies inside the packed data (`blocks` was clamped to
        // the channel count by the caller); its loads are 64-byte aligned.
        unsafe {
            blocks[b] = a.w.add((start / BLOCK) * a.block_bytes);
            acc[b] = _mm512_load_si512(blocks[b].cast());
        }
    }
    for (t, &p) in ptrs.iter().enumerate() {
        for b in 0..NB {
            // SAFETY: the mask limits the read to the pixel's channels; the weight vector of
            // tap t is inside block b.
            unsafe {
                let src = p.add(c0 + b * BLOCK);
                let bytes = if FULL {
                    _mm_loadu_si128(src.cast())
                } else {
                    _mm_maskz_loadu_epi8(masks[b], src)
                };
                let x = _mm512_cvtepi8_epi32(bytes);
                let w = _mm512_load_si512(blocks[b].add(BLOCK * 4 * (1 + t)).cast());
                acc[b] = _mm512_add_epi32(acc[b], _mm512_madd_epi16(x, w));
            }
        }
    }
    for b in 0..NB {
        // SAFETY: the multipliers end each block; the store writes the block's valid
        // channels of pixel px inside the output row.
        unsafe {
            let mult = _mm512_load_ps(blocks[b].add(BLOCK * 4 * (1 + a.taps)).cast());
            let dst = a.out.add(px * a.channels + c0 + b * BLOCK);
            _mm_mask_storeu_epi8(dst, masks[b], rq.apply(acc[b], mult));
        }
    }
}
