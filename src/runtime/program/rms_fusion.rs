//! The RMS normalisation exporters write out (`x · 1/sqrt(mean(x²) + ε) · w`: PyTorch's
//! `LlamaRMSNorm` through `torch.onnx.export`) found on the dataflow of a built program and
//! replaced by one interpreted `RmsNormalization` step, which runs the row kernels of
//! [`crate::interp::kernels::norm_rows`] (one pass for the mean square, one for the output,
//! split over the pool) instead of seven whole-tensor passes with their buffers.
//!
//! The chain, each intermediate read once and not a program output: `Pow(x, 2)` (or
//! `Mul(x, x)`) → `ReduceMean(axes = [-1], keepdims)` → `Add(ε)` → `Sqrt` → `Reciprocal` (or
//! `Div(1, ·)`) → `Mul(x, ·)` → `Mul(w, ·)` with `ε` an `f32` scalar constant and `w` a
//! constant `f32` vector of more than one element (so, wherever the chain runs, the length of
//! x's last axis). The fused step rounds differently (its mean square is a 16-lane sum of
//! `x²` in the kernel's order), so its outputs differ from the chain's by rounding only.

use super::dataflow::{pair, replace_chains, Flow, Replacement};
use super::Step;
use crate::ir::op::{BinaryOp, ReduceKind, UnaryOp};
use crate::ir::{DType, Op, Tensor, TensorData};

/// `steps` with every written-out RMS normalisation replaced by one step at the place of
/// its last node. `outputs`, `inputs` and `constants` are the program's.
pub(super) fn fuse(
    steps: Vec<Step>,
    outputs: &[usize],
    inputs: &[usize],
    constants: &[(usize, Tensor)],
) -> Vec<Step> {
    replace_chains(steps, outputs, inputs, constants, |flow, i| {
        let (taken, step) = match_at(flow, i)?;
        Some(Replacement {
            taken,
            step,
            rewritten: Vec::new(),
        })
    })
}

/// The other operand of a two-input node that reads `slot` once.
fn other(inputs: &[Option<usize>], slot: usize) -> Option<usize> {
    match pair(inputs)? {
        (a, b) if a == slot && b != slot => Some(b),
        (a, b) if b == slot && a != slot => Some(a),
        _ => None,
    }
}

/// Whether `t` is the i64 axes `[-1]`.
fn last_axis_only(t: &Tensor) -> bool {
    matches!(t.data(), TensorData::I64(v) if v[..] == [-1])
}

/// The chain whose first node (the square) is step `first`: the steps it takes and the
/// RMSNormalization step standing for them.
fn match_at(flow: &Flow, first: usize) -> Option<(Vec<usize>, Step)> {
    let Step::Interp {
        op, inputs, outputs, ..
    } = &flow.steps[first]
    else {
        return None;
    };
    let ([Some(sq)], (a, b)) = (&outputs[..], pair(inputs)?) else {
        return None;
    };
    let x = match op {
        Op::Binary(BinaryOp::Pow) if flow.scalar(Some(b)) == Some(2.0) => a,
        Op::Binary(BinaryOp::Mul) if a == b => a,
        _ => return None,
    };
    let mut taken = vec![first];
    // ReduceMean over the last axis, dims kept.
    let (i, op, ins, mean) = flow.sole_reader(*sq)?;
    let Op::Reduce {
        kind: ReduceKind::Mean,
        keepdims: true,
        ..
    } = op
    else {
        return None;
    };
    let axes = flow.constant((*ins.get(1)?)?)?;
    if ins.len() != 2 || ins[0] != Some(*sq) || !last_axis_only(axes) {
        return None;
    }
    taken.push(i);
    // + ε.
    let (i, op, ins, shifted) = flow.sole_reader(mean)?;
    let epsilon = match op {
        Op::Binary(BinaryOp::Add) => flow.scalar(Some(other(ins, mean)?))?,
        _ => return None,
    };
    taken.push(i);
    // 1 / sqrt(·).
    let (i, op, _, root) = flow.sole_reader(shifted)?;
    if !matches!(op, Op::Unary(UnaryOp::Sqrt)) {
        return None;
    }
    taken.push(i);
    let (i, op, ins, inv) = flow.sole_reader(root)?;
    match op {
        Op::Unary(UnaryOp::Reciprocal) => {}
        Op::Binary(BinaryOp::Div)
            if ins.len() == 2 && ins[1] == Some(root) && flow.scalar(ins[0]) == Some(1.0) => {}
        _ => return None,
    }
    taken.push(i);
    // x · inv, then · w.
    let (i, op, ins, normed) = flow.sole_reader(inv)?;
    if !matches!(op, Op::Binary(BinaryOp::Mul)) || other(ins, inv)? != x {
        return None;
    }
    taken.push(i);
    let (i, op, ins, y) = flow.sole_reader(normed)?;
    let w = match op {
        Op::Binary(BinaryOp::Mul) => other(ins, normed)?,
        _ => return None,
    };
    let weight = flow.constant(w)?;
    if weight.dtype() != DType::F32 || weight.dims().len() != 1 || weight.numel() < 2 {
        return None;
    }
    taken.push(i);
    let Step::Interp { name, .. } = &flow.steps[i] else {
        return None;
    };
    Some((
        taken,
        Step::Interp {
            name: name.clone(),
            op: Op::RmsNormalization {
                axis: -1,
                epsilon,
                simplified: false,
            },
            inputs: vec![Some(x), Some(w)],
            outputs: vec![Some(y)],
        },
    ))
}
