//! Choosing quantization parameters: the static rule from an observed range, and the
//! per-row rules of dynamic quantization.

use super::params::{QParams, RangedQParams};
use super::types::QRange;
use crate::{Error, Result};

/// `2^-12`, the smallest scale ExecuTorch's `XNNPACKQuantizer` lets an observer produce.
pub const XNNPACK_EPS: f32 = 1.0 / 4096.0;

/// How the observed range maps onto `[qmin, qmax]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// `scale = (max_pos - min_neg) / (qmax - qmin)`,
    /// `zero_point = clamp(qmin - round_half_even(min_neg / scale))`.
    Affine,
    /// `zero_point = 0`, `scale = max(-min_neg, max_pos) / ((qmax - qmin) / 2)`.
    Symmetric,
}

/// The static rule (the quantizer's `QuantScheme`): how a tensor's observed range becomes
/// its quantization parameters, with its integer range and the smallest scale allowed.
///
/// Affine rules map the observed range `[min(min, 0), max(max, 0)]` onto `[qmin, qmax]`
/// with a zero point; symmetric rules map `[-max|x|, max|x|]` with zero point 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RangeRule {
    range: QRange,
    mapping: Mapping,
    eps: f32,
}

impl RangeRule {
    /// Static int8 activations as XNNPACK expects them: affine, `[-128, 127]`, eps `2^-12`.
    pub const INT8_ACTIVATION: RangeRule = RangeRule {
        range: QRange::I8,
        mapping: Mapping::Affine,
        eps: XNNPACK_EPS,
    };

    /// int8 weights as XNNPACK expects them: symmetric, `[-127, 127]`, zero point 0, eps `2^-12`.
    pub const INT8_WEIGHT: RangeRule = RangeRule {
        range: QRange::I8_NARROW,
        mapping: Mapping::Symmetric,
        eps: XNNPACK_EPS,
    };

    /// A custom rule. Requires `qmin < qmax`, `qmin <= 0 <= qmax` (zero must be exactly
    /// representable), `qmin < 0` for symmetric rules (their zero point is 0), and a finite
    /// positive `eps`.
    pub fn new(qmin: i32, qmax: i32, symmetric: bool, eps: f32) -> Result<Self> {
        let range = QRange::new(qmin, qmax)?;
        if symmetric && qmin == 0 {
            return Err(Error::invalid_argument(
                "symmetric",
                "a symmetric scheme needs a signed range (qmin < 0)",
            ));
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(Error::invalid_argument(
                "eps",
                format!("must be finite and > 0, got {eps}"),
            ));
        }
        let mapping = if symmetric {
            Mapping::Symmetric
        } else {
            Mapping::Affine
        };
        Ok(RangeRule { range, mapping, eps })
    }

    /// Smallest quantized value.
    pub fn qmin(&self) -> i32 {
        self.range.qmin()
    }

    /// Largest quantized value.
    pub fn qmax(&self) -> i32 {
        self.range.qmax()
    }

    /// The integer range.
    pub fn range(&self) -> QRange {
        self.range
    }

    /// How the observed range is mapped.
    pub fn mapping(&self) -> Mapping {
        self.mapping
    }

    /// Whether the zero point is fixed at 0 and the range is made symmetric.
    pub fn is_symmetric(&self) -> bool {
        self.mapping == Mapping::Symmetric
    }

    /// Smallest scale the rule produces (larger scales are kept as computed).
    pub fn eps(&self) -> f32 {
        self.eps
    }

    /// Scale and zero point for an observed range `[min, max]` (DESIGN §3, PyTorch's
    /// `_calculate_qparams`):
    ///
    /// - affine: `min_neg = min(min, 0)`, `max_pos = max(max, 0)`,
    ///   `scale = max((max_pos - min_neg) / (qmax - qmin), eps)`,
    ///   `zero_point = clamp(qmin - round_half_even(min_neg / scale), qmin, qmax)`;
    /// - symmetric: `scale = max(max(-min_neg, max_pos) / ((qmax - qmin) / 2), eps)`,
    ///   `zero_point = 0`.
    ///
    /// All arithmetic is `f32` except the symmetric half-levels (`f64`, then cast), in the
    /// order PyTorch's observers use. Fails if either bound is not finite or `min > max`.
    pub fn qparams_from_range(&self, min: f32, max: f32) -> Result<RangedQParams> {
        if !(min.is_finite() && max.is_finite()) || min > max {
            return Err(Error::invalid_argument(
                "range",
                format!("need finite min <= max, got [{min}, {max}]"),
            ));
        }
        let (qmin, qmax) = (self.qmin(), self.qmax());
        let min_neg = min.min(0.0);
        let max_pos = max.max(0.0);
        let span = i64::from(qmax) - i64::from(qmin);
        let levels = span as f32;
        let (scale, zero_point) = match self.mapping {
            Mapping::Symmetric => {
                let half_levels = (span as f64 / 2.0) as f32;
                let scale = ((-min_neg).max(max_pos) / half_levels).max(self.eps);
                (scale, 0)
            }
            Mapping::Affine => {
                let scale = ((max_pos - min_neg) / levels).max(self.eps);
                let shift = (min_neg / scale).round_ties_even();
                // |min_neg / scale| <= qmax - qmin because scale >= (max_pos - min_neg) / levels.
                let zero_point = (qmin as f32 - shift).clamp(qmin as f32, qmax as f32);
                (scale, zero_point as i32)
            }
        };
        RangedQParams::new(scale, zero_point, qmin, qmax)
    }
}

/// Minimum and maximum of the finite values of `data`, or `None` if it has none.
pub fn finite_min_max(data: &[f32]) -> Option<(f32, f32)> {
    let mut min = f32::INFINITY;
    let mut max = f32::NEG_INFINITY;
    for &x in data.iter().filter(|x| x.is_finite()) {
        min = min.min(x);
        max = max.max(x);
    }
    (min <= max).then_some((min, max))
}

/// The per-row (per-token) dynamic rules that exist side by side. They agree in exact
/// arithmetic on ordinary rows and differ in `f32` at the edges (an all-zero row, a range
/// below `255·2^-23`, a zero point half-way between two integers, non-finite values), so
/// each call site names the one it uses; merging them would change numerics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowRule {
    /// What the kernels run (the dynamic GEMM's row quantization, XNNPACK `qd8` style):
    /// `rmin = min(0, min row)`, `rmax = max(0, max row)`, `scale = (rmax - rmin) / 255`
    /// (1 when that is not a normal number, e.g. an all-zero row),
    /// `zp = clamp(round_half_even(-128 - rmin / scale), -128, 127)`. Callers reject rows
    /// with non-finite values first.
    Qd8,
    /// PyTorch's `choose_qparams_per_token_asymmetric`: as `Qd8` over the finite values
    /// only, but `scale = max((rmax - rmin) / 255, f32::EPSILON)` and a "nudged" zero
    /// point (whichever of `-128 - rmin / scale` and `127 - rmax / scale` has the smaller
    /// rounding error, clamped to `[-128, 127]` and rounded half to even). Kept for the
    /// quantizer's observer API and the tests against torch; no program runs it.
    TorchPerToken,
    /// ONNX's uint8 DynamicQuantizeLinear (the interpreter's, per tensor):
    /// `scale = (max(0, max) - min(0, min)) / 255`, `zp = clamp(round_half_even(0 - min / scale), 0, 255)`
    /// in the uint8 domain; a zero scale gives zero point 0.
    OnnxU8,
}

/// [`RowRule::Qd8`]'s parameters of a row whose finite values span `[min, max]`: only
/// `min(0, min)` and `max(0, max)` matter, so callers may pass the row's extremes or those
/// already widened to 0 (and either sign of a zero).
pub fn qd8_qparams(min: f32, max: f32) -> QParams {
    let (rmin, rmax) = (min.min(0.0), max.max(0.0));
    let mut scale = (rmax - rmin) / 255.0;
    if !(scale.is_normal()) {
        scale = 1.0;
    }
    let zp = (-128.0 - rmin / scale).round_ties_even().clamp(-128.0, 127.0) as i32;
    QParams {
        scale,
        zero_point: zp,
    }
}

/// The scale and zero point `rule` gives for `row` (the zero point is in `[-128, 127]`,
/// or in `[0, 255]` for [`RowRule::OnnxU8`], whose scale may also be 0 or infinite).
pub fn row_qparams(row: &[f32], rule: RowRule) -> QParams {
    match rule {
        RowRule::Qd8 => {
            let rmin = row.iter().fold(0f32, |a, &v| a.min(v));
            let rmax = row.iter().fold(0f32, |a, &v| a.max(v));
            qd8_qparams(rmin, rmax)
        }
        RowRule::TorchPerToken => {
            const QMIN: f32 = -128.0;
            const QMAX: f32 = 127.0;
            let (min, max) = finite_min_max(row).unwrap_or((0.0, 0.0));
            let rmin = min.min(0.0);
            let rmax = max.max(0.0);
            let scale = ((rmax - rmin) / (QMAX - QMIN)).max(f32::EPSILON);
            let descaled_min = rmin / scale;
            let descaled_max = rmax / scale;
            let error_from_min = QMIN + descaled_min;
            let error_from_max = QMAX + descaled_max;
            let zero_point = if error_from_min + error_from_max > 0.0 {
                QMIN - descaled_min
            } else {
                QMAX - descaled_max
            };
            let zero_point = zero_point.clamp(QMIN, QMAX).round_ties_even() as i32;
            QParams { scale, zero_point }
        }
        RowRule::OnnxU8 => {
            let min = row.iter().copied().fold(0f32, f32::min);
            let max = row.iter().copied().fold(0f32, f32::max);
            let scale = (max - min) / 255.0;
            let zp = if scale == 0.0 {
                0.0
            } else {
                (0.0 - min / scale).round_ties_even().clamp(0.0, 255.0)
            };
            QParams {
                scale,
                zero_point: zp as i32,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_row_rules_differ_on_a_zero_row() {
        let zero = [0.0f32; 3];
        let p = |rule| row_qparams(&zero, rule);
        assert_eq!(
            p(RowRule::Qd8),
            QParams {
                scale: 1.0,
                zero_point: -128
            }
        );
        assert_eq!(
            p(RowRule::TorchPerToken),
            QParams {
                scale: f32::EPSILON,
                zero_point: 127
            }
        );
        assert_eq!(
            p(RowRule::OnnxU8),
            QParams {
                scale: 0.0,
                zero_point: 0
            }
        );
    }
}
