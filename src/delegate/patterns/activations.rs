//! A pattern's quantized activations: the int8 tensor behind each input's DequantizeLinear
//! (through same-qparams requantizations) and the int8 tensor its output is quantized into
//! (through a fused Relu / Clip).

use super::clamp::clamp_range;
use super::{refuse, Matcher, QInput, QOutput, Reason, Refusal};
use crate::ir::op::UnaryOp;
use crate::ir::{Node, Op};
use crate::kernels::{OutputRange, QuantParams};

impl Matcher<'_> {
    /// Input `t` of a compute node must be `DQ(q)` where `q` is an int8 tensor made by a
    /// QuantizeLinear with the same qparams (or by another pattern). A requantization to
    /// the same qparams in between, `Q(DQ(x)) → DQ → t` (what PT2E leaves of a removed
    /// Dropout), is the identity on int8 values and is passed through when each of its
    /// nodes has no other reader: the input is then `x` and the pattern covers those nodes.
    pub(super) fn q_input(&self, t: &str) -> Result<QInput, Refusal> {
        let mut dq_i = match self.producer.get(t) {
            Some(&i) if matches!(self.graph.nodes[i].op, Op::DequantizeLinear(_)) => i,
            _ => return refuse(Reason::NotQuantized, format!("input `{t}` is not dequantized")),
        };
        let q = self.node_qparams(&self.graph.nodes[dq_i])?;
        let mut through = Vec::new();
        loop {
            let dq = &self.graph.nodes[dq_i];
            let src = dq.input(0).unwrap_or_default();
            if self.constant(src).is_some() {
                return refuse(Reason::Shape, format!("activation `{t}` is a constant"));
            }
            let q_i = match self.producer.get(src) {
                Some(&i) if matches!(self.graph.nodes[i].op, Op::QuantizeLinear(_)) => i,
                _ => {
                    return refuse(
                        Reason::NotQuantized,
                        format!("`{src}` is not made by QuantizeLinear"),
                    )
                }
            };
            if self.node_qparams(&self.graph.nodes[q_i])? != q {
                return refuse(
                    Reason::QParams,
                    format!("`{src}` is dequantized with other qparams than it was quantized"),
                );
            }
            match self.same_qparams_round_trip(dq_i, q_i, q) {
                Some(inner_dq) => {
                    through.extend([dq_i, q_i]);
                    dq_i = inner_dq;
                }
                None => {
                    return Ok(QInput {
                        tensor: src.to_string(),
                        q,
                        dims: self.dims(t)?,
                        through,
                    })
                }
            }
        }
    }

    /// For `dq_i = DQ(q_i = Q(u))`: the node making `u` when it is a DQ with qparams `q` and
    /// `u`, `Q(u)` and `DQ(Q(u))` each have exactly one reader (so the round trip may be
    /// dropped).
    fn same_qparams_round_trip(&self, dq_i: usize, q_i: usize, q: QuantParams) -> Option<usize> {
        let (dq, qn) = (&self.graph.nodes[dq_i], &self.graph.nodes[q_i]);
        let u = qn.input(0)?;
        let inner = *self.producer.get(u)?;
        let inner_node = &self.graph.nodes[inner];
        let single = self.only_reader(&dq.outputs[0]).is_some()
            && self.only_reader(&qn.outputs[0]) == Some(dq_i)
            && self.only_reader(u) == Some(q_i);
        let same =
            matches!(inner_node.op, Op::DequantizeLinear(_)) && self.node_qparams(inner_node).ok()? == q;
        (single && same).then_some(inner)
    }

    /// The output of a compute node: optionally through Relu / Clip, then into exactly one
    /// int8 QuantizeLinear; then, while the quantized tensor is only read by
    /// `DQ → Relu / Clip → Q` with the same qparams (PT2E's form of a ReLU / ReLU6 /
    /// hardtanh that shares its input's qparams), those nodes too, the clamp narrowing the
    /// output range. Clamping the requantized value to the quantized bounds gives the same
    /// int8 values as clamping in float and quantizing again, because quantization is
    /// monotone and maps each int8 value's dequantization back to itself.
    pub(super) fn q_output(&self, node: &Node) -> Result<QOutput, Refusal> {
        self.q_output_from(&node.outputs[0])
    }

    /// As [`Self::q_output`], starting from the float tensor `t`.
    pub(super) fn q_output_from(&self, t: &str) -> Result<QOutput, Refusal> {
        let mut nodes = Vec::new();
        let mut t = t;
        let mut clip: Option<(f32, f32)> = None;
        let mut out = loop {
            if self.graph.is_output(t) {
                return refuse(Reason::NotQuantized, format!("`{t}` is a float graph output"));
            }
            let readers = self.consumers(t);
            let &[reader] = readers else {
                return refuse(
                    Reason::NotQuantized,
                    format!("`{t}` is not read by exactly one QuantizeLinear"),
                );
            };
            let next = &self.graph.nodes[reader];
            match &next.op {
                Op::QuantizeLinear(_) if next.input(0) == Some(t) => {
                    let q = self.node_qparams(next)?;
                    nodes.push(reader);
                    let range = match clip {
                        None => OutputRange::FULL,
                        Some((lo, hi)) => clamp_range(OutputRange::FULL, lo, hi, q)?,
                    };
                    break QOutput {
                        nodes,
                        tensor: next.outputs[0].clone(),
                        q,
                        range,
                    };
                }
                Op::Unary(UnaryOp::Relu) | Op::Clip if clip.is_none() => {
                    clip = Some(self.clamp_bounds(next)?);
                }
                _ => {
                    return refuse(
                        Reason::NotQuantized,
                        format!(
                            "`{t}` is read by {} instead of QuantizeLinear",
                            next.op.onnx_name()
                        ),
                    )
                }
            }
            nodes.push(reader);
            t = next.outputs[0].as_str();
        };
        while let Some((more, tensor, (lo, hi))) = self.clamp_in_quantized_domain(&out.tensor, out.q) {
            out.range = clamp_range(out.range, lo, hi, out.q)?;
            out.nodes.extend(more);
            out.tensor = tensor;
        }
        Ok(out)
    }
}
