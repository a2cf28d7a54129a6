//! Reshape step: a byte move that keeps the logical element order (Reshape, Flatten,
//! Squeeze, Unsqueeze), converting between NHWC and row-major storage as needed.

use super::{fixed, BuildContext, KernelContract, Step};
use crate::kernels::gather::permute_shared;
use crate::kernels::output::SharedOutput;
use crate::program::codec::{Dec, Enc};
use crate::{Error, Result};
use std::ops::Range;

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

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.input, self.output]);
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output] = fixed(d)?;
        Ok((ReshapeSpec { input, output }, None))
    }
    /// A plain copy when both storage orders are logical, else a map of storage indices.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        if x.numel() != out.numel() || x.numel() > u32::MAX as usize {
            return Err(Error::InvalidModel("reshape changes the element count".into()));
        }
        let map = if x.storage_is_logical() && out.storage_is_logical() {
            None
        } else {
            let mut map = vec![0u32; out.numel()];
            for l in 0..out.numel() {
                map[out.storage_index(l)] = x.storage_index(l) as u32;
            }
            Some(map)
        };
        Ok(Box::new(ReshapeStep { map }))
    }
}

/// A byte move: `out[i] = in[map[i]]`, or a plain copy without a map.
struct ReshapeStep {
    map: Option<Vec<u32>>,
}

impl Step for ReshapeStep {
    fn kind(&self) -> &'static str {
        "reshape"
    }

    fn tile_count(&self) -> usize {
        1
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, _tiles: Range<usize>) -> Result<()> {
        // SAFETY: one tile: the caller's contract leaves no concurrent call on `out`.
        unsafe { permute_shared(inputs[0], self.map.as_deref(), out) }
    }
}
