//! The digits CNN through the whole delegate: QDQ model (made by ONNX Runtime, and by libxq's
//! own quantizer) → partition → lower → execute; checks accuracy next to ONNX Runtime's
//! (SQNR against the float model), agreement with the QDQ graph in the interpreter, accuracy against float, full delegation, save/load
//! bit-identity and concurrent execution.

mod common;
mod delegate_common;
mod quant_common;

use delegate_common::*;
use quant_common::run_onnxruntime;
use xq::delegate::{lower, PartitionMode};
use xq::ir::Tensor;
use xq::npy;
use xq::runtime::{Program, ProgramOptions};

struct Fixture {
    _dir: tempfile::TempDir,
    model: std::path::PathBuf,
    ort_y: Tensor,
    float_y: Tensor,
    x: Tensor,
    labels: Vec<i64>,
}

fn fixture(test: &str) -> Option<Fixture> {
    let python = python(test)?;
    let dir = tempfile::tempdir().unwrap();
    let digits = root().join("tests/fixtures/digits");
    let model = ort_qdq(
        &python,
        &digits.join("digits_cnn.onnx"),
        &digits.join("digits_train_x.npy"),
        &digits.join("digits_test_x.npy"),
        dir.path(),
        "cnn",
        &[],
    );
    let ort_y = npy::read(dir.path().join("cnn_y.npy")).unwrap();
    let float_y = npy::read(dir.path().join("cnn_f.npy")).unwrap();
    let x = npy::read(digits.join("digits_test_x.npy")).unwrap();
    let labels = npy::read(digits.join("digits_test_y.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    Some(Fixture {
        _dir: dir,
        model,
        ort_y,
        float_y,
        x,
        labels,
    })
}

fn compile(model: &std::path::Path, threads: usize) -> Program {
    let graph =
        xq::interp::simplify_with_shapes(xq::onnx::load_file(model).unwrap(), &[("input", &[1, 1, 8, 8])])
            .unwrap();
    let (spec, _) = lower(&graph, PartitionMode::All).unwrap();
    Program::new(spec, ProgramOptions { threads }).unwrap()
}

fn run_all(p: &Program, x: &Tensor) -> Vec<f32> {
    let xs = x.as_f32().unwrap();
    let mut out = Vec::new();
    for s in xs.chunks(64) {
        let t = Tensor::from_f32(vec![1, 1, 8, 8], s.to_vec()).unwrap();
        out.extend_from_slice(p.execute(&[t]).unwrap()[0].as_f32().unwrap());
    }
    out
}

#[test]
fn digits_cnn_matches_onnxruntime_and_float_accuracy() {
    let Some(f) = fixture("digits_cnn_matches_onnxruntime_and_float_accuracy") else {
        return;
    };
    let graph = xq::interp::simplify_with_shapes(
        xq::onnx::load_file(&f.model).unwrap(),
        &[("input", &[1, 1, 8, 8])],
    )
    .unwrap();
    let (spec, report) = lower(&graph, PartitionMode::All).unwrap();
    println!("{}", report.text());
    assert_eq!(report.partitions.len(), 1, "{}", report.text());
    assert!(report.refused.is_empty(), "{}", report.text());
    let scale = spec.values.last().unwrap().q.scale;
    let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
    let ours = run_all(&program, &f.x);
    let (within, exact, worst) = step_agreement(&ours, f.ort_y.as_f32().unwrap(), scale);
    println!("agreement with ORT: within one step {within:.5}, exact {exact:.5}, worst {worst} steps");
    assert_accuracy_next_to_onnxruntime(
        "digits_cnn",
        &ours,
        f.ort_y.as_f32().unwrap(),
        f.float_y.as_f32().unwrap(),
        20.0,
    );
    let pred = argmax_rows(&ours, 10);
    let acc = pred
        .iter()
        .zip(&f.labels)
        .filter(|(p, l)| **p as i64 == **l)
        .count() as f64
        / pred.len() as f64;
    let float_acc = 0.9933333333333333;
    println!("int8 accuracy {acc:.4} vs float {float_acc:.4}");
    assert!(
        acc >= float_acc - 0.01,
        "int8 accuracy {acc} more than 1 point below float {float_acc}"
    );
}

#[test]
fn saved_program_reloads_bit_identical_and_runs_concurrently() {
    let Some(f) = fixture("saved_program_reloads_bit_identical_and_runs_concurrently") else {
        return;
    };
    let program = compile(&f.model, 2);
    let reference = run_all(&program, &f.x);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digits.xq");
    xq::format::program_file::save(program.spec(), &path).unwrap();
    drop(program);
    let spec = xq::format::program_file::load(&path).unwrap();
    let reloaded = Program::new(spec, ProgramOptions { threads: 2 }).unwrap();
    assert_eq!(run_all(&reloaded, &f.x), reference, "reloaded program differs");

    let shared = std::sync::Arc::new(reloaded);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (p, x) = (shared.clone(), f.x.clone());
            std::thread::spawn(move || run_all(&p, &x))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), reference, "concurrent execution differs");
    }

    // Every truncation and a sweep of single-byte corruptions is an error, never a crash.
    let bytes = std::fs::read(&path).unwrap();
    for cut in (0..bytes.len()).step_by(97) {
        assert!(xq::format::program_file::from_bytes(&bytes[..cut]).is_err());
    }
    for at in (0..bytes.len()).step_by(13) {
        let mut bad = bytes.clone();
        bad[at] ^= 0x5a;
        if let Ok(spec) = xq::format::program_file::from_bytes(&bad) {
            let _ = Program::new(spec, ProgramOptions { threads: 1 });
        }
    }
}

/// Quantizes the float digits CNN with libxq's quantizer (default config: static,
/// per-channel), calibrating on the training split in batches of 128.
fn libxq_qdq(float: &xq::ir::Graph) -> xq::ir::Graph {
    let train = npy::read(root().join("tests/fixtures/digits/digits_train_x.npy")).unwrap();
    let mut q = xq::quant::Quantizer::new(Some(xq::quant::QuantConfig::default())).unwrap();
    q.prepare(float).unwrap();
    let n = train.dims()[0];
    let values = train.as_f32().unwrap();
    for start in (0..n).step_by(128) {
        let end = (start + 128).min(n);
        let batch =
            Tensor::from_f32(vec![end - start, 1, 8, 8], values[start * 64..end * 64].to_vec()).unwrap();
        q.calibrate(&[batch]).unwrap();
    }
    assert_eq!(q.samples_seen(), n);
    q.convert().unwrap()
}

fn accuracy(logits: &[f32], labels: &[i64]) -> f64 {
    let pred = argmax_rows(logits, 10);
    pred.iter().zip(labels).filter(|(p, l)| **p as i64 == **l).count() as f64 / labels.len() as f64
}

#[test]
fn libxq_quantized_cnn_program_matches_its_qdq_graph_and_float_accuracy() {
    let digits = root().join("tests/fixtures/digits");
    let x = npy::read(digits.join("digits_test_x.npy")).unwrap();
    let labels = npy::read(digits.join("digits_test_y.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    let float = xq::onnx::load_file(digits.join("digits_cnn.onnx")).unwrap();
    let float_y = xq::interp::run_once(&float, std::slice::from_ref(&x))
        .unwrap()
        .remove(0);
    let float_acc = accuracy(float_y.as_f32().unwrap(), &labels);

    // QDQ graph by libxq → saved ONNX → reloaded with one image per run → program.
    let qdq = libxq_qdq(&float);
    let dir = tempfile::tempdir().unwrap();
    let qdq_path = dir.path().join("digits_cnn_libxq_qdq.onnx");
    xq::onnx::save_file(&qdq, &qdq_path).unwrap();
    let (spec, report) = lower(&compile_graph(&qdq_path), PartitionMode::All).unwrap();
    println!("{}", report.text());
    assert_eq!(report.partitions.len(), 1, "{}", report.text());
    assert!(report.refused.is_empty(), "{}", report.text());
    // One int8 step of the logits: the scale of the delegate's [1, 10] value (the Gemm output).
    let scale = spec.values.iter().find(|v| v.dims == [1, 10]).unwrap().q.scale;
    let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
    let ours = run_all(&program, &x);

    // Reference: the same QDQ graph run by the float interpreter (fake quantization).
    let interp_y = xq::interp::run_once(&qdq, std::slice::from_ref(&x))
        .unwrap()
        .remove(0);
    let (within, exact, worst) = step_agreement(&ours, interp_y.as_f32().unwrap(), scale);
    println!("agreement with the QDQ graph in the interpreter: within one step {within:.5}, exact {exact:.5}, worst {worst} steps");
    assert!(
        within >= 0.999,
        "only {within} of logits within one int8 step of the interpreter"
    );

    let acc = accuracy(&ours, &labels);
    println!("libxq-quantized int8 accuracy {acc:.4} vs float {float_acc:.4}");
    assert!(
        acc >= float_acc - 0.01,
        "int8 accuracy {acc} more than 1 point below float {float_acc}"
    );

    // And against ONNX Runtime executing the same QDQ model.
    let Some(python) = python("libxq_quantized_cnn_program_matches_its_qdq_graph_and_float_accuracy") else {
        return;
    };
    let x_path = digits.join("digits_test_x.npy");
    let ort_y = run_onnxruntime(python.to_str().unwrap(), &qdq_path, &[&x_path], dir.path());
    let (within, exact, worst) = step_agreement(&ours, ort_y.as_f32().unwrap(), scale);
    println!("agreement with ORT: within one step {within:.5}, exact {exact:.5}, worst {worst} steps");
    assert_accuracy_next_to_onnxruntime(
        "digits_cnn (libxq QDQ)",
        &ours,
        ort_y.as_f32().unwrap(),
        float_y.as_f32().unwrap(),
        20.0,
    );
}

/// Loads a model with its input fixed to one image.
fn compile_graph(model: &std::path::Path) -> xq::ir::Graph {
    xq::interp::simplify_with_shapes(xq::onnx::load_file(model).unwrap(), &[("input", &[1, 1, 8, 8])])
        .unwrap()
}
