//! The model C API, called through its `extern "C"` functions as a C host would.

mod common;

mod graph_common;

use common::c_api::*;
use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};
use xq::ffi::*;

/// Builds y = relu(x·W + b), s = softmax(y) through the C builder.
unsafe fn build_mlp() -> *mut xq_model {
    let mut m = null_mut();
    // SAFETY: every pointer passed is a live local (strings NUL-terminated, arrays of the
    // counts given) or the handle created here.
    unsafe {
        ok(xq_model_new(c"mlp".as_ptr(), &mut m));
        let dims = [-1i64, 2];
        ok(xq_model_add_input(
            m,
            c"x".as_ptr(),
            xq_dtype::XQ_DTYPE_F32 as i32,
            dims.as_ptr(),
            2,
        ));
        let (mut wd, mut w) = ([2i64, 3], [1.0f32, -1.0, 0.5, 2.0, 0.0, -0.5]);
        ok(xq_model_add_constant(
            m,
            c"W".as_ptr(),
            &f32_tensor(&mut wd, &mut w),
        ));
        let (mut bd, mut b) = ([3i64], [0.5f32, 0.25, -1.0]);
        ok(xq_model_add_constant(
            m,
            c"b".as_ptr(),
            &f32_tensor(&mut bd, &mut b),
        ));
        let add_node = |op: &CStr, name: &CStr, ins: &[&str], outs: &[&str], attrs: &[xq_attribute]| {
            let (_i, ip) = cstrs(ins);
            let (_o, op_) = cstrs(outs);
            ok(xq_model_add_node(
                m,
                op.as_ptr(),
                name.as_ptr(),
                ip.as_ptr(),
                ip.len(),
                op_.as_ptr(),
                op_.len(),
                attrs.as_ptr(),
                attrs.len(),
            ));
        };
        add_node(c"MatMul", c"mm", &["x", "W"], &["m"], &[]);
        add_node(c"Add", c"bias", &["m", "b"], &["a"], &[]);
        add_node(c"Relu", c"relu", &["a"], &["y"], &[]);
        let axis = xq_attribute {
            name: c"axis".as_ptr(),
            r#type: xq_attr_type::XQ_ATTR_INT as i32,
            i: -1,
            f: 0.0,
            ints: null(),
            floats: null(),
            count: 0,
            s: null(),
        };
        add_node(c"Softmax", c"softmax", &["y"], &["s"], &[axis]);
        ok(xq_model_add_output(m, c"y".as_ptr()));
        ok(xq_model_add_output(m, c"s".as_ptr()));
    }
    m
}

fn expected(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (w, b) = ([1.0f32, -1.0, 0.5, 2.0, 0.0, -0.5], [0.5f32, 0.25, -1.0]);
    let mut y = Vec::new();
    let mut s = Vec::new();
    for row in x.chunks(2) {
        let r: Vec<f32> = (0..3)
            .map(|j| (row[0] * w[j] + row[1] * w[3 + j] + b[j]).max(0.0))
            .collect();
        let e: Vec<f32> = r.iter().map(|v| v.exp()).collect();
        let sum: f32 = e.iter().sum();
        s.extend(e.iter().map(|v| v / sum));
        y.extend(r);
    }
    (y, s)
}

unsafe fn run(m: *mut xq_model, x: &mut [f32]) -> (Vec<f32>, Vec<f32>, Vec<i64>) {
    let batch = x.len() as i64 / 2;
    let mut xd = [batch, 2];
    let input = f32_tensor(&mut xd, x);
    let (mut yd, mut sd) = ([0i64; 4], [0i64; 4]);
    let (mut y, mut s) = (vec![f32::NAN; 64], vec![f32::NAN; 64]);
    let mut outs = [f32_tensor(&mut yd, &mut y), f32_tensor(&mut sd, &mut s)];
    // SAFETY: `m` is a live handle (caller's contract); the descriptors point to live local
    // buffers of the sizes they state.
    ok(unsafe { xq_model_run_float(m, &input, 1, outs.as_mut_ptr(), 2) });
    let n = outs[0].byte_length / 4;
    assert_eq!(outs[0].rank, 2);
    assert_eq!(outs[0].dtype, xq_dtype::XQ_DTYPE_F32 as i32);
    (y[..n].to_vec(), s[..n].to_vec(), yd[..2].to_vec())
}

fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-6 + 1e-5 * y.abs(), "{a:?} vs {b:?}");
    }
}

#[test]
fn build_inspect_run_fix_and_round_trip() {
    // SAFETY: handles come from the C API and are freed once; every other pointer is a live
    // local of the size passed with it.
    unsafe {
        let m = build_mlp();
        let (mut n_in, mut n_out) = (0, 0);
        ok(xq_model_input_count(m, &mut n_in));
        ok(xq_model_output_count(m, &mut n_out));
        assert_eq!((n_in, n_out), (1, 2));
        let mut info = xq_value_info {
            name: null(),
            dtype: xq_dtype::XQ_DTYPE_BOOL,
            rank: 0,
        };
        ok(xq_model_input(m, 0, &mut info));
        assert_eq!(CStr::from_ptr(info.name).to_str().unwrap(), "x");
        assert_eq!((info.dtype, info.rank), (xq_dtype::XQ_DTYPE_F32, 2));
        let (mut size, mut sym) = (0i64, null());
        ok(xq_model_input_dim(m, 0, 0, &mut size, &mut sym));
        assert_eq!(size, -1);
        assert_eq!(CStr::from_ptr(sym).to_str().unwrap(), "x_dim0");
        ok(xq_model_input_dim(m, 0, 1, &mut size, &mut sym));
        assert_eq!((size, sym), (2, null()));

        let mut x = [1.0f32, 2.0, -3.0, 0.5, 0.25, -0.75];
        let (y, s, yd) = run(m, &mut x);
        let (ey, es) = expected(&x);
        assert_eq!(yd, vec![3, 3]);
        assert_close(&y, &ey);
        assert_close(&s, &es);

        // Fixing the batch makes output shapes known.
        let dims = [3i64, 2];
        ok(xq_model_fix_input_shape(m, c"x".as_ptr(), dims.as_ptr(), 2));
        ok(xq_model_output_dim(m, 1, 0, &mut size, &mut sym));
        assert_eq!(size, 3);
        ok(xq_model_output_dim(m, 1, 1, &mut size, &mut sym));
        assert_eq!(size, 3);

        // Serialise (size query, then copy), reload from memory and from a file.
        let mut needed = 0usize;
        ok(xq_model_serialize_onnx(m, null_mut(), 0, &mut needed));
        let mut buf = vec![0u8; needed];
        ok(xq_model_serialize_onnx(
            m,
            buf.as_mut_ptr() as *mut c_void,
            buf.len(),
            &mut needed,
        ));
        let mut m2 = null_mut();
        ok(xq_model_load_buffer(
            buf.as_ptr() as *const c_void,
            buf.len(),
            &mut m2,
        ));
        let (y2, s2, _) = run(m2, &mut x);
        assert_close(&y2, &ey);
        assert_close(&s2, &es);
        let dir = tempfile::tempdir().unwrap();
        let path = c_path(&dir.path().join("mlp.onnx"));
        ok(xq_model_save_onnx(m, path.as_ptr()));
        let mut m3 = null_mut();
        ok(xq_model_load_file(path.as_ptr(), &mut m3));
        let (y3, _, _) = run(m3, &mut x);
        assert_close(&y3, &ey);
        xq_model_free(m);
        xq_model_free(m2);
        xq_model_free(m3);
        xq_model_free(null_mut());
    }
}

#[test]
fn loaded_model_runs_and_reports_symbolic_dims() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models");
    let x = graph_common::read_tensor(&dir.join("tiny_cnn_input.pb")).unwrap();
    let want = graph_common::read_tensor(&dir.join("tiny_cnn_output.pb")).unwrap();
    let path = c_path(&dir.join("tiny_cnn.onnx"));
    // SAFETY: handles come from the C API and are freed once; every other pointer is a live
    // local of the size passed with it.
    unsafe {
        let mut m = null_mut();
        ok(xq_model_load_file(path.as_ptr(), &mut m));
        let (mut size, mut sym) = (0i64, null());
        ok(xq_model_input_dim(m, 0, 0, &mut size, &mut sym));
        assert_eq!((size, CStr::from_ptr(sym).to_str().unwrap()), (-1, "N"));
        let mut xd = [2i64, 3, 8, 8];
        let mut xv = x.as_f32().unwrap().to_vec();
        let input = f32_tensor(&mut xd, &mut xv);
        let (mut yd, mut y) = ([0i64; 2], vec![0f32; 10]);
        let mut out = f32_tensor(&mut yd, &mut y);
        ok(xq_model_run_float(m, &input, 1, &mut out, 1));
        let got = xq::ir::Tensor::from_f32(vec![2, 5], y).unwrap();
        graph_common::compare(&got, &want, 1e-5, 1e-6).unwrap();
        xq_model_free(m);
    }
}

#[test]
fn misuse_returns_errors_and_leaves_outputs_alone() {
    // SAFETY: the misuse is in values (NULL, sizes, types) the C API checks; every non-NULL
    // pointer is a live handle or a live local of the size passed with it.
    unsafe {
        let m = build_mlp();
        let mut n = 7usize;
        assert_eq!(
            xq_model_input_count(null_mut(), &mut n),
            xq_status::XQ_ERROR_NULL_POINTER
        );
        assert_eq!(n, 7);
        // Output buffer too small: error, and nothing written.
        let mut x = [1.0f32, 2.0];
        let mut xd = [1i64, 2];
        let input = f32_tensor(&mut xd, &mut x);
        let (mut yd, mut y) = ([0i64; 2], [42.0f32; 2]);
        let (mut sd, mut s) = ([0i64; 2], [42.0f32; 3]);
        let mut outs = [f32_tensor(&mut yd, &mut y), f32_tensor(&mut sd, &mut s)];
        assert_eq!(
            xq_model_run_float(m, &input, 1, outs.as_mut_ptr(), 2),
            xq_status::XQ_ERROR_INVALID_ARGUMENT
        );
        assert!(
            xq::ffi::boundary::last_error().contains("needs"),
            "{}",
            xq::ffi::boundary::last_error()
        );
        assert_eq!(s, [42.0; 3]);
        assert_eq!(y, [42.0; 2]);
        // Inconsistent byte_length.
        let mut bad = input;
        bad.byte_length = 4;
        assert_eq!(
            xq_model_run_float(m, &bad, 1, outs.as_mut_ptr(), 2),
            xq_status::XQ_ERROR_INVALID_ARGUMENT
        );
        // Unknown dtype number, absurd rank.
        let mut weird = input;
        weird.dtype = 99;
        assert_eq!(
            xq_model_run_float(m, &weird, 1, outs.as_mut_ptr(), 2),
            xq_status::XQ_ERROR_INVALID_ARGUMENT
        );
        let dims = [1i64; 17];
        assert_eq!(
            xq_model_add_input(m, c"z".as_ptr(), 1, dims.as_ptr(), 17),
            xq_status::XQ_ERROR_INVALID_ARGUMENT
        );
        // Unsupported op type and a duplicate node name.
        let (_i, ip) = cstrs(&["x"]);
        let (_o, op) = cstrs(&["q"]);
        assert_eq!(
            xq_model_add_node(
                m,
                c"LSTM".as_ptr(),
                c"e".as_ptr(),
                ip.as_ptr(),
                1,
                op.as_ptr(),
                1,
                null(),
                0
            ),
            xq_status::XQ_ERROR_UNSUPPORTED
        );
        assert_eq!(
            xq_model_add_node(
                m,
                c"Relu".as_ptr(),
                c"relu".as_ptr(),
                ip.as_ptr(),
                1,
                op.as_ptr(),
                1,
                null(),
                0
            ),
            xq_status::XQ_ERROR_INVALID_ARGUMENT
        );
        // A node reading an undefined tensor makes the model invalid when next used.
        let (_i2, ip2) = cstrs(&["nowhere"]);
        ok(xq_model_add_node(
            m,
            c"Relu".as_ptr(),
            c"dangling".as_ptr(),
            ip2.as_ptr(),
            1,
            op.as_ptr(),
            1,
            null(),
            0,
        ));
        assert_eq!(xq_model_input_count(m, &mut n), xq_status::XQ_ERROR_INVALID_MODEL);
        assert!(xq::ffi::boundary::last_error().contains("nowhere"));
        xq_model_free(m);
        // Garbage bytes are a corrupt file; a missing file is an I/O error.
        let mut h = null_mut();
        let junk = [0xFFu8; 16];
        assert_eq!(
            xq_model_load_buffer(junk.as_ptr() as *const c_void, 16, &mut h),
            xq_status::XQ_ERROR_CORRUPT_FILE
        );
        assert!(h.is_null());
        assert_eq!(
            xq_model_load_file(c"/nonexistent/model.onnx".as_ptr(), &mut h),
            xq_status::XQ_ERROR_IO
        );
    }
}
