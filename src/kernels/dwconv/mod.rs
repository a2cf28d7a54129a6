//! Depthwise convolution (one filter per channel, any kernel size, stride, dilation and
//! padding) over NHWC `i8` input, with fused bias, zero-point compensation and fp32
//! requantization. Padding taps read a row filled with the input zero point.
//!
//! Use: [`PackedDwConv::pack`] once, build an [`Indirection`] once per input shape, then
//! [`PackedDwConv::run`] on ranges of the [`PackedDwConv::tile_count`] tiles; tile `t` is
//! output row `t % out_h` of image `t / out_h`. A depthwise transposed convolution runs
//! here too, through its own table ([`Indirection::transposed`]), one pixel at a time.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avxvnni;
#[cfg(test)]
mod pack_tests;
mod scalar;
pub(crate) mod variants;

use super::buffer::AlignedBytes;
use super::gemm::{check_matrix, GemmQuant};
use super::indirection::{ConvGeometry, Indirection, PADDING};
use super::output::SharedOutput;
use super::requant::Requantizer;
use super::scratch::Scratch;
use super::table::{dwconv_kernel, DwConvKernelInfo, DwPacking};
use crate::cpu::Isa;
use crate::qscheme::{conv_multiplier, ChannelScales};
use crate::{Error, Result};
use std::cell::RefCell;
use std::ops::Range;

/// The packed layout of a variant. A block of `B` channels (`B` = 16 or 32) has
/// `taps + 2` sections of `B` 4-byte words: biases (`i32`), one section per tap, and
/// multipliers (`f32`).
#[derive(Clone, Copy)]
struct Layout(DwPacking);

impl Layout {
    fn block_channels(self) -> usize {
        match self.0 {
            DwPacking::I32Lanes16 | DwPacking::EvenOddI16x16 => 16,
            DwPacking::EvenOddI16x32 => 32,
        }
    }

    /// Byte offset of channel `lane`'s 4-byte word in section `section` (bias: 0,
    /// multipliers: `1 + taps`). Even/odd packing puts even channels in the first half.
    fn word(self, section: usize, lane: usize) -> usize {
        let b = self.block_channels();
        let slot = match self.0 {
            DwPacking::I32Lanes16 => lane,
            DwPacking::EvenOddI16x16 | DwPacking::EvenOddI16x32 => (lane % 2) * (b / 2) + lane / 2,
        };
        section * b * 4 + slot * 4
    }

    /// Writes one tap's weights of a block's first `weights.len()` channels into that tap's
    /// section (`4 × block_channels` zeroed bytes): each a zero-extended `i16` in the
    /// channel's `i32` lane, or (even/odd) an `i16` at `i16` lane `lane` of the half's
    /// vector, whose neighbour lane stays zero.
    fn put_tap(self, section: &mut [u8], weights: &[i8]) {
        match self.0 {
            DwPacking::I32Lanes16 => {
                for (word, &w) in section.chunks_exact_mut(4).zip(weights) {
                    word.copy_from_slice(&(w as i16 as u16 as u32).to_ne_bytes());
                }
            }
            DwPacking::EvenOddI16x16 | DwPacking::EvenOddI16x32 => {
                let (even, odd) = section.split_at_mut(section.len() / 2);
                for (pair, &w) in even.chunks_exact_mut(4).zip(weights.iter().step_by(2)) {
                    pair[..2].copy_from_slice(&(w as i16).to_ne_bytes());
                }
                for (pair, &w) in odd.chunks_exact_mut(4).zip(weights.iter().skip(1).step_by(2)) {
                    pair[2..].copy_from_slice(&(w as i16).to_ne_bytes());
                }
            }
        }
    }
}

thread_local! {
    /// Per-thread run of input-zero-point bytes read by padding taps: refilled only when a
    /// call needs a longer run or another zero point (every byte holds the same value).
    static ZERO_RUN: RefCell<Vec<i8>> = const { RefCell::new(Vec::new()) };
}

/// Largest kernel (taps = height × width) a depthwise pack accepts.
pub const MAX_TAPS: usize = 1024;

/// Channels per packed block of the `I32Lanes16` layout (scalar, AVX2).
pub(crate) const BLOCK: usize = 16;

/// Unpacked depthwise weights.
#[derive(Clone, Copy, Debug)]
pub struct DwWeights<'a> {
    /// Channels (input = output; depth multiplier 1).
    pub channels: usize,
    /// Kernel height.
    pub k_h: usize,
    /// Kernel width.
    pub k_w: usize,
    /// `k_h × k_w × channels` weights (HWC; ONNX's `[C, 1, kH, kW]` transposed).
    pub weights: &'a [i8],
    /// One (per tensor) or `channels` (per channel) weight scales; weight zero point is 0.
    pub scales: &'a [f32],
    /// Optional `i32` bias with scale `s_x * s_w[c]`.
    pub bias: Option<&'a [i32]>,
}

/// Depthwise weights packed for one kernel variant (layout: [`DwPacking`] of the variant;
/// channels past the end have zero weights and bias).
#[derive(Debug)]
pub struct PackedDwConv {
    kernel: &'static DwConvKernelInfo,
    channels: usize,
    k_h: usize,
    k_w: usize,
    block_bytes: usize,
    data: AlignedBytes,
    input_zp: i8,
    rq: Requantizer,
}

/// A run of output pixels for a microkernel. Contract: `ptrs` holds `taps` pointers; pixel
/// `p < pixels` reads tap `t` at `ptrs[t] + p·step`, valid for reading `channels` bytes; `w`
/// is the packed data (`ceil(channels/B)` blocks of `block_bytes`, 64-byte aligned); `out`
/// is valid for writing `pixels × channels` bytes.
pub(crate) struct DwArgs<'a> {
    pub pixels: usize,
    pub taps: usize,
    pub channels: usize,
    pub ptrs: &'a [*const i8],
    pub step: usize,
    pub w: *const u8,
    pub block_bytes: usize,
    pub out: *mut i8,
    pub rq: Requantizer,
}

impl PackedDwConv {
    /// Packs `w` for the kernel variant of `isa`.
    pub fn pack(isa: Isa, w: &DwWeights, q: &GemmQuant) -> Result<PackedDwConv> {
        super::ensure_supported(isa)?;
        q.input.validate("input")?;
        q.output.validate("output")?;
        let c = w.channels;
        if c == 0 || w.k_h == 0 || w.k_w == 0 {
            return Err(Error::invalid_argument("weights", "empty depthwise weights"));
        }
        let taps = w.k_h.saturating_mul(w.k_w);
        if taps > MAX_TAPS {
            return Err(Error::Unsupported(format!(
                "depthwise kernel of {}x{} taps (max {MAX_TAPS} taps)",
                w.k_h, w.k_w
            )));
        }
        if taps.checked_mul(c) != Some(w.weights.len()) {
            return Err(Error::ShapeMismatch(format!(
                "depthwise weights have {} elements, expected {taps}×{c}",
                w.weights.len()
            )));
        }
        let Some(scales) = ChannelScales::new(w.scales, c) else {
            return Err(Error::ShapeMismatch(format!(
                "{} weight scales for {c} channels",
                w.scales.len()
            )));
        };
        if let Some(b) = w.bias {
            if b.len() != c {
                return Err(Error::ShapeMismatch(format!(
                    "bias has {} elements, expected {c}",
                    b.len()
                )));
            }
        }
        let kernel = dwconv_kernel(isa);
        let layout = Layout(kernel.packing);
        let block_bytes = layout.block_channels() * 4 * (taps + 2);
        let blocks = c.div_ceil(layout.block_channels());
        let mut data = AlignedBytes::zeroed(
            blocks
                .checked_mul(block_bytes)
                .ok_or_else(|| Error::ResourceLimit("depthwise weights too large".into()))?,
        )?;
        let bc = layout.block_channels();
        for (b, block) in data.as_mut_slice().chunks_exact_mut(block_bytes).enumerate() {
            let ch0 = b * bc;
            let lanes = (c - ch0).min(bc);
            // Weight rows are HWC, so a tap's weights of the block are contiguous.
            let mut sums = [0i32; 32];
            for (t, section) in block[bc * 4..].chunks_exact_mut(bc * 4).take(taps).enumerate() {
                let row = &w.weights[t * c + ch0..][..lanes];
                for (sum, &wv) in sums.iter_mut().zip(row) {
                    *sum += wv as i32;
                }
                layout.put_tap(section, row);
            }
            for (lane, &sum) in sums[..lanes].iter().enumerate() {
                let ch = ch0 + lane;
                let m = conv_multiplier(q.input.scale, scales.get(ch), q.output.scale)?;
                let bias = w
                    .bias
                    .map_or(0, |b| b[ch])
                    .wrapping_sub(q.input.zero_point.wrapping_mul(sum));
                let at = layout.word(0, lane);
                block[at..at + 4].copy_from_slice(&bias.to_ne_bytes());
                let at = layout.word(1 + taps, lane);
                block[at..at + 4].copy_from_slice(&m.to_ne_bytes());
            }
        }
        Ok(PackedDwConv {
            kernel,
            channels: c,
            k_h: w.k_h,
            k_w: w.k_w,
            block_bytes,
            data,
            input_zp: q.input.zero_point as i8,
            rq: Requantizer::new(q.output.zero_point, q.range),
        })
    }

    /// The kernel variant these weights were packed for.
    pub fn kernel(&self) -> &'static DwConvKernelInfo {
        self.kernel
    }

    /// Number of tiles (output rows over the batch) for `ind`'s geometry.
    pub fn tile_count(&self, ind: &Indirection) -> usize {
        ind.geometry().batch * ind.out_h()
    }

    /// Computes tiles `tiles` of `output` (NHWC, `batch × out_h × out_w × channels`) from
    /// `input` (NHWC, `batch × in_h × in_w × channels`).
    pub fn run(&self, ind: &Indirection, input: &[i8], output: &mut [i8], tiles: Range<usize>) -> Result<()> {
        let out = SharedOutput::new(output);
        // SAFETY: `out` borrows `output` exclusively for this call.
        unsafe { self.run_shared(ind, input, &out, tiles) }
    }

    /// Like [`PackedDwConv::run`], writing through a [`SharedOutput`].
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
        let g = *ind.geometry();
        if g.in_c != self.channels || (g.k_h, g.k_w) != (self.k_h, self.k_w) {
            return Err(Error::ShapeMismatch(format!(
                "indirection is for {}x{} taps over {} channels, weights are {}x{} over {}",
                g.k_h, g.k_w, g.in_c, self.k_h, self.k_w, self.channels
            )));
        }
        let (oh, ow, taps, c) = (ind.out_h(), ind.out_w(), g.taps(), self.channels);
        check_matrix("input", g.batch, g.image_len(), g.image_len(), input.len())?;
        check_matrix("output", g.batch * oh, ow * c, ow * c, output.len())?;
        let total = self.tile_count(ind);
        if tiles.start > tiles.end || tiles.end > total {
            return Err(Error::invalid_argument(
                "tiles",
                format!("range {tiles:?} is outside 0..{total}"),
            ));
        }
        let step = g.stride.1 * c;
        // A transposed table has no interior runs (its taps do not advance by a stride per
        // pixel): every pixel is computed on its own.
        let (x_lo, x_hi) = if ind.is_transposed() {
            (0, 0)
        } else {
            interior_columns(&g)
        };
        // Padding taps read zero-point bytes; an interior run of `x_hi - x_lo` pixels
        // advances them by `step` per pixel like every other tap. A single pixel reads `c`
        // bytes only (its stride may be as large as a file says, so it must not size this).
        let zero_len = match x_hi - x_lo {
            0 | 1 => c,
            n => n * step + c,
        };
        let mut ptrs: Scratch<*const i8, 128> = Scratch::new(taps, std::ptr::null());
        ZERO_RUN.with(|cell| {
            let mut zero = cell.borrow_mut();
            if zero.len() < zero_len || zero.first() != Some(&self.input_zp) {
                zero.clear();
                zero.resize(zero_len, self.input_zp);
            }
            for t in tiles {
                let (image, oy) = (t / oh, t % oh);
                let base = &input[image * g.image_len()..][..g.image_len()];
                // SAFETY: row (image, oy) is inside the output checked above.
                let out_row = unsafe { output.as_ptr().add((image * oh + oy) * ow * c) };
                let runs = (0..x_lo)
                    .chain(x_hi..ow)
                    .map(|px| (px, 1))
                    .chain((x_lo < x_hi).then_some((x_lo, x_hi - x_lo)));
                for (px, pixels) in runs {
                    for (p, &off) in ptrs.iter_mut().zip(ind.pixel(oy * ow + px)) {
                        *p = if off == PADDING {
                            zero.as_ptr()
                        } else {
                            base[off as usize..].as_ptr()
                        };
                    }
                    let args = DwArgs {
                        pixels,
                        taps,
                        channels: c,
                        ptrs: &ptrs,
                        step,
                        w: self.data.as_slice().as_ptr(),
                        block_bytes: self.block_bytes,
                        // SAFETY: pixels px..px + pixels lie inside the output row.
                        out: unsafe { out_row.add(px * c) },
                        rq: self.rq,
                    };
                    // SAFETY: a single pixel reads what its indirection entries address (full
                    // pixels of the validated geometry inside `base`, or the zero buffer). In an
                    // interior run no tap leaves the input columns, so pixel `px + p` reads
                    // entry + p·step, which is that pixel's own indirection offset, or
                    // zero + p·step < zero.len() - c for padding rows. The ISA was checked by `pack`.
                    unsafe { self.kernel_row(&args) };
                }
            }
        });
        Ok(())
    }

    /// Runs the microkernel of this variant.
    ///
    /// # Safety
    /// `args` satisfies the [`DwArgs`] contract for this packing; the ISA is supported.
    unsafe fn kernel_row(&self, args: &DwArgs) {
        // SAFETY: forwarded contract.
        unsafe { (self.kernel.row)(args) }
    }
}

/// The output columns `x_lo..x_hi` whose taps all fall inside the input columns (no
/// horizontal padding); empty when there are none.
fn interior_columns(g: &ConvGeometry) -> (usize, usize) {
    let ow = g.out_w();
    let (sw, dw, pl) = (g.stride.1, g.dilation.1, g.padding.1);
    let x_lo = pl.div_ceil(sw).min(ow);
    // Last column: px·sw + (k_w - 1)·dw - pl <= in_w - 1.
    let x_hi = match (g.in_w + pl).checked_sub(1 + (g.k_w - 1) * dw) {
        Some(right) => (right / sw + 1).min(ow),
        None => 0,
    };
    (x_lo, x_hi.max(x_lo))
}
