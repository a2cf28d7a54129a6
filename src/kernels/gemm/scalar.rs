//! Portable GEMM microkernel: the test oracle of the SIMD variants.

use super::pack::PanelGeometry;
use super::{TileArgs, TileOut};

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
        let word = |at: usize, c: usize| -> [u8; 4] { panel[at + c * 4..at + c * 4 + 4].try_into().unwrap() };
        for c in 0..nr.min(t.cols - p * nr) {
            let bias = i32::from_ne_bytes(word(0, c));
            let mult = f32::from_ne_bytes(word(mult_at, c));
            let w_sum = i32::from_ne_bytes(word(mult_at + nr * 4, c));
            let f_bias = f32::from_ne_bytes(word(mult_at + nr * 8, c));
            for r in 0..t.rows {
                // SAFETY: row `r` of the packed A buffer holds `kpad` bytes (TileArgs contract).
                let a = unsafe { std::slice::from_raw_parts(t.a.add(r * t.kpad), t.kpad) };
                let mut acc = bias;
                for (k, &x) in a.iter().enumerate() {
                    acc = acc.wrapping_add((x as i8 as i32) * (weights[k * nr + c] as i8 as i32));
                }
                let col = p * nr + c;
                // SAFETY: (r, col) is inside the output tile and row r has a row scale and
                // zero point (TileArgs contract).
                unsafe {
                    match t.out {
                        TileOut::Quantized { c: out, stride, rq } => {
                            *out.add(r * stride + col) = rq.apply(acc as f32 * mult)
                        }
                        TileOut::Dequantized {
                            y,
                            stride,
                            row_scale,
                            row_zp,
                            row_step,
                        } => {
                            let centered = acc.wrapping_sub((*row_zp.add(r * row_step)).wrapping_mul(w_sum));
                            *y.add(r * stride + col) =
                                centered as f32 * (*row_scale.add(r * row_step) * mult) + f_bias;
                        }
                    }
                }
            }
        }
    }
}

/// Copies `src` into `dst` as bytes, zero-filling the rest (`dst.len() >= src.len()`).
fn copy_segment(src: &[i8], dst: &mut [u8]) {
    for (o, &x) in dst.iter_mut().zip(src) {
        *o = x as u8;
    }
    dst[src.len()..].fill(0);
}

/// The [`crate::kernels::table::PackARowsFn`] of this variant: signed bytes.
///
/// # Safety
/// As [`crate::kernels::table::PackARowsFn`].
pub(super) unsafe fn pack_a_rows(geo: &PanelGeometry, rows: usize, seg_ptrs: &[*const i8], dst: &mut [u8]) {
    super::pack::pack_rows!(geo, rows, seg_ptrs, dst, 1, copy_segment);
}

/// The [`crate::kernels::table::PackABlockFn`] of this variant.
///
/// # Safety
/// None beyond the slice lengths (kept `unsafe` to fit the table's function type).
pub(super) unsafe fn pack_a_block(block: &[i8], dst: &mut [u8]) {
    copy_segment(block, dst);
}
