//! C API of per-step profiling: `xq_execute_profiled` runs a program as `xq_execute` does and
//! returns an `xq_profile` holding each step's label (node name and kind, as `xq run
//! --profile` prints them) and wall time; `xq_profile_step_count`, `xq_profile_step` read it
//! and `xq_profile_free` releases it.

use super::boundary::{arg_ref, arg_slice, free_handle, guard, into_handle, Out};
use super::program::{execute_pooled, xq_program};
use super::status::xq_status;
use super::tensor::xq_tensor;
use crate::Error;
use std::ffi::{c_char, CString};

/// The steps of one profiled execution, in execution order (opaque).
pub struct xq_profile {
    steps: Vec<(CString, u64)>,
}

/// Runs the program like `xq_execute` (same inputs, outputs and errors) and writes to
/// `*profile` a new profile of that call: one entry per program step (int8 kernels, partition
/// entries and exits, dynamic linear layers, interpreted nodes). Free it with
/// `xq_profile_free`. On error nothing is written to `*profile`.
///
/// # Safety
/// As `xq_execute`; `profile` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_execute_profiled(
    program: *const xq_program,
    inputs: *const xq_tensor,
    n_inputs: usize,
    outputs: *mut xq_tensor,
    n_outputs: usize,
    profile: *mut *mut xq_profile,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let p = unsafe { arg_ref(program, "program") }?;
        // SAFETY: caller's contract.
        let out = unsafe { Out::new(profile, "profile") }?;
        // SAFETY: caller's contract; count bounded.
        let descs = unsafe { arg_slice(inputs, n_inputs, super::program::MAX_C_COUNT, "inputs") }?;
        let mut steps = Vec::new();
        // SAFETY: forwarded contract.
        unsafe { execute_pooled(p, descs, outputs, n_outputs, Some(&mut steps)) }?;
        let steps = steps
            .into_iter()
            .map(|(label, t)| {
                let label = CString::new(label.replace('\0', "?")).unwrap_or_default();
                (label, u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
            })
            .collect();
        out.write(into_handle(xq_profile { steps }));
        Ok(())
    })
}

/// The number of steps in `profile`.
///
/// # Safety
/// `profile` live handle; `count` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_profile_step_count(profile: *const xq_profile, count: *mut usize) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let p = unsafe { arg_ref(profile, "profile") }?;
        // SAFETY: caller's contract.
        unsafe { Out::new(count, "count") }?.write(p.steps.len());
        Ok(())
    })
}

/// Step `index` of `profile`: its label (NUL-terminated, valid until the profile is freed)
/// and wall time in nanoseconds. An `index` out of range is `XQ_ERROR_INVALID_ARGUMENT`.
///
/// # Safety
/// `profile` live handle; `label` and `nanoseconds` writable.
#[no_mangle]
pub unsafe extern "C" fn xq_profile_step(
    profile: *const xq_profile,
    index: usize,
    label: *mut *const c_char,
    nanoseconds: *mut u64,
) -> xq_status {
    guard(|| {
        // SAFETY: caller's contract.
        let p = unsafe { arg_ref(profile, "profile") }?;
        // SAFETY: caller's contract (both outputs).
        let (label_out, ns_out) =
            unsafe { (Out::new(label, "label")?, Out::new(nanoseconds, "nanoseconds")?) };
        let (text, ns) = p.steps.get(index).ok_or_else(|| {
            Error::invalid_argument(
                "index",
                format!("{index} is out of range ({} steps)", p.steps.len()),
            )
        })?;
        label_out.write(text.as_ptr());
        ns_out.write(*ns);
        Ok(())
    })
}

/// Frees a profile; NULL is a no-op.
///
/// # Safety
/// `profile` NULL or a live handle not used by any other thread.
#[no_mangle]
pub unsafe extern "C" fn xq_profile_free(profile: *mut xq_profile) {
    // SAFETY: caller's contract.
    unsafe { free_handle(profile) }
}
