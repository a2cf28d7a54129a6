//! Binary element-wise step: quantized Add / Mul / Sub of two values with broadcasting
//! ([`crate::program::broadcast`]).

use super::{fixed, BuildContext, KernelContract, Step};
use crate::kernels::elementwise::{BinaryOp, BinaryQuant, BinaryShape, QuantizedBinary, Storage};
use crate::kernels::output::SharedOutput;
use crate::kernels::OutputRange;
use crate::program::codec::{corrupt, Dec, Enc};
use crate::{Error, Result};
use std::ops::Range;

/// Element-wise binary kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    /// Quantized add.
    Add,
    /// Quantized multiply.
    Mul,
    /// Quantized subtract (`a - b`).
    Sub,
}

/// Add / Mul / Sub of two values.
#[derive(Clone, Debug, PartialEq)]
pub struct BinarySpec {
    /// The operation.
    pub kind: BinaryKind,
    /// First input.
    pub a: usize,
    /// Second input.
    pub b: usize,
    /// Output.
    pub output: usize,
    /// Output range after the fused activation.
    pub range: OutputRange,
}

impl KernelContract for BinarySpec {
    fn kind_name(&self) -> &'static str {
        match self.kind {
            BinaryKind::Add => "add",
            BinaryKind::Mul => "mul",
            BinaryKind::Sub => "sub",
        }
    }

    fn inputs(&self) -> Vec<usize> {
        vec![self.a, self.b]
    }

    fn output(&self) -> usize {
        self.output
    }

    fn remap_values(
        &mut self,
        input: &mut dyn FnMut(usize) -> usize,
        output: &mut dyn FnMut(usize) -> usize,
    ) {
        self.a = input(self.a);
        self.b = input(self.b);
        self.output = output(self.output);
    }

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.kind as usize, self.a, self.b, self.output]);
        e.range(&self.range);
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [kind, a, b, output] = fixed(d)?;
        let kind = match kind {
            0 => BinaryKind::Add,
            1 => BinaryKind::Mul,
            2 => BinaryKind::Sub,
            _ => return Err(corrupt("binary kind")),
        };
        let spec = BinarySpec {
            kind,
            a,
            b,
            output,
            range: d.range()?,
        };
        Ok((spec, None))
    }
    /// Chooses the kernel for `cx.isa` and maps the broadcast onto its strides.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (a, b, out) = (cx.value(self.a)?, cx.value(self.b)?, cx.value(self.output)?);
        if out.numel() == 0 {
            return Err(Error::InvalidModel(format!(
                "add/mul output `{}` is empty",
                out.name
            )));
        }
        let shape = crate::program::broadcast::binary_shape(&a.dims, &b.dims, &out.dims).map_err(|e| {
            Error::InvalidModel(format!(
                "add/mul `{}` = `{}` op `{}`: {e}",
                out.name, a.name, b.name
            ))
        })?;
        let op = match self.kind {
            BinaryKind::Add => BinaryOp::Add,
            BinaryKind::Mul => BinaryOp::Mul,
            BinaryKind::Sub => BinaryOp::Sub,
        };
        let q = BinaryQuant {
            a: a.q,
            b: b.q,
            output: out.q,
            range: self.range,
        };
        let storage = Storage::new(out.unsigned);
        let kernel = QuantizedBinary::with_storage(cx.isa, op, &q, storage)?;
        Ok(Box::new(BinaryStep { kernel, shape }))
    }
}

/// A quantized add or multiply and its broadcast strides.
struct BinaryStep {
    kernel: QuantizedBinary,
    shape: BinaryShape,
}

impl Step for BinaryStep {
    fn kind(&self) -> &'static str {
        "binary"
    }

    fn tile_count(&self) -> usize {
        self.kernel.tile_count(&self.shape)
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        // SAFETY: forwards this function's contract (disjoint tiles for concurrent callers).
        unsafe {
            self.kernel
                .run_shared(&self.shape, inputs[0], inputs[1], out, tiles)
        }
    }
}
