//! AVX-512 VBMI lookup: 64 bytes per step with two `vpermi2b` lookups of 128 table entries each
//! (indexed by the low 7 bits of the byte) and a blend by the byte's sign bit; masked tail.

use std::arch::x86_64::*;

/// The table as four 64-byte registers: entries 0..64, 64..128, 128..192, 192..256.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn load_table(table: &[i8; 256]) -> [__m512i; 4] {
    // SAFETY: `table` holds 256 readable bytes, so each 64-byte load at 64j is in bounds; the
    // CPU supports AVX-512 F (target feature).
    std::array::from_fn(|j| unsafe { _mm512_loadu_si512(table.as_ptr().add(64 * j).cast()) })
}

/// Looks up 64 bytes: `vpermi2b` picks entry `b & 127` of the lower half (bytes 0..=127) and of
/// the upper half (bytes 128..=255); the sign bit of `b` chooses between them.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn lookup(t: &[__m512i; 4], x: __m512i) -> __m512i {
    let low = _mm512_permutex2var_epi8(t[0], x, t[1]);
    let high = _mm512_permutex2var_epi8(t[2], x, t[3]);
    _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), low, high)
}

/// `y[i] = table[x[i] as u8]` for `i < n`.
///
/// # Safety
/// `x` is readable and `y` writable for `n` bytes; they are equal or do not overlap. The CPU
/// supports AVX-512 F/BW and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(super) unsafe fn map(table: &[i8; 256], x: *const i8, y: *mut i8, n: usize) {
    let t = load_table(table);
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
