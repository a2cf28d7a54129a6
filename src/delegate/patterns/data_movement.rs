//! Operators that move int8 values: Transpose / Slice / Pad (constant, reflect, edge, wrap) /
//! DepthToSpace / SpaceToDepth as a gather by an index map, and Reshape / Flatten / Squeeze / Unsqueeze as a copy; with other
//! output qparams a copy through a requantizing table.

use super::{refuse, Candidate, Matcher, QInput, QOutput, Reason, Refusal};
use crate::delegate::gather_map;
use crate::delegate::move_plan::blocks_of;
use crate::ir::op::PadMode;
use crate::ir::{Node, Op, Tensor};
use crate::kernels::elementwise::Storage;
use crate::kernels::lut::build_table;
use crate::kernels::OutputRange;
use crate::program::{CopySpec, GatherSpec, KernelSpec, ReshapeSpec, GATHER_FILL};
use crate::qscheme::{NanRule, QRange};

/// Whether `op` only relabels the dimensions of its input (the same elements in the same
/// logical order).
fn is_pure_view(op: &Op) -> bool {
    matches!(
        op,
        Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze | Op::Unsqueeze
    )
}

impl Matcher<'_> {
    /// The int8 input of a data movement reading the float tensor `t`: behind `DQ`, or behind
    /// `DQ → Reshape / Flatten / Squeeze / Unsqueeze` whose float output only this node reads
    /// (as PyTorch's export leaves a view before a Split or Transpose). The dimensions are
    /// `t`'s: a view keeps the logical order, so maps over them read the int8 tensor as is.
    pub(super) fn q_input_through_view(&self, t: &str) -> Result<QInput, Refusal> {
        if let Some(&v) = self.producer.get(t) {
            let view = &self.graph.nodes[v];
            if is_pure_view(&view.op) && self.only_reader(t).is_some() {
                let mut x = self.q_input(&view.inputs[0])?;
                x.dims = self.dims(t)?;
                x.through.push(v);
                return Ok(x);
            }
        }
        self.q_input(t)
    }

    /// The int8 output of a data movement: its `Q`, or the `Q` after a pure view that alone
    /// reads the node's float output (the view is then part of the pattern).
    fn q_output_through_view(&self, node: &Node) -> Result<QOutput, Refusal> {
        let direct = self.q_output(node);
        if direct.is_ok() {
            return direct;
        }
        match self.only_reader(&node.outputs[0]) {
            Some(v) if is_pure_view(&self.graph.nodes[v].op) => {
                let view = &self.graph.nodes[v];
                if view.input(0) != Some(node.outputs[0].as_str()) {
                    return direct;
                }
                let mut out = self.q_output_from(&view.outputs[0])?;
                out.nodes.insert(0, v);
                Ok(out)
            }
            _ => direct,
        }
    }

    /// The drafted move of the logical element `map` from `x` into `out`, padding ([`GATHER_FILL`]
    /// entries) written as the output byte `fill`: a gather when both have the same qparams,
    /// else a copy (blocks over logical elements) that requantizes through a table computed as
    /// the interpreter dequantizes and quantizes each byte.
    pub(super) fn drafted_move(
        &self,
        x: &QInput,
        out: &QOutput,
        map: Vec<u32>,
        fill: i8,
    ) -> Result<KernelSpec, Refusal> {
        if out.q == x.q && out.range == OutputRange::FULL {
            return Ok(KernelSpec::Gather(GatherSpec {
                input: 0,
                output: 0,
                map,
                fill,
            }));
        }
        let pads = map.contains(&GATHER_FILL);
        let storage = match self.producer(&out.tensor) {
            Some(q) if self.node_is_unsigned(q) => Storage::Uint8,
            _ => Storage::Int8,
        };
        let table = build_table(x.q, out.q, out.range, storage, |a, b| {
            b.copy_from_slice(a);
            Ok(())
        })
        .map_err(|e| Refusal {
            reason: Reason::QParams,
            detail: e.to_string(),
        })?;
        Ok(KernelSpec::Copy(CopySpec {
            input: 0,
            output: 0,
            blocks: blocks_of(&map),
            fill: pads.then_some(fill),
            table: Some(Box::new(table)),
        }))
    }

    /// Transpose / Slice / Pad (any mode) / DepthToSpace / SpaceToDepth as a gather by an index map ([`gather_map`]),
    /// requantized when the output's qparams differ; a pure view just before or after is taken
    /// along.
    pub(super) fn gather(&self, index: usize, node: &Node) -> Result<Candidate, Refusal> {
        let x = self.q_input_through_view(&node.inputs[0])?;
        let out = self.q_output_through_view(node)?;
        let numel: usize = x.dims.iter().product();
        if numel >= 1 << 24 {
            return refuse(Reason::Shape, "too many elements for an index map");
        }
        // The constant inputs after the data (an empty name is an omitted optional input).
        let mut rest: Vec<Option<&Tensor>> = Vec::new();
        for name in node.inputs.iter().skip(1) {
            if name.is_empty() {
                rest.push(None);
                continue;
            }
            rest.push(Some(self.constant(name).ok_or_else(|| Refusal {
                reason: Reason::NonConstantWeight,
                detail: format!("`{name}` is not a constant"),
            })?));
        }
        let attribute = |e: crate::Error| Refusal {
            reason: Reason::Attribute,
            detail: e.to_string(),
        };
        let ints = |i: usize| -> Result<Option<Vec<i64>>, Refusal> {
            rest.get(i)
                .copied()
                .flatten()
                .map(|t| t.to_i64_vec())
                .transpose()
                .map_err(attribute)
        };
        let mut fill = 0;
        let (dims, map) = match &node.op {
            Op::Transpose { perm } => gather_map::transpose(&x.dims, perm.as_deref()),
            op @ (Op::DepthToSpace { .. } | Op::SpaceToDepth { .. }) => gather_map::depth_space(&x.dims, op),
            Op::Slice => {
                let (Some(starts), Some(ends)) = (ints(0)?, ints(1)?) else {
                    return refuse(Reason::Attribute, "Slice needs starts and ends");
                };
                gather_map::slice(&x.dims, &starts, &ends, ints(2)?.as_deref(), ints(3)?.as_deref())
            }
            Op::Pad { mode } => {
                let Some(pads) = ints(0)? else {
                    return refuse(Reason::Attribute, "Pad needs pads");
                };
                if *mode == PadMode::Constant {
                    fill = pad_fill(rest.get(1).copied().flatten(), &out)?;
                }
                gather_map::pad(&x.dims, &pads, ints(2)?.as_deref(), *mode)
            }
            other => {
                return refuse(
                    Reason::Attribute,
                    format!("{} is not a gather", other.onnx_name()),
                )
            }
        }
        .map_err(attribute)?;
        if dims != self.dims(&node.outputs[0])? {
            return refuse(Reason::Shape, "index map shape differs from the inferred shape");
        }
        let kernel = self.drafted_move(&x, &out, map, fill)?;
        Ok(self.candidate(index, vec![&x], out, kernel))
    }

    /// `DQ → Reshape / Flatten / Squeeze / Unsqueeze → Q`: with equal qparams the same bytes
    /// (a reshape step); with other output qparams (PyTorch's quantizer observes a view's
    /// output on its own) a copy of every element in logical order through the requantizing
    /// table of [`Matcher::drafted_move`].
    pub(super) fn reshape(&self, index: usize, node: &Node) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        let out = self.q_output(node)?;
        let dims = self.dims(&node.outputs[0])?;
        let numel: usize = x.dims.iter().product();
        if dims.iter().product::<usize>() != numel {
            return refuse(Reason::Shape, "reshape output size differs from the input's");
        }
        let kernel = if out.q == x.q && out.range == OutputRange::FULL {
            KernelSpec::Reshape(ReshapeSpec { input: 0, output: 0 })
        } else {
            if numel >= 1 << 24 {
                return refuse(Reason::Shape, "too many elements for an index map");
            }
            self.drafted_move(&x, &out, (0..numel as u32).collect(), x.q.zero_point as i8)?
        };
        Ok(self.candidate(index, vec![&x], out, kernel))
    }
}

/// The output byte of constant-mode Pad's value `constant` (0 when absent or empty, as the
/// interpreter reads it): the value quantized with the output's qparams (as the float graph's
/// `Pad → QuantizeLinear` does) and clamped to its range. Refused when the value is NaN or a
/// finite value outside what the output's int8 grid represents (it would saturate to another
/// value); an infinity is taken as the grid's end (`-inf` before a max, the usual use).
fn pad_fill(constant: Option<&Tensor>, out: &QOutput) -> Result<i8, Refusal> {
    let v = match constant.filter(|t| t.numel() > 0) {
        None => 0.0,
        Some(t) => t.to_f32_vec().map_err(|e| Refusal {
            reason: Reason::Dtype,
            detail: format!("Pad value: {e}"),
        })?[0],
    };
    let (scale, zp) = (out.q.scale, out.q.zero_point as f32);
    let lowest = (-128.0 - zp - 0.5) * scale;
    let highest = (127.0 - zp + 0.5) * scale;
    if !(v.is_infinite() || (lowest..=highest).contains(&v)) {
        return refuse(
            Reason::QParams,
            format!(
                "the pad value {v} is not representable on the output's int8 grid \
                 [{lowest}, {highest}] (scale {scale}, zero point {zp})"
            ),
        );
    }
    let q = out.q.quantize(v, QRange::I8, NanRule::Zero) as i8;
    Ok(q.clamp(out.range.min, out.range.max))
}
