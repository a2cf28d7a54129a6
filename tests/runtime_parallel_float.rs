//! Interpreted float steps split over the program's threads give the bits of one thread: a
//! float MatMul of a weight matrix (rows of A spread over the pool; for a few rows, its columns),
//! one with a batched B (whole
//! products spread), Softmax along rows and point-wise operators (elements spread), large and
//! small, executed again and again (the outputs kept in place); the weight MatMul's rows are
//! the few-row product's definition for any row count.

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

/// `y = x · w + bias` and `y2 = x · w` (w a constant matrix, bias a constant vector),
/// `z = x · xt` with `xt` a batched runtime operand,
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
            TensorInfo::known("y2", DType::F32, &[batch, m, n]),
        ],
        ..Graph::default()
    };
    g.initializers.insert("w".into(), f32s(&[k, n], 9));
    g.initializers.insert("bias".into(), f32s(&[n], 10));
    let node = |name: &str, op: Op, inputs: &[&str], output: &str| Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    };
    let softmax = |axis, coerce_2d| Op::Softmax { axis, coerce_2d };
    g.nodes = vec![
        node("linear", Op::MatMul, &["x", "w"], "mm"),
        node(
            "bias",
            Op::Binary(xq::ir::op::BinaryOp::Add),
            &["bias", "mm"],
            "y",
        ),
        node("linear_out", Op::MatMul, &["x", "w"], "y2"),
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
        // Each row of the weight MatMul is the few-row product's definition, whatever the row
        // count (B packed once by the program for more than four rows), and the bias Add
        // (fused into the MatMul step) adds the bias to it.
        let (x, w, bias) = (inputs[0].as_f32().unwrap(), f32s(&[k, n], 9), f32s(&[n], 10));
        for r in 0..batch * m {
            let mut row = vec![0f32; n];
            xq::interp::kernels::gemv::scalar::gemv(
                &x[r * k..(r + 1) * k],
                w.as_f32().unwrap(),
                n,
                0..n,
                &mut row,
            );
            let bits: Vec<u32> = row.iter().map(|v| v.to_bits()).collect();
            let biased: Vec<u32> = row
                .iter()
                .zip(bias.as_f32().unwrap())
                .map(|(y, b)| (b + y).to_bits())
                .collect();
            let cols = r * n..(r + 1) * n;
            assert!(
                bits[..] == want[7][cols.clone()] && biased[..] == want[0][cols],
                "{batch}x{m}x{k}x{n}: row {r} of the weight MatMul is not the definition"
            );
        }
        if batch * m > 4 {
            let labels: Vec<String> = one
                .profile(&inputs)
                .unwrap()
                .into_iter()
                .map(|(l, _)| l)
                .collect();
            assert!(
                labels
                    .iter()
                    .any(|l| l.starts_with("linear ") && l.contains("+ bias")),
                "the bias Add is not fused: {labels:?}"
            );
        }
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

/// The normalisations (layer with and without bias and with unread statistics, RMS, skip
/// with a same-shaped and a row-cycled skip, simplified forms), broadcast arithmetic, Where
/// and Transposes of `x` (`[batch, m, n]`).
fn rows_graph(batch: usize, m: usize, n: usize) -> Graph {
    let mut g = Graph {
        name: "rows".into(),
        inputs: vec![
            TensorInfo::known("x", DType::F32, &[batch, m, n]),
            TensorInfo::known("x2", DType::F32, &[batch, m, n]),
        ],
        ..Graph::default()
    };
    g.initializers.insert("gamma".into(), f32s(&[n], 3));
    g.initializers.insert("beta".into(), f32s(&[n], 4));
    g.initializers.insert("bias".into(), f32s(&[n], 5));
    g.initializers.insert("rowskip".into(), f32s(&[m, n], 6));
    g.initializers.insert("per_batch".into(), f32s(&[batch, 1, n], 7));
    g.initializers
        .insert("two".into(), Tensor::from_f32(vec![], vec![2.0]).unwrap());
    let cond: Vec<bool> = (0..batch * n).map(|i| i % 3 != 1).collect();
    g.initializers
        .insert("cond".into(), Tensor::from_bool(vec![batch, 1, n], cond).unwrap());
    let node = |name: &str, op: Op, inputs: &[&str], outputs: &[&str]| Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
    };
    use xq::ir::op::BinaryOp;
    let ln = |axis| Op::LayerNormalization { axis, epsilon: 1e-5 };
    let rms = |simplified| Op::RmsNormalization {
        axis: -1,
        epsilon: 1e-6,
        simplified,
    };
    let skip = |simplified| Op::SkipNormalization {
        epsilon: 1e-5,
        simplified,
    };
    g.nodes = vec![
        node("ln", ln(-1), &["x", "gamma", "beta"], &["ln", "", ""]),
        node("ln_nobias", ln(2), &["x", "gamma"], &["ln_nobias"]),
        node("rms", rms(false), &["x", "gamma"], &["rms"]),
        node("simplified", rms(true), &["x", "gamma"], &["simplified"]),
        node(
            "skip",
            skip(false),
            &["x", "x2", "gamma", "beta", "bias"],
            &["skip"],
        ),
        node(
            "skip_rows",
            skip(false),
            &["x", "rowskip", "gamma"],
            &["skip_rows"],
        ),
        node(
            "skip_simplified",
            skip(true),
            &["x", "x2", "gamma", "", "bias"],
            &["skip_simplified"],
        ),
        node("add", Op::Binary(BinaryOp::Add), &["x", "bias"], &["add"]),
        node("sub", Op::Binary(BinaryOp::Sub), &["two", "x"], &["sub"]),
        node("mul", Op::Binary(BinaryOp::Mul), &["x", "per_batch"], &["mul"]),
        node("div", Op::Binary(BinaryOp::Div), &["x", "x2"], &["div"]),
        node("where", Op::Where, &["cond", "x", "x2"], &["where"]),
        node(
            "where_scalar",
            Op::Where,
            &["cond", "two", "x"],
            &["where_scalar"],
        ),
        node(
            "t021",
            Op::Transpose {
                perm: Some(vec![0, 2, 1]),
            },
            &["x"],
            &["t021"],
        ),
        node(
            "t102",
            Op::Transpose {
                perm: Some(vec![1, 0, 2]),
            },
            &["x"],
            &["t102"],
        ),
        node("t_rev", Op::Transpose { perm: None }, &["x"], &["t_rev"]),
    ];
    let outputs = [
        "ln",
        "ln_nobias",
        "rms",
        "simplified",
        "skip",
        "skip_rows",
        "skip_simplified",
        "add",
        "sub",
        "mul",
        "div",
        "where",
        "where_scalar",
        "t021",
        "t102",
        "t_rev",
    ];
    g.outputs = outputs
        .iter()
        .map(|o| TensorInfo {
            name: o.to_string(),
            dtype: DType::F32,
            shape: None,
        })
        .collect();
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

#[test]
fn normalisations_broadcasts_where_and_transposes_split_over_threads_give_the_bits_of_one_thread() {
    for (batch, m, n) in [(16, 32, 384), (3, 37, 300), (1, 5, 8), (2, 301, 67)] {
        let g = rows_graph(batch, m, n);
        let spec = lower(&g, PartitionMode::All).unwrap().0;
        let inputs = [f32s(&[batch, m, n], 1), f32s(&[batch, m, n], 2)];
        let bits = |ts: &[Tensor]| -> Vec<Vec<u32>> {
            ts.iter()
                .map(|t| t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect())
                .collect()
        };
        let one = Program::new(spec.clone(), ProgramOptions { threads: 1 }).unwrap();
        let want = bits(&one.execute(&inputs).unwrap());
        let interp = xq::interp::run_once(&g, &inputs).unwrap();
        for (o, (t, w)) in interp.iter().zip(&want).enumerate() {
            assert!(
                bits(std::slice::from_ref(t))[0] == *w,
                "{batch}x{m}x{n}: output {o}: the program differs from the interpreter"
            );
        }
        for threads in [2, 3] {
            let p = Program::new(spec.clone(), ProgramOptions { threads }).unwrap();
            let mut outs = p.execute(&inputs).unwrap();
            for run in 0..3 {
                if run > 0 {
                    p.execute_into(&inputs, &mut outs).unwrap();
                }
                for (o, (got, w)) in bits(&outs).iter().zip(&want).enumerate() {
                    assert!(
                        got == w,
                        "{batch}x{m}x{n}, {threads} threads, run {run}: output {} differs",
                        g.outputs[o].name
                    );
                }
            }
        }
    }
}

/// A linear layer (MatMul of a constant matrix, then Add of a constant bias), the same as a
/// Gemm (B transposed, C the bias) and without bias, whose row count is symbolic: calls of
/// many rows (the bias fused into the packed MatMul) and of a few (the vector × matrix
/// kernel, then the Add) alternate, and each gives the interpreter's bits; the Gemms (packed,
/// any row count) give the MatMuls' bits.
#[test]
fn a_linear_layer_alternating_many_and_few_rows_gives_the_interpreters_bits() {
    use xq::ir::Dim;
    let (k, n) = (40, 70);
    let mut g = Graph {
        name: "linear".into(),
        inputs: vec![TensorInfo {
            name: "x".into(),
            dtype: DType::F32,
            shape: Some(vec![Dim::Symbolic("rows".into()), Dim::Known(k)]),
        }],
        outputs: ["y", "g", "g2", "y2"]
            .map(|name| TensorInfo {
                name: name.into(),
                dtype: DType::F32,
                shape: Some(vec![Dim::Symbolic("rows".into()), Dim::Known(n)]),
            })
            .to_vec(),
        ..Graph::default()
    };
    let w = f32s(&[k, n], 11);
    let wv = w.as_f32().unwrap();
    let wt: Vec<f32> = (0..n * k).map(|i| wv[(i % k) * n + i / k]).collect();
    g.initializers.insert("w".into(), w.clone());
    g.initializers
        .insert("wt".into(), Tensor::from_f32(vec![n, k], wt).unwrap());
    g.initializers.insert("bias".into(), f32s(&[n], 12));
    let node = |name: &str, op: Op, inputs: &[&str], output: &str| Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    };
    let gemm = |trans_b| xq::ir::op::GemmAttrs {
        trans_b,
        ..Default::default()
    };
    g.nodes = vec![
        node("linear", Op::MatMul, &["x", "w"], "mm"),
        node(
            "bias",
            Op::Binary(xq::ir::op::BinaryOp::Add),
            &["mm", "bias"],
            "y",
        ),
        node("gemm", Op::Gemm(gemm(true)), &["x", "wt", "bias"], "g"),
        node("gemm_plain", Op::Gemm(gemm(false)), &["x", "w"], "g2"),
        node("matmul", Op::MatMul, &["x", "w"], "y2"),
    ];
    g.validate().unwrap();
    let spec = lower(&g, PartitionMode::None).unwrap().0;
    for threads in [1, 2] {
        let p = Program::new(spec.clone(), ProgramOptions { threads }).unwrap();
        for (call, rows) in [9, 2, 30, 1, 4, 5, 64].into_iter().enumerate() {
            let x = [f32s(&[rows, k], call as u32)];
            let got = p.execute(&x).unwrap();
            let want = xq::interp::run_once(&g, &x).unwrap();
            let bits = |t: &Tensor| {
                t.as_f32()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            };
            for (o, (got, want)) in got.iter().zip(&want).enumerate() {
                assert_eq!(got.dims(), &[rows, n]);
                assert!(
                    bits(got) == bits(want),
                    "{threads} threads, call {call} of {rows} rows: output {o}"
                );
            }
            // Gemm (B either way) computes MatMul's product and adds C as Add does.
            assert!(
                bits(&got[1]) == bits(&got[0]) && bits(&got[2]) == bits(&got[3]),
                "{rows} rows"
            );
        }
        let labels: Vec<String> = p
            .profile(&[f32s(&[8, k], 1)])
            .unwrap()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert!(
            labels[0].contains("+ bias"),
            "the bias Add is not fused: {labels:?}"
        );
        assert!(
            labels[2].contains("Gemm, packed B") && labels[3].contains("Gemm, packed B"),
            "{labels:?}"
        );
    }
}
