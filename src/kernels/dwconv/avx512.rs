//! AVX-512 VNNI depthwise microkernel on the even/odd layout: 32 channels are loaded and
//! sign-extended to `i16` once per tap, and two `vpdpwssd` accumulate the even and the odd
//! channels (each weight sits next to a zero, so every `i32` lane gains exactly `x·w`).
//! Up to 2 blocks (64 channels) per pass; the even/odd halves are re-interleaved at store.

use super::DwArgs;
use crate::kernels::epilogue::Requant512;
use std::arch::x86_64::*;

/// Channels per packed block of this layout.
const BLOCK: usize = 32;

/// Computes one output row.
///
/// # Safety
/// `a` satisfies the [`DwArgs`] contract for the even/odd layout and the CPU supports
/// AVX-512 F/BW/VL/VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn row(a: &DwArgs) {
    let rq = Requant512::new(&a.rq);
    for px in 0..a.pixels {
        let ptrs = &a.ptrs[px * a.taps..][..a.taps];
        let mut c0 = 0;
        while c0 < a.channels {
            let blocks = (a.channels - c0).div_ceil(BLOCK).min(2);
            // SAFETY: forwarded contract; the pass covers channels c0..c0 + 32·blocks (masked).
            unsafe {
                match (blocks, c0 + blocks * BLOCK <= a.channels) {
                    (2, true) => pass::<2, true>(a, ptrs, px, c0, &rq),
                    (1, true) => pass::<1, true>(a, ptrs, px, c0, &rq),
                    (2, false) => pass::<2, false>(a, ptrs, px, c0, &rq),
                    _ => pass::<1, false>(a, ptrs, px, c0, &rq),
                }
            }
            c0 += blocks * BLOCK;
        }
    }
}

/// Output pixel `px`, channels `c0 .. min(c0 + 32·NB, channels)`; `FULL` promises that all
/// `32·NB` channels exist, so inputs are read with plain (foldable) loads.
///
/// # Safety
/// As [`row`]; `c0` is a multiple of 32 below `channels`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pass<const NB: usize, const FULL: bool>(
    a: &DwArgs,
    ptrs: &[*const i8],
    px: usize,
    c0: usize,
    rq: &Requant512,
) {
    let mut masks = [0 as __mmask32; NB];
    let mut blocks = [std::ptr::null::<u8>(); NB];
    let mut even = [_mm512_setzero_si512(); NB];
    let mut odd = [_mm512_setzero_si512(); NB];
    for b in 0..NB {
        let start = c0 + b * BLOCK;
        let n = a.channels.saturating_sub(start).min(BLOCK);
        masks[b] = if n == BLOCK {
            !0
        } else {
            ((1u64 << n) - 1) as __mmask32
        };
        // SAFETY: block start/32 lies inside the packed data (the caller clamps the pass to
        // the channel count); its sections are 64-byte aligned.
        unsafe {
            blocks[b] = a.w.add((start / BLOCK) * a.block_bytes);
            even[b] = _mm512_load_si512(blocks[b].cast());
            odd[b] = _mm512_load_si512(blocks[b].add(64).cast());
        }
    }
    for (t, &p) in ptrs.iter().enumerate() {
        for b in 0..NB {
            // SAFETY: the mask (or FULL) limits the read to the pixel's channels; the two
            // weight vectors of tap t are inside block b.
            unsafe {
                let src = p.add(c0 + b * BLOCK);
                let bytes = if FULL {
                    _mm256_loadu_si256(src.cast())
                } else {
                    _mm256_maskz_loadu_epi8(masks[b], src)
                };
                let x = _mm512_cvtepi8_epi16(bytes);
                let tap = blocks[b].add(BLOCK * 4 * (1 + t));
                even[b] = _mm512_dpwssd_epi32(even[b], x, _mm512_load_si512(tap.cast()));
                odd[b] = _mm512_dpwssd_epi32(odd[b], x, _mm512_load_si512(tap.add(64).cast()));
            }
        }
    }
    for b in 0..NB {
        // SAFETY: the multipliers end each block; the store writes the block's valid
        // channels of pixel px inside the output row.
        unsafe {
            let mults = blocks[b].add(BLOCK * 4 * (1 + a.taps));
            let qe = rq.apply(even[b], _mm512_load_ps(mults.cast()));
            let qo = rq.apply(odd[b], _mm512_load_ps(mults.add(64).cast()));
            let lo = _mm_unpacklo_epi8(qe, qo);
            let hi = _mm_unpackhi_epi8(qe, qo);
            let dst = a.out.add(px * a.channels + c0 + b * BLOCK);
            _mm256_mask_storeu_epi8(dst, masks[b], _mm256_set_m128i(hi, lo));
        }
    }
}
