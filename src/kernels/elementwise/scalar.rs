//! Portable elementwise row kernel: the test oracle of the SIMD variants.
//!
//! `f32::mul_add` is one correctly rounded fused multiply-add whatever the CPU; where it has
//! the FMA instruction the same loop is compiled to use it instead of a library call (the
//! results are identical, only faster).

use super::{RowArgs, RowOp};

/// Computes one row.
///
/// # Safety
/// `r` satisfies the [`RowArgs`] contract.
pub(super) unsafe fn row(r: &RowArgs) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA; the RowArgs contract is forwarded.
        return unsafe { row_fma(r) };
    }
    // SAFETY: forwarded contract.
    unsafe { row_portable(r) }
}

/// [`row_portable`] compiled with the FMA instruction available.
///
/// # Safety
/// As [`row`], and the CPU supports FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn row_fma(r: &RowArgs) {
    // SAFETY: forwarded contract.
    unsafe { row_portable(r) }
}

/// The row loop.
///
/// # Safety
/// As [`row`].
#[inline(always)]
unsafe fn row_portable(r: &RowArgs) {
    for i in 0..r.len {
        // SAFETY: index i (or 0 when broadcast) is readable (RowArgs contract).
        let a = unsafe { *r.a.add(if r.a_broadcast { 0 } else { i }) } as i32;
        let v = match r.op {
            RowOp::Add { off, ma, mb, fixed } => {
                // SAFETY: as above.
                let b = unsafe { *r.b.add(if r.b_broadcast { 0 } else { i }) } as i32;
                ((a + off) as f32).mul_add(ma, ((b + off) as f32).mul_add(mb, fixed))
            }
            RowOp::Mul { zp_a, zp_b, m, zp_y } => {
                // SAFETY: as above.
                let b = unsafe { *r.b.add(if r.b_broadcast { 0 } else { i }) } as i32;
                ((a - zp_a) * (b - zp_b)) as f32 * m + zp_y
            }
            RowOp::Requantize { zp_a, s_a, s_y } => ((a - zp_a) as f32 * s_a) / s_y,
        };
        // SAFETY: i < len is writable (RowArgs contract).
        unsafe { *r.out.add(i) = r.rq.apply(v) };
    }
}
