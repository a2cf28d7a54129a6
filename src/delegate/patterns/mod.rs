//! QDQ pattern matching: for one compute node, decides whether it and the quantize nodes
//! around it form a pattern the int8 kernels implement, and if so drafts the kernel
//! (weights quantized, bias in int32, fused activation folded into the output range).
//! Every refusal carries a [`Reason`] for the report.
//!
//! `mod.rs` holds the shared types and the dispatch from an operator to its pattern; each
//! pattern lives in its own module, and the helpers they share (graph look-ups, qparams,
//! quantized inputs and outputs, clamps, weights, windows) in theirs. A new int8 operator's
//! pattern is a new module here (one `mod` line) plus one arm in [`Matcher::match_node`].

mod activations;
mod batch_norm;
mod binary;
mod binary_constant;
mod clamp;
mod concat;
mod conv;
mod conv_transpose;
mod data_movement;
mod dynamic_linear;
mod linear;
mod lookup;
mod pointwise_chain;
mod pooling;
mod qparams;
mod resize;
mod softmax;
mod split;
mod unary;
mod weights;
mod window;

use crate::ir::op::{BinaryOp, UnaryOp};
use crate::ir::{Graph, Node, Op};
use crate::kernels::{OutputRange, QuantParams};
use crate::program::KernelSpec;
use std::collections::HashMap;

pub use binary::MAX_CONSTANT_OPERAND;
pub use binary_constant::MAX_CHANNEL_TABLES;

pub use crate::program::Reason;

/// A refusal: the reason and words about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// The category.
    pub reason: Reason,
    /// Details for a user.
    pub detail: String,
}

fn refuse<T>(reason: Reason, detail: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        reason,
        detail: detail.into(),
    })
}

/// A matched pattern. The kernel's input fields index `inputs` (0, 1, ...) and its output
/// field is 0 (the lowering maps them to values).
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Graph nodes the pattern covers (compute node, optional activation, output Q).
    pub nodes: Vec<usize>,
    /// The quantized (int8) tensors read, in kernel order.
    pub inputs: Vec<String>,
    /// The quantized tensor written.
    pub output: String,
    /// The drafted kernel.
    pub kernel: KernelSpec,
    /// The further outputs of a node with several (Split): each quantized tensor with the
    /// kernel that writes it from the same `inputs` (output field 0 as well).
    pub more: Vec<(String, KernelSpec)>,
}

impl Candidate {
    /// Each quantized tensor written, with the kernel that writes it.
    pub fn outputs(&self) -> impl Iterator<Item = (&String, &KernelSpec)> {
        std::iter::once((&self.output, &self.kernel)).chain(self.more.iter().map(|(t, k)| (t, k)))
    }
}

/// A matched dynamic-quantization pattern, in either form (both lowered to the per-row
/// dynamic int8 GEMM):
/// - ONNX Runtime's `quantize_dynamic`: `DynamicQuantizeLinear → MatMulInteger(const int8 W)
///   → Cast → Mul(x_scale · w_scale) [→ Add(const bias)]`;
/// - libxq's quantizer: `DynamicQuantizeLinear → DequantizeLinear → MatMul / Gemm(W: const
///   int8 → DequantizeLinear, per tensor or per output channel) [bias: Gemm's C or a
///   following Add of a constant]`;
///
/// in both forms followed by an optional `Relu`, fused into the step.
#[derive(Clone, Debug)]
pub struct DynamicCandidate {
    /// Graph nodes covered.
    pub nodes: Vec<usize>,
    /// The linear node (MatMulInteger, MatMul or Gemm; named in reports).
    pub anchor: usize,
    /// The drafted step.
    pub step: crate::program::StepSpec,
}

/// Graph indexes used while matching.
pub struct Matcher<'g> {
    graph: &'g Graph,
    producer: HashMap<&'g str, usize>,
    consumers: HashMap<&'g str, Vec<usize>>,
}

/// The activation input of a pattern: the int8 tensor behind its DQ and its qparams.
struct QInput {
    tensor: String,
    q: QuantParams,
    dims: Vec<usize>,
    /// Nodes of same-qparams requantizations passed through on the way to `tensor`.
    through: Vec<usize>,
}

/// A pattern's output: trailing activation (if any), Q node, int8 tensor and qparams.
struct QOutput {
    nodes: Vec<usize>,
    tensor: String,
    q: QuantParams,
    range: OutputRange,
}

impl<'g> Matcher<'g> {
    /// Indexes `graph` (validated, shapes inferred).
    pub fn new(graph: &'g Graph) -> Self {
        let mut producer = HashMap::new();
        for (i, n) in graph.nodes.iter().enumerate() {
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                producer.insert(o.as_str(), i);
            }
        }
        let consumers = graph.consumer_map();
        Matcher {
            graph,
            producer,
            consumers,
        }
    }

    /// Matches the compute node at `index`.
    pub fn match_node(&self, index: usize) -> Result<Candidate, Refusal> {
        let node = &self.graph.nodes[index];
        if let Some(c) = self.pointwise_chain(index, node) {
            return Ok(c);
        }
        match &node.op {
            Op::Conv(a) => self.conv(index, node, a),
            Op::ConvTranspose(a) => self.conv_transpose(index, node, a),
            Op::BatchNormalization { epsilon } => self.batch_norm(index, node, *epsilon),
            Op::Gemm(_) | Op::MatMul => self.fully_connected(index, node),
            Op::Binary(op @ (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div)) => {
                self.arithmetic(index, node, *op)
            }
            Op::Binary(BinaryOp::PRelu) if self.has_one_constant_operand(node) => {
                self.binary_constant(index, node, BinaryOp::PRelu)
            }
            Op::Binary(BinaryOp::PRelu) => refuse(
                Reason::NonConstantWeight,
                "PRelu whose slope is not a constant (or whose input is one)",
            ),
            Op::GlobalAveragePool => self.mean(index, node),
            Op::Reduce {
                kind,
                keepdims,
                noop_with_empty_axes,
            } => self.reduce(index, node, *kind, *keepdims, *noop_with_empty_axes),
            Op::MaxPool(a) => self.max_pool(index, node, a),
            Op::AveragePool(a) => self.avg_pool(index, node, a),
            Op::Concat { axis } => self.concat(index, node, *axis),
            Op::Resize(a) => self.resize(index, node, a),
            Op::Softmax { axis, coerce_2d } => self.softmax(index, node, *axis, *coerce_2d),
            Op::Split { axis, .. } => self.split(index, node, *axis),
            Op::Transpose { .. }
            | Op::Slice
            | Op::Pad { .. }
            | Op::DepthToSpace { .. }
            | Op::SpaceToDepth { .. } => self.gather(index, node),
            Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze | Op::Unsqueeze => {
                self.reshape(index, node)
            }
            Op::QuantizeLinear(_) | Op::DequantizeLinear(_) => {
                refuse(Reason::NotQuantized, "a quantize node outside a pattern")
            }
            op if unary::is_lut_op(op) => self.lut(index, node),
            Op::Unary(UnaryOp::Relu) | Op::Clip => self.elementwise_alone(index, node),
            other => refuse(
                Reason::UnsupportedOp,
                format!("no int8 kernel for {}", other.onnx_name()),
            ),
        }
    }

    /// Add / Sub / Mul / Div: with one constant operand as tables
    /// ([`Self::binary_constant`]; Add / Sub / Mul by a constant that varies along several
    /// axes fall back to the binary step), else Add / Sub / Mul of two activations as the
    /// binary step.
    fn arithmetic(&self, index: usize, node: &Node, op: BinaryOp) -> Result<Candidate, Refusal> {
        if !self.has_one_constant_operand(node) {
            return self.binary(index, node, op);
        }
        match self.binary_constant(index, node, op) {
            Ok(c) => Ok(c),
            Err(r) if op != BinaryOp::Div => self.binary(index, node, op).map_err(|b| Refusal {
                reason: r.reason,
                detail: format!("{}; as a binary step: {}", r.detail, b.detail),
            }),
            Err(r) => Err(r),
        }
    }

    /// The candidate of the compute node `index`: its inputs, output and kernel; the nodes it covers.
    fn candidate(&self, index: usize, inputs: Vec<&QInput>, out: QOutput, kernel: KernelSpec) -> Candidate {
        let mut nodes = vec![index];
        nodes.extend(out.nodes);
        nodes.extend(inputs.iter().flat_map(|i| i.through.iter().copied()));
        Candidate {
            nodes,
            inputs: inputs.iter().map(|i| i.tensor.clone()).collect(),
            output: out.tensor,
            kernel,
            more: Vec::new(),
        }
    }
}
