//! Portable elementwise row kernel: the test oracle of the SIMD variants.
//!
//! `f32::mul_add` is one correctly rounded fused multiply-add whatever the CPU; where it has
//! the FMA instruction the same loop is compiled to use it instead of a library call (the
//! results are identical, only faster).

use super::{Phase, RowArgs, RowOp};

/// Computes one row.
///
/// # Safety
/// `r` satisfies the [`RowArgs`] contract.
pub(super) unsafe fn row(r: &RowArgs) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::features().fma {
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
    let mut phase = Phase::new(r);
    for i in 0..r.len {
        let j = if r.b_broadcast { 0 } else { phase.at() };
        phase.advance(1);
        // SAFETY: index i (or 0 when broadcast) is readable (RowArgs contract).
        let a = unsafe { *r.a.add(if r.a_broadcast { 0 } else { i }) } as i32;
        let v = match r.op {
            RowOp::Add { off, ma, mb, fixed } => {
                // SAFETY: index j (0, i, or i modulo the period) is readable (RowArgs contract).
                let b = unsafe { *r.b.add(j) } as i32;
                ((a + off) as f32).mul_add(ma, ((b + off) as f32).mul_add(mb, fixed))
            }
            RowOp::Mul { zp_a, zp_b, m, zp_y } => {
                // SAFETY: as above.
                let b = unsafe { *r.b.add(j) } as i32;
                ((a - zp_a) * (b - zp_b)) as f32 * m + zp_y
            }
            RowOp::Requantize { zp_a, s_a, s_y } => ((a - zp_a) as f32 * s_a) / s_y,
        };
        // SAFETY: i < len is writable (RowArgs contract).
        unsafe { *r.out.add(i) = r.rq.apply(v) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::requant::{OutputRange, Requantizer};

    /// The loop compiled without FMA (library `fmaf`) and with it give the same bytes.
    #[test]
    fn portable_and_fma_rows_agree() {
        let a: Vec<i8> = (0..=255u8).map(|v| v as i8).collect();
        let b: Vec<i8> = a.iter().rev().copied().collect();
        let mut seed = 0x9e37_79b9u32;
        for _ in 0..64 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let ma = 2f32.powf((seed % 1000) as f32 / 100.0 - 8.0);
            let mb = 2f32.powf((seed / 1000 % 1000) as f32 / 100.0 - 8.0);
            let fixed = (seed % 255) as f32 - 128.0 - ma * 3.0;
            for off in [0, 128] {
                let run = |fma: bool| {
                    let mut out = vec![0i8; 256];
                    let r = RowArgs {
                        op: RowOp::Add { off, ma, mb, fixed },
                        len: 256,
                        a: a.as_ptr(),
                        a_broadcast: false,
                        b: b.as_ptr(),
                        b_broadcast: false,
                        b_period: 0,
                        out: out.as_mut_ptr(),
                        rq: Requantizer::new(-off, OutputRange::FULL),
                    };
                    // SAFETY: a, b and out hold 256 elements; row_fma only runs on FMA CPUs.
                    unsafe {
                        if fma {
                            #[cfg(target_arch = "x86_64")]
                            row_fma(&r);
                        } else {
                            row_portable(&r);
                        }
                    }
                    out
                };
                #[cfg(target_arch = "x86_64")]
                if crate::cpu::features().fma {
                    assert_eq!(run(false), run(true), "ma {ma} mb {mb} fixed {fixed} off {off}");
                }
            }
        }
    }
}
