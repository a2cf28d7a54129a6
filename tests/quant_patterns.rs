//! Annotation patterns on small hand-built graphs: which tensors get Q/DQ, which share
//! parameters, weight axes, scopes that leave nodes float, dynamic configs, and the
//! beyond-PT2E patterns. Every converted graph is also run against float (and, with
//! `XQ_PYTHON`, in onnxruntime).

mod common;
mod quant_common;

use quant_common::*;
use xq::ir::{DType, Graph, Op, Tensor, TensorInfo};
use xq::onnx::{add_onnx_node, AttrValue};
use xq::quant::{ActivationMode, NameMatch, QuantConfig, Quantizer, WeightGranularity};

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

struct Builder {
    graph: Graph,
    seed: u64,
}

impl Builder {
    fn new(input: &[usize]) -> Builder {
        Builder {
            graph: Graph {
                name: "g".into(),
                inputs: vec![TensorInfo::known("x", DType::F32, input)],
                ..Default::default()
            },
            seed: 1,
        }
    }

    fn constant(&mut self, name: &str, dims: &[usize], scale: f32) -> String {
        self.seed += 1;
        let n = dims.iter().product();
        let t = Tensor::from_f32(dims.to_vec(), values(n, self.seed, scale)).unwrap();
        self.graph.initializers.insert(name.into(), t);
        name.into()
    }

    fn node(&mut self, op: &str, name: &str, inputs: &[&str], attrs: &[(&str, AttrValue)]) -> String {
        let out = format!("{name}_out");
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        let attrs: Vec<(String, AttrValue)> = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        add_onnx_node(
            &mut self.graph,
            op,
            name,
            &inputs,
            std::slice::from_ref(&out),
            &attrs,
        )
        .unwrap();
        out
    }

    fn finish(mut self, outputs: &[&str]) -> Graph {
        for o in outputs {
            self.graph.outputs.push(TensorInfo {
                name: o.to_string(),
                dtype: DType::F32,
                shape: None,
            });
        }
        self.graph.validate().unwrap();
        self.graph.infer_shapes().unwrap();
        self.graph
    }
}

fn input(dims: &[usize], seed: u64) -> Tensor {
    Tensor::from_f32(dims.to_vec(), values(dims.iter().product(), seed, 2.0)).unwrap()
}

/// Prepares, calibrates on 8 pseudo-random samples, converts.
fn quantize(q: &mut Quantizer, graph: &Graph, dims: &[usize]) -> Graph {
    q.prepare(graph).unwrap();
    for seed in 0..8 {
        q.calibrate(&[input(dims, 100 + seed)]).unwrap();
    }
    q.convert().unwrap()
}

fn count(g: &Graph, name: &str) -> usize {
    g.nodes.iter().filter(|n| n.op.onnx_name() == name).count()
}

fn qparams_of(q: &Quantizer, tensor: &str) -> Option<(f32, i32)> {
    q.activation_qparams()
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == tensor)
        .map(|(_, p)| (p.scale(), p.zero_point()))
}

/// SQNR of the QDQ graph's output against the float graph's on a fresh sample; with
/// `XQ_PYTHON`, also checks onnxruntime runs the saved QDQ model to about the same output.
fn check_outputs(float: &Graph, qdq: &Graph, dims: &[usize], min_sqnr: f64, name: &str) {
    let x = input(dims, 7);
    let reference = xq::interp::run_once(float, std::slice::from_ref(&x)).unwrap();
    let ours = xq::interp::run_once(qdq, std::slice::from_ref(&x)).unwrap();
    let sqnr = sqnr_db(reference[0].as_f32().unwrap(), ours[0].as_f32().unwrap());
    println!("{name}: SQNR {sqnr:.1} dB");
    assert!(sqnr >= min_sqnr, "{name}: SQNR {sqnr:.1} dB");
    let Some(python) = python_or_skip(name) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.onnx");
    xq::onnx::save_file(qdq, &model).unwrap();
    let xin = dir.path().join("x.npy");
    write_npy(&xin, &x);
    let ort = run_onnxruntime(&python, &model, &[&xin], dir.path());
    let agreement = sqnr_db(ours[0].as_f32().unwrap(), ort.as_f32().unwrap());
    println!("{name}: onnxruntime vs xq interpreter {agreement:.1} dB");
    assert!(
        agreement >= min_sqnr,
        "{name}: onnxruntime disagrees ({agreement:.1} dB)"
    );
}

/// A MobileNetV3-style block: conv + relu6, depthwise conv + relu, squeeze-excite (global
/// pool, 1x1 convs, hardsigmoid, broadcast Mul), residual Add, hardswish, concat, max pool,
/// reshape.
fn se_block() -> Graph {
    let mut b = Builder::new(&[1, 8, 6, 6]);
    let w0 = b.constant("w0", &[8, 8, 3, 3], 0.2);
    let b0 = b.constant("b0", &[8], 0.1);
    let lo = b.constant("zero", &[], 0.0);
    b.graph.initializers.insert("six".into(), Tensor::scalar_f32(6.0));
    let pads = AttrValue::Ints(vec![1, 1, 1, 1]);
    let c0 = b.node("Conv", "conv0", &["x", &w0, &b0], &[("pads", pads.clone())]);
    let r0 = b.node("Clip", "relu6", &[&c0, &lo, "six"], &[]);
    let wd = b.constant("wd", &[8, 1, 3, 3], 0.5);
    let dw = b.node(
        "Conv",
        "dw",
        &[&r0, &wd],
        &[("pads", pads), ("group", AttrValue::Int(8))],
    );
    let rd = b.node("Relu", "dw_relu", &[&dw], &[]);
    let gap = b.node("GlobalAveragePool", "se_pool", &[&rd], &[]);
    let w1 = b.constant("w1", &[4, 8, 1, 1], 0.5);
    let s1 = b.node("Conv", "se_fc1", &[&gap, &w1], &[]);
    let s1r = b.node("Relu", "se_relu", &[&s1], &[]);
    let w2 = b.constant("w2", &[8, 4, 1, 1], 0.5);
    let s2 = b.node("Conv", "se_fc2", &[&s1r, &w2], &[]);
    let gate = b.node(
        "HardSigmoid",
        "se_gate",
        &[&s2],
        &[("alpha", AttrValue::Float(1.0 / 6.0))],
    );
    let scaled = b.node("Mul", "se_mul", &[&rd, &gate], &[]);
    let res = b.node("Add", "residual", &[&scaled, &r0], &[]);
    let hs = b.node("HardSwish", "hswish", &[&res], &[]);
    let cat = b.node("Concat", "cat", &[&hs, &r0], &[("axis", AttrValue::Int(1))]);
    let mp = b.node(
        "MaxPool",
        "pool",
        &[&cat],
        &[
            ("kernel_shape", AttrValue::Ints(vec![2, 2])),
            ("strides", AttrValue::Ints(vec![2, 2])),
        ],
    );
    b.graph
        .initializers
        .insert("shape".into(), Tensor::vec_i64(vec![1, -1]));
    let flat = b.node("Reshape", "flatten", &[&mp, "shape"], &[]);
    b.finish(&[&flat])
}

#[test]
fn se_block_patterns_share_and_fuse_as_pt2e() {
    let graph = se_block();
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    let qdq = quantize(&mut q, &graph, &[1, 8, 6, 6]);
    let report = q.report();
    // Fused activations carry the quantized output; the conv outputs are not quantized.
    assert!(qparams_of(&q, "conv0_out").is_none(), "{report}");
    assert!(qparams_of(&q, "relu6_out").is_some());
    assert!(qparams_of(&q, "dw_out").is_none());
    assert!(report.contains("relu6 (Clip): fused into conv0"), "{report}");
    // Pooling and data movement share their input's parameters.
    assert_eq!(qparams_of(&q, "se_pool_out"), qparams_of(&q, "dw_relu_out"));
    assert_eq!(qparams_of(&q, "pool_out"), qparams_of(&q, "cat_out"));
    assert_eq!(qparams_of(&q, "flatten_out"), qparams_of(&q, "cat_out"));
    // Concat: inputs and output share one observer.
    assert_eq!(qparams_of(&q, "hswish_out"), qparams_of(&q, "cat_out"));
    assert_eq!(qparams_of(&q, "relu6_out"), qparams_of(&q, "cat_out"));
    // Mul / Add / hardsigmoid / hardswish outputs get their own observers.
    for t in [
        "se_gate_out",
        "se_mul_out",
        "residual_out",
        "hswish_out",
        "se_relu_out",
    ] {
        assert!(qparams_of(&q, t).is_some(), "{t} not quantized\n{report}");
    }
    // Weights: 4 convs, per-channel along axis 0; the depthwise weight has 8 channels.
    let dq_axis0: Vec<_> = qdq
        .nodes
        .iter()
        .filter(|n| {
            matches!(&n.op, Op::DequantizeLinear(a) if a.axis == 0)
                && qdq.initializers[&n.inputs[0]].dtype() == DType::I8
                && qdq.initializers[&n.inputs[1]].dims().len() == 1
        })
        .collect();
    assert_eq!(dq_axis0.len(), 4);
    assert_eq!(qdq.initializers["wd_scale"].dims(), &[8]);
    // Bias stays float.
    assert_eq!(qdq.initializers["b0"].dtype(), DType::F32);
    // Graph output name is kept.
    assert_eq!(qdq.outputs[0].name, "flatten_out");
    check_outputs(&graph, &qdq, &[1, 8, 6, 6], 20.0, "se_block");
}

#[test]
fn linear_weight_axes_follow_gemm_trans_b_and_matmul_layout() {
    let mut b = Builder::new(&[4, 6]);
    let wt = b.constant("w_t", &[5, 6], 0.5); // transB=1: [N, K], axis 0
    let g1 = b.node("Gemm", "gemm_t", &["x", &wt], &[("transB", AttrValue::Int(1))]);
    let w = b.constant("w_kn", &[5, 3], 0.5); // transB=0: [K, N], axis 1
    let g2 = b.node("Gemm", "gemm_n", &[&g1, &w], &[]);
    let wm = b.constant("w_mm", &[3, 7], 0.5); // MatMul [K, N], axis 1
    let mm = b.node("MatMul", "matmul", &[&g2, &wm], &[]);
    // MatMul of two activations (beyond PT2E): [4, 7] x [7, 4].
    b.graph
        .initializers
        .insert("perm_shape".into(), Tensor::vec_i64(vec![7, 4]));
    let t = b.node("Transpose", "tr", &[&mm], &[]);
    let mm2 = b.node("MatMul", "self_matmul", &[&mm, &t], &[]);
    let graph = b.finish(&[&mm2]);
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    let qdq = quantize(&mut q, &graph, &[4, 6]);
    let axis_of = |w: &str| {
        let dq = qdq
            .nodes
            .iter()
            .find(|n| n.inputs[0] == format!("{w}_quantized"))
            .unwrap();
        let Op::DequantizeLinear(a) = &dq.op else { panic!() };
        (a.axis, qdq.initializers[&format!("{w}_scale")].dims().to_vec())
    };
    assert_eq!(axis_of("w_t"), (0, vec![5]));
    assert_eq!(axis_of("w_kn"), (1, vec![3]));
    assert_eq!(axis_of("w_mm"), (1, vec![7]));
    // Both activation inputs of the second MatMul are quantized; the transpose shares.
    assert_eq!(qparams_of(&q, "tr_out"), qparams_of(&q, "matmul_out"));
    assert!(qparams_of(&q, "self_matmul_out").is_some());
    assert!(q
        .report()
        .contains("self_matmul (MatMul): quantized static: MatMul of two activations"));
    check_outputs(&graph, &qdq, &[4, 6], 20.0, "linear_axes");
}

#[test]
fn per_tensor_weights_have_scalar_scales() {
    let mut b = Builder::new(&[2, 6]);
    let w = b.constant("w", &[6, 4], 0.5);
    let y = b.node("MatMul", "mm", &["x", &w], &[]);
    let graph = b.finish(&[&y]);
    let config = QuantConfig {
        weights: WeightGranularity::PerTensor,
        ..QuantConfig::default()
    };
    let mut q = Quantizer::new(Some(config)).unwrap();
    let qdq = quantize(&mut q, &graph, &[2, 6]);
    assert_eq!(qdq.initializers["w_scale"].dims(), &[] as &[usize]);
    assert_eq!(qdq.initializers["w_zero_point"].as_i8().unwrap(), &[0]);
    let max_abs = graph.initializers["w"]
        .as_f32()
        .unwrap()
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    let scale = qdq.initializers["w_scale"].as_f32().unwrap()[0];
    assert!(
        (scale - max_abs / 127.0).abs() <= 1e-7,
        "{scale} vs {}",
        max_abs / 127.0
    );
    check_outputs(&graph, &qdq, &[2, 6], 25.0, "per_tensor");
}

#[test]
fn scopes_leave_nodes_float_and_override_recipes() {
    let graph = se_block();
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    q.set_node_name(NameMatch::Prefix("se_".into()), None).unwrap();
    q.set_operator_type("HardSwish", None).unwrap();
    let qdq = quantize(&mut q, &graph, &[1, 8, 6, 6]);
    let report = q.report();
    assert!(
        report.contains("se_fc1 (Conv): float: the scopes leave it float"),
        "{report}"
    );
    assert!(
        report.contains("hswish (HardSwish): float: the scopes leave it float"),
        "{report}"
    );
    // Float convs keep float weights; quantized ones read int8.
    assert!(qdq.initializers.contains_key("w1") && !qdq.initializers.contains_key("w1_quantized"));
    assert!(qdq.initializers.contains_key("w0_quantized") && !qdq.initializers.contains_key("w0"));
    // Inside the float scope nothing is observed; the residual Add reading the float
    // se_mul output still quantizes both of its inputs.
    assert!(qparams_of(&q, "se_pool_out").is_none());
    assert!(qparams_of(&q, "se_gate_out").is_none());
    assert!(qparams_of(&q, "se_mul_out").is_some());
    // The float HardSwish's output is still quantized as a Concat input.
    assert_eq!(qparams_of(&q, "hswish_out"), qparams_of(&q, "cat_out"));
    check_outputs(&graph, &qdq, &[1, 8, 6, 6], 20.0, "scoped");
}

#[test]
fn dynamic_config_quantizes_linear_and_dense_conv_only() {
    let graph = se_block();
    let config = QuantConfig {
        activations: ActivationMode::Dynamic,
        ..QuantConfig::default()
    };
    let mut q = Quantizer::new(Some(config)).unwrap();
    q.prepare(&graph).unwrap();
    let qdq = q.convert().unwrap();
    let report = q.report();
    assert!(
        report.contains("dw (Conv): float: dynamic quantization skips depthwise conv"),
        "{report}"
    );
    assert!(report.contains("se_mul (Mul): float: dynamic configs quantize only linear and conv"));
    // conv0, se_fc1, se_fc2 get run-time quantized inputs and int8 weights.
    assert_eq!(count(&qdq, "DynamicQuantizeLinear"), 3);
    assert_eq!(count(&qdq, "QuantizeLinear"), 0);
    assert!(qdq.initializers.contains_key("wd") && !qdq.initializers.contains_key("wd_quantized"));
    check_outputs(&graph, &qdq, &[1, 8, 6, 6], 20.0, "dynamic");
}

#[test]
fn resize_shares_its_input_qparams_and_is_delegated_whole() {
    let mut b = Builder::new(&[1, 4, 3, 5]);
    let w = b.constant("w", &[4, 4, 1, 1], 0.5);
    let c = b.node("Conv", "conv", &["x", &w], &[]);
    b.graph.initializers.insert(
        "scales".into(),
        Tensor::from_f32(vec![4], vec![1.0, 1.0, 2.0, 2.0]).unwrap(),
    );
    let linear = [("mode", AttrValue::String("linear".into()))];
    let up = b.node("Resize", "up", &[&c, "", "scales"], &linear);
    let near = b.node("Resize", "near", &[&up, "", "scales"], &[]);
    let graph = b.finish(&[&near]);
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    let qdq = quantize(&mut q, &graph, &[1, 4, 3, 5]);
    assert_eq!(qparams_of(&q, "up_out"), qparams_of(&q, "conv_out"));
    assert_eq!(qparams_of(&q, "near_out"), qparams_of(&q, "conv_out"));
    let (_, report) = xq::delegate::lower(&qdq, xq::delegate::PartitionMode::All).unwrap();
    assert!(report.refused.is_empty(), "{}", report.text());
    assert_eq!(
        report.partitions[0].ops.get("Resize"),
        Some(&2),
        "{}",
        report.text()
    );
    check_outputs(&graph, &qdq, &[1, 4, 3, 5], 20.0, "resize");
}

/// A segmentation head's last bilinear upsampling writes the graph output: it stays float
/// (one rounding less than an int8 output on the input's grid, as PT2E leaves it), and the
/// delegate still runs it, from its int8 input, with nothing interpreted.
#[test]
fn a_bilinear_resize_writing_the_graph_output_keeps_a_float_output_and_is_delegated() {
    let build = |final_nearest: bool| {
        let mut b = Builder::new(&[1, 4, 6, 6]);
        let w = b.constant("w", &[4, 4, 1, 1], 0.5);
        let c = b.node("Conv", "conv", &["x", &w], &[]);
        b.graph.initializers.insert(
            "scales".into(),
            Tensor::from_f32(vec![4], vec![1.0, 1.0, 4.0, 4.0]).unwrap(),
        );
        let mode = if final_nearest { "nearest" } else { "linear" };
        let attrs = [("mode", AttrValue::String(mode.into()))];
        let up = b.node("Resize", "up", &[&c, "", "scales"], &attrs);
        b.finish(&[&up])
    };
    let dims = [1, 4, 6, 6];
    let graph = build(false);
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    let qdq = quantize(&mut q, &graph, &dims);
    assert_eq!(qparams_of(&q, "up_out"), None, "the bilinear output stays float");
    assert!(qparams_of(&q, "conv_out").is_some());
    let resize = qdq.nodes.iter().find(|n| n.op.onnx_name() == "Resize").unwrap();
    assert!(
        qdq.outputs.iter().any(|o| o.name == resize.outputs[0]),
        "the Resize writes the graph output directly"
    );
    let (_, report) = xq::delegate::lower(&qdq, xq::delegate::PartitionMode::All).unwrap();
    assert!(report.refused.is_empty(), "{}", report.text());
    assert_eq!(report.interpreted_nodes, 0, "{}", report.text());
    let mut qn = Quantizer::new(Some(QuantConfig::default())).unwrap();
    let nearest_last = quantize(&mut qn, &build(true), &dims);
    assert!(
        qparams_of(&qn, "up_out").is_some(),
        "a nearest Resize only copies values: its output shares the input's parameters"
    );
    assert_eq!(
        count(&nearest_last, "QuantizeLinear"),
        count(&qdq, "QuantizeLinear") + 1
    );
    check_outputs(&graph, &qdq, &dims, 25.0, "bilinear resize to the output");
}

#[test]
fn split_outputs_share_the_input_qparams_and_are_delegated_whole() {
    let mut b = Builder::new(&[1, 4, 3, 5]);
    let w = b.constant("w", &[4, 4, 1, 1], 0.5);
    let c = b.node("Conv", "conv", &["x", &w], &[]);
    b.graph
        .initializers
        .insert("parts".into(), Tensor::vec_i64(vec![1, 3]));
    let outs = ["part0".to_string(), "part1".to_string()];
    add_onnx_node(
        &mut b.graph,
        "Split",
        "split",
        &[c.clone(), "parts".into()],
        &outs,
        &[("axis".to_string(), AttrValue::Int(1))],
    )
    .unwrap();
    let w2 = b.constant("w2", &[2, 3, 1, 1], 0.5);
    let c2 = b.node("Conv", "conv2", &["part1", &w2], &[]);
    let graph = b.finish(&["part0", &c2]);
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    let qdq = quantize(&mut q, &graph, &[1, 4, 3, 5]);
    assert_eq!(qparams_of(&q, "part0"), qparams_of(&q, "conv_out"));
    assert_eq!(qparams_of(&q, "part1"), qparams_of(&q, "conv_out"));
    let (_, report) = xq::delegate::lower(&qdq, xq::delegate::PartitionMode::All).unwrap();
    assert!(report.refused.is_empty(), "{}", report.text());
    assert_eq!(
        report.partitions[0].ops.get("Split"),
        Some(&1),
        "{}",
        report.text()
    );
}

#[test]
fn reductions_over_constant_axes_share_their_input_qparams_and_sums_stay_float() {
    let mut b = Builder::new(&[1, 4, 3, 3]);
    let w = b.constant("w", &[4, 4, 1, 1], 0.5);
    let c = b.node("Conv", "conv", &["x", &w], &[]);
    b.graph
        .initializers
        .insert("hw".into(), Tensor::vec_i64(vec![-2, -1]));
    b.graph.initializers.insert("ch".into(), Tensor::vec_i64(vec![1]));
    let m1 = b.node("ReduceMean", "mean_hw", &[&c, "hw"], &[]);
    let m2 = b.node("ReduceMean", "mean_c", &[&c, "ch"], &[]);
    let m3 = b.node("ReduceMax", "max_c", &[&c, "ch"], &[]);
    let s = b.node("ReduceSum", "sum_c", &[&c, "ch"], &[]);
    let graph = b.finish(&[&m1, &m2, &m3, &s]);
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    let qdq = quantize(&mut q, &graph, &[1, 4, 3, 3]);
    for out in ["mean_hw_out", "mean_c_out", "max_c_out"] {
        assert_eq!(qparams_of(&q, out), qparams_of(&q, "conv_out"), "{out}");
    }
    assert!(qparams_of(&q, "sum_c_out").is_none());
    assert!(q
        .report()
        .contains("sum_c (ReduceSum): float: no quantization pattern"));
    // The three quantized reductions run int8; the sum (float) reads a dequantized input.
    let (_, report) = xq::delegate::lower(&qdq, xq::delegate::PartitionMode::All).unwrap();
    let delegated: usize = report
        .partitions
        .iter()
        .map(|p| p.ops.get("ReduceMean").unwrap_or(&0) + p.ops.get("ReduceMax").unwrap_or(&0))
        .sum();
    assert_eq!(delegated, 3, "{}", report.text());
    check_outputs(&graph, &qdq, &[1, 4, 3, 3], 20.0, "reductions");
}

#[test]
fn constant_operands_become_int8_initializers() {
    let mut b = Builder::new(&[1, 4, 3, 3]);
    let w = b.constant("w", &[4, 4, 1, 1], 0.5);
    let c = b.node("Conv", "conv", &["x", &w], &[]);
    let k = b.constant("k", &[1, 4, 1, 1], 1.0);
    let y = b.node("Add", "add_const", &[&c, &k], &[]);
    let graph = b.finish(&[&y]);
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    let qdq = quantize(&mut q, &graph, &[1, 4, 3, 3]);
    let (scale, zp) = qparams_of(&q, "k").unwrap();
    let ints = qdq.initializers["k_quantized"].as_i8().unwrap();
    for (&i, &v) in ints.iter().zip(graph.initializers["k"].as_f32().unwrap()) {
        let back = (i32::from(i) - zp) as f32 * scale;
        assert!((back - v).abs() <= scale, "{v} -> {i} -> {back}");
    }
    assert!(!qdq.initializers.contains_key("k"));
    // One Q per activation (x, conv output, add output); the constant has only a DQ.
    assert_eq!(count(&qdq, "QuantizeLinear"), 3);
    assert_eq!(count(&qdq, "DequantizeLinear"), 5);
    check_outputs(&graph, &qdq, &[1, 4, 3, 3], 25.0, "constant_operand");
}

#[test]
fn a_batch_for_a_batch_one_model_is_calibrated_sample_by_sample() {
    let mut b = Builder::new(&[1, 6]);
    let w = b.constant("w", &[6, 4], 0.5);
    let y = b.node("MatMul", "mm", &["x", &w], &[]);
    let graph = b.finish(&[&y]);
    let batch = input(&[5, 6], 3);
    let mut batched = Quantizer::new(Some(QuantConfig::default())).unwrap();
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = progress.clone();
    batched.set_progress(Some(Box::new(move |d, t| log.lock().unwrap().push((d, t)))), 5);
    batched.prepare(&graph).unwrap();
    batched.calibrate(std::slice::from_ref(&batch)).unwrap();
    assert_eq!(batched.samples_seen(), 5);
    assert_eq!(
        *progress.lock().unwrap(),
        vec![(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    );

    let mut single = Quantizer::new(Some(QuantConfig::default())).unwrap();
    single.prepare(&graph).unwrap();
    for row in batch.as_f32().unwrap().chunks_exact(6) {
        single
            .calibrate(&[Tensor::from_f32(vec![1, 6], row.to_vec()).unwrap()])
            .unwrap();
    }
    assert_eq!(
        batched.activation_qparams().unwrap(),
        single.activation_qparams().unwrap()
    );
    // A wrong inner dimension is still a shape error, and changes nothing.
    let wrong = input(&[5, 7], 3);
    assert!(matches!(
        batched.calibrate(&[wrong]),
        Err(xq::Error::ShapeMismatch(_))
    ));
    assert_eq!(batched.samples_seen(), 5);
}

#[test]
fn tensors_without_finite_calibration_values_fail_convert_by_name() {
    let mut b = Builder::new(&[1, 6]);
    let w = b.constant("w", &[6, 4], 0.5);
    let y = b.node("MatMul", "mm", &["x", &w], &[]);
    let graph = b.finish(&[&y]);
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    q.prepare(&graph).unwrap();
    q.calibrate(&[Tensor::from_f32(vec![1, 6], vec![f32::NAN; 6]).unwrap()])
        .unwrap();
    let err = q.convert().unwrap_err();
    assert!(matches!(err, xq::Error::InvalidState(_)), "{err}");
    assert!(
        err.to_string().contains("`x`") || err.to_string().contains("`mm_out`"),
        "{err}"
    );
    // A finite sample afterwards makes it convertible.
    q.calibrate(&[input(&[1, 6], 4)]).unwrap();
    assert!(q.convert().is_ok());
}

#[test]
fn grouped_1d_conv_with_fused_relu_and_linear_with_fused_relu() {
    let mut b = Builder::new(&[2, 4, 10]);
    let w = b.constant("w1d", &[6, 2, 3], 0.5);
    let c = b.node("Conv", "conv1d", &["x", &w], &[("group", AttrValue::Int(2))]);
    let r = b.node("Relu", "conv_relu", &[&c], &[]);
    b.graph
        .initializers
        .insert("flat_shape".into(), Tensor::vec_i64(vec![2, 48]));
    let f = b.node("Reshape", "flat", &[&r, "flat_shape"], &[]);
    let wl = b.constant("wl", &[3, 48], 0.2);
    let bl = b.constant("bl", &[3], 0.1);
    let g = b.node("Gemm", "fc", &[&f, &wl, &bl], &[("transB", AttrValue::Int(1))]);
    let gr = b.node("Relu", "fc_relu", &[&g], &[]);
    let graph = b.finish(&[&gr]);
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    let qdq = quantize(&mut q, &graph, &[2, 4, 10]);
    let report = q.report();
    assert!(
        report.contains("conv1d (Conv): quantized static: grouped conv + fused activation"),
        "{report}"
    );
    assert!(
        report.contains("fc (Gemm): quantized static: linear (Gemm) + fused activation"),
        "{report}"
    );
    assert!(qparams_of(&q, "conv1d_out").is_none() && qparams_of(&q, "fc_out").is_none());
    assert_eq!(qparams_of(&q, "flat_out"), qparams_of(&q, "conv_relu_out"));
    // A fused ReLU's output has a zero point at the bottom of the range.
    assert_eq!(qparams_of(&q, "fc_relu_out").unwrap().1, -128);
    assert_eq!(qdq.initializers["w1d_scale"].dims(), &[6]);
    assert_eq!(qdq.initializers["wl_scale"].dims(), &[3]);
    check_outputs(&graph, &qdq, &[2, 4, 10], 20.0, "conv1d_linear");

    // Dynamic: a grouped (not depthwise) conv is quantized like a dense one.
    let dynamic = QuantConfig {
        activations: ActivationMode::Dynamic,
        ..QuantConfig::default()
    };
    let mut q = Quantizer::new(Some(dynamic)).unwrap();
    q.prepare(&graph).unwrap();
    let qdq = q.convert().unwrap();
    assert!(
        q.report().contains("conv1d (Conv): quantized dynamic"),
        "{}",
        q.report()
    );
    assert_eq!(count(&qdq, "DynamicQuantizeLinear"), 2);
    check_outputs(&graph, &qdq, &[2, 4, 10], 20.0, "conv1d_linear_dynamic");
}

/// (lookup steps, interpreted steps) of the program lowered from `qdq`.
fn lut_and_interpreted_steps(qdq: &Graph) -> (usize, usize, String) {
    use xq::program::{KernelSpec, StepSpec};
    let (spec, report) = xq::delegate::lower(qdq, xq::delegate::PartitionMode::All).unwrap();
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
    let interpreted = spec
        .steps
        .iter()
        .filter(|s| matches!(s, StepSpec::Interp { .. }))
        .count();
    (luts, interpreted, report.text())
}

#[test]
fn bounded_activations_get_pytorchs_fixed_qparams_and_others_are_observed() {
    let mut b = Builder::new(&[1, 4, 3, 5]);
    let w = b.constant("w", &[4, 4, 1, 1], 0.5);
    let c = b.node("Conv", "conv", &["x", &w], &[]);
    let alpha = |v: f32| [("alpha", AttrValue::Float(v))];
    let outs = [
        b.node("Sigmoid", "sig", &[&c], &[]),
        b.node("Tanh", "tanh", &[&c], &[]),
        b.node("HardSigmoid", "hsig", &[&c], &[]),
        b.node("LeakyRelu", "leaky", &[&c], &alpha(0.1)),
        b.node("Elu", "elu", &[&c], &alpha(1.0)),
        b.node("Gelu", "gelu", &[&c], &[]),
        b.node("Softplus", "softplus", &[&c], &[]),
        b.node("HardSwish", "hswish", &[&c], &[]),
    ];
    let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
    let graph = b.finish(&refs);
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    let qdq = quantize(&mut q, &graph, &[1, 4, 3, 5]);
    // PyTorch's FixedQParamsObserver values (quint8 zero point 0 / 128 is int8 -128 / 0).
    assert_eq!(qparams_of(&q, "sig_out"), Some((1.0 / 256.0, -128)));
    assert_eq!(qparams_of(&q, "hsig_out"), Some((1.0 / 256.0, -128)));
    assert_eq!(qparams_of(&q, "tanh_out"), Some((2.0 / 256.0, 0)));
    for t in [
        "leaky_out",
        "elu_out",
        "gelu_out",
        "softplus_out",
        "hswish_out",
        "conv_out",
    ] {
        let (scale, _) = qparams_of(&q, t).unwrap_or_else(|| panic!("{t} not quantized\n{}", q.report()));
        assert!(scale != 1.0 / 256.0 && scale != 2.0 / 256.0, "{t}: {scale}");
    }
    let (luts, interpreted, report) = lut_and_interpreted_steps(&qdq);
    assert_eq!((luts, interpreted), (outs.len(), 0), "{report}");
    check_outputs(&graph, &qdq, &[1, 4, 3, 5], 25.0, "fixed qparams");
}

#[test]
fn a_narrowed_activation_range_observes_bounded_outputs() {
    let mut b = Builder::new(&[1, 4, 3, 5]);
    let w = b.constant("w", &[4, 4, 1, 1], 0.5);
    let c = b.node("Conv", "conv", &["x", &w], &[]);
    let s = b.node("Sigmoid", "sig", &[&c], &[]);
    let graph = b.finish(&[&s]);
    let config = QuantConfig {
        activation_range: (-127, 127),
        ..QuantConfig::default()
    };
    let mut q = Quantizer::new(Some(config)).unwrap();
    quantize(&mut q, &graph, &[1, 4, 3, 5]);
    assert_ne!(qparams_of(&q, "sig_out").unwrap().0, 1.0 / 256.0);
}

#[test]
fn silu_and_x_times_hardsigmoid_are_one_unit_delegated_as_one_table() {
    for gate in ["Sigmoid", "HardSigmoid"] {
        let mut b = Builder::new(&[1, 4, 3, 5]);
        let w = b.constant("w", &[4, 4, 1, 1], 0.5);
        let c = b.node("Conv", "conv", &["x", &w], &[]);
        let s = b.node(gate, "gate", &[&c], &[]);
        let m = b.node("Mul", "silu", &[&c, &s], &[]);
        let w2 = b.constant("w2", &[4, 4, 1, 1], 0.5);
        let c2 = b.node("Conv", "conv2", &[&m, &w2], &[]);
        let graph = b.finish(&[&c2]);
        let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
        let qdq = quantize(&mut q, &graph, &[1, 4, 3, 5]);
        let report = q.report();
        assert!(qparams_of(&q, "gate_out").is_none(), "{gate}: {report}");
        assert!(qparams_of(&q, "silu_out").is_some(), "{gate}: {report}");
        assert!(report.contains("silu (Mul): one unit with gate"), "{report}");
        let (luts, interpreted, text) = lut_and_interpreted_steps(&qdq);
        assert_eq!((luts, interpreted), (1, 0), "{gate}: {text}");
        check_outputs(&graph, &qdq, &[1, 4, 3, 5], 20.0, gate);
    }
}

#[test]
fn written_out_hardswish_and_gelu_are_one_unit_delegated_as_one_table() {
    for form in ["hardswish", "gelu"] {
        let mut b = Builder::new(&[1, 4, 3, 5]);
        let w = b.constant("w", &[4, 4, 1, 1], 0.5);
        let c = b.node("Conv", "conv", &["x", &w], &[]);
        for (name, v) in [
            ("zero", 0.0),
            ("three", 3.0),
            ("six", 6.0),
            ("one", 1.0),
            ("half", 0.5),
        ] {
            b.graph.initializers.insert(name.into(), Tensor::scalar_f32(v));
        }
        b.graph
            .initializers
            .insert("sqrt2".into(), Tensor::scalar_f32(std::f32::consts::SQRT_2));
        let out = if form == "hardswish" {
            let a = b.node("Add", "add3", &[&c, "three"], &[]);
            let r = b.node("Clip", "relu6", &[&a, "zero", "six"], &[]);
            let m = b.node("Mul", "mul", &[&c, &r], &[]);
            b.node("Div", "div6", &[&m, "six"], &[])
        } else {
            let d = b.node("Div", "div", &[&c, "sqrt2"], &[]);
            let e = b.node("Erf", "erf", &[&d], &[]);
            let a = b.node("Add", "add1", &[&e, "one"], &[]);
            let m = b.node("Mul", "mul", &[&c, &a], &[]);
            b.node("Mul", "half", &[&m, "half"], &[])
        };
        let w2 = b.constant("w2", &[4, 4, 1, 1], 0.5);
        let c2 = b.node("Conv", "conv2", &[&out, &w2], &[]);
        let graph = b.finish(&[&c2]);
        let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
        let qdq = quantize(&mut q, &graph, &[1, 4, 3, 5]);
        let report = q.report();
        assert!(qparams_of(&q, "mul_out").is_none(), "{form}: {report}");
        assert!(qparams_of(&q, &out).is_some(), "{form}: {report}");
        assert!(report.contains("(Mul): one unit with"), "{report}");
        // Activations quantized: the input, the two conv outputs and the unit's output.
        assert_eq!(count(&qdq, "QuantizeLinear"), 4, "{form}: {report}");
        let (luts, interpreted, text) = lut_and_interpreted_steps(&qdq);
        assert_eq!((luts, interpreted), (1, 0), "{form}: {text}");
        check_outputs(&graph, &qdq, &[1, 4, 3, 5], 20.0, form);
    }
}

#[test]
fn an_element_wise_chain_with_an_outside_reader_is_annotated_per_node() {
    let mut b = Builder::new(&[1, 4, 3, 5]);
    let w = b.constant("w", &[4, 4, 1, 1], 0.5);
    let c = b.node("Conv", "conv", &["x", &w], &[]);
    let s = b.node("Sigmoid", "gate", &[&c], &[]);
    let m = b.node("Mul", "silu", &[&c, &s], &[]);
    // The gate is also a graph output: the SiLU is no unit.
    let graph = b.finish(&[&m, &s]);
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    quantize(&mut q, &graph, &[1, 4, 3, 5]);
    assert_eq!(
        qparams_of(&q, "gate_out"),
        Some((1.0 / 256.0, -128)),
        "{}",
        q.report()
    );
    assert!(qparams_of(&q, "silu_out").is_some());
}

#[test]
fn silu_feeding_a_squeeze_excite_gate_is_still_one_unit() {
    // EfficientNet's block: SiLU, then squeeze-excite scales the SiLU output by a sigmoid
    // gate computed from it (an element-wise Mul with a non-constant second operand, which
    // stays outside the unit).
    let mut b = Builder::new(&[1, 4, 3, 5]);
    let w = b.constant("w", &[4, 4, 1, 1], 0.5);
    let c = b.node("Conv", "conv", &["x", &w], &[]);
    let s = b.node("Sigmoid", "gate", &[&c], &[]);
    let silu = b.node("Mul", "silu", &[&c, &s], &[]);
    let pool = b.node("GlobalAveragePool", "se_pool", &[&silu], &[]);
    let w1 = b.constant("w1", &[4, 4, 1, 1], 0.5);
    let fc = b.node("Conv", "se_fc", &[&pool, &w1], &[]);
    let se_gate = b.node("Sigmoid", "se_gate", &[&fc], &[]);
    let scaled = b.node("Mul", "se_mul", &[&silu, &se_gate], &[]);
    let graph = b.finish(&[&scaled]);
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    let qdq = quantize(&mut q, &graph, &[1, 4, 3, 5]);
    let report = q.report();
    assert!(report.contains("silu (Mul): one unit with gate"), "{report}");
    assert!(qparams_of(&q, "gate_out").is_none(), "{report}");
    assert_eq!(
        qparams_of(&q, "se_gate_out"),
        Some((1.0 / 256.0, -128)),
        "{report}"
    );
    let (luts, interpreted, text) = lut_and_interpreted_steps(&qdq);
    assert_eq!((luts, interpreted), (2, 0), "{text}");
    check_outputs(&graph, &qdq, &[1, 4, 3, 5], 20.0, "silu + squeeze-excite");
}
