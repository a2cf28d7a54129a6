//! The Y output of a normalisation node as independent rows ([`NormJob`]), for writing it
//! into a kept tensor and for splitting it over threads.

use super::{layer_norm_row_in_place, rms_norm_row_in_place};
use crate::cpu::Isa;
use crate::ir::shapes::norm_axis;
use crate::ir::{DType, Op, Tensor};
use crate::{Error, Result};
use std::ops::Range;

/// Which statistics normalise a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Mean and variance (LayerNormalization, SkipLayerNormalization).
    Layer,
    /// Root mean square (RMSNormalization, the simplified forms).
    Rms,
}

/// The Y output of LayerNormalization, RMSNormalization, SimplifiedLayerNormalization or
/// (Skip)(Simplified)LayerNormalization on `f32` operands that need no broadcasting: rows
/// of `inner` elements normalised independently of each other, so any partition of the rows
/// gives the bits of one pass.
#[derive(Clone, Copy, Debug)]
pub struct NormJob<'a> {
    kind: Kind,
    x: &'a [f32],
    /// The skip rows (cycled over the input's rows) and the bias added to them.
    skip: Option<(&'a [f32], Option<&'a [f32]>)>,
    scale: &'a [f32],
    bias: Option<&'a [f32]>,
    eps: f32,
    inner: usize,
    dims: &'a [usize],
}

/// `d` without its leading 1s.
fn trimmed(d: &[usize]) -> &[usize] {
    let lead = d.iter().take_while(|&&n| n == 1).count();
    &d[lead..]
}

/// The `f32` elements of `t` when its shape, without leading 1s, is `want`'s.
fn exact<'a>(t: Option<&'a Tensor>, want: &[usize]) -> Option<&'a [f32]> {
    let t = t?;
    if t.dtype() != DType::F32 || trimmed(t.dims()) != trimmed(want) {
        return None;
    }
    t.as_f32().ok()
}

impl<'a> NormJob<'a> {
    /// The job of `op` on `inputs`, or `None` when `op` is not one of the normalisations or
    /// its operands are not `f32` of the exact shapes (the interpreter's general path then
    /// evaluates it, and reports malformed nodes).
    pub fn of(op: &Op, inputs: &[Option<&'a Tensor>]) -> Result<Option<NormJob<'a>>> {
        let get = |i: usize| inputs.get(i).copied().flatten();
        let Some(x) = get(0).filter(|x| x.dtype() == DType::F32) else {
            return Ok(None);
        };
        let d = x.dims();
        let (kind, axis, eps) = match op {
            Op::LayerNormalization { axis, epsilon } => (Kind::Layer, *axis, *epsilon),
            Op::RmsNormalization { axis, epsilon, .. } => (Kind::Rms, *axis, *epsilon),
            Op::SkipNormalization { epsilon, simplified } => {
                let kind = if *simplified { Kind::Rms } else { Kind::Layer };
                (kind, -1, *epsilon)
            }
            _ => return Ok(None),
        };
        if d.is_empty() {
            return Ok(None);
        }
        let ax = norm_axis(axis, d.len())?;
        let norm_dims = &d[ax..];
        let inner = crate::ir::checked_numel(norm_dims)?;
        if inner == 0 {
            return Ok(None);
        }
        let xs = x.as_f32()?;
        let job = |scale, bias, skip| NormJob {
            kind,
            x: xs,
            skip,
            scale,
            bias,
            eps,
            inner,
            dims: d,
        };
        Ok(match op {
            Op::SkipNormalization { simplified, .. } => {
                let Some(skip) = get(1).filter(|s| s.dtype() == DType::F32) else {
                    return Ok(None);
                };
                let sd = trimmed(skip.dims());
                // The skip is the input's shape, or a suffix of it cycled over the rows.
                if sd.len() > d.len() || d[d.len() - sd.len()..] != *sd || sd.is_empty() {
                    return Ok(None);
                }
                let (Some(gamma), Some(skip_values)) = (exact(get(2), norm_dims), skip.as_f32().ok()) else {
                    return Ok(None);
                };
                let beta = if *simplified { None } else { get(3) };
                let bias = get(4);
                let beta_v = exact(beta, norm_dims);
                let bias_v = exact(bias, norm_dims);
                if beta.is_some() != beta_v.is_some() || bias.is_some() != bias_v.is_some() {
                    return Ok(None);
                }
                Some(job(gamma, beta_v, Some((skip_values, bias_v))))
            }
            _ => {
                let Some(scale) = exact(get(1), norm_dims) else {
                    return Ok(None);
                };
                let bias = if kind == Kind::Layer { get(2) } else { None };
                let bias_v = exact(bias, norm_dims);
                if bias.is_some() != bias_v.is_some() {
                    return Ok(None);
                }
                Some(job(scale, bias_v, None))
            }
        })
    }

    /// The shape of Y (the input's).
    pub fn dims(&self) -> &'a [usize] {
        self.dims
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.x.len() / self.inner
    }

    /// The elements of a row.
    pub fn inner(&self) -> usize {
        self.inner
    }

    /// Writes rows `rows` of Y into `y` (`rows.len()` rows) with `isa`'s row kernels.
    pub fn run(&self, isa: Isa, rows: Range<usize>, y: &mut [f32]) -> Result<()> {
        let inner = self.inner;
        let src = self
            .x
            .get(rows.start * inner..rows.end * inner)
            .filter(|s| s.len() == y.len())
            .ok_or_else(|| {
                Error::Internal(format!(
                    "rows {rows:?} of {} for {} outputs",
                    self.rows(),
                    y.len()
                ))
            })?;
        for (i, (row, out)) in src.chunks_exact(inner).zip(y.chunks_exact_mut(inner)).enumerate() {
            match self.skip {
                Some((skip, bias)) => {
                    let r = (rows.start + i) % (skip.len() / inner).max(1);
                    let s = skip
                        .get(r * inner..(r + 1) * inner)
                        .ok_or_else(|| Error::Internal("skip rows".into()))?;
                    for (j, ((o, &v), &k)) in out.iter_mut().zip(row).zip(s).enumerate() {
                        *o = v + (k + bias.map_or(0.0, |b| b[j]));
                    }
                }
                None => out.copy_from_slice(row),
            }
            match self.kind {
                Kind::Layer => {
                    layer_norm_row_in_place(isa, out, self.scale, self.bias, self.eps)?;
                }
                Kind::Rms => {
                    rms_norm_row_in_place(isa, out, self.scale, self.eps)?;
                }
            }
        }
        Ok(())
    }
}
