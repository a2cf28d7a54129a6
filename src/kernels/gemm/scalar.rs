//! Portable GEMM microkernel: the test oracle of the SIMD variants.

use super::TileArgs;

/// Computes one tile (see [`TileArgs`]) with plain integer arithmetic.
///
/// # Safety
/// `t` must satisfy the [`TileArgs`] contract.
pub(super) unsafe fn tile(t: &TileArgs) {
    let nr = 8;
    for p in 0..t.panels {
        // SAFETY: the panel lies inside the packed buffer (TileArgs contract).
        let panel = unsafe { std::slice::from_raw_parts(t.w.add(p * t.panel_bytes), t.panel_bytes) };
        let weights = &panel[nr * 4..];
        let mult_at = nr * 4 + t.kpad * nr;
        for c in 0..nr.min(t.cols - p * nr) {
            let bias = i32::from_ne_bytes(panel[c * 4..c * 4 + 4].try_into().unwrap());
            let mult = f32::from_ne_bytes(panel[mult_at + c * 4..mult_at + c * 4 + 4].try_into().unwrap());
            for r in 0..t.rows {
                // SAFETY: row `r` of the packed A buffer holds `kpad` bytes (TileArgs contract).
                let a = unsafe { std::slice::from_raw_parts(t.a.add(r * t.kpad), t.kpad) };
                let mut acc = bias;
                for (k, &x) in a.iter().enumerate() {
                    acc = acc.wrapping_add((x as i8 as i32) * (weights[k * nr + c] as i8 as i32));
                }
                // SAFETY: (r, p*nr + c) is inside the output tile (TileArgs contract).
                unsafe { *t.c.add(r * t.c_stride + p * nr + c) = t.rq.apply(acc as f32 * mult) };
            }
        }
    }
}
