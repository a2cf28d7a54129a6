//! The quantizer flow through the C API: prepare → calibrate → convert on the digits CNN,
//! progress reporting, the text report, and the misuse statuses.

mod common;
mod quant_common;

use common::c_api::*;
use quant_common::*;
use std::ffi::{c_void, CStr};
use std::ptr::null_mut;
use xq::ffi::boundary::last_error;
use xq::ffi::*;

/// Owns the dims and data behind an `xq_tensor` descriptor.
struct CTensor {
    dims: Vec<i64>,
    data: Vec<u8>,
    dtype: xq_dtype,
}

impl CTensor {
    fn f32(dims: &[usize], values: &[f32]) -> CTensor {
        CTensor {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            dtype: xq_dtype::XQ_DTYPE_F32,
        }
    }

    fn descriptor(&mut self) -> xq_tensor {
        xq_tensor {
            dtype: self.dtype as i32,
            rank: self.dims.len(),
            dims: self.dims.as_mut_ptr(),
            data: self.data.as_mut_ptr() as *mut c_void,
            byte_length: self.data.len(),
        }
    }
}

fn load_cnn() -> *mut xq_model {
    load_model_file(&fixtures().join("digits/digits_cnn.onnx"))
}

unsafe extern "C" fn record_progress(user: *mut c_void, done: usize, total: usize) {
    // SAFETY: the test passes a `Vec<(usize, usize)>` it owns for the quantizer's lifetime.
    let log = unsafe { &mut *(user as *mut Vec<(usize, usize)>) };
    log.push((done, total));
}

#[test]
fn digits_flow_through_the_c_api() {
    let train = read_npy_f32(&fixtures().join("digits/digits_train_x.npy"));
    let values = train.as_f32().unwrap();
    let model = load_cnn();
    let config = default_quant_config();
    let mut q = null_mut();
    let mut progress: Vec<(usize, usize)> = Vec::new();
    // SAFETY: every pointer is valid for its call; handles are freed once at the end.
    unsafe {
        assert_eq!(xq_quantizer_new(&config, &mut q), xq_status::XQ_OK);
        let user = &mut progress as *mut Vec<(usize, usize)> as *mut c_void;
        assert_eq!(
            xq_quantizer_set_progress(q, Some(record_progress), user, 300),
            xq_status::XQ_OK
        );
        assert_eq!(
            xq_quantizer_prepare(q, model),
            xq_status::XQ_OK,
            "{}",
            last_error()
        );
        for k in 0..3 {
            let batch = &values[k * 100 * 64..(k + 1) * 100 * 64];
            let mut t = CTensor::f32(&[100, 1, 8, 8], batch);
            let d = t.descriptor();
            assert_eq!(xq_calibrate(q, &d, 1), xq_status::XQ_OK, "{}", last_error());
        }
        let mut seen = 0usize;
        assert_eq!(xq_quantizer_samples_seen(q, &mut seen), xq_status::XQ_OK);
        assert_eq!(seen, 300);
        let mut report = std::ptr::null();
        assert_eq!(xq_quantizer_report(q, &mut report), xq_status::XQ_OK);
        let report = CStr::from_ptr(report).to_str().unwrap().to_string();
        assert!(
            report.contains("/0/Conv (Conv): quantized static: conv + fused activation"),
            "{report}"
        );
        assert!(report.contains("/2/Relu (Relu): fused into /0/Conv"), "{report}");
        assert!(
            report.contains("/5/MaxPool (MaxPool): quantized static: output shares"),
            "{report}"
        );
        let mut qdq = null_mut();
        assert_eq!(xq_convert(q, &mut qdq), xq_status::XQ_OK, "{}", last_error());
        // The converted model runs through the model API.
        let mut n = 0usize;
        assert_eq!(
            xq_model_input_count(qdq, &mut n),
            xq_status::XQ_OK,
            "{}",
            last_error()
        );
        assert_eq!(n, 1);
        let dir = tempfile::tempdir().unwrap();
        let path = c_path(&dir.path().join("qdq.onnx"));
        assert_eq!(
            xq_model_save_onnx(qdq, path.as_ptr()),
            xq_status::XQ_OK,
            "{}",
            last_error()
        );
        let saved = xq::onnx::load_file(dir.path().join("qdq.onnx")).unwrap();
        let q_nodes = saved
            .nodes
            .iter()
            .filter(|n| n.op.onnx_name() == "QuantizeLinear")
            .count();
        assert_eq!(q_nodes, 8);
        xq_model_free(qdq);
        xq_quantizer_free(q);
        xq_model_free(model);
    }
    assert_eq!(progress, vec![(100, 300), (200, 300), (300, 300)]);
}

#[test]
fn misuse_returns_specific_statuses() {
    let model = load_cnn();
    let config = default_quant_config();
    let mut q = null_mut();
    let sample = vec![0.5f32; 64];
    // SAFETY: every pointer is valid for its call; handles are freed once at the end.
    unsafe {
        assert_eq!(xq_quantizer_new(&config, &mut q), xq_status::XQ_OK);
        let mut t = CTensor::f32(&[1, 1, 8, 8], &sample);
        let good = t.descriptor();

        // Calibrate / convert before prepare.
        assert_eq!(xq_calibrate(q, &good, 1), xq_status::XQ_ERROR_INVALID_STATE);
        assert!(
            last_error().contains("before xq_quantizer_prepare"),
            "{}",
            last_error()
        );
        let mut out = null_mut();
        assert_eq!(xq_convert(q, &mut out), xq_status::XQ_ERROR_INVALID_STATE);
        assert!(out.is_null());

        assert_eq!(
            xq_quantizer_prepare(q, model),
            xq_status::XQ_OK,
            "{}",
            last_error()
        );
        // Convert with no calibration sample in static mode.
        assert_eq!(xq_convert(q, &mut out), xq_status::XQ_ERROR_INVALID_STATE);
        assert!(last_error().contains("needs calibration"), "{}", last_error());
        assert!(out.is_null());
        // Preparing twice, or changing scopes after prepare.
        assert_eq!(xq_quantizer_prepare(q, model), xq_status::XQ_ERROR_INVALID_STATE);
        assert_eq!(
            xq_quantizer_set_operator_type(q, c"Conv".as_ptr(), std::ptr::null()),
            xq_status::XQ_ERROR_INVALID_STATE
        );

        // Wrong shape, wrong dtype, wrong count, inconsistent descriptor.
        let mut wrong_shape = CTensor::f32(&[1, 1, 4, 16], &sample);
        let d = wrong_shape.descriptor();
        assert_eq!(xq_calibrate(q, &d, 1), xq_status::XQ_ERROR_SHAPE_MISMATCH);
        let mut wrong_dtype = CTensor {
            dims: vec![1, 1, 8, 8],
            data: vec![0u8; 64],
            dtype: xq_dtype::XQ_DTYPE_I8,
        };
        let d = wrong_dtype.descriptor();
        assert_eq!(xq_calibrate(q, &d, 1), xq_status::XQ_ERROR_DTYPE_MISMATCH);
        let two = [good, good];
        assert_eq!(
            xq_calibrate(q, two.as_ptr(), 2),
            xq_status::XQ_ERROR_INVALID_ARGUMENT
        );
        let mut short = good;
        short.byte_length -= 4;
        assert_eq!(xq_calibrate(q, &short, 1), xq_status::XQ_ERROR_INVALID_ARGUMENT);
        assert_eq!(
            xq_calibrate(q, std::ptr::null(), 1),
            xq_status::XQ_ERROR_NULL_POINTER
        );
        assert_eq!(
            xq_calibrate(null_mut(), &good, 1),
            xq_status::XQ_ERROR_NULL_POINTER
        );
        let mut seen = 7usize;
        assert_eq!(xq_quantizer_samples_seen(q, &mut seen), xq_status::XQ_OK);
        assert_eq!(seen, 0, "failed calls count no samples");

        // After one good sample, convert works.
        assert_eq!(xq_calibrate(q, &good, 1), xq_status::XQ_OK, "{}", last_error());
        assert_eq!(xq_convert(q, &mut out), xq_status::XQ_OK, "{}", last_error());
        assert!(!out.is_null());
        xq_model_free(out);
        xq_quantizer_free(q);
        xq_model_free(model);
    }
}

#[test]
fn dynamic_convert_needs_no_calibration() {
    let path = c_path(&fixtures().join("digits/digits_mlp.onnx"));
    let mut config = default_quant_config();
    config.activation_mode = XQ_ACTIVATIONS_DYNAMIC;
    // SAFETY: every pointer is valid for its call; handles are freed once at the end.
    unsafe {
        let mut model = null_mut();
        assert_eq!(xq_model_load_file(path.as_ptr(), &mut model), xq_status::XQ_OK);
        let mut q = null_mut();
        assert_eq!(xq_quantizer_new(&config, &mut q), xq_status::XQ_OK);
        assert_eq!(
            xq_quantizer_prepare(q, model),
            xq_status::XQ_OK,
            "{}",
            last_error()
        );
        let mut out = null_mut();
        assert_eq!(xq_convert(q, &mut out), xq_status::XQ_OK, "{}", last_error());
        // The converted model runs in the float interpreter through the C API.
        let input = vec![1.0f32; 64];
        let mut t = CTensor::f32(&[1, 1, 8, 8], &input);
        let d = t.descriptor();
        let mut dims = [0i64; 4];
        let mut logits = [0f32; 10];
        let mut o = xq_tensor {
            dtype: 0,
            rank: 4,
            dims: dims.as_mut_ptr(),
            data: logits.as_mut_ptr() as *mut c_void,
            byte_length: 40,
        };
        assert_eq!(
            xq_model_run_float(out, &d, 1, &mut o, 1),
            xq_status::XQ_OK,
            "{}",
            last_error()
        );
        assert_eq!(&dims[..o.rank], &[1, 10]);
        assert!(logits.iter().all(|v| v.is_finite()) && logits.iter().any(|&v| v != 0.0));
        xq_model_free(out);
        xq_quantizer_free(q);
        xq_model_free(model);
    }
}
