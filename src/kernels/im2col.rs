//! Im2col: gathers the convolution windows of an NHWC tensor into dense rows, so that a
//! convolution with few channels runs as one dense GEMM over the rows. A byte move with no
//! arithmetic, the same on every ISA.

use super::indirection::ConvGeometry;
use super::output::SharedOutput;
use super::scratch::Scratch;
use crate::{Error, Result};
use std::ops::Range;

/// Number of tiles of [`run_shared`]: one per output row of one image.
pub fn tile_count(g: &ConvGeometry) -> usize {
    g.batch * g.out_h()
}

/// Writes the im2col rows of output rows `tiles` (see [`tile_count`]) of the `g.batch` NHWC
/// images `x` into `out`: each output pixel's window as `k_padded` bytes in
/// `(ky, kx, channel)` order, padding taps and the row tail filled with `fill`.
///
/// # Safety
/// Concurrent calls on the same `out` must use disjoint tile ranges.
pub unsafe fn run_shared(
    g: &ConvGeometry,
    k_padded: usize,
    fill: i8,
    x: &[i8],
    out: &SharedOutput,
    tiles: Range<usize>,
) -> Result<()> {
    let (oh, ow) = (g.out_h(), g.out_w());
    if x.len() != g.batch * g.image_len()
        || out.len() != g.batch * oh * ow * k_padded
        || tiles.end > tile_count(g)
    {
        return Err(Error::Internal("im2col buffer sizes differ".into()));
    }
    // SAFETY: the output holds every row of these tiles (checked above), and the caller
    // gives concurrent calls disjoint tiles.
    unsafe { im2col_tiles(g, k_padded, fill, x, out.as_ptr(), tiles) };
    Ok(())
}

/// Copies a run of a few bytes (one kernel row of im2col) with two overlapping word moves
/// instead of a `memcpy` call when it is 4 to 16 bytes long.
#[inline(always)]
fn copy_run(dst: &mut [i8], src: &[i8]) {
    assert_eq!(dst.len(), src.len());
    // SAFETY: both slices hold dst.len() bytes and a `&mut` cannot overlap a `&`.
    unsafe { copy_run_raw(dst.as_mut_ptr(), src.as_ptr(), dst.len()) }
}

/// The output columns whose windows (dilation 1) lie inside the image horizontally:
/// `ox · stride ≥ pad_left` and `ox · stride − pad_left + k_w ≤ in_w`.
fn interior_columns(g: &ConvGeometry, ow: usize) -> Range<usize> {
    let stride = g.stride.1;
    let first = g.padding.1.div_ceil(stride);
    let end = match (g.in_w + g.padding.1).checked_sub(g.k_w) {
        Some(last_start) => (last_start / stride + 1).min(ow),
        None => 0,
    };
    first..end.max(first)
}

/// Copies 16 bytes from `src` to `dst` with one unaligned vector move.
///
/// # Safety
/// `src` is readable and `dst` writable for 16 bytes.
#[inline(always)]
unsafe fn copy16(dst: *mut i8, src: *const i8) {
    // SAFETY: caller contract; unaligned accesses are allowed.
    unsafe {
        dst.cast::<[u8; 16]>()
            .write_unaligned(src.cast::<[u8; 16]>().read_unaligned())
    }
}

/// Copies `n` bytes from `src` to `dst`: two overlapping word moves when `n` is 4 to 16,
/// else a `memcpy`.
///
/// # Safety
/// `src` is readable and `dst` writable for `n` bytes, and they do not overlap.
#[inline(always)]
unsafe fn copy_run_raw(dst: *mut i8, src: *const i8, n: usize) {
    // SAFETY: each pair of moves covers [0, w) and [n - w, n) with w <= n (caller contract
    // for n bytes; unaligned accesses are allowed).
    unsafe {
        match n {
            8..=16 => {
                let (head, tail) = (
                    src.cast::<u64>().read_unaligned(),
                    src.add(n - 8).cast::<u64>().read_unaligned(),
                );
                dst.cast::<u64>().write_unaligned(head);
                dst.add(n - 8).cast::<u64>().write_unaligned(tail);
            }
            4..=7 => {
                let (head, tail) = (
                    src.cast::<u32>().read_unaligned(),
                    src.add(n - 4).cast::<u32>().read_unaligned(),
                );
                dst.cast::<u32>().write_unaligned(head);
                dst.add(n - 4).cast::<u32>().write_unaligned(tail);
            }
            _ => std::ptr::copy_nonoverlapping(src, dst, n),
        }
    }
}

/// Im2col of output rows `tiles` (tile = output row of one image): each output pixel's
/// window as `k_padded` bytes in `(ky, kx, channel)` order, padding taps and the tail filled
/// with `fill`.
///
/// # Safety
/// `x` holds `g.batch` images; `dst` is valid for writing `g.batch · out_h · out_w ·
/// k_padded` bytes, of which this call writes only the rows of `tiles`.
unsafe fn im2col_tiles(
    g: &ConvGeometry,
    k_padded: usize,
    fill: i8,
    x: &[i8],
    dst: *mut i8,
    tiles: Range<usize>,
) {
    let (oh, ow, c) = (g.out_h(), g.out_w(), g.in_c);
    let run = g.k_w * c;
    // Input row offset of each kernel row for the current output row (None: padding).
    let mut rows: Scratch<Option<usize>, 32> = Scratch::new(g.k_h, None);
    for t in tiles {
        let (image, oy) = (t / oh, t % oh);
        let src = &x[image * g.image_len()..][..g.image_len()];
        for (ky, r) in rows.iter_mut().enumerate() {
            *r = (oy * g.stride.0 + ky * g.dilation.0)
                .checked_sub(g.padding.0)
                .filter(|&y| y < g.in_h)
                .map(|y| y * g.in_w * c);
        }
        // Output pixels whose windows lie inside the image on every side: raw copies of
        // `run` bytes per kernel row (most of the image), the rest through the checked loop.
        let interior = if g.dilation.1 == 1 && rows.iter().all(Option::is_some) {
            interior_columns(g, ow)
        } else {
            0..0
        };
        if !interior.is_empty() {
            let row_base = (image * oh + oy) * ow;
            // Runs of at most 16 bytes move as one 16-byte vector each; the bytes past a run
            // (at most 16, so inside the next pixel's row of k_padded >= 16 bytes) are
            // written over by the next run, the tail fill or the next pixel, so the last
            // interior pixel (whose next pixel may be another tile's) and pixels whose
            // vectors would read past the image take the exact copies below.
            let last_row = rows.iter().flatten().last().copied().unwrap_or(0);
            let mut exact_from = interior.end - 1;
            if run <= 16 && k_padded >= 16 {
                while exact_from > interior.start
                    && last_row + (exact_from - 1) * g.stride.1 * c + 16 > src.len() + g.padding.1 * c
                {
                    exact_from -= 1;
                }
            } else {
                exact_from = interior.start;
            }
            for ox in interior.start..exact_from {
                let x0 = (ox * g.stride.1 - g.padding.1) * c;
                // SAFETY: as below, and each 16-byte read ends inside `src` (exact_from) and
                // each 16-byte write ends inside this pixel's or the next pixel's row, which
                // this call writes afterwards.
                unsafe {
                    let d = dst.add((row_base + ox) * k_padded);
                    let mut at = 0;
                    for off in rows.iter().flatten() {
                        copy16(d.add(at), src.as_ptr().add(off + x0));
                        at += run;
                    }
                    for j in at..k_padded {
                        *d.add(j) = fill;
                    }
                }
            }
            for ox in exact_from..interior.end {
                let x0 = (ox * g.stride.1 - g.padding.1) * c;
                // SAFETY: the window of `ox` lies inside the image (interior_columns), so
                // every kernel row's run `off + x0 .. off + x0 + run` is inside `src`; row
                // `(image, oy, ox)` of `k_padded >= k_h · run` bytes is inside the output
                // and belongs to tile `t` only (caller contract).
                unsafe {
                    let d = dst.add((row_base + ox) * k_padded);
                    let mut at = 0;
                    for off in rows.iter().flatten() {
                        copy_run_raw(d.add(at), src.as_ptr().add(off + x0), run);
                        at += run;
                    }
                    for j in at..k_padded {
                        *d.add(j) = fill;
                    }
                }
            }
        }
        for ox in (0..ow).filter(|ox| !interior.contains(ox)) {
            // SAFETY: row `(image, oy, ox)` of `k_padded` bytes is inside the output and
            // belongs to tile `t` only (caller contract).
            let r = unsafe {
                std::slice::from_raw_parts_mut(dst.add(((image * oh + oy) * ow + ox) * k_padded), k_padded)
            };
            let ix0 = (ox * g.stride.1).checked_sub(g.padding.1);
            let mut at = 0;
            match ix0 {
                // Every tap of the window row is inside: runs of k_w · c contiguous bytes.
                Some(x0) if g.dilation.1 == 1 && x0 + g.k_w <= g.in_w => {
                    for row in rows.iter() {
                        let d = &mut r[at..at + run];
                        match row {
                            Some(off) => copy_run(d, &src[off + x0 * c..][..run]),
                            None => d.iter_mut().for_each(|v| *v = fill),
                        }
                        at += run;
                    }
                }
                _ => {
                    for row in rows.iter() {
                        for kx in 0..g.k_w {
                            let ix = (ox * g.stride.1 + kx * g.dilation.1)
                                .checked_sub(g.padding.1)
                                .filter(|&ix| ix < g.in_w);
                            let d = &mut r[at..at + c];
                            match (row, ix) {
                                (Some(off), Some(ix)) => d.copy_from_slice(&src[off + ix * c..][..c]),
                                _ => d.iter_mut().for_each(|v| *v = fill),
                            }
                            at += c;
                        }
                    }
                }
            }
            // The tail is at most 3 bytes: a loop, not a memset call.
            for v in &mut r[at..] {
                *v = fill;
            }
        }
    }
}
