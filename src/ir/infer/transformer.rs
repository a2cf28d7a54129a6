//! Shape inference of the fused transformer operators: RMS and skip normalisations,
//! BiasGelu, RotaryEmbedding, Attention and MultiHeadAttention.

use super::{expect_dtype, need, same, Fact, OutFact, FLOAT};
use crate::ir::op::{MultiHeadAttentionAttrs, Op};
use crate::ir::shapes::{broadcast, norm_axis};
use crate::ir::transformer::{packed_qkv_sizes, AttentionShape};
use crate::ir::DType;
use crate::{Error, Result};

/// X's shape with the axes from `axis` on set to 1.
fn stats_dims(x: &[usize], axis: usize) -> Vec<usize> {
    x.iter()
        .enumerate()
        .map(|(i, &d)| if i < axis { d } else { 1 })
        .collect()
}

/// RMSNormalization / SimplifiedLayerNormalization: Y like X (and InvStdDev).
pub(super) fn rms(op: &Op, axis: i64, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    expect_dtype(op, "X", x.dtype, FLOAT)?;
    expect_dtype(op, "scale", need(inputs, 1, op)?.dtype, FLOAT)?;
    let stats = x
        .shape
        .map(|s| norm_axis(axis, s.len()).map(|ax| stats_dims(s, ax)))
        .transpose()?;
    let mut out = vec![(x.dtype, x.shape.map(<[usize]>::to_vec))];
    if op.output_count() > 1 {
        out.push((DType::F32, stats));
    }
    Ok(out)
}

/// SkipLayerNormalization: output and input_skip_bias_sum like input, mean and
/// inv_std_var with the last axis 1.
pub(super) fn skip_norm(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    for (i, f) in inputs.iter().enumerate() {
        if let Some(f) = f {
            expect_dtype(op, &format!("input {i}"), f.dtype, FLOAT)?;
        }
    }
    let skip = need(inputs, 1, op)?;
    let stats = match (x.shape, skip.shape) {
        (Some(s), Some(k)) => {
            if s.is_empty() || broadcast(s, k)? != s {
                return Err(Error::ShapeMismatch(format!(
                    "{}: skip {k:?} does not broadcast to input {s:?}",
                    op.onnx_name()
                )));
            }
            Some(stats_dims(s, s.len() - 1))
        }
        _ => None,
    };
    let full = x.shape.map(<[usize]>::to_vec);
    Ok(vec![
        (DType::F32, full.clone()),
        (DType::F32, stats.clone()),
        (DType::F32, stats),
        (DType::F32, full),
    ])
}

/// BiasGelu / FastGelu: like X; the bias broadcasts to X.
pub(super) fn bias_gelu(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    expect_dtype(op, "X", x.dtype, FLOAT)?;
    let b = need(inputs, 1, op)?;
    expect_dtype(op, "bias", b.dtype, FLOAT)?;
    if let (Some(s), Some(bs)) = (x.shape, b.shape) {
        if broadcast(s, bs)? != s {
            return Err(Error::ShapeMismatch(format!(
                "{}: bias {bs:?} does not broadcast to X {s:?}",
                op.onnx_name()
            )));
        }
    }
    same(x, x.shape.map(<[usize]>::to_vec))
}

/// RotaryEmbedding: like X, which is 3-D or 4-D (the caches are checked when it runs).
pub(super) fn rotary(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    expect_dtype(op, "X", x.dtype, FLOAT)?;
    expect_dtype(op, "cos_cache", need(inputs, 1, op)?.dtype, FLOAT)?;
    expect_dtype(op, "sin_cache", need(inputs, 2, op)?.dtype, FLOAT)?;
    if let Some(p) = inputs.get(3).copied().flatten() {
        expect_dtype(op, "position_ids", p.dtype, &[DType::I64])?;
    }
    if let Some(s) = x.shape {
        if !(s.len() == 3 || s.len() == 4) {
            return Err(Error::ShapeMismatch(format!(
                "RotaryEmbedding: X {s:?} is not 3-D or 4-D"
            )));
        }
    }
    same(x, x.shape.map(<[usize]>::to_vec))
}

/// Attention and MultiHeadAttention: Y, present_key, present_value (and Attention's scores).
pub(super) fn attention(op: &Op, x: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let (past_k, past_v) = match op {
        Op::Attention(_) => (4, 5),
        _ => (6, 7),
    };
    for i in [0, 1, 2, past_k, past_v] {
        if let Some(f) = inputs.get(i).copied().flatten() {
            expect_dtype(op, &format!("input {i}"), f.dtype, FLOAT)?;
        }
    }
    let (k, v) = (need(inputs, 1, op)?, need(inputs, 2, op)?);
    let pk = inputs.get(past_k).copied().flatten();
    let pv = inputs.get(past_v).copied().flatten();
    if pk.is_some() != pv.is_some() {
        return Err(Error::InvalidModel(format!(
            "{}: past_key and past_value must be given together",
            op.onnx_name()
        )));
    }
    let past = match (pk, pv) {
        (Some(a), Some(b)) => match (a.shape, b.shape) {
            (Some(a), Some(b)) => Some(Some((a, b))),
            _ => None,
        },
        _ => Some(None),
    };
    let geometry = match (x.shape, k.shape, v.shape, past) {
        (Some(q), Some(k), Some(v), Some(past)) => Some(match op {
            Op::Attention(a) => AttentionShape::of_attention(a, q, k, v, past)?,
            Op::MultiHeadAttention(m) => AttentionShape::of_multi_head(m, q, k, v, past)?,
            _ => {
                return Err(Error::InvalidModel(format!(
                    "{} is not an attention",
                    op.onnx_name()
                )))
            }
        }),
        _ => None,
    };
    let dims = |f: fn(&AttentionShape) -> Result<Vec<usize>>| geometry.as_ref().map(f).transpose();
    let mut out = vec![
        (DType::F32, dims(AttentionShape::output_dims)?),
        (DType::F32, dims(AttentionShape::present_key_dims)?),
        (DType::F32, dims(AttentionShape::present_value_dims)?),
    ];
    if matches!(op, Op::Attention(_)) {
        out.push((DType::F32, dims(AttentionShape::scores_dims)?));
    }
    Ok(out)
}

/// ONNX Runtime's packed Attention: output `(B, S, v_hidden)`.
pub(super) fn packed_attention(
    op: &Op,
    m: &MultiHeadAttentionAttrs,
    qkv_hidden_sizes: &[usize],
    x: Fact<'_>,
    inputs: &[Option<Fact<'_>>],
) -> Result<Vec<OutFact>> {
    expect_dtype(op, "input", x.dtype, FLOAT)?;
    let w = need(inputs, 1, op)?;
    expect_dtype(op, "weights", w.dtype, FLOAT)?;
    let shape = match (x.shape, w.shape) {
        (Some(&[b, s, k]), Some(&[wk, n])) if k == wk => {
            let [q, _, v] = packed_qkv_sizes(qkv_hidden_sizes, n)?;
            if q.checked_rem(m.num_heads) != Some(0) || v.checked_rem(m.num_heads) != Some(0) {
                return Err(Error::ShapeMismatch(format!(
                    "Attention: hidden sizes {q} and {v} are not multiples of {} heads",
                    m.num_heads
                )));
            }
            Some(vec![b, s, v])
        }
        (Some(xs), Some(ws)) => {
            return Err(Error::ShapeMismatch(format!(
                "Attention: input {xs:?} and weights {ws:?} are not (B, S, K) and (K, N)"
            )))
        }
        _ => None,
    };
    Ok(vec![(DType::F32, shape)])
}

/// EmbedLayerNormalization: output and embedding_sum `(B, S, hidden)`, mask_index `(B)`.
pub(super) fn embed_layer_norm(op: &Op, ids: Fact<'_>, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    expect_dtype(op, "input_ids", ids.dtype, &[DType::I32])?;
    let word = need(inputs, 2, op)?;
    expect_dtype(op, "word_embedding", word.dtype, FLOAT)?;
    let full = match (ids.shape, word.shape) {
        (Some(&[b, s]), Some(&[_, h])) => Some(vec![b, s, h]),
        (Some(i), Some(w)) => {
            return Err(Error::ShapeMismatch(format!(
                "EmbedLayerNormalization: input_ids {i:?} / word_embedding {w:?} are not 2-D"
            )))
        }
        _ => None,
    };
    let batch = full.as_ref().map(|f| vec![f[0]]);
    Ok(vec![
        (DType::F32, full.clone()),
        (DType::I32, batch),
        (DType::F32, full),
    ])
}
