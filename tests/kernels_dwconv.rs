//! Depthwise convolution: every ISA variant bit-identical to the scalar kernel, and the
//! scalar kernel within one step of the textbook f64 reference.

mod kernels_common;

use kernels_common::{conv_geometry, simd_isas};
use proptest::prelude::*;
use xq::kernels::dwconv::{DwWeights, PackedDwConv};
use xq::kernels::gemm::GemmQuant;
use xq::kernels::indirection::{ConvGeometry, Indirection};
use xq::kernels::{reference, Isa, OutputRange, QuantParams};

#[derive(Clone, Debug)]
struct Case {
    g: ConvGeometry,
    x: Vec<i8>,
    w: Vec<i8>,
    scales: Vec<f32>,
    bias: Option<Vec<i32>>,
    q: GemmQuant,
}

impl Case {
    fn run(&self, isa: Isa, split: f64) -> Vec<i8> {
        let w = DwWeights {
            channels: self.g.in_c,
            k_h: self.g.k_h,
            k_w: self.g.k_w,
            weights: &self.w,
            scales: &self.scales,
            bias: self.bias.as_deref(),
        };
        let packed = PackedDwConv::pack(isa, &w, &self.q).unwrap();
        let ind = Indirection::new(&self.g).unwrap();
        let tiles = packed.tile_count(&ind);
        let cut = (tiles as f64 * split) as usize;
        let mut y = vec![0x55i8; self.g.batch * self.g.out_h() * self.g.out_w() * self.g.in_c];
        packed.run(&ind, &self.x, &mut y, 0..cut).unwrap();
        packed.run(&ind, &self.x, &mut y, cut..tiles).unwrap();
        y
    }

    fn reference(&self) -> Vec<i8> {
        let (c, taps) = (self.g.in_c, self.g.taps());
        let ohwi: Vec<i8> = (0..c * taps).map(|i| self.w[(i % taps) * c + i / taps]).collect();
        reference::conv2d(
            &self.g,
            c,
            c,
            &self.x,
            self.q.input,
            &ohwi,
            &self.scales,
            self.bias.as_deref(),
            self.q.output,
            self.q.range,
        )
    }
}

fn geometry() -> impl Strategy<Value = ConvGeometry> {
    conv_geometry(10, 140, 6)
}

fn case() -> impl Strategy<Value = Case> {
    (geometry(), any::<bool>(), any::<bool>(), any::<bool>()).prop_flat_map(
        |(g, per_channel, with_bias, relu)| {
            let (c, taps) = (g.in_c, g.taps());
            (
                prop::collection::vec(any::<i8>(), g.batch * g.image_len()),
                prop::collection::vec(-127i8..=127, taps * c),
                prop::collection::vec(-9f32..-2f32, if per_channel { c } else { 1 }),
                prop::collection::vec(-5000i32..5000, c),
                (-6f32..0f32, -128i32..=127, -4f32..2f32, -128i32..=127),
            )
                .prop_map(move |(x, w, s, bias, (xs, xz, ys, yz))| Case {
                    g,
                    x,
                    w,
                    scales: s.iter().map(|e| e.exp2()).collect(),
                    bias: with_bias.then_some(bias),
                    q: GemmQuant {
                        input: QuantParams {
                            scale: xs.exp2(),
                            zero_point: xz,
                        },
                        output: QuantParams {
                            scale: ys.exp2(),
                            zero_point: yz,
                        },
                        range: if relu {
                            OutputRange::relu(yz)
                        } else {
                            OutputRange::FULL
                        },
                    },
                })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn scalar_within_one_step_and_simd_bit_identical(c in case(), split in 0.0f64..1.0) {
        let scalar = c.run(Isa::Scalar, split);
        for (i, (&got, &want)) in scalar.iter().zip(&c.reference()).enumerate() {
            prop_assert!((got as i32 - want as i32).abs() <= 1, "element {}: {} vs {}", i, got, want);
        }
        for isa in simd_isas() {
            prop_assert_eq!(&c.run(isa, split), &scalar, "{}", isa);
        }
    }
}

#[test]
fn padding_reads_the_input_zero_point() {
    // All-padding taps contribute nothing: a 3x3 kernel over a 1x1 image with padding 1
    // equals the centre tap alone.
    let g = ConvGeometry {
        batch: 1,
        in_h: 1,
        in_w: 1,
        in_c: 20,
        k_h: 3,
        k_w: 3,
        stride: (1, 1),
        dilation: (1, 1),
        padding: (1, 1, 1, 1),
    };
    let x: Vec<i8> = (0..20).map(|i| i * 5 - 50).collect();
    let w: Vec<i8> = (0..9 * 20).map(|i| (i % 13) as i8 - 6).collect();
    let c = Case {
        g,
        x: x.clone(),
        w: w.clone(),
        scales: vec![1.0],
        bias: None,
        q: GemmQuant {
            input: QuantParams {
                scale: 1.0,
                zero_point: 7,
            },
            output: QuantParams {
                scale: 1.0,
                zero_point: 0,
            },
            range: OutputRange::FULL,
        },
    };
    let want: Vec<i8> = (0..20)
        .map(|ch| ((x[ch] as i32 - 7) * w[4 * 20 + ch] as i32).clamp(-128, 127) as i8)
        .collect();
    for isa in std::iter::once(Isa::Scalar).chain(simd_isas()) {
        assert_eq!(c.run(isa, 0.5), want, "{isa}");
    }
}

#[test]
fn mismatched_indirection_is_an_error() {
    let q = GemmQuant {
        input: QuantParams {
            scale: 1.0,
            zero_point: 0,
        },
        output: QuantParams {
            scale: 1.0,
            zero_point: 0,
        },
        range: OutputRange::FULL,
    };
    let w = DwWeights {
        channels: 4,
        k_h: 3,
        k_w: 3,
        weights: &[1; 36],
        scales: &[1.0],
        bias: None,
    };
    let packed = PackedDwConv::pack(Isa::Scalar, &w, &q).unwrap();
    let g = ConvGeometry {
        batch: 1,
        in_h: 4,
        in_w: 4,
        in_c: 5,
        k_h: 3,
        k_w: 3,
        stride: (1, 1),
        dilation: (1, 1),
        padding: (0, 0, 0, 0),
    };
    let ind = Indirection::new(&g).unwrap();
    let mut y = vec![0; 100];
    assert!(packed.run(&ind, &[0; 80], &mut y, 0..1).is_err());
    let ind4 = Indirection::new(&ConvGeometry { in_c: 4, ..g }).unwrap();
    assert!(packed.run(&ind4, &[0; 63], &mut y, 0..1).is_err(), "short input");
    assert!(
        packed.run(&ind4, &[0; 64], &mut y, 0..3).is_err(),
        "tiles past the end"
    );
    assert!(packed.run(&ind4, &[0; 64], &mut y, 0..2).is_ok());
}

#[test]
fn oversized_or_inconsistent_weights_are_errors() {
    let q = GemmQuant {
        input: QuantParams {
            scale: 1.0,
            zero_point: 0,
        },
        output: QuantParams {
            scale: 1.0,
            zero_point: 0,
        },
        range: OutputRange::FULL,
    };
    let huge = DwWeights {
        channels: 1,
        k_h: usize::MAX,
        k_w: 2,
        weights: &[],
        scales: &[1.0],
        bias: None,
    };
    assert!(PackedDwConv::pack(Isa::Scalar, &huge, &q).is_err());
    let short = DwWeights {
        channels: 3,
        k_h: 3,
        k_w: 3,
        weights: &[0; 26],
        scales: &[1.0],
        bias: None,
    };
    assert!(PackedDwConv::pack(Isa::Scalar, &short, &q).is_err());
    let bad_bias = DwWeights {
        bias: Some(&[0; 2]),
        weights: &[0; 27],
        ..short
    };
    assert!(PackedDwConv::pack(Isa::Scalar, &bad_bias, &q).is_err());
}
