//! Digits end to end: quantize the float CNN (static per-channel and per-tensor) and MLP
//! (dynamic) trained on scikit-learn's handwritten digits, calibrate on the training split,
//! save the QDQ ONNX, and check held-out accuracy within 1 point of float — with our
//! interpreter always, and with ONNX Runtime when `XQ_PYTHON` is set.

mod common;
mod quant_common;

use quant_common::*;
use xq::ir::{Graph, Op, Tensor};
use xq::quant::{ActivationMode, QuantConfig, Quantizer, WeightGranularity};

struct Digits {
    train_x: Tensor,
    test_x: Tensor,
    test_y: Vec<i64>,
    float_accuracy: serde_json::Value,
}

fn digits() -> Digits {
    let dir = fixtures().join("digits");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("digits.json")).unwrap()).unwrap();
    Digits {
        train_x: read_npy_f32(&dir.join("digits_train_x.npy")),
        test_x: read_npy_f32(&dir.join("digits_test_x.npy")),
        test_y: read_npy_i64(&dir.join("digits_test_y.npy")),
        float_accuracy: json["float_test_accuracy"].clone(),
    }
}

/// Quantizes `model` with `config`, calibrating on the training split in batches of 128.
fn quantize(model: &str, config: QuantConfig, d: &Digits) -> (Quantizer, Graph) {
    let graph = xq::onnx::load_file(fixtures().join("digits").join(model)).unwrap();
    let mut q = Quantizer::new(Some(config)).unwrap();
    q.prepare(&graph).unwrap();
    let n = d.train_x.dims()[0];
    let per = 64usize;
    let values = d.train_x.as_f32().unwrap();
    for start in (0..n).step_by(128) {
        let end = (start + 128).min(n);
        let batch = Tensor::from_f32(
            vec![end - start, 1, 8, 8],
            values[start * per..end * per].to_vec(),
        )
        .unwrap();
        q.calibrate(&[batch]).unwrap();
    }
    assert_eq!(q.samples_seen(), n);
    let qdq = q.convert().unwrap();
    (q, qdq)
}

fn count(graph: &Graph, pred: impl Fn(&Op) -> bool) -> usize {
    graph.nodes.iter().filter(|n| pred(&n.op)).count()
}

/// Checks accuracy with our interpreter and (if available) ONNX Runtime on the saved model.
fn check_accuracy(name: &str, qdq: &Graph, d: &Digits, float_acc: f64) {
    let ours = xq::interp::run_once(qdq, std::slice::from_ref(&d.test_x)).unwrap();
    let acc = accuracy(&ours[0], &d.test_y);
    println!("{name}: float {float_acc:.4}, QDQ (xq interpreter) {acc:.4}");
    assert!(acc >= float_acc - 0.01, "{name}: {acc} vs float {float_acc}");

    let Some(python) = python_or_skip(name) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join(format!("{name}.onnx"));
    xq::onnx::save_file(qdq, &model).unwrap();
    let input = dir.path().join("test_x.npy");
    write_npy(&input, &d.test_x);
    if let Ok(keep) = std::env::var("XQ_KEEP_QDQ_DIR") {
        std::fs::copy(&model, std::path::Path::new(&keep).join(format!("{name}.onnx"))).unwrap();
        std::fs::copy(&input, std::path::Path::new(&keep).join("test_x.npy")).unwrap();
    }
    let ort = run_onnxruntime(&python, &model, &[&input], dir.path());
    let ort_acc = accuracy(&ort, &d.test_y);
    println!("{name}: QDQ (onnxruntime) {ort_acc:.4}");
    assert!(
        ort_acc >= float_acc - 0.01,
        "{name} in onnxruntime: {ort_acc} vs float {float_acc}"
    );
    // Both executors agree on (nearly) every prediction.
    assert!(
        (ort_acc - acc).abs() <= 0.005,
        "xq {acc} vs onnxruntime {ort_acc}"
    );
}

fn cnn_case(name: &str, weights: WeightGranularity) {
    let d = digits();
    let config = QuantConfig {
        weights,
        ..QuantConfig::default()
    };
    let (q, qdq) = quantize("digits_cnn.onnx", config, &d);
    // 3 conv + 1 gemm weights; activations: input, 3 relu outputs, maxpool, GAP, flatten,
    // logits = 8 Q/DQ pairs (pool / flatten share parameters with their inputs).
    assert_eq!(
        count(&qdq, |op| matches!(op, Op::QuantizeLinear(_))),
        8,
        "{}",
        q.report()
    );
    assert_eq!(count(&qdq, |op| matches!(op, Op::DequantizeLinear(_))), 12);
    assert!(
        qdq.initializers
            .values()
            .filter(|t| t.dtype() == xq::ir::DType::I8)
            .count()
            >= 4
    );
    let shared = q.activation_qparams().unwrap();
    let find = |t: &str| shared.iter().find(|(n, _)| n == t).unwrap().1;
    assert_eq!(find("/4/Relu_output_0"), find("/5/MaxPool_output_0"));
    assert_eq!(find("/7/Relu_output_0"), find("/9/Flatten_output_0"));
    let float_acc = d.float_accuracy["cnn"].as_f64().unwrap();
    check_accuracy(name, &qdq, &d, float_acc);
}

#[test]
fn cnn_static_per_channel_keeps_accuracy() {
    cnn_case("digits_cnn_static_per_channel", WeightGranularity::PerChannel);
}

#[test]
fn cnn_static_per_tensor_keeps_accuracy() {
    cnn_case("digits_cnn_static_per_tensor", WeightGranularity::PerTensor);
}

#[test]
fn mlp_dynamic_keeps_accuracy() {
    let d = digits();
    let config = QuantConfig {
        activations: ActivationMode::Dynamic,
        ..QuantConfig::default()
    };
    let graph = xq::onnx::load_file(fixtures().join("digits/digits_mlp.onnx")).unwrap();
    let mut q = Quantizer::new(Some(config)).unwrap();
    q.prepare(&graph).unwrap();
    // Dynamic needs no calibration sample.
    let qdq = q.convert().unwrap();
    assert_eq!(
        count(&qdq, |op| matches!(op, Op::DynamicQuantizeLinear)),
        3,
        "{}",
        q.report()
    );
    assert_eq!(count(&qdq, |op| matches!(op, Op::QuantizeLinear(_))), 0);
    assert_eq!(count(&qdq, |op| matches!(op, Op::DequantizeLinear(_))), 6);
    let float_acc = d.float_accuracy["mlp"].as_f64().unwrap();
    check_accuracy("digits_mlp_dynamic", &qdq, &d, float_acc);
}

#[test]
fn every_activation_observer_keeps_cnn_accuracy() {
    use xq::quant::ObserverConfig;
    let d = digits();
    let float_acc = d.float_accuracy["cnn"].as_f64().unwrap();
    for observer in [
        ObserverConfig::MinMax,
        ObserverConfig::MOVING_AVERAGE_MIN_MAX,
        ObserverConfig::PERCENTILE,
        ObserverConfig::ENTROPY,
    ] {
        let config = QuantConfig {
            observer,
            ..QuantConfig::default()
        };
        let (_, qdq) = quantize("digits_cnn.onnx", config, &d);
        let out = xq::interp::run_once(&qdq, std::slice::from_ref(&d.test_x)).unwrap();
        let acc = accuracy(&out[0], &d.test_y);
        println!("{observer:?}: QDQ accuracy {acc:.4} (float {float_acc:.4})");
        assert!(acc >= float_acc - 0.01, "{observer:?}: {acc}");
    }
}
