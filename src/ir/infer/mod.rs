//! Type and shape inference: from the types of a node's inputs (and the values of constant
//! operands such as Reshape's shape) to the types of its outputs. [`infer_op`] dispatches to
//! one submodule per operator family.

mod elementwise;
mod indexing;
mod layout;
mod linear;
mod quantize;
mod reduce;
mod shape_ops;
mod transformer;

pub use indexing::{gather_elements_shape, gather_nd_shape, scatter_nd_check};
pub use layout::{resize_output_shape, split_sizes};
pub use shape_ops::range_len;

use super::op::{BinaryOp, Op};
use super::{DType, Dim, Graph, Tensor, TensorInfo};
use crate::{Error, Result};

/// What is known about one node input.
#[derive(Clone, Copy, Debug)]
pub struct Fact<'a> {
    /// Element type.
    pub dtype: DType,
    /// Concrete shape, if known.
    pub shape: Option<&'a [usize]>,
    /// The value, if the input is constant.
    pub value: Option<&'a Tensor>,
}

/// The inferred type of one output: element type and concrete shape if known.
pub type OutFact = (DType, Option<Vec<usize>>);

/// A dtype error naming the operator.
pub(super) fn dtype_err(op: &Op, msg: impl std::fmt::Display) -> Error {
    Error::DtypeMismatch(format!("{}: {msg}", op.onnx_name()))
}

/// Input `i`, which must be present.
pub(super) fn need<'a>(inputs: &'a [Option<Fact<'a>>], i: usize, op: &Op) -> Result<Fact<'a>> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| Error::InvalidModel(format!("{}: input {i} is missing", op.onnx_name())))
}

/// The value of a constant integer operand, if it is constant.
pub(super) fn ints(f: Option<Fact<'_>>) -> Result<Option<Vec<i64>>> {
    match f.and_then(|f| f.value) {
        Some(t) => Ok(Some(t.to_i64_vec()?)),
        None => Ok(None),
    }
}

/// Checks that `what` has one of the `allowed` types (an unsupported type is reported as
/// such, not as a mismatch).
pub(super) fn expect_dtype(op: &Op, what: &str, got: DType, allowed: &[DType]) -> Result<()> {
    if allowed.contains(&got) {
        Ok(())
    } else if matches!(
        got,
        DType::F16 | DType::Bf16 | DType::I16 | DType::U16 | DType::I4 | DType::U4 | DType::I2 | DType::U2
    ) {
        Err(Error::Unsupported(format!(
            "{} on {got} tensors (the interpreter computes in f32, i8, u8, i32, i64)",
            op.onnx_name()
        )))
    } else {
        Err(dtype_err(
            op,
            format!("{what} has type {got}, expected one of {allowed:?}"),
        ))
    }
}

/// Float operators' types.
pub(super) const FLOAT: &[DType] = &[DType::F32];
/// Types of arithmetic operators.
pub(super) const NUMERIC: &[DType] = &[DType::F32, DType::I32, DType::I64, DType::I8, DType::U8];
/// Types of quantized tensors.
pub(super) const QINT: &[DType] = &[
    DType::I8,
    DType::U8,
    DType::I16,
    DType::U16,
    DType::I4,
    DType::U4,
    DType::I2,
    DType::U2,
    DType::I32,
];

/// Infers the output types of `op` from its input facts (`None` = absent optional input).
/// Shapes are inferred when every shape the op needs is concrete (and, for value-dependent
/// shapes, the operand is constant); otherwise the output shape is `None`.
pub fn infer_op(op: &Op, inputs: &[Option<Fact<'_>>]) -> Result<Vec<OutFact>> {
    let x = need(inputs, 0, op)?;
    match op {
        Op::Conv(a) => linear::conv(op, a, x, inputs),
        Op::ConvInteger(a) => linear::conv_integer(op, a, x, inputs),
        Op::QLinearConv(a) => linear::qlinear_conv(op, a, x, inputs),
        Op::ConvTranspose(a) => linear::conv_transpose(op, a, x, inputs),
        Op::Gemm(g) => linear::gemm(op, g, x, inputs),
        Op::MatMul => linear::matmul(op, x, inputs),
        Op::MatMulInteger | Op::QLinearMatMul => linear::matmul_integer(op, x, inputs),
        Op::Binary(BinaryOp::Max | BinaryOp::Min) => elementwise::variadic_min_max(op, x, inputs),
        Op::Binary(b) => elementwise::binary(op, *b, x, inputs),
        Op::Compare(_) => elementwise::compare(op, x, inputs),
        Op::Logical(_) => elementwise::logical(op, x, inputs),
        Op::Where => elementwise::where_(op, x, inputs),
        Op::Expand => elementwise::expand(x, inputs),
        Op::Unary(u) => elementwise::unary(op, *u, x),
        Op::Clip => elementwise::same_shape(op, x, NUMERIC),
        Op::LeakyRelu { .. }
        | Op::HardSigmoid { .. }
        | Op::Elu { .. }
        | Op::Celu { .. }
        | Op::Selu { .. }
        | Op::BatchNormalization { .. }
        | Op::Gelu { .. } => elementwise::same_shape(op, x, FLOAT),
        Op::Softmax { axis, .. } => elementwise::softmax(op, *axis, x),
        Op::LayerNormalization { axis, .. } => elementwise::layer_normalization(op, *axis, x),
        Op::Cast { to } => same_dtype(*to, x.shape),
        Op::CastLike => same_dtype(need(inputs, 1, op)?.dtype, x.shape),
        Op::Identity => same(x, x.shape.map(<[usize]>::to_vec)),
        Op::MaxPool(p) | Op::AveragePool(p) => reduce::pool(op, p, x),
        Op::GlobalAveragePool => reduce::global_average_pool(op, x),
        Op::Reduce {
            kind,
            keepdims,
            noop_with_empty_axes,
        } => reduce::reduce(op, *kind, *keepdims, *noop_with_empty_axes, x, inputs),
        Op::Concat { axis } => layout::concat(op, *axis, x, inputs),
        Op::Reshape { allowzero } => layout::reshape(*allowzero, x, inputs),
        Op::Flatten { axis } => layout::flatten(*axis, x),
        Op::Transpose { perm } => layout::transpose(perm.as_deref(), x),
        Op::Squeeze => layout::squeeze(x, inputs),
        Op::Unsqueeze => layout::unsqueeze(x, inputs),
        Op::Slice => layout::slice(x, inputs),
        Op::Pad { .. } => layout::pad(x, inputs),
        Op::DepthToSpace { .. } | Op::SpaceToDepth { .. } => layout::depth_space(op, x),
        Op::Gather { axis } => layout::gather(op, *axis, x, inputs),
        Op::Split { axis, num_outputs } => layout::split(*axis, *num_outputs, x, inputs),
        Op::Resize(a) => layout::resize(op, a, x, inputs),
        Op::Shape { start, end } => shape_ops::shape(*start, *end, x),
        Op::Size => Ok(vec![(DType::I64, Some(vec![]))]),
        Op::ConstantOfShape { value } => shape_ops::constant_of_shape(op, value, x),
        Op::Range => shape_ops::range(op, x, inputs),
        Op::QuantizeLinear(q) => quantize::quantize_linear(op, q, x, inputs),
        Op::DequantizeLinear(_) => quantize::dequantize_linear(op, x),
        Op::DynamicQuantizeLinear => quantize::dynamic_quantize_linear(op, x),
        Op::RmsNormalization { axis, .. } => transformer::rms(op, *axis, x, inputs),
        Op::SkipNormalization { .. } => transformer::skip_norm(op, x, inputs),
        Op::BiasGelu { .. } => transformer::bias_gelu(op, x, inputs),
        Op::RotaryEmbedding(_) => transformer::rotary(op, x, inputs),
        Op::Attention(_) | Op::MultiHeadAttention(_) => transformer::attention(op, x, inputs),
        Op::PackedAttention {
            mha,
            qkv_hidden_sizes,
        } => transformer::packed_attention(op, mha, qkv_hidden_sizes, x, inputs),
        Op::EmbedLayerNormalization { .. } => transformer::embed_layer_norm(op, x, inputs),
        Op::IsNaN => indexing::is_nan(op, x),
        Op::GatherElements { axis } => indexing::gather_elements(op, *axis, x, inputs),
        Op::GatherND { batch_dims } => indexing::gather_nd(op, *batch_dims, x, inputs),
        Op::Trilu { .. } => indexing::trilu(op, x, inputs),
        Op::CumSum { .. } => indexing::cumsum(op, x, inputs),
        Op::ScatterND { .. } => indexing::scatter_nd(op, x, inputs),
        Op::Einsum { equation } => indexing::einsum(op, equation, inputs),
    }
}

/// One output of `x`'s element type with the given shape.
pub(super) fn same(x: Fact<'_>, shape: Option<Vec<usize>>) -> Result<Vec<OutFact>> {
    Ok(vec![(x.dtype, shape)])
}

/// One output of element type `d` with the given shape.
pub(super) fn same_dtype(d: DType, shape: Option<&[usize]>) -> Result<Vec<OutFact>> {
    Ok(vec![(d, shape.map(<[usize]>::to_vec))])
}

/// Both shapes, if both are known.
pub(super) fn both<'a>(a: Option<&'a [usize]>, b: Option<&'a [usize]>) -> Option<(&'a [usize], &'a [usize])> {
    Some((a?, b?))
}

impl Graph {
    /// Infers the type and (where determinable) shape of every tensor, storing them in
    /// `value_info` and refining graph outputs. Call after [`Graph::validate`].
    pub fn infer_shapes(&mut self) -> Result<()> {
        let mut known: std::collections::HashMap<String, (DType, Option<Vec<usize>>)> =
            std::collections::HashMap::new();
        for i in &self.inputs {
            known.insert(i.name.clone(), (i.dtype, i.concrete_shape()));
        }
        for (name, t) in &self.initializers {
            known.insert(name.clone(), (t.dtype(), Some(t.dims().to_vec())));
        }
        for node in &self.nodes {
            let facts: Vec<Option<Fact>> = node
                .inputs
                .iter()
                .map(|name| {
                    if name.is_empty() {
                        return Ok(None);
                    }
                    let (dtype, shape) = known
                        .get(name)
                        .ok_or_else(|| Error::InvalidModel(format!("tensor `{name}` has no known type")))?;
                    Ok(Some(Fact {
                        dtype: *dtype,
                        shape: shape.as_deref(),
                        value: self.initializers.get(name),
                    }))
                })
                .collect::<Result<_>>()?;
            let outs =
                infer_op(&node.op, &facts).map_err(|e| with_node(e, &node.name, node.op.onnx_name()))?;
            for (name, fact) in node.outputs.iter().zip(outs) {
                if !name.is_empty() {
                    known.insert(name.clone(), fact);
                }
            }
        }
        for (name, (dtype, shape)) in &known {
            if self.initializers.contains_key(name) || self.inputs.iter().any(|i| &i.name == name) {
                continue;
            }
            let info = TensorInfo {
                name: name.clone(),
                dtype: *dtype,
                shape: shape.as_ref().map(|s| s.iter().map(|&d| Dim::Known(d)).collect()),
            };
            if let Some(out) = self.outputs.iter_mut().find(|o| &o.name == name) {
                if out.dtype != *dtype {
                    return Err(Error::DtypeMismatch(format!(
                        "graph output `{name}` is declared {} but computed as {dtype}",
                        out.dtype
                    )));
                }
                if shape.is_some() {
                    out.shape = info.shape.clone();
                }
            }
            self.value_info.insert(name.clone(), info);
        }
        Ok(())
    }
}

/// Prefixes an error's message with the node it came from.
pub fn with_node(e: Error, node: &str, op: &str) -> Error {
    let ctx = |m: String| format!("node `{node}` ({op}): {m}");
    match e {
        Error::ShapeMismatch(m) => Error::ShapeMismatch(ctx(m)),
        Error::DtypeMismatch(m) => Error::DtypeMismatch(ctx(m)),
        Error::InvalidModel(m) => Error::InvalidModel(ctx(m)),
        Error::Unsupported(m) => Error::Unsupported(ctx(m)),
        Error::ResourceLimit(m) => Error::ResourceLimit(ctx(m)),
        other => other,
    }
}
