//! Boundary conversions (f32 NCHW → int8 NHWC quantize, int8 NHWC → f32 NCHW dequantize):
//! the scalar rows equal the QuantizeLinear / DequantizeLinear formulas with the layout
//! transpose, and every SIMD row this CPU runs equals the scalar rows bit for bit, on random
//! shapes, qparams and special values (NaN, ±inf, ±huge, exact halfway cases); so does the
//! range of a row quantized at run time.

mod kernels_common;

use kernels_common::simd_isas;
use proptest::prelude::*;
use xq::kernels::boundary::Boundary;
use xq::kernels::{Isa, QuantParams};
use xq::qscheme::{qd8_qparams, NanRule, QRange};

/// Scales: powers of two (so `k + 0.5` multiples are exact halfway cases) and arbitrary ones.
fn scale() -> impl Strategy<Value = f32> {
    prop_oneof![(-12i32..4).prop_map(|e| 2f32.powi(e)), 1e-4f32..10.0]
}

/// Inputs in units of the scale, with special values and raw `f32` bit patterns.
fn element() -> impl Strategy<Value = (bool, f32)> {
    prop_oneof![
        4 => (-200f32..200.0).prop_map(|t| (true, t)),
        3 => (-200i32..200).prop_map(|k| (true, k as f32 + 0.5)),
        1 => prop::sample::select(vec![
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            -f32::MAX,
            1e30,
            -1e30,
            -0.0,
            0.0,
            f32::MIN_POSITIVE / 4.0,
            127.5,
            -128.5,
            126.5,
        ])
        .prop_map(|x| (false, x)),
        1 => any::<u32>().prop_map(|b| (false, f32::from_bits(b))),
    ]
}

/// `[n, c, h, w]` with the channel counts of model boundaries and odd spatial sizes.
fn dims() -> impl Strategy<Value = [usize; 4]> {
    (
        1usize..3,
        prop::sample::select(vec![1usize, 2, 3, 4, 17, 21, 64]),
        1usize..24,
        1usize..24,
    )
        .prop_map(|(n, c, h, w)| [n, c, h, w])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn quantize_matches_scalar(
        dims in dims(),
        scale in scale(),
        zp in -128i32..128,
        seed in prop::collection::vec(element(), 1..512),
    ) {
        let q = QuantParams { scale, zero_point: zp };
        let [n, c, h, w] = dims;
        let (len, hw) = (n * c * h * w, h * w);
        let x: Vec<f32> = (0..len)
            .map(|i| seed[i % seed.len()])
            .map(|(units, v)| if units { v * scale } else { v })
            .collect();
        let mut want = vec![0i8; len];
        Boundary::new(Isa::Scalar).unwrap().quantize_nchw(&x, dims, q, &mut want).unwrap();
        for (i, &got) in want.iter().enumerate() {
            let (b, p, ch) = (i / (hw * c), i / c % hw, i % c);
            let v = x[(b * c + ch) * hw + p];
            prop_assert_eq!(got, q.quantize(v, QRange::I8, NanRule::RangeMin) as i8, "{} at {}", v, i);
        }
        for isa in simd_isas() {
            let rows = Boundary::new(isa).unwrap();
            let mut got = vec![0x55i8; len];
            rows.quantize_nchw(&x, dims, q, &mut got).unwrap();
            prop_assert_eq!(&got, &want, "{}", rows.name());
            let mut flat = vec![0x55i8; len];
            let mut flat_want = vec![0i8; len];
            rows.quantize(&x, q, &mut flat).unwrap();
            Boundary::new(Isa::Scalar).unwrap().quantize(&x, q, &mut flat_want).unwrap();
            prop_assert_eq!(&flat, &flat_want, "{} flat", rows.name());
        }
    }

    #[test]
    fn dequantize_matches_scalar(
        dims in dims(),
        scale in scale(),
        zp in -128i32..128,
        seed in prop::collection::vec(any::<i8>(), 1..512),
    ) {
        let q = QuantParams { scale, zero_point: zp };
        let [n, c, h, w] = dims;
        let (len, hw) = (n * c * h * w, h * w);
        let x: Vec<i8> = (0..len).map(|i| seed[(i * 7) % seed.len()] ^ (i as i8)).collect();
        let mut want = vec![0f32; len];
        Boundary::new(Isa::Scalar).unwrap().dequantize_nhwc(&x, dims, q, &mut want).unwrap();
        for (i, &got) in want.iter().enumerate() {
            let (b, ch, p) = (i / (hw * c), i / hw % c, i % hw);
            let v = x[(b * hw + p) * c + ch];
            prop_assert_eq!(got.to_bits(), q.dequantize(i32::from(v)).to_bits(), "{} at {}", v, i);
        }
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for isa in simd_isas() {
            let rows = Boundary::new(isa).unwrap();
            let mut got = vec![f32::NAN; len];
            rows.dequantize_nhwc(&x, dims, q, &mut got).unwrap();
            prop_assert_eq!(bits(&got), bits(&want), "{}", rows.name());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// The range of a row quantized at run time: the scalar row is the row's exact extremes
    /// (`None` when it holds a NaN or an infinity), and every SIMD row gives the same pair
    /// (up to the sign of a zero) and so the same `qd8` parameters.
    #[test]
    fn finite_range_matches_scalar(
        seed in prop::collection::vec(element(), 0..80),
        scale in scale(),
        offset in 0usize..40,
    ) {
        let x: Vec<f32> = seed.iter().map(|&(units, v)| if units { v * scale } else { v }).collect();
        let want = Boundary::new(Isa::Scalar).unwrap().finite_range(&x);
        let finite = !x.is_empty() && x.iter().all(|v| v.is_finite());
        prop_assert_eq!(want.is_some(), finite);
        if let Some((lo, hi)) = want {
            prop_assert!(x.iter().all(|&v| lo <= v && v <= hi));
            prop_assert!(x.contains(&lo) && x.contains(&hi));
        }
        for isa in simd_isas() {
            let rows = Boundary::new(isa).unwrap();
            // Unaligned starts too: `offset` leading values cut off.
            for start in [0, offset.min(x.len())] {
                let part = &x[start..];
                let got = rows.finite_range(part);
                let want = Boundary::new(Isa::Scalar).unwrap().finite_range(part);
                prop_assert_eq!(got.is_some(), want.is_some(), "{} from {}", rows.name(), start);
                if let (Some(g), Some(w)) = (got, want) {
                    prop_assert!(g.0 == w.0 && g.1 == w.1, "{}: {:?} vs {:?}", rows.name(), g, w);
                    prop_assert_eq!(qd8_qparams(g.0, g.1), qd8_qparams(w.0, w.1));
                }
            }
        }
    }
}

/// Mismatched lengths and shapes are errors, never panics.
#[test]
fn bad_shapes_are_errors() {
    let rows = Boundary::new(Isa::Scalar).unwrap();
    let q = QuantParams {
        scale: 0.5,
        zero_point: 0,
    };
    assert!(rows
        .quantize_nchw(&[0.0; 6], [1, 2, 1, 2], q, &mut [0; 5])
        .is_err());
    assert!(rows
        .quantize_nchw(&[0.0; 6], [1, 2, usize::MAX, 2], q, &mut [0; 6])
        .is_err());
    assert!(rows
        .dequantize_nhwc(&[0; 6], [1, 3, 1, 1], q, &mut [0.0; 6])
        .is_err());
    assert!(rows
        .quantize_nchw_pixels(&[0.0; 6], 2, 3, 2..4, q, &mut [0; 4])
        .is_err());
    assert!(rows
        .quantize_nchw_pixels(&[0.0; 6], 2, 3, 1..3, q, &mut [0; 4])
        .is_ok());
    assert!(rows.dequantize(&[0; 3], q, &mut [0.0; 4]).is_err());
}

/// More channels than the whole-pixel buffer holds take the channel-group path.
#[test]
fn dequantize_many_channels() {
    let (dims, q) = (
        [1, 4100, 3, 1],
        QuantParams {
            scale: 0.37,
            zero_point: 5,
        },
    );
    let x: Vec<i8> = (0..4100 * 3).map(|i| (i * 31 % 256) as u8 as i8).collect();
    let mut want = vec![0f32; x.len()];
    Boundary::new(Isa::Scalar)
        .unwrap()
        .dequantize_nhwc(&x, dims, q, &mut want)
        .unwrap();
    for (i, &got) in want.iter().enumerate() {
        let (ch, p) = (i / 3, i % 3);
        assert_eq!(got.to_bits(), q.dequantize(i32::from(x[p * 4100 + ch])).to_bits());
    }
    for isa in simd_isas() {
        let mut got = vec![f32::NAN; x.len()];
        Boundary::new(isa)
            .unwrap()
            .dequantize_nhwc(&x, dims, q, &mut got)
            .unwrap();
        assert!(
            got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{isa}"
        );
    }
}
