//! Quantized elementwise kernels: add, sub and mul of two `i8` tensors with their own qparams
//! (broadcasting by zero strides, e.g. an SE block's `N×1×1×C` scale times `N×H×W×C`),
//! fused clamp/ReLU, and the per-row requantization used by concat. Formulas are in the
//! [`crate::kernels`] module docs: add and mul are ONNX Runtime's QLinearAdd / QLinearMul,
//! which round in the graph's storage type ([`Storage`]).
//!
//! Shapes are 3-D `[n, p, c]` (batch, pixels, channels); each operand has its own strides,
//! where 0 broadcasts. The output is dense. Tile `t` is output row `(t / p, t % p)`.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;

use super::output::SharedOutput;
use super::requant::{OutputRange, QuantParams, Requantizer};
use super::table::ElementwiseKernels;
use crate::cpu::Isa;
use crate::qscheme::{mul_multiplier, signed_add_constants};
use crate::{Error, Result};
use std::ops::Range;

/// The binary operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a * b`.
    Mul,
    /// `a - b` (an add with `b`'s multiplier negated).
    Sub,
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
        let dense = self.is_dense(s);
        let scalar = self.c == 0 && (s.p <= 1 || self.p == 0) && (s.n <= 1 || self.n == 0);
        dense || scalar
    }

    /// Whether the operand is dense: `[n, p, c]` contiguous.
    fn is_dense(&self, s: &BinaryShape) -> bool {
        self.c == 1 && (s.p <= 1 || self.p == s.c) && (s.n <= 1 || self.n == s.p * s.c)
    }

    /// Whether the operand is one vector of `c` channels per batch entry, the same for every
    /// pixel (an SE-block scale).
    fn is_channel_vector(&self) -> bool {
        self.c == 1 && self.p == 0
    }

    /// Whether the operand repeats along the innermost axis of the ONNX (NCHW) tensor: over
    /// pixels, or over channels when there is one pixel. ONNX Runtime's QLinearAdd streams
    /// the other operand and folds this one into its constant term.
    fn is_stream_broadcast(&self, s: &BinaryShape) -> bool {
        if s.p > 1 {
            self.p == 0
        } else {
            s.c > 1 && self.c == 0
        }
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

/// How a graph stores the operands and the output of a binary operation (int8, or uint8
/// carried as `u - 128`: the qscheme [`Carrier`](crate::qscheme::Carrier)). ONNX Runtime's
/// integer kernels compute on the stored integers, so the `f32` rounding of add / mul depends
/// on whether they are int8 or uint8 (see the [`crate::kernels`] module docs).
pub use crate::qscheme::Carrier as Storage;

/// What one row computes; every constant is computed once in `f32` (see module docs).
/// `off` is the [`Storage::offset`]; Add and Mul produce the output in the graph's integer
/// domain, zero point included (their [`Requantizer`] has zero point `-off`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum RowOp {
    /// `fma(a + off, ma, fma(b + off, mb, fixed))`.
    Add { off: i32, ma: f32, mb: f32, fixed: f32 },
    /// `((a - zp_a)·(b - zp_b)) as f32 · m + zp_y`.
    Mul { zp_a: i32, zp_b: i32, m: f32, zp_y: f32 },
    /// `((a - zp_a)·s_a) / s_y` (single input: requantization to other qparams).
    Requantize { zp_a: i32, s_a: f32, s_y: f32 },
}

impl RowOp {
    /// The add of ONNX Runtime's QLinearAdd with `a` the streamed operand and `b` the other
    /// (the broadcast one, if any), all values `x + off` in the graph's integer domain:
    /// `ma = s_a / s_y`, `mb = s_b / s_y`, `fixed = zp_y - fma(ma, zp_a, mb·zp_b)`.
    /// With `negate_a` / `negate_b` the operand's multiplier is negated (a Sub): `-s / s_y`,
    /// and `fixed` uses the signed multipliers.
    fn add(
        a: QuantParams,
        negate_a: bool,
        b: QuantParams,
        negate_b: bool,
        y: QuantParams,
        off: i32,
    ) -> Result<RowOp> {
        let (ma, mb, fixed) = signed_add_constants(a, negate_a, b, negate_b, y, off)?;
        Ok(RowOp::Add { off, ma, mb, fixed })
    }
}

/// Bytes past one period that a periodic operand's buffer repeats, so that a vector load at
/// any phase of the period stays inside it (the widest row step reads 64 bytes).
pub(crate) const PERIOD_SLACK: usize = 64;

/// The largest periodic pattern built on the stack (channels + [`PERIOD_SLACK`]); wider
/// per-channel operands run one row per pixel.
const PATTERN_CAPACITY: usize = 4096;

/// One row for a microkernel. Contract: `a` (and `b` unless `op` is `Requantize`) are valid for
/// reading `len` elements, or 1 when broadcast; when `b_period` is not 0, element `i` of `b` is
/// `b[i % b_period]` and `b` is valid for reading `b_period + PERIOD_SLACK` bytes that repeat
/// with that period; `out` is valid for writing `len` bytes.
pub(crate) struct RowArgs {
    pub op: RowOp,
    pub len: usize,
    pub a: *const i8,
    pub a_broadcast: bool,
    pub b: *const i8,
    pub b_broadcast: bool,
    /// 0, or the period of `b` (an `N×1×1×C` operand streamed with `N×H×W×C`: `C`).
    pub b_period: usize,
    pub out: *mut i8,
    pub rq: Requantizer,
}

/// The index into `b` of a row's element `i`, stepped along the row: `i`, or `i % period`
/// for a periodic operand.
#[derive(Clone, Copy)]
pub(crate) struct Phase {
    at: usize,
    period: usize,
}

impl Phase {
    /// The phase of element 0 of row `r`.
    pub(crate) fn new(r: &RowArgs) -> Self {
        Phase {
            at: 0,
            period: r.b_period,
        }
    }

    /// The current index into `b`.
    #[inline(always)]
    pub(crate) fn at(&self) -> usize {
        self.at
    }

    /// Moves `step` elements along the row.
    #[inline(always)]
    pub(crate) fn advance(&mut self, step: usize) {
        self.at += step;
        if self.period != 0 && self.at >= self.period {
            self.at %= self.period;
        }
    }
}

/// Runs one row with the microkernel of `isa` (its row of [`super::table`]).
///
/// # Safety
/// `r` satisfies the [`RowArgs`] contract and the CPU supports `isa`.
pub(crate) unsafe fn run_row(isa: Isa, r: &RowArgs) {
    // SAFETY: forwarded contract.
    unsafe { (super::table::for_isa(isa).elementwise.row)(r) }
}

/// The portable variant (the test oracle of the others).
pub(crate) static SCALAR: ElementwiseKernels = ElementwiseKernels {
    add: "qs8-vadd-fp32-scalar",
    mul: "qs8-vmul-fp32-scalar",
    requant: "qs8-requant-fp32-scalar",
    row: scalar::row,
};

/// The AVX2 variant (also run by the AVX-VNNI rows).
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX2: ElementwiseKernels = ElementwiseKernels {
    add: "qs8-vadd-fp32-avx2",
    mul: "qs8-vmul-fp32-avx2",
    requant: "qs8-requant-fp32-avx2",
    row: avx2::row,
};

/// The AVX-512 variant.
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX512: ElementwiseKernels = ElementwiseKernels {
    add: "qs8-vadd-fp32-avx512",
    mul: "qs8-vmul-fp32-avx512",
    requant: "qs8-requant-fp32-avx512",
    row: avx512::row,
};

/// A quantized add or mul, prepared once for its qparams and an ISA.
#[derive(Clone, Copy, Debug)]
pub struct QuantizedBinary {
    isa: Isa,
    /// The row operation with `a` streamed.
    op_ab: RowOp,
    /// The row operation with the operands exchanged, used when `a` is broadcast and `b` is
    /// not (as ONNX Runtime streams the non-broadcast operand).
    op_ba: RowOp,
    rq: Requantizer,
}

impl QuantizedBinary {
    /// Prepares `op` on int8 tensors with the given quantization for the kernels of `isa`.
    pub fn new(isa: Isa, op: BinaryOp, q: &BinaryQuant) -> Result<Self> {
        Self::with_storage(isa, op, q, Storage::Int8)
    }

    /// Prepares `op` on tensors stored as `storage` (qparams in int8 terms, as carried).
    pub fn with_storage(isa: Isa, op: BinaryOp, q: &BinaryQuant, storage: Storage) -> Result<Self> {
        super::ensure_supported(isa)?;
        q.a.validate("a")?;
        q.b.validate("b")?;
        q.output.validate("output")?;
        let off = storage.offset();
        let (op_ab, op_ba) = match op {
            BinaryOp::Add => (
                RowOp::add(q.a, false, q.b, false, q.output, off)?,
                RowOp::add(q.b, false, q.a, false, q.output, off)?,
            ),
            // `a - b`, and with `b` streamed `-b + a`.
            BinaryOp::Sub => (
                RowOp::add(q.a, false, q.b, true, q.output, off)?,
                RowOp::add(q.b, true, q.a, false, q.output, off)?,
            ),
            BinaryOp::Mul => {
                let m = mul_multiplier(q.a, q.b, q.output)?;
                let zp_y = (q.output.zero_point + off) as f32;
                let (zp_a, zp_b) = (q.a.zero_point, q.b.zero_point);
                (
                    RowOp::Mul { zp_a, zp_b, m, zp_y },
                    RowOp::Mul {
                        zp_a: zp_b,
                        zp_b: zp_a,
                        m,
                        zp_y,
                    },
                )
            }
        };
        Ok(QuantizedBinary {
            isa,
            op_ab,
            op_ba,
            rq: Requantizer::new(-off, q.range),
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
        // Stream the operand that is not broadcast, as ONNX Runtime does (module docs).
        let swap = shape.a.is_stream_broadcast(shape) && !shape.b.is_stream_broadcast(shape);
        let (op, x, xs, y, ys) = if swap {
            (self.op_ba, b, &shape.b, a, &shape.a)
        } else {
            (self.op_ab, a, &shape.a, b, &shape.b)
        };
        if xs.is_flat(shape) && ys.is_flat(shape) {
            // Consecutive rows are contiguous in every operand: one long row.
            let (start, len) = (tiles.start * shape.c, tiles.len() * shape.c);
            let r = RowArgs {
                op,
                len,
                a: x[if xs.c == 0 { 0 } else { start }..].as_ptr(),
                a_broadcast: xs.c == 0,
                b: y[if ys.c == 0 { 0 } else { start }..].as_ptr(),
                b_broadcast: ys.c == 0,
                b_period: 0,
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
        if xs.is_dense(shape)
            && ys.is_channel_vector()
            && tiles.len() > 1
            && shape.c + PERIOD_SLACK <= PATTERN_CAPACITY
        {
            // An SE-block scale (`N×1×1×C`) against a dense `N×H×W×C`: the rows of one batch
            // entry are one long row whose `b` repeats with period C.
            let mut pattern = [0i8; PATTERN_CAPACITY];
            let pattern = &mut pattern[..shape.c + PERIOD_SLACK];
            let mut t = tiles.start;
            while t < tiles.end {
                let n = t / shape.p;
                let end = ((n + 1) * shape.p).min(tiles.end);
                let channels = &y[n * ys.n..][..shape.c];
                for chunk in pattern.chunks_mut(shape.c) {
                    chunk.copy_from_slice(&channels[..chunk.len()]);
                }
                let r = RowArgs {
                    op,
                    len: (end - t) * shape.c,
                    a: x[t * shape.c..].as_ptr(),
                    a_broadcast: false,
                    b: pattern.as_ptr(),
                    b_broadcast: false,
                    b_period: shape.c,
                    // SAFETY: rows t..end of the dense output are inside `out` (checked above).
                    out: unsafe { out.as_ptr().add(t * shape.c) },
                    rq: self.rq,
                };
                // SAFETY: `x` is dense over these rows (check_operand); `pattern` repeats the
                // batch entry's C channels for C + PERIOD_SLACK bytes.
                unsafe { run_row(self.isa, &r) };
                t = end;
            }
            return Ok(());
        }
        for t in tiles {
            let (n, p) = (t / shape.p, t % shape.p);
            let r = RowArgs {
                op,
                len: shape.c,
                a: x[n * xs.n + p * xs.p..].as_ptr(),
                a_broadcast: xs.c == 0,
                b: y[n * ys.n + p * ys.p..].as_ptr(),
                b_broadcast: ys.c == 0,
                b_period: 0,
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
