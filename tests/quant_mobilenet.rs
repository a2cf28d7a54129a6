//! MobileNetV2 (the anchor model of ../shared/anchors/mobilenet_v2.py, not committed): the
//! saved QDQ ONNX runs in ONNX Runtime; prints its output SQNR against float next to ONNX
//! Runtime's own `quantize_static` (QDQ, per-channel, same 32 calibration crops).
//!
//! Ignored by default (needs `/tmp/xq-anchor-mv2`, or `XQ_MV2_DIR`, and `XQ_PYTHON`):
//! `XQ_PYTHON=... cargo test --release --test quant_mobilenet -- --ignored --nocapture`.

mod common;
mod quant_common;

use quant_common::*;
use std::path::PathBuf;
use std::time::Instant;
use xq::quant::{QuantConfig, Quantizer};

#[test]
#[ignore = "needs the MobileNetV2 anchor files and XQ_PYTHON"]
fn mobilenet_v2_qdq_runs_in_onnxruntime_with_useful_sqnr() {
    let dir = PathBuf::from(std::env::var("XQ_MV2_DIR").unwrap_or_else(|_| "/tmp/xq-anchor-mv2".into()));
    let Some(python) = python_or_skip("mobilenet_v2") else {
        return;
    };
    let graph = xq::onnx::load_file(dir.join("mobilenet_v2.onnx")).unwrap();
    let calib = read_npy_f32(&dir.join("calib.npy"));
    let reference = read_npy_f32(&dir.join("eval_float_out.npy"));

    let start = Instant::now();
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    q.prepare(&graph).unwrap();
    // The model's batch is fixed to 1: the quantizer runs the 32 crops one at a time.
    q.calibrate(std::slice::from_ref(&calib)).unwrap();
    let calibrated = start.elapsed();
    let qdq = q.convert().unwrap();
    let report = q.report();
    println!("{}", report.lines().next().unwrap_or_default());
    for line in report.lines().filter(|l| l.contains(": float")) {
        println!("{line}");
    }
    println!(
        "prepare + calibrate on {} images: {calibrated:.2?}",
        q.samples_seen()
    );

    let work = tempfile::tempdir().unwrap();
    let ours = work.path().join("mobilenet_v2_xq_qdq.onnx");
    xq::onnx::save_file(&qdq, &ours).unwrap();
    // The models take one image at a time.
    let eval = dir.join("eval.npy");
    let run = |model: &std::path::Path| -> Vec<f32> {
        let out = run_onnxruntime_with(&python, model, &[&eval], work.path(), true);
        out.as_f32().unwrap().to_vec()
    };
    let ours_out = run(&ours);
    let ours_sqnr = sqnr_db(reference.as_f32().unwrap(), &ours_out);
    let ort_model = dir.join("mobilenet_v2_ort_qdq.onnx");
    let ort_sqnr = ort_model
        .exists()
        .then(|| sqnr_db(reference.as_f32().unwrap(), &run(&ort_model)));
    println!("MobileNetV2 output SQNR vs float: libxq QDQ in onnxruntime {ours_sqnr:.2} dB, onnxruntime quantize_static {ort_sqnr:?} dB");
    assert!(ours_sqnr > 10.0, "SQNR {ours_sqnr} dB");

    // The same QDQ graph in libxq's float interpreter (Q/DQ simulated in f32).
    let plan = xq::interp::Interpreter::new(&qdq).unwrap();
    let images = read_npy_f32(&eval);
    let mut interp_out = Vec::new();
    for image in images.as_f32().unwrap().chunks_exact(3 * 224 * 224) {
        let x = xq::ir::Tensor::from_f32(vec![1, 3, 224, 224], image.to_vec()).unwrap();
        interp_out.extend_from_slice(plan.run(&[x]).unwrap()[0].as_f32().unwrap());
    }
    let interp_sqnr = sqnr_db(reference.as_f32().unwrap(), &interp_out);
    println!("MobileNetV2 output SQNR vs float: libxq QDQ in the xq interpreter {interp_sqnr:.2} dB");
    assert!(interp_sqnr > 10.0, "SQNR {interp_sqnr} dB");
}
