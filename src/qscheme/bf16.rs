//! bfloat16 conversions, for scales stored as bf16: the top half of an `f32`'s bits.

/// bfloat16 bits → `f32` (exact).
pub fn to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// `f32` → bfloat16 bits, rounding to nearest even; NaN stays NaN (a quiet NaN with the
/// input's sign).
pub fn from_f32(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7FC0 | ((x.to_bits() >> 16) as u16 & 0x8000);
    }
    let bits = x.to_bits();
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_ties_to_even() {
        for v in [0.0f32, -0.0, 1.0, -2.5, 0.15625, f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(to_f32(from_f32(v)), v);
        }
        // 1 + 2^-8 is half-way between 1 and 1 + 2^-7: ties to the even mantissa (1).
        assert_eq!(to_f32(from_f32(1.0 + 1.0 / 256.0)), 1.0);
        // 1 + 3·2^-8 is half-way between 1 + 2^-7 and 1 + 2^-6: ties to 1 + 2^-6.
        assert_eq!(to_f32(from_f32(1.0 + 3.0 / 256.0)), 1.0 + 1.0 / 64.0);
        assert!(to_f32(from_f32(f32::NAN)).is_nan());
        assert_eq!(from_f32(-f32::NAN) & 0x8000, 0x8000);
    }
}
