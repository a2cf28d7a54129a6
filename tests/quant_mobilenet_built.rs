//! MobileNetV2 as built torch-free by `scripts/fixtures/build_models.py` (torchvision's
//! topology, seeded weights): libxq's static per-channel QDQ model, saved as ONNX, loads and
//! runs in ONNX Runtime; its output SQNR against the float model is printed next to ONNX
//! Runtime's own `quantize_static` (QDQ, per-channel, int8) calibrated on the same samples.
//! Runs in CI (needs `XQ_PYTHON` with numpy, onnx, onnxruntime). The same check on the real
//! anchor model and real images is `quant_mobilenet` (ignored unless its files exist).

mod common;
mod quant_common;

use quant_common::*;
use std::path::Path;
use std::process::Command;
use xq::ir::Tensor;
use xq::quant::{QuantConfig, Quantizer};

/// Seeded, image-like samples: smooth per-channel gradients plus noise, normalized.
fn samples(n: usize, seed: u64) -> Tensor {
    let (c, h, w) = (3usize, 224usize, 224usize);
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut noise = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let mut v = Vec::with_capacity(n * c * h * w);
    for s in 0..n {
        for ch in 0..c {
            let (fx, fy) = (1.0 + (s + ch) as f32 * 0.7, 0.5 + (s * 3 + ch) as f32 * 0.3);
            for y in 0..h {
                for x in 0..w {
                    let base = (fx * x as f32 / w as f32 * std::f32::consts::TAU).sin()
                        * (fy * y as f32 / h as f32 * std::f32::consts::TAU).cos();
                    v.push(1.5 * base + 0.5 * noise());
                }
            }
        }
    }
    Tensor::from_f32(vec![n, c, h, w], v).unwrap()
}

fn python(python: &str, args: &[&std::ffi::OsStr]) {
    let out = Command::new(python).args(args).output().expect("run XQ_PYTHON");
    assert!(
        out.status.success(),
        "{:?} failed:\n{}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn built_mobilenet_v2_qdq_runs_in_onnxruntime_next_to_quantize_static() {
    let Some(py) = python_or_skip("built_mobilenet_v2_qdq") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    python(
        &py,
        &[
            root.join("scripts/fixtures/build_models.py").as_os_str(),
            d.as_os_str(),
            "--only".as_ref(),
            "mobilenet_v2".as_ref(),
        ],
    );
    let float_model = d.join("mobilenet_v2.onnx");

    let (calib, eval) = (samples(8, 1), samples(4, 2));
    let (calib_path, eval_path) = (d.join("calib.npy"), d.join("eval.npy"));
    write_npy(&calib_path, &calib);
    write_npy(&eval_path, &eval);

    let mut graph = xq::onnx::load_file(&float_model).unwrap();
    graph.fix_input_shapes(&[("input", &[1, 3, 224, 224])]).unwrap();
    let mut q = Quantizer::new(Some(QuantConfig::default())).unwrap();
    q.prepare(&graph).unwrap();
    q.calibrate(std::slice::from_ref(&calib)).unwrap();
    assert_eq!(q.samples_seen(), 8);
    let qdq = q.convert().unwrap();
    let ours = d.join("mobilenet_v2_xq_qdq.onnx");
    xq::onnx::save_file(&qdq, &ours).unwrap();

    let theirs = d.join("mobilenet_v2_ort_qdq.onnx");
    python(
        &py,
        &[
            root.join("tests/fixtures/delegate/make_qdq.py").as_os_str(),
            float_model.as_os_str(),
            calib_path.as_os_str(),
            theirs.as_os_str(),
        ],
    );

    let run = |model: &Path| run_onnxruntime_with(&py, model, &[&eval_path], d, true);
    let reference = run(&float_model);
    let reference = reference.as_f32().unwrap();
    let ours_sqnr = sqnr_db(reference, run(&ours).as_f32().unwrap());
    let theirs_sqnr = sqnr_db(reference, run(&theirs).as_f32().unwrap());
    println!(
        "built MobileNetV2, output SQNR vs float over 4 samples: libxq QDQ in onnxruntime {ours_sqnr:.2} dB, \
         onnxruntime quantize_static {theirs_sqnr:.2} dB"
    );
    assert!(ours_sqnr > 10.0, "libxq QDQ SQNR {ours_sqnr:.2} dB");
    assert!(
        ours_sqnr > theirs_sqnr - 3.0,
        "libxq QDQ SQNR {ours_sqnr:.2} dB is far below quantize_static's {theirs_sqnr:.2} dB"
    );
}
