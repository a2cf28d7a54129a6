//! Concatenation of `i8` tensors along any axis, requantizing the inputs whose qparams
//! differ from the output's (`v = ((x - zp_x) as f32 * s_x) / s_y`, ONNX Runtime's
//! QLinearConcat, see the module docs of [`crate::kernels`]) and copying the others.
//!
//! A row-major tensor concatenated along an axis is `outer` repetitions of each input's
//! contiguous block of `inner` elements (the axis length times the trailing dimensions).
//! Tile `t` is outer index `t`.

use super::elementwise::{run_row, RowArgs, RowOp};
use super::output::SharedOutput;
use super::requant::{OutputRange, QuantParams, Requantizer};
use crate::cpu::Isa;
use crate::qscheme::requantize_ratio;
use crate::{Error, Result};
use std::ops::Range;

/// One input of a concatenation.
#[derive(Clone, Copy, Debug)]
pub struct ConcatInput<'a> {
    /// `outer × inner` elements.
    pub data: &'a [i8],
    /// Elements of this input per outer index.
    pub inner: usize,
    /// Its quantization.
    pub q: QuantParams,
}

/// A concatenation prepared for an output quantization and an ISA.
#[derive(Clone, Copy, Debug)]
pub struct Concat {
    isa: Isa,
    output: QuantParams,
}

impl Concat {
    /// Prepares a concatenation into an output quantized with `output`.
    pub fn new(isa: Isa, output: QuantParams) -> Result<Self> {
        super::ensure_supported(isa)?;
        output.validate("output")?;
        Ok(Concat { isa, output })
    }

    /// Number of tiles: one per outer index.
    pub fn tile_count(&self, outer: usize) -> usize {
        outer
    }

    /// Computes tiles `tiles` of the output (`outer × Σ inner`).
    pub fn run(
        &self,
        outer: usize,
        inputs: &[ConcatInput],
        out: &mut [i8],
        tiles: Range<usize>,
    ) -> Result<()> {
        let o = SharedOutput::new(out);
        // SAFETY: `o` borrows `out` exclusively for this call.
        unsafe { self.run_shared(outer, inputs, &o, tiles) }
    }

    /// Like [`Concat::run`] on a [`SharedOutput`], so threads can fill disjoint tiles.
    ///
    /// # Safety
    /// Calls that run concurrently on the same output must have disjoint tile ranges.
    pub unsafe fn run_shared(
        &self,
        outer: usize,
        inputs: &[ConcatInput],
        out: &SharedOutput,
        tiles: Range<usize>,
    ) -> Result<()> {
        let row_len = inputs
            .iter()
            .try_fold(0usize, |acc, i| acc.checked_add(i.inner))
            .ok_or_else(|| Error::invalid_argument("inputs", "total size overflows"))?;
        let total = outer
            .checked_mul(row_len)
            .ok_or_else(|| Error::invalid_argument("outer", "size overflows"))?;
        if out.len() < total {
            return Err(Error::ShapeMismatch(format!(
                "output has {} elements, needs {total}",
                out.len()
            )));
        }
        if tiles.start > tiles.end || tiles.end > outer {
            return Err(Error::invalid_argument(
                "tiles",
                format!("range {tiles:?} is outside 0..{outer}"),
            ));
        }
        let mut ops = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            input.q.validate("inputs")?;
            if input.data.len() < outer * input.inner {
                return Err(Error::ShapeMismatch(format!(
                    "input {i} has {} elements, needs {}",
                    input.data.len(),
                    outer * input.inner
                )));
            }
            ops.push(if input.q == self.output {
                None
            } else {
                requantize_ratio(input.q, self.output, "inputs")?;
                Some(RowOp::Requantize {
                    zp_a: input.q.zero_point,
                    s_a: input.q.scale,
                    s_y: self.output.scale,
                })
            });
        }
        let rq = Requantizer::new(self.output.zero_point, OutputRange::FULL);
        for t in tiles {
            let mut col = 0;
            for (input, op) in inputs.iter().zip(&ops) {
                let src = &input.data[t * input.inner..][..input.inner];
                // SAFETY: t < outer and col + inner <= row_len, so the block lies inside the
                // output (length checked above).
                let dst = unsafe { out.as_ptr().add(t * row_len + col) };
                match op {
                    // SAFETY: src has `inner` elements; dst is valid for `inner` writes and
                    // cannot overlap an input (the output is exclusively borrowed).
                    None => unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, input.inner) },
                    Some(op) => {
                        let r = RowArgs {
                            op: *op,
                            len: input.inner,
                            a: src.as_ptr(),
                            a_broadcast: false,
                            b: src.as_ptr(),
                            b_broadcast: false,
                            b_period: 0,
                            out: dst,
                            rq,
                        };
                        // SAFETY: src and dst hold `inner` elements; the ISA was
                        // checked by `new`.
                        unsafe { run_row(self.isa, &r) };
                    }
                }
                col += input.inner;
            }
        }
        Ok(())
    }
}
