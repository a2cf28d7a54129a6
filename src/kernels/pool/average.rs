//! Windowed average pool (ONNX AveragePool over NHWC `i8`): for each output pixel, the exact
//! `i32` sum of `x - zp_x` over the window's cells inside the input, requantized with
//! `m = s_x / (s_y * count)` (the mean formula of the [`crate::kernels`] module docs, with a
//! count per output pixel). Padding cells add zero (a real 0 is `zp_x`); `count` is the
//! number of cells the [`AvgDivisor`] counts, and a window with a count of 0 yields the
//! output zero point (clamped to the range), as ONNX's float definition gives 0.

use super::{check_tiles, AvgArgs, MAX_POOL_PIXELS, TAPS_ON_STACK};
use crate::cpu::Isa;
use crate::kernels::gemm::check_matrix;
use crate::kernels::indirection::{ConvGeometry, Indirection, PADDING};
use crate::kernels::output::SharedOutput;
use crate::kernels::requant::{OutputRange, QuantParams, Requantizer};
use crate::kernels::scratch::Scratch;
use crate::kernels::table;
use crate::qscheme::mean_multiplier;
use crate::{Error, Result};
use std::ops::Range;

/// Which cells of a window an average divides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvgDivisor {
    /// The cells inside the input (ONNX `count_include_pad = 0`).
    Inside,
    /// The cells inside the input padded by the geometry's top and left padding and by `end`
    /// (bottom, right) rows and columns: ONNX `count_include_pad = 1`, where `end` is the
    /// model's end padding and the geometry's may be larger (`ceil_mode`'s extra window
    /// cells past the padded input are never counted). `end` must not exceed the geometry's.
    Padded {
        /// Counted bottom and right padding.
        end: (usize, usize),
    },
}

/// Average pool over one geometry, prepared once: its indirection table and one multiplier
/// per output pixel.
#[derive(Clone, Debug)]
pub struct AvgPool {
    isa: Isa,
    ind: Indirection,
    zp_in: i32,
    rq: Requantizer,
    /// `s_x / (s_y * count)` of each output pixel (`oy * out_w + ox`); 0 when `count` is 0.
    multipliers: Vec<f32>,
}

/// Per output index along one axis: how many of its `k` window cells lie before `limit` in
/// padded coordinates (cell `j` of output `o` is at `o * stride + j * dilation`).
fn counted_cells(out: usize, k: usize, stride: usize, dilation: usize, limit: usize) -> Vec<usize> {
    (0..out)
        .map(|o| {
            (0..k)
                .filter(|&j| {
                    o.checked_mul(stride)
                        .and_then(|s| s.checked_add(j.checked_mul(dilation)?))
                        .is_some_and(|p| p < limit)
                })
                .count()
        })
        .collect()
}

impl AvgPool {
    /// Prepares an average pool of `geometry` dividing by the cells `divisor` counts, from
    /// `input` to `output` qparams, clamped to `range`.
    pub fn new(
        isa: Isa,
        geometry: &ConvGeometry,
        divisor: AvgDivisor,
        input: QuantParams,
        output: QuantParams,
        range: OutputRange,
    ) -> Result<Self> {
        crate::kernels::ensure_supported(isa)?;
        input.validate("input")?;
        output.validate("output")?;
        let ind = Indirection::new(geometry)?;
        let g = *geometry;
        if g.taps() > MAX_POOL_PIXELS {
            return Err(Error::ResourceLimit(format!(
                "average pool window of {} cells (at most {MAX_POOL_PIXELS})",
                g.taps()
            )));
        }
        let (oh, ow) = (ind.out_h(), ind.out_w());
        let counts: Vec<usize> = match divisor {
            AvgDivisor::Inside => (0..oh * ow)
                .map(|p| ind.pixel(p).iter().filter(|&&o| o != PADDING).count())
                .collect(),
            AvgDivisor::Padded { end } => {
                if end.0 > g.padding.2 || end.1 > g.padding.3 {
                    return Err(Error::invalid_argument(
                        "divisor",
                        format!(
                            "counted end padding {end:?} exceeds the window's ({}, {})",
                            g.padding.2, g.padding.3
                        ),
                    ));
                }
                // In range: the geometry validated `in + begin + end` without overflow.
                let rows = counted_cells(oh, g.k_h, g.stride.0, g.dilation.0, g.in_h + g.padding.0 + end.0);
                let cols = counted_cells(ow, g.k_w, g.stride.1, g.dilation.1, g.in_w + g.padding.1 + end.1);
                rows.iter()
                    .flat_map(|r| cols.iter().map(move |c| r * c))
                    .collect()
            }
        };
        let multipliers = counts
            .into_iter()
            .map(|n| {
                if n == 0 {
                    Ok(0.0)
                } else {
                    mean_multiplier(input, output, n)
                }
            })
            .collect::<Result<Vec<f32>>>()?;
        Ok(AvgPool {
            isa,
            ind,
            zp_in: input.zero_point,
            rq: Requantizer::new(output.zero_point, range),
            multipliers,
        })
    }

    /// The geometry this pool was prepared for.
    pub fn geometry(&self) -> &ConvGeometry {
        self.ind.geometry()
    }

    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        (self.ind.out_h(), self.ind.out_w())
    }

    /// Number of tiles: output rows over the batch.
    pub fn tile_count(&self) -> usize {
        self.ind.geometry().batch * self.ind.out_h()
    }

    /// Computes tiles of `output` (NHWC, `batch × out_h × out_w × in_c`) from `input` (NHWC).
    pub fn run(&self, input: &[i8], output: &mut [i8], tiles: Range<usize>) -> Result<()> {
        let out = SharedOutput::new(output);
        // SAFETY: `out` borrows `output` exclusively for this call.
        unsafe { self.run_shared(input, &out, tiles) }
    }

    /// Like [`AvgPool::run`], writing through a [`SharedOutput`].
    ///
    /// # Safety
    /// Calls that run concurrently on the same output must have disjoint tile ranges.
    pub unsafe fn run_shared(&self, input: &[i8], output: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        let g = *self.ind.geometry();
        let (oh, ow, c) = (self.ind.out_h(), self.ind.out_w(), g.in_c);
        check_matrix("input", g.batch, g.image_len(), g.image_len(), input.len())?;
        check_matrix("output", g.batch * oh, ow * c, ow * c, output.len())?;
        check_tiles(&tiles, self.tile_count())?;
        let avg = table::for_isa(self.isa).pool.avg;
        let mut ptrs: Scratch<*const i8, TAPS_ON_STACK> = Scratch::new(g.taps(), std::ptr::null());
        for t in tiles {
            let (image, oy) = (t / oh, t % oh);
            let base = &input[image * g.image_len()..][..g.image_len()];
            for ox in 0..ow {
                let pixel = oy * ow + ox;
                let mut n = 0;
                for &off in self.ind.pixel(pixel) {
                    if off != PADDING {
                        ptrs[n] = base[off as usize..].as_ptr();
                        n += 1;
                    }
                }
                let a = AvgArgs {
                    ptrs: &ptrs[..n],
                    channels: c,
                    // n <= taps <= MAX_POOL_PIXELS (checked in `new`): no overflow.
                    zp_times_count: self.zp_in * n as i32,
                    m: self.multipliers[pixel],
                    // SAFETY: pixel (image, oy, ox) is inside the output checked above.
                    out: unsafe { output.as_ptr().add(((image * oh + oy) * ow + ox) * c) },
                    rq: self.rq,
                };
                // SAFETY: every pointer addresses a full pixel of `base` (validated geometry:
                // offsets + c <= image_len); n * 255 <= 2^31 (taps bounded in `new`); ISA
                // checked in `new`.
                unsafe { avg(&a) };
            }
        }
        Ok(())
    }
}
