//! The operators transformer exports need beyond the CNN set (IsNaN, Cos, Sin,
//! GatherElements, GatherND, ScatterND, Trilu, CumSum, Einsum): small one-node models built by
//! `scripts/fixtures/transformer_ops.py`, imported and run by the float interpreter, compared
//! with ONNX Runtime's outputs (graph optimizations disabled). What ONNX Runtime refuses must
//! be refused by libxq too, with an error, not a panic: indices out of range when run
//! (InvalidArgument), malformed nodes and operands that do not fit when loaded or shaped.

mod graph_common;

use graph_common::{compare, python, read_tensor, run_script};
use std::path::Path;
use xq::ir::Tensor;

/// Reads `<prefix>_0.pb`, `<prefix>_1.pb`, ... from `dir`.
fn read_all(dir: &Path, prefix: &str) -> Vec<Tensor> {
    (0..)
        .map(|i| dir.join(format!("{prefix}_{i}.pb")))
        .take_while(|p| p.exists())
        .map(|p| read_tensor(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// Imports and runs one case at its input shapes.
fn run(dir: &Path, inputs: &[Tensor]) -> xq::Result<Vec<Tensor>> {
    let mut graph = xq::onnx::load_file(dir.join("model.onnx"))?;
    let names: Vec<String> = graph.inputs.iter().map(|i| i.name.clone()).collect();
    let shapes: Vec<(&str, &[usize])> = names
        .iter()
        .map(String::as_str)
        .zip(inputs.iter().map(|t| t.dims()))
        .collect();
    graph.fix_input_shapes(&shapes)?;
    xq::interp::run_once(&graph, inputs)
}

#[test]
fn transformer_ops_match_onnx_runtime() {
    let Some(py) = python("transformer_ops_match_onnx_runtime") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    run_script(&py, "transformer_ops.py", &[dir.path().to_str().unwrap()]);
    let list = std::fs::read_to_string(dir.path().join("cases.tsv")).unwrap();
    let mut failures = Vec::new();
    let (mut checked, mut refused) = (0, 0);
    for line in list.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, rtol, atol, expect) = (f[0], f[1].parse().unwrap(), f[2].parse().unwrap(), f[3]);
        let case = dir.path().join(name);
        let inputs = read_all(&case, "input");
        let result = run(&case, &inputs);
        match (expect, result) {
            ("error", Err(xq::Error::InvalidArgument { .. })) => refused += 1,
            ("error", other) => failures.push(format!("{name}: expected an index error, got {other:?}")),
            (
                "invalid",
                Err(xq::Error::InvalidModel(_) | xq::Error::ShapeMismatch(_) | xq::Error::DtypeMismatch(_)),
            ) => refused += 1,
            ("invalid", other) => failures.push(format!("{name}: expected a model error, got {other:?}")),
            (_, Err(e)) => failures.push(format!("{name}: {e}")),
            (_, Ok(got)) => {
                let want = read_all(&case, "output");
                if got.len() != want.len() {
                    failures.push(format!("{name}: {} outputs, expected {}", got.len(), want.len()));
                }
                for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                    if let Err(m) = compare(g, w, rtol, atol) {
                        failures.push(format!("{name} output {k}: {m}"));
                    }
                }
                checked += 1;
            }
        }
    }
    println!("{checked} cases match ONNX Runtime, {refused} bad models or inputs refused");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 0 && refused > 0);
}
