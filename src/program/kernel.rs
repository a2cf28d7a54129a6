//! Kernel steps: one int8 kernel each, with its geometry and unpacked constants.

use crate::kernels::OutputRange;

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

/// One int8 kernel step; `input`/`output` fields index [`ProgramSpec::values`](super::ProgramSpec::values).
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
