//! The depthwise variant of each row of the kernel table ([`crate::kernels::table`]).

use super::scalar;
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512, avxvnni};
use crate::cpu::Isa;
use crate::kernels::table::{DwConvKernelInfo, DwPacking};

/// Portable, one channel at a time.
pub(crate) static SCALAR: DwConvKernelInfo = DwConvKernelInfo {
    name: "qs8-qc8w-dwconv-up1-fp32-scalar",
    isa: Isa::Scalar,
    channel_tile: 1,
    packing: DwPacking::I32Lanes16,
    row: scalar::row,
};

/// AVX2: `vpmaddwd` on 16 channels.
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX2: DwConvKernelInfo = DwConvKernelInfo {
    name: "qs8-qc8w-dwconv-up16-fp32-avx2",
    isa: Isa::Avx2,
    channel_tile: 16,
    packing: DwPacking::EvenOddI16x16,
    row: avx2::row,
};

/// AVX-VNNI: VEX `vpdpwssd` on 16 channels.
#[cfg(target_arch = "x86_64")]
pub(crate) static AVXVNNI: DwConvKernelInfo = DwConvKernelInfo {
    name: "qs8-qc8w-dwconv-up16-fp32-avxvnni",
    isa: Isa::AvxVnni,
    channel_tile: 16,
    packing: DwPacking::EvenOddI16x16,
    row: avxvnni::vex::row,
};

/// [`AVXVNNI`] with the EVEX encoding of the same instruction (AVX-512 VNNI + VL).
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX512VNNI256: DwConvKernelInfo = DwConvKernelInfo {
    name: "qs8-qc8w-dwconv-up16-fp32-avx512vnni256",
    isa: Isa::Avx512Vnni256,
    channel_tile: 16,
    packing: DwPacking::EvenOddI16x16,
    row: avxvnni::evex::row,
};

/// AVX-512 VNNI: 512-bit `vpdpwssd` on 32 channels, 64 per pass.
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX512VNNI: DwConvKernelInfo = DwConvKernelInfo {
    name: "qs8-qc8w-dwconv-up64-fp32-avx512vnni",
    isa: Isa::Avx512Vnni,
    channel_tile: 64,
    packing: DwPacking::EvenOddI16x32,
    row: avx512::row,
};
