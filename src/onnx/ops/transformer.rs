//! The fused transformer operators: ONNX opset 23's RMSNormalization, RotaryEmbedding and
//! Attention, ONNX Runtime's SimplifiedLayerNormalization (default domain) and the
//! `com.microsoft` operators its transformer optimizer writes.

use super::Conversion;
use crate::ir::op::*;
use crate::{Error, Result};

/// The `com.microsoft` operators libxq imports.
pub const MICROSOFT_SUPPORTED: &[&str] = &[
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "SimplifiedLayerNormalization",
    "Gelu",
    "FastGelu",
    "BiasGelu",
    "MultiHeadAttention",
    "RotaryEmbedding",
    "Attention",
    "EmbedLayerNormalization",
];

/// Default-domain operators of this family (RMSNormalization, RotaryEmbedding and Attention
/// need opset 23).
pub const ONNX_SUPPORTED: &[&str] = &[
    "RMSNormalization",
    "RotaryEmbedding",
    "Attention",
    "SimplifiedLayerNormalization",
];

/// True when `domain` is ONNX Runtime's contrib domain.
pub fn is_microsoft(domain: &str) -> bool {
    domain == "com.microsoft"
}

/// Converts a node of this family (`Ok(None)` for any other op type).
pub(super) fn transformer_op(c: &mut Conversion) -> Result<Option<Op>> {
    if is_microsoft(&c.node.domain) {
        return microsoft_op(c).map(Some);
    }
    let node = c.node;
    let name = node.op_type.as_str();
    if matches!(name, "RMSNormalization" | "RotaryEmbedding" | "Attention") && c.opset < 23 {
        return Err(Error::Unsupported(format!(
            "{name} at opset {} (the operator exists from opset 23 on)",
            c.opset
        )));
    }
    Ok(Some(match name {
        "RMSNormalization" | "SimplifiedLayerNormalization" => {
            rms(c, name == "SimplifiedLayerNormalization")?
        }
        "RotaryEmbedding" => Op::RotaryEmbedding(RotaryAttrs {
            interleaved: c.a.int("interleaved", 0)? != 0,
            num_heads: c.a.usize("num_heads", 0)?,
            rotary_embedding_dim: c.a.usize("rotary_embedding_dim", 0)?,
            domain: OpDomain::Onnx,
        }),
        "Attention" => attention(c)?,
        _ => return Ok(None),
    }))
}

fn rms(c: &Conversion, simplified: bool) -> Result<Op> {
    let stash = c.a.int("stash_type", 1)?;
    if stash != 1 {
        return Err(Error::Unsupported(format!(
            "{} with stash_type {stash} (libxq computes in f32: stash_type 1)",
            c.node.op_type
        )));
    }
    Ok(Op::RmsNormalization {
        axis: c.a.int("axis", -1)?,
        epsilon: c.a.float("epsilon", 1e-5)?,
        simplified,
    })
}

/// An optional `scale` attribute (absent or 0: the default `1 / sqrt(head_size)`).
fn scale(c: &Conversion) -> Result<Option<f32>> {
    if !c.a.has("scale") {
        return Ok(None);
    }
    let s = c.a.float("scale", 0.0)?;
    Ok(if s == 0.0 { None } else { Some(s) })
}

/// True when output `i` of the node is requested.
fn wants_output(c: &Conversion, i: usize) -> bool {
    c.node.output.get(i).is_some_and(|o| !o.is_empty())
}

/// True when input `i` of the node is given.
fn has_input(c: &Conversion, i: usize) -> bool {
    c.inputs.get(i).is_some_and(|o| !o.is_empty())
}

fn attention(c: &Conversion) -> Result<Op> {
    for newer in ["left_window_size", "right_window_size"] {
        if c.a.has(newer) {
            return Err(Error::Unsupported(format!("Attention with `{newer}` (opset 25)")));
        }
    }
    if has_input(c, 6) {
        return Err(Error::Unsupported(
            "Attention with nonpad_kv_seqlen (opset 24's external KV cache)".into(),
        ));
    }
    let mode = match c.a.int("qk_matmul_output_mode", 0)? {
        0 => QkOutputMode::MatMul,
        1 => QkOutputMode::Masked,
        2 => QkOutputMode::Softcapped,
        3 => QkOutputMode::Softmax,
        m => return Err(c.a.err("qk_matmul_output_mode", format!("is {m}, not 0..=3"))),
    };
    Ok(Op::Attention(AttentionAttrs {
        is_causal: c.a.int("is_causal", 0)? != 0,
        q_num_heads: c.a.usize("q_num_heads", 0)?,
        kv_num_heads: c.a.usize("kv_num_heads", 0)?,
        scale: scale(c)?,
        softcap: c.a.float("softcap", 0.0)?,
        qk_matmul_output_mode: mode,
    }))
}

/// A `com.microsoft` node; every op type outside [`MICROSOFT_SUPPORTED`] is unsupported.
fn microsoft_op(c: &mut Conversion) -> Result<Op> {
    let node = c.node;
    Ok(match node.op_type.as_str() {
        "SimplifiedLayerNormalization" => rms(c, true)?,
        "SkipLayerNormalization" | "SkipSimplifiedLayerNormalization" => {
            let simplified = node.op_type == "SkipSimplifiedLayerNormalization";
            if simplified && c.inputs.len() > 3 {
                // input, skip, gamma, bias → input, skip, gamma, (no beta), bias.
                let bias = std::mem::take(&mut c.inputs[3]);
                c.inputs.truncate(3);
                c.inputs.extend([String::new(), bias]);
            }
            Op::SkipNormalization {
                epsilon: c.a.float("epsilon", 1e-12)?,
                simplified,
            }
        }
        "Gelu" => Op::Gelu {
            tanh_approximation: false,
        },
        "FastGelu" if has_input(c, 1) => Op::BiasGelu {
            tanh_approximation: true,
        },
        "FastGelu" => Op::Gelu {
            tanh_approximation: true,
        },
        "BiasGelu" => Op::BiasGelu {
            tanh_approximation: false,
        },
        "RotaryEmbedding" => {
            if c.a.int("is_packed_batching", 0)? != 0 {
                return Err(Error::Unsupported(
                    "com.microsoft RotaryEmbedding with is_packed_batching".into(),
                ));
            }
            let s = c.a.float("scale", 1.0)?;
            if s != 1.0 {
                return Err(Error::Unsupported(format!(
                    "com.microsoft RotaryEmbedding with scale {s}"
                )));
            }
            if c.inputs.len() != 4 {
                return Err(Error::InvalidModel(format!(
                    "com.microsoft RotaryEmbedding `{}` has {} inputs where 4 (input, position_ids, \
                     cos_cache, sin_cache) are required",
                    node.name,
                    c.inputs.len()
                )));
            }
            // input, position_ids, cos, sin → input, cos, sin, position_ids.
            let pos = c.inputs.remove(1);
            c.inputs.push(pos);
            Op::RotaryEmbedding(RotaryAttrs {
                interleaved: c.a.int("interleaved", 0)? != 0,
                num_heads: c.a.usize("num_heads", 0)?,
                rotary_embedding_dim: c.a.usize("rotary_embedding_dim", 0)?,
                domain: OpDomain::Microsoft,
            })
        }
        "MultiHeadAttention" => {
            if !has_input(c, 1) || !has_input(c, 2) {
                return Err(Error::Unsupported(
                    "MultiHeadAttention with packed QKV or KV (libxq takes separate query, key, value)"
                        .into(),
                ));
            }
            if has_input(c, 8) || has_input(c, 9) {
                return Err(Error::Unsupported(
                    "MultiHeadAttention with past_sequence_length / cache_indirection (buffer sharing, beam search)"
                        .into(),
                ));
            }
            if wants_output(c, 3) {
                return Err(Error::Unsupported("MultiHeadAttention's qk output".into()));
            }
            if !c.a.has("num_heads") {
                return Err(c.a.err("num_heads", "is required"));
            }
            Op::MultiHeadAttention(MultiHeadAttentionAttrs {
                num_heads: c.a.usize("num_heads", 0)?,
                scale: scale(c)?,
                mask_filter_value: c.a.float("mask_filter_value", -10000.0)?,
                unidirectional: c.a.int("unidirectional", 0)? != 0,
            })
        }
        "Attention" => packed_attention(c)?,
        "EmbedLayerNormalization" => {
            if c.a.int("mask_index_type", 1)? != 1 && wants_output(c, 1) {
                return Err(Error::Unsupported(
                    "EmbedLayerNormalization's mask_index output with mask_index_type other than 1".into(),
                ));
            }
            Op::EmbedLayerNormalization {
                epsilon: c.a.float("epsilon", 1e-12)?,
            }
        }
        other => return Err(Error::Unsupported(format!("com.microsoft::{other}"))),
    })
}

/// `com.microsoft` Attention (merged Q/K/V weights) without past state or rotary embedding.
fn packed_attention(c: &Conversion) -> Result<Op> {
    for (attr, what) in [
        ("do_rotary", "rotary embedding"),
        ("past_present_share_buffer", "a shared past/present buffer"),
    ] {
        if c.a.int(attr, 0)? != 0 {
            return Err(Error::Unsupported(format!("com.microsoft Attention with {what}")));
        }
    }
    if has_input(c, 4) || has_input(c, 6) || wants_output(c, 1) {
        return Err(Error::Unsupported(
            "com.microsoft Attention with past / present state (use MultiHeadAttention's past_key / past_value)"
                .into(),
        ));
    }
    if !c.a.has("num_heads") {
        return Err(c.a.err("num_heads", "is required"));
    }
    Ok(Op::PackedAttention {
        mha: MultiHeadAttentionAttrs {
            num_heads: c.a.usize("num_heads", 0)?,
            scale: scale(c)?,
            mask_filter_value: c.a.float("mask_filter_value", -10000.0)?,
            unidirectional: c.a.int("unidirectional", 0)? != 0,
        },
        qkv_hidden_sizes: c.a.usizes("qkv_hidden_sizes")?,
    })
}
