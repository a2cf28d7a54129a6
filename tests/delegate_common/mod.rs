//! Helpers shared by the delegate integration tests: Python fixture generation through
//! `XQ_PYTHON` and comparisons of quantized outputs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python interpreter from `XQ_PYTHON`, or None after printing a SKIPPED line (panics
/// when `XQ_STRICT=1`).
pub fn python(test: &str) -> Option<PathBuf> {
    match std::env::var_os("XQ_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            if std::env::var("XQ_STRICT").as_deref() == Ok("1") {
                panic!("{test}: XQ_PYTHON is not set and XQ_STRICT=1");
            }
            println!("SKIPPED: {test} needs numpy/onnx/onnxruntime (set XQ_PYTHON)");
            None
        }
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a Python script with arguments, panicking with its output on failure.
pub fn run_python(python: &Path, script: &Path, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("failed to start XQ_PYTHON");
    assert!(
        out.status.success(),
        "{} failed:\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Quantizes `float_model` with ONNX Runtime's quantize_static (calibrated on `calib`),
/// writes `dir/name.onnx` and ORT's outputs on `eval` (`dir/name_y.npy`, `dir/name_q.npy`).
pub fn ort_qdq(
    python: &Path,
    float_model: &Path,
    calib: &Path,
    eval: &Path,
    dir: &Path,
    name: &str,
    extra: &[&str],
) -> PathBuf {
    let script = root().join("tests/fixtures/delegate/make_qdq.py");
    let out = dir.join(format!("{name}.onnx"));
    let prefix = dir.join(name);
    let mut args = vec![
        float_model.to_str().unwrap(),
        calib.to_str().unwrap(),
        out.to_str().unwrap(),
        "--eval",
        eval.to_str().unwrap(),
        prefix.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_python(python, &script, &args);
    out
}

/// Compares dequantized outputs element-wise in units of the output scale: returns
/// (fraction within one step, fraction exact, largest difference in steps).
pub fn step_agreement(ours: &[f32], theirs: &[f32], scale: f32) -> (f64, f64, f32) {
    assert_eq!(ours.len(), theirs.len());
    let mut within = 0usize;
    let mut exact = 0usize;
    let mut worst = 0f32;
    for (a, b) in ours.iter().zip(theirs) {
        let steps = ((a - b) / scale).abs();
        worst = worst.max(steps);
        if steps < 1.01 {
            within += 1;
        }
        if steps < 0.01 {
            exact += 1;
        }
    }
    let n = ours.len().max(1) as f64;
    (within as f64 / n, exact as f64 / n, worst)
}

/// Index of the largest element of each row.
pub fn argmax_rows(x: &[f32], cols: usize) -> Vec<usize> {
    x.chunks(cols)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0
        })
        .collect()
}
