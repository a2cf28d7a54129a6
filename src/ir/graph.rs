//! The graph: nodes connected by named tensors, constants, inputs and outputs.

use super::{DType, Op, Tensor};
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};

/// One axis of a tensor shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A known size.
    Known(usize),
    /// A size named by the model (e.g. "batch") and fixed later.
    Symbolic(String),
}

/// The declared or inferred type of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name (unique in the graph).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape, or `None` when even the rank is unknown.
    pub shape: Option<Vec<Dim>>,
}

impl TensorInfo {
    /// Checks a runtime tensor against this declaration: element type, rank and every known
    /// dim (symbolic dims accept any size).
    pub fn check_tensor(&self, t: &Tensor) -> Result<()> {
        if t.dtype() != self.dtype {
            return Err(Error::DtypeMismatch(format!(
                "input `{}` must be {}, got {}",
                self.name,
                self.dtype,
                t.dtype()
            )));
        }
        if let Some(shape) = &self.shape {
            let ok = shape.len() == t.dims().len()
                && shape
                    .iter()
                    .zip(t.dims())
                    .all(|(d, &n)| !matches!(d, Dim::Known(k) if *k != n));
            if !ok {
                let expected: Vec<String> = shape.iter().map(Dim::to_string).collect();
                return Err(Error::ShapeMismatch(format!(
                    "input `{}` has shape {:?}, expected [{}]",
                    self.name,
                    t.dims(),
                    expected.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// A tensor info with a fully known shape.
    pub fn known(name: impl Into<String>, dtype: DType, dims: &[usize]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            dtype,
            shape: Some(dims.iter().map(|&d| Dim::Known(d)).collect()),
        }
    }

    /// The shape as concrete sizes, if every axis is known.
    pub fn concrete_shape(&self) -> Option<Vec<usize>> {
        self.shape
            .as_ref()?
            .iter()
            .map(|d| match d {
                Dim::Known(n) => Some(*n),
                Dim::Symbolic(_) => None,
            })
            .collect()
    }
}

/// One operator application.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Node name (unique when non-empty; used in messages and scoped quantizer overrides).
    pub name: String,
    /// The operator and its attributes.
    pub op: Op,
    /// Input tensor names; "" marks an absent optional input.
    pub inputs: Vec<String>,
    /// Output tensor names.
    pub outputs: Vec<String>,
}

impl Node {
    /// The input name at `index` if present and non-empty.
    pub fn input(&self, index: usize) -> Option<&str> {
        self.inputs
            .get(index)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// A dataflow graph. After [`Graph::validate`] succeeds the nodes are in topological order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// Graph name.
    pub name: String,
    /// Runtime inputs (initializers are not listed here).
    pub inputs: Vec<TensorInfo>,
    /// Outputs.
    pub outputs: Vec<TensorInfo>,
    /// Constant tensors by name.
    pub initializers: BTreeMap<String, Tensor>,
    /// Nodes (topologically sorted once validated).
    pub nodes: Vec<Node>,
    /// Known types of intermediate tensors (filled by shape inference).
    pub value_info: HashMap<String, TensorInfo>,
}

impl Graph {
    /// The index of the node producing `tensor`, if any.
    pub fn producer(&self, tensor: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.outputs.iter().any(|o| o == tensor))
    }

    /// Indices of the nodes that read `tensor`, in node order.
    pub fn consumers(&self, tensor: &str) -> Vec<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.inputs.iter().any(|i| i == tensor))
            .map(|(i, _)| i)
            .collect()
    }

    /// Maps each tensor to the nodes consuming it (for passes that query many tensors).
    pub fn consumer_map(&self) -> HashMap<&str, Vec<usize>> {
        let mut map: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for input in n.inputs.iter().filter(|s| !s.is_empty()) {
                map.entry(input.as_str()).or_default().push(i);
            }
        }
        map
    }

    /// True if `tensor` is a graph output.
    pub fn is_output(&self, tensor: &str) -> bool {
        self.outputs.iter().any(|o| o.name == tensor)
    }

    /// The known type of a tensor: a graph input or output, an initializer, or an inferred value.
    pub fn tensor_info(&self, tensor: &str) -> Option<TensorInfo> {
        if let Some(t) = self.initializers.get(tensor) {
            return Some(TensorInfo::known(tensor, t.dtype(), t.dims()));
        }
        self.inputs
            .iter()
            .chain(self.outputs.iter())
            .find(|i| i.name == tensor)
            .cloned()
            .or_else(|| self.value_info.get(tensor).cloned())
    }

    /// A tensor name not used by the graph, derived from `base`.
    pub fn fresh_name(&self, base: &str) -> String {
        let used = |n: &str| {
            self.initializers.contains_key(n)
                || self.inputs.iter().any(|i| i.name == n)
                || self
                    .nodes
                    .iter()
                    .any(|node| node.outputs.iter().any(|o| o == n) || node.name == n)
        };
        if !used(base) {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| !used(n))
            .unwrap_or_default()
    }

    /// Inserts `node` at `index` (the caller re-validates to restore topological order).
    pub fn insert_node(&mut self, index: usize, node: Node) {
        let index = index.min(self.nodes.len());
        self.nodes.insert(index, node);
    }

    /// The index of the node named `name`.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Replaces the node at `index` by `node`, returning the old one (the caller
    /// re-validates).
    pub fn replace_node(&mut self, index: usize, node: Node) -> Option<Node> {
        let slot = self.nodes.get_mut(index)?;
        Some(std::mem::replace(slot, node))
    }

    /// Removes a single-input, single-output pass-through node (e.g. an observer or a Q/DQ
    /// pair's half) and makes its readers read its input instead.
    pub fn bypass_node(&mut self, index: usize) -> Option<Node> {
        let node = self.nodes.get(index)?;
        let (src, dst) = (node.input(0)?.to_string(), node.outputs.first()?.clone());
        if self.is_output(&dst) {
            return None;
        }
        let node = self.nodes.remove(index);
        self.replace_uses(&dst, &src);
        Some(node)
    }

    /// Replaces every use of tensor `old` as a node input or graph output by `new`.
    pub fn replace_uses(&mut self, old: &str, new: &str) {
        for n in &mut self.nodes {
            for i in n.inputs.iter_mut().filter(|i| *i == old) {
                *i = new.to_string();
            }
        }
        for o in self.outputs.iter_mut().filter(|o| o.name == old) {
            o.name = new.to_string();
        }
    }

    /// Like [`Graph::replace_uses`], but leaves the inputs of the nodes named in `keep`
    /// alone: inserting `t → Q → DQ → t_dq` is `replace_uses_except("t", "t_dq", &["Q"])`.
    pub fn replace_uses_except(&mut self, old: &str, new: &str, keep: &[&str]) {
        for n in self.nodes.iter_mut().filter(|n| !keep.contains(&n.name.as_str())) {
            for i in n.inputs.iter_mut().filter(|i| *i == old) {
                *i = new.to_string();
            }
        }
        for o in self.outputs.iter_mut().filter(|o| o.name == old) {
            o.name = new.to_string();
        }
    }

    /// Removes nodes whose outputs are unused and initializers nobody reads.
    pub fn remove_dead(&mut self) {
        loop {
            let live: std::collections::HashSet<String> = self
                .nodes
                .iter()
                .flat_map(|n| n.inputs.iter().cloned())
                .chain(self.outputs.iter().map(|o| o.name.clone()))
                .collect();
            let before = self.nodes.len();
            self.nodes.retain(|n| n.outputs.iter().any(|o| live.contains(o)));
            if self.nodes.len() == before {
                self.initializers.retain(|k, _| live.contains(k));
                self.value_info.retain(|k, _| live.contains(k));
                return;
            }
        }
    }
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => f.write_str(s),
        }
    }
}

impl std::fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.dtype)?;
        match &self.shape {
            Some(dims) => {
                let dims: Vec<String> = dims.iter().map(Dim::to_string).collect();
                write!(f, "[{}]", dims.join(", "))
            }
            None => f.write_str("[?]"),
        }
    }
}

/// One line per input, output and node (`name = Op(inputs) -> outputs`), for logs and
/// reports.
impl std::fmt::Display for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "graph `{}`: {} nodes, {} constants",
            self.name,
            self.nodes.len(),
            self.initializers.len()
        )?;
        for i in &self.inputs {
            writeln!(f, "  input  {i}")?;
        }
        for n in &self.nodes {
            let shown = |names: &[String]| {
                names
                    .iter()
                    .map(|s| if s.is_empty() { "-" } else { s })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            writeln!(
                f,
                "  {} = {}({}) -> {}",
                n.name,
                n.op.onnx_name(),
                shown(&n.inputs),
                shown(&n.outputs)
            )?;
        }
        for o in &self.outputs {
            writeln!(f, "  output {o}")?;
        }
        Ok(())
    }
}
