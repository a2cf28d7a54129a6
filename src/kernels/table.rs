//! The kernel table: which variant of each kernel family runs for an [`Isa`], with its
//! tile sizes and packing format. This is the one place where variants are chosen.
//!
//! Names follow XNNPACK's grammar: `datatype-weights-operation-tile-requantization-isa`,
//! e.g. `qs8-qc8w-gemm-7x64c4-fp32-avx512vnni` (7 rows × 64 columns, K in groups of 4).

use crate::cpu::Isa;

/// How a GEMM variant tiles the output and lays out its packed operands.
#[derive(Debug, PartialEq, Eq)]
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
}

impl GemmKernelInfo {
    /// Output columns per tile.
    pub fn tile_cols(&self) -> usize {
        self.panel_nr * self.panels_per_tile
    }
}

static GEMM_SCALAR: GemmKernelInfo = GemmKernelInfo {
    name: "qs8-qc8w-gemm-4x8c1-fp32-scalar",
    isa: Isa::Scalar,
    mr: 4,
    panel_nr: 8,
    panels_per_tile: 1,
    kr: 1,
    unsigned_activations: false,
    a_elem_bytes: 1,
};

static GEMM_AVX2: GemmKernelInfo = GemmKernelInfo {
    name: "qs8-qc8w-gemm-6x16c2-fp32-avx2",
    isa: Isa::Avx2,
    mr: 6,
    panel_nr: 8,
    panels_per_tile: 2,
    kr: 2,
    unsigned_activations: false,
    a_elem_bytes: 2,
};

static GEMM_AVX512VNNI: GemmKernelInfo = GemmKernelInfo {
    name: "qs8-qc8w-gemm-6x64c4-fp32-avx512vnni",
    isa: Isa::Avx512Vnni,
    mr: 6,
    panel_nr: 16,
    panels_per_tile: 4,
    kr: 4,
    unsigned_activations: true,
    a_elem_bytes: 1,
};

/// The GEMM / convolution variant for `isa`.
pub fn gemm_kernel(isa: Isa) -> &'static GemmKernelInfo {
    match isa {
        Isa::Scalar => &GEMM_SCALAR,
        Isa::Avx2 => &GEMM_AVX2,
        Isa::Avx512Vnni => &GEMM_AVX512VNNI,
    }
}

/// How a depthwise variant lays out its packed weights (see `dwconv` module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DwPacking {
    /// Blocks of 16 channels; each weight a zero-extended `i16` in an `i32` lane.
    I32Lanes16,
    /// Blocks of 16 channels split into even and odd channels, each weight an `i16` next to a
    /// zero, for `vpmaddwd` on 16 sign-extended inputs.
    EvenOddI16x16,
    /// Blocks of 32 channels split into even and odd channels, each weight an `i16` next to a
    /// zero, for `vpdpwssd` on 32 sign-extended inputs.
    EvenOddI16x32,
}

/// A depthwise convolution variant.
#[derive(Debug, PartialEq, Eq)]
pub struct DwConvKernelInfo {
    /// Kernel name (see the module docs).
    pub name: &'static str,
    /// The ISA whose instructions the microkernel uses.
    pub isa: Isa,
    /// Channels per pass (accumulated together over all taps).
    pub channel_tile: usize,
    /// Packed weight layout.
    pub packing: DwPacking,
}

static DWCONV: [DwConvKernelInfo; 3] = [
    DwConvKernelInfo {
        name: "qs8-qc8w-dwconv-up1-fp32-scalar",
        isa: Isa::Scalar,
        channel_tile: 1,
        packing: DwPacking::I32Lanes16,
    },
    DwConvKernelInfo {
        name: "qs8-qc8w-dwconv-up16-fp32-avx2",
        isa: Isa::Avx2,
        channel_tile: 16,
        packing: DwPacking::EvenOddI16x16,
    },
    DwConvKernelInfo {
        name: "qs8-qc8w-dwconv-up64-fp32-avx512vnni",
        isa: Isa::Avx512Vnni,
        channel_tile: 64,
        packing: DwPacking::EvenOddI16x32,
    },
];

/// The depthwise convolution variant for `isa` (any kernel size; one output row per call).
pub fn dwconv_kernel(isa: Isa) -> &'static DwConvKernelInfo {
    &DWCONV[isa as usize]
}

/// Names of every kernel variant used for `isa`, one per family, for reports and logs.
/// GEMM serves fully connected, 1×1 and k×k convolution and the dynamic GEMM.
pub fn kernel_names(isa: Isa) -> [&'static str; 7] {
    let elementwise: [&'static str; 5] = match isa {
        Isa::Scalar => [
            "qs8-vadd-fp32-scalar",
            "qs8-vmul-fp32-scalar",
            "qs8-requant-fp32-scalar",
            "qs8-gavgpool-fp32-scalar",
            "s8-maxpool-scalar",
        ],
        Isa::Avx2 => [
            "qs8-vadd-fp32-avx2",
            "qs8-vmul-fp32-avx2",
            "qs8-requant-fp32-avx2",
            "qs8-gavgpool-fp32-avx2",
            "s8-maxpool-avx2",
        ],
        Isa::Avx512Vnni => [
            "qs8-vadd-fp32-avx512",
            "qs8-vmul-fp32-avx512",
            "qs8-requant-fp32-avx512",
            "qs8-gavgpool-fp32-avx512",
            "s8-maxpool-avx512",
        ],
    };
    let [add, mul, requant, gavg, maxpool] = elementwise;
    [
        gemm_kernel(isa).name,
        dwconv_kernel(isa).name,
        add,
        mul,
        requant,
        gavg,
        maxpool,
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
            let names = kernel_names(isa);
            assert!(
                names
                    .iter()
                    .all(|n| n.contains(isa.name().trim_end_matches("vnni"))),
                "{names:?}"
            );
        }
    }
}
