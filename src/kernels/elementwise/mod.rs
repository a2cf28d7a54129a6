//! Quantized elementwise kernels: add and mul of two `i8` tensors with their own qparams
//! (broadcasting by zero strides, e.g. an SE block's `N×1×1×C` scale times `N×H×W×C`),
//! fused clamp/ReLU, and the per-row requantization used by concat. Formulas are in the
//! [`crate::kernels`] module docs.
//!
//! Shapes are 3-D `[n, p, c]` (batch, pixels, channels); each operand has its own strides,
//! where 0 broadcasts. The output is dense. Tile `t` is output row `(t / p, t % p)`.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;

use super::output::SharedOutput;
use super::requant::{validate_multiplier, OutputRange, QuantParams, Requantizer};
use crate::cpu::Isa;
use crate::{Error, Result};
use std::ops::Range;

/// The binary operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a * b`.
    Mul,
}

/// Strides (in elements) of one operand over the `[n, p, c]` index; 0 broadcasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperandStrides {
    /// Stride between batch entries.
    pub n: usize,
    /// Stride between pixels.
    pub p: usize,
    /// Stride between channels: 1 (contiguous) or 0 (one value for every channel).
    pub c: usize,
}

impl OperandStrides {
    /// A dense `[n, p, c]` operand.
    pub fn dense(p: usize, c: usize) -> Self {
        OperandStrides { n: p * c, p: c, c: 1 }
    }

    /// Whether the operand is dense (`[n, p, c]` contiguous) or one scalar for everything,
    /// so that consecutive output rows map to consecutive operand elements.
    fn is_flat(&self, s: &BinaryShape) -> bool {
        let dense = self.c == 1 && (s.p <= 1 || self.p == s.c) && (s.n <= 1 || self.n == s.p * s.c);
        let scalar = self.c == 0 && (s.p <= 1 || self.p == 0) && (s.n <= 1 || self.n == 0);
        dense || scalar
    }

    /// A `[n, 1, c]` operand broadcast over pixels (SE-block scale).
    pub fn per_channel(c: usize) -> Self {
        OperandStrides { n: c, p: 0, c: 1 }
    }
}

/// The 3-D shape of a binary operation and the strides of its operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinaryShape {
    /// Batch.
    pub n: usize,
    /// Pixels per batch entry.
    pub p: usize,
    /// Channels per pixel.
    pub c: usize,
    /// First operand.
    pub a: OperandStrides,
    /// Second operand.
    pub b: OperandStrides,
}

/// Quantization of a binary operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BinaryQuant {
    /// First input.
    pub a: QuantParams,
    /// Second input.
    pub b: QuantParams,
    /// Output.
    pub output: QuantParams,
    /// Output range after a fused activation.
    pub range: OutputRange,
}

/// What one row computes; the multipliers are computed once in `f32` (see module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum RowOp {
    /// `(a - zp_a)·ma + (b - zp_b)·mb`.
    Add { zp_a: i32, zp_b: i32, ma: f32, mb: f32 },
    /// `((a - zp_a)·(b - zp_b))·m`.
    Mul { zp_a: i32, zp_b: i32, m: f32 },
    /// `(a - zp_a)·m` (single input).
    Scale { zp_a: i32, m: f32 },
}

/// One row for a microkernel. Contract: `a` (and `b` unless `op` is `Scale`) are valid for
/// reading `len` elements, or 1 when broadcast; `out` is valid for writing `len` bytes.
pub(crate) struct RowArgs {
    pub op: RowOp,
    pub len: usize,
    pub a: *const i8,
    pub a_broadcast: bool,
    pub b: *const i8,
    pub b_broadcast: bool,
    pub out: *mut i8,
    pub rq: Requantizer,
}

/// Runs one row with the microkernel of `isa`.
///
/// # Safety
/// `r` satisfies the [`RowArgs`] contract and the CPU supports `isa`.
pub(crate) unsafe fn run_row(isa: Isa, r: &RowArgs) {
    // SAFETY: forwarded contract.
    unsafe {
        match isa {
            Isa::Scalar => scalar::row(r),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => avx2::row(r),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => avx512::row(r),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("ISAs the CPU lacks are rejected at construction"),
        }
    }
}

/// A quantized add or mul, prepared once for its qparams and an ISA.
#[derive(Clone, Copy, Debug)]
pub struct QuantizedBinary {
    isa: Isa,
    op: RowOp,
    rq: Requantizer,
}

impl QuantizedBinary {
    /// Prepares `op` with the given quantization for the kernels of `isa`.
    pub fn new(isa: Isa, op: BinaryOp, q: &BinaryQuant) -> Result<Self> {
        super::ensure_supported(isa)?;
        q.a.validate("a")?;
        q.b.validate("b")?;
        q.output.validate("output")?;
        let row_op = match op {
            BinaryOp::Add => {
                let (ma, mb) = (q.a.scale / q.output.scale, q.b.scale / q.output.scale);
                validate_multiplier(ma, "a")?;
                validate_multiplier(mb, "b")?;
                RowOp::Add {
                    zp_a: q.a.zero_point,
                    zp_b: q.b.zero_point,
                    ma,
                    mb,
                }
            }
            BinaryOp::Mul => {
                let m = (q.a.scale * q.b.scale) / q.output.scale;
                validate_multiplier(m, "output")?;
                RowOp::Mul {
                    zp_a: q.a.zero_point,
                    zp_b: q.b.zero_point,
                    m,
                }
            }
        };
        Ok(QuantizedBinary {
            isa,
            op: row_op,
            rq: Requantizer::new(q.output.zero_point, q.range),
        })
    }

    /// Number of tiles (output rows) of `shape`.
    pub fn tile_count(&self, shape: &BinaryShape) -> usize {
        shape.n * shape.p
    }

    /// Computes tiles `tiles` of the dense `[n, p, c]` output.
    pub fn run(
        &self,
        shape: &BinaryShape,
        a: &[i8],
        b: &[i8],
        out: &mut [i8],
        tiles: Range<usize>,
    ) -> Result<()> {
        let o = SharedOutput::new(out);
        // SAFETY: `o` borrows `out` exclusively for this call.
        unsafe { self.run_shared(shape, a, b, &o, tiles) }
    }

    /// Like [`QuantizedBinary::run`], writing through a [`SharedOutput`].
    ///
    /// # Safety
    /// Calls that run concurrently on the same output must have disjoint tile ranges.
    pub unsafe fn run_shared(
        &self,
        shape: &BinaryShape,
        a: &[i8],
        b: &[i8],
        out: &SharedOutput,
        tiles: Range<usize>,
    ) -> Result<()> {
        check_operand("a", shape, &shape.a, a.len())?;
        check_operand("b", shape, &shape.b, b.len())?;
        let total = shape
            .n
            .checked_mul(shape.p)
            .and_then(|r| r.checked_mul(shape.c))
            .ok_or_else(|| Error::invalid_argument("shape", "size overflows"))?;
        if out.len() < total {
            return Err(Error::ShapeMismatch(format!(
                "output has {} elements, needs {total}",
                out.len()
            )));
        }
        let rows = shape.n * shape.p;
        if tiles.start > tiles.end || tiles.end > rows {
            return Err(Error::invalid_argument(
                "tiles",
                format!("range {tiles:?} is outside 0..{rows}"),
            ));
        }
        if shape.c == 0 {
            return Ok(());
        }
        if shape.a.is_flat(shape) && shape.b.is_flat(shape) {
            // Consecutive rows are contiguous in every operand: one long row.
            let (start, len) = (tiles.start * shape.c, tiles.len() * shape.c);
            let r = RowArgs {
                op: self.op,
                len,
                a: a[if shape.a.c == 0 { 0 } else { start }..].as_ptr(),
                a_broadcast: shape.a.c == 0,
                b: b[if shape.b.c == 0 { 0 } else { start }..].as_ptr(),
                b_broadcast: shape.b.c == 0,
                // SAFETY: rows tiles.start..tiles.end of the output are inside `out`.
                out: unsafe { out.as_ptr().add(start) },
                rq: self.rq,
            };
            if len > 0 {
                // SAFETY: a flat operand holds every element of the rows read (check_operand).
                unsafe { run_row(self.isa, &r) };
            }
            return Ok(());
        }
        for t in tiles {
            let (n, p) = (t / shape.p, t % shape.p);
            let r = RowArgs {
                op: self.op,
                len: shape.c,
                a: a[n * shape.a.n + p * shape.a.p..].as_ptr(),
                a_broadcast: shape.a.c == 0,
                b: b[n * shape.b.n + p * shape.b.p..].as_ptr(),
                b_broadcast: shape.b.c == 0,
                // SAFETY: row t of the dense output is inside `out` (checked above).
                out: unsafe { out.as_ptr().add(t * shape.c) },
                rq: self.rq,
            };
            // SAFETY: check_operand proved every element the row reads is in bounds.
            unsafe { run_row(self.isa, &r) };
        }
        Ok(())
    }
}

/// Checks that every element an operand's strides reach lies inside `len`.
fn check_operand(name: &'static str, s: &BinaryShape, st: &OperandStrides, len: usize) -> Result<()> {
    if st.c > 1 {
        return Err(Error::invalid_argument(name, "channel stride must be 0 or 1"));
    }
    if s.n == 0 || s.p == 0 || s.c == 0 {
        return Ok(());
    }
    let last = (s.n - 1)
        .checked_mul(st.n)
        .and_then(|x| x.checked_add((s.p - 1).checked_mul(st.p)?))
        .and_then(|x| x.checked_add((s.c - 1) * st.c))
        .ok_or_else(|| Error::invalid_argument(name, "strides overflow"))?;
    if last >= len {
        return Err(Error::ShapeMismatch(format!(
            "{name} has {len} elements, its strides reach {last}"
        )));
    }
    Ok(())
}
