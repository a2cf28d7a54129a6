//! 256-bit VNNI depthwise microkernels: the AVX2 kernel's body (16-channel even/odd layout,
//! [`super::avx2::even_odd16_dwconv`]) with each `vpmaddwd` + add fused into one
//! `vpdpwssd`. Like the GEMM, it is built twice: [`vex`] with AVX-VNNI's VEX instruction and
//! [`evex`] with the EVEX encoding on 256-bit registers (AVX-512 VNNI + VL), the same
//! operation (`acc + x[2i]·w[2i] + x[2i+1]·w[2i+1]`, wrapping, no saturation), so the EVEX
//! build proves the AVX-VNNI algorithm on every AVX-512 VNNI CPU.

/// The AVX-VNNI (VEX) build.
pub(super) mod vex {
    super::super::avx2::even_odd16_dwconv!("avxvnni,avx2,fma", 6, _mm256_dpwssd_avx_epi32);
}

/// The AVX-512 VNNI + VL (EVEX, 256-bit registers) build.
pub(super) mod evex {
    super::super::avx2::even_odd16_dwconv!("avx512vnni,avx512vl,avx512f,avx2,fma", 6, _mm256_dpwssd_epi32);
}
