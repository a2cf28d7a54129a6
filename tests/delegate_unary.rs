//! Int8 element-wise unary operators lowered as table lookups, one row of [`OPS`] per
//! operator. For each row:
//!
//! - `MaxPool → op → Transpose` on int8 and on uint8 tensors (QDQ graphs built here, no
//!   Python): nothing is refused and the operator is delegated; the program's output equals
//!   the interpreter's (`PartitionMode::None`) bit for bit, on inputs that cover every input
//!   byte and both saturating ends; per-operator partitions and the program saved and loaded
//!   give the same bits.
//! - `Conv → op → Conv`, exported to ONNX: each delegated step, given ONNX Runtime's int8
//!   inputs, is within one int8 step of ONNX Runtime's unfused DequantizeLinear → op →
//!   QuantizeLinear (needs `XQ_PYTHON`; see `tests/python/ort_reference.py`).

mod common;
mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode};
use xq::ir::op::{ConvAttrs, PoolAttrs, QuantAttrs, UnaryOp};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorData, TensorInfo};
use xq::program::{KernelSpec, StepSpec};
use xq::runtime::{Program, ProgramOptions};

/// The operators lowered as table lookups.
const OPS: &[Op] = &[
    Op::Unary(UnaryOp::HardSwish),
    Op::Unary(UnaryOp::Sigmoid),
    Op::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    },
    Op::Unary(UnaryOp::Tanh),
    Op::LeakyRelu { alpha: 0.1 },
    Op::Elu { alpha: 1.0 },
    Op::Celu { alpha: 1.5 },
    Op::Selu {
        alpha: 1.673_263_2,
        gamma: 1.050_701,
    },
    Op::Unary(UnaryOp::Softplus),
    Op::Unary(UnaryOp::Softsign),
    Op::Unary(UnaryOp::Mish),
    Op::Gelu {
        tanh_approximation: false,
    },
    Op::Gelu {
        tanh_approximation: true,
    },
];

/// Per-tensor qparams of a graph: input scale and zero point, output scale and zero point
/// (zero points in the stored type), and whether tensors are uint8.
#[derive(Clone, Copy, Debug)]
struct QSet {
    x: (f32, i32),
    y: (f32, i32),
    unsigned: bool,
}

const QSETS: [QSet; 2] = [
    QSet {
        x: (0.05, 3),
        y: (0.02, -100),
        unsigned: false,
    },
    QSet {
        x: (0.06, 140),
        y: (0.004, 0),
        unsigned: true,
    },
];

fn node(name: &str, op: Op, inputs: &[&str], output: &str) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    }
}

/// A graph with float input `x` and output `y`, qparams `sx, zx, sy, zy` as initializers
/// and the given nodes.
fn graph(q: QSet, x: &[usize], y: &[usize], nodes: Vec<Node>) -> Graph {
    let mut g = Graph {
        name: "unary".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, x)],
        outputs: vec![TensorInfo::known("y", DType::F32, y)],
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
    g.nodes = nodes;
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

fn quant() -> Op {
    Op::QuantizeLinear(QuantAttrs::default())
}

fn dequant() -> Op {
    Op::DequantizeLinear(QuantAttrs::default())
}

const DIMS: [usize; 4] = [2, 8, 5, 7];

/// `Q → DQ → MaxPool(1×1) → Q → DQ → op → Q → DQ → Transpose(NHWC) → Q → DQ` (the MaxPool
/// and Transpose are byte moves, so the delegated graph computes exactly what the
/// interpreter does).
fn exact_graph(op: &Op, q: QSet) -> Graph {
    let pool = PoolAttrs {
        kernel_shape: vec![1, 1],
        ..PoolAttrs::default()
    };
    let [n, c, h, w] = DIMS;
    let nodes = vec![
        node("qx", quant(), &["x", "sx", "zx"], "x_q"),
        node("dqx", dequant(), &["x_q", "sx", "zx"], "x_dq"),
        node("pool", Op::MaxPool(pool), &["x_dq"], "p"),
        node("qp", quant(), &["p", "sx", "zx"], "p_q"),
        node("dqp", dequant(), &["p_q", "sx", "zx"], "p_dq"),
        node("op", op.clone(), &["p_dq"], "u"),
        node("qu", quant(), &["u", "sy", "zy"], "u_q"),
        node("dqu", dequant(), &["u_q", "sy", "zy"], "u_dq"),
        node(
            "nhwc",
            Op::Transpose {
                perm: Some(vec![0, 2, 3, 1]),
            },
            &["u_dq"],
            "t",
        ),
        node("qt", quant(), &["t", "sy", "zy"], "t_q"),
        node("dqt", dequant(), &["t_q", "sy", "zy"], "y"),
    ];
    graph(q, &DIMS, &[n, h, w, c], nodes)
}

/// Inputs for `q`: a sweep over every quantized input value and past both ends, seeded
/// pseudo-random values, and extremes (huge values and infinities, which saturate).
fn inputs(q: QSet) -> Vec<Tensor> {
    let n: usize = DIMS.iter().product();
    let s = q.x.0;
    let sweep = (0..n).map(|i| ((i % 300) as f32 - 150.0) * s + 0.3 * s).collect();
    let random = (0..n as u32)
        .map(|i| {
            let h = i.wrapping_mul(2_654_435_761) ^ 0x9e37_79b9;
            ((h >> 8) % 3001) as f32 / 10.0 - 150.0
        })
        .map(|v| v * s)
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
    [sweep, random, extremes]
        .into_iter()
        .map(|v| Tensor::from_f32(DIMS.to_vec(), v).unwrap())
        .collect()
}

fn run(program: &Program, x: &Tensor) -> Vec<u32> {
    let y = program.execute(std::slice::from_ref(x)).unwrap();
    y[0].as_f32().unwrap().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn unary_ops_are_delegated_and_equal_the_interpreter_bit_for_bit() {
    for op in OPS {
        let name = op.onnx_name();
        for q in QSETS {
            let g = exact_graph(op, q);
            let (spec, report) = lower(&g, PartitionMode::All).unwrap();
            assert!(report.refused.is_empty(), "{name} {q:?}: {}", report.text());
            assert_eq!(report.partitions.len(), 1, "{}", report.text());
            assert_eq!(report.partitions[0].ops.get(name), Some(&1), "{}", report.text());
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
            assert_eq!(luts, 1, "{name}: {:?}", spec.steps);
            let (per_op, _) = lower(&g, PartitionMode::PerOp).unwrap();
            let (none, _) = lower(&g, PartitionMode::None).unwrap();
            let bytes = Program::new(spec.clone(), ProgramOptions { threads: 1 })
                .unwrap()
                .to_bytes()
                .unwrap();
            let reloaded = xq::format::program_file::from_bytes(&bytes).unwrap();
            assert_eq!(reloaded.steps, spec.steps, "{name}: program file round trip");
            let loaded = Program::load_bytes(
                xq::format::ProgramBytes::copy_from(&bytes).unwrap(),
                ProgramOptions { threads: 2 },
            )
            .unwrap();
            let programs = [
                Program::new(spec, ProgramOptions { threads: 2 }).unwrap(),
                Program::new(per_op, ProgramOptions { threads: 1 }).unwrap(),
                loaded,
            ];
            let interpreter = Program::new(none, ProgramOptions { threads: 1 }).unwrap();
            for (k, x) in inputs(q).iter().enumerate() {
                let want = run(&interpreter, x);
                for (p, program) in programs.iter().enumerate() {
                    assert_eq!(run(program, x), want, "{name} {q:?} input {k} program {p}");
                }
            }
        }
    }
}

#[test]
fn a_clamp_after_the_op_folds_into_the_table_bit_for_bit() {
    let q = QSETS[0];
    for op in OPS {
        let mut g = exact_graph(op, q);
        // op → Clip(-0.1, 0.5) → Q
        g.initializers.insert("lo".into(), Tensor::scalar_f32(-0.1));
        g.initializers.insert("hi".into(), Tensor::scalar_f32(0.5));
        let at = g.nodes.iter().position(|n| n.name == "op").unwrap();
        g.nodes[at].outputs[0] = "u_raw".into();
        g.nodes
            .insert(at + 1, node("clip", Op::Clip, &["u_raw", "lo", "hi"], "u"));
        g.value_info.clear();
        g.validate().unwrap();
        g.infer_shapes().unwrap();
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert!(report.refused.is_empty(), "{}", report.text());
        let (none, _) = lower(&g, PartitionMode::None).unwrap();
        let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
        let interpreter = Program::new(none, ProgramOptions { threads: 1 }).unwrap();
        for x in inputs(q) {
            assert_eq!(run(&program, &x), run(&interpreter, &x), "{}", op.onnx_name());
        }
    }
}

/// `Q → DQ → Conv(3×3, DQ(w1)) → Q → DQ → op → Q → DQ → Conv(1×1, DQ(w2)) → Q → DQ`,
/// int8 weights per tensor.
fn conv_graph(op: &Op, q: QSet) -> Graph {
    let conv = |k: usize| {
        Op::Conv(ConvAttrs {
            kernel_shape: vec![k, k],
            strides: vec![1, 1],
            pads: vec![k / 2; 4],
            dilations: vec![1, 1],
            group: 1,
            ..ConvAttrs::default()
        })
    };
    let nodes = vec![
        node("qx", quant(), &["x", "sx", "zx"], "x_q"),
        node("dqx", dequant(), &["x_q", "sx", "zx"], "x_dq"),
        node("dqw1", dequant(), &["w1", "sw1"], "w1_dq"),
        node("conv1", conv(3), &["x_dq", "w1_dq"], "c1"),
        node("qc1", quant(), &["c1", "sx", "zx"], "c1_q"),
        node("dqc1", dequant(), &["c1_q", "sx", "zx"], "c1_dq"),
        node("op", op.clone(), &["c1_dq"], "u"),
        node("qu", quant(), &["u", "sy", "zy"], "u_q"),
        node("dqu", dequant(), &["u_q", "sy", "zy"], "u_dq"),
        node("dqw2", dequant(), &["w2", "sw2"], "w2_dq"),
        node("conv2", conv(1), &["u_dq", "w2_dq"], "c2"),
        node("qc2", quant(), &["c2", "sy", "zy"], "c2_q"),
        node("dqc2", dequant(), &["c2_q", "sy", "zy"], "y"),
    ];
    let weights = |n: usize, seed: usize| {
        let v = (0..n).map(|i| ((i * 37 + seed) % 41) as i8 - 20).collect();
        TensorData::I8(v)
    };
    let mut g = Graph {
        name: "unary_conv".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &[1, 4, 6, 6])],
        outputs: vec![TensorInfo::known("y", DType::F32, &[1, 4, 6, 6])],
        ..Graph::default()
    };
    for (name, t) in [
        ("sx", Tensor::scalar_f32(q.x.0)),
        ("sy", Tensor::scalar_f32(q.y.0)),
        ("zx", zero_point(q.x.1, q.unsigned)),
        ("zy", zero_point(q.y.1, q.unsigned)),
        ("sw1", Tensor::scalar_f32(0.01)),
        ("sw2", Tensor::scalar_f32(0.02)),
        ("w1", Tensor::new(vec![4, 4, 3, 3], weights(144, 3)).unwrap()),
        ("w2", Tensor::new(vec![4, 4, 1, 1], weights(16, 7)).unwrap()),
    ] {
        g.initializers.insert(name.into(), t);
    }
    g.nodes = nodes;
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

#[test]
fn unary_ops_between_convs_are_within_a_step_of_onnxruntime() {
    let Some(python) = python("delegate_unary") else {
        return;
    };
    for op in OPS {
        let name = op.onnx_name();
        for q in QSETS {
            let g = conv_graph(op, q);
            let (spec, report) = lower(&g, PartitionMode::All).unwrap();
            assert!(report.refused.is_empty(), "{name} {q:?}: {}", report.text());
            let tmp = tempfile::tempdir().unwrap();
            let model = tmp.path().join("model.onnx");
            xq::onnx::save_file(&g, &model).unwrap();
            let samples = 3;
            let per = 4 * 6 * 6;
            let x: Vec<f32> = (0..samples * per)
                .map(|i| ((i * 7919 % 331) as f32 - 165.0) * q.x.0)
                .collect();
            let inputs = tmp.path().join("x.npy");
            write_npy(&inputs, &[samples, 1, 4, 6, 6], &x);
            let dump = tmp.path().join("ort");
            ort_quantized_dump(&python, &model, &inputs, &dump);
            let layers = layer_agreement(&spec, &dump);
            print_layer_agreement(&layers, true);
            assert!(
                layers.iter().any(|l| l.node == "op"),
                "{name}: the lookup was not compared: {layers:?}"
            );
            assert_layers_within_tolerance(name, &layers);
        }
    }
}
