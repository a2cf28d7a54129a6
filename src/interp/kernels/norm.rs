//! Softmax, BatchNormalization, LayerNormalization and reductions.

use crate::fmath::{self, Function};
use crate::ir::op::ReduceKind;
use crate::ir::shapes::{norm_axis, reduce_axes, reduce_shape};
use crate::ir::{DType, Tensor};
use crate::{Error, Result};

/// Softmax along `axis` (with `coerce_2d`, over all axes from `axis` on).
pub fn softmax(x: &Tensor, axis: i64, coerce_2d: bool) -> Result<Tensor> {
    let mut v = x.as_f32()?.to_vec();
    softmax_in_place(x.dims(), axis, coerce_2d, &mut v)?;
    Tensor::from_f32(x.dims().to_vec(), v)
}

/// `softmax` of the elements `v` of shape `d`, in place. The exponential is
/// [`fmath::scalar::exp`]'s (vectorized along contiguous rows: the same bits).
pub fn softmax_in_place(d: &[usize], axis: i64, coerce_2d: bool, v: &mut [f32]) -> Result<()> {
    let ax = norm_axis(axis, d.len())?;
    let (len, inner) = if coerce_2d {
        (d[ax..].iter().product(), 1)
    } else {
        (d[ax], d[ax + 1..].iter().product())
    };
    if len == 0 || inner == 0 {
        return Ok(());
    }
    if inner == 1 {
        // Rows are contiguous: the maximum over 16 lanes (exact in any order), the
        // exponentials in one vectorized pass, their sum in 16 lanes (`row_sum`: the same
        // bits on every ISA).
        let isa = crate::cpu::selected_isa().unwrap_or(crate::cpu::Isa::Scalar);
        for row in v.chunks_mut(len) {
            let max = lane_max(row);
            row.iter_mut().for_each(|e| *e -= max);
            fmath::map_in_place(Function::Exp, row);
            let sum = super::norm_rows::row_sum(isa, row);
            row.iter_mut().for_each(|e| *e /= sum);
        }
        return Ok(());
    }
    for block in v.chunks_mut(len * inner) {
        for i in 0..inner {
            let max = (0..len)
                .map(|j| block[j * inner + i])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for j in 0..len {
                let e = fmath::scalar::exp(block[j * inner + i] - max);
                block[j * inner + i] = e;
                sum += e;
            }
            for j in 0..len {
                block[j * inner + i] /= sum;
            }
        }
    }
    Ok(())
}

/// The largest non-NaN value of `row` (-inf when there is none), over 16 independent lanes
/// so the loop vectorizes; `f32::max` skips NaN in any order, so the result is that of a
/// sequential fold.
fn lane_max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = l.max(x);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    lanes.iter().copied().fold(tail, f32::max)
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

/// A reduction (mean, sum, max, min) over the given axes. An f32 mean or sum over trailing
/// axes (rows: a written-out RMS norm's mean of squares) sums each row in `f32` lanes by
/// [`super::norm_rows::row_sum`] (the same bits on every ISA); other f32 reductions
/// accumulate in f64; integer tensors accumulate in i64 and keep their type.
pub fn reduce(
    kind: ReduceKind,
    x: &Tensor,
    axes: Option<&Tensor>,
    keepdims: bool,
    noop: bool,
) -> Result<Tensor> {
    let d = x.dims();
    let axes_v = axes.map(|a| a.to_i64_vec()).transpose()?;
    let ax = reduce_axes(d.len(), axes_v.as_deref(), noop)?;
    if ax.is_empty() {
        return Ok(x.clone());
    }
    let out_keep = reduce_shape(d, &ax, true);
    let out_numel: usize = out_keep.iter().product();
    let trailing = ax.iter().enumerate().all(|(i, &a)| a == d.len() - ax.len() + i);
    if x.dtype() == DType::F32 && trailing && matches!(kind, ReduceKind::Mean | ReduceKind::Sum) {
        return sum_trailing_rows(kind, x.as_f32()?, out_numel, reduce_shape(d, &ax, keepdims));
    }
    // Output offset of every input element (0 stride on reduced axes).
    let rank = d.len();
    let mut ostr = vec![0usize; rank];
    let mut acc = 1;
    for i in (0..rank).rev() {
        ostr[i] = if ax.contains(&i) { 0 } else { acc };
        acc *= out_keep[i];
    }
    let for_each_target = |mut f: &mut dyn FnMut(usize, usize)| {
        let mut idx = vec![0usize; rank];
        let mut o = 0usize;
        for i in 0..x.numel() {
            f(i, o);
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
        let _ = &mut f;
    };
    let count: usize = ax.iter().map(|&a| d[a]).product();
    let dims = reduce_shape(d, &ax, keepdims);
    if x.dtype() == DType::F32 {
        let xv = x.as_f32()?;
        let init = match kind {
            ReduceKind::Mean | ReduceKind::Sum => 0.0,
            ReduceKind::Max => f64::NEG_INFINITY,
            ReduceKind::Min => f64::INFINITY,
        };
        let mut accs = vec![init; out_numel];
        for_each_target(&mut |i, o| {
            let v = xv[i] as f64;
            accs[o] = match kind {
                ReduceKind::Mean | ReduceKind::Sum => accs[o] + v,
                ReduceKind::Max => {
                    if v.is_nan() || v > accs[o] {
                        v
                    } else {
                        accs[o]
                    }
                }
                ReduceKind::Min => {
                    if v.is_nan() || v < accs[o] {
                        v
                    } else {
                        accs[o]
                    }
                }
            };
        });
        let out = accs
            .iter()
            .map(|&a| {
                if kind == ReduceKind::Mean {
                    (a / count as f64) as f32
                } else {
                    a as f32
                }
            })
            .collect();
        return Tensor::from_f32(dims, out);
    }
    if kind == ReduceKind::Mean {
        return Err(Error::Unsupported(format!("ReduceMean of {} tensors", x.dtype())));
    }
    let xv = x.to_i64_vec()?;
    // Identities of max/min over the type's own range (bool: false for max, true for min).
    let boolean = x.dtype() == DType::Bool;
    let init = match kind {
        ReduceKind::Max if boolean => 0,
        ReduceKind::Min if boolean => 1,
        ReduceKind::Max => i64::MIN,
        ReduceKind::Min => i64::MAX,
        _ => 0,
    };
    let mut accs = vec![init; out_numel];
    for_each_target(&mut |i, o| {
        accs[o] = match kind {
            ReduceKind::Max => accs[o].max(xv[i]),
            ReduceKind::Min => accs[o].min(xv[i]),
            _ => accs[o].wrapping_add(xv[i]),
        };
    });
    super::elementwise::cast(&Tensor::from_i64(dims, accs)?, x.dtype())
}

/// [`reduce`] of an f32 mean or sum over `rows` contiguous rows: each output is the row's
/// [`super::norm_rows::row_sum`], divided by the row length for a mean.
fn sum_trailing_rows(kind: ReduceKind, x: &[f32], rows: usize, dims: Vec<usize>) -> Result<Tensor> {
    let isa = crate::cpu::selected_isa().unwrap_or(crate::cpu::Isa::Scalar);
    let inner = x.len().checked_div(rows).unwrap_or(0);
    let out = if inner == 0 {
        let empty = if kind == ReduceKind::Mean { f32::NAN } else { 0.0 };
        vec![empty; rows]
    } else {
        x.chunks_exact(inner)
            .map(|row| {
                let s = super::norm_rows::row_sum(isa, row);
                if kind == ReduceKind::Mean {
                    s / inner as f32
                } else {
                    s
                }
            })
            .collect()
    };
    Tensor::from_f32(dims, out)
}

/// LayerNormalization over the axes from `axis` on: `(x - mean) / sqrt(var + eps) * scale + bias`,
/// in `f32` by [`super::norm_rows`]. Returns Y, Mean and InvStdDev.
pub fn layer_norm(
    x: &Tensor,
    scale: &Tensor,
    bias: Option<&Tensor>,
    axis: i64,
    eps: f32,
) -> Result<Vec<Tensor>> {
    let d = x.dims();
    let ax = norm_axis(axis, d.len())?;
    let inner: usize = d[ax..].iter().product();
    let s = super::layout::broadcast_to(scale, &d[ax..])?;
    let b = bias
        .map(|b| super::layout::broadcast_to(b, &d[ax..]))
        .transpose()?;
    let (sv, bv) = (s.as_f32()?, b.as_ref().map(|b| b.as_f32()).transpose()?);
    let mut out = x.as_f32()?.to_vec();
    let stat_dims: Vec<usize> = d
        .iter()
        .enumerate()
        .map(|(i, &n)| if i < ax { n } else { 1 })
        .collect();
    let rows: usize = d[..ax].iter().product();
    let (mut means, mut invs) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    if inner > 0 {
        let isa = crate::cpu::selected_isa().unwrap_or(crate::cpu::Isa::Scalar);
        for row in out.chunks_mut(inner) {
            let stats = super::norm_rows::layer_norm_row_in_place(isa, row, sv, bv, eps)?;
            means.push(stats.mean);
            invs.push(stats.inv_std);
        }
    } else {
        means.resize(rows, f32::NAN);
        invs.resize(rows, f32::NAN);
    }
    Ok(vec![
        Tensor::from_f32(d.to_vec(), out)?,
        Tensor::from_f32(stat_dims.clone(), means)?,
        Tensor::from_f32(stat_dims, invs)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trailing-axis means and sums (the f32 row path) agree with the f64 path that other
    /// axes take, on the same values laid out so that the reduced axes lead instead.
    #[test]
    fn trailing_row_sums_match_the_f64_reduction() {
        let (rows, inner) = (5, 77);
        let v: Vec<f32> = (0..rows * inner)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let x = Tensor::from_f32(vec![rows, 7, 11], v.clone()).unwrap();
        let axes = Tensor::from_i64(vec![2], vec![1, 2]).unwrap();
        // The transposed layout [7, 11, rows] reduced over its leading axes takes the f64 path.
        let t: Vec<f32> = (0..rows * inner)
            .map(|i| v[(i % rows) * inner + i / rows])
            .collect();
        let xt = Tensor::from_f32(vec![7, 11, rows], t).unwrap();
        let axes_t = Tensor::from_i64(vec![2], vec![0, 1]).unwrap();
        for kind in [ReduceKind::Mean, ReduceKind::Sum] {
            let got = reduce(kind, &x, Some(&axes), true, false).unwrap();
            assert_eq!(got.dims(), &[rows, 1, 1]);
            let want = reduce(kind, &xt, Some(&axes_t), false, false).unwrap();
            for (g, w) in got.as_f32().unwrap().iter().zip(want.as_f32().unwrap()) {
                assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{kind:?}: {g} vs {w}");
            }
        }
        let empty = Tensor::from_f32(vec![3, 0], vec![]).unwrap();
        let axis = Tensor::from_i64(vec![1], vec![1]).unwrap();
        let mean = reduce(ReduceKind::Mean, &empty, Some(&axis), false, false).unwrap();
        assert!(mean.as_f32().unwrap().iter().all(|v| v.is_nan()) && mean.dims() == [3]);
        let sum = reduce(ReduceKind::Sum, &empty, Some(&axis), false, false).unwrap();
        assert_eq!(sum.as_f32().unwrap(), &[0.0; 3]);
    }
}
