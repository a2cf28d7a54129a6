//! Whole models (MobileNetV2, ResNet-18, a transformer encoder block and a graph of exporter
//! patterns, built by `scripts/fixtures/build_models.py`) give ONNX Runtime's outputs.

mod graph_common;

use graph_common::{check_outputs_scaled, python, read_set, run_script};
use std::path::Path;
use xq::ir::{Graph, Op, Tensor};

/// Relative tolerance against ONNX Runtime; the absolute floor is the same fraction of the
/// output's largest magnitude (so near-zero logits are judged on the output's scale).
const RTOL: f64 = 1e-4;

fn load_set(dir: &Path) -> (Vec<Tensor>, Vec<Tensor>) {
    (read_set(dir, "input"), read_set(dir, "output"))
}

fn check_outputs(what: &str, got: &[Tensor], want: &[Tensor]) {
    check_outputs_scaled(what, got, want, RTOL);
}

fn count_ops(g: &Graph, pred: impl Fn(&Op) -> bool) -> usize {
    g.nodes.iter().filter(|n| pred(&n.op)).count()
}

fn check_model(dir: &Path, name: &str) {
    let model = xq::onnx::load_file(dir.join(format!("{name}.onnx"))).unwrap();
    assert!(
        model.inputs[0]
            .shape
            .as_ref()
            .unwrap()
            .iter()
            .any(|d| matches!(d, xq::ir::Dim::Symbolic(_))),
        "{name}: the fixture should have a symbolic batch dimension"
    );
    for batch in ["batch1", "batch2"] {
        let (inputs, expected) = load_set(&dir.join(name).join(batch));
        // Symbolic shapes: the interpreter evaluates Shape/Gather/Concat chains at run time.
        let got = xq::interp::run_once(&model, &inputs).unwrap();
        check_outputs(&format!("{name}/{batch} (symbolic)"), &got, &expected);
        // Fixed shapes: everything constant is folded, BatchNormalization goes into Conv.
        let mut fixed = model.clone();
        let shapes: Vec<(&str, &[usize])> = fixed
            .inputs
            .iter()
            .map(|i| i.name.as_str())
            .zip(inputs.iter().map(|t| t.dims()))
            .collect::<Vec<_>>();
        let shapes: Vec<(String, Vec<usize>)> = shapes
            .into_iter()
            .map(|(n, d)| (n.to_string(), d.to_vec()))
            .collect();
        let refs: Vec<(&str, &[usize])> = shapes.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        fixed.fix_input_shapes(&refs).unwrap();
        xq::interp::simplify(&mut fixed).unwrap();
        assert_eq!(
            count_ops(&fixed, |o| matches!(o, Op::Shape { .. })),
            0,
            "{name}: Shape nodes survive folding"
        );
        let got = xq::interp::run_once(&fixed, &inputs).unwrap();
        check_outputs(&format!("{name}/{batch} (folded)"), &got, &expected);
        if name == "mobilenet_v2" || name == "resnet18" {
            assert_eq!(
                count_ops(&fixed, |o| matches!(o, Op::BatchNormalization { .. })),
                0,
                "{name}: BN not folded"
            );
        }
        // Export → import round trip keeps the numbers.
        let reloaded = xq::onnx::load_bytes(&xq::onnx::to_bytes(&fixed).unwrap(), None).unwrap();
        let got = xq::interp::run_once(&reloaded, &inputs).unwrap();
        check_outputs(&format!("{name}/{batch} (exported)"), &got, &expected);
    }
}

#[test]
fn whole_models_match_onnx_runtime() {
    let Some(py) = python("whole_models_match_onnx_runtime") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    run_script(&py, "build_models.py", &[dir.path().to_str().unwrap()]);
    for name in ["mobilenet_v2", "resnet18", "transformer", "patterns"] {
        check_model(dir.path(), name);
        println!("{name}: matches ONNX Runtime (rtol {RTOL})");
    }
}

/// Manual check against the real torchvision exports written by
/// `scripts/fixtures/export_torchvision.py` (needs torch, so never run by CI).
#[test]
fn torchvision_exports_match_onnx_runtime() {
    let Some(dir) = std::env::var_os("XQ_TORCHVISION_DIR") else {
        println!("SKIPPED: torchvision_exports_match_onnx_runtime needs XQ_TORCHVISION_DIR (see export_torchvision.py)");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    for name in ["tv_mobilenet_v2", "tv_resnet18"] {
        let model = xq::onnx::load_file(dir.join(format!("{name}.onnx"))).unwrap();
        let (inputs, expected) = load_set(&dir.join(name).join("batch1"));
        let got = xq::interp::run_once(&model, &inputs).unwrap();
        check_outputs(name, &got, &expected);
        let mut fixed = model.clone();
        fixed.fix_input_shapes(&[("input", &[1, 3, 224, 224])]).unwrap();
        xq::interp::simplify(&mut fixed).unwrap();
        check_outputs(name, &xq::interp::run_once(&fixed, &inputs).unwrap(), &expected);
        println!("{name}: matches ONNX Runtime (rtol {RTOL})");
    }
}
