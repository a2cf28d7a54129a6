//! Add / sub / mul (with SE-style broadcasting, fused ReLU, int8 and uint8 storage) and concat:
//! every ISA variant bit-identical to the scalar kernel, the scalar kernel within one step
//! of f64. Byte-exact agreement with ONNX Runtime is in `kernels_onnxruntime.rs`.

mod common;
mod delegate_common;
mod kernels_common;

use kernels_common::simd_isas;
use proptest::prelude::*;
use xq::kernels::concat::{Concat, ConcatInput};
use xq::kernels::elementwise::{
    BinaryOp, BinaryQuant, BinaryShape, OperandStrides, QuantizedBinary, Storage,
};
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
    storage: Storage,
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
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|(n, p, c, kind, op, swap, relu, unsigned)| {
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
                        op: [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Sub][op as usize],
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
                        storage: if unsigned { Storage::Uint8 } else { Storage::Int8 },
                    }
                })
        })
}

impl BinCase {
    fn run(&self, isa: Isa, split: f64) -> Vec<i8> {
        let k = QuantizedBinary::with_storage(isa, self.op, &self.q, self.storage).unwrap();
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
                    let v = match self.op {
                        BinaryOp::Add => a + b,
                        BinaryOp::Sub => a - b,
                        BinaryOp::Mul => a * b,
                    };
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
fn ties_round_half_to_even_with_the_output_zero_point_in_add_and_mul() {
    // Unit input scales and an output scale of 2 (add) or 512 (mul) make every odd sum /
    // product a tie, computed exactly. As in ONNX Runtime's QLinearAdd / QLinearMul, the
    // output zero point is added before rounding: an odd zero point moves the even side.
    // uint8 storage adds 128 (even) to every value, which keeps the ties where they are.
    let (p, c) = (3, 37);
    let a: Vec<i8> = (0..p * c).map(|i| (i as i32 * 7 % 256 - 128) as i8).collect();
    let b: Vec<i8> = (0..p * c)
        .map(|i| ((i as i32 * 13 + 1) % 256 - 128) as i8)
        .collect();
    let unit = QuantParams {
        scale: 1.0,
        zero_point: 0,
    };
    for storage in [Storage::Int8, Storage::Uint8] {
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
                    storage,
                };
                let want: Vec<i8> = a
                    .iter()
                    .zip(&b)
                    .map(|(&x, &y)| {
                        let (x, y) = (x as f64, y as f64);
                        let v = if op == BinaryOp::Add {
                            (x + y) / 2.0
                        } else {
                            x * y / 512.0
                        };
                        (v + zp_out as f64).round_ties_even().clamp(-128.0, 127.0) as i8
                    })
                    .collect();
                assert!(
                    a.iter().zip(&b).any(|(&x, &y)| (x as i32 + y as i32) % 2 != 0),
                    "the case contains ties"
                );
                for isa in std::iter::once(Isa::Scalar).chain(simd_isas()) {
                    assert_eq!(c.run(isa, 0.5), want, "{isa} {op:?} zp {zp_out} {storage:?}");
                }
            }
        }
    }
}

/// Where the 256 × 256 input pairs of an ONNX Runtime case live (see qlinear_cases.py).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// Both operands `[1, 256, 16, 16]`.
    Dense,
    /// `b` is `[1, 256, 1, 1]` (an SE-block scale).
    BPerChannel,
    /// `a` is `[1, 256, 1, 1]`: ONNX Runtime then streams `b`.
    APerChannel,
}

/// One single-op case: qparams as (scale, zero point in the graph's type).
#[derive(Clone, Copy, Debug)]
struct OrtCase {
    op: BinaryOp,
    unsigned: bool,
    a: (f32, i32),
    b: (f32, i32),
    y: (f32, i32),
    layout: Layout,
}

impl OrtCase {
    fn json(&self) -> serde_json::Value {
        let q = |(s, z): (f32, i32)| serde_json::json!([s as f64, z]);
        serde_json::json!({
            "op": if self.op == BinaryOp::Add { "Add" } else { "Mul" },
            "dtype": if self.unsigned { "uint8" } else { "int8" },
            "a": q(self.a), "b": q(self.b), "y": q(self.y),
            "layout": match self.layout {
                Layout::Dense => "dense",
                Layout::BPerChannel => "b_per_channel",
                Layout::APerChannel => "a_per_channel",
            },
        })
    }

    /// The carried int8 of the graph's value `i` (the i-th byte pattern of the type).
    fn value(&self, i: usize) -> i8 {
        if self.unsigned {
            (i as i32 - 128) as i8
        } else {
            i as u8 as i8
        }
    }

    /// libxq's NCHW-ordered output for `isa`, as the graph's bytes.
    fn run(&self, isa: Isa) -> Vec<u8> {
        let off = if self.unsigned { 128 } else { 0 };
        let qp = |(scale, z): (f32, i32)| QuantParams {
            scale,
            zero_point: z - off,
        };
        let q = BinaryQuant {
            a: qp(self.a),
            b: qp(self.b),
            output: qp(self.y),
            range: OutputRange::FULL,
        };
        let storage = if self.unsigned {
            Storage::Uint8
        } else {
            Storage::Int8
        };
        let k = QuantizedBinary::with_storage(isa, self.op, &q, storage).unwrap();
        // NHWC: 256 pixels × 256 channels; pixel p of the streamed operand holds value p.
        let pixel: Vec<i8> = (0..256 * 256).map(|i| self.value(i / 256)).collect();
        let channel: Vec<i8> = (0..256).map(|c| self.value(c)).collect();
        let channel_dense: Vec<i8> = (0..256 * 256).map(|i| self.value(i % 256)).collect();
        let dense = OperandStrides::dense(256, 256);
        let per_channel = OperandStrides::per_channel(256);
        let (a, sa, b, sb) = match self.layout {
            Layout::Dense => (&pixel, dense, &channel_dense, dense),
            Layout::BPerChannel => (&pixel, dense, &channel, per_channel),
            Layout::APerChannel => (&channel, per_channel, &pixel, dense),
        };
        let shape = BinaryShape {
            n: 1,
            p: 256,
            c: 256,
            a: sa,
            b: sb,
        };
        let mut y = vec![0i8; 256 * 256];
        k.run(&shape, a, b, &mut y, 0..100).unwrap();
        k.run(&shape, a, b, &mut y, 100..256).unwrap();
        // ONNX Runtime writes NCHW: channel-major.
        (0..256 * 256)
            .map(|i| (y[(i % 256) * 256 + i / 256] as i32 + off) as u8)
            .collect()
    }
}

/// Qparams (scale, zero point) of add cases: equal scales, very different scales, extreme
/// zero points, and scale patterns found (by search) to separate the candidate formulas:
/// the constant term's FMA order, and FMA contraction of a broadcast operand.
fn add_qparams(unsigned: bool) -> Vec<[(f32, i32); 3]> {
    let bits = f32::from_bits;
    let (lo, hi) = if unsigned { (0, 255) } else { (-128, 127) };
    let mut sets = vec![
        [(0.05, 3), (0.05, 3), (0.05, 3)],
        [(0.02, lo), (0.02, hi), (0.04, (lo + hi) / 2)],
        [(0.1, lo + 5), (0.001, hi - 20), (0.07, lo)],
        [(0.003, hi), (0.2, lo + 1), (0.25, lo + 100)],
    ];
    if unsigned {
        sets.extend([
            [
                (bits(1029043306), 123),
                (bits(1030817105), 248),
                (bits(1029212159), 111),
            ],
            [
                (bits(1016985529), 206),
                (bits(1045075532), 185),
                (bits(1043153998), 68),
            ],
            [
                (bits(1030419213), 138),
                (bits(1015588759), 253),
                (bits(1023795142), 48),
            ],
            [
                (bits(1032111391), 219),
                (bits(1007725353), 224),
                (bits(1028269502), 108),
            ],
        ]);
    } else {
        sets.extend([
            [
                (bits(1049397744), 104),
                (bits(1021597106), 65),
                (bits(1051047557), 99),
            ],
            [
                (bits(1030781230), 109),
                (bits(1031400075), -88),
                (bits(1048246976), -6),
            ],
            [
                (bits(992224095), -41),
                (bits(1037236922), -73),
                (bits(1041874253), -104),
            ],
        ]);
    }
    sets
}

/// Qparams of mul cases (output scales near the product's range, and far from it).
fn mul_qparams(unsigned: bool) -> Vec<[(f32, i32); 3]> {
    let (lo, hi) = if unsigned { (0, 255) } else { (-128, 127) };
    vec![
        [(0.05, 3), (0.05, 3), (0.3, 3)],
        [(0.02, lo), (0.013, hi), (0.04, (lo + hi) / 2)],
        [(0.1, lo + 5), (0.001, hi - 20), (0.0007, lo)],
        [(0.0031, hi - 1), (0.21, lo + 1), (0.9, lo + 100)],
    ]
}

#[test]
fn add_and_mul_are_byte_identical_to_onnxruntime_on_every_input_pair() {
    let Some(python) = delegate_common::python("add_and_mul_are_byte_identical_to_onnxruntime") else {
        return;
    };
    let mut cases = Vec::new();
    for unsigned in [false, true] {
        for layout in [Layout::Dense, Layout::BPerChannel, Layout::APerChannel] {
            for (op, sets) in [
                (BinaryOp::Add, add_qparams(unsigned)),
                (BinaryOp::Mul, mul_qparams(unsigned)),
            ] {
                for [a, b, y] in sets {
                    cases.push(OrtCase {
                        op,
                        unsigned,
                        a,
                        b,
                        y,
                        layout,
                    });
                }
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cases.json");
    let json: Vec<_> = cases.iter().map(OrtCase::json).collect();
    std::fs::write(&spec, serde_json::to_string(&json).unwrap()).unwrap();
    let script = delegate_common::root().join("tests/python/qlinear_cases.py");
    delegate_common::run_python(
        &python,
        &script,
        &[spec.to_str().unwrap(), dir.path().to_str().unwrap()],
    );
    for (k, case) in cases.iter().enumerate() {
        let theirs = std::fs::read(dir.path().join(format!("{k}_y.bin"))).unwrap();
        for isa in std::iter::once(Isa::Scalar).chain(simd_isas()) {
            let ours = case.run(isa);
            let differ = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "{isa} {case:?}: {differ} of 65536 outputs differ");
        }
    }
    println!("{} cases × 65536 input pairs byte-identical", cases.len());
}

/// Scale and zero point.
type Qp = (f32, i32);

#[test]
fn concat_is_byte_identical_to_onnxruntime_on_every_input_value() {
    let Some(python) = delegate_common::python("concat_is_byte_identical_to_onnxruntime") else {
        return;
    };
    let bits = f32::from_bits;
    // (output, inputs): scales and zero points (int8 terms) where dividing by the output
    // scale and multiplying by the ratio of scales round differently, and plain ones; an
    // input with the output's qparams is copied.
    let sets: Vec<(Qp, Vec<Qp>)> = vec![
        (
            (bits(1023980085), -100),
            vec![(bits(1038803184), -128), (bits(1038803184), 0)],
        ),
        (
            (bits(1017445623), -100),
            vec![(bits(1015931850), -128), (bits(1017445623), -100)],
        ),
        ((bits(1017445623), 0), vec![(bits(1015931850), -128), (0.5, 3)]),
        ((0.05, 7), vec![(0.013, -20), (0.3, 100), (0.05, 7)]),
    ];
    let mut json = Vec::new();
    for unsigned in [false, true] {
        for (y, inputs) in &sets {
            let off = if unsigned { 128 } else { 0 };
            let q = |&(s, z): &(f32, i32)| serde_json::json!([s as f64, z + off]);
            json.push(serde_json::json!({
                "op": "Concat",
                "dtype": if unsigned { "uint8" } else { "int8" },
                "inputs": inputs.iter().map(q).collect::<Vec<_>>(),
                "y": q(y),
            }));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cases.json");
    std::fs::write(&spec, serde_json::to_string(&json).unwrap()).unwrap();
    let script = delegate_common::root().join("tests/python/qlinear_cases.py");
    delegate_common::run_python(
        &python,
        &script,
        &[spec.to_str().unwrap(), dir.path().to_str().unwrap()],
    );
    for (k, (unsigned, (y, inputs))) in [false, true]
        .iter()
        .flat_map(|u| sets.iter().map(move |s| (*u, s)))
        .enumerate()
    {
        let carried = |b: u8| if unsigned { (b as i32 - 128) as i8 } else { b as i8 };
        let theirs: Vec<i8> = std::fs::read(dir.path().join(format!("{k}_y.bin")))
            .unwrap()
            .into_iter()
            .map(carried)
            .collect();
        let values: Vec<i8> = (0..=255u8).map(carried).collect();
        let qp = |&(scale, zero_point): &(f32, i32)| QuantParams { scale, zero_point };
        for isa in std::iter::once(Isa::Scalar).chain(simd_isas()) {
            let k = Concat::new(isa, qp(y)).unwrap();
            let ins: Vec<ConcatInput> = inputs
                .iter()
                .map(|q| ConcatInput {
                    data: &values,
                    inner: 256,
                    q: qp(q),
                })
                .collect();
            let mut ours = vec![0i8; 256 * inputs.len()];
            k.run(1, &ins, &mut ours, 0..1).unwrap();
            assert_eq!(ours, theirs, "{isa} unsigned {unsigned} {y:?} {inputs:?}");
        }
    }
}
