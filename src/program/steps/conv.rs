//! Convolution step: 2-D convolution (groups ≥ 1) with OHWI weights, or depthwise
//! (multiplier 1) with HWC weights.

use super::{expect_dims, fixed, geometry, BuildContext, KernelContract, Step, Window};
use crate::kernels::conv::{ConvWeights, PackedConv};
use crate::kernels::dwconv::{DwWeights, PackedDwConv};
use crate::kernels::gemm::GemmQuant;
use crate::kernels::indirection::{ConvGeometry, Indirection};
use crate::kernels::output::SharedOutput;
use crate::kernels::OutputRange;
use crate::program::codec::{Dec, Enc};
use crate::program::ValueSpec;
use crate::qscheme::QWeights;
use crate::{Error, Result};
use std::ops::Range;

/// 2-D convolution (groups ≥ 1) with OHWI weights, or depthwise (multiplier 1) with HWC
/// weights when `depthwise`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvSpec {
    /// Input value.
    pub input: usize,
    /// Output value.
    pub output: usize,
    /// Window geometry.
    pub window: Window,
    /// Groups (1 for dense convolution; channels for depthwise).
    pub groups: usize,
    /// Depthwise kernel family (weights are HWC).
    pub depthwise: bool,
    /// Int8 weights (OHWI, or HWC when depthwise) and their scales, one or one per output
    /// channel.
    pub weights: QWeights,
    /// Int32 bias with scale `s_in * s_w[c]` (empty: none).
    pub bias: Vec<i32>,
    /// Output range after the fused activation.
    pub range: OutputRange,
}

impl KernelContract for ConvSpec {
    fn kind_name(&self) -> &'static str {
        if self.depthwise {
            "dwconv"
        } else {
            "conv"
        }
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
        let spec = ConvSpec {
            input,
            output,
            groups,
            depthwise: dw != 0,
            window,
            weights,
            bias: d.i32s()?,
            range: d.range()?,
        };
        Ok((spec, viewed))
    }

    fn takes_prepacked(&self) -> bool {
        !self.depthwise
    }

    /// Packs the weights for `cx.isa` (or takes them prepacked) and builds the indirection
    /// table: a dense / grouped convolution step or a depthwise one.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        if !x.is_nhwc() || !out.is_nhwc() {
            return Err(Error::InvalidModel("convolution values must be 4-D".into()));
        }
        let g = geometry(x, &self.window);
        let ind = Indirection::new(&g)?;
        let oc = out.dims[1];
        expect_dims(out, &[g.batch, oc, g.out_h(), g.out_w()], "conv")?;
        let q = GemmQuant {
            input: x.q,
            output: out.q,
            range: self.range,
        };
        if self.depthwise {
            let conv = self.pack_depthwise(&cx, x, oc, &q)?;
            Ok(Box::new(DwConvStep { conv, ind }))
        } else {
            let conv = self.pack_dense(cx, &g, oc, &q)?;
            Ok(Box::new(DenseConvStep { conv, ind }))
        }
    }
}

impl ConvSpec {
    /// Packs the depthwise (HWC) weights for `cx.isa`.
    fn pack_depthwise(
        &self,
        cx: &BuildContext<'_>,
        x: &ValueSpec,
        oc: usize,
        q: &GemmQuant,
    ) -> Result<PackedDwConv> {
        if self.groups != oc || x.dims[1] != oc {
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
        PackedDwConv::pack(cx.isa, &w, q)
    }

    /// Packs the dense / grouped (OHWI) weights for `cx.isa`, or takes them prepacked (one
    /// part per group).
    fn pack_dense(
        &self,
        cx: BuildContext<'_>,
        g: &ConvGeometry,
        oc: usize,
        q: &GemmQuant,
    ) -> Result<PackedConv> {
        let groups = self.groups;
        if groups == 0 || !g.in_c.is_multiple_of(groups) {
            return Err(Error::InvalidModel(
                "convolution groups do not divide channels".into(),
            ));
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
        match cx.prepacked {
            Some(parts) => {
                PackedConv::from_packed(cx.isa, oc, w.in_c_per_group, groups, self.window.kernel, q, parts)
            }
            None => PackedConv::pack(cx.isa, &w, q),
        }
    }
}

/// A dense or grouped convolution: GEMM weights packed per group, and its indirection table.
struct DenseConvStep {
    conv: PackedConv,
    ind: Indirection,
}

impl Step for DenseConvStep {
    fn kind(&self) -> &'static str {
        "conv"
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

/// A depthwise convolution: packed taps and its indirection table.
struct DwConvStep {
    conv: PackedDwConv,
    ind: Indirection,
}

impl Step for DwConvStep {
    fn kind(&self) -> &'static str {
        "dwconv"
    }

    fn tile_count(&self) -> usize {
        self.conv.tile_count(&self.ind)
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        // SAFETY: forwards this function's contract (disjoint tiles for concurrent callers).
        unsafe { self.conv.run_shared(&self.ind, inputs[0], out, tiles) }
    }
}
