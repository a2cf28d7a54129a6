//! The lowered program as plain data: int8 values, kernel steps with their unpacked
//! constants, boundary conversions and the interpreter's share of the graph. Lowering
//! produces it, the runtime builds kernels from it, and the program file stores it.

use crate::ir::{Graph, TensorInfo};
use crate::kernels::{OutputRange, QuantParams};

/// One int8 tensor living in the delegate's arena.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueSpec {
    /// The QDQ graph's name of the quantized tensor.
    pub name: String,
    /// Logical (ONNX, NCHW) dimensions.
    pub dims: Vec<usize>,
    /// Per-tensor quantization (int8 terms).
    pub q: QuantParams,
    /// The graph's tensor is uint8: stored as `u - 128` (with `q.zero_point` shifted alike).
    pub unsigned: bool,
}

impl ValueSpec {
    /// Rank-4 values are stored NHWC; every other rank row-major in logical order.
    pub fn is_nhwc(&self) -> bool {
        self.dims.len() == 4
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }
}

/// 2-D window geometry in ONNX terms (pads are top, left, bottom, right).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Strides (h, w).
    pub stride: (usize, usize),
    /// Dilations (h, w).
    pub dilation: (usize, usize),
    /// Pads: top, left, bottom, right.
    pub pads: (usize, usize, usize, usize),
}

/// Element-wise binary kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    /// Quantized add.
    Add,
    /// Quantized multiply.
    Mul,
}

/// [`KernelSpec::Gather`] map entry of an element that is padding.
pub const GATHER_FILL: u32 = u32::MAX;

/// One int8 kernel step; `input`/`output` fields index [`ProgramSpec::values`].
#[derive(Clone, Debug, PartialEq)]
pub enum KernelSpec {
    /// 2-D convolution (groups ≥ 1) with OHWI weights, or depthwise (multiplier 1) with HWC
    /// weights when `depthwise`.
    Conv {
        /// Input value.
        input: usize,
        /// Output value.
        output: usize,
        /// Window geometry.
        window: Window,
        /// Groups (1 for dense convolution; channels for depthwise).
        groups: usize,
        /// Depthwise kernel family (weights are HWC).
        depthwise: bool,
        /// Int8 weights, zero point 0.
        weights: Vec<i8>,
        /// One or per-output-channel weight scales.
        scales: Vec<f32>,
        /// Int32 bias with scale `s_in * s_w[c]` (empty: none).
        bias: Vec<i32>,
        /// Output range after the fused activation.
        range: OutputRange,
    },
    /// Fully connected `y[m, n] = x[m, k] · W[n, k]ᵀ`.
    FullyConnected {
        /// Input value (`m × k` row-major).
        input: usize,
        /// Output value (`m × n`).
        output: usize,
        /// Output channels.
        n: usize,
        /// Reduction length.
        k: usize,
        /// `n × k` weights.
        weights: Vec<i8>,
        /// One or `n` weight scales.
        scales: Vec<f32>,
        /// Int32 bias (empty: none).
        bias: Vec<i32>,
        /// Output range after the fused activation.
        range: OutputRange,
    },
    /// Add / Mul of two same-shaped values.
    Binary {
        /// The operation.
        kind: BinaryKind,
        /// First input.
        a: usize,
        /// Second input.
        b: usize,
        /// Output.
        output: usize,
        /// Output range after the fused activation.
        range: OutputRange,
    },
    /// Mean over H and W of an NHWC value.
    GlobalAvgPool {
        /// Input value.
        input: usize,
        /// Output value.
        output: usize,
        /// Output range after the fused activation.
        range: OutputRange,
    },
    /// Max pool (output qparams equal the input's).
    MaxPool {
        /// Input value.
        input: usize,
        /// Output value.
        output: usize,
        /// Window geometry.
        window: Window,
    },
    /// Concatenation along the channel axis of NHWC values, or along any axis of row-major
    /// values.
    Concat {
        /// Input values.
        inputs: Vec<usize>,
        /// Output value.
        output: usize,
        /// Logical axis (non-negative).
        axis: usize,
    },
    /// A byte move by index (Transpose, Slice, Pad): logical output element `i` is logical
    /// input element `map[i]`, or `fill` where `map[i]` is [`GATHER_FILL`].
    Gather {
        /// Input value.
        input: usize,
        /// Output value.
        output: usize,
        /// Source index per logical output element.
        map: Vec<u32>,
        /// The byte written for padding.
        fill: i8,
    },
    /// Gathers the convolution windows of an NHWC value into rows of `k_padded` bytes
    /// (taps in `(ky, kx, channel)` order, padding taps and the row tail filled with the
    /// input zero point), so that a small-channel convolution runs as one dense GEMM.
    Im2col {
        /// Input value (NHWC).
        input: usize,
        /// Output value (`pixels × k_padded`, row-major).
        output: usize,
        /// Window geometry.
        window: Window,
        /// Row length (taps · channels rounded up to a multiple of 4).
        k_padded: usize,
    },
    /// A byte move that keeps the logical element order (Reshape, Flatten, Squeeze,
    /// Unsqueeze), converting between NHWC and row-major storage as needed.
    Reshape {
        /// Input value.
        input: usize,
        /// Output value.
        output: usize,
    },
}

impl KernelSpec {
    /// The values the step reads.
    pub fn inputs(&self) -> Vec<usize> {
        match self {
            KernelSpec::Conv { input, .. }
            | KernelSpec::FullyConnected { input, .. }
            | KernelSpec::GlobalAvgPool { input, .. }
            | KernelSpec::MaxPool { input, .. }
            | KernelSpec::Reshape { input, .. }
            | KernelSpec::Im2col { input, .. }
            | KernelSpec::Gather { input, .. } => vec![*input],
            KernelSpec::Binary { a, b, .. } => vec![*a, *b],
            KernelSpec::Concat { inputs, .. } => inputs.clone(),
        }
    }

    /// The value the step writes.
    pub fn output(&self) -> usize {
        match self {
            KernelSpec::Conv { output, .. }
            | KernelSpec::FullyConnected { output, .. }
            | KernelSpec::GlobalAvgPool { output, .. }
            | KernelSpec::MaxPool { output, .. }
            | KernelSpec::Reshape { output, .. }
            | KernelSpec::Im2col { output, .. }
            | KernelSpec::Gather { output, .. }
            | KernelSpec::Binary { output, .. }
            | KernelSpec::Concat { output, .. } => *output,
        }
    }

    /// A short name for reports and profiles.
    pub fn kind_name(&self) -> &'static str {
        match self {
            KernelSpec::Conv { depthwise: true, .. } => "dwconv",
            KernelSpec::Conv { .. } => "conv",
            KernelSpec::FullyConnected { .. } => "fully_connected",
            KernelSpec::Binary {
                kind: BinaryKind::Add,
                ..
            } => "add",
            KernelSpec::Binary {
                kind: BinaryKind::Mul,
                ..
            } => "mul",
            KernelSpec::GlobalAvgPool { .. } => "global_avg_pool",
            KernelSpec::MaxPool { .. } => "max_pool",
            KernelSpec::Concat { .. } => "concat",
            KernelSpec::Reshape { .. } => "reshape",
            KernelSpec::Im2col { .. } => "im2col",
            KernelSpec::Gather { .. } => "gather",
        }
    }
}

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
        /// `n × k` int8 weights.
        weights: Vec<i8>,
        /// One or `n` weight scales.
        scales: Vec<f32>,
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
