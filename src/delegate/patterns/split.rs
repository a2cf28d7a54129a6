//! Split: `DQ(x) → Split → Q` on every output becomes one move per output (the output's
//! slice of the input, [`gather_map::slice`], requantized by a table where the output's
//! qparams differ from the input's, as PyTorch's quantizer leaves them); the part
//! sizes are the `split` input (or the opset 2–12 attribute, which the importer turns into
//! it) or equal parts, as the IR's shape rules ([`split_sizes`]) cut them. A float pure view
//! between the `DQ` and the Split (PyTorch's export of a channel shuffle) is taken along.

use super::{refuse, Candidate, Matcher, Reason, Refusal};
use crate::delegate::gather_map;
use crate::ir::infer::split_sizes;
use crate::ir::shapes::norm_axis;
use crate::ir::Node;

impl Matcher<'_> {
    /// `DQ(x) → Split → Q, Q, ...` as moves, one per output.
    pub(super) fn split(&self, index: usize, node: &Node, axis: i64) -> Result<Candidate, Refusal> {
        let x = self.q_input_through_view(&node.inputs[0])?;
        let attribute = |e: crate::Error| Refusal {
            reason: Reason::Attribute,
            detail: e.to_string(),
        };
        let axis = norm_axis(axis, x.dims.len()).map_err(attribute)?;
        if x.dims.iter().product::<usize>() >= 1 << 24 {
            return refuse(Reason::Shape, "too many elements for an index map");
        }
        let split = match node.input(1).filter(|n| !n.is_empty()) {
            None => None,
            Some(name) => match self.constant(name) {
                Some(t) => Some(t.to_i64_vec().map_err(attribute)?),
                None => return refuse(Reason::NonConstantWeight, format!("`{name}` is not a constant")),
            },
        };
        let sizes = split_sizes(x.dims[axis], node.outputs.len(), split.as_deref()).map_err(attribute)?;
        let mut nodes = vec![index];
        nodes.extend(x.through.iter().copied());
        let mut outputs = Vec::new();
        let mut start = 0usize;
        for (t, &len) in node.outputs.iter().zip(&sizes) {
            let out = self.q_output_from(t)?;
            let (dims, map) = gather_map::slice(
                &x.dims,
                &[start as i64],
                &[(start + len) as i64],
                Some(&[axis as i64]),
                None,
            )
            .map_err(attribute)?;
            if dims != self.dims(t)? || dims.contains(&0) {
                return refuse(Reason::Shape, "Split part shape differs from the inferred shape");
            }
            start += len;
            let kernel = self.drafted_move(&x, &out, map, x.q.zero_point as i8)?;
            nodes.extend(out.nodes);
            outputs.push((out.tensor, kernel));
        }
        let mut outputs = outputs.into_iter();
        let Some((output, kernel)) = outputs.next() else {
            return refuse(Reason::Shape, "Split without outputs");
        };
        Ok(Candidate {
            nodes,
            inputs: vec![x.tensor],
            output,
            kernel,
            more: outputs.collect(),
        })
    }
}
