//! Shape inference of the operators that read shapes or build tensors from scalars: Shape,
//! ConstantOfShape and Range.

use super::{expect_dtype, ints, Fact, OutFact};
use crate::ir::op::Op;
use crate::ir::shapes::shape_range;
use crate::ir::{checked_numel, DType, Tensor, MAX_TENSOR_ELEMENTS};
use crate::{Error, Result};

/// Shape: a 1-D int64 tensor of the selected dimensions' count.
pub(super) fn shape(start: i64, end: Option<i64>, x: Fact<'_>) -> Result<Vec<OutFact>> {
    Ok(vec![(
        DType::I64,
        x.shape.map(|s| {
            let (a, b) = shape_range(s.len(), start, end);
            vec![b - a]
        }),
    )])
}

/// ConstantOfShape: the shape from the constant int64 input, the type of `value`.
pub(super) fn constant_of_shape(op: &Op, value: &Tensor, x: Fact<'_>) -> Result<Vec<OutFact>> {
    expect_dtype(op, "input", x.dtype, &[DType::I64])?;
    let shape = ints(Some(x))?
        .map(|v| {
            v.iter()
                .map(|&d| {
                    usize::try_from(d).map_err(|_| Error::ShapeMismatch(format!("ConstantOfShape size {d}")))
                })
                .collect::<Result<Vec<usize>>>()
        })
        .transpose()?;
    if let Some(s) = &shape {
        checked_numel(s)?;
    }
    Ok(vec![(value.dtype(), shape)])
}

/// Range: a 1-D tensor whose length is known when start, limit and delta are constant.
pub(super) fn range(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    expect_dtype(op, "start", x.dtype, &[DType::F32, DType::I32, DType::I64])?;
    let vals: Option<Vec<f64>> = (0..3)
        .map(|i| {
            inputs
                .get(i)
                .copied()
                .flatten()
                .and_then(|f| f.value)
                .and_then(|t| t.to_f32_vec().ok())
                .and_then(|v| v.first().map(|&x| x as f64))
        })
        .collect();
    let shape = match vals {
        Some(v) => Some(vec![range_len(v[0], v[1], v[2])?]),
        None => None,
    };
    Ok(vec![(x.dtype, shape)])
}

/// Number of elements of Range(start, limit, delta), bounded.
pub fn range_len(start: f64, limit: f64, delta: f64) -> Result<usize> {
    if delta == 0.0 || !(start.is_finite() && limit.is_finite() && delta.is_finite()) {
        return Err(Error::ShapeMismatch(format!(
            "Range({start}, {limit}, {delta}) is not finite"
        )));
    }
    let n = ((limit - start) / delta).ceil().max(0.0);
    if n > MAX_TENSOR_ELEMENTS as f64 {
        return Err(Error::ResourceLimit(format!(
            "Range({start}, {limit}, {delta}) has {n} elements"
        )));
    }
    Ok(n as usize)
}
