//! Pins of the quantization numerics as each call site computes them today, so moving the
//! formulas into one module can be checked bit for bit:
//!
//! - what NaN, infinities and huge values quantize to at each quantize site (the quantizer's
//!   parameters, the interpreter's QuantizeLinear, the program's Quantize step, the Pad fill
//!   value and the fused Clip / Relu bounds of the delegate);
//! - the three per-row (per-tensor) dynamic rules: the quantizer's torch per-token rule, the
//!   kernels' row quantization (what programs run) and the interpreter's uint8
//!   DynamicQuantizeLinear, on an all-zero row, a tiny range and a row whose zero point sits
//!   half-way between two integers;
//! - int4 and int2 values written by QuantizeLinear and read back by DequantizeLinear.

use xq::delegate::{lower, PartitionMode};
use xq::ir::op::{BinaryOp, PadMode, QuantAttrs, UnaryOp};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorData, TensorInfo};
use xq::runtime::{Program, ProgramOptions};

fn node(name: &str, op: Op, inputs: &[&str], output: &str) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    }
}

fn zp_i8(v: i8) -> Tensor {
    Tensor::new(vec![], TensorData::I8(vec![v])).unwrap()
}

fn eval(op: Op, inputs: &[&Tensor]) -> Vec<Tensor> {
    let args: Vec<Option<&Tensor>> = inputs.iter().map(|t| Some(*t)).collect();
    xq::interp::kernels::eval(&op, &args).unwrap()
}

/// Lowers `g` with every node delegated and runs it on `inputs`.
fn run_delegated(g: &Graph, delegated: usize, inputs: Vec<Tensor>) -> Vec<f32> {
    let (spec, report) = lower(g, PartitionMode::All).unwrap();
    assert!(report.refused.is_empty(), "{}", report.text());
    assert_eq!(report.delegated_nodes(), delegated, "{}", report.text());
    let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
    program.execute(&inputs).unwrap()[0].as_f32().unwrap().to_vec()
}

#[test]
fn quantizer_qparams_map_nan_to_the_zero_point() {
    let p = xq::quant::QParams::new(0.5, 3, -128, 127).unwrap();
    let cases = [
        (f32::NAN, 3),
        (-f32::NAN, 3),
        (f32::INFINITY, 127),
        (f32::NEG_INFINITY, -128),
        (f32::MAX, 127),
        (-f32::MAX, -128),
        (1e30, 127),
        (-1e30, -128),
        (f32::MIN_POSITIVE / 4.0, 3),
        (-0.0, 3),
        (63.75, 127),
        (-65.75, -128),
        (1.25, 5),
        (1.75, 7),
    ];
    for (x, want) in cases {
        assert_eq!(p.quantize(x), want, "x = {x}");
    }
    assert_eq!(p.dequantize(-128), -65.5);
    // A full i32 range: the upper bound rounds to 2^31 in f32 and the conversion saturates.
    let wide = xq::quant::QParams::new(1.0, 0, i32::MIN, i32::MAX).unwrap();
    assert_eq!(wide.quantize(3e9), i32::MAX);
    assert_eq!(wide.quantize(-3e9), i32::MIN);
    assert_eq!(wide.quantize(f32::NAN), 0);
    assert_eq!(wide.quantize(123_456_789.0), 123_456_792);
    assert_eq!(wide.dequantize(i32::MAX), 2_147_483_647.0);
}

#[test]
fn interpreter_quantize_linear_maps_nan_to_zero() {
    let x = Tensor::from_f32(
        vec![8],
        vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            -1e30,
            1.25,
            1.75,
            -0.0,
        ],
    )
    .unwrap();
    let s = Tensor::scalar_f32(0.5);
    let q = |zp: &Tensor| eval(Op::QuantizeLinear(QuantAttrs::default()), &[&x, &s, zp]).remove(0);
    let y = q(&zp_i8(3));
    assert_eq!(y.as_i8().unwrap(), &[0, 127, -128, 127, -128, 5, 7, 3]);
    let y = q(&Tensor::new(vec![], TensorData::U8(vec![3])).unwrap());
    assert_eq!(y.as_u8().unwrap(), &[0, 255, 0, 255, 0, 5, 7, 3]);
    // int32: the upper bound is 2^31 in f32; the stored value saturates to i32::MAX.
    let x = Tensor::from_f32(vec![4], vec![3e9, -3e9, f32::NAN, 123_456_789.0]).unwrap();
    let zp = Tensor::new(vec![], TensorData::I32(vec![0])).unwrap();
    let y = eval(
        Op::QuantizeLinear(QuantAttrs::default()),
        &[&x, &Tensor::scalar_f32(1.0), &zp],
    )
    .remove(0);
    assert_eq!(
        y.to_i64_vec().unwrap(),
        vec![i64::from(i32::MAX), i64::from(i32::MIN), 0, 123_456_792]
    );
    // Dequantize: the integer subtraction, then one f32 product.
    let q8 = Tensor::new(vec![3], TensorData::I8(vec![-128, 3, 127])).unwrap();
    let y = eval(Op::DequantizeLinear(QuantAttrs::default()), &[&q8, &s, &zp_i8(3)]).remove(0);
    assert_eq!(y.as_f32().unwrap(), &[-65.5, 0.0, 62.0]);
}

#[test]
fn interpreter_int4_and_int2_round_trip_in_onnx_order() {
    for (dtype, values, want) in [
        (
            DType::I4,
            vec![-9.0, -8.0, 7.0, 8.0, 0.4, -0.6, 2.5],
            vec![-8.0, -8.0, 7.0, 7.0, 0.0, -1.0, 2.0],
        ),
        (
            DType::U4,
            vec![-1.0, 0.0, 15.0, 16.0, 3.5],
            vec![0.0, 0.0, 15.0, 15.0, 4.0],
        ),
        (
            DType::I2,
            vec![-3.0, -2.0, 1.0, 2.0, 0.5],
            vec![-2.0, -2.0, 1.0, 1.0, 0.0],
        ),
        (
            DType::U2,
            vec![-1.0, 0.0, 3.0, 4.0, 1.5],
            vec![0.0, 0.0, 3.0, 3.0, 2.0],
        ),
    ] {
        let n = values.len();
        let x = Tensor::from_f32(vec![n], values).unwrap();
        let s = Tensor::scalar_f32(1.0);
        let attrs = QuantAttrs {
            output_dtype: Some(dtype),
            ..QuantAttrs::default()
        };
        let q = eval(Op::QuantizeLinear(attrs), &[&x, &s]).remove(0);
        assert_eq!(q.dtype(), dtype);
        let back = eval(Op::DequantizeLinear(QuantAttrs::default()), &[&q, &s]).remove(0);
        assert_eq!(back.as_f32().unwrap(), want.as_slice(), "{dtype}");
        if let TensorData::Packed { bytes, .. } = q.data() {
            let first = match dtype {
                // -8, -8: 0x8 in both nibbles, low nibble first.
                DType::I4 => 0x88,
                DType::U4 => 0x00,
                // -2, -2, 1, 1: fields 0b10, 0b10, 0b01, 0b01 from the low bits.
                DType::I2 => 0b0101_1010,
                _ => 0b1111_0000,
            };
            assert_eq!(bytes[0], first, "{dtype}");
        } else {
            panic!("{dtype} is not stored packed");
        }
    }
}

#[test]
fn row_rules_differ_as_documented() {
    use xq::kernels::dynamic::quantize_rows;
    use xq::quant::dynamic_row_qparams;

    let a = |row: &[f32]| {
        let p = dynamic_row_qparams(row);
        (p.scale(), p.zero_point())
    };
    let b = |row: &[f32]| quantize_rows(row, 1, row.len(), row.len()).unwrap();

    // All-zero row.
    assert_eq!(a(&[0.0, 0.0]), (f32::EPSILON, 127));
    let r = b(&[0.0, 0.0]);
    assert_eq!(
        (r.scales[0], r.zero_points[0], r.data.clone()),
        (1.0, -128, vec![-128, -128])
    );
    let c = eval(
        Op::DynamicQuantizeLinear,
        &[&Tensor::from_f32(vec![2], vec![0.0, 0.0]).unwrap()],
    );
    assert_eq!(c[0].as_u8().unwrap(), &[0, 0]);
    assert_eq!(c[1].as_f32().unwrap(), &[0.0]);
    assert_eq!(c[2].as_u8().unwrap(), &[0]);

    // Tiny range: A raises the scale to f32::EPSILON, B keeps the quotient.
    assert_eq!(a(&[-1e-6, 1e-6]), (f32::EPSILON, 119));
    let r = b(&[-1e-6, 1e-6]);
    assert_eq!(r.scales[0], (1e-6f32 - -1e-6f32) / 255.0);
    assert_eq!((r.zero_points[0], r.data.clone()), (0, vec![-128, 127]));

    // A row whose zero point is half-way: same scale, zero points one apart.
    // rmin = -0.005351562052965164, rmax = 0.0053515625186264515.
    let row = [f32::from_bits(0xbbaf_5c28), f32::from_bits(0x3baf_5c29)];
    let (sa, za) = a(&row);
    let r = b(&row);
    assert_eq!(sa, r.scales[0]);
    assert_eq!(sa, 4.197_303_5e-5);
    assert_eq!((za, r.zero_points[0], r.data.clone()), (-1, 0, vec![-128, 127]));

    // Non-finite values: A ignores them, B refuses the row.
    assert_eq!(a(&[f32::NAN, 1.0, f32::INFINITY]), (1.0f32 / 255.0, -128));
    assert!(quantize_rows(&[f32::NAN, 1.0], 1, 2, 2).is_err());
    assert!(quantize_rows(&[f32::INFINITY, 1.0], 1, 2, 2).is_err());
    assert!(quantize_rows(&[1.0, f32::NEG_INFINITY], 1, 2, 2).is_err());

    // C: uint8, per tensor; an exact case, NaN (0) and an infinite range.
    let c = |v: Vec<f32>| {
        let n = v.len();
        let c = eval(
            Op::DynamicQuantizeLinear,
            &[&Tensor::from_f32(vec![n], v).unwrap()],
        );
        (
            c[0].as_u8().unwrap().to_vec(),
            c[1].as_f32().unwrap()[0],
            c[2].as_u8().unwrap()[0],
        )
    };
    assert_eq!(c(vec![-1.0, 0.0, 254.0]), (vec![0, 1, 255], 1.0, 1));
    assert_eq!(c(vec![f32::NAN, -1.0, 254.0]), (vec![0, 0, 255], 1.0, 1));
    assert_eq!(c(vec![-1.0, f32::INFINITY]), (vec![0, 0], f32::INFINITY, 0));
    assert_eq!(
        c(vec![f32::NEG_INFINITY, 1.0, f32::INFINITY]),
        (vec![0, 0, 0], f32::INFINITY, 0)
    );
}

/// `x → Q → DQ → Pad(constant) → Q → DQ`, int8 scale 0.5 and zero point 3 throughout.
fn pad_graph(fill: f32) -> Graph {
    let mut g = Graph {
        name: "pad".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &[1, 4])],
        outputs: vec![TensorInfo::known("y", DType::F32, &[1, 6])],
        ..Graph::default()
    };
    for (name, t) in [
        ("s", Tensor::scalar_f32(0.5)),
        ("z", zp_i8(3)),
        ("pads", Tensor::vec_i64(vec![0, 1, 0, 1])),
        ("fill", Tensor::scalar_f32(fill)),
    ] {
        g.initializers.insert(name.into(), t);
    }
    let q = || Op::QuantizeLinear(QuantAttrs::default());
    let dq = || Op::DequantizeLinear(QuantAttrs::default());
    g.nodes = vec![
        node("qx", q(), &["x", "s", "z"], "x_q"),
        node("dqx", dq(), &["x_q", "s", "z"], "x_dq"),
        node(
            "pad",
            Op::Pad {
                mode: PadMode::Constant,
            },
            &["x_dq", "pads", "fill"],
            "y_f",
        ),
        node("qy", q(), &["y_f", "s", "z"], "y_q"),
        node("dqy", dq(), &["y_q", "s", "z"], "y"),
    ];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

#[test]
fn program_quantize_step_maps_nan_to_the_range_minimum_and_pad_fill_saturates_infinities() {
    let x = || Tensor::from_f32(vec![1, 4], vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.25]).unwrap();
    // The input: NaN → -128, ±inf saturate, 1.25 / 0.5 = 2.5 → 2 (+3).
    let body = [-65.5, 62.0, -65.5, 1.0];
    // A NaN fill and a finite one outside the grid are not representable: refused.
    for fill in [f32::NAN, 1e30, -1e30, 64.0] {
        let (_, report) = lower(&pad_graph(fill), PartitionMode::All).unwrap();
        let r = report.refused.iter().find(|r| r.op == "Pad");
        assert_eq!(
            r.map(|r| r.reason),
            Some(xq::delegate::Reason::QParams),
            "fill {fill}: {}",
            report.text()
        );
    }
    for (fill, fill_q) in [
        (f32::INFINITY, 127),
        (f32::NEG_INFINITY, -128),
        (62.0, 127),
        (1.25, 5),
        (1.75, 7),
        (-0.0, 3),
    ] {
        let y = run_delegated(&pad_graph(fill), 1, vec![x()]);
        let f = (fill_q - 3) as f32 * 0.5;
        assert_eq!(y, vec![f, body[0], body[1], body[2], body[3], f], "fill {fill}");
    }
    // Huge finite inputs saturate; tiny ones give the zero point.
    let y = run_delegated(
        &pad_graph(0.0),
        1,
        vec![Tensor::from_f32(vec![1, 4], vec![1e30, -1e30, f32::MIN_POSITIVE, 63.75]).unwrap()],
    );
    assert_eq!(y, vec![0.0, 62.0, -65.5, 0.0, 62.0, 0.0]);
}

/// `a + b → Clip(lo, hi) / Relu → Q → DQ` with the delegate's test qparams (a: 0.05, 3;
/// b: 0.04, -2; y: 0.1, 1).
fn add_clip_graph(clip: Option<(f32, f32)>) -> Graph {
    let mut g = Graph {
        name: "add_clip".into(),
        inputs: vec![
            TensorInfo::known("a", DType::F32, &[1, 2]),
            TensorInfo::known("b", DType::F32, &[1, 2]),
        ],
        outputs: vec![TensorInfo::known("y", DType::F32, &[1, 2])],
        ..Graph::default()
    };
    for (name, t) in [
        ("sa", Tensor::scalar_f32(0.05)),
        ("sb", Tensor::scalar_f32(0.04)),
        ("sy", Tensor::scalar_f32(0.1)),
        ("za", zp_i8(3)),
        ("zb", zp_i8(-2)),
        ("zy", zp_i8(1)),
    ] {
        g.initializers.insert(name.into(), t);
    }
    let q = || Op::QuantizeLinear(QuantAttrs::default());
    let dq = || Op::DequantizeLinear(QuantAttrs::default());
    g.nodes = vec![
        node("qa", q(), &["a", "sa", "za"], "a_q"),
        node("dqa", dq(), &["a_q", "sa", "za"], "a_dq"),
        node("qb", q(), &["b", "sb", "zb"], "b_q"),
        node("dqb", dq(), &["b_q", "sb", "zb"], "b_dq"),
        node("add", Op::Binary(BinaryOp::Add), &["a_dq", "b_dq"], "sum"),
    ];
    match clip {
        Some((lo, hi)) => {
            g.initializers.insert("lo".into(), Tensor::scalar_f32(lo));
            g.initializers.insert("hi".into(), Tensor::scalar_f32(hi));
            g.nodes.push(node("clip", Op::Clip, &["sum", "lo", "hi"], "y_f"));
        }
        None => g
            .nodes
            .push(node("relu", Op::Unary(UnaryOp::Relu), &["sum"], "y_f")),
    }
    g.nodes.push(node("qy", q(), &["y_f", "sy", "zy"], "y_q"));
    g.nodes.push(node("dqy", dq(), &["y_q", "sy", "zy"], "y"));
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

#[test]
fn fused_clip_bounds_are_quantized_with_the_output_qparams() {
    for (clip, lo_q, hi_q) in [
        (Some((-0.26, 0.34)), -2, 4),
        // Bounds outside the int8 range leave it full: the saturated sums give ±115.
        (Some((-1e30, 1e30)), -115, 115),
        (Some((f32::NEG_INFINITY, f32::INFINITY)), -115, 115),
        (Some((-11.0, 10.84)), -109, 109),
        (Some((0.0, 0.0)), 1, 1),
        (Some((-0.14, -0.06)), 0, 0),
        (None, 1, 115),
    ] {
        let a = Tensor::from_f32(vec![1, 2], vec![-100.0, 100.0]).unwrap();
        let b = Tensor::from_f32(vec![1, 2], vec![-100.0, 100.0]).unwrap();
        let y = run_delegated(&add_clip_graph(clip), 1, vec![a, b]);
        let dq = |q: i32| (q - 1) as f32 * 0.1;
        assert_eq!(y, vec![dq(lo_q), dq(hi_q)], "{clip:?}");
    }
}

/// The quantize formulas as each call site wrote them before they moved into `qscheme`.
mod before {
    fn round_half_even_small(v: f32) -> f32 {
        (v + 12_582_912.0) - 12_582_912.0
    }

    /// The program's Quantize step.
    #[allow(clippy::manual_clamp)]
    pub fn program_step(x: f32, scale: f32, zp: i32) -> i32 {
        let v = round_half_even_small((x / scale).max(-256.0).min(256.0)) + zp as f32;
        v.max(-128.0).min(127.0) as i32
    }

    /// The quantizer's parameters.
    pub fn quantizer(x: f32, scale: f32, zp: i32, qmin: i32, qmax: i32) -> i32 {
        let rounded = (x / scale).round_ties_even();
        if rounded.is_nan() {
            return zp;
        }
        (rounded + zp as f32).clamp(qmin as f32, qmax as f32) as i32
    }

    /// The interpreter's QuantizeLinear, the delegate's Pad fill and Clip bounds.
    pub fn onnx(x: f32, scale: f32, zp: i32, lo: f32, hi: f32) -> i64 {
        ((x / scale).round_ties_even() + zp as f32).clamp(lo, hi) as i64
    }
}

#[test]
fn the_shared_formula_equals_each_former_copy_bit_for_bit() {
    use xq::qscheme::{quantize, IntType, NanRule, QRange};
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let special = [
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        -f32::MAX,
        f32::MIN_POSITIVE,
        1e-45,
        -0.0,
        0.0,
        4_194_304.0,
        -4_194_304.0,
        4_194_304.5,
        8_388_608.0,
        127.5,
        -128.5,
        255.5,
    ];
    let ranges = [
        IntType::I8.full_range(),
        QRange::I8_NARROW,
        IntType::U8.full_range(),
        IntType::I4.full_range(),
        IntType::U2.full_range(),
        QRange::new(-65536, 65535).unwrap(),
        IntType::I32.full_range(),
    ];
    for i in 0..400_000u32 {
        let bits = next();
        let x = if i % 16 == 0 {
            special[(bits as usize >> 8) % special.len()]
        } else {
            f32::from_bits(bits as u32)
        };
        // Scales: mostly ordinary, sometimes subnormal or huge.
        let scale = match i % 7 {
            0 => f32::from_bits(((bits >> 32) as u32) & 0x007f_ffff | 1),
            1 => f32::from_bits(((bits >> 32) as u32) & 0x7f7f_ffff),
            _ => f32::from_bits(0x3000_0000 + ((bits >> 40) as u32 & 0x0fff_ffff)),
        };
        if scale == 0.0 {
            continue;
        }
        let range = ranges[(bits >> 20) as usize % ranges.len()];
        let (lo, hi) = (range.qmin(), range.qmax());
        let span = i64::from(hi) - i64::from(lo) + 1;
        let zp = (i64::from(lo) + ((bits >> 3) % span as u64) as i64) as i32;
        // Zero points lie in their range (every caller's parameters are checked).
        let i8_zp = ((bits >> 3) % 256) as i32 - 128;
        assert_eq!(
            quantize(x, scale, i8_zp, QRange::I8, NanRule::RangeMin) as i32,
            before::program_step(x, scale, i8_zp),
            "{x:e} / {scale:e} + {i8_zp}"
        );
        assert_eq!(
            xq::quant::QParams::new(scale, zp, lo, hi).unwrap().quantize(x),
            before::quantizer(x, scale, zp, lo, hi),
            "{x:e} / {scale:e} + {zp} in {range:?}"
        );
        assert_eq!(
            quantize(x, scale, zp, range, NanRule::Zero) as i64,
            before::onnx(x, scale, zp, lo as f32, hi as f32),
            "{x:e} / {scale:e} + {zp} in {range:?}"
        );
    }
}
