//! RMS normalisation, ONNX Runtime's skip (residual + bias) layer normalisations and
//! BiasGelu: the fused normalisations of transformer blocks.

use super::norm_rows::{layer_norm_row_in_place, rms_norm_row_in_place};
use crate::cpu::Isa;
use crate::ir::shapes::norm_axis;
use crate::ir::{pointwise, Op, Tensor};
use crate::{Error, Result};

/// RMSNormalization over the axes from `axis` on: `x / sqrt(mean(x²) + eps) * scale`.
/// Returns Y and the InvStdDev statistics (X's shape with the normalised axes 1).
pub fn rms_norm(x: &Tensor, scale: &Tensor, axis: i64, eps: f32) -> Result<Vec<Tensor>> {
    let d = x.dims();
    let ax = norm_axis(axis, d.len())?;
    let inner: usize = d[ax..].iter().product();
    let s = super::layout::broadcast_to(scale, &d[ax..])?;
    let sv = s.as_f32()?;
    let mut out = x.as_f32()?.to_vec();
    let rows: usize = d[..ax].iter().product();
    let mut invs = Vec::with_capacity(rows);
    if inner > 0 {
        for row in out.chunks_mut(inner) {
            invs.push(rms_norm_row_in_place(isa(), row, sv, eps)?);
        }
    } else {
        invs.resize(rows, f32::NAN);
    }
    let stat_dims: Vec<usize> = d
        .iter()
        .enumerate()
        .map(|(i, &n)| if i < ax { n } else { 1 })
        .collect();
    Ok(vec![
        Tensor::from_f32(d.to_vec(), out)?,
        Tensor::from_f32(stat_dims, invs)?,
    ])
}

/// The ISA the process selected.
fn isa() -> Isa {
    crate::cpu::selected_isa().unwrap_or(Isa::Scalar)
}

/// Normalises one row in place (mean and variance), then `* gamma + beta`; returns the mean
/// and inverse standard deviation.
fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: Option<&[f32]>, eps: f32) -> Result<(f32, f32)> {
    let s = layer_norm_row_in_place(isa(), row, gamma, beta, eps)?;
    Ok((s.mean, s.inv_std))
}

/// A 1-D operand of length `hidden`, or an error naming it.
fn vector<'a>(op: &str, what: &str, t: &'a Tensor, hidden: usize) -> Result<&'a [f32]> {
    let v = t.as_f32()?;
    if t.dims().len() != 1 || v.len() != hidden {
        return Err(Error::ShapeMismatch(format!(
            "{op}: {what} has shape {:?}, expected [{hidden}]",
            t.dims()
        )));
    }
    Ok(v)
}

/// SkipLayerNormalization (or its simplified, RMS form): `s = input + skip + bias` normalised
/// over the last axis with gamma (and beta). Returns output, mean (zeros when simplified),
/// inv_std_var and `s`.
pub fn skip_norm(
    simplified: bool,
    input: &Tensor,
    skip: &Tensor,
    gamma: &Tensor,
    beta: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Vec<Tensor>> {
    let op = if simplified {
        "SkipSimplifiedLayerNormalization"
    } else {
        "SkipLayerNormalization"
    };
    let d = input.dims();
    let hidden = *d
        .last()
        .ok_or_else(|| Error::ShapeMismatch(format!("{op}: input is a scalar")))?;
    let gamma = vector(op, "gamma", gamma, hidden)?;
    let beta = beta.map(|b| vector(op, "beta", b, hidden)).transpose()?;
    let bias = bias.map(|b| vector(op, "bias", b, hidden)).transpose()?;
    let skip = super::layout::broadcast_to(skip, d)?;
    let mut sum = input.as_f32()?.to_vec();
    for (row, srow) in sum
        .chunks_mut(hidden.max(1))
        .zip(skip.as_f32()?.chunks(hidden.max(1)))
    {
        for (j, (v, &s)) in row.iter_mut().zip(srow).enumerate() {
            *v += s + bias.map_or(0.0, |b| b[j]);
        }
    }
    let mut out = sum.clone();
    let rows = out.len().checked_div(hidden).unwrap_or(0);
    let (mut means, mut invs) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for row in out.chunks_mut(hidden.max(1)).take(rows) {
        let (mean, inv) = if simplified {
            (0.0, rms_norm_row_in_place(isa(), row, gamma, eps)?)
        } else {
            layer_norm_row(row, gamma, beta, eps)?
        };
        means.push(mean);
        invs.push(inv);
    }
    let mut stat_dims = d.to_vec();
    if let Some(last) = stat_dims.last_mut() {
        *last = 1;
    }
    if hidden == 0 {
        let n = crate::ir::checked_numel(&stat_dims)?;
        means.resize(n, f32::NAN);
        invs.resize(n, f32::NAN);
    }
    Ok(vec![
        Tensor::from_f32(d.to_vec(), out)?,
        Tensor::from_f32(stat_dims.clone(), means)?,
        Tensor::from_f32(stat_dims, invs)?,
        Tensor::from_f32(d.to_vec(), sum)?,
    ])
}

/// GELU of `x + bias` (bias broadcast to X), exact or with the tanh approximation.
pub fn bias_gelu(x: &Tensor, bias: &Tensor, tanh_approximation: bool) -> Result<Tensor> {
    let d = x.dims();
    let b = super::layout::broadcast_to(bias, d)?;
    let mut sum = x.as_f32()?.to_vec();
    for (v, &c) in sum.iter_mut().zip(b.as_f32()?) {
        *v += c;
    }
    let mut y = vec![0f32; sum.len()];
    pointwise::map(&Op::Gelu { tanh_approximation }, &sum, &mut y)?;
    Tensor::from_f32(d.to_vec(), y)
}

/// ONNX Runtime's EmbedLayerNormalization. Inputs: input_ids, segment_ids?, word_embedding,
/// position_embedding, segment_embedding?, gamma, beta, mask?, position_ids?. Returns the
/// normalised embeddings, mask_index (the count of ones of each mask row, zeros without a
/// mask) and the embedding sum.
pub fn embed_layer_norm(inputs: &[Option<&Tensor>], eps: f32) -> Result<Vec<Tensor>> {
    const OP: &str = "EmbedLayerNormalization";
    let get = |i: usize| inputs.get(i).copied().flatten();
    let need = |i: usize| get(i).ok_or_else(|| Error::InvalidModel(format!("{OP}: input {i} is missing")));
    let ids = need(0)?;
    let (word, pos) = (need(2)?, need(3)?);
    let (batch, seq) = match *ids.dims() {
        [b, s] => (b, s),
        _ => {
            return Err(Error::ShapeMismatch(format!(
                "{OP}: input_ids {:?} is not 2-D",
                ids.dims()
            )))
        }
    };
    let hidden = match *word.dims() {
        [_, h] => h,
        _ => {
            return Err(Error::ShapeMismatch(format!(
                "{OP}: word_embedding {:?} is not 2-D",
                word.dims()
            )))
        }
    };
    let gamma = vector(OP, "gamma", need(5)?, hidden)?;
    let beta = vector(OP, "beta", need(6)?, hidden)?;
    /// Row `id` of a `(rows, hidden)` table.
    fn row<'a>(what: &str, table: &'a Tensor, id: i64, hidden: usize) -> Result<&'a [f32]> {
        let d = table.dims();
        if d.len() != 2 || d[1] != hidden {
            return Err(Error::ShapeMismatch(format!(
                "{OP}: {what} {d:?} is not (rows, {hidden})"
            )));
        }
        match usize::try_from(id) {
            Ok(i) if i < d[0] => Ok(&table.as_f32()?[i * hidden..(i + 1) * hidden]),
            _ => Err(Error::InvalidModel(format!(
                "{OP}: {what} index {id} is outside its {} rows",
                d[0]
            ))),
        }
    }
    let idv = ids.to_i64_vec()?;
    let token_ids = |t: Option<&Tensor>, what: &str| -> Result<Option<Vec<i64>>> {
        match t {
            Some(t) if t.dims() == [batch, seq] => Ok(Some(t.to_i64_vec()?)),
            Some(t) => Err(Error::ShapeMismatch(format!(
                "{OP}: {what} {:?} is not {:?}",
                t.dims(),
                [batch, seq]
            ))),
            None => Ok(None),
        }
    };
    let segments = token_ids(get(1), "segment_ids")?;
    let segment_table = match (&segments, get(4)) {
        (Some(_), None) => {
            return Err(Error::InvalidModel(format!(
                "{OP}: segment_ids without segment_embedding"
            )))
        }
        (_, t) => t,
    };
    let positions = match get(8) {
        Some(p) if p.dims() == [1, seq] || p.dims() == [batch, seq] => {
            Some((p.to_i64_vec()?, p.dims()[0] == batch))
        }
        Some(p) => return Err(Error::ShapeMismatch(format!("{OP}: position_ids {:?}", p.dims()))),
        None => None,
    };
    let n = crate::ir::checked_numel(&[batch, seq, hidden])?;
    let mut sum = Vec::with_capacity(n);
    for b in 0..batch {
        for s in 0..seq {
            let t = b * seq + s;
            let p = match &positions {
                Some((v, per_batch)) => v[if *per_batch { t } else { s }],
                None => s as i64,
            };
            let w = row("word_embedding", word, idv[t], hidden)?;
            let pe = row("position_embedding", pos, p, hidden)?;
            let se = match (&segments, segment_table) {
                (Some(sv), Some(table)) => Some(row("segment_embedding", table, sv[t], hidden)?),
                _ => None,
            };
            for j in 0..hidden {
                sum.push(w[j] + pe[j] + se.map_or(0.0, |e| e[j]));
            }
        }
    }
    let mut out = sum.clone();
    for r in out.chunks_mut(hidden.max(1)) {
        layer_norm_row(r, gamma, Some(beta), eps)?;
    }
    let mask_index: Vec<i32> = match token_ids(get(7), "mask")? {
        Some(m) => m
            .chunks(seq.max(1))
            .take(batch)
            .map(|r| r.iter().filter(|&&v| v == 1).count() as i32)
            .collect(),
        None => vec![0; batch],
    };
    Ok(vec![
        Tensor::from_f32(vec![batch, seq, hidden], out)?,
        Tensor::from_i32(vec![batch], mask_index)?,
        Tensor::from_f32(vec![batch, seq, hidden], sum)?,
    ])
}
