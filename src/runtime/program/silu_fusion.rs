//! SiLU as one pass: an interpreted `Sigmoid(x)` read only by a `Mul` with `x` (either
//! order), as exporters write `x * sigmoid(x)`, becomes one `Silu` step (the same operations
//! in the same order, so the same bits, without the intermediate tensor).

use super::dataflow::{pair, replace_chains, Flow, Replacement};
use super::Step;
use crate::ir::op::{BinaryOp, UnaryOp};
use crate::ir::{Op, Tensor};

/// `steps` with every `x * sigmoid(x)` replaced by one Silu step at the Mul's place.
/// `outputs`, `inputs` and `constants` are the program's.
pub(super) fn fuse(
    steps: Vec<Step>,
    outputs: &[usize],
    inputs: &[usize],
    constants: &[(usize, Tensor)],
) -> Vec<Step> {
    replace_chains(steps, outputs, inputs, constants, match_at)
}

/// The SiLU whose Sigmoid is step `i`.
fn match_at(flow: &Flow, i: usize) -> Option<Replacement> {
    let Step::Interp {
        op: Op::Unary(UnaryOp::Sigmoid),
        inputs,
        outputs,
        ..
    } = &flow.steps[i]
    else {
        return None;
    };
    let ([Some(x)], [Some(s)]) = (&inputs[..], &outputs[..]) else {
        return None;
    };
    let (mul, Op::Binary(BinaryOp::Mul), mul_inputs, y) = flow.sole_reader(*s)? else {
        return None;
    };
    let (a, b) = pair(mul_inputs)?;
    if !((a == *x && b == *s) || (a == *s && b == *x)) {
        return None;
    }
    let Step::Interp { name, .. } = &flow.steps[mul] else {
        return None;
    };
    Some(Replacement {
        taken: vec![i, mul],
        step: Step::Interp {
            name: name.clone(),
            op: Op::Unary(UnaryOp::Silu),
            inputs: vec![Some(*x)],
            outputs: vec![Some(y)],
        },
        rewritten: Vec::new(),
    })
}
