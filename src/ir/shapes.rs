//! Shape arithmetic shared by shape inference and the interpreter (one source of truth).

use super::op::{AutoPad, ConvAttrs, ConvTransposeAttrs, PadMode, PoolAttrs};
use super::tensor::checked_numel;
use crate::{Error, Result};

fn shape_err(msg: String) -> Error {
    Error::ShapeMismatch(msg)
}

/// Normalises a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(shape_err(format!("axis {axis} is out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// numpy-style broadcast of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for (i, o) in out.iter_mut().enumerate() {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(shape_err(format!("shapes {a:?} and {b:?} do not broadcast"))),
        };
    }
    checked_numel(&out)?;
    Ok(out)
}

/// The axis of `out` along which a tensor of dimensions `c` that broadcasts into `out`
/// varies: `None` when it has one element (or all its dimensions are 1); an error when it
/// varies along several axes or does not broadcast into `out` (aligned from the right, each
/// dimension 1 or the output's). A per-channel constant `[1, C, 1, 1]` or `[C, 1, 1]` of an
/// NCHW value varies along axis 1.
pub fn broadcast_axis(c: &[usize], out: &[usize]) -> Result<Option<usize>> {
    if c.len() > out.len() {
        return Err(shape_err(format!(
            "rank {} above the input's {}",
            c.len(),
            out.len()
        )));
    }
    let lead = out.len() - c.len();
    let mut axis = None;
    for (i, &d) in c.iter().enumerate() {
        if d == 1 {
            continue;
        }
        if d != out[lead + i] {
            return Err(shape_err(format!("shape {c:?} does not broadcast into {out:?}")));
        }
        if axis.replace(lead + i).is_some() {
            return Err(shape_err(format!(
                "shape {c:?} varies along more than one axis of {out:?} (one scalar or one axis only)"
            )));
        }
    }
    Ok(axis)
}

/// Output shape of numpy matmul.
pub fn matmul_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a.is_empty() || b.is_empty() {
        return Err(shape_err("MatMul operands must have rank >= 1".into()));
    }
    let a2: Vec<usize> = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2: Vec<usize> = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return Err(shape_err(format!(
            "MatMul inner dimensions differ: {a:?} x {b:?}"
        )));
    }
    let mut out = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    checked_numel(&out)?;
    Ok(out)
}

/// Resolved geometry of a convolution or pooling window over N spatial axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Kernel size per spatial axis.
    pub kernel: Vec<usize>,
    /// Strides.
    pub strides: Vec<usize>,
    /// Dilations.
    pub dilations: Vec<usize>,
    /// Padding before each axis.
    pub pad_begin: Vec<usize>,
    /// Padding after each axis.
    pub pad_end: Vec<usize>,
    /// Output size per spatial axis.
    pub output: Vec<usize>,
}

fn or_ones(v: &[usize], n: usize, what: &str) -> Result<Vec<usize>> {
    match v.len() {
        0 => Ok(vec![1; n]),
        l if l == n => {
            if v.contains(&0) {
                return Err(shape_err(format!("{what} {v:?} contains 0")));
            }
            Ok(v.to_vec())
        }
        _ => Err(shape_err(format!("{what} {v:?} does not have {n} entries"))),
    }
}

/// Resolves padding and output sizes of a sliding window.
#[allow(clippy::too_many_arguments)]
fn window(
    input: &[usize],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    pads: &[usize],
    auto_pad: AutoPad,
    ceil_mode: bool,
) -> Result<Window> {
    let n = input.len();
    if kernel.len() != n || kernel.contains(&0) {
        return Err(shape_err(format!(
            "kernel {kernel:?} does not match {n} spatial axes"
        )));
    }
    let strides = or_ones(strides, n, "strides")?;
    let dilations = or_ones(dilations, n, "dilations")?;
    let (mut pad_begin, mut pad_end) = match pads.len() {
        0 => (vec![0; n], vec![0; n]),
        l if l == 2 * n => (pads[..n].to_vec(), pads[n..].to_vec()),
        _ => {
            return Err(shape_err(format!(
                "pads {pads:?} does not have {} entries",
                2 * n
            )))
        }
    };
    let mut output = vec![0; n];
    for i in 0..n {
        let eff = (kernel[i] - 1)
            .checked_mul(dilations[i])
            .and_then(|v| v.checked_add(1))
            .ok_or_else(|| shape_err("kernel extent overflows".into()))?;
        match auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => {
                let out = input[i].div_ceil(strides[i]);
                let total = ((out.max(1) - 1) * strides[i] + eff).saturating_sub(input[i]);
                let (small, big) = (total / 2, total - total / 2);
                if auto_pad == AutoPad::SameUpper {
                    (pad_begin[i], pad_end[i]) = (small, big);
                } else {
                    (pad_begin[i], pad_end[i]) = (big, small);
                }
                output[i] = out;
                continue;
            }
            AutoPad::Valid => {
                pad_begin[i] = 0;
                pad_end[i] = 0;
            }
            AutoPad::NotSet => {}
        }
        let padded = input[i]
            .checked_add(pad_begin[i])
            .and_then(|v| v.checked_add(pad_end[i]))
            .ok_or_else(|| shape_err("padded size overflows".into()))?;
        if padded < eff {
            return Err(shape_err(format!(
                "window of extent {eff} is larger than the padded input {padded} on spatial axis {i}"
            )));
        }
        let span = padded - eff;
        output[i] = if ceil_mode {
            let o = span.div_ceil(strides[i]) + 1;
            // The last window must start inside the input or left padding.
            if (o - 1) * strides[i] >= input[i] + pad_begin[i] {
                o - 1
            } else {
                o
            }
        } else {
            span / strides[i] + 1
        };
    }
    Ok(Window {
        kernel: kernel.to_vec(),
        strides,
        dilations,
        pad_begin,
        pad_end,
        output,
    })
}

/// Geometry of a convolution: `x` is N,C,spatial...; `w` is M,C/group,k....
pub fn conv_window(attrs: &ConvAttrs, x: &[usize], w: &[usize]) -> Result<Window> {
    if x.len() < 3 || w.len() != x.len() {
        return Err(shape_err(format!(
            "Conv input {x:?} and weight {w:?} must have the same rank >= 3"
        )));
    }
    let group = attrs.group.max(1);
    if x[1] != w[1] * group || !w[0].is_multiple_of(group) {
        return Err(shape_err(format!(
            "Conv input channels {} do not match weight {w:?} with group {group}",
            x[1]
        )));
    }
    let kernel = if attrs.kernel_shape.is_empty() {
        w[2..].to_vec()
    } else {
        attrs.kernel_shape.clone()
    };
    if kernel != w[2..] {
        return Err(shape_err(format!(
            "kernel_shape {kernel:?} differs from the weight's {w:?}"
        )));
    }
    window(
        &x[2..],
        &kernel,
        &attrs.strides,
        &attrs.dilations,
        &attrs.pads,
        attrs.auto_pad,
        false,
    )
}

/// Output shape of a convolution.
pub fn conv_shape(attrs: &ConvAttrs, x: &[usize], w: &[usize]) -> Result<Vec<usize>> {
    let win = conv_window(attrs, x, w)?;
    let mut out = vec![x[0], w[0]];
    out.extend(win.output);
    checked_numel(&out)?;
    Ok(out)
}

/// Geometry of a pooling window over `x` (N,C,spatial...).
pub fn pool_window(attrs: &PoolAttrs, x: &[usize]) -> Result<Window> {
    if x.len() < 3 {
        return Err(shape_err(format!("pooling input {x:?} must have rank >= 3")));
    }
    window(
        &x[2..],
        &attrs.kernel_shape,
        &attrs.strides,
        &attrs.dilations,
        &attrs.pads,
        attrs.auto_pad,
        attrs.ceil_mode,
    )
}

/// Resolved ConvTranspose geometry: pads and output spatial sizes.
#[derive(Clone, Debug)]
pub struct TransposedWindow {
    /// Kernel size per spatial axis.
    pub kernel: Vec<usize>,
    /// Strides.
    pub strides: Vec<usize>,
    /// Dilations.
    pub dilations: Vec<usize>,
    /// Padding removed before each axis.
    pub pad_begin: Vec<usize>,
    /// Output size per spatial axis.
    pub output: Vec<usize>,
}

/// Geometry of a transposed convolution: `x` is N,C,spatial...; `w` is C,M/group,k....
pub fn conv_transpose_window(
    attrs: &ConvTransposeAttrs,
    x: &[usize],
    w: &[usize],
) -> Result<TransposedWindow> {
    let c = &attrs.conv;
    if x.len() < 3 || w.len() != x.len() || w[0] != x[1] {
        return Err(shape_err(format!(
            "ConvTranspose input {x:?} does not match weight {w:?}"
        )));
    }
    let n = x.len() - 2;
    let kernel = if c.kernel_shape.is_empty() {
        w[2..].to_vec()
    } else {
        c.kernel_shape.clone()
    };
    let strides = or_ones(&c.strides, n, "strides")?;
    let dilations = or_ones(&c.dilations, n, "dilations")?;
    let out_pad = if attrs.output_padding.is_empty() {
        vec![0; n]
    } else {
        attrs.output_padding.clone()
    };
    if kernel.len() != n || out_pad.len() != n || kernel.contains(&0) {
        return Err(shape_err(
            "ConvTranspose attributes do not match the spatial rank".into(),
        ));
    }
    let mut pad_begin = vec![0; n];
    let mut output = vec![0; n];
    for i in 0..n {
        let full = (x[i + 2].max(1) - 1) * strides[i] + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1;
        if !attrs.output_shape.is_empty() || matches!(c.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) {
            let target = if attrs.output_shape.is_empty() {
                x[i + 2] * strides[i]
            } else {
                let os = &attrs.output_shape;
                *os.get(os.len().wrapping_sub(n) + i)
                    .ok_or_else(|| shape_err("output_shape too short".into()))?
            };
            let total = full.saturating_sub(target);
            pad_begin[i] = if c.auto_pad == AutoPad::SameUpper {
                total / 2
            } else {
                total - total / 2
            };
            output[i] = target;
        } else {
            let (pb, pe) = match c.pads.len() {
                0 => (0, 0),
                l if l == 2 * n => (c.pads[i], c.pads[i + n]),
                _ => {
                    return Err(shape_err(format!(
                        "pads {:?} does not have {} entries",
                        c.pads,
                        2 * n
                    )))
                }
            };
            let pb = if c.auto_pad == AutoPad::Valid { 0 } else { pb };
            let pe = if c.auto_pad == AutoPad::Valid { 0 } else { pe };
            pad_begin[i] = pb;
            output[i] = full
                .checked_sub(pb + pe)
                .ok_or_else(|| shape_err("ConvTranspose pads exceed the output".into()))?;
        }
    }
    Ok(TransposedWindow {
        kernel,
        strides,
        dilations,
        pad_begin,
        output,
    })
}

/// The target shape of Reshape.
pub fn reshape_shape(input: &[usize], shape: &[i64], allowzero: bool) -> Result<Vec<usize>> {
    let mut out = vec![0; shape.len()];
    reshape_dims_in(input, shape, allowzero, &mut out)?;
    Ok(out)
}

/// [`reshape_shape`] into `out` (of `shape.len()` elements), allocating nothing unless it
/// fails: the one definition of Reshape's target dims, for callers that keep dims inline.
pub fn reshape_dims_in(input: &[usize], shape: &[i64], allowzero: bool, out: &mut [usize]) -> Result<()> {
    if out.len() != shape.len() {
        return Err(shape_err(format!(
            "Reshape to {} dims into {} slots",
            shape.len(),
            out.len()
        )));
    }
    let numel = checked_numel(input)?;
    let mut infer_at = None;
    for (i, &s) in shape.iter().enumerate() {
        out[i] = match s {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                1
            }
            0 if !allowzero => *input
                .get(i)
                .ok_or_else(|| shape_err(format!("Reshape copies axis {i} of {input:?}")))?,
            s if s >= 0 => {
                usize::try_from(s).map_err(|_| shape_err(format!("invalid Reshape target {shape:?}")))?
            }
            _ => return Err(shape_err(format!("invalid Reshape target {shape:?}"))),
        };
    }
    let known = checked_numel(out)?;
    if let Some(i) = infer_at {
        if known == 0 || numel % known != 0 {
            return Err(shape_err(format!("cannot reshape {input:?} to {shape:?}")));
        }
        out[i] = numel / known;
    } else if known != numel {
        return Err(shape_err(format!(
            "cannot reshape {input:?} ({numel} elements) to {shape:?}"
        )));
    }
    Ok(())
}

/// Axes of Squeeze (all size-1 axes when `axes` is None), sorted.
pub fn squeeze_shape(input: &[usize], axes: Option<&[i64]>) -> Result<Vec<usize>> {
    let remove: Vec<usize> = match axes {
        Some(a) => a
            .iter()
            .map(|&x| norm_axis(x, input.len()))
            .collect::<Result<_>>()?,
        None => (0..input.len()).filter(|&i| input[i] == 1).collect(),
    };
    if let Some(&bad) = remove.iter().find(|&&i| input[i] != 1) {
        return Err(shape_err(format!("Squeeze axis {bad} of {input:?} is not 1")));
    }
    Ok((0..input.len())
        .filter(|i| !remove.contains(i))
        .map(|i| input[i])
        .collect())
}

/// Output shape of Unsqueeze.
pub fn unsqueeze_shape(input: &[usize], axes: &[i64]) -> Result<Vec<usize>> {
    let rank = input.len() + axes.len();
    let mut ins: Vec<usize> = axes.iter().map(|&a| norm_axis(a, rank)).collect::<Result<_>>()?;
    ins.sort_unstable();
    if ins.windows(2).any(|w| w[0] == w[1]) {
        return Err(shape_err(format!("Unsqueeze axes {axes:?} repeat")));
    }
    let mut src = input.iter();
    Ok((0..rank)
        .map(|i| {
            if ins.contains(&i) {
                1
            } else {
                *src.next().unwrap_or(&1)
            }
        })
        .collect())
}

/// One axis of a resolved Slice: first index, step and output length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SliceAxis {
    /// First index read.
    pub start: i64,
    /// Step (never 0).
    pub step: i64,
    /// Number of elements taken.
    pub len: usize,
}

/// Resolves Slice operands into one [`SliceAxis`] per input axis.
pub fn slice_axes(
    input: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Vec<SliceAxis>> {
    let mut out: Vec<SliceAxis> = input
        .iter()
        .map(|&d| SliceAxis {
            start: 0,
            step: 1,
            len: d,
        })
        .collect();
    let default_axes: Vec<i64> = (0..starts.len() as i64).collect();
    let axes = axes.unwrap_or(&default_axes);
    if ends.len() != starts.len()
        || axes.len() != starts.len()
        || steps.is_some_and(|s| s.len() != starts.len())
    {
        return Err(shape_err(
            "Slice starts, ends, axes and steps differ in length".into(),
        ));
    }
    for (i, &a) in axes.iter().enumerate() {
        let ax = norm_axis(a, input.len())?;
        let dim = input[ax] as i64;
        let step = steps.map_or(1, |s| s[i]);
        if step == 0 {
            return Err(shape_err("Slice step is 0".into()));
        }
        if dim == 0 {
            out[ax] = SliceAxis {
                start: 0,
                step,
                len: 0,
            };
            continue;
        }
        let clamp_idx = |v: i64, lo: i64, hi: i64| {
            let v = if v < 0 { v.saturating_add(dim) } else { v };
            v.clamp(lo, hi)
        };
        let (start, end) = if step > 0 {
            (clamp_idx(starts[i], 0, dim), clamp_idx(ends[i], 0, dim))
        } else {
            (clamp_idx(starts[i], 0, dim - 1), clamp_idx(ends[i], -1, dim - 1))
        };
        // i128: `step` may be anything up to i64::MIN / i64::MAX.
        let (s128, e128, st128) = (start as i128, end as i128, step as i128);
        let len = if step > 0 {
            if e128 > s128 {
                (e128 - s128 + st128 - 1) / st128
            } else {
                0
            }
        } else if s128 > e128 {
            (s128 - e128 - st128 - 1) / -st128
        } else {
            0
        };
        out[ax] = SliceAxis {
            start,
            step,
            len: len as usize,
        };
    }
    Ok(out)
}

/// Begin and end padding per axis of Pad from the `pads` operand (and optional `axes`).
pub fn pad_amounts(rank: usize, pads: &[i64], axes: Option<&[i64]>) -> Result<Vec<(i64, i64)>> {
    let default_axes: Vec<i64> = (0..rank as i64).collect();
    let axes = axes.unwrap_or(&default_axes);
    if pads.len() != 2 * axes.len() {
        return Err(shape_err(format!(
            "Pad has {} pads for {} axes",
            pads.len(),
            axes.len()
        )));
    }
    let mut out = vec![(0, 0); rank];
    for (i, &a) in axes.iter().enumerate() {
        out[norm_axis(a, rank)?] = (pads[i], pads[i + axes.len()]);
    }
    Ok(out)
}

/// The input index along one axis of length `len` that Pad in `mode` copies to output index
/// `o` when `begin` elements are padded before it; `None` for the constant fill value (and
/// for every padded index of an empty axis).
pub fn pad_source(mode: PadMode, o: i64, begin: i64, len: i64) -> Option<usize> {
    let i = o - begin;
    if (0..len).contains(&i) {
        return Some(i as usize);
    }
    if len == 0 {
        return None;
    }
    match mode {
        PadMode::Constant => None,
        PadMode::Edge => Some(i.clamp(0, len - 1) as usize),
        PadMode::Wrap => Some(i.rem_euclid(len) as usize),
        PadMode::Reflect => {
            if len == 1 {
                return Some(0);
            }
            let period = 2 * (len - 1);
            let m = i.rem_euclid(period);
            Some(if m < len { m } else { period - m } as usize)
        }
    }
}

/// Output shape of Pad.
pub fn pad_shape(input: &[usize], amounts: &[(i64, i64)]) -> Result<Vec<usize>> {
    let out: Vec<usize> = input
        .iter()
        .zip(amounts)
        .map(|(&d, &(b, e))| {
            let v = d as i64 + b + e;
            usize::try_from(v).map_err(|_| shape_err(format!("Pad makes axis of size {d} negative")))
        })
        .collect::<Result<_>>()?;
    checked_numel(&out)?;
    Ok(out)
}

/// Axes reduced by ReduceMean (sorted, unique); empty means identity when `noop`.
pub fn reduce_axes(rank: usize, axes: Option<&[i64]>, noop: bool) -> Result<Vec<usize>> {
    let mut v: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a.iter().map(|&x| norm_axis(x, rank)).collect::<Result<_>>()?,
        _ if noop => vec![],
        _ => (0..rank).collect(),
    };
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// Output shape of a reduction.
pub fn reduce_shape(input: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    (0..input.len())
        .filter_map(|i| match (axes.contains(&i), keepdims) {
            (true, true) => Some(1),
            (true, false) => None,
            (false, _) => Some(input[i]),
        })
        .collect()
}

/// Output shape of Gather.
pub fn gather_shape(data: &[usize], indices: &[usize], axis: usize) -> Result<Vec<usize>> {
    let mut out = data[..axis].to_vec();
    out.extend_from_slice(indices);
    out.extend_from_slice(&data[axis + 1..]);
    checked_numel(&out)?;
    Ok(out)
}

/// Output shape of Concat.
pub fn concat_shape(inputs: &[&[usize]], axis: i64) -> Result<Vec<usize>> {
    let first = inputs
        .first()
        .ok_or_else(|| shape_err("Concat has no inputs".into()))?;
    let ax = norm_axis(axis, first.len())?;
    let mut out = first.to_vec();
    out[ax] = 0;
    for s in inputs {
        if s.len() != first.len() || (0..s.len()).any(|i| i != ax && s[i] != first[i]) {
            return Err(shape_err(format!(
                "Concat inputs {inputs:?} differ off axis {ax}"
            )));
        }
        out[ax] = out[ax]
            .checked_add(s[ax])
            .ok_or_else(|| shape_err("Concat size overflows".into()))?;
    }
    checked_numel(&out)?;
    Ok(out)
}

/// Output shape of Transpose.
pub fn transpose_shape(input: &[usize], perm: Option<&[usize]>) -> Result<Vec<usize>> {
    match perm {
        None => Ok(input.iter().rev().copied().collect()),
        Some(p) if p.len() == input.len() => {
            let mut seen = vec![false; p.len()];
            for &i in p {
                if i >= p.len() || std::mem::replace(&mut seen[i], true) {
                    return Err(shape_err(format!("perm {p:?} is not a permutation")));
                }
            }
            Ok(p.iter().map(|&i| input[i]).collect())
        }
        Some(p) => Err(shape_err(format!(
            "perm {p:?} does not match rank {}",
            input.len()
        ))),
    }
}

/// Output shape of Flatten.
pub fn flatten_shape(input: &[usize], axis: i64) -> Result<Vec<usize>> {
    let r = input.len() as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a > r {
        return Err(shape_err(format!(
            "Flatten axis {axis} out of range for rank {r}"
        )));
    }
    let a = a as usize;
    Ok(vec![input[..a].iter().product(), input[a..].iter().product()])
}

/// Output shape of Shape with start/end.
pub fn shape_range(rank: usize, start: i64, end: Option<i64>) -> (usize, usize) {
    let r = rank as i64;
    let fix = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let s = fix(start);
    let e = fix(end.unwrap_or(r));
    (s, e.max(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast(&[2, 1, 3], &[4, 1]).unwrap(), vec![2, 4, 3]);
        assert!(broadcast(&[2, 3], &[4]).is_err());
    }

    #[test]
    fn conv_output_sizes() {
        let a = ConvAttrs {
            strides: vec![2, 2],
            pads: vec![1, 1, 1, 1],
            group: 1,
            ..Default::default()
        };
        assert_eq!(
            conv_shape(&a, &[1, 3, 224, 224], &[32, 3, 3, 3]).unwrap(),
            vec![1, 32, 112, 112]
        );
        let same = ConvAttrs {
            strides: vec![2],
            auto_pad: AutoPad::SameUpper,
            group: 1,
            ..Default::default()
        };
        assert_eq!(conv_shape(&same, &[1, 1, 5], &[1, 1, 3]).unwrap(), vec![1, 1, 3]);
        assert!(conv_shape(&a, &[1, 4, 8, 8], &[2, 3, 3, 3]).is_err());
    }

    #[test]
    fn reshape_slice_and_friends() {
        assert_eq!(reshape_shape(&[2, 3, 4], &[0, -1], false).unwrap(), vec![2, 12]);
        assert!(reshape_shape(&[2, 3], &[4, -1], false).is_err());
        let s = slice_axes(&[10], &[-1], &[i64::MIN], None, Some(&[-2])).unwrap();
        assert_eq!(
            s[0],
            SliceAxis {
                start: 9,
                step: -2,
                len: 5
            }
        );
        assert_eq!(unsqueeze_shape(&[3, 4], &[0, -1]).unwrap(), vec![1, 3, 4, 1]);
        assert_eq!(squeeze_shape(&[1, 3, 1], None).unwrap(), vec![3]);
        assert_eq!(matmul_shape(&[2, 1, 3, 4], &[5, 4, 6]).unwrap(), vec![2, 5, 3, 6]);
        assert_eq!(matmul_shape(&[4], &[4, 6]).unwrap(), vec![6]);
    }

    #[test]
    fn broadcast_axis_finds_the_one_axis_a_constant_varies_along() {
        assert_eq!(broadcast_axis(&[], &[1, 3, 4, 4]).unwrap(), None);
        assert_eq!(broadcast_axis(&[1, 1, 1, 1], &[1, 3, 4, 4]).unwrap(), None);
        assert_eq!(broadcast_axis(&[1, 3, 1, 1], &[1, 3, 4, 4]).unwrap(), Some(1));
        assert_eq!(broadcast_axis(&[3, 1, 1], &[2, 3, 4, 4]).unwrap(), Some(1));
        assert_eq!(broadcast_axis(&[4], &[2, 3, 4, 4]).unwrap(), Some(3));
        assert_eq!(broadcast_axis(&[3, 1, 1], &[3, 4, 4]).unwrap(), Some(0));
        assert!(broadcast_axis(&[1, 3, 4, 1], &[1, 3, 4, 4]).is_err());
        assert!(broadcast_axis(&[1, 2, 1, 1], &[1, 3, 4, 4]).is_err());
        assert!(broadcast_axis(&[1, 1, 3, 1, 1], &[1, 3, 4, 4]).is_err());
    }
}
