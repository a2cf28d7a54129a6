//! Per-channel table lookup step: an int8 element-wise operator with a per-channel constant
//! (`DQ → Sub(mean[c]) → Q`, `x * gamma[c]`, `x / std[c]`) as one 256-entry table per channel
//! along one axis of the value, computed at lowering so that each table is the graph's
//! dequantize → operator with that channel's constant → quantize, bit for bit
//! ([`crate::kernels::lut::ChannelLut`]).

use super::{fixed, BuildContext, KernelContract, Step};
use crate::kernels::lut::ChannelLut;
use crate::kernels::output::SharedOutput;
use crate::program::codec::{corrupt, Dec, Enc};
use crate::program::ValueSpec;
use crate::{Error, Result};
use std::ops::Range;

/// Elements of one tile (as the table lookup step's).
const TILE_ELEMENTS: usize = 16 * 1024;

/// `output[e] = tables[c][input[e] as u8]` with `c` the index of element `e` along logical
/// axis `axis` (input and output have the same shape, hence the same storage order).
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelLutSpec {
    /// Input value.
    pub input: usize,
    /// Output value.
    pub output: usize,
    /// The logical (ONNX, NCHW for rank 4) axis the tables are chosen along.
    pub axis: usize,
    /// One 256-entry table per index along `axis` (channel `c`'s at `256 * c`), fused
    /// activation's clamp applied.
    pub tables: Vec<i8>,
}

/// The number of consecutive storage elements that share an index along logical `axis` of
/// `v` (rank-4 values are NHWC, every other rank row-major).
fn storage_inner(v: &ValueSpec, axis: usize) -> usize {
    let storage_axes: Vec<usize> = if v.dims.len() == 4 {
        vec![0, 2, 3, 1]
    } else {
        (0..v.dims.len()).collect()
    };
    let at = storage_axes
        .iter()
        .position(|&a| a == axis)
        .unwrap_or(storage_axes.len());
    storage_axes[at.saturating_add(1).min(storage_axes.len())..]
        .iter()
        .map(|&a| v.dims[a])
        .product()
}

impl KernelContract for ChannelLutSpec {
    fn kind_name(&self) -> &'static str {
        "channel_lut"
    }

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.input, self.output, self.axis]);
        e.i8s(&self.tables);
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output, axis] = fixed(d)?;
        let tables = d.i8s()?;
        if tables.is_empty() || tables.len() % 256 != 0 {
            return Err(corrupt(
                "per-channel lookup tables are not a positive multiple of 256 bytes",
            ));
        }
        let spec = ChannelLutSpec {
            input,
            output,
            axis,
            tables,
        };
        Ok((spec, None))
    }

    /// Chooses the lookup kernel for `cx.isa`; the input and output must have the same shape,
    /// with one table per index along `axis`.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        if x.dims != out.dims {
            return Err(Error::ShapeMismatch(format!(
                "per-channel lookup from `{}` of shape {:?} into `{}` of shape {:?}",
                x.name, x.dims, out.name, out.dims
            )));
        }
        let Some(&channels) = out.dims.get(self.axis) else {
            return Err(Error::InvalidModel(format!(
                "per-channel lookup along axis {} of `{}` of rank {}",
                self.axis,
                out.name,
                out.dims.len()
            )));
        };
        if channels.checked_mul(256) != Some(self.tables.len()) {
            return Err(Error::InvalidModel(format!(
                "per-channel lookup of `{}`: {} table bytes for {channels} channels",
                out.name,
                self.tables.len()
            )));
        }
        if out.numel() == 0 {
            return Err(Error::InvalidModel(format!(
                "per-channel lookup output `{}` is empty",
                out.name
            )));
        }
        let inner = storage_inner(out, self.axis);
        Ok(Box::new(ChannelLutStep {
            lut: ChannelLut::new(cx.isa, &self.tables, channels, inner)?,
            elements: out.numel(),
        }))
    }
}

/// A per-channel table lookup over `elements` bytes, tiled by [`TILE_ELEMENTS`].
struct ChannelLutStep {
    lut: ChannelLut,
    elements: usize,
}

impl Step for ChannelLutStep {
    fn kind(&self) -> &'static str {
        "channel_lut"
    }

    fn tile_count(&self) -> usize {
        self.elements.div_ceil(TILE_ELEMENTS)
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::Internal("per-channel lookup without its input".into()))?;
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
    use crate::kernels::lut::channel_lookup_reference;
    use crate::kernels::QuantParams;
    use crate::program::steps::KernelSpec;

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

    fn spec(axis: usize, channels: usize) -> KernelSpec {
        ChannelLutSpec {
            input: 0,
            output: 1,
            axis,
            tables: (0..channels * 256)
                .map(|i| (i as u32).wrapping_mul(40_503) as u8 as i8)
                .collect(),
        }
        .into()
    }

    #[test]
    fn encodes_and_refuses_corrupt_tables() {
        let k = spec(1, 3);
        let mut e = Enc::default();
        k.encode(&mut e);
        let (back, _) = KernelSpec::decode(&mut Dec::new(&e.0), false).unwrap();
        assert_eq!(back, k);
        // One table byte fewer: the length field says 767.
        let mut short = e.0.clone();
        let len_at = short.len() - 768 - 8;
        short[len_at..len_at + 8].copy_from_slice(&767u64.to_le_bytes());
        short.pop();
        let err = KernelSpec::decode(&mut Dec::new(&short), false).unwrap_err();
        assert!(
            matches!(&err, Error::CorruptFile(m) if m.contains("256")),
            "{err}"
        );
        // A length past the end of the bytes.
        let mut long = e.0.clone();
        long[len_at..len_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(KernelSpec::decode(&mut Dec::new(&long), false).is_err());
    }

    #[test]
    fn runs_each_layout_and_checks_shapes() {
        // NHWC channel axis (inner 1), and axis 0 of a row-major [C, H, W] (inner H·W).
        for (dims, axis, inner) in [
            (vec![2usize, 3, 7, 9], 1usize, 1usize),
            (vec![3, 40, 50], 0, 2000),
        ] {
            let channels = dims[axis];
            let n: usize = dims.iter().product();
            let values = [value("x", &dims), value("y", &dims)];
            let x: Vec<i8> = (0..n).map(|i| (i * 7) as u8 as i8).collect();
            let KernelSpec::ChannelLut(s) = spec(axis, channels) else {
                unreachable!()
            };
            let mut want = vec![0i8; n];
            channel_lookup_reference(&s.tables, channels, inner, &x, &mut want).unwrap();
            for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
                let cx = BuildContext {
                    isa,
                    values: &values,
                    prepacked: None,
                    weights: None,
                };
                let step = spec(axis, channels).build(cx).unwrap();
                let mut y = vec![0i8; n];
                let out = SharedOutput::new(&mut y);
                let tiles = step.tile_count();
                // SAFETY: single-threaded; the two calls cover disjoint tiles.
                unsafe {
                    step.run(&[&x], &out, 0..tiles / 2).unwrap();
                    step.run(&[&x], &out, tiles / 2..tiles).unwrap();
                }
                assert_eq!(y, want, "{isa} {dims:?}");
            }
        }
        let build = |dims: &[usize], out: &[usize], axis: usize, channels: usize| {
            let values = [value("x", dims), value("y", out)];
            let cx = BuildContext {
                isa: Isa::Scalar,
                values: &values,
                prepacked: None,
                weights: None,
            };
            spec(axis, channels).build(cx).map(|_| ())
        };
        assert!(build(&[1, 3, 4, 4], &[1, 3, 4, 4], 1, 3).is_ok());
        assert!(matches!(
            build(&[1, 3, 4, 4], &[1, 3, 4, 2], 1, 3),
            Err(Error::ShapeMismatch(_))
        ));
        assert!(matches!(
            build(&[1, 3, 4, 4], &[1, 3, 4, 4], 1, 2),
            Err(Error::InvalidModel(_))
        ));
        assert!(matches!(
            build(&[1, 3, 4, 4], &[1, 3, 4, 4], 4, 3),
            Err(Error::InvalidModel(_))
        ));
    }
}
