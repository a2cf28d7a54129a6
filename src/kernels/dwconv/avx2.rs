//! AVX2 depthwise microkernel: 8 channels per register, `vpmaddwd` of sign-extended inputs
//! with zero-extended `i16` weights (exactly `x·w` per lane). Whole 16-channel blocks run 4
//! output pixels per pass (the tap's weights loaded once for the 4); the channel tail (up to
//! 32 channels per pass, read through a copy when short) and the last pixels go one pixel at a
//! time.

use super::{DwArgs, BLOCK};
use crate::kernels::epilogue::{store_low_bytes, Requant256};
use std::arch::x86_64::*;

/// Channels per register.
const LANES: usize = 8;

/// Output pixels per multi-pixel pass.
const PIXELS: usize = 4;

/// Computes one output row: groups of [`PIXELS`] pixels over whole 16-channel blocks (each
/// tap's weights loaded once for the group), then the channel tail and the last pixels one
/// pixel at a time.
///
/// # Safety
/// `a` satisfies the [`DwArgs`] contract and the CPU supports AVX2.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn row(a: &DwArgs) {
    let rq = Requant256::new(&a.rq);
    let whole = a.channels / BLOCK * BLOCK;
    let mut px = 0;
    while px + PIXELS <= a.pixels {
        for c0 in (0..whole).step_by(BLOCK) {
            // SAFETY: forwarded contract; pixels px..px + 4 and channels c0..c0 + 16 exist.
            unsafe { block_pass::<PIXELS>(a, px, c0, &rq) };
        }
        for p in px..px + PIXELS {
            // SAFETY: forwarded contract.
            unsafe { pixel(a, p, whole, &rq) };
        }
        px += PIXELS;
    }
    for p in px..a.pixels {
        // SAFETY: forwarded contract.
        unsafe { pixel(a, p, 0, &rq) };
    }
}

/// Channels `from..` of pixel `px`, up to 32 channels per pass.
///
/// # Safety
/// As [`row`]; `from` is a multiple of 8.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn pixel(a: &DwArgs, px: usize, from: usize, rq: &Requant256) {
    let mut c0 = from;
    while c0 < a.channels {
        let regs = (a.channels - c0).div_ceil(LANES).min(4);
        // SAFETY: forwarded contract; the pass covers channels c0..c0 + 8·regs.
        unsafe {
            match (regs, c0 + regs * LANES <= a.channels) {
                (4, true) => pass::<4, true>(a, px, c0, rq),
                (3, true) => pass::<3, true>(a, px, c0, rq),
                (2, true) => pass::<2, true>(a, px, c0, rq),
                (1, true) => pass::<1, true>(a, px, c0, rq),
                (1, false) => pass::<1, false>(a, px, c0, rq),
                (2, false) => pass::<2, false>(a, px, c0, rq),
                (3, false) => pass::<3, false>(a, px, c0, rq),
                _ => pass::<4, false>(a, px, c0, rq),
            }
        }
        c0 += regs * LANES;
    }
}

/// Pixels `px .. px + P`, the 16 channels of block `c0 / 16`.
///
/// # Safety
/// As [`row`]; `c0` is a multiple of 16 with `c0 + 16 <= channels`, `px + P <= pixels`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_pass<const P: usize>(a: &DwArgs, px: usize, c0: usize, rq: &Requant256) {
    // SAFETY: the block lies inside the packed data (DwArgs contract); 32-byte aligned words.
    let block = unsafe { a.w.add((c0 / BLOCK) * a.block_bytes) };
    // SAFETY: the bias section opens the block.
    let bias = unsafe {
        [
            _mm256_load_si256(block.cast()),
            _mm256_load_si256(block.add(32).cast()),
        ]
    };
    let mut acc = [bias; P];
    let offsets: [usize; P] = std::array::from_fn(|p| (px + p) * a.step + c0);
    for (t, &tap_ptr) in a.ptrs.iter().enumerate() {
        // SAFETY: the weights of tap t are inside the block.
        let w = unsafe {
            let at = block.add(BLOCK * 4 * (1 + t));
            [_mm256_load_si256(at.cast()), _mm256_load_si256(at.add(32).cast())]
        };
        for (p, acc) in acc.iter_mut().enumerate() {
            for r in 0..2 {
                // SAFETY: pixel px + p of this tap holds channels c0..c0 + 16.
                let x = unsafe {
                    _mm256_cvtepi8_epi32(_mm_loadl_epi64(tap_ptr.add(offsets[p] + r * LANES).cast()))
                };
                acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(x, w[r]));
            }
        }
    }
    // SAFETY: the multipliers end the block.
    let mult = unsafe {
        let at = block.add(BLOCK * 4 * (1 + a.taps));
        [_mm256_load_ps(at.cast()), _mm256_load_ps(at.add(32).cast())]
    };
    for (p, acc) in acc.iter().enumerate() {
        for r in 0..2 {
            // SAFETY: writes 8 channels of pixel px + p inside the output row.
            unsafe {
                _mm_storel_epi64(
                    a.out.add((px + p) * a.channels + c0 + r * LANES).cast(),
                    rq.apply(acc[r], mult[r]),
                )
            };
        }
    }
}

/// Loads `n <= 8` channels at `p` as `i32` lanes (copying when fewer than 8 remain).
///
/// # Safety
/// `p` is readable for `n` bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_channels(p: *const i8, n: usize) -> __m256i {
    // SAFETY: reads exactly n bytes (caller contract).
    unsafe {
        if n == LANES {
            _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast()))
        } else {
            let mut tmp = [0i8; 16];
            std::ptr::copy_nonoverlapping(p, tmp.as_mut_ptr(), n);
            _mm256_cvtepi8_epi32(_mm_loadu_si128(tmp.as_ptr().cast()))
        }
    }
}

/// Output pixel `px`, channels `c0 .. min(c0 + 8·NR, channels)`; `FULL` promises that all
/// `8·NR` channels exist.
///
/// # Safety
/// As [`row`]; `c0` is a multiple of 8 below `channels`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn pass<const NR: usize, const FULL: bool>(a: &DwArgs, px: usize, c0: usize, rq: &Requant256) {
    let mut counts = [LANES; NR];
    let mut lanes = [std::ptr::null::<u8>(); NR];
    let mut acc = [_mm256_setzero_si256(); NR];
    for r in 0..NR {
        let start = c0 + r * LANES;
        if !FULL {
            counts[r] = a.channels.saturating_sub(start).min(LANES);
        }
        // SAFETY: channels start..start+8 lie in block start/16 at lane offset start%16
        // (the caller clamps the pass to the channel count); loads are 32-byte aligned.
        unsafe {
            lanes[r] = a.w.add((start / BLOCK) * a.block_bytes + (start % BLOCK) * 4);
            acc[r] = _mm256_load_si256(lanes[r].cast());
        }
    }
    for (t, &p) in a.ptrs.iter().enumerate() {
        let p = p.wrapping_add(px * a.step);
        for r in 0..NR {
            // SAFETY: reads counts[r] channels of the pixel; the weight lanes of tap t are
            // inside the block.
            unsafe {
                let x = load_channels(p.add(c0 + r * LANES), counts[r]);
                let w = _mm256_load_si256(lanes[r].add(BLOCK * 4 * (1 + t)).cast());
                acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(x, w));
            }
        }
    }
    for r in 0..NR {
        // SAFETY: the multipliers end the block; writes counts[r] bytes of pixel px.
        unsafe {
            let mult = _mm256_load_ps(lanes[r].add(BLOCK * 4 * (1 + a.taps)).cast());
            let dst = a.out.add(px * a.channels + c0 + r * LANES);
            store_low_bytes(dst, rq.apply(acc[r], mult), counts[r]);
        }
    }
}
