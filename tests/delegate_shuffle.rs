//! The channel shuffle of ShuffleNet (`Reshape → Transpose → Reshape`, then a Split into the
//! next block's halves) in QDQ graphs built here: libxq's form (every operator between its
//! own Q and DQ) and PyTorch's export (float views between a DQ and the Transpose or Split).
//! The whole chain is delegated and collapses into one block copy per output (requantizing
//! by a table where a Split output has its own qparams); every output
//! equals the interpreter's run of the QDQ graph (its float reference) bit for bit, and so do
//! the uncollapsed per-operator program, two threads and a saved and loaded program. A copy
//! block reading outside its input is refused at load, and a program written with the older
//! per-element gather map still loads and runs the same.

mod common;
mod delegate_common;

use delegate_common::delegated_and_interpreted;
use xq::delegate::{lower, PartitionMode};
use xq::ir::op::{PoolAttrs, QuantAttrs};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorInfo};
use xq::program::{GatherSpec, KernelSpec, ProgramSpec, StepSpec};
use xq::runtime::{Program, ProgramOptions};

/// Channels per group (two groups), height, width.
const C: usize = 40;
const H: usize = 3;
const W: usize = 5;

fn node(name: &str, op: Op, inputs: &[&str], outputs: &[&str]) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
    }
}

/// `t → Q → DQ` as `t_dq`, with scale `s` and zero point `z`.
fn qdq_with(g: &mut Graph, t: &str, s: &str, z: &str) -> String {
    let (q, dq) = (format!("{t}_q"), format!("{t}_dq"));
    let quant = Op::QuantizeLinear(QuantAttrs::default());
    let dequant = Op::DequantizeLinear(QuantAttrs::default());
    g.nodes.push(node(&format!("q_{t}"), quant, &[t, s, z], &[&q]));
    g.nodes
        .push(node(&format!("dq_{t}"), dequant, &[&q, s, z], &[&dq]));
    dq
}

/// `t → Q → DQ` with the graph's shared qparams.
fn qdq(g: &mut Graph, t: &str) -> String {
    qdq_with(g, t, "s", "z")
}

/// How the graph is quantized around the data movement.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    /// Every operator between its own Q and DQ (libxq's quantizer, ORT).
    Qdq,
    /// Views left in float: `DQ → Reshape → Transpose → Reshape → Q` and
    /// `DQ → Reshape → Split → Q`, the Split's outputs quantized with their readers' own
    /// qparams (PyTorch's export), so the copies requantize.
    FloatViews,
}

/// `Q → DQ → MaxPool(1×1) → Q → DQ → shuffle(2 groups) [→ Split(2)]`, each output quantized.
fn shuffle_graph(form: Form, split: bool) -> Graph {
    let mut g = Graph {
        name: "shuffle".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &[1, 2 * C, H, W])],
        ..Graph::default()
    };
    g.initializers.insert("s".into(), Tensor::scalar_f32(0.05));
    g.initializers
        .insert("z".into(), delegate_common::zero_point(-3, false));
    g.initializers.insert("s2".into(), Tensor::scalar_f32(0.07));
    g.initializers
        .insert("z2".into(), delegate_common::zero_point(9, false));
    g.initializers.insert(
        "grouped".into(),
        Tensor::vec_i64(vec![1, 2, C as i64, H as i64, W as i64]),
    );
    g.initializers.insert(
        "flat".into(),
        Tensor::vec_i64(vec![1, 2 * C as i64, H as i64, W as i64]),
    );
    g.initializers.insert(
        "rows".into(),
        Tensor::vec_i64(vec![1, 2 * C as i64, (H * W) as i64]),
    );
    let x = qdq(&mut g, "x");
    let pool = PoolAttrs {
        kernel_shape: vec![1, 1],
        ..PoolAttrs::default()
    };
    g.nodes.push(node("pool", Op::MaxPool(pool), &[&x], &["p"]));
    let p = qdq(&mut g, "p");
    let reshape = Op::Reshape { allowzero: false };
    let transpose = Op::Transpose {
        perm: Some(vec![0, 2, 1, 3, 4]),
    };
    g.nodes
        .push(node("group", reshape.clone(), &[&p, "grouped"], &["r"]));
    let r = if form == Form::Qdq {
        qdq(&mut g, "r")
    } else {
        "r".into()
    };
    g.nodes.push(node("swap", transpose, &[&r], &["t"]));
    let t = if form == Form::Qdq {
        qdq(&mut g, "t")
    } else {
        "t".into()
    };
    g.nodes
        .push(node("ungroup", reshape.clone(), &[&t, "flat"], &["u"]));
    let u = qdq(&mut g, "u");
    let outs: Vec<String> = if split {
        let input = if form == Form::FloatViews {
            g.nodes.push(node("view", reshape, &[&u, "rows"], &["v"]));
            "v".to_string()
        } else {
            u
        };
        let axis = 1;
        g.nodes.push(node(
            "split",
            Op::Split { axis, num_outputs: 2 },
            &[&input],
            &["o0", "o1"],
        ));
        if form == Form::FloatViews {
            vec![qdq_with(&mut g, "o0", "s2", "z2"), qdq(&mut g, "o1")]
        } else {
            vec![qdq(&mut g, "o0"), qdq(&mut g, "o1")]
        }
    } else {
        vec![u]
    };
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g.outputs = outs
        .iter()
        .map(|o| {
            let dims = g.tensor_info(o).and_then(|i| i.concrete_shape()).unwrap();
            TensorInfo::known(o, DType::F32, &dims)
        })
        .collect();
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    g
}

fn input() -> Tensor {
    let n = 2 * C * H * W;
    let v = (0..n)
        .map(|i| ((i * 53 % 257) as f32 - 128.0) * 0.05 + 0.02)
        .collect();
    Tensor::from_f32(vec![1, 2 * C, H, W], v).unwrap()
}

fn run(program: &Program, x: &Tensor) -> Vec<Vec<u32>> {
    let y = program.execute(std::slice::from_ref(x)).unwrap();
    y.iter()
        .map(|t| t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// The kernel steps of `spec` by kind name.
fn kernel_kinds(spec: &ProgramSpec) -> Vec<&'static str> {
    spec.steps
        .iter()
        .filter_map(|s| match s {
            StepSpec::Kernel { kernel, .. } => Some(kernel.kind_name()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_channel_shuffle_collapses_into_one_copy_per_output_and_equals_the_interpreter() {
    for form in [Form::Qdq, Form::FloatViews] {
        for split in [false, true] {
            let what = format!("{form:?} split {split}");
            let g = shuffle_graph(form, split);
            let (spec, report) = lower(&g, PartitionMode::All).unwrap();
            assert!(report.refused.is_empty(), "{what}: {}", report.text());
            assert_eq!(report.interpreted_nodes, 0, "{what}: {}", report.text());
            assert_eq!(report.partitions.len(), 1, "{what}: {}", report.text());
            let copies = if split { 2 } else { 1 };
            let mut want_kinds = vec!["max_pool"];
            want_kinds.extend(std::iter::repeat_n("copy", copies));
            let kinds = kernel_kinds(&spec);
            assert_eq!(kinds, want_kinds, "{what}");
            // Each copy is a handful of blocks, not a byte map.
            let mut requantized = 0;
            for s in &spec.steps {
                if let StepSpec::Kernel {
                    kernel: KernelSpec::Copy(c),
                    ..
                } = s
                {
                    assert_eq!(c.blocks.len(), 1, "{what}: {:?}", c.blocks);
                    assert!(c.fill.is_none());
                    requantized += c.table.is_some() as usize;
                }
            }
            let want_requantized = (form == Form::FloatViews && split) as usize;
            assert_eq!(requantized, want_requantized, "{what}");
            // The uncollapsed per-operator program moves the same bytes in more steps (one
            // per quantized operator).
            let (per_op, _) = lower(&g, PartitionMode::PerOp).unwrap();
            if form == Form::Qdq {
                assert_eq!(kernel_kinds(&per_op).len(), 4 + 2 * split as usize, "{what}");
            }
            let (programs, interpreter) = delegated_and_interpreted(&g, spec);
            let x = input();
            let want = run(&interpreter, &x);
            for (p, program) in programs.iter().enumerate() {
                assert_eq!(run(program, &x), want, "{what} program {p}");
            }
        }
    }
}

#[test]
fn a_copy_block_reading_outside_its_input_is_refused_at_load() {
    let g = shuffle_graph(Form::Qdq, true);
    let (spec, _) = lower(&g, PartitionMode::All).unwrap();
    let mut bad = spec.clone();
    let (numel, block) = bad
        .steps
        .iter_mut()
        .find_map(|s| match s {
            StepSpec::Kernel {
                kernel: KernelSpec::Copy(c),
                ..
            } => Some((spec.values[c.input].numel(), &mut c.blocks[0])),
            _ => None,
        })
        .unwrap();
    block.src = numel;
    let err = Program::new(bad.clone(), ProgramOptions { threads: 1 })
        .err()
        .expect("a copy past its input is refused");
    assert!(err.to_string().contains("reads outside the input"), "{err}");
    let bytes = xq::format::program_file::to_bytes(&bad).unwrap();
    let loaded = Program::load_bytes(
        xq::format::ProgramBytes::copy_from(&bytes).unwrap(),
        ProgramOptions { threads: 1 },
    );
    assert!(loaded.is_err());
}

#[test]
fn a_program_with_the_older_gather_map_loads_and_runs_the_same() {
    let g = shuffle_graph(Form::Qdq, false);
    let (spec, _) = lower(&g, PartitionMode::All).unwrap();
    // The same move as one per-element map of logical indices (the older step kind).
    let (_, map) = xq::delegate::gather_map::transpose(&[1, 2, C, H * W], Some(&[0, 2, 1, 3])).unwrap();
    let mut legacy = spec.clone();
    for s in legacy.steps.iter_mut() {
        if let StepSpec::Kernel { kernel, .. } = s {
            if let KernelSpec::Copy(c) = kernel {
                *kernel = KernelSpec::Gather(GatherSpec {
                    input: c.input,
                    output: c.output,
                    map: map.clone(),
                    fill: 0,
                });
            }
        }
    }
    let bytes = xq::format::program_file::to_bytes(&legacy).unwrap();
    let loaded = Program::load_bytes(
        xq::format::ProgramBytes::copy_from(&bytes).unwrap(),
        ProgramOptions { threads: 1 },
    )
    .unwrap();
    let current = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
    assert_eq!(run(&loaded, &input()), run(&current, &input()));
}
