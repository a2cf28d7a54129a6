//! Reference implementations of every IR operator on [`Tensor`]s (NCHW layout).

mod attention;
mod conv;
mod einsum;
mod elementwise;
pub mod elementwise_rows;
pub mod gemv;
mod indexing;
mod layout;
mod layout_into;
mod linalg;
mod norm;
mod norm_fused;
pub mod norm_rows;
mod pool;
mod quant;
mod resize;
mod reuse;
mod rotary;
mod sdpa;
pub mod sgemm;

pub use layout::{
    transpose_axis, transpose_f32_into, transpose_f32_runs, transpose_run_len, view_dims,
    TRANSPOSE_INTO_MAX_RANK,
};
pub use linalg::{batched_matmul_size, folded_rows, is_matmul_shape, matmul_batches_f32, matmul_rows_f32};
pub use norm::softmax_in_place;
pub use reuse::eval_into;
pub use sdpa::{
    Dims as SdpaDims, Layout as SdpaLayout, ScoreScale, SdpaPlan, BLOCK_ROWS as SDPA_BLOCK_ROWS,
    MAX_RANK as SDPA_MAX_RANK,
};

use crate::ir::op::BinaryOp;
use crate::ir::{Op, Tensor};
use crate::{Error, Result};

/// Applies a generic expression to the typed storage of a tensor, rebuilding the same
/// variant. Packed types (f16, bf16, int4, ...) are rejected.
macro_rules! map_data {
    ($data:expr, $v:ident => $body:expr) => {{
        use crate::ir::TensorData as D;
        match $data {
            D::F32($v) => D::F32($body),
            D::I8($v) => D::I8($body),
            D::U8($v) => D::U8($body),
            D::I32($v) => D::I32($body),
            D::I64($v) => D::I64($body),
            D::Bool($v) => D::Bool($body),
            D::Packed { dtype, .. } => {
                return Err(crate::Error::Unsupported(format!(
                    "the interpreter does not move {dtype} tensors"
                )))
            }
        }
    }};
}
pub(crate) use map_data;

/// The input at `i`, or an error naming the op.
pub(crate) fn input<'a>(op: &Op, inputs: &[Option<&'a Tensor>], i: usize) -> Result<&'a Tensor> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| Error::InvalidModel(format!("{}: input {i} is missing", op.onnx_name())))
}

/// An optional input at `i`, treating empty 1-D tensors as absent where ONNX does.
pub(crate) fn optional<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> Option<&'a Tensor> {
    inputs.get(i).copied().flatten()
}

/// Evaluates one operator: one kernel call per operator, with the operands it needs.
pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = |i| input(op, inputs, i);
    let opt = |i| optional(inputs, i);
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        Op::Conv(a) => one(conv::conv(a, x(0)?, x(1)?, opt(2))?),
        Op::ConvTranspose(a) => one(conv::conv_transpose(a, x(0)?, x(1)?, opt(2))?),
        Op::Gemm(g) => one(linalg::gemm(g, x(0)?, x(1)?, opt(2))?),
        Op::MatMul => one(linalg::matmul(x(0)?, x(1)?)?),
        Op::Unary(u) => one(elementwise::unary(*u, x(0)?)?),
        Op::Binary(b @ (BinaryOp::Max | BinaryOp::Min)) => one(fold_binary(op, *b, inputs)?),
        Op::Binary(b) => one(elementwise::binary(*b, x(0)?, x(1)?)?),
        Op::Clip => one(elementwise::clip(x(0)?, opt(1), opt(2))?),
        Op::LeakyRelu { alpha } => one(elementwise::leaky_relu(x(0)?, *alpha)?),
        Op::HardSigmoid { alpha, beta } => one(elementwise::hard_sigmoid(x(0)?, *alpha, *beta)?),
        Op::Elu { .. } | Op::Celu { .. } | Op::Selu { .. } => one(elementwise::activation(op, x(0)?)?),
        Op::Softmax { axis, coerce_2d } => one(norm::softmax(x(0)?, *axis, *coerce_2d)?),
        Op::BatchNormalization { epsilon } => {
            one(norm::batch_norm(x(0)?, x(1)?, x(2)?, x(3)?, x(4)?, *epsilon)?)
        }
        Op::MaxPool(p) => one(pool::max_pool(p, x(0)?)?),
        Op::AveragePool(p) => one(pool::average_pool(p, x(0)?)?),
        Op::GlobalAveragePool => one(pool::global_average_pool(x(0)?)?),
        Op::Reduce {
            kind,
            keepdims,
            noop_with_empty_axes,
        } => one(norm::reduce(
            *kind,
            x(0)?,
            opt(1),
            *keepdims,
            *noop_with_empty_axes,
        )?),
        Op::LayerNormalization { axis, epsilon } => norm::layer_norm(x(0)?, x(1)?, opt(2), *axis, *epsilon),
        Op::Gelu { tanh_approximation } => one(elementwise::gelu(x(0)?, *tanh_approximation)?),
        Op::Compare(c) => one(elementwise::compare(*c, x(0)?, x(1)?)?),
        Op::Logical(l) => one(elementwise::logical(*l, x(0)?, x(1)?)?),
        Op::Where => one(layout::select(x(0)?, x(1)?, x(2)?)?),
        Op::Expand => one(layout::expand(x(0)?, x(1)?)?),
        Op::Split { axis, num_outputs } => layout::split(x(0)?, opt(1), *axis, *num_outputs),
        Op::ConstantOfShape { value } => one(layout::constant_of_shape(value, x(0)?)?),
        Op::Range => one(elementwise::range(x(0)?, x(1)?, x(2)?)?),
        Op::Concat { axis } => {
            let all: Vec<&Tensor> = (0..inputs.len()).map(x).collect::<Result<_>>()?;
            one(layout::concat(&all, *axis)?)
        }
        Op::Reshape { allowzero } => one(layout::reshape(x(0)?, x(1)?, *allowzero)?),
        Op::Flatten { axis } => one(layout::flatten(x(0)?, *axis)?),
        Op::Transpose { perm } => one(layout::transpose(x(0)?, perm.as_deref())?),
        Op::Squeeze => one(layout::squeeze(x(0)?, opt(1))?),
        Op::Unsqueeze => one(layout::unsqueeze(x(0)?, x(1)?)?),
        Op::Slice => one(layout::slice(x(0)?, &inputs[1..])?),
        Op::Pad { mode } => one(layout::pad(*mode, x(0)?, &inputs[1..])?),
        Op::DepthToSpace { .. } | Op::SpaceToDepth { .. } => one(layout::depth_space(op, x(0)?)?),
        Op::Gather { axis } => one(layout::gather(x(0)?, x(1)?, *axis)?),
        Op::Shape { start, end } => one(layout::shape(x(0)?, *start, *end)),
        Op::Size => one(layout::size(x(0)?)?),
        Op::CastLike => one(elementwise::cast(x(0)?, x(1)?.dtype())?),
        Op::Cast { to } => one(elementwise::cast(x(0)?, *to)?),
        Op::Identity => one(x(0)?.clone()),
        Op::Resize(r) => one(resize::resize(r, x(0)?, &inputs[1..])?),
        Op::QuantizeLinear(q) => one(quant::quantize_linear(q, x(0)?, x(1)?, opt(2))?),
        Op::DequantizeLinear(q) => one(quant::dequantize_linear(q, x(0)?, x(1)?, opt(2))?),
        Op::DynamicQuantizeLinear => quant::dynamic_quantize_linear(x(0)?),
        Op::QLinearConv(a) => one(quant::qlinear_conv(a, inputs)?),
        Op::QLinearMatMul => one(quant::qlinear_matmul(inputs)?),
        Op::ConvInteger(a) => one(quant::conv_integer(a, inputs)?),
        Op::MatMulInteger => one(quant::matmul_integer(inputs)?),
        Op::RmsNormalization { axis, epsilon, .. } => norm_fused::rms_norm(x(0)?, x(1)?, *axis, *epsilon),
        Op::SkipNormalization { epsilon, simplified } => {
            norm_fused::skip_norm(*simplified, x(0)?, x(1)?, x(2)?, opt(3), opt(4), *epsilon)
        }
        Op::BiasGelu { tanh_approximation } => one(norm_fused::bias_gelu(x(0)?, x(1)?, *tanh_approximation)?),
        Op::RotaryEmbedding(r) => one(rotary::rotary_embedding(r, x(0)?, x(1)?, x(2)?, opt(3))?),
        Op::Attention(a) => attention::attention(a, inputs),
        Op::MultiHeadAttention(m) => attention::multi_head_attention(m, inputs),
        Op::PackedAttention {
            mha,
            qkv_hidden_sizes,
        } => one(attention::packed_attention(mha, qkv_hidden_sizes, inputs)?),
        Op::EmbedLayerNormalization { epsilon } => norm_fused::embed_layer_norm(inputs, *epsilon),
        Op::IsNaN => one(indexing::is_nan(x(0)?)?),
        Op::GatherElements { axis } => one(indexing::gather_elements(x(0)?, x(1)?, *axis)?),
        Op::GatherND { batch_dims } => one(indexing::gather_nd(x(0)?, x(1)?, *batch_dims)?),
        Op::ScatterND { reduction } => one(indexing::scatter_nd(x(0)?, x(1)?, x(2)?, *reduction)?),
        Op::Trilu { upper } => one(indexing::trilu(x(0)?, opt(1), *upper)?),
        Op::CumSum { exclusive, reverse } => one(indexing::cumsum(x(0)?, x(1)?, *exclusive, *reverse)?),
        Op::Einsum { equation } => {
            let all: Vec<&Tensor> = (0..inputs.len()).map(x).collect::<Result<_>>()?;
            one(einsum::einsum(equation, &all)?)
        }
    }
}

/// Max or Min of any number of broadcast operands, folded pairwise from the first.
fn fold_binary(op: &Op, b: BinaryOp, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let mut acc = input(op, inputs, 0)?.clone();
    for i in 1..inputs.len() {
        acc = elementwise::binary(b, &acc, input(op, inputs, i)?)?;
    }
    Ok(acc)
}
