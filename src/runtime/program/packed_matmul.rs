//! Interpreted f32 MatMuls against a constant matrix (a linear layer's weights): B is packed
//! once when the program is built, and every call runs [`sgemm_bias`] on it: more than
//! [`gemv::MAX_ROWS`] rows split over the pool by row blocks, fewer (decoding) by column
//! panels ([`sgemm_bias_cols`]; the rows then stream the contiguous panels once, about 1.6×
//! the bandwidth of reading the row-major matrix column block by column block). Every output
//! is the gemv definition's chain, so the bits are those of the interpreter (which packs B per
//! call) and of any split.
//!
//! When the MatMul's output is read only by an Add of a constant vector of its column count
//! (the linear layer's bias), that call also adds the bias to its tiles as they are stored
//! and writes the Add's output; the Add step then finds the MatMul's output slot empty
//! and does nothing. The sum is the Add's (`y + bias`, one rounding), so the bits do not
//! change.
//!
//! A Gemm of alpha 1 with a constant B (either layout) and no C or a constant vector C added
//! (beta 0 or 1) is packed too, and runs every row count on the packed matrix, its C added as
//! the bias (the bits of the interpreter's Gemm, which adds C to the same product).
//!
//! The unpacked constant stays: the nodes run as interpreted ones when a call does not fit
//! the packed matrix, and the program's spec holds the initializer anyway.

use super::{matmul_output, Borrowed, Program, SendPtr, Step, PARALLEL_MATMUL_MACS};
use crate::cpu::Isa;
use crate::interp::kernels::gemv;
use crate::interp::kernels::sgemm::{sgemm_bias, sgemm_bias_cols, PackedB};
use crate::ir::op::BinaryOp;
use crate::ir::{DType, Op, Tensor};
use crate::Result;

/// Fewest rows per task of a packed MatMul split over the pool.
const MIN_TASK_ROWS: usize = 8;

/// A constant MatMul's packed B and, when fused, the bias Add that alone reads its output;
/// or a Gemm's packed B and its C.
pub(super) struct PackedMatMul {
    b: PackedB,
    bias: Option<FusedBias>,
    gemm: Option<GemmBias>,
}

/// What a packed Gemm (alpha 1, A not transposed) adds to its product: its constant C of `n`
/// values when beta is 1 (a beta of 0 adds nothing).
struct GemmBias(Option<Vec<f32>>);

/// The Add of a bias vector fused into a packed MatMul.
struct FusedBias {
    /// `n` values.
    values: Vec<f32>,
    /// The MatMul's own output slot (left empty when the fused path ran).
    matmul_output: usize,
    /// The Add's output slot (written by the MatMul step instead).
    output: usize,
}

/// The packed MatMuls of a program's steps, and which Add steps they absorb.
#[derive(Default)]
pub(super) struct ConstantMatMuls {
    /// Per step.
    packed: Vec<Option<PackedMatMul>>,
    /// Per step: for a fused Add, the output slot of its MatMul.
    fused_adds: Vec<Option<usize>>,
}

/// Every slot `step` reads.
fn reads(step: &Step) -> Vec<usize> {
    match step {
        Step::Interp { inputs, .. } => inputs.iter().flatten().copied().collect(),
        Step::Quantize { slot, .. } => vec![*slot],
        Step::Dynamic { input, .. } => vec![*input],
        Step::Attention { fused, .. } => fused.reads().collect(),
        Step::ViewShape(v) => v.reads().collect(),
        Step::Kernel { .. } | Step::Dequantize { .. } | Step::ResizeExit { .. } => Vec::new(),
    }
}

impl ConstantMatMuls {
    /// Packs, for `isa`, the B of every interpreted MatMul whose B is a constant f32 matrix
    /// (not replaced by a program input), and finds the bias Adds they absorb. A matrix too
    /// large to pack is left unpacked.
    pub(super) fn build(
        steps: &[Step],
        borrowed: &[Borrowed],
        constants: &[(usize, Tensor)],
        output_slots: &[usize],
        isa: Isa,
    ) -> Self {
        let constant = |slot: usize| match borrowed[slot] {
            Borrowed::Constant(i) => Some(&constants[i].1),
            _ => None,
        };
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); borrowed.len()];
        for (i, s) in steps.iter().enumerate() {
            for slot in reads(s) {
                readers[slot].push(i);
            }
        }
        let mut fused_adds = vec![None; steps.len()];
        let packed = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let Step::Interp {
                    op, inputs, outputs, ..
                } = step
                else {
                    return None;
                };
                if let Op::Gemm(g) = op {
                    return Self::gemm(g, inputs, outputs, &constant, isa);
                }
                let (Op::MatMul, [Some(_), Some(b)], [Some(o)]) = (op, inputs.as_slice(), outputs.as_slice())
                else {
                    return None;
                };
                let t = constant(*b)?;
                let b = match (t.dtype(), t.dims()) {
                    (DType::F32, &[k, n]) => PackedB::new(isa, t.as_f32().ok()?, k, n).ok()?,
                    _ => return None,
                };
                let bias = match readers[*o].as_slice() {
                    [j] if *j > i && !output_slots.contains(o) && borrowed[*o] == Borrowed::None => {
                        Self::bias_add(&steps[*j], *o, b.n(), &constant)
                    }
                    _ => None,
                };
                if let Some(f) = &bias {
                    fused_adds[readers[*o][0]] = Some(f.matmul_output);
                }
                Some(PackedMatMul { b, bias, gemm: None })
            })
            .collect();
        ConstantMatMuls { packed, fused_adds }
    }

    /// A Gemm of alpha 1, A not transposed, a constant f32 B and no C, or a C ignored (beta
    /// 0), or a constant C of `n` values added (beta 1), with its B packed for `isa`.
    fn gemm<'a>(
        g: &crate::ir::op::GemmAttrs,
        inputs: &[Option<usize>],
        outputs: &[Option<usize>],
        constant: &impl Fn(usize) -> Option<&'a Tensor>,
        isa: Isa,
    ) -> Option<PackedMatMul> {
        let (Some(Some(b)), [Some(_)]) = (inputs.get(1), outputs) else {
            return None;
        };
        if g.alpha != 1.0 || g.trans_a || inputs.len() > 3 || inputs[0].is_none() {
            return None;
        }
        let t = constant(*b)?;
        let (DType::F32, &[rows, cols]) = (t.dtype(), t.dims()) else {
            return None;
        };
        let (k, n, strides) = if g.trans_b {
            (cols, rows, (1, cols))
        } else {
            (rows, cols, (cols, 1))
        };
        let c = match inputs.get(2).copied().flatten() {
            Some(_) if g.beta == 0.0 => None,
            Some(c) if g.beta == 1.0 => {
                let t = constant(c)?;
                match (t.dtype(), t.dims()) {
                    (DType::F32, &[len]) | (DType::F32, &[1, len]) if len == n => {
                        Some(t.as_f32().ok()?.to_vec())
                    }
                    _ => return None,
                }
            }
            Some(_) => return None,
            None => None,
        };
        let mut packed = PackedB::default();
        packed.pack(isa, t.as_f32().ok()?, strides, k, n).ok()?;
        Some(PackedMatMul {
            b: packed,
            bias: None,
            gemm: Some(GemmBias(c)),
        })
    }

    /// `step` as the Add of a constant f32 vector of `n` values to slot `o`, when it is one.
    fn bias_add<'a>(
        step: &Step,
        o: usize,
        n: usize,
        constant: &impl Fn(usize) -> Option<&'a Tensor>,
    ) -> Option<FusedBias> {
        let Step::Interp {
            op: Op::Binary(BinaryOp::Add),
            inputs,
            outputs,
            ..
        } = step
        else {
            return None;
        };
        let ([Some(x), Some(y)], [Some(out)]) = (inputs.as_slice(), outputs.as_slice()) else {
            return None;
        };
        let other = match (*x == o, *y == o) {
            (true, false) => *y,
            (false, true) => *x,
            _ => return None,
        };
        let t = constant(other)?;
        match (t.dtype(), t.dims()) {
            (DType::F32, &[len]) if len == n => Some(FusedBias {
                values: t.as_f32().ok()?.to_vec(),
                matmul_output: o,
                output: *out,
            }),
            _ => None,
        }
    }

    /// Step `index`'s packed MatMul.
    pub(super) fn get(&self, index: usize) -> Option<&PackedMatMul> {
        self.packed.get(index)?.as_ref()
    }

    /// Whether step `index` is an Add its MatMul already computed in this call (the MatMul's
    /// output slot, in `tensors`, is empty).
    pub(super) fn already_added(&self, index: usize, tensors: &[Option<Tensor>]) -> bool {
        matches!(self.fused_adds.get(index), Some(Some(o)) if tensors[*o].is_none())
    }
}

impl PackedMatMul {
    /// The output slot of the fused bias Add, if any.
    pub(super) fn fused_output(&self) -> Option<usize> {
        self.bias.as_ref().map(|f| f.output)
    }

    /// The MatMul's own output slot when a bias Add is fused.
    pub(super) fn matmul_output(&self) -> Option<usize> {
        self.bias.as_ref().map(|f| f.matmul_output)
    }
}

impl Program {
    /// Runs a MatMul of `a` by `mm`'s packed matrix into `out` when A is f32 with more than
    /// [`gemv::MAX_ROWS`] rows (its leading axes folded into rows), adding the fused bias
    /// when `with_bias` (`out` is then the Add's output); or a Gemm of a 2-D f32 A, with its
    /// C. Returns false, having done nothing, for anything else, which then runs as an
    /// interpreted MatMul or Gemm.
    pub(super) fn run_packed_matmul(
        &self,
        mm: &PackedMatMul,
        a: &Tensor,
        out: &mut Option<Tensor>,
        with_bias: bool,
    ) -> Result<bool> {
        let b = &mm.b;
        let bias = match (&mm.gemm, &mm.bias) {
            (Some(GemmBias(c)), _) => c.as_deref(),
            (None, Some(f)) if with_bias => Some(f.values.as_slice()),
            _ => None,
        };
        let (k, n) = (b.k(), b.n());
        if a.dtype() != DType::F32 || (mm.gemm.is_some() && a.dims().len() != 2) {
            return Ok(false);
        }
        let Some((rows, _, _)) = crate::interp::kernels::folded_rows(a.dims(), &[k, n]) else {
            return Ok(false);
        };
        let av = a.as_f32()?;
        if av.len() != rows * k {
            return Ok(false);
        }
        let y = matmul_output(out, a.dims(), &[k, n])?;
        let threads = self.pool.threads();
        let macs = rows.saturating_mul(k).saturating_mul(n);
        let width = b.panel_width();
        let panels = n.div_ceil(width);
        // Decoding (a few rows) streams the panels once, so threads take column ranges of
        // whole panels; more rows split into equal row ranges of at least `MIN_TASK_ROWS`.
        // Two tasks per thread, taken by whichever thread is free.
        let by_columns = rows <= gemv::MAX_ROWS;
        let tasks = (threads * 2).min(if by_columns { panels } else { rows / MIN_TASK_ROWS });
        if threads == 1 || tasks < 2 || macs < PARALLEL_MATMUL_MACS {
            sgemm_bias(av, k, rows, b, bias, y, n);
            return Ok(true);
        }
        let task_range = move |i: usize| -> (std::ops::Range<usize>, std::ops::Range<usize>) {
            if by_columns {
                let cols = (panels * i / tasks * width).min(n)..(panels * (i + 1) / tasks * width).min(n);
                (0..rows, cols)
            } else {
                (rows * i / tasks..rows * (i + 1) / tasks, 0..n)
            }
        };
        let ptr = SendPtr(y.as_mut_ptr());
        self.pool.run(tasks, &|i| {
            let p = &ptr;
            let (task_rows, cols) = task_range(i);
            // SAFETY: `y` (rows × n, checked by `matmul_output`'s shape) outlives the job, and
            // the tasks' (rows, columns) blocks partition it, so each task writes its own
            // elements only; A's rows from `task_rows.start` are in `av`.
            unsafe {
                sgemm_bias_cols(
                    &av[task_rows.start * k..],
                    k,
                    task_rows.len(),
                    b,
                    cols,
                    bias,
                    p.0.add(task_rows.start * n),
                    n,
                )
            };
        });
        Ok(true)
    }
}
