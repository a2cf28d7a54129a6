//! The ONNX project's own node test cases, run through import + the float interpreter for
//! every op libxq imports. Prints a per-op pass/fail/skip summary with the reason for every
//! skip; fails if any case of a supported op fails.

mod graph_common;

use graph_common::{compare, python, read_tensor, run_script};
use std::collections::BTreeMap;
use std::path::Path;
use xq::ir::Tensor;

enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

fn run_case(dir: &Path, rtol: f64, atol: f64) -> Outcome {
    let mut graph = match xq::onnx::load_file(dir.join("model.onnx")) {
        Ok(g) => g,
        Err(xq::Error::Unsupported(why)) => return Outcome::Skip(why),
        Err(e) => return Outcome::Fail(format!("load: {e}")),
    };
    let mut set = 0;
    loop {
        let ds = dir.join(format!("test_data_set_{set}"));
        if !ds.is_dir() {
            return Outcome::Pass;
        }
        let read_all = |prefix: &str| -> xq::Result<Vec<Tensor>> {
            (0..)
                .map(|i| ds.join(format!("{prefix}_{i}.pb")))
                .take_while(|p| p.exists())
                .map(|p| read_tensor(&p))
                .collect()
        };
        let (inputs, expected) = match (read_all("input"), read_all("output")) {
            (Ok(i), Ok(o)) => (i, o),
            (Err(xq::Error::Unsupported(why)), _) | (_, Err(xq::Error::Unsupported(why))) => {
                return Outcome::Skip(why)
            }
            (Err(e), _) | (_, Err(e)) => return Outcome::Fail(format!("test data: {e}")),
        };
        let names: Vec<String> = graph.inputs.iter().map(|i| i.name.clone()).collect();
        let shapes: Vec<(&str, &[usize])> = names
            .iter()
            .map(String::as_str)
            .zip(inputs.iter().map(|t| t.dims()))
            .collect();
        let result = graph
            .fix_input_shapes(&shapes)
            .and_then(|_| xq::interp::simplify(&mut graph))
            .and_then(|_| xq::interp::run_once(&graph, &inputs));
        let outputs = match result {
            Ok(o) => o,
            Err(xq::Error::Unsupported(why)) => return Outcome::Skip(why),
            Err(e) => return Outcome::Fail(format!("run: {e}")),
        };
        if outputs.len() != expected.len() {
            return Outcome::Fail(format!("{} outputs, expected {}", outputs.len(), expected.len()));
        }
        for (k, (got, want)) in outputs.iter().zip(&expected).enumerate() {
            if let Err(m) = compare(got, want, rtol, atol) {
                return Outcome::Fail(format!("output {k}: {m}"));
            }
        }
        set += 1;
    }
}

#[test]
fn onnx_node_conformance() {
    let Some(py) = python("onnx_node_conformance") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    run_script(&py, "onnx_node_cases.py", &[out]);
    let list = std::fs::read_to_string(dir.path().join("cases.tsv")).unwrap();
    let only = std::env::var("XQ_NODE_CASE").ok();
    let mut per_op: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut skips = Vec::new();
    for line in list.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, op, rtol, atol) = (f[0], f[1], f[2].parse().unwrap(), f[3].parse().unwrap());
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let entry = per_op.entry(op.to_string()).or_default();
        match run_case(&dir.path().join(name), rtol, atol) {
            Outcome::Pass => entry.0 += 1,
            Outcome::Fail(m) => {
                entry.1 += 1;
                failures.push(format!("{name} [{op}]: {m}"));
            }
            Outcome::Skip(m) => {
                entry.2 += 1;
                skips.push(format!("{name} [{op}]: {m}"));
            }
        }
    }
    println!("{:<24} {:>5} {:>5} {:>5}", "op", "pass", "fail", "skip");
    for (op, (p, f, s)) in &per_op {
        println!("{op:<24} {p:>5} {f:>5} {s:>5}");
    }
    let total = per_op
        .values()
        .fold((0, 0, 0), |a, v| (a.0 + v.0, a.1 + v.1, a.2 + v.2));
    println!("{:<24} {:>5} {:>5} {:>5}", "TOTAL", total.0, total.1, total.2);
    println!("\nskipped cases and why:");
    for s in &skips {
        println!("  SKIP {s}");
    }
    for f in &failures {
        println!("  FAIL {f}");
    }
    assert!(
        failures.is_empty(),
        "{} node cases failed (see FAIL lines above)",
        failures.len()
    );
}
