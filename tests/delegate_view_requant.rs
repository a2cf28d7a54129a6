//! Int8 views with other output qparams: `DQ → Reshape / Flatten / Squeeze / Unsqueeze → Q`
//! where the `Q` has its own scale and zero point (PyTorch's XNNPACKQuantizer observes a
//! view's output on its own, so PT2E exports leave such views). QDQ graphs built here:
//! `MaxPool(1×1) → Q → DQ → view → Q' → DQ`, on int8 and uint8 tensors. Each view is
//! delegated (nothing refused, nothing interpreted) as a copy through a requantizing table,
//! equals the interpreter (`PartitionMode::None`) bit for bit, also on two threads, per
//! operator and saved and loaded, and ONNX Runtime's reference session within one step; with
//! equal qparams it stays a plain move (no table). Corrupted programs are rejected.

mod common;
mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode};
use xq::ir::op::{PoolAttrs, QuantAttrs};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorInfo};
use xq::program::{KernelSpec, StepSpec};
use xq::runtime::{Program, ProgramOptions};

const DIMS: [usize; 4] = [2, 6, 3, 5];

fn node(name: &str, op: Op, inputs: &[&str], output: &str) -> Node {
    Node {
        name: name.into(),
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

/// The views tried: the op and its constant second input, if any.
fn views() -> Vec<(&'static str, Op, Option<Tensor>)> {
    vec![
        (
            "reshape",
            Op::Reshape { allowzero: false },
            Some(Tensor::vec_i64(vec![2, 3, -1])),
        ),
        ("flatten", Op::Flatten { axis: 1 }, None),
        ("unsqueeze", Op::Unsqueeze, Some(Tensor::vec_i64(vec![2]))),
        ("squeeze", Op::Squeeze, Some(Tensor::vec_i64(vec![2]))),
    ]
}

/// `Q → DQ → MaxPool(1×1) → Q → DQ → [Unsqueeze(2) →] view → Q(sy, zy) → DQ` (for Squeeze an
/// Unsqueeze with equal qparams first makes the axis to squeeze).
fn view_graph(op: &Op, shape: Option<&Tensor>, y: (f32, i32), unsigned: bool) -> Graph {
    let (sx, zx) = (0.04, if unsigned { 130 } else { -5 });
    let mut g = Graph {
        name: "view".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &DIMS)],
        ..Graph::default()
    };
    for (name, t) in [
        ("sx", Tensor::scalar_f32(sx)),
        ("sy", Tensor::scalar_f32(y.0)),
        ("zx", zero_point(zx, unsigned)),
        ("zy", zero_point(y.1, unsigned)),
        ("axis2", Tensor::vec_i64(vec![2])),
    ] {
        g.initializers.insert(name.into(), t);
    }
    let pool = PoolAttrs {
        kernel_shape: vec![1, 1],
        ..PoolAttrs::default()
    };
    g.nodes = vec![
        node("qx", quant(), &["x", "sx", "zx"], "x_q"),
        node("dqx", dequant(), &["x_q", "sx", "zx"], "x_dq"),
        node("pool", Op::MaxPool(pool), &["x_dq"], "p"),
        node("qp", quant(), &["p", "sx", "zx"], "p_q"),
        node("dqp", dequant(), &["p_q", "sx", "zx"], "p_dq"),
    ];
    let mut src = "p_dq";
    if matches!(op, Op::Squeeze) {
        g.nodes.extend([
            node("unsq", Op::Unsqueeze, &["p_dq", "axis2"], "u"),
            node("qu", quant(), &["u", "sx", "zx"], "u_q"),
            node("dqu", dequant(), &["u_q", "sx", "zx"], "u_dq"),
        ]);
        src = "u_dq";
    }
    let mut inputs = vec![src];
    if let Some(t) = shape {
        g.initializers.insert("shape".into(), t.clone());
        inputs.push("shape");
    }
    g.nodes.extend([
        node("view", op.clone(), &inputs, "v"),
        node("qv", quant(), &["v", "sy", "zy"], "v_q"),
        node("dqv", dequant(), &["v_q", "sy", "zy"], "y"),
    ]);
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    let dims = g.tensor_info("v").and_then(|i| i.concrete_shape()).unwrap();
    g.outputs = vec![TensorInfo::known("y", DType::F32, &dims)];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

fn input(seed: u32) -> Tensor {
    let n: usize = DIMS.iter().product();
    let v = noise(n, seed).into_iter().map(|v| v * 6.0).collect();
    Tensor::from_f32(DIMS.to_vec(), v).unwrap()
}

fn run(program: &Program, x: &Tensor) -> Vec<f32> {
    program.execute(std::slice::from_ref(x)).unwrap()[0]
        .as_f32()
        .unwrap()
        .to_vec()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// Output qparams other than the input's, then equal ones.
fn y_qparams(unsigned: bool) -> [(f32, i32); 2] {
    if unsigned {
        [(0.03, 120), (0.04, 130)]
    } else {
        [(0.07, 11), (0.04, -5)]
    }
}

#[test]
fn a_view_with_other_output_qparams_is_a_requantizing_copy_equal_to_the_interpreter() {
    for (name, op, shape) in views() {
        for unsigned in [false, true] {
            for (k, y) in y_qparams(unsigned).into_iter().enumerate() {
                let what = format!("{name} unsigned {unsigned} y {y:?}");
                let g = view_graph(&op, shape.as_ref(), y, unsigned);
                let (spec, report) = lower(&g, PartitionMode::All).unwrap();
                assert!(report.refused.is_empty(), "{what}: {}", report.text());
                assert_eq!(report.interpreted_nodes, 0, "{what}: {}", report.text());
                assert_eq!(report.partitions.len(), 1, "{what}: {}", report.text());
                let tables = spec
                    .steps
                    .iter()
                    .filter(|s| {
                        matches!(s, StepSpec::Kernel { node, kernel: KernelSpec::Copy(c), .. }
                            if node == "view" && c.table.is_some())
                    })
                    .count();
                assert_eq!(tables, usize::from(k == 0), "{what}: {:?}", spec.steps);
                let (programs, interpreter) = delegated_and_interpreted(&g, spec);
                for seed in 0..3 {
                    let x = input(seed);
                    let want = bits(&run(&interpreter, &x));
                    for (p, program) in programs.iter().enumerate() {
                        assert_eq!(bits(&run(program, &x)), want, "{what} program {p} seed {seed}");
                    }
                }
            }
        }
    }
}

#[test]
fn the_requantizing_copy_is_bit_identical_under_every_isa() {
    for unsigned in [false, true] {
        let (name, op, shape) = views().swap_remove(0);
        let g = view_graph(&op, shape.as_ref(), y_qparams(unsigned)[0], unsigned);
        let (spec, _) = lower(&g, PartitionMode::All).unwrap();
        let kernel = spec
            .steps
            .iter()
            .find_map(|s| match s {
                StepSpec::Kernel { node, kernel, .. } if node == "view" => Some(kernel.clone()),
                _ => None,
            })
            .unwrap();
        let n = spec.values[kernel.inputs()[0]].numel();
        let x: Vec<i8> = (0..n).map(|i| (i * 37 % 256) as u8 as i8).collect();
        assert_step_bit_identical_under_every_isa(&kernel, &spec.values, &x, name);
    }
}

#[test]
fn views_with_other_output_qparams_agree_with_onnxruntime() {
    let Some(python) = python("delegate_view_requant") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (name, op, shape) in views() {
        for unsigned in [false, true] {
            let y = y_qparams(unsigned)[0];
            let what = format!("{name} unsigned {unsigned}");
            let g = view_graph(&op, shape.as_ref(), y, unsigned);
            let model = dir.path().join("m.onnx");
            xq::onnx::save_file(&g, &model).unwrap();
            let x = input(7);
            let path = dir.path().join("x.npy");
            write_npy(&path, &DIMS, x.as_f32().unwrap());
            run_python(
                &python,
                &root().join("tests/python/run_onnx.py"),
                &[
                    model.to_str().unwrap(),
                    dir.path().join("ort").to_str().unwrap(),
                    path.to_str().unwrap(),
                ],
            );
            let ort = xq::npy::read(dir.path().join("ort0.npy")).unwrap();
            let (spec, _) = lower(&g, PartitionMode::All).unwrap();
            let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
            let ours = run(&program, &x);
            let (within, _, worst) = step_agreement(&ours, ort.as_f32().unwrap(), y.0);
            assert!(within == 1.0, "{what}: {within} within a step, worst {worst}");
        }
    }
}

#[test]
fn a_corrupted_requantizing_copy_is_rejected_without_panic() {
    let (_, op, shape) = views().swap_remove(0);
    let g = view_graph(&op, shape.as_ref(), y_qparams(false)[0], false);
    let (spec, _) = lower(&g, PartitionMode::All).unwrap();
    let bytes = Program::new(spec, ProgramOptions { threads: 1 })
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec();
    xq::fuzzing::program_load(&bytes);
    corrupted_program_loads(&bytes);
}
