//! The GEMM variant of each row of the kernel table ([`crate::kernels::table`]).

use super::scalar;
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512vnni, avxvnni};
use crate::cpu::Isa;
use crate::kernels::table::GemmKernelInfo;

/// Portable: 4 rows × one panel of 8 columns, K in groups of 1, signed activations.
pub(crate) static SCALAR: GemmKernelInfo = GemmKernelInfo {
    name: "qs8-qc8w-gemm-4x8c1-fp32-scalar",
    isa: Isa::Scalar,
    mr: 4,
    panel_nr: 8,
    panels_per_tile: 1,
    kr: 1,
    unsigned_activations: false,
    a_elem_bytes: 1,
    tile: scalar::tile,
    pack_a_rows: scalar::pack_a_rows,
    pack_a_block: scalar::pack_a_block,
};

/// AVX2: activations widened to `i16`, `vpmaddwd` on K pairs.
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX2: GemmKernelInfo = GemmKernelInfo {
    name: "qs8-qc8w-gemm-6x16c2-fp32-avx2",
    isa: Isa::Avx2,
    mr: 6,
    panel_nr: 8,
    panels_per_tile: 2,
    kr: 2,
    unsigned_activations: false,
    a_elem_bytes: 2,
    tile: avx2::tile,
    pack_a_rows: avx2::pack_a_rows,
    pack_a_block: avx2::pack_a_block,
};

/// AVX-VNNI: 256-bit VEX `vpdpbusd` on unsigned activations and K groups of 4.
#[cfg(target_arch = "x86_64")]
pub(crate) static AVXVNNI: GemmKernelInfo = GemmKernelInfo {
    name: "qs8-qc8w-gemm-6x16c4-fp32-avxvnni",
    isa: Isa::AvxVnni,
    tile: avxvnni::vex::tile,
    ..VNNI256_LAYOUT
};

/// [`AVXVNNI`] with the EVEX encoding of the same instructions (AVX-512 VNNI + VL).
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX512VNNI256: GemmKernelInfo = GemmKernelInfo {
    name: "qs8-qc8w-gemm-6x16c4-fp32-avx512vnni256",
    isa: Isa::Avx512Vnni256,
    tile: avxvnni::evex::tile,
    ..VNNI256_LAYOUT
};

/// The tile and packing shared by both 256-bit VNNI variants.
#[cfg(target_arch = "x86_64")]
const VNNI256_LAYOUT: GemmKernelInfo = GemmKernelInfo {
    name: "",
    isa: Isa::AvxVnni,
    mr: 6,
    panel_nr: 8,
    panels_per_tile: 2,
    kr: 4,
    unsigned_activations: true,
    a_elem_bytes: 1,
    tile: avxvnni::vex::tile,
    pack_a_rows: avxvnni::pack_a_rows,
    pack_a_block: avxvnni::pack_a_block,
};

/// AVX-512 VNNI: 512-bit `vpdpbusd` on unsigned activations and K groups of 4.
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX512VNNI: GemmKernelInfo = GemmKernelInfo {
    name: "qs8-qc8w-gemm-6x64c4-fp32-avx512vnni",
    isa: Isa::Avx512Vnni,
    mr: 6,
    panel_nr: 16,
    panels_per_tile: 4,
    kr: 4,
    unsigned_activations: true,
    a_elem_bytes: 1,
    tile: avx512vnni::tile,
    pack_a_rows: avx512vnni::pack_a_rows,
    pack_a_block: avx512vnni::pack_a_block,
};
