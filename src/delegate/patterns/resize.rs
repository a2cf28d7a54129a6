//! Resize of H and W: `DQ(x) → Resize [→ Relu / Clip] → Q` with a rank-4 input, constant
//! scales or sizes, nearest or linear mode and any coordinate transformation but
//! `tf_crop_and_resize` becomes one [`ResizeSpec`]. Its taps are the IR's
//! ([`crate::ir::resize::axis_taps`]), the ones the interpreter reads, so nearest is the
//! interpreted graph's bytes and bilinear its `f32` arithmetic, bit for bit. A Resize whose
//! float output is not quantized again (LR-ASPP's last layer, exported by PyTorch's PT2E
//! flow) is instead the partition's exit: the step reads the int8 value and writes the
//! `f32` tensor ([`Matcher::resize_exit`]).

use super::{refuse, Candidate, Matcher, Reason, Refusal};
use crate::ir::infer::resize_output_shape;
use crate::ir::op::{CoordinateTransform, ResizeAttrs, ResizeMode};
use crate::ir::resize::{axis_changes, axis_taps, Tap};
use crate::ir::{Node, Op};
use crate::kernels::resize::AxisTap;
use crate::program::steps::resize::{ResizeSpec, ResizeTaps};
use crate::program::KernelSpec;

/// The taps of one axis as the kernel's: `None` for a tap the kernel does not run.
fn kernel_taps(taps: &[Tap]) -> Option<Vec<AxisTap>> {
    taps.iter()
        .map(|t| match *t {
            Tap::Nearest(i) => Some(AxisTap {
                i0: u32::try_from(i).ok()?,
                i1: u32::try_from(i).ok()?,
                w: 0.0,
            }),
            Tap::Linear(i0, i1, w) => Some(AxisTap {
                i0: u32::try_from(i0).ok()?,
                i1: u32::try_from(i1).ok()?,
                w,
            }),
            Tap::Outside | Tap::Cubic(..) => None,
        })
        .collect()
}

impl Matcher<'_> {
    /// `DQ(x) → Resize [→ Relu / Clip] → Q` over H and W as one resize step.
    pub(super) fn resize(&self, index: usize, node: &Node, a: &ResizeAttrs) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        let out = self.q_output(node)?;
        let taps = self.resize_taps(node, a, &x.dims)?;
        let kernel = KernelSpec::Resize(ResizeSpec {
            input: 0,
            output: 0,
            linear: taps.linear,
            rows: taps.rows,
            cols: taps.cols,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }

    /// `DQ(x) → Resize` whose float output stays float (a graph output, or read by the
    /// interpreter): the int8 tensor `x` and the taps of a [`StepSpec::ResizeExit`] that
    /// writes the float output from it. `DQ(x)` must dequantize `x` as its `QuantizeLinear`
    /// quantized it (the value's qparams).
    ///
    /// [`StepSpec::ResizeExit`]: crate::program::StepSpec::ResizeExit
    pub fn resize_exit(&self, node: &Node) -> Result<(String, ResizeTaps), Refusal> {
        let Op::Resize(a) = &node.op else {
            return refuse(Reason::UnsupportedOp, "not a Resize");
        };
        let x = self.q_input(&node.inputs[0])?;
        let same_carrier = match (self.producer(&node.inputs[0]), self.producer(&x.tensor)) {
            (Some(dq), Some(q)) => self.node_is_unsigned(dq) == self.node_is_unsigned(q),
            _ => false,
        };
        if !x.through.is_empty() || !same_carrier {
            return refuse(
                Reason::QParams,
                "the Resize input is not one value's dequantization",
            );
        }
        Ok((x.tensor, self.resize_taps(node, a, &x.dims)?))
    }

    /// The interpolation of `node` (a Resize with attributes `a`) of an input of dimensions
    /// `x_dims` over H and W, as the int8 kernels run it.
    fn resize_taps(&self, node: &Node, a: &ResizeAttrs, x_dims: &[usize]) -> Result<ResizeTaps, Refusal> {
        if x_dims.len() != 4 {
            return refuse(Reason::Shape, "Resize of a tensor that is not rank 4");
        }
        if a.antialias
            || a.mode == ResizeMode::Cubic
            || a.coordinate_transform == CoordinateTransform::TfCropAndResize
        {
            return refuse(
                Reason::Attribute,
                "Resize with cubic mode, antialias or tf_crop_and_resize",
            );
        }
        // Inputs roi?, scales?, sizes?: an empty name or an empty tensor is absent.
        let operand = |i: usize| -> Result<Option<&crate::ir::Tensor>, Refusal> {
            match node.input(i).filter(|n| !n.is_empty()) {
                None => Ok(None),
                Some(name) => match self.constant(name) {
                    Some(t) => Ok((t.numel() > 0).then_some(t)),
                    None => refuse(Reason::NonConstantWeight, format!("`{name}` is not a constant")),
                },
            }
        };
        let attribute = |e: crate::Error| Refusal {
            reason: Reason::Attribute,
            detail: e.to_string(),
        };
        let scales = operand(2)?
            .map(|t| t.to_f32_vec())
            .transpose()
            .map_err(attribute)?;
        let sizes = operand(3)?
            .map(|t| t.to_i64_vec())
            .transpose()
            .map_err(attribute)?;
        let (dims, eff) =
            resize_output_shape(a, x_dims, scales.as_deref(), sizes.as_deref()).map_err(attribute)?;
        if dims != self.dims(&node.outputs[0])? || dims.contains(&0) {
            return refuse(
                Reason::Shape,
                "Resize output shape differs from the inferred shape",
            );
        }
        if (0..2).any(|ax| axis_changes(a, x_dims[ax], dims[ax], eff[ax])) {
            return refuse(Reason::Attribute, "Resize of the batch or channel axis");
        }
        let taps = |ax: usize| -> Result<Vec<AxisTap>, Refusal> {
            if !axis_changes(a, x_dims[ax], dims[ax], eff[ax]) {
                return Ok((0..dims[ax] as u32)
                    .map(|i| AxisTap { i0: i, i1: i, w: 0.0 })
                    .collect());
            }
            kernel_taps(&axis_taps(a, x_dims[ax], dims[ax], eff[ax], (0.0, 1.0))).ok_or_else(|| Refusal {
                reason: Reason::Shape,
                detail: "Resize taps the int8 kernel does not run".into(),
            })
        };
        Ok(ResizeTaps {
            linear: a.mode == ResizeMode::Linear,
            rows: taps(2)?,
            cols: taps(3)?,
        })
    }
}
