//! A depthwise convolution with a channel multiplier (`groups` = input channels, `m > 1`
//! outputs per group) lowered as a gather that repeats each input channel `m` times and a
//! depthwise convolution over the repeated channels. The grouped GEMM would run it as one
//! product of `m` columns per channel, mostly padding of its register tile; the depthwise
//! kernel computes the same sums (`Σ (x - zp) · w` per output channel) in the same order.

use crate::kernels::dwconv::MAX_TAPS;
use crate::program::{ConvSpec, GatherSpec, KernelSpec, ValueSpec};
use crate::qscheme::QWeights;

/// Largest repeated input (elements) given a gather map; above it the grouped GEMM stays.
const MAX_REPEATED: usize = 1 << 24;

/// Rewrites a channel-multiplier convolution into the gather and the depthwise step, adding
/// the repeated value to `values`; `None` for every other kernel.
pub(super) fn multiplier_conv_as_depthwise(
    k: &KernelSpec,
    values: &mut Vec<ValueSpec>,
) -> Option<Vec<KernelSpec>> {
    let KernelSpec::Conv(conv) = k else {
        return None;
    };
    let x = &values[conv.input];
    let y = &values[conv.output];
    if conv.depthwise || x.dims.len() != 4 || y.dims.len() != 4 {
        return None;
    }
    let (c, oc) = (x.dims[1], y.dims[1]);
    let taps = conv
        .window
        .kernel
        .0
        .checked_mul(conv.window.kernel.1)
        .filter(|&t| t <= MAX_TAPS)?;
    if conv.groups != c || c < 2 || oc <= c || !oc.is_multiple_of(c) || conv.weights.values.len() != oc * taps
    {
        return None;
    }
    let m = oc / c;
    let (n, h, w) = (x.dims[0], x.dims[2], x.dims[3]);
    let len = n.checked_mul(oc)?.checked_mul(h)?.checked_mul(w)?;
    if len > MAX_REPEATED {
        return None;
    }
    // Logical (NCHW) element (b, o, i) of the repeated value reads (b, o / m, i).
    let plane = h * w;
    let map = (0..len)
        .map(|e| {
            let (b, rest) = (e / (oc * plane), e % (oc * plane));
            ((b * c + rest / plane / m) * plane + rest % plane) as u32
        })
        .collect();
    let repeated = ValueSpec {
        name: format!("{}__xq_repeated", x.name),
        dims: vec![n, oc, h, w],
        q: x.q,
        unsigned: x.unsigned,
    };
    values.push(repeated);
    let rep = values.len() - 1;
    // OHWI with one input channel is [oc][taps]; the depthwise kernel takes HWC.
    let mut hwc = vec![0i8; oc * taps];
    for o in 0..oc {
        for t in 0..taps {
            hwc[t * oc + o] = conv.weights.values[o * taps + t];
        }
    }
    Some(vec![
        KernelSpec::Gather(GatherSpec {
            input: conv.input,
            output: rep,
            map,
            fill: 0,
        }),
        KernelSpec::Conv(ConvSpec {
            input: rep,
            groups: oc,
            depthwise: true,
            weights: QWeights::new(hwc, conv.weights.scales.clone()),
            ..conv.clone()
        }),
    ])
}
