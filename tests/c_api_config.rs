//! The size-versioned `xq_program_config` and the `*_with_config` entry points, called as a
//! C host would: `struct_size` rules, field errors, and equality with the deprecated 0.1
//! entry points on the digits CNN.

#![allow(deprecated)]

mod common;

use common::c_api::*;
use std::ffi::c_void;
use std::mem::size_of;
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use xq::ffi::*;

fn digits_qdq() -> *mut xq_model {
    let m = load_model_file(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/delegate/digits_cnn_qdq.onnx"),
    );
    let dims = [1i64, 1, 8, 8];
    // SAFETY: live model; NUL-terminated name; `dims` holds 4 values.
    ok(unsafe { xq_model_fix_input_shape(m, c"input".as_ptr(), dims.as_ptr(), 4) });
    m
}

/// A config followed by room for options of a future libxq.
#[repr(C)]
struct Grown {
    config: xq_program_config,
    future: u64,
}

#[test]
fn init_accepts_the_first_version_and_larger_sizes() {
    assert_eq!(size_of::<xq_program_config>(), 24);
    assert_eq!(std::mem::offset_of!(xq_program_config, struct_size), 0);
    // SAFETY: all-zero bytes are a valid xq_program_config (plain integers).
    let mut c: xq_program_config = unsafe { std::mem::zeroed() };
    c.partition_mode = 7;
    // SAFETY: `c` is writable for its size.
    ok(unsafe { xq_program_config_init(&mut c, 24) });
    assert_eq!(
        (c.struct_size, c.threads, c.partition_mode, c.int8_io),
        (24, 0, XQ_PARTITION_ALL, 0)
    );

    let mut g = Grown {
        // SAFETY: as above.
        config: unsafe { std::mem::zeroed() },
        future: u64::MAX,
    };
    // SAFETY: `g` is writable for `size_of::<Grown>()` bytes.
    ok(unsafe { xq_program_config_init(&mut g.config, size_of::<Grown>()) });
    assert_eq!(g.config.struct_size, size_of::<Grown>());
    assert_eq!(g.future, 0, "init zeroes the options it does not know");
}

#[test]
fn init_rejects_sizes_below_the_first_version_and_null() {
    // SAFETY: as above.
    let mut c: xq_program_config = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is writable; the size is refused before any write.
    let msg = fails(
        unsafe { xq_program_config_init(&mut c, 8) },
        xq_status::XQ_ERROR_INVALID_ARGUMENT,
    );
    assert!(msg.contains("struct_size"), "{msg}");
    assert_eq!(c.struct_size, 0, "nothing written on failure");
    // SAFETY: NULL is refused.
    fails(
        unsafe { xq_program_config_init(null_mut(), 24) },
        xq_status::XQ_ERROR_NULL_POINTER,
    );
    // SAFETY: an absurd size is refused before any write.
    fails(
        unsafe { xq_program_config_init(&mut c, 1 << 40) },
        xq_status::XQ_ERROR_INVALID_ARGUMENT,
    );
}

#[test]
fn readers_take_a_zero_tail_and_refuse_unknown_options() {
    let m = digits_qdq();
    let mut g = Grown {
        // SAFETY: all-zero bytes are valid.
        config: unsafe { std::mem::zeroed() },
        future: 0,
    };
    // SAFETY: `g` is writable for its size.
    ok(unsafe { xq_program_config_init(&mut g.config, size_of::<Grown>()) });
    g.config.threads = 1;
    let mut p = null_mut();
    // SAFETY: live model; `g` readable for `struct_size` bytes; writable out.
    ok(unsafe { xq_program_compile_with_config(m, &g.config, &mut p) });
    // SAFETY: live program from above.
    unsafe { xq_program_free(p) };

    g.future = 1;
    let mut p = null_mut();
    // SAFETY: as above.
    let msg = fails(
        unsafe { xq_program_compile_with_config(m, &g.config, &mut p) },
        xq_status::XQ_ERROR_UNSUPPORTED,
    );
    assert!(msg.contains("not known to libxq"), "{msg}");
    assert!(p.is_null());

    // A struct_size below the first version is refused by readers too.
    // SAFETY: all-zero bytes are valid.
    let mut small: xq_program_config = unsafe { std::mem::zeroed() };
    small.struct_size = 8;
    // SAFETY: as above.
    let msg = fails(
        unsafe { xq_program_compile_with_config(m, &small, &mut p) },
        xq_status::XQ_ERROR_INVALID_ARGUMENT,
    );
    assert!(msg.contains("struct_size"), "{msg}");
    // SAFETY: live model.
    unsafe { xq_model_free(m) };
}

#[test]
fn an_unknown_partition_mode_names_the_field() {
    let m = digits_qdq();
    // SAFETY: all-zero bytes are valid.
    let mut c: xq_program_config = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is writable for its size.
    ok(unsafe { xq_program_config_init(&mut c, size_of::<xq_program_config>()) });
    c.partition_mode = 42;
    let mut p = null_mut();
    // SAFETY: live model, readable config, writable out.
    let msg = fails(
        unsafe { xq_program_compile_with_config(m, &c, &mut p) },
        xq_status::XQ_ERROR_INVALID_ARGUMENT,
    );
    assert!(
        msg.contains("config.partition_mode") && msg.contains("42"),
        "{msg}"
    );
    // SAFETY: live model.
    unsafe { xq_model_free(m) };
}

/// Runs the digits program on a fixed input; the logits.
fn logits(p: *const xq_program) -> Vec<f32> {
    let mut dims = [1i64, 1, 8, 8];
    let mut x: Vec<f32> = (0..64).map(|i| (i % 17) as f32 / 16.0).collect();
    let input = f32_tensor(&mut dims, &mut x);
    let (mut yd, mut y) = ([0i64; 8], vec![f32::NAN; 64]);
    let mut out = f32_tensor(&mut yd, &mut y);
    // SAFETY: live program; descriptors point to live buffers of the stated sizes.
    ok(unsafe { xq_execute(p, &input, 1, &mut out, 1) });
    y.truncate(out.byte_length / 4);
    y
}

#[test]
fn old_and_new_entry_points_agree_on_digits() {
    let m = digits_qdq();
    for mode in [XQ_PARTITION_ALL, XQ_PARTITION_PER_OP, XQ_PARTITION_NONE] {
        let mut opts = xq_program_options_default();
        opts.threads = 1;
        opts.partition_mode = mode;
        // SAFETY: all-zero bytes are valid.
        let mut c: xq_program_config = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is writable for its size.
        ok(unsafe { xq_program_config_init(&mut c, size_of::<xq_program_config>()) });
        c.threads = 1;
        c.partition_mode = mode;
        let (mut old, mut new) = (null_mut(), null_mut());
        // SAFETY: live model, readable options, writable outs.
        ok(unsafe { xq_program_compile(m, &opts, &mut old) });
        // SAFETY: as above.
        ok(unsafe { xq_program_compile_with_config(m, &c, &mut new) });
        assert_eq!(report_text(old), report_text(new), "mode {mode}");
        assert_eq!(logits(old), logits(new), "mode {mode}");

        // Save → load through both loaders.
        let path = std::env::temp_dir().join(format!("xq-config-{}-{mode}.xq", std::process::id()));
        let c_path = c_path(&path);
        // SAFETY: live program; NUL-terminated path.
        ok(unsafe { xq_program_save(new, c_path.as_ptr()) });
        let (mut lo, mut ln, mut lb) = (null_mut(), null_mut(), null_mut());
        // SAFETY: NUL-terminated path; readable options; writable outs.
        ok(unsafe { xq_program_load_file(c_path.as_ptr(), &opts, &mut lo) });
        // SAFETY: as above (NULL config = defaults).
        ok(unsafe { xq_program_load_file_with_config(c_path.as_ptr(), null(), &mut ln) });
        let bytes = std::fs::read(&path).unwrap();
        // SAFETY: `bytes` readable for its length; readable config; writable out.
        ok(unsafe {
            xq_program_load_buffer_with_config(bytes.as_ptr() as *const c_void, bytes.len(), &c, &mut lb)
        });
        for loaded in [lo, ln, lb] {
            assert_eq!(report_text(loaded), report_text(new), "mode {mode}");
            assert_eq!(logits(loaded), logits(new), "mode {mode}");
        }
        for p in [old, new, lo, ln, lb] {
            // SAFETY: live programs from above, each freed once.
            unsafe { xq_program_free(p) };
        }
        let _ = std::fs::remove_file(&path);
    }
    // SAFETY: live model.
    unsafe { xq_model_free(m) };
}
