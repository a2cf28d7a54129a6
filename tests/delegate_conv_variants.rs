//! Convolution variants of mobile vision models, int8 end to end:
//! - ConvTranspose: the QDQ graph `Q → DQ → ConvTranspose(DQ(w int8), bias) [→ Relu] → Q → DQ`
//!   (built here, no Python) with strides, pads, output padding, output shape, dilations,
//!   groups and depthwise, per-tensor and per-channel weights, is delegated whole (one
//!   transposed-convolution step) and within one output step of the float reference of the
//!   QDQ graph (the interpreter), nearly always equal; on two threads, per operator and saved
//!   and loaded alike; every ISA row computes the scalar row's bytes. Inconsistent shapes are
//!   errors or refusals, never panics.
//! - Standalone BatchNormalization: a per-channel affine within one step of the interpreter.
//! - Grouped convolution and depthwise with a channel multiplier (a channel-repeating gather
//!   and the depthwise kernel): delegated, within one step of the interpreter.
//! - An upsampling head (ConvTranspose, BatchNormalization folded and standalone), quantized
//!   by libxq's quantizer, compiles with no node left to the interpreter.
//! - With `XQ_PYTHON`, ONNX Runtime's reference session on the same QDQ graphs (an
//!   independent reading of their attributes) agrees with the delegated programs within one
//!   step on every element.

mod common;
mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode};
use xq::ir::op::{ConvAttrs, ConvTransposeAttrs, QuantAttrs, UnaryOp};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorData, TensorInfo};
use xq::program::{KernelSpec, StepSpec};
use xq::runtime::Program;

fn node(name: &str, op: Op, inputs: &[&str], output: &str) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    }
}

/// One transposed convolution to test.
#[derive(Clone, Debug)]
struct Case {
    x: [usize; 4],
    cout_g: usize,
    kernel: [usize; 2],
    attrs: ConvTransposeAttrs,
    per_channel: bool,
    relu: bool,
    unsigned: bool,
}

fn attrs(
    strides: [usize; 2],
    pads: [usize; 4],
    output_padding: [usize; 2],
    group: usize,
) -> ConvTransposeAttrs {
    ConvTransposeAttrs {
        conv: ConvAttrs {
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            group,
            ..ConvAttrs::default()
        },
        output_padding: output_padding.to_vec(),
        output_shape: Vec::new(),
    }
}

fn cases() -> Vec<Case> {
    let base = Case {
        x: [2, 6, 5, 7],
        cout_g: 5,
        kernel: [3, 3],
        attrs: attrs([2, 2], [1, 1, 1, 1], [1, 1], 1),
        per_channel: true,
        relu: false,
        unsigned: false,
    };
    let mut dilated = attrs([1, 3], [0, 2, 1, 0], [0, 1], 1);
    dilated.conv.dilations = vec![2, 1];
    let mut shaped = attrs([2, 2], [0; 4], [0; 2], 1);
    shaped.conv.pads.clear();
    shaped.output_padding.clear();
    shaped.output_shape = vec![12, 13];
    vec![
        base.clone(),
        Case {
            relu: true,
            per_channel: false,
            unsigned: true,
            ..base.clone()
        },
        // Grouped, uneven pads, kernel 4 at stride 2 (the usual 2× upsampling).
        Case {
            cout_g: 3,
            kernel: [4, 4],
            attrs: attrs([2, 2], [1, 0, 2, 1], [0, 0], 2),
            ..base.clone()
        },
        // Depthwise (one input and one output channel per group) and a multiplier of 2.
        Case {
            cout_g: 1,
            kernel: [2, 2],
            attrs: attrs([2, 2], [0, 0, 0, 0], [0, 0], 6),
            ..base.clone()
        },
        Case {
            cout_g: 2,
            kernel: [3, 3],
            attrs: attrs([2, 2], [1, 1, 1, 1], [1, 0], 6),
            relu: true,
            ..base.clone()
        },
        // Dilation, anisotropic stride, output padding on one axis.
        Case {
            attrs: dilated,
            ..base.clone()
        },
        // output_shape instead of pads; 1×1 stride-1 (a pointwise conv).
        Case {
            attrs: shaped,
            ..base.clone()
        },
        Case {
            kernel: [1, 1],
            attrs: attrs([1, 1], [0, 0, 0, 0], [0, 0], 1),
            ..base.clone()
        },
        // Few input channels (the im2col block path) and many (the pointer path).
        Case {
            x: [1, 24, 4, 3],
            cout_g: 7,
            attrs: attrs([3, 2], [2, 1, 0, 1], [2, 1], 1),
            ..base
        },
    ]
}

const SX: f32 = 0.02;
const SY: f32 = 0.05;

/// `Q → DQ → ConvTranspose(DQ(w), b) [→ Relu] → Q → DQ`; returns the graph and its output
/// dims.
fn graph(c: &Case) -> Graph {
    let [_, cin, _, _] = c.x;
    let group = c.attrs.conv.group;
    let wd = vec![cin, c.cout_g, c.kernel[0], c.kernel[1]];
    let n: usize = wd.iter().product();
    let cout = c.cout_g * group;
    let scales: Vec<f32> = if c.per_channel {
        (0..c.cout_g).map(|j| 0.004 + 0.002 * j as f32).collect()
    } else {
        vec![0.005]
    };
    let w: Vec<i8> = noise(n, 7).iter().map(|v| (v * 127.0) as i8).collect();
    let mut g = Graph {
        name: "conv_transpose".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &c.x)],
        ..Graph::default()
    };
    let zx = zero_point(if c.unsigned { 130 } else { 3 }, c.unsigned);
    let zy = zero_point(if c.unsigned { 120 } else { -10 }, c.unsigned);
    let inits = [
        ("sx", Tensor::scalar_f32(SX)),
        ("sy", Tensor::scalar_f32(SY)),
        ("zx", zx),
        ("zy", zy),
        ("w_q", Tensor::new(wd.clone(), TensorData::I8(w)).unwrap()),
        (
            "w_s",
            Tensor::from_f32(vec![scales.len()], scales.clone()).unwrap(),
        ),
        ("b", Tensor::from_f32(vec![cout], noise(cout, 3)).unwrap()),
    ];
    for (name, t) in inits {
        g.initializers.insert(name.into(), t);
    }
    let w_dq = Op::DequantizeLinear(QuantAttrs {
        axis: 1,
        ..QuantAttrs::default()
    });
    let q = Op::QuantizeLinear(QuantAttrs::default());
    let dq = Op::DequantizeLinear(QuantAttrs::default());
    let mut nodes = vec![
        node("qx", q.clone(), &["x", "sx", "zx"], "x_q"),
        node("dqx", dq.clone(), &["x_q", "sx", "zx"], "x_dq"),
        node("dqw", w_dq, &["w_q", "w_s"], "w"),
        node(
            "deconv",
            Op::ConvTranspose(c.attrs.clone()),
            &["x_dq", "w", "b"],
            if c.relu { "d" } else { "r" },
        ),
    ];
    if c.relu {
        nodes.push(node("relu", Op::Unary(UnaryOp::Relu), &["d"], "r"));
    }
    nodes.push(node("qy", q, &["r", "sy", "zy"], "r_q"));
    nodes.push(node("dqy", dq, &["r_q", "sy", "zy"], "y"));
    g.nodes = nodes;
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    let out = g.tensor_info("r").and_then(|i| i.concrete_shape()).unwrap();
    g.outputs = vec![TensorInfo::known("y", DType::F32, &out)];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

fn run(program: &Program, x: &Tensor) -> Vec<f32> {
    let y = program.execute(std::slice::from_ref(x)).unwrap();
    y[0].as_f32().unwrap().to_vec()
}

fn deconv_steps(spec: &xq::program::ProgramSpec) -> usize {
    spec.steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                StepSpec::Kernel {
                    kernel: KernelSpec::ConvTranspose(_),
                    ..
                }
            )
        })
        .count()
}

#[test]
fn conv_transpose_is_delegated_and_within_a_step_of_the_float_reference() {
    for c in cases() {
        let what = format!("{c:?}");
        let g = graph(&c);
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert!(report.refused.is_empty(), "{what}: {}", report.text());
        assert_eq!(report.partitions.len(), 1, "{what}: {}", report.text());
        assert_eq!(deconv_steps(&spec), 1, "{what}");
        let (programs, interpreter) = delegated_and_interpreted(&g, spec);
        let n: usize = c.x.iter().product();
        for seed in 0..2 {
            let x = Tensor::from_f32(
                c.x.to_vec(),
                noise(n, 11 + seed).iter().map(|v| v * 2.0).collect(),
            )
            .unwrap();
            let want = run(&interpreter, &x);
            for (p, program) in programs.iter().enumerate() {
                let got = run(program, &x);
                assert_eq!(got.len(), want.len());
                let mut off = 0;
                for (a, b) in got.iter().zip(&want) {
                    let steps = ((a - b) / SY).abs().round();
                    assert!(steps <= 1.0, "{what} program {p}: {a} vs {b}");
                    off += usize::from(steps != 0.0);
                }
                assert!(
                    off * 100 <= want.len(),
                    "{what} program {p}: {off} of {} differ",
                    want.len()
                );
            }
        }
    }
}

#[test]
fn inconsistent_conv_transpose_shapes_are_errors_not_panics() {
    let c = &cases()[0];
    // A weight whose first axis is not the input channels: shape inference says so.
    let mut g = graph(c);
    let w = g.initializers["w_q"].clone();
    let mut dims = w.dims().to_vec();
    dims[0] += 1;
    let n: usize = dims.iter().product();
    g.initializers.insert(
        "w_q".into(),
        Tensor::new(dims, TensorData::I8(vec![1; n])).unwrap(),
    );
    g.value_info.clear();
    let err = g.infer_shapes().unwrap_err().to_string();
    assert!(err.contains("ConvTranspose"), "{err}");
    // An output_shape of the wrong rank, and groups that do not divide the channels.
    for edit in [
        |a: &mut ConvTransposeAttrs| a.output_shape = vec![7],
        |a: &mut ConvTransposeAttrs| a.conv.group = 4,
    ] {
        let mut g = graph(c);
        let at = g.nodes.iter().position(|n| n.name == "deconv").unwrap();
        if let Op::ConvTranspose(a) = &mut g.nodes[at].op {
            edit(a);
        }
        g.value_info.clear();
        let inferred = g.validate().and_then(|_| g.infer_shapes());
        if inferred.is_ok() {
            // Whatever the shapes say, lowering refuses with a reason or errs.
            if let Ok((_, report)) = lower(&g, PartitionMode::All) {
                assert!(
                    report.refused.iter().any(|r| r.op == "ConvTranspose"),
                    "{}",
                    report.text()
                );
            }
        }
    }
}

#[test]
fn conv_transpose_steps_are_bit_identical_under_every_isa() {
    for c in cases() {
        let (spec, _) = lower(&graph(&c), PartitionMode::All).unwrap();
        let kernel = spec
            .steps
            .iter()
            .find_map(|s| match s {
                StepSpec::Kernel {
                    kernel: k @ KernelSpec::ConvTranspose(_),
                    ..
                } => Some(k.clone()),
                _ => None,
            })
            .unwrap();
        let x = &spec.values[kernel.inputs()[0]];
        let input: Vec<i8> = noise(x.dims.iter().product(), 5)
            .iter()
            .map(|v| (v * 127.0) as i8)
            .collect();
        assert_step_bit_identical_under_every_isa(&kernel, &spec.values, &input, &format!("{c:?}"));
    }
}

/// A float upsampling head built with ONNX nodes: a standalone BatchNormalization on the
/// input (nothing to fold into), Conv(stride 2) → BatchNormalization → Relu, a grouped
/// ConvTranspose(4×4, stride 2) → BatchNormalization → Relu, a standalone
/// BatchNormalization after the Relu, a depthwise ConvTranspose, then a 1×1 Conv.
fn upsampling_head() -> Graph {
    use xq::onnx::{add_onnx_node, AttrValue};
    let mut g = Graph {
        name: "deconv_bn".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &[1, 4, 12, 10])],
        ..Graph::default()
    };
    let mut seed = 20;
    let mut constant = |g: &mut Graph, name: &str, dims: &[usize], scale: f32, offset: f32| {
        seed += 1;
        let n = dims.iter().product();
        let v = noise(n, seed).iter().map(|v| v * scale + offset).collect();
        g.initializers
            .insert(name.into(), Tensor::from_f32(dims.to_vec(), v).unwrap());
        name.to_string()
    };
    let mut bn_params = |g: &mut Graph, prefix: &str, c: usize| -> Vec<String> {
        [
            ("gamma", 0.5, 1.0),
            ("beta", 0.5, 0.0),
            ("mean", 0.3, 0.0),
            ("var", 0.2, 0.5),
        ]
        .iter()
        .map(|(what, scale, offset)| constant(g, &format!("{prefix}_{what}"), &[c], *scale, *offset))
        .collect()
    };
    let p_in = bn_params(&mut g, "bn_in", 4);
    let p1 = bn_params(&mut g, "bn1", 8);
    let p2 = bn_params(&mut g, "bn2", 6);
    let p3 = bn_params(&mut g, "bn3", 6);
    let mut constant = |g: &mut Graph, name: &str, dims: &[usize], scale: f32| {
        seed += 1;
        let n = dims.iter().product();
        g.initializers.insert(
            name.into(),
            Tensor::from_f32(dims.to_vec(), noise(n, seed).iter().map(|v| v * scale).collect()).unwrap(),
        );
        name.to_string()
    };
    let w1 = constant(&mut g, "w1", &[8, 4, 3, 3], 0.3);
    let w2 = constant(&mut g, "w2", &[8, 3, 4, 4], 0.3);
    let b2 = constant(&mut g, "b2", &[6], 0.2);
    let w3 = constant(&mut g, "w3", &[6, 1, 3, 3], 0.5);
    let w4 = constant(&mut g, "w4", &[5, 6, 1, 1], 0.4);
    let mut add = |op: &str, name: &str, inputs: Vec<String>, attrs: Vec<(&str, AttrValue)>| {
        let out = format!("{name}_out");
        let attrs: Vec<(String, AttrValue)> = attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        add_onnx_node(&mut g, op, name, &inputs, std::slice::from_ref(&out), &attrs).unwrap();
        out
    };
    let cat = |head: &str, rest: &[String]| {
        std::iter::once(head.to_string())
            .chain(rest.iter().cloned())
            .collect()
    };
    let eps = || vec![("epsilon", AttrValue::Float(1e-5))];
    let ints = |v: &[i64]| AttrValue::Ints(v.to_vec());
    let bn_in = add("BatchNormalization", "bn_in", cat("x", &p_in), eps());
    let c1 = add(
        "Conv",
        "conv1",
        vec![bn_in, w1],
        vec![("strides", ints(&[2, 2])), ("pads", ints(&[1, 1, 1, 1]))],
    );
    let n1 = add("BatchNormalization", "bn1", cat(&c1, &p1), eps());
    let r1 = add("Relu", "relu1", vec![n1], vec![]);
    let d2 = add(
        "ConvTranspose",
        "deconv2",
        vec![r1, w2, b2],
        vec![
            ("strides", ints(&[2, 2])),
            ("pads", ints(&[1, 1, 1, 1])),
            ("group", AttrValue::Int(2)),
        ],
    );
    let n2 = add("BatchNormalization", "bn2", cat(&d2, &p2), eps());
    let r2 = add("Relu", "relu2", vec![n2], vec![]);
    let n3 = add("BatchNormalization", "bn3", cat(&r2, &p3), eps());
    let d3 = add(
        "ConvTranspose",
        "deconv3",
        vec![n3, w3],
        vec![
            ("strides", ints(&[2, 2])),
            ("pads", ints(&[1, 1, 0, 0])),
            ("output_padding", ints(&[1, 1])),
            ("group", AttrValue::Int(6)),
        ],
    );
    let y = add("Conv", "conv4", vec![d3, w4], vec![]);
    g.outputs = vec![TensorInfo {
        name: y,
        dtype: DType::F32,
        shape: None,
    }];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

#[test]
fn quantized_upsampling_head_with_standalone_batchnorm_leaves_nothing_to_the_interpreter() {
    use xq::quant::{QuantConfig, Quantizer};
    let float = upsampling_head();
    let dims = [1usize, 4, 12, 10];
    let sample = |seed: u32| {
        let n = dims.iter().product();
        Tensor::from_f32(dims.to_vec(), noise(n, seed).iter().map(|v| v * 2.0).collect()).unwrap()
    };
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    q.prepare(&float).unwrap();
    for seed in 0..8 {
        q.calibrate(&[sample(100 + seed)]).unwrap();
    }
    let qdq = q.convert().unwrap();
    let report = q.report();
    assert!(
        report.contains("deconv2 (ConvTranspose): quantized static: transposed conv"),
        "{report}"
    );
    assert!(
        report.contains("bn3 (BatchNormalization): quantized static: per-channel affine"),
        "{report}"
    );
    let (spec, lowered) = lower(&qdq, PartitionMode::All).unwrap();
    let text = lowered.text();
    assert!(lowered.refused.is_empty(), "{text}");
    assert_eq!(lowered.partitions.len(), 1, "{text}");
    assert_eq!(lowered.interpreted_nodes, 0, "{text}");
    let ops = &lowered.partitions[0].ops;
    assert_eq!(ops.get("ConvTranspose"), Some(&2), "{text}");
    assert_eq!(ops.get("BatchNormalization"), Some(&2), "{text}");
    assert_eq!(deconv_steps(&spec), 2);
    let out_scale = last_value_scale(&spec);
    let (programs, interpreter) = delegated_and_interpreted(&qdq, spec);
    for seed in 0..3 {
        let x = sample(7 + seed);
        let want = run(&interpreter, &x);
        let reference = xq::interp::run_once(&float, std::slice::from_ref(&x)).unwrap();
        let sqnr = common::sqnr_db(reference[0].as_f32().unwrap(), &want);
        assert!(sqnr > 20.0, "QDQ graph vs float: {sqnr:.1} dB");
        for (p, program) in programs.iter().enumerate() {
            let got = run(program, &x);
            // Requantized through five layers, a one-step difference may grow a little.
            let (within, exact, worst) = step_agreement(&got, &want, out_scale);
            assert!(
                worst <= 2.01 && within >= 0.99 && exact >= 0.9,
                "program {p}: worst {worst} steps, {within} within one, {exact} exact"
            );
            let sqnr = common::sqnr_db(reference[0].as_f32().unwrap(), &got);
            println!("program {p}: {sqnr:.1} dB vs float; {exact} exact, worst {worst} steps");
            assert!(sqnr > 20.0, "program {p} vs float: {sqnr:.1} dB");
        }
    }
}

#[test]
fn standalone_batchnorm_is_a_per_channel_affine_within_a_step() {
    // Gammas of both signs and a zero; a Relu after it (fused) in one variant.
    for (relu, unsigned) in [(false, false), (true, true)] {
        let c = 5;
        let mut g = Graph {
            name: "bn".into(),
            inputs: vec![TensorInfo::known("x", DType::F32, &[2, c, 3, 4])],
            outputs: vec![TensorInfo::known("y", DType::F32, &[2, c, 3, 4])],
            ..Graph::default()
        };
        let params = [
            ("gamma", vec![1.5, -0.7, 0.0, 2.0, 0.01]),
            ("beta", vec![0.1, -0.3, 0.4, 0.0, 1.0]),
            ("mean", vec![0.2, 0.0, -0.5, 1.0, 0.3]),
            ("var", vec![0.5, 2.0, 1.0, 0.04, 1e-3]),
        ];
        for (name, v) in params {
            g.initializers
                .insert(name.into(), Tensor::from_f32(vec![c], v).unwrap());
        }
        let (zx, zy) = if unsigned { (128, 100) } else { (0, -5) };
        for (name, t) in [
            ("sx", Tensor::scalar_f32(SX * 2.0)),
            ("sy", Tensor::scalar_f32(SY)),
            ("zx", zero_point(zx, unsigned)),
            ("zy", zero_point(zy, unsigned)),
        ] {
            g.initializers.insert(name.into(), t);
        }
        let q = Op::QuantizeLinear(QuantAttrs::default());
        let dq = Op::DequantizeLinear(QuantAttrs::default());
        let bn_out = if relu { "b" } else { "r" };
        g.nodes = vec![
            node("qx", q.clone(), &["x", "sx", "zx"], "x_q"),
            node("dqx", dq.clone(), &["x_q", "sx", "zx"], "x_dq"),
            node(
                "bn",
                Op::BatchNormalization { epsilon: 1e-5 },
                &["x_dq", "gamma", "beta", "mean", "var"],
                bn_out,
            ),
        ];
        if relu {
            g.nodes.push(node("relu", Op::Unary(UnaryOp::Relu), &["b"], "r"));
        }
        g.nodes.push(node("qy", q, &["r", "sy", "zy"], "r_q"));
        g.nodes.push(node("dqy", dq, &["r_q", "sy", "zy"], "y"));
        g.validate().unwrap();
        g.infer_shapes().unwrap();
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert!(report.refused.is_empty(), "{}", report.text());
        assert_eq!(report.interpreted_nodes, 0, "{}", report.text());
        let (programs, interpreter) = delegated_and_interpreted(&g, spec);
        let x = Tensor::from_f32(
            vec![2, c, 3, 4],
            noise(2 * c * 12, 9).iter().map(|v| v * 2.5).collect(),
        )
        .unwrap();
        let want = run(&interpreter, &x);
        for program in &programs {
            let (within, exact, worst) = step_agreement(&run(program, &x), &want, SY);
            assert!(within == 1.0 && exact >= 0.95, "{within} {exact} {worst}");
        }
    }
}

/// `Q → DQ → Conv(DQ(w int8 per output channel), b) → Q → DQ` with `group` groups of
/// `cin / group` inputs and `cout / group` outputs.
fn conv_graph(x: [usize; 4], cout: usize, group: usize, kernel: usize, stride: usize) -> Graph {
    let cin = x[1];
    let wd = vec![cout, cin / group, kernel, kernel];
    let n: usize = wd.iter().product();
    let w: Vec<i8> = noise(n, 17).iter().map(|v| (v * 127.0) as i8).collect();
    let scales: Vec<f32> = (0..cout).map(|o| 0.003 + 0.001 * o as f32).collect();
    let mut g = Graph {
        name: "grouped".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &x)],
        ..Graph::default()
    };
    let inits = [
        ("sx", Tensor::scalar_f32(SX)),
        ("sy", Tensor::scalar_f32(SY)),
        ("zx", zero_point(5, false)),
        ("zy", zero_point(-3, false)),
        ("w_q", Tensor::new(wd, TensorData::I8(w)).unwrap()),
        ("w_s", Tensor::from_f32(vec![cout], scales).unwrap()),
        ("b", Tensor::from_f32(vec![cout], noise(cout, 4)).unwrap()),
    ];
    for (name, t) in inits {
        g.initializers.insert(name.into(), t);
    }
    let q = Op::QuantizeLinear(QuantAttrs::default());
    let dq = Op::DequantizeLinear(QuantAttrs::default());
    let pad = kernel / 2;
    let conv = Op::Conv(ConvAttrs {
        strides: vec![stride, stride],
        pads: vec![pad; 4],
        group,
        ..ConvAttrs::default()
    });
    g.nodes = vec![
        node("qx", q.clone(), &["x", "sx", "zx"], "x_q"),
        node("dqx", dq.clone(), &["x_q", "sx", "zx"], "x_dq"),
        node(
            "dqw",
            Op::DequantizeLinear(QuantAttrs {
                axis: 0,
                ..QuantAttrs::default()
            }),
            &["w_q", "w_s"],
            "w",
        ),
        node("conv", conv, &["x_dq", "w", "b"], "r"),
        node("qy", q, &["r", "sy", "zy"], "r_q"),
        node("dqy", dq, &["r_q", "sy", "zy"], "y"),
    ];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    let out = g.tensor_info("r").and_then(|i| i.concrete_shape()).unwrap();
    g.outputs = vec![TensorInfo::known("y", DType::F32, &out)];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

#[test]
fn grouped_and_channel_multiplier_convs_are_delegated_within_a_step() {
    let cases = [
        // (input, output channels, groups, kernel, stride)
        ([2, 8, 7, 6], 12, 2, 3, 1),
        ([1, 12, 9, 9], 12, 4, 3, 2),
        ([1, 24, 5, 5], 48, 8, 1, 1),
        // Depthwise with channel multiplier 2 and 3.
        ([2, 6, 7, 6], 12, 6, 3, 1),
        ([1, 16, 8, 8], 48, 16, 5, 2),
    ];
    for (x, cout, group, kernel, stride) in cases {
        let what = format!("{x:?} -> {cout} in {group} groups, {kernel}x{kernel} / {stride}");
        let g = conv_graph(x, cout, group, kernel, stride);
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert!(report.refused.is_empty(), "{what}: {}", report.text());
        assert_eq!(report.interpreted_nodes, 0, "{what}: {}", report.text());
        // A channel multiplier runs as a channel-repeating gather and a depthwise step.
        let depthwise = spec.steps.iter().any(|s| {
            matches!(
                s,
                StepSpec::Kernel {
                    kernel: KernelSpec::Conv(c),
                    ..
                } if c.depthwise
            )
        });
        assert_eq!(depthwise, group == x[1], "{what}");
        let (programs, interpreter) = delegated_and_interpreted(&g, spec);
        let n: usize = x.iter().product();
        let input = Tensor::from_f32(x.to_vec(), noise(n, 31).iter().map(|v| v * 2.0).collect()).unwrap();
        let want = run(&interpreter, &input);
        for (p, program) in programs.iter().enumerate() {
            let (within, exact, worst) = step_agreement(&run(program, &input), &want, SY);
            assert!(
                within == 1.0 && exact >= 0.99,
                "{what} program {p}: {within} {exact} {worst}"
            );
        }
    }
}

/// The program of the quantized upsampling head, as bytes.
fn upsampling_program_bytes() -> Vec<u8> {
    use xq::quant::{QuantConfig, Quantizer};
    use xq::runtime::ProgramOptions;
    let float = upsampling_head();
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    q.prepare(&float).unwrap();
    let n = 4 * 12 * 10;
    q.calibrate(&[Tensor::from_f32(vec![1, 4, 12, 10], noise(n, 1)).unwrap()])
        .unwrap();
    let (spec, _) = lower(&q.convert().unwrap(), PartitionMode::All).unwrap();
    Program::new(spec, ProgramOptions { threads: 1 })
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec()
}

#[test]
fn corrupted_transposed_convolution_programs_fail_to_load_without_panicking() {
    let bytes = upsampling_program_bytes();
    // This program is the seed
    // `fuzz/corpus/program_load/conv_transpose_bn.xq`.
    xq::fuzzing::program_load(&bytes);
    // Byte flips past the header, with the checksum sealed again so the decoder sees them.
    let seal = |b: &mut Vec<u8>| {
        let mut h = crc32fast::Hasher::new();
        h.update(&b[..24]);
        h.update(&b[28..]);
        let crc = h.finalize().to_le_bytes();
        b[24..28].copy_from_slice(&crc);
    };
    for at in (64..bytes.len()).step_by(4) {
        for flip in [0x01, 0xff] {
            let mut bad = bytes.clone();
            bad[at] ^= flip;
            seal(&mut bad);
            xq::fuzzing::program_load(&bad);
        }
    }
    // Contracts with inconsistent fields: load fails with an error.
    let spec = xq::format::program_file::from_bytes(&bytes).unwrap();
    let at = spec
        .steps
        .iter()
        .position(|s| {
            matches!(
                s,
                StepSpec::Kernel {
                    kernel: KernelSpec::ConvTranspose(_),
                    ..
                }
            )
        })
        .unwrap();
    type Edit = fn(&mut xq::program::steps::conv_transpose::ConvTransposeSpec);
    let edits: [Edit; 8] = [
        |k| k.groups = 0,
        |k| k.groups = 1 << 40,
        |k| k.window.kernel = (1 << 33, 1 << 33),
        |k| k.window.stride = (0, 1),
        |k| k.window.pads = (usize::MAX, 0, 0, 0),
        |k| k.weights.values.truncate(3),
        |k| k.weights.scales = vec![1.0; 7],
        |k| k.bias = vec![1; 1],
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut bad = spec.clone();
        if let StepSpec::Kernel {
            kernel: KernelSpec::ConvTranspose(k),
            ..
        } = &mut bad.steps[at]
        {
            edit(k);
        }
        let file = xq::format::program_file::to_bytes(&bad).unwrap();
        let loaded = Program::load_bytes(
            xq::format::ProgramBytes::copy_from(&file).unwrap(),
            xq::runtime::ProgramOptions { threads: 1 },
        );
        // Huge pads leave a valid (if odd) program, every tap reading padding; every other
        // edit is an error.
        assert!(i == 4 || loaded.is_err(), "edit {i} loaded");
    }
}

#[test]
fn conv_transpose_and_batchnorm_agree_with_onnxruntime() {
    // The interpreter is the reference above; ONNX Runtime checks its reading of the QDQ
    // graphs (weight axis 1, pads, output padding, groups), every element within one step.
    let Some(python) = python("delegate_conv_variants") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut graphs: Vec<(String, Graph)> = cases()
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("case {i} {c:?}"), graph(c)))
        .collect();
    let mut q = xq::quant::Quantizer::new(Some(xq::quant::QuantConfig::default())).unwrap();
    q.prepare(&upsampling_head()).unwrap();
    q.calibrate(&[Tensor::from_f32(
        vec![1, 4, 12, 10],
        noise(480, 1).iter().map(|v| v * 2.0).collect(),
    )
    .unwrap()])
        .unwrap();
    graphs.push(("upsampling head".into(), q.convert().unwrap()));
    for (what, g) in graphs {
        let model = dir.path().join("m.onnx");
        xq::onnx::save_file(&g, &model).unwrap();
        let dims = g.inputs[0].concrete_shape().unwrap();
        let n: usize = dims.iter().product();
        let x: Vec<f32> = noise(n, 5).iter().map(|v| v * 2.0).collect();
        let input = dir.path().join("x.npy");
        write_npy(&input, &dims, &x);
        run_python(
            &python,
            &root().join("tests/python/run_onnx.py"),
            &[
                model.to_str().unwrap(),
                dir.path().join("ort").to_str().unwrap(),
                input.to_str().unwrap(),
            ],
        );
        let ort = xq::npy::read(dir.path().join("ort0.npy")).unwrap();
        let ort = ort.as_f32().unwrap();
        let (spec, _) = lower(&g, PartitionMode::All).unwrap();
        let scale = last_value_scale(&spec);
        let program = Program::new(spec, xq::runtime::ProgramOptions { threads: 1 }).unwrap();
        let ours = run(&program, &Tensor::from_f32(dims, x).unwrap());
        let (within, exact, worst) = step_agreement(&ours, ort, scale);
        assert!(
            within == 1.0 && exact >= 0.98,
            "{what}: {within} within a step, {exact} exact, worst {worst}"
        );
    }
}
