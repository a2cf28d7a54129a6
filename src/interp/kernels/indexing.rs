//! Indexing and masking operators of transformer exports: IsNaN, GatherElements, GatherND,
//! ScatterND, Trilu and CumSum. Indices read from a tensor are checked before use: one outside
//! its axis is an error, never a panic.

use super::map_data;
use crate::ir::infer::{gather_elements_shape, gather_nd_shape, scatter_nd_check};
use crate::ir::op::ScatterReduction;
use crate::ir::shapes::norm_axis;
use crate::ir::{Tensor, TensorData};
use crate::{Error, Result};

/// Row-major strides of `dims` (elements).
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// `index` on an axis of length `len` (negative counts from the end), or an error naming
/// the operator.
fn checked_index(op: &str, index: i64, len: usize) -> Result<usize> {
    let n = i64::try_from(len).map_err(|_| Error::Internal(format!("{op}: axis length {len}")))?;
    let j = if index < 0 { index + n } else { index };
    if (0..n).contains(&j) {
        Ok(j as usize)
    } else {
        Err(Error::invalid_argument(
            "indices",
            format!("{op} index {index} is out of range for an axis of length {len}"),
        ))
    }
}

/// Whether each element of an f32 tensor is NaN.
pub fn is_nan(x: &Tensor) -> Result<Tensor> {
    Tensor::from_bool(
        x.dims().to_vec(),
        x.as_f32()?.iter().map(|v| v.is_nan()).collect(),
    )
}

/// GatherElements: `out[p] = data[p with p[axis] = indices[p]]`.
pub fn gather_elements(x: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor> {
    let (d, id) = (x.dims(), indices.dims());
    let out_dims = gather_elements_shape(d, id, axis)?;
    let ax = norm_axis(axis, d.len())?;
    let ds = strides(d);
    let idx = indices.to_i64_vec()?;
    let mut src = Vec::with_capacity(idx.len());
    let mut pos = vec![0usize; id.len()];
    for &i in &idx {
        let mut off = checked_index("GatherElements", i, d[ax])? * ds[ax];
        for (k, (&p, &s)) in pos.iter().zip(&ds).enumerate() {
            if k != ax {
                off += p * s;
            }
        }
        src.push(off);
        for k in (0..pos.len()).rev() {
            pos[k] += 1;
            if pos[k] < id[k] {
                break;
            }
            pos[k] = 0;
        }
    }
    let data = map_data!(x.data(), v => src.iter().map(|&s| v[s]).collect());
    Tensor::new(out_dims, data)
}

/// GatherND: for each index tuple (the last axis of `indices`) within each of the leading
/// `batch_dims` axes, the slice of `data` it addresses.
pub fn gather_nd(x: &Tensor, indices: &Tensor, batch_dims: usize) -> Result<Tensor> {
    let (d, id) = (x.dims(), indices.dims());
    let out_dims = gather_nd_shape(d, id, batch_dims)?;
    let m = id[id.len() - 1];
    let batch_len: usize = d[batch_dims..].iter().product();
    let slice: usize = d[batch_dims + m..].iter().product();
    let ds = strides(&d[batch_dims..]);
    let idx = indices.to_i64_vec()?;
    let per_batch: usize = id[batch_dims..id.len() - 1].iter().product();
    let mut starts = Vec::with_capacity(idx.len() / m);
    for (t, tuple) in idx.chunks_exact(m).enumerate() {
        let mut off = (t / per_batch) * batch_len;
        for (k, &i) in tuple.iter().enumerate() {
            off += checked_index("GatherND", i, d[batch_dims + k])? * ds[k];
        }
        starts.push(off);
    }
    let data = map_data!(x.data(), v => {
        let mut out = Vec::with_capacity(starts.len() * slice);
        for &s in &starts {
            out.extend_from_slice(&v[s..s + slice]);
        }
        out
    });
    Tensor::new(out_dims, data)
}

/// ScatterND: a copy of `x` where the slice addressed by each index tuple is combined with
/// the matching slice of `updates` (tuples applied in order).
pub fn scatter_nd(
    x: &Tensor,
    indices: &Tensor,
    updates: &Tensor,
    reduction: ScatterReduction,
) -> Result<Tensor> {
    let (d, id) = (x.dims(), indices.dims());
    scatter_nd_check(d, id, updates.dims())?;
    let m = id[id.len() - 1];
    let slice: usize = d[m..].iter().product();
    let ds = strides(d);
    let idx = indices.to_i64_vec()?;
    let mut starts = Vec::with_capacity(idx.len() / m);
    for tuple in idx.chunks_exact(m) {
        let mut off = 0;
        for (k, &i) in tuple.iter().enumerate() {
            off += checked_index("ScatterND", i, d[k])? * ds[k];
        }
        starts.push(off);
    }
    use ScatterReduction as R;
    use TensorData as D;
    let data = match (reduction, x.data(), updates.data()) {
        (R::None, _, _) if x.dtype() != updates.dtype() => {
            return Err(Error::DtypeMismatch(
                "ScatterND: updates differ from data in type".into(),
            ))
        }
        (R::None, D::F32(v), D::F32(u)) => D::F32(scatter(v, u, &starts, slice, |_, b| b)),
        (R::None, D::I64(v), D::I64(u)) => D::I64(scatter(v, u, &starts, slice, |_, b| b)),
        (R::None, D::I32(v), D::I32(u)) => D::I32(scatter(v, u, &starts, slice, |_, b| b)),
        (R::None, D::I8(v), D::I8(u)) => D::I8(scatter(v, u, &starts, slice, |_, b| b)),
        (R::None, D::U8(v), D::U8(u)) => D::U8(scatter(v, u, &starts, slice, |_, b| b)),
        (R::None, D::Bool(v), D::Bool(u)) => D::Bool(scatter(v, u, &starts, slice, |_, b| b)),
        (r, D::F32(v), D::F32(u)) => D::F32(scatter(v, u, &starts, slice, |a, b| match r {
            R::Add => a + b,
            R::Mul => a * b,
            R::Max => a.max(b),
            R::Min => a.min(b),
            R::None => b,
        })),
        (r, D::I64(v), D::I64(u)) => D::I64(scatter(v, u, &starts, slice, |a, b| int_reduce(r, a, b))),
        (r, D::I32(v), D::I32(u)) => D::I32(scatter(v, u, &starts, slice, |a, b| {
            int_reduce(r, a as i64, b as i64) as i32
        })),
        _ => {
            return Err(Error::Unsupported(format!(
                "ScatterND with reduction {reduction:?} on {} tensors",
                x.dtype()
            )))
        }
    };
    Tensor::new(d.to_vec(), data)
}

/// `data` with each slice `starts[t]..starts[t] + slice` combined, element by element, with
/// slice `t` of `updates` by `f(old, update)`.
fn scatter<T: Copy>(
    data: &[T],
    updates: &[T],
    starts: &[usize],
    slice: usize,
    f: impl Fn(T, T) -> T,
) -> Vec<T> {
    let mut out = data.to_vec();
    for (t, &s) in starts.iter().enumerate() {
        for (o, &u) in out[s..s + slice]
            .iter_mut()
            .zip(&updates[t * slice..(t + 1) * slice])
        {
            *o = f(*o, u);
        }
    }
    out
}

/// An integer reduction step (wrapping, as integer tensors overflow in ONNX Runtime).
fn int_reduce(r: ScatterReduction, a: i64, b: i64) -> i64 {
    match r {
        ScatterReduction::Add => a.wrapping_add(b),
        ScatterReduction::Mul => a.wrapping_mul(b),
        ScatterReduction::Max => a.max(b),
        ScatterReduction::Min => a.min(b),
        ScatterReduction::None => b,
    }
}

/// Trilu: keeps element `(i, j)` of every matrix (the last two axes) where `j - i >= k`
/// (upper) or `j - i <= k` (lower), zeroes the others.
pub fn trilu(x: &Tensor, k: Option<&Tensor>, upper: bool) -> Result<Tensor> {
    let d = x.dims();
    if d.len() < 2 {
        return Err(Error::ShapeMismatch(
            "Trilu: the input needs rank 2 or more".into(),
        ));
    }
    let k = match k {
        Some(t) => match t.to_i64_vec()?.as_slice() {
            [k] => *k,
            _ => return Err(Error::ShapeMismatch("Trilu: k must be a scalar".into())),
        },
        None => 0,
    };
    let (rows, cols) = (d[d.len() - 2], d[d.len() - 1]);
    if rows * cols == 0 {
        return Ok(x.clone());
    }
    // Row and column indices are below 2^30 (the tensor size limit): no overflow in i64.
    let keep: Vec<bool> = (0..rows * cols)
        .map(|p| {
            let diag = (p % cols) as i64 - (p / cols) as i64;
            if upper {
                diag >= k
            } else {
                diag <= k
            }
        })
        .collect();
    let data = map_data!(x.data(), v => mask(v, &keep));
    Tensor::new(d.to_vec(), data)
}

/// Every `keep.len()` elements of `v`, those where `keep` is false replaced by zero.
fn mask<T: Copy + Default>(v: &[T], keep: &[bool]) -> Vec<T> {
    v.chunks(keep.len())
        .flat_map(|m| {
            m.iter()
                .zip(keep)
                .map(|(&a, &k)| if k { a } else { T::default() })
        })
        .collect()
}

/// CumSum along the axis given by the scalar `axis` tensor (integers wrap on overflow).
pub fn cumsum(x: &Tensor, axis: &Tensor, exclusive: bool, reverse: bool) -> Result<Tensor> {
    let d = x.dims();
    let axis = match axis.to_i64_vec()?.as_slice() {
        [a] => *a,
        _ => return Err(Error::ShapeMismatch("CumSum: axis must be a scalar".into())),
    };
    let ax = norm_axis(axis, d.len())?;
    let shape = (d[..ax].iter().product(), d[ax], d[ax + 1..].iter().product());
    let data = match x.data() {
        TensorData::F32(v) => TensorData::F32(running_sum(v, shape, exclusive, reverse, |a, b| a + b)),
        TensorData::I32(v) => TensorData::I32(running_sum(v, shape, exclusive, reverse, i32::wrapping_add)),
        TensorData::I64(v) => TensorData::I64(running_sum(v, shape, exclusive, reverse, i64::wrapping_add)),
        _ => return Err(Error::Unsupported(format!("CumSum on {} tensors", x.dtype()))),
    };
    Tensor::new(d.to_vec(), data)
}

/// The running sums of `v` seen as `(outer, len, inner)` along the middle axis.
fn running_sum<T: Copy + Default>(
    v: &[T],
    (outer, len, inner): (usize, usize, usize),
    exclusive: bool,
    reverse: bool,
    add: impl Fn(T, T) -> T,
) -> Vec<T> {
    let mut out = vec![T::default(); v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let mut acc = T::default();
            for step in 0..len {
                let p = if reverse { len - 1 - step } else { step };
                let at = (o * len + p) * inner + i;
                if exclusive {
                    out[at] = acc;
                    acc = add(acc, v[at]);
                } else {
                    acc = add(acc, v[at]);
                    out[at] = acc;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_elements_reads_along_the_axis_and_rejects_bad_indices() {
        let x = Tensor::from_f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let i = Tensor::from_i64(vec![2, 2], vec![0, 0, -1, 0]).unwrap();
        let y = gather_elements(&x, &i, 1).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[1.0, 1.0, 4.0, 3.0]);
        let bad = Tensor::from_i64(vec![2, 2], vec![0, 2, 0, 0]).unwrap();
        assert!(matches!(
            gather_elements(&x, &bad, 1),
            Err(Error::InvalidArgument { .. })
        ));
    }

    #[test]
    fn gather_nd_with_batch_dims() {
        let x = Tensor::from_i32(vec![2, 2, 2], (0..8).collect()).unwrap();
        let i = Tensor::from_i64(vec![2, 1], vec![1, 0]).unwrap();
        let y = gather_nd(&x, &i, 1).unwrap();
        assert_eq!(y.dims(), &[2, 2]);
        assert_eq!(y.as_i32().unwrap(), &[2, 3, 4, 5]);
        let bad = Tensor::from_i64(vec![2, 1], vec![1, -3]).unwrap();
        assert!(gather_nd(&x, &bad, 1).is_err());
    }

    #[test]
    fn scatter_nd_reductions_and_bad_indices() {
        let x = Tensor::from_i64(vec![4], vec![1, 2, 3, 4]).unwrap();
        let i = Tensor::from_i64(vec![2, 1], vec![1, -1]).unwrap();
        let u = Tensor::from_i64(vec![2], vec![10, 20]).unwrap();
        let y = scatter_nd(&x, &i, &u, ScatterReduction::Add).unwrap();
        assert_eq!(y.as_i64().unwrap(), &[1, 12, 3, 24]);
        let bad = Tensor::from_i64(vec![2, 1], vec![4, 0]).unwrap();
        assert!(scatter_nd(&x, &bad, &u, ScatterReduction::None).is_err());
    }

    #[test]
    fn trilu_and_cumsum() {
        let x = Tensor::from_i64(vec![2, 3], vec![1, 2, 3, 4, 5, 6]).unwrap();
        let k = Tensor::scalar_i64(1);
        assert_eq!(
            trilu(&x, Some(&k), true).unwrap().as_i64().unwrap(),
            &[0, 2, 3, 0, 0, 6]
        );
        assert_eq!(
            trilu(&x, None, false).unwrap().as_i64().unwrap(),
            &[1, 0, 0, 4, 5, 0]
        );
        let ax = Tensor::scalar_i64(-1);
        let y = cumsum(&x, &ax, true, true).unwrap();
        assert_eq!(y.as_i64().unwrap(), &[5, 3, 0, 11, 6, 0]);
        let big = Tensor::from_i32(vec![2], vec![i32::MAX, 1]).unwrap();
        assert!(cumsum(&big, &ax, false, false).is_ok());
    }
}
