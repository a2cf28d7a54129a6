//! Kernel steps: one int8 kernel each, with its geometry and unpacked constants.
//!
//! Each kind of step lives in one file: its contract (the plain data lowering writes, which
//! values it reads and writes) and the encoding of that contract in a program file. The
//! `kernel_steps!` registry below is the only list of kinds and of their encoding tags.
//! A contract built for an ISA (`KernelContract::build`) is a [`Step`]: packed constants,
//! indirection tables and shapes, prepared once, that the runtime runs tile range by tile
//! range. A step file thus holds the step's whole life: contract, encoding, build and run;
//! the arithmetic itself is the kernels' ([`crate::kernels`]).
//!
//! Adding a kernel kind: its kernel family in `kernels`, one file here implementing
//! `KernelContract` and [`Step`], one line in the registry with a new tag, and the
//! partitioner pattern that drafts its contract.

use crate::cpu::Isa;
use crate::kernels::buffer::PackedBytes;
use crate::kernels::indirection::ConvGeometry;
use crate::kernels::output::SharedOutput;
use crate::program::codec::{Dec, Enc};
use crate::program::ValueSpec;
use crate::{Error, Result};
use std::ops::Range;

/// The value methods of a contract that reads one value (`self.input`) and writes one
/// (`self.output`): `inputs`, `output` and `remap_values`, written once for every such kind.
macro_rules! single_input_values {
    () => {
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
    };
}

pub mod avg_pool;
pub mod binary;
pub mod channel_lut;
pub mod concat;
pub mod conv;
pub mod conv_transpose;
pub mod copy;
pub mod fully_connected;
pub mod gather;
pub mod global_avg_pool;
pub mod im2col;
pub mod lut;
pub mod max_pool;
pub mod reduce;
pub mod reshape;
pub mod resize;
pub mod softmax;

/// 2-D window geometry in ONNX terms (pads are top, left, bottom, right).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Strides (h, w).
    pub stride: (usize, usize),
    /// Dilations (h, w).
    pub dilation: (usize, usize),
    /// Pads: top, left, bottom, right.
    pub pads: (usize, usize, usize, usize),
}

/// Build-time inputs of a step.
pub struct BuildContext<'a> {
    /// The ISA whose kernels the step runs.
    pub isa: Isa,
    /// The program's values (shapes and quantization parameters).
    pub values: &'a [ValueSpec],
    /// Weights already packed for `isa` (a program file's packed section), one buffer per
    /// part (see [`Step::packed_parts`]).
    pub prepacked: Option<Vec<PackedBytes>>,
    /// Int8 weights left in place in a program file (the contract then holds none).
    pub weights: Option<&'a [i8]>,
}

impl<'a> BuildContext<'a> {
    /// Value `i`, or an error when the contract names a value the program lacks.
    pub fn value(&self, i: usize) -> Result<&'a ValueSpec> {
        self.values.get(i).ok_or_else(|| {
            Error::InvalidModel(format!("kernel refers to value {i} of {}", self.values.len()))
        })
    }
}

/// The items (rows, outputs) of `tiles` when each tile holds `per_tile` of `total` items: tile
/// ranges map to item ranges one to one, so disjoint tiles give disjoint items.
pub(crate) fn items_of_tiles(tiles: &Range<usize>, per_tile: usize, total: usize) -> Range<usize> {
    tiles.start.saturating_mul(per_tile).min(total)..tiles.end.saturating_mul(per_tile).min(total)
}

/// The convolution geometry of `window` over the NCHW-dimensioned value `x`.
pub(crate) fn geometry(x: &ValueSpec, w: &Window) -> ConvGeometry {
    ConvGeometry {
        batch: x.dims[0],
        in_h: x.dims[2],
        in_w: x.dims[3],
        in_c: x.dims[1],
        k_h: w.kernel.0,
        k_w: w.kernel.1,
        stride: w.stride,
        dilation: w.dilation,
        padding: w.pads,
    }
}

/// Checks that `v` has the dimensions the kernel computes.
pub(crate) fn expect_dims(v: &ValueSpec, want: &[usize], what: &str) -> Result<()> {
    if v.dims != want {
        return Err(Error::ShapeMismatch(format!(
            "{what}: value `{}` has shape {:?}, the kernel computes {want:?}",
            v.name, v.dims
        )));
    }
    Ok(())
}

/// A kernel step prepared for one ISA: packed constants, indirection tables and shapes.
pub trait Step: Send + Sync {
    /// Profile label ("conv", "dwconv", "binary" for add and mul, ...).
    fn kind(&self) -> &'static str;

    /// Number of independent tiles.
    fn tile_count(&self) -> usize;

    /// Computes `tiles` from `inputs` (the values of the contract's `inputs()`, in order)
    /// into `out`.
    ///
    /// # Safety
    /// Concurrent calls on the same `out` must use disjoint tile ranges.
    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()>;

    /// The packed weights a build can take back through [`BuildContext::prepacked`]: one
    /// buffer per part; empty for steps without packed weights.
    fn packed_parts(&self) -> Vec<&[u8]> {
        Vec::new()
    }

    /// Whether the step's packed weights are used in place from shared bytes (a program
    /// file's packed section) rather than packed at load; false for steps without weights.
    fn uses_shared_weights(&self) -> bool {
        false
    }
}

/// The contract of one kernel kind: plain data written by lowering and stored in the
/// program file.
pub(crate) trait KernelContract: Sized {
    /// A short name for reports and profiles ("conv", "dwconv", "add", ...).
    fn kind_name(&self) -> &'static str;
    /// The values the step reads.
    fn inputs(&self) -> Vec<usize>;
    /// The value the step writes.
    fn output(&self) -> usize;
    /// Replaces each input value index `i` by `input(i)` and the output index `o` by
    /// `output(o)`.
    fn remap_values(&mut self, input: &mut dyn FnMut(usize) -> usize, output: &mut dyn FnMut(usize) -> usize);
    /// Writes the payload that follows the step's tag.
    fn encode(&self, e: &mut Enc);
    /// Reads the payload that follows the step's tag. With `view`, large int8 weights are
    /// left empty in the contract and returned in place instead (length checked).
    fn decode<'a>(d: &mut Dec<'a>, view: bool) -> Result<(Self, Option<&'a [u8]>)>;
    /// Whether a build takes weights packed ahead of time ([`BuildContext::prepacked`]).
    fn takes_prepacked(&self) -> bool {
        false
    }
    /// Prepares the step for `cx.isa`. The value indices of the contract are known to exist,
    /// and `cx.prepacked` is `None` unless `KernelContract::takes_prepacked`.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>>;
}

/// Reads a list of exactly `N` indices and sizes.
pub(crate) fn fixed<const N: usize>(d: &mut Dec) -> Result<[usize; N]> {
    d.usizes()?
        .try_into()
        .map_err(|_| crate::program::codec::corrupt("wrong number of kernel fields"))
}

/// Declares every kernel kind, each with its contract type and its encoding tag in program
/// files (a tag is never reused: a file written with it must keep its meaning), and generates
/// [`KernelSpec`] with the dispatch over them. A tag listed twice is an unreachable pattern.
macro_rules! kernel_steps {
    ($($(#[$doc:meta])* $variant:ident($ty:ty) = $tag:literal,)*) => {
        /// One int8 kernel step; its `input`/`output` fields index
        /// [`ProgramSpec::values`](crate::program::ProgramSpec::values).
        #[derive(Clone, Debug, PartialEq)]
        pub enum KernelSpec {
            $($(#[$doc])* $variant($ty),)*
        }

        $(
            impl From<$ty> for KernelSpec {
                fn from(spec: $ty) -> Self {
                    KernelSpec::$variant(spec)
                }
            }
        )*

        impl KernelSpec {
            /// The values the step reads.
            pub fn inputs(&self) -> Vec<usize> {
                match self {
                    $(KernelSpec::$variant(s) => s.inputs(),)*
                }
            }

            /// The value the step writes.
            pub fn output(&self) -> usize {
                match self {
                    $(KernelSpec::$variant(s) => s.output(),)*
                }
            }

            /// A short name for reports and profiles.
            pub fn kind_name(&self) -> &'static str {
                match self {
                    $(KernelSpec::$variant(s) => s.kind_name(),)*
                }
            }

            /// Replaces each input value index `i` by `input(i)` and the output index `o`
            /// by `output(o)`.
            pub fn remap_values(
                &mut self,
                input: &mut dyn FnMut(usize) -> usize,
                output: &mut dyn FnMut(usize) -> usize,
            ) {
                match self {
                    $(KernelSpec::$variant(s) => s.remap_values(input, output),)*
                }
            }

            /// Prepares the step for `cx.isa`: packs its constants (or takes them from
            /// `cx.prepacked`) and checks its values. Prepacked weights for a step that has none
            /// are an [`Error::CorruptFile`]; a value index outside `cx.values` is an
            /// [`Error::InvalidModel`].
            pub fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
                for i in self.inputs().into_iter().chain(std::iter::once(self.output())) {
                    cx.value(i)?;
                }
                match self {
                    $(KernelSpec::$variant(s) => {
                        if cx.prepacked.is_some() && !s.takes_prepacked() {
                            return Err(Error::CorruptFile(format!(
                                "packed weights given for a {} step, which has none",
                                s.kind_name()
                            )));
                        }
                        s.build(cx)
                    })*
                }
            }

            /// Writes the step's tag and payload.
            pub(crate) fn encode(&self, e: &mut Enc) {
                match self {
                    $(KernelSpec::$variant(s) => {
                        e.u8($tag);
                        s.encode(e);
                    })*
                }
            }

            /// Reads a step's tag and payload (see `KernelContract::decode` for `view`).
            pub(crate) fn decode<'a>(d: &mut Dec<'a>, view: bool) -> Result<(Self, Option<&'a [u8]>)> {
                match d.u8()? {
                    $($tag => {
                        let (spec, weights) = <$ty as KernelContract>::decode(d, view)?;
                        Ok((KernelSpec::$variant(spec), weights))
                    })*
                    tag => Err(Error::Unsupported(format!(
                        "program step kind {tag} is not known to this libxq (a newer one wrote the file?); recompile the model"
                    ))),
                }
            }
        }
    };
}

kernel_steps! {
    /// 2-D convolution: dense, grouped or depthwise.
    Conv(conv::ConvSpec) = 0,
    /// Fully connected `y[m, n] = x[m, k] · W[n, k]ᵀ`.
    FullyConnected(fully_connected::FullyConnectedSpec) = 1,
    /// Add / Mul / Sub with broadcasting.
    Binary(binary::BinarySpec) = 2,
    /// Mean over H and W of an NHWC value.
    GlobalAvgPool(global_avg_pool::GlobalAvgPoolSpec) = 3,
    /// Max pool.
    MaxPool(max_pool::MaxPoolSpec) = 4,
    /// Concatenation.
    Concat(concat::ConcatSpec) = 5,
    /// A byte move that keeps the logical element order.
    Reshape(reshape::ReshapeSpec) = 6,
    /// Convolution windows gathered into dense rows.
    Im2col(im2col::Im2colSpec) = 7,
    /// A byte move by index.
    Gather(gather::GatherSpec) = 8,
    /// An element-wise unary operator as a 256-entry table lookup.
    Lut(lut::LutSpec) = 9,
    /// Nearest or bilinear resampling of H and W.
    Resize(resize::ResizeSpec) = 10,
    /// A byte move by strided blocks (tag 8's index map, compact).
    Copy(copy::CopySpec) = 11,
    /// 2-D transposed convolution (strides, pads, output padding, dilations, groups).
    ConvTranspose(conv_transpose::ConvTransposeSpec) = 12,
    /// An element-wise operator with a per-channel constant as one 256-entry table per
    /// channel.
    ChannelLut(channel_lut::ChannelLutSpec) = 14,
    /// Windowed average pool (strides, pads, ceil mode, count_include_pad, dilations).
    AvgPool(avg_pool::AvgPoolSpec) = 15,
    /// Softmax along one axis, by a table of exponentials.
    Softmax(softmax::SoftmaxSpec) = 16,
    /// ReduceMean / ReduceMax over any logical axes.
    Reduce(reduce::ReduceSpec) = 18,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::OutputRange;
    use crate::qscheme::QWeights;

    #[test]
    fn unknown_step_tag_is_unsupported_and_names_the_tag() {
        // Tags past the registry's.
        for tag in [200u8, 255] {
            let bytes = [tag, 0, 0];
            let err = KernelSpec::decode(&mut Dec::new(&bytes), false).unwrap_err();
            assert!(
                matches!(&err, Error::Unsupported(m) if m.contains(&format!("step kind {tag} "))),
                "{err}"
            );
        }
    }

    #[test]
    fn every_kind_decodes_what_it_encodes() {
        let window = Window {
            kernel: (3, 3),
            stride: (2, 1),
            dilation: (1, 2),
            pads: (1, 0, 1, 2),
        };
        let range = OutputRange::new(-128, 100).unwrap();
        let kernels: Vec<KernelSpec> = vec![
            conv::ConvSpec {
                input: 1,
                output: 2,
                window,
                groups: 2,
                depthwise: false,
                weights: QWeights::new(vec![1, -2, 3], vec![0.5, 0.25]),
                bias: vec![7, -9],
                range,
            }
            .into(),
            fully_connected::FullyConnectedSpec {
                input: 3,
                output: 4,
                n: 2,
                k: 3,
                weights: QWeights::new(vec![-1; 6], vec![0.125]),
                bias: Vec::new(),
                range,
            }
            .into(),
            binary::BinarySpec {
                kind: binary::BinaryKind::Mul,
                a: 5,
                b: 6,
                output: 7,
                range,
            }
            .into(),
            global_avg_pool::GlobalAvgPoolSpec {
                input: 8,
                output: 9,
                range,
            }
            .into(),
            max_pool::MaxPoolSpec {
                input: 1,
                output: 2,
                window,
            }
            .into(),
            concat::ConcatSpec {
                inputs: vec![1, 2, 3],
                output: 4,
                axis: 1,
            }
            .into(),
            reshape::ReshapeSpec { input: 4, output: 5 }.into(),
            im2col::Im2colSpec {
                input: 0,
                output: 1,
                window,
                k_padded: 28,
            }
            .into(),
            gather::GatherSpec {
                input: 2,
                output: 3,
                map: vec![2, gather::GATHER_FILL, 0],
                fill: -7,
            }
            .into(),
            resize::ResizeSpec {
                input: 1,
                output: 2,
                linear: true,
                rows: vec![crate::kernels::resize::AxisTap {
                    i0: 0,
                    i1: 1,
                    w: 0.25,
                }],
                cols: Vec::new(),
                range,
            }
            .into(),
            conv_transpose::ConvTransposeSpec {
                input: 1,
                output: 2,
                window,
                groups: 3,
                depthwise: true,
                weights: QWeights::new(vec![4, -5, 6], vec![0.5]),
                bias: vec![-1, 2],
                range,
            }
            .into(),
            channel_lut::ChannelLutSpec {
                input: 3,
                output: 4,
                axis: 1,
                tables: vec![5; 512],
            }
            .into(),
            binary::BinarySpec {
                kind: binary::BinaryKind::Sub,
                a: 1,
                b: 2,
                output: 3,
                range,
            }
            .into(),
            avg_pool::AvgPoolSpec {
                input: 2,
                output: 3,
                window,
                extra_end: (1, 0),
                count_include_pad: true,
                range,
            }
            .into(),
            softmax::SoftmaxSpec {
                input: 3,
                output: 4,
                axis: 2,
                range,
            }
            .into(),
        ];
        for k in kernels {
            let mut e = Enc::default();
            k.encode(&mut e);
            let mut d = Dec::new(&e.0);
            let (back, viewed) = KernelSpec::decode(&mut d, false).unwrap();
            assert_eq!(back, k);
            assert!(viewed.is_none());
            assert!(d.take(1).is_err(), "{} left bytes", k.kind_name());
        }
    }
}
