//! Element-wise unary operators as table lookups: `DQ → op [→ Relu / Clip] → Q` with
//! per-tensor int8 / uint8 input and output becomes one [`LutSpec`] whose 256 entries are the
//! interpreter's own dequantize → [`pointwise::map`] → quantize of every input byte, so the
//! step equals the interpreted graph bit for bit. Adding an operator whose `f32` definition
//! is in [`pointwise`] is one line in [`LUT_OPS`].

use super::{refuse, Candidate, Matcher, Reason, Refusal};
use crate::ir::{pointwise, Node, Op};
use crate::kernels::elementwise::Storage;
use crate::kernels::lut::build_table;
use crate::kernels::OutputRange;
use crate::program::steps::lut::LutSpec;
use crate::program::KernelSpec;

/// The ONNX operators lowered to a table lookup (each one [`pointwise::is_pointwise`]).
pub const LUT_OPS: &[&str] = &[
    "HardSwish",
    "Sigmoid",
    "HardSigmoid",
    "Tanh",
    "LeakyRelu",
    "Elu",
    "Celu",
    "Selu",
    "Softplus",
    "Softsign",
    "Mish",
    "Gelu",
    "Erf",
    "Exp",
];

/// Whether `op` is lowered by [`Matcher::lut`].
pub(super) fn is_lut_op(op: &Op) -> bool {
    LUT_OPS.contains(&op.onnx_name()) && pointwise::is_pointwise(op)
}

impl Matcher<'_> {
    /// `DQ(x) → op [→ Relu / Clip] → Q` as one table lookup.
    pub(super) fn lut(&self, index: usize, node: &Node) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        let out = self.q_output(node)?;
        if self.dims(&node.outputs[0])? != x.dims {
            return refuse(Reason::Shape, "output shape differs from the input's");
        }
        let storage = match self.producer(&out.tensor) {
            Some(q) if self.node_is_unsigned(q) => Storage::Uint8,
            _ => Storage::Int8,
        };
        let mut saw_nan = false;
        let table = build_table(x.q, out.q, out.range, storage, |a, b| {
            pointwise::map(&node.op, a, b)?;
            saw_nan = b.iter().any(|v| v.is_nan());
            Ok(())
        })
        .map_err(|e| Refusal {
            reason: Reason::QParams,
            detail: e.to_string(),
        })?;
        // A float Relu / Clip of NaN is not the clamp of NaN's quantized value.
        if saw_nan && out.range != OutputRange::FULL {
            return refuse(
                Reason::QParams,
                format!("{} is NaN on some input and a clamp follows", node.op.onnx_name()),
            );
        }
        let kernel = KernelSpec::Lut(LutSpec {
            input: 0,
            output: 0,
            table: Box::new(table),
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }
}
