//! Portable depthwise microkernel: the test oracle of the SIMD variants.

use super::{DwArgs, BLOCK};

/// Computes one output row.
///
/// # Safety
/// `a` satisfies the [`DwArgs`] contract.
pub(super) unsafe fn row(a: &DwArgs) {
    for px in 0..a.pixels {
        for ch in 0..a.channels {
            let start = (ch / BLOCK) * a.block_bytes;
            // SAFETY: the block of `ch` lies inside the packed data (DwArgs contract).
            let block = unsafe { std::slice::from_raw_parts(a.w.add(start), a.block_bytes) };
            let lane = ch % BLOCK;
            let word = |i: usize| -> [u8; 4] { block[i * BLOCK * 4 + lane * 4..][..4].try_into().unwrap() };
            let mut acc = i32::from_ne_bytes(word(0));
            for (t, &p) in a.ptrs.iter().enumerate() {
                // SAFETY: pixel px of each tap is valid for `channels` bytes (DwArgs contract).
                let x = unsafe { *p.add(px * a.step + ch) } as i32;
                let w = u32::from_ne_bytes(word(1 + t)) as u16 as i16 as i32;
                acc = acc.wrapping_add(x * w);
            }
            let mult = f32::from_ne_bytes(word(1 + a.taps));
            // SAFETY: (px, ch) is inside the output row (DwArgs contract).
            unsafe { *a.out.add(px * a.channels + ch) = a.rq.apply(acc as f32 * mult) };
        }
    }
}
