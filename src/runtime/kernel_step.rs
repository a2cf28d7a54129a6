//! Kernel steps built from a [`KernelSpec`]: packed weights, indirection tables and shapes,
//! prepared once; [`KernelStep::run`] computes a range of tiles between arena buffers.
//! A [`KernelStep`] holds the built [`Step`] of its kind; each kind's build and run live in
//! its step file in [`crate::program::steps`].

use crate::cpu::Isa;
use crate::kernels::buffer::PackedBytes;
use crate::kernels::output::SharedOutput;
use crate::program::steps::{BuildContext, Step};
use crate::program::{KernelSpec, ValueSpec};
use crate::Result;
use std::ops::Range;

/// A kernel step prepared for one ISA.
pub struct KernelStep {
    step: Box<dyn Step>,
    /// Whether the step has packed weights (a GEMM: its work grows with them, not with the
    /// bytes it reads and writes).
    has_weights: bool,
}

impl KernelStep {
    /// Prepares `spec` for `isa`; `values` gives shapes and qparams.
    pub fn build(isa: Isa, spec: &KernelSpec, values: &[ValueSpec]) -> Result<KernelStep> {
        Self::build_with(isa, spec, values, None, None)
    }

    /// Like [`KernelStep::build`], taking the GEMM weights of a dense / grouped convolution
    /// (one buffer per group) or of a fully connected layer (one buffer) already packed for
    /// `isa` from `prepacked` instead of packing them, and the int8 weights of a convolution or
    /// fully connected layer from `unpacked` instead of `spec` (which then leaves them empty,
    /// e.g. when they stay in a program file). Prepacked weights for any other kernel, or of
    /// the wrong size, are an [`crate::Error::CorruptFile`].
    pub fn build_with(
        isa: Isa,
        spec: &KernelSpec,
        values: &[ValueSpec],
        prepacked: Option<Vec<PackedBytes>>,
        unpacked: Option<&[i8]>,
    ) -> Result<KernelStep> {
        let cx = BuildContext {
            isa,
            values,
            prepacked,
            weights: unpacked,
        };
        let step = spec.build(cx)?;
        let has_weights = !step.packed_parts().is_empty();
        Ok(KernelStep { step, has_weights })
    }

    /// Profile label of the step ("binary" for add and mul).
    pub fn kind(&self) -> &'static str {
        self.step.kind()
    }

    /// The packed weights [`KernelStep::build_with`] can take back: one buffer per group of a
    /// convolution, one for a fully connected layer, none for other kernels.
    pub fn packed_parts(&self) -> Vec<&[u8]> {
        self.step.packed_parts()
    }

    /// Whether the step's packed weights are used in place from shared bytes (a program
    /// file's packed section) rather than packed at load; false for steps without weights.
    pub fn uses_shared_weights(&self) -> bool {
        self.step.uses_shared_weights()
    }

    /// Whether the step multiplies by packed weights (convolutions and fully connected
    /// layers); the work of the others is proportional to the bytes they move.
    pub fn has_weights(&self) -> bool {
        self.has_weights
    }

    /// Number of independent tiles.
    pub fn tile_count(&self) -> usize {
        self.step.tile_count()
    }

    /// Computes `tiles` from `inputs` into `out`.
    ///
    /// # Safety
    /// Concurrent calls on the same `out` must use disjoint tile ranges.
    pub unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        // SAFETY: forwards this function's contract.
        unsafe { self.step.run(inputs, out, tiles) }
    }
}
