//! AVX-512 lookup: 64 bytes per step with the same `vpshufb` scheme as the AVX2 variant
//! (AVX-512 BW; the rows do not guarantee VBMI's `vpermi2b`), masked tail.

use super::{split_table, SUBTABLES};
use std::arch::x86_64::*;

/// The 16 sub-tables, each in all four 128-bit lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn load_subtables(table: &[i8; 256]) -> [__m512i; SUBTABLES] {
    let parts = split_table(table);
    // SAFETY: each part is 16 readable bytes; the CPU supports AVX-512 F/BW (target feature).
    std::array::from_fn(|j| unsafe { _mm512_broadcast_i32x4(_mm_loadu_si128(parts[j].as_ptr().cast())) })
}

/// Looks up 64 bytes (the two chains of the AVX2 variant's `lookup`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn lookup(t: &[__m512i; SUBTABLES], x: __m512i) -> __m512i {
    let step = _mm512_set1_epi8(16);
    let mut idx = x;
    let mut acc = _mm512_shuffle_epi8(t[0], idx);
    for sub in &t[1..8] {
        idx = _mm512_subs_epi8(idx, step);
        acc = _mm512_xor_si512(acc, _mm512_shuffle_epi8(*sub, idx));
    }
    idx = _mm512_xor_si512(x, _mm512_set1_epi8(i8::MIN));
    acc = _mm512_xor_si512(acc, _mm512_shuffle_epi8(t[8], idx));
    for sub in &t[9..] {
        idx = _mm512_subs_epi8(idx, step);
        acc = _mm512_xor_si512(acc, _mm512_shuffle_epi8(*sub, idx));
    }
    acc
}

/// `y[i] = table[x[i] as u8]` for `i < n`.
///
/// # Safety
/// `x` is readable and `y` writable for `n` bytes; they are equal or do not overlap. The CPU
/// supports AVX-512 F/BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn map(table: &[i8; 256], x: *const i8, y: *mut i8, n: usize) {
    let t = load_subtables(table);
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: bytes i..i + 64 are in bounds (caller contract); each block is loaded
        // before it is stored, so x == y is fine.
        unsafe {
            let v = _mm512_loadu_si512(x.add(i).cast());
            _mm512_storeu_si512(y.add(i).cast(), lookup(&t, v));
        }
        i += 64;
    }
    if i < n {
        let mask: __mmask64 = (1u64 << (n - i)) - 1;
        // SAFETY: the mask limits the access to the `n - i < 64` bytes in bounds.
        unsafe {
            let v = _mm512_maskz_loadu_epi8(mask, x.add(i));
            _mm512_mask_storeu_epi8(y.add(i), mask, lookup(&t, v));
        }
    }
}
