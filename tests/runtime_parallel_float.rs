//! Interpreted float steps split over the program's threads give the bits of one thread: a
//! float MatMul of a weight matrix (rows of A spread over the pool) next to one with batched B
//! (not split), large and small, executed again and again (the output kept in place).

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

/// `y = x · w` (w a constant matrix) and `z = x · xt` with `xt` a batched runtime operand.
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
        ],
        ..Graph::default()
    };
    g.initializers.insert("w".into(), f32s(&[k, n], 9));
    let node = |name: &str, inputs: &[&str], output: &str| Node {
        name: name.into(),
        op: Op::MatMul,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    };
    g.nodes = vec![
        node("linear", &["x", "w"], "y"),
        node("scores", &["x", "xt"], "z"),
    ];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

#[test]
fn a_float_matmul_split_over_threads_gives_the_bits_of_one_thread() {
    for (batch, m, k, n) in [
        (4, 64, 128, 256),
        (3, 37, 96, 200),
        (1, 5, 8, 3),
        (2, 300, 64, 64),
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
