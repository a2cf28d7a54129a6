//! Reference implementations of every IR operator on [`Tensor`]s (NCHW layout).

mod conv;
mod elementwise;
mod layout;
mod linalg;
mod norm;
mod pool;
mod quant;
mod resize;

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

/// Evaluates one operator.
pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        Op::Conv(a) => one(conv::conv(
            a,
            input(op, inputs, 0)?,
            input(op, inputs, 1)?,
            optional(inputs, 2),
        )?),
        Op::ConvTranspose(a) => one(conv::conv_transpose(
            a,
            input(op, inputs, 0)?,
            input(op, inputs, 1)?,
            optional(inputs, 2),
        )?),
        Op::Gemm(g) => one(linalg::gemm(
            g,
            input(op, inputs, 0)?,
            input(op, inputs, 1)?,
            optional(inputs, 2),
        )?),
        Op::MatMul => one(linalg::matmul(input(op, inputs, 0)?, input(op, inputs, 1)?)?),
        Op::Unary(u) => one(elementwise::unary(*u, input(op, inputs, 0)?)?),
        Op::Binary(b @ (BinaryOp::Max | BinaryOp::Min)) => {
            let mut acc = input(op, inputs, 0)?.clone();
            for i in 1..inputs.len() {
                acc = elementwise::binary(*b, &acc, input(op, inputs, i)?)?;
            }
            one(acc)
        }
        Op::Binary(b) => one(elementwise::binary(
            *b,
            input(op, inputs, 0)?,
            input(op, inputs, 1)?,
        )?),
        Op::Clip => one(elementwise::clip(
            input(op, inputs, 0)?,
            optional(inputs, 1),
            optional(inputs, 2),
        )?),
        Op::LeakyRelu { alpha } => {
            let a = *alpha;
            one(elementwise::map_f32(input(op, inputs, 0)?, |x| {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            })?)
        }
        Op::HardSigmoid { alpha, beta } => {
            let (a, b) = (*alpha, *beta);
            one(elementwise::map_f32(input(op, inputs, 0)?, |x| {
                (a * x + b).clamp(0.0, 1.0)
            })?)
        }
        Op::Softmax { axis, coerce_2d } => one(norm::softmax(input(op, inputs, 0)?, *axis, *coerce_2d)?),
        Op::BatchNormalization { epsilon } => {
            let p = |i| input(op, inputs, i);
            one(norm::batch_norm(p(0)?, p(1)?, p(2)?, p(3)?, p(4)?, *epsilon)?)
        }
        Op::MaxPool(p) => one(pool::max_pool(p, input(op, inputs, 0)?)?),
        Op::AveragePool(p) => one(pool::average_pool(p, input(op, inputs, 0)?)?),
        Op::GlobalAveragePool => one(pool::global_average_pool(input(op, inputs, 0)?)?),
        Op::Reduce {
            kind,
            keepdims,
            noop_with_empty_axes,
        } => one(norm::reduce(
            *kind,
            input(op, inputs, 0)?,
            optional(inputs, 1),
            *keepdims,
            *noop_with_empty_axes,
        )?),
        Op::LayerNormalization { axis, epsilon } => norm::layer_norm(
            input(op, inputs, 0)?,
            input(op, inputs, 1)?,
            optional(inputs, 2),
            *axis,
            *epsilon,
        ),
        Op::Gelu { tanh_approximation } => {
            one(elementwise::gelu(input(op, inputs, 0)?, *tanh_approximation)?)
        }
        Op::Compare(c) => one(elementwise::compare(
            *c,
            input(op, inputs, 0)?,
            input(op, inputs, 1)?,
        )?),
        Op::Where => one(layout::select(
            input(op, inputs, 0)?,
            input(op, inputs, 1)?,
            input(op, inputs, 2)?,
        )?),
        Op::Expand => one(layout::expand(input(op, inputs, 0)?, input(op, inputs, 1)?)?),
        Op::Split { axis, num_outputs } => {
            layout::split(input(op, inputs, 0)?, optional(inputs, 1), *axis, *num_outputs)
        }
        Op::ConstantOfShape { value } => one(layout::constant_of_shape(value, input(op, inputs, 0)?)?),
        Op::Range => one(elementwise::range(
            input(op, inputs, 0)?,
            input(op, inputs, 1)?,
            input(op, inputs, 2)?,
        )?),
        Op::Concat { axis } => {
            let all: Vec<&Tensor> = (0..inputs.len())
                .map(|i| input(op, inputs, i))
                .collect::<Result<_>>()?;
            one(layout::concat(&all, *axis)?)
        }
        Op::Reshape { allowzero } => one(layout::reshape(
            input(op, inputs, 0)?,
            input(op, inputs, 1)?,
            *allowzero,
        )?),
        Op::Flatten { axis } => {
            let x = input(op, inputs, 0)?;
            one(x
                .clone()
                .reshaped(crate::ir::shapes::flatten_shape(x.dims(), *axis)?)?)
        }
        Op::Transpose { perm } => one(layout::transpose(input(op, inputs, 0)?, perm.as_deref())?),
        Op::Squeeze => one(layout::squeeze(input(op, inputs, 0)?, optional(inputs, 1))?),
        Op::Unsqueeze => one(layout::unsqueeze(input(op, inputs, 0)?, input(op, inputs, 1)?)?),
        Op::Slice => one(layout::slice(input(op, inputs, 0)?, &inputs[1..])?),
        Op::Pad { mode } => one(layout::pad(*mode, input(op, inputs, 0)?, &inputs[1..])?),
        Op::Gather { axis } => one(layout::gather(
            input(op, inputs, 0)?,
            input(op, inputs, 1)?,
            *axis,
        )?),
        Op::Shape { start, end } => {
            let dims = input(op, inputs, 0)?.dims();
            let (s, e) = crate::ir::shapes::shape_range(dims.len(), *start, *end);
            one(Tensor::vec_i64(dims[s..e].iter().map(|&d| d as i64).collect()))
        }
        Op::Logical(l) => one(elementwise::logical(
            *l,
            input(op, inputs, 0)?,
            input(op, inputs, 1)?,
        )?),
        Op::CastLike => one(elementwise::cast(
            input(op, inputs, 0)?,
            input(op, inputs, 1)?.dtype(),
        )?),
        Op::Size => one(Tensor::from_i64(
            vec![],
            vec![input(op, inputs, 0)?.numel() as i64],
        )?),
        Op::Cast { to } => one(elementwise::cast(input(op, inputs, 0)?, *to)?),
        Op::Identity => one(input(op, inputs, 0)?.clone()),
        Op::Resize(r) => one(resize::resize(r, input(op, inputs, 0)?, &inputs[1..])?),
        Op::QuantizeLinear(q) => one(quant::quantize_linear(
            q,
            input(op, inputs, 0)?,
            input(op, inputs, 1)?,
            optional(inputs, 2),
        )?),
        Op::DequantizeLinear(q) => one(quant::dequantize_linear(
            q,
            input(op, inputs, 0)?,
            input(op, inputs, 1)?,
            optional(inputs, 2),
        )?),
        Op::DynamicQuantizeLinear => quant::dynamic_quantize_linear(input(op, inputs, 0)?),
        Op::QLinearConv(a) => one(quant::qlinear_conv(a, inputs)?),
        Op::QLinearMatMul => one(quant::qlinear_matmul(inputs)?),
        Op::ConvInteger(a) => one(quant::conv_integer(a, inputs)?),
        Op::MatMulInteger => one(quant::matmul_integer(inputs)?),
    }
}
