//! One scale and zero point, and the checks every consumer of scales shares.

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
