//! The C API as a C host calls it: status checks, C strings, tensor descriptors, loading a
//! model file and reading a program's report.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;
use std::ptr::{null, null_mut};
use xq::ffi::*;

/// Asserts `status` is `XQ_OK`, showing the last error otherwise.
pub fn ok(status: xq_status) {
    assert_eq!(status, xq_status::XQ_OK, "{}", xq::ffi::boundary::last_error());
}

/// Asserts `status` is `want` with a message that is not an internal error; returns it.
pub fn fails(status: xq_status, want: xq_status) -> String {
    let msg = xq::ffi::boundary::last_error();
    assert_eq!(status, want, "{msg}");
    assert!(!msg.contains("internal error"), "{msg}");
    msg
}

/// `p` as a NUL-terminated C string.
pub fn c_path(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

/// NUL-terminated copies of `names` and pointers to them (valid while the copies live).
pub fn cstrs(names: &[&str]) -> (Vec<CString>, Vec<*const c_char>) {
    let owned: Vec<CString> = names.iter().map(|n| CString::new(*n).unwrap()).collect();
    let ptrs = owned.iter().map(|c| c.as_ptr()).collect();
    (owned, ptrs)
}

/// A libxq string (non-NULL, UTF-8) copied into a `String`.
pub fn text(p: *const c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: libxq returns NUL-terminated strings that live as long as their handle.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
}

/// An `f32` tensor descriptor over `dims` and `data` (both must outlive its use).
pub fn f32_tensor(dims: &mut [i64], data: &mut [f32]) -> xq_tensor {
    xq_tensor {
        dtype: xq_dtype::XQ_DTYPE_F32 as i32,
        rank: dims.len(),
        dims: dims.as_mut_ptr(),
        data: data.as_mut_ptr() as *mut c_void,
        byte_length: std::mem::size_of_val(data),
    }
}

/// An `int64` tensor descriptor (token ids, masks, positions) over `dims` and `data`.
pub fn i64_tensor(dims: &mut [i64], data: &mut [i64]) -> xq_tensor {
    xq_tensor {
        dtype: xq_dtype::XQ_DTYPE_I64 as i32,
        rank: dims.len(),
        dims: dims.as_mut_ptr(),
        data: data.as_mut_ptr() as *mut c_void,
        byte_length: std::mem::size_of_val(data),
    }
}

/// Loads the ONNX model at `path`.
pub fn load_model_file(path: &Path) -> *mut xq_model {
    let mut m = null_mut();
    // SAFETY: valid path and out pointer.
    ok(unsafe { xq_model_load_file(c_path(path).as_ptr(), &mut m) });
    m
}

/// The text partitioning report of a program.
pub fn report_text(p: *const xq_program) -> String {
    let mut r = null();
    // SAFETY: live program; writable out.
    ok(unsafe { xq_program_report(p, &mut r) });
    text(r)
}

/// libxq's default quantization settings.
pub fn default_quant_config() -> xq_quant_config {
    let mut c = std::mem::MaybeUninit::uninit();
    // SAFETY: points to writable storage.
    let status = unsafe { xq_quant_config_default(c.as_mut_ptr()) };
    assert_eq!(status, xq_status::XQ_OK);
    // SAFETY: XQ_OK means it was written.
    unsafe { c.assume_init() }
}
