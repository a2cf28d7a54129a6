//! Typed graph operators. Every operator the importer accepts has one variant with typed
//! attributes; operands that ONNX moved from attributes to inputs over opsets (axes, pads,
//! clip bounds, slice ranges) are always inputs here, in their newest-opset form.

pub use super::transformer::{AttentionAttrs, MultiHeadAttentionAttrs, OpDomain, QkOutputMode, RotaryAttrs};
use super::DType;

/// How convolution and pooling padding is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AutoPad {
    /// Use the explicit `pads`.
    #[default]
    NotSet,
    /// No padding.
    Valid,
    /// Output size = ceil(input / stride); extra padding goes at the end.
    SameUpper,
    /// Output size = ceil(input / stride); extra padding goes at the beginning.
    SameLower,
}

/// Attributes shared by Conv, ConvTranspose, QLinearConv and ConvInteger.
/// Empty vectors mean "the ONNX default for the input's spatial rank".
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ConvAttrs {
    /// Spatial kernel shape; taken from the weight when empty.
    pub kernel_shape: Vec<usize>,
    /// Strides per spatial axis.
    pub strides: Vec<usize>,
    /// Padding: all begins, then all ends.
    pub pads: Vec<usize>,
    /// Dilations per spatial axis.
    pub dilations: Vec<usize>,
    /// Number of groups (1 = dense, channels = depthwise).
    pub group: usize,
    /// Automatic padding mode.
    pub auto_pad: AutoPad,
}

/// Extra attributes of ConvTranspose.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ConvTransposeAttrs {
    /// The shared convolution attributes.
    pub conv: ConvAttrs,
    /// Extra size added to one side of each spatial output axis.
    pub output_padding: Vec<usize>,
    /// Explicit spatial output shape (overrides pads when not empty).
    pub output_shape: Vec<usize>,
}

/// Attributes of MaxPool and AveragePool.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PoolAttrs {
    /// Spatial window shape.
    pub kernel_shape: Vec<usize>,
    /// Strides per spatial axis (default 1).
    pub strides: Vec<usize>,
    /// Padding: all begins, then all ends.
    pub pads: Vec<usize>,
    /// Dilations per spatial axis (default 1).
    pub dilations: Vec<usize>,
    /// Automatic padding mode.
    pub auto_pad: AutoPad,
    /// Round output sizes up instead of down.
    pub ceil_mode: bool,
    /// AveragePool: count padded cells in the divisor.
    pub count_include_pad: bool,
}

/// Attributes of Gemm: `Y = alpha * op(A) * op(B) + beta * C`.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmAttrs {
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of C.
    pub beta: f32,
    /// Transpose A.
    pub trans_a: bool,
    /// Transpose B.
    pub trans_b: bool,
}

impl Default for GemmAttrs {
    fn default() -> Self {
        GemmAttrs {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
        }
    }
}

/// Element-wise operators of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// max(x, 0)
    Relu,
    /// 1 / (1 + e^-x)
    Sigmoid,
    /// tanh(x)
    Tanh,
    /// x * relu6(x + 3) / 6
    HardSwish,
    /// sqrt(x)
    Sqrt,
    /// e^x
    Exp,
    /// Gauss error function.
    Erf,
    /// -x
    Neg,
    /// |x|
    Abs,
    /// 1 / x
    Reciprocal,
    /// Natural logarithm.
    Log,
    /// Round down.
    Floor,
    /// Round up.
    Ceil,
    /// Round half to even.
    Round,
    /// ln(1 + e^x)
    Softplus,
    /// x / (1 + |x|)
    Softsign,
    /// x * tanh(softplus(x))
    Mish,
    /// Logical not (bool).
    Not,
    /// Cosine (radians).
    Cos,
    /// Sine (radians).
    Sin,
    /// SiLU `x · sigmoid(x)`, what the runtime fuses a Sigmoid and the Mul of its input
    /// into (ONNX calls it Swish with `alpha` 1, opset 24; not imported yet).
    Silu,
}

impl UnaryOp {
    /// The ONNX operator name.
    pub fn onnx_name(self) -> &'static str {
        match self {
            UnaryOp::Relu => "Relu",
            UnaryOp::Sigmoid => "Sigmoid",
            UnaryOp::Tanh => "Tanh",
            UnaryOp::HardSwish => "HardSwish",
            UnaryOp::Sqrt => "Sqrt",
            UnaryOp::Exp => "Exp",
            UnaryOp::Erf => "Erf",
            UnaryOp::Neg => "Neg",
            UnaryOp::Abs => "Abs",
            UnaryOp::Reciprocal => "Reciprocal",
            UnaryOp::Log => "Log",
            UnaryOp::Floor => "Floor",
            UnaryOp::Ceil => "Ceil",
            UnaryOp::Round => "Round",
            UnaryOp::Softplus => "Softplus",
            UnaryOp::Softsign => "Softsign",
            UnaryOp::Mish => "Mish",
            UnaryOp::Not => "Not",
            UnaryOp::Cos => "Cos",
            UnaryOp::Sin => "Sin",
            UnaryOp::Silu => "Swish",
        }
    }
}

/// Element-wise operators of two broadcast inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// a / b (integer division truncates)
    Div,
    /// a ^ b
    Pow,
    /// max(a, b) (ONNX Max with more inputs folds left)
    Max,
    /// min(a, b) (ONNX Min with more inputs folds left)
    Min,
    /// PRelu: `a` where `a >= 0` (or NaN), `a * b` where `a < 0`; `b` (the slope) broadcasts
    /// to `a`'s shape.
    PRelu,
}

impl BinaryOp {
    /// The ONNX operator name.
    pub fn onnx_name(self) -> &'static str {
        match self {
            BinaryOp::Add => "Add",
            BinaryOp::Sub => "Sub",
            BinaryOp::Mul => "Mul",
            BinaryOp::Div => "Div",
            BinaryOp::Pow => "Pow",
            BinaryOp::Max => "Max",
            BinaryOp::Min => "Min",
            BinaryOp::PRelu => "PRelu",
        }
    }
}

/// Element-wise comparisons producing bool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// a == b
    Equal,
    /// a < b
    Less,
    /// a > b
    Greater,
    /// a <= b
    LessOrEqual,
    /// a >= b
    GreaterOrEqual,
}

impl CompareOp {
    /// The ONNX operator name.
    pub fn onnx_name(self) -> &'static str {
        match self {
            CompareOp::Equal => "Equal",
            CompareOp::Less => "Less",
            CompareOp::Greater => "Greater",
            CompareOp::LessOrEqual => "LessOrEqual",
            CompareOp::GreaterOrEqual => "GreaterOrEqual",
        }
    }
}

/// Element-wise logical operators on bool tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogicalOp {
    /// a && b
    And,
    /// a || b
    Or,
    /// a != b
    Xor,
}

impl LogicalOp {
    /// The ONNX operator name.
    pub fn onnx_name(self) -> &'static str {
        match self {
            LogicalOp::And => "And",
            LogicalOp::Or => "Or",
            LogicalOp::Xor => "Xor",
        }
    }
}

/// What a reduction computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    /// Arithmetic mean.
    Mean,
    /// Sum.
    Sum,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
}

impl ReduceKind {
    /// The ONNX operator name.
    pub fn onnx_name(self) -> &'static str {
        match self {
            ReduceKind::Mean => "ReduceMean",
            ReduceKind::Sum => "ReduceSum",
            ReduceKind::Max => "ReduceMax",
            ReduceKind::Min => "ReduceMin",
        }
    }
}

/// Pad's fill mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PadMode {
    /// Fill with the constant value input.
    #[default]
    Constant,
    /// Mirror without repeating the edge.
    Reflect,
    /// Repeat the edge value.
    Edge,
    /// Wrap around.
    Wrap,
}

/// DepthToSpace's and SpaceToDepth's channel order: where the block offset `(i, j)` sits in
/// the deep side's channel index (`b` the block side, `C` the shallow side's channels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DepthSpaceMode {
    /// Depth-column-row: channel `(i·b + j)·C + c` is block offset `(i, j)` of channel `c`.
    #[default]
    Dcr,
    /// Column-row-depth: channel `c·b² + i·b + j` is block offset `(i, j)` of channel `c`.
    Crd,
}

/// Resize interpolation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ResizeMode {
    /// Nearest neighbour.
    #[default]
    Nearest,
    /// (Multi-)linear.
    Linear,
    /// Cubic convolution (Keys, coefficient `cubic_coeff_a`).
    Cubic,
}

/// How Resize maps output coordinates to input coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CoordinateTransform {
    /// (x + 0.5) / scale - 0.5
    #[default]
    HalfPixel,
    /// Like half_pixel, but 0 when the output length is 1.
    PytorchHalfPixel,
    /// x * (in - 1) / (out - 1)
    AlignCorners,
    /// x / scale
    Asymmetric,
    /// Crop by the roi input, then align.
    TfCropAndResize,
    /// half_pixel with a centred adjustment.
    HalfPixelSymmetric,
}

/// How nearest-mode Resize rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NearestMode {
    /// Round, halves down.
    #[default]
    RoundPreferFloor,
    /// Round, halves up.
    RoundPreferCeil,
    /// Floor.
    Floor,
    /// Ceil.
    Ceil,
}

/// How Resize treats `sizes` when only some constraints can be kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AspectRatioPolicy {
    /// Use sizes as given.
    #[default]
    Stretch,
    /// Scale uniformly so the result fits inside sizes.
    NotLarger,
    /// Scale uniformly so the result covers sizes.
    NotSmaller,
}

/// Attributes of Resize. Inputs: X, roi?, scales?, sizes?.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ResizeAttrs {
    /// Interpolation.
    pub mode: ResizeMode,
    /// Coordinate mapping.
    pub coordinate_transform: CoordinateTransform,
    /// Rounding for nearest mode.
    pub nearest_mode: NearestMode,
    /// Cubic coefficient (cubic mode only).
    pub cubic_coeff_a: f32,
    /// Cubic: renormalise weights that fall outside.
    pub exclude_outside: bool,
    /// Value for points outside the input in tf_crop_and_resize.
    pub extrapolation_value: f32,
    /// Antialiasing filter when downsampling.
    pub antialias: bool,
    /// Axes that roi/scales/sizes refer to (all when empty).
    pub axes: Vec<i64>,
    /// Aspect-ratio policy for sizes.
    pub keep_aspect_ratio_policy: AspectRatioPolicy,
}

/// Attributes of QuantizeLinear / DequantizeLinear. Inputs: x, scale, zero_point?.
/// Per-tensor when scale is a scalar; per-axis when scale is 1-D and `block_size == 0`;
/// blocked when `block_size > 0` (scale has the input's rank).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantAttrs {
    /// The quantization axis (negative counts from the end).
    pub axis: i64,
    /// Block length along `axis` (0 = not blocked).
    pub block_size: usize,
    /// QuantizeLinear: the output type when there is no zero point (default u8).
    pub output_dtype: Option<DType>,
    /// Saturate float8 conversions (kept for round trips).
    pub saturate: bool,
}

impl Default for QuantAttrs {
    fn default() -> Self {
        QuantAttrs {
            axis: 1,
            block_size: 0,
            output_dtype: None,
            saturate: true,
        }
    }
}

/// How ScatterND combines an update with the element it lands on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScatterReduction {
    /// Replace the element (later updates of one element win).
    #[default]
    None,
    /// Add the update.
    Add,
    /// Multiply by the update.
    Mul,
    /// Keep the larger.
    Max,
    /// Keep the smaller.
    Min,
}

/// A graph operator with its attributes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Convolution. Inputs: X, W, B?.
    Conv(ConvAttrs),
    /// Transposed convolution. Inputs: X, W (C_in, C_out/group, k...), B?.
    ConvTranspose(ConvTransposeAttrs),
    /// General matrix multiply. Inputs: A, B, C?.
    Gemm(GemmAttrs),
    /// numpy matmul. Inputs: A, B.
    MatMul,
    /// Element-wise unary operator.
    Unary(UnaryOp),
    /// Element-wise broadcast binary operator.
    Binary(BinaryOp),
    /// Clamp. Inputs: x, min?, max?.
    Clip,
    /// x if x >= 0 else alpha * x.
    LeakyRelu {
        /// Negative slope.
        alpha: f32,
    },
    /// clamp(alpha * x + beta, 0, 1).
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// x if x >= 0 else alpha * (e^x - 1).
    Elu {
        /// Scale of the negative part.
        alpha: f32,
    },
    /// max(0, x) + min(0, alpha * (e^(x / alpha) - 1)).
    Celu {
        /// Scale and stretch of the negative part.
        alpha: f32,
    },
    /// gamma * (x if x > 0 else alpha * (e^x - 1)).
    Selu {
        /// Scale of the negative part.
        alpha: f32,
        /// Scale of the whole.
        gamma: f32,
    },
    /// Softmax along `axis`.
    Softmax {
        /// Axis (negative counts from the end).
        axis: i64,
        /// Opset < 13 semantics: flatten to 2-D at `axis` and normalise each row.
        coerce_2d: bool,
    },
    /// Inference batch normalisation. Inputs: X, scale, B, mean, var.
    BatchNormalization {
        /// Variance epsilon.
        epsilon: f32,
    },
    /// Max pooling.
    MaxPool(PoolAttrs),
    /// Average pooling.
    AveragePool(PoolAttrs),
    /// Mean over all spatial axes, keeping them as size 1.
    GlobalAveragePool,
    /// Reduction over axes. Inputs: data, axes? (i64).
    Reduce {
        /// What is computed.
        kind: ReduceKind,
        /// Keep reduced axes as size 1.
        keepdims: bool,
        /// With no axes: identity instead of reducing everything.
        noop_with_empty_axes: bool,
    },
    /// Layer normalisation over the axes from `axis` on. Inputs: X, Scale, B?.
    /// Outputs: Y, Mean?, InvStdDev? (statistics shaped like X with the normalised axes 1).
    LayerNormalization {
        /// First normalised axis (negative counts from the end).
        axis: i64,
        /// Variance epsilon.
        epsilon: f32,
    },
    /// GELU activation.
    Gelu {
        /// Use the tanh approximation.
        tanh_approximation: bool,
    },
    /// Element-wise comparison to bool. Inputs: A, B.
    Compare(CompareOp),
    /// Element-wise logical operator on broadcast bool inputs. Inputs: A, B.
    Logical(LogicalOp),
    /// Cast to the element type of the second input. Inputs: input, target_type.
    CastLike,
    /// Select X where cond else Y, broadcast. Inputs: cond, X, Y.
    Where,
    /// Broadcast to a shape. Inputs: input, shape (i64).
    Expand,
    /// Split into `num_outputs` parts along `axis`. Inputs: input, split? (i64).
    Split {
        /// Axis (negative counts from the end).
        axis: i64,
        /// Number of outputs.
        num_outputs: usize,
    },
    /// A tensor of the given shape filled with `value`. Inputs: shape (i64).
    ConstantOfShape {
        /// The one-element fill value (its dtype is the output's).
        value: super::Tensor,
    },
    /// `start, start + delta, ...` below `limit`. Inputs: start, limit, delta (scalars).
    Range,
    /// Concatenate along an axis.
    Concat {
        /// Axis (negative counts from the end).
        axis: i64,
    },
    /// Reshape. Inputs: data, shape (i64).
    Reshape {
        /// A 0 in shape means size 0 instead of "copy the input dim".
        allowzero: bool,
    },
    /// Flatten to 2-D at an axis.
    Flatten {
        /// Axis (negative counts from the end).
        axis: i64,
    },
    /// Permute axes (reverse when `perm` is None).
    Transpose {
        /// The permutation.
        perm: Option<Vec<usize>>,
    },
    /// Remove size-1 axes. Inputs: data, axes? (i64).
    Squeeze,
    /// Insert size-1 axes. Inputs: data, axes (i64).
    Unsqueeze,
    /// Strided slice. Inputs: data, starts, ends, axes?, steps?.
    Slice,
    /// Pad. Inputs: data, pads (i64), constant_value?, axes?.
    Pad {
        /// Fill mode.
        mode: PadMode,
    },
    /// Channels to `blocksize × blocksize` spatial blocks of a 4-D NCHW tensor.
    DepthToSpace {
        /// The block's side (≥ 1).
        blocksize: usize,
        /// Channel order.
        mode: DepthSpaceMode,
    },
    /// `blocksize × blocksize` spatial blocks of a 4-D NCHW tensor to channels.
    SpaceToDepth {
        /// The block's side (≥ 1).
        blocksize: usize,
        /// Channel order (an attribute since opset 28; DCR before).
        mode: DepthSpaceMode,
    },
    /// Gather along an axis. Inputs: data, indices.
    Gather {
        /// Axis (negative counts from the end).
        axis: i64,
    },
    /// The input's shape as an i64 vector, sliced to [start, end).
    Shape {
        /// First axis.
        start: i64,
        /// One past the last axis (None = rank).
        end: Option<i64>,
    },
    /// The input's element count as an i64 scalar.
    Size,
    /// Element type conversion.
    Cast {
        /// Target type.
        to: DType,
    },
    /// Copy.
    Identity,
    /// Resize. Inputs: X, roi?, scales?, sizes?.
    Resize(ResizeAttrs),
    /// Float → integer. Inputs: x, y_scale, y_zero_point?.
    QuantizeLinear(QuantAttrs),
    /// Integer → float. Inputs: x, x_scale, x_zero_point?.
    DequantizeLinear(QuantAttrs),
    /// Float → u8 with a computed scale. Outputs: y, y_scale, y_zero_point.
    DynamicQuantizeLinear,
    /// Quantized convolution. Inputs: x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B?.
    QLinearConv(ConvAttrs),
    /// Quantized matmul. Inputs: a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp.
    QLinearMatMul,
    /// Integer convolution to i32. Inputs: x, w, x_zp?, w_zp?.
    ConvInteger(ConvAttrs),
    /// Integer matmul to i32. Inputs: A, B, a_zp?, b_zp?.
    MatMulInteger,
    /// RMS normalisation over the axes from `axis` on: `x / sqrt(mean(x²) + eps) * scale`.
    /// Inputs: X, scale. Outputs: Y, and for ONNX Runtime's SimplifiedLayerNormalization
    /// InvStdDev? (shaped like X with the normalised axes 1).
    RmsNormalization {
        /// First normalised axis (negative counts from the end).
        axis: i64,
        /// Added to the mean square.
        epsilon: f32,
        /// ONNX Runtime's SimplifiedLayerNormalization (else ONNX RMSNormalization).
        simplified: bool,
    },
    /// ONNX Runtime's SkipLayerNormalization / SkipSimplifiedLayerNormalization: `s = input +
    /// skip + bias`, normalised over the last axis. Inputs: input, skip, gamma, beta?, bias?
    /// (beta absent when simplified). Outputs: output, mean?, inv_std_var?,
    /// input_skip_bias_sum? (mean and inv_std_var shaped like input with the last axis 1).
    SkipNormalization {
        /// Variance epsilon.
        epsilon: f32,
        /// RMS normalisation (SkipSimplifiedLayerNormalization).
        simplified: bool,
    },
    /// GELU of `x + bias` (ONNX Runtime's BiasGelu; FastGelu with a bias when tanh).
    /// Inputs: X, bias (broadcast to X).
    BiasGelu {
        /// The tanh approximation (FastGelu).
        tanh_approximation: bool,
    },
    /// Rotary position embedding (ONNX opset 23 or `com.microsoft`).
    RotaryEmbedding(RotaryAttrs),
    /// ONNX scaled dot-product attention (opset 23).
    Attention(AttentionAttrs),
    /// ONNX Runtime's MultiHeadAttention (`com.microsoft`).
    MultiHeadAttention(MultiHeadAttentionAttrs),
    /// ONNX Runtime's Attention (`com.microsoft`): one input projected by merged Q/K/V
    /// weights, then MultiHeadAttention. Inputs: input, weights, bias?, mask_index?, (past,
    /// refused), attention_bias?. Output: output.
    PackedAttention {
        /// Heads, scale, mask value and causality (as MultiHeadAttention).
        mha: MultiHeadAttentionAttrs,
        /// Hidden sizes of Q, K and V (empty: the weights' columns in three equal parts).
        qkv_hidden_sizes: Vec<usize>,
    },
    /// ONNX Runtime's EmbedLayerNormalization (`com.microsoft`): word + position (+ segment)
    /// embeddings, layer-normalised. Inputs: input_ids, segment_ids?, word_embedding,
    /// position_embedding, segment_embedding?, gamma, beta, mask?, position_ids?. Outputs:
    /// output, mask_index? (i32 count of mask ones per batch), embedding_sum?.
    EmbedLayerNormalization {
        /// Variance epsilon.
        epsilon: f32,
    },
    /// Whether each element is NaN (float in, bool out).
    IsNaN,
    /// Gather single elements along an axis: `out[i][j][k] = data[index][j][k]` (axis 0)
    /// with `index = indices[i][j][k]`. Inputs: data, indices (same rank; i32 or i64).
    GatherElements {
        /// Axis (negative counts from the end).
        axis: i64,
    },
    /// Gather slices addressed by the last axis of `indices`, after `batch_dims` leading axes
    /// shared by data and indices. Inputs: data, indices (i64).
    GatherND {
        /// Number of leading batch axes.
        batch_dims: usize,
    },
    /// Keep the upper (or lower) triangle of the last two axes from the `k`-th diagonal on,
    /// zero the rest. Inputs: input, k? (i64 scalar, default 0).
    Trilu {
        /// Keep `j - i >= k` (else `j - i <= k`).
        upper: bool,
    },
    /// Cumulative sum along an axis. Inputs: x, axis (i32 or i64 scalar).
    CumSum {
        /// Leave out the element itself (the first sum is 0).
        exclusive: bool,
        /// Sum from the end of the axis.
        reverse: bool,
    },
    /// A copy of data with the slices addressed by the index tuples (the last axis of
    /// `indices`) combined with `updates`. Inputs: data, indices (i64), updates.
    ScatterND {
        /// How an update combines with the element it lands on.
        reduction: ScatterReduction,
    },
    /// Einstein summation over the operands. Inputs: one per operand of the equation.
    Einsum {
        /// The equation, e.g. `"bhqd,bhkd->bhqk"` (see [`crate::ir::einsum`]).
        equation: String,
    },
}

impl Op {
    /// The ONNX operator name (the op type used in messages and on export).
    pub fn onnx_name(&self) -> &'static str {
        match self {
            Op::Conv(_) => "Conv",
            Op::ConvTranspose(_) => "ConvTranspose",
            Op::Gemm(_) => "Gemm",
            Op::MatMul => "MatMul",
            Op::Unary(u) => u.onnx_name(),
            Op::Binary(b) => b.onnx_name(),
            Op::Clip => "Clip",
            Op::LeakyRelu { .. } => "LeakyRelu",
            Op::HardSigmoid { .. } => "HardSigmoid",
            Op::Elu { .. } => "Elu",
            Op::Celu { .. } => "Celu",
            Op::Selu { .. } => "Selu",
            Op::Softmax { .. } => "Softmax",
            Op::BatchNormalization { .. } => "BatchNormalization",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(_) => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::Reduce { kind, .. } => kind.onnx_name(),
            Op::LayerNormalization { .. } => "LayerNormalization",
            Op::Gelu { .. } => "Gelu",
            Op::Compare(c) => c.onnx_name(),
            Op::Where => "Where",
            Op::Logical(l) => l.onnx_name(),
            Op::CastLike => "CastLike",
            Op::Expand => "Expand",
            Op::Split { .. } => "Split",
            Op::ConstantOfShape { .. } => "ConstantOfShape",
            Op::Range => "Range",
            Op::Concat { .. } => "Concat",
            Op::Reshape { .. } => "Reshape",
            Op::Flatten { .. } => "Flatten",
            Op::Transpose { .. } => "Transpose",
            Op::Squeeze => "Squeeze",
            Op::Unsqueeze => "Unsqueeze",
            Op::Slice => "Slice",
            Op::Pad { .. } => "Pad",
            Op::DepthToSpace { .. } => "DepthToSpace",
            Op::SpaceToDepth { .. } => "SpaceToDepth",
            Op::Gather { .. } => "Gather",
            Op::Shape { .. } => "Shape",
            Op::Cast { .. } => "Cast",
            Op::Size => "Size",
            Op::Identity => "Identity",
            Op::Resize(_) => "Resize",
            Op::QuantizeLinear(_) => "QuantizeLinear",
            Op::DequantizeLinear(_) => "DequantizeLinear",
            Op::DynamicQuantizeLinear => "DynamicQuantizeLinear",
            Op::QLinearConv(_) => "QLinearConv",
            Op::QLinearMatMul => "QLinearMatMul",
            Op::ConvInteger(_) => "ConvInteger",
            Op::MatMulInteger => "MatMulInteger",
            Op::RmsNormalization {
                simplified: false, ..
            } => "RMSNormalization",
            Op::RmsNormalization { simplified: true, .. } => "SimplifiedLayerNormalization",
            Op::SkipNormalization {
                simplified: false, ..
            } => "SkipLayerNormalization",
            Op::SkipNormalization { simplified: true, .. } => "SkipSimplifiedLayerNormalization",
            Op::BiasGelu {
                tanh_approximation: false,
            } => "BiasGelu",
            Op::BiasGelu {
                tanh_approximation: true,
            } => "FastGelu",
            Op::RotaryEmbedding(_) => "RotaryEmbedding",
            Op::Attention(_) => "Attention",
            Op::MultiHeadAttention(_) => "MultiHeadAttention",
            Op::PackedAttention { .. } => "Attention",
            Op::EmbedLayerNormalization { .. } => "EmbedLayerNormalization",
            Op::IsNaN => "IsNaN",
            Op::GatherElements { .. } => "GatherElements",
            Op::GatherND { .. } => "GatherND",
            Op::Trilu { .. } => "Trilu",
            Op::CumSum { .. } => "CumSum",
            Op::ScatterND { .. } => "ScatterND",
            Op::Einsum { .. } => "Einsum",
        }
    }

    /// Allowed number of inputs (min, max), counting absent optional inputs.
    pub fn input_arity(&self) -> (usize, usize) {
        match self {
            Op::Conv(_) | Op::ConvTranspose(_) | Op::Gemm(_) => (2, 3),
            Op::Binary(BinaryOp::Max | BinaryOp::Min) => (1, usize::MAX),
            Op::MatMul | Op::Binary(_) | Op::Gather { .. } | Op::Compare(_) | Op::Expand => (2, 2),
            Op::Logical(_) | Op::CastLike => (2, 2),
            Op::Where | Op::Range => (3, 3),
            Op::LayerNormalization { .. } => (2, 3),
            Op::Split { .. } => (1, 2),
            Op::ConstantOfShape { .. } | Op::Gelu { .. } => (1, 1),
            Op::Reshape { .. } => (2, 2),
            Op::Unary(_)
            | Op::LeakyRelu { .. }
            | Op::HardSigmoid { .. }
            | Op::Elu { .. }
            | Op::Celu { .. }
            | Op::Selu { .. }
            | Op::Softmax { .. }
            | Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalAveragePool
            | Op::Flatten { .. }
            | Op::Transpose { .. }
            | Op::DepthToSpace { .. }
            | Op::SpaceToDepth { .. }
            | Op::Shape { .. }
            | Op::Size
            | Op::Cast { .. }
            | Op::Identity
            | Op::DynamicQuantizeLinear => (1, 1),
            Op::Clip => (1, 3),
            Op::BatchNormalization { .. } => (5, 5),
            Op::Reduce { .. } | Op::Squeeze => (1, 2),
            Op::Unsqueeze => (2, 2),
            Op::Concat { .. } => (1, usize::MAX),
            Op::Slice => (3, 5),
            Op::Pad { .. } => (2, 4),
            Op::Resize(_) => (1, 4),
            Op::QuantizeLinear(_) | Op::DequantizeLinear(_) => (2, 3),
            Op::QLinearConv(_) => (8, 9),
            Op::QLinearMatMul => (8, 8),
            Op::ConvInteger(_) | Op::MatMulInteger => (2, 4),
            Op::RmsNormalization { .. } | Op::BiasGelu { .. } => (2, 2),
            Op::SkipNormalization { .. } => (3, 5),
            Op::RotaryEmbedding(_) => (3, 4),
            Op::Attention(_) => (3, 6),
            Op::MultiHeadAttention(_) => (3, 8),
            Op::PackedAttention { .. } => (2, 6),
            Op::EmbedLayerNormalization { .. } => (1, 9),
            Op::IsNaN => (1, 1),
            Op::GatherElements { .. } | Op::GatherND { .. } | Op::CumSum { .. } => (2, 2),
            Op::Trilu { .. } => (1, 2),
            Op::ScatterND { .. } => (3, 3),
            Op::Einsum { .. } => (1, usize::MAX),
        }
    }

    /// Number of outputs the operator produces.
    pub fn output_count(&self) -> usize {
        match self {
            Op::DynamicQuantizeLinear | Op::LayerNormalization { .. } => 3,
            Op::Split { num_outputs, .. } => *num_outputs,
            Op::RmsNormalization { simplified, .. } => 1 + *simplified as usize,
            Op::SkipNormalization { .. } | Op::Attention(_) => 4,
            Op::MultiHeadAttention(_) | Op::EmbedLayerNormalization { .. } => 3,
            _ => 1,
        }
    }
}
