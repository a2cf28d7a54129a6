//! Resize: nearest and (multi-)linear, every coordinate transformation mode, applied one
//! axis at a time (exact for separable interpolation).

use crate::ir::infer::resize_output_shape;
use crate::ir::op::{CoordinateTransform as C, ResizeAttrs, ResizeMode};
use crate::ir::resize::{axis_changes, axis_taps, Tap};
use crate::ir::shapes::norm_axis;
use crate::ir::{DType, Tensor};
use crate::{Error, Result};

/// Resize. `rest` holds roi?, scales?, sizes? (empty tensors count as absent).
pub fn resize(attrs: &ResizeAttrs, x: &Tensor, rest: &[Option<&Tensor>]) -> Result<Tensor> {
    if attrs.antialias {
        return Err(Error::Unsupported("Resize with antialias=1".into()));
    }
    let present = |i: usize| rest.get(i).copied().flatten().filter(|t| t.numel() > 0);
    let scales = present(1).map(|t| t.to_f32_vec()).transpose()?;
    let sizes = present(2).map(|t| t.to_i64_vec()).transpose()?;
    let d = x.dims().to_vec();
    let (out_dims, eff) = resize_output_shape(attrs, &d, scales.as_deref(), sizes.as_deref())?;
    let rank = d.len();
    let axes: Vec<usize> = if attrs.axes.is_empty() {
        (0..rank).collect()
    } else {
        attrs
            .axes
            .iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<Result<_>>()?
    };
    let roi_v = present(0).map(|t| t.to_f32_vec()).transpose()?;
    let roi_of = |a: usize| -> Result<(f32, f32)> {
        match &roi_v {
            Some(r) if attrs.coordinate_transform == C::TfCropAndResize => {
                if r.len() != 2 * rank && r.len() != 2 * axes.len() {
                    return Err(Error::ShapeMismatch(format!(
                        "Resize roi has {} values; expected {} or {}",
                        r.len(),
                        2 * rank,
                        2 * axes.len()
                    )));
                }
                let k = if r.len() == 2 * rank {
                    a
                } else {
                    match axes.iter().position(|&x| x == a) {
                        Some(k) => k,
                        None => return Ok((0.0, 1.0)),
                    }
                };
                let n = r.len() / 2;
                Ok((r[k], r[k + n]))
            }
            _ => Ok((0.0, 1.0)),
        }
    };
    let mut cur = x.to_f32_vec()?;
    let mut dims = d.clone();
    let mut outside: Option<Vec<bool>> = None;
    for a in 0..rank {
        if !axis_changes(attrs, d[a], out_dims[a], eff[a]) {
            continue;
        }
        let t = axis_taps(attrs, d[a], out_dims[a], eff[a], roi_of(a)?);
        let outer: usize = dims[..a].iter().product();
        let inner: usize = dims[a + 1..].iter().product();
        let (il, ol) = (dims[a], out_dims[a]);
        let mut next = vec![0f32; outer * ol * inner];
        let mut next_out = outside.as_ref().map(|_| vec![false; next.len()]);
        let track = attrs.coordinate_transform == C::TfCropAndResize;
        let mut mask = if track {
            Some(vec![false; next.len()])
        } else {
            None
        };
        for o in 0..outer {
            for (j, tap) in t.iter().enumerate() {
                let dst = (o * ol + j) * inner;
                for k in 0..inner {
                    let src = |i: usize| (o * il + i) * inner + k;
                    let (v, out_flag) = match *tap {
                        Tap::Outside => (attrs.extrapolation_value, true),
                        Tap::Nearest(i) => (cur[src(i)], outside.as_ref().is_some_and(|m| m[src(i)])),
                        Tap::Linear(i0, i1, w) => (
                            cur[src(i0)] * (1.0 - w) + cur[src(i1)] * w,
                            outside.as_ref().is_some_and(|m| m[src(i0)] || m[src(i1)]),
                        ),
                        Tap::Cubic(idx, w) => (
                            idx.iter().zip(&w).map(|(&i, &wk)| cur[src(i)] * wk).sum(),
                            outside.as_ref().is_some_and(|m| idx.iter().any(|&i| m[src(i)])),
                        ),
                    };
                    next[dst + k] = v;
                    if let Some(m) = mask.as_mut() {
                        m[dst + k] = out_flag;
                    }
                }
            }
        }
        if let (Some(m), Some(n)) = (&mask, next_out.as_mut()) {
            n.copy_from_slice(m);
        }
        outside = mask.or(next_out);
        cur = next;
        dims[a] = ol;
    }
    if let Some(m) = &outside {
        for (v, &o) in cur.iter_mut().zip(m) {
            if o {
                *v = attrs.extrapolation_value;
            }
        }
    }
    let t = Tensor::from_f32(out_dims, cur)?;
    match x.dtype() {
        DType::F32 => Ok(t),
        DType::I8 | DType::U8 if attrs.mode == ResizeMode::Nearest => super::elementwise::cast(&t, x.dtype()),
        d => Err(Error::Unsupported(format!(
            "Resize of {d} tensors in linear mode"
        ))),
    }
}
