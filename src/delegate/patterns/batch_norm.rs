//! `DQ(x) → BatchNormalization(const γ, β, mean, var) [→ Relu / Clip] → Q` with no
//! convolution before it to fold into: an int8 per-channel affine
//! `y = x · s[c] + t[c]` (`s = γ / √(var + ε)`, `t = β - mean · s`), run as a 1×1 depthwise
//! convolution. Each channel's weight is ±127 with scale `|s[c]| / 127`, which represents
//! `s[c]` exactly up to one `f32` rounding; the shift becomes the int32 bias at scale
//! `s_x · |s[c]| / 127` (off by at most half of that, far below an output step), so the
//! result is that of the float affine requantized under the conv contract.

use super::{refuse, Candidate, Matcher, Reason, Refusal};
use crate::ir::Node;
use crate::program::{ConvSpec, KernelSpec, Window};
use crate::qscheme::{bias_to_i32, QWeights};

impl Matcher<'_> {
    /// A standalone BatchNormalization as a per-channel affine (1×1 depthwise convolution).
    pub(super) fn batch_norm(&self, index: usize, node: &Node, epsilon: f32) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        if x.dims.len() != 4 {
            return refuse(Reason::Shape, "only 4-D BatchNormalization (N, C, H, W)");
        }
        let c = x.dims[1];
        let param = |k: usize| -> Result<Vec<f32>, Refusal> {
            let t = node.input(k).unwrap_or_default();
            match self.const_f32(t) {
                Some(v) if v.len() == c => Ok(v),
                Some(v) => refuse(
                    Reason::Shape,
                    format!("parameter `{t}` has {} values for {c} channels", v.len()),
                ),
                None => refuse(
                    Reason::NonConstantWeight,
                    format!("parameter `{t}` is not a constant"),
                ),
            }
        };
        let (gamma, beta, mean, var) = (param(1)?, param(2)?, param(3)?, param(4)?);
        let out = self.q_output(node)?;
        let mut weights = Vec::with_capacity(c);
        let mut scales = Vec::with_capacity(c);
        let mut bias = Vec::with_capacity(c);
        for ch in 0..c {
            let s = gamma[ch] / (var[ch] + epsilon).sqrt();
            let t = beta[ch] - mean[ch] * s;
            if !s.is_finite() || !t.is_finite() {
                return refuse(
                    Reason::QParams,
                    format!("channel {ch}: non-finite scale or shift"),
                );
            }
            let (w, scale) = if s == 0.0 {
                (0, 1.0)
            } else {
                (if s > 0.0 { 127 } else { -127 }, s.abs() / 127.0)
            };
            if !(scale.is_normal() && scale > 0.0) {
                return refuse(Reason::QParams, format!("channel {ch}: scale {s} out of range"));
            }
            let b = bias_to_i32(t, x.q.scale, scale).ok_or_else(|| Refusal {
                reason: Reason::QParams,
                detail: format!("channel {ch}: the shift does not fit int32 at its scale"),
            })?;
            weights.push(w);
            scales.push(scale);
            bias.push(b);
        }
        let kernel = KernelSpec::Conv(ConvSpec {
            input: 0,
            output: 0,
            window: Window {
                kernel: (1, 1),
                stride: (1, 1),
                dilation: (1, 1),
                pads: (0, 0, 0, 0),
            },
            groups: c,
            depthwise: true,
            weights: QWeights::new(weights, scales),
            bias,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }
}
