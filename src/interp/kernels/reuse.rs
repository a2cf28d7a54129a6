//! [`eval_into`]: one operator evaluated into output tensors kept from an earlier run, so
//! that running the same node on same-shaped inputs again allocates nothing.

use super::elementwise_rows::ElementwiseJob;
use super::norm_rows::NormJob;
use super::{elementwise, eval, input, layout, layout_into, linalg, norm, optional};
use crate::ir::op::BinaryOp;
use crate::ir::{pointwise, DType, Op, Tensor};
use crate::{Error, Result};

/// Evaluates `op` like [`eval`] (the same values, bit for bit) into `outputs`, one per
/// output of the node. A tensor already in an output slot, of the type and shape the result
/// has, is overwritten in place; otherwise the slot gets a new tensor.
///
/// Written in place: f32 point-wise operators (unary maps, LeakyRelu, HardSigmoid, GELU),
/// f32 binary arithmetic with broadcasting (Add, Sub, Mul, Div, two-operand Max and Min),
/// f32 Clip, f32 Softmax, f32 MatMul, f32 Transpose, the Y output alone of f32 LayerNormalization,
/// RMSNormalization and the skip / simplified normalisations with operands of the normalized
/// shape ([`NormJob`]), f32 Where ([`ElementwiseJob`]), Identity, and Reshape, Expand, Concat
/// Gather and Flatten of any plain type (`layout_into`), Cast between plain types and the
/// logical operators. Every other operator is evaluated by [`eval`] and its
/// results moved into the slots (an allocation per run).
pub fn eval_into(op: &Op, inputs: &[Option<&Tensor>], outputs: &mut [Option<Tensor>]) -> Result<()> {
    if outputs.len() == 1 && write_in_place(op, inputs, &mut outputs[0])? {
        return Ok(());
    }
    let results = eval(op, inputs)?;
    if results.len() < outputs.len() {
        return Err(Error::Internal(format!(
            "{} produced {} outputs, the node has {}",
            op.onnx_name(),
            results.len(),
            outputs.len()
        )));
    }
    for (slot, t) in outputs.iter_mut().zip(results) {
        *slot = Some(t);
    }
    Ok(())
}

/// The output tensor in `slot` with the shape of `like`, kept or made.
fn same_shape_f32<'a>(slot: &'a mut Option<Tensor>, like: &[usize]) -> Result<&'a mut [f32]> {
    Tensor::reuse_slot(slot, DType::F32, |d| d == like, || Ok(like.to_vec()))?.as_f32_mut()
}

/// Writes the result of `op` into `out` when the operator and its operand types have an
/// in-place form; returns whether it did.
fn write_in_place(op: &Op, inputs: &[Option<&Tensor>], out: &mut Option<Tensor>) -> Result<bool> {
    match op {
        Op::Reshape { allowzero } => {
            return layout_into::reshape_into(input(op, inputs, 0)?, input(op, inputs, 1)?, *allowzero, out)
        }
        Op::Flatten { axis } => return layout_into::flatten_into(input(op, inputs, 0)?, *axis, out),
        Op::Cast { to } => return elementwise::cast_into(input(op, inputs, 0)?, *to, out),
        Op::Logical(l) => {
            return elementwise::logical_into(*l, input(op, inputs, 0)?, input(op, inputs, 1)?, out)
        }
        Op::Expand => return layout_into::expand_into(input(op, inputs, 0)?, input(op, inputs, 1)?, out),
        Op::Concat { axis } => return layout_into::concat_into(inputs, *axis, out),
        Op::Gather { axis } => {
            return layout_into::gather_into(input(op, inputs, 0)?, input(op, inputs, 1)?, *axis, out)
        }
        _ => {}
    }
    if let Op::Where = op {
        let Some(job) = ElementwiseJob::of(op, inputs)? else {
            return Ok(false);
        };
        job.run(0..job.rows(), same_shape_f32(out, job.dims())?)?;
        return Ok(true);
    }
    let x = input(op, inputs, 0)?;
    if x.dtype() != DType::F32 {
        return Ok(false);
    }
    let xs = x.as_f32()?;
    match op {
        _ if pointwise::is_pointwise(op) => {
            pointwise::map(op, xs, same_shape_f32(out, x.dims())?)?;
        }
        Op::Binary(b) if *b != BinaryOp::Pow && inputs.len() == 2 => {
            let y = input(op, inputs, 1)?;
            if y.dtype() != DType::F32 {
                return Ok(false);
            }
            let (ad, bd) = (x.dims(), y.dims());
            let t = Tensor::reuse_slot(
                out,
                DType::F32,
                |d| elementwise::is_broadcast_of(ad, bd, d),
                || crate::ir::shapes::broadcast(ad, bd),
            )?;
            let (dims, dst) = t.dims_and_f32_mut()?;
            elementwise::binary_f32_into(*b, (xs, ad), (y.as_f32()?, bd), dims, dst)?;
        }
        Op::Clip => {
            let (lo, hi) = elementwise::clip_bounds(optional(inputs, 1), optional(inputs, 2))?;
            elementwise::clip_f32_into(xs, lo, hi, same_shape_f32(out, x.dims())?);
        }
        Op::Softmax { axis, coerce_2d } => {
            let y = same_shape_f32(out, x.dims())?;
            y.copy_from_slice(xs);
            norm::softmax_in_place(x.dims(), *axis, *coerce_2d, y)?;
        }
        Op::Identity => same_shape_f32(out, x.dims())?.copy_from_slice(xs),
        Op::LayerNormalization { .. } | Op::RmsNormalization { .. } | Op::SkipNormalization { .. } => {
            let Some(job) = NormJob::of(op, inputs)? else {
                return Ok(false);
            };
            let isa = crate::cpu::selected_isa().unwrap_or(crate::cpu::Isa::Scalar);
            job.run(isa, 0..job.rows(), same_shape_f32(out, job.dims())?)?;
        }
        Op::Transpose { perm } if x.dims().len() <= layout::TRANSPOSE_INTO_MAX_RANK => {
            let (d, perm) = (x.dims(), perm.as_deref());
            let is_permutation = |p: &[usize]| {
                p.len() == d.len() && (0..p.len()).all(|i| p[i] < d.len() && !p[..i].contains(&p[i]))
            };
            if perm.is_some_and(|p| !is_permutation(p)) {
                // Not a permutation: [`eval`] reports it.
                return Ok(false);
            }
            let t = Tensor::reuse_slot(
                out,
                DType::F32,
                |o| {
                    o.len() == d.len()
                        && (0..d.len()).all(|i| o[i] == d[layout::transpose_axis(perm, d.len(), i)])
                },
                || crate::ir::shapes::transpose_shape(d, perm),
            )?;
            layout::transpose_f32_into(xs, d, perm, t.as_f32_mut()?)?;
        }
        Op::MatMul if inputs.len() == 2 => {
            let y = input(op, inputs, 1)?;
            if y.dtype() != DType::F32 {
                return Ok(false);
            }
            let (ad, bd) = (x.dims(), y.dims());
            let t = Tensor::reuse_slot(
                out,
                DType::F32,
                |d| linalg::is_matmul_shape(ad, bd, d),
                || crate::ir::shapes::matmul_shape(ad, bd),
            )?;
            linalg::matmul_into(xs, ad, y.as_f32()?, bd, t.as_f32_mut()?)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::op::UnaryOp;

    fn f32s(dims: &[usize], seed: u32) -> Tensor {
        let n: usize = dims.iter().product();
        let v = (0..n as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 250.0 - 4.0)
            .collect();
        Tensor::from_f32(dims.to_vec(), v).unwrap()
    }

    /// `eval_into` equals `eval` bit for bit into an empty slot, a slot of the right shape
    /// holding other values, and a slot of another shape.
    fn same_as_eval(op: &Op, inputs: &[Option<&Tensor>]) {
        let expected = eval(op, inputs).unwrap();
        let stale = expected[0].dims().to_vec();
        for start in [None, Some(f32s(&stale, 99)), Some(f32s(&[3], 1))] {
            let mut out = [start];
            eval_into(op, inputs, &mut out).unwrap();
            let got = out[0].as_ref().unwrap();
            assert_eq!(got.dims(), expected[0].dims(), "{op:?}");
            let bits = |t: &Tensor| {
                t.as_f32()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(got), bits(&expected[0]), "{op:?}");
        }
    }

    #[test]
    fn in_place_operators_equal_eval_bit_for_bit() {
        let x = f32s(&[2, 3, 4, 5], 7);
        for op in [
            Op::Unary(UnaryOp::Sigmoid),
            Op::Unary(UnaryOp::Silu),
            Op::Unary(UnaryOp::Erf),
            Op::Unary(UnaryOp::HardSwish),
            Op::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            Op::LeakyRelu { alpha: 0.1 },
            Op::Gelu {
                tanh_approximation: true,
            },
            Op::Softmax {
                axis: 1,
                coerce_2d: false,
            },
            Op::Softmax {
                axis: -2,
                coerce_2d: true,
            },
            Op::Identity,
        ] {
            same_as_eval(&op, &[Some(&x)]);
        }
        let (lo, hi) = (Tensor::scalar_f32(-1.0), Tensor::scalar_f32(2.5));
        same_as_eval(&Op::Clip, &[Some(&x), Some(&lo), Some(&hi)]);
        same_as_eval(&Op::Clip, &[Some(&x), None, Some(&hi)]);
        for b in [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Max,
            BinaryOp::Min,
        ] {
            for other in [
                f32s(&[2, 3, 4, 5], 3),
                f32s(&[], 5),
                f32s(&[1, 3, 1, 1], 11),
                f32s(&[4, 1], 13),
                f32s(&[2, 1, 1, 1, 1, 1, 1, 1, 4, 5], 17),
            ] {
                same_as_eval(&Op::Binary(b), &[Some(&x), Some(&other)]);
                same_as_eval(&Op::Binary(b), &[Some(&other), Some(&x)]);
            }
        }
    }

    /// `eval_into` equals `eval` into an empty slot and again into the tensor it left there,
    /// which it keeps (the same buffer).
    fn same_as_eval_kept(op: &Op, inputs: &[Option<&Tensor>]) {
        let expected = eval(op, inputs).unwrap();
        let mut out = [None];
        eval_into(op, inputs, &mut out).unwrap();
        assert_eq!(out[0].as_ref(), Some(&expected[0]), "{op:?}");
        let addr = |t: &Option<Tensor>| match t.as_ref().unwrap().data() {
            crate::ir::TensorData::F32(v) => v.as_ptr() as usize,
            crate::ir::TensorData::I64(v) => v.as_ptr() as usize,
            crate::ir::TensorData::Bool(v) => v.as_ptr() as usize,
            crate::ir::TensorData::I32(v) => v.as_ptr() as usize,
            other => panic!("{other:?}"),
        };
        let before = addr(&out[0]);
        eval_into(op, inputs, &mut out).unwrap();
        assert_eq!(out[0].as_ref(), Some(&expected[0]), "{op:?}");
        assert_eq!(addr(&out[0]), before, "{op:?}: the kept output was replaced");
    }

    #[test]
    fn layout_where_and_normalisations_write_into_the_kept_output() {
        let x = f32s(&[2, 3, 4], 7);
        let ids = Tensor::from_i64(vec![2, 3], vec![0, 4, -1, 2, 3, 1]).unwrap();
        let i64s = |v: &[i64]| Tensor::from_i64(vec![v.len()], v.to_vec()).unwrap();
        for (shape, allowzero) in [
            (i64s(&[6, -1]), false),
            (i64s(&[0, 0, 2, 2]), false),
            (i64s(&[24]), true),
        ] {
            same_as_eval_kept(&Op::Reshape { allowzero }, &[Some(&x), Some(&shape)]);
            same_as_eval_kept(&Op::Reshape { allowzero }, &[Some(&ids), Some(&i64s(&[-1]))]);
        }
        for shape in [i64s(&[2, 3, 4]), i64s(&[3, 2, 1, 4]), i64s(&[1, 1])] {
            same_as_eval_kept(&Op::Expand, &[Some(&f32s(&[2, 1, 4], 3)), Some(&shape)]);
        }
        same_as_eval_kept(&Op::Expand, &[Some(&ids), Some(&i64s(&[2, 2, 3]))]);
        let y = f32s(&[2, 1, 4], 5);
        for axis in [1, -2] {
            same_as_eval_kept(&Op::Concat { axis }, &[Some(&x), Some(&y), Some(&x)]);
        }
        same_as_eval_kept(&Op::Concat { axis: 0 }, &[Some(&ids), Some(&ids)]);
        let table = f32s(&[5, 8], 9);
        same_as_eval_kept(&Op::Gather { axis: 0 }, &[Some(&table), Some(&ids)]);
        same_as_eval_kept(&Op::Gather { axis: 1 }, &[Some(&table), Some(&ids)]);
        same_as_eval_kept(
            &Op::Gather { axis: 0 },
            &[Some(&i64s(&[5, 6, 7, 8, 9])), Some(&ids)],
        );
        let cond = Tensor::from_bool(vec![2, 1, 4], (0..8).map(|i| i % 3 == 0).collect()).unwrap();
        same_as_eval_kept(&Op::Where, &[Some(&cond), Some(&x), Some(&f32s(&[4], 2))]);
        same_as_eval_kept(
            &Op::Where,
            &[Some(&cond), Some(&Tensor::scalar_f32(-1e9)), Some(&x)],
        );
        same_as_eval_kept(&Op::Flatten { axis: 1 }, &[Some(&x)]);
        same_as_eval_kept(&Op::Flatten { axis: -2 }, &[Some(&ids)]);
        for to in [DType::Bool, DType::F32, DType::I32, DType::I64] {
            same_as_eval_kept(&Op::Cast { to }, &[Some(&ids)]);
            same_as_eval_kept(&Op::Cast { to }, &[Some(&x)]);
            same_as_eval_kept(&Op::Cast { to }, &[Some(&cond)]);
        }
        let other = Tensor::from_bool(vec![4], vec![true, false, true, true]).unwrap();
        for l in [
            crate::ir::op::LogicalOp::And,
            crate::ir::op::LogicalOp::Or,
            crate::ir::op::LogicalOp::Xor,
        ] {
            same_as_eval_kept(&Op::Logical(l), &[Some(&cond), Some(&other)]);
        }
        let (gamma, beta) = (f32s(&[4], 11), f32s(&[4], 12));
        let ln = Op::LayerNormalization {
            axis: -1,
            epsilon: 1e-5,
        };
        same_as_eval_kept(&ln, &[Some(&x), Some(&gamma), Some(&beta)]);
        let rms = Op::RmsNormalization {
            axis: -1,
            epsilon: 1e-6,
            simplified: false,
        };
        same_as_eval_kept(&rms, &[Some(&x), Some(&gamma)]);
        let skip = Op::SkipNormalization {
            epsilon: 1e-5,
            simplified: false,
        };
        let s = f32s(&[3, 4], 13);
        same_as_eval_kept(
            &skip,
            &[Some(&x), Some(&s), Some(&gamma), Some(&beta), Some(&beta)],
        );
        let skip = Op::SkipNormalization {
            epsilon: 1e-5,
            simplified: true,
        };
        same_as_eval_kept(&skip, &[Some(&x), Some(&x), Some(&gamma), None, Some(&beta)]);
    }

    #[test]
    fn malformed_layout_nodes_are_errors_not_panics() {
        let x = f32s(&[2, 3], 1);
        let i64s = |v: &[i64]| Tensor::from_i64(vec![v.len()], v.to_vec()).unwrap();
        let mut out = [None];
        assert!(eval_into(
            &Op::Reshape { allowzero: false },
            &[Some(&x), Some(&i64s(&[4, -1]))],
            &mut out
        )
        .is_err());
        assert!(eval_into(&Op::Expand, &[Some(&x), Some(&i64s(&[3, 3]))], &mut out).is_err());
        assert!(eval_into(&Op::Gather { axis: 0 }, &[Some(&x), Some(&i64s(&[2]))], &mut out).is_err());
        assert!(eval_into(
            &Op::Gather { axis: 0 },
            &[Some(&x), Some(&i64s(&[i64::MIN]))],
            &mut out
        )
        .is_err());
        assert!(eval_into(
            &Op::Concat { axis: 1 },
            &[Some(&x), Some(&f32s(&[3, 3], 2))],
            &mut out
        )
        .is_err());
    }

    #[test]
    fn matmul_in_place_equals_eval_bit_for_bit() {
        for (ad, bd) in [
            (&[2, 3, 4, 5][..], &[5, 6][..]),
            (&[2, 3, 4, 5], &[3, 5, 2]),
            (&[1, 4, 5], &[2, 1, 5, 3]),
            (&[5], &[2, 5, 3]),
            (&[2, 4, 5], &[5]),
            (&[5], &[5]),
            (&[4, 5], &[5, 7]),
        ] {
            let (a, b) = (f32s(ad, 3), f32s(bd, 5));
            same_as_eval(&Op::MatMul, &[Some(&a), Some(&b)]);
        }
    }

    #[test]
    fn layer_norm_in_place_equals_eval_bit_for_bit() {
        let x = f32s(&[2, 3, 4, 5], 7);
        let ln = |axis| Op::LayerNormalization { axis, epsilon: 1e-5 };
        same_as_eval(&ln(-1), &[Some(&x), Some(&f32s(&[5], 3)), Some(&f32s(&[5], 4))]);
        same_as_eval(&ln(-1), &[Some(&x), Some(&f32s(&[5], 3)), None]);
        same_as_eval(
            &ln(2),
            &[Some(&x), Some(&f32s(&[4, 5], 3)), Some(&f32s(&[4, 5], 9))],
        );
        // Broadcast scale / bias: the allocating path, still the same values.
        same_as_eval(&ln(2), &[Some(&x), Some(&f32s(&[1, 5], 3)), Some(&f32s(&[5], 9))]);
    }

    #[test]
    fn transpose_in_place_equals_eval_bit_for_bit() {
        let x = f32s(&[2, 3, 4, 5], 7);
        for perm in [
            None,
            Some(vec![0, 2, 1, 3]),
            Some(vec![0, 2, 3, 1]),
            Some(vec![3, 2, 1, 0]),
            Some(vec![0, 1, 2, 3]),
            Some(vec![1, 0, 3, 2]),
        ] {
            same_as_eval(&Op::Transpose { perm }, &[Some(&x)]);
        }
        same_as_eval(&Op::Transpose { perm: None }, &[Some(&f32s(&[], 1))]);
        same_as_eval(
            &Op::Transpose {
                perm: Some(vec![1, 0]),
            },
            &[Some(&f32s(&[0, 3], 1))],
        );
        // A repeated axis is an error, not a wrong result.
        let bad = Op::Transpose {
            perm: Some(vec![0, 0, 1, 2]),
        };
        let mut out = [Some(f32s(&[2, 2, 3, 4], 1))];
        assert!(eval_into(&bad, &[Some(&x)], &mut out).is_err());
    }

    #[test]
    fn matmul_shapes_are_recognised_without_allocating() {
        let check = |ad: &[usize], bd: &[usize]| {
            let want = crate::ir::shapes::matmul_shape(ad, bd).unwrap();
            assert!(linalg::is_matmul_shape(ad, bd, &want), "{ad:?} x {bd:?}");
            let mut wrong = want.clone();
            wrong.push(1);
            assert!(!linalg::is_matmul_shape(ad, bd, &wrong), "{ad:?} x {bd:?}");
        };
        check(&[2, 3, 4, 5], &[5, 6]);
        check(&[1, 4, 5], &[2, 1, 5, 3]);
        check(&[5], &[2, 5, 3]);
        check(&[2, 4, 5], &[5]);
        check(&[5], &[5]);
        assert!(!linalg::is_matmul_shape(&[4, 5], &[6, 7], &[4, 7]));
        assert!(!linalg::is_matmul_shape(&[2, 4, 5], &[3, 5, 7], &[2, 4, 7]));
    }

    #[test]
    fn broadcast_shapes_are_recognised_without_allocating() {
        assert!(elementwise::is_broadcast_of(&[2, 1, 4], &[3, 1], &[2, 3, 4]));
        assert!(elementwise::is_broadcast_of(&[], &[5], &[5]));
        assert!(!elementwise::is_broadcast_of(&[2, 1, 4], &[3, 1], &[2, 3, 1]));
        assert!(!elementwise::is_broadcast_of(&[2, 4], &[3, 4], &[2, 4]));
        assert!(!elementwise::is_broadcast_of(&[4], &[4], &[1, 4]));
    }
}
