//! Regression tests of reported bugs, called through the C API (and the `xq` tool) as users
//! reach them. Fixtures: tests/fixtures/regressions (written by
//! scripts/fixtures/make_regressions.py).

// These tests call the 0.1 program API, deprecated since 0.2, on purpose.
#![allow(deprecated)]

mod common;

use common::c_api::*;
use std::ffi::{c_void, CStr};
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};
use xq::ffi::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/regressions")
        .join(name)
}

fn load_model(name: &str) -> *mut xq_model {
    load_model_file(&fixture(name))
}

fn compile(m: *mut xq_model, mode: i32) -> Result<*mut xq_program, (xq_status, String)> {
    let mut opts = xq_program_options_default();
    opts.threads = 1;
    opts.partition_mode = mode;
    let mut p = null_mut();
    // SAFETY: live model, readable options, writable out.
    let s = unsafe { xq_program_compile(m, &opts, &mut p) };
    if s == xq_status::XQ_OK {
        Ok(p)
    } else {
        Err((s, xq::ffi::boundary::last_error()))
    }
}

/// Executes a one-input, one-output program; returns the output and its dims.
fn execute(p: *const xq_program, dims: &[i64], x: &[f32]) -> Result<(Vec<f32>, Vec<i64>), String> {
    let (mut xd, mut xv) = (dims.to_vec(), x.to_vec());
    let input = f32_tensor(&mut xd, &mut xv);
    let (mut yd, mut y) = ([0i64; 8], vec![f32::NAN; 1 << 16]);
    let mut out = f32_tensor(&mut yd, &mut y);
    // SAFETY: live program; descriptors point to live buffers of the stated sizes.
    let s = unsafe { xq_execute(p, &input, 1, &mut out, 1) };
    if s != xq_status::XQ_OK {
        return Err(xq::ffi::boundary::last_error());
    }
    let (rank, n) = (out.rank, out.byte_length / 4);
    Ok((y[..n].to_vec(), yd[..rank].to_vec()))
}

fn sample(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / (1u32 << 24) as f32
                * 4.0
                - 2.0
        })
        .collect()
}

/// Bug: a float program whose opset < 13 Softmax is exported as several ONNX nodes ran in
/// memory but failed after save → load with "internal error: node ... ran before its inputs".
#[test]
fn float_program_with_legacy_softmax_runs_the_same_after_save_and_load() {
    let m = load_model("legacy_softmax.onnx");
    let p = compile(m, XQ_PARTITION_NONE).unwrap();
    let x = sample(108, 1);
    let (want, dims) = execute(p, &[1, 3, 6, 6], &x).unwrap();
    assert_eq!(dims, [1, 72]);
    assert!((want.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    let dir = tempfile::tempdir().unwrap();
    let path = c_path(&dir.path().join("legacy_softmax.xq"));
    // SAFETY: live program, valid path.
    ok(unsafe { xq_program_save(p, path.as_ptr()) });
    let mut loaded = null_mut();
    // SAFETY: valid path, NULL options, writable out.
    ok(unsafe { xq_program_load_file(path.as_ptr(), null(), &mut loaded) });
    let (got, got_dims) = execute(loaded, &[1, 3, 6, 6], &x).unwrap();
    assert_eq!((got, got_dims), (want, dims));
    // SAFETY: live handles, freed once.
    unsafe {
        xq_program_free(loaded);
        xq_program_free(p);
        xq_model_free(m);
    }
}

/// A program file whose steps are out of order (or name nodes it does not hold) is refused
/// at load with a corrupt-file error, not an internal error at execution.
#[test]
fn program_file_with_steps_out_of_order_is_refused_clearly() {
    use xq::program::StepSpec;
    let graph = xq::onnx::load_file(fixture("legacy_softmax.onnx")).unwrap();
    let (spec, _) = xq::delegate::lower(&graph, xq::delegate::PartitionMode::None).unwrap();
    let interp: Vec<usize> = (0..spec.steps.len())
        .filter(|&i| matches!(spec.steps[i], StepSpec::Interp { .. }))
        .collect();
    assert!(interp.len() >= 2);
    let mut swapped = spec.clone();
    swapped.steps.swap(interp[0], interp[1]);
    let mut unknown = spec.clone();
    unknown.steps[interp[0]] = StepSpec::Interp {
        node: "nobody".into(),
    };
    let mut no_output = spec.clone();
    no_output.steps.pop();
    for (what, bad) in [
        ("swapped", swapped),
        ("unknown node", unknown),
        ("no output", no_output),
    ] {
        let bytes = xq::format::program_file::to_bytes(&bad).unwrap();
        let mut p = null_mut();
        // SAFETY: readable buffer of `bytes.len()` bytes, NULL options, writable out.
        let s =
            unsafe { xq_program_load_buffer(bytes.as_ptr() as *const c_void, bytes.len(), null(), &mut p) };
        let msg = fails(s, xq_status::XQ_ERROR_CORRUPT_FILE);
        assert!(msg.contains("invalid program"), "{what}: {msg}");
        assert!(p.is_null());
    }
}

/// Bug: a dim_value of -1 was refused, and a `?` dim_param reused for different dims was
/// bound to one size. Each is now a fresh unknown dim.
#[test]
fn unknown_dims_written_as_minus_one_or_question_mark_are_each_fresh() {
    let m = load_model("dynamic_dims.onnx");
    let mut symbols = Vec::new();
    for axis in [2, 3] {
        let (mut size, mut symbol) = (0i64, null());
        // SAFETY: live model, writable outputs.
        ok(unsafe { xq_model_input_dim(m, 0, axis, &mut size, &mut symbol) });
        assert_eq!(size, -1);
        // SAFETY: a symbol valid while the model lives.
        symbols.push(unsafe { CStr::from_ptr(symbol) }.to_str().unwrap().to_string());
    }
    assert_ne!(symbols[0], symbols[1]);
    let dims = [1i64, 3, 48, 192];
    // SAFETY: live model, valid name, `dims` holds 4 values.
    ok(unsafe { xq_model_fix_input_shape(m, c"x".as_ptr(), dims.as_ptr(), 4) });
    let p = compile(m, XQ_PARTITION_ALL).unwrap();
    let (y, ydims) = execute(p, &dims, &sample(3 * 48 * 192, 2)).unwrap();
    assert_eq!(ydims, [1, 4, 48, 192]);
    assert!(y.iter().all(|v| v.is_finite() && *v >= 0.0));
    // SAFETY: live handles, freed once.
    unsafe {
        xq_program_free(p);
        xq_model_free(m);
    }
}

fn read_npy_f32(path: &Path) -> Vec<f32> {
    xq::npy::read(path).unwrap().to_f32_vec().unwrap()
}

/// Bug: weights given as Constant → QuantizeLinear → DequantizeLinear (ONNX Runtime
/// quantize_static of a model whose weights are Constant nodes) were refused as non-constant
/// weights, and the compiled program failed at execution with "tensor ... missing".
#[test]
fn constant_weights_behind_quantize_linear_are_weights_and_programs_run() {
    let x = read_npy_f32(&fixture("constant_qdq_input.npy"));
    let want = read_npy_f32(&fixture("constant_qdq_float.npy"));
    for (name, delegated) in [("constant_qdq_sym.onnx", true), ("constant_qdq.onnx", false)] {
        let m = load_model(name);
        let p = compile(m, XQ_PARTITION_ALL).unwrap();
        let mut report = null();
        // SAFETY: live program, writable out.
        ok(unsafe { xq_program_report(p, &mut report) });
        // SAFETY: valid while the program lives.
        let report = unsafe { CStr::from_ptr(report) }.to_string_lossy().into_owned();
        assert!(!report.contains("non-constant weight"), "{name}: {report}");
        if delegated {
            assert!(report.contains("2 compute node(s) delegated"), "{name}: {report}");
        } else {
            // Per-tensor weights with nonzero zero points: interpreted, for a stated reason.
            assert!(report.contains("zero point is not int8 zero"), "{name}: {report}");
        }
        let (y, dims) = execute(p, &[1, 3, 8, 8], &x).unwrap();
        assert_eq!(dims, [1, 4, 8, 8]);
        let peak = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        let err = y.iter().zip(&want).fold(0f32, |a, (g, w)| a.max((g - w).abs()));
        assert!(err < 0.05 * peak, "{name}: max error {err} of peak {peak}");
        // SAFETY: live handles, freed once.
        unsafe {
            xq_program_free(p);
            xq_model_free(m);
        }
    }
}

/// Bug: an opset-10 Resize node without inputs panicked in the importer (a caught panic,
/// XQ_ERROR_INTERNAL).
#[test]
fn resize10_without_inputs_is_a_clear_load_error() {
    let mut m = null_mut();
    let path = c_path(&fixture("resize10_no_input.onnx"));
    // SAFETY: valid path, writable out.
    let msg = fails(
        unsafe { xq_model_load_file(path.as_ptr(), &mut m) },
        xq_status::XQ_ERROR_INVALID_MODEL,
    );
    assert!(msg.contains("Resize") && msg.contains("input"), "{msg}");
    assert!(m.is_null());
}

/// Bug: `xq run` on an .npy with no samples panicked (remainder by zero).
#[test]
fn cli_run_with_zero_samples_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("empty.npy");
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1, 3, 6, 6), }";
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((h.len() as u16).to_le_bytes());
    bytes.extend(h.as_bytes());
    std::fs::write(&npy, bytes).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xq"))
        .arg("run")
        .arg(fixture("legacy_softmax.onnx"))
        .arg("--input")
        .arg(&npy)
        .args(["--threads", "1", "--runs", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("holds no samples"), "{stderr}");
}

/// Bug: compiling with unfixed input dims succeeded and delegated nothing, without saying
/// why; an empty model compiled.
#[test]
fn compile_refuses_unfixed_input_dims_and_empty_models() {
    let m = load_model("dynamic_dims.onnx");
    let (s, msg) = compile(m, XQ_PARTITION_ALL).unwrap_err();
    assert_eq!(s, xq_status::XQ_ERROR_INVALID_STATE, "{msg}");
    for part in [
        "input `x`",
        "dim 2",
        "xq_model_fix_input_shape",
        "--shape",
        "XQ_PARTITION_NONE",
    ] {
        assert!(msg.contains(part), "{part}: {msg}");
    }
    // The interpreter runs any size: without delegation the program compiles and runs.
    let p = compile(m, XQ_PARTITION_NONE).unwrap();
    let (_, dims) = execute(p, &[1, 3, 5, 7], &sample(105, 3)).unwrap();
    assert_eq!(dims, [1, 4, 5, 7]);
    // SAFETY: live handles, freed once.
    unsafe {
        xq_program_free(p);
        xq_model_free(m);
    }

    let mut empty = null_mut();
    // SAFETY: valid name, writable out.
    ok(unsafe { xq_model_new(c"empty".as_ptr(), &mut empty) });
    for mode in [XQ_PARTITION_ALL, XQ_PARTITION_NONE] {
        let (s, _) = compile(empty, mode).unwrap_err();
        let msg = fails(s, xq_status::XQ_ERROR_INVALID_MODEL);
        assert!(msg.contains("nothing to compile"), "{msg}");
    }
    // SAFETY: live handle, freed once.
    unsafe { xq_model_free(empty) };
}

/// Bug: the program I/O queries accepted an `output` selector other than 0 or 1.
#[test]
fn program_io_queries_reject_selectors_and_indices_out_of_range() {
    let m = load_model("legacy_softmax.onnx");
    let p = compile(m, XQ_PARTITION_NONE).unwrap();
    let mut n = 0usize;
    for output in [0, 1] {
        // SAFETY: live program, writable out.
        ok(unsafe { xq_program_io_count(p, output, &mut n) });
        assert_eq!(n, 1);
    }
    for output in [2, -1] {
        n = 7;
        // SAFETY: as above.
        let msg = fails(
            unsafe { xq_program_io_count(p, output, &mut n) },
            xq_status::XQ_ERROR_INVALID_ARGUMENT,
        );
        assert!(msg.contains("output"), "{msg}");
        assert_eq!(n, 7, "written on failure");
    }
    let (mut name, mut dtype, mut dims, mut rank) = (null(), xq_dtype::XQ_DTYPE_F32, [0i64; 8], 0usize);
    for (output, index) in [(2, 0), (1, 1), (0, 1), (-3, 0)] {
        // SAFETY: live program; outputs writable, `dims` has room for 8.
        fails(
            unsafe {
                xq_program_io_info(
                    p,
                    output,
                    index,
                    &mut name,
                    &mut dtype,
                    dims.as_mut_ptr(),
                    8,
                    &mut rank,
                )
            },
            xq_status::XQ_ERROR_INVALID_ARGUMENT,
        );
    }
    let (mut scale, mut zp) = (0f32, 0i32);
    // SAFETY: live program, writable outputs.
    let msg = fails(
        unsafe { xq_program_io_qparams(p, 5, 0, &mut scale, &mut zp) },
        xq_status::XQ_ERROR_INVALID_ARGUMENT,
    );
    assert!(msg.contains("output"), "{msg}");
    // SAFETY: live handles, freed once.
    unsafe {
        xq_program_free(p);
        xq_model_free(m);
    }
}

/// A QuantizeLinear of a constant left in the graph (not simplified) is lowered to a
/// quantize step whose constant the program carries: the program runs (it used to fail with
/// "tensor ... missing" at execution).
#[test]
fn unsimplified_quantize_of_a_constant_runs() {
    let graph = xq::onnx::load_file(fixture("constant_qdq_sym.onnx")).unwrap();
    assert!(graph
        .nodes
        .iter()
        .any(|n| matches!(n.op, xq::ir::Op::QuantizeLinear(_))
            && graph.initializers.contains_key(&n.inputs[0])));
    let (spec, _) = xq::delegate::lower(&graph, xq::delegate::PartitionMode::All).unwrap();
    let p = xq::runtime::Program::new(spec, xq::runtime::ProgramOptions { threads: 1 }).unwrap();
    let x = xq::npy::read(fixture("constant_qdq_input.npy")).unwrap();
    let want = read_npy_f32(&fixture("constant_qdq_float.npy"));
    let y = p.execute(&[x]).unwrap().remove(0).to_f32_vec().unwrap();
    let peak = want.iter().fold(0f32, |a, v| a.max(v.abs()));
    let err = y.iter().zip(&want).fold(0f32, |a, (g, w)| a.max((g - w).abs()));
    assert!(err < 0.05 * peak, "max error {err} of peak {peak}");
}
