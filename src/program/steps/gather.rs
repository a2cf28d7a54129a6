//! Gather step: a byte move by index (Transpose, Slice, Pad).

use super::{fixed, KernelContract};
use crate::program::codec::{Dec, Enc};
use crate::Result;

/// [`GatherSpec::map`] entry of an element that is padding.
pub const GATHER_FILL: u32 = u32::MAX;

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
}
