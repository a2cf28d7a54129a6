//! The quantizer's configuration and scopes through the C API.

mod common;

use common::c_api::*;
use std::ffi::CStr;
use std::ptr::{null, null_mut};
use xq::ffi::boundary::last_error;
use xq::ffi::*;

fn resolve(q: *const xq_quantizer, name: &CStr, op: &CStr) -> Option<xq_quant_config> {
    let mut quantized = false;
    let mut config = default_quant_config();
    config.activation_mode = -1; // sentinel: must stay untouched when not quantized
                                 // SAFETY: all pointers are valid for the call.
    let st = unsafe { xq_quantizer_resolve(q, name.as_ptr(), op.as_ptr(), &mut quantized, &mut config) };
    assert_eq!(st, xq_status::XQ_OK, "{}", last_error());
    if quantized {
        Some(config)
    } else {
        assert_eq!(config.activation_mode, -1);
        None
    }
}

#[test]
fn default_is_static_per_channel_histogram_int8() {
    let c = default_quant_config();
    assert_eq!(c.weight_granularity, XQ_WEIGHTS_PER_CHANNEL);
    assert_eq!(c.activation_mode, XQ_ACTIVATIONS_STATIC);
    assert_eq!(c.observer, XQ_OBSERVER_HISTOGRAM);
    assert_eq!(
        (c.activation_qmin, c.activation_qmax, c.weight_qmin, c.weight_qmax),
        (-128, 127, -127, 127)
    );
}

#[test]
fn scopes_resolve_name_then_op_type_then_global() {
    let global = default_quant_config();
    let mut dynamic = default_quant_config();
    dynamic.activation_mode = XQ_ACTIVATIONS_DYNAMIC;
    let mut q = null_mut();
    // SAFETY: valid pointers throughout; the handle is freed once at the end.
    unsafe {
        assert_eq!(xq_quantizer_new(&global, &mut q), xq_status::XQ_OK);
        assert_eq!(
            xq_quantizer_set_operator_type(q, c"Gemm".as_ptr(), &dynamic),
            xq_status::XQ_OK
        );
        assert_eq!(
            xq_quantizer_set_node_name_prefix(q, c"/head/".as_ptr(), null()),
            xq_status::XQ_OK
        );
        assert_eq!(
            xq_quantizer_set_node_name(q, c"/head/fc".as_ptr(), &global),
            xq_status::XQ_OK
        );
    }
    assert_eq!(
        resolve(q, c"/body/conv", c"Conv").unwrap().activation_mode,
        XQ_ACTIVATIONS_STATIC
    );
    assert_eq!(
        resolve(q, c"/body/fc", c"Gemm").unwrap().activation_mode,
        XQ_ACTIVATIONS_DYNAMIC
    );
    assert!(resolve(q, c"/head/conv", c"Conv").is_none());
    assert_eq!(
        resolve(q, c"/head/fc", c"Gemm").unwrap().activation_mode,
        XQ_ACTIVATIONS_STATIC
    );
    // SAFETY: created above, freed once; NULL is a no-op.
    unsafe {
        xq_quantizer_free(q);
        xq_quantizer_free(null_mut());
    }
}

#[test]
fn misuse_returns_specific_statuses() {
    let mut q = null_mut();
    let mut bad = default_quant_config();
    bad.observer = 42;
    // SAFETY: valid or NULL pointers, as each case intends.
    unsafe {
        assert_eq!(
            xq_quantizer_new(null(), null_mut()),
            xq_status::XQ_ERROR_NULL_POINTER
        );
        assert!(last_error().contains("`quantizer`"));
        assert_eq!(
            xq_quantizer_new(&bad, &mut q),
            xq_status::XQ_ERROR_INVALID_ARGUMENT
        );
        assert!(
            last_error().contains("observer") && last_error().contains("42"),
            "{}",
            last_error()
        );
        assert!(q.is_null(), "output written on failure");
        bad = default_quant_config();
        bad.activation_qmin = 10;
        bad.activation_qmax = 5;
        assert_eq!(
            xq_quantizer_new(&bad, &mut q),
            xq_status::XQ_ERROR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("activation range"));

        assert_eq!(xq_quantizer_new(null(), &mut q), xq_status::XQ_OK);
        assert_eq!(
            xq_quantizer_set_operator_type(q, null(), null()),
            xq_status::XQ_ERROR_NULL_POINTER
        );
        assert!(last_error().contains("`op_type`"));
        assert_eq!(
            xq_quantizer_set_operator_type(q, c"".as_ptr(), null()),
            xq_status::XQ_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(
            xq_quantizer_set_node_name(null_mut(), c"x".as_ptr(), null()),
            xq_status::XQ_ERROR_NULL_POINTER
        );
        let invalid_utf8 = [0xffu8, 0];
        assert_eq!(
            xq_quantizer_set_node_name_prefix(q, invalid_utf8.as_ptr().cast(), null()),
            xq_status::XQ_ERROR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("UTF-8"));
        xq_quantizer_free(q);
    }
}
