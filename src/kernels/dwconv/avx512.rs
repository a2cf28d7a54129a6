//! AVX-512 VNNI depthwise microkernel on the even/odd layout: 32 channels are loaded and
//! sign-extended to `i16` once per tap, and two `vpdpwssd` accumulate the even and the odd
//! channels (each weight sits next to a zero, so every `i32` lane gains exactly `x·w`).
//!
//! A `vpdpwssd` chain is latency-bound (one tap after the other into the same accumulator),
//! so a pass computes up to [`PIXELS`] output pixels of one 32-channel block at once: that
//! gives `2·PIXELS` independent chains, and each tap's two weight vectors are loaded once
//! for all of them. The even/odd halves are re-interleaved at store.

use super::DwArgs;
use crate::kernels::epilogue::Requant512;
use std::arch::x86_64::*;

/// Channels per packed block of this layout.
const BLOCK: usize = 32;

/// Output pixels per pass.
const PIXELS: usize = 4;

/// Computes one output row.
///
/// # Safety
/// `a` satisfies the [`DwArgs`] contract for the even/odd layout and the CPU supports
/// AVX-512 F/BW/VL/VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn row(a: &DwArgs) {
    let rq = Requant512::new(&a.rq);
    let mut px = 0;
    while px < a.pixels {
        let group = (a.pixels - px).min(PIXELS);
        let mut c0 = 0;
        while c0 < a.channels {
            let full = c0 + BLOCK <= a.channels;
            // SAFETY: forwarded contract; the pass covers pixels px..px + group and channels
            // c0..min(c0 + 32, channels).
            unsafe {
                match (group, full) {
                    (4, true) => pass::<4, true>(a, px, c0, &rq),
                    (4, false) => pass::<4, false>(a, px, c0, &rq),
                    (3, true) => pass::<3, true>(a, px, c0, &rq),
                    (3, false) => pass::<3, false>(a, px, c0, &rq),
                    (2, true) => pass::<2, true>(a, px, c0, &rq),
                    (2, false) => pass::<2, false>(a, px, c0, &rq),
                    (_, true) => pass::<1, true>(a, px, c0, &rq),
                    (_, false) => pass::<1, false>(a, px, c0, &rq),
                }
            }
            c0 += BLOCK;
        }
        px += group;
    }
}

/// Output pixels `px .. px + P`, channels `c0 .. min(c0 + 32, channels)`; `FULL` promises
/// that all 32 channels exist, so inputs are read with plain loads.
///
/// # Safety
/// As [`row`]; `c0` is a multiple of 32 below `channels` and `px + P <= pixels`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pass<const P: usize, const FULL: bool>(a: &DwArgs, px: usize, c0: usize, rq: &Requant512) {
    let n = (a.channels - c0).min(BLOCK);
    let mask: __mmask32 = if FULL { !0 } else { ((1u64 << n) - 1) as __mmask32 };
    // SAFETY: block c0/32 lies inside the packed data (DwArgs contract); its sections are
    // 64-byte aligned.
    let block = unsafe { a.w.add((c0 / BLOCK) * a.block_bytes) };
    // SAFETY: the bias section opens the block.
    let (bias_even, bias_odd) = unsafe {
        (
            _mm512_load_si512(block.cast()),
            _mm512_load_si512(block.add(64).cast()),
        )
    };
    let mut even = [bias_even; P];
    let mut odd = [bias_odd; P];
    let offsets: [usize; P] = std::array::from_fn(|p| (px + p) * a.step + c0);
    for t in 0..a.taps {
        // SAFETY: the two weight vectors of tap t are inside the block.
        let (w_even, w_odd) = unsafe {
            let tap = block.add(BLOCK * 4 * (1 + t));
            (
                _mm512_load_si512(tap.cast()),
                _mm512_load_si512(tap.add(64).cast()),
            )
        };
        for p in 0..P {
            // SAFETY: the pointer addresses a pixel of `channels` bytes; the mask (or FULL)
            // limits the read to channels c0..c0 + n.
            unsafe {
                let src = a.ptrs[t].add(offsets[p]);
                let bytes = if FULL {
                    _mm256_loadu_si256(src.cast())
                } else {
                    _mm256_maskz_loadu_epi8(mask, src)
                };
                let x = _mm512_cvtepi8_epi16(bytes);
                even[p] = _mm512_dpwssd_epi32(even[p], x, w_even);
                odd[p] = _mm512_dpwssd_epi32(odd[p], x, w_odd);
            }
        }
    }
    // SAFETY: the multipliers end the block.
    let (m_even, m_odd) = unsafe {
        let mults = block.add(BLOCK * 4 * (1 + a.taps));
        (_mm512_load_ps(mults.cast()), _mm512_load_ps(mults.add(64).cast()))
    };
    for p in 0..P {
        let q = rq.apply_even_odd(even[p], odd[p], m_even, m_odd);
        // SAFETY: writes the block's n valid channels of pixel px + p inside the output row.
        unsafe { _mm256_mask_storeu_epi8(a.out.add((px + p) * a.channels + c0), mask, q) };
    }
}
