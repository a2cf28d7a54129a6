//! SiLU written `x * Sigmoid(x)` runs as one step: the Mul with the Sigmoid's own input
//! (either order) is fused and gives the interpreter's bits on 1 and 2 threads, large enough
//! to split over the pool; a Sigmoid also read elsewhere, or multiplied by another tensor, is
//! left alone and still correct; the Llama fixture's MLPs are fused.

use std::path::PathBuf;
use xq::delegate::{lower, PartitionMode};
use xq::ir::op::{BinaryOp, UnaryOp};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorInfo};
use xq::runtime::{Program, ProgramOptions};

fn node(name: &str, op: Op, inputs: &[&str], output: &str) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    }
}

/// `y = Mul(a, b)` of `x` `[4, 3000]` and `s = Sigmoid(x)`, the operands named by `mul`;
/// `s_out` also makes `s` a graph output.
fn graph(mul: [&str; 2], s_out: bool) -> Graph {
    let dims = [4, 3000];
    let mut g = Graph {
        name: "silu".into(),
        inputs: vec![
            TensorInfo::known("x", DType::F32, &dims),
            TensorInfo::known("z", DType::F32, &dims),
        ],
        outputs: vec![TensorInfo::known("y", DType::F32, &dims)],
        ..Graph::default()
    };
    if s_out {
        g.outputs.push(TensorInfo::known("s", DType::F32, &dims));
    }
    g.nodes = vec![
        node("sigmoid", Op::Unary(UnaryOp::Sigmoid), &["x"], "s"),
        node("mul", Op::Binary(BinaryOp::Mul), &mul, "y"),
    ];
    g.validate().unwrap();
    g
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 40_001) as f32 / 1000.0 - 20.0)
        .collect()
}

/// The labels of `p`'s steps and whether its outputs equal the interpreter's bit for bit.
fn run(g: &Graph, threads: usize) -> (Vec<String>, bool) {
    let x = Tensor::from_f32(vec![4, 3000], values(12_000, 1)).unwrap();
    let z = Tensor::from_f32(vec![4, 3000], values(12_000, 2)).unwrap();
    let inputs = [x, z];
    let want = xq::interp::run_once(g, &inputs).unwrap();
    let spec = lower(g, PartitionMode::None).unwrap().0;
    let p = Program::new(spec, ProgramOptions { threads }).unwrap();
    let got = p.execute(&inputs).unwrap();
    let bits = |ts: &[Tensor]| -> Vec<Vec<u32>> {
        ts.iter()
            .map(|t| t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect())
            .collect()
    };
    let labels = p.profile(&inputs).unwrap().into_iter().map(|(l, _)| l).collect();
    (labels, bits(&got) == bits(&want))
}

#[test]
fn x_times_its_sigmoid_is_one_step_with_the_interpreters_bits() {
    for mul in [["x", "s"], ["s", "x"]] {
        for threads in [1, 2] {
            let (labels, same) = run(&graph(mul, false), threads);
            assert!(same, "{mul:?}, {threads} threads: outputs differ");
            assert_eq!(labels, ["mul [interp Swish]"], "{mul:?}");
        }
    }
}

#[test]
fn near_misses_are_left_alone_and_correct() {
    for (g, what) in [
        (graph(["x", "s"], true), "sigmoid also a graph output"),
        (graph(["z", "s"], false), "sigmoid times another tensor"),
    ] {
        let (labels, same) = run(&g, 1);
        assert!(same, "{what}: outputs differ");
        assert_eq!(labels, ["sigmoid [interp Sigmoid]", "mul [interp Mul]"], "{what}");
    }
}

#[test]
fn the_llama_fixtures_mlps_are_fused() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/transformers/llama_tiny_sdpa_dynamo.onnx");
    let graph = xq::onnx::load_file(path).unwrap();
    let sigmoids = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Unary(UnaryOp::Sigmoid)))
        .count();
    assert!(sigmoids >= 2);
    let spec = lower(&graph, PartitionMode::None).unwrap().0;
    let p = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
    let ids = Tensor::from_le_bytes(
        DType::I64,
        vec![1, 8],
        &(0..8i64)
            .flat_map(|i| (i * 7 + 3).to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let mask = Tensor::from_le_bytes(
        DType::I64,
        vec![1, 8],
        &[1i64; 8].map(|v| v.to_le_bytes()).concat(),
    )
    .unwrap();
    let inputs = [ids, mask];
    let labels: Vec<String> = p.profile(&inputs).unwrap().into_iter().map(|(l, _)| l).collect();
    let fused = labels.iter().filter(|l| l.ends_with("[interp Swish]")).count();
    assert_eq!(fused, sigmoids, "{labels:?}");
    assert!(!labels.iter().any(|l| l.ends_with("[interp Sigmoid]")));
    let want = xq::interp::run_once(&graph, &inputs).unwrap();
    let got = p.execute(&inputs).unwrap();
    for (g, w) in got.iter().zip(&want) {
        let (g, w) = (g.as_f32().unwrap(), w.as_f32().unwrap());
        assert!(g
            .iter()
            .zip(w)
            .all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs())));
    }
}
