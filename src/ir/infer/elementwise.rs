//! Shape inference of elementwise operators: unary and activation functions, normalizations,
//! broadcasting binary, comparison and logical operators, Where and Expand.

use super::{both, dtype_err, expect_dtype, ints, need, same, Fact, OutFact, FLOAT, NUMERIC};
use crate::ir::op::{BinaryOp, Op, UnaryOp};
use crate::ir::shapes::{broadcast, norm_axis};
use crate::ir::DType;
use crate::{Error, Result};

/// An operator whose output has the type and shape of X, which must be one of `allowed`.
pub(super) fn same_shape(op: &Op, x: Fact<'_>, allowed: &[DType]) -> Result<Vec<OutFact>> {
    expect_dtype(op, "X", x.dtype, allowed)?;
    same(x, x.shape.map(<[usize]>::to_vec))
}

/// A unary operator: Relu, Neg and Abs take any numeric type, Not bools, the others floats.
pub(super) fn unary(op: &Op, u: UnaryOp, x: Fact<'_>) -> Result<Vec<OutFact>> {
    let allowed: &[DType] = match u {
        UnaryOp::Relu | UnaryOp::Neg | UnaryOp::Abs => NUMERIC,
        UnaryOp::Not => &[DType::Bool],
        _ => FLOAT,
    };
    same_shape(op, x, allowed)
}

/// Softmax: float X, `axis` within its rank.
pub(super) fn softmax(op: &Op, axis: i64, x: Fact<'_>) -> Result<Vec<OutFact>> {
    expect_dtype(op, "X", x.dtype, FLOAT)?;
    if let Some(s) = x.shape {
        norm_axis(axis, s.len())?;
    }
    same(x, x.shape.map(<[usize]>::to_vec))
}

/// LayerNormalization: Y like X, then Mean and InvStdDev with the dimensions from `axis` on
/// reduced to 1.
pub(super) fn layer_normalization(op: &Op, axis: i64, x: Fact<'_>) -> Result<Vec<OutFact>> {
    expect_dtype(op, "X", x.dtype, FLOAT)?;
    let stats = match x.shape {
        Some(s) => {
            let ax = norm_axis(axis, s.len())?;
            Some(
                s.iter()
                    .enumerate()
                    .map(|(i, &d)| if i < ax { d } else { 1 })
                    .collect::<Vec<_>>(),
            )
        }
        None => None,
    };
    Ok(vec![
        (x.dtype, x.shape.map(<[usize]>::to_vec)),
        (DType::F32, stats.clone()),
        (DType::F32, stats),
    ])
}

/// A broadcasting binary operator (Max and Min excepted): operands of one numeric type,
/// except Pow's exponent.
pub(super) fn binary(op: &Op, b: BinaryOp, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let y = need(inputs, 1, op)?;
    if x.dtype != y.dtype && b != BinaryOp::Pow {
        return Err(dtype_err(
            op,
            format!("operands have types {} and {}", x.dtype, y.dtype),
        ));
    }
    if b != BinaryOp::Pow {
        expect_dtype(op, "A", x.dtype, NUMERIC)?;
    }
    same(
        x,
        both(x.shape, y.shape).map(|(a, b)| broadcast(a, b)).transpose()?,
    )
}

/// Max and Min: any number of operands of one numeric type, broadcast together.
pub(super) fn variadic_min_max(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    expect_dtype(op, "data_0", x.dtype, NUMERIC)?;
    let mut shape = x.shape.map(<[usize]>::to_vec);
    for f in inputs.iter().skip(1) {
        let f = f.ok_or_else(|| Error::InvalidModel(format!("{}: an input is empty", op.onnx_name())))?;
        if f.dtype != x.dtype {
            return Err(dtype_err(
                op,
                format!("operands have types {} and {}", x.dtype, f.dtype),
            ));
        }
        shape = match (shape, f.shape) {
            (Some(a), Some(b)) => Some(broadcast(&a, b)?),
            _ => None,
        };
    }
    same(x, shape)
}

/// A comparison: operands of one type, a broadcast bool output.
pub(super) fn compare(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let y = need(inputs, 1, op)?;
    if x.dtype != y.dtype {
        return Err(dtype_err(
            op,
            format!("operands have types {} and {}", x.dtype, y.dtype),
        ));
    }
    expect_dtype(
        op,
        "A",
        x.dtype,
        &[
            DType::F32,
            DType::I32,
            DType::I64,
            DType::I8,
            DType::U8,
            DType::Bool,
        ],
    )?;
    Ok(vec![(
        DType::Bool,
        both(x.shape, y.shape).map(|(a, b)| broadcast(a, b)).transpose()?,
    )])
}

/// A logical operator: bool operands, a broadcast bool output.
pub(super) fn logical(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let y = need(inputs, 1, op)?;
    expect_dtype(op, "A", x.dtype, &[DType::Bool])?;
    expect_dtype(op, "B", y.dtype, &[DType::Bool])?;
    Ok(vec![(
        DType::Bool,
        both(x.shape, y.shape).map(|(a, b)| broadcast(a, b)).transpose()?,
    )])
}

/// Where: a bool condition, X and Y of one type, all three broadcast together.
pub(super) fn where_(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let (a, b) = (need(inputs, 1, op)?, need(inputs, 2, op)?);
    expect_dtype(op, "condition", x.dtype, &[DType::Bool])?;
    if a.dtype != b.dtype {
        return Err(dtype_err(
            op,
            format!("X and Y have types {} and {}", a.dtype, b.dtype),
        ));
    }
    let shape = match (x.shape, a.shape, b.shape) {
        (Some(c), Some(p), Some(q)) => Some(broadcast(&broadcast(c, p)?, q)?),
        _ => None,
    };
    Ok(vec![(a.dtype, shape)])
}

/// Expand: X broadcast with the constant target shape.
pub(super) fn expand(x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let target = ints(inputs.get(1).copied().flatten())?;
    let shape = match (x.shape, target) {
        (Some(s), Some(t)) => {
            let t: Vec<usize> = t
                .iter()
                .map(|&d| {
                    usize::try_from(d)
                        .map_err(|_| Error::ShapeMismatch(format!("Expand to negative size {d}")))
                })
                .collect::<Result<_>>()?;
            Some(broadcast(s, &t)?)
        }
        _ => None,
    };
    same(x, shape)
}
