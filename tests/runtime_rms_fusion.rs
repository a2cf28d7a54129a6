//! The RMS normalisation exporters write out (`Pow(x, 2)` → `ReduceMean(-1)` → `+ ε` →
//! `Sqrt` → `Reciprocal` → `· x` → `· w`) runs as one RMSNormalization step: every norm of the
//! Llama fixture export is fused, and the fused program gives the interpreter's outputs of
//! the written-out chain within rounding, on handmade graphs (with `Mul(x, x)` and `Div(1, ·)`
//! spellings) and on the fixture; chains that do not match exactly (an intermediate read
//! elsewhere, a scalar weight, another axis) are left alone and still correct.

mod graph_common;

use graph_common::check_outputs_scaled;
use std::path::PathBuf;
use xq::delegate::{lower, PartitionMode};
use xq::ir::op::{BinaryOp, ReduceKind, UnaryOp};
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

/// Variations of the handmade chain.
#[derive(Clone, Copy, Default)]
struct Variant {
    /// `Mul(x, x)` instead of `Pow(x, 2)`.
    square_by_mul: bool,
    /// `Div(1, ·)` instead of `Reciprocal`.
    reciprocal_by_div: bool,
    /// The mean square is also a graph output.
    mean_out: bool,
    /// The weight is a one-element scalar (broadcast by Mul, not a normalisation scale).
    scalar_weight: bool,
    /// ReduceMean over axis 1 instead of the last.
    other_axis: bool,
}

/// `x [2, 3, 40]` normalised over its last axis, written out as exporters do.
fn rms_graph(v: Variant) -> Graph {
    let (b, s, h) = (2, 3, 40);
    let mut g = Graph {
        name: "rms".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &[b, s, h])],
        outputs: vec![TensorInfo::known("y", DType::F32, &[b, s, h])],
        ..Graph::default()
    };
    if v.mean_out {
        g.outputs.push(TensorInfo::known("mean", DType::F32, &[b, s, 1]));
    }
    let weight: Vec<f32> = (0..h).map(|i| 0.5 + i as f32 / 16.0).collect();
    let w = if v.scalar_weight {
        Tensor::from_f32(vec![1], vec![1.25]).unwrap()
    } else {
        Tensor::from_f32(vec![h], weight).unwrap()
    };
    g.initializers.insert("w".into(), w);
    g.initializers
        .insert("two".into(), Tensor::from_f32(vec![], vec![2.0]).unwrap());
    g.initializers
        .insert("one".into(), Tensor::from_f32(vec![], vec![1.0]).unwrap());
    g.initializers
        .insert("eps".into(), Tensor::from_f32(vec![], vec![1e-6]).unwrap());
    let axis = if v.other_axis { 1 } else { -1 };
    g.initializers
        .insert("axes".into(), Tensor::from_i64(vec![1], vec![axis]).unwrap());
    let square = if v.square_by_mul {
        node("sq", Op::Binary(BinaryOp::Mul), &["x", "x"], "sq")
    } else {
        node("sq", Op::Binary(BinaryOp::Pow), &["x", "two"], "sq")
    };
    let reciprocal = if v.reciprocal_by_div {
        node("inv", Op::Binary(BinaryOp::Div), &["one", "root"], "inv")
    } else {
        node("inv", Op::Unary(UnaryOp::Reciprocal), &["root"], "inv")
    };
    g.nodes = vec![
        square,
        node(
            "mean",
            Op::Reduce {
                kind: ReduceKind::Mean,
                keepdims: true,
                noop_with_empty_axes: false,
            },
            &["sq", "axes"],
            "mean",
        ),
        node("shift", Op::Binary(BinaryOp::Add), &["mean", "eps"], "shifted"),
        node("root", Op::Unary(UnaryOp::Sqrt), &["shifted"], "root"),
        reciprocal,
        node("normed", Op::Binary(BinaryOp::Mul), &["x", "inv"], "normed"),
        node("scaled", Op::Binary(BinaryOp::Mul), &["w", "normed"], "y"),
    ];
    g
}

/// Runs the handmade chain as a program on 1 and 2 threads against the interpreter; returns
/// how many fused RMS steps the program has.
fn run_handmade(v: Variant) -> usize {
    let g = rms_graph(v);
    let n = 2 * 3 * 40;
    let x: Vec<f32> = (0..n as u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) >> 7) % 2001) as f32 / 250.0 - 4.0)
        .collect();
    let inputs = vec![Tensor::from_f32(vec![2, 3, 40], x).unwrap()];
    let want = xq::interp::run_once(&g, &inputs).unwrap();
    let spec = lower(&g, PartitionMode::None).unwrap().0;
    let mut fused = usize::MAX;
    for threads in [1, 2] {
        let p = Program::new(spec.clone(), ProgramOptions { threads }).unwrap();
        let got = p.execute(&inputs).unwrap();
        check_outputs_scaled("rms chain", &got, &want, 1e-6);
        fused = rms_steps(&p, &inputs);
    }
    fused
}

/// How many steps of `p` (profiled on `inputs`) are RMS normalisations.
fn rms_steps(p: &Program, inputs: &[Tensor]) -> usize {
    p.profile(inputs)
        .unwrap()
        .iter()
        .filter(|(l, _)| l.ends_with("[interp RMSNormalization]"))
        .count()
}

#[test]
fn written_out_rms_norms_are_fused_in_every_spelling() {
    for v in [
        Variant::default(),
        Variant {
            square_by_mul: true,
            ..Variant::default()
        },
        Variant {
            reciprocal_by_div: true,
            ..Variant::default()
        },
    ] {
        assert_eq!(run_handmade(v), 1);
    }
}

#[test]
fn near_misses_are_not_fused_and_still_correct() {
    let misses = [
        (
            "mean read as an output",
            Variant {
                mean_out: true,
                ..Variant::default()
            },
        ),
        (
            "scalar weight",
            Variant {
                scalar_weight: true,
                ..Variant::default()
            },
        ),
        (
            "another axis",
            Variant {
                other_axis: true,
                ..Variant::default()
            },
        ),
    ];
    for (what, v) in misses {
        assert_eq!(run_handmade(v), 0, "{what}");
    }
}

#[test]
fn every_norm_of_the_llama_fixture_is_fused() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transformers");
    let graph = xq::onnx::load_file(dir.join("llama_tiny_sdpa_dynamo.onnx")).unwrap();
    let reductions = graph
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                n.op,
                Op::Reduce {
                    kind: ReduceKind::Mean,
                    ..
                }
            )
        })
        .count();
    assert!(reductions >= 3, "{reductions} written-out norms");
    let all = xq::npy::read(dir.join("tokens.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    let seq = 16;
    let t = |v: &[i64]| {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Tensor::from_le_bytes(DType::I64, vec![1, seq], &bytes).unwrap()
    };
    let inputs = vec![t(&all[..seq]), t(&[1; 16])];
    let spec = lower(&graph, PartitionMode::None).unwrap().0;
    let p = Program::new(spec, ProgramOptions { threads: 2 }).unwrap();
    assert_eq!(rms_steps(&p, &inputs), reductions);
    let want = xq::interp::run_once(&graph, &inputs).unwrap();
    check_outputs_scaled("llama fixture", &p.execute(&inputs).unwrap(), &want, 1e-5);
}
