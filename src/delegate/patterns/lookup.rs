//! Graph look-ups every pattern uses: producers, readers, constants and inferred shapes.

use super::{Matcher, Reason, Refusal};
use crate::ir::{Node, Tensor};

impl<'g> Matcher<'g> {
    /// The node producing `tensor`.
    pub fn producer(&self, tensor: &str) -> Option<&'g Node> {
        self.producer.get(tensor).map(|&i| &self.graph.nodes[i])
    }

    /// The indices of nodes reading `tensor`.
    pub fn consumers(&self, tensor: &str) -> &[usize] {
        self.consumers.get(tensor).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The initializer named `name`.
    pub(super) fn constant(&self, name: &str) -> Option<&'g Tensor> {
        self.graph.initializers.get(name)
    }

    /// The only node reading `t`, when exactly one does and `t` is no graph output.
    pub(super) fn only_reader(&self, t: &str) -> Option<usize> {
        match self.consumers(t) {
            [one] if !self.graph.is_output(t) => Some(*one),
            _ => None,
        }
    }

    /// The constant `t` as `f32` values.
    pub(super) fn const_f32(&self, t: &str) -> Option<Vec<f32>> {
        self.constant(t).and_then(|c| c.to_f32_vec().ok())
    }

    /// The concrete inferred shape of `tensor` (refused when it is not known).
    pub(super) fn dims(&self, tensor: &str) -> Result<Vec<usize>, Refusal> {
        self.graph
            .tensor_info(tensor)
            .and_then(|i| i.concrete_shape())
            .ok_or_else(|| Refusal {
                reason: Reason::Shape,
                detail: format!("shape of `{tensor}` is not known (fix the input shapes)"),
            })
    }
}
