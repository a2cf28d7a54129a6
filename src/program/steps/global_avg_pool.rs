//! Global average pool step: the mean over H and W of an NHWC value.

use super::{fixed, BuildContext, KernelContract, Step};
use crate::kernels::output::SharedOutput;
use crate::kernels::pool::GlobalAvgPool;
use crate::kernels::OutputRange;
use crate::program::codec::{Dec, Enc};
use crate::{Error, Result};
use std::ops::Range;

/// Mean over H and W of an NHWC value.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalAvgPoolSpec {
    /// Input value.
    pub input: usize,
    /// Output value.
    pub output: usize,
    /// Output range after the fused activation.
    pub range: OutputRange,
}

impl KernelContract for GlobalAvgPoolSpec {
    fn kind_name(&self) -> &'static str {
        "global_avg_pool"
    }

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.input, self.output]);
        e.range(&self.range);
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output] = fixed(d)?;
        let spec = GlobalAvgPoolSpec {
            input,
            output,
            range: d.range()?,
        };
        Ok((spec, None))
    }
    /// Chooses the kernel for `cx.isa`.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        if !x.is_nhwc() || out.numel() != x.dims[0] * x.dims[1] {
            return Err(Error::InvalidModel("global average pool shapes".into()));
        }
        let pool = GlobalAvgPool::new(cx.isa, x.dims[2] * x.dims[3], x.q, out.q, self.range)?;
        Ok(Box::new(GlobalAvgPoolStep {
            pool,
            batch: x.dims[0],
            channels: x.dims[1],
        }))
    }
}

/// The mean over H·W of `batch` images of `channels` channels.
struct GlobalAvgPoolStep {
    pool: GlobalAvgPool,
    batch: usize,
    channels: usize,
}

impl Step for GlobalAvgPoolStep {
    fn kind(&self) -> &'static str {
        "global_avg_pool"
    }

    fn tile_count(&self) -> usize {
        self.pool.tile_count(self.batch)
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        // SAFETY: forwards this function's contract (disjoint tiles for concurrent callers).
        unsafe {
            self.pool
                .run_shared(self.batch, self.channels, inputs[0], out, tiles)
        }
    }
}
