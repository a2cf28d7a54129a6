//! The element formulas of quantization and their rounding.

use super::types::QRange;

/// `round_ties_even(v)` for `|v| <= 2^22`: adding and subtracting `1.5·2^23` rounds to an
/// integer, ties to even, exactly (the sum's unit in the last place is 1). Avoids the library
/// call `f32::round_ties_even` makes on baseline x86-64.
#[inline(always)]
pub fn round_half_even_small(v: f32) -> f32 {
    const ROUNDING_MAGIC: f32 = 12_582_912.0;
    (v + ROUNDING_MAGIC) - ROUNDING_MAGIC
}

/// What NaN quantizes to. Three behaviours exist and each call site keeps its own (making
/// them agree would change results, which needs its own decision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NanRule {
    /// NaN becomes the zero point (the quantizer's parameters, i.e. real 0).
    ZeroPoint,
    /// NaN becomes the bottom of the range (the program's Quantize step, whose float clamp
    /// is written with `max`/`min`, which return the non-NaN operand).
    RangeMin,
    /// NaN becomes the integer 0 (the interpreter's QuantizeLinear and the delegate's
    /// constants: a NaN `f32` converts to 0).
    Zero,
}

/// The quantize formula `clamp(round_half_even(x / scale) + zero_point, qmin, qmax)`, NaN
/// handled by `nan`, returned as an `f32` that holds an integer of the range (a signed
/// zero means 0). The caller converts it to its integer type.
///
/// `x / scale` is a division (ONNX QuantizeLinear), never a product with the reciprocal.
/// Narrow ranges ([`QRange::is_narrow`]) clamp `x / scale` to `±2^22` and round with
/// [`round_half_even_small`], then add the zero point and clamp to the range; this equals
/// rounding first and clamping after, because the bounds are integers and every value is
/// exact below `2^24`. The clamps use `max` then `min`, so NaN becomes `-2^22` and then the
/// range minimum, which is [`NanRule::RangeMin`] at no cost; the other rules test for NaN.
/// Wide ranges (32-bit) round with `f32::round_ties_even`, add the zero point in `f32`
/// and clamp.
///
/// [`NanRule::ZeroPoint`] gives the zero point as an `f32`, which is exact below `2^24`;
/// callers with wider ranges that need the exact integer test for NaN themselves.
///
/// Always inlined, so that a loop over it vectorizes in the caller's instruction set.
#[inline(always)]
#[allow(clippy::manual_clamp)]
pub fn quantize(x: f32, scale: f32, zero_point: i32, range: QRange, nan: NanRule) -> f32 {
    let (lo, hi) = (range.qmin() as f32, range.qmax() as f32);
    let zp = zero_point as f32;
    let t = x / scale;
    if nan != NanRule::RangeMin && t.is_nan() {
        return if nan == NanRule::ZeroPoint { zp } else { 0.0 };
    }
    if range.is_narrow() {
        const BOUND: f32 = (1u32 << 22) as f32;
        let v = round_half_even_small(t.max(-BOUND).min(BOUND)) + zp;
        v.max(lo).min(hi)
    } else {
        if t.is_nan() {
            return lo;
        }
        (t.round_ties_even() + zp).max(lo).min(hi)
    }
}

/// The dequantize formula `(q - zero_point) * scale`: the integer subtraction (exact in
/// `i64`), then one `f32` product.
#[inline(always)]
pub fn dequantize(q: i64, scale: f32, zero_point: i64) -> f32 {
    (q - zero_point) as f32 * scale
}

/// `clamp(round_half_even(x / scale) + zero_point, qmin, qmax)` ([`quantize`] with
/// [`NanRule::ZeroPoint`]) for ranges that hold their zero point.
pub(crate) fn quantize_value(x: f32, scale: f32, zero_point: i32, qmin: i32, qmax: i32) -> i32 {
    if (x / scale).is_nan() {
        // The zero point itself: its `f32` rounding is inexact beyond 2^24 (32-bit ranges).
        return zero_point;
    }
    let range = QRange::new_unchecked(qmin, qmax);
    quantize(x, scale, zero_point, range, NanRule::ZeroPoint) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_rounding_is_exact_up_to_2_pow_22() {
        let edge = (1u32 << 22) as f32;
        for v in [
            0.5f32,
            1.5,
            2.5,
            -0.5,
            -2.5,
            255.5,
            edge,
            -edge,
            edge - 0.5,
            0.49999997,
        ] {
            assert_eq!(round_half_even_small(v), v.round_ties_even(), "{v}");
        }
    }
}
