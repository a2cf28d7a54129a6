//! Add / Sub / Mul / Div with a constant operand in QDQ graphs, and Sub of two activations.
//!
//! - `DQ(x) op c → Q` (and `c op DQ(x)`, with or without a fused Relu) where `c` is a
//!   one-element constant or a per-channel one (`[1, C, 1, 1]`, `[C, 1, 1]`, on a rank-4 or a
//!   rank-3 value), a plain `f32` initializer or a DequantizeLinear of an int8 / uint8 one:
//!   one lookup step (a 256-entry table, or one per channel), no interpreted node, and the
//!   program's output equals the interpreter's (`PartitionMode::None`, the QDQ graph in
//!   float) bit for bit over every input byte of every channel and saturating extremes, also
//!   per operator and saved and loaded.
//! - `DQ(a) - DQ(b) → Q`: one binary step within one step of the interpreter.
//! - Given ONNX Runtime's int8 inputs, each step is within one step of ONNX Runtime's unfused
//!   execution (graph optimizations disabled; needs `XQ_PYTHON`).
//! - Refused with a reason: a constant varying along two axes, one broadcasting the input to
//!   a larger shape, Div of two activations, a NaN before a clamp. A program whose table
//!   bytes are corrupt fails to load.

mod common;
mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode, Reason};
use xq::ir::op::{BinaryOp, QuantAttrs, UnaryOp};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorData, TensorInfo};
use xq::program::{KernelSpec, ProgramSpec, StepSpec};
use xq::runtime::{Program, ProgramOptions};

/// Qparams: input and output scale and zero point (in the stored type), and whether
/// tensors are uint8.
#[derive(Clone, Copy, Debug)]
struct QSet {
    x: (f32, i32),
    y: (f32, i32),
    unsigned: bool,
}

const QSETS: [QSet; 2] = [
    QSet {
        x: (0.05, 3),
        y: (0.07, -20),
        unsigned: false,
    },
    QSet {
        x: (0.047, 131),
        y: (0.061, 120),
        unsigned: true,
    },
];

/// A constant operand.
#[derive(Clone, Debug)]
enum Const {
    /// A plain `f32` initializer.
    F32(Vec<usize>, Vec<f32>),
    /// `DequantizeLinear(q, scale, zero point)` of an int8 (or, `unsigned`, uint8) initializer.
    Dq {
        dims: Vec<usize>,
        q: Vec<i32>,
        scale: f32,
        zp: i32,
        unsigned: bool,
    },
}

fn node(op: Op, inputs: &[&str], output: &str) -> Node {
    Node {
        name: format!("{}_{output}", op.onnx_name()),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    }
}

fn quant() -> Op {
    Op::QuantizeLinear(QuantAttrs::default())
}

fn dequant() -> Op {
    Op::DequantizeLinear(QuantAttrs::default())
}

fn ints(v: &[i32], unsigned: bool) -> TensorData {
    if unsigned {
        TensorData::U8(v.iter().map(|&x| x as u8).collect())
    } else {
        TensorData::I8(v.iter().map(|&x| x as i8).collect())
    }
}

/// `x_in → Q → DQ → x`, `x op c` (or `c op x`) `[→ Relu] → u → Q → DQ → y`.
fn graph(q: QSet, dims: &[usize], op: BinaryOp, c: &Const, constant_first: bool, relu: bool) -> Graph {
    let mut nodes = vec![
        node(quant(), &["x_in", "sx", "zx"], "x_q"),
        node(dequant(), &["x_q", "sx", "zx"], "x"),
    ];
    let mut g = Graph {
        name: "binary_constant".into(),
        inputs: vec![TensorInfo::known("x_in", DType::F32, dims)],
        outputs: vec![TensorInfo {
            name: "y".into(),
            dtype: DType::F32,
            shape: None,
        }],
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
    match c {
        Const::F32(d, v) => {
            g.initializers
                .insert("c".into(), Tensor::from_f32(d.clone(), v.clone()).unwrap());
        }
        Const::Dq {
            dims,
            q,
            scale,
            zp,
            unsigned,
        } => {
            g.initializers.insert(
                "c_q".into(),
                Tensor::new(dims.clone(), ints(q, *unsigned)).unwrap(),
            );
            g.initializers.insert("c_s".into(), Tensor::scalar_f32(*scale));
            g.initializers.insert("c_z".into(), zero_point(*zp, *unsigned));
            nodes.push(node(dequant(), &["c_q", "c_s", "c_z"], "c"));
        }
    }
    let operands: [&str; 2] = if constant_first { ["c", "x"] } else { ["x", "c"] };
    let v = if relu { "v" } else { "u" };
    nodes.push(node(Op::Binary(op), &operands, v));
    if relu {
        nodes.push(node(Op::Unary(UnaryOp::Relu), &["v"], "u"));
    }
    nodes.push(node(quant(), &["u", "sy", "zy"], "u_q"));
    nodes.push(node(dequant(), &["u_q", "sy", "zy"], "y"));
    g.nodes = nodes;
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

/// Inputs of `dims` (the last two axes 16 × 16, or the last 256): every stored input byte once
/// per leading index, exactly its dequantized value; and saturating extremes.
fn inputs(q: QSet, dims: &[usize]) -> Vec<Tensor> {
    let n: usize = dims.iter().product();
    let (s, zp) = q.x;
    let lowest = if q.unsigned { 0 } else { -128 };
    let bytes = (0..n as i32)
        .map(|i| (lowest + i % 256 - zp) as f32 * s)
        .collect();
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
        .map(|v| Tensor::from_f32(dims.to_vec(), v).unwrap())
        .collect()
}

fn run(program: &Program, x: &Tensor) -> Vec<u32> {
    let y = program.execute(std::slice::from_ref(x)).unwrap();
    y[0].as_f32().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// (table steps, per-channel table steps, binary steps, interpreted steps) of a program.
fn step_counts(spec: &ProgramSpec) -> (usize, usize, usize, usize) {
    let mut counts = (0, 0, 0, 0);
    for s in &spec.steps {
        match s {
            StepSpec::Kernel {
                kernel: KernelSpec::Lut(_),
                ..
            } => counts.0 += 1,
            StepSpec::Kernel {
                kernel: KernelSpec::ChannelLut(_),
                ..
            } => counts.1 += 1,
            StepSpec::Kernel {
                kernel: KernelSpec::Binary(_),
                ..
            } => counts.2 += 1,
            StepSpec::Interp { .. } => counts.3 += 1,
            _ => {}
        }
    }
    counts
}

/// The constants of each form: (name, input dims, constant, whether per-channel).
fn constants() -> Vec<(&'static str, Vec<usize>, Const, bool)> {
    let nchw = vec![2, 3, 16, 16];
    let chw = vec![3, 16, 16];
    vec![
        ("f32 scalar", nchw.clone(), Const::F32(vec![], vec![0.37]), false),
        ("f32 [1]", nchw.clone(), Const::F32(vec![1], vec![-1.5]), false),
        (
            "int8 scalar behind DQ",
            nchw.clone(),
            Const::Dq {
                dims: vec![],
                q: vec![77],
                scale: 0.03,
                zp: -4,
                unsigned: false,
            },
            false,
        ),
        (
            "uint8 scalar behind DQ",
            nchw.clone(),
            Const::Dq {
                dims: vec![1],
                q: vec![200],
                scale: 0.02,
                zp: 128,
                unsigned: true,
            },
            false,
        ),
        (
            "f32 [1, C, 1, 1]",
            nchw.clone(),
            Const::F32(vec![1, 3, 1, 1], vec![0.485, -0.456, 2.406]),
            true,
        ),
        (
            "f32 [C, 1, 1] into NCHW",
            nchw.clone(),
            Const::F32(vec![3, 1, 1], vec![0.229, 0.224, -0.225]),
            true,
        ),
        (
            "f32 [C, 1, 1] into CHW",
            chw.clone(),
            Const::F32(vec![3, 1, 1], vec![1.25, -0.5, 3.0]),
            true,
        ),
        (
            "f32 [W] along the last axis",
            nchw.clone(),
            Const::F32(vec![16], (0..16).map(|i| 0.25 + i as f32 * 0.125).collect()),
            true,
        ),
        (
            "int8 [1, C, 1, 1] behind DQ",
            nchw.clone(),
            Const::Dq {
                dims: vec![1, 3, 1, 1],
                q: vec![-90, 40, 127],
                scale: 0.02,
                zp: 0,
                unsigned: false,
            },
            true,
        ),
    ]
}

const OPS: [BinaryOp; 4] = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div];

#[test]
fn each_form_is_one_lookup_equal_to_the_interpreter_bit_for_bit() {
    for q in QSETS {
        for (name, dims, c, per_channel) in constants() {
            for op in OPS {
                for (constant_first, relu) in [(false, false), (true, false), (false, true)] {
                    let what = format!(
                        "{} {name} first={constant_first} relu={relu} {q:?}",
                        op.onnx_name()
                    );
                    let g = graph(q, &dims, op, &c, constant_first, relu);
                    let (spec, report) = lower(&g, PartitionMode::All).unwrap();
                    assert!(report.refused.is_empty(), "{what}: {}", report.text());
                    assert_eq!(report.interpreted_nodes, 0, "{what}: {}", report.text());
                    let want = if per_channel { (0, 1, 0, 0) } else { (1, 0, 0, 0) };
                    assert_eq!(step_counts(&spec), want, "{what}: {:?}", spec.steps);
                    let (programs, interpreter) = delegated_and_interpreted(&g, spec);
                    for (k, x) in inputs(q, &dims).iter().enumerate() {
                        let want = run(&interpreter, x);
                        for (p, program) in programs.iter().enumerate() {
                            assert_eq!(run(program, x), want, "{what} input {k} program {p}");
                        }
                    }
                }
            }
        }
    }
}

/// `a → Q → DQ`, `b → Q → DQ` (other qparams), `DQ(a) - DQ(b)` (b broadcast when `b_dims`
/// differs) `→ Q → DQ → y`.
fn sub_graph(q: QSet, a_dims: &[usize], b_dims: &[usize]) -> Graph {
    let mut g = Graph {
        name: "sub".into(),
        inputs: vec![
            TensorInfo::known("a", DType::F32, a_dims),
            TensorInfo::known("b", DType::F32, b_dims),
        ],
        outputs: vec![TensorInfo {
            name: "y".into(),
            dtype: DType::F32,
            shape: None,
        }],
        ..Graph::default()
    };
    for (name, t) in [
        ("sx", Tensor::scalar_f32(q.x.0)),
        ("sb", Tensor::scalar_f32(q.x.0 * 1.7)),
        ("sy", Tensor::scalar_f32(q.y.0)),
        ("zx", zero_point(q.x.1, q.unsigned)),
        ("zb", zero_point(q.x.1 - 9, q.unsigned)),
        ("zy", zero_point(q.y.1, q.unsigned)),
    ] {
        g.initializers.insert(name.into(), t);
    }
    g.nodes = vec![
        node(quant(), &["a", "sx", "zx"], "a_q"),
        node(dequant(), &["a_q", "sx", "zx"], "a_dq"),
        node(quant(), &["b", "sb", "zb"], "b_q"),
        node(dequant(), &["b_q", "sb", "zb"], "b_dq"),
        node(Op::Binary(BinaryOp::Sub), &["a_dq", "b_dq"], "u"),
        node(quant(), &["u", "sy", "zy"], "u_q"),
        node(dequant(), &["u_q", "sy", "zy"], "y"),
    ];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

fn seeded(n: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 331) as f32 - 165.0) * scale)
        .collect()
}

#[test]
fn sub_of_two_activations_is_one_binary_step_within_a_step_of_the_interpreter() {
    for q in QSETS {
        for (a_dims, b_dims) in [
            (vec![1, 3, 8, 8], vec![1, 3, 8, 8]),
            (vec![1, 3, 8, 8], vec![1, 3, 1, 1]),
            (vec![1, 3, 1, 1], vec![2, 3, 8, 8]),
            (vec![2, 5], vec![5]),
        ] {
            let what = format!("{a_dims:?} - {b_dims:?} {q:?}");
            let g = sub_graph(q, &a_dims, &b_dims);
            let (spec, report) = lower(&g, PartitionMode::All).unwrap();
            assert!(report.refused.is_empty(), "{what}: {}", report.text());
            assert_eq!(step_counts(&spec), (0, 0, 1, 0), "{what}: {:?}", spec.steps);
            let (programs, interpreter) = delegated_and_interpreted(&g, spec);
            let na: usize = a_dims.iter().product();
            let nb: usize = b_dims.iter().product();
            let a = Tensor::from_f32(a_dims.clone(), seeded(na, 1, q.x.0)).unwrap();
            let b = Tensor::from_f32(b_dims.clone(), seeded(nb, 2, q.x.0 * 1.5)).unwrap();
            let want = interpreter.execute(&[a.clone(), b.clone()]).unwrap();
            let want = want[0].as_f32().unwrap();
            for (p, program) in programs.iter().enumerate() {
                let got = program.execute(&[a.clone(), b.clone()]).unwrap();
                let (within, _, worst) = step_agreement(got[0].as_f32().unwrap(), want, q.y.0);
                assert!(within == 1.0, "{what} program {p}: worst {worst} steps");
            }
        }
    }
}

#[test]
fn malformed_forms_are_refused_with_a_reason() {
    let q = QSETS[0];
    let dims = [1usize, 3, 4, 4];
    let cases: Vec<(&str, Graph, Reason)> = vec![
        (
            "constant along two axes",
            graph(
                q,
                &dims,
                BinaryOp::Div,
                &Const::F32(vec![1, 3, 4, 1], (1..=12).map(|v| v as f32).collect()),
                false,
                false,
            ),
            Reason::Shape,
        ),
        (
            "constant broadcasting the input",
            graph(
                q,
                &[1, 1, 4, 4],
                BinaryOp::Sub,
                &Const::F32(vec![1, 3, 1, 1], vec![1.0, 2.0, 3.0]),
                false,
                false,
            ),
            Reason::Shape,
        ),
        (
            "0 / 0 before a Relu",
            graph(
                q,
                &dims,
                BinaryOp::Div,
                &Const::F32(vec![], vec![0.0]),
                false,
                true,
            ),
            Reason::QParams,
        ),
        (
            "an int32 constant",
            {
                let mut g = graph(
                    q,
                    &dims,
                    BinaryOp::Mul,
                    &Const::F32(vec![], vec![2.0]),
                    false,
                    false,
                );
                g.initializers
                    .insert("c".into(), Tensor::new(vec![], TensorData::I32(vec![2])).unwrap());
                g
            },
            Reason::Dtype,
        ),
    ];
    for (name, g, reason) in cases {
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        let r = report
            .refused
            .iter()
            .find(|r| r.op == "Div" || r.op == "Sub" || r.op == "Mul")
            .unwrap_or_else(|| panic!("{name}: not refused: {}", report.text()));
        assert_eq!(r.reason, reason, "{name}: {}", report.text());
        assert!(!r.detail.is_empty(), "{name}");
        assert_eq!(step_counts(&spec).0 + step_counts(&spec).1, 0, "{name}");
    }
    // Div of two activations: no int8 kernel.
    let mut g = sub_graph(q, &dims, &dims);
    g.nodes[4].op = Op::Binary(BinaryOp::Div);
    let (_, report) = lower(&g, PartitionMode::All).unwrap();
    let r = report
        .refused
        .iter()
        .find(|r| r.op == "Div")
        .expect("Div refused");
    assert_eq!(r.reason, Reason::UnsupportedOp, "{}", report.text());
}

#[test]
fn corrupt_table_bytes_fail_to_load() {
    let q = QSETS[0];
    let c = Const::F32(vec![1, 3, 1, 1], vec![0.5, 1.0, 2.0]);
    let g = graph(q, &[1, 3, 4, 4], BinaryOp::Mul, &c, false, false);
    let (spec, _) = lower(&g, PartitionMode::All).unwrap();
    let tables = spec
        .steps
        .iter()
        .find_map(|s| match s {
            StepSpec::Kernel {
                kernel: KernelSpec::ChannelLut(k),
                ..
            } => Some(k.tables.clone()),
            _ => None,
        })
        .unwrap();
    let bytes = Program::new(spec, ProgramOptions { threads: 1 })
        .unwrap()
        .to_bytes()
        .unwrap();
    assert_eq!(tables.len(), 768, "three channels of 256 entries");
    wrong_blob_lengths_fail_to_load(&bytes, &tables);
}

/// Given ONNX Runtime's int8 inputs, each lowered step's output is within one int8 step of
/// ONNX Runtime's (graph optimizations disabled).
#[test]
fn each_form_is_within_a_step_of_onnxruntime() {
    let Some(python) = python("delegate_binary_constants") else {
        return;
    };
    let mut graphs = Vec::new();
    for (k, q) in QSETS.into_iter().enumerate() {
        // Every form on int8; on uint8, one scalar and one per-channel constant.
        for (i, (name, dims, c, _)) in constants().into_iter().enumerate() {
            if k > 0 && i % 4 != 3 {
                continue;
            }
            for op in OPS {
                let g = graph(q, &dims, op, &c, op == BinaryOp::Sub, false);
                graphs.push((format!("{} {name} {q:?}", op.onnx_name()), dims.clone(), q, g));
            }
        }
        // Sub of two activations: one input quantized twice (the dump script takes one input).
        let dims = vec![1, 3, 16, 16];
        let mut g = sub_graph(q, &dims, &dims);
        g.inputs.truncate(1);
        g.nodes[2].inputs[0] = "a".into();
        g.validate().unwrap();
        g.infer_shapes().unwrap();
        graphs.push((format!("sub of two activations {q:?}"), dims, q, g));
    }
    for (what, dims, q, g) in graphs {
        let (spec, _) = lower(&g, PartitionMode::All).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model.onnx");
        xq::onnx::save_file(&g, &model).unwrap();
        let n: usize = dims.iter().product();
        let samples = 2;
        let x: Vec<f32> = (0..samples)
            .flat_map(|s| inputs(q, &dims)[s].as_f32().unwrap().to_vec())
            .map(|v| v.clamp(-1e4, 1e4))
            .collect();
        let npy = tmp.path().join("x.npy");
        let mut all = vec![samples];
        all.extend(&dims);
        write_npy(&npy, &all, &x);
        assert_eq!(x.len(), samples * n);
        let dump = tmp.path().join("ort");
        ort_quantized_dump(&python, &model, &npy, &dump);
        let layers = layer_agreement(&spec, &dump);
        assert!(!layers.is_empty(), "{what}: no step compared");
        for l in &layers {
            assert!(l.worst <= LAYER_TOLERANCE_STEPS, "{what}: {l:?}");
        }
    }
}

/// A float model `x → Conv → (· - mean[c]) → (· / 6) → (· * gamma[c]) → (· + 3) → (· / std[c])
/// → Conv` with per-channel constants `[1, C, 1, 1]` and `[C, 1, 1]` and scalar ones.
fn float_constants_model() -> Graph {
    let mut g = Graph {
        name: "constants".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &[1, 3, 7, 9])],
        outputs: vec![TensorInfo {
            name: "y".into(),
            dtype: DType::F32,
            shape: None,
        }],
        ..Graph::default()
    };
    let w = |n: usize, seed: usize| seeded(n, seed, 0.01);
    for (name, t) in [
        ("w1", Tensor::from_f32(vec![4, 3, 1, 1], w(12, 3)).unwrap()),
        ("w2", Tensor::from_f32(vec![2, 4, 1, 1], w(8, 5)).unwrap()),
        (
            "mean",
            Tensor::from_f32(vec![1, 4, 1, 1], vec![0.1, -0.2, 0.3, 0.05]).unwrap(),
        ),
        ("six", Tensor::scalar_f32(6.0)),
        (
            "gamma",
            Tensor::from_f32(vec![4, 1, 1], vec![1.5, -0.5, 2.0, 0.75]).unwrap(),
        ),
        ("three", Tensor::scalar_f32(3.0)),
        (
            "std",
            Tensor::from_f32(vec![1, 4, 1, 1], vec![0.229, 0.224, 0.225, 0.5]).unwrap(),
        ),
    ] {
        g.initializers.insert(name.into(), t);
    }
    let nodes: [(&str, &str, [&str; 2], &str); 7] = [
        ("conv1", "Conv", ["x", "w1"], "c1"),
        ("sub_mean", "Sub", ["c1", "mean"], "s"),
        ("div_six", "Div", ["s", "six"], "d"),
        ("mul_gamma", "Mul", ["d", "gamma"], "m"),
        ("add_three", "Add", ["m", "three"], "a"),
        ("div_std", "Div", ["a", "std"], "n"),
        ("conv2", "Conv", ["n", "w2"], "y"),
    ];
    for (name, op, inputs, out) in nodes {
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        xq::onnx::add_onnx_node(&mut g, op, name, &inputs, &[out.to_string()], &[]).unwrap();
    }
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

#[test]
fn libxq_quantizer_output_is_delegated_whole() {
    use xq::quant::{QuantConfig, Quantizer};
    let graph = float_constants_model();
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    q.prepare(&graph).unwrap();
    for seed in 0..6 {
        let x = Tensor::from_f32(vec![1, 3, 7, 9], seeded(189, seed, 0.02)).unwrap();
        q.calibrate(&[x]).unwrap();
    }
    let qdq = q.convert().unwrap();
    let annotation = q.report();
    for name in ["sub_mean", "div_six", "mul_gamma", "add_three", "div_std"] {
        assert!(
            annotation
                .lines()
                .any(|l| l.starts_with(name) && l.contains("quantized static")),
            "{name}: {annotation}"
        );
    }
    let (spec, report) = lower(&qdq, PartitionMode::All).unwrap();
    assert!(report.refused.is_empty(), "{}", report.text());
    assert_eq!(report.interpreted_nodes, 0, "{}", report.text());
    assert_eq!(report.partitions.len(), 1, "{}", report.text());
    let (tables, channel_tables, _, _) = step_counts(&spec);
    assert_eq!((tables, channel_tables), (2, 3), "{:?}", spec.steps);
    let (programs, interpreter) = delegated_and_interpreted(&qdq, spec);
    for seed in 10..13 {
        let x = Tensor::from_f32(vec![1, 3, 7, 9], seeded(189, seed, 0.02)).unwrap();
        let want = run(&interpreter, &x);
        for (p, program) in programs.iter().enumerate() {
            // Conv requantizes exactly like the interpreter's QDQ reference; the tables are
            // the graph's float operators: the whole program equals the interpreter.
            assert_eq!(run(program, &x), want, "seed {seed} program {p}");
        }
    }
}

/// `DQ(x) → Sub(mean[c]) → Div(std[c]) → Mul(0.5) → Q` (ONNX Runtime leaves Sub unquantized,
/// so its float output feeds the next operator): one table per channel equal to the
/// interpreter bit for bit; per-channel constants along two different axes stay unfused.
#[test]
fn a_chain_with_per_channel_constants_is_one_table_per_channel() {
    for q in QSETS {
        let dims = [2usize, 3, 16, 16];
        let mut g = graph(
            q,
            &dims,
            BinaryOp::Sub,
            &Const::F32(vec![1, 3, 1, 1], vec![0.485, 0.456, 0.406]),
            false,
            false,
        );
        let at = g.nodes.iter().position(|n| n.outputs[0] == "u").unwrap();
        g.nodes[at].outputs[0] = "s".into();
        g.initializers.insert(
            "std".into(),
            Tensor::from_f32(vec![3, 1, 1], vec![0.229, 0.224, 0.225]).unwrap(),
        );
        g.initializers.insert("half".into(), Tensor::scalar_f32(0.5));
        g.nodes
            .insert(at + 1, node(Op::Binary(BinaryOp::Div), &["s", "std"], "d"));
        g.nodes
            .insert(at + 2, node(Op::Binary(BinaryOp::Mul), &["d", "half"], "u"));
        g.validate().unwrap();
        g.infer_shapes().unwrap();
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert!(report.refused.is_empty(), "{q:?}: {}", report.text());
        assert_eq!(step_counts(&spec), (0, 1, 0, 0), "{q:?}: {:?}", spec.steps);
        let (programs, interpreter) = delegated_and_interpreted(&g, spec);
        for (k, x) in inputs(q, &dims).iter().enumerate() {
            let want = run(&interpreter, x);
            for (p, program) in programs.iter().enumerate() {
                assert_eq!(run(program, x), want, "{q:?} input {k} program {p}");
            }
        }
        // The divisor along the last axis instead: two axes, not one table per channel.
        g.initializers.insert(
            "std".into(),
            Tensor::from_f32(vec![16], (1..=16).map(|v| v as f32 * 0.1).collect()).unwrap(),
        );
        g.infer_shapes().unwrap();
        let (spec, _) = lower(&g, PartitionMode::All).unwrap();
        let (tables, channel_tables, _, interpreted) = step_counts(&spec);
        assert_eq!((tables, channel_tables), (0, 0), "{:?}", spec.steps);
        assert!(interpreted > 0);
    }
}

/// ONNX Runtime's quantize_static of [`float_constants_model`] (int8 and uint8 activations;
/// it leaves the Sub unquantized): delegated whole, and each step given ONNX Runtime's int8
/// inputs within one step of ONNX Runtime's unfused execution.
#[test]
fn onnxruntime_quantize_static_output_is_delegated_whole_and_within_a_step() {
    let Some(python) = python("delegate_binary_constants") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let float = tmp.path().join("float.onnx");
    xq::onnx::save_file(&float_constants_model(), &float).unwrap();
    for (name, extra) in [("int8", &[][..]), ("uint8", &["--u8"][..])] {
        let random = |n: &str| std::path::PathBuf::from(format!("random:{n}"));
        let model = ort_qdq(
            &python,
            &float,
            &random("8"),
            &random("2"),
            tmp.path(),
            name,
            extra,
        );
        let qdq = xq::interp::simplify_with_shapes(
            xq::onnx::load_file(&model).unwrap(),
            &[("x", [1usize, 3, 7, 9].as_slice())],
        )
        .unwrap();
        let (spec, report) = lower(&qdq, PartitionMode::All).unwrap();
        assert!(report.refused.is_empty(), "{name}: {}", report.text());
        assert_eq!(report.interpreted_nodes, 0, "{name}: {}", report.text());
        assert_eq!(report.partitions.len(), 1, "{name}: {}", report.text());
        let x = tmp.path().join(format!("{name}_x.npy"));
        assert!(x.exists(), "{name}: make_qdq.py wrote no evaluation samples");
        let dump = tmp.path().join(format!("{name}_ort"));
        ort_quantized_dump(&python, &model, &x, &dump);
        let layers = layer_agreement(&spec, &dump);
        print_layer_agreement(&layers, true);
        assert!(layers.len() >= 5, "{name}: {layers:?}");
        assert_layers_within_tolerance(name, &layers);
    }
}
