//! Quantization parameters: one scale and zero point ([`QParams`]; with its integer range,
//! [`RangedQParams`]) and the checks every consumer of scales shares.

use super::formula::{dequantize, quantize, quantize_value, NanRule};
use super::types::QRange;
use crate::{Error, Result};

/// Affine int8 quantization parameters of one tensor: `real = (q - zero_point) * scale`.
/// The per-tensor parameters of every executing module (re-exported by the kernels as
/// `QuantParams`); uint8 tensors use libxq's int8 carrier (zero point shifted by -128).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    /// Positive, finite scale.
    pub scale: f32,
    /// Zero point in `[-128, 127]`.
    pub zero_point: i32,
}

impl QParams {
    /// Builds validated parameters; `name` names the tensor in error messages.
    pub fn new(scale: f32, zero_point: i32, name: &'static str) -> Result<Self> {
        let q = QParams { scale, zero_point };
        q.validate(name)?;
        Ok(q)
    }

    /// [`quantize`] with these parameters: `clamp(round_half_even(x /
    /// scale) + zero_point, range)` as an integer-valued `f32`, NaN as `nan` says.
    #[inline(always)]
    pub fn quantize(self, x: f32, range: QRange, nan: NanRule) -> f32 {
        quantize(x, self.scale, self.zero_point, range, nan)
    }

    /// [`dequantize`] with these parameters: `(q - zero_point) * scale`.
    #[inline(always)]
    pub fn dequantize(self, q: i32) -> f32 {
        dequantize(i64::from(q), self.scale, i64::from(self.zero_point))
    }

    /// Checks the scale is positive and finite and the zero point fits in `i8`.
    pub fn validate(&self, name: &'static str) -> Result<()> {
        validate_scale(self.scale, name)?;
        if !(-128..=127).contains(&self.zero_point) {
            return Err(Error::invalid_argument(
                name,
                format!("zero point {} is outside [-128, 127]", self.zero_point),
            ));
        }
        Ok(())
    }
}

/// Checks that a scale is positive, finite and normal enough for the `f32` ratios.
pub fn validate_scale(scale: f32, name: &'static str) -> Result<()> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::invalid_argument(
            name,
            format!("scale {scale} is not positive and finite"),
        ));
    }
    Ok(())
}

/// Checks that an `f32` multiplier computed from scales is usable (finite, positive).
pub fn validate_multiplier(m: f32, name: &'static str) -> Result<()> {
    if !(m.is_finite() && m > 0.0) {
        return Err(Error::invalid_argument(
            name,
            format!("the scale ratio {m} is not positive and finite (scales too extreme)"),
        ));
    }
    Ok(())
}

/// Per-tensor affine parameters with the integer range they quantize to (the quantizer's
/// `QParams`): `q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)` and back
/// `(q - zero_point) * scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RangedQParams {
    scale: f32,
    zero_point: i32,
    qmin: i32,
    qmax: i32,
}

impl RangedQParams {
    /// Checks `scale` is finite and positive and `qmin <= zero_point <= qmax`.
    pub fn new(scale: f32, zero_point: i32, qmin: i32, qmax: i32) -> Result<Self> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::invalid_argument(
                "scale",
                format!("must be finite and > 0, got {scale}"),
            ));
        }
        if qmin > qmax || zero_point < qmin || zero_point > qmax {
            return Err(Error::invalid_argument(
                "zero_point",
                format!("need qmin <= zero_point <= qmax, got {zero_point} in [{qmin}, {qmax}]"),
            ));
        }
        Ok(RangedQParams {
            scale,
            zero_point,
            qmin,
            qmax,
        })
    }

    /// Parameters whose values were already checked (a channel of checked per-axis
    /// parameters) or that a rule produces valid by construction.
    pub(crate) fn new_unchecked(scale: f32, zero_point: i32, qmin: i32, qmax: i32) -> Self {
        RangedQParams {
            scale,
            zero_point,
            qmin,
            qmax,
        }
    }

    /// The step between two adjacent quantized values, in real units.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The quantized value that represents real 0.
    pub fn zero_point(&self) -> i32 {
        self.zero_point
    }

    /// Smallest quantized value.
    pub fn qmin(&self) -> i32 {
        self.qmin
    }

    /// Largest quantized value.
    pub fn qmax(&self) -> i32 {
        self.qmax
    }

    /// `clamp(round_half_even(x / scale) + zero_point, qmin, qmax)`; NaN maps to the zero point.
    pub fn quantize(&self, x: f32) -> i32 {
        quantize_value(x, self.scale, self.zero_point, self.qmin, self.qmax)
    }

    /// `(q - zero_point) * scale`.
    pub fn dequantize(&self, q: i32) -> f32 {
        (i64::from(q) - i64::from(self.zero_point)) as f32 * self.scale
    }

    /// Quantizes `input` into `output` (same length); the range must fit in `i8`.
    pub fn quantize_i8(&self, input: &[f32], output: &mut [i8]) -> Result<()> {
        check_i8_range(self.qmin, self.qmax)?;
        check_same_len(input.len(), output.len())?;
        for (q, &x) in output.iter_mut().zip(input) {
            *q = self.quantize(x) as i8;
        }
        Ok(())
    }

    /// Dequantizes `input` into `output` (same length).
    pub fn dequantize_i8(&self, input: &[i8], output: &mut [f32]) -> Result<()> {
        check_same_len(input.len(), output.len())?;
        for (x, &q) in output.iter_mut().zip(input) {
            *x = self.dequantize(i32::from(q));
        }
        Ok(())
    }
}

/// Fails unless `[qmin, qmax]` fits in `i8`.
pub(crate) fn check_i8_range(qmin: i32, qmax: i32) -> Result<()> {
    if qmin < i32::from(i8::MIN) || qmax > i32::from(i8::MAX) {
        return Err(Error::invalid_argument(
            "qmin/qmax",
            format!("range [{qmin}, {qmax}] does not fit in int8"),
        ));
    }
    Ok(())
}

/// Fails unless an input and an output have the same number of elements.
pub(crate) fn check_same_len(input: usize, output: usize) -> Result<()> {
    if input != output {
        return Err(Error::ShapeMismatch(format!(
            "input has {input} elements but output has {output}"
        )));
    }
    Ok(())
}

/// Fails unless `shape` (checked for overflow) has exactly `len` elements.
pub(crate) fn check_element_count(shape: &[usize], len: usize) -> Result<()> {
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if count != Some(len) {
        return Err(Error::ShapeMismatch(format!(
            "shape {shape:?} does not describe {len} elements"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qparams_reject_bad_values() {
        assert!(QParams::new(0.0, 0, "x").is_err());
        assert!(QParams::new(f32::NAN, 0, "x").is_err());
        assert!(QParams::new(1.0, 128, "x").is_err());
        assert!(QParams::new(1.0, -128, "x").is_ok());
        assert!(validate_multiplier(f32::INFINITY, "m").is_err());
        assert!(validate_multiplier(0.5, "m").is_ok());
    }
}
