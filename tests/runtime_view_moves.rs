//! Interpreter views (Reshape, Flatten, Squeeze, Unsqueeze) hand their input's buffer on when
//! nothing else reads it, and copy it when something does (a later node, a program output):
//! every output equals the interpreter's, call after call, at any thread count.

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

/// `a = tanh(x)` is reshaped twice in a chain (each view its input's last reader), `b =
/// exp(x)` is reshaped and also added afterwards (a later reader), `c = neg(x)` is reshaped
/// and is itself a program output.
fn graph() -> Graph {
    let mut g = Graph {
        name: "views".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &[2, 3, 4])],
        outputs: vec![
            TensorInfo::known("a3", DType::F32, &[4, 1, 6]),
            TensorInfo::known("b_sum", DType::F32, &[2, 3, 4]),
            TensorInfo::known("b2", DType::F32, &[6, 4]),
            TensorInfo::known("c", DType::F32, &[2, 3, 4]),
            TensorInfo::known("c2", DType::F32, &[2, 12]),
        ],
        ..Graph::default()
    };
    g.initializers
        .insert("shape_a".into(), Tensor::vec_i64(vec![4, 6]));
    g.initializers.insert("axes".into(), Tensor::vec_i64(vec![1]));
    g.initializers
        .insert("shape_b".into(), Tensor::vec_i64(vec![-1, 4]));
    g.nodes = vec![
        node("tanh", Op::Unary(UnaryOp::Tanh), &["x"], "a"),
        node(
            "reshape_a",
            Op::Reshape { allowzero: false },
            &["a", "shape_a"],
            "a2",
        ),
        node("unsqueeze_a", Op::Unsqueeze, &["a2", "axes"], "a3"),
        node("exp", Op::Unary(UnaryOp::Exp), &["x"], "b"),
        node(
            "reshape_b",
            Op::Reshape { allowzero: false },
            &["b", "shape_b"],
            "b2",
        ),
        node("add_b", Op::Binary(BinaryOp::Add), &["b", "x"], "b_sum"),
        node("neg", Op::Unary(UnaryOp::Neg), &["x"], "c"),
        node("flatten_c", Op::Flatten { axis: 1 }, &["c"], "c2"),
    ];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

#[test]
fn views_move_or_copy_and_give_the_interpreters_outputs() {
    let g = graph();
    let spec = lower(&g, PartitionMode::None).unwrap().0;
    for threads in [1, 2] {
        let p = Program::new(spec.clone(), ProgramOptions { threads }).unwrap();
        let mut outs = Vec::new();
        for call in 0..4 {
            let x = Tensor::from_f32(
                vec![2, 3, 4],
                (0..24).map(|i| (i + call) as f32 / 7.0 - 1.5).collect(),
            )
            .unwrap();
            let want = xq::interp::run_once(&g, std::slice::from_ref(&x)).unwrap();
            if call == 0 {
                outs = p.execute(std::slice::from_ref(&x)).unwrap();
            } else {
                p.execute_into(std::slice::from_ref(&x), &mut outs).unwrap();
            }
            for (o, (got, w)) in outs.iter().zip(&want).enumerate() {
                assert_eq!(got.dims(), w.dims(), "call {call}, output {o}");
                assert_eq!(
                    got.as_f32().unwrap(),
                    w.as_f32().unwrap(),
                    "call {call}, output {o}"
                );
            }
        }
    }
}
