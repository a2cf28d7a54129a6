//! Requantization set-up shared by the kernels: which weight scale belongs to which output
//! channel, and the `f32` multipliers of convolution-like layers, Add, Mul and mean
//! pooling (each computed in the order the kernels and their tests rely on).

use super::formula::NanRule;
use super::params::{validate_multiplier, validate_scale, QParams};
use super::types::QRange;
use crate::Result;
use std::ops::Range;

/// The weight scales of a convolution-like operator: one per output channel, or one shared
/// by every channel (per-tensor weights). The only reader of the "1 or n scales" rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChannelScales<'a> {
    scales: &'a [f32],
}

impl<'a> ChannelScales<'a> {
    /// `scales` for `channels` output channels, or `None` unless it holds 1 or `channels`
    /// values (each caller words the error for its operator).
    pub fn new(scales: &'a [f32], channels: usize) -> Option<Self> {
        (scales.len() == 1 || scales.len() == channels).then_some(ChannelScales { scales })
    }

    /// Whether one scale is shared by every channel.
    pub fn is_per_tensor(&self) -> bool {
        self.scales.len() == 1
    }

    /// The scale of output channel `c`.
    #[inline]
    pub fn get(&self, c: usize) -> f32 {
        self.scales[if self.is_per_tensor() { 0 } else { c }]
    }

    /// The scales of channels `channels` (a convolution group), in the same form: the shared
    /// scale stays shared.
    pub fn sub(&self, channels: Range<usize>) -> &'a [f32] {
        if self.is_per_tensor() {
            self.scales
        } else {
            &self.scales[channels]
        }
    }
}

/// The requantization multiplier of one output channel of a convolution, fully connected
/// or depthwise layer: `(s_x * s_w) / s_y` in `f32`, in that order. Fails (naming
/// `weight_scales`) if the weight scale is not positive and finite or the ratio is not.
#[inline]
pub fn conv_multiplier(s_x: f32, s_w: f32, s_y: f32) -> Result<f32> {
    validate_scale(s_w, "weight_scales")?;
    let m = conv_ratio(s_x, s_w, s_y);
    validate_multiplier(m, "weight_scales")?;
    Ok(m)
}

/// [`conv_multiplier`] without the checks: `(s_x * s_w) / s_y` in `f32`, in that order
/// (the interpreter's QLinearConv and QLinearMatMul, which apply it in `f64`).
#[inline(always)]
pub fn conv_ratio(s_x: f32, s_w: f32, s_y: f32) -> f32 {
    (s_x * s_w) / s_y
}

/// An `f32` bias quantized to `int32` at the accumulator's scale `s_x * s_w`:
/// `round_half_even(b / (s_x * s_w))`, in that order. `None` unless the result is finite and
/// `|q| < 2^30` (half of the `int32` range, leaving the accumulator room).
pub fn bias_to_i32(b: f32, s_x: f32, s_w: f32) -> Option<i32> {
    let limit = i32::MAX as f32 / 2.0;
    let q = (b / (s_x * s_w)).round_ties_even();
    (q.is_finite() && q.abs() < limit).then_some(q as i32)
}

/// The bounds `[lo, hi]` of a fused Clip quantized into `y`'s int8 domain (round half
/// even, saturating; NaN becomes 0, [`NanRule::Zero`]).
pub fn clip_bounds(lo: f32, hi: f32, y: QParams) -> (i8, i8) {
    let quant = |v: f32| y.quantize(v, QRange::I8, NanRule::Zero) as i8;
    (quant(lo), quant(hi))
}

/// The constants of an int8 Add (ONNX Runtime's QLinearAdd) with every value `x + off` in
/// the graph's integer domain: `ma = s_a / s_y`, `mb = s_b / s_y`,
/// `fixed = (zp_y + off) - fma(ma, zp_a + off, mb * (zp_b + off))`, in that order. Fails
/// (naming `a` or `b`) if a ratio is not positive and finite.
pub fn add_constants(a: QParams, b: QParams, y: QParams, off: i32) -> Result<(f32, f32, f32)> {
    signed_add_constants(a, false, b, false, y, off)
}

/// The constants of `±a ± b` in the form of [`add_constants`]: a negated operand's multiplier
/// is `-s / s_y` (so a Sub `a - b` is `negate_b`, and with the operands exchanged `-b + a`
/// is `negate_a`); `fixed = (zp_y + off) - fma(ma, zp_a + off, mb * (zp_b + off))` with the
/// signed multipliers, in that order. Fails (naming `a` or `b`) if a ratio's magnitude is
/// not positive and finite.
pub fn signed_add_constants(
    a: QParams,
    negate_a: bool,
    b: QParams,
    negate_b: bool,
    y: QParams,
    off: i32,
) -> Result<(f32, f32, f32)> {
    let (ma, mb) = (a.scale / y.scale, b.scale / y.scale);
    validate_multiplier(ma, "a")?;
    validate_multiplier(mb, "b")?;
    let ma = if negate_a { -ma } else { ma };
    let mb = if negate_b { -mb } else { mb };
    let (za, zb, zy) = (
        (a.zero_point + off) as f32,
        (b.zero_point + off) as f32,
        (y.zero_point + off) as f32,
    );
    let fixed = zy - ma.mul_add(za, mb * zb);
    Ok((ma, mb, fixed))
}

/// The ratio `s_x / s_y` of a requantization from `x`'s parameters to `y`'s (Concat's
/// inputs; the kernel applies it as `((q - zp_x) * s_x) / s_y`). Fails (naming `name`)
/// if it is not positive and finite.
pub fn requantize_ratio(x: QParams, y: QParams, name: &'static str) -> Result<f32> {
    let m = x.scale / y.scale;
    validate_multiplier(m, name)?;
    Ok(m)
}

/// The multiplier of an int8 Mul: `(s_a * s_b) / s_y`, in that order; fails (naming
/// `output`) if it is not positive and finite.
pub fn mul_multiplier(a: QParams, b: QParams, y: QParams) -> Result<f32> {
    let m = (a.scale * b.scale) / y.scale;
    validate_multiplier(m, "output")?;
    Ok(m)
}

/// The multiplier of an int8 mean of `count` values: `s_x / (s_y * count)`, in that order;
/// fails (naming `output`) if it is not positive and finite.
pub fn mean_multiplier(x: QParams, y: QParams, count: usize) -> Result<f32> {
    let m = x.scale / (y.scale * count as f32);
    validate_multiplier(m, "output")?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_per_channel_scales() {
        let shared = ChannelScales::new(&[0.5], 3).unwrap();
        assert_eq!((shared.get(0), shared.get(2)), (0.5, 0.5));
        assert_eq!(shared.sub(1..3), &[0.5]);
        let per = ChannelScales::new(&[0.5, 0.25, 0.125], 3).unwrap();
        assert_eq!(per.get(2), 0.125);
        assert_eq!(per.sub(1..3), &[0.25, 0.125]);
        assert!(ChannelScales::new(&[0.5, 0.25], 3).is_none());
        assert_eq!(conv_multiplier(0.5, 0.25, 0.125).unwrap(), 1.0);
        assert!(conv_multiplier(0.5, 0.0, 0.125).is_err());
        assert!(conv_multiplier(f32::MAX, 2.0, 1.0).is_err());
        let (x, y) = (
            QParams {
                scale: 0.5,
                zero_point: 0,
            },
            QParams {
                scale: 0.25,
                zero_point: 3,
            },
        );
        assert_eq!(requantize_ratio(x, y, "inputs").unwrap(), 2.0);
        let tiny = QParams {
            scale: f32::MIN_POSITIVE,
            zero_point: 0,
        };
        assert!(requantize_ratio(
            tiny,
            QParams {
                scale: f32::MAX,
                zero_point: 0
            },
            "inputs"
        )
        .is_err());
    }
}
