//! Helpers shared by the graph integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use xq::ir::{Tensor, TensorData};

/// The Python interpreter from `XQ_PYTHON`, or None after printing a SKIPPED line (panics
/// instead when `XQ_STRICT=1`).
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

/// Runs a script from `scripts/fixtures` with arguments, panicking with its stderr on failure.
pub fn run_script(python: &PathBuf, script: &str, args: &[&str]) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/fixtures")
        .join(script);
    let out = Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .expect("failed to start XQ_PYTHON");
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads a TensorProto file.
pub fn read_tensor(path: &std::path::Path) -> xq::Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| xq::Error::io(path.display(), e))?;
    Ok(xq::onnx::load_tensor_bytes(&bytes)?.1)
}

/// numpy.allclose-style comparison (NaNs equal); returns a description of the first mismatch.
pub fn compare(got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if got.dtype() != want.dtype() {
        return Err(format!("dtype {} != expected {}", got.dtype(), want.dtype()));
    }
    if got.dims() != want.dims() {
        return Err(format!("shape {:?} != expected {:?}", got.dims(), want.dims()));
    }
    let as_f64 = |t: &Tensor| -> Vec<f64> {
        match t.data() {
            TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            _ => t
                .to_f32_vec()
                .expect("numeric tensor")
                .into_iter()
                .map(|x| x as f64)
                .collect(),
        }
    };
    let (g, w) = (as_f64(got), as_f64(want));
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
        if !ok {
            let err = (a - b).abs();
            if worst.is_none_or(|(_, e)| err > e || e.is_nan()) {
                worst = Some((i, err));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, err)) => Err(format!(
            "element {i}: got {} expected {} (|diff| {err:.3e})",
            g[i], w[i]
        )),
    }
}

/// The tensors `dir/<prefix>_0.pb`, `_1.pb`, ... (as many as exist), e.g. a test data set's
/// inputs or outputs.
pub fn read_set(dir: &std::path::Path, prefix: &str) -> Vec<Tensor> {
    (0..)
        .map(|i| dir.join(format!("{prefix}_{i}.pb")))
        .take_while(|p| p.exists())
        .map(|p| read_tensor(&p).unwrap())
        .collect()
}

/// Checks every output against its expected value with relative tolerance `rtol` and an
/// absolute floor of `rtol` times the expected output's largest magnitude (near-zero values
/// are judged on the output's scale); panics naming `what` on a mismatch.
pub fn check_outputs_scaled(what: &str, got: &[Tensor], want: &[Tensor], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: output count");
    for (g, w) in got.iter().zip(want) {
        let scale = w
            .to_f32_vec()
            .unwrap()
            .iter()
            .fold(0f64, |m, &v| m.max(v.abs() as f64));
        if let Err(m) = compare(g, w, rtol, rtol * scale) {
            panic!("{what}: {m}");
        }
    }
}
