//! Constant weights and biases of the linear patterns: int8 weights behind a
//! DequantizeLinear (per tensor or per output channel) and biases in int32 at the product's
//! scale.

use super::{refuse, Matcher, Reason, Refusal};
use crate::ir::Op;
use crate::qscheme::{bias_to_i32, ChannelScales, QWeights};

impl Matcher<'_> {
    /// A constant int8 weight behind a DQ: its values and scales (1 or per `channel_axis`),
    /// and its dims.
    pub(super) fn q_weight(&self, t: &str, channel_axis: usize) -> Result<(QWeights, Vec<usize>), Refusal> {
        let dq = match self.producer(t) {
            Some(n) if matches!(n.op, Op::DequantizeLinear(_)) => n,
            _ if self.constant(t).is_some() => {
                return refuse(Reason::NotQuantized, format!("weight `{t}` is a float constant"))
            }
            _ => {
                return refuse(
                    Reason::NonConstantWeight,
                    format!("weight `{t}` is not a constant"),
                )
            }
        };
        let Op::DequantizeLinear(attrs) = &dq.op else {
            unreachable!("checked above")
        };
        let src = dq.input(0).unwrap_or_default();
        let w = self.constant(src).ok_or_else(|| Refusal {
            reason: Reason::NonConstantWeight,
            detail: format!("weight `{src}` is not a constant"),
        })?;
        let values = w.as_i8().map_err(|_| Refusal {
            reason: Reason::Dtype,
            detail: format!("weight `{src}` is {}, not int8", w.dtype()),
        })?;
        let dims = w.dims().to_vec();
        let scale = dq.input(1).and_then(|s| self.constant(s)).map(|s| s.to_f32_vec());
        let Some(Ok(scales)) = scale else {
            return refuse(
                Reason::QParams,
                format!("weight `{src}`: scale is not a constant f32"),
            );
        };
        if let Some(z) = dq.input(2) {
            let zeros = self
                .constant(z)
                .map(|z| z.as_i8().map(|v| v.iter().all(|&x| x == 0)));
            if !matches!(zeros, Some(Ok(true))) {
                return refuse(
                    Reason::QParams,
                    format!("weight `{src}`: zero point is not int8 zero"),
                );
            }
        }
        if scales.len() != 1 {
            let axis = if attrs.axis < 0 {
                attrs.axis + dims.len() as i64
            } else {
                attrs.axis
            };
            if attrs.block_size != 0 || axis != channel_axis as i64 || scales.len() != dims[channel_axis] {
                return refuse(
                    Reason::QParams,
                    format!("weight `{src}`: scales are not per output channel"),
                );
            }
        }
        if scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return refuse(Reason::QParams, format!("weight `{src}`: invalid scale"));
        }
        Ok((QWeights::new(values.to_vec(), scales), dims))
    }

    /// Bias of `n` channels with scale `s_in * s_w[c]`: an int32 constant behind a DQ (used
    /// as is, as ONNX Runtime's fused kernels do) or a float constant (rounded half even).
    pub(super) fn q_bias(
        &self,
        t: Option<&str>,
        s_in: f32,
        scales: &[f32],
        n: usize,
    ) -> Result<Vec<i32>, Refusal> {
        let Some(t) = t else { return Ok(Vec::new()) };
        let float = if let Some(c) = self.constant(t) {
            c.to_f32_vec().map_err(|e| Refusal {
                reason: Reason::Dtype,
                detail: e.to_string(),
            })?
        } else {
            let dq = match self.producer(t) {
                Some(d) if matches!(d.op, Op::DequantizeLinear(_)) => d,
                _ => return refuse(Reason::NonConstantWeight, format!("bias `{t}` is not a constant")),
            };
            let src = dq.input(0).and_then(|s| self.constant(s));
            let zp_zero = dq
                .input(2)
                .map(|z| {
                    self.constant(z)
                        .map(|z| z.to_i64_vec().map(|v| v.iter().all(|&x| x == 0)))
                })
                .unwrap_or(Some(Ok(true)));
            let zp_zero = matches!(zp_zero, Some(Ok(true)));
            match (src.map(|s| s.as_i32()), zp_zero) {
                (Some(Ok(v)), true) if v.len() == n => return Ok(v.to_vec()),
                (Some(Ok(_)), _) => {
                    return refuse(Reason::QParams, format!("bias `{t}`: unsupported int32 qparams"))
                }
                _ => {
                    let scale = dq.input(1).and_then(|s| self.constant(s)).map(|s| s.to_f32_vec());
                    let (Some(src), Some(Ok(scale))) = (src, scale) else {
                        return refuse(Reason::NonConstantWeight, format!("bias `{t}` is not a constant"));
                    };
                    let q = src.to_f32_vec().map_err(|e| Refusal {
                        reason: Reason::Dtype,
                        detail: e.to_string(),
                    })?;
                    let Some(scale) = ChannelScales::new(&scale, q.len()) else {
                        return refuse(Reason::QParams, format!("bias `{t}`: unsupported scales"));
                    };
                    q.iter().enumerate().map(|(i, v)| v * scale.get(i)).collect()
                }
            }
        };
        if float.len() != n {
            return refuse(
                Reason::Shape,
                format!("bias `{t}` has {} values for {n} channels", float.len()),
            );
        }
        let Some(w_scales) = ChannelScales::new(scales, n) else {
            return refuse(Reason::QParams, format!("bias `{t}`: unsupported weight scales"));
        };
        float
            .iter()
            .enumerate()
            .map(|(c, &b)| {
                bias_to_i32(b, s_in, w_scales.get(c)).map_or_else(
                    || {
                        refuse(
                            Reason::QParams,
                            format!("bias `{t}` does not fit int32 at its scale"),
                        )
                    },
                    Ok,
                )
            })
            .collect()
    }
}

/// Transposes a row-major `rows × cols` matrix into `cols × rows`.
pub(super) fn transpose(w: &[i8], rows: usize, cols: usize) -> Vec<i8> {
    let mut t = vec![0i8; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}
