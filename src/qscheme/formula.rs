//! The element formulas of quantization and their rounding.

/// `round_ties_even(v)` for `|v| <= 2^22`: adding and subtracting `1.5·2^23` rounds to an
/// integer, ties to even, exactly (the sum's unit in the last place is 1). Avoids the library
/// call `f32::round_ties_even` makes on baseline x86-64.
#[inline(always)]
pub fn round_half_even_small(v: f32) -> f32 {
    const ROUNDING_MAGIC: f32 = 12_582_912.0;
    (v + ROUNDING_MAGIC) - ROUNDING_MAGIC
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
