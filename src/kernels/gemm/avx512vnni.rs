//! AVX-512 VNNI GEMM microkernel: `vpdpbusd` on unsigned (`x ^ 0x80`) activations, up to
//! 6 rows × 4 panels of 16 columns, fp32 requantization in the epilogue.

use super::pack::PanelGeometry;
use super::{TileArgs, TileOut};
use crate::kernels::epilogue::Requant512;
use crate::kernels::requant::Requantizer;
use std::arch::x86_64::*;

/// Computes one tile, dispatching to the register-tiled kernel for its row / panel count.
///
/// # Safety
/// `t` must satisfy the [`TileArgs`] contract and the CPU must support AVX-512 F/BW/VL/VNNI.
pub(super) unsafe fn tile(t: &TileArgs) {
    // SAFETY: forwarded contract.
    unsafe { dispatch_tile!(t, tile_mr_j, [1, 2, 3], 4) }
}

const NR: usize = 16;

/// Accumulates K group `g` (4 bytes of every row × 16 columns of every panel) into `acc`.
///
/// # Safety
/// `t` satisfies the [`TileArgs`] contract, `w` points at panel 0's weights, and
/// `g < t.kpad / 4`.
#[inline(always)]
unsafe fn kgroup_step<const MR: usize, const J: usize>(
    t: &TileArgs,
    w: *const u8,
    g: usize,
    acc: &mut [[__m512i; J]; MR],
) {
    const PREFETCH_AHEAD: usize = 1024;
    let mut wv = [_mm512_setzero_si512(); J];
    for (j, v) in wv.iter_mut().enumerate() {
        // SAFETY: 64 bytes of weights per K group per panel, 64-byte aligned.
        let p = unsafe { w.add(j * t.panel_bytes + g * NR * 4) };
        // SAFETY: `p` is inside the panel and 64-byte aligned (above).
        *v = unsafe { _mm512_load_si512(p.cast()) };
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_AHEAD).cast());
    }
    for (r, row) in acc.iter_mut().enumerate() {
        // SAFETY: packed A row r has kpad bytes; this reads the 4 of group g.
        let x = unsafe { _mm512_set1_epi32(t.a.add(r * t.kpad + g * 4).cast::<i32>().read_unaligned()) };
        for j in 0..J {
            row[j] = _mm512_dpbusd_epi32(row[j], x, wv[j]);
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_mr_j<const MR: usize, const J: usize>(t: &TileArgs) {
    let mut acc = [[_mm512_setzero_si512(); J]; MR];
    for j in 0..J {
        // SAFETY: panel j starts with 16 i32 biases, 64-byte aligned (TileArgs contract).
        let bias = unsafe { _mm512_load_si512(t.w.add(j * t.panel_bytes).cast()) };
        for row in acc.iter_mut() {
            row[j] = bias;
        }
    }
    // SAFETY: the weights follow the 64-byte bias header of each panel.
    let w = unsafe { t.w.add(NR * 4) };
    let kgroups = t.kpad / 4;
    if MR * J <= 8 {
        // Few accumulators cannot hide the `vpdpbusd` latency: a second set takes the odd
        // K groups and is added at the end (integer addition, so the result is unchanged).
        let mut odd = [[_mm512_setzero_si512(); J]; MR];
        let mut g = 0;
        while g + 2 <= kgroups {
            // SAFETY: K groups g and g + 1 exist.
            unsafe {
                kgroup_step(t, w, g, &mut acc);
                kgroup_step(t, w, g + 1, &mut odd);
            }
            g += 2;
        }
        if g < kgroups {
            // SAFETY: K group g exists.
            unsafe { kgroup_step(t, w, g, &mut acc) };
        }
        for (row, odd_row) in acc.iter_mut().zip(&odd) {
            for j in 0..J {
                row[j] = _mm512_add_epi32(row[j], odd_row[j]);
            }
        }
    } else {
        for g in 0..kgroups {
            // SAFETY: K group g exists.
            unsafe { kgroup_step(t, w, g, &mut acc) };
        }
    }
    // The epilogue's loops over rows and panels are not fully unrolled; running them on a
    // copy keeps `acc` itself in registers during the K loop.
    let acc = std::hint::black_box(acc);
    // SAFETY: forwarded TileArgs contract.
    unsafe {
        match t.out {
            TileOut::Quantized { c, stride, rq } => store_quantized(t, &acc, c, stride, &rq),
            TileOut::Dequantized {
                y,
                stride,
                row_scale,
                row_zp,
                row_step,
            } => store_dequantized(t, &acc, y, stride, row_scale, row_zp, row_step),
        }
    }
}

/// The `i8` epilogue: requantize and store every valid column of every row.
///
/// # Safety
/// `t`'s output contract holds for `c` / `stride`.
#[inline(always)]
unsafe fn store_quantized<const MR: usize, const J: usize>(
    t: &TileArgs,
    acc: &[[__m512i; J]; MR],
    c: *mut i8,
    stride: usize,
    rq: &Requantizer,
) {
    let rq = Requant512::new(rq);
    let mult_at = NR * 4 + t.kpad * NR;
    let mults: [__m512; J] = std::array::from_fn(|j| {
        // SAFETY: the multipliers follow the weights in each panel, 64-byte aligned.
        unsafe { _mm512_load_ps(t.w.add(j * t.panel_bytes + mult_at).cast()) }
    });
    let cols = t.cols.min(J * NR);
    let mask: __mmask64 = if cols == 64 { !0 } else { (1u64 << cols) - 1 };
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: writes the valid columns of output row r inside the tile.
        unsafe { _mm512_mask_storeu_epi8(c.add(r * stride), mask, rq.apply_columns(row, &mults)) };
    }
}

/// The `f32` epilogue of dynamic quantization (see [`TileOut::Dequantized`]).
///
/// # Safety
/// `t`'s output contract holds for `y` / `stride` and the row parameters.
#[inline(always)]
unsafe fn store_dequantized<const MR: usize, const J: usize>(
    t: &TileArgs,
    acc: &[[__m512i; J]; MR],
    y: *mut f32,
    stride: usize,
    row_scale: *const f32,
    row_zp: *const i32,
    row_step: usize,
) {
    let mult_at = NR * 4 + t.kpad * NR;
    for j in 0..J {
        let panel = t.w.wrapping_add(j * t.panel_bytes + mult_at);
        // SAFETY: multipliers, weight sums and float biases follow the weights in each
        // panel, 64-byte aligned.
        let (mult, w_sum, f_bias) = unsafe {
            (
                _mm512_load_ps(panel.cast()),
                _mm512_load_si512(panel.add(NR * 4).cast()),
                _mm512_load_ps(panel.add(NR * 8).cast()),
            )
        };
        let mask = column_mask(t, j);
        for (r, row) in acc.iter().enumerate() {
            // SAFETY: row r has a scale and zero point; writes the valid columns of output
            // row r inside the tile.
            unsafe {
                let zp = _mm512_set1_epi32(*row_zp.add(r * row_step));
                let centered = _mm512_sub_epi32(row[j], _mm512_mullo_epi32(zp, w_sum));
                let scale = _mm512_mul_ps(_mm512_set1_ps(*row_scale.add(r * row_step)), mult);
                let v = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(centered), scale), f_bias);
                _mm512_mask_storeu_ps(y.add(r * stride + j * NR), mask, v);
            }
        }
    }
}

/// The store mask of panel `j`'s valid columns.
#[inline(always)]
fn column_mask(t: &TileArgs, j: usize) -> __mmask16 {
    let cols = (t.cols - j * NR).min(NR);
    ((1u32 << cols) - 1) as __mmask16
}

/// The [`crate::kernels::table::PackARowsFn`] of this variant: rows of unsigned (`x ^ 0x80`)
/// activations, segment `s` of row `r` read from `seg_ptrs[r * ks + s]`.
///
/// # Safety
/// The CPU must support AVX-512 F/BW; `dst` holds `rows × geo.kpad` bytes; each pointer
/// is valid for reading `geo.kc` bytes.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn pack_a_rows(geo: &PanelGeometry, rows: usize, seg_ptrs: &[*const i8], dst: &mut [u8]) {
    for r in 0..rows {
        let drow = &mut dst[r * geo.kpad..][..geo.kpad];
        for (d, &p) in drow
            .chunks_exact_mut(geo.kc4)
            .zip(&seg_ptrs[r * geo.ks..][..geo.ks])
        {
            // SAFETY: caller contract: `p` is valid for `kc` bytes.
            pack_segment_unsigned(unsafe { std::slice::from_raw_parts(p, geo.kc) }, d);
        }
    }
}

/// The [`crate::kernels::table::PackABlockFn`] of this variant: copies `src` into `dst`
/// (same length) as `x ^ 0x80`.
///
/// # Safety
/// The CPU must support AVX-512 F/BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn pack_a_block(src: &[i8], dst: &mut [u8]) {
    pack_segment_unsigned(src, dst);
}

/// Copies `src` into `dst` as `x ^ 0x80`, zero-filling the rest (`dst.len() >= src.len()`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn pack_segment_unsigned(src: &[i8], dst: &mut [u8]) {
    debug_assert!(dst.len() >= src.len());
    if src.len() < 16 && dst.len() >= 4 {
        // Short segments (e.g. the 3-channel stem convolution): plain byte moves are cheaper
        // than building masks. The padding is at most 3 bytes, so zeroing the last 4 bytes
        // first (one store) covers it.
        let len = dst.len();
        dst[len - 4..].copy_from_slice(&[0; 4]);
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = (x as u8) ^ 0x80;
        }
        return;
    }
    let flip = _mm512_set1_epi8(-128);
    let mut i = 0;
    while i + 64 <= src.len() {
        // SAFETY: src[i..i + 64] and dst[i..i + 64] are in bounds (dst is at least as long).
        unsafe {
            let x = _mm512_loadu_si512(src.as_ptr().add(i).cast());
            _mm512_storeu_si512(dst.as_mut_ptr().add(i).cast(), _mm512_xor_si512(x, flip));
        }
        i += 64;
    }
    while i < dst.len() {
        let n_src = src.len().saturating_sub(i).min(64);
        let n_dst = (dst.len() - i).min(64);
        let load_mask: __mmask64 = if n_src == 64 { !0 } else { (1u64 << n_src) - 1 };
        let store_mask: __mmask64 = if n_dst == 64 { !0 } else { (1u64 << n_dst) - 1 };
        // SAFETY: the masks limit the load to src[i..i + n_src] and the store to
        // dst[i..i + n_dst]; masked-off lanes are not accessed.
        unsafe {
            let x = _mm512_maskz_loadu_epi8(load_mask, src.as_ptr().add(i).cast());
            let u = _mm512_maskz_mov_epi8(load_mask, _mm512_xor_si512(x, flip));
            _mm512_mask_storeu_epi8(dst.as_mut_ptr().add(i).cast(), store_mask, u);
        }
        i += 64;
    }
}
