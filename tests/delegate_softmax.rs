//! Softmax int8 end to end: the QDQ graph `Q → DQ → Softmax → Q → DQ` (built here, no
//! Python) along the last axis of rows of 1, 7 and 1000 elements, along each axis of a 4-D
//! value (stored NHWC), opset 13 and opset < 13 (`axis = rank - 1`), int8 and uint8, input
//! scales from tiny (every row nearly uniform) to huge (all the mass on the maximum), rows of
//! equal values: delegated whole (one softmax step, nothing interpreted) and within one
//! output step of the float reference of the QDQ graph (the interpreter) and of ONNX
//! Runtime's reference session (graph optimizations off), on two threads, per operator and
//! saved and loaded alike, also for random input scales and row lengths; opset < 13
//! softmaxes over several axes are refused with a reason; libxq's quantizer gives Softmax
//! PyTorch's fixed output qparams (1/256, -128) and leaves nothing to the interpreter;
//! corrupted programs fail to load without panicking.

mod common;
mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode};
use xq::ir::op::QuantAttrs;
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

/// One softmax to test.
#[derive(Clone, Debug)]
struct Case {
    x: Vec<usize>,
    axis: i64,
    /// Opset < 13 semantics (flatten at `axis`).
    coerce_2d: bool,
    /// Input scale.
    sx: f32,
    /// Output scale (zero point: the bottom of the range, as PyTorch fixes it).
    sy: f32,
    unsigned: bool,
    /// Every input equal (each row shares the mass evenly).
    constant: bool,
}

/// PyTorch's fixed softmax output scale.
const SY: f32 = 1.0 / 256.0;

/// The least fraction of outputs equal to the reference's (every output stays within one
/// step; float error in either computation rounds values near a half either way).
const EXACT: f64 = 0.97;

fn cases() -> Vec<Case> {
    let base = Case {
        x: vec![4, 7],
        axis: -1,
        coerce_2d: false,
        sx: 0.05,
        sy: SY,
        unsigned: false,
        constant: false,
    };
    vec![
        base.clone(),
        // Rows of one element (every output is 1) and of 1000 (a finer output scale).
        Case {
            x: vec![5, 1],
            ..base.clone()
        },
        Case {
            x: vec![3, 1000],
            sy: 1.0 / 2048.0,
            ..base.clone()
        },
        // Huge input scale: exp(-s·d) underflows for d ≥ 1, all the mass on the maximum.
        Case {
            sx: 40.0,
            ..base.clone()
        },
        // Tiny input scale: rows nearly uniform.
        Case {
            x: vec![2, 3, 9],
            sx: 1e-4,
            ..base.clone()
        },
        // Rows of equal values.
        Case {
            x: vec![3, 8],
            constant: true,
            ..base.clone()
        },
        Case {
            x: vec![2, 6],
            constant: true,
            unsigned: true,
            ..base.clone()
        },
        // uint8, opset < 13 along the last axis.
        Case {
            x: vec![2, 3, 11],
            axis: 2,
            coerce_2d: true,
            unsigned: true,
            ..base.clone()
        },
        // 4-D values (stored NHWC): along W (logical last), H and channels.
        Case {
            x: vec![2, 5, 3, 7],
            sx: 0.1,
            ..base.clone()
        },
        Case {
            x: vec![1, 4, 6, 5],
            axis: 2,
            ..base.clone()
        },
        Case {
            x: vec![1, 10, 4, 3],
            axis: 1,
            sx: 0.03,
            ..base.clone()
        },
        Case {
            x: vec![1, 2, 3, 6],
            axis: -1,
            coerce_2d: true,
            ..base
        },
    ]
}

/// `Q → DQ → Softmax → Q → DQ`.
fn graph(c: &Case) -> Graph {
    let mut g = Graph {
        name: "softmax".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &c.x)],
        outputs: vec![TensorInfo::known("y", DType::F32, &c.x)],
        ..Graph::default()
    };
    let zx = zero_point(if c.unsigned { 131 } else { 3 }, c.unsigned);
    let zy = zero_point(if c.unsigned { 0 } else { -128 }, c.unsigned);
    let inits = [
        ("sx", Tensor::scalar_f32(c.sx)),
        ("sy", Tensor::scalar_f32(c.sy)),
        ("zx", zx),
        ("zy", zy),
    ];
    for (name, t) in inits {
        g.initializers.insert(name.into(), t);
    }
    let q = Op::QuantizeLinear(QuantAttrs::default());
    let dq = Op::DequantizeLinear(QuantAttrs::default());
    let softmax = Op::Softmax {
        axis: c.axis,
        coerce_2d: c.coerce_2d,
    };
    g.nodes = vec![
        node("qx", q.clone(), &["x", "sx", "zx"], "x_q"),
        node("dqx", dq.clone(), &["x_q", "sx", "zx"], "x_dq"),
        node("softmax", softmax, &["x_dq"], "s"),
        node("qy", q, &["s", "sy", "zy"], "s_q"),
        node("dqy", dq, &["s_q", "sy", "zy"], "y"),
    ];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

fn run(program: &Program, x: &Tensor) -> Vec<f32> {
    let y = program.execute(std::slice::from_ref(x)).unwrap();
    y[0].as_f32().unwrap().to_vec()
}

fn softmax_steps(spec: &xq::program::ProgramSpec) -> usize {
    spec.steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                StepSpec::Kernel {
                    kernel: KernelSpec::Softmax(_),
                    ..
                }
            )
        })
        .count()
}

/// Input values spread over about 100 input steps either side of 0 (or all equal).
fn input(c: &Case, seed: u32) -> Tensor {
    let n: usize = c.x.iter().product();
    let v = if c.constant {
        vec![0.7 * c.sx * 10.0; n]
    } else {
        noise(n, seed).iter().map(|v| v * 100.0 * c.sx).collect()
    };
    Tensor::from_f32(c.x.clone(), v).unwrap()
}

#[test]
fn softmaxes_are_delegated_and_within_a_step_of_the_float_reference() {
    for c in cases() {
        let what = format!("{c:?}");
        let g = graph(&c);
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert!(report.refused.is_empty(), "{what}: {}", report.text());
        assert_eq!(report.interpreted_nodes, 0, "{what}: {}", report.text());
        assert_eq!(softmax_steps(&spec), 1, "{what}");
        let (programs, interpreter) = delegated_and_interpreted(&g, spec);
        for seed in 0..2 {
            let x = input(&c, 11 + seed);
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

/// Input scales log-uniform over 1e-4 ..= 50 and row lengths from 1 to 400 (pseudo-random),
/// 24 rows each, output scales 1/256 and 1/1024: every output within one step of the
/// interpreter's, and nearly all equal.
#[test]
fn random_scales_and_row_lengths_stay_within_a_step() {
    let (mut elements, mut exact_elements) = (0usize, 0f64);
    for i in 0..40u32 {
        let r = noise(3, 1000 + i);
        let c = Case {
            x: vec![24, 1 + ((r[0] + 1.0) * 200.0) as usize],
            axis: -1,
            coerce_2d: false,
            sx: 10f32.powf(-4.0 + (r[1] + 1.0) * 0.5 * 5.7),
            sy: if r[2] < 0.0 { SY } else { 1.0 / 1024.0 },
            unsigned: i % 3 == 0,
            constant: false,
        };
        let g = graph(&c);
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert_eq!(softmax_steps(&spec), 1, "{c:?}: {}", report.text());
        let program = Program::new(spec, Default::default()).unwrap();
        let (none, _) = lower(&g, PartitionMode::None).unwrap();
        let interpreter = Program::new(none, Default::default()).unwrap();
        let x = input(&c, i);
        let (within, exact, worst) = step_agreement(&run(&program, &x), &run(&interpreter, &x), c.sy);
        assert!(within == 1.0, "{c:?}: {within} within a step, worst {worst}");
        let n: usize = c.x.iter().product();
        elements += n;
        exact_elements += exact * n as f64;
    }
    let exact = exact_elements / elements as f64;
    println!("{elements} elements, {exact:.5} equal to the interpreter's");
    assert!(exact >= 0.99, "{exact}");
}

#[test]
fn huge_scales_put_all_the_mass_on_the_maximum_and_equal_rows_share_it() {
    let huge = &cases()[3];
    let (spec, _) = lower(&graph(huge), PartitionMode::All).unwrap();
    let program = Program::new(spec, Default::default()).unwrap();
    let x = input(huge, 4);
    let y = run(&program, &x);
    let xv = x.as_f32().unwrap();
    for (xr, yr) in xv.chunks(7).zip(y.chunks(7)) {
        let max = xr.iter().copied().fold(f32::MIN, f32::max);
        // Elements whose quantized value is the row's maximum share the mass evenly.
        let top: Vec<usize> = (0..7)
            .filter(|&j| (xr[j] / huge.sx).round() == (max / huge.sx).round())
            .collect();
        for j in 0..7 {
            let want = if top.contains(&j) {
                (1.0 / top.len() as f32 / SY).round().min(255.0) * SY
            } else {
                0.0
            };
            assert!((yr[j] - want).abs() <= SY * 1.01, "{xr:?} → {yr:?}");
        }
    }
    let equal = &cases()[5];
    let (spec, _) = lower(&graph(equal), PartitionMode::All).unwrap();
    let y = run(&Program::new(spec, Default::default()).unwrap(), &input(equal, 0));
    assert!(y.iter().all(|&v| v == 32.0 * SY), "{y:?}");
}

#[test]
fn softmaxes_agree_with_onnxruntime() {
    let Some(python) = python("delegate_softmax") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for c in cases() {
        let what = format!("{c:?}");
        let g = graph(&c);
        let model = dir.path().join("m.onnx");
        xq::onnx::save_file(&g, &model).unwrap();
        let x = input(&c, 5);
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
        assert_eq!(ort.dims(), &c.x[..], "{what}: ONNX Runtime's output shape");
        let (spec, _) = lower(&g, PartitionMode::All).unwrap();
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
fn softmax_steps_are_bit_identical_under_every_isa() {
    for c in cases() {
        let (spec, _) = lower(&graph(&c), PartitionMode::All).unwrap();
        let kernel = spec
            .steps
            .iter()
            .find_map(|s| match s {
                StepSpec::Kernel {
                    kernel: k @ KernelSpec::Softmax(_),
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
fn opset_12_softmaxes_over_several_axes_are_refused_with_a_reason() {
    for (x, axis) in [(vec![2, 3, 4], 1), (vec![1, 3, 4, 5], 1), (vec![6, 5], 0)] {
        let c = Case {
            x: x.clone(),
            axis,
            coerce_2d: true,
            sx: 0.05,
            sy: SY,
            unsigned: false,
            constant: false,
        };
        let g = graph(&c);
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert_eq!(softmax_steps(&spec), 0, "{x:?}");
        let refusal = report
            .refused
            .iter()
            .find(|r| r.op == "Softmax")
            .unwrap_or_else(|| panic!("{x:?}: {}", report.text()));
        assert!(refusal.detail.contains("opset < 13"), "{x:?}: {}", refusal.detail);
        // The interpreter runs it instead, with the same result as without the delegate.
        let (none, _) = lower(&g, PartitionMode::None).unwrap();
        let xin = input(&c, 3);
        let want = run(&Program::new(none, Default::default()).unwrap(), &xin);
        assert_eq!(run(&Program::new(spec, Default::default()).unwrap(), &xin), want);
    }
    // Opset 13 along the first axis of the same shapes is taken.
    let c = Case {
        x: vec![6, 5],
        axis: 0,
        coerce_2d: false,
        sx: 0.05,
        sy: SY,
        unsigned: false,
        constant: false,
    };
    let (spec, report) = lower(&graph(&c), PartitionMode::All).unwrap();
    assert_eq!(softmax_steps(&spec), 1, "{}", report.text());
}

/// A float classification head: Conv → Relu → Softmax over channels (4-D, stored NHWC),
/// and Gemm → Softmax over classes.
fn head_model() -> Graph {
    use xq::onnx::{add_onnx_node, AttrValue};
    let mut g = Graph {
        name: "softmax_heads".into(),
        inputs: vec![TensorInfo::known("input", DType::F32, &[1, 3, 5, 6])],
        ..Graph::default()
    };
    for (name, dims, seed) in [("w1", vec![8usize, 3, 3, 3], 3u32), ("w2", vec![10, 240], 5)] {
        let n = dims.iter().product();
        let w = Tensor::from_f32(dims, noise(n, seed)).unwrap();
        g.initializers.insert(name.into(), w);
    }
    let ints = |name: &str, v: &[i64]| (name.to_string(), AttrValue::Ints(v.to_vec()));
    let int = |name: &str, v: i64| (name.to_string(), AttrValue::Int(v));
    type Attrs = Vec<(String, AttrValue)>;
    let nodes: [(&str, &[&str], &str, Attrs); 6] = [
        ("Conv", &["input", "w1"], "c1", vec![ints("pads", &[1, 1, 1, 1])]),
        ("Relu", &["c1"], "r1", vec![]),
        ("Softmax", &["r1"], "map", vec![int("axis", 1)]),
        ("Flatten", &["r1"], "f", vec![]),
        ("Gemm", &["f", "w2"], "logits", vec![int("transB", 1)]),
        ("Softmax", &["logits"], "probs", vec![]),
    ];
    for (op, inputs, out, attrs) in nodes {
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        add_onnx_node(&mut g, op, out, &inputs, &[out.to_string()], &attrs).unwrap();
    }
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g.outputs = vec![
        TensorInfo::known("map", DType::F32, &[1, 8, 5, 6]),
        TensorInfo::known("probs", DType::F32, &[1, 10]),
    ];
    g.validate().unwrap();
    g
}

fn head_input(seed: u32) -> Tensor {
    Tensor::from_f32(
        vec![1, 3, 5, 6],
        noise(90, seed).iter().map(|v| v * 3.0).collect(),
    )
    .unwrap()
}

/// [`head_model`] quantized by libxq, as a QDQ graph and a program spec.
fn quantized_heads() -> (Graph, xq::program::ProgramSpec) {
    use xq::quant::{QuantConfig, Quantizer};
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    q.prepare(&head_model()).unwrap();
    for seed in 1..4 {
        q.calibrate(&[head_input(seed)]).unwrap();
    }
    let fixed: Vec<_> = q
        .activation_qparams()
        .unwrap()
        .into_iter()
        .filter(|(n, _)| n == "map" || n == "probs")
        .map(|(n, p)| (n, p.scale(), p.zero_point()))
        .collect();
    assert_eq!(
        fixed,
        vec![("map".to_string(), SY, -128), ("probs".to_string(), SY, -128)],
        "{}",
        q.report()
    );
    let g = q.convert().unwrap();
    let (spec, report) = lower(&g, PartitionMode::All).unwrap();
    assert_eq!(report.interpreted_nodes, 0, "{}", report.text());
    assert_eq!(softmax_steps(&spec), 2, "{}", report.text());
    (g, spec)
}

#[test]
fn quantized_softmax_heads_get_fixed_qparams_and_run_int8_with_nothing_interpreted() {
    let (g, spec) = quantized_heads();
    let (programs, interpreter) = delegated_and_interpreted(&g, spec);
    let x = head_input(9);
    let want = interpreter.execute(std::slice::from_ref(&x)).unwrap();
    for program in &programs {
        let got = program.execute(std::slice::from_ref(&x)).unwrap();
        for (a, b) in got.iter().zip(&want) {
            let (within, _, worst) = step_agreement(a.as_f32().unwrap(), b.as_f32().unwrap(), SY);
            assert!(within == 1.0, "worst {worst}");
        }
    }
}

#[test]
fn corrupted_softmax_programs_fail_to_load_without_panicking() {
    use xq::runtime::ProgramOptions;
    let (_, spec) = quantized_heads();
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
                    kernel: KernelSpec::Softmax(_),
                    ..
                }
            )
        })
        .unwrap();
    type Edit = fn(&mut xq::program::SoftmaxSpec);
    let edits: [Edit; 4] = [
        |k| k.axis = 4,
        |k| k.axis = usize::MAX,
        |k| k.input = usize::MAX,
        // An output of another shape (the program's input value).
        |k| k.output = 0,
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut bad = spec.clone();
        if let StepSpec::Kernel {
            kernel: KernelSpec::Softmax(k),
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
