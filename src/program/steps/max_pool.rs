//! Max pool step over an NHWC value (output qparams equal the input's).

use super::{expect_dims, fixed, geometry, BuildContext, KernelContract, Step, Window};
use crate::kernels::indirection::Indirection;
use crate::kernels::output::SharedOutput;
use crate::kernels::pool::MaxPool;
use crate::kernels::OutputRange;
use crate::program::codec::{Dec, Enc};
use crate::{Error, Result};
use std::ops::Range;

/// Max pool (output qparams equal the input's).
#[derive(Clone, Debug, PartialEq)]
pub struct MaxPoolSpec {
    /// Input value.
    pub input: usize,
    /// Output value.
    pub output: usize,
    /// Window geometry.
    pub window: Window,
}

impl KernelContract for MaxPoolSpec {
    fn kind_name(&self) -> &'static str {
        "max_pool"
    }

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.input, self.output]);
        e.window(&self.window);
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output] = fixed(d)?;
        let spec = MaxPoolSpec {
            input,
            output,
            window: d.window()?,
        };
        Ok((spec, None))
    }
    /// Chooses the kernel for `cx.isa` and builds the indirection table.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        if !x.is_nhwc() {
            return Err(Error::InvalidModel("max pool input must be 4-D".into()));
        }
        let g = geometry(x, &self.window);
        let ind = Indirection::new(&g)?;
        expect_dims(out, &[g.batch, g.in_c, g.out_h(), g.out_w()], "max pool")?;
        let pool = MaxPool::new(cx.isa, OutputRange::FULL)?;
        Ok(Box::new(MaxPoolStep { pool, ind }))
    }
}

/// A max pool and its indirection table.
struct MaxPoolStep {
    pool: MaxPool,
    ind: Indirection,
}

impl Step for MaxPoolStep {
    fn kind(&self) -> &'static str {
        "max_pool"
    }

    fn tile_count(&self) -> usize {
        self.pool.tile_count(&self.ind)
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        // SAFETY: forwards this function's contract (disjoint tiles for concurrent callers).
        unsafe { self.pool.run_shared(&self.ind, inputs[0], out, tiles) }
    }
}
