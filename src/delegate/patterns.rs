//! QDQ pattern matching: for one compute node, decides whether it and the quantize nodes
//! around it form a pattern the int8 kernels implement, and if so drafts the kernel
//! (weights quantized, bias in int32, fused activation folded into the output range).
//! Every refusal carries a [`Reason`] for the report.

mod unary;

use super::gather_map;
use crate::ir::op::{AutoPad, BinaryOp, ConvAttrs, PadMode, PoolAttrs, ReduceKind, UnaryOp};
use crate::ir::{DType, Graph, Node, Op, Tensor};
use crate::kernels::{OutputRange, QuantParams};
use crate::program::{
    BinaryKind, BinarySpec, ConcatSpec, ConvSpec, FullyConnectedSpec, GatherSpec, GlobalAvgPoolSpec,
    KernelSpec, MaxPoolSpec, ReshapeSpec, Window,
};
use crate::qscheme::{bias_to_i32, clip_bounds, validate_scale, ChannelScales};
use std::collections::HashMap;

/// Elements of a constant Add / Mul operand taken into a pattern (a scalar or a per-channel
/// vector in practice); larger constants keep the operation in the interpreter.
pub const MAX_CONSTANT_OPERAND: usize = 4096;

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

/// A constant weight: int8 values, dims and scales (one or per channel).
type QWeight = (Vec<i8>, Vec<usize>, Vec<f32>);

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

    /// The node producing `tensor`.
    pub fn producer(&self, tensor: &str) -> Option<&'g Node> {
        self.producer.get(tensor).map(|&i| &self.graph.nodes[i])
    }

    /// The indices of nodes reading `tensor`.
    pub fn consumers(&self, tensor: &str) -> &[usize] {
        self.consumers.get(tensor).map(Vec::as_slice).unwrap_or(&[])
    }

    fn constant(&self, name: &str) -> Option<&'g Tensor> {
        self.graph.initializers.get(name)
    }

    /// Whether a Q/DQ node quantizes to uint8 (its int8 value is stored shifted by -128).
    pub fn node_is_unsigned(&self, node: &Node) -> bool {
        match node.input(2).and_then(|z| self.constant(z)) {
            Some(t) => t.dtype() == DType::U8,
            None => matches!(&node.op, Op::QuantizeLinear(a) if a.output_dtype != Some(DType::I8)),
        }
    }

    /// Per-tensor qparams of a Q/DQ node (inputs 1 and 2) in int8 terms: a uint8 tensor `u`
    /// is handled as the int8 tensor `u - 128` with zero point `zp - 128`, which quantizes,
    /// dequantizes and requantizes identically.
    pub fn node_qparams(&self, node: &Node) -> Result<QuantParams, Refusal> {
        let scale = node
            .input(1)
            .and_then(|s| self.constant(s))
            .ok_or_else(|| Refusal {
                reason: Reason::QParams,
                detail: format!("`{}`: scale is not a constant", node.name),
            })?;
        let scale = scale.to_f32_vec().map_err(|e| Refusal {
            reason: Reason::Dtype,
            detail: e.to_string(),
        })?;
        if scale.len() != 1 {
            return refuse(
                Reason::QParams,
                format!("`{}`: per-axis activation quantization", node.name),
            );
        }
        let zp = match node.input(2) {
            None => {
                if self.node_is_unsigned(node) {
                    -128
                } else {
                    0
                }
            }
            Some(z) => {
                let t = self.constant(z).ok_or_else(|| Refusal {
                    reason: Reason::QParams,
                    detail: format!("`{}`: zero point is not a constant", node.name),
                })?;
                match (t.as_i8(), t.as_u8()) {
                    (Ok([v]), _) => *v as i32,
                    (_, Ok([v])) => *v as i32 - 128,
                    (Ok(_), _) | (_, Ok(_)) => {
                        return refuse(Reason::QParams, format!("`{}`: per-axis zero point", node.name))
                    }
                    _ => {
                        return refuse(
                            Reason::Dtype,
                            format!("`{}`: {} quantization (int8 / uint8 only)", node.name, t.dtype()),
                        )
                    }
                }
            }
        };
        QuantParams::new(scale[0], zp, "qparams").map_err(|e| Refusal {
            reason: Reason::QParams,
            detail: e.to_string(),
        })
    }

    fn dims(&self, tensor: &str) -> Result<Vec<usize>, Refusal> {
        self.graph
            .tensor_info(tensor)
            .and_then(|i| i.concrete_shape())
            .ok_or_else(|| Refusal {
                reason: Reason::Shape,
                detail: format!("shape of `{tensor}` is not known (fix the input shapes)"),
            })
    }

    /// Input `t` of a compute node must be `DQ(q)` where `q` is an int8 tensor made by a
    /// QuantizeLinear with the same qparams (or by another pattern). A requantization to
    /// the same qparams in between, `Q(DQ(x)) → DQ → t` (what PT2E leaves of a removed
    /// Dropout), is the identity on int8 values and is passed through when each of its
    /// nodes has no other reader: the input is then `x` and the pattern covers those nodes.
    fn q_input(&self, t: &str) -> Result<QInput, Refusal> {
        let mut dq_i = match self.producer.get(t) {
            Some(&i) if matches!(self.graph.nodes[i].op, Op::DequantizeLinear(_)) => i,
            _ => return refuse(Reason::NotQuantized, format!("input `{t}` is not dequantized")),
        };
        let q = self.node_qparams(&self.graph.nodes[dq_i])?;
        let mut through = Vec::new();
        loop {
            let dq = &self.graph.nodes[dq_i];
            let src = dq.input(0).unwrap_or_default();
            if self.constant(src).is_some() {
                return refuse(Reason::Shape, format!("activation `{t}` is a constant"));
            }
            let q_i = match self.producer.get(src) {
                Some(&i) if matches!(self.graph.nodes[i].op, Op::QuantizeLinear(_)) => i,
                _ => {
                    return refuse(
                        Reason::NotQuantized,
                        format!("`{src}` is not made by QuantizeLinear"),
                    )
                }
            };
            if self.node_qparams(&self.graph.nodes[q_i])? != q {
                return refuse(
                    Reason::QParams,
                    format!("`{src}` is dequantized with other qparams than it was quantized"),
                );
            }
            match self.same_qparams_round_trip(dq_i, q_i, q) {
                Some(inner_dq) => {
                    through.extend([dq_i, q_i]);
                    dq_i = inner_dq;
                }
                None => {
                    return Ok(QInput {
                        tensor: src.to_string(),
                        q,
                        dims: self.dims(t)?,
                        through,
                    })
                }
            }
        }
    }

    /// For `dq_i = DQ(q_i = Q(u))`: the node making `u` when it is a DQ with qparams `q` and
    /// `u`, `Q(u)` and `DQ(Q(u))` each have exactly one reader (so the round trip may be
    /// dropped).
    fn same_qparams_round_trip(&self, dq_i: usize, q_i: usize, q: QuantParams) -> Option<usize> {
        let (dq, qn) = (&self.graph.nodes[dq_i], &self.graph.nodes[q_i]);
        let u = qn.input(0)?;
        let inner = *self.producer.get(u)?;
        let inner_node = &self.graph.nodes[inner];
        let single = self.only_reader(&dq.outputs[0]).is_some()
            && self.only_reader(&qn.outputs[0]) == Some(dq_i)
            && self.only_reader(u) == Some(q_i);
        let same =
            matches!(inner_node.op, Op::DequantizeLinear(_)) && self.node_qparams(inner_node).ok()? == q;
        (single && same).then_some(inner)
    }

    /// The output of a compute node: optionally through Relu / Clip, then into exactly one
    /// int8 QuantizeLinear; then, while the quantized tensor is only read by
    /// `DQ → Relu / Clip → Q` with the same qparams (PT2E's form of a ReLU / ReLU6 /
    /// hardtanh that shares its input's qparams), those nodes too, the clamp narrowing the
    /// output range. Clamping the requantized value to the quantized bounds gives the same
    /// int8 values as clamping in float and quantizing again, because quantization is
    /// monotone and maps each int8 value's dequantization back to itself.
    fn q_output(&self, node: &Node) -> Result<QOutput, Refusal> {
        self.q_output_from(&node.outputs[0])
    }

    /// As [`Self::q_output`], starting from the float tensor `t`.
    fn q_output_from(&self, t: &str) -> Result<QOutput, Refusal> {
        let mut nodes = Vec::new();
        let mut t = t;
        let mut clip: Option<(f32, f32)> = None;
        let mut out = loop {
            if self.graph.is_output(t) {
                return refuse(Reason::NotQuantized, format!("`{t}` is a float graph output"));
            }
            let readers = self.consumers(t);
            let &[reader] = readers else {
                return refuse(
                    Reason::NotQuantized,
                    format!("`{t}` is not read by exactly one QuantizeLinear"),
                );
            };
            let next = &self.graph.nodes[reader];
            match &next.op {
                Op::QuantizeLinear(_) if next.input(0) == Some(t) => {
                    let q = self.node_qparams(next)?;
                    nodes.push(reader);
                    let range = match clip {
                        None => OutputRange::FULL,
                        Some((lo, hi)) => clamp_range(OutputRange::FULL, lo, hi, q)?,
                    };
                    break QOutput {
                        nodes,
                        tensor: next.outputs[0].clone(),
                        q,
                        range,
                    };
                }
                Op::Unary(UnaryOp::Relu) | Op::Clip if clip.is_none() => {
                    clip = Some(self.clamp_bounds(next)?);
                }
                _ => {
                    return refuse(
                        Reason::NotQuantized,
                        format!(
                            "`{t}` is read by {} instead of QuantizeLinear",
                            next.op.onnx_name()
                        ),
                    )
                }
            }
            nodes.push(reader);
            t = next.outputs[0].as_str();
        };
        while let Some((more, tensor, (lo, hi))) = self.clamp_in_quantized_domain(&out.tensor, out.q) {
            out.range = clamp_range(out.range, lo, hi, out.q)?;
            out.nodes.extend(more);
            out.tensor = tensor;
        }
        Ok(out)
    }

    /// The float bounds of a Relu (`[0, inf)`) or Clip (constant bounds; absent ones open).
    fn clamp_bounds(&self, node: &Node) -> Result<(f32, f32), Refusal> {
        if matches!(node.op, Op::Unary(UnaryOp::Relu)) {
            return Ok((0.0, f32::INFINITY));
        }
        let bound = |i: usize, default: f32| -> Result<f32, Refusal> {
            match node.input(i).filter(|n| !n.is_empty()) {
                None => Ok(default),
                Some(n) => match self.constant(n).map(|c| c.to_f32_vec()) {
                    Some(Ok(v)) if v.len() == 1 && !v[0].is_nan() => Ok(v[0]),
                    _ => refuse(
                        Reason::Attribute,
                        format!("Clip `{}`: bound is not a constant", node.name),
                    ),
                },
            }
        };
        Ok((bound(1, f32::NEG_INFINITY)?, bound(2, f32::INFINITY)?))
    }

    /// `t` (an int8 tensor with qparams `q`) read only by `DQ → Relu / Clip → Q`, every
    /// step the only reader of the one before and no graph output, with both DQ and Q at
    /// qparams `q`: the nodes, the new int8 tensor and the float bounds.
    fn clamp_in_quantized_domain(&self, t: &str, q: QuantParams) -> Option<(Vec<usize>, String, (f32, f32))> {
        let dq_i = self.only_reader(t)?;
        let dq = &self.graph.nodes[dq_i];
        let is_dq = matches!(dq.op, Op::DequantizeLinear(_)) && dq.input(0) == Some(t);
        if !is_dq || self.node_qparams(dq).ok()? != q {
            return None;
        }
        let act_i = self.only_reader(&dq.outputs[0])?;
        let act = &self.graph.nodes[act_i];
        let is_clamp = matches!(act.op, Op::Unary(UnaryOp::Relu) | Op::Clip);
        if !is_clamp || act.input(0) != Some(dq.outputs[0].as_str()) {
            return None;
        }
        let bounds = self.clamp_bounds(act).ok()?;
        let q_i = self.only_reader(&act.outputs[0])?;
        let qn = &self.graph.nodes[q_i];
        let is_q = matches!(qn.op, Op::QuantizeLinear(_)) && qn.input(0) == Some(act.outputs[0].as_str());
        if !is_q || self.node_qparams(qn).ok()? != q {
            return None;
        }
        Some((vec![dq_i, act_i, q_i], qn.outputs[0].clone(), bounds))
    }

    /// A constant int8 weight behind a DQ: values, dims, scales (1 or per `axis`).
    fn q_weight(&self, t: &str, channel_axis: usize) -> Result<QWeight, Refusal> {
        let dq = match self.producer(t) {
            Some(n) if matches!(n.op, Op::DequantizeLinear(_)) => n,
            _ if self.constant(t).is_some() => {
                return refuse(Reason::NotQuantized, format!("weight `{t}` is a float constant"))
            }
            _ => {
                return refuse(
                    Reason::NonConstantWeight,
                    format!("weight `{t}` is not a constant"),
                )
            }
        };
        let Op::DequantizeLinear(attrs) = &dq.op else {
            unreachable!("checked above")
        };
        let src = dq.input(0).unwrap_or_default();
        let w = self.constant(src).ok_or_else(|| Refusal {
            reason: Reason::NonConstantWeight,
            detail: format!("weight `{src}` is not a constant"),
        })?;
        let values = w.as_i8().map_err(|_| Refusal {
            reason: Reason::Dtype,
            detail: format!("weight `{src}` is {}, not int8", w.dtype()),
        })?;
        let dims = w.dims().to_vec();
        let scale = dq.input(1).and_then(|s| self.constant(s)).map(|s| s.to_f32_vec());
        let Some(Ok(scales)) = scale else {
            return refuse(
                Reason::QParams,
                format!("weight `{src}`: scale is not a constant f32"),
            );
        };
        if let Some(z) = dq.input(2) {
            let zeros = self
                .constant(z)
                .map(|z| z.as_i8().map(|v| v.iter().all(|&x| x == 0)));
            if !matches!(zeros, Some(Ok(true))) {
                return refuse(
                    Reason::QParams,
                    format!("weight `{src}`: zero point is not int8 zero"),
                );
            }
        }
        if scales.len() != 1 {
            let axis = if attrs.axis < 0 {
                attrs.axis + dims.len() as i64
            } else {
                attrs.axis
            };
            if attrs.block_size != 0 || axis != channel_axis as i64 || scales.len() != dims[channel_axis] {
                return refuse(
                    Reason::QParams,
                    format!("weight `{src}`: scales are not per output channel"),
                );
            }
        }
        if scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return refuse(Reason::QParams, format!("weight `{src}`: invalid scale"));
        }
        Ok((values.to_vec(), dims, scales))
    }

    /// Bias of `n` channels with scale `s_in * s_w[c]`: an int32 constant behind a DQ (used
    /// as is, as ONNX Runtime's fused kernels do) or a float constant (rounded half even).
    fn q_bias(&self, t: Option<&str>, s_in: f32, scales: &[f32], n: usize) -> Result<Vec<i32>, Refusal> {
        let Some(t) = t else { return Ok(Vec::new()) };
        let float = if let Some(c) = self.constant(t) {
            c.to_f32_vec().map_err(|e| Refusal {
                reason: Reason::Dtype,
                detail: e.to_string(),
            })?
        } else {
            let dq = match self.producer(t) {
                Some(d) if matches!(d.op, Op::DequantizeLinear(_)) => d,
                _ => return refuse(Reason::NonConstantWeight, format!("bias `{t}` is not a constant")),
            };
            let src = dq.input(0).and_then(|s| self.constant(s));
            let zp_zero = dq
                .input(2)
                .map(|z| {
                    self.constant(z)
                        .map(|z| z.to_i64_vec().map(|v| v.iter().all(|&x| x == 0)))
                })
                .unwrap_or(Some(Ok(true)));
            let zp_zero = matches!(zp_zero, Some(Ok(true)));
            match (src.map(|s| s.as_i32()), zp_zero) {
                (Some(Ok(v)), true) if v.len() == n => return Ok(v.to_vec()),
                (Some(Ok(_)), _) => {
                    return refuse(Reason::QParams, format!("bias `{t}`: unsupported int32 qparams"))
                }
                _ => {
                    let scale = dq.input(1).and_then(|s| self.constant(s)).map(|s| s.to_f32_vec());
                    let (Some(src), Some(Ok(scale))) = (src, scale) else {
                        return refuse(Reason::NonConstantWeight, format!("bias `{t}` is not a constant"));
                    };
                    let q = src.to_f32_vec().map_err(|e| Refusal {
                        reason: Reason::Dtype,
                        detail: e.to_string(),
                    })?;
                    let Some(scale) = ChannelScales::new(&scale, q.len()) else {
                        return refuse(Reason::QParams, format!("bias `{t}`: unsupported scales"));
                    };
                    q.iter().enumerate().map(|(i, v)| v * scale.get(i)).collect()
                }
            }
        };
        if float.len() != n {
            return refuse(
                Reason::Shape,
                format!("bias `{t}` has {} values for {n} channels", float.len()),
            );
        }
        let Some(w_scales) = ChannelScales::new(scales, n) else {
            return refuse(Reason::QParams, format!("bias `{t}`: unsupported weight scales"));
        };
        float
            .iter()
            .enumerate()
            .map(|(c, &b)| {
                bias_to_i32(b, s_in, w_scales.get(c)).map_or_else(
                    || {
                        refuse(
                            Reason::QParams,
                            format!("bias `{t}` does not fit int32 at its scale"),
                        )
                    },
                    Ok,
                )
            })
            .collect()
    }

    fn only_reader(&self, t: &str) -> Option<usize> {
        match self.consumers(t) {
            [one] if !self.graph.is_output(t) => Some(*one),
            _ => None,
        }
    }

    fn const_f32(&self, t: &str) -> Option<Vec<f32>> {
        self.constant(t).and_then(|c| c.to_f32_vec().ok())
    }

    /// Matches a dynamic-quantization pattern (either form, see [`DynamicCandidate`])
    /// starting at the DynamicQuantizeLinear at `index`.
    pub fn match_dynamic(&self, index: usize) -> Result<DynamicCandidate, Refusal> {
        let d = &self.graph.nodes[index];
        let reader = d.outputs.first().and_then(|q| self.only_reader(q));
        match reader.map(|r| &self.graph.nodes[r].op) {
            Some(Op::DequantizeLinear(_)) => self.match_dynamic_qdq(index),
            _ => self.match_dynamic_integer(index),
        }
    }

    /// The quantized input, scale and zero point made by DynamicQuantizeLinear `index`.
    fn dynamic_outputs(&self, index: usize) -> Result<(&str, &str, &str), Refusal> {
        match self.graph.nodes[index].outputs.as_slice() {
            [a, b, c] => Ok((a.as_str(), b.as_str(), c.as_str())),
            _ => Err(not_dynamic("DynamicQuantizeLinear outputs")),
        }
    }

    /// libxq's form: `DynamicQuantizeLinear → DequantizeLinear → MatMul / Gemm` with an int8
    /// constant weight behind a DequantizeLinear.
    fn match_dynamic_qdq(&self, index: usize) -> Result<DynamicCandidate, Refusal> {
        let not = not_dynamic;
        let (xq, xs, xz) = self.dynamic_outputs(index)?;
        let dq_i = self
            .only_reader(xq)
            .ok_or_else(|| not("quantized input has other readers"))?;
        let dq = &self.graph.nodes[dq_i];
        let reads_all = dq.input(0) == Some(xq) && dq.input(1) == Some(xs) && dq.input(2) == Some(xz);
        if !reads_all || self.only_reader(xs) != Some(dq_i) || self.only_reader(xz) != Some(dq_i) {
            return Err(not(
                "scale and zero point are not read by the DequantizeLinear alone",
            ));
        }
        let x_dq = dq.outputs[0].as_str();
        let op_i = self
            .only_reader(x_dq)
            .ok_or_else(|| not("dequantized input has other readers"))?;
        let op = &self.graph.nodes[op_i];
        if op.input(0) != Some(x_dq) {
            return Err(not("the dequantized input is not the linear input"));
        }
        let (trans_b, gemm_bias) = match &op.op {
            Op::Gemm(g) if g.alpha == 1.0 && g.beta == 1.0 && !g.trans_a => (g.trans_b, true),
            Op::Gemm(_) => return Err(not("Gemm with alpha/beta != 1 or transA")),
            Op::MatMul => (false, false),
            _ => return Err(not("not read by MatMul or Gemm")),
        };
        let (w, wd, scales) = self.q_weight(&op.inputs[1], if trans_b { 0 } else { 1 })?;
        let [d0, d1] = *wd.as_slice() else {
            return Err(not("weight is not 2-D"));
        };
        let (n, k) = if trans_b { (d0, d1) } else { (d1, d0) };
        let weights = if trans_b { w } else { transpose(&w, k, n) };
        let mut nodes = vec![index, dq_i, op_i];
        let (output, bias) = if gemm_bias {
            let bias = match op.input(2) {
                None => Vec::new(),
                Some(b) => self
                    .const_f32(b)
                    .filter(|b| b.len() == n)
                    .ok_or_else(|| not("Gemm bias is not a constant of one value per output"))?,
            };
            (op.outputs[0].clone(), bias)
        } else {
            self.trailing_bias(&op.outputs[0], n, &mut nodes)
        };
        let (output, relu) = self.trailing_relu(output, &mut nodes);
        let x = self.graph.nodes[index].input(0).unwrap_or_default();
        let x_dims = self.dims(x)?;
        if x_dims.last() != Some(&k) || (gemm_bias && x_dims.len() != 2) {
            return refuse(
                Reason::Shape,
                "dynamic pattern: input rows differ from the weight",
            );
        }
        Ok(DynamicCandidate {
            nodes,
            anchor: op_i,
            step: crate::program::StepSpec::DynamicLinear {
                node: op.name.clone(),
                input: x.to_string(),
                output,
                n,
                k,
                weights,
                scales,
                bias,
                relu,
            },
        })
    }

    /// A constant `Add` of `n` values as the only reader of `output` (a bias): extends
    /// `nodes` with it and returns its output and values; otherwise `output` and no bias.
    fn trailing_bias(&self, output: &str, n: usize, nodes: &mut Vec<usize>) -> (String, Vec<f32>) {
        if let Some(add_i) = self.only_reader(output) {
            let add = &self.graph.nodes[add_i];
            if matches!(add.op, Op::Binary(BinaryOp::Add)) {
                let other = if add.input(0) == Some(output) {
                    add.input(1)
                } else {
                    add.input(0)
                };
                if let Some(b) = other.and_then(|b| self.const_f32(b)).filter(|b| b.len() == n) {
                    nodes.push(add_i);
                    return (add.outputs[0].clone(), b);
                }
            }
        }
        (output.to_string(), Vec::new())
    }

    /// A `Relu` as the only reader of `output`: extends `nodes` with it and returns its
    /// output and `true`; otherwise `output` and `false`.
    fn trailing_relu(&self, output: String, nodes: &mut Vec<usize>) -> (String, bool) {
        match self.only_reader(&output) {
            Some(r) if matches!(self.graph.nodes[r].op, Op::Unary(UnaryOp::Relu)) => {
                nodes.push(r);
                (self.graph.nodes[r].outputs[0].clone(), true)
            }
            _ => (output, false),
        }
    }

    /// ONNX Runtime's form: `DynamicQuantizeLinear → MatMulInteger → Cast → Mul`.
    fn match_dynamic_integer(&self, index: usize) -> Result<DynamicCandidate, Refusal> {
        let not = not_dynamic;
        let (xq, xs, xz) = self.dynamic_outputs(index)?;
        let mm_i = self
            .only_reader(xq)
            .ok_or_else(|| not("quantized input has other readers"))?;
        let mm = &self.graph.nodes[mm_i];
        if !matches!(mm.op, Op::MatMulInteger) || mm.input(0) != Some(xq) || mm.input(2) != Some(xz) {
            return Err(not("not read by MatMulInteger"));
        }
        if self.consumers(xz) != [mm_i] {
            return Err(not("zero point has other readers"));
        }
        if let Some(wz) = mm.input(3) {
            let zero = self
                .constant(wz)
                .map(|z| z.to_i64_vec().map(|v| v.iter().all(|&x| x == 0)));
            if !matches!(zero, Some(Ok(true))) {
                return Err(not("weight zero point is not 0"));
            }
        }
        let w = mm
            .input(1)
            .and_then(|w| self.constant(w))
            .ok_or_else(|| Refusal {
                reason: Reason::NonConstantWeight,
                detail: "MatMulInteger weight is not a constant".into(),
            })?;
        let wv = w.as_i8().map_err(|_| Refusal {
            reason: Reason::Dtype,
            detail: "MatMulInteger weight is not int8".into(),
        })?;
        let [k, n] = *w.dims() else {
            return Err(not("weight is not 2-D"));
        };
        let cast_i = self
            .only_reader(&mm.outputs[0])
            .ok_or_else(|| not("product has other readers"))?;
        let cast = &self.graph.nodes[cast_i];
        if !matches!(cast.op, Op::Cast { to: DType::F32 }) {
            return Err(not("product is not cast to f32"));
        }
        let mul_i = self
            .only_reader(&cast.outputs[0])
            .ok_or_else(|| not("cast has other readers"))?;
        let mul = &self.graph.nodes[mul_i];
        if !matches!(mul.op, Op::Binary(BinaryOp::Mul)) {
            return Err(not("cast is not scaled by Mul"));
        }
        let scale_t = if mul.input(0) == Some(cast.outputs[0].as_str()) {
            mul.input(1)
        } else {
            mul.input(0)
        };
        let smul_i = scale_t
            .and_then(|t| self.producer.get(t).copied())
            .ok_or_else(|| not("scale is not x_scale · w_scale"))?;
        let smul = &self.graph.nodes[smul_i];
        if !matches!(smul.op, Op::Binary(BinaryOp::Mul)) || self.consumers(xs) != [smul_i] {
            return Err(not("scale is not x_scale · w_scale"));
        }
        let ws = if smul.input(0) == Some(xs) {
            smul.input(1)
        } else {
            smul.input(0)
        };
        let scales = ws
            .and_then(|w| self.const_f32(w))
            .ok_or_else(|| not("weight scale is not a constant"))?;
        if ChannelScales::new(&scales, n).is_none() || scales.iter().any(|&s| validate_scale(s, "").is_err())
        {
            return Err(not("weight scales"));
        }
        if self.only_reader(&smul.outputs[0]) != Some(mul_i) {
            return Err(not("scale has other readers"));
        }
        let mut nodes = vec![index, smul_i, mm_i, cast_i, mul_i];
        let (output, bias) = self.trailing_bias(&mul.outputs[0], n, &mut nodes);
        let (output, relu) = self.trailing_relu(output, &mut nodes);
        let x = self.graph.nodes[index].input(0).unwrap_or_default();
        let x_dims = self.dims(x)?;
        if x_dims.last() != Some(&k) {
            return refuse(
                Reason::Shape,
                "dynamic pattern: input rows differ from the weight",
            );
        }
        let weights = transpose(wv, k, n);
        Ok(DynamicCandidate {
            nodes,
            anchor: mm_i,
            step: crate::program::StepSpec::DynamicLinear {
                node: mm.name.clone(),
                input: x.to_string(),
                output,
                n,
                k,
                weights,
                scales,
                bias,
                relu,
            },
        })
    }

    /// Matches the compute node at `index`.
    pub fn match_node(&self, index: usize) -> Result<Candidate, Refusal> {
        let node = &self.graph.nodes[index];
        match &node.op {
            Op::Conv(a) => self.conv(index, node, a),
            Op::Gemm(_) | Op::MatMul => self.fully_connected(index, node),
            Op::Binary(op @ (BinaryOp::Add | BinaryOp::Mul)) => self.binary(index, node, *op),
            Op::GlobalAveragePool => self.mean(index, node),
            Op::Reduce {
                kind: ReduceKind::Mean,
                ..
            } => {
                let axes = node
                    .input(1)
                    .and_then(|a| self.constant(a))
                    .map(|a| a.to_i64_vec());
                match axes {
                    Some(Ok(v)) if reduces_spatial_axes_of_4d(&v) => self.mean(index, node),
                    _ => refuse(Reason::Attribute, "ReduceMean over other axes than H, W"),
                }
            }
            Op::MaxPool(a) => self.max_pool(index, node, a),
            Op::Concat { axis } => self.concat(index, node, *axis),
            Op::Transpose { .. }
            | Op::Slice
            | Op::Pad {
                mode: PadMode::Constant,
            } => self.gather(index, node),
            Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze | Op::Unsqueeze => {
                self.reshape(index, node)
            }
            Op::QuantizeLinear(_) | Op::DequantizeLinear(_) => {
                refuse(Reason::NotQuantized, "a quantize node outside a pattern")
            }
            op if unary::is_lut_op(op) => self.lut(index, node),
            other => refuse(
                Reason::UnsupportedOp,
                format!("no int8 kernel for {}", other.onnx_name()),
            ),
        }
    }

    fn candidate(&self, index: usize, inputs: Vec<&QInput>, out: QOutput, kernel: KernelSpec) -> Candidate {
        let mut nodes = vec![index];
        nodes.extend(out.nodes);
        nodes.extend(inputs.iter().flat_map(|i| i.through.iter().copied()));
        Candidate {
            nodes,
            inputs: inputs.iter().map(|i| i.tensor.clone()).collect(),
            output: out.tensor,
            kernel,
        }
    }

    fn window(
        kernel: &[usize],
        strides: &[usize],
        dil: &[usize],
        pads: &[usize],
        auto: AutoPad,
    ) -> Result<Window, Refusal> {
        if kernel.len() != 2 {
            return refuse(Reason::Shape, "only 2-D windows");
        }
        if !matches!(auto, AutoPad::NotSet | AutoPad::Valid) {
            return refuse(Reason::Attribute, "auto_pad SAME_*");
        }
        let two = |v: &[usize]| if v.len() == 2 { (v[0], v[1]) } else { (1, 1) };
        let pads = if pads.len() == 4 && auto == AutoPad::NotSet {
            (pads[0], pads[1], pads[2], pads[3])
        } else {
            (0, 0, 0, 0)
        };
        Ok(Window {
            kernel: (kernel[0], kernel[1]),
            stride: two(strides),
            dilation: two(dil),
            pads,
        })
    }

    fn conv(&self, index: usize, node: &Node, a: &ConvAttrs) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        if x.dims.len() != 4 {
            return refuse(Reason::Shape, "only 2-D convolution");
        }
        let (w, wd, scales) = self.q_weight(&node.inputs[1], 0)?;
        let out = self.q_output(node)?;
        let (oc, icg, kh, kw) = (wd[0], wd[1], wd[2], wd[3]);
        let kernel = if a.kernel_shape.is_empty() {
            vec![kh, kw]
        } else {
            a.kernel_shape.clone()
        };
        let window = Self::window(&kernel, &a.strides, &a.dilations, &a.pads, a.auto_pad)?;
        let groups = a.group.max(1);
        let cin = x.dims[1];
        if icg * groups != cin {
            return refuse(Reason::Shape, "input channels do not match the weights");
        }
        let bias = self.q_bias(node.input(2), x.q.scale, &scales, oc)?;
        let depthwise = groups == cin && groups == oc && icg == 1;
        let weights = if depthwise {
            // [C, 1, kh, kw] → HWC
            let mut hwc = vec![0i8; w.len()];
            for c in 0..oc {
                for t in 0..kh * kw {
                    hwc[t * oc + c] = w[c * kh * kw + t];
                }
            }
            hwc
        } else {
            // OIHW → OHWI
            let mut ohwi = vec![0i8; w.len()];
            for o in 0..oc {
                for i in 0..icg {
                    for t in 0..kh * kw {
                        ohwi[(o * kh * kw + t) * icg + i] = w[(o * icg + i) * kh * kw + t];
                    }
                }
            }
            ohwi
        };
        let kernel = KernelSpec::Conv(ConvSpec {
            input: 0,
            output: 0,
            window,
            groups,
            depthwise,
            weights,
            scales,
            bias,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }

    /// Gemm, or MatMul with a constant weight; PyTorch's dynamo export of `linear` on an input
    /// of rank > 2, `MatMul(x, Transpose(DQ(W))) → Add(const bias)`, is taken whole.
    fn fully_connected(&self, index: usize, node: &Node) -> Result<Candidate, Refusal> {
        let mut covered = Vec::new();
        let mut weight = node.inputs[1].as_str();
        let trans_b = match &node.op {
            Op::Gemm(g) => {
                if g.alpha != 1.0 || g.beta != 1.0 || g.trans_a {
                    return refuse(Reason::Attribute, "Gemm with alpha/beta != 1 or transA");
                }
                g.trans_b
            }
            _ => {
                if node.input(2).is_some() {
                    return refuse(Reason::Attribute, "unexpected third input");
                }
                match self.transposed_weight(weight, index) {
                    Some((t_i, w)) => {
                        covered.push(t_i);
                        weight = w;
                        true
                    }
                    None => false,
                }
            }
        };
        let x = self.q_input(&node.inputs[0])?;
        if x.dims.len() < 2 || (matches!(node.op, Op::Gemm(_)) && x.dims.len() != 2) {
            return refuse(Reason::Shape, "input rank");
        }
        let (w, wd, scales) = self.q_weight(weight, if trans_b { 0 } else { 1 })?;
        if wd.len() != 2 {
            return refuse(Reason::Shape, "weight is not 2-D");
        }
        let (n, k) = if trans_b { (wd[0], wd[1]) } else { (wd[1], wd[0]) };
        if x.dims[x.dims.len() - 1] != k {
            return refuse(Reason::Shape, "reduction lengths differ");
        }
        let (bias_input, mut out) = match (&node.op, self.constant_bias_add(&node.outputs[0], n)) {
            (Op::MatMul, Some((add_i, bias))) => {
                let mut out = self.q_output_from(&self.graph.nodes[add_i].outputs[0])?;
                out.nodes.insert(0, add_i);
                (Some(bias), out)
            }
            _ => (node.input(2), self.q_output(node)?),
        };
        out.nodes.extend(covered);
        let weights = if trans_b { w } else { transpose(&w, k, n) };
        let bias = self.q_bias(bias_input, x.q.scale, &scales, n)?;
        let kernel = KernelSpec::FullyConnected(FullyConnectedSpec {
            input: 0,
            output: 0,
            n,
            k,
            weights,
            scales,
            bias,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }

    /// `w` = `Transpose(perm = [1, 0])(u)` of a 2-D tensor `u` made by a DequantizeLinear,
    /// read only by node `reader`: the Transpose's index and `u`.
    fn transposed_weight(&self, w: &str, reader: usize) -> Option<(usize, &'g str)> {
        let t_i = *self.producer.get(w)?;
        let t = &self.graph.nodes[t_i];
        let Op::Transpose { perm } = &t.op else {
            return None;
        };
        let u = t.input(0)?;
        let two_d = self.dims(u).ok()?.len() == 2;
        let swaps = perm.as_deref().is_none_or(|p| p == [1, 0]);
        let dequantized = matches!(self.producer(u)?.op, Op::DequantizeLinear(_));
        (two_d && swaps && dequantized && self.only_reader(w) == Some(reader)).then_some((t_i, u))
    }

    /// The only reader of `output` when it is an `Add` of a constant with `n` values (a
    /// bias): its index and the constant's name.
    fn constant_bias_add(&self, output: &str, n: usize) -> Option<(usize, &'g str)> {
        let add_i = self.only_reader(output)?;
        let add = &self.graph.nodes[add_i];
        if !matches!(add.op, Op::Binary(BinaryOp::Add)) {
            return None;
        }
        let other = if add.input(0) == Some(output) {
            add.input(1)?
        } else {
            add.input(0)?
        };
        let c = self.constant(other)?;
        (c.dims().iter().product::<usize>() == n && c.dims().len() == 1).then_some((add_i, other))
    }

    /// The DequantizeLinear node making `t` when it dequantizes a constant int8 tensor with
    /// per-tensor qparams of at most [`MAX_CONSTANT_OPERAND`] elements.
    fn constant_dequantized(&self, t: &str) -> Option<usize> {
        let &i = self.producer.get(t)?;
        let dq = &self.graph.nodes[i];
        let c = self.constant(dq.input(0)?)?;
        (matches!(dq.op, Op::DequantizeLinear(_))
            && matches!(c.dtype(), DType::I8 | DType::U8)
            && c.numel() <= MAX_CONSTANT_OPERAND)
            .then_some(i)
    }

    /// An activation input as [`Self::q_input`], or a small constant behind a
    /// DequantizeLinear (`x + 3` of a decomposed hardswish): then the input is the
    /// DequantizeLinear's `f32` output, which the lowering quantizes back into a value with
    /// the same qparams (exact: the round trip of an int8 value).
    fn q_input_or_constant(&self, t: &str) -> Result<QInput, Refusal> {
        let Some(dq_i) = self.constant_dequantized(t) else {
            return self.q_input(t);
        };
        Ok(QInput {
            tensor: t.to_string(),
            q: self.node_qparams(&self.graph.nodes[dq_i])?,
            dims: self.dims(t)?,
            through: Vec::new(),
        })
    }

    fn binary(&self, index: usize, node: &Node, op: BinaryOp) -> Result<Candidate, Refusal> {
        let a = self.q_input_or_constant(&node.inputs[0])?;
        let b = self.q_input_or_constant(&node.inputs[1])?;
        if self.constant_dequantized(&a.tensor).is_some() && self.constant_dequantized(&b.tensor).is_some() {
            return refuse(Reason::Shape, "both operands are constants");
        }
        let out = self.q_output(node)?;
        let out_dims = self.dims(&node.outputs[0])?;
        if let Err(e) = crate::program::broadcast::binary_shape(&a.dims, &b.dims, &out_dims) {
            return refuse(Reason::Shape, e.to_string());
        }
        let kind = if op == BinaryOp::Add {
            BinaryKind::Add
        } else {
            BinaryKind::Mul
        };
        let kernel = KernelSpec::Binary(BinarySpec {
            kind,
            a: 0,
            b: 1,
            output: 0,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&a, &b], out, kernel))
    }

    /// GlobalAveragePool, or ReduceMean over H, W with or without kept dims (`[N, C, 1, 1]` and
    /// `[N, C]` share one storage order).
    fn mean(&self, index: usize, node: &Node) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        if x.dims.len() != 4 {
            return refuse(Reason::Shape, "mean over H, W of a non-4-D tensor");
        }
        let y = self.dims(&node.outputs[0])?;
        if y != [x.dims[0], x.dims[1], 1, 1] && y != [x.dims[0], x.dims[1]] {
            return refuse(Reason::Shape, "mean output is neither [N, C, 1, 1] nor [N, C]");
        }
        let out = self.q_output(node)?;
        let kernel = KernelSpec::GlobalAvgPool(GlobalAvgPoolSpec {
            input: 0,
            output: 0,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }

    fn max_pool(&self, index: usize, node: &Node, a: &PoolAttrs) -> Result<Candidate, Refusal> {
        if node.outputs.len() > 1 && !node.outputs[1].is_empty() {
            return refuse(Reason::Attribute, "MaxPool indices output");
        }
        let x = self.q_input(&node.inputs[0])?;
        if x.dims.len() != 4 {
            return refuse(Reason::Shape, "only 2-D pooling");
        }
        let out = self.q_output(node)?;
        if out.q != x.q || out.range != OutputRange::FULL {
            return refuse(Reason::QParams, "MaxPool output qparams differ from the input's");
        }
        let mut window = Self::window(&a.kernel_shape, &a.strides, &a.dilations, &a.pads, a.auto_pad)?;
        let y_dims = self.dims(&node.outputs[0])?;
        if a.ceil_mode {
            window = ceil_mode_as_end_padding(window, (x.dims[2], x.dims[3]), (y_dims[2], y_dims[3]))?;
        }
        let kernel = KernelSpec::MaxPool(MaxPoolSpec {
            input: 0,
            output: 0,
            window,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }

    fn concat(&self, index: usize, node: &Node, axis: i64) -> Result<Candidate, Refusal> {
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

    /// Transpose / Slice / constant Pad with equal qparams, as a gather by an index map
    /// ([`super::gather_map`]).
    fn gather(&self, index: usize, node: &Node) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        let out = self.q_output(node)?;
        if out.q != x.q || out.range != OutputRange::FULL {
            return refuse(Reason::QParams, "output qparams differ from the input's");
        }
        let numel: usize = x.dims.iter().product();
        if numel >= 1 << 24 {
            return refuse(Reason::Shape, "too many elements for an index map");
        }
        // The constant inputs after the data (an empty name is an omitted optional input).
        let mut rest: Vec<Option<&Tensor>> = Vec::new();
        for name in node.inputs.iter().skip(1) {
            if name.is_empty() {
                rest.push(None);
                continue;
            }
            rest.push(Some(self.constant(name).ok_or_else(|| Refusal {
                reason: Reason::NonConstantWeight,
                detail: format!("`{name}` is not a constant"),
            })?));
        }
        let attribute = |e: crate::Error| Refusal {
            reason: Reason::Attribute,
            detail: e.to_string(),
        };
        let ints = |i: usize| -> Result<Option<Vec<i64>>, Refusal> {
            rest.get(i)
                .copied()
                .flatten()
                .map(|t| t.to_i64_vec())
                .transpose()
                .map_err(attribute)
        };
        let mut fill = x.q.zero_point as i8;
        let (dims, map) = match &node.op {
            Op::Transpose { perm } => gather_map::transpose(&x.dims, perm.as_deref()),
            Op::Slice => {
                let (Some(starts), Some(ends)) = (ints(0)?, ints(1)?) else {
                    return refuse(Reason::Attribute, "Slice needs starts and ends");
                };
                gather_map::slice(&x.dims, &starts, &ends, ints(2)?.as_deref(), ints(3)?.as_deref())
            }
            Op::Pad { .. } => {
                let Some(pads) = ints(0)? else {
                    return refuse(Reason::Attribute, "Pad needs pads");
                };
                if let Some(c) = rest.get(1).copied().flatten() {
                    let v = c
                        .to_f32_vec()
                        .ok()
                        .and_then(|v| v.first().copied())
                        .unwrap_or(0.0);
                    fill =
                        x.q.quantize(v, crate::qscheme::QRange::I8, crate::qscheme::NanRule::Zero) as i8;
                }
                gather_map::pad(&x.dims, &pads, ints(2)?.as_deref())
            }
            other => {
                return refuse(
                    Reason::Attribute,
                    format!("{} is not a gather", other.onnx_name()),
                )
            }
        }
        .map_err(attribute)?;
        if dims != self.dims(&node.outputs[0])? {
            return refuse(Reason::Shape, "index map shape differs from the inferred shape");
        }
        let kernel = KernelSpec::Gather(GatherSpec {
            input: 0,
            output: 0,
            map,
            fill,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }

    fn reshape(&self, index: usize, node: &Node) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        let out = self.q_output(node)?;
        if out.q != x.q || out.range != OutputRange::FULL {
            return refuse(Reason::QParams, "output qparams differ from the input's");
        }
        self.dims(&node.outputs[0])?;
        let kernel = KernelSpec::Reshape(ReshapeSpec { input: 0, output: 0 });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }
}

/// Transposes a row-major `rows × cols` matrix into `cols × rows`.
fn transpose(w: &[i8], rows: usize, cols: usize) -> Vec<i8> {
    let mut t = vec![0i8; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// A max-pool window with `ceil_mode` as the same window with extra bottom / right padding
/// that makes floor division yield the `output` size (the shape inference applies the ceil
/// rule, including dropping a last window that would start in the end padding). Padding never
/// wins a max, so the extra taps change no value.
fn ceil_mode_as_end_padding(
    window: Window,
    input: (usize, usize),
    output: (usize, usize),
) -> Result<Window, Refusal> {
    let axis = |len: usize, out: usize, k: usize, s: usize, d: usize, before: usize, after: usize| {
        if k == 0 || s == 0 || out == 0 {
            return None;
        }
        let extent = (k - 1).checked_mul(d)? + 1;
        let needed = (out - 1).checked_mul(s)?.checked_add(extent)?;
        let padded = len.checked_add(before)?.checked_add(after)?;
        let after = after + needed.saturating_sub(padded);
        ((len + before + after).checked_sub(extent)? / s + 1 == out).then_some(after)
    };
    let (top, left, bottom, right) = window.pads;
    let (k, s, d) = (window.kernel, window.stride, window.dilation);
    let bottom = axis(input.0, output.0, k.0, s.0, d.0, top, bottom);
    let right = axis(input.1, output.1, k.1, s.1, d.1, left, right);
    match (bottom, right) {
        (Some(bottom), Some(right)) => Ok(Window {
            pads: (top, left, bottom, right),
            ..window
        }),
        _ => refuse(
            Reason::Shape,
            "ceil_mode window does not give the inferred output size",
        ),
    }
}

/// `range` narrowed to the float bounds `[lo, hi]` quantized with `q` (round half even,
/// saturating).
fn clamp_range(range: OutputRange, lo: f32, hi: f32, q: QuantParams) -> Result<OutputRange, Refusal> {
    let (lo, hi) = clip_bounds(lo, hi, q);
    OutputRange::new(range.min.max(lo), range.max.min(hi)).map_err(|e| Refusal {
        reason: Reason::Attribute,
        detail: e.to_string(),
    })
}

/// Whether reduction `axes` of a 4-D NCHW tensor are exactly H and W, in any order and in
/// either sign convention (`[2, 3]`, `[-1, -2]`, ...: PyTorch's dynamo exporter writes
/// `adaptive_avg_pool2d(x, 1)` as `ReduceMean(axes = [-1, -2])`).
fn reduces_spatial_axes_of_4d(axes: &[i64]) -> bool {
    let mut normalized: Vec<i64> = axes.iter().map(|&a| if a < 0 { a + 4 } else { a }).collect();
    normalized.sort_unstable();
    normalized == [2, 3]
}

/// The refusal of a dynamic-quantization pattern, saying why.
fn not_dynamic(why: &str) -> Refusal {
    Refusal {
        reason: Reason::Attribute,
        detail: format!("dynamic pattern: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{ceil_mode_as_end_padding, reduces_spatial_axes_of_4d, Window};

    fn window(kernel: usize, stride: usize, pads: (usize, usize, usize, usize)) -> Window {
        Window {
            kernel: (kernel, kernel),
            stride: (stride, stride),
            dilation: (1, 1),
            pads,
        }
    }

    #[test]
    fn ceil_mode_becomes_end_padding_that_floor_division_reproduces() {
        // 16 → ceil((16 - 3) / 2) + 1 = 8 windows: the last one needs one more row / column.
        let w = ceil_mode_as_end_padding(window(3, 2, (0, 0, 0, 0)), (16, 15), (8, 7)).unwrap();
        assert_eq!(w.pads, (0, 0, 1, 0));
        // 13 with pads 1, 1: ceil((15 - 3) / 2) + 1 = 7 = floor: unchanged.
        let w = ceil_mode_as_end_padding(window(3, 2, (1, 1, 1, 1)), (13, 13), (7, 7)).unwrap();
        assert_eq!(w.pads, (1, 1, 1, 1));
        // An output size no padding of the end gives is refused, as are degenerate windows.
        assert!(ceil_mode_as_end_padding(window(3, 2, (0, 0, 0, 0)), (16, 16), (6, 8)).is_err());
        assert!(ceil_mode_as_end_padding(window(3, 0, (0, 0, 0, 0)), (16, 16), (8, 8)).is_err());
        assert!(ceil_mode_as_end_padding(window(0, 2, (0, 0, 0, 0)), (16, 16), (8, 8)).is_err());
    }

    #[test]
    fn spatial_axes_in_any_order_and_sign() {
        for axes in [[2, 3], [3, 2], [-1, -2], [-2, -1], [2, -1], [-1, 2]] {
            assert!(reduces_spatial_axes_of_4d(&axes), "{axes:?}");
        }
        for axes in [&[1, 2][..], &[2][..], &[1, 2, 3][..], &[2, 2][..], &[-3, -1][..]] {
            assert!(!reduces_spatial_axes_of_4d(axes), "{axes:?}");
        }
    }
}
