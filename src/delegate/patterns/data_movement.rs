//! Operators that move int8 values without changing them (equal input and output qparams):
//! Transpose / Slice / constant Pad as a gather by an index map, and Reshape / Flatten /
//! Squeeze / Unsqueeze as a copy.

use super::{refuse, Candidate, Matcher, Reason, Refusal};
use crate::delegate::gather_map;
use crate::ir::{Node, Op, Tensor};
use crate::kernels::OutputRange;
use crate::program::{GatherSpec, KernelSpec, ReshapeSpec};

impl Matcher<'_> {
    /// Transpose / Slice / constant Pad with equal qparams, as a gather by an index map
    /// ([`gather_map`]).
    pub(super) fn gather(&self, index: usize, node: &Node) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        let out = self.q_output(node)?;
        if out.q != x.q || out.range != OutputRange::FULL {
            return refuse(Reason::QParams, "output qparams differ from the input's");
        }
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
        let mut fill = x.q.zero_point as i8;
        let (dims, map) = match &node.op {
            Op::Transpose { perm } => gather_map::transpose(&x.dims, perm.as_deref()),
            Op::Slice => {
                let (Some(starts), Some(ends)) = (ints(0)?, ints(1)?) else {
                    return refuse(Reason::Attribute, "Slice needs starts and ends");
                };
                gather_map::slice(&x.dims, &starts, &ends, ints(2)?.as_deref(), ints(3)?.as_deref())
            }
            Op::Pad { .. } => {
                let Some(pads) = ints(0)? else {
                    return refuse(Reason::Attribute, "Pad needs pads");
                };
                if let Some(c) = rest.get(1).copied().flatten() {
                    let v = c
                        .to_f32_vec()
                        .ok()
                        .and_then(|v| v.first().copied())
                        .unwrap_or(0.0);
                    fill =
                        x.q.quantize(v, crate::qscheme::QRange::I8, crate::qscheme::NanRule::Zero) as i8;
                }
                gather_map::pad(&x.dims, &pads, ints(2)?.as_deref())
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
        let kernel = KernelSpec::Gather(GatherSpec {
            input: 0,
            output: 0,
            map,
            fill,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }

    /// `DQ → Reshape / Flatten / Squeeze / Unsqueeze → Q` with equal qparams (the same bytes).
    pub(super) fn reshape(&self, index: usize, node: &Node) -> Result<Candidate, Refusal> {
        let x = self.q_input(&node.inputs[0])?;
        let out = self.q_output(node)?;
        if out.q != x.q || out.range != OutputRange::FULL {
            return refuse(Reason::QParams, "output qparams differ from the input's");
        }
        self.dims(&node.outputs[0])?;
        let kernel = KernelSpec::Reshape(ReshapeSpec { input: 0, output: 0 });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }
}
