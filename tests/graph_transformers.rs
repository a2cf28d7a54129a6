//! Transformer exports as PyTorch users write them (`scripts/fixtures/transformers_export.py`: a
//! BERT-style encoder and a Llama-style decoder with seeded random weights, SDPA attention through
//! the dynamo exporter and eager attention through the TorchScript one) import, and the float
//! interpreter gives ONNX Runtime's outputs on token ids of English text — with symbolic batch and
//! sequence, with shapes fixed and folded, and after an export → import round trip.

mod graph_common;

use graph_common::{check_outputs_scaled, python, read_set, run_script};
use std::path::{Path, PathBuf};
use xq::ir::{Dim, Tensor};

/// Relative tolerance against ONNX Runtime; the absolute floor is the same fraction of the
/// output's largest magnitude.
const RTOL: f64 = 1e-4;

const MODELS: &[&str] = &[
    "bert_tiny_sdpa_dynamo",
    "bert_tiny_eager_script",
    "llama_tiny_sdpa_dynamo",
    "llama_tiny_eager_script",
];

/// The token-id cases `run_onnxruntime_tokens.py` writes.
const CASES: &[&str] = &["b1_s32", "b2_s17", "b3_s5"];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transformers")
}

fn check_outputs(what: &str, got: &[Tensor], want: &[Tensor]) {
    check_outputs_scaled(what, got, want, RTOL);
}

fn check_model(name: &str, reference: &Path) {
    let model = xq::onnx::load_file(fixtures().join(format!("{name}.onnx")))
        .unwrap_or_else(|e| panic!("{name}: import: {e}"));
    for input in &model.inputs {
        let shape = input.shape.as_ref().unwrap();
        assert!(
            shape.iter().all(|d| matches!(d, Dim::Symbolic(_))),
            "{name}: input {} should have a symbolic batch and sequence, has {shape:?}",
            input.name
        );
    }
    for case in CASES {
        let dir = reference.join(name).join(case);
        let (inputs, expected) = (read_set(&dir, "input"), read_set(&dir, "output"));
        let what = format!("{name}/{case}");
        let got = xq::interp::run_once(&model, &inputs).unwrap_or_else(|e| panic!("{what} (symbolic): {e}"));
        check_outputs(&format!("{what} (symbolic)"), &got, &expected);

        let mut fixed = model.clone();
        let shapes: Vec<(String, Vec<usize>)> = fixed
            .inputs
            .iter()
            .zip(&inputs)
            .map(|(i, t)| (i.name.clone(), t.dims().to_vec()))
            .collect();
        let refs: Vec<(&str, &[usize])> = shapes.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        fixed.fix_input_shapes(&refs).unwrap();
        xq::interp::simplify(&mut fixed).unwrap_or_else(|e| panic!("{what}: simplify: {e}"));
        let got = xq::interp::run_once(&fixed, &inputs).unwrap_or_else(|e| panic!("{what} (folded): {e}"));
        check_outputs(&format!("{what} (folded)"), &got, &expected);

        let reloaded = xq::onnx::load_bytes(&xq::onnx::to_bytes(&fixed).unwrap(), None)
            .unwrap_or_else(|e| panic!("{what}: re-import of the export: {e}"));
        let got = xq::interp::run_once(&reloaded, &inputs).unwrap();
        check_outputs(&format!("{what} (exported)"), &got, &expected);
    }
}

#[test]
fn transformer_exports_match_onnx_runtime() {
    let Some(py) = python("transformer_exports_match_onnx_runtime") else {
        return;
    };
    let reference = tempfile::tempdir().unwrap();
    let tokens = fixtures().join("tokens.npy");
    for name in MODELS {
        let out = reference.path().join(name);
        run_script(
            &py,
            "run_onnxruntime_tokens.py",
            &[
                fixtures().join(format!("{name}.onnx")).to_str().unwrap(),
                tokens.to_str().unwrap(),
                out.to_str().unwrap(),
            ],
        );
        check_model(name, reference.path());
        println!("{name}: matches ONNX Runtime (rtol {RTOL}) on {CASES:?}");
    }
}
