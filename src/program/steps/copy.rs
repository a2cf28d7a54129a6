//! Block copy step: a byte move described as strided blocks over storage bytes
//! ([`crate::kernels::block_copy`]): Transpose, Slice, Split, constant Pad, the storage-order
//! change of a reshape and chains of them collapsed into one move, optionally requantized
//! through a 256-entry table (a Split whose outputs have other qparams than its input). Its
//! size in a program file is a few numbers per block, not one index per byte.

use super::{fixed, BuildContext, KernelContract, Step};
use crate::kernels::block_copy::{check_block_shapes, check_blocks, copy_blocks, CopyBlock, MAX_BLOCK_RANK};
use crate::kernels::lut::Lut;
use crate::kernels::output::SharedOutput;
use crate::program::codec::{corrupt, Dec, Enc};
use crate::{Error, Result};
use std::ops::Range;

/// A byte move by strided blocks over the storage bytes of one value into another: each
/// block writes a contiguous range of the output, each byte `b` as `table[b as u8]` when
/// there is a table; output bytes no block writes are `fill` (which is then `Some`).
#[derive(Clone, Debug, PartialEq)]
pub struct CopySpec {
    /// Input value.
    pub input: usize,
    /// Output value.
    pub output: usize,
    /// The blocks, in increasing output order.
    pub blocks: Vec<CopyBlock>,
    /// The byte of output positions no block writes (padding); `None` when the blocks
    /// cover the whole output.
    pub fill: Option<i8>,
    /// The requantization of the copied bytes (input byte `b` → `table[b as u8]`), when the
    /// output's qparams differ from the input's.
    pub table: Option<Box<[i8; 256]>>,
}

/// Encoded bytes of a block without its dimensions: `dst`, `src` and two list lengths.
const BLOCK_HEADER_BYTES: usize = 32;

impl KernelContract for CopySpec {
    fn kind_name(&self) -> &'static str {
        "copy"
    }

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.input, self.output]);
        e.u8(self.fill.is_some() as u8);
        e.u8(self.fill.unwrap_or(0) as u8);
        e.u8(self.table.is_some() as u8);
        if let Some(t) = &self.table {
            t.iter().for_each(|&b| e.u8(b as u8));
        }
        e.u64(self.blocks.len());
        for b in &self.blocks {
            e.u64(b.dst);
            e.u64(b.src);
            e.usizes(&b.dims);
            e.u64(b.src_strides.len());
            b.src_strides
                .iter()
                .for_each(|&s| e.0.extend((s as i64).to_le_bytes()));
        }
    }

    /// Reads the blocks, each bounded by the bytes left, and checks their shapes
    /// ([`check_block_shapes`]); the bounds against the values' sizes are checked by `build`.
    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output] = fixed(d)?;
        let filled = match d.u8()? {
            0 => false,
            1 => true,
            _ => return Err(corrupt("copy fill flag")),
        };
        let fill = d.u8()? as i8;
        let table = match d.u8()? {
            0 => None,
            1 => {
                let bytes: [u8; 256] = d.take(256)?.try_into().expect("256 bytes");
                Some(Box::new(bytes.map(|b| b as i8)))
            }
            _ => return Err(corrupt("copy table flag")),
        };
        let n = d.count(BLOCK_HEADER_BYTES)?;
        let mut blocks = Vec::with_capacity(n);
        for _ in 0..n {
            let dst = d.u64()?;
            let src = d.u64()?;
            let dims = d.usizes()?;
            let rank = d.count(8)?;
            if rank > MAX_BLOCK_RANK {
                return Err(corrupt("copy block rank"));
            }
            let src_strides = (0..rank)
                .map(|_| {
                    let s = i64::from_le_bytes(d.take(8)?.try_into().expect("8 bytes"));
                    isize::try_from(s).map_err(|_| corrupt("copy stride overflows"))
                })
                .collect::<Result<Vec<_>>>()?;
            blocks.push(CopyBlock {
                dst,
                src,
                dims,
                src_strides,
            });
        }
        check_block_shapes(&blocks).map_err(|why| corrupt(&why))?;
        let spec = CopySpec {
            input,
            output,
            blocks,
            fill: filled.then_some(fill),
            table,
        };
        Ok((spec, None))
    }

    /// Checks every block against the storage sizes of the input and output values.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        check_blocks(&self.blocks, x.numel(), out.numel(), self.fill.is_some())
            .map_err(|why| Error::InvalidModel(format!("copy step: {why}")))?;
        let lut = self.table.as_ref().map(|t| Lut::new(cx.isa, **t)).transpose()?;
        Ok(Box::new(CopyStep {
            blocks: self.blocks.clone(),
            fill: self.fill,
            lut,
        }))
    }
}

/// The checked blocks of a [`CopySpec`].
struct CopyStep {
    blocks: Vec<CopyBlock>,
    fill: Option<i8>,
    lut: Option<Lut>,
}

impl Step for CopyStep {
    fn kind(&self) -> &'static str {
        "copy"
    }

    fn tile_count(&self) -> usize {
        1
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, _tiles: Range<usize>) -> Result<()> {
        // SAFETY: one tile: the caller's contract leaves no concurrent call on `out`, whose
        // pointer and length come from an exclusively borrowed slice.
        let dst = unsafe { std::slice::from_raw_parts_mut(out.as_ptr(), out.len()) };
        check_blocks(&self.blocks, inputs[0].len(), dst.len(), self.fill.is_some())
            .map_err(|why| Error::Internal(format!("copy buffers differ from the plan: {why}")))?;
        copy_blocks(inputs[0], &self.blocks, self.fill, dst);
        if let Some(lut) = &self.lut {
            for b in &self.blocks {
                lut.run_in_place(&mut dst[b.dst..b.dst + b.len().unwrap_or(0)]);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::steps::KernelSpec;

    fn spec() -> CopySpec {
        CopySpec {
            input: 1,
            output: 2,
            blocks: vec![
                CopyBlock {
                    dst: 0,
                    src: 5,
                    dims: vec![2, 3],
                    src_strides: vec![-3, 1],
                },
                CopyBlock {
                    dst: 7,
                    src: 0,
                    dims: vec![1],
                    src_strides: vec![1],
                },
            ],
            fill: Some(-3),
            table: Some(Box::new(std::array::from_fn(|b| (b as i8).wrapping_mul(3)))),
        }
    }

    #[test]
    fn decodes_what_it_encodes() {
        let k: KernelSpec = spec().into();
        let mut e = Enc::default();
        k.encode(&mut e);
        let mut d = Dec::new(&e.0);
        assert_eq!(KernelSpec::decode(&mut d, false).unwrap().0, k);
        assert!(d.is_empty());
    }

    #[test]
    fn corrupt_blocks_are_refused_at_decode() {
        let encode = |s: &CopySpec| {
            let mut e = Enc::default();
            KernelSpec::from(s.clone()).encode(&mut e);
            e.0
        };
        // Overlapping blocks, an empty dimension, a rank mismatch.
        let mut overlap = spec();
        overlap.blocks[1].dst = 3;
        let mut empty = spec();
        empty.blocks[0].dims[1] = 0;
        let mut ranks = spec();
        ranks.blocks[0].src_strides.pop();
        for bad in [overlap, empty, ranks] {
            let bytes = encode(&bad);
            assert!(
                KernelSpec::decode(&mut Dec::new(&bytes), false).is_err(),
                "{bad:?}"
            );
        }
        // A block count far past the bytes left is refused before anything is allocated.
        let mut bytes = encode(&spec());
        let count_at = 1 + 8 + 16 + 2 + 1 + 256; // tag, two fields, fill, table
        bytes[count_at..count_at + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        assert!(KernelSpec::decode(&mut Dec::new(&bytes), false).is_err());
    }
}
