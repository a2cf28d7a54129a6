//! Whole models through the delegate against ONNX Runtime: the QDQ model (from ONNX
//! Runtime's quantize_static, uint8 or int8 activations) is executed by both, ONNX Runtime
//! running it as written (its reference session in `tests/python/ort_reference.py`: graph
//! optimizations off, the same on every CPU). Every compute node must be delegated; libxq's
//! output must be as accurate against the float model as ONNX Runtime's (SQNR within
//! `SQNR_MARGIN_DB`); and for the `CompleteLayers` models every kernel step, fed ONNX Runtime's
//! int8 inputs, must be within one int8 step of ONNX Runtime's DequantizeLinear → float op →
//! QuantizeLinear. Element-wise equality with ONNX Runtime's fused integer kernels is not
//! asked: they differ by CPU (on AVX2 without VNNI their uint8 convolution saturates).
//!
//! The real-data models come from `XQ_MODELS_DIR/<name>.onnx` with calibration / evaluation
//! inputs `XQ_MODELS_DIR/<name>_calib.npy` and `<name>_eval.npy`. For the anchor MobileNetV2
//! written by `../shared/anchors/mobilenet_v2.py` into `/tmp/xq-anchor-mv2`, make a directory
//! of symlinks: `mobilenet_v2.onnx → mobilenet_v2.onnx`, `mobilenet_v2_calib.npy →
//! calib.npy`, `mobilenet_v2_eval.npy → eval.npy`. Without `XQ_MODELS_DIR` those tests print
//! SKIPPED; the built models (`scripts/fixtures/build_models.py`) always run.

mod common;
mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode};
use xq::ir::Tensor;
use xq::npy;
use xq::runtime::{Program, ProgramOptions};

/// Where a model and its data come from.
enum Source {
    /// `XQ_MODELS_DIR/<name>.onnx`, `<name>_calib.npy`, `<name>_eval.npy` (real data).
    Dir,
    /// `scripts/fixtures/build_models.py` (torch-free, seeded weights) with seeded random
    /// inputs.
    Built,
}

/// What to check besides the last quantized tensor.
#[derive(Clone, Copy, PartialEq)]
enum Check {
    /// Every conv / gemm / add / concat / pool node is delegated and the output is as
    /// accurate as ONNX Runtime's.
    Complete,
    /// As `Complete`, and every layer given ONNX Runtime's inputs is within one step of ONNX
    /// Runtime's (the per-layer table, printed in full).
    CompleteLayers,
    /// Partly interpreted models: accuracy only.
    Partial,
}

fn check_model(name: &str, source: Source, activations_u8: bool) {
    check_model_with(name, source, activations_u8, Check::Complete);
}

/// As [`check_model`], with the checks of `check`.
fn check_model_with(name: &str, source: Source, activations_u8: bool, check: Check) {
    let complete = check != Check::Partial;
    let Some(python) = python(name) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (float_model, calib, eval) = match source {
        Source::Dir => {
            let Some(dir) = std::env::var_os("XQ_MODELS_DIR") else {
                println!("SKIPPED: {name} on real data needs XQ_MODELS_DIR with {name}.onnx, {name}_calib.npy, {name}_eval.npy");
                return;
            };
            let dir = std::path::PathBuf::from(dir);
            (
                dir.join(format!("{name}.onnx")),
                dir.join(format!("{name}_calib.npy")).display().to_string(),
                dir.join(format!("{name}_eval.npy")).display().to_string(),
            )
        }
        Source::Built => {
            let script = root().join("scripts/fixtures/build_models.py");
            run_python(&python, &script, &[tmp.path().to_str().unwrap(), "--only", name]);
            (
                tmp.path().join(format!("{name}.onnx")),
                "random:8".to_string(),
                "random:4".to_string(),
            )
        }
    };
    let mut extra = vec!["--calib-count", "8"];
    if activations_u8 {
        extra.push("--u8");
    }
    let model = ort_qdq(
        &python,
        &float_model,
        std::path::Path::new(&calib),
        std::path::Path::new(&eval),
        tmp.path(),
        name,
        &extra,
    );
    let eval_path = if eval.starts_with("random:") {
        tmp.path().join(format!("{name}_x.npy"))
    } else {
        std::path::PathBuf::from(&eval)
    };
    let probe = xq::onnx::load_file(&model).unwrap();
    let input_name = probe.inputs[0].name.clone();
    let dims: Vec<usize> = probe.inputs[0]
        .shape
        .as_ref()
        .unwrap()
        .iter()
        .map(|d| match d {
            xq::ir::Dim::Known(n) => *n,
            xq::ir::Dim::Symbolic(_) => 1,
        })
        .collect();
    let graph = xq::interp::simplify_with_shapes(
        xq::onnx::load_file(&model).unwrap(),
        &[(input_name.as_str(), dims.as_slice())],
    )
    .unwrap();
    let (spec, report) = lower(&graph, PartitionMode::All).unwrap();
    println!("{}", report.text());
    for r in report.refused.iter().filter(|_| complete) {
        assert!(
            !["Conv", "Gemm", "Add", "Concat", "GlobalAveragePool", "MaxPool"].contains(&r.op),
            "{} `{}` not delegated: {}",
            r.op,
            r.node,
            r.detail
        );
    }
    // Saved with the weights packed for this CPU, as `xq_program_save` does.
    let file_bytes = Program::new(spec.clone(), ProgramOptions { threads: 1 })
        .unwrap()
        .to_bytes()
        .unwrap();
    let reloaded = xq::format::program_file::from_bytes(&file_bytes).unwrap();
    assert_eq!(
        (
            &reloaded.steps,
            &reloaded.values,
            &reloaded.inputs,
            &reloaded.outputs
        ),
        (&spec.steps, &spec.values, &spec.inputs, &spec.outputs),
        "program file round trip"
    );
    assert_eq!(reloaded.fallback.nodes.len(), spec.fallback.nodes.len());
    let scale = last_value_scale(&spec);
    let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
    let eval = npy::read(&eval_path).unwrap();
    let per: usize = dims.iter().product();
    let mut ours = Vec::new();
    for s in eval.as_f32().unwrap().chunks(per) {
        let t = Tensor::from_f32(dims.clone(), s.to_vec()).unwrap();
        ours.extend_from_slice(program.execute(&[t]).unwrap()[0].as_f32().unwrap());
    }
    // The program file loaded with its GEMM weights used in place computes the same bytes.
    let bytes = xq::format::ProgramBytes::copy_from(&file_bytes).unwrap();
    let in_place = Program::load_bytes(bytes, ProgramOptions { threads: 1 }).unwrap();
    assert!(
        in_place.steps_with_weights_in_place() > 0,
        "{name}: no weights in place"
    );
    let mut loaded = Vec::new();
    for s in eval.as_f32().unwrap().chunks(per) {
        let t = Tensor::from_f32(dims.clone(), s.to_vec()).unwrap();
        loaded.extend_from_slice(in_place.execute(&[t]).unwrap()[0].as_f32().unwrap());
    }
    assert!(
        loaded.iter().zip(&ours).all(|(a, b)| a.to_bits() == b.to_bits()),
        "{name}: the loaded program differs"
    );
    let theirs = npy::read(tmp.path().join(format!("{name}_y.npy"))).unwrap();
    let float = npy::read(tmp.path().join(format!("{name}_f.npy"))).unwrap();
    let (within, exact, worst) = step_agreement(&ours, theirs.as_f32().unwrap(), scale);
    println!("{name}: within one step {within:.5}, exact {exact:.5}, worst {worst} steps");
    assert_accuracy_next_to_onnxruntime(
        name,
        &ours,
        theirs.as_f32().unwrap(),
        float.as_f32().unwrap(),
        10.0,
    );
    if check == Check::CompleteLayers {
        let dump = tmp.path().join("ort_quantized");
        ort_quantized_dump(&python, &model, &eval_path, &dump);
        let layers = layer_agreement(program.spec(), &dump);
        print_layer_agreement(&layers, true);
        let kernels = program
            .spec()
            .steps
            .iter()
            .filter(|s| matches!(s, xq::program::StepSpec::Kernel { .. }))
            .count();
        assert!(
            layers.len() * 2 > kernels,
            "{name}: only {} layers compared",
            layers.len()
        );
        assert_layers_within_tolerance(name, &layers);
    }
}

#[test]
fn mobilenet_v2_uint8_activations_match_onnxruntime_accuracy() {
    check_model("mobilenet_v2", Source::Dir, true);
}

#[test]
fn mobilenet_v2_int8_activations_match_onnxruntime_accuracy() {
    check_model("mobilenet_v2", Source::Dir, false);
}

#[test]
fn built_mobilenet_v2_matches_onnxruntime_layer_by_layer() {
    check_model_with("mobilenet_v2", Source::Built, true, Check::CompleteLayers);
}

#[test]
fn built_mobilenet_v2_int8_activations_match_onnxruntime_layer_by_layer() {
    check_model_with("mobilenet_v2", Source::Built, false, Check::CompleteLayers);
}

#[test]
fn built_resnet18_matches_onnxruntime() {
    check_model("resnet18", Source::Built, true);
}

#[test]
fn built_resnet18_int8_activations_match_onnxruntime() {
    check_model("resnet18", Source::Built, false);
}

/// Exporter patterns (hardswish, Resize, ConvTranspose, Pad, Slice, Transpose, Softmax ...):
/// partly delegated (the rest is interpreted), as accurate as ONNX Runtime.
#[test]
fn built_patterns_model_matches_onnxruntime() {
    check_model_with("patterns", Source::Built, true, Check::Partial);
}
