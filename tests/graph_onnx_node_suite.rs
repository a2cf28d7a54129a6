//! The ONNX project's own node test cases, run through import + the float interpreter for
//! every op libxq imports. Prints a per-op pass/fail/skip summary with the reason for every
//! skip; fails if any case of a supported op fails.

mod graph_common;

use graph_common::{compare, python, read_tensor, run_script};
use std::collections::BTreeMap;
use std::path::Path;
use xq::ir::Tensor;

/// Cases where ONNX Runtime itself deviates from the ONNX reference outputs (the exported
/// model is the original one), with the reason.
const KNOWN_ORT_DIFFERENCES: &[(&str, &str)] = &[
    (
        "test_resize_downsample_scales_linear_align_corners",
        ALIGN_CORNERS,
    ),
    ("test_resize_downsample_scales_cubic_align_corners", ALIGN_CORNERS),
];

const ALIGN_CORNERS: &str =
    "ONNX Runtime uses the integer output length in align_corners; the spec uses input length * scale";

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
        if set == 0 {
            // Export → re-import must give the same numbers; the file is also run by ONNX
            // Runtime afterwards.
            let reloaded = xq::onnx::to_bytes(&graph).and_then(|b| {
                std::fs::write(dir.join("exported.onnx"), &b)
                    .map_err(|e| xq::Error::io("exported.onnx", e))?;
                xq::onnx::load_bytes(&b, None)
            });
            let again = reloaded.and_then(|g| xq::interp::run_once(&g, &inputs));
            match again {
                Ok(o)
                    if o.len() == outputs.len()
                        && o.iter()
                            .zip(&outputs)
                            .all(|(a, b)| compare(a, b, 0.0, 0.0).is_ok()) => {}
                Ok(_) => return Outcome::Fail("exported model computes different values".into()),
                Err(e) => return Outcome::Fail(format!("export round trip: {e}")),
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
    // Every exported model of a passing case must run in ONNX Runtime and agree with the
    // expected outputs (ONNX Runtime lacking a kernel for a type is reported, not failed).
    run_script(&py, "run_onnxruntime_cases.py", &[out]);
    let mut ort_pass = 0;
    let mut ort_unsupported = Vec::new();
    let mut ort_differs = Vec::new();
    for line in list.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let case = dir.path().join(f[0]);
        if !case.join("exported.onnx").exists() {
            continue;
        }
        let (rtol, atol): (f64, f64) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        if let Ok(msg) = std::fs::read_to_string(case.join("ort_error.txt")) {
            let ort_limit = [
                "NOT_IMPLEMENTED",
                "Could not find an implementation",
                "not supported",
                "can't be converted",
                "Unsupported model IR version",
                "opset",
                "not defined for",
                "No corresponding Numpy type",
            ];
            if ort_limit.iter().any(|m| msg.contains(m)) {
                ort_unsupported.push(format!("{} [{}]: {}", f[0], f[1], msg.trim()));
            } else {
                failures.push(format!(
                    "{} [{}]: ONNX Runtime rejects the exported model: {}",
                    f[0],
                    f[1],
                    msg.trim()
                ));
            }
            continue;
        }
        let ds = case.join("test_data_set_0");
        for k in 0.. {
            let (got, want) = (
                ds.join(format!("ort_output_{k}.pb")),
                ds.join(format!("output_{k}.pb")),
            );
            if !want.exists() {
                break;
            }
            let res = read_tensor(&got)
                .map_err(|e| e.to_string())
                .and_then(|g| compare(&g, &read_tensor(&want).unwrap(), rtol, atol));
            match (res, KNOWN_ORT_DIFFERENCES.iter().find(|(n, _)| *n == f[0])) {
                (Ok(()), _) => {}
                (Err(m), Some((_, why))) => ort_differs.push(format!("{} [{}]: {m} ({why})", f[0], f[1])),
                (Err(m), None) => failures.push(format!(
                    "{} [{}]: exported model in ONNX Runtime, output {k}: {m}",
                    f[0], f[1]
                )),
            }
        }
        ort_pass += 1;
    }
    println!(
        "exported models run by ONNX Runtime: {ort_pass} ({} without an ONNX Runtime kernel)",
        ort_unsupported.len()
    );
    for u in &ort_unsupported {
        println!("  ORT-UNSUPPORTED {u}");
    }
    for d in &ort_differs {
        println!("  ORT-DIFFERS {d}");
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
