//! AVX2 GEMM microkernel: activations widened to `i16` pairs, exact `vpmaddwd` dot products,
//! up to 6 rows × 2 panels of 8 columns, fp32 requantization in the epilogue.

use super::pack::PanelGeometry;
use super::{TileArgs, TileOut};
use crate::kernels::epilogue::{store_low_bytes, Requant256};
use std::arch::x86_64::*;

/// Computes one tile, dispatching to the register-tiled kernel for its row / panel count.
///
/// # Safety
/// `t` must satisfy the [`TileArgs`] contract and the CPU must support AVX2.
pub(super) unsafe fn tile(t: &TileArgs) {
    // SAFETY: forwarded contract.
    unsafe { dispatch_tile!(t, tile_mr_j, [1], 2) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn tile_mr_j<const MR: usize, const J: usize>(t: &TileArgs) {
    const NR: usize = 8;
    let a_row_bytes = t.kpad * 2;
    let mut acc = [[_mm256_setzero_si256(); J]; MR];
    for j in 0..J {
        // SAFETY: panel j starts with 8 i32 biases, 32-byte aligned (TileArgs contract).
        let bias = unsafe { _mm256_load_si256(t.w.add(j * t.panel_bytes).cast()) };
        for row in acc.iter_mut() {
            row[j] = bias;
        }
    }
    // SAFETY: the weights follow the 32-byte bias header of each panel.
    let mut w = unsafe { t.w.add(NR * 4) };
    let mut a = t.a;
    for _ in 0..t.kpad / 2 {
        let mut wv = [_mm256_setzero_si256(); J];
        for (j, v) in wv.iter_mut().enumerate() {
            // SAFETY: 16 bytes of weights (8 columns × 2 K) per K pair per panel.
            *v = unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(j * t.panel_bytes).cast())) };
        }
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: packed A row r holds kpad i16 values; this reads one pair.
            let x = unsafe { _mm256_set1_epi32(a.add(r * a_row_bytes).cast::<i32>().read_unaligned()) };
            for j in 0..J {
                row[j] = _mm256_add_epi32(row[j], _mm256_madd_epi16(x, wv[j]));
            }
        }
        // SAFETY: stays within (one past) the panel's weights and A's rows.
        unsafe {
            w = w.add(NR * 2);
            a = a.add(4);
        }
    }
    // The epilogue indexes accumulators dynamically; doing so on a copy keeps `acc` itself
    // in registers during the K loop.
    let acc = std::hint::black_box(acc);
    // SAFETY: forwarded TileArgs contract.
    unsafe { store_tile(t, &acc) };
}

/// The epilogue of every 256-bit GEMM kernel (8-column panels): requantizes or dequantizes
/// the accumulators of `t.rows` rows × `J` panels and stores every valid column.
///
/// # Safety
/// `t` satisfies the [`TileArgs`] contract for 8-column panels, `MR == t.rows` and
/// `J == t.panels`; the CPU supports AVX2.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn store_tile<const MR: usize, const J: usize>(t: &TileArgs, acc: &[[__m256i; J]; MR]) {
    const NR: usize = 8;
    let mult_at = NR * 4 + t.kpad * NR;
    for j in 0..J {
        let panel = t.w.wrapping_add(j * t.panel_bytes);
        // SAFETY: multipliers, weight sums and float biases follow the weights in each
        // panel, 32-byte aligned.
        let (mult, w_sum, f_bias) = unsafe {
            (
                _mm256_load_ps(panel.add(mult_at).cast()),
                _mm256_load_si256(panel.add(mult_at + NR * 4).cast()),
                _mm256_load_ps(panel.add(mult_at + NR * 8).cast()),
            )
        };
        let cols = (t.cols - j * NR).min(NR);
        match t.out {
            TileOut::Quantized { c, stride, rq } => {
                let rq = Requant256::new(&rq);
                for (r, row) in acc.iter().enumerate() {
                    // SAFETY: writes `cols` bytes of output row r inside the tile.
                    unsafe { store_low_bytes(c.add(r * stride + j * NR), rq.apply(row[j], mult), cols) };
                }
            }
            TileOut::Dequantized {
                y,
                stride,
                row_scale,
                row_zp,
                row_step,
            } => {
                for (r, row) in acc.iter().enumerate() {
                    // SAFETY: row r has a scale and zero point; writes `cols` floats of
                    // output row r inside the tile.
                    unsafe {
                        let zp = _mm256_set1_epi32(*row_zp.add(r * row_step));
                        let centered = _mm256_sub_epi32(row[j], _mm256_mullo_epi32(zp, w_sum));
                        let scale = _mm256_mul_ps(_mm256_set1_ps(*row_scale.add(r * row_step)), mult);
                        let v = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(centered), scale), f_bias);
                        let dst = y.add(r * stride + j * NR);
                        if cols == NR {
                            _mm256_storeu_ps(dst, v);
                        } else {
                            let mut tmp = [0f32; NR];
                            _mm256_storeu_ps(tmp.as_mut_ptr(), v);
                            std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, cols);
                        }
                    }
                }
            }
        }
    }
}

/// Writes `src` sign-extended to native-endian `i16` into `dst`, zero-filling the rest
/// (`dst.len() >= 2 * src.len()`).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_segment_i16(src: &[i8], dst: &mut [u8]) {
    debug_assert!(dst.len() >= 2 * src.len());
    let mut i = 0;
    while i + 16 <= src.len() {
        // SAFETY: reads src[i..i + 16] and writes dst[2i..2i + 32], both in bounds.
        unsafe {
            let x = _mm256_cvtepi8_epi16(_mm_loadu_si128(src.as_ptr().add(i).cast()));
            _mm256_storeu_si256(dst.as_mut_ptr().add(2 * i).cast(), x);
        }
        i += 16;
    }
    for (pair, &x) in dst[2 * i..].chunks_exact_mut(2).zip(&src[i..]) {
        pair.copy_from_slice(&(x as i16).to_ne_bytes());
    }
    dst[src.len() * 2..].fill(0);
}

/// The [`crate::kernels::table::PackARowsFn`] of this variant: `i16` activations.
///
/// # Safety
/// As [`crate::kernels::table::PackARowsFn`]; the CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_a_rows(geo: &PanelGeometry, rows: usize, seg_ptrs: &[*const i8], dst: &mut [u8]) {
    // SAFETY: each `dst` segment holds `2 × kc4 >= 2 × kc` bytes; the CPU supports AVX2.
    super::pack::pack_rows!(geo, rows, seg_ptrs, dst, 2, |src, d| unsafe {
        pack_segment_i16(src, d)
    });
}

/// The [`crate::kernels::table::PackABlockFn`] of this variant.
///
/// # Safety
/// `dst.len() == 2 * block.len()`; the CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_a_block(block: &[i8], dst: &mut [u8]) {
    // SAFETY: forwarded contract.
    unsafe { pack_segment_i16(block, dst) };
}
