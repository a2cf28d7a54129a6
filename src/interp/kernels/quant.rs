//! Quantization operators: QuantizeLinear / DequantizeLinear (per tensor, per axis,
//! blocked), DynamicQuantizeLinear, and the integer operators QLinearConv, QLinearMatMul,
//! ConvInteger, MatMulInteger (accumulated exactly in f64).

use super::conv::conv_raw;
use super::linalg::matmul_generic;
use crate::ir::op::{ConvAttrs, QuantAttrs};
use crate::ir::qdq::{self, int_values};
use crate::ir::{DType, Tensor, TensorData};
use crate::qscheme::{
    conv_ratio, row_qparams, ChannelScales, IntType, NanRule, PackedInts, QParams, RowRule,
};
use crate::{Error, Result};

/// Stores rounded integer values as a tensor of `dtype`.
fn store_ints(dims: Vec<usize>, v: Vec<i64>, dtype: DType) -> Result<Tensor> {
    let data = match dtype {
        DType::I8 => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I16 | DType::U16 => TensorData::Packed {
            dtype,
            bytes: v.iter().flat_map(|&x| (x as u16).to_le_bytes()).collect(),
        },
        DType::I4 | DType::U4 | DType::I2 | DType::U2 => {
            let storage = IntType::new(dtype.bits() as u8, matches!(dtype, DType::I4 | DType::I2))?;
            // The values were saturated to the type's range, so they fit in i32 and pack.
            let v: Vec<i32> = v.iter().map(|&x| x as i32).collect();
            TensorData::Packed {
                dtype,
                bytes: PackedInts::pack(storage, &v)?.into_bytes(),
            }
        }
        other => return Err(Error::Unsupported(format!("quantizing to {other}"))),
    };
    Tensor::new(dims, data)
}

/// QuantizeLinear: `clamp(round_half_even(x / scale) + zp, qmin, qmax)` with the node's
/// parameters at any granularity ([`qdq::node_params`]); NaN becomes 0.
pub fn quantize_linear(q: &QuantAttrs, x: &Tensor, scale: &Tensor, zp: Option<&Tensor>) -> Result<Tensor> {
    let out = zp.map(|z| z.dtype()).or(q.output_dtype).unwrap_or(DType::U8);
    let range =
        qdq::dtype_range(out).ok_or_else(|| Error::Unsupported(format!("QuantizeLinear to {out}")))?;
    // The zero points have the output's type, so they lie in its range and fit in i32.
    let params = qdq::node_params(q, x.dims(), scale, zp, range)?;
    let xv = x.to_f32_vec()?;
    let mut v = vec![0i32; xv.len()];
    params.quantize(&xv, x.dims(), NanRule::Zero, &mut v)?;
    store_ints(x.dims().to_vec(), v.into_iter().map(i64::from).collect(), out)
}

/// DequantizeLinear: `(x - zp) * scale` with the node's parameters at any granularity.
pub fn dequantize_linear(q: &QuantAttrs, x: &Tensor, scale: &Tensor, zp: Option<&Tensor>) -> Result<Tensor> {
    // The range is not used to dequantize; inputs of other types fail when read below.
    let range = qdq::dtype_range(x.dtype()).unwrap_or(IntType::I32.full_range());
    let params = qdq::node_params(q, x.dims(), scale, zp, range)?;
    let xv = int_values(x)?;
    let mut v = vec![0f32; xv.len()];
    params.dequantize(&xv, x.dims(), &mut v)?;
    Tensor::from_f32(x.dims().to_vec(), v)
}

/// DynamicQuantizeLinear: u8 with a scale and zero point computed from the data range
/// ([`RowRule::OnnxU8`] over the whole tensor).
pub fn dynamic_quantize_linear(x: &Tensor) -> Result<Vec<Tensor>> {
    let xv = x.as_f32()?;
    let QParams { scale, zero_point } = row_qparams(xv, RowRule::OnnxU8);
    let (zp, q): (f32, Vec<u8>) = if scale == 0.0 {
        (0.0, vec![0; xv.len()])
    } else {
        let zp = zero_point as f32;
        (
            zp,
            xv.iter()
                .map(|&v| ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as u8)
                .collect(),
        )
    };
    Ok(vec![
        Tensor::from_u8(x.dims().to_vec(), q)?,
        Tensor::from_f32(vec![], vec![scale])?,
        Tensor::from_u8(vec![], vec![zp as u8])?,
    ])
}

fn req<'a>(inputs: &[Option<&'a Tensor>], i: usize, op: &str) -> Result<&'a Tensor> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| Error::InvalidModel(format!("{op}: input {i} is missing")))
}

/// Values minus a zero point that is a scalar or one value per slice of axis `axis`.
fn centered(t: &Tensor, zp: Option<&Tensor>, axis: usize) -> Result<Vec<f64>> {
    let v = int_values(t)?;
    let z = match zp {
        Some(z) => int_values(z)?,
        None => vec![0],
    };
    let d = t.dims();
    if z.len() == 1 {
        return Ok(v.iter().map(|&x| (x - z[0]) as f64).collect());
    }
    if axis >= d.len() || z.len() != d[axis] {
        return Err(Error::ShapeMismatch(format!(
            "zero point of {} values does not fit {d:?}",
            z.len()
        )));
    }
    let inner: usize = d[axis + 1..].iter().product();
    Ok(v.iter()
        .enumerate()
        .map(|(i, &x)| (x - z[(i / inner) % d[axis]]) as f64)
        .collect())
}

/// The single value of a per-tensor parameter.
fn scalar(t: &Tensor, what: &str) -> Result<f32> {
    match t.to_f32_vec()?.as_slice() {
        [v] => Ok(*v),
        v => Err(Error::ShapeMismatch(format!(
            "{what} must hold one value, it holds {}",
            v.len()
        ))),
    }
}

/// Checks that a per-channel parameter has one value or `channels` values.
fn per_channel(v: Vec<f32>, channels: usize, what: &str) -> Result<Vec<f32>> {
    if ChannelScales::new(&v, channels).is_some() {
        Ok(v)
    } else {
        Err(Error::ShapeMismatch(format!(
            "{what} has {} values for {channels} channels",
            v.len()
        )))
    }
}

fn requantize(
    acc: &[f64],
    dims: Vec<usize>,
    mult: &[f32],
    channel: impl Fn(usize) -> usize,
    yzp: &Tensor,
) -> Result<Tensor> {
    let out = yzp.dtype();
    let (lo, hi) = out
        .int_range()
        .ok_or_else(|| Error::Unsupported(format!("requantizing to {out}")))?;
    let z = match int_values(yzp)?.as_slice() {
        [z] => *z as f64,
        v => {
            return Err(Error::ShapeMismatch(format!(
                "y_zero_point must hold one value, it holds {}",
                v.len()
            )))
        }
    };
    let v = acc
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            ((a * mult[channel(i)] as f64).round_ties_even() + z).clamp(lo as f64, hi as f64) as i64
        })
        .collect();
    store_ints(dims, v, out)
}

/// QLinearConv: integer convolution, then requantization to y's scale and zero point.
pub fn qlinear_conv(attrs: &ConvAttrs, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let r = |i| req(inputs, i, "QLinearConv");
    let (x, xs, xz, w, ws, wz, ys, yz) = (r(0)?, r(1)?, r(2)?, r(3)?, r(4)?, r(5)?, r(6)?, r(7)?);
    let xc = centered(x, Some(xz), 0)?;
    let wc = centered(w, Some(wz), 0)?;
    let bias = inputs
        .get(8)
        .copied()
        .flatten()
        .map(|b| {
            b.to_i64_vec()
                .map(|v| v.iter().map(|&x| x as f64).collect::<Vec<_>>())
        })
        .transpose()?;
    let (dims, acc) = conv_raw(attrs, x.dims(), &xc, w.dims(), &wc, bias.as_deref())?;
    let c_out = dims[1];
    let (xs, ys) = (scalar(xs, "x_scale")?, scalar(ys, "y_scale")?);
    let ws = per_channel(ws.to_f32_vec()?, c_out, "w_scale")?;
    let mult: Vec<f32> = ws.iter().map(|&w| conv_ratio(xs, w, ys)).collect();
    let vol: usize = dims[2..].iter().product();
    let per_channel = mult.len() > 1;
    requantize(
        &acc,
        dims,
        &mult,
        |i| if per_channel { (i / vol) % c_out } else { 0 },
        yz,
    )
}

/// QLinearMatMul: integer matmul, then requantization (b's scale may be per column).
pub fn qlinear_matmul(inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let r = |i| req(inputs, i, "QLinearMatMul");
    let (a, as_, az, b, bs, bz, ys, yz) = (r(0)?, r(1)?, r(2)?, r(3)?, r(4)?, r(5)?, r(6)?, r(7)?);
    let ac = centered(a, Some(az), a.dims().len().saturating_sub(2))?;
    let bc = centered(b, Some(bz), b.dims().len().saturating_sub(1))?;
    let (dims, acc) = matmul_generic(&ac, a.dims(), &bc, b.dims())?;
    let n = *dims.last().unwrap_or(&1);
    if as_.numel() != 1 {
        return Err(Error::Unsupported("QLinearMatMul with a per-row a_scale".into()));
    }
    let (asv, ysv) = (scalar(as_, "a_scale")?, scalar(ys, "y_scale")?);
    let bsv = per_channel(bs.to_f32_vec()?, n, "b_scale")?;
    let mult: Vec<f32> = bsv.iter().map(|&s| conv_ratio(asv, s, ysv)).collect();
    let per_col = mult.len() > 1;
    requantize(&acc, dims, &mult, |i| if per_col { i % n } else { 0 }, yz)
}

/// ConvInteger: `conv(x - x_zp, w - w_zp)` as i32.
pub fn conv_integer(attrs: &ConvAttrs, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let x = req(inputs, 0, "ConvInteger")?;
    let w = req(inputs, 1, "ConvInteger")?;
    let xc = centered(x, inputs.get(2).copied().flatten(), 1)?;
    let wc = centered(w, inputs.get(3).copied().flatten(), 0)?;
    let (dims, acc) = conv_raw(attrs, x.dims(), &xc, w.dims(), &wc, None)?;
    Tensor::from_i32(dims, acc.iter().map(|&v| v as i32).collect())
}

/// MatMulInteger: `(A - a_zp) · (B - b_zp)` as i32.
pub fn matmul_integer(inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let a = req(inputs, 0, "MatMulInteger")?;
    let b = req(inputs, 1, "MatMulInteger")?;
    let ac = centered(
        a,
        inputs.get(2).copied().flatten(),
        a.dims().len().saturating_sub(2),
    )?;
    let bc = centered(
        b,
        inputs.get(3).copied().flatten(),
        b.dims().len().saturating_sub(1),
    )?;
    let (dims, acc) = matmul_generic(&ac, a.dims(), &bc, b.dims())?;
    Tensor::from_i32(dims, acc.iter().map(|&v| v as i32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_tensor_quantize_rounds_half_to_even_and_saturates() {
        let x = Tensor::from_f32(vec![6], vec![0.5, 1.5, 2.5, -0.5, 1000.0, -1000.0]).unwrap();
        let s = Tensor::scalar_f32(1.0);
        let z = Tensor::from_i8(vec![], vec![0]).unwrap();
        let q = quantize_linear(&QuantAttrs::default(), &x, &s, Some(&z)).unwrap();
        assert_eq!(q.as_i8().unwrap(), &[0, 2, 2, 0, 127, -128]);
        let back = dequantize_linear(&QuantAttrs::default(), &q, &s, Some(&z)).unwrap();
        assert_eq!(back.as_f32().unwrap(), &[0.0, 2.0, 2.0, 0.0, 127.0, -128.0]);
    }

    #[test]
    fn per_axis_and_blocked_parameters() {
        // x: [2, 4]; per-axis on axis 0, blocked with block 2 on axis 1.
        let x = Tensor::from_f32(vec![2, 4], vec![1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -4.0]).unwrap();
        let per_axis = QuantAttrs {
            axis: 0,
            ..Default::default()
        };
        let s = Tensor::from_f32(vec![2], vec![1.0, 0.5]).unwrap();
        let z = Tensor::from_u8(vec![2], vec![10, 100]).unwrap();
        let q = quantize_linear(&per_axis, &x, &s, Some(&z)).unwrap();
        assert_eq!(q.as_u8().unwrap(), &[11, 12, 13, 14, 98, 96, 94, 92]);
        let blocked = QuantAttrs {
            axis: 1,
            block_size: 2,
            output_dtype: Some(DType::I4),
            ..Default::default()
        };
        let bs = Tensor::from_f32(vec![2, 2], vec![1.0, 2.0, 0.5, 1.0]).unwrap();
        let q4 = quantize_linear(&blocked, &x, &bs, None).unwrap();
        assert_eq!(q4.dtype(), DType::I4);
        assert_eq!(
            q4.to_f32_vec().unwrap(),
            vec![1.0, 2.0, 2.0, 2.0, -2.0, -4.0, -3.0, -4.0]
        );
        let back = dequantize_linear(&blocked, &q4, &bs, None).unwrap();
        assert_eq!(
            back.as_f32().unwrap(),
            &[1.0, 2.0, 4.0, 4.0, -1.0, -2.0, -3.0, -4.0]
        );
        let wrong = Tensor::from_f32(vec![3], vec![1.0; 3]).unwrap();
        assert!(quantize_linear(&per_axis, &x, &wrong, None).is_err());
    }

    #[test]
    fn malformed_qlinear_parameters_are_errors() {
        let x = Tensor::from_u8(vec![1, 1, 2, 2], vec![1, 2, 3, 4]).unwrap();
        let w = Tensor::from_i8(vec![4, 1, 1, 1], vec![1, 2, 3, 4]).unwrap();
        let s1 = Tensor::scalar_f32(0.5);
        let s2 = Tensor::from_f32(vec![2], vec![0.5, 0.25]).unwrap();
        let empty = Tensor::from_f32(vec![0], vec![]).unwrap();
        let z8 = Tensor::from_u8(vec![], vec![0]).unwrap();
        let zi = Tensor::from_i8(vec![], vec![0]).unwrap();
        let z_empty = Tensor::from_u8(vec![0], vec![]).unwrap();
        let attrs = ConvAttrs {
            group: 1,
            ..Default::default()
        };
        let run = |xs: &Tensor, ws: &Tensor, ys: &Tensor, yz: &Tensor| {
            let inputs = [
                Some(&x),
                Some(xs),
                Some(&z8),
                Some(&w),
                Some(ws),
                Some(&zi),
                Some(ys),
                Some(yz),
            ];
            qlinear_conv(&attrs, &inputs)
        };
        assert!(run(&s1, &s1, &s1, &z8).is_ok());
        assert!(run(&s1, &s2, &s1, &z8).is_err(), "2 scales for 4 channels");
        assert!(run(&empty, &s1, &s1, &z8).is_err());
        assert!(run(&s1, &s1, &empty, &z8).is_err());
        assert!(run(&s1, &s1, &s1, &z_empty).is_err());
    }

    #[test]
    fn dynamic_quantization_matches_the_onnx_formula() {
        let x = Tensor::from_f32(vec![4], vec![0.0, 2.0, -3.0, 1.0]).unwrap();
        let out = dynamic_quantize_linear(&x).unwrap();
        let scale = 5.0f32 / 255.0;
        assert_eq!(out[1].as_f32().unwrap(), &[scale]);
        let zp = (3.0f32 / scale).round_ties_even();
        assert_eq!(out[2].as_u8().unwrap(), &[zp as u8]);
        let expect: Vec<u8> = [0.0f32, 2.0, -3.0, 1.0]
            .iter()
            .map(|v| ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as u8)
            .collect();
        assert_eq!(out[0].as_u8().unwrap(), expect.as_slice());
    }
}
