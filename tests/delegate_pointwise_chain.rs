//! Subgraphs of element-wise float operators between one int8 input and one int8 output
//! (SiLU as `x * Sigmoid(x)`, hardswish written out, GELU with Erf or tanh, ...) lowered as
//! one table lookup. For each form, on int8 and uint8 tensors over all 256 input bytes and
//! saturating extremes: one lookup step and no interpreted node, and the program's output
//! equals the interpreter's (`PartitionMode::None`) bit for bit, also per operator and saved
//! and loaded. A form whose float intermediate has another reader stays unfused (and still
//! equals the interpreter).

mod common;
mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode};
use xq::ir::op::{BinaryOp, QuantAttrs, UnaryOp};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorInfo};
use xq::program::{KernelSpec, ProgramSpec, StepSpec};
use xq::runtime::Program;

const DIMS: [usize; 4] = [1, 4, 8, 8];

/// Qparams: input scale and zero point, output scale and zero point (in the stored type),
/// and whether tensors are uint8.
#[derive(Clone, Copy, Debug)]
struct QSet {
    x: (f32, i32),
    y: (f32, i32),
    unsigned: bool,
}

const QSETS: [QSet; 2] = [
    QSet {
        x: (0.05, 3),
        y: (0.03, -60),
        unsigned: false,
    },
    QSet {
        x: (0.047, 131),
        y: (0.021, 20),
        unsigned: true,
    },
];

fn node(op: Op, inputs: &[&str], output: &str) -> Node {
    Node {
        name: format!("{}_{output}", op.onnx_name()),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    }
}

fn unary(u: UnaryOp, x: &str, out: &str) -> Node {
    node(Op::Unary(u), &[x], out)
}

fn binary(b: BinaryOp, l: &str, r: &str, out: &str) -> Node {
    node(Op::Binary(b), &[l, r], out)
}

fn clip(x: &str, lo: &str, hi: &str, out: &str) -> Node {
    node(Op::Clip, &[x, lo, hi], out)
}

/// The one-element constants the forms use.
const CONSTANTS: &[(&str, f32)] = &[
    ("zero", 0.0),
    ("half", 0.5),
    ("one", 1.0),
    ("three", 3.0),
    ("six", 6.0),
    ("sixth", 1.0 / 6.0),
    ("sqrt2", std::f32::consts::SQRT_2),
    ("sqrt_2_pi", 0.797_884_6),
    ("c044715", 0.044715),
];

/// Each form: a name and its nodes from `x` (the dequantized input) to `u`.
fn forms() -> Vec<(&'static str, Vec<Node>)> {
    use BinaryOp::*;
    use UnaryOp::*;
    let hard_sigmoid = Op::HardSigmoid {
        alpha: 1.0 / 6.0,
        beta: 0.5,
    };
    vec![
        ("silu", vec![unary(Sigmoid, "x", "s"), binary(Mul, "x", "s", "u")]),
        (
            "silu, gate first",
            vec![unary(Sigmoid, "x", "s"), binary(Mul, "s", "x", "u")],
        ),
        (
            "x * clip(x + 3, 0, 6) / 6",
            vec![
                binary(Add, "x", "three", "a"),
                clip("a", "zero", "six", "c"),
                binary(Mul, "x", "c", "m"),
                binary(Div, "m", "six", "u"),
            ],
        ),
        (
            "x * (1/6) * min(relu(3 + x), 6)",
            vec![
                binary(Mul, "x", "sixth", "m"),
                binary(Add, "three", "x", "a"),
                unary(Relu, "a", "r"),
                binary(Min, "r", "six", "c"),
                binary(Mul, "m", "c", "u"),
            ],
        ),
        (
            "x * min(max(x + 3, 0), 6) / 6",
            vec![
                binary(Add, "x", "three", "a"),
                binary(Max, "a", "zero", "p"),
                binary(Min, "p", "six", "c"),
                binary(Mul, "x", "c", "m"),
                binary(Div, "m", "six", "u"),
            ],
        ),
        (
            "x * hardsigmoid(x)",
            vec![node(hard_sigmoid, &["x"], "h"), binary(Mul, "x", "h", "u")],
        ),
        (
            "gelu: x * (1 + erf(x / sqrt2)) * 0.5",
            vec![
                binary(Div, "x", "sqrt2", "d"),
                unary(Erf, "d", "e"),
                binary(Add, "e", "one", "a"),
                binary(Mul, "x", "a", "m"),
                binary(Mul, "m", "half", "u"),
            ],
        ),
        (
            "gelu: x * 0.5 * (1 + erf(x / sqrt2))",
            vec![
                binary(Mul, "x", "half", "m"),
                binary(Div, "x", "sqrt2", "d"),
                unary(Erf, "d", "e"),
                binary(Add, "one", "e", "a"),
                binary(Mul, "m", "a", "u"),
            ],
        ),
        (
            "gelu, tanh form written out",
            vec![
                binary(Pow, "x", "three", "p"),
                binary(Mul, "c044715", "p", "k"),
                binary(Add, "x", "k", "s"),
                binary(Mul, "s", "sqrt_2_pi", "t"),
                unary(Tanh, "t", "th"),
                binary(Add, "th", "one", "a"),
                binary(Mul, "x", "a", "m"),
                binary(Mul, "m", "half", "u"),
            ],
        ),
        (
            "mish: x * tanh(softplus(x))",
            vec![
                unary(Softplus, "x", "sp"),
                unary(Tanh, "sp", "t"),
                binary(Mul, "x", "t", "u"),
            ],
        ),
    ]
}

fn quant() -> Op {
    Op::QuantizeLinear(QuantAttrs::default())
}

fn dequant() -> Op {
    Op::DequantizeLinear(QuantAttrs::default())
}

/// `x_in → Q → DQ → x`, the form's nodes to `u`, `u → Q → DQ → y`; `outputs` lists the graph
/// outputs besides `y`.
fn graph(q: QSet, form: Vec<Node>, extra: Vec<Node>, outputs: &[&str]) -> Graph {
    let mut nodes = vec![
        node(quant(), &["x_in", "sx", "zx"], "x_q"),
        node(dequant(), &["x_q", "sx", "zx"], "x"),
    ];
    nodes.extend(form);
    nodes.push(node(quant(), &["u", "sy", "zy"], "u_q"));
    nodes.push(node(dequant(), &["u_q", "sy", "zy"], "y"));
    nodes.extend(extra);
    let mut g = Graph {
        name: "pointwise_chain".into(),
        inputs: vec![TensorInfo::known("x_in", DType::F32, &DIMS)],
        outputs: std::iter::once("y")
            .chain(outputs.iter().copied())
            .map(|o| TensorInfo {
                name: o.into(),
                dtype: DType::F32,
                shape: None,
            })
            .collect(),
        ..Graph::default()
    };
    for (name, t) in [
        ("sx", Tensor::scalar_f32(q.x.0)),
        ("sy", Tensor::scalar_f32(q.y.0)),
        ("zx", zero_point(q.x.1, q.unsigned)),
        ("zy", zero_point(q.y.1, q.unsigned)),
    ] {
        g.initializers.insert(name.into(), t);
    }
    for &(name, v) in CONSTANTS {
        g.initializers.insert(name.into(), Tensor::scalar_f32(v));
    }
    g.nodes = nodes;
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

/// Inputs: every stored input byte once (exactly its dequantized value) and saturating
/// extremes.
fn inputs(q: QSet) -> Vec<Tensor> {
    let n: usize = DIMS.iter().product();
    let (s, zp) = q.x;
    let lowest = if q.unsigned { 0 } else { -128 };
    let bytes = (0..n as i32).map(|i| (lowest + i - zp) as f32 * s).collect();
    let extremes = (0..n)
        .map(|i| match i % 6 {
            0 => f32::INFINITY,
            1 => f32::NEG_INFINITY,
            2 => 1e30,
            3 => -1e30,
            4 => 200.0 * s,
            _ => -200.0 * s,
        })
        .collect();
    [bytes, extremes]
        .into_iter()
        .map(|v| Tensor::from_f32(DIMS.to_vec(), v).unwrap())
        .collect()
}

fn run(program: &Program, x: &Tensor) -> Vec<Vec<u32>> {
    let y = program.execute(std::slice::from_ref(x)).unwrap();
    y.iter()
        .map(|t| t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// (lookup steps, interpreted steps) of a program.
fn step_counts(spec: &ProgramSpec) -> (usize, usize) {
    let luts = spec
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                StepSpec::Kernel {
                    kernel: KernelSpec::Lut(_),
                    ..
                }
            )
        })
        .count();
    let interpreted = spec
        .steps
        .iter()
        .filter(|s| matches!(s, StepSpec::Interp { .. }))
        .count();
    (luts, interpreted)
}

fn assert_equals_interpreter(name: &str, q: QSet, g: &Graph, spec: ProgramSpec) {
    let (programs, interpreter) = delegated_and_interpreted(g, spec);
    for (k, x) in inputs(q).iter().enumerate() {
        let want = run(&interpreter, x);
        for (p, program) in programs.iter().enumerate() {
            assert_eq!(run(program, x), want, "{name} {q:?} input {k} program {p}");
        }
    }
}

#[test]
fn each_form_is_one_table_equal_to_the_interpreter_bit_for_bit() {
    for q in QSETS {
        for (name, form) in forms() {
            let g = graph(q, form, Vec::new(), &[]);
            let (spec, report) = lower(&g, PartitionMode::All).unwrap();
            assert!(report.refused.is_empty(), "{name} {q:?}: {}", report.text());
            assert_eq!(step_counts(&spec), (1, 0), "{name}: {:?}", spec.steps);
            assert_equals_interpreter(name, q, &g, spec);
        }
    }
}

#[test]
fn a_second_dequantize_of_the_same_input_is_the_same_input() {
    let q = QSETS[0];
    let form = vec![
        node(dequant(), &["x_q", "sx", "zx"], "x2"),
        unary(UnaryOp::Sigmoid, "x", "s"),
        binary(BinaryOp::Mul, "x2", "s", "u"),
    ];
    let g = graph(q, form, Vec::new(), &[]);
    let (spec, report) = lower(&g, PartitionMode::All).unwrap();
    assert!(report.refused.is_empty(), "{}", report.text());
    assert_eq!(step_counts(&spec), (1, 0), "{:?}", spec.steps);
    assert_equals_interpreter("two dequantizes", q, &g, spec);
}

#[test]
fn an_intermediate_with_another_reader_stays_unfused() {
    let q = QSETS[0];
    let silu = || {
        vec![
            unary(UnaryOp::Sigmoid, "x", "s"),
            binary(BinaryOp::Mul, "x", "s", "u"),
        ]
    };
    // The gate is also quantized for another reader, or is a graph output itself.
    let quantized_gate = vec![
        node(quant(), &["s", "sy", "zy"], "s_q"),
        node(dequant(), &["s_q", "sy", "zy"], "s_dq"),
    ];
    let cases = [
        ("gate quantized too", graph(q, silu(), quantized_gate, &["s_dq"])),
        ("gate is a graph output", graph(q, silu(), Vec::new(), &["s"])),
    ];
    for (name, g) in cases {
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        let (luts, interpreted) = step_counts(&spec);
        assert_eq!(luts, 0, "{name}: {:?}", spec.steps);
        assert!(interpreted >= 2, "{name}: {:?}", spec.steps);
        assert!(
            report.refused.iter().any(|r| r.op == "Mul"),
            "{name}: {}",
            report.text()
        );
        assert_equals_interpreter(name, q, &g, spec);
    }
}

#[test]
fn a_node_reading_another_quantized_tensor_stays_unfused() {
    let q = QSETS[0];
    // `x * sigmoid(z)` with `z` another int8 tensor: not a function of `x` alone.
    let form = vec![
        node(quant(), &["x", "sy", "zy"], "z_q"),
        node(dequant(), &["z_q", "sy", "zy"], "z"),
        unary(UnaryOp::Sigmoid, "z", "s"),
        binary(BinaryOp::Mul, "x", "s", "u"),
    ];
    let g = graph(q, form, Vec::new(), &[]);
    let (spec, _) = lower(&g, PartitionMode::All).unwrap();
    assert_eq!(step_counts(&spec).0, 0, "{:?}", spec.steps);
    assert_equals_interpreter("two inputs", q, &g, spec);
}
