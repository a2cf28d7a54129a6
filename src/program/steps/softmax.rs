//! Softmax step: an int8 softmax along one logical axis of a value, requantized to the
//! output's qparams (see [`crate::kernels::softmax`] for the arithmetic and its bound).

use super::{fixed, BuildContext, KernelContract, Step};
use crate::kernels::output::SharedOutput;
use crate::kernels::softmax::{RowLayout, Softmax};
use crate::kernels::OutputRange;
use crate::program::codec::{Dec, Enc};
use crate::program::ValueSpec;
use crate::{Error, Result};
use std::ops::Range;

/// Elements of one tile: whole rows, about this many bytes, so that a tile's work outweighs
/// its dispatch and big tensors split over threads.
const TILE_ELEMENTS: usize = 16 * 1024;

/// `output = softmax(input)` along logical (ONNX) axis `axis`; input and output have the
/// same shape.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxSpec {
    /// Input value.
    pub input: usize,
    /// Output value.
    pub output: usize,
    /// The logical axis, in `0..rank`.
    pub axis: usize,
    /// Output range after a fused activation.
    pub range: OutputRange,
}

/// The storage axis of logical axis `axis` of `v` (rank-4 values are stored NHWC).
fn storage_axis(v: &ValueSpec, axis: usize) -> usize {
    if v.is_nhwc() {
        [0, 3, 1, 2][axis.min(3)]
    } else {
        axis
    }
}

/// The storage dimensions of `v`.
fn storage_dims(v: &ValueSpec) -> Vec<usize> {
    match v.dims[..] {
        [n, c, h, w] if v.is_nhwc() => vec![n, h, w, c],
        _ => v.dims.clone(),
    }
}

impl KernelContract for SoftmaxSpec {
    fn kind_name(&self) -> &'static str {
        "softmax"
    }

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.input, self.output, self.axis]);
        e.range(&self.range);
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output, axis] = fixed(d)?;
        let spec = SoftmaxSpec {
            input,
            output,
            axis,
            range: d.range()?,
        };
        Ok((spec, None))
    }

    /// Builds the exponential table; the input and output must have the same shape and the
    /// axis must lie within it.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        if x.dims != out.dims {
            return Err(Error::ShapeMismatch(format!(
                "softmax from `{}` of shape {:?} into `{}` of shape {:?}",
                x.name, x.dims, out.name, out.dims
            )));
        }
        if self.axis >= x.dims.len() {
            return Err(Error::InvalidModel(format!(
                "softmax axis {} of `{}` of rank {}",
                self.axis,
                x.name,
                x.dims.len()
            )));
        }
        let layout = RowLayout::along(&storage_dims(x), storage_axis(x, self.axis))?;
        let softmax = Softmax::new(x.q, out.q, self.range, layout)?;
        let rows_per_tile = (TILE_ELEMENTS / layout.len).max(1);
        Ok(Box::new(SoftmaxStep {
            tiles: softmax.rows().div_ceil(rows_per_tile),
            rows_per_tile,
            softmax,
        }))
    }
}

/// A softmax over rows, `rows_per_tile` rows a tile.
struct SoftmaxStep {
    softmax: Softmax,
    rows_per_tile: usize,
    tiles: usize,
}

impl Step for SoftmaxStep {
    fn kind(&self) -> &'static str {
        "softmax"
    }

    fn tile_count(&self) -> usize {
        self.tiles
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::Internal("softmax without its input".into()))?;
        let rows = super::items_of_tiles(&tiles, self.rows_per_tile, self.softmax.rows());
        // SAFETY: disjoint tiles of concurrent callers (this function's contract) give disjoint
        // rows (`items_of_tiles`); `run_shared` checks the rows and both buffers.
        unsafe { self.softmax.run_shared(x, out, rows) }
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

    fn build(axis: usize, dims: &[usize]) -> Result<Box<dyn Step>> {
        let values = [value(dims), value(dims)];
        let spec = SoftmaxSpec {
            input: 0,
            output: 1,
            axis,
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
    fn encodes_decodes_and_refuses_a_bad_axis() {
        let k: KernelSpec = SoftmaxSpec {
            input: 3,
            output: 4,
            axis: 1,
            range: OutputRange::new(-100, 50).unwrap(),
        }
        .into();
        let mut e = Enc::default();
        k.encode(&mut e);
        let (back, _) = KernelSpec::decode(&mut Dec::new(&e.0), false).unwrap();
        assert_eq!(back, k);
        assert!(build(2, &[3, 4]).is_err());
        assert!(build(1, &[3, 0]).is_err());
        assert_eq!(build(1, &[3, 4]).unwrap().tile_count(), 1);
    }

    #[test]
    fn an_nhwc_value_normalises_along_its_logical_axis() {
        // [1, 2, 1, 3]: W (logical axis 3) is storage axis 2, channels (1) storage axis 3.
        let dims = [1, 2, 1, 3];
        let x: Vec<i8> = vec![0, 10, 20, 30, 40, 50]; // storage order: (w, c)
        let along_w: Vec<Vec<usize>> = vec![vec![0, 2, 4], vec![1, 3, 5]];
        let along_c: Vec<Vec<usize>> = vec![vec![0, 1], vec![2, 3], vec![4, 5]];
        for (axis, rows) in [(3, along_w), (1, along_c)] {
            let step = build(axis, &dims).unwrap();
            let mut y = vec![0i8; 6];
            let out = SharedOutput::new(&mut y);
            // SAFETY: one caller.
            unsafe { step.run(&[&x], &out, 0..step.tile_count()).unwrap() };
            for row in rows {
                // The largest element of each row gets the largest output.
                let top = *row.iter().max_by_key(|&&i| x[i]).unwrap();
                assert!(row.iter().all(|&i| y[i] <= y[top]), "axis {axis}: {y:?}");
                assert!(row.iter().filter(|&&i| i != top).all(|&i| y[i] < y[top]));
            }
        }
    }
}
