//! `DQ(x) → Add / Sub / Mul / Div / PRelu with a constant [→ Relu / Clip] → Q` (a PRelu's
//! constant is its slope), the constant a plain
//! `f32` initializer or a DequantizeLinear of constant inputs, on either side: as table
//! lookups computed by the interpreter's own `f32` operator, so the step equals the
//! interpreted QDQ graph bit for bit.
//!
//! - A one-element constant (`x * 0.5`, `x + 3`, `x / 6`): one 256-entry table
//!   ([`LutSpec`]).
//! - A constant that varies along one axis of the output and is 1 on the others (a
//!   per-channel `[1, C, 1, 1]` or `[C, 1, 1]`, as in `(x - mean) / std`): one table per
//!   index along that axis ([`ChannelLutSpec`]).
//!
//! The input and output have the same shape (the constant does not broadcast the input).

use super::{refuse, Candidate, Matcher, QInput, Reason, Refusal};
use crate::interp::kernels::eval;
use crate::ir::op::BinaryOp;
use crate::ir::shapes::broadcast_axis;
use crate::ir::{DType, Node, Op, Tensor};
use crate::kernels::elementwise::Storage;
use crate::kernels::lut::build_table;
use crate::kernels::OutputRange;
use crate::program::steps::channel_lut::ChannelLutSpec;
use crate::program::steps::lut::LutSpec;
use crate::program::KernelSpec;
use std::borrow::Cow;

/// Largest number of per-channel tables taken (256 bytes each).
pub const MAX_CHANNEL_TABLES: usize = 4096;

impl<'g> Matcher<'g> {
    /// The value of `t` when it is a constant: an initializer, or the output of a
    /// DequantizeLinear whose inputs are all initializers, the quantized one of at most
    /// [`MAX_CHANNEL_TABLES`] elements (evaluated by the interpreter).
    fn constant_value(&self, t: &str) -> Option<Cow<'g, Tensor>> {
        if let Some(c) = self.constant(t) {
            return Some(Cow::Borrowed(c));
        }
        let dq = self.producer(t)?;
        if !matches!(dq.op, Op::DequantizeLinear(_)) || dq.outputs.len() != 1 {
            return None;
        }
        if self.constant(dq.input(0)?)?.numel() > MAX_CHANNEL_TABLES {
            return None;
        }
        let inputs: Option<Vec<Option<&Tensor>>> = dq
            .inputs
            .iter()
            .map(|i| {
                if i.is_empty() {
                    Some(None)
                } else {
                    self.constant(i).map(Some)
                }
            })
            .collect();
        let out = eval(&dq.op, &inputs?).ok()?;
        out.into_iter().next().map(Cow::Owned)
    }

    /// Whether exactly one operand of the binary `node` is a constant ([`Self::constant_value`]).
    pub(super) fn has_one_constant_operand(&self, node: &Node) -> bool {
        let constants = node
            .inputs
            .iter()
            .filter(|t| self.constant_value(t).is_some())
            .count();
        node.inputs.len() == 2 && constants == 1
    }

    /// `DQ(x) op c [→ Relu / Clip] → Q` (or `c op DQ(x)`) as one table, or one table per
    /// channel (module docs). The caller checked [`Self::has_one_constant_operand`].
    pub(super) fn binary_constant(
        &self,
        index: usize,
        node: &Node,
        op: BinaryOp,
    ) -> Result<Candidate, Refusal> {
        let constant_first = self.constant_value(&node.inputs[0]).is_some();
        let (xt, ct) = if constant_first {
            (&node.inputs[1], &node.inputs[0])
        } else {
            (&node.inputs[0], &node.inputs[1])
        };
        let c = self.constant_value(ct).ok_or_else(|| Refusal {
            reason: Reason::Shape,
            detail: format!("`{ct}` is not a constant"),
        })?;
        if c.dtype() != DType::F32 {
            return refuse(
                Reason::Dtype,
                format!("constant `{ct}` is {} (f32 only)", c.dtype()),
            );
        }
        let x = self.q_input(xt)?;
        let out = self.q_output(node)?;
        if self.dims(&node.outputs[0])? != x.dims {
            return refuse(
                Reason::Shape,
                format!(
                    "the constant `{ct}` of shape {:?} broadcasts the input to a larger shape",
                    c.dims()
                ),
            );
        }
        let storage = match self.producer(&out.tensor) {
            Some(q) if self.node_is_unsigned(q) => Storage::Uint8,
            _ => Storage::Int8,
        };
        let values = c.to_f32_vec().map_err(|e| Refusal {
            reason: Reason::Dtype,
            detail: e.to_string(),
        })?;
        let axis = broadcast_axis(c.dims(), &x.dims).map_err(|e| Refusal {
            reason: Reason::Shape,
            detail: format!("constant `{ct}`: {e}"),
        })?;
        if values.len() > MAX_CHANNEL_TABLES {
            return refuse(
                Reason::Shape,
                format!(
                    "constant `{ct}` has {} elements (at most {MAX_CHANNEL_TABLES} tables)",
                    values.len()
                ),
            );
        }
        let mut tables = Vec::with_capacity(values.len() * 256);
        for (channel, &v) in values.iter().enumerate() {
            let table = self.constant_table(node, op, &x, &out, storage, constant_first, v)?;
            if table.is_none() {
                return refuse(
                    Reason::QParams,
                    format!(
                        "{} by `{ct}`[{channel}] is NaN on some input and a clamp follows",
                        op.onnx_name()
                    ),
                );
            }
            tables.extend(table.into_iter().flatten());
        }
        let kernel = match axis {
            None => KernelSpec::Lut(LutSpec {
                input: 0,
                output: 0,
                table: Box::new(tables.try_into().map_err(|_| Refusal {
                    reason: Reason::Shape,
                    detail: "one table of 256 entries expected".into(),
                })?),
            }),
            Some(axis) => KernelSpec::ChannelLut(ChannelLutSpec {
                input: 0,
                output: 0,
                axis,
                tables,
            }),
        };
        Ok(self.candidate(index, vec![&x], out, kernel))
    }

    /// The table of `x op v` (or `v op x`) computed by the interpreter's operator on the 256
    /// dequantized input bytes; `None` when a value is NaN and a clamp follows (a float
    /// Relu / Clip of NaN is not the clamp of NaN's quantized value).
    #[allow(clippy::too_many_arguments)]
    fn constant_table(
        &self,
        node: &Node,
        op: BinaryOp,
        x: &QInput,
        out: &super::QOutput,
        storage: Storage,
        constant_first: bool,
        v: f32,
    ) -> Result<Option<[i8; 256]>, Refusal> {
        let mut saw_nan = false;
        let table = build_table(x.q, out.q, out.range, storage, |a, b| {
            let xs = Tensor::from_f32(vec![a.len()], a.to_vec())?;
            let cs = Tensor::scalar_f32(v);
            let operands = if constant_first {
                [Some(&cs), Some(&xs)]
            } else {
                [Some(&xs), Some(&cs)]
            };
            let y = eval(&node.op, &operands)?;
            let y = y
                .first()
                .ok_or_else(|| crate::Error::Internal(format!("{} made no output", op.onnx_name())))?
                .as_f32()?;
            if y.len() != b.len() {
                return Err(crate::Error::Internal(format!(
                    "{} values for {} inputs",
                    y.len(),
                    b.len()
                )));
            }
            b.copy_from_slice(y);
            saw_nan = b.iter().any(|v| v.is_nan());
            Ok(())
        })
        .map_err(|e| Refusal {
            reason: Reason::QParams,
            detail: e.to_string(),
        })?;
        Ok((!saw_nan || out.range == OutputRange::FULL).then_some(table))
    }
}
