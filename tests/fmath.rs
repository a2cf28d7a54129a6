//! `fmath`: every ISA variant gives the scalar definition's bits (also in place), and the
//! definitions are accurate (against `f64` references).

use proptest::prelude::*;
use xq::cpu::Isa;
use xq::fmath::{map_with, Function};

const FUNCTIONS: [Function; 5] = [
    Function::Erf,
    Function::Gelu,
    Function::Exp,
    Function::Sigmoid,
    Function::Silu,
];

/// Special and boundary values: signed zeros, infinities, NaN, the branch points, the clamp,
/// denormals and the extremes.
fn edge_values() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1e-40,
        f32::MAX,
        f32::MIN,
        4.0,
        -4.0,
        std::f32::consts::SQRT_2,
        -87.336_54,
        -87.4,
        -103.0,
        88.722_84,
        88.8,
        -126.0 * std::f32::consts::LN_2,
    ];
    for b in [1.0f32, 4.0, 1.0 / std::f32::consts::FRAC_1_SQRT_2] {
        v.extend([
            b,
            -b,
            f32::from_bits(b.to_bits() - 1),
            f32::from_bits(b.to_bits() + 1),
        ]);
    }
    v
}

fn check_isas_agree(x: &[f32]) -> Result<(), TestCaseError> {
    for f in FUNCTIONS {
        let want: Vec<u32> = x.iter().map(|&v| f.scalar()(v).to_bits()).collect();
        for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
            let mut y = vec![0f32; x.len()];
            map_with(isa, f, x, &mut y);
            for (i, (g, w)) in y.iter().zip(&want).enumerate() {
                // NaN payloads may differ; any NaN is the same value.
                let same = g.to_bits() == *w || (g.is_nan() && f32::from_bits(*w).is_nan());
                prop_assert!(
                    same,
                    "{f:?} on {isa}: x = {:e} gives {g:e}, the definition {:e}",
                    x[i],
                    f32::from_bits(*w)
                );
            }
        }
    }
    Ok(())
}

#[test]
fn every_isa_gives_the_definitions_bits_on_edge_values() {
    let x = edge_values();
    // Every length up to a few vectors, so that each value meets every lane and the tail.
    for start in 0..x.len() {
        check_isas_agree(&x[start..]).unwrap();
    }
    for f in FUNCTIONS {
        let mut v = x.clone();
        xq::fmath::map_in_place(f, &mut v);
        for (g, &x) in v.iter().zip(&x) {
            let w = f.scalar()(x);
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "{f:?} in place at {x:e}"
            );
        }
    }
}

proptest! {
    #[test]
    fn every_isa_gives_the_definitions_bits(bits in prop::collection::vec(any::<u32>(), 0..80), scale in -6.0f32..6.0) {
        // Raw bit patterns (any float) and values in the functions' interesting range.
        let mut x: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        x.extend(bits.iter().map(|&b| scale * (b as f32 / u32::MAX as f32)));
        x.extend(bits.iter().map(|&b| 100.0 * scale * (b as f32 / u32::MAX as f32)));
        check_isas_agree(&x)?;
    }
}

#[test]
fn erf_and_gelu_are_accurate() {
    let (mut worst_erf, mut worst_gelu) = (0f64, 0f64);
    let mut x = -6.0f32;
    while x <= 6.0 {
        let erf = xq::fmath::scalar::erf(x) as f64;
        worst_erf = worst_erf.max((erf - libm::erf(x as f64)).abs());
        let exact = 0.5 * x as f64 * (1.0 + libm::erf(x as f64 / std::f64::consts::SQRT_2));
        let gelu = xq::fmath::scalar::gelu(x) as f64;
        // erf's absolute error, scaled by x / 2, plus the rounding of the result.
        worst_gelu = worst_gelu.max((gelu - exact).abs() / (x.abs() as f64).max(1.0));
        x += 1.0 / 4096.0;
    }
    assert!(worst_erf <= 2.5e-7, "erf is off by {worst_erf:e}");
    assert!(worst_gelu <= 2e-7, "gelu is off by {worst_gelu:e} · max(|x|, 1)");
    // Small arguments keep their relative accuracy (the series, not 1 - erfc).
    for x in [1e-3f32, 1e-6, 1e-20, -1e-3] {
        let rel = (xq::fmath::scalar::erf(x) as f64 / libm::erf(x as f64) - 1.0).abs();
        assert!(rel <= 2e-7, "erf({x:e}) is off by {rel:e} (relative)");
    }
    // exp: 2 ulp over the whole normal range, 0 below it, infinity above.
    let mut worst_ulps = 0f64;
    let mut z = -87.3f32;
    while z <= 88.7 {
        let got = xq::fmath::scalar::exp(z) as f64;
        let exact = (z as f64).exp();
        let ulp = f32::EPSILON as f64 * 2f64.powi(exact.log2().floor() as i32);
        worst_ulps = worst_ulps.max((got - exact).abs() / ulp);
        z += 1.0 / 1024.0;
    }
    assert!(worst_ulps <= 2.0, "exp is off by {worst_ulps} ulp");
    assert_eq!(xq::fmath::scalar::exp(0.0), 1.0);
    assert_eq!(xq::fmath::scalar::exp(-100.0), 0.0);
    assert_eq!(xq::fmath::scalar::exp(f32::NEG_INFINITY), 0.0);
    assert_eq!(xq::fmath::scalar::exp(89.0), f32::INFINITY);
    assert!(xq::fmath::scalar::exp(f32::NAN).is_nan());
    assert_eq!(xq::fmath::scalar::erf(f32::INFINITY), 1.0);
    assert_eq!(xq::fmath::scalar::erf(f32::NEG_INFINITY), -1.0);
    assert!(xq::fmath::scalar::erf(f32::NAN).is_nan());
    assert_eq!(xq::fmath::scalar::gelu(0.0), 0.0);
}

#[test]
fn sigmoid_and_silu_are_accurate() {
    let mut worst = 0f64;
    let mut x = -30.0f32;
    while x <= 30.0 {
        let exact = 1.0 / (1.0 + (-(x as f64)).exp());
        let got = xq::fmath::scalar::sigmoid(x) as f64;
        // Relative: the small values below 0 keep their precision.
        worst = worst.max((got - exact).abs() / exact);
        let silu = xq::fmath::scalar::silu(x) as f64;
        assert!(
            (silu - x as f64 * exact).abs() <= 4e-7 * (x.abs() as f64 * exact).max(1e-30),
            "silu({x})"
        );
        x += 1.0 / 512.0;
    }
    assert!(worst <= 4e-7, "sigmoid is off by {worst:e} (relative)");
    assert_eq!(xq::fmath::scalar::sigmoid(0.0), 0.5);
    assert_eq!(xq::fmath::scalar::sigmoid(f32::INFINITY), 1.0);
    assert_eq!(xq::fmath::scalar::sigmoid(f32::NEG_INFINITY), 0.0);
    assert!(xq::fmath::scalar::sigmoid(f32::NAN).is_nan());
    assert_eq!(xq::fmath::scalar::silu(-200.0), -0.0);
}
