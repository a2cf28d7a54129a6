//! Spatial resize of NHWC int8 images: nearest (a copy of whole pixels, with an optional
//! 256-entry table when the output qparams differ) and bilinear.
//!
//! Bilinear is the `f32` arithmetic of a dequantize → Resize → quantize graph, in the
//! interpreter's order, so it gives the interpreted graph's bytes exactly:
//!
//! ```text
//! v(q)  = (q - zp_x) as f32 * s_x
//! t_k   = v(x[h0, w_k]) * (1 - wh) + v(x[h1, w_k]) * wh      (k = 0, 1: the rows first)
//! y     = t_0 * (1 - ww) + t_1 * ww
//! q_y   = clamp(clamp(round_half_even(y / s_y) + zp_y, -128, 127), lo, hi)
//! ```
//!
//! with every operation one IEEE `f32` operation (no fused multiply-add) and `[lo, hi]` the
//! output range of a fused activation. `(h0, h1, wh)` and `(w0, w1, ww)` are the taps of the
//! output row and column ([`AxisTap`]); an axis Resize leaves unchanged has the taps
//! `(i, i, 0)`, which give `t = v` exactly.

use super::output::SharedOutput;
use super::requant::{OutputRange, QuantParams};
use crate::qscheme::{NanRule, QRange};
use crate::{Error, Result};

/// How one output index along an axis reads the input: input indices `i0` and `i1` and the
/// weight `w` of `i1` (nearest reads `i0` only).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AxisTap {
    /// First input index.
    pub i0: u32,
    /// Second input index.
    pub i1: u32,
    /// Weight of the second index.
    pub w: f32,
}

/// Sizes of a resize: input `batch × in_h × in_w × channels` (NHWC) into
/// `batch × out_h × out_w × channels`, with one tap per output row and column.
#[derive(Clone, Debug, PartialEq)]
pub struct ResizeGeometry {
    /// Images.
    pub batch: usize,
    /// Channels (the contiguous run of one pixel).
    pub channels: usize,
    /// Input height and width.
    pub in_hw: (usize, usize),
    /// Taps of each output row.
    pub rows: Vec<AxisTap>,
    /// Taps of each output column.
    pub cols: Vec<AxisTap>,
}

impl ResizeGeometry {
    /// Checks every tap reads inside the input and every weight is finite.
    pub fn validate(&self) -> Result<()> {
        let ok = |taps: &[AxisTap], len: usize| {
            taps.iter()
                .all(|t| (t.i0 as usize) < len && (t.i1 as usize) < len && t.w.is_finite())
        };
        if !ok(&self.rows, self.in_hw.0) || !ok(&self.cols, self.in_hw.1) {
            return Err(Error::InvalidModel("resize taps read outside the input".into()));
        }
        Ok(())
    }

    /// Bytes of the input.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_hw.0 * self.in_hw.1 * self.channels
    }

    /// Bytes of the output.
    pub fn output_len(&self) -> usize {
        self.batch * self.rows.len() * self.cols.len() * self.channels
    }

    /// Output rows over all images (the unit of work: `batch × out_h`).
    pub fn output_rows(&self) -> usize {
        self.batch * self.rows.len()
    }
}

/// The interpolation a [`Resize`] runs.
#[derive(Clone, Debug)]
enum Interpolation {
    /// Whole pixels copied, then mapped through the table when there is one.
    Nearest(Option<Box<[i8; 256]>>),
    /// Bilinear in `f32`: the dequantized value of each byte, and the output qparams.
    Bilinear {
        dequantized: Box<[f32; 256]>,
        y: QuantParams,
        range: OutputRange,
    },
}

/// A resize prepared once: geometry and, for bilinear, the dequantization table.
#[derive(Clone, Debug)]
pub struct Resize {
    geometry: ResizeGeometry,
    interpolation: Interpolation,
}

impl Resize {
    /// Nearest: output pixel `(oy, ox)` is input pixel `(rows[oy].i0, cols[ox].i0)`, each
    /// byte then replaced by `table[b as u8]` when a table is given.
    pub fn nearest(geometry: ResizeGeometry, table: Option<[i8; 256]>) -> Result<Self> {
        geometry.validate()?;
        Ok(Resize {
            geometry,
            interpolation: Interpolation::Nearest(table.map(Box::new)),
        })
    }

    /// Bilinear from input qparams `x` to output qparams `y` (int8 terms), clamped to `range`.
    pub fn bilinear(
        geometry: ResizeGeometry,
        x: QuantParams,
        y: QuantParams,
        range: OutputRange,
    ) -> Result<Self> {
        geometry.validate()?;
        x.validate("x")?;
        y.validate("y")?;
        let dequantized = Box::new(std::array::from_fn(|b| x.dequantize(i32::from(b as u8 as i8))));
        Ok(Resize {
            geometry,
            interpolation: Interpolation::Bilinear {
                dequantized,
                y,
                range,
            },
        })
    }

    /// The geometry.
    pub fn geometry(&self) -> &ResizeGeometry {
        &self.geometry
    }

    /// Computes output rows `rows` (indices into `batch × out_h`) of `out` from `x`.
    ///
    /// # Safety
    /// Concurrent calls on the same `out` must use disjoint `rows`.
    pub unsafe fn run_shared(
        &self,
        x: &[i8],
        out: &SharedOutput<'_>,
        rows: std::ops::Range<usize>,
    ) -> Result<()> {
        let g = &self.geometry;
        if x.len() != g.input_len()
            || out.len() != g.output_len()
            || rows.start > rows.end
            || rows.end > g.output_rows()
        {
            return Err(Error::ShapeMismatch(format!(
                "resize of rows {rows:?} from {} bytes into {} bytes",
                x.len(),
                out.len()
            )));
        }
        let row_len = g.cols.len() * g.channels;
        for r in rows {
            // SAFETY: `r < output_rows` (checked), so the row lies within `out`, which is
            // borrowed exclusively for its lifetime; concurrent callers use disjoint rows.
            let y = unsafe { std::slice::from_raw_parts_mut(out.as_ptr().add(r * row_len), row_len) };
            self.row(x, r, y);
        }
        Ok(())
    }

    /// Computes output row `r` (of `batch × out_h`) into `y` (one output row).
    fn row(&self, x: &[i8], r: usize, y: &mut [i8]) {
        let g = &self.geometry;
        let (n, oy) = (r / g.rows.len(), r % g.rows.len());
        let (in_h, in_w, c) = (g.in_hw.0, g.in_hw.1, g.channels);
        let tap = g.rows[oy];
        let image = &x[n * in_h * in_w * c..(n + 1) * in_h * in_w * c];
        let line = |h: u32| &image[h as usize * in_w * c..(h as usize + 1) * in_w * c];
        match &self.interpolation {
            Interpolation::Nearest(table) => {
                let src = line(tap.i0);
                for (ox, dst) in g.cols.iter().zip(y.chunks_exact_mut(c)) {
                    let at = ox.i0 as usize * c;
                    dst.copy_from_slice(&src[at..at + c]);
                }
                if let Some(t) = table {
                    y.iter_mut().for_each(|b| *b = t[*b as u8 as usize]);
                }
            }
            Interpolation::Bilinear {
                dequantized,
                y: q,
                range,
            } => {
                let (top, bottom) = (line(tap.i0), line(tap.i1));
                let (wh, wh_c) = (tap.w, 1.0 - tap.w);
                let v = |b: i8| dequantized[b as u8 as usize];
                for (col, dst) in g.cols.iter().zip(y.chunks_exact_mut(c)) {
                    let (a0, a1) = (col.i0 as usize * c, col.i1 as usize * c);
                    let (ww, ww_c) = (col.w, 1.0 - col.w);
                    for (k, d) in dst.iter_mut().enumerate() {
                        let t0 = v(top[a0 + k]) * wh_c + v(bottom[a0 + k]) * wh;
                        let t1 = v(top[a1 + k]) * wh_c + v(bottom[a1 + k]) * wh;
                        let value = t0 * ww_c + t1 * ww;
                        let stored = q.quantize(value, QRange::I8, NanRule::Zero) as i32;
                        *d = stored.clamp(i32::from(range.min), i32::from(range.max)) as i8;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taps(v: &[(u32, u32, f32)]) -> Vec<AxisTap> {
        v.iter().map(|&(i0, i1, w)| AxisTap { i0, i1, w }).collect()
    }

    #[test]
    fn nearest_copies_pixels_and_bilinear_blends_rows_then_columns() {
        // One 2 × 2 image with 2 channels.
        let x: Vec<i8> = vec![0, 10, 20, 30, 40, 50, 60, 70];
        let g = ResizeGeometry {
            batch: 1,
            channels: 2,
            in_hw: (2, 2),
            rows: taps(&[(1, 1, 0.0), (0, 1, 0.5)]),
            cols: taps(&[(1, 0, 0.25)]),
        };
        let run = |r: &Resize| {
            let mut y = vec![0i8; g.output_len()];
            let out = SharedOutput::new(&mut y);
            // SAFETY: single-threaded, all rows at once.
            unsafe { r.run_shared(&x, &out, 0..2).unwrap() };
            y
        };
        assert_eq!(run(&Resize::nearest(g.clone(), None).unwrap()), [60, 70, 20, 30]);
        let neg: [i8; 256] = std::array::from_fn(|b| (b as u8 as i8).wrapping_neg());
        assert_eq!(
            run(&Resize::nearest(g.clone(), Some(neg)).unwrap()),
            [-60, -70, -20, -30]
        );
        let q = QuantParams {
            scale: 0.5,
            zero_point: 0,
        };
        // Row 1 blends rows 0 and 1 equally: (20 + 60) / 2 = 40 at column 1, 20 at column 0;
        // columns: 40 * 0.75 + 20 * 0.25 = 35.
        let bl = Resize::bilinear(g.clone(), q, q, OutputRange::FULL).unwrap();
        assert_eq!(run(&bl), [55, 65, 35, 45]);
        let relu = Resize::bilinear(g.clone(), q, q, OutputRange::new(-128, 50).unwrap()).unwrap();
        assert_eq!(run(&relu), [50, 50, 35, 45]);
        let mut bad = g.clone();
        bad.cols[0].i1 = 2;
        assert!(Resize::nearest(bad, None).is_err());
        let nn = Resize::nearest(g, None).unwrap();
        let mut y = vec![0i8; 4];
        let out = SharedOutput::new(&mut y);
        // SAFETY: single-threaded.
        assert!(unsafe { nn.run_shared(&x, &out, 1..3) }.is_err());
    }
}
