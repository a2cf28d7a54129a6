//! The kernel table: one row per [`Isa`], holding the variant of every kernel family that
//! runs for it — function pointers together with their tile sizes and packing format. This is
//! the one place where variants are chosen: [`for_isa`] picks a row (tests and benchmarks
//! force one), [`selected`] gives the process-wide row ([`crate::cpu::selected_isa`]). Each
//! family defines its own variants next to their code (`gemm/variants.rs`, ...); adding an
//! ISA is one row here plus a variant in each family that has one — a family without its own
//! variant for an ISA puts the variant of a lesser ISA in that row (AVX-VNNI runs the AVX2
//! pools and element-wise kernels).
//!
//! Names follow XNNPACK's grammar: `datatype-weights-operation-tile-requantization-isa`,
//! e.g. `qs8-qc8w-gemm-6x64c4-fp32-avx512vnni` (6 rows × 64 columns, K in groups of 4).

use super::dwconv::{self, DwArgs};
use super::elementwise::{self, RowArgs};
use super::gemm::pack::PanelGeometry;
use super::gemm::{self, TileArgs};
use super::lut::{self, LutFn};
use super::pool::{self, AvgArgs, MaxArgs, MeanArgs};
use super::resize::{self, BlendArgs, ColumnsArgs, LinesArgs};
use crate::cpu::Isa;

/// A GEMM microkernel: computes one tile (see [`TileArgs`] for the contract; the CPU must
/// support the variant's ISA).
pub(crate) type GemmTileFn = unsafe fn(&TileArgs);

/// Packs up to `mr` rows of A: row `r`'s segment `s` starts at `seg_ptrs[r * ks + s]`
/// (valid for `kc` reads); `dst` receives `rows × kpad × a_elem_bytes` bytes, each segment
/// padded with zeros to `kc4`. The CPU must support the variant's ISA.
pub(crate) type PackARowsFn = unsafe fn(&PanelGeometry, usize, &[*const i8], &mut [u8]);

/// Converts rows already laid out as `kpad` elements each into the A format
/// (`dst.len() == block.len() × a_elem_bytes`). The CPU must support the variant's ISA.
pub(crate) type PackABlockFn = unsafe fn(&[i8], &mut [u8]);

/// How a GEMM variant tiles the output and lays out its packed operands, with its functions.
#[derive(Debug)]
pub struct GemmKernelInfo {
    /// Kernel name (see the module docs).
    pub name: &'static str,
    /// The ISA whose instructions the microkernel uses.
    pub isa: Isa,
    /// Rows of the output per tile (MR).
    pub mr: usize,
    /// Columns per packed weight panel (one SIMD register of `i32` accumulators).
    pub panel_nr: usize,
    /// Panels per tile: a tile covers `panel_nr * panels_per_tile` columns.
    pub panels_per_tile: usize,
    /// K elements per group in a packed weight panel (4 for `vpdpbusd`, 2 for `vpmaddwd`).
    pub kr: usize,
    /// Whether activations are fed as unsigned (`x ^ 0x80`), with `-128·Σw` folded into the bias.
    pub unsigned_activations: bool,
    /// Bytes per activation element in the packed A panel (2 when widened to `i16`).
    pub a_elem_bytes: usize,
    /// The microkernel.
    pub(crate) tile: GemmTileFn,
    /// The A packer for rows gathered from segments.
    pub(crate) pack_a_rows: PackARowsFn,
    /// The A packer for rows already back to back.
    pub(crate) pack_a_block: PackABlockFn,
}

impl GemmKernelInfo {
    /// Output columns per tile.
    pub fn tile_cols(&self) -> usize {
        self.panel_nr * self.panels_per_tile
    }
}

/// How a depthwise variant lays out its packed weights (see `dwconv` module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DwPacking {
    /// Blocks of 16 channels; each weight a zero-extended `i16` in an `i32` lane.
    I32Lanes16,
    /// Blocks of 16 channels split into even and odd channels, each weight an `i16` next to a
    /// zero, for `vpmaddwd` / `vpdpwssd` on 16 sign-extended inputs.
    EvenOddI16x16,
    /// Blocks of 32 channels split into even and odd channels, each weight an `i16` next to a
    /// zero, for `vpdpwssd` on 32 sign-extended inputs.
    EvenOddI16x32,
}

/// A depthwise microkernel: computes one run of output pixels (see [`DwArgs`]; the CPU must
/// support the variant's ISA).
pub(crate) type DwRowFn = unsafe fn(&DwArgs);

/// A depthwise convolution variant.
#[derive(Debug)]
pub struct DwConvKernelInfo {
    /// Kernel name (see the module docs).
    pub name: &'static str,
    /// The ISA whose instructions the microkernel uses.
    pub isa: Isa,
    /// Channels per pass (accumulated together over all taps).
    pub channel_tile: usize,
    /// Packed weight layout.
    pub packing: DwPacking,
    /// The microkernel.
    pub(crate) row: DwRowFn,
}

/// The element-wise variant (add, mul, requantization of concat inputs): names and the row
/// microkernel (one row of `elementwise::RowArgs`; the CPU must support the variant's ISA).
#[derive(Debug)]
pub struct ElementwiseKernels {
    /// Name of the add kernel.
    pub add: &'static str,
    /// Name of the mul kernel.
    pub mul: &'static str,
    /// Name of the requantization kernel.
    pub requant: &'static str,
    /// The row microkernel of all three.
    pub(crate) row: unsafe fn(&RowArgs),
}

/// The pooling variant: names and microkernels (one image of `pool::MeanArgs`, one pixel of
/// `pool::AvgArgs` and of `pool::MaxArgs`; the CPU must support the variant's ISA).
#[derive(Debug)]
pub struct PoolKernels {
    /// Name of the global average pool kernel.
    pub gavgpool: &'static str,
    /// Name of the windowed average pool kernel.
    pub avgpool: &'static str,
    /// Name of the max pool kernel.
    pub maxpool: &'static str,
    /// Mean of one image.
    pub(crate) mean: unsafe fn(&MeanArgs),
    /// Average of one output pixel.
    pub(crate) avg: unsafe fn(&AvgArgs),
    /// Max of one output pixel.
    pub(crate) max: unsafe fn(&MaxArgs),
}

/// The table lookup variant (`y[i] = table[x[i] as u8]`, see [`super::lut`]): name and
/// microkernel (the CPU must support the variant's ISA).
#[derive(Debug)]
pub struct LutKernels {
    /// Name of the lookup kernel.
    pub name: &'static str,
    /// The lookup microkernel.
    pub(crate) map: LutFn,
}

/// The bilinear resize variant (see [`super::resize`]): name and its two microkernels (the
/// CPU must support the variant's ISA).
#[derive(Debug)]
pub struct ResizeKernels {
    /// Name of the bilinear kernel.
    pub bilinear: &'static str,
    /// The row blend of a run of input bytes.
    pub(crate) lines: unsafe fn(&LinesArgs),
    /// The column blend and quantization of one output row.
    pub(crate) columns: unsafe fn(&ColumnsArgs),
    /// The column blend of one output row, left in `f32`.
    pub(crate) blend: unsafe fn(&BlendArgs),
}

/// One row of the table: the variant of every kernel family for one ISA.
#[derive(Debug)]
pub struct KernelTable {
    /// The ISA of this row (the CPU must support it before any of its kernels runs).
    pub isa: Isa,
    /// GEMM: fully connected, 1×1 and k×k convolution, dynamic GEMM.
    pub gemm: &'static GemmKernelInfo,
    /// Depthwise convolution.
    pub dwconv: &'static DwConvKernelInfo,
    /// Add, mul and requantization.
    pub elementwise: &'static ElementwiseKernels,
    /// Global average and max pooling.
    pub pool: &'static PoolKernels,
    /// Table lookup (int8 element-wise unary operators).
    pub lut: &'static LutKernels,
    /// Bilinear resize.
    pub resize: &'static ResizeKernels,
}

static SCALAR: KernelTable = KernelTable {
    isa: Isa::Scalar,
    gemm: &gemm::variants::SCALAR,
    dwconv: &dwconv::variants::SCALAR,
    elementwise: &elementwise::SCALAR,
    pool: &pool::SCALAR,
    lut: &lut::SCALAR,
    resize: &resize::SCALAR,
};

#[cfg(target_arch = "x86_64")]
static AVX2: KernelTable = KernelTable {
    isa: Isa::Avx2,
    gemm: &gemm::variants::AVX2,
    dwconv: &dwconv::variants::AVX2,
    elementwise: &elementwise::AVX2,
    pool: &pool::AVX2,
    lut: &lut::AVX2,
    resize: &resize::AVX2,
};

#[cfg(target_arch = "x86_64")]
static AVXVNNI: KernelTable = KernelTable {
    isa: Isa::AvxVnni,
    gemm: &gemm::variants::AVXVNNI,
    dwconv: &dwconv::variants::AVXVNNI,
    elementwise: &elementwise::AVX2,
    pool: &pool::AVX2,
    lut: &lut::AVX2,
    resize: &resize::AVX2,
};

#[cfg(target_arch = "x86_64")]
static AVX512VNNI256: KernelTable = KernelTable {
    isa: Isa::Avx512Vnni256,
    gemm: &gemm::variants::AVX512VNNI256,
    dwconv: &dwconv::variants::AVX512VNNI256,
    elementwise: &elementwise::AVX2,
    pool: &pool::AVX2,
    lut: &lut::AVX2,
    resize: &resize::AVX2,
};

#[cfg(target_arch = "x86_64")]
static AVX512VNNI: KernelTable = KernelTable {
    isa: Isa::Avx512Vnni,
    gemm: &gemm::variants::AVX512VNNI,
    dwconv: &dwconv::variants::AVX512VNNI,
    elementwise: &elementwise::AVX512,
    pool: &pool::AVX512,
    lut: &lut::AVX512,
    resize: &resize::AVX512,
};

/// The row of `isa`. Its kernels may run only where `isa` is supported (every `pack` / `new`
/// checks that first).
pub fn for_isa(isa: Isa) -> &'static KernelTable {
    match isa {
        Isa::Scalar => &SCALAR,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => &AVX2,
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni => &AVXVNNI,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni256 => &AVX512VNNI256,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => &AVX512VNNI,
        // x86 ISAs are never supported elsewhere, so their rows are never run.
        #[cfg(not(target_arch = "x86_64"))]
        _ => &SCALAR,
    }
}

/// The row of this process: [`crate::cpu::selected_isa`] (the best supported ISA, or the one
/// forced by `XQ_ISA`).
pub fn selected() -> crate::Result<&'static KernelTable> {
    Ok(for_isa(selected_isa()?))
}

/// The GEMM / convolution variant for `isa`.
pub fn gemm_kernel(isa: Isa) -> &'static GemmKernelInfo {
    for_isa(isa).gemm
}

/// The depthwise convolution variant for `isa` (any kernel size; one output row per call).
pub fn dwconv_kernel(isa: Isa) -> &'static DwConvKernelInfo {
    for_isa(isa).dwconv
}

/// Names of every kernel variant used for `isa`, one per family, for reports and logs.
/// GEMM serves fully connected, 1×1 and k×k convolution and the dynamic GEMM.
pub fn kernel_names(isa: Isa) -> [&'static str; 8] {
    let row = for_isa(isa);
    [
        row.gemm.name,
        row.dwconv.name,
        row.elementwise.add,
        row.elementwise.mul,
        row.elementwise.requant,
        row.pool.gavgpool,
        row.pool.maxpool,
        row.pool.avgpool,
    ]
}

/// The ISA the kernels use by default in this process ([`crate::cpu::selected_isa`]:
/// the best supported, or the one forced by `XQ_ISA`).
pub fn selected_isa() -> crate::Result<Isa> {
    crate::cpu::selected_isa()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_isa_has_a_consistent_gemm_kernel() {
        for isa in Isa::ALL {
            let k = gemm_kernel(isa);
            assert_eq!(k.isa, isa);
            assert!(k.name.ends_with(isa.name()), "{}", k.name);
            assert_eq!(4 % k.kr, 0, "K is padded to 4 for every variant");
            assert_eq!(dwconv_kernel(isa).isa, isa);
            assert!(dwconv_kernel(isa).name.ends_with(isa.name()));
            assert_eq!(for_isa(isa).isa, isa);
            // Families without a variant of their own for the 256-bit VNNI rows run AVX2's.
            let borrows_avx2 = matches!(isa, Isa::AvxVnni | Isa::Avx512Vnni256);
            let names = kernel_names(isa);
            for (name, avx2) in names.iter().zip(kernel_names(Isa::Avx2)) {
                assert!(
                    name.contains(isa.name().trim_end_matches("vnni")) || (borrows_avx2 && *name == avx2),
                    "{isa}: {names:?}"
                );
            }
        }
    }

    #[test]
    fn every_isa_has_a_lut_kernel_of_its_own_or_avx2s() {
        for isa in Isa::ALL {
            let name = for_isa(isa).lut.name;
            let own = name.ends_with(isa.name().trim_end_matches("vnni"));
            let borrows_avx2 = matches!(isa, Isa::AvxVnni | Isa::Avx512Vnni256) && name == "x8-lut-avx2";
            assert!(own || borrows_avx2, "{isa}: {name}");
        }
    }

    #[test]
    fn every_isa_has_a_resize_kernel_of_its_own_or_avx2s() {
        for isa in Isa::ALL {
            let name = for_isa(isa).resize.bilinear;
            let own = name.ends_with(isa.name().trim_end_matches("vnni"));
            let borrows_avx2 =
                matches!(isa, Isa::AvxVnni | Isa::Avx512Vnni256) && name == "qs8-resize-bilinear-fp32-avx2";
            assert!(own || borrows_avx2, "{isa}: {name}");
        }
    }

    #[test]
    fn the_vnni256_rows_share_their_layouts() {
        let (vex, evex) = (gemm_kernel(Isa::AvxVnni), gemm_kernel(Isa::Avx512Vnni256));
        assert_eq!(
            (
                vex.mr,
                vex.panel_nr,
                vex.panels_per_tile,
                vex.kr,
                vex.unsigned_activations
            ),
            (
                evex.mr,
                evex.panel_nr,
                evex.panels_per_tile,
                evex.kr,
                evex.unsigned_activations
            )
        );
        assert_eq!(
            dwconv_kernel(Isa::AvxVnni).packing,
            dwconv_kernel(Isa::Avx512Vnni256).packing
        );
    }
}
