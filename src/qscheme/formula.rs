//! The element formulas of quantization and their rounding.

/// `round_ties_even(v)` for `|v| <= 2^22`: adding and subtracting `1.5·2^23` rounds to an
/// integer, ties to even, exactly (the sum's unit in the last place is 1). Avoids the library
/// call `f32::round_ties_even` makes on baseline x86-64.
#[inline(always)]
pub fn round_half_even_small(v: f32) -> f32 {
    const ROUNDING_MAGIC: f32 = 12_582_912.0;
    (v + ROUNDING_MAGIC) - ROUNDING_MAGIC
}

/// `clamp(round_half_even(x / scale) + zero_point, qmin, qmax)` in `f32`; NaN maps to the
/// zero point, and the value is clamped in `f32` before converting so that huge values (and
/// infinities) saturate.
pub(crate) fn quantize_value(x: f32, scale: f32, zero_point: i32, qmin: i32, qmax: i32) -> i32 {
    let rounded = (x / scale).round_ties_even();
    if rounded.is_nan() {
        return zero_point;
    }
    let shifted = rounded + zero_point as f32;
    shifted.clamp(qmin as f32, qmax as f32) as i32
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
