//! Transposed convolution step: the convolution GEMM (weights packed per group as for a
//! grouped convolution), or for a depthwise one the depthwise kernel, over a
//! transposed-convolution indirection table, in which taps that fall between strided input
//! pixels read the input zero point ([`Indirection::transposed`], which states the
//! trade-off against per-phase sub-convolutions).

use super::{fixed, geometry, BuildContext, KernelContract, Step, Window};
use crate::kernels::conv::{ConvWeights, PackedConv};
use crate::kernels::dwconv::{DwWeights, PackedDwConv};
use crate::kernels::gemm::GemmQuant;
use crate::kernels::indirection::Indirection;
use crate::kernels::output::SharedOutput;
use crate::kernels::OutputRange;
use crate::program::codec::{Dec, Enc};
use crate::qscheme::QWeights;
use crate::{Error, Result};
use std::ops::Range;

/// 2-D transposed convolution (groups ≥ 1) with OHWI weights: `weights[o][ky][kx][i]` is
/// ONNX's `W[g·cin_g + i][o - g·cout_g][ky][kx]` for output channel `o` of group `g`; or,
/// when `depthwise` (one input and one output channel per group), HWC weights.
/// The window's `pads.0` / `pads.1` are the ONNX begin pads (top, left) and `pads.2` /
/// `pads.3` the end pads; the output value's shape gives the output size (so
/// `output_padding` and `output_shape` need no field).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvTransposeSpec {
    /// Input value.
    pub input: usize,
    /// Output value.
    pub output: usize,
    /// Kernel, strides, dilations and pads.
    pub window: Window,
    /// Groups.
    pub groups: usize,
    /// Depthwise kernel family (weights are HWC).
    pub depthwise: bool,
    /// Int8 OHWI (or HWC) weights and their scales, one or one per output channel.
    pub weights: QWeights,
    /// Int32 bias with scale `s_in * s_w[c]` (empty: none).
    pub bias: Vec<i32>,
    /// Output range after the fused activation.
    pub range: OutputRange,
}

impl KernelContract for ConvTransposeSpec {
    fn kind_name(&self) -> &'static str {
        "conv_transpose"
    }

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.input, self.output, self.groups, self.depthwise as usize]);
        e.window(&self.window);
        e.qweights(&self.weights);
        e.i32s(&self.bias);
        e.range(&self.range);
    }

    fn decode<'a>(d: &mut Dec<'a>, view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output, groups, dw] = fixed(d)?;
        let window = d.window()?;
        let (weights, viewed) = d.qweights_or_view(view)?;
        let spec = ConvTransposeSpec {
            input,
            output,
            window,
            groups,
            depthwise: dw != 0,
            weights,
            bias: d.i32s()?,
            range: d.range()?,
        };
        Ok((spec, viewed))
    }

    fn takes_prepacked(&self) -> bool {
        !self.depthwise
    }

    /// Packs the weights for `cx.isa` (or takes them prepacked) and builds the transposed
    /// indirection table for the output value's size.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        if !x.is_nhwc() || !out.is_nhwc() || out.dims[0] != x.dims[0] {
            return Err(Error::InvalidModel(
                "transposed convolution values must be 4-D with one batch size".into(),
            ));
        }
        let g = geometry(x, &self.window);
        let ind = Indirection::transposed(&g, out.dims[2], out.dims[3])?;
        let (oc, groups) = (out.dims[1], self.groups);
        if groups == 0 || !g.in_c.is_multiple_of(groups) {
            return Err(Error::InvalidModel(
                "transposed convolution groups do not divide the input channels".into(),
            ));
        }
        let q = GemmQuant {
            input: x.q,
            output: out.q,
            range: self.range,
        };
        if self.depthwise {
            if groups != oc || g.in_c != oc {
                return Err(Error::InvalidModel("depthwise channel counts differ".into()));
            }
            let w = DwWeights {
                channels: oc,
                k_h: self.window.kernel.0,
                k_w: self.window.kernel.1,
                weights: cx.weights.unwrap_or(&self.weights.values),
                scales: &self.weights.scales,
                bias: (!self.bias.is_empty()).then_some(self.bias.as_slice()),
            };
            let conv = PackedDwConv::pack(cx.isa, &w, &q)?;
            return Ok(Box::new(DwConvTransposeStep { conv, ind }));
        }
        let w = ConvWeights {
            out_c: oc,
            in_c_per_group: g.in_c / groups,
            groups,
            k_h: self.window.kernel.0,
            k_w: self.window.kernel.1,
            weights: cx.weights.unwrap_or(&self.weights.values),
            scales: &self.weights.scales,
            bias: (!self.bias.is_empty()).then_some(self.bias.as_slice()),
        };
        let conv = match cx.prepacked {
            Some(parts) => PackedConv::from_packed(
                cx.isa,
                oc,
                w.in_c_per_group,
                groups,
                self.window.kernel,
                &q,
                parts,
            )?,
            None => PackedConv::pack(cx.isa, &w, &q)?,
        };
        Ok(Box::new(ConvTransposeStep { conv, ind }))
    }
}

/// A transposed convolution: GEMM weights packed per group and its transposed table.
struct ConvTransposeStep {
    conv: PackedConv,
    ind: Indirection,
}

impl Step for ConvTransposeStep {
    fn kind(&self) -> &'static str {
        "conv_transpose"
    }

    fn tile_count(&self) -> usize {
        self.conv.tile_count(&self.ind)
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        // SAFETY: forwards this function's contract (disjoint tiles for concurrent callers).
        unsafe { self.conv.run_shared(&self.ind, inputs[0], out, tiles) }
    }

    fn packed_parts(&self) -> Vec<&[u8]> {
        self.conv.packed_groups().collect()
    }

    fn uses_shared_weights(&self) -> bool {
        self.conv.is_shared()
    }
}

/// A depthwise transposed convolution: packed taps and its transposed table.
struct DwConvTransposeStep {
    conv: PackedDwConv,
    ind: Indirection,
}

impl Step for DwConvTransposeStep {
    fn kind(&self) -> &'static str {
        "conv_transpose"
    }

    fn tile_count(&self) -> usize {
        self.conv.tile_count(&self.ind)
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        // SAFETY: forwards this function's contract (disjoint tiles for concurrent callers).
        unsafe { self.conv.run_shared(&self.ind, inputs[0], out, tiles) }
    }
}
