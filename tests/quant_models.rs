//! Every recipe on the repository's other test models (a pattern zoo CNN with ops the
//! quantizer leaves float, a small transformer with int64 tokens, a tiny CNN): prepare,
//! calibrate, convert must succeed, the QDQ graph must validate and stay close to float,
//! and (with `XQ_PYTHON`) run in onnxruntime with about the same output.

mod common;
mod quant_common;

use quant_common::*;
use xq::ir::{DType, Dim, Graph, Tensor};
use xq::quant::{ActivationMode, QuantConfig, Quantizer, WeightGranularity};

/// Deterministic pseudo-random f32 values in [-2, 2).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 22) as f32 - 2.0
        })
        .collect()
}

/// One input set for `graph`, symbolic dims set to 2 (batch) and 5 (others); int64 inputs
/// are token ids below the vocabulary size `vocab`.
fn inputs_for(graph: &Graph, seed: u64, vocab: i64) -> Vec<Tensor> {
    graph
        .inputs
        .iter()
        .map(|info| {
            let dims: Vec<usize> = info
                .shape
                .as_ref()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Dim::Known(n) => *n,
                    Dim::Symbolic(_) => {
                        if i == 0 {
                            2
                        } else {
                            5
                        }
                    }
                })
                .collect();
            let n = dims.iter().product();
            match info.dtype {
                DType::F32 => Tensor::from_f32(dims, noise(n, seed)).unwrap(),
                DType::I64 => {
                    let ids = noise(n, seed)
                        .iter()
                        .map(|v| ((v + 2.0) * 1000.0) as i64 % vocab)
                        .collect();
                    Tensor::from_i64(dims, ids).unwrap()
                }
                other => panic!("no generator for {other}"),
            }
        })
        .collect()
}

fn recipes() -> Vec<(&'static str, QuantConfig)> {
    vec![
        ("static_per_channel", QuantConfig::default()),
        (
            "static_per_tensor",
            QuantConfig {
                weights: WeightGranularity::PerTensor,
                ..QuantConfig::default()
            },
        ),
        (
            "dynamic",
            QuantConfig {
                activations: ActivationMode::Dynamic,
                ..QuantConfig::default()
            },
        ),
    ]
}

fn check_model(file: &str, min_sqnr: f64) {
    let graph = xq::onnx::load_file(fixtures().join("models").join(file)).unwrap();
    // The transformer's embedding table bounds its token ids.
    let vocab = graph
        .nodes
        .iter()
        .filter(|n| n.op.onnx_name() == "Gather")
        .filter_map(|n| graph.initializers.get(&n.inputs[0]))
        .map(|t| t.dims()[0] as i64)
        .min()
        .unwrap_or(1);
    let eval = inputs_for(&graph, 99, vocab);
    let reference = xq::interp::run_once(&graph, &eval).unwrap();
    for (recipe, config) in recipes() {
        let mut q = Quantizer::new(Some(config)).unwrap();
        q.prepare(&graph).unwrap();
        for seed in 0..4 {
            q.calibrate(&inputs_for(&graph, seed, vocab)).unwrap();
        }
        let mut qdq = q.convert().unwrap();
        qdq.validate().unwrap();
        let ours = xq::interp::run_once(&qdq, &eval).unwrap();
        let name = format!("{file} {recipe}");
        for (r, o) in reference.iter().zip(&ours) {
            let sqnr = sqnr_db(r.as_f32().unwrap(), o.as_f32().unwrap());
            println!("{name}: SQNR vs float {sqnr:.1} dB");
            assert!(sqnr >= min_sqnr, "{name}: SQNR {sqnr:.1} dB\n{}", q.report());
        }
        let Some(python) = python_or_skip(&name) else {
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("qdq.onnx");
        xq::onnx::save_file(&qdq, &model).unwrap();
        let paths: Vec<_> = eval
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let p = dir.path().join(format!("in{i}.npy"));
                write_npy(&p, t);
                p
            })
            .collect();
        let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
        let ort = run_onnxruntime(&python, &model, &refs, dir.path());
        let agreement = sqnr_db(ours[0].as_f32().unwrap(), ort.as_f32().unwrap());
        println!("{name}: onnxruntime vs xq interpreter {agreement:.1} dB");
        assert!(
            agreement >= min_sqnr,
            "{name}: onnxruntime disagrees ({agreement:.1} dB)"
        );
    }
}

#[test]
fn pattern_zoo_cnn() {
    check_model("patterns.onnx", 15.0);
}

#[test]
fn small_transformer() {
    check_model("transformer.onnx", 15.0);
}

#[test]
fn tiny_cnn() {
    check_model("tiny_cnn.onnx", 20.0);
}
