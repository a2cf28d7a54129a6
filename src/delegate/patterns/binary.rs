//! `DQ(a), DQ(b) → Add / Sub / Mul [→ Relu / Clip] → Q` with broadcasting; one operand may be
//! a small quantized constant (one that broadcasts along at most one axis is
//! [`Matcher::binary_constant`]'s first).

use super::{refuse, Candidate, Matcher, QInput, Reason, Refusal};
use crate::ir::op::BinaryOp;
use crate::ir::{DType, Node, Op};
use crate::program::{BinaryKind, BinarySpec, KernelSpec};

/// Elements of a constant Add / Mul operand taken into a pattern (a scalar or a per-channel
/// vector in practice); larger constants keep the operation in the interpreter.
pub const MAX_CONSTANT_OPERAND: usize = 4096;

impl Matcher<'_> {
    /// The DequantizeLinear node making `t` when it dequantizes a constant int8 tensor with
    /// per-tensor qparams of at most [`MAX_CONSTANT_OPERAND`] elements.
    fn constant_dequantized(&self, t: &str) -> Option<usize> {
        let &i = self.producer.get(t)?;
        let dq = &self.graph.nodes[i];
        let c = self.constant(dq.input(0)?)?;
        (matches!(dq.op, Op::DequantizeLinear(_))
            && matches!(c.dtype(), DType::I8 | DType::U8)
            && c.numel() <= MAX_CONSTANT_OPERAND)
            .then_some(i)
    }

    /// An activation input as [`Self::q_input`], or a small constant behind a
    /// DequantizeLinear (`x + 3` of a decomposed hardswish): then the input is the
    /// DequantizeLinear's `f32` output, which the lowering quantizes back into a value with
    /// the same qparams (exact: the round trip of an int8 value).
    fn q_input_or_constant(&self, t: &str) -> Result<QInput, Refusal> {
        let Some(dq_i) = self.constant_dequantized(t) else {
            return self.q_input(t);
        };
        Ok(QInput {
            tensor: t.to_string(),
            q: self.node_qparams(&self.graph.nodes[dq_i])?,
            dims: self.dims(t)?,
            through: Vec::new(),
        })
    }

    /// `DQ(a), DQ(b) → Add / Sub / Mul [→ Relu / Clip] → Q` as one broadcasting binary step.
    pub(super) fn binary(&self, index: usize, node: &Node, op: BinaryOp) -> Result<Candidate, Refusal> {
        let a = self.q_input_or_constant(&node.inputs[0])?;
        let b = self.q_input_or_constant(&node.inputs[1])?;
        if self.constant_dequantized(&a.tensor).is_some() && self.constant_dequantized(&b.tensor).is_some() {
            return refuse(Reason::Shape, "both operands are constants");
        }
        let out = self.q_output(node)?;
        let out_dims = self.dims(&node.outputs[0])?;
        if let Err(e) = crate::program::broadcast::binary_shape(&a.dims, &b.dims, &out_dims) {
            return refuse(Reason::Shape, e.to_string());
        }
        let kind = match op {
            BinaryOp::Add => BinaryKind::Add,
            BinaryOp::Sub => BinaryKind::Sub,
            BinaryOp::Mul => BinaryKind::Mul,
            other => {
                return refuse(
                    Reason::UnsupportedOp,
                    format!("no int8 kernel for {} of two activations", other.onnx_name()),
                )
            }
        };
        let kernel = KernelSpec::Binary(BinarySpec {
            kind,
            a: 0,
            b: 1,
            output: 0,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&a, &b], out, kernel))
    }
}
