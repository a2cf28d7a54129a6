//! Spatial resize of NHWC int8 images: nearest (a copy of whole pixels, with an optional
//! 256-entry table when the output qparams differ) and bilinear; and both into `f32` NCHW
//! ([`ResizeToF32`]: the blended value before its quantization, for a float output).
//!
//! Bilinear is the `f32` arithmetic of a dequantize → Resize → quantize graph, in the
//! interpreter's order, so it gives the interpreted graph's bytes exactly:
//!
//! ```text
//! v(q)  = (q - zp_x) as f32 * s_x
//! t_k   = v(x[h0, w_k]) * (1 - wh) + v(x[h1, w_k]) * wh      (k = 0, 1: the rows first)
//! y     = t_0 * (1 - ww) + t_1 * ww
//! q_y   = clamp(clamp(round_half_even(y / s_y) + zp_y, -128, 127), lo, hi)   (NaN: clamp(0, lo, hi))
//! ```
//!
//! with every operation one IEEE `f32` operation (no fused multiply-add) and `[lo, hi]` the
//! output range of a fused activation. `(h0, h1, wh)` and `(w0, w1, ww)` are the taps of the
//! output row and column ([`AxisTap`]); an axis Resize leaves unchanged has the taps
//! `(i, i, 0)`, which give `t = v` exactly.
//!
//! `t_k` depends on the output row and the input column only, so an output row is computed in
//! two passes: the row blend `t` of every input column the row's taps read (the
//! `LinesArgs` microkernel, over contiguous runs of bytes), then the column blend and
//! quantization of each output pixel (`ColumnsArgs`; the SIMD variants blend the channels of
//! each pixel into an `f32` row, then quantize that row as one run, so a channel count that is
//! not a multiple of the vector width wastes no division). Each variant runs the same
//! operations per element (the SIMD ones lane by lane, with `vdivps`, round-to-nearest-even
//! and no FMA), so every variant is bit-identical to the scalar one,
//! which is the oracle of `tests/kernels_resize.rs`. An output row whose taps equal the
//! previous row's (same image) is a copy of it, in both modes.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;

use super::lut::Lut;
use super::output::SharedOutput;
use super::requant::{OutputRange, QuantParams};
use super::scratch::Scratch;
use super::table::ResizeKernels;
use crate::cpu::Isa;
use crate::qscheme::{NanRule, QRange};
use crate::{Error, Result};
use std::ops::Range;

/// Row-blend values of one call that live on the stack (more on the heap).
const LINE_ON_STACK: usize = 2048;
/// Column-blend values of one output row that live on the stack (more on the heap; 21
/// channels × 224 columns fit).
const ROW_ON_STACK: usize = 6144;

/// Elements after the row and column blends that the SIMD variants may read and write (a
/// pixel's channels as whole vectors: the lanes past them are garbage that the next pixel
/// overwrites or nobody reads). At least the widest vector.
pub(crate) const PADDING: usize = 16;

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

impl AxisTap {
    /// Whether `self` and `other` read the same indices with the same weight bits.
    fn same(&self, other: &AxisTap) -> bool {
        (self.i0, self.i1, self.w.to_bits()) == (other.i0, other.i1, other.w.to_bits())
    }
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
    /// Checks every tap reads inside the input, every weight is finite and the input and
    /// output sizes fit in `usize`.
    pub fn validate(&self) -> Result<()> {
        let ok = |taps: &[AxisTap], len: usize| {
            taps.iter()
                .all(|t| (t.i0 as usize) < len && (t.i1 as usize) < len && t.w.is_finite())
        };
        if !ok(&self.rows, self.in_hw.0) || !ok(&self.cols, self.in_hw.1) {
            return Err(Error::InvalidModel("resize taps read outside the input".into()));
        }
        let size = |h: usize, w: usize| {
            [self.batch, h, w, self.channels]
                .into_iter()
                .try_fold(1usize, |a, d| a.checked_mul(d))
        };
        let fits = size(self.in_hw.0, self.in_hw.1).is_some()
            && size(self.rows.len(), self.cols.len()).is_some()
            && self.in_hw.1.checked_mul(self.channels).is_some()
            && self.cols.len().checked_mul(self.channels).is_some();
        if !fits {
            return Err(Error::InvalidModel("resize sizes overflow".into()));
        }
        Ok(())
    }

    /// Bytes of the input (checked by [`ResizeGeometry::validate`]).
    pub fn input_len(&self) -> usize {
        self.batch * self.in_hw.0 * self.in_hw.1 * self.channels
    }

    /// Bytes of the output (checked by [`ResizeGeometry::validate`]).
    pub fn output_len(&self) -> usize {
        self.batch * self.rows.len() * self.cols.len() * self.channels
    }

    /// Output rows over all images (the unit of work: `batch × out_h`).
    pub fn output_rows(&self) -> usize {
        self.batch * self.rows.len()
    }
}

/// The dequantization of input bytes: `v(b) = (b - zero_point) as f32 * scale`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dequant {
    pub zero_point: i32,
    pub scale: f32,
}

impl Dequant {
    /// `v(b)`: the integer difference is exact, then one `f32` product.
    #[inline(always)]
    pub fn value(self, b: i8) -> f32 {
        (i32::from(b) - self.zero_point) as f32 * self.scale
    }
}

/// The quantization of blended values into output bytes, with the fused activation's range.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Quantizer {
    /// Output qparams.
    pub y: QuantParams,
    /// Output range (`min <= max`).
    pub range: OutputRange,
    /// The output zero point as `f32`.
    pub zero_point: f32,
    /// `range.min` as `f32`.
    pub lo: f32,
    /// `range.max` as `f32`.
    pub hi: f32,
    /// The byte of a NaN quotient: `clamp(0, range.min, range.max)`.
    pub nan: i8,
}

impl Quantizer {
    fn new(y: QuantParams, range: OutputRange) -> Result<Self> {
        y.validate("y")?;
        if range.min > range.max {
            return Err(Error::InvalidModel(format!(
                "resize output range [{}, {}] is empty",
                range.min, range.max
            )));
        }
        Ok(Quantizer {
            y,
            range,
            zero_point: y.zero_point as f32,
            lo: f32::from(range.min),
            hi: f32::from(range.max),
            nan: 0i8.clamp(range.min, range.max),
        })
    }

    /// The output byte of `value` through the interpreter's QuantizeLinear (the oracle; the
    /// SIMD variants compute the same from the `f32` fields: since `[lo, hi]` lies within
    /// `[-128, 127]`, clamping once to `[lo, hi]` equals clamping to both in turn).
    #[inline(always)]
    pub fn byte(&self, value: f32) -> i8 {
        let stored = self.y.quantize(value, QRange::I8, NanRule::Zero) as i32;
        stored.clamp(i32::from(self.range.min), i32::from(self.range.max)) as i8
    }
}

/// The row blend of one run of input bytes: `t[i] = v(top[i]) * wc + v(bottom[i]) * w` for
/// `i < n`. Contract: `top` and `bottom` are readable and `t` is writable for `n` elements,
/// and the CPU supports the variant's ISA.
#[derive(Clone, Copy)]
pub(crate) struct LinesArgs {
    pub top: *const i8,
    pub bottom: *const i8,
    pub n: usize,
    pub x: Dequant,
    pub w: f32,
    pub wc: f32,
    pub t: *mut f32,
}

/// How an output column reads the row blend: element offsets `a0`, `a1` of its two input
/// pixels (`i0 × channels`, `i1 × channels`), the weight `w` of `a1` and `wc = 1 - w`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ColumnTap {
    pub a0: usize,
    pub a1: usize,
    pub w: f32,
    pub wc: f32,
}

/// The column blend of one output row: pixel `j`, channel `k` is
/// `q.byte(t[a0 + k] * wc + t[a1 + k] * w)` with `cols[j]`'s taps. The SIMD variants store
/// the blended values of the whole row in `u` first (each pixel as whole vectors, in pixel
/// order), then quantize `u` as one contiguous run (full vectors whatever the channel count).
/// Contract: `t` is readable (and initialized) at `a0..a0 + channels + PADDING` and
/// `a1..a1 + channels + PADDING` of every tap, `u` (distinct from `t`) is writable for
/// `cols.len() × channels + PADDING` elements and `y` for `cols.len() × channels`, and the CPU
/// supports the variant's ISA.
pub(crate) struct ColumnsArgs<'a> {
    pub t: *const f32,
    pub u: *mut f32,
    pub cols: &'a [ColumnTap],
    pub channels: usize,
    pub q: &'a Quantizer,
    pub y: *mut i8,
}

impl ColumnsArgs<'_> {
    /// The blend part of these arguments.
    fn blend(&self) -> BlendArgs<'_> {
        BlendArgs {
            t: self.t,
            u: self.u,
            cols: self.cols,
            channels: self.channels,
        }
    }
}

/// The column blend of one output row left in `f32`: `u[j × channels + k] =
/// t[a0 + k] * wc + t[a1 + k] * w` with `cols[j]`'s taps (the value [`ColumnsArgs`]
/// quantizes). Contract: `t` is readable (and initialized) at `a0..a0 + channels + PADDING`
/// and `a1..a1 + channels + PADDING` of every tap, `u` (distinct from `t`) is writable for
/// `cols.len() × channels + PADDING` elements, and the CPU supports the variant's ISA.
pub(crate) struct BlendArgs<'a> {
    pub t: *const f32,
    pub u: *mut f32,
    pub cols: &'a [ColumnTap],
    pub channels: usize,
}

/// The portable variant (the test oracle of the others).
pub(crate) static SCALAR: ResizeKernels = ResizeKernels {
    bilinear: "qs8-resize-bilinear-fp32-scalar",
    lines: scalar::lines,
    columns: scalar::columns,
    blend: scalar::blend,
};

/// The AVX2 variant (also run by the 256-bit VNNI rows).
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX2: ResizeKernels = ResizeKernels {
    bilinear: "qs8-resize-bilinear-fp32-avx2",
    lines: avx2::lines,
    columns: avx2::columns,
    blend: avx2::blend,
};

/// The AVX-512 (F/BW/VL) variant.
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX512: ResizeKernels = ResizeKernels {
    bilinear: "qs8-resize-bilinear-fp32-avx512",
    lines: avx512::lines,
    columns: avx512::columns,
    blend: avx512::blend,
};

/// The interpolation a [`Resize`] runs.
#[derive(Clone, Debug)]
enum Interpolation {
    /// Whole pixels copied, then mapped through the table when there is one.
    Nearest(Option<Lut>),
    /// Bilinear in `f32` (see the module docs), quantized by the quantizer.
    Bilinear(Bilinear, Quantizer),
}

/// A bilinear plan: the input dequantization, the column taps and the element ranges of an
/// input line that any column tap reads.
#[derive(Clone, Debug)]
struct Bilinear {
    x: Dequant,
    cols: Vec<ColumnTap>,
    spans: Vec<Range<usize>>,
    kernels: &'static ResizeKernels,
}

impl Bilinear {
    fn new(isa: Isa, g: &ResizeGeometry, x: QuantParams) -> Result<Self> {
        x.validate("x")?;
        let c = g.channels;
        // `validate` checked `in_w × c` fits, so do the offsets.
        let cols = g
            .cols
            .iter()
            .map(|t| ColumnTap {
                a0: t.i0 as usize * c,
                a1: t.i1 as usize * c,
                w: t.w,
                wc: 1.0 - t.w,
            })
            .collect();
        // The input columns the taps read, in order (sized by the output, not the input).
        let mut used: Vec<usize> = g
            .cols
            .iter()
            .flat_map(|t| [t.i0 as usize, t.i1 as usize])
            .collect();
        used.sort_unstable();
        used.dedup();
        let mut spans: Vec<Range<usize>> = Vec::new();
        for i in used {
            match spans.last_mut() {
                Some(s) if s.end == i * c => s.end += c,
                _ => spans.push(i * c..(i + 1) * c),
            }
        }
        Ok(Bilinear {
            x: Dequant {
                zero_point: x.zero_point,
                scale: x.scale,
            },
            cols,
            spans,
            kernels: super::table::for_isa(isa).resize,
        })
    }

    /// Computes the row blend of the input lines `top` and `bottom` (`in_w × c` bytes each)
    /// with row weight `w` into `t` (`in_w × c` elements and [`PADDING`], all initialized),
    /// over the spans the column taps read.
    fn lines(&self, top: &[i8], bottom: &[i8], w: f32, t: &mut [f32]) {
        assert!(top.len() + PADDING == t.len() && bottom.len() == top.len());
        for s in &self.spans {
            let args = LinesArgs {
                top: top[s.clone()].as_ptr(),
                bottom: bottom[s.clone()].as_ptr(),
                n: s.len(),
                x: self.x,
                w,
                wc: 1.0 - w,
                t: t[s.clone()].as_mut_ptr(),
            };
            // SAFETY: the span lies within the lines and `t` (indexed above), so each pointer is
            // valid for `n` elements; `Resize::new` checked the CPU supports the variant.
            unsafe { (self.kernels.lines)(&args) };
        }
    }

    /// Computes one output row `y` from the input lines `top` and `bottom` (`in_w × c` bytes
    /// each) with row weight `w`, quantized by `q`, through the row-blend buffer `t` (`in_w ×
    /// c` elements and [`PADDING`], all initialized) and the column-blend buffer `u` (as long
    /// as `y`, and [`PADDING`]).
    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        top: &[i8],
        bottom: &[i8],
        w: f32,
        q: &Quantizer,
        t: &mut [f32],
        u: &mut [f32],
        y: &mut [i8],
        channels: usize,
    ) {
        assert!(u.len() == y.len() + PADDING && y.len() == self.cols.len() * channels);
        self.lines(top, bottom, w, t);
        let args = ColumnsArgs {
            t: t.as_ptr(),
            u: u.as_mut_ptr(),
            cols: &self.cols,
            channels,
            q,
            y: y.as_mut_ptr(),
        };
        // SAFETY: every tap's pixels lie within an input line (`validate`), so within the
        // spans just written, and `t` has `PADDING` initialized elements more; `u` (a buffer
        // apart from `t`) and `y` hold `cols × channels` elements, `u` `PADDING` more
        // (asserted above); the CPU was checked.
        unsafe { (self.kernels.columns)(&args) };
    }
}

/// A resize prepared once: geometry and the plan of its interpolation.
#[derive(Clone, Debug)]
pub struct Resize {
    geometry: ResizeGeometry,
    interpolation: Interpolation,
}

impl Resize {
    /// Nearest: output pixel `(oy, ox)` is input pixel `(rows[oy].i0, cols[ox].i0)`, each
    /// byte then replaced by `table[b as u8]` when a table is given (looked up by `isa`'s
    /// table kernel).
    pub fn nearest(isa: Isa, geometry: ResizeGeometry, table: Option<[i8; 256]>) -> Result<Self> {
        super::ensure_supported(isa)?;
        geometry.validate()?;
        Ok(Resize {
            geometry,
            interpolation: Interpolation::Nearest(table.map(|t| Lut::new(isa, t)).transpose()?),
        })
    }

    /// Bilinear from input qparams `x` to output qparams `y` (int8 terms), clamped to `range`,
    /// with `isa`'s kernels.
    pub fn bilinear(
        isa: Isa,
        geometry: ResizeGeometry,
        x: QuantParams,
        y: QuantParams,
        range: OutputRange,
    ) -> Result<Self> {
        super::ensure_supported(isa)?;
        geometry.validate()?;
        let plan = Bilinear::new(isa, &geometry, x)?;
        Ok(Resize {
            geometry,
            interpolation: Interpolation::Bilinear(plan, Quantizer::new(y, range)?),
        })
    }

    /// The geometry.
    pub fn geometry(&self) -> &ResizeGeometry {
        &self.geometry
    }

    /// Name of the bilinear kernel, or of the table kernel of a nearest resize with a table
    /// (`None`: a plain copy).
    pub fn kernel_name(&self) -> Option<&'static str> {
        match &self.interpolation {
            Interpolation::Nearest(lut) => lut.as_ref().map(Lut::kernel_name),
            Interpolation::Bilinear(b, _) => Some(b.kernels.bilinear),
        }
    }

    /// Computes output rows `rows` (indices into `batch × out_h`) of `out` from `x`.
    ///
    /// # Safety
    /// Concurrent calls on the same `out` must use disjoint `rows`.
    pub unsafe fn run_shared(&self, x: &[i8], out: &SharedOutput<'_>, rows: Range<usize>) -> Result<()> {
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
        if rows.is_empty() {
            return Ok(());
        }
        let (in_h, in_w, c) = (g.in_hw.0, g.in_hw.1, g.channels);
        let (line_len, row_len) = (in_w * c, g.cols.len() * c);
        // SAFETY: `rows.end <= output_rows` (checked), so rows `rows` lie within `out`, which is
        // borrowed exclusively for its lifetime; concurrent callers use disjoint rows.
        let y = unsafe {
            std::slice::from_raw_parts_mut(out.as_ptr().add(rows.start * row_len), rows.len() * row_len)
        };
        let line = |n: usize, h: u32| {
            let at = (n * in_h + h as usize) * line_len;
            &x[at..at + line_len]
        };
        let (mut t, mut u): (Scratch<f32, LINE_ON_STACK>, Scratch<f32, ROW_ON_STACK>) =
            match self.interpolation {
                Interpolation::Bilinear(..) => (
                    Scratch::new(line_len + PADDING, 0.0),
                    Scratch::new(row_len + PADDING, 0.0),
                ),
                Interpolation::Nearest(_) => (Scratch::Heap(Vec::new()), Scratch::Heap(Vec::new())),
            };
        let mut previous: Option<(usize, AxisTap)> = None;
        for (k, r) in rows.enumerate() {
            let (n, tap) = (r / g.rows.len(), g.rows[r % g.rows.len()]);
            let same = |p: &AxisTap| match self.interpolation {
                Interpolation::Nearest(_) => p.i0 == tap.i0,
                Interpolation::Bilinear(..) => p.same(&tap),
            };
            if previous.is_some_and(|(pn, p)| pn == n && same(&p)) {
                // The same computation as the previous row: its bytes.
                y.copy_within((k - 1) * row_len..k * row_len, k * row_len);
                continue;
            }
            previous = Some((n, tap));
            let dst = &mut y[k * row_len..(k + 1) * row_len];
            match &self.interpolation {
                Interpolation::Nearest(lut) => {
                    nearest_row(line(n, tap.i0), &g.cols, c, dst);
                    if let Some(lut) = lut {
                        lut.run_in_place(dst);
                    }
                }
                Interpolation::Bilinear(b, q) => {
                    b.row(line(n, tap.i0), line(n, tap.i1), tap.w, q, &mut t, &mut u, dst, c)
                }
            }
        }
        Ok(())
    }
}

/// A resize into `f32` prepared once: the value a dequantize → Resize graph computes, written
/// in NCHW order (a float graph output). Nearest picks the dequantized input element
/// (`v(b)` of the module docs); bilinear blends as the module docs say and stops before the
/// quantization, so each element is the interpreter's `f32` bit for bit on every ISA (the
/// blend is the variants' bit-identical arithmetic; the transposition into channel planes
/// is the same scalar code for all).
#[derive(Clone, Debug)]
pub struct ResizeToF32 {
    geometry: ResizeGeometry,
    x: Dequant,
    /// `None`: nearest.
    bilinear: Option<Bilinear>,
}

impl ResizeToF32 {
    /// Bilinear (`linear`) or nearest from input qparams `x`, with `isa`'s kernels.
    pub fn new(isa: Isa, geometry: ResizeGeometry, x: QuantParams, linear: bool) -> Result<Self> {
        super::ensure_supported(isa)?;
        geometry.validate()?;
        x.validate("x")?;
        let bilinear = linear.then(|| Bilinear::new(isa, &geometry, x)).transpose()?;
        Ok(ResizeToF32 {
            geometry,
            x: Dequant {
                zero_point: x.zero_point,
                scale: x.scale,
            },
            bilinear,
        })
    }

    /// The geometry.
    pub fn geometry(&self) -> &ResizeGeometry {
        &self.geometry
    }

    /// Name of the kernel that blends (bilinear) or `None` (nearest, a scalar pick).
    pub fn kernel_name(&self) -> Option<&'static str> {
        self.bilinear.as_ref().map(|b| b.kernels.bilinear)
    }

    /// Computes the whole output `y` (NCHW: `batch × channels × out_h × out_w`) from the NHWC
    /// input `x`.
    pub fn run(&self, x: &[i8], y: &mut [f32]) -> Result<()> {
        // SAFETY: `y` is borrowed exclusively for the one call, which covers every row.
        unsafe { self.run_rows(x, y.as_mut_ptr(), y.len(), 0..self.geometry.output_rows()) }
    }

    /// Computes output rows `rows` (indices into `batch × out_h`) of the NCHW output of `len`
    /// elements at `y` from the NHWC input `x`: for each row, one run of `out_w` elements in
    /// each of the `channels` planes of its image.
    ///
    /// # Safety
    /// `y` is valid for writes of `len` elements for the duration of the call, and concurrent
    /// calls on the same `y` use disjoint `rows` (they write disjoint elements).
    pub unsafe fn run_rows(&self, x: &[i8], y: *mut f32, len: usize, rows: Range<usize>) -> Result<()> {
        let g = &self.geometry;
        if x.len() != g.input_len()
            || len != g.output_len()
            || rows.start > rows.end
            || rows.end > g.output_rows()
        {
            return Err(Error::ShapeMismatch(format!(
                "resize of rows {rows:?} from {} bytes into {len} floats",
                x.len()
            )));
        }
        if rows.is_empty() || len == 0 {
            return Ok(());
        }
        let (in_h, in_w, c) = (g.in_hw.0, g.in_hw.1, g.channels);
        let (out_h, out_w) = (g.rows.len(), g.cols.len());
        let line_len = in_w * c;
        let line = |n: usize, h: u32| {
            let at = (n * in_h + h as usize) * line_len;
            &x[at..at + line_len]
        };
        let mut t: Scratch<f32, LINE_ON_STACK> = match self.bilinear {
            Some(_) => Scratch::new(line_len + PADDING, 0.0),
            None => Scratch::Heap(Vec::new()),
        };
        let mut u: Scratch<f32, ROW_ON_STACK> = Scratch::new(out_w * c + PADDING, 0.0);
        let mut previous: Option<(usize, AxisTap)> = None;
        for r in rows {
            let (n, oy) = (r / out_h, r % out_h);
            let tap = g.rows[oy];
            let same = previous.is_some_and(|(pn, p)| {
                pn == n
                    && match self.bilinear {
                        Some(_) => p.same(&tap),
                        None => p.i0 == tap.i0,
                    }
            });
            if !same {
                previous = Some((n, tap));
                match &self.bilinear {
                    Some(b) => {
                        b.lines(line(n, tap.i0), line(n, tap.i1), tap.w, &mut t);
                        let args = BlendArgs {
                            t: t.as_ptr(),
                            u: u.as_mut_ptr(),
                            cols: &b.cols,
                            channels: c,
                        };
                        // SAFETY: every tap's pixels lie within an input line (`validate`),
                        // so within the spans `lines` just wrote, and `t` has `PADDING`
                        // initialized elements more; `u` is a buffer apart from `t` of
                        // `out_w × c + PADDING` elements; `new` checked the CPU.
                        unsafe { (b.kernels.blend)(&args) };
                    }
                    None => {
                        let src = line(n, tap.i0);
                        for (col, px) in g.cols.iter().zip(u.chunks_exact_mut(c)) {
                            let at = col.i0 as usize * c;
                            for (v, &b) in px.iter_mut().zip(&src[at..at + c]) {
                                *v = self.x.value(b);
                            }
                        }
                    }
                }
            }
            // Pixel-major `u` into the channel planes of image `n`, output row `oy`.
            for k in 0..c {
                // SAFETY: `(n, k, oy)` indexes a row of `out_w` elements inside the
                // `len == batch × c × out_h × out_w` elements at `y` (checked above); only
                // calls for row `r` write it (the caller's contract).
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(y.add(((n * c + k) * out_h + oy) * out_w), out_w)
                };
                for (d, px) in dst.iter_mut().zip(u.chunks_exact(c)) {
                    *d = px[k];
                }
            }
        }
        Ok(())
    }
}

/// Copies input pixel `cols[j].i0` of `src` (one input line) to output pixel `j` of `dst`.
fn nearest_row(src: &[i8], cols: &[AxisTap], c: usize, dst: &mut [i8]) {
    match c {
        1 => dst
            .iter_mut()
            .zip(cols)
            .for_each(|(d, t)| *d = src[t.i0 as usize]),
        _ => {
            for (t, d) in cols.iter().zip(dst.chunks_exact_mut(c)) {
                let at = t.i0 as usize * c;
                d.copy_from_slice(&src[at..at + c]);
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
        let s = Isa::Scalar;
        assert_eq!(
            run(&Resize::nearest(s, g.clone(), None).unwrap()),
            [60, 70, 20, 30]
        );
        let neg: [i8; 256] = std::array::from_fn(|b| (b as u8 as i8).wrapping_neg());
        assert_eq!(
            run(&Resize::nearest(s, g.clone(), Some(neg)).unwrap()),
            [-60, -70, -20, -30]
        );
        let q = QuantParams {
            scale: 0.5,
            zero_point: 0,
        };
        // Row 1 blends rows 0 and 1 equally: (20 + 60) / 2 = 40 at column 1, 20 at column 0;
        // columns: 40 * 0.75 + 20 * 0.25 = 35.
        let bl = Resize::bilinear(s, g.clone(), q, q, OutputRange::FULL).unwrap();
        assert_eq!(run(&bl), [55, 65, 35, 45]);
        let relu = Resize::bilinear(s, g.clone(), q, q, OutputRange::new(-128, 50).unwrap()).unwrap();
        assert_eq!(run(&relu), [50, 50, 35, 45]);
        let empty = OutputRange { min: 5, max: 4 };
        assert!(Resize::bilinear(s, g.clone(), q, q, empty).is_err());
        let mut bad = g.clone();
        bad.cols[0].i1 = 2;
        assert!(Resize::nearest(s, bad, None).is_err());
        let mut huge = g.clone();
        huge.batch = usize::MAX / 2;
        assert!(Resize::nearest(s, huge, None).is_err());
        let nn = Resize::nearest(s, g, None).unwrap();
        let mut y = vec![0i8; 4];
        let out = SharedOutput::new(&mut y);
        // SAFETY: single-threaded.
        assert!(unsafe { nn.run_shared(&x, &out, 1..3) }.is_err());
    }

    #[test]
    fn bilinear_reads_only_the_columns_its_taps_use() {
        let g = ResizeGeometry {
            batch: 1,
            channels: 3,
            in_hw: (1, 6),
            rows: taps(&[(0, 0, 0.0)]),
            cols: taps(&[(0, 1, 0.5), (4, 4, 0.0), (2, 1, 0.5)]),
        };
        let q = QuantParams {
            scale: 1.0,
            zero_point: 0,
        };
        let b = Bilinear::new(Isa::Scalar, &g, q).unwrap();
        assert_eq!(b.spans, [0..9, 12..15]);
        assert_eq!((b.cols[2].a0, b.cols[2].a1, b.cols[2].wc), (6, 3, 0.5));
    }
}
