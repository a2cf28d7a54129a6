//! DepthToSpace (DCR and CRD) and SpaceToDepth (DCR and CRD) on int8 and uint8 values:
//! `Q → DQ → MaxPool(1×1) → Q → DQ → DepthToSpace / SpaceToDepth → Q' → DQ` with blocksize 2
//! and 3. Each is delegated (nothing refused, nothing interpreted) as one block copy, through a
//! requantizing table when `Q'` has other qparams, and equals the interpreter
//! (`PartitionMode::None`) bit for bit, on two threads, per operator and saved and loaded.
//! The float interpreter equals ONNX Runtime's reference session exactly and the QDQ graph is
//! within one step of it; libxq's quantizer lets the ops share their input's qparams; corrupted
//! programs are rejected without panic; a bad blocksize or shape is a clear error.

mod common;
mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode};
use xq::ir::op::{DepthSpaceMode, PoolAttrs, QuantAttrs};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorInfo};
use xq::onnx::AttrValue;
use xq::program::{KernelSpec, StepSpec};
use xq::runtime::{Program, ProgramOptions};

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

/// The cases: a name, the op and its input dimensions (NCHW).
fn cases() -> Vec<(String, Op, Vec<usize>)> {
    let mut v = Vec::new();
    for b in [2usize, 3] {
        for (m, mode) in [("dcr", DepthSpaceMode::Dcr), ("crd", DepthSpaceMode::Crd)] {
            v.push((
                format!("d2s {m} b{b}"),
                Op::DepthToSpace { blocksize: b, mode },
                vec![2, 2 * b * b, 3, 2],
            ));
            v.push((
                format!("s2d {m} b{b}"),
                Op::SpaceToDepth { blocksize: b, mode },
                vec![2, 3, 2 * b, 3 * b],
            ));
        }
    }
    v
}

/// `Q → DQ → MaxPool(1×1) → Q → DQ → op → Q(sy, zy) → DQ`.
fn qdq_graph(op: &Op, dims: &[usize], y: (f32, i32), unsigned: bool) -> Graph {
    let (sx, zx) = (0.04, if unsigned { 130 } else { -5 });
    let mut g = Graph {
        name: "depth_space".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, dims)],
        ..Graph::default()
    };
    for (name, t) in [
        ("sx", Tensor::scalar_f32(sx)),
        ("sy", Tensor::scalar_f32(y.0)),
        ("zx", zero_point(zx, unsigned)),
        ("zy", zero_point(y.1, unsigned)),
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
        node("move", op.clone(), &["p_dq"], "v"),
        node("qv", quant(), &["v", "sy", "zy"], "v_q"),
        node("dqv", dequant(), &["v_q", "sy", "zy"], "y"),
    ];
    finish(g, "v")
}

/// Sets the graph's output `y` to the shape inferred for `value`.
fn finish(mut g: Graph, value: &str) -> Graph {
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    let dims = g.tensor_info(value).and_then(|i| i.concrete_shape()).unwrap();
    g.outputs = vec![TensorInfo::known("y", DType::F32, &dims)];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

/// A float graph of `op` alone.
fn float_graph(op: &Op, dims: &[usize]) -> Graph {
    let mut g = Graph {
        name: "depth_space_f32".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, dims)],
        ..Graph::default()
    };
    g.nodes = vec![node("move", op.clone(), &["x"], "y")];
    finish(g, "y")
}

fn input(dims: &[usize], seed: u32) -> Tensor {
    let n: usize = dims.iter().product();
    let v = noise(n, seed).into_iter().map(|v| v * 6.0).collect();
    Tensor::from_f32(dims.to_vec(), v).unwrap()
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

/// The steps of node `move`'s kernel.
fn move_kernels(spec: &xq::program::ProgramSpec) -> Vec<&KernelSpec> {
    spec.steps
        .iter()
        .filter_map(|s| match s {
            StepSpec::Kernel { node, kernel, .. } if node == "move" => Some(kernel),
            _ => None,
        })
        .collect()
}

#[test]
fn depth_space_moves_are_one_block_copy_equal_to_the_interpreter() {
    for (name, op, dims) in cases() {
        for unsigned in [false, true] {
            for (k, y) in y_qparams(unsigned).into_iter().enumerate() {
                let what = format!("{name} unsigned {unsigned} y {y:?}");
                let g = qdq_graph(&op, &dims, y, unsigned);
                let (spec, report) = lower(&g, PartitionMode::All).unwrap();
                assert!(report.refused.is_empty(), "{what}: {}", report.text());
                assert_eq!(report.interpreted_nodes, 0, "{what}: {}", report.text());
                assert_eq!(report.partitions.len(), 1, "{what}: {}", report.text());
                let kernels = move_kernels(&spec);
                assert_eq!(kernels.len(), 1, "{what}: {:?}", spec.steps);
                let KernelSpec::Copy(copy) = kernels[0] else {
                    panic!("{what}: not a block copy: {:?}", kernels[0]);
                };
                assert_eq!(copy.table.is_some(), k == 0, "{what}");
                let (programs, interpreter) = delegated_and_interpreted(&g, spec);
                for seed in 0..2 {
                    let x = input(&dims, seed);
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
fn the_depth_space_copy_is_bit_identical_under_every_isa() {
    for (name, op, dims) in cases().into_iter().take(2) {
        for unsigned in [false, true] {
            let g = qdq_graph(&op, &dims, y_qparams(unsigned)[0], unsigned);
            let (spec, _) = lower(&g, PartitionMode::All).unwrap();
            let kernel = move_kernels(&spec)[0].clone();
            let n = spec.values[kernel.inputs()[0]].numel();
            let x: Vec<i8> = (0..n).map(|i| (i * 37 % 256) as u8 as i8).collect();
            assert_step_bit_identical_under_every_isa(&kernel, &spec.values, &x, &name);
        }
    }
}

#[test]
fn depth_space_agrees_with_onnxruntime() {
    let Some(python) = python("delegate_depth_space") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ort = |g: &Graph, x: &Tensor| -> Tensor {
        let model = dir.path().join("m.onnx");
        xq::onnx::save_file(g, &model).unwrap();
        let path = dir.path().join("x.npy");
        write_npy(&path, x.dims(), x.as_f32().unwrap());
        run_python(
            &python,
            &root().join("tests/python/run_onnx.py"),
            &[
                model.to_str().unwrap(),
                dir.path().join("ort").to_str().unwrap(),
                path.to_str().unwrap(),
            ],
        );
        xq::npy::read(dir.path().join("ort0.npy")).unwrap()
    };
    for (name, op, dims) in cases() {
        let x = input(&dims, 7);
        // The float interpreter: the same elements moved, so exactly ONNX Runtime's.
        let g = float_graph(&op, &dims);
        let ours = xq::interp::run_once(&g, std::slice::from_ref(&x)).unwrap();
        let theirs = ort(&g, &x);
        assert_eq!(ours[0].dims(), theirs.dims(), "{name}");
        assert_eq!(
            bits(ours[0].as_f32().unwrap()),
            bits(theirs.as_f32().unwrap()),
            "{name} float"
        );
        // The delegated QDQ graph with other output qparams: within one step. A CRD
        // SpaceToDepth is exported at opset 28 (its `mode` is new there), where ONNX Runtime
        // 1.32 has no QuantizeLinear kernel.
        if matches!(
            op,
            Op::SpaceToDepth {
                mode: DepthSpaceMode::Crd,
                ..
            }
        ) {
            continue;
        }
        let y = y_qparams(false)[0];
        let g = qdq_graph(&op, &dims, y, false);
        let (spec, _) = lower(&g, PartitionMode::All).unwrap();
        let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
        let ours = run(&program, &x);
        let theirs = ort(&g, &x);
        let (within, _, worst) = step_agreement(&ours, theirs.as_f32().unwrap(), y.0);
        assert!(within == 1.0, "{name} qdq: {within} within a step, worst {worst}");
    }
}

#[test]
fn libxq_quantizer_lets_depth_space_share_its_input_qparams() {
    use xq::quant::{QuantConfig, Quantizer};
    // Conv(3 → 8, 1×1) → DepthToSpace(2) → SpaceToDepth(2) → Conv(8 → 4, 1×1).
    let mut g = Graph {
        name: "conv_depth_space".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &[1, 3, 4, 6])],
        ..Graph::default()
    };
    let w1: Vec<f32> = noise(24, 1);
    let w2: Vec<f32> = noise(32, 2);
    g.initializers
        .insert("w1".into(), Tensor::from_f32(vec![8, 3, 1, 1], w1).unwrap());
    g.initializers
        .insert("w2".into(), Tensor::from_f32(vec![4, 8, 1, 1], w2).unwrap());
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (op, name, inputs, out, attrs) in [
        ("Conv", "conv1", s(&["x", "w1"]), "c1", vec![]),
        (
            "DepthToSpace",
            "d2s",
            s(&["c1"]),
            "d",
            vec![("blocksize".to_string(), AttrValue::Int(2))],
        ),
        (
            "SpaceToDepth",
            "s2d",
            s(&["d"]),
            "e",
            vec![("blocksize".to_string(), AttrValue::Int(2))],
        ),
        ("Conv", "conv2", s(&["e", "w2"]), "y", vec![]),
    ] {
        xq::onnx::add_onnx_node(&mut g, op, name, &inputs, &[out.to_string()], &attrs).unwrap();
    }
    let g = finish(g, "y");
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    q.prepare(&g).unwrap();
    for seed in 0..4 {
        q.calibrate(&[input(&[1, 3, 4, 6], seed)]).unwrap();
    }
    let qdq = q.convert().unwrap();
    let annotation = q.report();
    for name in ["d2s", "s2d"] {
        assert!(
            annotation
                .lines()
                .any(|l| l.starts_with(name) && l.contains("shares the input's parameters")),
            "{name}: {annotation}"
        );
    }
    let (spec, report) = lower(&qdq, PartitionMode::All).unwrap();
    assert!(report.refused.is_empty(), "{}", report.text());
    assert_eq!(report.interpreted_nodes, 0, "{}", report.text());
    let (programs, interpreter) = delegated_and_interpreted(&qdq, spec);
    for seed in 10..12 {
        let x = input(&[1, 3, 4, 6], seed);
        let want = bits(&run(&interpreter, &x));
        for (p, program) in programs.iter().enumerate() {
            assert_eq!(bits(&run(program, &x)), want, "seed {seed} program {p}");
        }
    }
}

#[test]
fn a_corrupted_depth_space_copy_is_rejected_without_panic() {
    let (_, op, dims) = cases().swap_remove(1);
    let g = qdq_graph(&op, &dims, y_qparams(false)[0], false);
    let (spec, _) = lower(&g, PartitionMode::All).unwrap();
    let bytes = Program::new(spec, ProgramOptions { threads: 1 })
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec();
    xq::fuzzing::program_load(&bytes);
    corrupted_program_loads(&bytes);
}

#[test]
fn a_bad_blocksize_or_shape_is_a_clear_error() {
    let build = |op: &str, attrs: &[(String, AttrValue)], dims: &[usize]| {
        let mut g = Graph {
            name: "bad".into(),
            inputs: vec![TensorInfo::known("x", DType::F32, dims)],
            ..Graph::default()
        };
        xq::onnx::add_onnx_node(&mut g, op, "move", &["x".into()], &["y".into()], attrs)
            .and_then(|_| g.validate())
            .and_then(|_| g.infer_shapes())
            .map(|_| g)
    };
    let b = |v: i64| vec![("blocksize".to_string(), AttrValue::Int(v))];
    for op in ["DepthToSpace", "SpaceToDepth"] {
        for (attrs, want) in [
            (b(0), "must be at least 1"),
            (b(-2), "must be at least 1"),
            (vec![], "is required"),
            (
                vec![
                    ("blocksize".to_string(), AttrValue::Int(2)),
                    ("mode".to_string(), AttrValue::String("RDC".into())),
                ],
                "unknown value",
            ),
        ] {
            let e = build(op, &attrs, &[1, 4, 2, 2]).unwrap_err().to_string();
            assert!(e.contains("blocksize") || e.contains("mode"), "{op}: {e}");
            assert!(e.contains(want), "{op}: {e}");
        }
    }
    let e = build("DepthToSpace", &b(2), &[1, 6, 2, 2])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a multiple of blocksize"), "{e}");
    let e = build("SpaceToDepth", &b(2), &[1, 6, 3, 2])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a multiple of blocksize"), "{e}");
    let e = build("SpaceToDepth", &b(2), &[1, 6, 4]).unwrap_err().to_string();
    assert!(e.contains("rank 3"), "{e}");
    // Through the file format: an exported model whose blocksize is 0 fails to load.
    let mut g = float_graph(
        &Op::DepthToSpace {
            blocksize: 2,
            mode: DepthSpaceMode::Crd,
        },
        &[1, 4, 2, 2],
    );
    g.nodes[0].op = Op::DepthToSpace {
        blocksize: 0,
        mode: DepthSpaceMode::Crd,
    };
    let bytes = xq::onnx::to_bytes(&g).unwrap();
    let e = xq::onnx::load_bytes(&bytes, None).unwrap_err().to_string();
    assert!(e.contains("blocksize") && e.contains("must be at least 1"), "{e}");
}
