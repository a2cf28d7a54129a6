//! Shape inference of the operators transformer exports add: IsNaN, GatherElements,
//! GatherND, ScatterND, Trilu, CumSum and Einsum. The shape rules are public so the
//! interpreter checks its operands with the same functions.

use super::{dtype_err, expect_dtype, ints, need, same, Fact, OutFact, FLOAT};
use crate::ir::einsum;
use crate::ir::op::Op;
use crate::ir::shapes::norm_axis;
use crate::ir::DType;
use crate::{Error, Result};

/// The index types of the gather operators.
const INDEX: &[DType] = &[DType::I32, DType::I64];

/// GatherElements' output shape (that of `indices`): the operands have one rank, `axis` is
/// within it, and on every other axis `indices` is no longer than `data`.
pub fn gather_elements_shape(data: &[usize], indices: &[usize], axis: i64) -> Result<Vec<usize>> {
    if data.len() != indices.len() || data.is_empty() {
        return Err(Error::ShapeMismatch(format!(
            "GatherElements: data {data:?} and indices {indices:?} must have one rank of at least 1"
        )));
    }
    let ax = norm_axis(axis, data.len())?;
    if let Some(i) = (0..data.len()).find(|&i| i != ax && indices[i] > data[i]) {
        return Err(Error::ShapeMismatch(format!(
            "GatherElements: indices {indices:?} are longer than data {data:?} on axis {i}"
        )));
    }
    Ok(indices.to_vec())
}

/// GatherND's output shape: `indices[..-1] ++ data[batch_dims + m..]` where `m` is the length
/// of the last axis of `indices`; the first `batch_dims` axes of both operands agree.
pub fn gather_nd_shape(data: &[usize], indices: &[usize], batch_dims: usize) -> Result<Vec<usize>> {
    let err = |why: &str| {
        Err(Error::ShapeMismatch(format!(
            "GatherND: data {data:?}, indices {indices:?}, batch_dims {batch_dims}: {why}"
        )))
    };
    let Some((&m, lead)) = indices.split_last() else {
        return err("indices must have rank at least 1");
    };
    if batch_dims >= data.len() || batch_dims >= indices.len() {
        return err("batch_dims must be below both ranks");
    }
    if data[..batch_dims] != indices[..batch_dims] {
        return err("the batch axes differ");
    }
    if m < 1 || m > data.len() - batch_dims {
        return err("the last axis of indices must be between 1 and rank(data) - batch_dims");
    }
    Ok(lead.iter().chain(&data[batch_dims + m..]).copied().collect())
}

/// IsNaN: a float input, a bool output of its shape.
pub(super) fn is_nan(op: &Op, x: Fact<'_>) -> Result<Vec<OutFact>> {
    expect_dtype(op, "X", x.dtype, FLOAT)?;
    Ok(vec![(DType::Bool, x.shape.map(<[usize]>::to_vec))])
}

/// GatherElements: data of any type, int32 or int64 indices of the same rank.
pub(super) fn gather_elements(
    op: &Op,
    axis: i64,
    x: Fact<'_>,
    inputs: &[Option<Fact<'_>>],
) -> Result<Vec<OutFact>> {
    let idx = need(inputs, 1, op)?;
    expect_dtype(op, "indices", idx.dtype, INDEX)?;
    let shape = match (x.shape, idx.shape) {
        (Some(d), Some(i)) => Some(gather_elements_shape(d, i, axis)?),
        (_, i) => i.map(<[usize]>::to_vec),
    };
    same(x, shape)
}

/// GatherND: data of any type, int64 indices (int32 accepted too).
pub(super) fn gather_nd(
    op: &Op,
    batch_dims: usize,
    x: Fact<'_>,
    inputs: &[Option<Fact<'_>>],
) -> Result<Vec<OutFact>> {
    let idx = need(inputs, 1, op)?;
    expect_dtype(op, "indices", idx.dtype, INDEX)?;
    let shape = match (x.shape, idx.shape) {
        (Some(d), Some(i)) => Some(gather_nd_shape(d, i, batch_dims)?),
        _ => None,
    };
    same(x, shape)
}

/// ScatterND's operand check: `updates` has shape `indices[..-1] ++ data[m..]` where `m`
/// (the last axis of `indices`, at least 1) is at most the rank of `data`.
pub fn scatter_nd_check(data: &[usize], indices: &[usize], updates: &[usize]) -> Result<()> {
    let ok = match indices.split_last() {
        Some((&m, lead)) if m >= 1 && m <= data.len() => {
            updates.len() == lead.len() + data.len() - m
                && updates[..lead.len()] == *lead
                && updates[lead.len()..] == data[m..]
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::ShapeMismatch(format!(
            "ScatterND: data {data:?}, indices {indices:?} and updates {updates:?} do not fit"
        )))
    }
}

/// A scalar operand (a 0-D or one-element tensor) of one of the `allowed` types, checked
/// when its shape is known; its value when constant.
fn scalar_operand(op: &Op, what: &str, f: Fact<'_>, allowed: &[DType]) -> Result<Option<i64>> {
    expect_dtype(op, what, f.dtype, allowed)?;
    if f.shape
        .is_some_and(|s| s.iter().product::<usize>() != 1 || s.len() > 1)
    {
        return Err(Error::ShapeMismatch(format!(
            "{}: {what} must be a scalar, has shape {:?}",
            op.onnx_name(),
            f.shape.unwrap_or_default()
        )));
    }
    Ok(ints(Some(f))?.and_then(|v| v.first().copied()))
}

/// Trilu: any element type, rank at least 2, an optional i64 scalar `k`.
pub(super) fn trilu(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    if let Some(k) = inputs.get(1).copied().flatten() {
        scalar_operand(op, "k", k, &[DType::I64])?;
    }
    if x.shape.is_some_and(|s| s.len() < 2) {
        return Err(Error::ShapeMismatch(
            "Trilu: the input needs rank 2 or more".into(),
        ));
    }
    same(x, x.shape.map(<[usize]>::to_vec))
}

/// CumSum: f32, i32 or i64 values, an i32 or i64 scalar axis within the rank.
pub(super) fn cumsum(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    expect_dtype(op, "x", x.dtype, &[DType::F32, DType::I32, DType::I64])?;
    let axis = scalar_operand(op, "axis", need(inputs, 1, op)?, &[DType::I32, DType::I64])?;
    if let (Some(a), Some(s)) = (axis, x.shape) {
        norm_axis(a, s.len())?;
    }
    same(x, x.shape.map(<[usize]>::to_vec))
}

/// ScatterND: data of any type, int64 indices, updates of data's type; the output is data's.
pub(super) fn scatter_nd(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let (idx, upd) = (need(inputs, 1, op)?, need(inputs, 2, op)?);
    expect_dtype(op, "indices", idx.dtype, &[DType::I64])?;
    if upd.dtype != x.dtype {
        return Err(dtype_err(
            op,
            format!("updates are {} where data is {}", upd.dtype, x.dtype),
        ));
    }
    if let (Some(d), Some(i), Some(u)) = (x.shape, idx.shape, upd.shape) {
        scatter_nd_check(d, i, u)?;
    }
    same(x, x.shape.map(<[usize]>::to_vec))
}

/// Einsum: f32 operands; the output shape follows the equation once every shape is known.
pub(super) fn einsum(op: &Op, equation: &str, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let mut shapes = Vec::with_capacity(inputs.len());
    for i in 0..inputs.len() {
        let f = need(inputs, i, op)?;
        expect_dtype(op, "an operand", f.dtype, FLOAT)?;
        shapes.push(f.shape);
    }
    let shapes: Option<Vec<&[usize]>> = shapes.into_iter().collect();
    let out = match shapes {
        Some(s) => Some(einsum::plan(equation, &s)?.output_shape()),
        None => None,
    };
    Ok(vec![(DType::F32, out)])
}
