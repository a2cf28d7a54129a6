//! Pooling: GlobalAveragePool / ReduceMean over H, W as a global average pool, ReduceMean /
//! ReduceMax over other axes as the reduce step, AveragePool and MaxPool.

use super::window::ceil_mode_as_end_padding;
use super::{refuse, Candidate, Matcher, Reason, Refusal};
use crate::ir::op::{PoolAttrs, ReduceKind};
use crate::ir::shapes::{pool_window, reduce_axes, reduce_shape};
use crate::ir::Node;
use crate::kernels::pool::MAX_POOL_PIXELS;
use crate::kernels::reduce::ReduceOp;
use crate::kernels::OutputRange;
use crate::program::steps::reduce::ReduceSpec;
use crate::program::{AvgPoolSpec, GlobalAvgPoolSpec, KernelSpec, MaxPoolSpec, Window};

impl Matcher<'_> {
    /// ReduceMean / ReduceMax over constant axes (or all axes), dims kept or not: a mean over
    /// H, W of a 4-D value as [`Self::mean`] (the global average pool's SIMD rows), every
    /// other form as the reduce step; the output may have other qparams than the input.
    pub(super) fn reduce(
        &self,
        index: usize,
        node: &Node,
        kind: ReduceKind,
        keepdims: bool,
        noop_with_empty_axes: bool,
    ) -> Result<Candidate, Refusal> {
        let op = match kind {
            ReduceKind::Mean => ReduceOp::Mean,
            ReduceKind::Max => ReduceOp::Max,
            other => {
                return refuse(
                    Reason::UnsupportedOp,
                    format!("no int8 kernel for {}", other.onnx_name()),
                )
            }
        };
        let axes = match node.input(1).filter(|a| !a.is_empty()) {
            None => None,
            Some(a) => match self.constant(a).map(|a| a.to_i64_vec()) {
                Some(Ok(v)) => Some(v),
                _ => return refuse(Reason::NonConstantWeight, "the axes are not a constant"),
            },
        };
        if op == ReduceOp::Mean && axes.as_deref().is_some_and(reduces_spatial_axes_of_4d) {
            return self.mean(index, node);
        }
        let x = self.q_input(&node.inputs[0])?;
        let axes = reduce_axes(x.dims.len(), axes.as_deref(), noop_with_empty_axes).map_err(|e| Refusal {
            reason: Reason::Attribute,
            detail: e.to_string(),
        })?;
        if axes.is_empty() {
            return refuse(Reason::Attribute, "no axis reduced (noop_with_empty_axes)");
        }
        let y = self.dims(&node.outputs[0])?;
        if y != reduce_shape(&x.dims, &axes, keepdims) {
            return refuse(Reason::Shape, "output shape differs from the reduction's");
        }
        let count: usize = axes.iter().map(|&a| x.dims[a]).product();
        let numel: usize = x.dims.iter().product();
        if count == 0 || count > MAX_POOL_PIXELS || numel > u32::MAX as usize {
            return refuse(
                Reason::Shape,
                format!("{count} reduced elements of {numel} (1..={MAX_POOL_PIXELS} of at most 2^32)"),
            );
        }
        let out = self.q_output(node)?;
        let kernel = KernelSpec::Reduce(ReduceSpec {
            input: 0,
            output: 0,
            op,
            axes,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }

    /// GlobalAveragePool, or ReduceMean over H, W with or without kept dims (`[N, C, 1, 1]` and
    /// `[N, C]` share one storage order).
    pub(super) fn mean(&self, index: usize, node: &Node) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        if x.dims.len() != 4 {
            return refuse(Reason::Shape, "mean over H, W of a non-4-D tensor");
        }
        let y = self.dims(&node.outputs[0])?;
        if y != [x.dims[0], x.dims[1], 1, 1] && y != [x.dims[0], x.dims[1]] {
            return refuse(Reason::Shape, "mean output is neither [N, C, 1, 1] nor [N, C]");
        }
        let out = self.q_output(node)?;
        let kernel = KernelSpec::GlobalAvgPool(GlobalAvgPoolSpec {
            input: 0,
            output: 0,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }

    /// `DQ → MaxPool → Q` with equal qparams: explicit, VALID or SAME padding, strides,
    /// dilations; a `ceil_mode` becomes extra end padding (padding never wins a max).
    pub(super) fn max_pool(&self, index: usize, node: &Node, a: &PoolAttrs) -> Result<Candidate, Refusal> {
        if node.outputs.len() > 1 && !node.outputs[1].is_empty() {
            return refuse(Reason::Attribute, "MaxPool indices output");
        }
        let x = self.q_input(&node.inputs[0])?;
        let mut window = resolved_window(a, &x.dims)?;
        let out = self.q_output(node)?;
        if out.q != x.q || out.range != OutputRange::FULL {
            return refuse(Reason::QParams, "MaxPool output qparams differ from the input's");
        }
        let y_dims = self.dims(&node.outputs[0])?;
        if y_dims.len() != 4 {
            return refuse(Reason::Shape, "MaxPool output is not 4-D");
        }
        if a.ceil_mode {
            window = ceil_mode_as_end_padding(window, (x.dims[2], x.dims[3]), (y_dims[2], y_dims[3]))?;
        }
        let kernel = KernelSpec::MaxPool(MaxPoolSpec {
            input: 0,
            output: 0,
            window,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }
}

impl Matcher<'_> {
    /// `DQ → AveragePool → Q` over a 4-D input, any qparams and fused activation: explicit,
    /// VALID or SAME padding (resolved as the shape inference resolves it), strides,
    /// dilations, `ceil_mode` (extra end padding never counted) and `count_include_pad`.
    /// 1-D and 3-D pools stay interpreted.
    pub(super) fn avg_pool(&self, index: usize, node: &Node, a: &PoolAttrs) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        let window = resolved_window(a, &x.dims)?;
        let out = self.q_output(node)?;
        let y_dims = self.dims(&node.outputs[0])?;
        if y_dims.len() != 4 {
            return refuse(Reason::Shape, "AveragePool output is not 4-D");
        }
        // Floor division over the end padding `ceil_mode` needs gives the inferred size (and
        // checks it for every other mode).
        let padded = ceil_mode_as_end_padding(window, (x.dims[2], x.dims[3]), (y_dims[2], y_dims[3]))?;
        let kernel = KernelSpec::AvgPool(AvgPoolSpec {
            input: 0,
            output: 0,
            window,
            extra_end: (padded.pads.2 - window.pads.2, padded.pads.3 - window.pads.3),
            count_include_pad: a.count_include_pad,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }
}

/// The 2-D window of pooling attributes `a` over the NCHW input `x`, with `auto_pad` resolved
/// into pads as the shape inference resolves it; 1-D and 3-D pools are refused.
fn resolved_window(a: &PoolAttrs, x: &[usize]) -> Result<Window, Refusal> {
    if x.len() != 4 || a.kernel_shape.len() != 2 {
        return refuse(
            Reason::Shape,
            "only 2-D pooling (1-D and 3-D pools stay interpreted)",
        );
    }
    let w = match pool_window(a, x) {
        Ok(w) => w,
        Err(e) => return refuse(Reason::Attribute, format!("pooling window: {e}")),
    };
    Ok(Window {
        kernel: (w.kernel[0], w.kernel[1]),
        stride: (w.strides[0], w.strides[1]),
        dilation: (w.dilations[0], w.dilations[1]),
        pads: (w.pad_begin[0], w.pad_begin[1], w.pad_end[0], w.pad_end[1]),
    })
}

/// Whether reduction `axes` of a 4-D NCHW tensor are exactly H and W, in any order and in
/// either sign convention (`[2, 3]`, `[-1, -2]`, ...: PyTorch's dynamo exporter writes
/// `adaptive_avg_pool2d(x, 1)` as `ReduceMean(axes = [-1, -2])`).
fn reduces_spatial_axes_of_4d(axes: &[i64]) -> bool {
    let mut normalized: Vec<i64> = axes.iter().map(|&a| if a < 0 { a + 4 } else { a }).collect();
    normalized.sort_unstable();
    normalized == [2, 3]
}

#[cfg(test)]
mod tests {
    use super::reduces_spatial_axes_of_4d;

    #[test]
    fn spatial_axes_in_any_order_and_sign() {
        for axes in [[2, 3], [3, 2], [-1, -2], [-2, -1], [2, -1], [-1, 2]] {
            assert!(reduces_spatial_axes_of_4d(&axes), "{axes:?}");
        }
        for axes in [&[1, 2][..], &[2][..], &[1, 2, 3][..], &[2, 2][..], &[-3, -1][..]] {
            assert!(!reduces_spatial_axes_of_4d(axes), "{axes:?}");
        }
    }
}
