//! `DQ… → Concat → Q` (4-D tensors along channels only).

use super::{refuse, Candidate, Matcher, Reason, Refusal};
use crate::ir::Node;
use crate::program::{ConcatSpec, KernelSpec};

impl Matcher<'_> {
    /// `DQ… → Concat → Q` as one concatenation.
    pub(super) fn concat(&self, index: usize, node: &Node, axis: i64) -> Result<Candidate, Refusal> {
        let inputs = node
            .inputs
            .iter()
            .map(|t| self.q_input(t))
            .collect::<Result<Vec<_>, _>>()?;
        let rank = inputs[0].dims.len() as i64;
        let axis = if axis < 0 { axis + rank } else { axis };
        if rank == 4 && axis != 1 {
            return refuse(Reason::Shape, "4-D concat along another axis than channels");
        }
        let out = self.q_output(node)?;
        let kernel = KernelSpec::Concat(ConcatSpec {
            inputs: (0..inputs.len()).collect(),
            output: 0,
            axis: axis as usize,
        });
        Ok(self.candidate(index, inputs.iter().collect(), out, kernel))
    }
}
