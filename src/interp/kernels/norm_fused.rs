//! RMS normalisation, ONNX Runtime's skip (residual + bias) layer normalisations and
//! BiasGelu: the fused normalisations of transformer blocks.

use crate::ir::shapes::norm_axis;
use crate::ir::{pointwise, Op, Tensor};
use crate::{Error, Result};

/// RMSNormalization over the axes from `axis` on: `x / sqrt(mean(x²) + eps) * scale`.
/// Returns Y and the InvStdDev statistics (X's shape with the normalised axes 1).
pub fn rms_norm(x: &Tensor, scale: &Tensor, axis: i64, eps: f32) -> Result<Vec<Tensor>> {
    let d = x.dims();
    let ax = norm_axis(axis, d.len())?;
    let inner: usize = d[ax..].iter().product();
    let s = super::layout::broadcast_to(scale, &d[ax..])?;
    let sv = s.as_f32()?;
    let mut out = x.as_f32()?.to_vec();
    let rows: usize = d[..ax].iter().product();
    let mut invs = Vec::with_capacity(rows);
    if inner > 0 {
        for row in out.chunks_mut(inner) {
            let inv = rms_row(row, sv, eps);
            invs.push(inv);
        }
    } else {
        invs.resize(rows, f32::NAN);
    }
    let stat_dims: Vec<usize> = d
        .iter()
        .enumerate()
        .map(|(i, &n)| if i < ax { n } else { 1 })
        .collect();
    Ok(vec![
        Tensor::from_f32(d.to_vec(), out)?,
        Tensor::from_f32(stat_dims, invs)?,
    ])
}

/// Normalises one row in place by its root mean square and multiplies by `scale`; returns
/// the inverse RMS.
fn rms_row(row: &mut [f32], scale: &[f32], eps: f32) -> f32 {
    let ms = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / row.len() as f64;
    let inv = 1.0 / (ms + eps as f64).sqrt();
    for (v, &g) in row.iter_mut().zip(scale) {
        *v = ((*v as f64 * inv) as f32) * g;
    }
    inv as f32
}

/// Normalises one row in place (mean and variance), then `* gamma + beta`; returns the mean
/// and inverse standard deviation.
fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: Option<&[f32]>, eps: f32) -> (f32, f32) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + eps as f64).sqrt();
    for (j, v) in row.iter_mut().enumerate() {
        let y = ((*v as f64 - mean) * inv) as f32 * gamma[j];
        *v = y + beta.map_or(0.0, |b| b[j]);
    }
    (mean as f32, inv as f32)
}

/// A 1-D operand of length `hidden`, or an error naming it.
fn vector<'a>(op: &str, what: &str, t: &'a Tensor, hidden: usize) -> Result<&'a [f32]> {
    let v = t.as_f32()?;
    if t.dims().len() != 1 || v.len() != hidden {
        return Err(Error::ShapeMismatch(format!(
            "{op}: {what} has shape {:?}, expected [{hidden}]",
            t.dims()
        )));
    }
    Ok(v)
}

/// SkipLayerNormalization (or its simplified, RMS form): `s = input + skip + bias` normalised
/// over the last axis with gamma (and beta). Returns output, mean (zeros when simplified),
/// inv_std_var and `s`.
pub fn skip_norm(
    simplified: bool,
    input: &Tensor,
    skip: &Tensor,
    gamma: &Tensor,
    beta: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Vec<Tensor>> {
    let op = if simplified {
        "SkipSimplifiedLayerNormalization"
    } else {
        "SkipLayerNormalization"
    };
    let d = input.dims();
    let hidden = *d
        .last()
        .ok_or_else(|| Error::ShapeMismatch(format!("{op}: input is a scalar")))?;
    let gamma = vector(op, "gamma", gamma, hidden)?;
    let beta = beta.map(|b| vector(op, "beta", b, hidden)).transpose()?;
    let bias = bias.map(|b| vector(op, "bias", b, hidden)).transpose()?;
    let skip = super::layout::broadcast_to(skip, d)?;
    let mut sum = input.as_f32()?.to_vec();
    for (row, srow) in sum
        .chunks_mut(hidden.max(1))
        .zip(skip.as_f32()?.chunks(hidden.max(1)))
    {
        for (j, (v, &s)) in row.iter_mut().zip(srow).enumerate() {
            *v += s + bias.map_or(0.0, |b| b[j]);
        }
    }
    let mut out = sum.clone();
    let rows = out.len().checked_div(hidden).unwrap_or(0);
    let (mut means, mut invs) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for row in out.chunks_mut(hidden.max(1)).take(rows) {
        let (mean, inv) = if simplified {
            (0.0, rms_row(row, gamma, eps))
        } else {
            layer_norm_row(row, gamma, beta, eps)
        };
        means.push(mean);
        invs.push(inv);
    }
    let mut stat_dims = d.to_vec();
    if let Some(last) = stat_dims.last_mut() {
        *last = 1;
    }
    if hidden == 0 {
        let n = crate::ir::checked_numel(&stat_dims)?;
        means.resize(n, f32::NAN);
        invs.resize(n, f32::NAN);
    }
    Ok(vec![
        Tensor::from_f32(d.to_vec(), out)?,
        Tensor::from_f32(stat_dims.clone(), means)?,
        Tensor::from_f32(stat_dims, invs)?,
        Tensor::from_f32(d.to_vec(), sum)?,
    ])
}

/// GELU of `x + bias` (bias broadcast to X), exact or with the tanh approximation.
pub fn bias_gelu(x: &Tensor, bias: &Tensor, tanh_approximation: bool) -> Result<Tensor> {
    let d = x.dims();
    let b = super::layout::broadcast_to(bias, d)?;
    let mut sum = x.as_f32()?.to_vec();
    for (v, &c) in sum.iter_mut().zip(b.as_f32()?) {
        *v += c;
    }
    let mut y = vec![0f32; sum.len()];
    pointwise::map(&Op::Gelu { tanh_approximation }, &sum, &mut y)?;
    Tensor::from_f32(d.to_vec(), y)
}
