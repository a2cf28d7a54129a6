//! `DQ(x), DQ(const w) [, bias] → ConvTranspose [→ Relu / Clip] → Q`: 2-D transposed
//! convolution (strides, pads, output padding or output shape, dilations, groups) with the
//! weights repacked from ONNX's `[Cin, Cout/group, kh, kw]` to OHWI per group (HWC when
//! depthwise).

use super::{refuse, Candidate, Matcher, Reason, Refusal};
use crate::ir::op::ConvTransposeAttrs;
use crate::ir::shapes::conv_transpose_window;
use crate::ir::Node;
use crate::kernels::dwconv::MAX_TAPS;
use crate::program::steps::conv_transpose::ConvTransposeSpec;
use crate::program::{KernelSpec, Window};
use crate::qscheme::QWeights;

impl Matcher<'_> {
    /// `DQ(x), DQ(const w) [, bias] → ConvTranspose [→ Relu / Clip] → Q` as one step.
    pub(super) fn conv_transpose(
        &self,
        index: usize,
        node: &Node,
        a: &ConvTransposeAttrs,
    ) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        if x.dims.len() != 4 {
            return refuse(Reason::Shape, "only 2-D transposed convolution");
        }
        // Per output channel, ONNX's scale axis of a transposed-convolution weight is 1.
        let (QWeights { values: w, scales }, wd) = self.q_weight(&node.inputs[1], 1)?;
        let out = self.q_output(node)?;
        let groups = a.conv.group.max(1);
        let cin = x.dims[1];
        if wd.len() != 4 || wd[0] != cin || !cin.is_multiple_of(groups) {
            return refuse(
                Reason::Shape,
                format!("weight {wd:?} does not match {cin} input channels in {groups} groups"),
            );
        }
        let win = conv_transpose_window(a, &x.dims, &wd).map_err(|e| Refusal {
            reason: Reason::Shape,
            detail: e.to_string(),
        })?;
        let (cin_g, cout_g, kh, kw) = (cin / groups, wd[1], wd[2], wd[3]);
        let oc = cout_g * groups;
        if win.kernel != [kh, kw] {
            return refuse(Reason::Attribute, "kernel_shape differs from the weight");
        }
        if win.strides.contains(&0) || win.dilations.contains(&0) {
            return refuse(Reason::Attribute, "zero stride or dilation");
        }
        let want = [x.dims[0], oc, win.output[0], win.output[1]];
        if self.dims(&node.outputs[0])? != want || want.contains(&0) {
            return refuse(
                Reason::Shape,
                format!("output shape is not the {want:?} the attributes give"),
            );
        }
        // Scales per output channel of all groups (ONNX gives them for one group's Cout/group).
        let scales: Vec<f32> = if scales.len() == 1 {
            scales
        } else {
            (0..oc).map(|o| scales[o % cout_g]).collect()
        };
        let bias = self.q_bias(node.input(2), x.q.scale, &scales, oc)?;
        // [Cin, Cout/group, kh, kw] → OHWI with Cin/group inputs per output channel.
        let taps = kh * kw;
        let mut ohwi = vec![0i8; w.len()];
        for o in 0..oc {
            let (g, j) = (o / cout_g, o % cout_g);
            for i in 0..cin_g {
                for t in 0..taps {
                    ohwi[(o * taps + t) * cin_g + i] = w[((g * cin_g + i) * cout_g + j) * taps + t];
                }
            }
        }
        // One input and one output channel per group: the depthwise kernel, HWC weights
        // (within its tap limit; past it, the grouped GEMM).
        let depthwise = groups > 1 && cin_g == 1 && cout_g == 1 && taps <= MAX_TAPS;
        if depthwise {
            ohwi = super::weights::transpose(&ohwi, oc, taps);
        }
        let end_pads = match a.conv.pads.as_slice() {
            [_, _, b, r] => (*b, *r),
            _ => (0, 0),
        };
        let kernel = KernelSpec::ConvTranspose(ConvTransposeSpec {
            input: 0,
            output: 0,
            window: Window {
                kernel: (kh, kw),
                stride: (win.strides[0], win.strides[1]),
                dilation: (win.dilations[0], win.dilations[1]),
                pads: (win.pad_begin[0], win.pad_begin[1], end_pads.0, end_pads.1),
            },
            groups,
            depthwise,
            weights: QWeights::new(ohwi, scales),
            bias,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }
}
