//! Int8 ConvTranspose: the QDQ graph `Q → DQ → ConvTranspose(DQ(w int8), bias) [→ Relu] → Q
//! → DQ` (built here, no Python) with strides, pads, output padding, output shape,
//! dilations, groups and depthwise, per-tensor and per-channel weights, is delegated whole
//! (one transposed-convolution step) and within one output step of the float reference of
//! the QDQ graph (the interpreter), nearly always equal; on two threads, per operator and
//! saved and loaded alike. Inconsistent shapes are errors or refusals, never panics.

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

/// Deterministic pseudo-random values in `[-1, 1)`.
fn noise(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            let h = (i ^ seed.wrapping_mul(0x9e37_79b9)).wrapping_mul(2_654_435_761) ^ 0x85eb_ca6b;
            ((h >> 8) % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
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
    use xq::cpu::{features, Isa};
    use xq::kernels::output::SharedOutput;
    use xq::runtime::kernel_step::KernelStep;
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
        let (x, y) = (&spec.values[kernel.inputs()[0]], &spec.values[kernel.output()]);
        let input: Vec<i8> = noise(x.dims.iter().product(), 5)
            .iter()
            .map(|v| (v * 127.0) as i8)
            .collect();
        let run = |isa: Isa| {
            let step = KernelStep::build(isa, &kernel, &spec.values).unwrap();
            let mut out = vec![0i8; y.dims.iter().product()];
            let shared = SharedOutput::new(&mut out);
            // SAFETY: one call covers every tile.
            unsafe { step.run(&[&input], &shared, 0..step.tile_count()).unwrap() };
            out
        };
        let want = run(Isa::Scalar);
        for isa in Isa::ALL.into_iter().filter(|&i| features().supports(i)) {
            assert_eq!(run(isa), want, "{c:?} under {}", isa.name());
        }
    }
}
