//! `f32` vector × matrix products for the few-row MatMuls of decoding (a token's activations
//! against a weight matrix, a query row against the cached keys): `y[c] = Σₖ x[k] · w[k][c]`
//! over a row-major `k × n` matrix, read once, with no packing.
//!
//! A general GEMM packs its B operand on every call, which costs as much as the product when A
//! has one row; here each output column is one chain of fused multiply-adds over `k` in
//! order from 0 (the [`scalar`] definition), and the AVX2 / AVX-512 variants run the same
//! chains on 8 / 16 columns per register, so every ISA gives the same bits, and so does any
//! split of the columns between threads.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod scalar;

use crate::cpu::{F32Simd, Isa};
use std::ops::Range;

/// At most this many rows of A take the vector × matrix path (each row reads all of B once;
/// from here on a packed GEMM reads B less).
pub const MAX_ROWS: usize = 4;

/// `y[j] = Σₖ x[k] · w[k · n + cols.start + j]` for every column of `cols`, on the ISA the
/// process selected; `w` holds `x.len()` rows of `n`. The same bits on every ISA.
///
/// # Panics
/// When `w` is shorter than `x.len() × n`, `cols` exceeds `n` or `y` is not `cols.len()` long
/// (callers size them from one shape).
pub fn gemv(x: &[f32], w: &[f32], n: usize, cols: Range<usize>, y: &mut [f32]) {
    gemv_with(
        crate::cpu::selected_isa().unwrap_or(Isa::Scalar),
        x,
        w,
        n,
        cols,
        y,
    )
}

/// [`gemv`] on `isa`'s variant, or the scalar one where the CPU lacks `isa`'s instructions.
pub fn gemv_with(isa: Isa, x: &[f32], w: &[f32], n: usize, cols: Range<usize>, y: &mut [f32]) {
    let k = x.len();
    assert!(
        cols.start <= cols.end
            && cols.end <= n
            && y.len() == cols.len()
            && k.checked_mul(n).is_some_and(|kn| kn <= w.len()),
        "gemv operands do not fit: k {k}, n {n}, columns {cols:?}, w {}, y {}",
        w.len(),
        y.len()
    );
    let done = match F32Simd::for_isa(isa) {
        #[cfg(target_arch = "x86_64")]
        F32Simd::Avx512 => {
            // SAFETY: the CPU has AVX-512 F (`for_isa` checked); the assertion proves every
            // element read (row < k, column < cols.end <= n) is inside `w` and every element
            // written inside `y`.
            unsafe { avx512::gemv(x.as_ptr(), k, w.as_ptr(), n, cols.clone(), y.as_mut_ptr()) }
        }
        #[cfg(target_arch = "x86_64")]
        F32Simd::Avx2 => {
            // SAFETY: the CPU has AVX2 and FMA (`for_isa` checked); bounds as above.
            unsafe { avx2::gemv(x.as_ptr(), k, w.as_ptr(), n, cols.clone(), y.as_mut_ptr()) }
        }
        F32Simd::Scalar => 0,
    };
    scalar::gemv(x, w, n, cols.start + done..cols.end, &mut y[done..]);
}

/// Row-by-row [`gemv`] of a row-major `m × k` A (`m <= MAX_ROWS`) against `w` (`k × n`) into
/// the row-major `m × n` `y`: a GEMM for few rows.
pub fn gemm_few_rows(a: &[f32], m: usize, k: usize, w: &[f32], n: usize, y: &mut [f32]) {
    for r in 0..m {
        gemv(&a[r * k..(r + 1) * k], w, n, 0..n, &mut y[r * n..(r + 1) * n]);
    }
}
