//! Softmax, BatchNormalization and ReduceMean.

use crate::ir::shapes::{norm_axis, reduce_axes, reduce_shape};
use crate::ir::Tensor;
use crate::{Error, Result};

/// Softmax along `axis` (with `coerce_2d`, over all axes from `axis` on).
pub fn softmax(x: &Tensor, axis: i64, coerce_2d: bool) -> Result<Tensor> {
    let d = x.dims();
    let ax = norm_axis(axis, d.len())?;
    let (len, inner) = if coerce_2d {
        (d[ax..].iter().product(), 1)
    } else {
        (d[ax], d[ax + 1..].iter().product())
    };
    let mut v = x.as_f32()?.to_vec();
    if len == 0 || inner == 0 {
        return Tensor::from_f32(d.to_vec(), v);
    }
    for block in v.chunks_mut(len * inner) {
        for i in 0..inner {
            let max = (0..len)
                .map(|j| block[j * inner + i])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for j in 0..len {
                let e = (block[j * inner + i] - max).exp();
                block[j * inner + i] = e;
                sum += e;
            }
            for j in 0..len {
                block[j * inner + i] /= sum;
            }
        }
    }
    Tensor::from_f32(d.to_vec(), v)
}

/// Inference BatchNormalization over axis 1.
pub fn batch_norm(
    x: &Tensor,
    scale: &Tensor,
    bias: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    let d = x.dims();
    let c = if d.len() >= 2 { d[1] } else { 1 };
    let inner: usize = if d.len() > 2 { d[2..].iter().product() } else { 1 };
    let p = |t: &Tensor| -> Result<Vec<f32>> {
        let v = t.to_f32_vec()?;
        if v.len() != c {
            return Err(Error::ShapeMismatch(format!(
                "BatchNormalization parameter has {} values for {c} channels",
                v.len()
            )));
        }
        Ok(v)
    };
    let (s, b, m, va) = (p(scale)?, p(bias)?, p(mean)?, p(var)?);
    let mut v = x.as_f32()?.to_vec();
    if inner > 0 {
        for (i, chunk) in v.chunks_mut(inner).enumerate() {
            let ch = i % c;
            let k = s[ch] / (va[ch] + eps).sqrt();
            let off = b[ch] - m[ch] * k;
            chunk.iter_mut().for_each(|e| *e = *e * k + off);
        }
    }
    Tensor::from_f32(d.to_vec(), v)
}

/// ReduceMean over the given axes.
pub fn reduce_mean(x: &Tensor, axes: Option<&Tensor>, keepdims: bool, noop: bool) -> Result<Tensor> {
    let d = x.dims();
    let axes_v = axes.map(|a| a.to_i64_vec()).transpose()?;
    let ax = reduce_axes(d.len(), axes_v.as_deref(), noop)?;
    if ax.is_empty() {
        return Ok(x.clone());
    }
    let out_keep = reduce_shape(d, &ax, true);
    let out_numel: usize = out_keep.iter().product();
    let mut sums = vec![0f64; out_numel];
    // Output strides in input coordinates (0 on reduced axes).
    let rank = d.len();
    let mut ostr = vec![0usize; rank];
    let mut acc = 1;
    for i in (0..rank).rev() {
        ostr[i] = if ax.contains(&i) { 0 } else { acc };
        acc *= out_keep[i];
    }
    let xv = x.as_f32()?;
    let mut idx = vec![0usize; rank];
    let mut o = 0usize;
    for &v in xv {
        sums[o] += v as f64;
        for a in (0..rank).rev() {
            idx[a] += 1;
            o += ostr[a];
            if idx[a] < d[a] {
                break;
            }
            o -= ostr[a] * idx[a];
            idx[a] = 0;
        }
    }
    let count: usize = ax.iter().map(|&a| d[a]).product();
    let out: Vec<f32> = sums.iter().map(|&s| (s / count as f64) as f32).collect();
    let dims = reduce_shape(d, &ax, keepdims);
    Tensor::from_f32(dims, out)
}
