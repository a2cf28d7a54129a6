//! The IR's contract: validation errors, topological re-ordering after rewrites, pattern
//! queries, shape inference, shape fixing, BatchNormalization folding, constant folding and
//! QDQ graphs that survive export (and run in ONNX Runtime when XQ_PYTHON is set).

mod graph_common;

use xq::interp::{run_once, simplify};
use xq::ir::op::{BinaryOp, ConvAttrs, QuantAttrs, UnaryOp};
use xq::ir::{DType, Dim, Graph, Node, Op, Tensor, TensorInfo};
use xq::Error;

fn node(name: &str, op: Op, inputs: &[&str], outputs: &[&str]) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
    }
}

fn ramp(n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) * scale).collect()
}

/// x[1,2,5,5] → Conv(3×3, pad 1) → BatchNormalization → Relu → y
fn conv_bn_relu() -> Graph {
    let mut g = Graph {
        inputs: vec![TensorInfo {
            name: "x".into(),
            dtype: DType::F32,
            shape: Some(vec![
                Dim::Symbolic("n".into()),
                Dim::Known(2),
                Dim::Known(5),
                Dim::Known(5),
            ]),
        }],
        outputs: vec![TensorInfo {
            name: "y".into(),
            dtype: DType::F32,
            shape: None,
        }],
        ..Default::default()
    };
    let init = |g: &mut Graph, name: &str, dims: Vec<usize>, v: Vec<f32>| {
        g.initializers
            .insert(name.into(), Tensor::from_f32(dims, v).unwrap());
    };
    init(&mut g, "w", vec![3, 2, 3, 3], ramp(54, 0.1));
    init(&mut g, "b", vec![3], vec![0.1, -0.2, 0.3]);
    init(&mut g, "gamma", vec![3], vec![1.5, 0.5, -1.0]);
    init(&mut g, "beta", vec![3], vec![0.0, 0.25, 0.5]);
    init(&mut g, "mean", vec![3], vec![0.1, 0.2, -0.3]);
    init(&mut g, "var", vec![3], vec![0.5, 2.0, 1.0]);
    let conv = ConvAttrs {
        group: 1,
        pads: vec![1, 1, 1, 1],
        ..Default::default()
    };
    g.nodes = vec![
        node("relu", Op::Unary(UnaryOp::Relu), &["t"], &["y"]),
        node(
            "bn",
            Op::BatchNormalization { epsilon: 1e-5 },
            &["c", "gamma", "beta", "mean", "var"],
            &["t"],
        ),
        node("conv", Op::Conv(conv), &["x", "w", "b"], &["c"]),
    ];
    g
}

#[test]
fn validation_sorts_nodes_and_answers_pattern_queries() {
    let mut g = conv_bn_relu();
    g.validate().unwrap();
    let order: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(order, ["conv", "bn", "relu"]);
    assert_eq!(g.producer("t"), Some(1));
    assert_eq!(g.consumers("c"), vec![1]);
    assert_eq!(g.consumer_map()["t"], vec![2]);
    g.infer_shapes().unwrap();
    assert_eq!(g.tensor_info("c").unwrap().dtype, DType::F32);
    assert_eq!(
        g.tensor_info("y").unwrap().shape,
        None,
        "symbolic batch: shape unknown until fixed"
    );
}

#[test]
fn graphs_print_and_cross_threads() {
    let mut g = conv_bn_relu();
    g.validate().unwrap();
    let text = g.to_string();
    assert!(text.contains("input  x: f32[n, 2, 5, 5]"), "{text}");
    assert!(
        text.contains("bn = BatchNormalization(c, gamma, beta, mean, var) -> t"),
        "{text}"
    );
    assert!(text.contains("output y: f32[?]"), "{text}");
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Graph>();
    send_sync::<Tensor>();
    send_sync::<xq::interp::Interpreter>();
}

#[test]
fn structural_errors_are_named() {
    let mut dup = conv_bn_relu();
    dup.nodes
        .push(node("again", Op::Unary(UnaryOp::Relu), &["x"], &["t"]));
    let e = dup.validate().unwrap_err();
    assert!(e.to_string().contains("`t` is defined twice"), "{e}");

    let mut dangling = conv_bn_relu();
    dangling.nodes[0].inputs[0] = "ghost".into();
    assert!(dangling.validate().unwrap_err().to_string().contains("ghost"));

    let mut cycle = conv_bn_relu();
    cycle.nodes[2].inputs[0] = "y".into();
    assert!(cycle.validate().unwrap_err().to_string().contains("cycle"));

    let mut arity = conv_bn_relu();
    arity.nodes[2].inputs.truncate(1);
    assert!(arity.validate().unwrap_err().to_string().contains("has 1 inputs"));

    let mut attr = conv_bn_relu();
    attr.nodes[0].op = Op::Transpose {
        perm: Some(vec![0, 0, 1, 2]),
    };
    assert!(attr
        .validate()
        .unwrap_err()
        .to_string()
        .contains("not a permutation"));

    let mut dtype = conv_bn_relu();
    dtype.initializers.insert(
        "w".into(),
        Tensor::from_i64(vec![3, 2, 3, 3], vec![1; 54]).unwrap(),
    );
    dtype.validate().unwrap();
    assert!(matches!(dtype.infer_shapes(), Err(Error::DtypeMismatch(_))));
}

#[test]
fn rewrites_are_revalidated() {
    let mut g = conv_bn_relu();
    g.validate().unwrap();
    // Insert a Sigmoid between relu and the output, at the front (out of order on purpose).
    let fresh = g.fresh_name("y");
    assert_ne!(fresh, "y");
    g.replace_uses("y", &fresh);
    g.nodes.iter_mut().find(|n| n.name == "relu").unwrap().outputs[0] = fresh.clone();
    g.insert_node(0, node("sig", Op::Unary(UnaryOp::Sigmoid), &[&fresh], &["y"]));
    g.outputs[0].name = "y".into();
    g.validate().unwrap();
    assert_eq!(g.nodes.last().unwrap().name, "sig");
    let x = Tensor::from_f32(vec![1, 2, 5, 5], ramp(50, 0.2)).unwrap();
    let y = run_once(&g, std::slice::from_ref(&x)).unwrap();
    assert!(
        y[0].as_f32().unwrap().iter().all(|&v| (0.5..1.0).contains(&v)),
        "sigmoid of relu lies in [0.5, 1)"
    );
    // The calibration hook sees the input and every node output, in execution order.
    let plan = xq::interp::Interpreter::new(&g).unwrap();
    let mut seen = Vec::new();
    let observed = plan
        .run_observed(&[x], &mut |name, t| {
            seen.push((name.to_string(), t.dims().to_vec()))
        })
        .unwrap();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x", "c", "t", fresh.as_str(), "y"]);
    assert_eq!(seen[1].1, vec![1, 3, 5, 5]);
    assert_eq!(observed, y);
}

#[test]
fn nodes_can_be_replaced_and_bypassed() {
    let mut g = conv_bn_relu();
    g.validate().unwrap();
    let relu = g.node_index("relu").unwrap();
    let old = g
        .replace_node(relu, node("sig", Op::Unary(UnaryOp::Sigmoid), &["t"], &["y"]))
        .unwrap();
    assert_eq!(old.name, "relu");
    g.validate().unwrap();
    // A node feeding the graph output cannot be bypassed; the BN in the middle can.
    assert!(g.bypass_node(g.node_index("sig").unwrap()).is_none());
    let bn = g.bypass_node(g.node_index("bn").unwrap()).unwrap();
    assert_eq!(bn.name, "bn");
    g.validate().unwrap();
    assert_eq!(
        g.nodes.iter().find(|n| n.name == "sig").unwrap().inputs,
        vec!["c".to_string()]
    );
    g.remove_dead();
    assert!(!g.initializers.contains_key("gamma"));
    let x = Tensor::from_f32(vec![1, 2, 5, 5], ramp(50, 0.1)).unwrap();
    let y = run_once(&g, &[x]).unwrap();
    assert!(y[0].as_f32().unwrap().iter().all(|&v| v > 0.0 && v < 1.0));
}

#[test]
fn qdq_pairs_can_be_inserted_on_a_tensor() {
    let mut g = conv_bn_relu();
    g.validate().unwrap();
    let x = Tensor::from_f32(vec![1, 2, 5, 5], ramp(50, 0.1)).unwrap();
    let before = run_once(&g, std::slice::from_ref(&x)).unwrap();
    // Quantize the Conv output `c` (u8, scale 0.05, zero point 128) for every reader.
    g.initializers.insert("s".into(), Tensor::scalar_f32(0.05));
    g.initializers
        .insert("z".into(), Tensor::from_u8(vec![], vec![128]).unwrap());
    let (cq, cdq) = (g.fresh_name("c_q"), g.fresh_name("c_dq"));
    g.replace_uses_except("c", &cdq, &[]);
    let at = g.producer(&cdq).map_or(g.nodes.len(), |i| i + 1);
    g.insert_node(
        at,
        node(
            "c_quant",
            Op::QuantizeLinear(QuantAttrs::default()),
            &["c", "s", "z"],
            &[&cq],
        ),
    );
    g.insert_node(
        at + 1,
        node(
            "c_dequant",
            Op::DequantizeLinear(QuantAttrs::default()),
            &[&cq, "s", "z"],
            &[&cdq],
        ),
    );
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    assert_eq!(g.tensor_info(&cq).unwrap().dtype, DType::U8);
    assert_eq!(g.consumers(&cdq).len(), 1);
    let after = run_once(&g, &[x]).unwrap();
    // The result moved by at most one quantization step through BN's largest gain (1.5/sqrt(0.5)).
    let (a, b) = (after[0].as_f32().unwrap(), before[0].as_f32().unwrap());
    let worst = a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
    assert!(
        worst > 0.0 && worst <= 0.5 * 0.05 * 1.5 / 0.5f32.sqrt() + 1e-5,
        "worst {worst}"
    );
}

#[test]
fn batchnorm_folds_into_conv_without_changing_results() {
    let mut g = conv_bn_relu();
    g.validate().unwrap();
    let x = Tensor::from_f32(vec![2, 2, 5, 5], ramp(100, 0.3)).unwrap();
    let before = run_once(&g, std::slice::from_ref(&x)).unwrap();
    assert_eq!(g.fold_batchnorm_into_conv().unwrap(), 1);
    g.validate().unwrap();
    assert!(!g
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::BatchNormalization { .. })));
    assert!(
        !g.initializers.contains_key("gamma"),
        "dead BN parameters are removed"
    );
    let after = run_once(&g, &[x]).unwrap();
    graph_common::compare(&after[0], &before[0], 1e-5, 1e-6).unwrap();
}

/// `producer → BatchNormalization` with `out_ch` channels, input `x` of `dims`.
fn producer_then_bn(op: Op, dims: &[usize], w: (Vec<usize>, bool), out_ch: usize, out: &[usize]) -> Graph {
    let mut g = Graph {
        inputs: vec![TensorInfo::known("x", DType::F32, dims)],
        outputs: vec![TensorInfo::known("y", DType::F32, out)],
        ..Default::default()
    };
    let n: usize = w.0.iter().product();
    g.initializers
        .insert("w".into(), Tensor::from_f32(w.0.clone(), ramp(n, 0.05)).unwrap());
    let mut inputs = vec!["x", "w"];
    if w.1 {
        g.initializers.insert(
            "b".into(),
            Tensor::from_f32(vec![out_ch], ramp(out_ch, 0.2)).unwrap(),
        );
        inputs.push("b");
    }
    for (name, base) in [("gamma", 1.5), ("beta", 0.25), ("mean", -0.5), ("var", 0.75)] {
        let v = (0..out_ch).map(|c| base + 0.1 * c as f32).collect();
        g.initializers
            .insert(name.into(), Tensor::from_f32(vec![out_ch], v).unwrap());
    }
    g.nodes = vec![
        node("p", op, &inputs, &["c"]),
        node(
            "bn",
            Op::BatchNormalization { epsilon: 1e-5 },
            &["c", "gamma", "beta", "mean", "var"],
            &["y"],
        ),
    ];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

#[test]
fn batchnorm_folds_into_conv_transpose_and_gemm_without_changing_results() {
    use xq::ir::op::{ConvTransposeAttrs, GemmAttrs};
    let deconv = |group: usize| {
        Op::ConvTranspose(ConvTransposeAttrs {
            conv: ConvAttrs {
                strides: vec![2, 2],
                group,
                ..ConvAttrs::default()
            },
            ..ConvTransposeAttrs::default()
        })
    };
    let gemm = |trans_b: bool, beta: f32| {
        Op::Gemm(GemmAttrs {
            trans_b,
            beta,
            alpha: 0.5,
            ..GemmAttrs::default()
        })
    };
    let graphs = [
        // Grouped: 4 input channels in 2 groups, 3 outputs per group.
        producer_then_bn(
            deconv(2),
            &[2, 4, 3, 3],
            (vec![4, 3, 2, 2], true),
            6,
            &[2, 6, 6, 6],
        ),
        producer_then_bn(
            deconv(1),
            &[1, 4, 3, 3],
            (vec![4, 5, 3, 3], false),
            5,
            &[1, 5, 7, 7],
        ),
        producer_then_bn(gemm(true, 2.0), &[3, 6], (vec![4, 6], true), 4, &[3, 4]),
        producer_then_bn(gemm(false, 1.0), &[3, 6], (vec![6, 4], false), 4, &[3, 4]),
    ];
    for mut g in graphs {
        let what = g.nodes[0].op.onnx_name();
        let dims = g.inputs[0].concrete_shape().unwrap();
        let x = Tensor::from_f32(dims.clone(), ramp(dims.iter().product(), 0.3)).unwrap();
        let before = run_once(&g, std::slice::from_ref(&x)).unwrap();
        assert_eq!(g.fold_batchnorm_into_conv().unwrap(), 1, "{what}");
        g.validate().unwrap();
        assert_eq!(g.nodes.len(), 1, "{what}");
        let after = run_once(&g, &[x]).unwrap();
        graph_common::compare(&after[0], &before[0], 1e-5, 1e-5).unwrap();
    }
}

#[test]
fn fixing_shapes_binds_symbols_and_folds_shape_chains() {
    // y = Reshape(a, Concat(Shape(b)[0], [-1])) + nothing: the chain folds once n is fixed.
    let sym = |d: &[Option<usize>]| {
        Some(
            d.iter()
                .map(|x| x.map_or(Dim::Symbolic("n".into()), Dim::Known))
                .collect::<Vec<_>>(),
        )
    };
    let mut g = Graph {
        inputs: vec![
            TensorInfo {
                name: "a".into(),
                dtype: DType::F32,
                shape: sym(&[None, Some(2), Some(3)]),
            },
            TensorInfo {
                name: "b".into(),
                dtype: DType::F32,
                shape: sym(&[None, Some(6)]),
            },
        ],
        outputs: vec![TensorInfo {
            name: "y".into(),
            dtype: DType::F32,
            shape: None,
        }],
        ..Default::default()
    };
    g.initializers
        .insert("zero".into(), Tensor::from_i64(vec![], vec![0]).unwrap());
    g.initializers.insert("minus1".into(), Tensor::vec_i64(vec![-1]));
    g.initializers.insert("ax0".into(), Tensor::vec_i64(vec![0]));
    g.nodes = vec![
        node("shape", Op::Shape { start: 0, end: None }, &["b"], &["s"]),
        node("gather", Op::Gather { axis: 0 }, &["s", "zero"], &["n"]),
        node("unsq", Op::Unsqueeze, &["n", "ax0"], &["n1"]),
        node("cat", Op::Concat { axis: 0 }, &["n1", "minus1"], &["target"]),
        node(
            "reshape",
            Op::Reshape { allowzero: false },
            &["a", "target"],
            &["r"],
        ),
        node("add", Op::Binary(BinaryOp::Add), &["r", "b"], &["y"]),
    ];
    g.validate().unwrap();
    let e = g
        .fix_input_shapes(&[("a", &[4, 2, 3]), ("b", &[5, 6])])
        .unwrap_err();
    assert!(e.to_string().contains("symbol `n`"), "{e}");
    g.fix_input_shapes(&[("a", &[4, 2, 3])]).unwrap();
    assert_eq!(
        g.inputs[1].concrete_shape(),
        Some(vec![4, 6]),
        "`n` bound on every input"
    );
    simplify(&mut g).unwrap();
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.onnx_name()).collect();
    assert_eq!(ops, ["Reshape", "Add"]);
    assert_eq!(g.tensor_info("y").unwrap().concrete_shape(), Some(vec![4, 6]));
    let a = Tensor::from_f32(vec![4, 2, 3], ramp(24, 1.0)).unwrap();
    let b = Tensor::from_f32(vec![4, 6], vec![1.0; 24]).unwrap();
    let y = run_once(&g, &[a.clone(), b]).unwrap();
    let want: Vec<f32> = a.as_f32().unwrap().iter().map(|v| v + 1.0).collect();
    assert_eq!(y[0].as_f32().unwrap(), want.as_slice());
}

/// x → Q/DQ (per tensor, u8) → Conv with per-channel int8 weights → MatMul with blocked int4
/// weights (block 2 along K) → y
fn qdq_graph() -> Graph {
    let mut g = Graph {
        name: "qdq".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &[1, 2, 4, 4])],
        outputs: vec![TensorInfo {
            name: "y".into(),
            dtype: DType::F32,
            shape: None,
        }],
        ..Default::default()
    };
    let mut put = |n: &str, t: Tensor| {
        g.initializers.insert(n.into(), t);
    };
    put("xs", Tensor::scalar_f32(0.05));
    put("xz", Tensor::from_u8(vec![], vec![128]).unwrap());
    put(
        "wq",
        Tensor::from_i8(vec![3, 2, 1, 1], vec![10, -20, 30, 40, -127, 5]).unwrap(),
    );
    put("ws", Tensor::from_f32(vec![3], vec![0.01, 0.02, 0.005]).unwrap());
    put("wz", Tensor::from_i8(vec![3], vec![0, 0, 0]).unwrap());
    // int4 [4, 2] weights, blocked along axis 0 with block 2 → scales [2, 2].
    let nibbles: [i8; 8] = [1, -2, 3, -4, 7, -8, 0, 5];
    let bytes: Vec<u8> = nibbles
        .chunks(2)
        .map(|p| (p[0] as u8 & 0xF) | ((p[1] as u8 & 0xF) << 4))
        .collect();
    put(
        "mq",
        Tensor::from_le_bytes(DType::I4, vec![4, 2], &bytes).unwrap(),
    );
    put(
        "ms",
        Tensor::from_f32(vec![2, 2], vec![0.1, 0.2, 0.3, 0.4]).unwrap(),
    );
    let tensor_q = QuantAttrs::default();
    let q0 = QuantAttrs {
        axis: 0,
        ..Default::default()
    };
    let blocked = QuantAttrs {
        axis: 0,
        block_size: 2,
        ..Default::default()
    };
    g.nodes = vec![
        node(
            "q",
            Op::QuantizeLinear(tensor_q.clone()),
            &["x", "xs", "xz"],
            &["xq"],
        ),
        node("dq", Op::DequantizeLinear(tensor_q), &["xq", "xs", "xz"], &["xd"]),
        node("wdq", Op::DequantizeLinear(q0), &["wq", "ws", "wz"], &["wd"]),
        node(
            "conv",
            Op::Conv(ConvAttrs {
                group: 1,
                ..Default::default()
            }),
            &["xd", "wd"],
            &["c"],
        ),
        node("mdq", Op::DequantizeLinear(blocked), &["mq", "ms"], &["md"]),
        node("flat", Op::Reshape { allowzero: false }, &["c", "shape"], &["c2"]),
        node("slice", Op::Slice, &["c2", "starts", "ends", "axes"], &["c3"]),
        node("mm", Op::MatMul, &["c3", "md"], &["y"]),
    ];
    g.initializers
        .insert("shape".into(), Tensor::vec_i64(vec![3, 16]));
    g.initializers.insert("starts".into(), Tensor::vec_i64(vec![0]));
    g.initializers.insert("ends".into(), Tensor::vec_i64(vec![4]));
    g.initializers.insert("axes".into(), Tensor::vec_i64(vec![1]));
    g
}

#[test]
fn qdq_graphs_survive_simplify_and_export() {
    let mut g = qdq_graph();
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    assert_eq!(g.tensor_info("y").unwrap().concrete_shape(), Some(vec![3, 2]));
    let x = Tensor::from_f32(vec![1, 2, 4, 4], ramp(32, 0.37)).unwrap();
    let want = run_once(&g, std::slice::from_ref(&x)).unwrap();
    simplify(&mut g).unwrap();
    let dq = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::DequantizeLinear(_)))
        .count();
    assert_eq!(
        dq, 3,
        "simplify keeps weight DequantizeLinear nodes (the QDQ structure)"
    );
    let bytes = xq::onnx::to_bytes(&g).unwrap();
    let back = xq::onnx::load_bytes(&bytes, None).unwrap();
    assert_eq!(back.initializers["mq"].dtype(), DType::I4);
    let got = run_once(&back, std::slice::from_ref(&x)).unwrap();
    assert_eq!(got[0], want[0]);

    // ONNX Runtime runs the exported QDQ graph and agrees.
    let Some(py) = graph_common::python("qdq_graphs_survive_simplify_and_export (ONNX Runtime part)") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("qdq.onnx");
    std::fs::write(&model, &bytes).unwrap();
    let input = dir.path().join("input_0.pb");
    std::fs::write(&input, xq::onnx::tensor_to_bytes("x", &x)).unwrap();
    graph_common::run_script(
        &py,
        "run_onnxruntime.py",
        &[model.to_str().unwrap(), dir.path().to_str().unwrap()],
    );
    let ort = graph_common::read_tensor(&dir.path().join("output_0.pb")).unwrap();
    graph_common::compare(&want[0], &ort, 1e-5, 1e-6).unwrap();
}
