//! Element-wise regions: a subgraph of element-wise `f32` operators
//! ([`pointwise::is_elementwise_arithmetic`]) that computes one tensor from one input tensor
//! and one-element constants, read from outside at exactly one tensor (SiLU written
//! `x * Sigmoid(x)`, hardswish and GELU written out, ...). Such a region is one function of
//! one value per element: the quantizer quantizes it as one unit and the delegate runs it as
//! one table lookup.

use super::op::UnaryOp;
use super::{pointwise, Graph, Op};
use std::collections::{BTreeSet, HashMap};

/// Largest region taken (a written-out tanh GELU has 8 nodes).
pub const MAX_REGION_NODES: usize = 24;

/// Where a tensor read by a region node comes from, as the caller classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The region's input.
    Input,
    /// A one-element constant.
    Constant,
    /// The output of node `.0`, which may join the region.
    Node(usize),
    /// Anything else: a node reading it cannot join the region.
    Outside,
}

/// A region found by [`find`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// Its nodes in graph order; the first is the one it was found from.
    pub nodes: Vec<usize>,
    /// The one tensor it makes that is read from outside it or is a graph output.
    pub exit: String,
}

/// The region whose first node in graph order is `start`: `start` and the element-wise
/// readers of its tensors (with the element-wise producers they need) whose every input is
/// the input, a constant or a tensor of the region (per `origin`), each node with one output
/// and accepted by `accept` (shape and type checks); readers that cannot join are outside.
/// `None` unless it has at least two operators besides Relu / Clip (one operator alone has
/// its own pattern) and exactly one tensor read from outside, and stays within
/// [`MAX_REGION_NODES`].
pub fn find(
    graph: &Graph,
    consumers: &HashMap<&str, Vec<usize>>,
    start: usize,
    origin: impl Fn(&str) -> Origin,
    accept: impl Fn(usize) -> bool,
) -> Option<Region> {
    let joins = |i: usize| {
        let n = &graph.nodes[i];
        pointwise::is_elementwise_arithmetic(&n.op) && n.outputs.len() == 1 && accept(i)
    };
    // Adds to `more` node `i` and the producers it needs beyond `region`; false when one of
    // them cannot join.
    fn needs(
        i: usize,
        region: &BTreeSet<usize>,
        more: &mut BTreeSet<usize>,
        graph: &Graph,
        origin: &dyn Fn(&str) -> Origin,
        joins: &dyn Fn(usize) -> bool,
    ) -> bool {
        if !joins(i) || region.len() + more.len() >= MAX_REGION_NODES {
            return false;
        }
        more.insert(i);
        graph.nodes[i]
            .inputs
            .iter()
            .filter(|t| !t.is_empty())
            .all(|t| match origin(t) {
                Origin::Input | Origin::Constant => true,
                Origin::Outside => false,
                Origin::Node(p) => {
                    region.contains(&p) || more.contains(&p) || needs(p, region, more, graph, origin, joins)
                }
            })
    }
    let mut region = BTreeSet::new();
    let mut first = BTreeSet::new();
    if !needs(start, &region, &mut first, graph, &origin, &joins) {
        return None;
    }
    region.append(&mut first);
    let mut grew = true;
    while grew {
        grew = false;
        let members: Vec<usize> = region.iter().copied().collect();
        for i in members {
            for &r in consumers
                .get(graph.nodes[i].outputs[0].as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                let mut more = BTreeSet::new();
                if !region.contains(&r) && needs(r, &region, &mut more, graph, &origin, &joins) {
                    region.append(&mut more);
                    grew = true;
                }
            }
        }
    }
    let nodes: Vec<usize> = region.into_iter().collect();
    let computing = nodes
        .iter()
        .filter(|&&i| !matches!(graph.nodes[i].op, Op::Clip | Op::Unary(UnaryOp::Relu)))
        .count();
    if nodes[0] != start || computing < 2 {
        return None;
    }
    let mut exit = None;
    for &i in &nodes {
        let o = &graph.nodes[i].outputs[0];
        let read_outside = graph.is_output(o)
            || consumers
                .get(o.as_str())
                .is_some_and(|rs| rs.iter().any(|r| nodes.binary_search(r).is_err()));
        if read_outside && exit.replace(o.clone()).is_some() {
            return None;
        }
    }
    Some(Region { nodes, exit: exit? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::op::BinaryOp;
    use crate::ir::{DType, Node, TensorInfo};

    fn node(op: Op, inputs: &[&str], output: &str) -> Node {
        Node {
            name: output.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.into()],
        }
    }

    /// `x → Sigmoid → s`, `Mul(x, s) → y`, then `Mul(y, z) → w` with `z` another input.
    fn graph(outputs: &[&str]) -> Graph {
        let mut g = Graph {
            inputs: vec![
                TensorInfo::known("x", DType::F32, &[2, 3]),
                TensorInfo::known("z", DType::F32, &[2, 3]),
            ],
            outputs: outputs
                .iter()
                .map(|o| TensorInfo {
                    name: o.to_string(),
                    dtype: DType::F32,
                    shape: None,
                })
                .collect(),
            ..Graph::default()
        };
        g.nodes = vec![
            node(Op::Unary(UnaryOp::Sigmoid), &["x"], "s"),
            node(Op::Binary(BinaryOp::Mul), &["x", "s"], "y"),
            node(Op::Binary(BinaryOp::Mul), &["y", "z"], "w"),
        ];
        g
    }

    fn origin(t: &str) -> Origin {
        match t {
            "x" => Origin::Input,
            "s" => Origin::Node(0),
            "y" => Origin::Node(1),
            _ => Origin::Outside,
        }
    }

    #[test]
    fn a_reader_of_an_outside_tensor_stays_outside_and_every_exit_counts() {
        let g = graph(&["w"]);
        let consumers = g.consumer_map();
        let region = find(&g, &consumers, 0, origin, |_| true).unwrap();
        assert_eq!(
            region,
            Region {
                nodes: vec![0, 1],
                exit: "y".into()
            }
        );
        // Not from its first node; and not when the gate is read from outside too.
        assert_eq!(find(&g, &consumers, 1, origin, |_| true), None);
        let g = graph(&["w", "s"]);
        assert_eq!(find(&g, &g.consumer_map(), 0, origin, |_| true), None);
        // A node the caller refuses ends the region short of two operators.
        assert_eq!(find(&g, &consumers, 0, origin, |i| i == 0), None);
    }
}
