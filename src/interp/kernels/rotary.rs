//! Rotary position embedding (ONNX opset 23 and ONNX Runtime's `com.microsoft` form).

use crate::ir::op::{OpDomain, RotaryAttrs};
use crate::ir::Tensor;
use crate::{Error, Result};

fn err(msg: impl std::fmt::Display) -> Error {
    Error::ShapeMismatch(format!("RotaryEmbedding: {msg}"))
}

/// Where the cos / sin row of token `(b, s)` is.
enum Rows<'a> {
    /// Caches `(B, S, half)` without position ids.
    PerToken { seq: usize },
    /// Caches `(max_positions, half)` indexed by position ids `(B, S)`.
    Ids { ids: &'a [i64], seq: usize, max: usize },
    /// Caches `(max_positions, half)` indexed by `offset + s`.
    Offset { offset: i64, max: usize },
}

impl Rows<'_> {
    fn row(&self, b: usize, s: usize) -> Result<usize> {
        let pos = match *self {
            Rows::PerToken { seq } => return Ok(b * seq + s),
            Rows::Ids { ids, seq, max } => (ids[b * seq + s], max),
            Rows::Offset { offset, max } => (offset.saturating_add(s as i64), max),
        };
        match usize::try_from(pos.0) {
            Ok(p) if p < pos.1 => Ok(p),
            _ => Err(Error::InvalidModel(format!(
                "RotaryEmbedding: position {} is outside the caches' {} rows",
                pos.0, pos.1
            ))),
        }
    }
}

/// Rotates the first `rotary_dim` elements of every head of X by the angles of its token's
/// position. Inputs in ONNX order: X, cos_cache, sin_cache, position_ids?.
pub fn rotary_embedding(
    a: &RotaryAttrs,
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    position_ids: Option<&Tensor>,
) -> Result<Tensor> {
    let d = x.dims();
    let (batch, seq, heads, head) = match *d {
        [b, s, hidden] => {
            let heads = match (a.num_heads, a.domain) {
                (0, OpDomain::Microsoft) => {
                    let head = cos.dims().last().copied().unwrap_or(0).saturating_mul(2);
                    if head == 0 || hidden % head != 0 {
                        return Err(err(format!(
                            "hidden size {hidden} is not a multiple of 2 × cos_cache's last dimension"
                        )));
                    }
                    hidden / head
                }
                (0, _) => return Err(err("a 3-D input needs num_heads")),
                (n, _) => n,
            };
            if hidden % heads != 0 {
                return Err(err(format!(
                    "hidden size {hidden} is not a multiple of {heads} heads"
                )));
            }
            (b, s, heads, hidden / heads)
        }
        [b, n, s, h] => (b, s, n, h),
        _ => return Err(err(format!("X {d:?} is not 3-D or 4-D"))),
    };
    let rot = if a.rotary_embedding_dim == 0 {
        head
    } else {
        a.rotary_embedding_dim
    };
    if rot > head || rot % 2 != 0 {
        return Err(err(format!(
            "rotary_embedding_dim {rot} is odd or above the head size {head}"
        )));
    }
    let half = rot / 2;
    if cos.dims() != sin.dims() || cos.dims().last() != Some(&half) {
        return Err(err(format!(
            "cos_cache {:?} and sin_cache {:?} must match, with last dimension {half}",
            cos.dims(),
            sin.dims()
        )));
    }
    let ids = position_ids.map(Tensor::to_i64_vec).transpose()?;
    let cd = cos.dims();
    let rows = match (&ids, position_ids.map(Tensor::dims)) {
        (None, _) if a.domain == OpDomain::Microsoft => return Err(err("position_ids is required")),
        (None, _) if cd == [batch, seq, half] => Rows::PerToken { seq },
        (None, _) => {
            return Err(err(format!(
                "without position_ids the caches must be {:?}",
                [batch, seq, half]
            )))
        }
        (Some(_), _) if cd.len() != 2 => {
            return Err(err(format!(
                "with position_ids the caches must be 2-D, not {cd:?}"
            )))
        }
        (Some(v), Some([1])) if a.domain == OpDomain::Microsoft => Rows::Offset {
            offset: v[0],
            max: cd[0],
        },
        (Some(v), Some(pd)) if pd == [batch, seq] => Rows::Ids {
            ids: v,
            seq,
            max: cd[0],
        },
        (Some(_), pd) => return Err(err(format!("position_ids {pd:?} is not {:?}", [batch, seq]))),
    };
    let (cv, sv) = (cos.as_f32()?, sin.as_f32()?);
    let xv = x.as_f32()?;
    let mut out = xv.to_vec();
    // Element strides of (b, s, head) in X.
    let (sb, ss, sh) = if d.len() == 3 {
        (seq * heads * head, heads * head, head)
    } else {
        (heads * seq * head, head, seq * head)
    };
    for b in 0..batch {
        for s in 0..seq {
            let r = rows.row(b, s)? * half;
            let (c, sn) = (&cv[r..r + half], &sv[r..r + half]);
            for n in 0..heads {
                let base = b * sb + s * ss + n * sh;
                let src = &xv[base..base + rot];
                let dst = &mut out[base..base + rot];
                for i in 0..half {
                    let (i1, i2) = if a.interleaved {
                        (2 * i, 2 * i + 1)
                    } else {
                        (i, i + half)
                    };
                    let (x1, x2) = (src[i1], src[i2]);
                    dst[i1] = c[i] * x1 - sn[i] * x2;
                    dst[i2] = sn[i] * x1 + c[i] * x2;
                }
            }
        }
    }
    Tensor::from_f32(d.to_vec(), out)
}
