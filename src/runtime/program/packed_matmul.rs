//! Interpreted f32 MatMuls against a constant matrix (a linear layer's weights): B is packed
//! once when the program is built, and a call of more than [`gemv::MAX_ROWS`] rows runs
//! [`sgemm`] on it, its row blocks split over the pool. Every output is the gemv definition's
//! chain, so the bits are those of the interpreter (which packs B per call) and of any split.
//!
//! The unpacked constant stays: calls of at most [`gemv::MAX_ROWS`] rows (decoding) run the
//! vector × matrix kernel on the row-major matrix with the columns split over the pool, and
//! the program's spec holds the initializer anyway.

use super::{matmul_output, Borrowed, Program, SendPtr, Step, PARALLEL_MATMUL_MACS};
use crate::cpu::Isa;
use crate::interp::kernels::gemv;
use crate::interp::kernels::sgemm::{self, sgemm, PackedB};
use crate::ir::{DType, Op, Tensor};
use crate::Result;

/// Per step: B packed for `isa`, for every interpreted MatMul whose B is a constant f32
/// matrix (not replaced by a program input). A matrix too large to pack is left unpacked.
pub(super) fn pack_constant_matmuls(
    steps: &[Step],
    borrowed: &[Borrowed],
    constants: &[(usize, Tensor)],
    isa: Isa,
) -> Vec<Option<PackedB>> {
    steps
        .iter()
        .map(|step| {
            let Step::Interp {
                op: Op::MatMul,
                inputs,
                outputs,
                ..
            } = step
            else {
                return None;
            };
            let ([Some(_), Some(b)], [Some(_)]) = (inputs.as_slice(), outputs.as_slice()) else {
                return None;
            };
            let Borrowed::Constant(i) = borrowed[*b] else {
                return None;
            };
            let t = &constants[i].1;
            match (t.dtype(), t.dims()) {
                (DType::F32, &[k, n]) => PackedB::new(isa, t.as_f32().ok()?, k, n).ok(),
                _ => None,
            }
        })
        .collect()
}

impl Program {
    /// Runs a MatMul of `a` by the matrix packed in `b` into `out` when A is f32 with more
    /// than [`gemv::MAX_ROWS`] rows (its leading axes folded into rows). Returns false, having
    /// done nothing, for anything else, which then runs as an interpreted MatMul.
    pub(super) fn run_packed_matmul(
        &self,
        b: &PackedB,
        a: &Tensor,
        out: &mut Option<Tensor>,
    ) -> Result<bool> {
        let (k, n) = (b.k(), b.n());
        if a.dtype() != DType::F32 {
            return Ok(false);
        }
        let Some((rows, _, _)) = crate::interp::kernels::folded_rows(a.dims(), &[k, n]) else {
            return Ok(false);
        };
        let av = a.as_f32()?;
        if rows <= gemv::MAX_ROWS || av.len() != rows * k {
            return Ok(false);
        }
        let y = matmul_output(out, a.dims(), &[k, n])?;
        let blocks = rows.div_ceil(sgemm::ROW_BLOCK);
        let threads = self.pool.threads();
        let macs = rows.saturating_mul(k).saturating_mul(n);
        if threads == 1 || blocks < 2 || macs < PARALLEL_MATMUL_MACS {
            sgemm(av, k, rows, b, y, n);
            return Ok(true);
        }
        let tasks = (threads * 2).min(blocks);
        let ptr = SendPtr(y.as_mut_ptr());
        self.pool.run(tasks, &|i| {
            let p = &ptr;
            let first = (blocks * i / tasks * sgemm::ROW_BLOCK).min(rows);
            let end = (blocks * (i + 1) / tasks * sgemm::ROW_BLOCK).min(rows);
            // SAFETY: `y` (rows × n, checked by `matmul_output`'s shape) outlives the job, and
            // the tasks' row ranges partition 0..rows, so each task writes its own rows only.
            let part = unsafe { std::slice::from_raw_parts_mut(p.0.add(first * n), (end - first) * n) };
            sgemm(&av[first * k..end * k], k, end - first, b, part, n);
        });
        Ok(true)
    }
}
