//! A dynamically quantized model end to end: the digits MLP quantized by ONNX Runtime's
//! quantize_dynamic (every DynamicQuantizeLinear → MatMulInteger → Cast → Mul → Add chain)
//! and by libxq's quantizer (every DynamicQuantizeLinear → DequantizeLinear → Gemm with an
//! int8 weight behind a DequantizeLinear) is delegated to the dynamic int8 GEMM (activations
//! quantized per row at run time). Reports the SQNR of the logits against the float model,
//! and checks accuracy.

mod common;
mod delegate_common;

use delegate_common::*;
use xq::delegate::{lower, PartitionMode};
use xq::ir::{Op, Tensor};
use xq::npy;
use xq::quant::{ActivationMode, QuantConfig, Quantizer};
use xq::runtime::{Program, ProgramOptions};

fn accuracy(logits: &[f32], labels: &[i64]) -> f64 {
    let pred = argmax_rows(logits, 10);
    pred.iter().zip(labels).filter(|(p, l)| **p as i64 == **l).count() as f64 / labels.len() as f64
}

#[test]
fn libxq_dynamic_mlp_is_delegated_with_reported_sqnr() {
    let digits = root().join("tests/fixtures/digits");
    let x = npy::read(digits.join("digits_test_x.npy")).unwrap();
    let labels = npy::read(digits.join("digits_test_y.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    let n = x.dims()[0];
    let float = xq::onnx::load_file(digits.join("digits_mlp.onnx")).unwrap();
    let float_y: Tensor = xq::interp::run_once(&float, std::slice::from_ref(&x))
        .unwrap()
        .remove(0);
    let float_acc = accuracy(float_y.as_f32().unwrap(), &labels);

    // Dynamic activations need no calibration: prepare → convert.
    let config = QuantConfig {
        activations: ActivationMode::Dynamic,
        ..QuantConfig::default()
    };
    let mut q = Quantizer::new(Some(config)).unwrap();
    q.prepare(&float).unwrap();
    let qdq = q.convert().unwrap();
    let linears = qdq.nodes.iter().filter(|n| matches!(n.op, Op::Gemm(_))).count();
    assert_eq!(linears, 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp_libxq_dynamic.onnx");
    xq::onnx::save_file(&qdq, &path).unwrap();

    let graph =
        xq::interp::simplify_with_shapes(xq::onnx::load_file(&path).unwrap(), &[("input", &[n, 1, 8, 8])])
            .unwrap();
    let (spec, report) = lower(&graph, PartitionMode::All).unwrap();
    println!("{}", report.text());
    let dynamic = report
        .partitions
        .iter()
        .filter(|p| p.ops.contains_key("Gemm (dynamic)"))
        .count();
    assert_eq!(dynamic, linears, "every linear layer is delegated");
    // The ReLUs are fused into the dynamic GEMMs; only the Flatten of the float input (before
    // any quantization) is left to the interpreter.
    let relus: usize = report.partitions.iter().filter_map(|p| p.ops.get("Relu")).sum();
    assert_eq!(relus, 2, "{}", report.text());
    let left: Vec<&str> = spec.fallback.nodes.iter().map(|n| n.op.onnx_name()).collect();
    assert_eq!(left, ["Flatten"]);
    // The fused ReLU survives the program file.
    let bytes = xq::format::program_file::to_bytes(&spec).unwrap();
    assert_eq!(xq::format::program_file::from_bytes(&bytes).unwrap(), spec);

    for threads in [1, 2] {
        let program = Program::new(spec.clone(), ProgramOptions { threads }).unwrap();
        let y = program.execute(std::slice::from_ref(&x)).unwrap().remove(0);
        let ours = y.as_f32().unwrap();
        let sqnr = sqnr_db(float_y.as_f32().unwrap(), ours);
        let acc = accuracy(ours, &labels);
        println!(
            "libxq dynamic int8 MLP, {threads} thread(s): SQNR vs float {sqnr:.2} dB, accuracy {acc:.4} (float {float_acc:.4})"
        );
        assert!(sqnr > 25.0, "SQNR {sqnr} dB");
        assert!(acc >= float_acc - 0.01, "accuracy {acc} vs float {float_acc}");
    }
}

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
    let graph =
        xq::interp::simplify_with_shapes(xq::onnx::load_file(&model).unwrap(), &[("input", &[n, 1, 8, 8])])
            .unwrap();
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

/// Deterministic pseudo-random values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// `x [4, 3, 16] → MatMul(W [16, 24]) → Add(b)` and `x [12, 16] → Gemm(W [16, 24], b)`
/// (weights stored [K, N], so the lowering transposes them), quantized dynamic by libxq,
/// per channel and per tensor: each linear is one dynamic GEMM step matching the float
/// model closely.
#[test]
fn libxq_dynamic_matmul_and_untransposed_gemm_are_lowered() {
    use xq::onnx::{add_onnx_node, AttrValue};
    for (op, x_dims) in [("MatMul", vec![4usize, 3, 16]), ("Gemm", vec![12, 16])] {
        for weights in [
            xq::quant::WeightGranularity::PerChannel,
            xq::quant::WeightGranularity::PerTensor,
        ] {
            let mut g = xq::ir::Graph {
                name: "g".into(),
                inputs: vec![xq::ir::TensorInfo::known("x", xq::ir::DType::F32, &x_dims)],
                ..Default::default()
            };
            g.initializers.insert(
                "w".into(),
                Tensor::from_f32(vec![16, 24], values(384, 3, 0.5)).unwrap(),
            );
            g.initializers.insert(
                "b".into(),
                Tensor::from_f32(vec![24], values(24, 4, 0.2)).unwrap(),
            );
            let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            if op == "MatMul" {
                add_onnx_node(&mut g, "MatMul", "mm", &strs(&["x", "w"]), &strs(&["p"]), &[]).unwrap();
                add_onnx_node(&mut g, "Add", "bias", &strs(&["p", "b"]), &strs(&["y"]), &[]).unwrap();
            } else {
                let attrs = [("transB".to_string(), AttrValue::Int(0))];
                add_onnx_node(
                    &mut g,
                    "Gemm",
                    "mm",
                    &strs(&["x", "w", "b"]),
                    &strs(&["y"]),
                    &attrs,
                )
                .unwrap();
            }
            g.outputs.push(xq::ir::TensorInfo {
                name: "y".into(),
                dtype: xq::ir::DType::F32,
                shape: None,
            });
            g.validate().unwrap();
            g.infer_shapes().unwrap();

            let config = QuantConfig {
                weights,
                activations: ActivationMode::Dynamic,
                ..QuantConfig::default()
            };
            let mut q = Quantizer::new(Some(config)).unwrap();
            q.prepare(&g).unwrap();
            let qdq = q.convert().unwrap();
            let (spec, report) = lower(&qdq, PartitionMode::All).unwrap();
            let steps = spec
                .steps
                .iter()
                .filter(|s| matches!(s, xq::program::StepSpec::DynamicLinear { .. }))
                .count();
            assert_eq!(steps, 1, "{op} {weights:?}: {}", report.text());
            assert!(
                spec.fallback.nodes.is_empty(),
                "{op} {weights:?}: {}",
                report.text()
            );

            let x = Tensor::from_f32(x_dims.clone(), values(x_dims.iter().product(), 5, 2.0)).unwrap();
            let float_y = xq::interp::run_once(&g, std::slice::from_ref(&x))
                .unwrap()
                .remove(0);
            let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
            let y = program.execute(std::slice::from_ref(&x)).unwrap().remove(0);
            assert_eq!(y.dims(), float_y.dims());
            let sqnr = sqnr_db(float_y.as_f32().unwrap(), y.as_f32().unwrap());
            println!("{op} {weights:?}: SQNR vs float {sqnr:.2} dB");
            assert!(sqnr > 30.0, "{op} {weights:?}: SQNR {sqnr} dB");
        }
    }
}

/// MatMuls of `[12, 16]` tensors by `[16, 16]` weights, one per (input, weight seed, output)
/// of `links`, every output a graph output, quantized dynamic by libxq and lowered.
fn dynamic_linears(links: &[(&str, usize, &str)]) -> (xq::ir::Graph, xq::program::ProgramSpec) {
    use xq::onnx::add_onnx_node;
    let mut g = xq::ir::Graph {
        name: "g".into(),
        inputs: vec![xq::ir::TensorInfo::known("x", xq::ir::DType::F32, &[12, 16])],
        ..Default::default()
    };
    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for &(input, w, output) in links {
        let name = format!("w{w}");
        g.initializers.insert(
            name.clone(),
            Tensor::from_f32(vec![16, 16], values(256, 10 + w as u64, 0.5)).unwrap(),
        );
        add_onnx_node(
            &mut g,
            "MatMul",
            output,
            &strs(&[input, &name]),
            &strs(&[output]),
            &[],
        )
        .unwrap();
        g.outputs.push(xq::ir::TensorInfo {
            name: output.into(),
            dtype: xq::ir::DType::F32,
            shape: None,
        });
    }
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    let config = QuantConfig {
        activations: ActivationMode::Dynamic,
        ..QuantConfig::default()
    };
    let mut q = Quantizer::new(Some(config)).unwrap();
    q.prepare(&g).unwrap();
    let (spec, _) = lower(&q.convert().unwrap(), PartitionMode::All).unwrap();
    (g, spec)
}

/// Linears reading one tensor quantize its rows once per run, linears reading another in
/// between quantize theirs: every output has the bits of its linear run alone, on every run.
#[test]
fn linears_sharing_an_input_give_the_bits_of_each_alone() {
    let links = [("x", 0, "a"), ("a", 1, "b"), ("x", 2, "c"), ("x", 3, "d")];
    let (_, spec) = dynamic_linears(&links);
    let dynamic = spec
        .steps
        .iter()
        .filter(|s| matches!(s, xq::program::StepSpec::DynamicLinear { .. }))
        .count();
    assert_eq!(dynamic, 4);
    let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
    for run in 0..2 {
        let x = Tensor::from_f32(vec![12, 16], values(192, 5 + run, 2.0)).unwrap();
        let got = program.execute(std::slice::from_ref(&x)).unwrap();
        for (i, &(input, w, output)) in links.iter().enumerate() {
            let alone = Program::new(
                dynamic_linears(&[("x", w, output)]).1,
                ProgramOptions { threads: 1 },
            )
            .unwrap();
            let fed = if input == "x" { x.clone() } else { got[0].clone() };
            let want = alone.execute(std::slice::from_ref(&fed)).unwrap().remove(0);
            let bits = |t: &Tensor| {
                t.as_f32()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(&got[i]), bits(&want), "run {run}: {output}");
        }
    }
}
