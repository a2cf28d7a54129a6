//! A transformer export through the C API as a C++ host drives it: load the ONNX file, fix the
//! symbolic batch and sequence, compile, and execute with int64 token ids and an int64 mask
//! (several inputs, several outputs); the outputs equal the float interpreter's; an f32 tensor
//! where token ids belong is refused with a clear error and the outputs are left alone.

mod common;

use common::c_api::*;
use std::path::PathBuf;
use std::ptr::null_mut;
use xq::ffi::*;
use xq::ir::{DType, Tensor};

#[test]
fn a_token_model_runs_through_the_c_api_with_int64_inputs() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/transformers/bert_tiny_sdpa_dynamo.onnx");
    let tokens = xq::npy::read(path.with_file_name("tokens.npy")).unwrap();
    let (batch, seq) = (2usize, 20usize);
    let all = tokens.to_i64_vec().unwrap();
    let mut ids: Vec<i64> = (0..batch)
        .flat_map(|r| all[r * 128..r * 128 + seq].to_vec())
        .collect();
    let mut mask = vec![1i64; batch * seq];
    mask[seq + 15..].iter_mut().for_each(|m| *m = 0);

    let m = load_model_file(&path);
    let shape = [batch as i64, seq as i64];
    for name in [c"input_ids", c"attention_mask"] {
        // SAFETY: live model, NUL-terminated name, `shape` has 2 entries.
        ok(unsafe { xq_model_fix_input_shape(m, name.as_ptr(), shape.as_ptr(), 2) });
    }
    // SAFETY: all-zero bytes are a valid config; `xq_program_config_init` fills the defaults.
    let mut config: xq_program_config = unsafe { std::mem::zeroed() };
    // SAFETY: `config` is writable for its size.
    ok(unsafe { xq_program_config_init(&mut config, std::mem::size_of::<xq_program_config>()) });
    config.threads = 2;
    let mut p = null_mut();
    // SAFETY: live model, initialized config, writable out.
    ok(unsafe { xq_program_compile_with_config(m, &config, &mut p) });

    let (mut d_ids, mut d_mask) = (shape, shape);
    let inputs = [
        i64_tensor(&mut d_ids, &mut ids),
        i64_tensor(&mut d_mask, &mut mask),
    ];
    let hidden = 32usize;
    let (mut y0, mut y1) = (
        vec![f32::NAN; batch * seq * hidden],
        vec![f32::NAN; batch * hidden],
    );
    let (mut o0, mut o1) = ([0i64; 3], [0i64; 2]);
    let mut outputs = [f32_tensor(&mut o0, &mut y0), f32_tensor(&mut o1, &mut y1)];
    // SAFETY: live program; descriptors over live buffers of the stated sizes.
    ok(unsafe { xq_execute(p, inputs.as_ptr(), 2, outputs.as_mut_ptr(), 2) });

    let graph = xq::onnx::load_file(&path).unwrap();
    let as_tensor = |v: &[i64]| {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Tensor::from_le_bytes(DType::I64, vec![batch, seq], &bytes).unwrap()
    };
    let want = xq::interp::run_once(&graph, &[as_tensor(&ids), as_tensor(&mask)]).unwrap();
    assert_eq!(o0, [batch as i64, seq as i64, hidden as i64]);
    for (got, w) in [&y0, &y1].into_iter().zip(&want) {
        let w = w.as_f32().unwrap();
        let worst = got.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(
            worst <= 1e-5,
            "the C API's output differs from the interpreter's by {worst}"
        );
    }

    // Token ids as f32: refused by name, outputs untouched.
    let mut floats = vec![1.0f32; batch * seq];
    let mut d_bad = shape;
    let bad = [
        f32_tensor(&mut d_bad, &mut floats),
        i64_tensor(&mut d_mask, &mut mask),
    ];
    y1.iter_mut().for_each(|v| *v = -7.0);
    let mut outputs = [f32_tensor(&mut o0, &mut y0), f32_tensor(&mut o1, &mut y1)];
    // SAFETY: as above.
    let msg = fails(
        unsafe { xq_execute(p, bad.as_ptr(), 2, outputs.as_mut_ptr(), 2) },
        xq_status::XQ_ERROR_DTYPE_MISMATCH,
    );
    assert!(msg.contains("input_ids"), "{msg}");
    assert!(
        y1.iter().all(|&v| v == -7.0),
        "a failed execution wrote an output"
    );
    // SAFETY: live handles, freed once.
    unsafe {
        xq_program_free(p);
        xq_model_free(m);
    }
}
