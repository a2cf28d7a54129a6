//! A subgraph of element-wise `f32` operators between one int8 input and one int8 output, as
//! one table lookup: SiLU written as `x * Sigmoid(x)`, hardswish written out
//! (`x * Clip(x + 3, 0, 6) / 6`, `x * Relu6(x + 3) * (1/6)` in any order, `x * HardSigmoid(x)`),
//! GELU with `Erf`, and any other such composition.
//!
//! Matched from its first node ([`crate::ir::elementwise_region`]): every node of the subgraph
//! is a point-wise operator, a Clip or an arithmetic binary operator, and reads only the
//! dequantized input, one-element constants, per-channel constants (varying along one axis
//! of the input, the same for all: then one table per channel, [`ChannelLutSpec`]) and other
//! nodes of the subgraph; exactly one of
//! its tensors is read from outside (by the output QuantizeLinear), so nothing else sees the
//! float intermediates. The table is
//! the subgraph run on the 256 dequantized input bytes by the interpreter's own operator
//! evaluation, in the graph's order, so the lookup equals the interpreted QDQ graph bit for
//! bit whatever the constants are. A Relu or Clip standing alone between DequantizeLinear and
//! QuantizeLinear (one not folded into a preceding pattern's output range) is such a
//! subgraph of one node ([`Matcher::elementwise_alone`]).

use super::{refuse, Candidate, Matcher, QInput, Reason, Refusal, MAX_CHANNEL_TABLES};
use crate::interp::kernels::eval;
use crate::ir::elementwise_region::{find, Origin};
use crate::ir::shapes::broadcast_axis;
use crate::ir::{DType, Node, Op, Tensor};
use crate::kernels::elementwise::Storage;
use crate::kernels::lut::build_table;
use crate::kernels::OutputRange;
use crate::program::steps::channel_lut::ChannelLutSpec;
use crate::program::steps::lut::LutSpec;
use crate::program::KernelSpec;
use crate::{Error, Result};
use std::collections::HashMap;

impl<'g> Matcher<'g> {
    /// The subgraph of element-wise operators that starts at node `index` (its first node in
    /// graph order) as one table lookup; `None` when there is no such subgraph of at least two
    /// operators besides Relu / Clip (a single operator is [`Matcher::lut`]'s or its own
    /// pattern's), or it does not qualify.
    pub(super) fn pointwise_chain(&self, index: usize, node: &'g Node) -> Option<Candidate> {
        let first = node.inputs.iter().find(|t| self.constant(t).is_none())?;
        let x = self.q_input(first).ok()?;
        let region = find(
            self.graph,
            &self.consumers,
            index,
            |t| self.origin(t, &x),
            |i| self.same_shape_f32(&self.graph.nodes[i], &x),
        )?;
        self.region_lookup(index, &x, &region.nodes, &region.exit).ok()
    }

    /// One element-wise node standing alone between DequantizeLinear and QuantizeLinear,
    /// `DQ(x) → Relu / Clip / PRelu [→ Relu / Clip] → Q`, its other operands one-element or
    /// per-channel constants, as a table lookup (one table per channel for a per-channel
    /// PRelu slope) computed like [`Self::pointwise_chain`]'s.
    pub(super) fn elementwise_alone(&self, index: usize, node: &'g Node) -> Result<Candidate, Refusal> {
        let x = self.q_input(node.input(0).unwrap_or_default())?;
        if !self.same_shape_f32(node, &x) {
            return refuse(Reason::Shape, "output is not one f32 tensor of the input's shape");
        }
        for t in node.inputs.iter().skip(1).filter(|t| !t.is_empty()) {
            if self.constant(t).is_none() {
                return refuse(Reason::NonConstantWeight, format!("`{t}` is not a constant"));
            }
            if self.origin(t, &x) != Origin::Constant {
                return refuse(
                    Reason::Shape,
                    format!(
                        "`{t}` is not an f32 constant of one element or varying along one axis \
                         of the input (at most {MAX_CHANNEL_TABLES} elements)"
                    ),
                );
            }
        }
        self.region_lookup(index, &x, &[index], &node.outputs[0])
    }

    /// The table lookup computing the element-wise subgraph `region` (first node `index`) from
    /// the int8 input `x` to its tensor `exit`, quantized by the QuantizeLinear after it.
    fn region_lookup(
        &self,
        index: usize,
        x: &QInput,
        region: &[usize],
        exit: &str,
    ) -> Result<Candidate, Refusal> {
        let out = self.q_output_from(exit)?;
        let storage = match self.producer(&out.tensor) {
            Some(q) if self.node_is_unsigned(q) => Storage::Uint8,
            _ => Storage::Int8,
        };
        let axis = self.channel_axis_of(region, x).ok_or_else(|| Refusal {
            reason: Reason::Shape,
            detail: "per-channel constants vary along different axes".into(),
        })?;
        let channels = axis.map_or(1, |a| x.dims[a]);
        let mut tables = Vec::with_capacity(channels * 256);
        for channel in 0..channels {
            let mut saw_nan = false;
            let table = build_table(x.q, out.q, out.range, storage, |a, b| {
                self.evaluate(region, x, exit, a, b, channel)?;
                saw_nan = b.iter().any(|v| v.is_nan());
                Ok(())
            })
            .map_err(|e| Refusal {
                reason: Reason::QParams,
                detail: e.to_string(),
            })?;
            // A float Relu / Clip of NaN is not the clamp of NaN's quantized value.
            if saw_nan && out.range != OutputRange::FULL {
                return refuse(Reason::QParams, "NaN on some input and a clamp follows");
            }
            tables.extend(table);
        }
        let kernel = match axis {
            None => KernelSpec::Lut(LutSpec {
                input: 0,
                output: 0,
                table: Box::new(tables.try_into().map_err(|_| Refusal {
                    reason: Reason::Shape,
                    detail: "not one table".into(),
                })?),
            }),
            Some(axis) => KernelSpec::ChannelLut(ChannelLutSpec {
                input: 0,
                output: 0,
                axis,
                tables,
            }),
        };
        let mut c = self.candidate(index, vec![x], out, kernel);
        c.nodes.extend(region[1..].iter().copied());
        Ok(c)
    }

    /// The axis of the input along which a constant `f32` initializer varies: `Some(None)`
    /// for one element, `Some(Some(axis))` for a per-channel one (at most
    /// [`MAX_CHANNEL_TABLES`] elements, one axis), `None` for anything else.
    fn constant_axis(&self, t: &str, x: &QInput) -> Option<Option<usize>> {
        let c = self.constant(t).filter(|c| c.dtype() == DType::F32)?;
        if c.numel() == 1 {
            return Some(None);
        }
        if c.numel() > MAX_CHANNEL_TABLES {
            return None;
        }
        broadcast_axis(c.dims(), &x.dims).ok()
    }

    /// The one axis along which the per-channel constants read by `region` vary (`None`
    /// when all are one element); `None` from the outer option when they vary along
    /// different axes.
    fn channel_axis_of(&self, region: &[usize], x: &QInput) -> Option<Option<usize>> {
        let mut axis = None;
        for &i in region {
            for t in &self.graph.nodes[i].inputs {
                if let Some(Some(a)) = self.constant_axis(t, x) {
                    if axis.replace(a).is_some_and(|b| b != a) {
                        return None;
                    }
                }
            }
        }
        Some(axis)
    }

    /// Where input `t` of a subgraph node comes from: a DequantizeLinear of the pattern's
    /// int8 input with its qparams is the input; a one-element or per-channel `f32`
    /// constant ([`Self::constant_axis`]) is a constant; a DequantizeLinear of anything else,
    /// or another constant, is outside.
    fn origin(&self, t: &str, x: &QInput) -> Origin {
        if self.constant(t).is_some() {
            return match self.constant_axis(t, x) {
                Some(_) => Origin::Constant,
                None => Origin::Outside,
            };
        }
        let Some(&p) = self.producer.get(t) else {
            return Origin::Outside;
        };
        if !matches!(self.graph.nodes[p].op, Op::DequantizeLinear(_)) {
            return Origin::Node(p);
        }
        let same = self
            .q_input(t)
            .is_ok_and(|d| d.tensor == x.tensor && d.q == x.q && d.through == x.through);
        if same {
            Origin::Input
        } else {
            Origin::Outside
        }
    }

    /// Whether `node` has one `f32` output of the input's shape.
    fn same_shape_f32(&self, node: &Node, x: &QInput) -> bool {
        let [out] = &node.outputs[..] else {
            return false;
        };
        let f32_out = self.graph.tensor_info(out).is_some_and(|i| i.dtype == DType::F32);
        f32_out && self.dims(out).is_ok_and(|d| d == x.dims)
    }

    /// Runs the subgraph `region` on the dequantized inputs `a` with the interpreter's
    /// operators, each per-channel constant taken at index `channel`, and writes tensor
    /// `exit` to `b`.
    fn evaluate(
        &self,
        region: &[usize],
        x: &QInput,
        exit: &str,
        a: &[f32],
        b: &mut [f32],
        channel: usize,
    ) -> Result<()> {
        let input = Tensor::from_f32(vec![a.len()], a.to_vec())?;
        let mut made: HashMap<&str, Tensor> = HashMap::new();
        // Each per-channel constant's element `channel`, as a one-element tensor.
        let mut picked: HashMap<&str, Tensor> = HashMap::new();
        for &i in region {
            for t in &self.graph.nodes[i].inputs {
                if let (Some(Some(_)), Some(c)) = (self.constant_axis(t, x), self.constant(t)) {
                    let v = c.to_f32_vec()?;
                    let v = *v
                        .get(channel)
                        .ok_or_else(|| Error::Internal(format!("`{t}` has no channel {channel}")))?;
                    picked.insert(t.as_str(), Tensor::scalar_f32(v));
                }
            }
        }
        for &i in region {
            let node = &self.graph.nodes[i];
            let mut operands = Vec::with_capacity(node.inputs.len());
            for t in &node.inputs {
                operands.push(match t.as_str() {
                    "" => None,
                    t => match (self.origin(t, x), self.constant(t)) {
                        (Origin::Input, _) => Some(&input),
                        (Origin::Constant, Some(c)) => Some(picked.get(t).unwrap_or(c)),
                        _ => Some(
                            made.get(t)
                                .ok_or_else(|| Error::Internal(format!("`{t}` is not computed yet")))?,
                        ),
                    },
                });
            }
            let result = eval(&node.op, &operands)?;
            let y = result
                .into_iter()
                .next()
                .ok_or_else(|| Error::Internal(format!("`{}` made no output", node.name)))?;
            made.insert(node.outputs[0].as_str(), y);
        }
        let y = made
            .get(exit)
            .ok_or_else(|| Error::Internal(format!("`{exit}` is not computed")))?
            .as_f32()?;
        if y.len() != b.len() {
            return Err(Error::Internal(format!(
                "{} table values for {} inputs",
                y.len(),
                b.len()
            )));
        }
        b.copy_from_slice(y);
        Ok(())
    }
}
