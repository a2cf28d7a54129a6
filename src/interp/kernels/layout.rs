//! Data movement: Concat, Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Slice, Pad, Gather;
//! and the operators that read a shape (Shape, Size).

use super::map_data;
use crate::ir::op::PadMode;
use crate::ir::shapes::*;
use crate::ir::{Op, Tensor, TensorData};
use crate::{Error, Result};

fn row_major_strides(d: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; d.len()];
    for i in (0..d.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * d[i + 1];
    }
    s
}

/// Reads `src` at `base + Σ idx[a] * strides[a]` for every index of `out_dims`, in order.
/// The caller guarantees every addressed offset is inside `src`.
fn strided_read<T: Copy>(src: &[T], out_dims: &[usize], base: isize, strides: &[isize]) -> Vec<T> {
    let total: usize = out_dims.iter().product();
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    if out_dims.is_empty() {
        out.push(src[base as usize]);
        return out;
    }
    let rank = out_dims.len();
    let (last, ls) = (out_dims[rank - 1], strides[rank - 1]);
    let mut idx = vec![0usize; rank];
    let mut off = base;
    loop {
        if ls == 1 {
            // A contiguous run (the last axis kept): one copy.
            out.extend_from_slice(&src[off as usize..off as usize + last]);
        } else {
            for j in 0..last as isize {
                out.push(src[(off + j * ls) as usize]);
            }
        }
        let mut a = rank - 1;
        loop {
            if a == 0 {
                return out;
            }
            a -= 1;
            idx[a] += 1;
            off += strides[a];
            if idx[a] < out_dims[a] {
                break;
            }
            off -= strides[a] * idx[a] as isize;
            idx[a] = 0;
        }
    }
}

/// Concat along an axis.
pub fn concat(inputs: &[&Tensor], axis: i64) -> Result<Tensor> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.dims()).collect();
    let out_dims = concat_shape(&shapes, axis)?;
    let ax = norm_axis(axis, out_dims.len())?;
    let outer: usize = out_dims[..ax].iter().product();
    let inner: usize = out_dims[ax + 1..].iter().product();
    let first = inputs[0];
    if let Some(t) = inputs.iter().find(|t| t.dtype() != first.dtype()) {
        return Err(Error::DtypeMismatch(format!(
            "Concat of {} and {}",
            first.dtype(),
            t.dtype()
        )));
    }
    macro_rules! cat {
        ($get:ident, $v:ident) => {{
            let parts: Vec<&[_]> = inputs.iter().map(|t| t.$get()).collect::<Result<_>>()?;
            let mut out = Vec::with_capacity(out_dims.iter().product());
            for o in 0..outer {
                for (p, t) in parts.iter().zip(inputs) {
                    let chunk = t.dims()[ax] * inner;
                    out.extend_from_slice(&p[o * chunk..(o + 1) * chunk]);
                }
            }
            TensorData::$v(out)
        }};
    }
    let data = match first.data() {
        TensorData::F32(_) => cat!(as_f32, F32),
        TensorData::I8(_) => cat!(as_i8, I8),
        TensorData::U8(_) => cat!(as_u8, U8),
        TensorData::I32(_) => cat!(as_i32, I32),
        TensorData::I64(_) => cat!(as_i64, I64),
        TensorData::Bool(_) => cat!(as_bool, Bool),
        TensorData::Packed { dtype, .. } => {
            return Err(Error::Unsupported(format!("Concat of {dtype} tensors")))
        }
    };
    Tensor::new(out_dims, data)
}

/// Reshape.
pub fn reshape(x: &Tensor, shape: &Tensor, allowzero: bool) -> Result<Tensor> {
    let dims = reshape_shape(x.dims(), &shape.to_i64_vec()?, allowzero)?;
    x.clone().reshaped(dims)
}

/// The output dims of an operator that only renames the shape of its first input (Reshape,
/// Flatten, Squeeze, Unsqueeze, Identity): the same elements in the same order. `None` for
/// any other operator. What lets a caller hand the input's buffer on instead of copying it.
pub fn view_dims(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Option<Vec<usize>>> {
    let Some(Some(x)) = inputs.first() else {
        return Ok(None);
    };
    let d = x.dims();
    let arg = |i: usize| -> Result<Vec<i64>> {
        inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| Error::InvalidModel(format!("{} needs input {i}", op.onnx_name())))?
            .to_i64_vec()
    };
    Ok(Some(match op {
        Op::Reshape { allowzero } => reshape_shape(d, &arg(1)?, *allowzero)?,
        Op::Flatten { axis } => flatten_shape(d, *axis)?,
        Op::Squeeze => {
            let axes = ints_at(inputs, 1)?;
            squeeze_shape(d, axes.as_deref())?
        }
        Op::Unsqueeze => unsqueeze_shape(d, &arg(1)?)?,
        Op::Identity => d.to_vec(),
        _ => return Ok(None),
    }))
}

/// Flatten: the elements as a 2-D tensor split at `axis`.
pub fn flatten(x: &Tensor, axis: i64) -> Result<Tensor> {
    x.clone().reshaped(flatten_shape(x.dims(), axis)?)
}

/// Transpose.
pub fn transpose(x: &Tensor, perm: Option<&[usize]>) -> Result<Tensor> {
    let d = x.dims();
    let out_dims = transpose_shape(d, perm)?;
    let st = row_major_strides(d);
    let rev: Vec<usize> = (0..d.len()).rev().collect();
    let p = perm.unwrap_or(&rev);
    let strides: Vec<isize> = p.iter().map(|&a| st[a] as isize).collect();
    let data = map_data!(x.data(), v => strided_read(v, &out_dims, 0, &strides));
    Tensor::new(out_dims, data)
}

/// Ranks [`transpose_f32_into`] handles (its index state lives on the stack).
pub const TRANSPOSE_INTO_MAX_RANK: usize = 8;

/// Axis `i` of the output of a Transpose with `perm` (reversed axes when `None`) over `rank` axes.
pub fn transpose_axis(perm: Option<&[usize]>, rank: usize, i: usize) -> usize {
    perm.map_or(rank - 1 - i, |p| p[i])
}

/// Transpose of f32 `x` (dims `d`, rank at most [`TRANSPOSE_INTO_MAX_RANK`]) into `dst`,
/// which holds the permuted shape's elements: the same values, no allocation. Runs along a kept
/// last axis are copied whole.
pub fn transpose_f32_into(x: &[f32], d: &[usize], perm: Option<&[usize]>, dst: &mut [f32]) -> Result<()> {
    let runs = match transpose_run_len(d, perm) {
        0 => 0,
        last => d.iter().product::<usize>() / last,
    };
    transpose_f32_runs(x, d, perm, 0..runs, dst)
}

/// The length of a run of [`transpose_f32_runs`]: the output's last dimension (1 for a
/// scalar). `perm`, if given, must be a permutation of `d`'s axes.
pub fn transpose_run_len(d: &[usize], perm: Option<&[usize]>) -> usize {
    match d.len() {
        0 => 1,
        rank => d[transpose_axis(perm, rank, rank - 1)],
    }
}

/// Runs `runs` (in the output's order, [`transpose_run_len`] elements each) of
/// [`transpose_f32_into`]'s output into `dst`, which holds exactly those runs: any partition of
/// the runs writes the bits of one call.
pub fn transpose_f32_runs(
    x: &[f32],
    d: &[usize],
    perm: Option<&[usize]>,
    runs: std::ops::Range<usize>,
    dst: &mut [f32],
) -> Result<()> {
    let rank = d.len();
    let valid = rank <= TRANSPOSE_INTO_MAX_RANK
        && perm.is_none_or(|p| p.len() == rank && (0..rank).all(|i| p[i] < rank && !p[..i].contains(&p[i])));
    let total: usize = d.iter().product();
    let last = if valid { transpose_run_len(d, perm) } else { 0 };
    let all_runs = total.checked_div(last).unwrap_or(0);
    if !valid || x.len() != total || runs.end > all_runs || dst.len() != runs.len() * last {
        return Err(Error::Internal(format!(
            "Transpose of {d:?} by {perm:?}: runs {runs:?} into {} elements",
            dst.len()
        )));
    }
    if runs.is_empty() {
        return Ok(());
    }
    if rank == 0 {
        dst[0] = x[0];
        return Ok(());
    }
    let mut in_strides = [0usize; TRANSPOSE_INTO_MAX_RANK];
    in_strides[rank - 1] = 1;
    for a in (0..rank - 1).rev() {
        in_strides[a] = in_strides[a + 1] * d[a + 1];
    }
    let (mut dims, mut strides) = (
        [0usize; TRANSPOSE_INTO_MAX_RANK],
        [0usize; TRANSPOSE_INTO_MAX_RANK],
    );
    for i in 0..rank {
        let a = transpose_axis(perm, rank, i);
        dims[i] = d[a];
        strides[i] = in_strides[a];
    }
    let ls = strides[rank - 1];
    // The output index of the first run (its last axis at 0) and its input offset.
    let mut idx = [0usize; TRANSPOSE_INTO_MAX_RANK];
    let (mut off, mut rest) = (0usize, runs.start);
    for a in (0..rank - 1).rev() {
        idx[a] = rest % dims[a];
        rest /= dims[a];
        off += idx[a] * strides[a];
    }
    for run in dst.chunks_exact_mut(last) {
        if ls == 1 {
            run.copy_from_slice(&x[off..off + last]);
        } else {
            for (j, o) in run.iter_mut().enumerate() {
                *o = x[off + j * ls];
            }
        }
        for a in (0..rank - 1).rev() {
            idx[a] += 1;
            off += strides[a];
            if idx[a] < dims[a] {
                break;
            }
            off -= strides[a] * idx[a];
            idx[a] = 0;
        }
    }
    Ok(())
}

/// DepthToSpace / SpaceToDepth (`op`): one strided read ([`crate::ir::depth_space`]).
pub fn depth_space(op: &crate::ir::Op, x: &Tensor) -> Result<Tensor> {
    let v = crate::ir::depth_space::view_of(op, x.dims()).ok_or_else(|| {
        Error::InvalidModel(format!("{} is not DepthToSpace / SpaceToDepth", op.onnx_name()))
    })??;
    let strides: Vec<isize> = v.strides.iter().map(|&s| s as isize).collect();
    let data = map_data!(x.data(), d => strided_read(d, &v.view_dims, 0, &strides));
    Tensor::new(v.out_dims, data)
}

/// Squeeze.
pub fn squeeze(x: &Tensor, axes: Option<&Tensor>) -> Result<Tensor> {
    let axes = axes.map(|a| a.to_i64_vec()).transpose()?;
    let dims = squeeze_shape(x.dims(), axes.as_deref())?;
    x.clone().reshaped(dims)
}

/// Unsqueeze.
pub fn unsqueeze(x: &Tensor, axes: &Tensor) -> Result<Tensor> {
    let dims = unsqueeze_shape(x.dims(), &axes.to_i64_vec()?)?;
    x.clone().reshaped(dims)
}

fn ints_at(inputs: &[Option<&Tensor>], i: usize) -> Result<Option<Vec<i64>>> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .map(|t| t.to_i64_vec())
        .transpose()
}

/// Slice. `rest` holds starts, ends, axes?, steps?.
pub fn slice(x: &Tensor, rest: &[Option<&Tensor>]) -> Result<Tensor> {
    let need =
        |i: usize| ints_at(rest, i)?.ok_or_else(|| Error::InvalidModel("Slice needs starts and ends".into()));
    let (starts, ends) = (need(0)?, need(1)?);
    let (axes, steps) = (ints_at(rest, 2)?, ints_at(rest, 3)?);
    let sl = slice_axes(x.dims(), &starts, &ends, axes.as_deref(), steps.as_deref())?;
    let st = row_major_strides(x.dims());
    let out_dims: Vec<usize> = sl.iter().map(|s| s.len).collect();
    let base: isize = sl
        .iter()
        .zip(&st)
        .map(|(s, &k)| {
            if s.len > 0 {
                s.start as isize * k as isize
            } else {
                0
            }
        })
        .sum();
    let strides: Vec<isize> = sl
        .iter()
        .zip(&st)
        .map(|(s, &k)| s.step as isize * k as isize)
        .collect();
    let data = map_data!(x.data(), v => strided_read(v, &out_dims, base, &strides));
    Tensor::new(out_dims, data)
}

/// Pad. `rest` holds pads, constant_value?, axes?.
pub fn pad(mode: PadMode, x: &Tensor, rest: &[Option<&Tensor>]) -> Result<Tensor> {
    let d = x.dims();
    let pads = ints_at(rest, 0)?.ok_or_else(|| Error::InvalidModel("Pad needs pads".into()))?;
    let axes = ints_at(rest, 2)?;
    let amounts = pad_amounts(d.len(), &pads, axes.as_deref())?;
    let out_dims = pad_shape(d, &amounts)?;
    if mode != PadMode::Constant && d.contains(&0) && out_dims.iter().product::<usize>() > 0 {
        return Err(Error::ShapeMismatch(
            "Pad cannot reflect, wrap or extend an empty axis".into(),
        ));
    }
    let maps: Vec<Vec<Option<usize>>> = (0..d.len())
        .map(|a| {
            (0..out_dims[a] as i64)
                .map(|o| pad_source(mode, o, amounts[a].0, d[a] as i64))
                .collect()
        })
        .collect();
    let st = row_major_strides(d);
    let fill = rest.get(1).copied().flatten().filter(|t| t.numel() > 0);
    macro_rules! run {
        ($v:expr, $fill:expr) => {{
            let v = $v;
            let total: usize = out_dims.iter().product();
            let mut out = Vec::with_capacity(total);
            let mut idx = vec![0usize; d.len()];
            for _ in 0..total {
                let mut off = Some(0usize);
                for a in 0..d.len() {
                    off = match (off, maps[a][idx[a]]) {
                        (Some(o), Some(i)) => Some(o + i * st[a]),
                        _ => None,
                    };
                }
                out.push(off.map_or($fill, |o| v[o]));
                for a in (0..d.len()).rev() {
                    idx[a] += 1;
                    if idx[a] < out_dims[a] {
                        break;
                    }
                    idx[a] = 0;
                }
            }
            out
        }};
    }
    let data = match x.data() {
        TensorData::F32(v) => TensorData::F32(run!(
            v,
            fill.map(|f| f.to_f32_vec()).transpose()?.map_or(0.0, |f| f[0])
        )),
        TensorData::I64(v) => TensorData::I64(run!(
            v,
            fill.map(|f| f.to_i64_vec()).transpose()?.map_or(0, |f| f[0])
        )),
        TensorData::I32(v) => TensorData::I32(run!(
            v,
            fill.map(|f| f.to_i64_vec())
                .transpose()?
                .map_or(0, |f| f[0] as i32)
        )),
        TensorData::I8(v) => TensorData::I8(run!(
            v,
            fill.map(|f| f.to_i64_vec())
                .transpose()?
                .map_or(0, |f| f[0] as i8)
        )),
        TensorData::U8(v) => TensorData::U8(run!(
            v,
            fill.map(|f| f.to_i64_vec())
                .transpose()?
                .map_or(0, |f| f[0] as u8)
        )),
        other => return Err(Error::Unsupported(format!("Pad of {} tensors", other.dtype()))),
    };
    Tensor::new(out_dims, data)
}

/// Gather along an axis (negative indices count from the end).
pub fn gather(x: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor> {
    let d = x.dims();
    let ax = norm_axis(axis, d.len())?;
    let out_dims = gather_shape(d, indices.dims(), ax)?;
    let n = d[ax] as i64;
    let idx: Vec<usize> = indices
        .to_i64_vec()?
        .into_iter()
        .map(|i| {
            let j = if i < 0 { i + n } else { i };
            if (0..n).contains(&j) {
                Ok(j as usize)
            } else {
                Err(Error::InvalidArgument {
                    name: "indices",
                    reason: format!("Gather index {i} is out of range for size {n}"),
                })
            }
        })
        .collect::<Result<_>>()?;
    let outer: usize = d[..ax].iter().product();
    let inner: usize = d[ax + 1..].iter().product();
    let data = map_data!(x.data(), v => {
        let mut out = Vec::with_capacity(outer * idx.len() * inner);
        for o in 0..outer {
            for &i in &idx {
                let s = (o * d[ax] + i) * inner;
                out.extend_from_slice(&v[s..s + inner]);
            }
        }
        out
    });
    Tensor::new(out_dims, data)
}

/// Broadcasts `x` to `out_dims` (numpy rules; `out_dims` must be a broadcast of x's shape).
pub fn broadcast_to(x: &Tensor, out_dims: &[usize]) -> Result<Tensor> {
    let d = x.dims();
    if broadcast(d, out_dims)? != out_dims {
        return Err(Error::ShapeMismatch(format!(
            "{d:?} does not broadcast to {out_dims:?}"
        )));
    }
    let st = row_major_strides(d);
    let rank = out_dims.len();
    let strides: Vec<isize> = (0..rank)
        .map(|i| {
            let k = i as isize - (rank - d.len()) as isize;
            if k < 0 || d[k as usize] == 1 {
                0
            } else {
                st[k as usize] as isize
            }
        })
        .collect();
    let data = map_data!(x.data(), v => strided_read(v, out_dims, 0, &strides));
    Tensor::new(out_dims.to_vec(), data)
}

/// Expand: bidirectional broadcast of `x` with `shape`.
pub fn expand(x: &Tensor, shape: &Tensor) -> Result<Tensor> {
    let target: Vec<usize> = shape
        .to_i64_vec()?
        .into_iter()
        .map(|v| usize::try_from(v).map_err(|_| Error::ShapeMismatch(format!("Expand to negative size {v}"))))
        .collect::<Result<_>>()?;
    let out = broadcast(x.dims(), &target)?;
    broadcast_to(x, &out)
}

/// Where(cond, x, y) with broadcasting.
pub fn select(cond: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let out = broadcast(&broadcast(cond.dims(), x.dims())?, y.dims())?;
    let c = broadcast_to(cond, &out)?;
    let (xb, yb) = (broadcast_to(x, &out)?, broadcast_to(y, &out)?);
    let mask = c.as_bool()?;
    if xb.dtype() != yb.dtype() {
        return Err(Error::DtypeMismatch(format!(
            "Where of {} and {}",
            xb.dtype(),
            yb.dtype()
        )));
    }
    macro_rules! pick {
        ($get:ident, $v:ident) => {
            TensorData::$v(
                mask.iter()
                    .zip(xb.$get()?.iter().zip(yb.$get()?))
                    .map(|(&m, (&a, &b))| if m { a } else { b })
                    .collect(),
            )
        };
    }
    let data = match xb.data() {
        TensorData::F32(_) => pick!(as_f32, F32),
        TensorData::I64(_) => pick!(as_i64, I64),
        TensorData::I32(_) => pick!(as_i32, I32),
        TensorData::I8(_) => pick!(as_i8, I8),
        TensorData::U8(_) => pick!(as_u8, U8),
        TensorData::Bool(_) => pick!(as_bool, Bool),
        other => return Err(Error::Unsupported(format!("Where of {} tensors", other.dtype()))),
    };
    Tensor::new(out, data)
}

/// Split along an axis into `n` parts (sizes from `split`, or near-equal).
pub fn split(x: &Tensor, split: Option<&Tensor>, axis: i64, n: usize) -> Result<Vec<Tensor>> {
    let d = x.dims();
    let ax = norm_axis(axis, d.len())?;
    let sizes =
        crate::ir::infer::split_sizes(d[ax], n, split.map(|s| s.to_i64_vec()).transpose()?.as_deref())?;
    let st = row_major_strides(d);
    let mut start = 0usize;
    let mut parts = Vec::with_capacity(n);
    for len in sizes {
        let mut out_dims = d.to_vec();
        out_dims[ax] = len;
        let strides: Vec<isize> = st.iter().map(|&k| k as isize).collect();
        let base = if len > 0 { (start * st[ax]) as isize } else { 0 };
        let data = map_data!(x.data(), v => strided_read(v, &out_dims, base, &strides));
        parts.push(Tensor::new(out_dims, data)?);
        start += len;
    }
    Ok(parts)
}

/// ConstantOfShape: a tensor of the given shape filled with the one-element `value`.
pub fn constant_of_shape(value: &Tensor, shape: &Tensor) -> Result<Tensor> {
    let dims: Vec<usize> = shape
        .to_i64_vec()?
        .into_iter()
        .map(|v| usize::try_from(v).map_err(|_| Error::ShapeMismatch(format!("ConstantOfShape size {v}"))))
        .collect::<Result<_>>()?;
    let n = crate::ir::checked_numel(&dims)?;
    let data = map_data!(value.data(), v => vec![v[0]; n]);
    Tensor::new(dims, data)
}

/// Shape: the dimensions `start..end` of `x` as a 1-D int64 tensor.
pub fn shape(x: &Tensor, start: i64, end: Option<i64>) -> Tensor {
    let dims = x.dims();
    let (s, e) = shape_range(dims.len(), start, end);
    Tensor::vec_i64(dims[s..e].iter().map(|&d| d as i64).collect())
}

/// Size: the element count of `x` as an int64 scalar.
pub fn size(x: &Tensor) -> Result<Tensor> {
    Tensor::from_i64(vec![], vec![x.numel() as i64])
}
