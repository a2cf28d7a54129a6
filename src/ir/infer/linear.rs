//! Shape inference of convolutions, Gemm and matrix products (float and integer forms).

use super::{both, expect_dtype, need, same, Fact, OutFact, FLOAT};
use crate::ir::op::{ConvAttrs, ConvTransposeAttrs, GemmAttrs, Op};
use crate::ir::shapes::{broadcast, conv_shape, conv_transpose_window, matmul_shape};
use crate::ir::DType;
use crate::{Error, Result};

/// Conv: float X and W.
pub(super) fn conv(op: &Op, a: &ConvAttrs, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    expect_dtype(op, "X", x.dtype, FLOAT)?;
    let w = need(inputs, 1, op)?;
    expect_dtype(op, "W", w.dtype, FLOAT)?;
    same(
        x,
        both(x.shape, w.shape)
            .map(|(x, w)| conv_shape(a, x, w))
            .transpose()?,
    )
}

/// ConvInteger: 8-bit x and w, int32 output.
pub(super) fn conv_integer(
    op: &Op,
    a: &ConvAttrs,
    x: Fact<'_>,
    inputs: &[Option<Fact<'_>>],
) -> Result<Vec<OutFact>> {
    let w = need(inputs, 1, op)?;
    expect_dtype(op, "x", x.dtype, &[DType::I8, DType::U8])?;
    expect_dtype(op, "w", w.dtype, &[DType::I8, DType::U8])?;
    Ok(vec![(
        DType::I32,
        both(x.shape, w.shape)
            .map(|(x, w)| conv_shape(a, x, w))
            .transpose()?,
    )])
}

/// QLinearConv: 8-bit x, output of y_zero_point's type.
pub(super) fn qlinear_conv(
    op: &Op,
    a: &ConvAttrs,
    x: Fact<'_>,
    inputs: &[Option<Fact<'_>>],
) -> Result<Vec<OutFact>> {
    let w = need(inputs, 3, op)?;
    let yzp = need(inputs, 7, op)?;
    expect_dtype(op, "x", x.dtype, &[DType::I8, DType::U8])?;
    let shape = both(x.shape, w.shape)
        .map(|(x, w)| conv_shape(a, x, w))
        .transpose()?;
    Ok(vec![(yzp.dtype, shape)])
}

/// ConvTranspose: float X; output channels are W's second dimension times the groups.
pub(super) fn conv_transpose(
    op: &Op,
    a: &ConvTransposeAttrs,
    x: Fact<'_>,
    inputs: &[Option<Fact<'_>>],
) -> Result<Vec<OutFact>> {
    expect_dtype(op, "X", x.dtype, FLOAT)?;
    let w = need(inputs, 1, op)?;
    let shape = match both(x.shape, w.shape) {
        Some((xs, w)) => {
            let win = conv_transpose_window(a, xs, w)?;
            let mut out = vec![xs[0], w[1] * a.conv.group.max(1)];
            out.extend(win.output);
            crate::ir::checked_numel(&out)?;
            Some(out)
        }
        None => None,
    };
    same(x, shape)
}

/// Gemm: 2-D float A and B (optionally transposed), C broadcast to the output.
pub(super) fn gemm(op: &Op, g: &GemmAttrs, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    expect_dtype(op, "A", x.dtype, FLOAT)?;
    let b = need(inputs, 1, op)?;
    let shape = match both(x.shape, b.shape) {
        Some((a, b)) => {
            if a.len() != 2 || b.len() != 2 {
                return Err(Error::ShapeMismatch(format!(
                    "Gemm operands {a:?}, {b:?} must be 2-D"
                )));
            }
            let (m, k) = if g.trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
            let (k2, n) = if g.trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
            if k != k2 {
                return Err(Error::ShapeMismatch(format!(
                    "Gemm inner sizes differ: {a:?}, {b:?}"
                )));
            }
            if let Some(c) = inputs.get(2).copied().flatten().and_then(|c| c.shape) {
                broadcast(c, &[m, n])
                    .ok()
                    .filter(|s| s == &[m, n])
                    .ok_or_else(|| {
                        Error::ShapeMismatch(format!("Gemm C {c:?} does not broadcast to [{m}, {n}]"))
                    })?;
            }
            Some(vec![m, n])
        }
        None => None,
    };
    same(x, shape)
}

/// MatMul: float A and B.
pub(super) fn matmul(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let b = need(inputs, 1, op)?;
    expect_dtype(op, "A", x.dtype, FLOAT)?;
    expect_dtype(op, "B", b.dtype, FLOAT)?;
    same(
        x,
        both(x.shape, b.shape)
            .map(|(a, b)| matmul_shape(a, b))
            .transpose()?,
    )
}

/// MatMulInteger (int32 output) and QLinearMatMul (output of y_zero_point's type): 8-bit A
/// and B.
pub(super) fn matmul_integer(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let bi = if matches!(op, Op::MatMulInteger) { 1 } else { 3 };
    let b = need(inputs, bi, op)?;
    expect_dtype(op, "A", x.dtype, &[DType::I8, DType::U8])?;
    expect_dtype(op, "B", b.dtype, &[DType::I8, DType::U8])?;
    let out_dtype = if matches!(op, Op::MatMulInteger) {
        DType::I32
    } else {
        need(inputs, 7, op)?.dtype
    };
    Ok(vec![(
        out_dtype,
        both(x.shape, b.shape)
            .map(|(a, b)| matmul_shape(a, b))
            .transpose()?,
    )])
}
