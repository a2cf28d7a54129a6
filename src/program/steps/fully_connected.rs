//! Fully connected step: `y[m, n] = x[m, k] · W[n, k]ᵀ` over the rows of a row-major value.

use super::{fixed, KernelContract};
use crate::kernels::OutputRange;
use crate::program::codec::{Dec, Enc};
use crate::Result;

/// Fully connected `y[m, n] = x[m, k] · W[n, k]ᵀ`.
#[derive(Clone, Debug, PartialEq)]
pub struct FullyConnectedSpec {
    /// Input value (`m × k` row-major).
    pub input: usize,
    /// Output value (`m × n`).
    pub output: usize,
    /// Output channels.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// `n × k` weights.
    pub weights: Vec<i8>,
    /// One or `n` weight scales.
    pub scales: Vec<f32>,
    /// Int32 bias (empty: none).
    pub bias: Vec<i32>,
    /// Output range after the fused activation.
    pub range: OutputRange,
}

impl KernelContract for FullyConnectedSpec {
    fn kind_name(&self) -> &'static str {
        "fully_connected"
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
        e.usizes(&[self.input, self.output, self.n, self.k]);
        e.i8s(&self.weights);
        e.f32s(&self.scales);
        e.i32s(&self.bias);
        e.range(&self.range);
    }

    fn decode<'a>(d: &mut Dec<'a>, view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output, n, k] = fixed(d)?;
        let (weights, viewed) = d.i8s_or_view(view)?;
        let spec = FullyConnectedSpec {
            input,
            output,
            n,
            k,
            weights,
            scales: d.f32s()?,
            bias: d.i32s()?,
            range: d.range()?,
        };
        Ok((spec, viewed))
    }
}
