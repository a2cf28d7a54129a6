//! Shape inference of QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear.

use super::{expect_dtype, same_dtype, Fact, OutFact, FLOAT, QINT};
use crate::ir::op::{Op, QuantAttrs};
use crate::ir::DType;
use crate::Result;

/// QuantizeLinear: f32 or int32 x; the output type is y_zero_point's, else the
/// `output_dtype` attribute's, else uint8.
pub(super) fn quantize_linear(
    op: &Op,
    q: &QuantAttrs,
    x: Fact<'_>,
    inputs: &[Option<Fact<'_>>],
) -> Result<Vec<OutFact>> {
    expect_dtype(op, "x", x.dtype, &[DType::F32, DType::I32])?;
    let zp = inputs.get(2).copied().flatten();
    let out = match (zp, q.output_dtype) {
        (Some(z), _) => z.dtype,
        (None, Some(d)) => d,
        (None, None) => DType::U8,
    };
    expect_dtype(op, "y_zero_point", out, QINT)?;
    same_dtype(out, x.shape)
}

/// DequantizeLinear: an integer x, an f32 output of its shape.
pub(super) fn dequantize_linear(op: &Op, x: Fact<'_>) -> Result<Vec<OutFact>> {
    expect_dtype(op, "x", x.dtype, QINT)?;
    same_dtype(DType::F32, x.shape)
}

/// DynamicQuantizeLinear: uint8 y of x's shape, scalar f32 scale and uint8 zero point.
pub(super) fn dynamic_quantize_linear(op: &Op, x: Fact<'_>) -> Result<Vec<OutFact>> {
    expect_dtype(op, "x", x.dtype, FLOAT)?;
    Ok(vec![
        (DType::U8, x.shape.map(<[usize]>::to_vec)),
        (DType::F32, Some(vec![])),
        (DType::U8, Some(vec![])),
    ])
}
