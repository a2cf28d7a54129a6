//! GEMM kernels: every ISA variant bit-identical to the scalar kernel, and the scalar kernel
//! within one step of the textbook f64 reference.

mod kernels_common;

use kernels_common::simd_isas;
use proptest::prelude::*;
use xq::kernels::gemm::{GemmQuant, GemmWeights, PackedGemm};
use xq::kernels::{reference, Isa, OutputRange, QuantParams};

/// One randomly generated GEMM problem (dense A, `k = ks * kc`).
#[derive(Clone, Debug)]
struct Case {
    m: usize,
    n: usize,
    ks: usize,
    kc: usize,
    x: Vec<i8>,
    w: Vec<i8>,
    w_scales: Vec<f32>,
    bias: Option<Vec<i32>>,
    q: GemmQuant,
}

impl Case {
    fn k(&self) -> usize {
        self.ks * self.kc
    }

    fn weights(&self) -> GemmWeights<'_> {
        GemmWeights {
            n: self.n,
            ks: self.ks,
            kc: self.kc,
            weights: &self.w,
            scales: &self.w_scales,
            bias: self.bias.as_deref(),
        }
    }

    /// Runs the kernel of `isa`, splitting the tiles into two ranges at `split` (a fraction).
    fn run(&self, isa: Isa, split: f64) -> Vec<i8> {
        let packed = PackedGemm::pack(isa, &self.weights(), &self.q).unwrap();
        let tiles = packed.tile_count(self.m);
        let cut = ((tiles as f64) * split) as usize;
        let mut y = vec![0x55i8; self.m * self.n];
        packed
            .run(self.m, &self.x, self.k(), &mut y, self.n, 0..cut)
            .unwrap();
        packed
            .run(self.m, &self.x, self.k(), &mut y, self.n, cut..tiles)
            .unwrap();
        y
    }

    fn reference(&self) -> Vec<i8> {
        reference::gemm(
            self.m,
            self.n,
            self.k(),
            &self.x,
            self.q.input,
            &self.w,
            &self.w_scales,
            self.bias.as_deref(),
            self.q.output,
            self.q.range,
        )
    }
}

fn i8_vec(len: usize, lo: i8, hi: i8) -> impl Strategy<Value = Vec<i8>> {
    prop::collection::vec(lo..=hi, len)
}

fn qparams(log2_lo: f32, log2_hi: f32) -> impl Strategy<Value = QuantParams> {
    (log2_lo..log2_hi, -128i32..=127).prop_map(|(e, zp)| QuantParams {
        scale: e.exp2(),
        zero_point: zp,
    })
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..24,
        1usize..150,
        1usize..4,
        1usize..70,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|(m, n, ks, kc, per_channel, with_bias, relu)| {
            let k = ks * kc;
            (
                i8_vec(m * k, -128, 127),
                i8_vec(n * k, -128, 127),
                prop::collection::vec(-10f32..-4f32, if per_channel { n } else { 1 }),
                prop::collection::vec(-20000i32..20000, n),
                qparams(-6.0, 0.0),
                qparams(-4.0, 3.0),
            )
                .prop_map(move |(x, w, ws_log, bias, input, output)| Case {
                    m,
                    n,
                    ks,
                    kc,
                    x,
                    w,
                    w_scales: ws_log.iter().map(|e| e.exp2()).collect(),
                    bias: with_bias.then_some(bias),
                    q: GemmQuant {
                        input,
                        output,
                        range: if relu {
                            OutputRange::relu(output.zero_point)
                        } else {
                            OutputRange::FULL
                        },
                    },
                })
        })
}

fn assert_within_one_step(got: &[i8], want: &[i8]) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as i32 - w as i32).abs() <= 1,
            "element {i}: kernel {g}, reference {w}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn scalar_within_one_step_and_simd_bit_identical(c in case(), split in 0.0f64..1.0) {
        let scalar = c.run(Isa::Scalar, split);
        assert_within_one_step(&scalar, &c.reference());
        for isa in simd_isas() {
            prop_assert_eq!(&c.run(isa, split), &scalar, "{} differs from scalar", isa);
        }
    }
}

/// A case whose multiplier is exactly 0.5, so odd accumulators are ties.
fn ties_case(zp_out: i32) -> Case {
    let (m, n, k) = (9, 37, 1);
    let x: Vec<i8> = (0..m).map(|i| (i as i8) * 3 - 13).collect();
    let w: Vec<i8> = (0..n).map(|c| (c as i8) - 18).collect();
    Case {
        m,
        n,
        ks: 1,
        kc: k,
        x,
        w,
        w_scales: vec![1.0],
        bias: Some((0..n as i32).map(|c| c % 3 - 1).collect()),
        q: GemmQuant {
            input: QuantParams {
                scale: 1.0,
                zero_point: 0,
            },
            output: QuantParams {
                scale: 2.0,
                zero_point: zp_out,
            },
            range: OutputRange::FULL,
        },
    }
}

#[test]
fn ties_round_half_to_even_on_every_isa() {
    for zp in [-3, 0, 4] {
        let c = ties_case(zp);
        let scalar = c.run(Isa::Scalar, 0.5);
        // Scale ratio 0.5 and integer values make the f64 reference exact: no tolerance.
        assert_eq!(scalar, c.reference());
        let acc = c.x[1] as i32 * c.w[0] as i32 + c.bias.as_ref().unwrap()[0];
        let expect = ((acc as f64 / 2.0).round_ties_even() as i32 + zp).clamp(-128, 127) as i8;
        assert_eq!(scalar[c.n], expect, "acc {acc}");
        for isa in simd_isas() {
            assert_eq!(c.run(isa, 0.3), scalar, "{isa}");
        }
    }
}

#[test]
fn saturation_and_large_k_are_exact_on_every_isa() {
    // K = 3 × 1365 (not a multiple of 4) with extreme values: accumulators near ±2^26.
    let (m, n, ks, kc) = (11, 70, 3, 1365);
    let k = ks * kc;
    let x: Vec<i8> = (0..m * k).map(|i| if i % 7 == 0 { 127 } else { -128 }).collect();
    let w: Vec<i8> = (0..n * k)
        .map(|i| if (i / k) % 2 == 0 { -127 } else { 127 })
        .collect();
    for out_scale in [1e-3f32, 1e3, 4e5] {
        let c = Case {
            m,
            n,
            ks,
            kc,
            x: x.clone(),
            w: w.clone(),
            w_scales: vec![0.5; n],
            bias: None,
            q: GemmQuant {
                input: QuantParams {
                    scale: 1.0,
                    zero_point: 127,
                },
                output: QuantParams {
                    scale: out_scale,
                    zero_point: -128,
                },
                range: OutputRange::FULL,
            },
        };
        let scalar = c.run(Isa::Scalar, 1.0);
        assert_within_one_step(&scalar, &c.reference());
        for isa in simd_isas() {
            assert_eq!(c.run(isa, 0.0), scalar, "{isa}");
        }
    }
}

#[test]
fn bad_arguments_are_errors() {
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
    let w = vec![1i8; 6];
    let good = GemmWeights {
        n: 2,
        ks: 1,
        kc: 3,
        weights: &w,
        scales: &[1.0],
        bias: None,
    };
    let packed = PackedGemm::pack(Isa::Scalar, &good, &q).unwrap();
    let mut y = vec![0i8; 4];
    assert!(packed.run(2, &[0; 5], 3, &mut y, 2, 0..1).is_err(), "short input");
    assert!(
        packed.run(2, &[0; 6], 3, &mut y[..3], 2, 0..1).is_err(),
        "short output"
    );
    assert!(
        packed.run(2, &[0; 6], 3, &mut y, 2, 0..2).is_err(),
        "tile range past the end"
    );
    assert!(
        packed.run(2, &[0; 6], 2, &mut y, 2, 0..1).is_err(),
        "stride shorter than k"
    );
    let bad_len = GemmWeights {
        weights: &w[..5],
        ..good
    };
    assert!(PackedGemm::pack(Isa::Scalar, &bad_len, &q).is_err());
    let bad_scales = GemmWeights {
        scales: &[1.0, 1.0, 1.0],
        ..good
    };
    assert!(PackedGemm::pack(Isa::Scalar, &bad_scales, &q).is_err());
    let nan_scale = GemmWeights {
        scales: &[f32::NAN],
        ..good
    };
    assert!(PackedGemm::pack(Isa::Scalar, &nan_scale, &q).is_err());
    let huge_k = GemmWeights {
        n: 1,
        ks: 1 << 20,
        kc: 1,
        weights: &[],
        scales: &[1.0],
        bias: None,
    };
    assert!(PackedGemm::pack(Isa::Scalar, &huge_k, &q).is_err());
    let huge_kc = GemmWeights {
        kc: usize::MAX,
        ..huge_k
    };
    assert!(PackedGemm::pack(Isa::Scalar, &huge_kc, &q).is_err());
    let huge_n = GemmWeights {
        n: usize::MAX / 2,
        ks: 1,
        kc: 4,
        ..huge_k
    };
    assert!(PackedGemm::pack(Isa::Scalar, &huge_n, &q).is_err());
}

#[test]
fn threads_computing_disjoint_tiles_match_one_thread() {
    use xq::kernels::output::SharedOutput;
    let (m, n, k) = (45, 140, 300);
    let x: Vec<i8> = (0..m * k).map(|i| (i * 31 % 251) as i8).collect();
    let w: Vec<i8> = (0..n * k).map(|i| (i * 17 % 255) as i8).collect();
    let scales: Vec<f32> = (0..n).map(|c| 1e-3 * (1 + c % 5) as f32).collect();
    let q = GemmQuant {
        input: QuantParams {
            scale: 0.05,
            zero_point: 9,
        },
        output: QuantParams {
            scale: 0.3,
            zero_point: -20,
        },
        range: OutputRange::FULL,
    };
    let weights = GemmWeights {
        n,
        ks: 1,
        kc: k,
        weights: &w,
        scales: &scales,
        bias: None,
    };
    for isa in std::iter::once(Isa::Scalar).chain(simd_isas()) {
        let packed = PackedGemm::pack(isa, &weights, &q).unwrap();
        let tiles = packed.tile_count(m);
        let mut single = vec![0i8; m * n];
        packed.run(m, &x, k, &mut single, n, 0..tiles).unwrap();
        let mut shared = vec![0i8; m * n];
        let out = SharedOutput::new(&mut shared);
        std::thread::scope(|s| {
            for part in 0..3 {
                let (packed, x, out) = (&packed, &x, &out);
                s.spawn(move || {
                    let range = tiles * part / 3..tiles * (part + 1) / 3;
                    // SAFETY: the three ranges are disjoint.
                    unsafe { packed.run_shared(m, x, k, out, n, range).unwrap() };
                });
            }
        });
        assert_eq!(shared, single, "{isa}");
    }
}
