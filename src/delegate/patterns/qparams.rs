//! The qparams of a QuantizeLinear / DequantizeLinear node in int8 terms, with uint8
//! tensors carried as int8: a uint8 tensor `u` is handled as the int8 tensor `u - 128` with
//! zero point `zp - 128`, which quantizes, dequantizes and requantizes identically.

use super::{refuse, Matcher, Reason, Refusal};
use crate::ir::{DType, Node, Op};
use crate::kernels::QuantParams;
use crate::qscheme::Carrier;

impl Matcher<'_> {
    /// Whether a Q/DQ node quantizes to uint8 (its int8 value is stored shifted by -128).
    pub fn node_is_unsigned(&self, node: &Node) -> bool {
        match node.input(2).and_then(|z| self.constant(z)) {
            Some(t) => t.dtype() == DType::U8,
            None => matches!(&node.op, Op::QuantizeLinear(a) if a.output_dtype != Some(DType::I8)),
        }
    }

    /// Per-tensor qparams of a Q/DQ node (inputs 1 and 2) in int8 terms: a uint8 tensor `u`
    /// is handled as the int8 tensor `u - 128` with zero point `zp - 128`, which quantizes,
    /// dequantizes and requantizes identically.
    pub fn node_qparams(&self, node: &Node) -> Result<QuantParams, Refusal> {
        let scale = node
            .input(1)
            .and_then(|s| self.constant(s))
            .ok_or_else(|| Refusal {
                reason: Reason::QParams,
                detail: format!("`{}`: scale is not a constant", node.name),
            })?;
        let scale = scale.to_f32_vec().map_err(|e| Refusal {
            reason: Reason::Dtype,
            detail: e.to_string(),
        })?;
        if scale.len() != 1 {
            return refuse(
                Reason::QParams,
                format!("`{}`: per-axis activation quantization", node.name),
            );
        }
        let zp = match node.input(2) {
            None => Carrier::new(self.node_is_unsigned(node)).stored_zero_point(0),
            Some(z) => {
                let t = self.constant(z).ok_or_else(|| Refusal {
                    reason: Reason::QParams,
                    detail: format!("`{}`: zero point is not a constant", node.name),
                })?;
                match (t.as_i8(), t.as_u8()) {
                    (Ok([v]), _) => *v as i32,
                    (_, Ok([v])) => Carrier::Uint8.stored_zero_point(i32::from(*v)),
                    (Ok(_), _) | (_, Ok(_)) => {
                        return refuse(Reason::QParams, format!("`{}`: per-axis zero point", node.name))
                    }
                    _ => {
                        return refuse(
                            Reason::Dtype,
                            format!("`{}`: {} quantization (int8 / uint8 only)", node.name, t.dtype()),
                        )
                    }
                }
            }
        };
        QuantParams::new(scale[0], zp, "qparams").map_err(|e| Refusal {
            reason: Reason::QParams,
            detail: e.to_string(),
        })
    }
}
