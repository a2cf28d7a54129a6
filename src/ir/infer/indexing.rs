//! Shape inference of the indexing operators: IsNaN, GatherElements and GatherND. The shape
//! rules are public so the interpreter checks its operands with the same functions.

use super::{expect_dtype, need, same, Fact, OutFact, FLOAT};
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
