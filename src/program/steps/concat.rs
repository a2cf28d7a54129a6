//! Concat step: along the channel axis of NHWC values, or along any axis of row-major values.

use super::{fixed, BuildContext, KernelContract, Step};
use crate::kernels::concat::{Concat, ConcatInput};
use crate::kernels::output::SharedOutput;
use crate::kernels::QuantParams;
use crate::program::codec::{Dec, Enc};
use crate::{Error, Result};
use std::ops::Range;

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
    /// Splits the output into `outer` blocks of each input's `inner` elements.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let out = cx.value(self.output)?;
        let ins = self
            .inputs
            .iter()
            .map(|&i| cx.value(i))
            .collect::<Result<Vec<_>>>()?;
        let (rank, axis) = (out.dims.len(), self.axis);
        if axis >= rank || ins.iter().any(|v| v.dims.len() != rank) {
            return Err(Error::InvalidModel("concat axis or ranks".into()));
        }
        let (outer, inner): (usize, Vec<usize>) = if out.is_nhwc() {
            if axis != 1 {
                return Err(Error::InvalidModel("NHWC concat must be along channels".into()));
            }
            let outer = out.dims[0] * out.dims[2] * out.dims[3];
            (outer, ins.iter().map(|v| v.dims[1]).collect())
        } else {
            let outer = out.dims[..axis].iter().product();
            (
                outer,
                ins.iter().map(|v| v.dims[axis..].iter().product()).collect(),
            )
        };
        if inner.iter().sum::<usize>() * outer != out.numel()
            || ins.iter().zip(&inner).any(|(v, i)| v.numel() != i * outer)
        {
            return Err(Error::InvalidModel("concat shapes".into()));
        }
        Ok(Box::new(ConcatStep {
            concat: Concat::new(cx.isa, out.q)?,
            outer,
            inner,
            qs: ins.iter().map(|v| v.q).collect(),
        }))
    }
}

/// Concatenation of `outer × inner[i]` blocks, requantized to the output's qparams.
struct ConcatStep {
    concat: Concat,
    outer: usize,
    /// Per input: elements per outer index.
    inner: Vec<usize>,
    /// Per input: quantization.
    qs: Vec<QuantParams>,
}

impl Step for ConcatStep {
    fn kind(&self) -> &'static str {
        "concat"
    }

    fn tile_count(&self) -> usize {
        self.concat.tile_count(self.outer)
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        let ins: Vec<ConcatInput> = inputs
            .iter()
            .zip(self.inner.iter().zip(&self.qs))
            .map(|(d, (&inner, &q))| ConcatInput { data: d, inner, q })
            .collect();
        // SAFETY: forwards this function's contract (disjoint tiles for concurrent callers).
        unsafe { self.concat.run_shared(self.outer, &ins, out, tiles) }
    }
}
