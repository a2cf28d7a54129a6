//! `DQ(x), DQ(const w) [, bias] → Conv [→ Relu / Clip] → Q`: dense, grouped or depthwise
//! 2-D convolution with the weights repacked for the kernels (OHWI, or HWC for depthwise).

use super::{refuse, Candidate, Matcher, Reason, Refusal};
use crate::ir::op::ConvAttrs;
use crate::ir::Node;
use crate::program::{ConvSpec, KernelSpec};
use crate::qscheme::QWeights;

impl Matcher<'_> {
    /// `DQ(x), DQ(const w) [, bias] → Conv [→ Relu / Clip] → Q` as one convolution.
    pub(super) fn conv(&self, index: usize, node: &Node, a: &ConvAttrs) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        if x.dims.len() != 4 {
            return refuse(Reason::Shape, "only 2-D convolution");
        }
        let (QWeights { values: w, scales }, wd) = self.q_weight(&node.inputs[1], 0)?;
        let out = self.q_output(node)?;
        let (oc, icg, kh, kw) = (wd[0], wd[1], wd[2], wd[3]);
        let kernel = if a.kernel_shape.is_empty() {
            vec![kh, kw]
        } else {
            a.kernel_shape.clone()
        };
        let window = Self::window(&kernel, &a.strides, &a.dilations, &a.pads, a.auto_pad)?;
        let groups = a.group.max(1);
        let cin = x.dims[1];
        if icg * groups != cin {
            return refuse(Reason::Shape, "input channels do not match the weights");
        }
        let bias = self.q_bias(node.input(2), x.q.scale, &scales, oc)?;
        let depthwise = groups == cin && groups == oc && icg == 1;
        let weights = if depthwise {
            // [C, 1, kh, kw] → HWC
            let mut hwc = vec![0i8; w.len()];
            for c in 0..oc {
                for t in 0..kh * kw {
                    hwc[t * oc + c] = w[c * kh * kw + t];
                }
            }
            hwc
        } else {
            // OIHW → OHWI
            let mut ohwi = vec![0i8; w.len()];
            for o in 0..oc {
                for i in 0..icg {
                    for t in 0..kh * kw {
                        ohwi[(o * kh * kw + t) * icg + i] = w[(o * icg + i) * kh * kw + t];
                    }
                }
            }
            ohwi
        };
        let kernel = KernelSpec::Conv(ConvSpec {
            input: 0,
            output: 0,
            window,
            groups,
            depthwise,
            weights: QWeights::new(weights, scales),
            bias,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }
}
