//! A small detection network as PyTorch's ONNX exporter writes it (`dynamo=True`,
//! `optimize=False`): bias-free Conv given a zero bias computed at run time
//! (`Expand(CastLike(0, x), [C])`) followed by a standalone BatchNormalization, hardswish
//! written out as `x * clamp(x + 3, 0, 6) / 6` (CastLike bounds, Max, Min), HardSigmoid
//! squeeze-excite, Resize + ConvTranspose head, Sigmoid output; random weights with
//! BatchNormalization statistics re-estimated on real photos (`scripts/fixtures/detection.py`,
//! which needs torch and is never run by the tests).
//!
//! libxq's quantizer (default histogram observer, min/max, entropy) must fold every
//! BatchNormalization that follows a Conv or ConvTranspose before observing, and reach at least ONNX Runtime's
//! `quantize_static` SQNR against float on held-out photo crops, through the interpreter
//! (QDQ graph) and through the compiled int8 program.

// These tests call the 0.1 program API, deprecated since 0.2, on purpose.
#![allow(deprecated)]

mod common;
mod quant_common;

use quant_common::*;
use xq::delegate::{lower, PartitionMode};
use xq::interp::Interpreter;
use xq::ir::{Graph, Op, Tensor};
use xq::quant::{ObserverConfig, QuantConfig, Quantizer};
use xq::runtime::{Program, ProgramOptions};

/// ONNX Runtime 1.32 `quantize_static` on this fixture (QDQ, per-channel symmetric int8
/// weights, int8 asymmetric activations, after `quant_pre_process`), calibrated on the same
/// 16 crops and measured on the same 8, SQNR vs the float model (logits / output), as
/// `scripts/fixtures/detection.py` prints when it writes the fixture: MinMax 13.22 / 35.42 dB,
/// Entropy 13.22 / 35.42 dB (its default 128 bins leave one candidate: min/max), Percentile
/// 14.01 / 36.21 dB; Entropy with TensorRT's 2048 bins (libxq's entropy default) 9.24 /
/// 31.55 dB. The bar is ONNX Runtime's best, except for libxq's entropy observer, held to
/// ONNX Runtime's entropy calibration with the same bins.
const ORT_BEST_DB: (f64, f64) = (14.01, 36.21);
const ORT_ENTROPY_2048_DB: (f64, f64) = (9.24, 31.55);

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The network's inputs from int8 pixels (value - 128, N x 3 x H x W), one tensor per crop.
fn crops(file: &str) -> Vec<Tensor> {
    let t = xq::npy::read(fixtures().join("detection").join(file)).unwrap();
    let dims = t.dims().to_vec();
    let plane = dims[2] * dims[3];
    let pixels = t.as_i8().unwrap();
    pixels
        .chunks_exact(3 * plane)
        .map(|crop| {
            let x = crop
                .iter()
                .enumerate()
                .map(|(i, &p)| {
                    let c = i / plane;
                    ((f32::from(p) + 128.0) / 255.0 - MEAN[c]) / STD[c]
                })
                .collect();
            Tensor::from_f32(vec![1, 3, dims[2], dims[3]], x).unwrap()
        })
        .collect()
}

/// The input of the graph's Sigmoid: the detection logits.
fn logits_name(graph: &Graph) -> String {
    graph
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::Unary(xq::ir::op::UnaryOp::Sigmoid)))
        .expect("a Sigmoid output")
        .inputs[0]
        .clone()
}

/// Runs `interp` on `x`, returning (logits, output).
fn logits_and_output(interp: &Interpreter, logits: &str, x: &Tensor) -> (Vec<f32>, Vec<f32>) {
    let mut seen = None;
    let out = interp
        .run_observed(std::slice::from_ref(x), &mut |name, value| {
            if name == logits {
                seen = Some(value.as_f32().unwrap().to_vec());
            }
        })
        .unwrap();
    (seen.expect("logits computed"), out[0].as_f32().unwrap().to_vec())
}

#[test]
fn detection_net_quantizes_at_least_as_well_as_onnxruntime() {
    let graph = xq::onnx::load_file(fixtures().join("detection/detection.onnx")).unwrap();
    let calib = crops("detection_calib_pixels.npy");
    let evals = crops("detection_eval_pixels.npy");
    assert_eq!((calib.len(), evals.len()), (16, 8));
    let logits = logits_name(&graph);
    let float = Interpreter::new(&graph).unwrap();
    let reference: Vec<(Vec<f32>, Vec<f32>)> = evals
        .iter()
        .map(|x| logits_and_output(&float, &logits, x))
        .collect();
    let ref_logits: Vec<f32> = reference.iter().flat_map(|r| r.0.clone()).collect();
    let ref_out: Vec<f32> = reference.iter().flat_map(|r| r.1.clone()).collect();

    for (name, observer, (bar_logits, bar_out)) in [
        ("default (histogram)", None, ORT_BEST_DB),
        ("min/max", Some(ObserverConfig::MinMax), ORT_BEST_DB),
        ("entropy", Some(ObserverConfig::ENTROPY), ORT_ENTROPY_2048_DB),
    ] {
        let config = QuantConfig {
            observer: observer.unwrap_or(QuantConfig::default().observer),
            ..QuantConfig::default()
        };
        let mut q = Quantizer::new(Some(config)).unwrap();
        q.prepare(&graph).unwrap();
        // Every BatchNormalization after a Conv or ConvTranspose is folded before observing.
        let prepared = q.prepared_graph().unwrap();
        let bns: Vec<&str> = prepared
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::BatchNormalization { .. }))
            .map(|n| n.name.as_str())
            .collect();
        assert!(
            bns.is_empty(),
            "{name}: BatchNormalization left unfolded: {bns:?}"
        );
        for x in &calib {
            q.calibrate(std::slice::from_ref(x)).unwrap();
        }
        let qdq = q.convert().unwrap();
        let interp = Interpreter::new(&qdq).unwrap();
        let ours: Vec<(Vec<f32>, Vec<f32>)> = evals
            .iter()
            .map(|x| logits_and_output(&interp, &logits, x))
            .collect();
        let ours_logits: Vec<f32> = ours.iter().flat_map(|r| r.0.clone()).collect();
        let ours_out: Vec<f32> = ours.iter().flat_map(|r| r.1.clone()).collect();
        let sqnr_logits = sqnr_db(&ref_logits, &ours_logits);
        let sqnr_out = sqnr_db(&ref_out, &ours_out);

        let mut compiled = qdq.clone();
        xq::interp::simplify(&mut compiled).unwrap();
        let (spec, _) = lower(&compiled, PartitionMode::All).unwrap();
        let program = Program::new(spec, ProgramOptions { threads: 1 }).unwrap();
        let program_out: Vec<f32> = evals
            .iter()
            .flat_map(|x| {
                program.execute(std::slice::from_ref(x)).unwrap()[0]
                    .as_f32()
                    .unwrap()
                    .to_vec()
            })
            .collect();
        let sqnr_program = sqnr_db(&ref_out, &program_out);
        println!(
            "{name}: logits {sqnr_logits:.2} dB, output {sqnr_out:.2} dB, int8 program output \
             {sqnr_program:.2} dB (onnxruntime: {bar_logits} / {bar_out} dB)"
        );
        assert!(
            sqnr_logits >= bar_logits && sqnr_out >= bar_out,
            "{name}: logits {sqnr_logits:.2} dB, output {sqnr_out:.2} dB, below onnxruntime's \
             {bar_logits} / {bar_out} dB\n{}",
            q.report()
        );
        assert!(
            sqnr_program >= bar_out,
            "{name}: int8 program output {sqnr_program:.2} dB"
        );
    }
}

/// Owns the dims and bytes behind an `xq_tensor` descriptor.
struct CTensor {
    dims: Vec<i64>,
    data: Vec<u8>,
}

impl CTensor {
    fn new(dims: &[usize], values: &[f32]) -> CTensor {
        CTensor {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    fn descriptor(&mut self) -> xq::ffi::xq_tensor {
        xq::ffi::xq_tensor {
            dtype: xq::ffi::xq_dtype::XQ_DTYPE_F32 as i32,
            rank: self.dims.len(),
            dims: self.dims.as_mut_ptr(),
            data: self.data.as_mut_ptr() as *mut std::ffi::c_void,
            byte_length: self.data.len(),
        }
    }

    fn values(&self) -> Vec<f32> {
        self.data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

/// The same flow through the C API with the default recipe: load, quantize (calibrating on
/// one batch of all 16 crops), compile the QDQ model and execute the int8 program.
#[test]
fn detection_net_through_the_c_api() {
    use std::ptr::null_mut;
    use xq::ffi::boundary::last_error;
    use xq::ffi::*;

    let path = fixtures().join("detection/detection.onnx");
    let graph = xq::onnx::load_file(&path).unwrap();
    let float = Interpreter::new(&graph).unwrap();
    let calib = crops("detection_calib_pixels.npy");
    let evals = crops("detection_eval_pixels.npy");
    let batch: Vec<f32> = calib.iter().flat_map(|t| t.as_f32().unwrap().to_vec()).collect();
    let mut batch = CTensor::new(&[calib.len(), 3, 96, 96], &batch);
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let (mut reference, mut ours) = (Vec::new(), Vec::new());
    // SAFETY: every pointer is valid for its call; each handle is freed once at the end.
    unsafe {
        let mut model = null_mut();
        assert_eq!(
            xq_model_load_file(c_path.as_ptr(), &mut model),
            xq_status::XQ_OK,
            "{}",
            last_error()
        );
        let mut config = std::mem::MaybeUninit::uninit();
        assert_eq!(xq_quant_config_default(config.as_mut_ptr()), xq_status::XQ_OK);
        let mut q = null_mut();
        assert_eq!(xq_quantizer_new(config.as_ptr(), &mut q), xq_status::XQ_OK);
        assert_eq!(
            xq_quantizer_prepare(q, model),
            xq_status::XQ_OK,
            "{}",
            last_error()
        );
        let d = batch.descriptor();
        assert_eq!(xq_calibrate(q, &d, 1), xq_status::XQ_OK, "{}", last_error());
        let mut qdq = null_mut();
        assert_eq!(xq_convert(q, &mut qdq), xq_status::XQ_OK, "{}", last_error());
        let options = xq_program_options_default();
        let mut program = null_mut();
        assert_eq!(
            xq_program_compile(qdq, &options, &mut program),
            xq_status::XQ_OK,
            "{}",
            last_error()
        );
        for x in &evals {
            let mut input = CTensor::new(x.dims(), x.as_f32().unwrap());
            let mut output = CTensor::new(&[1, 4, 48, 48], &[0.0; 4 * 48 * 48]);
            let (i, mut o) = (input.descriptor(), output.descriptor());
            assert_eq!(
                xq_execute(program, &i, 1, &mut o, 1),
                xq_status::XQ_OK,
                "{}",
                last_error()
            );
            ours.extend(output.values());
            reference.extend(
                float.run(std::slice::from_ref(x)).unwrap()[0]
                    .as_f32()
                    .unwrap()
                    .to_vec(),
            );
        }
        xq_program_free(program);
        xq_model_free(qdq);
        xq_quantizer_free(q);
        xq_model_free(model);
    }
    let sqnr = sqnr_db(&reference, &ours);
    println!(
        "C API, default recipe: int8 program output {sqnr:.2} dB (onnxruntime: {} dB)",
        ORT_BEST_DB.1
    );
    assert!(sqnr >= ORT_BEST_DB.1, "C API: int8 program output {sqnr:.2} dB");
}
