//! The conversions at a delegated partition's boundary: ONNX QuantizeLinear of an `f32`
//! model input into int8 and DequantizeLinear of an int8 output back to `f32`, fused with the
//! NCHW ↔ NHWC transpose of rank-4 values.
//!
//! Quantize is `clamp(round_half_even(x / scale) + zero_point, -128, 127)` with a NaN input
//! at -128 ([`crate::qscheme::NanRule::RangeMin`]); dequantize is `(q - zero_point) · scale`
//! (the integer subtraction, then one `f32` product). The scalar rows are the oracle; the
//! AVX2 and AVX-512 rows run the same IEEE operations lane by lane (division, not a
//! reciprocal product; rounding to nearest even; `vmaxps` with -128 as second operand maps
//! NaN to -128), so every row gives the same bytes.
//!
//! The transposes go through small blocks that stay in L1: quantizing converts one channel's
//! run of a pixel block (contiguous in NCHW) into a byte buffer, then interleaves the runs
//! into NHWC pixels; dequantizing gathers each channel's bytes of a pixel block into a
//! contiguous run, then converts it straight into the NCHW plane.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;

use super::QuantParams;
use crate::cpu::Isa;
use crate::{Error, Result};
use std::ops::Range;

/// Pixels per block of the transposes.
const BLOCK: usize = 256;
/// Floats of the buffer dequantization converts whole pixels into (16 KiB).
const DQ_TMP: usize = 4096;
/// Channels per pass of a block (the byte buffer holds `GROUP × BLOCK` bytes).
const GROUP: usize = 16;

/// A quantize row: `y[i] = quantize(x[i])` for `i < min(x.len(), y.len())`; the CPU must
/// support the row's ISA.
type QuantizeRowFn = unsafe fn(&[f32], QuantParams, &mut [i8]);
/// A dequantize row: `y[i] = dequantize(x[i])` for `i < min(x.len(), y.len())`; the CPU must
/// support the row's ISA.
type DequantizeRowFn = unsafe fn(&[i8], QuantParams, &mut [f32]);
/// Three channel runs of [`BLOCK`] bytes (`runs`) written as interleaved 3-channel pixels
/// (`pixels.len() / 3` of them, at most `BLOCK`); the CPU must support the row's ISA.
type Interleave3Fn = unsafe fn(&[i8], &mut [i8]);
/// A row's `(min, max)` when it is non-empty and every value is finite; the CPU must
/// support the row's ISA.
type FiniteRangeFn = unsafe fn(&[f32]) -> Option<(f32, f32)>;

/// The boundary conversions of one ISA.
#[derive(Clone, Copy, Debug)]
pub struct Boundary {
    name: &'static str,
    quantize: QuantizeRowFn,
    dequantize: DequantizeRowFn,
    interleave3: Interleave3Fn,
    finite_range: FiniteRangeFn,
}

impl Boundary {
    /// The rows `isa` runs (AVX-VNNI and the 256-bit AVX-512 rows run the AVX2 rows); an
    /// error when the CPU does not support `isa`.
    pub fn new(isa: Isa) -> Result<Boundary> {
        if !isa.is_supported() {
            return Err(Error::Unsupported(format!("{isa} is not supported by this CPU")));
        }
        Ok(match isa {
            Isa::Scalar => Boundary {
                name: "f32-qs8-cvt-scalar",
                quantize: scalar_quantize,
                dequantize: scalar_dequantize,
                interleave3: scalar_interleave3,
                finite_range: scalar_finite_range,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni256 => Boundary {
                name: "f32-qs8-cvt-avx2",
                quantize: avx2_quantize,
                dequantize: avx2_dequantize,
                interleave3: avx2_interleave3,
                finite_range: avx2_finite_range,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => Boundary {
                name: "f32-qs8-cvt-avx512",
                quantize: avx512_quantize,
                dequantize: avx512_dequantize,
                interleave3: avx2_interleave3,
                finite_range: avx512_finite_range,
            },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("only the scalar ISA is supported off x86-64"),
        })
    }

    /// The rows of the process-wide ISA ([`crate::cpu::selected_isa`]).
    pub fn selected() -> Result<Boundary> {
        Boundary::new(crate::cpu::selected_isa()?)
    }

    /// The name of the rows (for reports and benchmarks).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Quantizes `x` element by element into `y` (same layout).
    pub fn quantize(&self, x: &[f32], q: QuantParams, y: &mut [i8]) -> Result<()> {
        check_len(x.len(), y.len())?;
        // SAFETY: `new` checked the CPU supports the row's ISA.
        unsafe { (self.quantize)(x, q, y) };
        Ok(())
    }

    /// The `(min, max)` of `x` when it is non-empty and every value is finite (the range a
    /// row quantized at run time takes its parameters from), else `None`. Every row gives
    /// the same pair, up to the sign of a zero.
    pub fn finite_range(&self, x: &[f32]) -> Option<(f32, f32)> {
        // SAFETY: `new` checked the CPU supports the row's ISA.
        unsafe { (self.finite_range)(x) }
    }

    /// Dequantizes `x` element by element into `y` (same layout).
    pub fn dequantize(&self, x: &[i8], q: QuantParams, y: &mut [f32]) -> Result<()> {
        check_len(x.len(), y.len())?;
        // SAFETY: `new` checked the CPU supports the row's ISA.
        unsafe { (self.dequantize)(x, q, y) };
        Ok(())
    }

    /// Quantizes pixels `pixels` of one NCHW image `x` (`c` planes of `hw` pixels) into
    /// `y`, those pixels in NHWC order (`pixels.len() × c` bytes).
    pub fn quantize_nchw_pixels(
        &self,
        x: &[f32],
        c: usize,
        hw: usize,
        pixels: Range<usize>,
        q: QuantParams,
        y: &mut [i8],
    ) -> Result<()> {
        let len = pixels.end.checked_sub(pixels.start).filter(|_| pixels.end <= hw);
        let ok =
            len.is_some_and(|len| Some(x.len()) == c.checked_mul(hw) && Some(y.len()) == len.checked_mul(c));
        if !ok || c == 0 {
            return Err(Error::ShapeMismatch(format!(
                "quantize of pixels {pixels:?} of {c}×{hw} from {} into {} elements",
                x.len(),
                y.len()
            )));
        }
        if c == 1 {
            return self.quantize(&x[pixels.clone()], q, y);
        }
        let mut tmp = [0i8; GROUP * BLOCK];
        for p0 in pixels.clone().step_by(BLOCK) {
            let n = BLOCK.min(pixels.end - p0);
            let out = &mut y[(p0 - pixels.start) * c..][..n * c];
            for c0 in (0..c).step_by(GROUP) {
                let g = GROUP.min(c - c0);
                for (ch, run) in tmp.chunks_exact_mut(BLOCK).take(g).enumerate() {
                    // SAFETY: `new` checked the CPU supports the row's ISA.
                    unsafe { (self.quantize)(&x[(c0 + ch) * hw + p0..][..n], q, &mut run[..n]) };
                }
                match (c, g) {
                    // SAFETY: `new` checked the CPU supports the row's ISA.
                    (3, 3) => unsafe { (self.interleave3)(&tmp, out) },
                    (4, 4) => interleave::<4>(&tmp, out),
                    _ => {
                        for (i, pixel) in out.chunks_exact_mut(c).enumerate() {
                            for (ch, d) in pixel[c0..c0 + g].iter_mut().enumerate() {
                                *d = tmp[ch * BLOCK + i];
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Quantizes an NCHW tensor of shape `dims` into `y` in NHWC order.
    pub fn quantize_nchw(&self, x: &[f32], dims: [usize; 4], q: QuantParams, y: &mut [i8]) -> Result<()> {
        let [n, c, hw] = nchw_sizes(dims, x.len(), y.len())?;
        if c * hw == 0 {
            return Ok(());
        }
        for (x, y) in x.chunks_exact(c * hw).zip(y.chunks_exact_mut(c * hw)).take(n) {
            self.quantize_nchw_pixels(x, c, hw, 0..hw, q, y)?;
        }
        Ok(())
    }

    /// Dequantizes an NHWC tensor of logical shape `dims` (NCHW) into `y` in NCHW order.
    pub fn dequantize_nhwc(&self, x: &[i8], dims: [usize; 4], q: QuantParams, y: &mut [f32]) -> Result<()> {
        let [n, c, hw] = nchw_sizes(dims, x.len(), y.len())?;
        if c == 1 {
            return self.dequantize(x, q, y);
        }
        if c * hw == 0 {
            return Ok(());
        }
        if c > DQ_TMP {
            let mut tmp = [0i8; GROUP * BLOCK];
            for (s, o) in x.chunks_exact(c * hw).zip(y.chunks_exact_mut(c * hw)).take(n) {
                for p0 in (0..hw).step_by(BLOCK) {
                    let len = BLOCK.min(hw - p0);
                    let src = &s[p0 * c..][..len * c];
                    for c0 in (0..c).step_by(GROUP) {
                        let g = GROUP.min(c - c0);
                        gather(src, c, c0, g, len, &mut tmp);
                        for (ch, run) in tmp.chunks_exact(BLOCK).take(g).enumerate() {
                            let dst = &mut o[(c0 + ch) * hw + p0..][..len];
                            // SAFETY: `new` checked the CPU supports the row's ISA.
                            unsafe { (self.dequantize)(&run[..len], q, dst) };
                        }
                    }
                }
            }
            return Ok(());
        }
        // Dequantize a block of whole pixels in NHWC order (the conversion is element-wise),
        // then move each channel's floats into its plane.
        let mut tmp = [0f32; DQ_TMP];
        let block = DQ_TMP / c;
        for (s, o) in x.chunks_exact(c * hw).zip(y.chunks_exact_mut(c * hw)).take(n) {
            for p0 in (0..hw).step_by(block) {
                let len = block.min(hw - p0);
                let floats = &mut tmp[..len * c];
                // SAFETY: `new` checked the CPU supports the row's ISA.
                unsafe { (self.dequantize)(&s[p0 * c..][..len * c], q, floats) };
                for (ch, plane) in o.chunks_exact_mut(hw).enumerate() {
                    for (d, pixel) in plane[p0..p0 + len].iter_mut().zip(floats.chunks_exact(c)) {
                        *d = pixel[ch];
                    }
                }
            }
        }
        Ok(())
    }
}

/// Checks that a conversion's source and destination have the same length.
fn check_len(x: usize, y: usize) -> Result<()> {
    if x != y {
        return Err(Error::ShapeMismatch(format!("convert {x} elements into {y}")));
    }
    Ok(())
}

/// `[n, c, h·w]` of NCHW `dims`, checked against both buffer lengths.
fn nchw_sizes(dims: [usize; 4], x: usize, y: usize) -> Result<[usize; 3]> {
    let hw = dims[2].checked_mul(dims[3]);
    let total = hw.and_then(|hw| hw.checked_mul(dims[1])?.checked_mul(dims[0]));
    match (hw, total) {
        (Some(hw), Some(t)) if t == x && t == y => Ok([dims[0], dims[1], hw]),
        _ => Err(Error::ShapeMismatch(format!(
            "shape {dims:?} for {x} and {y} elements"
        ))),
    }
}

/// Writes `C` channel runs of [`BLOCK`] bytes (`runs`) as interleaved pixels.
#[inline(always)]
fn interleave<const C: usize>(runs: &[i8], pixels: &mut [i8]) {
    for (i, pixel) in pixels.chunks_exact_mut(C).enumerate() {
        for (ch, d) in pixel.iter_mut().enumerate() {
            *d = runs[ch * BLOCK + i];
        }
    }
}

/// Gathers channels `c0..c0 + g` of `len` interleaved pixels of `c` channels (`src`) into runs
/// of [`BLOCK`] bytes in `tmp`.
#[inline(always)]
fn gather(src: &[i8], c: usize, c0: usize, g: usize, len: usize, tmp: &mut [i8; GROUP * BLOCK]) {
    for (i, pixel) in src.chunks_exact(c).take(len).enumerate() {
        for (ch, &b) in pixel[c0..c0 + g].iter().enumerate() {
            tmp[ch * BLOCK + i] = b;
        }
    }
}

/// The scalar 3-channel interleave behind the [`Interleave3Fn`] signature.
///
/// # Safety
/// None (safe code); `unsafe` only to match the signature.
unsafe fn scalar_interleave3(runs: &[i8], pixels: &mut [i8]) {
    interleave::<3>(runs, pixels)
}

/// The AVX2 3-channel interleave behind the [`Interleave3Fn`] signature.
///
/// # Safety
/// The CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
unsafe fn avx2_interleave3(runs: &[i8], pixels: &mut [i8]) {
    // SAFETY: caller contract.
    unsafe { avx2::interleave3(runs, pixels) }
}

/// The scalar quantize row behind the [`QuantizeRowFn`] signature.
///
/// # Safety
/// None beyond the signature's (no ISA requirement).
unsafe fn scalar_quantize(x: &[f32], q: QuantParams, y: &mut [i8]) {
    scalar::quantize_row(x, q, y)
}

/// The scalar dequantize row behind the [`DequantizeRowFn`] signature.
///
/// # Safety
/// None beyond the signature's (no ISA requirement).
unsafe fn scalar_dequantize(x: &[i8], q: QuantParams, y: &mut [f32]) {
    scalar::dequantize_row(x, q, y)
}

/// The AVX2 quantize row.
///
/// # Safety
/// The CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
unsafe fn avx2_quantize(x: &[f32], q: QuantParams, y: &mut [i8]) {
    // SAFETY: the caller guarantees AVX2.
    unsafe { avx2::quantize_row(x, q, y) }
}

/// The AVX2 dequantize row.
///
/// # Safety
/// The CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
unsafe fn avx2_dequantize(x: &[i8], q: QuantParams, y: &mut [f32]) {
    // SAFETY: the caller guarantees AVX2.
    unsafe { avx2::dequantize_row(x, q, y) }
}

/// The AVX-512 quantize row.
///
/// # Safety
/// The CPU supports AVX-512 F/BW/VL.
#[cfg(target_arch = "x86_64")]
unsafe fn avx512_quantize(x: &[f32], q: QuantParams, y: &mut [i8]) {
    // SAFETY: the caller guarantees AVX-512 F/BW/VL.
    unsafe { avx512::quantize_row(x, q, y) }
}

/// The AVX-512 dequantize row.
///
/// # Safety
/// The CPU supports AVX-512 F/BW/VL.
#[cfg(target_arch = "x86_64")]
unsafe fn avx512_dequantize(x: &[i8], q: QuantParams, y: &mut [f32]) {
    // SAFETY: the caller guarantees AVX-512 F/BW/VL.
    unsafe { avx512::dequantize_row(x, q, y) }
}

/// The scalar row range behind the [`FiniteRangeFn`] signature.
///
/// # Safety
/// None beyond the signature's (no ISA requirement).
unsafe fn scalar_finite_range(x: &[f32]) -> Option<(f32, f32)> {
    scalar::finite_range(x)
}

/// The AVX2 row range.
///
/// # Safety
/// The CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
unsafe fn avx2_finite_range(x: &[f32]) -> Option<(f32, f32)> {
    // SAFETY: the caller guarantees AVX2.
    unsafe { avx2::finite_range(x) }
}

/// The AVX-512 row range.
///
/// # Safety
/// The CPU supports AVX-512 F/BW/VL.
#[cfg(target_arch = "x86_64")]
unsafe fn avx512_finite_range(x: &[f32]) -> Option<(f32, f32)> {
    // SAFETY: the caller guarantees AVX-512 F/BW/VL.
    unsafe { avx512::finite_range(x) }
}
