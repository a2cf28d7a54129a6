//! Attention as one step: the interpreted chain MatMul(Q, Kᵀ) → [Mul/Div by a scalar] →
//! [Add mask] → Softmax(last axis) → [IsNaN/Where → 0] → [Cast to f32]… → MatMul(·, V)
//! (with the scalar optionally on Q and Kᵀ instead, and Transposes of Q, Kᵀ, V and of the
//! output read or written through strides) found on the dataflow of a built program and
//! replaced by a [`FusedAttention`] step that runs the strided kernel
//! ([`crate::interp::kernels::SdpaPlan`]) over the pool. Every node it replaces is kept:
//! when a call's shapes or types do not fit the kernel, those nodes run instead, so the
//! fusion never changes what runs or what it computes beyond rounding.

use super::dataflow::{pair, replace_chains, Flow};
use super::{Program, SendPtr, Step, PARALLEL_MATMUL_MACS};
use crate::interp::kernels::{
    eval_into, ScoreScale, SdpaDims, SdpaLayout, SdpaPlan, SDPA_MAX_RANK as MAX_RANK,
};
use crate::ir::op::BinaryOp;
use crate::ir::{DType, Op, Tensor, TensorData};
use crate::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};

/// An operand read through an absorbed Transpose (`perm`; `Some(None)` reverses the axes),
/// or through an absorbed Reshape → swap of the last two axes → Reshape (`swap`).
#[derive(Debug)]
struct Operand {
    slot: usize,
    perm: Option<Option<Vec<usize>>>,
    swap: Option<SwapReshape>,
}

/// Reshape(x, `first`) → Transpose swapping the last two axes → Reshape(·, `second`) (the
/// shape slots and their `allowzero`): when the first Reshape only regroups the leading
/// axes of x `[..., a, b]` and the second keeps `[b, a]` last, this is x with its last two
/// axes swapped and its leading axes regrouped (the dynamo exporter's Kᵀ).
#[derive(Debug)]
struct SwapReshape {
    first: (usize, bool),
    second: (usize, bool),
}

/// One interpreted node the fused step replaces (run when the kernel does not apply).
#[derive(Debug)]
struct Unfused {
    name: String,
    op: Op,
    inputs: Vec<Option<usize>>,
    outputs: Vec<Option<usize>>,
}

/// A matched attention: its operands, what the chain does to the scores, and the nodes it
/// stands for.
#[derive(Debug)]
pub(super) struct FusedAttention {
    q: Operand,
    kt: Operand,
    v: Operand,
    mask: Option<usize>,
    scale: ScoreScale,
    nan_to_zero: bool,
    /// The permutation of an absorbed output Transpose.
    out_perm: Option<Option<Vec<usize>>>,
    output: usize,
    unfused: Vec<Unfused>,
    /// Calls that ran `unfused` because their tensors did not fit the kernel.
    fallbacks: AtomicUsize,
}

impl FusedAttention {
    /// Every slot the step may read: its operands, mask and shapes, and the inputs of the
    /// nodes it replaces (read when a call runs them instead of the kernel).
    pub(super) fn reads(&self) -> impl Iterator<Item = usize> + '_ {
        let swaps = [&self.q, &self.kt, &self.v]
            .into_iter()
            .filter_map(|o| o.swap.as_ref())
            .flat_map(|s| [s.first.0, s.second.0]);
        [self.q.slot, self.kt.slot, self.v.slot]
            .into_iter()
            .chain(self.mask)
            .chain(swaps)
            .chain(
                self.unfused
                    .iter()
                    .flat_map(|u| u.inputs.iter().flatten().copied()),
            )
    }
}

/// One attention being matched: the steps it takes so far.
struct Match<'f, 'a> {
    flow: &'f Flow<'a>,
    taken: Vec<usize>,
}

impl Match<'_, '_> {
    /// `x = y * c`, `c * y` (or `y / c` when `div`) with `c` a scalar constant and `x`
    /// read `reads` times: `(y, c, is_div)`.
    fn scaled(&mut self, x: usize, div_too: bool) -> Option<(usize, f32, bool)> {
        let (i, op, inputs) = self.flow.private(x, 1)?;
        let (a, b) = pair(inputs)?;
        let found = match op {
            Op::Binary(BinaryOp::Mul) => match (self.flow.scalar(Some(a)), self.flow.scalar(Some(b))) {
                (_, Some(c)) => (a, c, false),
                (Some(c), None) => (b, c, false),
                _ => return None,
            },
            Op::Binary(BinaryOp::Div) if div_too => (a, self.flow.scalar(Some(b))?, true),
            _ => return None,
        };
        self.taken.push(i);
        Some(found)
    }

    /// The operand behind `slot`, through a private Transpose.
    fn operand(&mut self, slot: usize) -> Operand {
        if let Some((i, Op::Transpose { perm }, [Some(x)])) = self.flow.private(slot, 1) {
            self.taken.push(i);
            return Operand {
                slot: *x,
                perm: Some(perm.clone()),
                swap: None,
            };
        }
        if let Some((a, Op::Reshape { allowzero: z2 }, [Some(t), Some(s2)])) = self.flow.private(slot, 1) {
            if let Some((b, Op::Transpose { perm: Some(p) }, [Some(r)])) = self.flow.private(*t, 1) {
                let n = p.len();
                let swaps_last = n >= 2
                    && p[n - 2] == n - 1
                    && p[n - 1] == n - 2
                    && p[..n - 2].iter().enumerate().all(|(i, &x)| i == x);
                if let (true, Some((c, Op::Reshape { allowzero: z1 }, [Some(x), Some(s1)]))) =
                    (swaps_last, self.flow.private(*r, 1))
                {
                    self.taken.extend([a, b, c]);
                    return Operand {
                        slot: *x,
                        perm: None,
                        swap: Some(SwapReshape {
                            first: (*s1, *z1),
                            second: (*s2, *z2),
                        }),
                    };
                }
            }
        }
        Operand {
            slot,
            perm: None,
            swap: None,
        }
    }

    /// The scores `x`: a private MatMul, optionally scaled; returns the MatMul's inputs and
    /// the scale.
    fn scores(&mut self, x: usize) -> Option<((usize, usize), ScoreScale)> {
        let mark = self.taken.len();
        let (y, scale) = match self.scaled(x, true) {
            Some((y, c, false)) => (y, ScoreScale::Mul(c)),
            Some((y, c, true)) => (y, ScoreScale::Div(c)),
            None => (x, ScoreScale::None),
        };
        match self.flow.private(y, 1) {
            Some((i, Op::MatMul, inputs)) => {
                self.taken.push(i);
                Some((pair(inputs)?, scale))
            }
            _ => {
                self.taken.truncate(mark);
                None
            }
        }
    }
}

/// The attention whose Softmax is step `softmax`, when the whole chain matches: the steps
/// it replaces (in order) and the fused step.
fn match_at(flow: &Flow, softmax: usize) -> Option<(Vec<usize>, FusedAttention)> {
    let Step::Interp {
        op: Op::Softmax { axis: -1, .. },
        inputs,
        outputs,
        ..
    } = &flow.steps[softmax]
    else {
        return None;
    };
    let (Some(x), [Some(p)]) = (inputs.first().copied().flatten(), &outputs[..]) else {
        return None;
    };
    let mut m = Match {
        flow,
        taken: vec![softmax],
    };
    // Backwards: [Add mask] ← [scale] ← MatMul.
    let mut found = None;
    if let Some((add, Op::Binary(BinaryOp::Add), add_in)) = flow.private(x, 1) {
        let (a, b) = pair(add_in)?;
        m.taken.push(add);
        for (s, mask) in [(a, b), (b, a)] {
            if let Some((mm, scale)) = m.scores(s) {
                found = Some((mm, scale, Some(mask)));
                break;
            }
        }
    } else if let Some((mm, scale)) = m.scores(x) {
        found = Some((mm, scale, None));
    }
    let ((qs, ks), mut scale, mask) = found?;
    // The scalar on Q and Kᵀ before the product.
    let mut pre = 1f32;
    let mut sides = [qs, ks];
    for s in &mut sides {
        if let Some((y, c, _)) = m.scaled(*s, false) {
            pre *= c;
            *s = y;
        }
    }
    if pre != 1.0 {
        scale = match scale {
            ScoreScale::None => ScoreScale::Mul(pre),
            _ => return None,
        };
    }
    let (q, kt) = (m.operand(sides[0]), m.operand(sides[1]));
    // Forwards: [IsNaN/Where] / [Cast to f32]… → MatMul(·, V) → [Transpose].
    let mut cur = *p;
    let mut nan_to_zero = false;
    let (mm2, v) = loop {
        if !nan_to_zero && flow.readers.get(&cur).map_or(0, Vec::len) == 2 && !flow.outputs.contains(&cur) {
            let r = &flow.readers[&cur];
            let (isnan, where_) = (r[0], r[1]);
            let Step::Interp {
                op: Op::IsNaN,
                outputs: nan_out,
                ..
            } = &flow.steps[isnan]
            else {
                return None;
            };
            let [Some(n)] = nan_out[..] else { return None };
            let (w, Op::Where, w_in, w_out) = flow.sole_reader(n)? else {
                return None;
            };
            let zero = flow.scalar(*w_in.get(1)?)?;
            if w != where_
                || w_in.len() != 3
                || w_in[0] != Some(n)
                || w_in[2] != Some(cur)
                || zero.to_bits() != 0
            {
                return None;
            }
            m.taken.extend([isnan, w]);
            nan_to_zero = true;
            cur = w_out;
            continue;
        }
        let (i, op, ins, out) = flow.sole_reader(cur)?;
        match op {
            Op::Cast { to: DType::F32 } => {
                m.taken.push(i);
                cur = out;
            }
            Op::MatMul => {
                let (a, b) = pair(ins)?;
                if a != cur || b == cur {
                    return None;
                }
                m.taken.push(i);
                break (out, m.operand(b));
            }
            _ => return None,
        }
    };
    let (output, out_perm) = match flow.sole_reader(mm2) {
        Some((i, Op::Transpose { perm }, _, out)) => {
            m.taken.push(i);
            (out, Some(perm.clone()))
        }
        _ => (mm2, None),
    };
    m.taken.sort_unstable();
    let unfused = m
        .taken
        .iter()
        .map(|&i| match &flow.steps[i] {
            Step::Interp {
                name,
                op,
                inputs,
                outputs,
            } => Some(Unfused {
                name: name.clone(),
                op: op.clone(),
                inputs: inputs.clone(),
                outputs: outputs.clone(),
            }),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((
        m.taken,
        FusedAttention {
            q,
            kt,
            v,
            mask,
            scale,
            nan_to_zero,
            out_perm,
            output,
            unfused,
            fallbacks: AtomicUsize::new(0),
        },
    ))
}

/// `steps` with every matching attention chain replaced by one [`Step::Attention`] at the
/// place of its last node. `outputs` and `inputs` are the program's output and input slots,
/// `constants` its constant tensors.
pub(super) fn fuse(
    steps: Vec<Step>,
    outputs: &[usize],
    inputs: &[usize],
    constants: &[(usize, Tensor)],
) -> Vec<Step> {
    replace_chains(steps, outputs, inputs, constants, |flow, i| {
        let (taken, f) = match_at(flow, i)?;
        let step = Step::Attention {
            name: f.unfused.last().map_or_else(String::new, |u| u.name.clone()),
            fused: Box::new(f),
        };
        Some((taken, step))
    })
}

/// ONNX Reshape's output dims for `input` and the i64 `shape` (0 copies the input's dim
/// unless `allowzero`, one -1 is inferred); None when they do not resolve.
fn reshape_dims(input: &[usize], shape: &Tensor, allowzero: bool) -> Option<SdpaDims> {
    let TensorData::I64(shape) = shape.data() else {
        return None;
    };
    let mut out = SdpaDims::zeros(shape.len())?;
    crate::ir::shapes::reshape_dims_in(input, shape, allowzero, &mut out).ok()?;
    Some(out)
}

/// The layout of `x` `[..., a, b]` read through [`SwapReshape`] `(first, second)` shapes.
fn swapped_layout(x: &[usize], first: (&Tensor, bool), second: (&Tensor, bool)) -> Option<SdpaLayout> {
    let n = x.len();
    if n < 2 {
        return None;
    }
    let (a, b) = (x[n - 2], x[n - 1]);
    let mid = reshape_dims(x, first.0, first.1)?;
    let m = mid.len();
    if m < 2 || mid[m - 2..] != [a, b] {
        return None;
    }
    let mut swapped = mid;
    swapped.swap(m - 2, m - 1);
    let out = reshape_dims(&swapped, second.0, second.1)?;
    let r = out.len();
    if r < 2 || out[r - 2..] != [b, a] {
        return None;
    }
    // Leading axes regroup whole `a × b` matrices of x in order.
    let lead = SdpaLayout::contiguous(&out[..r - 2])?;
    let mut l = SdpaLayout::contiguous(&out)?;
    for i in 0..r - 2 {
        l.strides[i] = lead.strides[i].checked_mul(a.checked_mul(b)?)?;
    }
    l.strides[r - 2] = 1;
    l.strides[r - 1] = b;
    Some(l)
}

/// The layout of `t` read through an absorbed Transpose; None when the permutation does not
/// fit its rank.
fn layout(t: &Tensor, perm: &Option<Option<Vec<usize>>>) -> Option<SdpaLayout> {
    let l = SdpaLayout::contiguous(t.dims())?;
    match perm {
        None => Some(l),
        Some(Some(p)) => l.permuted(p),
        Some(None) => {
            let rank = t.dims().len();
            let mut reverse = [0usize; MAX_RANK];
            reverse
                .iter_mut()
                .take(rank)
                .enumerate()
                .for_each(|(i, r)| *r = rank - 1 - i);
            l.permuted(&reverse[..rank])
        }
    }
}

impl Program {
    /// How many fused attention steps ran the nodes they replace instead of the kernel
    /// (their tensors did not fit it), summed over every call so far (for tests).
    #[doc(hidden)]
    pub fn attention_fallbacks(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Attention { fused, .. } => fused.fallbacks.load(Ordering::Relaxed),
                _ => 0,
            })
            .sum()
    }

    /// Runs a fused attention: the kernel over the pool when the call's tensors fit it,
    /// else the nodes it replaced, one after the other.
    pub(super) fn run_attention(
        &self,
        f: &FusedAttention,
        inputs: &[Tensor],
        tensors: &mut [Option<Tensor>],
    ) -> Result<()> {
        let mut out = tensors[f.output].take();
        let done = self.run_fused(f, inputs, tensors, &mut out);
        tensors[f.output] = out;
        if done? {
            return Ok(());
        }
        f.fallbacks.fetch_add(1, Ordering::Relaxed);
        for u in &f.unfused {
            let mut results: Vec<Option<Tensor>> = u
                .outputs
                .iter()
                .map(|s| s.and_then(|s| tensors[s].take()))
                .collect();
            {
                let args: Vec<Option<&Tensor>> = u
                    .inputs
                    .iter()
                    .map(|s| s.and_then(|s| self.slot(tensors, inputs, s)))
                    .collect();
                eval_into(&u.op, &args, &mut results)
                    .map_err(|e| crate::ir::infer::with_node(e, &u.name, u.op.onnx_name()))?;
            }
            for (r, s) in results.into_iter().zip(&u.outputs) {
                if let Some(s) = s {
                    tensors[*s] = r;
                }
            }
        }
        Ok(())
    }

    /// The kernel's part of [`Program::run_attention`]: false, having written nothing, when
    /// the tensors do not fit it.
    fn run_fused(
        &self,
        f: &FusedAttention,
        inputs: &[Tensor],
        tensors: &[Option<Tensor>],
        out: &mut Option<Tensor>,
    ) -> Result<bool> {
        let get = |s: usize| self.slot(tensors, inputs, s).filter(|t| t.dtype() == DType::F32);
        let operand = |t: &Tensor, o: &Operand| match &o.swap {
            None => layout(t, &o.perm),
            Some(sw) => {
                let first = self.slot(tensors, inputs, sw.first.0)?;
                let second = self.slot(tensors, inputs, sw.second.0)?;
                swapped_layout(t.dims(), (first, sw.first.1), (second, sw.second.1))
            }
        };
        let (Some(q), Some(kt), Some(v)) = (get(f.q.slot), get(f.kt.slot), get(f.v.slot)) else {
            return Ok(false);
        };
        let mask = match f.mask {
            Some(s) => match get(s) {
                Some(m) => Some(m),
                None => return Ok(false),
            },
            None => None,
        };
        let (Some(ql), Some(kl), Some(vl)) = (operand(q, &f.q), operand(kt, &f.kt), operand(v, &f.v)) else {
            return Ok(false);
        };
        let ml = match mask {
            Some(m) => match SdpaLayout::contiguous(m.dims()) {
                Some(l) => Some(l),
                None => return Ok(false),
            },
            None => None,
        };
        let mut reverse = [0usize; MAX_RANK];
        let out_perm = match &f.out_perm {
            None => None,
            Some(Some(p)) => Some(p.as_slice()),
            Some(None) => {
                let rank = ql.dims.len().max(kl.dims.len());
                reverse
                    .iter_mut()
                    .take(rank)
                    .enumerate()
                    .for_each(|(i, r)| *r = rank - 1 - i);
                Some(&reverse[..rank])
            }
        };
        let Some(plan) = SdpaPlan::new(&ql, &kl, &vl, ml.as_ref(), out_perm, f.scale, f.nan_to_zero) else {
            return Ok(false);
        };
        let (qv, kv, vv) = (q.as_f32()?, kt.as_f32()?, v.as_f32()?);
        let mv = mask.map(|m| m.as_f32()).transpose()?;
        let dims = plan.out_dims();
        let y = Tensor::reuse_slot(out, DType::F32, |d| d == dims, || Ok(dims.to_vec()))?.as_f32_mut()?;
        if !plan.fits(qv, kv, vv, mv, y.len()) {
            return Err(Error::Internal(
                "fused attention operands are shorter than their shapes".into(),
            ));
        }
        let units = plan.units();
        let threads = self.pool.threads();
        let ptr = SendPtr(y.as_mut_ptr());
        if threads == 1 || units < 2 || plan.macs() < PARALLEL_MATMUL_MACS {
            // SAFETY: `y` holds the output (checked by `fits`); one call covers every unit.
            unsafe { plan.run_units(qv, kv, vv, mv, ptr.0, 0..units) };
        } else {
            let tasks = units.min(threads * 4);
            self.pool.run(tasks, &|i| {
                let p = &ptr;
                // SAFETY: `y` outlives the job and holds the output (`fits`); the tasks'
                // unit ranges partition 0..units, and each unit writes its own rows only.
                unsafe { plan.run_units(qv, kv, vv, mv, p.0, units * i / tasks..units * (i + 1) / tasks) };
            });
        }
        Ok(true)
    }
}
