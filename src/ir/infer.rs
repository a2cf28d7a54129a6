//! Type and shape inference: from the types of a node's inputs (and the values of constant
//! operands such as Reshape's shape) to the types of its outputs.

use super::op::{BinaryOp, Op, ReduceKind, UnaryOp};
use super::shapes::*;
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

fn dtype_err(op: &Op, msg: impl std::fmt::Display) -> Error {
    Error::DtypeMismatch(format!("{}: {msg}", op.onnx_name()))
}

fn need<'a>(inputs: &'a [Option<Fact<'a>>], i: usize, op: &Op) -> Result<Fact<'a>> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| Error::InvalidModel(format!("{}: input {i} is missing", op.onnx_name())))
}

fn ints(f: Option<Fact<'_>>) -> Result<Option<Vec<i64>>> {
    match f.and_then(|f| f.value) {
        Some(t) => Ok(Some(t.to_i64_vec()?)),
        None => Ok(None),
    }
}

fn expect_dtype(op: &Op, what: &str, got: DType, allowed: &[DType]) -> Result<()> {
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

const FLOAT: &[DType] = &[DType::F32];
const NUMERIC: &[DType] = &[DType::F32, DType::I32, DType::I64, DType::I8, DType::U8];
const QINT: &[DType] = &[
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
    let xs = x.shape;
    let same = |shape: Option<Vec<usize>>| Ok(vec![(x.dtype, shape)]);
    match op {
        Op::Conv(a) => {
            expect_dtype(op, "X", x.dtype, FLOAT)?;
            let w = need(inputs, 1, op)?;
            expect_dtype(op, "W", w.dtype, FLOAT)?;
            same(both(xs, w.shape).map(|(x, w)| conv_shape(a, x, w)).transpose()?)
        }
        Op::ConvInteger(a) => {
            let w = need(inputs, 1, op)?;
            expect_dtype(op, "x", x.dtype, &[DType::I8, DType::U8])?;
            expect_dtype(op, "w", w.dtype, &[DType::I8, DType::U8])?;
            Ok(vec![(
                DType::I32,
                both(xs, w.shape).map(|(x, w)| conv_shape(a, x, w)).transpose()?,
            )])
        }
        Op::QLinearConv(a) => {
            let w = need(inputs, 3, op)?;
            let yzp = need(inputs, 7, op)?;
            expect_dtype(op, "x", x.dtype, &[DType::I8, DType::U8])?;
            let shape = both(xs, w.shape).map(|(x, w)| conv_shape(a, x, w)).transpose()?;
            Ok(vec![(yzp.dtype, shape)])
        }
        Op::ConvTranspose(a) => {
            expect_dtype(op, "X", x.dtype, FLOAT)?;
            let w = need(inputs, 1, op)?;
            let shape = match both(xs, w.shape) {
                Some((x, w)) => {
                    let win = conv_transpose_window(a, x, w)?;
                    let mut out = vec![x[0], w[1] * a.conv.group.max(1)];
                    out.extend(win.output);
                    super::tensor::checked_numel(&out)?;
                    Some(out)
                }
                None => None,
            };
            same(shape)
        }
        Op::Gemm(g) => {
            expect_dtype(op, "A", x.dtype, FLOAT)?;
            let b = need(inputs, 1, op)?;
            let shape = match both(xs, b.shape) {
                Some((a, b)) => {
                    if a.len() != 2 || b.len() != 2 {
                        return Err(Error::ShapeMismatch(format!(
                            "Gemm operands {a:?}, {b:?} must be 2-D"
                        )));
                    }
                    let (m, k) = if g.trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
                    let (k2, n) = if g.trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
                    if k != k2 {
                        return Err(Error::ShapeMismatch(format!(
                            "Gemm inner sizes differ: {a:?}, {b:?}"
                        )));
                    }
                    if let Some(c) = inputs.get(2).copied().flatten().and_then(|c| c.shape) {
                        broadcast(c, &[m, n])
                            .ok()
                            .filter(|s| s == &[m, n])
                            .ok_or_else(|| {
                                Error::ShapeMismatch(format!("Gemm C {c:?} does not broadcast to [{m}, {n}]"))
                            })?;
                    }
                    Some(vec![m, n])
                }
                None => None,
            };
            same(shape)
        }
        Op::MatMul => {
            let b = need(inputs, 1, op)?;
            expect_dtype(op, "A", x.dtype, FLOAT)?;
            expect_dtype(op, "B", b.dtype, FLOAT)?;
            same(both(xs, b.shape).map(|(a, b)| matmul_shape(a, b)).transpose()?)
        }
        Op::MatMulInteger | Op::QLinearMatMul => {
            let bi = if matches!(op, Op::MatMulInteger) { 1 } else { 3 };
            let b = need(inputs, bi, op)?;
            expect_dtype(op, "A", x.dtype, &[DType::I8, DType::U8])?;
            expect_dtype(op, "B", b.dtype, &[DType::I8, DType::U8])?;
            let out_dtype = if matches!(op, Op::MatMulInteger) {
                DType::I32
            } else {
                need(inputs, 7, op)?.dtype
            };
            Ok(vec![(
                out_dtype,
                both(xs, b.shape).map(|(a, b)| matmul_shape(a, b)).transpose()?,
            )])
        }
        Op::Binary(BinaryOp::Max | BinaryOp::Min) => {
            expect_dtype(op, "data_0", x.dtype, NUMERIC)?;
            let mut shape = xs.map(<[usize]>::to_vec);
            for f in inputs.iter().skip(1) {
                let f =
                    f.ok_or_else(|| Error::InvalidModel(format!("{}: an input is empty", op.onnx_name())))?;
                if f.dtype != x.dtype {
                    return Err(dtype_err(
                        op,
                        format!("operands have types {} and {}", x.dtype, f.dtype),
                    ));
                }
                shape = match (shape, f.shape) {
                    (Some(a), Some(b)) => Some(broadcast(&a, b)?),
                    _ => None,
                };
            }
            same(shape)
        }
        Op::Compare(_) => {
            let y = need(inputs, 1, op)?;
            if x.dtype != y.dtype {
                return Err(dtype_err(
                    op,
                    format!("operands have types {} and {}", x.dtype, y.dtype),
                ));
            }
            expect_dtype(
                op,
                "A",
                x.dtype,
                &[
                    DType::F32,
                    DType::I32,
                    DType::I64,
                    DType::I8,
                    DType::U8,
                    DType::Bool,
                ],
            )?;
            Ok(vec![(
                DType::Bool,
                both(xs, y.shape).map(|(a, b)| broadcast(a, b)).transpose()?,
            )])
        }
        Op::Where => {
            let (a, b) = (need(inputs, 1, op)?, need(inputs, 2, op)?);
            expect_dtype(op, "condition", x.dtype, &[DType::Bool])?;
            if a.dtype != b.dtype {
                return Err(dtype_err(
                    op,
                    format!("X and Y have types {} and {}", a.dtype, b.dtype),
                ));
            }
            let shape = match (xs, a.shape, b.shape) {
                (Some(c), Some(p), Some(q)) => Some(broadcast(&broadcast(c, p)?, q)?),
                _ => None,
            };
            Ok(vec![(a.dtype, shape)])
        }
        Op::Expand => {
            let target = ints(inputs.get(1).copied().flatten())?;
            let shape = match (xs, target) {
                (Some(s), Some(t)) => {
                    let t: Vec<usize> = t
                        .iter()
                        .map(|&d| {
                            usize::try_from(d)
                                .map_err(|_| Error::ShapeMismatch(format!("Expand to negative size {d}")))
                        })
                        .collect::<Result<_>>()?;
                    Some(broadcast(s, &t)?)
                }
                _ => None,
            };
            same(shape)
        }
        Op::LayerNormalization { axis, .. } => {
            expect_dtype(op, "X", x.dtype, FLOAT)?;
            let stats = match xs {
                Some(s) => {
                    let ax = norm_axis(*axis, s.len())?;
                    Some(
                        s.iter()
                            .enumerate()
                            .map(|(i, &d)| if i < ax { d } else { 1 })
                            .collect::<Vec<_>>(),
                    )
                }
                None => None,
            };
            Ok(vec![
                (x.dtype, xs.map(<[usize]>::to_vec)),
                (DType::F32, stats.clone()),
                (DType::F32, stats),
            ])
        }
        Op::Gelu { .. } => {
            expect_dtype(op, "X", x.dtype, FLOAT)?;
            same(xs.map(<[usize]>::to_vec))
        }
        Op::Split { axis, num_outputs } => {
            let split_in = inputs.get(1).copied().flatten();
            let split = ints(split_in)?;
            let shapes: Vec<Option<Vec<usize>>> = match xs {
                Some(s) if split_in.is_none() || split.is_some() => {
                    let ax = norm_axis(*axis, s.len())?;
                    split_sizes(s[ax], *num_outputs, split.as_deref())?
                        .into_iter()
                        .map(|n| {
                            let mut d = s.to_vec();
                            d[ax] = n;
                            Some(d)
                        })
                        .collect()
                }
                _ => vec![None; *num_outputs],
            };
            Ok(shapes.into_iter().map(|sh| (x.dtype, sh)).collect())
        }
        Op::ConstantOfShape { value } => {
            expect_dtype(op, "input", x.dtype, &[DType::I64])?;
            let shape = ints(Some(x))?
                .map(|v| {
                    v.iter()
                        .map(|&d| {
                            usize::try_from(d)
                                .map_err(|_| Error::ShapeMismatch(format!("ConstantOfShape size {d}")))
                        })
                        .collect::<Result<Vec<usize>>>()
                })
                .transpose()?;
            if let Some(s) = &shape {
                super::tensor::checked_numel(s)?;
            }
            Ok(vec![(value.dtype(), shape)])
        }
        Op::Range => {
            expect_dtype(op, "start", x.dtype, &[DType::F32, DType::I32, DType::I64])?;
            let vals: Option<Vec<f64>> = (0..3)
                .map(|i| {
                    inputs
                        .get(i)
                        .copied()
                        .flatten()
                        .and_then(|f| f.value)
                        .and_then(|t| t.to_f32_vec().ok())
                        .and_then(|v| v.first().map(|&x| x as f64))
                })
                .collect();
            let shape = match vals {
                Some(v) => Some(vec![range_len(v[0], v[1], v[2])?]),
                None => None,
            };
            Ok(vec![(x.dtype, shape)])
        }
        Op::Binary(b) => {
            let y = need(inputs, 1, op)?;
            if x.dtype != y.dtype && *b != BinaryOp::Pow {
                return Err(dtype_err(
                    op,
                    format!("operands have types {} and {}", x.dtype, y.dtype),
                ));
            }
            if *b != BinaryOp::Pow {
                expect_dtype(op, "A", x.dtype, NUMERIC)?;
            }
            same(both(xs, y.shape).map(|(a, b)| broadcast(a, b)).transpose()?)
        }
        Op::Unary(u) => {
            let allowed: &[DType] = match u {
                UnaryOp::Relu | UnaryOp::Neg | UnaryOp::Abs => NUMERIC,
                UnaryOp::Not => &[DType::Bool],
                _ => FLOAT,
            };
            expect_dtype(op, "X", x.dtype, allowed)?;
            same(xs.map(<[usize]>::to_vec))
        }
        Op::Clip => {
            expect_dtype(op, "X", x.dtype, NUMERIC)?;
            same(xs.map(<[usize]>::to_vec))
        }
        Op::LeakyRelu { .. } | Op::HardSigmoid { .. } | Op::BatchNormalization { .. } => {
            expect_dtype(op, "X", x.dtype, FLOAT)?;
            same(xs.map(<[usize]>::to_vec))
        }
        Op::Softmax { axis, .. } => {
            expect_dtype(op, "X", x.dtype, FLOAT)?;
            if let Some(s) = xs {
                norm_axis(*axis, s.len())?;
            }
            same(xs.map(<[usize]>::to_vec))
        }
        Op::MaxPool(p) | Op::AveragePool(p) => {
            expect_dtype(op, "X", x.dtype, &[DType::F32, DType::I8, DType::U8])?;
            let shape = match xs {
                Some(s) => {
                    let win = pool_window(p, s)?;
                    let mut out = s[..2].to_vec();
                    out.extend(win.output);
                    Some(out)
                }
                None => None,
            };
            same(shape)
        }
        Op::GlobalAveragePool => {
            expect_dtype(op, "X", x.dtype, FLOAT)?;
            if xs.is_some_and(|s| s.len() < 3) {
                return Err(Error::ShapeMismatch(
                    "GlobalAveragePool input must have rank >= 3".into(),
                ));
            }
            same(xs.map(|s| {
                s.iter()
                    .enumerate()
                    .map(|(i, &d)| if i < 2 { d } else { 1 })
                    .collect()
            }))
        }
        Op::Reduce {
            kind,
            keepdims,
            noop_with_empty_axes,
        } => {
            let allowed: &[DType] = match kind {
                ReduceKind::Mean => FLOAT,
                ReduceKind::Sum => NUMERIC,
                ReduceKind::Max | ReduceKind::Min => &[
                    DType::F32,
                    DType::I32,
                    DType::I64,
                    DType::I8,
                    DType::U8,
                    DType::Bool,
                ],
            };
            expect_dtype(op, "data", x.dtype, allowed)?;
            let axes_input = inputs.get(1).copied().flatten();
            let shape = match (xs, axes_input) {
                (Some(s), None) => Some(reduce_shape(
                    s,
                    &reduce_axes(s.len(), None, *noop_with_empty_axes)?,
                    *keepdims,
                )),
                (Some(s), Some(a)) => match ints(Some(a))? {
                    Some(ax) => Some(reduce_shape(
                        s,
                        &reduce_axes(s.len(), Some(&ax), *noop_with_empty_axes)?,
                        *keepdims,
                    )),
                    None => None,
                },
                _ => None,
            };
            same(shape)
        }
        Op::Concat { axis } => {
            let facts: Vec<Fact> = inputs
                .iter()
                .map(|f| f.ok_or_else(|| Error::InvalidModel("Concat input is empty".into())))
                .collect::<Result<_>>()?;
            if let Some(f) = facts.iter().find(|f| f.dtype != x.dtype) {
                return Err(dtype_err(
                    op,
                    format!("inputs have types {} and {}", x.dtype, f.dtype),
                ));
            }
            let shapes: Option<Vec<&[usize]>> = facts.iter().map(|f| f.shape).collect();
            same(shapes.map(|s| concat_shape(&s, *axis)).transpose()?)
        }
        Op::Reshape { allowzero } => {
            let target = ints(inputs.get(1).copied().flatten())?;
            same(match (xs, target) {
                (Some(s), Some(t)) => Some(reshape_shape(s, &t, *allowzero)?),
                _ => None,
            })
        }
        Op::Flatten { axis } => same(xs.map(|s| flatten_shape(s, *axis)).transpose()?),
        Op::Transpose { perm } => same(xs.map(|s| transpose_shape(s, perm.as_deref())).transpose()?),
        Op::Squeeze => {
            let axes_in = inputs.get(1).copied().flatten();
            let axes = ints(axes_in)?;
            same(match xs {
                Some(s) if axes_in.is_none() || axes.is_some() => Some(squeeze_shape(s, axes.as_deref())?),
                _ => None,
            })
        }
        Op::Unsqueeze => {
            let axes = ints(inputs.get(1).copied().flatten())?;
            same(match (xs, axes) {
                (Some(s), Some(a)) => Some(unsqueeze_shape(s, &a)?),
                _ => None,
            })
        }
        Op::Slice => {
            let get = |i| ints(inputs.get(i).copied().flatten());
            let (starts, ends) = (get(1)?, get(2)?);
            let (axes_f, steps_f) = (inputs.get(3).copied().flatten(), inputs.get(4).copied().flatten());
            let (axes, steps) = (get(3)?, get(4)?);
            let known = axes_f.is_none() == axes.is_none() && steps_f.is_none() == steps.is_none();
            same(match (xs, starts, ends) {
                (Some(s), Some(st), Some(en)) if known => Some(
                    slice_axes(s, &st, &en, axes.as_deref(), steps.as_deref())?
                        .iter()
                        .map(|a| a.len)
                        .collect(),
                ),
                _ => None,
            })
        }
        Op::Pad { .. } => {
            let pads = ints(inputs.get(1).copied().flatten())?;
            let axes_f = inputs.get(3).copied().flatten();
            let axes = ints(axes_f)?;
            same(match (xs, pads) {
                (Some(s), Some(p)) if axes_f.is_none() || axes.is_some() => {
                    Some(pad_shape(s, &pad_amounts(s.len(), &p, axes.as_deref())?)?)
                }
                _ => None,
            })
        }
        Op::Gather { axis } => {
            let idx = need(inputs, 1, op)?;
            expect_dtype(op, "indices", idx.dtype, &[DType::I32, DType::I64])?;
            same(match both(xs, idx.shape) {
                Some((d, i)) => Some(gather_shape(d, i, norm_axis(*axis, d.len())?)?),
                None => None,
            })
        }
        Op::Shape { start, end } => Ok(vec![(
            DType::I64,
            xs.map(|s| {
                let (a, b) = shape_range(s.len(), *start, *end);
                vec![b - a]
            }),
        )]),
        Op::Size => Ok(vec![(DType::I64, Some(vec![]))]),
        Op::CastLike => Ok(vec![(need(inputs, 1, op)?.dtype, xs.map(<[usize]>::to_vec))]),
        Op::Logical(_) => {
            let y = need(inputs, 1, op)?;
            expect_dtype(op, "A", x.dtype, &[DType::Bool])?;
            expect_dtype(op, "B", y.dtype, &[DType::Bool])?;
            Ok(vec![(
                DType::Bool,
                both(xs, y.shape).map(|(a, b)| broadcast(a, b)).transpose()?,
            )])
        }
        Op::Cast { to } => Ok(vec![(*to, xs.map(<[usize]>::to_vec))]),
        Op::Identity => same(xs.map(<[usize]>::to_vec)),
        Op::Resize(_) => {
            expect_dtype(op, "X", x.dtype, &[DType::F32, DType::I8, DType::U8])?;
            // Output sizes depend on scales/sizes values and the attributes; the interpreter
            // computes them, inference reports them when constants allow.
            let shape = match xs {
                Some(s) => resize_shape_if_known(op, s, inputs)?,
                None => None,
            };
            same(shape)
        }
        Op::QuantizeLinear(q) => {
            expect_dtype(op, "x", x.dtype, &[DType::F32, DType::I32])?;
            let zp = inputs.get(2).copied().flatten();
            let out = match (zp, q.output_dtype) {
                (Some(z), _) => z.dtype,
                (None, Some(d)) => d,
                (None, None) => DType::U8,
            };
            expect_dtype(op, "y_zero_point", out, QINT)?;
            same_dtype(out, xs)
        }
        Op::DequantizeLinear(_) => {
            expect_dtype(op, "x", x.dtype, QINT)?;
            same_dtype(DType::F32, xs)
        }
        Op::DynamicQuantizeLinear => {
            expect_dtype(op, "x", x.dtype, FLOAT)?;
            Ok(vec![
                (DType::U8, xs.map(<[usize]>::to_vec)),
                (DType::F32, Some(vec![])),
                (DType::U8, Some(vec![])),
            ])
        }
    }
}

/// Sizes of the parts of Split: from the `split` operand, or `n` near-equal parts (the last
/// one smaller when the axis does not divide evenly).
pub fn split_sizes(len: usize, n: usize, split: Option<&[i64]>) -> Result<Vec<usize>> {
    match split {
        Some(s) => {
            let sizes: Vec<usize> = s
                .iter()
                .map(|&v| {
                    usize::try_from(v).map_err(|_| Error::ShapeMismatch(format!("negative split size {v}")))
                })
                .collect::<Result<_>>()?;
            if sizes.len() != n || sizes.iter().sum::<usize>() != len {
                return Err(Error::ShapeMismatch(format!(
                    "split {s:?} does not cut {len} into {n} parts"
                )));
            }
            Ok(sizes)
        }
        None => {
            if n == 0 {
                return Err(Error::ShapeMismatch("Split has no outputs".into()));
            }
            let chunk = len.div_ceil(n);
            Ok((0..n).map(|i| chunk.min(len.saturating_sub(i * chunk))).collect())
        }
    }
}

/// Number of elements of Range(start, limit, delta), bounded.
pub fn range_len(start: f64, limit: f64, delta: f64) -> Result<usize> {
    if delta == 0.0 || !(start.is_finite() && limit.is_finite() && delta.is_finite()) {
        return Err(Error::ShapeMismatch(format!(
            "Range({start}, {limit}, {delta}) is not finite"
        )));
    }
    let n = ((limit - start) / delta).ceil().max(0.0);
    if n > super::tensor::MAX_TENSOR_ELEMENTS as f64 {
        return Err(Error::ResourceLimit(format!(
            "Range({start}, {limit}, {delta}) has {n} elements"
        )));
    }
    Ok(n as usize)
}

fn same_dtype(d: DType, shape: Option<&[usize]>) -> Result<Vec<OutFact>> {
    Ok(vec![(d, shape.map(<[usize]>::to_vec))])
}

fn both<'a>(a: Option<&'a [usize]>, b: Option<&'a [usize]>) -> Option<(&'a [usize], &'a [usize])> {
    Some((a?, b?))
}

fn resize_shape_if_known(op: &Op, x: &[usize], inputs: &[Option<Fact<'_>>]) -> Result<Option<Vec<usize>>> {
    let Op::Resize(attrs) = op else { return Ok(None) };
    let scales_f = inputs
        .get(2)
        .copied()
        .flatten()
        .filter(|f| f.shape.is_none_or(|s| s.iter().product::<usize>() > 0));
    let sizes_f = inputs
        .get(3)
        .copied()
        .flatten()
        .filter(|f| f.shape.is_none_or(|s| s.iter().product::<usize>() > 0));
    let scales = match scales_f {
        Some(f) => match f.value {
            Some(v) => Some(v.to_f32_vec()?),
            None => return Ok(None),
        },
        None => None,
    };
    let sizes = match sizes_f {
        Some(f) => match f.value {
            Some(v) => Some(v.to_i64_vec()?),
            None => return Ok(None),
        },
        None => None,
    };
    resize_output_shape(attrs, x, scales.as_deref(), sizes.as_deref()).map(|(s, _)| Some(s))
}

/// Output shape and effective per-axis scales of Resize.
pub fn resize_output_shape(
    attrs: &super::op::ResizeAttrs,
    x: &[usize],
    scales: Option<&[f32]>,
    sizes: Option<&[i64]>,
) -> Result<(Vec<usize>, Vec<f32>)> {
    use super::op::AspectRatioPolicy;
    let rank = x.len();
    let axes: Vec<usize> = if attrs.axes.is_empty() {
        (0..rank).collect()
    } else {
        attrs
            .axes
            .iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<Result<_>>()?
    };
    let mut out = x.to_vec();
    let mut eff = vec![1.0f32; rank];
    match (scales, sizes) {
        (Some(sc), None) => {
            if sc.len() != axes.len() {
                return Err(Error::ShapeMismatch(format!(
                    "Resize has {} scales for {} axes",
                    sc.len(),
                    axes.len()
                )));
            }
            for (i, &a) in axes.iter().enumerate() {
                if !(sc[i] > 0.0 && sc[i].is_finite()) {
                    return Err(Error::ShapeMismatch(format!(
                        "Resize scale {} is not positive",
                        sc[i]
                    )));
                }
                out[a] = (x[a] as f64 * sc[i] as f64).floor() as usize;
                eff[a] = sc[i];
            }
        }
        (None, Some(sz)) => {
            if sz.len() != axes.len() || sz.iter().any(|&s| s < 0) {
                return Err(Error::ShapeMismatch(format!(
                    "Resize sizes {sz:?} do not fit axes {axes:?}"
                )));
            }
            let ratios: Vec<f32> = axes
                .iter()
                .enumerate()
                .map(|(i, &a)| sz[i] as f32 / x[a] as f32)
                .collect();
            let uniform = match attrs.keep_aspect_ratio_policy {
                AspectRatioPolicy::Stretch => None,
                AspectRatioPolicy::NotLarger => ratios.iter().copied().reduce(f32::min),
                AspectRatioPolicy::NotSmaller => ratios.iter().copied().reduce(f32::max),
            };
            for (i, &a) in axes.iter().enumerate() {
                match uniform {
                    None => {
                        out[a] = sz[i] as usize;
                        eff[a] = ratios[i];
                    }
                    Some(r) => {
                        out[a] = (x[a] as f32 * r + 0.5).floor() as usize;
                        eff[a] = r;
                    }
                }
            }
        }
        _ => {
            return Err(Error::InvalidModel(
                "Resize needs exactly one of scales and sizes".into(),
            ))
        }
    }
    super::tensor::checked_numel(&out)?;
    Ok((out, eff))
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
