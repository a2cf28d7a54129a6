//! AVX2 lookup: 32 bytes per step with `vpshufb` over 16 sub-tables of 16 entries (see
//! [`super::split_table`]); the tail goes through a copy.

use super::{split_table, SUBTABLES};
use std::arch::x86_64::*;

/// The 16 sub-tables, each in both 128-bit lanes (`vpshufb` looks up within a lane).
#[inline]
#[target_feature(enable = "avx2")]
fn load_subtables(table: &[i8; 256]) -> [__m256i; SUBTABLES] {
    let parts = split_table(table);
    // SAFETY: each part is 16 readable bytes; the CPU supports AVX2 (target feature).
    std::array::from_fn(|j| unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(parts[j].as_ptr().cast())) })
}

/// Looks up 32 bytes: the lower chain serves bytes 0..=127 (indices `x - 16j` with signed
/// saturation, negative and so zeroed by `vpshufb` once `j` passes the high nibble), the upper
/// chain bytes 128..=255 through `x ^ 0x80`; each byte gets the XOR of its chain's sub-tables
/// up to its high nibble, which [`split_table`] makes its table entry.
#[inline]
#[target_feature(enable = "avx2")]
fn lookup(t: &[__m256i; SUBTABLES], x: __m256i) -> __m256i {
    let step = _mm256_set1_epi8(16);
    let mut idx = x;
    let mut acc = _mm256_shuffle_epi8(t[0], idx);
    for sub in &t[1..8] {
        idx = _mm256_subs_epi8(idx, step);
        acc = _mm256_xor_si256(acc, _mm256_shuffle_epi8(*sub, idx));
    }
    idx = _mm256_xor_si256(x, _mm256_set1_epi8(i8::MIN));
    acc = _mm256_xor_si256(acc, _mm256_shuffle_epi8(t[8], idx));
    for sub in &t[9..] {
        idx = _mm256_subs_epi8(idx, step);
        acc = _mm256_xor_si256(acc, _mm256_shuffle_epi8(*sub, idx));
    }
    acc
}

/// `y[i] = table[x[i] as u8]` for `i < n`.
///
/// # Safety
/// `x` is readable and `y` writable for `n` bytes; they are equal or do not overlap. The CPU
/// supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn map(table: &[i8; 256], x: *const i8, y: *mut i8, n: usize) {
    let t = load_subtables(table);
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: bytes i..i + 32 are in bounds (caller contract); each block is loaded
        // before it is stored, so x == y is fine.
        unsafe {
            let v = _mm256_loadu_si256(x.add(i).cast());
            _mm256_storeu_si256(y.add(i).cast(), lookup(&t, v));
        }
        i += 32;
    }
    if i < n {
        let rest = n - i;
        let mut buf = [0i8; 32];
        // SAFETY: `rest < 32` bytes from i are in bounds of x and y (caller contract) and
        // of `buf`.
        unsafe {
            std::ptr::copy_nonoverlapping(x.add(i), buf.as_mut_ptr(), rest);
            let v = lookup(&t, _mm256_loadu_si256(buf.as_ptr().cast()));
            _mm256_storeu_si256(buf.as_mut_ptr().cast(), v);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), y.add(i), rest);
        }
    }
}
