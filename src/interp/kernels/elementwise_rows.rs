//! f32 binary arithmetic and Where with broadcasting, written by blocks of the output's
//! leading rows ([`ElementwiseJob`]): for writing into a kept tensor and for splitting over
//! threads. Every output element is the same function of the same operand elements
//! whichever rows a call covers, so any partition gives the bits of one pass.

use super::elementwise::binary_f32_into;
use crate::ir::op::BinaryOp;
use crate::ir::{DType, Op, Tensor};
use crate::Result;
use std::ops::Range;

/// The highest output rank handled (higher ranks take the interpreter's general path).
pub const MAX_RANK: usize = 8;

/// An operand's elements with its dims left-padded with 1s to the output's rank.
#[derive(Clone, Copy, Debug)]
struct Operand<'a, T> {
    values: &'a [T],
    dims: [usize; MAX_RANK],
}

impl<'a, T> Operand<'a, T> {
    fn new(values: &'a [T], d: &[usize], rank: usize) -> Operand<'a, T> {
        let mut dims = [1; MAX_RANK];
        dims[rank - d.len()..rank].copy_from_slice(d);
        Operand { values, dims }
    }

    /// The elements and dims (axes `k..rank`) under the output index `idx` of axes `0..k`.
    fn block(&self, idx: &[usize], rank: usize) -> (&'a [T], &[usize]) {
        let k = idx.len();
        let inner: usize = self.dims[k..rank].iter().product();
        let mut off = 0;
        for (a, &i) in idx.iter().enumerate() {
            let i = if self.dims[a] == 1 { 0 } else { i };
            off = off * self.dims[a] + i;
        }
        (&self.values[off * inner..(off + 1) * inner], &self.dims[k..rank])
    }
}

/// What an [`ElementwiseJob`] computes.
#[derive(Clone, Copy, Debug)]
enum Kind<'a> {
    /// Add, Sub, Mul, Div, Max or Min of two f32 operands.
    Binary(BinaryOp),
    /// Where: the condition picks the first value operand.
    Where(Operand<'a, bool>),
}

/// An f32 element-wise node (binary Add, Sub, Mul, Div, Max, Min with two operands; Where
/// with a bool condition and f32 values) of rank at most [`MAX_RANK`], written by rows of
/// its output's leading axes.
#[derive(Clone, Copy, Debug)]
pub struct ElementwiseJob<'a> {
    kind: Kind<'a>,
    a: Operand<'a, f32>,
    b: Operand<'a, f32>,
    out: [usize; MAX_RANK],
    rank: usize,
    /// Leading axes that form the rows.
    split: usize,
}

/// The broadcast shape of `shapes` (rank at most [`MAX_RANK`]), or `None`.
fn broadcast(shapes: &[&[usize]]) -> Option<([usize; MAX_RANK], usize)> {
    let rank = shapes.iter().map(|s| s.len()).max()?;
    if rank > MAX_RANK {
        return None;
    }
    let mut out = [1usize; MAX_RANK];
    for s in shapes {
        for (i, &n) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if *o == 1 {
                *o = n;
            } else if n != 1 && n != *o {
                return None;
            }
        }
    }
    Some((out, rank))
}

impl<'a> ElementwiseJob<'a> {
    /// The job of `op` on `inputs`, or `None` when `op` is not one of the operators above,
    /// its operands are of other types or do not broadcast (the interpreter's general path
    /// then evaluates it and reports errors).
    pub fn of(op: &Op, inputs: &[Option<&'a Tensor>]) -> Result<Option<ElementwiseJob<'a>>> {
        let get = |i: usize| inputs.get(i).copied().flatten();
        let f32_of = |t: Option<&'a Tensor>| t.filter(|t| t.dtype() == DType::F32);
        let (cond, a, b, kind) = match op {
            Op::Binary(
                b @ (BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::Div
                | BinaryOp::Max
                | BinaryOp::Min),
            ) if inputs.len() == 2 => (None, get(0), get(1), Some(*b)),
            Op::Where if inputs.len() == 3 => {
                (get(0).filter(|c| c.dtype() == DType::Bool), get(1), get(2), None)
            }
            _ => return Ok(None),
        };
        let (Some(a), Some(b)) = (f32_of(a), f32_of(b)) else {
            return Ok(None);
        };
        let shapes: [&[usize]; 3] = [a.dims(), b.dims(), cond.map_or(&[], |c| c.dims())];
        let Some((out, rank)) = broadcast(&shapes) else {
            return Ok(None);
        };
        if rank == 0 {
            return Ok(None);
        }
        let kind = match (kind, cond) {
            (Some(b), _) => Kind::Binary(b),
            (None, Some(c)) => Kind::Where(Operand::new(c.as_bool()?, c.dims(), rank)),
            (None, None) => return Ok(None),
        };
        Ok(Some(ElementwiseJob {
            kind,
            a: Operand::new(a.as_f32()?, a.dims(), rank),
            b: Operand::new(b.as_f32()?, b.dims(), rank),
            out,
            rank,
            split: 0,
        }))
    }

    /// The output's shape.
    pub fn dims(&self) -> &[usize] {
        &self.out[..self.rank]
    }

    /// Rows of the leading axes: the fewest leading axes (all but the last at most) whose
    /// product reaches `want`.
    pub fn with_rows(mut self, want: usize) -> ElementwiseJob<'a> {
        let mut k = 0;
        while k + 1 < self.rank && self.rows() < want {
            k += 1;
            self.split = k;
        }
        self
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.out[..self.split].iter().product()
    }

    /// The output elements of a row.
    pub fn row_len(&self) -> usize {
        self.out[self.split..self.rank].iter().product()
    }

    /// Writes rows `rows` of the output into `dst` (`rows.len()` rows).
    pub fn run(&self, rows: Range<usize>, dst: &mut [f32]) -> Result<()> {
        let (k, rank, unit) = (self.split, self.rank, self.row_len());
        if dst.len() != rows.len() * unit || rows.end > self.rows() {
            return Err(crate::Error::Internal(format!(
                "{} elements for rows {rows:?} of {unit}",
                dst.len()
            )));
        }
        let inner = &self.out[k..rank];
        let mut idx = [0usize; MAX_RANK];
        for (r, part) in rows.zip(dst.chunks_exact_mut(unit.max(1))) {
            let mut rest = r;
            for a in (0..k).rev() {
                idx[a] = rest % self.out[a];
                rest /= self.out[a];
            }
            let (xa, da) = self.a.block(&idx[..k], rank);
            let (xb, db) = self.b.block(&idx[..k], rank);
            match self.kind {
                Kind::Binary(op) => binary_f32_into(op, (xa, da), (xb, db), inner, part)?,
                Kind::Where(c) => {
                    let (xc, dc) = c.block(&idx[..k], rank);
                    select_into(xc, dc, (xa, da), (xb, db), inner, part);
                }
            }
        }
        Ok(())
    }
}

/// `dst = c ? a : b` with broadcasting (operand dims of `out`'s rank).
fn select_into(
    c: &[bool],
    dc: &[usize],
    (a, da): (&[f32], &[usize]),
    (b, db): (&[f32], &[usize]),
    out: &[usize],
    dst: &mut [f32],
) {
    let n = dst.len();
    if c.len() == n && a.len() == n && b.len() == n {
        for (((d, &c), &a), &b) in dst.iter_mut().zip(c).zip(a).zip(b) {
            *d = if c { a } else { b };
        }
        return;
    }
    let rank = out.len();
    let strides = |d: &[usize]| {
        let mut s = [0usize; MAX_RANK];
        let mut acc = 1;
        for i in (0..rank).rev() {
            s[i] = if d[i] == 1 { 0 } else { acc };
            acc *= d[i];
        }
        s
    };
    let (sc, sa, sb) = (strides(dc), strides(da), strides(db));
    let mut idx = [0usize; MAX_RANK];
    let (mut oc, mut oa, mut ob) = (0usize, 0usize, 0usize);
    for d in dst.iter_mut() {
        *d = if c[oc] { a[oa] } else { b[ob] };
        for ax in (0..rank).rev() {
            idx[ax] += 1;
            oc += sc[ax];
            oa += sa[ax];
            ob += sb[ax];
            if idx[ax] < out[ax] {
                break;
            }
            oc -= sc[ax] * idx[ax];
            oa -= sa[ax] * idx[ax];
            ob -= sb[ax] * idx[ax];
            idx[ax] = 0;
        }
    }
}
