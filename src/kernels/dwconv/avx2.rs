//! AVX2 depthwise microkernel on the 16-channel even/odd layout: 16 input channels are loaded
//! and sign-extended to `i16` once per tap, and two `vpmaddwd` accumulate the even and the
//! odd channels (each weight sits next to a zero, so every `i32` lane gains exactly `x·w`).
//! A pass computes up to `PIXELS` output pixels of one block, so each tap's two weight
//! vectors are loaded once for all of them. The even/odd halves are re-interleaved at store;
//! a channel tail shorter than 16 is read and written through a copy.
//!
//! The body is written once ([`even_odd16_dwconv`]); the AVX-VNNI variants
//! (`super::avxvnni`) build it again with `vpdpwssd`, which fuses the multiply-add and the
//! accumulation into one exact instruction.

/// Defines `row` (the [`crate::kernels::table::DwRowFn`] of a 16-channel even/odd variant)
/// with the target features `$features`, computing up to `$pixels` (1..=6) output pixels per
/// pass, where `$dot(acc, x, w)` returns `acc + (x[2i]·w[2i] + x[2i+1]·w[2i+1])` in every
/// `i32` lane without saturation.
macro_rules! even_odd16_dwconv {
    ($features:literal, $pixels:literal, $dot:path) => {
        use crate::kernels::dwconv::{DwArgs, BLOCK};
        use crate::kernels::epilogue::Requant256;
        use std::arch::x86_64::*;

        /// Output pixels per pass.
        const PIXELS: usize = $pixels;

        /// Computes one output row.
        ///
        /// # Safety
        /// `a` satisfies the [`DwArgs`] contract for the 16-channel even/odd layout and the
        /// CPU supports this variant.
        #[target_feature(enable = $features)]
        pub(in crate::kernels::dwconv) unsafe fn row(a: &DwArgs) {
            let rq = Requant256::new(&a.rq);
            let mut px = 0;
            while px < a.pixels {
                let group = (a.pixels - px).min(PIXELS);
                for c0 in (0..a.channels).step_by(BLOCK) {
                    // SAFETY: forwarded contract; the pass covers pixels px..px + group and
                    // channels c0..min(c0 + 16, channels).
                    unsafe {
                        match group {
                            6 => pass::<6>(a, px, c0, &rq),
                            5 => pass::<5>(a, px, c0, &rq),
                            4 => pass::<4>(a, px, c0, &rq),
                            3 => pass::<3>(a, px, c0, &rq),
                            2 => pass::<2>(a, px, c0, &rq),
                            _ => pass::<1>(a, px, c0, &rq),
                        }
                    }
                }
                px += group;
            }
        }

        /// 16 channels at `p` as sign-extended `i16` lanes; only `n <= 16` bytes are read
        /// (the rest are zero).
        ///
        /// # Safety
        /// `p` is readable for `n` bytes.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn load_channels(p: *const i8, n: usize) -> __m256i {
            // SAFETY: reads exactly min(n, 16) bytes (caller contract).
            unsafe {
                if n >= BLOCK {
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(p.cast()))
                } else {
                    let mut tmp = [0i8; BLOCK];
                    std::ptr::copy_nonoverlapping(p, tmp.as_mut_ptr(), n);
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(tmp.as_ptr().cast()))
                }
            }
        }

        /// Output pixels `px .. px + P`, channels `c0 .. min(c0 + 16, channels)`.
        ///
        /// # Safety
        /// As [`row`]; `c0` is a multiple of 16 below `channels` and `px + P <= pixels`.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn pass<const P: usize>(a: &DwArgs, px: usize, c0: usize, rq: &Requant256) {
            let n = (a.channels - c0).min(BLOCK);
            // SAFETY: block c0/16 lies inside the packed data (DwArgs contract); its sections
            // are 32-byte aligned.
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
                // SAFETY: the two weight vectors of tap t are inside the block.
                let (w_even, w_odd) = unsafe {
                    let at = block.add(BLOCK * 4 * (1 + t));
                    (
                        _mm256_load_si256(at.cast()),
                        _mm256_load_si256(at.add(32).cast()),
                    )
                };
                for (p, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: pixel px + p of this tap holds channels c0..c0 + n.
                    let x = unsafe { load_channels(tap_ptr.add(offsets[p]), n) };
                    acc[0] = $dot(acc[0], x, w_even);
                    acc[1] = $dot(acc[1], x, w_odd);
                }
            }
            // SAFETY: the multipliers end the block.
            let (m_even, m_odd) = unsafe {
                let at = block.add(BLOCK * 4 * (1 + a.taps));
                (_mm256_load_ps(at.cast()), _mm256_load_ps(at.add(32).cast()))
            };
            for (p, acc) in acc.iter().enumerate() {
                let q = _mm_unpacklo_epi8(rq.apply(acc[0], m_even), rq.apply(acc[1], m_odd));
                // SAFETY: writes the block's n valid channels of pixel px + p inside the
                // output row.
                unsafe {
                    let dst = a.out.add((px + p) * a.channels + c0);
                    if n == BLOCK {
                        _mm_storeu_si128(dst.cast(), q);
                    } else {
                        let mut tmp = [0i8; BLOCK];
                        _mm_storeu_si128(tmp.as_mut_ptr().cast(), q);
                        std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, n);
                    }
                }
            }
        }
    };
}
pub(super) use even_odd16_dwconv;

/// `acc + vpmaddwd(x, w)`.
#[inline]
#[target_feature(enable = "avx2")]
fn madd_accumulate(
    acc: std::arch::x86_64::__m256i,
    x: std::arch::x86_64::__m256i,
    w: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
}

even_odd16_dwconv!("avx2,fma", 4, madd_accumulate);
