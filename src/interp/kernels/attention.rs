//! Scaled dot-product attention: ONNX Attention (opset 23) and ONNX Runtime's
//! MultiHeadAttention, one query row at a time (scores → softcap → bias → softmax → ·V)
//! over the present keys and values.

use crate::ir::op::{AttentionAttrs, MultiHeadAttentionAttrs, QkOutputMode};
use crate::ir::transformer::AttentionShape;
use crate::ir::{DType, Tensor};
use crate::{Error, Result};
use std::borrow::Cow;

/// Keys or values `(B, kv_heads, total, head)`: the past ones followed by the new ones, read
/// from a 3-D `(B, S, heads · head)` or 4-D `(B, heads, S, head)` tensor, plus `bias` (one
/// value per hidden element) when given.
fn present(
    g: &AttentionShape,
    past: Option<&[f32]>,
    new: &[f32],
    head: usize,
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let total = g.total_len()?;
    let mut out = Vec::with_capacity(crate::ir::checked_numel(&[g.batch, g.kv_heads, total, head])?);
    for b in 0..g.batch {
        for n in 0..g.kv_heads {
            if let Some(p) = past {
                let at = (b * g.kv_heads + n) * g.past_len * head;
                out.extend_from_slice(&p[at..at + g.past_len * head]);
            }
            for s in 0..g.kv_len {
                let at = if g.four_d {
                    ((b * g.kv_heads + n) * g.kv_len + s) * head
                } else {
                    ((b * g.kv_len + s) * g.kv_heads + n) * head
                };
                let row = &new[at..at + head];
                match bias {
                    Some(bias) => out.extend(row.iter().zip(&bias[n * head..]).map(|(x, c)| x + c)),
                    None => out.extend_from_slice(row),
                }
            }
        }
    }
    Ok(out)
}

/// What one attention computes besides its sizes.
struct Core<'a> {
    g: AttentionShape,
    /// Q in its input layout (3-D or 4-D, see `g.four_d`).
    q: &'a [f32],
    /// Present keys `(B, kv_heads, total, head_size)`.
    k: &'a [f32],
    /// Present values `(B, kv_heads, total, v_head_size)`.
    v: &'a [f32],
    scale: f32,
    softcap: f32,
}

impl Core<'_> {
    /// Computes Y (in Q's layout) and, when `qk` is given, the scores `(B, q_heads, q_len,
    /// total)` at the stage `mode` says. `bias(b, h, i, row)` writes the additive bias of
    /// query `i`'s scores (`-inf` masks a key; a row all `-inf` gives zeros).
    fn run(
        &self,
        mut bias: impl FnMut(usize, usize, usize, &mut [f32]) -> Result<()>,
        mut qk: Option<(&mut [f32], QkOutputMode)>,
    ) -> Result<Vec<f32>> {
        let g = &self.g;
        let (hd, vd) = (g.head_size, g.v_head_size);
        let total = g.total_len()?;
        let group = g.q_heads / g.kv_heads;
        let mut y = vec![0f32; crate::ir::checked_numel(&g.output_dims()?)?];
        let (mut scores, mut brow) = (vec![0f32; total], vec![0f32; total]);
        for b in 0..g.batch {
            for h in 0..g.q_heads {
                let kv = b * g.kv_heads + h / group;
                let keys = &self.k[kv * total * hd..(kv + 1) * total * hd];
                let values = &self.v[kv * total * vd..(kv + 1) * total * vd];
                for i in 0..g.q_len {
                    let (q_at, y_at) = if g.four_d {
                        let r = (b * g.q_heads + h) * g.q_len + i;
                        (r * hd, r * vd)
                    } else {
                        let r = (b * g.q_len + i) * g.q_heads + h;
                        (r * hd, r * vd)
                    };
                    let qrow = &self.q[q_at..q_at + hd];
                    for (s, key) in scores.iter_mut().zip(keys.chunks_exact(hd.max(1))) {
                        let dot: f32 = qrow.iter().zip(key).map(|(a, b)| a * b).sum();
                        *s = dot * self.scale;
                    }
                    if hd == 0 {
                        scores.fill(0.0);
                    }
                    if self.softcap > 0.0 {
                        for s in scores.iter_mut() {
                            *s = self.softcap * (*s / self.softcap).tanh();
                        }
                    }
                    let row_at = ((b * g.q_heads + h) * g.q_len + i) * total;
                    let mut capture = |stage: &[QkOutputMode], row: &[f32]| {
                        if let Some((out, mode)) = qk.as_mut() {
                            if stage.contains(mode) {
                                out[row_at..row_at + total].copy_from_slice(row);
                            }
                        }
                    };
                    capture(&[QkOutputMode::MatMul, QkOutputMode::Masked], &scores);
                    bias(b, h, i, &mut brow)?;
                    let all_masked = brow.iter().all(|&x| x == f32::NEG_INFINITY);
                    for (s, &c) in scores.iter_mut().zip(&brow) {
                        *s += c;
                    }
                    capture(&[QkOutputMode::Softcapped], &scores);
                    if all_masked {
                        scores.fill(0.0);
                    } else {
                        softmax(&mut scores);
                    }
                    capture(&[QkOutputMode::Softmax], &scores);
                    let yrow = &mut y[y_at..y_at + vd];
                    for (&p, value) in scores.iter().zip(values.chunks_exact(vd.max(1))) {
                        if p != 0.0 {
                            for (o, &x) in yrow.iter_mut().zip(value) {
                                *o += p * x;
                            }
                        }
                    }
                }
            }
        }
        Ok(y)
    }
}

/// Softmax of one row in place.
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in row.iter_mut() {
        *x /= sum;
    }
}

/// Row-major strides of `dims` right-aligned to 4-D, 0 where a dimension is broadcast (1).
fn broadcast_strides(op: &str, what: &str, dims: &[usize], target: [usize; 3]) -> Result<[usize; 4]> {
    if dims.is_empty() || dims.len() > 4 {
        return Err(Error::ShapeMismatch(format!(
            "{op}: {what} {dims:?} is not 1-D to 4-D"
        )));
    }
    let mut d4 = [1usize; 4];
    d4[4 - dims.len()..].copy_from_slice(dims);
    let mut strides = [0usize; 4];
    let mut step = 1;
    for a in (0..4).rev() {
        if a < 3 && d4[a] != 1 && d4[a] != target[a] {
            return Err(Error::ShapeMismatch(format!(
                "{op}: {what} {dims:?} does not broadcast to (batch, heads, q_len) = {target:?}"
            )));
        }
        strides[a] = if d4[a] == 1 { 0 } else { step };
        step *= d4[a];
    }
    Ok(strides)
}

/// The additive form of a mask element: bool (true = attend) or float.
enum MaskData<'a> {
    Bool(&'a [bool]),
    F32(&'a [f32]),
}

/// ONNX Attention (opset 23). Inputs: Q, K, V, attn_mask?, past_key?, past_value?. Returns Y,
/// present_key, present_value and the scores of `qk_matmul_output_mode`.
pub fn attention(a: &AttentionAttrs, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    const OP: &str = "Attention";
    let get = |i: usize| inputs.get(i).copied().flatten();
    let need = |i: usize| get(i).ok_or_else(|| Error::InvalidModel(format!("{OP}: input {i} is missing")));
    let (q, k, v) = (need(0)?, need(1)?, need(2)?);
    let (pk, pv) = (get(4), get(5));
    if pk.is_some() != pv.is_some() {
        return Err(Error::InvalidModel(format!(
            "{OP}: past_key and past_value must be given together"
        )));
    }
    let past = pk.zip(pv).map(|(a, b)| (a.dims(), b.dims()));
    let g = AttentionShape::of_attention(a, q.dims(), k.dims(), v.dims(), past)?;
    let total = g.total_len()?;
    let pkv = pk.map(Tensor::as_f32).transpose()?;
    let pvv = pv.map(Tensor::as_f32).transpose()?;
    let kp = present(&g, pkv, k.as_f32()?, g.head_size, None)?;
    let vp = present(&g, pvv, v.as_f32()?, g.v_head_size, None)?;
    let mask = match get(3) {
        None => None,
        Some(m) => {
            let md = m.dims();
            let mj = *md.last().unwrap_or(&0);
            if mj > total {
                return Err(Error::ShapeMismatch(format!(
                    "{OP}: attn_mask {md:?} is longer than the {total} keys"
                )));
            }
            let strides = broadcast_strides(OP, "attn_mask", md, [g.batch, g.q_heads, g.q_len])?;
            let data = match m.dtype() {
                DType::Bool => MaskData::Bool(m.as_bool()?),
                DType::F32 => MaskData::F32(m.as_f32()?),
                d => {
                    return Err(Error::DtypeMismatch(format!(
                        "{OP}: attn_mask is {d}, not bool or f32"
                    )))
                }
            };
            Some((data, strides, mj))
        }
    };
    let causal = a.is_causal;
    let past_len = g.past_len;
    let fill = |b: usize, h: usize, i: usize, row: &mut [f32]| -> Result<()> {
        match &mask {
            None => row.fill(0.0),
            Some((data, st, mj)) => {
                let at = b * st[0] + h * st[1] + i * st[2];
                for (j, r) in row.iter_mut().enumerate() {
                    *r = if j >= *mj {
                        f32::NEG_INFINITY
                    } else {
                        match data {
                            MaskData::Bool(m) if m[at + j * st[3]] => 0.0,
                            MaskData::Bool(_) => f32::NEG_INFINITY,
                            MaskData::F32(m) => m[at + j * st[3]],
                        }
                    };
                }
            }
        }
        if causal {
            for r in row.iter_mut().skip(past_len + i + 1) {
                *r = f32::NEG_INFINITY;
            }
        }
        Ok(())
    };
    let scale = a.scale.unwrap_or(1.0 / (g.head_size as f32).sqrt());
    let core = Core {
        g,
        q: q.as_f32()?,
        k: &kp,
        v: &vp,
        scale,
        softcap: a.softcap,
    };
    let mut scores = vec![0f32; crate::ir::checked_numel(&g.scores_dims()?)?];
    let y = core.run(fill, Some((&mut scores, a.qk_matmul_output_mode)))?;
    Ok(vec![
        Tensor::from_f32(g.output_dims()?, y)?,
        Tensor::from_f32(g.present_key_dims()?, kp)?,
        Tensor::from_f32(g.present_value_dims()?, vp)?,
        Tensor::from_f32(g.scores_dims()?, scores)?,
    ])
}

/// ONNX Runtime's MultiHeadAttention with separate 3-D query, key and value. Inputs: query,
/// key, value, bias?, key_padding_mask?, attention_bias?, past_key?, past_value?. Returns
/// output, present_key and present_value.
pub fn multi_head_attention(m: &MultiHeadAttentionAttrs, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    const OP: &str = "MultiHeadAttention";
    let get = |i: usize| inputs.get(i).copied().flatten();
    let need = |i: usize| {
        get(i).ok_or_else(|| {
            Error::Unsupported(format!(
                "{OP} without input {i} (packed QKV / KV forms are not supported)"
            ))
        })
    };
    let (q, k, v) = (need(0)?, need(1)?, need(2)?);
    let (pk, pv) = (get(6), get(7));
    if pk.is_some() != pv.is_some() {
        return Err(Error::InvalidModel(format!(
            "{OP}: past_key and past_value must be given together"
        )));
    }
    let past = pk.zip(pv).map(|(a, b)| (a.dims(), b.dims()));
    let g = AttentionShape::of_multi_head(m, q.dims(), k.dims(), v.dims(), past)?;
    let total = g.total_len()?;
    let (hidden, v_hidden) = (g.q_heads * g.head_size, g.q_heads * g.v_head_size);
    let bias = match get(3) {
        None => None,
        Some(b) if b.dims() == [2 * hidden + v_hidden] => Some(b.as_f32()?),
        Some(b) => {
            return Err(Error::ShapeMismatch(format!(
                "{OP}: bias {:?} is not [{}]",
                b.dims(),
                2 * hidden + v_hidden
            )))
        }
    };
    let qv: Cow<[f32]> = match bias {
        None => Cow::Borrowed(q.as_f32()?),
        Some(bias) => {
            let mut x = q.as_f32()?.to_vec();
            for row in x.chunks_mut(hidden.max(1)) {
                row.iter_mut().zip(bias).for_each(|(x, c)| *x += c);
            }
            Cow::Owned(x)
        }
    };
    let pkv = pk.map(Tensor::as_f32).transpose()?;
    let pvv = pv.map(Tensor::as_f32).transpose()?;
    let kp = present(
        &g,
        pkv,
        k.as_f32()?,
        g.head_size,
        bias.map(|b| &b[hidden..2 * hidden]),
    )?;
    let vp = present(
        &g,
        pvv,
        v.as_f32()?,
        g.v_head_size,
        bias.map(|b| &b[2 * hidden..]),
    )?;
    let pad = match get(4) {
        None => None,
        Some(t) => {
            if t.dtype() != DType::I32 {
                return Err(Error::DtypeMismatch(format!(
                    "{OP}: key_padding_mask is {}, not i32",
                    t.dtype()
                )));
            }
            let d = t.dims();
            let ok = d == [g.batch] || d == [g.batch, total] || d == [g.batch, g.q_len, total];
            if !ok {
                return Err(Error::Unsupported(format!(
                    "{OP}: key_padding_mask {d:?} (libxq takes (batch), (batch, total) or (batch, q_len, total) = \
                     ({}, {}, {total}))",
                    g.batch, g.q_len
                )));
            }
            Some((t.as_i32()?, d.len()))
        }
    };
    let attn_bias = match get(5) {
        None => None,
        Some(t) => {
            let d = t.dims();
            if d.len() != 4 || d[3] != total {
                return Err(Error::ShapeMismatch(format!(
                    "{OP}: attention_bias {d:?} is not (batch or 1, heads or 1, {}, {total})",
                    g.q_len
                )));
            }
            let st = broadcast_strides(OP, "attention_bias", d, [g.batch, g.q_heads, g.q_len])?;
            Some((t.as_f32()?, st))
        }
    };
    let (mfv, causal, past_len) = (m.mask_filter_value, m.unidirectional, g.past_len);
    let q_len = g.q_len;
    let fill = |b: usize, h: usize, i: usize, row: &mut [f32]| -> Result<()> {
        match &attn_bias {
            None => row.fill(0.0),
            Some((data, st)) => {
                let at = b * st[0] + h * st[1] + i * st[2];
                row.copy_from_slice(&data[at..at + total]);
            }
        }
        match pad {
            None => {}
            Some((lens, 1)) => {
                let len = usize::try_from(lens[b]).unwrap_or(0);
                row.iter_mut().skip(len).for_each(|r| *r += mfv);
            }
            Some((mask, rank)) => {
                let at = if rank == 2 {
                    b * total
                } else {
                    (b * q_len + i) * total
                };
                for (r, &keep) in row.iter_mut().zip(&mask[at..at + total]) {
                    if keep == 0 {
                        *r += mfv;
                    }
                }
            }
        }
        if causal {
            row.iter_mut().skip(past_len + i + 1).for_each(|r| *r += mfv);
        }
        Ok(())
    };
    let scale = m.scale.unwrap_or(1.0 / (g.head_size as f32).sqrt());
    let core = Core {
        g,
        q: &qv,
        k: &kp,
        v: &vp,
        scale,
        softcap: 0.0,
    };
    let y = core.run(fill, None)?;
    Ok(vec![
        Tensor::from_f32(g.output_dims()?, y)?,
        Tensor::from_f32(g.present_key_dims()?, kp)?,
        Tensor::from_f32(g.present_value_dims()?, vp)?,
    ])
}

/// ONNX Runtime's packed Attention: `qkv = input · weights + bias` split into Q, K and V, then
/// [`multi_head_attention`]. Inputs: input, weights, bias?, mask_index?, (past), attention_bias?.
pub fn packed_attention(
    m: &MultiHeadAttentionAttrs,
    qkv_hidden_sizes: &[usize],
    inputs: &[Option<&Tensor>],
) -> Result<Tensor> {
    const OP: &str = "Attention";
    let get = |i: usize| inputs.get(i).copied().flatten();
    let x = get(0).ok_or_else(|| Error::InvalidModel(format!("{OP}: input is missing")))?;
    let w = get(1).ok_or_else(|| Error::InvalidModel(format!("{OP}: weights are missing")))?;
    if get(4).is_some() {
        return Err(Error::Unsupported(format!("{OP} with past state")));
    }
    let (xd, wd) = (x.dims(), w.dims());
    let (batch, seq, columns) = match (xd, wd) {
        (&[b, s, k], &[wk, n]) if k == wk => (b, s, n),
        _ => {
            return Err(Error::ShapeMismatch(format!(
                "{OP}: input {xd:?} and weights {wd:?} are not (B, S, K) and (K, N)"
            )))
        }
    };
    let sizes = crate::ir::transformer::packed_qkv_sizes(qkv_hidden_sizes, columns)?;
    let mut qkv = super::linalg::matmul(x, w)?.as_f32()?.to_vec();
    if let Some(bias) = get(2) {
        let b = bias.as_f32()?;
        if bias.dims() != [columns] {
            return Err(Error::ShapeMismatch(format!(
                "{OP}: bias {:?} is not [{columns}]",
                bias.dims()
            )));
        }
        for row in qkv.chunks_mut(columns.max(1)) {
            row.iter_mut().zip(b).for_each(|(x, c)| *x += c);
        }
    }
    let mut parts = Vec::with_capacity(3);
    let mut start = 0;
    for size in sizes {
        let mut part = Vec::with_capacity(batch * seq * size);
        for row in qkv.chunks(columns.max(1)).take(batch * seq) {
            part.extend_from_slice(&row[start..start + size]);
        }
        parts.push(Tensor::from_f32(vec![batch, seq, size], part)?);
        start += size;
    }
    let args = [
        Some(&parts[0]),
        Some(&parts[1]),
        Some(&parts[2]),
        None,
        get(3),
        get(5),
    ];
    let mut out = multi_head_attention(m, &args)?;
    Ok(out.swap_remove(0))
}
