//! Shape inference of pooling and reductions.

use super::{expect_dtype, ints, same, Fact, OutFact, FLOAT, NUMERIC};
use crate::ir::op::{Op, PoolAttrs, ReduceKind};
use crate::ir::shapes::{pool_window, reduce_axes, reduce_shape};
use crate::ir::DType;
use crate::{Error, Result};

/// MaxPool and AveragePool: N and C kept, the spatial dimensions from the window.
pub(super) fn pool(op: &Op, p: &PoolAttrs, x: Fact<'_>) -> Result<Vec<OutFact>> {
    expect_dtype(op, "X", x.dtype, &[DType::F32, DType::I8, DType::U8])?;
    let shape = match x.shape {
        Some(s) => {
            let win = pool_window(p, s)?;
            let mut out = s[..2].to_vec();
            out.extend(win.output);
            Some(out)
        }
        None => None,
    };
    same(x, shape)
}

/// GlobalAveragePool: rank at least 3, the spatial dimensions reduced to 1.
pub(super) fn global_average_pool(op: &Op, x: Fact<'_>) -> Result<Vec<OutFact>> {
    expect_dtype(op, "X", x.dtype, FLOAT)?;
    if x.shape.is_some_and(|s| s.len() < 3) {
        return Err(Error::ShapeMismatch(
            "GlobalAveragePool input must have rank >= 3".into(),
        ));
    }
    same(
        x,
        x.shape.map(|s| {
            s.iter()
                .enumerate()
                .map(|(i, &d)| if i < 2 { d } else { 1 })
                .collect()
        }),
    )
}

/// ReduceMean / Sum / Max / Min over the axes of the optional (constant) axes operand.
pub(super) fn reduce(
    op: &Op,
    kind: ReduceKind,
    keepdims: bool,
    noop_with_empty_axes: bool,
    x: Fact<'_>,
    inputs: &[Option<Fact<'_>>],
) -> Result<Vec<OutFact>> {
    let allowed: &[DType] = match kind {
        ReduceKind::Mean => FLOAT,
        ReduceKind::Sum => NUMERIC,
        ReduceKind::Max | ReduceKind::Min => &[
            DType::F32,
            DType::I32,
            DType::I64,
            DType::I8,
            DType::U8,
            DType::Bool,
        ],
    };
    expect_dtype(op, "data", x.dtype, allowed)?;
    let axes_input = inputs.get(1).copied().flatten();
    let shape = match (x.shape, axes_input) {
        (Some(s), None) => Some(reduce_shape(
            s,
            &reduce_axes(s.len(), None, noop_with_empty_axes)?,
            keepdims,
        )),
        (Some(s), Some(a)) => match ints(Some(a))? {
            Some(ax) => Some(reduce_shape(
                s,
                &reduce_axes(s.len(), Some(&ax), noop_with_empty_axes)?,
                keepdims,
            )),
            None => None,
        },
        _ => None,
    };
    same(x, shape)
}
