//! Structural validation and topological ordering.

use super::{Graph, Op};
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};

/// Upper bound on the number of nodes of one graph.
pub const MAX_NODES: usize = 1 << 20;

impl Graph {
    /// Checks the graph's structure and sorts its nodes topologically.
    ///
    /// Fails when a tensor is defined twice (by two nodes, or by a node and an input or
    /// initializer), a node reads a tensor nobody defines, a graph output is undefined, the
    /// nodes form a cycle, or a node's input/output count or attributes are invalid.
    pub fn validate(&mut self) -> Result<()> {
        if self.nodes.len() > MAX_NODES {
            return Err(Error::ResourceLimit(format!(
                "graph has {} nodes (limit {MAX_NODES})",
                self.nodes.len()
            )));
        }
        let mut defined: HashMap<&str, String> = HashMap::new();
        for name in self
            .inputs
            .iter()
            .map(|i| i.name.as_str())
            .chain(self.initializers.keys().map(String::as_str))
        {
            if name.is_empty() {
                return Err(Error::InvalidModel(
                    "a graph input or initializer has an empty name".into(),
                ));
            }
            if defined
                .insert(name, "a graph input or initializer".into())
                .is_some()
            {
                return Err(Error::InvalidModel(format!("tensor `{name}` is defined twice")));
            }
        }
        for node in &self.nodes {
            check_node(node)?;
            for out in node.outputs.iter().filter(|o| !o.is_empty()) {
                if let Some(prev) = defined.insert(out.as_str(), format!("node `{}`", node.name)) {
                    return Err(Error::InvalidModel(format!(
                        "tensor `{out}` is defined twice (by {prev} and by node `{}`)",
                        node.name
                    )));
                }
            }
        }
        for node in &self.nodes {
            for input in node.inputs.iter().filter(|i| !i.is_empty()) {
                if !defined.contains_key(input.as_str()) {
                    return Err(Error::InvalidModel(format!(
                        "node `{}` ({}) reads tensor `{input}`, which no node, input or initializer defines",
                        node.name,
                        node.op.onnx_name()
                    )));
                }
            }
        }
        for out in &self.outputs {
            if !defined.contains_key(out.name.as_str()) {
                return Err(Error::InvalidModel(format!(
                    "graph output `{}` is never defined",
                    out.name
                )));
            }
        }
        self.sort_topologically()
    }

    /// Orders nodes so every node follows the producers of its inputs (stable: keeps the
    /// existing order where possible). Fails on a cycle, naming a node on it.
    fn sort_topologically(&mut self) -> Result<()> {
        let producer: HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| {
                n.outputs
                    .iter()
                    .filter(|o| !o.is_empty())
                    .map(move |o| (o.as_str(), i))
            })
            .collect();
        let n = self.nodes.len();
        let mut pending = vec![0usize; n];
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, node) in self.nodes.iter().enumerate() {
            let deps: HashSet<usize> = node
                .inputs
                .iter()
                .filter_map(|t| producer.get(t.as_str()).copied())
                .collect();
            pending[i] = deps.len();
            for d in deps {
                users[d].push(i);
            }
        }
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
            .filter(|&i| pending[i] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut order = Vec::with_capacity(n);
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(i);
            for &u in &users[i] {
                pending[u] -= 1;
                if pending[u] == 0 {
                    ready.push(std::cmp::Reverse(u));
                }
            }
        }
        if order.len() != n {
            let stuck = (0..n)
                .find(|&i| pending[i] > 0)
                .map(|i| self.nodes[i].name.clone());
            return Err(Error::InvalidModel(format!(
                "the graph has a cycle through node `{}`",
                stuck.unwrap_or_default()
            )));
        }
        let mut slots: Vec<Option<super::Node>> =
            std::mem::take(&mut self.nodes).into_iter().map(Some).collect();
        self.nodes = order.into_iter().filter_map(|i| slots[i].take()).collect();
        Ok(())
    }
}

/// Arity and attribute checks that need no shapes.
fn check_node(node: &super::Node) -> Result<()> {
    let op = &node.op;
    let bad = |what: String| {
        Err(Error::InvalidModel(format!(
            "node `{}` ({}): {what}",
            node.name,
            op.onnx_name()
        )))
    };
    let (min_in, max_in) = op.input_arity();
    let n_in = node.inputs.len();
    if n_in < min_in || n_in > max_in {
        return bad(format!("has {n_in} inputs, expected {min_in}..={max_in}"));
    }
    if let Some(i) = (0..min_in).find(|&i| node.inputs[i].is_empty()) {
        return bad(format!("required input {i} is missing"));
    }
    let n_out = node.outputs.iter().filter(|o| !o.is_empty()).count();
    if n_out == 0 || node.outputs.len() > op.output_count() || node.outputs[0].is_empty() {
        return bad(format!(
            "has {} outputs, expected {}",
            node.outputs.len(),
            op.output_count()
        ));
    }
    match op {
        Op::Conv(a) | Op::QLinearConv(a) | Op::ConvInteger(a) if a.group == 0 => bad("group is 0".into()),
        Op::ConvTranspose(a) if a.conv.group == 0 => bad("group is 0".into()),
        Op::Conv(a) | Op::QLinearConv(a) | Op::ConvInteger(a)
            if a.strides.contains(&0) || a.dilations.contains(&0) =>
        {
            bad("strides and dilations must be positive".into())
        }
        Op::MaxPool(p) | Op::AveragePool(p)
            if p.kernel_shape.is_empty() || p.kernel_shape.contains(&0) || p.strides.contains(&0) =>
        {
            bad("kernel_shape must be given and positive, strides positive".into())
        }
        Op::Transpose { perm: Some(perm) } => {
            let mut seen = vec![false; perm.len()];
            for &p in perm {
                if p >= perm.len() || std::mem::replace(&mut seen[p], true) {
                    return bad(format!("perm {perm:?} is not a permutation"));
                }
            }
            Ok(())
        }
        Op::DepthToSpace { blocksize: 0, .. } | Op::SpaceToDepth { blocksize: 0, .. } => {
            bad("blocksize must be at least 1".into())
        }
        Op::QuantizeLinear(q) if q.output_dtype.is_some_and(|d| !d.is_quantized_int()) => {
            bad("output_dtype must be an integer type".into())
        }
        Op::MultiHeadAttention(m) | Op::PackedAttention { mha: m, .. } if m.num_heads == 0 => {
            bad("num_heads must be at least 1".into())
        }
        Op::RotaryEmbedding(r) if r.rotary_embedding_dim % 2 != 0 => {
            bad(format!("rotary_embedding_dim {} is odd", r.rotary_embedding_dim))
        }
        Op::Attention(a) if a.softcap < 0.0 || a.softcap.is_nan() => {
            bad(format!("softcap {} is negative", a.softcap))
        }
        Op::Einsum { equation } => match super::einsum::Equation::parse(equation) {
            Ok(eq) if eq.operands() == n_in => Ok(()),
            Ok(eq) => bad(format!("the equation names {} operands", eq.operands())),
            Err(e) => bad(e.to_string()),
        },
        _ => Ok(()),
    }
}
