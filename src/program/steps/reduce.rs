//! Reduce step: ReduceMean / ReduceMax of an int8 value over any set of logical axes, the
//! reduced axes kept as size 1 or dropped (the output's storage order follows its own
//! dimensions; rank-4 values are stored NHWC). See [`crate::kernels::reduce`] for the
//! arithmetic.

use super::{fixed, BuildContext, KernelContract, Step};
use crate::kernels::output::SharedOutput;
use crate::kernels::reduce::{Reduce, ReduceOp};
use crate::kernels::OutputRange;
use crate::program::codec::{corrupt, Dec, Enc};
use crate::program::ValueSpec;
use crate::{Error, Result};
use std::ops::Range;

/// Input elements of one tile (whole outputs), so that a tile's work outweighs its dispatch.
const TILE_ELEMENTS: usize = 16 * 1024;

/// Largest rank of a reduced value.
const MAX_RANK: usize = 8;

/// `output = reduce(input)` over logical (ONNX) axes `axes`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceSpec {
    /// Input value.
    pub input: usize,
    /// Output value.
    pub output: usize,
    /// Mean or max.
    pub op: ReduceOp,
    /// The reduced logical axes of the input: increasing, each below its rank.
    pub axes: Vec<usize>,
    /// Output range after a fused activation.
    pub range: OutputRange,
}

impl KernelContract for ReduceSpec {
    fn kind_name(&self) -> &'static str {
        "reduce"
    }

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.input, self.output]);
        e.u8(match self.op {
            ReduceOp::Mean => 0,
            ReduceOp::Max => 1,
        });
        e.usizes(&self.axes);
        e.range(&self.range);
    }

    /// Reads the axes (at most [`MAX_RANK`], increasing); their bounds against the input's
    /// rank are checked by `build`.
    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output] = fixed(d)?;
        let op = match d.u8()? {
            0 => ReduceOp::Mean,
            1 => ReduceOp::Max,
            _ => return Err(corrupt("reduce kind")),
        };
        let axes = d.usizes()?;
        if axes.len() > MAX_RANK || axes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(corrupt("reduce axes"));
        }
        let spec = ReduceSpec {
            input,
            output,
            op,
            axes,
            range: d.range()?,
        };
        Ok((spec, None))
    }

    /// Lists the input elements of each output; the axes must be increasing and within the
    /// input's rank, and the output must hold the kept axes' elements.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        let (inputs, outputs, count) = reduce_indexes(x, out, &self.axes)?;
        let reduce = Reduce::new(
            self.op,
            inputs,
            outputs,
            count,
            x.numel(),
            (x.q, out.q),
            self.range,
        )?;
        let per_tile = (TILE_ELEMENTS / count).max(1);
        Ok(Box::new(ReduceStep {
            tiles: reduce.outputs().div_ceil(per_tile),
            per_tile,
            reduce,
        }))
    }
}

/// For reducing `x` over `axes` into `out`: the storage index of each input element grouped
/// by output (outputs in logical order, each group's elements in logical order), the storage
/// index of each output, and the group size.
fn reduce_indexes(x: &ValueSpec, out: &ValueSpec, axes: &[usize]) -> Result<(Vec<u32>, Vec<u32>, usize)> {
    let bad = |why: String| Error::InvalidModel(format!("reduce `{}` into `{}`: {why}", x.name, out.name));
    let rank = x.dims.len();
    if rank > MAX_RANK || axes.iter().any(|&a| a >= rank) || axes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad(format!("axes {axes:?} of a rank-{rank} value")));
    }
    if x.numel() > u32::MAX as usize {
        return Err(bad("too many elements".into()));
    }
    let kept: Vec<usize> = (0..rank).filter(|a| !axes.contains(a)).collect();
    let kept_dims: Vec<usize> = kept.iter().map(|&a| x.dims[a]).collect();
    let reduced_dims: Vec<usize> = axes.iter().map(|&a| x.dims[a]).collect();
    let outputs_n: usize = kept_dims.iter().product();
    let count: usize = reduced_dims.iter().product();
    if out.numel() != outputs_n {
        return Err(bad(format!("{} output elements for {outputs_n}", out.numel())));
    }
    if count == 0 {
        return Err(bad("an empty reduced axis".into()));
    }
    let mut stride = vec![1usize; rank];
    for a in (0..rank.saturating_sub(1)).rev() {
        stride[a] = stride[a + 1] * x.dims[a + 1];
    }
    let offsets = |axes: &[usize], dims: &[usize]| -> Vec<usize> {
        let mut v = vec![0usize];
        for (&a, &d) in axes.iter().zip(dims) {
            let s = stride[a];
            v = v.iter().flat_map(|&o| (0..d).map(move |i| o + i * s)).collect();
        }
        v
    };
    let (bases, taps) = (offsets(&kept, &kept_dims), offsets(axes, &reduced_dims));
    let mut inputs = Vec::with_capacity(x.numel());
    for &b in &bases {
        inputs.extend(taps.iter().map(|&t| x.storage_index(b + t) as u32));
    }
    let outputs = (0..outputs_n).map(|o| out.storage_index(o) as u32).collect();
    Ok((inputs, outputs, count))
}

/// A reduction, `per_tile` outputs a tile.
struct ReduceStep {
    reduce: Reduce,
    per_tile: usize,
    tiles: usize,
}

impl Step for ReduceStep {
    fn kind(&self) -> &'static str {
        "reduce"
    }

    fn tile_count(&self) -> usize {
        self.tiles
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::Internal("reduce without its input".into()))?;
        let outputs = super::items_of_tiles(&tiles, self.per_tile, self.reduce.outputs());
        // SAFETY: disjoint tiles of concurrent callers (this function's contract) give disjoint
        // outputs (`items_of_tiles`); `run_shared` checks the range and both buffers.
        unsafe { self.reduce.run_shared(x, out, outputs) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Isa;
    use crate::kernels::QuantParams;
    use crate::program::steps::KernelSpec;

    fn value(dims: &[usize]) -> ValueSpec {
        ValueSpec {
            name: "v".into(),
            dims: dims.to_vec(),
            q: QuantParams {
                scale: 0.1,
                zero_point: 0,
            },
            unsigned: false,
        }
    }

    fn build(axes: &[usize], x: &[usize], y: &[usize]) -> Result<Box<dyn Step>> {
        let values = [value(x), value(y)];
        let spec = ReduceSpec {
            input: 0,
            output: 1,
            op: ReduceOp::Max,
            axes: axes.to_vec(),
            range: OutputRange::FULL,
        };
        spec.build(BuildContext {
            isa: Isa::Scalar,
            values: &values,
            prepacked: None,
            weights: None,
        })
    }

    #[test]
    fn encodes_decodes_and_refuses_bad_axes() {
        let k: KernelSpec = ReduceSpec {
            input: 3,
            output: 4,
            op: ReduceOp::Mean,
            axes: vec![1, 3],
            range: OutputRange::new(-100, 50).unwrap(),
        }
        .into();
        let mut e = Enc::default();
        k.encode(&mut e);
        let (back, _) = KernelSpec::decode(&mut Dec::new(&e.0), false).unwrap();
        assert_eq!(back, k);
        // The kind byte follows the tag and the two value indexes; the axes follow it.
        let kind_at = e.0.len() - 2 - 3 * 8 - 1;
        for (at, byte) in [(kind_at, 2u8), (kind_at + 9, 9), (kind_at + 1, 200)] {
            let mut bad = e.0.clone();
            bad[at] = byte;
            assert!(
                KernelSpec::decode(&mut Dec::new(&bad), false).is_err(),
                "byte {at} = {byte}"
            );
        }
        for cut in 0..e.0.len() {
            assert!(
                KernelSpec::decode(&mut Dec::new(&e.0[..cut]), false).is_err(),
                "cut {cut}"
            );
        }
        assert!(build(&[2], &[3, 4], &[3]).is_err());
        assert!(build(&[1, 0], &[3, 4], &[1]).is_err());
        assert!(build(&[1], &[3, 4], &[4]).is_err());
        assert!(build(&[1], &[3, 0], &[3]).is_err());
        assert_eq!(build(&[1], &[3, 4], &[3, 1]).unwrap().tile_count(), 1);
    }

    #[test]
    fn an_nhwc_value_reduces_along_its_logical_axes() {
        // [1, 2, 1, 3] stored (w, c): x[c][w] = storage[w * 2 + c].
        let x: Vec<i8> = vec![0, 10, 20, 5, 4, 50];
        let run = |axes: &[usize], y_dims: &[usize]| {
            let step = build(axes, &[1, 2, 1, 3], y_dims).unwrap();
            let mut y = vec![0i8; y_dims.iter().product()];
            let out = SharedOutput::new(&mut y);
            // SAFETY: one caller.
            unsafe { step.run(&[&x], &out, 0..step.tile_count()).unwrap() };
            y
        };
        // Max over W: channel 0 reads 0, 20, 4; channel 1 reads 10, 5, 50.
        assert_eq!(run(&[3], &[1, 2]), [20, 50]);
        // Max over C, dims kept: [1, 1, 1, 3] (stored as 3 pixels of one channel).
        assert_eq!(run(&[1], &[1, 1, 1, 3]), [10, 20, 50]);
    }
}
