//! Resize: nearest and (multi-)linear, every coordinate transformation mode, applied one
//! axis at a time (exact for separable interpolation).

use crate::ir::infer::resize_output_shape;
use crate::ir::op::{CoordinateTransform as C, NearestMode, ResizeAttrs, ResizeMode};
use crate::ir::shapes::norm_axis;
use crate::ir::{DType, Tensor};
use crate::{Error, Result};

/// How one output coordinate reads the input along an axis.
#[derive(Clone, Copy)]
enum Tap {
    /// Outside the cropped input: the extrapolation value.
    Outside,
    /// One input index.
    Nearest(usize),
    /// Two input indices and the weight of the second.
    Linear(usize, usize, f32),
    /// Four input indices and their weights.
    Cubic([usize; 4], [f32; 4]),
}

/// Keys' cubic convolution weights for the taps at offsets -1, 0, 1, 2 from floor(x).
fn cubic_weights(r: f32, a: f32) -> [f32; 4] {
    let far = |t: f32| ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a;
    let near = |t: f32| ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
    [far(r + 1.0), near(r), near(1.0 - r), far(2.0 - r)]
}

fn source_coord(
    attrs: &ResizeAttrs,
    o: usize,
    in_len: usize,
    out_len: usize,
    scale: f32,
    roi: (f32, f32),
) -> f32 {
    // The spec's length_resized is the real-valued `in_len * scale`, except where noted.
    let (x, il, ol) = (o as f32, in_len as f32, in_len as f32 * scale);
    match attrs.coordinate_transform {
        C::HalfPixel => (x + 0.5) / scale - 0.5,
        C::HalfPixelSymmetric => {
            let adjustment = out_len as f32 / ol;
            let center = il / 2.0;
            let offset = center * (1.0 - adjustment);
            offset + (x + 0.5) / scale - 0.5
        }
        C::PytorchHalfPixel => {
            if ol > 1.0 {
                (x + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        C::AlignCorners => {
            if ol == 1.0 {
                0.0
            } else {
                x * (il - 1.0) / (ol - 1.0)
            }
        }
        C::Asymmetric => x / scale,
        C::TfCropAndResize => {
            let (start, end) = roi;
            if ol > 1.0 {
                start * (il - 1.0) + x * (end - start) * (il - 1.0) / (ol - 1.0)
            } else {
                0.5 * (start + end) * (il - 1.0)
            }
        }
    }
}

fn taps(attrs: &ResizeAttrs, in_len: usize, out_len: usize, scale: f32, roi: (f32, f32)) -> Vec<Tap> {
    let last = in_len as f32 - 1.0;
    let clamp = |i: f32| i.clamp(0.0, last.max(0.0)) as usize;
    (0..out_len)
        .map(|o| {
            let x = source_coord(attrs, o, in_len, out_len, scale, roi);
            if attrs.coordinate_transform == C::TfCropAndResize && !(0.0..=last).contains(&x) {
                return Tap::Outside;
            }
            match attrs.mode {
                ResizeMode::Nearest => {
                    let fl = x.floor();
                    let r = match attrs.nearest_mode {
                        NearestMode::RoundPreferFloor => {
                            if x - fl == 0.5 {
                                fl
                            } else {
                                x.round()
                            }
                        }
                        NearestMode::RoundPreferCeil => {
                            if x - fl == 0.5 {
                                fl + 1.0
                            } else {
                                x.round()
                            }
                        }
                        NearestMode::Floor => fl,
                        NearestMode::Ceil => x.ceil(),
                    };
                    Tap::Nearest(clamp(r))
                }
                ResizeMode::Cubic => {
                    let fl = x.floor();
                    let mut w = cubic_weights(x - fl, attrs.cubic_coeff_a);
                    let pos = [fl - 1.0, fl, fl + 1.0, fl + 2.0];
                    if attrs.exclude_outside {
                        for (wk, &p) in w.iter_mut().zip(&pos) {
                            if p < 0.0 || p > last {
                                *wk = 0.0;
                            }
                        }
                        let sum: f32 = w.iter().sum();
                        if sum != 0.0 {
                            w.iter_mut().for_each(|v| *v /= sum);
                        }
                    }
                    Tap::Cubic(pos.map(clamp), w)
                }
                ResizeMode::Linear => {
                    let fl = x.floor();
                    Tap::Linear(clamp(fl), clamp(fl + 1.0), x - fl)
                }
            }
        })
        .collect()
}

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
        let changes =
            out_dims[a] != d[a] || eff[a] != 1.0 || attrs.coordinate_transform == C::TfCropAndResize;
        if !changes {
            continue;
        }
        let t = taps(attrs, d[a], out_dims[a], eff[a], roi_of(a)?);
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
