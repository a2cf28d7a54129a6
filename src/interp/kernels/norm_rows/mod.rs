//! Row kernels of the layer and RMS normalisations, in `f32`: one definition
//! ([`scalar`]: sums over 16 lanes folded by a fixed tree, then `(x - mean) · inv · scale +
//! bias`), and AVX2 / AVX-512 variants performing the same operations lane by lane, so that
//! every ISA gives the same bits. LayerNormalization, RMSNormalization and ONNX Runtime's
//! (Skip)(Simplified)LayerNormalization all normalise through these rows.
//!
//! Accuracy: two passes (mean, then the squared deviations), each a 16-lane sum; the
//! outputs are within about 1e-6 relative of an `f64` evaluation for rows of a few thousand
//! elements.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod nodes;
pub mod scalar;

pub use nodes::NormJob;

use crate::cpu::Isa;
use crate::{Error, Result};

/// The statistics of a row normalised by [`layer_norm_row`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowStats {
    /// The mean of the row.
    pub mean: f32,
    /// `1 / sqrt(variance + epsilon)`.
    pub inv_std: f32,
}

/// The code a call runs: the variant of the requested ISA, or the scalar definition where
/// the CPU lacks its instructions.
use crate::cpu::F32Simd as Variant;

impl Variant {
    fn sum(self, x: &[f32]) -> f32 {
        match self {
            Variant::Scalar => scalar::sum(x),
            // SAFETY: `Variant::for_isa` chose this variant because the CPU has its instructions.
            #[cfg(target_arch = "x86_64")]
            Variant::Avx2 => unsafe { avx2::sum(x) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Variant::Avx512 => unsafe { avx512::sum(x) },
        }
    }

    fn sum_sq_dev(self, x: &[f32], mean: f32) -> f32 {
        match self {
            Variant::Scalar => scalar::sum_sq_dev(x, mean),
            // SAFETY: `Variant::for_isa` chose this variant because the CPU has its instructions.
            #[cfg(target_arch = "x86_64")]
            Variant::Avx2 => unsafe { avx2::sum_sq_dev(x, mean) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Variant::Avx512 => unsafe { avx512::sum_sq_dev(x, mean) },
        }
    }

    fn sum_sq(self, x: &[f32]) -> f32 {
        match self {
            Variant::Scalar => scalar::sum_sq(x),
            // SAFETY: `Variant::for_isa` chose this variant because the CPU has its instructions.
            #[cfg(target_arch = "x86_64")]
            Variant::Avx2 => unsafe { avx2::sum_sq(x) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Variant::Avx512 => unsafe { avx512::sum_sq(x) },
        }
    }
}

/// An error unless every operand has the row's length `n`.
fn check_lengths(op: &str, n: usize, others: &[Option<usize>]) -> Result<()> {
    match others.iter().flatten().find(|&&l| l != n) {
        Some(l) => Err(Error::ShapeMismatch(format!(
            "{op}: an operand of {l} elements for a row of {n}"
        ))),
        None => Ok(()),
    }
}

/// The ISA the process selected.
fn selected() -> Isa {
    crate::cpu::selected_isa().unwrap_or(Isa::Scalar)
}

/// The sum of `x` on `isa`'s variant: 16 lane sums folded by the fixed tree of
/// [`scalar::fold`], the same bits on every ISA.
pub fn row_sum(isa: Isa, x: &[f32]) -> f32 {
    Variant::for_isa(isa).sum(x)
}

/// Layer normalisation of the row `x` into `y` on the selected ISA (see
/// [`crate::cpu::selected_isa`]): `y = (x - mean) · inv_std · scale + bias` (`+0.0` without
/// a bias). The same bits on every ISA.
pub fn layer_norm_row(
    x: &[f32],
    scale: &[f32],
    bias: Option<&[f32]>,
    eps: f32,
    y: &mut [f32],
) -> Result<RowStats> {
    layer_norm_row_with(selected(), x, scale, bias, eps, y)
}

/// [`layer_norm_row`] on `isa`'s variant (the scalar definition where the CPU lacks it).
pub fn layer_norm_row_with(
    isa: Isa,
    x: &[f32],
    scale: &[f32],
    bias: Option<&[f32]>,
    eps: f32,
    y: &mut [f32],
) -> Result<RowStats> {
    check_lengths("layer normalisation", x.len(), &[Some(y.len())])?;
    // SAFETY: `x` and `y` hold `x.len()` elements and, one shared and one exclusive borrow,
    // do not overlap.
    unsafe { layer_raw(isa, x.as_ptr(), y.as_mut_ptr(), x.len(), scale, bias, eps) }
}

/// [`layer_norm_row`] with the row `v` overwritten by its normalisation.
pub fn layer_norm_row_in_place(
    isa: Isa,
    v: &mut [f32],
    scale: &[f32],
    bias: Option<&[f32]>,
    eps: f32,
) -> Result<RowStats> {
    let p = v.as_mut_ptr();
    // SAFETY: `p` is valid for `v.len()` elements; input and output are the same buffer,
    // which every variant allows.
    unsafe { layer_raw(isa, p, p, v.len(), scale, bias, eps) }
}

/// # Safety
/// `x` readable and `y` writable for `n` elements; equal or not overlapping.
unsafe fn layer_raw(
    isa: Isa,
    x: *const f32,
    y: *mut f32,
    n: usize,
    scale: &[f32],
    bias: Option<&[f32]>,
    eps: f32,
) -> Result<RowStats> {
    check_lengths(
        "layer normalisation",
        n,
        &[Some(scale.len()), bias.map(<[f32]>::len)],
    )?;
    let v = Variant::for_isa(isa);
    let (mean, inv_std) = {
        // SAFETY: `x` is readable for `n` elements; the borrow ends before `y` is written.
        let xs = unsafe { std::slice::from_raw_parts(x, n) };
        let mean = v.sum(xs) / n as f32;
        (mean, 1.0 / (v.sum_sq_dev(xs, mean) / n as f32 + eps).sqrt())
    };
    match v {
        Variant::Scalar => {
            for i in 0..n {
                let b = bias.map_or(0.0, |b| b[i]);
                // SAFETY: `i < n`; element `i` is read before it is written.
                unsafe { *y.add(i) = scalar::layer_element(*x.add(i), scale[i], b, mean, inv_std) };
            }
        }
        // SAFETY: the CPU has AVX2 (`Variant::for_isa`); buffers as the caller promised, the
        // slices checked to hold `n` elements.
        #[cfg(target_arch = "x86_64")]
        Variant::Avx2 => unsafe { avx2::layer_apply(x, scale, bias, mean, inv_std, y, n) },
        // SAFETY: the CPU has AVX-512 F (`Variant::for_isa`); buffers as above.
        #[cfg(target_arch = "x86_64")]
        Variant::Avx512 => unsafe { avx512::layer_apply(x, scale, bias, mean, inv_std, y, n) },
    }
    Ok(RowStats { mean, inv_std })
}

/// RMS normalisation of the row `x` into `y` on the selected ISA: `y = x · inv · scale`
/// with `inv = 1 / sqrt(mean(x²) + eps)`, which it returns. The same bits on every ISA.
pub fn rms_norm_row(x: &[f32], scale: &[f32], eps: f32, y: &mut [f32]) -> Result<f32> {
    rms_norm_row_with(selected(), x, scale, eps, y)
}

/// [`rms_norm_row`] on `isa`'s variant (the scalar definition where the CPU lacks it).
pub fn rms_norm_row_with(isa: Isa, x: &[f32], scale: &[f32], eps: f32, y: &mut [f32]) -> Result<f32> {
    check_lengths("RMS normalisation", x.len(), &[Some(y.len())])?;
    // SAFETY: `x` and `y` hold `x.len()` elements and do not overlap.
    unsafe { rms_raw(isa, x.as_ptr(), y.as_mut_ptr(), x.len(), scale, eps) }
}

/// [`rms_norm_row`] with the row `v` overwritten by its normalisation.
pub fn rms_norm_row_in_place(isa: Isa, v: &mut [f32], scale: &[f32], eps: f32) -> Result<f32> {
    let p = v.as_mut_ptr();
    // SAFETY: `p` is valid for `v.len()` elements; every variant allows equal buffers.
    unsafe { rms_raw(isa, p, p, v.len(), scale, eps) }
}

/// # Safety
/// `x` readable and `y` writable for `n` elements; equal or not overlapping.
unsafe fn rms_raw(isa: Isa, x: *const f32, y: *mut f32, n: usize, scale: &[f32], eps: f32) -> Result<f32> {
    check_lengths("RMS normalisation", n, &[Some(scale.len())])?;
    let v = Variant::for_isa(isa);
    // SAFETY: `x` is readable for `n` elements; the borrow ends before `y` is written.
    let inv = 1.0 / (v.sum_sq(unsafe { std::slice::from_raw_parts(x, n) }) / n as f32 + eps).sqrt();
    match v {
        Variant::Scalar => {
            for (i, &s) in scale.iter().enumerate() {
                // SAFETY: `i < n`; element `i` is read before it is written.
                unsafe { *y.add(i) = scalar::rms_element(*x.add(i), s, inv) };
            }
        }
        // SAFETY: the CPU has AVX2 (`Variant::for_isa`); buffers as the caller promised.
        #[cfg(target_arch = "x86_64")]
        Variant::Avx2 => unsafe { avx2::rms_apply(x, scale, inv, y, n) },
        // SAFETY: the CPU has AVX-512 F (`Variant::for_isa`); buffers as above.
        #[cfg(target_arch = "x86_64")]
        Variant::Avx512 => unsafe { avx512::rms_apply(x, scale, inv, y, n) },
    }
    Ok(inv)
}
