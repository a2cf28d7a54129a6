//! Shape inference of data-movement operators: Concat, Reshape, Flatten, Transpose, Squeeze,
//! Unsqueeze, Slice, Pad, DepthToSpace, SpaceToDepth, Gather, Split and Resize.

use super::{both, dtype_err, expect_dtype, ints, need, same, Fact, OutFact};
use crate::ir::op::{AspectRatioPolicy, Op, ResizeAttrs};
use crate::ir::shapes::*;
use crate::ir::{checked_numel, DType};
use crate::{Error, Result};

/// Concat: inputs of one type joined along `axis`.
pub(super) fn concat(op: &Op, axis: i64, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let facts: Vec<Fact> = inputs
        .iter()
        .map(|f| f.ok_or_else(|| Error::InvalidModel("Concat input is empty".into())))
        .collect::<Result<_>>()?;
    if let Some(f) = facts.iter().find(|f| f.dtype != x.dtype) {
        return Err(dtype_err(
            op,
            format!("inputs have types {} and {}", x.dtype, f.dtype),
        ));
    }
    let shapes: Option<Vec<&[usize]>> = facts.iter().map(|f| f.shape).collect();
    same(x, shapes.map(|s| concat_shape(&s, axis)).transpose()?)
}

/// Reshape to the constant shape operand.
pub(super) fn reshape(allowzero: bool, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let target = ints(inputs.get(1).copied().flatten())?;
    same(
        x,
        match (x.shape, target) {
            (Some(s), Some(t)) => Some(reshape_shape(s, &t, allowzero)?),
            _ => None,
        },
    )
}

/// Flatten to 2-D around `axis`.
pub(super) fn flatten(axis: i64, x: Fact<'_>) -> Result<Vec<OutFact>> {
    same(x, x.shape.map(|s| flatten_shape(s, axis)).transpose()?)
}

/// Transpose by `perm` (reversed dimensions without it).
pub(super) fn transpose(perm: Option<&[usize]>, x: Fact<'_>) -> Result<Vec<OutFact>> {
    same(x, x.shape.map(|s| transpose_shape(s, perm)).transpose()?)
}

/// DepthToSpace / SpaceToDepth of a 4-D input ([`crate::ir::depth_space`]).
pub(super) fn depth_space(op: &Op, x: Fact<'_>) -> Result<Vec<OutFact>> {
    let out = match x.shape {
        Some(s) => match crate::ir::depth_space::view_of(op, s) {
            Some(v) => Some(v?.out_dims),
            None => None,
        },
        None => None,
    };
    same(x, out)
}

/// Squeeze the axes of the optional (constant) axes operand.
pub(super) fn squeeze(x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let axes_in = inputs.get(1).copied().flatten();
    let axes = ints(axes_in)?;
    same(
        x,
        match x.shape {
            Some(s) if axes_in.is_none() || axes.is_some() => Some(squeeze_shape(s, axes.as_deref())?),
            _ => None,
        },
    )
}

/// Unsqueeze at the axes of the constant axes operand.
pub(super) fn unsqueeze(x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let axes = ints(inputs.get(1).copied().flatten())?;
    same(
        x,
        match (x.shape, axes) {
            (Some(s), Some(a)) => Some(unsqueeze_shape(s, &a)?),
            _ => None,
        },
    )
}

/// Slice by the constant starts, ends and optional axes and steps operands.
pub(super) fn slice(x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let get = |i| ints(inputs.get(i).copied().flatten());
    let (starts, ends) = (get(1)?, get(2)?);
    let (axes_f, steps_f) = (inputs.get(3).copied().flatten(), inputs.get(4).copied().flatten());
    let (axes, steps) = (get(3)?, get(4)?);
    let known = axes_f.is_none() == axes.is_none() && steps_f.is_none() == steps.is_none();
    same(
        x,
        match (x.shape, starts, ends) {
            (Some(s), Some(st), Some(en)) if known => Some(
                slice_axes(s, &st, &en, axes.as_deref(), steps.as_deref())?
                    .iter()
                    .map(|a| a.len)
                    .collect(),
            ),
            _ => None,
        },
    )
}

/// Pad by the constant pads and optional axes operands.
pub(super) fn pad(x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let pads = ints(inputs.get(1).copied().flatten())?;
    let axes_f = inputs.get(3).copied().flatten();
    let axes = ints(axes_f)?;
    same(
        x,
        match (x.shape, pads) {
            (Some(s), Some(p)) if axes_f.is_none() || axes.is_some() => {
                Some(pad_shape(s, &pad_amounts(s.len(), &p, axes.as_deref())?)?)
            }
            _ => None,
        },
    )
}

/// Gather along `axis` with int32 or int64 indices.
pub(super) fn gather(op: &Op, axis: i64, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let idx = need(inputs, 1, op)?;
    expect_dtype(op, "indices", idx.dtype, &[DType::I32, DType::I64])?;
    same(
        x,
        match both(x.shape, idx.shape) {
            Some((d, i)) => Some(gather_shape(d, i, norm_axis(axis, d.len())?)?),
            None => None,
        },
    )
}

/// Split along `axis` into `num_outputs` parts, sized by the optional (constant) split operand.
pub(super) fn split(
    axis: i64,
    num_outputs: usize,
    x: Fact<'_>,
    inputs: &[Option<Fact<'_>>],
) -> Result<Vec<OutFact>> {
    let split_in = inputs.get(1).copied().flatten();
    let split = ints(split_in)?;
    let shapes: Vec<Option<Vec<usize>>> = match x.shape {
        Some(s) if split_in.is_none() || split.is_some() => {
            let ax = norm_axis(axis, s.len())?;
            split_sizes(s[ax], num_outputs, split.as_deref())?
                .into_iter()
                .map(|n| {
                    let mut d = s.to_vec();
                    d[ax] = n;
                    Some(d)
                })
                .collect()
        }
        _ => vec![None; num_outputs],
    };
    Ok(shapes.into_iter().map(|sh| (x.dtype, sh)).collect())
}

/// Sizes of the parts of Split: from the `split` operand, or `n` near-equal parts (the last
/// one smaller when the axis does not divide evenly).
pub fn split_sizes(len: usize, n: usize, split: Option<&[i64]>) -> Result<Vec<usize>> {
    match split {
        Some(s) => {
            let sizes: Vec<usize> = s
                .iter()
                .map(|&v| {
                    usize::try_from(v).map_err(|_| Error::ShapeMismatch(format!("negative split size {v}")))
                })
                .collect::<Result<_>>()?;
            if sizes.len() != n || sizes.iter().sum::<usize>() != len {
                return Err(Error::ShapeMismatch(format!(
                    "split {s:?} does not cut {len} into {n} parts"
                )));
            }
            Ok(sizes)
        }
        None => {
            if n == 0 {
                return Err(Error::ShapeMismatch("Split has no outputs".into()));
            }
            let chunk = len.div_ceil(n);
            Ok((0..n).map(|i| chunk.min(len.saturating_sub(i * chunk))).collect())
        }
    }
}

/// Resize: f32 or 8-bit X; the output shape when the scales or sizes are constant.
pub(super) fn resize(
    op: &Op,
    a: &ResizeAttrs,
    x: Fact<'_>,
    inputs: &[Option<Fact<'_>>],
) -> Result<Vec<OutFact>> {
    expect_dtype(op, "X", x.dtype, &[DType::F32, DType::I8, DType::U8])?;
    // Output sizes depend on scales/sizes values and the attributes; the interpreter
    // computes them, inference reports them when constants allow.
    let shape = match x.shape {
        Some(s) => resize_shape_if_known(a, s, inputs)?,
        None => None,
    };
    same(x, shape)
}

/// The output shape of Resize when its scales or sizes operand is constant (an empty operand
/// counts as absent).
fn resize_shape_if_known(
    attrs: &ResizeAttrs,
    x: &[usize],
    inputs: &[Option<Fact<'_>>],
) -> Result<Option<Vec<usize>>> {
    let scales_f = inputs
        .get(2)
        .copied()
        .flatten()
        .filter(|f| f.shape.is_none_or(|s| s.iter().product::<usize>() > 0));
    let sizes_f = inputs
        .get(3)
        .copied()
        .flatten()
        .filter(|f| f.shape.is_none_or(|s| s.iter().product::<usize>() > 0));
    let scales = match scales_f {
        Some(f) => match f.value {
            Some(v) => Some(v.to_f32_vec()?),
            None => return Ok(None),
        },
        None => None,
    };
    let sizes = match sizes_f {
        Some(f) => match f.value {
            Some(v) => Some(v.to_i64_vec()?),
            None => return Ok(None),
        },
        None => None,
    };
    resize_output_shape(attrs, x, scales.as_deref(), sizes.as_deref()).map(|(s, _)| Some(s))
}

/// Output shape and effective per-axis scales of Resize.
pub fn resize_output_shape(
    attrs: &ResizeAttrs,
    x: &[usize],
    scales: Option<&[f32]>,
    sizes: Option<&[i64]>,
) -> Result<(Vec<usize>, Vec<f32>)> {
    let rank = x.len();
    let axes: Vec<usize> = if attrs.axes.is_empty() {
        (0..rank).collect()
    } else {
        attrs
            .axes
            .iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<Result<_>>()?
    };
    let mut out = x.to_vec();
    let mut eff = vec![1.0f32; rank];
    match (scales, sizes) {
        (Some(sc), None) => {
            if sc.len() != axes.len() {
                return Err(Error::ShapeMismatch(format!(
                    "Resize has {} scales for {} axes",
                    sc.len(),
                    axes.len()
                )));
            }
            for (i, &a) in axes.iter().enumerate() {
                if !(sc[i] > 0.0 && sc[i].is_finite()) {
                    return Err(Error::ShapeMismatch(format!(
                        "Resize scale {} is not positive",
                        sc[i]
                    )));
                }
                out[a] = (x[a] as f64 * sc[i] as f64).floor() as usize;
                eff[a] = sc[i];
            }
        }
        (None, Some(sz)) => {
            if sz.len() != axes.len() || sz.iter().any(|&s| s < 0) {
                return Err(Error::ShapeMismatch(format!(
                    "Resize sizes {sz:?} do not fit axes {axes:?}"
                )));
            }
            let ratios: Vec<f32> = axes
                .iter()
                .enumerate()
                .map(|(i, &a)| sz[i] as f32 / x[a] as f32)
                .collect();
            let uniform = match attrs.keep_aspect_ratio_policy {
                AspectRatioPolicy::Stretch => None,
                AspectRatioPolicy::NotLarger => ratios.iter().copied().reduce(f32::min),
                AspectRatioPolicy::NotSmaller => ratios.iter().copied().reduce(f32::max),
            };
            for (i, &a) in axes.iter().enumerate() {
                match uniform {
                    None => {
                        out[a] = sz[i] as usize;
                        eff[a] = ratios[i];
                    }
                    Some(r) => {
                        out[a] = (x[a] as f32 * r + 0.5).floor() as usize;
                        eff[a] = r;
                    }
                }
            }
        }
        _ => {
            return Err(Error::InvalidModel(
                "Resize needs exactly one of scales and sizes".into(),
            ))
        }
    }
    checked_numel(&out)?;
    Ok((out, eff))
}
