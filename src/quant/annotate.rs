//! Annotation: which tensors of a float graph get quantized and how, following PT2E's
//! `XNNPACKQuantizer` patterns (plus MatMul of two activations, Sub like Add, Div by a
//! one-element or per-channel constant (input and output observed), PRelu with such a constant
//! slope (the same), and the element-wise
//! activations the delegate runs as tables: hardswish, hardsigmoid, sigmoid, tanh, LeakyRelu,
//! ELU / CELU / SELU, softplus, softsign, mish, GELU; and element-wise units such as
//! `x * sigmoid(x)` (SiLU), `x * hardsigmoid(x)` or hardswish and GELU written out, quantized
//! at their input and output only, see [`super::pointwise_unit`]). Sigmoid, HardSigmoid and
//! Tanh outputs (and Softmax's, annotated the same way) get PyTorch's fixed parameters (`_FIXED_QPARAMS_OP_TO_OBSERVER`: scale 1/256
//! and the range's bottom as zero point for [0, 1]; scale 2/256 and zero point 0 for [-1, 1],
//! int8), not observed ones.
//!
//! The result is tensor-based: every quantized activation tensor belongs to one *sharing
//! group* (PT2E's `SharedQuantizationSpec`: one observer per group), every quantized weight
//! is an initializer read by one node input, and dynamic activations are individual node
//! input edges. Nodes are visited in topological order, so an op that shares its input's
//! parameters (pooling, data movement) is quantized only when its input already is.

use super::config::{ActivationMode, QuantConfig, QuantScopes, WeightGranularity};
use super::pointwise_unit::unit_at;
use super::qparams::QParams;
use crate::ir::op::{BinaryOp, ReduceKind, ResizeMode, UnaryOp};
use crate::ir::{DType, Graph, Node, Op};
use crate::qscheme::QScheme;
use std::collections::{HashMap, HashSet};

/// How one weight initializer feeding one node input is quantized.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightSpec {
    /// Index of the reading node.
    pub node: usize,
    /// Which input of the node reads the weight.
    pub input: usize,
    /// How the weight is quantized (symmetric int8, per tensor or per output channel).
    pub scheme: QScheme,
}

/// A group of activation tensors that share one observer and one set of parameters.
#[derive(Clone, Debug)]
pub struct Group {
    /// The recipe of the node that created the group (observer and activation range).
    pub config: QuantConfig,
    /// The tensors of the group, in the order they were added.
    pub tensors: Vec<String>,
    /// Parameters fixed by the operator that makes a tensor of the group (a bounded
    /// activation's output), used instead of the observer's.
    pub fixed: Option<QParams>,
}

/// The annotation of a whole graph.
#[derive(Clone, Debug, Default)]
pub struct Annotation {
    /// Sharing groups of statically quantized activation tensors.
    pub groups: Vec<Group>,
    /// Tensor name → index into `groups`.
    pub tensor_group: HashMap<String, usize>,
    /// Quantized weights.
    pub weights: Vec<WeightSpec>,
    /// Node input edges `(node, input)` whose activation is quantized at run time.
    pub dynamic_inputs: Vec<(usize, usize)>,
    /// One line per node: what was annotated, or why the node stays float.
    pub report: Vec<String>,
}

/// Builds the annotation with union-find over sharing groups.
struct Annotator<'g> {
    graph: &'g Graph,
    scopes: &'g QuantScopes,
    producer: HashMap<&'g str, usize>,
    consumers: HashMap<&'g str, Vec<usize>>,
    parent: Vec<usize>,
    groups: Vec<Group>,
    tensor_group: HashMap<String, usize>,
    weights: Vec<WeightSpec>,
    dynamic_inputs: Vec<(usize, usize)>,
    absorbed: HashSet<usize>,
    report: Vec<String>,
    /// Report lines for activations fused into the node being annotated.
    fused_notes: Vec<String>,
}

/// Annotates `graph` (validated: nodes in topological order) with the recipes of `scopes`.
pub fn annotate(graph: &Graph, scopes: &QuantScopes) -> Annotation {
    let producer = graph
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.outputs.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut a = Annotator {
        graph,
        scopes,
        producer,
        consumers: graph.consumer_map(),
        parent: Vec::new(),
        groups: Vec::new(),
        tensor_group: HashMap::new(),
        weights: Vec::new(),
        dynamic_inputs: Vec::new(),
        absorbed: HashSet::new(),
        report: Vec::new(),
        fused_notes: Vec::new(),
    };
    for (index, node) in graph.nodes.iter().enumerate() {
        if a.absorbed.contains(&index) {
            continue;
        }
        let line = match scopes.resolve(&node.name, node.op.onnx_name()) {
            None => "float: the scopes leave it float".to_string(),
            Some(config) => a.annotate_node(index, node, &config),
        };
        a.report
            .push(format!("{} ({}): {line}", node.name, node.op.onnx_name()));
        a.report.append(&mut a.fused_notes);
    }
    a.finish()
}

impl<'g> Annotator<'g> {
    fn annotate_node(&mut self, index: usize, node: &'g Node, config: &QuantConfig) -> String {
        if config.activations == ActivationMode::Dynamic {
            return self.annotate_dynamic(index, node, config);
        }
        if let Some(line) = self.annotate_unit(index, config) {
            return line;
        }
        match &node.op {
            Op::Conv(attrs) => {
                let Some(w) = self.constant_f32(node.input(1)) else {
                    return "float: the weight is not a constant f32 tensor".into();
                };
                if !(3..=4).contains(&w.len()) {
                    return format!("float: Conv weight of rank {} (1-D and 2-D conv only)", w.len());
                }
                self.static_with_weight(
                    index,
                    node,
                    config,
                    0,
                    if attrs.group > 1 { "grouped conv" } else { "conv" },
                )
            }
            Op::ConvTranspose(_) => match self.constant_f32(node.input(1)) {
                // ConvTranspose weights are [Cin, Cout/group, k...]: output channels on axis 1.
                Some(w) if w.len() == 4 => self.static_with_weight(index, node, config, 1, "transposed conv"),
                _ => "float: ConvTranspose weight is not a constant 4-D f32 tensor".into(),
            },
            // A BatchNormalization left after folding (no Conv before it): a per-channel affine.
            Op::BatchNormalization { .. } if self.is_f32(&node.inputs[0]) => {
                self.mark(&node.inputs[0], config);
                let (out, fused) = self.fused_output(node);
                self.mark(&out, config);
                format!("quantized static: per-channel affine{fused}")
            }
            Op::Gemm(attrs) => {
                if attrs.trans_a {
                    return "float: Gemm with transA".into();
                }
                match self.constant_f32(node.input(1)) {
                    Some(dims) if dims.len() == 2 => self.static_with_weight(
                        index,
                        node,
                        config,
                        usize::from(!attrs.trans_b),
                        "linear (Gemm)",
                    ),
                    _ => self.two_activations(node, config, "Gemm of two activations"),
                }
            }
            Op::MatMul => match self.constant_f32(node.input(1)) {
                Some(dims) if dims.len() >= 2 => {
                    self.static_with_weight(index, node, config, dims.len() - 1, "linear (MatMul)")
                }
                Some(_) => "float: MatMul with a 1-D constant".into(),
                None => self.two_activations(node, config, "MatMul of two activations"),
            },
            Op::Binary(BinaryOp::Div | BinaryOp::PRelu) => self.by_constant(node, config),
            Op::Binary(BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul) => {
                if !node.inputs.iter().all(|i| self.is_f32(i)) {
                    return "float: non-f32 operand".into();
                }
                for i in &node.inputs {
                    self.mark(i, config);
                }
                let (out, fused) = self.fused_output(node);
                self.mark(&out, config);
                format!("quantized static: {}{fused}", node.op.onnx_name().to_lowercase())
            }
            Op::Concat { .. } => {
                if !node.inputs.iter().all(|i| self.is_f32(i)) {
                    return "float: non-f32 operand".into();
                }
                let out = self.mark(&node.outputs[0], config);
                for i in &node.inputs {
                    let g = self.mark(i, config);
                    self.union(out, g);
                }
                "quantized static: concat (inputs and output share one observer)".into()
            }
            op if is_table_activation(op) => {
                if !self.is_f32(&node.inputs[0]) {
                    return "float: non-f32 operand".into();
                }
                self.mark(&node.inputs[0], config);
                let out = self.mark(&node.outputs[0], config);
                match fixed_output_qparams(op, config) {
                    Some(q) => {
                        self.groups[out].fixed = Some(q);
                        format!(
                            "quantized static: input observed, output fixed (scale {}, zero point {})",
                            q.scale(),
                            q.zero_point()
                        )
                    }
                    None => "quantized static: input and output observed".into(),
                }
            }
            // A blending Resize whose output leaves the graph (a segmentation head's last
            // upsampling) keeps a float output, as PT2E's does: quantizing it would round the
            // blend to the input's grid, and the delegate runs `DQ → Resize → float output`
            // as one step from the int8 input.
            Op::Resize(attrs) if attrs.mode != ResizeMode::Nearest && self.only_graph_outputs(node) => {
                "float: a blending Resize writing graph outputs keeps a float output".into()
            }
            op if shares_input_qparams(op, self.graph, node) => {
                let input = &node.inputs[0];
                match self.tensor_group.get(input.as_str()).copied() {
                    Some(g) => {
                        for output in &node.outputs {
                            let out = self.mark(output, config);
                            self.union(g, out);
                        }
                        "quantized static: output shares the input's parameters".into()
                    }
                    None => "float: its input is not quantized".into(),
                }
            }
            op => format!("float: no quantization pattern for {}", op.onnx_name()),
        }
    }

    /// Conv / linear with a constant weight: input, weight, fused-activation output.
    fn static_with_weight(
        &mut self,
        index: usize,
        node: &'g Node,
        config: &QuantConfig,
        channel_axis: usize,
        what: &str,
    ) -> String {
        if !self.is_f32(&node.inputs[0]) {
            return "float: non-f32 input".into();
        }
        let weight = match weight_spec(index, config, channel_axis) {
            Ok(w) => w,
            Err(e) => return format!("float: {e}"),
        };
        self.mark(&node.inputs[0], config);
        self.weights.push(weight);
        let (out, fused) = self.fused_output(node);
        self.mark(&out, config);
        let granularity = match config.weights {
            WeightGranularity::PerChannel => "per-channel",
            WeightGranularity::PerTensor => "per-tensor",
        };
        format!("quantized static: {what}{fused}, {granularity} weight, float bias")
    }

    /// `x / c` or `c / x` (Div), or `PRelu(x, c)`, with `c` a constant `f32` initializer that
    /// is one element or varies along one axis of `x` (a per-channel `[1, C, 1, 1]` or
    /// `[C, 1, 1]`): the input and output are observed and `c` stays `f32` (the delegate runs
    /// it as one table, or one per channel).
    fn by_constant(&mut self, node: &'g Node, config: &QuantConfig) -> String {
        let name = node.op.onnx_name();
        let constant = |t: &str| self.graph.initializers.get(t).filter(|c| c.dtype() == DType::F32);
        let (x, c) = match (constant(&node.inputs[0]), constant(&node.inputs[1])) {
            (None, Some(c)) => (&node.inputs[0], c),
            (Some(c), None) => (&node.inputs[1], c),
            _ => return format!("float: {name} without exactly one constant f32 operand"),
        };
        let x_dims = self.graph.tensor_info(x).and_then(|i| i.concrete_shape());
        let out_dims = self
            .graph
            .tensor_info(&node.outputs[0])
            .and_then(|i| i.concrete_shape());
        let (Some(x_dims), Some(out_dims)) = (x_dims, out_dims) else {
            return format!("float: {name} by a constant of unknown input shape");
        };
        if x_dims != out_dims || !self.is_f32(x) {
            return format!("float: {name} by a constant that broadcasts its input");
        }
        if let Err(e) = crate::ir::shapes::broadcast_axis(c.dims(), &x_dims) {
            return format!("float: {name} by a constant: {e}");
        }
        self.mark(x, config);
        let (out, fused) = self.fused_output(node);
        self.mark(&out, config);
        format!(
            "quantized static: {} by a constant{fused} (input and output observed, constant f32)",
            name.to_lowercase()
        )
    }

    fn two_activations(&mut self, node: &'g Node, config: &QuantConfig, what: &str) -> String {
        if !node.inputs[..2].iter().all(|i| self.is_f32(i)) || node.input(2).is_some() {
            return format!("float: {what} needs two f32 inputs and no bias");
        }
        self.mark(&node.inputs[0], config);
        self.mark(&node.inputs[1], config);
        let (out, fused) = self.fused_output(node);
        self.mark(&out, config);
        format!("quantized static: {what}{fused}")
    }

    fn annotate_dynamic(&mut self, index: usize, node: &'g Node, config: &QuantConfig) -> String {
        let axis = match &node.op {
            Op::Conv(attrs)
                if attrs.group > 1
                    && self
                        .constant_f32(node.input(1))
                        .is_some_and(|d| d.get(1) == Some(&1)) =>
            {
                return "float: dynamic quantization skips depthwise conv".into()
            }
            Op::Conv(_) => self
                .constant_f32(node.input(1))
                .filter(|d| (3..=4).contains(&d.len()))
                .map(|_| 0),
            Op::Gemm(attrs) if !attrs.trans_a => self
                .constant_f32(node.input(1))
                .filter(|d| d.len() == 2)
                .map(|_| usize::from(!attrs.trans_b)),
            Op::MatMul => self
                .constant_f32(node.input(1))
                .filter(|d| d.len() >= 2)
                .map(|d| d.len() - 1),
            op => {
                return format!(
                    "float: dynamic configs quantize only linear and conv, not {}",
                    op.onnx_name()
                )
            }
        };
        let Some(axis) = axis else {
            return "float: dynamic quantization needs a constant weight".into();
        };
        if !self.is_f32(&node.inputs[0]) {
            return "float: non-f32 input".into();
        }
        let weight = match weight_spec(index, config, axis) {
            Ok(w) => w,
            Err(e) => return format!("float: {e}"),
        };
        self.weights.push(weight);
        self.dynamic_inputs.push((index, 0));
        "quantized dynamic: activation quantized at run time, int8 weight, float bias".into()
    }

    /// Annotates the element-wise unit that starts at `index` ([`unit_at`]) when every node
    /// of it resolves to `config` and none is taken yet: its input and output are observed,
    /// its other nodes absorbed. `None` when there is no such unit.
    fn annotate_unit(&mut self, index: usize, config: &QuantConfig) -> Option<String> {
        let unit = unit_at(self.graph, &self.producer, &self.consumers, index)?;
        let same_scope = unit.nodes.iter().all(|&i| {
            let n = &self.graph.nodes[i];
            !self.absorbed.contains(&i) && self.scopes.resolve(&n.name, n.op.onnx_name()) == Some(*config)
        });
        if !same_scope || !self.is_f32(&unit.input) {
            return None;
        }
        self.mark(&unit.input, config);
        self.mark(&unit.output, config);
        let first = &self.graph.nodes[index].name;
        for &i in &unit.nodes[1..] {
            let n = &self.graph.nodes[i];
            self.absorbed.insert(i);
            self.fused_notes.push(format!(
                "{} ({}): one unit with {first}",
                n.name,
                n.op.onnx_name()
            ));
        }
        Some(format!(
            "quantized static: element-wise unit of {} nodes, input and output observed",
            unit.nodes.len()
        ))
    }

    /// The tensor that carries the op's quantized output: the output of a ReLU / Clip that
    /// is the only reader of the op's output (conv → relu → Q), else the op's own output.
    fn fused_output(&mut self, node: &'g Node) -> (String, &'static str) {
        let out = &node.outputs[0];
        let readers = self.consumers.get(out.as_str()).cloned().unwrap_or_default();
        if let [only] = readers[..] {
            let next = &self.graph.nodes[only];
            let fusable = match next.op {
                Op::Unary(UnaryOp::Relu) => true,
                Op::Clip => next.inputs[1..]
                    .iter()
                    .all(|b| b.is_empty() || self.graph.initializers.contains_key(b)),
                _ => false,
            };
            if fusable && !self.graph.is_output(out) {
                self.absorbed.insert(only);
                self.fused_notes.push(format!(
                    "{} ({}): fused into {}",
                    next.name,
                    next.op.onnx_name(),
                    node.name
                ));
                return (next.outputs[0].clone(), " + fused activation");
            }
        }
        (out.clone(), "")
    }

    /// Whether every output of `node` is a graph output that no node reads.
    fn only_graph_outputs(&self, node: &Node) -> bool {
        node.outputs.iter().all(|o| {
            self.graph.outputs.iter().any(|g| &g.name == o)
                && self.consumers.get(o.as_str()).is_none_or(|c| c.is_empty())
        })
    }

    fn is_f32(&self, tensor: &str) -> bool {
        !tensor.is_empty()
            && self
                .graph
                .tensor_info(tensor)
                .is_none_or(|info| info.dtype == DType::F32)
    }

    /// The dims of a constant f32 initializer.
    fn constant_f32(&self, name: Option<&str>) -> Option<Vec<usize>> {
        let t = self.graph.initializers.get(name?)?;
        (t.dtype() == DType::F32).then(|| t.dims().to_vec())
    }

    fn find(&mut self, mut g: usize) -> usize {
        while self.parent[g] != g {
            self.parent[g] = self.parent[self.parent[g]];
            g = self.parent[g];
        }
        g
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[rb] = ra;
        }
    }

    /// Puts `tensor` in a group (a new one unless it has one) and returns the group.
    fn mark(&mut self, tensor: &str, config: &QuantConfig) -> usize {
        if let Some(&g) = self.tensor_group.get(tensor) {
            return g;
        }
        let g = self.groups.len();
        self.groups.push(Group {
            config: *config,
            tensors: vec![tensor.to_string()],
            fixed: None,
        });
        self.parent.push(g);
        self.tensor_group.insert(tensor.to_string(), g);
        g
    }

    /// Resolves the union-find into dense groups.
    fn finish(mut self) -> Annotation {
        let mut dense: HashMap<usize, usize> = HashMap::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut tensor_group = HashMap::new();
        for g in 0..self.groups.len() {
            let root = self.find(g);
            let id = *dense.entry(root).or_insert_with(|| {
                groups.push(Group {
                    config: self.groups[root].config,
                    tensors: Vec::new(),
                    fixed: None,
                });
                groups.len() - 1
            });
            // A fixed member fixes the whole group (the first one, in group order).
            if groups[id].fixed.is_none() {
                groups[id].fixed = self.groups[g].fixed;
            }
            for t in &self.groups[g].tensors {
                groups[id].tensors.push(t.clone());
                tensor_group.insert(t.clone(), id);
            }
        }
        Annotation {
            groups,
            tensor_group,
            weights: self.weights,
            dynamic_inputs: self.dynamic_inputs,
            report: self.report,
        }
    }
}

/// The operators annotated as `input → op → output`: the element-wise activations (each one
/// table in the delegate) and Softmax.
fn is_table_activation(op: &Op) -> bool {
    matches!(
        op,
        Op::Softmax { .. }
            | Op::Unary(
                UnaryOp::HardSwish
                    | UnaryOp::Sigmoid
                    | UnaryOp::Tanh
                    | UnaryOp::Softplus
                    | UnaryOp::Softsign
                    | UnaryOp::Mish
            )
            | Op::HardSigmoid { .. }
            | Op::LeakyRelu { .. }
            | Op::Elu { .. }
            | Op::Celu { .. }
            | Op::Selu { .. }
            | Op::Gelu { .. }
    )
}

/// PyTorch's fixed output parameters of a bounded activation (`_FIXED_QPARAMS_OP_TO_OBSERVER`:
/// Sigmoid, HardSigmoid and Softmax over [0, 1] with scale 1/256, Tanh over [-1, 1] with
/// scale 2/256),
/// in int8 terms for the full activation range [-128, 127]: zero point -128 for [0, 1] (uint8
/// zero point 0) and 0 for [-1, 1] (uint8 128). `None` for other operators and for a narrowed
/// activation range, whose outputs are observed.
fn fixed_output_qparams(op: &Op, config: &QuantConfig) -> Option<QParams> {
    let (qmin, qmax) = config.activation_range;
    if (qmin, qmax) != (-128, 127) {
        return None;
    }
    let (scale, zero_point) = match op {
        Op::Unary(UnaryOp::Sigmoid) | Op::HardSigmoid { .. } | Op::Softmax { .. } => (1.0 / 256.0, -128),
        Op::Unary(UnaryOp::Tanh) => (2.0 / 256.0, 0),
        _ => return None,
    };
    QParams::new(scale, zero_point, qmin, qmax).ok()
}

/// The spec of input 1 of `node` (its weight) under `config` (validated configs never fail).
fn weight_spec(node: usize, config: &QuantConfig, channel_axis: usize) -> crate::Result<WeightSpec> {
    Ok(WeightSpec {
        node,
        input: 1,
        scheme: config.weight_scheme(channel_axis)?,
    })
}

/// Ops whose output takes the input's quantization parameters: pooling, ReduceMean /
/// ReduceMax over constant axes (a mean or a maximum stays inside its input's range), data
/// movement (Resize included: nearest copies values, linear blends them within their range),
/// standalone ReLU / Clip.
fn shares_input_qparams(op: &Op, graph: &Graph, node: &Node) -> bool {
    match op {
        Op::MaxPool(_)
        | Op::AveragePool(_)
        | Op::GlobalAveragePool
        | Op::Reshape { .. }
        | Op::Flatten { .. }
        | Op::Transpose { .. }
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Slice
        | Op::Pad { .. }
        | Op::DepthToSpace { .. }
        | Op::SpaceToDepth { .. }
        | Op::Resize(_)
        | Op::Split { .. }
        | Op::Unary(UnaryOp::Relu)
        | Op::Clip => true,
        Op::Reduce {
            kind: ReduceKind::Mean | ReduceKind::Max,
            ..
        } => has_constant_axes(graph, node),
        _ => false,
    }
}

/// True when a reduction's axes are a constant (or absent: every axis), so the delegate can run
/// it on int8.
fn has_constant_axes(graph: &Graph, node: &Node) -> bool {
    match node.input(1).filter(|a| !a.is_empty()) {
        None => true,
        Some(a) => graph.initializers.get(a).is_some_and(|t| t.to_i64_vec().is_ok()),
    }
}
