//! Reshape step: a byte move that keeps the logical element order (Reshape, Flatten,
//! Squeeze, Unsqueeze), converting between NHWC and row-major storage as needed.

use super::{fixed, KernelContract};
use crate::program::codec::{Dec, Enc};
use crate::Result;

/// A byte move that keeps the logical element order (Reshape, Flatten, Squeeze,
/// Unsqueeze), converting between NHWC and row-major storage as needed.
#[derive(Clone, Debug, PartialEq)]
pub struct ReshapeSpec {
    /// Input value.
    pub input: usize,
    /// Output value.
    pub output: usize,
}

impl KernelContract for ReshapeSpec {
    fn kind_name(&self) -> &'static str {
        "reshape"
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
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output] = fixed(d)?;
        Ok((ReshapeSpec { input, output }, None))
    }
}
