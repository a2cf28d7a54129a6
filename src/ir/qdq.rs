//! The glue between QuantizeLinear / DequantizeLinear nodes and [`QTensorParams`]: the
//! parameters a node's scale and zero-point tensors describe, and the initializers and
//! attributes that describe given parameters.

use super::op::QuantAttrs;
use super::shapes::norm_axis;
use super::{DType, Tensor, TensorData};
use crate::qscheme::{Granularity, QRange, QTensorParams};
use crate::{Error, Result};

/// Integer values of any integer tensor (packed int4/int2/int16 included).
pub(crate) fn int_values(t: &Tensor) -> Result<Vec<i64>> {
    match t.data() {
        TensorData::Packed { .. } => Ok(t.to_f32_vec()?.into_iter().map(|v| v as i64).collect()),
        TensorData::F32(_) => Err(Error::DtypeMismatch("expected an integer tensor, got f32".into())),
        _ => t.to_i64_vec(),
    }
}

/// The parameters of a QuantizeLinear or DequantizeLinear node over an input of shape
/// `dims`: per tensor when the scale holds one value and there is no `block_size`, per
/// axis when the scale is 1-D along `attrs.axis`, per group when `block_size` is set (the
/// scale then has `dims`' shape with the axis divided into `ceil(len / block_size)`
/// blocks). A missing zero point is 0. The values are taken as given.
pub fn node_params(
    attrs: &QuantAttrs,
    dims: &[usize],
    scale: &Tensor,
    zero_point: Option<&Tensor>,
    range: QRange,
) -> Result<QTensorParams> {
    let param_dims = scale.dims();
    let pairs: usize = param_dims.iter().product();
    let granularity = if pairs == 1 && attrs.block_size == 0 {
        Granularity::Tensor
    } else {
        let axis = norm_axis(attrs.axis, dims.len())?;
        if attrs.block_size == 0 {
            if param_dims.len() != 1 || param_dims[0] != dims[axis] {
                return Err(Error::ShapeMismatch(format!(
                    "per-axis scale of shape {param_dims:?} does not match axis {axis} of {dims:?}"
                )));
            }
            Granularity::Axis(axis)
        } else {
            let mut expect = dims.to_vec();
            expect[axis] = dims[axis].div_ceil(attrs.block_size);
            if param_dims != expect.as_slice() {
                return Err(Error::ShapeMismatch(format!(
                    "blocked scale of shape {param_dims:?} does not match {dims:?} with block {} on axis {axis}",
                    attrs.block_size
                )));
            }
            Granularity::Group {
                axis,
                size: attrs.block_size,
            }
        }
    };
    let scales = scale.to_f32_vec()?;
    let zero_points = match zero_point {
        Some(z) => int_values(z)?,
        None => vec![0; scales.len()],
    };
    if zero_points.len() != scales.len() {
        return Err(Error::ShapeMismatch(
            "zero point and scale differ in shape".into(),
        ));
    }
    let zero_points = zero_points
        .into_iter()
        .map(|z| {
            i32::try_from(z).map_err(|_| Error::Unsupported(format!("zero point {z} does not fit int32")))
        })
        .collect::<Result<Vec<_>>>()?;
    QTensorParams::new(granularity, range, scales, zero_points)
}

/// The inputs and attributes of a DequantizeLinear node that dequantizes an int8 tensor of
/// shape `dims` with `params`.
#[derive(Clone, Debug, PartialEq)]
pub struct DqInputs {
    /// The node's attributes (`axis`, `block_size`).
    pub attrs: QuantAttrs,
    /// The `f32` scale initializer: a scalar per tensor, 1-D per axis, `dims` with the axis
    /// divided into blocks per group.
    pub scale: Tensor,
    /// The int8 zero-point initializer, shaped as the scale.
    pub zero_point: Tensor,
}

/// The DequantizeLinear inputs that describe `params` for an int8 tensor of shape `dims`
/// (the inverse of [`node_params`]). Fails if a zero point does not fit `i8`.
pub fn dq_inputs(params: &QTensorParams, dims: &[usize]) -> Result<DqInputs> {
    let zero_points = params
        .zero_points()
        .iter()
        .map(|&z| i8::try_from(z).map_err(|_| Error::Internal(format!("zero point {z} does not fit i8"))))
        .collect::<Result<Vec<_>>>()?;
    let (attrs, param_dims) = match params.granularity() {
        Granularity::Tensor => {
            let attrs = QuantAttrs {
                axis: 0,
                ..QuantAttrs::default()
            };
            (attrs, vec![])
        }
        Granularity::Axis(axis) => {
            let attrs = QuantAttrs {
                axis: axis as i64,
                ..QuantAttrs::default()
            };
            (attrs, vec![params.scales().len()])
        }
        Granularity::Group { axis, size } => {
            let Some(&len) = dims.get(axis) else {
                return Err(Error::invalid_argument(
                    "axis",
                    format!("axis {axis} is out of range for a tensor of rank {}", dims.len()),
                ));
            };
            let mut param_dims = dims.to_vec();
            param_dims[axis] = len.div_ceil(size);
            let attrs = QuantAttrs {
                axis: axis as i64,
                block_size: size,
                ..QuantAttrs::default()
            };
            (attrs, param_dims)
        }
    };
    let scale = if param_dims.is_empty() {
        Tensor::scalar_f32(params.scales()[0])
    } else {
        Tensor::from_f32(param_dims.clone(), params.scales().to_vec())?
    };
    Ok(DqInputs {
        attrs,
        scale,
        zero_point: Tensor::from_i8(param_dims, zero_points)?,
    })
}

/// The range of a quantized integer type, if it is one.
pub fn dtype_range(dtype: DType) -> Option<QRange> {
    // Every integer type's range holds 0; the f32 bound of int32 saturates to i32::MAX.
    dtype
        .int_range()
        .map(|(lo, hi)| QRange::new_unchecked(lo as i32, hi as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_parameters_round_trip() {
        let dims = [2, 4];
        let range = QRange::I8;
        for params in [
            QTensorParams::per_tensor(0.5, -3, range).unwrap(),
            QTensorParams::per_axis(0, vec![0.5, 0.25], vec![1, -1], range).unwrap(),
            QTensorParams::per_group(1, 3, vec![0.5, 0.25, 1.0, 2.0], vec![0, 1, 2, 3], range).unwrap(),
        ] {
            let dq = dq_inputs(&params, &dims).unwrap();
            let back = node_params(&dq.attrs, &dims, &dq.scale, Some(&dq.zero_point), range).unwrap();
            assert_eq!(back, params);
        }
        let wide = QTensorParams::per_tensor(0.5, 300, QRange::new(-1000, 1000).unwrap()).unwrap();
        assert!(dq_inputs(&wide, &dims).is_err());
        let attrs = QuantAttrs {
            axis: 1,
            ..QuantAttrs::default()
        };
        let three = Tensor::from_f32(vec![3], vec![1.0; 3]).unwrap();
        assert!(node_params(&attrs, &dims, &three, None, range).is_err());
        assert_eq!(dtype_range(DType::I4), Some(QRange::new(-8, 7).unwrap()));
        assert_eq!(dtype_range(DType::I32).map(|r| r.qmax()), Some(i32::MAX));
        assert_eq!(dtype_range(DType::F32), None);
    }
}
