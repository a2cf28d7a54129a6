//! Attention as one step: the interpreted chain MatMul(Q, Kᵀ) → [Mul/Div by a scalar] →
//! [Add mask] → Softmax(last axis) → [IsNaN/Where → 0] → [Cast to f32]… → MatMul(·, V)
//! (with the scalar optionally on Q and Kᵀ instead, and Transposes of Q, Kᵀ, V and of the
//! output read or written through strides) found on the dataflow of a built program and
//! replaced by a [`FusedAttention`] step that runs the strided kernel
//! ([`crate::interp::kernels::SdpaPlan`]) over the pool. Every node it replaces is kept:
//! when a call's shapes or types do not fit the kernel, those nodes run instead, so the
//! fusion never changes what runs or what it computes beyond rounding.

use super::dataflow::{pair, replace_chains, Flow, Replacement};
use super::view_shape::{view_dims, ViewLink, ViewShape};
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
    /// `slot` is keys or values repeated for groups of query heads, read from their source.
    repeat: Option<RepeatKv>,
}

/// Keys or values shared by groups of query heads ("repeat_kv" of grouped-query
/// attention): Unsqueeze(`source`, a new axis after the heads) → Expand that axis to the
/// group size → Reshape merging it into the heads. Read from `source` with each head
/// repeated, never materialized.
#[derive(Debug)]
struct RepeatKv {
    source: usize,
    /// The Unsqueeze, Expand and Reshape with their shape / axes slots.
    links: Vec<ViewLink>,
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
        let operands = [&self.q, &self.kt, &self.v];
        let swaps = operands
            .into_iter()
            .filter_map(|o| o.swap.as_ref())
            .flat_map(|s| [s.first.0, s.second.0]);
        let repeats = operands
            .into_iter()
            .filter_map(|o| o.repeat.as_ref())
            .flat_map(|r| {
                std::iter::once(r.source).chain(r.links.iter().flat_map(|l| l.args.iter().flatten().copied()))
            });
        [self.q.slot, self.kt.slot, self.v.slot]
            .into_iter()
            .chain(self.mask)
            .chain(swaps)
            .chain(repeats)
            .chain(
                self.unfused
                    .iter()
                    .flat_map(|u| u.inputs.iter().flatten().copied()),
            )
    }
}

/// One attention being matched: the steps it takes so far, and the Shape steps that read
/// a repeated key / value tensor it absorbs (rewritten to read the repeat's source).
struct Match<'f, 'a> {
    flow: &'f Flow<'a>,
    taken: Vec<usize>,
    shapes: Rewritten,
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

    /// The operand behind `slot`, through a private Transpose or swap, and reading repeated
    /// keys / values from their source.
    fn operand(&mut self, slot: usize) -> Operand {
        let mut o = self.viewed(slot);
        o.repeat = self.repeat_kv(o.slot);
        o
    }

    /// `slot` as [`RepeatKv`] when it is one: read once by the attention's chain and
    /// otherwise only by Shape nodes, which are rewritten to answer from the source.
    fn repeat_kv(&mut self, slot: usize) -> Option<RepeatKv> {
        let flow = self.flow;
        let readers = flow.readers.get(&slot)?;
        let shape_of = |r: usize| match &flow.steps[r] {
            Step::Interp {
                name,
                op: Op::Shape { start, end },
                inputs,
                outputs,
            } if inputs[..] == [Some(slot)] => match outputs[..] {
                [Some(out)] => Some((name.clone(), *start, *end, out)),
                _ => None,
            },
            _ => None,
        };
        let shapes = readers.iter().filter(|&&r| shape_of(r).is_some()).count();
        if readers.len() != shapes + 1 {
            return None;
        }
        let (ri, reshape @ Op::Reshape { .. }, [Some(e), Some(rs)]) = flow.private(slot, readers.len())?
        else {
            return None;
        };
        let (ei, Op::Expand, [Some(u), Some(es)]) = flow.private(*e, 1)? else {
            return None;
        };
        let (ui, Op::Unsqueeze, [Some(source), axes]) = flow.private(*u, 1)? else {
            return None;
        };
        let links = vec![
            ViewLink {
                op: Op::Unsqueeze,
                args: vec![*axes],
            },
            ViewLink {
                op: Op::Expand,
                args: vec![Some(*es)],
            },
            ViewLink {
                op: reshape.clone(),
                args: vec![Some(*rs)],
            },
        ];
        self.taken.extend([ui, ei, ri]);
        for (r, (name, start, end, output)) in readers.iter().filter_map(|&r| Some((r, shape_of(r)?))) {
            let step = ViewShape {
                name,
                source: *source,
                links: links.clone(),
                start,
                end,
                output,
            };
            self.shapes.push((r, Step::ViewShape(Box::new(step))));
        }
        Some(RepeatKv {
            source: *source,
            links,
        })
    }

    /// The operand behind `slot`, through a private Transpose or swap.
    fn viewed(&mut self, slot: usize) -> Operand {
        if let Some((i, Op::Transpose { perm }, [Some(x)])) = self.flow.private(slot, 1) {
            self.taken.push(i);
            return Operand {
                slot: *x,
                perm: Some(perm.clone()),
                swap: None,
                repeat: None,
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
                        repeat: None,
                    };
                }
            }
        }
        Operand {
            slot,
            perm: None,
            swap: None,
            repeat: None,
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

/// Steps rewritten in place, by index.
type Rewritten = Vec<(usize, Step)>;

/// The attention whose Softmax is step `softmax`, when the whole chain matches: the steps
/// it replaces (in order), the fused step, and the Shape steps rewritten in place.
fn match_at(flow: &Flow, softmax: usize) -> Option<(Vec<usize>, FusedAttention, Rewritten)> {
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
        shapes: Vec::new(),
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
        m.shapes,
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
        let (taken, f, rewritten) = match_at(flow, i)?;
        let step = Step::Attention {
            name: f.unfused.last().map_or_else(String::new, |u| u.name.clone()),
            fused: Box::new(f),
        };
        Some(Replacement {
            taken,
            step,
            rewritten,
        })
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

/// The layout of a tensor of `dims` read through an absorbed Transpose; None when the
/// permutation does not fit its rank.
fn layout(dims: &[usize], perm: &Option<Option<Vec<usize>>>) -> Option<SdpaLayout> {
    let l = SdpaLayout::contiguous(dims)?;
    match perm {
        None => Some(l),
        Some(Some(p)) => l.permuted(p),
        Some(None) => {
            let rank = dims.len();
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

/// The dims of the repeated keys / values [`RepeatKv`] builds from a source of dims `x`
/// `[..., G, S, D]`, and the group size `R`, when the chain repeats each head `R` times in a
/// row: Unsqueeze adds an axis of 1 after the heads, Expand makes it `R` and nothing else,
/// Reshape merges it into the heads (`[..., G · R, S, D]`). None otherwise (a chain that
/// tiles the heads instead, or does anything else), and the replaced nodes run.
fn repeated_dims<'t>(
    x: &[usize],
    links: &[ViewLink],
    get: impl Fn(usize) -> Option<&'t Tensor>,
) -> Option<(SdpaDims, usize)> {
    let all = view_dims(x, links, get).ok()?;
    let [u, e, l] = &all[..] else {
        return None;
    };
    let n = x.len();
    let p = n.checked_sub(2).filter(|_| n >= 3)?;
    let unsqueezed = u.len() == n + 1 && u[..p] == x[..p] && u[p] == 1 && u[p + 1..] == x[p..];
    let expanded = e.len() == n + 1 && e[..p] == x[..p] && e[p + 1..] == x[p..];
    let r = *e.get(p)?;
    let merged = l.len() == n
        && l[..p - 1] == x[..p - 1]
        && Some(l[p - 1]) == x[p - 1].checked_mul(r)
        && l[p..] == x[p..];
    (unsqueezed && expanded && merged && r >= 1).then_some(())?;
    Some((SdpaDims::from_slice(l)?, r))
}

/// `l`, an operand layout over the contiguous repeated tensor of `logical` dims
/// `[..., H, S, D]`, re-expressed on the source whose `H / r` heads it repeats `r` times:
/// the operand's head axis (third from last) must be the tensor's, its matrix axes inside
/// one `S × D` matrix and its leading axes whole multiples of the heads. None otherwise.
fn on_source(l: &SdpaLayout, logical: &[usize], r: usize) -> Option<SdpaLayout> {
    let (n, k) = (logical.len(), l.dims.len());
    let (heads, rows, cols) = (logical[n.checked_sub(3)?], logical[n - 2], logical[n - 1]);
    let head = k.checked_sub(3)?;
    let matrix = rows.checked_mul(cols)?;
    let all_heads = heads.checked_mul(matrix)?;
    let within = |i: usize| l.dims[i].saturating_sub(1).saturating_mul(l.strides[i]);
    if r == 0
        || !heads.is_multiple_of(r)
        || l.dims[head] != heads
        || l.strides[head] != matrix
        || within(k - 2).saturating_add(within(k - 1)) >= matrix.max(1)
    {
        return None;
    }
    let mut own = *l;
    own.dims[head] = heads / r;
    for i in 0..head {
        if l.dims[i] > 1 {
            if all_heads == 0 || !l.strides[i].is_multiple_of(all_heads) {
                return None;
            }
            own.strides[i] = l.strides[i] / r;
        }
    }
    Some(own)
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
        // The tensor an operand reads: its repeat's source, or its own slot.
        let source = |o: &Operand| get(o.repeat.as_ref().map_or(o.slot, |r| r.source));
        // Its layout on that tensor, and how many query heads share each of its heads.
        let operand = |t: &Tensor, o: &Operand| -> Option<(SdpaLayout, usize)> {
            let (dims, repeat) = match &o.repeat {
                None => (SdpaDims::from_slice(t.dims())?, 1),
                Some(r) => repeated_dims(t.dims(), &r.links, |s| self.slot(tensors, inputs, s))?,
            };
            let l = match &o.swap {
                None => layout(&dims, &o.perm)?,
                Some(sw) => {
                    let first = self.slot(tensors, inputs, sw.first.0)?;
                    let second = self.slot(tensors, inputs, sw.second.0)?;
                    swapped_layout(&dims, (first, sw.first.1), (second, sw.second.1))?
                }
            };
            match repeat {
                1 => Some((l, 1)),
                r => Some((on_source(&l, &dims, r)?, r)),
            }
        };
        let (Some(q), Some(kt), Some(v)) = (source(&f.q), source(&f.kt), source(&f.v)) else {
            return Ok(false);
        };
        let mask = match f.mask {
            Some(s) => match get(s) {
                Some(m) => Some(m),
                None => return Ok(false),
            },
            None => None,
        };
        // Grouped keys and values share one group size; repeated queries are not fused.
        let (Some((ql, 1)), Some((kl, kv_repeat)), Some((vl, v_repeat))) =
            (operand(q, &f.q), operand(kt, &f.kt), operand(v, &f.v))
        else {
            return Ok(false);
        };
        if kv_repeat != v_repeat {
            return Ok(false);
        }
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
        let Some(plan) = SdpaPlan::new(
            &ql,
            &kl,
            &vl,
            ml.as_ref(),
            out_perm,
            f.scale,
            f.nan_to_zero,
            kv_repeat,
        ) else {
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
