//! Interpreted float steps split over the program's threads give the bits of one thread: a
//! float MatMul of a weight matrix (rows of A spread over the pool; for a few rows, its columns),
//! one with a batched B (whole
//! products spread), Softmax along rows and point-wise operators (elements spread), large and
//! small, executed again and again (the outputs kept in place).

use xq::delegate::{lower, PartitionMode};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorInfo};
use xq::runtime::{Program, ProgramOptions};

fn f32s(dims: &[usize], seed: u32) -> Tensor {
    let n: usize = dims.iter().product();
    let v = (0..n as u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 500.0 - 2.0)
        .collect();
    Tensor::from_f32(dims.to_vec(), v).unwrap()
}

/// `y = x · w` (w a constant matrix), `z = x · xt` with `xt` a batched runtime operand,
/// `s = softmax(z)` along the last axis, over all of `z`'s axes after the first (opset < 13
/// form) and along a middle axis, and `g = gelu(y)`, `e = erf(y)`.
fn graph(batch: usize, m: usize, k: usize, n: usize) -> Graph {
    let mut g = Graph {
        name: "matmuls".into(),
        inputs: vec![
            TensorInfo::known("x", DType::F32, &[batch, m, k]),
            TensorInfo::known("xt", DType::F32, &[batch, k, m]),
        ],
        outputs: vec![
            TensorInfo::known("y", DType::F32, &[batch, m, n]),
            TensorInfo::known("z", DType::F32, &[batch, m, m]),
            TensorInfo::known("s", DType::F32, &[batch, m, m]),
            TensorInfo::known("s2", DType::F32, &[batch, m, m]),
            TensorInfo::known("s3", DType::F32, &[batch, m, m]),
            TensorInfo::known("g", DType::F32, &[batch, m, n]),
            TensorInfo::known("e", DType::F32, &[batch, m, n]),
        ],
        ..Graph::default()
    };
    g.initializers.insert("w".into(), f32s(&[k, n], 9));
    let node = |name: &str, op: Op, inputs: &[&str], output: &str| Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    };
    let softmax = |axis, coerce_2d| Op::Softmax { axis, coerce_2d };
    g.nodes = vec![
        node("linear", Op::MatMul, &["x", "w"], "y"),
        node("scores", Op::MatMul, &["x", "xt"], "z"),
        node("softmax", softmax(-1, false), &["z"], "s"),
        node("softmax_2d", softmax(1, true), &["z"], "s2"),
        node("softmax_mid", softmax(1, false), &["z"], "s3"),
        node(
            "gelu",
            Op::Gelu {
                tanh_approximation: false,
            },
            &["y"],
            "g",
        ),
        node("erf", Op::Unary(xq::ir::op::UnaryOp::Erf), &["y"], "e"),
    ];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

#[test]
fn float_steps_split_over_threads_give_the_bits_of_one_thread() {
    for (batch, m, k, n) in [
        (4, 64, 128, 256),
        (3, 37, 96, 200),
        (1, 5, 8, 3),
        (2, 300, 64, 64),
        // Decoding: one or a few rows against a wide matrix (columns spread over the pool).
        (1, 1, 1024, 1100),
        (2, 1, 600, 1000),
        (1, 3, 512, 1000),
    ] {
        let g = graph(batch, m, k, n);
        let spec = lower(&g, PartitionMode::All).unwrap().0;
        let inputs = [f32s(&[batch, m, k], 1), f32s(&[batch, k, m], 2)];
        let one = Program::new(spec.clone(), ProgramOptions { threads: 1 }).unwrap();
        let want: Vec<Vec<u32>> = one
            .execute(&inputs)
            .unwrap()
            .iter()
            .map(|t| t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect())
            .collect();
        // The interpreter itself (no program) agrees too.
        let interp = xq::interp::run_once(&g, &inputs).unwrap();
        for threads in [2, 3] {
            let p = Program::new(spec.clone(), ProgramOptions { threads }).unwrap();
            let mut outs = p.execute(&inputs).unwrap();
            for run in 0..3 {
                if run > 0 {
                    p.execute_into(&inputs, &mut outs).unwrap();
                }
                for (o, (got, w)) in outs.iter().zip(&want).enumerate() {
                    let got: Vec<u32> = got.as_f32().unwrap().iter().map(|v| v.to_bits()).collect();
                    assert!(
                        got == *w,
                        "{batch}x{m}x{k}x{n}, {threads} threads, run {run}: output {o} differs"
                    );
                }
            }
        }
        for (t, w) in interp.iter().zip(&want) {
            let bits: Vec<u32> = t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect();
            assert!(
                bits == *w,
                "{batch}x{m}x{k}x{n}: the program differs from the interpreter"
            );
        }
    }
}
