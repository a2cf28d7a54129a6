//! Indexing operators: IsNaN, GatherElements and GatherND. Indices read from a tensor are
//! checked before use: one outside its axis is an error, never a panic.

use super::map_data;
use crate::ir::infer::{gather_elements_shape, gather_nd_shape};
use crate::ir::shapes::norm_axis;
use crate::ir::Tensor;
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
}
