//! Pooling over NHWC `i8` input: global average pool / mean over H·W (requantized, formula
//! in the [`crate::kernels`] module docs), windowed average pool ([`AvgPool`], the same
//! formula with a per-output-pixel count) and max pool (a byte operation: the output shares
//! the input's qparams; padding never wins, an all-padding window yields the range minimum).

mod average;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;

pub use average::{AvgDivisor, AvgPool};

use super::gemm::check_matrix;
use super::indirection::{Indirection, PADDING};
use super::output::SharedOutput;
use super::requant::{OutputRange, QuantParams, Requantizer};
use super::scratch::Scratch;
use super::table::{self, PoolKernels};
use crate::cpu::Isa;
use crate::qscheme::mean_multiplier;
use crate::{Error, Result};
use std::ops::Range;

/// Channels whose max-pool padding row lives on the stack.
const PADDING_ON_STACK: usize = 1024;
/// Window taps whose pointers live on the stack.
const TAPS_ON_STACK: usize = 128;

/// Most taps whose sum SIMD average kernels keep in `i16` lanes (`256 × -128 = i16::MIN`:
/// exact).
#[cfg(target_arch = "x86_64")]
const I16_TAPS: usize = 256;

/// Largest pixel count of a global average pool (keeps `Σ (x - zp)` exact in `i32`).
pub const MAX_POOL_PIXELS: usize = 1 << 23;

/// One image for a mean microkernel. Contract: `x` is readable for `pixels × channels`
/// bytes and `out` writable for `channels` bytes.
pub(crate) struct MeanArgs {
    pub x: *const i8,
    pub pixels: usize,
    pub channels: usize,
    pub zp_times_count: i32,
    pub m: f32,
    pub out: *mut i8,
    pub rq: Requantizer,
}

/// One output pixel for a max microkernel. Contract: each of `ptrs` is readable for
/// `channels` bytes, `out` is writable for `channels` bytes.
pub(crate) struct MaxArgs<'a> {
    pub ptrs: &'a [*const i8],
    pub channels: usize,
    pub out: *mut i8,
    pub lo: i8,
    pub hi: i8,
}

/// One output pixel for an average microkernel: `out[c] = rq((Σ_p ptrs[p][c] - zp_times_count)
/// as f32 * m)`. Contract: each of `ptrs` is readable for `channels` bytes, `out` is writable
/// for `channels` bytes, and `ptrs.len() * 255` fits in `i32`.
pub(crate) struct AvgArgs<'a> {
    pub ptrs: &'a [*const i8],
    pub channels: usize,
    pub zp_times_count: i32,
    pub m: f32,
    pub out: *mut i8,
    pub rq: Requantizer,
}

/// The portable variant (the test oracle of the others).
pub(crate) static SCALAR: PoolKernels = PoolKernels {
    gavgpool: "qs8-gavgpool-fp32-scalar",
    avgpool: "qs8-avgpool-fp32-scalar",
    maxpool: "s8-maxpool-scalar",
    mean: scalar::mean,
    avg: scalar::avg,
    max: scalar::max,
};

/// The AVX2 variant (also run by the AVX-VNNI rows).
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX2: PoolKernels = PoolKernels {
    gavgpool: "qs8-gavgpool-fp32-avx2",
    avgpool: "qs8-avgpool-fp32-avx2",
    maxpool: "s8-maxpool-avx2",
    mean: avx2::mean,
    avg: avx2::avg,
    max: avx2::max,
};

/// The AVX-512 variant.
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX512: PoolKernels = PoolKernels {
    gavgpool: "qs8-gavgpool-fp32-avx512",
    avgpool: "qs8-avgpool-fp32-avx512",
    maxpool: "s8-maxpool-avx512",
    mean: avx512::mean,
    avg: avx512::avg,
    max: avx512::max,
};

/// Global average pool (mean over all pixels of each channel), prepared once.
#[derive(Clone, Copy, Debug)]
pub struct GlobalAvgPool {
    isa: Isa,
    pixels: usize,
    zp_in: i32,
    m: f32,
    rq: Requantizer,
}

impl GlobalAvgPool {
    /// Prepares a mean over `pixels` pixels: `m = s_x / (s_y * pixels)` in `f32`.
    pub fn new(
        isa: Isa,
        pixels: usize,
        input: QuantParams,
        output: QuantParams,
        range: OutputRange,
    ) -> Result<Self> {
        super::ensure_supported(isa)?;
        input.validate("input")?;
        output.validate("output")?;
        if pixels == 0 || pixels > MAX_POOL_PIXELS {
            return Err(Error::invalid_argument(
                "pixels",
                format!("{pixels} is outside 1..={MAX_POOL_PIXELS}"),
            ));
        }
        let m = mean_multiplier(input, output, pixels)?;
        Ok(GlobalAvgPool {
            isa,
            pixels,
            zp_in: input.zero_point,
            m,
            rq: Requantizer::new(output.zero_point, range),
        })
    }

    /// Number of tiles: one per image.
    pub fn tile_count(&self, batch: usize) -> usize {
        batch
    }

    /// Computes tiles of `output` (`batch × channels`) from `input` (`batch × pixels × channels`).
    pub fn run(
        &self,
        batch: usize,
        channels: usize,
        input: &[i8],
        output: &mut [i8],
        tiles: Range<usize>,
    ) -> Result<()> {
        let out = SharedOutput::new(output);
        // SAFETY: `out` borrows `output` exclusively for this call.
        unsafe { self.run_shared(batch, channels, input, &out, tiles) }
    }

    /// Like [`GlobalAvgPool::run`], writing through a [`SharedOutput`].
    ///
    /// # Safety
    /// Calls that run concurrently on the same output must have disjoint tile ranges.
    pub unsafe fn run_shared(
        &self,
        batch: usize,
        channels: usize,
        input: &[i8],
        output: &SharedOutput,
        tiles: Range<usize>,
    ) -> Result<()> {
        let image = self.pixels * channels;
        check_matrix("input", batch, image, image, input.len())?;
        check_matrix("output", batch, channels, channels, output.len())?;
        check_tiles(&tiles, batch)?;
        let mean = table::for_isa(self.isa).pool.mean;
        for t in tiles {
            let a = MeanArgs {
                x: input[t * image..].as_ptr(),
                pixels: self.pixels,
                channels,
                zp_times_count: self.zp_in * self.pixels as i32,
                m: self.m,
                // SAFETY: row t of the output is inside it (checked above).
                out: unsafe { output.as_ptr().add(t * channels) },
                rq: self.rq,
            };
            // SAFETY: the slices above hold one image and one output row; ISA checked in `new`.
            unsafe { mean(&a) };
        }
        Ok(())
    }
}

/// Max pool with a fused clamp, prepared once.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool {
    isa: Isa,
    range: OutputRange,
}

impl MaxPool {
    /// Prepares a max pool whose output is clamped to `range`.
    pub fn new(isa: Isa, range: OutputRange) -> Result<Self> {
        super::ensure_supported(isa)?;
        Ok(MaxPool { isa, range })
    }

    /// Number of tiles (output rows over the batch) for `ind`'s geometry.
    pub fn tile_count(&self, ind: &Indirection) -> usize {
        ind.geometry().batch * ind.out_h()
    }

    /// Computes tiles of `output` (NHWC, `batch × out_h × out_w × in_c`).
    pub fn run(&self, ind: &Indirection, input: &[i8], output: &mut [i8], tiles: Range<usize>) -> Result<()> {
        let out = SharedOutput::new(output);
        // SAFETY: `out` borrows `output` exclusively for this call.
        unsafe { self.run_shared(ind, input, &out, tiles) }
    }

    /// Like [`MaxPool::run`], writing through a [`SharedOutput`].
    ///
    /// # Safety
    /// Calls that run concurrently on the same output must have disjoint tile ranges.
    pub unsafe fn run_shared(
        &self,
        ind: &Indirection,
        input: &[i8],
        output: &SharedOutput,
        tiles: Range<usize>,
    ) -> Result<()> {
        if ind.is_transposed() {
            return Err(Error::invalid_argument("ind", "a transposed-convolution table"));
        }
        let g = *ind.geometry();
        let (oh, ow, c) = (g.out_h(), g.out_w(), g.in_c);
        check_matrix("input", g.batch, g.image_len(), g.image_len(), input.len())?;
        check_matrix("output", g.batch * oh, ow * c, ow * c, output.len())?;
        check_tiles(&tiles, self.tile_count(ind))?;
        let max = table::for_isa(self.isa).pool.max;
        let padding_row: Scratch<i8, PADDING_ON_STACK> = Scratch::new(c, i8::MIN);
        let mut ptrs: Scratch<*const i8, TAPS_ON_STACK> = Scratch::new(g.taps(), std::ptr::null());
        for t in tiles {
            let (image, oy) = (t / oh, t % oh);
            let base = &input[image * g.image_len()..][..g.image_len()];
            for ox in 0..ow {
                for (p, &off) in ptrs.iter_mut().zip(ind.pixel(oy * ow + ox)) {
                    *p = if off == PADDING {
                        padding_row.as_ptr()
                    } else {
                        base[off as usize..].as_ptr()
                    };
                }
                let a = MaxArgs {
                    ptrs: &ptrs,
                    channels: c,
                    // SAFETY: pixel (image, oy, ox) is inside the output checked above.
                    out: unsafe { output.as_ptr().add(((image * oh + oy) * ow + ox) * c) },
                    lo: self.range.min,
                    hi: self.range.max,
                };
                // SAFETY: every pointer addresses a full pixel of `base` (validated geometry)
                // or the padding row of `c` bytes; ISA checked in `new`.
                unsafe { max(&a) };
            }
        }
        Ok(())
    }
}

fn check_tiles(tiles: &Range<usize>, total: usize) -> Result<()> {
    if tiles.start > tiles.end || tiles.end > total {
        return Err(Error::invalid_argument(
            "tiles",
            format!("range {tiles:?} is outside 0..{total}"),
        ));
    }
    Ok(())
}
