//! 256-bit VNNI GEMM microkernel: `vpdpbusd` on unsigned (`x ^ 0x80`) activations, up to
//! 6 rows × 2 panels of 8 columns (K in groups of 4), fp32 requantization in the epilogue
//! shared with the AVX2 kernel.
//!
//! The body is written once (the `vnni256_gemm!` macro) and built twice: [`vex`] with AVX-VNNI's VEX
//! `vpdpbusd` (CPUs with AVX-VNNI, with or without AVX-512) and [`evex`] with the EVEX
//! encoding of the same instruction on 256-bit registers (AVX-512 VNNI + VL). Both compute
//! `acc += Σ u8 × i8` over groups of 4 without saturation, so they give the same bits; the
//! EVEX build proves the algorithm on every AVX-512 VNNI CPU. Activations are fed as
//! `x + 128` and the packed bias holds `-128·Σw`, as for the AVX-512 kernel, so the integer
//! result equals the scalar kernel's `Σ x·w` exactly (wrapping `i32` arithmetic throughout).

use super::pack::PanelGeometry;

/// Defines `tile` (the [`crate::kernels::table::GemmTileFn`] of a 256-bit VNNI variant)
/// with the target features `$features` and the `vpdpbusd` intrinsic `$dpbusd`.
macro_rules! vnni256_gemm {
    ($features:literal, $dpbusd:ident) => {
        use crate::kernels::gemm::TileArgs;
        use std::arch::x86_64::*;

        /// Columns per panel.
        const NR: usize = 8;

        /// Computes one tile, dispatching to the register-tiled kernel for its row / panel
        /// count.
        ///
        /// # Safety
        /// `t` must satisfy the [`TileArgs`] contract and the CPU must support this variant.
        pub(in crate::kernels::gemm) unsafe fn tile(t: &TileArgs) {
            // SAFETY: forwarded contract.
            unsafe { dispatch_tile!(t, tile_mr_j, [1], 2) }
        }

        /// Accumulates K group `g` (4 bytes of every row × 8 columns of every panel) into
        /// `acc`.
        ///
        /// # Safety
        /// `t` satisfies the [`TileArgs`] contract, `w` points at panel 0's weights, and
        /// `g < t.kpad / 4`; the CPU supports this variant.
        #[inline(always)]
        unsafe fn kgroup_step<const MR: usize, const J: usize>(
            t: &TileArgs,
            w: *const u8,
            g: usize,
            acc: &mut [[__m256i; J]; MR],
        ) {
            // SAFETY: 32 bytes of weights per K group per panel, 32-byte aligned; packed A
            // row r has kpad bytes, of which this reads the 4 of group g.
            unsafe {
                let mut wv = [_mm256_setzero_si256(); J];
                for (j, v) in wv.iter_mut().enumerate() {
                    *v = _mm256_load_si256(w.add(j * t.panel_bytes + g * NR * 4).cast());
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_epi32(t.a.add(r * t.kpad + g * 4).cast::<i32>().read_unaligned());
                    for j in 0..J {
                        row[j] = $dpbusd(row[j], x, wv[j]);
                    }
                }
            }
        }

        #[target_feature(enable = $features)]
        unsafe fn tile_mr_j<const MR: usize, const J: usize>(t: &TileArgs) {
            let mut acc = [[_mm256_setzero_si256(); J]; MR];
            for j in 0..J {
                // SAFETY: panel j starts with 8 i32 biases, 32-byte aligned (TileArgs
                // contract).
                let bias = unsafe { _mm256_load_si256(t.w.add(j * t.panel_bytes).cast()) };
                for row in acc.iter_mut() {
                    row[j] = bias;
                }
            }
            // SAFETY: the weights follow the 32-byte bias header of each panel.
            let w = unsafe { t.w.add(NR * 4) };
            let kgroups = t.kpad / 4;
            if MR * J <= 6 {
                // Few accumulators cannot hide the `vpdpbusd` latency: a second set takes the
                // odd K groups and is added at the end (integer addition, so the result is
                // unchanged).
                let mut odd = [[_mm256_setzero_si256(); J]; MR];
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
                        row[j] = _mm256_add_epi32(row[j], odd_row[j]);
                    }
                }
            } else {
                for g in 0..kgroups {
                    // SAFETY: K group g exists.
                    unsafe { kgroup_step(t, w, g, &mut acc) };
                }
            }
            // The epilogue indexes accumulators dynamically; doing so on a copy keeps `acc`
            // itself in registers during the K loop.
            let acc = std::hint::black_box(acc);
            // SAFETY: forwarded TileArgs contract; MR and J are the tile's rows and panels;
            // the CPU supports AVX2 (implied by this variant).
            unsafe { crate::kernels::gemm::avx2::store_tile(t, &acc) };
        }
    };
}

/// The AVX-VNNI (VEX) build.
pub(super) mod vex {
    vnni256_gemm!("avxvnni,avx2,fma", _mm256_dpbusd_avx_epi32);
}

/// The AVX-512 VNNI + VL (EVEX, 256-bit registers) build.
pub(super) mod evex {
    vnni256_gemm!("avx512vnni,avx512vl,avx512f,avx2,fma", _mm256_dpbusd_epi32);
}

/// The [`crate::kernels::table::PackARowsFn`] of both builds: unsigned (`x ^ 0x80`)
/// activations.
///
/// # Safety
/// As [`crate::kernels::table::PackARowsFn`]; the CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_a_rows(geo: &PanelGeometry, rows: usize, seg_ptrs: &[*const i8], dst: &mut [u8]) {
    super::pack::pack_rows!(geo, rows, seg_ptrs, dst, 1, flip_segment);
}

/// The [`crate::kernels::table::PackABlockFn`] of both builds.
///
/// # Safety
/// `dst.len() == block.len()`; the CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_a_block(block: &[i8], dst: &mut [u8]) {
    flip_segment(block, dst);
}

/// Copies `src` into `dst` as `x ^ 0x80`, zero-filling the rest (`dst.len() >= src.len()`).
#[inline]
#[target_feature(enable = "avx2")]
fn flip_segment(src: &[i8], dst: &mut [u8]) {
    use std::arch::x86_64::*;
    assert!(dst.len() >= src.len());
    let flip = _mm256_set1_epi8(-128);
    let mut i = 0;
    while i + 32 <= src.len() {
        // SAFETY: src[i..i + 32] and dst[i..i + 32] are in bounds (dst is at least as long).
        unsafe {
            let x = _mm256_loadu_si256(src.as_ptr().add(i).cast());
            _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), _mm256_xor_si256(x, flip));
        }
        i += 32;
    }
    for (d, &x) in dst[i..].iter_mut().zip(&src[i..]) {
        *d = (x as u8) ^ 0x80;
    }
    dst[src.len()..].fill(0);
}
