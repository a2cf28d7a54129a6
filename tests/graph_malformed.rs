//! Malformed models fail with clear errors; none panics or allocates without bound.
//! Fixtures: tests/fixtures/models (written by scripts/fixtures/make_malformed.py).

mod graph_common;

use std::path::PathBuf;
use xq::ir::Tensor;
use xq::Error;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

fn load_err(name: &str) -> Error {
    match xq::onnx::load_file(fixture(name)) {
        Ok(_) => panic!("{name} loaded but should fail"),
        Err(e) => e,
    }
}

#[test]
fn valid_fixture_matches_onnx_runtime_and_external_data_loads() {
    let x = graph_common::read_tensor(&fixture("tiny_cnn_input.pb")).unwrap();
    let want = graph_common::read_tensor(&fixture("tiny_cnn_output.pb")).unwrap();
    for name in ["tiny_cnn.onnx", "tiny_cnn_external.onnx"] {
        let g = xq::onnx::load_file(fixture(name)).unwrap();
        let got = xq::interp::run_once(&g, std::slice::from_ref(&x)).unwrap();
        graph_common::compare(&got[0], &want, 1e-5, 1e-6).unwrap();
    }
}

#[test]
fn external_data_needs_a_file_location() {
    let bytes = std::fs::read(fixture("tiny_cnn_external.onnx")).unwrap();
    let e = xq::onnx::load_bytes(&bytes, None).unwrap_err();
    assert!(
        matches!(e, Error::Unsupported(_)) && e.to_string().contains("external data"),
        "{e}"
    );
}

#[test]
fn truncated_protobuf_is_a_corrupt_file() {
    let e = load_err("truncated.onnx");
    assert!(matches!(e, Error::CorruptFile(_)), "{e}");
    assert!(e.to_string().contains("not a valid ONNX protobuf"), "{e}");
}

#[test]
fn every_truncation_and_random_corruption_fails_cleanly() {
    let bytes = std::fs::read(fixture("tiny_cnn.onnx")).unwrap();
    for len in 0..bytes.len() {
        let _ = xq::onnx::load_bytes(&bytes[..len], None);
    }
    // Deterministic bit flips: loading, fixing shapes and folding must return, not panic.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut loaded = 0;
    for _ in 0..2000 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 3 {
            let i = (next() as usize) % b.len();
            b[i] ^= 1 << (next() % 8);
        }
        if let Ok(mut g) = xq::onnx::load_bytes(&b, None) {
            loaded += 1;
            let names: Vec<String> = g.inputs.iter().map(|i| i.name.clone()).collect();
            for n in &names {
                let _ = g.fix_input_shapes(&[(n.as_str(), &[1, 3, 8, 8])]);
            }
            let _ = xq::interp::simplify(&mut g);
        }
    }
    assert!(
        loaded > 0,
        "some single-bit corruptions (e.g. in weights) still load"
    );
}

#[test]
fn cycle_is_reported() {
    let e = load_err("cycle.onnx");
    assert!(matches!(e, Error::InvalidModel(_)), "{e}");
    assert!(e.to_string().contains("cycle"), "{e}");
}

#[test]
fn missing_initializer_is_named() {
    let e = load_err("missing_initializer.onnx");
    assert!(
        e.to_string().contains("w_missing") && e.to_string().contains("conv"),
        "{e}"
    );
}

#[test]
fn wrong_rank_is_a_shape_error() {
    let e = load_err("wrong_rank.onnx");
    assert!(matches!(e, Error::ShapeMismatch(_)), "{e}");
    assert!(e.to_string().contains("conv"), "{e}");
}

#[test]
fn absurd_dims_are_rejected_before_allocation() {
    let e = load_err("absurd_dims.onnx");
    assert!(e.to_string().contains("more than"), "{e}");
    let e = load_err("absurd_input.onnx");
    assert!(e.to_string().contains("more than"), "{e}");
    // Fixing a shape to an absurd size is refused too.
    let mut g = xq::onnx::load_file(fixture("tiny_cnn.onnx")).unwrap();
    let e = g.fix_input_shapes(&[("x", &[1 << 40, 3, 8, 8])]).unwrap_err();
    assert!(matches!(e, Error::ResourceLimit(_)), "{e}");
}

#[test]
fn short_raw_data_is_rejected() {
    let e = load_err("raw_data_short.onnx");
    assert!(e.to_string().contains("needs 64 bytes, got 60"), "{e}");
}

#[test]
fn external_data_cannot_escape_the_model_directory() {
    let e = load_err("external_escape.onnx");
    assert!(e.to_string().contains("must be a relative path inside"), "{e}");
}

#[test]
fn unsupported_ops_are_listed_together() {
    let e = load_err("unsupported_ops.onnx");
    let msg = e.to_string();
    assert!(matches!(e, Error::Unsupported(_)), "{msg}");
    for part in [
        "3 unsupported",
        "Einsum (node `einsum`)",
        "LSTM (node `lstm`)",
        "com.microsoft::FusedConv (node `fused`)",
    ] {
        assert!(msg.contains(part), "missing `{part}` in: {msg}");
    }
}

#[test]
fn wrong_runtime_inputs_are_rejected() {
    let g = xq::onnx::load_file(fixture("tiny_cnn.onnx")).unwrap();
    let bad_rank = Tensor::from_f32(vec![3, 8, 8], vec![0.0; 192]).unwrap();
    let e = xq::interp::run_once(&g, &[bad_rank]).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch(_)), "{e}");
    let bad_type = Tensor::from_i64(vec![1, 3, 8, 8], vec![0; 192]).unwrap();
    assert!(matches!(
        xq::interp::run_once(&g, &[bad_type]),
        Err(Error::DtypeMismatch(_))
    ));
    assert!(matches!(
        xq::interp::run_once(&g, &[]),
        Err(Error::InvalidArgument { .. })
    ));
}

/// Largest intermediate a corrupted model may produce before the test declines to run it
/// (the interpreter itself allows up to MAX_TENSOR_ELEMENTS; this keeps the test light).
const FUZZ_RUN_LIMIT: usize = 1 << 22;

/// A deterministic pseudo-random input for a graph input (token ids stay in range).
fn fuzz_input(info: &xq::ir::TensorInfo) -> Option<Tensor> {
    let dims = info.concrete_shape()?;
    let n: usize = dims.iter().product();
    match info.dtype {
        xq::ir::DType::F32 => Tensor::from_f32(
            dims,
            (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect(),
        )
        .ok(),
        xq::ir::DType::I64 => Tensor::from_i64(dims, (0..n).map(|i| (i * 7 % 50) as i64).collect()).ok(),
        _ => None,
    }
}

#[test]
fn corrupted_models_never_panic_when_loaded_folded_and_run() {
    let seeds = [
        ("tiny_cnn.onnx", vec![vec![1, 3, 8, 8]]),
        ("patterns.onnx", vec![vec![1, 3, 32, 32]]),
        ("transformer.onnx", vec![vec![1, 16]]),
    ];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut ran = 0;
    for (name, shapes) in &seeds {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for _ in 0..300 {
            let mut b = bytes.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % b.len();
                b[i] = match next() % 3 {
                    0 => b[i] ^ (1 << (next() % 8)),
                    1 => next() as u8,
                    _ => 0,
                };
            }
            let outcome = std::panic::catch_unwind(|| {
                let Ok(mut g) = xq::onnx::load_bytes(&b, None) else {
                    return false;
                };
                let names: Vec<String> = g.inputs.iter().map(|i| i.name.clone()).collect();
                let fixed: Vec<(&str, &[usize])> = names
                    .iter()
                    .map(String::as_str)
                    .zip(shapes.iter().map(Vec::as_slice))
                    .collect();
                if g.fix_input_shapes(&fixed).is_err() || xq::interp::simplify(&mut g).is_err() {
                    return false;
                }
                let small = g.value_info.values().all(|v| {
                    v.concrete_shape()
                        .is_some_and(|s| s.iter().product::<usize>() <= FUZZ_RUN_LIMIT)
                });
                let inputs: Option<Vec<Tensor>> = g.inputs.iter().map(fuzz_input).collect();
                match (small, inputs) {
                    (true, Some(inputs)) => {
                        let _ = xq::interp::run_once(&g, &inputs);
                        true
                    }
                    _ => false,
                }
            });
            match outcome {
                Ok(true) => ran += 1,
                Ok(false) => {}
                Err(_) => panic!("a corrupted {name} made libxq panic (see the message above)"),
            }
        }
    }
    assert!(ran > 50, "only {ran} corrupted models got as far as running");
}
