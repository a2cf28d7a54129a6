//! Im2col step: gathers the convolution windows of an NHWC value into dense rows, so that a
//! small-channel convolution runs as one dense GEMM.

use super::{fixed, geometry, BuildContext, KernelContract, Step, Window};
use crate::kernels::im2col;
use crate::kernels::indirection::ConvGeometry;
use crate::kernels::output::SharedOutput;
use crate::program::codec::{Dec, Enc};
use crate::{Error, Result};
use std::ops::Range;

/// Gathers the convolution windows of an NHWC value into rows of `k_padded` bytes (taps in
/// `(ky, kx, channel)` order, padding taps and the row tail filled with the input zero
/// point), so that a small-channel convolution runs as one dense GEMM.
#[derive(Clone, Debug, PartialEq)]
pub struct Im2colSpec {
    /// Input value (NHWC).
    pub input: usize,
    /// Output value (`pixels × k_padded`, row-major).
    pub output: usize,
    /// Window geometry.
    pub window: Window,
    /// Row length (taps · channels rounded up to a multiple of 4).
    pub k_padded: usize,
}

impl KernelContract for Im2colSpec {
    fn kind_name(&self) -> &'static str {
        "im2col"
    }

    single_input_values!();

    fn encode(&self, e: &mut Enc) {
        e.usizes(&[self.input, self.output, self.k_padded]);
        e.window(&self.window);
    }

    fn decode<'a>(d: &mut Dec<'a>, _view: bool) -> Result<(Self, Option<&'a [u8]>)> {
        let [input, output, k_padded] = fixed(d)?;
        let spec = Im2colSpec {
            input,
            output,
            k_padded,
            window: d.window()?,
        };
        Ok((spec, None))
    }
    /// Checks the row length against the window geometry.
    fn build(&self, cx: BuildContext<'_>) -> Result<Box<dyn Step>> {
        let (x, out) = (cx.value(self.input)?, cx.value(self.output)?);
        if !x.is_nhwc() {
            return Err(Error::InvalidModel("im2col input must be 4-D".into()));
        }
        let g = geometry(x, &self.window);
        g.validate()?;
        // Sizes come from the file: a product that wraps is a corrupt program, not a panic.
        let k_real = g.taps().checked_mul(g.in_c);
        let pixels = g
            .out_h()
            .checked_mul(g.out_w())
            .and_then(|p| p.checked_mul(g.batch));
        let (Some(k_real), Some(pixels)) = (k_real, pixels) else {
            return Err(Error::InvalidModel("im2col sizes overflow".into()));
        };
        let k_padded = self.k_padded;
        if k_padded < k_real || k_padded - k_real > 3 || out.dims != [pixels, k_padded] {
            return Err(Error::InvalidModel("im2col shapes".into()));
        }
        Ok(Box::new(Im2colStep {
            geometry: g,
            k_padded,
            fill: x.q.zero_point as i8,
        }))
    }
}

/// Window gather into dense rows over an NHWC input.
struct Im2colStep {
    geometry: ConvGeometry,
    k_padded: usize,
    /// The fill byte (input zero point).
    fill: i8,
}

impl Step for Im2colStep {
    fn kind(&self) -> &'static str {
        "im2col"
    }

    fn tile_count(&self) -> usize {
        im2col::tile_count(&self.geometry)
    }

    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        // SAFETY: forwards this function's contract (disjoint tiles for concurrent callers).
        unsafe { im2col::run_shared(&self.geometry, self.k_padded, self.fill, inputs[0], out, tiles) }
    }
}
