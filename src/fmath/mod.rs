//! Vectorized `f32` math for the float operators: the error function and GELU (exact form).
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
//! x / 2 · (1 + erf(x / √2))`.

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
}

impl Function {
    /// The scalar definition of the function (the oracle of the SIMD variants).
    pub fn scalar(self) -> fn(f32) -> f32 {
        match self {
            Function::Erf => scalar::erf,
            Function::Gelu => scalar::gelu,
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
    let (x, y) = (&x[..n], &mut y[..n]);
    #[cfg(target_arch = "x86_64")]
    {
        let cpu = crate::cpu::features();
        let done = match isa {
            Isa::Avx512Vnni if cpu.supports(Isa::Avx512Vnni) => {
                // SAFETY: the CPU has AVX-512 F (checked above); the slices have length `n`.
                unsafe { avx512::map(f, x, y) }
            }
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni256 | Isa::Avx512Vnni if cpu.supports(Isa::Avx2) => {
                // SAFETY: the CPU has AVX2 and FMA (checked above); the slices have length `n`.
                unsafe { avx2::map(f, x, y) }
            }
            _ => 0,
        };
        let (x, y) = (&x[done..], &mut y[done..]);
        y.iter_mut().zip(x).for_each(|(o, &v)| *o = f.scalar()(v));
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        y.iter_mut().zip(x).for_each(|(o, &v)| *o = f.scalar()(v));
    }
}
