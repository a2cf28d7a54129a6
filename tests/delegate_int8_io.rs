//! Int8 program boundaries on request: the committed digits QDQ model compiled with `f32`
//! boundaries and with int8 ones (Rust API and C API). Given the same quantized input, the
//! int8 program's output is exactly the `f32` program's output before its dequantization.

// These tests call the 0.1 program API, deprecated since 0.2, on purpose.
#![allow(deprecated)]

use std::ffi::CString;
use xq::delegate::int8_io::{io_quant, make_int8_io, IoQuant};
use xq::delegate::{lower, PartitionMode};
use xq::ffi::*;
use xq::ir::{DType, Tensor};
use xq::npy;
use xq::runtime::{Program, ProgramOptions};

fn model_path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/delegate/digits_cnn_qdq.onnx")
}

fn programs() -> (Program, Program) {
    let graph = xq::interp::simplify_with_shapes(
        xq::onnx::load_file(model_path()).unwrap(),
        &[("input", &[1, 1, 8, 8])],
    )
    .unwrap();
    let (spec, _) = lower(&graph, PartitionMode::All).unwrap();
    let mut int8 = spec.clone();
    assert_eq!(make_int8_io(&mut int8), ["input", "logits"]);
    let opts = ProgramOptions { threads: 1 };
    (
        Program::new(spec, opts).unwrap(),
        Program::new(int8, opts).unwrap(),
    )
}

/// ONNX QuantizeLinear in the boundary's element type.
fn quantize(x: &[f32], q: IoQuant) -> Vec<i32> {
    let (lo, hi) = if q.dtype == DType::U8 {
        (0, 255)
    } else {
        (-128, 127)
    };
    x.iter()
        .map(|&v| ((v / q.scale).round_ties_even() as i32 + q.zero_point).clamp(lo, hi))
        .collect()
}

fn int8_tensor(dims: Vec<usize>, q: &[i32], dtype: DType) -> Tensor {
    match dtype {
        DType::U8 => Tensor::from_u8(dims, q.iter().map(|&v| v as u8).collect()).unwrap(),
        _ => Tensor::from_i8(dims, q.iter().map(|&v| v as i8).collect()).unwrap(),
    }
}

fn int8_values(t: &Tensor) -> Vec<i32> {
    match t.dtype() {
        DType::U8 => t.as_u8().unwrap().iter().map(|&v| v as i32).collect(),
        _ => t.as_i8().unwrap().iter().map(|&v| v as i32).collect(),
    }
}

fn test_images() -> Vec<Vec<f32>> {
    let x = npy::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/digits/digits_test_x.npy"),
    )
    .unwrap();
    x.as_f32()
        .unwrap()
        .chunks(64)
        .take(100)
        .map(<[f32]>::to_vec)
        .collect()
}

#[test]
fn int8_boundaries_give_the_f32_programs_values_exactly() {
    let (float_io, int8_io) = programs();
    assert_eq!(float_io.inputs()[0].dtype, DType::F32);
    let in_q = io_quant(int8_io.spec(), false, 0).expect("input is int8");
    let out_q = io_quant(int8_io.spec(), true, 0).expect("output is int8");
    assert_eq!(int8_io.inputs()[0].dtype, in_q.dtype);
    assert_eq!(int8_io.outputs()[0].dtype, out_q.dtype);
    assert!(io_quant(float_io.spec(), false, 0).is_none());
    for image in test_images() {
        let q_in = quantize(&image, in_q);
        let y_int8 = int8_io
            .execute(&[int8_tensor(vec![1, 1, 8, 8], &q_in, in_q.dtype)])
            .unwrap();
        let y_int8 = int8_values(&y_int8[0]);
        let y_f32 = float_io
            .execute(&[Tensor::from_f32(vec![1, 1, 8, 8], image).unwrap()])
            .unwrap();
        let y_f32 = y_f32[0].as_f32().unwrap();
        assert_eq!(y_int8.len(), y_f32.len());
        for (&q, &f) in y_int8.iter().zip(y_f32) {
            assert_eq!(((q - out_q.zero_point) as f32) * out_q.scale, f);
        }
    }
    // The wrong element type or shape is an error, not a guess.
    let bad = Tensor::from_f32(vec![1, 1, 8, 8], vec![0.0; 64]).unwrap();
    assert!(int8_io.execute(&[bad]).is_err());
    let other = if in_q.dtype == DType::U8 {
        DType::I8
    } else {
        DType::U8
    };
    assert!(int8_io
        .execute(&[int8_tensor(vec![1, 1, 8, 8], &[0; 64], other)])
        .is_err());
    assert!(int8_io
        .execute(&[int8_tensor(vec![1, 1, 4, 16], &[0; 64], in_q.dtype)])
        .is_err());
}

#[test]
fn int8_boundaries_survive_the_program_file() {
    let (_, int8_io) = programs();
    let bytes = xq::format::program_file::to_bytes(int8_io.spec()).unwrap();
    let reloaded = Program::new(
        xq::format::program_file::from_bytes(&bytes).unwrap(),
        ProgramOptions { threads: 1 },
    )
    .unwrap();
    assert_eq!(reloaded.inputs(), int8_io.inputs());
    assert_eq!(
        io_quant(reloaded.spec(), true, 0),
        io_quant(int8_io.spec(), true, 0)
    );
}

/// Loads the model through the C API and compiles it with `int8_io`.
fn c_program(int8_io: i32) -> *mut xq_program {
    let path = CString::new(model_path().to_str().unwrap()).unwrap();
    let name = CString::new("input").unwrap();
    let dims = [1i64, 1, 8, 8];
    let mut model = std::ptr::null_mut();
    let mut program = std::ptr::null_mut();
    // SAFETY: valid C strings, dims and out pointers; handles are freed below.
    unsafe {
        assert_eq!(xq_model_load_file(path.as_ptr(), &mut model), xq_status::XQ_OK);
        assert_eq!(
            xq_model_fix_input_shape(model, name.as_ptr(), dims.as_ptr(), 4),
            xq_status::XQ_OK
        );
        let mut options = xq_program_options_default();
        options.threads = 1;
        options.int8_io = int8_io;
        assert_eq!(
            xq_program_compile(model, &options, &mut program),
            xq_status::XQ_OK
        );
        xq_model_free(model);
    }
    program
}

#[test]
fn c_api_reports_and_executes_int8_boundaries() {
    let (float_c, int8_c) = (c_program(0), c_program(1));
    let (mut scale, mut zp) = (0f32, 0i32);
    let (mut in_scale, mut in_zp) = (0f32, 0i32);
    // SAFETY: live handles and writable outputs.
    unsafe {
        assert_eq!(
            xq_program_io_qparams(float_c, 0, 0, &mut scale, &mut zp),
            xq_status::XQ_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(
            xq_program_io_qparams(int8_c, 0, 7, &mut scale, &mut zp),
            xq_status::XQ_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(
            xq_program_io_qparams(int8_c, 0, 0, std::ptr::null_mut(), &mut zp),
            xq_status::XQ_ERROR_NULL_POINTER
        );
        assert_eq!(
            xq_program_io_qparams(int8_c, 0, 0, &mut in_scale, &mut in_zp),
            xq_status::XQ_OK
        );
        assert_eq!(
            xq_program_io_qparams(int8_c, 1, 0, &mut scale, &mut zp),
            xq_status::XQ_OK
        );
    }
    let (mut in_dtype, mut out_dtype) = (xq_dtype::XQ_DTYPE_F32, xq_dtype::XQ_DTYPE_F32);
    let (mut name, mut rank) = (std::ptr::null(), 0usize);
    let mut dims = [0i64; 4];
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            xq_program_io_info(
                int8_c,
                0,
                0,
                &mut name,
                &mut in_dtype,
                dims.as_mut_ptr(),
                4,
                &mut rank
            ),
            xq_status::XQ_OK
        );
        assert_eq!(
            xq_program_io_info(
                int8_c,
                1,
                0,
                &mut name,
                &mut out_dtype,
                dims.as_mut_ptr(),
                4,
                &mut rank
            ),
            xq_status::XQ_OK
        );
    }
    let unsigned_in = in_dtype == xq_dtype::XQ_DTYPE_U8;
    let unsigned_out = out_dtype == xq_dtype::XQ_DTYPE_U8;
    assert!(unsigned_in || in_dtype == xq_dtype::XQ_DTYPE_I8);
    let in_q = IoQuant {
        dtype: if unsigned_in { DType::U8 } else { DType::I8 },
        scale: in_scale,
        zero_point: in_zp,
    };
    for image in test_images().into_iter().take(20) {
        let q: Vec<u8> = quantize(&image, in_q).iter().map(|&v| v as u8).collect();
        let mut in_dims = [1i64, 1, 8, 8];
        let mut out_dims = [0i64; 2];
        let mut logits_q = [0u8; 10];
        let input = xq_tensor {
            dtype: in_dtype as i32,
            rank: 4,
            dims: in_dims.as_mut_ptr(),
            data: q.as_ptr() as *mut _,
            byte_length: q.len(),
        };
        let mut output = xq_tensor {
            dtype: out_dtype as i32,
            rank: 2,
            dims: out_dims.as_mut_ptr(),
            data: logits_q.as_mut_ptr().cast(),
            byte_length: 10,
        };
        let mut f_in = image.clone();
        let mut f_out = [0f32; 10];
        let mut f_dims = [1i64, 1, 8, 8];
        let mut f_out_dims = [0i64; 2];
        let f_input = xq_tensor {
            dtype: xq_dtype::XQ_DTYPE_F32 as i32,
            rank: 4,
            dims: f_dims.as_mut_ptr(),
            data: f_in.as_mut_ptr().cast(),
            byte_length: 256,
        };
        let mut f_output = xq_tensor {
            dtype: xq_dtype::XQ_DTYPE_F32 as i32,
            rank: 2,
            dims: f_out_dims.as_mut_ptr(),
            data: f_out.as_mut_ptr().cast(),
            byte_length: 40,
        };
        // SAFETY: descriptors point at live buffers of the stated sizes.
        unsafe {
            assert_eq!(xq_execute(int8_c, &input, 1, &mut output, 1), xq_status::XQ_OK);
            assert_eq!(
                xq_execute(float_c, &f_input, 1, &mut f_output, 1),
                xq_status::XQ_OK
            );
        }
        for (&q, &f) in logits_q.iter().zip(&f_out) {
            let q = if unsigned_out { q as i32 } else { q as i8 as i32 };
            assert_eq!(((q - zp) as f32) * scale, f);
        }
    }
    // SAFETY: handles from c_program, freed once.
    unsafe {
        xq_program_free(float_c);
        xq_program_free(int8_c);
    }
}
