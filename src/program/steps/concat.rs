//! Concat step: along the channel axis of NHWC values, or along any axis of row-major values.

use super::{fixed, KernelContract};
use crate::program::codec::{Dec, Enc};
use crate::Result;

/// Concatenation along the channel axis of NHWC values, or along any axis of row-major
/// values.
#[derive(Clone, Debug, PartialEq)]
pub struct ConcatSpec {
    /// Input values.
    pub inputs: Vec<usize>,
    /// Output value.
    pub output: usize,
    /// Logical axis (non-negative).
    pub axis: usize,
}

impl KernelContract for ConcatSpec {
    fn kind_name(&self) -> &'static str {
        "concat"
    }

    fn inputs(&self) -> Vec<usize> {
        self.inputs.clone()
    }

    fn output(&self) -> usize {
        self.output
    }

    fn remap_values(
        &mut self,
        input: &mut dyn FnMut(usize) -> usize,
        output: &mut dyn FnMut(usize) -> usize,
    ) {
        for i in &mut self.inputs {
            *i = input(*i);
        }
        self.output = output(self.output);
    }

    fn encode(&self, e: &mut Enc) {
        e.usizes(&self.inputs);
        e.usizes(&[self.output, self.axis]);
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let inputs = d.usizes()?;
        let [output, axis] = fixed(d)?;
        Ok((ConcatSpec { inputs, output, axis }, None))
    }
}
