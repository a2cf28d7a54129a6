//! Resize step: nearest or bilinear resampling of the two spatial axes of an NCHW value
//! (stored NHWC), by the taps lowering computed with the IR's coordinate mapping
//! ([`crate::ir::resize::axis_taps`]), so that it reads what the interpreter reads.

use super::{fixed, BuildContext, KernelContract, Step};
use crate::kernels::elementwise::Storage;
use crate::kernels::lut::build_table;
use crate::kernels::output::SharedOutput;
use crate::kernels::resize::{AxisTap, Resize, ResizeGeometry, ResizeToF32};
use crate::kernels::OutputRange;
use crate::program::codec::{corrupt, Dec, Enc};
use crate::program::ValueSpec;
use crate::{Error, Result};
use std::ops::Range;

/// Output bytes of one tile: large enough that a tile outweighs its dispatch, small enough
/// that big outputs split over threads.
const TILE_BYTES: usize = 16 * 1024;

/// Resize of H and W: output pixel `(n, oy, ox)` reads input rows `rows[oy]` and columns
/// `cols[ox]` of image `n` (nearest: the first index of each; bilinear: both, weighted).
#[derive(Clone, Debug, PartialEq)]
pub struct ResizeSpec {
    /// Input value (rank 4).
    pub input: usize,
    /// Output value (rank 4, same batch and channels).
    pub output: usize,
    /// Bilinear (else nearest).
    pub linear: bool,
    /// Taps of each output row.
    pub rows: Vec<AxisTap>,
    /// Taps of each output column.
    pub cols: Vec<AxisTap>,
    /// Output range of a fused activation.
    pub range: OutputRange,
}

/// The interpolation of a resize into `f32` ([`crate::program::StepSpec::ResizeExit`]):
/// output pixel `(n, oy, ox)` of image `n` reads input rows `rows[oy]` and columns `cols[ox]`
/// (nearest: the first index of each; bilinear: both, weighted).
#[derive(Clone, Debug, PartialEq)]
pub struct ResizeTaps {
    /// Bilinear (else nearest).
    pub linear: bool,
    /// Taps of each output row.
    pub rows: Vec<AxisTap>,
    /// Taps of each output column.
    pub cols: Vec<AxisTap>,
}

impl ResizeTaps {
    /// Writes the taps.
    pub(crate) fn encode(&self, e: &mut Enc) {
        e.u8(u8::from(self.linear));
        encode_taps(e, &self.rows);
        encode_taps(e, &self.cols);
    }

    /// Reads what [`ResizeTaps::encode`] wrote.
    pub(crate) fn decode(d: &mut Dec) -> Result<Self> {
        let linear = match d.u8()? {
            0 => false,
            1 => true,
            _ => return Err(corrupt("resize interpolation")),
        };
        let (rows, cols) = (decode_taps(d)?, decode_taps(d)?);
        Ok(ResizeTaps { linear, rows, cols })
    }

    /// The `f32` dimensions (NCHW) of the resize of `x`.
    pub fn output_dims(&self, x: &ValueSpec) -> Result<[usize; 4]> {
        match x.dims[..] {
            [n, c, _, _] => Ok([n, c, self.rows.len(), self.cols.len()]),
            _ => Err(Error::ShapeMismatch(format!(
                "resize of `{}` of shape {:?}, not rank 4",
                x.name, x.dims
            ))),
        }
    }

    /// The resize of value `x` into `f32` with `isa`'s kernels; an error when `x` is not rank
    /// 4 or a tap reads outside it.
    pub fn build(&self, isa: crate::cpu::Isa, x: &ValueSpec) -> Result<ResizeToF32> {
        self.output_dims(x)?;
        let geometry = ResizeGeometry {
            batch: x.dims[0],
            channels: x.dims[1],
            in_hw: (x.dims[2], x.dims[3]),
            rows: self.rows.clone(),
            cols: self.cols.clone(),
        };
        ResizeToF32::new(isa, geometry, x.q, self.linear)
    }
}

fn encode_taps(e: &mut Enc, taps: &[AxisTap]) {
    let (i0, i1): (Vec<usize>, Vec<usize>) = taps.iter().map(|t| (t.i0 as usize, t.i1 as usize)).unzip();
    e.usizes(&i0);
    e.usizes(&i1);
    e.f32s(&taps.iter().map(|t| t.w).collect::<Vec<_>>());
}

fn decode_taps(d: &mut Dec) -> Result<Vec<AxisTap>> {
    let (i0, i1, w) = (d.usizes()?, d.usizes()?, d.f32s()?);
    if i0.len() != i1.len() || i0.len() != w.len() {
        return Err(corrupt("resize taps of different lengths"));
    }
    let index = |i: usize| u32::try_from(i).map_err(|_| corrupt("resize tap index"));
    (0..w.len())
        .map(|k| {
            Ok(AxisTap {
                i0: index(i0[k])?,
                i1: index(i1[k])?,
                w: w[k],
            })
        })
        .collect()
}

impl KernelContract for ResizeSpec {
    fn kind_name(&self) -> &'static str {
        "resize"
    }

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.input, self.output]);
        e.u8(u8::from(self.linear));
        e.range(&self.range);
        encode_taps(e, &self.rows);
        encode_taps(e, &self.cols);
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output] = fixed(d)?;
        let linear = match d.u8()? {
            0 => false,
            1 => true,
            _ => return Err(corrupt("resize interpolation")),
        };
        let range = d.range()?;
        let (rows, cols) = (decode_taps(d)?, decode_taps(d)?);
        let spec = ResizeSpec {
            input,
            output,
            linear,
            rows,
            cols,
            range,
        };
        Ok((spec, None))
    }

    /// Checks the shapes against the taps; nearest with other output qparams or a clamp
    /// maps the copied bytes through the table of dequantize → quantize.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        let fits = x.dims.len() == 4
            && out.dims.len() == 4
            && x.dims[..2] == out.dims[..2]
            && out.dims[2] == self.rows.len()
            && out.dims[3] == self.cols.len();
        if !fits || out.numel() == 0 {
            return Err(Error::ShapeMismatch(format!(
                "resize from `{}` of shape {:?} into `{}` of shape {:?} with {} × {} taps",
                x.name,
                x.dims,
                out.name,
                out.dims,
                self.rows.len(),
                self.cols.len()
            )));
        }
        crate::kernels::ensure_supported(cx.isa)?;
        let geometry = ResizeGeometry {
            batch: x.dims[0],
            channels: x.dims[1],
            in_hw: (x.dims[2], x.dims[3]),
            rows: self.rows.clone(),
            cols: self.cols.clone(),
        };
        let resize = if self.linear {
            Resize::bilinear(cx.isa, geometry, x.q, out.q, self.range)?
        } else {
            let storage = if out.unsigned {
                Storage::Uint8
            } else {
                Storage::Int8
            };
            let table = build_table(x.q, out.q, self.range, storage, |a, b| {
                b.copy_from_slice(a);
                Ok(())
            })?;
            let identity = table.iter().enumerate().all(|(b, &v)| v == b as u8 as i8);
            Resize::nearest(cx.isa, geometry, (!identity).then_some(table))?
        };
        let row_bytes = out.dims[3] * out.dims[1];
        Ok(Box::new(ResizeStep {
            rows_per_tile: (TILE_BYTES / row_bytes).max(1),
            resize,
        }))
    }
}

/// A resize tiled by groups of `rows_per_tile` output rows.
struct ResizeStep {
    resize: Resize,
    rows_per_tile: usize,
}

impl Step for ResizeStep {
    fn kind(&self) -> &'static str {
        "resize"
    }

    fn tile_count(&self) -> usize {
        self.resize.geometry().output_rows().div_ceil(self.rows_per_tile)
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::Internal("resize without its input".into()))?;
        let rows = self.resize.geometry().output_rows();
        let start = tiles.start.saturating_mul(self.rows_per_tile).min(rows);
        let end = tiles.end.saturating_mul(self.rows_per_tile).min(rows);
        // SAFETY: tiles map to disjoint row ranges one to one, so disjoint tiles of concurrent
        // callers (this function's contract) give disjoint rows; `run_shared` checks bounds.
        unsafe { self.resize.run_shared(x, out, start..end) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Isa;
    use crate::kernels::QuantParams;
    use crate::program::steps::KernelSpec;
    use crate::program::ValueSpec;

    fn value(name: &str, dims: &[usize], scale: f32) -> ValueSpec {
        ValueSpec {
            name: name.into(),
            dims: dims.to_vec(),
            q: QuantParams { scale, zero_point: 0 },
            unsigned: false,
        }
    }

    fn spec(linear: bool) -> KernelSpec {
        let tap = |i0, i1, w| AxisTap { i0, i1, w };
        ResizeSpec {
            input: 0,
            output: 1,
            linear,
            rows: vec![tap(0, 0, 0.0), tap(0, 1, 0.5)],
            cols: vec![tap(0, 0, 0.0), tap(0, 0, 0.0), tap(0, 0, 0.0)],
            range: OutputRange::FULL,
        }
        .into()
    }

    #[test]
    fn encodes_builds_and_requantizes_nearest() {
        for linear in [false, true] {
            let k = spec(linear);
            let mut e = Enc::default();
            k.encode(&mut e);
            let mut d = Dec::new(&e.0);
            assert_eq!(KernelSpec::decode(&mut d, false).unwrap().0, k);
            assert!(d.is_empty());
        }
        // x: 1 image, 1 channel, 2 × 1: [10, 30]; y scale 1.0 is half x's 0.5.
        let values = [value("x", &[1, 1, 2, 1], 0.5), value("y", &[1, 1, 2, 3], 1.0)];
        let x = [10i8, 30];
        for (linear, want) in [(false, [5i8, 5, 5, 5, 5, 5]), (true, [5, 5, 5, 10, 10, 10])] {
            let cx = BuildContext {
                isa: Isa::Scalar,
                values: &values,
                prepacked: None,
                weights: None,
            };
            let step = spec(linear).build(cx).unwrap();
            assert_eq!((step.kind(), step.tile_count()), ("resize", 1));
            let mut y = [0i8; 6];
            let out = SharedOutput::new(&mut y);
            // SAFETY: single-threaded, one tile.
            unsafe { step.run(&[&x], &out, 0..1).unwrap() };
            assert_eq!(y, want, "linear {linear}");
        }
        let bad = [value("x", &[1, 1, 2, 1], 0.5), value("y", &[1, 1, 3, 3], 1.0)];
        let cx = BuildContext {
            isa: Isa::Scalar,
            values: &bad,
            prepacked: None,
            weights: None,
        };
        assert!(matches!(spec(false).build(cx), Err(Error::ShapeMismatch(_))));
    }
}
