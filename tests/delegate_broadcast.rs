//! Broadcasting Add / Mul in the delegate.
//!
//! - Small QDQ graphs built here (no Python): broadcasts the elementwise kernel expresses are
//!   delegated and compute ONNX's broadcast (checked against a float reference of the
//!   quantized values and against the same operation on expanded operands); the others are
//!   refused with a shape reason in the report. Small constant operands behind a
//!   DequantizeLinear are delegated too and equal the same values fed as an input.
//! - The squeeze-excitation model of `scripts/fixtures/build_models.py` (`se_blocks`),
//!   quantized by ONNX Runtime's quantize_static: every Add / Mul is delegated, each delegated
//!   step given ONNX Runtime's int8 inputs is within one step of ONNX Runtime's unfused
//!   execution, and the output is as accurate against the float model as ONNX Runtime's
//!   (needs `XQ_PYTHON`; see `tests/python/ort_reference.py` for why not element-wise).

mod common;
mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode, Reason};
use xq::ir::op::{BinaryOp, QuantAttrs};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorData, TensorInfo};
use xq::npy;
use xq::runtime::{Program, ProgramOptions};

const SCALE_A: f32 = 0.05;
const SCALE_B: f32 = 0.04;
const SCALE_Y: f32 = 0.1;

fn node(name: &str, op: Op, inputs: &[&str], output: &str) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    }
}

/// `Q → DQ → (a op b) → Q → DQ` on float inputs `a`, `b` of the given shapes; per-tensor int8
/// qparams `SCALE_A`/`SCALE_B`/`SCALE_Y`, zero points 3, -2, 1.
fn binary_graph(op: BinaryOp, a: &[usize], b: &[usize], out: &[usize]) -> Graph {
    let mut g = Graph {
        name: "broadcast".into(),
        inputs: vec![
            TensorInfo::known("a", DType::F32, a),
            TensorInfo::known("b", DType::F32, b),
        ],
        outputs: vec![TensorInfo::known("y", DType::F32, out)],
        ..Graph::default()
    };
    let zp = |v: i8| Tensor::new(vec![], TensorData::I8(vec![v])).unwrap();
    for (name, t) in [
        ("sa", Tensor::scalar_f32(SCALE_A)),
        ("sb", Tensor::scalar_f32(SCALE_B)),
        ("sy", Tensor::scalar_f32(SCALE_Y)),
        ("za", zp(3)),
        ("zb", zp(-2)),
        ("zy", zp(1)),
    ] {
        g.initializers.insert(name.into(), t);
    }
    let q = || Op::QuantizeLinear(QuantAttrs::default());
    let dq = || Op::DequantizeLinear(QuantAttrs::default());
    g.nodes = vec![
        node("qa", q(), &["a", "sa", "za"], "a_q"),
        node("dqa", dq(), &["a_q", "sa", "za"], "a_dq"),
        node("qb", q(), &["b", "sb", "zb"], "b_q"),
        node("dqb", dq(), &["b_q", "sb", "zb"], "b_dq"),
        node("op", Op::Binary(op), &["a_dq", "b_dq"], "y_f"),
        node("qy", q(), &["y_f", "sy", "zy"], "y_q"),
        node("dqy", dq(), &["y_q", "sy", "zy"], "y"),
    ];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

/// Seeded values spread over a few int8 steps of `scale`.
fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            let h = (i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) % 97;
            (h as f32 - 48.0) * scale * 0.9
        })
        .collect()
}

/// Quantize-dequantize with per-tensor int8 qparams.
fn fake_quant(v: f32, scale: f32, zp: i32) -> f32 {
    let q = ((v / scale).round_ties_even() + zp as f32).clamp(-128.0, 127.0);
    (q - zp as f32) * scale
}

/// Index into a row-major tensor of dims `d` (broadcast against `out`) of the output's
/// row-major index `i`.
fn broadcast_index(i: usize, out: &[usize], d: &[usize]) -> usize {
    let lead = out.len() - d.len();
    let mut rem = i;
    let mut coords = vec![0; out.len()];
    for axis in (0..out.len()).rev() {
        coords[axis] = rem % out[axis];
        rem /= out[axis];
    }
    let mut idx = 0;
    for (k, &dim) in d.iter().enumerate() {
        idx = idx * dim + if dim == 1 { 0 } else { coords[lead + k] };
    }
    idx
}

/// Runs `a op b` through the delegate, and the same operation on operands expanded to the
/// output shape (no broadcast).
fn run_broadcast_and_expanded(op: BinaryOp, a: &[usize], b: &[usize], out: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let run = |a: &[usize], b: &[usize], va: Vec<f32>, vb: Vec<f32>| {
        let g = binary_graph(op, a, b, out);
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert!(report.refused.is_empty(), "{a:?} op {b:?}: {}", report.text());
        assert_eq!(report.delegated_nodes(), 1, "{}", report.text());
        let program = Program::new(spec, ProgramOptions { threads: 2 }).unwrap();
        let ta = Tensor::from_f32(a.to_vec(), va).unwrap();
        let tb = Tensor::from_f32(b.to_vec(), vb).unwrap();
        program.execute(&[ta, tb]).unwrap()[0].as_f32().unwrap().to_vec()
    };
    let (na, nb) = (a.iter().product::<usize>(), b.iter().product::<usize>());
    let (va, vb) = (values(na, 1, SCALE_A), values(nb, 2, SCALE_B));
    let total: usize = out.iter().product();
    let expand = |v: &[f32], d: &[usize]| (0..total).map(|i| v[broadcast_index(i, out, d)]).collect();
    let broadcast = run(a, b, va.clone(), vb.clone());
    let expanded = run(out, out, expand(&va, a), expand(&vb, b));
    (broadcast, expanded)
}

/// Checks the delegated broadcast: every element within one step of the float broadcast of
/// the quantized operands, requantized; Mul byte-identical to the same product on expanded
/// operands (its formula is symmetric, so the operand the kernel streams does not matter);
/// Add within one step of it (ONNX Runtime streams the non-broadcast operand, which changes
/// the order of its `f32` multiply-adds).
fn check_delegated(op: BinaryOp, a: &[usize], b: &[usize], out: &[usize]) {
    let (y, dense) = run_broadcast_and_expanded(op, a, b, out);
    assert_eq!(y.len(), out.iter().product::<usize>());
    let (na, nb) = (a.iter().product::<usize>(), b.iter().product::<usize>());
    let (va, vb) = (values(na, 1, SCALE_A), values(nb, 2, SCALE_B));
    for (i, (&got, &got_dense)) in y.iter().zip(&dense).enumerate() {
        let x = fake_quant(va[broadcast_index(i, out, a)], SCALE_A, 3);
        let z = fake_quant(vb[broadcast_index(i, out, b)], SCALE_B, -2);
        let r = match op {
            BinaryOp::Add => x + z,
            _ => x * z,
        };
        let want = fake_quant(r, SCALE_Y, 1);
        assert!(
            ((got - want) / SCALE_Y).abs() < 1.01,
            "{a:?} op {b:?} element {i}: {got} vs {want}"
        );
        let steps = ((got - got_dense) / SCALE_Y).abs();
        match op {
            BinaryOp::Mul => assert_eq!(got.to_bits(), got_dense.to_bits(), "{a:?} * {b:?} element {i}"),
            _ => assert!(
                steps < 1.01,
                "{a:?} + {b:?} element {i}: {got} vs expanded {got_dense}"
            ),
        }
    }
}

#[test]
fn supported_broadcasts_are_delegated_and_compute_the_numpy_broadcast() {
    let cases: &[(&[usize], &[usize], &[usize])] = &[
        (&[2, 5, 3, 4], &[2, 5, 1, 1], &[2, 5, 3, 4]),
        (&[2, 5, 1, 1], &[2, 5, 3, 4], &[2, 5, 3, 4]),
        (&[2, 5, 3, 4], &[1, 5, 1, 1], &[2, 5, 3, 4]),
        (&[1, 5, 1, 1], &[2, 5, 3, 4], &[2, 5, 3, 4]),
        (&[2, 5, 3, 4], &[5, 1, 1], &[2, 5, 3, 4]),
        (&[2, 5, 3, 4], &[1], &[2, 5, 3, 4]),
        (&[], &[2, 5, 3, 4], &[2, 5, 3, 4]),
        (&[2, 5, 3, 4], &[2, 1, 3, 4], &[2, 5, 3, 4]),
        (&[2, 5, 3, 4], &[3, 4], &[2, 5, 3, 4]),
        (&[2, 5, 1, 1], &[1, 1, 3, 4], &[2, 5, 3, 4]),
        (&[3, 7], &[7], &[3, 7]),
        (&[3, 1], &[3, 7], &[3, 7]),
        (&[2, 3, 7], &[1, 1, 7], &[2, 3, 7]),
        (&[2, 3, 7], &[2, 3, 1], &[2, 3, 7]),
    ];
    for op in [BinaryOp::Add, BinaryOp::Mul] {
        for (a, b, out) in cases {
            check_delegated(op, a, b, out);
        }
    }
}

/// `Q → DQ → (a op DQ(constant int8 c)) → Q → DQ`.
fn constant_operand_graph(op: BinaryOp, a: &[usize], c: &[usize], values: Vec<i8>) -> Graph {
    let mut g = binary_graph(op, a, c, a);
    g.inputs.truncate(1);
    g.initializers.insert(
        "cq".into(),
        Tensor::new(c.to_vec(), TensorData::I8(values)).unwrap(),
    );
    g.nodes.retain(|n| n.name != "qb");
    g.nodes.iter_mut().find(|n| n.name == "dqb").unwrap().inputs[0] = "cq".into();
    g.value_info.clear();
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

#[test]
fn small_constant_operands_are_delegated_and_equal_the_same_values_as_inputs() {
    let a = [2usize, 5, 3, 4];
    for (c, op) in [
        (&[1usize][..], BinaryOp::Add),
        (&[5, 1, 1][..], BinaryOp::Mul),
        (&[][..], BinaryOp::Add),
    ] {
        let n: usize = c.iter().product();
        let cv: Vec<i8> = (0..n).map(|i| (i as i8) * 7 - 20).collect();
        let g = constant_operand_graph(op, &a, c, cv.clone());
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert!(report.refused.is_empty(), "{c:?}: {}", report.text());
        assert_eq!(report.delegated_nodes(), 1);
        let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
        let va = values(a.iter().product(), 1, SCALE_A);
        let ta = Tensor::from_f32(a.to_vec(), va.clone()).unwrap();
        let y = program.execute(std::slice::from_ref(&ta)).unwrap()[0]
            .as_f32()
            .unwrap()
            .to_vec();
        // The same operation with the constant's dequantized values fed as an input.
        let g = binary_graph(op, &a, c, &a);
        let (spec, _) = lower(&g, PartitionMode::All).unwrap();
        let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
        let vc: Vec<f32> = cv.iter().map(|&q| (q as f32 + 2.0) * SCALE_B).collect();
        let tc = Tensor::from_f32(c.to_vec(), vc).unwrap();
        let want = program.execute(&[ta, tc]).unwrap()[0].as_f32().unwrap().to_vec();
        assert_eq!(y, want, "{c:?}");
    }
    // A large constant stays with the interpreter.
    let big = [1usize, 70, 8, 8];
    let g = constant_operand_graph(BinaryOp::Add, &big, &big, vec![1; 70 * 64]);
    let (_, report) = lower(&g, PartitionMode::All).unwrap();
    assert_eq!(report.refused.len(), 1, "{}", report.text());
    assert!(
        report.refused[0].detail.contains("is a constant"),
        "{}",
        report.text()
    );
}

/// Operand shapes, output shape and words the refusal must contain.
type Refusal = (&'static [usize], &'static [usize], &'static [usize], &'static str);

#[test]
fn unsupported_broadcasts_are_refused_with_a_shape_reason() {
    let cases: &[Refusal] = &[
        // Broadcast over H only: the pixels do not collapse into one stride.
        (&[1, 4, 2, 3], &[1, 4, 1, 3], &[1, 4, 2, 3], "pixel"),
        // Row-major [C, H, W] into an NHWC tensor: channels not contiguous.
        (
            &[1, 4, 2, 3],
            &[4, 2, 3],
            &[1, 4, 2, 3],
            "channels are not contiguous",
        ),
        // Row-major [A, B, D] + [1, B, D] with A > 1.
        (&[2, 3, 6], &[1, 3, 6], &[2, 3, 6], "batch"),
        // Rank 5.
        (&[1, 2, 1, 1, 2], &[2], &[1, 2, 1, 1, 2], "at most 4"),
    ];
    for (a, b, out, words) in cases {
        let g = binary_graph(BinaryOp::Mul, a, b, out);
        let (spec, report) = lower(&g, PartitionMode::All).unwrap();
        assert_eq!(report.refused.len(), 1, "{a:?} * {b:?}: {}", report.text());
        let r = &report.refused[0];
        assert_eq!((r.op, r.reason), ("Mul", Reason::Shape), "{r:?}");
        assert!(r.detail.contains(words), "{a:?} * {b:?}: {}", r.detail);
        assert!(report.text().contains(words));
        // The interpreter still runs it.
        let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
        let ta = Tensor::from_f32(a.to_vec(), values(a.iter().product(), 1, SCALE_A)).unwrap();
        let tb = Tensor::from_f32(b.to_vec(), values(b.iter().product(), 2, SCALE_B)).unwrap();
        let y = program.execute(&[ta, tb]).unwrap();
        assert_eq!(y[0].numel(), out.iter().product::<usize>());
    }
}

/// The SE model quantized by ONNX Runtime (int8 or uint8 activations) through the delegate.
fn check_se_blocks(activations_u8: bool) {
    let name = "se_blocks";
    let Some(python) = python(name) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let script = root().join("scripts/fixtures/build_models.py");
    run_python(&python, &script, &[tmp.path().to_str().unwrap(), "--only", name]);
    let float_model = tmp.path().join(format!("{name}.onnx"));
    let mut extra = vec!["--calib-count", "8"];
    if activations_u8 {
        extra.push("--u8");
    }
    let model = ort_qdq(
        &python,
        &float_model,
        std::path::Path::new("random:8"),
        std::path::Path::new("random:6"),
        tmp.path(),
        name,
        &extra,
    );
    let dims = [1usize, 3, 16, 16];
    let graph = xq::interp::simplify_with_shapes(
        xq::onnx::load_file(&model).unwrap(),
        &[("input", dims.as_slice())],
    )
    .unwrap();
    let (spec, report) = lower(&graph, PartitionMode::All).unwrap();
    println!("{}", report.text());
    let delegated = |op: &str| -> usize {
        report
            .partitions
            .iter()
            .map(|p| p.ops.get(op).copied().unwrap_or(0))
            .sum()
    };
    // Two SE Muls and the scalar Mul; the two bias-like Adds and the `+ 1` of the scalar
    // (a quantized constant operand).
    assert_eq!((delegated("Mul"), delegated("Add")), (3, 3), "{}", report.text());
    for r in &report.refused {
        assert!(
            !["Mul", "Add"].contains(&r.op),
            "{} `{}` not delegated: {}",
            r.op,
            r.node,
            r.detail
        );
    }
    let scale = last_value_scale(&spec);
    let program = Program::new(spec, ProgramOptions { threads: 2 }).unwrap();
    let eval = npy::read(tmp.path().join(format!("{name}_x.npy"))).unwrap();
    let mut ours = Vec::new();
    for s in eval.as_f32().unwrap().chunks(dims.iter().product()) {
        let t = Tensor::from_f32(dims.to_vec(), s.to_vec()).unwrap();
        ours.extend_from_slice(program.execute(&[t]).unwrap()[0].as_f32().unwrap());
    }
    let theirs = npy::read(tmp.path().join(format!("{name}_y.npy"))).unwrap();
    let float = npy::read(tmp.path().join(format!("{name}_f.npy"))).unwrap();
    let (within, exact, worst) = step_agreement(&ours, theirs.as_f32().unwrap(), scale);
    println!(
        "{name} (u8 {activations_u8}): within one step {within:.5}, exact {exact:.5}, worst {worst} steps"
    );
    assert_accuracy_next_to_onnxruntime(
        name,
        &ours,
        theirs.as_f32().unwrap(),
        float.as_f32().unwrap(),
        15.0,
    );
    // Each delegated step given ONNX Runtime's inputs is within a step of ONNX Runtime's
    // DequantizeLinear → Add / Mul → QuantizeLinear, broadcasts included.
    let dump = tmp.path().join("ort_quantized");
    ort_quantized_dump(&python, &model, &tmp.path().join(format!("{name}_x.npy")), &dump);
    let layers = layer_agreement(program.spec(), &dump);
    print_layer_agreement(&layers, true);
    for op in ["Add", "Mul"] {
        let compared = layers.iter().filter(|l| l.node.starts_with(op)).count();
        assert!(compared >= 2, "{name}: {compared} {op} layers compared");
    }
    assert_layers_within_tolerance(name, &layers);
}

#[test]
fn se_blocks_int8_match_onnxruntime() {
    check_se_blocks(false);
}

#[test]
fn se_blocks_uint8_match_onnxruntime() {
    check_se_blocks(true);
}
