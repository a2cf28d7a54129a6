//! Quantization parameters and the final `f32 → i8` requantization step shared by every
//! kernel (formula in the [`crate::kernels`] module docs).

use crate::qscheme::round_half_even_small;
/// The per-tensor parameters live in [`crate::qscheme`]; the kernels keep their name.
pub use crate::qscheme::QParams as QuantParams;
use crate::{Error, Result};

/// The output range `[min, max]` of a kernel, narrowed from `[-128, 127]` by a fused
/// activation (ReLU, ReLU6, clip) in the output's quantized domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputRange {
    /// Smallest output value.
    pub min: i8,
    /// Largest output value.
    pub max: i8,
}

impl OutputRange {
    /// The full int8 range (no fused activation).
    pub const FULL: OutputRange = OutputRange { min: -128, max: 127 };

    /// A validated range; `min <= max` is required.
    pub fn new(min: i8, max: i8) -> Result<Self> {
        if min > max {
            return Err(Error::invalid_argument(
                "output_range",
                format!("min {min} > max {max}"),
            ));
        }
        Ok(OutputRange { min, max })
    }

    /// The range of a fused ReLU for an output with zero point `zp`: `[max(zp, -128), 127]`.
    pub fn relu(zero_point: i32) -> OutputRange {
        OutputRange {
            min: zero_point.clamp(-128, 127) as i8,
            max: 127,
        }
    }
}

/// The final step of every kernel: `f32 → i8` with the output zero point and range,
/// in the exact operation order the SIMD variants reproduce.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Requantizer {
    /// Output zero point.
    pub zero_point: i32,
    /// `range.min - zero_point`, as `f32` (exact: a small integer).
    pub min_less_zp: f32,
    /// `range.max - zero_point`, as `f32`.
    pub max_less_zp: f32,
}

impl Requantizer {
    /// The requantizer for an output zero point and range.
    pub fn new(zero_point: i32, range: OutputRange) -> Self {
        Requantizer {
            zero_point,
            min_less_zp: (range.min as i32 - zero_point) as f32,
            max_less_zp: (range.max as i32 - zero_point) as f32,
        }
    }

    /// `clamp(round_half_even(v) + zp)` with the clamp applied in the float domain first
    /// (after which `|v| <= 255`, well inside the range where the fast rounding is exact).
    #[inline(always)]
    pub fn apply(&self, v: f32) -> i8 {
        let clamped = v.max(self.min_less_zp).min(self.max_less_zp);
        (round_half_even_small(clamped) as i32 + self.zero_point) as i8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requantizer_rounds_half_to_even_and_clamps() {
        let r = Requantizer::new(3, OutputRange::FULL);
        assert_eq!(r.apply(0.5), 3);
        assert_eq!(r.apply(1.5), 5);
        assert_eq!(r.apply(2.5), 5);
        assert_eq!(r.apply(-0.5), 3);
        assert_eq!(r.apply(-1.5), 1);
        assert_eq!(r.apply(1e9), 127);
        assert_eq!(r.apply(-1e9), -128);
        let relu = Requantizer::new(-5, OutputRange::relu(-5));
        assert_eq!(relu.apply(-3.0), -5);
        assert_eq!(relu.apply(3.0), -2);
    }

    #[test]
    fn magic_rounding_equals_round_ties_even_on_the_clamped_range() {
        let r = Requantizer::new(0, OutputRange::FULL);
        let r_hi = Requantizer::new(-128, OutputRange::FULL);
        let mut v = -200.0f32;
        while v <= 300.0 {
            let want = (v.clamp(-128.0, 127.0).round_ties_even()) as i8;
            assert_eq!(r.apply(v), want, "{v}");
            let want_hi = (v.clamp(0.0, 255.0).round_ties_even() as i32 - 128) as i8;
            assert_eq!(r_hi.apply(v), want_hi, "{v}");
            v += 0.125;
        }
        for v in [0.49999997f32, 126.5, -127.5, 2.5000002, f32::MIN_POSITIVE, -0.0] {
            assert_eq!(r.apply(v), v.clamp(-128.0, 127.0).round_ties_even() as i8, "{v}");
        }
    }

    #[test]
    fn qparams_reject_bad_values() {
        assert!(QuantParams::new(0.0, 0, "x").is_err());
        assert!(QuantParams::new(f32::NAN, 0, "x").is_err());
        assert!(QuantParams::new(1.0, 128, "x").is_err());
        assert!(QuantParams::new(1.0, -128, "x").is_ok());
        assert!(OutputRange::new(5, 4).is_err());
    }
}
