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
    let n = dst.len();
    assert_eq!(n, src.len());
    let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
    // SAFETY: both slices hold n bytes; each pair of moves covers [0, w) and [n - w, n) with
    // w <= n, so every access is in bounds (unaligned accesses are allowed).
    unsafe {
        match n {
            8..=16 => {
                let (head, tail) = (
                    s.cast::<u64>().read_unaligned(),
                    s.add(n - 8).cast::<u64>().read_unaligned(),
                );
                d.cast::<u64>().write_unaligned(head);
                d.add(n - 8).cast::<u64>().write_unaligned(tail);
            }
            4..=7 => {
                let (head, tail) = (
                    s.cast::<u32>().read_unaligned(),
                    s.add(n - 4).cast::<u32>().read_unaligned(),
                );
                d.cast::<u32>().write_unaligned(head);
                d.add(n - 4).cast::<u32>().write_unaligned(tail);
            }
            _ => dst.copy_from_slice(src),
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
        for ox in 0..ow {
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
