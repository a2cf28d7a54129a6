//! Global average pool step: the mean over H and W of an NHWC value.

use super::{fixed, KernelContract};
use crate::kernels::OutputRange;
use crate::program::codec::{Dec, Enc};
use crate::Result;

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

    fn inputs(&self) -> Vec<usize> {
        vec![self.input]
    }

    fn output(&self) -> usize {
        self.output
    }

    fn remap_values(
        &mut self,
        input: &mut dyn FnMut(usize) -> usize,
        output: &mut dyn FnMut(usize) -> usize,
    ) {
        self.input = input(self.input);
        self.output = output(self.output);
    }

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
}
