//! Average pool step over an NHWC value (ONNX AveragePool: every attribute of a 2-D window).

use super::{expect_dims, fixed, geometry, BuildContext, KernelContract, Step, Window};
use crate::kernels::output::SharedOutput;
use crate::kernels::pool::{AvgDivisor, AvgPool};
use crate::kernels::OutputRange;
use crate::program::codec::{corrupt, Dec, Enc};
use crate::{Error, Result};
use std::ops::Range;

/// Average pool, requantized to the output's qparams.
#[derive(Clone, Debug, PartialEq)]
pub struct AvgPoolSpec {
    /// Input value.
    pub input: usize,
    /// Output value.
    pub output: usize,
    /// Window geometry with the model's pads (resolved `auto_pad` included).
    pub window: Window,
    /// Bottom and right padding added past `window.pads` so that floor division gives the
    /// `ceil_mode` output size; its cells are never counted in the divisor.
    pub extra_end: (usize, usize),
    /// Whether padding cells (of `window.pads`) count in the divisor.
    pub count_include_pad: bool,
    /// Output range after the fused activation.
    pub range: OutputRange,
}

impl KernelContract for AvgPoolSpec {
    fn kind_name(&self) -> &'static str {
        "avg_pool"
    }

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[
            self.input,
            self.output,
            self.extra_end.0,
            self.extra_end.1,
            usize::from(self.count_include_pad),
        ]);
        e.window(&self.window);
        e.range(&self.range);
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output, extra_h, extra_w, include] = fixed(d)?;
        let count_include_pad = match include {
            0 => false,
            1 => true,
            _ => return Err(corrupt("average pool count_include_pad")),
        };
        let spec = AvgPoolSpec {
            input,
            output,
            extra_end: (extra_h, extra_w),
            count_include_pad,
            window: d.window()?,
            range: d.range()?,
        };
        Ok((spec, None))
    }

    /// Chooses the kernel for `cx.isa`, builds the indirection table and the per-pixel
    /// multipliers.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        if !x.is_nhwc() {
            return Err(Error::InvalidModel("average pool input must be 4-D".into()));
        }
        let (top, left, bottom, right) = self.window.pads;
        let padded_end = bottom
            .checked_add(self.extra_end.0)
            .zip(right.checked_add(self.extra_end.1))
            .ok_or_else(|| Error::InvalidModel("average pool padding overflows".into()))?;
        let window = Window {
            pads: (top, left, padded_end.0, padded_end.1),
            ..self.window
        };
        let g = geometry(x, &window);
        let divisor = if self.count_include_pad {
            AvgDivisor::Padded { end: (bottom, right) }
        } else {
            AvgDivisor::Inside
        };
        let pool = AvgPool::new(cx.isa, &g, divisor, x.q, out.q, self.range)?;
        let (oh, ow) = pool.out_hw();
        expect_dims(out, &[g.batch, g.in_c, oh, ow], "average pool")?;
        Ok(Box::new(AvgPoolStep { pool }))
    }
}

/// An average pool with its indirection table and multipliers.
struct AvgPoolStep {
    pool: AvgPool,
}

impl Step for AvgPoolStep {
    fn kind(&self) -> &'static str {
        "avg_pool"
    }

    fn tile_count(&self) -> usize {
        self.pool.tile_count()
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        // SAFETY: forwards this function's contract (disjoint tiles for concurrent callers).
        unsafe { self.pool.run_shared(inputs[0], out, tiles) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::KernelSpec;

    #[test]
    fn a_count_include_pad_other_than_0_or_1_is_corrupt() {
        let spec = AvgPoolSpec {
            input: 0,
            output: 1,
            window: Window {
                kernel: (3, 3),
                stride: (2, 2),
                dilation: (1, 1),
                pads: (1, 1, 1, 1),
            },
            extra_end: (1, 1),
            count_include_pad: false,
            range: OutputRange::FULL,
        };
        let mut e = Enc::default();
        KernelSpec::AvgPool(spec).encode(&mut e);
        // Tag, count of 5 fields, then input, output, extra_h, extra_w, count_include_pad.
        let field = 1 + 8 + 4 * 8;
        assert_eq!(e.0[field], 0);
        e.0[field] = 2;
        let err = KernelSpec::decode(&mut Dec::new(&e.0), false).unwrap_err();
        assert!(matches!(err, Error::CorruptFile(_)), "{err}");
    }
}
