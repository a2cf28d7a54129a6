//! Gather step: a byte move by index (Transpose, Slice, Pad).

use super::{fixed, BuildContext, KernelContract, Step};
use crate::kernels::gather::{gather_shared, FILL_INDEX};
use crate::kernels::output::SharedOutput;
use crate::program::codec::{Dec, Enc};
use crate::{Error, Result};
use std::ops::Range;

/// [`GatherSpec::map`] entry of an element that is padding.
pub const GATHER_FILL: u32 = FILL_INDEX;

/// A byte move by index (Transpose, Slice, Pad): logical output element `i` is logical
/// input element `map[i]`, or `fill` where `map[i]` is [`GATHER_FILL`].
#[derive(Clone, Debug, PartialEq)]
pub struct GatherSpec {
    /// Input value.
    pub input: usize,
    /// Output value.
    pub output: usize,
    /// Source index per logical output element.
    pub map: Vec<u32>,
    /// The byte written for padding.
    pub fill: i8,
}

impl KernelContract for GatherSpec {
    fn kind_name(&self) -> &'static str {
        "gather"
    }

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.input, self.output]);
        e.u8(self.fill as u8);
        e.u64(self.map.len());
        self.map.iter().for_each(|&m| e.0.extend(m.to_le_bytes()));
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output] = fixed(d)?;
        let fill = d.u8()? as i8;
        let n = d.count(4)?;
        let map = (0..n)
            .map(|_| Ok(u32::from_le_bytes(d.take(4)?.try_into().expect("4 bytes"))))
            .collect::<Result<Vec<_>>>()?;
        let spec = GatherSpec {
            input,
            output,
            map,
            fill,
        };
        Ok((spec, None))
    }
    /// Turns the map of logical indices into one of storage indices.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        if self.map.len() != out.numel() {
            return Err(Error::InvalidModel(
                "gather map length differs from the output".into(),
            ));
        }
        let mut map = vec![GATHER_FILL; self.map.len()];
        for (l, &src) in self.map.iter().enumerate() {
            if src != GATHER_FILL {
                if src as usize >= x.numel() {
                    return Err(Error::InvalidModel("gather map reads outside the input".into()));
                }
                map[out.storage_index(l)] = x.storage_index(src as usize) as u32;
            }
        }
        Ok(Box::new(GatherStep { map, fill: self.fill }))
    }
}

/// A byte move by storage index: `out[i] = in[map[i]]`, `fill` where `map[i]` is
/// [`GATHER_FILL`].
struct GatherStep {
    map: Vec<u32>,
    fill: i8,
}

impl Step for GatherStep {
    fn kind(&self) -> &'static str {
        "gather"
    }

    fn tile_count(&self) -> usize {
        1
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, _tiles: Range<usize>) -> Result<()> {
        // SAFETY: one tile: the caller's contract leaves no concurrent call on `out`.
        unsafe { gather_shared(inputs[0], &self.map, self.fill, out) }
    }
}
