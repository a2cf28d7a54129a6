//! Element-wise units: a subgraph of element-wise `f32` operators from one tensor to one tensor
//! (SiLU written `x * Sigmoid(x)`, `x * HardSigmoid(x)`, hardswish and GELU written out, ...,
//! see [`crate::ir::elementwise_region`]) is quantized as one unit, at its input and its output
//! and nowhere in between, so that the delegate runs it as one table lookup and its float
//! intermediates keep their precision.

use crate::ir::elementwise_region::{find, Origin};
use crate::ir::{DType, Graph};
use std::collections::HashMap;

/// A unit of element-wise operators.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    /// The one tensor its nodes read besides one-element constants.
    pub input: String,
    /// The one tensor of the unit read from outside it (or a graph output).
    pub output: String,
    /// Its nodes, in graph order (the first is where it was found).
    pub nodes: Vec<usize>,
}

/// The unit whose first node in graph order is `start` ([`find`]), its input the first
/// non-constant input of `start`, every node's output `f32` and of the input's shape where
/// both are known. `None` when there is none.
pub fn unit_at(
    graph: &Graph,
    producer: &HashMap<&str, usize>,
    consumers: &HashMap<&str, Vec<usize>>,
    start: usize,
) -> Option<Unit> {
    let input = graph.nodes[start]
        .inputs
        .iter()
        .find(|t| !t.is_empty() && !graph.initializers.contains_key(t.as_str()))?;
    let input_shape = graph.tensor_info(input).and_then(|i| i.shape);
    let origin = |t: &str| {
        if t == input {
            return Origin::Input;
        }
        if let Some(c) = graph.initializers.get(t) {
            let one = c.numel() == 1 && c.dtype() == DType::F32;
            return if one { Origin::Constant } else { Origin::Outside };
        }
        producer.get(t).map_or(Origin::Outside, |&p| Origin::Node(p))
    };
    let accept = |i: usize| {
        let Some(info) = graph.tensor_info(&graph.nodes[i].outputs[0]) else {
            return true;
        };
        let same_shape = match (&info.shape, &input_shape) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        info.dtype == DType::F32 && same_shape
    };
    let region = find(graph, consumers, start, origin, accept)?;
    Some(Unit {
        input: input.clone(),
        output: region.exit,
        nodes: region.nodes,
    })
}
