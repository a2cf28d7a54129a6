//! Standalone Relu / Clip and PRelu with a constant slope between DequantizeLinear and
//! QuantizeLinear, and Pad (constant, reflect, edge, wrap; requantized when the output's
//! qparams differ) of 4-D NCHW values stored NHWC, in QDQ graphs built here.
//!
//! - Each form: nothing refused, nothing interpreted, the expected step (a 256-entry table, one
//!   table per channel, or a block copy), and the program's output equal to the interpreter's
//!   (`PartitionMode::None`, the QDQ graph in float) bit for bit on every input byte and on
//!   saturating extremes, also lowered per operator and saved and loaded; each step gives the
//!   same bytes under every ISA this CPU has.
//! - Given ONNX Runtime's int8 inputs, each step is within one int8 step of ONNX Runtime's
//!   reference session with graph optimizations disabled (needs `XQ_PYTHON`).
//! - Refused forms carry a reason; corrupt program bytes fail to load without a panic.

mod common;
mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode, Reason};
use xq::ir::op::{BinaryOp, PadMode, QuantAttrs, ReduceKind, UnaryOp};
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

const QSETS: [QSet; 3] = [
    QSet {
        x: (0.05, 3),
        y: (0.03, -100),
        unsigned: false,
    },
    QSet {
        x: (0.047, 131),
        y: (0.021, 10),
        unsigned: true,
    },
    // Equal qparams (what the quantizer gives a standalone Relu / Clip or a Pad).
    QSet {
        x: (0.04, -7),
        y: (0.04, -7),
        unsigned: false,
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

fn quant() -> Op {
    Op::QuantizeLinear(QuantAttrs::default())
}

fn dequant() -> Op {
    Op::DequantizeLinear(QuantAttrs::default())
}

/// The step a form lowers to.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Lut,
    ChannelLut,
    Copy,
    Reduce,
    GlobalAvgPool,
}

/// A form: `x_in → Q → DQ → x`, `nodes` (reading `x`, writing `u`), `u → Q → DQ → y`.
struct Form {
    name: String,
    dims: Vec<usize>,
    nodes: Vec<Node>,
    constants: Vec<(&'static str, Tensor)>,
    kind: Kind,
}

fn graph(q: QSet, f: &Form) -> Graph {
    let mut g = Graph {
        name: "clip_prelu_pad".into(),
        inputs: vec![TensorInfo::known("x_in", DType::F32, &f.dims)],
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
    for (name, t) in &f.constants {
        g.initializers.insert(name.to_string(), t.clone());
    }
    g.nodes = vec![
        node(quant(), &["x_in", "sx", "zx"], "x_q"),
        node(dequant(), &["x_q", "sx", "zx"], "x"),
    ];
    g.nodes.extend(f.nodes.iter().cloned());
    g.nodes.push(node(quant(), &["u", "sy", "zy"], "u_q"));
    g.nodes.push(node(dequant(), &["u_q", "sy", "zy"], "y"));
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

/// Inputs of `dims`: every stored input byte (cycling), exactly its dequantized value; and
/// saturating extremes.
fn inputs(q: QSet, dims: &[usize]) -> Vec<Tensor> {
    let n: usize = dims.iter().product();
    let (s, zp) = q.x;
    let lowest = if q.unsigned { 0 } else { -128 };
    let bytes = (0..n as i32)
        .map(|i| (lowest + (i * 7) % 256 - zp) as f32 * s)
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

/// The kernel steps of a program.
fn kernels(spec: &ProgramSpec) -> Vec<&KernelSpec> {
    spec.steps
        .iter()
        .filter_map(|s| match s {
            StepSpec::Kernel { kernel, .. } => Some(kernel),
            _ => None,
        })
        .collect()
}

fn kind(k: &KernelSpec) -> Option<Kind> {
    match k {
        KernelSpec::Lut(_) => Some(Kind::Lut),
        KernelSpec::ChannelLut(_) => Some(Kind::ChannelLut),
        KernelSpec::Copy(_) => Some(Kind::Copy),
        KernelSpec::Reduce(_) => Some(Kind::Reduce),
        KernelSpec::GlobalAvgPool(_) => Some(Kind::GlobalAvgPool),
        _ => None,
    }
}

fn form(
    name: &str,
    dims: &[usize],
    nodes: Vec<Node>,
    constants: Vec<(&'static str, Tensor)>,
    kind: Kind,
) -> Form {
    Form {
        name: name.into(),
        dims: dims.to_vec(),
        nodes,
        constants,
        kind,
    }
}

const NCHW: [usize; 4] = [2, 3, 8, 16];

/// Standalone Relu and Clip.
fn clamp_forms() -> Vec<Form> {
    let relu = Op::Unary(UnaryOp::Relu);
    vec![
        form(
            "Relu",
            &NCHW,
            vec![node(relu.clone(), &["x"], "u")],
            vec![],
            Kind::Lut,
        ),
        form(
            "Clip(-0.5, 2)",
            &NCHW,
            vec![node(Op::Clip, &["x", "lo", "hi"], "u")],
            vec![("lo", Tensor::scalar_f32(-0.5)), ("hi", Tensor::scalar_f32(2.0))],
            Kind::Lut,
        ),
        form(
            "Clip(min 0.3) on rank 2",
            &[6, 40],
            vec![node(Op::Clip, &["x", "lo"], "u")],
            vec![("lo", Tensor::scalar_f32(0.3))],
            Kind::Lut,
        ),
        form(
            "Clip(max 1) then Relu",
            &NCHW,
            vec![node(Op::Clip, &["x", "", "hi"], "c"), node(relu, &["c"], "u")],
            vec![("hi", Tensor::from_f32(vec![1], vec![1.0]).unwrap())],
            Kind::Lut,
        ),
    ]
}

fn prelu() -> Op {
    Op::Binary(BinaryOp::PRelu)
}

/// PRelu with a constant slope: one element, or per channel.
fn prelu_forms() -> Vec<Form> {
    let slope = |dims: Vec<usize>, v: Vec<f32>| Tensor::from_f32(dims, v).unwrap();
    let x_slope = vec![node(prelu(), &["x", "slope"], "u")];
    vec![
        form(
            "PRelu slope scalar",
            &NCHW,
            x_slope.clone(),
            vec![("slope", Tensor::scalar_f32(0.25))],
            Kind::Lut,
        ),
        form(
            "PRelu slope [1] (negative)",
            &NCHW,
            x_slope.clone(),
            vec![("slope", slope(vec![1], vec![-1.5]))],
            Kind::Lut,
        ),
        form(
            "PRelu slope [C, 1, 1]",
            &NCHW,
            x_slope.clone(),
            vec![("slope", slope(vec![3, 1, 1], vec![0.1, 0.5, 2.0]))],
            Kind::ChannelLut,
        ),
        form(
            "PRelu slope [1, C, 1, 1] then Relu",
            &NCHW,
            vec![
                node(prelu(), &["x", "slope"], "p"),
                node(Op::Unary(UnaryOp::Relu), &["p"], "u"),
            ],
            vec![("slope", slope(vec![1, 3, 1, 1], vec![-0.3, 0.0, 0.7]))],
            Kind::ChannelLut,
        ),
        form(
            "PRelu slope [C, 1, 1] on CHW",
            &[3, 8, 16],
            x_slope.clone(),
            vec![("slope", slope(vec![3, 1, 1], vec![0.2, 0.01, 1.0]))],
            Kind::ChannelLut,
        ),
        form(
            "PRelu slope int8 [1, C, 1, 1] behind DQ",
            &NCHW,
            vec![
                node(dequant(), &["slope_q", "slope_s", "slope_z"], "slope"),
                node(prelu(), &["x", "slope"], "u"),
            ],
            vec![
                (
                    "slope_q",
                    Tensor::new(vec![1, 3, 1, 1], TensorData::I8(vec![12, -40, 127])).unwrap(),
                ),
                ("slope_s", Tensor::scalar_f32(0.01)),
                ("slope_z", zero_point(0, false)),
            ],
            Kind::ChannelLut,
        ),
    ]
}

fn pad_op(mode: PadMode) -> Op {
    Op::Pad { mode }
}

fn pads(v: &[i64]) -> Tensor {
    Tensor::vec_i64(v.to_vec())
}

/// Pad of a 4-D NCHW value (stored NHWC) in each mode.
fn pad_forms() -> Vec<Form> {
    let constant = pad_op(PadMode::Constant);
    vec![
        form(
            "Pad constant 0 on H, W",
            &NCHW,
            vec![node(constant.clone(), &["x", "pads"], "u")],
            vec![("pads", pads(&[0, 0, 1, 2, 0, 0, 3, 1]))],
            Kind::Copy,
        ),
        form(
            "Pad constant 0.37 on N, C, H, W with a crop",
            &NCHW,
            vec![node(constant.clone(), &["x", "pads", "value"], "u")],
            vec![
                ("pads", pads(&[1, 2, 0, -3, 0, 1, 2, 1])),
                ("value", Tensor::scalar_f32(0.37)),
            ],
            Kind::Copy,
        ),
        form(
            "Pad constant -0.2 on axes [2, 3] then Relu",
            &NCHW,
            vec![
                node(constant, &["x", "pads", "value", "axes"], "p"),
                node(Op::Unary(UnaryOp::Relu), &["p"], "u"),
            ],
            vec![
                ("pads", pads(&[2, 0, 1, 1])),
                ("value", Tensor::from_f32(vec![1], vec![-0.2]).unwrap()),
                ("axes", Tensor::vec_i64(vec![-2, 3])),
            ],
            Kind::Copy,
        ),
        form(
            "Pad reflect on H, W",
            &NCHW,
            vec![node(pad_op(PadMode::Reflect), &["x", "pads"], "u")],
            vec![("pads", pads(&[0, 0, 2, 3, 0, 0, 1, 2]))],
            Kind::Copy,
        ),
        form(
            "Pad edge on C, H, W",
            &NCHW,
            vec![node(pad_op(PadMode::Edge), &["x", "pads"], "u")],
            vec![("pads", pads(&[0, 1, 3, 0, 0, 2, 1, 4]))],
            Kind::Copy,
        ),
        form(
            "Pad wrap on W",
            &NCHW,
            vec![node(pad_op(PadMode::Wrap), &["x", "pads"], "u")],
            vec![("pads", pads(&[0, 0, 0, 2, 0, 0, 0, 3]))],
            Kind::Copy,
        ),
    ]
}

fn reduce_op(kind: ReduceKind, keepdims: bool) -> Op {
    Op::Reduce {
        kind,
        keepdims,
        noop_with_empty_axes: false,
    }
}

/// ReduceMean / ReduceMax over various axes, dims kept or not.
fn reduce_forms() -> Vec<Form> {
    let (mean, max) = (ReduceKind::Mean, ReduceKind::Max);
    let axes = |v: &[i64]| vec![("axes", Tensor::vec_i64(v.to_vec()))];
    let with_axes = |kind, keep| vec![node(reduce_op(kind, keep), &["x", "axes"], "u")];
    vec![
        form(
            "ReduceMean over C, kept",
            &NCHW,
            with_axes(mean, true),
            axes(&[1]),
            Kind::Reduce,
        ),
        form(
            "ReduceMean over C, W",
            &NCHW,
            with_axes(mean, false),
            axes(&[1, -1]),
            Kind::Reduce,
        ),
        form(
            "ReduceMean over N, H, W",
            &NCHW,
            with_axes(mean, true),
            axes(&[0, 2, 3]),
            Kind::Reduce,
        ),
        form(
            "ReduceMean over H, W",
            &NCHW,
            with_axes(mean, false),
            axes(&[3, 2]),
            Kind::GlobalAvgPool,
        ),
        form(
            "ReduceMean of rank 2 over the last axis",
            &[6, 40],
            with_axes(mean, true),
            axes(&[-1]),
            Kind::Reduce,
        ),
        form(
            "ReduceMax over H, W, kept",
            &NCHW,
            with_axes(max, true),
            axes(&[2, 3]),
            Kind::Reduce,
        ),
        form(
            "ReduceMax over C",
            &NCHW,
            with_axes(max, false),
            axes(&[1]),
            Kind::Reduce,
        ),
        form(
            "ReduceMax over every axis",
            &NCHW,
            vec![node(reduce_op(max, false), &["x"], "u")],
            vec![],
            Kind::Reduce,
        ),
    ]
}

/// Lowers each form under each qparams set and checks that it is delegated as one step of its
/// kind, identical under every ISA and within one output step of the interpreter.
fn check_forms_within_a_step(forms: &[Form]) {
    for q in QSETS {
        for f in forms {
            let what = format!("{} {q:?}", f.name);
            let g = graph(q, f);
            let (spec, report) = lower(&g, PartitionMode::All).unwrap();
            assert!(report.refused.is_empty(), "{what}: {}", report.text());
            assert_eq!(report.interpreted_nodes, 0, "{what}: {}", report.text());
            let ks = kernels(&spec);
            assert_eq!(ks.len(), 1, "{what}: {:?}", spec.steps);
            assert_eq!(kind(ks[0]), Some(f.kind), "{what}: {:?}", spec.steps);
            let x_bytes: Vec<i8> = (0..spec.values[ks[0].inputs()[0]].numel())
                .map(|i| (i * 37 % 256) as u8 as i8)
                .collect();
            assert_step_bit_identical_under_every_isa(ks[0], &spec.values, &x_bytes, &what);
            let (programs, interpreter) = delegated_and_interpreted(&g, spec);
            for (k, x) in inputs(q, &f.dims).iter().enumerate() {
                let want = interpreter.execute(std::slice::from_ref(x)).unwrap();
                let want = want[0].as_f32().unwrap();
                for (p, program) in programs.iter().enumerate() {
                    let got = program.execute(std::slice::from_ref(x)).unwrap();
                    let (within, _, worst) = step_agreement(got[0].as_f32().unwrap(), want, q.y.0);
                    assert_eq!(within, 1.0, "{what} input {k} program {p}: worst {worst} steps");
                }
            }
        }
    }
}

/// Lowers each form under each qparams set and checks it against the interpreter bit for bit
/// and under every ISA.
fn check_forms(forms: &[Form]) {
    for q in QSETS {
        for f in forms {
            let what = format!("{} {q:?}", f.name);
            let g = graph(q, f);
            let (spec, report) = lower(&g, PartitionMode::All).unwrap();
            assert!(report.refused.is_empty(), "{what}: {}", report.text());
            assert_eq!(report.interpreted_nodes, 0, "{what}: {}", report.text());
            let ks = kernels(&spec);
            assert_eq!(ks.len(), 1, "{what}: {:?}", spec.steps);
            assert_eq!(kind(ks[0]), Some(f.kind), "{what}: {:?}", spec.steps);
            let x_bytes: Vec<i8> = (0..spec.values[ks[0].inputs()[0]].numel())
                .map(|i| (i * 37 % 256) as u8 as i8)
                .collect();
            assert_step_bit_identical_under_every_isa(ks[0], &spec.values, &x_bytes, &what);
            let (programs, interpreter) = delegated_and_interpreted(&g, spec);
            for (k, x) in inputs(q, &f.dims).iter().enumerate() {
                let want = run(&interpreter, x);
                for (p, program) in programs.iter().enumerate() {
                    assert_eq!(run(program, x), want, "{what} input {k} program {p}");
                }
            }
        }
    }
}

#[test]
fn standalone_relu_and_clip_are_one_table_equal_to_the_interpreter() {
    check_forms(&clamp_forms());
}

#[test]
fn prelu_with_a_constant_slope_is_one_table_or_one_per_channel_equal_to_the_interpreter() {
    check_forms(&prelu_forms());
}

#[test]
fn pad_in_every_mode_is_one_copy_equal_to_the_interpreter() {
    check_forms(&pad_forms());
}

#[test]
fn reduce_mean_and_max_over_any_axes_are_one_step_within_a_step_of_the_interpreter() {
    check_forms_within_a_step(&reduce_forms());
}

#[test]
fn refused_forms_carry_a_reason() {
    let q = QSETS[0];
    let clip_bound_input = {
        // Clip whose bound is an activation.
        let f = form(
            "Clip by an activation",
            &NCHW,
            vec![node(Op::Clip, &["x", "x", ""], "u")],
            vec![],
            Kind::Lut,
        );
        graph(q, &f)
    };
    let prelu_graph = |name: &str, nodes: Vec<Node>, constants: Vec<(&'static str, Tensor)>| {
        graph(q, &form(name, &NCHW, nodes, constants, Kind::Lut))
    };
    let pad_graph = |value: f32| {
        let f = form(
            "Pad",
            &NCHW,
            vec![node(pad_op(PadMode::Constant), &["x", "pads", "value"], "u")],
            vec![
                ("pads", pads(&[0, 0, 1, 1, 0, 0, 1, 1])),
                ("value", Tensor::scalar_f32(value)),
            ],
            Kind::Copy,
        );
        graph(q, &f)
    };
    let cases: Vec<(&str, Graph, &str, Reason)> = vec![
        ("Pad value above the grid", pad_graph(1e6), "Pad", Reason::QParams),
        (
            "Pad value below the grid",
            pad_graph(-1.0),
            "Pad",
            Reason::QParams,
        ),
        ("Pad value NaN", pad_graph(f32::NAN), "Pad", Reason::QParams),
        (
            "ReduceMean with axes from an activation",
            {
                let f = form(
                    "ReduceMean",
                    &NCHW,
                    vec![
                        node(
                            Op::Shape {
                                start: 0,
                                end: Some(1),
                            },
                            &["x"],
                            "axes",
                        ),
                        node(reduce_op(ReduceKind::Mean, true), &["x", "axes"], "u"),
                    ],
                    vec![],
                    Kind::Reduce,
                );
                graph(q, &f)
            },
            "ReduceMean",
            Reason::NonConstantWeight,
        ),
        (
            "ReduceSum",
            graph(
                q,
                &form(
                    "ReduceSum",
                    &NCHW,
                    vec![node(reduce_op(ReduceKind::Sum, true), &["x", "axes"], "u")],
                    vec![("axes", Tensor::vec_i64(vec![1]))],
                    Kind::Reduce,
                ),
            ),
            "ReduceSum",
            Reason::UnsupportedOp,
        ),
        (
            "Clip bound not constant",
            clip_bound_input,
            "Clip",
            Reason::NonConstantWeight,
        ),
        (
            "PRelu slope an activation",
            prelu_graph("slope x", vec![node(prelu(), &["x", "x"], "u")], vec![]),
            "PRelu",
            Reason::NonConstantWeight,
        ),
        (
            "PRelu slope along two axes",
            prelu_graph(
                "slope [C, H, 1]",
                vec![node(prelu(), &["x", "slope"], "u")],
                vec![(
                    "slope",
                    Tensor::from_f32(vec![3, 8, 1], (0..24).map(|i| i as f32 / 24.0).collect()).unwrap(),
                )],
            ),
            "PRelu",
            Reason::Shape,
        ),
    ];
    for (name, g, op, reason) in cases {
        let (_, report) = lower(&g, PartitionMode::All).unwrap();
        let r = report
            .refused
            .iter()
            .find(|r| r.op == op)
            .unwrap_or_else(|| panic!("{name}: not refused: {}", report.text()));
        assert_eq!(r.reason, reason, "{name}: {}", report.text());
        assert!(!r.detail.is_empty(), "{name}");
    }
}

/// Given ONNX Runtime's int8 inputs, each lowered step is within one int8 step of ONNX
/// Runtime's (graph optimizations disabled).
#[test]
fn each_op_form_is_within_a_step_of_onnxruntime() {
    let Some(python) = python("delegate_clip_prelu_pad") else {
        return;
    };
    let forms: Vec<Form> = clamp_forms()
        .into_iter()
        .chain(prelu_forms())
        .chain(pad_forms())
        .chain(reduce_forms())
        .collect();
    for (k, q) in QSETS.into_iter().enumerate() {
        for (i, f) in forms.iter().enumerate() {
            // Every form on the first qparams; one per form family on the others.
            if k > 0 && i % 2 == 1 {
                continue;
            }
            let what = format!("{} {q:?}", f.name);
            let g = graph(q, f);
            let (spec, _) = lower(&g, PartitionMode::All).unwrap();
            let tmp = tempfile::tempdir().unwrap();
            let model = tmp.path().join("model.onnx");
            xq::onnx::save_file(&g, &model).unwrap();
            let x: Vec<f32> = inputs(q, &f.dims)[0].as_f32().unwrap().to_vec();
            let npy = tmp.path().join("x.npy");
            let mut all = vec![1];
            all.extend(&f.dims);
            write_npy(&npy, &all, &x);
            let dump = tmp.path().join("ort");
            ort_quantized_dump(&python, &model, &npy, &dump);
            let layers = layer_agreement(&spec, &dump);
            assert!(!layers.is_empty(), "{what}: no step compared");
            assert_layers_within_tolerance(&what, &layers);
        }
    }
}

#[test]
fn truncated_programs_fail_to_load() {
    for f in clamp_forms().iter().take(1) {
        let (spec, _) = lower(&graph(QSETS[0], f), PartitionMode::All).unwrap();
        let bytes = Program::new(spec, ProgramOptions { threads: 1 })
            .unwrap()
            .to_bytes()
            .unwrap();
        for cut in [bytes.len() - 1, bytes.len() / 2, bytes.len() - 300] {
            let loaded = Program::load_bytes(
                xq::format::ProgramBytes::copy_from(&bytes[..cut]).unwrap(),
                ProgramOptions { threads: 1 },
            );
            assert!(loaded.is_err(), "{}: cut at {cut}", f.name);
        }
    }
}

#[test]
fn corrupt_per_channel_tables_fail_to_load() {
    let f = &prelu_forms()[2];
    let (spec, _) = lower(&graph(QSETS[0], f), PartitionMode::All).unwrap();
    let tables = kernels(&spec)
        .iter()
        .find_map(|k| match k {
            KernelSpec::ChannelLut(k) => Some(k.tables.clone()),
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

/// Deterministic values in `[-scale, scale)`.
fn seeded(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    noise(n, seed).into_iter().map(|v| v * scale).collect()
}

/// `x → Conv → PRelu(slope [C, 1, 1]) → Conv → PRelu(one slope) → Relu → y` in float.
fn float_prelu_model() -> Graph {
    let mut g = Graph {
        name: "prelu".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &[1, 3, 7, 9])],
        outputs: vec![TensorInfo {
            name: "y".into(),
            dtype: DType::F32,
            shape: None,
        }],
        ..Graph::default()
    };
    for (name, t) in [
        (
            "w1",
            Tensor::from_f32(vec![4, 3, 1, 1], seeded(12, 3, 0.5)).unwrap(),
        ),
        (
            "w2",
            Tensor::from_f32(vec![2, 4, 1, 1], seeded(8, 5, 0.5)).unwrap(),
        ),
        (
            "slope1",
            Tensor::from_f32(vec![4, 1, 1], vec![0.25, -0.5, 0.1, 1.5]).unwrap(),
        ),
        ("slope2", Tensor::from_f32(vec![1], vec![0.2]).unwrap()),
    ] {
        g.initializers.insert(name.into(), t);
    }
    let nodes: [(&str, &str, &[&str], &str); 4] = [
        ("conv1", "Conv", &["x", "w1"], "c1"),
        ("prelu1", "PRelu", &["c1", "slope1"], "p1"),
        ("conv2", "Conv", &["p1", "w2"], "c2"),
        ("prelu2", "PRelu", &["c2", "slope2"], "y"),
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
fn libxq_quantizer_output_with_prelu_is_delegated_whole() {
    use xq::quant::{QuantConfig, Quantizer};
    let graph = float_prelu_model();
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    q.prepare(&graph).unwrap();
    for seed in 0..6 {
        let x = Tensor::from_f32(vec![1, 3, 7, 9], seeded(189, seed, 2.0)).unwrap();
        q.calibrate(&[x]).unwrap();
    }
    let qdq = q.convert().unwrap();
    let annotation = q.report();
    for name in ["prelu1", "prelu2"] {
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
    let ks = kernels(&spec);
    assert_eq!(ks.iter().filter(|k| kind(k) == Some(Kind::ChannelLut)).count(), 1);
    assert_eq!(ks.iter().filter(|k| kind(k) == Some(Kind::Lut)).count(), 1);
    let (programs, interpreter) = delegated_and_interpreted(&qdq, spec);
    for seed in 10..13 {
        let x = Tensor::from_f32(vec![1, 3, 7, 9], seeded(189, seed, 2.0)).unwrap();
        let want = run(&interpreter, &x);
        for (p, program) in programs.iter().enumerate() {
            assert_eq!(run(program, &x), want, "seed {seed} program {p}");
        }
    }
}
