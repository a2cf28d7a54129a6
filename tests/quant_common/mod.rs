//! Helpers shared by the quantizer tests: `.npy` reading (the library's reader) and writing
//! (f32 / i64, C order) and the onnxruntime runner behind `XQ_PYTHON`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use xq::ir::Tensor;

#[allow(unused_imports)] // not every crate including this module measures SQNR
pub use crate::common::sqnr_db;

/// The repository's fixture directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Reads an f32 `.npy` file (through the library's reader).
pub fn read_npy_f32(path: &Path) -> Tensor {
    let t = xq::npy::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(t.dtype(), xq::ir::DType::F32, "{}", path.display());
    t
}

/// Reads an integer `.npy` file (i64 or i32) as i64 values.
pub fn read_npy_i64(path: &Path) -> Vec<i64> {
    let t = xq::npy::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match t.dtype() {
        xq::ir::DType::I64 => t.as_i64().unwrap().to_vec(),
        xq::ir::DType::I32 => t.as_i32().unwrap().iter().map(|&v| i64::from(v)).collect(),
        other => panic!("{}: unsupported dtype {other}", path.display()),
    }
}

/// Writes an f32 or i64 tensor as `.npy` (version 1.0).
pub fn write_npy(path: &Path, t: &Tensor) {
    let (descr, payload): (&str, Vec<u8>) = match t.dtype() {
        xq::ir::DType::F32 => (
            "<f4",
            t.as_f32().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        xq::ir::DType::I64 => (
            "<i8",
            t.as_i64().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        other => panic!("write_npy: unsupported dtype {other}"),
    };
    let dims: Vec<String> = t.dims().iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({shape}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(payload);
    std::fs::write(path, bytes).unwrap();
}

/// The Python interpreter from `XQ_PYTHON`, or `None` after printing the SKIPPED line
/// (a failure when `XQ_STRICT=1`).
pub fn python_or_skip(test: &str) -> Option<String> {
    match std::env::var("XQ_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            if std::env::var("XQ_STRICT").as_deref() == Ok("1") {
                panic!("{test} needs onnxruntime: set XQ_PYTHON (XQ_STRICT=1 forbids skipping)");
            }
            println!("SKIPPED: {test} needs onnxruntime (set XQ_PYTHON)");
            None
        }
    }
}

/// Runs `model` in onnxruntime on f32 `.npy` input files and returns the first output.
pub fn run_onnxruntime(python: &str, model: &Path, inputs: &[&Path], workdir: &Path) -> Tensor {
    run_onnxruntime_with(python, model, inputs, workdir, false)
}

/// [`run_onnxruntime`], optionally one sample (leading index) at a time for batch-1 models.
pub fn run_onnxruntime_with(
    python: &str,
    model: &Path,
    inputs: &[&Path],
    workdir: &Path,
    per_sample: bool,
) -> Tensor {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/run_onnx.py");
    let prefix = workdir.join("ort_out");
    let status = Command::new(python)
        .arg(script)
        .args(per_sample.then_some("--per-sample"))
        .arg(model)
        .arg(&prefix)
        .args(inputs)
        .status()
        .expect("run XQ_PYTHON");
    assert!(status.success(), "onnxruntime failed on {}", model.display());
    read_npy_f32(&PathBuf::from(format!("{}0.npy", prefix.display())))
}

/// Fraction of rows of `logits` ([n, classes]) whose first argmax equals the label.
pub fn accuracy(logits: &Tensor, labels: &[i64]) -> f64 {
    let classes = logits.dims()[1];
    let data = logits.as_f32().unwrap();
    let correct = data
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &label)| {
            // The first maximum wins (numpy's argmax): quantized logits often tie.
            let best = (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best }) as i64;
            best == label
        })
        .count();
    correct as f64 / labels.len() as f64
}
