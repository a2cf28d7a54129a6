//! PT2E parity: the digits CNN quantized static (per-channel and per-tensor weights) by libxq
//! and by ExecuTorch's XNNPACKQuantizer (recorded by scripts/fixtures/quant_pt2e.py, same calibration batches)
//! has the same int8 weights and weight scales, activation scales within 1% and equal zero
//! points.

mod common;
mod quant_common;

use quant_common::*;
use xq::ir::{Graph, Tensor};
use xq::quant::{QuantConfig, Quantizer, WeightGranularity};

fn quantized_digits_cnn(weights: WeightGranularity) -> (Quantizer, Graph) {
    let graph = xq::onnx::load_file(fixtures().join("digits/digits_cnn.onnx")).unwrap();
    let train = read_npy_f32(&fixtures().join("digits/digits_train_x.npy"));
    let values = train.as_f32().unwrap();
    let n = train.dims()[0];
    let config = QuantConfig {
        weights,
        ..QuantConfig::default()
    };
    let mut q = Quantizer::new(Some(config)).unwrap();
    q.prepare(&graph).unwrap();
    for start in (0..n).step_by(128) {
        let end = (start + 128).min(n);
        let batch =
            Tensor::from_f32(vec![end - start, 1, 8, 8], values[start * 64..end * 64].to_vec()).unwrap();
        q.calibrate(&[batch]).unwrap();
    }
    let qdq = q.convert().unwrap();
    (q, qdq)
}

#[test]
fn digits_cnn_per_channel_matches_pt2e_xnnpack_quantizer() {
    check("digits_cnn_pt2e.json", WeightGranularity::PerChannel);
}

#[test]
fn digits_cnn_per_tensor_matches_pt2e_xnnpack_quantizer() {
    check("digits_cnn_pt2e_per_tensor.json", WeightGranularity::PerTensor);
}

fn check(fixture: &str, weights: WeightGranularity) {
    let text = std::fs::read_to_string(fixtures().join("quant").join(fixture)).unwrap();
    let pt2e: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        pt2e["is_per_channel"].as_bool(),
        Some(weights == WeightGranularity::PerChannel)
    );
    let (q, qdq) = quantized_digits_cnn(weights);
    let ours = q.activation_qparams().unwrap();

    let activations = pt2e["activations"].as_array().unwrap();
    assert_eq!(
        activations.len(),
        ours.len(),
        "same number of quantized activations"
    );
    for a in activations {
        let tensor = a["tensor"].as_str().unwrap();
        let (_, p) = ours
            .iter()
            .find(|(n, _)| n == tensor)
            .unwrap_or_else(|| panic!("{tensor} not quantized"));
        let scale = a["scale"].as_f64().unwrap() as f32;
        let zp = a["zero_point"].as_i64().unwrap() as i32;
        println!(
            "{tensor}: xq {} / {}, pt2e {scale} / {zp}",
            p.scale(),
            p.zero_point()
        );
        assert!(
            (p.scale() / scale - 1.0).abs() <= 0.01,
            "{tensor}: scale {} vs {scale}",
            p.scale()
        );
        assert_eq!(p.zero_point(), zp, "{tensor}");
    }

    for w in pt2e["weights"].as_array().unwrap() {
        let name = w["initializer"].as_str().unwrap();
        let ints = qdq.initializers[&format!("{name}_quantized")].as_i8().unwrap();
        let scales = qdq.initializers[&format!("{name}_scale")].as_f32().unwrap();
        let expected_scales: Vec<f32> = w["scales"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(scales.len(), expected_scales.len(), "{name}");
        for (c, (a, b)) in scales.iter().zip(&expected_scales).enumerate() {
            assert!((a / b - 1.0).abs() <= 1e-6, "{name} channel {c}: {a} vs {b}");
        }
        let expected: Vec<i64> = w["int8"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(ints.len(), expected.len(), "{name}");
        let differing = ints
            .iter()
            .zip(&expected)
            .filter(|(&a, &b)| i64::from(a) != b)
            .count();
        assert_eq!(differing, 0, "{name}: {differing} int8 weights differ from PT2E");
    }
}
