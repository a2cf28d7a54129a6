//! Reshape, Expand, Concat and Gather written into an output tensor kept from an earlier
//! run (the values of [`super::eval`], no allocation when the kept tensor has the result's
//! type and shape). Output ranks above [`MAX_RANK`] and malformed nodes are left to
//! [`super::eval`] (each function then returns false), which reports the errors.

use crate::ir::{DType, Tensor};
use crate::Result;

/// The highest output rank handled here.
pub const MAX_RANK: usize = 8;

/// A shape of at most [`MAX_RANK`] axes, on the stack.
#[derive(Clone, Copy, Debug)]
struct Dims {
    d: [usize; MAX_RANK],
    rank: usize,
}

impl Dims {
    fn new() -> Dims {
        Dims {
            d: [0; MAX_RANK],
            rank: 0,
        }
    }

    fn push(&mut self, n: usize) -> Option<()> {
        *self.d.get_mut(self.rank)? = n;
        self.rank += 1;
        Some(())
    }

    fn of(d: &[usize]) -> Option<Dims> {
        let mut out = Dims::new();
        for &n in d {
            out.push(n)?;
        }
        Some(out)
    }

    fn as_slice(&self) -> &[usize] {
        &self.d[..self.rank]
    }

    fn numel(&self) -> Option<usize> {
        self.as_slice().iter().try_fold(1usize, |a, &n| a.checked_mul(n))
    }
}

/// Runs `$body!(get, get_mut)` with the typed accessors of `$dtype` (the types whose data
/// these operators move), or returns false for another type.
macro_rules! typed {
    ($dtype:expr, $body:ident) => {
        match $dtype {
            DType::F32 => $body!(as_f32, as_f32_mut),
            DType::I64 => $body!(as_i64, as_i64_mut),
            DType::I32 => $body!(as_i32, as_i32_mut),
            DType::I8 => $body!(as_i8, as_i8_mut),
            DType::U8 => $body!(as_u8, as_u8_mut),
            DType::Bool => $body!(as_bool, as_bool_mut),
            _ => return Ok(false),
        }
    };
}

/// The slot's tensor when it has `dtype` and `dims`, else a new zeroed one.
fn output<'a>(out: &'a mut Option<Tensor>, dtype: DType, dims: &Dims) -> Result<&'a mut Tensor> {
    Tensor::reuse_slot(
        out,
        dtype,
        |d| d == dims.as_slice(),
        || Ok(dims.as_slice().to_vec()),
    )
}

/// The values of a 1-D int64 shape operand, without copying.
fn shape_values(shape: &Tensor) -> Option<&[i64]> {
    match shape.dims() {
        [_] => shape.as_i64().ok(),
        _ => None,
    }
}

/// Reshape's output shape (ONNX rules: `0` copies the input axis unless `allowzero`, one
/// `-1` is inferred), or `None` when it is invalid or too long.
fn reshape_dims(input: &[usize], shape: &[i64], allowzero: bool) -> Option<Dims> {
    let numel = input.iter().try_fold(1usize, |a, &n| a.checked_mul(n))?;
    let mut out = Dims::new();
    let mut infer_at = None;
    for (i, &s) in shape.iter().enumerate() {
        let n = match s {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                1
            }
            0 if !allowzero => *input.get(i)?,
            s => usize::try_from(s).ok()?,
        };
        out.push(n)?;
    }
    let known = out.numel()?;
    match infer_at {
        Some(i) if known != 0 && numel % known == 0 => out.d[i] = numel / known,
        None if known == numel => {}
        _ => return None,
    }
    Some(out)
}

/// Reshape of `x` by `shape` into `out` (a copy of the elements).
pub fn reshape_into(x: &Tensor, shape: &Tensor, allowzero: bool, out: &mut Option<Tensor>) -> Result<bool> {
    let Some(dims) = shape_values(shape).and_then(|s| reshape_dims(x.dims(), s, allowzero)) else {
        return Ok(false);
    };
    macro_rules! copy {
        ($get:ident, $get_mut:ident) => {
            output(out, x.dtype(), &dims)?
                .$get_mut()?
                .copy_from_slice(x.$get()?)
        };
    }
    typed!(x.dtype(), copy);
    Ok(true)
}

/// Flatten of `x` at `axis` into `out` (a copy of the elements).
pub fn flatten_into(x: &Tensor, axis: i64, out: &mut Option<Tensor>) -> Result<bool> {
    let d = x.dims();
    let Ok(ax) = usize::try_from(if axis < 0 { axis + d.len() as i64 } else { axis }) else {
        return Ok(false);
    };
    if ax > d.len() {
        return Ok(false);
    }
    let Some(dims) = Dims::of(&[d[..ax].iter().product(), d[ax..].iter().product()]) else {
        return Ok(false);
    };
    macro_rules! copy {
        ($get:ident, $get_mut:ident) => {
            output(out, x.dtype(), &dims)?
                .$get_mut()?
                .copy_from_slice(x.$get()?)
        };
    }
    typed!(x.dtype(), copy);
    Ok(true)
}

/// Copies `x` (dims `xd`, left-padded with 1s to `out`'s rank) broadcast to `out` into `dst`.
fn broadcast_copy<T: Copy>(x: &[T], xd: &Dims, out: &Dims, dst: &mut [T]) {
    let rank = out.rank;
    if rank == 0 {
        dst.copy_from_slice(x);
        return;
    }
    let mut strides = [0usize; MAX_RANK];
    let mut acc = 1;
    for i in (0..rank).rev() {
        strides[i] = if xd.d[i] == 1 { 0 } else { acc };
        acc *= xd.d[i];
    }
    // The trailing axes x holds whole are one contiguous run (a KV cache repeated per query
    // head: runs of `cache length × head size`, not of one head size); with none, runs are
    // the broadcast last axis, filled from one element.
    let whole = (0..rank).rev().take_while(|&i| xd.d[i] == out.d[i]).count();
    let lead = if whole > 0 { rank - whole } else { rank - 1 };
    let run_len: usize = out.d[lead..rank].iter().product();
    let (mut idx, mut off) = ([0usize; MAX_RANK], 0usize);
    for run in dst.chunks_exact_mut(run_len.max(1)) {
        if whole > 0 {
            run.copy_from_slice(&x[off..off + run_len]);
        } else {
            run.fill(x[off]);
        }
        for a in (0..lead).rev() {
            idx[a] += 1;
            off += strides[a];
            if idx[a] < out.d[a] {
                break;
            }
            off -= strides[a] * idx[a];
            idx[a] = 0;
        }
    }
}

/// Expand of `x` to `shape` into `out`.
pub fn expand_into(x: &Tensor, shape: &Tensor, out: &mut Option<Tensor>) -> Result<bool> {
    let Some(target) = shape_values(shape) else {
        return Ok(false);
    };
    let xd = x.dims();
    let rank = xd.len().max(target.len());
    if rank > MAX_RANK {
        return Ok(false);
    }
    let (mut od, mut pd) = (Dims::new(), Dims::new());
    for i in 0..rank {
        let a = (i + xd.len()).checked_sub(rank).map_or(1, |j| xd[j]);
        let Some(b) = (i + target.len())
            .checked_sub(rank)
            .map_or(Some(1), |j| usize::try_from(target[j]).ok())
        else {
            return Ok(false);
        };
        let n = match (a, b) {
            (1, b) => b,
            (a, 1) => a,
            (a, b) if a == b => a,
            _ => return Ok(false),
        };
        od.push(n);
        pd.push(a);
    }
    if od.numel().is_none() {
        return Ok(false);
    }
    if od.as_slice().contains(&0) {
        macro_rules! empty {
            ($get:ident, $get_mut:ident) => {{
                output(out, x.dtype(), &od)?;
            }};
        }
        typed!(x.dtype(), empty);
        return Ok(true);
    }
    macro_rules! fill {
        ($get:ident, $get_mut:ident) => {
            broadcast_copy(
                x.$get()?,
                &pd,
                &od,
                output(out, x.dtype(), &od)?.$get_mut()?,
            )
        };
    }
    typed!(x.dtype(), fill);
    Ok(true)
}

/// Concat of `inputs` (all present, one type and rank, equal off `axis`) into `out`.
pub fn concat_into(inputs: &[Option<&Tensor>], axis: i64, out: &mut Option<Tensor>) -> Result<bool> {
    let Some(Some(first)) = inputs.first() else {
        return Ok(false);
    };
    let (rank, dtype) = (first.dims().len(), first.dtype());
    let Ok(ax) = crate::ir::shapes::norm_axis(axis, rank) else {
        return Ok(false);
    };
    let Some(mut od) = Dims::of(first.dims()) else {
        return Ok(false);
    };
    od.d[ax] = 0;
    for t in inputs {
        let Some(t) = t else {
            return Ok(false);
        };
        let d = t.dims();
        let same_off_axis = d.len() == rank && (0..rank).all(|i| i == ax || d[i] == od.d[i]);
        if t.dtype() != dtype || !same_off_axis {
            return Ok(false);
        }
        let Some(n) = od.d[ax].checked_add(d[ax]) else {
            return Ok(false);
        };
        od.d[ax] = n;
    }
    if od.numel().is_none() {
        return Ok(false);
    }
    let outer: usize = od.d[..ax].iter().product();
    let inner: usize = od.d[ax + 1..rank].iter().product();
    macro_rules! cat {
        ($get:ident, $get_mut:ident) => {{
            let dst = output(out, dtype, &od)?.$get_mut()?;
            let mut k = 0;
            for o in 0..outer {
                for t in inputs.iter().flatten() {
                    let chunk = t.dims()[ax] * inner;
                    dst[k..k + chunk].copy_from_slice(&t.$get()?[o * chunk..(o + 1) * chunk]);
                    k += chunk;
                }
            }
        }};
    }
    typed!(dtype, cat);
    Ok(true)
}

/// Gather of `x` along `axis` at int64 or int32 `indices` into `out`.
pub fn gather_into(x: &Tensor, indices: &Tensor, axis: i64, out: &mut Option<Tensor>) -> Result<bool> {
    let d = x.dims();
    let Ok(ax) = crate::ir::shapes::norm_axis(axis, d.len()) else {
        return Ok(false);
    };
    let mut od = Dims::new();
    for &n in d[..ax].iter().chain(indices.dims()).chain(&d[ax + 1..]) {
        if od.push(n).is_none() {
            return Ok(false);
        }
    }
    if od.numel().is_none() {
        return Ok(false);
    }
    let size = d[ax];
    let index = |i: i64| -> Option<usize> {
        let j = if i < 0 { i.checked_add(size as i64)? } else { i };
        usize::try_from(j).ok().filter(|&j| j < size)
    };
    // Every index checked before anything is written.
    let valid = match indices.dtype() {
        DType::I64 => indices.as_i64()?.iter().all(|&i| index(i).is_some()),
        DType::I32 => indices.as_i32()?.iter().all(|&i| index(i as i64).is_some()),
        _ => return Ok(false),
    };
    if !valid {
        return Ok(false);
    }
    let outer: usize = d[..ax].iter().product();
    let inner: usize = d[ax + 1..].iter().product();
    let count = indices.numel();
    let at = |n: usize| -> Result<usize> {
        Ok(match indices.dtype() {
            DType::I32 => index(indices.as_i32()?[n] as i64),
            _ => index(indices.as_i64()?[n]),
        }
        .unwrap_or(0))
    };
    macro_rules! pick {
        ($get:ident, $get_mut:ident) => {{
            let v = x.$get()?;
            let dst = output(out, x.dtype(), &od)?.$get_mut()?;
            let mut k = 0;
            for o in 0..outer {
                for n in 0..count {
                    let s = (o * size + at(n)?) * inner;
                    dst[k..k + inner].copy_from_slice(&v[s..s + inner]);
                    k += inner;
                }
            }
        }};
    }
    typed!(x.dtype(), pick);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expand_into` equals the allocating Expand on broadcasts in the middle (a KV cache
    /// repeated per query head), at the end, at the front, of rank 0 and of nothing.
    #[test]
    fn expand_into_equals_expand() {
        let cases: [(&[usize], &[i64]); 7] = [
            (&[1, 2, 1, 5, 3], &[1, 2, 4, 5, 3]),
            (&[2, 1], &[2, 3]),
            (&[3], &[2, 4, 3]),
            (&[2, 1, 3, 1], &[2, 2, 3, 2]),
            (&[], &[2, 2]),
            (&[2, 3], &[2, 3]),
            (&[1, 4], &[3, 1, 1]),
        ];
        for (xd, target) in cases {
            let n: usize = xd.iter().product();
            let x = Tensor::from_f32(xd.to_vec(), (0..n).map(|i| i as f32 * 0.5 - 1.0).collect()).unwrap();
            let shape = Tensor::from_i64(vec![target.len()], target.to_vec()).unwrap();
            let want = super::super::layout::expand(&x, &shape).unwrap();
            let mut out = None;
            assert!(expand_into(&x, &shape, &mut out).unwrap(), "{xd:?} -> {target:?}");
            let got = out.unwrap();
            assert_eq!(got.dims(), want.dims(), "{xd:?} -> {target:?}");
            assert_eq!(
                got.as_f32().unwrap(),
                want.as_f32().unwrap(),
                "{xd:?} -> {target:?}"
            );
        }
    }
}
