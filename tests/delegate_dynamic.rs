//! A dynamically quantized model end to end: the digits MLP quantized by ONNX Runtime's
//! quantize_dynamic; every DynamicQuantizeLinear → MatMulInteger → Cast → Mul → Add chain is
//! delegated to the dynamic int8 GEMM (activations quantized per row at run time). Reports
//! the SQNR of the logits against the float model, and checks accuracy.

mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode};
use xq::format::npy;
use xq::runtime::{Program, ProgramOptions};

#[test]
fn dynamic_mlp_runs_end_to_end_with_reported_sqnr() {
    let Some(python) = python("dynamic_mlp_runs_end_to_end_with_reported_sqnr") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let digits = root().join("tests/fixtures/digits");
    let model = dir.path().join("mlp_dynamic.onnx");
    let float_out = dir.path().join("float.npy");
    let x_path = digits.join("digits_test_x.npy");
    run_python(
        &python,
        &root().join("tests/fixtures/delegate/make_dynamic.py"),
        &[
            digits.join("digits_mlp.onnx").to_str().unwrap(),
            model.to_str().unwrap(),
            x_path.to_str().unwrap(),
            float_out.to_str().unwrap(),
        ],
    );
    let x = npy::read(&x_path).unwrap();
    let n = x.dims()[0];
    let graph = xq::onnx::load_file_fixed(&model, &[("input", &[n, 1, 8, 8])]).unwrap();
    let (spec, report) = lower(&graph, PartitionMode::All).unwrap();
    println!("{}", report.text());
    let dynamic = report
        .partitions
        .iter()
        .filter(|p| p.ops.contains_key("MatMulInteger (dynamic)"))
        .count();
    assert_eq!(dynamic, 3, "every linear layer is delegated");
    for threads in [1, 2] {
        let program = Program::new(spec.clone(), ProgramOptions { threads }).unwrap();
        let y = program.execute(std::slice::from_ref(&x)).unwrap().remove(0);
        let ours = y.as_f32().unwrap();
        let float = npy::read(&float_out).unwrap();
        let reference = float.as_f32().unwrap();
        let signal: f64 = reference.iter().map(|&v| (v as f64).powi(2)).sum();
        let noise: f64 = ours
            .iter()
            .zip(reference)
            .map(|(&a, &b)| ((a - b) as f64).powi(2))
            .sum();
        let sqnr = 10.0 * (signal / noise.max(1e-30)).log10();
        let labels = npy::read(digits.join("digits_test_y.npy"))
            .unwrap()
            .to_i64_vec()
            .unwrap();
        let pred = argmax_rows(ours, 10);
        let acc = pred
            .iter()
            .zip(&labels)
            .filter(|(p, l)| **p as i64 == **l)
            .count() as f64
            / n as f64;
        println!("dynamic int8 MLP, {threads} thread(s): SQNR vs float {sqnr:.2} dB, accuracy {acc:.4} (float 0.9711)");
        assert!(sqnr > 25.0, "SQNR {sqnr} dB");
        assert!(acc >= 0.9711 - 0.01, "accuracy {acc}");
    }
}
