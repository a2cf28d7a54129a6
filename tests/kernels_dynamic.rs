//! Dynamic quantization: per-row quantization checked against its f64 definition, and the
//! dynamic GEMM bit-identical (f32) on every ISA and close to the f64 product.

mod kernels_common;

use kernels_common::simd_isas;
use proptest::prelude::*;
use xq::kernels::dynamic::{quantize_rows, DynamicWeights, PackedDynamicGemm};
use xq::kernels::Isa;

#[derive(Clone, Debug)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    x: Vec<f32>,
    w: Vec<i8>,
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..20,
        1usize..100,
        1usize..150,
        any::<bool>(),
        any::<bool>(),
        -3f32..3f32,
    )
        .prop_flat_map(|(m, n, k, per_channel, with_bias, range_log)| {
            let r = range_log.exp2();
            (
                prop::collection::vec(-r..r, m * k),
                prop::collection::vec(-127i8..=127, n * k),
                prop::collection::vec(1e-4f32..1e-1, if per_channel { n } else { 1 }),
                prop::collection::vec(-2f32..2f32, n),
            )
                .prop_map(move |(x, w, scales, bias)| Case {
                    m,
                    n,
                    k,
                    x,
                    w,
                    scales,
                    bias: with_bias.then_some(bias),
                })
        })
}

impl Case {
    fn run(&self, isa: Isa, split: f64) -> Vec<f32> {
        let dw = DynamicWeights {
            n: self.n,
            k: self.k,
            weights: &self.w,
            scales: &self.scales,
            bias: self.bias.as_deref(),
        };
        let packed = PackedDynamicGemm::pack(isa, &dw).unwrap();
        let rows = quantize_rows(&self.x, self.m, self.k, self.k).unwrap();
        let tiles = packed.tile_count(self.m);
        let cut = (tiles as f64 * split) as usize;
        let mut y = vec![f32::NAN; self.m * self.n];
        packed.run(&rows, &mut y, self.n, 0..cut).unwrap();
        packed.run(&rows, &mut y, self.n, cut..tiles).unwrap();
        y
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn row_quantization_follows_the_definition(c in case()) {
        let rows = quantize_rows(&c.x, c.m, c.k, c.k).unwrap();
        for r in 0..c.m {
            let row = &c.x[r * c.k..][..c.k];
            let rmin = row.iter().fold(0f32, |a, &v| a.min(v)) as f64;
            let rmax = row.iter().fold(0f32, |a, &v| a.max(v)) as f64;
            let s = rows.scales[r] as f64;
            prop_assert!(((rmax - rmin) / 255.0 - s).abs() <= 1e-6 * s.max(1e-30));
            let zp = rows.zero_points[r];
            prop_assert!((-128..=127).contains(&zp));
            for (i, &v) in row.iter().enumerate() {
                let q = rows.data[r * c.k + i] as i32;
                let want = ((v as f64 / s).round() + zp as f64).clamp(-128.0, 127.0);
                prop_assert!((q as f64 - want).abs() <= 1.0, "{} vs {}", q, want);
                // Every value of the row is representable: error at most about half a step.
                prop_assert!(((q - zp) as f64 * s - v as f64).abs() <= 0.51 * s + 1e-6 * s);
            }
        }
    }

    #[test]
    fn dynamic_gemm_close_to_f64_and_simd_identical(c in case(), split in 0.0f64..1.0) {
        let scalar = c.run(Isa::Scalar, split);
        let rows = quantize_rows(&c.x, c.m, c.k, c.k).unwrap();
        for r in 0..c.m {
            for col in 0..c.n {
                let sw = c.scales[if c.scales.len() == 1 { 0 } else { col }] as f64;
                let (mut want, mut mag) = (0f64, 0f64);
                for i in 0..c.k {
                    let t = (rows.data[r * c.k + i] as i32 - rows.zero_points[r]) as f64
                        * rows.scales[r] as f64
                        * c.w[col * c.k + i] as f64
                        * sw;
                    want += t;
                    mag += t.abs();
                }
                let b = c.bias.as_ref().map_or(0.0, |b| b[col] as f64);
                want += b;
                let got = scalar[r * c.n + col] as f64;
                prop_assert!((got - want).abs() <= 1e-6 * (mag + b.abs()) + 1e-30, "{} vs {}", got, want);
            }
        }
        for isa in simd_isas() {
            let simd = c.run(isa, split);
            let same = simd.iter().zip(&scalar).all(|(a, b)| a.to_bits() == b.to_bits());
            prop_assert!(same, "{} differs from scalar", isa);
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    assert!(quantize_rows(&[1.0, f32::NAN], 1, 2, 2).is_err());
    assert!(quantize_rows(&[1.0; 3], 2, 2, 2).is_err());
    let zero = quantize_rows(&[0.0; 4], 2, 2, 2).unwrap();
    assert_eq!(zero.scales, vec![1.0, 1.0]);
    assert_eq!(zero.data, vec![zero.zero_points[0] as i8; 4]);
    let dw = DynamicWeights {
        n: 2,
        k: 3,
        weights: &[1; 6],
        scales: &[0.5],
        bias: None,
    };
    let packed = PackedDynamicGemm::pack(Isa::Scalar, &dw).unwrap();
    let rows = quantize_rows(&[1.0; 4], 2, 2, 2).unwrap();
    let mut y = vec![0.0; 4];
    assert!(packed.run(&rows, &mut y, 2, 0..1).is_err(), "k mismatch");
}
