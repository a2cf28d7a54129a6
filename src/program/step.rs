//! The program: its steps in execution order, the interpreter's share of the graph, and the
//! check that the steps can run in their order.

use super::steps::resize::ResizeTaps;
use super::{KernelSpec, ValueSpec};
use crate::ir::{Graph, TensorInfo};
use crate::qscheme::QWeights;

/// One step of a program, executed in order.
#[derive(Clone, Debug, PartialEq)]
pub enum StepSpec {
    /// An int8 kernel of partition `partition`, named after the graph node it lowers.
    Kernel {
        /// Partition index.
        partition: usize,
        /// The lowered node's name.
        node: String,
        /// The kernel.
        kernel: KernelSpec,
    },
    /// Partition entry: quantizes an `f32` tensor (NCHW) into a value (NHWC for rank 4).
    Quantize {
        /// The `f32` tensor.
        tensor: String,
        /// The destination value.
        value: usize,
    },
    /// Partition exit: a value back to a tensor in logical layout, dequantized to `f32`
    /// or, when `int8`, copied as the graph's int8 (or uint8) tensor.
    Dequantize {
        /// The source value.
        value: usize,
        /// The tensor written.
        tensor: String,
        /// Produce the int8 tensor instead of `f32`.
        int8: bool,
    },
    /// Partition exit through a Resize of H and W: value `value` (rank 4, stored NHWC)
    /// resized by `resize` and written as the `f32` tensor `tensor` (NCHW): what
    /// DequantizeLinear → Resize computes, bit for bit
    /// ([`crate::kernels::resize::ResizeToF32`]).
    ResizeExit {
        /// The lowered Resize node's name.
        node: String,
        /// The source value.
        value: usize,
        /// The `f32` tensor written.
        tensor: String,
        /// Bilinear (else nearest) and the taps of each output row and column.
        resize: ResizeTaps,
    },
    /// Dynamically quantized fully connected layer, `f32` in and out: rows of `input`
    /// (`m × k`) quantized at run time, times int8 weights, plus an `f32` bias.
    DynamicLinear {
        /// The lowered linear node's name (MatMulInteger, MatMul or Gemm).
        node: String,
        /// The `f32` input tensor.
        input: String,
        /// The `f32` output tensor.
        output: String,
        /// Output channels.
        n: usize,
        /// Reduction length.
        k: usize,
        /// `n × k` int8 weights and their scales, one or `n`.
        weights: QWeights,
        /// `f32` bias (empty: none).
        bias: Vec<f32>,
        /// A fused ReLU: negative outputs become 0.
        relu: bool,
    },
    /// A node of [`ProgramSpec::fallback`] run by the interpreter.
    Interp {
        /// Node name (unique in the fallback graph).
        node: String,
    },
}

/// A lowered program: everything needed to execute, nothing of the source model.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramSpec {
    /// Program inputs (the model's).
    pub inputs: Vec<TensorInfo>,
    /// Program outputs (the model's).
    pub outputs: Vec<TensorInfo>,
    /// The int8 values of all partitions.
    pub values: Vec<ValueSpec>,
    /// Steps in execution order.
    pub steps: Vec<StepSpec>,
    /// The nodes left to the interpreter and the constants they read (its inputs and
    /// outputs are the tensors exchanged with the steps).
    pub fallback: Graph,
    /// The partitioning report (text).
    pub report: String,
    /// The partitioning report as data; `None` for a program file that predates it.
    pub report_data: Option<super::ReportData>,
}

impl ProgramSpec {
    /// Checks that the steps can run in their order: every value index is in range, every
    /// interpreter step names a node of [`ProgramSpec::fallback`], every step reads only
    /// program inputs, fallback constants or what an earlier step produced, and every
    /// program output is produced. The error names the step and the missing tensor.
    pub fn check_dataflow(&self) -> std::result::Result<(), String> {
        use std::collections::{HashMap, HashSet};
        let mut ready: HashSet<&str> = self
            .inputs
            .iter()
            .map(|i| i.name.as_str())
            .chain(self.fallback.initializers.keys().map(String::as_str))
            .collect();
        let nodes: HashMap<&str, &crate::ir::Node> =
            self.fallback.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        let mut written = vec![false; self.values.len()];
        let n_values = self.values.len();
        let in_range = |v: usize, i: usize| {
            (v < n_values)
                .then_some(v)
                .ok_or_else(|| format!("step {i} refers to value {v} of {n_values}"))
        };
        for (i, step) in self.steps.iter().enumerate() {
            let missing = |what: &str, by: &str| {
                format!("step {i} ({by}) reads `{what}`, which no earlier step produces")
            };
            match step {
                StepSpec::Kernel { node, kernel, .. } => {
                    for v in kernel.inputs() {
                        if !written[in_range(v, i)?] {
                            return Err(missing(&self.values[v].name, &format!("kernel of `{node}`")));
                        }
                    }
                    written[in_range(kernel.output(), i)?] = true;
                }
                StepSpec::Quantize { tensor, value } => {
                    let v = in_range(*value, i)?;
                    if !ready.contains(tensor.as_str()) {
                        return Err(missing(
                            tensor,
                            &format!("quantize into `{}`", self.values[v].name),
                        ));
                    }
                    written[v] = true;
                }
                StepSpec::Dequantize { value, tensor, .. } => {
                    let v = in_range(*value, i)?;
                    if !written[v] {
                        return Err(missing(
                            &self.values[v].name,
                            &format!("dequantize into `{tensor}`"),
                        ));
                    }
                    ready.insert(tensor);
                }
                StepSpec::ResizeExit {
                    node, value, tensor, ..
                } => {
                    let v = in_range(*value, i)?;
                    if !written[v] {
                        return Err(missing(&self.values[v].name, &format!("resize `{node}`")));
                    }
                    ready.insert(tensor);
                }
                StepSpec::DynamicLinear {
                    node, input, output, ..
                } => {
                    if !ready.contains(input.as_str()) {
                        return Err(missing(input, &format!("dynamic linear `{node}`")));
                    }
                    ready.insert(output);
                }
                StepSpec::Interp { node } => {
                    let n = nodes.get(node.as_str()).ok_or_else(|| {
                        format!("step {i} runs node `{node}`, which the program does not hold")
                    })?;
                    if let Some(t) = n
                        .inputs
                        .iter()
                        .find(|t| !t.is_empty() && !ready.contains(t.as_str()))
                    {
                        return Err(missing(t, &format!("node `{node}`")));
                    }
                    ready.extend(n.outputs.iter().filter(|t| !t.is_empty()).map(String::as_str));
                }
            }
        }
        match self.outputs.iter().find(|o| !ready.contains(o.name.as_str())) {
            Some(o) => Err(format!("no step produces the program output `{}`", o.name)),
            None => Ok(()),
        }
    }
}
