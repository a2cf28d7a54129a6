//! The fused transformer operators (ONNX opset 23's RMSNormalization, RotaryEmbedding and
//! Attention; ONNX Runtime's SimplifiedLayerNormalization and its `com.microsoft`
//! SkipLayerNormalization, SkipSimplifiedLayerNormalization, Gelu, FastGelu, BiasGelu,
//! MultiHeadAttention, RotaryEmbedding, Attention and EmbedLayerNormalization), one node per
//! graph: libxq's float interpreter against ONNX Runtime (graph optimizations off) within 1e-5
//! relative; the exported model computes the same in libxq and in ONNX Runtime; bad attributes
//! and shapes are errors, never panics.

mod graph_common;

use graph_common::{compare, python, read_tensor, run_script};
use std::path::Path;
use xq::ir::Tensor;

const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-6;

/// Tensors `prefix_0.pb`, `prefix_1.pb`, ... of a case's data set.
fn read_all(ds: &Path, prefix: &str) -> Vec<Tensor> {
    (0..)
        .map(|i| ds.join(format!("{prefix}_{i}.pb")))
        .take_while(|p| p.exists())
        .map(|p| read_tensor(&p).unwrap())
        .collect()
}

/// Loads and runs a case's model on its inputs.
fn run(dir: &Path) -> xq::Result<Vec<Tensor>> {
    let graph = xq::onnx::load_file(dir.join("model.onnx"))?;
    xq::interp::run_once(&graph, &read_all(&dir.join("test_data_set_0"), "input"))
}

fn check_case(dir: &Path) -> Result<(), String> {
    let ds = dir.join("test_data_set_0");
    let (inputs, want) = (read_all(&ds, "input"), read_all(&ds, "output"));
    let graph = xq::onnx::load_file(dir.join("model.onnx")).map_err(|e| format!("load: {e}"))?;
    let got = xq::interp::run_once(&graph, &inputs).map_err(|e| format!("run: {e}"))?;
    if got.len() != want.len() {
        return Err(format!(
            "{} outputs, ONNX Runtime gives {}",
            got.len(),
            want.len()
        ));
    }
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        compare(g, w, RTOL, ATOL).map_err(|m| format!("output {k}: {m}"))?;
    }
    let bytes = xq::onnx::to_bytes(&graph).map_err(|e| format!("export: {e}"))?;
    std::fs::write(dir.join("exported.onnx"), &bytes).unwrap();
    let again = xq::onnx::load_bytes(&bytes, None)
        .and_then(|g| xq::interp::run_once(&g, &inputs))
        .map_err(|e| format!("re-import: {e}"))?;
    for (k, (a, b)) in again.iter().zip(&got).enumerate() {
        compare(a, b, 0.0, 0.0).map_err(|m| format!("re-imported output {k}: {m}"))?;
    }
    Ok(())
}

#[test]
fn fused_ops_match_onnxruntime() {
    let Some(py) = python("fused_ops_match_onnxruntime") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    run_script(&py, "transformer_fused_cases.py", &[out]);
    let list = std::fs::read_to_string(dir.path().join("cases.tsv")).unwrap();
    let mut failures = Vec::new();
    let mut ops = std::collections::BTreeSet::new();
    for line in list.lines().filter(|l| !l.is_empty()) {
        let (name, op) = line.split_once('\t').unwrap();
        ops.insert(op);
        match check_case(&dir.path().join(name)) {
            Ok(()) => println!("PASS {name} [{op}]"),
            Err(m) => failures.push(format!("{name} [{op}]: {m}")),
        }
    }
    // The exported models, run by ONNX Runtime, give ONNX Runtime's outputs.
    run_script(&py, "run_onnxruntime_cases.py", &[out]);
    for line in list.lines().filter(|l| !l.is_empty()) {
        let name = line.split('\t').next().unwrap();
        let case = dir.path().join(name);
        if !case.join("exported.onnx").exists() {
            continue;
        }
        if let Ok(msg) = std::fs::read_to_string(case.join("ort_error.txt")) {
            failures.push(format!(
                "{name}: ONNX Runtime rejects the exported model: {}",
                msg.trim()
            ));
            continue;
        }
        let ds = case.join("test_data_set_0");
        for (k, (g, w)) in read_all(&ds, "ort_output")
            .iter()
            .zip(read_all(&ds, "output"))
            .enumerate()
        {
            if let Err(m) = compare(g, &w, RTOL, ATOL) {
                failures.push(format!("{name}: exported model in ONNX Runtime, output {k}: {m}"));
            }
        }
    }
    for op in [
        "RMSNormalization",
        "SimplifiedLayerNormalization",
        "RotaryEmbedding",
        "Attention",
        "SkipLayerNormalization",
        "SkipSimplifiedLayerNormalization",
        "Gelu",
        "FastGelu",
        "BiasGelu",
        "MultiHeadAttention",
        "Attention (com.microsoft)",
        "EmbedLayerNormalization",
    ] {
        assert!(ops.contains(op), "no case of {op}");
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(
        failures.is_empty(),
        "{} cases failed (see FAIL lines)",
        failures.len()
    );
}

#[test]
fn bad_attributes_and_shapes_are_errors() {
    let Some(py) = python("bad_attributes_and_shapes_are_errors") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    run_script(&py, "transformer_fused_cases.py", &[dir.path().to_str().unwrap()]);
    let list = std::fs::read_to_string(dir.path().join("bad.tsv")).unwrap();
    let mut accepted = Vec::new();
    for line in list.lines().filter(|l| !l.is_empty()) {
        let (name, why) = line.split_once('\t').unwrap();
        let result = std::panic::catch_unwind(|| run(&dir.path().join("bad").join(name)));
        match result {
            Ok(Err(e)) => println!("REFUSED {name} ({why}): {e}"),
            Ok(Ok(_)) => accepted.push(format!("{name} ({why}) was accepted")),
            Err(_) => accepted.push(format!("{name} ({why}) panicked")),
        }
    }
    assert!(accepted.is_empty(), "{accepted:#?}");
}
