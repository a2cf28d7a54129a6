//! [`eval_into`]: one operator evaluated into output tensors kept from an earlier run, so
//! that running the same node on same-shaped inputs again allocates nothing.

use super::{elementwise, eval, input, norm, optional};
use crate::ir::op::BinaryOp;
use crate::ir::{pointwise, DType, Op, Tensor};
use crate::{Error, Result};

/// Evaluates `op` like [`eval`] (the same values, bit for bit) into `outputs`, one per
/// output of the node. A tensor already in an output slot, of the type and shape the result
/// has, is overwritten in place; otherwise the slot gets a new tensor.
///
/// Written in place: f32 point-wise operators (unary maps, LeakyRelu, HardSigmoid, GELU),
/// f32 binary arithmetic with broadcasting (Add, Sub, Mul, Div, two-operand Max and Min),
/// f32 Clip, f32 Softmax and Identity. Every other operator is evaluated by [`eval`] and its
/// results moved into the slots (an allocation per run).
pub fn eval_into(op: &Op, inputs: &[Option<&Tensor>], outputs: &mut [Option<Tensor>]) -> Result<()> {
    if outputs.len() == 1 && write_in_place(op, inputs, &mut outputs[0])? {
        return Ok(());
    }
    let results = eval(op, inputs)?;
    if results.len() < outputs.len() {
        return Err(Error::Internal(format!(
            "{} produced {} outputs, the node has {}",
            op.onnx_name(),
            results.len(),
            outputs.len()
        )));
    }
    for (slot, t) in outputs.iter_mut().zip(results) {
        *slot = Some(t);
    }
    Ok(())
}

/// The output tensor in `slot` with the shape of `like`, kept or made.
fn same_shape_f32<'a>(slot: &'a mut Option<Tensor>, like: &[usize]) -> Result<&'a mut [f32]> {
    Tensor::reuse_slot(slot, DType::F32, |d| d == like, || Ok(like.to_vec()))?.as_f32_mut()
}

/// Writes the result of `op` into `out` when the operator and its operand types have an
/// in-place form; returns whether it did.
fn write_in_place(op: &Op, inputs: &[Option<&Tensor>], out: &mut Option<Tensor>) -> Result<bool> {
    let x = input(op, inputs, 0)?;
    if x.dtype() != DType::F32 {
        return Ok(false);
    }
    let xs = x.as_f32()?;
    match op {
        _ if pointwise::is_pointwise(op) => {
            pointwise::map(op, xs, same_shape_f32(out, x.dims())?)?;
        }
        Op::Binary(b) if *b != BinaryOp::Pow && inputs.len() == 2 => {
            let y = input(op, inputs, 1)?;
            if y.dtype() != DType::F32 {
                return Ok(false);
            }
            let (ad, bd) = (x.dims(), y.dims());
            let t = Tensor::reuse_slot(
                out,
                DType::F32,
                |d| elementwise::is_broadcast_of(ad, bd, d),
                || crate::ir::shapes::broadcast(ad, bd),
            )?;
            let (dims, dst) = t.dims_and_f32_mut()?;
            elementwise::binary_f32_into(*b, (xs, ad), (y.as_f32()?, bd), dims, dst)?;
        }
        Op::Clip => {
            let (lo, hi) = elementwise::clip_bounds(optional(inputs, 1), optional(inputs, 2))?;
            elementwise::clip_f32_into(xs, lo, hi, same_shape_f32(out, x.dims())?);
        }
        Op::Softmax { axis, coerce_2d } => {
            let y = same_shape_f32(out, x.dims())?;
            y.copy_from_slice(xs);
            norm::softmax_in_place(x.dims(), *axis, *coerce_2d, y)?;
        }
        Op::Identity => same_shape_f32(out, x.dims())?.copy_from_slice(xs),
        _ => return Ok(false),
    }
    Ok(true)
}
