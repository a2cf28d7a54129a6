//! AveragePool int8 end to end: the QDQ graph `Q → DQ → AveragePool [→ Relu] → Q → DQ` (built
//! here, no Python) with explicit, VALID and SAME padding, strides, dilations, `ceil_mode` and
//! `count_include_pad`, int8 and uint8, equal and differing qparams, is delegated whole (one
//! average-pool step) and within one output step of the float reference of the QDQ graph (the
//! interpreter), on two threads, per operator and saved and loaded alike; ONNX Runtime's
//! reference session (graph optimizations off) agrees within one step on every element; every
//! ISA row computes the scalar row's bytes; 1-D and 3-D pools are refused with a reason; a
//! model quantized by libxq's quantizer leaves no AveragePool to the interpreter; corrupted
//! programs fail to load without panicking. MaxPool takes the same windows (SAME padding
//! included) and computes the interpreter's bytes.

mod common;
mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode};
use xq::ir::op::{AutoPad, PoolAttrs, QuantAttrs, UnaryOp};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorInfo};
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

/// One average pool to test.
#[derive(Clone, Debug)]
struct Case {
    x: Vec<usize>,
    attrs: PoolAttrs,
    /// Output scale (the input's is [`SX`]).
    sy: f32,
    relu: bool,
    unsigned: bool,
    /// Whether ONNX Runtime computes this case by the ONNX definition (its kernel ignores
    /// dilations when it resolves SAME padding).
    ort: bool,
}

const SX: f32 = 0.02;

/// The least fraction of outputs equal to the reference's. With equal input and output
/// scales an average is often an exact tie (`sum / count` halfway between integers, as
/// `sum / 4` is when `sum ≡ 2 mod 4`), which float error in either computation rounds either
/// way; every output stays within one step.
const EXACT: f64 = 0.9;

fn pool(kernel: [usize; 2], strides: [usize; 2], pads: [usize; 4]) -> PoolAttrs {
    PoolAttrs {
        kernel_shape: kernel.to_vec(),
        strides: strides.to_vec(),
        pads: pads.to_vec(),
        ..PoolAttrs::default()
    }
}

fn cases() -> Vec<Case> {
    let base = Case {
        x: vec![2, 5, 9, 11],
        attrs: pool([3, 3], [2, 2], [1, 1, 1, 1]),
        sy: SX,
        relu: false,
        unsigned: false,
        ort: true,
    };
    let with = |edit: &dyn Fn(&mut PoolAttrs)| {
        let mut a = base.attrs.clone();
        edit(&mut a);
        a
    };
    vec![
        // Padding excluded and included in the divisor.
        base.clone(),
        Case {
            attrs: with(&|a| a.count_include_pad = true),
            ..base.clone()
        },
        // ceil_mode: a last window past the padded input, counted with and without padding.
        Case {
            attrs: with(&|a| a.ceil_mode = true),
            ..base.clone()
        },
        Case {
            x: vec![1, 3, 8, 10],
            attrs: PoolAttrs {
                ceil_mode: true,
                count_include_pad: true,
                ..pool([3, 2], [2, 3], [0, 1, 2, 0])
            },
            ..base.clone()
        },
        // Dilations (opset 19), uneven pads, anisotropic strides; other qparams and Relu.
        Case {
            attrs: PoolAttrs {
                dilations: vec![2, 1],
                count_include_pad: true,
                ..pool([2, 3], [1, 2], [1, 0, 0, 2])
            },
            sy: 0.013,
            relu: true,
            ..base.clone()
        },
        Case {
            attrs: PoolAttrs {
                dilations: vec![2, 2],
                ceil_mode: true,
                ..pool([3, 2], [2, 3], [0, 1, 2, 1])
            },
            unsigned: true,
            ..base.clone()
        },
        // VALID, SAME_UPPER and SAME_LOWER padding.
        Case {
            attrs: PoolAttrs {
                auto_pad: AutoPad::Valid,
                ..pool([2, 2], [2, 2], [0; 4])
            },
            ..base.clone()
        },
        Case {
            attrs: PoolAttrs {
                auto_pad: AutoPad::SameUpper,
                count_include_pad: true,
                pads: Vec::new(),
                ..pool([3, 3], [2, 2], [0; 4])
            },
            ..base.clone()
        },
        Case {
            attrs: PoolAttrs {
                auto_pad: AutoPad::SameLower,
                pads: Vec::new(),
                ..pool([2, 4], [1, 3], [0; 4])
            },
            unsigned: true,
            ..base.clone()
        },
        // SAME with dilations: the IR's reading (ONNX's shape rule); ONNX Runtime's kernel
        // resolves the padding without the dilation, so it is not compared there.
        Case {
            attrs: PoolAttrs {
                auto_pad: AutoPad::SameUpper,
                dilations: vec![2, 1],
                count_include_pad: true,
                pads: Vec::new(),
                ..pool([3, 3], [2, 2], [0; 4])
            },
            ort: false,
            ..base.clone()
        },
        // Many channels (SIMD blocks and tails), a large window with large padding, 1×1.
        Case {
            x: vec![1, 83, 6, 7],
            attrs: PoolAttrs {
                count_include_pad: true,
                ..pool([5, 5], [1, 1], [2, 2, 2, 2])
            },
            sy: 0.03,
            ..base.clone()
        },
        Case {
            x: vec![1, 19, 4, 4],
            attrs: pool([1, 1], [1, 1], [0; 4]),
            ..base
        },
    ]
}

/// `Q → DQ → AveragePool [→ Relu] → Q → DQ`.
fn graph(c: &Case) -> Graph {
    graph_of(c, Op::AveragePool(c.attrs.clone()))
}

/// `Q → DQ → pool [→ Relu] → Q → DQ`.
fn graph_of(c: &Case, pool: Op) -> Graph {
    let mut g = Graph {
        name: "avg_pool".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &c.x)],
        ..Graph::default()
    };
    let zx = zero_point(if c.unsigned { 130 } else { 3 }, c.unsigned);
    // A MaxPool keeps its input's qparams (the quantizer shares them).
    let zy = match (&pool, c.unsigned) {
        (Op::MaxPool(_), u) => zero_point(if u { 130 } else { 3 }, u),
        (_, u) => zero_point(if u { 120 } else { -10 }, u),
    };
    let inits = [
        ("sx", Tensor::scalar_f32(SX)),
        ("sy", Tensor::scalar_f32(c.sy)),
        ("zx", zx),
        ("zy", zy),
    ];
    for (name, t) in inits {
        g.initializers.insert(name.into(), t);
    }
    let q = Op::QuantizeLinear(QuantAttrs::default());
    let dq = Op::DequantizeLinear(QuantAttrs::default());
    let mut nodes = vec![
        node("qx", q.clone(), &["x", "sx", "zx"], "x_q"),
        node("dqx", dq.clone(), &["x_q", "sx", "zx"], "x_dq"),
        node("pool", pool, &["x_dq"], if c.relu { "p" } else { "r" }),
    ];
    if c.relu {
        nodes.push(node("relu", Op::Unary(UnaryOp::Relu), &["p"], "r"));
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

fn avg_pool_steps(spec: &xq::program::ProgramSpec) -> usize {
    spec.steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                StepSpec::Kernel {
                    kernel: KernelSpec::AvgPool(_),
                    ..
                }
            )
        })
        .count()
}

/// Input values spread over about twice the int8 range of `SX` (clipping included).
fn input(dims: &[usize], seed: u32) -> Tensor {
    let n: usize = dims.iter().product();
    Tensor::from_f32(dims.to_vec(), noise(n, seed).iter().map(|v| v * 3.0).collect()).unwrap()
}

#[test]
fn average_pools_are_delegated_and_within_a_step_of_the_float_reference() {
    for c in cases() {
        let what = format!("{c:?}");
        let g = graph(&c);
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert!(report.refused.is_empty(), "{what}: {}", report.text());
        assert_eq!(report.interpreted_nodes, 0, "{what}: {}", report.text());
        assert_eq!(avg_pool_steps(&spec), 1, "{what}");
        let (programs, interpreter) = delegated_and_interpreted(&g, spec);
        for seed in 0..2 {
            let x = input(&c.x, 11 + seed);
            let want = run(&interpreter, &x);
            for (p, program) in programs.iter().enumerate() {
                let (within, exact, worst) = step_agreement(&run(program, &x), &want, c.sy);
                assert!(
                    within == 1.0 && exact >= EXACT,
                    "{what} program {p}: {within} within a step, {exact} exact, worst {worst}"
                );
            }
        }
    }
}

#[test]
fn average_pools_agree_with_onnxruntime() {
    let Some(python) = python("delegate_avg_pool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for c in cases().into_iter().filter(|c| c.ort) {
        let what = format!("{c:?}");
        let g = graph(&c);
        let model = dir.path().join("m.onnx");
        xq::onnx::save_file(&g, &model).unwrap();
        let x = input(&c.x, 5);
        let path = dir.path().join("x.npy");
        write_npy(&path, &c.x, x.as_f32().unwrap());
        run_python(
            &python,
            &root().join("tests/python/run_onnx.py"),
            &[
                model.to_str().unwrap(),
                dir.path().join("ort").to_str().unwrap(),
                path.to_str().unwrap(),
            ],
        );
        let ort = xq::npy::read(dir.path().join("ort0.npy")).unwrap();
        let (spec, _) = lower(&g, PartitionMode::All).unwrap();
        let want_dims = g.outputs[0].concrete_shape().unwrap();
        assert_eq!(ort.dims(), &want_dims[..], "{what}: ONNX Runtime's output shape");
        let program = Program::new(spec, xq::runtime::ProgramOptions { threads: 1 }).unwrap();
        let ours = run(&program, &x);
        let (within, exact, worst) = step_agreement(&ours, ort.as_f32().unwrap(), c.sy);
        assert!(
            within == 1.0 && exact >= EXACT,
            "{what}: {within} within a step, {exact} exact, worst {worst}"
        );
    }
}

#[test]
fn average_pool_steps_are_bit_identical_under_every_isa() {
    for c in cases() {
        let (spec, _) = lower(&graph(&c), PartitionMode::All).unwrap();
        let kernel = spec
            .steps
            .iter()
            .find_map(|s| match s {
                StepSpec::Kernel {
                    kernel: k @ KernelSpec::AvgPool(_),
                    ..
                } => Some(k.clone()),
                _ => None,
            })
            .unwrap();
        let x = &spec.values[kernel.inputs()[0]];
        let input: Vec<i8> = noise(x.dims.iter().product(), 5)
            .iter()
            .map(|v| (v * 128.0) as i8)
            .collect();
        assert_step_bit_identical_under_every_isa(&kernel, &spec.values, &input, &format!("{c:?}"));
    }
}

#[test]
fn one_and_three_dimensional_pools_are_refused_with_a_reason() {
    for (x, kernel) in [(vec![1, 4, 9], vec![3]), (vec![1, 4, 5, 6, 7], vec![2, 2, 2])] {
        let attrs = PoolAttrs {
            kernel_shape: kernel,
            ..PoolAttrs::default()
        };
        let c = Case {
            x: x.clone(),
            attrs,
            sy: SX,
            relu: false,
            unsigned: false,
            ort: false,
        };
        let g = graph(&c);
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert_eq!(avg_pool_steps(&spec), 0, "{x:?}");
        let refusal = report
            .refused
            .iter()
            .find(|r| r.op == "AveragePool")
            .unwrap_or_else(|| panic!("{x:?}: {}", report.text()));
        assert!(refusal.detail.contains("2-D"), "{x:?}: {}", refusal.detail);
        // The interpreter runs it instead, with the same result as without the delegate.
        let (none, _) = lower(&g, PartitionMode::None).unwrap();
        let xin = input(&x, 3);
        let want = run(&Program::new(none, Default::default()).unwrap(), &xin);
        assert_eq!(run(&Program::new(spec, Default::default()).unwrap(), &xin), want);
    }
}

#[test]
fn max_pools_take_every_window_and_equal_the_float_reference() {
    for c in cases().into_iter().filter(|c| !c.relu) {
        let what = format!("{c:?}");
        let c = Case { sy: SX, ..c };
        let g = graph_of(&c, Op::MaxPool(c.attrs.clone()));
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert!(report.refused.is_empty(), "{what}: {}", report.text());
        assert_eq!(report.interpreted_nodes, 0, "{what}: {}", report.text());
        let (programs, interpreter) = delegated_and_interpreted(&g, spec);
        let x = input(&c.x, 7);
        let want = run(&interpreter, &x);
        for (p, program) in programs.iter().enumerate() {
            assert_eq!(run(program, &x), want, "{what} program {p}");
        }
    }
}

/// A float model: Conv → AveragePool(3×3, stride 2, pads 1, ceil_mode, count_include_pad)
/// → Relu → AveragePool(2×2, dilated) → Conv, 9 channels and 13 × 11 pixels.
pub fn pooling_model() -> Graph {
    use xq::onnx::{add_onnx_node, AttrValue};
    let mut g = Graph {
        name: "avg_pools".into(),
        inputs: vec![TensorInfo::known("input", DType::F32, &[1, 3, 13, 11])],
        ..Graph::default()
    };
    for (name, dims, seed) in [("w1", [9usize, 3, 3, 3], 3u32), ("w2", [4, 9, 1, 1], 5)] {
        let n = dims.iter().product();
        let w = Tensor::from_f32(dims.to_vec(), noise(n, seed)).unwrap();
        g.initializers.insert(name.into(), w);
    }
    let ints = |name: &str, v: &[i64]| (name.to_string(), AttrValue::Ints(v.to_vec()));
    let int = |name: &str, v: i64| (name.to_string(), AttrValue::Int(v));
    type Attrs = Vec<(String, AttrValue)>;
    let nodes: [(&str, &[&str], &str, Attrs); 5] = [
        ("Conv", &["input", "w1"], "c1", vec![ints("pads", &[1, 1, 1, 1])]),
        (
            "AveragePool",
            &["c1"],
            "p1",
            vec![
                ints("kernel_shape", &[3, 3]),
                ints("strides", &[2, 2]),
                ints("pads", &[1, 1, 1, 1]),
                int("ceil_mode", 1),
                int("count_include_pad", 1),
            ],
        ),
        ("Relu", &["p1"], "r1", vec![]),
        (
            "AveragePool",
            &["r1"],
            "p2",
            vec![ints("kernel_shape", &[2, 2]), ints("dilations", &[2, 1])],
        ),
        ("Conv", &["p2", "w2"], "output", vec![]),
    ];
    for (op, inputs, out, attrs) in nodes {
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        add_onnx_node(&mut g, op, out, &inputs, &[out.to_string()], &attrs).unwrap();
    }
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    let out = g.tensor_info("output").and_then(|i| i.concrete_shape()).unwrap();
    g.outputs = vec![TensorInfo::known("output", DType::F32, &out)];
    g.validate().unwrap();
    g
}

/// [`pooling_model`] quantized by libxq, as a program spec.
fn quantized_pooling_program() -> xq::program::ProgramSpec {
    use xq::quant::{QuantConfig, Quantizer};
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    q.prepare(&pooling_model()).unwrap();
    for seed in 1..3 {
        q.calibrate(&[input(&[1, 3, 13, 11], seed)]).unwrap();
    }
    let g = q.convert().unwrap();
    let (spec, report) = lower(&g, PartitionMode::All).unwrap();
    assert_eq!(report.interpreted_nodes, 0, "{}", report.text());
    assert_eq!(avg_pool_steps(&spec), 2, "{}", report.text());
    spec
}

#[test]
fn quantized_average_pools_run_int8_with_nothing_interpreted() {
    let spec = quantized_pooling_program();
    let program = Program::new(spec, Default::default()).unwrap();
    let y = run(&program, &input(&[1, 3, 13, 11], 9));
    // 13 × 11 → 7 × 6 (ceil_mode) → 5 × 5 (dilated 2 × 2).
    assert_eq!(y.len(), 4 * 5 * 5);
}

#[test]
fn corrupted_average_pool_programs_fail_to_load_without_panicking() {
    use xq::runtime::ProgramOptions;
    let spec = quantized_pooling_program();
    let bytes = Program::new(spec.clone(), ProgramOptions { threads: 1 })
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec();
    xq::fuzzing::program_load(&bytes);
    // Byte flips past the header, with the checksum sealed again so the decoder sees them.
    corrupted_program_loads(&bytes);
    // Contracts with inconsistent fields: load fails with an error.
    let at = spec
        .steps
        .iter()
        .position(|s| {
            matches!(
                s,
                StepSpec::Kernel {
                    kernel: KernelSpec::AvgPool(_),
                    ..
                }
            )
        })
        .unwrap();
    type Edit = fn(&mut xq::program::AvgPoolSpec);
    let edits: [Edit; 8] = [
        |k| k.window.kernel = (1 << 33, 1 << 33),
        |k| k.window.kernel = (0, 3),
        |k| k.window.stride = (0, 1),
        |k| k.window.dilation = (1, 0),
        |k| k.window.pads = (usize::MAX, 0, 0, 0),
        |k| k.extra_end = (usize::MAX, 0),
        |k| k.window.pads.2 = usize::MAX - 1,
        // Output dims that differ from the window's.
        |k| k.window.stride = (1, 1),
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut bad = spec.clone();
        if let StepSpec::Kernel {
            kernel: KernelSpec::AvgPool(k),
            ..
        } = &mut bad.steps[at]
        {
            edit(k);
        }
        let file = xq::format::program_file::to_bytes(&bad).unwrap();
        let loaded = Program::load_bytes(
            xq::format::ProgramBytes::copy_from(&file).unwrap(),
            ProgramOptions { threads: 1 },
        );
        assert!(loaded.is_err(), "edit {i} loaded");
    }
}
