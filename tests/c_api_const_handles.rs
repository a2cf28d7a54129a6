//! Read-only queries take `const` handles (0.2) and may run concurrently: four threads query
//! and run one model at once, the first of them preparing it.

mod common;

use common::c_api::*;
use std::ffi::{c_void, CStr, CString};
use std::ptr::{null, null_mut};
use xq::ffi::*;

/// A model handle shared by threads that only query it.
#[derive(Clone, Copy)]
struct Shared(*const xq_model);
// SAFETY: the model is only queried through `const` handles, which libxq documents as safe
// to call concurrently; nobody modifies or frees it while the threads run.
unsafe impl Send for Shared {}

/// `x` (f32, [2, batch]) → Relu → `y`, declared but not yet prepared.
fn relu_model() -> *mut xq_model {
    let c = |s: &str| CString::new(s).unwrap();
    let mut m = null_mut();
    // SAFETY: NULL name is allowed; writable out.
    ok(unsafe { xq_model_new(null(), &mut m) });
    let dims = [2i64, -1];
    // SAFETY: live model; NUL-terminated name; `dims` holds 2 values.
    ok(unsafe {
        xq_model_add_input(
            m,
            c("x").as_ptr(),
            xq_dtype::XQ_DTYPE_F32 as i32,
            dims.as_ptr(),
            2,
        )
    });
    let (x, y) = (c("x"), c("y"));
    // SAFETY: live model; arrays hold one NUL-terminated string each.
    ok(unsafe {
        xq_model_add_node(
            m,
            c("Relu").as_ptr(),
            c("relu").as_ptr(),
            [x.as_ptr()].as_ptr(),
            1,
            [y.as_ptr()].as_ptr(),
            1,
            null(),
            0,
        )
    });
    // SAFETY: live model; NUL-terminated name.
    ok(unsafe { xq_model_add_output(m, y.as_ptr()) });
    m
}

fn query_and_run(model: Shared, seed: usize) {
    let m = model.0;
    for round in 0..50 {
        let mut info = xq_value_info {
            name: null(),
            dtype: xq_dtype::XQ_DTYPE_F32,
            rank: 0,
        };
        // SAFETY: live model; writable out.
        ok(unsafe { xq_model_input(m, 0, &mut info) });
        // SAFETY: valid while the model lives.
        assert_eq!(unsafe { CStr::from_ptr(info.name) }.to_str().unwrap(), "x");
        let (mut size, mut symbol) = (0i64, null());
        // SAFETY: live model; writable outs.
        ok(unsafe { xq_model_input_dim(m, 0, 1, &mut size, &mut symbol) });
        assert_eq!(size, -1);
        // SAFETY: a symbolic dim's name is valid while the model lives.
        assert_eq!(unsafe { CStr::from_ptr(symbol) }.to_str().unwrap(), "x_dim1");
        let mut count = 0;
        // SAFETY: live model; writable out.
        ok(unsafe { xq_model_output_count(m, &mut count) });
        assert_eq!(count, 1);

        let v = (seed * 100 + round) as f32;
        let (mut xd, mut x) = ([2i64, 2], vec![-v, v, 1.0 - v, v + 0.5]);
        let input = xq_tensor {
            dtype: xq_dtype::XQ_DTYPE_F32 as i32,
            rank: 2,
            dims: xd.as_mut_ptr(),
            data: x.as_mut_ptr() as *mut c_void,
            byte_length: 16,
        };
        let (mut yd, mut y) = ([0i64; 2], vec![f32::NAN; 4]);
        let mut out = xq_tensor {
            dtype: xq_dtype::XQ_DTYPE_F32 as i32,
            rank: 2,
            dims: yd.as_mut_ptr(),
            data: y.as_mut_ptr() as *mut c_void,
            byte_length: 16,
        };
        // SAFETY: live model; descriptors point to live buffers of the stated sizes.
        ok(unsafe { xq_model_run_float(m, &input, 1, &mut out, 1) });
        let want: Vec<f32> = x.iter().map(|&a| a.max(0.0)).collect();
        assert_eq!((y, yd), (want, [2, 2]));
        let mut bytes = 0;
        // SAFETY: live model; writable out (size query only).
        ok(unsafe { xq_model_serialize_onnx(m, null_mut(), 0, &mut bytes) });
        assert!(bytes > 0);
    }
}

#[test]
fn const_queries_run_concurrently_on_one_model() {
    let m = relu_model();
    let shared = Shared(m);
    let threads: Vec<_> = (0..4)
        .map(|t| std::thread::spawn(move || query_and_run(shared, t)))
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // SAFETY: live model, no thread uses it any more.
    unsafe { xq_model_free(m) };
}

/// `xq_quantizer_report` takes a `const` quantizer; while the report does not change, every
/// call returns the same string, so an earlier pointer stays valid.
#[test]
fn quantizer_report_on_a_const_handle_keeps_its_string() {
    let mut q = null_mut();
    // SAFETY: all-zero bytes are a valid xq_quant_config (plain integers and a float).
    let mut config: xq_quant_config = unsafe { std::mem::zeroed() };
    // SAFETY: writable config.
    ok(unsafe { xq_quant_config_default(&mut config) });
    // SAFETY: readable config; writable out.
    ok(unsafe { xq_quantizer_new(&config, &mut q) });
    let m = relu_model();
    let cq: *const xq_quantizer = q;
    let (mut first, mut second) = (null(), null());
    // SAFETY: live quantizer; writable out.
    ok(unsafe { xq_quantizer_report(cq, &mut first) });
    // SAFETY: live handles; the model is only read.
    ok(unsafe { xq_quantizer_prepare(q, m as *const xq_model) });
    // SAFETY: live quantizer; writable outs.
    ok(unsafe { xq_quantizer_report(cq, &mut first) });
    // SAFETY: as above.
    ok(unsafe { xq_quantizer_report(cq, &mut second) });
    assert_eq!(first, second);
    // SAFETY: valid until the report changes.
    let text = unsafe { CStr::from_ptr(first) }.to_string_lossy();
    assert!(!text.contains("not prepared"), "{text}");
    // SAFETY: live handles, freed once.
    unsafe {
        xq_quantizer_free(q);
        xq_model_free(m);
    }
}
