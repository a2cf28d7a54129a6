//! AVX2 elementwise row kernel: 32 elements (four vectors of 8 `i32`/`f32` lanes) per step,
//! then 8 per step, tails through a copy.

use super::{Phase, RowArgs, RowOp};
use crate::kernels::epilogue::{store_low_bytes, Requant256};
use std::arch::x86_64::*;

/// Loads `n <= 8` lanes from `p` (or broadcasts `*p`) as `i32`.
///
/// # Safety
/// `p` is readable for `n` bytes (1 when `broadcast`).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load(p: *const i8, broadcast: bool, n: usize) -> __m256i {
    // SAFETY: reads exactly n bytes, or 1 when broadcast (caller contract).
    unsafe {
        if broadcast {
            _mm256_set1_epi32(*p as i32)
        } else if n == 8 {
            _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast()))
        } else {
            let mut tmp = [0i8; 16];
            std::ptr::copy_nonoverlapping(p, tmp.as_mut_ptr(), n);
            _mm256_cvtepi8_epi32(_mm_loadu_si128(tmp.as_ptr().cast()))
        }
    }
}

/// Loads 32 lanes from `p` (or broadcasts `*p`) as four vectors of `i32`.
///
/// # Safety
/// `p` is readable for 32 bytes (1 when `broadcast`).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load32(p: *const i8, broadcast: bool) -> [__m256i; 4] {
    // SAFETY: reads 32 bytes, or 1 when broadcast (caller contract).
    unsafe {
        if broadcast {
            [_mm256_set1_epi32(*p as i32); 4]
        } else {
            [0, 1, 2, 3].map(|k| _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.add(8 * k).cast())))
        }
    }
}

/// Computes one row.
///
/// # Safety
/// `r` satisfies the [`RowArgs`] contract and the CPU supports AVX2.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn row(r: &RowArgs) {
    // SAFETY: forwarded contract; each arm fixes the operation outside the loop.
    unsafe {
        match r.op {
            RowOp::Add { off, ma, mb, fixed } => {
                let off = _mm256_set1_epi32(off);
                let (ma, mb, fixed) = (_mm256_set1_ps(ma), _mm256_set1_ps(mb), _mm256_set1_ps(fixed));
                row_with(r, |a, b| {
                    let fa = _mm256_cvtepi32_ps(_mm256_add_epi32(a, off));
                    let fb = _mm256_cvtepi32_ps(_mm256_add_epi32(b, off));
                    _mm256_fmadd_ps(fa, ma, _mm256_fmadd_ps(fb, mb, fixed))
                })
            }
            RowOp::Mul { zp_a, zp_b, m, zp_y } => {
                let (za, zb) = (_mm256_set1_epi32(zp_a), _mm256_set1_epi32(zp_b));
                let (m, zp_y) = (_mm256_set1_ps(m), _mm256_set1_ps(zp_y));
                row_with(r, |a, b| {
                    let prod = _mm256_mullo_epi32(_mm256_sub_epi32(a, za), _mm256_sub_epi32(b, zb));
                    _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(prod), m), zp_y)
                })
            }
            RowOp::Requantize { zp_a, s_a, s_y } => {
                let za = _mm256_set1_epi32(zp_a);
                let (s_a, s_y) = (_mm256_set1_ps(s_a), _mm256_set1_ps(s_y));
                row_with(r, |a, _| {
                    let real = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(a, za)), s_a);
                    _mm256_div_ps(real, s_y)
                })
            }
        }
    }
}

/// The row loop around `f(a, b) -> f32 lanes`; `b` is ignored by single-input operations
/// (it is then a copy of `a`).
///
/// # Safety
/// As [`row`].
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_with(r: &RowArgs, f: impl Fn(__m256i, __m256i) -> __m256) {
    let rq = Requant256::new(&r.rq);
    let uses_b = !matches!(r.op, RowOp::Requantize { .. });
    let mut phase = Phase::new(r);
    let b_at = |phase: &Phase| if r.b_broadcast { 0 } else { phase.at() };
    let mut i = 0;
    while i + 32 <= r.len {
        // SAFETY: the row holds len >= i + 32 elements; a periodic `b` holds PERIOD_SLACK
        // bytes past any phase (RowArgs contract).
        let (a, b) = unsafe {
            let a = load32(r.a.add(if r.a_broadcast { 0 } else { i }), r.a_broadcast);
            let b = if uses_b {
                load32(r.b.add(b_at(&phase)), r.b_broadcast)
            } else {
                a
            };
            (a, b)
        };
        let v = [f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])];
        // SAFETY: writes 32 bytes at out + i, inside the row.
        unsafe { _mm256_storeu_si256(r.out.add(i).cast(), rq.apply_f32x4(v)) };
        phase.advance(32);
        i += 32;
    }
    while i < r.len {
        let n = (r.len - i).min(8);
        // SAFETY: the row holds len elements (RowArgs contract); i + n <= len.
        let a = unsafe { load(r.a.add(if r.a_broadcast { 0 } else { i }), r.a_broadcast, n) };
        let b = if uses_b {
            // SAFETY: as above, and a periodic `b` holds PERIOD_SLACK bytes past any phase.
            unsafe {
                load(
                    r.b.add(if r.b_broadcast { 0 } else { phase.at() }),
                    r.b_broadcast,
                    n,
                )
            }
        } else {
            a
        };
        // SAFETY: writes n bytes at out + i, inside the row.
        unsafe { store_low_bytes(r.out.add(i), rq.apply_f32(f(a, b)), n) };
        phase.advance(8);
        i += 8;
    }
}
