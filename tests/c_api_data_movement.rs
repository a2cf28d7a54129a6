//! Resize and Split through the C API as a C host uses it: a QDQ model with an upsampling
//! Resize feeding a Split, given to `xq_model_load_buffer` as ONNX bytes, compiles into one
//! partition (the report says no node was refused), and `xq_execute` gives the bits of the
//! float interpreter of the same QDQ graph (`xq_model_run_float`). Malformed Resize and Split
//! nodes given to the C builder fail with a clear status and message, never a crash.

mod common;

use common::c_api::*;
use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};
use xq::ffi::*;
use xq::ir::op::{
    AspectRatioPolicy, CoordinateTransform, NearestMode, PoolAttrs, QuantAttrs, ResizeAttrs, ResizeMode,
};
use xq::ir::{DType, Graph, Node, Op, Tensor, TensorData, TensorInfo};

const DIMS: [usize; 4] = [1, 6, 5, 4];
const OUT: [usize; 4] = [1, 3, 10, 8];

fn node(name: &str, op: Op, inputs: &[&str], outputs: &[&str]) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
    }
}

/// `Q → DQ → MaxPool(1×1) → Q → DQ → Resize(bilinear ×2) → Q → DQ → Split(channels, 2)
/// → (Q → DQ) per output`: what a segmentation head's upsampling and a channel split give.
fn resize_split_model() -> Vec<u8> {
    let (q, dq) = (
        Op::QuantizeLinear(QuantAttrs::default()),
        Op::DequantizeLinear(QuantAttrs::default()),
    );
    let mut g = Graph {
        name: "resize_split".into(),
        inputs: vec![TensorInfo::known("x", DType::F32, &DIMS)],
        outputs: ["a", "b"]
            .iter()
            .map(|n| TensorInfo::known(*n, DType::F32, &OUT))
            .collect(),
        ..Graph::default()
    };
    g.initializers.insert("s".into(), Tensor::scalar_f32(0.05));
    g.initializers
        .insert("z".into(), Tensor::new(vec![], TensorData::I8(vec![3])).unwrap());
    let scales = Tensor::new(vec![4], TensorData::F32(vec![1.0, 1.0, 2.0, 2.0])).unwrap();
    g.initializers.insert("scales".into(), scales);
    let resize = ResizeAttrs {
        mode: ResizeMode::Linear,
        coordinate_transform: CoordinateTransform::HalfPixel,
        nearest_mode: NearestMode::RoundPreferFloor,
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        antialias: false,
        axes: vec![],
        keep_aspect_ratio_policy: AspectRatioPolicy::Stretch,
    };
    let pool = PoolAttrs {
        kernel_shape: vec![1, 1],
        ..PoolAttrs::default()
    };
    g.nodes = vec![
        node("qx", q.clone(), &["x", "s", "z"], &["x_q"]),
        node("dqx", dq.clone(), &["x_q", "s", "z"], &["x_dq"]),
        node("pool", Op::MaxPool(pool), &["x_dq"], &["p"]),
        node("qp", q.clone(), &["p", "s", "z"], &["p_q"]),
        node("dqp", dq.clone(), &["p_q", "s", "z"], &["p_dq"]),
        node("up", Op::Resize(resize), &["p_dq", "", "scales"], &["r"]),
        node("qr", q.clone(), &["r", "s", "z"], &["r_q"]),
        node("dqr", dq.clone(), &["r_q", "s", "z"], &["r_dq"]),
        node(
            "split",
            Op::Split {
                axis: 1,
                num_outputs: 2,
            },
            &["r_dq"],
            &["sa", "sb"],
        ),
        node("qa", q.clone(), &["sa", "s", "z"], &["sa_q"]),
        node("dqa", dq.clone(), &["sa_q", "s", "z"], &["a"]),
        node("qb", q, &["sb", "s", "z"], &["sb_q"]),
        node("dqb", dq, &["sb_q", "s", "z"], &["b"]),
    ];
    g.validate().unwrap();
    g.infer_shapes().unwrap();
    xq::onnx::to_bytes(&g).unwrap()
}

/// The model's input: every quantized value and values between them.
fn input() -> Vec<f32> {
    let n: usize = DIMS.iter().product();
    (0..n)
        .map(|i| ((i * 37 % 257) as f32 - 128.0) * 0.05 + 0.013 * (i % 3) as f32)
        .collect()
}

/// Runs the model's two outputs through `run` (the program or the float interpreter).
fn outputs(run: impl FnOnce(&xq_tensor, &mut [xq_tensor]) -> xq_status) -> Vec<Vec<u32>> {
    let mut x = input();
    let mut x_dims = DIMS.map(|d| d as i64);
    let x_t = f32_tensor(&mut x_dims, &mut x);
    let n: usize = OUT.iter().product();
    let (mut a, mut b) = (vec![f32::NAN; n], vec![f32::NAN; n]);
    let (mut a_dims, mut b_dims) = ([0i64; 4], [0i64; 4]);
    let mut outs = [f32_tensor(&mut a_dims, &mut a), f32_tensor(&mut b_dims, &mut b)];
    ok(run(&x_t, &mut outs));
    assert_eq!(a_dims, OUT.map(|d| d as i64));
    assert_eq!(b_dims, OUT.map(|d| d as i64));
    [a, b]
        .iter()
        .map(|v| v.iter().map(|x| x.to_bits()).collect())
        .collect()
}

#[test]
fn resize_and_split_run_delegated_through_the_c_api_bit_equal_to_the_interpreter() {
    let bytes = resize_split_model();
    let mut model = null_mut();
    let mut program = null_mut();
    // SAFETY: `bytes` outlives the call; the out pointers are live locals; every handle is
    // freed once below and not used after.
    unsafe {
        ok(xq_model_load_buffer(
            bytes.as_ptr() as *const c_void,
            bytes.len(),
            &mut model,
        ));
        ok(xq_program_compile_with_config(model, null(), &mut program));
        let report = report_text(program);
        assert!(report.contains("1 partition"), "{report}");
        assert!(!report.contains("refused"), "{report}");
        let delegated = outputs(|x, outs| xq_execute(program, x, 1, outs.as_mut_ptr(), 2));
        let interpreted = outputs(|x, outs| xq_model_run_float(model, x, 1, outs.as_mut_ptr(), 2));
        assert_eq!(delegated, interpreted);
        xq_program_free(program);
        xq_model_free(model);
    }
}

/// An attribute named `name` (NUL-terminated) holding `ints`, a string `s` or an int `i`.
fn attribute(name: &CStr, ints: Option<&[i64]>, s: Option<&CStr>, i: i64) -> xq_attribute {
    let (kind, ptr, count) = match (ints, s) {
        (Some(v), _) => (xq_attr_type::XQ_ATTR_INTS, v.as_ptr(), v.len()),
        (None, Some(_)) => (xq_attr_type::XQ_ATTR_STRING, null(), 0),
        (None, None) => (xq_attr_type::XQ_ATTR_INT, null(), 0),
    };
    xq_attribute {
        name: name.as_ptr(),
        r#type: kind as i32,
        i,
        f: 0.0,
        ints: ptr,
        floats: null(),
        count,
        s: s.map_or(null(), CStr::as_ptr),
    }
}

/// A builder model with a float input `x` of [`DIMS`] and the constants `scales` (×2 on H
/// and W) and `sizes` (`[1, 2]`, which do not sum to the 6 channels).
fn builder_model() -> *mut xq_model {
    let mut m = null_mut();
    // SAFETY: NUL-terminated strings, arrays of the counts given, live out pointer.
    unsafe {
        ok(xq_model_new(c"bad".as_ptr(), &mut m));
        let dims = DIMS.map(|d| d as i64);
        ok(xq_model_add_input(
            m,
            c"x".as_ptr(),
            xq_dtype::XQ_DTYPE_F32 as i32,
            dims.as_ptr(),
            4,
        ));
        let (mut sd, mut sv) = ([4i64], [1.0f32, 1.0, 2.0, 2.0]);
        ok(xq_model_add_constant(
            m,
            c"scales".as_ptr(),
            &f32_tensor(&mut sd, &mut sv),
        ));
        let (mut zd, mut zv) = ([2i64], [1i64, 2]);
        let sizes = xq_tensor {
            dtype: xq_dtype::XQ_DTYPE_I64 as i32,
            rank: 1,
            dims: zd.as_mut_ptr(),
            data: zv.as_mut_ptr() as *mut c_void,
            byte_length: std::mem::size_of_val(&zv),
        };
        ok(xq_model_add_constant(m, c"sizes".as_ptr(), &sizes));
    }
    m
}

/// Adds one node to a fresh [`builder_model`], then marks its outputs as the model's and
/// compiles; returns the first failure's status and message.
fn first_failure(
    op: &CStr,
    inputs: &[&str],
    outputs: &[&str],
    attrs: &[xq_attribute],
) -> (xq_status, String) {
    let m = builder_model();
    let (_i, ip) = cstrs(inputs);
    let (_o, op_ptrs) = cstrs(outputs);
    // SAFETY: live handle, arrays of the counts given, NUL-terminated names; the model is
    // freed once at the end and the program (if any) too.
    let result = unsafe {
        let status = xq_model_add_node(
            m,
            op.as_ptr(),
            c"n".as_ptr(),
            ip.as_ptr(),
            ip.len(),
            op_ptrs.as_ptr(),
            op_ptrs.len(),
            attrs.as_ptr(),
            attrs.len(),
        );
        let status = if status != xq_status::XQ_OK {
            status
        } else {
            let failed = op_ptrs
                .iter()
                .map(|o| xq_model_add_output(m, *o))
                .find(|s| *s != xq_status::XQ_OK);
            match failed {
                Some(s) => s,
                None => {
                    let mut p = null_mut();
                    let s = xq_program_compile_with_config(m, null(), &mut p);
                    xq_program_free(p);
                    s
                }
            }
        };
        (status, xq::ffi::boundary::last_error())
    };
    // SAFETY: the handle made above, freed once.
    unsafe { xq_model_free(m) };
    result
}

#[test]
fn malformed_resize_and_split_nodes_fail_with_a_clear_error() {
    let bogus_mode = [attribute(c"mode", None, Some(c"bogus"), 0)];
    let (status, msg) = first_failure(c"Resize", &["x", "", "scales"], &["y"], &bogus_mode);
    fails(status, xq_status::XQ_ERROR_INVALID_MODEL);
    assert!(msg.contains("bogus"), "{msg}");

    let sideways = [attribute(
        c"coordinate_transformation_mode",
        None,
        Some(c"sideways"),
        0,
    )];
    let (status, msg) = first_failure(c"Resize", &["x", "", "scales"], &["y"], &sideways);
    fails(status, xq_status::XQ_ERROR_INVALID_MODEL);
    assert!(msg.contains("sideways"), "{msg}");

    // Two scales for a rank-4 input.
    let (status, msg) = first_failure(c"Resize", &["x", "", "sizes"], &["y"], &[]);
    fails(status, xq_status::XQ_ERROR_SHAPE_MISMATCH);
    assert!(msg.contains("2 scales for 4 axes"), "{msg}");

    // Split sizes [1, 2] do not sum to the 6 channels.
    let axis = [attribute(c"axis", None, None, 1)];
    let (status, msg) = first_failure(c"Split", &["x", "sizes"], &["a", "b"], &axis);
    fails(status, xq_status::XQ_ERROR_SHAPE_MISMATCH);
    assert!(msg.contains("does not cut 6 into 2 parts"), "{msg}");

    // Two sizes, three outputs named.
    let (status, msg) = first_failure(c"Split", &["x", "sizes"], &["a", "b", "c"], &axis);
    fails(status, xq_status::XQ_ERROR_SHAPE_MISMATCH);
    assert!(msg.contains("into 3 parts"), "{msg}");

    // An axis past the rank.
    let far = [
        attribute(c"axis", None, None, 7),
        attribute(c"num_outputs", None, None, 2),
    ];
    let (status, msg) = first_failure(c"Split", &["x"], &["a", "b"], &far);
    fails(status, xq_status::XQ_ERROR_SHAPE_MISMATCH);
    assert!(msg.contains("axis 7 is out of range"), "{msg}");
}
