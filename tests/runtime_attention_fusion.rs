//! Interpreted attention chains (QKᵀ → scale → mask → softmax → [NaN → 0] → ·V) run as one
//! fused step: every attention of the four transformer fixture exports is fused, in float and
//! in dynamic int8 programs; the fused program gives the float interpreter's outputs (1e-5)
//! and ONNX Runtime's (1e-4) on token ids of English text, the same bits on 1 and 2 threads;
//! an all −inf mask row gives what the graph gives (NaN, or zeros behind IsNaN/Where); chains
//! that do not match exactly (scores read elsewhere, Softmax on another axis) are left alone;
//! grouped-query keys and values (Unsqueeze → Expand → Reshape) are read without repeating
//! them, a Shape node of the repeated tensor answering from its source.

mod graph_common;

use graph_common::{check_outputs_scaled, python, read_set, run_script};
use std::path::PathBuf;
use xq::delegate::{lower, PartitionMode};
use xq::ir::op::BinaryOp;
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorInfo};
use xq::quant::{ActivationMode, QuantConfig, Quantizer};
use xq::runtime::{Program, ProgramOptions};

const MODELS: &[&str] = &[
    "bert_tiny_sdpa_dynamo",
    "bert_tiny_eager_script",
    "llama_tiny_sdpa_dynamo",
    "llama_tiny_eager_script",
];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transformers")
}

/// Token ids `[batch, seq]` from the fixture text and a mask with the last `pad` positions of
/// the last row off.
fn tokens(batch: usize, seq: usize, pad: usize) -> Vec<Tensor> {
    let all = xq::npy::read(fixtures().join("tokens.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    let ids: Vec<i64> = (0..batch)
        .flat_map(|r| all[r * 128..r * 128 + seq].to_vec())
        .collect();
    let mut mask = vec![1i64; batch * seq];
    mask[batch * seq - pad..].iter_mut().for_each(|m| *m = 0);
    let t = |v: &[i64]| {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Tensor::from_le_bytes(DType::I64, vec![batch, seq], &bytes).unwrap()
    };
    vec![t(&ids), t(&mask)]
}

/// How many steps of `p` (run on `inputs`) are fused attentions, and how many Softmax are
/// still interpreted.
fn fused_steps(p: &Program, inputs: &[Tensor]) -> (usize, usize) {
    let labels = p.profile(inputs).unwrap();
    let fused = labels.iter().filter(|(l, _)| l.ends_with("[attention]")).count();
    let softmax = labels
        .iter()
        .filter(|(l, _)| l.ends_with("[interp Softmax]"))
        .count();
    (fused, softmax)
}

fn bits(ts: &[Tensor]) -> Vec<Vec<u32>> {
    ts.iter()
        .map(|t| t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

fn softmax_count(g: &Graph) -> usize {
    g.nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Softmax { .. }))
        .count()
}

#[test]
fn every_fixture_attention_is_fused_and_matches_the_interpreter() {
    for name in MODELS {
        let graph = xq::onnx::load_file(fixtures().join(format!("{name}.onnx"))).unwrap();
        let layers = softmax_count(&graph);
        assert!(layers >= 2, "{name}: {layers} attentions");
        let spec = lower(&graph, PartitionMode::None).unwrap().0;
        let expands = spec
            .fallback
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Expand))
            .count();
        // The Llama fixtures' grouped-query attention repeats K and V (Unsqueeze → Expand →
        // Reshape) in every layer: the fused step reads them unrepeated.
        let repeats = if name.starts_with("llama") { 2 * layers } else { 0 };
        let one = Program::new(spec.clone(), ProgramOptions { threads: 1 }).unwrap();
        let two = Program::new(spec, ProgramOptions { threads: 2 }).unwrap();
        for (batch, seq, pad) in [(1, 32, 0), (2, 17, 6), (3, 5, 2), (2, 64, 20)] {
            let inputs = tokens(batch, seq, pad);
            let what = format!("{name} b{batch} s{seq}");
            assert_eq!(
                fused_steps(&one, &inputs),
                (layers, 0),
                "{what}: fused / interpreted softmax"
            );
            let expand_steps = one
                .profile(&inputs)
                .unwrap()
                .iter()
                .filter(|(l, _)| l.ends_with("[interp Expand]"))
                .count();
            assert_eq!(
                expand_steps + repeats,
                expands,
                "{what}: repeated K / V still expanded"
            );
            let want = xq::interp::run_once(&graph, &inputs).unwrap();
            let got = one.execute(&inputs).unwrap();
            check_outputs_scaled(&format!("{what} (fused vs interpreter)"), &got, &want, 1e-5);
            let mut again = two.execute(&inputs).unwrap();
            assert_eq!(
                one.attention_fallbacks() + two.attention_fallbacks(),
                0,
                "{what}: kernel not used"
            );
            assert!(bits(&again) == bits(&got), "{what}: 2 threads differ from 1");
            two.execute_into(&inputs, &mut again).unwrap();
            assert!(bits(&again) == bits(&got), "{what}: a second run differs");
        }
    }
}

#[test]
fn fused_programs_match_onnx_runtime() {
    let Some(py) = python("fused_programs_match_onnx_runtime") else {
        return;
    };
    let reference = tempfile::tempdir().unwrap();
    let tokens = fixtures().join("tokens.npy");
    for name in MODELS {
        let out = reference.path().join(name);
        let model = fixtures().join(format!("{name}.onnx"));
        run_script(
            &py,
            "run_onnxruntime_tokens.py",
            &[
                model.to_str().unwrap(),
                tokens.to_str().unwrap(),
                out.to_str().unwrap(),
            ],
        );
        let graph = xq::onnx::load_file(&model).unwrap();
        let spec = lower(&graph, PartitionMode::None).unwrap().0;
        let p = Program::new(spec, ProgramOptions { threads: 2 }).unwrap();
        for case in ["b1_s32", "b2_s17", "b3_s5"] {
            let dir = out.join(case);
            let (inputs, want) = (read_set(&dir, "input"), read_set(&dir, "output"));
            assert_eq!(fused_steps(&p, &inputs).0, softmax_count(&graph), "{name}/{case}");
            let got = p.execute(&inputs).unwrap();
            check_outputs_scaled(
                &format!("{name}/{case} (fused vs ONNX Runtime)"),
                &got,
                &want,
                1e-4,
            );
        }
    }
}

#[test]
fn dynamic_int8_programs_fuse_every_attention() {
    for name in MODELS {
        let graph = xq::onnx::load_file(fixtures().join(format!("{name}.onnx"))).unwrap();
        let (batch, seq) = (2, 16);
        let mut fixed = graph.clone();
        fixed
            .fix_input_shapes(&[("input_ids", &[batch, seq]), ("attention_mask", &[batch, seq])])
            .unwrap();
        xq::interp::simplify(&mut fixed).unwrap();
        let config = QuantConfig {
            activations: ActivationMode::Dynamic,
            ..QuantConfig::default()
        };
        let mut q = Quantizer::new(Some(config)).unwrap();
        q.prepare(&fixed).unwrap();
        let qdq = q.convert().unwrap();
        let spec = lower(&qdq, PartitionMode::All).unwrap().0;
        let one = Program::new(spec.clone(), ProgramOptions { threads: 1 }).unwrap();
        let two = Program::new(spec, ProgramOptions { threads: 2 }).unwrap();
        let inputs = tokens(batch, seq, 5);
        assert_eq!(
            fused_steps(&one, &inputs),
            (softmax_count(&graph), 0),
            "{name} (int8)"
        );
        let got = one.execute(&inputs).unwrap();
        assert!(
            bits(&two.execute(&inputs).unwrap()) == bits(&got),
            "{name} (int8): 2 threads differ"
        );
        assert_eq!(
            one.attention_fallbacks() + two.attention_fallbacks(),
            0,
            "{name} (int8): kernel not used"
        );
        let float = xq::interp::run_once(&graph, &inputs).unwrap();
        let (g, f) = (got[0].as_f32().unwrap(), float[0].as_f32().unwrap());
        let dot: f64 = g.iter().zip(f).map(|(a, b)| *a as f64 * *b as f64).sum();
        let norm = |v: &[f32]| v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let cosine = dot / (norm(g) * norm(f));
        assert!(cosine > 0.99, "{name} (int8): cosine {cosine} against float");
    }
}

fn f32s(dims: &[usize], seed: u32) -> Tensor {
    let n: usize = dims.iter().product();
    let v = (0..n as u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 500.0 - 2.0)
        .collect();
    Tensor::from_f32(dims.to_vec(), v).unwrap()
}

fn node(name: &str, op: Op, inputs: &[&str], output: &str) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    }
}

/// Variations of the handmade attention graph.
#[derive(Clone, Copy, Default)]
struct Variant {
    nan_to_zero: bool,
    /// The scores are also a graph output.
    scores_out: bool,
    /// Softmax along axis 1 instead of the last.
    softmax_axis_1: bool,
    /// A mask `[2, 1, 4, 4]` that widens the scores' batch (the kernel does not apply).
    wide_mask: bool,
}

/// Q `[1, 2, 4, 8]`, K `[1, 2, 4, 8]` transposed to Kᵀ, scores · 0.35 + mask `[1, 1, 4, 4]`,
/// softmax, [IsNaN/Where], · V `[1, 2, 4, 8]`, output transposed to `[1, 4, 2, 8]`.
fn attention_graph(v: Variant) -> Graph {
    let (b, h, s, d) = (1, 2, 4, 8);
    let mb = if v.wide_mask { 2 } else { 1 };
    let mut g = Graph {
        name: "attention".into(),
        inputs: vec![
            TensorInfo::known("q", DType::F32, &[b, h, s, d]),
            TensorInfo::known("k", DType::F32, &[b, h, s, d]),
            TensorInfo::known("v", DType::F32, &[b, h, s, d]),
            TensorInfo::known("mask", DType::F32, &[mb, 1, s, s]),
        ],
        outputs: vec![TensorInfo::known("y", DType::F32, &[mb, s, h, d])],
        ..Graph::default()
    };
    if v.scores_out {
        g.outputs
            .push(TensorInfo::known("scores", DType::F32, &[b, h, s, s]));
    }
    g.initializers
        .insert("c".into(), Tensor::from_f32(vec![], vec![0.35]).unwrap());
    g.initializers
        .insert("zero".into(), Tensor::from_f32(vec![], vec![0.0]).unwrap());
    let axis = if v.softmax_axis_1 { 1 } else { -1 };
    g.nodes = vec![
        node(
            "kt",
            Op::Transpose {
                perm: Some(vec![0, 1, 3, 2]),
            },
            &["k"],
            "kt",
        ),
        node("qk", Op::MatMul, &["q", "kt"], "scores"),
        node("scale", Op::Binary(BinaryOp::Mul), &["scores", "c"], "scaled"),
        node("mask", Op::Binary(BinaryOp::Add), &["scaled", "mask"], "masked"),
        node(
            "softmax",
            Op::Softmax {
                axis,
                coerce_2d: false,
            },
            &["masked"],
            "p",
        ),
    ];
    let p = if v.nan_to_zero {
        g.nodes.push(node("isnan", Op::IsNaN, &["p"], "nan"));
        g.nodes
            .push(node("where", Op::Where, &["nan", "zero", "p"], "p0"));
        "p0"
    } else {
        "p"
    };
    g.nodes.push(node("pv", Op::MatMul, &[p, "v"], "pv"));
    g.nodes.push(node(
        "out",
        Op::Transpose {
            perm: Some(vec![0, 2, 1, 3]),
        },
        &["pv"],
        "y",
    ));
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

fn attention_inputs(mb: usize) -> Vec<Tensor> {
    let mut m = f32s(&[mb, 1, 4, 4], 4).as_f32().unwrap().to_vec();
    // Query row 2 sees no key at all.
    m[8..12].fill(f32::NEG_INFINITY);
    let mask = Tensor::from_f32(vec![mb, 1, 4, 4], m).unwrap();
    vec![
        f32s(&[1, 2, 4, 8], 1),
        f32s(&[1, 2, 4, 8], 2),
        f32s(&[1, 2, 4, 8], 3),
        mask,
    ]
}

/// Runs the graph of `v` as a program on 1 and 2 threads, checks both against the interpreter (NaNs in
/// the same places) and returns the number of fused steps, of calls that fell back to the
/// unfused nodes, and the output.
fn run_handmade(v: Variant) -> (usize, usize, Vec<Tensor>) {
    let g = &attention_graph(v);
    let inputs = attention_inputs(if v.wide_mask { 2 } else { 1 });
    let want = xq::interp::run_once(g, &inputs).unwrap();
    let spec = lower(g, PartitionMode::None).unwrap().0;
    let (mut fused, mut fallbacks) = (None, 0);
    let mut outs = Vec::new();
    for threads in [1, 2] {
        let p = Program::new(spec.clone(), ProgramOptions { threads }).unwrap();
        let got = p.execute(&inputs).unwrap();
        for (o, (a, w)) in got.iter().zip(&want).enumerate() {
            let (a, w) = (a.as_f32().unwrap(), w.as_f32().unwrap());
            assert_eq!(a.len(), w.len());
            for (i, (x, y)) in a.iter().zip(w).enumerate() {
                assert!(
                    (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                    "output {o} element {i}: {x} vs interpreter {y}"
                );
            }
        }
        fused = Some(fused_steps(&p, &inputs).0);
        fallbacks += p.attention_fallbacks();
        outs = got;
    }
    (fused.unwrap(), fallbacks, outs)
}

#[test]
fn a_dead_mask_row_gives_what_the_graph_gives() {
    // y is [1, 4, 2, 8]: query row 2 of both heads is y[0, 2, :, :], elements 32..48.
    let (fused, fallbacks, y) = run_handmade(Variant::default());
    assert_eq!((fused, fallbacks), (1, 0));
    let y = y[0].as_f32().unwrap();
    assert!(
        y[32..48].iter().all(|v| v.is_nan()),
        "no NaN→0: the dead row is NaN"
    );
    assert!(y[..32].iter().chain(&y[48..]).all(|v| v.is_finite()));
    let (fused, fallbacks, y) = run_handmade(Variant {
        nan_to_zero: true,
        ..Variant::default()
    });
    assert_eq!((fused, fallbacks), (1, 0));
    let y = y[0].as_f32().unwrap();
    assert!(
        y[32..48].iter().all(|&v| v == 0.0),
        "IsNaN/Where: the dead row is 0"
    );
}

#[test]
fn near_misses_are_not_fused_and_still_correct() {
    let (fused, _, _) = run_handmade(Variant {
        scores_out: true,
        ..Variant::default()
    });
    assert_eq!(fused, 0, "scores read as a graph output");
    let (fused, _, _) = run_handmade(Variant {
        softmax_axis_1: true,
        ..Variant::default()
    });
    assert_eq!(fused, 0, "softmax on axis 1");
}

#[test]
fn a_scale_that_a_program_input_replaces_is_not_folded() {
    // `c` is an initializer and a graph input (its default): the caller's value wins.
    let mut g = attention_graph(Variant::default());
    g.inputs.push(TensorInfo::known("c", DType::F32, &[]));
    let mut inputs = attention_inputs(1);
    inputs.push(Tensor::from_f32(vec![], vec![-1.5]).unwrap());
    let want = xq::interp::run_once(&g, &inputs).unwrap();
    let p = Program::new(
        lower(&g, PartitionMode::None).unwrap().0,
        ProgramOptions { threads: 1 },
    )
    .unwrap();
    let got = p.execute(&inputs).unwrap();
    assert_eq!(fused_steps(&p, &inputs).0, 0);
    check_outputs_scaled("scale from an input", &got, &want, 1e-5);
}

#[test]
fn tensors_the_kernel_cannot_take_run_the_replaced_nodes() {
    // Fused at build time, but the mask widens the scores' batch: each call (4 = 2 programs
    // × (1 run + 1 profile)) runs the graph's own nodes and gives the interpreter's output.
    let (fused, fallbacks, y) = run_handmade(Variant {
        wide_mask: true,
        ..Variant::default()
    });
    assert_eq!((fused, fallbacks), (1, 4));
    assert_eq!(y[0].dims(), [2, 4, 2, 8]);
}

/// Grouped-query attention as the exporters write it: 4 query heads, 2 key / value heads
/// repeated by Unsqueeze → Expand → Reshape ("repeat_kv"; `tile` repeats the whole head
/// block instead, which the kernel does not read), the sequence symbolic, and a Shape node
/// reading the repeated keys (a graph output here; exporters feed it to the Reshapes of Kᵀ).
fn grouped_query_graph(tile: bool) -> Graph {
    use xq::ir::Dim;
    let info = |name: &str, heads: usize| TensorInfo {
        name: name.into(),
        dtype: DType::F32,
        shape: Some(vec![
            Dim::Known(1),
            Dim::Known(heads),
            Dim::Symbolic("s".into()),
            Dim::Known(8),
        ]),
    };
    let mut g = Graph {
        name: "gqa".into(),
        inputs: vec![info("q", 4), info("k", 2), info("v", 2)],
        outputs: vec![
            TensorInfo {
                name: "y".into(),
                dtype: DType::F32,
                shape: None,
            },
            TensorInfo {
                name: "kshape".into(),
                dtype: DType::I64,
                shape: None,
            },
        ],
        ..Graph::default()
    };
    let i64s = |v: &[i64]| Tensor::vec_i64(v.to_vec());
    let (axis, grow) = if tile {
        (1, [1, 2, 1, 1, 1])
    } else {
        (2, [1, 1, 2, 1, 1])
    };
    g.initializers.insert("axes".into(), i64s(&[axis]));
    g.initializers.insert("grow".into(), i64s(&grow));
    g.initializers.insert("heads".into(), i64s(&[1, 4, -1, 8]));
    g.initializers
        .insert("c".into(), Tensor::from_f32(vec![], vec![0.35]).unwrap());
    for x in ["k", "v"] {
        g.nodes.push(node(
            &format!("{x}_unsqueeze"),
            Op::Unsqueeze,
            &[x, "axes"],
            &format!("{x}1"),
        ));
        g.nodes.push(node(
            &format!("{x}_expand"),
            Op::Expand,
            &[&format!("{x}1"), "grow"],
            &format!("{x}2"),
        ));
        g.nodes.push(node(
            &format!("{x}_repeat"),
            Op::Reshape { allowzero: false },
            &[&format!("{x}2"), "heads"],
            &format!("{x}r"),
        ));
    }
    g.nodes.extend([
        node("kshape", Op::Shape { start: 0, end: None }, &["kr"], "kshape"),
        node(
            "kt",
            Op::Transpose {
                perm: Some(vec![0, 1, 3, 2]),
            },
            &["kr"],
            "kt",
        ),
        node("qk", Op::MatMul, &["q", "kt"], "scores"),
        node("scale", Op::Binary(BinaryOp::Mul), &["scores", "c"], "scaled"),
        node(
            "softmax",
            Op::Softmax {
                axis: -1,
                coerce_2d: false,
            },
            &["scaled"],
            "p",
        ),
        node("pv", Op::MatMul, &["p", "vr"], "y"),
    ]);
    g.validate().unwrap();
    g
}

#[test]
fn grouped_query_keys_and_values_are_read_unrepeated() {
    for tile in [false, true] {
        let g = grouped_query_graph(tile);
        let spec = lower(&g, PartitionMode::None).unwrap().0;
        for threads in [1, 2] {
            let p = Program::new(spec.clone(), ProgramOptions { threads }).unwrap();
            for s in [1, 5, 33] {
                let what = format!("tile {tile}, {threads} threads, s {s}");
                let inputs = vec![
                    f32s(&[1, 4, s, 8], 1),
                    f32s(&[1, 2, s, 8], 2),
                    f32s(&[1, 2, s, 8], 3),
                ];
                let want = xq::interp::run_once(&g, &inputs).unwrap();
                let got = p.execute(&inputs).unwrap();
                check_outputs_scaled(&format!("{what}: y"), &got[..1], &want[..1], 1e-5);
                assert_eq!(got[1].to_i64_vec().unwrap(), [1, 4, s as i64, 8], "{what}: Shape");
                let labels: Vec<String> = p.profile(&inputs).unwrap().into_iter().map(|(l, _)| l).collect();
                assert_eq!(fused_steps(&p, &inputs).0, 1, "{what}");
                assert!(
                    labels.iter().any(|l| l.ends_with("[shape of a fused view]")),
                    "{what}: {labels:?}"
                );
                assert!(
                    !labels.iter().any(|l| l.ends_with("[interp Expand]")),
                    "{what}: {labels:?}"
                );
            }
            // Repeating heads in a row is read from the source; tiling them runs the
            // replaced nodes (3 sizes × (1 run + 2 profiles)).
            let fallbacks = if tile { 9 } else { 0 };
            assert_eq!(
                p.attention_fallbacks(),
                fallbacks,
                "tile {tile}, {threads} threads"
            );
        }
    }
}
