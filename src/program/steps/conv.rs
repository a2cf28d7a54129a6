//! Convolution step: 2-D convolution (groups ≥ 1) with OHWI weights, or depthwise
//! (multiplier 1) with HWC weights.

use super::{fixed, KernelContract, Window};
use crate::kernels::OutputRange;
use crate::program::codec::{Dec, Enc};
use crate::Result;

/// 2-D convolution (groups ≥ 1) with OHWI weights, or depthwise (multiplier 1) with HWC
/// weights when `depthwise`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvSpec {
    /// Input value.
    pub input: usize,
    /// Output value.
    pub output: usize,
    /// Window geometry.
    pub window: Window,
    /// Groups (1 for dense convolution; channels for depthwise).
    pub groups: usize,
    /// Depthwise kernel family (weights are HWC).
    pub depthwise: bool,
    /// Int8 weights, zero point 0.
    pub weights: Vec<i8>,
    /// One or per-output-channel weight scales.
    pub scales: Vec<f32>,
    /// Int32 bias with scale `s_in * s_w[c]` (empty: none).
    pub bias: Vec<i32>,
    /// Output range after the fused activation.
    pub range: OutputRange,
}

impl KernelContract for ConvSpec {
    fn kind_name(&self) -> &'static str {
        if self.depthwise {
            "dwconv"
        } else {
            "conv"
        }
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
        e.usizes(&[self.input, self.output, self.groups, self.depthwise as usize]);
        e.window(&self.window);
        e.i8s(&self.weights);
        e.f32s(&self.scales);
        e.i32s(&self.bias);
        e.range(&self.range);
    }

    fn decode<'a>(d: &mut Dec<'a>, view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output, groups, dw] = fixed(d)?;
        let window = d.window()?;
        let (weights, viewed) = d.i8s_or_view(view)?;
        let spec = ConvSpec {
            input,
            output,
            groups,
            depthwise: dw != 0,
            window,
            weights,
            scales: d.f32s()?,
            bias: d.i32s()?,
            range: d.range()?,
        };
        Ok((spec, viewed))
    }
}
