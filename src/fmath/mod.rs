//! Vectorized `f32` math for the float operators: the error function, GELU (exact form), the
//! exponential, the logistic sigmoid and SiLU.
//!
//! Each function has one definition, [`scalar`]'s, written as a fixed sequence of IEEE
//! operations (fused multiply-adds, one division, exponent-bit arithmetic, no table and no
//! library call), and AVX2 / AVX-512 variants that perform the same operations lane by lane, so
//! every ISA gives the same bits (the scalar definition is their test oracle). The float
//! interpreter and the int8 tables built from an operator's `f32` definition both call
//! [`map`], hence agree with each other on every machine.
//!
//! Accuracy: `erf` is within 2e-7 of the exact value (an 11-term series below |x| = 1; above,
//! Abramowitz & Stegun 7.1.26 with an `exp` of its own, accurate to 2 ulp); `gelu(x) =
//! x / 2 · (1 + erf(x / √2))`; `exp` is within 2 ulp (a degree-7 polynomial after reduction by
//! `ln 2`), flushing results below the smallest normal number to 0.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod scalar;

use crate::cpu::Isa;

/// A function [`map`] applies element-wise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// The error function.
    Erf,
    /// GELU, exact (erf) form.
    Gelu,
    /// `e^x`, flushed to 0 where the exact value is below the smallest normal `f32`.
    Exp,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `x · sigmoid(x)` (SiLU, swish).
    Silu,
}

impl Function {
    /// The scalar definition of the function (the oracle of the SIMD variants).
    pub fn scalar(self) -> fn(f32) -> f32 {
        match self {
            Function::Erf => scalar::erf,
            Function::Gelu => scalar::gelu,
            Function::Exp => scalar::exp,
            Function::Sigmoid => scalar::sigmoid,
            Function::Silu => scalar::silu,
        }
    }
}

/// `y[i] = f(x[i])` on the ISA the process selected (see [`crate::cpu::selected_isa`]); the
/// same bits on every ISA. Only the common prefix of `x` and `y` is written.
pub fn map(f: Function, x: &[f32], y: &mut [f32]) {
    map_with(crate::cpu::selected_isa().unwrap_or(Isa::Scalar), f, x, y)
}

/// [`map`] on `isa`'s variant, or the scalar one where the CPU lacks `isa`'s instructions.
pub fn map_with(isa: Isa, f: Function, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    // SAFETY: `x` and `y` are valid for `n` elements and, one shared and one exclusive
    // borrow, do not overlap.
    unsafe { map_raw(isa, f, x.as_ptr(), y.as_mut_ptr(), n) }
}

/// `v[i] = f(v[i])` on the selected ISA (see [`map`]).
pub fn map_in_place(f: Function, v: &mut [f32]) {
    let isa = crate::cpu::selected_isa().unwrap_or(Isa::Scalar);
    let p = v.as_mut_ptr();
    // SAFETY: `p` is valid for `v.len()` elements; input and output are the same buffer,
    // which every variant allows.
    unsafe { map_raw(isa, f, p, p, v.len()) }
}

/// # Safety
/// `x` readable and `y` writable for `n` elements; equal or not overlapping.
unsafe fn map_raw(isa: Isa, f: Function, x: *const f32, y: *mut f32, n: usize) {
    let done = match crate::cpu::F32Simd::for_isa(isa) {
        #[cfg(target_arch = "x86_64")]
        crate::cpu::F32Simd::Avx512 => {
            // SAFETY: the CPU has AVX-512 F (`for_isa` checked); buffers as the caller promised.
            unsafe { avx512::map(f, x, y, n) }
        }
        #[cfg(target_arch = "x86_64")]
        crate::cpu::F32Simd::Avx2 => {
            // SAFETY: the CPU has AVX2 and FMA (`for_isa` checked); buffers as the caller promised.
            unsafe { avx2::map(f, x, y, n) }
        }
        crate::cpu::F32Simd::Scalar => 0,
    };
    let scalar = f.scalar();
    for i in done..n {
        // SAFETY: `i < n`; element `i` is read before it is written.
        unsafe { *y.add(i) = scalar(*x.add(i)) };
    }
}
