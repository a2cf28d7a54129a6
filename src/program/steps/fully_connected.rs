//! Fully connected step: `y[m, n] = x[m, k] · W[n, k]ᵀ` over the rows of a row-major value.

use super::{fixed, BuildContext, KernelContract, Step};
use crate::kernels::gemm::{GemmQuant, GemmWeights, PackedGemm};
use crate::kernels::output::SharedOutput;
use crate::kernels::OutputRange;
use crate::program::codec::{Dec, Enc};
use crate::qscheme::QWeights;
use crate::{Error, Result};
use std::ops::Range;

/// Fully connected `y[m, n] = x[m, k] · W[n, k]ᵀ`.
#[derive(Clone, Debug, PartialEq)]
pub struct FullyConnectedSpec {
    /// Input value (`m × k` row-major).
    pub input: usize,
    /// Output value (`m × n`).
    pub output: usize,
    /// Output channels.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// `n × k` int8 weights and their scales, one or `n`.
    pub weights: QWeights,
    /// Int32 bias (empty: none).
    pub bias: Vec<i32>,
    /// Output range after the fused activation.
    pub range: OutputRange,
}

impl KernelContract for FullyConnectedSpec {
    fn kind_name(&self) -> &'static str {
        "fully_connected"
    }

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.input, self.output, self.n, self.k]);
        e.qweights(&self.weights);
        e.i32s(&self.bias);
        e.range(&self.range);
    }

    fn decode<'a>(d: &mut Dec<'a>, view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output, n, k] = fixed(d)?;
        let (weights, viewed) = d.qweights_or_view(view)?;
        let spec = FullyConnectedSpec {
            input,
            output,
            n,
            k,
            weights,
            bias: d.i32s()?,
            range: d.range()?,
        };
        Ok((spec, viewed))
    }

    fn takes_prepacked(&self) -> bool {
        true
    }

    /// Packs the weights for `cx.isa` (or takes them prepacked, one part).
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        let (n, k) = (self.n, self.k);
        if k == 0 || x.is_nhwc() || x.numel() % k != 0 || x.dims.last() != Some(&k) {
            return Err(Error::InvalidModel(format!(
                "fully connected input `{}` shape",
                x.name
            )));
        }
        let m = x.numel() / k;
        if m.checked_mul(n) != Some(out.numel()) || (out.is_nhwc() && out.dims[1] != n) {
            return Err(Error::InvalidModel(format!(
                "fully connected output `{}` shape",
                out.name
            )));
        }
        let w = GemmWeights {
            n,
            ks: 1,
            kc: k,
            weights: cx.weights.unwrap_or(&self.weights.values),
            scales: &self.weights.scales,
            bias: (!self.bias.is_empty()).then_some(self.bias.as_slice()),
        };
        let q = GemmQuant {
            input: x.q,
            output: out.q,
            range: self.range,
        };
        let packed = match cx.prepacked {
            Some(mut parts) if parts.len() == 1 => {
                PackedGemm::from_packed(cx.isa, n, 1, k, &q, parts.remove(0))?
            }
            Some(parts) => {
                return Err(Error::CorruptFile(format!(
                    "{} packed parts for a fully connected step (one expected)",
                    parts.len()
                )))
            }
            None => PackedGemm::pack(cx.isa, &w, &q)?,
        };
        Ok(Box::new(FullyConnectedStep { packed, m, k, n }))
    }
}

/// A fully connected layer over `m` rows of `k`: its packed GEMM weights.
struct FullyConnectedStep {
    packed: PackedGemm,
    m: usize,
    k: usize,
    n: usize,
}

impl Step for FullyConnectedStep {
    fn kind(&self) -> &'static str {
        "fully_connected"
    }

    fn tile_count(&self) -> usize {
        self.packed.tile_count(self.m)
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        // SAFETY: forwards this function's contract (disjoint tiles for concurrent callers).
        unsafe {
            self.packed
                .run_shared(self.m, inputs[0], self.k, out, self.n, tiles)
        }
    }

    fn packed_parts(&self) -> Vec<&[u8]> {
        vec![self.packed.packed_bytes()]
    }

    fn uses_shared_weights(&self) -> bool {
        self.packed.is_shared()
    }
}
