//! Im2col step: gathers the convolution windows of an NHWC value into dense rows, so that a
//! small-channel convolution runs as one dense GEMM.

use super::{fixed, KernelContract, Window};
use crate::program::codec::{Dec, Enc};
use crate::Result;

/// Gathers the convolution windows of an NHWC value into rows of `k_padded` bytes (taps in
/// `(ky, kx, channel)` order, padding taps and the row tail filled with the input zero
/// point), so that a small-channel convolution runs as one dense GEMM.
#[derive(Clone, Debug, PartialEq)]
pub struct Im2colSpec {
    /// Input value (NHWC).
    pub input: usize,
    /// Output value (`pixels × k_padded`, row-major).
    pub output: usize,
    /// Window geometry.
    pub window: Window,
    /// Row length (taps · channels rounded up to a multiple of 4).
    pub k_padded: usize,
}

impl KernelContract for Im2colSpec {
    fn kind_name(&self) -> &'static str {
        "im2col"
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
        e.usizes(&[self.input, self.output, self.k_padded]);
        e.window(&self.window);
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output, k_padded] = fixed(d)?;
        let spec = Im2colSpec {
            input,
            output,
            k_padded,
            window: d.window()?,
        };
        Ok((spec, None))
    }
}
