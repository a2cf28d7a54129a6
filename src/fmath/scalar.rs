//! The definitions: each a fixed sequence of IEEE operations that the SIMD variants repeat lane
//! by lane (`mul_add` is the fused multiply-add of `vfmadd`).

/// Below this |x| the error function is its Taylor series.
pub(crate) const SERIES_LIMIT: f32 = 1.0;
/// |x| is clamped here: beyond, `erf` is ±1 in `f32` and `exp(-x²)` would leave its range.
pub(crate) const CLAMP: f32 = 4.0;
/// Coefficients of `erf(x) / x` as a polynomial in `x²`, constant term first:
/// `2/√π · (-1)^n / (n! (2n + 1))`.
pub(crate) const SERIES: [f32; 11] = [
    std::f32::consts::FRAC_2_SQRT_PI,
    -0.376_126_4,
    0.112_837_92,
    -0.026_866_17,
    0.005_223_977_6,
    -0.000_854_832_7,
    0.000_120_553_33,
    -1.492_565e-5,
    1.646_211_4e-6,
    -1.636_584_7e-7,
    1.480_719_5e-8,
];
/// Abramowitz & Stegun 7.1.26: `erf(x) ≈ 1 - t (a1 + a2 t + … + a5 t⁴) e^(-x²)`, `t = 1 / (1 + p x)`.
pub(crate) const AS_P: f32 = 0.327_591_1;
/// The `a1 … a5` of 7.1.26.
pub(crate) const AS_A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152, 1.061_405_4];

/// `log2(e)`.
pub(crate) const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split so that `n · LN2_HI` is exact for the `n` that occur.
pub(crate) const LN2_HI: f32 = 0.693_359_4;
/// `ln 2 - LN2_HI`.
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// Taylor coefficients of `e^r` on `|r| ≤ ln 2 / 2`, constant term first.
pub(crate) const EXP: [f32; 8] = [
    1.0,
    1.0,
    0.5,
    0.166_666_67,
    0.041_666_668,
    0.008_333_334,
    0.001_388_888_9,
    0.000_198_412_7,
];

/// `e^z` for `z` in `[-87, 0]` (the range [`erf`] uses): `2^n · e^r`, `n = round(z / ln 2)`.
pub(crate) fn exp_nonpositive(z: f32) -> f32 {
    let n = (z * LOG2E).round_ties_even();
    let r = n.mul_add(-LN2_HI, z);
    let r = n.mul_add(-LN2_LO, r);
    let mut p = EXP[7];
    for &c in EXP[..7].iter().rev() {
        p = p.mul_add(r, c);
    }
    f32::from_bits(p.to_bits().wrapping_add(((n as i32) << 23) as u32))
}

/// Below this `e^z` is under the smallest normal `f32` and [`exp`] gives 0.
pub const EXP_MIN: f32 = -87.336_54;
/// Above this `e^z` overflows `f32` and [`exp`] gives infinity.
pub const EXP_MAX: f32 = 88.722_84;

/// `e^z` (within 2 ulp where the result is a normal number; 0 below [`EXP_MIN`], where the
/// exact value is subnormal or zero; infinity above [`EXP_MAX`]; NaN stays NaN).
pub fn exp(z: f32) -> f32 {
    if z.is_nan() {
        return z;
    }
    // Clamped (z is not NaN here) so that `2^n` stays a normal scale; the ends are set after.
    let c = z.clamp(EXP_MIN, EXP_MAX);
    let n = (c * LOG2E).round_ties_even();
    let r = n.mul_add(-LN2_HI, c);
    let r = n.mul_add(-LN2_LO, r);
    let mut p = EXP[7];
    for &k in EXP[..7].iter().rev() {
        p = p.mul_add(r, k);
    }
    // 2^n as two factors, each a normal number for n in [-126, 128].
    let half = n * 0.5;
    let n1 = half.floor();
    let n2 = n - n1;
    let s1 = f32::from_bits((((n1 as i32) + 127) << 23) as u32);
    let s2 = f32::from_bits((((n2 as i32) + 127) << 23) as u32);
    let v = (p * s1) * s2;
    if z < EXP_MIN {
        0.0
    } else if z > EXP_MAX {
        f32::INFINITY
    } else {
        v
    }
}

/// The error function (NaN stays NaN).
pub fn erf(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs().min(CLAMP);
    let s = a * a;
    let mut q = SERIES[10];
    for &c in SERIES[..10].iter().rev() {
        q = q.mul_add(s, c);
    }
    let series = q * a;
    let t = 1.0 / AS_P.mul_add(a, 1.0);
    let mut r = AS_A[4];
    for &c in AS_A[..4].iter().rev() {
        r = r.mul_add(t, c);
    }
    let tail = 1.0 - (r * t) * exp_nonpositive(-s);
    let m = if a < SERIES_LIMIT { series } else { tail };
    f32::from_bits(m.to_bits() | (x.to_bits() & 0x8000_0000))
}

/// GELU, exact form: `(x / 2) · (1 + erf(x / √2))`.
pub fn gelu(x: f32) -> f32 {
    let e = erf(x * std::f32::consts::FRAC_1_SQRT_2);
    (0.5 * x) * (1.0 + e)
}

/// The logistic function `1 / (1 + e^-x)`: `e = exp(-|x|)`, then `1 / (1 + e)` for
/// `x >= 0` and `e / (1 + e)` below (nothing overflows; NaN stays NaN).
pub fn sigmoid(x: f32) -> f32 {
    let e = exp(-x.abs());
    let numerator = if x >= 0.0 { 1.0 } else { e };
    numerator / (1.0 + e)
}

/// SiLU (swish) `x · sigmoid(x)`, with [`sigmoid`]'s rounding.
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}
