//! Table lookup step: an int8 element-wise unary operator (HardSwish, Sigmoid, ...) as a
//! 256-entry table from stored input byte to stored output byte, computed at lowering
//! ([`crate::kernels::lut::build_table`]) so that it is the graph's dequantize → operator →
//! quantize, bit for bit.

use super::{fixed, BuildContext, KernelContract, Step};
use crate::kernels::lut::Lut;
use crate::kernels::output::SharedOutput;
use crate::program::codec::{corrupt, Dec, Enc};
use crate::{Error, Result};
use std::ops::Range;

/// Elements of one tile: large enough that a tile's lookup outweighs its dispatch, small
/// enough that big tensors split over threads.
const TILE_ELEMENTS: usize = 16 * 1024;

/// `output[i] = table[input[i] as u8]` over every element (input and output have the same
/// shape, hence the same storage order).
#[derive(Clone, Debug, PartialEq)]
pub struct LutSpec {
    /// Input value.
    pub input: usize,
    /// Output value.
    pub output: usize,
    /// The output byte of each input byte `b`, at index `b as u8`; the fused activation's
    /// clamp is already applied.
    pub table: Box<[i8; 256]>,
}

impl KernelContract for LutSpec {
    fn kind_name(&self) -> &'static str {
        "lut"
    }

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.input, self.output]);
        e.i8s(&self.table[..]);
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output] = fixed(d)?;
        let table: [i8; 256] = d
            .i8s()?
            .try_into()
            .map_err(|_| corrupt("lookup table is not 256 bytes"))?;
        let spec = LutSpec {
            input,
            output,
            table: Box::new(table),
        };
        Ok((spec, None))
    }

    /// Chooses the lookup kernel for `cx.isa`; the input and output must have the same shape.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        if x.dims != out.dims {
            return Err(Error::ShapeMismatch(format!(
                "table lookup from `{}` of shape {:?} into `{}` of shape {:?}",
                x.name, x.dims, out.name, out.dims
            )));
        }
        if out.numel() == 0 {
            return Err(Error::InvalidModel(format!(
                "table lookup output `{}` is empty",
                out.name
            )));
        }
        Ok(Box::new(LutStep {
            lut: Lut::new(cx.isa, *self.table)?,
            elements: out.numel(),
        }))
    }
}

/// A table lookup over `elements` bytes, tiled by [`TILE_ELEMENTS`].
struct LutStep {
    lut: Lut,
    elements: usize,
}

impl Step for LutStep {
    fn kind(&self) -> &'static str {
        "lut"
    }

    fn tile_count(&self) -> usize {
        self.elements.div_ceil(TILE_ELEMENTS)
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::Internal("table lookup without its input".into()))?;
        let start = tiles.start.saturating_mul(TILE_ELEMENTS).min(self.elements);
        let end = tiles.end.saturating_mul(TILE_ELEMENTS).min(self.elements);
        // SAFETY: tile ranges map to element ranges one to one, so disjoint tiles of
        // concurrent callers (this function's contract) give disjoint elements; `run_shared`
        // checks the range against both buffers.
        unsafe { self.lut.run_shared(x, out, start..end) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Isa;
    use crate::kernels::QuantParams;
    use crate::program::steps::KernelSpec;
    use crate::program::ValueSpec;

    fn value(name: &str, dims: &[usize]) -> ValueSpec {
        ValueSpec {
            name: name.into(),
            dims: dims.to_vec(),
            q: QuantParams {
                scale: 0.1,
                zero_point: 0,
            },
            unsigned: false,
        }
    }

    fn spec() -> KernelSpec {
        LutSpec {
            input: 0,
            output: 1,
            table: Box::new(std::array::from_fn(|b| (b as u8).wrapping_mul(3) as i8)),
        }
        .into()
    }

    #[test]
    fn encodes_and_refuses_a_short_table() {
        let k = spec();
        let mut e = Enc::default();
        k.encode(&mut e);
        let (back, _) = KernelSpec::decode(&mut Dec::new(&e.0), false).unwrap();
        assert_eq!(back, k);
        // A table of 255 bytes: the length field says 255 and one byte fewer follows.
        let mut short = e.0.clone();
        let len_at = short.len() - 256 - 8;
        short[len_at..len_at + 8].copy_from_slice(&255u64.to_le_bytes());
        short.pop();
        let err = KernelSpec::decode(&mut Dec::new(&short), false).unwrap_err();
        assert!(
            matches!(&err, Error::CorruptFile(m) if m.contains("256")),
            "{err}"
        );
    }

    #[test]
    fn runs_every_tile_and_checks_shapes() {
        let n = 2 * TILE_ELEMENTS + 5;
        let values = [value("x", &[1, n]), value("y", &[1, n])];
        let x: Vec<i8> = (0..n).map(|i| (i * 7) as u8 as i8).collect();
        for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
            let cx = BuildContext {
                isa,
                values: &values,
                prepacked: None,
                weights: None,
            };
            let step = spec().build(cx).unwrap();
            assert_eq!((step.kind(), step.tile_count()), ("lut", 3));
            let mut y = vec![0i8; n];
            let out = SharedOutput::new(&mut y);
            // SAFETY: single-threaded; the two calls cover disjoint tiles.
            unsafe {
                step.run(&[&x], &out, 0..1).unwrap();
                step.run(&[&x], &out, 1..3).unwrap();
            }
            assert!(
                x.iter()
                    .zip(&y)
                    .all(|(&a, &b)| b == (a as u8).wrapping_mul(3) as i8),
                "{isa}"
            );
        }
        let bad = [value("x", &[1, 4]), value("y", &[4, 1])];
        let cx = BuildContext {
            isa: Isa::Scalar,
            values: &bad,
            prepacked: None,
            weights: None,
        };
        assert!(matches!(spec().build(cx), Err(Error::ShapeMismatch(_))));
    }
}
