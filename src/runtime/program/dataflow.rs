//! The dataflow of a built program's interpreted steps (who writes and who reads each
//! slot), which the fusions ([`super::attention_fusion`], [`super::rms_fusion`]) match
//! chains of nodes on.

use super::Step;
use crate::ir::{DType, Op, Tensor};
use std::collections::HashMap;

/// The dataflow of the interpreted steps: who writes and who reads each slot.
pub(super) struct Flow<'a> {
    /// The steps, in order.
    pub steps: &'a [Step],
    producer: HashMap<usize, usize>,
    /// Step index of every read of a slot (once per input position).
    pub readers: HashMap<usize, Vec<usize>>,
    /// The program's output slots.
    pub outputs: &'a [usize],
    constants: HashMap<usize, &'a Tensor>,
}

impl<'a> Flow<'a> {
    /// The dataflow of `steps`; `outputs`, `inputs` and `constants` are the program's.
    pub fn new(
        steps: &'a [Step],
        outputs: &'a [usize],
        inputs: &[usize],
        constants: &'a [(usize, Tensor)],
    ) -> Self {
        let mut producer = HashMap::new();
        let mut readers: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            match s {
                Step::Interp { inputs, outputs, .. } => {
                    for &s in inputs.iter().flatten() {
                        readers.entry(s).or_default().push(i);
                    }
                    if let [Some(o)] = outputs[..] {
                        producer.insert(o, i);
                    }
                }
                Step::Quantize { slot, .. } => readers.entry(*slot).or_default().push(i),
                Step::Dynamic { input, .. } => readers.entry(*input).or_default().push(i),
                Step::ViewShape(v) => v.reads().for_each(|s| readers.entry(s).or_default().push(i)),
                Step::Attention { .. }
                | Step::Kernel { .. }
                | Step::Dequantize { .. }
                | Step::ResizeExit { .. } => {}
            }
        }
        Flow {
            steps,
            producer,
            readers,
            outputs,
            // A program input of a constant's name replaces it at run time.
            constants: constants
                .iter()
                .filter(|(s, _)| !inputs.contains(s))
                .map(|(s, t)| (*s, t))
                .collect(),
        }
    }

    /// The interpreted single-output node writing `slot`, when `slot` is read exactly
    /// `reads` times and is not a program output.
    pub fn private(&self, slot: usize, reads: usize) -> Option<(usize, &'a Op, &'a [Option<usize>])> {
        let i = *self.producer.get(&slot)?;
        if self.outputs.contains(&slot) || self.readers.get(&slot).map_or(0, Vec::len) != reads {
            return None;
        }
        match &self.steps[i] {
            Step::Interp { op, inputs, .. } => Some((i, op, inputs)),
            _ => None,
        }
    }

    /// The only reader of `slot` (read once, not a program output).
    pub fn sole_reader(&self, slot: usize) -> Option<(usize, &'a Op, &'a [Option<usize>], usize)> {
        if self.outputs.contains(&slot) {
            return None;
        }
        let [i] = self.readers.get(&slot)?[..] else {
            return None;
        };
        match &self.steps[i] {
            Step::Interp {
                op, inputs, outputs, ..
            } => match outputs[..] {
                [Some(o)] => Some((i, op, inputs, o)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The constant tensor of `slot` (not replaced by a program input).
    pub fn constant(&self, slot: usize) -> Option<&'a Tensor> {
        self.constants.get(&slot).copied()
    }

    /// The value of a one-element `f32` constant of rank at most 1.
    pub fn scalar(&self, slot: Option<usize>) -> Option<f32> {
        let t = self.constants.get(&slot?)?;
        if t.dtype() != DType::F32 || t.numel() != 1 || t.dims().len() > 1 {
            return None;
        }
        t.as_f32().ok()?.first().copied()
    }
}

/// `[a, b]` when `inputs` is two present slots.
pub(super) fn pair(inputs: &[Option<usize>]) -> Option<(usize, usize)> {
    match inputs {
        [Some(a), Some(b)] => Some((*a, *b)),
        _ => None,
    }
}

/// A chain a fusion found: the steps it takes, the step standing for them, and steps it
/// rewrites in place.
pub(super) struct Replacement {
    /// The steps the chain takes (removed).
    pub taken: Vec<usize>,
    /// The step standing for them, at the place of the last one taken.
    pub step: Step,
    /// Steps outside the chain replaced in place (a Shape node that read a tensor the chain
    /// no longer materializes).
    pub rewritten: Vec<(usize, Step)>,
}

/// `steps` with the chains `matcher` finds replaced: `matcher(flow, i)` returns the chain
/// found at step `i`. A chain that shares a step (taken or rewritten) with one found earlier
/// is left alone. `outputs`, `inputs` and `constants` are the program's.
pub(super) fn replace_chains(
    steps: Vec<Step>,
    outputs: &[usize],
    inputs: &[usize],
    constants: &[(usize, Tensor)],
    matcher: impl Fn(&Flow, usize) -> Option<Replacement>,
) -> Vec<Step> {
    let mut replaced: HashMap<usize, Step> = HashMap::new();
    let mut removed = vec![false; steps.len()];
    {
        let flow = Flow::new(&steps, outputs, inputs, constants);
        for i in 0..steps.len() {
            let Some(r) = matcher(&flow, i) else {
                continue;
            };
            let Some(&at) = r.taken.iter().max() else { continue };
            let touched = || r.taken.iter().copied().chain(r.rewritten.iter().map(|(j, _)| *j));
            if touched().any(|t| removed[t]) {
                continue;
            }
            touched()
                .collect::<Vec<_>>()
                .into_iter()
                .for_each(|t| removed[t] = true);
            replaced.insert(at, r.step);
            replaced.extend(r.rewritten);
        }
    }
    if replaced.is_empty() {
        return steps;
    }
    steps
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| match replaced.remove(&i) {
            Some(step) => Some(step),
            None => (!removed[i]).then_some(s),
        })
        .collect()
}
