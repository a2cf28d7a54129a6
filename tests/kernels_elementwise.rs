//! Add / mul (with SE-style broadcasting and fused ReLU) and concat: every ISA variant
//! bit-identical to the scalar kernel, the scalar kernel within one step of f64.

mod kernels_common;

use kernels_common::simd_isas;
use proptest::prelude::*;
use xq::kernels::concat::{Concat, ConcatInput};
use xq::kernels::elementwise::{BinaryOp, BinaryQuant, BinaryShape, OperandStrides, QuantizedBinary};
use xq::kernels::reference::{dequantize, quantize};
use xq::kernels::{Isa, OutputRange, QuantParams};

fn qp() -> impl Strategy<Value = QuantParams> {
    (-8f32..2f32, -128i32..=127).prop_map(|(e, zp)| QuantParams {
        scale: e.exp2(),
        zero_point: zp,
    })
}

#[derive(Clone, Debug)]
struct BinCase {
    op: BinaryOp,
    shape: BinaryShape,
    a: Vec<i8>,
    b: Vec<i8>,
    q: BinaryQuant,
}

/// `b`'s layout: dense, per channel (SE), or one scalar.
fn strides(kind: u8, p: usize, c: usize) -> (OperandStrides, usize) {
    match kind {
        0 => (OperandStrides::dense(p, c), p * c),
        1 => (OperandStrides::per_channel(c), c),
        _ => (OperandStrides { n: 0, p: 0, c: 0 }, 1),
    }
}

fn bin_case() -> impl Strategy<Value = BinCase> {
    (
        1usize..3,
        1usize..20,
        1usize..70,
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|(n, p, c, kind, mul, swap, relu)| {
            let (bs, blen_per_n) = strides(kind, p, c);
            let blen = if kind == 2 { 1 } else { n * blen_per_n };
            (
                prop::collection::vec(any::<i8>(), n * p * c),
                prop::collection::vec(any::<i8>(), blen),
                qp(),
                qp(),
                qp(),
            )
                .prop_map(move |(a, b, qa, qb, qy)| {
                    let dense = OperandStrides::dense(p, c);
                    let (sa, sb) = if swap { (bs, dense) } else { (dense, bs) };
                    let (a, b, qa, qb) = if swap { (b, a, qb, qa) } else { (a, b, qa, qb) };
                    BinCase {
                        op: if mul { BinaryOp::Mul } else { BinaryOp::Add },
                        shape: BinaryShape {
                            n,
                            p,
                            c,
                            a: sa,
                            b: sb,
                        },
                        a,
                        b,
                        q: BinaryQuant {
                            a: qa,
                            b: qb,
                            output: qy,
                            range: if relu {
                                OutputRange::relu(qy.zero_point)
                            } else {
                                OutputRange::FULL
                            },
                        },
                    }
                })
        })
}

impl BinCase {
    fn run(&self, isa: Isa, split: f64) -> Vec<i8> {
        let k = QuantizedBinary::new(isa, self.op, &self.q).unwrap();
        let tiles = k.tile_count(&self.shape);
        let cut = (tiles as f64 * split) as usize;
        let s = &self.shape;
        let mut y = vec![0x55; s.n * s.p * s.c];
        k.run(s, &self.a, &self.b, &mut y, 0..cut).unwrap();
        k.run(s, &self.a, &self.b, &mut y, cut..tiles).unwrap();
        y
    }

    fn reference(&self) -> Vec<i8> {
        let s = &self.shape;
        let mut y = Vec::new();
        for n in 0..s.n {
            for p in 0..s.p {
                for c in 0..s.c {
                    let a = dequantize(self.a[n * s.a.n + p * s.a.p + c * s.a.c], self.q.a);
                    let b = dequantize(self.b[n * s.b.n + p * s.b.p + c * s.b.c], self.q.b);
                    let v = if self.op == BinaryOp::Add { a + b } else { a * b };
                    y.push(quantize(v, self.q.output, self.q.range));
                }
            }
        }
        y
    }
}

#[derive(Clone, Debug)]
struct ConcatCase {
    outer: usize,
    inputs: Vec<(Vec<i8>, usize, QuantParams)>,
    output: QuantParams,
}

fn concat_case() -> impl Strategy<Value = ConcatCase> {
    (
        1usize..6,
        prop::collection::vec((1usize..40, any::<bool>()), 1..4),
        qp(),
    )
        .prop_flat_map(|(outer, specs, output)| {
            let inputs: Vec<_> = specs
                .into_iter()
                .map(|(inner, same)| {
                    let q = if same { Just(output).boxed() } else { qp().boxed() };
                    (prop::collection::vec(any::<i8>(), outer * inner), Just(inner), q)
                })
                .collect();
            inputs.prop_map(move |inputs| ConcatCase {
                outer,
                inputs,
                output,
            })
        })
}

impl ConcatCase {
    fn run(&self, isa: Isa) -> Vec<i8> {
        let k = Concat::new(isa, self.output).unwrap();
        let inputs: Vec<ConcatInput> = self
            .inputs
            .iter()
            .map(|(d, inner, q)| ConcatInput {
                data: d,
                inner: *inner,
                q: *q,
            })
            .collect();
        let total: usize = self.inputs.iter().map(|i| i.1).sum::<usize>() * self.outer;
        let mut y = vec![0x55; total];
        k.run(self.outer, &inputs, &mut y, 0..k.tile_count(self.outer))
            .unwrap();
        y
    }

    fn reference(&self) -> Vec<i8> {
        let mut y = Vec::new();
        for t in 0..self.outer {
            for (d, inner, q) in &self.inputs {
                for &x in &d[t * inner..(t + 1) * inner] {
                    y.push(quantize(dequantize(x, *q), self.output, OutputRange::FULL));
                }
            }
        }
        y
    }
}

fn assert_close(got: &[i8], want: &[i8]) -> Result<(), TestCaseError> {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        prop_assert!((g as i32 - w as i32).abs() <= 1, "element {}: {} vs {}", i, g, w);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn binary_scalar_close_and_simd_identical(c in bin_case(), split in 0.0f64..1.0) {
        let scalar = c.run(Isa::Scalar, split);
        assert_close(&scalar, &c.reference())?;
        for isa in simd_isas() {
            prop_assert_eq!(&c.run(isa, split), &scalar, "{}", isa);
        }
    }

    #[test]
    fn concat_scalar_close_and_simd_identical(c in concat_case()) {
        let scalar = c.run(Isa::Scalar);
        assert_close(&scalar, &c.reference())?;
        for (t, (d, inner, q)) in c.inputs.iter().enumerate() {
            if *q == c.output {
                let start: usize = c.inputs[..t].iter().map(|i| i.1).sum();
                prop_assert_eq!(&scalar[start..start + inner], &d[..*inner], "equal qparams copy bytes");
            }
        }
        for isa in simd_isas() {
            prop_assert_eq!(&c.run(isa), &scalar, "{}", isa);
        }
    }
}

#[test]
fn out_of_bounds_strides_are_errors() {
    let q = QuantParams {
        scale: 1.0,
        zero_point: 0,
    };
    let bq = BinaryQuant {
        a: q,
        b: q,
        output: q,
        range: OutputRange::FULL,
    };
    let k = QuantizedBinary::new(Isa::Scalar, BinaryOp::Add, &bq).unwrap();
    let shape = BinaryShape {
        n: 2,
        p: 3,
        c: 4,
        a: OperandStrides::dense(3, 4),
        b: OperandStrides::per_channel(4),
    };
    let mut y = vec![0; 24];
    assert!(
        k.run(&shape, &[0; 24], &[0; 7], &mut y, 0..6).is_err(),
        "b too short"
    );
    assert!(
        k.run(&shape, &[0; 23], &[0; 8], &mut y, 0..6).is_err(),
        "a too short"
    );
    assert!(
        k.run(&shape, &[0; 24], &[0; 8], &mut y[..23], 0..6).is_err(),
        "output too short"
    );
    assert!(k.run(&shape, &[0; 24], &[0; 8], &mut y, 0..7).is_err(), "tiles");
    let bad = BinaryShape {
        a: OperandStrides { n: 12, p: 4, c: 2 },
        ..shape
    };
    assert!(
        k.run(&bad, &[0; 100], &[0; 8], &mut y, 0..6).is_err(),
        "channel stride 2"
    );
    assert!(k.run(&shape, &[1; 24], &[2; 8], &mut y, 0..6).is_ok());
    assert_eq!(y, vec![3; 24]);
}

#[test]
fn ties_round_half_to_even_in_add_and_mul() {
    // Unit input scales and an output scale of 2 make every odd sum / product a tie, and
    // the f64 reference exact: the kernels must match it with no tolerance.
    let (p, c) = (3, 37);
    let a: Vec<i8> = (0..p * c).map(|i| (i as i32 * 7 % 256 - 128) as i8).collect();
    let b: Vec<i8> = (0..p * c)
        .map(|i| ((i as i32 * 13 + 1) % 256 - 128) as i8)
        .collect();
    let unit = QuantParams {
        scale: 1.0,
        zero_point: 0,
    };
    for zp_out in [-1, 0, 2] {
        for op in [BinaryOp::Add, BinaryOp::Mul] {
            let out = QuantParams {
                scale: if op == BinaryOp::Add { 2.0 } else { 512.0 },
                zero_point: zp_out,
            };
            let c = BinCase {
                op,
                shape: BinaryShape {
                    n: 1,
                    p,
                    c,
                    a: OperandStrides::dense(p, c),
                    b: OperandStrides::dense(p, c),
                },
                a: a.clone(),
                b: b.clone(),
                q: BinaryQuant {
                    a: unit,
                    b: unit,
                    output: out,
                    range: OutputRange::FULL,
                },
            };
            let want = c.reference();
            assert!(
                c.a.iter()
                    .zip(&c.b)
                    .any(|(&x, &y)| (x as i32 + y as i32) % 2 != 0),
                "the case contains ties"
            );
            for isa in std::iter::once(Isa::Scalar).chain(simd_isas()) {
                assert_eq!(c.run(isa, 0.5), want, "{isa} {op:?} zp {zp_out}");
            }
        }
    }
}
