//! Relu / Clip folded into a pattern's output range.

use super::{refuse, Matcher, Reason, Refusal};
use crate::ir::op::UnaryOp;
use crate::ir::{Node, Op};
use crate::kernels::{OutputRange, QuantParams};
use crate::qscheme::clip_bounds;

impl Matcher<'_> {
    /// The float bounds of a Relu (`[0, inf)`) or Clip (constant bounds; absent ones open).
    pub(super) fn clamp_bounds(&self, node: &Node) -> Result<(f32, f32), Refusal> {
        if matches!(node.op, Op::Unary(UnaryOp::Relu)) {
            return Ok((0.0, f32::INFINITY));
        }
        let bound = |i: usize, default: f32| -> Result<f32, Refusal> {
            match node.input(i).filter(|n| !n.is_empty()) {
                None => Ok(default),
                Some(n) => match self.constant(n).map(|c| c.to_f32_vec()) {
                    Some(Ok(v)) if v.len() == 1 && !v[0].is_nan() => Ok(v[0]),
                    _ => refuse(
                        Reason::Attribute,
                        format!("Clip `{}`: bound is not a constant", node.name),
                    ),
                },
            }
        };
        Ok((bound(1, f32::NEG_INFINITY)?, bound(2, f32::INFINITY)?))
    }

    /// `t` (an int8 tensor with qparams `q`) read only by `DQ → Relu / Clip → Q`, every
    /// step the only reader of the one before and no graph output, with both DQ and Q at
    /// qparams `q`: the nodes, the new int8 tensor and the float bounds.
    pub(super) fn clamp_in_quantized_domain(
        &self,
        t: &str,
        q: QuantParams,
    ) -> Option<(Vec<usize>, String, (f32, f32))> {
        let dq_i = self.only_reader(t)?;
        let dq = &self.graph.nodes[dq_i];
        let is_dq = matches!(dq.op, Op::DequantizeLinear(_)) && dq.input(0) == Some(t);
        if !is_dq || self.node_qparams(dq).ok()? != q {
            return None;
        }
        let act_i = self.only_reader(&dq.outputs[0])?;
        let act = &self.graph.nodes[act_i];
        let is_clamp = matches!(act.op, Op::Unary(UnaryOp::Relu) | Op::Clip);
        if !is_clamp || act.input(0) != Some(dq.outputs[0].as_str()) {
            return None;
        }
        let bounds = self.clamp_bounds(act).ok()?;
        let q_i = self.only_reader(&act.outputs[0])?;
        let qn = &self.graph.nodes[q_i];
        let is_q = matches!(qn.op, Op::QuantizeLinear(_)) && qn.input(0) == Some(act.outputs[0].as_str());
        if !is_q || self.node_qparams(qn).ok()? != q {
            return None;
        }
        Some((vec![dq_i, act_i, q_i], qn.outputs[0].clone(), bounds))
    }
}

/// `range` narrowed to the float bounds `[lo, hi]` quantized with `q` (round half even,
/// saturating).
pub(super) fn clamp_range(
    range: OutputRange,
    lo: f32,
    hi: f32,
    q: QuantParams,
) -> Result<OutputRange, Refusal> {
    let (lo, hi) = clip_bounds(lo, hi, q);
    OutputRange::new(range.min.max(lo), range.max.min(hi)).map_err(|e| Refusal {
        reason: Reason::Attribute,
        detail: e.to_string(),
    })
}
