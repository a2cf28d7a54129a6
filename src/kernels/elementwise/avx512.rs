//! AVX-512 elementwise row kernel: 16 lanes of `i32`/`f32` per step, masked tails.

use super::{RowArgs, RowOp};
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
    let rq = Requant512::new(&r.rq);
    let mut i = 0;
    while i < r.len {
        let n = (r.len - i).min(16);
        let mask: __mmask16 = ((1u32 << n) - 1) as __mmask16;
        // SAFETY: the row holds len elements (RowArgs contract); i + n <= len.
        let a = unsafe { load(r.a.add(if r.a_broadcast { 0 } else { i }), r.a_broadcast, mask) };
        let v = match r.op {
            RowOp::Add { zp_a, zp_b, ma, mb } => {
                // SAFETY: as above.
                let b = unsafe { load(r.b.add(if r.b_broadcast { 0 } else { i }), r.b_broadcast, mask) };
                let fa = _mm512_mul_ps(
                    _mm512_cvtepi32_ps(_mm512_sub_epi32(a, _mm512_set1_epi32(zp_a))),
                    _mm512_set1_ps(ma),
                );
                let fb = _mm512_mul_ps(
                    _mm512_cvtepi32_ps(_mm512_sub_epi32(b, _mm512_set1_epi32(zp_b))),
                    _mm512_set1_ps(mb),
                );
                _mm512_add_ps(fa, fb)
            }
            RowOp::Mul { zp_a, zp_b, m } => {
                // SAFETY: as above.
                let b = unsafe { load(r.b.add(if r.b_broadcast { 0 } else { i }), r.b_broadcast, mask) };
                let prod = _mm512_mullo_epi32(
                    _mm512_sub_epi32(a, _mm512_set1_epi32(zp_a)),
                    _mm512_sub_epi32(b, _mm512_set1_epi32(zp_b)),
                );
                _mm512_mul_ps(_mm512_cvtepi32_ps(prod), _mm512_set1_ps(m))
            }
            RowOp::Scale { zp_a, m } => _mm512_mul_ps(
                _mm512_cvtepi32_ps(_mm512_sub_epi32(a, _mm512_set1_epi32(zp_a))),
                _mm512_set1_ps(m),
            ),
        };
        // SAFETY: writes n bytes at out + i, inside the row.
        unsafe { _mm_mask_storeu_epi8(r.out.add(i), mask, rq.apply_f32(v)) };
        i += 16;
    }
}
