//! Attributes of the fused transformer operators: ONNX's RotaryEmbedding and Attention
//! (opset 23) and ONNX Runtime's `com.microsoft` MultiHeadAttention and RotaryEmbedding.

/// The operator set a fused operator was imported from (and is exported to).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OpDomain {
    /// The ONNX default domain.
    #[default]
    Onnx,
    /// ONNX Runtime's contrib operators, domain `com.microsoft`.
    Microsoft,
}

impl OpDomain {
    /// The domain string an ONNX node carries.
    pub fn onnx_domain(self) -> &'static str {
        match self {
            OpDomain::Onnx => "",
            OpDomain::Microsoft => "com.microsoft",
        }
    }
}

/// Attributes of RotaryEmbedding. Inputs (ONNX order): X, cos_cache, sin_cache,
/// position_ids?. X is `(B, S, hidden)` or `(B, heads, S, head_size)`.
///
/// ONNX: without position_ids the caches are `(B, S, rotary_dim / 2)`; with them,
/// `(max_positions, rotary_dim / 2)` indexed by position_ids `(B, S)`.
/// `com.microsoft`: position_ids is required, either `(B, S)` or one offset `(1)` (position
/// of token `s` = offset + s); a 3-D X without `num_heads` has `head_size = 2 · cos_cache`'s
/// last dimension.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RotaryAttrs {
    /// Rotate pairs `(x[2i], x[2i+1])` instead of `(x[i], x[i + rotary_dim/2])`.
    pub interleaved: bool,
    /// Heads of a 3-D X (0 = not given).
    pub num_heads: usize,
    /// Leading elements of each head that are rotated (0 = the whole head).
    pub rotary_embedding_dim: usize,
    /// Which operator this is (input semantics above).
    pub domain: OpDomain,
}

/// What ONNX Attention's optional fourth output holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum QkOutputMode {
    /// `scale · Q·Kᵀ`.
    #[default]
    MatMul,
    /// After the mask (attention bias) is added.
    Masked,
    /// After softcap.
    Softcapped,
    /// After softmax.
    Softmax,
}

/// Attributes of ONNX Attention (opset 23). Inputs: Q, K, V, attn_mask?, past_key?,
/// past_value?. Outputs: Y, present_key?, present_value?, qk_matmul_output?.
///
/// Q, K and V are 3-D `(B, S, heads · head_size)` (then both head counts are required) or
/// 4-D `(B, heads, S, head_size)`. K and V have `kv_num_heads` heads, which divide
/// `q_num_heads` (grouped-query attention: query head `h` reads key head
/// `h / (q_num_heads / kv_num_heads)`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AttentionAttrs {
    /// Mask key `j` for query `i` when `j > i + past_length`.
    pub is_causal: bool,
    /// Query heads of 3-D inputs (0 = not given).
    pub q_num_heads: usize,
    /// Key / value heads of 3-D inputs (0 = not given).
    pub kv_num_heads: usize,
    /// Multiplies Q·Kᵀ (None: `1 / sqrt(head_size)`).
    pub scale: Option<f32>,
    /// When positive, scores become `softcap · tanh(scores / softcap)` before the mask.
    pub softcap: f32,
    /// What the fourth output holds.
    pub qk_matmul_output_mode: QkOutputMode,
}

/// Attributes of `com.microsoft` MultiHeadAttention with separate 3-D query, key and value.
/// Inputs: query, key, value, bias?, key_padding_mask?, attention_bias?, past_key?,
/// past_value?. Outputs: output, present_key?, present_value?.
///
/// key_padding_mask (i32) is `(B)` (valid key lengths), `(B, T)` or `(B, S, T)` (0 =
/// padding); masked scores (padding and, when `unidirectional`, future keys) get
/// `mask_filter_value` added. attention_bias `(B or 1, heads or 1, S, T)` is added to the
/// scaled scores.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiHeadAttentionAttrs {
    /// Number of heads (at least 1).
    pub num_heads: usize,
    /// Multiplies Q·Kᵀ (None: `1 / sqrt(head_size)`).
    pub scale: Option<f32>,
    /// Added to masked scores.
    pub mask_filter_value: f32,
    /// Causal: query `i` sees keys up to `past_length + i`.
    pub unidirectional: bool,
}

impl Default for MultiHeadAttentionAttrs {
    fn default() -> Self {
        MultiHeadAttentionAttrs {
            num_heads: 1,
            scale: None,
            mask_filter_value: -10000.0,
            unidirectional: false,
        }
    }
}

impl super::Op {
    /// The operator set of this operator: `com.microsoft` for ONNX Runtime's contrib
    /// operators, the ONNX default domain for all others (ONNX Runtime registers
    /// SimplifiedLayerNormalization in the default domain).
    pub fn domain(&self) -> OpDomain {
        use super::Op;
        match self {
            Op::SkipNormalization { .. }
            | Op::BiasGelu { .. }
            | Op::MultiHeadAttention(_)
            | Op::PackedAttention { .. }
            | Op::EmbedLayerNormalization { .. } => OpDomain::Microsoft,
            Op::RotaryEmbedding(r) => r.domain,
            _ => OpDomain::Onnx,
        }
    }
}

/// The sizes of one attention: Q is read as `(batch, q_heads, q_len, head_size)`, the keys
/// and values (past and new, concatenated) as `(batch, kv_heads, past_len + kv_len,
/// head_size | v_head_size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Batch size.
    pub batch: usize,
    /// Query heads.
    pub q_heads: usize,
    /// Key / value heads (divides `q_heads`).
    pub kv_heads: usize,
    /// Query sequence length.
    pub q_len: usize,
    /// New key / value sequence length.
    pub kv_len: usize,
    /// Cached key / value sequence length (0 without past_key).
    pub past_len: usize,
    /// Query / key head size.
    pub head_size: usize,
    /// Value head size.
    pub v_head_size: usize,
    /// Q, K and V are 4-D `(B, heads, S, head)` (else 3-D `(B, S, heads · head)`).
    pub four_d: bool,
}

fn shape_err(op: &str, msg: impl std::fmt::Display) -> crate::Error {
    crate::Error::ShapeMismatch(format!("{op}: {msg}"))
}

/// `hidden / heads` when it divides evenly.
fn per_head(op: &str, what: &str, hidden: usize, heads: usize) -> crate::Result<usize> {
    match hidden.checked_rem(heads) {
        Some(0) => Ok(hidden / heads),
        _ => Err(shape_err(
            op,
            format!("{what} hidden size {hidden} is not a multiple of {heads} heads"),
        )),
    }
}

impl AttentionShape {
    /// ONNX Attention's sizes from the shapes of Q, K, V and past_key / past_value.
    pub fn of_attention(
        a: &AttentionAttrs,
        q: &[usize],
        k: &[usize],
        v: &[usize],
        past: Option<(&[usize], &[usize])>,
    ) -> crate::Result<AttentionShape> {
        const OP: &str = "Attention";
        if q.len() != k.len() || q.len() != v.len() || !(q.len() == 3 || q.len() == 4) {
            return Err(shape_err(
                OP,
                format!("Q {q:?}, K {k:?} and V {v:?} must all be 3-D or all 4-D"),
            ));
        }
        let s = if q.len() == 3 {
            if a.q_num_heads == 0 || a.kv_num_heads == 0 {
                return Err(shape_err(OP, "3-D inputs need q_num_heads and kv_num_heads"));
            }
            AttentionShape {
                batch: q[0],
                q_heads: a.q_num_heads,
                kv_heads: a.kv_num_heads,
                q_len: q[1],
                kv_len: k[1],
                past_len: 0,
                head_size: per_head(OP, "Q", q[2], a.q_num_heads)?,
                v_head_size: per_head(OP, "V", v[2], a.kv_num_heads)?,
                four_d: false,
            }
        } else {
            AttentionShape {
                batch: q[0],
                q_heads: q[1],
                kv_heads: k[1],
                q_len: q[2],
                kv_len: k[2],
                past_len: 0,
                head_size: q[3],
                v_head_size: v[3],
                four_d: true,
            }
        };
        let k_head = if s.four_d {
            k[3]
        } else {
            per_head(OP, "K", k[2], s.kv_heads)?
        };
        let v_ok = if s.four_d {
            v[1] == s.kv_heads && v[2] == s.kv_len
        } else {
            v[1] == s.kv_len
        };
        if k[0] != s.batch || v[0] != s.batch || k_head != s.head_size || !v_ok {
            return Err(shape_err(
                OP,
                format!("Q {q:?}, K {k:?} and V {v:?} do not agree"),
            ));
        }
        s.with_past(OP, past)
    }

    /// MultiHeadAttention's sizes from 3-D query, key and value and past_key / past_value.
    pub fn of_multi_head(
        m: &MultiHeadAttentionAttrs,
        q: &[usize],
        k: &[usize],
        v: &[usize],
        past: Option<(&[usize], &[usize])>,
    ) -> crate::Result<AttentionShape> {
        const OP: &str = "MultiHeadAttention";
        if q.len() != 3 || k.len() != 3 || v.len() != 3 {
            return Err(crate::Error::Unsupported(format!(
                "{OP} with query {q:?}, key {k:?}, value {v:?} (libxq takes separate 3-D query, key and value)"
            )));
        }
        let s = AttentionShape {
            batch: q[0],
            q_heads: m.num_heads,
            kv_heads: m.num_heads,
            q_len: q[1],
            kv_len: k[1],
            past_len: 0,
            head_size: per_head(OP, "query", q[2], m.num_heads)?,
            v_head_size: per_head(OP, "value", v[2], m.num_heads)?,
            four_d: false,
        };
        if k[0] != s.batch || v[0] != s.batch || k[2] != q[2] || v[1] != s.kv_len {
            return Err(shape_err(
                OP,
                format!("query {q:?}, key {k:?} and value {v:?} do not agree"),
            ));
        }
        s.with_past(OP, past)
    }

    fn with_past(mut self, op: &str, past: Option<(&[usize], &[usize])>) -> crate::Result<AttentionShape> {
        if self.q_heads.checked_rem(self.kv_heads) != Some(0) {
            return Err(shape_err(
                op,
                format!(
                    "{} query heads are not a multiple of {} key/value heads",
                    self.q_heads, self.kv_heads
                ),
            ));
        }
        if let Some((pk, pv)) = past {
            let want_k = [
                self.batch,
                self.kv_heads,
                pk.get(2).copied().unwrap_or(0),
                self.head_size,
            ];
            let want_v = [self.batch, self.kv_heads, want_k[2], self.v_head_size];
            if pk != want_k || pv != want_v {
                return Err(shape_err(
                    op,
                    format!("past_key {pk:?} / past_value {pv:?} do not match the keys and values"),
                ));
            }
            self.past_len = want_k[2];
        }
        crate::ir::checked_numel(&self.present_key_dims()?)?;
        crate::ir::checked_numel(&self.present_value_dims()?)?;
        crate::ir::checked_numel(&self.scores_dims()?)?;
        self.output_dims()?;
        Ok(self)
    }

    /// Past plus new key / value length.
    pub fn total_len(&self) -> crate::Result<usize> {
        self.past_len
            .checked_add(self.kv_len)
            .ok_or_else(|| crate::Error::ResourceLimit("attention sequence length overflows".into()))
    }

    /// Y's shape: like Q with the value head size.
    pub fn output_dims(&self) -> crate::Result<Vec<usize>> {
        let dims = if self.four_d {
            vec![self.batch, self.q_heads, self.q_len, self.v_head_size]
        } else {
            let hidden = self.q_heads.checked_mul(self.v_head_size);
            let hidden =
                hidden.ok_or_else(|| crate::Error::ResourceLimit("attention output overflows".into()))?;
            vec![self.batch, self.q_len, hidden]
        };
        crate::ir::checked_numel(&dims)?;
        Ok(dims)
    }

    /// present_key's shape `(B, kv_heads, total, head_size)`.
    pub fn present_key_dims(&self) -> crate::Result<Vec<usize>> {
        Ok(vec![self.batch, self.kv_heads, self.total_len()?, self.head_size])
    }

    /// present_value's shape `(B, kv_heads, total, v_head_size)`.
    pub fn present_value_dims(&self) -> crate::Result<Vec<usize>> {
        Ok(vec![
            self.batch,
            self.kv_heads,
            self.total_len()?,
            self.v_head_size,
        ])
    }

    /// The scores' shape `(B, q_heads, q_len, total)`.
    pub fn scores_dims(&self) -> crate::Result<Vec<usize>> {
        Ok(vec![self.batch, self.q_heads, self.q_len, self.total_len()?])
    }
}

/// The hidden sizes of Q, K and V of ONNX Runtime's packed Attention: `qkv_hidden_sizes`, or
/// the weights' `columns` in three equal parts.
pub fn packed_qkv_sizes(qkv_hidden_sizes: &[usize], columns: usize) -> crate::Result<[usize; 3]> {
    let sizes = match *qkv_hidden_sizes {
        [] if columns.is_multiple_of(3) => [columns / 3; 3],
        [q, k, v] => [q, k, v],
        _ => {
            return Err(shape_err(
                "Attention",
                format!("qkv_hidden_sizes {qkv_hidden_sizes:?} with {columns} weight columns"),
            ))
        }
    };
    let total = sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s));
    if total != Some(columns) || sizes[0] != sizes[1] {
        return Err(shape_err(
            "Attention",
            format!("Q/K/V hidden sizes {sizes:?} do not split the {columns} weight columns (Q and K equal)"),
        ));
    }
    Ok(sizes)
}
