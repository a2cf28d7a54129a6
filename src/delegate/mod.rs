//! The delegate: finds the parts of a QDQ graph the int8 kernels implement (partitioning)
//! and lowers them into a [`crate::program::ProgramSpec`] that the runtime executes.
//!
//! Recognised patterns (each `DQ` reads an int8 tensor made by a `QuantizeLinear` with the
//! same per-tensor qparams; each pattern ends in one int8 `QuantizeLinear`):
//! - `DQ(x), DQ(const w) [, bias] → Conv / Gemm / MatMul [→ Relu / Clip] → Q` — weights int8
//!   with zero point 0, per tensor or per output channel; bias float, or int32 behind a DQ;
//!   a MatMul's weight may come through `Transpose(perm = [1, 0])` and its bias as a following
//!   `Add` of a constant (PyTorch's dynamo export of `linear` on inputs of rank > 2); a
//!   rank-4 input (stored NHWC) is reshaped into logical rows around the product;
//! - `DQ(x), DQ(const w) [, bias] → ConvTranspose [→ Relu / Clip] → Q` (2-D; weights per tensor
//!   or per output channel on axis 1); `DQ → BatchNormalization(const) [→ Relu / Clip] → Q`
//!   with nothing to fold into, as a per-channel affine (1×1 depthwise convolution);
//! - `DQ, DQ → Add / Mul [→ Relu / Clip] → Q` (same shapes);
//! - `DQ… → Concat → Q`; `DQ → GlobalAveragePool / ReduceMean(H, W; axes in any order and
//!   sign; dims kept or not) → Q`; `DQ → ReduceMean / ReduceMax (any constant axes, or all;
//!   dims kept or not) [→ Relu / Clip] → Q`, requantized, as the reduce step; `DQ → AveragePool (2-D: pads or auto_pad, strides,
//!   dilations, ceil_mode, count_include_pad) [→ Relu / Clip] → Q`, requantized;
//! - `DQ → MaxPool / Reshape / Flatten / Squeeze / Unsqueeze / Transpose / Slice /
//!   Pad(constant) → Q` with equal qparams (a 2-D MaxPool with any padding, `auto_pad`
//!   included; its `ceil_mode` becomes extra end padding, which never wins a max), and `DQ → Split → Q…`; a Transpose, Slice or Split
//!   may read through a float view (`DQ → Reshape → Split`) and a Transpose write through
//!   one, and their outputs may have other qparams (requantized by a table). Lowering turns
//!   every such move into a block copy and collapses chains of them (`move_plan`);
//! - `DQ → op [→ Relu / Clip] → Q` for the element-wise unary operators of
//!   `patterns::unary::LUT_OPS` (HardSwish, ...), as one 256-entry table lookup that is the
//!   interpreter's dequantize → op → quantize of every input byte;
//! - `DQ → Softmax [→ Relu / Clip] → Q` along one axis (opset 13, or opset < 13 when every
//!   dimension after `axis` is 1), by a table of exponentials (`kernels::softmax`);
//! - `DQ → a subgraph of element-wise float operators → Q` (`x * Sigmoid(x)`, hardswish and
//!   GELU written out, ...) whose float intermediates nothing else reads, as one table
//!   computed by running the subgraph through the interpreter's operators; and one such
//!   operator standing alone, `DQ → Relu / Clip → Q` (not folded into a preceding pattern's
//!   output range), the same way;
//! - dynamic quantization, lowered to the per-row dynamic GEMM with `f32` in and out, in
//!   ONNX Runtime's quantize_dynamic form `DynamicQuantizeLinear → MatMulInteger(const int8
//!   W) → Cast → Mul(x_scale · w_scale) [→ Add(const bias)]` and in libxq's quantizer form
//!   `DynamicQuantizeLinear → DQ → MatMul / Gemm(DQ(const int8 W), per tensor or per output
//!   channel) [bias: Gemm's C, or → Add(const bias)]`; in both forms a following `Relu` is
//!   fused into the step.
//!
//! A pattern's output may continue through `DQ → Relu / Clip → Q` with unchanged qparams (how
//! PT2E writes a ReLU / ReLU6 / hardtanh that shares its input's qparams), folded into the
//! output range; and a pattern's input may come through a requantization to the same
//! qparams, `Q(DQ(x))` (what PT2E leaves of a removed Dropout), which is the identity on int8
//! values. Both are taken only when nothing else reads the tensors in between. A
//! `DequantizeLinear` that reads a pattern's int8 output with other qparams than the
//! pattern's runs in the interpreter on that int8 tensor.
//!
//! Activations may be int8 or uint8 (a uint8 tensor `u` is carried as the int8 `u - 128`
//! with zero point `zp - 128`, which quantizes and requantizes identically).
//! A dense convolution with fewer than 8 input channels (an RGB stem) is lowered as an
//! im2col gather plus one dense GEMM; a depthwise one with a channel multiplier as a
//! channel-repeating gather plus a depthwise convolution.
//!
//! Connected patterns form a partition: int8 NHWC tensors stay in the arena between them;
//! a partition's entries quantize `f32` (NCHW) tensors and its exits dequantize back, so
//! everything else runs in the float interpreter unchanged. On request ([`int8_io`]) the
//! program's own inputs and outputs at partition edges are int8 instead of `f32`.

pub mod gather_map;
pub mod int8_io;
pub mod lower;
mod move_plan;
mod multiplier;
pub mod patterns;
pub mod report;

pub use lower::{lower, PartitionMode};
pub use patterns::Reason;
pub use report::Report;
