//! k×k grouped convolution through the indirection table: every ISA variant bit-identical
//! to the scalar kernel, and the scalar kernel within one step of the textbook f64 reference.

mod kernels_common;

use kernels_common::simd_isas;
use proptest::prelude::*;
use xq::kernels::conv::{ConvWeights, PackedConv};
use xq::kernels::gemm::GemmQuant;
use xq::kernels::indirection::{ConvGeometry, Indirection};
use xq::kernels::{reference, Isa, OutputRange, QuantParams};

#[derive(Clone, Debug)]
struct Case {
    g: ConvGeometry,
    groups: usize,
    out_c: usize,
    x: Vec<i8>,
    w: Vec<i8>,
    scales: Vec<f32>,
    bias: Option<Vec<i32>>,
    q: GemmQuant,
}

impl Case {
    fn run(&self, isa: Isa, split: f64) -> Vec<i8> {
        let w = ConvWeights {
            out_c: self.out_c,
            in_c_per_group: self.g.in_c / self.groups,
            groups: self.groups,
            k_h: self.g.k_h,
            k_w: self.g.k_w,
            weights: &self.w,
            scales: &self.scales,
            bias: self.bias.as_deref(),
        };
        let packed = PackedConv::pack(isa, &w, &self.q).unwrap();
        let ind = Indirection::new(&self.g).unwrap();
        let tiles = packed.tile_count(&ind);
        let cut = (tiles as f64 * split) as usize;
        let mut y = vec![0x55i8; self.g.batch * self.g.out_h() * self.g.out_w() * self.out_c];
        packed.run(&ind, &self.x, &mut y, cut..tiles).unwrap();
        packed.run(&ind, &self.x, &mut y, 0..cut).unwrap();
        y
    }

    fn reference(&self) -> Vec<i8> {
        reference::conv2d(
            &self.g,
            self.groups,
            self.out_c,
            &self.x,
            self.q.input,
            &self.w,
            &self.scales,
            self.bias.as_deref(),
            self.q.output,
            self.q.range,
        )
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..3, 1usize..9, 1usize..9, 1usize..3, 1usize..24, 1usize..20),
        (1usize..4, 1usize..4),
        (1usize..3, 1usize..3, 1usize..3, 1usize..3),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3),
    )
        .prop_map(
            |((batch, in_h, in_w, groups, cin_g, cout_g), (k_h, k_w), (sh, sw, dh, dw), padding)| {
                let g = ConvGeometry {
                    batch,
                    in_h,
                    in_w,
                    in_c: groups * cin_g,
                    k_h,
                    k_w,
                    stride: (sh, sw),
                    dilation: (dh, dw),
                    padding,
                };
                (g, groups, groups * cout_g)
            },
        )
        .prop_filter("window fits the padded input", |(g, _, _)| g.validate().is_ok())
        .prop_flat_map(|(g, groups, out_c)| {
            let per_oc = g.taps() * g.in_c / groups;
            (
                prop::collection::vec(any::<i8>(), g.batch * g.image_len()),
                prop::collection::vec(-127i8..=127, out_c * per_oc),
                prop::collection::vec(-10f32..-4f32, out_c),
                prop::collection::vec(-20000i32..20000, out_c),
                (any::<bool>(), any::<bool>(), any::<bool>()),
                (-6f32..0f32, -128i32..=127, -3f32..2f32, -128i32..=127),
            )
                .prop_map(
                    move |(x, w, s, bias, (per_channel, with_bias, relu), (xs, xz, ys, yz))| Case {
                        g,
                        groups,
                        out_c,
                        x,
                        w,
                        scales: if per_channel {
                            s.iter().map(|e| e.exp2()).collect()
                        } else {
                            vec![s[0].exp2()]
                        },
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
                    },
                )
        })
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
fn bad_groups_and_shapes_are_errors() {
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
    let w = vec![1i8; 3 * 2 * 2 * 2];
    let good = ConvWeights {
        out_c: 3,
        in_c_per_group: 2,
        groups: 1,
        k_h: 2,
        k_w: 2,
        weights: &w,
        scales: &[1.0],
        bias: None,
    };
    assert!(PackedConv::pack(Isa::Scalar, &ConvWeights { groups: 2, ..good }, &q).is_err());
    assert!(PackedConv::pack(Isa::Scalar, &ConvWeights { groups: 0, ..good }, &q).is_err());
    assert!(PackedConv::pack(
        Isa::Scalar,
        &ConvWeights {
            weights: &w[1..],
            ..good
        },
        &q
    )
    .is_err());
    let packed = PackedConv::pack(Isa::Scalar, &good, &q).unwrap();
    let g = ConvGeometry {
        batch: 1,
        in_h: 3,
        in_w: 3,
        in_c: 2,
        k_h: 2,
        k_w: 2,
        stride: (1, 1),
        dilation: (1, 1),
        padding: (0, 0, 0, 0),
    };
    let ind = Indirection::new(&g).unwrap();
    let mut y = vec![0i8; 12];
    assert!(packed.run(&ind, &[0; 17], &mut y, 0..1).is_err(), "short input");
    assert!(
        packed.run(&ind, &[0; 18], &mut y[..11], 0..1).is_err(),
        "short output"
    );
    let ind3 = Indirection::new(&ConvGeometry { in_c: 3, ..g }).unwrap();
    assert!(
        packed.run(&ind3, &[0; 27], &mut y, 0..1).is_err(),
        "channel mismatch"
    );
    assert!(packed.run(&ind, &[1; 18], &mut y, 0..1).is_ok());
    assert_eq!(y, vec![8; 12], "2×2 taps × 2 channels of 1·1");
}

mod dynamic {
    use super::*;
    use xq::kernels::conv::PackedDynamicConv;
    use xq::kernels::dynamic::quantize_rows;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn dynamic_conv_close_to_f64_and_simd_identical(c in case(), split in 0.0f64..1.0, with_bias: bool) {
            let x: Vec<f32> = c.x.iter().map(|&v| v as f32 * 0.37 - 3.0).collect();
            let bias: Vec<f32> = (0..c.out_c).map(|i| i as f32 * 0.25 - 1.0).collect();
            let bias = with_bias.then_some(bias);
            let w = ConvWeights {
                out_c: c.out_c,
                in_c_per_group: c.g.in_c / c.groups,
                groups: c.groups,
                k_h: c.g.k_h,
                k_w: c.g.k_w,
                weights: &c.w,
                scales: &c.scales,
                bias: None,
            };
            let ind = Indirection::new(&c.g).unwrap();
            let qx = quantize_rows(&x, 1, x.len(), x.len()).unwrap();
            let run = |isa: Isa| {
                let packed = PackedDynamicConv::pack(isa, &w, bias.as_deref()).unwrap();
                let tiles = packed.tile_count(&ind);
                let cut = (tiles as f64 * split) as usize;
                let mut y = vec![f32::NAN; c.g.batch * c.g.out_h() * c.g.out_w() * c.out_c];
                packed.run(&ind, &qx, &mut y, 0..cut).unwrap();
                packed.run(&ind, &qx, &mut y, cut..tiles).unwrap();
                y
            };
            let scalar = run(Isa::Scalar);
            // f64 reference on the dequantized input (padding reads real zero).
            let (s, zp) = (qx.scales[0] as f64, qx.zero_points[0]);
            let g = &c.g;
            let (oh, ow, cin_g, cout_g) = (g.out_h(), g.out_w(), g.in_c / c.groups, c.out_c / c.groups);
            for b in 0..g.batch {
                for oy in 0..oh {
                    for ox in 0..ow {
                        for oc in 0..c.out_c {
                            let sw = c.scales[if c.scales.len() == 1 { 0 } else { oc }] as f64;
                            let (mut want, mut mag) = (bias.as_ref().map_or(0.0, |bb| bb[oc] as f64), 0.0);
                            for ky in 0..g.k_h {
                                for kx in 0..g.k_w {
                                    let iy = (oy * g.stride.0 + ky * g.dilation.0) as isize - g.padding.0 as isize;
                                    let ix = (ox * g.stride.1 + kx * g.dilation.1) as isize - g.padding.1 as isize;
                                    if iy < 0 || ix < 0 || iy >= g.in_h as isize || ix >= g.in_w as isize {
                                        continue;
                                    }
                                    let pix = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c;
                                    for ic in 0..cin_g {
                                        let q = qx.data[pix + (oc / cout_g) * cin_g + ic] as i32;
                                        let wv = c.w[((oc * g.k_h + ky) * g.k_w + kx) * cin_g + ic] as f64;
                                        let t = (q - zp) as f64 * s * wv * sw;
                                        want += t;
                                        mag += t.abs();
                                    }
                                }
                            }
                            let got = scalar[((b * oh + oy) * ow + ox) * c.out_c + oc] as f64;
                            prop_assert!((got - want).abs() <= 1e-6 * (mag + want.abs()) + 1e-30, "{} vs {}", got, want);
                        }
                    }
                }
            }
            for isa in simd_isas() {
                let simd = run(isa);
                prop_assert!(simd.iter().zip(&scalar).all(|(a, b)| a.to_bits() == b.to_bits()), "{}", isa);
            }
        }
    }
}

#[test]
fn pointwise_convolution_matches_reference_on_every_isa() {
    // 1×1, stride 1, no padding, one group, channels a multiple of 4: the dense-input path.
    for (batch, h, w, cin, cout) in [(2, 5, 7, 16, 33), (1, 3, 3, 64, 130), (1, 1, 1, 4, 1)] {
        let g = ConvGeometry {
            batch,
            in_h: h,
            in_w: w,
            in_c: cin,
            k_h: 1,
            k_w: 1,
            stride: (1, 1),
            dilation: (1, 1),
            padding: (0, 0, 0, 0),
        };
        let c = Case {
            g,
            groups: 1,
            out_c: cout,
            x: (0..batch * h * w * cin)
                .map(|i| (i * 37 % 256) as u8 as i8)
                .collect(),
            w: (0..cout * cin).map(|i| (i * 11 % 255) as u8 as i8).collect(),
            scales: (0..cout).map(|i| 1e-3 * (1 + i % 4) as f32).collect(),
            bias: Some((0..cout as i32).map(|i| i * 13 - 200).collect()),
            q: GemmQuant {
                input: QuantParams {
                    scale: 0.1,
                    zero_point: 3,
                },
                output: QuantParams {
                    scale: 0.4,
                    zero_point: -7,
                },
                range: OutputRange::FULL,
            },
        };
        let scalar = c.run(Isa::Scalar, 0.4);
        for (i, (&got, &want)) in scalar.iter().zip(&c.reference()).enumerate() {
            assert!(
                (got as i32 - want as i32).abs() <= 1,
                "element {i}: {got} vs {want}"
            );
        }
        for isa in simd_isas() {
            assert_eq!(c.run(isa, 0.7), scalar, "{isa}");
        }
    }
}
