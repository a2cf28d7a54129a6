//! Binary element-wise step: quantized Add / Mul of two values with broadcasting
//! ([`crate::program::broadcast`]).

use super::{fixed, KernelContract};
use crate::kernels::OutputRange;
use crate::program::codec::{corrupt, Dec, Enc};
use crate::Result;

/// Element-wise binary kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    /// Quantized add.
    Add,
    /// Quantized multiply.
    Mul,
}

/// Add / Mul of two values.
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
}
