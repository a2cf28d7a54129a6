//! Max pool step over an NHWC value (output qparams equal the input's).

use super::{fixed, KernelContract, Window};
use crate::program::codec::{Dec, Enc};
use crate::Result;

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
}
