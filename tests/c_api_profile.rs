//! Per-step profiling through the C API: `xq_execute_profiled` writes the outputs
//! `xq_execute` writes and a profile with one labelled, timed entry per program step (here a
//! dynamically quantized decoder: int8 linear steps, fused attention and interpreted nodes);
//! bad arguments are refused with the documented status and leave `*profile` untouched.

mod common;

use common::c_api::*;
use std::ffi::CStr;
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use xq::ffi::*;

#[test]
fn a_profiled_execution_gives_the_outputs_and_one_timed_entry_per_step() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/transformers/llama_tiny_sdpa_dynamo.onnx");
    let m = load_model_file(&path);
    let mut config = default_quant_config();
    config.activation_mode = xq_activation_mode::XQ_ACTIVATIONS_DYNAMIC as i32;
    let (mut q, mut qdq) = (null_mut(), null_mut());
    // SAFETY: valid config, live model, writable outs.
    unsafe {
        ok(xq_quantizer_new(&config, &mut q));
        ok(xq_quantizer_prepare(q, m));
        ok(xq_convert(q, &mut qdq));
    }
    let mut p = null_mut();
    // SAFETY: live model (symbolic lengths: a dynamic model compiles as is), default config.
    ok(unsafe { xq_program_compile_with_config(qdq, null(), &mut p) });

    let (batch, seq, vocab) = (1usize, 12usize, 384usize);
    let tokens = xq::npy::read(path.with_file_name("tokens.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    let (mut ids, mut mask) = (tokens[..seq].to_vec(), vec![1i64; seq]);
    let shape = [batch as i64, seq as i64];
    let (mut d_ids, mut d_mask) = (shape, shape);
    let inputs = [
        i64_tensor(&mut d_ids, &mut ids),
        i64_tensor(&mut d_mask, &mut mask),
    ];
    let (mut plain, mut profiled) = (vec![0f32; seq * vocab], vec![f32::NAN; seq * vocab]);
    let (mut d_plain, mut d_profiled) = ([0i64; 3], [0i64; 3]);
    let mut out = [f32_tensor(&mut d_plain, &mut plain)];
    // SAFETY: live program; descriptors over live buffers.
    ok(unsafe { xq_execute(p, inputs.as_ptr(), 2, out.as_mut_ptr(), 1) });
    let mut out = [f32_tensor(&mut d_profiled, &mut profiled)];
    let mut profile = null_mut();
    // SAFETY: as above; `profile` writable.
    ok(unsafe { xq_execute_profiled(p, inputs.as_ptr(), 2, out.as_mut_ptr(), 1, &mut profile) });
    assert_eq!(d_plain, d_profiled);
    assert_eq!(
        plain, profiled,
        "a profiled execution computes what xq_execute computes"
    );

    let mut count = 0usize;
    // SAFETY: live profile, writable count.
    ok(unsafe { xq_profile_step_count(profile, &mut count) });
    let (mut labels, mut total) = (Vec::new(), 0u64);
    for i in 0..count {
        let (mut label, mut ns) = (null(), 0u64);
        // SAFETY: live profile, index in range, writable outs.
        ok(unsafe { xq_profile_step(profile, i, &mut label, &mut ns) });
        // SAFETY: a NUL-terminated label valid until the profile is freed.
        labels.push(unsafe { CStr::from_ptr(label) }.to_str().unwrap().to_string());
        total += ns;
    }
    assert!(count > 20, "{count} steps");
    assert!(total > 0, "every step took 0 ns");
    assert!(
        labels.iter().any(|l| l.ends_with("[dynamic_fully_connected]")),
        "{labels:?}"
    );
    assert!(
        labels
            .iter()
            .any(|l| l.contains("[interp RMSNormalization]") || l.contains("[interp Mul]")),
        "{labels:?}"
    );
    assert!(labels.iter().any(|l| l.ends_with("[attention]")), "{labels:?}");

    let (mut label, mut ns) = (null(), 7u64);
    // SAFETY: live profile, writable outs.
    fails(
        unsafe { xq_profile_step(profile, count, &mut label, &mut ns) },
        xq_status::XQ_ERROR_INVALID_ARGUMENT,
    );
    assert!(label.is_null() && ns == 7, "a refused query wrote its outputs");
    // SAFETY: NULL `count`.
    fails(
        unsafe { xq_profile_step_count(profile, null_mut()) },
        xq_status::XQ_ERROR_NULL_POINTER,
    );
    // SAFETY: NULL out-pointer for the profile.
    fails(
        unsafe { xq_execute_profiled(p, inputs.as_ptr(), 2, out.as_mut_ptr(), 1, null_mut()) },
        xq_status::XQ_ERROR_NULL_POINTER,
    );

    // A failing execution (one input missing) leaves `*profile` as it was.
    let mut untouched = null_mut();
    // SAFETY: live program; one valid descriptor; writable `untouched`.
    fails(
        unsafe { xq_execute_profiled(p, inputs.as_ptr(), 1, out.as_mut_ptr(), 1, &mut untouched) },
        xq_status::XQ_ERROR_INVALID_ARGUMENT,
    );
    assert!(untouched.is_null());
    // SAFETY: handles from this test, each freed once; NULL is a no-op.
    unsafe {
        xq_profile_free(profile);
        xq_profile_free(null_mut());
        xq_program_free(p);
        xq_quantizer_free(q);
        xq_model_free(qdq);
        xq_model_free(m);
    }
}
