//! AVX-512 elementwise row kernel: 64 elements (four vectors of 16 `i32`/`f32` lanes) per
//! step, then 16 per step with masked tails.

use super::{Phase, RowArgs, RowOp};
use crate::kernels::epilogue::Requant512;
use std::arch::x86_64::*;

/// Loads `n <= 16` lanes from `p` (or broadcasts `*p`) as `i32`.
///
/// # Safety
/// `p` is readable for `n` bytes (1 when `broadcast`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn load(p: *const i8, broadcast: bool, mask: __mmask16) -> __m512i {
    // SAFETY: the mask limits the read to n bytes (caller contract).
    unsafe {
        if broadcast {
            _mm512_set1_epi32(*p as i32)
        } else {
            _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, p))
        }
    }
}

/// Computes one row.
///
/// # Safety
/// `r` satisfies the [`RowArgs`] contract and the CPU supports AVX-512 F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn row(r: &RowArgs) {
    // SAFETY: forwarded contract; each arm fixes the operation outside the loop.
    unsafe {
        match r.op {
            RowOp::Add { off, ma, mb, fixed } => {
                let off = _mm512_set1_epi32(off);
                let (ma, mb, fixed) = (_mm512_set1_ps(ma), _mm512_set1_ps(mb), _mm512_set1_ps(fixed));
                row_with(r, |a, b| {
                    let fa = _mm512_cvtepi32_ps(_mm512_add_epi32(a, off));
                    let fb = _mm512_cvtepi32_ps(_mm512_add_epi32(b, off));
                    _mm512_fmadd_ps(fa, ma, _mm512_fmadd_ps(fb, mb, fixed))
                })
            }
            RowOp::Mul { zp_a, zp_b, m, zp_y } => {
                let (za, zb) = (_mm512_set1_epi32(zp_a), _mm512_set1_epi32(zp_b));
                let (m, zp_y) = (_mm512_set1_ps(m), _mm512_set1_ps(zp_y));
                row_with(r, |a, b| {
                    let prod = _mm512_mullo_epi32(_mm512_sub_epi32(a, za), _mm512_sub_epi32(b, zb));
                    _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(prod), m), zp_y)
                })
            }
            RowOp::Requantize { zp_a, s_a, s_y } => {
                let za = _mm512_set1_epi32(zp_a);
                let (s_a, s_y) = (_mm512_set1_ps(s_a), _mm512_set1_ps(s_y));
                row_with(r, |a, _| {
                    let real = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(a, za)), s_a);
                    _mm512_div_ps(real, s_y)
                })
            }
        }
    }
}

/// Loads 64 lanes from `p` (or broadcasts `*p`) as four vectors of `i32`.
///
/// # Safety
/// `p` is readable for 64 bytes (1 when `broadcast`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn load64(p: *const i8, broadcast: bool) -> [__m512i; 4] {
    // SAFETY: reads 64 bytes, or 1 when broadcast (caller contract).
    unsafe {
        if broadcast {
            [_mm512_set1_epi32(*p as i32); 4]
        } else {
            [0, 1, 2, 3].map(|k| _mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(16 * k).cast())))
        }
    }
}

/// The row loop around `f(a, b) -> f32 lanes`; `b` is ignored by single-input operations
/// (it is then a copy of `a`).
///
/// # Safety
/// As [`row`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn row_with(r: &RowArgs, f: impl Fn(__m512i, __m512i) -> __m512) {
    let rq = Requant512::new(&r.rq);
    let uses_b = !matches!(r.op, RowOp::Requantize { .. });
    let mut phase = Phase::new(r);
    let b_at = |phase: &Phase| if r.b_broadcast { 0 } else { phase.at() };
    let mut i = 0;
    while i + 64 <= r.len {
        // SAFETY: the row holds len >= i + 64 elements; a periodic `b` holds PERIOD_SLACK
        // bytes past any phase (RowArgs contract).
        let (a, b) = unsafe {
            let a = load64(r.a.add(if r.a_broadcast { 0 } else { i }), r.a_broadcast);
            let b = if uses_b {
                load64(r.b.add(b_at(&phase)), r.b_broadcast)
            } else {
                a
            };
            (a, b)
        };
        let v = [f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])];
        // SAFETY: writes 64 bytes at out + i, inside the row.
        unsafe { _mm512_storeu_si512(r.out.add(i).cast(), rq.apply_f32x4(v)) };
        phase.advance(64);
        i += 64;
    }
    while i < r.len {
        let n = (r.len - i).min(16);
        let mask: __mmask16 = ((1u32 << n) - 1) as __mmask16;
        // SAFETY: the row holds len elements (RowArgs contract); i + n <= len.
        let a = unsafe { load(r.a.add(if r.a_broadcast { 0 } else { i }), r.a_broadcast, mask) };
        let b = if uses_b {
            // SAFETY: as above, and a periodic `b` holds PERIOD_SLACK bytes past any phase.
            unsafe { load(r.b.add(b_at(&phase)), r.b_broadcast, mask) }
        } else {
            a
        };
        // SAFETY: writes n bytes at out + i, inside the row.
        unsafe { _mm_mask_storeu_epi8(r.out.add(i), mask, rq.apply_f32(f(a, b))) };
        phase.advance(16);
        i += 16;
    }
}
