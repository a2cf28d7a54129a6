//! PT2E models through the delegate: QDQ graphs made by PyTorch's PT2E flow (ExecuTorch's
//! XNNPACKQuantizer, `convert_pt2e`) and exported with `torch.onnx.export(..., dynamo=True)`,
//! written by `scripts/fixtures/pt2e_export.py`. Each must be delegated completely and agree
//! with ONNX Runtime executing the same QDQ model as written (`tests/fixtures/pt2e/run_ort.py`,
//! the reference session of `tests/python/ort_reference.py`) by accuracy: SQNR against the
//! float model within `SQNR_MARGIN_DB` of ONNX Runtime's where the float model is at hand, SQNR
//! against ONNX Runtime's output otherwise; never element-wise (ONNX Runtime's fused integer
//! kernels differ by CPU).
//!
//! The digits CNN and patterns CNN exports are committed (`tests/fixtures/pt2e/`). The
//! MobileNetV2, ResNet-18 and SqueezeNet 1.1 exports are read from
//! `XQ_MODELS_DIR/<name>_pt2e[_per_tensor].onnx` with their evaluation crops
//! `<name>_pt2e_eval.npy` (or `<name>_eval.npy`); without them the tests print SKIPPED, also
//! under `XQ_STRICT=1`, since making them needs torch.

mod common;
mod delegate_common;

use delegate_common::*;
use std::path::{Path, PathBuf};
use xq::delegate::{lower, PartitionMode, Report};
use xq::ir::{Graph, Node, Op, Tensor};
use xq::npy;
use xq::program::ProgramSpec;
use xq::runtime::{Program, ProgramOptions};

/// The op types that must land in a partition for a model to count as fully delegated.
const MUST_DELEGATE: [&str; 8] = [
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "Concat",
    "GlobalAveragePool",
    "ReduceMean",
    "MaxPool",
];

fn pt2e_fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/pt2e").join(name)
}

/// Loads `model` with its (single) input fixed to `dims` and lowers it.
fn compile(model: &Path, dims: &[usize]) -> (ProgramSpec, Report) {
    let graph =
        xq::interp::simplify_with_shapes(xq::onnx::load_file(model).unwrap(), &[("input", dims)]).unwrap();
    let (spec, report) = lower(&graph, PartitionMode::All).unwrap();
    println!("{}", report.text());
    (spec, report)
}

/// Asserts that no conv / gemm / add / concat / pooling node was left to the interpreter.
fn assert_fully_delegated(report: &Report) {
    for r in &report.refused {
        assert!(
            !MUST_DELEGATE.contains(&r.op),
            "{} `{}` not delegated: {}\n{}",
            r.op,
            r.node,
            r.detail,
            report.text()
        );
    }
}

/// The scale of the program's output value (the last quantized tensor, dequantized into
/// the graph output `output`).
fn output_scale(spec: &ProgramSpec, output: &str) -> f32 {
    let producer = spec
        .steps
        .iter()
        .find_map(|s| match s {
            xq::program::StepSpec::Dequantize { value, tensor, .. } if tensor == output => Some(*value),
            _ => None,
        })
        .unwrap_or_else(|| panic!("`{output}` is not dequantized from a delegate value"));
    spec.values[producer].q.scale
}

/// Runs `program` on every sample of `x` (batch 1 each) and concatenates the outputs.
fn run_all(program: &Program, x: &Tensor, dims: &[usize]) -> Vec<f32> {
    let per: usize = dims.iter().product();
    let mut out = Vec::new();
    for s in x.as_f32().unwrap().chunks(per) {
        let t = Tensor::from_f32(dims.to_vec(), s.to_vec()).unwrap();
        out.extend_from_slice(program.execute(&[t]).unwrap()[0].as_f32().unwrap());
    }
    out
}

/// ONNX Runtime's outputs of `model` on every sample of `x` (its reference session: the QDQ
/// graph as written).
fn onnxruntime_int8(python: &Path, model: &Path, x: &Path, dir: &Path) -> Tensor {
    let prefix = dir.join("ort");
    let stdout = run_python(
        python,
        &pt2e_fixture("run_ort.py"),
        &[
            model.to_str().unwrap(),
            x.to_str().unwrap(),
            prefix.to_str().unwrap(),
        ],
    );
    println!("ONNX Runtime: {}", stdout.trim());
    npy::read(dir.join("ort_y.npy")).unwrap()
}

fn accuracy(logits: &[f32], labels: &[i64]) -> f64 {
    let pred = argmax_rows(logits, 10);
    pred.iter().zip(labels).filter(|(p, l)| **p as i64 == **l).count() as f64 / labels.len() as f64
}

const DIGITS_VARIANTS: [&str; 2] = ["digits_cnn_pt2e.onnx", "digits_cnn_pt2e_per_tensor.onnx"];

#[test]
fn digits_pt2e_exports_are_delegated_in_one_partition() {
    for name in DIGITS_VARIANTS {
        let (_, report) = compile(&pt2e_fixture(name), &[1, 1, 8, 8]);
        assert_fully_delegated(&report);
        assert!(report.refused.is_empty(), "{name}: {}", report.text());
        assert_eq!(report.partitions.len(), 1, "{name}: {}", report.text());
        assert_eq!(report.interpreted_nodes, 0, "{name}: {}", report.text());
        // Conv x3, MaxPool, ReduceMean, Reshape, Gemm.
        assert_eq!(report.delegated_nodes(), 7, "{name}: {}", report.text());
    }
}

/// The committed per-channel digits export, one image per run.
fn digits_graph() -> Graph {
    xq::interp::simplify_with_shapes(
        xq::onnx::load_file(pt2e_fixture(DIGITS_VARIANTS[0])).unwrap(),
        &[("input", &[1, 1, 8, 8])],
    )
    .unwrap()
}

/// Lowers `g` in `mode` and runs it on the first 60 test images: every output, concatenated.
fn digits_outputs(g: &Graph, mode: PartitionMode) -> (Vec<f32>, Report) {
    let (spec, report) = lower(g, mode).unwrap();
    let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
    let x = npy::read(root().join("tests/fixtures/digits/digits_test_x.npy")).unwrap();
    let mut out = Vec::new();
    for s in x.as_f32().unwrap().chunks(64).take(60) {
        let t = Tensor::from_f32(vec![1, 1, 8, 8], s.to_vec()).unwrap();
        for y in program.execute(&[t]).unwrap() {
            out.extend(y.to_f32_vec().unwrap());
        }
    }
    (out, report)
}

fn node_index(g: &Graph, pred: impl Fn(&Node) -> bool) -> usize {
    g.nodes.iter().position(pred).unwrap()
}

/// Inserts `Q → DQ` with the given scale / zero-point tensors on the edge into input 0 of
/// node `at`, copying the Q and DQ operators (attributes) of `q_like` and `dq_like`.
fn insert_requantization(g: &mut Graph, at: usize, q_like: usize, dq_like: usize, scale: &str, zp: &str) {
    let x = g.nodes[at].inputs[0].clone();
    let (q_name, dq_name) = (format!("{x}__rq"), format!("{x}__rdq"));
    let q = Node {
        name: format!("{x}_requantize"),
        op: g.nodes[q_like].op.clone(),
        inputs: vec![x.clone(), scale.into(), zp.into()],
        outputs: vec![q_name.clone()],
    };
    let dq = Node {
        name: format!("{x}_redequantize"),
        op: g.nodes[dq_like].op.clone(),
        inputs: vec![q_name, scale.into(), zp.into()],
        outputs: vec![dq_name.clone()],
    };
    g.nodes[at].inputs[0] = dq_name;
    g.insert_node(at, dq);
    g.insert_node(at, q);
    xq::interp::simplify(g).unwrap();
}

/// PT2E's form of an activation sharing its input's qparams, `Conv → Q → DQ → Relu → Q`
/// (what ReLU6 / hardtanh look like in PT2E MobileNetV2): made here by moving the first
/// conv's ReLU behind a requantization with the ReLU output's qparams. It is fused into the
/// conv's output range, giving bit-identical results; with other qparams it is not fused but
/// lowered alone, as a table lookup.
#[test]
fn activation_behind_a_requantization_is_fused_only_with_equal_qparams() {
    let original = digits_graph();
    let (expected, _) = digits_outputs(&original, PartitionMode::All);

    let mut g = original.clone();
    let relu = node_index(&g, |n| matches!(n.op, Op::Unary(_)));
    let q_after = g.consumers(&g.nodes[relu].outputs[0].clone())[0];
    let dq_after = g.consumers(&g.nodes[q_after].outputs[0].clone())[0];
    let (scale, zp) = (
        g.nodes[q_after].inputs[1].clone(),
        g.nodes[q_after].inputs[2].clone(),
    );
    insert_requantization(&mut g, relu, q_after, dq_after, &scale, &zp);
    let (fused, report) = digits_outputs(&g, PartitionMode::All);
    println!("{}", report.text());
    assert!(report.refused.is_empty(), "{}", report.text());
    assert_eq!((report.partitions.len(), report.delegated_nodes()), (1, 7));
    assert_eq!(report.interpreted_nodes, 0, "{}", report.text());
    assert_eq!(fused, expected, "fused clamp differs from the fused ReLU");
    let (per_op, _) = digits_outputs(&g, PartitionMode::PerOp);
    assert_eq!(per_op, expected, "per-operator partitions differ");

    let mut g = original.clone();
    let s = g.initializers[&scale].as_f32().unwrap()[0];
    g.initializers
        .insert("other_scale".into(), Tensor::scalar_f32(s * 1.5));
    let relu = node_index(&g, |n| matches!(n.op, Op::Unary(_)));
    insert_requantization(&mut g, relu, q_after, dq_after, "other_scale", &zp);
    let (ours, report) = digits_outputs(&g, PartitionMode::All);
    println!("{}", report.text());
    assert!(report.refused.is_empty(), "{}", report.text());
    assert_eq!(report.delegated_nodes(), 8, "{}", report.text());
    assert_eq!(report.interpreted_nodes, 0, "{}", report.text());
    let (interpreted, _) = digits_outputs(&g, PartitionMode::None);
    let (within, _, worst) = step_agreement(&ours, &interpreted, output_scale_of(&g));
    assert!(
        within >= 0.99,
        "{within} within one step of the interpreter (worst {worst})"
    );
}

/// A scale × 1.25, or a zero point + 3 (int8 only): `None` for other tensors.
fn unpaired(t: &Tensor, input: usize) -> Option<Tensor> {
    let dims = t.dims().to_vec();
    match input {
        1 => Tensor::from_f32(dims, t.as_f32().ok()?.iter().map(|v| v * 1.25).collect()).ok(),
        _ => Tensor::from_i8(
            dims,
            t.as_i8().ok()?.iter().map(|v| v.saturating_add(3)).collect(),
        )
        .ok(),
    }
}

/// Every Q or DQ of the patterns CNN given, one at a time, a scale or a zero point of its own
/// (so that its pairing with the other side breaks, or a weight's zero point is no longer
/// 0): the partitioner refuses the patterns that need the pair, the rest still runs
/// delegated, and the result stays within one int8 step of the same graph in the float
/// interpreter.
#[test]
fn patterns_pt2e_with_one_unpaired_qparam_still_matches_the_interpreter() {
    let dims = [1usize, 3, 16, 16];
    let x = npy::read(pt2e_fixture("patterns_pt2e_eval.npy")).unwrap();
    let samples: Vec<Tensor> = x
        .as_f32()
        .unwrap()
        .chunks(dims.iter().product())
        .take(16)
        .map(|s| Tensor::from_f32(dims.to_vec(), s.to_vec()).unwrap())
        .collect();
    let original = xq::interp::simplify_with_shapes(
        xq::onnx::load_file(pt2e_fixture(PATTERNS_VARIANTS[0])).unwrap(),
        &[("input", &dims)],
    )
    .unwrap();
    let (mut refusals, mut lowest, mut variants) = (0, 1.0f64, 0);
    for i in 0..original.nodes.len() {
        let is_qdq = matches!(
            original.nodes[i].op,
            Op::QuantizeLinear(_) | Op::DequantizeLinear(_)
        );
        for input in [1, 2] {
            let Some(old) = original.nodes[i].input(input).filter(|_| is_qdq) else {
                continue;
            };
            let Some(new) = unpaired(&original.initializers[old], input) else {
                continue;
            };
            let mut g = original.clone();
            let name = format!("unpaired_{i}_{input}");
            g.initializers.insert(name.clone(), new);
            g.nodes[i].inputs[input] = name;
            let (spec, report) = lower(&g, PartitionMode::All).unwrap();
            refusals += report.refused.len();
            variants += 1;
            let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
            let (mut ours, mut reference) = (Vec::new(), Vec::new());
            for t in &samples {
                let y = program.execute(std::slice::from_ref(t)).unwrap();
                ours.extend(y[0].to_f32_vec().unwrap());
                let y = xq::interp::run_once(&g, std::slice::from_ref(t)).unwrap();
                reference.extend(y[0].to_f32_vec().unwrap());
            }
            let (within, _, worst) = step_agreement(&ours, &reference, output_scale_of(&g));
            lowest = lowest.min(within);
            assert!(
                within >= 0.98,
                "node {i} `{}` input {input}: {within} within one step of the interpreter (worst {worst})\n{}",
                g.nodes[i].name,
                report.text()
            );
        }
    }
    println!("{variants} variants, lowest agreement with the interpreter: {lowest:.4} within one step");
    assert!(variants > 80, "only {variants} variants");
    assert!(refusals > 0, "unpaired qparams must cause refusals");
}

/// The scale of the QuantizeLinear behind the graph's first output.
fn output_scale_of(g: &Graph) -> f32 {
    let dq = g.producer(&g.outputs[0].name).unwrap();
    g.initializers[&g.nodes[dq].inputs[1]].as_f32().unwrap()[0]
}

/// A requantization to the same qparams (what PT2E leaves of a Dropout, as in MobileNetV2's
/// classifier) is passed through when nothing else reads it, and kept as a partition
/// boundary when its int8 tensor is also a graph output; both give the original logits.
#[test]
fn same_qparams_round_trip_is_passed_through() {
    let original = digits_graph();
    let (expected, _) = digits_outputs(&original, PartitionMode::All);
    let mut g = original.clone();
    let gemm = node_index(&g, |n| matches!(n.op, Op::Gemm(_)));
    let dq = g.producer(&g.nodes[gemm].inputs[0].clone()).unwrap();
    let q = g.producer(&g.nodes[dq].inputs[0].clone()).unwrap();
    let (scale, zp) = (g.nodes[dq].inputs[1].clone(), g.nodes[dq].inputs[2].clone());
    insert_requantization(&mut g, gemm, q, dq, &scale, &zp);
    let (ours, report) = digits_outputs(&g, PartitionMode::All);
    println!("{}", report.text());
    assert!(report.refused.is_empty(), "{}", report.text());
    assert_eq!((report.partitions.len(), report.delegated_nodes()), (1, 7));
    assert_eq!(report.interpreted_nodes, 0, "{}", report.text());
    assert_eq!(ours, expected);
    let (per_op, _) = digits_outputs(&g, PartitionMode::PerOp);
    assert_eq!(per_op, expected, "per-operator partitions differ");

    // The round trip's int8 tensor is also read as a graph output: not passed through.
    let gemm = node_index(&g, |n| matches!(n.op, Op::Gemm(_)));
    let rdq = g.producer(&g.nodes[gemm].inputs[0].clone()).unwrap();
    let rq_out = g.nodes[rdq].inputs[0].clone();
    let info = g.tensor_info(&rq_out).unwrap();
    g.outputs.push(info);
    let (ours, report) = digits_outputs(&g, PartitionMode::All);
    println!("{}", report.text());
    assert!(report.refused.is_empty(), "{}", report.text());
    assert_eq!(report.partitions.len(), 2, "{}", report.text());
    let logits: Vec<f32> = ours.chunks(10 + 32).flat_map(|c| c[..10].to_vec()).collect();
    assert_eq!(logits, expected);
}

/// Compiles `model` (input fixed to `dims`), asserts full delegation, saves and reloads the
/// program, runs it on every sample of `eval` and compares the output `output` with ONNX
/// Runtime's by accuracy: against the float model's outputs `float` when given (SQNR within
/// `SQNR_MARGIN_DB` of ONNX Runtime's), else libxq against ONNX Runtime (SQNR ≥
/// [`MIN_AGREEMENT_DB`]). Returns libxq's outputs.
fn agreement_with_onnxruntime(
    python: &Path,
    model: &Path,
    eval: &Path,
    dims: &[usize],
    output: &str,
    float: Option<&[f32]>,
) -> Vec<f32> {
    let name = model.file_name().unwrap().to_string_lossy().into_owned();
    let (spec, report) = compile(model, dims);
    assert_fully_delegated(&report);
    let scale = output_scale(&spec, output);
    // Executed from its program file, so that the file carries every new step and value.
    let bytes = xq::format::program_file::to_bytes(&spec).unwrap();
    let reloaded = xq::format::program_file::from_bytes(&bytes).unwrap();
    assert_eq!((&reloaded.steps, &reloaded.values), (&spec.steps, &spec.values));
    let program = Program::new(reloaded, ProgramOptions { threads: 1 }).unwrap();
    let ours = run_all(&program, &npy::read(eval).unwrap(), dims);
    let dir = tempfile::tempdir().unwrap();
    let theirs = onnxruntime_int8(python, model, eval, dir.path());
    let (within, exact, worst) = step_agreement(&ours, theirs.as_f32().unwrap(), scale);
    println!(
        "{name}: agreement with ORT: within one step {within:.5}, exact {exact:.5}, worst {worst} steps"
    );
    let theirs = theirs.as_f32().unwrap();
    match float {
        Some(float) => {
            assert_accuracy_next_to_onnxruntime(&name, &ours, theirs, float, 20.0);
        }
        None => {
            let db = sqnr_db(theirs, &ours);
            println!("{name}: libxq vs ONNX Runtime {db:.2} dB");
            assert!(
                db >= MIN_AGREEMENT_DB,
                "{name}: libxq vs ONNX Runtime only {db:.2} dB"
            );
        }
    }
    ours
}

fn check_digits(name: &str) {
    let Some(python) = python(name) else { return };
    let digits = root().join("tests/fixtures/digits");
    let x_path = digits.join("digits_test_x.npy");
    let x = npy::read(&x_path).unwrap();
    let labels = npy::read(digits.join("digits_test_y.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    let float = xq::onnx::load_file(digits.join("digits_cnn.onnx")).unwrap();
    let float_y = xq::interp::run_once(&float, std::slice::from_ref(&x))
        .unwrap()
        .remove(0);
    let float_acc = accuracy(float_y.as_f32().unwrap(), &labels);

    let ours = agreement_with_onnxruntime(
        &python,
        &pt2e_fixture(name),
        &x_path,
        &[1, 1, 8, 8],
        "logits",
        Some(float_y.as_f32().unwrap()),
    );
    let acc = accuracy(&ours, &labels);
    println!("{name}: int8 accuracy {acc:.4} vs float {float_acc:.4}");
    assert!(
        acc >= float_acc - 0.01,
        "{name}: int8 accuracy {acc} more than 1 point below float {float_acc}"
    );
}

/// The seeded patterns CNN (conv + BN + ReLU, depthwise conv + hardtanh, cat, add + ReLU,
/// mul, max pool with ceil_mode, linear over a channels-last permute, adaptive average pool,
/// mean without kept dims, dropout, bias-free linear) in one partition, nothing interpreted.
#[test]
fn patterns_pt2e_exports_are_delegated_in_one_partition() {
    for name in PATTERNS_VARIANTS {
        let (_, report) = compile(&pt2e_fixture(name), &[1, 3, 16, 16]);
        assert!(report.refused.is_empty(), "{name}: {}", report.text());
        assert_eq!(report.partitions.len(), 1, "{name}: {}", report.text());
        assert_eq!(report.interpreted_nodes, 0, "{name}: {}", report.text());
        let ops = &report.partitions[0].ops;
        for (op, count) in [
            ("Conv", 5),
            ("Concat", 2),
            ("Add", 1),
            ("Mul", 1),
            ("MatMul", 1),
            ("Gemm", 1),
        ] {
            assert_eq!(ops.get(op), Some(&count), "{name}: {op}\n{}", report.text());
        }
    }
}

const PATTERNS_VARIANTS: [&str; 2] = ["patterns_pt2e.onnx", "patterns_pt2e_per_tensor.onnx"];

/// Per-operator partitions (f32 between every pattern) give the same int8 results as one
/// partition, and the QDQ graph in the float interpreter stays within one step.
#[test]
fn patterns_pt2e_partition_modes_agree() {
    let dims = [1, 3, 16, 16];
    let x = npy::read(pt2e_fixture("patterns_pt2e_eval.npy")).unwrap();
    for name in PATTERNS_VARIANTS {
        let graph = xq::interp::simplify_with_shapes(
            xq::onnx::load_file(pt2e_fixture(name)).unwrap(),
            &[("input", &dims)],
        )
        .unwrap();
        let run = |mode| {
            let (spec, _) = lower(&graph, mode).unwrap();
            run_all(
                &Program::new(spec, ProgramOptions { threads: 1 }).unwrap(),
                &x,
                &dims,
            )
        };
        let all = run(PartitionMode::All);
        assert_eq!(
            run(PartitionMode::PerOp),
            all,
            "{name}: per-operator partitions differ"
        );
        let (within, exact, worst) = step_agreement(&all, &run(PartitionMode::None), output_scale_of(&graph));
        println!("{name}: vs the interpreter: within one step {within:.5}, exact {exact:.5}, worst {worst}");
        assert!(
            within >= 0.99,
            "{name}: {within} within one step of the interpreter"
        );
    }
}

#[test]
fn patterns_pt2e_matches_onnxruntime() {
    let Some(python) = python("patterns_pt2e_matches_onnxruntime") else {
        return;
    };
    for name in PATTERNS_VARIANTS {
        agreement_with_onnxruntime(
            &python,
            &pt2e_fixture(name),
            &pt2e_fixture("patterns_pt2e_eval.npy"),
            &[1, 3, 16, 16],
            "logits",
            None,
        );
    }
}

#[test]
fn digits_pt2e_per_channel_matches_onnxruntime_and_float_accuracy() {
    check_digits(DIGITS_VARIANTS[0]);
}

#[test]
fn digits_pt2e_per_tensor_matches_onnxruntime_and_float_accuracy() {
    check_digits(DIGITS_VARIANTS[1]);
}

/// A torchvision model exported through PT2E into `XQ_MODELS_DIR` (`variant` is "" or
/// "_per_tensor"): fully delegated and agreeing with ONNX Runtime (SQNR ≥
/// [`MIN_AGREEMENT_DB`]).
fn check_models_dir(stem: &str, variant: &str) {
    let file = format!("{stem}_pt2e{variant}.onnx");
    let found = std::env::var_os("XQ_MODELS_DIR")
        .map(|d| PathBuf::from(d).join(&file))
        .filter(|m| m.exists());
    let Some(model) = found else {
        println!(
            "SKIPPED: {stem} PT2E needs XQ_MODELS_DIR with {file} and {stem}_pt2e_eval.npy \
             (scripts/fixtures/pt2e_export.py {stem} DIR, needs torch)"
        );
        return;
    };
    let Some(python) = python(&file) else { return };
    let dir = model.parent().unwrap();
    let eval = [format!("{stem}_pt2e_eval.npy"), format!("{stem}_eval.npy")]
        .iter()
        .map(|e| dir.join(e))
        .find(|e| e.exists())
        .unwrap_or_else(|| panic!("no {stem}_pt2e_eval.npy or {stem}_eval.npy next to {file}"));
    agreement_with_onnxruntime(&python, &model, &eval, &[1, 3, 224, 224], "output", None);
}

/// The least SQNR, in dB, of libxq's output against ONNX Runtime's for one QDQ model when no
/// float model is at hand: both compute the same QDQ graph, so they differ only where ONNX
/// Runtime's float op and libxq's exact integer arithmetic round a value differently (one
/// step, then propagated); a wrong formula or lowering costs far more.
const MIN_AGREEMENT_DB: f64 = 30.0;

#[test]
fn mobilenet_v2_pt2e_is_delegated_and_matches_onnxruntime() {
    check_models_dir("mobilenet_v2", "");
}

#[test]
fn mobilenet_v2_pt2e_per_tensor_is_delegated_and_matches_onnxruntime() {
    check_models_dir("mobilenet_v2", "_per_tensor");
}

#[test]
fn squeezenet1_1_pt2e_is_delegated_and_matches_onnxruntime() {
    check_models_dir("squeezenet1_1", "");
}

#[test]
fn squeezenet1_1_pt2e_per_tensor_is_delegated_and_matches_onnxruntime() {
    check_models_dir("squeezenet1_1", "_per_tensor");
}

#[test]
fn resnet18_pt2e_is_delegated_and_matches_onnxruntime() {
    check_models_dir("resnet18", "");
}

#[test]
fn resnet18_pt2e_per_tensor_is_delegated_and_matches_onnxruntime() {
    check_models_dir("resnet18", "_per_tensor");
}
