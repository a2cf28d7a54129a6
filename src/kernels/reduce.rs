//! Int8 reductions over any set of axes: the mean (requantized like the global average pool,
//! `clamp(round_half_even((Σ q - zp_x · n) · s_x / (s_y · n)) + zp_y)`) and the maximum
//! (`clamp(round_half_even((max q - zp_x) · s_x / s_y) + zp_y)`, the identity on bytes when
//! the output's qparams equal the input's). The elements of each output are given as
//! storage indexes, so any layout and any axes are one loop. Scalar only: it is the same
//! code, hence the same bytes, under every ISA.

use super::output::SharedOutput;
use super::pool::MAX_POOL_PIXELS;
use super::requant::{OutputRange, QuantParams, Requantizer};
use crate::qscheme::{conv_multiplier, mean_multiplier};
use crate::{Error, Result};
use std::ops::Range;

/// What a reduction computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Arithmetic mean.
    Mean,
    /// Maximum.
    Max,
}

/// A reduction prepared once: output `o` (at storage index `outputs[o]`) reduces the
/// `count` input elements at storage indexes `inputs[o · count..(o + 1) · count]`.
#[derive(Clone, Debug)]
pub struct Reduce {
    op: ReduceOp,
    inputs: Vec<u32>,
    outputs: Vec<u32>,
    count: usize,
    x_len: usize,
    zp_in: i32,
    m: f32,
    rq: Requantizer,
}

impl Reduce {
    /// Prepares the reduction of an input of `x_len` bytes into `outputs.len()` outputs of
    /// `count` elements each. Fails when `count` is 0 or above [`MAX_POOL_PIXELS`] (the sum
    /// stays exact in `i32`), when `inputs` is not `outputs.len() · count` indexes, an index
    /// is out of bounds, or the qparams give no finite multiplier.
    pub fn new(
        op: ReduceOp,
        inputs: Vec<u32>,
        outputs: Vec<u32>,
        count: usize,
        x_len: usize,
        (x, y): (QuantParams, QuantParams),
        range: OutputRange,
    ) -> Result<Self> {
        x.validate("input")?;
        y.validate("output")?;
        if count == 0 || count > MAX_POOL_PIXELS {
            return Err(Error::invalid_argument(
                "count",
                format!("{count} reduced elements is outside 1..={MAX_POOL_PIXELS}"),
            ));
        }
        if outputs.len().checked_mul(count) != Some(inputs.len()) {
            return Err(Error::ShapeMismatch(format!(
                "{} input indexes for {} outputs of {count}",
                inputs.len(),
                outputs.len()
            )));
        }
        if inputs.iter().any(|&i| i as usize >= x_len) {
            return Err(Error::ShapeMismatch(format!(
                "an input index beyond {x_len} bytes"
            )));
        }
        let m = match op {
            ReduceOp::Mean => mean_multiplier(x, y, count)?,
            ReduceOp::Max => conv_multiplier(x.scale, 1.0, y.scale)?,
        };
        Ok(Reduce {
            op,
            inputs,
            outputs,
            count,
            x_len,
            zp_in: x.zero_point,
            m,
            rq: Requantizer::new(y.zero_point, range),
        })
    }

    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        self.outputs.len()
    }

    /// Elements reduced into each output.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Computes outputs `range` from `x` into `out`.
    ///
    /// # Safety
    /// Concurrent callers sharing `out` pass disjoint `range`s (outputs are distinct storage
    /// indexes, checked at construction to be in bounds of the input; against `out` here).
    pub unsafe fn run_shared(&self, x: &[i8], out: &SharedOutput<'_>, range: Range<usize>) -> Result<()> {
        if x.len() != self.x_len || range.start > range.end || range.end > self.outputs.len() {
            return Err(Error::ShapeMismatch(format!(
                "reduce outputs {range:?} of {} over {} input bytes (want {})",
                self.outputs.len(),
                x.len(),
                self.x_len
            )));
        }
        for o in range {
            let at = self.outputs[o] as usize;
            if at >= out.len() {
                return Err(Error::ShapeMismatch(format!(
                    "reduce output index {at} beyond {}",
                    out.len()
                )));
            }
            let taps = self.inputs[o * self.count..(o + 1) * self.count]
                .iter()
                .map(|&i| x[i as usize]);
            let v = match self.op {
                ReduceOp::Mean => {
                    // Exact: count ≤ 2^23 and |q| ≤ 128, so |Σ q| < 2^30.
                    let sum: i32 = taps.map(i32::from).sum();
                    (sum - self.zp_in * self.count as i32) as f32 * self.m
                }
                ReduceOp::Max => (i32::from(taps.max().unwrap_or(i8::MIN)) - self.zp_in) as f32 * self.m,
            };
            // SAFETY: `at < out.len()` (checked above); each output is written by the one call
            // whose range holds it, and concurrent callers pass disjoint ranges (this
            // function's contract).
            unsafe { out.as_ptr().add(at).write(self.rq.apply(v)) };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(scale: f32, zero_point: i32) -> QuantParams {
        QuantParams { scale, zero_point }
    }

    #[test]
    fn mean_and_max_of_groups() {
        let x: Vec<i8> = vec![1, 2, 3, 4, -5, 100];
        // Output 0 reduces elements 0, 2, 4; output 1 elements 1, 3, 5.
        let inputs = vec![0, 2, 4, 1, 3, 5];
        let run = |op| {
            let r = Reduce::new(
                op,
                inputs.clone(),
                vec![1, 0],
                3,
                6,
                (q(0.5, 0), q(0.5, 0)),
                OutputRange::FULL,
            )
            .unwrap();
            let mut y = vec![0i8; 2];
            let out = SharedOutput::new(&mut y);
            // SAFETY: one caller.
            unsafe { r.run_shared(&x, &out, 0..2).unwrap() };
            y
        };
        // Means: (1 + 3 - 5) / 3 = -0.33 → 0; (2 + 4 + 100) / 3 = 35.3 → 35 (stored swapped).
        assert_eq!(run(ReduceOp::Mean), [35, 0]);
        assert_eq!(run(ReduceOp::Max), [100, 3]);
    }

    #[test]
    fn malformed_reductions_are_errors() {
        let qs = (q(0.5, 0), q(0.5, 0));
        let full = OutputRange::FULL;
        assert!(Reduce::new(ReduceOp::Max, vec![0, 1], vec![0], 0, 2, qs, full).is_err());
        assert!(Reduce::new(ReduceOp::Max, vec![0, 1, 2], vec![0], 2, 3, qs, full).is_err());
        assert!(Reduce::new(ReduceOp::Max, vec![0, 9], vec![0], 2, 3, qs, full).is_err());
        let r = Reduce::new(ReduceOp::Mean, vec![0, 1], vec![5], 2, 2, qs, full).unwrap();
        let mut y = vec![0i8; 1];
        let out = SharedOutput::new(&mut y);
        // SAFETY: one caller.
        unsafe {
            assert!(r.run_shared(&[1, 2], &out, 0..1).is_err());
            assert!(r.run_shared(&[1], &out, 0..1).is_err());
        }
    }
}
