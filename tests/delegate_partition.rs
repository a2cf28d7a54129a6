//! Partitioning on the committed QDQ digits CNN (no Python needed): the three partition
//! modes, and refusals with their reasons when a pattern is broken on purpose.

use xq::delegate::{lower, PartitionMode, Reason};
use xq::ir::{Graph, Op, Tensor};
use xq::npy;
use xq::runtime::{Program, ProgramOptions};

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn graph() -> Graph {
    xq::interp::simplify_with_shapes(
        xq::onnx::load_file(root().join("tests/fixtures/delegate/digits_cnn_qdq.onnx")).unwrap(),
        &[("input", &[1, 1, 8, 8])],
    )
    .unwrap()
}

fn samples(n: usize) -> Vec<Tensor> {
    let x = npy::read(root().join("tests/fixtures/digits/digits_test_x.npy")).unwrap();
    x.as_f32()
        .unwrap()
        .chunks(64)
        .take(n)
        .map(|c| Tensor::from_f32(vec![1, 1, 8, 8], c.to_vec()).unwrap())
        .collect()
}

fn outputs(g: &Graph, mode: PartitionMode) -> (Vec<f32>, xq::delegate::Report) {
    let (spec, report) = lower(g, mode).unwrap();
    let p = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
    let mut out = Vec::new();
    for x in samples(40) {
        out.extend_from_slice(p.execute(&[x]).unwrap()[0].as_f32().unwrap());
    }
    (out, report)
}

fn logits_scale(g: &Graph) -> f32 {
    g.initializers["logits_scale"].as_f32().unwrap()[0]
}

#[test]
fn partition_modes_agree() {
    let g = graph();
    let (all, r_all) = outputs(&g, PartitionMode::All);
    assert_eq!(r_all.partitions.len(), 1);
    assert_eq!(r_all.delegated_nodes(), 7);

    let (per_op, r_per_op) = outputs(&g, PartitionMode::PerOp);
    assert_eq!(r_per_op.partitions.len(), 7, "{}", r_per_op.text());
    assert_eq!(
        per_op, all,
        "f32 boundaries between operators must not change int8 results"
    );

    let (none, r_none) = outputs(&g, PartitionMode::None);
    assert_eq!(r_none.partitions.len(), 0);
    assert_eq!(r_none.refused.len(), 7);
    let scale = logits_scale(&g);
    let worst = none
        .iter()
        .zip(&all)
        .map(|(a, b)| ((a - b) / scale).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1.01, "interpreter and kernels differ by {worst} steps");
}

#[test]
fn mismatched_maxpool_qparams_are_refused_and_run_in_the_interpreter() {
    let mut g = graph();
    let pool = g
        .nodes
        .iter()
        .position(|n| matches!(n.op, Op::MaxPool(_)))
        .unwrap();
    let pool_out = g.nodes[pool].outputs[0].clone();
    let q = g.consumers(&pool_out)[0];
    let old_scale = g.nodes[q].inputs[1].clone();
    let s = g.initializers[&old_scale].as_f32().unwrap()[0];
    g.initializers
        .insert("other_scale".into(), Tensor::scalar_f32(s * 1.5));
    g.nodes[q].inputs[1] = "other_scale".into();
    let dq = g.consumers(&g.nodes[q].outputs[0].clone())[0];
    g.nodes[dq].inputs[1] = "other_scale".into();

    let (out, report) = outputs(&g, PartitionMode::All);
    println!("{}", report.text());
    let refused: Vec<_> = report.refused.iter().map(|r| (r.op, r.reason)).collect();
    assert_eq!(refused, vec![("MaxPool", Reason::QParams)]);
    assert_eq!(
        report.partitions.len(),
        2,
        "the pool splits the graph in two partitions"
    );
    assert!(report.text().contains("qparams"));
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn float_weights_are_refused_as_not_quantized() {
    let mut g = graph();
    let gemm = g.nodes.iter().position(|n| matches!(n.op, Op::Gemm(_))).unwrap();
    let w_dq = g.producer(&g.nodes[gemm].inputs[1].clone()).unwrap();
    let w = xq::interp::kernels::eval(
        &g.nodes[w_dq].op,
        &g.nodes[w_dq]
            .inputs
            .iter()
            .map(|i| g.initializers.get(i))
            .collect::<Vec<_>>(),
    )
    .unwrap()
    .remove(0);
    g.initializers.insert("float_w".into(), w);
    g.nodes[gemm].inputs[1] = "float_w".into();
    g.remove_dead();
    let (out, report) = outputs(&g, PartitionMode::All);
    let refused: Vec<_> = report.refused.iter().map(|r| (r.op, r.reason)).collect();
    assert_eq!(refused, vec![("Gemm", Reason::NotQuantized)]);
    assert_eq!(out.len(), 400);
}
