//! `DQ → Softmax [→ Relu / Clip] → Q` along one axis (any rank; a rank-4 value is stored
//! NHWC and the step follows its logical axis through that layout).

use super::{refuse, Candidate, Matcher, Reason, Refusal};
use crate::ir::Node;
use crate::program::{KernelSpec, SoftmaxSpec};

impl Matcher<'_> {
    /// `DQ(x) → Softmax(axis) → Q` as one softmax step. Opset 13 normalises along `axis`;
    /// an opset < 13 Softmax (`coerce_2d`) normalises over all axes from `axis` on, which is
    /// one axis only when every later dimension is 1 (for example `axis = rank - 1`).
    pub(super) fn softmax(
        &self,
        index: usize,
        node: &Node,
        axis: i64,
        coerce_2d: bool,
    ) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        let rank = x.dims.len();
        let ax = if axis < 0 { axis + rank as i64 } else { axis };
        if !(0..rank as i64).contains(&ax) {
            return refuse(
                Reason::Shape,
                format!("softmax axis {axis} of a rank-{rank} input"),
            );
        }
        let ax = ax as usize;
        if coerce_2d && x.dims[ax + 1..].iter().any(|&d| d != 1) {
            return refuse(
                Reason::Shape,
                format!(
                    "opset < 13 softmax over axes {ax}.. of shape {:?} (several axes; int8 only \
                     along one: axis = rank - 1, or opset 13)",
                    x.dims
                ),
            );
        }
        if x.dims.contains(&0) {
            return refuse(Reason::Shape, "softmax of an empty tensor");
        }
        let out = self.q_output(node)?;
        if self.dims(&node.outputs[0])? != x.dims {
            return refuse(Reason::Shape, "output shape differs from the input's");
        }
        let kernel = KernelSpec::Softmax(SoftmaxSpec {
            input: 0,
            output: 0,
            axis: ax,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }
}
